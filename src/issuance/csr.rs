//! PKCS#10 certificate requests (RFC 2986): parsed, self-signature verified,
//! key checked. A [`CheckedCsr`] exists only once all of that has passed.

use std::net::IpAddr;

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::PublicKey;

use super::identifier::{Identifier, IdentifierError};
use crate::keys::SigningAlgorithm;

/// The subject key types Tessera certifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyType {
    EcdsaP256,
    EcdsaP384,
    Ed25519,
    Rsa,
}

impl KeyType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::EcdsaP384 => "ecdsa-p384",
            Self::Ed25519 => "ed25519",
            Self::Rsa => "rsa",
        }
    }
}

const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 8192;
/// The one RSA public exponent accepted, for CSR and ACME account keys
/// alike: small exponents such as 3 have broken padding schemes before,
/// and every mainstream key generator uses 65537.
pub const RSA_EXPONENT: &[u8] = &[0x01, 0x00, 0x01];

/// A subject key by its numbers, however its DER was written: what two
/// keys are compared by (an ACME account key must not be certified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKeyNumbers {
    /// An uncompressed point, `0x04 || x || y`.
    Ec(Vec<u8>),
    Ed25519(Vec<u8>),
    /// Big-endian, without leading zeros.
    Rsa {
        modulus: Vec<u8>,
        exponent: Vec<u8>,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CsrError {
    #[error("the CSR is neither PEM nor DER")]
    NotPemOrDer,
    #[error("the CSR is not a valid PKCS#10 request: {0}")]
    Malformed(String),
    #[error("the CSR's self-signature does not verify")]
    BadSignature,
    #[error("the CSR is signed with {0}, which is not accepted")]
    WeakSignatureAlgorithm(String),
    #[error("unsupported key type: {0}")]
    UnsupportedKey(String),
    #[error("weak key: {0}")]
    WeakKey(String),
    #[error("the CSR asks for a name Tessera cannot certify: {0}")]
    UnsupportedName(String),
    /// A name of a supported type that is not spelled as Tessera certifies it.
    #[error("the CSR asks for an invalid identifier: {0}")]
    BadIdentifier(#[from] IdentifierError),
}

/// A certificate request whose signature and key have been checked.
#[derive(Debug, Clone)]
pub struct CheckedCsr {
    /// The key in the encoding its certificate will carry (see [`canonical_spki`]).
    spki_der: Vec<u8>,
    key_type: KeyType,
    key_bits: usize,
    public_key: PublicKeyNumbers,
    /// For an ECDSA self-signature, whether its S is above half the order
    /// (valid, but not canonical); `None` for other keys. Policies decide
    /// whether to refuse it.
    high_s_signature: Option<bool>,
    common_name: Option<String>,
    subject_alt_names: Vec<Identifier>,
}

impl CheckedCsr {
    /// Accepts a PEM `CERTIFICATE REQUEST` block or raw DER.
    pub fn parse(input: &[u8]) -> Result<Self, CsrError> {
        let der = decode_pem_or_der(input)?;
        Self::parse_der(&der)
    }

    pub fn parse_der(der: &[u8]) -> Result<Self, CsrError> {
        let (rest, csr) = X509CertificationRequest::from_der(der).map_err(|e| CsrError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CsrError::Malformed("trailing data after the request".into()));
        }
        let info = &csr.certification_request_info;
        let (key_type, key_bits, public_key) = classify_key(&info.subject_pki)?;
        let spki_der = canonical_spki(&info.subject_pki, key_type)?;
        check_signature_algorithm(&csr)?;
        csr.verify_signature().map_err(|_| CsrError::BadSignature)?;
        let high_s_signature = high_s(key_type, &csr.signature_value.data);

        let common_name = info.subject.iter_common_name().next().and_then(|cn| cn.as_str().ok()).map(str::to_string);
        let mut subject_alt_names = Vec::new();
        if let Some(extensions) = csr.requested_extensions() {
            for ext in extensions {
                if let ParsedExtension::SubjectAlternativeName(san) = ext {
                    for name in &san.general_names {
                        subject_alt_names.push(identifier_of(name)?);
                    }
                }
            }
        }
        Ok(Self { spki_der, key_type, key_bits, public_key, high_s_signature, common_name, subject_alt_names })
    }

    pub fn public_key(&self) -> &PublicKeyNumbers {
        &self.public_key
    }

    /// Whether the ECDSA self-signature is high-S; `None` for other keys.
    pub fn high_s_signature(&self) -> Option<bool> {
        self.high_s_signature
    }

    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    pub fn key_bits(&self) -> usize {
        self.key_bits
    }

    pub fn common_name(&self) -> Option<&str> {
        self.common_name.as_deref()
    }

    pub fn subject_alt_names(&self) -> &[Identifier] {
        &self.subject_alt_names
    }

    /// Every name the CSR asks for: its SANs, plus the common name when that is
    /// a DNS name or IP address. A common name that is neither (a label such as
    /// "billing service") is ignored when SANs are present, since the profile
    /// never copies it; without SANs it is an error. Sorted, unique.
    pub fn requested_names(&self) -> Result<Vec<Identifier>, CsrError> {
        let mut names = self.subject_alt_names.clone();
        if let Some(cn) = &self.common_name {
            match Identifier::guess(cn) {
                Ok(id @ (Identifier::Dns(_) | Identifier::Ip(_))) => names.push(id),
                _ if !names.is_empty() => {}
                _ => return Err(CsrError::UnsupportedName(format!("common name {cn:?}"))),
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }
}

fn decode_pem_or_der(input: &[u8]) -> Result<Vec<u8>, CsrError> {
    let trimmed = input.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN") {
        let block = pem::parse(trimmed).map_err(|_| CsrError::NotPemOrDer)?;
        return match block.tag() {
            "CERTIFICATE REQUEST" | "NEW CERTIFICATE REQUEST" => Ok(block.into_contents()),
            _ => Err(CsrError::NotPemOrDer),
        };
    }
    if input.first() == Some(&0x30) {
        return Ok(input.to_vec());
    }
    Err(CsrError::NotPemOrDer)
}

fn classify_key(
    spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>,
) -> Result<(KeyType, usize, PublicKeyNumbers), CsrError> {
    let alg = &spki.algorithm.algorithm;
    let key_bits = &spki.subject_public_key.data;
    if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .ok_or_else(|| CsrError::UnsupportedKey("EC key without a named curve".into()))?;
        let (key_type, bits) = if curve == OID_EC_P256 {
            (KeyType::EcdsaP256, 256)
        } else if curve == OID_NIST_EC_P384 {
            (KeyType::EcdsaP384, 384)
        } else if curve.to_id_string() == "1.2.840.10045.3.1.1" || curve.to_id_string() == "1.3.132.0.33" {
            return Err(CsrError::WeakKey(format!("EC curve {curve} is below 256 bits")));
        } else {
            return Err(CsrError::UnsupportedKey(format!("EC curve {curve}")));
        };
        // One spelling per key (RFC 5480 §2.2 leaves compression optional).
        if key_bits.len() != 1 + 2 * bits / 8 || key_bits.first() != Some(&0x04) {
            return Err(CsrError::UnsupportedKey("EC points must be uncompressed".into()));
        }
        return Ok((key_type, bits, PublicKeyNumbers::Ec(key_bits.to_vec())));
    }
    if *alg == OID_SIG_ED25519 {
        return Ok((KeyType::Ed25519, 256, PublicKeyNumbers::Ed25519(key_bits.to_vec())));
    }
    if *alg == OID_PKCS1_RSAENCRYPTION {
        let Ok(PublicKey::RSA(rsa)) = spki.parsed() else {
            return Err(CsrError::Malformed("unreadable RSA public key".into()));
        };
        let modulus = strip_leading_zeros(rsa.modulus);
        let bits = bit_length(modulus);
        if bits < MIN_RSA_BITS {
            return Err(CsrError::WeakKey(format!("RSA key of {bits} bits; at least {MIN_RSA_BITS} are required")));
        }
        if bits > MAX_RSA_BITS {
            return Err(CsrError::UnsupportedKey(format!("RSA key of {bits} bits; at most {MAX_RSA_BITS}")));
        }
        let exponent = strip_leading_zeros(rsa.exponent);
        if exponent != RSA_EXPONENT {
            return Err(CsrError::WeakKey(format!(
                "RSA public exponent {}; only 65537 is accepted",
                hex::encode(exponent)
            )));
        }
        let numbers = PublicKeyNumbers::Rsa { modulus: modulus.to_vec(), exponent: exponent.to_vec() };
        return Ok((KeyType::Rsa, bits, numbers));
    }
    Err(CsrError::UnsupportedKey(format!("algorithm {alg}")))
}

/// The key as its certificate will carry it, refusing any other encoding of
/// it: uncompressed EC points, minimal RSA integers, and the algorithm
/// identifier as certificates write it (rsaEncryption with NULL parameters,
/// Ed25519 without). One key then has one encoding, so a key blocked as
/// compromised cannot come back in another form (its hash would differ).
fn canonical_spki(spki: &x509_parser::x509::SubjectPublicKeyInfo<'_>, key_type: KeyType) -> Result<Vec<u8>, CsrError> {
    let key = spki.subject_public_key.data.as_ref();
    let is_canonical = match key_type {
        // classify_key already took EC points uncompressed only.
        KeyType::EcdsaP256 | KeyType::EcdsaP384 | KeyType::Ed25519 => true,
        KeyType::Rsa => match spki.parsed() {
            Ok(PublicKey::RSA(rsa)) => rsa_public_key_der(rsa.modulus, rsa.exponent).as_deref() == Some(key),
            _ => false,
        },
    };
    if !is_canonical {
        return Err(CsrError::UnsupportedKey(format!(
            "the {} public key is not in its standard encoding (uncompressed points, minimal integers)",
            key_type.as_str()
        )));
    }
    let standard = rcgen::SubjectPublicKeyInfo::from_der(spki.raw).map_err(|_| {
        CsrError::UnsupportedKey(format!(
            "the {} key's algorithm identifier is not the standard one",
            key_type.as_str()
        ))
    })?;
    Ok(rcgen::PublicKeyData::subject_public_key_info(&standard))
}

/// A PKCS#1 RSAPublicKey in DER, its integers minimal.
fn rsa_public_key_der(modulus: &[u8], exponent: &[u8]) -> Option<Vec<u8>> {
    #[derive(der::Sequence)]
    struct RsaPublicKey<'a> {
        modulus: der::asn1::UintRef<'a>,
        public_exponent: der::asn1::UintRef<'a>,
    }
    let key = RsaPublicKey {
        modulus: der::asn1::UintRef::new(modulus).ok()?,
        public_exponent: der::asn1::UintRef::new(exponent).ok()?,
    };
    der::Encode::to_der(&key).ok()
}

fn strip_leading_zeros(unsigned_be: &[u8]) -> &[u8] {
    let zeros = unsigned_be.iter().take_while(|b| **b == 0).count();
    &unsigned_be[zeros..]
}

/// Bits of a big-endian number without leading zeros.
fn bit_length(digits: &[u8]) -> usize {
    match digits.first() {
        None => 0,
        Some(first) => (digits.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}

/// Whether an ECDSA self-signature (DER, as the CSR carries it, already
/// verified) has a high S; `None` for other keys.
fn high_s(key_type: KeyType, signature: &[u8]) -> Option<bool> {
    let curve = match key_type {
        KeyType::EcdsaP256 => SigningAlgorithm::EcdsaP256Sha256,
        KeyType::EcdsaP384 => SigningAlgorithm::EcdsaP384Sha384,
        KeyType::Ed25519 | KeyType::Rsa => return None,
    };
    curve.der_signature_has_high_s(signature)
}

fn check_signature_algorithm(csr: &X509CertificationRequest<'_>) -> Result<(), CsrError> {
    // SHA-1 and MD5 based signatures (1.2.840.113549.1.1.{4,5}, 1.3.14.3.2.29,
    // 1.2.840.10045.4.1) prove nothing about possession today.
    let oid = csr.signature_algorithm.algorithm.to_id_string();
    match oid.as_str() {
        "1.2.840.113549.1.1.4" | "1.2.840.113549.1.1.5" | "1.3.14.3.2.29" | "1.2.840.10045.4.1" => {
            Err(CsrError::WeakSignatureAlgorithm(oid))
        }
        _ => Ok(()),
    }
}

pub(super) fn identifier_of(name: &GeneralName<'_>) -> Result<Identifier, CsrError> {
    let unsupported = |what: String| CsrError::UnsupportedName(what);
    match name {
        GeneralName::DNSName(n) => Ok(Identifier::dns(n)?),
        GeneralName::URI(u) => Ok(Identifier::uri(u)?),
        GeneralName::IPAddress(bytes) => match bytes.len() {
            4 => Ok(Identifier::Ip(IpAddr::from(<[u8; 4]>::try_from(*bytes).unwrap_or_default()))),
            16 => Ok(Identifier::Ip(IpAddr::from(<[u8; 16]>::try_from(*bytes).unwrap_or_default()))),
            n => Err(unsupported(format!("IP address of {n} octets"))),
        },
        GeneralName::RFC822Name(e) => Err(unsupported(format!("email address {e:?}"))),
        other => Err(unsupported(format!("{other:?}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csr_for(key: &rcgen::KeyPair, names: &[&str]) -> Vec<u8> {
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).expect("params");
        params.serialize_request(key).expect("csr").der().to_vec()
    }

    #[test]
    fn accepts_each_supported_key_type() {
        for (alg, want) in [
            (&rcgen::PKCS_ECDSA_P256_SHA256, KeyType::EcdsaP256),
            (&rcgen::PKCS_ECDSA_P384_SHA384, KeyType::EcdsaP384),
            (&rcgen::PKCS_ED25519, KeyType::Ed25519),
        ] {
            let key = rcgen::KeyPair::generate_for(alg).expect("key");
            let csr = CheckedCsr::parse(&csr_for(&key, &["a.test", "127.0.0.1"])).expect("valid");
            assert_eq!(csr.key_type(), want);
            assert_eq!(
                csr.requested_names().expect("names"),
                vec![Identifier::dns("a.test").expect("dns"), Identifier::ip("127.0.0.1").expect("ip")]
            );
        }
    }

    #[test]
    fn pem_and_der_are_both_accepted_and_garbage_is_not() {
        let key = rcgen::KeyPair::generate().expect("key");
        let der = csr_for(&key, &["a.test"]);
        let pem = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", der.clone()));
        assert!(CheckedCsr::parse(pem.as_bytes()).is_ok());
        assert_eq!(CheckedCsr::parse(b"hello").err(), Some(CsrError::NotPemOrDer));
        assert!(matches!(CheckedCsr::parse(&der[..der.len() - 3]), Err(CsrError::Malformed(_))));
    }

    /// The twin of a CSR's valid P-256 signature: (r, n - s).
    fn mirrored_signature(der: &[u8]) -> Vec<u8> {
        use der::{Decode, Encode};
        #[derive(der::Sequence)]
        struct Signature {
            r: der::asn1::Uint,
            s: der::asn1::Uint,
        }
        let order = hex::decode("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551").expect("hex");
        let mut request = x509_cert::request::CertReq::from_der(der).expect("CSR");
        let signature = Signature::from_der(request.signature.raw_bytes()).expect("ECDSA signature");
        let s = signature.s.as_bytes();
        let s = [vec![0; order.len() - s.len()], s.to_vec()].concat();
        let mut mirrored = vec![0u8; order.len()];
        let mut borrow = 0;
        for i in (0..order.len()).rev() {
            let digit = i16::from(order[i]) - i16::from(s[i]) - borrow;
            borrow = i16::from(digit < 0);
            mirrored[i] = (digit + 256 * borrow) as u8;
        }
        let twin = Signature { r: signature.r, s: der::asn1::Uint::new(&mirrored).expect("s") };
        request.signature = der::asn1::BitString::from_bytes(&twin.to_der().expect("der")).expect("bits");
        request.to_der().expect("CSR")
    }

    #[test]
    fn both_twins_of_an_ecdsa_signature_verify_and_exactly_one_is_high_s() {
        let key = rcgen::KeyPair::generate().expect("key");
        let der = csr_for(&key, &["a.test"]);
        let original = CheckedCsr::parse_der(&der).expect("valid");
        let twin = CheckedCsr::parse_der(&mirrored_signature(&der)).expect("the twin verifies too");
        let forms = [original.high_s_signature(), twin.high_s_signature()];
        assert!(forms == [Some(true), Some(false)] || forms == [Some(false), Some(true)], "{forms:?}");
        assert_eq!(original.public_key(), twin.public_key());
    }

    #[test]
    fn a_compressed_ec_point_is_refused() {
        use der::Decode;
        let key = rcgen::KeyPair::generate().expect("key");
        let csr = CheckedCsr::parse_der(&csr_for(&key, &["a.test"])).expect("valid");
        let PublicKeyNumbers::Ec(point) = csr.public_key() else { panic!("an EC key") };
        // The same key, compressed: 0x02 or 0x03 by the parity of y, then x.
        let compressed = [&[2 + (point[64] & 1)][..], &point[1..33]].concat();
        let mut spki = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(csr.spki_der()).expect("spki");
        spki.subject_public_key = der::asn1::BitString::from_bytes(&compressed).expect("bits");
        let spki_der = der::Encode::to_der(&spki).expect("der");
        let (_, parsed) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&spki_der).expect("spki");
        assert!(matches!(classify_key(&parsed), Err(CsrError::UnsupportedKey(m)) if m.contains("uncompressed")));
    }

    #[test]
    fn a_tampered_request_fails_its_signature() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut der = csr_for(&key, &["a.test"]);
        let at = der.windows(6).position(|w| w == b"a.test").expect("name in DER");
        der[at] = b'b';
        assert_eq!(CheckedCsr::parse(&der).err(), Some(CsrError::BadSignature));
    }

    /// DER of one element: tag, definite length, contents.
    fn tlv(tag: u8, contents: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        match contents.len() {
            n @ 0..=127 => out.push(n as u8),
            n @ 128..=255 => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend_from_slice(contents);
        out
    }

    /// A CSR for CN=a.test whose P-256 key is written as `point`, signed
    /// by `key` (so the signature is good whatever the point's encoding).
    fn p256_csr(key: &aws_lc_rs::signature::EcdsaKeyPair, point: &[u8]) -> Vec<u8> {
        const EC_P256: &[u8] = &[
            0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01,
            0x07,
        ];
        const ECDSA_SHA256: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
        let cn = tlv(0x30, &[&[0x06, 0x03, 0x55, 0x04, 0x03][..], &tlv(0x0c, b"a.test")].concat());
        let subject = tlv(0x30, &tlv(0x31, &cn));
        let spki = tlv(0x30, &[tlv(0x30, EC_P256), tlv(0x03, &[&[0][..], point].concat())].concat());
        let info = tlv(0x30, &[&[0x02, 0x01, 0x00][..], &subject, &spki, &[0xa0, 0x00]].concat());
        let signature = key.sign(&aws_lc_rs::rand::SystemRandom::new(), &info).expect("sign");
        let signature = tlv(0x03, &[&[0][..], signature.as_ref()].concat());
        tlv(0x30, &[info, tlv(0x30, ECDSA_SHA256), signature].concat())
    }

    /// One key, one encoding: the same P-256 key as a compressed point is
    /// refused, so a blocked key cannot return under another hash.
    #[test]
    fn a_key_in_another_encoding_is_refused() {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &aws_lc_rs::rand::SystemRandom::new())
                .expect("key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).expect("key");
        let point = key.public_key().as_ref().to_vec();
        assert!(CheckedCsr::parse_der(&p256_csr(&key, &point)).is_ok(), "the uncompressed point is accepted");
        let compressed = [&[2 + (point[64] & 1)][..], &point[1..33]].concat();
        assert!(matches!(CheckedCsr::parse_der(&p256_csr(&key, &compressed)), Err(CsrError::UnsupportedKey(_))));
    }

    /// The key hash of a CSR is the hash of the key in the certificate
    /// issued for it, for every key type: the revocation of one and the
    /// refusal of the other meet on it.
    #[test]
    fn a_certificate_carries_its_csr_key_hash() {
        use super::super::KeyHash;
        use rcgen::PublicKeyData;
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params").self_signed(&ca_key).expect("ca");
        let issuer = rcgen::Issuer::from_ca_cert_der(ca.der(), &ca_key).expect("issuer");
        for alg in [
            &rcgen::PKCS_ECDSA_P256_SHA256,
            &rcgen::PKCS_ECDSA_P384_SHA384,
            &rcgen::PKCS_ED25519,
            &rcgen::PKCS_RSA_SHA256,
        ] {
            let key = rcgen::KeyPair::generate_for(alg).expect("key");
            let csr = CheckedCsr::parse(&csr_for(&key, &["a.test"])).expect("valid");
            let subject = rcgen::SubjectPublicKeyInfo::from_der(csr.spki_der()).expect("spki");
            let params = rcgen::CertificateParams::new(vec!["a.test".to_owned()]).expect("params");
            let certificate = params.signed_by(&subject, &issuer).expect("certificate");
            assert_eq!(
                KeyHash::of_certificate(certificate.der()),
                Some(KeyHash::of_spki_der(csr.spki_der())),
                "{alg:?}"
            );
            assert_eq!(
                KeyHash::of_spki_der(csr.spki_der()),
                KeyHash::of_spki_der(&key.subject_public_key_info()),
                "{alg:?}"
            );
        }
    }
}
