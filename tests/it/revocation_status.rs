//! The exact answer a relying party gets for a serial in each state, on
//! one node and across nodes.
//!
//! OCSP answers `good` only for a certificate Tessera issued and has not
//! revoked, `revoked` once it is, and `unknown` (RFC 6960 §2.2: the
//! responder knows of no such certificate) for every other serial: one
//! never issued, one reserved but not recorded as issued (pending: a node
//! that stopped mid-issuance may have signed it, but nobody received it
//! from Tessera), and one whose signature failed. A serial that may have
//! been signed but was never delivered is never vouched for. RFC 6960 §2.2
//! would also allow `revoked` (certificateHold, "extended revoked") for
//! serials never issued; Tessera answers `unknown`, which relying parties
//! treat as not good just the same, without a response extension.
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::relying_party::{CertStatus, LeafFiles, crl_path, crl_text, ocsp_answers};
use crate::common::{Backend, TestCa, csr_for};
use der_07::{Decode, Encode};
use serde_json::json;
use tessera::clock::{Clock, SystemClock};
use tessera::storage::{CertificateKind, NewAuditEvent, PendingCertificate};

/// An OCSP request like `template` (a CertID under the issuing CA, no
/// nonce) that asks about each of `serials`.
fn request_for(template: &[u8], serials: &[&[u8]]) -> Vec<u8> {
    let mut request = x509_ocsp::OcspRequest::from_der(template).unwrap();
    let asked = request.tbs_request.request_list[0].clone();
    request.tbs_request.request_list = serials
        .iter()
        .map(|serial| {
            let mut one = asked.clone();
            one.req_cert.serial_number = x509_cert_02::serial_number::SerialNumber::new(serial).unwrap();
            one
        })
        .collect();
    request.to_der().unwrap()
}

async fn post_ocsp(url: &str, body: Vec<u8>) -> Vec<u8> {
    let request = reqwest::Client::new().post(url).header("content-type", "application/ocsp-request").body(body);
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().to_vec()
}

/// Reserves `serial` under the issuing CA, as the pipeline does before it
/// signs; the row stays pending as a node that stopped there leaves it.
async fn reserve(ca: &TestCa, serial: &[u8]) {
    let issuing = ca.db.catalog().list_authorities().await.unwrap().into_iter().find(|a| a.kind == "issuing").unwrap();
    let now = ca.clock.now().unix_timestamp();
    let pending = PendingCertificate {
        serial: serial.to_vec(),
        authority_id: issuing.id,
        not_before: now - 60,
        not_after: now + 3600,
        created_at: now,
        kind: CertificateKind::Workload,
        subject: None,
        sans: " dns:pending.status.test ".into(),
        requester: "test".into(),
        key_type: None,
        policy: None,
        crl_shard: None,
        spki_hash: serial.to_vec(),
    };
    ca.db.ledger().reserve_certificate(&pending).await.unwrap();
}

/// A random positive 16-octet serial.
fn fresh_serial() -> Vec<u8> {
    let mut serial = rand::random::<[u8; 16]>();
    serial[0] = (serial[0] & 0x7f) | 0x01;
    serial.to_vec()
}

async fn every_serial_state_gets_its_exact_ocsp_status(backend: Backend) {
    let Some(ca) = TestCa::start(backend).await else { return };
    let issued = ca.sign(&csr_for(&["issued.status.test"])).await;
    let leaf = LeafFiles::new(&ca, &issued, "issued");
    let revoked = LeafFiles::new(&ca, &ca.sign(&csr_for(&["revoked.status.test"])).await, "revoked");
    let path = format!("/api/v1/certificates/{}/revoke", revoked.serial);
    let (status, body) = ca.post(&path, Some(&ca.admin_token), &json!({"reason": "keyCompromise"})).await;
    assert_eq!(status, 200, "{body}");
    let (never, pending, failed) = (fresh_serial(), fresh_serial(), fresh_serial());
    reserve(&ca, &pending).await;
    reserve(&ca, &failed).await;
    ca.db.ledger().record_failed(&failed).await.unwrap();

    let expected = [
        (hex::decode(&leaf.serial).unwrap(), CertStatus::Good),
        (hex::decode(&revoked.serial).unwrap(), CertStatus::Revoked),
        (never, CertStatus::Unknown),
        (pending.clone(), CertStatus::Unknown),
        (failed, CertStatus::Unknown),
    ];
    let url = ca.http_url("/ocsp");
    let template = leaf.ocsp_request(&[]);
    // One serial a request: the cached path. Asked twice, so a second
    // answer cannot come from a cache the first one filled wrongly.
    for (serial, status) in &expected {
        for round in ["first", "second"] {
            let response = post_ocsp(&url, request_for(&template, &[serial])).await;
            let got = leaf.ocsp_status_of(&response, &hex::encode(serial));
            assert_eq!(got, *status, "{} ({round} request)", hex::encode(serial));
        }
    }
    // All of them in one request: signed fresh, each answered in order.
    let serials: Vec<&[u8]> = expected.iter().map(|(serial, _)| serial.as_slice()).collect();
    let response = post_ocsp(&url, request_for(&template, &serials)).await;
    assert!(leaf.ocsp_check_response(&response).contains("Response verify OK"));
    let wanted: Vec<(String, CertStatus)> = expected.iter().map(|(s, status)| (hex::encode(s), *status)).collect();
    assert_eq!(ocsp_answers(&response), wanted);

    // The pending serial recorded as issued (the pipeline's next step) is
    // good from then on: an unknown answer is never kept.
    let audit = NewAuditEvent {
        at: ca.clock.now().unix_timestamp(),
        actor: "test".into(),
        action: "certificate.issue",
        target: hex::encode(&pending),
        detail: json!({}),
    };
    ca.db.ledger().record_issued(&pending, b"the signed certificate", &audit).await.unwrap();
    let response = post_ocsp(&url, request_for(&template, &[&pending])).await;
    assert_eq!(leaf.ocsp_status_of(&response, &hex::encode(&pending)), CertStatus::Good);
    ca.stop().await;
}
on_both_backends!(every_serial_state_gets_its_exact_ocsp_status);

/// Polls `check` until it holds, failing after `limit`; returns how long it took.
async fn within<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    started.elapsed()
}

/// Two nodes on one database: a revocation made through node A shows in
/// node B's OCSP answers (which B had cached as good) and B's CRL, within
/// a few of B's one-second revocation polls.
async fn a_revocation_on_one_node_reaches_the_others(backend: Backend) {
    // Several revocation polls and CRL checks, for a busy two-core machine.
    const LIMIT: Duration = Duration::from_secs(10);
    let Some(node_a) = TestCa::start(backend).await else { return };
    // Node B shares the database and the key files, as nodes share an HSM.
    let node_b = tessera::cli::start(node_a.config.clone(), Arc::new(SystemClock)).await.unwrap();
    let leaf = LeafFiles::new(&node_a, &node_a.sign(&csr_for(&["two-nodes.status.test"])).await, "two-nodes");
    let ocsp_b = format!("http://127.0.0.1:{}/ocsp", node_b.http_addr.port());
    let crl_b = format!("http://127.0.0.1:{}{}", node_b.http_addr.port(), crl_path(&leaf));
    let request = leaf.ocsp_request(&[]);
    let status_on_b = || async { leaf.ocsp_status_of(&post_ocsp(&ocsp_b, request.clone()).await, &leaf.serial) };
    let serial_line = format!("Serial Number: {}", leaf.serial.to_uppercase());
    let crl_on_b = || async {
        let der = reqwest::get(&crl_b).await.unwrap().bytes().await.unwrap();
        crl_text(&der, node_a.dir.path())
    };
    assert_eq!(status_on_b().await, CertStatus::Good);
    assert!(!crl_on_b().await.contains(&serial_line));

    let path = format!("/api/v1/certificates/{}/revoke", leaf.serial);
    let (status, body) = node_a.post(&path, Some(&node_a.admin_token), &json!({"reason": "keyCompromise"})).await;
    assert_eq!(status, 200, "{body}");
    let ocsp_took =
        within(LIMIT, "node B's OCSP saying revoked", || async { status_on_b().await == CertStatus::Revoked }).await;
    let crl_took =
        within(LIMIT, "node B's CRL listing the serial", || async { crl_on_b().await.contains(&serial_line) }).await;
    eprintln!("node B: OCSP revoked after {ocsp_took:?}, the CRL listed it after {crl_took:?}");
    node_b.shutdown().await;
    node_a.stop().await;
}
on_both_backends!(a_revocation_on_one_node_reaches_the_others);
