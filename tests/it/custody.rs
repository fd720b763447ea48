//! Production hierarchies with their keys in SoftHSM2 and the KMS emulator,
//! proven by `openssl verify`, and what Tessera does when a custodian fails:
//! start-up refuses with the key's name, issuance answers 503 with
//! Retry-After while the custodian is gone, nothing signed goes untracked,
//! and Tessera recovers by itself when the custodian comes back.
//!
//! On SQLite only: what these check is the custodian (its keys, its
//! signatures, its outages), which no SQL touches; the bookkeeping of a
//! failed signature runs on both backends in tests/storage.rs
//! (`a_failed_signature_leaves_a_tracked_serial`), and running each HSM and
//! KMS test twice would only double their time.
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::common::custodians::{self, Token, kms_endpoint, p11kit_remote, softhsm, unique};
use crate::common::fault_proxy::{Fault, FaultProxy};
use crate::common::relying_party::LeafFiles;
use crate::common::{TestCa, csr_for};
use serde_json::json;
use tessera::clock::SystemClock;
use tessera::config::{Config, Overrides};

/// A production config with the given key URIs and custodian tables.
fn production_config(dir: &Path, root_uri: &str, issuing_uri: &str, keys_toml: &str) -> Config {
    let path = dir.join("tessera.toml");
    let text = format!(
        r#"mode = "production"
data_dir = {dir:?}
https_addr = "127.0.0.1:0"
http_addr = "127.0.0.1:0"
admin_addr = "127.0.0.1:0"
public_base_url = "http://127.0.0.1:8080"

[hierarchy.root]
name = "root"
common_name = "Custody Test Root"
key_uri = "{root_uri}"
validity_days = 30

[hierarchy.issuing]
name = "issuing"
common_name = "Custody Test Issuing CA"
key_uri = "{issuing_uri}"
validity_days = 7

[secrets]
kek = "file:secrets.kek"

{keys_toml}"#
    );
    std::fs::write(&path, text).unwrap();
    Config::load(Some(&path), &Overrides::default()).unwrap()
}

/// OCSP through the delegated responder the custodian's key certified:
/// good, then revoked at once after a revocation.
async fn ocsp_good_then_revoked(ca: &TestCa, name: &str) {
    let issued = ca.sign(&csr_for(&[name])).await;
    let leaf = LeafFiles::new(ca, &issued, name);
    let url = ca.http_url("/ocsp");
    let out = leaf.ocsp_post(&url, &[]);
    assert!(out.contains("Response verify OK") && out.contains(": good"), "{out}");
    let (status, body) =
        ca.post(&format!("/api/v1/certificates/{}/revoke", leaf.serial), Some(&ca.admin_token), &json!({})).await;
    assert_eq!(status, 200, "{body}");
    let out = leaf.ocsp_post(&url, &["-no_nonce"]);
    assert!(out.contains("Response verify OK") && out.contains(": revoked"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_and_issuing_ca_in_softhsm() {
    let Some(token) = softhsm() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = production_config(
        dir.path(),
        &token.key_uri(&unique("root")),
        &token.key_uri(&unique("issuing")),
        &token.toml(),
    );
    let ca = TestCa::start_production(dir, config).await;
    ca.issue_and_verify("hsm.test").await;
    ocsp_good_then_revoked(&ca, "hsm-ocsp.test").await;
    ca.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_in_kms_issuing_ca_in_software() {
    let Some(endpoint) = kms_endpoint() else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = format!("awskms:alias/{}", unique("root"));
    let config = production_config(dir.path(), &root, "file:keys/issuing.key.pem", &custodians::kms_toml(&endpoint));
    let ca = TestCa::start_production(dir, config).await;
    ca.issue_and_verify("kms-root.test").await;
    ocsp_good_then_revoked(&ca, "kms-root-ocsp.test").await;
    ca.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_in_kms_issuing_ca_in_softhsm() {
    let (Some(endpoint), Some(token)) = (kms_endpoint(), softhsm()) else { return };
    let dir = tempfile::tempdir().unwrap();
    let root = format!("awskms:alias/{}", unique("root"));
    let keys = format!("{}\n{}", custodians::kms_toml(&endpoint), token.toml());
    let config = production_config(dir.path(), &root, &token.key_uri(&unique("issuing")), &keys);
    let ca = TestCa::start_production(dir, config).await;
    ca.issue_and_verify("kms-hsm.test").await;
    ocsp_good_then_revoked(&ca, "kms-hsm-ocsp.test").await;
    ca.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_refuses_a_wrong_pin_or_missing_token_and_names_the_key() {
    let Some(token) = softhsm() else { return };
    let dir = tempfile::tempdir().unwrap();
    let issuing = token.key_uri(&unique("issuing"));
    let config = production_config(dir.path(), "file:keys/root.key.pem", &issuing, &token.toml());
    let dir = TestCa::start_production(dir, config.clone()).await.stop().await;

    let wrong_pin = "4321-wrong";
    std::fs::write(dir.path().join("wrong-pin"), wrong_pin).unwrap();
    let mut wrong = config.clone();
    wrong.keys.pkcs11.pin_file = Some(dir.path().join("wrong-pin"));
    let error = tessera::cli::start(wrong, Arc::new(SystemClock)).await.err().unwrap().to_string();
    assert!(error.contains(&issuing) && error.contains("PIN"), "{error}");
    assert!(!error.contains(wrong_pin), "the PIN leaked: {error}");

    let mut absent = config;
    absent.keys.pkcs11.module = Some("/nonexistent/libpkcs11.so".into());
    let error = tessera::cli::start(absent, Arc::new(SystemClock)).await.err().unwrap().to_string();
    assert!(error.contains(&issuing), "{error}");
}

/// Posts a CSR and returns the status, the Retry-After header and the body.
async fn try_issue(ca: &TestCa, name: &str) -> (u16, Option<String>, serde_json::Value) {
    let response = ca
        .client
        .post(ca.admin_url("/api/v1/certificates"))
        .bearer_auth(&ca.admin_token)
        .json(&json!({"policy": "default", "csr": csr_for(&[name])}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, response.json().await.unwrap())
}

/// While the custodian is away: 503 with Retry-After and a problem document.
async fn assert_unavailable(ca: &TestCa, name: &str) {
    let (status, retry_after, body) = try_issue(ca, name).await;
    assert_eq!(status, 503, "{body}");
    assert!(retry_after.is_some(), "503 without Retry-After");
    assert_eq!(body["type"], "urn:tessera:problem:unavailable", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_outage_and_throttling_answer_503_then_recover() {
    let Some(endpoint) = kms_endpoint() else { return };
    let upstream = endpoint.trim_start_matches("http://").parse().unwrap();
    let proxy = FaultProxy::start(upstream).await;
    let dir = tempfile::tempdir().unwrap();
    let issuing = format!("awskms:alias/{}", unique("issuing"));
    let config = production_config(dir.path(), "file:keys/root.key.pem", &issuing, &custodians::kms_toml(&proxy.url()));
    let ca = TestCa::start_production(dir, config).await;
    ca.issue_and_verify("before.test").await;
    let issued = ca.count_with_status("issued").await;

    for fault in [Fault::Unreachable, Fault::Throttling] {
        proxy.set(fault);
        assert_unavailable(&ca, "during.test").await;
    }
    assert_eq!(ca.count_with_status("failed").await, 2, "each refused request leaves a failed serial");
    assert_eq!(ca.count_with_status("pending").await, 0);
    assert_eq!(ca.count_with_status("issued").await, issued);

    proxy.set(Fault::None);
    ca.issue_and_verify("after.test").await;
    ca.stop().await;
}

/// SoftHSM2 served over p11-kit's RPC, as a network HSM is: stopping the
/// server takes the HSM away from Tessera mid-run.
struct RemoteHsm {
    child: Child,
}

impl RemoteHsm {
    fn start(token: &Token, socket: &Path) -> Self {
        use std::os::unix::process::CommandExt;
        let _ = std::fs::remove_file(socket);
        // Its own process group: the server forks a process per client.
        let child = Command::new("p11-kit")
            .process_group(0)
            .args(["server", "-f", "--provider"])
            .arg(&token.module)
            .arg("-n")
            .arg(socket)
            .arg(format!("pkcs11:token={}", token.label))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("p11-kit server (Debian package p11-kit)");
        for _ in 0..100 {
            if socket.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child }
    }

    fn stop(mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsm_lost_mid_run_answers_503_then_recovers() {
    let (Some(token), Some(remote)) = (softhsm(), p11kit_remote()) else { return };
    let socket = remote.socket;
    let server = RemoteHsm::start(&token, &socket);

    let dir = tempfile::tempdir().unwrap();
    let issuing = token.key_uri(&unique("issuing"));
    let keys = format!("[keys.pkcs11]\nmodule = {:?}\npin_file = {:?}\n", remote.client_module, token.pin_file);
    let config = production_config(dir.path(), "file:keys/root.key.pem", &issuing, &keys);
    let ca = TestCa::start_production(dir, config).await;
    ca.issue_and_verify("before.test").await;
    let issued = ca.count_with_status("issued").await;

    server.stop();
    assert_unavailable(&ca, "during.test").await;
    assert_eq!(ca.count_with_status("failed").await, 1);
    assert_eq!(ca.count_with_status("pending").await, 0);
    assert_eq!(ca.count_with_status("issued").await, issued);

    let server = RemoteHsm::start(&token, &socket);
    ca.issue_and_verify("after.test").await;
    ca.stop().await;
    server.stop();
}
