//! `tessera-agent` (also run as `tessera agent`): the workload-side ACME
//! client (RFC 8555, with EAB from
//! §7.3.4 and renewal information from RFC 9773). It obtains a certificate,
//! writes key and chain atomically, runs a reload command, and renews in
//! the CA's suggested window, backing off with jitter when the CA cannot
//! be reached.
//!
//! `args` (flags and their checks), `account` (the saved account key),
//! `http_client` (the trusted transport), `order` (one order end to end),
//! `challenge/` (http-01, tls-alpn-01, dns-01 responders), `certificate`
//! (what is installed), `atomic_file`, `schedule` (ARI window, backoff),
//! `reload`, `shell` (the clean environment the operator's commands run in),
//! `metrics`, and `renewal` (the loop that ties them together).
//!
//! Architecture invariant: the agent shares only `tessera-core`
//! (identifiers, the clock) with the server and speaks to it over ACME
//! alone; Cargo keeps storage, key custody and server code out of it.

mod account;
mod args;
mod atomic_file;
mod certificate;
mod challenge;
mod error;
mod http_client;
mod metrics;
mod order;
mod reload;
mod renewal;
mod schedule;
mod shell;

use std::sync::Arc;

pub use args::{AgentArgs, AgentSettings, LONG_ABOUT};
pub use certificate::CertificateChain;
pub use error::{AgentError, report};
use http_client::AcmeHttp;
use metrics::AgentMetrics;
use renewal::{Agent, OnceOutcome};
pub use schedule::Schedule;

use tessera_core::clock::SystemClock;

/// Logs to standard error, filtered by `TESSERA_LOG` (default `info`),
/// with colours only for a person at a terminal.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TESSERA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let is_terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(is_terminal)
        .try_init();
}

/// Runs the agent: once (`--once`) or until the process is stopped.
pub async fn run(settings: AgentSettings) -> Result<(), AgentError> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let http = AcmeHttp::trusting(&settings.ca_bundle)?;
    let metrics = Arc::new(AgentMetrics::default());
    let once = settings.once;
    let metrics_addr = settings.metrics_addr;
    let mut agent = Agent::new(settings, http, Arc::new(SystemClock), metrics.clone());
    agent.check_writable()?;
    if once {
        return match agent.run_once().await? {
            OnceOutcome::Renewed | OnceOutcome::NotDue => Ok(()),
        };
    }
    let _metrics_server = match metrics_addr {
        Some(addr) => Some(AbortOnDrop(metrics.serve(addr).await?)),
        None => None,
    };
    tokio::select! {
        () = agent.run_forever() => {}
        () = stop_signal() => tracing::info!("stopping: the installed files are whole (each is replaced by rename)"),
    }
    Ok(())
}

/// SIGTERM (systemd, Kubernetes) or SIGINT.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Aborts a background task (a listener) when its owner goes away.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
