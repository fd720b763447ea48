//! revokeCert (RFC 8555 §7.6): signed by the account that ordered the
//! certificate, by an account that holds valid authorizations for all its
//! identifiers, or by the certificate's own key. A request signed by the
//! certificate's key proves that someone other than its subscriber may hold
//! it, so it revokes for keyCompromise whatever reason it names (as
//! Boulder does), which blocks the key. An account that only controls the
//! names revokes for cessationOfOperation (the subscriber no longer holds
//! them), never keyCompromise: it has not shown the key, and would block
//! another subscriber's key. Revocation goes through
//! `Revocation::revoke`, the path of the admin API, so CRL and OCSP see it
//! and a compromised key's other certificates are revoked with it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::json;
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use super::AcmeState;
use super::extract::{SignedByEither, Signer};
use super::jws::{Curve, Jwk};
use super::problem::{AcmeProblem, ProblemType};
use crate::issuance::{Identifier, RevocationReason, from_column};
use crate::storage::{CertificateRecord, NewAuditEvent, StoreError};

#[derive(Debug, Deserialize)]
struct RevokePayload {
    certificate: String,
    #[serde(default)]
    reason: Option<i16>,
}

/// `POST /acme/{dir}/revoke-cert`
pub async fn revoke_certificate(
    State(state): State<AcmeState>,
    request: SignedByEither,
) -> Result<Response, AcmeProblem> {
    let SignedByEither { post, signer } = request;
    let payload: RevokePayload = post.payload()?;
    let der = URL_SAFE_NO_PAD
        .decode(payload.certificate.trim_end_matches('='))
        .map_err(|_| AcmeProblem::malformed("certificate is not base64url DER"))?;
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(&der)
        .map_err(|_| AcmeProblem::malformed("certificate is not a DER X.509 certificate"))?;
    let serial = parsed.raw_serial().to_vec();
    let unknown = || AcmeProblem::not_found("Tessera did not issue this certificate");
    let record = match state.store().certificate(&serial).await {
        Ok(record) => record,
        Err(StoreError::NotFound) => return Err(unknown()),
        Err(e) => return Err(e.into()),
    };
    if record.der.as_deref() != Some(der.as_slice()) {
        return Err(unknown());
    }
    let requested = match payload.reason {
        None => RevocationReason::Unspecified,
        Some(code) => RevocationReason::from_code(code)
            .filter(|r| RevocationReason::parse_for_leaf(r.as_str()).is_some())
            .ok_or_else(|| {
                AcmeProblem::new(ProblemType::BadRevocationReason, format!("revocation reason {code} is not accepted"))
            })?,
    };
    let (actor, reason) = match &signer {
        Signer::Account(account) => {
            let owner = state.store().acme_order_for_certificate(&serial).await?;
            if owner.is_some_and(|o| o.account_id == account.id()) {
                (account.actor(), requested)
            } else if holds_authorizations(&state, account.id(), &record).await? {
                (account.actor(), RevocationReason::CessationOfOperation)
            } else {
                return Err(AcmeProblem::unauthorized(
                    "the account neither ordered this certificate nor holds authorizations for all its identifiers",
                ));
            }
        }
        Signer::Key(key) => {
            if certificate_key(&parsed).as_ref() != Some(key) {
                return Err(AcmeProblem::unauthorized("the request is not signed by the certificate's key"));
            }
            ("acme:certificate-key".to_owned(), RevocationReason::KeyCompromise)
        }
    };
    let audit = NewAuditEvent {
        at: state.now(),
        actor,
        action: "certificate.revoke",
        target: hex::encode(&serial),
        detail: json!({ "reason": reason.as_str(), "via": "acme", "directory": post.directory.name }),
    };
    let revoked = match state.inner.revocation.revoke(&serial, reason, &audit).await {
        Ok(revoked) => revoked,
        Err(StoreError::Conflict(_)) => {
            return Err(AcmeProblem::new(ProblemType::AlreadyRevoked, "the certificate is already revoked"));
        }
        Err(e) => return Err(e.into()),
    };
    for _ in 0..revoked.count() {
        state.inner.metrics.revoked();
    }
    Ok(StatusCode::OK.into_response())
}

/// Whether the account holds valid authorizations for every identifier of
/// the certificate (a wildcard's for its base name). A certificate without
/// identifiers is no one's to revoke this way.
async fn holds_authorizations(
    state: &AcmeState,
    account_id: i64,
    certificate: &CertificateRecord,
) -> Result<bool, AcmeProblem> {
    let identifiers = from_column(&certificate.sans);
    if identifiers.is_empty() {
        return Ok(false);
    }
    let now = state.now();
    for identifier in identifiers {
        let bare = match identifier {
            Identifier::Dns(name) => Identifier::Dns(name.strip_prefix("*.").unwrap_or(&name).to_owned()),
            other => other,
        };
        if !state.store().acme_account_holds_authorization(account_id, &bare.to_tagged(), now).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The certificate's public key in the JWK form a request would carry.
fn certificate_key(certificate: &x509_parser::certificate::X509Certificate<'_>) -> Option<Jwk> {
    let spki = certificate.public_key();
    match spki.parsed().ok()? {
        PublicKey::RSA(rsa) => {
            let strip = |b: &[u8]| b.iter().copied().skip_while(|x| *x == 0).collect::<Vec<u8>>();
            Some(Jwk::Rsa { n: strip(rsa.modulus), e: strip(rsa.exponent) })
        }
        PublicKey::EC(point) => {
            let data = point.data();
            let (curve, size) = match data.len() {
                65 => (Curve::P256, 32),
                97 => (Curve::P384, 48),
                _ => return None,
            };
            (data.first() == Some(&4)).then(|| Jwk::Ec {
                curve,
                x: data[1..1 + size].to_vec(),
                y: data[1 + size..].to_vec(),
            })
        }
        _ if spki.algorithm.algorithm == x509_parser::oid_registry::OID_SIG_ED25519 => {
            Some(Jwk::Ed25519 { x: spki.subject_public_key.data.to_vec() })
        }
        _ => None,
    }
}
