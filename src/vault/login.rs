//! `POST /v1/auth/{path}/login`: each login method at the path it is
//! served at. Every login and every refusal is audited (see `grant`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use serde_json::Value;

use super::error::VaultError;
use super::{VaultState, approle, kubernetes};

/// Where AppRole logins are served, as in Vault by default.
pub const APPROLE_PATH: &str = "approle";

/// Routes a login to its method by the path it is mounted at.
pub async fn login(
    State(state): State<VaultState>,
    Path(path): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, VaultError> {
    if path == APPROLE_PATH {
        return approle::login(&state, &body).await;
    }
    match state.kubernetes.as_deref() {
        Some(auth) if auth.config.path == path => kubernetes::login(&state, auth, &body).await,
        _ => Err(VaultError::NotFound(format!("no handler for route \"auth/{path}/login\""))),
    }
}
