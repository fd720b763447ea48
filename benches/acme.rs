//! Full ACME flows per second with an existing account: newOrder → http-01
//! (validated on loopback) → finalize → certificate download, driven by
//! instant-acme from many concurrent tasks. Tessera runs in-process on
//! PostgreSQL from `DATABASE_URL` (SQLite when unset); Pebble (Debian's
//! `pebble`, `PEBBLE_VA_NOSLEEP=1`, no nonce rejection, no authorization
//! reuse) is driven by the same load loop in the same run, and the ratio is
//! printed. On PostgreSQL the database first gets another account's history
//! (50 000 orders and certificates), so the run measures a CA that has been
//! running a while.
//!
//!     DATABASE_URL=postgres://... cargo bench --bench acme
//!
//! Knobs: `BENCH_CLIENTS` (64), `BENCH_SECONDS` (10), `BENCH_WARMUP_SECONDS`
//! (2), `BENCH_PEBBLE=0` to skip Pebble, `BENCH_PEBBLE_LOG=FILE` to keep
//! its output. Under `cargo test` it runs a short smoke pass against Tessera
//! only, failing on any error.
#![allow(clippy::unwrap_used)]

mod common;

/// The allocator the `tessera` binary runs with.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::acme::{Tokens, eab_key, flow, http01_responder, new_account};
use instant_acme::Account;
use tessera::cli::start;
use tessera::clock::{SharedClock, SystemClock};
use tessera::config::{AcmeOverrides, Config, Overrides};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let measuring = std::env::args().any(|a| a == "--bench");
    let clients = env_or("BENCH_CLIENTS", if measuring { 64 } else { 4 }) as usize;
    let seconds = env_or("BENCH_SECONDS", if measuring { 10 } else { 1 });
    let warmup = env_or("BENCH_WARMUP_SECONDS", if measuring { 2 } else { 0 });
    let (tokens, http_port) = http01_responder().await;

    let dir = tempfile::tempdir().unwrap();
    let database_url = match std::env::var("DATABASE_URL") {
        Ok(server) => Some(common::fresh_database(&server).await),
        Err(_) => None,
    };
    let backend = if database_url.is_some() { "postgres" } else { "sqlite" };
    let any = Some("127.0.0.1:0".parse().unwrap());
    let overrides = Overrides {
        https_addr: any,
        http_addr: any,
        admin_addr: any,
        metrics_addr: None,
        data_dir: Some(dir.path().to_path_buf()),
        database_url,
        run_migrations: None,
        log_format: None,
        acme: AcmeOverrides { http01_port: Some(http_port), ..Default::default() },
    };
    let mut config = Config::load(None, &overrides).unwrap();
    config.acme.directories[0].orders_per_window = u32::MAX;
    let clock: SharedClock = Arc::new(SystemClock);
    let config_url = config.database_url();
    let running = start(config, clock).await.unwrap();
    if backend == "postgres" {
        seed_history(&config_url).await;
    }
    let root = dir.path().join("root.pem");
    let eab = eab_key(&root, &dir.path().join("admin-token"), running.admin_addr.port()).await;
    let directory = format!("https://localhost:{}/acme/default/directory", running.https_addr.port());
    let account = new_account(&root, &directory, Some(&eab)).await;
    let tessera = load(&account, &tokens, clients, seconds, warmup).await;
    println!("{}", tessera.report(&format!("Tessera ({backend})"), clients, seconds));
    running.shutdown().await;
    common::drop_database(&config_url).await;
    assert!(measuring || (tessera.errors == 0 && tessera.flows > 0), "smoke pass failed: {} errors", tessera.errors);

    if measuring && env_or("BENCH_PEBBLE", 1) == 1 {
        match pebble_pass(http_port, &tokens, clients, seconds, warmup).await {
            Some(result) if result.flows > 0 => {
                println!("{}", result.report("Pebble", clients, seconds));
                println!("Tessera/Pebble: {:.2}x", tessera.flows as f64 / result.flows as f64);
            }
            Some(result) => {
                println!("{}", result.report("Pebble", clients, seconds));
                println!("Pebble completed no flow in the window; no ratio");
            }
            None => println!("Pebble is not installed (Debian package `pebble`); skipped"),
        }
    }
}

/// The load against a fresh Pebble, run once more if every client stalled:
/// the load tool's one HTTP/2 connection (hyper's client) now and then
/// stops moving against Go's HTTP/2 server (hyperium/hyper#3338 describes
/// the same pairing), which never happens against Tessera.
async fn pebble_pass(http_port: u16, tokens: &Tokens, clients: usize, seconds: u64, warmup: u64) -> Option<LoadResult> {
    let mut result = None;
    for attempt in 1..=2 {
        let pebble = Pebble::start(http_port).await?;
        let account = new_account(&pebble.ca, &pebble.directory, None).await;
        let pass = load(&account, tokens, clients, seconds, warmup).await;
        let stalled = pass.flows == 0 && pass.errors > 0;
        result = Some(pass);
        if !stalled {
            break;
        }
        if attempt == 1 {
            println!("Pebble: every client stalled; once more with a fresh Pebble");
        }
    }
    result
}

/// Orders, authorizations, challenges and certificates of another account,
/// as a CA that has been running a while holds them, with fresh statistics.
/// On the empty tables of a new database PostgreSQL plans full scans and
/// hash joins, which are cheap there and grow with every flow of the run;
/// that would measure the first seconds of a new CA, not a running one.
async fn seed_history(url: &str) {
    const ROWS: u32 = 50_000;
    let db = tessera::storage::Db::connect(&tessera::storage::DbOptions::new(url)).await.unwrap();
    let statements = [
        "INSERT INTO acme_accounts (directory, thumbprint, jwk, status, contact, policy, created_at) \
         VALUES ('default', 'bench-history', '{}', 'valid', '', 'default', 0)"
            .to_owned(),
        format!(
            "INSERT INTO acme_orders (account_id, status, identifiers, expires, certificate_serial, created_at) \
             SELECT (SELECT id FROM acme_accounts WHERE thumbprint = 'bench-history'), 'valid', \
             'dns:h' || g || '.test', 0, int8send(g), 0 FROM generate_series(1, {ROWS}) g"
        ),
        "INSERT INTO acme_authorizations (order_id, account_id, identifier, wildcard, status, expires) \
         SELECT id, account_id, identifiers, false, 'valid', 0 FROM acme_orders"
            .to_owned(),
        "INSERT INTO acme_challenges (authz_id, account_id, kind, token, status, validated) \
         SELECT a.id, a.account_id, k, 'token', 'valid', 0 FROM acme_authorizations a, \
         unnest(ARRAY['http-01', 'dns-01', 'tls-alpn-01']) k"
            .to_owned(),
        "INSERT INTO certificates (serial, authority_id, not_before, not_after, created_at, status, sans, requester) \
         SELECT certificate_serial, (SELECT max(id) FROM authorities), 0, 0, 0, 1, ' ' || identifiers || ' ', \
         'acme:account:' || account_id FROM acme_orders"
            .to_owned(),
        "VACUUM ANALYZE".to_owned(),
    ];
    for sql in &statements {
        db.execute_raw(sql).await.unwrap();
    }
    db.close().await;
}

struct LoadResult {
    flows: u64,
    errors: u64,
    latencies: Vec<Duration>,
    first_error: Option<String>,
}

impl LoadResult {
    fn report(&self, name: &str, clients: usize, seconds: u64) -> String {
        let mut l = self.latencies.clone();
        l.sort();
        let pct =
            |p: f64| l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1))).copied().unwrap_or_default();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        format!(
            "ACME flows ({name}, {clients} clients, {seconds}s): {:.1} flows/s, p50 {:.0} ms, p90 {:.0} ms, p99 {:.0} ms, errors {}{}",
            self.flows as f64 / seconds as f64,
            ms(pct(0.5)),
            ms(pct(0.9)),
            ms(pct(0.99)),
            self.errors,
            self.first_error.as_ref().map(|e| format!(" (first: {e})")).unwrap_or_default()
        )
    }
}

async fn load(account: &Account, tokens: &Tokens, clients: usize, seconds: u64, warmup: u64) -> LoadResult {
    let started = Instant::now();
    let measure_from = started + Duration::from_secs(warmup);
    let stop_at = measure_from + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (account, tokens) = (account.clone(), tokens.clone());
        tasks.push(tokio::spawn(async move {
            let mut result = LoadResult { flows: 0, errors: 0, latencies: Vec::new(), first_error: None };
            while Instant::now() < stop_at {
                let sent = Instant::now();
                // A server that stops answering fails the flow instead of hanging the run.
                let outcome = tokio::time::timeout(Duration::from_secs(30), flow(&account, &tokens))
                    .await
                    .unwrap_or_else(|_| Err("no answer within 30 s".into()));
                match outcome {
                    Ok(()) if sent >= measure_from && Instant::now() <= stop_at => {
                        result.flows += 1;
                        result.latencies.push(sent.elapsed());
                    }
                    Ok(()) => {}
                    // Counted whenever it happens, warm-up included: a
                    // server that hangs shows as errors, not as an idle run.
                    Err(e) => {
                        result.errors += 1;
                        result.first_error.get_or_insert(e);
                    }
                }
            }
            result
        }));
    }
    let mut total = LoadResult { flows: 0, errors: 0, latencies: Vec::new(), first_error: None };
    for task in tasks {
        let r = task.await.unwrap();
        total.flows += r.flows;
        total.errors += r.errors;
        total.latencies.extend(r.latencies);
        if total.first_error.is_none() {
            total.first_error = r.first_error;
        }
    }
    total
}

/// Where Pebble's output goes: the file `BENCH_PEBBLE_LOG` names, if any.
fn pebble_log() -> std::process::Stdio {
    let file = std::env::var("BENCH_PEBBLE_LOG")
        .ok()
        .and_then(|path| std::fs::OpenOptions::new().create(true).append(true).open(path).ok());
    file.map_or_else(std::process::Stdio::null, std::process::Stdio::from)
}

/// A Pebble on a free loopback port with a throwaway TLS certificate.
struct Pebble {
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
    ca: std::path::PathBuf,
    directory: String,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl Pebble {
    async fn start(http_port: u16) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, ca_cert.pem()).unwrap();
        std::fs::write(dir.path().join("cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();
        let port = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
        let mgmt = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port();
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{port}"),
            "managementListenAddress": format!("127.0.0.1:{mgmt}"),
            "certificate": dir.path().join("cert.pem"),
            "privateKey": dir.path().join("key.pem"),
            "httpPort": http_port,
            "tlsPort": 5001,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let child = tokio::process::Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(pebble_log())
            .stderr(pebble_log())
            .kill_on_drop(true)
            .spawn()
            .ok()?;
        let directory = format!("https://127.0.0.1:{port}/dir");
        for _ in 0..100 {
            if tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await.is_ok() {
                return Some(Self { child, _dir: dir, ca, directory });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }
}
