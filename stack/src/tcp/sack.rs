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

    /// Adds the peer's SACK blocks that lie within `(una, max]`.
    pub fn update(&mut self, una: Seq, max: Seq, blocks: &[Option<(u32, u32)>; 3]) {
        for (l, r) in blocks.iter().flatten().map(|&(l, r)| (Seq(l), Seq(r))) {
            if l >= r || r <= una || r > max || l < una {
                continue; // invalid, old (D-SACK) or beyond what was sent
            }
            self.insert(l, r);
        }
    }

    fn insert(&mut self, l: Seq, r: Seq) {
        let pos = self.ranges.iter().position(|&(a, _)| a > l).unwrap_or(self.ranges.len());
        self.ranges.insert(pos, (l, r));
        // Merge neighbours that touch or overlap.
        let mut merged: Vec<(Seq, Seq)> = Vec::with_capacity(self.ranges.len());
        for &(a, b) in &self.ranges {
            match merged.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        merged.truncate(MAX_RANGES);
        self.ranges = merged;
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
}
