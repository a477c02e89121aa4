//! Cycle accounting of the run loop's own stages (issue 13), beside the
//! engine's ([`zcstack::stages`]): RX and TX bursts, the completion drain,
//! the application callback, control/periodic work and the loop overhead,
//! each with calls, cycles and the longest call, plus a log2 histogram of
//! busy loop passes (where a tail shows as passes far above the median).
//!
//! Off by default (`[dpdk] stage_cycles = 0`): then nothing here is read or
//! written on the data path. On, each stage costs two TSC reads.

use zcstack::stages::StageCount;

/// A stage of the run loop (the engine's stages are counted by the engine).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoopStage {
    /// `rte_eth_rx_burst` (and software steering of the burst).
    RxBurst,
    /// `rte_eth_tx_burst` of queued frames (nested in the engine's
    /// `completions` and `tx` stages, which call the device).
    TxBurst,
    /// Completion ring drain: extbuf attachments the PMD released, matched
    /// to their frames (nested in the engine's `completions`).
    Drain,
    /// The application callback, less the engine stages it ran (events).
    App,
    /// Control socket service (`zcstat`) and other periodic work.
    Control,
    /// A busy pass less every stage above and the engine's: TSC reads,
    /// time conversion, branches, the closure calls.
    Overhead,
    /// From the end of an RX burst that brought frames to the end of the
    /// next TX burst that sent some: on a request/reply server, how long
    /// this stack holds a request before its answer is on the ring (its
    /// share of a round trip). Frames that need no answer (pure ACKs,
    /// dropped frames) keep the mark until whatever is sent next, so with
    /// other traffic it also counts waiting. A span across stages, not a
    /// share of the pass.
    Turnaround,
}

impl LoopStage {
    /// Every loop stage, in pass order.
    pub const ALL: [LoopStage; 7] = [
        LoopStage::RxBurst,
        LoopStage::TxBurst,
        LoopStage::Drain,
        LoopStage::App,
        LoopStage::Control,
        LoopStage::Overhead,
        LoopStage::Turnaround,
    ];

    /// A short lowercase name (for `zcstat`).
    pub fn name(self) -> &'static str {
        match self {
            LoopStage::RxBurst => "rx_burst",
            LoopStage::TxBurst => "tx_burst",
            LoopStage::Drain => "drain",
            LoopStage::App => "app",
            LoopStage::Control => "control",
            LoopStage::Overhead => "loop_overhead",
            LoopStage::Turnaround => "turnaround",
        }
    }

    /// Whether its cycles are already inside an engine stage or span
    /// several stages (so shares of a pass add up without it).
    pub fn nested_in_engine(self) -> bool {
        matches!(self, LoopStage::TxBurst | LoopStage::Drain | LoopStage::Turnaround)
    }
}

/// Buckets of the pass histogram: bucket `i` counts busy passes of
/// `2^i ..= 2^(i+1) - 1` cycles (bucket 0 also takes 0).
pub const PASS_BUCKETS: usize = 32;

/// Calls, cycles and longest call per loop stage, and the busy-pass histogram.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopStages {
    counts: [StageCount; LoopStage::ALL.len()],
    /// Busy passes and their cycles (the `calls`/`cycles`/`max` of a pass).
    pub passes: StageCount,
    /// Busy passes by log2 of their cycles.
    pub pass_log2: [u64; PASS_BUCKETS],
}

impl LoopStages {
    /// The count of `stage`.
    pub fn get(&self, stage: LoopStage) -> StageCount {
        self.counts[stage as usize]
    }

    /// Every stage with its count, in pass order.
    pub fn iter(&self) -> impl Iterator<Item = (LoopStage, StageCount)> + '_ {
        LoopStage::ALL.iter().map(|&s| (s, self.get(s)))
    }

    /// Charges one call of `cycles` to `stage`.
    #[inline]
    pub fn add(&mut self, stage: LoopStage, cycles: u64) {
        self.counts[stage as usize].add(cycles);
    }

    /// Replaces `stage`'s count (the device keeps its own).
    pub(crate) fn set(&mut self, stage: LoopStage, count: StageCount) {
        self.counts[stage as usize] = count;
    }

    /// Records one busy pass of `cycles`.
    #[inline]
    pub fn add_pass(&mut self, cycles: u64) {
        self.passes.add(cycles);
        let bucket = (u64::BITS - cycles.leading_zeros()).saturating_sub(1) as usize;
        self.pass_log2[bucket.min(PASS_BUCKETS - 1)] += 1;
    }

    /// The pass length (cycles, the bucket's upper bound `2^(i+1) - 1`)
    /// that `q` (0..=1) of the busy passes do not exceed; 0 with no passes.
    pub fn pass_quantile(&self, q: f64) -> u64 {
        let total: u64 = self.pass_log2.iter().sum();
        if total == 0 {
            return 0;
        }
        let want = ((total as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.pass_log2.iter().enumerate() {
            seen += n;
            if seen >= want {
                return (1u64 << (i + 1)) - 1;
            }
        }
        u64::MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passes_fall_in_log2_buckets_and_quantiles_read_them() {
        let mut s = LoopStages::default();
        assert_eq!(s.pass_quantile(0.5), 0);
        for c in [0u64, 1, 2, 3, 1000, 1023, 1024] {
            s.add_pass(c);
        }
        assert_eq!(s.pass_log2[0], 2, "0 and 1");
        assert_eq!(s.pass_log2[1], 2, "2 and 3");
        assert_eq!(s.pass_log2[9], 2, "1000 and 1023");
        assert_eq!(s.pass_log2[10], 1, "1024");
        assert_eq!(s.passes.calls, 7);
        assert_eq!(s.passes.max, 1024);
        assert_eq!(s.pass_quantile(0.5), 3);
        assert_eq!(s.pass_quantile(1.0), 2047);
        s.add_pass(u64::MAX);
        assert_eq!(s.pass_log2[PASS_BUCKETS - 1], 1, "huge passes land in the last bucket");
        s.add(LoopStage::App, 10);
        s.add(LoopStage::App, 30);
        assert_eq!(s.get(LoopStage::App), StageCount { calls: 2, cycles: 40, max: 30 });
    }
}
