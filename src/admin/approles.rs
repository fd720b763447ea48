//! `/api/v1/vault/approles`: AppRoles for the Vault-compatible API's
//! AppRole login. An AppRole names the policies its logins' tokens are
//! bound to; its secret ids are shown once and stored hashed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::AdminState;
use super::extract::{AdminOnly, ApiJson, ApiPath, Authorized};
use super::policies::load_policy;
use super::problem::ApiError;
use crate::authority::{is_policy_name, parse_ttl};
use crate::clock::{from_unix, rfc3339};
use crate::storage::{ApproleRecord, NewApprole, NewAuditEvent, StoreError};
use crate::token::NewToken;

/// Most policies one AppRole may grant, as for a token.
const MAX_POLICIES: usize = 64;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    name: String,
    policies: Vec<String>,
    /// How long each secret id lives, such as `24h`; unset: until used up.
    #[serde(default)]
    secret_id_ttl: Option<String>,
    /// Logins each secret id allows; unset: any number.
    #[serde(default)]
    secret_id_num_uses: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct ApproleView {
    name: String,
    role_id: String,
    policies: Vec<String>,
    secret_id_ttl_seconds: Option<i64>,
    secret_id_num_uses: Option<i64>,
    created_at: String,
}

impl From<ApproleRecord> for ApproleView {
    fn from(r: ApproleRecord) -> Self {
        Self {
            name: r.name,
            role_id: r.role_id,
            policies: r.policies,
            secret_id_ttl_seconds: r.secret_id_ttl,
            secret_id_num_uses: r.secret_id_num_uses,
            created_at: rfc3339(from_unix(r.created_at)),
        }
    }
}

/// `POST /api/v1/vault/approles`
pub async fn create(
    State(state): State<AdminState>,
    Authorized(caller, _): Authorized<AdminOnly>,
    ApiJson(body): ApiJson<CreateRequest>,
) -> Result<Response, ApiError> {
    if !is_policy_name(&body.name) {
        return Err(ApiError::Malformed(format!(
            "AppRole name {:?} must be 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit",
            body.name
        )));
    }
    let mut policies = body.policies.clone();
    policies.sort();
    policies.dedup();
    if policies.is_empty() || policies.len() > MAX_POLICIES {
        return Err(ApiError::Malformed(format!("an AppRole grants 1 to {MAX_POLICIES} policies")));
    }
    for policy in &policies {
        load_policy(&state.store, policy).await.map_err(|e| match e {
            ApiError::NotFound(m) => ApiError::Malformed(m),
            other => other,
        })?;
    }
    let secret_id_ttl = match &body.secret_id_ttl {
        Some(text) => Some(
            parse_ttl(text)
                .ok_or_else(|| ApiError::Malformed(format!("secret_id_ttl {text:?} is not a duration such as 24h")))?
                .whole_seconds(),
        ),
        None => None,
    };
    if body.secret_id_num_uses.is_some_and(|n| !(1..=1_000_000).contains(&n)) {
        return Err(ApiError::Malformed("secret_id_num_uses must be from 1 to 1000000".into()));
    }
    let role_id = format!("role-{}", URL_SAFE_NO_PAD.encode(random_id()?));
    let now = state.clock.unix();
    let new = NewApprole {
        name: &body.name,
        role_id: &role_id,
        policies: &policies,
        secret_id_ttl,
        secret_id_num_uses: body.secret_id_num_uses,
        created_at: now,
    };
    let audit = NewAuditEvent {
        at: now,
        actor: caller.actor(),
        action: "vault-approle.create",
        target: body.name.clone(),
        detail: serde_json::json!({ "policies": policies, "secret_id_ttl": secret_id_ttl, "secret_id_num_uses": body.secret_id_num_uses }),
    };
    state.store.insert_approle(&new, &audit).await.map_err(|e| match e {
        StoreError::Conflict(_) => ApiError::Conflict(format!("an AppRole named {:?} already exists", body.name)),
        other => other.into(),
    })?;
    let record = state.store.approle(&body.name).await?;
    Ok((StatusCode::CREATED, axum::Json(ApproleView::from(record))).into_response())
}

#[derive(Debug, Serialize)]
pub struct SecretIdView {
    /// Shown once; only its hash is stored.
    secret_id: String,
    expires_at: Option<String>,
    uses: Option<i64>,
}

/// `POST /api/v1/vault/approles/{name}/secret-ids`
pub async fn create_secret_id(
    State(state): State<AdminState>,
    Authorized(caller, _): Authorized<AdminOnly>,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    let approle = state.store.approle(&name).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::NotFound(format!("no AppRole named {name:?}")),
        other => other.into(),
    })?;
    let secret = NewToken::generate().map_err(|_| ApiError::Internal("the random generator failed".into()))?;
    let now = state.clock.unix();
    let expires_at = approle.secret_id_ttl.map(|ttl| now + ttl);
    let audit = NewAuditEvent {
        at: now,
        actor: caller.actor(),
        action: "vault-approle.secret-id.create",
        target: approle.name.clone(),
        detail: serde_json::json!({ "expires_at": expires_at.map(|t| rfc3339(from_unix(t))), "uses": approle.secret_id_num_uses }),
    };
    state
        .store
        .insert_approle_secret_id(approle.id, &secret.hash, now, expires_at, approle.secret_id_num_uses, &audit)
        .await?;
    let view = SecretIdView {
        secret_id: secret.secret.expose_secret().to_owned(),
        expires_at: expires_at.map(|t| rfc3339(from_unix(t))),
        uses: approle.secret_id_num_uses,
    };
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

fn random_id() -> Result<[u8; 12], ApiError> {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 12];
    SystemRandom::new().fill(&mut bytes).map_err(|_| ApiError::Internal("the random generator failed".into()))?;
    Ok(bytes)
}
