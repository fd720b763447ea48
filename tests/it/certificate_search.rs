//! Searching the inventory (`GET /api/v1/certificates`): by DNS suffix,
//! SPIFFE prefix, subject, requester, status, authority and kind, combined
//! and paged; Tessera's own certificates marked `internal`, counted apart
//! in the expirations summary and never revoked by hand. On both backends.
use std::collections::BTreeSet;

use crate::common::{Backend, TestCa, csr_for};
use serde_json::{Value, json};
use tessera::clock::Clock;

/// Signs a CSR for `names` under the default policy with `token`.
async fn issue(ca: &TestCa, token: &str, names: &[&str]) -> String {
    let body = json!({"policy": "default", "csr": csr_for(names)});
    let (status, issued) = ca.post("/api/v1/certificates", Some(token), &body).await;
    assert_eq!(status, 201, "{issued}");
    issued["serial"].as_str().unwrap().to_owned()
}

/// Every certificate a query lists, following its pages of `limit`, in
/// listing order; each page is checked to be in (not_after, serial) order.
async fn listed(ca: &TestCa, query: &str, limit: usize) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/certificates?limit={limit}&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = ca.get(&path, Some(&ca.admin_token)).await;
        assert_eq!(status, 200, "{path}: {page}");
        let page_items = page["items"].as_array().unwrap();
        assert!(page_items.len() <= limit, "{page}");
        items.extend(page_items.iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let keys: Vec<_> = items
        .iter()
        .map(|i| (i["not_after"].as_str().unwrap().to_owned(), i["serial"].as_str().unwrap().to_owned()))
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "{query}");
    items
}

async fn serials(ca: &TestCa, query: &str) -> BTreeSet<String> {
    let items = listed(ca, query, 100).await;
    let set: BTreeSet<String> = items.iter().map(|i| i["serial"].as_str().unwrap().to_owned()).collect();
    assert_eq!(set.len(), items.len(), "{query}: a certificate listed twice");
    set
}

fn set(serials: &[&String]) -> BTreeSet<String> {
    serials.iter().map(|s| (*s).clone()).collect()
}

on_both_backends!(each_filter_finds_what_it_names, |ca| {
    let admin = ca.admin_token.clone();
    let (status, made) = ca.post("/api/v1/tokens", Some(&admin), &json!({"name": "ci", "scope": "admin"})).await;
    assert_eq!(status, 201, "{made}");
    let ci = made["token"].as_str().unwrap().to_owned();

    let api = issue(ca, &admin, &["api.payments.internal"]).await;
    let db = issue(ca, &ci, &["db.payments.internal", "db.shop.internal"]).await;
    let both = issue(ca, &ci, &["a.payments.internal", "b.payments.internal"]).await;
    let apex = issue(ca, &admin, &["payments.internal"]).await;
    let lookalike = issue(ca, &admin, &["xpayments.internal", "payments.internal.test"]).await;
    let prod = issue(ca, &ci, &["spiffe://tessera.test/ns/prod/sa/api"]).await;
    let production = issue(ca, &admin, &["spiffe://tessera.test/ns/production/sa/api"]).await;
    let dev = issue(ca, &admin, &["spiffe://tessera.test/ns/dev/sa/api"]).await;

    // A suffix: names under the domain, with or without `*`, never the
    // domain itself or a name that only ends in the same letters; a
    // certificate with two names under it is listed once.
    let under = set(&[&api, &db, &both]);
    assert_eq!(serials(ca, "san_suffix=.payments.internal").await, under);
    assert_eq!(serials(ca, "san_suffix=*.payments.internal").await, under);
    assert_eq!(serials(ca, "san_suffix=.PAYMENTS.internal").await, under);
    assert_eq!(serials(ca, "san_suffix=.internal").await.len(), 5, "{apex} {lookalike}");
    assert_eq!(serials(ca, "san=payments.internal").await, set(&[&apex]));
    assert_eq!(serials(ca, "san=db.shop.internal").await, set(&[&db]));

    // A SPIFFE prefix: by whole text from the start.
    assert_eq!(serials(ca, "spiffe_prefix=spiffe://tessera.test/ns/prod/").await, set(&[&prod]));
    assert_eq!(serials(ca, "spiffe_prefix=spiffe://tessera.test/ns/prod").await, set(&[&prod, &production]));
    assert_eq!(serials(ca, "spiffe_prefix=spiffe://tessera.test/").await, set(&[&prod, &production, &dev]));

    // The subject as the view shows it.
    let (_, shown) = ca.get(&format!("/api/v1/certificates/{db}"), Some(&admin)).await;
    assert_eq!(shown["subject"], "CN=db.payments.internal");
    assert_eq!(serials(ca, "subject=CN%3Ddb.payments.internal").await, set(&[&db]));
    assert!(serials(ca, "subject=CN%3Ddb.shop.internal").await.is_empty());

    // The requester as the view shows it; combined with a suffix.
    assert_eq!(shown["requester"], "token:ci");
    assert_eq!(serials(ca, "requester=token:ci").await, set(&[&db, &both, &prod]));
    assert_eq!(serials(ca, "requester=token:ci&san_suffix=.payments.internal").await, set(&[&db, &both]));
    assert_eq!(
        serials(ca, "requester=token:ci&san_suffix=.shop.internal&subject=CN%3Ddb.payments.internal").await,
        set(&[&db])
    );

    // Status and authority, alone and with a name.
    let (status, _) = ca.post(&format!("/api/v1/certificates/{both}/revoke"), Some(&admin), &json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(serials(ca, "status=revoked&san_suffix=.payments.internal").await, set(&[&both]));
    assert_eq!(serials(ca, "status=issued&san_suffix=.payments.internal").await, set(&[&api, &db]));
    let authority = shown["authority_id"].as_i64().unwrap();
    assert_eq!(serials(ca, &format!("authority={authority}&san_suffix=.payments.internal")).await, under);
    assert!(serials(ca, &format!("authority={}&san_suffix=.payments.internal", authority + 100)).await.is_empty());

    // Paging under a filter: pages of one walk the same certificates.
    let paged = listed(ca, "san_suffix=.payments.internal", 1).await;
    let paged: BTreeSet<String> = paged.iter().map(|i| i["serial"].as_str().unwrap().to_owned()).collect();
    assert_eq!(paged, under);
    let paged = listed(ca, "requester=token:ci&status=issued", 1).await;
    assert_eq!(paged.len(), 2, "{paged:?}");

    // What no filter can mean is refused, naming the field.
    for query in [
        "san_suffix=..",
        "san_suffix=*.*.internal",
        "san_suffix=",
        "spiffe_prefix=https://x/",
        "spiffe_prefix=spiffe://",
        "kind=tessera",
        "subject=",
        "requester=",
    ] {
        let (status, body) = ca.get(&format!("/api/v1/certificates?{query}"), Some(&admin)).await;
        assert_eq!(status, 400, "{query}: {body}");
    }
});

on_both_backends!(tesseras_own_certificates_are_internal, |ca| {
    let admin = ca.admin_token.clone();
    let leaf = issue(ca, &admin, &["leaf.test"]).await;
    let (_, shown) = ca.get(&format!("/api/v1/certificates/{leaf}"), Some(&admin)).await;
    assert_eq!(shown["kind"], "workload", "{shown}");

    // Its TLS certificate, its OCSP responders' and its CA certificates.
    let internal = listed(ca, "kind=internal", 100).await;
    assert!(internal.iter().all(|c| c["kind"] == "internal" && c["requester"] == "tessera"), "{internal:?}");
    let subjects: Vec<&str> = internal.iter().map(|c| c["subject"].as_str().unwrap()).collect();
    assert!(subjects.iter().any(|s| s.contains("OCSP responder")), "{subjects:?}");
    assert!(
        internal.iter().any(|c| c["identifiers"].as_array().unwrap().iter().any(|i| i["value"] == "localhost")),
        "{internal:?}"
    );
    let workloads = listed(ca, "kind=workload", 100).await;
    assert!(workloads.iter().all(|c| c["kind"] == "workload"), "{workloads:?}");
    // Without `kind`, every kind.
    let all = listed(ca, "", 100).await;
    assert_eq!(all.len(), internal.len() + workloads.len());
    assert_eq!(serials(ca, "kind=internal&requester=tessera").await.len(), internal.len());

    // Rotation replaces the TLS and responder certificates: an admin
    // cannot revoke one, and nothing changes. (A CA certificate, internal
    // too, stays revocable: tests/it/revocation.rs revokes an issuing CA.)
    let (_, authorities) = ca.get("/api/v1/authorities", Some(&admin)).await;
    let issuing = authorities["items"].as_array().unwrap().iter().find(|a| a["kind"] == "issuing").unwrap().clone();
    assert!(internal.iter().any(|c| c["serial"] == issuing["serial"]), "{issuing} {internal:?}");
    let tls = internal
        .iter()
        .find(|c| c["identifiers"].as_array().unwrap().iter().any(|i| i["value"] == "localhost"))
        .unwrap()["serial"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = ca.snapshot().await;
    let (status, body) = ca.post(&format!("/api/v1/certificates/{tls}/revoke"), Some(&admin), &json!({})).await;
    assert_eq!(status, 409, "{body}");
    before.assert_unchanged(&ca.snapshot().await, &[], "a revoke of Tessera's own certificate");

    // The expirations summary: the top-level figures are the workloads',
    // Tessera's own are under `internal`; each agrees with its listing.
    let (status, summary) = ca.get("/api/v1/expirations", Some(&admin)).await;
    assert_eq!(status, 200, "{summary}");
    let now = ca.clock.unix();
    // The list bound is exclusive, the summary's inclusive (the TLS
    // certificate lives exactly 7 d).
    let week = time::OffsetDateTime::from_unix_timestamp(now + 7 * 86_400 + 1)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let mut internal_week = 0;
    let mut workload_week = 0;
    for line in summary["authorities"].as_array().unwrap() {
        let id = line["authority_id"].as_i64().unwrap();
        let count = |kind: &'static str| {
            let query = format!("kind={kind}&status=issued&authority={id}&expires_before={week}");
            async move { listed(ca, &query, 100).await.len() as i64 }
        };
        assert_eq!(line["expiring"]["7d"].as_i64().unwrap(), count("workload").await, "{line}");
        assert_eq!(line["internal"]["expiring"]["7d"].as_i64().unwrap(), count("internal").await, "{line}");
        workload_week += line["expiring"]["7d"].as_i64().unwrap();
        internal_week += line["internal"]["expiring"]["7d"].as_i64().unwrap();
    }
    assert_eq!(workload_week, 1, "{summary}");
    assert!(internal_week >= 2, "the TLS and responder certificates: {summary}");
});
