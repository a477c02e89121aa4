//! IPv4 fragment reassembly with bounded memory and timeouts. Overlapping
//! fragments discard the whole datagram (the teardrop class of attacks), as
//! RFC 5722 requires for IPv6.

use rustc_hash::FxHashMap;

use crate::time::{Duration, Instant};
use crate::wire::{IpProtocol, Ipv4Address};

/// Identifies one datagram being reassembled (RFC 791).
pub type FragKey = (Ipv4Address, Ipv4Address, u16, IpProtocol);

#[derive(Debug)]
struct Partial {
    data: Vec<u8>,
    /// Received ranges, sorted, non-overlapping.
    have: Vec<(usize, usize)>,
    total: Option<usize>,
    deadline: Instant,
}

/// What happened to a fragment.
#[derive(Debug, PartialEq, Eq)]
pub enum FragResult {
    /// Kept; the datagram is still incomplete.
    Pending,
    /// The datagram is complete: its payload.
    Complete(Vec<u8>),
    /// Dropped (overlap, too large, inconsistent, or over the memory cap).
    Dropped,
}

/// Datagrams under reassembly.
#[derive(Debug)]
pub struct Reassembler {
    parts: FxHashMap<FragKey, Partial>,
    bytes: usize,
    max_bytes: usize,
    max_datagrams: usize,
    timeout: Duration,
}

const MAX_DATAGRAM: usize = 65_535 - 20;

impl Reassembler {
    /// At most `max_datagrams` at once holding `max_bytes`, each given up
    /// after `timeout`.
    pub fn new(max_datagrams: usize, max_bytes: usize, timeout: Duration) -> Self {
        Reassembler { parts: FxHashMap::default(), bytes: 0, max_bytes, max_datagrams, timeout }
    }

    /// Adds the fragment at byte `offset` (more = the MF flag).
    pub fn add(&mut self, now: Instant, key: FragKey, offset: usize, more: bool, payload: &[u8]) -> FragResult {
        self.expire(now);
        let end = offset + payload.len();
        if end > MAX_DATAGRAM || (more && payload.len() % 8 != 0) || payload.is_empty() {
            self.drop_key(&key);
            return FragResult::Dropped;
        }
        if !self.parts.contains_key(&key) {
            if self.parts.len() >= self.max_datagrams || self.bytes + payload.len() > self.max_bytes {
                return FragResult::Dropped;
            }
            self.parts
                .insert(key, Partial { data: Vec::new(), have: Vec::new(), total: None, deadline: now + self.timeout });
        }
        let p = self.parts.get_mut(&key).expect("inserted above");
        let overlaps = p.have.iter().any(|&(a, b)| offset < b && a < end);
        let bad_total = match (more, p.total) {
            (false, Some(t)) => t != end,
            (false, None) => p.have.iter().any(|&(_, b)| b > end),
            (true, Some(t)) => end > t,
            (true, None) => false,
        };
        if overlaps || bad_total || self.bytes + payload.len() > self.max_bytes {
            self.drop_key(&key);
            return FragResult::Dropped;
        }
        if !more {
            p.total = Some(end);
        }
        if p.data.len() < end {
            self.bytes += end - p.data.len();
            p.data.resize(end, 0);
        }
        p.data[offset..end].copy_from_slice(payload);
        let pos = p.have.partition_point(|&(a, _)| a < offset);
        p.have.insert(pos, (offset, end));
        let complete = p.total.is_some_and(|t| {
            let mut at = 0;
            for &(a, b) in &p.have {
                if a != at {
                    return false;
                }
                at = b;
            }
            at == t
        });
        if complete {
            let p = self.parts.remove(&key).expect("present");
            self.bytes -= p.data.len();
            return FragResult::Complete(p.data);
        }
        FragResult::Pending
    }

    fn drop_key(&mut self, key: &FragKey) {
        if let Some(p) = self.parts.remove(key) {
            self.bytes -= p.data.len();
        }
    }

    /// Discards datagrams past their deadline; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        if self.parts.is_empty() {
            return 0;
        }
        let before = self.parts.len();
        let mut freed = 0;
        self.parts.retain(|_, p| {
            let keep = p.deadline > now;
            if !keep {
                freed += p.data.len();
            }
            keep
        });
        self.bytes -= freed;
        before - self.parts.len()
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The earliest deadline.
    pub fn poll_at(&self) -> Option<Instant> {
        self.parts.values().map(|p| p.deadline).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u16) -> FragKey {
        (Ipv4Address::new(1, 2, 3, 4), Ipv4Address::new(5, 6, 7, 8), id, IpProtocol::Udp)
    }

    #[test]
    fn reassembles_out_of_order_and_rejects_overlaps_and_floods() {
        let data: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let mut r = Reassembler::new(4, 10_000, Duration::from_secs(30));
        let t = Instant::ZERO;
        assert_eq!(r.add(t, key(1), 2400, false, &data[2400..]), FragResult::Pending);
        assert_eq!(r.add(t, key(1), 0, true, &data[..1200]), FragResult::Pending);
        assert_eq!(r.add(t, key(1), 1200, true, &data[1200..2400]), FragResult::Complete(data.clone()));
        assert_eq!(r.bytes(), 0);
        // Overlap: the whole datagram goes.
        assert_eq!(r.add(t, key(2), 0, true, &data[..1200]), FragResult::Pending);
        assert_eq!(r.add(t, key(2), 800, true, &data[800..1600]), FragResult::Dropped);
        assert_eq!(r.bytes(), 0);
        // Misaligned middle fragment, inconsistent end, oversize: dropped.
        assert_eq!(r.add(t, key(3), 0, true, &data[..100]), FragResult::Dropped);
        assert_eq!(r.add(t, key(4), 65_000, false, &data[..1000]), FragResult::Dropped);
        // Memory cap and datagram count cap.
        for id in 10..14 {
            assert_eq!(r.add(t, key(id), 0, true, &data[..2000]), FragResult::Pending);
        }
        assert_eq!(r.add(t, key(20), 0, true, &data[..8]), FragResult::Dropped, "count cap");
        assert!(r.bytes() <= 10_000);
        // Timeout frees everything.
        assert_eq!(r.expire(Instant::from_millis(31_000)), 4);
        assert_eq!(r.bytes(), 0);
    }
}
