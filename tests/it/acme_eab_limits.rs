//! One EAB key does not multiply limits: the accounts a reusable key bound
//! share its rate limits (orders and failed validations per window), and a
//! reusable key binds at most `max_accounts` accounts, shown in its listing.
use crate::common::acme::{AccountKey, AcmeClient, Responders, eab_binding};
use crate::common::{Backend, TestCa};
use serde_json::{Value, json};

/// A CA whose directory allows 3 orders and 2 failed validations per window.
async fn strict_ca(backend: Backend, responders: &Responders) -> Option<TestCa> {
    TestCa::start_acme_with(backend, responders.overrides(), |config| {
        config.acme.directories[0].orders_per_window = 3;
        config.acme.directories[0].failed_validations_per_window = 2;
    })
    .await
}

async fn registered(ca: &TestCa, kid: &str, hmac: &str) -> AcmeClient {
    let mut client = AcmeClient::new(ca, AccountKey::es256()).await;
    client.register(kid, hmac).await;
    client
}

async fn new_order(client: &AcmeClient, name: &str) -> crate::common::acme::Reply {
    client.post(&client.url("newOrder"), Some(&json!({"identifiers": [{"type": "dns", "value": name}]}))).await
}

/// Orders `name` and lets its http-01 challenge fail (nothing is served).
async fn fail_a_validation(client: &AcmeClient, name: &str) {
    let order = new_order(client, name).await;
    assert_eq!(order.status, 201, "{order:?}");
    let authz_url = order.body["authorizations"][0].as_str().unwrap().to_owned();
    let authz = client.post(&authz_url, None).await;
    let challenge = authz.body["challenges"].as_array().unwrap().iter().find(|c| c["type"] == "http-01").unwrap();
    client.post(challenge["url"].as_str().unwrap(), Some(&json!({}))).await;
    assert_eq!(client.poll(&authz_url).await.body["status"], "invalid");
}

async fn accounts_of_one_key_share_its_limits(backend: Backend) {
    let responders = Responders::start().await;
    let Some(ca) = strict_ca(backend, &responders).await else { return };
    let (kid, hmac) = ca.eab_key(true).await;
    let alice = registered(&ca, &kid, &hmac).await;
    let bob = registered(&ca, &kid, &hmac).await;

    // Three orders between them: the fourth is refused to both, though
    // neither made three alone.
    for (client, name) in [(&alice, "a1.limits.test"), (&alice, "a2.limits.test"), (&bob, "b1.limits.test")] {
        assert_eq!(new_order(client, name).await.status, 201);
    }
    for client in [&bob, &alice] {
        let refused = new_order(client, "more.limits.test").await;
        refused.assert_problem("rateLimited", 429);
        assert!(refused.body["detail"].as_str().unwrap().contains("EAB key"), "{refused:?}");
    }

    // An account of another key keeps its own limits.
    let (other_kid, other_hmac) = ca.eab_key(true).await;
    let carol = registered(&ca, &other_kid, &other_hmac).await;
    assert_eq!(new_order(&carol, "c1.limits.test").await.status, 201);

    // Failed validations count over the key's accounts the same way.
    let (kid, hmac) = ca.eab_key(true).await;
    let dave = registered(&ca, &kid, &hmac).await;
    let erin = registered(&ca, &kid, &hmac).await;
    fail_a_validation(&dave, "d1.limits.test").await;
    fail_a_validation(&erin, "e1.limits.test").await;
    new_order(&dave, "d2.limits.test").await.assert_problem("rateLimited", 429);
    ca.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_of_one_key_share_its_limits_on_sqlite() {
    accounts_of_one_key_share_its_limits(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_of_one_key_share_its_limits_on_postgres() {
    accounts_of_one_key_share_its_limits(Backend::Postgres).await;
}

async fn eab_key(ca: &TestCa, body: Value) -> (u16, Value) {
    ca.post("/api/v1/eab-keys", Some(&ca.admin_token), &body).await
}

on_both_backends!(a_reusable_key_binds_at_most_its_max_accounts, |ca| {
    let (status, created) = eab_key(ca, json!({"policy": "default", "reusable": true, "max_accounts": 2})).await;
    assert_eq!((status, &created["max_accounts"]), (201, &json!(2)), "{created}");
    let (kid, hmac) = (created["kid"].as_str().unwrap(), created["hmac_key"].as_str().unwrap());

    // Four newAccounts at once: two bind it, two are refused, and nothing
    // is stored for those.
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(AcmeClient::new(ca, AccountKey::es256()).await);
    }
    let rows = ca.db.count_acme_rows().await.unwrap();
    let replies = futures::future::join_all(clients.iter().map(|client| async move {
        let url = client.url("newAccount");
        let binding = eab_binding("HS256", kid, hmac, &client.key.jwk(), &url);
        client.post(&url, Some(&json!({"termsOfServiceAgreed": true, "externalAccountBinding": binding}))).await
    }))
    .await;
    let created: Vec<_> = replies.iter().filter(|r| r.status == 201).collect();
    assert_eq!(created.len(), 2, "{replies:?}");
    for refused in replies.iter().filter(|r| r.status != 201) {
        refused.assert_problem("unauthorized", 403);
    }
    let after = ca.db.count_acme_rows().await.unwrap();
    assert_eq!((after[0], after[1]), (rows[0], rows[1] + 2), "two accounts, no more");

    let (_, listing) = ca.get("/api/v1/eab-keys", Some(&ca.admin_token)).await;
    let key = listing["items"].as_array().unwrap().iter().find(|k| k["kid"] == kid).unwrap();
    assert_eq!((&key["bound_accounts"], &key["max_accounts"]), (&json!(2), &json!(2)), "{key}");

    // Defaults and refusals at creation.
    let (_, reusable) = eab_key(ca, json!({"policy": "default", "reusable": true})).await;
    assert_eq!(reusable["max_accounts"], 100);
    let (_, single) = eab_key(ca, json!({"policy": "default"})).await;
    assert_eq!(single["max_accounts"], 1);
    for body in [
        json!({"policy": "default", "reusable": true, "max_accounts": 0}),
        json!({"policy": "default", "reusable": true, "max_accounts": 1_000_001}),
        json!({"policy": "default", "max_accounts": 5}),
    ] {
        let (status, problem) = eab_key(ca, body).await;
        assert_eq!(
            (status, problem["type"].as_str()),
            (400, Some("urn:tessera:problem:malformed-request")),
            "{problem}"
        );
    }
});
