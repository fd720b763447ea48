//! The signature algorithms Tessera's own keys sign with.

use std::fmt;

/// ECDSA on the NIST curves: what every HSM, KMS and relying party supports.
/// The config names them as [`SigningAlgorithm::as_str`] does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SigningAlgorithm {
    #[serde(rename = "ecdsa-p256-sha256")]
    EcdsaP256Sha256,
    #[serde(rename = "ecdsa-p384-sha384")]
    EcdsaP384Sha384,
}

// AlgorithmIdentifier SEQUENCE { OID ecdsa-with-SHA256 } (RFC 5758 §3.2: parameters absent).
const ECDSA_SHA256_ID: &[u8] = &[0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const ECDSA_SHA384_ID: &[u8] = &[0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];

impl SigningAlgorithm {
    /// The DER AlgorithmIdentifier written next to a signature.
    pub fn algorithm_identifier_der(self) -> &'static [u8] {
        match self {
            Self::EcdsaP256Sha256 => ECDSA_SHA256_ID,
            Self::EcdsaP384Sha384 => ECDSA_SHA384_ID,
        }
    }

    /// The same algorithm in rcgen's terms, for certificate and CRL encoding.
    pub fn rcgen(self) -> &'static rcgen::SignatureAlgorithm {
        match self {
            Self::EcdsaP256Sha256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            Self::EcdsaP384Sha384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        }
    }

    /// The digest a remote custodian (HSM, KMS) signs for this algorithm.
    pub fn digest(self, message: &[u8]) -> Vec<u8> {
        use aws_lc_rs::digest;
        let alg = match self {
            Self::EcdsaP256Sha256 => &digest::SHA256,
            Self::EcdsaP384Sha384 => &digest::SHA384,
        };
        digest::digest(alg, message).as_ref().to_vec()
    }

    /// Stable name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EcdsaP256Sha256 => "ecdsa-p256-sha256",
            Self::EcdsaP384Sha384 => "ecdsa-p384-sha384",
        }
    }
}

impl fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
