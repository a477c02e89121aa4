//! The receive queue: in-order bytes ready for the application, plus an
//! out-of-order store bounded in segments and bytes. Positions are 64-bit
//! stream offsets, so no sequence wrap-around reaches this code.

use std::collections::{BTreeMap, VecDeque};

/// Received data of one connection.
#[derive(Debug, Default)]
pub struct RecvQueue {
    /// In-order bytes (copy mode), one growable ring: no allocation per segment.
    ready: VecDeque<u8>,
    ready_len: usize,
    /// Stream offset of the next in-order byte.
    next: u64,
    ooo: BTreeMap<u64, Vec<u8>>,
    ooo_bytes: usize,
    /// Offset of the latest out-of-order arrival (reported first in SACK).
    last_ooo: Option<u64>,
}

/// What [`RecvQueue::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Inserted {
    /// New in-order bytes became readable (count).
    InOrder(usize),
    /// Kept out of order.
    OutOfOrder,
    /// Entirely old data (a retransmission we already have).
    Duplicate,
    /// Dropped at the out-of-order cap.
    Full,
}

impl RecvQueue {
    /// Bytes ready to read.
    pub fn len(&self) -> usize {
        self.ready_len
    }

    /// Whether nothing is ready.
    pub fn is_empty(&self) -> bool {
        self.ready_len == 0
    }

    /// Stream offset of the next expected byte.
    pub fn next_offset(&self) -> u64 {
        self.next
    }

    /// Bytes held out of order.
    pub fn ooo_bytes(&self) -> usize {
        self.ooo_bytes
    }

    /// Out-of-order ranges held.
    pub fn ooo_segments(&self) -> usize {
        self.ooo.len()
    }

    /// Whether any out-of-order data is held (a hole exists).
    pub fn has_hole(&self) -> bool {
        !self.ooo.is_empty()
    }

    /// Stores `data` at stream offset `off`; the caller has already trimmed it
    /// to the receive window.
    pub fn insert(&mut self, off: u64, data: &[u8], max_segments: usize) -> Inserted {
        let end = off + data.len() as u64;
        if end <= self.next {
            return Inserted::Duplicate;
        }
        if off > self.next {
            if self.ooo.len() >= max_segments {
                return Inserted::Full;
            }
            match self.ooo.get(&off) {
                Some(have) if have.len() >= data.len() => return Inserted::Duplicate,
                _ => {}
            }
            self.last_ooo = Some(off);
            if let Some(old) = self.ooo.insert(off, data.to_vec()) {
                self.ooo_bytes -= old.len();
            }
            self.ooo_bytes += data.len();
            return Inserted::OutOfOrder;
        }
        let before = self.next;
        self.push_ready(&data[(self.next - off) as usize..]);
        // Pull whatever the new data made contiguous.
        while let Some((&o, _)) = self.ooo.first_key_value() {
            if o > self.next {
                break;
            }
            let (o, d) = self.ooo.pop_first().expect("peeked");
            self.ooo_bytes -= d.len();
            let e = o + d.len() as u64;
            if e > self.next {
                let skip = (self.next - o) as usize;
                self.push_ready(&d[skip..]);
            }
        }
        Inserted::InOrder((self.next - before) as usize)
    }

    fn push_ready(&mut self, d: &[u8]) {
        if d.is_empty() {
            return;
        }
        self.ready.extend(d);
        self.ready_len += d.len();
        self.next += d.len() as u64;
    }

    /// Up to three out-of-order ranges as stream offsets `[start, end)`, merged,
    /// the one holding the latest arrival first (RFC 2018 section 4).
    pub fn sack_blocks(&self) -> [Option<(u64, u64)>; 3] {
        let mut ranges: Vec<(u64, u64)> = Vec::new();
        for (&o, d) in &self.ooo {
            let e = o + d.len() as u64;
            match ranges.last_mut() {
                Some(last) if o <= last.1 => last.1 = last.1.max(e),
                _ => ranges.push((o, e)),
            }
        }
        let first = self.last_ooo.and_then(|l| ranges.iter().position(|&(a, b)| a <= l && l < b)).unwrap_or(0);
        let mut out = [None; 3];
        let mut k = 0;
        if let Some(r) = ranges.get(first) {
            out[0] = Some(*r);
            k = 1;
        }
        for (i, r) in ranges.iter().enumerate().rev() {
            if k == 3 {
                break;
            }
            if i != first {
                out[k] = Some(*r);
                k += 1;
            }
        }
        out
    }

    /// Copies up to `buf.len()` ready bytes out; returns the count.
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = buf.len().min(self.ready_len);
        let (a, b) = self.ready.as_slices();
        let na = n.min(a.len());
        buf[..na].copy_from_slice(&a[..na]);
        buf[na..n].copy_from_slice(&b[..n - na]);
        self.ready.drain(..n);
        self.ready_len -= n;
        n
    }

    /// Discards everything held (connection gone).
    pub fn clear(&mut self) {
        self.ready.clear();
        self.ooo.clear();
        self.ready = VecDeque::new();
        self.ready_len = 0;
        self.ooo_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_overlapping_and_duplicate_segments_assemble() {
        let mut q = RecvQueue::default();
        let data: Vec<u8> = (0..100u8).collect();
        assert_eq!(q.insert(50, &data[50..70], 8), Inserted::OutOfOrder);
        assert_eq!(q.insert(60, &data[60..90], 8), Inserted::OutOfOrder);
        assert_eq!(q.insert(50, &data[50..60], 8), Inserted::Duplicate, "shorter than what we hold");
        assert_eq!(q.insert(0, &data[0..30], 8), Inserted::InOrder(30));
        assert_eq!(q.insert(10, &data[10..20], 8), Inserted::Duplicate);
        assert_eq!(q.insert(25, &data[25..55], 8), Inserted::InOrder(60), "fills the hole up to 90");
        assert_eq!(q.ooo_bytes(), 0);
        assert_eq!(q.insert(90, &data[90..100], 8), Inserted::InOrder(10));
        let mut out = [0u8; 200];
        let n = q.read(&mut out[..37]);
        let m = q.read(&mut out[37..]);
        assert_eq!(n + m, 100);
        assert_eq!(&out[..100], &data[..]);
        assert!(q.is_empty());
    }

    #[test]
    fn out_of_order_store_is_capped() {
        let mut q = RecvQueue::default();
        for i in 0..4u64 {
            assert_eq!(q.insert(10 + i * 10, &[1; 5], 4), Inserted::OutOfOrder);
        }
        assert_eq!(q.insert(100, &[1; 5], 4), Inserted::Full);
        assert_eq!(q.ooo_segments(), 4);
    }
}
