//! `tessera admin` as operators and scripts run it: the built binary
//! against a Tessera started in-process, with its own contexts file in a
//! temporary `XDG_CONFIG_HOME` and no terminal on stdin. Every subcommand
//! runs at least once with `-o json`, whose output is parsed and checked
//! against what the server holds; refusals are checked by exit status and
//! the one line on stderr.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Output, Stdio};

use crate::common::{Backend, TestCa, csr_for};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// A `tessera admin` user: their own contexts file and working directory.
struct Operator {
    config_home: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Operator {
    fn new() -> Self {
        Self { config_home: tempfile::tempdir().unwrap(), work: tempfile::tempdir().unwrap() }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    fn contexts_file(&self) -> PathBuf {
        self.config_home.path().join("tessera/contexts.toml")
    }

    async fn run(&self, args: &[&str]) -> Output {
        self.run_with_env(args, &[]).await
    }

    /// Runs `tessera admin ARGS` with stdin closed (no terminal).
    async fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        tokio::process::Command::new(BIN)
            .arg("admin")
            .args(args)
            .current_dir(self.work.path())
            .env("XDG_CONFIG_HOME", self.config_home.path())
            .env_remove("TESSERA_CONTEXT")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap()
    }

    /// Runs a command that must succeed, with `-o json`, and parses its output.
    async fn json(&self, args: &[&str]) -> Value {
        let output = self.run(&[args, &["-o", "json"]].concat()).await;
        assert_eq!(output.status.code(), Some(0), "{args:?}: {}", stderr(&output));
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {output:?}"))
    }

    /// Runs a command that must fail with `code`; returns its stderr.
    async fn fails(&self, args: &[&str], code: i32) -> String {
        let output = self.run(args).await;
        assert_eq!(output.status.code(), Some(code), "{args:?}: {}", stderr(&output));
        assert!(output.stdout.is_empty(), "{args:?} printed {:?}", String::from_utf8_lossy(&output.stdout));
        stderr(&output)
    }

    /// Adds a context for `ca` with its admin token file.
    async fn add_context(&self, name: &str, ca: &TestCa) {
        let token = ca.dir.path().join("admin-token");
        self.add_context_with(name, ca, &["--token-file", token.to_str().unwrap()]).await;
    }

    async fn add_context_with(&self, name: &str, ca: &TestCa, token: &[&str]) {
        let root = ca.root_pem_path();
        let server = ca.admin_url("");
        let args =
            [&["context", "add", name, "--server", &server, "--ca-bundle", root.to_str().unwrap()], token].concat();
        let output = self.run(&args).await;
        assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    }
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn items(list: &Value) -> &Vec<Value> {
    list["items"].as_array().unwrap()
}

fn serials(list: &Value) -> Vec<&str> {
    items(list).iter().map(|c| c["serial"].as_str().unwrap()).collect()
}

fn pem_count(text: &str) -> usize {
    text.matches("-----BEGIN CERTIFICATE-----").count()
}

on_both_backends!(every_command_against_a_running_tessera, |ca| {
    let op = Operator::new();
    op.add_context("dev", ca).await;

    // Issue with a key made here: the key stays in a 0600 file, the chain
    // and the leaf are written, and the certificate is for that key.
    let issued = op
        .json(&[
            "certificates",
            "issue",
            "--policy",
            "default",
            "--name",
            "svc.test",
            "--name",
            "127.0.0.7",
            "--key",
            "svc.key",
            "--chain",
            "svc-chain.pem",
            "--cert",
            "svc.crt",
            "--ttl",
            "2h",
        ])
        .await;
    let serial = issued["serial"].as_str().unwrap().to_owned();
    assert_eq!(issued["status"], "issued");
    assert_eq!(issued["policy"], "default");
    let key_mode = std::fs::metadata(op.file("svc.key")).unwrap().permissions().mode() & 0o777;
    assert_eq!(key_mode, 0o600);
    let chain = std::fs::read_to_string(op.file("svc-chain.pem")).unwrap();
    let leaf = std::fs::read_to_string(op.file("svc.crt")).unwrap();
    assert_eq!(pem_count(&chain), 2, "leaf and issuing CA");
    assert!(chain.starts_with(&leaf), "the chain starts with the leaf");
    assert_eq!(leaf, issued["certificate"].as_str().unwrap());
    crate::common::openssl_verify(op.work.path(), &ca.root_pem_path(), &chain, &leaf).unwrap();
    let key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(op.file("svc.key")).unwrap()).unwrap();
    let leaf_der = pem::parse(&leaf).unwrap().into_contents();
    let (_, certificate) = x509_parser::parse_x509_certificate(&leaf_der).unwrap();
    assert_eq!(certificate.public_key().raw, rcgen::PublicKeyData::subject_public_key_info(&key).as_slice());

    // Issue from a CSR made elsewhere.
    std::fs::write(op.file("api.csr"), csr_for(&["api.test"])).unwrap();
    let from_csr = op
        .json(&["certificates", "issue", "--policy", "default", "--csr", "api.csr", "--chain", "api-chain.pem"])
        .await;
    let api_serial = from_csr["serial"].as_str().unwrap().to_owned();
    assert_eq!(from_csr["identifiers"][0]["value"], "api.test");
    assert_eq!(pem_count(&std::fs::read_to_string(op.file("api-chain.pem")).unwrap()), 2);

    // List, filter, search, show.
    let all = op.json(&["certificates", "list", "--all"]).await;
    assert!(serials(&all).contains(&serial.as_str()) && serials(&all).contains(&api_serial.as_str()), "{all}");
    let by_name = op.json(&["certificates", "list", "--san", "svc.test", "--status", "issued"]).await;
    assert_eq!(serials(&by_name), [serial.as_str()]);
    assert!(by_name["next_cursor"].is_null());
    let page = op.json(&["certificates", "list", "--limit", "1"]).await;
    assert_eq!(items(&page).len(), 1);
    let next =
        op.json(&["certificates", "list", "--limit", "1", "--cursor", page["next_cursor"].as_str().unwrap()]).await;
    assert_ne!(serials(&next), serials(&page), "the cursor moves on");
    let found = op.json(&["certificates", "search", "127.0.0.7", "--expiring-within", "3h"]).await;
    assert_eq!(serials(&found), [serial.as_str()]);
    let later = op.json(&["certificates", "search", "127.0.0.7", "--expiring-within", "1h"]).await;
    assert!(serials(&later).is_empty(), "a 2h certificate does not expire within 1h: {later}");
    let under = op.json(&["certificates", "search", "--suffix", "*.test", "--kind", "workload"]).await;
    assert_eq!(serials(&under).len(), 2, "{under}");
    assert!(serials(&under).contains(&serial.as_str()) && serials(&under).contains(&api_serial.as_str()), "{under}");
    let by_subject = op.json(&["certificates", "search", "--subject", "CN=api.test", "--suffix", ".test"]).await;
    assert_eq!(serials(&by_subject), [api_serial.as_str()]);
    let own = op.json(&["certificates", "search", "--kind", "internal", "--requester", "tessera"]).await;
    assert!(!items(&own).is_empty() && items(&own).iter().all(|c| c["kind"] == "internal"), "{own}");
    let shown = op.json(&["certificates", "show", &serial]).await;
    assert_eq!(shown["serial"], serial.as_str());
    assert_eq!(shown["identifiers"].as_array().unwrap().len(), 2);
    let pem_chain = op.run(&["certificates", "show", &serial, "--pem"]).await;
    assert_eq!(pem_count(&text(&pem_chain)), 2);
    assert!(text(&pem_chain).starts_with(&leaf));

    // A table for people: aligned columns under headers, times readable.
    let table = text(&op.run(&["certificates", "list", "--san", "svc.test"]).await);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("SERIAL") && lines[0].contains("NOT AFTER"), "{table}");
    assert!(lines[1].starts_with(&serial) && lines[1].contains("svc.test, 127.0.0.7"), "{table}");
    assert_eq!(lines[0].find("STATUS"), lines[1].find("issued"), "aligned: {table}");
    assert!(lines[1].contains("(in 1h)") || lines[1].contains("(in 2h)"), "{table}");
    let yaml = text(&op.run(&["certificates", "show", &serial, "-o", "yaml"]).await);
    let from_yaml: Value = serde_yaml_ng::from_str(&yaml).unwrap();
    assert_eq!(from_yaml, shown);

    // Revoke, and find it in the audit log.
    let revoked = op.json(&["certificates", "revoke", &serial, "--reason", "keyCompromise", "--yes"]).await;
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(revoked["revocation_reason"], "keyCompromise");
    let events = op.json(&["audit", "--action", "certificate.revoke", "--target", &serial]).await;
    assert_eq!(items(&events).len(), 1, "{events}");
    assert_eq!(items(&events)[0]["detail"]["reason"], "keyCompromise");

    // Policies from flags and from a TOML file.
    let web = op
        .json(&["policies", "create", "web", "--dns", "*.web.test", "--key-type", "ecdsa-p256", "--max-ttl", "24h"])
        .await;
    assert_eq!(web["dns"], serde_json::json!(["*.web.test"]));
    assert_eq!(web["default_ttl"], "24h");
    std::fs::write(
        op.file("web.toml"),
        "dns = [\"*.web.test\", \"web.test\"]\nmax_ttl = \"48h\"\ndefault_ttl = \"12h\"\n",
    )
    .unwrap();
    let updated = op.json(&["policies", "update", "web", "--file", "web.toml"]).await;
    assert_eq!(updated["dns"], serde_json::json!(["*.web.test", "web.test"]));
    assert_eq!(updated["key_types"], serde_json::json!([]), "an update replaces every rule");
    assert_eq!(op.json(&["policies", "show", "web"]).await["max_ttl"], "48h");
    let policies = op.json(&["policies", "list"]).await;
    let names: Vec<&str> = items(&policies).iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["default", "web"]);

    // Tokens: the secret once, bindings, expiry, revocation.
    let token = op
        .json(&["tokens", "create", "--name", "ci", "--scope", "issuer", "--policy", "web", "--expires-in", "30d"])
        .await;
    let secret = token["token"].as_str().unwrap().to_owned();
    let token_number = token["id"].as_i64().unwrap();
    let token_id = token_number.to_string();
    assert_eq!(token["policies"], serde_json::json!(["web"]));
    let expires = time::OffsetDateTime::parse(
        token["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let in_30_days = time::OffsetDateTime::now_utc() + time::Duration::days(30);
    assert!((expires - in_30_days).abs() < time::Duration::minutes(5), "{expires}");
    let bound = op.json(&["tokens", "bind", &token_id, "--policy", "default", "--policy", "web"]).await;
    assert_eq!(bound["policies"], serde_json::json!(["default", "web"]));
    let tokens = op.json(&["tokens", "list"]).await;
    let listed = items(&tokens).iter().find(|t| t["id"].as_i64() == Some(token_number)).unwrap();
    assert_eq!(listed["policies"], serde_json::json!(["default", "web"]));
    assert!(!tokens.to_string().contains(&secret), "a listing never shows a secret");
    // The new token, read from a variable, signs but may not list.
    op.add_context_with("ci", ca, &["--token-env", "CI_TOKEN"]).await;
    std::fs::write(op.file("ci.csr"), csr_for(&["ci.web.test"])).unwrap();
    let as_ci = |args: &'static [&'static str]| {
        let args: Vec<&str> = [&["--context", "ci"][..], args].concat();
        let op = &op;
        let secret = secret.clone();
        async move { op.run_with_env(&args, &[("CI_TOKEN", &secret)]).await }
    };
    let signed = as_ci(&["certificates", "issue", "--policy", "web", "--csr", "ci.csr", "--chain", "ci.pem"]).await;
    assert_eq!(signed.status.code(), Some(0), "{}", stderr(&signed));
    let refused = as_ci(&["certificates", "list"]).await;
    assert_eq!(refused.status.code(), Some(5), "{}", stderr(&refused));
    assert!(stderr(&refused).contains("(403 insufficient-scope)"), "{}", stderr(&refused));
    let revoked_token = op.json(&["tokens", "revoke", &token_id, "--yes"]).await;
    assert!(revoked_token["revoked_at"].is_string());
    assert_eq!(as_ci(&["certificates", "list"]).await.status.code(), Some(5), "a revoked token is refused");

    // With no live token bound to it, the policy can go.
    let deleted = op.run(&["policies", "delete", "web", "--yes"]).await;
    assert_eq!(deleted.status.code(), Some(0), "{}", stderr(&deleted));
    op.fails(&["policies", "show", "web"], 4).await;

    // EAB keys: the HMAC key once.
    let eab = op.json(&["eab-keys", "create", "--policy", "default", "--reusable"]).await;
    let kid = eab["kid"].as_str().unwrap().to_owned();
    assert!(eab["hmac_key"].as_str().unwrap().len() >= 43);
    let keys = op.json(&["eab-keys", "list"]).await;
    assert!(items(&keys).iter().any(|k| k["kid"] == kid.as_str() && k["reusable"] == true));
    assert!(!keys.to_string().contains(eab["hmac_key"].as_str().unwrap()));
    let revoked_key = op.json(&["eab-keys", "revoke", &kid, "--yes"]).await;
    assert!(revoked_key["revoked_at"].is_string());
    assert_eq!(revoked_key["accounts_revoked"], 0);

    // Authorities: list, show, chain, CRL, OCSP responder, renew-all, rotate.
    let authorities = op.json(&["authorities", "list"]).await;
    let issuing = items(&authorities).iter().find(|a| a["kind"] == "issuing").unwrap();
    let issuing_id = issuing["id"].to_string();
    assert_eq!(op.json(&["authorities", "show", &issuing_id]).await["name"], "issuing");
    let authority_chain = op.run(&["authorities", "chain", &issuing_id]).await;
    assert_eq!(pem_count(&text(&authority_chain)), 2, "issuing CA and root");
    let crls = op.json(&["authorities", "crl", &issuing_id]).await;
    assert_eq!(crls[0]["authority_id"].to_string(), issuing_id);
    assert!(crls[0]["entries"].as_i64().unwrap() >= 1, "the revoked certificate is listed: {crls}");
    let ocsp = op.run(&["authorities", "ocsp-rotate", &issuing_id]).await;
    assert_eq!(ocsp.status.code(), Some(0), "{}", stderr(&ocsp));
    let pull = op.json(&["authorities", "renew-all", &issuing_id, "--san", "*.test", "--yes"]).await;
    assert_eq!(pull["san"], "dns:*.test");
    assert!(pull["affected"].as_i64().unwrap() >= 1, "{pull}");
    let successor = op.json(&["authorities", "rotate", &issuing_id, "--yes"]).await;
    assert_eq!(successor["name"], "issuing-2");
    assert_eq!(successor["parent_id"], issuing["parent_id"]);

    // Lifecycle: expirations per authority, the jobs.
    let expirations = op.json(&["expirations"]).await;
    let figures = expirations["authorities"].as_array().unwrap();
    assert!(figures.iter().any(|a| a["name"] == "issuing-2"), "{expirations}");
    assert!(figures.iter().any(|a| a["name"] == "issuing" && a["status"] == "retired"), "{expirations}");
    let jobs = op.json(&["jobs"]).await;
    assert!(items(&jobs).iter().all(|j| j["name"].is_string() && j["runs"].is_i64()), "{jobs}");
});

on_both_backends!(refusals_have_their_exit_status_and_change_nothing, |ca| {
    let op = Operator::new();
    op.add_context("dev", ca).await;
    let issued = ca.sign(&csr_for(&["keep.test"])).await;
    let serial = issued["serial"].as_str().unwrap().to_owned();
    let before = crate::common::tables::Snapshot::settled(&ca.db).await;

    // Changes that need a confirmation are refused without a terminal.
    for args in [
        vec!["certificates", "revoke", serial.as_str()],
        vec!["tokens", "revoke", "1"],
        vec!["policies", "delete", "default"],
        vec!["authorities", "rotate", "2"],
        vec!["authorities", "renew-all", "2"],
        vec!["eab-keys", "revoke", "kid-anything"],
    ] {
        let line = op.fails(&args, 6).await;
        assert!(line.contains("pass --yes") && line.lines().count() == 1, "{args:?}: {line}");
    }
    before.assert_unchanged(&ca.snapshot().await, &[], "changes refused for want of a confirmation");

    // A problem document: one line with title, detail, status and type.
    let missing = op.fails(&["certificates", "show", "7a3b9c"], 4).await;
    assert_eq!(missing.trim(), "tessera admin: Not found: no certificate with serial 7a3b9c (404 not-found)");
    op.fails(&["policies", "show", "nothing-here"], 4).await;
    let done = op.run(&["certificates", "revoke", &serial, "--yes"]).await;
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    let twice = op.fails(&["certificates", "revoke", &serial, "--yes"], 1).await;
    assert!(twice.contains("(409 already-revoked)") && twice.lines().count() == 1, "{twice}");
    let bad_policy = op.fails(&["policies", "create", "bad", "--dns", "*.x.test", "--max-ttl", "forever"], 1).await;
    assert!(bad_policy.contains("(400 malformed-request)"), "{bad_policy}");
    let outside = op
        .fails(
            &[
                "certificates",
                "issue",
                "--policy",
                "default",
                "--name",
                "db.example.com",
                "--key",
                "db.key",
                "--chain",
                "db.pem",
            ],
            1,
        )
        .await;
    assert!(outside.contains("(403 identifier-not-allowed)"), "{outside}");
    assert!(!op.file("db.key").exists(), "no key is left for a certificate that was refused");

    // A token the server does not know.
    std::fs::write(op.file("wrong-token"), "tsr_not-a-token").unwrap();
    std::fs::set_permissions(op.file("wrong-token"), std::fs::Permissions::from_mode(0o644)).unwrap();
    op.add_context_with("wrong", ca, &["--token-file", op.file("wrong-token").to_str().unwrap()]).await;
    let unknown = op.fails(&["--context", "wrong", "jobs"], 5).await;
    assert!(unknown.contains("(401 unauthorized)"), "{unknown}");
    assert!(unknown.contains("can be read by others than its owner"), "a 0644 token file is pointed out: {unknown}");
    assert!(!unknown.contains("tsr_not-a-token"), "the token is never printed");

    // No server there, or a server the CA bundle does not vouch for.
    let other_ca = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    std::fs::write(op.file("other-ca.pem"), other_ca.pem()).unwrap();
    let token = ca.dir.path().join("admin-token");
    let add = |name: &'static str, server: String, bundle: PathBuf| {
        let op = &op;
        let token = token.clone();
        async move {
            let output = op
                .run(&[
                    "context",
                    "add",
                    name,
                    "--server",
                    &server,
                    "--ca-bundle",
                    bundle.to_str().unwrap(),
                    "--token-file",
                    token.to_str().unwrap(),
                ])
                .await;
            assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
        }
    };
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    add("closed", format!("https://localhost:{closed}"), ca.root_pem_path()).await;
    let unreachable = op.fails(&["--context", "closed", "jobs"], 3).await;
    assert!(unreachable.starts_with("tessera admin: cannot reach"), "{unreachable}");
    add("untrusted", ca.admin_url(""), op.file("other-ca.pem")).await;
    let untrusted = op.fails(&["--context", "untrusted", "jobs"], 3).await;
    assert!(untrusted.contains("UnknownIssuer"), "{untrusted}");

    // Usage: flags clap refuses, a server in clear text, an unknown context.
    op.fails(&["certificates", "revoke"], 2).await;
    op.fails(&["certificates", "issue", "--policy", "default", "--name", "x.test", "--chain", "x.pem"], 2).await;
    let clear = op
        .fails(
            &[
                "context",
                "add",
                "clear",
                "--server",
                "http://localhost:9443",
                "--ca-bundle",
                ca.root_pem_path().to_str().unwrap(),
                "--token-env",
                "T",
            ],
            2,
        )
        .await;
    assert!(clear.contains("https://"), "{clear}");
    op.fails(&["--context", "nowhere", "jobs"], 2).await;
});

/// The contexts file itself: nothing here depends on the storage backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contexts_are_private_and_picked_by_flag_or_environment() {
    let ca = TestCa::start(Backend::Sqlite).await.unwrap();
    let op = Operator::new();
    let none = op.fails(&["jobs"], 2).await;
    assert!(none.contains("context add"), "{none}");

    op.add_context("first", &ca).await;
    let root = ca.root_pem_path();
    let token = ca.dir.path().join("admin-token");
    let nowhere = op
        .run(&[
            "context",
            "add",
            "nowhere",
            "--server",
            "https://localhost:1",
            "--ca-bundle",
            root.to_str().unwrap(),
            "--token-file",
            token.to_str().unwrap(),
        ])
        .await;
    assert_eq!(nowhere.status.code(), Some(0), "{}", stderr(&nowhere));

    let file = op.contexts_file();
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(std::fs::metadata(file.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o700);
    let kept = std::fs::read_to_string(&file).unwrap();
    assert!(
        kept.contains("token_file") && !kept.contains(&ca.admin_token),
        "the file names where the token is: {kept}"
    );

    let listed = op.json(&["context", "list"]).await;
    let current: Vec<&str> =
        items(&listed).iter().filter(|c| c["current"] == "*").map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(current, ["first"], "the first context added is the current one");

    // The current one, then --context, then TESSERA_CONTEXT, then `use`.
    assert_eq!(op.run(&["jobs"]).await.status.code(), Some(0));
    assert_eq!(op.run(&["--context", "nowhere", "jobs"]).await.status.code(), Some(3));
    assert_eq!(op.run_with_env(&["jobs"], &[("TESSERA_CONTEXT", "nowhere")]).await.status.code(), Some(3));
    assert_eq!(op.run(&["context", "use", "nowhere"]).await.status.code(), Some(0));
    assert_eq!(op.run(&["jobs"]).await.status.code(), Some(3));
    assert_eq!(op.run(&["context", "remove", "nowhere"]).await.status.code(), Some(0));
    op.fails(&["jobs"], 2).await;
    op.fails(&["context", "use", "nowhere"], 2).await;
    assert_eq!(op.run(&["context", "use", "first"]).await.status.code(), Some(0));
    assert_eq!(op.run(&["jobs"]).await.status.code(), Some(0));
    ca.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_and_manual_pages() {
    let op = Operator::new();
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef tessera"), ("fish", "complete -c tessera")] {
        let output = op.run(&["completions", shell]).await;
        assert_eq!(output.status.code(), Some(0), "{shell}: {}", stderr(&output));
        let script = text(&output);
        assert!(script.contains(marker) && script.contains("renew-all"), "{shell} completes the admin commands");
    }
    let page = text(&op.run(&["man"]).await);
    assert!(page.contains(".TH tessera-admin 1"), "{page}");
    assert!(page.contains("Exit status") && page.contains("certificates"), "{page}");
    let dir = op.file("man");
    std::fs::create_dir(&dir).unwrap();
    assert_eq!(op.run(&["man", "--dir", dir.to_str().unwrap()]).await.status.code(), Some(0));
    for page in ["tessera-admin.1", "tessera-admin-certificates-issue.1", "tessera-admin-context-add.1"] {
        assert!(dir.join(page).exists(), "{page}");
    }
}
