//! Issuing CA rotation. At a configured share of its lifetime the active
//! issuing CA is succeeded by a new one: a new key in the same kind of
//! custodian, certified by the root (whose key is opened only for this).
//! The predecessor is retired but keeps its CRL and OCSP until its last
//! leaf expires, and ACME Renewal Information tells its leaves to renew.
//!
//! One node rotates, under a database lease; every node polls the small
//! authorities table and adopts a successor made elsewhere, so new leaves
//! are signed by it everywhere within one check interval.

mod successor;

use std::sync::Arc;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Mutex;

pub use successor::{SuccessorNames, successor_names, successor_validity};

use crate::clock::SharedClock;
use crate::config::Config;
use crate::issuance::CertificateIssuer;
use crate::keys::SignerError;
use crate::metrics::Metrics;
use crate::revocation::{Revocation, RevocationError};
use crate::secrets::Sealer;
use crate::setup::{SetupError, open_authority};
use crate::storage::{AuthorityRecord, AuthorityStatus, AuthorityStore, IssuanceLedger, JobLeases, StoreError};

/// The lease that makes one node at a time rotate.
const ROTATION_JOB: &str = "ca-rotation";
/// A rotation signs with the root's key and perhaps creates a KMS key: a
/// minute covers it; a node that crashed mid-rotation frees the job after.
const ROTATION_LEASE_SECONDS: i64 = 120;
/// The pause after a failed check (a custodian or the root's key away).
const RETRY_AFTER_FAILURE: std::time::Duration = std::time::Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error(transparent)]
    Signer(#[from] SignerError),
    #[error(transparent)]
    Revocation(#[from] RevocationError),
    #[error("no authority with id {0}")]
    UnknownAuthority(i64),
    #[error("authority {0} is a root: only issuing CAs are rotated this way")]
    NotIssuing(i64),
    #[error("authority {0} is retired already; rotate the active issuing CA")]
    NotActive(i64),
    #[error("another node is rotating an issuing CA; try again in a few minutes")]
    Busy,
    #[error("rotation refused: {0}")]
    Refused(String),
}

impl RotationError {
    /// Whether retrying later may succeed (a custodian or database outage).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(e) => e.is_retryable(),
            Self::Signer(e) | Self::Setup(SetupError::Signer(e)) => e.is_retryable(),
            Self::Setup(SetupError::Store(e)) => e.is_retryable(),
            Self::Revocation(e) => e.is_retryable(),
            _ => false,
        }
    }
}

impl std::fmt::Debug for CaRotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaRotation").field("node", &self.node).finish_non_exhaustive()
    }
}

/// Rotates issuing CAs (on schedule or on request) and keeps this node's
/// issuer and revocation service on the newest active one.
pub struct CaRotation {
    config: Config,
    authorities: AuthorityStore,
    /// Records the successor's certificate as the root's.
    ledger: IssuanceLedger,
    leases: JobLeases,
    clock: SharedClock,
    issuer: CertificateIssuer,
    revocation: Arc<Revocation>,
    /// Seals a software successor's key, and opens sealed keys.
    sealer: Arc<Sealer>,
    /// This node's name in the job lease.
    node: String,
    /// One rotation or adoption at a time on this node.
    busy: Mutex<()>,
    /// 1 while this node cannot open the newest issuing CA's key.
    unavailable: Gauge,
}

impl CaRotation {
    #[allow(clippy::too_many_arguments, reason = "one narrow view or service each, as the wiring hands them out")]
    pub fn new(
        config: Config,
        authorities: AuthorityStore,
        ledger: IssuanceLedger,
        leases: JobLeases,
        clock: SharedClock,
        issuer: CertificateIssuer,
        revocation: Arc<Revocation>,
        sealer: Arc<Sealer>,
        metrics: &Metrics,
    ) -> Arc<Self> {
        let node = format!("node-{}", hex::encode(rand::random::<[u8; 6]>()));
        let unavailable = Gauge::default();
        metrics.register(
            "issuing_ca_unavailable",
            "1 while this node cannot use the newest active issuing CA and so issues nothing",
            unavailable.clone(),
        );
        Arc::new(Self {
            config,
            authorities,
            ledger,
            leases,
            clock,
            issuer,
            revocation,
            sealer,
            node,
            busy: Mutex::new(()),
            unavailable,
        })
    }

    /// Rotates authority `id` now (the admin API). It must be an active
    /// issuing CA. Returns the successor's record once this node signs with it.
    pub async fn rotate(&self, id: i64, actor: &str) -> Result<AuthorityRecord, RotationError> {
        let _busy = self.busy.lock().await;
        let current = match self.authorities.authority(id).await {
            Ok(record) => record,
            Err(StoreError::NotFound) => return Err(RotationError::UnknownAuthority(id)),
            Err(e) => return Err(e.into()),
        };
        if current.parent_id.is_none() {
            return Err(RotationError::NotIssuing(id));
        }
        if current.status != AuthorityStatus::Active {
            return Err(RotationError::NotActive(id));
        }
        self.take_lease().await?;
        let outcome = successor::create_successor(
            &self.config,
            &self.sealer,
            &self.authorities,
            &self.ledger,
            &self.clock,
            &current,
            actor,
        )
        .await;
        self.record_run(outcome.as_ref().err()).await;
        let successor_id = outcome?;
        self.adopt_newest().await?;
        Ok(self.authorities.authority(successor_id).await?)
    }

    /// The background job: every check interval, adopt a successor made
    /// elsewhere, and rotate when the active issuing CA reached its share.
    pub async fn run(self: Arc<Self>) {
        let interval = self.config.lifecycle.ca_rotation.check_interval().unsigned_abs();
        let mut wait = interval;
        loop {
            tokio::time::sleep(wait).await;
            wait = match self.check().await {
                Ok(()) => interval,
                // Issuance waits for the key: try again at the usual pace.
                Err(_) if self.issuer.suspended().is_some() => interval,
                Err(e) => {
                    tracing::warn!(error = %e, "issuing CA rotation check failed; retrying");
                    // A root kept offline fails every check: warn once a minute, not on each.
                    interval.max(RETRY_AFTER_FAILURE)
                }
            };
        }
    }

    async fn check(&self) -> Result<(), RotationError> {
        let _busy = self.busy.lock().await;
        self.adopt_newest().await?;
        let rotation = &self.config.lifecycle.ca_rotation;
        if !rotation.enabled {
            return Ok(());
        }
        let authorities = self.authorities.list_authorities().await?;
        let Some(current) = newest_active_issuing(&authorities) else { return Ok(()) };
        let now = self.clock.unix();
        if now < due_at(current, rotation.at_share) {
            return Ok(());
        }
        let Some(root) = current.parent_id.and_then(|id| authorities.iter().find(|a| a.id == id)) else {
            return Ok(());
        };
        // A successor capped by an expiring root would be due at once and
        // rotate again on every check: the root needs renewing first.
        let (not_before, not_after) = successor_validity(&self.config, root, self.clock.now());
        let successor_due = not_before + ((not_after - not_before) as f64 * rotation.at_share) as i64;
        if successor_due <= now {
            return Err(RotationError::Refused(format!(
                "the root {:?} expires too soon for a successor of {:?}",
                root.name, current.name
            )));
        }
        match self.take_lease().await {
            Ok(()) => {}
            Err(RotationError::Busy) => return Ok(()),
            Err(e) => return Err(e),
        }
        let outcome = successor::create_successor(
            &self.config,
            &self.sealer,
            &self.authorities,
            &self.ledger,
            &self.clock,
            current,
            "tessera",
        )
        .await;
        self.record_run(outcome.as_ref().err()).await;
        match outcome {
            Ok(_) => {}
            // Another node retired it between our read and our write.
            Err(RotationError::Store(StoreError::Conflict(_))) => {}
            Err(e) => return Err(e),
        }
        self.adopt_newest().await
    }

    /// Points this node's issuer at the newest active issuing CA when it is
    /// not there yet, and starts CRL and OCSP for it. When its key cannot
    /// be opened here, the issuer is suspended until it can: a leaf signed
    /// by the retired CA meanwhile would be one the operator rotated away from.
    async fn adopt_newest(&self) -> Result<(), RotationError> {
        let authorities = self.authorities.list_authorities().await?;
        let Some(newest) = newest_active_issuing(&authorities) else { return Ok(()) };
        if newest.id != self.issuer.authority().id
            && let Err(e) = self.adopt(newest, &authorities).await
        {
            if self.issuer.suspend(format!("this node cannot use the newest issuing CA {:?}", newest.name)) {
                self.unavailable.set(1);
                tracing::error!(
                    authority = %newest.name,
                    error = %e,
                    "ISSUING STOPPED on this node: it cannot use the newest issuing CA (its key, or \
                     its CRL and OCSP), and will not sign with a retired one; see docs/operations.md"
                );
            }
            return Err(e);
        }
        if self.issuer.resume() {
            self.unavailable.set(0);
            tracing::warn!(authority = %newest.name, "issuing resumed on this node");
        }
        Ok(())
    }

    async fn adopt(&self, newest: &AuthorityRecord, authorities: &[AuthorityRecord]) -> Result<(), RotationError> {
        let opened = Arc::new(open_authority(&self.config, &self.sealer, newest, authorities).await?);
        self.revocation.add_authority(newest, opened.clone()).await?;
        self.issuer.replace_authority(opened);
        tracing::info!(authority = %newest.name, "new certificates are now signed by this issuing CA");
        Ok(())
    }

    async fn take_lease(&self) -> Result<(), RotationError> {
        let now = self.clock.unix();
        if self.leases.take_lease(ROTATION_JOB, &self.node, now, now + ROTATION_LEASE_SECONDS).await? {
            Ok(())
        } else {
            Err(RotationError::Busy)
        }
    }

    /// Records the outcome and gives the lease back, so a rotation forced
    /// on another node need not wait for it to run out.
    async fn record_run(&self, error: Option<&RotationError>) {
        let error = error.map(ToString::to_string);
        let now = self.clock.unix();
        if let Err(e) = self.leases.record_job_run(ROTATION_JOB, now, error.as_deref()).await {
            tracing::warn!(error = %e, "could not record the rotation job's run");
        }
        let _ = self.leases.take_lease(ROTATION_JOB, &self.node, now, now).await;
    }
}

/// The issuing CA new certificates should come from: the active one that
/// expires last (the same choice as at start).
pub fn newest_active_issuing(authorities: &[AuthorityRecord]) -> Option<&AuthorityRecord> {
    authorities
        .iter()
        .filter(|a| a.kind == "issuing" && a.status == AuthorityStatus::Active)
        .max_by_key(|a| a.not_after)
}

/// When an authority reaches `share` of its lifetime.
pub fn due_at(authority: &AuthorityRecord, share: f64) -> i64 {
    authority.not_before + ((authority.not_after - authority.not_before) as f64 * share) as i64
}
