//! What the agent reports to Prometheus: when it will renew next, when the
//! current certificate expires, and how renewals went. Served on
//! `--metrics-addr` at `/metrics`, without authentication: nothing here is
//! secret, and the operator chooses the address (loopback by habit).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use time::OffsetDateTime;

use super::error::AgentError;

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct Outcome {
    result: &'static str,
}

pub struct AgentMetrics {
    registry: Registry,
    next_renewal: Gauge,
    not_after: Gauge,
    renewals: Family<Outcome, Counter>,
}

impl std::fmt::Debug for AgentMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgentMetrics")
    }
}

impl Default for AgentMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tessera_agent");
        let next_renewal = Gauge::default();
        let not_after = Gauge::default();
        let renewals = Family::<Outcome, Counter>::default();
        registry.register(
            "next_renewal_timestamp_seconds",
            "Unix time of the next planned renewal",
            next_renewal.clone(),
        );
        registry.register(
            "certificate_not_after_timestamp_seconds",
            "Unix time the current certificate expires",
            not_after.clone(),
        );
        registry.register("renewals", "Certificate orders by result (ok, failed)", renewals.clone());
        // Both series exist from the start, so a rate() sees the first failure.
        drop(renewals.get_or_create(&Outcome { result: "ok" }));
        drop(renewals.get_or_create(&Outcome { result: "failed" }));
        Self { registry, next_renewal, not_after, renewals }
    }
}

impl AgentMetrics {
    pub fn next_renewal(&self, at: OffsetDateTime) {
        self.next_renewal.set(at.unix_timestamp());
    }

    pub fn certificate(&self, not_after: OffsetDateTime) {
        self.not_after.set(not_after.unix_timestamp());
    }

    pub fn renewed(&self) {
        self.renewals.get_or_create(&Outcome { result: "ok" }).inc();
    }

    pub fn failed(&self) {
        self.renewals.get_or_create(&Outcome { result: "failed" }).inc();
    }

    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }

    /// Binds `addr` and serves `/metrics` until the task is dropped.
    pub async fn serve(self: Arc<Self>, addr: SocketAddr) -> Result<tokio::task::JoinHandle<()>, AgentError> {
        let listener =
            tokio::net::TcpListener::bind(addr).await.map_err(|source| AgentError::Metrics { addr, source })?;
        let app = axum::Router::new().route("/metrics", axum::routing::get(metrics)).with_state(self);
        tracing::info!(%addr, "serving agent metrics at /metrics");
        Ok(tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "metrics listener stopped");
            }
        }))
    }
}

async fn metrics(State(metrics): State<Arc<AgentMetrics>>) -> Response {
    match metrics.encode() {
        Ok(body) => ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body)
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn exposes_the_renewal_figures() {
        let metrics = AgentMetrics::default();
        metrics.next_renewal(OffsetDateTime::from_unix_timestamp(1_900_000_000).unwrap());
        metrics.certificate(OffsetDateTime::from_unix_timestamp(1_900_000_600).unwrap());
        metrics.renewed();
        metrics.renewed();
        metrics.failed();
        let text = metrics.encode().unwrap();
        assert!(text.contains("tessera_agent_next_renewal_timestamp_seconds 1900000000"), "{text}");
        assert!(text.contains("tessera_agent_certificate_not_after_timestamp_seconds 1900000600"), "{text}");
        assert!(text.contains("tessera_agent_renewals_total{result=\"ok\"} 2"), "{text}");
        assert!(text.contains("tessera_agent_renewals_total{result=\"failed\"} 1"), "{text}");
    }
}
