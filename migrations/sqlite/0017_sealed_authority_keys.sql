-- Issue 19.3, software keys shared by every node without a shared file
-- system: the key of an issuing CA made by a rotation from a software key
-- is kept here, as PKCS#8 sealed under a data key (src/secrets, bound to
-- its name), so any node with the key-encryption key opens it. The
-- authority's key URI is `sealed:<name>`; the row is written in the
-- rotation's transaction and never stored in the clear.
CREATE TABLE authority_keys (
    name        TEXT PRIMARY KEY,
    pkcs8       BLOB NOT NULL,
    sealed_with TEXT NOT NULL REFERENCES sealing_keys (id),
    created_at  BIGINT NOT NULL
);
