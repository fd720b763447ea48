-- Issue 25, one EAB key does not multiply limits. A reusable EAB key binds
-- at most `max_accounts` accounts (a single-use key one), and the rate
-- limits of the accounts it bound count their orders and failed
-- validations together: the counters of such accounts are kept per key
-- (`acme_eab_order_counts`, laid out as `acme_order_counts`, see 0008),
-- and their failed validations are found through `acme_accounts_eab_key`.
-- A key's sum includes each of its accounts' own, so its accounts need no
-- counters of their own. Reusable keys made before this get the default cap.
ALTER TABLE eab_keys ADD COLUMN max_accounts BIGINT NOT NULL DEFAULT 100;
UPDATE eab_keys SET max_accounts = 1 WHERE NOT reusable;

CREATE INDEX acme_accounts_eab_key ON acme_accounts (eab_key_id) WHERE eab_key_id IS NOT NULL;

CREATE TABLE acme_eab_order_counts (
    eab_key_id BIGINT NOT NULL,
    bucket     BIGINT NOT NULL,
    orders     BIGINT NOT NULL,
    PRIMARY KEY (eab_key_id, bucket)
);
INSERT INTO acme_eab_order_counts (eab_key_id, bucket, orders)
SELECT a.eab_key_id, c.bucket, SUM(c.orders) FROM acme_order_counts c JOIN acme_accounts a ON a.id = c.account_id
WHERE a.eab_key_id IS NOT NULL GROUP BY a.eab_key_id, c.bucket;
