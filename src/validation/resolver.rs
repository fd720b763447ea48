//! Name resolution for validation: the configured DNS server (tests and
//! interop runs point it at a local one) or the system resolver. Answers
//! are not cached, so a record the client just published is seen.
//! `localhost` and the names below it are loopback without asking DNS
//! (RFC 6761 §6.3; hickory answers them itself), whatever a DNS server
//! would say. Errors name the kind of failure, never what a server
//! answered.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;

use super::{ValidationError, ValidatorSetupError};

#[derive(Clone)]
pub struct ValidationResolver {
    inner: Arc<TokioResolver>,
}

impl std::fmt::Debug for ValidationResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ValidationResolver")
    }
}

impl ValidationResolver {
    pub fn new(server: Option<SocketAddr>) -> Result<Self, ValidatorSetupError> {
        let mut builder = match server {
            Some(addr) => {
                let connection = |mut c: ConnectionConfig| {
                    c.port = addr.port();
                    c
                };
                let name_server = NameServerConfig::new(
                    addr.ip(),
                    true,
                    vec![connection(ConnectionConfig::udp()), connection(ConnectionConfig::tcp())],
                );
                TokioResolver::builder_with_config(
                    ResolverConfig::from_name_servers(vec![name_server]),
                    TokioRuntimeProvider::default(),
                )
            }
            None => TokioResolver::builder_tokio().map_err(|e| ValidatorSetupError(format!("system resolver: {e}")))?,
        };
        builder.options_mut().cache_size = 0;
        let resolver = builder.build().map_err(|e| ValidatorSetupError(format!("resolver: {e}")))?;
        Ok(Self { inner: Arc::new(resolver) })
    }

    /// The addresses of `name`, IPv4 first.
    pub async fn addresses(&self, name: &str) -> Result<Vec<IpAddr>, ValidationError> {
        let lookup = self
            .inner
            .lookup_ip(fqdn(name))
            .await
            .map_err(|e| ValidationError::Dns(format!("the address lookup of {name} {}", failure(&e))))?;
        let mut addresses: Vec<IpAddr> = lookup.iter().collect();
        addresses.sort_by_key(|ip| ip.is_ipv6());
        if addresses.is_empty() {
            return Err(ValidationError::Dns(format!("no address for {name}")));
        }
        Ok(addresses)
    }

    /// The TXT strings at `name`; an empty list when there are none.
    pub async fn txt(&self, name: &str) -> Result<Vec<String>, ValidationError> {
        match self.inner.txt_lookup(fqdn(name)).await {
            Ok(lookup) => Ok(lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    hickory_resolver::proto::rr::RData::TXT(txt) => Some(txt.to_string()),
                    _ => None,
                })
                .collect()),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Ok(Vec::new()),
            Err(e) => Err(ValidationError::Dns(format!("the TXT lookup of {name} {}", failure(&e)))),
        }
    }
}

/// What went wrong in a lookup, in words of Tessera's own: a resolver's
/// error text can carry records a server sent (its SOA, say).
fn failure(e: &NetError) -> &'static str {
    if e.is_nx_domain() {
        "found no such name (NXDOMAIN)"
    } else if e.is_no_records_found() {
        "found no record"
    } else if matches!(e, NetError::Timeout) {
        "timed out"
    } else {
        "failed"
    }
}

fn fqdn(name: &str) -> String {
    if name.ends_with('.') { name.to_owned() } else { format!("{name}.") }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// hickory answers `localhost` itself; this pins that a DNS server
    /// never gets to say otherwise.
    #[tokio::test]
    async fn localhost_is_loopback_without_asking_dns() {
        // Nothing listens on port 9 of loopback: a DNS query would fail.
        let nowhere = SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 9));
        let resolver = ValidationResolver::new(Some(nowhere)).expect("resolver");
        for name in ["localhost", "LocalHost.", "app.localhost"] {
            let addresses = resolver.addresses(name).await.expect(name);
            assert!(addresses.iter().all(IpAddr::is_loopback), "{name}: {addresses:?}");
        }
    }
}
