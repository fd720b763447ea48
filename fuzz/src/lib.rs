//! Fuzz entry points for every parser of Tessera's that takes bytes from
//! outside: ACME requests, CSRs, names, policies, OCSP requests, key URIs,
//! the config file and the agent's reading of the CA's answers.
//!
//! Each target is one `pub fn(&[u8])` here. Under libFuzzer
//! `fuzz_targets/<name>.rs` hands it the fuzzer's bytes (`scripts/fuzz.sh`);
//! on stable `tests/replay.rs` hands it every file of `corpus/<name>/`, so
//! an input that once failed keeps being tried. A target panics only where
//! Tessera is wrong: a crash in a parser, or a property the code promises
//! (a request signed with the key it names verifies; a stored form reads
//! back as what was stored) that does not hold.
//!
//! The `*_signed` targets and `ocsp_responder` are structure-aware: they
//! build their input from fuzzed fields (`arbitrary`) and sign it with a
//! fixed key, or aim it at a running responder's CA, so the fuzzer works
//! past the signature or issuer check that random bytes never pass.

#![forbid(unsafe_code)]

mod agent;
mod config;
mod csr;
mod identifier;
mod jws;
mod key_uri;
mod ocsp;
mod policy;
pub mod seeds;
mod test_keys;

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// Every target by name: the binary in `fuzz_targets/` and the folder in
/// `corpus/` carry the same name.
pub const TARGETS: &[(&str, Target)] = &[
    ("agent_certificate", agent::certificate),
    ("agent_renewal_info", agent::renewal_info),
    ("config", config::config),
    ("csr", csr::csr),
    ("csr_signed", csr::csr_signed),
    ("identifier", identifier::identifier),
    ("jws", jws::jws),
    ("jws_signed", jws::jws_signed),
    ("key_uri", key_uri::key_uri),
    ("ocsp_request", ocsp::ocsp_request),
    ("ocsp_responder", ocsp::ocsp_responder),
    ("policy", policy::policy),
];

/// The entry point of the target `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

pub use agent::{certificate as agent_certificate, renewal_info as agent_renewal_info};
pub use config::config;
pub use csr::{csr, csr_signed};
pub use identifier::identifier;
pub use jws::{jws, jws_signed};
pub use key_uri::key_uri;
pub use ocsp::{ocsp_request, ocsp_responder};
pub use policy::policy;
