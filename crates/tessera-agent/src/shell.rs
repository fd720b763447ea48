//! The operator's commands (`--reload-cmd`, `--dns01-hook`), run with
//! `sh -c` in an environment of their own: the variables each command is
//! documented to get, and the few a shell needs (PATH, HOME, locale, time
//! zone). Nothing else of the agent's environment reaches them: it may
//! hold `TESSERA_AGENT_EAB_HMAC` or a cloud credential, and a hook has no
//! need of either.

use std::process::Stdio;

/// The agent's own variables a command keeps, when they are set.
const KEPT: [&str; 5] = ["PATH", "HOME", "LANG", "LC_ALL", "TZ"];
/// PATH for a command when the agent has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// `sh -c command` with only the [`KEPT`] variables, no stdin, its output
/// captured, and killed if the agent drops it. The caller adds what the
/// command is documented to get.
pub(super) fn shell(command: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c").arg(command).env_clear();
    for name in KEPT {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    if std::env::var_os("PATH").is_none() {
        cmd.env("PATH", DEFAULT_PATH);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    cmd
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn a_command_sees_only_what_it_is_given() {
        let output = shell("env").env("TESSERA_AGENT_CERT", "/tls/svc.crt").output().await.unwrap();
        assert!(output.status.success());
        let env = String::from_utf8(output.stdout).unwrap();
        let names: Vec<&str> = env.lines().filter_map(|line| line.split_once('=').map(|(name, _)| name)).collect();
        assert!(names.contains(&"TESSERA_AGENT_CERT") && names.contains(&"PATH"), "{env}");
        // What sh itself sets, and nothing of the test process's own
        // environment (CARGO_*, RUST_*, ...) beyond the kept variables.
        for name in names {
            assert!(
                KEPT.contains(&name) || ["TESSERA_AGENT_CERT", "PWD", "SHLVL", "_"].contains(&name),
                "{name} leaked into the command's environment: {env}"
            );
        }
    }
}
