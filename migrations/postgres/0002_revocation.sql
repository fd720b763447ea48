-- Revocation: CRLs per authority (and per shard), their numbers, the shard
-- each certificate's CRL distribution point names, and leases for jobs that
-- several nodes run.

-- NULL: the certificate names its authority's full CRL.
ALTER TABLE certificates ADD COLUMN crl_shard INTEGER;
CREATE INDEX certificates_revoked_shard ON certificates (authority_id, crl_shard) WHERE status = 3;

-- One row per authority: the last CRL number handed out. Numbers are taken
-- with an atomic increment, so every CRL an authority signs has a new one.
CREATE TABLE crl_numbers (
    authority_id BIGINT PRIMARY KEY REFERENCES authorities (id),
    last_number  BIGINT NOT NULL
);

-- The newest CRL per authority and scope; shard -1 is the full CRL.
CREATE TABLE crls (
    authority_id BIGINT NOT NULL REFERENCES authorities (id),
    shard        INTEGER NOT NULL,
    crl_number   BIGINT NOT NULL,
    this_update  BIGINT NOT NULL,
    next_update  BIGINT NOT NULL,
    entries      BIGINT NOT NULL,
    der          BYTEA NOT NULL,
    PRIMARY KEY (authority_id, shard)
);

-- A job runs where it holds the lease; a crashed node's lease runs out.
CREATE TABLE job_leases (
    name        TEXT PRIMARY KEY,
    holder      TEXT NOT NULL,
    lease_until BIGINT NOT NULL,
    last_run    BIGINT,
    last_error  TEXT
);

-- Finds the newest revocation fast, so every node notices revocations made
-- elsewhere within a poll.
CREATE INDEX certificates_revoked_at ON certificates (revoked_at) WHERE status = 3;
