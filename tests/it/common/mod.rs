//! Shared test harness: a real Tessera server on loopback, on SQLite or on
//! a fresh PostgreSQL database, with an HTTPS client that trusts its root.
#![allow(dead_code, clippy::unwrap_used)]

pub mod acme;
pub mod agent;
pub mod custodians;
pub mod fault_proxy;
pub mod postgres_cluster;
pub mod relying_party;
pub mod tables;
pub mod webhook;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use rcgen::{CertificateParams, KeyPair, SanType};
use tessera::cli::{Running, start};
use tessera::clock::{SharedClock, TestClock};
use tessera::config::{AcmeOverrides, Config, Overrides};
use tessera::storage::{Db, DbOptions};

/// Serialises CA key generation in `TestCa::start_production`.
static KEY_GENERATION: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Test databases are named by this prefix, their creation time (Unix
/// seconds) and a random part.
const TEST_DATABASE_PREFIX: &str = "tessera_test_";

/// Drops the test databases of runs that ended long ago: a test leaves its
/// database behind (a failed one must, to be looked at), and a server that
/// `DATABASE_URL` names would otherwise collect them run after run. Names
/// without a creation time come from before it was recorded.
async fn drop_stale_test_databases(server: &str, now: u64) {
    use sqlx::Connection;
    const STALE_AFTER_SECONDS: u64 = 6 * 3600;
    let Ok(mut admin) = sqlx::PgConnection::connect(server).await else { return };
    let names: Vec<String> = sqlx::query_scalar("SELECT datname::TEXT FROM pg_database WHERE starts_with(datname, $1)")
        .bind(TEST_DATABASE_PREFIX)
        .fetch_all(&mut admin)
        .await
        .unwrap_or_default();
    for name in names {
        let created = name
            .strip_prefix(TEST_DATABASE_PREFIX)
            .and_then(|rest| rest.split_once('_'))
            .and_then(|(time, _)| time.parse::<u64>().ok());
        if created.is_none_or(|created| created + STALE_AFTER_SECONDS < now) {
            // Another run may be dropping it too, or a session still holds it.
            let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
            let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut admin).await;
        }
    }
    let _ = admin.close().await;
}

/// Whether this is a CI run (CI=true): there nothing the suite needs may be
/// missing, whatever else the environment says.
pub fn is_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Says why a test (or part of one) did not run, on the terminal itself:
/// the harness keeps `eprintln!` of passing tests to itself, so a skip
/// would otherwise go unseen.
pub fn skip(reason: &str) {
    use std::io::Write;
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

/// A fresh, empty PostgreSQL database on the server `DATABASE_URL` names.
/// Returns None (test skipped, with its reason) when no server is
/// configured, unless `TESSERA_TEST_POSTGRES=required` or a CI run, which
/// turn a skip into a failure.
pub async fn fresh_postgres_url() -> Option<String> {
    let Ok(server) = std::env::var("DATABASE_URL") else {
        assert!(
            std::env::var("TESSERA_TEST_POSTGRES").as_deref() != Ok("required") && !is_ci(),
            "PostgreSQL is required here (TESSERA_TEST_POSTGRES=required or CI=true) but DATABASE_URL is not set"
        );
        skip("DATABASE_URL is not set: no PostgreSQL variant");
        return None;
    };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let name = format!("{TEST_DATABASE_PREFIX}{now}_{}", hex::encode(rand::random::<[u8; 4]>()));
    drop_stale_test_databases(&server, now).await;
    let admin = Db::connect(&DbOptions { max_connections: 1, ..DbOptions::new(server.clone()) })
        .await
        .expect("connect to DATABASE_URL");
    admin.execute_raw(&format!("CREATE DATABASE {name}")).await.expect("create test database");
    admin.close().await;
    let mut url = url::Url::parse(&server).expect("DATABASE_URL is a URL");
    url.set_path(&format!("/{name}"));
    Some(url.to_string())
}

/// A running Tessera in dev mode with its own data directory.
pub struct TestCa {
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub running: Option<Running>,
    pub client: reqwest::Client,
    pub admin_token: String,
    pub db: Db,
    /// The server's clock: the wall clock until a test moves it forward.
    pub clock: Arc<TestClock>,
}

impl TestCa {
    /// Starts a dev-mode CA; None when the backend is not available here.
    pub async fn start(backend: Backend) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let database_url = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(fresh_postgres_url().await?),
        };
        Some(Self::start_in(dir, database_url).await)
    }

    /// A dev CA whose own upkeep leaves the rows a test writes alone: the
    /// settling of interrupted issuance and the retention job run once at
    /// start (waited for here) and not again for years. Tests that write
    /// rows with made-up times through storage (`on_both_backends!` with a
    /// body) would otherwise see them settled or deleted midway.
    pub async fn start_steady(backend: Backend) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let database_url = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(fresh_postgres_url().await?),
        };
        let ca = Self::start_in_with(dir, database_url, AcmeOverrides::default(), |config| {
            config.lifecycle.interrupted_issuance_after = "3650d".parse().unwrap();
            config.lifecycle.retention.interval = "3650d".parse().unwrap();
        })
        .await;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (_, jobs) = ca.get("/api/v1/jobs", Some(&ca.admin_token)).await;
            let ran = |name: &str| {
                jobs["items"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|j| j["name"] == name && j["runs"].as_i64() > Some(0))
            };
            if ran(tessera::lifecycle::SETTLE_JOB) && ran(tessera::lifecycle::PRUNE_JOB) {
                return Some(ca);
            }
            assert!(std::time::Instant::now() < deadline, "the upkeep jobs did not run at start: {jobs}");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    pub async fn start_in(dir: tempfile::TempDir, database_url: Option<String>) -> Self {
        Self::start_in_with(dir, database_url, AcmeOverrides::default(), |_| {}).await
    }

    /// Starts a dev-mode CA whose ACME validation uses the given ports and resolver.
    pub async fn start_acme(backend: Backend, acme: AcmeOverrides) -> Option<Self> {
        Self::start_acme_with(backend, acme, |_| {}).await
    }

    /// Like `start_acme`, with a last say over the config.
    pub async fn start_acme_with(
        backend: Backend,
        acme: AcmeOverrides,
        adjust: impl FnOnce(&mut Config),
    ) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let database_url = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(fresh_postgres_url().await?),
        };
        Some(Self::start_in_with(dir, database_url, acme, adjust).await)
    }

    pub async fn start_in_with(
        dir: tempfile::TempDir,
        database_url: Option<String>,
        acme: AcmeOverrides,
        adjust: impl FnOnce(&mut Config),
    ) -> Self {
        let loopback_any = Some("127.0.0.1:0".parse().unwrap());
        let overrides = Overrides {
            https_addr: loopback_any,
            http_addr: loopback_any,
            admin_addr: loopback_any,
            metrics_addr: None,
            data_dir: Some(dir.path().to_path_buf()),
            database_url,
            run_migrations: None,
            log_format: None,
            acme,
        };
        let mut config = Config::load(None, &overrides).unwrap();
        adjust(&mut config);
        Self::start_config(dir, config).await.unwrap()
    }

    /// Starts Tessera with a prepared config (for production hierarchies).
    pub async fn start_config(dir: tempfile::TempDir, config: Config) -> anyhow::Result<Self> {
        let clock = TestClock::new();
        let running = start(config.clone(), clock.clone() as SharedClock).await?;
        let root_pem = std::fs::read(dir.path().join("root.pem")).unwrap();
        let client = client_at_clock(&root_pem, clock.clone());
        let admin_token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap().trim().to_owned();
        let db = Db::connect(&DbOptions::new(config.database_url())).await.unwrap();
        Ok(Self { dir, config, running: Some(running), client, admin_token, db, clock })
    }

    /// Runs `tessera init` for a production config, starts Tessera and adds
    /// a `default` policy for `*.test`.
    pub async fn start_production(dir: tempfile::TempDir, config: Config) -> Self {
        let db = Db::connect(&DbOptions::new(config.database_url())).await.unwrap();
        db.migrate().await.unwrap();
        let clock: SharedClock = Arc::new(tessera::clock::SystemClock);
        {
            // SoftHSM2 keeps a token in files that this process and the
            // p11-kit server both write; two key generations at once can fail
            // with CKR_GENERAL_ERROR, so the tests make their keys one at a time.
            let _one_at_a_time = KEY_GENERATION.lock().await;
            tessera::setup::init_hierarchy(&config, &db, &clock).await.unwrap();
        }
        db.close().await;
        let ca = Self::start_config(dir, config).await.unwrap();
        let policy = serde_json::json!({"name": "default", "dns": ["*.test"], "max_ttl": "24h"});
        let (status, body) = ca.post("/api/v1/policies", Some(&ca.admin_token), &policy).await;
        assert_eq!(status, 201, "{body}");
        ca
    }

    /// A sealer over this CA's database with its KEK, as a node has.
    pub async fn sealer(&self) -> Arc<tessera::secrets::Sealer> {
        let kek = self.config.kek_sources().unwrap();
        let clock = self.clock.clone() as SharedClock;
        tessera::secrets::Sealer::load(&kek, &self.config.keys.awskms, self.db.secrets(), clock).await.unwrap()
    }

    /// Counts this CA's certificates with a status, through the admin API.
    pub async fn count_with_status(&self, status: &str) -> usize {
        let (code, body) =
            self.get(&format!("/api/v1/certificates?status={status}&limit=500"), Some(&self.admin_token)).await;
        assert_eq!(code, 200, "{body}");
        body["items"].as_array().unwrap().len()
    }

    /// The value of one series of the admin listener's `/metrics`.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let response = self.client.get(self.admin_url("/metrics")).bearer_auth(&self.admin_token).send().await.unwrap();
        let text = response.text().await.unwrap();
        text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Signs a CSR for `name` and checks the leaf with `openssl verify`
    /// through the whole chain to the root.
    pub async fn issue_and_verify(&self, name: &str) {
        let issued = self.sign(&csr_for(&[name])).await;
        openssl_verify(
            self.dir.path(),
            &self.root_pem_path(),
            issued["chain"].as_str().unwrap(),
            issued["certificate"].as_str().unwrap(),
        )
        .unwrap_or_else(|e| panic!("openssl verify: {e}"));
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().unwrap()
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.running().admin_addr.port())
    }

    pub fn acme_directory(&self) -> String {
        format!("https://localhost:{}/acme/default/directory", self.running().https_addr.port())
    }

    /// A new EAB key for the `default` policy: (kid, unpadded base64url HMAC key).
    pub async fn eab_key(&self, reusable: bool) -> (String, String) {
        let (status, body) = self
            .post(
                "/api/v1/eab-keys",
                Some(&self.admin_token),
                &serde_json::json!({"policy": "default", "reusable": reusable}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        (body["kid"].as_str().unwrap().to_owned(), body["hmac_key"].as_str().unwrap().to_owned())
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.running().http_addr.port())
    }

    pub fn root_pem_path(&self) -> PathBuf {
        self.dir.path().join("root.pem")
    }

    /// POST JSON with a token; returns status and parsed body.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &serde_json::Value) -> (u16, serde_json::Value) {
        let mut request = self.client.post(self.admin_url(path)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        read(response).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, serde_json::Value) {
        let mut request = self.client.get(self.admin_url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        read(request.send().await.unwrap()).await
    }

    /// Signs a CSR under the `default` policy as admin; panics unless 201.
    pub async fn sign(&self, csr_pem: &str) -> serde_json::Value {
        let (status, body) = self
            .post(
                "/api/v1/certificates",
                Some(&self.admin_token),
                &serde_json::json!({"policy": "default", "csr": csr_pem}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    /// Every stored row, to show that a request changed nothing.
    pub async fn snapshot(&self) -> tables::Snapshot {
        tables::Snapshot::read(&self.db).await
    }

    /// Stops the server and hands back the data directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
        self.db.close().await;
        self.dir
    }
}

async fn read(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, body)
}

pub fn client_trusting(root_pem: &[u8]) -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let root = reqwest::Certificate::from_pem(root_pem).unwrap();
    reqwest::Client::builder().add_root_certificate(root).build().unwrap()
}

/// A client that trusts `root_pem` and checks certificates' validity at
/// `clock`'s time, as a relying party living at the CA's test time would:
/// a test that moves the clock ahead gets TLS certificates Tessera renews
/// at that time (after a CA rotation, say), which the real time would
/// call not valid yet.
pub fn client_at_clock(root_pem: &[u8], clock: Arc<TestClock>) -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &root_pem[..]) {
        roots.add(cert.unwrap()).unwrap();
    }
    let inner = rustls::client::WebPkiServerVerifier::builder(Arc::new(roots)).build().unwrap();
    let mut tls = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AtClock { inner, clock }))
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder().use_preconfigured_tls(tls).build().unwrap()
}

/// Verifies server certificates as WebPKI does, at a test clock's time.
#[derive(Debug)]
struct AtClock {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    clock: Arc<TestClock>,
}

impl rustls::client::danger::ServerCertVerifier for AtClock {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        use tessera::clock::Clock;
        let now = rustls::pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            self.clock.unix().max(0) as u64,
        ));
        self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A PEM CSR for `names` (DNS, IP or URI) with a fresh P-256 key.
pub fn csr_for(names: &[&str]) -> String {
    csr_with_key(names, &KeyPair::generate().unwrap())
}

pub fn csr_with_key(names: &[&str], key: &KeyPair) -> String {
    let mut params = CertificateParams::default();
    params.subject_alt_names = names
        .iter()
        .map(|n| {
            if let Ok(ip) = n.parse() {
                SanType::IpAddress(ip)
            } else if n.contains("://") {
                SanType::URI((*n).try_into().unwrap())
            } else {
                SanType::DnsName((*n).try_into().unwrap())
            }
        })
        .collect();
    params.serialize_request(key).unwrap().pem().unwrap()
}

/// A CSR made by the openssl CLI, for key types rcgen will not make.
pub fn openssl_csr(dir: &Path, key_args: &[&str], name: &str) -> String {
    let key = dir.join(format!("{name}.key"));
    let csr = dir.join(format!("{name}.csr"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-new",
            "-nodes",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            &format!("subjectAltName=DNS:{name}"),
        ])
        .args(key_args)
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr)
        .output()
        .unwrap();
    assert!(status.status.success(), "openssl req: {}", String::from_utf8_lossy(&status.stderr));
    std::fs::read_to_string(csr).unwrap()
}

/// Runs `openssl verify` on a leaf through the issuing chain to the root.
pub fn openssl_verify(dir: &Path, root_pem: &Path, chain_pem: &str, leaf_pem: &str) -> Result<(), String> {
    let chain = dir.join("chain-under-test.pem");
    let leaf = dir.join("leaf-under-test.pem");
    std::fs::write(&chain, chain_pem).unwrap();
    std::fs::write(&leaf, leaf_pem).unwrap();
    let out = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(root_pem)
        .arg("-untrusted")
        .arg(&chain)
        .arg(&leaf)
        .output()
        .unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

/// Defines `<name>::sqlite` and `<name>::postgres` tests, in two forms:
///
/// - `on_both_backends!(name)` runs the calling file's
///   `async fn name(backend: Backend)` (which returns early, skipped, when
///   the backend is not available here);
/// - `on_both_backends!(name, |ca| { ... })` runs the body with a dev-mode
///   `ca: &TestCa` started on each backend, and stops it afterwards.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::common::Backend::Sqlite).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::common::Backend::Postgres).await;
            }
        }
    };
    ($name:ident, |$ca:ident| $body:block) => {
        mod $name {
            use super::*;

            async fn run($ca: &TestCa) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let ca = TestCa::start_steady(Backend::Sqlite).await.expect("sqlite is always available");
                run(&ca).await;
                ca.stop().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(ca) = TestCa::start_steady(Backend::Postgres).await {
                    run(&ca).await;
                    ca.stop().await;
                }
            }
        }
    };
}
