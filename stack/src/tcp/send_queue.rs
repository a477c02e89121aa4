//! The send queue: unacknowledged and unsent bytes as references to page
//! buffers, never a byte ring. Offsets are relative to the first unacked byte.

use std::collections::VecDeque;

use crate::mem::{PageError, PageId, PageMemory, PageSlice};

#[derive(Clone, Copy, Debug)]
struct Chunk {
    page: PageId,
    off: u32,
    len: u32,
    /// The stack copied these bytes in (`write`), as opposed to an
    /// application buffer handed over (zero-copy send).
    copied: bool,
}

/// Where bytes copied into a send queue come from.
#[derive(Clone, Copy, Debug)]
pub enum CopySrc<'a> {
    /// The application's memory.
    Bytes(&'a [u8]),
    /// A range of a page buffer (a below-threshold zero-copy write).
    Page(PageSlice),
}

impl CopySrc<'_> {
    /// Bytes available.
    pub fn len(&self) -> usize {
        match self {
            CopySrc::Bytes(b) => b.len(),
            CopySrc::Page(s) => s.len as usize,
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first `n` bytes at most.
    pub fn truncate(self, n: usize) -> Self {
        match self {
            CopySrc::Bytes(b) => CopySrc::Bytes(&b[..n.min(b.len())]),
            CopySrc::Page(s) => CopySrc::Page(PageSlice { len: s.len.min(n.min(u32::MAX as usize) as u32), ..s }),
        }
    }

    /// Copies `n` bytes from position `pos` into `page` at `off`.
    #[inline(always)]
    fn copy_to<M: PageMemory + ?Sized>(&self, mem: &mut M, pos: usize, page: PageId, off: usize, n: usize) {
        match self {
            CopySrc::Bytes(b) => mem.bytes_mut(page)[off..off + n].copy_from_slice(&b[pos..pos + n]),
            CopySrc::Page(s) => mem.copy_between(s.page, s.off as usize + pos, page, off, n),
        }
    }
}

/// Queued bytes of one connection, held as page references.
#[derive(Debug, Default)]
pub struct SendQueue {
    chunks: VecDeque<Chunk>,
    len: usize,
    /// The last chunk's page may be appended to (we allocated it, copy mode).
    tail_appendable: bool,
    /// Where the last lookup ended: (chunk index, offset of that chunk's
    /// first byte). Segments are cut front to back, so the next lookup
    /// starts here instead of scanning the whole queue.
    hint: (u32, u32),
    /// Where the last application buffer range handed to this queue ended
    /// (`push_slice`, or a page range copied in below the zero-copy
    /// threshold): a next range starting exactly there continues the same
    /// run of the application's buffer.
    last_src: Option<(PageId, u32)>,
}

impl SendQueue {
    /// Frees the chunk storage when it grew past 64 chunks (a bulk
    /// connection's), so a recycled box keeps only a small one.
    pub(crate) fn shrink_storage(&mut self) {
        if self.chunks.capacity() > 64 {
            self.chunks = VecDeque::new();
        }
    }

    /// Bytes of chunk storage held.
    pub(crate) fn storage_bytes(&self) -> usize {
        self.chunks.capacity() * std::mem::size_of::<Chunk>()
    }

    /// Takes `old`'s chunk storage when it holds nothing (and this queue is
    /// new): a recycled connection's first writes allocate nothing.
    pub(crate) fn adopt_storage(&mut self, old: &mut SendQueue) {
        if old.chunks.is_empty() && self.chunks.capacity() == 0 {
            self.chunks = std::mem::take(&mut old.chunks);
        }
    }

    /// Bytes queued (unacked + unsent).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Page references the queue holds (one per chunk): the page-array
    /// memory it pins, as send pressure counts it.
    #[inline]
    pub fn pages_held(&self) -> usize {
        self.chunks.len()
    }

    /// Bytes a copy may still append to the last page without a new one
    /// (pages of `buf_size` bytes).
    #[inline]
    pub fn tail_room(&self, buf_size: usize) -> usize {
        match self.chunks.back() {
            Some(c) if self.tail_appendable => buf_size.saturating_sub((c.off + c.len) as usize),
            _ => 0,
        }
    }

    /// Copies as much of `data` as fits in `room` bytes into page buffers
    /// (filling the tail page first); returns bytes taken. Stops early when
    /// page memory runs out.
    pub fn push_copy(&mut self, data: &[u8], room: usize, mem: &mut dyn PageMemory) -> usize {
        self.push_copy_from(CopySrc::Bytes(data), room, mem)
    }

    /// [`SendQueue::push_copy`] from bytes or from another page buffer
    /// (copied buffer to buffer, no bounce).
    /// Generic over the page memory so that a caller holding the concrete
    /// type (the stack's write path) reaches its `alloc` and `bytes_mut`
    /// without a call through a trait object.
    #[inline]
    pub fn push_copy_from<M: PageMemory + ?Sized>(&mut self, src: CopySrc<'_>, room: usize, mem: &mut M) -> usize {
        let want = src.len().min(room);
        let bs = mem.buf_size();
        if let CopySrc::Bytes(b) = src {
            if !self.tail_appendable && want > 0 && want <= bs {
                // A small write to a queue with no page to append to (every
                // request/response write after its predecessor was acked):
                // one page, one copy — what the loop below does for it,
                // straight.
                self.last_src = None;
                let Some(page) = mem.alloc() else { return 0 };
                mem.bytes_mut(page)[..want].copy_from_slice(&b[..want]);
                self.chunks.push_back(Chunk { page, off: 0, len: want as u32, copied: true });
                self.tail_appendable = true;
                self.len += want;
                return want;
            }
        }
        let mut done = 0;
        if self.tail_appendable {
            if let Some(last) = self.chunks.back_mut() {
                let end = (last.off + last.len) as usize;
                let n = (bs - end).min(want);
                if n > 0 {
                    src.copy_to(mem, 0, last.page, end, n);
                    last.len += n as u32;
                    done = n;
                }
            }
        }
        while done < want {
            let Some(page) = mem.alloc() else { break };
            let n = bs.min(want - done);
            src.copy_to(mem, done, page, 0, n);
            self.chunks.push_back(Chunk { page, off: 0, len: n as u32, copied: true });
            self.tail_appendable = true;
            done += n;
        }
        self.len += done;
        self.last_src = match src {
            CopySrc::Page(p) if done > 0 => Some((p.page, p.off + done as u32)),
            _ => None,
        };
        done
    }

    /// Appends a slice the caller already filled; the queue takes over the
    /// caller's reference (zero-copy send).
    pub fn push_slice(&mut self, s: PageSlice) {
        if s.len == 0 {
            return;
        }
        self.chunks.push_back(Chunk { page: s.page, off: s.off, len: s.len, copied: false });
        self.len += s.len as usize;
        self.tail_appendable = false;
        self.last_src = Some((s.page, s.off + s.len));
    }

    /// Zero-copy coalescing (as Linux merges a page fragment into the last
    /// one when they touch): when `s` starts exactly where the last chunk,
    /// an application buffer handed over by reference, ends in the same
    /// page, that chunk grows by up to `room` bytes of `s` — no copy, no new
    /// chunk, and no new page reference (the chunk's one reference already
    /// keeps the page). Returns the bytes taken (0: not contiguous).
    pub fn extend_tail(&mut self, s: PageSlice, room: usize) -> usize {
        let Some(last) = self.chunks.back_mut() else { return 0 };
        if last.copied || last.page != s.page || last.off + last.len != s.off {
            return 0;
        }
        let n = (s.len as usize).min(room);
        last.len += n as u32;
        self.len += n;
        self.last_src = Some((s.page, s.off + n as u32));
        n
    }

    /// Whether the last application range handed to this queue ended at
    /// byte `at` of `page` (the writer is walking one buffer front to back).
    pub fn last_src_ended_at(&self, page: PageId, at: u32) -> bool {
        self.last_src == Some((page, at))
    }

    /// The chunk holding byte `offset` and the offset inside it, searched
    /// from the last lookup (amortized O(1) for front-to-back segmenting;
    /// a retransmission from the front restarts at chunk 0).
    fn locate(&mut self, offset: usize) -> (usize, usize) {
        let (mut i, mut start) = (self.hint.0 as usize, self.hint.1 as usize);
        if i >= self.chunks.len() || offset < start {
            (i, start) = (0, 0);
        }
        // One bounds-checked access per step (VecDeque indexing wraps).
        while let Some(c) = self.chunks.get(i) {
            if start + c.len as usize > offset {
                break;
            }
            start += c.len as usize;
            i += 1;
        }
        self.hint = (i as u32, start as u32);
        (i, offset - start)
    }

    /// Appends references to `[offset, offset + len)` to `out`, one per page
    /// touched, taking a reference on each page for the transmission.
    /// Returns whether every byte of the range was copied in by the stack
    /// (copy-mode writes) rather than handed over zero-copy.
    #[inline(always)]
    pub fn slices<M: PageMemory + ?Sized>(
        &mut self,
        offset: usize,
        len: usize,
        mem: &mut M,
        out: &mut crate::phy::Payload,
    ) -> Result<bool, PageError> {
        debug_assert!(offset + len <= self.len);
        // The range inside the chunk of the last lookup (the next segment of
        // a write, or its only one): that chunk, no search; the hint stays.
        let (h, h_start) = (self.hint.0 as usize, self.hint.1 as usize);
        if let Some(c) = self.chunks.get(h) {
            if len > 0 && offset >= h_start && offset + len <= h_start + c.len as usize {
                mem.incref(c.page)?;
                out.push(PageSlice { page: c.page, off: c.off + (offset - h_start) as u32, len: len as u32 });
                return Ok(c.copied);
            }
        }
        let (first, mut skip) = self.locate(offset);
        if let Some(c) = self.chunks.get(first).filter(|c| len > 0 && c.len as usize - skip >= len) {
            // The whole range in one chunk (every segment of a small write):
            // one reference, no walk.
            mem.incref(c.page)?;
            out.push(PageSlice { page: c.page, off: c.off + skip as u32, len: len as u32 });
            return Ok(c.copied);
        }
        // Across chunks: by index (no range iterator), and the lookup hint
        // left at the last chunk touched, where the next segment starts.
        let (mut left, mut copied) = (len, true);
        let (mut i, mut start) = (first, offset - skip);
        while left > 0 {
            let Some(c) = self.chunks.get(i) else { break };
            let n = (c.len as usize - skip).min(left);
            copied &= c.copied;
            mem.incref(c.page)?;
            out.push(PageSlice { page: c.page, off: c.off + skip as u32, len: n as u32 });
            left -= n;
            skip = 0;
            if left > 0 {
                start += c.len as usize;
                i += 1;
            }
        }
        self.hint = (i as u32, start as u32);
        Ok(copied)
    }

    /// Drops the first `n` bytes (acknowledged), releasing pages no longer referenced.
    pub fn ack<M: PageMemory + ?Sized>(&mut self, n: usize, mem: &mut M) -> Result<(), PageError> {
        if n > 0 && n >= self.len && self.chunks.len() == 1 {
            // Everything acknowledged and held in one chunk (the ACK of every
            // small write): what the walk below does for it, without the walk.
            let page = self.chunks[0].page;
            self.chunks.clear();
            self.len = 0;
            self.tail_appendable = false;
            self.hint = (0, 0);
            return mem.decref(page).map(|_| ());
        }
        let acked = n.min(self.len);
        self.len -= acked;
        let (mut n, mut popped) = (acked, 0usize);
        let mut result = Ok(());
        while n > 0 {
            let Some(c) = self.chunks.front_mut() else { break };
            if (c.len as usize) <= n {
                n -= c.len as usize;
                let page = c.page;
                self.chunks.pop_front();
                popped += 1;
                if self.chunks.is_empty() {
                    self.tail_appendable = false;
                }
                if let Err(e) = mem.decref(page) {
                    result = Err(e);
                }
            } else {
                c.off += n as u32;
                c.len -= n as u32;
                n = 0;
            }
        }
        // Every remaining byte moved `acked` closer to the front.
        let (i, start) = (self.hint.0 as usize, self.hint.1 as usize);
        self.hint = if i <= popped { (0, 0) } else { ((i - popped) as u32, (start - acked) as u32) };
        result
    }

    /// Releases everything (connection gone).
    pub fn clear<M: PageMemory + ?Sized>(&mut self, mem: &mut M) -> Result<(), PageError> {
        let n = self.len;
        self.ack(n, mem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::HeapPages;

    #[test]
    fn copy_slices_and_ack_keep_refcounts_right() {
        let mut mem = HeapPages::new(8, 16);
        let mut q = SendQueue::default();
        assert_eq!(q.push_copy(b"hello ", 1000, &mut mem), 6);
        assert_eq!(q.push_copy(b"world, this spans pages", 1000, &mut mem), 23);
        assert_eq!(q.len(), 29);
        assert_eq!(mem.free_count(), 6, "29 bytes in 16-byte pages: 2 pages");
        // Lookups forward, backward and after a partial ACK agree with the bytes.
        let expect = b"hello world, this spans pages";
        for (off, len) in [(0, 5), (17, 10), (2, 20), (20, 9), (0, 29)] {
            let mut o = crate::phy::Payload::new();
            q.slices(off, len, &mut mem, &mut o).unwrap();
            let got: Vec<u8> = o.iter().flat_map(|s| mem.slice(*s).to_vec()).collect();
            assert_eq!(got, expect[off..off + len], "slice {off}+{len}");
            for s in o {
                mem.decref(s.page).unwrap();
            }
        }
        let mut out = crate::phy::Payload::new();
        assert!(q.slices(4, 20, &mut mem, &mut out).unwrap(), "copied in by push_copy");
        let bytes: Vec<u8> = out.iter().flat_map(|s| mem.slice(*s).to_vec()).collect();
        assert_eq!(&bytes, b"o world, this spans ");
        // Acking everything leaves the in-flight references alive.
        q.ack(29, &mut mem).unwrap();
        assert_eq!(mem.free_count(), 6);
        for s in out {
            mem.decref(s.page).unwrap();
        }
        assert_eq!(mem.free_count(), 8, "freed only after ACK and completion");
    }

    #[test]
    fn contiguous_shared_ranges_grow_the_tail_chunk_without_a_reference() {
        let mut mem = HeapPages::new(4, 16);
        let page = mem.alloc().unwrap(); // the application's buffer
        mem.bytes_mut(page).copy_from_slice(b"0123456789abcdef");
        let mut q = SendQueue::default();
        // Not contiguous with anything yet.
        assert_eq!(q.extend_tail(PageSlice { page, off: 0, len: 4 }, 100), 0);
        mem.incref(page).unwrap();
        q.push_slice(PageSlice { page, off: 0, len: 4 });
        assert!(q.last_src_ended_at(page, 4));
        // Contiguous: grows, limited by room; a gap or another page does not.
        assert_eq!(q.extend_tail(PageSlice { page, off: 4, len: 6 }, 3), 3);
        assert_eq!(q.extend_tail(PageSlice { page, off: 9, len: 2 }, 100), 0);
        assert_eq!(q.extend_tail(PageSlice { page, off: 7, len: 5 }, 100), 5);
        assert_eq!(q.len(), 12);
        assert!(q.last_src_ended_at(page, 12));
        assert_eq!(mem.refcount(page), 2, "one chunk, one reference");
        let mut out = crate::phy::Payload::new();
        assert!(!q.slices(0, 12, &mut mem, &mut out).unwrap(), "shared, not copied");
        assert_eq!(out.len(), 1);
        assert_eq!(mem.slice(out[0]), b"0123456789ab");
        mem.decref(out[0].page).unwrap();
        // After a partial ACK the chunk still ends where it did.
        q.ack(5, &mut mem).unwrap();
        assert_eq!(q.extend_tail(PageSlice { page, off: 12, len: 4 }, 100), 4);
        q.ack(11, &mut mem).unwrap();
        assert_eq!(mem.refcount(page), 1, "the application's own reference is left");
        // A copied tail never grows by reference.
        assert_eq!(q.push_copy(b"xy", 100, &mut mem), 2);
        assert!(!q.last_src_ended_at(page, 16));
        assert_eq!(q.extend_tail(PageSlice { page, off: 0, len: 1 }, 100), 0);
        q.clear(&mut mem).unwrap();
        mem.decref(page).unwrap();
        assert_eq!(mem.free_count(), 4);
    }

    #[test]
    fn acking_a_one_chunk_queue_whole_leaves_it_as_new() {
        // The one-chunk shortcut of `ack` against a queue acked by the walk
        // (two chunks, the same bytes): both end empty, pages freed, and the
        // next write and its lookups behave alike.
        let mut mem = HeapPages::new(8, 16);
        let mut q = SendQueue::default();
        assert_eq!(q.push_copy(b"0123456789", 100, &mut mem), 10);
        let mut o = crate::phy::Payload::new();
        q.slices(4, 6, &mut mem, &mut o).unwrap(); // moves the hint
        mem.decref(o[0].page).unwrap();
        // More than queued is acked as everything (the walk's rule too).
        q.ack(11, &mut mem).unwrap();
        assert_eq!((q.len(), q.pages_held(), q.tail_room(16)), (0, 0, 0));
        assert_eq!(mem.free_count(), 8, "the page went back");
        assert_eq!(q.hint, (0, 0));
        assert_eq!(q.push_copy(b"abcdef", 100, &mut mem), 6);
        let mut o = crate::phy::Payload::new();
        q.slices(0, 6, &mut mem, &mut o).unwrap();
        assert_eq!(mem.slice(o[0]), b"abcdef");
        mem.decref(o[0].page).unwrap();
        // A zero ACK of a one-chunk queue changes nothing.
        q.ack(0, &mut mem).unwrap();
        assert_eq!((q.len(), q.pages_held()), (6, 1));
        q.clear(&mut mem).unwrap();
        assert_eq!(mem.free_count(), 8);
    }

    #[test]
    fn a_small_write_to_an_empty_queue_takes_one_page_or_none() {
        let mut mem = HeapPages::new(2, 16);
        let mut q = SendQueue::default();
        // A page range copied in leaves its end for coalescing; a byte write
        // after it (on a queue with no tail to append to) forgets it.
        let src = mem.alloc().unwrap();
        mem.bytes_mut(src)[..4].copy_from_slice(b"abcd");
        let s = PageSlice { page: src, off: 0, len: 4 };
        assert_eq!(q.push_copy_from(CopySrc::Page(s), 100, &mut mem), 4);
        assert!(q.last_src_ended_at(src, 4));
        q.ack(4, &mut mem).unwrap();
        assert!(q.last_src_ended_at(src, 4), "an ACK keeps the writer's position");
        // One page is free (the other is `src`): the write takes it.
        assert_eq!(q.push_copy(b"0123456789", 100, &mut mem), 10);
        assert!(!q.last_src_ended_at(src, 4));
        assert_eq!((q.len(), q.pages_held(), q.tail_room(16)), (10, 1, 6));
        q.ack(10, &mut mem).unwrap();
        // Out of pages: nothing taken, nothing held.
        let held = mem.alloc().unwrap();
        assert_eq!(mem.free_count(), 0);
        assert_eq!(q.push_copy(b"xy", 100, &mut mem), 0);
        assert_eq!((q.len(), q.pages_held()), (0, 0));
        mem.decref(held).unwrap();
        // Exactly a page fits in one; more spills to the loop's second page.
        assert_eq!(q.push_copy(&[7; 16], 100, &mut mem), 16);
        assert_eq!(q.tail_room(16), 0);
        q.clear(&mut mem).unwrap();
        mem.decref(src).unwrap();
        assert_eq!(mem.free_count(), 2);
    }

    #[test]
    fn room_and_memory_limits_are_respected() {
        let mut mem = HeapPages::new(2, 8);
        let mut q = SendQueue::default();
        assert_eq!(q.push_copy(&[1; 100], 5, &mut mem), 5);
        assert_eq!(q.push_copy(&[2; 100], 100, &mut mem), 11, "out of pages after 16 bytes");
        q.clear(&mut mem).unwrap();
        assert_eq!(mem.free_count(), 2);
    }

    #[test]
    fn lookups_stay_right_across_acks() {
        let mut mem = HeapPages::new(64, 16);
        let mut q = SendQueue::default();
        let data: Vec<u8> = (0..500u32).map(|i| i as u8).collect();
        assert_eq!(q.push_copy(&data, 1000, &mut mem), 500);
        let mut base = 0;
        for (ack, off, len) in [(0, 100, 50), (7, 120, 60), (40, 10, 100), (100, 0, 200), (3, 250, 100)] {
            q.ack(ack, &mut mem).unwrap();
            base += ack;
            let mut o = crate::phy::Payload::new();
            q.slices(off, len, &mut mem, &mut o).unwrap();
            let got: Vec<u8> = o.iter().flat_map(|s| mem.slice(*s).to_vec()).collect();
            assert_eq!(got, data[base + off..base + off + len], "after acking {base}: {off}+{len}");
            for s in o {
                mem.decref(s.page).unwrap();
            }
        }
        q.clear(&mut mem).unwrap();
        assert_eq!(mem.free_count(), 64);
    }

    #[test]
    fn slices_report_whether_the_stack_copied_the_bytes() {
        let mut mem = HeapPages::new(8, 16);
        let mut q = SendQueue::default();
        q.push_copy(b"copied bytes", 1000, &mut mem);
        let page = mem.alloc().unwrap();
        mem.bytes_mut(page)[..10].copy_from_slice(b"zero-copy!");
        q.push_slice(PageSlice { page, off: 0, len: 10 });
        let mut take = |off, len| {
            let mut o = crate::phy::Payload::new();
            let copied = q.slices(off, len, &mut mem, &mut o).unwrap();
            for s in o {
                mem.decref(s.page).unwrap();
            }
            copied
        };
        assert!(take(0, 12), "all copied in");
        assert!(!take(0, 22), "partly handed over");
        assert!(!take(12, 10), "handed over");
    }

    /// Every range of a queue of copied and handed-over chunks of several
    /// pages — within one chunk (the single-chunk path) or across several —
    /// gives slices holding exactly those bytes, one reference per slice,
    /// and says whether all of them were copied in.
    #[test]
    fn every_range_slices_to_its_bytes_with_one_reference_per_slice() {
        let mut mem = HeapPages::new(16, 16);
        let mut q = SendQueue::default();
        let mut want = Vec::new();
        let mut copied_at = Vec::new();
        let a: Vec<u8> = (0..40).collect();
        q.push_copy(&a, 1000, &mut mem); // three pages: 16 + 16 + 8
        want.extend_from_slice(&a);
        copied_at.extend(std::iter::repeat_n(true, a.len()));
        let page = mem.alloc().unwrap();
        mem.bytes_mut(page)[3..13].copy_from_slice(&[200; 10]);
        q.push_slice(PageSlice { page, off: 3, len: 10 });
        want.extend_from_slice(&[200; 10]);
        copied_at.extend(std::iter::repeat_n(false, 10));
        for off in 0..want.len() {
            for len in 0..=want.len() - off {
                let mut o = crate::phy::Payload::new();
                let copied = q.slices(off, len, &mut mem, &mut o).unwrap();
                let mut got = Vec::new();
                for s in &o {
                    assert_eq!(mem.refcount(s.page), 2, "a reference taken for the slice");
                    got.extend_from_slice(&mem.bytes(s.page)[s.off as usize..(s.off + s.len) as usize]);
                    mem.decref(s.page).unwrap();
                }
                assert_eq!(got, want[off..off + len], "off {off} len {len}");
                assert_eq!(copied, copied_at[off..off + len].iter().all(|&c| c), "off {off} len {len}");
            }
        }
    }
}
