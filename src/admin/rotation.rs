//! `/api/v1/authorities/{id}/rotate` and `/renew-all`: an operator's levers
//! over a fleet's lifecycle. Rotation makes a successor issuing CA at once
//! (the job does it on schedule); renew-all pulls the ACME renewal window of
//! an authority's certificates, all or those a SAN selector names, to now.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::AdminState;
use super::authorities::AuthorityView;
use super::extract::{ApiJson, ApiPath, Authorized, Manage};
use super::problem::ApiError;
use crate::clock::{from_unix, rfc3339};
use crate::issuance::{SanSelector, from_column};
use crate::storage::{NewAuditEvent, StoreError};

/// `POST /api/v1/authorities/{id}/rotate`: the successor, 201.
pub async fn rotate(
    State(state): State<AdminState>,
    Authorized(caller, _): Authorized<Manage>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response, ApiError> {
    let successor = state.rotation.rotate(id, &caller.actor()).await?;
    let location = format!("/api/v1/authorities/{}", successor.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], axum::Json(AuthorityView::from(successor)))
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewAllRequest {
    /// An identifier, or `*.suffix` for DNS names below it; absent: all.
    san: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RenewAllView {
    authority_id: i64,
    /// The selector as stored (`dns:*.example.com`), or null for all.
    san: Option<String>,
    /// Issued, unexpired certificates whose renewal window is now.
    affected: usize,
    renew_from: String,
}

/// `POST /api/v1/authorities/{id}/renew-all`
pub async fn renew_all(
    State(state): State<AdminState>,
    Authorized(caller, _): Authorized<Manage>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<RenewAllRequest>,
) -> Result<axum::Json<RenewAllView>, ApiError> {
    let selector = match &body.san {
        Some(text) => Some(
            SanSelector::parse(text)
                .map_err(|e| ApiError::Malformed(format!("san: {e}; use a name, an address, a URI or *.suffix")))?,
        ),
        None => None,
    };
    state.store.authority(id).await.map_err(|e| match e {
        StoreError::NotFound => ApiError::NotFound(format!("no authority with id {id}")),
        other => other.into(),
    })?;
    let now = state.clock.unix();
    let fragment = selector.as_ref().map(SanSelector::column_fragment);
    let candidates = state.store.live_certificate_sans(id, now, fragment.as_deref()).await?;
    let affected = match &selector {
        Some(selector) => candidates.iter().filter(|sans| selector.matches(&from_column(sans))).count(),
        None => candidates.len(),
    };
    let stored = selector.as_ref().map(ToString::to_string);
    let audit = NewAuditEvent {
        at: now,
        actor: caller.actor(),
        action: "certificate.renew_all",
        target: format!("authority:{id}"),
        detail: serde_json::json!({ "san": stored, "affected": affected }),
    };
    state.store.insert_renewal_pull(id, stored.as_deref(), &audit).await?;
    Ok(axum::Json(RenewAllView { authority_id: id, san: stored, affected, renew_from: rfc3339(from_unix(now)) }))
}
