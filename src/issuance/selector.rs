//! Which certificates an operator means by a SAN: one identifier exactly,
//! or every DNS name below a suffix (`*.example.com`, at any depth, as
//! policies read it). Used to pull a fleet's renewal forward.

use std::fmt;

use super::identifier::{Identifier, IdentifierError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SanSelector {
    /// Certificates naming this identifier.
    Exact(Identifier),
    /// Certificates naming a DNS name strictly below this suffix.
    DnsBelow(String),
}

impl SanSelector {
    /// Reads `*.example.com`, a DNS name, an IP address or a URI, with or
    /// without the stored tag (`dns:`, `ip:`, `uri:`).
    pub fn parse(text: &str) -> Result<Self, IdentifierError> {
        let text = text.trim();
        let untagged = text.strip_prefix("dns:").unwrap_or(text);
        if let Some(suffix) = untagged.strip_prefix("*.") {
            let Identifier::Dns(suffix) = Identifier::dns(suffix)? else {
                return Err(IdentifierError::BadDnsName(text.to_owned()));
            };
            if suffix.starts_with("*.") {
                return Err(IdentifierError::BadDnsName(text.to_owned()));
            }
            return Ok(Self::DnsBelow(suffix));
        }
        let exact = match text.split_once(':') {
            Some(("dns" | "ip", _)) => Identifier::from_tagged(text)?,
            Some(("uri", rest)) if !rest.starts_with("//") => Identifier::from_tagged(text)?,
            _ => Identifier::guess(text)?,
        };
        Ok(Self::Exact(exact))
    }

    /// Whether a certificate naming `names` is selected.
    pub fn matches(&self, names: &[Identifier]) -> bool {
        names.iter().any(|name| match (self, name) {
            (Self::Exact(exact), name) => exact == name,
            (Self::DnsBelow(suffix), Identifier::Dns(dns)) => {
                dns.len() > suffix.len() + 1
                    && dns.ends_with(suffix.as_str())
                    && dns.as_bytes()[dns.len() - suffix.len() - 1] == b'.'
            }
            (Self::DnsBelow(_), _) => false,
        })
    }

    /// Text that every selected certificate's stored `sans` column contains
    /// (see [`super::to_column`]), so storage can narrow a search before
    /// [`SanSelector::matches`] decides.
    pub fn column_fragment(&self) -> String {
        match self {
            Self::Exact(exact) => format!(" {} ", exact.to_tagged()),
            Self::DnsBelow(suffix) => format!(".{suffix} "),
        }
    }
}

/// The stored form: `dns:*.example.com`, or the tagged identifier.
impl fmt::Display for SanSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(exact) => f.write_str(&exact.to_tagged()),
            Self::DnsBelow(suffix) => write!(f, "dns:*.{suffix}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuance::{from_column, to_column};

    fn names(list: &[&str]) -> Vec<Identifier> {
        list.iter().map(|n| Identifier::guess(n).expect("valid")).collect()
    }

    #[test]
    fn a_wildcard_selects_names_below_its_suffix_only() {
        let selector = SanSelector::parse("*.fleet.test").expect("valid");
        assert!(selector.matches(&names(&["a.fleet.test"])));
        assert!(selector.matches(&names(&["other.test", "deep.a.fleet.test"])));
        assert!(!selector.matches(&names(&["fleet.test"])));
        assert!(!selector.matches(&names(&["afleet.test", "spiffe://x.fleet.test/a"])));
        assert_eq!(selector.to_string(), "dns:*.fleet.test");
    }

    #[test]
    fn exact_selectors_and_the_stored_form_round_trip() {
        for text in ["a.test", "dns:a.test", "127.0.0.1", "ip:::1", "spiffe://tessera.test/a", "dns:*.x.test"] {
            let selector = SanSelector::parse(text).expect(text);
            assert_eq!(SanSelector::parse(&selector.to_string()).expect("stored form"), selector, "{text}");
        }
        let ip = SanSelector::parse("127.0.0.1").expect("ip");
        assert!(ip.matches(&names(&["a.test", "127.0.0.1"])));
        assert!(!ip.matches(&names(&["127.0.0.2"])));
    }

    #[test]
    fn the_column_fragment_is_in_every_selected_column() {
        let column = to_column(&names(&["a.test", "web.fleet.test", "127.0.0.1"]));
        for text in ["*.fleet.test", "web.fleet.test", "127.0.0.1", "a.test"] {
            let selector = SanSelector::parse(text).expect(text);
            assert!(selector.matches(&from_column(&column)), "{text}");
            assert!(column.contains(&selector.column_fragment()), "{text}");
        }
    }

    #[test]
    fn bad_selectors_are_refused() {
        for bad in ["", "*", "*.", "*.*.test", "a..test", "-a.test", "dns:", "ip:nope", "a b"] {
            assert!(SanSelector::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
