//! Issuing CA rotation and fleet renewal as operators and relying parties
//! see them: a forced rotation and one made by the job at its share of the
//! CA's life (with the settable clock), leaves of both authorities checked
//! with `openssl verify`, `openssl ocsp` and `-crl_check`, the trust bundle
//! holding both CAs, ACME Renewal Information saying "renew now" for the
//! retired CA's leaves and for a fleet pulled with renew-all, a second node
//! adopting a rotation made by the first, and a rotation in SoftHSM2.
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::acme::ari_cert_id;
use crate::common::relying_party::{LeafFiles, crl_path, crl_until, trust_bundle};
use crate::common::{Backend, TestCa, csr_for, openssl_verify};
use serde_json::{Value, json};
use tessera::cli::start;
use tessera::clock::SystemClock;
use tessera::config::{AcmeOverrides, Config, Overrides};

/// Starts a dev-mode CA on `backend`, checking for rotations every second;
/// None when the backend is not available here.
async fn start_ca(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Option<TestCa> {
    TestCa::start_acme_with(backend, AcmeOverrides::default(), |config| {
        config.lifecycle.ca_rotation.check_interval = "1s".parse().unwrap();
        adjust(config);
    })
    .await
}

/// The authorities as the admin API lists them.
async fn authorities(ca: &TestCa) -> Vec<Value> {
    let (status, body) = ca.get("/api/v1/authorities", Some(&ca.admin_token)).await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

async fn authority_of_kind(ca: &TestCa, kind: &str) -> Value {
    authorities(ca).await.into_iter().find(|a| a["kind"] == kind && a["status"] == "active").unwrap()
}

async fn issue(ca: &TestCa, name: &str) -> (Value, LeafFiles) {
    let issued = ca.sign(&csr_for(&[name])).await;
    let files = LeafFiles::new(ca, &issued, name);
    (issued, files)
}

/// The PEM of the CA that signed an issued leaf (the chain's first block
/// after the leaf).
fn issuer_pem(issued: &Value) -> String {
    issued["chain"].as_str().unwrap().split_inclusive("-----END CERTIFICATE-----\n").nth(1).unwrap().to_owned()
}

async fn get_public(ca: &TestCa, path: &str) -> reqwest::Response {
    reqwest::get(ca.http_url(path)).await.unwrap()
}

/// The suggested renewal window of a leaf, as Unix seconds.
async fn ari_window(ca: &TestCa, leaf_pem: &str) -> (i64, i64) {
    let url = format!(
        "https://localhost:{}/acme/default/renewal-info/{}",
        ca.running().https_addr.port(),
        ari_cert_id(pem::parse(leaf_pem).unwrap().contents())
    );
    let response = ca.client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let parse = |v: &Value| {
        time::OffsetDateTime::parse(v.as_str().unwrap(), &time::format_description::well_known::Rfc3339)
            .unwrap()
            .unix_timestamp()
    };
    (parse(&body["suggestedWindow"]["start"]), parse(&body["suggestedWindow"]["end"]))
}

/// Whether ARI tells the leaf to renew now (a window ending by now).
async fn renews_now(ca: &TestCa, leaf_pem: &str, now: i64) -> bool {
    let (start, end) = ari_window(ca, leaf_pem).await;
    start <= now && end <= now + 1
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

async fn forced_rotation_end_to_end(backend: Backend) {
    let Some(ca) = start_ca(backend, |_| {}).await else { return };
    let root = authority_of_kind(&ca, "root").await;
    let first = authority_of_kind(&ca, "issuing").await;
    let (issued_a, leaf_a) = issue(&ca, "a.rotation.test").await;
    let ocsp = ca.http_url("/ocsp");
    let out = leaf_a.ocsp_post(&ocsp, &[]);
    assert!(out.contains("Response verify OK") && out.contains(": good"), "{out}");
    let bundle_before = get_public(&ca, "/trust-bundle.pem").await;
    let etag_before = bundle_before.headers()["etag"].to_str().unwrap().to_owned();

    // The root is not rotated this way; an unknown authority is 404; a token is needed.
    let (status, body) =
        ca.post(&format!("/api/v1/authorities/{}/rotate", root["id"]), Some(&ca.admin_token), &json!({})).await;
    assert_eq!((status, body["type"].as_str()), (409, Some("urn:tessera:problem:conflict")), "{body}");
    let (status, _) = ca.post("/api/v1/authorities/9999/rotate", Some(&ca.admin_token), &json!({})).await;
    assert_eq!(status, 404);
    let (status, _) = ca.post(&format!("/api/v1/authorities/{}/rotate", first["id"]), None, &json!({})).await;
    assert_eq!(status, 401);

    let response = ca
        .client
        .post(ca.admin_url(&format!("/api/v1/authorities/{}/rotate", first["id"])))
        .bearer_auth(&ca.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let successor: Value = response.json().await.unwrap();
    assert_eq!(location, format!("/api/v1/authorities/{}", successor["id"]));
    assert_eq!(successor["kind"], "issuing");
    assert_eq!(successor["status"], "active");
    assert_eq!(successor["parent_id"], root["id"]);
    assert_eq!(successor["name"], "issuing-2");
    // A software key's successor is sealed in the database, not written
    // into this node's data directory, where no other node could open it.
    assert_eq!(successor["custody"], "sealed");
    assert_eq!(successor["key_uri"], "sealed:issuing-2");
    assert!(successor["subject"].as_str().unwrap().contains("Tessera Issuing CA G2"), "{successor}");
    assert!(!ca.dir.path().join("keys/issuing-2.key.pem").exists());
    let (_, retired) = ca.get(&format!("/api/v1/authorities/{}", first["id"]), Some(&ca.admin_token)).await;
    assert_eq!(retired["status"], "retired");
    let (status, _) =
        ca.post(&format!("/api/v1/authorities/{}/rotate", first["id"]), Some(&ca.admin_token), &json!({})).await;
    assert_eq!(status, 409, "a retired CA is not rotated again");
    let (_, events) = ca.get("/api/v1/audit-events?action=authority.rotate", Some(&ca.admin_token)).await;
    assert_eq!(events["items"][0]["actor"], "token:admin (dev)", "{events}");

    // New leaves come from the successor; the old leaf's chain is unchanged.
    let (issued_b, leaf_b) = issue(&ca, "b.rotation.test").await;
    assert_eq!(issuer_pem(&issued_b), successor["certificate"].as_str().unwrap());
    assert_eq!(issuer_pem(&issued_a), first["certificate"].as_str().unwrap());

    // The trust bundle holds the root and both issuing CAs, on both public listeners.
    let bundle = trust_bundle(&ca).await;
    for authority in [&root, &first, &successor] {
        assert!(bundle.contains(authority["certificate"].as_str().unwrap()), "bundle lacks {}", authority["name"]);
    }
    let over_https = ca
        .client
        .get(format!("https://localhost:{}/trust-bundle.pem", ca.running().https_addr.port()))
        .send()
        .await
        .unwrap();
    let etag = over_https.headers()["etag"].to_str().unwrap().to_owned();
    assert_ne!(etag, etag_before, "a rotation changes the bundle's ETag");
    assert_eq!(over_https.text().await.unwrap(), bundle);
    let cached = reqwest::Client::new()
        .get(ca.http_url("/trust-bundle.pem"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(cached.status(), 304);

    // Both leaves verify with the bundle, and B with root.pem written at start.
    for (name, issued) in [("A", &issued_a), ("B", &issued_b)] {
        openssl_verify(ca.dir.path(), &ca.root_pem_path(), &bundle, issued["certificate"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("leaf {name} with the trust bundle: {e}"));
    }
    openssl_verify(
        ca.dir.path(),
        &ca.root_pem_path(),
        issued_b["chain"].as_str().unwrap(),
        issued_b["certificate"].as_str().unwrap(),
    )
    .unwrap();

    // OCSP answers for both authorities; the retired one still revokes.
    let out = leaf_b.ocsp_post(&ocsp, &[]);
    assert!(out.contains("Response verify OK") && out.contains(": good"), "B: {out}");
    let out = leaf_a.ocsp_post(&ocsp, &["-no_nonce"]);
    assert!(out.contains("Response verify OK") && out.contains(": good"), "A: {out}");

    // CRLs of both authorities pass `-crl_check`.
    let crl_b = get_public(&ca, &crl_path(&leaf_b)).await.bytes().await.unwrap().to_vec();
    assert!(leaf_b.verify_with_crls(&[&crl_b], false).contains(": OK"));
    let crl_a = get_public(&ca, &crl_path(&leaf_a)).await.bytes().await.unwrap().to_vec();
    assert!(leaf_a.verify_with_crls(&[&crl_a], false).contains(": OK"));

    // ARI: the retired CA's leaf renews now; the successor's leaf later.
    let now = unix_now();
    assert!(renews_now(&ca, issued_a["certificate"].as_str().unwrap(), now).await);
    let (start, _) = ari_window(&ca, issued_b["certificate"].as_str().unwrap()).await;
    assert!(start > now + 3600, "B's window starts later");

    let (status, body) = ca
        .post(
            &format!("/api/v1/certificates/{}/revoke", leaf_a.serial),
            Some(&ca.admin_token),
            &json!({"reason": "superseded"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let out = leaf_a.ocsp_post(&ocsp, &["-no_nonce"]);
    assert!(out.contains("Response verify OK") && out.contains(": revoked"), "A revoked: {out}");
    let serial_line = format!("Serial Number: {}", leaf_a.serial.to_uppercase());
    let crl_a = crl_until(&ca, &crl_path(&leaf_a), |text| text.contains(&serial_line)).await;
    assert!(leaf_a.verify_with_crls(&[&crl_a], false).contains("certificate revoked"));
    let out = leaf_b.ocsp_post(&ocsp, &["-no_nonce"]);
    assert!(out.contains(": good"), "B unaffected: {out}");

    // Tessera's own TLS certificate moves to the successor.
    let tls = ca.dir.path().join("tls/server.crt");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !std::fs::read_to_string(&tls).unwrap().contains(successor["certificate"].as_str().unwrap()) {
        assert!(Instant::now() < deadline, "the TLS certificate was not re-issued by the successor");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (status, _) = ca.get("/api/v1/authorities", Some(&ca.admin_token)).await;
    assert_eq!(status, 200);
    ca.stop().await;
}
on_both_backends!(forced_rotation_end_to_end);

/// `openssl verify` at a given time (the test clock runs ahead of openssl's).
fn openssl_verify_at(dir: &Path, root: &Path, bundle: &str, leaf: &str, at: i64) -> Result<(), String> {
    let bundle_path = dir.join("bundle-under-test.pem");
    let leaf_path = dir.join("leaf-at-under-test.pem");
    std::fs::write(&bundle_path, bundle).unwrap();
    std::fs::write(&leaf_path, leaf).unwrap();
    let out = Command::new("openssl")
        .args(["verify", "-attime", &at.to_string(), "-CAfile"])
        .arg(root)
        .arg("-untrusted")
        .arg(&bundle_path)
        .arg(&leaf_path)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

async fn the_job_rotates_at_the_configured_share(backend: Backend) {
    let Some(ca) = start_ca(backend, |config| {
        config.hierarchy.issuing.validity_days = 3;
        config.lifecycle.ca_rotation.at_share = 0.5;
    })
    .await
    else {
        return;
    };
    let first = authority_of_kind(&ca, "issuing").await;
    let (_, leaf_a) = issue(&ca, "a.job.test").await;

    // Before its share is reached nothing happens, however often the job checks.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(authorities(&ca).await.len(), 2, "rotated too early");

    ca.clock.advance(time::Duration::hours(37));
    let deadline = Instant::now() + Duration::from_secs(20);
    let successor = loop {
        if let Some(found) =
            authorities(&ca).await.into_iter().find(|a| a["kind"] == "issuing" && a["id"] != first["id"])
        {
            break found;
        }
        assert!(Instant::now() < deadline, "the job did not rotate the issuing CA");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(successor["status"], "active");
    let (_, retired) = ca.get(&format!("/api/v1/authorities/{}", first["id"]), Some(&ca.admin_token)).await;
    assert_eq!(retired["status"], "retired");
    let (_, events) = ca.get("/api/v1/audit-events?action=authority.rotate", Some(&ca.admin_token)).await;
    assert_eq!(events["items"][0]["actor"], "tessera", "{events}");
    // The rotation commits before this node adopts it (opens the key,
    // starts its CRL and OCSP); readiness names the CA it signs with.
    loop {
        let report: Value = ca.client.get(ca.admin_url("/readyz")).send().await.unwrap().json().await.unwrap();
        if report["checks"]["issuing_ca"]["authority"] == successor["name"] {
            break;
        }
        assert!(Instant::now() < deadline, "the node did not adopt the successor: {report}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // New leaves chain to the successor (checked at the test clock's time).
    let (issued_b, leaf_b) = issue(&ca, "b.job.test").await;
    assert_eq!(issuer_pem(&issued_b), successor["certificate"].as_str().unwrap());
    let bundle = trust_bundle(&ca).await;
    assert!(
        bundle.contains(first["certificate"].as_str().unwrap())
            && bundle.contains(successor["certificate"].as_str().unwrap())
    );
    let at = time::OffsetDateTime::now_utc().unix_timestamp() + 37 * 3600;
    openssl_verify_at(ca.dir.path(), &ca.root_pem_path(), &bundle, issued_b["certificate"].as_str().unwrap(), at)
        .unwrap();
    assert_ne!(leaf_a.crl_url(), leaf_b.crl_url(), "each authority has its own CRL");

    // Exactly one rotation: the successor is far from its own share.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(authorities(&ca).await.len(), 3);
    ca.stop().await;
}
on_both_backends!(the_job_rotates_at_the_configured_share);

async fn a_second_node_adopts_a_rotation(backend: Backend) {
    let Some(node_a) = start_ca(backend, |_| {}).await else { return };
    // Node B shares the database and the key files (as nodes share an HSM or KMS).
    let config_b = node_a.config.clone();
    let running_b = start(config_b, Arc::new(SystemClock)).await.unwrap();
    let admin_b = |path: &str| format!("https://localhost:{}{path}", running_b.admin_addr.port());
    let sign_on_b = || async {
        let response = node_a
            .client
            .post(admin_b("/api/v1/certificates"))
            .bearer_auth(&node_a.admin_token)
            .json(&json!({"policy": "default", "csr": csr_for(&["on-b.rotation.test"])}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json::<Value>().await.unwrap()
    };
    let first = authority_of_kind(&node_a, "issuing").await;
    assert_eq!(issuer_pem(&sign_on_b().await), first["certificate"].as_str().unwrap());

    let (status, successor) = node_a
        .post(&format!("/api/v1/authorities/{}/rotate", first["id"]), Some(&node_a.admin_token), &json!({}))
        .await;
    assert_eq!(status, 201, "{successor}");
    let deadline = Instant::now() + Duration::from_secs(15);
    let issued = loop {
        let issued = sign_on_b().await;
        if issuer_pem(&issued) == successor["certificate"].as_str().unwrap() {
            break issued;
        }
        assert!(Instant::now() < deadline, "node B kept signing with the retired CA");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // Node B answers OCSP for the successor's leaves too.
    let leaf = LeafFiles::new(&node_a, &issued, "on-b");
    let out = leaf.ocsp_post(&format!("http://127.0.0.1:{}/ocsp", running_b.http_addr.port()), &[]);
    assert!(out.contains("Response verify OK") && out.contains(": good"), "{out}");
    running_b.shutdown().await;
    node_a.stop().await;
}
on_both_backends!(a_second_node_adopts_a_rotation);

async fn renew_all_pulls_the_selected_fleet(backend: Backend) {
    let Some(ca) = start_ca(backend, |_| {}).await else { return };
    let issuing = authority_of_kind(&ca, "issuing").await;
    let mut fleet = Vec::new();
    for name in ["web1.fleet.test", "web2.fleet.test", "deep.a.fleet.test"] {
        fleet.push(issue(&ca, name).await.0);
    }
    let (other, _) = issue(&ca, "fleet.test").await;
    let other_pem = other["certificate"].as_str().unwrap();
    let other_window = ari_window(&ca, other_pem).await;
    let now = unix_now();
    for leaf in &fleet {
        assert!(!renews_now(&ca, leaf["certificate"].as_str().unwrap(), now).await);
    }

    let path = format!("/api/v1/authorities/{}/renew-all", issuing["id"]);
    let (status, body) = ca.post(&path, None, &json!({"san": "*.fleet.test"})).await;
    assert_eq!(status, 401, "{body}");
    let (status, body) = ca.post("/api/v1/authorities/9999/renew-all", Some(&ca.admin_token), &json!({})).await;
    assert_eq!((status, body["type"].as_str()), (404, Some("urn:tessera:problem:not-found")), "{body}");
    for bad in [json!({"san": "*.*.fleet.test"}), json!({"san": ""}), json!({"san": "a b"}), json!({"names": "x"})] {
        let (status, body) = ca.post(&path, Some(&ca.admin_token), &bad).await;
        assert_eq!(
            (status, body["type"].as_str()),
            (400, Some("urn:tessera:problem:malformed-request")),
            "{bad}: {body}"
        );
    }
    let (_, auditor) =
        ca.post("/api/v1/tokens", Some(&ca.admin_token), &json!({"name": "audit", "scope": "auditor"})).await;
    let (status, _) = ca.post(&path, auditor["token"].as_str(), &json!({})).await;
    assert_eq!(status, 403, "auditors read, they do not pull renewals");

    let (status, body) = ca.post(&path, Some(&ca.admin_token), &json!({"san": "*.fleet.test"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["affected"], 3, "{body}");
    assert_eq!(body["san"], "dns:*.fleet.test");
    let now = unix_now();
    for leaf in &fleet {
        assert!(renews_now(&ca, leaf["certificate"].as_str().unwrap(), now).await, "{}", leaf["serial"]);
    }
    assert_eq!(ari_window(&ca, other_pem).await, other_window, "a name outside the selector keeps its window");
    let (_, events) = ca.get("/api/v1/audit-events?action=certificate.renew_all", Some(&ca.admin_token)).await;
    assert_eq!(events["items"][0]["target"], format!("authority:{}", issuing["id"]), "{events}");

    // A certificate issued after the pull is not pulled with it (the pull
    // covers certificates that existed in its second).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (late, _) = issue(&ca, "web3.fleet.test").await;
    assert!(!renews_now(&ca, late["certificate"].as_str().unwrap(), unix_now()).await);

    // An exact name, then everything.
    let (_, body) = ca.post(&path, Some(&ca.admin_token), &json!({"san": "fleet.test"})).await;
    assert_eq!(body["affected"], 1, "{body}");
    assert!(renews_now(&ca, other_pem, unix_now()).await);
    let (_, body) = ca.post(&path, Some(&ca.admin_token), &json!({})).await;
    assert!(body["affected"].as_u64().unwrap() >= 5, "every live certificate, the TLS one too: {body}");
    assert!(body["san"].is_null());
    assert!(renews_now(&ca, late["certificate"].as_str().unwrap(), unix_now()).await);
    ca.stop().await;
}
on_both_backends!(renew_all_pulls_the_selected_fleet);

/// A production hierarchy whose issuing CA lives in SoftHSM2 rotates to a
/// new key on the same token (skipped without the token, see custodians).
/// On SQLite only, as tests/custody.rs explains: the rotation's records are
/// checked on both backends by `forced_rotation_end_to_end`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_issuing_ca_in_softhsm_rotates_to_a_new_key_on_the_token() {
    let Some(token) = crate::common::custodians::softhsm() else { return };
    let dir = tempfile::tempdir().unwrap();
    let object = crate::common::custodians::unique("issuing");
    let path = dir.path().join("tessera.toml");
    std::fs::write(
        &path,
        format!(
            "mode = \"production\"\ndata_dir = {:?}\nhttps_addr = \"127.0.0.1:0\"\nhttp_addr = \"127.0.0.1:0\"\n\
             admin_addr = \"127.0.0.1:0\"\n[hierarchy.root]\nname = \"root\"\ncommon_name = \"Rotation Test Root\"\n\
             key_uri = \"file:keys/root.key.pem\"\nvalidity_days = 30\n[hierarchy.issuing]\nname = \"issuing\"\n\
             common_name = \"Rotation Test Issuing CA\"\nkey_uri = \"{}\"\nvalidity_days = 7\n\
             [secrets]\nkek = \"file:secrets.kek\"\n{}",
            dir.path(),
            token.key_uri(&object),
            token.toml()
        ),
    )
    .unwrap();
    let config = Config::load(Some(&path), &Overrides::default()).unwrap();
    let ca = TestCa::start_production(dir, config).await;

    let first = authority_of_kind(&ca, "issuing").await;
    let (status, successor) =
        ca.post(&format!("/api/v1/authorities/{}/rotate", first["id"]), Some(&ca.admin_token), &json!({})).await;
    assert_eq!(status, 201, "{successor}");
    assert_eq!(successor["custody"], "pkcs11");
    assert_eq!(successor["key_uri"], token.key_uri(&format!("{object}-2")));
    let (issued, leaf) = issue(&ca, "hsm.rotation.test").await;
    assert_eq!(issuer_pem(&issued), successor["certificate"].as_str().unwrap());
    let bundle = trust_bundle(&ca).await;
    openssl_verify(ca.dir.path(), &ca.root_pem_path(), &bundle, issued["certificate"].as_str().unwrap()).unwrap();
    let out = leaf.ocsp_post(&ca.http_url("/ocsp"), &[]);
    assert!(out.contains("Response verify OK") && out.contains(": good"), "{out}");
    ca.stop().await;
}
