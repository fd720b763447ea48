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
