//! Certificate profiles: what goes into a root, an issuing CA and a leaf.
//! Only this file decides extensions; everything else passes names, keys
//! and times.

use der::Encode;
use der::asn1::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, CrlDistributionPoint, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SanType, SerialNumber,
};
use time::OffsetDateTime;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{AccessDescription, AuthorityInfoAccessSyntax};

use super::csr::KeyType;
use super::identifier::Identifier;
use super::lint::{CertificateExpectation, Profile};
use super::serial::Serial;
use super::signing::SigningError;

/// Longest value RFC 5280 allows in a common name.
const MAX_COMMON_NAME: usize = 64;

/// URLs written into certificates an authority signs, so relying parties
/// can find its certificate, CRL and OCSP responder.
#[derive(Debug, Clone)]
pub struct RevocationUrls {
    pub ca_issuers: String,
    pub crl: String,
    pub ocsp: String,
}

impl RevocationUrls {
    /// The URLs for certificates signed by authority `authority_id`.
    pub fn for_authority(base_url: &str, authority_id: i64) -> Self {
        Self {
            ca_issuers: format!("{base_url}/ca/{authority_id}.cer"),
            crl: format!("{base_url}/crl/{authority_id}.crl"),
            ocsp: format!("{base_url}/ocsp"),
        }
    }

    /// The URL of one CRL shard: `.../crl/{id}.crl` becomes `.../crl/{id}/{shard}.crl`.
    pub fn crl_shard(&self, shard: u32) -> String {
        let base = self.crl.strip_suffix(".crl").unwrap_or(&self.crl);
        format!("{base}/{shard}.crl")
    }
}

/// A CA certificate's subject and validity.
#[derive(Debug, Clone)]
pub struct CaSubject {
    pub common_name: String,
    pub organization: Option<String>,
    pub serial: Serial,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl CaSubject {
    /// What the lint holds this CA's certificate to, for the key `spki_der`.
    pub fn expectation<'a>(&'a self, kind: Profile, spki_der: &'a [u8]) -> CertificateExpectation<'a> {
        CertificateExpectation {
            kind,
            serial: &self.serial,
            names: &[],
            not_before: self.not_before,
            not_after: self.not_after,
            subject_spki_der: spki_der,
        }
    }
}

/// A self-signed root: CA without a path length limit.
pub fn root_params(subject: &CaSubject) -> CertificateParams {
    let mut params = ca_params(subject);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
}

/// An issuing CA under the root: may sign leaves only (pathLen 0).
pub fn issuing_params(subject: &CaSubject, parent_urls: &RevocationUrls) -> Result<CertificateParams, SigningError> {
    let mut params = ca_params(subject);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.use_authority_key_identifier_extension = true;
    params.crl_distribution_points = vec![CrlDistributionPoint { uris: vec![parent_urls.crl.clone()] }];
    params.custom_extensions.push(authority_info_access(parent_urls)?);
    Ok(params)
}

fn ca_params(subject: &CaSubject) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if let Some(org) = &subject.organization {
        dn.push(DnType::OrganizationName, org.as_str());
    }
    dn.push(DnType::CommonName, subject.common_name.as_str());
    params.distinguished_name = dn;
    params.serial_number = Some(SerialNumber::from_slice(subject.serial.as_bytes()));
    params.not_before = subject.not_before;
    params.not_after = subject.not_after;
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params
}

/// What a workload certificate says.
#[derive(Debug, Clone)]
pub struct LeafProfile<'a> {
    pub serial: &'a Serial,
    pub names: &'a [Identifier],
    pub key_type: KeyType,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    pub urls: &'a RevocationUrls,
    /// The CRL this leaf's distribution point names (full or a shard).
    pub crl_url: &'a str,
}

/// A TLS client-and-server certificate. The subject carries the first DNS
/// name when it fits a common name; otherwise it is empty and the SAN
/// extension (then critical, RFC 5280 §4.2.1.6) is the only identity.
pub fn leaf_params(leaf: &LeafProfile<'_>) -> Result<CertificateParams, SigningError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    if let Some(name) = leaf_common_name(leaf.names) {
        dn.push(DnType::CommonName, name);
    }
    params.distinguished_name = dn;
    params.subject_alt_names = leaf.names.iter().map(san).collect::<Result<_, _>>()?;
    params.serial_number = Some(SerialNumber::from_slice(leaf.serial.as_bytes()));
    params.not_before = leaf.not_before;
    params.not_after = leaf.not_after;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = match leaf.key_type {
        KeyType::Rsa => vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment],
        _ => vec![KeyUsagePurpose::DigitalSignature],
    };
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    params.crl_distribution_points = vec![CrlDistributionPoint { uris: vec![leaf.crl_url.to_owned()] }];
    params.custom_extensions.push(authority_info_access(leaf.urls)?);
    Ok(params)
}

/// A delegated OCSP responder (RFC 6960 §4.2.2.2): may sign OCSP responses
/// for its issuer and nothing else. It carries id-pkix-ocsp-nocheck, so
/// relying parties do not ask about the responder itself; its short life
/// takes the place of revocation checking.
pub fn ocsp_signer_params(
    authority_name: &str,
    serial: &Serial,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, format!("{authority_name} OCSP responder"));
    params.distinguished_name = dn;
    params.serial_number = Some(SerialNumber::from_slice(serial.as_bytes()));
    params.not_before = not_before;
    params.not_after = not_after;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::OcspSigning];
    params.use_authority_key_identifier_extension = true;
    // id-pkix-ocsp-nocheck (1.3.6.1.5.5.7.48.1.5), value NULL.
    params
        .custom_extensions
        .push(CustomExtension::from_oid_content(&[1, 3, 6, 1, 5, 5, 7, 48, 1, 5], vec![0x05, 0x00]));
    params
}

/// A leaf's subject as text: `CN=<name>` when the profile puts one there,
/// else empty. The certificates table does not store it (issue 6): the
/// admin API derives it from the identifiers with this.
pub fn leaf_subject(names: &[Identifier]) -> String {
    leaf_common_name(names).map(|cn| format!("CN={cn}")).unwrap_or_default()
}

/// The common name a leaf carries: its first DNS name short enough for one.
pub fn leaf_common_name(names: &[Identifier]) -> Option<&str> {
    names.iter().find_map(|n| match n {
        Identifier::Dns(d) if d.len() <= MAX_COMMON_NAME => Some(d.as_str()),
        _ => None,
    })
}

fn san(name: &Identifier) -> Result<SanType, SigningError> {
    let ia5 = |s: &str| s.to_owned().try_into().map_err(|e: rcgen::Error| SigningError::Encoding(e.to_string()));
    Ok(match name {
        Identifier::Dns(d) => SanType::DnsName(ia5(d)?),
        Identifier::Ip(ip) => SanType::IpAddress(*ip),
        Identifier::Uri(u) => SanType::URI(ia5(u.as_str())?),
    })
}

/// Authority Information Access (RFC 5280 §4.2.2.1): OCSP and caIssuers.
fn authority_info_access(urls: &RevocationUrls) -> Result<CustomExtension, SigningError> {
    use const_oid::db::rfc5280::{ID_AD_CA_ISSUERS, ID_AD_OCSP, ID_PE_AUTHORITY_INFO_ACCESS};
    let uri = |s: &str| Ia5String::new(s).map(GeneralName::UniformResourceIdentifier);
    let aia = AuthorityInfoAccessSyntax(vec![
        AccessDescription { access_method: ID_AD_OCSP, access_location: uri(&urls.ocsp)? },
        AccessDescription { access_method: ID_AD_CA_ISSUERS, access_location: uri(&urls.ca_issuers)? },
    ]);
    let oid: Vec<u64> = ID_PE_AUTHORITY_INFO_ACCESS.arcs().map(u64::from).collect();
    Ok(CustomExtension::from_oid_content(&oid, aia.to_der()?))
}
