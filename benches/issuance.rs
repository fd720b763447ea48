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

use common::load::{Route, csrs, drive, env_or};
use tessera::cli::start;
use tessera::clock::{SharedClock, SystemClock};

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
    let token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap().trim().to_owned();
    let client = common::https_client(dir.path(), clients);
    let bodies = csrs(256).into_iter().map(|(_, csr)| serde_json::json!({"policy": "default", "csr": csr}).to_string());
    let route = Route {
        url: format!("https://localhost:{}/api/v1/certificates", running.admin_addr.port()),
        header: ("authorization", format!("Bearer {token}")),
        bodies: Arc::new(bodies.collect()),
        success: 201,
    };
    let outcome = drive(&client, &route, clients, warmup, seconds).await;
    println!("issuance over REST ({backend}, {clients} clients, {seconds}s): {}", outcome.summary());
    running.shutdown().await;
    common::drop_database(&config_url).await;
    assert!(
        measuring || (outcome.errors == 0 && !outcome.latencies.is_empty()),
        "smoke pass failed: {} errors",
        outcome.errors
    );
}
