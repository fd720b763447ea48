//! `file:` keys: PKCS#8 ECDSA keys on disk, optionally encrypted (PBES2), for
//! development and for high-volume issuing keys where policy allows.
//! Signing uses aws-lc-rs, about three times faster than pure-Rust p256 here
//! (see ARCHITECTURE.md).

use std::io::Write;
use std::path::Path;

use async_trait::async_trait;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair,
};
use secrecy::{ExposeSecret, SecretSlice, SecretString};

use super::{KeyIdentity, KeyUri, Signer, SignerError, SigningAlgorithm};
use crate::private_files::{create_private_dir, create_private_file};

const PEM_PLAIN: &str = "PRIVATE KEY";
const PEM_ENCRYPTED: &str = "ENCRYPTED PRIVATE KEY";

pub struct SoftwareSigner {
    identity: KeyIdentity,
    key: EcdsaKeyPair,
}

impl std::fmt::Debug for SoftwareSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareSigner")
            .field("uri", &self.identity.uri.to_string())
            .field("algorithm", &self.identity.algorithm)
            .finish_non_exhaustive()
    }
}

fn ring_alg(algorithm: SigningAlgorithm) -> &'static EcdsaSigningAlgorithm {
    match algorithm {
        SigningAlgorithm::EcdsaP256Sha256 => &ECDSA_P256_SHA256_ASN1_SIGNING,
        SigningAlgorithm::EcdsaP384Sha384 => &ECDSA_P384_SHA384_ASN1_SIGNING,
    }
}

impl SoftwareSigner {
    /// Reads a key file; an encrypted one needs the configured passphrase.
    pub fn load(uri: KeyUri, path: &Path, passphrase: Option<&SecretString>) -> Result<Self, SignerError> {
        let name = uri.to_string();
        let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                SignerError::KeyNotFound { key: name.clone(), reason: "no such file".into() }
            }
            _ => SignerError::Unavailable { key: name.clone(), reason: e.to_string() },
        })?;
        let block = pem::parse(&text)
            .map_err(|e| SignerError::Rejected { key: name.clone(), reason: format!("not a PEM file: {e}") })?;
        let der = match block.tag() {
            PEM_PLAIN => block.contents().to_vec(),
            PEM_ENCRYPTED => {
                let passphrase = passphrase.ok_or_else(|| SignerError::Rejected {
                    key: name.clone(),
                    reason: "the key is encrypted and no passphrase is configured".into(),
                })?;
                let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(block.contents()).map_err(|e| {
                    SignerError::Rejected { key: name.clone(), reason: format!("bad encrypted PKCS#8: {e}") }
                })?;
                info.decrypt(passphrase.expose_secret().as_bytes())
                    .map_err(|_| SignerError::Rejected {
                        key: name.clone(),
                        reason: "wrong passphrase or corrupt key".into(),
                    })?
                    .as_bytes()
                    .to_vec()
            }
            other => {
                return Err(SignerError::Rejected {
                    key: name,
                    reason: format!("PEM block {other:?} is not a PKCS#8 key"),
                });
            }
        };
        Self::from_pkcs8(uri, &der)
    }

    pub fn from_pkcs8(uri: KeyUri, der: &[u8]) -> Result<Self, SignerError> {
        for algorithm in [SigningAlgorithm::EcdsaP256Sha256, SigningAlgorithm::EcdsaP384Sha384] {
            if let Ok(key) = EcdsaKeyPair::from_pkcs8(ring_alg(algorithm), der) {
                let spki = key
                    .public_key()
                    .as_der()
                    .map_err(|_| SignerError::Rejected {
                        key: uri.to_string(),
                        reason: "cannot encode public key".into(),
                    })?
                    .as_ref()
                    .to_vec();
                return Ok(Self { identity: KeyIdentity { uri, algorithm, spki }, key });
            }
        }
        Err(SignerError::Unsupported {
            key: uri.to_string(),
            reason: "only ECDSA P-256 and P-384 PKCS#8 keys are supported".into(),
        })
    }

    /// Makes a new key and writes it (mode 0600), refusing to overwrite a file.
    pub fn generate(
        uri: KeyUri,
        path: &Path,
        algorithm: SigningAlgorithm,
        passphrase: Option<&SecretString>,
    ) -> Result<Self, SignerError> {
        let name = uri.to_string();
        let io_err = |e: std::io::Error| SignerError::Unavailable { key: name.clone(), reason: e.to_string() };
        let doc = EcdsaKeyPair::generate_pkcs8(ring_alg(algorithm), &SystemRandom::new())
            .map_err(|_| SignerError::Unavailable { key: name.clone(), reason: "key generation failed".into() })?;
        let pem_text = match passphrase {
            None => pem::encode_config(&pem::Pem::new(PEM_PLAIN, doc.as_ref()), lf()),
            Some(pass) => {
                let encrypted = pkcs8::PrivateKeyInfoRef::try_from(doc.as_ref())
                    .and_then(|info| info.encrypt(pass.expose_secret().as_bytes()))
                    .map_err(|e| SignerError::Unavailable {
                        key: name.clone(),
                        reason: format!("encryption failed: {e}"),
                    })?;
                pem::encode_config(&pem::Pem::new(PEM_ENCRYPTED, encrypted.as_bytes()), lf())
            }
        };
        if let Some(parent) = path.parent() {
            create_private_dir(parent).map_err(io_err)?;
        }
        let mut file = create_private_file(path).map_err(io_err)?;
        file.write_all(pem_text.as_bytes()).map_err(io_err)?;
        file.sync_all().map_err(io_err)?;
        Self::from_pkcs8(uri, doc.as_ref())
    }

    /// A new key that lives only in memory: never written, gone at exit.
    pub fn ephemeral(name: &str, algorithm: SigningAlgorithm) -> Result<Self, SignerError> {
        let uri = KeyUri::Memory(name.to_owned());
        let doc = EcdsaKeyPair::generate_pkcs8(ring_alg(algorithm), &SystemRandom::new())
            .map_err(|_| SignerError::Unavailable { key: uri.to_string(), reason: "key generation failed".into() })?;
        Self::from_pkcs8(uri, doc.as_ref())
    }

    /// A new key to be sealed in the database (`sealed:` URIs), and its
    /// PKCS#8 for the sealer; it is written nowhere.
    pub fn generate_sealable(uri: KeyUri, algorithm: SigningAlgorithm) -> Result<(Self, SecretSlice<u8>), SignerError> {
        let doc = EcdsaKeyPair::generate_pkcs8(ring_alg(algorithm), &SystemRandom::new())
            .map_err(|_| SignerError::Unavailable { key: uri.to_string(), reason: "key generation failed".into() })?;
        let pkcs8 = SecretSlice::from(doc.as_ref().to_vec());
        Ok((Self::from_pkcs8(uri, doc.as_ref())?, pkcs8))
    }

    /// Loads the key, or makes it when the file does not exist yet.
    pub fn load_or_generate(
        uri: KeyUri,
        path: &Path,
        algorithm: SigningAlgorithm,
        passphrase: Option<&SecretString>,
    ) -> Result<Self, SignerError> {
        if path.exists() { Self::load(uri, path, passphrase) } else { Self::generate(uri, path, algorithm, passphrase) }
    }

    /// Signs without a runtime: software keys never wait.
    pub fn sign_now(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        self.key.sign(&SystemRandom::new(), message).map(|s| s.as_ref().to_vec()).map_err(|_| {
            SignerError::Unavailable { key: self.identity.uri.to_string(), reason: "signing failed".into() }
        })
    }
}

/// PEM with Unix line endings, like every file Tessera writes.
fn lf() -> pem::EncodeConfig {
    pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF)
}

#[async_trait]
impl Signer for SoftwareSigner {
    fn identity(&self) -> &KeyIdentity {
        &self.identity
    }

    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError> {
        self.sign_now(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encrypted_keys_need_the_right_passphrase() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.pem");
        let uri = KeyUri::File(path.clone());
        let pass = SecretString::from("correct horse");
        let made = SoftwareSigner::generate(uri.clone(), &path, SigningAlgorithm::EcdsaP384Sha384, Some(&pass))
            .expect("generate");
        let loaded = SoftwareSigner::load(uri.clone(), &path, Some(&pass)).expect("load");
        assert_eq!(made.public_key_der(), loaded.public_key_der());
        assert_eq!(loaded.algorithm(), SigningAlgorithm::EcdsaP384Sha384);
        let wrong = SecretString::from("battery staple");
        assert!(matches!(SoftwareSigner::load(uri.clone(), &path, Some(&wrong)), Err(SignerError::Rejected { .. })));
        assert!(matches!(SoftwareSigner::load(uri.clone(), &path, None), Err(SignerError::Rejected { .. })));
        // never overwrite
        assert!(SoftwareSigner::generate(uri, &path, SigningAlgorithm::EcdsaP256Sha256, None).is_err());
    }
}
