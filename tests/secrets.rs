//! Secrets at rest and in the open: what a dump of the database, a look at
//! the data directory, a log line or a child process can learn. Each test
//! names the secret it guards.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Stdio;

use common::Backend;
use common::agent::{AgentSetup, BIN, stderr};

/// The agent's reload command and dns-01 hook get the variables they are
/// documented to get and none of the agent's secrets: not the EAB HMAC key
/// it was given in `TESSERA_AGENT_EAB_HMAC`, not a cloud credential that
/// happens to be in its environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_commands_get_no_secret() {
    const CLOUD_SECRET: &str = "agent-cloud-credential-7f3a";
    let s = AgentSetup::start(Backend::Sqlite).await.unwrap();
    let (kid, hmac) = s.ca.eab_key(true).await;
    let dumps = s.path("env");
    std::fs::create_dir_all(&dumps).unwrap();
    let agent = |domain: &str, solver: [String; 2], extra: &[String]| {
        // The HMAC key comes from the environment, as the README suggests.
        let mut args: Vec<String> =
            s.args(&kid, &hmac, &[domain]).into_iter().filter(|a| *a != hmac && a != "--eab-hmac").collect();
        args.extend(solver);
        args.extend_from_slice(extra);
        args.push("--once".into());
        tokio::process::Command::new(BIN)
            .args(args)
            .env("TESSERA_AGENT_EAB_HMAC", &hmac)
            .env("AWS_SECRET_ACCESS_KEY", CLOUD_SECRET)
            .stdin(Stdio::null())
            .output()
    };

    let reload = ["--reload-cmd".to_owned(), format!("env > {}/reload.env", dumps.display())];
    let first = agent("env.agent.test", s.http01(), &reload).await.unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    // The hook records its environment and fails: the order fails with it.
    let hook = ["--dns01-hook".to_owned(), format!("env > {}/$TESSERA_DNS01_ACTION.env; exit 1", dumps.display())];
    let second = agent("hook.agent.test", hook, &[]).await.unwrap();
    assert!(!second.status.success(), "{}", stderr(&second));

    let reload_env = std::fs::read_to_string(dumps.join("reload.env")).unwrap();
    let hook_env = std::fs::read_to_string(dumps.join("add.env")).unwrap();
    for (env, documented) in [
        (&reload_env, &["TESSERA_AGENT_CERT=", "TESSERA_AGENT_KEY="][..]),
        (&hook_env, &["TESSERA_DNS01_ACTION=add", "TESSERA_DNS01_NAME=_acme-challenge.hook.agent.test"][..]),
    ] {
        for variable in documented.iter().chain(&["PATH="]) {
            assert!(env.lines().any(|line| line.starts_with(variable)), "{variable} is missing:\n{env}");
        }
        for secret in [hmac.as_str(), CLOUD_SECRET, "TESSERA_AGENT_EAB_HMAC", "AWS_SECRET_ACCESS_KEY"] {
            assert!(!env.contains(secret), "a command was given {secret}:\n{env}");
        }
    }
    assert!(hook_env.contains("TESSERA_DNS01_VALUE=") && hook_env.contains("TESSERA_DNS01_DOMAIN=hook.agent.test"));
    s.ca.stop().await;
}
