//! `tessera-agent`, the built binary (and `tessera agent`, the same agent
//! as the server binary's subcommand), against a real Tessera started in
//! process: certificates that `openssl verify` accepts, files written
//! atomically with the right modes, the reload command, renewal with nobody
//! acting under a short-lived policy (ARI and `replaces`), backoff while the
//! CA is down, the three challenge types, and refusals of bad input.
//!
//! The agent is a client: a CA on either backend answers it the same, so
//! the runs that depend on the CA's records (obtaining, renewing) use both
//! backends and the others (challenge types, backoff, bad input) SQLite.
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::agent::*;
use crate::common::{Backend, TestCa, openssl_verify};

/// `--once` obtains a certificate, then leaves a valid one alone.
async fn once_obtains_then_keeps(backend: Backend) {
    let Some(s) = AgentSetup::start(backend).await else { return };
    let (kid, hmac) = s.ca.eab_key(false).await;
    let marker = s.path("reloaded");
    let mut args = s.args(&kid, &hmac, &["svc.agent.test", "127.0.0.1"]);
    args.extend(s.http01());
    let reload = format!("echo ran >> {}; echo reloaded the proxy; echo a warning >&2", marker.display());
    args.extend(["--reload-cmd".into(), reload, "--once".into()]);

    let first = run_agent(&args).await;
    assert!(first.status.success(), "{}", stderr(&first));
    let full_chain = std::fs::read_to_string(s.path("out/cert.pem")).unwrap();
    let (leaf, issuers) = split_chain(&full_chain);
    s.verify(&leaf, &issuers);
    let leaf_der = &certificates(&full_chain)[0];
    let names = sans(leaf_der);
    assert!(names.contains("svc.agent.test") && names.contains("[127, 0, 0, 1]"), "{names}");
    let key = std::fs::read_to_string(s.path("out/key.pem")).unwrap();
    assert!(key_matches(leaf_der, &key));
    assert_eq!(mode(&s.path("out/key.pem")), 0o600);
    assert_eq!(mode(&s.path("out/key.pem.account.pem")), 0o600);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "ran\n");
    assert!(stderr(&first).contains("certificate installed"), "{}", stderr(&first));
    // Issue 22.6: what the reload command said reaches the agent's log.
    let reloaded = stderr(&first).lines().find(|l| l.contains("reload command done")).unwrap_or_default().to_owned();
    assert!(reloaded.contains("reloaded the proxy") && reloaded.contains("a warning"), "{}", stderr(&first));

    // Again, as `tessera agent`, the subcommand existing users run: the
    // certificate is valid and not in its renewal window, so nothing is
    // ordered and nothing reloaded. The EAB key is single-use, so success
    // also shows the saved account was found, not made again.
    let second = run_tessera_agent(&args).await;
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(stderr(&second).contains("not due for renewal"), "{}", stderr(&second));
    assert_eq!(std::fs::read_to_string(s.path("out/cert.pem")).unwrap(), full_chain);
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "ran\n");

    // Asked for a name the certificate lacks, it orders a new one with the same account.
    let mut wider = s.args(&kid, &hmac, &["svc.agent.test", "127.0.0.1", "more.agent.test"]);
    wider.extend(s.http01());
    wider.push("--once".into());
    let third = run_agent(&wider).await;
    assert!(third.status.success(), "{}", stderr(&third));
    let renewed = certificates(&std::fs::read_to_string(s.path("out/cert.pem")).unwrap());
    assert_ne!(serial(&renewed[0]), serial(leaf_der));
    assert!(sans(&renewed[0]).contains("more.agent.test"));
    s.ca.stop().await;
}
on_both_backends!(once_obtains_then_keeps);

/// tls-alpn-01 with the chain in its own file, then dns-01 through a hook
/// for a wildcard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn01_and_a_dns01_hook() {
    let s = AgentSetup::start(Backend::Sqlite).await.unwrap();
    let (kid, hmac) = s.ca.eab_key(true).await;

    let mut args = s.args(&kid, &hmac, &["alpn.agent.test"]);
    args.extend([
        "--tlsalpn01-addr".into(),
        format!("127.0.0.1:{}", s.tlsalpn01_port),
        "--chain".into(),
        s.path("out/chain.pem").display().to_string(),
        "--once".into(),
    ]);
    let output = run_agent(&args).await;
    assert!(output.status.success(), "{}", stderr(&output));
    let leaf = std::fs::read_to_string(s.path("out/cert.pem")).unwrap();
    let chain = std::fs::read_to_string(s.path("out/chain.pem")).unwrap();
    assert_eq!(certificates(&leaf).len(), 1, "--cert holds the leaf alone when --chain is given");
    assert!(!certificates(&chain).is_empty());
    s.verify(&leaf, &chain);

    // The hook writes the record to a file; this test publishes it in the
    // DNS server and answers with a `.published` file the hook waits for.
    let records = s.path("dns");
    std::fs::create_dir_all(&records).unwrap();
    let hook = format!(
        r#"f="{}/$TESSERA_DNS01_ACTION-$TESSERA_DNS01_NAME"; echo "$TESSERA_DNS01_VALUE" > "$f.tmp" && mv "$f.tmp" "$f"; if [ "$TESSERA_DNS01_ACTION" = add ]; then while [ ! -e "$f.published" ]; do sleep 0.05; done; fi"#,
        records.display()
    );
    let mut args = s.args(&kid, &hmac, &["*.wild.agent.test", "api.agent.test"]);
    args.extend(["--dns01-hook".into(), hook, "--once".into()]);
    let agent = tokio::spawn(async move { run_agent(&args).await });
    let mut published = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let done = loop {
        assert!(Instant::now() < deadline, "the agent did not finish its dns-01 order in 120 s");
        for entry in std::fs::read_dir(&records).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            let Some(record) = name.strip_prefix("add-") else { continue };
            if record.ends_with(".tmp") || record.ends_with(".published") || !published.insert(record.to_owned()) {
                continue;
            }
            let value = std::fs::read_to_string(records.join(&name)).unwrap();
            s.responders.set_txt(record, value.trim());
            std::fs::write(records.join(format!("{name}.published")), "").unwrap();
        }
        if agent.is_finished() {
            break agent.await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(done.status.success(), "{}", stderr(&done));
    let full_chain = std::fs::read_to_string(s.path("out/cert.pem")).unwrap();
    let (leaf, issuers) = split_chain(&full_chain);
    s.verify(&leaf, &issuers);
    let names = sans(&certificates(&full_chain)[0]);
    assert!(names.contains("*.wild.agent.test") && names.contains("api.agent.test"), "{names}");
    for record in ["_acme-challenge.wild.agent.test", "_acme-challenge.api.agent.test"] {
        assert!(records.join(format!("remove-{record}")).exists(), "the hook was not asked to remove {record}");
    }
    s.ca.stop().await;
}

/// Reads the certificate and key files as fast as it can while the agent
/// replaces them, the way a server reloading at a bad moment would; every
/// read must find a whole file.
fn watch_files(
    cert: PathBuf,
    key: PathBuf,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<(usize, BTreeSet<String>)> {
    std::thread::spawn(move || {
        let mut reads = 0;
        let mut serials = BTreeSet::new();
        while !stop.load(Ordering::SeqCst) {
            if let (Ok(chain), Ok(key)) = (std::fs::read_to_string(&cert), std::fs::read_to_string(&key)) {
                let certs = certificates(&chain);
                assert!(certs.len() >= 2, "a reader saw a partial certificate file:\n{chain}");
                x509_parser::parse_x509_certificate(&certs[0]).expect("a reader saw a damaged certificate");
                rcgen::KeyPair::from_pem(&key).expect("a reader saw a partial key file");
                serials.insert(serial(&certs[0]));
                reads += 1;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        (reads, serials)
    })
}

/// Run as a service under a policy of 100-second certificates, the agent
/// renews again and again inside the ARI window with nobody acting.
async fn renews_with_nobody_acting(backend: Backend) {
    let Some(s) = AgentSetup::start(backend).await else { return };
    let (kid, hmac) = s.short_lived_eab_key().await;
    let reloads_dir = s.path("reloads");
    let metrics_port = free_port();
    let mut args = s.args(&kid, &hmac, &["renew.agent.test"]);
    args.extend(s.http01());
    args.extend(s.snapshotting_reload(&reloads_dir));
    args.extend(["--metrics-addr".into(), format!("127.0.0.1:{metrics_port}")]);
    std::fs::create_dir_all(s.path("out")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_files(s.path("out/cert.pem"), s.path("out/key.pem"), stop.clone());
    let agent = RunningAgent::start(&args, s.path("agent.log"));

    // Three renewals take about 45 s; the deadline leaves room for a busy machine.
    let reloads = || snapshots(&reloads_dir).len();
    let started = Instant::now();
    while reloads() < 4 {
        assert!(started.elapsed() < Duration::from_secs(240), "no fourth certificate in 240 s:\n{}", agent.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics")).await.unwrap().text().await.unwrap();
    let log = agent.log();
    drop(agent);
    stop.store(true, Ordering::SeqCst);
    let (reads, seen) = watcher.join().unwrap();
    assert!(reads > 100 && seen.len() >= 3, "{reads} reads saw {seen:?}");

    // Each reload saw a new certificate, chained to the root, with its key.
    let names = snapshots(&reloads_dir);
    let mut serials = Vec::new();
    for cert_path in &names {
        let full_chain = std::fs::read_to_string(cert_path).unwrap();
        let (leaf, issuers) = split_chain(&full_chain);
        let der = &certificates(&full_chain)[0];
        // Early ones have expired by now: check the chain as of their issue.
        s.verify_at(&leaf, &issuers, not_before(der) + 1);
        assert!(key_matches(der, &std::fs::read_to_string(cert_path.with_extension("key")).unwrap()));
        serials.push(serial(der));
    }
    assert_eq!(serials.iter().collect::<BTreeSet<_>>().len(), serials.len(), "{serials:?}");
    // Every renewal told the CA which certificate it replaces (RFC 9773 §5).
    for old in &serials[..serials.len() - 1] {
        let replaced_by = s.ca.db.acme().acme_replacements(&hex::decode(old).unwrap()).await.unwrap();
        assert!(!replaced_by.is_empty(), "no order replaced {old}\n{log}");
    }
    assert!(log.matches("next renewal scheduled").count() >= 3, "{log}");
    assert!(log.contains(r#"source="ari""#), "{log}");
    assert!(!log.contains("hmac") && !log.contains(&hmac), "the log mentions the EAB key:\n{log}");

    let ok = metric(&metrics, r#"tessera_agent_renewals_total{result="ok"}"#);
    assert!(ok >= 4.0, "{metrics}");
    let next = metric(&metrics, "tessera_agent_next_renewal_timestamp_seconds");
    let not_after = metric(&metrics, "tessera_agent_certificate_not_after_timestamp_seconds");
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
    assert!(next > now - 30.0 && next < not_after && not_after <= now + 100.0, "{metrics}");

    // Nothing half-written is left behind.
    let mut left: Vec<String> = std::fs::read_dir(s.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["cert.pem", "key.pem", "key.pem.account.pem"]);
    s.ca.stop().await;
}
on_both_backends!(renews_with_nobody_acting);

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

/// With the CA down the agent keeps trying, backing off, and gets its
/// certificate once the CA is back on the same address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backs_off_while_the_ca_is_down() {
    let s = AgentSetup::start(Backend::Sqlite).await.unwrap();
    let (kid, hmac) = s.ca.eab_key(false).await;
    let mut args = s.args(&kid, &hmac, &["down.agent.test"]);
    args.extend(s.http01());
    let https_addr = s.ca.running().https_addr;
    let AgentSetup { ca, responders, http01_port, tlsalpn01_port, work } = s;
    let data = ca.stop().await;

    let agent = RunningAgent::start(&args, work.path().join("agent.log"));
    wait_for(Duration::from_secs(60), "two failed attempts", || agent.log().matches("renewal failed").count() >= 2)
        .await;
    let log = agent.log();
    assert!(log.contains("cannot reach the ACME directory"), "{log}");
    assert!(!work.path().join("out/cert.pem").exists());

    let ca = TestCa::start_in_with(data, None, overrides(&responders, http01_port, tlsalpn01_port), |config| {
        config.https_addr = https_addr;
    })
    .await;
    let cert = work.path().join("out/cert.pem");
    wait_for(Duration::from_secs(120), "the certificate after the CA came back", || cert.exists()).await;
    let (leaf, issuers) = split_chain(&std::fs::read_to_string(&cert).unwrap());
    openssl_verify(work.path(), &ca.root_pem_path(), &issuers, &leaf).unwrap();
    // The delays grew between failures: 1 s, then about 2 s, 4 s ...
    let log = agent.log();
    let delays: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("renewal failed"))
        .map(|l| l.rsplit("retry_in=").next().unwrap_or(""))
        .collect();
    assert!(delays.len() >= 2 && delays[0].starts_with("1s"), "{delays:?}");
    drop(agent);
    let _data = ca.stop().await;

    // Cron while the CA is down again: the certificate is not due by its
    // own lifetime, so there is nothing to do and nothing fails.
    let mut once = args.clone();
    once.push("--once".into());
    let output = run_agent(&once).await;
    let message = stderr(&output);
    assert!(output.status.success(), "{message}");
    assert!(message.contains("cannot reach the CA") && message.contains("not due"), "{message}");
}

/// A wrong EAB key fails `--once` with a message that says what to check
/// and does not repeat the key; bad flags are usage errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_bad_input() {
    let s = AgentSetup::start(Backend::Sqlite).await.unwrap();
    let (kid, _) = s.ca.eab_key(false).await;
    let wrong = "c29tZS1vdGhlci1obWFjLWtleS10aGF0LWlzLXdyb25n";
    let mut args = s.args(&kid, wrong, &["svc.agent.test"]);
    args.extend(s.http01());
    args.push("--once".into());
    let output = run_agent(&args).await;
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(message.contains("refused the account") && message.contains("--eab-hmac"), "{message}");
    assert!(message.contains("urn:ietf:params:acme:error:unauthorized"), "{message}");
    assert!(!message.contains(wrong), "{message}");
    assert!(!s.path("out/cert.pem").exists() && !s.path("out/key.pem.account.pem").exists());

    let base = s.args(&kid, wrong, &["svc.agent.test"]);
    let without = |flag: &str| -> Vec<String> {
        let mut out = Vec::new();
        let mut skip = false;
        for arg in &base {
            if skip {
                skip = false;
            } else if arg == flag {
                skip = true;
            } else {
                out.push(arg.clone());
            }
        }
        out
    };
    let http01 = s.http01().to_vec();
    let cases: Vec<(Vec<String>, &str)> = vec![
        ([without("--domain"), http01.clone()].concat(), "--domain"),
        ([without("--directory"), http01.clone()].concat(), "--directory"),
        ([base.clone(), http01.clone(), vec!["--bogus".into()]].concat(), "--bogus"),
        (base.clone(), "--http01-addr"),
        ([base.clone(), vec!["--http01-addr".into(), "nowhere".into()]].concat(), "HOST:PORT"),
        ([base.clone(), http01.clone(), vec!["--domain".into(), "*.wild.agent.test".into()]].concat(), "--dns01-hook"),
        ([base.clone(), http01.clone(), vec!["--domain".into(), "bad name".into()]].concat(), "bad name"),
        ([without("--eab-hmac"), http01.clone()].concat(), "--eab-hmac"),
        (
            [base.clone(), http01.clone(), vec!["--once".into(), "--metrics-addr".into(), "127.0.0.1:1".into()]]
                .concat(),
            "--metrics-addr",
        ),
    ];
    for (args, expected) in cases {
        for output in [run_agent(&args).await, run_tessera_agent(&args).await] {
            let message = stderr(&output);
            assert_eq!(output.status.code(), Some(2), "{args:?}: {message}");
            assert!(message.contains(expected) && message.contains("--help"), "{args:?}: {message}");
        }
    }
    s.ca.stop().await;
}
