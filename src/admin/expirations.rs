//! `GET /api/v1/expirations`: per authority, how many issued certificates
//! expire within 1 h, 24 h and 7 d, how many are overdue for renewal, and
//! how many expired without a successor. The top-level figures are the
//! workloads'; Tessera's own certificates (TLS, OCSP responders, CA
//! certificates) are counted apart, under `internal`.

use axum::extract::State;
use serde::Serialize;

use super::AdminState;
use super::extract::{Authorized, Read};
use super::problem::ApiError;
use crate::clock::{from_unix, rfc3339};
use crate::storage::ExpirationCounts;

#[derive(Debug, Serialize)]
pub struct ExpirationsView {
    generated_at: String,
    overdue_share: f64,
    authorities: Vec<AuthorityExpirationsView>,
}

#[derive(Debug, Serialize)]
pub struct AuthorityExpirationsView {
    authority_id: i64,
    name: String,
    status: String,
    not_after: String,
    nearing_expiry: bool,
    #[serde(flatten)]
    workloads: KindCounts,
    internal: KindCounts,
}

#[derive(Debug, Serialize)]
pub struct KindCounts {
    expiring: WindowCounts,
    overdue: i64,
    expired_without_successor: i64,
}

impl From<&ExpirationCounts> for KindCounts {
    fn from(c: &ExpirationCounts) -> Self {
        Self {
            expiring: WindowCounts { hour: c.expiring_1h, day: c.expiring_24h, week: c.expiring_7d },
            overdue: c.overdue,
            expired_without_successor: c.expired_without_successor,
        }
    }
}

/// Cumulative: a certificate expiring within 1 h counts in all three.
#[derive(Debug, Serialize)]
pub struct WindowCounts {
    #[serde(rename = "1h")]
    hour: i64,
    #[serde(rename = "24h")]
    day: i64,
    #[serde(rename = "7d")]
    week: i64,
}

/// `GET /api/v1/expirations`
pub async fn summary(
    State(state): State<AdminState>,
    _: Authorized<Read>,
) -> Result<axum::Json<ExpirationsView>, ApiError> {
    let report = state.lifecycle.expirations().await?;
    let authorities = report
        .authorities
        .into_iter()
        .map(|a| AuthorityExpirationsView {
            authority_id: a.authority_id,
            name: a.name,
            status: a.status.to_string(),
            not_after: rfc3339(from_unix(a.not_after)),
            nearing_expiry: a.nearing_expiry,
            workloads: KindCounts::from(&a.counts),
            internal: KindCounts::from(&a.internal),
        })
        .collect();
    Ok(axum::Json(ExpirationsView {
        generated_at: rfc3339(from_unix(report.at)),
        overdue_share: report.overdue_share,
        authorities,
    }))
}
