//! Retransmission timeout estimation per RFC 6298, in microseconds.

use crate::time::Duration;

/// Smoothed RTT, variance and the resulting RTO, with exponential backoff.
#[derive(Clone, Copy, Debug)]
pub struct RttEstimator {
    srtt_us: Option<u64>,
    rttvar_us: u64,
    rto: Duration,
    min_rto: Duration,
    max_rto: Duration,
    backoff: u32,
}

impl RttEstimator {
    /// Before any sample the RTO is `initial` (RFC 6298 2.1).
    pub fn new(initial: Duration, min_rto: Duration, max_rto: Duration) -> Self {
        RttEstimator {
            srtt_us: None,
            rttvar_us: 0,
            rto: initial.max(min_rto).min(max_rto),
            min_rto,
            max_rto,
            backoff: 0,
        }
    }

    /// Feeds one RTT measurement (RFC 6298 2.2/2.3; G = 1 µs) and clears backoff.
    pub fn sample(&mut self, rtt: Duration) {
        let r = rtt.total_micros().max(1);
        match self.srtt_us {
            None => {
                self.srtt_us = Some(r);
                self.rttvar_us = r / 2;
            }
            Some(srtt) => {
                let err = srtt.abs_diff(r);
                self.rttvar_us = (3 * self.rttvar_us + err) / 4;
                self.srtt_us = Some((7 * srtt + r) / 8);
            }
        }
        let srtt = self.srtt_us.unwrap_or(r);
        let rto = Duration::from_micros(srtt + (4 * self.rttvar_us).max(1));
        self.rto = rto.max(self.min_rto).min(self.max_rto);
        self.backoff = 0;
    }

    /// The current timeout including backoff.
    pub fn rto(&self) -> Duration {
        self.rto.saturating_mul(1u64 << self.backoff.min(16)).min(self.max_rto)
    }

    /// [`Self::rto`] plus `slop`, except for the initial timeout before any
    /// sample or backoff (FreeBSD's `rexmit_slop`, kept out of the estimator
    /// so an idle connection stays small; RFC 6298 2.4 allows a larger RTO).
    pub fn rto_with_slop(&self, slop: Duration) -> Duration {
        if slop == Duration::ZERO || (self.srtt_us.is_none() && self.backoff == 0) {
            return self.rto();
        }
        (self.rto.saturating_mul(1u64 << self.backoff.min(16)) + slop).min(self.max_rto)
    }

    /// Doubles the timeout after an expiry (RFC 6298 5.5).
    pub fn back_off(&mut self) {
        self.backoff = self.backoff.saturating_add(1);
    }

    /// Consecutive backoffs.
    pub fn backoffs(&self) -> u32 {
        self.backoff
    }

    /// Smoothed RTT, once measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt_us.map(Duration::from_micros)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_rfc6298_with_min_and_backoff() {
        let mut e = RttEstimator::new(Duration::from_secs(1), Duration::from_millis(1), Duration::from_secs(60));
        assert_eq!(e.rto(), Duration::from_secs(1));
        e.sample(Duration::from_micros(100));
        // srtt = 100, rttvar = 50 -> rto = 300 us, clamped to 1 ms.
        assert_eq!(e.rto(), Duration::from_millis(1));
        let mut e2 = RttEstimator::new(Duration::from_secs(1), Duration::from_millis(1), Duration::from_secs(60));
        e2.sample(Duration::from_millis(10));
        assert_eq!(e2.rto(), Duration::from_millis(30));
        e2.sample(Duration::from_millis(10));
        // rttvar = 3/4*5 = 3.75 ms; rto = 10 + 15 = 25 ms
        assert_eq!(e2.rto(), Duration::from_micros(25_000));
        e2.back_off();
        e2.back_off();
        assert_eq!(e2.rto(), Duration::from_micros(100_000));
        for _ in 0..40 {
            e2.back_off();
        }
        assert_eq!(e2.rto(), Duration::from_secs(60));
        e2.sample(Duration::from_millis(10));
        assert_eq!(e2.backoffs(), 0);
    }

    #[test]
    fn slop_is_added_after_a_sample_or_backoff_only() {
        let slop = Duration::from_millis(200);
        let mut e = RttEstimator::new(Duration::from_secs(1), Duration::from_millis(30), Duration::from_secs(60));
        // The initial RTO is the configured one (FreeBSD: rexmit_initial).
        assert_eq!(e.rto_with_slop(slop), Duration::from_secs(1));
        // Backed off: 2 s + slop, as FreeBSD's second SYN at +2.2 s.
        e.back_off();
        assert_eq!(e.rto_with_slop(slop), Duration::from_millis(2200));
        assert_eq!(e.rto(), Duration::from_secs(2), "RFC 6298 5.5 doubling without slop");
        e.sample(Duration::from_millis(10));
        // srtt 10 ms, rttvar 5 ms: 30 ms (min 30) + 200 ms.
        assert_eq!(e.rto_with_slop(slop), Duration::from_millis(230));
        for _ in 0..40 {
            e.back_off();
        }
        assert_eq!(e.rto_with_slop(slop), Duration::from_secs(60), "max_rto bounds the slop too");
    }
}
