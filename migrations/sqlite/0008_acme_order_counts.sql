-- Issue 4, rate limits: each account's new orders counted per time bucket,
-- so checking "orders in the window" sums a few counters instead of
-- counting up to the limit's worth of order rows (10 000 by default) on
-- every newOrder. `bucket` is the first second the counter covers; its
-- width is the directory's window / 64 (see `storage::acme_new_orders`), so a change of
-- window needs no rewrite here. Orders already stored are counted per
-- second, a bucket one second wide.
CREATE TABLE acme_order_counts (
    account_id BIGINT NOT NULL,
    bucket     BIGINT NOT NULL,
    orders     BIGINT NOT NULL,
    PRIMARY KEY (account_id, bucket)
);
INSERT INTO acme_order_counts (account_id, bucket, orders)
SELECT account_id, created_at, COUNT(*) FROM acme_orders GROUP BY account_id, created_at;
