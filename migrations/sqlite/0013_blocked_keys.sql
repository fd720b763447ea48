-- Issue 25, compromised keys stay dead. Every certificate records its
-- subject key's hash (SHA-256 of the DER SubjectPublicKeyInfo), so the
-- other certificates of a key are found without parsing any DER; rows from
-- before this migration get theirs at the next start
-- (`issuance::backfill_key_hashes`: SQL cannot take a key out of a DER
-- certificate on SQLite), found through `certificates_without_spki_hash`,
-- which is empty once that is done. Only pending and issued certificates
-- are searched by key (to refuse or revoke them), so only they are indexed.
ALTER TABLE certificates ADD COLUMN spki_hash BLOB;
CREATE INDEX certificates_spki_hash ON certificates (spki_hash) WHERE status IN (0, 1);
CREATE INDEX certificates_without_spki_hash ON certificates (serial) WHERE spki_hash IS NULL AND der IS NOT NULL;

-- Keys revoked for keyCompromise: no certificate is issued for them again.
-- The row commits with the revocation that proves the compromise; the
-- key's other certificates are revoked right after that commit (a
-- transaction that begins after it sees every issuance the block could
-- miss), and `siblings_revoked` records that this was done, so the
-- revocation poll finishes what a stopped node left.
CREATE TABLE blocked_keys (
    spki_hash        BLOB PRIMARY KEY,
    blocked_at       BIGINT NOT NULL,
    -- The certificate whose revocation blocked the key.
    serial           BLOB NOT NULL,
    siblings_revoked BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX blocked_keys_unswept ON blocked_keys (blocked_at) WHERE NOT siblings_revoked;
