//! URI identifiers (RFC 3986), parsed once into the one spelling Tessera
//! certifies, with the SPIFFE ID rules for `spiffe:` URIs.
//!
//! A URI that a policy judges must mean one thing only. Percent-encoding
//! (`%2e%2e` is `..`), dot segments, doubled or trailing slashes, queries,
//! fragments and userinfo all give one name several spellings, or let a
//! name that looks inside a policy's prefix point outside it once a relying
//! party normalises it; so a certified URI has none of them, and a policy
//! compares parsed path segments, never text.
//!
//! Two shapes are accepted:
//! - `scheme://host[:port]/seg/seg`: the host a lowercase DNS name, the path
//!   empty or non-empty segments of letters, digits and `-._~!$&'()+,;=:@`
//!   (`*` is kept for policy wildcards);
//! - `urn:nid:nss` (RFC 8141), matched whole.
//!
//! `spiffe://trust-domain/path` follows the SPIFFE ID standard: a trust
//! domain of lowercase letters, digits, `.`, `-` and `_`, no port, and path
//! segments of letters, digits, `.`, `-` and `_`.

use std::fmt;

use crate::dns_name::is_dns_name;

/// The longest URI certified, as the SPIFFE ID standard caps SPIFFE IDs.
pub const MAX_URI_BYTES: usize = 2048;
const MAX_TRUST_DOMAIN_BYTES: usize = 255;
/// Path characters of a general URI: RFC 3986 `pchar` without
/// percent-encoding and without `*`, which policies use as a wildcard.
const PATH_SYMBOLS: &[u8] = b"-._~!$&'()+,;=:@";
const SPIFFE_SYMBOLS: &[u8] = b"-._";

/// A URI in the one form Tessera certifies (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UriName {
    text: String,
    /// Length of `scheme://authority`; `None` for a URN, which has no
    /// hierarchy to compare.
    root_len: Option<usize>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum UriError {
    #[error("is longer than {MAX_URI_BYTES} bytes")]
    TooLong,
    #[error("contains {0}")]
    ForbiddenCharacter(&'static str),
    #[error("is not an absolute URI (RFC 3986): {0}")]
    Syntax(String),
    #[error("has a scheme in uppercase")]
    UppercaseScheme,
    #[error("has {0}, which a certified URI may not carry")]
    ForbiddenPart(&'static str),
    #[error("must be scheme://host/path or urn:nid:nss")]
    Shape,
    #[error("has host {0:?}, which is not a lowercase DNS name")]
    BadHost(String),
    #[error("has port {0:?}, which is not a number from 1 to 65535 without leading zeros")]
    BadPort(String),
    #[error("has an empty path segment (a doubled or trailing '/')")]
    EmptySegment,
    #[error("has a '.' or '..' path segment")]
    DotSegment,
    #[error("has path segment {0:?} with a character outside {1}")]
    BadSegment(String, &'static str),
    #[error("has trust domain {0:?}; a SPIFFE trust domain is 1-255 lowercase letters, digits, '.', '-' and '_'")]
    BadTrustDomain(String),
    #[error("is not urn:nid:nss with a lowercase namespace id of 2-32 letters, digits and '-'")]
    BadUrn,
}

impl UriName {
    pub fn parse(text: &str) -> Result<Self, UriError> {
        if text.len() > MAX_URI_BYTES {
            return Err(UriError::TooLong);
        }
        check_characters(text)?;
        let uri = fluent_uri::Uri::parse(text).map_err(|e| UriError::Syntax(e.to_string()))?;
        let scheme = uri.scheme().as_str();
        if scheme.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(UriError::UppercaseScheme);
        }
        if uri.has_query() {
            return Err(UriError::ForbiddenPart("a query"));
        }
        if uri.has_fragment() {
            return Err(UriError::ForbiddenPart("a fragment"));
        }
        let path = uri.path().as_str();
        let Some(authority) = uri.authority() else {
            return if scheme == "urn" && is_urn_body(path) {
                Ok(Self { text: text.to_owned(), root_len: None })
            } else if scheme == "urn" {
                Err(UriError::BadUrn)
            } else {
                Err(UriError::Shape)
            };
        };
        if authority.has_userinfo() {
            return Err(UriError::ForbiddenPart("userinfo"));
        }
        let host = authority.host();
        let port = authority.port().map(|p| p.as_str());
        let spiffe = scheme == "spiffe";
        if spiffe {
            if !is_trust_domain(host) {
                return Err(UriError::BadTrustDomain(host.to_owned()));
            }
            if port.is_some() {
                return Err(UriError::ForbiddenPart("a port"));
            }
        } else {
            if !is_host_name(host) {
                return Err(UriError::BadHost(host.to_owned()));
            }
            if let Some(port) = port
                && !is_port(port)
            {
                return Err(UriError::BadPort(port.to_owned()));
            }
        }
        let (symbols, allowed) = if spiffe {
            (SPIFFE_SYMBOLS, "letters, digits, '.', '-' and '_'")
        } else {
            (PATH_SYMBOLS, "letters, digits and -._~!$&'()+,;=:@")
        };
        if let Some(segments) = path.strip_prefix('/') {
            for segment in segments.split('/') {
                check_segment(segment, symbols, allowed)?;
            }
        }
        Ok(Self { text: text.to_owned(), root_len: Some(text.len() - path.len()) })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `scheme://authority`, or `None` for a URN.
    fn root(&self) -> Option<&str> {
        self.root_len.map(|len| &self.text[..len])
    }

    /// The path segments (none for a URN or an empty path).
    fn segments(&self) -> impl Iterator<Item = &str> {
        let path = self.root_len.map_or("", |len| &self.text[len..]);
        path.strip_prefix('/').into_iter().flat_map(|rest| rest.split('/'))
    }

    /// Whether this URI lies strictly below `base`: the same scheme and
    /// authority, and `base`'s path segments followed by at least one more.
    pub fn is_below(&self, base: &UriName) -> bool {
        let (Some(root), Some(base_root)) = (self.root(), base.root()) else {
            return false;
        };
        let mut own = self.segments();
        root == base_root && base.segments().all(|segment| own.next() == Some(segment)) && own.next().is_some()
    }

    /// Whether the URI can be the base of a wildcard (`base/*`): a URN has
    /// no path segments to extend.
    pub fn is_hierarchical(&self) -> bool {
        self.root_len.is_some()
    }
}

impl fmt::Display for UriName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Characters no URI may hold in any position, named so an operator sees
/// which one a request carried (RFC 3986 has no place for any of them).
fn check_characters(text: &str) -> Result<(), UriError> {
    for byte in text.bytes() {
        let what = match byte {
            b' ' => "whitespace",
            b'\\' => "a backslash",
            b'%' => "percent-encoding",
            0x80.. => "a non-ASCII character",
            b if b.is_ascii_control() => "a control character",
            _ => continue,
        };
        return Err(UriError::ForbiddenCharacter(what));
    }
    Ok(())
}

fn check_segment(segment: &str, symbols: &[u8], allowed: &'static str) -> Result<(), UriError> {
    match segment {
        "" => Err(UriError::EmptySegment),
        "." | ".." => Err(UriError::DotSegment),
        _ if segment.bytes().all(|b| b.is_ascii_alphanumeric() || symbols.contains(&b)) => Ok(()),
        _ => Err(UriError::BadSegment(segment.to_owned(), allowed)),
    }
}

fn is_trust_domain(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= MAX_TRUST_DOMAIN_BYTES
        && host.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || SPIFFE_SYMBOLS.contains(&b))
}

/// A host as a DNS identifier would be written: lowercase, no trailing dot,
/// no wildcard.
fn is_host_name(host: &str) -> bool {
    !host.starts_with("*.") && is_dns_name(host)
}

fn is_port(port: &str) -> bool {
    !port.starts_with('0') && port.parse::<u16>().is_ok_and(|p| p > 0)
}

/// `nid:nss` of RFC 8141 §2, with a lowercase NID and the general path
/// characters (and `/`) in the NSS.
fn is_urn_body(body: &str) -> bool {
    let Some((nid, nss)) = body.split_once(':') else { return false };
    let nid_ok = (2..=32).contains(&nid.len())
        && nid.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !nid.starts_with('-')
        && !nid.ends_with('-');
    nid_ok
        && !nss.is_empty()
        && nss.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'/' || PATH_SYMBOLS.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certifiable_uris_parse() {
        for good in [
            "spiffe://tessera.test",
            "spiffe://tessera.test/ns/a/sa/b",
            "spiffe://trust_domain-1.test/A.b_c-D",
            "https://svc.tessera.test",
            "https://svc.tessera.test:8443/api/v1",
            "https://svc.tessera.test/a;b=c/@x:y",
            "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
        ] {
            assert_eq!(UriName::parse(good).map(|u| u.to_string()), Ok(good.to_owned()), "{good}");
        }
    }

    #[test]
    fn every_other_spelling_is_refused_with_its_reason() {
        let long = format!("spiffe://tessera.test/{}", "a".repeat(MAX_URI_BYTES));
        let cases: &[(&str, UriError)] = &[
            (&long, UriError::TooLong),
            ("spiffe://tessera.test/ns/a/../b", UriError::DotSegment),
            ("spiffe://tessera.test/ns/a/./b", UriError::DotSegment),
            ("spiffe://tessera.test/ns/a/%2e%2e/b", UriError::ForbiddenCharacter("percent-encoding")),
            ("spiffe://tessera.test/ns/a?admin=1", UriError::ForbiddenPart("a query")),
            ("spiffe://tessera.test/ns/a#frag", UriError::ForbiddenPart("a fragment")),
            ("spiffe://tessera.test/ns//a", UriError::EmptySegment),
            ("spiffe://tessera.test/ns/a/", UriError::EmptySegment),
            ("spiffe://tessera.test/ns/a\\..\\b", UriError::ForbiddenCharacter("a backslash")),
            ("spiffe://tessera.test/ns/a\0", UriError::ForbiddenCharacter("a control character")),
            ("spiffe://tessera.test/ns/a\x1b[2J", UriError::ForbiddenCharacter("a control character")),
            ("spiffe://tessera.test/ns/a b", UriError::ForbiddenCharacter("whitespace")),
            ("spiffe://tessera.test/ns/\u{e9}", UriError::ForbiddenCharacter("a non-ASCII character")),
            ("spiffe://Tessera.test/ns/a", UriError::BadTrustDomain("Tessera.test".into())),
            ("spiffe://tessera.test:8443/ns/a", UriError::ForbiddenPart("a port")),
            ("spiffe://user@tessera.test/ns/a", UriError::ForbiddenPart("userinfo")),
            ("spiffe:///ns/a", UriError::BadTrustDomain(String::new())),
            ("spiffe://tessera.test/ns/a~b", UriError::BadSegment("a~b".into(), "letters, digits, '.', '-' and '_'")),
            ("SPIFFE://tessera.test/ns/a", UriError::UppercaseScheme),
            ("https://Svc.test/a", UriError::BadHost("Svc.test".into())),
            ("https://svc.test./a", UriError::BadHost("svc.test.".into())),
            ("https://[::1]/a", UriError::BadHost("[::1]".into())),
            ("https://svc.test:0/a", UriError::BadPort("0".into())),
            ("https://svc.test:08443/a", UriError::BadPort("08443".into())),
            ("https://svc.test:65536/a", UriError::BadPort("65536".into())),
            ("https://svc.test/a*", UriError::BadSegment("a*".into(), "letters, digits and -._~!$&'()+,;=:@")),
            ("file:/etc/passwd", UriError::Shape),
            ("mailto:ops@tessera.test", UriError::Shape),
            ("urn:x:y", UriError::BadUrn),
            ("urn:UUID:y", UriError::BadUrn),
            ("urn:uuid:", UriError::BadUrn),
        ];
        for (text, want) in cases {
            assert_eq!(UriName::parse(text).as_ref(), Err(want), "{text:?}");
        }
        assert!(matches!(UriName::parse("no scheme"), Err(UriError::ForbiddenCharacter(_))));
        assert!(matches!(UriName::parse("tessera.test/a"), Err(UriError::Syntax(_))));
    }

    #[test]
    fn below_compares_segments_not_text() {
        let uri = |s: &str| UriName::parse(s).expect("valid");
        let base = uri("spiffe://tessera.test/ns/a");
        assert!(uri("spiffe://tessera.test/ns/a/sa/b").is_below(&base));
        assert!(uri("spiffe://tessera.test/ns/a/b").is_below(&base));
        for outside in [
            "spiffe://tessera.test/ns/a",
            "spiffe://tessera.test/ns/ab",
            "spiffe://tessera.test/ns/ab/c",
            "spiffe://tessera.test/ns",
            "spiffe://tessera.testx/ns/a/b",
            "https://tessera.test/ns/a/b",
        ] {
            assert!(!uri(outside).is_below(&base), "{outside}");
        }
        let domain = uri("spiffe://tessera.test");
        assert!(uri("spiffe://tessera.test/x").is_below(&domain));
        assert!(!uri("spiffe://tessera.test").is_below(&domain));
        let urn = uri("urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6");
        assert!(!urn.is_below(&urn) && !urn.is_hierarchical());
    }
}
