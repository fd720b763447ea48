//! `Idempotency-Key` on `POST /api/v1/certificates` (issue 19.2): a client
//! whose connection broke mid-request retries with the same key and the
//! same body and gets the certificate the first request made, without a
//! second signature or row. Keys are scoped to the token that sent them,
//! live a day, and may not come with another body.

use axum::http::HeaderMap;
use serde::Serialize;

use super::AdminState;
use super::extract::Caller;
use super::problem::ApiError;
use crate::lifecycle::IDEMPOTENCY_KEY_SECONDS;
use crate::storage::{IdempotencyClaim, IdempotencyKey};

pub const HEADER: &str = "idempotency-key";
/// Keys longer than this are refused (a UUID is 36).
const MAX_KEY_LENGTH: usize = 255;

/// A request's key and what it asked, as hashes.
#[derive(Debug)]
pub struct Idempotency {
    token_id: i64,
    key_hash: Vec<u8>,
    body_hash: Vec<u8>,
}

/// What the request should do with its key.
#[derive(Debug)]
pub enum Claim {
    /// Issue, then [`Idempotency::complete`] (or [`Idempotency::release`]).
    Issue,
    /// Answer with the certificate of this serial again.
    Replay(Vec<u8>),
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref().to_vec()
}

impl Idempotency {
    /// The request's key, if it sent one: 1 to 255 visible ASCII characters.
    pub fn from_request(headers: &HeaderMap, caller: &Caller, body: &impl Serialize) -> Result<Option<Self>, ApiError> {
        let Some(value) = headers.get(HEADER) else { return Ok(None) };
        let key = value.as_bytes();
        if key.is_empty() || key.len() > MAX_KEY_LENGTH || !key.iter().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::Malformed(format!(
                "the Idempotency-Key header must be 1 to {MAX_KEY_LENGTH} visible ASCII characters"
            )));
        }
        // The parsed body, so that the same request written with other
        // spacing or field order counts as the same.
        let canonical = serde_json::to_vec(body).map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(Some(Self { token_id: caller.token_id, key_hash: sha256(key), body_hash: sha256(&canonical) }))
    }

    fn key(&self) -> IdempotencyKey<'_> {
        IdempotencyKey { token_id: self.token_id, key_hash: &self.key_hash, body_hash: &self.body_hash }
    }

    /// Claims the key: issue, or answer again; a key in use by a request
    /// still running is a 409, one used with another body a 422.
    pub async fn claim(&self, state: &AdminState) -> Result<Claim, ApiError> {
        let now = state.clock.unix();
        let abandoned_before = now - state.lifecycle.interrupted_issuance_after().whole_seconds();
        match state
            .store
            .claim_idempotency_key(&self.key(), now, now - IDEMPOTENCY_KEY_SECONDS, abandoned_before)
            .await?
        {
            IdempotencyClaim::Claimed => Ok(Claim::Issue),
            IdempotencyClaim::Done(serial) => Ok(Claim::Replay(serial)),
            IdempotencyClaim::InProgress => Err(ApiError::IdempotencyKeyInUse),
            IdempotencyClaim::Reused => Err(ApiError::IdempotencyKeyReused),
        }
    }

    /// Records the certificate the key gave. Should that fail, the key
    /// stays claimed and a retry finds it in progress until the claim is
    /// taken over as abandoned; the certificate itself is issued.
    pub async fn complete(&self, state: &AdminState, serial: &[u8]) {
        if let Err(e) = state.store.complete_idempotency_key(&self.key(), serial).await {
            tracing::warn!(error = %e, "could not record the certificate of an idempotency key");
        }
    }

    /// Gives the key up after a failed issuance, so a retry may issue.
    pub async fn release(&self, state: &AdminState) {
        if let Err(e) = state.store.release_idempotency_key(&self.key()).await {
            tracing::warn!(error = %e, "could not release an idempotency key");
        }
    }
}
