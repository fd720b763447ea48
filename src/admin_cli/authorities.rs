//! `tessera admin authorities`: the root and issuing CAs, their chains,
//! and the operations on them (rotate, renew-all, CRL, OCSP responder).

use clap::Subcommand;
use serde_json::json;

use super::Shown;
use super::client::Client;
use super::confirm::{Yes, confirm};
use super::error::CliError;
use super::output::{Body, Cell, Column, View, column, list};
use super::pages::{self, PageArgs};

const PATH: [&str; 3] = ["api", "v1", "authorities"];

const ROWS: &[Column] = &[
    column("id", "/id", Cell::Text),
    column("name", "/name", Cell::Text),
    column("kind", "/kind", Cell::Text),
    column("status", "/status", Cell::Text),
    column("custody", "/custody", Cell::Text),
    column("algorithm", "/algorithm", Cell::Text),
    column("not after", "/not_after", Cell::Time),
];

const DETAIL: &[Column] = &[
    column("id", "/id", Cell::Text),
    column("name", "/name", Cell::Text),
    column("kind", "/kind", Cell::Text),
    column("parent", "/parent_id", Cell::Text),
    column("status", "/status", Cell::Text),
    column("subject", "/subject", Cell::Text),
    column("serial", "/serial", Cell::Text),
    column("ski", "/ski", Cell::Text),
    column("custody", "/custody", Cell::Text),
    column("key uri", "/key_uri", Cell::Text),
    column("algorithm", "/algorithm", Cell::Text),
    column("not before", "/not_before", Cell::Time),
    column("not after", "/not_after", Cell::Time),
];

const CRLS: &[Column] = &[
    column("authority", "/authority_id", Cell::Text),
    column("scope", "/scope", Cell::Text),
    column("number", "/crl_number", Cell::Text),
    column("this update", "/this_update", Cell::Time),
    column("next update", "/next_update", Cell::Time),
    column("entries", "/entries", Cell::Text),
];

const RENEW_ALL: &[Column] = &[
    column("authority", "/authority_id", Cell::Text),
    column("selector", "/san", Cell::Text),
    column("affected", "/affected", Cell::Text),
    column("renew from", "/renew_from", Cell::Time),
];

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the root and issuing CAs.
    List(PageArgs),
    /// One authority's details.
    Show {
        /// The authority's id.
        id: i64,
    },
    /// The authority's PEM chain, up to and including the root.
    Chain {
        /// The authority's id.
        id: i64,
    },
    /// Replace an active issuing CA with a successor now (asks first unless --yes).
    Rotate {
        /// The issuing authority's id.
        id: i64,
        #[command(flatten)]
        yes: Yes,
    },
    /// Ask the authority's certificates to renew now over ACME ARI (asks first unless --yes).
    RenewAll {
        /// The authority's id.
        id: i64,
        /// Only certificates naming this identifier, or `*.suffix` for DNS
        /// names below it; default: all.
        #[arg(long, value_name = "SELECTOR")]
        san: Option<String>,
        #[command(flatten)]
        yes: Yes,
    },
    /// Sign the authority's CRLs now.
    Crl {
        /// The authority's id.
        id: i64,
    },
    /// Replace the authority's OCSP responder key now.
    OcspRotate {
        /// The authority's id.
        id: i64,
    },
}

/// The path of authority `id`, then `rest`.
fn at(id: i64, rest: &[&str]) -> Vec<String> {
    PATH.iter().map(|s| (*s).to_owned()).chain([id.to_string()]).chain(rest.iter().map(|s| (*s).to_owned())).collect()
}

pub async fn run(command: Command, client: &Client) -> Result<Shown, CliError> {
    match command {
        Command::List(paging) => Ok(Shown::new(pages::fetch(client, &PATH, Vec::new(), &paging).await?, list(ROWS))),
        Command::Show { id } => {
            let answer = client.get(&at(id, &[]), &[]).await?;
            Ok(Shown::new(Body::Answer(answer), View::Object(DETAIL)))
        }
        Command::Chain { id } => Ok(Shown::new(Body::Answer(client.get_pem(&at(id, &["chain"])).await?), View::Raw)),
        Command::Rotate { id, yes } => {
            confirm(yes, &format!("Rotate issuing CA {id}: a successor signs from now on, and {id} retires"))?;
            let answer = client.post(&at(id, &["rotate"]), None).await?;
            Ok(Shown::new(Body::Answer(answer), View::Object(DETAIL)))
        }
        Command::RenewAll { id, san, yes } => {
            let which =
                san.as_deref().map_or_else(|| "every certificate".to_owned(), |s| format!("certificates naming {s}"));
            confirm(yes, &format!("Ask {which} of authority {id} to renew now"))?;
            let body = san.map_or_else(|| json!({}), |san| json!({ "san": san }));
            let answer = client.post(&at(id, &["renew-all"]), Some(&body)).await?;
            Ok(Shown::new(Body::Answer(answer), View::Object(RENEW_ALL)))
        }
        Command::Crl { id } => {
            let answer = client.post(&at(id, &["crl"]), None).await?;
            Ok(Shown::new(Body::Answer(answer), View::Rows("", CRLS)))
        }
        Command::OcspRotate { id } => {
            let answer = client.post(&at(id, &["ocsp-responder", "rotate"]), None).await?;
            Ok(Shown::new(
                Body::Answer(answer),
                View::Message(format!("Rotated the OCSP responder key of authority {id}.")),
            ))
        }
    }
}
