//! `/api/v1/certificates`: sign a CSR under a policy, list, get, revoke.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::{Deserialize, Serialize};

use super::AdminState;
use super::authorities::chain_pem;
use super::extract::{ApiJson, ApiPath, ApiQuery, Authorized, Manage, Read, Sign};
use super::idempotency::{Claim, Idempotency};
use super::pagination::{self, Page};
use super::policies::load_policy;
use super::problem::ApiError;
use crate::authority::parse_ttl;
use crate::clock::{from_unix, rfc3339};
use crate::issuance::{CheckedCsr, CsrError, RevocationReason, Serial, certificate_pem, from_column, leaf_subject};
use crate::policy_issuance::{PolicyIssue, approve, issue_approved};
use crate::storage::{
    CertificateFilter, CertificateKind, CertificateRecord, CertificateStatus, NewAuditEvent, StoreError,
};

const PEM_CHAIN: &str = "application/pem-certificate-chain";

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SignRequest {
    policy: String,
    csr: String,
    #[serde(default)]
    ttl: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct IdentifierView {
    #[serde(rename = "type")]
    kind: &'static str,
    value: String,
}

#[derive(Debug, Serialize)]
pub struct CertificateView {
    serial: String,
    status: &'static str,
    /// `workload`, or `internal` for Tessera's own certificates.
    kind: &'static str,
    authority_id: i64,
    subject: String,
    identifiers: Vec<IdentifierView>,
    not_before: String,
    not_after: String,
    created_at: String,
    policy: Option<String>,
    requester: String,
    key_type: Option<String>,
    revoked_at: Option<String>,
    revocation_reason: Option<&'static str>,
}

impl From<&CertificateRecord> for CertificateView {
    fn from(r: &CertificateRecord) -> Self {
        Self {
            serial: hex::encode(&r.serial),
            status: r.status.as_str(),
            kind: r.kind.as_str(),
            authority_id: r.authority_id,
            subject: r.subject.clone().unwrap_or_else(|| leaf_subject(&from_column(&r.sans))),
            identifiers: from_column(&r.sans)
                .into_iter()
                .map(|id| IdentifierView { kind: id.kind(), value: id.value() })
                .collect(),
            not_before: rfc3339(from_unix(r.not_before)),
            not_after: rfc3339(from_unix(r.not_after)),
            created_at: rfc3339(from_unix(r.created_at)),
            policy: r.policy.clone(),
            requester: r.requester.clone(),
            key_type: r.key_type.clone(),
            revoked_at: r.revoked_at.map(|t| rfc3339(from_unix(t))),
            revocation_reason: r.revocation_reason.and_then(RevocationReason::from_code).map(RevocationReason::as_str),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct IssuedView {
    #[serde(flatten)]
    metadata: CertificateView,
    /// The leaf alone.
    certificate: String,
    /// The leaf followed by the issuing CA chain (not the root).
    chain: String,
    root: String,
}

/// `POST /api/v1/certificates`. With an `Idempotency-Key`, a retry of the
/// same request answers the same certificate (`idempotency.rs`); the key is
/// claimed only once the request has passed every check, so a refused
/// request stores nothing.
pub async fn sign(
    State(state): State<AdminState>,
    Authorized(caller, _): Authorized<Sign>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SignRequest>,
) -> Result<Response, ApiError> {
    let ttl = match &body.ttl {
        Some(text) => Some(
            parse_ttl(text)
                .ok_or_else(|| ApiError::Malformed(format!("ttl {text:?} is not a duration such as 24h or 90m")))?,
        ),
        None => None,
    };
    let idempotency = Idempotency::from_request(&headers, &caller, &body)?;
    // Before the policy is read: a token learns nothing of policies it is
    // not bound to, not even whether they exist.
    caller.require_policy(&state, Some(&body.policy))?;
    let csr = CheckedCsr::parse(&csr_bytes(&body.csr)?)?;
    let policy = load_policy(&state.store, &body.policy).await?;
    let request = PolicyIssue { policy: &policy, csr: &csr, ttl, requester: caller.actor() };
    let approval = approve(&state.metrics, &request)?;
    if let Some(idempotency) = &idempotency
        && let Claim::Replay(serial) = idempotency.claim(&state).await?
    {
        return replay(&state, &serial).await;
    }
    let issued = match issue_approved(&state.issuer, &state.metrics, request, approval).await {
        Ok(issued) => issued,
        Err(e) => {
            if let Some(idempotency) = &idempotency {
                idempotency.release(&state).await;
            }
            return Err(e.into());
        }
    };
    if let Some(idempotency) = &idempotency {
        idempotency.complete(&state, issued.serial.as_bytes()).await;
    }
    let view = IssuedView {
        metadata: CertificateView::from(&issued.record),
        certificate: certificate_pem(&issued.der),
        chain: issued.chain_pem(),
        root: issued.authority.root_pem.clone(),
    };
    Ok(created(&issued.serial.to_hex(), view))
}

/// The answer to an issuance: 201, `Location` naming the certificate.
fn created(serial_hex: &str, view: IssuedView) -> Response {
    let location = format!("/api/v1/certificates/{serial_hex}");
    (StatusCode::CREATED, [(header::LOCATION, location)], axum::Json(view)).into_response()
}

/// The answer an earlier request with the same idempotency key got, read
/// back: the same certificate, chain and root.
async fn replay(state: &AdminState, serial: &[u8]) -> Result<Response, ApiError> {
    let record = state.store.certificate(serial).await?;
    let der = record
        .der
        .as_ref()
        .ok_or_else(|| ApiError::Internal("an idempotency key names a certificate without DER".into()))?;
    let leaf = certificate_pem(der);
    let chain = format!("{leaf}{}", chain_pem(&state.store, record.authority_id, false).await?);
    let view = IssuedView {
        metadata: CertificateView::from(&record),
        certificate: leaf,
        chain,
        root: state.issuer.authority().root_pem.clone(),
    };
    Ok(created(&hex::encode(serial), view))
}

/// A CSR arrives as PEM text or base64 DER.
fn csr_bytes(text: &str) -> Result<Vec<u8>, ApiError> {
    let trimmed = text.trim();
    if trimmed.starts_with("-----BEGIN") {
        return Ok(trimmed.as_bytes().to_vec());
    }
    let engines = [base64::engine::general_purpose::STANDARD, base64::engine::general_purpose::URL_SAFE_NO_PAD];
    engines.iter().find_map(|e| e.decode(trimmed).ok()).ok_or(ApiError::Csr(CsrError::NotPemOrDer))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    status: Option<String>,
    kind: Option<String>,
    authority: Option<i64>,
    san: Option<String>,
    san_suffix: Option<String>,
    spiffe_prefix: Option<String>,
    subject: Option<String>,
    requester: Option<String>,
    expires_before: Option<String>,
    expires_after: Option<String>,
    limit: Option<i64>,
    cursor: Option<String>,
}

/// `GET /api/v1/certificates`: every kind unless `kind` is given; every
/// filter given must hold.
pub async fn list(
    State(state): State<AdminState>,
    _: Authorized<Read>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<axum::Json<Page<CertificateView>>, ApiError> {
    let limit = pagination::limit(query.limit)?;
    let status =
        match &query.status {
            Some(s) => Some(CertificateStatus::parse(s).ok_or_else(|| {
                ApiError::Malformed(format!("status {s:?} is not pending, issued, failed or revoked"))
            })?),
            None => None,
        };
    let san = match &query.san {
        Some(s) => Some(
            crate::issuance::Identifier::guess(s).map_err(|e| ApiError::Malformed(format!("san: {e}")))?.to_tagged(),
        ),
        None => None,
    };
    let kind = match &query.kind {
        Some(k) => Some(
            CertificateKind::parse(k)
                .ok_or_else(|| ApiError::Malformed(format!("kind {k:?} is not workload or internal")))?,
        ),
        None => None,
    };
    let after = pagination::after(query.cursor.as_deref(), parse_certificate_cursor)?;
    let filter = CertificateFilter {
        status,
        kind,
        authority_id: query.authority,
        san,
        dns_suffix: query.san_suffix.as_deref().map(parse_dns_suffix).transpose()?,
        uri_prefix: query.spiffe_prefix.as_deref().map(parse_spiffe_prefix).transpose()?,
        subject: query.subject.as_deref().map(|s| non_empty("subject", s)).transpose()?,
        requester: query.requester.as_deref().map(|r| non_empty("requester", r)).transpose()?,
        expires_before: query.expires_before.as_deref().map(|t| parse_time("expires_before", t)).transpose()?,
        expires_after: query.expires_after.as_deref().map(|t| parse_time("expires_after", t)).transpose()?,
        after,
    };
    let rows = state.store.list_certificates(&filter, limit + 1).await?;
    Ok(axum::Json(pagination::page(
        rows,
        limit,
        |r| format!("{}:{}", r.not_after, hex::encode(&r.serial)),
        |r| CertificateView::from(&r),
    )))
}

/// `san_suffix`: `.payments.internal` and `*.payments.internal` both mean
/// the names under `payments.internal`; the domain is checked as a DNS name
/// is, and kept in the form identifiers are stored in.
fn parse_dns_suffix(text: &str) -> Result<String, ApiError> {
    let domain = text.strip_prefix("*.").or_else(|| text.strip_prefix('.')).unwrap_or(text);
    match crate::issuance::Identifier::dns(domain) {
        Ok(crate::issuance::Identifier::Dns(name)) if !name.starts_with('*') => Ok(name),
        _ => Err(ApiError::Malformed(format!(
            "san_suffix {text:?} is not a DNS domain such as .payments.internal or *.payments.internal"
        ))),
    }
}

/// `spiffe_prefix`: the start of a SPIFFE ID, trust domain included
/// (`spiffe://td/ns/prod/`). ASCII only, as SPIFFE IDs are.
fn parse_spiffe_prefix(text: &str) -> Result<String, ApiError> {
    let has_trust_domain = text.strip_prefix("spiffe://").is_some_and(|rest| !rest.is_empty());
    if !has_trust_domain || !text.is_ascii() || text.chars().any(|c| c.is_ascii_control() || c == ' ') {
        return Err(ApiError::Malformed(format!(
            "spiffe_prefix {text:?} is not the start of a SPIFFE ID such as spiffe://td/ns/prod/"
        )));
    }
    Ok(text.to_owned())
}

fn non_empty(field: &str, text: &str) -> Result<String, ApiError> {
    if text.is_empty() {
        return Err(ApiError::Malformed(format!("{field} is empty")));
    }
    Ok(text.to_owned())
}

/// A certificate listing's position: expiry time and serial.
fn parse_certificate_cursor(text: &str) -> Option<(i64, Vec<u8>)> {
    let (time, serial) = text.split_once(':')?;
    Some((time.parse().ok()?, hex::decode(serial).ok()?))
}

fn parse_time(field: &str, text: &str) -> Result<i64, ApiError> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| ApiError::Malformed(format!("{field}: {text:?} is not an RFC 3339 date-time")))
}

fn parse_serial(text: &str) -> Result<Serial, ApiError> {
    text.parse().map_err(|_| ApiError::Malformed(format!("{text:?} is not a serial number in hex")))
}

/// `GET /api/v1/certificates/{serial}`: JSON, or the PEM chain by `Accept`.
pub async fn get(
    State(state): State<AdminState>,
    _: Authorized<Read>,
    ApiPath(serial): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let serial = parse_serial(&serial)?;
    let record = state.store.certificate(serial.as_bytes()).await.map_err(not_found(&serial))?;
    let wants_pem = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains(PEM_CHAIN) || accept.contains("application/x-pem-file"));
    if !wants_pem {
        return Ok(axum::Json(CertificateView::from(&record)).into_response());
    }
    let der =
        record.der.as_ref().ok_or_else(|| ApiError::NotFound(format!("certificate {serial} was never issued")))?;
    let chain = chain_pem(&state.store, record.authority_id, false).await?;
    Ok(([(header::CONTENT_TYPE, PEM_CHAIN)], format!("{}{chain}", certificate_pem(der))).into_response())
}

fn not_found(serial: &Serial) -> impl FnOnce(StoreError) -> ApiError + '_ {
    move |e| match e {
        StoreError::NotFound => ApiError::NotFound(format!("no certificate with serial {serial}")),
        other => other.into(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /api/v1/certificates/{serial}/revoke`: an operator token revokes
/// only certificates issued under the policies it is bound to.
pub async fn revoke(
    State(state): State<AdminState>,
    Authorized(caller, _): Authorized<Manage>,
    ApiPath(serial): ApiPath<String>,
    ApiJson(body): ApiJson<RevokeRequest>,
) -> Result<axum::Json<CertificateView>, ApiError> {
    let serial = parse_serial(&serial)?;
    let reason = match body.reason.as_deref() {
        None => RevocationReason::Unspecified,
        Some(text) => RevocationReason::parse_for_leaf(text).ok_or_else(|| {
            ApiError::Malformed(format!(
                "reason {text:?} must be one of unspecified, keyCompromise, affiliationChanged, superseded, cessationOfOperation, privilegeWithdrawn"
            ))
        })?,
    };
    let current = state.store.certificate(serial.as_bytes()).await.map_err(not_found(&serial))?;
    if caller.scope.is_bound() {
        caller.require_policy(&state, current.policy.as_deref())?;
    }
    // Tessera's TLS and OCSP responder certificates are replaced by
    // rotation. A CA certificate stays revocable: an issuing CA's
    // compromise is answered on its parent's CRL.
    if current.kind == CertificateKind::Internal
        && !state.store.list_authorities().await?.iter().any(|a| a.serial == current.serial)
    {
        return Err(ApiError::Conflict(format!(
            "certificate {serial} is one of Tessera's own: rotation replaces it, it is not revoked by hand"
        )));
    }
    let audit = NewAuditEvent {
        at: state.clock.unix(),
        actor: caller.actor(),
        action: "certificate.revoke",
        target: serial.to_hex(),
        detail: serde_json::json!({ "reason": reason.as_str() }),
    };
    let revoked = match state.revocation.revoke(serial.as_bytes(), reason, &audit).await {
        Ok(revoked) => revoked,
        Err(StoreError::Conflict(why)) => {
            let current = state.store.certificate(serial.as_bytes()).await?;
            return Err(if current.status == CertificateStatus::Revoked {
                ApiError::AlreadyRevoked(format!("certificate {serial} is already revoked"))
            } else {
                ApiError::Conflict(format!("certificate {serial} cannot be revoked: {why}"))
            });
        }
        Err(other) => return Err(not_found(&serial)(other)),
    };
    for _ in 0..revoked.count() {
        state.metrics.revoked();
    }
    Ok(axum::Json(CertificateView::from(&revoked.certificate)))
}
