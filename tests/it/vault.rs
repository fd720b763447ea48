//! The Vault-compatible PKI API (issue 20) as its clients use it:
//! cert-manager's Vault issuer replayed request by request as
//! `../shared/CERT-MANAGER.md` section 5 describes it, csi-driver-spiffe's
//! URI-only request, Tessera-made keys, refusals that change nothing, and
//! the real `hvac` client driving a running server (`tests/vault/hvac_client.py`).
//!
//! hvac comes from the venv `scripts/test.sh` installs it into
//! (`TESSERA_HVAC_VENV`). Without it its test is skipped, saying so, unless
//! `TESSERA_TEST_HVAC=required` (set by `scripts/test.sh`) or a CI run makes
//! its absence a failure.

use std::path::PathBuf;
use std::process::Command;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tessera::clock::Clock;
use tessera::config::{CertAuthConfig, CertRoleConfig, KubernetesAuthConfig, KubernetesRoleConfig};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::common::{Backend, TestCa, csr_for, csr_with_key, is_ci, openssl_verify, skip};

const SPIFFE_ID: &str = "spiffe://tessera.test/ns/payments/sa/api";
const CLUSTER_ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
/// The audience cert-manager asks for, for the ClusterIssuer `tessera`.
const ISSUER_AUDIENCE: &str = "vault://tessera";

/// A cluster's service-account token signer, made by the test.
struct ServiceAccountIssuer {
    key: EcdsaKeyPair,
}

impl ServiceAccountIssuer {
    fn new() -> Self {
        Self { key: EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap() }
    }

    /// The JWKS the cluster publishes at `/openid/v1/jwks`.
    fn jwks(&self) -> String {
        let point = self.key.public_key().as_ref();
        json!({ "keys": [{
            "kty": "EC", "crv": "P-256", "kid": "sa-key-1", "alg": "ES256", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..]),
        }]})
        .to_string()
    }

    fn sign(&self, claims: &Value) -> String {
        let header = URL_SAFE_NO_PAD.encode(json!({ "alg": "ES256", "kid": "sa-key-1" }).to_string());
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let input = format!("{header}.{payload}");
        let signature = self.key.sign(&aws_lc_rs::rand::SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }

    /// A token as TokenRequest makes it for cert-manager: 600 s, its
    /// issuer's audience and the server URL.
    fn cert_manager_token(&self, now: i64, namespace: &str, account: &str) -> Value {
        json!({
            "aud": [ISSUER_AUDIENCE, "https://tessera.internal:8443"],
            "exp": now + 600, "iat": now, "nbf": now,
            "iss": CLUSTER_ISSUER,
            "kubernetes.io": { "namespace": namespace, "serviceaccount": { "name": account, "uid": "0b6b0e2c" } },
            "sub": format!("system:serviceaccount:{namespace}:{account}"),
        })
    }

    fn config(&self) -> KubernetesAuthConfig {
        KubernetesAuthConfig {
            path: "kubernetes".into(),
            issuer: CLUSTER_ISSUER.into(),
            jwks_file: None,
            jwks: Some(self.jwks()),
            token_ttl: "20m".parse().unwrap(),
            roles: vec![KubernetesRoleConfig {
                name: "cert-manager".into(),
                bound_service_account_names: vec!["cert-manager".into()],
                bound_service_account_namespaces: vec!["cert-manager".into()],
                audience: Some(ISSUER_AUDIENCE.into()),
                policies: vec!["default".into()],
            }],
        }
    }
}

/// A dev CA whose Vault API takes Kubernetes logins from `cluster`.
async fn start_with_kubernetes(backend: Backend, cluster: &ServiceAccountIssuer) -> Option<TestCa> {
    let kubernetes = cluster.config();
    TestCa::start_acme_with(backend, Default::default(), move |config| config.vault.kubernetes = Some(kubernetes)).await
}

impl TestCa {
    fn vault_url(&self, path: &str) -> String {
        format!("https://localhost:{}/v1{path}", self.running().https_addr.port())
    }

    /// A Vault request with `X-Vault-Token`; the body is sent as cert-manager
    /// sends it, JSON without a content type.
    async fn vault(&self, method: &str, path: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
        let mut request = self.client.request(method.parse().unwrap(), self.vault_url(path));
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token);
        }
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A new token of `scope` bound to `policies`; its secret.
    async fn token(&self, name: &str, scope: &str, policies: &[&str]) -> String {
        let mut body = json!({ "name": name, "scope": scope });
        if !policies.is_empty() {
            body["policies"] = json!(policies);
        }
        let (status, created) = self.post("/api/v1/tokens", Some(&self.admin_token), &body).await;
        assert_eq!(status, 201, "{created}");
        created["token"].as_str().unwrap().to_owned()
    }
}

fn der_of(pem_text: &str) -> Vec<Vec<u8>> {
    pem::parse_many(pem_text.as_bytes()).unwrap().into_iter().map(pem::Pem::into_contents).collect()
}

/// cert-manager's reading of a sign answer: ca_chain + issuing_ca +
/// certificate concatenated, de-duplicated, ordered leaf first by
/// issuer/subject, the last one (self-signed) written to `ca.crt`.
/// Returns (the ordered chain as DER, the root's DER).
fn chain_as_cert_manager_reads_it(data: &Value) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut all = Vec::new();
    for pem_text in data["ca_chain"].as_array().unwrap() {
        all.extend(der_of(pem_text.as_str().unwrap()));
    }
    all.extend(der_of(data["issuing_ca"].as_str().unwrap()));
    all.extend(der_of(data["certificate"].as_str().unwrap()));
    let mut unique: Vec<Vec<u8>> = Vec::new();
    for der in all {
        if !unique.contains(&der) {
            unique.push(der);
        }
    }
    let parsed: Vec<X509Certificate<'_>> = unique.iter().map(|d| X509Certificate::from_der(d).unwrap().1).collect();
    let leaf = parsed
        .iter()
        .position(|c| !parsed.iter().any(|other| other.issuer() == c.subject() && other.subject() != c.subject()))
        .expect("one certificate issues none of the others");
    let mut order = vec![leaf];
    while let Some(next) = parsed.iter().position(|c| {
        let current = &parsed[*order.last().unwrap()];
        c.subject() == current.issuer() && !order.contains(&parsed.iter().position(|p| p == c).unwrap())
    }) {
        order.push(next);
    }
    assert_eq!(order.len(), unique.len(), "every certificate of the answer is on one chain");
    let root = &parsed[*order.last().unwrap()];
    assert_eq!(root.subject(), root.issuer(), "the chain ends in a self-signed root");
    let chain: Vec<Vec<u8>> = order.iter().map(|&i| unique[i].clone()).collect();
    let root_der = chain.last().unwrap().clone();
    (chain, root_der)
}

fn leaf_of(data: &Value) -> Vec<u8> {
    der_of(data["certificate"].as_str().unwrap()).remove(0)
}

/// Health, a Kubernetes login with a service-account-shaped jwt, then a
/// sign under a role with the fields and string types cert-manager sends, `ttl: "2160h0m0s"` capped to the policy's 24 h; the
/// chain read as cert-manager reads it verifies with openssl, and the
/// certificate went through the pipeline REST issuance takes (tracked,
/// under the policy, by the token). Then csi-driver-spiffe's request.
async fn cert_manager_replay(backend: Backend) {
    let cluster = ServiceAccountIssuer::new();
    let Some(ca) = start_with_kubernetes(backend, &cluster).await else { return };
    let (status, health) = ca.vault("GET", "/sys/health", None, None).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!((health["initialized"].as_bool(), health["sealed"].as_bool()), (Some(true), Some(false)));
    let jwt = cluster.sign(&cluster.cert_manager_token(ca.clock.unix(), "cert-manager", "cert-manager"));
    let login = json!({ "role": "cert-manager", "jwt": jwt });
    let (status, answer) = ca.vault("POST", "/auth/kubernetes/login", None, Some(&login)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["auth"]["policies"], json!(["default"]));
    assert_eq!(answer["auth"]["lease_duration"], 1200);
    let token = answer["auth"]["client_token"].as_str().unwrap().to_owned();

    let csr = csr_for(&["web.test", "api.web.test"]);
    let body = json!({
        "common_name": "",
        "alt_names": "web.test,api.web.test",
        "ip_sans": "",
        "uri_sans": "",
        "ttl": "2160h0m0s",
        "csr": csr,
        "exclude_cn_from_sans": "true",
    });
    let (status, answer) = ca.vault("POST", "/pki/sign/default", Some(&token), Some(&body)).await;
    assert_eq!(status, 200, "{answer}");
    for field in ["request_id", "lease_id", "renewable", "lease_duration", "data", "warnings", "auth"] {
        assert!(answer.get(field).is_some(), "the envelope has {field}: {answer}");
    }
    let data = &answer["data"];
    let leaf_der = leaf_of(data);
    let (_, leaf) = X509Certificate::from_der(&leaf_der).unwrap();
    let lifetime = leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp();
    assert!((24 * 3600..=24 * 3600 + 120).contains(&lifetime), "ttl capped to the policy's 24h, got {lifetime}s");
    assert!(answer["warnings"].to_string().contains("max_ttl"), "the cap is reported: {answer}");
    assert_eq!(data["expiration"].as_i64(), Some(leaf.validity().not_after.timestamp()));
    let serial_hex = hex::encode(leaf.raw_serial());
    assert_eq!(data["serial_number"].as_str().unwrap().replace(':', ""), serial_hex);
    assert!(data["serial_number"].as_str().unwrap().contains(':'), "Vault's colon form");

    let (chain, root) = chain_as_cert_manager_reads_it(data);
    let root_pem = tessera::issuance::certificate_pem(&root);
    assert_eq!(root_pem, std::fs::read_to_string(ca.root_pem_path()).unwrap(), "ca.crt gets Tessera's root");
    let intermediates: String =
        chain[1..chain.len() - 1].iter().map(|d| tessera::issuance::certificate_pem(d)).collect();
    openssl_verify(ca.dir.path(), &ca.root_pem_path(), &intermediates, data["certificate"].as_str().unwrap()).unwrap();

    let (status, record) = ca.get(&format!("/api/v1/certificates/{serial_hex}"), Some(&ca.admin_token)).await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["status"], "issued");
    assert_eq!(record["policy"], "default");
    assert_eq!(record["requester"], "token:vault-kubernetes:cert-manager/cert-manager");

    // csi-driver-spiffe: a URI SAN only, no common name, one hour.
    let body = json!({
        "common_name": "",
        "alt_names": "",
        "ip_sans": "",
        "uri_sans": SPIFFE_ID,
        "ttl": "1h0m0s",
        "csr": csr_for(&[SPIFFE_ID]),
        "exclude_cn_from_sans": "true",
    });
    let (status, answer) = ca.vault("POST", "/pki/sign/default", Some(&token), Some(&body)).await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer["warnings"].is_null(), "{answer}");
    let der = leaf_of(&answer["data"]);
    let (_, leaf) = X509Certificate::from_der(&der).unwrap();
    let lifetime = leaf.validity().not_after.timestamp() - leaf.validity().not_before.timestamp();
    assert!((3600..=3600 + 120).contains(&lifetime), "one hour, got {lifetime}s");
    assert!(leaf.subject().iter_common_name().next().is_none(), "no common name");
    let sans = leaf.subject_alternative_name().unwrap().unwrap();
    assert_eq!(sans.value.general_names, vec![GeneralName::URI(SPIFFE_ID)]);
    ca.stop().await;
}
on_both_backends!(cert_manager_replay);

/// `issue`: Tessera makes a P-256 key, returns it once with a certificate
/// for it; the key appears nowhere in the database.
async fn issue_makes_the_key(backend: Backend) {
    let Some(ca) = TestCa::start(backend).await else { return };
    let body = json!({ "common_name": "svc.test", "alt_names": "svc.test", "ttl": "1h" });
    let (status, answer) = ca.vault("POST", "/pki/issue/default", Some(&ca.admin_token), Some(&body)).await;
    assert_eq!(status, 200, "{answer}");
    let data = &answer["data"];
    assert_eq!(data["private_key_type"], "ec");
    let key_pem = data["private_key"].as_str().unwrap();
    let key = rcgen::KeyPair::from_pem(key_pem).unwrap();
    let der = leaf_of(data);
    let (_, leaf) = X509Certificate::from_der(&der).unwrap();
    assert_eq!(
        leaf.public_key().raw,
        rcgen::PublicKeyData::subject_public_key_info(&key).as_slice(),
        "the certificate certifies the key returned"
    );
    let key_body: String = key_pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(!ca.snapshot().await.contains(&key_body[48..88]), "the private key is stored nowhere");
    ca.stop().await;
}
on_both_backends!(issue_makes_the_key);

/// Every refusal answers `{"errors": [...]}` with Vault's status, and
/// changes nothing stored.
async fn refusals_change_nothing(backend: Backend) {
    let Some(ca) = TestCa::start(backend).await else { return };
    let issuer = ca.token("vault-issuer", "issuer", &["default"]).await;
    let auditor = ca.token("vault-auditor", "auditor", &[]).await;
    let revoked = ca.token("vault-revoked", "issuer", &["default"]).await;
    let (status, tokens) = ca.get("/api/v1/tokens", Some(&ca.admin_token)).await;
    assert_eq!(status, 200);
    let id = tokens["items"].as_array().unwrap().iter().find(|t| t["name"] == "vault-revoked").unwrap()["id"].clone();
    let (status, _) = ca.post(&format!("/api/v1/tokens/{id}/revoke"), Some(&ca.admin_token), &json!({})).await;
    assert_eq!(status, 200);

    let sign = |names: &[&str], alt: &str| json!({ "csr": csr_for(names), "alt_names": alt, "common_name": "" });
    // (case, path, token, body, status)
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, Option<Value>, u16);
    let cases: Vec<Case<'_>> = vec![
        ("no token", "/pki/sign/default", None, Some(sign(&["a.test"], "a.test")), 403),
        ("unknown token", "/pki/sign/default", Some("tsr_nothing"), Some(sign(&["a.test"], "a.test")), 403),
        ("revoked token", "/pki/sign/default", Some(&revoked), Some(sign(&["a.test"], "a.test")), 403),
        ("auditor token", "/pki/sign/default", Some(&auditor), Some(sign(&["a.test"], "a.test")), 403),
        ("wrong role", "/pki/sign/web", Some(&issuer), Some(sign(&["a.test"], "a.test")), 400),
        ("unknown mount", "/pki_int/sign/default", Some(&issuer), Some(sign(&["a.test"], "a.test")), 404),
        ("name outside the policy", "/pki/sign/default", Some(&issuer), Some(sign(&["a.example"], "a.example")), 400),
        ("fields not in the CSR", "/pki/sign/default", Some(&issuer), Some(sign(&["a.test"], "b.test")), 400),
        ("no CSR", "/pki/sign/default", Some(&issuer), Some(json!({ "common_name": "a.test" })), 400),
        (
            "bad ttl",
            "/pki/sign/default",
            Some(&issuer),
            Some(json!({ "csr": csr_for(&["a.test"]), "ttl": "soon" })),
            400,
        ),
        ("malformed JSON", "/pki/sign/default", Some(&issuer), Some(Value::String("{".into())), 400),
        ("revoke by an issuer token", "/pki/revoke", Some(&issuer), Some(json!({ "serial_number": "01:02" })), 403),
        (
            "revoke an unknown serial",
            "/pki/revoke",
            Some(&ca.admin_token),
            Some(json!({ "serial_number": "01:02" })),
            404,
        ),
    ];
    let before = ca.snapshot().await;
    for (case, path, token, body, expected) in cases {
        let body = match body {
            Some(Value::String(raw)) => {
                let response = ca
                    .client
                    .post(ca.vault_url(path))
                    .header("X-Vault-Token", token.unwrap())
                    .body(raw)
                    .send()
                    .await
                    .unwrap();
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.unwrap())
            }
            other => ca.vault("POST", path, token, other.as_ref()).await,
        };
        let (status, answer) = body;
        assert_eq!(status, expected, "{case}: {answer}");
        let errors = answer["errors"].as_array().unwrap_or_else(|| panic!("{case}: {answer}"));
        assert_eq!(errors.len(), 1, "{case}: {answer}");
        assert!(!errors[0].as_str().unwrap().is_empty(), "{case}");
    }
    before.assert_unchanged(&ca.snapshot().await, &[], "Vault refusals");
    ca.stop().await;
}
on_both_backends!(refusals_change_nothing);

/// Kubernetes logins refused for each reason the issue names, each
/// answered as Vault answers and audited with its reason (never the jwt).
async fn kubernetes_login_refusals(backend: Backend) {
    let cluster = ServiceAccountIssuer::new();
    let Some(ca) = start_with_kubernetes(backend, &cluster).await else { return };
    let now = ca.clock.unix();
    let claims = |edit: &dyn Fn(&mut Value)| {
        let mut claims = cluster.cert_manager_token(now, "cert-manager", "cert-manager");
        edit(&mut claims);
        cluster.sign(&claims)
    };
    let stranger = ServiceAccountIssuer::new();
    let cases: Vec<(&str, String, &str, u16)> = vec![
        ("expired jwt", claims(&|c| c["exp"] = json!(now - 3600)), "cert-manager", 403),
        ("wrong audience", claims(&|c| c["aud"] = json!(["vault://elsewhere"])), "cert-manager", 403),
        ("wrong issuer", claims(&|c| c["iss"] = json!("https://other.cluster")), "cert-manager", 403),
        (
            "other namespace",
            claims(&|c| c["sub"] = json!("system:serviceaccount:default:cert-manager")),
            "cert-manager",
            403,
        ),
        (
            "other service account",
            claims(&|c| c["sub"] = json!("system:serviceaccount:cert-manager:web")),
            "cert-manager",
            403,
        ),
        (
            "another cluster's key",
            stranger.sign(&stranger.cert_manager_token(now, "cert-manager", "cert-manager")),
            "cert-manager",
            403,
        ),
        ("not a jwt", "not-a-jwt".into(), "cert-manager", 403),
        ("unknown role", claims(&|_| {}), "web", 400),
    ];
    for (case, jwt, role, expected) in &cases {
        let (status, answer) =
            ca.vault("POST", "/auth/kubernetes/login", None, Some(&json!({ "role": role, "jwt": jwt }))).await;
        assert_eq!(status, *expected, "{case}: {answer}");
        assert!(answer["errors"].is_array(), "{case}: {answer}");
    }
    let (status, events) = ca.get("/api/v1/audit-events?limit=50", Some(&ca.admin_token)).await;
    assert_eq!(status, 200, "{events}");
    let refused: Vec<&Value> =
        events["items"].as_array().unwrap().iter().filter(|e| e["action"] == "vault.login.refused").collect();
    assert_eq!(refused.len(), cases.len(), "every refusal is audited: {events}");
    let text = events.to_string();
    assert!(cases.iter().all(|(_, jwt, _, _)| !text.contains(jwt.as_str())), "no jwt in the audit log");
    ca.stop().await;
}
on_both_backends!(kubernetes_login_refusals);

impl TestCa {
    /// An AppRole for the `default` policy and one secret id of it:
    /// (role id, secret id).
    async fn approle(&self, name: &str, limits: Value) -> (String, String) {
        let mut body = json!({ "name": name, "policies": ["default"] });
        body.as_object_mut().unwrap().extend(limits.as_object().unwrap().clone());
        let (status, role) = self.post("/api/v1/vault/approles", Some(&self.admin_token), &body).await;
        assert_eq!(status, 201, "{role}");
        let path = format!("/api/v1/vault/approles/{name}/secret-ids");
        let (status, secret) = self.post(&path, Some(&self.admin_token), &json!({})).await;
        assert_eq!(status, 201, "{secret}");
        (role["role_id"].as_str().unwrap().to_owned(), secret["secret_id"].as_str().unwrap().to_owned())
    }
}

/// AppRole: a secret id buys a token bound to the AppRole's policies, for
/// as many logins as it allows and until it expires; it is stored only
/// hashed, and every refusal is audited without it.
async fn approle_login(backend: Backend) {
    let Some(ca) = TestCa::start(backend).await else { return };
    let (role_id, secret_id) = ca.approle("build", json!({ "secret_id_num_uses": 1, "secret_id_ttl": "1h" })).await;
    assert!(!ca.snapshot().await.contains(&secret_id), "the secret id is stored only hashed");
    let login = |role_id: &str, secret_id: &str| json!({ "role_id": role_id, "secret_id": secret_id });
    let (status, answer) = ca.vault("POST", "/auth/approle/login", None, Some(&login(&role_id, &secret_id))).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["auth"]["policies"], json!(["default"]));
    let token = answer["auth"]["client_token"].as_str().unwrap().to_owned();
    let body = json!({ "csr": csr_for(&["build.test"]), "common_name": "build.test" });
    let (status, signed) = ca.vault("POST", "/pki/sign/default", Some(&token), Some(&body)).await;
    assert_eq!(status, 200, "{signed}");

    let (status, answer) = ca.vault("POST", "/auth/approle/login", None, Some(&login(&role_id, &secret_id))).await;
    assert_eq!(status, 403, "a single-use secret id is spent: {answer}");
    let (status, _) = ca.vault("POST", "/auth/approle/login", None, Some(&login(&role_id, "tsr_guess"))).await;
    assert_eq!(status, 403, "an unknown secret id");
    let (expiring_role, expiring_secret) = ca.approle("short", json!({ "secret_id_ttl": "1m" })).await;
    ca.clock.advance(time::Duration::minutes(2));
    let (status, _) =
        ca.vault("POST", "/auth/approle/login", None, Some(&login(&expiring_role, &expiring_secret))).await;
    assert_eq!(status, 403, "an expired secret id");

    let (status, events) = ca.get("/api/v1/audit-events?limit=50", Some(&ca.admin_token)).await;
    assert_eq!(status, 200, "{events}");
    let items = events["items"].as_array().unwrap();
    assert_eq!(items.iter().filter(|e| e["action"] == "vault.login.refused").count(), 3, "{events}");
    assert!(items.iter().any(|e| e["action"] == "token.create" && e["actor"] == "vault:approle:build"), "{events}");
    assert!(!events.to_string().contains(&secret_id), "no secret id in the audit log");
    ca.stop().await;
}
on_both_backends!(approle_login);

/// Certificate logins: SPIFFE IDs below `ns/payments` log in as
/// `payments`, DNS names below `web.test` as `web`.
fn cert_login_config() -> CertAuthConfig {
    let role = |name: &str, spiffe_ids: &[&str], dns_names: &[&str]| CertRoleConfig {
        name: name.into(),
        spiffe_ids: spiffe_ids.iter().map(|s| (*s).into()).collect(),
        dns_names: dns_names.iter().map(|s| (*s).into()).collect(),
        policies: vec!["default".into()],
    };
    CertAuthConfig {
        path: "cert".into(),
        trusted_ca_file: None,
        token_ttl: "20m".parse().unwrap(),
        roles: vec![role("payments", &["spiffe://tessera.test/ns/payments/*"], &[]), role("web", &[], &["*.web.test"])],
    }
}

/// A workload's client identity: a fresh key, its certificate issued by
/// Tessera through REST for `names`, as PEM (key, then leaf and chain);
/// and the certificate's serial.
async fn workload_identity(ca: &TestCa, names: &[&str]) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let issued = ca.sign(&csr_with_key(names, &key)).await;
    let pem = format!("{}{}", key.serialize_pem(), issued["chain"].as_str().unwrap());
    (pem, issued["serial"].as_str().unwrap().to_owned())
}

/// An HTTPS client of `ca` presenting the identity `pem` (key and chain).
fn client_with_identity(ca: &TestCa, pem: &str) -> reqwest::Client {
    let root = reqwest::Certificate::from_pem(&std::fs::read(ca.root_pem_path()).unwrap()).unwrap();
    let identity = reqwest::Identity::from_pem(pem.as_bytes()).unwrap();
    reqwest::Client::builder().add_root_certificate(root).identity(identity).build().unwrap()
}

/// `POST /v1/auth/cert/login` with `body` over `client`'s TLS.
async fn cert_login(ca: &TestCa, client: &reqwest::Client, body: &Value) -> (u16, Value) {
    let response = client.post(ca.vault_url("/auth/cert/login")).body(body.to_string()).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Client-certificate login: a workload holding a certificate Tessera
/// issued logs in with it over mutual TLS, by its SPIFFE ID or DNS name,
/// and signs with the token; a superseded, then revoked, certificate and
/// one no role matches are refused; the listener still serves clients
/// with no certificate.
async fn cert_login_signs(backend: Backend) {
    let Some(ca) = TestCa::start_acme_with(backend, Default::default(), |config| {
        config.vault.cert = Some(cert_login_config());
    })
    .await
    else {
        return;
    };
    let (old, old_serial) = workload_identity(&ca, &[SPIFFE_ID]).await;
    // The renewal supersedes the first certificate, which is then revoked.
    let (renewed, _) = workload_identity(&ca, &[SPIFFE_ID]).await;
    let (status, answer) =
        ca.post(&format!("/api/v1/certificates/{old_serial}/revoke"), Some(&ca.admin_token), &json!({})).await;
    assert_eq!(status, 200, "{answer}");

    let (status, answer) = cert_login(&ca, &client_with_identity(&ca, &renewed), &json!({})).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["auth"]["policies"], json!(["default"]));
    assert_eq!(answer["auth"]["metadata"]["role"], "payments");
    assert_eq!(answer["auth"]["lease_duration"], 20 * 60);
    let token = answer["auth"]["client_token"].as_str().unwrap().to_owned();
    let body = json!({ "csr": csr_for(&[SPIFFE_ID]), "uri_sans": SPIFFE_ID, "common_name": "" });
    let (status, signed) = ca.vault("POST", "/pki/sign/default", Some(&token), Some(&body)).await;
    assert_eq!(status, 200, "the login's token signs: {signed}");

    let (web, _) = workload_identity(&ca, &["api.web.test"]).await;
    let (status, answer) = cert_login(&ca, &client_with_identity(&ca, &web), &json!({ "name": "web" })).await;
    assert_eq!(status, 200, "a DNS name logs in under its role: {answer}");
    assert_eq!(answer["auth"]["metadata"]["subject"], "api.web.test");

    let (status, answer) = cert_login(&ca, &client_with_identity(&ca, &old), &json!({})).await;
    assert_eq!(status, 403, "a superseded and revoked certificate: {answer}");
    let (status, answer) = cert_login(&ca, &client_with_identity(&ca, &web), &json!({ "name": "payments" })).await;
    assert_eq!(status, 403, "the named role does not match: {answer}");
    let (status, health) = ca.vault("GET", "/sys/health", None, None).await;
    assert_eq!(status, 200, "a client without a certificate is served: {health}");

    let (_, events) = ca.get("/api/v1/audit-events?limit=50", Some(&ca.admin_token)).await;
    let items = events["items"].as_array().unwrap();
    assert!(items.iter().any(|e| e["action"] == "token.create" && e["actor"] == "vault:cert:payments"), "{events}");
    let reasons: Vec<&str> = items
        .iter()
        .filter(|e| e["action"] == "vault.login.refused")
        .map(|e| e["detail"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.len(), 2, "{events}");
    assert!(reasons.iter().any(|r| r.contains("revoked")), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("no role")), "{reasons:?}");
    assert!(!events.to_string().contains(&token), "no token in the audit log");
    ca.stop().await;
}
on_both_backends!(cert_login_signs);

/// Each refusal the issue names, answered in Vault's form and audited
/// with its reason: no certificate, a chain to another CA, no role
/// matching, an unknown role name, and an expired certificate.
async fn cert_login_refusals(backend: Backend) {
    let Some(ca) = TestCa::start_acme_with(backend, Default::default(), |config| {
        config.vault.cert = Some(cert_login_config());
    })
    .await
    else {
        return;
    };
    let stranger = {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params.subject_alt_names = vec![rcgen::SanType::URI(SPIFFE_ID.try_into().unwrap())];
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        format!("{}{}", key.serialize_pem(), params.self_signed(&key).unwrap().pem())
    };
    let (outsider, _) = workload_identity(&ca, &["spiffe://tessera.test/ns/billing/sa/api"]).await;
    let (expiring, _) = workload_identity(&ca, &[SPIFFE_ID]).await;
    let cases: Vec<(&str, reqwest::Client, Value, u16)> = vec![
        ("no client certificate", ca.client.clone(), json!({}), 400),
        ("a chain to another CA", client_with_identity(&ca, &stranger), json!({}), 403),
        ("no role matches", client_with_identity(&ca, &outsider), json!({}), 403),
        ("unknown role name", client_with_identity(&ca, &expiring), json!({ "name": "db" }), 400),
    ];
    for (case, client, body, expected) in &cases {
        let (status, answer) = cert_login(&ca, client, body).await;
        assert_eq!(status, *expected, "{case}: {answer}");
        assert_eq!(answer["errors"].as_array().map(Vec::len), Some(1), "{case}: {answer}");
    }
    ca.clock.advance(time::Duration::hours(25));
    let (status, answer) = cert_login(&ca, &client_with_identity(&ca, &expiring), &json!({})).await;
    assert_eq!(status, 403, "an expired certificate: {answer}");

    let (_, events) = ca.get("/api/v1/audit-events?limit=50", Some(&ca.admin_token)).await;
    let mut reasons: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "vault.login.refused")
        .map(|e| e["detail"]["reason"].as_str().unwrap())
        .collect();
    reasons.sort_unstable();
    assert_eq!(
        reasons,
        [
            "no client certificate",
            "no role matches the certificate's SPIFFE ID or DNS names",
            "the certificate does not chain to a trusted anchor",
            "the certificate has expired or is not yet valid",
            "unknown role",
        ]
    );
    ca.stop().await;
}
on_both_backends!(cert_login_refusals);

/// The default anchors are Tessera's roots, read at each login: after a
/// rotation, a certificate of the retired issuing CA and one of its
/// successor both log in, the successor's leaf sent without its issuing
/// CA (Tessera supplies the intermediates it knows).
async fn cert_login_across_a_rotation(backend: Backend) {
    let Some(ca) = TestCa::start_acme_with(backend, Default::default(), |config| {
        config.vault.cert = Some(cert_login_config());
    })
    .await
    else {
        return;
    };
    let (before, _) = workload_identity(&ca, &[SPIFFE_ID]).await;
    let (_, authorities) = ca.get("/api/v1/authorities", Some(&ca.admin_token)).await;
    let issuing =
        authorities["items"].as_array().unwrap().iter().find(|a| a["kind"] == "issuing").unwrap()["id"].clone();
    let (status, successor) =
        ca.post(&format!("/api/v1/authorities/{issuing}/rotate"), Some(&ca.admin_token), &json!({})).await;
    assert_eq!(status, 201, "{successor}");
    let key = rcgen::KeyPair::generate().unwrap();
    let issued = ca.sign(&csr_with_key(&["api.web.test"], &key)).await;
    let leaf = issued["certificate"].as_str().unwrap();
    assert!(issued["chain"].as_str().unwrap().contains(&certificate_body(&successor)), "signed by the successor");
    let after = format!("{}{leaf}", key.serialize_pem());
    for (case, identity) in [("the retired CA's leaf", &before), ("the successor's bare leaf", &after)] {
        let (status, answer) = cert_login(&ca, &client_with_identity(&ca, identity), &json!({})).await;
        assert_eq!(status, 200, "{case}: {answer}");
    }
    ca.stop().await;
}
on_both_backends!(cert_login_across_a_rotation);

/// The base64 body of an authority's certificate as PEM carries it.
fn certificate_body(authority: &Value) -> String {
    let pem = authority["certificate"].as_str().unwrap_or_else(|| panic!("{authority}"));
    pem.lines().filter(|l| !l.starts_with("-----")).take(3).collect::<Vec<_>>().join("\n")
}

/// `trusted_ca_file` replaces Tessera's roots as the anchors: a
/// certificate of that CA logs in, one of Tessera's no longer does. One
/// backend: the anchors come from a file, not the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cert_login_with_configured_anchors() {
    let anchor_key = rcgen::KeyPair::generate().unwrap();
    let mut anchor = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    anchor.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    anchor.distinguished_name.push(rcgen::DnType::CommonName, "Mesh CA");
    let anchor_pem = anchor.self_signed(&anchor_key).unwrap().pem();
    let issuer = rcgen::Issuer::new(anchor, anchor_key);
    let workload_key = rcgen::KeyPair::generate().unwrap();
    let mut workload = rcgen::CertificateParams::default();
    workload.subject_alt_names = vec![rcgen::SanType::URI(SPIFFE_ID.try_into().unwrap())];
    workload.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let mesh_identity =
        format!("{}{}", workload_key.serialize_pem(), workload.signed_by(&workload_key, &issuer).unwrap().pem());

    let dir = tempfile::tempdir().unwrap();
    let anchors = dir.path().join("mesh-ca.pem");
    std::fs::write(&anchors, &anchor_pem).unwrap();
    let ca = TestCa::start_acme_with(Backend::Sqlite, Default::default(), move |config| {
        let mut cert = cert_login_config();
        cert.trusted_ca_file = Some(anchors);
        config.vault.cert = Some(cert);
    })
    .await
    .unwrap();
    let (status, answer) = cert_login(&ca, &client_with_identity(&ca, &mesh_identity), &json!({})).await;
    assert_eq!(status, 200, "the configured anchor's certificate: {answer}");
    let (tessera_identity, _) = workload_identity(&ca, &[SPIFFE_ID]).await;
    let (status, answer) = cert_login(&ca, &client_with_identity(&ca, &tessera_identity), &json!({})).await;
    assert_eq!(status, 403, "Tessera's own roots are not anchors now: {answer}");
    ca.stop().await;
}

/// The directory holding the hvac venv's python, if it is installed.
fn hvac_python() -> Option<PathBuf> {
    let python = PathBuf::from(std::env::var_os("TESSERA_HVAC_VENV")?).join("bin/python");
    python.is_file().then_some(python)
}

/// hvac, the Python Vault client, against a running dev CA: health, token
/// lookup, AppRole, Kubernetes and certificate logins (and an expired jwt
/// and an unknown certificate role refused), sign and issue under a role, CA, chain and CRL reads, a
/// certificate read, revoke, and the refusals it raises as exceptions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hvac_drives_the_api() {
    let Some(python) = hvac_python() else {
        let required = is_ci() || std::env::var("TESSERA_TEST_HVAC").is_ok_and(|v| v == "required");
        assert!(!required, "hvac is required (TESSERA_TEST_HVAC=required or CI=true) but TESSERA_HVAC_VENV has none");
        skip("hvac is not installed; scripts/test.sh installs it");
        return;
    };
    let cluster = ServiceAccountIssuer::new();
    let kubernetes = cluster.config();
    let ca = TestCa::start_acme_with(Backend::Sqlite, Default::default(), move |config| {
        config.vault.kubernetes = Some(kubernetes);
        config.vault.cert = Some(cert_login_config());
    })
    .await
    .unwrap();
    let issuer = ca.token("hvac", "issuer", &["default"]).await;
    let key = rcgen::KeyPair::generate().unwrap();
    let identity = ca.sign(&csr_with_key(&[SPIFFE_ID], &key)).await;
    let (client_cert, client_key) = (ca.dir.path().join("workload.crt"), ca.dir.path().join("workload.key"));
    std::fs::write(&client_cert, identity["chain"].as_str().unwrap()).unwrap();
    std::fs::write(&client_key, key.serialize_pem()).unwrap();
    let (role_id, secret_id) = ca.approle("hvac", json!({})).await;
    let now = ca.clock.unix();
    let jwt = cluster.sign(&cluster.cert_manager_token(now, "cert-manager", "cert-manager"));
    let mut expired = cluster.cert_manager_token(now, "cert-manager", "cert-manager");
    expired["exp"] = json!(now - 3600);
    let expired = cluster.sign(&expired);
    let csr = csr_for(&["hvac.test"]);
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vault/hvac_client.py");
    let url = format!("https://localhost:{}", ca.running().https_addr.port());
    let ca_file = ca.root_pem_path();
    let csr_path = ca.dir.path().join("hvac.csr");
    std::fs::write(&csr_path, &csr).unwrap();
    let admin = ca.admin_token.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .env("VAULT_ADDR", url)
            .env("VAULT_CACERT", ca_file)
            .env("HVAC_ISSUER_TOKEN", issuer)
            .env("HVAC_ADMIN_TOKEN", admin)
            .env("HVAC_CSR_FILE", csr_path)
            .env("HVAC_ROLE_ID", role_id)
            .env("HVAC_SECRET_ID", secret_id)
            .env("HVAC_KUBERNETES_JWT", jwt)
            .env("HVAC_EXPIRED_JWT", expired)
            .env("HVAC_CLIENT_CERT", client_cert)
            .env("HVAC_CLIENT_KEY", client_key)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "hvac script failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let serial = report["revoked_serial"].as_str().unwrap().replace(':', "");
    let (status, record) = ca.get(&format!("/api/v1/certificates/{serial}"), Some(&ca.admin_token)).await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["status"], "revoked", "hvac's revoke reached the store");
    ca.stop().await;
}
