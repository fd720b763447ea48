//! The directory (RFC 8555 §7.1.1) and newNonce (§7.2).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::problem::AcmeProblem;
use super::{AcmeState, Urls, request_host};

/// `GET /acme/{dir}/directory`
pub async fn directory(
    State(state): State<AcmeState>,
    Path(name): Path<String>,
    parts: Parts,
) -> Result<Response, AcmeProblem> {
    let settings = state.directory(&name).ok_or_else(|| AcmeProblem::not_found("no such ACME directory"))?;
    let host = request_host(&parts).ok_or_else(|| AcmeProblem::malformed("the request has no Host"))?;
    let urls = Urls::new(&host, &name);
    let mut meta = json!({ "externalAccountRequired": settings.eab_required });
    if let Some(tos) = &settings.terms_of_service {
        meta["termsOfService"] = json!(tos);
    }
    let body = json!({
        "newNonce": urls.path("new-nonce"),
        "newAccount": urls.path("new-account"),
        "newOrder": urls.path("new-order"),
        "revokeCert": urls.path("revoke-cert"),
        "keyChange": urls.path("key-change"),
        "renewalInfo": urls.path("renewal-info"),
        "meta": meta,
    });
    Ok(axum::Json(body).into_response())
}

/// `HEAD /acme/{dir}/new-nonce`: 200, the nonce is in the header.
pub async fn new_nonce_head(
    State(state): State<AcmeState>,
    Path(name): Path<String>,
) -> Result<StatusCode, AcmeProblem> {
    state.directory(&name).ok_or_else(|| AcmeProblem::not_found("no such ACME directory"))?;
    Ok(StatusCode::OK)
}

/// `GET /acme/{dir}/new-nonce`: 204 (§7.2).
pub async fn new_nonce_get(
    State(state): State<AcmeState>,
    Path(name): Path<String>,
) -> Result<StatusCode, AcmeProblem> {
    state.directory(&name).ok_or_else(|| AcmeProblem::not_found("no such ACME directory"))?;
    Ok(StatusCode::NO_CONTENT)
}
