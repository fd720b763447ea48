//! The token a Vault client presents (`X-Vault-Token`, or a bearer token
//! as Vault also takes): a Tessera token, whose scope and policies decide
//! what it reaches. Refusals are logged by reason, never with the token.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::VaultState;
use super::error::VaultError;
use crate::storage::TokenRecord;
use crate::token::{Scope, hash_token};

const TOKEN_HEADER: &str = "x-vault-token";

/// The holder of a live token.
#[derive(Debug, Clone)]
pub struct VaultCaller {
    pub record: TokenRecord,
    pub scope: Scope,
}

impl VaultCaller {
    /// How the audit log names this caller (as the admin API does).
    pub fn actor(&self) -> String {
        format!("token:{}", self.record.name)
    }

    /// Refuses a policy the token is not bound to; an admin token uses every
    /// policy, an auditor token none.
    pub fn require_policy(&self, policy: Option<&str>) -> Result<(), VaultError> {
        let allowed = match self.scope {
            Scope::Admin => true,
            Scope::Operator | Scope::Issuer => policy.is_some_and(|p| self.record.policies.iter().any(|b| b == p)),
            Scope::Auditor => false,
        };
        if allowed {
            return Ok(());
        }
        tracing::info!(token = %self.record.name, policy, "vault: token not bound to the policy");
        Err(VaultError::PermissionDenied)
    }

    /// Revoking is for admin and operator tokens, as in the admin API.
    pub fn require_manage(&self) -> Result<(), VaultError> {
        if matches!(self.scope, Scope::Admin | Scope::Operator) {
            return Ok(());
        }
        tracing::info!(token = %self.record.name, scope = self.scope.as_str(), "vault: scope may not revoke");
        Err(VaultError::PermissionDenied)
    }
}

impl FromRequestParts<VaultState> for VaultCaller {
    type Rejection = VaultError;

    async fn from_request_parts(parts: &mut Parts, state: &VaultState) -> Result<Self, VaultError> {
        let refuse = |reason: &str| {
            tracing::info!(reason, path = %parts.uri.path(), "vault: request refused");
            VaultError::PermissionDenied
        };
        let Some(token) = presented_token(parts) else { return Err(refuse("no token")) };
        let Some(record) = state.store.token_by_hash(&hash_token(token)).await? else {
            return Err(refuse("unknown token"));
        };
        if !record.is_live(state.clock.unix()) {
            return Err(refuse("revoked or expired token"));
        }
        let scope = Scope::parse(&record.scope)
            .ok_or_else(|| VaultError::Internal(format!("token {} has scope {:?}", record.id, record.scope)))?;
        Ok(Self { record, scope })
    }
}

/// `X-Vault-Token`, else `Authorization: Bearer`.
fn presented_token(parts: &Parts) -> Option<&str> {
    if let Some(value) = parts.headers.get(TOKEN_HEADER) {
        return value.to_str().ok().map(str::trim).filter(|t| !t.is_empty());
    }
    let header = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = header.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}
