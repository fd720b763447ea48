//! The certificate lint: a to-be-signed certificate against its kind's
//! profile, the names and validity that were approved, and its issuer.

use std::collections::HashSet;

use time::OffsetDateTime;
use x509_parser::certificate::{TbsCertificate, X509Certificate};
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::extensions::{GeneralName, ParsedExtension, X509Extension};
use x509_parser::oid_registry::{
    OID_PKIX_AUTHORITY_INFO_ACCESS, OID_X509_COMMON_NAME, OID_X509_COUNTRY_NAME, OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER,
    OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_CRL_DISTRIBUTION_POINTS, OID_X509_EXT_EXTENDED_KEY_USAGE,
    OID_X509_EXT_KEY_USAGE, OID_X509_EXT_SUBJECT_ALT_NAME, OID_X509_EXT_SUBJECT_KEY_IDENTIFIER, Oid,
};
use x509_parser::prelude::FromDer;
use x509_parser::x509::{AlgorithmIdentifier, X509Name};

use super::{Findings, LintFailure, serial_findings};
use crate::issuance::csr::identifier_of;
use crate::issuance::{Identifier, Serial};
use crate::keys::SigningAlgorithm;

/// id-pkix-ocsp-nocheck (RFC 6960 §4.2.2.2.1).
const OCSP_NOCHECK: &str = "1.3.6.1.5.5.7.48.1.5";
/// rsaEncryption: an RSA subject key may also encipher keys.
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

/// Which profile a certificate follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Self-signed, CA without a path length limit.
    Root,
    /// Signed by the root, may sign leaves only (pathLen 0).
    IssuingCa,
    /// A workload's (or Tessera's own TLS) client-and-server certificate.
    Leaf,
    /// A delegated OCSP responder.
    OcspResponder,
}

impl Profile {
    fn is_ca(self) -> bool {
        matches!(self, Self::Root | Self::IssuingCa)
    }
}

/// What was approved for one certificate: the lint holds the encoded
/// certificate to exactly this.
#[derive(Debug, Clone)]
pub struct CertificateExpectation<'a> {
    pub kind: Profile,
    pub serial: &'a Serial,
    /// The identifiers approved for a leaf; none for the other kinds.
    pub names: &'a [Identifier],
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// The subject's public key as SubjectPublicKeyInfo DER.
    pub subject_spki_der: &'a [u8],
}

/// What the lint needs of the issuer: a parsed CA certificate, or for a
/// root the certificate itself.
struct IssuerView<'a> {
    subject_raw: &'a [u8],
    not_after: i64,
    ski: Option<Vec<u8>>,
}

/// Checks the to-be-signed certificate `tbs_der` against `expect`;
/// `issuer_der` is the signing CA's certificate (None for a root, which
/// issues itself) and `algorithm` the one its key signs with.
pub fn check_certificate(
    tbs_der: &[u8],
    issuer_der: Option<&[u8]>,
    algorithm: SigningAlgorithm,
    expect: &CertificateExpectation<'_>,
) -> Result<(), LintFailure> {
    let mut findings = Findings::new("certificate");
    let tbs = match TbsCertificate::from_der(tbs_der) {
        Ok(([], tbs)) => tbs,
        Ok(_) => {
            findings.push("the to-be-signed certificate has bytes after its end".into());
            return findings.into_result();
        }
        Err(e) => {
            findings.push(format!("the to-be-signed certificate does not parse: {e}"));
            return findings.into_result();
        }
    };
    let issuer = match issuer_der.map(X509Certificate::from_der) {
        None => IssuerView { subject_raw: tbs.subject.as_raw(), not_after: i64::MAX, ski: subject_key_id(&tbs) },
        Some(Ok((_, ca))) => IssuerView {
            subject_raw: ca.tbs_certificate.subject.as_raw(),
            not_after: ca.validity().not_after.timestamp(),
            ski: subject_key_id(&ca.tbs_certificate),
        },
        Some(Err(e)) => {
            findings.push(format!("the issuer's certificate does not parse: {e}"));
            return findings.into_result();
        }
    };

    findings.check(tbs.version.0 == 2, || format!("version is {}, not v3", tbs.version.0 + 1));
    serial_findings(tbs.raw_serial(), "the serial", &mut findings, true);
    findings.check(tbs.raw_serial() == expect.serial.as_bytes(), || {
        format!("the serial is {}, not the reserved {}", hex::encode(tbs.raw_serial()), expect.serial.to_hex())
    });
    check_algorithm(&tbs.signature, algorithm, &mut findings);
    findings.check(tbs.issuer.as_raw() == issuer.subject_raw, || {
        format!("the issuer name {} is not the issuing CA's subject", tbs.issuer)
    });
    findings.check(tbs.subject_pki.raw == expect.subject_spki_der, || {
        "the subject public key is not the one approved".into()
    });
    check_validity(&tbs, expect, issuer.not_after, &mut findings);
    check_subject(&tbs.subject, expect, &mut findings);
    check_extensions(&tbs, expect, issuer.ski.as_deref(), &mut findings);
    findings.into_result()
}

fn subject_key_id(tbs: &TbsCertificate<'_>) -> Option<Vec<u8>> {
    tbs.extensions().iter().find_map(|e| match e.parsed_extension() {
        ParsedExtension::SubjectKeyIdentifier(id) => Some(id.0.to_vec()),
        _ => None,
    })
}

/// The signature algorithm named inside the TBS must be the one the
/// issuer's key will sign with (RFC 5280 §4.1.2.3).
pub(super) fn check_algorithm(named: &AlgorithmIdentifier<'_>, algorithm: SigningAlgorithm, findings: &mut Findings) {
    let expected = AlgorithmIdentifier::from_der(algorithm.algorithm_identifier_der()).map(|(_, a)| a.algorithm);
    findings.check(expected.as_ref().is_ok_and(|oid| *oid == named.algorithm), || {
        format!("the signature algorithm {} is not the issuer key's", named.algorithm)
    });
    findings.check(named.parameters.is_none(), || "the ECDSA signature algorithm carries parameters".into());
}

fn check_validity(
    tbs: &TbsCertificate<'_>,
    expect: &CertificateExpectation<'_>,
    issuer_not_after: i64,
    findings: &mut Findings,
) {
    let not_before = tbs.validity.not_before.timestamp();
    let not_after = tbs.validity.not_after.timestamp();
    findings.check(not_before < not_after, || "notBefore is not before notAfter".into());
    findings.check(not_before == expect.not_before.unix_timestamp(), || {
        format!("notBefore {not_before} is not the approved {}", expect.not_before.unix_timestamp())
    });
    findings.check(not_after == expect.not_after.unix_timestamp(), || {
        format!("notAfter {not_after} is not the approved {}", expect.not_after.unix_timestamp())
    });
    findings.check(not_after <= issuer_not_after, || {
        format!("notAfter {not_after} is after the issuing CA's {issuer_not_after}")
    });
}

/// Subjects carry only PrintableString or UTF8String values (RFC 5280
/// §4.1.2.6); a CA and a responder are named by a common name; a leaf's
/// common name, if any, is one of its DNS names.
fn check_subject(subject: &X509Name<'_>, expect: &CertificateExpectation<'_>, findings: &mut Findings) {
    for attribute in subject.iter_attributes() {
        let tag = attribute.attr_value().tag();
        let country = *attribute.attr_type() == OID_X509_COUNTRY_NAME;
        let allowed = tag == Tag::PrintableString || (!country && tag == Tag::Utf8String);
        findings.check(allowed, || format!("subject attribute {} is encoded as {tag}", attribute.attr_type()));
    }
    let common_names: Vec<&str> = subject.iter_common_name().filter_map(|cn| cn.as_str().ok()).collect();
    match expect.kind {
        Profile::Leaf => {
            let others = subject.iter_attributes().filter(|a| *a.attr_type() != OID_X509_COMMON_NAME).count();
            findings.check(others == 0, || "a leaf's subject holds more than a common name".into());
            for cn in &common_names {
                let listed = expect.names.iter().any(|n| matches!(n, Identifier::Dns(d) if d == cn));
                findings.check(listed, || format!("the common name {cn:?} is not one of the approved DNS names"));
            }
        }
        _ => findings.check(common_names.iter().any(|cn| !cn.is_empty()), || {
            "a CA or responder certificate has no common name".into()
        }),
    }
}

fn check_extensions(
    tbs: &TbsCertificate<'_>,
    expect: &CertificateExpectation<'_>,
    issuer_ski: Option<&[u8]>,
    findings: &mut Findings,
) {
    let mut seen = HashSet::new();
    for extension in tbs.extensions() {
        findings
            .check(seen.insert(extension.oid.to_id_string()), || format!("extension {} appears twice", extension.oid));
        match extension.parsed_extension() {
            ParsedExtension::ParseError { error } => {
                findings.push(format!("extension {} does not parse: {error}", extension.oid))
            }
            ParsedExtension::UnsupportedExtension { .. } if extension.critical => {
                findings.push(format!("unknown extension {} is critical", extension.oid))
            }
            _ => {}
        }
    }
    let kind = expect.kind;
    check_basic_constraints(find(tbs, &OID_X509_EXT_BASIC_CONSTRAINTS), kind, findings);
    let rsa = tbs.subject_pki.algorithm.algorithm.to_id_string() == RSA_ENCRYPTION;
    check_key_usage(find(tbs, &OID_X509_EXT_KEY_USAGE), kind, rsa, findings);
    check_extended_key_usage(find(tbs, &OID_X509_EXT_EXTENDED_KEY_USAGE), kind, findings);
    check_key_identifiers(tbs, kind, issuer_ski, findings);
    check_names(tbs, expect, findings);
    let has = |oid: &Oid<'_>| find(tbs, oid).is_some();
    if matches!(kind, Profile::Leaf | Profile::IssuingCa) {
        findings.check(has(&OID_X509_EXT_CRL_DISTRIBUTION_POINTS), || "no CRL distribution point".into());
        findings.check(has(&OID_PKIX_AUTHORITY_INFO_ACCESS), || "no authority information access".into());
    }
    if kind == Profile::OcspResponder {
        let nocheck = tbs.extensions().iter().any(|e| e.oid.to_id_string() == OCSP_NOCHECK);
        findings.check(nocheck, || "a responder certificate without id-pkix-ocsp-nocheck".into());
    }
}

fn find<'a, 'b>(tbs: &'b TbsCertificate<'a>, oid: &Oid<'_>) -> Option<&'b X509Extension<'a>> {
    tbs.extensions().iter().find(|e| e.oid == *oid)
}

fn check_basic_constraints(extension: Option<&X509Extension<'_>>, kind: Profile, findings: &mut Findings) {
    let constraints = extension.and_then(|e| match e.parsed_extension() {
        ParsedExtension::BasicConstraints(bc) => Some((e.critical, bc.ca, bc.path_len_constraint)),
        _ => None,
    });
    match (kind, constraints) {
        (Profile::Root, Some((true, true, None))) => {}
        (Profile::IssuingCa, Some((true, true, Some(0)))) => {}
        (Profile::Root | Profile::IssuingCa, found) => findings.push(format!(
            "a {} needs critical basic constraints CA:TRUE{}, found {found:?}",
            if kind == Profile::Root { "root" } else { "issuing CA" },
            if kind == Profile::Root { "" } else { " pathLen 0" },
        )),
        (_, Some((_, true, _))) => findings.push("an end-entity certificate says CA:TRUE".into()),
        (_, _) => {}
    }
}

fn check_key_usage(extension: Option<&X509Extension<'_>>, kind: Profile, rsa: bool, findings: &mut Findings) {
    let Some((critical, usage)) = extension.and_then(|e| match e.parsed_extension() {
        ParsedExtension::KeyUsage(ku) => Some((e.critical, ku)),
        _ => None,
    }) else {
        findings.push("no key usage".into());
        return;
    };
    findings.check(critical, || "key usage is not critical".into());
    if kind.is_ca() {
        findings.check(usage.key_cert_sign() && usage.crl_sign(), || {
            "a CA's key usage lacks keyCertSign or cRLSign".into()
        });
    } else {
        findings.check(usage.digital_signature(), || "key usage lacks digitalSignature".into());
        findings.check(!usage.key_cert_sign() && !usage.crl_sign(), || {
            "an end-entity certificate may sign certificates or CRLs".into()
        });
        let key_encipherment_allowed = rsa && kind == Profile::Leaf;
        findings.check(key_encipherment_allowed || !usage.key_encipherment(), || {
            "keyEncipherment on a key that cannot encipher".into()
        });
        let others = usage.flags & !0b101;
        findings.check(others == 0, || format!("key usage bits {others:#x} outside the profile"));
    }
}

fn check_extended_key_usage(extension: Option<&X509Extension<'_>>, kind: Profile, findings: &mut Findings) {
    let usage = extension.and_then(|e| match e.parsed_extension() {
        ParsedExtension::ExtendedKeyUsage(eku) => Some(eku),
        _ => None,
    });
    let describe = |eku: &x509_parser::extensions::ExtendedKeyUsage<'_>| {
        (
            eku.any,
            eku.server_auth,
            eku.client_auth,
            eku.ocsp_signing,
            eku.code_signing || eku.email_protection || eku.time_stamping || !eku.other.is_empty(),
        )
    };
    match (kind, usage.map(describe)) {
        (Profile::Root | Profile::IssuingCa, None) => {}
        (Profile::Root | Profile::IssuingCa, Some(_)) => {
            findings.push("a CA certificate carries an extended key usage".into())
        }
        (Profile::Leaf, Some((false, true, true, false, false))) => {}
        (Profile::Leaf, _) => findings.push("a leaf's extended key usage is not serverAuth and clientAuth".into()),
        (Profile::OcspResponder, Some((false, false, false, true, false))) => {}
        (Profile::OcspResponder, _) => {
            findings.push("a responder's extended key usage is not OCSPSigning alone".into())
        }
    }
}

/// A CA names its key (SKI, RFC 5280 §4.2.1.2); everything but a root names
/// its issuer's (AKI, §4.2.1.1), and that must be the issuer's SKI.
fn check_key_identifiers(tbs: &TbsCertificate<'_>, kind: Profile, issuer_ski: Option<&[u8]>, findings: &mut Findings) {
    let ski = subject_key_id(tbs);
    findings.check(ski.as_ref().is_none_or(|id| !id.is_empty()), || "an empty subject key identifier".into());
    if kind.is_ca() {
        findings.check(ski.is_some(), || "a CA certificate without a subject key identifier".into());
    }
    if let Some(extension) = find(tbs, &OID_X509_EXT_SUBJECT_KEY_IDENTIFIER) {
        findings.check(!extension.critical, || "the subject key identifier is critical".into());
    }
    let aki = find(tbs, &OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER).map(|e| match e.parsed_extension() {
        ParsedExtension::AuthorityKeyIdentifier(aki) => (e.critical, aki.key_identifier.as_ref().map(|k| k.0.to_vec())),
        _ => (e.critical, None),
    });
    match (kind, aki) {
        (Profile::Root, None) => {}
        (_, None) => findings.push("no authority key identifier".into()),
        (_, Some((critical, id))) => {
            findings.check(!critical, || "the authority key identifier is critical".into());
            findings.check(id.is_some() && id.as_deref() == issuer_ski, || {
                "the authority key identifier is not the issuing CA's subject key identifier".into()
            });
        }
    }
}

/// A leaf names exactly the approved identifiers, in its SAN extension,
/// which is critical when the subject is empty (RFC 5280 §4.2.1.6); the
/// other kinds name none.
fn check_names(tbs: &TbsCertificate<'_>, expect: &CertificateExpectation<'_>, findings: &mut Findings) {
    let extension = find(tbs, &OID_X509_EXT_SUBJECT_ALT_NAME);
    let Some(extension) = extension else {
        findings.check(expect.kind != Profile::Leaf, || "a leaf without subject alternative names".into());
        return;
    };
    if expect.kind != Profile::Leaf {
        findings.push("a CA or responder certificate carries subject alternative names".into());
        return;
    }
    let ParsedExtension::SubjectAlternativeName(san) = extension.parsed_extension() else {
        return; // reported as a parse error above
    };
    let empty_subject = tbs.subject.iter_attributes().next().is_none();
    findings.check(extension.critical == empty_subject, || {
        format!(
            "the SAN extension is {}critical with {} subject",
            if extension.critical { "" } else { "not " },
            if empty_subject { "an empty" } else { "a" }
        )
    });
    let mut named: Vec<String> = Vec::new();
    for name in &san.general_names {
        match identifier_of(name) {
            Ok(id) => named.push(id.to_tagged()),
            Err(e) => findings.push(format!("a subject alternative name is not allowed: {e}")),
        }
        if let GeneralName::DNSName(d) | GeneralName::URI(d) = name {
            findings.check(d.is_ascii(), || format!("the name {d:?} is not IA5"));
        }
    }
    let mut approved: Vec<String> = expect.names.iter().map(Identifier::to_tagged).collect();
    named.sort();
    approved.sort();
    findings.check(named == approved, || format!("the names {named:?} are not the approved {approved:?}"));
}
