//! The one signing seam.

use async_trait::async_trait;

use super::{KeyUri, SigningAlgorithm};

/// What anyone may know of a signer's key. Every custodian keeps one, so
/// that the accessors of [`Signer`] are written once, here.
#[derive(Debug, Clone)]
pub struct KeyIdentity {
    /// The key's name, for messages (never carries a secret).
    pub uri: KeyUri,
    pub algorithm: SigningAlgorithm,
    /// The DER SubjectPublicKeyInfo of the key.
    pub spki: Vec<u8>,
}

/// A key that can sign, wherever it lives. Implementations hash the message
/// themselves (an HSM or KMS is given only the digest) and return a DER
/// signature value.
#[async_trait]
pub trait Signer: Send + Sync + std::fmt::Debug {
    fn identity(&self) -> &KeyIdentity;

    /// The key's name, for messages (never carries a secret).
    fn key_uri(&self) -> &KeyUri {
        &self.identity().uri
    }

    fn algorithm(&self) -> SigningAlgorithm {
        self.identity().algorithm
    }

    /// The DER SubjectPublicKeyInfo of the key.
    fn public_key_der(&self) -> &[u8] {
        &self.identity().spki
    }

    async fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignerError>;
}

/// Why a signature could not be made. The key URI is always named; a PIN or
/// passphrase never is.
#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error("key {key}: custodian unavailable: {reason}")]
    Unavailable { key: String, reason: String },
    #[error("key {key}: custodian is throttling requests")]
    Throttled { key: String },
    #[error("key {key}: not found: {reason}")]
    KeyNotFound { key: String, reason: String },
    #[error("key {key}: refused: {reason}")]
    Rejected { key: String, reason: String },
    #[error("key {key}: unsupported: {reason}")]
    Unsupported { key: String, reason: String },
}

impl SignerError {
    /// Whether trying again later may succeed (the custodian is down or busy).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Throttled { .. })
    }
}
