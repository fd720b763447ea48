//! Expiry tracking at scale: N certificates seeded straight into
//! PostgreSQL (renewal lineages, no DER; see `storage::seed`), then
//!
//! - the renewal-window page: 100 issued certificates expiring in the next
//!   24 h, keyset-paged as `GET /api/v1/certificates` pages them;
//! - the expirations summary (`GET /api/v1/expirations`'s queries), which
//!   reads not_after index windows only;
//! - searches of the inventory, first page and the next ones: a DNS
//!   suffix, a SPIFFE prefix, a requester, Tessera's own certificates;
//! - `pg_total_relation_size` of certificates and their search names per
//!   million rows;
//! - the plans PostgreSQL picks for the summary queries and the searches.
//!
//!     DATABASE_URL=postgres://... TESSERA_BENCH_ROWS=10000000 cargo bench --bench expiry
//!
//! (The timings are the database's: `cargo test --bench expiry -- --bench`
//! measures the same without a release build.)
//!
//! `TESSERA_BENCH_ROWS` defaults to 1,000,000 (20,000 under `cargo test`,
//! where a smoke pass checks the figures add up). Needs PostgreSQL.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera::cli::start;
use tessera::clock::{SharedClock, SystemClock};
use tessera::config::LifecycleConfig;
use tessera::lifecycle::expiry_windows;
use tessera::storage::{CertificateFilter, CertificateKind, CertificateStatus, Db, DbOptions, SeedSpec};

#[tokio::main]
async fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    if std::env::var("DATABASE_URL").is_err() {
        println!("expiry benchmark: DATABASE_URL is not set; it measures PostgreSQL only, skipping");
        return;
    }
    let rows: i64 = std::env::var("TESSERA_BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(if measuring {
        1_000_000
    } else {
        20_000
    });
    let dir = tempfile::tempdir().unwrap();
    let (config, _) = common::dev_config(dir.path()).await;
    let clock: SharedClock = Arc::new(SystemClock);
    let running = start(config.clone(), clock.clone()).await.unwrap();
    let db = Db::connect(&DbOptions::new(config.database_url())).await.unwrap();
    let authority = db.catalog().list_authorities().await.unwrap().into_iter().find(|a| a.kind == "issuing").unwrap();

    let now = clock.unix();
    let spec = SeedSpec { authority_id: authority.id, rows, now };
    let seeding = Instant::now();
    db.seed_certificates(&spec, true).await.unwrap();
    let seeded = seeding.elapsed();
    let total = db.count_certificates().await.unwrap();
    let bytes = db.certificates_total_bytes().await.unwrap();
    println!(
        "seeded {rows} certificates ({} workloads) in {:.1} s ({:.0} rows/s, indexes rebuilt, vacuumed)",
        spec.workloads(),
        seeded.as_secs_f64(),
        rows as f64 / seeded.as_secs_f64()
    );
    println!(
        "size: {:.0} MB for {total} rows, {:.1} MB per 1M certificates (table, indexes, TOAST, search names; no DER)",
        bytes as f64 / 1e6,
        bytes as f64 / 1e6 / (total as f64 / 1e6)
    );

    // The renewal window: issued certificates expiring in the next 24 h,
    // 100 a page, following the cursor as a client would.
    let mut filter = CertificateFilter {
        status: Some(CertificateStatus::Issued),
        expires_after: Some(now),
        // The list bound is exclusive, the summary's inclusive.
        expires_before: Some(now + 86_400 + 1),
        ..Default::default()
    };
    let mut pages = Vec::new();
    let mut listed = 0;
    let mut exhausted = false;
    for _ in 0..if measuring { 200 } else { 20 } {
        let started = Instant::now();
        let page = db.admin().list_certificates(&filter, 101).await.unwrap();
        pages.push(started.elapsed());
        listed += page.len().min(100);
        if page.len() <= 100 {
            exhausted = true;
            break;
        }
        let last = &page[99];
        filter.after = Some((last.not_after, last.serial.clone()));
    }
    report("renewal-window page (100 rows, keyset)", &mut pages);

    let windows = expiry_windows(now, &LifecycleConfig::default());
    let mut summaries = Vec::new();
    let mut counts = Vec::new();
    for _ in 0..if measuring { 20 } else { 3 } {
        let started = Instant::now();
        counts = db.lifecycle().expiration_counts(&windows).await.unwrap();
        summaries.push(started.elapsed());
    }
    report("expirations summary (all windows, per authority)", &mut summaries);
    let line = counts.iter().find(|c| c.authority_id == authority.id && c.kind == CertificateKind::Workload).unwrap();
    println!(
        "  counts: 1h {} / 24h {} / 7d {}, overdue {}, expired without successor {}",
        line.expiring_1h, line.expiring_24h, line.expiring_7d, line.overdue, line.expired_without_successor
    );

    // Searches: the first page of 100 and up to four more, each a fresh
    // namespace or requester, so no run reads what the last one cached.
    let runs = if measuring { 20 } else { 3 };
    let searches: [Search; 5] = [
        ("DNS suffix (.ns-N.prod.internal, 1/97 of rows)", |n| CertificateFilter {
            dns_suffix: Some(format!("ns-{}.prod.internal", n % 97)),
            ..Default::default()
        }),
        ("SPIFFE prefix (spiffe://prod.internal/ns/ns-N/, 1/388 of rows)", |n| CertificateFilter {
            uri_prefix: Some(format!("spiffe://prod.internal/ns/ns-{}/", n % 97)),
            ..Default::default()
        }),
        ("requester (acme:N, 1/5000 of rows)", |n| CertificateFilter {
            requester: Some(format!("acme:{}", n % 5000)),
            ..Default::default()
        }),
        ("DNS suffix and issued (.ns-N.prod.internal)", |n| CertificateFilter {
            dns_suffix: Some(format!("ns-{}.prod.internal", n % 97)),
            status: Some(CertificateStatus::Issued),
            ..Default::default()
        }),
        ("kind internal", |_| CertificateFilter { kind: Some(CertificateKind::Internal), ..Default::default() }),
    ];
    for (what, filter_for) in searches {
        let mut first = Vec::new();
        let mut next = Vec::new();
        for run in 0..runs {
            let mut filter = filter_for(run * 7 + 11);
            for page in 0..5 {
                let started = Instant::now();
                let rows = db.admin().list_certificates(&filter, 101).await.unwrap();
                if page == 0 { &mut first } else { &mut next }.push(started.elapsed());
                if rows.len() <= 100 {
                    break;
                }
                filter.after = Some((rows[99].not_after, rows[99].serial.clone()));
            }
        }
        report(&format!("search, {what}: first page"), &mut first);
        if !next.is_empty() {
            report(&format!("search, {what}: next pages"), &mut next);
        }
        let plan = db.admin().explain_certificates(&filter_for(5), 101).await.unwrap();
        println!("plan, search {what}:\n  {}", plan.replace('\n', "\n  "));
    }

    // Through the API, with authentication and JSON.
    let token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap().trim().to_owned();
    let root = reqwest::Certificate::from_pem(&std::fs::read(dir.path().join("root.pem")).unwrap()).unwrap();
    let client = reqwest::Client::builder().add_root_certificate(root).build().unwrap();
    let url = format!("https://localhost:{}/api/v1/expirations", running.admin_addr.port());
    let mut api = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let response = client.get(&url).bearer_auth(&token).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.bytes().await.unwrap();
        api.push(started.elapsed());
    }
    report("GET /api/v1/expirations over HTTPS", &mut api);

    for (name, plan) in ["expiring counts", "overdue / expired counts", "overdue notices page"]
        .iter()
        .zip(db.explain_expiry_queries(&windows, false).await.unwrap())
    {
        println!("plan, {name}:\n  {}", plan.replace('\n', "\n  "));
    }

    running.shutdown().await;
    db.close().await;
    common::drop_database(&config.database_url()).await;
    if !measuring {
        // The seeded fleet: one workload in 100 overdue, and the counts
        // agree with what was listed.
        let workloads = spec.workloads();
        assert!(line.overdue >= workloads / 100 - 1 && line.overdue <= workloads / 100 + 1, "{line:?}");
        assert!(line.expired_without_successor > 0, "{line:?}");
        if exhausted {
            assert_eq!(listed as i64, line.expiring_24h, "{line:?}");
        }
    }
}

/// A search the bench times: its name, and its filter for the n-th run.
type Search = (&'static str, fn(i64) -> CertificateFilter);

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "{what}: {} runs, p50 {:.2} ms, p95 {:.2} ms, max {:.2} ms",
        samples.len(),
        ms(at(0.5)),
        ms(at(0.95)),
        ms(*samples.last().unwrap())
    );
}
