//! What revocation reads and writes: revoked entries per CRL scope, CRL
//! numbers, the newest CRL per scope, and the status rows OCSP answers from.

use super::status::sql::{CERT_ISSUED, CERT_REVOKED};
use super::{Catalog, CertificateStatus, JobLeases, RevocationStore, StoreError, sql, with_pool};

/// One line of a CRL.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RevokedEntry {
    pub serial: Vec<u8>,
    pub revoked_at: i64,
    pub revocation_reason: Option<i16>,
}

/// A signed CRL as stored; `shard` is [`FULL_CRL`] for the full CRL.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredCrl {
    pub authority_id: i64,
    pub shard: i32,
    pub crl_number: i64,
    pub this_update: i64,
    pub next_update: i64,
    pub entries: i64,
    pub der: Vec<u8>,
}

/// The shard number that stands for an authority's full CRL.
pub const FULL_CRL: i32 = -1;

/// What OCSP needs to know of one certificate.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CertificateStatusRow {
    pub serial: Vec<u8>,
    pub authority_id: i64,
    #[sqlx(try_from = "i16")]
    pub status: CertificateStatus,
    pub not_after: i64,
    pub revoked_at: Option<i64>,
    pub revocation_reason: Option<i16>,
}

impl RevocationStore {
    /// Revoked, unexpired certificates of an authority, for one shard or
    /// (with `None`) all of them, in no particular order (a CRL needs none,
    /// and sorting a million rows costs the database a second).
    pub async fn revoked_entries(
        &self,
        authority_id: i64,
        shard: Option<i32>,
        now: i64,
    ) -> Result<Vec<RevokedEntry>, StoreError> {
        let sql = sql!(
            "SELECT serial, revoked_at, revocation_reason FROM certificates \
             WHERE authority_id = $1 AND status = {CERT_REVOKED} AND not_after > $2 AND ($3 IS NULL OR crl_shard = $3)"
        );
        with_pool!(self.db(), pool => sqlx::query_as::<_, RevokedEntry>(sql)
            .bind(authority_id).bind(now).bind(shard).fetch_all(pool).await.map_err(StoreError::from))
    }

    /// Hands out the authority's next CRL number; atomic, so concurrent
    /// nodes never sign two CRLs with one number.
    pub async fn next_crl_number(&self, authority_id: i64) -> Result<i64, StoreError> {
        const SQL: &str = "INSERT INTO crl_numbers (authority_id, last_number) VALUES ($1, 1) \
             ON CONFLICT (authority_id) DO UPDATE SET last_number = crl_numbers.last_number + 1 \
             RETURNING last_number";
        with_pool!(self.db(), pool => sqlx::query_scalar::<_, i64>(SQL)
            .bind(authority_id).fetch_one(pool).await.map_err(StoreError::from))
    }

    /// The number of the CRL stored for a scope, if any.
    pub async fn crl_number(&self, authority_id: i64, shard: i32) -> Result<Option<i64>, StoreError> {
        const SQL: &str = "SELECT crl_number FROM crls WHERE authority_id = $1 AND shard = $2";
        with_pool!(self.db(), pool => sqlx::query_scalar::<_, i64>(SQL)
            .bind(authority_id).bind(shard).fetch_optional(pool).await.map_err(StoreError::from))
    }

    /// Keeps `crl` unless a CRL with a higher number is already stored for
    /// its scope. Returns whether it was kept.
    pub async fn store_crl(&self, crl: &StoredCrl) -> Result<bool, StoreError> {
        const SQL: &str = "INSERT INTO crls (authority_id, shard, crl_number, this_update, next_update, entries, der) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (authority_id, shard) DO UPDATE SET crl_number = excluded.crl_number, \
             this_update = excluded.this_update, next_update = excluded.next_update, \
             entries = excluded.entries, der = excluded.der \
             WHERE crls.crl_number < excluded.crl_number";
        with_pool!(self.db(), pool => sqlx::query(SQL)
            .bind(crl.authority_id)
            .bind(crl.shard)
            .bind(crl.crl_number)
            .bind(crl.this_update)
            .bind(crl.next_update)
            .bind(crl.entries)
            .bind(&crl.der)
            .execute(pool)
            .await
            .map(|done| done.rows_affected() == 1)
            .map_err(StoreError::from))
    }

    pub async fn crl(&self, authority_id: i64, shard: i32) -> Result<StoredCrl, StoreError> {
        const SQL: &str = "SELECT authority_id, shard, crl_number, this_update, next_update, entries, der \
             FROM crls WHERE authority_id = $1 AND shard = $2";
        with_pool!(self.db(), pool => sqlx::query_as::<_, StoredCrl>(SQL)
            .bind(authority_id).bind(shard).fetch_one(pool).await.map_err(StoreError::from))
    }

    /// The newest revocation time on record, to notice revocations made
    /// by other nodes or other paths.
    pub async fn last_revocation_at(&self) -> Result<Option<i64>, StoreError> {
        let sql = sql!("SELECT MAX(revoked_at) FROM certificates WHERE status = {CERT_REVOKED}");
        with_pool!(self.db(), pool => sqlx::query_scalar::<_, Option<i64>>(sql)
            .fetch_one(pool).await.map_err(StoreError::from))
    }

    /// Certificates revoked at or after `since`.
    pub async fn revoked_since(&self, since: i64) -> Result<Vec<CertificateStatusRow>, StoreError> {
        let sql = sql!(
            "SELECT serial, authority_id, status, not_after, revoked_at, revocation_reason \
             FROM certificates WHERE status = {CERT_REVOKED} AND revoked_at >= $1"
        );
        with_pool!(self.db(), pool => sqlx::query_as::<_, CertificateStatusRow>(sql)
            .bind(since).fetch_all(pool).await.map_err(StoreError::from))
    }
}

impl Catalog {
    /// The status row OCSP answers from; NotFound for a serial never issued.
    pub async fn certificate_status(&self, serial: &[u8]) -> Result<CertificateStatusRow, StoreError> {
        const SQL: &str = "SELECT serial, authority_id, status, not_after, revoked_at, revocation_reason \
             FROM certificates WHERE serial = $1";
        with_pool!(self.db(), pool => sqlx::query_as::<_, CertificateStatusRow>(SQL)
            .bind(serial).fetch_one(pool).await.map_err(StoreError::from))
    }

    /// Issued or revoked, unexpired certificates of an authority, a page at
    /// a time in serial order, for pre-signing OCSP responses.
    pub async fn live_certificates(
        &self,
        authority_id: i64,
        now: i64,
        after_serial: &[u8],
        limit: i64,
    ) -> Result<Vec<CertificateStatusRow>, StoreError> {
        let sql = sql!(
            "SELECT serial, authority_id, status, not_after, revoked_at, revocation_reason FROM certificates \
             WHERE authority_id = $1 AND status IN ({CERT_ISSUED}, {CERT_REVOKED}) AND not_after > $2 AND serial > $3 \
             ORDER BY serial LIMIT $4"
        );
        with_pool!(self.db(), pool => sqlx::query_as::<_, CertificateStatusRow>(sql)
            .bind(authority_id).bind(now).bind(after_serial).bind(limit).fetch_all(pool).await.map_err(StoreError::from))
    }
}

impl JobLeases {
    /// Takes (or renews) the lease on a job for `holder` until `until`;
    /// false when another holder's lease has not run out.
    pub async fn take_lease(&self, job: &str, holder: &str, now: i64, until: i64) -> Result<bool, StoreError> {
        const SQL: &str = "INSERT INTO job_leases (name, holder, lease_until) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, lease_until = excluded.lease_until \
             WHERE job_leases.lease_until < $4 OR job_leases.holder = excluded.holder";
        with_pool!(self.db(), pool => sqlx::query(SQL)
            .bind(job).bind(holder).bind(until).bind(now)
            .execute(pool).await.map(|done| done.rows_affected() == 1).map_err(StoreError::from))
    }

    /// Records how a job's run ended.
    pub async fn record_job_run(&self, job: &str, at: i64, error: Option<&str>) -> Result<(), StoreError> {
        const SQL: &str = "UPDATE job_leases SET last_run = $2, last_error = $3, runs = runs + 1 WHERE name = $1";
        with_pool!(self.db(), pool => sqlx::query(SQL)
            .bind(job).bind(at).bind(error).execute(pool).await.map(|_| ()).map_err(StoreError::from))
    }
}
