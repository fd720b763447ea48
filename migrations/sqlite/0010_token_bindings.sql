-- Issue 17.2: a token that can issue (issuer, operator) is bound to the
-- policies it may use; an admin token uses every policy, an auditor none.
-- Tokens made before this migration have no bindings, so an issuer or
-- operator token signs nothing until an admin binds it
-- (PUT /api/v1/tokens/{id}/policies). Any token may carry an expiry.
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;

-- Tokens are never deleted (revocation keeps the row); a deleted policy
-- takes the bindings of revoked and expired tokens with it, and is refused
-- while a live token is bound to it.
CREATE TABLE api_token_policies (
    token_id  INTEGER NOT NULL REFERENCES api_tokens (id),
    policy_id INTEGER NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    PRIMARY KEY (token_id, policy_id)
);
CREATE INDEX api_token_policies_policy ON api_token_policies (policy_id);
