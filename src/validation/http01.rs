//! http-01 (RFC 8555 §8.3): GET `http://{name}:{port}/.well-known/
//! acme-challenge/{token}` and compare the body with the key authorization.
//! Redirects are followed only as §8.3 allows: at most ten, only to http
//! on the validation port or https on 443 (whose certificate is not checked).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use super::{ValidationError, ValidationResolver, ValidatorSetupError};
use crate::issuance::Identifier;

const MAX_REDIRECTS: usize = 10;
/// A key authorization is under 100 bytes; more than this is not one.
const MAX_BODY: usize = 8 * 1024;

/// Resolves names for reqwest through the validation resolver.
struct ViaResolver(ValidationResolver);

impl reqwest::dns::Resolve for ViaResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let resolver = self.0.clone();
        Box::pin(async move {
            let addresses = resolver
                .addresses(name.as_str())
                .await
                .map_err(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>)?;
            Ok(Box::new(addresses.into_iter().map(|ip| SocketAddr::new(ip, 0))) as reqwest::dns::Addrs)
        })
    }
}

pub fn client(
    resolver: &ValidationResolver,
    port: u16,
    timeout: Duration,
) -> Result<reqwest::Client, ValidatorSetupError> {
    let redirects = reqwest::redirect::Policy::custom(move |attempt| {
        if attempt.previous().len() >= MAX_REDIRECTS {
            return attempt.error("too many redirects");
        }
        let allowed = match (attempt.url().scheme(), attempt.url().port_or_known_default()) {
            ("http", Some(p)) => p == port,
            ("https", Some(p)) => p == 443,
            _ => false,
        };
        if allowed {
            attempt.follow()
        } else {
            attempt.error("redirect to a scheme or port RFC 8555 §8.3 does not allow")
        }
    });
    reqwest::Client::builder()
        .dns_resolver(Arc::new(ViaResolver(resolver.clone())))
        .redirect(redirects)
        .danger_accept_invalid_certs(true)
        .no_proxy()
        .timeout(timeout)
        .user_agent(concat!("Tessera/", env!("CARGO_PKG_VERSION"), " ACME validation"))
        .build()
        .map_err(|e| ValidatorSetupError(format!("http-01 client: {e}")))
}

pub async fn validate(
    client: &reqwest::Client,
    resolver: &ValidationResolver,
    identifier: &Identifier,
    port: u16,
    token: &str,
    key_authorization: &str,
) -> Result<(), ValidationError> {
    let host = match identifier {
        Identifier::Dns(name) => {
            resolver.addresses(name).await?;
            name.clone()
        }
        Identifier::Ip(IpAddr::V4(ip)) => ip.to_string(),
        Identifier::Ip(IpAddr::V6(ip)) => format!("[{ip}]"),
        Identifier::Uri(u) => return Err(ValidationError::Unauthorized(format!("http-01 cannot validate {u}"))),
    };
    let url = format!("http://{host}:{port}/.well-known/acme-challenge/{token}");
    let mut response = client.get(&url).send().await.map_err(|e| {
        let detail = format!("fetching {url}: {}", error_chain(&e));
        if e.is_redirect() { ValidationError::Unauthorized(detail) } else { ValidationError::Connection(detail) }
    })?;
    let status = response.status();
    if !status.is_success() {
        return Err(ValidationError::Unauthorized(format!("{url} answered {status}")));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ValidationError::Connection(format!("reading {url}: {}", error_chain(&e))))?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_BODY {
            return Err(ValidationError::IncorrectResponse(format!("{url} answered more than {MAX_BODY} bytes")));
        }
    }
    let text = String::from_utf8_lossy(&body);
    if text.trim_end() == key_authorization {
        Ok(())
    } else {
        Err(ValidationError::IncorrectResponse(format!(
            "{url} answered {:?}, not the key authorization",
            text.chars().take(120).collect::<String>()
        )))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
