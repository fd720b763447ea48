//! The seed corpus: for each target, inputs like the ones the test suite
//! sends (signed ACME requests, CSRs of each key type, OCSP requests,
//! policies, key URIs, config files, certificates and ARI answers), so the
//! fuzzer starts past the first checks. `examples/seed.rs` writes them
//! under `corpus/<target>/`; `scripts/fuzz.sh --seed` runs it.

use std::path::Path;

use der_07::Encode;
use der_07::asn1::{Null, ObjectIdentifier, OctetString};
use serde_json::{Value, json};
use spki_07::AlgorithmIdentifierOwned;
use x509_cert_02::serial_number::SerialNumber;
use x509_ocsp::builder::OcspRequestBuilder;
use x509_ocsp::ext::Nonce;
use x509_ocsp::{CertId, Request};

use crate::test_keys::{AccountKey, flattened, mac};

/// Every target's seeds, by target name.
pub fn all() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    vec![
        ("agent_certificate", agent_certificate()),
        ("agent_renewal_info", agent_renewal_info()),
        ("config", config()),
        ("csr", csr()),
        ("csr_signed", unstructured()),
        ("identifier", identifier()),
        ("jws", jws()),
        ("jws_signed", unstructured()),
        ("key_uri", key_uri()),
        ("ocsp_request", ocsp_request()),
        ("ocsp_responder", ocsp_responder()),
        ("policy", policy()),
    ]
}

/// Writes each seed as `corpus/<target>/seed-<n>`; returns how many.
pub fn write_all(corpus: &Path) -> std::io::Result<usize> {
    let mut written = 0;
    for (target, seeds) in all() {
        let dir = corpus.join(target);
        std::fs::create_dir_all(&dir)?;
        for (n, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{n}")), seed)?;
            written += 1;
        }
    }
    Ok(written)
}

fn texts(items: &[&str]) -> Vec<Vec<u8>> {
    items.iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// Byte strings for the `arbitrary`-built targets, which have no text form
/// to seed from: the fuzzer grows their corpus itself.
fn unstructured() -> Vec<Vec<u8>> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..4)
        .map(|n| {
            (0..64 << n)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state.to_le_bytes()[0]
                })
                .collect()
        })
        .collect()
}

fn jws() -> Vec<Vec<u8>> {
    let url = "https://localhost:8443/acme/default/new-account";
    let new_account = |key: AccountKey| {
        let header = json!({"alg": "HS256", "kid": "eab-kid", "url": url});
        let binding = flattened(&header, key.jwk().to_string().as_bytes(), |m| mac("HS256", m));
        let payload = json!({"termsOfServiceAgreed": true, "contact": [], "externalAccountBinding": binding});
        let header = json!({"alg": key.alg(), "jwk": key.jwk(), "nonce": "bm9uY2U", "url": url});
        flattened(&header, payload.to_string().as_bytes(), |m| key.sign(m))
    };
    let by_kid = |key: AccountKey, payload: Option<Value>| {
        let header = json!({"alg": key.alg(), "kid": "https://localhost:8443/acme/default/acct/1",
                            "nonce": "bm9uY2U", "url": "https://localhost:8443/acme/default/new-order"});
        let payload = payload.map(|p| p.to_string()).unwrap_or_default();
        flattened(&header, payload.as_bytes(), |m| key.sign(m))
    };
    // RFC 7638 §3.1's example key, with a signature that does not verify.
    let rsa = json!({"kty": "RSA", "e": "AQAB", "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"});
    let unsigned_rsa =
        flattened(&json!({"alg": "RS256", "jwk": rsa, "nonce": "bm9uY2U", "url": url}), b"{}", |_| vec![0; 256]);
    let order = json!({"identifiers": [{"type": "dns", "value": "a.test"}, {"type": "ip", "value": "127.0.0.1"}]});
    [
        new_account(AccountKey::Es256),
        new_account(AccountKey::EdDsa),
        by_kid(AccountKey::Es256, Some(order)),
        by_kid(AccountKey::EdDsa, None),
        unsigned_rsa,
        rsa,
        AccountKey::Es256.jwk(),
    ]
    .iter()
    .map(|v| v.to_string().into_bytes())
    .collect()
}

fn csr() -> Vec<Vec<u8>> {
    let request = |alg: &'static rcgen::SignatureAlgorithm, names: &[&str], pem: bool| {
        let key = rcgen::KeyPair::generate_for(alg).ok()?;
        let mut params = rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).ok()?;
        params.distinguished_name.push(rcgen::DnType::CommonName, names.first().copied().unwrap_or("label"));
        let csr = params.serialize_request(&key).ok()?;
        Some(if pem { csr.pem().ok()?.into_bytes() } else { csr.der().to_vec() })
    };
    [
        request(&rcgen::PKCS_ECDSA_P256_SHA256, &["a.test", "127.0.0.1"], false),
        request(&rcgen::PKCS_ECDSA_P384_SHA384, &["*.b.test", "::1"], true),
        request(&rcgen::PKCS_ED25519, &["spiffe://tessera.test/ns/a/sa/b"], false),
        request(&rcgen::PKCS_RSA_SHA256, &["rsa.test"], false),
        request(&rcgen::PKCS_ECDSA_P256_SHA256, &[], false),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn identifier() -> Vec<Vec<u8>> {
    texts(&[
        "web.example.test",
        "*.example.test",
        "Web.Example.TEST.",
        "127.0.0.1",
        "::ffff:10.0.0.1",
        "spiffe://tessera.test/ns/default/sa/web",
        "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66",
        "dns:a.test",
        "ip:::1",
        "uri:spiffe://tessera.test/x",
        " dns:a.test ip:10.0.0.1 uri:spiffe://t/x ",
    ])
}

fn policy() -> Vec<Vec<u8>> {
    texts(&[
        r#"{"dns": ["*.test"], "max_ttl": "24h", "default_ttl": "1h"}"#,
        r#"{"dns": ["web.example.test"], "ip_ranges": ["10.0.0.0/8", "fd00::/8"], "uris": ["spiffe://tessera.test/ns/a/*", "urn:x:y"], "key_types": ["ecdsa-p256", "rsa"], "max_ttl": "7d", "default_ttl": "1d12h30m15s"}"#,
        r#"{"uris": ["spiffe://tessera.test/*"], "max_ttl": "90m", "default_ttl": "3600s"}"#,
        r#"{"dns": ["localhost", "*.localhost", "*.test", "*.internal", "*.local"], "ip_ranges": ["127.0.0.0/8", "::1/128"], "uris": ["spiffe://tessera.test/*"], "max_ttl": "24h", "default_ttl": "24h"}"#,
    ])
}

fn key_uri() -> Vec<Vec<u8>> {
    texts(&[
        "file:/var/lib/tessera/root.key.pem",
        "file://keys/issuing.key.pem",
        "pkcs11:token=ca;object=root%20key;id=%01%02",
        "pkcs11:token=tessera;object=issuing-2;type=private?pin-source=file:/run/pin",
        "awskms:alias/tessera-root",
        "awskms:key-id=arn:aws:kms:eu-west-1:111122223333:key/1234abcd",
    ])
}

fn config() -> Vec<Vec<u8>> {
    let mut seeds = texts(&[
        "mode = \"dev\"\nhttps_addr = \"127.0.0.1:8443\"\n",
        "[revocation]\ncrl_shards = 4\ncrl_validity = \"24h\"\ncrl_refresh = \"1h\"\n\n[hierarchy.root]\nkey_uri = \"pkcs11:token=ca;object=root\"\nalgorithm = \"ecdsa-p384-sha384\"\nvalidity_days = 3650\n\n[keys.pkcs11]\nmodule = \"/usr/lib/softhsm/libsofthsm2.so\"\n",
        "[[acme.directories]]\nname = \"internal\"\npolicy = \"default\"\nchallenges = [\"http-01\", \"dns-01\"]\nrate_window = \"1h\"\n\n[lifecycle]\noverdue_share = 0.8\n[[lifecycle.webhooks]]\nurl = \"https://hooks.test/x\"\nsecret_env = \"HOOK\"\n",
    ]);
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/tessera.toml");
    seeds.extend(std::fs::read(deploy).ok());
    seeds
}

fn ocsp_request_for(serials: &[&[u8]], sha256: bool, nonce: Option<&[u8]>) -> Option<Vec<u8>> {
    let (oid, size) = if sha256 { ("2.16.840.1.101.3.4.2.1", 32) } else { ("1.3.14.3.2.26", 20) };
    let mut builder = OcspRequestBuilder::default();
    for serial in serials {
        builder = builder.with_request(Request::new(CertId {
            hash_algorithm: AlgorithmIdentifierOwned {
                oid: ObjectIdentifier::new(oid).ok()?,
                parameters: Some(Null.into()),
            },
            issuer_name_hash: OctetString::new(vec![0x11; size]).ok()?,
            issuer_key_hash: OctetString::new(vec![0x22; size]).ok()?,
            serial_number: SerialNumber::new(serial).ok()?,
        }));
    }
    if let Some(nonce) = nonce {
        builder = builder.with_extension(Nonce::new(nonce.to_vec()).ok()?).ok()?;
    }
    builder.build().to_der().ok()
}

fn ocsp_request() -> Vec<Vec<u8>> {
    let serial: &[u8] =
        &[0x3f, 0x1a, 0x22, 0x90, 0x01, 0x7c, 0xaa, 0x10, 0x55, 0x21, 0x0b, 0x9e, 0x43, 0x2d, 0x88, 0x01];
    [
        ocsp_request_for(&[serial], false, None),
        ocsp_request_for(&[serial], true, Some(&[7; 16])),
        ocsp_request_for(&[serial, &[1], &[2]], false, Some(&[1; 32])),
        ocsp_request_for(&[], false, None),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Route bytes as `ocsp::Route::from_byte` reads them, each before a request.
fn ocsp_responder() -> Vec<Vec<u8>> {
    let good: &[u8] = &[1];
    let revoked: &[u8] = &[2];
    let requests = [
        ocsp_request_for(&[good], false, None),
        ocsp_request_for(&[revoked], true, None),
        ocsp_request_for(&[good, revoked], false, Some(&[9; 16])),
        ocsp_request_for(&[&[3]], true, None),
    ];
    let mut seeds = Vec::new();
    for request in requests.into_iter().flatten() {
        for route in [1u8, 3, 4, 5, 6] {
            seeds.push([&[route][..], &request].concat());
        }
    }
    seeds.push(b"\x00MEIwQDA+MDwwOjAJBgUrDgMCGgUABBQ=".to_vec());
    seeds
}

fn agent_certificate() -> Vec<Vec<u8>> {
    let certificate = |names: &[&str]| -> Option<rcgen::Certificate> {
        let key = rcgen::KeyPair::generate().ok()?;
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .ok()?
            .self_signed(&key)
            .ok()
    };
    let leaf = certificate(&["a.test", "10.0.0.1", "spiffe://tessera.test/x"]);
    let other = certificate(&["::1"]);
    let mut seeds: Vec<Vec<u8>> = [&leaf, &other].into_iter().flatten().map(|c| c.der().to_vec()).collect();
    if let (Some(leaf), Some(other)) = (leaf, other) {
        seeds.push(format!("{}{}", leaf.pem(), other.pem()).into_bytes());
    }
    seeds
}

fn agent_renewal_info() -> Vec<Vec<u8>> {
    texts(&[
        r#"{"suggestedWindow": {"start": "2026-01-02T04:00:00Z", "end": "2026-01-03T04:00:00Z"}}"#,
        r#"{"suggestedWindow": {"start": "2026-01-03T04:00:00+02:00", "end": "2026-01-02T04:00:00.123Z"}, "explanationURL": "https://tessera.test/why"}"#,
    ])
}
