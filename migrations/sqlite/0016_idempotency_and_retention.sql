-- Issue 19.2, a REST issuance may be retried: a request's Idempotency-Key,
-- per token, with the hash of the body it came with and the certificate it
-- gave (NULL while that is being issued). Keys are SHA-256 hashes; rows
-- older than a day are pruned.
CREATE TABLE idempotency_keys (
    token_id   BIGINT NOT NULL,
    key_hash   BLOB NOT NULL,
    body_hash  BLOB NOT NULL,
    serial     BLOB,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (token_id, key_hash)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);

-- Issue 19.7, nothing grows for ever: the retention job (`lifecycle::prune`)
-- finds old rows by these.
CREATE INDEX acme_orders_expires ON acme_orders (expires);
CREATE INDEX lifecycle_notices_at ON lifecycle_notices (at);
-- A finished event's next_attempt_at is when it was delivered or given up.
CREATE INDEX webhook_events_finished ON webhook_events (next_attempt_at) WHERE state <> 'pending';
