//! Two nodes on one PostgreSQL behind a round-robin TCP proxy, as a load
//! balancer spreads them (issue 19.6): real ACME flows cross both nodes,
//! one node dies between reserving a serial and recording its certificate,
//! and the survivor settles what it left (the order ends invalid with a
//! problem, no row stays pending, OCSP never calls the serial good) while
//! the client, retrying through the proxy, gets its certificate from it.
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use instant_acme::{
    Account, ChallengeType, ExternalAccountKey, Identifier, NewAccount, NewOrder, Order, OrderStatus, RetryPolicy,
};
use serde_json::Value;
use tessera::clock::SharedClock;
use tessera::issuance::{Serial, hold_next_issuance_of};
use tessera::storage::CertificateStatus;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use crate::common::acme::Responders;
use crate::common::relying_party::LeafFiles;
use crate::common::{Backend, TestCa, csr_for};
use crate::interrupted_issuance::ocsp_by_serial;

/// One node behind the proxy.
struct Upstream {
    addr: SocketAddr,
    /// False once a connection to it was refused, as a health check finds.
    up: bool,
    /// Connections forwarded to it so far.
    served: usize,
    /// The forwarded connections, cut at once when the node dies.
    pipes: Vec<AbortHandle>,
}

struct Routing {
    upstreams: Vec<Upstream>,
    next: usize,
    /// Every new connection goes here while set (a sticky session).
    pinned: Option<usize>,
}

impl Routing {
    /// The upstream for the next connection: the pinned one, or the next
    /// live one in turn.
    fn choose(&mut self) -> Option<(usize, SocketAddr)> {
        if let Some(i) = self.pinned {
            return Some((i, self.upstreams[i].addr));
        }
        let count = self.upstreams.len();
        let i = (0..count).map(|k| (self.next + k) % count).find(|&i| self.upstreams[i].up)?;
        self.next = (i + 1) % count;
        Some((i, self.upstreams[i].addr))
    }
}

/// A TCP proxy on loopback handing each new connection to the next node in
/// turn; a node that refuses a connection is skipped from then on.
struct RoundRobin {
    port: u16,
    routing: Arc<Mutex<Routing>>,
    accept: AbortHandle,
}

impl RoundRobin {
    async fn start(nodes: &[SocketAddr]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstreams = nodes.iter().map(|&addr| Upstream { addr, up: true, served: 0, pipes: Vec::new() }).collect();
        let routing = Arc::new(Mutex::new(Routing { upstreams, next: 0, pinned: None }));
        let shared = routing.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(forward(shared.clone(), client));
            }
        })
        .abort_handle();
        Self { port, routing, accept }
    }

    fn routing(&self) -> std::sync::MutexGuard<'_, Routing> {
        self.routing.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn pin(&self, node: Option<usize>) {
        self.routing().pinned = node;
    }

    /// Connections forwarded to each node so far.
    fn served(&self) -> Vec<usize> {
        self.routing().upstreams.iter().map(|u| u.served).collect()
    }

    /// Closes every connection to `node`, as its process's death does.
    fn cut(&self, node: usize) {
        for pipe in self.routing().upstreams[node].pipes.drain(..) {
            pipe.abort();
        }
    }
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        self.accept.abort();
        for upstream in &mut self.routing().upstreams {
            upstream.pipes.drain(..).for_each(|p| p.abort());
        }
    }
}

async fn forward(routing: Arc<Mutex<Routing>>, mut client: TcpStream) {
    let tries = routing.lock().unwrap_or_else(PoisonError::into_inner).upstreams.len();
    for _ in 0..tries {
        let Some((i, addr)) = routing.lock().unwrap_or_else(PoisonError::into_inner).choose() else { return };
        let Ok(mut server) = TcpStream::connect(addr).await else {
            routing.lock().unwrap_or_else(PoisonError::into_inner).upstreams[i].up = false;
            continue;
        };
        let pipe = tokio::spawn(async move {
            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
        });
        let mut routing = routing.lock().unwrap_or_else(PoisonError::into_inner);
        routing.upstreams[i].served += 1;
        routing.upstreams[i].pipes.push(pipe.abort_handle());
        return;
    }
}

/// instant-acme's own HTTP client, but opening a connection per request,
/// so consecutive requests of one flow reach different nodes.
fn connection_per_request(root: &Path) -> impl instant_acme::HttpClient {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(root).unwrap();
    for cert in <rustls::pki_types::CertificateDer as rustls::pki_types::pem::PemObject>::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let mut tcp = hyper_util::client::legacy::connect::HttpConnector::new();
    tcp.enforce_http(false);
    let connector =
        hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls).https_only().enable_http1().wrap_connector(tcp);
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build(connector)
}

fn retries() -> RetryPolicy {
    RetryPolicy::new().initial_delay(Duration::from_millis(100)).timeout(Duration::from_secs(30))
}

/// An order for `name` with its http-01 challenge answered and ready.
async fn ready_order(account: &Account, responders: &Responders, name: &str) -> Order {
    let mut order = account.new_order(&NewOrder::new(&[Identifier::Dns(name.into())])).await.unwrap();
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.unwrap();
        let mut challenge = authz.challenge(ChallengeType::Http01).unwrap();
        responders.serve_http01(&challenge.token, challenge.key_authorization().as_str());
        challenge.set_ready().await.unwrap();
    }
    assert_eq!(order.poll_ready(&retries()).await.unwrap(), OrderStatus::Ready, "{:?}", order.state());
    order
}

/// A whole flow for `name`: the PEM chain.
async fn issue(account: &Account, responders: &Responders, name: &str) -> String {
    let mut order = ready_order(account, responders, name).await;
    order.finalize().await.unwrap();
    order.poll_certificate(&retries()).await.unwrap()
}

fn serial_of(chain_pem: &str) -> String {
    let (_, pem) = x509_parser::pem::parse_x509_pem(chain_pem.as_bytes()).unwrap();
    hex::encode(pem.parse_x509().unwrap().raw_serial())
}

/// The certificates the admin API lists with `status`.
async fn listed(ca: &TestCa, status: &str) -> Vec<Value> {
    let (code, body) = ca.get(&format!("/api/v1/certificates?status={status}&limit=500"), Some(&ca.admin_token)).await;
    assert_eq!(code, 200, "{body}");
    body["items"].as_array().unwrap().clone()
}

/// PostgreSQL only: nodes share a database only there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_issuance_leaves_its_work_to_the_survivor() {
    const HELD: &str = "held.cluster.test";
    let responders = Responders::start().await;
    // The shortest wait allowed, so the settling job runs every 7 s.
    let shortest = |c: &mut tessera::config::Config| c.lifecycle.interrupted_issuance_after = "30s".parse().unwrap();
    let Some(survivor) = TestCa::start_acme_with(Backend::Postgres, responders.overrides(), shortest).await else {
        return;
    };
    // The second node shares the database, the data directory (CA keys,
    // secrets.kek) and the clock, as the nodes of a cluster share them.
    let doomed = tessera::cli::start(survivor.config.clone(), survivor.clock.clone() as SharedClock).await.unwrap();
    let proxy = RoundRobin::start(&[survivor.running().https_addr, doomed.https_addr]).await;
    let directory = format!("https://localhost:{}/acme/default/directory", proxy.port);
    let (kid, hmac) = survivor.eab_key(false).await;
    let eab = ExternalAccountKey::new(kid, &URL_SAFE_NO_PAD.decode(hmac).unwrap());
    let new = NewAccount { contact: &[], terms_of_service_agreed: true, only_return_existing: false };
    let (account, _) = Account::builder_with_http(Box::new(connection_per_request(&survivor.root_pem_path())))
        .create(&new, directory, Some(&eab))
        .await
        .unwrap();

    // Whole flows cross the nodes, a request on one and the next on the other.
    for i in 0..3 {
        issue(&account, &responders, &format!("flow-{i}.cluster.test")).await;
    }
    let served = proxy.served();
    assert!(served.iter().all(|&n| n >= 5), "both nodes serve the flows: {served:?}");

    // The finalize reaches the doomed node, which reserves the serial and
    // dies before it records the certificate.
    let held = hold_next_issuance_of(HELD);
    let mut order = ready_order(&account, &responders, HELD).await;
    let order_url = order.url().to_owned();
    proxy.pin(Some(1));
    let finalize = tokio::spawn(async move { order.finalize().await });
    tokio::time::timeout(Duration::from_secs(30), held.notified()).await.expect("the issuance was not held");
    proxy.pin(None);
    drop(doomed);
    proxy.cut(1);
    let cut_off = tokio::time::timeout(Duration::from_secs(10), finalize).await.expect("finalize still waits");
    assert!(cut_off.unwrap().is_err(), "the client's finalize must fail with its connection");
    let pending = listed(&survivor, "pending").await;
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0]["identifiers"][0]["value"], HELD, "{pending:?}");
    let abandoned: Serial = pending[0]["serial"].as_str().unwrap().parse().unwrap();

    // The client polls the order through the proxy as RFC 8555 7.4 says; it
    // stays processing until the wait (and the dead node's lease) ran out,
    // then the survivor settles it.
    let mut order = account.order(order_url.clone()).await.unwrap();
    let status = order.state().status;
    assert_eq!(status, OrderStatus::Processing);
    survivor.clock.advance(time::Duration::seconds(61));
    let started = Instant::now();
    let (status, problem) = loop {
        let state = order.refresh().await.unwrap();
        if state.status != OrderStatus::Processing {
            break (state.status, format!("{:?}", state.error));
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the order stayed processing");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("the survivor settled the interrupted order {:?} after the wait", started.elapsed());
    assert_eq!(status, OrderStatus::Invalid, "{problem}");
    assert!(problem.contains("urn:ietf:params:acme:error:serverInternal"), "{problem}");
    assert!(listed(&survivor, "pending").await.is_empty());
    let abandoned_status = survivor.db.catalog().certificate(abandoned.as_bytes()).await.unwrap().status;
    assert_eq!(abandoned_status, CertificateStatus::Failed);
    let kept = survivor.sign(&csr_for(&["rest.cluster.test"])).await;
    let files = LeafFiles::new(&survivor, &kept, "cluster");
    let ocsp = survivor.http_url("/ocsp");
    let line = ocsp_by_serial(&files, &ocsp, &abandoned);
    assert!(!line.ends_with(": good"), "{line}");

    // Retrying with a new order, the client gets its certificate, from the
    // survivor alone now.
    let before = proxy.served();
    let chain = issue(&account, &responders, HELD).await;
    let after = proxy.served();
    assert_eq!(after[1], before[1], "the dead node is out of the rotation");
    let serial = serial_of(&chain);
    assert_ne!(serial, abandoned.to_hex());
    let issued = listed(&survivor, "issued").await;
    assert!(issued.iter().any(|c| c["serial"] == serial.as_str()), "{issued:?}");
    survivor.stop().await;
}
