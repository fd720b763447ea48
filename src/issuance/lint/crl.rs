//! The CRL lint: a to-be-signed CRL (RFC 5280 §5) against its issuer, the
//! number it must carry and the revocations it must list.

use std::collections::HashSet;

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry::{
    OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER, OID_X509_EXT_CRL_NUMBER, OID_X509_EXT_ISSUER_DISTRIBUTION_POINT,
};
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::TbsCertList;

use super::certificate::check_algorithm;
use super::{Findings, LintFailure, serial_findings};
use crate::keys::SigningAlgorithm;

/// What one CRL must say.
#[derive(Debug, Clone)]
pub struct CrlExpectation<'a> {
    pub number: i64,
    /// The number of the CRL stored for the same scope, which this one
    /// replaces: numbers only rise (RFC 5280 §5.2.3).
    pub previous_number: Option<i64>,
    pub this_update: i64,
    pub next_update: i64,
    /// Serials of the certificates it must list, each once.
    pub serials: Vec<&'a [u8]>,
    /// A shard names its distribution point in a critical IDP; a full CRL has none.
    pub sharded: bool,
    pub algorithm: SigningAlgorithm,
}

/// Checks the to-be-signed CRL `tbs_der`, to be signed by the CA whose
/// certificate is `issuer_der`.
pub fn check_crl(tbs_der: &[u8], issuer_der: &[u8], expect: &CrlExpectation<'_>) -> Result<(), LintFailure> {
    let mut findings = Findings::new("CRL");
    let (tbs, issuer) = match (TbsCertList::from_der(tbs_der), X509Certificate::from_der(issuer_der)) {
        (Ok(([], tbs)), Ok((_, issuer))) => (tbs, issuer),
        (Ok(_), Ok(_)) => {
            findings.push("the to-be-signed CRL has bytes after its end".into());
            return findings.into_result();
        }
        (Err(e), _) => {
            findings.push(format!("the to-be-signed CRL does not parse: {e}"));
            return findings.into_result();
        }
        (_, Err(e)) => {
            findings.push(format!("the issuer's certificate does not parse: {e}"));
            return findings.into_result();
        }
    };
    findings.check(tbs.version.is_some_and(|v| v.0 == 1), || "the CRL is not v2".into());
    check_algorithm(&tbs.signature, expect.algorithm, &mut findings);
    findings.check(tbs.issuer.as_raw() == issuer.tbs_certificate.subject.as_raw(), || {
        "the CRL's issuer is not the issuing CA's subject".into()
    });
    let this_update = tbs.this_update.timestamp();
    let next_update = tbs.next_update.map(|t| t.timestamp());
    findings
        .check(this_update == expect.this_update, || format!("thisUpdate {this_update} is not {}", expect.this_update));
    findings.check(next_update == Some(expect.next_update), || {
        format!("nextUpdate {next_update:?} is not {}", expect.next_update)
    });
    findings.check(next_update.is_some_and(|next| next > this_update), || "nextUpdate is not after thisUpdate".into());

    check_number(&tbs, expect, &mut findings);
    let aki = tbs.extensions().iter().find(|e| e.oid == OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER);
    let aki_id = aki.and_then(|e| match e.parsed_extension() {
        ParsedExtension::AuthorityKeyIdentifier(aki) => aki.key_identifier.as_ref().map(|k| k.0),
        _ => None,
    });
    let issuer_ski = issuer.tbs_certificate.extensions().iter().find_map(|e| match e.parsed_extension() {
        ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0),
        _ => None,
    });
    findings.check(aki_id.is_some() && aki_id == issuer_ski, || {
        "the authority key identifier is not the issuing CA's subject key identifier".into()
    });
    let idp = tbs.extensions().iter().find(|e| e.oid == OID_X509_EXT_ISSUER_DISTRIBUTION_POINT);
    match (expect.sharded, idp) {
        (true, Some(idp)) => {
            findings.check(idp.critical, || "a shard's issuing distribution point is not critical".into())
        }
        (true, None) => findings.push("a shard without an issuing distribution point".into()),
        (false, Some(_)) => findings.push("a full CRL with an issuing distribution point".into()),
        (false, None) => {}
    }
    for extension in tbs.extensions() {
        let known =
            [OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER, OID_X509_EXT_CRL_NUMBER, OID_X509_EXT_ISSUER_DISTRIBUTION_POINT];
        findings.check(known.contains(&extension.oid), || format!("unexpected CRL extension {}", extension.oid));
    }
    check_entries(&tbs, expect, &mut findings);
    findings.into_result()
}

fn check_number(tbs: &TbsCertList<'_>, expect: &CrlExpectation<'_>, findings: &mut Findings) {
    let extension = tbs.extensions().iter().find(|e| e.oid == OID_X509_EXT_CRL_NUMBER);
    findings.check(extension.is_none_or(|e| !e.critical), || "the CRL number is critical".into());
    let number = extension.and_then(|e| match e.parsed_extension() {
        ParsedExtension::CRLNumber(n) => n.to_u64_digits().first().copied().filter(|_| n.bits() <= 63),
        _ => None,
    });
    let number = number.map(|n| n as i64);
    findings.check(number == Some(expect.number), || format!("the CRL number {number:?} is not {}", expect.number));
    if let (Some(number), Some(previous)) = (number, expect.previous_number) {
        findings.check(number > previous, || format!("the CRL number {number} does not rise above {previous}"));
    }
}

fn check_entries(tbs: &TbsCertList<'_>, expect: &CrlExpectation<'_>, findings: &mut Findings) {
    let mut listed = HashSet::new();
    for entry in &tbs.revoked_certificates {
        let serial = entry.raw_serial();
        serial_findings(serial, "a revoked serial", findings, false);
        findings.check(listed.insert(serial), || format!("serial {} is listed twice", hex::encode(serial)));
        findings.check(entry.extensions().iter().all(|e| !e.critical), || {
            format!("serial {} has a critical entry extension", hex::encode(serial))
        });
    }
    let expected: HashSet<&[u8]> = expect.serials.iter().copied().collect();
    findings.check(listed == expected, || {
        format!("the CRL lists {} serials, not the {} revoked", listed.len(), expected.len())
    });
}
