//! When to renew, and how long to wait after a failure.
//!
//! RFC 9773 §4.2: renew at a uniformly random time inside the CA's
//! suggested window (at once if that time has passed), and ask again after
//! the server's Retry-After. Without ARI, renew at two thirds of the
//! lifetime. After a failure, back off exponentially with jitter, but never
//! sleep past the certificate's expiry without one more try.

use std::time::Duration;

use rand::Rng;
use time::OffsetDateTime;

use super::certificate::CertificateChain;

/// The CA's Retry-After is honoured within these bounds, so a server that
/// says "0" cannot make the agent spin and one that says "a year" cannot
/// make it miss a revocation.
const MIN_RECHECK: Duration = Duration::from_secs(60);
const MAX_RECHECK: Duration = Duration::from_secs(24 * 3600);

/// Where a renewal time came from (logged, and a label for operators).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The CA's renewal information (RFC 9773).
    Ari,
    /// Two thirds of the lifetime, when the CA offers no ARI.
    Lifetime,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ari => "ari",
            Self::Lifetime => "lifetime",
        }
    }
}

/// The plan for one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub window_start: OffsetDateTime,
    pub window_end: OffsetDateTime,
    /// The chosen moment inside the window.
    pub renew_at: OffsetDateTime,
    /// When to ask the CA for its window again (ARI only).
    pub recheck_at: Option<OffsetDateTime>,
    pub source: Source,
}

impl Schedule {
    /// From the CA's suggested window; `None` when the window is malformed.
    pub fn from_ari(
        start: OffsetDateTime,
        end: OffsetDateTime,
        retry_after: Duration,
        now: OffsetDateTime,
        rng: &mut impl Rng,
    ) -> Option<Self> {
        if end < start {
            return None;
        }
        let span = (end - start).whole_milliseconds().max(0) as u64;
        let offset = if span == 0 { 0 } else { rng.random_range(0..=span) };
        let renew_at = start + time::Duration::milliseconds(offset as i64);
        let recheck = retry_after.clamp(MIN_RECHECK, MAX_RECHECK);
        Some(Self {
            window_start: start,
            window_end: end,
            renew_at,
            recheck_at: Some(now + recheck),
            source: Source::Ari,
        })
    }

    /// Two thirds into the certificate's life, the usual rule without ARI.
    pub fn from_lifetime(certificate: &CertificateChain) -> Self {
        let at = certificate.not_before + certificate.lifetime() * 2 / 3;
        Self { window_start: at, window_end: at, renew_at: at, recheck_at: None, source: Source::Lifetime }
    }

    /// For `--once` (cron): due once the window has opened.
    pub fn is_due_for_once(&self, now: OffsetDateTime) -> bool {
        now >= self.window_start
    }

    /// What to do next: renew now, or sleep until the renewal time or the
    /// next ARI check, whichever comes first.
    pub fn next_step(&self, now: OffsetDateTime) -> Step {
        if self.renew_at <= now {
            return Step::RenewNow;
        }
        match self.recheck_at {
            Some(recheck) if recheck < self.renew_at => Step::Recheck(until(now, recheck)),
            _ => Step::RenewAfter(until(now, self.renew_at)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    RenewNow,
    RenewAfter(Duration),
    Recheck(Duration),
}

/// The wait from `now` to `then`, zero if it has passed.
pub fn until(now: OffsetDateTime, then: OffsetDateTime) -> Duration {
    Duration::try_from(then - now).unwrap_or(Duration::ZERO)
}

/// Exponential backoff with jitter between `min` and `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(300))
    }
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self { min, max, failures: 0 }
    }

    /// The wait before the next attempt: min·2ⁿ capped at max, jittered
    /// down to no less than half (so clients that failed together spread
    /// out), and shortened to half the time left when the certificate would
    /// otherwise expire before the next try.
    pub fn next_delay(&mut self, time_left: Option<Duration>, rng: &mut impl Rng) -> Duration {
        let factor = 2u32.saturating_pow(self.failures.min(20));
        self.failures = self.failures.saturating_add(1);
        let ceiling = self.min.saturating_mul(factor).min(self.max);
        let floor = (ceiling / 2).max(self.min.min(ceiling));
        let mut delay = if ceiling > floor { rng.random_range(floor..=ceiling) } else { ceiling };
        if let Some(left) = time_left.filter(|left| !left.is_zero()) {
            delay = delay.min((left / 2).max(self.min));
        }
        delay
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn ari_picks_a_time_inside_the_window_and_rechecks_after_retry_after() {
        let mut rng = StdRng::seed_from_u64(7);
        let mut picks = Vec::new();
        for _ in 0..200 {
            let s = Schedule::from_ari(at(100), at(200), Duration::from_secs(3600), at(0), &mut rng).unwrap();
            assert!(s.renew_at >= at(100) && s.renew_at <= at(200), "{s:?}");
            assert_eq!(s.recheck_at, Some(at(3600)));
            assert_eq!(s.next_step(at(0)), Step::RenewAfter(until(at(0), s.renew_at)));
            picks.push(s.renew_at);
        }
        // Spread over the window, not one fixed point.
        assert!(picks.iter().any(|p| *p < at(130)) && picks.iter().any(|p| *p > at(170)));
    }

    #[test]
    fn ari_honours_retry_after_within_bounds_and_renews_at_once_when_late() {
        let mut rng = StdRng::seed_from_u64(1);
        let s = Schedule::from_ari(at(10_000), at(20_000), Duration::from_secs(120), at(0), &mut rng).unwrap();
        assert_eq!(s.next_step(at(0)), Step::Recheck(Duration::from_secs(120)));
        let spinning = Schedule::from_ari(at(10_000), at(20_000), Duration::ZERO, at(0), &mut rng).unwrap();
        assert_eq!(spinning.recheck_at, Some(at(60)));
        let past = Schedule::from_ari(at(-50), at(-10), Duration::from_secs(3600), at(0), &mut rng).unwrap();
        assert_eq!(past.next_step(at(0)), Step::RenewNow);
        assert!(Schedule::from_ari(at(20), at(10), Duration::ZERO, at(0), &mut rng).is_none());
    }

    #[test]
    fn once_is_due_when_the_window_opens() {
        let mut rng = StdRng::seed_from_u64(3);
        let s = Schedule::from_ari(at(100), at(200), Duration::from_secs(60), at(0), &mut rng).unwrap();
        assert!(!s.is_due_for_once(at(99)));
        assert!(s.is_due_for_once(at(100)));
    }

    #[test]
    fn backoff_grows_with_jitter_up_to_the_cap() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut backoff = Backoff::default();
        let delays: Vec<_> = (0..12).map(|_| backoff.next_delay(None, &mut rng)).collect();
        assert_eq!(delays[0], Duration::from_secs(1));
        for (n, d) in delays.iter().enumerate() {
            let ceiling = Duration::from_secs(1 << n.min(9)).min(Duration::from_secs(300));
            assert!(*d <= ceiling && *d >= ceiling / 2, "attempt {n}: {d:?}");
        }
        assert!(delays[11] >= Duration::from_secs(150));
    }

    #[test]
    fn backoff_never_waits_past_expiry() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut backoff = Backoff::default();
        for _ in 0..10 {
            backoff.next_delay(None, &mut rng);
        }
        assert_eq!(backoff.next_delay(Some(Duration::from_secs(40)), &mut rng), Duration::from_secs(20));
        assert_eq!(backoff.next_delay(Some(Duration::from_millis(500)), &mut rng), Duration::from_secs(1));
    }
}
