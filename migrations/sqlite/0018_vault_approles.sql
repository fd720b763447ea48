-- Issue 20.2: AppRole logins to the Vault-compatible API. An AppRole names
-- the policies its logins' tokens are bound to; its role_id is an
-- identifier, not a secret. Its secret ids are stored only as SHA-256
-- hashes, each with an expiry and a count of logins left (NULL: none).
CREATE TABLE vault_approles (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    name               TEXT NOT NULL UNIQUE,
    role_id            TEXT NOT NULL UNIQUE,
    policies           TEXT NOT NULL,
    secret_id_ttl      BIGINT,
    secret_id_num_uses BIGINT,
    created_at         BIGINT NOT NULL
);

CREATE TABLE vault_approle_secret_ids (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    approle_id  INTEGER NOT NULL REFERENCES vault_approles (id),
    secret_hash BLOB NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT,
    uses_left   BIGINT
);
CREATE INDEX vault_approle_secret_ids_approle ON vault_approle_secret_ids (approle_id);
