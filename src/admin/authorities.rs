//! `/api/v1/authorities`: the CAs, their keys' custodians and their chains.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};

use super::AdminState;
use super::extract::{ApiPath, ApiQuery, Authorized, Manage, Read};
use super::pagination::{self, Page};
use super::problem::ApiError;
use crate::clock::{from_unix, rfc3339};
use crate::issuance::certificate_pem;
use crate::keys::{KeyUri, redact_pins};
use crate::storage::{AuthorityRecord, Catalog, FULL_CRL, NewAuditEvent, StoreError};

#[derive(Debug, Serialize)]
pub struct AuthorityView {
    id: i64,
    name: String,
    kind: String,
    parent_id: Option<i64>,
    key_uri: String,
    custody: &'static str,
    algorithm: String,
    subject: String,
    serial: String,
    ski: String,
    not_before: String,
    not_after: String,
    status: String,
    certificate: String,
}

impl From<AuthorityRecord> for AuthorityView {
    fn from(r: AuthorityRecord) -> Self {
        let custody = match r.key_uri.parse::<KeyUri>() {
            Ok(KeyUri::File(_)) => "file",
            Ok(KeyUri::Pkcs11(_)) => "pkcs11",
            Ok(KeyUri::AwsKms(_)) => "awskms",
            Ok(KeyUri::Sealed(_)) => "sealed",
            Ok(KeyUri::Memory(_)) | Err(_) => "unknown",
        };
        Self {
            id: r.id,
            custody,
            certificate: certificate_pem(&r.certificate_der),
            name: r.name,
            kind: r.kind,
            parent_id: r.parent_id,
            key_uri: redact_pins(&r.key_uri).into_owned(),
            algorithm: r.algorithm,
            subject: r.subject,
            serial: hex::encode(&r.serial),
            ski: hex::encode(&r.ski),
            not_before: rfc3339(from_unix(r.not_before)),
            not_after: rfc3339(from_unix(r.not_after)),
            status: r.status.to_string(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /api/v1/authorities`
pub async fn list(
    State(state): State<AdminState>,
    _: Authorized<Read>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<axum::Json<Page<AuthorityView>>, ApiError> {
    let limit = pagination::limit(query.limit)?;
    let after = pagination::after_id(query.cursor.as_deref())?.unwrap_or(0);
    // A deployment has a handful of authorities: filter in memory.
    let rows: Vec<_> = state.store.list_authorities().await?.into_iter().filter(|a| a.id > after).collect();
    Ok(axum::Json(pagination::page(rows, limit, |r| r.id.to_string(), AuthorityView::from)))
}

/// `GET /api/v1/authorities/{id}`
pub async fn get(
    State(state): State<AdminState>,
    _: Authorized<Read>,
    ApiPath(id): ApiPath<i64>,
) -> Result<axum::Json<AuthorityView>, ApiError> {
    let record = state.store.authority(id).await.map_err(|e| missing(id, e))?;
    Ok(axum::Json(AuthorityView::from(record)))
}

/// `GET /api/v1/authorities/{id}/chain`: the authority's certificate and
/// its parents, up to and including the root.
pub async fn chain(
    State(state): State<AdminState>,
    _: Authorized<Read>,
    ApiPath(id): ApiPath<i64>,
) -> Result<impl IntoResponse, ApiError> {
    let pem = chain_pem(&state.store, id, true).await?;
    Ok(([(header::CONTENT_TYPE, "application/pem-certificate-chain")], pem))
}

/// PEM of authority `id` and its parents; the root only when asked for.
pub async fn chain_pem(catalog: &Catalog, id: i64, include_root: bool) -> Result<String, ApiError> {
    let authorities = catalog.list_authorities().await?;
    let mut out = String::new();
    let mut current = authorities.iter().find(|a| a.id == id);
    if current.is_none() {
        return Err(ApiError::NotFound(format!("no authority with id {id}")));
    }
    while let Some(authority) = current {
        if authority.parent_id.is_some() || include_root {
            out.push_str(&certificate_pem(&authority.certificate_der));
        }
        current = authority.parent_id.and_then(|p| authorities.iter().find(|a| a.id == p));
    }
    Ok(out)
}

#[derive(Debug, Serialize)]
pub struct CrlView {
    authority_id: i64,
    /// `full`, or the shard number.
    scope: String,
    crl_number: i64,
    this_update: String,
    next_update: String,
    entries: i64,
}

/// `POST /api/v1/authorities/{id}/crl`: signs the authority's CRLs now.
pub async fn publish_crl(
    State(state): State<AdminState>,
    Authorized(caller, _): Authorized<Manage>,
    ApiPath(id): ApiPath<i64>,
) -> Result<axum::Json<Vec<CrlView>>, ApiError> {
    state.store.authority(id).await.map_err(|e| missing(id, e))?;
    let published = state.revocation.publish_crls(Some(id)).await?;
    audit(&state, &caller.actor(), "crl.publish", id).await?;
    Ok(axum::Json(
        published
            .into_iter()
            .map(|crl| CrlView {
                authority_id: crl.authority_id,
                scope: if crl.shard == FULL_CRL { "full".into() } else { crl.shard.to_string() },
                crl_number: crl.crl_number,
                this_update: rfc3339(from_unix(crl.this_update)),
                next_update: rfc3339(from_unix(crl.next_update)),
                entries: crl.entries,
            })
            .collect(),
    ))
}

/// `POST /api/v1/authorities/{id}/ocsp-responder/rotate`: replaces the
/// delegated OCSP responder key and certificate now.
pub async fn rotate_ocsp_responder(
    State(state): State<AdminState>,
    Authorized(caller, _): Authorized<Manage>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    state.store.authority(id).await.map_err(|e| missing(id, e))?;
    state.revocation.rotate_ocsp_key(id).await?;
    audit(&state, &caller.actor(), "ocsp_responder.rotate", id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn audit(state: &AdminState, actor: &str, action: &'static str, id: i64) -> Result<(), ApiError> {
    let event = NewAuditEvent {
        at: state.clock.unix(),
        actor: actor.to_owned(),
        action,
        target: format!("authority:{id}"),
        detail: serde_json::json!({}),
    };
    Ok(state.store.record_audit(&event).await?)
}

fn missing(id: i64, e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::NotFound(format!("no authority with id {id}")),
        other => other.into(),
    }
}
