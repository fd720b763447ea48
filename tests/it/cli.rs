//! The `tessera` binary as a user runs it: dev mode start, restart,
//! SIGTERM, config errors, `init` and `migrate`. Dev mode on SQLite, the
//! store the binary starts with; PostgreSQL is reached through the same
//! `start` as every in-process test on both backends, and `migrate` is run
//! against it here.
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

struct Server {
    child: Child,
    ready_file: PathBuf,
    /// Known once `ready` has read the ready file.
    admin_port: u16,
}

fn serve(data_dir: &Path, extra: &[&str]) -> Server {
    let mut command = Command::new(BIN);
    command.arg("serve").arg("--data-dir").arg(data_dir).args(extra);
    spawn(command, data_dir)
}

/// Starts `tessera serve` with every listener on a port the kernel picks
/// and `--ready-file`, which reports the ports once they are bound.
fn spawn(mut command: Command, data_dir: &Path) -> Server {
    let ready_file = data_dir.join("ready.json");
    let _ = std::fs::remove_file(&ready_file);
    let child = command
        .args(["--https-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
        .arg("--ready-file")
        .arg(&ready_file)
        .env("TESSERA_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    Server { child, ready_file, admin_port: 0 }
}

impl Server {
    /// Waits for the ready file, then until the admin listener answers
    /// `/healthz` over TLS.
    async fn ready(&mut self, data_dir: &Path) -> reqwest::Client {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("tessera exited early with {status}");
            }
            if let Ok(text) = std::fs::read_to_string(&self.ready_file) {
                let addresses: serde_json::Value = serde_json::from_str(&text).unwrap();
                let admin: std::net::SocketAddr = addresses["admin_addr"].as_str().unwrap().parse().unwrap();
                self.admin_port = admin.port();
                let root = std::fs::read(data_dir.join("root.pem")).unwrap();
                let client = crate::common::client_trusting(&root);
                let url = format!("https://localhost:{}/healthz", self.admin_port);
                if client.get(&url).send().await.is_ok_and(|r| r.status() == 200) {
                    return client;
                }
            }
            assert!(Instant::now() < deadline, "tessera did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends SIGTERM and returns the process's output once it exits.
    fn terminate(self) -> Output {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        self.child.wait_with_output().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_mode_starts_restarts_and_stops_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = serve(dir.path(), &[]);
    let client = server.ready(dir.path()).await;

    let token_path = dir.path().join("admin-token");
    assert_eq!(std::fs::metadata(&token_path).unwrap().permissions().mode() & 0o777, 0o600);
    let token = std::fs::read_to_string(&token_path).unwrap().trim().to_owned();
    let csr = crate::common::csr_for(&["svc.test"]);
    let response = client
        .post(format!("https://localhost:{}/api/v1/certificates", server.admin_port))
        .bearer_auth(&token)
        .json(&serde_json::json!({"policy": "default", "csr": csr}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let root_before = std::fs::read(dir.path().join("root.pem")).unwrap();
    let tls_before = std::fs::read(dir.path().join("tls/server.crt")).unwrap();

    let output = server.terminate();
    assert!(output.status.success(), "SIGTERM should end tessera cleanly: {:?}", output.status);
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(log.matches("development keys").count(), 1, "{log}");
    assert!(!log.contains(&token), "the admin token must never be logged");

    // A restart reuses the hierarchy, the token and the TLS certificate.
    let mut again = serve(dir.path(), &[]);
    let client = again.ready(dir.path()).await;
    assert_eq!(std::fs::read(dir.path().join("root.pem")).unwrap(), root_before);
    assert_eq!(std::fs::read(dir.path().join("tls/server.crt")).unwrap(), tls_before);
    let list = client
        .get(format!("https://localhost:{}/api/v1/certificates?san=svc.test", again.admin_port))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    let body: serde_json::Value = list.json().await.unwrap();
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    assert!(again.terminate().status.success());
}

#[test]
fn invalid_config_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tessera.toml");
    std::fs::write(&config, "admin_addr = \"nowhere\"\n").unwrap();
    let output = Command::new(BIN).arg("serve").arg("--config").arg(&config).stdin(Stdio::null()).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("admin_addr"), "{stderr}");

    let output = Command::new(BIN)
        .arg("serve")
        .env("TESSERA_DATABASE_URL", "mysql://nope")
        .env("TESSERA_DATA_DIR", dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("database_url"));
}

/// Issue 22.4: `serve --help` names the addresses used without a flag.
#[test]
fn serve_help_shows_the_default_addresses() {
    let output = Command::new(BIN).args(["serve", "--help"]).output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for default in ["[default: 127.0.0.1:8443]", "[default: 127.0.0.1:8080]", "[default: 127.0.0.1:9443]"] {
        assert!(help.contains(default), "{default}: {help}");
    }
    assert!(help.contains("--log-format <LOG_FORMAT>"), "{help}");
}

/// Issue 22.4: a listener's address in use is said so, with the flag and
/// the config key that move it; `--log-format json` writes JSON log lines.
#[test]
fn an_address_in_use_names_its_flag() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap();
    let output = Command::new(BIN)
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--https-addr", &taken.to_string(), "--http-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
        .args(["--log-format", "json"])
        .env("TESSERA_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = format!(
        "cannot listen on {taken}: the address is in use (by another Tessera or another program); \
         choose another address with --https-addr or https_addr in the config"
    );
    assert!(stderr.contains(&expected), "{stderr}");
    let logged = stderr.lines().find(|l| l.contains("dev mode")).unwrap_or_else(|| panic!("{stderr}"));
    let line: serde_json::Value = serde_json::from_str(logged).unwrap_or_else(|e| panic!("{e}: {logged}"));
    assert!(line["fields"]["message"].as_str().is_some_and(|m| m.starts_with("dev mode")), "{line}");
}

/// Issue 22.4: `config show` prints the configuration serve would use
/// (file, `TESSERA_*` variables, flags) as TOML; no credential given in
/// the file or the environment appears, references to secrets do.
#[test]
fn config_show_prints_the_effective_configuration_without_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tessera.toml");
    std::fs::write(
        &config,
        "tls_names = [\"ca.internal\"]\n\
         [keys.pkcs11]\nmodule = \"/usr/lib/softhsm/libsofthsm2.so\"\npin_env = \"HSM_PIN\"\n\
         [hierarchy.root]\nname = \"r\"\ncommon_name = \"R\"\nvalidity_days = 1000\n\
         key_uri = \"pkcs11:token=ca;object=root?pin-source=file:/run/pin-5e1f\"\n\
         [secrets]\nkek = \"env:SHOW_TEST_KEK\"\n\
         [[lifecycle.webhooks]]\nurl = \"https://bot:hook-pass-77aa@hooks.internal/x?token=hook-token-09bb\"\n\
         secret_env = \"HOOK_SECRET\"\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["config", "show", "--admin-addr", "127.0.0.1:9555", "--metrics-addr", "127.0.0.1:9464", "--config"])
        .arg(&config)
        .env("TESSERA_DATABASE_URL", "postgres://tessera:db-pass-1f2e@db.internal/tessera")
        .env("TESSERA_LISTENERS__MAX_CONNECTIONS", "77")
        .env("SHOW_TEST_KEK", "kek-value-3c4d")
        .env("HSM_PIN", "pin-value-9a8b")
        .env("HOOK_SECRET", "hook-secret-6d7e")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{shown} {}", String::from_utf8_lossy(&output.stderr));
    for secret in [
        "db-pass-1f2e",
        "pin-5e1f",
        "kek-value-3c4d",
        "pin-value-9a8b",
        "hook-pass-77aa",
        "hook-token-09bb",
        "hook-secret-6d7e",
    ] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    let parsed: toml::Table = shown.parse().unwrap_or_else(|e| panic!("{e}: {shown}"));
    assert_eq!(parsed["admin_addr"].as_str(), Some("127.0.0.1:9555"), "a flag: {shown}");
    assert_eq!(parsed["metrics_addr"].as_str(), Some("127.0.0.1:9464"), "a flag: {shown}");
    assert_eq!(parsed["listeners"]["max_connections"].as_integer(), Some(77), "a variable: {shown}");
    assert_eq!(parsed["tls_names"][0].as_str(), Some("ca.internal"), "the file: {shown}");
    assert_eq!(parsed["https_addr"].as_str(), Some("127.0.0.1:8443"), "a default: {shown}");
    assert_eq!(parsed["database_url"].as_str(), Some("postgres://tessera:redacted@db.internal/tessera"));
    assert_eq!(parsed["secrets"]["kek"].as_str(), Some("env:SHOW_TEST_KEK"));
    assert_eq!(parsed["keys"]["pkcs11"]["pin_env"].as_str(), Some("HSM_PIN"));
    let hook = &parsed["lifecycle"]["webhooks"][0];
    assert_eq!(hook["url"].as_str(), Some("https://redacted:redacted@hooks.internal/x?redacted"));
    assert_eq!(hook["secret_env"].as_str(), Some("HOOK_SECRET"));
    let key_uri = parsed["hierarchy"]["root"]["key_uri"].as_str().unwrap();
    assert_eq!(key_uri, "pkcs11:token=ca;object=root?pin-source=[redacted]");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_creates_a_production_hierarchy_once() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tessera.toml");
    std::fs::write(
        &config,
        format!(
            r#"mode = "production"
data_dir = "{}"

[keys.file]
passphrase_env = "TESSERA_TEST_KEY_PASSPHRASE"

[secrets]
kek = "file:secrets.kek"

[hierarchy.root]
name = "corp-root"
common_name = "Corp Root CA"
key_uri = "file:keys/corp-root.pem"
algorithm = "ecdsa-p384-sha384"
validity_days = 3650

[hierarchy.issuing]
name = "corp-issuing"
common_name = "Corp Issuing CA 1"
key_uri = "file:keys/corp-issuing.pem"
validity_days = 365
"#,
            dir.path().display()
        ),
    )
    .unwrap();
    let init = || {
        Command::new(BIN)
            .args(["init", "--config"])
            .arg(&config)
            .env("TESSERA_TEST_KEY_PASSPHRASE", "correct horse")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let first = init();
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let key = std::fs::read_to_string(dir.path().join("keys/corp-root.pem")).unwrap();
    assert!(key.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"), "keys are encrypted at rest");
    let second = init();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("never overwrites"));

    // Production serve uses the hierarchy init made.
    let mut server = Command::new(BIN);
    server.env("TESSERA_TEST_KEY_PASSPHRASE", "correct horse").args(["serve", "--config"]).arg(&config);
    let mut running = spawn(server, dir.path());
    let client = running.ready(dir.path()).await;
    let admin = running.admin_port;
    let token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap().trim().to_owned();
    let authorities: serde_json::Value = client
        .get(format!("https://localhost:{admin}/api/v1/authorities"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(authorities["items"][0]["name"], "corp-root");
    assert_eq!(authorities["items"][0]["algorithm"], "ecdsa-p384-sha384");
    assert_eq!(authorities["items"][1]["name"], "corp-issuing");
    let output = running.terminate();
    assert!(!String::from_utf8_lossy(&output.stderr).contains("development keys"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_runs_alone_on_postgres() {
    let Some(url) = crate::common::fresh_postgres_url().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let run = || {
        Command::new(BIN)
            .args(["migrate", "--database-url", &url])
            .arg("--data-dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let output = run();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("postgres"));
    assert!(run().status.success(), "migrating twice is a no-op");
}
