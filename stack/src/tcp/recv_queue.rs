//! The receive queue: in-order bytes ready for the application, plus an
//! out-of-order store of byte ranges bounded by the receive window
//! ([`super::ooo_store`]). Positions are 64-bit
//! stream offsets, so no sequence wrap-around reaches this code.
//!
//! In-order data lives either in a byte ring (copied) or, with zero-copy
//! receive, as chunks of the received frames themselves; only one of the two
//! holds data at a time, so order is kept. Chunks pin whole frames, which
//! the receive window accounts for (`held`); when tiny payloads pin far more
//! memory than they carry, the chunks are compacted into one copy (counted).

use std::collections::VecDeque;

use super::ooo_store::{OooInsert, OooLimits, OooStore};
use crate::phy::SharedRx;
use crate::rx_budget::{Charge, RxIn};
use crate::scatter::Scatter;
use crate::stats::Stats;
use crate::zc::RxView;

/// A range of a received frame kept in place.
struct RxChunk {
    buf: SharedRx,
    off: u32,
    len: u32,
    /// The receive budget's charge for a frame kept in place.
    charge: Option<Charge>,
}

impl RxChunk {
    /// Memory the chunk pins, bytes: its charge's footprint when the
    /// receive budget charged it (the same value, read without a call
    /// through the frame's trait object), else its buffer's.
    #[inline]
    fn footprint(&self) -> usize {
        match &self.charge {
            Some(c) => c.footprint(),
            None => self.buf.footprint(),
        }
    }
}

impl std::fmt::Debug for RxChunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RxChunk({}+{})", self.off, self.len)
    }
}

/// Chunks pinning more than this many bytes are compacted when they carry
/// less than a quarter of what they pin.
const COMPACT_MIN_FOOTPRINT: usize = 64 * 1024;

/// Received data of one connection.
#[derive(Debug, Default)]
pub struct RecvQueue {
    /// In-order bytes (copy mode), one growable ring: no allocation per segment.
    ready: VecDeque<u8>,
    /// In-order data kept in received frames (zero-copy receive).
    chunks: VecDeque<RxChunk>,
    chunk_bytes: usize,
    chunk_footprint: usize,
    /// Payload and footprint of the last frame kept in place: how much of
    /// the memory a frame pins carries data (for the advertised window).
    last_frame: (u16, u16),
    /// Stream offset of the next in-order byte.
    next: u64,
    /// Data beyond a hole, copied (never pins received frames).
    ooo: OooStore,
    /// The buffer `read_zc` last handed copied bytes out in: reused for
    /// the next once the application has dropped that view (no allocation
    /// per read of short, copied messages); kept only while small.
    zc_copy: Option<std::rc::Rc<Vec<u8>>>,
}

/// `read_zc`'s buffer for copied bytes is kept for reuse up to this
/// capacity, bytes (a connection keeps no large copy buffer around).
const ZC_COPY_KEEP: usize = 4 * 1024;

/// With zero-copy receive a drained byte ring larger than this, bytes, is
/// freed (see `RecvQueue::ring_drained`).
const RING_KEEP: usize = 4 * 1024;

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
    /// Frees chunk storage grown past 64 chunks (the ring's own bound is
    /// [`RING_KEEP`], applied by [`RecvQueue::clear`]).
    pub(crate) fn shrink_storage(&mut self) {
        if self.chunks.capacity() > 64 {
            self.chunks = VecDeque::new();
        }
    }

    /// Bytes of ring and chunk storage held.
    pub(crate) fn storage_bytes(&self) -> usize {
        self.ready.capacity() + self.chunks.capacity() * std::mem::size_of::<RxChunk>()
    }

    /// Takes `old`'s storage where it holds nothing (and this queue is
    /// new): a recycled connection's first segments allocate nothing.
    pub(crate) fn adopt_storage(&mut self, old: &mut RecvQueue) {
        if old.ready.is_empty() && self.ready.capacity() == 0 {
            self.ready = std::mem::take(&mut old.ready);
        }
        if old.chunks.is_empty() && self.chunks.capacity() == 0 {
            self.chunks = std::mem::take(&mut old.chunks);
        }
    }

    /// Bytes ready to read.
    pub fn len(&self) -> usize {
        self.ready.len() + self.chunk_bytes
    }

    /// Whether nothing is ready.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Scales free receive memory to the payload it can take when frames
    /// are kept in place (each pins its whole buffer), so the window never
    /// promises more than the memory bound holds. The scale is that of a
    /// full segment of `full_segment` bytes in the last frame's buffer: a
    /// small last segment (the tail of a burst, a probe) must not shrink the
    /// window to nothing — with no more data to come, nothing would ever
    /// widen it again; small segments are bounded by compaction instead.
    pub fn window_for(&self, free: usize, full_segment: usize) -> usize {
        match self.last_frame {
            (0, _) | (_, 0) => free,
            (len, fp) => {
                let fp = usize::from(fp);
                let len = usize::from(len).max(full_segment).min(fp);
                if len == fp {
                    return free; // the frame is all payload: no scaling
                }
                // floor(free * len / fp) with one division (a shift for the
                // usual power-of-two buffer): the product fits 64 bits for
                // any buffer below 2^48 bytes (len < 2^16); past that, the
                // same value without the wide product.
                match (free as u64).checked_mul(len as u64) {
                    Some(x) if fp.is_power_of_two() => (x >> fp.trailing_zeros()) as usize,
                    Some(x) => (x / fp as u64) as usize,
                    None => free / fp * len + free % fp * len / fp,
                }
            }
        }
    }

    /// Memory the ready data pins (whole frames for chunks kept in place).
    pub fn held(&self) -> usize {
        self.ready.len() + self.chunk_footprint
    }

    /// Stream offset of the next expected byte.
    pub fn next_offset(&self) -> u64 {
        self.next
    }

    /// Memory the out-of-order store holds, bytes (its allocation, not
    /// payload: at most the window it was given plus a small cost per range).
    pub fn ooo_bytes(&self) -> usize {
        self.ooo.footprint()
    }

    /// Payload bytes held out of order (overlaps counted once).
    pub fn ooo_payload(&self) -> usize {
        self.ooo.payload()
    }

    /// Out-of-order ranges held (disjoint; touching data merges).
    pub fn ooo_segments(&self) -> usize {
        self.ooo.ranges()
    }

    /// Whether any out-of-order data is held (a hole exists).
    pub fn has_hole(&self) -> bool {
        !self.ooo.is_empty()
    }

    /// [`Self::insert_within`] with no window bound on the out-of-order
    /// store beyond `max_segments` ranges (for callers that trim nothing).
    pub fn insert(
        &mut self,
        off: u64,
        data: &[u8],
        max_segments: usize,
        rx: Option<RxIn<'_>>,
        stats: &mut Stats,
    ) -> Inserted {
        self.insert_within(off, data, usize::MAX, max_segments, rx, stats)
    }

    /// Stores `data` at stream offset `off`; the caller has already trimmed it
    /// to the receive window of `window` bytes from the next expected byte
    /// (RFC 9293 3.10.7.4), which also bounds the out-of-order store's
    /// memory. `rx` is the frame `data` lies in, when the device handed it
    /// over: in-order data then stays in it (zero copy); data out of order
    /// is copied, trimmed against what is held, and merged into ranges.
    pub fn insert_within(
        &mut self,
        off: u64,
        data: &[u8],
        window: usize,
        max_segments: usize,
        rx: Option<RxIn<'_>>,
        stats: &mut Stats,
    ) -> Inserted {
        let end = off + data.len() as u64;
        if end <= self.next {
            return Inserted::Duplicate;
        }
        if off > self.next {
            let lim = OooLimits { ranges: max_segments, window };
            return match self.ooo.insert(self.next, off, data, lim) {
                OooInsert::Stored(n) => {
                    stats.tcp_ooo_bytes_trimmed += (data.len() - n) as u64;
                    Inserted::OutOfOrder
                }
                OooInsert::Duplicate => {
                    stats.tcp_ooo_bytes_trimmed += data.len() as u64;
                    Inserted::Duplicate
                }
                OooInsert::Full => Inserted::Full,
            };
        }
        let before = self.next;
        self.push_ready(&data[(self.next - off) as usize..], rx, stats);
        // Pull whatever the new data made contiguous.
        if !self.ooo.is_empty() {
            let mut ooo = std::mem::take(&mut self.ooo);
            ooo.take_from(self.next, |d| self.push_ready(d, None, stats));
            self.ooo = ooo;
        }
        Inserted::InOrder((self.next - before) as usize)
    }

    /// Appends `d`, the bytes at the next expected offset, when nothing is
    /// held out of order (the caller checked [`Self::has_hole`]): what
    /// [`Self::insert_within`] does for such data (`Inserted::InOrder` of
    /// all of it), without its checks. `rx` as there.
    #[inline]
    pub fn append_in_order(&mut self, d: &[u8], rx: Option<RxIn<'_>>, stats: &mut Stats) {
        debug_assert!(self.ooo.is_empty(), "in-order append past a hole");
        self.push_ready(d, rx, stats);
    }

    /// Records the footprint of the device's frames, bytes, for the window
    /// (`window_for`) until a kept frame gives its own: from the handshake's
    /// frame, and from any frame whose payload is copied, so the window is
    /// scaled to what frames pin from the first one on.
    pub fn note_frame(&mut self, footprint: usize) {
        if self.last_frame.1 == 0 {
            self.last_frame = (1, footprint.clamp(1, 65_535) as u16);
        }
    }

    fn push_ready(&mut self, d: &[u8], rx: Option<RxIn<'_>>, stats: &mut Stats) {
        if d.is_empty() {
            return;
        }
        self.next += d.len() as u64;
        if let Some(rin) = rx {
            if self.last_frame.1 == 0 {
                self.note_frame(rin.footprint());
            }
            if d.len() < rin.copybreak() && self.chunks.is_empty() {
                // A short payload with no frame kept ahead of it is copied
                // (`RxIn::copybreak`): cheaper than keeping it, and its
                // frame goes back to the device at once.
                stats.rx_bytes_copybreak += d.len() as u64;
                self.ready.extend(d);
                return;
            }
            if self.try_keep(d, rin, stats) {
                return;
            }
        }
        stats.rx_bytes_copied += d.len() as u64;
        if self.chunks.is_empty() {
            self.ready.extend(d);
        } else {
            // Behind frames kept in place: a copy of its own keeps the order.
            let v: SharedRx = std::rc::Rc::new(d.to_vec());
            self.chunk_footprint += v.footprint();
            self.chunk_bytes += d.len();
            self.chunks.push_back(RxChunk { buf: v, off: 0, len: d.len() as u32, charge: None });
        }
    }

    /// Keeps `d` in its frame (zero-copy receive) when the receive budget
    /// admits the frame; `false`, having kept nothing, when it does not or
    /// `d` does not lie in the frame's bytes (`RxIn::bytes`, the slice the
    /// frame gave when admitted). Bytes copied before it (short
    /// payloads, the copybreak) go ahead of it as one chunk of their own,
    /// so a short segment does not make the data behind it be copied too.
    fn try_keep(&mut self, d: &[u8], rin: RxIn<'_>, stats: &mut Stats) -> bool {
        let rx = rin.frame();
        // `d` lies inside the frame: keep it there.
        let frame = rin.bytes();
        let base = frame.as_ptr() as usize;
        let at = (d.as_ptr() as usize).wrapping_sub(base);
        if at.checked_add(d.len()).is_none_or(|end| end > frame.len()) {
            return false;
        }
        // Kept only within the receive budget; past it, copied.
        let Some(charge) = rin.keep() else {
            stats.rx_frames_over_budget += 1;
            return false;
        };
        if !self.ready.is_empty() {
            let (buf, len) = self.copy_buffer();
            self.chunk_footprint += buf.footprint();
            self.chunk_bytes += len;
            self.chunks.push_back(RxChunk { buf, off: 0, len: len as u32, charge: None });
        }
        let fp = charge.footprint();
        self.chunks.push_back(RxChunk { buf: rx.clone(), off: at as u32, len: d.len() as u32, charge: Some(charge) });
        self.chunk_bytes += d.len();
        self.chunk_footprint += fp;
        self.last_frame = (d.len().min(65_535) as u16, fp.clamp(1, 65_535) as u16);
        stats.rx_bytes_zero_copy += d.len() as u64;
        self.maybe_compact(stats);
        true
    }

    /// Moves the ring's bytes into a buffer of their own, with their count:
    /// the one the connection used last when no one else holds it any more
    /// (no allocation per short message in steady state), else a new one,
    /// which is kept for reuse when small ([`ZC_COPY_KEEP`]). Out of line:
    /// the receive path only takes it after short payloads.
    #[inline(never)]
    fn copy_buffer(&mut self) -> (SharedRx, usize) {
        // `Rc::get_mut`'s own condition: no other strong or weak reference.
        let mut buf = self
            .zc_copy
            .take()
            .filter(|b| std::rc::Rc::strong_count(b) == 1 && std::rc::Rc::weak_count(b) == 0)
            .unwrap_or_default();
        let len = self.ready.len();
        let v = std::rc::Rc::get_mut(&mut buf).expect("unshared: checked above, or new");
        v.clear();
        let (a, b) = self.ready.as_slices();
        v.extend_from_slice(a);
        v.extend_from_slice(b);
        if v.capacity() <= ZC_COPY_KEEP {
            self.zc_copy = Some(buf.clone());
        }
        self.ready.clear();
        self.ring_drained();
        (buf, len)
    }

    /// After the ring emptied: on a device that hands frames over (a frame
    /// footprint recorded), where the ring holds only short or over-budget
    /// payloads, a ring grown past [`RING_KEEP`] bytes is freed, so a burst
    /// of short segments does not leave memory the window no longer counts.
    /// (With copied receive the ring is the socket buffer and keeps its
    /// size.)
    #[inline]
    fn ring_drained(&mut self) {
        if self.last_frame.1 != 0 && self.ready.capacity() > RING_KEEP {
            self.ready = VecDeque::new();
        }
    }

    /// Copies chunks into one buffer when they pin four times what they carry.
    fn maybe_compact(&mut self, stats: &mut Stats) {
        if self.chunk_footprint < COMPACT_MIN_FOOTPRINT || self.chunk_footprint < 4 * self.chunk_bytes {
            return;
        }
        let mut v = Vec::with_capacity(self.chunk_bytes);
        for c in self.chunks.drain(..) {
            v.extend_from_slice(&c.buf.bytes()[c.off as usize..(c.off + c.len) as usize]);
        }
        stats.rx_compactions += 1;
        stats.rx_bytes_compacted += v.len() as u64;
        self.chunk_bytes = v.len();
        let buf: SharedRx = std::rc::Rc::new(v);
        self.chunk_footprint = buf.footprint();
        self.chunks.push_back(RxChunk { len: self.chunk_bytes as u32, buf, off: 0, charge: None });
    }

    /// Discards out-of-order data at or beyond stream offset `end` (the
    /// peer's FIN); returns the payload bytes discarded.
    pub fn truncate_ooo(&mut self, end: u64) -> usize {
        self.ooo.truncate(end)
    }

    /// Up to three out-of-order ranges as stream offsets `[start, end)`, merged,
    /// the one holding the latest arrival first (RFC 2018 section 4).
    pub fn sack_blocks(&self) -> [Option<(u64, u64)>; 3] {
        self.ooo.sack_blocks()
    }

    /// [`sack_blocks`](Self::sack_blocks) with room for four ranges (no
    /// timestamps option: RFC 2018 3).
    pub fn sack_blocks4(&self) -> [Option<(u64, u64)>; 4] {
        self.ooo.sack_blocks_n()
    }

    /// Copies up to `buf.len()` ready bytes out; returns the count.
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        if self.chunks.len() == 1 && self.chunk_bytes <= buf.len() {
            // One kept frame, read whole (a request or a response): what
            // the loop below does for it, without the loop.
            let Some(c) = self.chunks.pop_front() else { return 0 };
            let k = c.len as usize;
            buf[..k].copy_from_slice(&c.buf.bytes()[c.off as usize..c.off as usize + k]);
            self.chunk_bytes = 0;
            self.chunk_footprint -= c.footprint();
            return k;
        }
        if !self.chunks.is_empty() {
            let mut n = 0;
            while n < buf.len() {
                let Some(c) = self.chunks.front_mut() else { break };
                let k = (c.len as usize).min(buf.len() - n);
                buf[n..n + k].copy_from_slice(&c.buf.bytes()[c.off as usize..c.off as usize + k]);
                n += k;
                c.off += k as u32;
                c.len -= k as u32;
                self.chunk_bytes -= k;
                if c.len == 0 {
                    let c = self.chunks.pop_front().expect("front exists");
                    self.chunk_footprint -= c.footprint();
                }
            }
            return n;
        }
        let n = buf.len().min(self.ready.len());
        let (a, b) = self.ready.as_slices();
        let na = n.min(a.len());
        buf[..na].copy_from_slice(&a[..na]);
        buf[na..n].copy_from_slice(&b[..n - na]);
        self.ready.drain(..n);
        if self.ready.is_empty() {
            self.ring_drained();
        }
        n
    }

    /// Copies ready bytes into `bufs` in order, each filled before the
    /// next, without consuming them (`MSG_PEEK` with several buffers, as
    /// `recvmsg`'s iovec); returns the count, bytes.
    pub fn peek_vectored(&self, bufs: &mut [&mut [u8]]) -> usize {
        let mut out = Scatter::new(bufs);
        if !self.chunks.is_empty() {
            for c in &self.chunks {
                if !out.put(&c.buf.bytes()[c.off as usize..c.off as usize + c.len as usize]) {
                    break;
                }
            }
            return out.placed();
        }
        let (a, b) = self.ready.as_slices();
        if out.put(a) {
            out.put(b);
        }
        out.placed()
    }

    /// Drops every ready (in-order) byte, keeping the stream position
    /// (`SHUT_RD`); returns the count.
    pub fn discard_ready(&mut self) -> usize {
        let n = self.len();
        self.chunks.clear();
        self.chunk_bytes = 0;
        self.chunk_footprint = 0;
        self.ready.clear();
        self.ring_drained();
        n
    }

    /// Takes the next piece of ready data as an owned view (zero-copy
    /// receive: a received frame's payload; copied data comes as one view of
    /// everything in the ring). `None` when nothing is ready.
    pub fn read_zc(&mut self) -> Option<RxView> {
        if let Some(c) = self.chunks.pop_front() {
            self.chunk_bytes -= c.len as usize;
            self.chunk_footprint -= c.footprint();
            return Some(RxView::new(c.buf, c.off as usize, c.len as usize).with_charge(c.charge));
        }
        if self.ready.is_empty() {
            return None;
        }
        let (buf, len) = self.copy_buffer();
        Some(RxView::new(buf, 0, len))
    }

    /// Discards everything held (connection gone).
    pub fn clear(&mut self) {
        self.chunks.clear();
        self.chunk_bytes = 0;
        self.chunk_footprint = 0;
        self.ooo.clear();
        // A small ring stays for a recycled connection (see
        // `adopt_storage`); a grown one is freed.
        self.ready.clear();
        if self.ready.capacity() > RING_KEEP {
            self.ready = VecDeque::new();
        }
        self.zc_copy = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rx_budget::{RxBudget, RxIn, RxRef};

    /// `f` offered to the receive queues as the receive path offers it.
    fn admitted<'a>(budget: &'a RxBudget, f: &'a SharedRx) -> Option<RxIn<'a>> {
        Some(RxRef::with(f, |r| budget.admit(r)))
    }

    /// A received frame kept by zero-copy receive: its bytes, and a
    /// 2,048-byte buffer pinned for it.
    struct Frame(Vec<u8>);
    impl crate::phy::RxBuf for Frame {
        fn bytes(&self) -> &[u8] {
            &self.0
        }
        fn footprint(&self) -> usize {
            2048
        }
    }

    #[test]
    fn out_of_order_overlapping_and_duplicate_segments_assemble() {
        let mut q = RecvQueue::default();
        let mut st = Stats::default();
        let data: Vec<u8> = (0..100u8).collect();
        assert_eq!(q.insert(50, &data[50..70], 8, None, &mut st), Inserted::OutOfOrder);
        assert_eq!(q.insert(60, &data[60..90], 8, None, &mut st), Inserted::OutOfOrder);
        assert_eq!(q.insert(50, &data[50..60], 8, None, &mut st), Inserted::Duplicate, "shorter than what we hold");
        assert_eq!(q.insert(0, &data[0..30], 8, None, &mut st), Inserted::InOrder(30));
        assert_eq!(q.insert(10, &data[10..20], 8, None, &mut st), Inserted::Duplicate);
        assert_eq!(q.insert(25, &data[25..55], 8, None, &mut st), Inserted::InOrder(60), "fills the hole up to 90");
        assert_eq!(q.ooo_bytes(), 0);
        assert_eq!(q.insert(90, &data[90..100], 8, None, &mut st), Inserted::InOrder(10));
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
        let mut st = Stats::default();
        for i in 0..4u64 {
            assert_eq!(q.insert(10 + i * 10, &[1; 5], 4, None, &mut st), Inserted::OutOfOrder);
        }
        assert_eq!(q.insert(100, &[1; 5], 4, None, &mut st), Inserted::Full);
        assert_eq!(q.ooo_segments(), 4);
    }

    #[test]
    fn a_small_last_segment_does_not_shrink_the_window_to_nothing() {
        // Zero-copy receive: frames of 2,048 bytes pinned per segment.
        let mut q = RecvQueue::default();
        let mut st = Stats::default();
        let budget = RxBudget::new(1 << 20);
        let full: SharedRx = std::rc::Rc::new(Frame(vec![7; 1448]));
        assert_eq!(q.insert(0, full.bytes(), 8, admitted(&budget, &full), &mut st), Inserted::InOrder(1448));
        assert_eq!(budget.pinned(), 2048, "the kept frame is charged to the budget");
        let scaled = q.window_for(1 << 20, 1448);
        assert_eq!(scaled, (1 << 20) / 2048 * 1448, "a full segment per pinned buffer");
        // The last segment before the window closed was 10 bytes: the
        // window still scales as for full segments (it was 5 KiB before,
        // below any update threshold, and stayed closed forever).
        let tiny: SharedRx = std::rc::Rc::new(Frame(vec![8; 10]));
        assert_eq!(q.insert(1448, tiny.bytes(), 8, admitted(&budget, &tiny), &mut st), Inserted::InOrder(10));
        let mut out = vec![0u8; 2000];
        assert_eq!(q.read(&mut out), 1458);
        assert_eq!(q.held(), 0);
        assert_eq!(budget.pinned(), 0, "read frames give their charge back");
        assert_eq!(q.window_for(1 << 20, 1448), scaled);
        // Never more than the memory holds: a segment larger than the buffer counts as the buffer.
        assert_eq!(q.window_for(4096, 9000), 4096);
    }

    #[test]
    fn one_kept_frame_reads_whole_or_in_parts_alike() {
        // A single kept frame read whole (the one-chunk shortcut) and the
        // same frame read in two parts (the loop): the same bytes, and the
        // frame's charge and footprint given back either way.
        let data: Vec<u8> = (0..64u8).collect();
        for parts in [&[64usize, 100][..], &[10, 100]] {
            let mut q = RecvQueue::default();
            let mut st = Stats::default();
            let budget = RxBudget::new(1 << 20);
            let f: SharedRx = std::rc::Rc::new(Frame([&[0u8; 14][..], &data].concat()));
            assert_eq!(q.insert(0, &f.bytes()[14..], 8, admitted(&budget, &f), &mut st), Inserted::InOrder(64));
            assert_eq!((budget.pinned(), q.held()), (2048, 2048), "kept in place");
            let mut out = Vec::new();
            for &p in parts {
                let mut b = vec![0u8; p];
                let n = q.read(&mut b);
                out.extend_from_slice(&b[..n]);
            }
            assert_eq!(out, data, "read in parts {parts:?}");
            assert_eq!((q.len(), q.held(), budget.pinned()), (0, 0, 0), "parts {parts:?}");
            assert_eq!(q.read(&mut [0u8; 8]), 0);
        }
    }

    #[test]
    fn payload_outside_the_admitted_frame_is_copied_not_kept() {
        // Bytes offered with a frame they do not lie in (a payload copied
        // elsewhere by the receive path) are copied: the frame is not
        // kept, nothing is charged, and the bytes read back are the
        // payload's own. Then the same queue keeps a payload that does lie
        // in its frame, behind the copied bytes, in order.
        let mut q = RecvQueue::default();
        let mut st = Stats::default();
        let budget = RxBudget::new(1 << 20);
        let f: SharedRx = std::rc::Rc::new(Frame(vec![0xee; 1000]));
        let elsewhere: Vec<u8> = (0..600u32).map(|i| i as u8).collect();
        assert_eq!(q.insert(0, &elsewhere, 8, admitted(&budget, &f), &mut st), Inserted::InOrder(600));
        assert_eq!((budget.pinned(), st.rx_bytes_zero_copy), (0, 0), "the frame is not kept");
        assert_eq!(q.held(), 600, "only the copy is held");
        assert_eq!(st.rx_bytes_copied, 600);
        let g: SharedRx = std::rc::Rc::new(Frame((0..1000u32).map(|i| (i * 7) as u8).collect()));
        assert_eq!(q.insert(600, &g.bytes()[100..900], 8, admitted(&budget, &g), &mut st), Inserted::InOrder(800));
        assert_eq!((budget.pinned(), st.rx_bytes_zero_copy), (2048, 800), "kept in its frame");
        let mut out = vec![0u8; 2000];
        assert_eq!(q.read(&mut out), 1400);
        assert_eq!(&out[..600], &elsewhere[..]);
        assert_eq!(&out[600..1400], &g.bytes()[100..900]);
        assert_eq!(budget.pinned(), 0);
    }

    /// `window_for` computes floor(free * len / fp) exactly, with one
    /// division, for every frame layout and buffer size (up to and past
    /// the 2^48 bytes where the 64-bit product gives way to the two-step
    /// form): checked against a 128-bit reference. And it grows by at most
    /// the bytes freed (`Conn::window_update` relies on it).
    #[test]
    fn window_scaling_is_exact_for_every_layout() {
        let mut q = RecvQueue::default();
        let frees = [0usize, 1, 63, 64, 1447, 2047, 2048, 65_535, 1 << 20, (1 << 30) + 7, (1 << 48) - 1, usize::MAX];
        for fp in [1u16, 2, 3, 7, 1500, 2048, 2176, 9000, 65_535] {
            for len in [1u16, 10, 64, 1448, 2048, 9000, 65_535] {
                q.last_frame = (len, fp);
                for full in [0usize, 536, 1448, 9000] {
                    let l = usize::from(len).max(full).min(usize::from(fp));
                    for &free in &frees {
                        let want = (free as u128 * l as u128 / u128::from(fp)) as usize;
                        assert_eq!(q.window_for(free, full), want, "free {free} len {len} fp {fp} full {full}");
                        // Never grows faster than the memory freed (what lets
                        // a read skip the window-update computation).
                        for more in [1usize, 63, 2047, 2048, 4095, 100_000] {
                            let Some(bigger) = free.checked_add(more) else { continue };
                            let grew = q.window_for(bigger, full) - q.window_for(free, full);
                            assert!(grew <= more, "free {free} +{more} len {len} fp {fp} full {full}");
                        }
                    }
                }
            }
        }
    }
}
