//! The reload command: how the workload learns that its certificate
//! changed (e.g. `systemctl reload nginx`). Its output goes to the agent's
//! log (the first few KiB of each stream), so an operator sees what the
//! command said, whether it worked or not. A failure is logged and the
//! agent carries on: the new files are in place either way.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

use super::args::OutputFiles;
use super::shell::shell;

const RELOAD_TIMEOUT: Duration = Duration::from_secs(120);
/// How much of each output stream the log shows; the rest is read and
/// counted, so a chatty command neither blocks on its pipe nor fills memory.
const OUTPUT_SHOWN: usize = 4096;

/// Runs `sh -c CMD` with the file paths in `TESSERA_AGENT_CERT`,
/// `TESSERA_AGENT_KEY` (and `TESSERA_AGENT_CHAIN`) and none of the agent's
/// secrets (see `shell`); true when it exited 0.
pub async fn run_reload(command: &str, files: &OutputFiles) -> bool {
    let mut cmd = shell(command);
    cmd.env("TESSERA_AGENT_CERT", &files.cert).env("TESSERA_AGENT_KEY", &files.key);
    if let Some(chain) = &files.chain {
        cmd.env("TESSERA_AGENT_CHAIN", chain);
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the reload command");
            return false;
        }
    };
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let finished = async { tokio::join!(child.wait(), shown(stdout), shown(stderr)) };
    match tokio::time::timeout(RELOAD_TIMEOUT, finished).await {
        Ok((Ok(status), stdout, stderr)) if status.success() => {
            tracing::info!(%stdout, %stderr, "reload command done");
            true
        }
        Ok((Ok(status), stdout, stderr)) => {
            tracing::error!(%status, %stdout, %stderr, "reload command failed; the new certificate is in place");
            false
        }
        Ok((Err(e), _, _)) => {
            tracing::error!(error = %e, "reload command failed");
            false
        }
        Err(_) => {
            tracing::error!(timeout = ?RELOAD_TIMEOUT, "reload command timed out and was killed");
            false
        }
    }
}

/// What the log shows of one output stream: its first [`OUTPUT_SHOWN`]
/// bytes, and how many more there were.
async fn shown(stream: Option<impl AsyncRead + Unpin>) -> String {
    let Some(mut stream) = stream else { return String::new() };
    let (mut kept, mut more) = (Vec::new(), 0usize);
    let mut buffer = [0u8; 8192];
    loop {
        let read = match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let room = OUTPUT_SHOWN.saturating_sub(kept.len()).min(read);
        kept.extend_from_slice(&buffer[..room]);
        more += read - room;
    }
    let mut text = String::from_utf8_lossy(&kept).trim_end().to_owned();
    if more > 0 {
        text.push_str(&format!(" ... ({more} more bytes not shown)"));
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn output_is_shown_up_to_its_bound() {
        assert_eq!(shown(Some(&b"reloaded nginx\n"[..])).await, "reloaded nginx");
        assert_eq!(shown(None::<&[u8]>).await, "");
        let chatty = vec![b'x'; OUTPUT_SHOWN + 10_000];
        let text = shown(Some(&chatty[..])).await;
        assert!(text.starts_with(&"x".repeat(OUTPUT_SHOWN)), "{}", &text[..20]);
        assert!(text.ends_with(" ... (10000 more bytes not shown)"), "{}", &text[OUTPUT_SHOWN..]);
    }
}
