//! The ACME side shared by the benchmarks: an http-01 responder, EAB keys
//! from the admin API, and instant-acme accounts over a tuned HTTP client.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, ExternalAccountKey, Identifier, NewAccount, NewOrder, RetryPolicy,
};

/// http-01 answers by token.
pub type Tokens = Arc<Mutex<HashMap<String, String>>>;

/// Answers http-01 on loopback from `Tokens`; returns them and the port.
pub async fn http01_responder() -> (Tokens, u16) {
    let tokens: Tokens = Arc::default();
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let table = tokens.clone();
    let app = axum::Router::new().route(
        "/.well-known/acme-challenge/{token}",
        axum::routing::get(move |axum::extract::Path(token): axum::extract::Path<String>| {
            let answer = table.lock().unwrap().get(&token).cloned();
            async move { answer.ok_or(axum::http::StatusCode::NOT_FOUND) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (tokens, port)
}

/// A fresh EAB key for the `default` policy, made through the admin API.
pub async fn eab_key(root: &Path, token_file: &Path, admin_port: u16) -> ExternalAccountKey {
    let token = std::fs::read_to_string(token_file).unwrap().trim().to_owned();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&std::fs::read(root).unwrap()).unwrap())
        .build()
        .unwrap();
    let body: serde_json::Value = client
        .post(format!("https://localhost:{admin_port}/api/v1/eab-keys"))
        .bearer_auth(token)
        .json(&serde_json::json!({"policy": "default"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let hmac = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body["hmac_key"].as_str().unwrap()).unwrap();
    ExternalAccountKey::new(body["kid"].as_str().unwrap().to_owned(), &hmac)
}

/// An account at `directory`, over [`http_client`].
pub async fn new_account(root: &Path, directory: &str, eab: Option<&ExternalAccountKey>) -> Account {
    let new = NewAccount { contact: &[], terms_of_service_agreed: true, only_return_existing: false };
    Account::builder_with_http(Box::new(http_client(root))).create(&new, directory.to_owned(), eab).await.unwrap().0
}

/// instant-acme's own client (hyper, rustls, HTTP/1.1 and HTTP/2), but with
/// TCP_NODELAY as Go, curl and urllib3 set it: without it every request
/// written in two parts waits on the server's delayed ACK (40 ms), whoever
/// the server is, and the run measures that timer instead of the server.
pub fn http_client(root: &Path) -> impl instant_acme::HttpClient {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(root).unwrap();
    for cert in <rustls::pki_types::CertificateDer as rustls::pki_types::pem::PemObject>::pem_slice_iter(&pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    let mut tcp = hyper_util::client::legacy::connect::HttpConnector::new();
    tcp.set_nodelay(true);
    tcp.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .wrap_connector(tcp);
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector)
}

/// One complete flow for 127.0.0.1 (an IP identifier: no DNS involved).
pub async fn flow(account: &Account, tokens: &Tokens) -> Result<(), String> {
    let identifiers = [Identifier::Ip(Ipv4Addr::LOCALHOST.into())];
    let mut order = account.new_order(&NewOrder::new(&identifiers)).await.map_err(|e| e.to_string())?;
    let mut authorizations = order.authorizations();
    while let Some(authz) = authorizations.next().await {
        let mut authz = authz.map_err(|e| e.to_string())?;
        if authz.status == AuthorizationStatus::Valid {
            continue;
        }
        let mut challenge = authz.challenge(ChallengeType::Http01).ok_or("no http-01 challenge")?;
        tokens.lock().unwrap().insert(challenge.token.clone(), challenge.key_authorization().as_str().to_owned());
        challenge.set_ready().await.map_err(|e| e.to_string())?;
    }
    let retries =
        RetryPolicy::new().initial_delay(Duration::from_millis(25)).backoff(1.5).timeout(Duration::from_secs(60));
    order.poll_ready(&retries).await.map_err(|e| e.to_string())?;
    order.finalize().await.map_err(|e| e.to_string())?;
    order.poll_certificate(&retries).await.map_err(|e| e.to_string())?;
    Ok(())
}
