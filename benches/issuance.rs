//! REST issuance throughput and latency: a real Tessera (dev mode) on
//! loopback, PostgreSQL from `DATABASE_URL` (SQLite when unset), and
//! concurrent HTTPS clients signing CSRs through `POST /api/v1/certificates`.
//!
//!     DATABASE_URL=postgres://... cargo bench --bench issuance
//!
//! Knobs: `BENCH_CLIENTS` (32), `BENCH_SECONDS` (10), `BENCH_WARMUP_SECONDS` (2).
//! Under `cargo test` (no `--bench` argument) it runs a one-second smoke pass
//! that fails on any error, so the harness itself stays working.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera::cli::start;
use tessera::clock::{SharedClock, SystemClock};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let clients = env_or("BENCH_CLIENTS", if measuring { 32 } else { 4 }) as usize;
    let seconds = env_or("BENCH_SECONDS", if measuring { 10 } else { 1 });
    let warmup = env_or("BENCH_WARMUP_SECONDS", if measuring { 2 } else { 0 });
    let dir = tempfile::tempdir().unwrap();
    let (config, backend) = common::dev_config(dir.path()).await;
    let clock: SharedClock = Arc::new(SystemClock);
    let config_url = config.database_url();
    let running = start(config, clock).await.unwrap();
    let url = format!("https://localhost:{}/api/v1/certificates", running.admin_addr.port());
    let token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap().trim().to_owned();
    let root = reqwest::Certificate::from_pem(&std::fs::read(dir.path().join("root.pem")).unwrap()).unwrap();
    let client = reqwest::Client::builder().add_root_certificate(root).pool_max_idle_per_host(clients).build().unwrap();

    // CSRs are made up front so the clients spend their time on requests.
    let bodies: Arc<Vec<String>> = Arc::new(
        (0..256)
            .map(|i| {
                let key = rcgen::KeyPair::generate().unwrap();
                let params = rcgen::CertificateParams::new(vec![format!("svc-{i}.bench.test")]).unwrap();
                let csr = params.serialize_request(&key).unwrap().pem().unwrap();
                serde_json::json!({"policy": "default", "csr": csr}).to_string()
            })
            .collect(),
    );

    let started = Instant::now();
    let measure_from = started + Duration::from_secs(warmup);
    let stop_at = measure_from + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for worker in 0..clients {
        let (client, url, token, bodies) = (client.clone(), url.clone(), token.clone(), bodies.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            let mut i = worker;
            while Instant::now() < stop_at {
                let body = bodies[i % bodies.len()].clone();
                i += clients;
                let sent = Instant::now();
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await;
                let ok = match response {
                    Ok(r) => r.status() == 201 && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if sent >= measure_from {
                    if ok {
                        latencies.push(sent.elapsed());
                    } else {
                        errors += 1;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (l, e) = task.await.unwrap();
        latencies.extend(l);
        errors += e;
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "issuance over REST ({backend}, {clients} clients, {seconds}s): {:.0} certs/s, p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms, errors {errors}",
        latencies.len() as f64 / seconds as f64,
        ms(pct(0.50)),
        ms(pct(0.90)),
        ms(pct(0.99)),
        ms(*latencies.last().unwrap()),
    );
    running.shutdown().await;
    common::drop_database(&config_url).await;
    assert!(measuring || (errors == 0 && !latencies.is_empty()), "smoke pass failed: {errors} errors");
}
