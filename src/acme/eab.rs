//! External Account Binding (RFC 8555 §7.3.4): the inner JWS that proves a
//! new account holds an EAB key an operator handed out. The key's policy
//! becomes the account's scope.

use secrecy::ExposeSecret;
use serde_json::Value;

use super::jws::{Jwk, Jws, JwsError, KeyRef};
use super::problem::{AcmeProblem, ProblemType};
use crate::secrets::Sealer;
use crate::storage::{AcmeStore, EabKeySecret};

/// Checks the binding in a newAccount payload against the account key and
/// the newAccount URL; returns the EAB key it names.
pub async fn verify_binding(
    store: &AcmeStore,
    sealer: &Sealer,
    binding: &Value,
    account_key: &Jwk,
    url: &str,
) -> Result<EabKeySecret, AcmeProblem> {
    let jws = Jws::from_value(binding)?;
    let KeyRef::Kid(kid) = &jws.header.key else {
        return Err(AcmeProblem::malformed("the externalAccountBinding must name its key with kid"));
    };
    if jws.header.nonce.is_some() {
        return Err(AcmeProblem::malformed("the externalAccountBinding must not carry a nonce"));
    }
    if jws.header.url != url {
        return Err(AcmeProblem::unauthorized("the externalAccountBinding url is not the newAccount URL"));
    }
    let key = store
        .eab_key_secret(kid)
        .await?
        .ok_or_else(|| AcmeProblem::unauthorized(format!("the EAB key {kid:?} is not known")))?;
    if key.revoked_at.is_some() {
        return Err(AcmeProblem::unauthorized(format!("the EAB key {kid:?} is revoked")));
    }
    if key.bound_at.is_some() && !key.reusable {
        return Err(AcmeProblem::unauthorized(format!("the EAB key {kid:?} is already bound to an account")));
    }
    let hmac_key = sealer.open(&key.hmac_key()).await?;
    jws.verify_mac(hmac_key.expose_secret()).map_err(|e| match e {
        JwsError::BadSignature => AcmeProblem::unauthorized("the externalAccountBinding MAC does not verify"),
        JwsError::BadSignatureAlgorithm(m) => AcmeProblem::new(ProblemType::BadSignatureAlgorithm, m),
        other => other.into(),
    })?;
    let bound: Value = jws.payload_json()?;
    if Jwk::from_json(&bound)? != *account_key {
        return Err(AcmeProblem::unauthorized("the externalAccountBinding binds a different key"));
    }
    Ok(key)
}
