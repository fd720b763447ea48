//! Challenge validation (RFC 8555 §8, RFC 8737, RFC 8738): http-01, dns-01
//! and tls-alpn-01. The ports and the DNS resolver are ordinary settings
//! (`acme.http01_port`, `acme.tlsalpn01_port`, `acme.dns_resolver`), as
//! Pebble's are, so tests and interop runs validate on loopback.
//!
//! A validation is a request into Tessera's own network on an account's
//! behalf. It reaches only what the account's policy allows (http-01
//! redirects), and its errors, which the account reads, say what was wrong
//! without quoting anything the target sent: no body, TXT record,
//! certificate field or error text of a peer's making.

mod dns01;
mod http01;
mod resolver;
mod tls_alpn01;

use std::time::Duration;

use crate::authority::Policy;
use crate::config::AcmeConfig;
pub use crate::config::ChallengeKind;
use crate::issuance::Identifier;
pub use resolver::ValidationResolver;

/// Why a validation failed, in the ACME error categories it maps to.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ValidationError {
    #[error("{0}")]
    Dns(String),
    #[error("{0}")]
    Connection(String),
    #[error("{0}")]
    Tls(String),
    #[error("{0}")]
    IncorrectResponse(String),
    #[error("{0}")]
    Unauthorized(String),
}

#[derive(Debug, thiserror::Error)]
#[error("validation setup: {0}")]
pub struct ValidatorSetupError(String);

/// Checks challenges against the identifier's servers.
#[derive(Debug, Clone)]
pub struct Validator {
    http01_port: u16,
    tlsalpn01_port: u16,
    timeout: Duration,
    resolver: ValidationResolver,
    http: reqwest::Client,
}

impl Validator {
    pub fn new(config: &AcmeConfig) -> Result<Self, ValidatorSetupError> {
        let resolver = ValidationResolver::new(config.dns_resolver)?;
        let timeout = Duration::from_secs(config.validation_timeout_seconds);
        let http = http01::client(&resolver, timeout)?;
        Ok(Self { http01_port: config.http01_port, tlsalpn01_port: config.tlsalpn01_port, timeout, resolver, http })
    }

    /// One validation attempt of `kind` for `identifier`, reaching no name
    /// or address beyond what `policy` (the account's) allows.
    pub async fn validate(
        &self,
        kind: ChallengeKind,
        identifier: &Identifier,
        token: &str,
        key_authorization: &str,
        policy: &Policy,
    ) -> Result<(), ValidationError> {
        let attempt = async {
            match kind {
                ChallengeKind::Http01 => {
                    let port = self.http01_port;
                    http01::validate(&self.http, &self.resolver, policy, identifier, port, token, key_authorization)
                        .await
                }
                ChallengeKind::Dns01 => dns01::validate(&self.resolver, identifier, key_authorization).await,
                ChallengeKind::TlsAlpn01 => {
                    tls_alpn01::validate(&self.resolver, identifier, self.tlsalpn01_port, key_authorization).await
                }
            }
        };
        tokio::time::timeout(self.timeout, attempt).await.unwrap_or_else(|_| {
            Err(ValidationError::Connection(format!(
                "{} validation of {identifier} timed out after {}s",
                kind.as_str(),
                self.timeout.as_secs()
            )))
        })
    }
}

/// base64url(SHA-256(key authorization)), as dns-01 and tls-alpn-01 use it.
fn key_authorization_digest(key_authorization: &str) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, key_authorization.as_bytes()).as_ref().to_vec()
}
