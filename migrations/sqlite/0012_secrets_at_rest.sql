-- Secrets at rest (src/secrets): the data keys that seal stored secrets,
-- each wrapped by a key-encryption key that is never stored here (`kek`
-- names it: `local:<fingerprint>` or `awskms:<key>`), and on each row
-- holding a secret the data key that sealed it. A SQL migration cannot
-- encrypt: rows written before it keep their secret in the clear
-- (sealed_with NULL) until the first start seals them.
CREATE TABLE sealing_keys (
    id         TEXT PRIMARY KEY,
    kek        TEXT NOT NULL,
    wrapped    BLOB NOT NULL,
    created_at BIGINT NOT NULL
);
ALTER TABLE eab_keys ADD COLUMN sealed_with TEXT REFERENCES sealing_keys (id);
ALTER TABLE acme_secrets ADD COLUMN sealed_with TEXT REFERENCES sealing_keys (id);

-- Which mode made the CA hierarchy, on its root: 'dev' (the dev bootstrap)
-- or 'production' (tessera init). A database tessera init made never gets
-- the dev bootstrap. Before this migration, a production hierarchy is one
-- with tessera init's admin token or a key outside files (dev mode makes
-- only file: keys).
ALTER TABLE authorities ADD COLUMN setup_mode TEXT CHECK (setup_mode IN ('dev', 'production'));
UPDATE authorities SET setup_mode = CASE
        WHEN EXISTS (SELECT 1 FROM api_tokens WHERE name = 'admin (init)')
            OR EXISTS (SELECT 1 FROM authorities WHERE key_uri NOT LIKE 'file:%') THEN 'production'
        ELSE 'dev'
    END
    WHERE parent_id IS NULL;
