//! Lifecycle: what expires, what is overdue for renewal, and who is told.
//!
//! A certificate is *overdue* when it has lived `lifecycle.overdue_share` of
//! its lifetime and nothing replaced it (the issuance pipeline marks the
//! replaced certificate `superseded` in the successor's transaction).
//! The expiry scan runs on one node at a time under a lease (`lease.rs`),
//! records one notice per certificate (or authority) and kind, and queues a
//! webhook delivery per configured URL; the delivery job (`webhook.rs`)
//! signs and sends them with exponential backoff, recording every attempt.
//! Metrics and `GET /api/v1/expirations` read the same [`ExpirationReport`].
//! Two more shared jobs keep the database tidy: one settles issuance a
//! stopped node left pending (`settle.rs`), one deletes what is past its
//! retention (`prune.rs`).

mod gauges;
mod lease;
mod prune;
mod scan;
mod settle;
mod webhook;

use std::sync::Arc;

use tokio::task::JoinSet;

use crate::clock::SharedClock;
use crate::config::{ConfigError, LifecycleConfig};
use crate::metrics::Metrics;
use crate::storage::{
    AuthorityRecord, AuthorityStatus, CertificateKind, ExpirationCounts, ExpiryWindows, JobLeases, LifecycleStore,
    StoreError,
};
pub use prune::IDEMPOTENCY_KEY_SECONDS;
pub use webhook::{SIGNATURE_HEADER, signature};

/// The expiry scan's job name in `job_leases`.
pub const EXPIRY_SCAN_JOB: &str = "expiry-scan";
/// The webhook delivery job's name in `job_leases`.
pub const WEBHOOK_JOB: &str = "webhook-delivery";
/// The job settling interrupted issuance (`settle.rs`).
pub const SETTLE_JOB: &str = "settle-interrupted-issuance";
/// The retention job (`prune.rs`).
pub const PRUNE_JOB: &str = "retention";

/// Event kinds, as webhooks receive them in `type`.
pub const OVERDUE: &str = "certificate.overdue";
pub const EXPIRED_WITHOUT_SUCCESSOR: &str = "certificate.expired_without_successor";
pub const AUTHORITY_NEARING_EXPIRY: &str = "authority.nearing_expiry";

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Names the URL's host only: the URL may carry a credential.
    #[error("webhook at {host}: {reason}")]
    Webhook { host: String, reason: String },
}

/// One authority's line of the report.
#[derive(Debug, Clone)]
pub struct AuthorityExpirations {
    pub authority_id: i64,
    pub name: String,
    pub status: AuthorityStatus,
    pub not_after: i64,
    /// Workloads' certificates.
    pub counts: ExpirationCounts,
    /// Tessera's own certificates, apart so they never blur the workloads'.
    pub internal: ExpirationCounts,
    /// Active, with less than `authority_warning_share` of its life left.
    pub nearing_expiry: bool,
}

/// Counts per authority at one instant.
#[derive(Debug, Clone)]
pub struct ExpirationReport {
    pub at: i64,
    pub overdue_share: f64,
    pub authorities: Vec<AuthorityExpirations>,
}

/// What the lifecycle jobs need of ACME, handed in by the wiring (this
/// module sits below `acme`, which owns ACME's problem documents).
#[derive(Debug, Clone)]
pub struct AcmeUpkeep {
    /// The stored problem document an interrupted order ends with.
    pub interrupted_order_problem: String,
    /// Order counts older than this many seconds fall in no rate window.
    pub rate_window_seconds: i64,
}

pub struct Lifecycle {
    store: LifecycleStore,
    leases: JobLeases,
    clock: SharedClock,
    config: LifecycleConfig,
    gauges: gauges::ExpiryGauges,
    webhooks: Vec<webhook::Webhook>,
    acme: AcmeUpkeep,
    /// This node's name in job leases.
    node: String,
}

impl std::fmt::Debug for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lifecycle").field("node", &self.node).finish_non_exhaustive()
    }
}

impl Lifecycle {
    /// Reads the webhook secrets and builds their clients; a missing
    /// secret stops the start rather than failing every delivery later.
    pub fn new(
        config: &LifecycleConfig,
        store: LifecycleStore,
        leases: JobLeases,
        clock: SharedClock,
        metrics: &Metrics,
        acme: AcmeUpkeep,
        node: String,
    ) -> Result<Arc<Self>, LifecycleError> {
        let webhooks = config
            .webhooks
            .iter()
            .enumerate()
            .map(|(i, hook)| webhook::Webhook::new(i, hook))
            .collect::<Result<_, _>>()?;
        let gauges = gauges::ExpiryGauges::register(metrics);
        Ok(Arc::new(Self { store, leases, clock, config: config.clone(), gauges, webhooks, acme, node }))
    }

    /// The windows the report and the scan read, from the clock and config.
    fn windows(&self) -> ExpiryWindows {
        expiry_windows(self.clock.unix(), &self.config)
    }

    /// Counts per authority (every authority, with zeros where nothing
    /// expires), workloads' and Tessera's own apart, from index windows only.
    pub async fn expirations(&self) -> Result<ExpirationReport, StoreError> {
        let windows = self.windows();
        let counts = self.store.expiration_counts(&windows).await?;
        let authorities = self.store.list_authorities().await?;
        let lines = authorities
            .into_iter()
            .map(|a| {
                let of_kind = |kind| {
                    counts
                        .iter()
                        .find(|c| c.authority_id == a.id && c.kind == kind)
                        .cloned()
                        .unwrap_or(ExpirationCounts::none(a.id, kind))
                };
                AuthorityExpirations {
                    nearing_expiry: self.is_nearing_expiry(&a, windows.now),
                    authority_id: a.id,
                    name: a.name,
                    status: a.status,
                    not_after: a.not_after,
                    counts: of_kind(CertificateKind::Workload),
                    internal: of_kind(CertificateKind::Internal),
                }
            })
            .collect();
        Ok(ExpirationReport { at: windows.now, overdue_share: self.config.overdue_share, authorities: lines })
    }

    fn is_nearing_expiry(&self, authority: &AuthorityRecord, now: i64) -> bool {
        let life = (authority.not_after - authority.not_before).max(1) as f64;
        authority.status == AuthorityStatus::Active
            && ((authority.not_after - now) as f64) < self.config.authority_warning_share * life
    }

    /// How long an issuance may stay pending before it counts as
    /// interrupted (`settle.rs`).
    pub fn interrupted_issuance_after(&self) -> time::Duration {
        self.config.interrupted_issuance_after()
    }

    /// Refreshes the lifecycle gauges; called at each scrape.
    pub async fn refresh_metrics(&self) -> Result<(), StoreError> {
        let report = self.expirations().await?;
        self.gauges.set(&report);
        Ok(())
    }

    /// Starts the expiry scan, the webhook delivery, the settling of
    /// interrupted issuance and the retention job, each under a lease.
    pub fn start_jobs(self: &Arc<Self>, tasks: &mut JoinSet<()>) {
        self.start_leased(tasks, EXPIRY_SCAN_JOB, self.config.scan_interval(), |this| async move { this.scan().await });
        self.start_leased(tasks, WEBHOOK_JOB, webhook::POLL, |this| async move { this.deliver().await });
        self.start_leased(tasks, SETTLE_JOB, self.settle_interval(), |this| async move { this.settle().await });
        let retention_every = self.config.retention.interval.duration();
        self.start_leased(tasks, PRUNE_JOB, retention_every, |this| async move { this.prune().await });
    }

    /// Runs `job` on this lifecycle every `interval`, on whichever node
    /// holds the job's lease.
    fn start_leased<F, Fut>(
        self: &Arc<Self>,
        tasks: &mut JoinSet<()>,
        name: &'static str,
        interval: time::Duration,
        job: F,
    ) where
        F: Fn(Arc<Self>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let this = self.clone();
        let leased = lease::LeasedJob { name, interval, run: move || job(this.clone()) };
        tasks.spawn(lease::run_leased(self.leases.clone(), self.clock.clone(), self.node.clone(), leased));
    }
}

/// The not_after windows the expiry report and scan read at `now`: the
/// fixed 1 h / 24 h / 7 d ends, the overdue search up to
/// `(1 - overdue_share) * max_lifetime` ahead, and the expired lookback.
pub fn expiry_windows(now: i64, config: &LifecycleConfig) -> ExpiryWindows {
    let share = config.overdue_share;
    let max_lifetime = config.max_lifetime().whole_seconds();
    ExpiryWindows {
        now,
        hour_end: now + 3600,
        day_end: now + 86_400,
        week_end: now + 7 * 86_400,
        overdue_until: now + ((1.0 - share) * max_lifetime as f64).ceil() as i64,
        overdue_permille: (share * 1000.0).round() as i64,
        expired_since: now - config.expired_lookback().whole_seconds(),
    }
}
