//! Signatures per second for each key custodian at concurrency 1 and 16:
//! software (`file:`), SoftHSM2 (`pkcs11:`) and the KMS emulator
//! (`awskms:`), each on a P-256 key made for the run.
//!
//!     source hsm-sim/setup.sh   # or the exports it prints
//!     cargo bench --bench signers
//!
//! A custodian whose environment is missing is skipped with a note.
//! `BENCH_SECONDS` (5) sets the time per measurement. Under `cargo test` it
//! runs a short smoke pass that fails on any error.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera::config::{Config, KeysConfig, Overrides};
use tessera::keys::{KeyUri, Signer, SigningAlgorithm, open_or_create_signer};

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn keys_config(dir: &std::path::Path) -> KeysConfig {
    let mut toml = String::new();
    if let (Some(module), Some(pin_file)) = (env("TESSERA_TEST_PKCS11_MODULE"), env("TESSERA_TEST_PKCS11_PIN_FILE")) {
        toml.push_str(&format!("[keys.pkcs11]\nmodule = {module:?}\npin_file = {pin_file:?}\nsessions = 16\n"));
    }
    if let Some(endpoint) = env("TESSERA_TEST_KMS_ENDPOINT") {
        toml.push_str(&format!("[keys.awskms]\nregion = \"us-east-1\"\nendpoint = {endpoint:?}\n"));
    }
    let path = dir.join("bench.toml");
    std::fs::write(&path, toml).unwrap();
    Config::load(Some(&path), &Overrides::default()).unwrap().keys
}

async fn measure(signer: Arc<dyn Signer>, concurrency: usize, duration: Duration) -> (f64, Duration, Duration) {
    let stop_at = Instant::now() + duration;
    let tasks: Vec<_> = (0..concurrency)
        .map(|worker| {
            let signer = signer.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = 0u64;
                while Instant::now() < stop_at {
                    let message = format!("tbs {worker} {i}");
                    i += 1;
                    let started = Instant::now();
                    signer.sign(message.as_bytes()).await.unwrap();
                    latencies.push(started.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    latencies.sort();
    let at = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    (latencies.len() as f64 / duration.as_secs_f64(), at(0.5), at(0.99))
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let seconds = env("BENCH_SECONDS").and_then(|s| s.parse().ok()).unwrap_or(if measuring { 5.0 } else { 0.2 });
    let duration = Duration::from_secs_f64(seconds);
    let dir = tempfile::tempdir().unwrap();
    let keys = keys_config(dir.path());
    let suffix = hex::encode(rand::random::<[u8; 4]>());

    let mut custodians = vec![("software", Some(KeyUri::File(dir.path().join("bench.key.pem"))))];
    let token = env("TESSERA_TEST_PKCS11_TOKEN").filter(|_| keys.pkcs11.module.is_some());
    custodians.push(("softhsm2", token.map(|t| format!("pkcs11:token={t};object=bench-{suffix}").parse().unwrap())));
    let kms = keys.awskms.endpoint.as_ref().map(|_| format!("awskms:alias/bench-{suffix}").parse().unwrap());
    custodians.push(("kms-emulator", kms));

    for (name, uri) in custodians {
        let Some(uri) = uri else {
            println!("{name:>12}: skipped (source hsm-sim/setup.sh to measure it)");
            continue;
        };
        let signer = open_or_create_signer(&uri, SigningAlgorithm::EcdsaP256Sha256, &keys).await.unwrap();
        signer.sign(b"warm-up").await.unwrap();
        for concurrency in [1, 16] {
            let (rate, p50, p99) = measure(signer.clone(), concurrency, duration).await;
            println!(
                "{name:>12}, concurrency {concurrency:>2}: {rate:>8.0} signatures/s, p50 {:.2} ms, p99 {:.2} ms",
                p50.as_secs_f64() * 1e3,
                p99.as_secs_f64() * 1e3
            );
        }
    }
}
