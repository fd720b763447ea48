//! CRLs and OCSP on the public listeners, with the caching headers relying
//! parties and CDNs act on (RFC 5019 §6 for OCSP).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;

use crate::revocation::Revocation;
use crate::revocation::ocsp::Reply;
use crate::revocation::ocsp::response::error_response;
use crate::storage::{FULL_CRL, StoreError};

/// An OCSP request is a few hundred bytes; anything much larger is not one.
const OCSP_BODY_LIMIT: usize = 16 * 1024;
/// Caches may keep a CRL this long at most, so a revocation reaches them
/// soon even though nextUpdate is far.
const CRL_MAX_AGE: i64 = 60;

pub fn router(revocation: Arc<Revocation>) -> Router {
    Router::new()
        .route("/crl/{file}", get(full_crl))
        .route("/crl/{authority}/{file}", get(shard_crl))
        .route("/ocsp", post(ocsp_post))
        .route("/ocsp/{*request}", get(ocsp_get))
        .layer(DefaultBodyLimit::max(OCSP_BODY_LIMIT))
        .with_state(revocation)
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

fn number_before(file: &str, suffix: &str) -> Option<i64> {
    file.strip_suffix(suffix)?.parse().ok()
}

/// `GET /crl/{id}.crl`: the authority's full CRL.
async fn full_crl(State(revocation): State<Arc<Revocation>>, Path(file): Path<String>, headers: HeaderMap) -> Response {
    match number_before(&file, ".crl") {
        Some(id) => serve_crl(&revocation, id, FULL_CRL, &headers).await,
        None => not_found(),
    }
}

/// `GET /crl/{id}/{shard}.crl`: one shard.
async fn shard_crl(
    State(revocation): State<Arc<Revocation>>,
    Path((authority, file)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    match (authority.parse::<i64>().ok(), number_before(&file, ".crl")) {
        (Some(id), Some(shard)) if (0..=i32::MAX as i64).contains(&shard) => {
            serve_crl(&revocation, id, shard as i32, &headers).await
        }
        _ => not_found(),
    }
}

async fn serve_crl(revocation: &Revocation, authority: i64, shard: i32, headers: &HeaderMap) -> Response {
    let crl = match revocation.stored_crl(authority, shard).await {
        Ok(crl) => crl,
        Err(StoreError::NotFound) => return not_found(),
        Err(e) => {
            tracing::warn!(error = %e, "CRL lookup failed");
            return (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "5")], "unavailable\n").into_response();
        }
    };
    let etag = format!("\"{}-{}\"", crl.authority_id, crl.crl_number);
    let now = revocation.now();
    let max_age = (crl.next_update - now).clamp(0, CRL_MAX_AGE);
    let mut response_headers = HeaderMap::new();
    set(&mut response_headers, header::ETAG, &etag);
    set(&mut response_headers, header::LAST_MODIFIED, &http_date(crl.this_update));
    set(&mut response_headers, header::EXPIRES, &http_date(crl.next_update));
    set(&mut response_headers, header::CACHE_CONTROL, &format!("public, max-age={max_age}, no-transform"));
    if headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(etag.as_str()) {
        return (StatusCode::NOT_MODIFIED, response_headers).into_response();
    }
    set(&mut response_headers, header::CONTENT_TYPE, "application/pkix-crl");
    (response_headers, crl.der).into_response()
}

/// `POST /ocsp` with a DER OCSPRequest body.
async fn ocsp_post(State(revocation): State<Arc<Revocation>>, headers: HeaderMap, body: Bytes) -> Response {
    let reply = revocation.ocsp.answer(&body).await;
    ocsp_response(reply, &headers, revocation.now())
}

/// `GET /ocsp/{base64 of the DER request}` (RFC 5019 §5): cacheable by URL.
async fn ocsp_get(
    State(revocation): State<Arc<Revocation>>,
    Path(encoded): Path<String>,
    headers: HeaderMap,
) -> Response {
    // The path is URL-decoded already; some clients leave '+' and '/' as
    // they are, some percent-encode them, and a few send base64url.
    let trimmed = encoded.trim_matches('/');
    let der = base64::engine::general_purpose::STANDARD
        .decode(trimmed)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(trimmed))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(trimmed));
    let reply = match der {
        Ok(der) => revocation.ocsp.answer(&der).await,
        Err(_) => Reply::Error(x509_ocsp::OcspResponseStatus::MalformedRequest),
    };
    ocsp_response(reply, &headers, revocation.now())
}

fn ocsp_response(reply: Reply, request_headers: &HeaderMap, now: i64) -> Response {
    let mut headers = HeaderMap::new();
    set(&mut headers, header::CONTENT_TYPE, "application/ocsp-response");
    match reply {
        Reply::Cacheable(cached) => {
            let max_age = (cached.next_update - now).max(0);
            set(&mut headers, header::ETAG, &cached.etag);
            set(&mut headers, header::LAST_MODIFIED, &http_date(cached.this_update));
            set(&mut headers, header::EXPIRES, &http_date(cached.next_update));
            set(
                &mut headers,
                header::CACHE_CONTROL,
                &format!("max-age={max_age}, public, no-transform, must-revalidate"),
            );
            if request_headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) == Some(cached.etag.as_str()) {
                headers.remove(header::CONTENT_TYPE);
                return (StatusCode::NOT_MODIFIED, headers).into_response();
            }
            (headers, cached.der.clone()).into_response()
        }
        Reply::Fresh(der) => {
            set(&mut headers, header::CACHE_CONTROL, "no-store");
            (headers, der).into_response()
        }
        Reply::Error(status) => {
            set(&mut headers, header::CACHE_CONTROL, "no-store");
            (headers, error_response(status)).into_response()
        }
    }
}

fn set(headers: &mut HeaderMap, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

/// An IMF-fixdate (RFC 9110 §5.6.7).
fn http_date(unix: i64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    httpdate::fmt_http_date(at)
}
