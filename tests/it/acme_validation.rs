//! Validation outcomes beyond the happy path: http-01 redirects as RFC 8555
//! §8.3 allows them, and each kind of failure recorded on the challenge as
//! its problem type, making the authorization and the order invalid.
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::acme::{AccountKey, AcmeClient, Reply, Responders};
use crate::common::{Backend, TestCa};
use serde_json::{Value, json};
use tessera::storage::{AuthzKey, AuthzStatus, ChallengeStatus, OrderStatus};

/// A CA with loopback challenge responders and a registered ES256
/// account; None when the backend is not available here.
async fn registered(backend: Backend) -> Option<(Responders, TestCa, AcmeClient)> {
    let responders = Responders::start().await;
    let ca = TestCa::start_acme(backend, responders.overrides()).await?;
    let (kid, hmac) = ca.eab_key(false).await;
    let mut client = AcmeClient::new(&ca, AccountKey::es256()).await;
    client.register(&kid, &hmac).await;
    Some((responders, ca, client))
}

/// Orders `name`: the order, its authorization's URL and that
/// authorization's `kind` challenge.
async fn order_challenge(client: &AcmeClient, name: &str, kind: &str) -> (Reply, String, Value) {
    let order =
        client.post(&client.url("newOrder"), Some(&json!({"identifiers": [{"type": "dns", "value": name}]}))).await;
    assert_eq!(order.status, 201, "{order:?}");
    let authz_url = order.body["authorizations"][0].as_str().unwrap().to_owned();
    let authz = client.post(&authz_url, None).await;
    let challenge = authz.body["challenges"].as_array().unwrap().iter().find(|c| c["type"] == kind).unwrap().clone();
    (order, authz_url, challenge)
}

/// Orders `name`, answers the `kind` challenge after `prepare` ran with
/// (token, key authorization), and returns the settled authorization.
async fn attempt(client: &AcmeClient, name: &str, kind: &str, prepare: impl FnOnce(&str, &str)) -> (Reply, Reply) {
    let (order, authz_url, challenge) = order_challenge(client, name, kind).await;
    let token = challenge["token"].as_str().unwrap();
    prepare(token, &client.key_authorization(token));
    client.post(challenge["url"].as_str().unwrap(), Some(&json!({}))).await;
    let settled = client.poll(&authz_url).await;
    let order = client.post(&order.location(), None).await;
    (settled, order)
}

fn challenge_error(authz: &Reply, kind: &str) -> String {
    let challenge = authz.body["challenges"].as_array().unwrap().iter().find(|c| c["type"] == kind).unwrap();
    assert_eq!(challenge["status"], "invalid", "{authz:?}");
    challenge["error"]["type"].as_str().unwrap().trim_start_matches("urn:ietf:params:acme:error:").to_owned()
}

async fn redirects_and_failures_are_judged_as_the_rfc_says(backend: Backend) {
    let Some((responders, ca, client)) = registered(backend).await else { return };

    // A redirect to another path on the validation port is followed.
    let (authz, _) = attempt(&client, "redirect.validation.test", "http-01", |token, key_auth| {
        responders.serve_http01(token, &format!("REDIRECT /.well-known/acme-challenge/moved-{token}"));
        responders.serve_http01(&format!("moved-{token}"), key_auth);
    })
    .await;
    assert_eq!(authz.body["status"], "valid", "{authz:?}");

    // A redirect to a port §8.3 does not allow is refused.
    let (authz, order) = attempt(&client, "badport.validation.test", "http-01", |token, _| {
        responders.serve_http01(token, "REDIRECT http://127.0.0.1:1/elsewhere");
    })
    .await;
    assert_eq!(authz.body["status"], "invalid");
    assert_eq!(challenge_error(&authz, "http-01"), "unauthorized");
    assert_eq!(order.body["status"], "invalid");
    assert!(order.body["error"]["type"].is_string(), "{order:?}");

    // The wrong body, and no answer at all.
    let (authz, _) = attempt(&client, "wrong.validation.test", "http-01", |token, _| {
        responders.serve_http01(token, "not the key authorization");
    })
    .await;
    assert_eq!(challenge_error(&authz, "http-01"), "incorrectResponse");
    let (authz, _) = attempt(&client, "missing.validation.test", "http-01", |_, _| {}).await;
    assert_eq!(challenge_error(&authz, "http-01"), "unauthorized");

    // dns-01 without a record, and with the wrong one.
    let (authz, _) = attempt(&client, "notxt.validation.test", "dns-01", |_, _| {}).await;
    assert_eq!(challenge_error(&authz, "dns-01"), "unauthorized");
    let (authz, _) = attempt(&client, "wrongtxt.validation.test", "dns-01", |_, _| {
        responders.set_dns01("wrongtxt.validation.test", "something else");
    })
    .await;
    assert_eq!(challenge_error(&authz, "dns-01"), "incorrectResponse");

    // tls-alpn-01 with no certificate for the name, and with a wrong digest.
    let (authz, _) = attempt(&client, "nocert.validation.test", "tls-alpn-01", |_, _| {}).await;
    assert_eq!(challenge_error(&authz, "tls-alpn-01"), "tls");
    let (authz, _) = attempt(&client, "wrongcert.validation.test", "tls-alpn-01", |_, _| {
        responders.serve_tls_alpn01("wrongcert.validation.test", "something else");
    })
    .await;
    assert_eq!(challenge_error(&authz, "tls-alpn-01"), "incorrectResponse");
    ca.stop().await;
}
on_both_backends!(redirects_and_failures_are_judged_as_the_rfc_says);

/// A node that stops between starting a validation and recording its
/// outcome leaves the challenge processing; the next node to start takes
/// it up, and the authorization and order settle.
async fn a_validation_a_stopped_node_left_processing_is_resumed(backend: Backend) {
    let Some((responders, ca, client)) = registered(backend).await else { return };
    let (order, _, challenge) = order_challenge(&client, "resumed.validation.test", "http-01").await;
    let order_id: i64 = order.location().rsplit('/').next().unwrap().parse().unwrap();
    let token = challenge["token"].as_str().unwrap();
    responders.serve_http01(token, &client.key_authorization(token));
    let id: i64 = challenge["url"].as_str().unwrap().rsplit('/').next().unwrap().parse().unwrap();
    // What a node that stopped right after the start leaves behind.
    let stop_after_start = format!("UPDATE acme_challenges SET status = 'processing', started_at = 0 WHERE id = {id}");
    ca.db.execute_raw(&stop_after_start).await.unwrap();

    let config = ca.config.clone();
    let ca = TestCa::start_config(ca.stop().await, config).await.unwrap();
    let mut settled = None;
    for _ in 0..100 {
        let (authz, challenges) =
            ca.db.acme().acme_authzs_with_challenges(&[AuthzKey::Challenge(id)]).await.unwrap().remove(0).unwrap();
        let challenge = challenges.into_iter().find(|c| c.id == id).unwrap();
        if challenge.status != ChallengeStatus::Processing {
            settled = Some((authz.status, challenge.status));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(settled, Some((AuthzStatus::Valid, ChallengeStatus::Valid)), "the stalled validation was not resumed");
    let (order, _) = ca.db.acme().acme_orders_with_authz_ids(&[order_id]).await.unwrap().remove(0).unwrap();
    assert_eq!(order.status, OrderStatus::Ready);
    ca.stop().await;
}
on_both_backends!(a_validation_a_stopped_node_left_processing_is_resumed);

/// The problem recorded on the authorization's `kind` challenge.
fn challenge_problem(authz: &Reply, kind: &str) -> Value {
    let challenge = authz.body["challenges"].as_array().unwrap().iter().find(|c| c["type"] == kind).unwrap();
    assert_eq!(challenge["status"], "invalid", "{authz:?}");
    challenge["error"].clone()
}

/// A page on loopback that no account may read through its challenges;
/// counts the requests that reached it.
async fn internal_page(text: &'static str) -> (u16, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = axum::Router::new().fallback(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async move { text }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, hits)
}

on_both_backends!(validation_reaches_and_quotes_nothing_beyond_the_policy);

/// http-01 redirects go only where the account's policy allows, and no
/// challenge error quotes what a server answered.
async fn validation_reaches_and_quotes_nothing_beyond_the_policy(backend: Backend) {
    const SECRET: &str = "INTERNAL-ONLY: db_password=hunter2";
    let Some((responders, ca, client)) = registered(backend).await else { return };
    let (other_port, other_hits) = internal_page(SECRET).await;
    // The same page on the validation port, under a name of its own.
    responders.serve_http01("internal", SECRET);
    let port = responders.http_port;
    let refused = |authz: &Reply, kind: &str, says: &str| {
        let problem = challenge_problem(authz, "http-01");
        assert_eq!(problem["type"], format!("urn:ietf:params:acme:error:{kind}"), "{problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(!detail.contains("INTERNAL") && !detail.contains("hunter2"), "the page leaked: {detail}");
        assert!(detail.contains(says), "{detail}");
    };

    // An internal page on another port, and on a host outside the policy.
    let (authz, _) = attempt(&client, "port.leak.test", "http-01", |token, _| {
        responders.serve_http01(token, &format!("REDIRECT http://127.0.0.1:{other_port}/secret"));
    })
    .await;
    refused(&authz, "unauthorized", "port");
    assert_eq!(other_hits.load(Ordering::SeqCst), 0, "the internal page was fetched");
    let (authz, _) = attempt(&client, "host.leak.test", "http-01", |token, _| {
        let to = format!("http://db.corp.example:{port}/.well-known/acme-challenge/internal");
        responders.serve_http01(token, &format!("REDIRECT {to}"));
    })
    .await;
    refused(&authz, "unauthorized", "policy does not allow");

    // A page the policy allows, which is not the key authorization: its
    // length is told, not its text; directly and after a redirect.
    let (authz, _) = attempt(&client, "direct.leak.test", "http-01", |token, _| {
        responders.serve_http01(token, SECRET);
    })
    .await;
    refused(&authz, "incorrectResponse", &format!("{} bytes", SECRET.len()));
    let (authz, _) = attempt(&client, "allowed.leak.test", "http-01", |token, _| {
        let to = format!("http://wiki.leak.test:{port}/.well-known/acme-challenge/internal");
        responders.serve_http01(token, &format!("REDIRECT {to}"));
    })
    .await;
    refused(&authz, "incorrectResponse", "after 1 redirect");

    // A long body is cut off, never quoted.
    let (authz, _) = attempt(&client, "long.leak.test", "http-01", |token, _| {
        responders.serve_http01(token, &format!("{SECRET}\n").repeat(20_000));
    })
    .await;
    refused(&authz, "incorrectResponse", "more than 512 bytes");

    // A chain of redirects longer than a few.
    let (authz, _) = attempt(&client, "chain.leak.test", "http-01", |token, _| {
        for hop in 0..4 {
            responders.serve_http01(
                &format!("{token}-{hop}"),
                &format!("REDIRECT /.well-known/acme-challenge/{token}-{}", hop + 1),
            );
        }
        responders.serve_http01(token, &format!("REDIRECT /.well-known/acme-challenge/{token}-0"));
    })
    .await;
    refused(&authz, "unauthorized", "more than 3 times");
    ca.stop().await;
}
