//! `tessera admin context add|use|list|remove`: the named targets kept in
//! the contexts file (see `context_file`).

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use super::Shown;
use super::context_file::{self, Context, Contexts, TokenSource};
use super::error::{CliError, file_error};
use super::output::{Body, Cell, Column, View, column, list};

const ROWS: &[Column] = &[
    column("current", "/current", Cell::Text),
    column("name", "/name", Cell::Text),
    column("server", "/server", Cell::Text),
    column("ca bundle", "/ca_bundle", Cell::Text),
    column("token", "/token", Cell::Text),
];

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add a context (or replace one of the same name); the first becomes current.
    Add(AddArgs),
    /// Make a context the current one.
    Use { name: String },
    /// List the contexts; the current one is marked `*`.
    List,
    /// Remove a context.
    Remove { name: String },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// The context's name, e.g. prod.
    name: String,
    /// The admin listener's URL, e.g. https://ca.internal:9443.
    #[arg(long, value_name = "URL")]
    server: String,
    /// PEM file of the CA certificates to trust for the server (Tessera's root.pem).
    #[arg(long, value_name = "FILE")]
    ca_bundle: PathBuf,
    #[command(flatten)]
    token: TokenArgs,
    /// Make it the current context.
    #[arg(long = "use")]
    make_current: bool,
}

/// Where the token is read from at each command; never the token itself.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct TokenArgs {
    /// A file holding the token (e.g. Tessera's admin-token).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// An environment variable holding the token.
    #[arg(long, value_name = "VAR")]
    token_env: Option<String>,
}

pub fn run(command: Command) -> Result<Shown, CliError> {
    let path = context_file::default_path()?;
    let mut contexts = Contexts::load(&path)?;
    let message = match command {
        Command::Add(args) => {
            let name = args.name.clone();
            let context = checked(args.server, &args.ca_bundle, args.token)?;
            context_file::check_name(&name)?;
            let is_replaced = contexts.contexts.insert(name.clone(), context).is_some();
            if args.make_current || contexts.current.is_none() {
                contexts.current = Some(name.clone());
            }
            let is_current = contexts.current.as_deref() == Some(name.as_str());
            let verb = if is_replaced { "Replaced" } else { "Added" };
            format!("{verb} context {name:?}{}.", if is_current { ", the current one" } else { "" })
        }
        Command::Use { name } => {
            contexts.select(Some(&name))?;
            contexts.current = Some(name.clone());
            format!("Context {name:?} is now the current one.")
        }
        Command::List => {
            let items: Vec<_> = contexts
                .contexts
                .iter()
                .map(|(name, c)| {
                    json!({
                        "current": if contexts.current.as_ref() == Some(name) { "*" } else { "" },
                        "name": name,
                        "server": c.server,
                        "ca_bundle": c.ca_bundle,
                        "token": c.token.describe(),
                    })
                })
                .collect();
            return Ok(Shown::new(Body::Value(json!({ "items": items })), list(ROWS)));
        }
        Command::Remove { name } => {
            if contexts.contexts.remove(&name).is_none() {
                return Err(CliError::Usage(format!("no context named {name:?}")));
            }
            if contexts.current.as_deref() == Some(name.as_str()) {
                contexts.current = None;
            }
            format!("Removed context {name:?}.")
        }
    };
    contexts.save(&path)?;
    Ok(Shown::new(Body::Value(json!({})), View::Message(format!("{message} ({})", path.display()))))
}

/// A context whose URL is HTTPS, whose CA bundle holds certificates and
/// whose token file exists, with absolute paths so it works from anywhere.
fn checked(server: String, ca_bundle: &std::path::Path, token: TokenArgs) -> Result<Context, CliError> {
    context_file::parse_server(&server)?;
    let pem = std::fs::read(ca_bundle).map_err(|e| file_error(ca_bundle, e))?;
    if !pem::parse_many(&pem).is_ok_and(|blocks| blocks.iter().any(|b| b.tag() == "CERTIFICATE")) {
        return Err(file_error(ca_bundle, "holds no PEM certificate"));
    }
    let token = match (token.token_file, token.token_env) {
        (Some(file), _) => {
            std::fs::metadata(&file).map_err(|e| file_error(&file, e))?;
            TokenSource::TokenFile(context_file::absolute(&file)?)
        }
        (None, Some(var)) => TokenSource::TokenEnv(var),
        (None, None) => return Err(CliError::Usage("give --token-file FILE or --token-env VAR".into())),
    };
    Ok(Context { server, ca_bundle: context_file::absolute(ca_bundle)?, token })
}
