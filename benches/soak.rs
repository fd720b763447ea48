//! Soak: two `tessera serve` processes on one PostgreSQL under mixed load
//! (ACME flows, REST issuance, OCSP), one of them restarted (SIGTERM, then
//! started again on the same ports) every minute, the two in turn. Reports
//! per kind the throughput, error rate and p99; at the end the orders still
//! processing and the certificate rows still pending (both must be 0); and
//! per node its resident memory when it became ready and when it stopped.
//! Requests that reach a node while it restarts count as errors: there is
//! no load balancer in front, so the error rate shows what one would hide.
//!
//!     DATABASE_URL=postgres://... cargo bench --bench soak
//!
//! Knobs: `BENCH_MINUTES` (1), `BENCH_CLIENTS` (4 per kind). Nodes share a
//! database only on PostgreSQL; without `DATABASE_URL` it says so and stops.
//! Under `cargo test` a 20-second smoke pass restarts a node once.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::acme::{Tokens, eab_key, flow, http01_responder, new_account};
use common::ocsp::{request_der, sha1};
use instant_acme::Account;
use sqlx::Connection;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One `tessera serve` process, restarted on the same ports.
struct Node {
    https: u16,
    http: u16,
    admin: u16,
    child: Option<Child>,
    /// (RSS when ready, RSS when stopped) of each life, in KiB.
    lives: Vec<(u64, u64)>,
}

impl Node {
    fn new() -> Self {
        Self { https: free_port(), http: free_port(), admin: free_port(), child: None, lives: Vec::new() }
    }

    async fn start(&mut self, dir: &Path, database_url: &str, http01_port: u16) {
        let addr = |port: u16| format!("127.0.0.1:{port}");
        let child = Command::new(BIN)
            .arg("serve")
            .arg("--data-dir")
            .arg(dir)
            .args(["--database-url", database_url])
            .args(["--https-addr", &addr(self.https), "--http-addr", &addr(self.http)])
            .args(["--admin-addr", &addr(self.admin), "--http01-port", &http01_port.to_string()])
            .env("TESSERA_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        // Only readiness is asked here, before the root is known: no trust needed.
        let probe = reqwest::Client::builder().danger_accept_invalid_certs(true).build().unwrap();
        let url = format!("https://localhost:{}/healthz", self.admin);
        while !probe.get(&url).send().await.is_ok_and(|r| r.status().is_success()) {
            assert!(Instant::now() < deadline, "a node did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.lives.push((self.rss_kib(), 0));
    }

    /// Stops the process as an orchestrator does (SIGTERM) and waits for it.
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        let rss = rss_kib(child.id());
        if let Some(life) = self.lives.last_mut() {
            life.1 = rss;
        }
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        child.wait().unwrap();
    }

    fn rss_kib(&self) -> u64 {
        self.child.as_ref().map_or(0, |c| rss_kib(c.id()))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A process's resident memory (VmRSS), in KiB; 0 where /proc has none.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[derive(Default)]
struct Tally {
    ok: u64,
    errors: u64,
    latencies: Vec<Duration>,
    first_error: Option<String>,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.latencies.extend(other.latencies);
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn report(&mut self, kind: &str, seconds: f64) -> String {
        self.latencies.sort();
        let p99 = self.latencies.get(self.latencies.len() * 99 / 100).copied().unwrap_or_default();
        let total = (self.ok + self.errors).max(1);
        format!(
            "{kind}: {:.1}/s, errors {} ({:.2}%), p99 {:.0} ms{}",
            self.ok as f64 / seconds,
            self.errors,
            100.0 * self.errors as f64 / total as f64,
            p99.as_secs_f64() * 1000.0,
            self.first_error.as_ref().map(|e| format!(" (first: {e})")).unwrap_or_default()
        )
    }
}

/// What the load needs to reach both nodes.
struct Targets {
    accounts: [Account; 2],
    tokens: Tokens,
    client: reqwest::Client,
    token: String,
    admin: [u16; 2],
    http: [u16; 2],
    ocsp_request: Vec<u8>,
}

/// One request of `kind` to node `node`.
async fn one(targets: &Targets, kind: usize, node: usize) -> Result<(), String> {
    match kind {
        0 => flow(&targets.accounts[node], &targets.tokens).await,
        1 => {
            let key = rcgen::KeyPair::generate().unwrap();
            let params = rcgen::CertificateParams::new(vec!["soak.bench.test".to_owned()]).unwrap();
            let csr = params.serialize_request(&key).unwrap().pem().unwrap();
            let url = format!("https://localhost:{}/api/v1/certificates", targets.admin[node]);
            let body = serde_json::json!({"policy": "default", "csr": csr});
            let response = targets
                .client
                .post(url)
                .bearer_auth(&targets.token)
                .json(&body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            match response.status().as_u16() {
                201 => Ok(()),
                status => Err(format!("REST {status}")),
            }
        }
        _ => {
            let url = format!("http://127.0.0.1:{}/ocsp", targets.http[node]);
            let response = targets
                .client
                .post(url)
                .header("content-type", "application/ocsp-request")
                .body(targets.ocsp_request.clone())
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let body = response.bytes().await.map_err(|e| e.to_string())?;
            // OCSPResponse: SEQUENCE { responseStatus ENUMERATED successful(0) ...
            let successful = body.len() > 8 && body[..8].windows(3).any(|w| w == [0x0a, 0x01, 0x00]);
            if successful { Ok(()) } else { Err("OCSP answer not successful".into()) }
        }
    }
}

async fn load(targets: Arc<Targets>, kind: usize, client: usize, stop_at: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut turn = client;
    while Instant::now() < stop_at {
        turn += 1;
        let sent = Instant::now();
        let outcome = tokio::time::timeout(Duration::from_secs(30), one(&targets, kind, turn % 2))
            .await
            .unwrap_or_else(|_| Err("no answer within 30 s".into()));
        match outcome {
            Ok(()) => {
                tally.ok += 1;
                tally.latencies.push(sent.elapsed());
            }
            Err(e) => {
                tally.errors += 1;
                tally.first_error.get_or_insert(e);
                // A node restarting refuses at once; do not spin on it.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tally
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let measuring = std::env::args().any(|a| a == "--bench");
    let Ok(server) = std::env::var("DATABASE_URL") else {
        println!("soak: DATABASE_URL is not set; two nodes share a database only on PostgreSQL");
        return;
    };
    let run = if measuring { Duration::from_secs(60 * env_or("BENCH_MINUTES", 1)) } else { Duration::from_secs(20) };
    let restart_every = if measuring { Duration::from_secs(60) } else { Duration::from_secs(10) };
    let clients = env_or("BENCH_CLIENTS", if measuring { 4 } else { 1 }) as usize;
    let database_url = common::fresh_database(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let (tokens, http01_port) = http01_responder().await;

    // The first node makes the dev CA in the shared data directory; the
    // second finds it there, as nodes sharing an HSM and a database do.
    let mut nodes = [Node::new(), Node::new()];
    for node in &mut nodes {
        node.start(dir.path(), &database_url, http01_port).await;
    }
    let targets = Arc::new(setup(dir.path(), &nodes, tokens).await);

    let started = Instant::now();
    let stop_at = started + run;
    let mut tasks = Vec::new();
    for kind in 0..3 {
        for client in 0..clients {
            tasks.push((kind, tokio::spawn(load(targets.clone(), kind, client, stop_at))));
        }
    }
    let mut restarts = Vec::new();
    let mut next = 0;
    while started.elapsed() + restart_every <= run {
        tokio::time::sleep_until((started + restart_every * (restarts.len() as u32 + 1)).into()).await;
        let down = Instant::now();
        nodes[next].stop();
        nodes[next].start(dir.path(), &database_url, http01_port).await;
        restarts.push(down.elapsed());
        next = 1 - next;
    }
    let mut tallies = [Tally::default(), Tally::default(), Tally::default()];
    for (kind, task) in tasks {
        tallies[kind].add(task.await.unwrap());
    }
    let seconds = started.elapsed().as_secs_f64();

    let mut db = sqlx::PgConnection::connect(&database_url).await.unwrap();
    let count = |sql: &'static str| sqlx::query_scalar::<_, i64>(sql);
    let stuck = count("SELECT count(*) FROM acme_orders WHERE status = 'processing'").fetch_one(&mut db).await.unwrap();
    let pending = count("SELECT count(*) FROM certificates WHERE status = 0").fetch_one(&mut db).await.unwrap();
    db.close().await.unwrap();
    for node in &mut nodes {
        node.stop();
    }

    println!("soak: 2 nodes, {clients} clients per kind, {seconds:.0} s, restarts took {restarts:?}");
    for (kind, tally) in ["ACME flows", "REST issuance", "OCSP"].iter().zip(&mut tallies) {
        println!("  {}", tally.report(kind, seconds));
    }
    println!("  stuck orders {stuck}, pending rows {pending}");
    for (i, node) in nodes.iter().enumerate() {
        let lives: Vec<String> =
            node.lives.iter().map(|(ready, end)| format!("{} → {} MiB", ready / 1024, end / 1024)).collect();
        println!("  node {i} RSS per life (ready → stopped): {}", lives.join(", "));
    }
    common::drop_database(&database_url).await;
    assert!(stuck == 0 && pending == 0, "work left stuck: {stuck} orders, {pending} rows");
    assert!(measuring || tallies.iter().all(|t| t.ok > 0), "smoke pass: a kind of load never succeeded");
}

/// Accounts on both nodes, the admin token and client, and an OCSP request
/// for a certificate issued through REST.
async fn setup(dir: &Path, nodes: &[Node; 2], tokens: Tokens) -> Targets {
    let root: PathBuf = dir.join("root.pem");
    let token = std::fs::read_to_string(dir.join("admin-token")).unwrap().trim().to_owned();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(&root).unwrap()).unwrap())
        .build()
        .unwrap();
    let mut accounts = Vec::new();
    for node in nodes {
        let eab = eab_key(&root, &dir.join("admin-token"), node.admin).await;
        let directory = format!("https://localhost:{}/acme/default/directory", node.https);
        accounts.push(new_account(&root, &directory, Some(&eab)).await);
    }
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::new(vec!["ocsp.soak.test".to_owned()])
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let issued: serde_json::Value = client
        .post(format!("https://localhost:{}/api/v1/certificates", nodes[0].admin))
        .bearer_auth(&token)
        .json(&serde_json::json!({"policy": "default", "csr": csr}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let issuer_pem = issued["chain"].as_str().unwrap().split_inclusive("-----END CERTIFICATE-----\n").nth(1).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(issuer_pem.as_bytes()).unwrap();
    let issuer = pem.parse_x509().unwrap();
    let serial = hex::decode(issued["serial"].as_str().unwrap()).unwrap();
    let ocsp_request =
        request_der(&sha1(issuer.subject().as_raw()), &sha1(&issuer.public_key().subject_public_key.data), &serial);
    let accounts: [Account; 2] = accounts.try_into().unwrap_or_else(|_| unreachable!());
    Targets {
        accounts,
        tokens,
        client,
        token,
        admin: [nodes[0].admin, nodes[1].admin],
        http: [nodes[0].http, nodes[1].http],
        ocsp_request,
    }
}
