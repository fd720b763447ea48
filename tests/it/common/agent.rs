//! Running the built agent (`tessera-agent`, and `tessera agent` where a
//! test says so) against an in-process Tessera whose ACME validation
//! reaches the agent's challenge listeners, and reading what it installs.

use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use tessera::config::{AcmeOverrides, Config};

use super::acme::Responders;
use super::{Backend, TestCa, openssl_verify};

pub const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// The agent as workload hosts run it: the `tessera-agent` binary of the
/// workspace's agent crate. `cargo test` builds another package's binary
/// only as a test harness, so scripts/test.sh runs `cargo build -p
/// tessera-agent` first. A missing binary, or one older than the agent's
/// sources, fails here rather than testing stale code.
pub fn agent_bin() -> PathBuf {
    let bin = Path::new(BIN).with_file_name("tessera-agent");
    let hint = "build it first: cargo build -p tessera-agent (scripts/test.sh builds the workspace)";
    let built =
        std::fs::metadata(&bin).and_then(|m| m.modified()).unwrap_or_else(|e| panic!("{}: {e}; {hint}", bin.display()));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for crate_dir in ["crates/tessera-agent", "crates/tessera-core"] {
        let newest = newest_modification(&root.join(crate_dir));
        assert!(newest <= built, "{} is older than the sources of {crate_dir}; {hint}", bin.display());
    }
    bin
}

/// The latest modification time of the files under `dir`.
fn newest_modification(dir: &Path) -> std::time::SystemTime {
    let mut newest = std::time::SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let modified = if path.is_dir() {
            newest_modification(&path)
        } else {
            std::fs::metadata(&path).and_then(|m| m.modified()).unwrap()
        };
        newest = newest.max(modified);
    }
    newest
}

/// A free port below the ephemeral range: the agent opens its challenge
/// listeners only while an order is open, and a port the kernel hands out
/// for `:0` could be taken by another test's listener in between.
pub fn free_port() -> u16 {
    loop {
        let port = rand::random_range(20_000..32_000);
        if std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
}

/// A CA whose validation reaches the agent: http-01 and tls-alpn-01 connect
/// to the agent's ports, and every name resolves to 127.0.0.1 through the
/// responders' DNS server (which also serves the dns-01 hook's records).
pub struct AgentSetup {
    pub ca: TestCa,
    pub responders: Responders,
    pub http01_port: u16,
    pub tlsalpn01_port: u16,
    pub work: tempfile::TempDir,
}

impl AgentSetup {
    pub async fn start(backend: Backend) -> Option<Self> {
        Self::start_with(backend, |_| {}).await
    }

    /// Like `start`, with a last say over the CA's config.
    pub async fn start_with(backend: Backend, adjust: impl FnOnce(&mut Config)) -> Option<Self> {
        let responders = Responders::start().await;
        let http01_port = free_port();
        let tlsalpn01_port = free_port();
        let acme = overrides(&responders, http01_port, tlsalpn01_port);
        let ca = TestCa::start_acme_with(backend, acme, adjust).await?;
        Some(Self { ca, responders, http01_port, tlsalpn01_port, work: tempfile::tempdir().unwrap() })
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    /// The acceptance command line, without a solver or `--once`.
    pub fn args(&self, kid: &str, hmac: &str, domains: &[&str]) -> Vec<String> {
        let mut args = vec![
            "--directory".to_owned(),
            self.ca.acme_directory(),
            "--ca-bundle".into(),
            self.ca.root_pem_path().display().to_string(),
            "--eab-kid".into(),
            kid.into(),
            "--eab-hmac".into(),
            hmac.into(),
            "--cert".into(),
            self.path("out/cert.pem").display().to_string(),
            "--key".into(),
            self.path("out/key.pem").display().to_string(),
        ];
        for domain in domains {
            args.extend(["--domain".to_owned(), (*domain).to_owned()]);
        }
        args
    }

    pub fn http01(&self) -> [String; 2] {
        ["--http01-addr".into(), format!("127.0.0.1:{}", self.http01_port)]
    }

    /// A policy whose certificates live 100 s (40 s TTL plus Tessera's 60 s
    /// backdating; ARI suggests renewing 6 to 15 s after issue,
    /// before it is overdue at 20 s), and a fresh
    /// EAB key bound to it.
    pub async fn short_lived_eab_key(&self) -> (String, String) {
        self.eab_key_for_ttl("short", "40s").await
    }

    /// A policy `name` for `*.agent.test` whose certificates get `ttl`
    /// (plus the 60 s backdating), and a fresh EAB key bound to it.
    pub async fn eab_key_for_ttl(&self, name: &str, ttl: &str) -> (String, String) {
        let token = Some(self.ca.admin_token.as_str());
        let policy = json!({"name": name, "dns": ["*.agent.test"], "max_ttl": ttl});
        let (status, body) = self.ca.post("/api/v1/policies", token, &policy).await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = self.ca.post("/api/v1/eab-keys", token, &json!({"policy": name})).await;
        assert_eq!(status, 201, "{body}");
        (body["kid"].as_str().unwrap().to_owned(), body["hmac_key"].as_str().unwrap().to_owned())
    }

    /// `--reload-cmd` that copies each installed certificate and key into
    /// `dir` (as `<nanoseconds>.crt` and `.key`), so a test sees every one.
    pub fn snapshotting_reload(&self, dir: &Path) -> [String; 2] {
        std::fs::create_dir_all(dir).unwrap();
        [
            "--reload-cmd".into(),
            format!(
                r#"n=$(date +%s%N); cp "$TESSERA_AGENT_CERT" "{0}/$n.crt" && cp "$TESSERA_AGENT_KEY" "{0}/$n.key""#,
                dir.display()
            ),
        ]
    }

    /// `openssl verify` through the chain to the root, at a Unix time.
    pub fn verify_at(&self, leaf: &str, chain: &str, unix: i64) {
        let (leaf_path, chain_path) = (self.path("verify-leaf.pem"), self.path("verify-chain.pem"));
        std::fs::write(&leaf_path, leaf).unwrap();
        std::fs::write(&chain_path, chain).unwrap();
        let out = std::process::Command::new("openssl")
            .args(["verify", "-attime", &unix.to_string(), "-CAfile"])
            .arg(self.ca.root_pem_path())
            .arg("-untrusted")
            .arg(&chain_path)
            .arg(&leaf_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn verify(&self, leaf: &str, chain: &str) {
        openssl_verify(self.work.path(), &self.ca.root_pem_path(), chain, leaf).unwrap_or_else(|e| panic!("{e}"));
    }
}

pub fn overrides(responders: &Responders, http01_port: u16, tlsalpn01_port: u16) -> AcmeOverrides {
    AcmeOverrides {
        http01_port: Some(http01_port),
        tlsalpn01_port: Some(tlsalpn01_port),
        dns_resolver: responders.overrides().dns_resolver,
    }
}

/// Runs `tessera-agent` with `args` to its end.
pub async fn run_agent(args: &[String]) -> Output {
    output_of(tokio::process::Command::new(agent_bin()).args(args)).await
}

/// Runs `tessera agent` (the server binary's subcommand, kept for existing
/// users) with `args` to its end.
pub async fn run_tessera_agent(args: &[String]) -> Output {
    output_of(tokio::process::Command::new(BIN).arg("agent").args(args)).await
}

async fn output_of(command: &mut tokio::process::Command) -> Output {
    command.env("TESSERA_LOG", "info").stdin(Stdio::null()).output().await.unwrap()
}

/// A long-running agent whose log goes to a file; killed when dropped.
pub struct RunningAgent {
    _child: tokio::process::Child,
    log: PathBuf,
}

impl RunningAgent {
    pub fn start(args: &[String], log: PathBuf) -> Self {
        let file = std::fs::File::create(&log).unwrap();
        let child = tokio::process::Command::new(agent_bin())
            .args(args)
            .env("TESSERA_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(file))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Self { _child: child, log }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Polls `check` every 100 ms until it holds; panics with `what` after `limit`.
pub async fn wait_for(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The certificates a snapshotting reload command saved, oldest first.
pub fn snapshots(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "crt"))
        .collect();
    found.sort();
    found
}

pub fn certificates(pem_text: &str) -> Vec<Vec<u8>> {
    pem::parse_many(pem_text)
        .unwrap()
        .into_iter()
        .filter(|b| b.tag() == "CERTIFICATE")
        .map(|b| b.into_contents())
        .collect()
}

pub fn pem_of(der: &[u8]) -> String {
    pem::encode(&pem::Pem::new("CERTIFICATE", der.to_vec()))
}

/// (leaf PEM, issuers PEM) of a full-chain file.
pub fn split_chain(pem_text: &str) -> (String, String) {
    let certs = certificates(pem_text);
    assert!(certs.len() >= 2, "expected a leaf and its issuer, got {} certificates", certs.len());
    (pem_of(&certs[0]), certs[1..].iter().map(|c| pem_of(c)).collect())
}

pub fn serial(leaf_der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf_der).unwrap();
    hex::encode(cert.raw_serial())
}

pub fn not_before(leaf_der: &[u8]) -> i64 {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf_der).unwrap();
    cert.validity().not_before.timestamp()
}

pub fn sans(leaf_der: &[u8]) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf_der).unwrap();
    format!("{:?}", cert.subject_alternative_name().unwrap().unwrap().value.general_names)
}

pub fn key_matches(leaf_der: &[u8], key_pem: &str) -> bool {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf_der).unwrap();
    rcgen::KeyPair::from_pem(key_pem).unwrap().public_key_raw() == cert.public_key().subject_public_key.data.as_ref()
}

pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
