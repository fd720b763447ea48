//! Vault-compatible signing beside REST issuance, in one run: the same dev
//! Tessera, token, CSRs and concurrency drive `POST /v1/pki/sign/default`
//! (as cert-manager's Vault issuer sends it, with a static token) and
//! `POST /api/v1/certificates` in alternating rounds (REST, Vault, Vault,
//! REST, ...), so drift in the machine's load hits both alike. Both reach
//! the same pipeline, so Vault should sign within 10% of REST.
//!
//!     DATABASE_URL=postgres://... cargo bench --bench vault
//!
//! Knobs: `BENCH_CLIENTS` (32), `BENCH_SECONDS` per round (5),
//! `BENCH_ROUNDS` (4), `BENCH_WARMUP_SECONDS` (2). Under `cargo test` it
//! runs a short smoke pass that fails on any error.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::load::{Outcome, Route, csrs, drive, env_or};
use serde_json::json;
use tessera::cli::start;
use tessera::clock::{SharedClock, SystemClock};

#[tokio::main]
async fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let clients = env_or("BENCH_CLIENTS", if measuring { 32 } else { 4 }) as usize;
    let seconds = env_or("BENCH_SECONDS", if measuring { 5 } else { 1 });
    let rounds = env_or("BENCH_ROUNDS", if measuring { 4 } else { 2 });
    let warmup = env_or("BENCH_WARMUP_SECONDS", if measuring { 2 } else { 0 });
    let dir = tempfile::tempdir().unwrap();
    let (config, backend) = common::dev_config(dir.path()).await;
    let clock: SharedClock = Arc::new(SystemClock);
    let config_url = config.database_url();
    let running = start(config, clock).await.unwrap();
    let client = common::https_client(dir.path(), clients);
    let admin_url = format!("https://localhost:{}/api/v1", running.admin_addr.port());
    let admin_token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap().trim().to_owned();
    // One static token for both routes, as a cert-manager Issuer's tokenSecretRef holds it.
    let created: serde_json::Value = client
        .post(format!("{admin_url}/tokens"))
        .bearer_auth(&admin_token)
        .json(&json!({ "name": "bench", "scope": "issuer", "policies": ["default"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    let csrs = csrs(256);
    let rest = Route {
        url: format!("{admin_url}/certificates"),
        header: ("authorization", format!("Bearer {token}")),
        bodies: Arc::new(csrs.iter().map(|(_, csr)| json!({ "policy": "default", "csr": csr }).to_string()).collect()),
        success: 201,
    };
    // The fields cert-manager's Vault issuer sends, all strings.
    let vault = Route {
        url: format!("https://localhost:{}/v1/pki/sign/default", running.https_addr.port()),
        header: ("x-vault-token", token),
        bodies: Arc::new(
            csrs.iter()
                .map(|(name, csr)| {
                    json!({ "common_name": name, "alt_names": name, "ip_sans": "", "uri_sans": "",
                            "ttl": "24h0m0s", "csr": csr, "exclude_cn_from_sans": "true" })
                    .to_string()
                })
                .collect(),
        ),
        success: 200,
    };

    // Both routes warm up (connections, caches, the database) before any round counts.
    drive(&client, &rest, clients, warmup, 0).await;
    drive(&client, &vault, clients, warmup, 0).await;
    let mut totals: [Option<Outcome>; 2] = [None, None];
    for round in 0..rounds {
        // REST first in even rounds, Vault first in odd ones: ABBA.
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for which in order {
            let route = if which == 0 { &rest } else { &vault };
            let outcome = drive(&client, route, clients, 0, seconds).await;
            match &mut totals[which] {
                Some(total) => total.add(outcome),
                slot => *slot = Some(outcome),
            }
        }
    }
    let [Some(rest), Some(vault)] = totals else { panic!("BENCH_ROUNDS must be at least 1") };
    let setting = format!("{backend}, {clients} clients, {rounds} rounds of {seconds}s each");
    println!("issuance over REST ({setting}): {}", rest.summary());
    println!("issuance over Vault sign ({setting}): {}", vault.summary());
    println!("Vault/REST: {:.3}", vault.per_second() / rest.per_second());
    running.shutdown().await;
    common::drop_database(&config_url).await;
    let failed = rest.errors + vault.errors;
    assert!(
        measuring || (failed == 0 && !rest.latencies.is_empty() && !vault.latencies.is_empty()),
        "smoke pass failed: {failed} errors"
    );
}
