//! The REST admin API end to end, over HTTPS, on SQLite and PostgreSQL.
use crate::common::{Backend, TestCa, csr_for, openssl_csr, openssl_verify};
use serde_json::json;
use x509_parser::extensions::{GeneralName, ParsedExtension};

fn pem_der(pem_text: &str) -> Vec<u8> {
    pem::parse(pem_text).unwrap().contents().to_vec()
}

on_both_backends!(issues_a_verifiable_certificate_with_the_leaf_profile, |ca| {
    let body = ca.sign(&csr_for(&["api.test", "127.0.0.1", "spiffe://tessera.test/ns/prod/sa/api"])).await;
    assert_eq!(body["status"], "issued");
    assert_eq!(body["policy"], "default");
    let serial = body["serial"].as_str().unwrap();
    assert!(serial.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert!(body["chain"].as_str().unwrap().starts_with(body["certificate"].as_str().unwrap()));
    openssl_verify(
        ca.dir.path(),
        &ca.root_pem_path(),
        body["chain"].as_str().unwrap(),
        body["certificate"].as_str().unwrap(),
    )
    .unwrap();

    let der = pem_der(body["certificate"].as_str().unwrap());
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    assert_eq!(hex::encode(cert.raw_serial()), serial);
    let lifetime = cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp();
    assert!((24 * 3600..=24 * 3600 + 120).contains(&lifetime), "lifetime {lifetime}");
    let mut seen = Vec::new();
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::BasicConstraints(bc) => {
                assert!(ext.critical && !bc.ca);
                seen.push("bc");
            }
            ParsedExtension::KeyUsage(ku) => {
                assert!(ku.digital_signature() && !ku.key_encipherment() && !ku.key_cert_sign());
                seen.push("ku");
            }
            ParsedExtension::ExtendedKeyUsage(eku) => {
                assert!(eku.server_auth && eku.client_auth);
                seen.push("eku");
            }
            ParsedExtension::SubjectAlternativeName(san) => {
                let names: Vec<String> = san.general_names.iter().map(|n| format!("{n:?}")).collect();
                assert_eq!(san.general_names.len(), 3, "{names:?}");
                assert!(
                    san.general_names.iter().any(|n| matches!(n, GeneralName::URI(u) if u.starts_with("spiffe://")))
                );
                seen.push("san");
            }
            ParsedExtension::SubjectKeyIdentifier(_) => seen.push("ski"),
            ParsedExtension::AuthorityKeyIdentifier(_) => seen.push("aki"),
            ParsedExtension::AuthorityInfoAccess(aia) => {
                let urls: Vec<String> = aia.accessdescs.iter().map(|d| format!("{:?}", d.access_location)).collect();
                assert!(urls.iter().any(|u| u.contains("/ocsp")), "{urls:?}");
                assert!(urls.iter().any(|u| u.contains("/ca/")), "{urls:?}");
                seen.push("aia");
            }
            ParsedExtension::CRLDistributionPoints(_) => seen.push("cdp"),
            _ => {}
        }
    }
    seen.sort();
    assert_eq!(seen, ["aia", "aki", "bc", "cdp", "eku", "ku", "san", "ski"]);

    // The caIssuers URL serves the issuing CA certificate.
    let ca_der =
        pem_der(body["chain"].as_str().unwrap().split_inclusive("-----END CERTIFICATE-----\n").nth(1).unwrap());
    let authority = body["authority_id"].as_i64().unwrap();
    let served = reqwest::get(ca.http_url(&format!("/ca/{authority}.cer"))).await.unwrap();
    assert_eq!(served.headers()["content-type"], "application/pkix-cert");
    assert_eq!(served.bytes().await.unwrap().to_vec(), ca_der);

    // The audit log has the issuance, with the token that asked.
    let (_, events) =
        ca.get(&format!("/api/v1/audit-events?action=certificate.issue&target={serial}"), Some(&ca.admin_token)).await;
    assert_eq!(events["items"][0]["actor"], "token:admin (dev)");
});

on_both_backends!(accepts_every_supported_key_type, |ca| {
    for (name, args) in [
        ("p384.test", vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"]),
        ("ed25519.test", vec!["-newkey", "ed25519"]),
        ("rsa.test", vec!["-newkey", "rsa:2048"]),
    ] {
        let csr = openssl_csr(ca.dir.path(), &args, name);
        let body = ca.sign(&csr).await;
        openssl_verify(
            ca.dir.path(),
            &ca.root_pem_path(),
            body["chain"].as_str().unwrap(),
            body["certificate"].as_str().unwrap(),
        )
        .unwrap();
        let der = pem_der(body["certificate"].as_str().unwrap());
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert_eq!(ku.key_encipherment(), name == "rsa.test", "{name}");
    }
});

// The subject of a leaf is not stored (issue 6): the view derives it from
// the identifiers, and it must say what the certificate says. The key type,
// stored as a code, reads back as its name.
on_both_backends!(certificate_views_show_the_signed_subject_and_key_type, |ca| {
    let long = format!("{}.{}.test", "l".repeat(40), "m".repeat(40));
    let cases: [&[&str]; 4] =
        [&["a.test", "b.test"], &["127.0.0.1", "c.test"], &[long.as_str(), "d.test"], &["127.0.0.2"]];
    for names in cases {
        let body = ca.sign(&csr_for(names)).await;
        let der = pem_der(body["certificate"].as_str().unwrap());
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let serial = body["serial"].as_str().unwrap();
        let (status, got) = ca.get(&format!("/api/v1/certificates/{serial}"), Some(&ca.admin_token)).await;
        assert_eq!(status, 200, "{got}");
        assert_eq!(got["subject"].as_str(), Some(cert.subject().to_string().as_str()), "{names:?}: {got}");
        assert_eq!(got["key_type"], "ecdsa-p256", "{got}");
    }
    let csr = openssl_csr(ca.dir.path(), &["-newkey", "ed25519"], "e.test");
    let serial = ca.sign(&csr).await["serial"].as_str().unwrap().to_owned();
    let (_, got) = ca.get(&format!("/api/v1/certificates/{serial}"), Some(&ca.admin_token)).await;
    assert_eq!((got["subject"].as_str(), got["key_type"].as_str()), (Some("CN=e.test"), Some("ed25519")), "{got}");
});

on_both_backends!(gets_lists_and_revokes, |ca| {
    let token = Some(ca.admin_token.as_str());
    let a = ca.sign(&csr_for(&["a.test"])).await;
    let b = ca.sign(&csr_for(&["b.test"])).await;
    let serial_a = a["serial"].as_str().unwrap();

    let (status, got) = ca.get(&format!("/api/v1/certificates/{serial_a}"), token).await;
    assert_eq!((status, got["identifiers"][0]["value"].as_str()), (200, Some("a.test")));
    let pem = ca
        .client
        .get(ca.admin_url(&format!("/api/v1/certificates/{serial_a}")))
        .bearer_auth(&ca.admin_token)
        .header("accept", "application/pem-certificate-chain")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(pem, a["chain"].as_str().unwrap());

    let (_, by_san) = ca.get("/api/v1/certificates?san=b.test", token).await;
    assert_eq!(by_san["items"].as_array().unwrap().len(), 1);
    assert_eq!(by_san["items"][0]["serial"], b["serial"]);

    // Pages of one walk every certificate exactly once, sorted by expiry.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/certificates?limit=1&cursor={c}"),
            None => "/api/v1/certificates?limit=1".to_owned(),
        };
        let (status, page) = ca.get(&path, token).await;
        assert_eq!(status, 200, "{page}");
        for item in page["items"].as_array().unwrap() {
            seen.push((item["not_after"].as_str().unwrap().to_owned(), item["serial"].as_str().unwrap().to_owned()));
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let total = ca.db.count_certificates().await.unwrap() as usize;
    assert_eq!(seen.len(), total);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted);

    let (status, revoked) =
        ca.post(&format!("/api/v1/certificates/{serial_a}/revoke"), token, &json!({"reason": "keyCompromise"})).await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(revoked["revocation_reason"], "keyCompromise");
    let (status, again) =
        ca.post(&format!("/api/v1/certificates/{serial_a}/revoke"), token, &json!({"reason": "keyCompromise"})).await;
    assert_eq!((status, again["type"].as_str()), (409, Some("urn:tessera:problem:already-revoked")));

    let (_, revoked_list) = ca.get("/api/v1/certificates?status=revoked", token).await;
    assert_eq!(revoked_list["items"].as_array().unwrap().len(), 1);
    let far_future = "2999-01-01T00:00:00Z";
    let (_, none_after) = ca.get(&format!("/api/v1/certificates?expires_after={far_future}"), token).await;
    assert!(none_after["items"].as_array().unwrap().is_empty());

    let (status, _) = ca.get("/api/v1/certificates/7f112233445566778899", token).await;
    assert_eq!(status, 404);
    let (status, problem) = ca.get("/api/v1/certificates/not-hex", token).await;
    assert_eq!((status, problem["type"].as_str()), (400, Some("urn:tessera:problem:malformed-request")));
});

on_both_backends!(bad_input_is_refused_and_changes_nothing, |ca| {
    let admin = ca.admin_token.clone();
    // Tokens of each lower scope, and one revoked.
    let mut tokens = std::collections::HashMap::new();
    for (scope, request) in [
        ("issuer", json!({"name": "issuer", "scope": "issuer", "policies": ["default"]})),
        ("auditor", json!({"name": "auditor", "scope": "auditor"})),
        ("operator", json!({"name": "operator", "scope": "operator", "policies": ["default"]})),
    ] {
        let (status, made) = ca.post("/api/v1/tokens", Some(&admin), &request).await;
        assert_eq!(status, 201, "{made}");
        tokens.insert(scope, made["token"].as_str().unwrap().to_owned());
    }
    let (_, doomed) = ca.post("/api/v1/tokens", Some(&admin), &json!({"name": "doomed", "scope": "admin"})).await;
    let (status, _) = ca.post(&format!("/api/v1/tokens/{}/revoke", doomed["id"]), Some(&admin), &json!({})).await;
    assert_eq!(status, 200);
    let revoked_token = doomed["token"].as_str().unwrap().to_owned();

    let good_csr = csr_for(&["ok.test"]);
    let mut tampered = pem_der(&good_csr);
    let last = tampered.len() - 1;
    tampered[last] ^= 0x01;
    let tampered_pem = pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", tampered));
    let rsa1024 = openssl_csr(ca.dir.path(), &["-newkey", "rsa:1024"], "weak-rsa.test");
    let p192 =
        openssl_csr(ca.dir.path(), &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime192v1"], "weak-ec.test");
    let sign = |csr: &str| json!({"policy": "default", "csr": csr});

    let before = ca.snapshot().await;
    let cases: Vec<(&str, Option<&str>, serde_json::Value, u16, &str)> = vec![
        ("no token", None, sign(&good_csr), 401, "unauthorized"),
        ("wrong token", Some("tsr_not-a-real-token"), sign(&good_csr), 401, "unauthorized"),
        ("revoked token", Some(&revoked_token), sign(&good_csr), 401, "unauthorized"),
        ("auditor may not sign", Some(&tokens["auditor"]), sign(&good_csr), 403, "insufficient-scope"),
        ("not PEM or DER", Some(&admin), sign("hello"), 400, "bad-csr"),
        ("bad self-signature", Some(&admin), sign(&tampered_pem), 400, "bad-csr-signature"),
        ("RSA 1024", Some(&admin), sign(&rsa1024), 400, "weak-key"),
        ("P-192", Some(&admin), sign(&p192), 400, "weak-key"),
        (
            "outside the policy",
            Some(&admin),
            sign(&csr_for(&["ok.test", "www.example.com"])),
            403,
            "identifier-not-allowed",
        ),
        ("IP outside the policy", Some(&admin), sign(&csr_for(&["10.1.2.3"])), 403, "identifier-not-allowed"),
        (
            "lifetime over the cap",
            Some(&admin),
            json!({"policy": "default", "csr": good_csr, "ttl": "25h"}),
            400,
            "ttl-too-long",
        ),
        ("unknown policy", Some(&admin), json!({"policy": "nope", "csr": good_csr}), 404, "not-found"),
        (
            "unknown field",
            Some(&admin),
            json!({"policy": "default", "csr": good_csr, "extra": 1}),
            400,
            "malformed-request",
        ),
        (
            "bad ttl",
            Some(&admin),
            json!({"policy": "default", "csr": good_csr, "ttl": "soon"}),
            400,
            "malformed-request",
        ),
    ];
    for (what, token, body, status, slug) in cases {
        let (got, problem) = ca.post("/api/v1/certificates", token, &body).await;
        assert_eq!(got, status, "{what}: {problem}");
        assert_eq!(problem["type"], format!("urn:tessera:problem:{slug}"), "{what}: {problem}");
        assert_eq!(problem["status"], status, "{what}");
        assert!(problem["detail"].as_str().is_some_and(|d| !d.is_empty()), "{what}");
    }
    // The refused identifier is named.
    let (_, problem) =
        ca.post("/api/v1/certificates", Some(&admin), &sign(&csr_for(&["ok.test", "www.example.com"]))).await;
    assert_eq!(problem["identifier"]["value"], "www.example.com");
    assert!(problem["detail"].as_str().unwrap().contains("www.example.com"));

    // Malformed JSON, and JSON without its content type.
    let raw = ca
        .client
        .post(ca.admin_url("/api/v1/certificates"))
        .bearer_auth(&admin)
        .header("content-type", "application/json")
        .body("{\"policy\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), 400);
    assert_eq!(raw.headers()["content-type"], "application/problem+json");
    let untyped =
        ca.client.post(ca.admin_url("/api/v1/certificates")).bearer_auth(&admin).body("{}").send().await.unwrap();
    assert_eq!(untyped.status(), 415);

    // Scope rules beyond signing.
    let (status, _) = ca.get("/api/v1/certificates", Some(&tokens["issuer"])).await;
    assert_eq!(status, 403, "issuer may only sign");
    let (status, _) = ca.get("/api/v1/tokens", Some(&tokens["operator"])).await;
    assert_eq!(status, 403, "operator may not manage tokens");
    let (status, _) =
        ca.post("/api/v1/policies", Some(&tokens["auditor"]), &json!({"name": "x", "max_ttl": "1h"})).await;
    assert_eq!(status, 403, "auditor is read-only");
    let (status, _) = ca.get("/api/v1/no-such-route", None).await;
    assert_eq!(status, 401, "unknown routes do not answer strangers");
    let (status, _) = ca.get("/api/v1/tokens/1/revoke", None).await;
    assert_eq!(status, 401, "a wrong method does not answer strangers either");
    let (status, body) = ca.get("/api/v1/tokens/1/revoke", Some(&admin)).await;
    assert_eq!((status, body["type"].as_str()), (405, Some("urn:tessera:problem:method-not-allowed")));
    // The open path's methods are no secret (found by schemathesis: a
    // stranger's DELETE /healthz was answered 401, not 405).
    let stranger = ca.client.delete(ca.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(stranger.status(), 405);
    assert_eq!(stranger.headers()["content-type"], "application/problem+json");
    // An empty cursor is refused by every list (found by schemathesis:
    // policies read it as "after nothing" and answered the first page).
    for list in ["certificates", "policies", "authorities", "tokens", "audit-events", "eab-keys"] {
        let (status, body) = ca.get(&format!("/api/v1/{list}?cursor="), Some(&admin)).await;
        assert_eq!(status, 400, "{list}: {body}");
    }

    before.assert_unchanged(&ca.snapshot().await, &[], "a refused request");

    // Each scope can do what it is for.
    let (status, body) = ca.post("/api/v1/certificates", Some(&tokens["issuer"]), &sign(&good_csr)).await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = ca.get("/api/v1/certificates", Some(&tokens["auditor"])).await;
    assert_eq!(status, 200);
});

on_both_backends!(manages_policies, |ca| {
    let token = Some(ca.admin_token.as_str());
    let policy = json!({
        "name": "payments",
        "dns": ["*.payments.internal"],
        "ip_ranges": ["10.20.0.0/16"],
        "uris": ["spiffe://prod.example/ns/payments/*"],
        "key_types": ["ecdsa-p256"],
        "max_ttl": "1h",
    });
    let (status, created) = ca.post("/api/v1/policies", token, &policy).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["default_ttl"], "1h");
    let (status, _) = ca.post("/api/v1/policies", token, &policy).await;
    assert_eq!(status, 409);

    let sign = |csr: String, ttl: Option<&str>| {
        let mut body = json!({"policy": "payments", "csr": csr});
        if let Some(ttl) = ttl {
            body["ttl"] = json!(ttl);
        }
        body
    };
    let (status, issued) = ca
        .post(
            "/api/v1/certificates",
            token,
            &sign(
                csr_for(&["api.payments.internal", "10.20.1.1", "spiffe://prod.example/ns/payments/sa/api"]),
                Some("30m"),
            ),
        )
        .await;
    assert_eq!(status, 201, "{issued}");
    let lifetime = time::OffsetDateTime::parse(
        issued["not_after"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
        - time::OffsetDateTime::parse(
            issued["not_before"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
    assert_eq!(lifetime.whole_minutes(), 31, "30 minutes plus the one-minute backdate");
    let (status, problem) = ca.post("/api/v1/certificates", token, &sign(csr_for(&["api.test"]), None)).await;
    assert_eq!((status, problem["identifier"]["value"].as_str()), (403, Some("api.test")));
    let rsa = openssl_csr(ca.dir.path(), &["-newkey", "rsa:2048"], "rsa.payments.internal");
    let (status, problem) = ca.post("/api/v1/certificates", token, &sign(rsa, None)).await;
    assert_eq!((status, problem["type"].as_str()), (403, Some("urn:tessera:problem:key-type-not-allowed")));

    let (status, bad) = ca
        .post("/api/v1/policies", token, &json!({"name": "bad", "ip_ranges": ["10.0.0.0/99"], "max_ttl": "1h"}))
        .await;
    assert_eq!(status, 400);
    assert!(bad["detail"].as_str().unwrap().contains("ip_ranges"), "{bad}");
    // `default_ttl` may be left out, but the contract has no null for it.
    let (status, bad) =
        ca.post("/api/v1/policies", token, &json!({"name": "bad", "max_ttl": "1h", "default_ttl": null})).await;
    assert_eq!(status, 400, "{bad}");
    // Each key type once, as the contract says (schemathesis found repeats stored).
    let repeated = json!({"name": "bad", "max_ttl": "1h", "key_types": ["ecdsa-p256", "ecdsa-p256"]});
    let (status, bad) = ca.post("/api/v1/policies", token, &repeated).await;
    assert_eq!(status, 400, "{bad}");
    assert!(bad["detail"].as_str().unwrap().contains("ecdsa-p256 is listed twice"), "{bad}");

    let mut updated = policy.clone();
    updated["max_ttl"] = json!("2h");
    let (status, put) = ca
        .client
        .put(ca.admin_url("/api/v1/policies/payments"))
        .bearer_auth(&ca.admin_token)
        .json(&updated)
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(put.json::<serde_json::Value>().await.unwrap()["max_ttl"], "2h");
    let (_, list) = ca.get("/api/v1/policies", token).await;
    let names: Vec<&str> = list["items"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["default", "payments"]);

    let deleted =
        ca.client.delete(ca.admin_url("/api/v1/policies/payments")).bearer_auth(&ca.admin_token).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    let (status, _) = ca.get("/api/v1/policies/payments", token).await;
    assert_eq!(status, 404);
});

on_both_backends!(manages_tokens_and_authorities, |ca| {
    let token = Some(ca.admin_token.as_str());
    let (status, made) =
        ca.post("/api/v1/tokens", token, &json!({"name": "ci", "scope": "issuer", "policies": ["default"]})).await;
    assert_eq!(status, 201);
    let secret = made["token"].as_str().unwrap();
    assert!(secret.len() >= 43, "256 bits of randomness");
    let (_, list) = ca.get("/api/v1/tokens", token).await;
    assert!(!list.to_string().contains(secret), "a token is shown only once");
    let (status, _) = ca
        .post("/api/v1/certificates", Some(secret), &json!({"policy": "default", "csr": csr_for(&["ci.test"])}))
        .await;
    assert_eq!(status, 201);
    let (status, _) = ca.post(&format!("/api/v1/tokens/{}/revoke", made["id"]), token, &json!({})).await;
    assert_eq!(status, 200);
    let (status, _) = ca
        .post("/api/v1/certificates", Some(secret), &json!({"policy": "default", "csr": csr_for(&["ci.test"])}))
        .await;
    assert_eq!(status, 401);

    let (_, authorities) = ca.get("/api/v1/authorities", token).await;
    let items = authorities["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!((items[0]["kind"].as_str(), items[1]["kind"].as_str()), (Some("root"), Some("issuing")));
    assert_eq!(items[1]["custody"], "file");
    let issuing_id = items[1]["id"].as_i64().unwrap();
    let chain = ca
        .client
        .get(ca.admin_url(&format!("/api/v1/authorities/{issuing_id}/chain")))
        .bearer_auth(&ca.admin_token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(chain.ends_with(&std::fs::read_to_string(ca.root_pem_path()).unwrap()));
});

on_both_backends!(health_and_metrics, |ca| {
    assert_eq!(ca.running().metrics_addr, None, "no metrics listener unless configured");
    let health = ca.client.get(ca.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(ca.get("/metrics", None).await.0, 401, "/metrics needs a token");
    assert_eq!(ca.get("/metrics", Some(&ca.admin_token)).await.0, 200);
    ca.sign(&csr_for(&["m.test"])).await;
    let (_, metrics) = ca.get("/metrics", Some(&ca.admin_token)).await;
    assert!(metrics.as_str().unwrap().contains("tessera_certificates_issued_total 1"), "{metrics}");
});

/// Issue 22.4: with `metrics_addr` set, a scraper without a token gets
/// Prometheus text over plain HTTP there, and nothing else; the admin
/// listener's `/metrics` still needs a token.
async fn metrics_listener_serves_metrics_without_a_token(backend: Backend) {
    let open: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let Some(ca) = TestCa::start_acme_with(backend, Default::default(), |c| c.metrics_addr = Some(open)).await else {
        return;
    };
    let addr = ca.running().metrics_addr.expect("a metrics listener");
    ca.sign(&csr_for(&["m.test"])).await;
    let response = reqwest::get(format!("http://{addr}/metrics")).await.unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(text.contains("tessera_certificates_issued_total 1"), "{text}");
    for path in ["/api/v1/tokens", "/readyz"] {
        assert_eq!(reqwest::get(format!("http://{addr}{path}")).await.unwrap().status(), 404, "{path}");
    }
    assert_eq!(ca.get("/metrics", None).await.0, 401, "the admin listener still needs a token");
    assert_eq!(ca.get("/metrics", Some(&ca.admin_token)).await.0, 200);
    ca.stop().await;
}

on_both_backends!(metrics_listener_serves_metrics_without_a_token);

#[test]
fn openapi_lists_exactly_the_routes() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/api/openapi.yaml")).unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_mapping().unwrap() {
        for (method, _) in item.as_mapping().unwrap() {
            let method = method.as_str().unwrap();
            if ["get", "put", "post", "delete", "patch", "head", "options"].contains(&method) {
                documented.insert((method.to_uppercase(), path.as_str().unwrap().to_owned()));
            }
        }
    }
    let served: std::collections::BTreeSet<_> =
        tessera::admin::routes().iter().map(|r| (r.method.to_owned(), r.path.to_owned())).collect();
    assert_eq!(documented, served, "api/openapi.yaml and the router disagree");
}
