-- Issue 22.3: an inventory an operator can search.
--
-- `kind`: 0 a workload's certificate, 1 Tessera's own (its TLS certificate,
-- OCSP responder and CA certificates, all requested as `tessera`, which is
-- how the rows written before are recognised). The expiry indexes carry it,
-- so the expirations summary counts the two apart from the index alone;
-- `certificates_internal` serves a listing of Tessera's own certificates.
ALTER TABLE certificates ADD COLUMN kind SMALLINT NOT NULL DEFAULT 0 CHECK (kind BETWEEN 0 AND 1);
UPDATE certificates SET kind = 1 WHERE requester = 'tessera';

DROP INDEX certificates_issued_expiry;
CREATE INDEX certificates_issued_expiry ON certificates (not_after, authority_id, kind) WHERE status = 1;
DROP INDEX certificates_heads_expiry;
CREATE INDEX certificates_heads_expiry ON certificates (not_after, authority_id, kind, not_before)
    WHERE status = 1 AND NOT superseded;
CREATE INDEX certificates_internal ON certificates (not_after) WHERE kind = 1;

-- Every name a certificate is found by (`storage/search_names.rs`): its
-- identifiers (a DNS name reversed by label, so a domain's names share a
-- prefix), `subject:` the subject as shown, `requester:` who asked. The
-- index serves an exact name or a prefix as a range, in byte order
-- (COLLATE "C"), with not_after and serial for the listing's keyset. Rows
-- are written with the certificate's reservation; certificates are never
-- deleted, so neither are they.
CREATE TABLE certificate_names (
    not_after BIGINT NOT NULL,
    serial    BYTEA NOT NULL,
    name      TEXT COLLATE "C" NOT NULL
);
CREATE UNIQUE INDEX certificate_names_search ON certificate_names (name, not_after, serial);

INSERT INTO certificate_names (not_after, serial, name)
SELECT DISTINCT c.not_after, c.serial, n.name
FROM certificates c
CROSS JOIN LATERAL (
    SELECT CASE WHEN t LIKE 'dns:%' THEN 'dns:' || (
               SELECT string_agg(label, '.' ORDER BY i DESC)
               FROM unnest(string_to_array(substr(t, 5), '.')) WITH ORDINALITY AS l(label, i))
           ELSE t END
    FROM unnest(string_to_array(c.sans, ' ')) AS t WHERE t <> ''
    UNION ALL
    SELECT 'subject:' || COALESCE(c.subject, 'CN=' || substring(c.sans FROM ' dns:([^ ]{1,64}) '))
    WHERE COALESCE(c.subject, 'CN=' || substring(c.sans FROM ' dns:([^ ]{1,64}) ')) <> ''
    UNION ALL
    SELECT 'requester:' || c.requester
) AS n(name);
