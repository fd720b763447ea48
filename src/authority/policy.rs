//! Issuance policies: which identifiers, key types and lifetimes a request
//! under a named policy may have.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use time::Duration;

use super::pattern::{DnsPattern, UriPattern};
use super::ttl::{MAX_TTL, compared_ttls, format_ttl, parse_ttl};
use crate::issuance::{CheckedCsr, Identifier, KeyType};

/// The rules as written (API and storage form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRules {
    /// Exact names, or `*.suffix` for every name below `suffix` at any depth.
    #[serde(default)]
    pub dns: Vec<String>,
    /// CIDR ranges.
    #[serde(default)]
    pub ip_ranges: Vec<String>,
    /// Exact URIs, or `base/*` for every URI whose path continues `base`'s
    /// by one or more segments. Judged as parsed URIs, as names are.
    #[serde(default)]
    pub uris: Vec<String>,
    /// Allowed subject key types; empty allows every supported type.
    #[serde(default)]
    pub key_types: Vec<KeyType>,
    pub max_ttl: String,
    pub default_ttl: String,
    /// Refuse CSRs whose ECDSA self-signature is not in low-S form. Off by
    /// default: OpenSSL and Go sign high-S about half the time; the
    /// `tessera_high_s_signatures` metric shows whether turning it on is safe.
    #[serde(default)]
    pub require_low_s: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error("policy name {0:?} must be 1-63 characters of a-z, 0-9 and '-', starting with a letter or digit")]
    BadName(String),
    #[error("{field}: {reason}")]
    BadRule { field: &'static str, reason: String },
    #[error("the policy does not allow {0}")]
    IdentifierNotAllowed(Identifier),
    #[error("the policy does not allow {0} keys")]
    KeyTypeNotAllowed(&'static str),
    #[error("requested lifetime {requested} exceeds the policy maximum {max}")]
    TtlTooLong { requested: String, max: String },
    #[error("the request names no identifier")]
    NoIdentifiers,
    #[error("the CSR's ECDSA signature is not in low-S form (S above half the curve order); this policy requires it")]
    HighSSignature,
}

/// A validated policy, ready to judge requests.
#[derive(Debug, Clone)]
pub struct Policy {
    name: String,
    rules: PolicyRules,
    dns: Vec<DnsPattern>,
    ip_ranges: Vec<IpNet>,
    uris: Vec<UriPattern>,
    max_ttl: Duration,
    default_ttl: Duration,
}

/// What a policy grants a request.
#[derive(Debug, Clone)]
pub struct Approval {
    pub names: Vec<Identifier>,
    pub ttl: Duration,
}

impl Policy {
    pub fn new(name: &str, rules: PolicyRules) -> Result<Self, PolicyError> {
        if !is_policy_name(name) {
            return Err(PolicyError::BadName(name.to_owned()));
        }
        let bad = |field: &'static str, reason: String| PolicyError::BadRule { field, reason };
        let dns = rules
            .dns
            .iter()
            .map(|p| DnsPattern::parse(p).map_err(|e| bad("dns", e)))
            .collect::<Result<_, PolicyError>>()?;
        let ip_ranges = rules
            .ip_ranges
            .iter()
            .map(|r| r.parse::<IpNet>().map(|n| n.trunc()).map_err(|e| bad("ip_ranges", format!("{r:?}: {e}"))))
            .collect::<Result<_, _>>()?;
        let uris =
            rules.uris.iter().map(|u| UriPattern::parse(u).map_err(|e| bad("uris", e))).collect::<Result<_, _>>()?;
        let ttl = |field: &'static str, text: &str| {
            parse_ttl(text).ok_or_else(|| {
                bad(field, format!("{text:?} is not a duration from 1s to {}, such as 24h or 90d", format_ttl(MAX_TTL)))
            })
        };
        // The contract says each key type once: a list with repeats would
        // be stored and shown as written, off the contract.
        for (i, key_type) in rules.key_types.iter().enumerate() {
            if rules.key_types[..i].contains(key_type) {
                return Err(bad("key_types", format!("{} is listed twice", key_type.as_str())));
            }
        }
        let max_ttl = ttl("max_ttl", &rules.max_ttl)?;
        let default_ttl = ttl("default_ttl", &rules.default_ttl)?;
        if default_ttl > max_ttl {
            return Err(bad("default_ttl", "must not exceed max_ttl".into()));
        }
        Ok(Self { name: name.to_owned(), rules, dns, ip_ranges, uris, max_ttl, default_ttl })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn rules(&self) -> &PolicyRules {
        &self.rules
    }

    pub fn max_ttl(&self) -> Duration {
        self.max_ttl
    }

    /// Judges a request for `names` (the CSR's, as the front end read
    /// them): every name allowed, the CSR's key type allowed, its signature
    /// canonical if the policy asks, the lifetime within the cap. The first
    /// failure is named.
    pub fn approve_names(
        &self,
        names: Vec<Identifier>,
        csr: &CheckedCsr,
        ttl: Option<Duration>,
    ) -> Result<Approval, PolicyError> {
        if names.is_empty() {
            return Err(PolicyError::NoIdentifiers);
        }
        if let Some(denied) = names.iter().find(|n| !self.allows(n)) {
            return Err(PolicyError::IdentifierNotAllowed(denied.clone()));
        }
        let key_type = csr.key_type();
        if !self.rules.key_types.is_empty() && !self.rules.key_types.contains(&key_type) {
            return Err(PolicyError::KeyTypeNotAllowed(key_type.as_str()));
        }
        if self.rules.require_low_s && csr.high_s_signature() == Some(true) {
            return Err(PolicyError::HighSSignature);
        }
        let ttl = ttl.unwrap_or(self.default_ttl);
        if ttl > self.max_ttl {
            let (requested, max) = compared_ttls(ttl, self.max_ttl);
            return Err(PolicyError::TtlTooLong { requested, max });
        }
        Ok(Approval { names, ttl })
    }

    pub fn allows(&self, name: &Identifier) -> bool {
        match name {
            Identifier::Dns(d) => self.dns.iter().any(|p| p.matches(d)),
            Identifier::Ip(ip) => self.ip_ranges.iter().any(|r| r.contains(&normalise(*ip))),
            Identifier::Uri(u) => self.uris.iter().any(|p| p.matches(u)),
        }
    }
}

/// IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
fn normalise(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// 1-63 characters of a-z, 0-9 and `-`, starting with a letter or digit.
pub fn is_policy_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev_like() -> Policy {
        Policy::new(
            "default",
            PolicyRules {
                dns: vec!["localhost".into(), "*.localhost".into(), "*.test".into()],
                ip_ranges: vec!["127.0.0.0/8".into(), "::1/128".into()],
                uris: vec!["spiffe://tessera.test/*".into()],
                key_types: vec![],
                max_ttl: "24h".into(),
                default_ttl: "24h".into(),
                require_low_s: false,
            },
        )
        .expect("valid policy")
    }

    #[test]
    fn names_inside_and_outside() {
        let p = dev_like();
        let ok = |s: &str| p.allows(&Identifier::guess(s).expect("identifier"));
        for allowed in ["localhost", "a.localhost", "x.y.test", "127.0.0.9", "::1", "spiffe://tessera.test/ns/a"] {
            assert!(ok(allowed), "{allowed} refused");
        }
        for refused in ["test", "atest", "example.com", "10.0.0.1", "::2", "spiffe://tessera.test", "spiffe://other/x"]
        {
            assert!(!ok(refused), "{refused} allowed");
        }
    }

    #[test]
    fn uri_patterns_match_parsed_segments() {
        let mut rules = dev_like().rules().clone();
        rules.uris =
            vec!["spiffe://tessera.test/ns/a/*".into(), "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6".into()];
        let p = Policy::new("spiffe", rules).expect("valid policy");
        let ok = |s: &str| p.allows(&Identifier::uri(s).expect("identifier"));
        assert!(ok("spiffe://tessera.test/ns/a/sa/admin"));
        assert!(ok("urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"));
        for outside in ["spiffe://tessera.test/ns/a", "spiffe://tessera.test/ns/ab/sa", "spiffe://tessera.test/ns/b/sa"]
        {
            assert!(!ok(outside), "{outside} allowed");
        }
    }

    #[test]
    fn uri_patterns_are_parsed_like_names() {
        for pattern in [
            "spiffe://tessera.test/ns/a/../*",
            "spiffe://tessera.test/ns/a/*/b",
            "spiffe://tessera.test/ns/a*",
            "spiffe://tessera.test/ns/a//*",
            "spiffe://tessera.test/ns/%61/*",
            "spiffe://tessera.test/ns/a?x=1",
            "https://svc.test/a\\b",
            "urn:uuid:f81d4fae/*",
        ] {
            let mut rules = dev_like().rules().clone();
            rules.uris = vec![pattern.into()];
            assert!(
                matches!(Policy::new("p", rules), Err(PolicyError::BadRule { field: "uris", .. })),
                "{pattern:?} accepted"
            );
        }
    }

    #[test]
    fn ttls_beyond_a_century_are_refused() {
        let mut rules = dev_like().rules().clone();
        rules.max_ttl = "99999999999999d".into();
        assert!(matches!(Policy::new("p", rules), Err(PolicyError::BadRule { field: "max_ttl", .. })));
    }

    fn csr_for(name: &str) -> CheckedCsr {
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec![name.to_owned()]).expect("params");
        CheckedCsr::parse_der(params.serialize_request(&key).expect("csr").der()).expect("valid")
    }

    #[test]
    fn ttl_is_capped_and_defaulted() {
        let p = dev_like();
        let csr = csr_for("a.test");
        let names = vec![Identifier::dns("a.test").expect("dns")];
        assert_eq!(p.approve_names(names.clone(), &csr, None).expect("ok").ttl, Duration::hours(24));
        assert!(matches!(
            p.approve_names(names.clone(), &csr, Some(Duration::hours(25))),
            Err(PolicyError::TtlTooLong { .. })
        ));
        let too_long = p.approve_names(names, &csr, Some(Duration::days(2))).map(|a| a.ttl).map_err(|e| e.to_string());
        assert_eq!(too_long, Err("requested lifetime 48h exceeds the policy maximum 24h".into()));
    }

    #[test]
    fn bad_rules_are_named() {
        let mut rules = dev_like().rules().clone();
        rules.ip_ranges.push("10.0.0.0/33".into());
        assert!(matches!(Policy::new("p", rules), Err(PolicyError::BadRule { field: "ip_ranges", .. })));
        assert!(matches!(Policy::new("Bad Name", dev_like().rules().clone()), Err(PolicyError::BadName(_))));
    }
}
