//! A Vault-compatible PKI API under `/v1/` on the public HTTPS listener, so
//! cert-manager's built-in Vault issuer, csi-driver-spiffe and `hvac` use
//! Tessera unmodified (issue 20). Mounts come from `[[vault.mounts]]`;
//! their roles are Tessera policies. Clients present Tessera tokens, or
//! mint short-lived ones by an AppRole, Kubernetes or client-certificate
//! login. Off unless a mount is configured (dev mode serves `pki` with the
//! role `default`).
//!
//! Architecture invariant: certificates are issued only through
//! [`crate::policy_issuance::issue_under_policy`], the road REST issuance
//! takes; only this module knows Vault's JSON, and [`error`] alone maps
//! errors to it.

mod approle;
mod auth;
mod cert;
mod envelope;
pub mod error;
mod grant;
mod kubernetes;
mod login;
mod pki;
mod request;
mod sys;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::clock::SharedClock;
use crate::config::{VaultConfig, VaultMountConfig};
use crate::issuance::CertificateIssuer;
use crate::metrics::Metrics;
use crate::revocation::Revocation;
use crate::storage::AdminStore;
use cert::CertAuth;
use error::VaultError;
use kubernetes::KubernetesAuth;

/// Vault requests are small JSON documents (a CSR is a few kilobytes).
const BODY_LIMIT: usize = 64 * 1024;

/// What every Vault handler may use.
#[derive(Debug, Clone)]
pub struct VaultState {
    /// Tokens and policies are read through the admin API's view.
    pub store: AdminStore,
    pub clock: SharedClock,
    pub issuer: CertificateIssuer,
    pub revocation: Arc<Revocation>,
    pub metrics: Arc<Metrics>,
    /// Mount path to the roles (policy names) it exposes.
    pub mounts: Arc<BTreeMap<String, Vec<String>>>,
    kubernetes: Option<Arc<KubernetesAuth>>,
    cert: Option<Arc<CertAuth>>,
}

impl VaultState {
    /// Fails when the Kubernetes login's signing keys or the certificate
    /// login's trust anchors cannot be read.
    pub fn new(
        mounts: &[VaultMountConfig],
        logins: &VaultConfig,
        store: AdminStore,
        clock: SharedClock,
        issuer: CertificateIssuer,
        revocation: Arc<Revocation>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, String> {
        let mounts = mounts.iter().map(|m| (m.path.clone(), m.roles.clone())).collect();
        let kubernetes = logins.kubernetes.as_ref().map(KubernetesAuth::load).transpose()?.map(Arc::new);
        let cert = logins.cert.as_ref().map(CertAuth::load).transpose()?.map(Arc::new);
        Ok(Self { store, clock, issuer, revocation, metrics, mounts: Arc::new(mounts), kubernetes, cert })
    }

    /// The roles of a configured mount; Vault's answer for any other path.
    fn mount(&self, path: &str) -> Result<&[String], VaultError> {
        self.mounts
            .get(path)
            .map(Vec::as_slice)
            .ok_or_else(|| VaultError::NotFound(format!("no handler for route \"{path}\"; route entry not found")))
    }

    /// The policy a role of a mount stands for.
    fn role<'a>(&self, mount: &str, role: &'a str) -> Result<&'a str, VaultError> {
        if self.mount(mount)?.iter().any(|r| r == role) {
            Ok(role)
        } else {
            Err(VaultError::UnknownRole(role.to_owned()))
        }
    }
}

/// The routes under `/v1` (the caller nests them there).
pub fn router(state: VaultState) -> Router {
    Router::new()
        .route("/sys/health", get(sys::health))
        .route("/auth/token/lookup-self", get(sys::lookup_self))
        .route("/auth/{path}/login", post(login::login).put(login::login))
        .route("/{mount}/sign/{role}", post(pki::sign).put(pki::sign))
        .route("/{mount}/issue/{role}", post(pki::issue_with_key).put(pki::issue_with_key))
        .route("/{mount}/ca/pem", get(pki::ca_pem))
        .route("/{mount}/ca_chain", get(pki::ca_chain_pem))
        .route("/{mount}/cert/{serial}", get(pki::certificate))
        .route("/{mount}/crl/pem", get(pki::crl_pem))
        .route("/{mount}/revoke", post(pki::revoke).put(pki::revoke))
        .fallback(|| async { VaultError::NotFound("no handler for this route".into()) })
        .method_not_allowed_fallback(|| async { VaultError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}
