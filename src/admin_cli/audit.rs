//! `tessera admin audit`: the record of every change, newest first.

use clap::Args;

use super::Shown;
use super::client::Client;
use super::error::CliError;
use super::output::{Cell, Column, column, list};
use super::pages::{self, PageArgs};

const ROWS: &[Column] = &[
    column("id", "/id", Cell::Text),
    column("at", "/at", Cell::Time),
    column("actor", "/actor", Cell::Text),
    column("action", "/action", Cell::Text),
    column("target", "/target", Cell::Text),
    column("detail", "/detail", Cell::Json),
];

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only events with exactly this action (e.g. certificate.revoke).
    #[arg(long)]
    action: Option<String>,
    /// Only events with exactly this target (a serial, a policy name, a token id).
    #[arg(long)]
    target: Option<String>,
    #[command(flatten)]
    paging: PageArgs,
}

pub async fn run(args: AuditArgs, client: &Client) -> Result<Shown, CliError> {
    let query = [("action", args.action), ("target", args.target)];
    let query = query.into_iter().filter_map(|(key, value)| Some((key, value?))).collect();
    Ok(Shown::new(pages::fetch(client, &["api", "v1", "audit-events"], query, &args.paging).await?, list(ROWS)))
}
