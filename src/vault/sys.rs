//! `GET /v1/sys/health` and `GET /v1/auth/token/lookup-self`: what clients
//! call before they sign (cert-manager checks health, hvac's
//! `is_authenticated` looks its token up).

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::VaultState;
use super::auth::VaultCaller;
use super::envelope::secret;
use crate::clock::{from_unix, rfc3339};

/// Always initialized, unsealed and active: Tessera has no seal, and a node
/// that cannot reach its database answers issuance with a retryable error.
pub async fn health(State(state): State<VaultState>) -> Json<Value> {
    Json(json!({
        "initialized": true,
        "sealed": false,
        "standby": false,
        "performance_standby": false,
        "replication_performance_mode": "disabled",
        "replication_dr_mode": "disabled",
        "server_time_utc": state.clock.unix(),
        "version": concat!("tessera-", env!("CARGO_PKG_VERSION")),
        "cluster_name": "tessera",
    }))
}

/// The presenting token's own record; its secret is never echoed.
pub async fn lookup_self(State(state): State<VaultState>, caller: VaultCaller) -> Json<Value> {
    let record = &caller.record;
    let ttl = record.expires_at.map_or(0, |at| (at - state.clock.unix()).max(0));
    secret(
        json!({
            "display_name": format!("token-{}", record.name),
            "policies": record.policies,
            "creation_time": record.created_at,
            "expire_time": record.expires_at.map(|t| rfc3339(from_unix(t))),
            "ttl": ttl,
            "renewable": false,
            "type": "service",
            "meta": { "scope": caller.scope.as_str() },
        }),
        Vec::new(),
    )
}
