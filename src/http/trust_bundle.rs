//! `GET /trust-bundle.pem`: what relying parties should trust today, as one
//! PEM file: every root and every issuing CA that has not expired and was
//! not revoked by its root. During a CA rotation it holds both the retired
//! and the new issuing CA, so leaves of either verify with it; it changes
//! only when an authority is added, expires or is revoked.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::PublicState;
use crate::issuance::certificate_pem;

/// Short enough that a rotation reaches caches well before the retired
/// CA's leaves need the successor in the bundle.
const CACHE_CONTROL: &str = "public, max-age=300";

pub async fn trust_bundle(State(state): State<PublicState>, request: HeaderMap) -> Response {
    let certificates = match state.catalog.trusted_authority_certificates(state.clock.unix()).await {
        Ok(certificates) => certificates,
        Err(e) => {
            tracing::warn!(error = %e, "trust bundle lookup failed");
            return (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "5")], "unavailable\n").into_response();
        }
    };
    let bundle: String = certificates.iter().map(|der| certificate_pem(der)).collect();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bundle.as_bytes());
    let etag = format!("\"{}\"", hex::encode(&digest.as_ref()[..16]));
    let Ok(etag_value) = HeaderValue::from_str(&etag) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let headers = [(header::ETAG, etag_value), (header::CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL))];
    let unchanged = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if unchanged {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, [(header::CONTENT_TYPE, "application/pem-certificate-chain")], bundle).into_response()
}
