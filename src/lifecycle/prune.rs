//! The retention job (issue 19.7): on one node at a time, under a lease,
//! deletes what `lifecycle.retention` says is no longer needed. Used
//! nonces go once they expire, rate-limit counts once no window reaches
//! them, idempotency keys after a day; certificates and the audit log are
//! kept for good.

use super::Lifecycle;
use crate::storage::Retention;

/// How long an `Idempotency-Key` is remembered (issue 19.2).
pub const IDEMPOTENCY_KEY_SECONDS: i64 = 86_400;

impl Lifecycle {
    pub(super) fn retention(&self, now: i64) -> Retention {
        let retention = &self.config.retention;
        Retention {
            nonces_expired_before: now,
            order_counts_before: now - self.acme.rate_window_seconds,
            orders_expired_before: now - retention.acme_orders.duration().whole_seconds(),
            notices_before: now - retention.notices.duration().whole_seconds(),
            webhook_events_before: now - retention.webhook_events.duration().whole_seconds(),
            idempotency_keys_before: now - IDEMPOTENCY_KEY_SECONDS,
            batch: i64::from(retention.batch),
        }
    }

    pub(super) async fn prune(&self) -> Result<(), String> {
        let pruned = self.store.prune(&self.retention(self.clock.unix())).await.map_err(|e| e.to_string())?;
        if pruned.total() > 0 {
            tracing::info!(
                nonces = pruned.nonces,
                order_counts = pruned.order_counts,
                orders = pruned.orders,
                authorizations = pruned.authorizations,
                challenges = pruned.challenges,
                notices = pruned.notices,
                webhook_events = pruned.webhook_events,
                webhook_deliveries = pruned.webhook_deliveries,
                idempotency_keys = pruned.idempotency_keys,
                "records past their retention deleted"
            );
        }
        Ok(())
    }
}
