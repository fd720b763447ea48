//! The `tessera-agent` binary: the same agent as `tessera agent`, without
//! the server around it.

use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use tessera_agent::{AgentArgs, LONG_ABOUT, init_logging, report, run};

/// Obtain a certificate over ACME and keep it renewed.
#[derive(Debug, Parser)]
#[command(name = "tessera-agent", version, long_about = LONG_ABOUT)]
struct Cli {
    #[command(flatten)]
    agent: AgentArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match cli.agent.settings() {
        Ok(settings) => settings,
        // A usage error (status 2), as for any malformed flag.
        Err(message) => Cli::command().error(clap::error::ErrorKind::ValueValidation, message).exit(),
    };
    init_logging();
    match run(settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera-agent: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}
