//! A node stopped mid-issuance leaves nothing stuck (issue 19.1), on
//! SQLite and PostgreSQL: the serials it reserved (for an ACME order and
//! for a REST request) and never recorded are settled as failed once the
//! wait has passed, the order ends invalid with a problem, OCSP never
//! answers `good` for the serials, and issued certificates are untouched.
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::acme::{AccountKey, AcmeClient, Responders};
use crate::common::relying_party::LeafFiles;
use crate::common::{Backend, TestCa, csr_for};
use serde_json::Value;
use tessera::clock::Clock;
use tessera::issuance::Serial;
use tessera::storage::{AuditFilter, CertificateKind, CertificateStatus, PendingCertificate, Reservation, Reserved};

/// A reservation as the issuance pipeline makes it before signing.
fn reservation(serial: &Serial, authority_id: i64, now: i64, name: &str, acme_order: Option<i64>) -> Reservation {
    Reservation {
        pending: PendingCertificate {
            serial: serial.as_bytes().to_vec(),
            authority_id,
            not_before: now - 60,
            not_after: now + 3600,
            created_at: now,
            kind: CertificateKind::Workload,
            subject: None,
            sans: format!("dns:{name}"),
            requester: "token:admin".into(),
            key_type: Some("ecdsa-p256".into()),
            policy: Some("default".into()),
            crl_shard: None,
            spki_hash: Serial::random().as_bytes().to_vec(),
        },
        acme_order,
    }
}

/// The status line `openssl ocsp` prints for `serial`, asked of the
/// responder by serial alone (no certificate was ever delivered).
pub(crate) fn ocsp_by_serial(files: &LeafFiles, url: &str, serial: &Serial) -> String {
    let out = Command::new("openssl")
        .args(["ocsp", "-no_nonce", "-issuer"])
        .arg(&files.issuer)
        .args(["-serial", &format!("0x{}", serial.to_hex()), "-url", url, "-CAfile"])
        .arg(&files.root)
        .arg("-verify_other")
        .arg(&files.issuer)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("Response verify OK"), "{text}");
    text.lines().find(|l| l.starts_with("0x")).unwrap_or_else(|| panic!("no status line in {text}")).to_owned()
}

async fn status_of(ca: &TestCa, serial: &Serial) -> CertificateStatus {
    ca.db.catalog().certificate(serial.as_bytes()).await.unwrap().status
}

async fn settle_job_runs(ca: &TestCa) -> i64 {
    let (status, jobs) = ca.get("/api/v1/jobs", Some(&ca.admin_token)).await;
    assert_eq!(status, 200, "{jobs}");
    let job = jobs["items"].as_array().unwrap().iter().find(|j| j["name"] == "settle-interrupted-issuance").cloned();
    job.map_or(0, |j| j["runs"].as_i64().unwrap())
}

async fn an_issuance_a_stopped_node_left_pending_is_settled(backend: Backend) {
    let responders = Responders::start().await;
    let Some(ca) = TestCa::start_acme(backend, responders.overrides()).await else { return };
    let (kid, hmac) = ca.eab_key(false).await;
    let mut client = AcmeClient::new(&ca, AccountKey::es256()).await;
    client.register(&kid, &hmac).await;
    let (order_url, _) = client.ready_order(&responders, &["stopped.settle.test"]).await;
    let order_id: i64 = order_url.rsplit('/').next().unwrap().parse().unwrap();
    let kept = ca.sign(&csr_for(&["kept.settle.test"])).await;
    let kept_serial: Serial = kept["serial"].as_str().unwrap().parse().unwrap();
    let authority_id = kept["authority_id"].as_i64().unwrap();

    // What a node stopped between reserving and recording leaves: the
    // reservations the pipeline makes before it signs, for the ACME order
    // (which moves to processing in the same commit) and for a REST request.
    let (acme_serial, rest_serial) = (Serial::random(), Serial::random());
    let now = ca.clock.unix();
    let reservations = [
        reservation(&acme_serial, authority_id, now, "stopped.settle.test", Some(order_id)),
        reservation(&rest_serial, authority_id, now, "rest.settle.test", None),
    ];
    assert_eq!(ca.db.ledger().reserve_certificates(&reservations).await.unwrap(), [Reserved::Done, Reserved::Done]);
    let polled = client.post(&order_url, None).await;
    assert_eq!(polled.body["status"], "processing", "{polled:?}");

    // Within the wait the settling job leaves them alone.
    let before = settle_job_runs(&ca).await;
    ca.clock.advance(time::Duration::seconds(60));
    let deadline = Instant::now() + Duration::from_secs(30);
    while settle_job_runs(&ca).await <= before {
        assert!(Instant::now() < deadline, "the settling job did not run");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(status_of(&ca, &acme_serial).await, CertificateStatus::Pending);
    assert_eq!(client.post(&order_url, None).await.body["status"], "processing");

    // Past it, the next run settles both, and the order ends invalid.
    ca.clock.advance(time::Duration::seconds(90));
    let deadline = Instant::now() + Duration::from_secs(30);
    let order: Value = loop {
        let polled = client.post(&order_url, None).await;
        if polled.body["status"] != "processing" {
            break polled.body;
        }
        assert!(Instant::now() < deadline, "the order stayed processing: {polled:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(order["status"], "invalid", "{order}");
    assert_eq!(order["error"]["type"], "urn:ietf:params:acme:error:serverInternal", "{order}");
    assert!(order["error"]["detail"].as_str().unwrap().contains("place a new order"), "{order}");
    assert!(order.get("certificate").is_none(), "{order}");
    for serial in [&acme_serial, &rest_serial] {
        assert_eq!(status_of(&ca, serial).await, CertificateStatus::Failed, "{serial}");
    }
    assert_eq!(status_of(&ca, &kept_serial).await, CertificateStatus::Issued);
    let filter = AuditFilter { action: Some("certificate.abandon".into()), ..AuditFilter::default() };
    let events = ca.db.admin().list_audit_events(&filter, 10).await.unwrap();
    let mut targets: Vec<String> = events.iter().map(|e| e.target.clone()).collect();
    targets.sort();
    let mut expected = vec![acme_serial.to_hex(), rest_serial.to_hex()];
    expected.sort();
    assert_eq!(targets, expected);

    // A serial that may have been signed and never delivered is not good.
    let files = LeafFiles::new(&ca, &kept, "settle");
    let url = files.ocsp_url();
    for serial in [&acme_serial, &rest_serial] {
        let line = ocsp_by_serial(&files, &url, serial);
        assert!(line.ends_with(": unknown"), "{line}");
    }
    assert!(ocsp_by_serial(&files, &url, &kept_serial).ends_with(": good"));
    ca.stop().await;
}
on_both_backends!(an_issuance_a_stopped_node_left_pending_is_settled);
