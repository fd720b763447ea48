//! `POST /v1/auth/{path}/login`: each login method at the path it is
//! served at. Every login and every refusal is audited (see `grant`).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::{Extension, Json};
use serde_json::Value;

use super::error::VaultError;
use super::{VaultState, approle, cert, kubernetes};
use crate::http::client_certificate::ClientCertificates;

/// Where AppRole logins are served, as in Vault by default.
pub const APPROLE_PATH: &str = "approle";

/// Routes a login to its method by the path it is mounted at.
pub async fn login(
    State(state): State<VaultState>,
    Path(path): Path<String>,
    client: Option<Extension<ClientCertificates>>,
    body: Bytes,
) -> Result<Json<Value>, VaultError> {
    if path == APPROLE_PATH {
        return approle::login(&state, &body).await;
    }
    if let Some(auth) = state.kubernetes.as_deref().filter(|auth| auth.config.path == path) {
        return kubernetes::login(&state, auth, &body).await;
    }
    if let Some(auth) = state.cert.as_deref().filter(|auth| auth.path == path) {
        let presented = client.map(|Extension(presented)| presented).unwrap_or_default();
        return cert::login(&state, auth, &presented, &body).await;
    }
    Err(VaultError::NotFound(format!("no handler for route \"auth/{path}/login\"")))
}
