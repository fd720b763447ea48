//! Settles issuance that a stopped node left half done (issue 19.1): a
//! serial reserved as pending and never recorded, and the ACME order
//! processing on it. Past `lifecycle.interrupted_issuance_after` the serial
//! is recorded failed (OCSP never answers `good` for it, as the node may
//! have signed before it stopped) and the order ends invalid, so a client
//! polling it learns to place a new one; a REST caller's request already
//! ended with its connection. Runs under a lease like every shared job.

use super::Lifecycle;

/// Rows settled per commit.
const BATCH: i64 = 100;

impl Lifecycle {
    /// How often the settling job runs: a quarter of the wait, so nothing
    /// stays pending much longer than the wait itself.
    pub(super) fn settle_interval(&self) -> time::Duration {
        let quarter: time::Duration = self.config.interrupted_issuance_after() / 4;
        quarter.max(time::Duration::seconds(5))
    }

    pub(super) async fn settle(&self) -> Result<(), String> {
        let now = self.clock.unix();
        let before = now - self.config.interrupted_issuance_after().whole_seconds();
        loop {
            let settled = self
                .store
                .settle_interrupted_issuance(before, now, &self.acme.interrupted_order_problem, BATCH)
                .await
                .map_err(|e| e.to_string())?;
            for serial in &settled.certificates {
                tracing::warn!(serial = %hex::encode(serial), "an interrupted issuance was settled as failed");
            }
            if settled.orders > 0 {
                tracing::warn!(
                    orders = settled.orders,
                    "ACME orders left processing by an interrupted issuance are invalid"
                );
            }
            if (settled.certificates.len() as i64) < BATCH && (settled.orders as i64) < BATCH {
                return Ok(());
            }
        }
    }
}
