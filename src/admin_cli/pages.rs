//! Listings: one page as the API sends it, or with `--all` every page
//! followed through `next_cursor` and joined into one list.

use serde::Deserialize;
use serde_json::{Value, json};

use super::client::Client;
use super::error::CliError;
use super::output::Body;

/// The paging flags every listing takes.
#[derive(Debug, Clone, clap::Args)]
pub struct PageArgs {
    /// Items per page (1 to 1000; the server's default is 100).
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
    /// Start after the page that gave this `next_cursor`.
    #[arg(long, value_name = "CURSOR", conflicts_with = "all")]
    pub cursor: Option<String>,
    /// Follow every page and show them as one list.
    #[arg(long)]
    pub all: bool,
}

#[derive(Deserialize)]
struct Page {
    items: Vec<Value>,
    next_cursor: Option<String>,
}

/// `GET` a listing with `query` and the paging flags.
pub async fn fetch(
    client: &Client,
    segments: &[&str],
    mut query: Vec<(&'static str, String)>,
    paging: &PageArgs,
) -> Result<Body, CliError> {
    if let Some(limit) = paging.limit {
        query.push(("limit", limit.to_string()));
    }
    if !paging.all {
        if let Some(cursor) = &paging.cursor {
            query.push(("cursor", cursor.clone()));
        }
        return Ok(Body::Answer(client.get(segments, &query).await?));
    }
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut page_query = query.clone();
        page_query.extend(cursor.clone().map(|c| ("cursor", c)));
        let page: Page = client.get(segments, &page_query).await?.parse()?;
        items.extend(page.items);
        match page.next_cursor {
            // A server that hands back the cursor it was given would be followed for ever.
            Some(next) if cursor.as_ref() == Some(&next) => {
                return Err(CliError::BadAnswer {
                    server: client.server().to_string(),
                    reason: "the listing gave the same cursor twice".into(),
                });
            }
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    Ok(Body::Value(json!({ "items": items, "next_cursor": null })))
}
