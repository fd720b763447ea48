//! Admin API tokens. Only a SHA-256 hash of each token is stored; the token
//! itself is shown once, when it is made. A token that can issue is bound
//! to policies (`api_token_policies`).

use super::audit::insert_audit;
use super::{AdminStore, NewAuditEvent, StoreError, begin_write, with_pool};

#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub id: i64,
    pub name: String,
    pub scope: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The policies it is bound to, by name, sorted.
    pub policies: Vec<String>,
}

impl TokenRecord {
    /// Not revoked, and not past its expiry.
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|at| at > now)
    }
}

/// A new token as stored: everything but the id and the bindings' ids.
pub struct NewTokenRecord<'a> {
    pub name: &'a str,
    pub scope: &'a str,
    pub token_hash: &'a [u8],
    pub policies: &'a [String],
    pub created_at: i64,
    pub expires_at: Option<i64>,
}

/// Why a token change was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no token with id {0}")]
    NotFound(i64),
    #[error("token {0} is revoked")]
    Revoked(i64),
    #[error("token {0} has expired")]
    Expired(i64),
    #[error("token {0} is the last live admin token without an expiry")]
    LastAdmin(i64),
    #[error("no policy named {0:?}")]
    UnknownPolicy(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for TokenError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(e.into())
    }
}

/// One row per binding (one row with no policy for an unbound token).
#[derive(sqlx::FromRow)]
struct TokenRow {
    id: i64,
    name: String,
    scope: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    policy: Option<String>,
}

/// Tokens with their bindings, from rows of `FROM {tokens} t`, where
/// `{tokens}` is the table or a page of it; the caller adds the filter and
/// orders by `t.id, p.name`.
const SELECT: &str = "SELECT t.id, t.name, t.scope, t.created_at, t.expires_at, t.revoked_at, p.name AS policy \
     FROM {tokens} t \
     LEFT JOIN api_token_policies b ON b.token_id = t.id \
     LEFT JOIN policies p ON p.id = b.policy_id";

fn select(tokens: &str, rest: &str) -> String {
    format!("{} {rest}", SELECT.replace("{tokens}", tokens))
}

/// Folds rows ordered by token id into one record per token.
fn records(rows: Vec<TokenRow>) -> Vec<TokenRecord> {
    let mut out: Vec<TokenRecord> = Vec::new();
    for row in rows {
        match out.last_mut() {
            Some(last) if last.id == row.id => last.policies.extend(row.policy),
            _ => out.push(TokenRecord {
                id: row.id,
                name: row.name,
                scope: row.scope,
                created_at: row.created_at,
                expires_at: row.expires_at,
                revoked_at: row.revoked_at,
                policies: row.policy.into_iter().collect(),
            }),
        }
    }
    out
}

/// Binds token `$id` to each named policy, failing on a name no policy has.
macro_rules! bind_policies {
    ($tx:expr, $id:expr, $policies:expr) => {
        for policy in $policies {
            let done = sqlx::query(
                "INSERT INTO api_token_policies (token_id, policy_id) SELECT $1, id FROM policies WHERE name = $2",
            )
            .bind($id)
            .bind(policy)
            .execute(&mut *$tx)
            .await;
            // A foreign key violation: the policy was deleted meanwhile.
            match done {
                Ok(done) if done.rows_affected() > 0 => {}
                Ok(_) => return Err(TokenError::UnknownPolicy(policy.clone())),
                Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                    return Err(TokenError::UnknownPolicy(policy.clone()));
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
}

/// The token with this id, read with the given executor.
macro_rules! token_by_id {
    ($executor:expr, $id:expr) => {
        sqlx::query_as::<_, TokenRow>(sqlx::AssertSqlSafe(select("api_tokens", "WHERE t.id = $1 ORDER BY p.name")))
            .bind($id)
            .fetch_all($executor)
            .await
            .map(|rows| records(rows).pop())
    };
}

impl AdminStore {
    /// Stores a token, its bindings and its audit event in one transaction.
    pub async fn insert_token(
        &self,
        new: &NewTokenRecord<'_>,
        audit: &NewAuditEvent,
    ) -> Result<TokenRecord, TokenError> {
        const SQL: &str = "INSERT INTO api_tokens (name, scope, token_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id";
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await?;
            let id: i64 = sqlx::query_scalar(SQL)
                .bind(new.name).bind(new.scope).bind(new.token_hash).bind(new.created_at).bind(new.expires_at)
                .fetch_one(&mut *tx).await?;
            bind_policies!(tx, id, new.policies);
            insert_audit!(&mut *tx, audit)?;
            let record = token_by_id!(&mut *tx, id)?.ok_or(TokenError::NotFound(id))?;
            tx.commit().await?;
            Ok(record)
        })
    }

    /// The token with this hash, revoked and expired ones included: the
    /// caller tells them apart to record why it refused one.
    pub async fn token_by_hash(&self, token_hash: &[u8]) -> Result<Option<TokenRecord>, StoreError> {
        let sql = select("api_tokens", "WHERE t.token_hash = $1 ORDER BY p.name");
        with_pool!(self.db(), pool => sqlx::query_as::<_, TokenRow>(sqlx::AssertSqlSafe(sql))
            .bind(token_hash).fetch_all(pool).await.map(|rows| records(rows).pop()).map_err(StoreError::from))
    }

    pub async fn token(&self, id: i64) -> Result<TokenRecord, TokenError> {
        with_pool!(self.db(), pool => token_by_id!(pool, id)?.ok_or(TokenError::NotFound(id)))
    }

    pub async fn list_tokens(&self, after_id: Option<i64>, limit: i64) -> Result<Vec<TokenRecord>, StoreError> {
        let page = "(SELECT id, name, scope, created_at, expires_at, revoked_at FROM api_tokens WHERE ($1 IS NULL OR id > $1) ORDER BY id LIMIT $2)";
        let sql = select(page, "ORDER BY t.id, p.name");
        with_pool!(self.db(), pool => sqlx::query_as::<_, TokenRow>(sqlx::AssertSqlSafe(sql))
            .bind(after_id).bind(limit).fetch_all(pool).await.map(records).map_err(StoreError::from))
    }

    /// Replaces the bindings of a live token, with its audit event.
    pub async fn replace_token_policies(
        &self,
        id: i64,
        policies: &[String],
        now: i64,
        audit: &NewAuditEvent,
    ) -> Result<TokenRecord, TokenError> {
        // Two rebinds of one token take turns, so the second replaces the
        // first's bindings instead of adding to them.
        let lock = format!("SELECT id FROM api_tokens WHERE id = $1{}", self.db().row_lock());
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await?;
            sqlx::query(sqlx::AssertSqlSafe(lock)).bind(id).execute(&mut *tx).await?;
            let current = token_by_id!(&mut *tx, id)?.ok_or(TokenError::NotFound(id))?;
            if current.revoked_at.is_some() {
                return Err(TokenError::Revoked(id));
            }
            if !current.is_live(now) {
                return Err(TokenError::Expired(id));
            }
            sqlx::query("DELETE FROM api_token_policies WHERE token_id = $1").bind(id).execute(&mut *tx).await?;
            bind_policies!(tx, id, policies);
            let mut audit = audit.clone();
            audit.detail["previous"] = current.policies.into();
            insert_audit!(&mut *tx, audit)?;
            let record = token_by_id!(&mut *tx, id)?.ok_or(TokenError::NotFound(id))?;
            tx.commit().await?;
            Ok(record)
        })
    }

    /// Revokes a token. At least one live admin token without an expiry
    /// always remains, so the API cannot lock its operators out: revoking
    /// the last one is refused.
    pub async fn revoke_token(&self, id: i64, now: i64, audit: &NewAuditEvent) -> Result<TokenRecord, TokenError> {
        // The lock makes two revocations of the last two such tokens take
        // turns, so the second sees the first.
        let lasting_admins = format!(
            "SELECT id FROM api_tokens WHERE scope = 'admin' AND revoked_at IS NULL AND expires_at IS NULL{}",
            self.db().row_lock()
        );
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await?;
            let current = token_by_id!(&mut *tx, id)?.ok_or(TokenError::NotFound(id))?;
            if current.revoked_at.is_some() {
                return Err(TokenError::Revoked(id));
            }
            if current.scope == "admin" && current.expires_at.is_none() {
                let ids: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(lasting_admins))
                    .fetch_all(&mut *tx).await?;
                if ids.iter().all(|other| *other == id) {
                    return Err(TokenError::LastAdmin(id));
                }
            }
            let done = sqlx::query("UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                .bind(id).bind(now).execute(&mut *tx).await?;
            if done.rows_affected() == 0 {
                return Err(TokenError::Revoked(id));
            }
            insert_audit!(&mut *tx, audit)?;
            let record = token_by_id!(&mut *tx, id)?.ok_or(TokenError::NotFound(id))?;
            tx.commit().await?;
            Ok(record)
        })
    }
}
