//! API tokens: 256 random bits, shown once, stored only as a SHA-256 hash.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::storage::{Db, NewAuditEvent, StoreError, TokenRecord};

/// Prefix that makes a leaked token easy to recognise in a scanner.
const PREFIX: &str = "tsr_";

/// What a token may do. `admin` ⊇ `operator` ⊇ `auditor`; `issuer` may only sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Admin,
    Operator,
    Issuer,
    Auditor,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Operator => "operator",
            Self::Issuer => "issuer",
            Self::Auditor => "auditor",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Admin, Self::Operator, Self::Issuer, Self::Auditor].into_iter().find(|s| s.as_str() == text)
    }
}

/// A new token's secret text and the hash to store.
pub struct NewToken {
    pub secret: SecretString,
    pub hash: Vec<u8>,
}

impl NewToken {
    pub fn generate() -> Result<Self, aws_lc_rs::error::Unspecified> {
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes)?;
        let secret = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
        let hash = hash_token(&secret);
        Ok(Self { secret: SecretString::from(secret), hash })
    }
}

impl std::fmt::Debug for NewToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewToken(..)")
    }
}

/// The stored form of a presented token.
pub fn hash_token(token: &str) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref().to_vec()
}

/// Creates a token with its audit event; the secret is returned once.
pub async fn create_token(
    db: &Db,
    name: &str,
    scope: Scope,
    actor: &str,
    at: i64,
) -> Result<(TokenRecord, SecretString), StoreError> {
    let token = NewToken::generate().map_err(|_| StoreError::Other("the random generator failed".into()))?;
    let audit = NewAuditEvent {
        at,
        actor: actor.to_owned(),
        action: "token.create",
        target: name.to_owned(),
        detail: serde_json::json!({ "scope": scope.as_str() }),
    };
    let record = db.insert_token(name, scope.as_str(), &token.hash, at, &audit).await?;
    Ok((record, token.secret))
}
