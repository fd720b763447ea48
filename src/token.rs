//! API tokens: 256 random bits, shown once, stored only as a SHA-256 hash.
//! Making and hashing tokens lives here, beneath both the admin API that
//! checks them and the setup that makes the first one.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::clock::{from_unix, rfc3339};
use crate::storage::{AdminStore, NewAuditEvent, NewTokenRecord, StoreError, TokenError, TokenRecord};

/// Prefix that makes a leaked token easy to recognise in a scanner.
const PREFIX: &str = "tsr_";

/// What a token may do. `admin` ⊇ `operator` ⊇ `auditor`; `issuer` may only
/// sign. Issuer and operator tokens act only under the policies they are
/// bound to ([`Bindings`]); admin tokens act under every policy.
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

    /// Scopes that issue, and so carry the policies they may use.
    pub fn is_bound(self) -> bool {
        matches!(self, Self::Operator | Self::Issuer)
    }
}

/// Most policies one token may be bound to.
const MAX_BINDINGS: usize = 64;

/// The policies a token of some scope is bound to: at least one for a
/// scope that issues, none for the others (an admin token uses every
/// policy, an auditor token none). Sorted, without repeats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bindings(Vec<String>);

impl Bindings {
    /// Checks the policies a request names against the token's scope.
    pub fn for_scope(scope: Scope, policies: Option<Vec<String>>) -> Result<Self, BindingError> {
        let mut names = match (scope.is_bound(), policies) {
            (true, Some(names)) if !names.is_empty() => names,
            (true, _) => return Err(BindingError::Required(scope)),
            (false, None) => return Ok(Self(Vec::new())),
            (false, Some(_)) if scope == Scope::Admin => return Err(BindingError::AdminUsesEveryPolicy),
            (false, Some(_)) => return Err(BindingError::AuditorCannotIssue),
        };
        names.sort();
        names.dedup();
        if names.len() > MAX_BINDINGS {
            return Err(BindingError::TooMany);
        }
        Ok(Self(names))
    }

    pub fn names(&self) -> &[String] {
        &self.0
    }
}

/// Why the policies of a token request do not fit its scope.
#[derive(Debug, thiserror::Error)]
pub enum BindingError {
    #[error("an {} token must be bound to at least one policy (\"policies\": [\"...\"])", .0.as_str())]
    Required(Scope),
    #[error("an admin token uses every policy: give it no \"policies\"")]
    AdminUsesEveryPolicy,
    #[error("an auditor token cannot issue: give it no \"policies\"")]
    AuditorCannotIssue,
    #[error("a token may be bound to at most {MAX_BINDINGS} policies")]
    TooMany,
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

/// A token about to be made.
pub struct TokenRequest<'a> {
    pub name: &'a str,
    pub scope: Scope,
    pub bindings: Bindings,
    pub expires_at: Option<i64>,
}

/// Creates a token with its bindings and audit event; the secret is returned once.
pub async fn create_token(
    store: &AdminStore,
    request: &TokenRequest<'_>,
    actor: &str,
    at: i64,
) -> Result<(TokenRecord, SecretString), TokenError> {
    let token = NewToken::generate().map_err(|_| StoreError::Other("the random generator failed".into()))?;
    let audit = NewAuditEvent {
        at,
        actor: actor.to_owned(),
        action: "token.create",
        target: request.name.to_owned(),
        detail: serde_json::json!({
            "scope": request.scope.as_str(),
            "policies": request.bindings.names(),
            "expires_at": request.expires_at.map(|t| rfc3339(from_unix(t))),
        }),
    };
    let new = NewTokenRecord {
        name: request.name,
        scope: request.scope.as_str(),
        token_hash: &token.hash,
        policies: request.bindings.names(),
        created_at: at,
        expires_at: request.expires_at,
    };
    let record = store.insert_token(&new, &audit).await?;
    Ok((record, token.secret))
}

/// An admin token without an expiry, as `tessera init` and the dev
/// bootstrap make the first one.
pub async fn create_admin_token(
    store: &AdminStore,
    name: &str,
    actor: &str,
    at: i64,
) -> Result<SecretString, StoreError> {
    let request = TokenRequest { name, scope: Scope::Admin, bindings: Bindings::default(), expires_at: None };
    match create_token(store, &request, actor, at).await {
        Ok((_, secret)) => Ok(secret),
        Err(TokenError::Store(e)) => Err(e),
        Err(other) => Err(StoreError::Other(other.to_string())),
    }
}
