//! Every certificate Tessera signs: reserved as pending before the
//! signature exists, then issued (or failed), later perhaps revoked.

use super::audit::insert_audit;
use super::search_names::{NameMatch, search_names};
use super::status::sql::{
    CERT_FAILED, CERT_ISSUED, CERT_PENDING, CERT_REVOKED, ORDER_PROCESSING, ORDER_READY, ORDER_VALID,
};
use super::{
    ASYNC_COMMIT, AdminStore, Catalog, CertificateKind, CertificateStatus, Db, IssuanceLedger, NewAuditEvent,
    RevocationStore, StoreError, begin_write, one_row_each, search_names as names, sql, with_pool,
};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CertificateRecord {
    pub serial: Vec<u8>,
    pub authority_id: i64,
    pub not_before: i64,
    pub not_after: i64,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    #[sqlx(try_from = "i16")]
    pub status: CertificateStatus,
    #[sqlx(try_from = "i16")]
    pub kind: CertificateKind,
    pub revocation_reason: Option<i16>,
    /// None: the subject a leaf's identifiers give (`issuance::leaf_subject`),
    /// which is not stored again; Some for any other subject.
    pub subject: Option<String>,
    /// Identifiers in their stored column form (see `issuance::identifier`).
    pub sans: String,
    pub requester: String,
    pub key_type: Option<String>,
    pub policy: Option<String>,
    pub der: Option<Vec<u8>>,
}

/// What is known about a certificate before it is signed.
#[derive(Debug, Clone)]
pub struct PendingCertificate {
    pub serial: Vec<u8>,
    pub authority_id: i64,
    pub not_before: i64,
    pub not_after: i64,
    pub created_at: i64,
    pub kind: CertificateKind,
    /// None when it is the one the identifiers give (see [`CertificateRecord`]).
    pub subject: Option<String>,
    pub sans: String,
    pub requester: String,
    pub key_type: Option<String>,
    pub policy: Option<String>,
    /// The CRL shard its distribution point names; None for the full CRL.
    pub crl_shard: Option<i32>,
    /// SHA-256 of the subject key's DER SubjectPublicKeyInfo
    /// (`issuance::KeyHash`): a blocked key is refused by it.
    pub spki_hash: Vec<u8>,
}

impl PendingCertificate {
    /// The row as `record_issued` leaves it.
    pub fn into_issued(self, der: Vec<u8>) -> CertificateRecord {
        CertificateRecord {
            serial: self.serial,
            authority_id: self.authority_id,
            not_before: self.not_before,
            not_after: self.not_after,
            created_at: self.created_at,
            revoked_at: None,
            status: CertificateStatus::Issued,
            kind: self.kind,
            revocation_reason: None,
            subject: self.subject,
            sans: self.sans,
            requester: self.requester,
            key_type: self.key_type,
            policy: self.policy,
            der: Some(der),
        }
    }
}

/// Which earlier certificates a new one replaces: the live one of the same
/// requester and identifiers (of the same authority too, when
/// `authority_id` is set: OCSP responder certificates, which name no
/// identifiers), and an explicitly named one (ACME `replaces`, RFC 9773).
#[derive(Debug, Clone)]
pub struct Succession {
    pub requester: String,
    pub sans: String,
    pub authority_id: Option<i64>,
    pub replaces: Option<Vec<u8>>,
    /// The ACME order (then processing) that the new certificate completes:
    /// it becomes valid, naming the certificate, in the same commit.
    pub acme_order: Option<i64>,
}

/// A serial to reserve ([`IssuanceLedger::reserve_certificates`]) and the ACME order
/// its certificate finalizes, if any.
#[derive(Debug, Clone)]
pub struct Reservation {
    pub pending: PendingCertificate,
    pub acme_order: Option<i64>,
}

/// What became of a [`Reservation`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserved {
    Done,
    /// Another certificate has the serial: draw another.
    SerialTaken,
    /// The order is not ready (another request is finalizing it).
    OrderNotReady,
    /// The subject key was revoked as compromised: nothing was stored.
    KeyBlocked,
}

/// A signed certificate to record as issued ([`IssuanceLedger::record_issued_all`]).
#[derive(Debug, Clone)]
pub struct IssuedRecord {
    pub serial: Vec<u8>,
    pub der: Vec<u8>,
    pub audit: NewAuditEvent,
    pub succession: Option<Succession>,
}

/// CRLReason keyCompromise (RFC 5280 §5.3.1), the one reason that blocks
/// a key (`issuance::RevocationReason::KeyCompromise`).
pub const KEY_COMPROMISE: i16 = 1;

/// A certificate [`RevocationStore::revoke_certificate`] revoked.
#[derive(Debug, Clone)]
pub struct RevokedCertificate {
    pub record: CertificateRecord,
    /// The key hash it blocked (reason keyCompromise): its other
    /// certificates are for [`RevocationStore::revoke_key_siblings`] to revoke.
    pub blocked_key: Option<Vec<u8>>,
}

#[derive(sqlx::FromRow)]
struct RevokedRow {
    #[sqlx(flatten)]
    record: CertificateRecord,
    spki_hash: Option<Vec<u8>>,
}

/// List filters; all optional, all combined. Results are ordered by
/// (not_after, serial).
#[derive(Debug, Clone, Default)]
pub struct CertificateFilter {
    pub status: Option<CertificateStatus>,
    pub kind: Option<CertificateKind>,
    pub authority_id: Option<i64>,
    /// One identifier in its tagged form (`dns:a.test`).
    pub san: Option<String>,
    /// A DNS domain (`payments.internal`): certificates naming a name under it.
    pub dns_suffix: Option<String>,
    /// The start of a URI (`spiffe://td/ns/prod/`).
    pub uri_prefix: Option<String>,
    /// The subject exactly as a certificate's view shows it (`CN=api.test`).
    pub subject: Option<String>,
    /// The requester exactly as stored and shown (`token:ci`, `acme:7`).
    pub requester: Option<String>,
    pub expires_before: Option<i64>,
    pub expires_after: Option<i64>,
    /// Continue after this (not_after, serial).
    pub after: Option<(i64, Vec<u8>)>,
}

/// Key types as the `key_type` column stores them: a SMALLINT code per
/// name (migration 0007), two bytes a row instead of a dozen. A name not
/// listed here cannot be stored; `COLUMNS` reads the codes back.
const KEY_TYPES: [(i16, &str); 6] = [
    (1, "ecdsa-p256"),
    (2, "ecdsa-p384"),
    (3, "ed25519"),
    (4, "rsa"),
    (5, "ecdsa-p256-sha256"),
    (6, "ecdsa-p384-sha384"),
];

/// The code `key_type` stores for a key type name.
pub fn key_type_code(name: &str) -> Option<i16> {
    KEY_TYPES.iter().find(|(_, n)| *n == name).map(|(code, _)| *code)
}

fn stored_key_type(name: Option<&str>) -> Result<Option<i16>, StoreError> {
    name.map(|n| key_type_code(n).ok_or_else(|| StoreError::Other(format!("key type {n} has no stored code"))))
        .transpose()
}

pub(super) const COLUMNS: &str = "serial, authority_id, not_before, not_after, created_at, revoked_at, status, \
                       kind, revocation_reason, subject, sans, requester, \
                       CASE key_type WHEN 1 THEN 'ecdsa-p256' WHEN 2 THEN 'ecdsa-p384' WHEN 3 THEN 'ed25519' \
                       WHEN 4 THEN 'rsa' WHEN 5 THEN 'ecdsa-p256-sha256' WHEN 6 THEN 'ecdsa-p384-sha384' END AS key_type, \
                       policy, der";

const RESERVED_COLUMNS: &str = "(serial, authority_id, not_before, not_after, created_at, status, subject, sans, \
                                requester, key_type, policy, crl_shard, spki_hash, kind)";

/// A reservation's plain insert, bound by [`bind_pending`].
fn insert_reserved_sql() -> &'static str {
    sql!(
        "INSERT INTO certificates {RESERVED_COLUMNS} \
         VALUES ($1, $2, $3, $4, $5, {CERT_PENDING}, $6, $7, $8, $9, $10, $11, $12, $13)"
    )
}

/// Binds a reservation's values, `$1` to `$13` of [`insert_reserved_sql`].
fn bind_pending<'q, DB>(
    query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>,
    pending: &'q PendingCertificate,
) -> Result<sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>, StoreError>
where
    DB: sqlx::Database,
    Vec<u8>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i16: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i16>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i32>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<String>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let key_type = stored_key_type(pending.key_type.as_deref())?;
    Ok(query
        .bind(&pending.serial)
        .bind(pending.authority_id)
        .bind(pending.not_before)
        .bind(pending.not_after)
        .bind(pending.created_at)
        .bind(&pending.subject)
        .bind(&pending.sans)
        .bind(&pending.requester)
        .bind(key_type)
        .bind(&pending.policy)
        .bind(pending.crl_shard)
        .bind(&pending.spki_hash)
        .bind(pending.kind.code()))
}

/// A reservation's names (`search_names`), one insert each, with the
/// certificate's own insert.
const INSERT_NAME: &str = "INSERT INTO certificate_names (not_after, serial, name) VALUES ($1, $2, $3)";

fn pending_names(pending: &PendingCertificate) -> Vec<String> {
    search_names(&pending.sans, pending.subject.as_deref(), &pending.requester)
}

/// [`IssuanceLedger::reserve_certificates`] on PostgreSQL as one statement. Of two
/// reservations for one order (two finalizations at once) the first claims
/// it. A serial taken meanwhile by another statement fails the whole batch
/// with a conflict, which the issuer retries with fresh serials.
async fn reserve_at_once(pool: &sqlx::PgPool, reservations: &[Reservation]) -> Result<Vec<Reserved>, StoreError> {
    let sql = sql!(
        "WITH {ASYNC_COMMIT}, batch AS MATERIALIZED (SELECT * FROM unnest($1::BYTEA[], $2::INT8[], $3::INT8[], \
         $4::INT8[], $5::INT8[], $6::TEXT[], $7::TEXT[], $8::TEXT[], $9::INT2[], $10::TEXT[], $11::INT4[], \
         $12::INT8[], $13::BYTEA[], $14::INT2[]) WITH ORDINALITY AS b(serial, authority_id, not_before, not_after, \
         created_at, subject, sans, requester, key_type, policy, crl_shard, acme_order, spki_hash, kind, n)), \
         refused AS MATERIALIZED (SELECT b.n FROM batch b \
         WHERE EXISTS (SELECT 1 FROM blocked_keys k WHERE k.spki_hash = b.spki_hash)), \
         fresh AS MATERIALIZED (SELECT DISTINCT ON (b.serial) b.* FROM batch b \
         WHERE NOT EXISTS (SELECT 1 FROM certificates c WHERE c.serial = b.serial) \
         AND b.n NOT IN (SELECT n FROM refused) ORDER BY b.serial, b.n), \
         claimed AS (UPDATE acme_orders o SET status = {ORDER_PROCESSING}, processing_since = f.created_at \
         FROM (SELECT DISTINCT ON (acme_order) acme_order, n, created_at FROM fresh \
         WHERE acme_order IS NOT NULL ORDER BY acme_order, n) f \
         WHERE o.id = f.acme_order AND o.status = {ORDER_READY} RETURNING f.n), \
         kept AS MATERIALIZED (SELECT * FROM fresh WHERE acme_order IS NULL OR n IN (SELECT n FROM claimed)), \
         inserted AS (INSERT INTO certificates {RESERVED_COLUMNS} SELECT serial, authority_id, not_before, \
         not_after, created_at, {CERT_PENDING}, subject, sans, requester, key_type, policy, crl_shard, spki_hash, kind \
         FROM kept ORDER BY n), \
         named AS (INSERT INTO certificate_names (not_after, serial, name) SELECT k.not_after, k.serial, m.name \
         FROM unnest($15::TEXT[], $16::INT8[]) AS m(name, n) JOIN kept k ON k.n = m.n) \
         SELECT CASE WHEN b.n IN (SELECT n FROM kept) THEN 0 WHEN b.n IN (SELECT n FROM refused) THEN 3 \
         WHEN b.n IN (SELECT n FROM fresh) THEN 2 ELSE 1 END::INT2 \
         FROM batch b, async_commit ORDER BY b.n"
    );
    let pending = || reservations.iter().map(|r| &r.pending);
    let key_types =
        pending().map(|p| stored_key_type(p.key_type.as_deref())).collect::<Result<Vec<_>, StoreError>>()?;
    // Each name with its reservation's ordinal (`n`, from 1).
    let names: Vec<(i64, String)> =
        pending().zip(1..).flat_map(|(p, n)| pending_names(p).into_iter().map(move |name| (n, name))).collect();
    let outcomes: Vec<i16> = sqlx::query_scalar(sql)
        .bind(pending().map(|p| p.serial.as_slice()).collect::<Vec<_>>())
        .bind(pending().map(|p| p.authority_id).collect::<Vec<_>>())
        .bind(pending().map(|p| p.not_before).collect::<Vec<_>>())
        .bind(pending().map(|p| p.not_after).collect::<Vec<_>>())
        .bind(pending().map(|p| p.created_at).collect::<Vec<_>>())
        .bind(pending().map(|p| p.subject.as_deref()).collect::<Vec<_>>())
        .bind(pending().map(|p| p.sans.as_str()).collect::<Vec<_>>())
        .bind(pending().map(|p| p.requester.as_str()).collect::<Vec<_>>())
        .bind(key_types)
        .bind(pending().map(|p| p.policy.as_deref()).collect::<Vec<_>>())
        .bind(pending().map(|p| p.crl_shard).collect::<Vec<_>>())
        .bind(reservations.iter().map(|r| r.acme_order).collect::<Vec<_>>())
        .bind(pending().map(|p| p.spki_hash.as_slice()).collect::<Vec<_>>())
        .bind(pending().map(|p| p.kind.code()).collect::<Vec<_>>())
        .bind(names.iter().map(|(_, name)| name.as_str()).collect::<Vec<_>>())
        .bind(names.iter().map(|(n, _)| *n).collect::<Vec<_>>())
        .fetch_all(pool)
        .await?;
    Ok(one_row_each("reservations", reservations.len(), outcomes)?
        .into_iter()
        .map(|o| match o {
            0 => Reserved::Done,
            1 => Reserved::SerialTaken,
            2 => Reserved::OrderNotReady,
            _ => Reserved::KeyBlocked,
        })
        .collect())
}

/// [`IssuanceLedger::record_issued_all`] on PostgreSQL as one statement: one round
/// trip and one commit for the whole batch. The other rows' updates and the
/// audit events happen only for certificates that were pending; one whose
/// key was blocked meanwhile is recorded failed instead. A
/// predecessor another issuance has locked is left to that one: it is
/// superseding it, and waiting for its commit only queued every issuance for
/// the same names behind one row. Within the batch, a certificate that a
/// later one of the same lineage follows is recorded superseded at once. A
/// serial given twice is recorded once, by its first record, as the SQLite
/// path does (the later one finds it no longer pending).
async fn record_issued_at_once(pool: &sqlx::PgPool, records: &[IssuedRecord]) -> Result<Vec<bool>, StoreError> {
    let sql = sql!(
        "WITH batch AS MATERIALIZED (SELECT * FROM unnest($1::BYTEA[], $2::BYTEA[], \
         $3::BOOLEAN[], $4::TEXT[], $5::TEXT[], $6::INT8[], $7::BYTEA[], $8::INT8[], $9::INT8[], $10::TEXT[], \
         $11::TEXT[], $12::TEXT[], $13::TEXT[]) WITH ORDINALITY AS b(serial, der, succeeds, requester, sans, \
         authority_id, replaces, acme_order, at, actor, action, target, detail, n)), \
         pending AS MATERIALIZED (SELECT DISTINCT ON (b.serial) b.* FROM batch b \
         JOIN certificates c ON c.serial = b.serial AND c.status = {CERT_PENDING} \
         WHERE NOT EXISTS (SELECT 1 FROM blocked_keys k WHERE k.spki_hash = c.spki_hash) ORDER BY b.serial, b.n), \
         refused AS (UPDATE certificates c SET status = {CERT_FAILED} FROM batch b \
         WHERE c.serial = b.serial AND c.status = {CERT_PENDING} \
         AND EXISTS (SELECT 1 FROM blocked_keys k WHERE k.spki_hash = c.spki_hash)), \
         issued AS (UPDATE certificates c SET status = {CERT_ISSUED}, der = p.der, superseded = EXISTS (SELECT 1 \
         FROM pending later WHERE later.n > p.n AND later.succeeds AND p.succeeds AND later.requester = p.requester \
         AND later.sans = p.sans AND later.authority_id IS NOT DISTINCT FROM p.authority_id) \
         FROM pending p WHERE c.serial = p.serial AND c.status = {CERT_PENDING} RETURNING c.serial), \
         done AS MATERIALIZED (SELECT p.* FROM pending p WHERE p.serial IN (SELECT serial FROM issued)), \
         predecessors AS (UPDATE certificates SET superseded = TRUE WHERE serial IN (SELECT c.serial \
         FROM certificates c JOIN done d ON d.succeeds AND c.requester = d.requester AND c.sans = d.sans \
         AND (d.authority_id IS NULL OR c.authority_id = d.authority_id) \
         WHERE c.status = {CERT_ISSUED} AND NOT c.superseded AND c.serial NOT IN (SELECT serial FROM batch) \
         FOR UPDATE OF c SKIP LOCKED)), \
         replaced AS (UPDATE certificates SET superseded = TRUE \
         WHERE serial IN (SELECT replaces FROM done WHERE replaces IS NOT NULL) \
         AND serial NOT IN (SELECT serial FROM batch) AND NOT superseded), \
         audit AS (INSERT INTO audit_events (at, actor, action, target, detail) \
         SELECT at, actor, action, target, detail FROM done ORDER BY n), \
         completed AS (UPDATE acme_orders o SET status = {ORDER_VALID}, certificate_serial = d.serial \
         FROM done d WHERE o.id = d.acme_order AND o.status = {ORDER_PROCESSING}) \
         SELECT b.n IN (SELECT n FROM done) FROM batch b ORDER BY b.n"
    );
    let succession = || records.iter().map(|r| r.succession.as_ref());
    let audit = || records.iter().map(|r| &r.audit);
    let issued: Vec<bool> = sqlx::query_scalar(sql)
        .bind(records.iter().map(|r| r.serial.as_slice()).collect::<Vec<_>>())
        .bind(records.iter().map(|r| r.der.as_slice()).collect::<Vec<_>>())
        .bind(succession().map(|s| s.is_some()).collect::<Vec<_>>())
        .bind(succession().map(|s| s.map(|s| s.requester.as_str())).collect::<Vec<_>>())
        .bind(succession().map(|s| s.map(|s| s.sans.as_str())).collect::<Vec<_>>())
        .bind(succession().map(|s| s.and_then(|s| s.authority_id)).collect::<Vec<_>>())
        .bind(succession().map(|s| s.and_then(|s| s.replaces.as_deref())).collect::<Vec<_>>())
        .bind(succession().map(|s| s.and_then(|s| s.acme_order)).collect::<Vec<_>>())
        .bind(audit().map(|a| a.at).collect::<Vec<_>>())
        .bind(audit().map(|a| a.actor.as_str()).collect::<Vec<_>>())
        .bind(audit().map(|a| a.action).collect::<Vec<_>>())
        .bind(audit().map(|a| a.target.as_str()).collect::<Vec<_>>())
        .bind(audit().map(|a| a.detail.to_string()).collect::<Vec<_>>())
        .fetch_all(pool)
        .await?;
    one_row_each("issued records", records.len(), issued)
}

impl IssuanceLedger {
    /// Step one of issuance: the serial is on record before any signature.
    pub async fn reserve_certificate(&self, pending: &PendingCertificate) -> Result<(), StoreError> {
        let reservation = Reservation { pending: pending.clone(), acme_order: None };
        match self.reserve_certificates(std::slice::from_ref(&reservation)).await?.as_slice() {
            [Reserved::Done] => Ok(()),
            _ => Err(StoreError::Conflict("the serial is taken".into())),
        }
    }

    /// Reserves serials in one commit, each as [`IssuanceLedger::reserve_certificate`]
    /// does; one that finalizes an ACME order moves it from ready to
    /// processing in the same commit, so a processing order always has its
    /// reserved certificate. A blocked key is refused in the same statement
    /// (no cache: a block committed on any node counts at once). Nothing is
    /// stored for a reservation refused. On
    /// PostgreSQL it commits without waiting for the WAL flush (see
    /// `ASYNC_COMMIT`): the certificate's issued record, which commits
    /// synchronously before anyone sees the certificate, flushes it too.
    pub async fn reserve_certificates(&self, reservations: &[Reservation]) -> Result<Vec<Reserved>, StoreError> {
        const TAKEN: &str = "SELECT 1 FROM certificates WHERE serial = $1";
        const BLOCKED: &str = "SELECT 1 FROM blocked_keys WHERE spki_hash = $1";
        let claim = sql!(
            "UPDATE acme_orders SET status = {ORDER_PROCESSING}, processing_since = $2 WHERE id = $1 AND status = {ORDER_READY}"
        );
        let pool = match self.db() {
            Db::Postgres(pool) => return reserve_at_once(pool, reservations).await,
            Db::Sqlite(pool) => pool,
        };
        let mut tx = begin_write(pool).await?;
        let mut reserved = Vec::with_capacity(reservations.len());
        for Reservation { pending, acme_order } in reservations {
            if sqlx::query(BLOCKED).bind(&pending.spki_hash).fetch_optional(&mut *tx).await?.is_some() {
                reserved.push(Reserved::KeyBlocked);
                continue;
            }
            if sqlx::query(TAKEN).bind(&pending.serial).fetch_optional(&mut *tx).await?.is_some() {
                reserved.push(Reserved::SerialTaken);
                continue;
            }
            if let Some(order) = acme_order
                && sqlx::query(claim).bind(order).bind(pending.created_at).execute(&mut *tx).await?.rows_affected() != 1
            {
                reserved.push(Reserved::OrderNotReady);
                continue;
            }
            bind_pending(sqlx::query(insert_reserved_sql()), pending)?.execute(&mut *tx).await?;
            for name in pending_names(pending) {
                sqlx::query(INSERT_NAME)
                    .bind(pending.not_after)
                    .bind(&pending.serial)
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
            }
            reserved.push(Reserved::Done);
        }
        tx.commit().await?;
        Ok(reserved)
    }

    /// Step two: the signed certificate and its audit event, together.
    pub async fn record_issued(&self, serial: &[u8], der: &[u8], audit: &NewAuditEvent) -> Result<(), StoreError> {
        let record =
            IssuedRecord { serial: serial.to_vec(), der: der.to_vec(), audit: audit.clone(), succession: None };
        match self.record_issued_all(std::slice::from_ref(&record)).await?.as_slice() {
            [true] => Ok(()),
            _ => Err(StoreError::Conflict("the certificate is not pending".into())),
        }
    }

    /// Records signed certificates in one commit, each as
    /// [`IssuanceLedger::record_issued`] does and, where it has a [`Succession`],
    /// marking the certificates it replaces superseded in the same commit,
    /// so finding overdue certificates never needs a search. Only the flag
    /// is kept: nothing needs to know which certificate replaced which.
    /// True for each certificate recorded, false for one not pending. A
    /// certificate whose key was blocked since its reservation is recorded
    /// failed (false): the block may have committed after the reservation
    /// looked, and the certificate must not leave.
    pub async fn record_issued_all(&self, records: &[IssuedRecord]) -> Result<Vec<bool>, StoreError> {
        let issue = sql!(
            "UPDATE certificates SET status = {CERT_ISSUED}, der = $2 WHERE serial = $1 AND status = {CERT_PENDING} \
             AND NOT EXISTS (SELECT 1 FROM blocked_keys k WHERE k.spki_hash = certificates.spki_hash)"
        );
        let refuse =
            sql!("UPDATE certificates SET status = {CERT_FAILED} WHERE serial = $1 AND status = {CERT_PENDING}");
        // Served by the partial index certificates_heads.
        let predecessors = sql!(
            "UPDATE certificates SET superseded = TRUE \
             WHERE requester = $2 AND sans = $3 AND status = {CERT_ISSUED} AND NOT superseded \
             AND serial <> $1 AND ($4 IS NULL OR authority_id = $4)"
        );
        const REPLACES: &str = "UPDATE certificates SET superseded = TRUE WHERE serial = $1 AND NOT superseded";
        let complete_order = sql!(
            "UPDATE acme_orders SET status = {ORDER_VALID}, certificate_serial = $1 \
             WHERE id = $2 AND status = {ORDER_PROCESSING}"
        );
        let pool = match self.db() {
            Db::Postgres(pool) => return record_issued_at_once(pool, records).await,
            Db::Sqlite(pool) => pool,
        };
        // SQLite: the same steps, one statement each, in one transaction;
        // in order, so a later certificate supersedes an earlier one.
        let mut tx = begin_write(pool).await?;
        let mut issued = Vec::with_capacity(records.len());
        for record in records {
            let done = sqlx::query(issue).bind(&record.serial).bind(&record.der).execute(&mut *tx).await?;
            issued.push(done.rows_affected() == 1);
            if done.rows_affected() != 1 {
                sqlx::query(refuse).bind(&record.serial).execute(&mut *tx).await?;
                continue;
            }
            if let Some(succession) = &record.succession {
                sqlx::query(predecessors)
                    .bind(&record.serial)
                    .bind(&succession.requester)
                    .bind(&succession.sans)
                    .bind(succession.authority_id)
                    .execute(&mut *tx)
                    .await?;
                if let Some(replaced) = &succession.replaces {
                    sqlx::query(REPLACES).bind(replaced).execute(&mut *tx).await?;
                }
                if let Some(order) = succession.acme_order {
                    sqlx::query(complete_order).bind(&record.serial).bind(order).execute(&mut *tx).await?;
                }
            }
            insert_audit!(&mut *tx, &record.audit)?;
        }
        tx.commit().await?;
        Ok(issued)
    }

    /// A signature that could not be made: the serial stays on record as failed.
    pub async fn record_failed(&self, serial: &[u8]) -> Result<(), StoreError> {
        let sql = sql!("UPDATE certificates SET status = {CERT_FAILED} WHERE serial = $1 AND status = {CERT_PENDING}");
        with_pool!(self.db(), pool => sqlx::query(sql).bind(serial).execute(pool).await.map(|_| ()).map_err(StoreError::from))
    }

    /// Marks `serial` failed with the audit event that says why, together
    /// (a certificate refused by its lint).
    pub async fn record_failed_with_audit(&self, serial: &[u8], audit: &NewAuditEvent) -> Result<(), StoreError> {
        let sql = sql!("UPDATE certificates SET status = {CERT_FAILED} WHERE serial = $1 AND status = {CERT_PENDING}");
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await?;
            sqlx::query(sql).bind(serial).execute(&mut *tx).await?;
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await.map_err(StoreError::from)
        })
    }
}

impl Catalog {
    pub async fn certificate(&self, serial: &[u8]) -> Result<CertificateRecord, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM certificates WHERE serial = $1");
        with_pool!(self.db(), pool => sqlx::query_as::<_, CertificateRecord>(sqlx::AssertSqlSafe(sql))
            .bind(serial).fetch_one(pool).await.map_err(StoreError::from))
    }
}

impl CertificateFilter {
    /// The name conditions (`certificate_names`) this filter sets.
    fn name_matches(&self) -> Vec<NameMatch> {
        [
            self.san.as_deref().map(|s| NameMatch::Exact(names::stored_identifier(s))),
            self.dns_suffix.as_deref().map(names::under_domain),
            self.uri_prefix.as_deref().map(names::uri_prefix),
            self.subject.as_deref().map(names::subject),
            self.requester.as_deref().map(names::requester),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// A value bound to a listing's statement.
enum Param {
    Int(i64),
    Text(String),
    Bytes(Vec<u8>),
}

/// Binds a listing's params to a query of any shape, in order.
macro_rules! bind_listing {
    ($query:expr, $params:expr) => {{
        let mut query = $query;
        for param in $params {
            query = match param {
                Param::Int(value) => query.bind(*value),
                Param::Text(value) => query.bind(value.as_str()),
                Param::Bytes(value) => query.bind(value.as_slice()),
            };
        }
        query
    }};
}

/// A listing's statement, written for the filters it has and no others:
/// a generic plan (see `Db::connect`) then still uses the index each
/// condition needs, which `($n IS NULL OR ...)` would hide from it.
#[derive(Default)]
struct Listing {
    conditions: Vec<String>,
    params: Vec<Param>,
}

impl Listing {
    /// A placeholder for `value`.
    fn param(&mut self, value: Param) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    /// The not_after bounds and the keyset position, on the table `table`
    /// (certificates or certificate_names, which carries both columns).
    /// The redundant `not_after >= t` gives the keyset its start as a range.
    fn bounds(&mut self, filter: &CertificateFilter, table: &str) -> Vec<String> {
        let mut bounds = Vec::new();
        if let Some(before) = filter.expires_before {
            bounds.push(format!("{table}.not_after < {}", self.param(Param::Int(before))));
        }
        if let Some(after) = filter.expires_after {
            bounds.push(format!("{table}.not_after > {}", self.param(Param::Int(after))));
        }
        if let Some((time, serial)) = &filter.after {
            let time = self.param(Param::Int(*time));
            let serial = self.param(Param::Bytes(serial.clone()));
            bounds.push(format!(
                "{table}.not_after >= {time} AND ({table}.not_after > {time} OR {table}.serial > {serial})"
            ));
        }
        bounds
    }

    /// The conditions on `certificate_names m` of one name match, with
    /// the listing's bounds.
    fn name_condition(&mut self, filter: &CertificateFilter, name: NameMatch) -> String {
        let mut conditions = match name {
            NameMatch::Exact(exact) => vec![format!("m.name = {}", self.param(Param::Text(exact)))],
            NameMatch::Range { start, end } => vec![
                format!("m.name >= {}", self.param(Param::Text(start))),
                format!("m.name < {}", self.param(Param::Text(end))),
            ],
        };
        conditions.extend(self.bounds(filter, "m"));
        conditions.join(" AND ")
    }

    fn build(filter: &CertificateFilter, limit: i64) -> (String, Vec<Param>) {
        let mut listing = Listing::default();
        if let Some(status) = filter.status {
            listing.conditions.push(format!("certificates.status = {}", status.sql()));
        }
        if let Some(kind) = filter.kind {
            listing.conditions.push(format!("certificates.kind = {}", kind.sql()));
        }
        if let Some(authority) = filter.authority_id {
            let authority = listing.param(Param::Int(authority));
            listing.conditions.push(format!("certificates.authority_id = {authority}"));
        }
        // Each name condition is a range of `certificate_names_search`,
        // bounded by the same not_after window and keyset as the listing,
        // so a later page reads less of it. The first one drives: its
        // (not_after, serial) pairs, index only, are sorted and joined to
        // their certificates in that order until the page is full, so a
        // name shared by many certificates costs a sort of index entries,
        // not a lookup of every certificate. Any other is a semi-join.
        let mut names = filter.name_matches().into_iter().map(|name| listing.name_condition(filter, name));
        let driver = names.next();
        let others: Vec<String> = names.collect();
        listing.conditions.extend(
            others
                .into_iter()
                .map(|c| format!("certificates.serial IN (SELECT m.serial FROM certificate_names m WHERE {c})")),
        );
        let (from, order) = match driver {
            Some(c) => (
                format!(
                    "(SELECT DISTINCT m.not_after AS by_not_after, m.serial AS by_serial FROM certificate_names m \
                     WHERE {c}) AS d JOIN certificates ON certificates.serial = d.by_serial"
                ),
                "d.by_not_after, d.by_serial",
            ),
            None => {
                let bounds = listing.bounds(filter, "certificates");
                listing.conditions.extend(bounds);
                ("certificates".to_owned(), "certificates.not_after, certificates.serial")
            }
        };
        let limit = listing.param(Param::Int(limit));
        let conditions = if listing.conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", listing.conditions.join(" AND "))
        };
        let sql = format!("SELECT {COLUMNS} FROM {from} {conditions} ORDER BY {order} LIMIT {limit}");
        (sql, listing.params)
    }
}

impl AdminStore {
    /// One page of certificates under `filter`. Without name conditions a
    /// page walks `certificates_not_after` (or `certificates_internal`
    /// for `kind = internal`) from the cursor; with one, the rows come
    /// from ranges of `certificate_names_search`.
    pub async fn list_certificates(
        &self,
        filter: &CertificateFilter,
        limit: i64,
    ) -> Result<Vec<CertificateRecord>, StoreError> {
        let (sql, params) = Listing::build(filter, limit);
        with_pool!(self.db(), pool => {
            let query = sqlx::query_as::<_, CertificateRecord>(sqlx::AssertSqlSafe(sql.clone()));
            bind_listing!(query, &params).fetch_all(pool).await.map_err(StoreError::from)
        })
    }

    /// PostgreSQL's plan for a listing, run (`EXPLAIN ANALYZE`), for the
    /// expiry benchmark and plan tests.
    #[cfg(feature = "test-support")]
    pub async fn explain_certificates(&self, filter: &CertificateFilter, limit: i64) -> Result<String, StoreError> {
        let Db::Postgres(pool) = self.db() else {
            return Err(StoreError::Other("plans are read on PostgreSQL".into()));
        };
        let (sql, params) = Listing::build(filter, limit);
        let query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!("EXPLAIN (ANALYZE, BUFFERS) {sql}")));
        let lines = bind_listing!(query, &params).fetch_all(pool).await?;
        Ok(lines.join("\n"))
    }
}

impl RevocationStore {
    /// Marks an issued certificate revoked, with its audit event. With
    /// reason keyCompromise it also blocks the certificate's key in the same
    /// commit (no certificate is issued for it from then on, on any node),
    /// and it may revoke again a certificate revoked for another reason:
    /// the reason becomes keyCompromise and the key is blocked, while the
    /// revocation keeps its time (RFC 5280: when it was revoked). Unknown
    /// serial: NotFound; already revoked (for keyCompromise, or with another
    /// reason now) or never issued: Conflict. The key's other certificates
    /// are left to [`RevocationStore::revoke_key_siblings`], in a transaction of its own
    /// that begins after this commit.
    pub async fn revoke_certificate(
        &self,
        serial: &[u8],
        at: i64,
        reason: i16,
        audit: &NewAuditEvent,
    ) -> Result<RevokedCertificate, StoreError> {
        let update = sql!(
            "UPDATE certificates SET status = {CERT_REVOKED}, \
             revoked_at = CASE WHEN status = {CERT_REVOKED} THEN revoked_at ELSE $2 END, revocation_reason = $3 \
             WHERE serial = $1 AND (status = {CERT_ISSUED} OR (status = {CERT_REVOKED} AND $3 = {KEY_COMPROMISE} \
             AND COALESCE(revocation_reason, 0) <> {KEY_COMPROMISE})) RETURNING {COLUMNS}, spki_hash"
        );
        const BLOCK: &str = "INSERT INTO blocked_keys (spki_hash, blocked_at, serial) VALUES ($1, $2, $3) \
             ON CONFLICT (spki_hash) DO NOTHING";
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await?;
            let revoked = sqlx::query_as::<_, RevokedRow>(update)
                .bind(serial)
                .bind(at)
                .bind(reason)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(RevokedRow { record, spki_hash }) = revoked else {
                let status: Option<i16> = sqlx::query_scalar("SELECT status FROM certificates WHERE serial = $1")
                    .bind(serial)
                    .fetch_optional(&mut *tx)
                    .await?;
                return Err(match status.and_then(CertificateStatus::from_code) {
                    None => StoreError::NotFound,
                    Some(status) => StoreError::Conflict(format!("the certificate is {}", status.as_str())),
                });
            };
            let blocked_key = spki_hash.filter(|_| reason == KEY_COMPROMISE);
            let mut audit = audit.clone();
            if let Some(key) = &blocked_key {
                sqlx::query(BLOCK).bind(key).bind(at).bind(serial).execute(&mut *tx).await?;
                audit.detail["key_blocked"] = true.into();
            }
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await?;
            Ok(RevokedCertificate { record, blocked_key })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What is stored as a code reads back as the same name.
    #[test]
    fn key_type_codes_read_back_as_their_names() {
        for (code, name) in KEY_TYPES {
            assert_eq!(key_type_code(name), Some(code));
            assert!(COLUMNS.contains(&format!("WHEN {code} THEN '{name}'")), "{name}");
        }
        assert_eq!(COLUMNS.matches("WHEN ").count(), KEY_TYPES.len());
        assert!(matches!(stored_key_type(Some("dsa")), Err(StoreError::Other(_))));
        assert!(matches!(stored_key_type(None), Ok(None)));
    }

    /// Every key type Tessera issues for, and every CA algorithm, can be
    /// stored (a new variant without a code fails here, not at issuance).
    #[test]
    fn every_issued_key_type_has_a_code() {
        use crate::issuance::KeyType;
        use crate::keys::SigningAlgorithm;
        let leaves = [KeyType::EcdsaP256, KeyType::EcdsaP384, KeyType::Ed25519, KeyType::Rsa].map(KeyType::as_str);
        let authorities =
            [SigningAlgorithm::EcdsaP256Sha256, SigningAlgorithm::EcdsaP384Sha384].map(SigningAlgorithm::as_str);
        for name in leaves.into_iter().chain(authorities) {
            assert!(key_type_code(name).is_some(), "{name}");
        }
    }
}
