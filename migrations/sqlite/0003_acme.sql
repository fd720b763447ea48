-- ACME (RFC 8555), the SQLite twin of migrations/postgres/0003_acme.sql.
-- Timestamps are Unix seconds.

-- HMAC keys for External Account Binding. The key must be kept to verify
-- MACs; the admin API shows it once, at creation.
CREATE TABLE eab_keys (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kid         TEXT NOT NULL UNIQUE,
    hmac_key    BLOB NOT NULL,
    policy      TEXT NOT NULL,
    reusable    INTEGER NOT NULL,
    created_at  BIGINT NOT NULL,
    bound_at    BIGINT,
    bound_count BIGINT NOT NULL DEFAULT 0,
    revoked_at  BIGINT
);

-- status: valid, deactivated, revoked. policy: the scope the account
-- inherited from its EAB key (or the directory's policy without EAB).
CREATE TABLE acme_accounts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    directory   TEXT NOT NULL,
    thumbprint  TEXT NOT NULL,
    jwk         TEXT NOT NULL,
    status      TEXT NOT NULL,
    contact     TEXT NOT NULL,
    policy      TEXT NOT NULL,
    eab_key_id  BIGINT REFERENCES eab_keys (id),
    created_at  BIGINT NOT NULL,
    CONSTRAINT acme_accounts_key UNIQUE (directory, thumbprint)
);

-- status: pending, ready, processing, valid, invalid. identifiers is a
-- space-separated list of tagged identifiers (`dns:a.test ip:127.0.0.1`).
CREATE TABLE acme_orders (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id         BIGINT NOT NULL REFERENCES acme_accounts (id),
    status             TEXT NOT NULL,
    identifiers        TEXT NOT NULL,
    not_before         BIGINT,
    not_after          BIGINT,
    expires            BIGINT NOT NULL,
    error              TEXT,
    certificate_serial BLOB,
    replaces_serial    BLOB,
    created_at         BIGINT NOT NULL
);
CREATE INDEX acme_orders_account ON acme_orders (account_id, id);
CREATE INDEX acme_orders_account_created ON acme_orders (account_id, created_at);
CREATE INDEX acme_orders_certificate ON acme_orders (certificate_serial);
CREATE INDEX acme_orders_replaces ON acme_orders (replaces_serial);

-- status: pending, valid, invalid, deactivated, expired, revoked.
CREATE TABLE acme_authorizations (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id   BIGINT NOT NULL REFERENCES acme_orders (id),
    account_id BIGINT NOT NULL REFERENCES acme_accounts (id),
    identifier TEXT NOT NULL,
    wildcard   INTEGER NOT NULL,
    status     TEXT NOT NULL,
    expires    BIGINT NOT NULL
);
CREATE INDEX acme_authorizations_order ON acme_authorizations (order_id);

-- status: pending, processing, valid, invalid. error is a problem document.
CREATE TABLE acme_challenges (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    authz_id   BIGINT NOT NULL REFERENCES acme_authorizations (id),
    account_id BIGINT NOT NULL REFERENCES acme_accounts (id),
    kind       TEXT NOT NULL,
    token      TEXT NOT NULL,
    status     TEXT NOT NULL,
    validated  BIGINT,
    error      TEXT
);
CREATE INDEX acme_challenges_authz ON acme_challenges (authz_id);
CREATE INDEX acme_challenges_failed ON acme_challenges (account_id, validated) WHERE status = 'invalid';

-- Nonces are MAC-protected and cost no write to hand out; using one inserts
-- it here, so a replay is refused on every node.
CREATE TABLE acme_used_nonces (
    nonce      BLOB PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX acme_used_nonces_expiry ON acme_used_nonces (expires_at);

-- Secrets every node must share (the nonce MAC key), made once.
CREATE TABLE acme_secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
