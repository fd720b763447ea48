//! Admin API tokens. Only a SHA-256 hash of each token is stored; the token
//! itself is shown once, when it is made.

use super::audit::insert_audit;
use super::{Db, NewAuditEvent, StoreError, begin_write, with_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TokenRecord {
    pub id: i64,
    pub name: String,
    pub scope: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str = "id, name, scope, created_at, revoked_at";

impl Db {
    pub async fn insert_token(
        &self,
        name: &str,
        scope: &str,
        token_hash: &[u8],
        now: i64,
        audit: &NewAuditEvent,
    ) -> Result<TokenRecord, StoreError> {
        let sql = format!(
            "INSERT INTO api_tokens (name, scope, token_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING {COLUMNS}"
        );
        with_pool!(self, pool => {
            let mut tx = begin_write(pool).await?;
            let record = sqlx::query_as::<_, TokenRecord>(sqlx::AssertSqlSafe(sql))
                .bind(name).bind(scope).bind(token_hash).bind(now)
                .fetch_one(&mut *tx).await?;
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await?;
            Ok(record)
        })
    }

    /// The live token with this hash, if any (revoked tokens are not found).
    pub async fn active_token_by_hash(&self, token_hash: &[u8]) -> Result<Option<TokenRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE token_hash = $1 AND revoked_at IS NULL");
        with_pool!(self, pool => sqlx::query_as::<_, TokenRecord>(sqlx::AssertSqlSafe(sql))
            .bind(token_hash).fetch_optional(pool).await.map_err(StoreError::from))
    }

    pub async fn list_tokens(&self, after_id: Option<i64>, limit: i64) -> Result<Vec<TokenRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM api_tokens WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2");
        with_pool!(self, pool => sqlx::query_as::<_, TokenRecord>(sqlx::AssertSqlSafe(sql))
            .bind(after_id).bind(limit).fetch_all(pool).await.map_err(StoreError::from))
    }

    pub async fn count_tokens(&self) -> Result<i64, StoreError> {
        with_pool!(self, pool => sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM api_tokens")
            .fetch_one(pool).await.map_err(StoreError::from))
    }

    /// Revokes a live token. Unknown id: NotFound; already revoked: Conflict.
    pub async fn revoke_token(&self, id: i64, now: i64, audit: &NewAuditEvent) -> Result<TokenRecord, StoreError> {
        let sql =
            format!("UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING {COLUMNS}");
        with_pool!(self, pool => {
            let mut tx = begin_write(pool).await?;
            let record = sqlx::query_as::<_, TokenRecord>(sqlx::AssertSqlSafe(sql))
                .bind(id).bind(now).fetch_optional(&mut *tx).await?;
            let Some(record) = record else {
                let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM api_tokens WHERE id = $1")
                    .bind(id).fetch_optional(&mut *tx).await?;
                return Err(if exists.is_some() {
                    StoreError::Conflict("the token is already revoked".into())
                } else {
                    StoreError::NotFound
                });
            };
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await?;
            Ok(record)
        })
    }
}
