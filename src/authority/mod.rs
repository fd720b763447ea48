//! The authority decides whether a request may be granted: which names,
//! which key types, how long. It signs nothing and stores nothing.

mod pattern;
mod policy;
mod ttl;

pub use pattern::{DnsPattern, UriPattern};
pub use policy::{Approval, Policy, PolicyError, PolicyRules, is_policy_name};
pub use ttl::{MAX_TTL, Ttl, compared_ttls, describe_ttl, format_ttl, parse_ttl};
