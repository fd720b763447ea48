//! Asking before a change that cannot be undone (revoking, deleting,
//! rotating). `--yes` answers for the operator; without it and without a
//! terminal to ask on, the change is refused at once rather than left
//! waiting for an answer that cannot come (cron, CI, a pipe).

use std::io::{BufRead, IsTerminal, Write};

use super::error::CliError;

/// Whether `--yes` was given.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Yes {
    /// Do not ask for confirmation (needed without a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
}

/// Asks `question` on the terminal unless `--yes`; anything but `y` or
/// `yes` declines.
pub fn confirm(yes: Yes, question: &str) -> Result<(), CliError> {
    if yes.yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(CliError::NotConfirmed(format!(
            "{question}: not confirmed, nothing changed (no terminal to ask on; pass --yes)"
        )));
    }
    let mut stderr = std::io::stderr();
    let _ = write!(stderr, "{question}? [y/N] ");
    let _ = stderr.flush();
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer).map_err(|e| CliError::Usage(format!("stdin: {e}")))?;
    match answer.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" => Ok(()),
        _ => Err(CliError::NotConfirmed("not confirmed, nothing changed".into())),
    }
}
