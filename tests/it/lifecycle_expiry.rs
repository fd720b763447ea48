//! Expiry tracking end to end, on SQLite and PostgreSQL: the expirations
//! summary, overdue certificates in the API, the metrics and signed
//! webhooks (retried, every attempt recorded), successors clearing them,
//! the jobs API, and two nodes on one database sharing the jobs.
use std::time::{Duration, Instant};

use crate::common::acme::{AccountKey, AcmeClient, Responders, ari_cert_id, b64};
use crate::common::webhook::{Receiver, verify_signature, with_webhook};
use crate::common::{Backend, TestCa, csr_for};
use serde_json::{Value, json};
use tessera::clock::Clock;
use tessera::config::{AcmeOverrides, Config, LifecycleConfig};
use tessera::lifecycle::expiry_windows;
use tessera::storage::SeedSpec;

/// Signs a CSR for `names` with a lifetime; panics unless 201.
async fn issue(ca: &TestCa, names: &[&str], ttl: &str, policy: &str) -> Value {
    let body = json!({"policy": policy, "csr": csr_for(names), "ttl": ttl});
    let (status, issued) = ca.post("/api/v1/certificates", Some(&ca.admin_token), &body).await;
    assert_eq!(status, 201, "{issued}");
    issued
}

/// The issuing authority's line of `GET /api/v1/expirations`.
async fn issuing_line(ca: &TestCa) -> Value {
    let (status, body) = ca.get("/api/v1/expirations", Some(&ca.admin_token)).await;
    assert_eq!(status, 200, "{body}");
    body["authorities"].as_array().unwrap().iter().find(|a| a["name"] == "issuing").unwrap().clone()
}

async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

on_both_backends!(expirations_summary_counts_what_was_issued, |ca| {
    let token = Some(ca.admin_token.as_str());
    let long = json!({"name": "long", "dns": ["*.test"], "max_ttl": "10d"});
    let (status, body) = ca.post("/api/v1/policies", token, &long).await;
    assert_eq!(status, 201, "{body}");
    let before = issuing_line(ca).await;

    let soon = issue(ca, &["soon.test"], "30m", "default").await;
    issue(ca, &["soon2.test"], "45m", "default").await;
    issue(ca, &["today.test"], "5h", "default").await;
    issue(ca, &["week.test"], "3d", "long").await;
    issue(ca, &["later.test"], "9d", "long").await;

    let line = issuing_line(ca).await;
    let grew = |window: &str| line["expiring"][window].as_i64().unwrap() - before["expiring"][window].as_i64().unwrap();
    assert_eq!((grew("1h"), grew("24h"), grew("7d")), (2, 3, 4), "{line}");
    assert_eq!(line["overdue"], 0, "{line}");
    assert_eq!(line["expired_without_successor"], 0, "{line}");
    assert_eq!(line["nearing_expiry"], false);

    // A revoked certificate no longer counts.
    let serial = soon["serial"].as_str().unwrap();
    let (status, _) = ca.post(&format!("/api/v1/certificates/{serial}/revoke"), token, &json!({})).await;
    assert_eq!(status, 200);
    let line = issuing_line(ca).await;
    assert_eq!(line["expiring"]["1h"].as_i64().unwrap() - before["expiring"]["1h"].as_i64().unwrap(), 1);

    // The same figures are gauges.
    let gauge = ca.metric(r#"tessera_certificates_expiring{authority="issuing",window="24h"}"#).await;
    assert_eq!(gauge, Some(line["expiring"]["24h"].as_f64().unwrap()));

    // The new routes answer nobody without a valid token.
    for path in ["/api/v1/expirations", "/api/v1/jobs"] {
        assert_eq!(ca.get(path, None).await.0, 401, "{path}");
        assert_eq!(ca.get(path, Some("not-a-token")).await.0, 401, "{path}");
    }
});

on_both_backends!(expiry_queries_read_only_index_windows, |ca| {
    let now = ca.clock.now().unix_timestamp();
    if ca.db.backend() == "postgres" {
        // Enough renewal lineages that the planner weighs real costs (on a
        // table of a few rows a sequential scan is rightly cheapest).
        let issuing =
            ca.db.catalog().list_authorities().await.unwrap().into_iter().find(|a| a.kind == "issuing").unwrap();
        let spec = SeedSpec { authority_id: issuing.id, rows: 20_000, now };
        ca.db.seed_certificates(&spec, false).await.unwrap();
    } else {
        issue(ca, &["plan.test"], "1h", "default").await;
    }
    let windows = expiry_windows(now, &LifecycleConfig::default());
    let plans = ca.db.explain_expiry_queries(&windows, false).await.unwrap();
    // The counts of what expires read the partial index of issued
    // certificates; the unreplaced ones that of issued, unsuperseded ones.
    let indexes = ["certificates_issued_expiry", "certificates_heads_expiry", "certificates_heads_expiry"];
    for (plan, index) in plans.iter().zip(indexes) {
        assert!(!plan.contains("Seq Scan on certificates"), "{plan}");
        assert!(!plan.lines().any(|l| l.trim() == "SCAN certificates" || l.trim() == "SCAN c"), "{plan}");
        if ca.db.backend() == "postgres" {
            // Either index reads only the window; which one is cheaper is
            // the planner's call (it depends on statistics and vacuum state).
            assert!(plan.contains(index) || plan.contains("certificates_not_after"), "expected {index}: {plan}");
            assert!(plan.contains("Index Cond: ((not_after >"), "a not_after window: {plan}");
        } else {
            assert!(plan.contains("USING") && plan.contains("INDEX"), "{plan}");
        }
    }
    // Whether PostgreSQL reads the index alone or also the heap depends on
    // its visibility map (how recently the table was vacuumed), so only the
    // window read is asserted above, not an index-only scan.
});

async fn overdue_is_reported_signed_and_cleared_by_a_successor(backend: Backend) {
    let hook = Receiver::start(1).await;
    let secrets = tempfile::tempdir().unwrap();
    let secret_path = secrets.path().join("hook-secret");
    std::fs::write(&secret_path, "s3cret-for-tests\n").unwrap();
    let Some(ca) =
        TestCa::start_acme_with(backend, AcmeOverrides::default(), |c| with_webhook(c, &hook.url, secret_path)).await
    else {
        return;
    };
    // Lifetime 2 min + 1 min back-dating: 80% is reached 84 s from now.
    let first = issue(&ca, &["renew.test"], "2m", "default").await;
    let first_serial = first["serial"].as_str().unwrap().to_owned();
    assert_eq!(issuing_line(&ca).await["overdue"], 0);
    let overdue_series = r#"tessera_certificates_overdue{authority="issuing"}"#;
    assert_eq!(ca.metric(overdue_series).await, Some(0.0));

    ca.clock.advance(time::Duration::seconds(90));
    assert_eq!(issuing_line(&ca).await["overdue"], 1);
    assert_eq!(ca.metric(overdue_series).await, Some(1.0));

    // The scan queues a notice; the receiver refuses the first attempt
    // and takes the retry.
    wait_until("two webhook attempts", Duration::from_secs(30), || async { hook.seen.lock().unwrap().len() >= 2 })
        .await;
    let requests = hook.seen.lock().unwrap().clone();
    for (headers, body) in &requests {
        verify_signature(headers, body, b"s3cret-for-tests");
        let event: Value = serde_json::from_str(body).unwrap();
        assert_eq!(event["type"], "certificate.overdue");
        assert_eq!(event["data"]["serial"], first_serial.as_str());
        assert_eq!(event["data"]["identifiers"][0]["value"], "renew.test");
        assert_eq!(headers["tessera-event"], "certificate.overdue");
    }
    assert_eq!(requests[0].1, requests[1].1, "a retry sends the same event");
    // The sender records an attempt after the receiver has answered it.
    wait_until("two recorded attempts", Duration::from_secs(10), || async {
        ca.db.webhook_attempts().await.unwrap().len() >= 2
    })
    .await;
    let attempts = ca.db.webhook_attempts().await.unwrap();
    let codes: Vec<_> = attempts.iter().map(|a| (a.attempt, a.status_code)).collect();
    assert_eq!(codes, [(1, Some(500)), (2, Some(200))], "{attempts:?}");
    assert!(attempts[1].at > attempts[0].at, "the retry waited: {attempts:?}");

    // A successor for the same identifiers and requester clears it.
    let second = issue(&ca, &["renew.test"], "2m", "default").await;
    assert_eq!(issuing_line(&ca).await["overdue"], 0);
    assert_eq!(ca.metric(overdue_series).await, Some(0.0));
    // Notices are sent once: later scans add nothing for the first one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(hook.seen.lock().unwrap().len(), 2);

    // Past every expiry: the replaced certificate is not "expired without
    // successor"; the successor and a certificate never renewed are.
    let lonely = issue(&ca, &["lonely.test"], "2m", "default").await;
    ca.clock.advance(time::Duration::seconds(200));
    let line = issuing_line(&ca).await;
    assert_eq!((line["overdue"].as_i64(), line["expired_without_successor"].as_i64()), (Some(0), Some(2)), "{line}");
    let series = r#"tessera_certificates_expired_without_successor{authority="issuing"}"#;
    assert_eq!(ca.metric(series).await, Some(2.0));
    wait_until("the expiry notices", Duration::from_secs(30), || async { hook.seen.lock().unwrap().len() >= 4 }).await;
    let mut expired: Vec<String> = hook.seen.lock().unwrap()[2..]
        .iter()
        .map(|(headers, body)| {
            verify_signature(headers, body, b"s3cret-for-tests");
            let event: Value = serde_json::from_str(body).unwrap();
            assert_eq!(event["type"], "certificate.expired_without_successor");
            event["data"]["serial"].as_str().unwrap().to_owned()
        })
        .collect();
    expired.sort();
    let mut expected =
        vec![second["serial"].as_str().unwrap().to_owned(), lonely["serial"].as_str().unwrap().to_owned()];
    expected.sort();
    assert_eq!(expired, expected);
    ca.stop().await;
}
on_both_backends!(overdue_is_reported_signed_and_cleared_by_a_successor);

/// An ACME order whose `replaces` names a certificate for other names: the
/// link alone makes the old certificate no longer overdue.
async fn an_acme_replacement_clears_overdue(backend: Backend) {
    let responders = Responders::start().await;
    let Some(ca) = TestCa::start_acme(backend, responders.overrides()).await else { return };
    let (kid, hmac) = ca.eab_key(false).await;
    let mut client = AcmeClient::new(&ca, AccountKey::es256()).await;
    client.register(&kid, &hmac).await;
    let soon = rfc3339(ca.clock.now() + time::Duration::minutes(2));
    let first = json!({"identifiers": [{"type": "dns", "value": "first.replace.test"}], "notAfter": soon});
    let der = finalize(&client, &responders, &first, &["first.replace.test"]).await;

    ca.clock.advance(time::Duration::seconds(90));
    assert_eq!(issuing_line(&ca).await["overdue"], 1);
    let second =
        json!({"identifiers": [{"type": "dns", "value": "second.replace.test"}], "replaces": ari_cert_id(&der)});
    finalize(&client, &responders, &second, &["second.replace.test"]).await;
    assert_eq!(issuing_line(&ca).await["overdue"], 0);
    ca.stop().await;
}
on_both_backends!(an_acme_replacement_clears_overdue);

/// Orders, validates and finalizes; returns the leaf's DER.
async fn finalize(client: &AcmeClient, responders: &Responders, order: &Value, names: &[&str]) -> Vec<u8> {
    let (_, ready) = client.ready_order_with(responders, order).await;
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let csr = b64(params.serialize_request(&key).unwrap().der());
    let done = client.post(ready["finalize"].as_str().unwrap(), Some(&json!({"csr": csr}))).await;
    assert_eq!(done.body["status"], "valid", "{done:?}");
    let chain = client.post(done.body["certificate"].as_str().unwrap(), None).await;
    pem::parse_many(&chain.text).unwrap()[0].contents().to_vec()
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339).unwrap()
}

/// (holder, last_run, runs) of a job, read from the database.
async fn job_state(ca: &TestCa, name: &str) -> Option<(String, i64, i64)> {
    let jobs = ca.db.admin().jobs().await.unwrap();
    jobs.into_iter().find(|j| j.name == name).map(|j| (j.holder, j.last_run.unwrap_or(0), j.runs))
}

/// On PostgreSQL only: nodes share a database only there (SQLite is one
/// node's embedded store, where every other test here runs the same lease
/// statements).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_each_job_run_once_per_interval() {
    let Some(url) = crate::common::fresh_postgres_url().await else { return };
    let fast = |c: &mut Config| c.lifecycle.scan_interval = "2s".parse().unwrap();
    let first_dir = tempfile::tempdir().unwrap();
    let first_keys = first_dir.path().join("keys");
    let first_kek = first_dir.path().join("secrets.kek");
    let first = TestCa::start_in_with(first_dir, Some(url.clone()), AcmeOverrides::default(), fast).await;
    let jobs = ["expiry-scan", "webhook-delivery"];
    for job in jobs {
        wait_until(job, Duration::from_secs(20), || async { job_state(&first, job).await.is_some() }).await;
    }

    // The second node shares the database, the CA keys and the key that
    // seals the database's secrets, as every node of a cluster does.
    let second_dir = tempfile::tempdir().unwrap();
    std::fs::copy(&first_kek, second_dir.path().join("secrets.kek")).unwrap();
    std::fs::create_dir_all(second_dir.path().join("keys")).unwrap();
    for entry in std::fs::read_dir(&first_keys).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), second_dir.path().join("keys").join(entry.file_name())).unwrap();
    }
    let kek = tessera::config::DEV_KEK_FILE;
    std::fs::copy(first.dir.path().join(kek), second_dir.path().join(kek)).unwrap();
    let second = TestCa::start_in_with(second_dir, Some(url), AcmeOverrides::default(), fast).await;

    // Both nodes try every job until each has run twice more (a busy
    // machine may delay runs, so a deadline rather than a fixed window).
    // Each run is by one holder, and each is at least the interval after
    // the one before: however many runs one poll sees, their last_run moved
    // by at least the interval (2 s) per run, so two at once cannot hide.
    let mut last = Vec::new();
    for job in jobs {
        last.push(job_state(&first, job).await.unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut runs_seen = [0; 2];
    while runs_seen.iter().any(|&n| n < 2) {
        assert!(Instant::now() < deadline, "the jobs did not keep running: {runs_seen:?}");
        for (i, job) in jobs.iter().enumerate() {
            let now = job_state(&first, job).await.unwrap();
            assert_eq!(now.0, last[i].0, "{job}: the lease holder must not change while it lives");
            let runs = now.2 - last[i].2;
            assert!(runs >= 0 && now.1 - last[i].1 >= 2 * runs, "{job}: {runs} runs in {} s", now.1 - last[i].1);
            runs_seen[i] += runs;
            last[i] = now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A revocation makes the CRL job run (under its lease); the jobs API
    // (on either node) shows it with the expiry jobs.
    let revoked = issue(&second, &["revoked.test"], "1h", "default").await;
    let path = format!("/api/v1/certificates/{}/revoke", revoked["serial"].as_str().unwrap());
    assert_eq!(second.post(&path, Some(&second.admin_token), &json!({})).await.0, 200);
    // The row appears when the lease is taken; wait for the run to finish.
    wait_until("the CRL job", Duration::from_secs(20), || async {
        job_state(&second, "crl").await.is_some_and(|(_, last_run, _)| last_run > 0)
    })
    .await;
    let (status, body) = second.get("/api/v1/jobs", Some(&second.admin_token)).await;
    assert_eq!(status, 200, "{body}");
    for name in ["crl", "expiry-scan", "webhook-delivery"] {
        let job =
            body["items"].as_array().unwrap().iter().find(|j| j["name"] == name).unwrap_or_else(|| panic!("{body}"));
        assert!(job["last_run"].is_string() && job["next_run"].is_string(), "{job}");
        assert!(job["last_run"].as_str() < job["next_run"].as_str(), "{job}");
        assert!(job["holder"].as_str().unwrap().starts_with("node-"), "{job}");
    }
    assert!(body["items"].as_array().unwrap().iter().any(|j| j["name"].as_str().unwrap().starts_with("ocsp-presign/")));

    // The holder stops without a word (its lease is left as it was); once
    // the lease has run out the other node takes the job over.
    let holder = last[0].0.clone();
    first.stop().await;
    second.clock.advance(time::Duration::seconds(61));
    wait_until("the other node to take the job over", Duration::from_secs(20), || async {
        job_state(&second, "expiry-scan").await.is_some_and(|(h, _, _)| h != holder)
    })
    .await;
    second.stop().await;
}
