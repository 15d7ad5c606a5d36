//! Token buckets for rate limits, driven by the caller's clock.
//!
//! A bucket holds up to `burst` tokens and gains `per_second` tokens each
//! second. Every allowed action takes one token, so a client may act
//! `burst` times at once and `per_second` times a second after that.
//! Tokens are counted in millionths with integer arithmetic, so a bucket
//! fed the same instants always makes the same decisions.

use crate::time::Instant;

/// Millionths of a token in one token.
const UNIT: u64 = 1_000_000;

/// A rate limit: a sustained rate and a burst allowance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RateLimit {
    /// Tokens gained per second.
    pub per_second: u32,
    /// Tokens a full bucket holds: the most actions allowed at once.
    pub burst: u32,
}

impl RateLimit {
    pub const fn new(per_second: u32, burst: u32) -> RateLimit {
        RateLimit { per_second, burst }
    }
}

/// One bucket of a [`RateLimit`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBucket {
    /// Millionths of a token available.
    level: u64,
    capacity: u64,
    /// Millionths of a token gained per microsecond, which equals tokens
    /// gained per second.
    refill_per_micro: u64,
    last: Instant,
}

impl TokenBucket {
    /// Creates a full bucket at `now`.
    pub fn new(limit: RateLimit, now: Instant) -> TokenBucket {
        let capacity = u64::from(limit.burst) * UNIT;
        TokenBucket {
            level: capacity,
            capacity,
            refill_per_micro: u64::from(limit.per_second),
            last: now,
        }
    }

    /// Takes one token if one is available at `now` and returns whether it
    /// did. An instant earlier than one seen before counts as that one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.level >= UNIT {
            self.level -= UNIT;
            true
        } else {
            false
        }
    }

    /// Returns whether the bucket has refilled completely by `now`, so that
    /// forgetting it changes no decision.
    pub fn is_full(&self, now: Instant) -> bool {
        let mut copy = self.clone();
        copy.refill(now);
        copy.level >= copy.capacity
    }

    /// Returns the whole tokens available at `now`.
    pub fn available(&self, now: Instant) -> u64 {
        let mut copy = self.clone();
        copy.refill(now);
        copy.level / UNIT
    }

    fn refill(&mut self, now: Instant) {
        if now <= self.last {
            return;
        }
        let elapsed = (now - self.last).as_micros();
        let gained = u64::try_from(elapsed)
            .unwrap_or(u64::MAX)
            .saturating_mul(self.refill_per_micro);
        self.level = self.level.saturating_add(gained).min(self.capacity);
        self.last = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at_millis(millis: u64) -> Instant {
        Instant::from_millis(millis)
    }

    #[test]
    fn bucket_allows_burst_then_rejects() {
        let mut bucket = TokenBucket::new(RateLimit::new(10, 3), Instant::ZERO);
        assert!(bucket.try_take(Instant::ZERO));
        assert!(bucket.try_take(Instant::ZERO));
        assert!(bucket.try_take(Instant::ZERO));
        assert!(!bucket.try_take(Instant::ZERO));
    }

    #[test]
    fn bucket_refills_at_rate() {
        let mut bucket = TokenBucket::new(RateLimit::new(10, 1), Instant::ZERO);
        assert!(bucket.try_take(Instant::ZERO));
        // One token every 100 ms at 10 per second.
        assert!(!bucket.try_take(at_millis(99)));
        assert!(bucket.try_take(at_millis(100)));
        assert!(!bucket.try_take(at_millis(150)));
        assert!(bucket.try_take(at_millis(200)));
    }

    #[test]
    fn bucket_never_exceeds_burst() {
        let mut bucket = TokenBucket::new(RateLimit::new(1000, 2), Instant::ZERO);
        assert_eq!(bucket.available(at_millis(60_000)), 2);
        assert!(bucket.try_take(at_millis(60_000)));
        assert!(bucket.try_take(at_millis(60_000)));
        assert!(!bucket.try_take(at_millis(60_000)));
    }

    #[test]
    fn bucket_sustains_rate_over_time() {
        let mut bucket = TokenBucket::new(RateLimit::new(5, 5), Instant::ZERO);
        // One attempt every millisecond for ten seconds: the burst, then
        // five a second.
        let allowed = (0..10_000)
            .filter(|millis| bucket.try_take(at_millis(*millis)))
            .count();
        assert_eq!(allowed, 5 + 5 * 10 - 1);
    }

    #[test]
    fn bucket_ignores_time_going_backwards() {
        let mut bucket = TokenBucket::new(RateLimit::new(1, 1), at_millis(1000));
        assert!(bucket.try_take(at_millis(1000)));
        assert!(!bucket.try_take(at_millis(10)));
        assert!(bucket.try_take(at_millis(2000)));
    }

    #[test]
    fn bucket_full_after_idle() {
        let mut bucket = TokenBucket::new(RateLimit::new(2, 4), Instant::ZERO);
        assert!(bucket.is_full(Instant::ZERO));
        assert!(bucket.try_take(Instant::ZERO));
        assert!(!bucket.is_full(at_millis(499)));
        assert!(bucket.is_full(at_millis(500)));
    }

    #[test]
    fn zero_burst_rejects_everything() {
        let mut bucket = TokenBucket::new(RateLimit::new(100, 0), Instant::ZERO);
        assert!(!bucket.try_take(at_millis(10_000)));
    }
}
