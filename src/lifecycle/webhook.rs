//! Webhook delivery: each queued event is POSTed as JSON to its URL,
//! signed with HMAC-SHA256 under the webhook's secret in
//! `Tessera-Signature: t=<unix>,v1=<hex>` over `"<t>.<body>"` (the time
//! lets receivers refuse replays). A failed attempt (no answer, or a status
//! other than 2xx) is retried after `webhook_backoff`, doubling each time,
//! until `webhook_max_attempts`; every attempt is recorded.
//!
//! A URL may carry a credential (userinfo, a token in its query): the URL
//! is only sent to; deliveries are stored under its address (no userinfo,
//! query or fragment) and logs name its host.

use std::sync::Arc;
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};

use super::{Lifecycle, LifecycleError, lease};
use crate::config::{WebhookAddress, WebhookConfig};
use crate::storage::{LifecycleEvent, StoreError, WebhookOutcome};

pub const SIGNATURE_HEADER: &str = "Tessera-Signature";
/// How often the delivery job looks for due events.
pub(super) const POLL: time::Duration = time::Duration::seconds(2);
/// One attempt may take this long.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between two attempts.
const MAX_BACKOFF_SECONDS: i64 = 6 * 3600;
/// Events fetched per page.
const BATCH: i64 = 50;

/// A configured receiver with its secret and HTTP client.
pub(super) struct Webhook {
    /// Only ever sent to: it may carry a credential.
    url: String,
    pub address: WebhookAddress,
    secret: SecretString,
    client: reqwest::Client,
}

impl Webhook {
    pub(super) fn new(index: usize, config: &WebhookConfig) -> Result<Self, LifecycleError> {
        let secret = config.secret(index)?;
        let address =
            config.address().map_err(|e| LifecycleError::Webhook { host: String::new(), reason: e.to_string() })?;
        let fail = |reason: String| LifecycleError::Webhook { host: address.host.clone(), reason };
        let mut roots = rustls::RootCertStore::empty();
        let native = rustls_native_certs::load_native_certs();
        roots.add_parsable_certificates(native.certs);
        if let Some(path) = &config.ca_file {
            let pem = std::fs::read(path).map_err(|e| fail(format!("ca_file {}: {e}", path.display())))?;
            for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
                let cert = cert.map_err(|e| fail(format!("ca_file {}: {e}", path.display())))?;
                roots.add(cert).map_err(|e| fail(format!("ca_file {}: {e}", path.display())))?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| fail(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(ATTEMPT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Tessera/", env!("CARGO_PKG_VERSION"), " webhook"))
            .build()
            .map_err(|e| fail(e.to_string()))?;
        Ok(Self { url: config.url.clone(), address, secret, client })
    }
}

/// The `Tessera-Signature` value for `body` sent at `t`.
pub fn signature(secret: &[u8], t: i64, body: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(tag.as_ref()))
}

impl Lifecycle {
    /// Deliveries queued by versions that stored the whole URL are stored
    /// under its address instead, so the database keeps no credential.
    pub async fn forget_stored_credentials(&self) -> Result<(), StoreError> {
        for hook in self.webhooks.iter().filter(|w| w.url != w.address.address) {
            let changed = self.store.rename_webhook_url(&hook.url, &hook.address.address).await?;
            if changed > 0 {
                tracing::info!(host = %hook.address.host, changed, "stored webhook deliveries no longer keep the URL's credentials");
            }
        }
        Ok(())
    }

    /// Sends due events until none is left or half the lease is spent
    /// (so a slow receiver never lets the lease lapse mid-run).
    pub(super) async fn deliver(&self) -> Result<(), String> {
        let budget = Duration::from_secs((lease::lease_seconds(POLL) / 2) as u64);
        let started = Instant::now();
        loop {
            let due = self.store.due_webhook_events(self.clock.unix(), BATCH).await.map_err(|e| e.to_string())?;
            if due.is_empty() {
                return Ok(());
            }
            for event in &due {
                self.attempt(event).await.map_err(|e| e.to_string())?;
                if started.elapsed() >= budget {
                    return Ok(());
                }
            }
        }
    }

    async fn attempt(&self, event: &LifecycleEvent) -> Result<(), StoreError> {
        let now = self.clock.unix();
        let Some(hook) = self.webhooks.iter().find(|w| w.address.address == event.url) else {
            let error = "the webhook is no longer configured";
            return self.store.record_webhook_attempt(event, None, Some(error), now, WebhookOutcome::GaveUp).await;
        };
        let sent = hook
            .client
            .post(&hook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature(hook.secret.expose_secret().as_bytes(), now, &event.payload))
            .header("Tessera-Event", &event.kind)
            .header("Tessera-Delivery", event.id.to_string())
            .body(event.payload.clone())
            .send()
            .await;
        let (status, error) = match sent {
            Ok(response) => (Some(i32::from(response.status().as_u16())), None),
            // reqwest names the URL in its errors; the address is on record.
            Err(e) => (None, Some(error_chain(&e.without_url()))),
        };
        let attempt = event.attempts + 1;
        let outcome = if status.is_some_and(|s| (200..300).contains(&s)) {
            WebhookOutcome::Delivered
        } else if attempt as u32 >= self.config.webhook_max_attempts {
            WebhookOutcome::GaveUp
        } else {
            let base = self.config.webhook_backoff().whole_seconds();
            let delay = base.saturating_mul(1 << (attempt - 1).clamp(0, 20)).min(MAX_BACKOFF_SECONDS);
            WebhookOutcome::RetryAt(self.clock.unix() + delay)
        };
        if outcome != WebhookOutcome::Delivered {
            tracing::warn!(host = %hook.address.host, kind = %event.kind, attempt, ?status, ?error, ?outcome, "webhook delivery failed");
        }
        self.store.record_webhook_attempt(event, status, error.as_deref(), self.clock.unix(), outcome).await
    }
}

/// The error and its causes on one line (reqwest's top error says little).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_over_time_dot_body() {
        // Expected value from `openssl dgst -sha256 -hmac Jefe` over "1700000000.{"a":1}".
        let value = signature(b"Jefe", 1_700_000_000, r#"{"a":1}"#);
        assert_eq!(value, "t=1700000000,v1=fa5f6481efc59da48b19c9dc10196c9953e5651f8304b3a318b6b87d70272e0a");
        assert_ne!(signature(b"Jefe", 1_700_000_001, r#"{"a":1}"#), value);
    }
}
