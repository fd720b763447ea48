//! Refused admin requests leave a trace: each is counted at once in
//! `tessera_admin_refusals_total{reason}`, and tallied in memory per
//! (source, reason, token name). A tally is written once its minute is over,
//! as one `auth.refused` audit event and one server log line with its count,
//! so a flood costs a row per key and minute, never a write per request.
//! Memory is bounded: when the table is full, new keys fold into one tally
//! per reason ([`Source::Others`]). The token's text is never kept; the
//! name of a known token is.
//!
//! A tally lives in this node's memory until it is written (at most a
//! minute and a few seconds, and at shutdown): a crash loses that minute's
//! tallies but not the metric.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::source::Source;
use crate::clock::{from_unix, rfc3339};
use crate::metrics::Metrics;
use crate::storage::{AdminStore, NewAuditEvent};

/// Seconds a tally gathers before it is written.
pub const PERIOD: i64 = 60;
/// Tallies kept at once (plus one per reason for the overflow).
const MAX_TALLIES: usize = 1024;

/// Why a request was refused, as metrics, audit and logs name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// No `Authorization: Bearer` header.
    NoToken,
    UnknownToken,
    RevokedToken,
    ExpiredToken,
    /// Answered 429 without looking the token up.
    Throttled,
    InsufficientScope,
    PolicyNotBound,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoToken => "no-token",
            Self::UnknownToken => "unknown-token",
            Self::RevokedToken => "revoked-token",
            Self::ExpiredToken => "expired-token",
            Self::Throttled => "throttled",
            Self::InsufficientScope => "insufficient-scope",
            Self::PolicyNotBound => "policy-not-bound",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    source: Source,
    reason: Reason,
    token: Option<String>,
}

#[derive(Debug, Clone, Copy)]
struct Tally {
    count: u64,
    first_at: i64,
    last_at: i64,
}

#[derive(Debug)]
pub struct Refusals {
    metrics: Arc<Metrics>,
    tallies: Mutex<HashMap<Key, Tally>>,
}

impl Refusals {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics, tallies: Mutex::default() }
    }

    /// Counts one refusal. `token` is the name of the token presented, when
    /// it is one Tessera knows.
    pub fn record(&self, source: Source, reason: Reason, token: Option<&str>, now: i64) {
        self.metrics.admin_refused(reason.as_str());
        let mut tallies = self.lock();
        let mut key = Key { source, reason, token: token.map(str::to_owned) };
        if tallies.len() >= MAX_TALLIES && !tallies.contains_key(&key) {
            key = Key { source: Source::Others, reason, token: None };
        }
        tallies
            .entry(key)
            .and_modify(|t| {
                t.count += 1;
                t.last_at = now;
            })
            .or_insert(Tally { count: 1, first_at: now, last_at: now });
    }

    /// Writes the tallies whose period is over.
    pub async fn flush_due(&self, store: &AdminStore, now: i64) {
        let due = self.take(|tally| tally.first_at + PERIOD <= now);
        self.write(store, due).await;
    }

    /// Writes every tally, as the server stops.
    pub async fn flush_all(&self, store: &AdminStore) {
        let all = self.take(|_| true);
        self.write(store, all).await;
    }

    fn take(&self, due: impl Fn(&Tally) -> bool) -> Vec<(Key, Tally)> {
        let mut tallies = self.lock();
        let keys: Vec<Key> = tallies.iter().filter(|(_, t)| due(t)).map(|(k, _)| k.clone()).collect();
        keys.into_iter().filter_map(|k| tallies.remove_entry(&k)).collect()
    }

    async fn write(&self, store: &AdminStore, due: Vec<(Key, Tally)>) {
        if due.is_empty() {
            return;
        }
        let events: Vec<NewAuditEvent> = due.iter().map(|(key, tally)| event(key, tally)).collect();
        if let Err(e) = store.record_audit_events(&events).await {
            tracing::warn!(error = %e, tallies = due.len(), "admin refusals not written to the audit log; will retry");
            let mut tallies = self.lock();
            for (key, tally) in due {
                tallies
                    .entry(key)
                    .and_modify(|t| {
                        t.count += tally.count;
                        t.first_at = tally.first_at;
                    })
                    .or_insert(tally);
            }
            return;
        }
        log(&due);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Tally>> {
        // Each step leaves the table consistent; a poisoned lock has nothing to repair.
        self.tallies.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// One warning per written tally, with the fields of its audit event.
fn log(written: &[(Key, Tally)]) {
    for (key, tally) in written {
        tracing::warn!(
            source = %key.source,
            reason = key.reason.as_str(),
            token = key.token.as_deref().unwrap_or("-"),
            count = tally.count,
            first_at = %rfc3339(from_unix(tally.first_at)),
            last_at = %rfc3339(from_unix(tally.last_at)),
            "admin API requests refused"
        );
    }
}

fn event(key: &Key, tally: &Tally) -> NewAuditEvent {
    let mut detail = serde_json::json!({
        "count": tally.count,
        "first_at": rfc3339(from_unix(tally.first_at)),
        "last_at": rfc3339(from_unix(tally.last_at)),
    });
    if let Some(token) = &key.token {
        detail["token"] = token.as_str().into();
    }
    NewAuditEvent {
        at: tally.last_at,
        actor: format!("source:{}", key.source),
        action: "auth.refused",
        target: key.reason.as_str().to_owned(),
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_tallied_per_key_and_bounded() {
        let refusals = Refusals::new(Arc::new(Metrics::default()));
        let source = |n: u32| Source::from_ip(std::net::IpAddr::V4(n.into()));
        for at in 0..200 {
            refusals.record(source(1), Reason::UnknownToken, None, at);
        }
        refusals.record(source(1), Reason::InsufficientScope, Some("ci"), 5);
        for n in 0..(MAX_TALLIES as u32 + 50) {
            refusals.record(source(n + 10), Reason::NoToken, None, 7);
        }
        let due = refusals.take(|t| t.first_at + PERIOD <= 60);
        assert_eq!(due.len(), 1, "only the tally whose minute is over");
        assert_eq!(
            (due[0].0.reason, due[0].1.count, due[0].1.first_at, due[0].1.last_at),
            (Reason::UnknownToken, 200, 0, 199)
        );
        let rest = refusals.take(|_| true);
        let others = rest.iter().find(|(k, _)| k.source == Source::Others).expect("overflow");
        assert_eq!(others.1.count, 52, "the keys past the cap share one tally");
        assert_eq!(due.len() + rest.len(), MAX_TALLIES + 1);
        assert!(refusals.take(|_| true).is_empty());
        let scoped = event(
            &Key { source: source(1), reason: Reason::InsufficientScope, token: Some("ci".into()) },
            &Tally { count: 3, first_at: 0, last_at: 9 },
        );
        assert_eq!((scoped.actor.as_str(), scoped.target.as_str()), ("source:0.0.0.1", "insufficient-scope"));
        assert_eq!((scoped.detail["count"].as_u64(), scoped.detail["token"].as_str()), (Some(3), Some("ci")));
    }

    /// Collects what a subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("not poisoned").extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_tally_is_logged_once_with_its_count() {
        let refusals = Refusals::new(Arc::new(Metrics::default()));
        let source = Source::from_ip("198.51.100.4".parse().expect("address"));
        for at in 0..150 {
            refusals.record(source, Reason::UnknownToken, None, at);
        }
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber =
            tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).without_time().finish();
        tracing::subscriber::with_default(subscriber, || log(&refusals.take(|_| true)));
        let text = String::from_utf8(captured.0.lock().expect("not poisoned").clone()).expect("utf-8");
        assert_eq!(text.lines().count(), 1, "{text}");
        for field in
            ["WARN", "admin API requests refused", "source=198.51.100.4", "reason=\"unknown-token\"", "count=150"]
        {
            assert!(text.contains(field), "{field} in {text}");
        }
    }
}
