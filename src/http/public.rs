//! Public routes every relying party may read without credentials: CA
//! certificates (the AIA caIssuers URLs point here) and the trust bundle.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::PublicState;
use super::trust_bundle::trust_bundle;
use crate::clock::SharedClock;
use crate::issuance::certificate_pem;
use crate::storage::{Catalog, StoreError};

/// CA certificates change rarely; let caches keep them for an hour.
const CACHE_CONTROL: &str = "public, max-age=3600";

pub fn router(catalog: Catalog, clock: SharedClock) -> Router {
    Router::new()
        .route("/ca/{file}", get(ca_certificate))
        .route("/trust-bundle.pem", get(trust_bundle))
        .with_state(PublicState { catalog, clock })
}

/// `GET /ca/{id}.cer` (DER, `application/pkix-cert`) or `/ca/{id}.pem`.
async fn ca_certificate(State(PublicState { catalog, .. }): State<PublicState>, Path(file): Path<String>) -> Response {
    let (id, pem) = match (file.strip_suffix(".cer"), file.strip_suffix(".pem")) {
        (Some(id), _) => (id, false),
        (_, Some(id)) => (id, true),
        _ => return (StatusCode::NOT_FOUND, "not found\n").into_response(),
    };
    let Ok(id) = id.parse::<i64>() else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    match catalog.authority(id).await {
        Ok(authority) if pem => (
            [(header::CONTENT_TYPE, "application/x-pem-file"), (header::CACHE_CONTROL, CACHE_CONTROL)],
            certificate_pem(&authority.certificate_der),
        )
            .into_response(),
        Ok(authority) => (
            [(header::CONTENT_TYPE, "application/pkix-cert"), (header::CACHE_CONTROL, CACHE_CONTROL)],
            authority.certificate_der,
        )
            .into_response(),
        Err(StoreError::NotFound) => (StatusCode::NOT_FOUND, "not found\n").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "CA certificate lookup failed");
            (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "5")], "unavailable\n").into_response()
        }
    }
}
