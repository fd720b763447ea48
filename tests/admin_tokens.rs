//! Admin API tokens as an attacker and an operator meet them, on SQLite and
//! PostgreSQL: bindings to policies, expiry, the last admin token, and the
//! trace refusals leave (audit, metrics, the throttle on bad tokens).
#![allow(clippy::unwrap_used)]

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use common::{Backend, TestCa, csr_for};
use serde_json::{Value, json};
use tessera::admin::refusals::PERIOD;
use tessera::admin::throttle::FAILURES;
use tessera::clock::Clock;

/// A token made through the API: its id and secret.
struct Made {
    id: i64,
    secret: String,
}

async fn make_token(ca: &TestCa, request: Value) -> Made {
    make_token_as(ca, &ca.admin_token, request).await
}

async fn make_token_as(ca: &TestCa, admin: &str, request: Value) -> Made {
    let (status, body) = ca.post("/api/v1/tokens", Some(admin), &request).await;
    assert_eq!(status, 201, "{request}: {body}");
    Made { id: body["id"].as_i64().unwrap(), secret: body["token"].as_str().unwrap().to_owned() }
}

async fn make_policy(ca: &TestCa, name: &str, dns: &str) {
    let policy = json!({"name": name, "dns": [dns], "max_ttl": "24h"});
    let (status, body) = ca.post("/api/v1/policies", Some(&ca.admin_token), &policy).await;
    assert_eq!(status, 201, "{body}");
}

async fn sign(ca: &TestCa, token: &str, policy: &str, name: &str) -> (u16, Value) {
    ca.post("/api/v1/certificates", Some(token), &json!({"policy": policy, "csr": csr_for(&[name])})).await
}

fn assert_not_bound(what: &str, (status, problem): (u16, Value), policy: &str) {
    assert_eq!(status, 403, "{what}: {problem}");
    assert_eq!(problem["type"], "urn:tessera:problem:policy-not-bound", "{what}: {problem}");
    assert_eq!(problem["policy"], policy, "{what}: {problem}");
    assert!(problem["detail"].as_str().unwrap().contains(policy), "{what}: {problem}");
}

async fn token_view(ca: &TestCa, id: i64) -> Value {
    let (status, list) = ca.get("/api/v1/tokens?limit=1000", Some(&ca.admin_token)).await;
    assert_eq!(status, 200, "{list}");
    list["items"].as_array().unwrap().iter().find(|t| t["id"] == id).unwrap().clone()
}

/// Whole seconds, as the API stores and shows times.
fn rfc3339(at: time::OffsetDateTime) -> String {
    at.replace_nanosecond(0).unwrap().format(&time::format_description::well_known::Rfc3339).unwrap()
}

/// Moves the server's clock past the refusal period and waits for the
/// tallies to reach the audit log.
async fn written_refusals(ca: &TestCa) -> Vec<Value> {
    ca.clock.advance(time::Duration::seconds(PERIOD + 1));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, page) = ca.get("/api/v1/audit-events?action=auth.refused&limit=1000", Some(&ca.admin_token)).await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap().clone();
        if !items.is_empty() {
            return items;
        }
        assert!(Instant::now() < deadline, "no refusal reached the audit log");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn refusal<'a>(events: &'a [Value], actor: &str, reason: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["actor"] == actor && e["target"] == reason)
        .unwrap_or_else(|| panic!("no {reason} refusal from {actor}: {events:#?}"))
}

on_both_backends!(tokens_act_only_under_their_policies, |ca| {
    let admin = Some(ca.admin_token.as_str());
    make_policy(ca, "web", "*.web.test").await;
    make_policy(ca, "other", "*.com").await;
    let issuer = make_token(ca, json!({"name": "ci", "scope": "issuer", "policies": ["web"]})).await;

    // Signing: only under the bound policy; a policy that does not exist
    // gets the same answer, so a token learns nothing of other policies.
    assert_not_bound("sign under other", sign(ca, &issuer.secret, "other", "shop.com").await, "other");
    assert_not_bound("sign under a missing policy", sign(ca, &issuer.secret, "nope", "a.web.test").await, "nope");
    let (status, issued) = sign(ca, &issuer.secret, "web", "a.web.test").await;
    assert_eq!(status, 201, "{issued}");
    assert_eq!(issued["requester"], "token:ci");

    // The listing shows bindings and expiry; admin tokens carry none.
    let view = token_view(ca, issuer.id).await;
    assert_eq!((view["policies"].clone(), view["expires_at"].clone()), (json!(["web"]), Value::Null), "{view}");
    let (_, list) = ca.get("/api/v1/tokens", admin).await;
    let dev_admin = list["items"].as_array().unwrap().iter().find(|t| t["scope"] == "admin").unwrap();
    assert!(dev_admin.get("policies").is_none(), "{dev_admin}");
    assert!(!list.to_string().contains(&issuer.secret), "a secret is never listed");

    // The creation's audit event records the bindings.
    let (_, events) = ca.get("/api/v1/audit-events?action=token.create&target=ci", admin).await;
    let detail = &events["items"][0]["detail"];
    assert_eq!((detail["scope"].clone(), detail["policies"].clone()), (json!("issuer"), json!(["web"])), "{events}");

    // An operator bound to `web` revokes, and makes EAB keys, under `web` only.
    let operator = make_token(ca, json!({"name": "ops", "scope": "operator", "policies": ["web"]})).await;
    let (status, foreign) = sign(ca, &ca.admin_token, "other", "shop.com").await;
    assert_eq!(status, 201, "{foreign}");
    let revoke = |serial: &Value| format!("/api/v1/certificates/{}/revoke", serial.as_str().unwrap());
    assert_not_bound(
        "revoke under other",
        ca.post(&revoke(&foreign["serial"]), Some(&operator.secret), &json!({})).await,
        "other",
    );
    let (status, revoked) = ca.post(&revoke(&issued["serial"]), Some(&operator.secret), &json!({})).await;
    assert_eq!((status, revoked["status"].as_str()), (200, Some("revoked")), "{revoked}");
    assert_not_bound(
        "EAB key for other",
        ca.post("/api/v1/eab-keys", Some(&operator.secret), &json!({"policy": "other"})).await,
        "other",
    );
    let (status, key) = ca.post("/api/v1/eab-keys", Some(&operator.secret), &json!({"policy": "web"})).await;
    assert_eq!(status, 201, "{key}");
    let (_, foreign_key) = ca.post("/api/v1/eab-keys", admin, &json!({"policy": "other"})).await;
    let foreign_kid = foreign_key["kid"].as_str().unwrap();
    assert_not_bound(
        "EAB key revoke under other",
        ca.post(&format!("/api/v1/eab-keys/{foreign_kid}/revoke"), Some(&operator.secret), &json!({})).await,
        "other",
    );

    // An admin rebinds a token (the way tokens made before bindings are
    // given theirs); the audit event keeps the old and new bindings.
    let rebound = ca
        .client
        .put(ca.admin_url(&format!("/api/v1/tokens/{}/policies", issuer.id)))
        .bearer_auth(&ca.admin_token)
        .json(&json!({"policies": ["web", "other", "web"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 200);
    assert_eq!(rebound.json::<Value>().await.unwrap()["policies"], json!(["other", "web"]));
    let (status, body) = sign(ca, &issuer.secret, "other", "shop.com").await;
    assert_eq!(status, 201, "{body}");
    let (_, events) = ca.get("/api/v1/audit-events?action=token.bind&target=ci", admin).await;
    let detail = &events["items"][0]["detail"];
    assert_eq!((detail["policies"].clone(), detail["previous"].clone()), (json!(["other", "web"]), json!(["web"])));

    // A policy live tokens are bound to is not deleted under them.
    let deleted =
        ca.client.delete(ca.admin_url("/api/v1/policies/web")).bearer_auth(&ca.admin_token).send().await.unwrap();
    assert_eq!(deleted.status(), 409);
    let problem: Value = deleted.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap().contains("ci, ops"), "{problem}");

    // Requests that do not fit the scope, or name no policy that exists,
    // are refused and store nothing.
    let before = common::tables::Snapshot::settled(&ca.db).await;
    for (what, request, needle) in [
        ("issuer without policies", json!({"name": "x", "scope": "issuer"}), "at least one policy"),
        ("operator with none", json!({"name": "x", "scope": "operator", "policies": []}), "at least one policy"),
        ("admin with policies", json!({"name": "x", "scope": "admin", "policies": ["web"]}), "every policy"),
        ("auditor with policies", json!({"name": "x", "scope": "auditor", "policies": ["web"]}), "cannot issue"),
        ("unknown policy", json!({"name": "x", "scope": "issuer", "policies": ["web", "nope"]}), "\"nope\""),
    ] {
        let (status, problem) = ca.post("/api/v1/tokens", admin, &request).await;
        assert_eq!((status, problem["type"].as_str()), (400, Some("urn:tessera:problem:malformed-request")), "{what}");
        assert!(problem["detail"].as_str().unwrap().contains(needle), "{what}: {problem}");
    }
    let bind = |id: i64, policies: Value| {
        ca.client
            .put(ca.admin_url(&format!("/api/v1/tokens/{id}/policies")))
            .bearer_auth(&ca.admin_token)
            .json(&json!({ "policies": policies }))
            .send()
    };
    assert_eq!(bind(issuer.id, json!(["nope"])).await.unwrap().status(), 400, "unknown policy");
    assert_eq!(bind(issuer.id, json!([])).await.unwrap().status(), 400, "no policy");
    assert_eq!(bind(dev_admin["id"].as_i64().unwrap(), json!(["web"])).await.unwrap().status(), 400, "admin");
    assert_eq!(bind(9999, json!(["web"])).await.unwrap().status(), 404, "no such token");
    assert_eq!(ca.snapshot().await, before, "refused token requests changed the database");
    assert_eq!(token_view(ca, issuer.id).await["policies"], json!(["other", "web"]), "a refused bind changes nothing");

    // A policy deleted while a token is bound to it: one of the two wins,
    // and a token is never left bound to nothing.
    for round in 0..5 {
        let name = format!("race{round}");
        make_policy(ca, &name, "*.race.test").await;
        let delete =
            ca.client.delete(ca.admin_url(&format!("/api/v1/policies/{name}"))).bearer_auth(&ca.admin_token).send();
        let (deleted, bound) = tokio::join!(delete, bind(issuer.id, json!([name])));
        let outcome = (deleted.unwrap().status().as_u16(), bound.unwrap().status().as_u16());
        assert!(outcome == (204, 400) || outcome == (409, 200), "round {round}: {outcome:?}");
        let policies = token_view(ca, issuer.id).await["policies"].clone();
        assert_eq!(policies, if outcome.1 == 200 { json!([name]) } else { json!(["other", "web"]) }, "round {round}");
        bind(issuer.id, json!(["other", "web"])).await.unwrap();
    }

    // Two rebinds at once: the later replaces the earlier, never a mix.
    for round in 0..5 {
        let (a, b) = tokio::join!(bind(issuer.id, json!(["web"])), bind(issuer.id, json!(["other"])));
        assert_eq!((a.unwrap().status().as_u16(), b.unwrap().status().as_u16()), (200, 200), "round {round}");
        let policies = token_view(ca, issuer.id).await["policies"].clone();
        assert!(policies == json!(["web"]) || policies == json!(["other"]), "round {round}: {policies}");
    }
});

on_both_backends!(expired_tokens_are_refused_like_unknown_ones, |ca| {
    let admin = Some(ca.admin_token.as_str());
    let in_an_hour = rfc3339(ca.clock.now() + time::Duration::hours(1));
    let token =
        make_token(ca, json!({"name": "short", "scope": "issuer", "policies": ["default"], "expires_at": in_an_hour}))
            .await;
    let (status, body) = sign(ca, &token.secret, "default", "a.test").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(token_view(ca, token.id).await["expires_at"], in_an_hour);

    ca.clock.advance(time::Duration::hours(2));
    let expired = sign(ca, &token.secret, "default", "a.test").await;
    let unknown = sign(ca, "tsr_not-a-token", "default", "a.test").await;
    assert_eq!(expired.0, 401, "{}", expired.1);
    assert_eq!(expired, unknown, "an expired token is answered as an unknown one");

    let bound = ca
        .client
        .put(ca.admin_url(&format!("/api/v1/tokens/{}/policies", token.id)))
        .bearer_auth(&ca.admin_token)
        .json(&json!({"policies": ["default"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bound.status(), 409, "an expired token is not bound again");

    let past = rfc3339(ca.clock.now() - time::Duration::minutes(1));
    for expires_at in [past.as_str(), "tomorrow"] {
        let request = json!({"name": "x", "scope": "auditor", "expires_at": expires_at});
        let (status, problem) = ca.post("/api/v1/tokens", admin, &request).await;
        assert_eq!(status, 400, "{expires_at}: {problem}");
        assert!(problem["detail"].as_str().unwrap().contains("expires_at"), "{problem}");
    }
});

on_both_backends!(the_last_admin_token_cannot_be_revoked, |ca| {
    let (_, list) = ca.get("/api/v1/tokens", Some(&ca.admin_token)).await;
    let first = list["items"][0]["id"].as_i64().unwrap();
    let revoke = |id: i64, by: String| async move {
        ca.post(&format!("/api/v1/tokens/{id}/revoke"), Some(&by), &json!({})).await
    };
    let (status, problem) = revoke(first, ca.admin_token.clone()).await;
    assert_eq!((status, problem["type"].as_str()), (409, Some("urn:tessera:problem:conflict")), "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("last live admin token"), "{problem}");

    // An admin token that will expire does not stand in for it.
    let tomorrow = rfc3339(ca.clock.now() + time::Duration::days(1));
    let temporary = make_token(ca, json!({"name": "temp", "scope": "admin", "expires_at": tomorrow})).await;
    assert_eq!(revoke(first, ca.admin_token.clone()).await.0, 409);

    // One that does not expire does; the revoked token stops at once.
    let spare = make_token(ca, json!({"name": "spare", "scope": "admin"})).await;
    let (status, body) = revoke(first, ca.admin_token.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ca.get("/api/v1/tokens", Some(&ca.admin_token)).await.0, 401);
    assert_eq!(revoke(spare.id, spare.secret.clone()).await.0, 409, "now spare is the last");
    assert_eq!(revoke(temporary.id, spare.secret.clone()).await.0, 200, "an expiring admin token may go");

    // The last two revoked at once, each by the other: one stays.
    let mut survivor = spare;
    for round in 0..5 {
        let other =
            make_token_as(ca, &survivor.secret, json!({"name": format!("spare{round}"), "scope": "admin"})).await;
        let (a, b) = tokio::join!(revoke(survivor.id, other.secret.clone()), revoke(other.id, survivor.secret.clone()));
        let statuses = [a.0, b.0];
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "round {round}: {statuses:?} {a:?} {b:?}");
        if a.0 == 200 {
            survivor = other;
        }
        let (status, list) = ca.get("/api/v1/tokens?limit=1000", Some(&survivor.secret)).await;
        assert_eq!(status, 200, "{list}");
        let lasting = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["scope"] == "admin" && t["revoked_at"].is_null() && t["expires_at"].is_null())
            .count();
        assert_eq!(lasting, 1, "round {round}");
    }
});

on_both_backends!(a_flood_of_bad_tokens_is_throttled_counted_and_recorded, |ca| {
    let admin = Some(ca.admin_token.as_str());
    // A client that was working: its token has authenticated here.
    assert_eq!(ca.get("/api/v1/tokens", admin).await.0, 200);
    let fresh = make_token(ca, json!({"name": "fresh", "scope": "auditor"})).await;

    let mut statuses = Vec::new();
    for i in 0..200 {
        let response = ca
            .client
            .get(ca.admin_url("/api/v1/certificates"))
            .bearer_auth(format!("tsr_guess{i}"))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        if status == 429 {
            let wait: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=60).contains(&wait), "Retry-After {wait}");
            assert_eq!(response.headers()["content-type"], "application/problem+json");
            let problem: Value = response.json().await.unwrap();
            assert_eq!(problem["type"], "urn:tessera:problem:too-many-failed-authentications", "{problem}");
        }
        statuses.push(status);
    }
    let failures = FAILURES as usize;
    assert!(statuses[..failures].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[failures..].iter().all(|s| *s == 429), "{statuses:?}");

    // The working client behind the same address is not slowed; a token
    // never used here waits, like any unknown one.
    assert_eq!(ca.get("/api/v1/tokens", admin).await.0, 200);
    assert_eq!(ca.get("/api/v1/certificates", Some(&fresh.secret)).await.0, 429);

    // Another source is not slowed at all, and once the fresh token has
    // worked there, it works from the blocked address too.
    let elsewhere = other_source_client(ca);
    let bad = elsewhere.get(ca.admin_url("/api/v1/certificates")).bearer_auth("tsr_guess").send().await.unwrap();
    assert_eq!(bad.status(), 401);
    let good = elsewhere.get(ca.admin_url("/api/v1/certificates")).bearer_auth(&fresh.secret).send().await.unwrap();
    assert_eq!(good.status(), 200);
    assert_eq!(ca.get("/api/v1/certificates", Some(&fresh.secret)).await.0, 200);

    // Counted by reason, at once.
    let unknown = ca.metric("tessera_admin_refusals_total{reason=\"unknown-token\"}").await;
    let throttled = ca.metric("tessera_admin_refusals_total{reason=\"throttled\"}").await;
    assert_eq!((unknown, throttled), (Some(f64::from(FAILURES) + 1.0), Some(200.0 - f64::from(FAILURES) + 1.0)));

    // Written once per source and reason, with the count: three rows for 202 refusals.
    let events = written_refusals(ca).await;
    assert_eq!(events.len(), 3, "{events:#?}");
    let here = refusal(&events, "source:127.0.0.1", "unknown-token");
    assert_eq!(here["detail"]["count"], FAILURES, "{here}");
    assert_eq!(refusal(&events, "source:127.0.0.1", "throttled")["detail"]["count"], 200 - FAILURES + 1);
    assert_eq!(refusal(&events, "source:127.0.0.2", "unknown-token")["detail"]["count"], 1);
    assert!(!events.iter().any(|e| e.to_string().contains("tsr_")), "token text in the audit log: {events:#?}");

    // The block is over a minute after the last failure.
    assert_eq!(ca.get("/api/v1/certificates", Some("tsr_guess")).await.0, 401);
});

on_both_backends!(scope_refusals_are_refused_and_recorded, |ca| {
    let pipeline = make_token(ca, json!({"name": "pipeline", "scope": "issuer", "policies": ["default"]})).await;
    let dashboard = make_token(ca, json!({"name": "dashboard", "scope": "auditor"})).await;
    let serial = ca.sign(&csr_for(&["s.test"])).await["serial"].as_str().unwrap().to_owned();
    let (_, authorities) = ca.get("/api/v1/authorities", Some(&ca.admin_token)).await;
    let authority = authorities["items"][1]["id"].as_i64().unwrap();
    let (_, key) = ca.post("/api/v1/eab-keys", Some(&ca.admin_token), &json!({"policy": "default"})).await;
    let kid = key["kid"].as_str().unwrap();

    // Every route an operator (or only an admin) may use.
    let operator_only = [
        ("POST", format!("/api/v1/certificates/{serial}/revoke"), json!({})),
        ("POST", "/api/v1/policies".to_owned(), json!({"name": "x", "dns": ["*.x.test"], "max_ttl": "1h"})),
        ("PUT", "/api/v1/policies/default".to_owned(), json!({"dns": ["*"], "max_ttl": "1h"})),
        ("DELETE", "/api/v1/policies/default".to_owned(), Value::Null),
        ("POST", "/api/v1/eab-keys".to_owned(), json!({"policy": "default"})),
        ("POST", format!("/api/v1/eab-keys/{kid}/revoke"), json!({})),
        ("POST", format!("/api/v1/authorities/{authority}/crl"), json!({})),
        ("POST", format!("/api/v1/authorities/{authority}/ocsp-responder/rotate"), json!({})),
        ("POST", format!("/api/v1/authorities/{authority}/rotate"), json!({})),
        ("POST", format!("/api/v1/authorities/{authority}/renew-all"), json!({})),
        ("GET", "/api/v1/tokens".to_owned(), Value::Null),
        ("POST", "/api/v1/tokens".to_owned(), json!({"name": "x", "scope": "admin"})),
        ("PUT", format!("/api/v1/tokens/{}/policies", pipeline.id), json!({"policies": ["default"]})),
        ("POST", format!("/api/v1/tokens/{}/revoke", dashboard.id), json!({})),
    ];
    let before = common::tables::Snapshot::settled(&ca.db).await;
    let mut refused = 0;
    for token in [&pipeline.secret, &dashboard.secret] {
        for (method, path, body) in &operator_only {
            let mut request = ca.client.request(method.parse().unwrap(), ca.admin_url(path)).bearer_auth(token);
            if !body.is_null() {
                request = request.json(body);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 403, "{method} {path}");
            let problem: Value = response.json().await.unwrap();
            assert_eq!(problem["type"], "urn:tessera:problem:insufficient-scope", "{method} {path}");
            refused += 1;
        }
    }
    // An issuer token reads nothing; an auditor token signs nothing.
    for path in ["/api/v1/certificates", "/api/v1/policies", "/api/v1/audit-events", "/api/v1/eab-keys", "/api/v1/jobs"]
    {
        assert_eq!(ca.get(path, Some(&pipeline.secret)).await.0, 403, "{path}");
        refused += 1;
    }
    assert_eq!(sign(ca, &dashboard.secret, "default", "a.test").await.0, 403);
    refused += 1;
    assert_eq!(ca.snapshot().await, before, "refused requests changed the database");
    let counted = ca.metric("tessera_admin_refusals_total{reason=\"insufficient-scope\"}").await;
    assert_eq!(counted, Some(f64::from(refused)));

    let events = written_refusals(ca).await;
    assert_eq!(events.len(), 2, "one row per token: {events:#?}");
    for (name, count) in [("pipeline", operator_only.len() + 5), ("dashboard", operator_only.len() + 1)] {
        let event = events.iter().find(|e| e["detail"]["token"] == name).unwrap();
        assert_eq!(
            (event["actor"].as_str(), event["target"].as_str()),
            (Some("source:127.0.0.1"), Some("insufficient-scope"))
        );
        assert_eq!(event["detail"]["count"], count, "{event}");
    }
});

/// A client whose connections come from 127.0.0.2, another source to the
/// server on 127.0.0.1.
fn other_source_client(ca: &TestCa) -> reqwest::Client {
    let root = std::fs::read(ca.root_pem_path()).unwrap();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&root).unwrap())
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .build()
        .unwrap()
}
