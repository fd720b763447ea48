//! A CRL for one authority with a million revoked certificates: the time
//! to read the entries, encode, sign and store the CRL, and the memory it
//! takes at its peak.
//!
//!     DATABASE_URL=postgres://... cargo bench --bench crl   # SQLite without it
//!
//! `BENCH_REVOKED` (1000000) sets the size. Under `cargo test` a small
//! smoke pass checks that the CRL lists every entry.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Instant;

use tessera::clock::{SharedClock, SystemClock};
use tessera::config::{Config, Overrides};
use tessera::issuance::CertificateIssuer;
use tessera::revocation::Revocation;
use tessera::secrets::Sealer;
use tessera::setup::{bootstrap_dev, load_signing_authority};
use tessera::storage::{Db, DbOptions};

/// Peak resident memory of this process so far, in MiB (Linux VmHWM).
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn current_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main]
async fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    if std::env::var("BENCH_DEBUG").is_ok() {
        tracing_subscriber::fmt().with_env_filter("tessera=debug").init();
    }
    let revoked: i64 = std::env::var("BENCH_REVOKED").ok().and_then(|v| v.parse().ok()).unwrap_or(if measuring {
        1_000_000
    } else {
        1_000
    });
    let dir = tempfile::tempdir().unwrap();
    let postgres = std::env::var("DATABASE_URL").ok();
    let database_url = match &postgres {
        Some(server) => Some(common::fresh_database(server).await),
        None => None,
    };
    let overrides = Overrides { data_dir: Some(dir.path().to_path_buf()), database_url, ..Default::default() };
    let config = Config::load(None, &overrides).unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let db = Db::connect(&DbOptions::new(config.database_url())).await.unwrap();
    db.migrate().await.unwrap();
    bootstrap_dev(&config, &db, &clock).await.unwrap();
    let sealer =
        Sealer::load(&config.kek_sources().unwrap(), &config.keys.awskms, db.secrets(), clock.clone()).await.unwrap();
    let authority = load_signing_authority(&config, &sealer, &db.catalog()).await.unwrap();
    let id = authority.id;

    // A million revoked leaves, written by the database itself.
    let started = Instant::now();
    let rows = if postgres.is_some() {
        format!(
            "INSERT INTO certificates (serial, authority_id, not_before, not_after, created_at, revoked_at, status, \
             revocation_reason, subject, sans, requester) \
             SELECT decode('01' || lpad(to_hex(g), 30, '0'), 'hex'), {id}, 0, 4102444800, 0, 1767225600, 3, 1, '', '', 'bench' \
             FROM generate_series(1, {revoked}) AS g"
        )
    } else {
        format!(
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < {revoked}) \
             INSERT INTO certificates (serial, authority_id, not_before, not_after, created_at, revoked_at, status, \
             revocation_reason, subject, sans, requester) \
             SELECT unhex('01' || printf('%030x', n)), {id}, 0, 4102444800, 0, 1767225600, 3, 1, '', '', 'bench' FROM g"
        )
    };
    db.execute_raw(&rows).await.unwrap();
    println!("inserted {revoked} revoked certificates in {:.1} s", started.elapsed().as_secs_f64());

    let issuer = CertificateIssuer::new(db.ledger(), clock.clone(), authority);
    let metrics = tessera::metrics::Metrics::default();
    let revocation =
        Revocation::load(&config, &db.revocation(), &db.leases(), &clock, &issuer, &sealer, &metrics).await.unwrap();
    let baseline = current_rss_mib();
    let started = Instant::now();
    let published = revocation.publish_crls(Some(id)).await.unwrap();
    let elapsed = started.elapsed();
    let crl = &published[0];
    let backend = if postgres.is_some() { "postgres" } else { "sqlite" };
    println!(
        "CRL of {} entries ({backend}): {:.2} s end to end (read, encode, sign, store), {:.1} MB DER, \
         peak RSS {:.0} MiB ({:.0} MiB above the {:.0} MiB before)",
        crl.entries,
        elapsed.as_secs_f64(),
        crl.der.len() as f64 / 1e6,
        peak_rss_mib(),
        peak_rss_mib() - baseline,
        baseline
    );
    assert_eq!(crl.entries, revoked, "the CRL does not list every revoked certificate");
    db.close().await;
    common::drop_database(&config.database_url()).await;
}
