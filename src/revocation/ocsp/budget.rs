//! How many answers the responder signs for single requests: a token
//! bucket that refills at a steady rate and holds one second's worth, so an
//! unauthenticated flood of nonces or strange serials costs a bounded
//! number of signatures whatever its rate.

use std::sync::Mutex;
use std::time::Instant;

#[derive(Debug)]
pub struct SigningBudget {
    per_second: f64,
    /// Signatures left, and when that was last brought up to date.
    left: Mutex<(f64, Instant)>,
}

impl SigningBudget {
    pub fn new(per_second: u32) -> Self {
        let per_second = f64::from(per_second.max(1));
        Self { per_second, left: Mutex::new((per_second, Instant::now())) }
    }

    /// Takes one signature from the budget, if one is left.
    pub fn try_take(&self) -> bool {
        self.try_take_at(Instant::now())
    }

    fn try_take_at(&self, now: Instant) -> bool {
        let mut left = self.left.lock().unwrap_or_else(|p| p.into_inner());
        let (tokens, since) = *left;
        let refilled =
            (tokens + now.saturating_duration_since(since).as_secs_f64() * self.per_second).min(self.per_second);
        let taken = refilled >= 1.0;
        *left = (if taken { refilled - 1.0 } else { refilled }, now.max(since));
        taken
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_burst_is_bounded_and_the_budget_refills() {
        let budget = SigningBudget::new(10);
        let start = Instant::now();
        let burst = (0..100).filter(|_| budget.try_take_at(start)).count();
        assert_eq!(burst, 10);
        assert!(!budget.try_take_at(start + Duration::from_millis(50)));
        assert!(budget.try_take_at(start + Duration::from_millis(100)));
        // Idle for long, it holds one second's worth, not more.
        let later = start + Duration::from_secs(60);
        assert_eq!((0..100).filter(|_| budget.try_take_at(later)).count(), 10);
    }
}
