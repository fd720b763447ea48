//! `/api/v1/tokens`: who may call the admin API.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::AdminState;
use super::extract::{AdminOnly, ApiJson, ApiPath, ApiQuery, Authorized};
use super::pagination::{self, Page};
use super::problem::ApiError;
use super::token::{Scope, create_token};
use crate::clock::{from_unix, rfc3339};
use crate::storage::{NewAuditEvent, StoreError, TokenRecord};

#[derive(Debug, Serialize)]
pub struct TokenView {
    id: i64,
    name: String,
    scope: String,
    created_at: String,
    revoked_at: Option<String>,
}

impl From<TokenRecord> for TokenView {
    fn from(r: TokenRecord) -> Self {
        Self {
            id: r.id,
            name: r.name,
            scope: r.scope,
            created_at: rfc3339(from_unix(r.created_at)),
            revoked_at: r.revoked_at.map(|t| rfc3339(from_unix(t))),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    name: String,
    scope: Scope,
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
    let after = match &query.cursor {
        Some(c) => {
            Some(pagination::decode_cursor(c)?.parse::<i64>().map_err(|_| ApiError::Malformed("bad cursor".into()))?)
        }
        None => None,
    };
    let rows = state.db.list_tokens(after, limit + 1).await?;
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
    let (record, secret) = create_token(&state.db, name, body.scope, &caller.actor(), state.clock.unix()).await?;
    let view = NewTokenView { metadata: TokenView::from(record), token: secret.expose_secret().to_owned() };
    Ok((StatusCode::CREATED, axum::Json(view)).into_response())
}

/// `POST /api/v1/tokens/{id}/revoke`
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
    let record = state.db.revoke_token(id, now, &audit).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::NotFound(format!("no token with id {id}")),
        StoreError::Conflict(_) => ApiError::Conflict(format!("token {id} is already revoked")),
        other => other.into(),
    })?;
    Ok(axum::Json(TokenView::from(record)))
}
