//! The database goes away and comes back: PostgreSQL of the test's own
//! cluster stopped with `pg_ctl stop -m immediate` while clients keep
//! asking, then started again. Meanwhile every request that needs the
//! database gets a retryable answer (REST 503 problem and ACME
//! serverInternal, both with `Retry-After`), OCSP and CRLs are served from
//! what was signed before, and readiness says the database is away; once
//! it is back, Tessera issues again by itself and no row is left pending.
//! PostgreSQL only: an embedded SQLite file does not go away.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::common::acme::{AccountKey, AcmeClient, eab_binding, flattened};
use crate::common::postgres_cluster::PostgresCluster;
use crate::common::relying_party::LeafFiles;
use crate::common::{TestCa, csr_for};
use serde_json::{Value, json};

/// How long Tessera may take to issue again once PostgreSQL is back.
const RECOVERY_BOUND: Duration = Duration::from_secs(30);

/// One answer to a REST signing request: its status, whether it said when
/// to retry, and its problem type.
type Answer = (u16, bool, Option<String>);

async fn sign(ca: &TestCa, client: &reqwest::Client, name: &str) -> Answer {
    let response = client
        .post(ca.admin_url("/api/v1/certificates"))
        .bearer_auth(&ca.admin_token)
        .json(&json!({"policy": "default", "csr": csr_for(&[name])}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().contains_key("retry-after");
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, retry_after, body["type"].as_str().map(str::to_owned))
}

async fn crl_der(url: &str) -> (u16, Vec<u8>) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_get_retryable_answers_while_the_database_is_away_and_tessera_recovers_by_itself() {
    let Some(cluster) = PostgresCluster::start() else { return };
    let ca = TestCa::start_in(tempfile::tempdir().unwrap(), Some(cluster.url())).await;
    let issued = ca.sign(&csr_for(&["before.outage.test"])).await;
    let leaf = LeafFiles::new(&ca, &issued, "before-outage");
    let out = leaf.ocsp_post(&leaf.ocsp_url(), &[]);
    assert!(out.contains("Response verify OK") && out.contains(": good"), "{out}");
    let crl_url = leaf.crl_url();
    let (status, crl_before) = crl_der(&crl_url).await;
    assert_eq!(status, 200);
    // An ACME newAccount whose nonce is taken now, sent during the outage.
    let (kid, hmac) = ca.eab_key(true).await;
    let mut acme = AcmeClient::new(&ca, AccountKey::es256()).await;
    let new_account = acme.url("newAccount");
    let payload = json!({"termsOfServiceAgreed": true, "externalAccountBinding": eab_binding("HS256", &kid, &hmac, &acme.key.jwk(), &new_account)});
    let signed = flattened(&acme.key, &acme.header(&new_account).await, Some(&payload)).to_string();

    // Load throughout: four clients signing in a loop.
    let stop = Arc::new(AtomicBool::new(false));
    let ca = Arc::new(ca);
    let mut load = Vec::new();
    for client in 0..4 {
        let (ca, stop) = (ca.clone(), stop.clone());
        load.push(tokio::spawn(async move {
            let mut answers = Vec::new();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                answers.push(sign(&ca, &ca.client, &format!("load-{client}-{n}.outage.test")).await);
                n += 1;
            }
            answers
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    cluster.stop_immediately();

    let (status, retry_after, problem) = sign(&ca, &ca.client, "during.outage.test").await;
    assert_eq!((status, retry_after, problem.as_deref()), (503, true, Some("urn:tessera:problem:unavailable")));
    let reply = acme.send(&new_account, signed.into_bytes(), "application/jose+json").await;
    reply.assert_problem("serverInternal", 503);
    assert!(reply.header("retry-after").is_some(), "{reply:?}");
    let out = leaf.ocsp_post(&leaf.ocsp_url(), &[]);
    assert!(out.contains("Response verify OK") && out.contains(": good"), "OCSP from what was signed: {out}");
    assert_eq!(crl_der(&crl_url).await, (200, crl_before), "the CRL from what was signed");
    let readiness = ca.client.get(ca.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(readiness.status(), 503);
    let report: Value = readiness.json().await.unwrap();
    assert_eq!(report["checks"]["database"]["ok"], false, "{report}");
    tokio::time::sleep(Duration::from_secs(2)).await;

    cluster.start_again();
    let back = Instant::now();
    loop {
        if sign(&ca, &ca.client, "after.outage.test").await.0 == 201 {
            break;
        }
        assert!(back.elapsed() < RECOVERY_BOUND, "Tessera did not issue again within {RECOVERY_BOUND:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("issuing again {:.1} s after PostgreSQL was back", back.elapsed().as_secs_f64());
    stop.store(true, Ordering::Relaxed);
    let mut answers = Vec::new();
    for client in load {
        answers.extend(client.await.unwrap());
    }
    let refused = answers.iter().filter(|a| a.0 != 201).count();
    assert!(refused > 0, "the load ran during the outage");
    for answer in &answers {
        assert!(
            answer.0 == 201
                || (answer.0 == 503 && answer.1 && answer.2.as_deref() == Some("urn:tessera:problem:unavailable")),
            "every answer is a certificate or a retryable refusal: {answer:?}"
        );
    }
    println!("{} signing requests under load, {refused} refused with 503", answers.len());

    // A client of its own: the listener closed the old one's idle connections.
    acme.http = crate::common::client_trusting(&std::fs::read(ca.root_pem_path()).unwrap());
    assert_eq!(acme.register(&kid, &hmac).await.status, 201);
    // Issuance the outage interrupted is marked failed within seconds of
    // the database's return (nobody got those certificates).
    let settled = Instant::now();
    while ca.count_with_status("pending").await > 0 {
        assert!(settled.elapsed() < RECOVERY_BOUND, "rows left pending after the outage");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let readiness = ca.client.get(ca.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(readiness.status(), 200);
    Arc::into_inner(ca).unwrap().stop().await;
}
