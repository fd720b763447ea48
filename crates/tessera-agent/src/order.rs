//! One certificate order, start to finish (RFC 8555 §7.4): newOrder (with
//! `replaces` when renewing, RFC 9773 §5), a challenge answered per
//! authorization, a fresh P-256 key and CSR, finalize, download.

use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, CertificateIdentifier, Identifier as AcmeIdentifier, NewOrder, OrderStatus,
    RetryPolicy,
};
use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType};

use super::account::is_problem;
use super::args::SolverSettings;
use super::certificate::CertificateChain;
use super::challenge::{Responders, preferred};
use super::error::AgentError;
use tessera_core::Identifier;

/// How long the CA may take to validate, and then to issue.
const POLL: RetryPolicy =
    RetryPolicy::new().initial_delay(Duration::from_millis(250)).backoff(1.5).timeout(Duration::from_secs(120));

/// A new certificate and the key it certifies.
pub struct Issued {
    pub key_pem: String,
    pub chain: CertificateChain,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued").field("serial", &self.chain.serial_hex).finish_non_exhaustive()
    }
}

/// Orders a certificate for `identifiers`, replacing `replaces` if given.
pub async fn obtain(
    account: &Account,
    identifiers: &[Identifier],
    solvers: &SolverSettings,
    replaces: Option<CertificateIdentifier<'static>>,
) -> Result<Issued, AgentError> {
    let wanted: Vec<AcmeIdentifier> = identifiers.iter().map(to_acme).collect::<Result<_, _>>()?;
    let mut order = new_order(account, &wanted, replaces).await?;
    let names = identifiers.iter().map(Identifier::value).collect::<Vec<_>>().join(", ");
    let mut responders = Responders::new(solvers);
    let validated = validate(&mut order, &names, solvers, &mut responders).await;
    responders.finish().await;
    validated?;

    let key = KeyPair::generate().map_err(|e| AgentError::Key(e.to_string()))?;
    let csr = csr(identifiers, &key)?;
    order.finalize_csr(&csr).await.map_err(|source| AgentError::Acme { step: "finalize", source })?;
    let pem = order
        .poll_certificate(&POLL)
        .await
        .map_err(|source| AgentError::Acme { step: "certificate download", source })?;
    let chain = CertificateChain::from_pem(&pem).map_err(AgentError::BadCertificate)?;
    let key_pem = key.serialize_pem();
    if !chain.matches_key(&key_pem) {
        return Err(AgentError::BadCertificate("it does not certify the key the agent sent".into()));
    }
    if !chain.covers(identifiers) {
        return Err(AgentError::BadCertificate("it does not name every --domain".into()));
    }
    Ok(Issued { key_pem, chain })
}

/// newOrder, with `replaces` when renewing. The order is placed again
/// without it when the CA does not support ARI, says the certificate was
/// already replaced (an earlier attempt got that far), or accepts the order
/// but does not echo `replaces` back (RFC 9773 §5 says it must; instant-acme
/// then refuses the order, which the CA has already recorded).
async fn new_order(
    account: &Account,
    wanted: &[AcmeIdentifier],
    replaces: Option<CertificateIdentifier<'static>>,
) -> Result<instant_acme::Order, AgentError> {
    let failed = |source| AgentError::Acme { step: "newOrder", source };
    let Some(old) = replaces else { return account.new_order(&NewOrder::new(wanted)).await.map_err(failed) };
    match account.new_order(&NewOrder::new(wanted).replaces(old)).await {
        Ok(order) => Ok(order),
        Err(e) if is_replaces_refusal(&e) => {
            tracing::info!(reason = %e, "ordering again without `replaces`");
            account.new_order(&NewOrder::new(wanted)).await.map_err(failed)
        }
        Err(e) => Err(failed(e)),
    }
}

fn is_replaces_refusal(error: &instant_acme::Error) -> bool {
    match error {
        instant_acme::Error::Unsupported(_) => true,
        instant_acme::Error::Other(inner) => inner.to_string().starts_with("replaces field mismatch"),
        _ => is_problem(error, "alreadyReplaced"),
    }
}

/// Answers a challenge for every pending authorization, then waits for the
/// order to become ready.
async fn validate(
    order: &mut instant_acme::Order,
    names: &str,
    solvers: &SolverSettings,
    responders: &mut Responders,
) -> Result<(), AgentError> {
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(|source| AgentError::Acme { step: "authorization", source })?;
        match authz.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            status => {
                return Err(AgentError::Challenge {
                    kind: "any",
                    identifier: authz.identifier().to_string(),
                    reason: format!("the authorization is {status:?}"),
                });
            }
        }
        let identifier = authz.identifier().to_string();
        let offered: Vec<_> = authz.challenges.iter().map(|c| c.r#type.clone()).collect();
        let kind = preferred(solvers, &authz.identifier())
            .into_iter()
            .find(|k| offered.contains(k))
            .ok_or_else(|| AgentError::NoSolver { identifier: identifier.clone(), offered: format!("{offered:?}") })?;
        let mut challenge = authz
            .challenge(kind.clone())
            .ok_or_else(|| AgentError::NoSolver { identifier: identifier.clone(), offered: format!("{offered:?}") })?;
        let key_authorization = challenge.key_authorization();
        let token = challenge.token.clone();
        responders.publish(&kind, challenge.identifier(), &token, &key_authorization).await?;
        tracing::info!(%identifier, challenge = ?kind, "challenge ready");
        challenge.set_ready().await.map_err(|source| AgentError::Acme { step: "challenge", source })?;
    }
    let status = order.poll_ready(&POLL).await.map_err(|source| AgentError::Acme { step: "validation", source })?;
    if status != OrderStatus::Ready {
        let detail = order.state().error.as_ref().map(|p| p.to_string()).unwrap_or_else(|| "no detail".into());
        return Err(AgentError::OrderFailed { identifiers: names.to_owned(), status: format!("{status:?}"), detail });
    }
    Ok(())
}

fn to_acme(identifier: &Identifier) -> Result<AcmeIdentifier, AgentError> {
    match identifier {
        Identifier::Dns(name) => Ok(AcmeIdentifier::Dns(name.clone())),
        Identifier::Ip(ip) => Ok(AcmeIdentifier::Ip(*ip)),
        Identifier::Uri(uri) => Err(AgentError::Key(format!("ACME cannot order the URI {uri}"))),
    }
}

/// A CSR naming exactly the identifiers, with an empty subject (the names
/// live in the subjectAltName).
fn csr(identifiers: &[Identifier], key: &KeyPair) -> Result<Vec<u8>, AgentError> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = identifiers
        .iter()
        .map(|i| match i {
            Identifier::Dns(name) => {
                name.as_str().try_into().map(SanType::DnsName).map_err(|e: rcgen::Error| AgentError::Key(e.to_string()))
            }
            Identifier::Ip(ip) => Ok(SanType::IpAddress(*ip)),
            Identifier::Uri(uri) => Err(AgentError::Key(format!("ACME cannot order the URI {uri}"))),
        })
        .collect::<Result<_, _>>()?;
    let request = params.serialize_request(key).map_err(|e| AgentError::Key(e.to_string()))?;
    Ok(request.der().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_of_replaces_order_again() {
        let problem = |kind: &str| {
            instant_acme::Error::Api(instant_acme::Problem {
                r#type: Some(format!("urn:ietf:params:acme:error:{kind}")),
                detail: None,
                status: Some(409),
                subproblems: Vec::new(),
            })
        };
        assert!(is_replaces_refusal(&problem("alreadyReplaced")));
        assert!(is_replaces_refusal(&instant_acme::Error::Unsupported("ACME renewal information (ARI)")));
        assert!(is_replaces_refusal(&instant_acme::Error::Other("replaces field mismatch: expected x".into())));
        assert!(!is_replaces_refusal(&problem("rateLimited")));
        assert!(!is_replaces_refusal(&instant_acme::Error::Other("connection refused".into())));
    }
}
