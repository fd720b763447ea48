//! Every admin route against every kind of caller: no token, and a token of
//! each scope. A scope a route does not admit gets 403 `insufficient-scope`
//! (no token: 401) and changes nothing stored, although the request is one
//! that would change something (revoke a real certificate, delete a real
//! policy, rotate the real issuing CA); an admitted scope gets past the
//! check, and the first one to ask gets the route's success. The table of
//! who may do what is written out here, independently of the code, and must
//! name every route the router serves and agree with `api/openapi.yaml`.
use std::collections::BTreeSet;

use crate::common::{Backend, TestCa, csr_for};
use serde_json::{Value, json};

const ALL: &[&str] = &["admin", "operator", "issuer", "auditor"];
const SIGN: &[&str] = &["admin", "operator", "issuer"];
const READ: &[&str] = &["admin", "operator", "auditor"];
/// Operator-only actions: revocation, policies, authorities, EAB keys.
const MANAGE: &[&str] = &["admin", "operator"];
const ADMIN: &[&str] = &["admin"];
/// `GET /healthz` answers anyone, token or not.
const ANYONE: &[&str] = &[];

/// One route, and a request to it that succeeds for the first admitted caller.
struct Case {
    method: &'static str,
    route: &'static str,
    path: String,
    body: Value,
    admits: &'static [&'static str],
    success: u16,
    /// Its success sets off background writes, which must end before the
    /// next refused request is compared.
    settles: bool,
}

fn case(method: &'static str, route: &'static str, admits: &'static [&'static str], success: u16) -> Case {
    Case { method, route, path: route.to_owned(), body: json!({}), admits, success, settles: false }
}

impl Case {
    fn at(mut self, path: String) -> Self {
        self.path = path;
        self
    }

    fn with(mut self, body: Value) -> Self {
        self.body = body;
        self
    }

    fn settling(mut self) -> Self {
        self.settles = true;
        self
    }
}

/// What the cases act on, made by the admin token.
struct Targets {
    serial: String,
    issuing_id: i64,
    token_id: i64,
    bound_token_id: i64,
    eab_kid: String,
}

/// Every route, in an order where no case takes away what a later one
/// needs (the rotation retires the issuing CA and renews Tessera's TLS
/// certificate in the background, so it comes last).
fn cases(t: &Targets) -> Vec<Case> {
    let id = t.issuing_id;
    vec![
        case("GET", "/healthz", ANYONE, 200),
        case("GET", "/readyz", ANYONE, 200),
        case("GET", "/metrics", ALL, 200),
        case("POST", "/api/v1/certificates", SIGN, 201)
            .with(json!({"policy": "default", "csr": csr_for(&["scopes.test"])})),
        case("GET", "/api/v1/certificates", READ, 200),
        case("GET", "/api/v1/certificates/{serial}", READ, 200).at(format!("/api/v1/certificates/{}", t.serial)),
        case("POST", "/api/v1/certificates/{serial}/revoke", MANAGE, 200)
            .at(format!("/api/v1/certificates/{}/revoke", t.serial))
            .with(json!({"reason": "keyCompromise"}))
            .settling(),
        case("GET", "/api/v1/policies", READ, 200),
        case("POST", "/api/v1/policies", MANAGE, 201).with(json!({"name": "made", "dns": ["*.test"], "max_ttl": "1h"})),
        case("GET", "/api/v1/policies/{name}", READ, 200).at("/api/v1/policies/default".into()),
        case("PUT", "/api/v1/policies/{name}", MANAGE, 200)
            .at("/api/v1/policies/to-update".into())
            .with(json!({"name": "to-update", "dns": ["*.test"], "max_ttl": "2h"})),
        case("DELETE", "/api/v1/policies/{name}", MANAGE, 204).at("/api/v1/policies/to-delete".into()),
        case("GET", "/api/v1/authorities", READ, 200),
        case("GET", "/api/v1/authorities/{id}", READ, 200).at(format!("/api/v1/authorities/{id}")),
        case("GET", "/api/v1/authorities/{id}/chain", READ, 200).at(format!("/api/v1/authorities/{id}/chain")),
        case("POST", "/api/v1/authorities/{id}/crl", MANAGE, 200).at(format!("/api/v1/authorities/{id}/crl")),
        case("POST", "/api/v1/authorities/{id}/ocsp-responder/rotate", MANAGE, 204)
            .at(format!("/api/v1/authorities/{id}/ocsp-responder/rotate")),
        case("POST", "/api/v1/authorities/{id}/renew-all", MANAGE, 200)
            .at(format!("/api/v1/authorities/{id}/renew-all"))
            .with(json!({"san": "*.test"})),
        case("GET", "/api/v1/tokens", ADMIN, 200),
        case("POST", "/api/v1/tokens", ADMIN, 201).with(json!({"name": "made", "scope": "auditor"})),
        case("PUT", "/api/v1/tokens/{id}/policies", ADMIN, 200)
            .at(format!("/api/v1/tokens/{}/policies", t.bound_token_id))
            .with(json!({"policies": ["default"]})),
        case("POST", "/api/v1/tokens/{id}/revoke", ADMIN, 200).at(format!("/api/v1/tokens/{}/revoke", t.token_id)),
        case("GET", "/api/v1/audit-events", READ, 200),
        case("GET", "/api/v1/eab-keys", READ, 200),
        case("POST", "/api/v1/eab-keys", MANAGE, 201).with(json!({"policy": "default"})),
        case("POST", "/api/v1/eab-keys/{kid}/revoke", MANAGE, 200).at(format!("/api/v1/eab-keys/{}/revoke", t.eab_kid)),
        case("GET", "/api/v1/expirations", READ, 200),
        case("GET", "/api/v1/jobs", READ, 200),
        case("POST", "/api/v1/vault/approles", ADMIN, 201).with(json!({"name": "made", "policies": ["default"]})),
        case("POST", "/api/v1/vault/approles/{name}/secret-ids", ADMIN, 201)
            .at("/api/v1/vault/approles/scope-target/secret-ids".to_owned()),
        // Last: a rotation sets off background writes (Tessera's own TLS
        // certificate from the successor) that no later snapshot must see.
        case("POST", "/api/v1/authorities/{id}/rotate", MANAGE, 201)
            .at(format!("/api/v1/authorities/{id}/rotate"))
            .settling(),
    ]
}

fn placeholder_targets() -> Targets {
    Targets { serial: String::new(), issuing_id: 0, token_id: 0, bound_token_id: 0, eab_kid: String::new() }
}

async fn send(ca: &TestCa, case: &Case, token: Option<&str>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(case.method.as_bytes()).unwrap();
    let mut request = ca.client.request(method.clone(), ca.admin_url(&case.path));
    if method != reqwest::Method::GET && method != reqwest::Method::DELETE {
        request = request.json(&case.body);
    }
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn created(ca: &TestCa, path: &str, body: Value) -> Value {
    let (status, made) = ca.post(path, Some(&ca.admin_token), &body).await;
    assert_eq!(status, 201, "{path}: {made}");
    made
}

async fn every_route_admits_exactly_its_scopes(backend: Backend) {
    let Some(ca) = TestCa::start(backend).await else { return };
    let mut callers: Vec<(&str, Option<String>)> = vec![("no token", None)];
    for scope in ["auditor", "issuer", "operator"] {
        let body = match scope {
            "auditor" => json!({"name": scope, "scope": scope}),
            _ => json!({"name": scope, "scope": scope, "policies": ["default"]}),
        };
        let made = created(&ca, "/api/v1/tokens", body).await;
        callers.push((scope, Some(made["token"].as_str().unwrap().to_owned())));
    }
    callers.push(("admin", Some(ca.admin_token.clone())));
    for name in ["to-update", "to-delete"] {
        created(&ca, "/api/v1/policies", json!({"name": name, "dns": ["*.test"], "max_ttl": "1h"})).await;
    }
    created(&ca, "/api/v1/vault/approles", json!({"name": "scope-target", "policies": ["default"]})).await;
    let (_, authorities) = ca.get("/api/v1/authorities", Some(&ca.admin_token)).await;
    let issuing = authorities["items"].as_array().unwrap().iter().find(|a| a["kind"] == "issuing").unwrap();
    let targets = Targets {
        serial: ca.sign(&csr_for(&["victim.scopes.test"])).await["serial"].as_str().unwrap().to_owned(),
        issuing_id: issuing["id"].as_i64().unwrap(),
        token_id: created(&ca, "/api/v1/tokens", json!({"name": "victim", "scope": "auditor"})).await["id"]
            .as_i64()
            .unwrap(),
        bound_token_id: created(
            &ca,
            "/api/v1/tokens",
            json!({"name": "rebound", "scope": "issuer", "policies": ["to-update"]}),
        )
        .await["id"]
            .as_i64()
            .unwrap(),
        eab_kid: created(&ca, "/api/v1/eab-keys", json!({"policy": "default"})).await["kid"]
            .as_str()
            .unwrap()
            .to_owned(),
    };

    for case in cases(&targets) {
        let mut first_admitted = true;
        for (scope, token) in &callers {
            let what = format!("{} {} as {scope}", case.method, case.route);
            let admitted = case.admits.is_empty() || (token.is_some() && case.admits.contains(scope));
            let before = ca.snapshot().await;
            let (status, body) = send(&ca, &case, token.as_deref()).await;
            if !admitted {
                let (expected, slug) =
                    if token.is_some() { (403, "insufficient-scope") } else { (401, "unauthorized") };
                assert_eq!(status, expected, "{what}: {body}");
                assert_eq!(body["type"], format!("urn:tessera:problem:{slug}"), "{what}: {body}");
                before.assert_unchanged(&ca.snapshot().await, &[], &what);
            } else if first_admitted {
                assert_eq!(status, case.success, "{what}: {body}");
                first_admitted = false;
                if case.settles {
                    crate::common::tables::Snapshot::settled(&ca.db).await;
                }
            } else {
                assert!(![401, 403].contains(&status), "{what}: {status} {body}");
            }
        }
    }
    ca.stop().await;
}
on_both_backends!(every_route_admits_exactly_its_scopes);

#[test]
fn the_table_names_every_route_and_agrees_with_openapi() {
    let table: BTreeSet<(String, String, Vec<&str>)> = cases(&placeholder_targets())
        .iter()
        .map(|c| (c.method.to_owned(), c.route.to_owned(), c.admits.to_vec()))
        .collect();
    let routes: BTreeSet<(String, String)> =
        tessera::admin::routes().iter().map(|r| (r.method.to_owned(), r.path.to_owned())).collect();
    let tabled: BTreeSet<(String, String)> = table.iter().map(|(m, p, _)| (m.clone(), p.clone())).collect();
    assert_eq!(tabled, routes, "a route without its scopes here, or one the router does not serve");

    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/api/openapi.yaml")).unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    for (method, path, admits) in &table {
        let operation = &doc["paths"][path.as_str()][method.to_lowercase().as_str()];
        let description = operation["description"].as_str().unwrap_or_default();
        let documented: Vec<&str> = description
            .lines()
            .find_map(|line| line.trim().strip_prefix("Scopes: "))
            .map(|list| list.trim_end_matches('.').split(", ").collect())
            .unwrap_or_default();
        assert_eq!(&documented, admits, "{method} {path}: api/openapi.yaml says {description:?}");
    }
}
