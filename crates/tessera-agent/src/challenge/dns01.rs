//! dns-01 (RFC 8555 §8.4) through the operator's hook: the agent cannot
//! know every DNS provider, so it runs a command that can. The hook gets
//! the record in environment variables, never on a command line another
//! user could read in the process list, and none of the agent's secrets.

use std::time::Duration;

use crate::shell::shell;

/// A hook that takes longer than this is killed and counts as failed.
const HOOK_TIMEOUT: Duration = Duration::from_secs(300);

/// A TXT record the hook added, to be removed after the order.
pub(super) struct Dns01Hook {
    command: String,
    domain: String,
    value: String,
}

impl Dns01Hook {
    /// Runs the hook with `TESSERA_DNS01_ACTION=add`; it must exit 0 once
    /// the record can be seen by the CA.
    pub(super) async fn add(command: &str, domain: &str, value: &str) -> Result<Self, String> {
        let record = Self { command: command.to_owned(), domain: domain.to_owned(), value: value.to_owned() };
        record.run("add").await?;
        Ok(record)
    }

    /// Runs the hook with `TESSERA_DNS01_ACTION=remove`; a failure is logged.
    pub(super) async fn remove(self) {
        if let Err(e) = self.run("remove").await {
            tracing::warn!(domain = %self.domain, error = %e, "dns-01 hook could not remove the TXT record");
        }
    }

    async fn run(&self, action: &str) -> Result<(), String> {
        let name = format!("_acme-challenge.{}", self.domain);
        let child = shell(&self.command)
            .env("TESSERA_DNS01_ACTION", action)
            .env("TESSERA_DNS01_NAME", &name)
            .env("TESSERA_DNS01_VALUE", &self.value)
            .env("TESSERA_DNS01_DOMAIN", &self.domain)
            .spawn()
            .map_err(|e| format!("cannot start the dns-01 hook: {e}"))?;
        let output = tokio::time::timeout(HOOK_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| format!("the dns-01 hook ({action}) took longer than {HOOK_TIMEOUT:?}"))?
            .map_err(|e| format!("the dns-01 hook ({action}) failed: {e}"))?;
        if output.status.success() {
            tracing::info!(record = %name, action, "dns-01 hook done");
            Ok(())
        } else {
            Err(format!(
                "the dns-01 hook ({action}) exited with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }
}
