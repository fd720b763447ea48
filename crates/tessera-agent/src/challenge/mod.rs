//! Answering ACME challenges for the duration of one order: http-01
//! (RFC 8555 §8.3) and tls-alpn-01 (RFC 8737) on listeners of their own,
//! dns-01 (§8.4) through an operator's hook command. Listeners open when
//! the first challenge needs them and close when the order is done, so the
//! ports are free between renewals.

mod dns01;
mod http01;
mod tls_alpn01;

use instant_acme::{AuthorizedIdentifier, ChallengeType, Identifier as AcmeIdentifier};

use super::args::SolverSettings;
use super::error::AgentError;
use dns01::Dns01Hook;
use http01::Http01Server;
use tls_alpn01::TlsAlpn01Server;

/// The challenge types this agent can answer for `identifier`, best first:
/// http-01 needs nothing but a port, tls-alpn-01 the same, dns-01 runs an
/// outside command. Wildcards can only be proven with dns-01.
pub fn preferred(settings: &SolverSettings, identifier: &AuthorizedIdentifier<'_>) -> Vec<ChallengeType> {
    let mut kinds = Vec::new();
    if !identifier.wildcard {
        if settings.http01.is_some() {
            kinds.push(ChallengeType::Http01);
        }
        if settings.tls_alpn01.is_some() {
            kinds.push(ChallengeType::TlsAlpn01);
        }
    }
    if settings.dns01_hook.is_some() && matches!(identifier.identifier, AcmeIdentifier::Dns(_)) {
        kinds.push(ChallengeType::Dns01);
    }
    kinds
}

/// Everything published for one order; [`Responders::finish`] takes it all down.
pub struct Responders {
    settings: SolverSettings,
    http01: Option<Http01Server>,
    tls_alpn01: Option<TlsAlpn01Server>,
    dns01: Vec<Dns01Hook>,
}

impl Responders {
    pub fn new(settings: &SolverSettings) -> Self {
        Self { settings: settings.clone(), http01: None, tls_alpn01: None, dns01: Vec::new() }
    }

    /// Makes the proof for one challenge visible to the CA.
    pub async fn publish(
        &mut self,
        kind: &ChallengeType,
        identifier: &AuthorizedIdentifier<'_>,
        token: &str,
        key_authorization: &instant_acme::KeyAuthorization,
    ) -> Result<(), AgentError> {
        let name = identifier.to_string();
        match kind {
            ChallengeType::Http01 => {
                let Some(addr) = self.settings.http01 else { return Err(unsupported(kind, &name)) };
                if self.http01.is_none() {
                    self.http01 = Some(Http01Server::bind(addr).await.map_err(|e| failed("http-01", &name, e))?);
                }
                if let Some(server) = &self.http01 {
                    server.answer(token, key_authorization.as_str());
                }
            }
            ChallengeType::TlsAlpn01 => {
                let Some(addr) = self.settings.tls_alpn01 else { return Err(unsupported(kind, &name)) };
                if self.tls_alpn01.is_none() {
                    self.tls_alpn01 =
                        Some(TlsAlpn01Server::bind(addr).await.map_err(|e| failed("tls-alpn-01", &name, e))?);
                }
                if let Some(server) = &self.tls_alpn01 {
                    server
                        .answer(identifier.identifier, key_authorization)
                        .map_err(|e| failed("tls-alpn-01", &name, e))?;
                }
            }
            ChallengeType::Dns01 => {
                let Some(hook) = &self.settings.dns01_hook else { return Err(unsupported(kind, &name)) };
                let domain = match identifier.identifier {
                    AcmeIdentifier::Dns(domain) => domain.clone(),
                    _ => return Err(unsupported(kind, &name)),
                };
                let record = Dns01Hook::add(hook, &domain, &key_authorization.dns_value())
                    .await
                    .map_err(|e| failed("dns-01", &name, e))?;
                self.dns01.push(record);
            }
            _ => return Err(unsupported(kind, &name)),
        }
        Ok(())
    }

    /// Closes the listeners and removes the DNS records (failures to remove
    /// are logged: the certificate is not at stake).
    pub async fn finish(self) {
        drop(self.http01);
        drop(self.tls_alpn01);
        for record in self.dns01 {
            record.remove().await;
        }
    }
}

fn unsupported(kind: &ChallengeType, identifier: &str) -> AgentError {
    AgentError::Challenge {
        kind: "chosen",
        identifier: identifier.to_owned(),
        reason: format!("{kind:?} is not configured"),
    }
}

fn failed(kind: &'static str, identifier: &str, reason: impl std::fmt::Display) -> AgentError {
    AgentError::Challenge { kind, identifier: identifier.to_owned(), reason: reason.to_string() }
}
