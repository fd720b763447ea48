//! http-01 (RFC 8555 §8.3): GET `http://{name}:{port}/.well-known/
//! acme-challenge/{token}` and compare the body with the key authorization.
//!
//! The fetch is a request into the network Tessera stands in, made on an
//! account holder's behalf, so it goes no further than the account could
//! have a certificate for: redirects are followed by hand, at most
//! [`MAX_REDIRECTS`], only to http on the validation port or https on 443
//! (§8.3), and only to names and addresses the account's policy allows.
//! At most [`MAX_BODY`] bytes are read, and no error quotes what the target
//! sent: a failure says what was wrong (a status, a length), so that an
//! account cannot read internal pages through its challenge errors.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::LOCATION;
use url::{Host, Url};

use super::{ValidationError, ValidationResolver, ValidatorSetupError};
use crate::authority::Policy;
use crate::issuance::Identifier;

/// Redirects followed before the validation fails.
const MAX_REDIRECTS: usize = 3;
/// A key authorization is 87 bytes (token, '.', thumbprint); a longer body
/// is not one, and is not read further.
const MAX_BODY: usize = 512;
/// The only port an https redirect may name (RFC 8555 §8.3).
const HTTPS_PORT: u16 = 443;

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

/// The client every http-01 validation shares. It follows no redirect by
/// itself: [`validate`] judges each one.
pub fn client(resolver: &ValidationResolver, timeout: Duration) -> Result<reqwest::Client, ValidatorSetupError> {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(ViaResolver(resolver.clone())))
        .redirect(reqwest::redirect::Policy::none())
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
    policy: &Policy,
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
    let first = format!("http://{host}:{port}/.well-known/acme-challenge/{token}");
    let mut url = Url::parse(&first)
        .map_err(|_| ValidationError::Unauthorized(format!("{identifier} does not make an http-01 URL")))?;
    let mut redirects = 0;
    let response = loop {
        let at = Hop { first: &first, redirects };
        let response = client.get(url.clone()).send().await.map_err(|e| at.failure(&e))?;
        if !response.status().is_redirection() {
            break response;
        }
        if redirects == MAX_REDIRECTS {
            return Err(ValidationError::Unauthorized(format!("{first} redirected more than {MAX_REDIRECTS} times")));
        }
        redirects += 1;
        url = next_hop(&url, response.headers().get(LOCATION), policy, port)
            .map_err(|why| ValidationError::Unauthorized(format!("{first}: redirect {redirects} {why}")))?;
    };
    let at = Hop { first: &first, redirects };
    let status = response.status();
    if !status.is_success() {
        return Err(ValidationError::Unauthorized(format!("{} answered {status}", at.describe())));
    }
    let body = read_capped(response).await.map_err(|e| at.failure(&e))?;
    let Some(body) = body else {
        return Err(ValidationError::IncorrectResponse(format!(
            "{} answered more than {MAX_BODY} bytes, which is not a key authorization",
            at.describe()
        )));
    };
    let answered = body.trim_ascii_end();
    if answered == key_authorization.as_bytes() {
        return Ok(());
    }
    let hint = match key_authorization.split_once('.') {
        Some((token, _)) if answered.starts_with(format!("{token}.").as_bytes()) => {
            " (this challenge's token with another account key's thumbprint)"
        }
        _ => "",
    };
    Err(ValidationError::IncorrectResponse(format!(
        "{} answered {} bytes that are not the key authorization{hint}",
        at.describe(),
        answered.len()
    )))
}

/// Where in a redirect chain a response came from, for error texts that
/// name only the URL Tessera made, never one a server sent.
struct Hop<'a> {
    first: &'a str,
    redirects: usize,
}

impl Hop<'_> {
    fn describe(&self) -> String {
        match self.redirects {
            0 => self.first.to_owned(),
            n => format!("{} (after {n} redirect{})", self.first, if n == 1 { "" } else { "s" }),
        }
    }

    /// A failed fetch, by kind only: reqwest's own text may carry a URL a
    /// server sent, or parts of its answer.
    fn failure(&self, e: &reqwest::Error) -> ValidationError {
        let what = if e.is_timeout() {
            "timed out".to_owned()
        } else if let Some(io) = io_cause(e) {
            format!("failed: {}", io.kind())
        } else if e.is_connect() {
            "failed: could not connect".to_owned()
        } else if e.is_body() || e.is_decode() {
            "failed while the answer was read".to_owned()
        } else {
            "failed: the answer is not HTTP".to_owned()
        };
        ValidationError::Connection(format!("fetching {} {what}", self.describe()))
    }
}

fn io_cause(e: &reqwest::Error) -> Option<&std::io::Error> {
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        source = cause.source();
    }
    None
}

/// The URL a redirect leads to, if it may be followed: http on the
/// validation port or https on 443 (RFC 8555 §8.3), to a name or address
/// the policy allows. The refusal says which rule, not where it pointed.
fn next_hop(
    from: &Url,
    location: Option<&reqwest::header::HeaderValue>,
    policy: &Policy,
    http_port: u16,
) -> Result<Url, &'static str> {
    let location = location.and_then(|l| l.to_str().ok()).ok_or("has no readable Location")?;
    let to = from.join(location).map_err(|_| "has no readable Location")?;
    let allowed_port = match to.scheme() {
        "http" => http_port,
        "https" => HTTPS_PORT,
        _ => return Err("leaves http and https"),
    };
    if to.port_or_known_default() != Some(allowed_port) {
        return Err("goes to a port RFC 8555 §8.3 does not allow");
    }
    let host = match to.host() {
        Some(Host::Domain(name)) => Identifier::dns(name).ok(),
        Some(Host::Ipv4(ip)) => Some(Identifier::Ip(ip.into())),
        Some(Host::Ipv6(ip)) => Some(Identifier::Ip(ip.into())),
        None => None,
    };
    match host {
        Some(host) if policy.allows(&host) => Ok(to),
        _ => Err("goes to a name or address the account's policy does not allow"),
    }
}

/// The body, or None when it is longer than [`MAX_BODY`] (then the rest is
/// never read).
async fn read_capped(mut response: reqwest::Response) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > MAX_BODY {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authority::PolicyRules;

    fn policy() -> Policy {
        let rules: PolicyRules = serde_json::from_value(serde_json::json!({
            "dns": ["*.example.test"],
            "ip_ranges": ["192.0.2.0/24"],
            "max_ttl": "1h",
            "default_ttl": "1h",
        }))
        .expect("rules");
        Policy::new("p", rules).expect("policy")
    }

    fn hop(location: &str) -> Result<Url, &'static str> {
        let from = Url::parse("http://www.example.test:80/.well-known/acme-challenge/t").expect("url");
        let value = reqwest::header::HeaderValue::from_str(location).expect("header");
        next_hop(&from, Some(&value), &policy(), 80)
    }

    #[test]
    fn redirects_stay_on_the_validation_ports_and_within_the_policy() {
        for allowed in ["/moved", "http://other.example.test/x", "https://other.example.test/x", "http://192.0.2.7/x"] {
            assert!(hop(allowed).is_ok(), "{allowed}");
        }
        for (refused, why) in [
            ("http://other.example.test:8080/x", "port"),
            ("https://other.example.test:8443/x", "port"),
            ("ftp://other.example.test/x", "leaves"),
            ("http://db.corp.internal/x", "policy"),
            ("http://10.0.0.5/x", "policy"),
            ("http://[::1]/x", "policy"),
            ("http://localhost/x", "policy"),
        ] {
            let error = hop(refused).expect_err(refused);
            assert!(error.contains(why), "{refused}: {error}");
        }
    }
}
