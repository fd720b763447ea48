//! Batches the database work of concurrent requests. The hot paths
//! (spending an ACME nonce, reading an order or an authorization, admitting
//! a new order, starting a challenge, recording a validation result,
//! reserving a serial, recording a signed certificate) each cost a round
//! trip and a statement, whose fixed cost on PostgreSQL outweighs the rows
//! it touches. Requests that arrive while earlier batches are in the
//! database wait for the next batch, so under load one statement serves
//! many requests, and an idle server sends each request's statement at once.
//! Before a batch leaves it lets the runtime's other ready tasks run a few
//! times, so requests already on their way join it. A batch starts only
//! after every request in it arrived, so what it reads is never older than
//! the request.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use super::StoreError;

/// Requests one statement serves at most.
const MAX_BATCH: usize = 256;
/// Batches of one batcher in the database at once. One: requests queue up
/// behind it and batches grow under load, while the batchers of the other
/// hot paths keep the pool busy. (Two in flight halved the batches and, on
/// PostgreSQL with two cores, cost a fifth of the ACME flows per second.)
const BATCHES_IN_FLIGHT: usize = 1;
/// Yields to the runtime before a batch leaves (see [`gather`]). Measured
/// on PostgreSQL with two cores, ACME flows per second: none 446-453, one
/// 546-551, three 558-607, six or more no better.
const GATHER_YIELDS: usize = 3;

struct Job<K, V> {
    key: K,
    reply: oneshot::Sender<Result<V, StoreError>>,
}

/// A queue in front of a function that answers many keys at once (one
/// value per key, in order).
pub struct Batcher<K, V> {
    queue: mpsc::UnboundedSender<Job<K, V>>,
}

impl<K, V> Clone for Batcher<K, V> {
    fn clone(&self) -> Self {
        Self { queue: self.queue.clone() }
    }
}

impl<K, V> std::fmt::Debug for Batcher<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Batcher(..)")
    }
}

impl<K: Send + 'static, V: Send + 'static> Batcher<K, V> {
    /// Starts the task that sends batches to `fetch` (with a clone of
    /// `context`, the database); it ends when the last handle drops.
    pub fn start<C, F, Fut>(context: C, fetch: F) -> Self
    where
        C: Clone + Send + Sync + 'static,
        F: Fn(C, Vec<K>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<V>, StoreError>> + Send + 'static,
    {
        let (queue, jobs) = mpsc::unbounded_channel();
        tokio::spawn(run(context, Arc::new(fetch), jobs));
        Self { queue }
    }

    /// The value for `key`, from the next batch.
    pub async fn get(&self, key: K) -> Result<V, StoreError> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Unavailable("the request batcher has stopped".into());
        self.queue.send(Job { key, reply }).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Lets the runtime's other ready tasks run [`GATHER_YIELDS`] times before a
/// batch leaves, taking in what they queued meanwhile: under load the
/// requests that would have made the next batch join this one, and an idle
/// runtime comes straight back.
async fn gather<K, V>(jobs: &mut mpsc::UnboundedReceiver<Job<K, V>>, batch: &mut Vec<Job<K, V>>) {
    for _ in 0..GATHER_YIELDS {
        tokio::task::yield_now().await;
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
    }
}

async fn run<C, K, V, F, Fut>(context: C, fetch: Arc<F>, mut jobs: mpsc::UnboundedReceiver<Job<K, V>>)
where
    C: Clone + Send + Sync + 'static,
    K: Send + 'static,
    V: Send + 'static,
    F: Fn(C, Vec<K>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<V>, StoreError>> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut batch = Vec::new();
        if jobs.recv_many(&mut batch, MAX_BATCH).await == 0 {
            return;
        }
        gather(&mut jobs, &mut batch).await;
        let (context, fetch) = (context.clone(), fetch.clone());
        tokio::spawn(async move {
            let (keys, replies): (Vec<K>, Vec<_>) = batch.into_iter().map(|job| (job.key, job.reply)).unzip();
            match fetch(context, keys).await {
                Ok(values) if values.len() == replies.len() => {
                    for (reply, value) in replies.into_iter().zip(values) {
                        let _ = reply.send(Ok(value));
                    }
                }
                Ok(values) => {
                    let e = StoreError::Other(format!("a batch of {} answered {}", replies.len(), values.len()));
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
                Err(e) => {
                    for reply in replies {
                        let _ = reply.send(Err(e.clone()));
                    }
                }
            }
            drop(slot);
        });
    }
}
