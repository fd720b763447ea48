//! External Account Binding keys (RFC 8555 §7.3.4): an HMAC key an operator
//! hands out, bound to a policy that accounts made with it inherit. The
//! HMAC key is stored sealed (`crate::secrets`), never in the clear.

use super::audit::insert_audit;
use super::status::sql::{ACCOUNT_REVOKED, ACCOUNT_VALID};
use super::{
    AcmeStore, AdminStore, NewAuditEvent, SealedValue, SecretRow, StoreError, StoredSecret, begin_write, sql, with_pool,
};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EabKeyRecord {
    pub id: i64,
    pub kid: String,
    pub policy: String,
    pub reusable: bool,
    pub created_at: i64,
    pub bound_at: Option<i64>,
    pub bound_count: i64,
    /// How many accounts it may bind (1 for a single-use key).
    pub max_accounts: i64,
    pub revoked_at: Option<i64>,
}

/// A key with its sealed secret, for MAC verification only.
#[derive(Clone, sqlx::FromRow)]
pub struct EabKeySecret {
    pub id: i64,
    pub kid: String,
    hmac_key: Vec<u8>,
    sealed_with: Option<String>,
    pub policy: String,
    pub reusable: bool,
    pub bound_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl EabKeySecret {
    /// The HMAC key as stored, to be opened by `crate::secrets`.
    pub fn hmac_key(&self) -> StoredSecret {
        StoredSecret {
            row: SecretRow::EabHmacKey(self.kid.clone()),
            value: self.hmac_key.clone(),
            sealed_with: self.sealed_with.clone(),
        }
    }
}

impl std::fmt::Debug for EabKeySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EabKeySecret").field("kid", &self.kid).field("policy", &self.policy).finish_non_exhaustive()
    }
}

/// How many accounts an EAB key may bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountCap {
    SingleUse,
    Reusable { max_accounts: i64 },
}

impl AccountCap {
    pub fn max_accounts(self) -> i64 {
        match self {
            Self::SingleUse => 1,
            Self::Reusable { max_accounts } => max_accounts,
        }
    }
}

const COLUMNS: &str = "id, kid, policy, reusable, created_at, bound_at, bound_count, max_accounts, revoked_at";

impl AdminStore {
    /// Records a key whose HMAC key was sealed for `SecretRow::EabHmacKey(kid)`.
    pub async fn insert_eab_key(
        &self,
        kid: &str,
        hmac_key: &SealedValue,
        policy: &str,
        cap: AccountCap,
        now: i64,
        audit: &NewAuditEvent,
    ) -> Result<EabKeyRecord, StoreError> {
        let sql = format!(
            "INSERT INTO eab_keys (kid, hmac_key, sealed_with, policy, reusable, created_at, max_accounts) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}"
        );
        let reusable = matches!(cap, AccountCap::Reusable { .. });
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await?;
            let record = sqlx::query_as::<_, EabKeyRecord>(sqlx::AssertSqlSafe(sql))
                .bind(kid).bind(&hmac_key.bytes).bind(&hmac_key.key_id).bind(policy).bind(reusable).bind(now)
                .bind(cap.max_accounts())
                .fetch_one(&mut *tx).await?;
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await?;
            Ok(record)
        })
    }

    pub async fn list_eab_keys(&self, after_id: Option<i64>, limit: i64) -> Result<Vec<EabKeyRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM eab_keys WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2");
        with_pool!(self.db(), pool => sqlx::query_as::<_, EabKeyRecord>(sqlx::AssertSqlSafe(sql))
            .bind(after_id).bind(limit).fetch_all(pool).await.map_err(StoreError::from))
    }

    /// Revokes a key so no further account can bind it, and revokes the
    /// accounts bound to it (their scope came from the key). Returns the key
    /// and how many accounts lost it. Unknown kid: NotFound; already
    /// revoked: Conflict.
    pub async fn revoke_eab_key(
        &self,
        kid: &str,
        now: i64,
        audit: &NewAuditEvent,
    ) -> Result<(EabKeyRecord, u64), StoreError> {
        let accounts = sql!(
            "UPDATE acme_accounts SET status = {ACCOUNT_REVOKED} WHERE eab_key_id = $1 AND status = {ACCOUNT_VALID}"
        );
        let sql =
            format!("UPDATE eab_keys SET revoked_at = $2 WHERE kid = $1 AND revoked_at IS NULL RETURNING {COLUMNS}");
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await?;
            let record = sqlx::query_as::<_, EabKeyRecord>(sqlx::AssertSqlSafe(sql))
                .bind(kid).bind(now).fetch_optional(&mut *tx).await?;
            let Some(record) = record else {
                let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM eab_keys WHERE kid = $1")
                    .bind(kid).fetch_optional(&mut *tx).await?;
                return Err(if exists.is_some() {
                    StoreError::Conflict("the EAB key is already revoked".into())
                } else {
                    StoreError::NotFound
                });
            };
            let accounts = sqlx::query(accounts).bind(record.id).execute(&mut *tx).await?.rows_affected();
            let mut audit = audit.clone();
            audit.detail["accounts_revoked"] = accounts.into();
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await?;
            Ok((record, accounts))
        })
    }

    /// The policy of a key, for a token's binding check.
    pub async fn eab_key_policy(&self, kid: &str) -> Result<Option<String>, StoreError> {
        with_pool!(self.db(), pool => sqlx::query_scalar("SELECT policy FROM eab_keys WHERE kid = $1")
            .bind(kid).fetch_optional(pool).await.map_err(StoreError::from))
    }
}

impl AcmeStore {
    /// The kid of the key stored as `id`, for the audit of an order it authorized.
    pub async fn eab_key_kid(&self, id: i64) -> Result<Option<String>, StoreError> {
        with_pool!(self.db(), pool => sqlx::query_scalar("SELECT kid FROM eab_keys WHERE id = $1")
            .bind(id).fetch_optional(pool).await.map_err(StoreError::from))
    }

    pub async fn eab_key_secret(&self, kid: &str) -> Result<Option<EabKeySecret>, StoreError> {
        const SQL: &str = "SELECT id, kid, hmac_key, sealed_with, policy, reusable, bound_at, revoked_at \
             FROM eab_keys WHERE kid = $1";
        with_pool!(self.db(), pool => sqlx::query_as::<_, EabKeySecret>(SQL)
            .bind(kid).fetch_optional(pool).await.map_err(StoreError::from))
    }
}
