//! The ACME server (RFC 8555, RFC 8737, RFC 8738, RFC 9773) on the public
//! HTTPS listener, one directory per `[[acme.directories]]` entry at
//! `/acme/{name}/directory`.
//!
//! A request flows: `extract` (content type, size, JWS parse, `url`,
//! nonce, key, signature; see its doc comment for the order) → a handler
//! per RFC object (`account`, `order`, `authz`, `challenge`, `finalize`,
//! `revoke`, `renewal_info`) → `storage` for state and
//! `issuance::CertificateIssuer` for certificates, exactly as the REST API
//! issues them. Errors become problem documents in `problem` only.
//!
//! Architecture invariant: only this module knows RFC 8555 JSON; `jws` is
//! pure (no HTTP, no SQL).

mod account;
mod authz;
mod challenge;
mod directory;
mod eab;
mod extract;
mod finalize;
pub mod jws;
pub mod nonce;
mod nonce_batch;
mod order;
pub mod problem;
mod renewal_info;
mod revoke;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::{get, post};

pub use challenge::resume_stalled;
pub use finalize::interrupted_finalize_problem;

use crate::authority::{Policy, PolicyRules};
use crate::clock::SharedClock;
use crate::config::{AcmeConfig, AcmeDirectoryConfig, AuthorizationMode};
use crate::issuance::CertificateIssuer;
use crate::metrics::Metrics;
use crate::revocation::Revocation;
use crate::secrets::Sealer;
use crate::storage::{
    AcmeStore, Admission, AuthzKey, AuthzWithChallenges, Batcher, CertificateRecord, OrderRequest, OrderWithAuthzIds,
    StoreError, ValidationOutcome,
};
use crate::validation::{ChallengeKind, Validator};
use nonce::Nonces;
use nonce_batch::{Spend, Spent, spend_nonces};
use problem::AcmeProblem;

/// One directory's settings, resolved from config at start.
#[derive(Debug, Clone)]
pub struct DirectorySettings {
    pub name: String,
    pub policy: String,
    pub eab_required: bool,
    pub challenges: Vec<ChallengeKind>,
    pub orders_per_window: u32,
    pub failed_validations_per_window: u32,
    pub rate_window_seconds: i64,
    pub terms_of_service: Option<String>,
    pub require_low_s: bool,
    /// Orders of EAB-bound accounts are authorized by their key's policy,
    /// with no challenge (`authorization_mode = "binding"`).
    pub authorize_by_binding: bool,
}

impl DirectorySettings {
    fn from_config(config: &AcmeDirectoryConfig) -> Self {
        Self {
            name: config.name.clone(),
            policy: config.policy.clone(),
            eab_required: config.eab_required,
            challenges: config.challenges.clone(),
            orders_per_window: config.orders_per_window,
            failed_validations_per_window: config.failed_validations_per_window,
            rate_window_seconds: config.rate_window.duration().whole_seconds(),
            terms_of_service: config.terms_of_service.clone(),
            require_low_s: config.require_low_s,
            authorize_by_binding: config.authorization_mode == AuthorizationMode::Binding,
        }
    }
}

/// What every ACME handler may use.
#[derive(Debug, Clone)]
pub struct AcmeState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: AcmeStore,
    clock: SharedClock,
    issuer: CertificateIssuer,
    revocation: Arc<Revocation>,
    metrics: Arc<Metrics>,
    /// Opens the EAB HMAC keys, which are stored sealed.
    sealer: Arc<Sealer>,
    nonces: Nonces,
    nonce_batch: Batcher<Spend, Spent>,
    orders: Batcher<i64, Option<OrderWithAuthzIds>>,
    authzs: Batcher<AuthzKey, Option<AuthzWithChallenges>>,
    /// New orders, judged against their account's rate limits and stored.
    new_orders: Batcher<OrderRequest, Admission>,
    challenge_starts: Batcher<i64, bool>,
    validation_outcomes: Batcher<(i64, ValidationOutcome, i64), ()>,
    certificates: Batcher<Vec<u8>, Option<(CertificateRecord, i64)>>,
    validator: Validator,
    directories: HashMap<String, Arc<DirectorySettings>>,
    policies: std::sync::Mutex<HashMap<String, (std::time::Instant, Policy)>>,
}

/// How long a policy read from the database is reused. newOrder and
/// finalize both judge by it; a change made through the admin API reaches
/// ACME on every node within this time.
const POLICY_CACHE: std::time::Duration = std::time::Duration::from_secs(5);

impl AcmeState {
    pub async fn new(
        config: &AcmeConfig,
        store: AcmeStore,
        clock: SharedClock,
        issuer: CertificateIssuer,
        revocation: Arc<Revocation>,
        metrics: Arc<Metrics>,
        sealer: Arc<Sealer>,
    ) -> anyhow::Result<Self> {
        let nonces = Nonces::load(&store, &sealer).await?;
        let nonce_batch = Batcher::start(store.clone(), spend_nonces);
        let orders = Batcher::start(store.clone(), |store: AcmeStore, ids: Vec<i64>| async move {
            store.acme_orders_with_authz_ids(&ids).await
        });
        let authzs = Batcher::start(store.clone(), |store: AcmeStore, keys: Vec<AuthzKey>| async move {
            store.acme_authzs_with_challenges(&keys).await
        });
        let new_orders = Batcher::start(store.clone(), |store: AcmeStore, requests: Vec<OrderRequest>| async move {
            store.admit_acme_orders(&requests).await
        });
        let challenge_starts = Batcher::start(
            (store.clone(), clock.clone()),
            |(store, clock): (AcmeStore, SharedClock), ids: Vec<i64>| async move {
                store.start_acme_challenges(&ids, clock.unix()).await
            },
        );
        let validation_outcomes =
            Batcher::start(store.clone(), |store: AcmeStore, results: Vec<(i64, ValidationOutcome, i64)>| async move {
                store.record_acme_validations(&results).await
            });
        let certificates = Batcher::start(store.clone(), |store: AcmeStore, serials: Vec<Vec<u8>>| async move {
            store.acme_certificates(&serials).await
        });
        let validator = Validator::new(config)?;
        let directories =
            config.directories.iter().map(|d| (d.name.clone(), Arc::new(DirectorySettings::from_config(d)))).collect();
        let policies = std::sync::Mutex::default();
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                clock,
                issuer,
                revocation,
                metrics,
                sealer,
                nonces,
                nonce_batch,
                orders,
                authzs,
                new_orders,
                challenge_starts,
                validation_outcomes,
                certificates,
                validator,
                directories,
                policies,
            }),
        })
    }

    /// ACME's view of the database (and, through it, the catalog).
    pub fn store(&self) -> &AcmeStore {
        &self.inner.store
    }

    fn sealer(&self) -> &Sealer {
        &self.inner.sealer
    }

    fn now(&self) -> i64 {
        self.inner.clock.unix()
    }

    fn directory(&self, name: &str) -> Option<Arc<DirectorySettings>> {
        self.inner.directories.get(name).cloned()
    }

    /// The policy a name refers to, checked; a missing policy is a
    /// configuration error, so it answers as an internal failure.
    async fn policy(&self, name: &str) -> Result<Policy, AcmeProblem> {
        if let Ok(cache) = self.inner.policies.lock()
            && let Some((read_at, policy)) = cache.get(name)
            && read_at.elapsed() < POLICY_CACHE
        {
            return Ok(policy.clone());
        }
        let policy = self.read_policy(name).await?;
        if let Ok(mut cache) = self.inner.policies.lock() {
            cache.insert(name.to_owned(), (std::time::Instant::now(), policy.clone()));
        }
        Ok(policy)
    }

    async fn read_policy(&self, name: &str) -> Result<Policy, AcmeProblem> {
        let record = self.inner.store.policy(name).await.map_err(|e| match e {
            StoreError::NotFound => {
                AcmeProblem::internal(format!("ACME uses the policy {name:?}, which does not exist"))
            }
            other => other.into(),
        })?;
        let rules: PolicyRules = serde_json::from_str(&record.rules)
            .map_err(|e| AcmeProblem::internal(format!("stored policy {name:?}: {e}")))?;
        Policy::new(&record.name, rules).map_err(|e| AcmeProblem::internal(format!("stored policy {name:?}: {e}")))
    }
}

/// Absolute URLs of one directory's resources, on the host the client used.
#[derive(Debug, Clone)]
pub struct Urls {
    base: String,
}

impl Urls {
    fn new(host: &str, directory: &str) -> Self {
        Self { base: format!("https://{host}/acme/{directory}") }
    }

    pub fn directory(&self) -> String {
        format!("{}/directory", self.base)
    }
    pub fn path(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }
    pub fn account(&self, id: i64) -> String {
        format!("{}/acct/{id}", self.base)
    }
    pub fn orders(&self, account: i64) -> String {
        format!("{}/acct/{account}/orders", self.base)
    }
    pub fn order(&self, id: i64) -> String {
        format!("{}/order/{id}", self.base)
    }
    pub fn finalize(&self, id: i64) -> String {
        format!("{}/order/{id}/finalize", self.base)
    }
    pub fn authz(&self, id: i64) -> String {
        format!("{}/authz/{id}", self.base)
    }
    pub fn challenge(&self, id: i64) -> String {
        format!("{}/chall/{id}", self.base)
    }
    pub fn certificate(&self, serial_hex: &str) -> String {
        format!("{}/cert/{serial_hex}", self.base)
    }
    /// The account id a `kid` names, if it is an account URL of this directory.
    fn account_id(&self, kid: &str) -> Option<i64> {
        let wanted = url::Url::parse(&self.base).ok()?;
        let kid = url::Url::parse(kid).ok()?;
        let rest = kid.path().strip_prefix(wanted.path())?.strip_prefix("/acct/")?;
        rest.parse().ok()
    }
}

/// The host a request was sent to (`Host`, or the HTTP/2 authority).
fn request_host(request: &axum::http::request::Parts) -> Option<String> {
    request
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri.authority().map(|a| a.as_str().to_owned()))
}

/// The directory name in `/acme/{name}/...`.
fn directory_name(path: &str) -> Option<&str> {
    path.strip_prefix("/acme/")?.split('/').next()
}

/// The ACME routes, to merge into the public HTTPS router.
pub fn router(state: AcmeState) -> Router {
    Router::new()
        .route("/acme/{dir}/directory", get(directory::directory))
        .route("/acme/{dir}/new-nonce", get(directory::new_nonce_get).head(directory::new_nonce_head))
        .route("/acme/{dir}/new-account", post(account::new_account))
        .route("/acme/{dir}/new-order", post(order::new_order))
        .route("/acme/{dir}/revoke-cert", post(revoke::revoke_certificate))
        .route("/acme/{dir}/key-change", post(account::key_change))
        .route("/acme/{dir}/renewal-info/{id}", get(renewal_info::renewal_info))
        .route("/acme/{dir}/acct/{id}", post(account::account))
        .route("/acme/{dir}/acct/{id}/orders", post(account::orders))
        .route("/acme/{dir}/order/{id}", post(order::order))
        .route("/acme/{dir}/order/{id}/finalize", post(finalize::finalize))
        .route("/acme/{dir}/authz/{id}", post(authz::authorization))
        .route("/acme/{dir}/chall/{id}", post(challenge::challenge))
        .route("/acme/{dir}/cert/{serial}", post(finalize::certificate))
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), common_headers))
        .with_state(state)
}

async fn unknown_route() -> AcmeProblem {
    AcmeProblem::not_found("no such ACME resource")
}

/// Resources are read with POST-as-GET (§6.3), so a GET of one is refused.
async fn method_not_allowed() -> AcmeProblem {
    AcmeProblem::malformed("this method is not allowed here; ACME resources are read with POST-as-GET")
        .with_status(axum::http::StatusCode::METHOD_NOT_ALLOWED)
}

/// Every ACME response carries a fresh nonce (§6.5), a link to its
/// directory (§7.1) and is never cached.
async fn common_headers(State(state): State<AcmeState>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let index = match (request_host(&parts), directory_name(parts.uri.path())) {
        (Some(host), Some(dir)) if state.directory(dir).is_some() => Some(Urls::new(&host, dir).directory()),
        _ => None,
    };
    let mut response = next.run(Request::from_parts(parts, body)).await;
    let headers = response.headers_mut();
    if let Ok(nonce) = HeaderValue::from_str(&state.inner.nonces.fresh(state.now())) {
        headers.insert("replay-nonce", nonce);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(link) = index.and_then(|url| HeaderValue::from_str(&format!("<{url}>;rel=\"index\"")).ok()) {
        headers.append(header::LINK, link);
    }
    response
}

/// A numeric id from a URL path; anything else names nothing.
fn parse_id(text: &str) -> Result<i64, AcmeProblem> {
    text.parse().map_err(|_| AcmeProblem::not_found("no such ACME resource"))
}

/// A random token or identifier part: 32 octets, base64url.
fn random_token() -> Result<String, AcmeProblem> {
    use aws_lc_rs::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| AcmeProblem::internal("the random generator failed"))?;
    Ok(base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes))
}

/// The longest rate window of any directory, in seconds.
pub fn longest_rate_window(config: &AcmeConfig) -> i64 {
    config.directories.iter().map(|d| DirectorySettings::from_config(d).rate_window_seconds).max().unwrap_or(3600)
}
