//! The agent's life: read what is installed, decide when to renew, renew
//! (retrying with backoff until it works), install, reload, repeat.

use std::sync::Arc;
use std::time::Duration;

use instant_acme::Account;
use time::OffsetDateTime;

use super::account::open_account;
use super::args::AgentSettings;
use super::atomic_file::{PRIVATE, PUBLIC, StagedFile, replace_all};
use super::certificate::{CertificateChain, Installed};
use super::error::{AgentError, report};
use super::http_client::AcmeHttp;
use super::metrics::AgentMetrics;
use super::order::{Issued, obtain};
use super::reload::run_reload;
use super::schedule::{Backoff, Schedule, Step, until};
use tessera_core::clock::{SharedClock, rfc3339};

/// One order, validation included, may take this long before it counts as failed.
const ORDER_TIMEOUT: Duration = Duration::from_secs(600);
/// Long sleeps wake up this often to look at the wall clock again, so a
/// suspended machine does not oversleep its renewal.
const MAX_NAP: Duration = Duration::from_secs(900);
/// Without a usable ARI answer, ask again after this long.
const ARI_RETRY: Duration = Duration::from_secs(600);

/// What `--once` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnceOutcome {
    Renewed,
    NotDue,
}

pub struct Agent {
    settings: AgentSettings,
    http: AcmeHttp,
    clock: SharedClock,
    metrics: Arc<AgentMetrics>,
    account: Option<Account>,
}

impl Agent {
    pub fn new(settings: AgentSettings, http: AcmeHttp, clock: SharedClock, metrics: Arc<AgentMetrics>) -> Self {
        Self { settings, http, clock, metrics, account: None }
    }

    /// Fails early when an output file cannot be written, rather than after
    /// the CA has issued a certificate there is nowhere to put.
    pub fn check_writable(&self) -> Result<(), AgentError> {
        let files = &self.settings.files;
        for path in [Some(&files.key), Some(&files.cert), files.chain.as_ref(), Some(&self.settings.account_key)]
            .into_iter()
            .flatten()
        {
            drop(StagedFile::write(path, b"", PRIVATE)?);
        }
        Ok(())
    }

    /// `--once`: renew if due (or missing), else report when it will be.
    pub async fn run_once(&mut self) -> Result<OnceOutcome, AgentError> {
        let current = match self.installed() {
            Some(current) => current,
            None => {
                self.renew(None).await?;
                return Ok(OnceOutcome::Renewed);
            }
        };
        let schedule = self.schedule(&current).await;
        if !schedule.is_due_for_once(self.clock.now()) {
            tracing::info!(
                serial = %current.serial_hex,
                window_start = %rfc3339(schedule.window_start),
                source = schedule.source.as_str(),
                "certificate is not due for renewal"
            );
            return Ok(OnceOutcome::NotDue);
        }
        self.renew(Some(&current)).await?;
        Ok(OnceOutcome::Renewed)
    }

    /// Keeps the certificate renewed until the task is dropped.
    pub async fn run_forever(&mut self) {
        let mut current = self.installed();
        loop {
            if let Some(cert) = &current {
                let schedule = self.schedule(cert).await;
                self.metrics.next_renewal(schedule.renew_at);
                match schedule.next_step(self.clock.now()) {
                    Step::RenewNow | Step::RenewAfter(_) => {
                        tracing::info!(
                            serial = %cert.serial_hex,
                            next_renewal = %rfc3339(schedule.renew_at),
                            source = schedule.source.as_str(),
                            "next renewal scheduled"
                        );
                        self.sleep_until(schedule.renew_at).await;
                    }
                    Step::Recheck(_) => {
                        tracing::info!(
                            serial = %cert.serial_hex,
                            next_renewal = %rfc3339(schedule.renew_at),
                            source = schedule.source.as_str(),
                            "next renewal planned; asking the CA again before then"
                        );
                        if let Some(recheck) = schedule.recheck_at {
                            self.sleep_until(recheck).await;
                        }
                        continue;
                    }
                }
            }
            current = Some(self.renew_until_done(current.as_ref()).await);
        }
    }

    /// Retries with backoff until a new certificate is installed.
    async fn renew_until_done(&mut self, current: Option<&CertificateChain>) -> CertificateChain {
        let mut backoff = Backoff::default();
        loop {
            match self.renew(current).await {
                Ok(renewed) => return renewed,
                Err(e) => {
                    let now = self.clock.now();
                    let time_left = current.map(|c| until(now, c.not_after));
                    let delay = backoff.next_delay(time_left, &mut rand::rng());
                    tracing::warn!(error = %report(&e), retry_in = ?delay, "renewal failed; will retry");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Orders, installs and announces one certificate.
    async fn renew(&mut self, current: Option<&CertificateChain>) -> Result<CertificateChain, AgentError> {
        let result = self.order_and_install(current).await;
        match &result {
            Ok(chain) => {
                self.metrics.renewed();
                self.metrics.certificate(chain.not_after);
                if let Some(command) = &self.settings.reload_cmd {
                    run_reload(command, &self.settings.files).await;
                }
            }
            Err(_) => {
                self.metrics.failed();
                // The next attempt starts over from the directory, in case
                // the server moved or forgot the account.
                self.account = None;
            }
        }
        result
    }

    async fn order_and_install(&mut self, current: Option<&CertificateChain>) -> Result<CertificateChain, AgentError> {
        let account = self.account().await?;
        let replaces = current.and_then(CertificateChain::ari_id);
        let issued = tokio::time::timeout(
            ORDER_TIMEOUT,
            obtain(&account, &self.settings.identifiers, &self.settings.solvers, replaces),
        )
        .await
        .map_err(|_| AgentError::Timeout(ORDER_TIMEOUT))??;
        self.install(&issued)?;
        tracing::info!(
            serial = %issued.chain.serial_hex,
            not_after = %rfc3339(issued.chain.not_after),
            cert = %self.settings.files.cert.display(),
            "certificate installed"
        );
        Ok(issued.chain.clone())
    }

    /// Writes key, certificate and chain; `--cert` gets the full chain
    /// unless `--chain` is given.
    fn install(&self, issued: &Issued) -> Result<(), AgentError> {
        let files = &self.settings.files;
        let leaf = issued.chain.leaf_pem();
        let issuers = issued.chain.issuers_pem();
        match &files.chain {
            Some(chain) => replace_all(&[
                (&files.key, issued.key_pem.as_bytes(), PRIVATE),
                (&files.cert, leaf.as_bytes(), PUBLIC),
                (chain, issuers.as_bytes(), PUBLIC),
            ]),
            None => {
                let full = format!("{leaf}{issuers}");
                replace_all(&[(&files.key, issued.key_pem.as_bytes(), PRIVATE), (&files.cert, full.as_bytes(), PUBLIC)])
            }
        }
    }

    /// The certificate on disk, if it can be kept.
    fn installed(&self) -> Option<CertificateChain> {
        match Installed::read(&self.settings.files, &self.settings.identifiers, self.clock.now()) {
            Installed::Usable(chain) => {
                self.metrics.certificate(chain.not_after);
                tracing::info!(
                    serial = %chain.serial_hex,
                    not_after = %rfc3339(chain.not_after),
                    "found an installed certificate"
                );
                Some(chain)
            }
            Installed::Missing => {
                tracing::info!(cert = %self.settings.files.cert.display(), "no certificate yet; ordering one");
                None
            }
            Installed::Unusable(reason) => {
                tracing::warn!(%reason, "the installed certificate cannot be kept; ordering a new one");
                None
            }
        }
    }

    /// When to renew: the CA's ARI window if it answers, else two thirds of
    /// the lifetime.
    async fn schedule(&mut self, cert: &CertificateChain) -> Schedule {
        let mut fallback = Schedule::from_lifetime(cert);
        let Some(id) = cert.ari_id() else { return fallback };
        let asked = match self.account().await {
            Ok(account) => account.renewal_info(&id).await,
            Err(e) => {
                tracing::warn!(error = %report(&e), "cannot reach the CA for renewal information");
                fallback.recheck_at = Some(self.clock.now() + ARI_RETRY);
                return fallback;
            }
        };
        let now = self.clock.now();
        match asked {
            Ok((info, retry_after)) => {
                let window = info.suggested_window;
                Schedule::from_ari(window.start, window.end, retry_after, now, &mut rand::rng()).unwrap_or_else(|| {
                    tracing::warn!("the CA's renewal window ends before it starts; using two thirds of the lifetime");
                    fallback
                })
            }
            Err(instant_acme::Error::Unsupported(_)) => fallback,
            Err(e) => {
                tracing::warn!(error = %report(&e), "renewal information unavailable; using two thirds of the lifetime");
                self.account = None;
                fallback.recheck_at = Some(now + ARI_RETRY);
                fallback
            }
        }
    }

    async fn account(&mut self) -> Result<Account, AgentError> {
        if let Some(account) = &self.account {
            return Ok(account.clone());
        }
        let account = open_account(&self.settings, &self.http).await?;
        self.account = Some(account.clone());
        Ok(account)
    }

    async fn sleep_until(&self, at: OffsetDateTime) {
        loop {
            let left = until(self.clock.now(), at);
            if left.is_zero() {
                return;
            }
            tokio::time::sleep(left.min(MAX_NAP)).await;
        }
    }
}
