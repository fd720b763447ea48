//! Issuance policies as the admin API receives them (JSON rules), and the
//! durations they are written with.

use std::sync::OnceLock;
use tessera::authority::{Policy, PolicyRules, format_ttl, parse_ttl};

use tessera::issuance::{CheckedCsr, Identifier};
use time::OffsetDateTime;

/// A policy body: if it makes a policy, every name its own rules name is
/// allowed, and every lifetime it grants fits on a certificate.
pub fn policy(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        duration(text);
    }
    let Ok(rules) = serde_json::from_slice::<PolicyRules>(data) else { return };
    for text in [&rules.max_ttl, &rules.default_ttl] {
        duration(text);
    }
    let Ok(policy) = Policy::new("fuzz", rules.clone()) else { return };
    let names = named_by(&rules);
    for name in &names {
        assert!(policy.allows(name), "a policy with rules {rules:?} refuses {name:?}, which they name");
    }
    if names.is_empty() {
        return;
    }
    for ttl in [None, Some(policy.max_ttl())] {
        let approval = policy.approve_names(names.clone(), p256_csr(), ttl);
        if let Ok(approval) = approval {
            assert!(
                OffsetDateTime::now_utc().checked_add(approval.ttl).is_some(),
                "a policy grants a lifetime no certificate can have: {}",
                format_ttl(approval.ttl)
            );
        }
    }
}

/// A duration reads back from the text `format_ttl` writes for it.
fn duration(text: &str) {
    if let Some(ttl) = parse_ttl(text) {
        assert_eq!(parse_ttl(&format_ttl(ttl)), Some(ttl), "{text:?}");
    }
}

/// One name for each rule: the exact name, a name one label below a
/// `*.` suffix, a path below a URI prefix, a range's first address.
fn named_by(rules: &PolicyRules) -> Vec<Identifier> {
    let dns = rules.dns.iter().filter_map(|p| match p.strip_prefix("*.") {
        Some(suffix) => Identifier::dns(&format!("x.{suffix}")).ok(),
        None => Identifier::dns(p).ok(),
    });
    let uris = rules.uris.iter().filter_map(|u| match u.strip_suffix('*') {
        Some(prefix) if prefix.ends_with('/') => Identifier::uri(&format!("{prefix}x")).ok(),
        _ => Identifier::uri(u).ok(),
    });
    let ips = rules
        .ip_ranges
        .iter()
        .filter_map(|r| r.parse::<ipnet::IpNet>().ok())
        .map(|net| Identifier::Ip(net.trunc().addr()));
    dns.chain(uris).chain(ips).collect()
}

/// A P-256 request: the policy checks its key, not its names.
fn p256_csr() -> &'static CheckedCsr {
    static CSR: OnceLock<CheckedCsr> = OnceLock::new();
    CSR.get_or_init(|| {
        let params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("empty names");
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("P-256 key generation");
        let request = params.serialize_request(&key).expect("a request");
        CheckedCsr::parse_der(request.der()).expect("rcgen's request")
    })
}
