-- Issue 6, storage: the same rewrite as on PostgreSQL (SQLite does not pad,
-- but the flag, the codes and the narrower index save here too). Every row
-- keeps what it had, with less of it on disk:
--
-- - columns in alignment order: BIGINTs first, then INTEGER, SMALLINTs and
--   the BOOLEAN, then the variable-length columns, so PostgreSQL pads
--   nothing between them;
-- - `superseded` (a flag) replaces `superseded_by` (the successor's serial):
--   nothing reads the successor, only whether there is one;
-- - `subject` is NULL when it is the one a leaf's identifiers give (its
--   first DNS name short enough for a common name), so it is stored only for
--   certificates whose subject says something else (CA and OCSP responder
--   certificates);
-- - `key_type` is a code: 1 ecdsa-p256, 2 ecdsa-p384, 3 ed25519, 4 rsa
--   (leaves), 5 ecdsa-p256-sha256, 6 ecdsa-p384-sha384 (CA certificates);
-- - `certificates_not_after` indexes not_after alone: a page ordered by
--   (not_after, serial) walks it in not_after order and sorts the few rows
--   of one second by serial, so the serial's 17 bytes need not be in it.
CREATE TABLE certificates_slim (
    authority_id      BIGINT NOT NULL REFERENCES authorities (id),
    not_before        BIGINT NOT NULL,
    not_after         BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    revoked_at        BIGINT,
    -- NULL: the certificate names its authority's full CRL.
    crl_shard         INTEGER,
    -- 0 pending, 1 issued, 2 failed, 3 revoked.
    status            SMALLINT NOT NULL CHECK (status BETWEEN 0 AND 3),
    revocation_reason SMALLINT,
    key_type          SMALLINT CHECK (key_type BETWEEN 1 AND 6),
    -- Set in the successor's issuance transaction (see 0004).
    superseded        BOOLEAN NOT NULL DEFAULT FALSE,
    serial            BLOB PRIMARY KEY,
    sans              TEXT NOT NULL,
    requester         TEXT NOT NULL,
    policy            TEXT,
    subject           TEXT,
    der               BLOB
);

INSERT INTO certificates_slim (authority_id, not_before, not_after, created_at, revoked_at, crl_shard, status,
    revocation_reason, key_type, superseded, serial, sans, requester, policy, subject, der)
SELECT authority_id, not_before, not_after, created_at, revoked_at, crl_shard, status, revocation_reason,
    CASE key_type WHEN 'ecdsa-p256' THEN 1 WHEN 'ecdsa-p384' THEN 2 WHEN 'ed25519' THEN 3 WHEN 'rsa' THEN 4
        WHEN 'ecdsa-p256-sha256' THEN 5 WHEN 'ecdsa-p384-sha384' THEN 6 END,
    superseded_by IS NOT NULL, serial, sans, requester, policy,
    -- SQLite has no regular expressions: the subject is left out when the
    -- first identifier is a DNS name short enough (the common case), or when
    -- it is empty and there is no DNS name at all; otherwise it is kept.
    CASE WHEN sans LIKE ' dns:%' AND instr(substr(sans, 6), ' ') BETWEEN 2 AND 65
              AND subject = 'CN=' || substr(sans, 6, instr(substr(sans, 6), ' ') - 1) THEN NULL
         WHEN subject = '' AND instr(sans, ' dns:') = 0 THEN NULL
         ELSE subject END,
    der
FROM certificates;

DROP TABLE certificates;
ALTER TABLE certificates_slim RENAME TO certificates;

CREATE INDEX certificates_not_after ON certificates (not_after);
CREATE INDEX certificates_revoked ON certificates (authority_id, revoked_at) WHERE status = 3;
CREATE INDEX certificates_revoked_shard ON certificates (authority_id, crl_shard) WHERE status = 3;
CREATE INDEX certificates_revoked_at ON certificates (revoked_at) WHERE status = 3;
CREATE INDEX certificates_heads ON certificates (requester, sans) WHERE status = 1 AND NOT superseded;
CREATE INDEX certificates_heads_expiry ON certificates (not_after, authority_id, not_before)
    WHERE status = 1 AND NOT superseded;
CREATE INDEX certificates_issued_expiry ON certificates (not_after, authority_id) WHERE status = 1;
