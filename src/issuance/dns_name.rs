//! The DNS name rule that DNS identifiers and the hosts of URI identifiers
//! share: lowercase labels of letters, digits, `-` and `_`, no numeric
//! top-level label, at most 253 bytes; a leading `*.` is a wildcard.

pub(super) fn is_dns_name(name: &str) -> bool {
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
