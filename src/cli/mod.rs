//! The `tessera` command line: `serve`, `config`, `init`, `migrate`, `agent`, `admin`.

mod serve;

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::admin_cli;
use crate::agent::{self, AgentArgs};
use crate::clock::{SharedClock, SystemClock};
use crate::config::{AcmeOverrides, Config, LogFormat, Overrides};
use crate::secrets::Sealer;
use crate::setup::init_hierarchy;
use crate::storage::{Db, DbOptions};
pub use serve::{Running, start};

#[derive(Debug, Parser)]
#[command(name = "tessera", version, about = "An internal certificate authority for workload mTLS")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the CA: public HTTPS, public HTTP and the admin API.
    Serve(ServeArgs),
    /// Create a production CA hierarchy from the key URIs in the config.
    Init(CommonArgs),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Apply database migrations and exit.
    Migrate(CommonArgs),
    /// Secrets at rest (EAB HMAC keys, the nonce key), sealed under secrets.kek.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Obtain a certificate over ACME and keep it renewed (the workload side).
    #[command(long_about = agent::LONG_ABOUT)]
    Agent(Box<AgentArgs>),
    /// Manage a running Tessera over its admin API (the operator side).
    Admin(Box<admin_cli::Args>),
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    /// Seal every stored secret again under a new data key wrapped by
    /// secrets.kek, then delete the data keys only secrets.previous_kek
    /// unwraps. Run it once every node has both in its config.
    RotateKek(CommonArgs),
}

#[derive(Debug, Args)]
struct CommonArgs {
    /// TOML config file; TESSERA_* variables override it.
    #[arg(long, env = "TESSERA_CONFIG")]
    config: Option<PathBuf>,
    /// Where keys, the SQLite database and token files live.
    #[arg(long, env = "TESSERA_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// postgres://... or sqlite://...; default: <data-dir>/tessera.db.
    #[arg(long, env = "TESSERA_DATABASE_URL")]
    database_url: Option<String>,
    /// How log lines are written (log_format in the config); default: text.
    #[arg(long, value_enum)]
    log_format: Option<LogFormat>,
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the configuration serve would run with (defaults, file,
    /// TESSERA_* variables and these flags) as TOML, credentials redacted.
    Show(ServeSettings),
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    settings: ServeSettings,
    /// Once every listener is bound, write their addresses here as JSON
    /// (`https_addr`, `http_addr`, `admin_addr`, and `metrics_addr` when
    /// configured), so a port given as 0 is known without racing for a free one.
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

/// The flags that shape serve's configuration; `config show` takes them
/// too, so it prints what serve would use.
#[derive(Debug, Args)]
struct ServeSettings {
    #[command(flatten)]
    common: CommonArgs,
    #[arg(long, help = listener_help("Public HTTPS listener (ACME, CA certificates)", |c| c.https_addr))]
    https_addr: Option<std::net::SocketAddr>,
    #[arg(long, help = listener_help("Public plain HTTP listener (CA certificates, CRL, OCSP)", |c| c.http_addr))]
    http_addr: Option<std::net::SocketAddr>,
    #[arg(long, help = listener_help("Admin HTTPS listener (REST API, metrics, health)", |c| c.admin_addr))]
    admin_addr: Option<std::net::SocketAddr>,
    /// Plain HTTP listener serving /metrics without a token (metrics_addr
    /// in the config); default: none, /metrics is on the admin listener only.
    #[arg(long)]
    metrics_addr: Option<std::net::SocketAddr>,
    /// Do not apply database migrations at start.
    #[arg(long)]
    no_migrate: bool,
    /// Port ACME http-01 validation connects to (default 80).
    #[arg(long, env = "TESSERA_ACME__HTTP01_PORT")]
    http01_port: Option<u16>,
    /// Port ACME tls-alpn-01 validation connects to (default 443).
    #[arg(long, env = "TESSERA_ACME__TLSALPN01_PORT")]
    tlsalpn01_port: Option<u16>,
    /// DNS server (HOST:PORT) for ACME validation; default: the system resolver.
    #[arg(long, env = "TESSERA_ACME__DNS_RESOLVER")]
    dns_resolver: Option<std::net::SocketAddr>,
}

impl ServeSettings {
    /// The configuration these flags, the file and the environment make.
    fn load(&self) -> Result<Config, crate::config::ConfigError> {
        let overrides = Overrides {
            https_addr: self.https_addr,
            http_addr: self.http_addr,
            admin_addr: self.admin_addr,
            metrics_addr: self.metrics_addr,
            run_migrations: self.no_migrate.then_some(false),
            acme: AcmeOverrides {
                http01_port: self.http01_port,
                tlsalpn01_port: self.tlsalpn01_port,
                dns_resolver: self.dns_resolver,
            },
            ..self.common.overrides()
        };
        Config::load(self.common.config.as_deref(), &overrides)
    }
}

/// A listener flag's help, naming the address used without flag or config.
fn listener_help(what: &str, address: fn(&Config) -> std::net::SocketAddr) -> String {
    format!("{what} [default: {}]", address(&Config::default()))
}

impl CommonArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            log_format: self.log_format,
            ..Default::default()
        }
    }
}

/// Parses the command line and runs the command.
pub async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            let config = args.settings.load()?;
            init_logging(config.log_format);
            let running = start(config, Arc::new(SystemClock)).await?;
            if let Some(path) = &args.ready_file {
                write_ready_file(path, &running)?;
            }
            running.wait_for_signal().await
        }
        Command::Config(ConfigCommand::Show(settings)) => {
            print!("{}", settings.load()?.to_redacted_toml()?);
            Ok(())
        }
        Command::Init(args) => {
            let Some(path) = args.config.as_deref() else {
                anyhow::bail!("tessera init needs --config FILE naming the hierarchy's key URIs");
            };
            let config = Config::load(Some(path), &args.overrides())?;
            init_logging(config.log_format);
            let db = open_db(&config).await?;
            let clock: SharedClock = Arc::new(SystemClock);
            let token_path = init_hierarchy(&config, &db, &clock).await?;
            println!("Created the CA hierarchy. Admin token written to {}", token_path.display());
            db.close().await;
            Ok(())
        }
        Command::Agent(args) => {
            let settings = match (*args).settings() {
                Ok(settings) => settings,
                Err(message) => agent_usage_error(message),
            };
            init_logging(LogFormat::Text);
            agent::run(settings).await.map_err(|e| anyhow::anyhow!(agent::report(&e)))
        }
        Command::Admin(args) => {
            let status = admin_cli::run(*args, Cli::command()).await;
            std::process::exit(i32::from(status))
        }
        Command::Secrets(SecretsCommand::RotateKek(args)) => {
            let config = Config::load(args.config.as_deref(), &args.overrides())?;
            init_logging(config.log_format);
            let db = open_db(&config).await?;
            let clock: SharedClock = Arc::new(SystemClock);
            let rotation =
                Sealer::load(&config.kek_sources()?, &config.keys.awskms, db.secrets(), clock).await?.rotate().await?;
            println!(
                "Sealed {} secrets again under data key {} (wrapped by {}); old data keys deleted: {}. \
                 secrets.previous_kek may go now.",
                rotation.resealed, rotation.data_key, rotation.kek, rotation.retired
            );
            db.close().await;
            Ok(())
        }
        Command::Migrate(args) => {
            let config = Config::load(args.config.as_deref(), &args.overrides())?;
            init_logging(config.log_format);
            let db = connect_db(&config).await?;
            db.migrate().await?;
            crate::issuance::backfill_key_hashes(&db.ledger()).await?;
            println!("Migrations applied ({}).", db.backend());
            db.close().await;
            Ok(())
        }
    }
}

/// Writes the bound addresses to `path` in one rename, so a reader never
/// sees half a file.
fn write_ready_file(path: &std::path::Path, running: &Running) -> anyhow::Result<()> {
    let mut addresses = serde_json::json!({
        "https_addr": running.https_addr.to_string(),
        "http_addr": running.http_addr.to_string(),
        "admin_addr": running.admin_addr.to_string(),
    });
    if let Some(metrics_addr) = running.metrics_addr {
        addresses["metrics_addr"] = metrics_addr.to_string().into();
    }
    let partial = path.with_extension("partial");
    std::fs::write(&partial, addresses.to_string())
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|e| anyhow::anyhow!("--ready-file {}: {e}", path.display()))
}

/// Exits with clap's usage error (status 2), as for any malformed flag.
fn agent_usage_error(message: String) -> ! {
    let mut command = Cli::command();
    command.build();
    match command.find_subcommand_mut("agent") {
        Some(agent) => agent.error(clap::error::ErrorKind::ValueValidation, message).exit(),
        None => Cli::command().error(clap::error::ErrorKind::ValueValidation, message).exit(),
    }
}

/// Connects (creating the data directory, for SQLite and everything else
/// Tessera keeps, readable by its owner only) and migrates unless
/// disabled; then does what SQL cannot: key hashes of certificates stored
/// before they were kept (a no-op once done), at every start, so that
/// certificates a node of the previous version stored during a rolling
/// upgrade get theirs too.
pub(crate) async fn open_db(config: &Config) -> anyhow::Result<Db> {
    let db = connect_db(config).await?;
    if config.run_migrations {
        db.migrate().await?;
    }
    crate::issuance::backfill_key_hashes(&db.ledger()).await?;
    Ok(db)
}

async fn connect_db(config: &Config) -> anyhow::Result<Db> {
    crate::private_files::create_private_dir(&config.data_dir)?;
    crate::private_files::restrict_to_owner(&config.data_dir)?;
    Ok(Db::connect(&DbOptions::new(config.database_url())).await?)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal, not in files, journals or cron mail.
    let is_terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(is_terminal);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
