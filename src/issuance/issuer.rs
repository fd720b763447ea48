//! The issuance pipeline (DESIGN.md "never issue what you cannot track"):
//! reserve the serial as pending, sign, record as issued with its audit
//! event, and only then hand the certificate out.

use std::sync::Arc;

use time::{Duration, OffsetDateTime};

use rcgen::CertificateParams;
use tokio::sync::watch;

use super::lint::{CertificateExpectation, LintFailure, Profile};
use super::profile::{LeafProfile, RevocationUrls, leaf_params, ocsp_signer_params};
use super::{CheckedCsr, Identifier, KeyHash, Serial, SigningError, certificate_pem, sign_certificate, to_column};
use crate::clock::SharedClock;
use crate::keys::Signer;
use crate::storage::{
    Batcher, CertificateKind, CertificateRecord, IssuanceLedger, IssuedRecord, NewAuditEvent, PendingCertificate,
    Reservation, Reserved, StoreError, Succession,
};

/// Certificates are back-dated this much to absorb clock skew on clients.
const BACKDATE: Duration = Duration::seconds(60);
/// A fresh random serial colliding is astronomically unlikely; retrying a
/// few times turns even that into a non-event.
const SERIAL_ATTEMPTS: usize = 3;
/// A serial whose issuance the database interrupted is marked failed with
/// a try at least this often (each try waits for a connection up to the
/// pool's timeout too), so it settles within seconds of the database's return...
const FAIL_LATER_PAUSE: std::time::Duration = std::time::Duration::from_secs(2);
/// ...for at most this long: a database away longer leaves it pending.
const FAIL_LATER_FOR: std::time::Duration = std::time::Duration::from_secs(3600);

/// An issuing CA ready to sign: its key, its certificate and where relying
/// parties find its CRL and OCSP responder.
#[derive(Debug)]
pub struct SigningAuthority {
    pub id: i64,
    pub name: String,
    pub signer: Arc<dyn Signer>,
    pub certificate_der: Vec<u8>,
    pub not_after: OffsetDateTime,
    pub urls: RevocationUrls,
    /// CRL shards leaves are spread over; 0 puts every leaf on the full CRL.
    pub crl_shards: u32,
    /// PEM of the CA certificate and any intermediates above it, not the root.
    pub chain_pem: String,
    pub root_pem: String,
}

/// A request the authority has approved.
#[derive(Debug, Clone)]
pub struct IssueRequest<'a> {
    pub csr: &'a CheckedCsr,
    pub names: Vec<Identifier>,
    pub ttl: Duration,
    /// A start the requester asked for (ACME `notBefore`); a start in the
    /// past or none means now, back-dated for clock skew.
    pub not_before: Option<OffsetDateTime>,
    /// Who asked (`token:<name>`, `acme:<account>`, `tessera`).
    pub requester: String,
    pub policy: Option<String>,
    /// Internal for Tessera's own certificates (its TLS certificate).
    pub kind: CertificateKind,
}

/// The ACME order a certificate is issued for: the certificate it replaces
/// (its `replaces`, RFC 9773) is superseded besides the earlier certificate
/// of the same requester and identifiers that every issuance supersedes;
/// the order moves from ready to processing in the commit that reserves the
/// serial (so two finalizations cannot both issue) and to valid in the one
/// that records the certificate (so none is left processing with its
/// certificate issued).
#[derive(Debug, Clone, Copy)]
pub struct AcmeOrderLink<'a> {
    pub order_id: i64,
    pub replaces: Option<&'a [u8]>,
}

#[derive(Debug, Clone)]
pub struct IssuedCertificate {
    pub serial: Serial,
    pub der: Vec<u8>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// The row as stored, so callers need not read it back.
    pub record: CertificateRecord,
    /// The authority that signed it (the current one may have changed since).
    pub authority: Arc<SigningAuthority>,
}

impl IssuedCertificate {
    /// The leaf followed by the issuing CA chain: what a TLS server presents.
    pub fn chain_pem(&self) -> String {
        format!("{}{}", certificate_pem(&self.der), self.authority.chain_pem)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Signing(#[from] SigningError),
    #[error("the requested start is after the issuing CA expires")]
    StartsTooLate,
    /// The ACME order is not ready (another request is finalizing it).
    #[error("the order is not ready")]
    OrderNotReady,
    /// The subject key was revoked as compromised (keyCompromise).
    #[error("the key was revoked as compromised; certify a new key")]
    KeyBlocked,
    /// This node cannot use the newest issuing CA, and must not sign with
    /// an older one (see [`CertificateIssuer::suspend`]).
    #[error("issuing is suspended on this node: {0}")]
    Suspended(String),
}

impl IssueError {
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Signing(SigningError::Signer(e)) => e.is_retryable(),
            Self::Suspended(_) => true,
            Self::Signing(_) | Self::StartsTooLate | Self::OrderNotReady | Self::KeyBlocked => false,
        }
    }
}

/// Issues certificates under the current signing authority. Clones share
/// it: after a CA rotation, [`CertificateIssuer::replace_authority`] moves
/// every clone to the successor at once, while a certificate being signed
/// finishes under the authority it started with.
#[derive(Debug, Clone)]
pub struct CertificateIssuer {
    ledger: IssuanceLedger,
    clock: SharedClock,
    /// A watch channel as a swappable cell: reading is one uncontended read
    /// lock and an `Arc` clone, and holders of a receiver hear of a swap.
    authority: Arc<watch::Sender<Arc<SigningAuthority>>>,
    /// Why leaves may not be signed now (None: they may), shared like
    /// `authority`.
    suspended: Arc<watch::Sender<Option<String>>>,
    /// Serials of concurrent issuances, reserved in one commit.
    reservations: Batcher<Reservation, Reserved>,
    /// Signed certificates of concurrent issuances, recorded in one commit.
    issued: Batcher<IssuedRecord, bool>,
}

impl CertificateIssuer {
    /// An issuer with its own current authority (not shared with others).
    pub fn new(ledger: IssuanceLedger, clock: SharedClock, authority: Arc<SigningAuthority>) -> Self {
        let reservations =
            Batcher::start(ledger.clone(), |ledger: IssuanceLedger, reservations: Vec<Reservation>| async move {
                ledger.reserve_certificates(&reservations).await
            });
        let issued = Batcher::start(ledger.clone(), |ledger: IssuanceLedger, records: Vec<IssuedRecord>| async move {
            ledger.record_issued_all(&records).await
        });
        Self {
            ledger,
            clock,
            authority: Arc::new(watch::Sender::new(authority)),
            suspended: Arc::new(watch::Sender::new(None)),
            reservations,
            issued,
        }
    }

    /// An issuer of its own for `authority` (not following this one's
    /// rotations), recording in the same ledger: a CRL or OCSP signer.
    pub fn for_authority(&self, authority: Arc<SigningAuthority>) -> Self {
        Self::new(self.ledger.clone(), self.clock.clone(), authority)
    }

    /// The authority new certificates are signed by now.
    pub fn authority(&self) -> Arc<SigningAuthority> {
        self.authority.borrow().clone()
    }

    /// Makes `successor` the authority of this issuer and all its clones.
    pub fn replace_authority(&self, successor: Arc<SigningAuthority>) {
        self.authority.send_replace(successor);
    }

    /// Stops this issuer and all its clones from signing leaves, because
    /// this node cannot use the newest active issuing CA (its key does not
    /// open here): signing
    /// with the authority still held would issue under a retired CA.
    /// Returns whether it was signing until now.
    pub fn suspend(&self, reason: String) -> bool {
        self.suspended.send_replace(Some(reason)).is_none()
    }

    /// Lets leaves be signed again; returns whether they were suspended.
    pub fn resume(&self) -> bool {
        self.suspended.send_replace(None).is_some()
    }

    /// Why leaves are not signed now, if they are not.
    pub fn suspended(&self) -> Option<String> {
        self.suspended.borrow().clone()
    }

    /// Hears of every later [`CertificateIssuer::replace_authority`].
    pub fn watch_authority(&self) -> watch::Receiver<Arc<SigningAuthority>> {
        self.authority.subscribe()
    }

    /// Issues a workload certificate for an approved request.
    pub async fn issue(&self, request: &IssueRequest<'_>) -> Result<IssuedCertificate, IssueError> {
        self.issue_leaf(request, None).await
    }

    /// Issues the certificate of an ACME order being finalized (see [`AcmeOrderLink`]).
    pub async fn issue_for_acme_order(
        &self,
        request: &IssueRequest<'_>,
        order: &AcmeOrderLink<'_>,
    ) -> Result<IssuedCertificate, IssueError> {
        self.issue_leaf(request, Some(order)).await
    }

    async fn issue_leaf(
        &self,
        request: &IssueRequest<'_>,
        order: Option<&AcmeOrderLink<'_>>,
    ) -> Result<IssuedCertificate, IssueError> {
        if let Some(reason) = self.suspended() {
            return Err(IssueError::Suspended(reason));
        }
        let authority = self.authority();
        let plan = Plan {
            profile: Profile::Leaf,
            names: request.names.clone(),
            // Not stored: the identifiers give it (`leaf_subject`).
            subject: None,
            sans: to_column(&request.names),
            requester: request.requester.clone(),
            kind: request.kind,
            key_type: request.csr.key_type().as_str().to_owned(),
            policy: request.policy.clone(),
            ttl: request.ttl,
            starts: request.not_before,
            sharded: authority.crl_shards > 0,
            lineage: Lineage::Identifiers { replaces: order.and_then(|o| o.replaces).map(<[u8]>::to_vec) },
            acme_order: order.map(|o| o.order_id),
            action: "certificate.issue",
            detail: serde_json::json!({
                "policy": request.policy,
                "identifiers": request.names.iter().map(Identifier::to_tagged).collect::<Vec<_>>(),
            }),
        };
        self.run(&authority, plan, request.csr.spki_der(), |serial, shard, not_before, not_after| {
            let crl_url = match shard {
                Some(shard) => authority.urls.crl_shard(shard),
                None => authority.urls.crl.clone(),
            };
            leaf_params(&LeafProfile {
                serial,
                names: &request.names,
                key_type: request.csr.key_type(),
                not_before,
                not_after,
                urls: &authority.urls,
                crl_url: &crl_url,
            })
        })
        .await
    }

    /// Issues a delegated OCSP responder certificate for `spki_der`.
    pub async fn issue_ocsp_signer(
        &self,
        spki_der: &[u8],
        key_type: &str,
        lifetime: Duration,
    ) -> Result<IssuedCertificate, IssueError> {
        let authority = self.authority();
        let name = authority.name.clone();
        let plan = Plan {
            profile: Profile::OcspResponder,
            names: Vec::new(),
            subject: Some(format!("CN={name} OCSP responder")),
            sans: String::new(),
            requester: "tessera".into(),
            kind: CertificateKind::Internal,
            key_type: key_type.to_owned(),
            policy: None,
            ttl: lifetime,
            starts: None,
            sharded: false,
            lineage: Lineage::Authority,
            acme_order: None,
            action: "ocsp_signer.issue",
            detail: serde_json::json!({}),
        };
        self.run(&authority, plan, spki_der, |serial, _, not_before, not_after| {
            Ok(ocsp_signer_params(&name, serial, not_before, not_after))
        })
        .await
    }

    /// The pipeline: reserve the serial, sign, record as issued with its
    /// audit event; a failed signature leaves the serial marked failed. A
    /// key revoked as compromised is refused by the reservation (before
    /// anything is stored) and again by the issued record (a block that
    /// committed in between), so no front end needs a check of its own.
    async fn run(
        &self,
        authority: &Arc<SigningAuthority>,
        plan: Plan,
        spki_der: &[u8],
        params: impl Fn(&Serial, Option<u32>, OffsetDateTime, OffsetDateTime) -> Result<CertificateParams, SigningError>,
    ) -> Result<IssuedCertificate, IssueError> {
        let now = self.clock.now();
        let (start, not_before) = match plan.starts {
            Some(start) if start > now => (start, start),
            _ => (now, now - BACKDATE),
        };
        // Never outlive the CA that signs it (an end past what a date can
        // hold is past the CA's end too).
        let not_after = start.checked_add(plan.ttl).map_or(authority.not_after, |end| end.min(authority.not_after));
        if not_after <= not_before {
            return Err(IssueError::StartsTooLate);
        }
        let key = KeyHash::of_spki_der(spki_der);
        let (serial, pending) = self.reserve(authority, &plan, key, not_before, not_after).await?;
        #[cfg(feature = "test-support")]
        super::hold::hold_if_asked(&plan.sans).await;
        let shard = pending.crl_shard.map(|s| s as u32);

        let expectation = CertificateExpectation {
            kind: plan.profile,
            serial: &serial,
            names: &plan.names,
            not_before,
            not_after,
            subject_spki_der: spki_der,
        };
        let signed = match params(&serial, shard, not_before, not_after) {
            Ok(params) => {
                #[cfg(feature = "test-support")]
                let params = super::fault::corrupt_if_asked(&plan.sans, params);
                sign_certificate(&params, &expectation, &authority.certificate_der, authority.signer.as_ref()).await
            }
            Err(e) => Err(e),
        };
        let der = match signed {
            Ok(der) => der,
            Err(e) => {
                let failed = match &e {
                    SigningError::Lint(failure) => self.record_lint_failure(&serial, &plan.requester, failure).await,
                    _ => self.ledger.record_failed(serial.as_bytes()).await,
                };
                if let Err(store) = failed {
                    self.record_failed_later(serial, &store);
                }
                return Err(e.into());
            }
        };

        let mut detail = plan.detail;
        detail["authority"] = authority.name.clone().into();
        detail["not_after"] = not_after.unix_timestamp().into();
        let audit = NewAuditEvent {
            at: now.unix_timestamp(),
            actor: plan.requester,
            action: plan.action,
            target: serial.to_hex(),
            detail,
        };
        let (authority_id, replaces) = match plan.lineage {
            Lineage::Identifiers { replaces } => (None, replaces),
            Lineage::Authority => (Some(authority.id), None),
        };
        let succession = Succession {
            requester: audit.actor.clone(),
            sans: plan.sans,
            authority_id,
            replaces,
            acme_order: plan.acme_order,
        };
        let record =
            IssuedRecord { serial: serial.as_bytes().to_vec(), der: der.clone(), audit, succession: Some(succession) };
        let recorded = match self.issued.get(record).await {
            Ok(recorded) => recorded,
            Err(e) => {
                // Nobody will get this certificate: it must not stay pending.
                self.record_failed_later(serial, &e);
                return Err(e.into());
            }
        };
        if !recorded {
            if self.ledger.is_key_blocked(key.as_bytes()).await? {
                return Err(IssueError::KeyBlocked);
            }
            return Err(StoreError::Conflict("the certificate is not pending".into()).into());
        }
        let record = pending.into_issued(der.clone());
        Ok(IssuedCertificate { serial, der, not_before, not_after, record, authority: authority.clone() })
    }

    /// A certificate that failed its lint was not signed: that is a bug in
    /// a profile, so it is logged loudly, and its serial is marked failed
    /// with an audit event that lists what was found.
    async fn record_lint_failure(
        &self,
        serial: &Serial,
        requester: &str,
        failure: &LintFailure,
    ) -> Result<(), StoreError> {
        tracing::error!(serial = %serial, findings = ?failure.findings, "a certificate failed its lint and was not signed");
        let event = NewAuditEvent {
            at: self.clock.unix(),
            actor: requester.to_owned(),
            action: "certificate.lint_failed",
            target: serial.to_hex(),
            detail: serde_json::json!({ "findings": failure.findings }),
        };
        self.ledger.record_failed_with_audit(serial.as_bytes(), &event).await
    }

    /// Marks `serial` failed once the database answers again, when an
    /// issuance ended without a certificate handed out because the database
    /// went away (while reserving, it may have committed before the
    /// connection dropped). Only a pending row changes, so a certificate
    /// whose record committed after all stays issued.
    fn record_failed_later(&self, serial: Serial, cause: &StoreError) {
        if !cause.is_retryable() {
            tracing::warn!(serial = %serial, error = %cause, "an interrupted issuance stays pending");
            return;
        }
        tracing::warn!(serial = %serial, error = %cause, "issuance interrupted; its serial is marked failed when the database answers");
        let ledger = self.ledger.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + FAIL_LATER_FOR;
            while tokio::time::Instant::now() < deadline {
                tokio::time::sleep(FAIL_LATER_PAUSE).await;
                match ledger.record_failed(serial.as_bytes()).await {
                    Ok(()) => return,
                    Err(e) if e.is_retryable() => {}
                    Err(e) => {
                        tracing::warn!(serial = %serial, error = %e, "could not mark an interrupted issuance failed");
                        return;
                    }
                }
            }
            tracing::warn!(serial = %serial, "gave up marking an interrupted issuance failed; its row stays pending");
        });
    }

    async fn reserve(
        &self,
        authority: &SigningAuthority,
        plan: &Plan,
        key: KeyHash,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<(Serial, PendingCertificate), IssueError> {
        let mut last = StoreError::Conflict("no serial attempted".into());
        for _ in 0..SERIAL_ATTEMPTS {
            let serial = Serial::random();
            let pending = PendingCertificate {
                serial: serial.as_bytes().to_vec(),
                authority_id: authority.id,
                not_before: not_before.unix_timestamp(),
                not_after: not_after.unix_timestamp(),
                created_at: self.clock.unix(),
                kind: plan.kind,
                subject: plan.subject.clone(),
                sans: plan.sans.clone(),
                requester: plan.requester.clone(),
                key_type: Some(plan.key_type.clone()),
                policy: plan.policy.clone(),
                crl_shard: plan.sharded.then(|| serial.shard(authority.crl_shards) as i32),
                spki_hash: key.as_bytes().to_vec(),
            };
            let reservation = Reservation { pending, acme_order: plan.acme_order };
            match self.reservations.get(reservation.clone()).await {
                Ok(Reserved::Done) => return Ok((serial, reservation.pending)),
                Ok(Reserved::OrderNotReady) => return Err(IssueError::OrderNotReady),
                Ok(Reserved::KeyBlocked) => return Err(IssueError::KeyBlocked),
                Ok(Reserved::SerialTaken) => last = StoreError::Conflict("the serial is taken".into()),
                Err(e @ StoreError::Conflict(_)) => last = e,
                Err(e) => {
                    // The connection may have dropped after the commit.
                    self.record_failed_later(serial, &e);
                    return Err(e.into());
                }
            }
        }
        Err(last.into())
    }
}

/// What a certificate will be, apart from its serial and signature.
struct Plan {
    /// The profile it follows, and the identifiers approved for it.
    profile: Profile,
    names: Vec<Identifier>,
    /// None for leaves, whose subject their identifiers give.
    subject: Option<String>,
    sans: String,
    requester: String,
    kind: CertificateKind,
    key_type: String,
    policy: Option<String>,
    ttl: Duration,
    /// Requested start, if any (see `IssueRequest::not_before`).
    starts: Option<OffsetDateTime>,
    sharded: bool,
    lineage: Lineage,
    action: &'static str,
    detail: serde_json::Value,
    /// The ACME order the certificate completes.
    acme_order: Option<i64>,
}

/// Which earlier certificates a new one replaces.
enum Lineage {
    /// Leaves: the live certificate of the same requester and identifiers,
    /// and an explicitly replaced one.
    Identifiers { replaces: Option<Vec<u8>> },
    /// OCSP responder certificates name no identifiers: the live one of the
    /// same authority.
    Authority,
}
