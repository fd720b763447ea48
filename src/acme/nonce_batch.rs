//! Spends the nonces of concurrent requests together (see `storage::batch`): every
//! ACME POST spends one, and most read their account with it.

use std::collections::HashSet;

use crate::storage::{AcmeAccountRecord, AcmeStore, StoreError};

/// One request's nonce, and the account it names (requests signed with a
/// `kid`).
#[derive(Debug)]
pub struct Spend {
    pub nonce: Vec<u8>,
    pub expires_at: i64,
    pub account_id: Option<i64>,
}

/// What spending one request's nonce found.
#[derive(Debug)]
pub struct Spent {
    /// False when the nonce was used before.
    pub fresh: bool,
    /// The account asked for, if it exists.
    pub account: Option<AcmeAccountRecord>,
}

/// One statement for the whole batch; a nonce named twice in it is fresh
/// for the first request only. Nonces go in sorted, so two batches that
/// replay each other's nonces take their row locks in the same order and
/// cannot deadlock.
pub async fn spend_nonces(store: AcmeStore, batch: Vec<Spend>) -> Result<Vec<Spent>, StoreError> {
    let mut seen = HashSet::new();
    let mut nonces: Vec<(Vec<u8>, i64)> =
        batch.iter().filter(|s| seen.insert(s.nonce.as_slice())).map(|s| (s.nonce.clone(), s.expires_at)).collect();
    nonces.sort_unstable();
    let mut account_ids: Vec<i64> = batch.iter().filter_map(|s| s.account_id).collect();
    account_ids.sort_unstable();
    account_ids.dedup();
    let mut spent = store.spend_nonces(&nonces, &account_ids).await?;
    Ok(batch
        .into_iter()
        .map(|s| Spent {
            fresh: spent.fresh.remove(&s.nonce),
            account: s.account_id.and_then(|id| spent.accounts.iter().find(|a| a.id == id).cloned()),
        })
        .collect())
}
