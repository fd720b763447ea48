-- Issue 4: when a challenge began processing. A node that stops between
-- starting a validation and recording its outcome leaves the challenge
-- processing; a running node takes up such validations once they are older
-- than any validation could take (`acme::resume`). Challenges already
-- processing have no start and count as stalled.
ALTER TABLE acme_challenges ADD COLUMN started_at BIGINT;
CREATE INDEX acme_challenges_processing ON acme_challenges (started_at) WHERE status = 'processing';
