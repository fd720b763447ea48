//! `tessera agent`, the built binary, against a real Tessera started in
//! process: certificates that `openssl verify` accepts, files written
//! atomically with the right modes, the reload command, renewal with nobody
//! acting under a short-lived policy (ARI and `replaces`), backoff while the
//! CA is down, the three challenge types, and refusals of bad input.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::acme::Responders;
use common::{Backend, TestCa, openssl_verify};
use serde_json::json;
use tessera::config::AcmeOverrides;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// A free port below the ephemeral range: the agent opens its challenge
/// listeners only while an order is open, and a port the kernel hands out
/// for `:0` could be taken by another test's listener in between.
fn free_port() -> u16 {
    loop {
        let port = rand::random_range(20_000..32_000);
        if std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
}

/// A CA whose validation reaches the agent: http-01 and tls-alpn-01 connect
/// to the agent's ports, and every name resolves to 127.0.0.1 through the
/// responders' DNS server (which also serves the dns-01 hook's records).
struct Setup {
    ca: TestCa,
    responders: Responders,
    http01_port: u16,
    tlsalpn01_port: u16,
    work: tempfile::TempDir,
}

impl Setup {
    async fn start(backend: Backend) -> Option<Self> {
        let responders = Responders::start().await;
        let http01_port = free_port();
        let tlsalpn01_port = free_port();
        let ca = TestCa::start_acme(backend, overrides(&responders, http01_port, tlsalpn01_port)).await?;
        Some(Self { ca, responders, http01_port, tlsalpn01_port, work: tempfile::tempdir().unwrap() })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// The acceptance command line, without a solver or `--once`.
    fn args(&self, kid: &str, hmac: &str, domains: &[&str]) -> Vec<String> {
        let mut args = vec![
            "agent".to_owned(),
            "--directory".into(),
            self.ca.acme_directory(),
            "--ca-bundle".into(),
            self.ca.root_pem_path().display().to_string(),
            "--eab-kid".into(),
            kid.into(),
            "--eab-hmac".into(),
            hmac.into(),
            "--cert".into(),
            self.path("out/cert.pem").display().to_string(),
            "--key".into(),
            self.path("out/key.pem").display().to_string(),
        ];
        for domain in domains {
            args.extend(["--domain".to_owned(), (*domain).to_owned()]);
        }
        args
    }

    fn http01(&self) -> [String; 2] {
        ["--http01-addr".into(), format!("127.0.0.1:{}", self.http01_port)]
    }

    /// A policy whose certificates live 100 s (40 s TTL plus Tessera's 60 s
    /// backdating; ARI suggests renewing 7 to 23 s after issue), and a fresh
    /// EAB key bound to it.
    async fn short_lived_eab_key(&self) -> (String, String) {
        let token = Some(self.ca.admin_token.as_str());
        let policy = json!({"name": "short", "dns": ["*.agent.test"], "max_ttl": "40s"});
        let (status, body) = self.ca.post("/api/v1/policies", token, &policy).await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = self.ca.post("/api/v1/eab-keys", token, &json!({"policy": "short"})).await;
        assert_eq!(status, 201, "{body}");
        (body["kid"].as_str().unwrap().to_owned(), body["hmac_key"].as_str().unwrap().to_owned())
    }

    /// `openssl verify` through the chain to the root, at a Unix time.
    fn verify_at(&self, leaf: &str, chain: &str, unix: i64) {
        let (leaf_path, chain_path) = (self.path("verify-leaf.pem"), self.path("verify-chain.pem"));
        std::fs::write(&leaf_path, leaf).unwrap();
        std::fs::write(&chain_path, chain).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["verify", "-attime", &unix.to_string(), "-CAfile"])
            .arg(self.ca.root_pem_path())
            .arg("-untrusted")
            .arg(&chain_path)
            .arg(&leaf_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn verify(&self, leaf: &str, chain: &str) {
        openssl_verify(self.work.path(), &self.ca.root_pem_path(), chain, leaf).unwrap_or_else(|e| panic!("{e}"));
    }
}

fn overrides(responders: &Responders, http01_port: u16, tlsalpn01_port: u16) -> AcmeOverrides {
    AcmeOverrides {
        http01_port: Some(http01_port),
        tlsalpn01_port: Some(tlsalpn01_port),
        dns_resolver: responders.overrides().dns_resolver,
    }
}

async fn run_agent(args: &[String]) -> Output {
    tokio::process::Command::new(BIN).args(args).env("TESSERA_LOG", "info").stdin(Stdio::null()).output().await.unwrap()
}

/// A long-running agent whose log goes to a file; killed when dropped.
struct RunningAgent {
    _child: tokio::process::Child,
    log: PathBuf,
}

impl RunningAgent {
    fn start(args: &[String], log: PathBuf) -> Self {
        let file = std::fs::File::create(&log).unwrap();
        let child = tokio::process::Command::new(BIN)
            .args(args)
            .env("TESSERA_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Self { _child: child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Polls `check` every 100 ms until it holds; panics with `what` after `limit`.
async fn wait_for(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn certificates(pem_text: &str) -> Vec<Vec<u8>> {
    pem::parse_many(pem_text)
        .unwrap()
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| b.into_contents())
        .collect()
}

fn pem_of(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}

/// (leaf PEM, issuers PEM) of a full-chain file.
fn split_chain(pem_text: &str) -> (String, String) {
    let certs = certificates(pem_text);
    assert!(certs.len() >= 2, "expected a leaf and its issuer, got {} certificates", certs.len());
    (pem_of(&certs[0]), certs[1..].iter().map(|c| pem_of(c)).collect())
}

fn serial(leaf_der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf_der).unwrap();
    hex::encode(cert.raw_serial())
}

fn not_before(leaf_der: &[u8]) -> i64 {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf_der).unwrap();
    cert.validity().not_before.timestamp()
}

fn sans(leaf_der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf_der).unwrap();
    format!("{:?}", cert.subject_alternative_name().unwrap().unwrap().value.general_names)
}

fn key_matches(leaf_der: &[u8], key_pem: &str) -> bool {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf_der).unwrap();
    rcgen::KeyPair::from_pem(key_pem).unwrap().public_key_raw() == cert.public_key().subject_public_key.data.as_ref()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `--once` obtains a certificate, then leaves a valid one alone.
async fn once_obtains_then_keeps(backend: Backend) {
    let Some(s) = Setup::start(backend).await else { return };
    let (kid, hmac) = s.ca.eab_key(false).await;
    let marker = s.path("reloaded");
    let mut args = s.args(&kid, &hmac, &["svc.agent.test", "127.0.0.1"]);
    args.extend(s.http01());
    args.extend(["--reload-cmd".into(), format!("echo ran >> {}", marker.display()), "--once".into()]);

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

    // Again: the certificate is valid and not in its renewal window, so
    // nothing is ordered and nothing reloaded. The EAB key is single-use,
    // so success also shows the saved account was found, not made again.
    let second = run_agent(&args).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_obtains_then_keeps_on_sqlite() {
    once_obtains_then_keeps(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_obtains_then_keeps_on_postgres() {
    once_obtains_then_keeps(Backend::Postgres).await;
}

/// tls-alpn-01 with the chain in its own file, then dns-01 through a hook
/// for a wildcard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn01_and_a_dns01_hook() {
    let s = Setup::start(Backend::Sqlite).await.unwrap();
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
    let done = loop {
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
    let Some(s) = Setup::start(backend).await else { return };
    let (kid, hmac) = s.short_lived_eab_key().await;
    let snapshots = s.path("reloads");
    std::fs::create_dir_all(&snapshots).unwrap();
    let metrics_port = free_port();
    let mut args = s.args(&kid, &hmac, &["renew.agent.test"]);
    args.extend(s.http01());
    args.extend([
        "--reload-cmd".into(),
        format!(
            r#"n=$(date +%s%N); cp "$TESSERA_AGENT_CERT" "{0}/$n.crt" && cp "$TESSERA_AGENT_KEY" "{0}/$n.key""#,
            snapshots.display()
        ),
        "--metrics-addr".into(),
        format!("127.0.0.1:{metrics_port}"),
    ]);
    std::fs::create_dir_all(s.path("out")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = watch_files(s.path("out/cert.pem"), s.path("out/key.pem"), stop.clone());
    let agent = RunningAgent::start(&args, s.path("agent.log"));

    let reloads = || {
        std::fs::read_dir(&snapshots)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "crt"))
            .count()
    };
    let started = Instant::now();
    while reloads() < 4 {
        assert!(started.elapsed() < Duration::from_secs(100), "no fourth certificate in 100 s:\n{}", agent.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics")).await.unwrap().text().await.unwrap();
    let log = agent.log();
    drop(agent);
    stop.store(true, Ordering::SeqCst);
    let (reads, seen) = watcher.join().unwrap();
    assert!(reads > 100 && seen.len() >= 3, "{reads} reads saw {seen:?}");

    // Each reload saw a new certificate, chained to the root, with its key.
    let mut names: Vec<PathBuf> = std::fs::read_dir(&snapshots)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        .collect();
    names.sort();
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
        let replaced_by = s.ca.db.acme_replacements(&hex::decode(old).unwrap()).await.unwrap();
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

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renews_with_nobody_acting_on_sqlite() {
    renews_with_nobody_acting(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renews_with_nobody_acting_on_postgres() {
    renews_with_nobody_acting(Backend::Postgres).await;
}

/// With the CA down the agent keeps trying, backing off, and gets its
/// certificate once the CA is back on the same address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backs_off_while_the_ca_is_down() {
    let s = Setup::start(Backend::Sqlite).await.unwrap();
    let (kid, hmac) = s.ca.eab_key(false).await;
    let mut args = s.args(&kid, &hmac, &["down.agent.test"]);
    args.extend(s.http01());
    let https_addr = s.ca.running().https_addr;
    let Setup { ca, responders, http01_port, tlsalpn01_port, work } = s;
    let data = ca.stop().await;

    let agent = RunningAgent::start(&args, work.path().join("agent.log"));
    wait_for(Duration::from_secs(20), "two failed attempts", || agent.log().matches("renewal failed").count() >= 2)
        .await;
    let log = agent.log();
    assert!(log.contains("cannot reach the ACME directory"), "{log}");
    assert!(!work.path().join("out/cert.pem").exists());

    let ca = TestCa::start_in_with(data, None, overrides(&responders, http01_port, tlsalpn01_port), |config| {
        config.https_addr = https_addr;
    })
    .await;
    let cert = work.path().join("out/cert.pem");
    wait_for(Duration::from_secs(60), "the certificate after the CA came back", || cert.exists()).await;
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
    let s = Setup::start(Backend::Sqlite).await.unwrap();
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
        let output = run_agent(&args).await;
        let message = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {message}");
        assert!(message.contains(expected) && message.contains("--help"), "{args:?}: {message}");
    }
    s.ca.stop().await;
}
