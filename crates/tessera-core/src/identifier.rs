//! The names a certificate can carry, in one checked form shared by CSR
//! parsing, policy, ACME, storage and the agent.

use std::fmt;
use std::net::IpAddr;

use crate::dns_name::is_dns_name;
use crate::uri::{UriError, UriName};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Identifier {
    /// A lowercase DNS name without a trailing dot; may start with `*.`.
    Dns(String),
    Ip(IpAddr),
    /// An absolute URI, such as a SPIFFE ID, in its one certified form.
    Uri(UriName),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentifierError {
    #[error("{0:?} is not a valid DNS name")]
    BadDnsName(String),
    #[error("{0:?} is not a valid IP address")]
    BadIp(String),
    #[error("URI {0:?} {1}")]
    BadUri(String, UriError),
    #[error("{0:?} is not tagged dns:, ip: or uri:")]
    BadTag(String),
}

impl Identifier {
    pub fn dns(name: &str) -> Result<Self, IdentifierError> {
        let lower = name.to_ascii_lowercase();
        let lower = lower.strip_suffix('.').unwrap_or(&lower).to_string();
        if is_dns_name(&lower) { Ok(Self::Dns(lower)) } else { Err(IdentifierError::BadDnsName(name.to_string())) }
    }

    pub fn ip(text: &str) -> Result<Self, IdentifierError> {
        text.parse().map(Self::Ip).map_err(|_| IdentifierError::BadIp(text.to_string()))
    }

    pub fn uri(text: &str) -> Result<Self, IdentifierError> {
        UriName::parse(text).map(Self::Uri).map_err(|e| IdentifierError::BadUri(text.to_string(), e))
    }

    /// The stored form: `dns:…`, `ip:…` or `uri:…`.
    pub fn to_tagged(&self) -> String {
        match self {
            Self::Dns(n) => format!("dns:{n}"),
            Self::Ip(ip) => format!("ip:{ip}"),
            Self::Uri(u) => format!("uri:{u}"),
        }
    }

    pub fn from_tagged(s: &str) -> Result<Self, IdentifierError> {
        match s.split_once(':') {
            Some(("dns", v)) => Self::dns(v),
            Some(("ip", v)) => Self::ip(v),
            Some(("uri", v)) => Self::uri(v),
            _ => Err(IdentifierError::BadTag(s.to_string())),
        }
    }

    /// Parses a name given without a tag: an IP if it is one, a URI if it has a
    /// scheme, otherwise a DNS name.
    pub fn guess(s: &str) -> Result<Self, IdentifierError> {
        if let Ok(ip) = s.parse::<IpAddr>() {
            return Ok(Self::Ip(ip));
        }
        if s.contains("://") || s.starts_with("urn:") {
            return Self::uri(s);
        }
        Self::dns(s)
    }

    /// The identifier type as ACME and the API name it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Dns(_) => "dns",
            Self::Ip(_) => "ip",
            Self::Uri(_) => "uri",
        }
    }

    pub fn value(&self) -> String {
        match self {
            Self::Dns(n) => n.clone(),
            Self::Ip(ip) => ip.to_string(),
            Self::Uri(u) => u.to_string(),
        }
    }
}

impl fmt::Display for Identifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_tagged())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_are_normalised_and_checked() {
        assert_eq!(Identifier::dns("Web.Example.TEST."), Ok(Identifier::Dns("web.example.test".into())));
        assert!(Identifier::dns("*.example.test").is_ok());
        for bad in
            ["", "a..b", "-a.test", "a b.test", "a.*.test", "ex@mple.test", &"a".repeat(64), "10.0.0.1", "*.0.1", "a.1"]
        {
            assert!(Identifier::dns(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn tagged_forms_round_trip() {
        for name in [
            Identifier::dns("a.test").expect("dns"),
            Identifier::ip("::1").expect("ip"),
            Identifier::uri("spiffe://tessera.test/ns/a/sa/b").expect("uri"),
        ] {
            assert_eq!(Identifier::from_tagged(&name.to_tagged()), Ok(name));
        }
        assert_eq!(Identifier::guess("127.0.0.1"), Identifier::ip("127.0.0.1"));
        assert_eq!(Identifier::guess("spiffe://x/y"), Identifier::uri("spiffe://x/y"));
    }
}
