//! CRLs and OCSP as relying parties see them, checked with the openssl CLI:
//! good, then revoked after a revocation (OCSP at once, the CRL within
//! seconds); shards with matching issuing distribution points; the root's
//! CRL revoking an issuing CA; responder key rotation; and bad requests.
use crate::common::relying_party::{CertStatus, LeafFiles, crl_text, crl_until};
use crate::common::{Backend, TestCa, csr_for};
use base64::Engine;
use der_07::Encode;
use serde_json::json;
use tessera::config::AcmeOverrides;

/// A dev CA whose leaves are spread over CRL shards.
async fn sharded_ca(backend: Backend, shards: u32) -> Option<TestCa> {
    TestCa::start_acme_with(backend, AcmeOverrides::default(), |config| config.revocation.crl_shards = shards).await
}

async fn issue(ca: &TestCa, name: &str) -> (serde_json::Value, LeafFiles) {
    let issued = ca.sign(&csr_for(&[name])).await;
    let files = LeafFiles::new(ca, &issued, name);
    (issued, files)
}

async fn revoke(ca: &TestCa, serial: &str, reason: &str) {
    let (status, body) = ca
        .post(&format!("/api/v1/certificates/{serial}/revoke"), Some(&ca.admin_token), &json!({"reason": reason}))
        .await;
    assert_eq!(status, 200, "{body}");
}

async fn fetch(ca: &TestCa, path: &str) -> reqwest::Response {
    reqwest::get(ca.http_url(path)).await.unwrap()
}

fn serial_in_crl(serial: &str) -> String {
    format!("Serial Number: {}", serial.to_uppercase())
}

on_both_backends!(ocsp_answers_good_then_revoked_over_post_and_get, |ca| {
    let (_, leaf) = issue(ca, "ocsp.test").await;
    // The URL the certificate names, as a relying party reads it: the
    // listener bound to port 0 once had its port 0 written there.
    let url = leaf.ocsp_url();
    assert_eq!(url, ca.http_url("/ocsp"));

    // POST with a nonce (not echoed by default) and without, SHA-1 and SHA-256 CertIDs.
    for extra in [&[][..], &["-no_nonce"], &["-sha256"], &["-no_nonce", "-sha256"]] {
        let out = leaf.ocsp_post(&url, extra);
        assert!(out.contains("Response verify OK"), "{extra:?}: {out}");
        assert!(out.contains(": good"), "{extra:?}: {out}");
        let warnings: Vec<&str> = out.lines().filter(|line| line.contains("WARNING")).collect();
        let expected = if extra.contains(&"-no_nonce") { vec![] } else { vec!["WARNING: no nonce in response"] };
        assert_eq!(warnings, expected, "{extra:?}: {out}");
    }

    // GET (RFC 5019), with the caching headers.
    let request = leaf.ocsp_request(&[]);
    let encoded = base64::engine::general_purpose::STANDARD.encode(&request);
    let response = fetch(ca, &format!("/ocsp/{}", encoded.replace('/', "%2F").replace('+', "%2B"))).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/ocsp-response");
    for header in ["etag", "last-modified", "expires"] {
        assert!(response.headers().contains_key(header), "GET lacks {header}");
    }
    let cache_control = response.headers()["cache-control"].to_str().unwrap().to_owned();
    assert!(cache_control.contains("max-age=") && cache_control.contains("public"), "{cache_control}");
    let out = leaf.ocsp_check_response(&response.bytes().await.unwrap());
    assert!(out.contains("Response verify OK") && out.contains(": good"), "{out}");

    // A revocation shows at once, over POST and over GET.
    revoke(ca, &leaf.serial, "keyCompromise").await;
    let out = leaf.ocsp_post(&url, &["-no_nonce"]);
    assert!(out.contains("Response verify OK") && out.contains(": revoked"), "{out}");
    assert!(out.contains("Reason: keyCompromise"), "{out}");
    let response = fetch(ca, &format!("/ocsp/{}", encoded.replace('/', "%2F").replace('+', "%2B"))).await;
    let out = leaf.ocsp_check_response(&response.bytes().await.unwrap());
    assert!(out.contains(": revoked"), "{out}");
});

on_both_backends!(crl_passes_then_reports_the_revocation, |ca| {
    let (_, leaf) = issue(ca, "crl.test").await;
    let path = format!("/crl/{}", leaf.crl_url().rsplit("/crl/").next().unwrap());
    assert_eq!(leaf.crl_url(), ca.http_url(&path), "the certificate names the listener's bound address");
    let response = reqwest::get(leaf.crl_url()).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/pkix-crl");
    let etag = response.headers()["etag"].to_str().unwrap().to_owned();
    for header in ["last-modified", "expires", "cache-control"] {
        assert!(response.headers().contains_key(header), "CRL lacks {header}");
    }
    let before = response.bytes().await.unwrap().to_vec();
    let out = leaf.verify_with_crls(&[&before], false);
    assert!(out.contains(": OK"), "{out}");
    let text = crl_text(&before, ca.dir.path());
    assert!(text.contains("Version 2") && text.contains("X509v3 CRL Number"), "{text}");
    assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");

    // Unchanged: 304 for the same ETag.
    let cached = reqwest::Client::new().get(ca.http_url(&path)).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(cached.status(), 304);

    revoke(ca, &leaf.serial, "superseded").await;
    let after = crl_until(ca, &path, |text| text.contains(&serial_in_crl(&leaf.serial))).await;
    let out = leaf.verify_with_crls(&[&after], false);
    assert!(out.contains("certificate revoked"), "{out}");
    assert!(crl_text(&after, ca.dir.path()).contains("Superseded"));

    // Forcing a new CRL through the admin API gives a higher CRL number.
    let (status, body) =
        ca.post(&format!("/api/v1/authorities/{}/crl", ca_authority(&leaf)), Some(&ca.admin_token), &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body[0]["crl_number"].as_i64().unwrap() > 1, "{body}");
});

/// The issuing authority's id, read from the leaf's CRL URL (`.../crl/{id}.crl`).
fn ca_authority(leaf: &LeafFiles) -> i64 {
    let url = leaf.crl_url();
    let tail = url.rsplit("/crl/").next().unwrap();
    tail.split(['.', '/']).next().unwrap().parse().unwrap()
}

async fn sharded_crls_carry_matching_distribution_points(backend: Backend) {
    let Some(ca) = sharded_ca(backend, 4).await else { return };
    let mut leaves = Vec::new();
    for i in 0..8 {
        leaves.push(issue(&ca, &format!("shard{i}.test")).await.1);
    }
    let authority = ca_authority(&leaves[0]);
    for leaf in &leaves {
        let url = leaf.crl_url();
        let tail = url.rsplit("/crl/").next().unwrap();
        assert!(tail.starts_with(&format!("{authority}/")), "not a shard URL: {url}");
    }
    let victim = &leaves[0];
    let victim_path = format!("/crl/{}", victim.crl_url().rsplit("/crl/").next().unwrap());
    let der = fetch(&ca, &victim_path).await.bytes().await.unwrap().to_vec();
    let text = crl_text(&der, ca.dir.path());
    assert!(text.contains("X509v3 Issuing Distribution Point: critical"), "{text}");
    assert!(text.contains(&victim.crl_url()), "{text}");
    assert!(victim.verify_with_crls(&[&der], false).contains(": OK"));

    revoke(&ca, &victim.serial, "keyCompromise").await;
    let der = crl_until(&ca, &victim_path, |text| text.contains(&serial_in_crl(&victim.serial))).await;
    assert!(victim.verify_with_crls(&[&der], false).contains("certificate revoked"));
    // Another shard neither lists it nor stops its own leaves from verifying.
    if let Some(other) = leaves.iter().find(|l| l.crl_url() != victim.crl_url()) {
        let path = format!("/crl/{}", other.crl_url().rsplit("/crl/").next().unwrap());
        let der = fetch(&ca, &path).await.bytes().await.unwrap().to_vec();
        assert!(!crl_text(&der, ca.dir.path()).contains(&serial_in_crl(&victim.serial)));
        assert!(other.verify_with_crls(&[&der], false).contains(": OK"));
    }
    // The full CRL still covers every leaf.
    let full = crl_until(&ca, &format!("/crl/{authority}.crl"), |t| t.contains(&serial_in_crl(&victim.serial))).await;
    assert!(!crl_text(&full, ca.dir.path()).contains("Issuing Distribution Point"));
    ca.stop().await;
}
on_both_backends!(sharded_crls_carry_matching_distribution_points);

async fn the_root_crl_revokes_an_issuing_ca(backend: Backend) {
    let Some(ca) = TestCa::start(backend).await else { return };
    let (_, leaf) = issue(&ca, "under-issuing.test").await;
    let (_, authorities) = ca.get("/api/v1/authorities", Some(&ca.admin_token)).await;
    let items = authorities["items"].as_array().unwrap();
    let root = items.iter().find(|a| a["kind"] == "root").unwrap();
    let issuing = items.iter().find(|a| a["kind"] == "issuing").unwrap();
    let issuing_crl = fetch(&ca, &format!("/crl/{}.crl", issuing["id"])).await.bytes().await.unwrap().to_vec();
    let root_path = format!("/crl/{}.crl", root["id"]);
    let root_crl = fetch(&ca, &root_path).await.bytes().await.unwrap().to_vec();
    assert!(leaf.verify_with_crls(&[&root_crl, &issuing_crl], true).contains(": OK"));

    revoke(&ca, issuing["serial"].as_str().unwrap(), "unspecified").await;
    let serial = issuing["serial"].as_str().unwrap();
    let root_crl = crl_until(&ca, &root_path, |text| text.contains(&serial_in_crl(serial))).await;
    let out = leaf.verify_with_crls(&[&root_crl, &issuing_crl], true);
    assert!(out.contains("certificate revoked") && out.contains("at 1 depth"), "{out}");
    ca.stop().await;
}
on_both_backends!(the_root_crl_revokes_an_issuing_ca);

async fn answers_stay_valid_across_a_responder_rotation(backend: Backend) {
    let Some(ca) = TestCa::start(backend).await else { return };
    let (_, leaf) = issue(&ca, "rotate.test").await;
    let request = leaf.ocsp_request(&[]);
    let post = |ca: &TestCa| {
        let (client, url, body) = (reqwest::Client::new(), ca.http_url("/ocsp"), request.clone());
        async move {
            let response = client.post(url).header("content-type", "application/ocsp-request").body(body);
            response.send().await.unwrap().bytes().await.unwrap().to_vec()
        }
    };
    let before = post(&ca).await;
    assert!(leaf.ocsp_check_response(&before).contains("Response verify OK"));

    let authority = ca_authority(&leaf);
    let (status, body) = ca
        .post(&format!("/api/v1/authorities/{authority}/ocsp-responder/rotate"), Some(&ca.admin_token), &json!({}))
        .await;
    assert_eq!(status, 204, "{body}");
    let after = post(&ca).await;
    assert_ne!(before, after, "the response was not signed again");
    for response in [&before, &after] {
        let out = leaf.ocsp_check_response(response);
        assert!(out.contains("Response verify OK") && out.contains(": good"), "{out}");
    }
    ca.stop().await;
}
on_both_backends!(answers_stay_valid_across_a_responder_rotation);

fn ocsp_status_of(response: &[u8]) -> u8 {
    // OCSPResponse ::= SEQUENCE { responseStatus ENUMERATED, ... }
    assert_eq!(&response[..2], &[0x30, response[1]]);
    let at = if response[1] & 0x80 != 0 { 2 + (response[1] & 0x7f) as usize } else { 2 };
    assert_eq!(&response[at..at + 2], &[0x0a, 0x01], "{response:02x?}");
    response[at + 2]
}

async fn bad_requests_get_malformed_request_and_strangers_unauthorized(backend: Backend) {
    const MALFORMED: u8 = 1;
    const UNAUTHORIZED: u8 = 6;
    let Some(ca) = TestCa::start(backend).await else { return };
    let (_, leaf) = issue(&ca, "bad.test").await;
    let good = leaf.ocsp_request(&[]);
    let client = reqwest::Client::new();
    let post = |body: Vec<u8>| {
        let request = client.post(ca.http_url("/ocsp")).header("content-type", "application/ocsp-request").body(body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.bytes().await.unwrap().to_vec()
        }
    };

    // An MD5 CertID, and a CertID for an issuer Tessera does not have.
    let mut parsed: x509_ocsp::OcspRequest = der_07::Decode::from_der(&good).unwrap();
    let mut md5 = parsed.clone();
    md5.tbs_request.request_list[0].req_cert.hash_algorithm.oid =
        der_07::asn1::ObjectIdentifier::new_unwrap("1.2.840.113549.2.5");
    parsed.tbs_request.request_list[0].req_cert.issuer_key_hash = der_07::asn1::OctetString::new(vec![7; 20]).unwrap();

    let cases: Vec<(&str, Vec<u8>, u8)> = vec![
        ("garbage", b"not an OCSP request".to_vec(), MALFORMED),
        ("empty", Vec::new(), MALFORMED),
        ("truncated", good[..good.len() / 2].to_vec(), MALFORMED),
        ("unknown hash algorithm", md5.to_der().unwrap(), MALFORMED),
        ("unknown issuer", parsed.to_der().unwrap(), UNAUTHORIZED),
    ];
    for (what, body, expected) in cases {
        assert_eq!(ocsp_status_of(&post(body).await), expected, "{what}");
    }
    for path in ["/ocsp/%%%not-base64", "/ocsp/aGVsbG8="] {
        let response = fetch(&ca, path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(ocsp_status_of(&response.bytes().await.unwrap()), MALFORMED, "{path}");
    }
    // A serial this authority never issued is answered, signed, as unknown.
    let mut unknown: x509_ocsp::OcspRequest = der_07::Decode::from_der(&good).unwrap();
    unknown.tbs_request.request_list[0].req_cert.serial_number =
        x509_cert_02::serial_number::SerialNumber::new(&[0x42; 16]).unwrap();
    let status = leaf.ocsp_status_of(&post(unknown.to_der().unwrap()).await, &hex::encode([0x42; 16]));
    assert_eq!(status, CertStatus::Unknown, "a serial never issued is never good");
    ca.stop().await;
}
on_both_backends!(bad_requests_get_malformed_request_and_strangers_unauthorized);

/// `request` (DER) with a nonce extension holding `nonce`.
fn with_nonce(request: &[u8], nonce: &[u8]) -> Vec<u8> {
    let mut parsed: x509_ocsp::OcspRequest = der_07::Decode::from_der(request).unwrap();
    let value = der_07::asn1::OctetString::new(nonce).unwrap().to_der().unwrap();
    parsed.tbs_request.request_extensions = Some(vec![x509_cert_02::ext::Extension {
        extn_id: der_07::asn1::ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.48.1.2"),
        critical: false,
        extn_value: der_07::asn1::OctetString::new(value).unwrap(),
    }]);
    parsed.to_der().unwrap()
}

/// `request` asking about `serial` instead.
fn for_serial(request: &[u8], serial: &[u8]) -> Vec<u8> {
    let mut parsed: x509_ocsp::OcspRequest = der_07::Decode::from_der(request).unwrap();
    parsed.tbs_request.request_list[0].req_cert.serial_number =
        x509_cert_02::serial_number::SerialNumber::new(serial).unwrap();
    parsed.to_der().unwrap()
}

/// The nonce a successful response echoes, if any.
fn echoed_nonce(response: &[u8]) -> Option<Vec<u8>> {
    let parsed: x509_ocsp::OcspResponse = der_07::Decode::from_der(response).unwrap();
    let bytes = parsed.response_bytes?;
    let basic: x509_ocsp::BasicOcspResponse = der_07::Decode::from_der(bytes.response.as_bytes()).unwrap();
    basic.nonce().map(|n| n.0.as_bytes().to_vec())
}

async fn post_ocsp(ca: &TestCa, body: Vec<u8>) -> Vec<u8> {
    let request = reqwest::Client::new().post(ca.http_url("/ocsp")).header("content-type", "application/ocsp-request");
    let response = request.body(body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().to_vec()
}

/// OCSP signatures this node made for `reason`.
async fn signatures(ca: &TestCa, reason: &str) -> f64 {
    ca.metric(&format!("tessera_ocsp_signatures_total{{reason=\"{reason}\"}}")).await.unwrap()
}

/// Every OCSP signature this node made for a request (not ahead of one).
async fn request_signatures(ca: &TestCa) -> f64 {
    let mut total = 0.0;
    for reason in ["miss", "nonce", "multiple", "unknown"] {
        total += signatures(ca, reason).await;
    }
    total
}

on_both_backends!(nonces_are_answered_from_presigned_responses_by_default, |ca| {
    let (_, leaf) = issue(ca, "nonce.test").await;
    let plain = leaf.ocsp_request(&[]);
    let presigned = post_ocsp(ca, plain.clone()).await;
    let before = request_signatures(ca).await;
    for i in 0u32..50 {
        let answer = post_ocsp(ca, with_nonce(&plain, &[&i.to_be_bytes()[..], b"distinct"].concat())).await;
        assert!(answer == presigned, "request {i} got {} bytes signed for it, not the pre-signed answer", answer.len());
    }
    assert_eq!(request_signatures(ca).await, before, "nonces made the responder sign");
    let out = leaf.ocsp_check_response(&presigned);
    assert!(out.contains("Response verify OK") && out.contains(": good"), "{out}");
});

on_both_backends!(fresh_signatures_stay_within_their_budget);

/// With nonces echoed, at most the budget's signatures a second go to
/// nonces, serials never issued and requests for several certificates;
/// past it a nonce gets the pre-signed answer, an unknown serial
/// `unauthorized`, several certificates `tryLater`.
async fn fresh_signatures_stay_within_their_budget(backend: Backend) {
    const PER_SECOND: u32 = 5;
    const TRY_LATER: u8 = 3;
    const UNAUTHORIZED: u8 = 6;
    let Some(ca) = TestCa::start_acme_with(backend, AcmeOverrides::default(), |config| {
        config.revocation.ocsp_nonce = tessera::config::OcspNonce::Echo;
        config.revocation.ocsp_fresh_signatures_per_second = PER_SECOND;
    })
    .await
    else {
        return;
    };
    let within_budget =
        |since: std::time::Instant| (PER_SECOND as f64 * (1.0 + since.elapsed().as_secs_f64())).ceil() as usize;
    let refill = || tokio::time::sleep(std::time::Duration::from_millis(1100));
    let (_, leaf) = issue(&ca, "budget.test").await;
    let plain = leaf.ocsp_request(&[]);
    let presigned = post_ocsp(&ca, plain.clone()).await;

    // openssl checks the nonce it sent against the one echoed.
    let started = std::time::Instant::now();
    let out = leaf.ocsp_post(&ca.http_url("/ocsp"), &["-nonce"]);
    assert!(out.contains("Response verify OK") && out.contains(": good"), "{out}");
    assert!(!out.contains("WARNING"), "{out}");
    let mut echoed = 1;
    for i in 0u32..30 {
        let nonce = [&i.to_be_bytes()[..], b"budgeted"].concat();
        let answer = post_ocsp(&ca, with_nonce(&plain, &nonce)).await;
        match echoed_nonce(&answer) {
            Some(found) => {
                assert_eq!(found, nonce);
                echoed += 1;
            }
            None => assert!(answer == presigned, "past the budget, the pre-signed answer"),
        }
    }
    assert!((1..=within_budget(started)).contains(&echoed), "{echoed} nonces echoed");
    assert_eq!(signatures(&ca, "nonce").await, echoed as f64);

    refill().await;
    let started = std::time::Instant::now();
    let mut unknown = Vec::new();
    for i in 0u8..30 {
        let serial = [0x42, i, 0x42, 0x42, 0x42, 0x42, 0x42, 0x42];
        let request = for_serial(&plain, &serial);
        let answer = post_ocsp(&ca, request.clone()).await;
        if ocsp_status_of(&answer) == 0 {
            assert_eq!(leaf.ocsp_status_of(&answer, &hex::encode(serial)), CertStatus::Unknown);
            unknown.push((request, answer));
        } else {
            assert_eq!(ocsp_status_of(&answer), UNAUTHORIZED);
        }
    }
    assert!((1..=within_budget(started)).contains(&unknown.len()), "{} unknown serials signed", unknown.len());
    assert_eq!(signatures(&ca, "unknown").await, unknown.len() as f64);
    // An unknown serial asked again costs nothing: its answer was kept.
    refill().await;
    let (request, answer) = &unknown[0];
    assert_eq!(&post_ocsp(&ca, request.clone()).await, answer);
    assert_eq!(signatures(&ca, "unknown").await, unknown.len() as f64);

    refill().await;
    let mut two: x509_ocsp::OcspRequest = der_07::Decode::from_der(&plain).unwrap();
    two.tbs_request.request_list.push(two.tbs_request.request_list[0].clone());
    let two = two.to_der().unwrap();
    let started = std::time::Instant::now();
    let mut signed = 0;
    for _ in 0..30 {
        let answer = post_ocsp(&ca, two.clone()).await;
        match ocsp_status_of(&answer) {
            0 => signed += 1,
            status => assert_eq!(status, TRY_LATER),
        }
    }
    assert!((1..=within_budget(started)).contains(&signed), "{signed} requests for two certificates signed");
    assert_eq!(signatures(&ca, "multiple").await, signed as f64);
    ca.stop().await;
}
