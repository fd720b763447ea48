//! What Tessera refuses and why (README): names not in their one certified
//! spelling, durations past a century, keys and signatures Tessera does
//! not accept. Each refusal answers the front end's problem document and
//! stores nothing.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Backend, TestCa, csr_for};
use serde_json::json;

on_both_backends!(uri_names_are_judged_as_parsed_uris, |ca| {
    let admin = Some(ca.admin_token.as_str());
    let (status, body) = ca
        .post(
            "/api/v1/policies",
            admin,
            &json!({"name": "ns-a", "uris": ["spiffe://tessera.test/ns/a/*"], "max_ttl": "1h"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let sign = |uri: &str| json!({"policy": "ns-a", "csr": csr_for(&[uri])});

    let before = ca.snapshot().await;
    let (status, problem) = ca.post("/api/v1/certificates", admin, &sign("spiffe://tessera.test/ns/b/sa/admin")).await;
    assert_eq!((status, problem["type"].as_str()), (403, Some("urn:tessera:problem:identifier-not-allowed")));
    for (uri, why) in [
        ("spiffe://tessera.test/ns/a/../b/sa/admin", "'..'"),
        ("spiffe://tessera.test/ns/a/%2e%2e/b/sa/admin", "percent-encoding"),
        ("spiffe://tessera.test/ns/a/sa/admin?role=root", "query"),
        ("spiffe://tessera.test/ns/a/sa/admin#x", "fragment"),
        ("spiffe://tessera.test/ns/a//sa/admin", "empty path segment"),
        ("spiffe://tessera.test/ns/a/sa/admin/", "empty path segment"),
        ("spiffe://tessera.test/ns/a\\..\\b/sa/admin", "backslash"),
        ("spiffe://tessera.test/ns/a/sa/admin\0", "control character"),
        ("spiffe://tessera.test/ns/a/sa/\x1b[2Jadmin", "control character"),
        ("spiffe://Tessera.test/ns/a/sa/admin", "trust domain"),
        ("spiffe://tessera.test:443/ns/a/sa/admin", "port"),
    ] {
        let (status, problem) = ca.post("/api/v1/certificates", admin, &sign(uri)).await;
        assert_eq!(status, 400, "{uri:?}: {problem}");
        assert_eq!(problem["type"], "urn:tessera:problem:bad-identifier", "{uri:?}: {problem}");
        assert!(problem["detail"].as_str().unwrap().contains(why), "{uri:?}: {problem}");
    }
    assert_eq!(ca.snapshot().await, before, "refused requests changed the database");

    let (status, body) = ca.post("/api/v1/certificates", admin, &sign("spiffe://tessera.test/ns/a/sa/api")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["identifiers"], json!([{"type": "uri", "value": "spiffe://tessera.test/ns/a/sa/api"}]));

    // A pattern is judged the same parsed way: none of these can be written.
    for pattern in ["spiffe://tessera.test/ns/a/../*", "spiffe://tessera.test/ns/a*", "spiffe://tessera.test/%6e%73/*"]
    {
        let (status, problem) =
            ca.post("/api/v1/policies", admin, &json!({"name": "p", "uris": [pattern], "max_ttl": "1h"})).await;
        assert_eq!(status, 400, "{pattern:?}: {problem}");
        assert!(problem["detail"].as_str().unwrap().contains("uris"), "{pattern:?}: {problem}");
    }
});

on_both_backends!(durations_past_a_century_are_refused, |ca| {
    let admin = Some(ca.admin_token.as_str());
    let before = ca.snapshot().await;
    for (field, policy) in [
        ("max_ttl", json!({"name": "forever", "dns": ["*.test"], "max_ttl": "99999999999999d"})),
        ("default_ttl", json!({"name": "forever", "dns": ["*.test"], "max_ttl": "1h", "default_ttl": "36501d"})),
    ] {
        let (status, problem) = ca.post("/api/v1/policies", admin, &policy).await;
        assert_eq!(status, 400, "{problem}");
        assert_eq!(problem["type"], "urn:tessera:problem:malformed-request", "{problem}");
        assert!(problem["detail"].as_str().unwrap().contains(field), "{problem}");
    }
    let (status, problem) = ca
        .post(
            "/api/v1/certificates",
            admin,
            &json!({"policy": "default", "csr": csr_for(&["a.test"]), "ttl": "99999999999999d"}),
        )
        .await;
    assert_eq!((status, problem["type"].as_str()), (400, Some("urn:tessera:problem:malformed-request")), "{problem}");
    assert_eq!(ca.snapshot().await, before, "refused requests changed the database");
});
