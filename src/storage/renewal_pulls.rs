//! Renewal pulls: an operator's request that a fleet of certificates renew
//! now. One row per request, whatever the fleet's size; ACME Renewal
//! Information reads the pulls made since a certificate was issued.

use super::audit::insert_audit;
use super::status::sql::CERT_ISSUED;
use super::{AcmeStore, AdminStore, NewAuditEvent, StoreError, begin_write, like_escape, sql, with_pool};

impl AdminStore {
    /// The `sans` column of every issued, unexpired certificate of an
    /// authority, narrowed to those containing `fragment` when given.
    pub async fn live_certificate_sans(
        &self,
        authority_id: i64,
        now: i64,
        fragment: Option<&str>,
    ) -> Result<Vec<String>, StoreError> {
        let sql = sql!(
            "SELECT sans FROM certificates WHERE authority_id = $1 AND status = {CERT_ISSUED} AND not_after > $2 \
             AND ($3 IS NULL OR sans LIKE $3 ESCAPE '\\')"
        );
        let pattern = fragment.map(|f| format!("%{}%", like_escape(f)));
        with_pool!(self.db(), pool => sqlx::query_scalar::<_, String>(sql)
            .bind(authority_id).bind(now).bind(&pattern).fetch_all(pool).await.map_err(StoreError::from))
    }

    /// Records a pull (selector None: every certificate) with its audit event.
    pub async fn insert_renewal_pull(
        &self,
        authority_id: i64,
        selector: Option<&str>,
        audit: &NewAuditEvent,
    ) -> Result<(), StoreError> {
        const SQL: &str =
            "INSERT INTO renewal_pulls (authority_id, selector, pulled_at, actor) VALUES ($1, $2, $3, $4)";
        with_pool!(self.db(), pool => {
            let mut tx = begin_write(pool).await?;
            sqlx::query(SQL)
                .bind(authority_id)
                .bind(selector)
                .bind(audit.at)
                .bind(&audit.actor)
                .execute(&mut *tx)
                .await?;
            insert_audit!(&mut *tx, audit)?;
            tx.commit().await?;
            Ok(())
        })
    }
}

impl AcmeStore {
    /// Selectors of the pulls on an authority made at or after `since` (a
    /// certificate's creation); `None` in the list selects everything.
    pub async fn renewal_pulls_since(&self, authority_id: i64, since: i64) -> Result<Vec<Option<String>>, StoreError> {
        const SQL: &str = "SELECT selector FROM renewal_pulls WHERE authority_id = $1 AND pulled_at >= $2";
        with_pool!(self.db(), pool => sqlx::query_scalar::<_, Option<String>>(SQL)
            .bind(authority_id).bind(since).fetch_all(pool).await.map_err(StoreError::from))
    }
}
