//! `/api/v1/tokens`: who may call the admin API.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::AdminState;
use super::extract::stored_scope;
use super::extract::{AdminOnly, ApiJson, ApiPath, ApiQuery, Authorized};
use super::pagination::{self, Page};
use super::problem::ApiError;
use crate::clock::{from_unix, rfc3339};
use crate::storage::{NewAuditEvent, TokenRecord};
use crate::token::{Bindings, Scope, TokenRequest, create_token};

#[derive(Debug, Serialize)]
pub struct TokenView {
    id: i64,
    name: String,
    scope: String,
    /// The policies an issuer or operator token may use; absent for admin
    /// tokens (every policy) and auditor tokens (none).
    #[serde(skip_serializing_if = "Option::is_none")]
    policies: Option<Vec<String>>,
    created_at: String,
    expires_at: Option<String>,
    revoked_at: Option<String>,
}

impl From<TokenRecord> for TokenView {
    fn from(r: TokenRecord) -> Self {
        let is_bound = Scope::parse(&r.scope).is_some_and(Scope::is_bound);
        Self {
            id: r.id,
            name: r.name,
            scope: r.scope,
            policies: is_bound.then_some(r.policies),
            created_at: rfc3339(from_unix(r.created_at)),
            expires_at: r.expires_at.map(|t| rfc3339(from_unix(t))),
            revoked_at: r.revoked_at.map(|t| rfc3339(from_unix(t))),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    name: String,
    scope: Scope,
    #[serde(default)]
    policies: Option<Vec<String>>,
    /// RFC 3339; absent: the token does not expire.
    #[serde(default)]
    expires_at: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindRequest {
    policies: Vec<String>,
}

#[derive(Serialize)]
struct NewTokenView {
    #[serde(flatten)]
    metadata: TokenView,
    /// Shown once; only its hash is kept.
    token: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /api/v1/tokens`
pub async fn list(
    State(state): State<AdminState>,
    _: Authorized<AdminOnly>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<axum::Json<Page<TokenView>>, ApiError> {
    let limit = pagination::limit(query.limit)?;
    let after = pagination::after_id(query.cursor.as_deref())?;
    let rows = state.store.list_tokens(after, limit + 1).await?;
    Ok(axum::Json(pagination::page(rows, limit, |r| r.id.to_string(), TokenView::from)))
}

/// `POST /api/v1/tokens`
pub async fn create(
    State(state): State<AdminState>,
    Authorized(caller, _): Authorized<AdminOnly>,
    ApiJson(body): ApiJson<CreateRequest>,
) -> Result<Response, ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::Malformed("name must be 1-100 printable characters".into()));
    }
    let now = state.clock.unix();
    let expires_at = body.expires_at.as_deref().map(|text| expiry(text, now)).transpose()?;
    let request =
        TokenRequest { name, scope: body.scope, bindings: Bindings::for_scope(body.scope, body.policies)?, expires_at };
    let (record, secret) = create_token(&state.store, &request, &caller.actor(), now).await?;
    let view = NewTokenView { metadata: TokenView::from(record), token: secret.expose_secret().to_owned() };
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

/// An expiry in the future, as Unix seconds.
fn expiry(text: &str, now: i64) -> Result<i64, ApiError> {
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| ApiError::Malformed(format!("expires_at: {text:?} is not an RFC 3339 date-time")))?
        .unix_timestamp();
    if at <= now {
        return Err(ApiError::Malformed(format!("expires_at: {text:?} is not in the future")));
    }
    Ok(at)
}

/// `PUT /api/v1/tokens/{id}/policies`: replaces the policies an issuer or
/// operator token is bound to; how tokens made before bindings existed are
/// given theirs.
pub async fn bind(
    State(state): State<AdminState>,
    Authorized(caller, _): Authorized<AdminOnly>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<BindRequest>,
) -> Result<axum::Json<TokenView>, ApiError> {
    let token = state.store.token(id).await?;
    let bindings = Bindings::for_scope(stored_scope(&token)?, Some(body.policies))?;
    let now = state.clock.unix();
    let audit = NewAuditEvent {
        at: now,
        actor: caller.actor(),
        action: "token.bind",
        target: token.name,
        detail: serde_json::json!({ "id": id, "policies": bindings.names() }),
    };
    let record = state.store.replace_token_policies(id, bindings.names(), now, &audit).await?;
    Ok(axum::Json(TokenView::from(record)))
}

/// `POST /api/v1/tokens/{id}/revoke`: takes effect at the next request.
/// The last admin token without an expiry cannot be revoked (409).
pub async fn revoke(
    State(state): State<AdminState>,
    Authorized(caller, _): Authorized<AdminOnly>,
    ApiPath(id): ApiPath<i64>,
) -> Result<axum::Json<TokenView>, ApiError> {
    let now = state.clock.unix();
    let audit = NewAuditEvent {
        at: now,
        actor: caller.actor(),
        action: "token.revoke",
        target: id.to_string(),
        detail: serde_json::json!({}),
    };
    let record = state.store.revoke_token(id, now, &audit).await?;
    Ok(axum::Json(TokenView::from(record)))
}
