//! JSON Web Signature as ACME uses it (RFC 8555 §6.2, RFC 7515, RFC 7638):
//! the flattened serialization, the four signature algorithms Tessera
//! accepts, JWK parsing and thumbprints, and HMAC for External Account
//! Binding. Pure: no HTTP, no storage; every check the protocol needs of a
//! request's bytes, and nothing else.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
    RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::issuance::{PublicKeyNumbers, RSA_EXPONENT};
use crate::keys::SigningAlgorithm;

/// Signature algorithms accepted on ACME requests, as `algorithms` lists them.
pub const ACCEPTED_ALGORITHMS: &[&str] = &["RS256", "ES256", "ES384", "EdDSA"];

const MIN_RSA_BITS: usize = 2048;
const MAX_RSA_BITS: usize = 8192;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwsError {
    #[error("{0}")]
    Malformed(String),
    #[error("{0}")]
    BadSignatureAlgorithm(String),
    #[error("the JWS signature does not verify")]
    BadSignature,
    #[error("the ECDSA signature is not in low-S form (S above half the curve order); this directory requires it")]
    HighS,
    #[error("{0}")]
    BadPublicKey(String),
}

fn malformed(text: impl Into<String>) -> JwsError {
    JwsError::Malformed(text.into())
}

/// The signature algorithms of RFC 8555 §6.2 that Tessera accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Rs256,
    Es256,
    Es384,
    EdDsa,
}

impl Algorithm {
    fn parse(name: &str) -> Result<Self, JwsError> {
        match name {
            "RS256" => Ok(Self::Rs256),
            "ES256" => Ok(Self::Es256),
            "ES384" => Ok(Self::Es384),
            "EdDSA" => Ok(Self::EdDsa),
            other => Err(JwsError::BadSignatureAlgorithm(format!("the JWS algorithm {other:?} is not accepted"))),
        }
    }
}

/// HMAC algorithms for the EAB binding (RFC 8555 §7.3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacAlgorithm {
    Hs256,
    Hs384,
    Hs512,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curve {
    P256,
    P384,
}

/// A public key from a `jwk` header (RFC 7517), checked for shape and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Jwk {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    Ec { curve: Curve, x: Vec<u8>, y: Vec<u8> },
    Ed25519 { x: Vec<u8> },
}

impl Jwk {
    /// A key as an account row stores it (its JSON text).
    pub fn from_stored(text: &str) -> Result<Self, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        Self::from_json(&value).map_err(|e| e.to_string())
    }

    pub fn from_json(value: &Value) -> Result<Self, JwsError> {
        let member = |name: &str| -> Result<Vec<u8>, JwsError> {
            let text = value
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| JwsError::BadPublicKey(format!("the JWK has no {name:?} member")))?;
            URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|_| JwsError::BadPublicKey(format!("JWK member {name:?} is not base64url")))
        };
        let kty = value
            .get("kty")
            .and_then(Value::as_str)
            .ok_or_else(|| JwsError::BadPublicKey("the JWK has no kty".into()))?;
        let key = match kty {
            "RSA" => {
                let n = strip_leading_zeros(member("n")?);
                let bits = bit_length(&n);
                if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                    return Err(JwsError::BadPublicKey(format!(
                        "RSA keys must have {MIN_RSA_BITS} to {MAX_RSA_BITS} bits, not {bits}"
                    )));
                }
                let e = strip_leading_zeros(member("e")?);
                if e != RSA_EXPONENT {
                    return Err(JwsError::BadPublicKey(format!(
                        "RSA public exponent {}; only 65537 (AQAB) is accepted",
                        hex::encode(&e)
                    )));
                }
                Self::Rsa { n, e }
            }
            "EC" => {
                let (curve, size) = match value.get("crv").and_then(Value::as_str) {
                    Some("P-256") => (Curve::P256, 32),
                    Some("P-384") => (Curve::P384, 48),
                    other => return Err(JwsError::BadPublicKey(format!("EC curve {other:?} is not accepted"))),
                };
                let (x, y) = (member("x")?, member("y")?);
                if x.len() != size || y.len() != size {
                    return Err(JwsError::BadPublicKey("EC coordinates have the wrong length".into()));
                }
                let key = Self::Ec { curve, x, y };
                ParsedPublicKey::new(key.verification_algorithm(), key.public_bytes())
                    .map_err(|_| JwsError::BadPublicKey("the EC point is not on the curve".into()))?;
                key
            }
            "OKP" => {
                if value.get("crv").and_then(Value::as_str) != Some("Ed25519") {
                    return Err(JwsError::BadPublicKey("only the Ed25519 OKP curve is accepted".into()));
                }
                let x = member("x")?;
                if x.len() != 32 {
                    return Err(JwsError::BadPublicKey("Ed25519 keys are 32 octets".into()));
                }
                Self::Ed25519 { x }
            }
            other => return Err(JwsError::BadPublicKey(format!("key type {other:?} is not accepted"))),
        };
        if value.get("d").is_some() {
            return Err(JwsError::BadPublicKey("the JWK contains a private key".into()));
        }
        Ok(key)
    }

    /// The key with exactly its required members (RFC 7638 §3.2), which is
    /// also the form Tessera stores and shows.
    pub fn to_json(&self) -> Value {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        match self {
            Self::Rsa { n, e } => json!({"e": b64(e), "kty": "RSA", "n": b64(n)}),
            Self::Ec { curve, x, y } => {
                let crv = match curve {
                    Curve::P256 => "P-256",
                    Curve::P384 => "P-384",
                };
                json!({"crv": crv, "kty": "EC", "x": b64(x), "y": b64(y)})
            }
            Self::Ed25519 { x } => json!({"crv": "Ed25519", "kty": "OKP", "x": b64(x)}),
        }
    }

    /// The key by its numbers, to compare with a CSR's key.
    pub fn numbers(&self) -> PublicKeyNumbers {
        match self {
            Self::Rsa { n, e } => PublicKeyNumbers::Rsa { modulus: n.clone(), exponent: e.clone() },
            Self::Ec { .. } => PublicKeyNumbers::Ec(self.public_bytes()),
            Self::Ed25519 { x } => PublicKeyNumbers::Ed25519(x.clone()),
        }
    }

    /// RFC 7638 thumbprint: SHA-256 over the required members in
    /// lexicographic order, base64url. serde_json's map keeps keys sorted.
    pub fn thumbprint(&self) -> String {
        let canonical = self.to_json().to_string();
        URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()))
    }

    /// Verifies `signature` over `message` by the JOSE algorithm named
    /// `alg`, which must be one Tessera accepts and suit the key: the check
    /// a compact JWS such as a JWT (RFC 7519) needs.
    pub fn verify_named(&self, alg: &str, message: &[u8], signature: &[u8]) -> Result<(), JwsError> {
        let alg = Algorithm::parse(alg)?;
        if !self.algorithm_matches(alg) {
            return Err(JwsError::BadSignatureAlgorithm("the algorithm does not suit the key".into()));
        }
        self.verify(message, signature)
    }

    fn algorithm_matches(&self, alg: Algorithm) -> bool {
        matches!(
            (self, alg),
            (Self::Rsa { .. }, Algorithm::Rs256)
                | (Self::Ec { curve: Curve::P256, .. }, Algorithm::Es256)
                | (Self::Ec { curve: Curve::P384, .. }, Algorithm::Es384)
                | (Self::Ed25519 { .. }, Algorithm::EdDsa)
        )
    }

    fn verification_algorithm(&self) -> &'static dyn aws_lc_rs::signature::VerificationAlgorithm {
        match self {
            Self::Rsa { .. } => &RSA_PKCS1_2048_8192_SHA256,
            Self::Ec { curve: Curve::P256, .. } => &ECDSA_P256_SHA256_FIXED,
            Self::Ec { curve: Curve::P384, .. } => &ECDSA_P384_SHA384_FIXED,
            Self::Ed25519 { .. } => &ED25519,
        }
    }

    /// The uncompressed EC point or raw Ed25519 key.
    fn public_bytes(&self) -> Vec<u8> {
        match self {
            Self::Rsa { .. } => Vec::new(),
            Self::Ec { x, y, .. } => [&[4u8][..], x, y].concat(),
            Self::Ed25519 { x } => x.clone(),
        }
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), JwsError> {
        let outcome = match self {
            Self::Rsa { n, e } => RsaPublicKeyComponents { n: n.as_slice(), e: e.as_slice() }.verify(
                &RSA_PKCS1_2048_8192_SHA256,
                message,
                signature,
            ),
            _ => ParsedPublicKey::new(self.verification_algorithm(), self.public_bytes())
                .map_err(|_| aws_lc_rs::error::Unspecified)
                .and_then(|key| key.verify_sig(message, signature)),
        };
        outcome.map_err(|_| JwsError::BadSignature)
    }
}

fn strip_leading_zeros(mut bytes: Vec<u8>) -> Vec<u8> {
    let zeros = bytes.iter().take_while(|b| **b == 0).count();
    bytes.drain(..zeros);
    bytes
}

fn bit_length(unsigned_be: &[u8]) -> usize {
    match unsigned_be.first() {
        None => 0,
        Some(first) => (unsigned_be.len() - 1) * 8 + (8 - first.leading_zeros() as usize),
    }
}

/// How the request names its key: embedded (`jwk`) or by account URL (`kid`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRef {
    Jwk(Jwk),
    Kid(String),
}

/// The protected header, checked: exactly one of `jwk` and `kid`.
#[derive(Debug, Clone)]
pub struct Header {
    pub alg: String,
    pub nonce: Option<String>,
    pub url: String,
    pub key: KeyRef,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Flattened {
    protected: String,
    payload: String,
    signature: String,
}

#[derive(Deserialize)]
struct RawHeader {
    alg: Option<String>,
    nonce: Option<String>,
    url: Option<String>,
    jwk: Option<Value>,
    kid: Option<String>,
    /// Extensions the recipient must understand (RFC 7515 §4.1.11). ACME
    /// defines none and Tessera implements none, so any `crit` is refused.
    crit: Option<Value>,
}

/// A parsed, not yet verified JWS in the flattened JSON serialization.
#[derive(Debug, Clone)]
pub struct Jws {
    pub header: Header,
    protected_b64: String,
    payload_b64: String,
    signature: Vec<u8>,
    payload: Vec<u8>,
}

impl Jws {
    /// Parses the flattened serialization (RFC 7515 §7.2.2). The general
    /// serialization, unprotected headers and detached payloads are refused.
    pub fn parse(body: &[u8]) -> Result<Self, JwsError> {
        let flat: Flattened =
            serde_json::from_slice(body).map_err(|e| malformed(format!("the body is not a flattened JWS: {e}")))?;
        Self::from_parts(flat)
    }

    /// Parses a JWS that arrived as a JSON value inside another payload
    /// (the inner JWS of EAB and key change).
    pub fn from_value(value: &Value) -> Result<Self, JwsError> {
        let flat: Flattened = serde_json::from_value(value.clone())
            .map_err(|e| malformed(format!("the inner JWS is not a flattened JWS: {e}")))?;
        Self::from_parts(flat)
    }

    fn from_parts(flat: Flattened) -> Result<Self, JwsError> {
        let decode = |what: &str, text: &str| {
            URL_SAFE_NO_PAD.decode(text).map_err(|_| malformed(format!("the JWS {what} is not base64url")))
        };
        let protected = decode("protected header", &flat.protected)?;
        let payload = decode("payload", &flat.payload)?;
        let signature = decode("signature", &flat.signature)?;
        let raw: RawHeader = serde_json::from_slice(&protected)
            .map_err(|e| malformed(format!("the JWS protected header is not a JSON object: {e}")))?;
        if raw.crit.is_some() {
            return Err(malformed("the JWS marks header parameters critical (crit); Tessera understands no extension"));
        }
        let alg = raw.alg.ok_or_else(|| malformed("the JWS protected header has no alg"))?;
        let url = raw.url.ok_or_else(|| malformed("the JWS protected header has no url"))?;
        let key = match (raw.jwk, raw.kid) {
            (Some(jwk), None) => KeyRef::Jwk(Jwk::from_json(&jwk)?),
            (None, Some(kid)) => KeyRef::Kid(kid),
            (Some(_), Some(_)) => return Err(malformed("the JWS has both jwk and kid; exactly one is allowed")),
            (None, None) => return Err(malformed("the JWS has neither jwk nor kid")),
        };
        Ok(Self {
            header: Header { alg, nonce: raw.nonce, url, key },
            protected_b64: flat.protected,
            payload_b64: flat.payload,
            signature,
            payload,
        })
    }

    /// The signature algorithm, if it is one Tessera accepts.
    pub fn algorithm(&self) -> Result<Algorithm, JwsError> {
        Algorithm::parse(&self.header.alg)
    }

    /// Verifies the signature with `key`, which must suit the algorithm.
    pub fn verify(&self, key: &Jwk) -> Result<(), JwsError> {
        let alg = self.algorithm()?;
        if !key.algorithm_matches(alg) {
            return Err(JwsError::BadSignatureAlgorithm(format!(
                "the JWS algorithm {} does not suit the key",
                self.header.alg
            )));
        }
        key.verify(&self.signing_input(), &self.signature)
    }

    /// For an ES256 or ES384 signature, whether its S is above half the
    /// curve's order (valid, but the twin of the canonical low-S
    /// signature); `None` for other algorithms.
    pub fn high_s(&self) -> Option<bool> {
        let curve = match Algorithm::parse(&self.header.alg) {
            Ok(Algorithm::Es256) => SigningAlgorithm::EcdsaP256Sha256,
            Ok(Algorithm::Es384) => SigningAlgorithm::EcdsaP384Sha384,
            _ => return None,
        };
        let (_, s) = self.signature.split_at(self.signature.len() / 2);
        Some(curve.is_high_s(s))
    }

    /// Verifies an HMAC (EAB) with `secret`; returns the algorithm used.
    pub fn verify_mac(&self, secret: &[u8]) -> Result<MacAlgorithm, JwsError> {
        let (mac, algorithm) = match self.header.alg.as_str() {
            "HS256" => (MacAlgorithm::Hs256, aws_lc_rs::hmac::HMAC_SHA256),
            "HS384" => (MacAlgorithm::Hs384, aws_lc_rs::hmac::HMAC_SHA384),
            "HS512" => (MacAlgorithm::Hs512, aws_lc_rs::hmac::HMAC_SHA512),
            other => {
                return Err(JwsError::BadSignatureAlgorithm(format!(
                    "the EAB MAC algorithm {other:?} is not HS256, HS384 or HS512"
                )));
            }
        };
        let key = aws_lc_rs::hmac::Key::new(algorithm, secret);
        aws_lc_rs::hmac::verify(&key, &self.signing_input(), &self.signature).map_err(|_| JwsError::BadSignature)?;
        Ok(mac)
    }

    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// POST-as-GET (§6.3) has an empty payload.
    pub fn is_post_as_get(&self) -> bool {
        self.payload_b64.is_empty()
    }

    /// The payload as JSON; an empty payload is refused.
    pub fn payload_json<T: serde::de::DeserializeOwned>(&self) -> Result<T, JwsError> {
        if self.payload.is_empty() {
            return Err(malformed("the request needs a JSON payload"));
        }
        serde_json::from_slice(&self.payload).map_err(|e| malformed(format!("the JWS payload is not valid: {e}")))
    }

    fn signing_input(&self) -> Vec<u8> {
        format!("{}.{}", self.protected_b64, self.payload_b64).into_bytes()
    }
}

/// The key authorization of a challenge token (RFC 8555 §8.1).
pub fn key_authorization(token: &str, account_key: &Jwk) -> String {
    format!("{token}.{}", account_key.thumbprint())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    fn es256_key() -> (EcdsaKeyPair, Jwk) {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).expect("key");
        let point = key.public_key().as_ref().to_vec();
        let jwk = Jwk::Ec { curve: Curve::P256, x: point[1..33].to_vec(), y: point[33..].to_vec() };
        (key, jwk)
    }

    fn sign(key: &EcdsaKeyPair, header: Value, payload: &[u8]) -> Vec<u8> {
        let protected = URL_SAFE_NO_PAD.encode(header.to_string());
        let payload = URL_SAFE_NO_PAD.encode(payload);
        let sig = key.sign(&SystemRandom::new(), format!("{protected}.{payload}").as_bytes()).expect("sign");
        json!({"protected": protected, "payload": payload, "signature": URL_SAFE_NO_PAD.encode(sig)})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn a_signed_request_verifies_and_a_tampered_one_does_not() {
        let (key, jwk) = es256_key();
        let body = sign(&key, json!({"alg": "ES256", "jwk": jwk.to_json(), "url": "u", "nonce": "n"}), b"{}");
        let jws = Jws::parse(&body).expect("parses");
        assert_eq!(jws.header.key, KeyRef::Jwk(jwk.clone()));
        assert_eq!(jws.verify(&jwk), Ok(()));
        let mut tampered: Value = serde_json::from_slice(&body).expect("json");
        tampered["payload"] = json!(URL_SAFE_NO_PAD.encode(b"{\"a\":1}"));
        let jws = Jws::parse(tampered.to_string().as_bytes()).expect("parses");
        assert_eq!(jws.verify(&jwk), Err(JwsError::BadSignature));
    }

    #[test]
    fn unaccepted_algorithms_and_mixed_keys_are_refused() {
        let (key, jwk) = es256_key();
        for alg in ["none", "HS256", "RS512", "ES512"] {
            let body = sign(&key, json!({"alg": alg, "jwk": jwk.to_json(), "url": "u"}), b"");
            let jws = Jws::parse(&body).expect("parses");
            assert!(matches!(jws.verify(&jwk), Err(JwsError::BadSignatureAlgorithm(_))), "{alg}");
        }
        let both = sign(&key, json!({"alg": "ES256", "jwk": jwk.to_json(), "kid": "k", "url": "u"}), b"");
        assert!(matches!(Jws::parse(&both), Err(JwsError::Malformed(_))));
    }

    #[test]
    fn duplicate_members_are_refused() {
        let (key, jwk) = es256_key();
        let jwk = jwk.to_json();
        let protected = format!(r#"{{"alg":"ES256","jwk":{jwk},"url":"u","nonce":"n","url":"v"}}"#);
        let protected = URL_SAFE_NO_PAD.encode(protected);
        let payload = URL_SAFE_NO_PAD.encode("{}");
        let sig = key.sign(&SystemRandom::new(), format!("{protected}.{payload}").as_bytes()).expect("sign");
        let signature = URL_SAFE_NO_PAD.encode(sig);
        let body = format!(r#"{{"protected":"{protected}","payload":"{payload}","signature":"{signature}"}}"#);
        assert!(matches!(Jws::parse(body.as_bytes()), Err(JwsError::Malformed(_))), "a header with two urls");
        let twice =
            format!(r#"{{"protected":"{protected}","payload":"{payload}","payload":"","signature":"{signature}"}}"#);
        assert!(matches!(Jws::parse(twice.as_bytes()), Err(JwsError::Malformed(_))), "a JWS with two payloads");
    }

    #[test]
    fn any_critical_header_is_refused() {
        let (key, jwk) = es256_key();
        for crit in [json!(["b64"]), json!(["exp"]), json!([]), json!("b64")] {
            let header =
                json!({"alg": "ES256", "jwk": jwk.to_json(), "url": "u", "nonce": "n", "crit": crit, "b64": true});
            let body = sign(&key, header, b"{}");
            assert!(matches!(Jws::parse(&body), Err(JwsError::Malformed(m)) if m.contains("crit")), "{crit}");
        }
    }

    #[test]
    fn thumbprint_matches_rfc_7638_example() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let jwk = Jwk::from_json(&json!({"kty": "RSA", "n": n, "e": "AQAB", "alg": "RS256", "kid": "2011-04-29"}))
            .expect("valid key");
        assert_eq!(jwk.thumbprint(), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn hmac_binding_verifies_with_the_right_key_only() {
        let protected = URL_SAFE_NO_PAD.encode(json!({"alg": "HS256", "kid": "k", "url": "u"}).to_string());
        let payload = URL_SAFE_NO_PAD.encode("{}");
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"secret");
        let tag = aws_lc_rs::hmac::sign(&key, format!("{protected}.{payload}").as_bytes());
        let jws = Jws::from_value(
            &json!({"protected": protected, "payload": payload, "signature": URL_SAFE_NO_PAD.encode(tag)}),
        )
        .expect("parses");
        assert_eq!(jws.verify_mac(b"secret"), Ok(MacAlgorithm::Hs256));
        assert_eq!(jws.verify_mac(b"other"), Err(JwsError::BadSignature));
    }
}
