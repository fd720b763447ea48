//! Spends the nonces of concurrent requests together. Every ACME POST
//! spends one (and most read their account with it); requests that arrive
//! while earlier batches are in the database wait for the next batch, so
//! under load one statement serves many requests, and an idle server sends
//! each request's spend at once.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::storage::{AcmeAccountRecord, Db, StoreError};

/// Requests one statement serves at most.
const MAX_BATCH: usize = 256;
/// Batches in the database at once: enough to keep a pool busy, few enough
/// that requests queue up behind them and batches grow under load.
const BATCHES_IN_FLIGHT: usize = 2;

/// What spending one request's nonce found.
#[derive(Debug)]
pub struct Spent {
    /// False when the nonce was used before.
    pub fresh: bool,
    /// The account asked for, if it exists.
    pub account: Option<AcmeAccountRecord>,
}

struct Spend {
    nonce: Vec<u8>,
    expires_at: i64,
    account_id: Option<i64>,
    reply: oneshot::Sender<Result<Spent, StoreError>>,
}

/// The queue in front of [`Db::spend_nonces`].
#[derive(Debug, Clone)]
pub struct NonceBatcher {
    queue: mpsc::UnboundedSender<Spend>,
}

impl NonceBatcher {
    /// Starts the task that sends batches; it ends when the last handle drops.
    pub fn start(db: Db) -> Self {
        let (queue, requests) = mpsc::unbounded_channel();
        tokio::spawn(run(db, requests));
        Self { queue }
    }

    /// Spends `nonce` and reads account `account_id` (when given).
    pub async fn spend(&self, nonce: &[u8], expires_at: i64, account_id: Option<i64>) -> Result<Spent, StoreError> {
        let (reply, answer) = oneshot::channel();
        let spend = Spend { nonce: nonce.to_vec(), expires_at, account_id, reply };
        let stopped = || StoreError::Unavailable("the nonce batcher has stopped".into());
        self.queue.send(spend).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(db: Db, mut requests: mpsc::UnboundedReceiver<Spend>) {
    let slots = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut batch = Vec::new();
        if requests.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        let db = db.clone();
        tokio::spawn(async move {
            send_batch(&db, batch).await;
            drop(slot);
        });
    }
}

/// One statement for the whole batch; a nonce named twice in it is fresh
/// for the first request only. Nonces go in sorted, so two batches that
/// replay each other's nonces take their row locks in the same order and
/// cannot deadlock.
async fn send_batch(db: &Db, batch: Vec<Spend>) {
    let mut seen = HashSet::new();
    let mut nonces: Vec<(Vec<u8>, i64)> =
        batch.iter().filter(|s| seen.insert(s.nonce.as_slice())).map(|s| (s.nonce.clone(), s.expires_at)).collect();
    nonces.sort_unstable();
    let mut account_ids: Vec<i64> = batch.iter().filter_map(|s| s.account_id).collect();
    account_ids.sort_unstable();
    account_ids.dedup();
    match db.spend_nonces(&nonces, &account_ids).await {
        Ok(mut spent) => {
            for spend in batch {
                let fresh = spent.fresh.remove(&spend.nonce);
                let account = spend.account_id.and_then(|id| spent.accounts.iter().find(|a| a.id == id).cloned());
                let _ = spend.reply.send(Ok(Spent { fresh, account }));
            }
        }
        Err(e) => {
            for spend in batch {
                let _ = spend.reply.send(Err(e.clone()));
            }
        }
    }
}
