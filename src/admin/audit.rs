//! `/api/v1/audit-events`: the record of every change, newest first.

use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::AdminState;
use super::extract::{ApiQuery, Authorized, Read};
use super::pagination::{self, Page};
use super::problem::ApiError;
use crate::clock::{from_unix, rfc3339};
use crate::storage::{AuditEvent, AuditFilter};

#[derive(Debug, Serialize)]
pub struct AuditEventView {
    id: i64,
    at: String,
    actor: String,
    action: String,
    target: String,
    detail: serde_json::Value,
}

impl From<AuditEvent> for AuditEventView {
    fn from(e: AuditEvent) -> Self {
        Self {
            id: e.id,
            at: rfc3339(from_unix(e.at)),
            actor: e.actor,
            action: e.action,
            target: e.target,
            detail: serde_json::from_str(&e.detail).unwrap_or(serde_json::Value::Null),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    action: Option<String>,
    target: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /api/v1/audit-events`
pub async fn list(
    State(state): State<AdminState>,
    _: Authorized<Read>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<axum::Json<Page<AuditEventView>>, ApiError> {
    let limit = pagination::limit(query.limit)?;
    let before_id = pagination::after_id(query.cursor.as_deref())?;
    let filter = AuditFilter { action: query.action, target: query.target, before_id };
    let rows = state.store.list_audit_events(&filter, limit + 1).await?;
    Ok(axum::Json(pagination::page(rows, limit, |r| r.id.to_string(), AuditEventView::from)))
}
