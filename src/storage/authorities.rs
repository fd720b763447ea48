//! Certificate authorities: the root and the issuing CAs under it.

use super::audit::insert_audit;
use super::status::sql::{AUTHORITY_ACTIVE, AUTHORITY_RETIRED, CERT_REVOKED};
use super::{
    AuthorityStatus, AuthorityStore, Catalog, NewAuditEvent, SealedKey, StoreError, begin_write, sql, with_pool,
};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuthorityRecord {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub parent_id: Option<i64>,
    pub key_uri: String,
    pub algorithm: String,
    pub certificate_der: Vec<u8>,
    pub serial: Vec<u8>,
    pub ski: Vec<u8>,
    pub subject: String,
    pub not_before: i64,
    pub not_after: i64,
    #[sqlx(try_from = "String")]
    pub status: AuthorityStatus,
    pub created_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewAuthority {
    pub name: String,
    pub kind: &'static str,
    pub parent_id: Option<i64>,
    pub key_uri: String,
    pub algorithm: String,
    pub certificate_der: Vec<u8>,
    pub serial: Vec<u8>,
    pub ski: Vec<u8>,
    pub subject: String,
    pub not_before: i64,
    pub not_after: i64,
    pub created_at: i64,
    /// On a root made by setup: `dev` (the dev bootstrap) or `production`
    /// (`tessera init`).
    pub setup_mode: Option<&'static str>,
}

const COLUMNS: &str = "id, name, kind, parent_id, key_uri, algorithm, certificate_der, serial, ski, subject, \
                       not_before, not_after, status, created_at";

/// Inserts a [`NewAuthority`] in a transaction, returning its id: the one
/// statement and binding behind both a new hierarchy and a rotation.
macro_rules! insert_new_authority {
    ($executor:expr, $authority:expr) => {{
        const SQL: &str = "INSERT INTO authorities (name, kind, parent_id, key_uri, algorithm, certificate_der, \
             serial, ski, subject, not_before, not_after, created_at, setup_mode) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id";
        let authority: &NewAuthority = $authority;
        sqlx::query_scalar::<_, i64>(SQL)
            .bind(&authority.name)
            .bind(authority.kind)
            .bind(authority.parent_id)
            .bind(&authority.key_uri)
            .bind(&authority.algorithm)
            .bind(&authority.certificate_der)
            .bind(&authority.serial)
            .bind(&authority.ski)
            .bind(&authority.subject)
            .bind(authority.not_before)
            .bind(authority.not_after)
            .bind(authority.created_at)
            .bind(authority.setup_mode)
            .fetch_one($executor)
            .await
    }};
}

impl AuthorityStore {
    /// Records a new CA and its audit event; a name already taken is a conflict.
    pub async fn insert_authority(&self, authority: &NewAuthority, audit: &NewAuditEvent) -> Result<i64, StoreError> {
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await?;
            let id = insert_new_authority!(&mut *tx, authority)?;
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await?;
            Ok(id)
        })
    }

    /// Records a rotation in one transaction: the predecessor is retired
    /// (it must still be active, else Conflict: someone rotated it first),
    /// the successor is recorded with its sealed key if it has one (a
    /// software key every node must open), and the audit event is written.
    pub async fn rotate_authority(
        &self,
        predecessor_id: i64,
        successor: &NewAuthority,
        sealed_key: Option<&SealedKey>,
        audit: &NewAuditEvent,
    ) -> Result<i64, StoreError> {
        let retire =
            sql!("UPDATE authorities SET status = {AUTHORITY_RETIRED} WHERE id = $1 AND status = {AUTHORITY_ACTIVE}");
        const KEY: &str = "INSERT INTO authority_keys (name, pkcs8, sealed_with, created_at) VALUES ($1, $2, $3, $4)";
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await?;
            let retired = sqlx::query(retire).bind(predecessor_id).execute(&mut *tx).await?;
            if retired.rows_affected() != 1 {
                return Err(StoreError::Conflict(format!("authority {predecessor_id} is not active")));
            }
            let id = insert_new_authority!(&mut *tx, successor)?;
            if let Some(key) = sealed_key {
                sqlx::query(KEY)
                    .bind(&key.name)
                    .bind(&key.value.bytes)
                    .bind(&key.value.key_id)
                    .bind(successor.created_at)
                    .execute(&mut *tx)
                    .await?;
            }
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await?;
            Ok(id)
        })
    }
}

impl Catalog {
    /// Whether `tessera init` made this database's hierarchy.
    pub async fn has_production_hierarchy(&self) -> Result<bool, StoreError> {
        const SQL: &str = "SELECT COUNT(*) FROM authorities WHERE setup_mode = 'production'";
        let count: i64 = with_pool!(self.db(), pool => sqlx::query_scalar(SQL).fetch_one(pool).await?);
        Ok(count > 0)
    }

    pub async fn list_authorities(&self) -> Result<Vec<AuthorityRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM authorities ORDER BY id");
        with_pool!(self.db(), pool => sqlx::query_as::<_, AuthorityRecord>(sqlx::AssertSqlSafe(sql))
            .fetch_all(pool).await.map_err(StoreError::from))
    }

    pub async fn authority(&self, id: i64) -> Result<AuthorityRecord, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM authorities WHERE id = $1");
        with_pool!(self.db(), pool => sqlx::query_as::<_, AuthorityRecord>(sqlx::AssertSqlSafe(sql))
            .bind(id).fetch_one(pool).await.map_err(StoreError::from))
    }

    /// Certificates of every authority a relying party may meet today: not
    /// expired, and not revoked by their parent. Roots first, then by id.
    pub async fn trusted_authority_certificates(&self, now: i64) -> Result<Vec<Vec<u8>>, StoreError> {
        let sql = sql!(
            "SELECT a.certificate_der FROM authorities a \
             LEFT JOIN certificates c ON c.serial = a.serial AND a.parent_id IS NOT NULL \
             WHERE a.not_after > $1 AND (c.status IS NULL OR c.status <> {CERT_REVOKED}) \
             ORDER BY CASE WHEN a.parent_id IS NULL THEN 0 ELSE 1 END, a.id"
        );
        with_pool!(self.db(), pool => sqlx::query_scalar::<_, Vec<u8>>(sql)
            .bind(now).fetch_all(pool).await.map_err(StoreError::from))
    }
}
