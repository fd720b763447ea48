//! `GET /api/v1/jobs`: the background jobs run under database leases (and
//! the per-node ones), with their holder, last and next run, last error.

use axum::extract::State;
use serde::Serialize;

use super::AdminState;
use super::extract::{Authorized, Read};
use super::problem::ApiError;
use crate::clock::{from_unix, rfc3339};

#[derive(Debug, Serialize)]
pub struct JobsView {
    items: Vec<JobView>,
}

#[derive(Debug, Serialize)]
pub struct JobView {
    name: String,
    holder: String,
    lease_until: String,
    last_run: Option<String>,
    next_run: Option<String>,
    last_error: Option<String>,
    runs: i64,
}

/// `GET /api/v1/jobs`
pub async fn list(State(state): State<AdminState>, _: Authorized<Read>) -> Result<axum::Json<JobsView>, ApiError> {
    let time = |t: i64| rfc3339(from_unix(t));
    let items = state
        .store
        .jobs()
        .await?
        .into_iter()
        .map(|j| JobView {
            name: j.name,
            holder: j.holder,
            lease_until: time(j.lease_until),
            last_run: j.last_run.map(time),
            next_run: j.next_run.map(time),
            last_error: j.last_error,
            runs: j.runs,
        })
        .collect();
    Ok(axum::Json(JobsView { items }))
}
