//! AppRole login (`POST /v1/auth/approle/login`, `{"role_id",
//! "secret_id"}`): a secret id of the AppRole, unexpired and with logins
//! left, buys a token bound to the AppRole's policies. AppRoles and their
//! secret ids are managed through the admin API (`/api/v1/vault/approles`).

use axum::Json;
use serde::Deserialize;
use serde_json::{Value, json};

use super::VaultState;
use super::error::VaultError;
use super::grant::{Grant, mint, refuse};
use crate::token::hash_token;

const METHOD: &str = "approle";
/// Lifetime of the token an AppRole login mints.
const TOKEN_TTL_SECONDS: i64 = 20 * 60;

#[derive(Deserialize)]
struct LoginRequest {
    role_id: String,
    secret_id: String,
}

pub async fn login(state: &VaultState, body: &[u8]) -> Result<Json<Value>, VaultError> {
    let request: LoginRequest = serde_json::from_slice(body).map_err(|_| {
        VaultError::BadRequest("the body must be {\"role_id\": \"...\", \"secret_id\": \"...\"}".into())
    })?;
    let now = state.clock.unix();
    let Some(approle) =
        state.store.use_approle_secret_id(&request.role_id, &hash_token(&request.secret_id), now).await?
    else {
        refuse(state, METHOD, &request.role_id, "unknown role id, or a secret id unknown, expired or used up").await?;
        return Err(VaultError::PermissionDenied);
    };
    let grant = Grant {
        method: METHOD,
        role: &approle.name,
        subject: approle.name.clone(),
        policies: approle.policies,
        ttl: TOKEN_TTL_SECONDS,
        metadata: json!({ "role_name": approle.name }),
    };
    mint(state, grant).await
}
