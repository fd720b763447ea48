//! Used ACME nonces and the secrets all nodes share. Handing out a nonce
//! writes nothing (it carries its own MAC); using one inserts it here, so a
//! replay is refused whichever node it reaches.

use super::acme_accounts::COLUMNS as ACCOUNT_COLUMNS;
use super::{AcmeAccountRecord, Db, StoreError, with_pool};

/// Spending a nonce commits without waiting for the WAL flush
/// (`synchronous_commit = off` for that one transaction), which on two cores
/// is a quarter of an ACME flow's cost. Nothing is lost by it: a request that
/// changes anything commits its own change synchronously afterwards, and
/// flushing that commit flushes the earlier nonce row with it (the WAL is
/// one sequence); only a crash within a fraction of a second could forget
/// the spend of a request that changed nothing, whose replay changes
/// nothing either.
const ASYNC_COMMIT: &str = "async_commit AS (SELECT set_config('synchronous_commit', 'off', true))";

impl Db {
    /// Records a nonce as used. False when it was used before.
    pub async fn consume_nonce(&self, nonce: &[u8], expires_at: i64) -> Result<bool, StoreError> {
        const SQL: &str = "INSERT INTO acme_used_nonces (nonce, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING";
        if let Db::Postgres(pool) = self {
            let sql = format!(
                "WITH {ASYNC_COMMIT}, spent AS (INSERT INTO acme_used_nonces (nonce, expires_at) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING RETURNING 1) SELECT (SELECT COUNT(*) FROM spent) FROM async_commit"
            );
            let spent: i64 =
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(nonce).bind(expires_at).fetch_one(pool).await?;
            return Ok(spent == 1);
        }
        with_pool!(self, pool => {
            let done = sqlx::query(SQL).bind(nonce).bind(expires_at).execute(pool).await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Spends a nonce and reads account `account_id` in one round trip
    /// where the backend allows it (PostgreSQL); the first value is false
    /// when the nonce was used before.
    pub async fn consume_nonce_reading_account(
        &self,
        nonce: &[u8],
        expires_at: i64,
        account_id: i64,
    ) -> Result<(bool, Option<AcmeAccountRecord>), StoreError> {
        match self {
            Db::Postgres(pool) => {
                let sql = format!(
                    "WITH {ASYNC_COMMIT}, spent AS (INSERT INTO acme_used_nonces (nonce, expires_at) \
                     VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1) \
                     SELECT (SELECT COUNT(*) FROM spent) AS spent, a.* FROM async_commit \
                     LEFT JOIN (SELECT {ACCOUNT_COLUMNS} FROM acme_accounts WHERE id = $3) a ON true"
                );
                let row = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(nonce)
                    .bind(expires_at)
                    .bind(account_id)
                    .fetch_one(pool)
                    .await?;
                let spent: i64 = sqlx::Row::try_get(&row, "spent")?;
                let id: Option<i64> = sqlx::Row::try_get(&row, "id")?;
                let account = match id {
                    Some(_) => Some(<AcmeAccountRecord as sqlx::FromRow<_>>::from_row(&row)?),
                    None => None,
                };
                Ok((spent == 1, account))
            }
            Db::Sqlite(_) => {
                let fresh = self.consume_nonce(nonce, expires_at).await?;
                Ok((fresh, self.acme_account(account_id).await?))
            }
        }
    }

    /// Forgets used nonces too old to be accepted anyway.
    pub async fn prune_used_nonces(&self, now: i64) -> Result<u64, StoreError> {
        const SQL: &str = "DELETE FROM acme_used_nonces WHERE expires_at < $1";
        with_pool!(self, pool => {
            let done = sqlx::query(SQL).bind(now).execute(pool).await?;
            Ok(done.rows_affected())
        })
    }

    /// The shared secret named `name`, made from `fresh` by the first node
    /// that asks; every later caller gets the same value.
    pub async fn shared_secret(&self, name: &str, fresh: &[u8]) -> Result<Vec<u8>, StoreError> {
        const INSERT: &str = "INSERT INTO acme_secrets (name, value) VALUES ($1, $2) ON CONFLICT DO NOTHING";
        const SELECT: &str = "SELECT value FROM acme_secrets WHERE name = $1";
        with_pool!(self, pool => {
            sqlx::query(INSERT).bind(name).bind(fresh).execute(pool).await?;
            sqlx::query_scalar::<_, Vec<u8>>(SELECT).bind(name).fetch_one(pool).await.map_err(StoreError::from)
        })
    }
}
