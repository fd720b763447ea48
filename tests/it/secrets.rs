//! Secrets at rest and in the open: what a dump of the database, a look at
//! the data directory, a log line or a child process can learn. Each test
//! names the secret it guards.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::common::acme::{AccountKey, AcmeClient, eab_binding};
use crate::common::agent::{AgentSetup, BIN, agent_bin, stderr};
use crate::common::custodians;
use crate::common::webhook::{Receiver, with_webhook};
use crate::common::{Backend, TestCa, csr_for};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use tessera::cli::start;
use tessera::clock::{SharedClock, SystemClock};
use tessera::config::{AcmeOverrides, AwsKmsConfig, Config, Overrides, WebhookConfig};
use tessera::storage::{Db, DbOptions};

/// The agent's reload command and dns-01 hook get the variables they are
/// documented to get and none of the agent's secrets: not the EAB HMAC key
/// it was given in `TESSERA_AGENT_EAB_HMAC`, not a cloud credential that
/// happens to be in its environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_commands_get_no_secret() {
    const CLOUD_SECRET: &str = "agent-cloud-credential-7f3a";
    let s = AgentSetup::start(Backend::Sqlite).await.unwrap();
    let (kid, hmac) = s.ca.eab_key(true).await;
    let dumps = s.path("env");
    std::fs::create_dir_all(&dumps).unwrap();
    let agent = |domain: &str, solver: [String; 2], extra: &[String]| {
        // The HMAC key comes from the environment, as the README suggests.
        let mut args: Vec<String> =
            s.args(&kid, &hmac, &[domain]).into_iter().filter(|a| *a != hmac && a != "--eab-hmac").collect();
        args.extend(solver);
        args.extend_from_slice(extra);
        args.push("--once".into());
        tokio::process::Command::new(agent_bin())
            .args(args)
            .env("TESSERA_AGENT_EAB_HMAC", &hmac)
            .env("AWS_SECRET_ACCESS_KEY", CLOUD_SECRET)
            .stdin(Stdio::null())
            .output()
    };

    let reload = ["--reload-cmd".to_owned(), format!("env > {}/reload.env", dumps.display())];
    let first = agent("env.agent.test", s.http01(), &reload).await.unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    // The hook records its environment and fails: the order fails with it.
    let hook = ["--dns01-hook".to_owned(), format!("env > {}/$TESSERA_DNS01_ACTION.env; exit 1", dumps.display())];
    let second = agent("hook.agent.test", hook, &[]).await.unwrap();
    assert!(!second.status.success(), "{}", stderr(&second));

    let reload_env = std::fs::read_to_string(dumps.join("reload.env")).unwrap();
    let hook_env = std::fs::read_to_string(dumps.join("add.env")).unwrap();
    for (env, documented) in [
        (&reload_env, &["TESSERA_AGENT_CERT=", "TESSERA_AGENT_KEY="][..]),
        (&hook_env, &["TESSERA_DNS01_ACTION=add", "TESSERA_DNS01_NAME=_acme-challenge.hook.agent.test"][..]),
    ] {
        for variable in documented.iter().chain(&["PATH="]) {
            assert!(env.lines().any(|line| line.starts_with(variable)), "{variable} is missing:\n{env}");
        }
        for secret in [hmac.as_str(), CLOUD_SECRET, "TESSERA_AGENT_EAB_HMAC", "AWS_SECRET_ACCESS_KEY"] {
            assert!(!env.contains(secret), "a command was given {secret}:\n{env}");
        }
    }
    assert!(hook_env.contains("TESSERA_DNS01_VALUE=") && hook_env.contains("TESSERA_DNS01_DOMAIN=hook.agent.test"));
    s.ca.stop().await;
}

/// Everything the in-process servers of this test binary log, as text.
fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("info")
            .with_ansi(false)
            .with_writer(move || LogSink(sink.clone()))
            .try_init();
        logs
    })
}

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logged() -> String {
    String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned()
}

/// A webhook URL may carry a credential in its userinfo and its query. It
/// is sent to as configured, but failed deliveries are logged by host and
/// recorded by address (no userinfo, no query), deliveries an older
/// version queued under the whole URL lose it at start and are still
/// delivered, and a delivery error never quotes the URL.
async fn webhook_credentials_stay_out_of_logs_and_rows(backend: Backend) {
    const USER_SECRET: &str = "hook-password-91c2";
    const QUERY_SECRET: &str = "hook-query-token-44d0";
    captured_logs();
    let hook = Receiver::start(1).await;
    let port = hook.url.trim_start_matches("http://127.0.0.1:").trim_end_matches("/hook").to_owned();
    let with_credentials = format!("http://alice:{USER_SECRET}@127.0.0.1:{port}/hook?token={QUERY_SECRET}");
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let unreachable = format!("http://bob:{USER_SECRET}@127.0.0.1:{closed_port}/down?token={QUERY_SECRET}");

    // A delivery queued before the upgrade, under the whole URL.
    let dir = tempfile::tempdir().unwrap();
    let database_url = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => match crate::common::fresh_postgres_url().await {
            Some(url) => Some(url),
            None => return,
        },
    };
    let db_url =
        database_url.clone().unwrap_or_else(|| format!("sqlite://{}", dir.path().join("tessera.db").display()));
    let db = Db::connect(&DbOptions::new(db_url)).await.unwrap();
    db.migrate().await.unwrap();
    let old = [(with_credentials.clone(), r#"{"type":"queued.before.upgrade"}"#.to_owned())];
    assert!(db.lifecycle().record_notice("queued.before.upgrade", b"old", &old, 0).await.unwrap());
    db.close().await;

    let secrets = tempfile::tempdir().unwrap();
    let secret_path = secrets.path().join("hook-secret");
    std::fs::write(&secret_path, "s3cret-for-tests\n").unwrap();
    let ca = TestCa::start_in_with(dir, database_url, AcmeOverrides::default(), |c| {
        with_webhook(c, &with_credentials, secret_path.clone());
        c.lifecycle.webhooks.push(WebhookConfig {
            url: unreachable.clone(),
            secret_env: None,
            secret_file: Some(secret_path.clone()),
            ca_file: None,
        });
    })
    .await;
    let body = json!({"policy": "default", "csr": csr_for(&["hooked.test"]), "ttl": "2m"});
    let (status, issued) = ca.post("/api/v1/certificates", Some(&ca.admin_token), &body).await;
    assert_eq!(status, 201, "{issued}");
    ca.clock.advance(time::Duration::seconds(90));

    // The receiver refuses the old delivery once, then takes it and the
    // overdue notice; the closed port fails every time.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempts = ca.db.webhook_attempts().await.unwrap();
        let to_receiver = attempts.iter().filter(|a| a.status_code == Some(200)).count();
        let to_nowhere = attempts.iter().filter(|a| a.status_code.is_none()).count();
        if to_receiver >= 2 && to_nowhere >= 1 {
            break;
        }
        assert!(Instant::now() < deadline, "deliveries did not happen: {attempts:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let requests = hook.requests();
    assert!(requests.iter().any(|(_, body)| body.contains("queued.before.upgrade")), "the old delivery was lost");
    let authorization = requests[0].0["authorization"].to_str().unwrap();
    assert_eq!(
        authorization,
        format!("Basic {}", STANDARD.encode(format!("alice:{USER_SECRET}"))),
        "sent as configured"
    );

    let attempts = ca.db.webhook_attempts().await.unwrap();
    let addresses: std::collections::BTreeSet<&str> = attempts.iter().map(|a| a.url.as_str()).collect();
    let expected = [format!("http://127.0.0.1:{closed_port}/down"), format!("http://127.0.0.1:{port}/hook")];
    assert_eq!(addresses, expected.iter().map(String::as_str).collect(), "{attempts:?}");
    let recorded = format!("{attempts:?}");
    let logs = logged();
    assert!(logs.contains("webhook delivery failed") && logs.contains("host=127.0.0.1"), "{logs}");
    let dump = database_dump(&ca).await;
    for secret in [USER_SECRET, QUERY_SECRET, "alice", "bob"] {
        assert!(!recorded.contains(secret), "a delivery record holds {secret}: {recorded}");
        assert!(!logs.contains(secret), "the log holds {secret}:\n{logs}");
        assert!(!dump.contains(secret), "the database holds {secret}");
    }
    ca.stop().await;
}

on_both_backends!(webhook_credentials_stay_out_of_logs_and_rows);

/// Every row of every table as text, the way a dump shows them: bytes as
/// lowercase hex (PostgreSQL's `\x...`, SQLite's `X'...'` lowered).
async fn database_dump(ca: &TestCa) -> String {
    match &ca.db {
        Db::Postgres(pool) => {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT table_name::TEXT FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            let mut dump = String::new();
            for table in tables {
                let sql = format!("SELECT COALESCE(string_agg(t::TEXT, E'\\n'), '') FROM \"{table}\" t");
                let rows: String = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(pool).await.unwrap();
                dump.push_str(&format!("-- {table}\n{rows}\n"));
            }
            dump
        }
        Db::Sqlite(pool) => {
            let tables: Vec<String> = sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(pool)
                .await
                .unwrap();
            let mut dump = String::new();
            for table in tables {
                let columns: Vec<String> =
                    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT name FROM pragma_table_info('{table}')")))
                        .fetch_all(pool)
                        .await
                        .unwrap();
                let quoted: Vec<String> = columns.iter().map(|c| format!("quote(\"{c}\")")).collect();
                let sql = format!("SELECT {} FROM \"{table}\"", quoted.join(" || ',' || "));
                let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_all(pool).await.unwrap();
                dump.push_str(&format!("-- {table}\n{}\n", rows.join("\n").to_lowercase()));
            }
            dump
        }
    }
}

/// A fresh database for `backend` in `dir`: its URL (SQLite in `dir`), or
/// None when PostgreSQL is not available here.
async fn database_in(dir: &Path, backend: Backend) -> Option<String> {
    match backend {
        Backend::Sqlite => Some(format!("sqlite://{}", dir.join("tessera.db").display())),
        Backend::Postgres => crate::common::fresh_postgres_url().await,
    }
}

/// A production config with software keys in `dir` and `secrets` (the
/// `[secrets]` table's lines, `kek = ...`), plus `extra` tables.
fn production_config(dir: &Path, database_url: &str, secrets: &str, extra: &str) -> Config {
    let path = dir.join("tessera.toml");
    let text = format!(
        r#"mode = "production"
data_dir = {dir:?}
database_url = {database_url:?}
https_addr = "127.0.0.1:0"
http_addr = "127.0.0.1:0"
admin_addr = "127.0.0.1:0"

[hierarchy.root]
name = "root"
common_name = "Secrets Test Root"
key_uri = "file:keys/root.key.pem"
validity_days = 30

[hierarchy.issuing]
name = "issuing"
common_name = "Secrets Test Issuing CA"
key_uri = "file:keys/issuing.key.pem"
validity_days = 7

[secrets]
{secrets}

{extra}
"#
    );
    std::fs::write(&path, text).unwrap();
    Config::load(Some(&path), &Overrides::default()).unwrap()
}

/// The same data directory and database in dev mode.
fn dev_config(dir: &Path, database_url: &str) -> Config {
    let any = Some("127.0.0.1:0".parse().unwrap());
    let overrides = Overrides {
        https_addr: any,
        http_addr: any,
        admin_addr: any,
        data_dir: Some(dir.to_path_buf()),
        database_url: Some(database_url.to_owned()),
        ..Default::default()
    };
    Config::load(None, &overrides).unwrap()
}

/// Runs `tessera init` for `config`.
async fn init(config: &Config) {
    let db = Db::connect(&DbOptions::new(config.database_url())).await.unwrap();
    db.migrate().await.unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    tessera::setup::init_hierarchy(config, &db, &clock).await.unwrap();
    db.close().await;
}

/// `serve` without `mode = "production"` on a database `tessera init` made
/// refuses, naming `mode`, and writes no admin token (dev mode used to
/// bootstrap and hand out a new admin token for the production CA).
async fn dev_mode_never_runs_on_a_production_database(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(database_url) = database_in(dir.path(), backend).await else { return };
    let production = production_config(dir.path(), &database_url, r#"kek = "file:secrets.kek""#, "");
    init(&production).await;
    let token_file = dir.path().join("admin-token");
    std::fs::remove_file(&token_file).unwrap();
    let db = Db::connect(&DbOptions::new(database_url.clone())).await.unwrap();
    let tokens = db.count_tokens().await.unwrap();

    let refused = start(dev_config(dir.path(), &database_url), Arc::new(SystemClock)).await;
    let error = refused.err().expect("dev mode must refuse a production database").to_string();
    assert!(error.contains(r#"mode = "production""#), "{error}");
    assert!(!token_file.exists(), "dev mode wrote an admin token");
    assert_eq!(db.count_tokens().await.unwrap(), tokens);

    // The production CA still serves in production mode.
    let running = start(production, Arc::new(SystemClock)).await.unwrap();
    running.shutdown().await;
    db.close().await;
}

on_both_backends!(dev_mode_never_runs_on_a_production_database);

/// Hierarchies made before the mode was recorded get it from what `init`
/// leaves behind (its admin token, keys outside files); a dev database
/// keeps working in dev mode.
async fn the_mode_of_an_older_hierarchy_is_inferred(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(database_url) = database_in(dir.path(), backend).await else { return };
    let db = Db::connect(&DbOptions::new(database_url)).await.unwrap();
    db.migrate_until(11).await.unwrap();
    let bytes = |hex: &str| match backend {
        Backend::Sqlite => format!("X'{hex}'"),
        Backend::Postgres => format!("'\\x{hex}'::BYTEA"),
    };
    let root = format!(
        "INSERT INTO authorities (name, kind, key_uri, algorithm, certificate_der, serial, ski, subject, \
         not_before, not_after, created_at) VALUES ('root', 'root', 'file:keys/root.key.pem', \
         'ecdsa-p256-sha256', {}, {}, {}, 'CN=Root', 0, 1, 0)",
        bytes("00"),
        bytes("01"),
        bytes("02")
    );
    db.execute_raw(&root).await.unwrap();
    db.migrate().await.unwrap();
    assert!(!db.catalog().has_production_hierarchy().await.unwrap(), "a dev hierarchy");
    db.close().await;

    for evidence in [
        format!(
            "INSERT INTO api_tokens (name, scope, token_hash, created_at) VALUES ('admin (init)', 'admin', {}, 0)",
            bytes("03")
        ),
        "UPDATE authorities SET key_uri = 'pkcs11:token=ca;object=root'".to_owned(),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let Some(database_url) = database_in(dir.path(), backend).await else { return };
        let db = Db::connect(&DbOptions::new(database_url)).await.unwrap();
        db.migrate_until(11).await.unwrap();
        db.execute_raw(&root).await.unwrap();
        db.execute_raw(&evidence).await.unwrap();
        db.migrate().await.unwrap();
        assert!(db.catalog().has_production_hierarchy().await.unwrap(), "{evidence}");
        db.close().await;
    }
}

on_both_backends!(the_mode_of_an_older_hierarchy_is_inferred);

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// The data directory is its owner's alone, and so is every file in it
/// that is not public: the SQLite database with its `-wal` and `-shm`
/// (they held the EAB HMAC keys and the nonce key), the keys, the admin
/// token, the TLS key. A data directory an older version left open to all
/// is restricted at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_is_private() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ca = TestCa::start_in(dir, None).await;
    ca.eab_key(false).await;
    let data = ca.dir.path().to_path_buf();
    let private = [
        ("", 0o700),
        ("tessera.db", 0o600),
        ("tessera.db-wal", 0o600),
        ("tessera.db-shm", 0o600),
        ("keys", 0o700),
        ("keys/root.key.pem", 0o600),
        ("keys/issuing.key.pem", 0o600),
        ("tls", 0o700),
        ("tls/server.key", 0o600),
        ("admin-token", 0o600),
        ("secrets.kek", 0o600),
    ];
    for (name, expected) in private {
        assert_eq!(mode(&data.join(name)), expected, "{name:?} is {:o}", mode(&data.join(name)));
    }
    let dir = ca.stop().await;

    for (name, loose) in [("", 0o755), ("tessera.db", 0o644)] {
        std::fs::set_permissions(dir.path().join(name), std::fs::Permissions::from_mode(loose)).unwrap();
    }
    let ca = TestCa::start_in(dir, None).await;
    for (name, expected) in [("", 0o700), ("tessera.db", 0o600), ("tessera.db-wal", 0o600)] {
        assert_eq!(mode(&ca.dir.path().join(name)), expected, "{name:?} after a restart");
    }
    ca.stop().await;
}

/// The raw bytes of one column of one row, as a dump would show them.
async fn raw_bytes(db: &Db, sql: &str) -> Vec<u8> {
    match db {
        Db::Postgres(pool) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(pool).await.unwrap(),
        Db::Sqlite(pool) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(pool).await.unwrap(),
    }
}

/// Whether `key` is the nonce MAC key: its HMAC of a fresh nonce's body
/// is the nonce's MAC (RFC 8555 §6.5; Tessera's nonce is 12 random
/// octets, the issue time and 16 octets of HMAC-SHA256).
async fn is_nonce_key(client: &AcmeClient, key: &[u8]) -> bool {
    let nonce = URL_SAFE_NO_PAD.decode(client.nonce().await).unwrap();
    let (body, mac) = nonce.split_at(20);
    let tag = aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key), body);
    &tag.as_ref()[..16] == mac
}

/// Whether any 32 octets of `bytes` are the nonce MAC key.
async fn holds_nonce_key(client: &AcmeClient, bytes: &[u8]) -> bool {
    for window in bytes.windows(32) {
        if is_nonce_key(client, window).await {
            return true;
        }
    }
    false
}

// A dump of the database binds no ACME account and forges no nonce: the
// EAB HMAC keys and the nonce MAC key are stored sealed. A sealed HMAC key
// copied onto another EAB key's row does not open there.
on_both_backends!(a_dump_binds_no_account_and_forges_no_nonce, |ca| {
    let (kid, hmac) = ca.eab_key(false).await;
    let (other_kid, _) = ca.eab_key(false).await;
    let hmac_bytes = URL_SAFE_NO_PAD.decode(&hmac).unwrap();
    let dump = database_dump(ca).await;
    assert!(!dump.contains(&hex::encode(&hmac_bytes)) && !dump.contains(&hmac), "the dump holds the HMAC key");
    let client = AcmeClient::new(ca, AccountKey::es256()).await;
    let stored_nonce_key = raw_bytes(&ca.db, "SELECT value FROM acme_secrets WHERE name = 'nonce-mac-key'").await;
    assert!(!holds_nonce_key(&client, &stored_nonce_key).await, "the nonce MAC key is stored as it is");

    // The sealed HMAC key of `kid`, moved to `other_kid`, with the key
    // that opens it, binds nothing.
    let moved = format!(
        "UPDATE eab_keys SET (hmac_key, sealed_with) = (SELECT hmac_key, sealed_with FROM eab_keys WHERE kid = '{kid}') \
         WHERE kid = '{other_kid}'"
    );
    ca.db.execute_raw(&moved).await.unwrap();
    let thief = AcmeClient::new(ca, AccountKey::es256()).await;
    let url = thief.url("newAccount");
    let binding = eab_binding("HS256", &other_kid, &hmac, &thief.key.jwk(), &url);
    let refused =
        thief.post(&url, Some(&json!({"termsOfServiceAgreed": true, "externalAccountBinding": binding}))).await;
    refused.assert_problem("serverInternal", 500);
    assert!(!refused.text.contains(&hmac), "{}", refused.text);

    // The key itself still binds an account.
    let mut holder = AcmeClient::new(ca, AccountKey::es256()).await;
    holder.register(&kid, &hmac).await;
});

/// Secrets stored in the clear by an earlier version are sealed at the
/// first start, keep their values (the EAB key binds, nonces carry the
/// same key's MAC) and are sealed once only.
async fn secrets_stored_in_the_clear_are_sealed_at_start(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let Some(database_url) = database_in(dir.path(), backend).await else { return };
    let db = Db::connect(&DbOptions::new(database_url.clone())).await.unwrap();
    db.migrate_until(11).await.unwrap();
    let nonce_key = [0x5a_u8; 32];
    let hmac_bytes = [0xc3_u8; 32];
    let bytes = |b: &[u8]| match backend {
        Backend::Sqlite => format!("X'{}'", hex::encode(b)),
        Backend::Postgres => format!("'\\x{}'::BYTEA", hex::encode(b)),
    };
    db.execute_raw(&format!("INSERT INTO acme_secrets (name, value) VALUES ('nonce-mac-key', {})", bytes(&nonce_key)))
        .await
        .unwrap();
    db.execute_raw(&format!(
        "INSERT INTO eab_keys (kid, hmac_key, policy, reusable, created_at) VALUES ('kid-old', {}, 'default', {}, 0)",
        bytes(&hmac_bytes),
        if backend == Backend::Sqlite { "1" } else { "true" }
    ))
    .await
    .unwrap();
    db.close().await;

    let database = (backend == Backend::Postgres).then_some(database_url);
    let ca = TestCa::start_in_with(dir, database, AcmeOverrides::default(), |_| {}).await;
    let dump = database_dump(&ca).await;
    assert!(!dump.contains(&hex::encode(hmac_bytes)) && !dump.contains(&hex::encode(nonce_key)), "{dump}");
    if backend == Backend::Sqlite {
        // Nor do the database's files: a replaced value leaves no trace in
        // free space or in the write-ahead log.
        for file in ["tessera.db", "tessera.db-wal"] {
            let bytes = std::fs::read(ca.dir.path().join(file)).unwrap_or_default();
            for secret in [&hmac_bytes[..], &nonce_key[..]] {
                assert!(!bytes.windows(32).any(|w| w == secret), "{file} still holds a secret in the clear");
            }
        }
    }
    let client = AcmeClient::new(&ca, AccountKey::es256()).await;
    assert!(is_nonce_key(&client, &nonce_key).await, "the nonce key changed");
    let mut holder = AcmeClient::new(&ca, AccountKey::es256()).await;
    holder.register("kid-old", &URL_SAFE_NO_PAD.encode(hmac_bytes)).await;
    let sealed = raw_bytes(&ca.db, "SELECT hmac_key FROM eab_keys WHERE kid = 'kid-old'").await;

    // A restart seals nothing again.
    let database = ca.config.database_url.clone();
    let dir = ca.stop().await;
    let ca = TestCa::start_in_with(dir, database, AcmeOverrides::default(), |_| {}).await;
    assert_eq!(raw_bytes(&ca.db, "SELECT hmac_key FROM eab_keys WHERE kid = 'kid-old'").await, sealed);
    ca.stop().await;
}

on_both_backends!(secrets_stored_in_the_clear_are_sealed_at_start);

/// A new local key-encryption key: 32 random bytes, base64.
fn new_kek() -> String {
    STANDARD.encode(rand::random::<[u8; 32]>())
}

/// Runs `tessera secrets rotate-kek` with the config `production_config`
/// wrote last, and `env` in its environment; returns its stdout.
fn rotate_kek(dir: &Path, env: &[(&str, &str)]) -> String {
    let output = std::process::Command::new(BIN)
        .args(["secrets", "rotate-kek", "--config"])
        .arg(dir.join("tessera.toml"))
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

async fn count(db: &Db, sql: &str) -> i64 {
    match db {
        Db::Postgres(pool) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(pool).await.unwrap(),
        Db::Sqlite(pool) => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(pool).await.unwrap(),
    }
}

/// The key-encryption key rotates without losing a secret: from a file to
/// a variable to another file, each step sealing every secret again under
/// a data key of the new KEK while the old one is `previous_kek`. After
/// each, the old KEK alone opens nothing, and the EAB key still binds.
async fn the_kek_rotates_without_losing_a_secret(backend: Backend) {
    const VARIABLE: &str = "TESSERA_TEST_ROTATED_KEK";
    let dir = tempfile::tempdir().unwrap();
    let Some(database_url) = database_in(dir.path(), backend).await else { return };
    let (file_a, file_b, variable) = (dir.path().join("a.kek"), dir.path().join("b.kek"), new_kek());
    std::fs::write(&file_a, new_kek()).unwrap();
    std::fs::write(&file_b, new_kek()).unwrap();
    let config = |dir: &Path, secrets: String| production_config(dir, &database_url, &secrets, "");
    let a = config(dir.path(), format!("kek = \"file:{}\"", file_a.display()));
    let ca = TestCa::start_production(dir, a.clone()).await;
    let (kid, hmac) = ca.eab_key(true).await;
    AcmeClient::new(&ca, AccountKey::es256()).await.register(&kid, &hmac).await;
    let dir = ca.stop().await;

    config(dir.path(), format!("kek = \"env:{VARIABLE}\"\nprevious_kek = \"file:{}\"", file_a.display()));
    let done = rotate_kek(dir.path(), &[(VARIABLE, &variable)]);
    assert!(done.contains("Sealed 2 secrets again") && done.contains("old data keys deleted: 1"), "{done}");
    let refused = start(a, Arc::new(SystemClock)).await.err().expect("the old KEK opens nothing").to_string();
    assert!(refused.contains("another key-encryption key"), "{refused}");

    config(dir.path(), format!("kek = \"file:{}\"\nprevious_kek = \"env:{VARIABLE}\"", file_b.display()));
    rotate_kek(dir.path(), &[(VARIABLE, &variable)]);
    let b = config(dir.path(), format!("kek = \"file:{}\"", file_b.display()));
    let ca = TestCa::start_config(dir, b).await.unwrap();
    AcmeClient::new(&ca, AccountKey::es256()).await.register(&kid, &hmac).await;
    assert_eq!(count(&ca.db, "SELECT COUNT(*) FROM sealing_keys").await, 1);
    ca.stop().await;
}

on_both_backends!(the_kek_rotates_without_losing_a_secret);

/// With a KMS key as the KEK (envelope encryption: the data key is
/// wrapped by KMS `Encrypt` and unwrapped once at start), the database and
/// the data directory together open nothing: with the KMS key disabled,
/// Tessera does not start; enabled again, every secret is there.
async fn a_kms_kek_leaves_nothing_to_open_without_kms(backend: Backend) {
    let Some(endpoint) = custodians::kms_endpoint() else { return };
    let dir = tempfile::tempdir().unwrap();
    let Some(database_url) = database_in(dir.path(), backend).await else { return };
    let kms = AwsKmsConfig { region: Some("us-east-1".into()), endpoint: Some(endpoint.clone()), ..Default::default() };
    let client = tessera::keys::awskms::client(&kms).await;
    let created = client.create_key().description("Tessera test KEK").send().await.unwrap();
    let key_id = created.key_metadata().unwrap().key_id().to_owned();
    let alias = format!("alias/{}", custodians::unique("tessera-kek"));
    client.create_alias().alias_name(&alias).target_key_id(&key_id).send().await.unwrap();
    let kek = format!("kek = \"awskms:{alias}\"");
    let config = production_config(dir.path(), &database_url, &kek, &custodians::kms_toml(&endpoint));

    let ca = TestCa::start_production(dir, config.clone()).await;
    let (kid, hmac) = ca.eab_key(true).await;
    AcmeClient::new(&ca, AccountKey::es256()).await.register(&kid, &hmac).await;
    let dump = database_dump(&ca).await;
    assert!(!dump.contains(&hex::encode(URL_SAFE_NO_PAD.decode(&hmac).unwrap())), "the dump holds the HMAC key");
    assert!(dump.contains(&format!("awskms:{alias}")), "the data key names its KEK:\n{dump}");
    let dir = ca.stop().await;

    client.disable_key().key_id(&key_id).send().await.unwrap();
    let refused = start(config.clone(), Arc::new(SystemClock)).await.err().expect("KMS said no").to_string();
    assert!(refused.contains(&format!("awskms:{alias}")), "{refused}");
    client.enable_key().key_id(&key_id).send().await.unwrap();
    let ca = TestCa::start_config(dir, config).await.unwrap();
    AcmeClient::new(&ca, AccountKey::es256()).await.register(&kid, &hmac).await;
    ca.stop().await;
}

on_both_backends!(a_kms_kek_leaves_nothing_to_open_without_kms);
