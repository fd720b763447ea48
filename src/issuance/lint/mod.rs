//! Lint before signature. Every certificate, CRL and OCSP response Tessera
//! is about to sign is parsed back from its to-be-signed bytes and checked
//! against what its profile promises and what was approved, and a finding
//! refuses the signature: a bug in a profile (or a corrupted one) then
//! costs one failed issuance, never a misissued certificate in the wild.
//! The checks read the encoded bytes, not the parameters that built them,
//! so they are a second opinion on the encoder as well.

mod certificate;
mod crl;
mod ocsp;

pub use certificate::{CertificateExpectation, Profile, check_certificate};
pub use crl::{CrlExpectation, check_crl};
pub use ocsp::{ExpectedStatus, OcspExpectation, check_ocsp_response};

/// What a lint found wrong with an object about to be signed; nothing was
/// signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {object} failed its lint: {}", findings.join("; "))]
pub struct LintFailure {
    /// `certificate`, `CRL` or `OCSP response`.
    pub object: &'static str,
    pub findings: Vec<String>,
}

/// Collects the findings of one object's checks.
struct Findings {
    object: &'static str,
    found: Vec<String>,
}

impl Findings {
    fn new(object: &'static str) -> Self {
        Self { object, found: Vec::new() }
    }

    /// Records `finding` unless `holds`.
    fn check(&mut self, holds: bool, finding: impl FnOnce() -> String) {
        if !holds {
            self.found.push(finding());
        }
    }

    fn push(&mut self, finding: String) {
        self.found.push(finding);
    }

    fn into_result(self) -> Result<(), LintFailure> {
        if self.found.is_empty() { Ok(()) } else { Err(LintFailure { object: self.object, findings: self.found }) }
    }
}

/// Whether an encoded serial (or CRL entry serial) is positive, at most
/// 20 octets (RFC 5280 §4.1.2.2) and long enough to carry 64 random bits.
fn serial_findings(raw: &[u8], what: &str, findings: &mut Findings, random: bool) {
    findings.check(!raw.is_empty() && raw[0] & 0x80 == 0, || format!("{what} is not positive"));
    findings.check(raw.iter().any(|b| *b != 0), || format!("{what} is zero"));
    findings.check(raw.len() <= 20, || format!("{what} is {} octets, more than 20", raw.len()));
    if random {
        let significant = raw.iter().skip_while(|b| **b == 0).count();
        findings.check(significant >= 9, || {
            format!("{what} has {significant} significant octets; at least 9 carry 64 random bits")
        });
    }
}

#[cfg(test)]
mod tests;
