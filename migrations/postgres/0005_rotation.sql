-- CA rotation and fleet renewal. A renewal pull asks every certificate of an
-- authority (all of them, or those with a SAN the selector matches) that
-- existed when the pull was made to renew now: ACME Renewal Information
-- answers a window at "now" for them. One row per operator request, so
-- pulling a fleet of any size is one insert; certificates issued after the
-- pull are not affected.
CREATE TABLE renewal_pulls (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    authority_id BIGINT NOT NULL REFERENCES authorities (id),
    -- NULL: every certificate; otherwise an identifier (`dns:a.test`) or a
    -- DNS pattern (`dns:*.example.com`, any depth below the suffix).
    selector     TEXT,
    pulled_at    BIGINT NOT NULL,
    actor        TEXT NOT NULL
);
CREATE INDEX renewal_pulls_authority ON renewal_pulls (authority_id, pulled_at);
