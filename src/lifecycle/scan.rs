//! The expiry scan: refresh the gauges, then record a notice (and queue
//! its webhook deliveries) for each overdue certificate, each certificate
//! that expired without a successor, and each authority nearing its expiry
//! that was not reported before.

use serde_json::json;

use super::{AUTHORITY_NEARING_EXPIRY, EXPIRED_WITHOUT_SUCCESSOR, ExpirationReport, Lifecycle, OVERDUE};
use crate::clock::{from_unix, rfc3339};
use crate::issuance::from_column;
use crate::storage::{StoreError, UnreplacedCertificate};

/// Certificates read per page of a scan.
const PAGE: i64 = 200;

impl Lifecycle {
    pub(super) async fn scan(&self) -> Result<(), String> {
        let report = self.expirations().await.map_err(|e| e.to_string())?;
        self.gauges.set(&report);
        if self.webhooks.is_empty() {
            return Ok(());
        }
        let windows = self.windows();
        let renewal = Some((windows.overdue_permille, windows.now));
        let overdue = self
            .notify_unreplaced(&report, OVERDUE, windows.now, windows.overdue_until, renewal)
            .await
            .map_err(|e| e.to_string())?;
        let expired = self
            .notify_unreplaced(&report, EXPIRED_WITHOUT_SUCCESSOR, windows.expired_since, windows.now, None)
            .await
            .map_err(|e| e.to_string())?;
        let authorities = self.notify_authorities(&report).await.map_err(|e| e.to_string())?;
        if overdue + expired + authorities > 0 {
            tracing::info!(overdue, expired, authorities, "lifecycle notices queued");
        }
        Ok(())
    }

    /// Notices every unreported certificate of one kind, a page at a time;
    /// each page's notices leave the next page's query.
    async fn notify_unreplaced(
        &self,
        report: &ExpirationReport,
        kind: &str,
        from: i64,
        until: i64,
        renewal: Option<(i64, i64)>,
    ) -> Result<usize, StoreError> {
        let mut noticed = 0;
        loop {
            let page = self.store.unnoticed_unreplaced(kind, from, until, renewal, PAGE).await?;
            for certificate in &page {
                let payload = self.certificate_payload(report, kind, certificate);
                if self.queue(kind, &certificate.serial, &payload).await? {
                    noticed += 1;
                }
            }
            if (page.len() as i64) < PAGE {
                return Ok(noticed);
            }
        }
    }

    async fn notify_authorities(&self, report: &ExpirationReport) -> Result<usize, StoreError> {
        let mut noticed = 0;
        for authority in report.authorities.iter().filter(|a| a.nearing_expiry) {
            let record = self.store.authority(authority.authority_id).await?;
            let payload = json!({
                "id": format!("{AUTHORITY_NEARING_EXPIRY}:{}", hex::encode(&record.serial)),
                "type": AUTHORITY_NEARING_EXPIRY,
                "created_at": rfc3339(from_unix(report.at)),
                "data": {
                    "authority_id": record.id,
                    "authority": record.name,
                    "serial": hex::encode(&record.serial),
                    "not_before": rfc3339(from_unix(record.not_before)),
                    "not_after": rfc3339(from_unix(record.not_after)),
                    "seconds_left": record.not_after - report.at,
                },
            });
            if self.queue(AUTHORITY_NEARING_EXPIRY, &record.serial, &payload).await? {
                noticed += 1;
            }
        }
        Ok(noticed)
    }

    fn certificate_payload(
        &self,
        report: &ExpirationReport,
        kind: &str,
        c: &UnreplacedCertificate,
    ) -> serde_json::Value {
        let authority = report.authorities.iter().find(|a| a.authority_id == c.authority_id).map(|a| a.name.clone());
        let identifiers: Vec<_> =
            from_column(&c.sans).iter().map(|id| json!({ "type": id.kind(), "value": id.value() })).collect();
        json!({
            "id": format!("{kind}:{}", hex::encode(&c.serial)),
            "type": kind,
            "created_at": rfc3339(from_unix(report.at)),
            "data": {
                "serial": hex::encode(&c.serial),
                "authority_id": c.authority_id,
                "authority": authority,
                "identifiers": identifiers,
                "requester": c.requester,
                "not_before": rfc3339(from_unix(c.not_before)),
                "not_after": rfc3339(from_unix(c.not_after)),
                "overdue_share": report.overdue_share,
            },
        })
    }

    /// Records the notice and one delivery per webhook; false when it was
    /// recorded before (by this node or another).
    async fn queue(&self, kind: &str, subject: &[u8], payload: &serde_json::Value) -> Result<bool, StoreError> {
        let body = payload.to_string();
        let deliveries: Vec<(String, String)> =
            self.webhooks.iter().map(|w| (w.address.address.clone(), body.clone())).collect();
        self.store.record_notice(kind, subject, &deliveries, self.clock.unix()).await
    }
}
