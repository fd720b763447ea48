//! Keys revoked for keyCompromise and the certificates that share them.
//! A key is blocked in the commit of the revocation that proves it
//! compromised ([`RevocationStore::revoke_certificate`]); reservations and issued
//! records refuse it in their own statements. Its other certificates are
//! revoked by [`RevocationStore::revoke_key_siblings`] in a transaction that begins
//! after that commit: any issuance the block could have missed reserved its
//! serial before the block committed, so that transaction sees it (pending
//! or issued) and revokes or fails it.

use super::audit::insert_audit;
use super::certificates::{COLUMNS, KEY_COMPROMISE};
use super::status::sql::{CERT_FAILED, CERT_ISSUED, CERT_PENDING, CERT_REVOKED};
use super::{
    CertificateRecord, CertificateStatus, Db, IssuanceLedger, NewAuditEvent, RevocationStore, StoreError, begin_write,
    sql, with_pool,
};

/// A blocked key whose other certificates are yet to be revoked.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UnsweptKey {
    pub spki_hash: Vec<u8>,
    /// The certificate whose revocation blocked it.
    pub serial: Vec<u8>,
}

impl IssuanceLedger {
    /// Whether a key (its `issuance::KeyHash`) is blocked.
    pub async fn is_key_blocked(&self, spki_hash: &[u8]) -> Result<bool, StoreError> {
        const SQL: &str = "SELECT 1 FROM blocked_keys WHERE spki_hash = $1";
        with_pool!(self.db(), pool => sqlx::query(SQL).bind(spki_hash).fetch_optional(pool).await
            .map(|row| row.is_some()).map_err(StoreError::from))
    }

    /// Certificates stored before key hashes were (serial and DER), a page
    /// at a time in serial order after `after_serial`.
    pub async fn certificates_without_key_hash(
        &self,
        after_serial: &[u8],
        limit: i64,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        const SQL: &str = "SELECT serial, der FROM certificates WHERE spki_hash IS NULL AND der IS NOT NULL \
             AND serial > $1 ORDER BY serial LIMIT $2";
        with_pool!(self.db(), pool => sqlx::query_as::<_, (Vec<u8>, Vec<u8>)>(SQL)
            .bind(after_serial).bind(limit).fetch_all(pool).await.map_err(StoreError::from))
    }

    /// Stores key hashes of older certificates (serial, hash), and blocks
    /// the keys of those revoked for keyCompromise, as their revocation
    /// would have (unswept: the revocation poll revokes their other
    /// certificates). Returns how many certificates got their hash.
    pub async fn record_key_hashes(&self, hashes: &[(Vec<u8>, Vec<u8>)]) -> Result<u64, StoreError> {
        let pool = match self.db() {
            Db::Postgres(pool) => return record_key_hashes_at_once(pool, hashes).await,
            Db::Sqlite(pool) => pool,
        };
        const HASH: &str = "UPDATE certificates SET spki_hash = $2 WHERE serial = $1 AND spki_hash IS NULL";
        let block = sql!(
            "INSERT INTO blocked_keys (spki_hash, blocked_at, serial) SELECT spki_hash, revoked_at, serial \
             FROM certificates WHERE serial = $1 AND status = {CERT_REVOKED} AND revocation_reason = {KEY_COMPROMISE} \
             ON CONFLICT (spki_hash) DO NOTHING"
        );
        let mut tx = begin_write(pool).await?;
        let mut hashed = 0;
        for (serial, hash) in hashes {
            hashed += sqlx::query(HASH).bind(serial).bind(hash).execute(&mut *tx).await?.rows_affected();
            sqlx::query(block).bind(serial).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(hashed)
    }
}

impl RevocationStore {
    /// Revokes (for keyCompromise, at `at`) every unexpired issued
    /// certificate with this blocked key, with one audit event each naming
    /// the certificate whose revocation blocked it (`same_key_as`), and
    /// marks failed the ones still pending (their issued record would refuse
    /// them anyway); then records the key as swept. Returns the certificates
    /// revoked. Running it twice revokes nothing more.
    pub async fn revoke_key_siblings(
        &self,
        key: &UnsweptKey,
        at: i64,
        actor: &str,
    ) -> Result<Vec<CertificateRecord>, StoreError> {
        let sweep = sql!(
            "UPDATE certificates SET status = CASE status WHEN {CERT_PENDING} THEN {CERT_FAILED} ELSE {CERT_REVOKED} END, \
             revoked_at = CASE status WHEN {CERT_PENDING} THEN NULL ELSE $2 END, \
             revocation_reason = CASE status WHEN {CERT_PENDING} THEN NULL ELSE {KEY_COMPROMISE} END \
             WHERE spki_hash = $1 AND status IN ({CERT_PENDING}, {CERT_ISSUED}) AND not_after > $2 RETURNING {COLUMNS}"
        );
        const SWEPT: &str = "UPDATE blocked_keys SET siblings_revoked = TRUE WHERE spki_hash = $1";
        let same_key_as = hex::encode(&key.serial);
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await?;
            let changed = sqlx::query_as::<_, CertificateRecord>(sweep)
                .bind(&key.spki_hash)
                .bind(at)
                .fetch_all(&mut *tx)
                .await?;
            for certificate in &changed {
                let revoked = certificate.status == CertificateStatus::Revoked;
                let audit = NewAuditEvent {
                    at,
                    actor: actor.to_owned(),
                    action: if revoked { "certificate.revoke" } else { "certificate.fail" },
                    target: hex::encode(&certificate.serial),
                    detail: if revoked {
                        serde_json::json!({ "reason": "keyCompromise", "same_key_as": same_key_as })
                    } else {
                        serde_json::json!({ "why": "its key was revoked as compromised", "same_key_as": same_key_as })
                    },
                };
                insert_audit!(&mut *tx, audit)?;
            }
            sqlx::query(SWEPT).bind(&key.spki_hash).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(changed.into_iter().filter(|c| c.status == CertificateStatus::Revoked).collect())
        })
    }

    /// Blocked keys whose other certificates were not revoked by `before`
    /// (the node that blocked one stopped before it could), oldest first.
    pub async fn unswept_blocked_keys(&self, before: i64, limit: i64) -> Result<Vec<UnsweptKey>, StoreError> {
        const SQL: &str = "SELECT spki_hash, serial FROM blocked_keys WHERE NOT siblings_revoked AND blocked_at < $1 \
             ORDER BY blocked_at LIMIT $2";
        with_pool!(self.db(), pool => sqlx::query_as::<_, UnsweptKey>(SQL)
            .bind(before).bind(limit).fetch_all(pool).await.map_err(StoreError::from))
    }
}

/// [`IssuanceLedger::record_key_hashes`] on PostgreSQL as one statement, so that a
/// large table's backfill at start takes seconds, not minutes.
async fn record_key_hashes_at_once(pool: &sqlx::PgPool, hashes: &[(Vec<u8>, Vec<u8>)]) -> Result<u64, StoreError> {
    let sql = sql!(
        "WITH hashed AS (UPDATE certificates c SET spki_hash = i.spki_hash \
         FROM unnest($1::BYTEA[], $2::BYTEA[]) AS i(serial, spki_hash) \
         WHERE c.serial = i.serial AND c.spki_hash IS NULL \
         RETURNING c.serial, c.spki_hash, c.status, c.revocation_reason, c.revoked_at), \
         blocked AS (INSERT INTO blocked_keys (spki_hash, blocked_at, serial) \
         SELECT DISTINCT ON (spki_hash) spki_hash, revoked_at, serial FROM hashed \
         WHERE status = {CERT_REVOKED} AND revocation_reason = {KEY_COMPROMISE} ORDER BY spki_hash, revoked_at \
         ON CONFLICT (spki_hash) DO NOTHING) \
         SELECT COUNT(*) FROM hashed"
    );
    let count: i64 = sqlx::query_scalar(sql)
        .bind(hashes.iter().map(|(serial, _)| serial.as_slice()).collect::<Vec<_>>())
        .bind(hashes.iter().map(|(_, hash)| hash.as_slice()).collect::<Vec<_>>())
        .fetch_one(pool)
        .await?;
    Ok(count as u64)
}
