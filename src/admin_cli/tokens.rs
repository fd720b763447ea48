//! `tessera admin tokens`: list, create (the secret printed once), revoke,
//! and bind to policies.

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;

use super::Shown;
use super::client::Client;
use super::confirm::{Yes, confirm};
use super::error::CliError;
use super::output::{Body, Cell, Column, View, column, list};
use super::pages::{self, PageArgs};
use super::times;

const PATH: [&str; 3] = ["api", "v1", "tokens"];

const ROWS: &[Column] = &[
    column("id", "/id", Cell::Text),
    column("name", "/name", Cell::Text),
    column("scope", "/scope", Cell::Text),
    column("policies", "/policies", Cell::Text),
    column("expires", "/expires_at", Cell::Time),
    column("revoked", "/revoked_at", Cell::Time),
    column("created", "/created_at", Cell::Time),
];

/// A new token: its secret last, on a line of its own.
const CREATED: &[Column] = &[
    column("id", "/id", Cell::Text),
    column("name", "/name", Cell::Text),
    column("scope", "/scope", Cell::Text),
    column("policies", "/policies", Cell::Text),
    column("expires", "/expires_at", Cell::Time),
    column("token", "/token", Cell::Text),
];

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List tokens with their scope, policies and expiry (never a secret).
    List(PageArgs),
    /// Create a token; its secret is shown once.
    Create(CreateArgs),
    /// Revoke a token (asks first unless --yes).
    Revoke {
        /// The token's id.
        id: i64,
        #[command(flatten)]
        yes: Yes,
    },
    /// Bind an issuer or operator token to exactly these policies.
    Bind {
        /// The token's id.
        id: i64,
        /// A policy; repeat for more.
        #[arg(long = "policy", value_name = "NAME", required = true)]
        policies: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scope {
    Admin,
    Operator,
    Issuer,
    Auditor,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Who holds it; audit events name them `token:<name>`.
    #[arg(long)]
    name: String,
    #[arg(long, value_enum)]
    scope: Scope,
    /// A policy it may use (issuer and operator tokens); repeat for more.
    #[arg(long = "policy", value_name = "NAME")]
    policies: Vec<String>,
    /// When it stops working, as an RFC 3339 time.
    #[arg(long, value_name = "TIME", conflicts_with = "expires_in")]
    expires_at: Option<String>,
    /// When it stops working, from now (e.g. 90d).
    #[arg(long, value_name = "DURATION")]
    expires_in: Option<String>,
}

pub async fn run(command: Command, client: &Client) -> Result<Shown, CliError> {
    match command {
        Command::List(paging) => Ok(Shown::new(pages::fetch(client, &PATH, Vec::new(), &paging).await?, list(ROWS))),
        Command::Create(args) => {
            let scope = args.scope.to_possible_value().map(|v| v.get_name().to_owned()).unwrap_or_default();
            let mut body = json!({ "name": args.name, "scope": scope });
            if !args.policies.is_empty() {
                body["policies"] = json!(args.policies);
            }
            let expires_at = match (&args.expires_at, &args.expires_in) {
                (Some(at), _) => Some(at.clone()),
                (None, Some(within)) => Some(times::from_now(times::parse_duration(within)?)?),
                (None, None) => None,
            };
            if let Some(at) = expires_at {
                body["expires_at"] = json!(at);
            }
            let answer = client.post(&PATH, Some(&body)).await?;
            eprintln!("The token is shown only now: Tessera keeps only its hash.");
            Ok(Shown::new(Body::Answer(answer), View::Object(CREATED)))
        }
        Command::Revoke { id, yes } => {
            confirm(yes, &format!("Revoke token {id}"))?;
            let id = id.to_string();
            let answer = client.post(&[&PATH[..], &[id.as_str(), "revoke"]].concat(), None).await?;
            Ok(Shown::new(Body::Answer(answer), View::Object(ROWS)))
        }
        Command::Bind { id, policies } => {
            let id = id.to_string();
            let segments = [&PATH[..], &[id.as_str(), "policies"]].concat();
            let answer = client.put(&segments, &json!({ "policies": policies })).await?;
            Ok(Shown::new(Body::Answer(answer), View::Object(ROWS)))
        }
    }
}
