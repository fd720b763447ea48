//! The three listeners under clients that try to hold them: slow headers,
//! silent TLS handshakes and HTTP/2 connections that never ask anything are
//! cut off within the (shortened) timeouts while others are still served;
//! connections past the cap are closed and capacity returns; requests past
//! the in-flight cap get 503 with Retry-After; refusals reach HTTP/2
//! clients every time. These limits live in the listeners, not in storage,
//! so SQLite alone is enough.
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{Backend, TestCa};
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use serde_json::json;
use tessera::config::{AcmeOverrides, Config};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

trait Connection: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Connection for T {}
type Conn = Box<dyn Connection>;

/// A dev CA whose listener limits `adjust` shortens.
async fn ca_with(adjust: impl FnOnce(&mut Config)) -> TestCa {
    TestCa::start_acme_with(Backend::Sqlite, AcmeOverrides::default(), adjust).await.unwrap()
}

fn tls_connector(ca: &TestCa, alpn: &[u8]) -> tokio_rustls::TlsConnector {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca.root_pem_path()).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn tls(ca: &TestCa, port: u16, alpn: &[u8]) -> Conn {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    Box::new(tls_connector(ca, alpn).connect(name, tcp).await.unwrap())
}

/// What a slowloris client leaves on a listener: half a request head over
/// HTTP/1.1, and on TLS listeners also a handshake that never starts and an
/// HTTP/2 connection that sends its preface and never a request.
async fn slow_clients(ca: &TestCa, port: u16, is_tls: bool, each: usize) -> Vec<Conn> {
    const HALF_A_HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
    const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut held: Vec<Conn> = Vec::new();
    for _ in 0..each {
        if is_tls {
            let mut h1 = tls(ca, port, b"http/1.1").await;
            h1.write_all(HALF_A_HEAD).await.unwrap();
            held.push(h1);
            held.push(Box::new(TcpStream::connect(("127.0.0.1", port)).await.unwrap()));
            let mut h2 = tls(ca, port, b"h2").await;
            h2.write_all(H2_PREFACE).await.unwrap();
            held.push(h2);
        } else {
            let mut h1 = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            h1.write_all(HALF_A_HEAD).await.unwrap();
            held.push(Box::new(h1));
        }
    }
    held
}

/// True once the server has closed the connection (end of stream or an
/// error), false if it is still open at `deadline`.
async fn closed_by(connection: &mut Conn, deadline: Instant) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, connection.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_while_others_are_served() {
    let ca = ca_with(|config| {
        config.listeners.header_read_timeout = "1s".parse().unwrap();
        config.listeners.tls_handshake_timeout = "1s".parse().unwrap();
        config.listeners.keep_alive_idle = "2s".parse().unwrap();
    })
    .await;
    let running = ca.running();
    let listeners = [
        ("http", running.http_addr.port(), false),
        ("https", running.https_addr.port(), true),
        ("admin", running.admin_addr.port(), true),
    ];
    let mut held = Vec::new();
    for (name, port, is_tls) in listeners {
        for connection in slow_clients(&ca, port, is_tls, 30).await {
            held.push((name, connection));
        }
    }
    let opened = Instant::now();

    // Others are served while the slow clients hold their connections.
    let healthz = ca.client.get(ca.admin_url("/healthz")).send().await.unwrap();
    assert_eq!(healthz.status(), 200);
    let bundle = reqwest::get(ca.http_url("/trust-bundle.pem")).await.unwrap();
    assert_eq!(bundle.status(), 200);
    let directory = ca.client.get(ca.acme_directory()).send().await.unwrap();
    assert_eq!(directory.status(), 200);

    // Every slow connection is closed within the timeouts and some slack.
    let deadline = opened + Duration::from_secs(5);
    let mut still_open = std::collections::BTreeMap::new();
    for (name, connection) in &mut held {
        if !closed_by(connection, deadline).await {
            *still_open.entry(*name).or_insert(0) += 1;
        }
    }
    assert!(still_open.is_empty(), "still open after {:?}: {still_open:?}", opened.elapsed());
    ca.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_over_http1_and_http2() {
    let ca = ca_with(|config| config.listeners.keep_alive_idle = "2s".parse().unwrap()).await;
    let port = ca.running().admin_addr.port();
    let request = || {
        let request = axum::http::Request::get(ca.admin_url("/healthz")).header("host", "localhost");
        request.body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap()
    };

    // One request each over HTTP/2 and HTTP/1.1, then nothing: the
    // connections end once they have been idle for keep_alive_idle.
    let io = hyper_util::rt::TokioIo::new(tls(&ca, port, b"h2").await);
    let (mut h2, h2_connection) =
        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io).await.unwrap();
    let h2_connection = tokio::spawn(h2_connection);
    assert_eq!(h2.send_request(request()).await.unwrap().status(), 200);
    let io = hyper_util::rt::TokioIo::new(tls(&ca, port, b"http/1.1").await);
    let (mut h1, h1_connection) = hyper::client::conn::http1::handshake(io).await.unwrap();
    let h1_connection = tokio::spawn(h1_connection);
    assert_eq!(h1.send_request(request()).await.unwrap().status(), 200);
    let idle_from = Instant::now();

    for (protocol, connection) in [("HTTP/2", h2_connection), ("HTTP/1.1", h1_connection)] {
        let left = Duration::from_secs(5).saturating_sub(idle_from.elapsed());
        let ended = tokio::time::timeout(left, connection).await;
        assert!(ended.is_ok(), "the idle {protocol} connection is still open after {:?}", idle_from.elapsed());
    }
    assert!(idle_from.elapsed() >= Duration::from_millis(1500), "closed before it was idle for long");
    ca.stop().await;
}

/// Sends a request on a fresh connection to the plain listener; its status
/// line, or None when the connection is closed without an answer.
async fn plain_get(port: u16, path: &str) -> Option<String> {
    plain_get_with(port, path, "").await
}

async fn plain_get_with(port: u16, path: &str, headers: &str) -> Option<String> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Connection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(2), tcp.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    text.lines().next().filter(|line| line.starts_with("HTTP/")).map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_and_capacity_returns() {
    const CAP: usize = 8;
    let ca = ca_with(|config| config.listeners.max_connections = CAP as u32).await;
    let port = ca.running().http_addr.port();
    assert_eq!(plain_get(port, "/trust-bundle.pem").await.as_deref(), Some("HTTP/1.1 200 OK"));
    // The server may drop that connection, and free its slot, only after
    // the client has read to the end: wait until it holds none, or one of
    // the connections below would be refused.
    let open = "tessera_listener_connections{listener=\"http\"}";
    let deadline = Instant::now() + Duration::from_secs(30);
    while ca.metric(open).await != Some(0.0) {
        assert!(Instant::now() < deadline, "the first connection was never closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut held = Vec::new();
    for _ in 0..CAP {
        held.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    // Connections are admitted as their tasks run, not in the order they
    // arrived: wait until the listener holds all of them.
    // On a busy machine that takes seconds; going on before would let the
    // next connection in below the cap.
    let deadline = Instant::now() + Duration::from_secs(30);
    while ca.metric(open).await != Some(CAP as f64) {
        assert!(Instant::now() < deadline, "the listener never held {CAP} connections");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused_at = Instant::now();
    assert_eq!(plain_get(port, "/trust-bundle.pem").await, None, "a connection past the cap was served");
    assert!(refused_at.elapsed() < Duration::from_secs(1), "the refusal took {:?}", refused_at.elapsed());
    let refused = ca.metric("tessera_listener_connections_refused_total{listener=\"http\"}").await;
    assert!(refused >= Some(1.0), "refusals counted: {refused:?}");

    drop(held);
    let mut answer = None;
    for _ in 0..50 {
        answer = plain_get(port, "/trust-bundle.pem").await;
        if answer.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answer.as_deref(), Some("HTTP/1.1 200 OK"), "capacity did not return");
    ca.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_in_flight_cap_get_503_with_retry_after() {
    let ca = ca_with(|config| {
        config.listeners.max_requests_in_flight = 1;
        config.listeners.request_body_timeout = "2s".parse().unwrap();
    })
    .await;
    for (port, post_to, url, problem_type) in [
        (
            ca.running().admin_addr.port(),
            "/api/v1/policies",
            ca.admin_url("/healthz"),
            "urn:tessera:problem:overloaded",
        ),
        (
            ca.running().https_addr.port(),
            "/acme/default/new-order",
            ca.acme_directory(),
            "urn:ietf:params:acme:error:serverInternal",
        ),
    ] {
        // A request whose body never arrives holds the one place.
        let mut slow = tls(&ca, port, b"http/1.1").await;
        let head = format!("POST {post_to} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{{\"a\":");
        slow.write_all(head.as_bytes()).await.unwrap();

        // Until the slow request holds its place, others are served.
        let mut shed = None;
        for _ in 0..40 {
            let asked = Instant::now();
            let response = ca.client.get(&url).send().await.unwrap();
            if response.status() == 503 {
                assert!(asked.elapsed() < Duration::from_secs(1), "the 503 took {:?}", asked.elapsed());
                shed = Some(response);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let shed = shed.expect("no request was answered 503");
        assert_eq!(shed.headers()["retry-after"], "1");
        assert_eq!(shed.headers()["content-type"], "application/problem+json");
        let body: serde_json::Value = shed.json().await.unwrap();
        assert_eq!(body["type"], problem_type, "{body}");

        // The slow body runs out of time: 408, and the place is free again.
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert_eq!(ca.client.get(&url).send().await.unwrap().status(), 200);
    }
    let shed = ca.metric("tessera_listener_requests_shed_total{listener=\"admin\"}").await;
    assert_eq!(shed, Some(1.0));
    ca.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_heads_past_the_limit_are_refused() {
    let ca = ca_with(|_| {}).await;
    let port = ca.running().http_addr.port();
    // An OCSP GET whose base64 request is far larger than any real one
    // (hyper refuses URIs over 64 KiB by itself), and a flood of headers.
    let huge = format!("/ocsp/{}", "A".repeat(32 * 1024));
    let too_large = Some("HTTP/1.1 431 Request Header Fields Too Large");
    assert_eq!(plain_get(port, &huge).await.as_deref(), too_large);
    let flood: String = (0..90).map(|i| format!("X-Flood-{i}: {}\r\n", "v".repeat(300))).collect();
    assert_eq!(plain_get_with(port, "/trust-bundle.pem", &flood).await.as_deref(), too_large);
    assert_eq!(plain_get(port, "/trust-bundle.pem").await.as_deref(), Some("HTTP/1.1 200 OK"));
    ca.stop().await;
}

/// Runs curl (HTTP/2 over TLS, as it does by default) once; returns
/// (exit status, HTTP version and status, body).
fn curl(ca: &TestCa, url: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new("curl")
        .args(["-s", "-X", "POST", "--cacert"])
        .arg(ca.root_pem_path())
        .args(args)
        .args(["-w", "\n%{http_version} %{http_code}", url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (out.status.code().unwrap_or(-1), status.to_owned(), body.to_owned())
}

/// A refused request: curl's header arguments, and the (status, problem
/// type) answers that may come back.
type Case<'a> = (Vec<&'a str>, &'a [(&'a str, &'a str)]);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_reach_http2_clients_every_time() {
    const TRIES: usize = 200;
    let ca = ca_with(|_| {}).await;
    let (status, made) =
        ca.post("/api/v1/tokens", Some(&ca.admin_token), &json!({"name": "reader", "scope": "auditor"})).await;
    assert_eq!(status, 201, "{made}");
    let auditor = format!("Authorization: Bearer {}", made["token"].as_str().unwrap());
    let admin = format!("Authorization: Bearer {}", ca.admin_token);
    let body = json!({"policy": "default", "csr": "x".repeat(2000)}).to_string();
    let sign = ca.admin_url("/api/v1/certificates");
    let new_order = ca.acme_directory().replace("/directory", "/new-order");
    // Past 20 wrong tokens the admin API slows the source down with 429: a
    // refusal that must arrive too.
    let wrong_token: &[(&str, &str)] = &[("401", "unauthorized"), ("429", "too-many-failed-authentications")];
    let admin_cases: [Case; 3] = [
        (vec!["-H", "Authorization: Bearer wrong", "-H", "Content-Type: application/json"], wrong_token),
        (vec!["-H", &auditor, "-H", "Content-Type: application/json"], &[("403", "insufficient-scope")]),
        (vec!["-H", &admin, "-H", "Content-Type: text/plain"], &[("415", "malformed-request")]),
    ];
    let acme_cases: [Case; 1] =
        [(vec!["-H", "Content-Type: application/json"], &[("415", "urn:ietf:params:acme:error:malformed")])];
    let mut failures = Vec::new();
    for i in 0..TRIES {
        for (url, (headers, answers)) in
            [(&sign, &admin_cases[i % admin_cases.len()]), (&new_order, &acme_cases[i % acme_cases.len()])]
        {
            let mut args = headers.clone();
            args.extend(["--data-binary", &body]);
            let (exit, status, answer) = curl(&ca, url, &args);
            let arrived = answers.iter().any(|(code, kind)| status == format!("2 {code}") && answer.contains(kind));
            if exit != 0 || !arrived {
                failures.push(format!("{url}: curl exit {exit}, {status:?}, {answer:?}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} refusals did not arrive: {:?}",
        failures.len(),
        2 * TRIES,
        &failures[..failures.len().min(5)]
    );
    ca.stop().await;
}
