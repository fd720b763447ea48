//! Prometheus metrics, served on the admin listener behind a token (and
//! on a listener of their own without one when `metrics_addr` is set). This
//! module holds the registry and the series that several components feed;
//! a component whose series only it feeds registers them itself through
//! [`Metrics::register`] (the lifecycle gauges live in `lifecycle`), so
//! this module depends on no component.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Metric, Registry};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabel {
    listener: &'static str,
}

/// Where a valid ECDSA signature was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcdsaSource {
    /// An ACME request's JWS; the scope is the directory.
    AcmeJws,
    /// A CSR's self-signature; the scope is the policy it was judged by.
    Csr,
}

impl EcdsaSource {
    fn label(self) -> &'static str {
        match self {
            Self::AcmeJws => "acme_jws",
            Self::Csr => "csr",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EcdsaLabel {
    source: &'static str,
    scope: String,
}

pub struct Metrics {
    /// Behind a lock so components can add their series after start-up.
    registry: Mutex<Registry>,
    issued: Counter,
    issuance_failures: Counter,
    revoked: Counter,
    issuance_seconds: Histogram,
    admin_refusals: Family<ReasonLabel, Counter>,
    ecdsa_signatures: Family<EcdsaLabel, Counter>,
    high_s_signatures: Family<EcdsaLabel, Counter>,
    listeners: ListenerFamilies,
    ocsp_signatures: Family<ReasonLabel, Counter>,
}

/// What the listeners count, one series per listener.
#[derive(Default)]
struct ListenerFamilies {
    connections: Family<ListenerLabel, Gauge>,
    connections_refused: Family<ListenerLabel, Counter>,
    requests_shed: Family<ListenerLabel, Counter>,
}

/// One listener's series, handed to the listener that feeds them.
#[derive(Debug, Clone, Default)]
pub struct ListenerMeter {
    pub connections: Gauge,
    pub connections_refused: Counter,
    pub requests_shed: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tessera");
        let issued = Counter::default();
        let issuance_failures = Counter::default();
        let revoked = Counter::default();
        // 0.5 ms .. ~1 s
        let issuance_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 12));
        registry.register("certificates_issued", "Certificates issued", issued.clone());
        registry.register(
            "issuance_failures",
            "Issuance attempts that failed after approval",
            issuance_failures.clone(),
        );
        registry.register("certificates_revoked", "Certificates revoked", revoked.clone());
        registry.register("issuance_duration_seconds", "Time to issue one certificate", issuance_seconds.clone());
        let admin_refusals = Family::<ReasonLabel, Counter>::default();
        registry.register("admin_refusals", "Admin API requests refused, by reason", admin_refusals.clone());
        let ecdsa_signatures = Family::<EcdsaLabel, Counter>::default();
        registry.register(
            "ecdsa_signatures",
            "Valid ECDSA signatures seen on ACME requests and CSRs",
            ecdsa_signatures.clone(),
        );
        let high_s_signatures = Family::<EcdsaLabel, Counter>::default();
        registry.register(
            "high_s_signatures",
            "Valid ECDSA signatures seen with S above half the curve order, refused or not (require_low_s)",
            high_s_signatures.clone(),
        );
        let listeners = ListenerFamilies::default();
        registry.register("listener_connections", "Connections open on the listener", listeners.connections.clone());
        registry.register(
            "listener_connections_refused",
            "Connections closed on arrival because the listener had max_connections open",
            listeners.connections_refused.clone(),
        );
        registry.register(
            "listener_requests_shed",
            "Requests answered 503 because the listener had max_requests_in_flight in flight",
            listeners.requests_shed.clone(),
        );
        let ocsp_signatures: Family<ReasonLabel, Counter> = Family::default();
        registry.register(
            "ocsp_signatures",
            "OCSP responses signed, by reason (presign, miss, nonce, multiple, unknown)",
            ocsp_signatures.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            issued,
            issuance_failures,
            revoked,
            issuance_seconds,
            ecdsa_signatures,
            high_s_signatures,
            admin_refusals,
            listeners,
            ocsp_signatures,
        }
    }
}

impl Metrics {
    pub fn issued(&self, took: Duration) {
        self.issued.inc();
        self.issuance_seconds.observe(took.as_secs_f64());
    }

    pub fn issuance_failed(&self) {
        self.issuance_failures.inc();
    }

    pub fn revoked(&self) {
        self.revoked.inc();
    }

    /// One admin request refused (401, 403 or 429), by why.
    pub fn admin_refused(&self, reason: &'static str) {
        self.admin_refusals.get_or_create(&ReasonLabel { reason }).inc();
    }

    /// Counts a valid ECDSA signature and whether it was high-S, so an
    /// operator sees what share turning on `require_low_s` would refuse
    /// before turning it on.
    pub fn ecdsa_signature(&self, source: EcdsaSource, scope: &str, high_s: bool) {
        let label = EcdsaLabel { source: source.label(), scope: scope.to_owned() };
        self.ecdsa_signatures.get_or_create(&label).inc();
        if high_s {
            self.high_s_signatures.get_or_create(&label).inc();
        }
    }

    /// The series of the listener called `listener` (`https`, `http`, `admin`).
    pub fn listener(&self, listener: &'static str) -> ListenerMeter {
        let label = ListenerLabel { listener };
        let families = &self.listeners;
        ListenerMeter {
            connections: families.connections.get_or_create(&label).clone(),
            connections_refused: families.connections_refused.get_or_create(&label).clone(),
            requests_shed: families.requests_shed.get_or_create(&label).clone(),
        }
    }

    /// The counter of OCSP signatures made for `reason`.
    pub fn ocsp_signatures(&self, reason: &'static str) -> Counter {
        self.ocsp_signatures.get_or_create(&ReasonLabel { reason }).clone()
    }

    /// Adds a component's own series to what a scrape reports.
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry.lock().unwrap_or_else(PoisonError::into_inner).register(name, help, metric);
    }

    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry.lock().unwrap_or_else(PoisonError::into_inner))?;
        Ok(out)
    }
}
