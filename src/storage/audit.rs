//! The audit log: who did what to which object, written in the same
//! transaction as the change itself.

use super::{AdminStore, StoreError, begin_write, with_pool};

/// An event about to be recorded.
#[derive(Debug, Clone)]
pub struct NewAuditEvent {
    pub at: i64,
    pub actor: String,
    pub action: &'static str,
    pub target: String,
    pub detail: serde_json::Value,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditEvent {
    pub id: i64,
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub target: String,
    pub detail: String,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub target: Option<String>,
    /// Newest first: only events with a smaller id.
    pub before_id: Option<i64>,
}

/// Inserts an audit event with the given executor (usually a transaction).
macro_rules! insert_audit {
    ($executor:expr, $event:expr) => {
        sqlx::query("INSERT INTO audit_events (at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5)")
            .bind($event.at)
            .bind(&$event.actor)
            .bind($event.action)
            .bind(&$event.target)
            .bind($event.detail.to_string())
            .execute($executor)
            .await
    };
}
pub(crate) use insert_audit;

impl AdminStore {
    pub async fn record_audit(&self, event: &NewAuditEvent) -> Result<(), StoreError> {
        with_pool!(self.db(), pool => insert_audit!(pool, event).map(|_| ()).map_err(StoreError::from))
    }

    /// Records events that belong to no other change, in one transaction.
    pub async fn record_audit_events(&self, events: &[NewAuditEvent]) -> Result<(), StoreError> {
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await?;
            for event in events {
                insert_audit!(&mut *tx, event)?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn list_audit_events(&self, filter: &AuditFilter, limit: i64) -> Result<Vec<AuditEvent>, StoreError> {
        // A generic plan (see `Db::connect`) uses `audit_events_action`
        // only for a condition always there, so the action's is written in
        // only when it is asked for.
        let action = if filter.action.is_some() { "action = $1" } else { "$1 IS NULL" };
        let sql = format!(
            "SELECT id, at, actor, action, target, detail FROM audit_events \
             WHERE {action} AND ($2 IS NULL OR target = $2) AND id < COALESCE($3, 9223372036854775807) \
             ORDER BY id DESC LIMIT $4"
        );
        with_pool!(self.db(), pool => sqlx::query_as::<_, AuditEvent>(sqlx::AssertSqlSafe(sql))
            .bind(&filter.action)
            .bind(&filter.target)
            .bind(filter.before_id)
            .bind(limit)
            .fetch_all(pool)
            .await
            .map_err(StoreError::from))
    }
}
