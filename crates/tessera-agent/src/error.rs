//! Why an agent step failed, worded for the operator who reads the log or
//! the `--once` exit message. No variant carries the EAB HMAC key.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot read the CA bundle {path}: {reason}")]
    CaBundle { path: PathBuf, reason: String },
    #[error("cannot use the ACME account key {path}: {reason}")]
    AccountKey { path: PathBuf, reason: String },
    #[error("cannot reach the ACME directory {url}")]
    Directory { url: String, source: instant_acme::Error },
    #[error("the ACME server refused the account{hint}")]
    Account { source: instant_acme::Error, hint: &'static str },
    #[error("the EAB key is needed to create the ACME account: give --eab-kid and --eab-hmac")]
    EabMissing,
    #[error("--eab-hmac: {0}")]
    EabHmac(String),
    #[error("ACME {step} failed")]
    Acme { step: &'static str, source: instant_acme::Error },
    #[error("the server offers no challenge this agent can answer for {identifier} (offered: {offered})")]
    NoSolver { identifier: String, offered: String },
    #[error("cannot answer the {kind} challenge for {identifier}: {reason}")]
    Challenge { kind: &'static str, identifier: String, reason: String },
    #[error("the order for {identifiers} ended {status}: {detail}")]
    OrderFailed { identifiers: String, status: String, detail: String },
    #[error("the CA returned an unusable certificate: {0}")]
    BadCertificate(String),
    #[error("cannot make the certificate key or request: {0}")]
    Key(String),
    #[error("cannot write {path}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot listen for metrics on {addr}")]
    Metrics { addr: std::net::SocketAddr, source: std::io::Error },
    #[error("gave up after {0:?}")]
    Timeout(std::time::Duration),
}

impl AgentError {
    /// A refused newAccount, with a hint when the EAB key is the likely cause.
    pub fn account(source: instant_acme::Error) -> Self {
        let hint = match &source {
            instant_acme::Error::Api(problem)
                if matches!(
                    problem.r#type.as_deref(),
                    Some(
                        "urn:ietf:params:acme:error:unauthorized"
                            | "urn:ietf:params:acme:error:externalAccountRequired"
                            | "urn:ietf:params:acme:error:malformed"
                    )
                ) =>
            {
                " (check --eab-kid and --eab-hmac: the key must exist, be unused or reusable, and match)"
            }
            _ => "",
        };
        Self::Account { source, hint }
    }
}

/// The error and its causes on one line, for logs and exit messages.
pub fn report(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        let line = next.to_string();
        // Transparent wrappers repeat their inner message; say it once.
        if !text.ends_with(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        cause = next.source();
    }
    text
}
