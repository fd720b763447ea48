//! The `tessera agent` command line and the settings checked from it.
//!
//! clap rejects malformed flags; [`AgentArgs::settings`] then checks what
//! clap cannot (EAB flags come in pairs, a solver exists for every name) so
//! that a bad invocation fails before anything touches the network.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use clap::Args;
use secrecy::{ExposeSecret, SecretString};

use tessera_core::Identifier;

/// The long `tessera agent --help` text: what the agent writes and when.
pub const LONG_ABOUT: &str = "\
Obtain a certificate over ACME and keep it renewed.

Files: --key gets the private key (mode 0600); --cert gets the full chain,
leaf first, unless --chain is given, in which case --cert gets the leaf alone
and --chain the issuing chain. Every file is written to a temporary file in
the same directory, flushed to disk and renamed over the old one, so a reader
never sees a half-written file.

The ACME account key is kept in --account-key (default: the key file's name
with `.account.pem` appended, next to it), so renewals reuse the account and
an EAB key is bound only once.

Renewal: at a random time inside the CA's ACME Renewal Information window,
or at two thirds of the certificate's lifetime when the CA offers none.
Failures are retried with exponential backoff and jitter (1 s to 5 min),
never waiting past the certificate's expiry.

With --once, the agent obtains or renews the certificate if it is due and
exits: 0 on success or when nothing was due, 1 on failure.";

/// `tessera agent` flags, exactly as users type them.
#[derive(Debug, Args)]
pub struct AgentArgs {
    /// ACME directory URL, e.g. https://ca.internal/acme/default/directory.
    #[arg(long, value_name = "URL")]
    pub directory: url::Url,
    /// PEM file of the CA certificates to trust for the ACME server.
    #[arg(long, value_name = "FILE")]
    pub ca_bundle: PathBuf,
    /// External Account Binding key id (from the CA's operator).
    #[arg(long, value_name = "KID", requires = "eab_hmac")]
    pub eab_kid: Option<String>,
    /// External Account Binding HMAC key, base64url. Never logged. A
    /// base64url key may begin with `-`, so the value is taken as it is.
    #[arg(
        long,
        value_name = "KEY",
        env = "TESSERA_AGENT_EAB_HMAC",
        hide_env_values = true,
        requires = "eab_kid",
        allow_hyphen_values = true
    )]
    pub eab_hmac: Option<SecretString>,
    /// A DNS name (or IP address) the certificate must cover; repeat for more.
    #[arg(long = "domain", value_name = "NAME", required = true)]
    pub domains: Vec<String>,
    /// Where the certificate is written: full chain, leaf first, unless --chain is given.
    #[arg(long, value_name = "FILE")]
    pub cert: PathBuf,
    /// Where the private key is written (mode 0600).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// Write the issuing chain here and only the leaf to --cert.
    #[arg(long, value_name = "FILE")]
    pub chain: Option<PathBuf>,
    /// The ACME account key (PKCS#8 PEM); created on first use.
    #[arg(long, value_name = "FILE")]
    pub account_key: Option<PathBuf>,
    /// Run with `sh -c` after each new certificate; a failure is logged, not fatal.
    #[arg(long, value_name = "CMD")]
    pub reload_cmd: Option<String>,
    /// Answer http-01 challenges on this address while an order is open.
    #[arg(long = "http01-addr", value_name = "HOST:PORT", value_parser = parse_addr)]
    pub http01_addr: Option<SocketAddr>,
    /// Answer tls-alpn-01 challenges on this address while an order is open.
    #[arg(long = "tlsalpn01-addr", value_name = "HOST:PORT", value_parser = parse_addr)]
    pub tlsalpn01_addr: Option<SocketAddr>,
    /// Answer dns-01 challenges by running this with `sh -c`, once with
    /// TESSERA_DNS01_ACTION=add and once with =remove, and TESSERA_DNS01_NAME,
    /// TESSERA_DNS01_VALUE and TESSERA_DNS01_DOMAIN set. It must exit 0 once
    /// the TXT record is published.
    #[arg(long = "dns01-hook", value_name = "CMD")]
    pub dns01_hook: Option<String>,
    /// Serve Prometheus metrics at http://HOST:PORT/metrics.
    #[arg(long, value_name = "HOST:PORT", value_parser = parse_addr, conflicts_with = "once")]
    pub metrics_addr: Option<SocketAddr>,
    /// Obtain or renew if due, then exit (for cron).
    #[arg(long)]
    pub once: bool,
}

/// What the agent runs with, checked.
#[derive(Debug)]
pub struct AgentSettings {
    pub directory: url::Url,
    pub ca_bundle: PathBuf,
    pub eab: Option<EabKey>,
    pub identifiers: Vec<Identifier>,
    pub files: OutputFiles,
    pub account_key: PathBuf,
    pub reload_cmd: Option<String>,
    pub solvers: SolverSettings,
    pub metrics_addr: Option<SocketAddr>,
    pub once: bool,
}

/// An External Account Binding key; the HMAC key stays secret.
pub struct EabKey {
    pub kid: String,
    pub hmac: SecretString,
}

impl std::fmt::Debug for EabKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EabKey").field("kid", &self.kid).field("hmac", &"[redacted]").finish()
    }
}

impl EabKey {
    /// The raw HMAC key bytes (the flag is base64url, padded or not).
    pub fn hmac_bytes(&self) -> Result<Vec<u8>, String> {
        let text = self.hmac.expose_secret().trim().trim_end_matches('=');
        URL_SAFE_NO_PAD.decode(text).map_err(|_| "--eab-hmac is not base64url".to_owned())
    }
}

/// The files the agent owns.
#[derive(Debug, Clone)]
pub struct OutputFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub chain: Option<PathBuf>,
}

/// How challenges can be answered here.
#[derive(Debug, Clone, Default)]
pub struct SolverSettings {
    pub http01: Option<SocketAddr>,
    pub tls_alpn01: Option<SocketAddr>,
    pub dns01_hook: Option<String>,
}

impl AgentArgs {
    /// Checks what clap cannot; the message names the flag at fault.
    pub fn settings(self) -> Result<AgentSettings, String> {
        if !matches!(self.directory.scheme(), "https" | "http") {
            return Err(format!("--directory {} is not an http(s) URL", self.directory));
        }
        let eab = match (self.eab_kid, self.eab_hmac) {
            (Some(kid), Some(hmac)) => {
                let key = EabKey { kid, hmac };
                key.hmac_bytes()?;
                Some(key)
            }
            _ => None,
        };
        let identifiers = self
            .domains
            .iter()
            .map(|d| parse_identifier(d).map_err(|e| format!("--domain {d:?}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let solvers =
            SolverSettings { http01: self.http01_addr, tls_alpn01: self.tlsalpn01_addr, dns01_hook: self.dns01_hook };
        if solvers.http01.is_none() && solvers.tls_alpn01.is_none() && solvers.dns01_hook.is_none() {
            return Err("give at least one of --http01-addr, --tlsalpn01-addr or --dns01-hook".into());
        }
        let wildcard = identifiers.iter().find(|i| i.value().starts_with("*."));
        if let (Some(wildcard), None) = (wildcard, &solvers.dns01_hook) {
            return Err(format!(
                "--domain {} is a wildcard: it can only be validated with --dns01-hook",
                wildcard.value()
            ));
        }
        if self.chain.as_deref().is_some_and(|c| c == self.cert) || self.key == self.cert {
            return Err("--cert, --key and --chain must be different files".into());
        }
        let account_key = self.account_key.unwrap_or_else(|| default_account_key(&self.key));
        Ok(AgentSettings {
            directory: self.directory,
            ca_bundle: self.ca_bundle,
            eab,
            identifiers,
            files: OutputFiles { cert: self.cert, key: self.key, chain: self.chain },
            account_key,
            reload_cmd: self.reload_cmd,
            solvers,
            metrics_addr: self.metrics_addr,
            once: self.once,
        })
    }
}

/// `svc.key` -> `svc.key.account.pem` in the same directory.
fn default_account_key(key: &Path) -> PathBuf {
    let mut name = key.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".account.pem");
    key.with_file_name(name)
}

fn parse_identifier(text: &str) -> Result<Identifier, String> {
    match text.parse::<std::net::IpAddr>() {
        Ok(ip) => Ok(Identifier::Ip(ip)),
        Err(_) => Identifier::dns(text).map_err(|e| e.to_string()),
    }
}

/// HOST:PORT, resolved once at start (names such as `localhost` are fine).
fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    text.to_socket_addrs()
        .map_err(|e| format!("{text:?} is not HOST:PORT: {e}"))?
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        agent: AgentArgs,
    }

    fn parse(extra: &[&str]) -> Result<AgentSettings, String> {
        let mut argv = vec![
            "agent",
            "--directory",
            "https://ca.test/acme/default/directory",
            "--ca-bundle",
            "ca.pem",
            "--cert",
            "/tls/svc.crt",
            "--key",
            "/tls/svc.key",
        ];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).map_err(|e| e.to_string())?.agent.settings()
    }

    #[test]
    fn the_account_key_defaults_to_a_file_next_to_the_key() {
        let settings = parse(&["--domain", "svc.test", "--http01-addr", "127.0.0.1:5002"]).unwrap();
        assert_eq!(settings.account_key, PathBuf::from("/tls/svc.key.account.pem"));
        assert_eq!(settings.identifiers, vec![Identifier::dns("svc.test").unwrap()]);
    }

    #[test]
    fn ip_addresses_are_ip_identifiers() {
        let settings = parse(&["--domain", "10.1.2.3", "--http01-addr", "127.0.0.1:5002"]).unwrap();
        assert_eq!(settings.identifiers, vec![Identifier::Ip("10.1.2.3".parse().unwrap())]);
    }

    #[test]
    fn refuses_what_cannot_work() {
        let no_solver = parse(&["--domain", "svc.test"]).unwrap_err();
        assert!(no_solver.contains("--http01-addr"), "{no_solver}");
        let wildcard = parse(&["--domain", "*.svc.test", "--http01-addr", "127.0.0.1:5002"]).unwrap_err();
        assert!(wildcard.contains("--dns01-hook"), "{wildcard}");
        let lone_kid = parse(&["--domain", "svc.test", "--http01-addr", "127.0.0.1:1", "--eab-kid", "k"]).unwrap_err();
        assert!(lone_kid.contains("--eab-hmac"), "{lone_kid}");
        let bad_hmac = parse(&[
            "--domain",
            "svc.test",
            "--http01-addr",
            "127.0.0.1:1",
            "--eab-kid",
            "k",
            "--eab-hmac",
            "not base64!",
        ])
        .unwrap_err();
        assert!(bad_hmac.contains("base64url") && !bad_hmac.contains("not base64!"), "{bad_hmac}");
        let no_domain = parse(&["--http01-addr", "127.0.0.1:1"]).unwrap_err();
        assert!(no_domain.contains("--domain"), "{no_domain}");
        let bad_name = parse(&["--domain", "bad name", "--http01-addr", "127.0.0.1:1"]).unwrap_err();
        assert!(bad_name.contains("bad name"), "{bad_name}");
    }

    #[test]
    fn an_hmac_key_may_begin_with_a_hyphen() {
        let settings = parse(&[
            "--domain",
            "svc.test",
            "--http01-addr",
            "127.0.0.1:1",
            "--eab-kid",
            "kid-1",
            "--eab-hmac",
            "-MjM0NTY3ODk",
        ])
        .unwrap();
        assert_eq!(settings.eab.unwrap().hmac_bytes().unwrap(), URL_SAFE_NO_PAD.decode("-MjM0NTY3ODk").unwrap());
    }

    #[test]
    fn the_hmac_key_is_not_in_debug_output() {
        let settings = parse(&[
            "--domain",
            "svc.test",
            "--http01-addr",
            "127.0.0.1:1",
            "--eab-kid",
            "kid-1",
            "--eab-hmac",
            "c2VjcmV0LWhtYWMta2V5",
        ])
        .unwrap();
        let debug = format!("{settings:?}");
        assert!(debug.contains("kid-1") && !debug.contains("c2VjcmV0LWhtYWMta2V5"), "{debug}");
        assert_eq!(settings.eab.unwrap().hmac_bytes().unwrap(), b"secret-hmac-key");
    }
}
