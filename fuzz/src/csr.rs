//! Certificate requests (RFC 2986) as ACME finalize and the REST API
//! receive them: PEM or DER, checked by `CheckedCsr`.

use std::net::IpAddr;

use arbitrary::{Arbitrary, Unstructured};
use tessera::issuance::{CheckedCsr, CsrError, Identifier};

use crate::test_keys::csr_key;

/// Raw bytes, PEM or DER.
pub fn csr(data: &[u8]) {
    if let Ok(csr) = CheckedCsr::parse(data) {
        names_read_back(&csr);
    }
}

/// Every name a checked CSR asks for is stored in its tagged form and must
/// read back as the same name.
fn names_read_back(csr: &CheckedCsr) {
    let _ = (csr.key_type(), csr.key_bits(), csr.spki_der(), csr.common_name());
    if let Ok(names) = csr.requested_names() {
        for name in names {
            assert_eq!(Identifier::from_tagged(&name.to_tagged()).as_ref(), Ok(&name), "{name:?}");
        }
    }
}

/// A CSR made by rcgen from fuzzed names and extensions, signed with a
/// fixed key, so its self-signature holds and the name checks behind it run.
#[derive(Debug, Arbitrary)]
struct RequestFields {
    common_name: Option<String>,
    names: Vec<Name>,
    /// The DER content of a subjectAltName extension, as sent.
    raw_subject_alt_name: Option<Vec<u8>>,
    /// Any other requested extension: OID arcs below 1.3.6.1.4.1, content, criticality.
    extensions: Vec<(Vec<u16>, Vec<u8>, bool)>,
}

#[derive(Debug, Arbitrary)]
enum Name {
    Dns(String),
    Uri(String),
    Ip(IpAddr),
    Email(String),
}

pub fn csr_signed(data: &[u8]) {
    let Ok(fields) = RequestFields::arbitrary_take_rest(Unstructured::new(data)) else { return };
    let Some(der) = build(&fields) else { return };
    match CheckedCsr::parse_der(&der) {
        Ok(csr) => names_read_back(&csr),
        Err(CsrError::BadSignature) => panic!("a CSR signed with its own key fails its signature"),
        Err(CsrError::NotPemOrDer) => panic!("rcgen's DER is not taken for DER"),
        Err(_) => {}
    }
}

fn build(fields: &RequestFields) -> Option<Vec<u8>> {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = &fields.common_name {
        params.distinguished_name.push(rcgen::DnType::CommonName, cn.as_str());
    }
    for name in &fields.names {
        let ia5 = |s: &str| rcgen::string::Ia5String::try_from(s).ok();
        params.subject_alt_names.push(match name {
            Name::Dns(s) => rcgen::SanType::DnsName(ia5(s)?),
            Name::Uri(s) => rcgen::SanType::URI(ia5(s)?),
            Name::Email(s) => rcgen::SanType::Rfc822Name(ia5(s)?),
            Name::Ip(ip) => rcgen::SanType::IpAddress(*ip),
        });
    }
    if let Some(content) = &fields.raw_subject_alt_name {
        params.custom_extensions.push(rcgen::CustomExtension::from_oid_content(&[2, 5, 29, 17], content.clone()));
    }
    for (arcs, content, critical) in &fields.extensions {
        let oid: Vec<u64> = [1, 3, 6, 1, 4, 1].into_iter().chain(arcs.iter().map(|a| u64::from(*a))).collect();
        let mut extension = rcgen::CustomExtension::from_oid_content(&oid, content.clone());
        extension.set_criticality(*critical);
        params.custom_extensions.push(extension);
    }
    params.serialize_request(csr_key()).ok().map(|csr| csr.der().to_vec())
}
