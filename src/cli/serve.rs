//! `tessera serve`: load the CA, start the three listeners (four with
//! `metrics_addr`), renew the TLS certificate while running, and stop
//! gracefully.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::IntoResponse;
use axum_server::Handle;
use axum_server::tls_rustls::RustlsConfig;
use tokio::task::JoinSet;
use tower_http::trace::TraceLayer;

use super::open_db;
use crate::acme::problem::AcmeProblem;
use crate::acme::{self, AcmeState};
use crate::admin::problem::ApiError;
use crate::admin::refusals::Refusals;
use crate::admin::{self, AdminState, Readiness};
use crate::clock::SharedClock;
use crate::config::{Config, Mode};
use crate::http::listener::{self, Listener, plain_refusal};
use crate::http::serving::ServingListeners;
use crate::http::{self, ClientAuth, public, rustls_config, server_config};
use crate::issuance::CertificateIssuer;
use crate::lifecycle::{AcmeUpkeep, Lifecycle};
use crate::metrics::Metrics;
use crate::revocation::Revocation;
use crate::rotation::CaRotation;
use crate::secrets::Sealer;
use crate::setup::{bootstrap_dev, ensure_server_tls, load_signing_authority};
use crate::storage::Db;
use crate::vault::{self, VaultState};

/// In-flight requests get this long to finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How often the TLS certificate's age is checked.
const TLS_CHECK_INTERVAL: Duration = Duration::from_secs(600);

/// A started server: its bound addresses and the handles to stop it.
pub struct Running {
    pub https_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The open metrics listener's, when `metrics_addr` is set.
    pub metrics_addr: Option<SocketAddr>,
    control: axum_server::Control,
    servers: JoinSet<std::io::Result<()>>,
    background: JoinSet<()>,
    db: Db,
    /// Written out at shutdown, so a stop loses no refusal.
    refusals: Arc<Refusals>,
}

/// Loads everything and binds the listeners; returns once they listen.
pub async fn start(mut config: Config, clock: SharedClock) -> anyhow::Result<Running> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // The plain HTTP listener is bound first: without public_base_url, the
    // CRL and OCSP URLs written into certificates name its address, which
    // for port 0 is known only once bound.
    let http_socket = bind(config.http_addr, "http_addr")?;
    config.http_addr = http_socket.local_addr()?;
    let db = open_db(&config).await?;
    if config.mode == Mode::Dev {
        bootstrap_dev(&config, &db, &clock).await?;
        tracing::warn!(
            data_dir = %config.data_dir.display(),
            "dev mode: the CA keys are unencrypted development keys; use `tessera init` with HSM or KMS keys in production"
        );
    }
    let sealer = Sealer::load(&config.kek_sources()?, &config.keys.awskms, db.secrets(), clock.clone()).await?;
    sealer.seal_stored().await?;
    let authority = load_signing_authority(&config, &sealer, &db.catalog()).await?;
    std::fs::write(config.data_dir.join("root.pem"), &authority.root_pem)?;
    let issuer = CertificateIssuer::new(db.ledger(), clock.clone(), authority);
    let tls = ensure_server_tls(&config, &issuer, clock.as_ref()).await?;
    let rustls = rustls_config(&tls, ClientAuth::None)?;
    let mut background = JoinSet::new();
    let metrics = Arc::new(Metrics::default());
    let revocation =
        Revocation::load(&config, &db.revocation(), &db.leases(), &clock, &issuer, &sealer, &metrics).await?;
    revocation.start_jobs(&mut background).await;
    let rotation = CaRotation::new(
        config.clone(),
        db.authorities(),
        db.ledger(),
        db.leases(),
        clock.clone(),
        issuer.clone(),
        revocation.clone(),
        sealer.clone(),
        &metrics,
    );
    background.spawn(rotation.clone().run());

    let lifecycle = Lifecycle::new(
        &config.lifecycle,
        db.lifecycle(),
        db.leases(),
        clock.clone(),
        &metrics,
        AcmeUpkeep {
            interrupted_order_problem: acme::interrupted_finalize_problem(),
            rate_window_seconds: acme::longest_rate_window(&config.acme),
        },
        revocation.node().to_owned(),
    )?;
    lifecycle.forget_stored_credentials().await?;
    lifecycle.start_jobs(&mut background);
    let acme_state = AcmeState::new(
        &config.acme,
        db.acme(),
        clock.clone(),
        issuer.clone(),
        revocation.clone(),
        metrics.clone(),
        sealer.clone(),
    )
    .await?;
    let vault_mounts = config.vault.mounts_in_force(config.mode);
    let vault_state = VaultState::new(
        &vault_mounts,
        &config.vault,
        db.admin(),
        clock.clone(),
        issuer.clone(),
        revocation.clone(),
        metrics.clone(),
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    let refusals = Arc::new(Refusals::new(metrics.clone()));
    let serving = ServingListeners::default();
    let state = AdminState {
        store: db.admin(),
        clock: clock.clone(),
        issuer: issuer.clone(),
        revocation: revocation.clone(),
        rotation,
        metrics: metrics.clone(),
        lifecycle,
        refusals: refusals.clone(),
        throttle: Arc::default(),
        sealer,
        readiness: Arc::new(Readiness::new(serving.clone())),
    };
    background.spawn(admin::keep_refusals(state.clone()));
    let metrics_router = admin::metrics_router(state.clone()).layer(TraceLayer::new_for_http());
    // Admin requests are small JSON documents; the listener reads no more.
    let admin_router =
        admin::router(state).layer(DefaultBodyLimit::max(listener::BODY_LIMIT)).layer(TraceLayer::new_for_http());
    let public_router = public::router(db.catalog(), clock.clone())
        .merge(http::revocation::router(revocation))
        .layer(TraceLayer::new_for_http());
    // ACME is served on the HTTPS listener only (RFC 8555 §6.1).
    background.spawn(acme::resume_stalled(acme_state.clone()));
    let mut https_router = public_router.clone().merge(acme::router(acme_state).layer(TraceLayer::new_for_http()));
    // The Vault-compatible API shares the HTTPS listener, and only once a mount is configured.
    if !vault_mounts.is_empty() {
        https_router = https_router.nest("/v1", vault::router(vault_state).layer(TraceLayer::new_for_http()));
    }

    let control = axum_server::Control::new();
    let mut servers = JoinSet::new();
    let listener =
        |name, refusal| Listener { name, limits: config.listeners.clone(), meter: metrics.listener(name), refusal };
    let https = listener("https", |r| AcmeProblem::from(r).into_response());
    let https_socket = bind(config.https_addr, "https_addr")?;
    // The certificate login needs the client's certificate; without it the
    // listener asks for none, as the admin listener never does.
    let asks_client_certificates = config.vault.cert.is_some() && !vault_mounts.is_empty();
    let https_rustls = match asks_client_certificates {
        true => rustls_config(&tls, ClientAuth::Requested)?,
        false => rustls.clone(),
    };
    let https_addr =
        spawn(&mut servers, &control, &serving, https_socket, Some(https_rustls.clone()), https_router, https).await?;
    let http = listener("http", plain_refusal);
    let http_addr = spawn(&mut servers, &control, &serving, http_socket, None, public_router, http).await?;
    let admin = listener("admin", |r| ApiError::from(r).into_response());
    let admin_socket = bind(config.admin_addr, "admin_addr")?;
    let admin_addr =
        spawn(&mut servers, &control, &serving, admin_socket, Some(rustls.clone()), admin_router, admin).await?;
    let metrics_addr = match config.metrics_addr {
        Some(addr) => {
            let socket = bind(addr, "metrics_addr")?;
            let open = listener("metrics", plain_refusal);
            Some(spawn(&mut servers, &control, &serving, socket, None, metrics_router, open).await?)
        }
        None => None,
    };
    tracing::info!(%https_addr, %http_addr, %admin_addr, ?metrics_addr, backend = db.backend(), "tessera is listening");
    for mount in &vault_mounts {
        tracing::info!(
            url = %format!("https://{https_addr}/v1/{}", mount.path),
            roles = ?mount.roles,
            "Vault-compatible PKI mount"
        );
    }
    for directory in &config.acme.directories {
        tracing::info!(
            url = %format!("https://{https_addr}/acme/{}/directory", directory.name),
            policy = %directory.policy,
            eab_required = directory.eab_required,
            "ACME directory"
        );
    }

    let mut listener_tls = vec![(rustls, ClientAuth::None)];
    if asks_client_certificates {
        listener_tls.push((https_rustls, ClientAuth::Requested));
    }
    background.spawn(renew_tls(config, issuer, clock, listener_tls, tls));
    Ok(Running { https_addr, http_addr, admin_addr, metrics_addr, control, servers, background, db, refusals })
}

/// Serves one listener, and keeps `serving` told whether it does.
async fn spawn(
    servers: &mut JoinSet<std::io::Result<()>>,
    control: &axum_server::Control,
    serving: &ServingListeners,
    socket: std::net::TcpListener,
    tls: Option<RustlsConfig>,
    router: Router,
    listener: Listener,
) -> anyhow::Result<SocketAddr> {
    let addr = socket.local_addr()?;
    let name = listener.name;
    let handle: Handle<SocketAddr> = Handle::with_control(control.clone());
    let status = serving.clone();
    let served = listener::serve(socket, tls, router, listener, handle.clone());
    servers.spawn(async move {
        let outcome = served.await;
        status.set(name, false);
        outcome
    });
    let bound = handle.listening().await.ok_or_else(|| anyhow::anyhow!("cannot serve on {addr}"))?;
    serving.set(name, true);
    Ok(bound)
}

/// Binds a listener; a failure names the flag and the config key that
/// choose its address (`key` is the config key).
fn bind(addr: SocketAddr, key: &str) -> anyhow::Result<std::net::TcpListener> {
    std::net::TcpListener::bind(addr).map_err(|e| {
        let flag = key.replace('_', "-");
        let why = match e.kind() {
            std::io::ErrorKind::AddrInUse => "the address is in use (by another Tessera or another program)".into(),
            _ => e.to_string(),
        };
        anyhow::anyhow!("cannot listen on {addr}: {why}; choose another address with --{flag} or {key} in the config")
    })
}

/// Replaces Tessera's TLS certificate when a third of its life is left,
/// and at once when a CA rotation makes another issuing CA current, so the
/// listeners never present a chain through a retired CA for long.
async fn renew_tls(
    config: Config,
    issuer: CertificateIssuer,
    clock: SharedClock,
    listeners: Vec<(RustlsConfig, ClientAuth)>,
    mut current: crate::setup::ServerTls,
) {
    let mut interval = tokio::time::interval(TLS_CHECK_INTERVAL);
    // The issuer holds the sending side, so this never reports a closed channel.
    let mut authority = issuer.watch_authority();
    loop {
        let rotated = tokio::select! {
            _ = interval.tick() => false,
            changed = authority.changed() => changed.is_ok(),
        };
        if !rotated && !current.needs_renewal(clock.now()) {
            continue;
        }
        match ensure_server_tls(&config, &issuer, clock.as_ref()).await {
            Ok(fresh) => {
                let servers: Result<Vec<_>, _> =
                    listeners.iter().map(|(_, client_auth)| server_config(&fresh, *client_auth)).collect();
                match servers {
                    Ok(servers) => {
                        for ((rustls, _), server) in listeners.iter().zip(servers) {
                            rustls.reload_from_config(server);
                        }
                        current = fresh;
                    }
                    Err(e) => tracing::error!(error = %e, "renewed TLS certificate is unusable"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "TLS certificate renewal failed; will retry"),
        }
    }
}

impl Running {
    /// Serves until SIGTERM or SIGINT (or a listener fails), then stops gracefully.
    pub async fn wait_for_signal(mut self) -> anyhow::Result<()> {
        let failed = tokio::select! {
            () = shutdown_signal() => None,
            Some(done) = self.servers.join_next() => Some(done),
        };
        tracing::info!("shutting down: letting in-flight requests finish");
        self.shutdown().await;
        match failed {
            Some(Ok(Err(e))) => Err(e.into()),
            Some(Err(e)) => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// Stops accepting, waits for in-flight requests, closes the database.
    pub async fn shutdown(mut self) {
        self.control.graceful_shutdown(Some(SHUTDOWN_GRACE));
        while self.servers.join_next().await.is_some() {}
        self.background.shutdown().await;
        self.refusals.flush_all(&self.db.admin()).await;
        self.db.close().await;
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(term) => term,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
