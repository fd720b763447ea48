//! A webhook receiver on loopback that keeps every request, and the check
//! of Tessera's `Tessera-Signature` header a real receiver would make.

use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, StatusCode};
use tessera::config::{Config, WebhookConfig};

/// Keeps every request; answers 500 to the first `failures` of them and
/// 200 after.
pub struct Receiver {
    pub url: String,
    pub seen: Arc<Mutex<Vec<(HeaderMap, String)>>>,
}

impl Receiver {
    pub async fn start(failures: usize) -> Self {
        let seen: Arc<Mutex<Vec<(HeaderMap, String)>>> = Arc::default();
        let kept = seen.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: String| {
                let kept = kept.clone();
                async move {
                    let mut seen = kept.lock().unwrap();
                    seen.push((headers, body));
                    if seen.len() <= failures { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url: format!("http://{addr}/hook"), seen }
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<(HeaderMap, String)> {
        self.seen.lock().unwrap().clone()
    }
}

/// Checks `Tessera-Signature: t=<unix>,v1=<hex>` over "t.body" with the
/// secret, and that the same tag does not pass for an altered body.
pub fn verify_signature(headers: &HeaderMap, body: &str, secret: &[u8]) {
    let value = headers["tessera-signature"].to_str().unwrap();
    let (t, v1) = value.split_once(',').unwrap();
    let t = t.strip_prefix("t=").unwrap();
    let tag = hex::decode(v1.strip_prefix("v1=").unwrap()).unwrap();
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    aws_lc_rs::hmac::verify(&key, format!("{t}.{body}").as_bytes(), &tag).expect("the HMAC verifies");
    let tampered = format!("{t}.{body} ");
    assert!(aws_lc_rs::hmac::verify(&key, tampered.as_bytes(), &tag).is_err());
}

/// Scans every second, retries after a second, and posts to `url` signed
/// with the secret in `secret_file`.
pub fn with_webhook(config: &mut Config, url: &str, secret_file: std::path::PathBuf) {
    config.lifecycle.scan_interval = "1s".parse().unwrap();
    config.lifecycle.webhook_backoff = "1s".parse().unwrap();
    config.lifecycle.webhooks =
        vec![WebhookConfig { url: url.into(), secret_env: None, secret_file: Some(secret_file), ca_file: None }];
}
