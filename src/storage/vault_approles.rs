//! AppRoles of the Vault-compatible API: a role id (an identifier) names
//! the policies a login's token is bound to; secret ids are stored only as
//! SHA-256 hashes, with an expiry and a number of logins left.

use super::audit::insert_audit;
use super::{AdminStore, NewAuditEvent, StoreError, begin_write, with_pool};

#[derive(Debug, Clone)]
pub struct ApproleRecord {
    pub id: i64,
    pub name: String,
    pub role_id: String,
    pub policies: Vec<String>,
    /// Seconds a secret id lives; `None`: until revoked.
    pub secret_id_ttl: Option<i64>,
    /// Logins one secret id allows; `None`: any number.
    pub secret_id_num_uses: Option<i64>,
    pub created_at: i64,
}

/// A new AppRole as stored: everything but the id.
#[derive(Debug)]
pub struct NewApprole<'a> {
    pub name: &'a str,
    pub role_id: &'a str,
    pub policies: &'a [String],
    pub secret_id_ttl: Option<i64>,
    pub secret_id_num_uses: Option<i64>,
    pub created_at: i64,
}

#[derive(sqlx::FromRow)]
struct ApproleRow {
    id: i64,
    name: String,
    role_id: String,
    policies: String,
    secret_id_ttl: Option<i64>,
    secret_id_num_uses: Option<i64>,
    created_at: i64,
}

impl TryFrom<ApproleRow> for ApproleRecord {
    type Error = StoreError;

    fn try_from(row: ApproleRow) -> Result<Self, StoreError> {
        let policies = serde_json::from_str(&row.policies)
            .map_err(|e| StoreError::Other(format!("AppRole {} policies: {e}", row.name)))?;
        Ok(Self {
            id: row.id,
            name: row.name,
            role_id: row.role_id,
            policies,
            secret_id_ttl: row.secret_id_ttl,
            secret_id_num_uses: row.secret_id_num_uses,
            created_at: row.created_at,
        })
    }
}

const COLUMNS: &str = "a.id, a.name, a.role_id, a.policies, a.secret_id_ttl, a.secret_id_num_uses, a.created_at";

#[derive(sqlx::FromRow)]
struct SecretRow {
    secret_id: i64,
    expires_at: Option<i64>,
    uses_left: Option<i64>,
    #[sqlx(flatten)]
    approle: ApproleRow,
}

impl AdminStore {
    /// Stores an AppRole with its audit event; a taken name is `Conflict`.
    pub async fn insert_approle(&self, new: &NewApprole<'_>, audit: &NewAuditEvent) -> Result<(), StoreError> {
        let policies = serde_json::to_string(new.policies).map_err(|e| StoreError::Other(e.to_string()))?;
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await?;
            sqlx::query(
                "INSERT INTO vault_approles (name, role_id, policies, secret_id_ttl, secret_id_num_uses, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(new.name).bind(new.role_id).bind(&policies).bind(new.secret_id_ttl)
            .bind(new.secret_id_num_uses).bind(new.created_at)
            .execute(&mut *tx).await?;
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn approle(&self, name: &str) -> Result<ApproleRecord, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM vault_approles a WHERE a.name = $1");
        let row = with_pool!(self.db(), pool => sqlx::query_as::<_, ApproleRow>(sqlx::AssertSqlSafe(sql))
            .bind(name).fetch_one(pool).await)?;
        row.try_into()
    }

    /// Stores the hash of a new secret id of AppRole `approle_id`.
    pub async fn insert_approle_secret_id(
        &self,
        approle_id: i64,
        secret_hash: &[u8],
        created_at: i64,
        expires_at: Option<i64>,
        uses_left: Option<i64>,
        audit: &NewAuditEvent,
    ) -> Result<(), StoreError> {
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await?;
            sqlx::query(
                "INSERT INTO vault_approle_secret_ids (approle_id, secret_hash, created_at, expires_at, uses_left) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(approle_id).bind(secret_hash).bind(created_at).bind(expires_at).bind(uses_left)
            .execute(&mut *tx).await?;
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// Spends one login of the secret id with this hash under the role id:
    /// the AppRole, or `None` when the pair is unknown, expired or used up.
    /// Two logins with the last use take turns; one of them gets `None`.
    pub async fn use_approle_secret_id(
        &self,
        role_id: &str,
        secret_hash: &[u8],
        now: i64,
    ) -> Result<Option<ApproleRecord>, StoreError> {
        let find = format!(
            "SELECT s.id AS secret_id, s.expires_at, s.uses_left, {COLUMNS} \
             FROM vault_approle_secret_ids s JOIN vault_approles a ON a.id = s.approle_id \
             WHERE a.role_id = $1 AND s.secret_hash = $2"
        );
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await?;
            let Some(row) = sqlx::query_as::<_, SecretRow>(sqlx::AssertSqlSafe(find))
                .bind(role_id).bind(secret_hash).fetch_optional(&mut *tx).await?
            else {
                return Ok(None);
            };
            if row.expires_at.is_some_and(|at| at <= now) {
                return Ok(None);
            }
            if row.uses_left.is_some() {
                let spent = sqlx::query(
                    "UPDATE vault_approle_secret_ids SET uses_left = uses_left - 1 WHERE id = $1 AND uses_left > 0",
                )
                .bind(row.secret_id).execute(&mut *tx).await?;
                if spent.rows_affected() == 0 {
                    return Ok(None);
                }
            }
            tx.commit().await?;
            Ok(Some(row.approle.try_into()?))
        })
    }
}
