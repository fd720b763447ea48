//! Liveness, readiness and metrics on the admin listener, and metrics
//! alone on their own listener when `metrics_addr` is set.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::AdminState;
use super::extract::{AnyScope, Authorized};
use super::problem::ApiError;

/// The only path served without a token.
pub const OPEN_PATH: &str = "/healthz";

/// `GET /healthz`: the process answers. The only unauthenticated route.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: the database answers.
pub async fn readyz(State(state): State<AdminState>, _: Authorized<AnyScope>) -> Result<&'static str, ApiError> {
    state.store.ping().await?;
    Ok("ready")
}

/// `GET /metrics` on the admin listener: Prometheus text exposition.
pub async fn metrics(State(state): State<AdminState>, _: Authorized<AnyScope>) -> Result<impl IntoResponse, ApiError> {
    scrape(&state).await
}

/// `GET /metrics` on the metrics listener: the same, without a token.
pub async fn open_metrics(State(state): State<AdminState>) -> Result<impl IntoResponse, ApiError> {
    scrape(&state).await
}

async fn scrape(state: &AdminState) -> Result<impl IntoResponse + use<>, ApiError> {
    // Lifecycle gauges come from the database at each scrape, so every node
    // reports the same figures; a failed refresh leaves the last ones.
    if let Err(e) = state.lifecycle.refresh_metrics().await {
        tracing::warn!(error = %e, "lifecycle gauges not refreshed");
    }
    let body = state.metrics.encode().map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body))
}
