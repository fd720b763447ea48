//! Client-certificate login (`POST /v1/auth/{path}/login` over mutual TLS,
//! optionally `{"name": "<role>"}`): the certificate the client presented
//! in the handshake must chain to a trust anchor (Tessera's own roots, every
//! hierarchy, unless `trusted_ca_file` names others), be valid now, carry
//! the clientAuth extended key usage and, if Tessera issued it or a CA on
//! its chain, not be revoked. Its SPIFFE ID or DNS names then pick the
//! first role that matches, whose policies the minted token is bound to,
//! so a workload renews with the identity it already holds. Every login
//! and refusal is audited; the client hears "permission denied", the audit
//! log the reason.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, RootCertStore};
use serde::Deserialize;
use serde_json::{Value, json};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use super::VaultState;
use super::error::VaultError;
use super::grant::{Grant, mint, refuse};
use crate::authority::{DnsPattern, UriPattern};
use crate::config::CertAuthConfig;
use crate::http::client_certificate::ClientCertificates;
use crate::issuance::UriName;
use crate::storage::{CertificateStatus, StoreError};

const METHOD: &str = "cert";

/// The login settings with the roles' patterns parsed and the configured
/// anchors read, once at start.
#[derive(Debug)]
pub struct CertAuth {
    pub(super) path: String,
    token_ttl: i64,
    /// None: Tessera's roots, read at each login (a new hierarchy counts at once).
    anchors: Option<Vec<CertificateDer<'static>>>,
    roles: Vec<CertRole>,
}

#[derive(Debug)]
struct CertRole {
    name: String,
    spiffe_ids: Vec<UriPattern>,
    dns_names: Vec<DnsPattern>,
    policies: Vec<String>,
}

impl CertAuth {
    /// Fails when `trusted_ca_file` cannot be read or holds no certificate.
    pub fn load(config: &CertAuthConfig) -> Result<Self, String> {
        let anchors = match &config.trusted_ca_file {
            Some(path) => {
                let anchors = CertificateDer::pem_file_iter(path)
                    .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| format!("vault.cert.trusted_ca_file {}: {e}", path.display()))?;
                if anchors.is_empty() {
                    return Err(format!("vault.cert.trusted_ca_file {} holds no certificate", path.display()));
                }
                Some(anchors)
            }
            None => None,
        };
        let roles = config
            .roles
            .iter()
            .map(|role| {
                Ok(CertRole {
                    name: role.name.clone(),
                    spiffe_ids: role.spiffe_ids.iter().map(|p| UriPattern::parse(p)).collect::<Result<_, _>>()?,
                    dns_names: role.dns_names.iter().map(|p| DnsPattern::parse(p)).collect::<Result<_, _>>()?,
                    policies: role.policies.clone(),
                })
            })
            .collect::<Result<_, String>>()
            .map_err(|e| format!("vault.cert.roles: {e}"))?;
        Ok(Self { path: config.path.clone(), token_ttl: config.token_ttl.duration().whole_seconds(), anchors, roles })
    }
}

/// Why a login is refused, as the audit log records it.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("the certificate does not chain to a trusted anchor")]
    UnknownChain,
    #[error("the certificate has expired or is not yet valid")]
    Expired,
    #[error("the certificate does not allow clientAuth")]
    NotForClients,
    #[error("the certificate or a CA certificate on its chain is revoked")]
    Revoked,
    #[error("no role matches the certificate's SPIFFE ID or DNS names")]
    NoRole,
}

#[derive(Debug, Default, Deserialize)]
struct LoginRequest {
    /// Restricts the login to this role (Vault's `name`); empty: any.
    #[serde(default)]
    name: String,
}

/// The names a certificate is known by, as its SANs give them.
struct Identity {
    spiffe_ids: Vec<UriName>,
    dns_names: Vec<String>,
}

impl Identity {
    /// Who logged in: the first SPIFFE ID, else the first DNS name.
    fn subject(&self) -> String {
        self.spiffe_ids.first().map(UriName::to_string).or_else(|| self.dns_names.first().cloned()).unwrap_or_default()
    }
}

impl CertRole {
    fn matches(&self, identity: &Identity) -> bool {
        identity.spiffe_ids.iter().any(|id| self.spiffe_ids.iter().any(|p| p.matches(id)))
            || identity.dns_names.iter().any(|name| self.dns_names.iter().any(|p| p.matches(name)))
    }
}

/// A certificate login under `auth` with the chain the handshake received.
pub async fn login(
    state: &VaultState,
    auth: &CertAuth,
    presented: &ClientCertificates,
    body: &[u8],
) -> Result<Json<Value>, VaultError> {
    let request: LoginRequest = if body.iter().all(u8::is_ascii_whitespace) {
        LoginRequest::default()
    } else {
        serde_json::from_slice(body)
            .map_err(|_| VaultError::BadRequest("the body must be empty or {\"name\": \"<role>\"}".into()))?
    };
    let named = match request.name.as_str() {
        "" => None,
        name => match auth.roles.iter().find(|r| r.name == name) {
            Some(role) => Some(role),
            None => {
                refuse(state, METHOD, name, "unknown role").await?;
                return Err(VaultError::BadRequest(format!("invalid role name {name:?}")));
            }
        },
    };
    let target = named.map_or("", |r| r.name.as_str());
    let Some((leaf, sent)) = presented.chain() else {
        refuse(state, METHOD, target, "no client certificate").await?;
        return Err(VaultError::BadRequest("client certificate must be supplied".into()));
    };
    let identity = match check(state, auth, leaf, sent).await? {
        Ok(identity) => identity,
        Err(refusal) => {
            refuse(state, METHOD, target, &refusal.to_string()).await?;
            return Err(VaultError::PermissionDenied);
        }
    };
    let role = match named {
        Some(role) => Some(role).filter(|r| r.matches(&identity)),
        None => auth.roles.iter().find(|r| r.matches(&identity)),
    };
    let Some(role) = role else {
        refuse(state, METHOD, target, &Refusal::NoRole.to_string()).await?;
        return Err(VaultError::PermissionDenied);
    };
    let subject = identity.subject();
    let grant = Grant {
        method: METHOD,
        role: &role.name,
        metadata: json!({ "role": role.name, "subject": subject }),
        subject,
        policies: role.policies.clone(),
        ttl: auth.token_ttl,
    };
    mint(state, grant).await
}

/// The certificate's identity if it passes every check; a store failure
/// is the outer error.
async fn check(
    state: &VaultState,
    auth: &CertAuth,
    leaf: &CertificateDer<'static>,
    sent: &[CertificateDer<'static>],
) -> Result<Result<Identity, Refusal>, VaultError> {
    let now = state.clock.unix();
    let (anchors, mut intermediates) = match &auth.anchors {
        Some(anchors) => (anchors.clone(), Vec::new()),
        None => tessera_authorities(state, now).await?,
    };
    intermediates.extend(sent.iter().cloned());
    if let Err(refusal) = verify_chain(anchors, leaf, &intermediates, now) {
        return Ok(Err(refusal));
    }
    for certificate in std::iter::once(leaf).chain(sent) {
        if is_revoked_here(state, certificate).await? {
            return Ok(Err(Refusal::Revoked));
        }
    }
    Ok(identity(leaf))
}

/// Tessera's unexpired roots (the anchors), and every authority certificate
/// not expired or revoked (the intermediates a client may leave out).
async fn tessera_authorities(
    state: &VaultState,
    now: i64,
) -> Result<(Vec<CertificateDer<'static>>, Vec<CertificateDer<'static>>), StoreError> {
    let roots = state
        .store
        .list_authorities()
        .await?
        .into_iter()
        .filter(|a| a.parent_id.is_none() && a.not_after > now)
        .map(|a| CertificateDer::from(a.certificate_der))
        .collect();
    let trusted =
        state.store.trusted_authority_certificates(now).await?.into_iter().map(CertificateDer::from).collect();
    Ok((roots, trusted))
}

/// Chain, validity at Tessera's clock and key usage, as webpki judges a
/// client certificate.
fn verify_chain(
    anchors: Vec<CertificateDer<'static>>,
    leaf: &CertificateDer<'static>,
    intermediates: &[CertificateDer<'static>],
    now: i64,
) -> Result<(), Refusal> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(anchors);
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    // No parsable anchor (none configured, or none unexpired): nothing chains.
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|_| Refusal::UnknownChain)?;
    let now = UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(now).unwrap_or(0)));
    match verifier.verify_client_cert(leaf, intermediates, now) {
        Ok(_) => Ok(()),
        Err(rustls::Error::InvalidCertificate(
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. },
        )) => Err(Refusal::Expired),
        Err(rustls::Error::InvalidCertificate(
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. },
        )) => Err(Refusal::NotForClients),
        Err(_) => Err(Refusal::UnknownChain),
    }
}

/// Whether Tessera issued this very certificate (same serial, same DER)
/// and has revoked it. A certificate it did not issue has no state here.
async fn is_revoked_here(state: &VaultState, certificate: &CertificateDer<'_>) -> Result<bool, StoreError> {
    let Ok((_, parsed)) = X509Certificate::from_der(certificate) else { return Ok(false) };
    match state.store.certificate(parsed.raw_serial()).await {
        Ok(record) => Ok(record.status == CertificateStatus::Revoked
            && record.der.as_deref().is_none_or(|der| der == certificate.as_ref())),
        Err(StoreError::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The SPIFFE IDs and DNS names of a leaf that allows clientAuth; an
/// extended key usage extension is required, as Tessera's leaves carry one.
fn identity(leaf: &CertificateDer<'_>) -> Result<Identity, Refusal> {
    let (_, parsed) = X509Certificate::from_der(leaf).map_err(|_| Refusal::UnknownChain)?;
    let for_clients = parsed.extended_key_usage().ok().flatten().is_some_and(|eku| eku.value.client_auth);
    if !for_clients {
        return Err(Refusal::NotForClients);
    }
    let mut identity = Identity { spiffe_ids: Vec::new(), dns_names: Vec::new() };
    if let Ok(Some(san)) = parsed.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::URI(uri) if uri.starts_with("spiffe://") => {
                    identity.spiffe_ids.extend(UriName::parse(uri).ok());
                }
                GeneralName::DNSName(dns) => identity.dns_names.push(dns.to_ascii_lowercase()),
                _ => {}
            }
        }
    }
    Ok(identity)
}
