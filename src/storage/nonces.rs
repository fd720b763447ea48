//! Used ACME nonces and the secrets all nodes share (stored sealed, see
//! `crate::secrets`). Handing out a nonce writes nothing (it carries its
//! own MAC); using one inserts it here, so a replay is refused whichever
//! node it reaches.

use std::collections::HashSet;

use super::acme_accounts::COLUMNS as ACCOUNT_COLUMNS;
use super::{
    ASYNC_COMMIT, AcmeAccountRecord, AcmeStore, Db, SealedValue, SecretRow, StoreError, StoredSecret, with_pool,
};

/// What spending a batch of nonces found: the nonces that were fresh (the
/// others were used before) and the accounts that were asked for.
#[derive(Debug, Default)]
pub struct SpentNonces {
    pub fresh: HashSet<Vec<u8>>,
    pub accounts: Vec<AcmeAccountRecord>,
}

impl AcmeStore {
    /// Records the distinct `nonces` (with their expiry) as used and reads
    /// the accounts `account_ids`, on PostgreSQL in one statement whatever
    /// the batch size: concurrent requests share it (`acme::nonce_batch`).
    pub async fn spend_nonces(
        &self,
        nonces: &[(Vec<u8>, i64)],
        account_ids: &[i64],
    ) -> Result<SpentNonces, StoreError> {
        match self.db() {
            Db::Postgres(pool) => {
                let sql = format!(
                    "WITH {ASYNC_COMMIT}, spent AS (INSERT INTO acme_used_nonces (nonce, expires_at) \
                     SELECT * FROM unnest($1::BYTEA[], $2::INT8[]) ON CONFLICT DO NOTHING RETURNING nonce) \
                     SELECT (SELECT array_agg(nonce) FROM spent) AS spent, a.* FROM async_commit \
                     LEFT JOIN (SELECT {ACCOUNT_COLUMNS} FROM acme_accounts WHERE id = ANY($3)) a ON true"
                );
                let (values, expiries): (Vec<Vec<u8>>, Vec<i64>) = nonces.iter().cloned().unzip();
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(values)
                    .bind(expiries)
                    .bind(account_ids)
                    .fetch_all(pool)
                    .await?;
                let mut out = SpentNonces::default();
                if let Some(row) = rows.first() {
                    let spent: Option<Vec<Vec<u8>>> = sqlx::Row::try_get(row, "spent")?;
                    out.fresh.extend(spent.unwrap_or_default());
                }
                for row in &rows {
                    if sqlx::Row::try_get::<Option<i64>, _>(row, "id")?.is_some() {
                        out.accounts.push(<AcmeAccountRecord as sqlx::FromRow<_>>::from_row(row)?);
                    }
                }
                Ok(out)
            }
            Db::Sqlite(pool) => {
                const SQL: &str =
                    "INSERT INTO acme_used_nonces (nonce, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING";
                let mut out = SpentNonces::default();
                for (nonce, expires_at) in nonces {
                    let done = sqlx::query(SQL).bind(nonce).bind(expires_at).execute(pool).await?;
                    if done.rows_affected() == 1 {
                        out.fresh.insert(nonce.clone());
                    }
                }
                for id in account_ids {
                    out.accounts.extend(self.acme_account(*id).await?);
                }
                Ok(out)
            }
        }
    }

    /// The shared secret named `name`, stored from `fresh` (sealed for
    /// `SecretRow::SharedSecret(name)`) by the first node that asks; every
    /// later caller gets the same one.
    pub async fn shared_secret(&self, name: &str, fresh: &SealedValue) -> Result<StoredSecret, StoreError> {
        const INSERT: &str =
            "INSERT INTO acme_secrets (name, value, sealed_with) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
        const SELECT: &str = "SELECT value, sealed_with FROM acme_secrets WHERE name = $1";
        let (value, sealed_with): (Vec<u8>, Option<String>) = with_pool!(self.db(), pool => {
            sqlx::query(INSERT).bind(name).bind(&fresh.bytes).bind(&fresh.key_id).execute(pool).await?;
            sqlx::query_as(SELECT).bind(name).fetch_one(pool).await?
        });
        Ok(StoredSecret { row: SecretRow::SharedSecret(name.to_owned()), value, sealed_with })
    }
}
