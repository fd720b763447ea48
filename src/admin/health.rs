//! Liveness, readiness and metrics on the admin listener, and metrics
//! alone on their own listener when `metrics_addr` is set. Liveness and
//! readiness are open (a load balancer or kubelet holds no token);
//! readiness says why a node should get no traffic, in words that name no
//! internal detail (those go to the log).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::Mutex;

use super::AdminState;
use super::extract::{AnyScope, Authorized};
use super::problem::{ApiError, RETRY_AFTER_SECONDS};
use crate::http::serving::ServingListeners;
use crate::issuance::CertificateIssuer;

pub const LIVENESS_PATH: &str = "/healthz";
pub const READINESS_PATH: &str = "/readyz";
/// The only paths served without a token.
pub const OPEN_PATHS: [&str; 2] = [LIVENESS_PATH, READINESS_PATH];

/// A probe waits this long for the database before calling it down.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);
/// A probe signature by the current issuing CA's key is this old at most:
/// probes come every few seconds, and an HSM or KMS signature costs.
const KEY_CHECK_SECONDS: i64 = 30;
/// A probe signature that takes longer counts as failed.
const KEY_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
const KEY_CHECK_MESSAGE: &[u8] = b"tessera readiness probe";

/// What readiness keeps between probes: the listeners' state, and the
/// last check of the issuing CA's key.
#[derive(Debug)]
pub struct Readiness {
    listeners: ServingListeners,
    /// (authority id, checked at, whether its key signed).
    key_check: Mutex<Option<(i64, i64, bool)>>,
}

impl Readiness {
    pub fn new(listeners: ServingListeners) -> Self {
        Self { listeners, key_check: Mutex::new(None) }
    }

    /// Whether the current issuing CA's key signs, checked with one
    /// signature at most every [`KEY_CHECK_SECONDS`] (concurrent probes
    /// wait for the one in flight).
    async fn key_signs(&self, issuer: &CertificateIssuer, now: i64) -> bool {
        let authority = issuer.authority();
        let mut cached = self.key_check.lock().await;
        if let Some((id, at, signs)) = *cached
            && id == authority.id
            && now - at < KEY_CHECK_SECONDS
        {
            return signs;
        }
        let signs = match tokio::time::timeout(KEY_CHECK_TIMEOUT, authority.signer.sign(KEY_CHECK_MESSAGE)).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                tracing::warn!(authority = %authority.name, error = %e, "readiness: the issuing CA's key does not sign");
                false
            }
            Err(_) => {
                tracing::warn!(authority = %authority.name, "readiness: the issuing CA's key did not sign in time");
                false
            }
        };
        *cached = Some((authority.id, now, signs));
        signs
    }
}

/// One dependency as readiness reports it.
#[derive(Debug, Serialize)]
struct Check {
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

impl Check {
    fn passed() -> Self {
        Self { ok: true, reason: None }
    }

    fn failed(reason: impl Into<String>) -> Self {
        Self { ok: false, reason: Some(reason.into()) }
    }
}

#[derive(Debug, Serialize)]
struct IssuingCaCheck {
    #[serde(flatten)]
    check: Check,
    authority: String,
}

#[derive(Debug, Serialize)]
struct ListenersCheck {
    #[serde(flatten)]
    check: Check,
    serving: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
struct Checks {
    database: Check,
    issuing_ca: IssuingCaCheck,
    listeners: ListenersCheck,
}

#[derive(Debug, Serialize)]
struct ReadinessReport {
    status: &'static str,
    /// Every failed check's reason, when not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    checks: Checks,
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> &'static str {
    "ok"
}

/// `GET /readyz`: 200 when this node can serve (the database answers, the
/// current issuing CA's key signs and issuing is not suspended, every
/// listener serves), else 503 with `Retry-After`; the body says which.
pub async fn readyz(State(state): State<AdminState>) -> Response {
    let database = match tokio::time::timeout(DATABASE_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => Check::passed(),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: the database does not answer");
            Check::failed("the database does not answer")
        }
        Err(_) => Check::failed("the database did not answer in time"),
    };
    let authority = state.issuer.authority().name.clone();
    let issuing_ca = if let Some(reason) = state.issuer.suspended() {
        Check::failed(reason)
    } else if state.readiness.key_signs(&state.issuer, state.clock.unix()).await {
        Check::passed()
    } else {
        Check::failed(format!("the key of issuing CA {authority:?} does not sign"))
    };
    let (serving, stopped) = state.readiness.listeners.report();
    let listeners = if stopped.is_empty() {
        Check::passed()
    } else {
        Check::failed(format!("listeners stopped: {}", stopped.join(", ")))
    };
    let reasons: Vec<&str> = [&database, &issuing_ca, &listeners].iter().filter_map(|c| c.reason.as_deref()).collect();
    let ready = reasons.is_empty();
    let report = ReadinessReport {
        status: if ready { "ready" } else { "not ready" },
        reason: (!ready).then(|| reasons.join("; ")),
        checks: Checks {
            database,
            issuing_ca: IssuingCaCheck { check: issuing_ca, authority },
            listeners: ListenersCheck { check: listeners, serving },
        },
    };
    if ready {
        (StatusCode::OK, Json(report)).into_response()
    } else {
        let retry_after = [(header::RETRY_AFTER, RETRY_AFTER_SECONDS)];
        (StatusCode::SERVICE_UNAVAILABLE, retry_after, Json(report)).into_response()
    }
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
