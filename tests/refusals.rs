//! What Tessera refuses and why (README): names not in their one certified
//! spelling, durations past a century, keys and signatures Tessera does
//! not accept. Each refusal answers the front end's problem document and
//! stores nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::acme::{AccountKey, AcmeClient, Reply, Responders, b64, flattened};
use common::{Backend, TestCa, csr_for, csr_with_key, openssl_csr};
use serde_json::{Value, json};

/// The order n of the P-256 group.
const P256_ORDER: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";

/// n - s for a big-endian s below n: the S of a signature's twin, which
/// verifies as the original does.
fn mirrored_s(s: &[u8]) -> Vec<u8> {
    let order = hex::decode(P256_ORDER).unwrap();
    let s = [vec![0; order.len() - s.len()], s.to_vec()].concat();
    let mut out = vec![0u8; order.len()];
    let mut borrow = 0;
    for i in (0..order.len()).rev() {
        let digit = i16::from(order[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(digit < 0);
        out[i] = (digit + 256 * borrow) as u8;
    }
    out
}

/// s > n/2, that is s > n - s (n is odd).
fn is_high_s(s: &[u8]) -> bool {
    let padded = [vec![0; 32 - s.len()], s.to_vec()].concat();
    padded > mirrored_s(s)
}

/// An ES256 JWS whose signature is in the high-S form (`high`) or the
/// low-S form, by taking the twin (n - s) when it is in the other.
fn jws_with_s(key: &AccountKey, protected: &Value, payload: &Value, high: bool) -> Vec<u8> {
    let mut jws = flattened(key, protected, Some(payload));
    let mut signature = URL_SAFE_NO_PAD.decode(jws["signature"].as_str().unwrap()).unwrap();
    if is_high_s(&signature[32..]) != high {
        let twin = mirrored_s(&signature[32..]);
        signature[32..].copy_from_slice(&twin);
    }
    jws["signature"] = json!(b64(&signature));
    jws.to_string().into_bytes()
}

/// The PEM CSR with its P-256 self-signature in the high-S form (`high`)
/// or the low-S form, by taking the twin (n - s) when it is in the other.
fn csr_with_s(pem_text: &str, high: bool) -> String {
    use der::{Decode, Encode};
    #[derive(der::Sequence)]
    struct Signature {
        r: der::asn1::Uint,
        s: der::asn1::Uint,
    }
    let der_bytes = pem::parse(pem_text).unwrap().into_contents();
    let mut request = x509_cert::request::CertReq::from_der(&der_bytes).unwrap();
    let signature = Signature::from_der(request.signature.raw_bytes()).unwrap();
    let s = signature.s.as_bytes().to_vec();
    let s = if is_high_s(&s) == high { s } else { mirrored_s(&s) };
    let twin = Signature { r: signature.r, s: der::asn1::Uint::new(&s).unwrap() };
    request.signature = der::asn1::BitString::from_bytes(&twin.to_der().unwrap()).unwrap();
    pem::encode(&pem::Pem::new("CERTIFICATE REQUEST", request.to_der().unwrap()))
}

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

on_both_backends!(an_address_is_never_a_dns_name, |ca| {
    let admin = Some(ca.admin_token.as_str());
    let before = ca.snapshot().await;
    let (status, problem) =
        ca.post("/api/v1/policies", admin, &json!({"name": "typo", "dns": ["10.0.0.1"], "max_ttl": "1h"})).await;
    assert_eq!(status, 400, "a DNS pattern that is an address: {problem}");
    assert!(problem["detail"].as_str().unwrap().contains("dns"), "{problem}");
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = vec![rcgen::SanType::DnsName("127.0.0.1".try_into().unwrap())];
    let csr = params.serialize_request(&rcgen::KeyPair::generate().unwrap()).unwrap().pem().unwrap();
    let (status, problem) = ca.post("/api/v1/certificates", admin, &json!({"policy": "default", "csr": csr})).await;
    assert_eq!((status, problem["type"].as_str()), (400, Some("urn:tessera:problem:bad-identifier")), "{problem}");
    assert_eq!(ca.snapshot().await, before, "refused requests changed the database");
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

on_both_backends!(rsa_csr_keys_need_exponent_65537, |ca| {
    let rsa_e3 = openssl_csr(ca.dir.path(), &["-newkey", "rsa:2048", "-pkeyopt", "rsa_keygen_pubexp:3"], "e3.test");
    let before = ca.snapshot().await;
    let (status, problem) =
        ca.post("/api/v1/certificates", Some(&ca.admin_token), &json!({"policy": "default", "csr": rsa_e3})).await;
    assert_eq!((status, problem["type"].as_str()), (400, Some("urn:tessera:problem:weak-key")), "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("65537"), "{problem}");
    assert_eq!(ca.snapshot().await, before, "a refused request changed the database");
});

on_both_backends!(high_s_csrs_are_counted_and_refused_where_the_policy_says, |ca| {
    let admin = Some(ca.admin_token.as_str());
    let (status, body) = ca
        .post(
            "/api/v1/policies",
            admin,
            &json!({"name": "low-s", "dns": ["*.test"], "max_ttl": "1h", "require_low_s": true}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["require_low_s"], true, "{body}");
    let csr = csr_for(&["twins.test"]);
    let (low, high) = (csr_with_s(&csr, false), csr_with_s(&csr, true));
    let sign = |policy: &str, csr: &str| json!({"policy": policy, "csr": csr});

    let before = ca.snapshot().await;
    let (status, problem) = ca.post("/api/v1/certificates", admin, &sign("low-s", &high)).await;
    assert_eq!((status, problem["type"].as_str()), (400, Some("urn:tessera:problem:bad-csr-signature")), "{problem}");
    assert_eq!(ca.snapshot().await, before, "a refused request changed the database");

    // The low-S twin passes the strict policy; the high-S one passes a
    // policy that does not ask, and is counted.
    let (status, body) = ca.post("/api/v1/certificates", admin, &sign("low-s", &low)).await;
    assert_eq!(status, 201, "{body}");
    let series = "tessera_high_s_signatures_total{source=\"csr\",scope=\"default\"}";
    assert_eq!(ca.metric(series).await, None);
    let (status, body) = ca.post("/api/v1/certificates", admin, &sign("default", &high)).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(ca.metric(series).await, Some(1.0));
    let all = "tessera_ecdsa_signatures_total{source=\"csr\",scope=\"low-s\"}";
    assert_eq!(ca.metric(all).await, Some(2.0), "both twins were seen under low-s");
});

async fn acme_snapshot(ca: &TestCa) -> Vec<i64> {
    let mut rows = ca.db.count_acme_rows().await.unwrap().to_vec();
    rows.push(ca.db.count_certificates().await.unwrap());
    rows.push(ca.db.count_audit_events().await.unwrap());
    rows
}

/// Sends a request that must be refused with `kind` and must store nothing.
async fn refused(ca: &TestCa, case: &str, kind: &str, reply: impl std::future::Future<Output = Reply>) {
    let before = acme_snapshot(ca).await;
    let reply = reply.await;
    reply.assert_problem(kind, 400);
    assert_eq!(acme_snapshot(ca).await, before, "{case}: a refused request stored something");
}

/// An RSA-2048 account key with public exponent 3, which only the openssl
/// CLI will make; it also signs (RS256 is PKCS#1 v1.5 with SHA-256).
struct ExponentThreeKey {
    dir: std::path::PathBuf,
}

impl ExponentThreeKey {
    fn generate(dir: &std::path::Path) -> Self {
        let out = Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
            .args(["-pkeyopt", "rsa_keygen_pubexp:3", "-out"])
            .arg(dir.join("e3.key"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        Self { dir: dir.to_path_buf() }
    }

    fn jwk(&self) -> Value {
        let out =
            Command::new("openssl").args(["rsa", "-noout", "-modulus", "-in"]).arg(self.dir.join("e3.key")).output();
        let text = String::from_utf8(out.unwrap().stdout).unwrap();
        let modulus = hex::decode(text.trim().strip_prefix("Modulus=").unwrap()).unwrap();
        json!({"e": b64([3]), "kty": "RSA", "n": b64(modulus)})
    }

    fn flattened(&self, protected: &Value, payload: &Value) -> Vec<u8> {
        let input = format!("{}.{}", b64(protected.to_string()), b64(payload.to_string()));
        std::fs::write(self.dir.join("e3.input"), &input).unwrap();
        let out = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(self.dir.join("e3.key"))
            .arg(self.dir.join("e3.input"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let (protected, payload) = input.split_once('.').unwrap();
        json!({"protected": protected, "payload": payload, "signature": b64(out.stdout)}).to_string().into_bytes()
    }
}

/// A CA with a second directory, `strict`, that requires low-S, and Alice
/// registered on `default` with a P-256 key whose PKCS#8 the test keeps.
async fn acme_with_alice(backend: Backend) -> Option<(Responders, TestCa, AcmeClient, Vec<u8>)> {
    let responders = Responders::start().await;
    let strict_directory = |config: &mut tessera::config::Config| {
        let mut strict = config.acme.directories[0].clone();
        strict.name = "strict".into();
        strict.require_low_s = true;
        config.acme.directories.push(strict);
    };
    let ca = TestCa::start_acme_with(backend, responders.overrides(), strict_directory).await?;
    let (kid, hmac) = ca.eab_key(false).await;
    let pkcs8 = rcgen::KeyPair::generate().unwrap().serialize_der();
    let mut alice = AcmeClient::new(&ca, AccountKey::es256_from_pkcs8(&pkcs8)).await;
    alice.register(&kid, &hmac).await;
    Some((responders, ca, alice, pkcs8))
}

fn order_payload() -> Value {
    json!({"identifiers": [{"type": "dns", "value": "refused.test"}]})
}

/// RFC 7515 §4.1.11: Tessera understands no critical extension.
async fn a_crit_header_is_refused(backend: Backend) {
    let Some((_responders, ca, alice, _)) = acme_with_alice(backend).await else { return };
    let new_order = alice.url("newOrder");
    let mut header = alice.header(&new_order).await;
    header["crit"] = json!(["exp"]);
    header["exp"] = json!(4_000_000_000u64);
    let body = flattened(&alice.key, &header, Some(&order_payload())).to_string().into_bytes();
    refused(&ca, "crit", "malformed", alice.send(&new_order, body, "application/jose+json")).await;
    ca.stop().await;
}

on_both_backends!(a_crit_header_is_refused);

/// RFC 8555 §7.3.5: the inner JWS of a key change carries no nonce.
async fn a_nonce_in_the_inner_key_change_jws_is_refused(backend: Backend) {
    let Some((_responders, ca, alice, _)) = acme_with_alice(backend).await else { return };
    let key_change = alice.url("keyChange");
    let new_key = AccountKey::es256();
    let inner_header = json!({"alg": "ES256", "jwk": new_key.jwk(), "url": key_change, "nonce": alice.nonce().await});
    let inner_payload = json!({"account": alice.kid.clone().unwrap(), "oldKey": alice.key.jwk()});
    let inner = flattened(&new_key, &inner_header, Some(&inner_payload));
    refused(&ca, "inner nonce", "malformed", alice.post(&key_change, Some(&inner))).await;
    ca.stop().await;
}

on_both_backends!(a_nonce_in_the_inner_key_change_jws_is_refused);

async fn an_rsa_account_key_with_exponent_3_is_refused(backend: Backend) {
    let Some((_responders, ca, alice, _)) = acme_with_alice(backend).await else { return };
    let e3 = ExponentThreeKey::generate(ca.dir.path());
    let new_account = alice.url("newAccount");
    let (kid, hmac) = ca.eab_key(false).await;
    let binding = common::acme::eab_binding("HS256", &kid, &hmac, &e3.jwk(), &new_account);
    let header = json!({"alg": "RS256", "jwk": e3.jwk(), "nonce": alice.nonce().await, "url": new_account});
    let payload = json!({"termsOfServiceAgreed": true, "externalAccountBinding": binding});
    let body = e3.flattened(&header, &payload);
    refused(&ca, "RSA e=3", "badPublicKey", alice.send(&new_account, body, "application/jose+json")).await;
    ca.stop().await;
}

on_both_backends!(an_rsa_account_key_with_exponent_3_is_refused);

/// RFC 8555 §11.1: no certificate for the account's own key.
async fn a_csr_for_the_account_key_is_refused(backend: Backend) {
    let Some((responders, ca, alice, pkcs8)) = acme_with_alice(backend).await else { return };
    let (_, ready) = alice.ready_order(&responders, &["own.refused.test"]).await;
    let finalize = ready["finalize"].as_str().unwrap().to_owned();
    let account_key = rcgen::KeyPair::try_from(pkcs8.as_slice()).unwrap();
    let own = b64(pem::parse(csr_with_key(&["own.refused.test"], &account_key)).unwrap().contents());
    refused(&ca, "account key", "badCSR", alice.post(&finalize, Some(&json!({"csr": own})))).await;
    let other = b64(pem::parse(csr_for(&["own.refused.test"])).unwrap().contents());
    let done = alice.post(&finalize, Some(&json!({"csr": other}))).await;
    assert_eq!(done.body["status"], "valid", "{done:?}");
    ca.stop().await;
}

on_both_backends!(a_csr_for_the_account_key_is_refused);

/// A high-S ES256 signature is counted where it is allowed, and refused
/// where the directory requires low S; its low-S twin is accepted there.
async fn high_s_jws_are_counted_and_refused_where_the_directory_says(backend: Backend) {
    let Some((_responders, ca, alice, _)) = acme_with_alice(backend).await else { return };
    let series = "tessera_high_s_signatures_total{source=\"acme_jws\",scope=\"default\"}";
    let before = ca.metric(series).await.unwrap_or(0.0);
    let new_order = alice.url("newOrder");
    let header = alice.header(&new_order).await;
    let body = jws_with_s(&alice.key, &header, &order_payload(), true);
    let accepted = alice.send(&new_order, body, "application/jose+json").await;
    assert_eq!(accepted.status, 201, "{accepted:?}");
    assert_eq!(ca.metric(series).await, Some(before + 1.0));

    let strict_url = ca.acme_directory().replace("/default/", "/strict/");
    let directory = ca.client.get(&strict_url).send().await.unwrap().json().await.unwrap();
    let strict = AcmeClient {
        directory,
        directory_url: strict_url,
        http: ca.client.clone(),
        key: AccountKey::es256(),
        kid: None,
    };
    let new_account = strict.url("newAccount");
    let (kid, hmac) = ca.eab_key(false).await;
    let binding = common::acme::eab_binding("HS256", &kid, &hmac, &strict.key.jwk(), &new_account);
    let payload = json!({"termsOfServiceAgreed": true, "externalAccountBinding": binding});
    let high = jws_with_s(&strict.key, &strict.header(&new_account).await, &payload, true);
    refused(&ca, "high S", "malformed", strict.send(&new_account, high, "application/jose+json")).await;
    let low = jws_with_s(&strict.key, &strict.header(&new_account).await, &payload, false);
    let created = strict.send(&new_account, low, "application/jose+json").await;
    assert_eq!(created.status, 201, "the low-S twin is accepted: {created:?}");
    ca.stop().await;
}

on_both_backends!(high_s_jws_are_counted_and_refused_where_the_directory_says);
