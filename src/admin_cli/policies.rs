//! `tessera admin policies`: list, show, create, update, delete. Rules come
//! from flags or from a JSON or TOML file written as the API writes them;
//! the server judges them, so its problem document says what is wrong.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::Shown;
use super::client::Client;
use super::confirm::{Yes, confirm};
use super::error::{CliError, file_error};
use super::output::{Body, Cell, Column, View, column, list};
use super::pages::{self, PageArgs};

const PATH: [&str; 3] = ["api", "v1", "policies"];

const ROWS: &[Column] = &[
    column("name", "/name", Cell::Text),
    column("dns", "/dns", Cell::Text),
    column("ip ranges", "/ip_ranges", Cell::Text),
    column("uris", "/uris", Cell::Text),
    column("key types", "/key_types", Cell::Text),
    column("max ttl", "/max_ttl", Cell::Text),
    column("default ttl", "/default_ttl", Cell::Text),
    column("updated", "/updated_at", Cell::Time),
];

const DETAIL: &[Column] = &[
    column("name", "/name", Cell::Text),
    column("dns", "/dns", Cell::Text),
    column("ip ranges", "/ip_ranges", Cell::Text),
    column("uris", "/uris", Cell::Text),
    column("key types", "/key_types", Cell::Text),
    column("max ttl", "/max_ttl", Cell::Text),
    column("default ttl", "/default_ttl", Cell::Text),
    column("created", "/created_at", Cell::Time),
    column("updated", "/updated_at", Cell::Time),
];

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List policies by name.
    List(PageArgs),
    /// One policy's rules.
    Show { name: String },
    /// Create a policy from flags or a file.
    Create(PolicyArgs),
    /// Replace every rule of a policy, from flags or a file.
    Update(PolicyArgs),
    /// Delete a policy (asks first unless --yes); refused while tokens are bound to it.
    Delete {
        name: String,
        #[command(flatten)]
        yes: Yes,
    },
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// The policy's name.
    name: String,
    /// The rules as a JSON or TOML file (`.toml`), members as the API
    /// names them (dns, ip_ranges, uris, key_types, max_ttl, default_ttl).
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    #[command(flatten)]
    rules: RuleFlags,
}

#[derive(Debug, Args)]
struct RuleFlags {
    /// A DNS name allowed, or `*.suffix` for every name below it; repeat for more.
    #[arg(long, value_name = "NAME", conflicts_with = "file")]
    dns: Vec<String>,
    /// An IP range allowed (CIDR); repeat for more.
    #[arg(long, value_name = "CIDR", conflicts_with = "file")]
    ip_range: Vec<String>,
    /// A URI allowed, exact or a prefix ending in `/*`; repeat for more.
    #[arg(long, value_name = "URI", conflicts_with = "file")]
    uri: Vec<String>,
    /// A key type allowed (ecdsa-p256, ecdsa-p384, ed25519, rsa); none: all.
    #[arg(long, value_name = "TYPE", conflicts_with = "file")]
    key_type: Vec<String>,
    /// The longest lifetime, e.g. 24h.
    #[arg(long, value_name = "DURATION", conflicts_with = "file", required_unless_present = "file")]
    max_ttl: Option<String>,
    /// The lifetime given when a request names none; default: --max-ttl.
    #[arg(long, value_name = "DURATION", conflicts_with = "file")]
    default_ttl: Option<String>,
}

pub async fn run(command: Command, client: &Client) -> Result<Shown, CliError> {
    match command {
        Command::List(paging) => Ok(Shown::new(pages::fetch(client, &PATH, Vec::new(), &paging).await?, list(ROWS))),
        Command::Show { name } => {
            let answer = client.get(&[&PATH[..], &[name.as_str()]].concat(), &[]).await?;
            Ok(Shown::new(Body::Answer(answer), View::Object(DETAIL)))
        }
        Command::Create(args) => {
            let body = policy_body(&args)?;
            Ok(Shown::new(Body::Answer(client.post(&PATH, Some(&body)).await?), View::Object(DETAIL)))
        }
        Command::Update(args) => {
            let body = policy_body(&args)?;
            let answer = client.put(&[&PATH[..], &[args.name.as_str()]].concat(), &body).await?;
            Ok(Shown::new(Body::Answer(answer), View::Object(DETAIL)))
        }
        Command::Delete { name, yes } => {
            confirm(yes, &format!("Delete policy {name:?}"))?;
            let answer = client.delete(&[&PATH[..], &[name.as_str()]].concat()).await?;
            Ok(Shown::new(Body::Answer(answer), View::Message(format!("Deleted policy {name:?}."))))
        }
    }
}

/// The request body: the file's rules or the flags', with the name.
fn policy_body(args: &PolicyArgs) -> Result<Value, CliError> {
    let mut body = match &args.file {
        Some(path) => read_rules(path)?,
        None => {
            let flags = &args.rules;
            let mut body = json!({
                "dns": flags.dns,
                "ip_ranges": flags.ip_range,
                "uris": flags.uri,
                "key_types": flags.key_type,
                "max_ttl": flags.max_ttl,
            });
            if let Some(default_ttl) = &flags.default_ttl {
                body["default_ttl"] = json!(default_ttl);
            }
            body
        }
    };
    match body.get("name") {
        Some(named) if named.as_str() != Some(args.name.as_str()) => {
            Err(CliError::Usage(format!("the file names policy {named}, not {:?}", args.name)))
        }
        _ => {
            body["name"] = json!(args.name);
            Ok(body)
        }
    }
}

/// A rules file: TOML when its name ends in `.toml`, JSON otherwise; an object either way.
fn read_rules(path: &Path) -> Result<Value, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| file_error(path, e))?;
    let value: Value = if path.extension().is_some_and(|e| e == "toml") {
        let table: toml::Table = toml::from_str(&text).map_err(|e| file_error(path, e))?;
        serde_json::to_value(table).map_err(|e| file_error(path, e))?
    } else {
        serde_json::from_str(&text).map_err(|e| file_error(path, e))?
    };
    if !value.is_object() {
        return Err(file_error(path, "must hold one object of rules"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(file: Option<PathBuf>, max_ttl: Option<&str>) -> PolicyArgs {
        PolicyArgs {
            name: "web".into(),
            file,
            rules: RuleFlags {
                dns: vec!["*.web.test".into()],
                ip_range: vec![],
                uri: vec![],
                key_type: vec!["ecdsa-p256".into()],
                max_ttl: max_ttl.map(str::to_owned),
                default_ttl: None,
            },
        }
    }

    #[test]
    fn rules_from_flags_are_the_api_members() {
        let body = policy_body(&args(None, Some("24h"))).expect("body");
        assert_eq!(
            body,
            json!({"name": "web", "dns": ["*.web.test"], "ip_ranges": [], "uris": [], "key_types": ["ecdsa-p256"], "max_ttl": "24h"})
        );
    }

    #[test]
    fn rules_from_toml_and_json_files_agree_and_a_other_name_is_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        let toml_file = dir.path().join("web.toml");
        std::fs::write(&toml_file, "dns = [\"*.web.test\"]\nmax_ttl = \"24h\"\n").expect("written");
        let json_file = dir.path().join("web.json");
        std::fs::write(&json_file, r#"{"name": "web", "dns": ["*.web.test"], "max_ttl": "24h"}"#).expect("written");
        let from_toml = policy_body(&args(Some(toml_file), None)).expect("toml");
        assert_eq!(from_toml, policy_body(&args(Some(json_file), None)).expect("json"));
        assert_eq!(from_toml, json!({"name": "web", "dns": ["*.web.test"], "max_ttl": "24h"}));

        let other = dir.path().join("other.json");
        std::fs::write(&other, r#"{"name": "db", "max_ttl": "24h"}"#).expect("written");
        assert!(matches!(policy_body(&args(Some(other), None)), Err(CliError::Usage(_))));
        let list = dir.path().join("list.json");
        std::fs::write(&list, "[]").expect("written");
        assert!(matches!(policy_body(&args(Some(list), None)), Err(CliError::Usage(_))));
    }
}
