//! Storage: the only module that speaks SQL. PostgreSQL in production,
//! SQLite as the embedded default. [`Db`] connects and migrates; each
//! component holds a narrow view of it (`views`: [`IssuanceLedger`],
//! [`AcmeStore`], [`RevocationStore`]...), with only the methods it needs.
//! Both backends run the same SQL text (`$n` placeholders, Unix-second
//! timestamps); each has its own migrations.
//!
//! Architecture invariant: every change and its audit event are written in
//! one transaction.

mod acme_accounts;
mod acme_new_orders;
mod acme_orders;
mod audit;
mod authorities;
mod batch;
mod blocked_keys;
mod certificates;
mod eab_keys;
mod idempotency;
mod interrupted;
mod lifecycle;
mod nonces;
mod policies;
mod renewal_pulls;
mod retention;
mod revocation;
mod sealing;
mod search_names;
#[cfg(feature = "test-support")]
mod seed;
mod status;
#[cfg(feature = "test-support")]
mod test_support;
mod tokens;
mod vault_approles;
mod views;

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Database, PgPool, Pool, SqlitePool, Transaction};

pub use acme_accounts::{AcmeAccountRecord, NewAccountError, NewAcmeAccount};
pub use acme_new_orders::{Admission, NewAcmeAuthz, NewAcmeOrder, OrderLimits, OrderRequest, RateLimited};
pub use acme_orders::{
    AcmeAuthzRecord, AcmeChallengeRecord, AcmeOrderRecord, AuthzKey, AuthzWithChallenges, OrderWithAuthzIds,
    StalledChallenge, ValidationOutcome,
};
pub use audit::{AuditEvent, AuditFilter, NewAuditEvent};
pub use authorities::{AuthorityRecord, NewAuthority};
pub use batch::Batcher;
pub use blocked_keys::UnsweptKey;
pub use certificates::{
    CertificateFilter, CertificateRecord, IssuedRecord, KEY_COMPROMISE, PendingCertificate, Reservation, Reserved,
    RevokedCertificate, Succession, key_type_code,
};
pub use eab_keys::{AccountCap, EabKeyRecord, EabKeySecret};
pub use idempotency::{IdempotencyClaim, IdempotencyKey};
pub use interrupted::SettledIssuance;
pub use lifecycle::{
    ExpirationCounts, ExpiryWindows, JobRecord, LifecycleEvent, UnreplacedCertificate, WebhookOutcome,
};
pub use nonces::SpentNonces;
pub use policies::PolicyRecord;
pub use retention::{Pruned, Retention};
pub use revocation::{CertificateStatusRow, FULL_CRL, RevokedEntry, StoredCrl};
pub use sealing::{SealedKey, SealedValue, SealingKeyRecord, SecretRow, StoredSecret};
#[cfg(feature = "test-support")]
pub use seed::SeedSpec;
pub use status::{
    AccountStatus, AuthorityStatus, AuthzStatus, CertificateKind, CertificateStatus, ChallengeStatus, OrderStatus,
    UnknownStatus,
};
#[cfg(feature = "test-support")]
pub use test_support::WebhookAttempt;
pub use tokens::{NewTokenRecord, TokenError, TokenRecord};
pub use vault_approles::{ApproleRecord, NewApprole};
pub use views::{
    AcmeStore, AdminStore, AuthorityStore, Catalog, IssuanceLedger, JobLeases, LifecycleStore, RevocationStore,
    SecretStore,
};

/// A connection pool on one of the two backends: it connects, migrates
/// and hands out the views (`views`) that components hold.
#[derive(Debug, Clone)]
pub enum Db {
    Postgres(PgPool),
    Sqlite(SqlitePool),
}

/// A CTE that lets its statement's transaction commit without waiting for
/// the WAL flush (`synchronous_commit = off` for that transaction only;
/// reference `async_commit` so that it runs). For writes that a later
/// synchronous commit of the same request follows, or whose loss changes
/// nothing: flushing that later commit flushes the earlier one with it (the
/// WAL is one sequence), so only a crash within a fraction of a second can
/// forget them, and then the request has not been answered. On two cores
/// each flush is a noticeable share of an ACME flow's cost. Used for a
/// nonce's spend (a replay of a request that changed nothing changes
/// nothing) and a certificate's reservation (the certificate is handed
/// out only after its issued record commits synchronously).
const ASYNC_COMMIT: &str = "async_commit AS (SELECT set_config('synchronous_commit', 'off', true))";

/// The rows of a batched statement, which answers one row per input in
/// order: any other count is a bug, reported as an error rather than
/// pairing inputs with the wrong answers.
fn one_row_each<T>(what: &str, inputs: usize, rows: Vec<T>) -> Result<Vec<T>, StoreError> {
    if rows.len() == inputs {
        Ok(rows)
    } else {
        Err(StoreError::Other(format!("{inputs} {what} answered {}", rows.len())))
    }
}

/// A statement's text with status literals (`status::sql`) and column
/// lists written in, as `format!` takes them: formatted once and kept, so
/// every call hands sqlx the same `&'static str`, the key of its
/// prepared-statement cache, at no cost.
macro_rules! sql {
    ($($format:tt)+) => {{
        static TEXT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| format!($($format)+));
        TEXT.as_str()
    }};
}
pub(crate) use sql;

/// Runs the same body on whichever pool is configured.
macro_rules! with_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            crate::storage::Db::Postgres($pool) => $body,
            crate::storage::Db::Sqlite($pool) => $body,
        }
    };
}
pub(crate) use with_pool;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached or is overloaded; retry later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Other(String),
}

impl StoreError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::Conflict(db.message().to_owned()),
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(e.to_string()),
            // SQLITE_BUSY / SQLITE_LOCKED, and PostgreSQL's
            // serialization failures, admin shutdown and too-many-connections.
            sqlx::Error::Database(db)
                if matches!(db.code().as_deref(), Some("5" | "6" | "40001" | "40P01" | "57P01" | "53300")) =>
            {
                Self::Unavailable(e.to_string())
            }
            _ => Self::Other(e.to_string()),
        }
    }
}

/// `url` without its password, for messages and `Debug`.
pub fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("redacted"));
            parsed.into()
        }
        Ok(_) => url.to_owned(),
        // Not a URL a password could be told apart in: show none of it.
        Err(_) => "[unparsable database URL]".to_owned(),
    }
}

/// How to reach the database. Its `Debug` shows no password.
#[derive(Clone)]
pub struct DbOptions {
    pub url: String,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl std::fmt::Debug for DbOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbOptions")
            .field("url", &redact_password(&self.url))
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish()
    }
}

impl DbOptions {
    pub fn new(url: impl Into<String>) -> Self {
        // A few connections per core: measured on 2 cores, 10 connections
        // served 150 full ACME flows/s where 32 served 110 (the extra
        // PostgreSQL backends only contend for the same cores).
        Self { url: url.into(), max_connections: 10, acquire_timeout: Duration::from_secs(5) }
    }
}

impl Db {
    pub async fn connect(options: &DbOptions) -> Result<Self, StoreError> {
        if options.url.starts_with("sqlite:") {
            let connect = SqliteConnectOptions::from_str(&options.url)
                .map_err(|e| StoreError::Other(format!("database_url: {e}")))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .foreign_keys(true)
                // A value replaced in place (a secret sealed at start)
                // leaves no copy in the page's free space.
                .pragma("secure_delete", "FAST")
                .busy_timeout(Duration::from_secs(10));
            make_private(connect.get_filename())?;
            let pool = SqlitePoolOptions::new()
                .max_connections(options.max_connections.min(8))
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await?;
            Ok(Self::Sqlite(pool))
        } else {
            // Every statement is prepared once per connection; left to
            // choose, PostgreSQL re-plans the batched ones (array
            // parameters) on every call, which cost more than running them.
            let connect = PgConnectOptions::from_str(&options.url)
                .map_err(|e| StoreError::Other(format!("database_url: {e}")))?
                .options([("plan_cache_mode", "force_generic_plan")]);
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .connect_with(connect)
                .await?;
            Ok(Self::Postgres(pool))
        }
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        let result = match self {
            Self::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await,
            Self::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await,
        };
        result.map_err(|e| StoreError::Other(format!("migration failed: {e}")))
    }

    /// Applies the migrations up to `version` only: tests use it to write
    /// rows as an older schema had them before a later migration runs.
    pub async fn migrate_until(&self, version: i64) -> Result<(), StoreError> {
        let mut migrator = match self {
            Self::Postgres(_) => sqlx::migrate!("./migrations/postgres"),
            Self::Sqlite(_) => sqlx::migrate!("./migrations/sqlite"),
        };
        migrator.migrations = migrator.migrations.iter().filter(|m| m.version <= version).cloned().collect();
        let result = with_pool!(self, pool => migrator.run(pool).await);
        result.map_err(|e| StoreError::Other(format!("migration failed: {e}")))
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Self::Postgres(_) => "postgres",
            Self::Sqlite(_) => "sqlite",
        }
    }

    pub async fn close(&self) {
        with_pool!(self, pool => pool.close().await)
    }

    /// Locks the rows a statement reads until the transaction ends: on
    /// PostgreSQL `FOR UPDATE`; SQLite's write transaction already holds
    /// the whole database.
    fn row_lock(&self) -> &'static str {
        match self {
            Self::Postgres(_) => " FOR UPDATE",
            Self::Sqlite(_) => "",
        }
    }
}

impl Catalog {
    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        with_pool!(self.db(), pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()).map_err(StoreError::from))
    }
}

/// Creates the SQLite database file readable by its owner only, before
/// SQLite does (it gives its `-wal` and `-shm` files the database file's
/// mode), and restricts the files of a database made before that was so.
/// An in-memory database has no files.
fn make_private(database: &std::path::Path) -> Result<(), StoreError> {
    if database.as_os_str() == ":memory:" || database.to_string_lossy().starts_with("file:") {
        return Ok(());
    }
    let failed = |e: std::io::Error| StoreError::Other(format!("database file {}: {e}", database.display()));
    match crate::private_files::create_private_file(database) {
        Ok(_) => {}
        // A missing directory is SQLite's to report, as before.
        Err(e) if matches!(e.kind(), std::io::ErrorKind::AlreadyExists | std::io::ErrorKind::NotFound) => {}
        Err(e) => return Err(failed(e)),
    }
    for suffix in ["", "-wal", "-shm"] {
        let mut path = database.as_os_str().to_owned();
        path.push(suffix);
        crate::private_files::restrict_to_owner(std::path::Path::new(&path)).map_err(failed)?;
    }
    Ok(())
}

/// Starts a transaction that will write. SQLite takes the write lock up
/// front so two writers never deadlock upgrading a read lock.
async fn begin_write<DB: Database>(pool: &Pool<DB>) -> Result<Transaction<'static, DB>, sqlx::Error> {
    if DB::NAME == "SQLite" { pool.begin_with("BEGIN IMMEDIATE").await } else { pool.begin().await }
}

/// Escapes `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern.
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
