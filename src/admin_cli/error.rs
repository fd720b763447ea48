//! What can go wrong in `tessera admin`, and the one mapping of each failure
//! to an exit code and a line on stderr. Scripts branch on the exit code;
//! people read the line.

use std::fmt;

/// The exit codes `tessera admin` documents (`tessera admin --help`).
pub const EXIT_CODES_HELP: &str = "\
Exit status:
  0  done
  1  the server refused the request (its problem document is printed)
  2  usage: bad flags, a context or local file that cannot be used
  3  the server could not be reached (connection, TLS, timeout) or its
     answer was not understood
  4  not found: no such certificate, policy, token, key or authority
  5  the token was refused (401), lacks the scope or the policy binding
     (403), or its source is throttled (429)
  6  not confirmed: declined at the prompt, or no terminal to ask on and
     no --yes";

/// An RFC 9457 problem document as the admin API sends it. Extension
/// members are not read: `detail` already names what they carry.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Problem {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub title: String,
    pub status: u16,
    #[serde(default)]
    pub detail: String,
    /// From the `Retry-After` header of a 429 or 503.
    #[serde(skip)]
    pub retry_after: Option<String>,
}

impl Problem {
    /// The last part of the type, `not-found` in `urn:tessera:problem:not-found`.
    fn slug(&self) -> &str {
        self.kind.rsplit(':').next().unwrap_or_default()
    }

    /// Whether the token, not the request, was refused: a policy refusing
    /// a name is a 403 too, and is the request's fault.
    fn is_token_refused(&self) -> bool {
        self.status == 401
            || matches!(
                self.slug(),
                "unauthorized" | "insufficient-scope" | "policy-not-bound" | "too-many-failed-authentications"
            )
    }
}

impl fmt::Display for Problem {
    /// One line: title, detail, status and the problem's slug.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({} {})", self.title, self.detail, self.status, self.slug())?;
        if let Some(seconds) = &self.retry_after {
            write!(f, "; retry after {seconds} s")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line, a context or a local file is wrong.
    #[error("{0}")]
    Usage(String),
    /// No connection, a TLS failure or a timeout.
    #[error("cannot reach {server}: {reason}")]
    Unreachable { server: String, reason: String },
    /// The server answered something that is not the admin API's form.
    #[error("unexpected answer from {server}: {reason}")]
    BadAnswer { server: String, reason: String },
    /// The server refused the request with a problem document.
    #[error("{0}")]
    Problem(Problem),
    /// A change that needs confirmation was not confirmed.
    #[error("{0}")]
    NotConfirmed(String),
}

impl CliError {
    /// The exit status documented in [`EXIT_CODES_HELP`].
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Problem(p) if p.status == 404 => 4,
            Self::Problem(p) if p.is_token_refused() => 5,
            Self::Problem(_) => 1,
            Self::Usage(_) => 2,
            Self::Unreachable { .. } | Self::BadAnswer { .. } => 3,
            Self::NotConfirmed(_) => 6,
        }
    }
}

/// A local file that could not be read or written, as a usage error that
/// names it.
pub fn file_error(path: &std::path::Path, e: impl fmt::Display) -> CliError {
    CliError::Usage(format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(status: u16, slug: &str) -> CliError {
        CliError::Problem(Problem {
            kind: format!("urn:tessera:problem:{slug}"),
            title: "T".into(),
            status,
            detail: "d".into(),
            retry_after: None,
        })
    }

    #[test]
    fn exit_codes_follow_the_documented_table() {
        let unreachable = CliError::Unreachable { server: "s".into(), reason: "r".into() };
        let cases = [
            (problem(400, "malformed-request"), 1),
            (problem(403, "identifier-not-allowed"), 1),
            (problem(409, "already-revoked"), 1),
            (problem(503, "unavailable"), 1),
            (CliError::Usage("u".into()), 2),
            (unreachable, 3),
            (problem(404, "not-found"), 4),
            (problem(401, "unauthorized"), 5),
            (problem(403, "insufficient-scope"), 5),
            (problem(403, "policy-not-bound"), 5),
            (problem(429, "too-many-failed-authentications"), 5),
            (CliError::NotConfirmed("n".into()), 6),
        ];
        for (error, code) in cases {
            assert_eq!(error.exit_code(), code, "{error:?}");
            assert!(EXIT_CODES_HELP.contains(&format!("  {code}  ")), "{code} is documented");
        }
    }

    #[test]
    fn a_problem_is_one_line_with_title_detail_status_and_slug() {
        let p = Problem {
            kind: "urn:tessera:problem:too-many-failed-authentications".into(),
            title: "Too many failed authentications".into(),
            status: 429,
            detail: "too many".into(),
            retry_after: Some("60".into()),
        };
        assert_eq!(
            p.to_string(),
            "Too many failed authentications: too many (429 too-many-failed-authentications); retry after 60 s"
        );
    }
}
