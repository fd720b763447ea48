//! `tessera admin expirations` and `tessera admin jobs`: what expires, what
//! is overdue, and the background jobs.

use super::Shown;
use super::client::Client;
use super::error::CliError;
use super::output::{Body, Cell, Column, View, column};

const EXPIRATIONS: &[Column] = &[
    column("authority", "/authority_id", Cell::Text),
    column("name", "/name", Cell::Text),
    column("status", "/status", Cell::Text),
    column("not after", "/not_after", Cell::Time),
    column("nearing expiry", "/nearing_expiry", Cell::Text),
    column("1h", "/expiring/1h", Cell::Text),
    column("24h", "/expiring/24h", Cell::Text),
    column("7d", "/expiring/7d", Cell::Text),
    column("overdue", "/overdue", Cell::Text),
    column("expired without successor", "/expired_without_successor", Cell::Text),
];

const JOBS: &[Column] = &[
    column("name", "/name", Cell::Text),
    column("holder", "/holder", Cell::Text),
    column("last run", "/last_run", Cell::Time),
    column("next run", "/next_run", Cell::Time),
    column("lease until", "/lease_until", Cell::Time),
    column("runs", "/runs", Cell::Text),
    column("last error", "/last_error", Cell::Text),
];

/// Per authority: certificates expiring within 1h/24h/7d, overdue, expired without successor.
pub async fn expirations(client: &Client) -> Result<Shown, CliError> {
    let answer = client.get(&["api", "v1", "expirations"], &[]).await?;
    Ok(Shown::new(Body::Answer(answer), View::Rows("/authorities", EXPIRATIONS)))
}

/// The background jobs: who holds each, when it last and next runs, its last error.
pub async fn jobs(client: &Client) -> Result<Shown, CliError> {
    let answer = client.get(&["api", "v1", "jobs"], &[]).await?;
    Ok(Shown::new(Body::Answer(answer), View::Rows("/items", JOBS)))
}
