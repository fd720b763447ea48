//! ACME Renewal Information (RFC 9773): when a certificate should be
//! renewed. The window is the later part of the certificate's life, pulled
//! to "now" when the certificate was revoked, its authority retired (a CA
//! rotation), or an operator asked its fleet to renew (renew-all).

use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use super::AcmeState;
use super::problem::AcmeProblem;
use crate::clock::{from_unix, rfc3339};
use crate::issuance::{SanSelector, from_column};
use crate::storage::{AuthorityStatus, CertificateRecord, CertificateStatus, StoreError};

/// Clients ask again after at most this long (RFC 9773 §4.3 suggests hours).
const MAX_RETRY_AFTER_SECONDS: i64 = 6 * 3600;
/// ... and at least this long, so short-lived certificates do not make
/// clients poll.
const MIN_RETRY_AFTER_SECONDS: i64 = 60;

/// The unique identifier of a certificate (RFC 9773 §4.1):
/// base64url(AKI keyIdentifier) "." base64url(serial DER content).
#[derive(Debug, Clone)]
pub struct CertId {
    pub key_identifier: Vec<u8>,
    pub serial: Vec<u8>,
}

impl CertId {
    pub fn parse(text: &str) -> Result<Self, AcmeProblem> {
        let bad = || AcmeProblem::malformed(format!("{text:?} is not an ARI certificate identifier"));
        let (aki, serial) = text.split_once('.').ok_or_else(bad)?;
        let key_identifier = URL_SAFE_NO_PAD.decode(aki).map_err(|_| bad())?;
        let serial = URL_SAFE_NO_PAD.decode(serial).map_err(|_| bad())?;
        if key_identifier.is_empty() || serial.is_empty() {
            return Err(bad());
        }
        Ok(Self { key_identifier, serial })
    }

    /// The certificate it names, if Tessera issued it under that key.
    pub async fn find(&self, state: &AcmeState) -> Result<CertificateRecord, AcmeProblem> {
        let missing = || AcmeProblem::not_found("no certificate has this identifier");
        let certificate = match state.store().certificate(&self.serial).await {
            Ok(c) => c,
            Err(StoreError::NotFound) => return Err(missing()),
            Err(e) => return Err(e.into()),
        };
        let authority = state.store().authority(certificate.authority_id).await?;
        if authority.ski != self.key_identifier || certificate.der.is_none() {
            return Err(missing());
        }
        Ok(certificate)
    }
}

/// `GET /acme/{dir}/renewal-info/{id}` (unauthenticated)
pub async fn renewal_info(
    State(state): State<AcmeState>,
    Path((dir, id)): Path<(String, String)>,
) -> Result<Response, AcmeProblem> {
    state.directory(&dir).ok_or_else(|| AcmeProblem::not_found("no such ACME directory"))?;
    let certificate = CertId::parse(&id)?.find(&state).await?;
    let authority = state.store().authority(certificate.authority_id).await?;
    let now = state.now();
    let renew_now = authority.status != AuthorityStatus::Active || is_pulled(&state, &certificate).await?;
    let (start, end) = suggested_window(&certificate, renew_now, now);
    let body = json!({ "suggestedWindow": { "start": rfc3339(from_unix(start)), "end": rfc3339(from_unix(end)) } });
    let mut response = axum::Json(body).into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after(&certificate)));
    Ok(response)
}

/// A tenth of the certificate's life, within bounds: a window pulled to
/// "now" (a CA rotation, renew-all) reaches a client that honours it well
/// before its ordinary renewal, even when the certificate lives minutes.
fn retry_after(certificate: &CertificateRecord) -> i64 {
    let life = certificate.not_after - certificate.not_before;
    (life / 10).clamp(MIN_RETRY_AFTER_SECONDS, MAX_RETRY_AFTER_SECONDS)
}

/// Whether an operator pulled this certificate's renewal forward: a pull on
/// its authority made after it was issued, whose selector names it.
async fn is_pulled(state: &AcmeState, certificate: &CertificateRecord) -> Result<bool, AcmeProblem> {
    let pulls = state.store().renewal_pulls_since(certificate.authority_id, certificate.created_at).await?;
    if pulls.is_empty() {
        return Ok(false);
    }
    let names = from_column(&certificate.sans);
    Ok(pulls.iter().any(|selector| match selector {
        None => true,
        Some(text) => SanSelector::parse(text).is_ok_and(|s| s.matches(&names)),
    }))
}

/// Renew between two thirds and three quarters of the life; or now when the
/// certificate or its issuer should no longer be relied on, or an operator
/// asked for it. The window closes before the lifecycle's overdue share
/// (80% by default), so a client that renews where ARI says is never
/// reported overdue while it does so.
fn suggested_window(certificate: &CertificateRecord, renew_now: bool, now: i64) -> (i64, i64) {
    let revoked = certificate.status == CertificateStatus::Revoked;
    if revoked || renew_now {
        return (now - 3600, now);
    }
    let life = (certificate.not_after - certificate.not_before).max(0);
    (certificate.not_before + life * 2 / 3, certificate.not_before + life * 3 / 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LifecycleConfig;

    fn certificate(not_before: i64, not_after: i64) -> CertificateRecord {
        CertificateRecord {
            serial: vec![1],
            authority_id: 1,
            not_before,
            not_after,
            created_at: not_before,
            revoked_at: None,
            status: CertificateStatus::Issued,
            kind: crate::storage::CertificateKind::Workload,
            revocation_reason: None,
            subject: None,
            sans: String::new(),
            requester: "acme:1".into(),
            key_type: None,
            policy: None,
            der: None,
        }
    }

    #[test]
    fn the_window_closes_before_a_certificate_is_overdue() {
        let overdue_share = LifecycleConfig::default().overdue_share;
        for life in [100, 180, 86_400, 90 * 86_400] {
            let (start, end) = suggested_window(&certificate(1_000, 1_000 + life), false, 1_000);
            let overdue_at = 1_000 + (life as f64 * overdue_share) as i64;
            assert!(1_000 < start && start < end && end < overdue_at, "life {life}: {start}..{end}, {overdue_at}");
        }
    }

    #[test]
    fn clients_ask_again_well_within_the_life() {
        assert_eq!(retry_after(&certificate(0, 100)), 60);
        assert_eq!(retry_after(&certificate(0, 24 * 3600)), 8640);
        assert_eq!(retry_after(&certificate(0, 90 * 86_400)), 6 * 3600);
    }

    #[test]
    fn a_retired_authority_or_a_pull_means_now() {
        assert_eq!(suggested_window(&certificate(0, 100), true, 50), (50 - 3600, 50));
    }
}
