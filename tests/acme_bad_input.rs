//! Requests no well-behaved client sends, made with a hand-rolled JWS
//! client: each gets the right ACME problem type with its status equal to
//! the HTTP status, and stores nothing (every stored row is compared before
//! and after; the one write a refused request may make is spending its
//! nonce).
#![allow(clippy::unwrap_used)]

mod common;

use common::acme::{AccountKey, AcmeClient, Reply, Responders, b64, eab_binding, flattened};
use common::{Backend, TestCa, csr_for};
use serde_json::{Value, json};

/// Runs one refused request and checks its problem and that nothing changed.
async fn refused(
    ca: &TestCa,
    case: &str,
    kind: &str,
    status: u16,
    reply: impl std::future::Future<Output = Reply>,
) -> Reply {
    let before = ca.snapshot().await;
    let reply = reply.await;
    assert_eq!(reply.status, status, "{case}: {reply:?}");
    reply.assert_problem(kind, status);
    assert!(reply.header("replay-nonce").is_some(), "{case}: errors carry a nonce too");
    before.assert_unchanged(&ca.snapshot().await, &["acme_used_nonces"], case);
    reply
}

fn csr_der(names: &[&str]) -> String {
    let pem_text = csr_for(names);
    b64(pem::parse(pem_text).unwrap().contents())
}

async fn each_bad_request_gets_its_problem_and_stores_nothing(backend: Backend) {
    let responders = Responders::start().await;
    let Some(ca) = TestCa::start_acme(backend, responders.overrides()).await else { return };
    let (kid, hmac) = ca.eab_key(false).await;
    let mut alice = AcmeClient::new(&ca, AccountKey::es256()).await;
    alice.register(&kid, &hmac).await;
    let new_order = alice.url("newOrder");
    let new_account = alice.url("newAccount");
    let account_url = alice.kid.clone().unwrap();

    // An order that is ready, and one still pending.
    let (ready_url, ready) = alice.ready_order(&responders, &["ready.bad.test", "two.bad.test"]).await;
    let finalize = ready["finalize"].as_str().unwrap().to_owned();
    let pending =
        alice.post(&new_order, Some(&json!({"identifiers": [{"type": "dns", "value": "pending.bad.test"}]}))).await;
    let pending_finalize = pending.body["finalize"].as_str().unwrap().to_owned();

    // Bob has a certificate of his own.
    let (bob_kid, bob_hmac) = ca.eab_key(false).await;
    let mut bob = AcmeClient::new(&ca, AccountKey::rs256()).await;
    bob.register(&bob_kid, &bob_hmac).await;
    let (_, bob_ready) = bob.ready_order(&responders, &["bob.bad.test"]).await;
    let done =
        bob.post(bob_ready["finalize"].as_str().unwrap(), Some(&json!({"csr": csr_der(&["bob.bad.test"])}))).await;
    assert_eq!(done.status, 200, "{done:?}");
    let bob_cert = bob.post(done.body["certificate"].as_str().unwrap(), None).await;
    let bob_der = b64(pem::parse(&bob_cert.text).unwrap().contents());

    // Carol deactivated her account.
    let (carol_kid, carol_hmac) = ca.eab_key(false).await;
    let mut carol = AcmeClient::new(&ca, AccountKey::eddsa()).await;
    carol.register(&carol_kid, &carol_hmac).await;
    let carol_url = carol.kid.clone().unwrap();
    let gone = carol.post(&carol_url, Some(&json!({"status": "deactivated"}))).await;
    assert_eq!(gone.body["status"], "deactivated", "{gone:?}");

    let order_payload = json!({"identifiers": [{"type": "dns", "value": "x.bad.test"}]});

    // Bad signature: the signature of another payload.
    let header = alice.header(&new_order).await;
    let mut body = flattened(&alice.key, &header, Some(&order_payload));
    body["payload"] = json!(b64(json!({"identifiers": [{"type": "dns", "value": "y.bad.test"}]}).to_string()));
    refused(
        &ca,
        "bad signature",
        "malformed",
        400,
        alice.send(&new_order, body.to_string().into_bytes(), "application/jose+json"),
    )
    .await;

    // alg none, HS256 on an account request, and an unknown algorithm.
    for alg in ["none", "HS256", "PS256"] {
        let mut header = alice.header(&new_order).await;
        header["alg"] = json!(alg);
        let body = flattened(&alice.key, &header, Some(&order_payload));
        let reply = refused(
            &ca,
            alg,
            "badSignatureAlgorithm",
            400,
            alice.send(&new_order, body.to_string().into_bytes(), "application/jose+json"),
        )
        .await;
        assert_eq!(reply.body["algorithms"], json!(["RS256", "ES256", "ES384", "EdDSA"]));
    }

    // url mismatch.
    let mut header = alice.header(&new_order).await;
    header["url"] = json!(format!("{new_order}/elsewhere"));
    let body = flattened(&alice.key, &header, Some(&order_payload));
    refused(
        &ca,
        "url mismatch",
        "unauthorized",
        403,
        alice.send(&new_order, body.to_string().into_bytes(), "application/jose+json"),
    )
    .await;

    // A cursor on the orders list that is not an order id.
    let orders = format!("{account_url}/orders?cursor=not-a-number");
    refused(&ca, "bad orders cursor", "malformed", 400, alice.post(&orders, None)).await;

    // Replayed nonce: the same signed request twice.
    let header = alice.header(&account_url).await;
    let body = flattened(&alice.key, &header, None).to_string().into_bytes();
    assert_eq!(alice.send(&account_url, body.clone(), "application/jose+json").await.status, 200);
    refused(&ca, "replayed nonce", "badNonce", 400, alice.send(&account_url, body, "application/jose+json")).await;

    // The same signed newOrder sent eight times at once: concurrent
    // requests share one nonce-spending statement, and still exactly one
    // of them spends the nonce and makes an order.
    let orders_before = ca.db.count_acme_rows().await.unwrap()[2];
    let header = alice.header(&new_order).await;
    let body = flattened(&alice.key, &header, Some(&order_payload)).to_string().into_bytes();
    let replies =
        futures::future::join_all((0..8).map(|_| alice.send(&new_order, body.clone(), "application/jose+json"))).await;
    let mut statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 400, 400, 400, 400, 400, 400, 400], "{replies:?}");
    for reply in replies.iter().filter(|r| r.status == 400) {
        reply.assert_problem("badNonce", 400);
    }
    assert_eq!(ca.db.count_acme_rows().await.unwrap()[2], orders_before + 1);

    // Missing and forged nonces.
    let mut header = alice.header(&new_order).await;
    header.as_object_mut().unwrap().remove("nonce");
    let body = flattened(&alice.key, &header, Some(&order_payload));
    refused(
        &ca,
        "no nonce",
        "badNonce",
        400,
        alice.send(&new_order, body.to_string().into_bytes(), "application/jose+json"),
    )
    .await;
    let mut header = alice.header(&new_order).await;
    header["nonce"] = json!(b64([7u8; 36]));
    let body = flattened(&alice.key, &header, Some(&order_payload));
    refused(
        &ca,
        "forged nonce",
        "badNonce",
        400,
        alice.send(&new_order, body.to_string().into_bytes(), "application/jose+json"),
    )
    .await;

    // Unknown kid.
    let mut header = alice.header(&new_order).await;
    header["kid"] = json!(account_url.replace("/acct/", "/acct/9999"));
    let body = flattened(&alice.key, &header, Some(&order_payload));
    refused(
        &ca,
        "unknown kid",
        "accountDoesNotExist",
        400,
        alice.send(&new_order, body.to_string().into_bytes(), "application/jose+json"),
    )
    .await;

    // jwk where kid is required, and kid where jwk is required.
    let mut header = alice.header(&new_order).await;
    header.as_object_mut().unwrap().remove("kid");
    header["jwk"] = alice.key.jwk();
    let body = flattened(&alice.key, &header, Some(&order_payload));
    refused(
        &ca,
        "jwk on newOrder",
        "malformed",
        400,
        alice.send(&new_order, body.to_string().into_bytes(), "application/jose+json"),
    )
    .await;
    let header = alice.header(&new_account).await;
    let body = flattened(&alice.key, &header, Some(&json!({"termsOfServiceAgreed": true})));
    refused(
        &ca,
        "kid on newAccount",
        "malformed",
        400,
        alice.send(&new_account, body.to_string().into_bytes(), "application/jose+json"),
    )
    .await;

    // A payload that is not JSON, a body that is not a JWS.
    let header = alice.header(&new_order).await;
    let protected = b64(header.to_string());
    let payload = b64("not json");
    let signature = b64(alice.key.sign(format!("{protected}.{payload}").as_bytes()));
    let body = json!({"protected": protected, "payload": payload, "signature": signature});
    refused(
        &ca,
        "payload not JSON",
        "malformed",
        400,
        alice.send(&new_order, body.to_string().into_bytes(), "application/jose+json"),
    )
    .await;
    refused(
        &ca,
        "not a JWS",
        "malformed",
        400,
        alice.send(&new_order, b"{\"hello\": 1}".to_vec(), "application/jose+json"),
    )
    .await;

    // Oversized body (just over the limit: a body much larger than the
    // socket buffers may still be in the client's write when the server
    // answers 413 and closes, which fails the send), wrong content type.
    refused(&ca, "oversized", "malformed", 413, alice.send(&new_order, vec![b' '; 65 * 1024], "application/jose+json"))
        .await;
    let header = alice.header(&new_order).await;
    let body = flattened(&alice.key, &header, Some(&order_payload));
    refused(
        &ca,
        "content type",
        "malformed",
        415,
        alice.send(&new_order, body.to_string().into_bytes(), "application/json"),
    )
    .await;

    // CSRs with a name too many and a name missing; finalize too early.
    refused(
        &ca,
        "CSR name too many",
        "badCSR",
        400,
        alice.post(&finalize, Some(&json!({"csr": csr_der(&["ready.bad.test", "two.bad.test", "three.bad.test"])}))),
    )
    .await;
    refused(
        &ca,
        "CSR name missing",
        "badCSR",
        400,
        alice.post(&finalize, Some(&json!({"csr": csr_der(&["ready.bad.test"])}))),
    )
    .await;
    refused(&ca, "CSR garbage", "badCSR", 400, alice.post(&finalize, Some(&json!({"csr": b64("garbage")})))).await;
    refused(
        &ca,
        "finalize before ready",
        "orderNotReady",
        403,
        alice.post(&pending_finalize, Some(&json!({"csr": csr_der(&["pending.bad.test"])}))),
    )
    .await;

    // Revoking another account's certificate; reading another's order.
    refused(
        &ca,
        "revoke another's certificate",
        "unauthorized",
        403,
        alice.post(&alice.url("revokeCert"), Some(&json!({"certificate": bob_der}))),
    )
    .await;
    refused(&ca, "another's order", "unauthorized", 403, bob.post(&ready_url, None)).await;

    // A plain GET of a resource that is read with POST-as-GET; an unknown resource.
    let get = ca.client.get(&ready_url).send().await.unwrap();
    assert_eq!(get.status(), 405);
    let body: Value = serde_json::from_str(&get.text().await.unwrap()).unwrap();
    assert_eq!(body["type"], "urn:ietf:params:acme:error:malformed");
    let unknown = ca.client.get(ca.acme_directory().replace("/directory", "/nothing")).send().await.unwrap();
    assert_eq!(unknown.status(), 404);

    // Any request from a deactivated account.
    refused(&ca, "deactivated: newOrder", "unauthorized", 403, carol.post(&new_order, Some(&order_payload))).await;
    refused(&ca, "deactivated: account", "unauthorized", 403, carol.post(&carol_url, None)).await;

    // Identifiers outside the policy, with one subproblem each; unknown types.
    let reply = refused(
        &ca,
        "rejected identifiers",
        "rejectedIdentifier",
        400,
        alice.post(
            &new_order,
            Some(&json!({"identifiers": [
        {"type": "dns", "value": "ok.bad.test"},
        {"type": "dns", "value": "example.com"},
        {"type": "ip", "value": "10.0.0.1"}]})),
        ),
    )
    .await;
    let subproblems = reply.body["subproblems"].as_array().unwrap();
    assert_eq!(subproblems.len(), 2, "{reply:?}");
    assert_eq!(subproblems[0]["identifier"], json!({"type": "dns", "value": "example.com"}));
    assert_eq!(subproblems[1]["identifier"], json!({"type": "ip", "value": "10.0.0.1"}));
    refused(
        &ca,
        "unsupported identifier",
        "unsupportedIdentifier",
        400,
        alice.post(&new_order, Some(&json!({"identifiers": [{"type": "email", "value": "a@b.test"}]}))),
    )
    .await;
    refused(
        &ca,
        "notAfter beyond the policy",
        "malformed",
        400,
        alice.post(
            &new_order,
            Some(&json!({"identifiers": [{"type": "dns", "value": "x.bad.test"}], "notAfter": "2999-01-01T00:00:00Z"})),
        ),
    )
    .await;

    // newAccount without EAB, with a wrong MAC, with a used single-use key,
    // with a binding of another key.
    let eve = AcmeClient::new(&ca, AccountKey::es256()).await;
    refused(
        &ca,
        "no EAB",
        "externalAccountRequired",
        400,
        eve.post(&new_account, Some(&json!({"termsOfServiceAgreed": true}))),
    )
    .await;
    let wrong = eab_binding("HS256", &kid, &b64([1u8; 32]), &eve.key.jwk(), &new_account);
    refused(
        &ca,
        "wrong MAC",
        "unauthorized",
        403,
        eve.post(&new_account, Some(&json!({"externalAccountBinding": wrong}))),
    )
    .await;
    let reused = eab_binding("HS256", &kid, &hmac, &eve.key.jwk(), &new_account);
    refused(
        &ca,
        "used EAB key",
        "unauthorized",
        403,
        eve.post(&new_account, Some(&json!({"externalAccountBinding": reused}))),
    )
    .await;
    let (fresh_kid, fresh_hmac) = ca.eab_key(false).await;
    let other = eab_binding("HS256", &fresh_kid, &fresh_hmac, &AccountKey::es256().jwk(), &new_account);
    refused(
        &ca,
        "EAB of another key",
        "unauthorized",
        403,
        eve.post(&new_account, Some(&json!({"externalAccountBinding": other}))),
    )
    .await;
    refused(
        &ca,
        "onlyReturnExisting",
        "accountDoesNotExist",
        400,
        eve.post(&new_account, Some(&json!({"onlyReturnExisting": true}))),
    )
    .await;

    // HS384 bindings work, and the fresh key binds once.
    let hs384 = eab_binding("HS384", &fresh_kid, &fresh_hmac, &eve.key.jwk(), &new_account);
    let created = eve
        .post(&new_account, Some(&json!({"externalAccountBinding": hs384, "contact": ["mailto:eve@tessera.test"], "onlyReturnExisting": null, "termsOfServiceAgreed": null})))
        .await;
    assert_eq!(created.status, 201, "{created:?}");
    // The members sent as null were taken as absent, the contact as sent.
    assert_eq!(created.body["status"], "valid", "{created:?}");
    assert_eq!(created.body["contact"], json!(["mailto:eve@tessera.test"]), "{created:?}");
    let again = eve.post(&new_account, Some(&json!({}))).await;
    assert_eq!((again.status, again.location()), (200, created.location()));

    // A reusable key binds any number of accounts.
    let (shared_kid, shared_hmac) = ca.eab_key(true).await;
    let mut bound = Vec::new();
    for _ in 0..2 {
        let mut client = AcmeClient::new(&ca, AccountKey::es256()).await;
        client.register(&shared_kid, &shared_hmac).await;
        bound.push(client);
    }

    // Revoking the key revokes the accounts bound to it: they can no longer
    // order, and no new account binds the key.
    let (status, revoked) =
        ca.post(&format!("/api/v1/eab-keys/{shared_kid}/revoke"), Some(&ca.admin_token), &json!({})).await;
    assert_eq!((status, revoked["accounts_revoked"].as_u64()), (200, Some(2)), "{revoked}");
    let order = json!({"identifiers": [{"type": "dns", "value": "bad.acme.test"}]});
    for client in &bound {
        refused(
            &ca,
            "account of a revoked EAB key",
            "unauthorized",
            403,
            client.post(&client.url("newOrder"), Some(&order)),
        )
        .await;
    }
    let late = AcmeClient::new(&ca, AccountKey::es256()).await;
    let binding = eab_binding("HS256", &shared_kid, &shared_hmac, &late.key.jwk(), &new_account);
    refused(
        &ca,
        "revoked EAB key",
        "unauthorized",
        403,
        late.post(&new_account, Some(&json!({"externalAccountBinding": binding}))),
    )
    .await;

    // Two finalizations of one ready order at once: one issues, the other
    // gets orderNotReady, and exactly one certificate is made.
    let certificates = ca.db.count_certificates().await.unwrap();
    let csr = json!({"csr": csr_der(&["ready.bad.test", "two.bad.test"])});
    let (first, second) = tokio::join!(alice.post(&finalize, Some(&csr)), alice.post(&finalize, Some(&csr)));
    let (won, lost) = if first.status == 200 { (first, second) } else { (second, first) };
    assert_eq!(won.body["status"], "valid", "{won:?}");
    lost.assert_problem("orderNotReady", 403);
    assert_eq!(ca.db.count_certificates().await.unwrap(), certificates + 1);
    let order = alice.post(&ready_url, None).await;
    assert_eq!(
        (order.body["status"].as_str(), order.body["certificate"].as_str()),
        (Some("valid"), won.body["certificate"].as_str())
    );
    ca.stop().await;
}
on_both_backends!(each_bad_request_gets_its_problem_and_stores_nothing);
