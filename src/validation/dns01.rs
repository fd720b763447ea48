//! dns-01 (RFC 8555 §8.4): a TXT record at `_acme-challenge.{name}` holding
//! base64url(SHA-256(key authorization)).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{ValidationError, ValidationResolver, key_authorization_digest};
use crate::issuance::Identifier;

pub async fn validate(
    resolver: &ValidationResolver,
    identifier: &Identifier,
    key_authorization: &str,
) -> Result<(), ValidationError> {
    let Identifier::Dns(name) = identifier else {
        return Err(ValidationError::Unauthorized(format!("dns-01 cannot validate {identifier}")));
    };
    let record = format!("_acme-challenge.{}", name.trim_start_matches("*."));
    let expected = URL_SAFE_NO_PAD.encode(key_authorization_digest(key_authorization));
    let found = resolver.txt(&record).await?;
    if found.is_empty() {
        return Err(ValidationError::Unauthorized(format!("no TXT record at {record}")));
    }
    if found.iter().any(|txt| txt.trim() == expected) {
        Ok(())
    } else {
        Err(ValidationError::IncorrectResponse(format!(
            "the TXT records at {record} do not hold the expected digest (found {} record(s))",
            found.len()
        )))
    }
}
