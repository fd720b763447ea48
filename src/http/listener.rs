//! What every listener enforces before a request reaches a handler, so that
//! no client, with or without credentials, holds a listener for free
//! (docs/operations.md, "Listener limits"):
//!
//! - a connection cap: past `max_connections` a connection is closed as it
//!   arrives ([`GuardedAcceptor`]);
//! - an idle clock per connection: one with no request in flight for
//!   `keep_alive_idle` is closed, over HTTP/1.1 and HTTP/2 alike
//!   ([`GuardedStream`]);
//! - hyper's limits: the header-read timeout, the size of a request head,
//!   HTTP/2 streams per connection and the reset-flood guards; axum-server's
//!   first-request and TLS handshake timeouts ([`serve`]);
//! - request bodies read whole, within `request_body_timeout` and
//!   [`BODY_LIMIT`], before the handler runs, so a refusal (401, 403, 415)
//!   is answered after the request ended: answered earlier, HTTP/2 resets
//!   the stream and clients such as curl drop the answer;
//! - a cap on requests in flight: past `max_requests_in_flight` a request is
//!   answered 503 with `Retry-After` at once instead of waiting in a queue.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_server::Handle;
use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use bytes::BytesMut;
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use super::client_certificate::WithClientCertificates;
use crate::config::ListenerConfig;
use crate::metrics::ListenerMeter;

/// The largest request body any route takes (an ACME JWS).
pub const BODY_LIMIT: usize = 64 * 1024;
/// How much of a body beyond [`BODY_LIMIT`] is read (and dropped) so that
/// its refusal arrives; past it, the refusal may not reach an HTTP/2 client.
const DRAIN_LIMIT: usize = 1024 * 1024;
/// HTTP/2 streams a client may reset before they are answered, per
/// connection, before the connection is closed (the rapid-reset attack).
const MAX_PENDING_RESETS: usize = 20;
/// HTTP/2 streams the server may reset for a client's errors, per
/// connection, before the connection is closed.
const MAX_ERROR_RESETS: usize = 256;
/// How long an overloaded listener asks clients to wait.
pub const OVERLOADED_RETRY_AFTER_SECONDS: u64 = 1;

/// One listener: what it is called in logs and metrics, and its limits.
#[derive(Debug, Clone)]
pub struct Listener {
    pub name: &'static str,
    pub limits: ListenerConfig,
    pub meter: ListenerMeter,
    /// How this listener words a refusal: its protocol's problem form.
    pub refusal: RefusalForm,
}

/// Why a listener answered a request without its handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_requests_in_flight` requests were being handled.
    Overloaded,
    /// The body did not arrive within `request_body_timeout`.
    BodyTimedOut,
    /// The client broke off while sending the body.
    BodyBroken,
}

/// Each listener answers a [`Refusal`] in its own protocol's form.
pub type RefusalForm = fn(Refusal) -> Response;

/// Serves `router` on `addr` (over TLS when `tls` is given) within the
/// listener's limits, until `handle` stops it.
pub async fn serve(
    socket: std::net::TcpListener,
    tls: Option<RustlsConfig>,
    router: Router,
    listener: Listener,
    handle: Handle<SocketAddr>,
) -> io::Result<()> {
    let limits = &listener.limits;
    let mut server = axum_server::from_tcp(socket)?.handle(handle).first_request_timeout(limits.header_read_timeout());
    let builder = server.http_builder();
    builder.http1().header_read_timeout(limits.header_read_timeout()).max_buf_size(limits.max_header_bytes as usize);
    builder
        .http2()
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .max_header_list_size(limits.max_header_bytes)
        .max_pending_accept_reset_streams(MAX_PENDING_RESETS)
        .max_local_error_reset_streams(MAX_ERROR_RESETS);
    let acceptor = GuardedAcceptor::new(&listener);
    // The peer's address reaches handlers (the admin API throttles by it).
    let service = guard_requests(router, &listener).into_make_service_with_connect_info::<SocketAddr>();
    match tls {
        Some(config) => {
            let acceptor =
                RustlsAcceptor::new(config).handshake_timeout(limits.tls_handshake_timeout()).acceptor(acceptor);
            server.acceptor(WithClientCertificates(acceptor)).serve(service).await
        }
        None => server.acceptor(acceptor).serve(service).await,
    }
}

/// Requests in flight on one connection, and when the last one ended.
#[derive(Debug)]
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    /// Milliseconds from `opened` to the end of the last request.
    last_end: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Self { opened: Instant::now(), in_flight: AtomicUsize::new(0), last_end: AtomicU64::new(0) }
    }

    /// Since when nothing has been in flight; None while a request is.
    fn idle_since(&self) -> Option<Instant> {
        (self.in_flight.load(Ordering::SeqCst) == 0)
            .then(|| self.opened + Duration::from_millis(self.last_end.load(Ordering::SeqCst)))
    }
}

/// One request in flight; its end is stamped when dropped, however the
/// request ended.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::SeqCst);
        Self(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let elapsed = u64::try_from(self.0.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_end.fetch_max(elapsed, Ordering::SeqCst);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Admits a TCP connection while the listener has fewer than
/// `max_connections` open; sets TCP_NODELAY, since small exchanges must
/// not wait on Nagle's algorithm against the client's delayed ACK (up to
/// 40 ms a round trip).
#[derive(Debug, Clone)]
pub struct GuardedAcceptor {
    name: &'static str,
    slots: Arc<Semaphore>,
    idle: Duration,
    meter: ListenerMeter,
    started: Instant,
    /// Seconds after `started` before which refusals are not logged again,
    /// so a flood writes a line a minute, not a line a connection.
    quiet_until: Arc<AtomicU64>,
}

/// Refusals are logged at most this often per listener.
const REFUSAL_WARNING_EVERY_SECONDS: u64 = 60;

impl GuardedAcceptor {
    fn new(listener: &Listener) -> Self {
        Self {
            name: listener.name,
            slots: Arc::new(Semaphore::new(listener.limits.max_connections as usize)),
            idle: listener.limits.keep_alive_idle(),
            meter: listener.meter.clone(),
            started: Instant::now(),
            quiet_until: Arc::new(AtomicU64::new(0)),
        }
    }

    fn admit(&self, tcp: TcpStream) -> io::Result<(GuardedStream, Arc<Activity>)> {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            self.meter.connections_refused.inc();
            self.warn_refusing();
            return Err(io::Error::other("the listener has max_connections open"));
        };
        tcp.set_nodelay(true)?;
        let activity = Arc::new(Activity::new());
        let stream = GuardedStream {
            tcp,
            activity: activity.clone(),
            idle: self.idle,
            deadline: Box::pin(tokio::time::sleep(self.idle)),
            meter: self.meter.clone(),
            _slot: slot,
        };
        self.meter.connections.inc();
        Ok((stream, activity))
    }

    fn warn_refusing(&self) {
        let now = self.started.elapsed().as_secs();
        let quiet_until = self.quiet_until.load(Ordering::Relaxed);
        if now >= quiet_until
            && self
                .quiet_until
                .compare_exchange(
                    quiet_until,
                    now + REFUSAL_WARNING_EVERY_SECONDS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            tracing::warn!(
                listener = self.name,
                "closing new connections: max_connections are open (see tessera_listener_connections_refused_total)"
            );
        }
    }
}

impl<S> Accept<TcpStream, S> for GuardedAcceptor {
    type Stream = GuardedStream;
    type Service = Tracked<S>;
    type Future = std::future::Ready<io::Result<(GuardedStream, Tracked<S>)>>;

    fn accept(&self, tcp: TcpStream, service: S) -> Self::Future {
        std::future::ready(self.admit(tcp).map(|(stream, activity)| (stream, Tracked { inner: service, activity })))
    }
}

/// A connection that holds one of its listener's slots and fails, closing
/// it, once nothing has been in flight on it for the idle timeout.
pub struct GuardedStream {
    tcp: TcpStream,
    activity: Arc<Activity>,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    meter: ListenerMeter,
    _slot: OwnedSemaphorePermit,
}

impl GuardedStream {
    /// Ready once the connection has been idle for too long; otherwise
    /// Pending, with a wake-up at the next moment it could be.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            if self.deadline.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let now = Instant::now();
            let next = self.activity.idle_since().map_or(now + self.idle, |since| since + self.idle);
            if next <= now {
                return Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "idle connection closed"));
            }
            self.deadline.as_mut().reset(next);
        }
    }

    /// Passes a ready result on; a pending one becomes an error when idle.
    fn or_idle<T>(&mut self, polled: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match polled {
            Poll::Pending => self.poll_idle(cx).map(Err),
            ready => ready,
        }
    }
}

impl Drop for GuardedStream {
    fn drop(&mut self) {
        self.meter.connections.dec();
    }
}

impl AsyncRead for GuardedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.tcp).poll_read(cx, buf);
        self.or_idle(polled, cx)
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.tcp).poll_write(cx, buf);
        self.or_idle(polled, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs);
        self.or_idle(polled, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}

/// A connection's service: marks each request in flight until its
/// response is ready, for the connection's idle clock.
#[derive(Debug, Clone)]
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S, R> tower::Service<R> for Tracked<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let in_flight = InFlight::begin(&self.activity);
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            drop(in_flight);
            response
        })
    }
}

/// Requests in flight on one listener, and how long a body may take.
#[derive(Debug)]
struct RequestGuard {
    in_flight: Arc<Semaphore>,
    body_timeout: Duration,
    meter: ListenerMeter,
    refusal: RefusalForm,
}

fn guard_requests(router: Router, listener: &Listener) -> Router {
    let guard = RequestGuard {
        in_flight: Arc::new(Semaphore::new(listener.limits.max_requests_in_flight as usize)),
        body_timeout: listener.limits.request_body_timeout(),
        meter: listener.meter.clone(),
        refusal: listener.refusal,
    };
    router.layer(axum::middleware::from_fn_with_state(Arc::new(guard), guard_request))
}

/// Takes a place among the requests in flight (or answers 503), reads the
/// body whole within the deadline, then runs the handler. A refused
/// request's body is read and dropped first, so the refusal arrives.
async fn guard_request(State(guard): State<Arc<RequestGuard>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(place) = guard.in_flight.clone().try_acquire_owned() else {
        guard.meter.requests_shed.inc();
        let _ = tokio::time::timeout(guard.body_timeout, read_bounded(body)).await;
        return (guard.refusal)(Refusal::Overloaded);
    };
    let body = match tokio::time::timeout(guard.body_timeout, read_bounded(body)).await {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => return (guard.refusal)(Refusal::BodyBroken),
        Err(_) => return (guard.refusal)(Refusal::BodyTimedOut),
    };
    let response = next.run(Request::from_parts(parts, body)).await;
    drop(place);
    response
}

/// The body's first [`BODY_LIMIT`] bytes and more, read to its end: what
/// follows is read and dropped up to [`DRAIN_LIMIT`]. A route refuses a
/// body longer than `BODY_LIMIT` in its own form, and its refusal reaches
/// the client because the request has ended.
async fn read_bounded(body: Body) -> Result<Body, axum::Error> {
    let mut stream = body.into_data_stream();
    let mut kept = BytesMut::new();
    let mut dropped = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if kept.len() <= BODY_LIMIT {
            kept.extend_from_slice(&chunk);
        } else {
            dropped += chunk.len();
            if dropped > DRAIN_LIMIT {
                break;
            }
        }
    }
    Ok(Body::from(kept.freeze()))
}

/// The refusal form of a listener whose routes have no problem format of
/// their own (CA certificates, CRLs, OCSP over plain HTTP).
pub fn plain_refusal(refusal: Refusal) -> Response {
    match refusal {
        Refusal::Overloaded => {
            let mut response = (StatusCode::SERVICE_UNAVAILABLE, "overloaded; retry later\n").into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(OVERLOADED_RETRY_AFTER_SECONDS));
            response
        }
        Refusal::BodyTimedOut => {
            (StatusCode::REQUEST_TIMEOUT, "the request body did not arrive in time\n").into_response()
        }
        Refusal::BodyBroken => (StatusCode::BAD_REQUEST, "the request body broke off\n").into_response(),
    }
}
