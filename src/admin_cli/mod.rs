//! `tessera admin`: the admin API for people and scripts.
//!
//! A client like any other: it speaks only HTTPS to the admin API and
//! imports nothing from the server's modules, so that it can become a crate
//! of its own. Its wire types are its own: serde structs for what it reads,
//! JSON values for what it only prints.
//!
//! `context` (the contexts file) → `client` (HTTPS, problem documents) →
//! one module per resource → `output` (tables, JSON, YAML); `error` maps
//! every failure to its exit status in one place.

mod audit;
mod authorities;
mod certificates;
mod client;
mod confirm;
mod context;
mod context_file;
mod docs;
mod eab_keys;
mod error;
mod files;
mod lifecycle;
mod output;
mod pages;
mod policies;
mod times;
mod tokens;

use std::path::PathBuf;

use clap::Subcommand;

use client::Client;
use error::CliError;
use output::{Body, Format, View};

const LONG_ABOUT: &str = "\
Manage Tessera over its admin API: certificates, policies, tokens, EAB keys,
authorities, expirations, jobs and the audit log.

Each command goes to the server of a context (tessera admin context add),
kept in $XDG_CONFIG_HOME/tessera/contexts.toml (default
~/.config/tessera/contexts.toml, mode 0600) with its CA bundle and where its
token is: a file or an environment variable, never a command-line flag.
--context or TESSERA_CONTEXT picks one; otherwise the current one is used.

Tables are for people (times in UTC, with how far away they are); -o json
prints the API's JSON as it came, for scripts. A refusal is printed as one
line on stderr: the problem's title, detail, status and type.";

/// `tessera admin`.
#[derive(Debug, clap::Args)]
#[command(long_about = LONG_ABOUT, after_long_help = error::EXIT_CODES_HELP)]
pub struct Args {
    /// The context to use; default: the current one.
    #[arg(long, global = true, env = "TESSERA_CONTEXT", value_name = "NAME")]
    context: Option<String>,
    /// How to print answers.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t)]
    output: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Contexts: which server, CA bundle and token to use.
    #[command(subcommand)]
    Context(context::Command),
    #[command(flatten)]
    Api(ApiCommand),
    /// Shell completions for `tessera`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// The tessera-admin(1) manual page.
    Man {
        /// Write one page per command into this directory instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

/// The commands that ask the server.
#[derive(Debug, Subcommand)]
enum ApiCommand {
    /// Certificates: list, search, show, revoke, issue.
    #[command(subcommand)]
    Certificates(certificates::Command),
    /// Issuance policies.
    #[command(subcommand)]
    Policies(policies::Command),
    /// API tokens and their policy bindings.
    #[command(subcommand)]
    Tokens(tokens::Command),
    /// ACME External Account Binding keys.
    #[command(subcommand)]
    EabKeys(eab_keys::Command),
    /// The root and issuing CAs.
    #[command(subcommand)]
    Authorities(authorities::Command),
    /// Per authority: certificates expiring soon, overdue, expired without successor.
    Expirations,
    /// The background jobs.
    Jobs,
    /// The audit log, newest first.
    Audit(audit::AuditArgs),
}

/// What a command has to show, and how a table shows it.
pub struct Shown {
    body: Body,
    view: View,
}

impl Shown {
    fn new(body: Body, view: View) -> Self {
        Self { body, view }
    }
}

/// Runs `tessera admin`; `root` is the whole `tessera` command, for
/// completions and the manual page. Returns the exit status.
pub async fn run(args: Args, root: clap::Command) -> u8 {
    match execute(args, root).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("tessera admin: {}", output::printable(&e.to_string()));
            e.exit_code()
        }
    }
}

async fn execute(args: Args, root: clap::Command) -> Result<(), CliError> {
    let shown = match args.command {
        Command::Completions { shell } => return docs::completions(shell, root),
        Command::Man { dir } => return docs::man(root, dir.as_deref()),
        Command::Context(command) => context::run(command)?,
        Command::Api(command) => {
            let client = connect(args.context.as_deref())?;
            match command {
                ApiCommand::Certificates(command) => certificates::run(command, &client).await?,
                ApiCommand::Policies(command) => policies::run(command, &client).await?,
                ApiCommand::Tokens(command) => tokens::run(command, &client).await?,
                ApiCommand::EabKeys(command) => eab_keys::run(command, &client).await?,
                ApiCommand::Authorities(command) => authorities::run(command, &client).await?,
                ApiCommand::Expirations => lifecycle::expirations(&client).await?,
                ApiCommand::Jobs => lifecycle::jobs(&client).await?,
                ApiCommand::Audit(args) => audit::run(args, &client).await?,
            }
        }
    };
    output::print(&shown.body, &shown.view, args.output)
}

/// A client for the chosen context.
fn connect(named: Option<&str>) -> Result<Client, CliError> {
    let contexts = context_file::Contexts::load(&context_file::default_path()?)?;
    let (_, context) = contexts.select(named)?;
    Client::new(context.target()?)
}
