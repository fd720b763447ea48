//! Deleting what is past its retention (issue 19.7): used nonces, ACME
//! order counts, orders with their authorizations and challenges,
//! lifecycle notices, finished webhook events with their delivery
//! attempts, and idempotency keys. Certificates and the audit log are never
//! deleted. Each statement deletes at most one batch and commits on its
//! own, so a large backlog never holds a table locked for long.

use super::status::sql::{DELIVERY_PENDING, ORDER_PROCESSING};
use super::{LifecycleStore, StoreError, begin_write, sql, with_pool};

/// The cut-offs of one pruning run, in Unix seconds: rows older go.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Used nonces that expired before this.
    pub nonces_expired_before: i64,
    /// Order counts of buckets before this (no rate window reaches them).
    pub order_counts_before: i64,
    /// Orders (not processing) that expired before this and whose
    /// certificate, if any, expired before this too.
    pub orders_expired_before: i64,
    pub notices_before: i64,
    /// Webhook events delivered or given up before this.
    pub webhook_events_before: i64,
    pub idempotency_keys_before: i64,
    /// Rows per statement.
    pub batch: i64,
}

/// Rows deleted by one run, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub nonces: u64,
    pub order_counts: u64,
    pub orders: u64,
    pub authorizations: u64,
    pub challenges: u64,
    pub notices: u64,
    pub webhook_events: u64,
    pub webhook_deliveries: u64,
    pub idempotency_keys: u64,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.nonces
            + self.order_counts
            + self.orders
            + self.authorizations
            + self.challenges
            + self.notices
            + self.webhook_events
            + self.webhook_deliveries
            + self.idempotency_keys
    }
}

/// Single-table deletions: `$1` is the cut-off, `$2` the batch.
const NONCES: &str = "DELETE FROM acme_used_nonces WHERE nonce IN \
     (SELECT nonce FROM acme_used_nonces WHERE expires_at < $1 LIMIT $2)";
const ORDER_COUNTS: &str = "DELETE FROM acme_order_counts WHERE (account_id, bucket) IN \
     (SELECT account_id, bucket FROM acme_order_counts WHERE bucket < $1 LIMIT $2)";
const EAB_ORDER_COUNTS: &str = "DELETE FROM acme_eab_order_counts WHERE (eab_key_id, bucket) IN \
     (SELECT eab_key_id, bucket FROM acme_eab_order_counts WHERE bucket < $1 LIMIT $2)";
const NOTICES: &str = "DELETE FROM lifecycle_notices WHERE (kind, subject) IN \
     (SELECT kind, subject FROM lifecycle_notices WHERE at < $1 LIMIT $2)";
const IDEMPOTENCY_KEYS: &str = "DELETE FROM idempotency_keys WHERE (token_id, key_hash) IN \
     (SELECT token_id, key_hash FROM idempotency_keys WHERE created_at < $1 LIMIT $2)";

/// Orders past retention, a batch at a time (`acme_orders_expires`).
fn old_orders() -> &'static str {
    sql!(
        "SELECT id FROM acme_orders o WHERE expires < $1 AND status <> {ORDER_PROCESSING} \
         AND NOT EXISTS (SELECT 1 FROM certificates c WHERE c.serial = o.certificate_serial AND c.not_after >= $1) \
         ORDER BY expires LIMIT $2"
    )
}

/// Finished webhook events past retention (`webhook_events_finished`): a
/// finished event's `next_attempt_at` is when it was delivered or given up.
fn old_events() -> &'static str {
    sql!(
        "SELECT id FROM webhook_events WHERE state <> {DELIVERY_PENDING} AND next_attempt_at < $1 \
         ORDER BY next_attempt_at LIMIT $2"
    )
}

impl LifecycleStore {
    /// Deletes everything past `retention`, a batch per statement.
    pub async fn prune(&self, retention: &Retention) -> Result<Pruned, StoreError> {
        let batch = retention.batch;
        let mut pruned = Pruned {
            nonces: self.delete_batches(NONCES, retention.nonces_expired_before, batch).await?,
            order_counts: self.delete_batches(ORDER_COUNTS, retention.order_counts_before, batch).await?
                + self.delete_batches(EAB_ORDER_COUNTS, retention.order_counts_before, batch).await?,
            notices: self.delete_batches(NOTICES, retention.notices_before, batch).await?,
            idempotency_keys: self.delete_batches(IDEMPOTENCY_KEYS, retention.idempotency_keys_before, batch).await?,
            ..Pruned::default()
        };
        loop {
            let ids = self.ids(old_orders(), retention.orders_expired_before, batch).await?;
            let [challenges, authorizations, orders] = self
                .delete_ids(
                    &ids,
                    &[
                        "DELETE FROM acme_challenges WHERE authz_id IN \
                         (SELECT id FROM acme_authorizations WHERE order_id IN ({ids}))",
                        "DELETE FROM acme_authorizations WHERE order_id IN ({ids})",
                        "DELETE FROM acme_orders WHERE id IN ({ids})",
                    ],
                )
                .await?;
            pruned.challenges += challenges;
            pruned.authorizations += authorizations;
            pruned.orders += orders;
            if (ids.len() as i64) < batch {
                break;
            }
        }
        loop {
            let ids = self.ids(old_events(), retention.webhook_events_before, batch).await?;
            let [deliveries, events] = self
                .delete_ids(
                    &ids,
                    &[
                        "DELETE FROM webhook_deliveries WHERE event_id IN ({ids})",
                        "DELETE FROM webhook_events WHERE id IN ({ids})",
                    ],
                )
                .await?;
            pruned.webhook_deliveries += deliveries;
            pruned.webhook_events += events;
            if (ids.len() as i64) < batch {
                break;
            }
        }
        Ok(pruned)
    }

    /// Runs a single-table deletion until it deletes less than a batch.
    async fn delete_batches(&self, sql: &'static str, before: i64, batch: i64) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let deleted = with_pool!(self.db(), pool => sqlx::query(sql).bind(before).bind(batch)
                .execute(pool).await.map(|done| done.rows_affected()))?;
            total += deleted;
            if deleted < batch as u64 {
                return Ok(total);
            }
        }
    }

    async fn ids(&self, sql: &'static str, before: i64, batch: i64) -> Result<Vec<i64>, StoreError> {
        with_pool!(self.db(), pool => sqlx::query_scalar(sql).bind(before).bind(batch)
            .fetch_all(pool).await.map_err(StoreError::from))
    }

    /// Runs each statement, its `{ids}` replaced by `ids`, in one commit;
    /// the rows each deleted. The ids are integers this module read, so
    /// writing them into the text (the same on both backends) is safe.
    async fn delete_ids<const N: usize>(&self, ids: &[i64], statements: &[&str; N]) -> Result<[u64; N], StoreError> {
        let mut deleted = [0; N];
        if ids.is_empty() {
            return Ok(deleted);
        }
        let list = ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",");
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await?;
            for (slot, statement) in deleted.iter_mut().zip(statements) {
                let sql = statement.replace("{ids}", &list);
                *slot = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await?.rows_affected();
            }
            tx.commit().await?;
            Ok(deleted)
        })
    }
}
