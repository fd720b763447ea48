//! Keys revoked as compromised stay dead: once a certificate is revoked for
//! keyCompromise (over ACME or the admin API), no certificate is issued for
//! its key again, for any account or token, and the key's other certificates
//! are revoked with it (listing, OCSP, audit). Other reasons block nothing;
//! a certificate revoked for another reason can still be revoked for
//! keyCompromise. Races: issuance of the same key while it is revoked, and
//! two revocations of one certificate at once. And who may revoke with
//! which reason (RFC 8555 §7.6, RFC 5280 §5.3.1).
use crate::common::acme::{AccountKey, AcmeClient, Responders, ari_cert_id, b64};
use crate::common::relying_party::LeafFiles;
use crate::common::{Backend, TestCa, csr_with_key};
use serde_json::{Value, json};

/// A CSR (base64url DER, as ACME finalize takes it) for `names` with `key`.
fn acme_csr(names: &[&str], key: &rcgen::KeyPair) -> String {
    let pem = csr_with_key(names, key);
    b64(pem::parse(pem).unwrap().contents())
}

/// A registered ES256 account on a fresh EAB key.
async fn account(ca: &TestCa) -> AcmeClient {
    let (kid, hmac) = ca.eab_key(false).await;
    let mut client = AcmeClient::new(ca, AccountKey::es256()).await;
    client.register(&kid, &hmac).await;
    client
}

/// Signs under the `default` policy with `key`; the status and the answer.
async fn sign_with(ca: &TestCa, name: &str, key: &rcgen::KeyPair) -> (u16, Value) {
    let body = json!({"policy": "default", "csr": csr_with_key(&[name], key)});
    ca.post("/api/v1/certificates", Some(&ca.admin_token), &body).await
}

async fn revoke(ca: &TestCa, serial: &str, reason: &str) -> (u16, Value) {
    ca.post(&format!("/api/v1/certificates/{serial}/revoke"), Some(&ca.admin_token), &json!({"reason": reason})).await
}

async fn certificate(ca: &TestCa, serial: &str) -> Value {
    let (status, body) = ca.get(&format!("/api/v1/certificates/{serial}"), Some(&ca.admin_token)).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// The audit events about one certificate with this action.
async fn audit_events(ca: &TestCa, action: &str, serial: &str) -> Vec<Value> {
    let path = format!("/api/v1/audit-events?action={action}&target={serial}");
    let (status, body) = ca.get(&path, Some(&ca.admin_token)).await;
    assert_eq!(status, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

fn assert_blocked_key(status: u16, body: &Value) {
    assert_eq!((status, body["type"].as_str()), (400, Some("urn:tessera:problem:blocked-key")), "{body}");
}

async fn acme_revocation_blocks_the_key_for_every_account(backend: Backend) {
    let responders = Responders::start().await;
    let Some(ca) = TestCa::start_acme(backend, responders.overrides()).await else { return };
    let alice = account(&ca).await;
    let key = rcgen::KeyPair::generate().unwrap();
    let (_, ready) = alice.ready_order(&responders, &["stolen.keys.test"]).await;
    let done = alice
        .post(ready["finalize"].as_str().unwrap(), Some(&json!({"csr": acme_csr(&["stolen.keys.test"], &key)})))
        .await;
    assert_eq!(done.body["status"], "valid", "{done:?}");
    let chain = alice.post(done.body["certificate"].as_str().unwrap(), None).await;
    let der = pem::parse_many(&chain.text).unwrap()[0].contents().to_vec();
    let revoked = alice.post(&alice.url("revokeCert"), Some(&json!({"certificate": b64(&der), "reason": 1}))).await;
    assert_eq!(revoked.status, 200, "{revoked:?}");

    // ARI says renew now; the renewal (`replaces`) must bring a new key.
    let info = ca.client.get(format!("{}/{}", alice.url("renewalInfo"), ari_cert_id(&der))).send().await.unwrap();
    let window: Value = info.json().await.unwrap();
    let end = time::OffsetDateTime::parse(
        window["suggestedWindow"]["end"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(end <= time::OffsetDateTime::now_utc(), "{window}");
    let identifiers = json!([{"type": "dns", "value": "again.keys.test"}]);
    let renewal = json!({"identifiers": identifiers, "replaces": ari_cert_id(&der)});

    // The same account (renewing) and another one: a finalize with the key
    // is refused with badPublicKey, stores nothing, and leaves the order
    // ready for a CSR with another key.
    let bob = account(&ca).await;
    for (client, payload) in [(&alice, renewal), (&bob, json!({"identifiers": identifiers}))] {
        let (order_url, ready) = client.ready_order_with(&responders, &payload).await;
        let certificates = ca.db.count_certificates().await.unwrap();
        let csr = acme_csr(&["again.keys.test"], &key);
        let refused = client.post(ready["finalize"].as_str().unwrap(), Some(&json!({"csr": csr}))).await;
        refused.assert_problem("badPublicKey", 400);
        assert_eq!(ca.db.count_certificates().await.unwrap(), certificates, "a refused key stores nothing");
        assert_eq!(client.post(&order_url, None).await.body["status"], "ready");
        let fresh = acme_csr(&["again.keys.test"], &rcgen::KeyPair::generate().unwrap());
        let issued = client.post(ready["finalize"].as_str().unwrap(), Some(&json!({"csr": fresh}))).await;
        assert_eq!(issued.body["status"], "valid", "{issued:?}");
    }

    // The admin API refuses the key as well.
    let (status, body) = sign_with(&ca, "rest.keys.test", &key).await;
    assert_blocked_key(status, &body);
    ca.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_revocation_blocks_the_key_for_every_account_on_sqlite() {
    acme_revocation_blocks_the_key_for_every_account(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_revocation_blocks_the_key_for_every_account_on_postgres() {
    acme_revocation_blocks_the_key_for_every_account(Backend::Postgres).await;
}

on_both_backends!(rest_revocation_blocks_the_key, |ca| {
    let key = rcgen::KeyPair::generate().unwrap();
    let (status, issued) = sign_with(ca, "one.keys.test", &key).await;
    assert_eq!(status, 201, "{issued}");
    let (status, body) = revoke(ca, issued["serial"].as_str().unwrap(), "keyCompromise").await;
    assert_eq!(status, 200, "{body}");

    // The revocation's CRLs are made in the background: wait for them.
    let before = crate::common::tables::Snapshot::settled(&ca.db).await;
    let (status, body) = sign_with(ca, "two.keys.test", &key).await;
    assert_blocked_key(status, &body);
    assert_eq!(ca.snapshot().await, before, "a refused key stores nothing");
    let (status, body) = sign_with(ca, "two.keys.test", &rcgen::KeyPair::generate().unwrap()).await;
    assert_eq!(status, 201, "{body}");
});

on_both_backends!(the_other_certificates_of_a_compromised_key_are_revoked, |ca| {
    let key = rcgen::KeyPair::generate().unwrap();
    let (_, first) = sign_with(ca, "first.keys.test", &key).await;
    let (_, sibling) = sign_with(ca, "sibling.keys.test", &key).await;
    let (_, other) = sign_with(ca, "other.keys.test", &rcgen::KeyPair::generate().unwrap()).await;
    let first_serial = first["serial"].as_str().unwrap();
    let sibling_serial = sibling["serial"].as_str().unwrap();
    let (status, body) = revoke(ca, first_serial, "keyCompromise").await;
    assert_eq!(status, 200, "{body}");

    // The listing shows the sibling revoked for keyCompromise, the
    // certificate of another key untouched.
    let (_, revoked) = ca.get("/api/v1/certificates?status=revoked", Some(&ca.admin_token)).await;
    let mut serials: Vec<&str> =
        revoked["items"].as_array().unwrap().iter().map(|c| c["serial"].as_str().unwrap()).collect();
    serials.sort();
    let mut expected = vec![first_serial, sibling_serial];
    expected.sort();
    assert_eq!(serials, expected, "{revoked}");
    assert_eq!(certificate(ca, sibling_serial).await["revocation_reason"], "keyCompromise");
    assert_eq!(certificate(ca, other["serial"].as_str().unwrap()).await["status"], "issued");

    // OCSP answers revoked for it at once.
    let leaf = LeafFiles::new(ca, &sibling, "sibling.keys.test");
    let out = leaf.ocsp_post(&ca.http_url("/ocsp"), &[]);
    assert!(out.contains("Response verify OK") && out.contains(": revoked"), "{out}");
    assert!(out.contains("Reason: keyCompromise"), "{out}");

    // One audit event for it, naming the certificate whose revocation it followed.
    let events = audit_events(ca, "certificate.revoke", sibling_serial).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["detail"]["same_key_as"], first_serial, "{events:?}");
    assert_eq!(events[0]["detail"]["reason"], "keyCompromise", "{events:?}");
    let original = audit_events(ca, "certificate.revoke", first_serial).await;
    assert_eq!(original[0]["detail"]["key_blocked"], true, "{original:?}");
});

on_both_backends!(other_reasons_block_nothing_until_keycompromise, |ca| {
    let key = rcgen::KeyPair::generate().unwrap();
    let (_, first) = sign_with(ca, "first.reasons.test", &key).await;
    let (_, sibling) = sign_with(ca, "sibling.reasons.test", &key).await;
    let first_serial = first["serial"].as_str().unwrap();
    let (status, body) = revoke(ca, first_serial, "superseded").await;
    assert_eq!(status, 200, "{body}");

    // Superseded: the key is still good, its other certificate live.
    let (status, later) = sign_with(ca, "later.reasons.test", &key).await;
    assert_eq!(status, 201, "{later}");
    assert_eq!(certificate(ca, sibling["serial"].as_str().unwrap()).await["status"], "issued");

    // The same certificate revoked again for keyCompromise: its reason
    // changes (its revocation time stays), the key is blocked, and the
    // key's other certificates are revoked.
    let revoked_at = certificate(ca, first_serial).await["revoked_at"].clone();
    let (status, body) = revoke(ca, first_serial, "keyCompromise").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["revocation_reason"].as_str(), &body["revoked_at"]), (Some("keyCompromise"), &revoked_at));
    for other in [&sibling, &later] {
        assert_eq!(certificate(ca, other["serial"].as_str().unwrap()).await["status"], "revoked");
    }
    let (status, body) = sign_with(ca, "blocked.reasons.test", &key).await;
    assert_blocked_key(status, &body);

    // Once for keyCompromise, never again.
    let (status, body) = revoke(ca, first_serial, "keyCompromise").await;
    assert_eq!((status, body["type"].as_str()), (409, Some("urn:tessera:problem:already-revoked")), "{body}");
});

on_both_backends!(issuance_racing_a_compromise_never_leaves_a_live_certificate, |ca| {
    let key = rcgen::KeyPair::generate().unwrap();
    let (_, first) = sign_with(ca, "race.keys.test", &key).await;
    let first_serial = first["serial"].as_str().unwrap().to_owned();
    let signs = (0..24).map(|i| {
        let key = &key;
        async move { sign_with(ca, &format!("r{i}.keys.test"), key).await }
    });
    let (answers, revoked) = tokio::join!(futures::future::join_all(signs), async {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        revoke(ca, &first_serial, "keyCompromise").await
    });
    assert_eq!(revoked.0, 200, "{}", revoked.1);

    // Every certificate of the key that left is revoked by now; every
    // other request was refused for the key.
    for (status, body) in answers {
        match status {
            201 => {
                let serial = body["serial"].as_str().unwrap();
                assert_eq!(certificate(ca, serial).await["status"], "revoked", "{serial} is live");
            }
            _ => assert_blocked_key(status, &body),
        }
    }
    let (_, live) = ca.get("/api/v1/certificates?status=issued&limit=500", Some(&ca.admin_token)).await;
    let names =
        |c: &Value| c["identifiers"].as_array().unwrap().iter().map(|id| id["value"].to_string()).collect::<String>();
    assert!(live["items"].as_array().unwrap().iter().all(|c| !names(c).contains(".keys.test")), "{live}");
});

on_both_backends!(two_revocations_of_one_certificate_at_once_count_once, |ca| {
    let (_, issued) = sign_with(ca, "twice.keys.test", &rcgen::KeyPair::generate().unwrap()).await;
    let serial = issued["serial"].as_str().unwrap();
    let (a, b) = tokio::join!(revoke(ca, serial, "keyCompromise"), revoke(ca, serial, "keyCompromise"));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "{a:?} {b:?}");
    assert_eq!(audit_events(ca, "certificate.revoke", serial).await.len(), 1);
});

/// ACME revocation signed by the certificate's own key: whatever reason it
/// names, it proves the key is out of its subscriber's hands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_signed_by_the_certificate_key_is_a_key_compromise() {
    let responders = Responders::start().await;
    let ca = TestCa::start_acme(Backend::Sqlite, responders.overrides()).await.unwrap();
    let alice = account(&ca).await;
    let key = rcgen::KeyPair::generate().unwrap();
    let (_, ready) = alice.ready_order(&responders, &["holder.keys.test"]).await;
    let done = alice
        .post(ready["finalize"].as_str().unwrap(), Some(&json!({"csr": acme_csr(&["holder.keys.test"], &key)})))
        .await;
    let chain = alice.post(done.body["certificate"].as_str().unwrap(), None).await;
    let der = pem::parse_many(&chain.text).unwrap()[0].contents().to_vec();

    let holder = AcmeClient::new(&ca, AccountKey::es256_from_pkcs8(&key.serialize_der())).await;
    let superseded = json!({"certificate": b64(&der), "reason": 4});
    let revoked = holder.post(&holder.url("revokeCert"), Some(&superseded)).await;
    assert_eq!(revoked.status, 200, "{revoked:?}");
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let record = certificate(&ca, &hex::encode(cert.raw_serial())).await;
    assert_eq!(record["revocation_reason"], "keyCompromise", "{record}");
    let (status, body) = sign_with(&ca, "holder2.keys.test", &key).await;
    assert_blocked_key(status, &body);
    ca.stop().await;
}

// Certificates stored before key hashes get theirs at start, and a key
// revoked for keyCompromise before then is blocked, its other certificates
// revoked by the revocation poll (with the actor `tessera`).
on_both_backends!(keys_compromised_before_the_upgrade_are_blocked_at_start, |ca| {
    let key = rcgen::KeyPair::generate().unwrap();
    let (_, first) = sign_with(ca, "old.upgrade.test", &key).await;
    let (_, sibling) = sign_with(ca, "sibling.upgrade.test", &key).await;
    let (_, other) = sign_with(ca, "other.upgrade.test", &rcgen::KeyPair::generate().unwrap()).await;
    let first_serial = first["serial"].as_str().unwrap();
    let sibling_serial = sibling["serial"].as_str().unwrap();

    // The rows as the previous version left them: no key hashes, and the
    // first certificate revoked for keyCompromise an hour ago, no key blocked.
    let blob = match ca.db.backend() {
        "sqlite" => format!("X'{first_serial}'"),
        _ => format!("decode('{first_serial}', 'hex')"),
    };
    ca.db.execute_raw("UPDATE certificates SET spki_hash = NULL").await.unwrap();
    let an_hour_ago = time::OffsetDateTime::now_utc().unix_timestamp() - 3600;
    ca.db
        .execute_raw(&format!(
            "UPDATE certificates SET status = 3, revoked_at = {an_hour_ago}, revocation_reason = 1 WHERE serial = {blob}"
        ))
        .await
        .unwrap();
    assert_eq!(sign_with(ca, "before.upgrade.test", &key).await.0, 201, "no key is blocked yet");

    let hashed = tessera::issuance::backfill_key_hashes(&ca.db.ledger()).await.unwrap();
    assert!(hashed >= 4, "{hashed}");
    assert_eq!(tessera::issuance::backfill_key_hashes(&ca.db.ledger()).await.unwrap(), 0, "done once");
    let (status, body) = sign_with(ca, "after.upgrade.test", &key).await;
    assert_blocked_key(status, &body);

    for _ in 0..50 {
        if certificate(ca, sibling_serial).await["status"] == "revoked" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(certificate(ca, sibling_serial).await["status"], "revoked");
    let events = audit_events(ca, "certificate.revoke", sibling_serial).await;
    assert_eq!(
        (events[0]["actor"].as_str(), &events[0]["detail"]["same_key_as"]),
        (Some("tessera"), &json!(first_serial))
    );
    assert_eq!(certificate(ca, other["serial"].as_str().unwrap()).await["status"], "issued");
});

/// RFC 8555 §7.6: an account that holds authorizations for every name of a
/// certificate it did not order may revoke it, for cessationOfOperation
/// only: it has not shown the key, so it cannot block it.
async fn an_account_holding_the_names_revokes_without_blocking_the_key(backend: Backend) {
    let responders = Responders::start().await;
    let Some(ca) = TestCa::start_acme(backend, responders.overrides()).await else { return };
    let names = ["held.keys.test", "*.held.keys.test"];
    let alice = account(&ca).await;
    let key = rcgen::KeyPair::generate().unwrap();
    let identifiers: Vec<Value> = names.iter().map(|n| json!({"type": "dns", "value": n})).collect();
    let order = json!({"identifiers": identifiers});
    let (_, ready) = alice.ready_order_with(&responders, &order).await;
    let done = alice.post(ready["finalize"].as_str().unwrap(), Some(&json!({"csr": acme_csr(&names, &key)}))).await;
    let chain = alice.post(done.body["certificate"].as_str().unwrap(), None).await;
    let der = pem::parse_many(&chain.text).unwrap()[0].contents().to_vec();
    let request = json!({"certificate": b64(&der), "reason": 1});

    // Carol holds no authorization for the names; Bob has validated them.
    let carol = account(&ca).await;
    carol.post(&carol.url("revokeCert"), Some(&request)).await.assert_problem("unauthorized", 403);
    let bob = account(&ca).await;
    bob.ready_order_with(&responders, &order).await;
    let revoked = bob.post(&bob.url("revokeCert"), Some(&request)).await;
    assert_eq!(revoked.status, 200, "{revoked:?}");
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let record = certificate(&ca, &hex::encode(cert.raw_serial())).await;
    assert_eq!(record["revocation_reason"], "cessationOfOperation", "{record}");
    assert_eq!(sign_with(&ca, "still.keys.test", &key).await.0, 201, "the key is not blocked");
    ca.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_holding_the_names_revokes_without_blocking_the_key_on_sqlite() {
    an_account_holding_the_names_revokes_without_blocking_the_key(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_holding_the_names_revokes_without_blocking_the_key_on_postgres() {
    an_account_holding_the_names_revokes_without_blocking_the_key(Backend::Postgres).await;
}

// Reasons RFC 5280 leaves unused (7), certificate holds (6), delta-CRL
// removals (8) and the CA reasons are refused over ACME and the admin API,
// and the certificate stays issued.
on_both_backends!(reasons_a_leaf_cannot_have_are_refused, |ca| {
    let key = rcgen::KeyPair::generate().unwrap();
    let (_, issued) = sign_with(ca, "reasons.keys.test", &key).await;
    let serial = issued["serial"].as_str().unwrap();
    let der = pem::parse(issued["certificate"].as_str().unwrap()).unwrap().contents().to_vec();
    let holder = AcmeClient::new(ca, AccountKey::es256_from_pkcs8(&key.serialize_der())).await;
    for code in [2, 6, 7, 8, 10, 11, -1] {
        let refused =
            holder.post(&holder.url("revokeCert"), Some(&json!({"certificate": b64(&der), "reason": code}))).await;
        refused.assert_problem("badRevocationReason", 400);
    }
    let huge = holder.post(&holder.url("revokeCert"), Some(&json!({"certificate": b64(&der), "reason": 70000}))).await;
    huge.assert_problem("malformed", 400);
    for reason in ["certificateHold", "removeFromCRL", "cACompromise", "aACompromise", "unused"] {
        let (status, body) = revoke(ca, serial, reason).await;
        assert_eq!((status, body["type"].as_str()), (400, Some("urn:tessera:problem:malformed-request")), "{body}");
    }
    assert_eq!(certificate(ca, serial).await["status"], "issued");
});
