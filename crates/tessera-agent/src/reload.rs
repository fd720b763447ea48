//! The reload command: how the workload learns that its certificate
//! changed (e.g. `systemctl reload nginx`). A failure is logged and the
//! agent carries on: the new files are in place either way.

use std::time::Duration;

use super::args::OutputFiles;
use super::shell::shell;

const RELOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// Runs `sh -c CMD` with the file paths in `TESSERA_AGENT_CERT`,
/// `TESSERA_AGENT_KEY` (and `TESSERA_AGENT_CHAIN`) and none of the agent's
/// secrets (see `shell`); true when it exited 0.
pub async fn run_reload(command: &str, files: &OutputFiles) -> bool {
    let mut cmd = shell(command);
    cmd.env("TESSERA_AGENT_CERT", &files.cert).env("TESSERA_AGENT_KEY", &files.key);
    if let Some(chain) = &files.chain {
        cmd.env("TESSERA_AGENT_CHAIN", chain);
    }
    let child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the reload command");
            return false;
        }
    };
    match tokio::time::timeout(RELOAD_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(output)) if output.status.success() => {
            tracing::info!("reload command done");
            true
        }
        Ok(Ok(output)) => {
            tracing::error!(
                status = %output.status,
                stderr = %String::from_utf8_lossy(&output.stderr).trim(),
                "reload command failed; the new certificate is in place"
            );
            false
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "reload command failed");
            false
        }
        Err(_) => {
            tracing::error!(timeout = ?RELOAD_TIMEOUT, "reload command timed out and was killed");
            false
        }
    }
}
