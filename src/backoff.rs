//! Capped exponential backoff with full jitter (AWS architecture blog's
//! "full jitter": sleep a random time between zero and the capped exponential).

use std::time::Duration;

/// Delays for successive retries: attempt n waits uniform(0, min(max, base·2ⁿ)).
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
}

impl Backoff {
    /// Start a fresh sequence.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self {
            base,
            max: max.max(base),
            attempt: 0,
        }
    }

    /// The delay before the next retry.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let millis = ceiling.as_millis().max(1) as u64;
        // Never zero, so a tight failure loop still yields the CPU.
        Duration::from_millis(rand::random_range(1..=millis))
    }

    /// The upper bound for the next delay (without jitter).
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Forget past failures after a success.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// Retry timing for calls to the buildd server.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// How long the server may stay unreachable before --once/--until-idle give up.
    pub budget: Duration,
}

/// `d` in whole milliseconds, for messages ("334ms", not "334ms 89us 132ns").
pub fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_then_cap_and_stay_within_bounds() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let ceilings: Vec<_> = (0..6)
            .map(|_| {
                let c = b.ceiling();
                let d = b.next_delay();
                assert!(d <= c && d > Duration::ZERO);
                c.as_millis()
            })
            .collect();
        assert_eq!(ceilings, vec![100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_millis(100));
    }

    #[test]
    fn huge_attempt_counts_do_not_overflow() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        for _ in 0..200 {
            b.next_delay();
        }
        assert_eq!(b.ceiling(), Duration::from_secs(60));
    }
}
