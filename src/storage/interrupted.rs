//! Issuance a stopped node left half done (issue 19.1): a serial reserved
//! as pending whose certificate was never recorded, and the ACME order
//! that waits on it, processing. A node may have signed the certificate
//! before it stopped, so the serial is never reused or reported good: it is
//! recorded failed (OCSP answers `unknown` for it), with an audit event,
//! and the order becomes invalid with the problem the caller gives.

use super::audit::insert_audit;
use super::status::sql::{CERT_FAILED, CERT_PENDING, ORDER_INVALID, ORDER_PROCESSING};
use super::{LifecycleStore, NewAuditEvent, StoreError, begin_write, sql, with_pool};

/// What one call of [`LifecycleStore::settle_interrupted_issuance`] settled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettledIssuance {
    /// Serials that were pending and are now failed.
    pub certificates: Vec<Vec<u8>>,
    /// Orders that were processing and are now invalid.
    pub orders: u64,
}

impl LifecycleStore {
    /// Ends, in one commit, at most `limit` pending certificates reserved
    /// before `before` (marked failed, each with its audit event at `at`)
    /// and at most `limit` orders processing since before `before`
    /// (invalid, with `order_problem` as their error). A certificate being
    /// recorded at the same moment keeps whichever commit came first: its
    /// issued record and this both require it pending.
    pub async fn settle_interrupted_issuance(
        &self,
        before: i64,
        at: i64,
        order_problem: &str,
        limit: i64,
    ) -> Result<SettledIssuance, StoreError> {
        // Served by the partial index certificates_pending.
        let pending_before = sql!(
            "SELECT serial FROM certificates WHERE status = {CERT_PENDING} AND created_at < $1 \
             ORDER BY created_at LIMIT $2"
        );
        let fail = sql!("UPDATE certificates SET status = {CERT_FAILED} WHERE serial = $1 AND status = {CERT_PENDING}");
        // Served by the partial index acme_orders_processing; orders that
        // began processing before it existed are judged by their creation.
        let orders = sql!(
            "UPDATE acme_orders SET status = {ORDER_INVALID}, error = $2 WHERE status = {ORDER_PROCESSING} \
             AND id IN (SELECT id FROM acme_orders WHERE status = {ORDER_PROCESSING} \
             AND COALESCE(processing_since, created_at) < $1 ORDER BY id LIMIT $3)"
        );
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await?;
            let pending: Vec<Vec<u8>> =
                sqlx::query_scalar(pending_before).bind(before).bind(limit).fetch_all(&mut *tx).await?;
            let mut settled = SettledIssuance::default();
            for serial in pending {
                if sqlx::query(fail).bind(&serial).execute(&mut *tx).await?.rows_affected() != 1 {
                    continue;
                }
                let audit = NewAuditEvent {
                    at,
                    actor: "tessera".into(),
                    action: "certificate.abandon",
                    target: hex::encode(&serial),
                    detail: serde_json::json!({"reason": "issuance was interrupted before the certificate was recorded"}),
                };
                insert_audit!(&mut *tx, &audit)?;
                settled.certificates.push(serial);
            }
            settled.orders =
                sqlx::query(orders).bind(before).bind(order_problem).bind(limit).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok(settled)
        })
    }
}
