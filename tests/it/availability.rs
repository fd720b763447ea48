//! A node serves only what it can serve right: one that cannot use the
//! newest issuing CA issues nothing (503 with `Retry-After`, readiness
//! false, a metric) until it can, rather than signing with a retired CA;
//! a software CA's successor is sealed in the database, so a node with its
//! own data directory and the key-encryption key signs with it; and
//! `/readyz` is open and says what is wrong.
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{Backend, TestCa, csr_for, openssl_verify};
use serde_json::{Value, json};
use tessera::config::{AcmeOverrides, Config, DEV_KEK_FILE};
use tessera::storage::{Db, SecretRow};

fn fast_rotation_checks(config: &mut Config) {
    config.lifecycle.ca_rotation.check_interval = "1s".parse().unwrap();
}

/// The issuing CA that signed an issued leaf (the chain's first block after the leaf).
fn issuer_pem(issued: &Value) -> String {
    issued["chain"].as_str().unwrap().split_inclusive("-----END CERTIFICATE-----\n").nth(1).unwrap().to_owned()
}

async fn active_issuing(ca: &TestCa) -> Value {
    let (status, body) = ca.get("/api/v1/authorities", Some(&ca.admin_token)).await;
    assert_eq!(status, 200, "{body}");
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "issuing" && a["status"] == "active")
        .unwrap()
        .clone()
}

/// POSTs a CSR to sign and returns the response as it came.
async fn try_sign(ca: &TestCa, name: &str) -> reqwest::Response {
    ca.client
        .post(ca.admin_url("/api/v1/certificates"))
        .bearer_auth(&ca.admin_token)
        .json(&json!({"policy": "default", "csr": csr_for(&[name])}))
        .send()
        .await
        .unwrap()
}

/// `GET /readyz` without a token: its status and report.
async fn readiness(ca: &TestCa) -> (u16, Option<String>, Value) {
    let response = ca.client.get(ca.admin_url("/readyz")).send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, response.json().await.unwrap())
}

async fn wait_until<F: std::future::Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < deadline, "{what} did not happen within 20 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

on_both_backends!(readiness_is_open_and_reports_each_check, |ca| {
    let (status, retry_after, report) = readiness(ca).await;
    assert_eq!((status, retry_after), (200, None), "{report}");
    assert_eq!(report["status"], "ready");
    assert!(report.get("reason").is_none(), "{report}");
    assert_eq!(report["checks"]["database"]["ok"], true);
    assert_eq!(report["checks"]["issuing_ca"]["ok"], true);
    assert_eq!(report["checks"]["issuing_ca"]["authority"], "issuing");
    assert_eq!(report["checks"]["listeners"], json!({"ok": true, "serving": ["admin", "http", "https"]}));
    // Open as /healthz is: a wrong method is 405 to anyone, not 401.
    let post = ca.client.post(ca.admin_url("/readyz")).send().await.unwrap();
    assert_eq!(post.status(), 405);
});

/// Copies what every node of a cluster is given at deployment: the
/// key-encryption key and the first hierarchy's key files. Nothing a
/// rotation makes later.
fn deploy_like(from: &Path, to: &Path) {
    std::fs::copy(from.join(DEV_KEK_FILE), to.join(DEV_KEK_FILE)).unwrap();
    std::fs::create_dir_all(to.join("keys")).unwrap();
    for entry in std::fs::read_dir(from.join("keys")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join("keys").join(entry.file_name())).unwrap();
    }
}

/// Two nodes with data directories of their own on one PostgreSQL (a
/// shared SQLite file is not a cluster): a rotation on one makes the other
/// sign with the successor, whose key it never had on disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_its_own_data_directory_signs_with_a_successor_made_elsewhere() {
    let Some(url) = crate::common::fresh_postgres_url().await else { return };
    let node_a =
        TestCa::start_in_with(tempfile::tempdir().unwrap(), Some(url.clone()), AcmeOverrides::default(), |c| {
            fast_rotation_checks(c)
        })
        .await;
    let dir_b = tempfile::tempdir().unwrap();
    deploy_like(node_a.dir.path(), dir_b.path());
    let node_b = TestCa::start_in_with(dir_b, Some(url), AcmeOverrides::default(), fast_rotation_checks).await;
    let first = active_issuing(&node_a).await;
    assert_eq!(
        issuer_pem(&node_b.sign(&csr_for(&["before.nodes.test"])).await),
        first["certificate"].as_str().unwrap()
    );

    let (status, successor) = node_a
        .post(&format!("/api/v1/authorities/{}/rotate", first["id"]), Some(&node_a.admin_token), &json!({}))
        .await;
    assert_eq!(status, 201, "{successor}");
    assert_eq!(successor["key_uri"], "sealed:issuing-2");
    let deadline = Instant::now() + Duration::from_secs(15);
    let issued = loop {
        let response = try_sign(&node_b, "after.nodes.test").await;
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        // Between the rotation and B's adoption, B signs with the CA it had.
        assert_eq!(status, 201, "{body}");
        if issuer_pem(&body) == successor["certificate"].as_str().unwrap() {
            break body;
        }
        assert!(Instant::now() < deadline, "node B kept signing with the retired CA");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    openssl_verify(
        node_b.dir.path(),
        &node_b.root_pem_path(),
        issued["chain"].as_str().unwrap(),
        issued["certificate"].as_str().unwrap(),
    )
    .unwrap();
    let keys_b: Vec<_> =
        std::fs::read_dir(node_b.dir.path().join("keys")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(keys_b.len(), 2, "node B holds only the first hierarchy's keys: {keys_b:?}");
    let (status, _, report) = readiness(&node_b).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["checks"]["issuing_ca"]["authority"], "issuing-2");
    node_b.stop().await;
    node_a.stop().await;
}

/// Records, as another node's rotation would, a newer issuing CA whose key
/// is `sealed:<name>` with nothing sealed under that name yet. It reuses
/// the current CA's certificate, so sealing that CA's key file later
/// makes it usable. Returns the new authority's id.
async fn record_newer_authority_without_key(db: &Db, name: &str) -> i64 {
    let copy = format!(
        "INSERT INTO authorities (name, kind, parent_id, key_uri, algorithm, certificate_der, serial, ski, subject, \
         not_before, not_after, status, created_at) \
         SELECT '{name}', kind, parent_id, 'sealed:{name}', algorithm, certificate_der, serial, ski, subject, \
         not_before, not_after + 1, 'active', created_at FROM authorities WHERE name = 'issuing'"
    );
    db.execute_raw(&copy).await.unwrap();
    db.execute_raw("UPDATE authorities SET status = 'retired' WHERE name = 'issuing'").await.unwrap();
    let find = format!("SELECT id FROM authorities WHERE name = '{name}'");
    match db {
        Db::Postgres(pool) => sqlx::query_scalar(sqlx::AssertSqlSafe(find)).fetch_one(pool).await.unwrap(),
        Db::Sqlite(pool) => sqlx::query_scalar(sqlx::AssertSqlSafe(find)).fetch_one(pool).await.unwrap(),
    }
}

async fn store_sealed_key(ca: &TestCa, name: &str, pkcs8: &[u8]) {
    let sealed = ca.sealer().await.seal(&SecretRow::AuthorityKey(name.to_owned()), pkcs8).await.unwrap();
    const SQL: &str = "INSERT INTO authority_keys (name, pkcs8, sealed_with, created_at) VALUES ($1, $2, $3, 0)";
    match &ca.db {
        Db::Postgres(pool) => {
            sqlx::query(SQL).bind(name).bind(&sealed.bytes).bind(&sealed.key_id).execute(pool).await.unwrap();
        }
        Db::Sqlite(pool) => {
            sqlx::query(SQL).bind(name).bind(&sealed.bytes).bind(&sealed.key_id).execute(pool).await.unwrap();
        }
    };
}

async fn a_node_that_cannot_open_the_newest_ca_issues_nothing_until_it_can(backend: Backend) {
    let Some(ca) = TestCa::start_acme_with(backend, AcmeOverrides::default(), fast_rotation_checks).await else {
        return;
    };
    let retired = active_issuing(&ca).await;
    ca.sign(&csr_for(&["before.unavailable.test"])).await;
    let id = record_newer_authority_without_key(&ca.db, "issuing-elsewhere").await;

    wait_until("suspension", || async { try_sign(&ca, "probe.unavailable.test").await.status() == 503 }).await;
    let certificates = ca.db.count_certificates().await.unwrap();
    let refused = try_sign(&ca, "during.unavailable.test").await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "5");
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    let problem: Value = refused.json().await.unwrap();
    assert_eq!(problem["type"], "urn:tessera:problem:unavailable", "{problem}");
    assert_eq!(problem["status"], 503);
    assert_eq!(ca.db.count_certificates().await.unwrap(), certificates, "a refused request stores nothing");
    let (status, retry_after, report) = readiness(&ca).await;
    assert_eq!((status, retry_after.as_deref()), (503, Some("5")), "{report}");
    assert_eq!(report["status"], "not ready");
    assert_eq!(report["checks"]["issuing_ca"]["ok"], false);
    assert_eq!(report["checks"]["database"]["ok"], true);
    assert!(report["reason"].as_str().unwrap().contains("issuing-elsewhere"), "{report}");
    assert_eq!(ca.metric("tessera_issuing_ca_unavailable").await, Some(1.0));

    // The key arrives (sealed in the database): the node takes the new CA
    // up within a check and issues under it.
    let pem_text = std::fs::read_to_string(ca.dir.path().join("keys/issuing.key.pem")).unwrap();
    store_sealed_key(&ca, "issuing-elsewhere", pem::parse(pem_text).unwrap().contents()).await;
    wait_until("resumption", || async { try_sign(&ca, "probe.unavailable.test").await.status() == 201 }).await;
    let issued = ca.sign(&csr_for(&["after.unavailable.test"])).await;
    let (_, leaf) =
        ca.get(&format!("/api/v1/certificates/{}", issued["serial"].as_str().unwrap()), Some(&ca.admin_token)).await;
    assert_eq!(leaf["authority_id"], id, "{leaf}");
    assert_ne!(leaf["authority_id"], retired["id"]);
    assert_eq!(readiness(&ca).await.0, 200);
    assert_eq!(ca.metric("tessera_issuing_ca_unavailable").await, Some(0.0));
    ca.stop().await;
}
on_both_backends!(a_node_that_cannot_open_the_newest_ca_issues_nothing_until_it_can);
