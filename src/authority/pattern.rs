//! Name patterns, as policies and the Vault certificate login write them:
//! a DNS name exactly or `*.suffix` (every name below, at any depth), a URI
//! exactly or `base/*` (every URI whose path continues `base`'s by whole
//! segments). Both are judged on parsed names, never by text.

use crate::issuance::{Identifier, UriName};

#[derive(Debug, Clone)]
pub enum DnsPattern {
    Exact(String),
    /// Matches names ending in `.suffix`.
    Below(String),
}

#[derive(Debug, Clone)]
pub enum UriPattern {
    Exact(UriName),
    /// Matches URIs below the base, at any depth.
    Below(UriName),
}

impl DnsPattern {
    /// A name or `*.suffix`, each a DNS name as identifiers are; the error
    /// says why not.
    pub fn parse(text: &str) -> Result<Self, String> {
        let name = Identifier::dns(text).map_err(|e| e.to_string())?.value();
        Ok(match name.strip_prefix("*.") {
            Some(suffix) => Self::Below(suffix.to_owned()),
            None => Self::Exact(name),
        })
    }

    pub fn matches(&self, name: &str) -> bool {
        match self {
            Self::Exact(exact) => name == exact,
            Self::Below(suffix) => {
                name.len() > suffix.len() + 1
                    && name.ends_with(suffix.as_str())
                    && name.as_bytes()[name.len() - suffix.len() - 1] == b'.'
            }
        }
    }
}

impl UriPattern {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (base, below) = match text.strip_suffix("/*") {
            Some(base) => (base, true),
            None => (text, false),
        };
        let base = UriName::parse(base).map_err(|e| format!("{text:?}: the URI {e}"))?;
        match below {
            true if !base.is_hierarchical() => Err(format!("{text:?}: a URN has no path to put a wildcard on")),
            true => Ok(Self::Below(base)),
            false => Ok(Self::Exact(base)),
        }
    }

    pub fn matches(&self, uri: &UriName) -> bool {
        match self {
            Self::Exact(exact) => uri == exact,
            Self::Below(base) => uri.is_below(base),
        }
    }
}
