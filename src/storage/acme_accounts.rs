//! ACME accounts (RFC 8555 §7.3): a public key, its contact and the policy
//! scope it inherited from the EAB key it was made with.

use super::audit::insert_audit;
use super::status::sql::ACCOUNT_VALID;
use super::{AccountStatus, AcmeStore, NewAuditEvent, StoreError, begin_write, sql, with_pool};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AcmeAccountRecord {
    pub id: i64,
    pub directory: String,
    pub thumbprint: String,
    /// The account key as a JWK (JSON text).
    pub jwk: String,
    #[sqlx(try_from = "String")]
    pub status: AccountStatus,
    /// JSON array of contact URLs.
    pub contact: String,
    pub policy: String,
    pub eab_key_id: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewAcmeAccount {
    pub directory: String,
    pub thumbprint: String,
    pub jwk: String,
    pub contact: String,
    pub policy: String,
    /// The EAB key to bind; it must be live and below its account cap
    /// (a single-use key: unused).
    pub eab_key_id: Option<i64>,
    pub created_at: i64,
}

/// Why an account could not be made.
#[derive(Debug, thiserror::Error)]
pub enum NewAccountError {
    #[error("the EAB key is revoked or already bound")]
    EabKeyUnavailable,
    /// A reusable key has bound as many accounts as it may.
    #[error("the EAB key has bound its {max_accounts} accounts")]
    EabKeyFull { max_accounts: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub(super) const COLUMNS: &str = "id, directory, thumbprint, jwk, status, contact, policy, eab_key_id, created_at";

impl AcmeStore {
    /// Makes an account and binds its EAB key in one transaction, so a
    /// single-use key binds exactly one account, and a reusable one at most
    /// its `max_accounts`, even under races.
    pub async fn insert_acme_account(
        &self,
        account: &NewAcmeAccount,
        audit: &NewAuditEvent,
    ) -> Result<AcmeAccountRecord, NewAccountError> {
        const BIND: &str = "UPDATE eab_keys SET bound_at = COALESCE(bound_at, $2), bound_count = bound_count + 1 \
             WHERE id = $1 AND revoked_at IS NULL AND (reusable OR bound_at IS NULL) AND bound_count < max_accounts";
        const FULL: &str = "SELECT max_accounts FROM eab_keys WHERE id = $1 AND revoked_at IS NULL AND reusable";
        let insert = sql!(
            "INSERT INTO acme_accounts (directory, thumbprint, jwk, status, contact, policy, eab_key_id, created_at) \
             VALUES ($1, $2, $3, {ACCOUNT_VALID}, $4, $5, $6, $7) RETURNING {COLUMNS}"
        );
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await.map_err(StoreError::from)?;
            if let Some(key) = account.eab_key_id {
                let bound = sqlx::query(BIND).bind(key).bind(account.created_at).execute(&mut *tx).await
                    .map_err(StoreError::from)?;
                if bound.rows_affected() != 1 {
                    let full: Option<i64> = sqlx::query_scalar(FULL).bind(key).fetch_optional(&mut *tx).await
                        .map_err(StoreError::from)?;
                    return Err(match full {
                        Some(max_accounts) => NewAccountError::EabKeyFull { max_accounts },
                        None => NewAccountError::EabKeyUnavailable,
                    });
                }
            }
            let record = sqlx::query_as::<_, AcmeAccountRecord>(insert)
                .bind(&account.directory)
                .bind(&account.thumbprint)
                .bind(&account.jwk)
                .bind(&account.contact)
                .bind(&account.policy)
                .bind(account.eab_key_id)
                .bind(account.created_at)
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::from)?;
            let mut audit = audit.clone();
            audit.target = format!("acme-account:{}", record.id);
            insert_audit!(&mut *tx, audit).map_err(StoreError::from)?;
            tx.commit().await.map_err(StoreError::from)?;
            Ok(record)
        })
    }

    pub async fn acme_account(&self, id: i64) -> Result<Option<AcmeAccountRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM acme_accounts WHERE id = $1");
        with_pool!(self.db(), pool => sqlx::query_as::<_, AcmeAccountRecord>(sqlx::AssertSqlSafe(sql))
            .bind(id).fetch_optional(pool).await.map_err(StoreError::from))
    }

    pub async fn acme_account_by_key(
        &self,
        directory: &str,
        thumbprint: &str,
    ) -> Result<Option<AcmeAccountRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM acme_accounts WHERE directory = $1 AND thumbprint = $2");
        with_pool!(self.db(), pool => sqlx::query_as::<_, AcmeAccountRecord>(sqlx::AssertSqlSafe(sql))
            .bind(directory).bind(thumbprint).fetch_optional(pool).await.map_err(StoreError::from))
    }

    /// Sets the contact list and/or the status of a valid account.
    pub async fn update_acme_account(
        &self,
        id: i64,
        contact: Option<&str>,
        status: Option<AccountStatus>,
        audit: &NewAuditEvent,
    ) -> Result<AcmeAccountRecord, StoreError> {
        let sql = sql!(
            "UPDATE acme_accounts SET contact = COALESCE($2, contact), status = COALESCE($3, status) \
             WHERE id = $1 AND status = {ACCOUNT_VALID} RETURNING {COLUMNS}"
        );
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await?;
            let record = sqlx::query_as::<_, AcmeAccountRecord>(sql)
                .bind(id).bind(contact).bind(status.map(AccountStatus::as_str))
                .fetch_optional(&mut *tx).await?
                .ok_or_else(|| StoreError::Conflict("the account is not valid".into()))?;
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await?;
            Ok(record)
        })
    }

    /// Replaces the account key (§7.3.5). A key another account in the same
    /// directory already uses is a Conflict.
    pub async fn change_acme_account_key(
        &self,
        id: i64,
        old_thumbprint: &str,
        thumbprint: &str,
        jwk: &str,
        audit: &NewAuditEvent,
    ) -> Result<AcmeAccountRecord, StoreError> {
        let sql = sql!(
            "UPDATE acme_accounts SET thumbprint = $3, jwk = $4 \
             WHERE id = $1 AND thumbprint = $2 AND status = {ACCOUNT_VALID} RETURNING {COLUMNS}"
        );
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await?;
            let record = sqlx::query_as::<_, AcmeAccountRecord>(sql)
                .bind(id).bind(old_thumbprint).bind(thumbprint).bind(jwk)
                .fetch_optional(&mut *tx).await?
                .ok_or_else(|| StoreError::Conflict("the account key changed meanwhile".into()))?;
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await?;
            Ok(record)
        })
    }
}
