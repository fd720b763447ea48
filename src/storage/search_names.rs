//! The names a certificate is found by (`certificate_names`, migration
//! 0020): each identifier, the subject as the admin API shows it, and the
//! requester, one row each with the certificate's not_after and serial.
//!
//! A DNS name is stored with its labels reversed (`dns:internal.payments.api`
//! for `api.payments.internal`), so every name under a domain shares one
//! prefix, and a prefix is a range (`name >= p AND name < upper(p)`) that a
//! plain btree serves on both backends (byte order: `COLLATE "C"` on
//! PostgreSQL, SQLite's default). URIs keep their spelling, so a SPIFFE
//! prefix is a range too. Rows are written with the certificate's
//! reservation, in the same statement or transaction.

/// The tag of a subject name, as shown (`subject:CN=api.test`).
const SUBJECT: &str = "subject:";
/// The tag of a requester (`requester:token:ci`).
const REQUESTER: &str = "requester:";
/// The longest DNS name a leaf's common name holds (`issuance::leaf_subject`).
const MAX_COMMON_NAME: usize = 64;

/// A condition on `certificate_names.name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum NameMatch {
    Exact(String),
    /// `start <= name < end`.
    Range {
        start: String,
        end: String,
    },
}

/// Every name a certificate is found by, sorted and without repeats.
/// `sans` is the stored column form (` dns:a.test uri:spiffe://... `);
/// `subject` is None for a leaf whose subject its first short DNS name
/// gives, as `CertificateRecord::subject` is.
pub(super) fn search_names(sans: &str, subject: Option<&str>, requester: &str) -> Vec<String> {
    let mut names: Vec<String> = sans.split_whitespace().map(stored_identifier).collect();
    let shown_subject = match subject {
        Some(subject) => Some(subject.to_owned()),
        None => sans
            .split_whitespace()
            .filter_map(|t| t.strip_prefix("dns:"))
            .find(|d| d.len() <= MAX_COMMON_NAME)
            .map(|d| format!("CN={d}")),
    };
    if let Some(subject) = shown_subject.filter(|s| !s.is_empty()) {
        names.push(format!("{SUBJECT}{subject}"));
    }
    names.push(format!("{REQUESTER}{requester}"));
    names.sort();
    names.dedup();
    names
}

/// An identifier in its tagged form (`dns:a.test`) as `certificate_names`
/// stores it: a DNS name reversed by label, anything else as it is.
pub(super) fn stored_identifier(tagged: &str) -> String {
    match tagged.strip_prefix("dns:") {
        Some(dns) => format!("dns:{}", reversed_labels(dns)),
        None => tagged.to_owned(),
    }
}

/// Names strictly under `domain` (`payments.internal`: `api.payments.internal`,
/// `*.payments.internal`, not `payments.internal` itself).
pub(super) fn under_domain(domain: &str) -> NameMatch {
    prefix(&format!("dns:{}.", reversed_labels(domain)))
}

/// URIs that begin with `start` (`spiffe://td/ns/prod/`).
pub(super) fn uri_prefix(start: &str) -> NameMatch {
    prefix(&format!("uri:{start}"))
}

/// The subject exactly as the admin API shows it.
pub(super) fn subject(shown: &str) -> NameMatch {
    NameMatch::Exact(format!("{SUBJECT}{shown}"))
}

pub(super) fn requester(requester: &str) -> NameMatch {
    NameMatch::Exact(format!("{REQUESTER}{requester}"))
}

fn reversed_labels(dns: &str) -> String {
    dns.rsplit('.').collect::<Vec<_>>().join(".")
}

/// Every name beginning with `start`: up to the first string past all of
/// them, `start` with its last character moved up by one. The prefixes
/// made here end in `.` or an ASCII character of a URI; a last character
/// with no successor (`char::MAX`) leaves the range open at `start` alone.
fn prefix(start: &str) -> NameMatch {
    let mut end = start.to_owned();
    let next = end.pop().and_then(|last| char::from_u32(last as u32 + 1));
    match next {
        Some(next) => {
            end.push(next);
            NameMatch::Range { start: start.to_owned(), end }
        }
        None => NameMatch::Exact(start.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(m: &NameMatch, name: &str) -> bool {
        match m {
            NameMatch::Exact(exact) => name == exact,
            NameMatch::Range { start, end } => name >= start.as_str() && name < end.as_str(),
        }
    }

    #[test]
    fn a_leaf_is_found_by_its_names_its_subject_and_its_requester() {
        let names = search_names(" dns:api.payments.internal uri:spiffe://td/ns/prod/sa/api ", None, "acme:7");
        assert_eq!(
            names,
            [
                "dns:internal.payments.api",
                "requester:acme:7",
                "subject:CN=api.payments.internal",
                "uri:spiffe://td/ns/prod/sa/api",
            ]
        );
        let responder = search_names(" ", Some("CN=issuing OCSP responder"), "tessera");
        assert_eq!(responder, ["requester:tessera", "subject:CN=issuing OCSP responder"]);
    }

    /// The subject a leaf shows is its first DNS name short enough for a
    /// common name; a leaf with none shows an empty subject, found by none.
    #[test]
    fn the_leaf_subject_skips_long_names() {
        let long = format!("{}.test", "a".repeat(60));
        let names = search_names(&format!(" dns:{long} dns:b.test "), None, "r");
        assert!(names.contains(&"subject:CN=b.test".to_string()), "{names:?}");
        let names = search_names(" uri:spiffe://td/x ip:10.0.0.1 ", None, "r");
        assert!(!names.iter().any(|n| n.starts_with(SUBJECT)), "{names:?}");
    }

    #[test]
    fn a_domain_matches_only_names_under_it() {
        let under = under_domain("payments.internal");
        for inside in ["api.payments.internal", "*.payments.internal", "a.b.payments.internal"] {
            assert!(matches(&under, &stored_identifier(&format!("dns:{inside}"))), "{inside}");
        }
        for outside in ["payments.internal", "xpayments.internal", "payments.internal.evil", "payments-a.internal"] {
            assert!(!matches(&under, &stored_identifier(&format!("dns:{outside}"))), "{outside}");
        }
    }

    #[test]
    fn a_uri_prefix_matches_what_begins_with_it() {
        let prod = uri_prefix("spiffe://td/ns/prod/");
        assert!(matches(&prod, "uri:spiffe://td/ns/prod/sa/api"));
        assert!(!matches(&prod, "uri:spiffe://td/ns/prod"));
        assert!(!matches(&prod, "uri:spiffe://td/ns/production/sa/api"));
        assert!(!matches(&prod, "dns:spiffe"));
    }
}
