//! ACME beyond issuance: cert-manager's exact call sequence
//! (../shared/CERT-MANAGER.md), account updates, key change, deactivation,
//! revocation by account key and by certificate key, ARI and `replaces`,
//! the orders list and rate limits.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::acme::{AccountKey, AcmeClient, Responders, ari_cert_id, b64, eab_binding};
use common::{Backend, TestCa};
use instant_acme::{
    Account, ChallengeType, ExternalAccountKey, Identifier, NewAccount, NewOrder, RetryPolicy, RevocationReason,
    RevocationRequest,
};
use serde_json::json;

fn pem_blocks(text: &str) -> Vec<pem::Pem> {
    pem::parse_many(text).unwrap()
}

/// A P-256 key as PKCS#8 and the CSR for `names` made with it.
fn keyed_csr(names: &[&str]) -> (Vec<u8>, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let csr = params.serialize_request(&key).unwrap();
    (key.serialize_der(), b64(csr.der()))
}

async fn cert_manager_replay(backend: Backend) {
    let responders = Responders::start().await;
    let Some(ca) = TestCa::start_acme(backend, responders.overrides()).await else { return };
    let (kid, hmac) = ca.eab_key(false).await;

    // 1. GET directory; HEAD newNonce.
    let directory = ca.client.get(ca.acme_directory()).send().await.unwrap();
    assert_eq!(directory.status(), 200);
    let mut client = AcmeClient::new(&ca, AccountKey::rs256()).await;
    assert!(client.directory["newOrder"].is_string());
    assert!(client.directory["meta"].get("termsOfService").is_none());
    let head = ca.client.head(client.url("newNonce")).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.headers().contains_key("replay-nonce"));

    // 2. newAccount signed with an RSA-2048 jwk (RS256), HS256 EAB, no
    //    termsOfServiceAgreed; then the onlyReturnExisting lookup.
    let new_account = client.url("newAccount");
    let binding = eab_binding("HS256", &kid, &hmac, &client.key.jwk(), &new_account);
    let created = client
        .post(&new_account, Some(&json!({"contact": ["mailto:ops@tessera.test"], "externalAccountBinding": binding})))
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    let existing = client.post(&new_account, Some(&json!({"onlyReturnExisting": true}))).await;
    assert_eq!(existing.status, 200, "{existing:?}");
    assert_eq!(existing.location(), created.location());
    client.kid = Some(existing.location());

    // 3. newOrder with notAfter only: exactly 201 and a Location.
    let not_after = time::OffsetDateTime::now_utc() + time::Duration::hours(2);
    let not_after_text = not_after.format(&time::format_description::well_known::Rfc3339).unwrap();
    let order = client
        .post(
            &client.url("newOrder"),
            Some(&json!({"identifiers": [{"type": "dns", "value": "cm.lifecycle.test"}], "notAfter": not_after_text})),
        )
        .await;
    assert_eq!(order.status, 201, "{order:?}");
    let order_url = order.location();
    assert!(order.body["notAfter"].is_string());

    // 4-5. Read the authorization, answer http-01, POST {} to the
    //      challenge, poll the authorization.
    let authz_url = order.body["authorizations"][0].as_str().unwrap().to_owned();
    let authz = client.post(&authz_url, None).await;
    assert_eq!(authz.status, 200);
    assert_eq!(authz.body["identifier"], json!({"type": "dns", "value": "cm.lifecycle.test"}));
    let types: Vec<&str> =
        authz.body["challenges"].as_array().unwrap().iter().map(|c| c["type"].as_str().unwrap()).collect();
    assert!(types.contains(&"http-01") && types.contains(&"dns-01"), "{types:?}");
    let challenge =
        authz.body["challenges"].as_array().unwrap().iter().find(|c| c["type"] == "http-01").unwrap().clone();
    let token = challenge["token"].as_str().unwrap();
    responders.serve_http01(token, &client.key_authorization(token));
    let accepted = client.post(challenge["url"].as_str().unwrap(), Some(&json!({}))).await;
    assert!(matches!(accepted.status, 200 | 202), "{accepted:?}");
    let valid = client.poll(&authz_url).await;
    assert_eq!(valid.body["status"], "valid", "{valid:?}");

    // 6. Order ready; finalize answers exactly 200 with a Location to poll.
    let ready = client.post(&order_url, None).await;
    assert_eq!(ready.body["status"], "ready");
    let (_, csr) = keyed_csr(&["cm.lifecycle.test"]);
    let finalized = client.post(ready.body["finalize"].as_str().unwrap(), Some(&json!({"csr": csr}))).await;
    assert_eq!(finalized.status, 200, "{finalized:?}");
    let polled = client.poll(&finalized.location()).await;
    assert_eq!(polled.body["status"], "valid", "{polled:?}");

    // 7. The chain: PEM, leaf first, CERTIFICATE blocks only, at most five.
    let chain = client.post(polled.body["certificate"].as_str().unwrap(), None).await;
    assert_eq!(chain.status, 200);
    assert_eq!(chain.header("content-type").as_deref(), Some("application/pem-certificate-chain"));
    let blocks = pem_blocks(&chain.text);
    assert!((2..=5).contains(&blocks.len()) && blocks.iter().all(|b| b.tag() == "CERTIFICATE"));
    let (_, leaf) = x509_parser::parse_x509_certificate(blocks[0].contents()).unwrap();
    assert!(!leaf.is_ca());
    let gap = (leaf.validity().not_after.timestamp() - not_after.unix_timestamp()).abs();
    assert!(gap < 120, "notAfter honoured within two minutes, off by {gap}s");
    ca.stop().await;
}
on_both_backends!(cert_manager_replay);

async fn instant_account(ca: &TestCa) -> Account {
    let (kid, hmac) = ca.eab_key(false).await;
    let eab = ExternalAccountKey::new(kid, &URL_SAFE_NO_PAD.decode(hmac).unwrap());
    let new = NewAccount { contact: &[], terms_of_service_agreed: true, only_return_existing: false };
    Account::builder_with_root(ca.root_pem_path())
        .unwrap()
        .create(&new, ca.acme_directory(), Some(&eab))
        .await
        .unwrap()
        .0
}

async fn instant_issue(account: &Account, responders: &Responders, name: &str) -> String {
    let identifiers = [Identifier::Dns(name.into())];
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await.unwrap();
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.unwrap();
        let mut challenge = authz.challenge(ChallengeType::Http01).unwrap();
        responders.serve_http01(&challenge.token, challenge.key_authorization().as_str());
        challenge.set_ready().await.unwrap();
    }
    let retries = RetryPolicy::new().initial_delay(Duration::from_millis(100)).timeout(Duration::from_secs(30));
    order.poll_ready(&retries).await.unwrap();
    order.finalize().await.unwrap();
    order.poll_certificate(&retries).await.unwrap()
}

async fn certificate_status(ca: &TestCa, der: &[u8]) -> serde_json::Value {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let (status, body) =
        ca.get(&format!("/api/v1/certificates/{}", hex::encode(cert.raw_serial())), Some(&ca.admin_token)).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn account_key_change_revocation_and_deactivation(backend: Backend) {
    let responders = Responders::start().await;
    let Some(ca) = TestCa::start_acme(backend, responders.overrides()).await else { return };
    let mut account = instant_account(&ca).await;
    account.update_contacts(&["mailto:new@tessera.test"]).await.unwrap();

    // Key change: the old key stops working, the new one orders.
    let first = instant_issue(&account, &responders, "before.lifecycle.test").await;
    let _credentials = account.update_key().await.unwrap();
    let second = instant_issue(&account, &responders, "after.lifecycle.test").await;

    // Revocation signed by the account, with a reason; again: alreadyRevoked.
    let der = pem_blocks(&first)[0].contents().to_vec();
    let cert = rustls::pki_types::CertificateDer::from(der.clone());
    account
        .revoke(&RevocationRequest { certificate: &cert, reason: Some(RevocationReason::KeyCompromise) })
        .await
        .unwrap();
    let record = certificate_status(&ca, &der).await;
    assert_eq!(
        (record["status"].as_str(), record["revocation_reason"].as_str()),
        (Some("revoked"), Some("keyCompromise"))
    );
    let again = account.revoke(&RevocationRequest { certificate: &cert, reason: None }).await.unwrap_err();
    assert!(again.to_string().contains("alreadyRevoked"), "{again}");
    let bad_reason = pem_blocks(&second)[0].contents().to_vec();
    let bad_reason = rustls::pki_types::CertificateDer::from(bad_reason);
    let refused = account
        .revoke(&RevocationRequest { certificate: &bad_reason, reason: Some(RevocationReason::CaCompromise) })
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("badRevocationReason"), "{refused}");
    let (_, audit) = ca.get("/api/v1/audit-events?action=certificate.revoke", Some(&ca.admin_token)).await;
    assert!(audit["items"][0]["actor"].as_str().unwrap().starts_with("acme:account:"), "{audit}");

    // Deactivation: the account can order nothing more.
    let same = account.clone();
    account.deactivate().await.unwrap();
    let identifiers = [Identifier::Dns("late.lifecycle.test".into())];
    let Err(refused) = same.new_order(&NewOrder::new(&identifiers)).await else {
        panic!("a deactivated account ordered")
    };
    assert!(refused.to_string().contains("unauthorized"), "{refused}");
    ca.stop().await;
}
on_both_backends!(account_key_change_revocation_and_deactivation);

async fn revocation_signed_by_the_certificate_key(backend: Backend) {
    let responders = Responders::start().await;
    let Some(ca) = TestCa::start_acme(backend, responders.overrides()).await else { return };
    let (kid, hmac) = ca.eab_key(false).await;
    let mut client = AcmeClient::new(&ca, AccountKey::es256()).await;
    client.register(&kid, &hmac).await;
    let (_, ready) = client.ready_order(&responders, &["own-key.lifecycle.test"]).await;
    let (pkcs8, csr) = keyed_csr(&["own-key.lifecycle.test"]);
    let done = client.post(ready["finalize"].as_str().unwrap(), Some(&json!({"csr": csr}))).await;
    let chain = client.post(done.body["certificate"].as_str().unwrap(), None).await;
    let der = pem_blocks(&chain.text)[0].contents().to_vec();

    // Someone holding only the certificate's key revokes it (certbot's way).
    let mut holder = AcmeClient::new(&ca, AccountKey::es256_from_pkcs8(&pkcs8)).await;
    holder.kid = None;
    let wrong = AcmeClient::new(&ca, AccountKey::es256()).await;
    let refused = wrong.post(&wrong.url("revokeCert"), Some(&json!({"certificate": b64(&der)}))).await;
    refused.assert_problem("unauthorized", 403);
    let revoked = holder.post(&holder.url("revokeCert"), Some(&json!({"certificate": b64(&der), "reason": 1}))).await;
    assert_eq!(revoked.status, 200, "{revoked:?}");
    assert_eq!(certificate_status(&ca, &der).await["status"], "revoked");
    ca.stop().await;
}
on_both_backends!(revocation_signed_by_the_certificate_key);

async fn renewal_info_and_replaces(backend: Backend) {
    let responders = Responders::start().await;
    let Some(ca) = TestCa::start_acme(backend, responders.overrides()).await else { return };
    let (kid, hmac) = ca.eab_key(false).await;
    let mut client = AcmeClient::new(&ca, AccountKey::es256()).await;
    client.register(&kid, &hmac).await;
    let (_, ready) = client.ready_order(&responders, &["ari.lifecycle.test"]).await;
    let (_, csr) = keyed_csr(&["ari.lifecycle.test"]);
    let done = client.post(ready["finalize"].as_str().unwrap(), Some(&json!({"csr": csr}))).await;
    let chain = client.post(done.body["certificate"].as_str().unwrap(), None).await;
    let der = pem_blocks(&chain.text)[0].contents().to_vec();
    let id = ari_cert_id(&der);

    // Unauthenticated GET: a window inside the certificate's life, Retry-After.
    let url = format!("{}/{id}", client.url("renewalInfo"));
    let info = ca.client.get(&url).send().await.unwrap();
    assert_eq!(info.status(), 200);
    assert!(info.headers().contains_key("retry-after"));
    let body: serde_json::Value = info.json().await.unwrap();
    let parse = |v: &serde_json::Value| {
        time::OffsetDateTime::parse(v.as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap()
    };
    let (start, end) = (parse(&body["suggestedWindow"]["start"]), parse(&body["suggestedWindow"]["end"]));
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert!(start < end && start.unix_timestamp() > cert.validity().not_before.timestamp());
    assert!(end.unix_timestamp() < cert.validity().not_after.timestamp());
    assert_eq!(ca.client.get(format!("{}/AAAA.AAAA", client.url("renewalInfo"))).send().await.unwrap().status(), 404);

    // newOrder with replaces links the two; a second replacement is refused.
    let replacing = json!({"identifiers": [{"type": "dns", "value": "ari.lifecycle.test"}], "replaces": id});
    let order = client.post(&client.url("newOrder"), Some(&replacing)).await;
    assert_eq!(order.status, 201, "{order:?}");
    assert_eq!(order.body["replaces"], json!(id), "the order echoes replaces (RFC 9773 §5)");
    assert_eq!(client.post(&order.location(), None).await.body["replaces"], json!(id));
    client.post(&client.url("newOrder"), Some(&replacing)).await.assert_problem("alreadyReplaced", 409);

    // Once revoked, the window is now.
    let revoked = client.post(&client.url("revokeCert"), Some(&json!({"certificate": b64(&der)}))).await;
    assert_eq!(revoked.status, 200);
    let body: serde_json::Value = ca.client.get(&url).send().await.unwrap().json().await.unwrap();
    assert!(parse(&body["suggestedWindow"]["end"]) <= time::OffsetDateTime::now_utc());
    ca.stop().await;
}
on_both_backends!(renewal_info_and_replaces);

async fn orders_list_pages_and_rate_limits(backend: Backend) {
    let responders = Responders::start().await;
    let Some(ca) = TestCa::start_acme_with(backend, responders.overrides(), |config| {
        config.acme.directories[0].orders_per_window = 3;
    })
    .await
    else {
        return;
    };
    let (kid, hmac) = ca.eab_key(false).await;
    let mut client = AcmeClient::new(&ca, AccountKey::es256()).await;
    let account = client.register(&kid, &hmac).await;
    let payload = json!({"identifiers": [{"type": "dns", "value": "rate.lifecycle.test"}]});
    for _ in 0..3 {
        assert_eq!(client.post(&client.url("newOrder"), Some(&payload)).await.status, 201);
    }
    let limited = client.post(&client.url("newOrder"), Some(&payload)).await;
    limited.assert_problem("rateLimited", 429);
    assert!(limited.header("retry-after").is_some());

    let orders = client.post(account.body["orders"].as_str().unwrap(), None).await;
    assert_eq!(orders.status, 200);
    let urls = orders.body["orders"].as_array().unwrap().clone();
    assert_eq!(urls.len(), 3);

    // Deactivating an authorization makes its order invalid (§7.5.2).
    let order = client.post(urls[0].as_str().unwrap(), None).await;
    let authz_url = order.body["authorizations"][0].as_str().unwrap().to_owned();
    let deactivated = client.post(&authz_url, Some(&json!({"status": "deactivated"}))).await;
    assert_eq!(deactivated.body["status"], "deactivated", "{deactivated:?}");
    assert_eq!(client.post(urls[0].as_str().unwrap(), None).await.body["status"], "invalid");
    ca.stop().await;
}
on_both_backends!(orders_list_pages_and_rate_limits);

async fn not_before_in_the_future_is_honoured(backend: Backend) {
    let responders = Responders::start().await;
    let Some(ca) = TestCa::start_acme(backend, responders.overrides()).await else { return };
    let (kid, hmac) = ca.eab_key(false).await;
    let mut client = AcmeClient::new(&ca, AccountKey::es256()).await;
    client.register(&kid, &hmac).await;
    let rfc3339 = |t: time::OffsetDateTime| t.format(&time::format_description::well_known::Rfc3339).unwrap();
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let (not_before, not_after) = (now + time::Duration::hours(6), now + time::Duration::hours(8));
    let identifiers = json!([{"type": "dns", "value": "later.lifecycle.test"}]);

    // Too far ahead, or a lifetime past the policy's cap counted from the start: refused.
    let far = json!({"identifiers": identifiers, "notBefore": rfc3339(now + time::Duration::days(60))});
    client.post(&client.url("newOrder"), Some(&far)).await.assert_problem("malformed", 400);
    let long = json!({"identifiers": identifiers, "notBefore": rfc3339(not_before),
        "notAfter": rfc3339(not_before + time::Duration::days(400))});
    client.post(&client.url("newOrder"), Some(&long)).await.assert_problem("malformed", 400);

    let payload = json!({"identifiers": identifiers, "notBefore": rfc3339(not_before), "notAfter": rfc3339(not_after)});
    let (_, ready) = client.ready_order_with(&responders, &payload).await;
    assert_eq!(ready["notBefore"], rfc3339(not_before));
    let (_, csr) = keyed_csr(&["later.lifecycle.test"]);
    let finalized = client.post(ready["finalize"].as_str().unwrap(), Some(&json!({"csr": csr}))).await;
    let polled = client.poll(&finalized.location()).await;
    let chain = client.post(polled.body["certificate"].as_str().unwrap(), None).await;
    let blocks = pem_blocks(&chain.text);
    let (_, leaf) = x509_parser::parse_x509_certificate(blocks[0].contents()).unwrap();
    assert_eq!(leaf.validity().not_before.timestamp(), not_before.unix_timestamp());
    assert_eq!(leaf.validity().not_after.timestamp(), not_after.unix_timestamp());
    ca.stop().await;
}
on_both_backends!(not_before_in_the_future_is_honoured);

/// The inner JWS of a key change (§7.3.5), signed by the new key.
fn key_change_body(client: &AcmeClient, new_key: &AccountKey, url: &str) -> serde_json::Value {
    let inner_header = json!({"alg": new_key.alg(), "jwk": new_key.jwk(), "url": url});
    let payload = json!({"account": client.kid.clone().unwrap(), "oldKey": client.key.jwk()});
    common::acme::flattened(new_key, &inner_header, Some(&payload))
}

async fn key_change_to_a_key_in_use_is_a_conflict(backend: Backend) {
    let responders = Responders::start().await;
    let Some(ca) = TestCa::start_acme(backend, responders.overrides()).await else { return };
    let (kid, hmac) = ca.eab_key(true).await;
    let mut alice = AcmeClient::new(&ca, AccountKey::es256()).await;
    alice.register(&kid, &hmac).await;
    let mut bob = AcmeClient::new(&ca, AccountKey::eddsa()).await;
    bob.register(&kid, &hmac).await;
    let url = alice.url("keyChange");

    // Bob's key is taken: 409 with the holder's Location.
    let conflict = alice.post(&url, Some(&key_change_body(&alice, &bob.key, &url))).await;
    assert_eq!(conflict.status, 409, "{conflict:?}");
    assert_eq!(conflict.location(), bob.kid.clone().unwrap());

    // A fresh key works; the old one is then unknown, the new one signs.
    let fresh = AccountKey::es256();
    let changed = alice.post(&url, Some(&key_change_body(&alice, &fresh, &url))).await;
    assert_eq!(changed.status, 200, "{changed:?}");
    let stale = alice.post(alice.kid.as_deref().unwrap(), None).await;
    stale.assert_problem("malformed", 400);
    alice.key = fresh;
    assert_eq!(alice.post(alice.kid.as_deref().unwrap(), None).await.status, 200);
    ca.stop().await;
}
on_both_backends!(key_change_to_a_key_in_use_is_a_conflict);
