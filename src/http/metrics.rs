//! Prometheus metrics, served on the admin listener behind a token.

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub struct Metrics {
    registry: Registry,
    issued: Counter,
    issuance_failures: Counter,
    revoked: Counter,
    issuance_seconds: Histogram,
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
        Self { registry, issued, issuance_failures, revoked, issuance_seconds }
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

    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}
