//! The out-of-order store of one connection: byte ranges, not segments.
//!
//! Received data beyond a hole is copied into fixed blocks of [`BLOCK`]
//! bytes at block-aligned stream offsets, allocated only where data lies
//! (never beyond the receive window the caller passes), and a map of
//! disjoint, non-adjacent ranges `[start, end)` keyed by start offset
//! records what is present. One byte at the far edge of the window costs
//! one block, not the span before it; so the memory held, counted against
//! the same receive buffer the window is computed from, never exceeds the
//! window's bytes plus two blocks, whatever in-order data then arrives
//! (blocks below the next expected byte are freed as it advances).
//! Overlapping or duplicate data is trimmed against what is already held
//! (the first copy of a byte wins). An insert costs O(log n) plus the ranges
//! it merges and the blocks it writes (each range is created once, so
//! amortized O(log n) per insert of a segment).
//!
//! Nothing here pins a received frame: a peer cannot hold many RX buffers
//! with a few bytes each out of order.

use std::collections::BTreeMap;

/// Memory charged per range held: a `BTreeMap` entry of two `u64` with its
/// share of node overhead, rounded up (bytes).
pub const RANGE_COST: usize = 48;

/// Size of one storage block, bytes (a few segments each).
pub const BLOCK: usize = 4096;

/// Memory charged per block: its allocation plus its map entry (bytes).
pub const BLOCK_COST: usize = BLOCK + 32;

/// Limits of one insert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OooLimits {
    /// Disjoint ranges held at most (`max_ooo_segments`).
    pub ranges: usize,
    /// Bytes past the next expected byte data may reach: the receive
    /// window advertised (RFC 9293 3.10.7.4: data beyond it is not accepted).
    pub window: usize,
}

/// A connection's out-of-order holdings (diagnostics and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OooUsage {
    /// Memory held, bytes ([`OooStore::footprint`]).
    pub bytes: usize,
    /// Payload bytes held.
    pub payload: usize,
    /// Disjoint ranges held.
    pub ranges: usize,
    /// Receive window advertised, bytes past the next expected byte.
    pub window: usize,
}

/// What [`OooStore::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OooInsert {
    /// Stored this many new bytes (the rest was already held).
    Stored(usize),
    /// Every byte was already held.
    Duplicate,
    /// Dropped: a new range past the range cap, or beyond the window.
    Full,
}

/// Out-of-order data at 64-bit stream offsets.
#[derive(Default)]
pub struct OooStore {
    /// Present ranges, start -> end; disjoint and never adjacent.
    ranges: BTreeMap<u64, u64>,
    /// Byte at stream offset `o` lives at `blocks[o / BLOCK][o % BLOCK]`;
    /// a block exists only while it holds a byte of some range at or past
    /// the next expected offset.
    blocks: BTreeMap<u64, Box<[u8]>>,
    /// Payload bytes held (sum of range lengths).
    payload: usize,
    /// Offset of the latest arrival (reported first in SACK).
    last: Option<u64>,
    /// Offsets of the arrivals before `last`, most recent first: the SACK
    /// blocks after the first follow this order (RFC 2018 4).
    recent: [Option<u64>; 2],
}

impl std::fmt::Debug for OooStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OooStore({} B in {} ranges, {} blocks)", self.payload, self.ranges.len(), self.blocks.len())
    }
}

impl OooStore {
    /// Memory held, bytes: [`BLOCK_COST`] per block plus [`RANGE_COST`]
    /// per range.
    pub fn footprint(&self) -> usize {
        self.blocks.len() * BLOCK_COST + self.ranges.len() * RANGE_COST
    }

    /// Payload bytes held.
    pub fn payload(&self) -> usize {
        self.payload
    }

    /// Disjoint ranges held.
    pub fn ranges(&self) -> usize {
        self.ranges.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Stores `data` at stream offset `off`, strictly beyond `next` (the next
    /// expected offset). Bytes already held are kept and the new copy of
    /// them ignored; ranges that the data overlaps or touches merge into one.
    pub fn insert(&mut self, next: u64, off: u64, data: &[u8], lim: OooLimits) -> OooInsert {
        debug_assert!(off > next, "in-order data does not go out of order");
        if data.is_empty() {
            return OooInsert::Duplicate;
        }
        let end = off + data.len() as u64;
        // The range starting at or before `off`, if it reaches it.
        let left = self.ranges.range(..=off).next_back().map(|(&s, &e)| (s, e)).filter(|&(_, e)| e >= off);
        if let Some((_, e)) = left {
            if e >= end {
                self.note_arrival(off);
                return OooInsert::Duplicate;
            }
        }
        // Ranges starting inside `(off, end]` merge too (adjacent included).
        let touched: Vec<(u64, u64)> = self.ranges.range(off + 1..=end).map(|(&s, &e)| (s, e)).collect();
        if left.is_none() && touched.is_empty() && self.ranges.len() >= lim.ranges {
            return OooInsert::Full;
        }
        let span = usize::try_from(end - next).unwrap_or(usize::MAX);
        if span > lim.window {
            return OooInsert::Full;
        }
        // Write only the gaps between held ranges.
        let mut pos = left.map_or(off, |(_, e)| e);
        let mut stored = 0;
        for &(s, e) in &touched {
            if s > pos {
                stored += self.write(pos, &data[(pos - off) as usize..(s - off) as usize]);
            }
            pos = pos.max(e);
        }
        if pos < end {
            stored += self.write(pos, &data[(pos - off) as usize..]);
        }
        let start = left.map_or(off, |(s, _)| s);
        let stop = touched.last().map_or(end, |&(_, e)| e.max(end));
        for &(s, _) in &touched {
            self.ranges.remove(&s);
        }
        self.ranges.insert(start, stop);
        self.payload += stored;
        self.note_arrival(off);
        if stored == 0 {
            OooInsert::Duplicate
        } else {
            OooInsert::Stored(stored)
        }
    }

    /// Removes what lies before `next` and hands over, in order, the bytes
    /// now contiguous from `next` (one slice per block each range
    /// touches). Returns the new next expected offset. Blocks wholly
    /// before it are freed.
    pub fn take_from(&mut self, mut next: u64, mut deliver: impl FnMut(&[u8])) -> u64 {
        while let Some((&s, &e)) = self.ranges.first_key_value() {
            if s > next {
                break;
            }
            self.ranges.remove(&s);
            self.payload -= (e - s) as usize;
            if e > next {
                let mut at = next;
                while at < e {
                    let (b, i) = (at / BLOCK as u64, (at % BLOCK as u64) as usize);
                    let n = ((e - at) as usize).min(BLOCK - i);
                    match self.blocks.get(&b) {
                        Some(blk) => deliver(&blk[i..i + n]),
                        None => debug_assert!(false, "range byte {at} without its block"),
                    }
                    at += n as u64;
                }
                next = e;
            }
        }
        if self.ranges.is_empty() {
            self.clear();
        } else {
            // Keep only blocks that may still hold bytes at or past `next`.
            self.blocks = self.blocks.split_off(&(next / BLOCK as u64));
        }
        next
    }

    /// Records an arrival at `off` as the most recent one.
    fn note_arrival(&mut self, off: u64) {
        if let Some(prev) = self.last.replace(off) {
            self.recent = [Some(prev), self.recent[0]];
        }
    }

    /// The held range containing offset `o`, if any.
    fn range_at(&self, o: u64) -> Option<(u64, u64)> {
        self.ranges.range(..=o).next_back().filter(|(_, &e)| e > o).map(|(&s, &e)| (s, e))
    }

    /// Up to three ranges as stream offsets `[start, end)`: the one holding
    /// the latest arrival first, then those holding the arrivals before it
    /// in order of recency (RFC 2018 section 4: "repeating the most recent
    /// SACK blocks"), then the highest others.
    pub fn sack_blocks(&self) -> [Option<(u64, u64)>; 3] {
        self.sack_blocks_n()
    }

    /// [`sack_blocks`](Self::sack_blocks) with room for `N` ranges: 4 fit in
    /// the 40 option bytes without timestamps (RFC 2018 3). Only the two
    /// arrivals before the latest are remembered (per-connection memory):
    /// a fourth block is the highest other range.
    pub fn sack_blocks_n<const N: usize>(&self) -> [Option<(u64, u64)>; N] {
        let mut out = [None; N];
        if N == 0 {
            return out;
        }
        // The latest arrival may since have been delivered: then the lowest.
        let first = self
            .last
            .and_then(|l| self.ranges.range(..=l).next_back().filter(|(_, &e)| e > l))
            .or_else(|| self.ranges.first_key_value())
            .map(|(&s, &e)| (s, e));
        let mut k = 0;
        if let Some(r) = first {
            out[0] = Some(r);
            k = 1;
        }
        for r in self.recent.iter().flatten().filter_map(|&o| self.range_at(o)) {
            if k < N && !out.contains(&Some(r)) {
                out[k] = Some(r);
                k += 1;
            }
        }
        for (&s, &e) in self.ranges.iter().rev() {
            if k == N {
                break;
            }
            if !out.contains(&Some((s, e))) {
                out[k] = Some((s, e));
                k += 1;
            }
        }
        out
    }

    /// Discards every byte at or beyond stream offset `end` (the peer's FIN:
    /// nothing past it belongs to the stream); returns the payload bytes
    /// discarded. Blocks past `end` are freed, all of them once nothing is held.
    pub fn truncate(&mut self, end: u64) -> usize {
        let mut cut = 0;
        while let Some((&s, &e)) = self.ranges.last_key_value() {
            if e <= end {
                break;
            }
            if s >= end {
                self.ranges.remove(&s);
                cut += (e - s) as usize;
            } else {
                self.ranges.insert(s, end);
                cut += (e - end) as usize;
            }
        }
        self.payload -= cut;
        drop(self.blocks.split_off(&end.div_ceil(BLOCK as u64)));
        if self.last.is_some_and(|l| l >= end) {
            self.last = None;
        }
        if self.ranges.is_empty() {
            self.clear();
        }
        cut
    }

    /// Discards everything and frees every block.
    pub fn clear(&mut self) {
        self.ranges.clear();
        self.blocks.clear();
        self.payload = 0;
        self.last = None;
        self.recent = [None; 2];
    }

    /// Copies `d` to stream offset `at`, allocating the blocks it reaches;
    /// returns its length.
    fn write(&mut self, mut at: u64, mut d: &[u8]) -> usize {
        let len = d.len();
        while !d.is_empty() {
            let (b, i) = (at / BLOCK as u64, (at % BLOCK as u64) as usize);
            let n = d.len().min(BLOCK - i);
            let blk = self.blocks.entry(b).or_insert_with(|| vec![0; BLOCK].into_boxed_slice());
            blk[i..i + n].copy_from_slice(&d[..n]);
            d = &d[n..];
            at += n as u64;
        }
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIM: OooLimits = OooLimits { ranges: 1024, window: 256 * 1024 };

    /// RFC 2018 4: after the block of the latest arrival come the blocks of
    /// the arrivals before it, most recent first, whatever their offsets.
    #[test]
    fn sack_blocks_follow_recency_not_offset() {
        let mut s = OooStore::default();
        for off in [5000, 3000, 1000] {
            s.insert(0, off, &[7; 100], LIM);
        }
        assert_eq!(s.sack_blocks(), [Some((1000, 1100)), Some((3000, 3100)), Some((5000, 5100))]);
        // A fourth block: the oldest arrival (5000) drops off the report.
        s.insert(0, 7000, &[7; 100], LIM);
        assert_eq!(s.sack_blocks(), [Some((7000, 7100)), Some((1000, 1100)), Some((3000, 3100))]);
        // Extending an older block moves it to the front.
        s.insert(0, 3100, &[7; 100], LIM);
        assert_eq!(s.sack_blocks(), [Some((3000, 3200)), Some((7000, 7100)), Some((1000, 1100))]);
    }

    /// Without timestamps four blocks fit (RFC 2018 3): with arrivals in
    /// ascending order the fourth most recent stays reported until a fifth
    /// pushes it out.
    #[test]
    fn four_sack_blocks_follow_recency() {
        let mut s = OooStore::default();
        for off in [1000, 3000, 5000, 7000] {
            s.insert(0, off, &[7; 100], LIM);
        }
        let b = |o: u64| Some((o, o + 100));
        assert_eq!(s.sack_blocks_n::<4>(), [b(7000), b(5000), b(3000), b(1000)]);
        s.insert(0, 9000, &[7; 100], LIM);
        assert_eq!(s.sack_blocks_n::<4>(), [b(9000), b(7000), b(5000), b(3000)]);
        assert_eq!(s.sack_blocks(), [b(9000), b(7000), b(5000)]);
    }

    fn drain(s: &mut OooStore, next: u64) -> (u64, Vec<u8>) {
        let mut v = Vec::new();
        let n = s.take_from(next, |d| v.extend_from_slice(d));
        (n, v)
    }

    #[test]
    fn overlapping_segments_one_byte_apart_hold_one_range() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        let mut s = OooStore::default();
        for i in 0..1024u64 {
            let off = 1 + i;
            let r = s.insert(0, off, &data[off as usize..off as usize + 1400], LIM);
            assert_eq!(r, if i == 0 { OooInsert::Stored(1400) } else { OooInsert::Stored(1) });
        }
        assert_eq!(s.ranges(), 1);
        assert_eq!(s.payload(), 1400 + 1023);
        assert!(s.footprint() <= BLOCK_COST + RANGE_COST, "{}", s.footprint());
        // Byte 0 arrives: everything is contiguous.
        let (n, v) = drain(&mut s, 1);
        assert_eq!(n, 2424);
        assert_eq!(v, &data[1..2424]);
        assert_eq!(s.footprint(), 0, "every block is freed once empty");
    }

    #[test]
    fn first_copy_of_a_byte_wins_and_gaps_are_filled() {
        let mut s = OooStore::default();
        assert_eq!(s.insert(0, 10, &[1; 10], LIM), OooInsert::Stored(10));
        assert_eq!(s.insert(0, 30, &[3; 10], LIM), OooInsert::Stored(10));
        assert_eq!(s.ranges(), 2);
        assert_eq!(s.insert(0, 5, &[9; 40], LIM), OooInsert::Stored(20), "only the gaps are new");
        assert_eq!(s.ranges(), 1);
        assert_eq!(s.insert(0, 12, &[7; 3], LIM), OooInsert::Duplicate);
        let (n, v) = drain(&mut s, 5);
        assert_eq!(n, 45);
        let mut want = vec![9u8; 5];
        want.extend([1; 10]);
        want.extend([9; 10]);
        want.extend([3; 10]);
        want.extend([9; 5]);
        assert_eq!(v, want);
    }

    #[test]
    fn adjacent_ranges_merge_and_the_range_cap_only_stops_new_ranges() {
        let lim = OooLimits { ranges: 2, window: 1 << 20 };
        let mut s = OooStore::default();
        assert_eq!(s.insert(0, 10, &[1; 10], lim), OooInsert::Stored(10));
        assert_eq!(s.insert(0, 40, &[1; 10], lim), OooInsert::Stored(10));
        assert_eq!(s.insert(0, 100, &[1; 10], lim), OooInsert::Full, "a third range");
        assert_eq!(s.insert(0, 20, &[1; 10], lim), OooInsert::Stored(10), "adjacent: merges");
        assert_eq!(s.insert(0, 30, &[1; 10], lim), OooInsert::Stored(10), "bridges two ranges");
        assert_eq!(s.ranges(), 1);
        assert_eq!(s.sack_blocks(), [Some((10, 50)), None, None]);
    }

    #[test]
    fn data_beyond_the_window_is_refused_and_the_blocks_never_exceed_it() {
        let lim = OooLimits { ranges: 1024, window: 10_000 };
        let mut s = OooStore::default();
        assert_eq!(s.insert(0, 9_000, &[1; 1000], lim), OooInsert::Stored(1000));
        assert_eq!(s.insert(0, 9_500, &[1; 1000], lim), OooInsert::Full);
        assert!(s.footprint() <= 10_000 + RANGE_COST);
    }

    #[test]
    fn descending_and_random_orders_deliver_the_same_bytes_in_bounded_ranges() {
        use rand::rngs::SmallRng;
        use rand::{Rng, SeedableRng};
        let data: Vec<u8> = (0..200_000u32).map(|i| (i ^ (i >> 8)) as u8).collect();
        for seed in 0..8u64 {
            let mut rng = SmallRng::seed_from_u64(seed);
            let mut s = OooStore::default();
            let mut pieces: Vec<(u64, u64)> = Vec::new();
            // Overlapping pieces covering [1, 150_000).
            let mut at = 1u64;
            while at < 150_000 {
                let len = rng.gen_range(1..3000u64).min(150_000 - at);
                let back = rng.gen_range(0..=at.min(500) - 1);
                pieces.push((at - back, at + len));
                at += len;
            }
            if seed == 0 {
                pieces.reverse();
            } else {
                for i in (1..pieces.len()).rev() {
                    pieces.swap(i, rng.gen_range(0..=i));
                }
            }
            for &(a, b) in &pieces {
                let a = a.max(1);
                let r = s.insert(0, a, &data[a as usize..b as usize], LIM);
                assert_ne!(r, OooInsert::Full);
                assert!(s.footprint() <= LIM.window + s.ranges() * RANGE_COST);
            }
            assert_eq!(s.ranges(), 1);
            let (n, v) = drain(&mut s, 1);
            assert_eq!(n, 150_000);
            assert_eq!(v, &data[1..150_000], "seed {seed}");
        }
    }

    #[test]
    fn one_byte_at_the_far_edge_costs_one_block_not_the_span() {
        let lim = OooLimits { ranges: 1024, window: 1 << 20 };
        let mut s = OooStore::default();
        assert_eq!(s.insert(0, (1 << 20) - 1, &[7], lim), OooInsert::Stored(1));
        assert_eq!(s.footprint(), BLOCK_COST + RANGE_COST);
        // Scattered bytes, one per block: one block each, never the span.
        for k in 1..64u64 {
            s.insert(0, k * 10_000, &[k as u8], lim);
        }
        assert_eq!(s.ranges(), 64);
        assert!(s.footprint() <= 64 * (BLOCK_COST + RANGE_COST), "{}", s.footprint());
        // In-order data reaching 150_001 (held by the caller) frees every
        // block below it: ranges from 150_000 on stay, one block each.
        let (n, v) = drain(&mut s, 150_001);
        assert_eq!((n, v.len()), (150_001, 0), "bytes below the next offset are not delivered again");
        assert_eq!(s.ranges(), 64 - 15, "16 * 10_000 .. 63 * 10_000 and the far byte");
        // At most one block more: the one holding the next offset.
        assert!(s.footprint() <= 50 * BLOCK_COST + 49 * RANGE_COST, "{}", s.footprint());
        // A FIN at 320_001: the 31 scattered bytes past it and the far byte go.
        assert_eq!(s.truncate(320_001), 32);
        assert_eq!(s.ranges(), 17);
        assert!(s.footprint() <= 18 * BLOCK_COST + 17 * RANGE_COST, "{}", s.footprint());
    }

    #[test]
    fn truncate_at_a_fin_drops_every_byte_at_or_beyond_it() {
        let mut s = OooStore::default();
        s.insert(0, 10, &[1; 10], LIM);
        s.insert(0, 30, &[2; 10], LIM);
        s.insert(0, 50, &[3; 10], LIM);
        assert_eq!(s.truncate(35), 5 + 10);
        assert_eq!(s.ranges(), 2);
        assert_eq!(s.payload(), 15);
        assert_eq!(s.sack_blocks(), [Some((10, 20)), Some((30, 35)), None], "latest arrival gone: lowest first");
        assert_eq!(s.truncate(30), 5, "a range starting at the end goes whole");
        assert_eq!(s.truncate(100), 0);
        assert_eq!(s.truncate(5), 10);
        assert!(s.is_empty());
        assert_eq!(s.footprint(), 0, "every block is freed once empty");
    }

    #[test]
    fn sack_reports_the_latest_arrival_first_then_the_highest() {
        let mut s = OooStore::default();
        for off in [100u64, 300, 500, 700] {
            s.insert(0, off, &[0; 50], LIM);
        }
        s.insert(0, 300, &[0; 60], LIM);
        assert_eq!(s.sack_blocks(), [Some((300, 360)), Some((700, 750)), Some((500, 550))]);
    }

    #[test]
    fn blocks_are_freed_as_the_next_offset_advances() {
        let lim = OooLimits { ranges: 16, window: 4096 };
        let data: Vec<u8> = (0..40_000u32).map(|i| (i * 13 + (i >> 9)) as u8).collect();
        let mut s = OooStore::default();
        let piece = |a: u64, b: u64| &data[a as usize..b as usize];
        assert_eq!(s.insert(0, 1, piece(1, 1501), lim), OooInsert::Stored(1500));
        let mut next = 0u64;
        for _ in 0..20 {
            // Held: [next + 1, next + 1501). A second range past a one-byte
            // gap stays held while the first is delivered.
            let (a, b) = (next + 1502, next + 3002);
            assert_eq!(s.insert(next, a, piece(a, b), lim), OooInsert::Stored(1500));
            let (n, v) = drain(&mut s, next + 1);
            assert_eq!(n, next + 1501);
            assert_eq!(v, piece(next + 1, next + 1501));
            // [n + 1, n + 1501) spans at most two blocks; none before it stays.
            assert!(s.footprint() <= 2 * BLOCK_COST + RANGE_COST, "{}", s.footprint());
            next = n;
        }
    }
}
