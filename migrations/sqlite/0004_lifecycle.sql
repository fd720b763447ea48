-- Lifecycle, the SQLite twin of migrations/postgres/0004_lifecycle.sql.

-- The serial of the certificate that replaced this one: the next issued
-- certificate of the same requester and identifiers, or an ACME order's
-- `replaces` (RFC 9773). Set in the successor's issuance transaction.
ALTER TABLE certificates ADD COLUMN superseded_by BLOB;

-- Finds the certificate a new issuance replaces. Only live heads of a
-- lineage are in it (issued, not yet superseded), so it stays small.
CREATE INDEX certificates_heads ON certificates (requester, sans)
    WHERE status = 1 AND superseded_by IS NULL;

-- Overdue and expired-without-successor certificates are heads too: the
-- expiry scan reads one not_after window of this index and nothing else
-- (not_before and authority_id are in it, so PostgreSQL answers from the
-- index alone).
CREATE INDEX certificates_heads_expiry ON certificates (not_after, authority_id, not_before)
    WHERE status = 1 AND superseded_by IS NULL;

-- The expirations summary counts issued certificates per authority in
-- not_after windows (1 h, 24 h, 7 d): from this index alone, never the
-- table (at ten million rows PostgreSQL would rather scan the table than
-- visit the heap for a third of a million rows). It replaces
-- certificates_authority_not_after, whose every reader (OCSP pre-signing)
-- has the authority as a filter inside a not_after window that
-- certificates_not_after serves as well; so the size stays the same.
DROP INDEX certificates_authority_not_after;
CREATE INDEX certificates_issued_expiry ON certificates (not_after, authority_id) WHERE status = 1;

ALTER TABLE job_leases ADD COLUMN next_run BIGINT;
ALTER TABLE job_leases ADD COLUMN runs BIGINT NOT NULL DEFAULT 0;

-- What was reported: a certificate (by serial) or an authority (by its
-- certificate's serial) is reported once per kind, however many scans see it.
CREATE TABLE lifecycle_notices (
    kind    TEXT NOT NULL,
    subject BLOB NOT NULL,
    at      BIGINT NOT NULL,
    PRIMARY KEY (kind, subject)
);

-- One delivery per notice and webhook URL. state: pending, delivered,
-- failed (gave up after the last attempt).
CREATE TABLE webhook_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT NOT NULL,
    subject         TEXT NOT NULL,
    url             TEXT NOT NULL,
    payload         TEXT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX webhook_events_due ON webhook_events (next_attempt_at) WHERE state = 'pending';

-- Every delivery attempt: the HTTP status, or the error when none came back.
CREATE TABLE webhook_deliveries (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    BIGINT NOT NULL REFERENCES webhook_events (id),
    kind        TEXT NOT NULL,
    url         TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    status_code INTEGER,
    error       TEXT,
    at          BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id, attempt);
