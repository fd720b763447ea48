//! Signing through the async [`Signer`] seam. rcgen encodes certificates and
//! CRLs but signs synchronously; a KMS or HSM cannot. So rcgen is handed a
//! [`TbsCapture`] key that records the to-be-signed bytes, and the real
//! signature is made afterwards and placed in a fresh envelope. The same
//! envelope (`SEQUENCE { tbs, algorithm, BIT STRING }`) serves certificates
//! and CRLs.

use std::sync::Mutex;

use der::asn1::{AnyRef, BitStringRef};
use der::{Decode, Encode, Sequence};
use x509_parser::prelude::FromDer;

use crate::keys::{Signer, SignerError, SigningAlgorithm};

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("encoding failed: {0}")]
    Encoding(String),
    #[error(transparent)]
    Signer(#[from] SignerError),
    /// The object failed its lint and was not signed.
    #[error(transparent)]
    Lint(#[from] super::lint::LintFailure),
}

impl From<rcgen::Error> for SigningError {
    fn from(e: rcgen::Error) -> Self {
        Self::Encoding(e.to_string())
    }
}

impl From<der::Error> for SigningError {
    fn from(e: der::Error) -> Self {
        Self::Encoding(e.to_string())
    }
}

/// Stands in for a CA key inside rcgen: it knows the public key and keeps
/// the bytes rcgen asks it to sign.
pub struct TbsCapture {
    algorithm: &'static rcgen::SignatureAlgorithm,
    public_key: Vec<u8>,
    tbs: Mutex<Option<Vec<u8>>>,
}

impl TbsCapture {
    pub fn for_signer(signer: &dyn Signer) -> Result<Self, SigningError> {
        Self::new(signer.algorithm(), signer.public_key_der())
    }

    pub fn new(algorithm: SigningAlgorithm, spki_der: &[u8]) -> Result<Self, SigningError> {
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der)
            .map_err(|e| SigningError::Encoding(format!("signer public key: {e}")))?;
        Ok(Self {
            algorithm: algorithm.rcgen(),
            public_key: spki.subject_public_key.data.to_vec(),
            tbs: Mutex::new(None),
        })
    }

    /// The captured to-be-signed bytes, once rcgen has produced them.
    pub fn take(&self) -> Result<Vec<u8>, SigningError> {
        self.tbs
            .lock()
            .map_err(|_| SigningError::Encoding("capture lock poisoned".into()))?
            .take()
            .ok_or_else(|| SigningError::Encoding("nothing was captured".into()))
    }
}

impl rcgen::PublicKeyData for TbsCapture {
    fn der_bytes(&self) -> &[u8] {
        &self.public_key
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        self.algorithm
    }
}

impl rcgen::SigningKey for TbsCapture {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let mut slot = self.tbs.lock().map_err(|_| rcgen::Error::RemoteKeyError)?;
        *slot = Some(msg.to_vec());
        // Placeholder; the envelope is rebuilt with the real signature.
        Ok(vec![0])
    }
}

#[derive(Sequence)]
struct SignedEnvelope<'a> {
    tbs: AnyRef<'a>,
    algorithm: AnyRef<'a>,
    signature: BitStringRef<'a>,
}

/// Signs `tbs` with `signer` and returns the DER of the signed structure.
pub async fn sign_tbs(signer: &dyn Signer, tbs: &[u8]) -> Result<Vec<u8>, SigningError> {
    let signature = signer.sign(tbs).await?;
    envelope(signer.algorithm(), tbs, &signature)
}

/// Wraps a TBS and its signature as `SEQUENCE { tbs, algorithm, BIT STRING }`.
pub fn envelope(algorithm: SigningAlgorithm, tbs: &[u8], signature: &[u8]) -> Result<Vec<u8>, SigningError> {
    let signed = SignedEnvelope {
        tbs: AnyRef::from_der(tbs)?,
        algorithm: AnyRef::from_der(algorithm.algorithm_identifier_der())?,
        signature: BitStringRef::from_bytes(signature)?,
    };
    Ok(signed.to_der()?)
}
