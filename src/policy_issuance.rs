//! Signing a CSR under a named policy: the one road the REST admin API and
//! the Vault-compatible API take to a certificate, so both judge names, key
//! types and lifetimes alike, count the same metrics and end in the same
//! pipeline (pending serial, signature, record, audit, expiry tracking,
//! CRL and OCSP). ACME reaches the issuer through its orders instead.

use std::time::Instant;

use time::Duration;

use crate::authority::{Approval, Policy, PolicyError, PolicyRules};
use crate::issuance::{CertificateIssuer, CheckedCsr, CsrError, IssueError, IssueRequest, IssuedCertificate};
use crate::metrics::{EcdsaSource, Metrics};
use crate::storage::{Catalog, CertificateKind, StoreError};

/// Why a stored policy cannot judge a request.
#[derive(Debug, thiserror::Error)]
pub enum StoredPolicyError {
    #[error("no policy named {0:?}")]
    NotFound(String),
    #[error(transparent)]
    Store(StoreError),
    /// The stored rules no longer read as a policy (a bug or a hand edit).
    #[error("stored policy {name:?} is invalid: {reason}")]
    Invalid { name: String, reason: String },
}

/// The named policy as stored, ready to judge a request.
pub async fn stored_policy(catalog: &Catalog, name: &str) -> Result<Policy, StoredPolicyError> {
    let record = catalog.policy(name).await.map_err(|e| match e {
        StoreError::NotFound => StoredPolicyError::NotFound(name.to_owned()),
        other => StoredPolicyError::Store(other),
    })?;
    let invalid = |reason: String| StoredPolicyError::Invalid { name: name.to_owned(), reason };
    let rules: PolicyRules = serde_json::from_str(&record.rules).map_err(|e| invalid(e.to_string()))?;
    Policy::new(&record.name, rules).map_err(|e| invalid(e.to_string()))
}

/// A request to sign `csr` under `policy`.
#[derive(Debug)]
pub struct PolicyIssue<'a> {
    pub policy: &'a Policy,
    pub csr: &'a CheckedCsr,
    /// The lifetime asked for; the policy's default when `None`.
    pub ttl: Option<Duration>,
    /// Who asked, as the audit log names them (`token:<name>`).
    pub requester: String,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyIssueError {
    #[error(transparent)]
    Csr(#[from] CsrError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Issue(#[from] IssueError),
}

/// Judges the CSR's names by the policy and issues what it grants.
pub async fn issue_under_policy(
    issuer: &CertificateIssuer,
    metrics: &Metrics,
    request: PolicyIssue<'_>,
) -> Result<IssuedCertificate, PolicyIssueError> {
    let approval = approve(metrics, &request)?;
    issue_approved(issuer, metrics, request, approval).await
}

/// The first half of [`issue_under_policy`]: what the policy grants, with
/// nothing stored yet (a caller may claim something of its own between
/// the two halves, as idempotent REST issuance claims its key).
pub fn approve(metrics: &Metrics, request: &PolicyIssue<'_>) -> Result<Approval, PolicyIssueError> {
    let PolicyIssue { policy, csr, ttl, .. } = request;
    let names = csr.requested_names()?;
    if let Some(high_s) = csr.high_s_signature() {
        metrics.ecdsa_signature(EcdsaSource::Csr, policy.name(), high_s);
    }
    Ok(policy.approve_names(names, csr, *ttl)?)
}

/// The second half of [`issue_under_policy`]: issues what `approval` grants.
pub async fn issue_approved(
    issuer: &CertificateIssuer,
    metrics: &Metrics,
    request: PolicyIssue<'_>,
    approval: Approval,
) -> Result<IssuedCertificate, PolicyIssueError> {
    let started = Instant::now();
    let PolicyIssue { policy, csr, requester, .. } = request;
    let issued = issuer
        .issue(&IssueRequest {
            csr,
            names: approval.names,
            ttl: approval.ttl,
            not_before: None,
            requester,
            policy: Some(policy.name().to_owned()),
            kind: CertificateKind::Workload,
        })
        .await
        .inspect_err(|_| metrics.issuance_failed())?;
    metrics.issued(started.elapsed());
    Ok(issued)
}
