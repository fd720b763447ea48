-- Issue 22.3: an inventory an operator can search (see the PostgreSQL
-- migration of the same number for the why of each part).
ALTER TABLE certificates ADD COLUMN kind SMALLINT NOT NULL DEFAULT 0 CHECK (kind BETWEEN 0 AND 1);
UPDATE certificates SET kind = 1 WHERE requester = 'tessera';

DROP INDEX certificates_issued_expiry;
CREATE INDEX certificates_issued_expiry ON certificates (not_after, authority_id, kind) WHERE status = 1;
DROP INDEX certificates_heads_expiry;
CREATE INDEX certificates_heads_expiry ON certificates (not_after, authority_id, kind, not_before)
    WHERE status = 1 AND NOT superseded;
CREATE INDEX certificates_internal ON certificates (not_after) WHERE kind = 1;

-- SQLite compares text byte by byte (BINARY) already.
CREATE TABLE certificate_names (
    not_after BIGINT NOT NULL,
    serial    BLOB NOT NULL,
    name      TEXT NOT NULL
);
CREATE UNIQUE INDEX certificate_names_search ON certificate_names (name, not_after, serial);

-- The rows before: SQLite has no arrays, so the identifiers are split off
-- the column (` dns:a.test uri:... `) one at a time, and a DNS name's
-- labels are turned around one at a time, by recursive queries.
WITH RECURSIVE
    tokens (serial, not_after, i, rest, token) AS (
        SELECT serial, not_after, 0, ltrim(sans) || ' ', NULL FROM certificates
        UNION ALL
        SELECT serial, not_after, i + 1, ltrim(substr(rest, instr(rest, ' '))), substr(rest, 1, instr(rest, ' ') - 1)
        FROM tokens WHERE rest <> ''
    ),
    labels (serial, not_after, rest, reversed) AS (
        SELECT serial, not_after, substr(token, 5) || '.', '' FROM tokens WHERE token LIKE 'dns:%'
        UNION ALL
        SELECT serial, not_after, substr(rest, instr(rest, '.') + 1),
            substr(rest, 1, instr(rest, '.') - 1) || CASE WHEN reversed = '' THEN '' ELSE '.' || reversed END
        FROM labels WHERE rest <> ''
    ),
    common_names (serial, i) AS (
        SELECT serial, MIN(i) FROM tokens WHERE token LIKE 'dns:%' AND length(token) <= 68 GROUP BY serial
    )
INSERT OR IGNORE INTO certificate_names (not_after, serial, name)
SELECT not_after, serial, 'dns:' || reversed FROM labels WHERE rest = ''
UNION ALL
SELECT not_after, serial, token FROM tokens WHERE token <> '' AND token NOT LIKE 'dns:%'
UNION ALL
SELECT not_after, serial, 'subject:' || subject FROM certificates WHERE subject <> ''
UNION ALL
SELECT t.not_after, t.serial, 'subject:CN=' || substr(t.token, 5)
FROM tokens t JOIN common_names n ON n.serial = t.serial AND n.i = t.i
JOIN certificates c ON c.serial = t.serial AND c.subject IS NULL
UNION ALL
SELECT not_after, serial, 'requester:' || requester FROM certificates;
