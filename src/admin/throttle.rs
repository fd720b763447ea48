//! Slowing a source that keeps presenting bad tokens, without slowing
//! anyone who holds a good one.
//!
//! After [`FAILURES`] failed authentications within [`WINDOW`] seconds, a
//! source is blocked for [`BLOCK`] seconds after its latest failure: its
//! requests answer 429 *without their token being looked up*, so a blocked
//! guesser learns nothing, valid token or not (the answer does not depend
//! on it), and costs no database query.
//!
//! A good token must still pass from a blocked source (a client behind the
//! same NAT as the guesser). Its holder is recognised without the lookup
//! that would make the block an oracle: this node remembers the hashes of
//! tokens that authenticated on it (at most [`MAX_KNOWN`]); a request
//! presenting one of those is checked as usual. Only someone who already
//! holds a working token can take that path. A token never used on this
//! node (new, or after a restart) waits out the block like any other.
//!
//! Memory is bounded: at most [`MAX_SOURCES`] sources are tracked; when the
//! table is full, new sources share one entry ([`Source::Others`]), which a
//! distributed flood blocks quickly while known tokens still pass.
//! Times are the injected clock's Unix seconds.

use std::collections::HashMap;
use std::sync::Mutex;

use super::source::Source;

/// Failed authentications within [`WINDOW`] that block a source.
pub const FAILURES: u32 = 20;
/// Seconds over which failures are counted.
pub const WINDOW: i64 = 60;
/// Seconds a source stays blocked after its latest failure.
pub const BLOCK: i64 = 60;
/// Sources tracked at once.
const MAX_SOURCES: usize = 4096;
/// Token hashes remembered as having authenticated here.
const MAX_KNOWN: usize = 1024;

type TokenHash = [u8; 32];

#[derive(Debug, Default)]
pub struct Throttle {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    sources: HashMap<Source, Failures>,
    /// Hashes of tokens that authenticated here, with when they last did.
    known: HashMap<TokenHash, i64>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    window_start: i64,
    count: u32,
    blocked_until: i64,
}

impl Failures {
    fn is_stale(&self, now: i64) -> bool {
        now >= self.window_start + WINDOW && now >= self.blocked_until
    }
}

/// What a failure did to its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Counted,
    /// This failure blocked the source (the one to log).
    Blocked,
}

impl Throttle {
    /// Seconds the source must wait before its token is looked up, or None
    /// when it may go on: the source is not blocked, or the token is known
    /// to have authenticated here.
    pub fn wait(&self, source: Source, token_hash: Option<&[u8]>, now: i64) -> Option<u64> {
        let state = self.lock();
        let blocked_until = state.sources.get(&state.tracked(source))?.blocked_until;
        if blocked_until <= now || token_hash.and_then(as_hash).is_some_and(|h| state.known.contains_key(&h)) {
            return None;
        }
        u64::try_from(blocked_until - now).ok()
    }

    /// Counts a failed authentication; a token that failed is no longer
    /// known (it was revoked, or expired).
    pub fn failed(&self, source: Source, token_hash: Option<&[u8]>, now: i64) -> Verdict {
        let mut state = self.lock();
        if let Some(hash) = token_hash.and_then(as_hash) {
            state.known.remove(&hash);
        }
        let key = state.tracked(source);
        let entry =
            state.sources.entry(key).or_insert(Failures { window_start: now, count: 0, blocked_until: i64::MIN });
        if now >= entry.window_start + WINDOW {
            *entry = Failures { window_start: now, count: 0, ..*entry };
        }
        entry.count = entry.count.saturating_add(1);
        if entry.count < FAILURES {
            return Verdict::Counted;
        }
        let was_blocked = entry.blocked_until > now;
        entry.blocked_until = now + BLOCK;
        if was_blocked { Verdict::Counted } else { Verdict::Blocked }
    }

    /// Remembers a token that authenticated.
    pub fn succeeded(&self, token_hash: &[u8], now: i64) {
        let Some(hash) = as_hash(token_hash) else { return };
        let mut state = self.lock();
        if state.known.len() >= MAX_KNOWN && !state.known.contains_key(&hash) {
            let oldest = state.known.iter().min_by_key(|(_, at)| **at).map(|(h, _)| *h);
            if let Some(oldest) = oldest {
                state.known.remove(&oldest);
            }
        }
        state.known.insert(hash, now);
    }

    /// Forgets sources whose window and block are over.
    pub fn prune(&self, now: i64) {
        self.lock().sources.retain(|_, failures| !failures.is_stale(now));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state stays consistent at every step, so a panic elsewhere
        // while it was held leaves nothing to repair.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl State {
    /// The entry a source counts under: its own, or the shared one when
    /// the table is full.
    fn tracked(&self, source: Source) -> Source {
        if self.sources.len() < MAX_SOURCES || self.sources.contains_key(&source) { source } else { Source::Others }
    }
}

fn as_hash(bytes: &[u8]) -> Option<TokenHash> {
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(n: u32) -> Source {
        Source::from_ip(std::net::IpAddr::V4(n.into()))
    }

    #[test]
    fn a_source_is_blocked_after_its_failures_and_known_tokens_still_pass() {
        let throttle = Throttle::default();
        let (guesser, neighbour) = (source(1), source(2));
        let known = [7u8; 32];
        throttle.succeeded(&known, 0);
        for i in 1..FAILURES {
            assert_eq!(throttle.failed(guesser, Some(&[9u8; 32]), i64::from(i)), Verdict::Counted);
            assert_eq!(throttle.wait(guesser, None, i64::from(i)), None);
        }
        assert_eq!(throttle.failed(guesser, None, 30), Verdict::Blocked);
        assert_eq!(throttle.failed(guesser, None, 31), Verdict::Counted, "logged once per block");
        assert_eq!(throttle.wait(guesser, Some(&[9u8; 32]), 31), Some(60));
        assert_eq!(throttle.wait(guesser, None, 31), Some(60));
        assert_eq!(throttle.wait(guesser, Some(&known), 31), None, "a known token is looked up");
        assert_eq!(throttle.wait(neighbour, Some(&[9u8; 32]), 31), None, "other sources are not slowed");
        assert_eq!(throttle.wait(guesser, None, 31 + BLOCK), None, "the block ends");
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let throttle = Throttle::default();
        let spacing = WINDOW / i64::from(FAILURES) + 1;
        for i in 0..i64::from(FAILURES) * 2 {
            assert_eq!(throttle.failed(source(1), None, i * spacing), Verdict::Counted);
            assert_eq!(throttle.wait(source(1), None, i * spacing), None);
        }
    }

    #[test]
    fn a_token_that_fails_is_forgotten() {
        let throttle = Throttle::default();
        let token = [7u8; 32];
        throttle.succeeded(&token, 0);
        for i in 0..FAILURES {
            throttle.failed(source(1), Some(&token), i64::from(i));
        }
        assert!(throttle.wait(source(1), Some(&token), 30).is_some());
    }

    #[test]
    fn the_tables_are_bounded() {
        let throttle = Throttle::default();
        for n in 0..(MAX_SOURCES as u32 + 100) {
            throttle.failed(source(n), None, 0);
        }
        for n in 0..(MAX_KNOWN as u32 + 100) {
            let mut hash = [0u8; 32];
            hash[..4].copy_from_slice(&n.to_be_bytes());
            throttle.succeeded(&hash, i64::from(n));
        }
        let state = throttle.lock();
        assert_eq!(state.sources.len(), MAX_SOURCES + 1, "the overflow shares one entry");
        assert_eq!(state.sources[&Source::Others].count, 100);
        assert_eq!(state.known.len(), MAX_KNOWN);
        drop(state);
        throttle.prune(WINDOW);
        assert!(throttle.lock().sources.is_empty());
    }
}
