//! Helpers for Tessera's own tests and benchmarks, behind the
//! `test-support` feature (which the crate's dev-dependency on itself
//! turns on): row counts that show a refused request stored nothing, the
//! query plans of the expiry queries, statements without parameters, and
//! the synthetic certificates of the expiry benchmark (`seed`). A build
//! of `tessera` has none of them.

use super::lifecycle::{ExpiryWindows, expiring_sql, unnoticed_sql, unreplaced_sql};
use super::{Db, StoreError, with_pool};

/// One recorded webhook delivery attempt.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WebhookAttempt {
    pub event_id: i64,
    pub kind: String,
    pub url: String,
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub at: i64,
}

impl Db {
    /// Runs one statement that takes no parameters (DDL in tests and tools).
    pub async fn execute_raw(&self, sql: &str) -> Result<(), StoreError> {
        with_pool!(self, pool => sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).execute(pool).await.map(|_| ()).map_err(StoreError::from))
    }

    /// Row counts of every ACME table a request could change (used nonces
    /// aside), for tests that check a refused request stored nothing.
    pub async fn count_acme_rows(&self) -> Result<[i64; 5], StoreError> {
        let mut out = [0; 5];
        for (slot, table) in
            out.iter_mut().zip(["eab_keys", "acme_accounts", "acme_orders", "acme_authorizations", "acme_challenges"])
        {
            let sql = format!("SELECT COUNT(*) FROM {table}");
            *slot = with_pool!(self, pool => sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                .fetch_one(pool).await.map_err(StoreError::from))?;
        }
        Ok(out)
    }

    /// Counts the rows of `table` (a name written in the test, never input).
    pub async fn count_rows(&self, table: &str) -> Result<i64, StoreError> {
        let sql = format!("SELECT COUNT(*) FROM {table}");
        with_pool!(self, pool => sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
            .fetch_one(pool).await.map_err(StoreError::from))
    }

    /// Counts events, for tests that check nothing was written.
    pub async fn count_audit_events(&self) -> Result<i64, StoreError> {
        with_pool!(self, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_events")
            .fetch_one(pool).await.map_err(StoreError::from))
    }

    /// Counts admin tokens, for tests that check a start wrote none.
    pub async fn count_tokens(&self) -> Result<i64, StoreError> {
        with_pool!(self, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM api_tokens")
            .fetch_one(pool).await.map_err(StoreError::from))
    }

    /// Counts certificate rows, for tests that check nothing was written.
    pub async fn count_certificates(&self) -> Result<i64, StoreError> {
        with_pool!(self, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM certificates")
            .fetch_one(pool).await.map_err(StoreError::from))
    }

    /// Every delivery attempt on record, in order.
    pub async fn webhook_attempts(&self) -> Result<Vec<WebhookAttempt>, StoreError> {
        const SQL: &str =
            "SELECT event_id, kind, url, attempt, status_code, error, at FROM webhook_deliveries ORDER BY id";
        with_pool!(self, pool => sqlx::query_as::<_, WebhookAttempt>(SQL).fetch_all(pool).await.map_err(StoreError::from))
    }

    /// The query plans of the expiry queries for `w`, one text per query
    /// (PostgreSQL `EXPLAIN`, SQLite `EXPLAIN QUERY PLAN`), so tests and the
    /// benchmark can show they read index windows, not the table. With
    /// `without_seq_scan`, PostgreSQL is told to avoid sequential scans
    /// (a test table of a few rows is scanned whole otherwise, cheaply).
    pub async fn explain_expiry_queries(
        &self,
        w: &ExpiryWindows,
        without_seq_scan: bool,
    ) -> Result<Vec<String>, StoreError> {
        let mut plans = Vec::new();
        match self {
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                if without_seq_scan {
                    sqlx::query("SET LOCAL enable_seqscan = off").execute(&mut *tx).await?;
                }
                let explain = |sql: &str| sqlx::AssertSqlSafe(format!("EXPLAIN {sql}"));
                let lines: Vec<String> = sqlx::query_scalar(explain(expiring_sql()))
                    .bind(w.now)
                    .bind(w.hour_end)
                    .bind(w.day_end)
                    .bind(w.week_end)
                    .fetch_all(&mut *tx)
                    .await?;
                plans.push(lines.join("\n"));
                let lines: Vec<String> = sqlx::query_scalar(explain(unreplaced_sql()))
                    .bind(w.now)
                    .bind(w.expired_since)
                    .bind(w.overdue_until)
                    .bind(w.overdue_permille)
                    .fetch_all(&mut *tx)
                    .await?;
                plans.push(lines.join("\n"));
                let lines: Vec<String> = sqlx::query_scalar(explain(unnoticed_sql()))
                    .bind(w.now)
                    .bind(w.overdue_until)
                    .bind(Some(w.overdue_permille))
                    .bind(w.now)
                    .bind("certificate.overdue")
                    .bind(100_i64)
                    .fetch_all(&mut *tx)
                    .await?;
                plans.push(lines.join("\n"));
                tx.rollback().await?;
            }
            Db::Sqlite(pool) => {
                let explain = |sql: &str| sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}"));
                let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(explain(expiring_sql()))
                    .bind(w.now)
                    .bind(w.hour_end)
                    .bind(w.day_end)
                    .bind(w.week_end)
                    .fetch_all(pool)
                    .await?;
                plans.push(rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n"));
                let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(explain(unreplaced_sql()))
                    .bind(w.now)
                    .bind(w.expired_since)
                    .bind(w.overdue_until)
                    .bind(w.overdue_permille)
                    .fetch_all(pool)
                    .await?;
                plans.push(rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n"));
                let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(explain(unnoticed_sql()))
                    .bind(w.now)
                    .bind(w.overdue_until)
                    .bind(Some(w.overdue_permille))
                    .bind(w.now)
                    .bind("certificate.overdue")
                    .bind(100_i64)
                    .fetch_all(pool)
                    .await?;
                plans.push(rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n"));
            }
        }
        Ok(plans)
    }
}
