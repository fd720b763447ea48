//! The lifecycle gauges (expiring, overdue, expired without a successor,
//! authority expiry), one series per authority. They are refreshed from the
//! database at each scrape, so every node reports the same figures, and
//! registered here rather than in `metrics` so that only this component
//! knows the [`ExpirationReport`].

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::ExpirationReport;
use crate::metrics::Metrics;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AuthorityLabel {
    authority: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WindowLabel {
    authority: String,
    window: &'static str,
}

#[derive(Debug, Default)]
pub(super) struct ExpiryGauges {
    expiring: Family<WindowLabel, Gauge>,
    overdue: Family<AuthorityLabel, Gauge>,
    expired_without_successor: Family<AuthorityLabel, Gauge>,
    authority_seconds_left: Family<AuthorityLabel, Gauge>,
    authority_nearing_expiry: Family<AuthorityLabel, Gauge>,
}

impl ExpiryGauges {
    /// Registers the gauges with the scrape's registry.
    pub(super) fn register(metrics: &Metrics) -> Self {
        let gauges = Self::default();
        metrics.register(
            "certificates_expiring",
            "Issued certificates expiring within the window (1h, 24h, 7d)",
            gauges.expiring.clone(),
        );
        metrics.register(
            "certificates_overdue",
            "Issued certificates past their renewal share that nothing replaced",
            gauges.overdue.clone(),
        );
        metrics.register(
            "certificates_expired_without_successor",
            "Certificates that expired within the lookback with nothing replacing them",
            gauges.expired_without_successor.clone(),
        );
        metrics.register(
            "authority_seconds_left",
            "Seconds until the authority's certificate expires",
            gauges.authority_seconds_left.clone(),
        );
        metrics.register(
            "authority_nearing_expiry",
            "1 when an active authority has less than its warning share of life left",
            gauges.authority_nearing_expiry.clone(),
        );
        gauges
    }

    /// Replaces every gauge with the figures of `report`.
    pub(super) fn set(&self, report: &ExpirationReport) {
        self.expiring.clear();
        self.overdue.clear();
        self.expired_without_successor.clear();
        self.authority_seconds_left.clear();
        self.authority_nearing_expiry.clear();
        for a in &report.authorities {
            let label = AuthorityLabel { authority: a.name.clone() };
            let c = &a.counts;
            for (window, count) in [("1h", c.expiring_1h), ("24h", c.expiring_24h), ("7d", c.expiring_7d)] {
                self.expiring.get_or_create(&WindowLabel { authority: a.name.clone(), window }).set(count);
            }
            self.overdue.get_or_create(&label).set(c.overdue);
            self.expired_without_successor.get_or_create(&label).set(c.expired_without_successor);
            self.authority_seconds_left.get_or_create(&label).set(a.not_after - report.at);
            self.authority_nearing_expiry.get_or_create(&label).set(i64::from(a.nearing_expiry));
        }
    }
}
