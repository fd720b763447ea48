//! The DNS name rule that DNS identifiers and the hosts of URI identifiers
//! share: lowercase labels of letters, digits, `-` and `_`, no numeric
//! top-level label, at most 253 bytes; a leading `*.` is a wildcard.

/// LDH labels (and `_`) of 1-63 bytes, at most 253 in all, and a last
/// label that is not all digits: no top-level domain is, so `10.0.0.1` is
/// an address written as a name, which relying parties would not match
/// against IP addresses.
pub(crate) fn is_dns_name(name: &str) -> bool {
    let body = name.strip_prefix("*.").unwrap_or(name);
    if body.is_empty() || name.len() > 253 {
        return false;
    }
    let numeric_tld = body.rsplit('.').next().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()));
    !numeric_tld
        && body.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        })
}
