//! A subject key's identity: the SHA-256 of its DER SubjectPublicKeyInfo,
//! as a certificate carries it. A key revoked for keyCompromise (RFC 5280
//! §5.3.1) is blocked by this hash, and the other certificates of a key are
//! found by it. A [`CheckedCsr`](super::CheckedCsr) holds its key in the one
//! encoding Tessera certifies, so one key has one hash.

use crate::storage::{IssuanceLedger, StoreError};

/// Certificates read per step when hashes are filled in for older rows.
const BACKFILL_BATCH: i64 = 500;

#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyHash([u8; 32]);

impl KeyHash {
    /// The hash of a DER SubjectPublicKeyInfo, taken as it is.
    pub fn of_spki_der(spki_der: &[u8]) -> Self {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, spki_der);
        let mut hash = [0u8; 32];
        hash.copy_from_slice(digest.as_ref());
        Self(hash)
    }

    /// The hash of a DER certificate's subject key; None when it does not parse.
    pub fn of_certificate(der: &[u8]) -> Option<Self> {
        let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
        Some(Self::of_spki_der(certificate.tbs_certificate.subject_pki.raw))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for KeyHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyHash({})", hex::encode(self.0))
    }
}

/// Gives every stored certificate that predates key hashes its hash, and
/// blocks the keys of those revoked for keyCompromise (the revocation poll
/// then revokes their other certificates). Run at start: SQL cannot hash a
/// key out of a DER certificate on SQLite, so no migration can. Returns how
/// many certificates got a hash; one whose DER does not parse is logged and
/// left without.
pub async fn backfill_key_hashes(ledger: &IssuanceLedger) -> Result<u64, StoreError> {
    let mut after = Vec::new();
    let mut hashed = 0;
    loop {
        let batch = ledger.certificates_without_key_hash(&after, BACKFILL_BATCH).await?;
        let Some((last, _)) = batch.last() else { break };
        after = last.clone();
        let mut hashes = Vec::with_capacity(batch.len());
        for (serial, der) in &batch {
            match KeyHash::of_certificate(der) {
                Some(hash) => hashes.push((serial.clone(), hash.as_bytes().to_vec())),
                None => {
                    tracing::warn!(serial = %hex::encode(serial), "a stored certificate does not parse: no key hash")
                }
            }
        }
        hashed += ledger.record_key_hashes(&hashes).await?;
    }
    if hashed > 0 {
        tracing::info!(certificates = hashed, "stored certificates given their key hashes");
    }
    Ok(hashed)
}
