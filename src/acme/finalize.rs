//! Finalization (RFC 8555 §7.4): the CSR must name exactly the order's
//! identifiers; the account's policy judges it again; the certificate is
//! issued through `CertificateIssuer::issue_for_acme_order`, the pipeline
//! the REST API issues through. And certificate download (§7.4.2) as
//! `application/pem-certificate-chain`.

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::extract::SignedByAccount;
use super::order::{order_response, owned_order};
use super::problem::{AcmeProblem, ProblemType};
use super::{AcmeState, parse_id};
use crate::issuance::{
    AcmeOrderLink, CheckedCsr, Identifier, IssueError, IssueRequest, Serial, certificate_pem, from_column,
};
use crate::metrics::EcdsaSource;
use crate::storage::{AcmeOrderRecord, CertificateKind, OrderStatus};

const PEM_CHAIN: &str = "application/pem-certificate-chain";

#[derive(Debug, Deserialize)]
struct FinalizePayload {
    csr: String,
}

/// `POST /acme/{dir}/order/{id}/finalize`
pub async fn finalize(
    State(state): State<AcmeState>,
    Path((_, id)): Path<(String, String)>,
    request: SignedByAccount,
) -> Result<Response, AcmeProblem> {
    let started = std::time::Instant::now();
    let SignedByAccount { post, account } = request;
    let (order, authz_ids) = owned_order(&state, &account, parse_id(&id)?).await?;
    let payload: FinalizePayload = post.payload()?;
    let now = state.now();
    if order.status != OrderStatus::Ready || order.expires < now {
        let status = if order.expires < now { "expired" } else { order.status.as_str() };
        return Err(AcmeProblem::new(ProblemType::OrderNotReady, format!("the order is {status}, not ready")));
    }
    let der = URL_SAFE_NO_PAD
        .decode(payload.csr.trim_end_matches('='))
        .map_err(|_| AcmeProblem::new(ProblemType::BadCsr, "the csr is not base64url DER"))?;
    let csr = CheckedCsr::parse_der(&der)?;
    // §11.1: a certificate for the account key would let whoever holds
    // the certificate's key act as the account, and the other way round.
    if *csr.public_key() == account.key.numbers() {
        return Err(AcmeProblem::new(ProblemType::BadCsr, "the CSR's key is the account key; use another key"));
    }
    let requested = csr.requested_names()?;
    let ordered = from_column(&order.identifiers);
    check_names(&requested, &ordered)?;
    let policy = state.policy(&account.record.policy).await?;
    if let Some(high_s) = csr.high_s_signature() {
        state.inner.metrics.ecdsa_signature(EcdsaSource::Csr, policy.name(), high_s);
    }
    let start = order.not_before.map_or(now, |nb| nb.max(now));
    let ttl = order.not_after.map(|na| time::Duration::seconds((na - start).max(60)));
    let approval = policy.approve_names(requested, &csr, ttl)?;

    let issued = state
        .inner
        .issuer
        .issue_for_acme_order(
            &IssueRequest {
                csr: &csr,
                names: approval.names,
                ttl: approval.ttl,
                not_before: order.not_before.map(crate::clock::from_unix),
                requester: account.actor(),
                policy: Some(policy.name().to_owned()),
                kind: CertificateKind::Workload,
            },
            &AcmeOrderLink { order_id: order.id, replaces: order.replaces_serial.as_deref() },
        )
        .await;
    let order = match issued {
        Ok(issued) => {
            state.inner.metrics.issued(started.elapsed());
            // Recorded valid with the certificate, in the same commit.
            AcmeOrderRecord {
                status: OrderStatus::Valid,
                certificate_serial: Some(issued.serial.as_bytes().to_vec()),
                ..order
            }
        }
        // Another request claimed the order first: it is theirs to finish.
        Err(e @ IssueError::OrderNotReady) => return Err(e.into()),
        Err(e) => {
            state.inner.metrics.issuance_failed();
            let problem = AcmeProblem::from(e);
            let stored = problem.to_json().to_string();
            if let Err(store) = state.store().fail_acme_finalize(order.id, &stored).await {
                tracing::warn!(order = order.id, error = %store, "could not mark a failed finalization");
            }
            return Err(problem);
        }
    };
    Ok(order_response(StatusCode::OK, &post.urls, &order, &authz_ids, state.now()))
}

/// The problem an order ends with, as stored, when the node finalizing it
/// stopped before recording its certificate (the lifecycle job that
/// settles interrupted issuance writes it).
pub fn interrupted_finalize_problem() -> String {
    AcmeProblem::new(
        ProblemType::ServerInternal,
        "issuance of this order's certificate was interrupted and no certificate was issued; place a new order",
    )
    .to_json()
    .to_string()
}

/// The CSR must ask for exactly the ordered names: none missing, none extra.
fn check_names(requested: &[Identifier], ordered: &[Identifier]) -> Result<(), AcmeProblem> {
    let missing: Vec<String> = ordered.iter().filter(|id| !requested.contains(id)).map(ToString::to_string).collect();
    let extra: Vec<String> = requested.iter().filter(|id| !ordered.contains(id)).map(ToString::to_string).collect();
    if missing.is_empty() && extra.is_empty() {
        return Ok(());
    }
    let mut detail = String::from("the CSR must name exactly the order's identifiers");
    if !missing.is_empty() {
        detail.push_str(&format!("; missing: {}", missing.join(", ")));
    }
    if !extra.is_empty() {
        detail.push_str(&format!("; not in the order: {}", extra.join(", ")));
    }
    Err(AcmeProblem::new(ProblemType::BadCsr, detail))
}

/// `POST /acme/{dir}/cert/{serial}` (POST-as-GET): the leaf, then the chain.
pub async fn certificate(
    State(state): State<AcmeState>,
    Path((_, serial)): Path<(String, String)>,
    request: SignedByAccount,
) -> Result<Response, AcmeProblem> {
    let SignedByAccount { account, .. } = request;
    let serial: Serial = serial.parse().map_err(|_| AcmeProblem::not_found("no such certificate"))?;
    let (record, owner) = state
        .inner
        .certificates
        .get(serial.as_bytes().to_vec())
        .await?
        .ok_or_else(|| AcmeProblem::not_found("no such certificate"))?;
    if owner != account.id() {
        return Err(AcmeProblem::unauthorized("the certificate belongs to another account"));
    }
    let der = record.der.ok_or_else(|| AcmeProblem::not_found("no such certificate"))?;
    let authority = state.inner.issuer.authority();
    let chain = if record.authority_id == authority.id {
        authority.chain_pem.clone()
    } else {
        certificate_pem(&state.store().authority(record.authority_id).await?.certificate_der)
    };
    Ok(([(header::CONTENT_TYPE, PEM_CHAIN)], format!("{}{chain}", certificate_pem(&der))).into_response())
}
