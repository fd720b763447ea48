//! What the lifecycle jobs read and write: expiry counts over not_after
//! windows, certificates nobody replaced, the notices sent about them and
//! their webhook deliveries, and when each job runs.
//!
//! Every read here stays inside a not_after window: the counts of what
//! expires read `certificates_issued_expiry`, overdue and expired
//! certificates read the partial index `certificates_heads_expiry` (issued,
//! not superseded), never the whole table (tests/it/lifecycle_expiry.rs checks
//! the PostgreSQL plans).

use super::status::sql::{CERT_ISSUED, DELIVERY_PENDING};
use super::status::{CertificateKind, DeliveryState};
use super::{AdminStore, JobLeases, LifecycleStore, StoreError, begin_write, like_escape, sql, with_pool};

/// The windows an expirations summary counts, in Unix seconds.
#[derive(Debug, Clone, Copy)]
pub struct ExpiryWindows {
    pub now: i64,
    /// Ends of the "expires within 1 h / 24 h / 7 d" windows.
    pub hour_end: i64,
    pub day_end: i64,
    pub week_end: i64,
    /// Overdue certificates are searched with not_after in (now, overdue_until].
    pub overdue_until: i64,
    /// The overdue share in thousandths, so both backends compare integers.
    pub overdue_permille: i64,
    /// Expired-without-successor looks at not_after in (expired_since, now].
    pub expired_since: i64,
}

/// One authority's counts for one kind of certificate; only issued (not
/// revoked) certificates count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpirationCounts {
    pub authority_id: i64,
    pub kind: CertificateKind,
    pub expiring_1h: i64,
    pub expiring_24h: i64,
    pub expiring_7d: i64,
    pub overdue: i64,
    pub expired_without_successor: i64,
}

/// A certificate nobody replaced, as a notice reports it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UnreplacedCertificate {
    pub serial: Vec<u8>,
    pub authority_id: i64,
    pub not_before: i64,
    pub not_after: i64,
    pub sans: String,
    pub requester: String,
}

/// A webhook delivery waiting for its next attempt.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LifecycleEvent {
    pub id: i64,
    pub kind: String,
    pub subject: String,
    pub url: String,
    pub payload: String,
    pub attempts: i32,
}

/// What an attempt leaves the event as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookOutcome {
    Delivered,
    RetryAt(i64),
    GaveUp,
}

/// A background job as `GET /api/v1/jobs` shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRecord {
    pub name: String,
    pub holder: String,
    pub lease_until: i64,
    pub last_run: Option<i64>,
    pub next_run: Option<i64>,
    pub last_error: Option<String>,
    pub runs: i64,
}

impl ExpirationCounts {
    /// Nothing expiring, overdue or expired.
    pub fn none(authority_id: i64, kind: CertificateKind) -> Self {
        Self {
            authority_id,
            kind,
            expiring_1h: 0,
            expiring_24h: 0,
            expiring_7d: 0,
            overdue: 0,
            expired_without_successor: 0,
        }
    }
}

/// Issued certificates expiring within 1 h / 24 h / 7 d, per authority and kind:
/// one range of the partial index `certificates_issued_expiry`, index only.
pub(super) fn expiring_sql() -> &'static str {
    sql!(
        "SELECT authority_id, kind, \
         SUM(CASE WHEN not_after <= $2 THEN 1 ELSE 0 END), \
         SUM(CASE WHEN not_after <= $3 THEN 1 ELSE 0 END), \
         COUNT(*) \
         FROM certificates WHERE status = {CERT_ISSUED} AND not_after > $1 AND not_after <= $4 \
         GROUP BY authority_id, kind"
    )
}
/// Overdue and expired-without-successor counts per authority and kind: one range
/// of the partial index `certificates_heads_expiry`, index only.
pub(super) fn unreplaced_sql() -> &'static str {
    sql!(
        "SELECT authority_id, kind, \
         SUM(CASE WHEN not_after > $1 THEN 1 ELSE 0 END), \
         SUM(CASE WHEN not_after <= $1 THEN 1 ELSE 0 END) \
         FROM certificates WHERE status = {CERT_ISSUED} AND NOT superseded AND not_after > $2 AND not_after <= $3 \
         AND (not_after <= $1 OR not_before + (not_after - not_before) * $4 / 1000 <= $1) \
         GROUP BY authority_id, kind"
    )
}
/// Unreported unreplaced certificates in a window, for notices.
pub(super) fn unnoticed_sql() -> &'static str {
    sql!(
        "SELECT c.serial, c.authority_id, c.not_before, c.not_after, c.sans, c.requester \
         FROM certificates c WHERE c.status = {CERT_ISSUED} AND NOT c.superseded \
         AND c.not_after > $1 AND c.not_after <= $2 \
         AND ($3 IS NULL OR c.not_before + (c.not_after - c.not_before) * $3 / 1000 <= $4) \
         AND NOT EXISTS (SELECT 1 FROM lifecycle_notices n WHERE n.kind = $5 AND n.subject = c.serial) \
         ORDER BY c.not_after LIMIT $6"
    )
}

impl LifecycleStore {
    /// Per-authority and kind counts of what expires soon, what is overdue
    /// and what expired without a successor; a line only where there is
    /// something to count.
    pub async fn expiration_counts(&self, w: &ExpiryWindows) -> Result<Vec<ExpirationCounts>, StoreError> {
        let (expiring, unreplaced) = with_pool!(self.db(), pool => {
            let expiring = sqlx::query_as::<_, (i64, i16, i64, i64, i64)>(expiring_sql())
                .bind(w.now)
                .bind(w.hour_end)
                .bind(w.day_end)
                .bind(w.week_end)
                .fetch_all(pool)
                .await?;
            let unreplaced = sqlx::query_as::<_, (i64, i16, i64, i64)>(unreplaced_sql())
                .bind(w.now)
                .bind(w.expired_since)
                .bind(w.overdue_until)
                .bind(w.overdue_permille)
                .fetch_all(pool)
                .await?;
            Ok::<_, StoreError>((expiring, unreplaced))
        })?;
        let mut counts: Vec<ExpirationCounts> = Vec::new();
        let mut entry = |id: i64, kind: i16| -> Result<usize, StoreError> {
            let kind = CertificateKind::try_from(kind).map_err(|e| StoreError::Other(e.to_string()))?;
            Ok(match counts.iter().position(|c| c.authority_id == id && c.kind == kind) {
                Some(i) => i,
                None => {
                    counts.push(ExpirationCounts::none(id, kind));
                    counts.len() - 1
                }
            })
        };
        let mut rows = Vec::new();
        for (id, kind, hour, day, week) in expiring {
            rows.push((entry(id, kind)?, Some((hour, day, week)), None));
        }
        for (id, kind, overdue, expired) in unreplaced {
            rows.push((entry(id, kind)?, None, Some((overdue, expired))));
        }
        for (i, expiring, unreplaced) in rows {
            let c = &mut counts[i];
            if let Some((hour, day, week)) = expiring {
                (c.expiring_1h, c.expiring_24h, c.expiring_7d) = (hour, day, week);
            }
            if let Some((overdue, expired)) = unreplaced {
                (c.overdue, c.expired_without_successor) = (overdue, expired);
            }
        }
        counts.sort_by_key(|c| (c.authority_id, c.kind.code()));
        Ok(counts)
    }

    /// Up to `limit` issued, unsuperseded certificates with not_after in
    /// (from, until] that have no `kind` notice yet; with `renewal` =
    /// (permille, now), only those past that share of their lifetime.
    pub async fn unnoticed_unreplaced(
        &self,
        kind: &str,
        from: i64,
        until: i64,
        renewal: Option<(i64, i64)>,
        limit: i64,
    ) -> Result<Vec<UnreplacedCertificate>, StoreError> {
        let (permille, now) = match renewal {
            Some((permille, now)) => (Some(permille), now),
            None => (None, 0),
        };
        with_pool!(self.db(), pool => sqlx::query_as::<_, UnreplacedCertificate>(unnoticed_sql())
            .bind(from).bind(until).bind(permille).bind(now).bind(kind).bind(limit)
            .fetch_all(pool).await.map_err(StoreError::from))
    }

    /// Records a notice and queues one delivery per `(url, payload)`, in one
    /// transaction. False (and nothing queued) when it was noticed before.
    pub async fn record_notice(
        &self,
        kind: &str,
        subject: &[u8],
        deliveries: &[(String, String)],
        at: i64,
    ) -> Result<bool, StoreError> {
        const NOTICE: &str =
            "INSERT INTO lifecycle_notices (kind, subject, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
        const EVENT: &str = "INSERT INTO webhook_events (kind, subject, url, payload, next_attempt_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $5)";
        let subject_text = hex::encode(subject);
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await?;
            let fresh = sqlx::query(NOTICE).bind(kind).bind(subject).bind(at).execute(&mut *tx).await?;
            if fresh.rows_affected() != 1 {
                return Ok(false);
            }
            for (url, payload) in deliveries {
                sqlx::query(EVENT).bind(kind).bind(&subject_text).bind(url).bind(payload).bind(at)
                    .execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Pending deliveries whose next attempt is due, oldest first.
    pub async fn due_webhook_events(&self, now: i64, limit: i64) -> Result<Vec<LifecycleEvent>, StoreError> {
        let sql = sql!(
            "SELECT id, kind, subject, url, payload, attempts FROM webhook_events \
             WHERE state = {DELIVERY_PENDING} AND next_attempt_at <= $1 ORDER BY next_attempt_at, id LIMIT $2"
        );
        with_pool!(self.db(), pool => sqlx::query_as::<_, LifecycleEvent>(sql)
            .bind(now).bind(limit).fetch_all(pool).await.map_err(StoreError::from))
    }

    /// Records one delivery attempt and what it leaves the event as.
    pub async fn record_webhook_attempt(
        &self,
        event: &LifecycleEvent,
        status_code: Option<i32>,
        error: Option<&str>,
        at: i64,
        outcome: WebhookOutcome,
    ) -> Result<(), StoreError> {
        const ATTEMPT: &str = "INSERT INTO webhook_deliveries (event_id, kind, url, attempt, status_code, error, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)";
        const EVENT: &str = "UPDATE webhook_events SET attempts = $2, state = $3, next_attempt_at = $4 WHERE id = $1";
        let attempt = event.attempts + 1;
        let (state, next) = match outcome {
            WebhookOutcome::Delivered => (DeliveryState::Delivered, at),
            WebhookOutcome::RetryAt(next) => (DeliveryState::Pending, next),
            WebhookOutcome::GaveUp => (DeliveryState::Failed, at),
        };
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await?;
            sqlx::query(ATTEMPT)
                .bind(event.id).bind(&event.kind).bind(&event.url).bind(attempt)
                .bind(status_code).bind(error).bind(at)
                .execute(&mut *tx).await?;
            sqlx::query(EVENT).bind(event.id).bind(attempt).bind(state.as_str()).bind(next).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Stores `to` wherever queued or recorded deliveries name the URL
    /// `from`, in one transaction; returns how many rows changed.
    pub async fn rename_webhook_url(&self, from: &str, to: &str) -> Result<u64, StoreError> {
        const EVENTS: &str = "UPDATE webhook_events SET url = $2 WHERE url = $1";
        const DELIVERIES: &str = "UPDATE webhook_deliveries SET url = $2 WHERE url = $1";
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await?;
            let events = sqlx::query(EVENTS).bind(from).bind(to).execute(&mut *tx).await?.rows_affected();
            let deliveries = sqlx::query(DELIVERIES).bind(from).bind(to).execute(&mut *tx).await?.rows_affected();
            tx.commit().await?;
            Ok(events + deliveries)
        })
    }
}

impl JobLeases {
    /// Takes the lease on a job for `holder` until `until`, only when the
    /// job is due (its `next_run` has come) and no other holder's lease
    /// is running. One atomic statement, so of several nodes exactly one
    /// wins a due run.
    pub async fn take_due_lease(&self, job: &str, holder: &str, now: i64, until: i64) -> Result<bool, StoreError> {
        const SQL: &str = "INSERT INTO job_leases (name, holder, lease_until) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until \
             WHERE (job_leases.lease_until < $4 OR job_leases.holder = excluded.holder) \
             AND (job_leases.next_run IS NULL OR job_leases.next_run <= $4)";
        with_pool!(self.db(), pool => sqlx::query(SQL)
            .bind(job).bind(holder).bind(until).bind(now)
            .execute(pool).await.map(|done| done.rows_affected() == 1).map_err(StoreError::from))
    }

    /// Records how a run ended and when the job is due next.
    pub async fn finish_job_run(
        &self,
        job: &str,
        at: i64,
        next_run: i64,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        const SQL: &str =
            "UPDATE job_leases SET last_run = $2, next_run = $3, last_error = $4, runs = runs + 1 WHERE name = $1";
        with_pool!(self.db(), pool => sqlx::query(SQL)
            .bind(job).bind(at).bind(next_run).bind(error).execute(pool).await.map(|_| ()).map_err(StoreError::from))
    }

    /// Records a run of a job every node runs for itself (OCSP
    /// pre-signing keeps its responses in memory), as `<job>/<holder>`,
    /// and forgets the rows of that job whose next run was due before
    /// `forget_due_before`: their nodes have stopped, and a row per
    /// stopped node would stay in the jobs listing for ever. Returns how
    /// many rows it forgot.
    pub async fn record_node_job_run(
        &self,
        job: &str,
        holder: &str,
        run: (i64, i64, Option<&str>),
        forget_due_before: i64,
    ) -> Result<u64, StoreError> {
        const SQL: &str = "INSERT INTO job_leases (name, holder, lease_until, last_run, next_run, last_error, runs) \
             VALUES ($1, $2, $4, $3, $4, $5, 1) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until, \
             last_run = excluded.last_run, next_run = excluded.next_run, last_error = excluded.last_error, \
             runs = job_leases.runs + 1";
        const FORGET: &str = "DELETE FROM job_leases WHERE name LIKE $1 ESCAPE '\\' AND next_run < $2";
        let (at, next_run, error) = run;
        let name = format!("{job}/{holder}");
        let others = format!("{}/%", like_escape(job));
        with_pool!(self.db(), pool => {
            sqlx::query(SQL).bind(&name).bind(holder).bind(at).bind(next_run).bind(error).execute(pool).await?;
            let forgotten = sqlx::query(FORGET).bind(&others).bind(forget_due_before).execute(pool).await?;
            Ok(forgotten.rows_affected())
        })
    }
}

impl AdminStore {
    /// Every job that ever took a lease, by name.
    pub async fn jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
        const SQL: &str =
            "SELECT name, holder, lease_until, last_run, next_run, last_error, runs FROM job_leases ORDER BY name";
        with_pool!(self.db(), pool => sqlx::query_as::<_, JobRecord>(SQL).fetch_all(pool).await.map_err(StoreError::from))
    }
}
