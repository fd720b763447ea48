//! Validation outcomes beyond the happy path: http-01 redirects as RFC 8555
//! §8.3 allows them, and each kind of failure recorded on the challenge as
//! its problem type, making the authorization and the order invalid.
use crate::common::acme::{AccountKey, AcmeClient, Reply, Responders};
use crate::common::{Backend, TestCa};
use serde_json::{Value, json};
use tessera::storage::AuthzKey;

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
            ca.db.acme_authzs_with_challenges(&[AuthzKey::Challenge(id)]).await.unwrap().remove(0).unwrap();
        let challenge = challenges.into_iter().find(|c| c.id == id).unwrap();
        if challenge.status != "processing" {
            settled = Some((authz.status, challenge.status));
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(settled, Some(("valid".to_owned(), "valid".to_owned())), "the stalled validation was not resumed");
    let (order, _) = ca.db.acme_orders_with_authz_ids(&[order_id]).await.unwrap().remove(0).unwrap();
    assert_eq!(order.status, "ready");
    ca.stop().await;
}
on_both_backends!(a_validation_a_stopped_node_left_processing_is_resumed);
