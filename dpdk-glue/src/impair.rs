//! Fault injection at a port, netem-style: seeded loss, reordering and
//! delay of whole frames, applied to received and to transmitted mbufs.
//!
//! For testing a stack against a peer over a lossy, reordering path where
//! the kernel has no `sch_netem` (these VMs' kernels do not): impairing both
//! directions at zcstack's port is what `tc qdisc ... netem` on both ends of
//! the link would do. Semantics follow netem's: a frame is lost with
//! probability `loss`; otherwise it is delayed by `delay`, except that with
//! probability `reorder` it goes at once and so overtakes the delayed ones
//! (reordering needs a delay, as in netem). A dropped TX mbuf is freed like
//! one the NIC sent, so zero-copy completions stay exact.

use std::collections::VecDeque;

use zcstack::{Duration, Instant};

use crate::mbuf::Mbuf;

/// Impairment settings (all zero: off).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImpairConfig {
    /// Frames lost, parts per million.
    pub loss_ppm: u32,
    /// Frames sent at once instead of delayed, parts per million.
    pub reorder_ppm: u32,
    /// Delay of every other frame.
    pub delay_us: u64,
    /// RNG seed (each direction derives its own stream).
    pub seed: u64,
}

impl ImpairConfig {
    /// Whether any impairment is configured.
    pub fn is_on(&self) -> bool {
        self.loss_ppm > 0 || self.delay_us > 0
    }
}

/// What one direction's impairment did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImpairStats {
    /// Frames dropped.
    pub dropped: u64,
    /// Frames sent ahead of delayed ones.
    pub reordered: u64,
    /// Frames delayed.
    pub delayed: u64,
}

/// One direction's impairment: a seeded decision per frame and a delay line.
pub(crate) struct Impair {
    cfg: ImpairConfig,
    rng: u64,
    held: VecDeque<(Instant, Mbuf)>,
    pub(crate) stats: ImpairStats,
}

impl Impair {
    /// One direction; `stream` tells the directions' RNG streams apart.
    pub(crate) fn new(cfg: ImpairConfig, stream: u64) -> Impair {
        let rng = (cfg.seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1;
        Impair { cfg, rng, held: VecDeque::new(), stats: ImpairStats::default() }
    }

    fn chance(&mut self, ppm: u32) -> bool {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32;
        (r % 1_000_000) < u64::from(ppm)
    }

    /// Passes `m` at `now`: freed (lost), appended to `out`, or held.
    pub(crate) fn push(&mut self, now: Instant, m: Mbuf, out: &mut Vec<Mbuf>) {
        if self.chance(self.cfg.loss_ppm) {
            self.stats.dropped += 1;
            drop(m);
            return;
        }
        if self.cfg.delay_us == 0 {
            out.push(m);
        } else if self.chance(self.cfg.reorder_ppm) {
            self.stats.reordered += 1;
            out.push(m);
        } else {
            self.stats.delayed += 1;
            self.held.push_back((now + Duration::from_micros(self.cfg.delay_us), m));
        }
    }

    /// Appends the held frames due at `now` to `out`, in arrival order.
    pub(crate) fn release(&mut self, now: Instant, out: &mut Vec<Mbuf>) {
        while self.held.front().is_some_and(|(due, _)| *due <= now) {
            if let Some((_, m)) = self.held.pop_front() {
                out.push(m);
            }
        }
    }

    /// When the next held frame is due.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.held.front().map(|(due, _)| *due)
    }

    /// Frees every held frame (port closing).
    pub(crate) fn clear(&mut self) {
        self.held.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_follow_the_configured_rates_and_the_seed() {
        let cfg = ImpairConfig { loss_ppm: 30_000, reorder_ppm: 100_000, delay_us: 1000, seed: 5 };
        let mut a = Impair::new(cfg, 1);
        let n = 1_000_000;
        let lost = (0..n).filter(|_| a.chance(cfg.loss_ppm)).count();
        assert!((29_000..31_000).contains(&lost), "3% of {n}: {lost}");
        let (mut x, mut y) = (Impair::new(cfg, 1), Impair::new(cfg, 1));
        let same = (0..1000).all(|_| x.chance(500_000) == y.chance(500_000));
        assert!(same, "the same seed and stream decide the same");
        let mut z = Impair::new(cfg, 2);
        let mut x = Impair::new(cfg, 1);
        assert!((0..1000).any(|_| x.chance(500_000) != z.chance(500_000)), "directions differ");
        assert!(!ImpairConfig::default().is_on());
        assert!(Impair::new(cfg, 1).next_due().is_none());
    }
}
