//! What a login buys: a short-lived Tessera token (scope `issuer`) bound to
//! the policies the login allows, answered in Vault's `auth` envelope; and
//! the audit record of a refused login. No token, secret id or jwt is
//! logged or stored.

use axum::Json;
use secrecy::ExposeSecret;
use serde_json::{Value, json};

use super::VaultState;
use super::error::VaultError;
use crate::storage::{NewAuditEvent, TokenError};
use crate::token::{Bindings, Scope, TokenRequest, create_token};

/// What a successful login grants.
pub struct Grant<'a> {
    /// `approle`, `kubernetes` or `cert`.
    pub method: &'static str,
    pub role: &'a str,
    /// Who logged in (`namespace/service-account`, the AppRole's name, a
    /// certificate's SPIFFE ID or DNS name).
    pub subject: String,
    pub policies: Vec<String>,
    /// Seconds the minted token lives.
    pub ttl: i64,
    pub metadata: Value,
}

/// Mints the token (its creation audited as `token.create` by the login's
/// actor) and answers in Vault's `auth` envelope.
pub async fn mint(state: &VaultState, grant: Grant<'_>) -> Result<Json<Value>, VaultError> {
    let now = state.clock.unix();
    let bindings = Bindings::for_scope(Scope::Issuer, Some(grant.policies))
        .map_err(|e| VaultError::Internal(format!("{} role {}: {e}", grant.method, grant.role)))?;
    let name = format!("vault-{}:{}", grant.method, grant.subject);
    let request = TokenRequest {
        name: &name,
        scope: Scope::Issuer,
        bindings: bindings.clone(),
        expires_at: Some(now + grant.ttl),
    };
    let actor = format!("vault:{}:{}", grant.method, grant.role);
    let (_, secret) = create_token(&state.store, &request, &actor, now).await.map_err(|e| match e {
        TokenError::Store(s) => s.into(),
        // The role names a policy deleted since: the login grants nothing.
        TokenError::UnknownPolicy(policy) => {
            VaultError::BadRequest(format!("the role grants policy {policy:?}, which no longer exists"))
        }
        other => VaultError::Internal(format!("{} role {}: {other}", grant.method, grant.role)),
    })?;
    tracing::info!(method = grant.method, role = grant.role, subject = %grant.subject, "vault: login");
    Ok(Json(json!({
        "request_id": "",
        "lease_id": "",
        "renewable": false,
        "lease_duration": 0,
        "data": null,
        "wrap_info": null,
        "warnings": null,
        "auth": {
            "client_token": secret.expose_secret(),
            "accessor": "",
            "policies": bindings.names(),
            "token_policies": bindings.names(),
            "metadata": grant.metadata,
            "lease_duration": grant.ttl,
            "renewable": false,
            "token_type": "service",
            "orphan": true,
        },
    })))
}

/// Records a refused login with its reason, never the credential.
pub async fn refuse(state: &VaultState, method: &'static str, role: &str, reason: &str) -> Result<(), VaultError> {
    tracing::info!(method, role, reason, "vault: login refused");
    let event = NewAuditEvent {
        at: state.clock.unix(),
        actor: format!("vault:{method}"),
        action: "vault.login.refused",
        target: role.chars().take(64).collect(),
        detail: json!({ "method": method, "reason": reason }),
    };
    Ok(state.store.record_audit(&event).await?)
}
