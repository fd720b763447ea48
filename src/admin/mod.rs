//! The REST admin API (`/api/v1`) on the admin listener: authentication by
//! bearer token, a scope check per operation, JSON in and out, RFC 9457
//! problem details on every error.
//!
//! Architecture invariant: every route is in [`routes`], and
//! `api/openapi.yaml` lists exactly the same (method, path) pairs (a test
//! compares them). No handler runs without an [`extract::Authorized`]
//! caller except `/healthz` and `/readyz`.

mod approles;
mod audit;
mod authorities;
mod certificates;
mod eab_keys;
mod expirations;
pub mod extract;
mod health;
mod idempotency;
mod jobs;
mod pagination;
mod policies;
pub mod problem;
pub mod refusals;
mod rotation;
mod source;
pub mod throttle;
mod tokens;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::request::Parts;
use axum::routing::{MethodRouter, delete, get, post, put};

use crate::clock::SharedClock;
use crate::issuance::CertificateIssuer;
use crate::lifecycle::Lifecycle;
use crate::metrics::Metrics;
use crate::revocation::Revocation;
use crate::rotation::CaRotation;
use crate::secrets::Sealer;
use crate::storage::AdminStore;
pub use health::Readiness;
use problem::ApiError;
use refusals::Refusals;
use throttle::Throttle;

/// How often refusal tallies whose minute is over are written, and
/// sources whose block has ended are forgotten.
const REFUSALS_TICK: Duration = Duration::from_secs(5);

/// What every admin handler may use.
#[derive(Debug, Clone)]
pub struct AdminState {
    /// Admin's view of the database (and, through it, the catalog).
    pub store: AdminStore,
    pub clock: SharedClock,
    pub issuer: CertificateIssuer,
    pub revocation: Arc<Revocation>,
    pub rotation: Arc<CaRotation>,
    pub metrics: Arc<Metrics>,
    pub lifecycle: Arc<Lifecycle>,
    pub refusals: Arc<Refusals>,
    pub throttle: Arc<Throttle>,
    /// Seals the EAB HMAC keys it makes.
    pub sealer: Arc<Sealer>,
    pub readiness: Arc<Readiness>,
}

/// One admin route: its method and path as the OpenAPI file writes them.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    handler: MethodRouter<AdminState>,
}

fn route(method: &'static str, path: &'static str, handler: MethodRouter<AdminState>) -> Route {
    Route { method, path, handler }
}

/// Every admin route.
pub fn routes() -> Vec<Route> {
    vec![
        route("GET", health::LIVENESS_PATH, get(health::healthz)),
        route("GET", health::READINESS_PATH, get(health::readyz)),
        route("GET", "/metrics", get(health::metrics)),
        route("POST", "/api/v1/certificates", post(certificates::sign)),
        route("GET", "/api/v1/certificates", get(certificates::list)),
        route("GET", "/api/v1/certificates/{serial}", get(certificates::get)),
        route("POST", "/api/v1/certificates/{serial}/revoke", post(certificates::revoke)),
        route("GET", "/api/v1/policies", get(policies::list)),
        route("POST", "/api/v1/policies", post(policies::create)),
        route("GET", "/api/v1/policies/{name}", get(policies::get)),
        route("PUT", "/api/v1/policies/{name}", put(policies::update)),
        route("DELETE", "/api/v1/policies/{name}", delete(policies::delete)),
        route("GET", "/api/v1/authorities", get(authorities::list)),
        route("GET", "/api/v1/authorities/{id}", get(authorities::get)),
        route("GET", "/api/v1/authorities/{id}/chain", get(authorities::chain)),
        route("POST", "/api/v1/authorities/{id}/crl", post(authorities::publish_crl)),
        route("POST", "/api/v1/authorities/{id}/ocsp-responder/rotate", post(authorities::rotate_ocsp_responder)),
        route("POST", "/api/v1/authorities/{id}/rotate", post(rotation::rotate)),
        route("POST", "/api/v1/authorities/{id}/renew-all", post(rotation::renew_all)),
        route("GET", "/api/v1/tokens", get(tokens::list)),
        route("POST", "/api/v1/tokens", post(tokens::create)),
        route("PUT", "/api/v1/tokens/{id}/policies", put(tokens::bind)),
        route("POST", "/api/v1/tokens/{id}/revoke", post(tokens::revoke)),
        route("GET", "/api/v1/audit-events", get(audit::list)),
        route("GET", "/api/v1/eab-keys", get(eab_keys::list)),
        route("POST", "/api/v1/eab-keys", post(eab_keys::create)),
        route("POST", "/api/v1/eab-keys/{kid}/revoke", post(eab_keys::revoke)),
        route("GET", "/api/v1/expirations", get(expirations::summary)),
        route("GET", "/api/v1/jobs", get(jobs::list)),
        route("POST", "/api/v1/vault/approles", post(approles::create)),
        route("POST", "/api/v1/vault/approles/{name}/secret-ids", post(approles::create_secret_id)),
    ]
}

/// The admin router. Unknown paths and methods answer 401 to strangers and
/// 404/405 to token holders, so the API's shape is not visible without a
/// token; the open paths answer 405 to anyone.
pub fn router(state: AdminState) -> Router {
    routes()
        .into_iter()
        .fold(Router::new(), |router, r| router.route(r.path, r.handler))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

/// The metrics listener's router (`metrics_addr`): `/metrics` alone,
/// without a token, for a scraper on a network trusted to read it.
pub fn metrics_router(state: AdminState) -> Router {
    Router::new().route("/metrics", get(health::open_metrics)).with_state(state)
}

async fn not_found(State(state): State<AdminState>, parts: Parts) -> ApiError {
    match extract::authenticate(&parts, &state).await {
        Ok(_) => ApiError::NotFound(format!("no route for {} {}", parts.method, parts.uri.path())),
        Err(e) => e,
    }
}

async fn method_not_allowed(State(state): State<AdminState>, parts: Parts) -> ApiError {
    let refusal = ApiError::MethodNotAllowed(format!("{} is not allowed on {}", parts.method, parts.uri.path()));
    // The open paths' shape is no secret: anyone may learn their methods.
    if health::OPEN_PATHS.contains(&parts.uri.path()) {
        return refusal;
    }
    match extract::authenticate(&parts, &state).await {
        Ok(_) => refusal,
        Err(e) => e,
    }
}

/// Writes refusal tallies whose minute is over and forgets sources whose
/// block has ended, every few seconds, for as long as the server runs.
pub async fn keep_refusals(state: AdminState) {
    let mut tick = tokio::time::interval(REFUSALS_TICK);
    loop {
        tick.tick().await;
        let now = state.clock.unix();
        state.refusals.flush_due(&state.store, now).await;
        state.throttle.prune(now);
    }
}
