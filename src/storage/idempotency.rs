//! `Idempotency-Key` records of REST issuance (issue 19.2): per token, the
//! SHA-256 of the key, the SHA-256 of the request it came with, and the
//! certificate it gave (none while it is being issued). The retention job
//! deletes records older than a day (`retention.rs`).

use super::{AdminStore, StoreError, with_pool};

/// What a request found when it presented its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyClaim {
    /// The key is this request's: issue, then record the certificate with
    /// [`AdminStore::complete_idempotency_key`] (or give the key up with
    /// [`AdminStore::release_idempotency_key`]).
    Claimed,
    /// An earlier request with the same key and body got this certificate.
    Done(Vec<u8>),
    /// An earlier request with the same key is still being served.
    InProgress,
    /// The key came with another request before.
    Reused,
}

/// One key of one token.
#[derive(Debug, Clone, Copy)]
pub struct IdempotencyKey<'a> {
    pub token_id: i64,
    pub key_hash: &'a [u8],
    pub body_hash: &'a [u8],
}

impl AdminStore {
    /// Claims `key` at `now`. A record from before `expired_before` is
    /// forgotten first (the key is free again); a claim from before
    /// `abandoned_before` that never got its certificate was left by an
    /// interrupted request and is taken over. Of concurrent requests with
    /// one key, one claims it and the others find it in progress.
    pub async fn claim_idempotency_key(
        &self,
        key: &IdempotencyKey<'_>,
        now: i64,
        expired_before: i64,
        abandoned_before: i64,
    ) -> Result<IdempotencyClaim, StoreError> {
        const FORGET: &str = "DELETE FROM idempotency_keys WHERE token_id = $1 AND key_hash = $2 AND created_at < $3";
        const INSERT: &str = "INSERT INTO idempotency_keys (token_id, key_hash, body_hash, serial, created_at) \
             VALUES ($1, $2, $3, NULL, $4) ON CONFLICT DO NOTHING";
        const READ: &str =
            "SELECT body_hash, serial, created_at FROM idempotency_keys WHERE token_id = $1 AND key_hash = $2";
        const TAKE_OVER: &str = "UPDATE idempotency_keys SET created_at = $3 \
             WHERE token_id = $1 AND key_hash = $2 AND serial IS NULL AND created_at = $4";
        with_pool!(self.db(), pool => {
            sqlx::query(FORGET).bind(key.token_id).bind(key.key_hash).bind(expired_before).execute(pool).await?;
            let inserted = sqlx::query(INSERT)
                .bind(key.token_id).bind(key.key_hash).bind(key.body_hash).bind(now)
                .execute(pool).await?;
            if inserted.rows_affected() == 1 {
                return Ok(IdempotencyClaim::Claimed);
            }
            let found: Option<(Vec<u8>, Option<Vec<u8>>, i64)> =
                sqlx::query_as(READ).bind(key.token_id).bind(key.key_hash).fetch_optional(pool).await?;
            // Gone between the insert and the read (forgotten by another
            // request): this one may not have it either; it retries.
            let Some((body_hash, serial, created_at)) = found else {
                return Ok(IdempotencyClaim::InProgress);
            };
            if body_hash != key.body_hash {
                return Ok(IdempotencyClaim::Reused);
            }
            if let Some(serial) = serial {
                return Ok(IdempotencyClaim::Done(serial));
            }
            if created_at < abandoned_before {
                let taken = sqlx::query(TAKE_OVER)
                    .bind(key.token_id).bind(key.key_hash).bind(now).bind(created_at)
                    .execute(pool).await?;
                if taken.rows_affected() == 1 {
                    return Ok(IdempotencyClaim::Claimed);
                }
            }
            Ok(IdempotencyClaim::InProgress)
        })
    }

    /// Records the certificate a claimed key gave.
    pub async fn complete_idempotency_key(&self, key: &IdempotencyKey<'_>, serial: &[u8]) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE idempotency_keys SET serial = $3 WHERE token_id = $1 AND key_hash = $2";
        with_pool!(self.db(), pool => sqlx::query(SQL).bind(key.token_id).bind(key.key_hash).bind(serial)
            .execute(pool).await.map(|_| ()).map_err(StoreError::from))
    }

    /// Gives up a claimed key whose request failed, so a retry may issue.
    pub async fn release_idempotency_key(&self, key: &IdempotencyKey<'_>) -> Result<(), StoreError> {
        const SQL: &str = "DELETE FROM idempotency_keys WHERE token_id = $1 AND key_hash = $2 AND serial IS NULL";
        with_pool!(self.db(), pool => sqlx::query(SQL).bind(key.token_id).bind(key.key_hash)
            .execute(pool).await.map(|_| ()).map_err(StoreError::from))
    }
}
