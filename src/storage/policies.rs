//! Issuance policies, stored as a name plus JSON rules the authority
//! module owns.

use super::audit::insert_audit;
use super::{AdminStore, Catalog, NewAuditEvent, StoreError, begin_write, with_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PolicyRecord {
    pub id: i64,
    pub name: String,
    pub rules: String,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, name, rules, created_at, updated_at";

impl AdminStore {
    pub async fn insert_policy(
        &self,
        name: &str,
        rules: &str,
        now: i64,
        audit: &NewAuditEvent,
    ) -> Result<PolicyRecord, StoreError> {
        let sql = format!(
            "INSERT INTO policies (name, rules, created_at, updated_at) VALUES ($1, $2, $3, $3) RETURNING {COLUMNS}"
        );
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await?;
            let record = sqlx::query_as::<_, PolicyRecord>(sqlx::AssertSqlSafe(sql))
                .bind(name).bind(rules).bind(now)
                .fetch_one(&mut *tx).await?;
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await?;
            Ok(record)
        })
    }

    pub async fn update_policy(
        &self,
        name: &str,
        rules: &str,
        now: i64,
        audit: &NewAuditEvent,
    ) -> Result<PolicyRecord, StoreError> {
        let sql = format!("UPDATE policies SET rules = $2, updated_at = $3 WHERE name = $1 RETURNING {COLUMNS}");
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await?;
            let record = sqlx::query_as::<_, PolicyRecord>(sqlx::AssertSqlSafe(sql))
                .bind(name).bind(rules).bind(now)
                .fetch_one(&mut *tx).await?;
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await?;
            Ok(record)
        })
    }

    /// Deletes a policy. Refused (Conflict, naming them) while live tokens
    /// are bound to it: the pipelines holding them would stop without a word.
    /// The policy's row is locked first, so a binding made meanwhile is
    /// either seen here or refused.
    pub async fn delete_policy(&self, name: &str, audit: &NewAuditEvent) -> Result<(), StoreError> {
        const BOUND: &str = "SELECT t.name FROM api_token_policies b \
             JOIN api_tokens t ON t.id = b.token_id JOIN policies p ON p.id = b.policy_id \
             WHERE p.name = $1 AND t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > $2) \
             ORDER BY t.id";
        let lock = format!("SELECT id FROM policies WHERE name = $1{}", self.db().row_lock());
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await?;
            sqlx::query(sqlx::AssertSqlSafe(lock)).bind(name).execute(&mut *tx).await?;
            let bound: Vec<String> = sqlx::query_scalar(BOUND).bind(name).bind(audit.at).fetch_all(&mut *tx).await?;
            if !bound.is_empty() {
                return Err(StoreError::Conflict(format!("live tokens are bound to it: {}", bound.join(", "))));
            }
            let done = sqlx::query("DELETE FROM policies WHERE name = $1").bind(name).execute(&mut *tx).await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::NotFound);
            }
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Policies ordered by name, after `after` when given.
    pub async fn list_policies(&self, after: Option<&str>, limit: i64) -> Result<Vec<PolicyRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM policies WHERE ($1 IS NULL OR name > $1) ORDER BY name LIMIT $2");
        with_pool!(self.db(), pool => sqlx::query_as::<_, PolicyRecord>(sqlx::AssertSqlSafe(sql))
            .bind(after).bind(limit).fetch_all(pool).await.map_err(StoreError::from))
    }
}

impl Catalog {
    pub async fn policy(&self, name: &str) -> Result<PolicyRecord, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM policies WHERE name = $1");
        with_pool!(self.db(), pool => sqlx::query_as::<_, PolicyRecord>(sqlx::AssertSqlSafe(sql))
            .bind(name).fetch_one(pool).await.map_err(StoreError::from))
    }
}
