//! `Idempotency-Key` on `POST /api/v1/certificates` (issue 19.2), on
//! SQLite and PostgreSQL: a retry with the same key and body answers the
//! same certificate without a second signature or row; another body is a
//! 422; concurrent requests with one key make one certificate; keys are
//! per token and last a day; a refused request leaves the key unused.
use crate::common::{Backend, TestCa, csr_for};
use serde_json::{Value, json};

/// POSTs raw JSON text with a token and an optional key.
async fn sign_with(ca: &TestCa, token: &str, key: Option<&str>, body: &str) -> (u16, Value, Option<String>) {
    let mut request = ca
        .client
        .post(ca.admin_url("/api/v1/certificates"))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    (status, response.json().await.unwrap(), retry_after)
}

async fn issued_events(ca: &TestCa) -> usize {
    let filter = tessera::storage::AuditFilter { action: Some("certificate.issue".into()), ..Default::default() };
    ca.db.admin().list_audit_events(&filter, 1000).await.unwrap().len()
}

on_both_backends!(a_retried_issuance_answers_the_same_certificate, |ca| {
    let admin = ca.admin_token.clone();
    let body = json!({"policy": "default", "csr": csr_for(&["retry.idem.test"])});
    let text = body.to_string();
    let (status, first, _) = sign_with(ca, &admin, Some("key-1"), &text).await;
    assert_eq!(status, 201, "{first}");
    let (rows, events) = (ca.db.count_certificates().await.unwrap(), issued_events(ca).await);

    // The same request again, even written otherwise: the same answer,
    // nothing signed or stored.
    for again in [text.clone(), serde_json::to_string_pretty(&body).unwrap()] {
        let (status, replayed, _) = sign_with(ca, &admin, Some("key-1"), &again).await;
        assert_eq!(status, 201, "{replayed}");
        for field in ["serial", "certificate", "chain", "root", "not_after"] {
            assert_eq!(replayed[field], first[field], "{field}");
        }
    }
    assert_eq!(ca.db.count_certificates().await.unwrap(), rows);
    assert_eq!(issued_events(ca).await, events);

    // The key with another request: refused, nothing stored.
    let other = json!({"policy": "default", "csr": csr_for(&["other.idem.test"])}).to_string();
    let (status, problem, _) = sign_with(ca, &admin, Some("key-1"), &other).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["type"], "urn:tessera:problem:idempotency-key-reused");
    assert_eq!(ca.db.count_certificates().await.unwrap(), rows);

    // Keys belong to their token: another token's same key is its own.
    let (status, token) = ca
        .post("/api/v1/tokens", Some(&admin), &json!({"name": "ci", "scope": "issuer", "policies": ["default"]}))
        .await;
    assert_eq!(status, 201, "{token}");
    let (status, theirs, _) = sign_with(ca, token["token"].as_str().unwrap(), Some("key-1"), &text).await;
    assert_eq!(status, 201, "{theirs}");
    assert_ne!(theirs["serial"], first["serial"]);

    // A refused request does not use its key up.
    let refused = json!({"policy": "default", "csr": csr_for(&["refused.example.com"])}).to_string();
    let (status, problem, _) = sign_with(ca, &admin, Some("key-2"), &refused).await;
    assert_eq!(status, 403, "{problem}");
    let fine = json!({"policy": "default", "csr": csr_for(&["allowed.idem.test"])}).to_string();
    assert_eq!(sign_with(ca, &admin, Some("key-2"), &fine).await.0, 201);

    // Keys that are no keys.
    for bad in ["", &"k".repeat(256), "a key"] {
        let (status, problem, _) = sign_with(ca, &admin, Some(bad), &text).await;
        assert_eq!(status, 400, "{bad:?}: {problem}");
    }

    // A day later the key is forgotten: the same request issues anew.
    ca.clock.advance(time::Duration::hours(25));
    let (status, later, _) = sign_with(ca, &admin, Some("key-1"), &text).await;
    assert_eq!(status, 201, "{later}");
    assert_ne!(later["serial"], first["serial"]);
});

on_both_backends!(concurrent_requests_with_one_key_make_one_certificate, |ca| {
    let text = json!({"policy": "default", "csr": csr_for(&["concurrent.idem.test"])}).to_string();
    let rows = ca.db.count_certificates().await.unwrap();
    let answers =
        futures::future::join_all((0..8).map(|_| sign_with(ca, &ca.admin_token, Some("same-key"), &text))).await;
    let mut serials = Vec::new();
    for (status, body, retry_after) in &answers {
        match status {
            201 => serials.push(body["serial"].as_str().unwrap().to_owned()),
            409 => {
                assert_eq!(body["type"], "urn:tessera:problem:idempotency-key-in-use", "{body}");
                assert!(retry_after.is_some(), "{body}");
            }
            _ => panic!("{status}: {body}"),
        }
    }
    assert!(!serials.is_empty());
    serials.dedup();
    assert_eq!(serials.len(), 1, "{serials:?}");
    assert_eq!(ca.db.count_certificates().await.unwrap(), rows + 1);
    // Once it is done, a retry gets it.
    let (status, again, _) = sign_with(ca, &ca.admin_token, Some("same-key"), &text).await;
    assert_eq!((status, again["serial"].as_str().unwrap()), (201, serials[0].as_str()));
});
