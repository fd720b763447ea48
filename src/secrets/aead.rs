//! AES-256-GCM (aws-lc-rs) with associated data: what binds a sealed value
//! to the row it belongs to. A sealed value is a version octet, a random
//! 96-bit nonce and the ciphertext with its tag. Random nonces are safe
//! here: a data key seals a few thousand values, not the 2^32 after which
//! a repeat becomes likely.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use super::SecretsError;

/// The format of a sealed value; a later format gets the next number.
const VERSION: u8 = 1;
/// Bytes of a key (AES-256).
pub(super) const KEY_LEN: usize = 32;

/// An AES-256-GCM key; its bytes stay inside aws-lc-rs.
pub(super) struct SealingKey(LessSafeKey);

impl SealingKey {
    pub(super) fn new(bytes: &[u8]) -> Result<Self, SecretsError> {
        let key = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| SecretsError::Refused(format!("a sealing key must be {KEY_LEN} bytes")))?;
        Ok(Self(LessSafeKey::new(key)))
    }

    /// Seals `plaintext`, bound to `aad`.
    pub(super) fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SecretsError> {
        let nonce: [u8; NONCE_LEN] = random()?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + AES_256_GCM.tag_len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        self.0
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut body)
            .map_err(|_| SecretsError::Refused("sealing failed".into()))?;
        sealed.extend_from_slice(&body);
        Ok(sealed)
    }

    /// The plaintext of `sealed`, or None when it was not sealed by this
    /// key for this `aad` (another key, another row, or altered).
    pub(super) fn open(&self, aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
        let (&version, rest) = sealed.split_first()?;
        if version != VERSION || rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut body = body.to_vec();
        let plaintext = self.0.open_in_place(nonce, Aad::from(aad), &mut body).ok()?;
        Some(plaintext.to_vec())
    }
}

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(..)")
    }
}

/// `N` bytes from the system's random generator.
pub(super) fn random<const N: usize>() -> Result<[u8; N], SecretsError> {
    let mut bytes = [0u8; N];
    SystemRandom::new().fill(&mut bytes).map_err(|_| SecretsError::Refused("the random generator failed".into()))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_seal_opens_only_with_its_key_and_its_place() {
        let key = SealingKey::new(&[7; KEY_LEN]).unwrap();
        let sealed = key.seal(b"row a", b"the secret").unwrap();
        assert_ne!(key.seal(b"row a", b"the secret").unwrap(), sealed, "every seal has its own nonce");
        assert!(!sealed.windows(10).any(|w| w == b"the secret"));
        assert_eq!(key.open(b"row a", &sealed).unwrap(), b"the secret");
        assert_eq!(key.open(b"row b", &sealed), None, "moved to another row");
        assert_eq!(SealingKey::new(&[8; KEY_LEN]).unwrap().open(b"row a", &sealed), None, "another key");
        let mut altered = sealed.clone();
        *altered.last_mut().unwrap() ^= 1;
        assert_eq!(key.open(b"row a", &altered), None);
        assert_eq!(key.open(b"row a", &sealed[..5]), None);
        assert_eq!(key.open(b"row a", b""), None);
        assert!(SealingKey::new(&[7; 16]).is_err());
    }
}
