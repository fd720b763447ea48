//! Anti-replay nonces (RFC 8555 §6.5). A nonce is 12 random octets, its
//! issue time and a MAC under a key every node shares, so handing one out
//! writes nothing; using one inserts it into the used-nonce table, so a
//! replay is refused on every node (DESIGN.md "Scale-out").

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use secrecy::ExposeSecret;

use crate::secrets::{Sealer, SecretsError};
use crate::storage::{AcmeStore, SecretRow};

/// How long a nonce stays usable; used ones are remembered this long.
pub const NONCE_LIFETIME_SECONDS: i64 = 3600;
const SECRET_NAME: &str = "nonce-mac-key";
const RANDOM_LEN: usize = 12;
const MAC_LEN: usize = 16;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NonceError {
    #[error("the JWS has no nonce")]
    Missing,
    #[error("the nonce is not one this server issued")]
    Forged,
    #[error("the nonce has expired")]
    Expired,
    #[error("the nonce was already used")]
    Replayed,
}

/// Issues and checks nonces with the shared MAC key.
pub struct Nonces {
    key: hmac::Key,
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Nonces(..)")
    }
}

/// A nonce whose MAC and age check out; it still has to be consumed.
#[derive(Debug)]
pub struct CheckedNonce {
    pub id: Vec<u8>,
    pub expires_at: i64,
}

impl Nonces {
    /// Loads the MAC key every node shares (stored sealed), making it on
    /// first use.
    pub async fn load(store: &AcmeStore, sealer: &Sealer) -> Result<Self, SecretsError> {
        let mut fresh = [0u8; 32];
        SystemRandom::new()
            .fill(&mut fresh)
            .map_err(|_| SecretsError::Refused("the random generator failed".into()))?;
        let row = SecretRow::SharedSecret(SECRET_NAME.into());
        let stored = store.shared_secret(SECRET_NAME, &sealer.seal(&row, &fresh).await?).await?;
        let secret = sealer.open(&stored).await?;
        Ok(Self { key: hmac::Key::new(hmac::HMAC_SHA256, secret.expose_secret()) })
    }

    pub fn fresh(&self, now: i64) -> String {
        let mut body = [0u8; RANDOM_LEN + 8];
        // A failing system RNG leaves zeros; the timestamp and MAC still make
        // the nonce unique enough to be refused on replay.
        let _ = SystemRandom::new().fill(&mut body[..RANDOM_LEN]);
        body[RANDOM_LEN..].copy_from_slice(&now.to_be_bytes());
        let tag = hmac::sign(&self.key, &body);
        let mut out = body.to_vec();
        out.extend_from_slice(&tag.as_ref()[..MAC_LEN]);
        URL_SAFE_NO_PAD.encode(out)
    }

    pub fn check(&self, text: Option<&str>, now: i64) -> Result<CheckedNonce, NonceError> {
        let text = text.ok_or(NonceError::Missing)?;
        let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| NonceError::Forged)?;
        if raw.len() != RANDOM_LEN + 8 + MAC_LEN {
            return Err(NonceError::Forged);
        }
        let (body, mac) = raw.split_at(RANDOM_LEN + 8);
        let tag = hmac::sign(&self.key, body);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(&tag.as_ref()[..MAC_LEN], mac)) {
            return Err(NonceError::Forged);
        }
        let mut at = [0u8; 8];
        at.copy_from_slice(&body[RANDOM_LEN..]);
        let issued = i64::from_be_bytes(at);
        if now - issued > NONCE_LIFETIME_SECONDS || issued - now > 60 {
            return Err(NonceError::Expired);
        }
        Ok(CheckedNonce { id: body.to_vec(), expires_at: issued + NONCE_LIFETIME_SECONDS })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nonces() -> Nonces {
        Nonces { key: hmac::Key::new(hmac::HMAC_SHA256, b"test key") }
    }

    #[test]
    fn fresh_nonces_check_and_others_do_not() {
        let n = nonces();
        let a = n.fresh(1000);
        assert_ne!(a, n.fresh(1000));
        assert!(n.check(Some(&a), 1001).is_ok());
        assert_eq!(n.check(Some(&a), 1000 + NONCE_LIFETIME_SECONDS + 1).err(), Some(NonceError::Expired));
        let mut forged = URL_SAFE_NO_PAD.decode(&a).expect("b64");
        forged[0] ^= 1;
        assert_eq!(n.check(Some(&URL_SAFE_NO_PAD.encode(forged)), 1001).err(), Some(NonceError::Forged));
        assert_eq!(n.check(None, 1001).err(), Some(NonceError::Missing));
        assert_eq!(n.check(Some("!!"), 1001).err(), Some(NonceError::Forged));
    }
}
