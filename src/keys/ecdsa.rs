//! ECDSA encodings shared by the remote custodians: PKCS#11 gives a raw
//! `r || s` signature and a bare EC point; X.509 wants DER.

use der::asn1::UintRef;
use der::{Decode, Encode};

use super::SigningAlgorithm;

// SubjectPublicKeyInfo headers up to the BIT STRING contents, for
// id-ecPublicKey with the named curve (RFC 5480 §2).
const P256_SPKI_PREFIX: &[u8] = &[
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce,
    0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
const P384_SPKI_PREFIX: &[u8] = &[
    0x30, 0x76, 0x30, 0x10, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x05, 0x2b, 0x81, 0x04, 0x00,
    0x22, 0x03, 0x62, 0x00,
];

// Half the group order n of each curve, rounded down. An ECDSA signature
// (r, s) verifies exactly as (r, n - s) does, so each has a twin; the one
// with s at most n/2 is the canonical, low-S form.
const P256_HALF_ORDER: &[u8] = &[
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xde, 0x73, 0x7d,
    0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
];
const P384_HALF_ORDER: &[u8] = &[
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xe3, 0xb1, 0xa6, 0xc0, 0xfa, 0x1b, 0x96, 0xef, 0xac, 0x0d, 0x06, 0xd9, 0x24, 0x58,
    0x53, 0xbd, 0x76, 0x76, 0x0c, 0xb5, 0x66, 0x62, 0x94, 0xb9,
];

/// DER OIDs of the curves, as PKCS#11 writes them in CKA_EC_PARAMS.
pub const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
pub const P384_PARAMS: &[u8] = &[0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];

impl SigningAlgorithm {
    /// Bytes of an uncompressed point: 0x04 || x || y.
    fn point_len(self) -> usize {
        match self {
            Self::EcdsaP256Sha256 => 65,
            Self::EcdsaP384Sha384 => 97,
        }
    }

    /// The curve's CKA_EC_PARAMS value.
    pub fn ec_params(self) -> &'static [u8] {
        match self {
            Self::EcdsaP256Sha256 => P256_PARAMS,
            Self::EcdsaP384Sha384 => P384_PARAMS,
        }
    }

    pub fn from_ec_params(params: &[u8]) -> Option<Self> {
        [Self::EcdsaP256Sha256, Self::EcdsaP384Sha384].into_iter().find(|a| a.ec_params() == params)
    }

    /// The SubjectPublicKeyInfo of an uncompressed point on this curve.
    pub fn spki_from_point(self, point: &[u8]) -> Option<Vec<u8>> {
        if point.len() != self.point_len() || point.first() != Some(&0x04) {
            return None;
        }
        let prefix = match self {
            Self::EcdsaP256Sha256 => P256_SPKI_PREFIX,
            Self::EcdsaP384Sha384 => P384_SPKI_PREFIX,
        };
        Some([prefix, point].concat())
    }

    /// Whether `s` (big-endian) is above half the curve's order: the
    /// non-canonical twin of a low-S signature.
    pub fn is_high_s(self, s: &[u8]) -> bool {
        let half = match self {
            Self::EcdsaP256Sha256 => P256_HALF_ORDER,
            Self::EcdsaP384Sha384 => P384_HALF_ORDER,
        };
        let zeros = s.iter().take_while(|b| **b == 0).count();
        let s = &s[zeros..];
        s.len() > half.len() || (s.len() == half.len() && s > half)
    }

    /// [`Self::is_high_s`] of a DER `Ecdsa-Sig-Value`; `None` when the bytes
    /// are not one.
    pub fn der_signature_has_high_s(self, der: &[u8]) -> Option<bool> {
        let value = EcdsaSigValue::from_der(der).ok()?;
        Some(self.is_high_s(value.s.as_bytes()))
    }

    /// Which algorithm an ECDSA SubjectPublicKeyInfo belongs to.
    pub fn from_spki(spki: &[u8]) -> Option<Self> {
        [Self::EcdsaP256Sha256, Self::EcdsaP384Sha384].into_iter().find(|a| {
            let prefix = match a {
                Self::EcdsaP256Sha256 => P256_SPKI_PREFIX,
                Self::EcdsaP384Sha384 => P384_SPKI_PREFIX,
            };
            spki.len() == prefix.len() + a.point_len() && spki.starts_with(prefix)
        })
    }
}

/// CKA_EC_POINT is a DER OCTET STRING around the point (PKCS#11 v2.40);
/// some modules return the bare point. Accepts both.
pub fn unwrap_ec_point(algorithm: SigningAlgorithm, value: &[u8]) -> Option<Vec<u8>> {
    if value.len() == algorithm.point_len() {
        return Some(value.to_vec());
    }
    let octets = der::asn1::OctetString::from_der(value).ok()?;
    Some(octets.as_bytes().to_vec())
}

#[derive(der::Sequence)]
struct EcdsaSigValue<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

/// `r || s` (each half the length) to the DER `Ecdsa-Sig-Value` of RFC 5480.
pub fn fixed_to_der(signature: &[u8]) -> Option<Vec<u8>> {
    if signature.is_empty() || !signature.len().is_multiple_of(2) {
        return None;
    }
    let (r, s) = signature.split_at(signature.len() / 2);
    EcdsaSigValue { r: UintRef::new(r).ok()?, s: UintRef::new(s).ok()? }.to_der().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_signatures_become_der_that_verifies() {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("generate");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).expect("key");
        for message in [&b"a"[..], b"tessera", &[0u8; 1000]] {
            let fixed = key.sign(&rng, message).expect("sign");
            let der = fixed_to_der(fixed.as_ref()).expect("der");
            let public = aws_lc_rs::signature::UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.public_key());
            public.verify(message, &der).expect("verifies");
        }
        assert!(fixed_to_der(&[1, 2, 3]).is_none());
    }

    #[test]
    fn high_s_is_above_half_the_order() {
        for alg in [SigningAlgorithm::EcdsaP256Sha256, SigningAlgorithm::EcdsaP384Sha384] {
            let half = match alg {
                SigningAlgorithm::EcdsaP256Sha256 => P256_HALF_ORDER,
                SigningAlgorithm::EcdsaP384Sha384 => P384_HALF_ORDER,
            };
            let mut above = half.to_vec();
            *above.last_mut().expect("not empty") += 1;
            assert!(!alg.is_high_s(half) && !alg.is_high_s(&[1]) && !alg.is_high_s(&[&[0u8; 3][..], half].concat()));
            assert!(alg.is_high_s(&above) && alg.is_high_s(&[&[1u8][..], half].concat()));
            let der = EcdsaSigValue { r: UintRef::new(&[1]).expect("r"), s: UintRef::new(&above).expect("s") }
                .to_der()
                .expect("der");
            assert_eq!(alg.der_signature_has_high_s(&der), Some(true));
            assert_eq!(alg.der_signature_has_high_s(b"not der"), None);
        }
    }

    #[test]
    fn points_and_spkis_round_trip() {
        let point = [&[0x04][..], &[7u8; 64]].concat();
        let spki = SigningAlgorithm::EcdsaP256Sha256.spki_from_point(&point).expect("spki");
        assert_eq!(SigningAlgorithm::from_spki(&spki), Some(SigningAlgorithm::EcdsaP256Sha256));
        let wrapped = [&[0x04, 0x41][..], &point].concat();
        assert_eq!(unwrap_ec_point(SigningAlgorithm::EcdsaP256Sha256, &wrapped), Some(point.clone()));
        assert_eq!(unwrap_ec_point(SigningAlgorithm::EcdsaP256Sha256, &point), Some(point));
        assert!(SigningAlgorithm::EcdsaP384Sha384.spki_from_point(&[4u8; 65]).is_none());
    }
}
