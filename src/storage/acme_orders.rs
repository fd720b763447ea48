//! ACME orders, their authorizations and challenges (RFC 8555 §7.1.3-7.1.5).
//! State moves only forward; each move is one conditional UPDATE so two
//! nodes racing on the same object cannot both win.

use super::certificates::COLUMNS as CERTIFICATE_COLUMNS;
use super::status::sql::{
    AUTHZ_DEACTIVATED, AUTHZ_PENDING, AUTHZ_VALID, CHALLENGE_PENDING, CHALLENGE_PROCESSING, ORDER_INVALID,
    ORDER_PENDING, ORDER_PROCESSING, ORDER_READY,
};
use super::{
    AcmeStore, AuthzStatus, CertificateRecord, ChallengeStatus, Db, OrderStatus, StoreError, begin_write, sql,
    with_pool,
};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AcmeOrderRecord {
    pub id: i64,
    pub account_id: i64,
    #[sqlx(try_from = "String")]
    pub status: OrderStatus,
    /// Tagged identifiers, space-separated.
    pub identifiers: String,
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    pub expires: i64,
    /// A problem document (JSON) when the order is invalid.
    pub error: Option<String>,
    pub certificate_serial: Option<Vec<u8>>,
    pub replaces_serial: Option<Vec<u8>>,
    /// The ARI identifier of `replaces_serial`, as the client wrote it.
    pub replaces: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AcmeAuthzRecord {
    pub id: i64,
    pub order_id: i64,
    pub account_id: i64,
    /// One tagged identifier, without the wildcard label.
    pub identifier: String,
    pub wildcard: bool,
    #[sqlx(try_from = "String")]
    pub status: AuthzStatus,
    pub expires: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AcmeChallengeRecord {
    pub id: i64,
    pub authz_id: i64,
    pub account_id: i64,
    pub kind: String,
    pub token: String,
    #[sqlx(try_from = "String")]
    pub status: ChallengeStatus,
    pub validated: Option<i64>,
    pub error: Option<String>,
}

/// A challenge left processing (see `AcmeStore::stalled_acme_challenges`).
#[derive(Debug, Clone)]
pub struct StalledChallenge {
    pub challenge: AcmeChallengeRecord,
    pub started_at: Option<i64>,
    /// The authorization's identifier, as stored (`dns:name`, `ip:addr`).
    pub identifier: String,
    /// The account key, as stored, for the key authorization.
    pub jwk: String,
    /// The account's policy, which bounds where validation may go.
    pub policy: String,
}

/// An order and the ids of its authorizations.
pub type OrderWithAuthzIds = (AcmeOrderRecord, Vec<i64>);

/// An authorization and its challenges, in id order.
pub type AuthzWithChallenges = (AcmeAuthzRecord, Vec<AcmeChallengeRecord>);

/// Decodes an order row with its `authz_ids` column (ids joined by commas).
macro_rules! order_with_authz_ids {
    ($row:expr) => {{
        let row = $row;
        let ids: Option<String> = sqlx::Row::try_get(row, "authz_ids")?;
        let ids: Vec<i64> = ids.unwrap_or_default().split(',').filter_map(|s| s.parse().ok()).collect();
        (<AcmeOrderRecord as sqlx::FromRow<_>>::from_row(row)?, ids)
    }};
}

/// Adds one row of an authorization joined with a challenge to `found`,
/// whose last entry is that authorization's when the rows come grouped.
macro_rules! group_authz_row {
    ($found:expr, $row:expr) => {{
        let row = $row;
        let authz = <AcmeAuthzRecord as sqlx::FromRow<_>>::from_row(row)?;
        if $found.last().is_none_or(|(last, _): &AuthzWithChallenges| last.id != authz.id) {
            $found.push((authz, Vec::new()));
        }
        if let (Some((authz, challenges)), Some(id)) =
            ($found.last_mut(), sqlx::Row::try_get::<Option<i64>, _>(row, "c_id")?)
            && !challenges.iter().any(|c: &AcmeChallengeRecord| c.id == id)
        {
            challenges.push(AcmeChallengeRecord {
                id,
                authz_id: authz.id,
                account_id: authz.account_id,
                kind: sqlx::Row::try_get(row, "c_kind")?,
                token: sqlx::Row::try_get(row, "c_token")?,
                status: ChallengeStatus::try_from(sqlx::Row::try_get::<String, _>(row, "c_status")?)
                    .map_err(|e| StoreError::Other(e.to_string()))?,
                validated: sqlx::Row::try_get(row, "c_validated")?,
                error: sqlx::Row::try_get(row, "c_error")?,
            });
        }
    }};
}

/// Which authorization to read: by its id or by one of its challenges.
#[derive(Debug, Clone, Copy)]
pub enum AuthzKey {
    Authz(i64),
    Challenge(i64),
}

/// The result of one validation attempt.
#[derive(Debug, Clone)]
pub enum ValidationOutcome {
    Valid,
    /// The problem document to record on the challenge, the authorization's
    /// order and (as the order's error) for the client.
    Invalid(String),
}

const ORDER_COLUMNS: &str = "id, account_id, status, identifiers, not_before, not_after, expires, error, \
                             certificate_serial, replaces_serial, replaces, created_at";

/// One validation result as three updates in a transaction (SQLite).
async fn record_validation_in_steps(
    pool: &sqlx::SqlitePool,
    challenge_id: i64,
    status: &str,
    at: i64,
    error: Option<&str>,
) -> Result<(), StoreError> {
    let challenge = sql!(
        "UPDATE acme_challenges SET status = $2, validated = $3, error = $4 \
         WHERE id = $1 AND status = {CHALLENGE_PROCESSING} RETURNING authz_id"
    );
    let authz = sql!(
        "UPDATE acme_authorizations SET status = $2 WHERE id = $1 AND status = {AUTHZ_PENDING} RETURNING order_id"
    );
    let ready = sql!(
        "UPDATE acme_orders SET status = {ORDER_READY} WHERE id = $1 AND status = {ORDER_PENDING} \
         AND NOT EXISTS (SELECT 1 FROM acme_authorizations WHERE order_id = $1 AND status <> {AUTHZ_VALID})"
    );
    let invalid = sql!(
        "UPDATE acme_orders SET status = {ORDER_INVALID}, error = $2 \
         WHERE id = $1 AND status IN ({ORDER_PENDING}, {ORDER_READY})"
    );
    let mut tx = begin_write(pool).await?;
    let authz_id: Option<i64> = sqlx::query_scalar(challenge)
        .bind(challenge_id)
        .bind(status)
        .bind(at)
        .bind(error)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(authz_id) = authz_id else {
        return Ok(());
    };
    let order_id: Option<i64> = sqlx::query_scalar(authz).bind(authz_id).bind(status).fetch_optional(&mut *tx).await?;
    if let Some(order_id) = order_id {
        match error {
            None => sqlx::query(ready).bind(order_id).execute(&mut *tx).await?,
            Some(problem) => sqlx::query(invalid).bind(order_id).bind(problem).execute(&mut *tx).await?,
        };
    }
    tx.commit().await?;
    Ok(())
}

impl AcmeStore {
    /// Orders with the ids of their authorizations, one answer per id in
    /// `ids` (None for an unknown one); on PostgreSQL one statement for
    /// them all (`storage::batch`).
    pub async fn acme_orders_with_authz_ids(&self, ids: &[i64]) -> Result<Vec<Option<OrderWithAuthzIds>>, StoreError> {
        let rows = match self.db() {
            Db::Postgres(pool) => {
                let sql = format!(
                    "SELECT {ORDER_COLUMNS}, (SELECT string_agg(CAST(a.id AS TEXT), ',' ORDER BY a.id) \
                     FROM acme_authorizations a WHERE a.order_id = o.id) AS authz_ids \
                     FROM acme_orders o WHERE o.id = ANY($1)"
                );
                let mut rows = Vec::new();
                for row in sqlx::query(sqlx::AssertSqlSafe(sql)).bind(ids).fetch_all(pool).await? {
                    rows.push(order_with_authz_ids!(&row));
                }
                rows
            }
            Db::Sqlite(pool) => {
                let sql = format!(
                    "SELECT {ORDER_COLUMNS}, (SELECT group_concat(id, ',') FROM (SELECT a.id FROM \
                     acme_authorizations a WHERE a.order_id = o.id ORDER BY a.id)) AS authz_ids \
                     FROM acme_orders o WHERE o.id = $1"
                );
                let mut rows = Vec::new();
                for id in ids {
                    if let Some(row) =
                        sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(id).fetch_optional(pool).await?
                    {
                        rows.push(order_with_authz_ids!(&row));
                    }
                }
                rows
            }
        };
        Ok(ids.iter().map(|id| rows.iter().find(|(order, _)| order.id == *id).cloned()).collect())
    }

    /// Order ids of an account, oldest first, after `after_id`.
    pub async fn list_acme_order_ids(
        &self,
        account_id: i64,
        after_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<i64>, StoreError> {
        const SQL: &str = "SELECT id FROM acme_orders WHERE account_id = $1 AND id > COALESCE($2, 0) \
             ORDER BY id LIMIT $3";
        with_pool!(self.db(), pool => sqlx::query_scalar::<_, i64>(SQL)
            .bind(account_id).bind(after_id).bind(limit).fetch_all(pool).await.map_err(StoreError::from))
    }

    /// Whether the account holds a valid, unexpired authorization for the
    /// identifier (tagged, a wildcard's without `*.`) through any of its
    /// orders: RFC 8555 §7.6 lets such an account revoke.
    pub async fn acme_account_holds_authorization(
        &self,
        account_id: i64,
        identifier: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let sql = sql!(
            "SELECT 1 FROM acme_orders o JOIN acme_authorizations a ON a.order_id = o.id \
             WHERE o.account_id = $1 AND a.identifier = $2 AND a.status = {AUTHZ_VALID} AND a.expires > $3 LIMIT 1"
        );
        with_pool!(self.db(), pool => sqlx::query(sql).bind(account_id).bind(identifier).bind(now)
            .fetch_optional(pool).await.map(|row| row.is_some()).map_err(StoreError::from))
    }

    /// Authorizations with their challenges, one answer per key in `keys`
    /// (None for an unknown one); on PostgreSQL one statement for them all
    /// (`storage::batch`).
    pub async fn acme_authzs_with_challenges(
        &self,
        keys: &[AuthzKey],
    ) -> Result<Vec<Option<AuthzWithChallenges>>, StoreError> {
        const SELECT: &str = "SELECT a.id, a.order_id, a.account_id, a.identifier, a.wildcard, a.status, a.expires, \
             c.id AS c_id, c.kind AS c_kind, c.token AS c_token, c.status AS c_status, \
             c.validated AS c_validated, c.error AS c_error \
             FROM acme_authorizations a LEFT JOIN acme_challenges c ON c.authz_id = a.id";
        let mut found: Vec<AuthzWithChallenges> = Vec::new();
        match self.db() {
            Db::Postgres(pool) => {
                let (mut authz_ids, mut challenge_ids) = (Vec::new(), Vec::new());
                for key in keys {
                    match key {
                        AuthzKey::Authz(id) => authz_ids.push(*id),
                        AuthzKey::Challenge(id) => challenge_ids.push(*id),
                    }
                }
                // The ids are gathered first (an init plan), so that the
                // authorizations are found through their key. Written as an
                // `OR` with the challenge subquery, the filter could only be
                // checked row by row: every read scanned both tables.
                let sql = format!(
                    "{SELECT} WHERE a.id = ANY(ARRAY(SELECT unnest($1::INT8[]) \
                     UNION ALL SELECT authz_id FROM acme_challenges WHERE id = ANY($2))) ORDER BY a.id, c.id"
                );
                let rows =
                    sqlx::query(sqlx::AssertSqlSafe(sql)).bind(authz_ids).bind(challenge_ids).fetch_all(pool).await?;
                for row in &rows {
                    group_authz_row!(found, row);
                }
            }
            Db::Sqlite(pool) => {
                for key in keys {
                    let (filter, id) = match key {
                        AuthzKey::Authz(id) => ("$1", id),
                        AuthzKey::Challenge(id) => ("(SELECT authz_id FROM acme_challenges WHERE id = $1)", id),
                    };
                    let sql = format!("{SELECT} WHERE a.id = {filter} ORDER BY c.id");
                    for row in &sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_all(pool).await? {
                        group_authz_row!(found, row);
                    }
                }
            }
        }
        Ok(keys
            .iter()
            .map(|key| {
                found
                    .iter()
                    .find(|(authz, challenges)| match key {
                        AuthzKey::Authz(id) => authz.id == *id,
                        AuthzKey::Challenge(id) => challenges.iter().any(|c| c.id == *id),
                    })
                    .cloned()
            })
            .collect())
    }

    /// Moves pending challenges of pending authorizations to processing,
    /// one answer per id: false when someone else started it or the
    /// authorization moved on. On PostgreSQL one statement (and one commit)
    /// for them all (`storage::batch`).
    pub async fn start_acme_challenges(&self, ids: &[i64], now: i64) -> Result<Vec<bool>, StoreError> {
        // A challenge that may start: pending, of a pending authorization.
        fn startable() -> &'static str {
            sql!(
                "status = {CHALLENGE_PENDING} \
                 AND authz_id IN (SELECT id FROM acme_authorizations WHERE status = {AUTHZ_PENDING})"
            )
        }
        match self.db() {
            Db::Postgres(pool) => {
                let sql = sql!(
                    "UPDATE acme_challenges SET status = {CHALLENGE_PROCESSING}, started_at = $2 \
                     WHERE id = ANY($1) AND {} RETURNING id",
                    startable()
                );
                let mut started: Vec<i64> = sqlx::query_scalar(sql).bind(ids).bind(now).fetch_all(pool).await?;
                // A challenge named twice is started for its first request only.
                Ok(ids
                    .iter()
                    .map(|id| started.iter().position(|s| s == id).map(|at| started.swap_remove(at)).is_some())
                    .collect())
            }
            Db::Sqlite(pool) => {
                let sql = sql!(
                    "UPDATE acme_challenges SET status = {CHALLENGE_PROCESSING}, started_at = $2 \
                     WHERE id = $1 AND {}",
                    startable()
                );
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    let done = sqlx::query(sql).bind(id).bind(now).execute(pool).await?;
                    out.push(done.rows_affected() == 1);
                }
                Ok(out)
            }
        }
    }

    /// Challenges still processing that started before `before` (or before
    /// starts were recorded), whose authorization is pending and unexpired
    /// at `now`: validations a stopped node left unfinished. With each, its
    /// identifier, its account's key and the start it was listed with.
    pub async fn stalled_acme_challenges(
        &self,
        before: i64,
        now: i64,
        limit: i64,
    ) -> Result<Vec<StalledChallenge>, StoreError> {
        let sql = sql!(
            "SELECT c.id, c.authz_id, c.account_id, c.kind, c.token, c.status, c.validated, c.error, \
             c.started_at, a.identifier, acc.jwk, acc.policy FROM acme_challenges c \
             JOIN acme_authorizations a ON a.id = c.authz_id JOIN acme_accounts acc ON acc.id = c.account_id \
             WHERE c.status = {CHALLENGE_PROCESSING} AND (c.started_at IS NULL OR c.started_at < $1) \
             AND a.status = {AUTHZ_PENDING} AND a.expires > $2 ORDER BY c.id LIMIT $3"
        );
        with_pool!(self.db(), pool => {
            let rows = sqlx::query(sql).bind(before).bind(now).bind(limit).fetch_all(pool).await?;
            rows.iter()
                .map(|row| {
                    Ok(StalledChallenge {
                        challenge: <AcmeChallengeRecord as sqlx::FromRow<_>>::from_row(row)?,
                        started_at: sqlx::Row::try_get(row, "started_at")?,
                        identifier: sqlx::Row::try_get(row, "identifier")?,
                        jwk: sqlx::Row::try_get(row, "jwk")?,
                        policy: sqlx::Row::try_get(row, "policy")?,
                    })
                })
                .collect()
        })
    }

    /// Takes up a stalled challenge: restarts its clock at `now` if it is
    /// still processing with the start it was listed with, so of several
    /// nodes that listed it one resumes it.
    pub async fn claim_stalled_acme_challenge(&self, stalled: &StalledChallenge, now: i64) -> Result<bool, StoreError> {
        let sql = sql!(
            "UPDATE acme_challenges SET started_at = $3 \
             WHERE id = $1 AND status = {CHALLENGE_PROCESSING} AND COALESCE(started_at, -1) = COALESCE($2, -1)"
        );
        with_pool!(self.db(), pool => {
            let done = sqlx::query(sql).bind(stalled.challenge.id).bind(stalled.started_at).bind(now).execute(pool).await?;
            Ok(done.rows_affected() == 1)
        })
    }

    /// Records validation results and carries each up: the authorization
    /// becomes valid or invalid, and the order ready (all valid) or invalid.
    /// `(challenge id, outcome, at)` per result; a challenge no longer
    /// processing is left as it is. On PostgreSQL one statement (and one
    /// commit) for them all (`storage::batch`).
    pub async fn record_acme_validations(
        &self,
        results: &[(i64, ValidationOutcome, i64)],
    ) -> Result<Vec<()>, StoreError> {
        let rows = results.iter().map(|(id, outcome, at)| {
            // A challenge's outcome is its authorization's too: the two
            // kinds spell valid and invalid alike (a test checks).
            let (status, error) = match outcome {
                ValidationOutcome::Valid => (ChallengeStatus::Valid.as_str(), None),
                ValidationOutcome::Invalid(problem) => (ChallengeStatus::Invalid.as_str(), Some(problem.as_str())),
            };
            (*id, status, *at, error)
        });
        match self.db() {
            Db::Postgres(pool) => {
                // The three updates for every result at once. The data-modifying
                // CTEs see the snapshot from before the statement, so an order
                // is ready when every authorization not validated here is
                // already valid. A challenge named twice, or two challenges of
                // one authorization, are settled by one of their results, as
                // if that one had come first.
                let cascade = sql!(
                    "WITH r AS (SELECT * FROM unnest($1::INT8[], $2::TEXT[], $3::INT8[], $4::TEXT[]) \
                     AS r(id, status, at, error)), \
                     c AS (UPDATE acme_challenges ch SET status = r.status, validated = r.at, error = r.error \
                       FROM r WHERE ch.id = r.id AND ch.status = {CHALLENGE_PROCESSING} \
                       RETURNING ch.authz_id, r.status, r.error), \
                     a AS (UPDATE acme_authorizations au SET status = c.status FROM c \
                       WHERE au.id = c.authz_id AND au.status = {AUTHZ_PENDING} RETURNING au.id, au.order_id, c.error), \
                     o AS (SELECT order_id, max(error) AS error FROM a GROUP BY order_id) \
                     UPDATE acme_orders ord SET \
                       status = CASE WHEN o.error IS NULL THEN {ORDER_READY} ELSE {ORDER_INVALID} END, \
                       error = COALESCE(o.error, ord.error) \
                     FROM o WHERE ord.id = o.order_id AND ( \
                       (o.error IS NULL AND ord.status = {ORDER_PENDING} AND NOT EXISTS \
                         (SELECT 1 FROM acme_authorizations x \
                         WHERE x.order_id = ord.id AND x.status <> {AUTHZ_VALID} AND x.id NOT IN (SELECT id FROM a))) \
                       OR (o.error IS NOT NULL AND ord.status IN ({ORDER_PENDING}, {ORDER_READY})))"
                );
                let (mut ids, mut statuses, mut ats, mut errors) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
                for (id, status, at, error) in rows {
                    ids.push(id);
                    statuses.push(status);
                    ats.push(at);
                    errors.push(error);
                }
                sqlx::query(cascade).bind(ids).bind(statuses).bind(ats).bind(errors).execute(pool).await?;
            }
            Db::Sqlite(pool) => {
                for (id, status, at, error) in rows {
                    record_validation_in_steps(pool, id, status, at, error).await?;
                }
            }
        }
        Ok(vec![(); results.len()])
    }

    /// Deactivates an authorization (§7.5.2); its order can no longer
    /// become ready.
    pub async fn deactivate_acme_authorization(&self, id: i64) -> Result<bool, StoreError> {
        let authz = sql!(
            "UPDATE acme_authorizations SET status = {AUTHZ_DEACTIVATED} \
             WHERE id = $1 AND status IN ({AUTHZ_PENDING}, {AUTHZ_VALID}) RETURNING order_id"
        );
        let order = sql!(
            "UPDATE acme_orders SET status = {ORDER_INVALID} WHERE id = $1 AND status IN ({ORDER_PENDING}, {ORDER_READY})"
        );
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await?;
            let order_id: Option<i64> = sqlx::query_scalar(authz).bind(id).fetch_optional(&mut *tx).await?;
            let Some(order_id) = order_id else {
                return Ok(false);
            };
            sqlx::query(order).bind(order_id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Ends a finalization that failed: the order is invalid with the
    /// problem. (A successful one ends as the certificate is recorded, see
    /// [`super::Succession::acme_order`].)
    pub async fn fail_acme_finalize(&self, order_id: i64, problem: &str) -> Result<(), StoreError> {
        let sql = sql!(
            "UPDATE acme_orders SET status = {ORDER_INVALID}, error = $2 WHERE id = $1 AND status = {ORDER_PROCESSING}"
        );
        with_pool!(self.db(), pool => sqlx::query(sql).bind(order_id).bind(problem)
            .execute(pool).await.map(|_| ()).map_err(StoreError::from))
    }

    /// The order that produced a certificate, if it came from ACME.
    pub async fn acme_order_for_certificate(&self, serial: &[u8]) -> Result<Option<AcmeOrderRecord>, StoreError> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM acme_orders WHERE certificate_serial = $1");
        with_pool!(self.db(), pool => sqlx::query_as::<_, AcmeOrderRecord>(sqlx::AssertSqlSafe(sql))
            .bind(serial).fetch_optional(pool).await.map_err(StoreError::from))
    }

    /// Certificates ACME orders produced, each with the account that ordered
    /// it, one answer per serial (None for an unknown one): certificate
    /// downloads, on PostgreSQL one statement for them all (`storage::batch`).
    pub async fn acme_certificates(
        &self,
        serials: &[Vec<u8>],
    ) -> Result<Vec<Option<(CertificateRecord, i64)>>, StoreError> {
        let select = |filter: &str| {
            format!(
                "SELECT c.*, o.account_id AS acme_account_id FROM (SELECT {CERTIFICATE_COLUMNS} FROM certificates \
                 WHERE serial {filter}) c JOIN acme_orders o ON o.certificate_serial = c.serial"
            )
        };
        // A row as (certificate, ordering account).
        macro_rules! parse {
            ($row:expr) => {{
                let row = $row;
                let account_id: i64 = sqlx::Row::try_get(row, "acme_account_id")?;
                (<CertificateRecord as sqlx::FromRow<_>>::from_row(row)?, account_id)
            }};
        }
        let mut found = Vec::new();
        match self.db() {
            Db::Postgres(pool) => {
                let sql = select("= ANY($1)");
                for row in &sqlx::query(sqlx::AssertSqlSafe(sql)).bind(serials).fetch_all(pool).await? {
                    found.push(parse!(row));
                }
            }
            Db::Sqlite(pool) => {
                let sql = select("= $1");
                for serial in serials {
                    let row = sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).bind(serial).fetch_optional(pool).await?;
                    if let Some(row) = &row {
                        found.push(parse!(row));
                    }
                }
            }
        }
        Ok(serials.iter().map(|serial| found.iter().find(|(c, _)| &c.serial == serial).cloned()).collect())
    }

    pub async fn acme_replacements(&self, serial: &[u8]) -> Result<Vec<AcmeOrderRecord>, StoreError> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM acme_orders WHERE replaces_serial = $1 ORDER BY id DESC");
        with_pool!(self.db(), pool => sqlx::query_as::<_, AcmeOrderRecord>(sqlx::AssertSqlSafe(sql))
            .bind(serial).fetch_all(pool).await.map_err(StoreError::from))
    }
}
