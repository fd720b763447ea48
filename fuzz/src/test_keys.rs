//! The keys the structure-aware targets sign with, made once per process,
//! and the JWKs that name them.

use std::sync::OnceLock;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// The HMAC key of the EAB bindings the targets build and check.
pub const EAB_SECRET: &[u8] = b"tessera-fuzz external account key";

/// An ACME account key: ES256 (randomised signatures) or EdDSA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, arbitrary::Arbitrary)]
pub enum AccountKey {
    Es256,
    EdDsa,
}

impl AccountKey {
    pub fn alg(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::EdDsa => "EdDSA",
        }
    }

    pub fn jwk(self) -> Value {
        match self {
            Self::Es256 => {
                let point = es256().public_key().as_ref();
                json!({"crv": "P-256", "kty": "EC", "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                       "y": URL_SAFE_NO_PAD.encode(&point[33..])})
            }
            Self::EdDsa => {
                json!({"crv": "Ed25519", "kty": "OKP", "x": URL_SAFE_NO_PAD.encode(ed25519().public_key().as_ref())})
            }
        }
    }

    pub fn sign(self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::Es256 => es256().sign(&SystemRandom::new(), message).expect("ECDSA signing").as_ref().to_vec(),
            Self::EdDsa => ed25519().sign(message).as_ref().to_vec(),
        }
    }
}

fn es256() -> &'static EcdsaKeyPair {
    static KEY: OnceLock<EcdsaKeyPair> = OnceLock::new();
    KEY.get_or_init(|| {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .expect("P-256 key generation");
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).expect("a P-256 key")
    })
}

fn ed25519() -> &'static Ed25519KeyPair {
    static KEY: OnceLock<Ed25519KeyPair> = OnceLock::new();
    KEY.get_or_init(|| Ed25519KeyPair::generate().expect("Ed25519 key generation"))
}

/// The subject key of the CSRs the targets build (Ed25519: quick to sign).
pub fn csr_key() -> &'static rcgen::KeyPair {
    static KEY: OnceLock<rcgen::KeyPair> = OnceLock::new();
    KEY.get_or_init(|| rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("Ed25519 key generation"))
}

/// HMAC-SHA-256/384/512 of `message` under [`EAB_SECRET`].
pub fn mac(alg: &str, message: &[u8]) -> Vec<u8> {
    let algorithm = match alg {
        "HS384" => aws_lc_rs::hmac::HMAC_SHA384,
        "HS512" => aws_lc_rs::hmac::HMAC_SHA512,
        _ => aws_lc_rs::hmac::HMAC_SHA256,
    };
    aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(algorithm, EAB_SECRET), message).as_ref().to_vec()
}

/// A flattened JWS (RFC 7515 §7.2.2) over `header` and `payload`, signed by `sign`.
pub fn flattened(header: &Value, payload: &[u8], sign: impl FnOnce(&[u8]) -> Vec<u8>) -> Value {
    let protected = URL_SAFE_NO_PAD.encode(header.to_string());
    let payload = URL_SAFE_NO_PAD.encode(payload);
    let signature = sign(format!("{protected}.{payload}").as_bytes());
    json!({"protected": protected, "payload": payload, "signature": URL_SAFE_NO_PAD.encode(signature)})
}
