//! IPv4 fragment reassembly (RFC 791 section 3.2, RFC 815) with bounded
//! memory, fragment counts and timeouts.
//!
//! Fragments are kept as received, in a map keyed by offset, and copied into
//! one buffer only when the datagram is complete: memory is charged for what
//! is really allocated (payload plus a fixed cost per fragment and per
//! datagram), never sized by the highest offset seen. Each fragment costs
//! O(log n) (its two neighbours are looked up in the map), so thousands of
//! tiny fragments in any order cost O(n log n) (FragmentSmack).
//!
//! Limits: fragments per datagram (FreeBSD's `maxfragsperpacket`, 16),
//! datagrams per source, datagrams and bytes overall. A full table evicts
//! the oldest datagram — of the same source when that source is at its cap —
//! so one source's garbage never blocks another's datagrams for the
//! timeout. An exact duplicate of a held fragment is ignored; any other
//! overlap discards the whole datagram (the teardrop class of attacks), as
//! RFC 5722 requires for IPv6.

use std::collections::BTreeMap;

use rustc_hash::FxHashMap;

use crate::stats::Stats;
use crate::time::{Duration, Instant};
use crate::wire::{IpProtocol, Ipv4Address};

/// Identifies one datagram being reassembled (RFC 791).
pub type FragKey = (Ipv4Address, Ipv4Address, u16, IpProtocol);

/// Memory charged per fragment beyond its payload: its map entry, boxed
/// slice header and allocator rounding (bytes).
pub const FRAG_COST: usize = 64;
/// Memory charged per datagram under reassembly beyond its fragments (bytes).
pub const DATAGRAM_COST: usize = 128;

/// Largest IPv4 payload (65,535 minus a 20-byte header), bytes.
const MAX_DATAGRAM: usize = 65_535 - 20;

#[derive(Debug)]
struct Partial {
    /// Fragments by offset; disjoint.
    frags: BTreeMap<usize, Box<[u8]>>,
    /// Payload bytes held (sum of fragment lengths).
    covered: usize,
    /// Highest fragment end seen.
    max_end: usize,
    /// Datagram length, once the last fragment (MF clear) arrived.
    total: Option<usize>,
    /// Memory charged, bytes.
    charged: usize,
    /// Arrival order of the first fragment (eviction picks the smallest).
    born: u64,
    deadline: Instant,
}

/// What happened to a fragment.
#[derive(Debug, PartialEq, Eq)]
pub enum FragResult {
    /// Kept (or an exact duplicate ignored); the datagram is still incomplete.
    Pending,
    /// The datagram is complete: its payload.
    Complete(Vec<u8>),
    /// Dropped (overlap, too large, inconsistent, too many fragments, or no
    /// room even after eviction); the reason is counted in [`Stats`].
    Dropped,
}

/// Datagrams under reassembly.
#[derive(Debug)]
pub struct Reassembler {
    parts: FxHashMap<FragKey, Partial>,
    /// Datagrams by arrival of their first fragment (also deadline order:
    /// the timeout is the same for all).
    order: BTreeMap<u64, FragKey>,
    per_source: FxHashMap<Ipv4Address, usize>,
    born: u64,
    bytes: usize,
    max_bytes: usize,
    max_datagrams: usize,
    max_fragments: usize,
    max_per_source: usize,
    timeout: Duration,
    /// Fragments and neighbours examined (a cost measure for tests).
    work: u64,
}

impl Reassembler {
    /// At most `max_datagrams` at once holding `max_bytes` (as charged),
    /// each given up after `timeout`; 16 fragments per datagram and
    /// a quarter of the datagrams (at least one) per source until
    /// [`Self::with_fragment_limits`] says otherwise.
    pub fn new(max_datagrams: usize, max_bytes: usize, timeout: Duration) -> Self {
        Reassembler {
            parts: FxHashMap::default(),
            order: BTreeMap::new(),
            per_source: FxHashMap::default(),
            born: 0,
            bytes: 0,
            max_bytes,
            max_datagrams: max_datagrams.max(1),
            max_fragments: 16,
            max_per_source: (max_datagrams / 4).max(1),
            timeout,
            work: 0,
        }
    }

    /// Caps fragments per datagram (at least 1) and datagrams per source
    /// address (at least 1).
    pub fn with_fragment_limits(mut self, max_fragments: usize, max_per_source: usize) -> Self {
        self.max_fragments = max_fragments.max(1);
        self.max_per_source = max_per_source.max(1);
        self
    }

    /// Adds the fragment at byte `offset` (more = the MF flag); counts every
    /// drop and eviction by reason in `stats`.
    pub fn add(
        &mut self,
        now: Instant,
        key: FragKey,
        offset: usize,
        more: bool,
        payload: &[u8],
        stats: &mut Stats,
    ) -> FragResult {
        self.expire(now, stats);
        self.work += 1;
        let end = offset + payload.len();
        if end > MAX_DATAGRAM || (more && payload.len() % 8 != 0) || payload.is_empty() {
            stats.drop_ipv4_frag_invalid += 1;
            self.remove(&key);
            return FragResult::Dropped;
        }
        if !self.parts.contains_key(&key) {
            self.make_room_for_datagram(key.0, stats);
            self.born += 1;
            let p = Partial {
                frags: BTreeMap::new(),
                covered: 0,
                max_end: 0,
                total: None,
                charged: DATAGRAM_COST,
                born: self.born,
                deadline: now + self.timeout,
            };
            self.parts.insert(key, p);
            self.order.insert(self.born, key);
            *self.per_source.entry(key.0).or_insert(0) += 1;
            self.bytes += DATAGRAM_COST;
        }
        let p = self.parts.get_mut(&key).expect("inserted above");
        // The neighbours: the fragment at or before `offset`, and the first after it.
        let prev = p.frags.range(..=offset).next_back().map(|(&o, d)| (o, d));
        let next = p.frags.range(offset + 1..).next().map(|(&o, _)| o);
        self.work += 2;
        if let Some((o, d)) = prev {
            let consistent_mf = if more { p.total != Some(end) } else { p.total == Some(end) };
            if o == offset && **d == *payload && consistent_mf {
                stats.ipv4_frag_duplicates += 1;
                return FragResult::Pending;
            }
        }
        let overlaps = prev.is_some_and(|(o, d)| o + d.len() > offset) || next.is_some_and(|o| o < end);
        let bad_total = match (more, p.total) {
            (false, Some(t)) => t != end,
            (false, None) => p.max_end > end,
            (true, Some(t)) => end > t,
            (true, None) => false,
        };
        if overlaps || bad_total {
            if overlaps {
                stats.drop_ipv4_frag_overlap += 1;
            } else {
                stats.drop_ipv4_frag_invalid += 1;
            }
            self.remove(&key);
            return FragResult::Dropped;
        }
        if p.frags.len() >= self.max_fragments {
            stats.drop_ipv4_frag_too_many += 1;
            self.remove(&key);
            return FragResult::Dropped;
        }
        let cost = payload.len() + FRAG_COST;
        if !self.make_room_for_bytes(cost, &key, stats) {
            stats.drop_ipv4_frag_evicted += 1;
            self.remove(&key);
            return FragResult::Dropped;
        }
        let p = self.parts.get_mut(&key).expect("kept by make_room_for_bytes");
        p.frags.insert(offset, payload.into());
        p.covered += payload.len();
        p.max_end = p.max_end.max(end);
        p.charged += cost;
        self.bytes += cost;
        if !more {
            p.total = Some(end);
        }
        // Fragments are disjoint, so covering the total means complete.
        if p.total != Some(p.covered) {
            return FragResult::Pending;
        }
        let p = self.remove(&key).expect("present");
        let mut whole = Vec::with_capacity(p.covered);
        for d in p.frags.values() {
            whole.extend_from_slice(d);
        }
        self.work += p.frags.len() as u64;
        FragResult::Complete(whole)
    }

    /// Evicts the oldest datagram of `src` when it is at its cap, then the
    /// oldest overall while the table is full.
    fn make_room_for_datagram(&mut self, src: Ipv4Address, stats: &mut Stats) {
        if self.per_source.get(&src).is_some_and(|&n| n >= self.max_per_source) {
            let oldest = self.order.values().find(|k| k.0 == src).copied();
            if let Some(k) = oldest {
                self.work += 1;
                stats.drop_ipv4_frag_evicted += 1;
                self.remove(&k);
            }
        }
        while self.parts.len() >= self.max_datagrams {
            let Some((_, k)) = self.order.first_key_value() else { break };
            let k = *k;
            stats.drop_ipv4_frag_evicted += 1;
            self.remove(&k);
        }
    }

    /// Evicts the oldest datagrams other than `keep` until `cost` more bytes
    /// fit; false when they cannot.
    fn make_room_for_bytes(&mut self, cost: usize, keep: &FragKey, stats: &mut Stats) -> bool {
        while self.bytes + cost > self.max_bytes {
            let victim = self.order.values().find(|k| *k != keep).copied();
            let Some(k) = victim else { return false };
            self.work += 1;
            stats.drop_ipv4_frag_evicted += 1;
            self.remove(&k);
        }
        true
    }

    fn remove(&mut self, key: &FragKey) -> Option<Partial> {
        let p = self.parts.remove(key)?;
        self.order.remove(&p.born);
        self.bytes -= p.charged;
        if let Some(n) = self.per_source.get_mut(&key.0) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&key.0);
            }
        }
        Some(p)
    }

    /// Discards datagrams past their deadline (counted in `stats`); returns how many.
    pub fn expire(&mut self, now: Instant, stats: &mut Stats) -> usize {
        if self.order.is_empty() {
            return 0;
        }
        let mut n = 0;
        while let Some((_, k)) = self.order.first_key_value() {
            let k = *k;
            if self.parts.get(&k).is_some_and(|p| p.deadline > now) {
                break;
            }
            self.remove(&k);
            n += 1;
        }
        stats.drop_ipv4_frag_timeout += n as u64;
        n
    }

    /// Bytes charged (payload plus fixed costs).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Datagrams under reassembly.
    pub fn datagrams(&self) -> usize {
        self.parts.len()
    }

    /// Fragments and neighbours examined so far: grows by O(1) per
    /// fragment plus one per fragment of each completed datagram.
    pub fn work(&self) -> u64 {
        self.work
    }

    /// The earliest deadline.
    pub fn poll_at(&self) -> Option<Instant> {
        self.order.first_key_value().and_then(|(_, k)| self.parts.get(k)).map(|p| p.deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u16) -> FragKey {
        (Ipv4Address::new(1, 2, 3, 4), Ipv4Address::new(5, 6, 7, 8), id, IpProtocol::Udp)
    }

    fn key_from(src: u8, id: u16) -> FragKey {
        (Ipv4Address::new(1, 2, 3, src), Ipv4Address::new(5, 6, 7, 8), id, IpProtocol::Udp)
    }

    #[test]
    fn reassembles_out_of_order_and_rejects_overlaps_and_floods() {
        let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let mut st = Stats::default();
        let mut r = Reassembler::new(4, 10_000, Duration::from_secs(30)).with_fragment_limits(16, 4);
        let t = Instant::ZERO;
        assert_eq!(r.add(t, key(1), 2400, false, &data[2400..], &mut st), FragResult::Pending);
        assert_eq!(r.add(t, key(1), 0, true, &data[..1200], &mut st), FragResult::Pending);
        assert_eq!(r.add(t, key(1), 1200, true, &data[1200..2400], &mut st), FragResult::Complete(data.clone()));
        assert_eq!(r.bytes(), 0);
        // Overlap: the whole datagram goes.
        assert_eq!(r.add(t, key(2), 0, true, &data[..1200], &mut st), FragResult::Pending);
        assert_eq!(r.add(t, key(2), 800, true, &data[800..1600], &mut st), FragResult::Dropped);
        assert_eq!(st.drop_ipv4_frag_overlap, 1);
        assert_eq!(r.bytes(), 0);
        // Misaligned middle fragment, inconsistent end, oversize: dropped.
        assert_eq!(r.add(t, key(3), 0, true, &data[..100], &mut st), FragResult::Dropped);
        assert_eq!(r.add(t, key(4), 65_000, false, &data[..1000], &mut st), FragResult::Dropped);
        assert_eq!(st.drop_ipv4_frag_invalid, 2);
        // The memory cap evicts the oldest: the newest datagram always fits.
        for id in 10..16 {
            assert_eq!(r.add(t, key(id), 0, true, &data[..2000], &mut st), FragResult::Pending);
            assert!(r.bytes() <= 10_000);
        }
        assert!(st.drop_ipv4_frag_evicted >= 2);
        assert_eq!(r.add(t, key(15), 2000, false, &data[2000..], &mut st), FragResult::Complete(data.clone()));
        // Timeout frees everything.
        let left = r.datagrams();
        assert!(left > 0);
        assert_eq!(r.expire(Instant::from_millis(31_000), &mut st), left);
        assert_eq!(st.drop_ipv4_frag_timeout, left as u64);
        assert_eq!(r.bytes(), 0);
        assert_eq!(r.poll_at(), None);
    }

    #[test]
    fn memory_is_charged_for_what_is_held_not_the_offset() {
        let mut st = Stats::default();
        let mut r = Reassembler::new(64, 1 << 20, Duration::from_secs(30)).with_fragment_limits(16, 64);
        for id in 0..17 {
            assert_eq!(r.add(Instant::ZERO, key(id), 64_992, true, &[0xab; 8], &mut st), FragResult::Pending);
        }
        assert_eq!(r.bytes(), 17 * (8 + FRAG_COST + DATAGRAM_COST));
        assert_eq!(st.drop_ipv4_frag_evicted, 0);
    }

    #[test]
    fn exact_duplicates_are_ignored_but_differing_overlaps_are_not() {
        let data: Vec<u8> = (0..64u8).collect();
        let mut st = Stats::default();
        let mut r = Reassembler::new(8, 1 << 20, Duration::from_secs(30));
        let t = Instant::ZERO;
        assert_eq!(r.add(t, key(1), 0, true, &data[..32], &mut st), FragResult::Pending);
        assert_eq!(r.add(t, key(1), 0, true, &data[..32], &mut st), FragResult::Pending);
        assert_eq!(r.add(t, key(1), 32, false, &data[32..], &mut st), FragResult::Complete(data.clone()));
        assert_eq!(st.ipv4_frag_duplicates, 1);
        // A duplicate of the last fragment, before and after the others.
        assert_eq!(r.add(t, key(2), 32, false, &data[32..], &mut st), FragResult::Pending);
        assert_eq!(r.add(t, key(2), 32, false, &data[32..], &mut st), FragResult::Pending);
        assert_eq!(r.add(t, key(2), 0, true, &data[..32], &mut st), FragResult::Complete(data.clone()));
        // Same place, different bytes: the datagram goes.
        let mut evil = data[..32].to_vec();
        evil[3] ^= 1;
        assert_eq!(r.add(t, key(3), 0, true, &data[..32], &mut st), FragResult::Pending);
        assert_eq!(r.add(t, key(3), 0, true, &evil, &mut st), FragResult::Dropped);
        // Same bytes but the MF flag changed: inconsistent, dropped.
        assert_eq!(r.add(t, key(4), 0, true, &data[..32], &mut st), FragResult::Pending);
        assert_eq!(r.add(t, key(4), 0, false, &data[..32], &mut st), FragResult::Dropped);
        assert_eq!(st.drop_ipv4_frag_overlap, 2);
        assert_eq!(r.bytes(), 0);
    }

    #[test]
    fn fragments_per_datagram_are_capped() {
        let mut st = Stats::default();
        let mut r = Reassembler::new(8, 1 << 20, Duration::from_secs(30));
        let t = Instant::ZERO;
        for i in 0..16 {
            assert_eq!(r.add(t, key(1), i * 8, true, &[1; 8], &mut st), FragResult::Pending);
        }
        assert_eq!(r.add(t, key(1), 16 * 8, false, &[1; 8], &mut st), FragResult::Dropped);
        assert_eq!(st.drop_ipv4_frag_too_many, 1);
        assert_eq!(r.bytes(), 0);
        // Exactly 16 fragments complete.
        for i in 0..15 {
            assert_eq!(r.add(t, key(2), i * 8, true, &[2; 8], &mut st), FragResult::Pending);
        }
        assert_eq!(r.add(t, key(2), 15 * 8, false, &[2; 8], &mut st), FragResult::Complete(vec![2; 128]));
    }

    #[test]
    fn one_source_cannot_block_another() {
        let mut st = Stats::default();
        let mut r = Reassembler::new(64, 1 << 20, Duration::from_secs(30)).with_fragment_limits(16, 16);
        let t = Instant::ZERO;
        // Source 1 floods first fragments; it only ever evicts its own.
        for id in 0..1000 {
            assert_eq!(r.add(t, key_from(1, id), 0, true, &[0; 8], &mut st), FragResult::Pending);
        }
        assert_eq!(r.datagrams(), 16);
        // Source 2 starts a datagram: it survives a further flood from source 1.
        assert_eq!(r.add(t, key_from(2, 7), 0, true, &[5; 8], &mut st), FragResult::Pending);
        for id in 1000..2000 {
            r.add(t, key_from(1, id), 0, true, &[0; 8], &mut st);
        }
        assert_eq!(
            r.add(t, key_from(2, 7), 8, false, &[6; 8], &mut st),
            FragResult::Complete([[5; 8], [6; 8]].concat())
        );
        // Many sources fill the table: the oldest goes, the newest always fits.
        for s in 10..200u8 {
            assert_eq!(r.add(t, key_from(s, 1), 0, true, &[0; 8], &mut st), FragResult::Pending);
            assert!(r.datagrams() <= 64);
        }
        assert_eq!(r.add(t, key_from(199, 1), 8, false, &[0; 8], &mut st), FragResult::Complete(vec![0; 16]));
    }

    /// FragmentSmack: thousands of 8-byte fragments in ascending, descending
    /// and shuffled order cost O(log n) each, counted by the work measure.
    #[test]
    fn thousands_of_tiny_fragments_cost_o_n_log_n() {
        use rand::rngs::SmallRng;
        use rand::{Rng, SeedableRng};
        const N: usize = 8000;
        let data: Vec<u8> = (0..N * 8).map(|i| (i * 31 + i / 251) as u8).collect();
        for order in 0..3 {
            let mut idx: Vec<usize> = (0..N).collect();
            match order {
                0 => {}
                1 => idx.reverse(),
                _ => {
                    let mut rng = SmallRng::seed_from_u64(9);
                    for i in (1..N).rev() {
                        idx.swap(i, rng.gen_range(0..=i));
                    }
                }
            }
            let mut st = Stats::default();
            let mut r = Reassembler::new(64, 1 << 20, Duration::from_secs(30)).with_fragment_limits(N, 64);
            let mut out = None;
            for &i in &idx {
                let res = r.add(Instant::ZERO, key(1), i * 8, i + 1 < N, &data[i * 8..i * 8 + 8], &mut st);
                if let FragResult::Complete(d) = res {
                    out = Some(d);
                }
            }
            assert_eq!(out.as_deref(), Some(&data[..]), "order {order}");
            assert!(r.work() <= 5 * N as u64, "order {order}: {} steps", r.work());
            // With the default cap the same flood is cut off every 16 fragments.
            let mut r = Reassembler::new(64, 1 << 20, Duration::from_secs(30));
            for &i in &idx {
                let _ = r.add(Instant::ZERO, key(1), i * 8, i + 1 < N, &data[i * 8..i * 8 + 8], &mut st);
                assert!(r.bytes() <= DATAGRAM_COST + 16 * (8 + FRAG_COST));
            }
            assert!(st.drop_ipv4_frag_too_many >= (N / 17) as u64);
        }
    }
}
