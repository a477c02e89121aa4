//! The sender's SACK scoreboard and RFC 6675 loss detection: which bytes the
//! peer holds above the cumulative ACK, which holes count as lost, how much is
//! in the pipe, and what to retransmit next.

use super::seq::Seq;

/// Most ranges kept; more is hostile or pathological and only costs memory.
const MAX_RANGES: usize = 64;
/// RFC 6675 DupThresh.
const DUP_THRESH: usize = 3;

/// SACKed ranges above the cumulative ACK, sorted, merged, non-overlapping.
#[derive(Debug, Default)]
pub(crate) struct Scoreboard {
    ranges: Vec<(Seq, Seq)>,
}

impl Scoreboard {
    pub fn clear(&mut self) {
        self.ranges.clear();
    }

    /// Whether no range is held (then updating with no blocks, trimming and
    /// `is_lost` all do nothing).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Adds the peer's SACK blocks that lie within `(una, max]`.
    pub fn update(&mut self, una: Seq, max: Seq, blocks: &[Option<(u32, u32)>; 3]) {
        for (l, r) in blocks.iter().flatten().map(|&(l, r)| (Seq(l), Seq(r))) {
            if l >= r || r <= una || r > max || l < una {
                continue; // invalid, old (D-SACK) or beyond what was sent
            }
            self.insert(l, r);
        }
    }

    /// Inserts `[l, r)` in place, merging what it touches: O(ranges), no
    /// allocation once the list has grown. At [`MAX_RANGES`] the highest
    /// range is forgotten (the ones nearest `snd_una` matter for recovery;
    /// forgetting SACK information only costs a needless retransmission).
    fn insert(&mut self, l: Seq, r: Seq) {
        // First range that ends at or after `l` (may touch or overlap).
        let first = self.ranges.iter().position(|&(_, b)| b >= l).unwrap_or(self.ranges.len());
        // Ranges from `first` that start at or before `r` merge with it.
        let mut last = first;
        let (mut nl, mut nr) = (l, r);
        while last < self.ranges.len() && self.ranges[last].0 <= r {
            nl = nl.min(self.ranges[last].0);
            nr = nr.max(self.ranges[last].1);
            last += 1;
        }
        if last > first {
            self.ranges[first] = (nl, nr);
            self.ranges.drain(first + 1..last);
        } else {
            if self.ranges.len() >= MAX_RANGES {
                if first == self.ranges.len() {
                    return; // above everything kept: the one to forget
                }
                self.ranges.pop();
            }
            self.ranges.insert(first, (nl, nr));
        }
    }

    /// Number of ranges held (at most [`MAX_RANGES`]).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether the receiver appears to have reneged (RFC 2018 8): the byte
    /// at the cumulative ACK `una` was SACKed but is still not acknowledged.
    pub fn reneged(&self, una: Seq) -> bool {
        self.ranges.first().is_some_and(|&(a, _)| a <= una)
    }

    /// If `seq` lies in a SACKed range, that range's end.
    pub fn sacked_end(&self, seq: Seq) -> Option<Seq> {
        self.ranges.iter().find(|&&(a, b)| a <= seq && seq < b).map(|&(_, b)| b)
    }

    /// Start of the first SACKed range above `seq`.
    pub fn next_sacked(&self, seq: Seq) -> Option<Seq> {
        self.ranges.iter().map(|&(a, _)| a).find(|&a| a > seq)
    }

    /// SACKed bytes in `[from, to)`.
    pub fn sacked_between(&self, from: Seq, to: Seq) -> u32 {
        self.ranges.iter().filter(|&&(a, b)| b > from && a < to).map(|&(a, b)| b.min(to).since(a.max(from))).sum()
    }

    /// Forgets everything at or below the cumulative ACK.
    pub fn trim(&mut self, una: Seq) {
        self.ranges.retain(|&(_, r)| r > una);
        if let Some(first) = self.ranges.first_mut() {
            first.0 = first.0.max(una);
        }
    }

    /// Highest SACKed sequence number.
    pub fn highest(&self) -> Option<Seq> {
        self.ranges.last().map(|&(_, r)| r)
    }

    /// Bytes and blocks SACKed above `seq`.
    fn sacked_above(&self, seq: Seq) -> (u32, usize) {
        let mut bytes = 0;
        let mut blocks = 0;
        for &(a, b) in &self.ranges {
            if b > seq {
                bytes += b.since(a.max(seq));
                blocks += 1;
            }
        }
        (bytes, blocks)
    }

    /// RFC 6675 IsLost: enough SACKed data above `seq` to call it lost.
    pub fn is_lost(&self, seq: Seq, mss: u32) -> bool {
        let (bytes, blocks) = self.sacked_above(seq);
        blocks >= DUP_THRESH || bytes > (DUP_THRESH as u32 - 1) * mss
    }

    /// The holes between `una` and the highest SACKed byte.
    fn holes(&self, una: Seq) -> impl Iterator<Item = (Seq, Seq)> + '_ {
        let mut prev = una;
        self.ranges.iter().filter_map(move |&(a, b)| {
            let hole = (prev < a).then_some((prev, a));
            prev = prev.max(b);
            hole
        })
    }

    /// RFC 6675 pipe: bytes believed in the network.
    pub fn pipe(&self, una: Seq, max: Seq, high_rxt: Seq, mss: u32) -> u32 {
        let top = self.highest().unwrap_or(una).max(una);
        let mut pipe = max.since(top.min(max));
        for (a, b) in self.holes(una) {
            if self.is_lost(a, mss) {
                if high_rxt > a {
                    pipe += high_rxt.min(b).since(a);
                }
            } else {
                pipe += b.since(a);
            }
        }
        pipe
    }

    /// RFC 6675 NextSeg rule 1: the first lost byte not yet retransmitted,
    /// and how much of its hole to send (at most `mss`).
    pub fn next_hole(&self, una: Seq, high_rxt: Seq, mss: u32) -> Option<(Seq, u32)> {
        for (a, b) in self.holes(una) {
            let start = a.max(high_rxt);
            if start < b && self.is_lost(start, mss) {
                return Some((start, b.since(start).min(mss)));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(v: &[(u32, u32)]) -> [Option<(u32, u32)>; 3] {
        let mut b = [None; 3];
        for (i, r) in v.iter().enumerate() {
            b[i] = Some(*r);
        }
        b
    }

    #[test]
    fn merges_detects_loss_and_finds_holes() {
        let mut sb = Scoreboard::default();
        let una = Seq(1000);
        let max = Seq(11_000);
        // Peer holds 2000..4000 and 5000..6000: holes 1000..2000 and 4000..5000.
        sb.update(una, max, &blocks(&[(5000, 6000), (2000, 3000)]));
        sb.update(una, max, &blocks(&[(3000, 4000)]));
        assert_eq!(sb.ranges, vec![(Seq(2000), Seq(4000)), (Seq(5000), Seq(6000))]);
        // Invalid blocks are ignored: below una, beyond max, reversed.
        sb.update(una, max, &blocks(&[(500, 900), (10_000, 12_000), (7000, 6500)]));
        assert_eq!(sb.ranges.len(), 2);
        let mss = 1000;
        // 3000 bytes SACKed above 1000 > 2*mss: lost. Above 4000: 1000 bytes, 1 block: not lost.
        assert!(sb.is_lost(Seq(1000), mss));
        assert!(!sb.is_lost(Seq(4000), mss));
        assert_eq!(sb.next_hole(una, una, mss), Some((Seq(1000), 1000)));
        // Pipe: 5000 beyond the top (6000..11000) + the unlost hole 4000..5000.
        assert_eq!(sb.pipe(una, max, una, mss), 6000);
        // After retransmitting the first hole it counts in the pipe and is not chosen again.
        assert_eq!(sb.pipe(una, max, Seq(2000), mss), 7000);
        assert_eq!(sb.next_hole(una, Seq(2000), mss), None);
        sb.trim(Seq(3000));
        assert_eq!(sb.ranges, vec![(Seq(3000), Seq(4000)), (Seq(5000), Seq(6000))]);
        sb.trim(Seq(7000));
        assert!(sb.ranges.is_empty());
    }

    #[test]
    fn hostile_blocks_keep_the_scoreboard_bounded_sorted_and_merged() {
        let mut sb = Scoreboard::default();
        let una = Seq(u32::MAX - 5000); // across the sequence wrap
        let max = una + 1_000_000;
        // Thousands of distinct one-byte blocks, in a scrambled order.
        for i in 0..3000u32 {
            let at = una + 1 + (i * 7919) % 999_000;
            sb.update(una, max, &blocks(&[(at.0, (at + 1).0)]));
            assert!(sb.len() <= MAX_RANGES);
        }
        assert_eq!(sb.len(), MAX_RANGES);
        assert!(sb.ranges.windows(2).all(|w| w[0].1 < w[1].0), "sorted, disjoint, not touching");
        // The ones kept are the lowest: those nearest snd_una matter.
        let lowest = sb.ranges[0].0;
        assert!(sb.ranges.iter().all(|&(a, _)| a >= lowest));
        // One block covering them all merges everything into one range.
        sb.update(una, max, &blocks(&[((una + 1).0, (una + 999_500).0)]));
        assert_eq!(sb.ranges, vec![(una + 1, una + 999_500)]);
        assert_eq!(sb.sacked_between(una, max), 999_499);
        assert_eq!(sb.sacked_end(una + 10), Some(una + 999_500));
        assert_eq!(sb.next_sacked(una), Some(una + 1));
        assert!(!sb.reneged(una));
        sb.trim(una + 1);
        assert!(sb.reneged(una + 1), "SACKed byte at snd_una: reneged");
    }
}
