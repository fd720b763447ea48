//! ACME test tools: challenge responders on loopback (an http-01 web
//! server, a DNS server answering A with 127.0.0.1 and TXT from a table, a
//! tls-alpn-01 server), and a hand-rolled JWS client for requests no real
//! client would send.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hickory_resolver::proto::op::{Message, MessageType, OpCode};
use hickory_resolver::proto::rr::rdata::{A, TXT};
use hickory_resolver::proto::rr::{RData, Record, RecordType};
use serde_json::{Value, json};
use tessera::config::AcmeOverrides;
use tokio::task::JoinHandle;

use super::TestCa;

pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The ARI certificate identifier (RFC 9773 §4.1) of a DER leaf:
/// base64url(AKI keyIdentifier).base64url(serial).
pub fn ari_cert_id(der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let aki = cert
        .extensions()
        .iter()
        .find_map(|e| match e.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0.to_vec())
            }
            _ => None,
        })
        .unwrap();
    format!("{}.{}", b64(aki), b64(cert.raw_serial()))
}

pub fn sha256(bytes: &[u8]) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref().to_vec()
}

/// Challenge responders on 127.0.0.1, each on its own free port.
pub struct Responders {
    pub http_port: u16,
    pub dns_port: u16,
    pub tls_port: u16,
    http: Arc<Mutex<HashMap<String, String>>>,
    txt: Arc<Mutex<HashMap<String, Vec<String>>>>,
    tls: Arc<Mutex<HashMap<String, Arc<rustls::sign::CertifiedKey>>>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Responders {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Responders {
    pub async fn start() -> Self {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let http: Arc<Mutex<HashMap<String, String>>> = Arc::default();
        let txt: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
        let tls: Arc<Mutex<HashMap<String, Arc<rustls::sign::CertifiedKey>>>> = Arc::default();
        let mut tasks = Vec::new();

        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let http_port = listener.local_addr().unwrap().port();
        let table = http.clone();
        let app = axum::Router::new().route(
            "/.well-known/acme-challenge/{token}",
            axum::routing::get(move |axum::extract::Path(token): axum::extract::Path<String>| {
                let answer = table.lock().unwrap().get(&token).cloned();
                async move {
                    use axum::response::IntoResponse;
                    match answer {
                        Some(text) => match text.strip_prefix("REDIRECT ") {
                            Some(to) => axum::response::Redirect::temporary(to).into_response(),
                            None => text.into_response(),
                        },
                        None => (axum::http::StatusCode::NOT_FOUND, "no such token").into_response(),
                    }
                }
            }),
        );
        tasks.push(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));

        let socket = tokio::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let dns_port = socket.local_addr().unwrap().port();
        let records = txt.clone();
        tasks.push(tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else { continue };
                let Ok(query) = Message::from_vec(&buf[..n]) else { continue };
                let mut reply = Message::new(query.metadata.id, MessageType::Response, OpCode::Query);
                reply.metadata.recursion_desired = query.metadata.recursion_desired;
                reply.metadata.recursion_available = true;
                reply.metadata.authoritative = true;
                for q in &query.queries {
                    reply.add_query(q.clone());
                    let name = q.name().to_ascii().trim_end_matches('.').to_ascii_lowercase();
                    match q.query_type() {
                        RecordType::A => {
                            reply.add_answer(Record::from_rdata(q.name().clone(), 0, RData::A(A(Ipv4Addr::LOCALHOST))));
                        }
                        RecordType::TXT => {
                            for value in records.lock().unwrap().get(&name).cloned().unwrap_or_default() {
                                reply.add_answer(Record::from_rdata(
                                    q.name().clone(),
                                    0,
                                    RData::TXT(TXT::new(vec![value])),
                                ));
                            }
                        }
                        _ => {}
                    }
                }
                if let Ok(bytes) = reply.to_vec() {
                    let _ = socket.send_to(&bytes, from).await;
                }
            }
        }));

        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let tls_port = listener.local_addr().unwrap().port();
        let mut config =
            rustls::ServerConfig::builder().with_no_client_auth().with_cert_resolver(Arc::new(BySni(tls.clone())));
        config.alpn_protocols = vec![b"acme-tls/1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(stream).await {
                        let _ = tokio::io::AsyncWriteExt::shutdown(&mut tls).await;
                    }
                });
            }
        }));
        Self { http_port, dns_port, tls_port, http, txt, tls, tasks }
    }

    /// The settings that point Tessera's validation at these responders.
    pub fn overrides(&self) -> AcmeOverrides {
        AcmeOverrides {
            http01_port: Some(self.http_port),
            tlsalpn01_port: Some(self.tls_port),
            dns_resolver: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, self.dns_port))),
        }
    }

    pub fn serve_http01(&self, token: &str, body: &str) {
        self.http.lock().unwrap().insert(token.to_owned(), body.to_owned());
    }

    /// Publishes the dns-01 TXT record for `domain` (without `*.`).
    pub fn set_dns01(&self, domain: &str, key_authorization: &str) {
        let name = format!("_acme-challenge.{domain}");
        self.txt.lock().unwrap().entry(name).or_default().push(b64(sha256(key_authorization.as_bytes())));
    }

    /// Publishes a TXT value as it is, for clients that compute the digest
    /// themselves (a dns-01 hook).
    pub fn set_txt(&self, name: &str, value: &str) {
        self.txt.lock().unwrap().entry(name.to_ascii_lowercase()).or_default().push(value.to_owned());
    }

    /// Serves a tls-alpn-01 certificate for `domain` (SNI) with the acmeIdentifier.
    pub fn serve_tls_alpn01(&self, domain: &str, key_authorization: &str) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()]).unwrap();
        params
            .custom_extensions
            .push(rcgen::CustomExtension::new_acme_identifier(&sha256(key_authorization.as_bytes())));
        let cert = params.self_signed(&key).unwrap();
        let der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&der).unwrap();
        let certified = rustls::sign::CertifiedKey::new(vec![cert.der().clone()], signing);
        self.tls.lock().unwrap().insert(domain.to_owned(), Arc::new(certified));
    }
}

#[derive(Debug)]
struct BySni(Arc<Mutex<HashMap<String, Arc<rustls::sign::CertifiedKey>>>>);

impl rustls::server::ResolvesServerCert for BySni {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let name = hello.server_name()?.to_owned();
        self.0.lock().unwrap().get(&name).cloned()
    }
}

/// An account key the hand-rolled client signs with.
pub enum AccountKey {
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

impl AccountKey {
    pub fn es256() -> Self {
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new()).unwrap();
        Self::es256_from_pkcs8(pkcs8.as_ref())
    }

    pub fn es256_from_pkcs8(der: &[u8]) -> Self {
        Self::Es256(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).unwrap())
    }

    /// RSA-2048, as cert-manager generates its account keys.
    pub fn rs256() -> Self {
        Self::Rs256(RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap())
    }

    pub fn eddsa() -> Self {
        Self::EdDsa(Ed25519KeyPair::generate().unwrap())
    }

    pub fn alg(&self) -> &'static str {
        match self {
            Self::Es256(_) => "ES256",
            Self::Rs256(_) => "RS256",
            Self::EdDsa(_) => "EdDSA",
        }
    }

    pub fn jwk(&self) -> Value {
        match self {
            Self::Es256(k) => {
                let point = k.public_key().as_ref();
                json!({"crv": "P-256", "kty": "EC", "x": b64(&point[1..33]), "y": b64(&point[33..])})
            }
            Self::Rs256(k) => {
                let (n, e) = rsa_components(k.public_key().as_ref());
                json!({"e": b64(e), "kty": "RSA", "n": b64(n)})
            }
            Self::EdDsa(k) => json!({"crv": "Ed25519", "kty": "OKP", "x": b64(k.public_key().as_ref())}),
        }
    }

    pub fn thumbprint(&self) -> String {
        b64(sha256(self.jwk().to_string().as_bytes()))
    }

    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            Self::Es256(k) => k.sign(&SystemRandom::new(), message).unwrap().as_ref().to_vec(),
            Self::Rs256(k) => {
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut sig).unwrap();
                sig
            }
            Self::EdDsa(k) => k.sign(message).as_ref().to_vec(),
        }
    }
}

/// (n, e) of a PKCS#1 RSAPublicKey: SEQUENCE { INTEGER, INTEGER }.
fn rsa_components(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    fn read(der: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = der[0];
        let (len, start) = if der[1] & 0x80 == 0 {
            (der[1] as usize, 2)
        } else {
            let n = (der[1] & 0x7f) as usize;
            (der[2..2 + n].iter().fold(0usize, |acc, b| acc << 8 | *b as usize), 2 + n)
        };
        (tag, &der[start..start + len], &der[start + len..])
    }
    let (_, body, _) = read(der);
    let (_, n, rest) = read(body);
    let (_, e, _) = read(rest);
    let strip = |b: &[u8]| b.iter().copied().skip_while(|x| *x == 0).collect::<Vec<u8>>();
    (strip(n), strip(e))
}

/// A flattened JWS over `payload` (None: POST-as-GET) with this header.
pub fn flattened(key: &AccountKey, protected: &Value, payload: Option<&Value>) -> Value {
    let protected = b64(protected.to_string());
    let payload = payload.map(|p| b64(p.to_string())).unwrap_or_default();
    let signature = b64(key.sign(format!("{protected}.{payload}").as_bytes()));
    json!({"protected": protected, "payload": payload, "signature": signature})
}

/// An EAB binding (RFC 8555 §7.3.4) of `jwk` with the HMAC key.
pub fn eab_binding(alg: &str, kid: &str, hmac_b64: &str, jwk: &Value, url: &str) -> Value {
    let secret = URL_SAFE_NO_PAD.decode(hmac_b64).unwrap();
    let protected = b64(json!({"alg": alg, "kid": kid, "url": url}).to_string());
    let payload = b64(jwk.to_string());
    let algorithm = match alg {
        "HS384" => aws_lc_rs::hmac::HMAC_SHA384,
        "HS512" => aws_lc_rs::hmac::HMAC_SHA512,
        _ => aws_lc_rs::hmac::HMAC_SHA256,
    };
    let tag = aws_lc_rs::hmac::sign(
        &aws_lc_rs::hmac::Key::new(algorithm, &secret),
        format!("{protected}.{payload}").as_bytes(),
    );
    json!({"protected": protected, "payload": payload, "signature": b64(tag)})
}

/// What the server answered.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }

    pub fn location(&self) -> String {
        self.header("location").unwrap_or_else(|| panic!("no Location in {self:?}"))
    }

    /// Asserts a problem document of `kind` whose status equals the HTTP status.
    pub fn assert_problem(&self, kind: &str, status: u16) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.header("content-type").as_deref(), Some("application/problem+json"), "{self:?}");
        assert_eq!(self.body["type"], format!("urn:ietf:params:acme:error:{kind}"), "{self:?}");
        assert_eq!(self.body["status"], status, "{self:?}");
    }
}

/// A minimal ACME client that signs whatever it is told to.
pub struct AcmeClient {
    pub http: reqwest::Client,
    pub directory: Value,
    pub directory_url: String,
    pub key: AccountKey,
    pub kid: Option<String>,
}

impl AcmeClient {
    pub async fn new(ca: &TestCa, key: AccountKey) -> Self {
        let directory_url = ca.acme_directory();
        let directory = ca.client.get(&directory_url).send().await.unwrap().json().await.unwrap();
        Self { http: ca.client.clone(), directory, directory_url, key, kid: None }
    }

    pub fn url(&self, name: &str) -> String {
        self.directory[name].as_str().unwrap().to_owned()
    }

    pub async fn nonce(&self) -> String {
        let response = self.http.head(self.url("newNonce")).send().await.unwrap();
        response.headers()["replay-nonce"].to_str().unwrap().to_owned()
    }

    /// The protected header this client would send to `url`.
    pub async fn header(&self, url: &str) -> Value {
        let mut header = json!({"alg": self.key.alg(), "nonce": self.nonce().await, "url": url});
        match &self.kid {
            Some(kid) => header["kid"] = json!(kid),
            None => header["jwk"] = self.key.jwk(),
        }
        header
    }

    /// Signs and posts `payload` (None: POST-as-GET) to `url`.
    pub async fn post(&self, url: &str, payload: Option<&Value>) -> Reply {
        let header = self.header(url).await;
        self.send(url, flattened(&self.key, &header, payload).to_string().into_bytes(), "application/jose+json").await
    }

    pub async fn send(&self, url: &str, body: Vec<u8>, content_type: &str) -> Reply {
        let response = self.http.post(url).header("content-type", content_type).body(body).send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply { status, headers, body, text }
    }

    /// Registers with EAB (HS256) and remembers the account URL.
    pub async fn register(&mut self, kid: &str, hmac: &str) -> Reply {
        let url = self.url("newAccount");
        let binding = eab_binding("HS256", kid, hmac, &self.key.jwk(), &url);
        let reply = self
            .post(&url, Some(&json!({"termsOfServiceAgreed": true, "contact": ["mailto:ops@tessera.test"], "externalAccountBinding": binding})))
            .await;
        assert_eq!(reply.status, 201, "{reply:?}");
        self.kid = Some(reply.location());
        reply
    }

    pub fn key_authorization(&self, token: &str) -> String {
        format!("{token}.{}", self.key.thumbprint())
    }

    /// Polls `url` (POST-as-GET) until its status leaves pending/processing.
    pub async fn poll(&self, url: &str) -> Reply {
        for _ in 0..100 {
            let reply = self.post(url, None).await;
            match reply.body["status"].as_str() {
                Some("pending" | "processing") => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
                _ => return reply,
            }
        }
        panic!("{url} did not settle");
    }

    /// newOrder for DNS names, every authorization solved with http-01 on
    /// `responders`; returns the ready order's URL and body.
    pub async fn ready_order(&self, responders: &Responders, names: &[&str]) -> (String, Value) {
        let identifiers: Vec<Value> = names.iter().map(|n| json!({"type": "dns", "value": n})).collect();
        self.ready_order_with(responders, &json!({"identifiers": identifiers})).await
    }

    /// Like `ready_order`, for a newOrder payload of the caller's making
    /// (`notAfter`, `replaces`, wildcards: those are solved with dns-01).
    pub async fn ready_order_with(&self, responders: &Responders, payload: &Value) -> (String, Value) {
        let order = self.post(&self.url("newOrder"), Some(payload)).await;
        assert_eq!(order.status, 201, "{order:?}");
        let order_url = order.location();
        for authz_url in order.body["authorizations"].as_array().unwrap() {
            let authz = self.post(authz_url.as_str().unwrap(), None).await;
            let challenges = authz.body["challenges"].as_array().unwrap();
            let challenge = match challenges.iter().find(|c| c["type"] == "http-01") {
                Some(http01) => {
                    let token = http01["token"].as_str().unwrap();
                    responders.serve_http01(token, &self.key_authorization(token));
                    http01
                }
                None => {
                    let dns01 = challenges.iter().find(|c| c["type"] == "dns-01").unwrap();
                    let domain = authz.body["identifier"]["value"].as_str().unwrap();
                    responders.set_dns01(domain, &self.key_authorization(dns01["token"].as_str().unwrap()));
                    dns01
                }
            };
            let started = self.post(challenge["url"].as_str().unwrap(), Some(&json!({}))).await;
            assert_eq!(started.status, 200, "{started:?}");
            let settled = self.poll(authz_url.as_str().unwrap()).await;
            assert_eq!(settled.body["status"], "valid", "{settled:?}");
        }
        let ready = self.poll(&order_url).await;
        assert_eq!(ready.body["status"], "ready", "{ready:?}");
        (order_url, ready.body)
    }
}
