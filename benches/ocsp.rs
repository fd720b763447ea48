//! OCSP responses per second and latency, measured with `wrk`, side by side
//! in one run:
//!
//! - Tessera, pre-signed hits (certificates it issued), over POST and over
//!   RFC 5019 GET;
//! - Tessera, misses that must read the database (serials it never issued);
//! - `openssl ocsp -index ... -port` over the same certificates;
//! - cfssl's `ocspserve` over responses `cfssl ocspsign` made for them.
//!
//!     cargo bench --bench ocsp        # PostgreSQL when DATABASE_URL is set
//!
//! Knobs: `BENCH_CERTS` (1000), `BENCH_SECONDS` (10), `BENCH_CONNECTIONS` (64);
//! `BENCH_DEBUG=1` prints wrk's output and every non-200 answer.
//!
//! OCSP errors travel as HTTP 200 too, so wrk's counts alone would time a
//! responder answering `malformedRequest` as gladly as real answers. Before
//! a row is timed, every one of its requests is asked once and must get a
//! successful, signed answer with the status its serial should have (good
//! for issued certificates, unknown for the misses); while it is timed,
//! every sixteenth response is checked to be `successful`. Any other answer
//! fails the bench.
//! A peer whose tool is missing is skipped with a note. Under `cargo test`
//! a short smoke pass checks the Tessera side only.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use common::ocsp::{request_der, sha1};
use tessera::cli::start;
use tessera::clock::{SharedClock, SystemClock};

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// One measured target.
struct Figures {
    rate: f64,
    p50: String,
    p99: String,
    errors: String,
    /// Responses whose OCSP status was checked during the run, and how many
    /// of them were not `successful` (with the first one's first octets).
    sampled: u64,
    not_successful: u64,
    first_bad: String,
}

/// wrk's Lua hooks that check every sixteenth response's OCSPResponseStatus
/// (the ENUMERATED after the outer SEQUENCE's length) and report the
/// counts of all threads when the run is done.
const STATUS_SAMPLER: &str = r#"
local threads = {}
function setup(thread) table.insert(threads, thread) end
seen, sampled, bad, first_bad = 0, 0, 0, ""
function response(status, headers, body)
  if debug_non_200 and status ~= 200 then io.write('status ' .. status .. ' ' .. body .. '\n') end
  seen = seen + 1
  if seen % 16 ~= 1 then return end
  sampled = sampled + 1
  local ok = false
  if status == 200 and #body > 5 then
    local length = body:byte(2)
    local at = 3
    if length >= 0x80 then at = 3 + (length - 0x80) end
    ok = body:byte(1) == 0x30 and body:byte(at) == 0x0a and body:byte(at + 1) == 0x01 and body:byte(at + 2) == 0x00
  end
  if not ok then
    bad = bad + 1
    if first_bad == "" then
      first_bad = status .. ":" .. (body:sub(1, 8):gsub('.', function(c) return string.format('%02x', c:byte()) end))
    end
  end
end
function done(summary, latency, requests)
  local total, failed, first = 0, 0, ""
  for _, thread in ipairs(threads) do
    total = total + thread:get("sampled")
    failed = failed + thread:get("bad")
    if first == "" then first = thread:get("first_bad") end
  end
  io.write(string.format("ocsp-status sampled %d not-successful %d first %s\n", total, failed, first))
end
"#;

/// Runs wrk against `base`, cycling through the requests in `requests_file`
/// (lines of `GET <path>` or `POST <path> <hex body>`).
fn wrk(dir: &Path, base: &str, requests_file: &Path, seconds: u64, connections: u64) -> Figures {
    let script = dir.join("requests.lua");
    std::fs::write(
        &script,
        format!(
            "local reqs = {{}}\n\
             for line in io.lines({:?}) do\n\
               local method, path, hex = line:match('^(%S+) (%S+) ?(%S*)$')\n\
               local body = hex:gsub('..', function(cc) return string.char(tonumber(cc, 16)) end)\n\
               if method == 'GET' then reqs[#reqs + 1] = wrk.format('GET', path, {{['Host'] = '{host}'}})\n\
               else reqs[#reqs + 1] = wrk.format('POST', path, {{['Host'] = '{host}', ['Content-Type'] = 'application/ocsp-request'}}, body) end\n\
             end\n\
             local i = math.random(#reqs)\n\
             request = function()\n  i = i % #reqs + 1\n  return reqs[i]\nend\n\
             debug_non_200 = {debug}\n{STATUS_SAMPLER}",
            requests_file.display().to_string(),
            host = base.trim_start_matches("http://"),
            debug = std::env::var("BENCH_DEBUG").is_ok(),
        ),
    )
    .unwrap();
    let out = Command::new("wrk")
        .args(["-t", "2", "-c", &connections.to_string(), "-d", &format!("{seconds}s"), "--latency", "-s"])
        .arg(&script)
        .arg(base)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if std::env::var("BENCH_DEBUG").is_ok() {
        println!("{text}{}", String::from_utf8_lossy(&out.stderr));
    }
    let find = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix).map(|rest| rest.trim().to_owned()))
            .unwrap_or_else(|| "?".into())
    };
    let errors = text
        .lines()
        .filter(|l| l.contains("Socket errors") || l.contains("Non-2xx"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    let sampler = find("ocsp-status sampled");
    let mut words = sampler.split_whitespace();
    let sampled = words.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let not_successful = words.nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
    let first_bad = words.nth(1).unwrap_or_default().to_owned();
    Figures {
        rate: find("Requests/sec:").parse().unwrap_or(0.0),
        p50: find("50%"),
        p99: find("99%"),
        errors: if errors.is_empty() { "none".into() } else { errors },
        sampled,
        not_successful,
        first_bad,
    }
}

/// What an answer must say about the serial it was asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expected {
    Good,
    Unknown,
}

/// The certStatus of each answer in a DER OCSPResponse, or why it is not
/// a successful, well-formed one.
fn answered_statuses(der: &[u8]) -> Result<Vec<Expected>, String> {
    use der_07::Decode;
    let response = x509_ocsp::OcspResponse::from_der(der).map_err(|e| format!("not an OCSPResponse: {e}"))?;
    if response.response_status != x509_ocsp::OcspResponseStatus::Successful {
        return Err(format!("responseStatus {:?}", response.response_status));
    }
    let bytes = response.response_bytes.ok_or("no responseBytes")?;
    let basic = x509_ocsp::BasicOcspResponse::from_der(bytes.response.as_bytes())
        .map_err(|e| format!("not a BasicOCSPResponse: {e}"))?;
    basic
        .tbs_response_data
        .responses
        .iter()
        .map(|single| match single.cert_status {
            x509_ocsp::CertStatus::Good(_) => Ok(Expected::Good),
            x509_ocsp::CertStatus::Unknown(_) => Ok(Expected::Unknown),
            x509_ocsp::CertStatus::Revoked(_) => Err("revoked".to_owned()),
        })
        .collect()
}

/// Asks every request of a row's file (`GET <path>` or `POST <path> <hex>`
/// lines) once, and panics unless each answer is a successful response
/// giving its one serial the `expected` status.
async fn check_answers(base: &str, requests_file: &Path, expected: Expected) {
    let client = reqwest::Client::new();
    for line in std::fs::read_to_string(requests_file).unwrap().lines() {
        let mut parts = line.split(' ');
        let (method, path) = (parts.next().unwrap(), parts.next().unwrap());
        let request = match (method, parts.next()) {
            ("POST", Some(body)) => client
                .post(format!("{base}{path}"))
                .header("content-type", "application/ocsp-request")
                .body(hex::decode(body).unwrap()),
            _ => client.get(format!("{base}{path}")),
        };
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{base}: {line}");
        let body = response.bytes().await.unwrap();
        match answered_statuses(&body) {
            Ok(statuses) if statuses == [expected] => {}
            other => panic!("{base} answered {other:?}, not {expected:?}, to {line}"),
        }
    }
}

/// The RFC 5019 GET path of one request: URL-escaped base64.
fn get_path(prefix: &str, der: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    format!("{prefix}{}", encoded.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16, log: &Path) {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on {port}: {}", std::fs::read_to_string(log).unwrap_or_default());
}

fn wait_for_log(log: &Path, needle: &str) {
    for _ in 0..200 {
        if std::fs::read_to_string(log).is_ok_and(|text| text.contains(needle)) {
            std::thread::sleep(Duration::from_millis(300));
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the peer did not start: {}", std::fs::read_to_string(log).unwrap_or_default());
}

/// A peer responder process, stopped on drop.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["--", &format!("-{}", self.0.id())]).status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_peer(command: &mut Command, log: &Path) -> Peer {
    use std::os::unix::process::CommandExt;
    let log = std::fs::File::create(log).unwrap();
    Peer(command.process_group(0).stdout(log.try_clone().unwrap()).stderr(log).spawn().unwrap())
}

/// openssl's responder over an index of the same certificates.
fn openssl_peer(dir: &Path, issuer: &Path, key: &Path, serials: &[Vec<u8>]) -> (Peer, u16) {
    let index = dir.join("index.txt");
    let lines: String = serials
        .iter()
        .map(|s| format!("V\t391231235959Z\t\t{0}\tunknown\t/CN=bench-{0}\n", hex::encode_upper(s)))
        .collect();
    std::fs::write(&index, lines).unwrap();
    let port = free_port();
    let peer = spawn_peer(
        Command::new("openssl")
            .args(["ocsp", "-index"])
            .arg(&index)
            .args(["-port", &port.to_string(), "-rsigner"])
            .arg(issuer)
            .arg("-rkey")
            .arg(key)
            .arg("-CA")
            .arg(issuer)
            .args(["-nmin", "60", "-multi", "2", "-ignore_err"]),
        &dir.join("openssl-ocsp.log"),
    );
    // A probe connection that sends nothing wedges openssl's responder, so
    // wait for its log line instead of connecting.
    wait_for_log(&dir.join("openssl-ocsp.log"), "ACCEPT");
    (peer, port)
}

/// cfssl's ocspserve over responses signed by `cfssl ocspsign`.
fn cfssl_peer(dir: &Path, issuer: &Path, key: &Path, leaves: &[PathBuf]) -> (Peer, u16) {
    let mut responses = String::new();
    for leaf in leaves {
        let out = Command::new("cfssl")
            .args(["ocspsign", "-ca"])
            .arg(issuer)
            .arg("-responder")
            .arg(issuer)
            .arg("-responder-key")
            .arg(key)
            .arg("-cert")
            .arg(leaf)
            .args(["-status", "good", "-loglevel", "5"])
            .output()
            .unwrap();
        let signed: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("cfssl ocspsign: {}", String::from_utf8_lossy(&out.stderr)));
        responses.push_str(signed["ocspResponse"].as_str().unwrap());
        responses.push('\n');
    }
    let file = dir.join("cfssl-responses.txt");
    std::fs::write(&file, responses).unwrap();
    let port = free_port();
    let peer = spawn_peer(
        Command::new("cfssl")
            .args(["ocspserve", "-address", "127.0.0.1", "-port", &port.to_string(), "-loglevel", "5", "-responses"])
            .arg(&file),
        &dir.join("cfssl.log"),
    );
    wait_for_port(port, &dir.join("cfssl.log"));
    (peer, port)
}

#[tokio::main]
async fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let certs = env_or("BENCH_CERTS", if measuring { 1000 } else { 10 }) as usize;
    let seconds = env_or("BENCH_SECONDS", if measuring { 10 } else { 1 });
    let connections = env_or("BENCH_CONNECTIONS", if measuring { 64 } else { 4 });
    let dir = tempfile::tempdir().unwrap();
    let (mut config, backend) = common::dev_config(dir.path()).await;
    // Each never-issued serial of the miss row is signed once, when first
    // asked; the default budget (100 a second) would answer most of them
    // `unauthorized` before the row is timed.
    config.revocation.ocsp_fresh_signatures_per_second = 100_000;
    let clock: SharedClock = Arc::new(SystemClock);
    let config_url = config.database_url();
    let running = start(config, clock).await.unwrap();

    // Certificates to ask about, issued through the REST API.
    let token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap().trim().to_owned();
    let root = reqwest::Certificate::from_pem(&std::fs::read(dir.path().join("root.pem")).unwrap()).unwrap();
    let client = reqwest::Client::builder().add_root_certificate(root).build().unwrap();
    let url = format!("https://localhost:{}/api/v1/certificates", running.admin_addr.port());
    let mut serials = Vec::new();
    let mut leaves = Vec::new();
    let mut issuer_pem = String::new();
    for i in 0..certs {
        let key = rcgen::KeyPair::generate().unwrap();
        let csr = rcgen::CertificateParams::new(vec![format!("ocsp-{i}.bench.test")])
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        let issued: serde_json::Value = client
            .post(&url)
            .bearer_auth(&token)
            .json(&serde_json::json!({"policy": "default", "csr": csr}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        serials.push(hex::decode(issued["serial"].as_str().unwrap()).unwrap());
        let leaf = dir.path().join(format!("leaf-{i}.pem"));
        std::fs::write(&leaf, issued["certificate"].as_str().unwrap()).unwrap();
        leaves.push(leaf);
        if issuer_pem.is_empty() {
            let chain = issued["chain"].as_str().unwrap();
            issuer_pem = chain.split_inclusive("-----END CERTIFICATE-----\n").nth(1).unwrap().to_owned();
        }
    }
    let issuer_path = dir.path().join("issuer.pem");
    std::fs::write(&issuer_path, &issuer_pem).unwrap();
    let issuer_key = dir.path().join("keys").join("issuing.key.pem");
    let (_, pem) = x509_parser::pem::parse_x509_pem(issuer_pem.as_bytes()).unwrap();
    let issuer = pem.parse_x509().unwrap();
    let name_hash = sha1(issuer.subject().as_raw());
    let key_hash = sha1(&issuer.public_key().subject_public_key.data);

    let requests: Vec<Vec<u8>> = serials.iter().map(|s| request_der(&name_hash, &key_hash, s)).collect();
    let write_requests = |name: &str, lines: Vec<String>| {
        let path = dir.path().join(name);
        std::fs::write(&path, lines.join("\n")).unwrap();
        path
    };
    let gets = write_requests("gets.txt", requests.iter().map(|r| format!("GET {}", get_path("/ocsp/", r))).collect());
    let posts =
        write_requests("posts.txt", requests.iter().map(|r| format!("POST /ocsp {}", hex::encode(r))).collect());
    let misses = write_requests(
        "misses.txt",
        (0..certs.max(100))
            .map(|_| {
                let mut serial = rand::random::<[u8; 16]>();
                serial[0] = (serial[0] & 0x7f).max(1);
                format!("POST /ocsp {}", hex::encode(request_der(&name_hash, &key_hash, &serial)))
            })
            .collect(),
    );

    let tessera = format!("http://127.0.0.1:{}", running.http_addr.port());
    check_answers(&tessera, &posts, Expected::Good).await;
    check_answers(&tessera, &gets, Expected::Good).await;
    check_answers(&tessera, &misses, Expected::Unknown).await;
    let mut rows = vec![
        (format!("tessera ({backend}) POST, pre-signed"), wrk(dir.path(), &tessera, &posts, seconds, connections)),
        (format!("tessera ({backend}) GET, pre-signed"), wrk(dir.path(), &tessera, &gets, seconds, connections)),
        (format!("tessera ({backend}) POST, database"), wrk(dir.path(), &tessera, &misses, seconds, connections)),
    ];

    if measuring {
        // The peers answer POST at "/" (cfssl's GET handler cannot decode
        // paths, so every peer is measured over POST).
        let peer_posts =
            write_requests("peer-posts.txt", requests.iter().map(|r| format!("POST / {}", hex::encode(r))).collect());
        if have("openssl") {
            let (_peer, port) = openssl_peer(dir.path(), &issuer_path, &issuer_key, &serials);
            let base = format!("http://127.0.0.1:{port}");
            check_answers(&base, &peer_posts, Expected::Good).await;
            rows.push((
                "openssl ocsp -multi 2, POST".into(),
                wrk(dir.path(), &base, &peer_posts, seconds, connections),
            ));
        } else {
            println!("openssl not installed: peer skipped");
        }
        if have("cfssl") {
            let (_peer, port) = cfssl_peer(dir.path(), &issuer_path, &issuer_key, &leaves);
            let base = format!("http://127.0.0.1:{port}");
            check_answers(&base, &peer_posts, Expected::Good).await;
            rows.push(("cfssl ocspserve, POST".into(), wrk(dir.path(), &base, &peer_posts, seconds, connections)));
        } else {
            println!("cfssl not installed (Debian golang-cfssl): peer skipped");
        }
    }

    let reference = rows[0].1.rate;
    println!("OCSP, {certs} certificates, {connections} connections, {seconds}s each:");
    for (name, figures) in &rows {
        println!(
            "{name:>36}: {:>9.0} responses/s  p50 {:>8}  p99 {:>8}  errors: {}  OCSP checked: {}, not successful: {}  (tessera hits / this = {:.2})",
            figures.rate,
            figures.p50,
            figures.p99,
            figures.errors,
            figures.sampled,
            figures.not_successful,
            reference / figures.rate.max(1.0)
        );
    }
    running.shutdown().await;
    common::drop_database(&config_url).await;
    for (name, figures) in &rows {
        assert!(
            figures.sampled > 0 && figures.not_successful == 0,
            "{name}: {} of {} sampled answers were not successful OCSP responses (first: {})",
            figures.not_successful,
            figures.sampled,
            figures.first_bad
        );
    }
    assert!(measuring || rows.iter().all(|(_, f)| f.rate > 0.0 && f.errors == "none"), "smoke pass failed");
}
