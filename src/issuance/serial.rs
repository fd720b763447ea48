//! Certificate serial numbers (RFC 5280 §4.1.2.2; CA/B BR §7.1: at least 64
//! bits from a CSPRNG). Ours carry 127 random bits in exactly 16 octets.

use std::fmt;
use std::str::FromStr;

use rand::TryRngCore;

/// A positive serial of at most 20 octets, as its DER INTEGER content octets.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Serial(Vec<u8>);

const LEN: usize = 16;

impl Serial {
    /// A fresh random serial. The first octet is in 0x01..=0x7f so the value is
    /// positive and its encoding is always exactly 16 octets.
    pub fn random() -> Self {
        let mut bytes = [0u8; LEN];
        rand::rngs::OsRng.try_fill_bytes(&mut bytes).unwrap_or_else(|_| fallback_fill(&mut bytes));
        bytes[0] = (bytes[0] & 0x7f).max(1);
        Self(bytes.to_vec())
    }

    /// A serial read from a certificate or from storage: positive, minimal, at most 20 octets.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let valid = !bytes.is_empty()
            && bytes.len() <= 20
            && bytes[0] & 0x80 == 0
            && !(bytes.len() > 1 && bytes[0] == 0 && bytes[1] & 0x80 == 0)
            && bytes.iter().any(|b| *b != 0);
        valid.then(|| Self(bytes.to_vec()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(&self.0)
    }

    /// The CRL shard (of `shards`) this serial belongs to: its random bits
    /// spread certificates evenly, and the answer never changes.
    pub fn shard(&self, shards: u32) -> u32 {
        let tail: [u8; 4] = std::array::from_fn(|i| self.0.iter().rev().nth(i).copied().unwrap_or(0));
        u32::from_le_bytes(tail) % shards.max(1)
    }
}

// OsRng failing means the kernel has no entropy source; thread_rng is seeded
// from the same place, so this only exists to keep the signature infallible.
fn fallback_fill(bytes: &mut [u8]) {
    use rand::RngCore;
    rand::rng().fill_bytes(bytes);
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Serial({})", self.to_hex())
    }
}

/// Serials in URLs are lowercase hex; uppercase and colons (as `openssl x509
/// -serial` prints them) are accepted too.
impl FromStr for Serial {
    type Err = InvalidSerial;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let cleaned: String = s.chars().filter(|c| *c != ':').collect::<String>().to_ascii_lowercase();
        let cleaned = if cleaned.len() % 2 == 1 { format!("0{cleaned}") } else { cleaned };
        let bytes = hex::decode(&cleaned).map_err(|_| InvalidSerial)?;
        Self::from_bytes(&bytes).ok_or(InvalidSerial)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a certificate serial (expected positive hex, at most 20 octets)")]
pub struct InvalidSerial;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn random_serials_are_positive_sixteen_octets_and_distinct() {
        let a = Serial::random();
        let b = Serial::random();
        assert_ne!(a, b);
        for s in [a, b] {
            assert_eq!(s.as_bytes().len(), 16);
            assert!(s.as_bytes()[0] >= 1 && s.as_bytes()[0] <= 0x7f);
            assert_eq!(Serial::from_bytes(s.as_bytes()), Some(s.clone()));
            assert_eq!(s.to_hex().parse::<Serial>(), Ok(s));
        }
    }

    #[test]
    fn rejects_negative_oversized_and_non_minimal() {
        assert!(Serial::from_bytes(&[0x80, 1]).is_none());
        assert!(Serial::from_bytes(&[1; 21]).is_none());
        assert!(Serial::from_bytes(&[0, 1]).is_none());
        assert!(Serial::from_bytes(&[0]).is_none());
        assert!(Serial::from_bytes(&[0, 0x80]).is_some());
        assert!("zz".parse::<Serial>().is_err());
        assert_eq!("0A:0b".parse::<Serial>().map(|s| s.to_hex()), Ok("0a0b".into()));
    }

    proptest! {
        #[test]
        fn hex_round_trips(bytes in proptest::collection::vec(any::<u8>(), 1..=20)) {
            if let Some(s) = Serial::from_bytes(&bytes) {
                prop_assert_eq!(s.to_hex().parse::<Serial>(), Ok(s));
            }
        }
    }
}
