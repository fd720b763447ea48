-- Tessera's foundation schema. Timestamps are Unix seconds (BIGINT) so the
-- same SQL runs on PostgreSQL and SQLite.

CREATE TABLE authorities (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL CHECK (kind IN ('root', 'issuing')),
    parent_id       BIGINT REFERENCES authorities (id),
    key_uri         TEXT NOT NULL,
    algorithm       TEXT NOT NULL,
    certificate_der BYTEA NOT NULL,
    serial          BYTEA NOT NULL,
    ski             BYTEA NOT NULL,
    subject         TEXT NOT NULL,
    not_before      BIGINT NOT NULL,
    not_after       BIGINT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
    created_at      BIGINT NOT NULL
);

CREATE TABLE policies (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    rules      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- status: 0 pending, 1 issued, 2 failed, 3 revoked.
-- A row exists before the signature does, so no certificate goes untracked.
CREATE TABLE certificates (
    serial            BYTEA PRIMARY KEY,
    authority_id      BIGINT NOT NULL REFERENCES authorities (id),
    not_before        BIGINT NOT NULL,
    not_after         BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    revoked_at        BIGINT,
    status            SMALLINT NOT NULL CHECK (status BETWEEN 0 AND 3),
    revocation_reason SMALLINT,
    subject           TEXT NOT NULL,
    sans              TEXT NOT NULL,
    requester         TEXT NOT NULL,
    key_type          TEXT,
    policy            TEXT,
    der               BYTEA
);
CREATE INDEX certificates_not_after ON certificates (not_after, serial);
CREATE INDEX certificates_authority_not_after ON certificates (authority_id, not_after);
CREATE INDEX certificates_revoked ON certificates (authority_id, revoked_at) WHERE status = 3;

CREATE TABLE api_tokens (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name       TEXT NOT NULL,
    scope      TEXT NOT NULL CHECK (scope IN ('admin', 'operator', 'issuer', 'auditor')),
    token_hash BYTEA NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE audit_events (
    id     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at     BIGINT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX audit_events_action ON audit_events (action, id);
