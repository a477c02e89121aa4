//! Rate limits on ACKs the stack generates in answer to segments it rejects
//! (RFC 5961 section 7): challenge ACKs (RFC 5961 3.2, 4.2, 5.2) and ACKs
//! to unacceptable segments (RFC 9293 3.10.7.4 first check, RFC 7323 PAWS).
//!
//! Two layers, as in Linux:
//! - [`ConnLimiter`]: per connection, at most `burst` such ACKs per
//!   `interval` (Linux `tcp_invalid_ratelimit`, FreeBSD `ack_war_cnt`).
//!   Stops a broken middlebox or a looping peer from driving an endless ACK
//!   exchange on one connection.
//! - [`ChallengeBudget`]: engine-wide, challenge ACKs per second. The budget
//!   of each second is drawn at random from `[limit/2, limit/2 + limit)`
//!   (Linux after CVE-2016-5696), so an off-path attacker cannot use a fixed
//!   global counter as a side channel to learn which 4-tuple is in use. The
//!   randomness is a keyed hash of the engine's secret and the second number:
//!   deterministic for a given secret (tests), unpredictable without it.

use std::hash::{Hash, Hasher};

use crate::time::{Duration, Instant};

/// Per-connection limit: at most `burst` generated ACKs per `interval`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ConnLimiter {
    /// Start of the current interval, microseconds.
    start_us: u64,
    /// ACKs allowed in the current interval so far.
    count: u32,
}

impl ConnLimiter {
    /// Whether one more ACK may go out at `now`; counts it if so.
    /// `burst` ACKs per `interval` (a zero interval means no limit).
    pub fn allow(&mut self, now: Instant, interval: Duration, burst: u32) -> bool {
        let now_us = now.total_micros();
        let iv = interval.total_micros();
        if iv == 0 {
            return true;
        }
        if self.count == 0 || now_us.saturating_sub(self.start_us) >= iv {
            self.start_us = now_us;
            self.count = 0;
        }
        if self.count >= burst {
            return false;
        }
        self.count += 1;
        true
    }
}

/// The engine-wide budget of challenge ACKs per second, randomised.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChallengeBudget {
    secret: u64,
    /// The second (since the origin) `left` belongs to; `u64::MAX` = none yet.
    second: u64,
    /// Challenge ACKs still allowed in `second`.
    left: u32,
}

impl ChallengeBudget {
    /// A budget drawing its randomness from `secret`.
    pub fn new(secret: u64) -> ChallengeBudget {
        ChallengeBudget { secret, second: u64::MAX, left: 0 }
    }

    /// The budget of second `second` for a mean of `limit` per second:
    /// uniform-ish in `[limit/2, limit/2 + limit)`; `limit` 0 gives 0.
    pub fn budget_of(&self, second: u64, limit: u32) -> u32 {
        if limit == 0 {
            return 0;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (self.secret ^ 0xC4A1_1E9E_AC4B_0D6E).hash(&mut h);
        second.hash(&mut h);
        let r = (h.finish() % u64::from(limit)) as u32;
        limit.div_ceil(2).saturating_add(r)
    }

    /// Whether one more challenge ACK may go out at `now` under a mean
    /// budget of `limit` per second (`u32::MAX`: unlimited); counts it if so.
    pub fn allow(&mut self, now: Instant, limit: u32) -> bool {
        if limit == u32::MAX {
            return true;
        }
        let second = now.total_micros() / 1_000_000;
        if second != self.second {
            self.second = second;
            self.left = self.budget_of(second, limit);
        }
        if self.left == 0 {
            return false;
        }
        self.left -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_limiter_allows_burst_per_interval() {
        let mut l = ConnLimiter::default();
        let iv = Duration::from_millis(500);
        let t0 = Instant::from_millis(10);
        assert_eq!((0..10).filter(|_| l.allow(t0, iv, 3)).count(), 3);
        assert!(!l.allow(Instant::from_millis(509), iv, 3));
        assert!(l.allow(Instant::from_millis(510), iv, 3), "a new interval starts after 500 ms");
        assert!(l.allow(Instant::from_millis(1), Duration::ZERO, 0), "zero interval: unlimited");
    }

    #[test]
    fn global_budget_is_random_within_bounds_and_refills_each_second() {
        let b = ChallengeBudget::new(1);
        let budgets: Vec<u32> = (0..50).map(|s| b.budget_of(s, 1000)).collect();
        assert!(budgets.iter().all(|&n| (500..1500).contains(&n)), "{budgets:?}");
        assert!(budgets.windows(2).any(|w| w[0] != w[1]), "varies per second");
        let other = ChallengeBudget::new(2);
        assert_ne!(budgets, (0..50).map(|s| other.budget_of(s, 1000)).collect::<Vec<_>>(), "varies per secret");

        let mut b = ChallengeBudget::new(7);
        let first = b.budget_of(0, 10);
        let n = (0..100).filter(|_| b.allow(Instant::from_millis(5), 10)).count() as u32;
        assert_eq!(n, first);
        assert!(b.allow(Instant::from_millis(1000), 10), "refilled in the next second");
        assert!(!ChallengeBudget::new(3).allow(Instant::ZERO, 0));
        assert!(ChallengeBudget::new(3).allow(Instant::ZERO, u32::MAX));
    }
}
