//! The per-address limit on connection attempts.
//!
//! Each client address has a token bucket; an attempt with no token left
//! is refused before quinn starts a handshake for it, so an address that
//! floods the server with Initial packets costs one map lookup per packet
//! and no TLS state. IPv6 addresses share a bucket per /64 prefix, because
//! one host usually controls a whole /64. Buckets that have refilled are
//! forgotten at each prune, so the map holds only addresses seen recently.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use voicemcu_core::rate_limit::{RateLimit, TokenBucket};
use voicemcu_core::time::Instant;

/// How often buckets that have refilled are forgotten.
pub const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Addresses tracked at most; reaching it forces a prune before the
/// interval is up.
pub const MAX_TRACKED_ADDRESSES: usize = 100_000;

/// The key an address is limited under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum AddressKey {
    V4([u8; 4]),
    /// The first 64 bits of an IPv6 address.
    V6Prefix([u8; 8]),
}

impl AddressKey {
    fn of(ip: IpAddr) -> AddressKey {
        match ip {
            IpAddr::V4(v4) => AddressKey::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey::V4(v4.octets()),
                None => {
                    let mut prefix = [0u8; 8];
                    prefix.copy_from_slice(&v6.octets()[..8]);
                    AddressKey::V6Prefix(prefix)
                }
            },
        }
    }
}

/// Token buckets of connection attempts, one per client address.
#[derive(Debug)]
pub struct ConnectionLimiter {
    limit: RateLimit,
    buckets: HashMap<AddressKey, TokenBucket>,
    next_prune: Instant,
    /// Attempts refused since the last call to [`take_refused`].
    ///
    /// [`take_refused`]: ConnectionLimiter::take_refused
    refused: u64,
}

impl ConnectionLimiter {
    pub fn new(limit: RateLimit, now: Instant) -> ConnectionLimiter {
        ConnectionLimiter {
            limit,
            buckets: HashMap::new(),
            next_prune: now + PRUNE_INTERVAL,
            refused: 0,
        }
    }

    /// Takes a token for an attempt from `ip` at `now` and returns whether
    /// the attempt may go ahead.
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if now >= self.next_prune || self.buckets.len() >= MAX_TRACKED_ADDRESSES {
            self.prune(now);
        }
        let limit = self.limit;
        let allowed = self
            .buckets
            .entry(AddressKey::of(ip))
            .or_insert_with(|| TokenBucket::new(limit, now))
            .try_take(now);
        if !allowed {
            self.refused += 1;
        }
        allowed
    }

    /// Forgets every bucket that has refilled by `now`.
    pub fn prune(&mut self, now: Instant) {
        self.buckets.retain(|_, bucket| !bucket.is_full(now));
        self.next_prune = now + PRUNE_INTERVAL;
    }

    /// Addresses (or IPv6 /64 prefixes) currently tracked.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    /// Returns and resets the count of refused attempts, for a log line
    /// that summarises them instead of one line per attempt.
    pub fn take_refused(&mut self) -> u64 {
        std::mem::take(&mut self.refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn limiter_refuses_burst_excess_per_address() {
        let mut limiter = ConnectionLimiter::new(RateLimit::new(1, 2), Instant::ZERO);
        assert!(limiter.allow(ip("127.0.0.1"), Instant::ZERO));
        assert!(limiter.allow(ip("127.0.0.1"), Instant::ZERO));
        assert!(!limiter.allow(ip("127.0.0.1"), Instant::ZERO));
        // Another address has its own bucket.
        assert!(limiter.allow(ip("127.0.0.2"), Instant::ZERO));
        assert_eq!(limiter.take_refused(), 1);
        assert_eq!(limiter.take_refused(), 0);
        assert!(limiter.allow(ip("127.0.0.1"), Instant::from_millis(1000)));
    }

    #[test]
    fn limiter_groups_ipv6_by_prefix() {
        let mut limiter = ConnectionLimiter::new(RateLimit::new(1, 1), Instant::ZERO);
        assert!(limiter.allow(ip("2001:db8:0:1::1"), Instant::ZERO));
        assert!(!limiter.allow(ip("2001:db8:0:1::2"), Instant::ZERO));
        assert!(limiter.allow(ip("2001:db8:0:2::1"), Instant::ZERO));
        // An IPv4-mapped address counts as the IPv4 address.
        assert!(limiter.allow(ip("127.0.0.1"), Instant::ZERO));
        assert!(!limiter.allow(ip("::ffff:127.0.0.1"), Instant::ZERO));
    }

    #[test]
    fn limiter_prunes_refilled_buckets() {
        let mut limiter = ConnectionLimiter::new(RateLimit::new(1, 5), Instant::ZERO);
        limiter.allow(ip("127.0.0.1"), Instant::ZERO);
        for _ in 0..5 {
            limiter.allow(ip("127.0.0.2"), Instant::ZERO);
        }
        assert_eq!(limiter.tracked(), 2);

        // After two seconds 127.0.0.1 is full again, 127.0.0.2 is not.
        limiter.prune(Instant::from_millis(2000));
        assert_eq!(limiter.tracked(), 1);
        limiter.prune(Instant::from_millis(5000));
        assert_eq!(limiter.tracked(), 0);
    }

    #[test]
    fn limiter_prunes_on_schedule() {
        let mut limiter = ConnectionLimiter::new(RateLimit::new(10, 1), Instant::ZERO);
        limiter.allow(ip("127.0.0.1"), Instant::ZERO);
        let later = Instant::ZERO + PRUNE_INTERVAL;
        limiter.allow(ip("127.0.0.2"), later);
        assert_eq!(limiter.tracked(), 1);
    }
}
