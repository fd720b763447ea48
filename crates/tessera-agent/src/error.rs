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
    let mut text = line(error);
    let mut cause = error.source();
    while let Some(next) = cause {
        let line = line(next);
        // Transparent wrappers repeat their inner message; say it once.
        if !text.ends_with(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        cause = next.source();
    }
    text
}

/// One error of a chain; a problem document in the agent's own words
/// (the ACME library's would say "1 subproblems").
fn line(error: &(dyn std::error::Error + 'static)) -> String {
    let problem = match error.downcast_ref::<instant_acme::Error>() {
        Some(instant_acme::Error::Api(problem)) => Some(problem),
        _ => error.downcast_ref::<instant_acme::Problem>(),
    };
    problem.map_or_else(|| error.to_string(), describe_problem)
}

fn describe_problem(problem: &instant_acme::Problem) -> String {
    let mut text = format!("the server answered: {}", problem.detail.as_deref().unwrap_or("(no detail)"));
    if let Some(kind) = &problem.r#type {
        text.push_str(&format!(" ({kind})"));
    }
    let described: Vec<String> = problem.subproblems.iter().map(ToString::to_string).collect();
    match described.len() {
        0 => {}
        1 => text.push_str(&format!("; 1 subproblem: {}", described[0])),
        n => text.push_str(&format!("; {n} subproblems: {}", described.join(", "))),
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(names: &[&str]) -> AgentError {
        let subproblems = names
            .iter()
            .map(|name| instant_acme::Subproblem {
                identifier: Some(instant_acme::Identifier::Dns(name.to_string())),
                r#type: Some("urn:ietf:params:acme:error:rejectedIdentifier".into()),
                detail: Some(format!("the policy does not allow {name}")),
            })
            .collect();
        let problem = instant_acme::Problem {
            r#type: Some("urn:ietf:params:acme:error:rejectedIdentifier".into()),
            detail: Some("refused".into()),
            status: Some(400),
            subproblems,
        };
        AgentError::Acme { step: "newOrder", source: instant_acme::Error::Api(problem) }
    }

    /// Issue 22.6: one subproblem was reported as "1 subproblems".
    #[test]
    fn subproblems_are_counted_in_words() {
        assert_eq!(
            report(&refused(&["a.test"])),
            "ACME newOrder failed: the server answered: refused (urn:ietf:params:acme:error:rejectedIdentifier); \
             1 subproblem: for \"a.test\": the policy does not allow a.test (urn:ietf:params:acme:error:rejectedIdentifier)"
        );
        let two = report(&refused(&["a.test", "b.test"]));
        assert!(two.contains("; 2 subproblems: for \"a.test\""), "{two}");
        assert!(!report(&refused(&[])).contains("subproblem"));
    }
}
