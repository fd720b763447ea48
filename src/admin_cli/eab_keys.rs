//! `tessera admin eab-keys`: ACME External Account Binding keys; the HMAC
//! key is printed once, at creation.

use clap::Subcommand;
use serde_json::json;

use super::Shown;
use super::client::Client;
use super::confirm::{Yes, confirm};
use super::error::CliError;
use super::output::{Body, Cell, Column, View, column, list};
use super::pages::{self, PageArgs};

const PATH: [&str; 3] = ["api", "v1", "eab-keys"];

const ROWS: &[Column] = &[
    column("kid", "/kid", Cell::Text),
    column("policy", "/policy", Cell::Text),
    column("reusable", "/reusable", Cell::Text),
    column("accounts", "/bound_accounts", Cell::Text),
    column("created", "/created_at", Cell::Time),
    column("bound", "/bound_at", Cell::Time),
    column("revoked", "/revoked_at", Cell::Time),
];

/// A new key: the HMAC key last, on a line of its own.
const CREATED: &[Column] = &[
    column("kid", "/kid", Cell::Text),
    column("policy", "/policy", Cell::Text),
    column("reusable", "/reusable", Cell::Text),
    column("hmac key", "/hmac_key", Cell::Text),
];

const REVOKED: &[Column] = &[
    column("kid", "/kid", Cell::Text),
    column("policy", "/policy", Cell::Text),
    column("revoked", "/revoked_at", Cell::Time),
    column("accounts revoked", "/accounts_revoked", Cell::Text),
];

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List EAB keys (never an HMAC key).
    List(PageArgs),
    /// Create a key for a policy; its HMAC key is shown once.
    Create {
        /// The policy accounts made with the key inherit.
        #[arg(long)]
        policy: String,
        /// Any number of accounts may bind it (default: one).
        #[arg(long)]
        reusable: bool,
    },
    /// Revoke a key and the ACME accounts bound to it (asks first unless --yes).
    Revoke {
        /// The key id.
        kid: String,
        #[command(flatten)]
        yes: Yes,
    },
}

pub async fn run(command: Command, client: &Client) -> Result<Shown, CliError> {
    match command {
        Command::List(paging) => Ok(Shown::new(pages::fetch(client, &PATH, Vec::new(), &paging).await?, list(ROWS))),
        Command::Create { policy, reusable } => {
            let answer = client.post(&PATH, Some(&json!({ "policy": policy, "reusable": reusable }))).await?;
            eprintln!("The HMAC key is shown only now.");
            Ok(Shown::new(Body::Answer(answer), View::Object(CREATED)))
        }
        Command::Revoke { kid, yes } => {
            confirm(yes, &format!("Revoke EAB key {kid} and the ACME accounts bound to it"))?;
            let answer = client.post(&[&PATH[..], &[kid.as_str(), "revoke"]].concat(), None).await?;
            Ok(Shown::new(Body::Answer(answer), View::Object(REVOKED)))
        }
    }
}
