//! New ACME orders, admitted against the account's rate limits and stored
//! with their authorizations and challenges. On PostgreSQL the orders of
//! many concurrent requests are judged and stored by one statement (one
//! commit, see `storage::batch`).
//!
//! Orders are counted per account in time buckets (`acme_order_counts`),
//! so a limit of 10 000 orders an hour costs a sum of at most 64 counters,
//! not a count of 10 000 rows, on every newOrder. The accounts an EAB key
//! bound count together (`acme_eab_order_counts`, and their failed
//! validations summed), so one reusable key cannot multiply the limits by
//! binding more accounts; a key's sum includes each of its accounts' own.

use super::audit::insert_audit;
use super::status::sql::{CHALLENGE_INVALID, CHALLENGE_PENDING};
use super::{
    AcmeAuthzRecord, AcmeOrderRecord, AcmeStore, AuthzStatus, Db, NewAuditEvent, OrderStatus, StoreError, begin_write,
    one_row_each, sql,
};

/// Counter buckets per rate window: the count may include orders made up to
/// 1/64 of the window before it began (it errs towards refusing).
const BUCKETS_PER_WINDOW: i64 = 64;

/// An order to store with one authorization per identifier.
#[derive(Debug, Clone)]
pub struct NewAcmeOrder {
    pub account_id: i64,
    pub identifiers: String,
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    pub expires: i64,
    pub replaces_serial: Option<Vec<u8>>,
    pub replaces: Option<String>,
    pub created_at: i64,
    pub authorizations: Vec<NewAcmeAuthz>,
    /// Set when the account's EAB binding authorizes the order: it is
    /// stored ready, its authorizations valid (they carry no challenges),
    /// and this event is recorded with it, its target the order.
    pub by_binding: Option<NewAuditEvent>,
}

impl NewAcmeOrder {
    fn status(&self) -> OrderStatus {
        if self.by_binding.is_some() { OrderStatus::Ready } else { OrderStatus::Pending }
    }

    fn authz_status(&self) -> AuthzStatus {
        if self.by_binding.is_some() { AuthzStatus::Valid } else { AuthzStatus::Pending }
    }

    /// The binding's audit event, naming the order stored as `id`.
    fn binding_audit(&self, id: i64) -> Option<NewAuditEvent> {
        self.by_binding.as_ref().map(|event| NewAuditEvent { target: format!("acme:order:{id}"), ..event.clone() })
    }
}

#[derive(Debug, Clone)]
pub struct NewAcmeAuthz {
    pub identifier: String,
    pub wildcard: bool,
    /// (challenge type, token) pairs.
    pub challenges: Vec<(String, String)>,
}

/// The limits a new order must fit in: fewer than `max_orders` orders and
/// fewer than `max_failed` failed validations by its account in the window
/// that ends at its creation, or by all accounts of its account's EAB key.
#[derive(Debug, Clone, Copy)]
pub struct OrderLimits {
    window_seconds: i64,
    max_orders: i64,
    max_failed: i64,
    /// The EAB key whose accounts count together; None: the account alone.
    eab_key_id: Option<i64>,
}

impl OrderLimits {
    pub fn new(window_seconds: i64, max_orders: u32, max_failed: u32) -> Self {
        Self {
            window_seconds: window_seconds.max(1),
            max_orders: max_orders.into(),
            max_failed: max_failed.into(),
            eab_key_id: None,
        }
    }

    /// Counts the orders and failed validations of every account that the
    /// EAB key bound, when the account was made with one.
    pub fn per_eab_key(self, eab_key_id: Option<i64>) -> Self {
        Self { eab_key_id, ..self }
    }

    fn bucket_width(self) -> i64 {
        (self.window_seconds / BUCKETS_PER_WINDOW).max(1)
    }

    /// The bucket an order made at `now` is counted in (its first second).
    fn bucket(self, now: i64) -> i64 {
        now - now.rem_euclid(self.bucket_width())
    }

    /// Failed validations count from this second on.
    fn since(self, now: i64) -> i64 {
        now - self.window_seconds
    }

    /// The earliest bucket that overlaps the window.
    fn counted_from(self, now: i64) -> i64 {
        self.since(now) - self.bucket_width() + 1
    }
}

/// A new order and the limits it must fit in.
#[derive(Debug, Clone)]
pub struct OrderRequest {
    pub order: NewAcmeOrder,
    pub limits: OrderLimits,
}

/// What became of one new order: stored, with its authorizations, or
/// refused under a rate limit.
pub type Admission = Result<(AcmeOrderRecord, Vec<AcmeAuthzRecord>), RateLimited>;

/// The limit a refused order would have gone beyond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimited {
    /// The account (or its EAB key's accounts) made `max_orders` orders in the window.
    TooManyOrders,
    /// The account (or its EAB key's accounts) failed `max_failed` validations in the window.
    TooManyFailures,
}

impl AcmeStore {
    /// Judges each order against its limits and stores those that fit, one
    /// answer per request. Orders of one account in the same call count
    /// towards each other in order. Two calls running at once may each
    /// admit an account's last allowed order: the limit guards against
    /// runaway clients, it does not meter.
    pub async fn admit_acme_orders(&self, requests: &[OrderRequest]) -> Result<Vec<Admission>, StoreError> {
        match self.db() {
            Db::Postgres(pool) => admit_at_once(pool, requests).await,
            Db::Sqlite(pool) => admit_in_steps(pool, requests).await,
        }
    }
}

/// The record of an order just stored as `id`.
fn created(id: i64, order: &NewAcmeOrder) -> AcmeOrderRecord {
    AcmeOrderRecord {
        id,
        account_id: order.account_id,
        status: order.status(),
        identifiers: order.identifiers.clone(),
        not_before: order.not_before,
        not_after: order.not_after,
        expires: order.expires,
        error: None,
        certificate_serial: None,
        replaces_serial: order.replaces_serial.clone(),
        replaces: order.replaces.clone(),
        created_at: order.created_at,
    }
}

/// The record of an authorization just stored for `order`.
fn fresh_authz(id: i64, order_id: i64, order: &NewAcmeOrder, authz: &NewAcmeAuthz) -> AcmeAuthzRecord {
    AcmeAuthzRecord {
        id,
        order_id,
        account_id: order.account_id,
        identifier: authz.identifier.clone(),
        wildcard: authz.wildcard,
        status: order.authz_status(),
        expires: order.expires,
    }
}

/// PostgreSQL: one statement judges every order (its account's counters,
/// or its EAB key's, plus the orders before it in the call of the same
/// account or key; the failed validations of the account, or of the key's
/// accounts, up to the limit), takes ids from the sequences for the
/// admitted ones and their authorizations, and stores orders,
/// authorizations, challenges and the counters. Counters are upserted in
/// key order, so two calls cannot deadlock on them.
async fn admit_at_once(pool: &sqlx::PgPool, requests: &[OrderRequest]) -> Result<Vec<Admission>, StoreError> {
    let sql = sql!(
        "WITH input AS MATERIALIZED (SELECT * FROM unnest($1::INT8[], $2::TEXT[], $3::INT8[], \
         $4::INT8[], $5::INT8[], $6::BYTEA[], $7::TEXT[], $8::INT8[], $9::INT8[], $10::INT8[], $11::INT8[], \
         $12::INT8[], $13::INT8[], $20::INT8[], $21::TEXT[], $22::TEXT[]) WITH ORDINALITY AS i(account_id, \
         identifiers, not_before, not_after, expires, replaces_serial, replaces, created_at, since, counted_from, \
         bucket, max_orders, max_failed, eab_key_id, status, authz_status, n)), \
         judged AS MATERIALIZED (SELECT i.*, \
         (CASE WHEN i.eab_key_id IS NULL THEN (SELECT COALESCE(SUM(c.orders), 0) FROM acme_order_counts c \
          WHERE c.account_id = i.account_id AND c.bucket >= i.counted_from) \
          ELSE (SELECT COALESCE(SUM(c.orders), 0) FROM acme_eab_order_counts c \
          WHERE c.eab_key_id = i.eab_key_id AND c.bucket >= i.counted_from) END)::INT8 \
         + row_number() OVER (PARTITION BY i.eab_key_id, CASE WHEN i.eab_key_id IS NULL THEN i.account_id END \
         ORDER BY i.n) AS nth, \
         (SELECT COUNT(*) FROM (SELECT 1 FROM acme_challenges ch WHERE ch.account_id = ANY(CASE \
          WHEN i.eab_key_id IS NULL THEN ARRAY[i.account_id] \
          ELSE ARRAY(SELECT a.id FROM acme_accounts a WHERE a.eab_key_id = i.eab_key_id) END) \
          AND ch.status = {CHALLENGE_INVALID} AND ch.validated >= i.since LIMIT i.max_failed) f) AS failed \
         FROM input i), \
         admitted AS MATERIALIZED (SELECT j.*, nextval(pg_get_serial_sequence('acme_orders', 'id')) AS id \
         FROM judged j WHERE j.nth <= j.max_orders AND j.failed < j.max_failed ORDER BY j.n), \
         o AS (INSERT INTO acme_orders (id, account_id, status, identifiers, not_before, not_after, expires, \
         replaces_serial, replaces, created_at) OVERRIDING SYSTEM VALUE \
         SELECT id, account_id, status, identifiers, not_before, not_after, expires, replaces_serial, replaces, \
         created_at FROM admitted), \
         authz AS MATERIALIZED (SELECT w.n, w.order_n, ad.id AS order_id, ad.account_id, ad.expires, w.identifier, \
         w.wildcard, ad.authz_status, nextval(pg_get_serial_sequence('acme_authorizations', 'id')) AS id \
         FROM unnest($14::INT8[], $15::TEXT[], $16::BOOLEAN[]) WITH ORDINALITY AS w(order_n, identifier, wildcard, n) \
         JOIN admitted ad ON ad.n = w.order_n ORDER BY w.n), \
         a AS (INSERT INTO acme_authorizations (id, order_id, account_id, identifier, wildcard, status, expires) \
         OVERRIDING SYSTEM VALUE SELECT id, order_id, account_id, identifier, wildcard, authz_status, expires \
         FROM authz), \
         ch AS (INSERT INTO acme_challenges (authz_id, account_id, kind, token, status) \
         SELECT authz.id, authz.account_id, c.kind, c.token, {CHALLENGE_PENDING} \
         FROM unnest($17::INT8[], $18::TEXT[], $19::TEXT[]) AS c(authz_n, kind, token) JOIN authz ON authz.n = c.authz_n), \
         counted AS (INSERT INTO acme_order_counts (account_id, bucket, orders) \
         SELECT account_id, bucket, COUNT(*) FROM admitted WHERE eab_key_id IS NULL \
         GROUP BY account_id, bucket ORDER BY account_id, bucket \
         ON CONFLICT (account_id, bucket) DO UPDATE SET orders = acme_order_counts.orders + EXCLUDED.orders), \
         counted_per_key AS (INSERT INTO acme_eab_order_counts (eab_key_id, bucket, orders) \
         SELECT eab_key_id, bucket, COUNT(*) FROM admitted WHERE eab_key_id IS NOT NULL \
         GROUP BY eab_key_id, bucket ORDER BY eab_key_id, bucket \
         ON CONFLICT (eab_key_id, bucket) DO UPDATE SET orders = acme_eab_order_counts.orders + EXCLUDED.orders) \
         SELECT ad.id, j.nth <= j.max_orders AS within_orders, \
         (SELECT array_agg(authz.id ORDER BY authz.n) FROM authz WHERE authz.order_n = j.n) AS authz_ids \
         FROM judged j LEFT JOIN admitted ad ON ad.n = j.n ORDER BY j.n"
    );
    let orders = || requests.iter().map(|r| &r.order);
    let limits = |f: fn(OrderLimits, i64) -> i64| -> Vec<i64> {
        requests.iter().map(|r| f(r.limits, r.order.created_at)).collect()
    };
    let (mut authz_orders, mut identifiers, mut wildcards) = (Vec::new(), Vec::new(), Vec::new());
    let (mut challenge_authzs, mut kinds, mut tokens) = (Vec::new(), Vec::new(), Vec::new());
    for (n, order) in orders().enumerate() {
        for authz in &order.authorizations {
            authz_orders.push(n as i64 + 1);
            identifiers.push(authz.identifier.as_str());
            wildcards.push(authz.wildcard);
            for (kind, token) in &authz.challenges {
                challenge_authzs.push(authz_orders.len() as i64);
                kinds.push(kind.as_str());
                tokens.push(token.as_str());
            }
        }
    }
    let query = sqlx::query_as::<_, (Option<i64>, bool, Option<Vec<i64>>)>(sql)
        .bind(orders().map(|o| o.account_id).collect::<Vec<_>>())
        .bind(orders().map(|o| o.identifiers.as_str()).collect::<Vec<_>>())
        .bind(orders().map(|o| o.not_before).collect::<Vec<_>>())
        .bind(orders().map(|o| o.not_after).collect::<Vec<_>>())
        .bind(orders().map(|o| o.expires).collect::<Vec<_>>())
        .bind(orders().map(|o| o.replaces_serial.as_deref()).collect::<Vec<_>>())
        .bind(orders().map(|o| o.replaces.as_deref()).collect::<Vec<_>>())
        .bind(orders().map(|o| o.created_at).collect::<Vec<_>>())
        .bind(limits(OrderLimits::since))
        .bind(limits(OrderLimits::counted_from))
        .bind(limits(OrderLimits::bucket))
        .bind(limits(|l, _| l.max_orders))
        .bind(limits(|l, _| l.max_failed))
        .bind(authz_orders)
        .bind(identifiers)
        .bind(wildcards)
        .bind(challenge_authzs)
        .bind(kinds)
        .bind(tokens)
        .bind(requests.iter().map(|r| r.limits.eab_key_id).collect::<Vec<_>>())
        .bind(orders().map(|o| o.status().as_str()).collect::<Vec<_>>())
        .bind(orders().map(|o| o.authz_status().as_str()).collect::<Vec<_>>());
    let rows = if orders().all(|o| o.by_binding.is_none()) {
        one_row_each("new orders", requests.len(), query.fetch_all(pool).await?)?
    } else {
        // Orders authorized by binding commit with their audit events.
        let mut tx = pool.begin().await?;
        let rows = one_row_each("new orders", requests.len(), query.fetch_all(&mut *tx).await?)?;
        for ((id, _, _), order) in rows.iter().zip(orders()) {
            if let Some(event) = id.and_then(|id| order.binding_audit(id)) {
                insert_audit!(&mut *tx, event)?;
            }
        }
        tx.commit().await?;
        rows
    };
    Ok(rows
        .into_iter()
        .zip(orders())
        .map(|((id, within_orders, authz_ids), order)| match id {
            Some(id) => Ok((
                created(id, order),
                authz_ids
                    .unwrap_or_default()
                    .into_iter()
                    .zip(&order.authorizations)
                    .map(|(authz_id, authz)| fresh_authz(authz_id, id, order, authz))
                    .collect(),
            )),
            None if within_orders => Err(RateLimited::TooManyFailures),
            None => Err(RateLimited::TooManyOrders),
        })
        .collect())
}

/// The statements that count for one account, or for all accounts of one
/// EAB key, on SQLite: orders in the window (`$1` the account or key,
/// `$2` the first bucket), failed validations (`$2` the start, `$3` the
/// limit), and the counter an order adds to (`$2` its bucket).
struct Counting {
    orders: &'static str,
    failed: &'static str,
    count: &'static str,
}

impl Counting {
    fn per_account() -> Self {
        Counting {
            orders: "SELECT COALESCE(SUM(orders), 0) FROM acme_order_counts WHERE account_id = $1 AND bucket >= $2",
            failed: sql!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM acme_challenges WHERE account_id = $1 \
                 AND status = {CHALLENGE_INVALID} AND validated >= $2 LIMIT $3)"
            ),
            count: "INSERT INTO acme_order_counts (account_id, bucket, orders) VALUES ($1, $2, 1) \
                 ON CONFLICT (account_id, bucket) DO UPDATE SET orders = orders + 1",
        }
    }

    fn per_eab_key() -> Self {
        Counting {
            orders: "SELECT COALESCE(SUM(orders), 0) FROM acme_eab_order_counts WHERE eab_key_id = $1 AND bucket >= $2",
            failed: sql!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM acme_challenges WHERE account_id IN \
                 (SELECT id FROM acme_accounts WHERE eab_key_id = $1) AND status = {CHALLENGE_INVALID} \
                 AND validated >= $2 LIMIT $3)"
            ),
            count: "INSERT INTO acme_eab_order_counts (eab_key_id, bucket, orders) VALUES ($1, $2, 1) \
                 ON CONFLICT (eab_key_id, bucket) DO UPDATE SET orders = orders + 1",
        }
    }
}

/// SQLite: the same judgement and writes, one statement each, in one
/// transaction (SQLite runs one writer at a time, so the counts are exact).
async fn admit_in_steps(pool: &sqlx::SqlitePool, requests: &[OrderRequest]) -> Result<Vec<Admission>, StoreError> {
    const ORDER: &str = "INSERT INTO acme_orders (account_id, status, identifiers, not_before, not_after, expires, \
         replaces_serial, replaces, created_at) VALUES ($1, $9, $2, $3, $4, $5, $6, $7, $8) RETURNING id";
    const AUTHZ: &str = "INSERT INTO acme_authorizations (order_id, account_id, identifier, wildcard, status, \
         expires) VALUES ($1, $2, $3, $4, $6, $5) RETURNING id";
    let insert_challenge = sql!(
        "INSERT INTO acme_challenges (authz_id, account_id, kind, token, status) \
         VALUES ($1, $2, $3, $4, {CHALLENGE_PENDING})"
    );
    let mut tx = begin_write(pool).await?;
    let mut out = Vec::with_capacity(requests.len());
    for OrderRequest { order, limits } in requests {
        let (account, now) = (order.account_id, order.created_at);
        let (counting, counted) = match limits.eab_key_id {
            Some(key) => (Counting::per_eab_key(), key),
            None => (Counting::per_account(), account),
        };
        let orders: i64 = sqlx::query_scalar(counting.orders)
            .bind(counted)
            .bind(limits.counted_from(now))
            .fetch_one(&mut *tx)
            .await?;
        if orders >= limits.max_orders {
            out.push(Err(RateLimited::TooManyOrders));
            continue;
        }
        let failed: i64 = sqlx::query_scalar(counting.failed)
            .bind(counted)
            .bind(limits.since(now))
            .bind(limits.max_failed)
            .fetch_one(&mut *tx)
            .await?;
        if failed >= limits.max_failed {
            out.push(Err(RateLimited::TooManyFailures));
            continue;
        }
        let id: i64 = sqlx::query_scalar(ORDER)
            .bind(account)
            .bind(&order.identifiers)
            .bind(order.not_before)
            .bind(order.not_after)
            .bind(order.expires)
            .bind(&order.replaces_serial)
            .bind(&order.replaces)
            .bind(now)
            .bind(order.status().as_str())
            .fetch_one(&mut *tx)
            .await?;
        let mut authzs = Vec::with_capacity(order.authorizations.len());
        for authz in &order.authorizations {
            let authz_id: i64 = sqlx::query_scalar(AUTHZ)
                .bind(id)
                .bind(account)
                .bind(&authz.identifier)
                .bind(authz.wildcard)
                .bind(order.expires)
                .bind(order.authz_status().as_str())
                .fetch_one(&mut *tx)
                .await?;
            for (kind, token) in &authz.challenges {
                sqlx::query(insert_challenge)
                    .bind(authz_id)
                    .bind(account)
                    .bind(kind)
                    .bind(token)
                    .execute(&mut *tx)
                    .await?;
            }
            authzs.push(fresh_authz(authz_id, id, order, authz));
        }
        sqlx::query(counting.count).bind(counted).bind(limits.bucket(now)).execute(&mut *tx).await?;
        if let Some(event) = order.binding_audit(id) {
            insert_audit!(&mut *tx, event)?;
        }
        out.push(Ok((created(id, order), authzs)));
    }
    tx.commit().await?;
    Ok(out)
}
