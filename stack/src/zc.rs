//! Zero-copy send buffers: page-array buffers the application fills in place
//! and hands to a socket without a copy.
//!
//! A [`ZcBuf`] owns one reference on each of its pages. Sending moves those
//! references into the socket's send queue (which frees a page only when it
//! is ACKed **and** every transmission of it completed); whatever the send
//! queue could not take comes back as a new `ZcBuf` holding exactly the
//! unsent bytes. Nothing is ever lost: a `ZcBuf` dropped without being sent
//! or released hands its pages back to the stack, which frees them on the
//! next poll (and counts it in `Stats::zc_buffers_reclaimed`).
//!
//! Two API shapes sit on this type (see `Stack`): F-Stack's
//! `zc_mbuf_get`/`zc_mbuf_write` + `write_zc`, and Onload's
//! `zc_alloc_buffers`/`zc_send`/`zc_release_buffers` with per-message results.

use std::cell::RefCell;
use std::rc::Rc;

use smallvec::SmallVec;
use thiserror::Error;

use crate::mem::{PageId, PageMemory, PageSlice};
use crate::phy::SharedRx;
use crate::tcp::{SocketHandle, TcpError};

/// Errors of zero-copy buffer operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum ZcError {
    /// Page memory cannot supply the buffers asked for (`ENOBUFS`).
    #[error("page memory exhausted: {wanted} buffers wanted, {free} free")]
    NoBuffers {
        /// Buffers the request needed.
        wanted: usize,
        /// Buffers free at the time.
        free: usize,
    },
    /// A write would go past the length reserved by `zc_mbuf_get`.
    #[error("zero-copy buffer overflow: {len} bytes written of {cap} reserved, {tried} more refused")]
    Overflow {
        /// Bytes reserved.
        cap: usize,
        /// Bytes already written.
        len: usize,
        /// Bytes the refused write carried.
        tried: usize,
    },
    /// A zero-length request.
    #[error("zero-length zero-copy buffer requested")]
    Empty,
    /// The page array is under send pressure and this allocation is over
    /// its fair share (`EAGAIN`): try again when the socket is writable.
    #[error("page array under pressure: {wanted} buffers wanted, {granted} granted to this sender")]
    WouldBlock {
        /// Buffers the request needed.
        wanted: usize,
        /// Buffers the rule grants now.
        granted: usize,
    },
    /// The socket handle does not name a live connection.
    #[error("invalid socket handle")]
    InvalidSocket,
}

/// Pages a dropped [`ZcBuf`] hands back; the stack drains it on every poll.
pub(crate) type Orphans = Rc<RefCell<Vec<PageId>>>;

/// The references a page may carry before sharing it again is refused
/// ([`Stack::zc_share`](crate::Stack::zc_share),
/// [`Stack::tcp_send_shared`](crate::Stack::tcp_send_shared)): the rest,
/// 16,384, stay for the frames that carry the page (one reference per
/// frame in flight; a device holds at most its TX ring and its completion
/// slots, 9,216 with dpdk-glue's defaults). Without that headroom a page
/// shared up to the 65,535 a count holds could be queued on a connection
/// but never sent: the output could not reference it for a frame.
pub const SHARE_REF_LIMIT: u16 = u16::MAX - 16 * 1024;

/// Takes one more application-level reference on `page` unless it is at
/// [`SHARE_REF_LIMIT`]; whether it took one.
pub(crate) fn share_ref(mem: &mut dyn PageMemory, page: PageId) -> bool {
    mem.refcount(page) < SHARE_REF_LIMIT && mem.incref(page).is_ok()
}

/// A chain of page buffers reserved for one zero-copy write.
///
/// Each segment is a range of one page: bytes `[off, off + len)` are filled,
/// and the page up to its end is room for more (only the last segment grows).
#[derive(Debug)]
pub struct ZcBuf {
    /// Two segments inline: small writes and shares allocate nothing.
    segs: SmallVec<[PageSlice; 2]>,
    /// Bytes the buffer may hold (what `zc_mbuf_get` reserved).
    cap: usize,
    /// Bytes filled.
    len: usize,
    /// Index of the segment being filled.
    fill: usize,
    buf_size: u32,
    orphans: Orphans,
}

impl ZcBuf {
    /// Reserves pages for `cap` bytes from `mem`.
    pub(crate) fn reserve(mem: &mut dyn PageMemory, cap: usize, orphans: &Orphans) -> Result<ZcBuf, ZcError> {
        Self::reserve_in(mem, cap, orphans, SmallVec::new())
    }

    /// [`ZcBuf::reserve`] keeping its page list in `segs` (empty; a spare
    /// list with room for the pages allocates nothing).
    pub(crate) fn reserve_in(
        mem: &mut dyn PageMemory,
        cap: usize,
        orphans: &Orphans,
        mut segs: SmallVec<[PageSlice; 2]>,
    ) -> Result<ZcBuf, ZcError> {
        debug_assert!(segs.is_empty());
        if cap == 0 {
            return Err(ZcError::Empty);
        }
        let bs = mem.buf_size();
        let wanted = cap.div_ceil(bs);
        if mem.free_count() < wanted {
            return Err(ZcError::NoBuffers { wanted, free: mem.free_count() });
        }
        segs.reserve(wanted);
        for _ in 0..wanted {
            let Some(page) = mem.alloc() else {
                // free_count said yes; a PageMemory shared with another user could still run dry.
                for s in segs.drain(..) {
                    let _ = mem.decref(s.page);
                }
                return Err(ZcError::NoBuffers { wanted, free: mem.free_count() });
            };
            segs.push(PageSlice { page, off: 0, len: 0 });
        }
        Ok(ZcBuf { segs, cap, len: 0, fill: 0, buf_size: bs as u32, orphans: orphans.clone() })
    }

    /// Bytes filled so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been filled.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes this buffer may hold in total.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Bytes that can still be written.
    pub fn remaining(&self) -> usize {
        self.cap - self.len
    }

    /// Number of page segments.
    pub fn segment_count(&self) -> usize {
        self.segs.len()
    }

    /// Appends `data` (F-Stack `ff_zc_mbuf_write`): all of it, or nothing and
    /// `Overflow` if it would exceed the reserved length.
    pub(crate) fn write(&mut self, mem: &mut dyn PageMemory, data: &[u8]) -> Result<(), ZcError> {
        if data.len() > self.remaining() {
            return Err(ZcError::Overflow { cap: self.cap, len: self.len, tried: data.len() });
        }
        let mut done = 0;
        self.fill_with(mem, |room| {
            let n = room.len().min(data.len() - done);
            room[..n].copy_from_slice(&data[done..done + n]);
            done += n;
            n
        });
        debug_assert_eq!(done, data.len());
        Ok(())
    }

    /// Lets `f` fill the buffer in place: `f` gets the free room of the
    /// current page (never past the reserved length) and returns how many
    /// bytes it wrote there; filling moves on to the next page while `f`
    /// fills whole rooms, and stops when it returns less (or the buffer is
    /// full). Returns the bytes added.
    pub(crate) fn fill_with(&mut self, mem: &mut dyn PageMemory, mut f: impl FnMut(&mut [u8]) -> usize) -> usize {
        let mut added = 0;
        while self.remaining() > 0 && self.fill < self.segs.len() {
            let s = &mut self.segs[self.fill];
            let start = (s.off + s.len) as usize;
            let room = (self.buf_size as usize - start).min(self.cap - self.len);
            if room == 0 {
                self.fill += 1;
                continue;
            }
            let n = f(&mut mem.bytes_mut(s.page)[start..start + room]).min(room);
            s.len += n as u32;
            self.len += n;
            added += n;
            if n < room {
                break;
            }
        }
        added
    }

    /// The filled bytes of segment `i` (for checking or reading back).
    pub(crate) fn segment<'m>(&self, mem: &'m dyn PageMemory, i: usize) -> &'m [u8] {
        mem.slice(self.segs[i])
    }

    /// Takes the filled segments out, leaving the buffer empty: their
    /// references move to the caller; pages never written to are freed.
    pub(crate) fn take_filled(&mut self, mem: &mut dyn PageMemory) -> SmallVec<[PageSlice; 2]> {
        self.cap = 0;
        self.len = 0;
        self.fill = 0;
        let mut segs = std::mem::take(&mut self.segs);
        segs.retain(|s| {
            if s.len == 0 {
                let _ = mem.decref(s.page);
            }
            s.len > 0
        });
        segs
    }

    /// Splits after `n` filled bytes: `self` keeps the first `n`, the
    /// returned buffer the rest (and the unfilled room). A page cut in two is
    /// shared (one extra reference), each side holding its own byte range.
    pub(crate) fn split_off(&mut self, n: usize, mem: &mut dyn PageMemory) -> ZcBuf {
        debug_assert!(n <= self.len);
        let mut left = n;
        let mut i = 0;
        while i < self.segs.len() && left >= self.segs[i].len as usize && self.segs[i].len > 0 {
            left -= self.segs[i].len as usize;
            i += 1;
        }
        let mut rest: SmallVec<[PageSlice; 2]> = self.segs.drain(i..).collect();
        if left > 0 {
            // Cut segment `i` (now rest[0]) at `left`.
            let s = rest[0];
            let _ = mem.incref(s.page);
            self.segs.push(PageSlice { page: s.page, off: s.off, len: left as u32 });
            rest[0] = PageSlice { page: s.page, off: s.off + left as u32, len: s.len - left as u32 };
        }
        // The tail fills on from its last non-empty segment; its capacity is
        // what it holds plus the room left in its pages (never more than
        // the original reservation had left).
        let fill = rest.iter().rposition(|s| s.len > 0).unwrap_or(0);
        let tail_len = self.len - n;
        let room: usize = rest.iter().skip(fill).map(|s| self.buf_size as usize - (s.off + s.len) as usize).sum();
        let tail = ZcBuf {
            segs: rest,
            cap: (self.cap - n).min(tail_len + room),
            len: tail_len,
            fill,
            buf_size: self.buf_size,
            orphans: self.orphans.clone(),
        };
        self.cap = n;
        self.len = n;
        self.fill = self.segs.len();
        tail
    }

    /// The segment holding filled byte `off` and the offset inside it. Every
    /// segment but the first and the last is a whole page (buffers fill page
    /// by page), so this is arithmetic, not a scan.
    fn locate(&self, off: usize) -> (usize, usize) {
        debug_assert!(self
            .segs
            .iter()
            .skip(1)
            .take(self.segs.len().saturating_sub(2))
            .all(|s| s.off == 0 && s.len == self.buf_size));
        let first = self.segs.first().map_or(0, |s| s.len as usize);
        if off < first {
            (0, off)
        } else {
            let (bs, rest) = (self.buf_size as usize, off - first);
            if bs.is_power_of_two() {
                // Page arrays use power-of-two buffers: a shift, not a division.
                (1 + (rest >> bs.trailing_zeros()), rest & (bs - 1))
            } else {
                (1 + rest / bs, rest % bs)
            }
        }
    }

    /// The part of filled bytes `[off, off + len)` that lies in the buffer
    /// holding byte `off`, as a page slice (shorter than `len` when the
    /// range crosses into the next buffer; `None` when the range is empty or
    /// not filled). Takes no reference.
    #[inline]
    pub(crate) fn head(&self, off: usize, len: usize) -> Option<PageSlice> {
        if len == 0 || off.checked_add(len).is_none_or(|end| end > self.len) {
            return None;
        }
        let (i, skip) = self.locate(off);
        let s = self.segs.get(i)?;
        let n = (s.len as usize).checked_sub(skip)?.min(len);
        (n > 0).then(|| PageSlice { page: s.page, off: s.off + skip as u32, len: n as u32 })
    }

    /// A read-only buffer sharing filled bytes `[off, off + len)` of this one
    /// (one more reference per page; no copy): the same bytes can be sent on
    /// many connections, like a cache serving one object to many clients.
    pub(crate) fn share(&self, mem: &mut dyn PageMemory, off: usize, len: usize) -> Result<ZcBuf, ZcError> {
        if len == 0 {
            return Err(ZcError::Empty);
        }
        if off.checked_add(len).is_none_or(|end| end > self.len) {
            return Err(ZcError::Overflow { cap: self.len, len: off, tried: len });
        }
        let mut segs: SmallVec<[PageSlice; 2]> = SmallVec::new();
        let (start, mut skip) = self.locate(off);
        let mut left = len;
        for s in &self.segs[start..] {
            if left == 0 {
                break;
            }
            let l = s.len as usize;
            if skip >= l {
                skip -= l;
                continue;
            }
            let n = (l - skip).min(left);
            if !share_ref(mem, s.page) {
                for t in segs.drain(..) {
                    let _ = mem.decref(t.page);
                }
                return Err(ZcError::NoBuffers { wanted: 1, free: 0 });
            }
            segs.push(PageSlice { page: s.page, off: s.off + skip as u32, len: n as u32 });
            left -= n;
            skip = 0;
        }
        let fill = segs.len();
        Ok(ZcBuf { segs, cap: len, len, fill, buf_size: self.buf_size, orphans: self.orphans.clone() })
    }

    /// Hands filled bytes `[off, off + len)` to `out` as page slices, in
    /// order: `out` returns how many bytes of each it took; stops at the
    /// first slice not taken whole. Returns bytes taken.
    pub(crate) fn copy_range(
        &self,
        mem: &mut dyn PageMemory,
        off: usize,
        len: usize,
        mut out: impl FnMut(PageSlice, &mut dyn PageMemory) -> usize,
    ) -> usize {
        let (mut left, mut taken) = (len.min(self.len.saturating_sub(off)), 0);
        if left == 0 {
            return 0;
        }
        let (start, mut skip) = self.locate(off);
        for s in &self.segs[start..] {
            let n = (s.len as usize - skip).min(left);
            let k = out(PageSlice { page: s.page, off: s.off + skip as u32, len: n as u32 }, mem);
            taken += k;
            if k < n {
                return taken;
            }
            skip = 0;
            left -= n;
            if left == 0 {
                break;
            }
        }
        taken
    }

    /// Drops every page reference (`zc_release_buffers`) and hands back the
    /// emptied slice list for reuse.
    pub(crate) fn release_list(mut self, mem: &mut dyn PageMemory) -> SmallVec<[PageSlice; 2]> {
        let mut list = self.take_filled(mem);
        for s in list.drain(..) {
            let _ = mem.decref(s.page);
        }
        list
    }
}

impl Drop for ZcBuf {
    fn drop(&mut self) {
        if !self.segs.is_empty() {
            // Neither sent nor released: the stack reclaims the pages on its next poll.
            self.orphans.borrow_mut().extend(self.segs.drain(..).map(|s| s.page));
        }
    }
}

/// One message for [`crate::Stack::zc_send`] (Onload `onload_zc_mmsg`):
/// buffers for one socket and, after the call, its own result.
#[derive(Debug)]
pub struct ZcMsg {
    /// The socket to send on.
    pub socket: SocketHandle,
    /// The buffers, in order. After `zc_send` this holds exactly the unsent
    /// ones (the tail of a partly sent buffer included); they stay the
    /// application's to resend or release.
    pub bufs: Vec<ZcBuf>,
    /// Bytes sent, or the error that stopped the message before any byte
    /// went (`None` until sent).
    pub rc: Option<Result<usize, TcpError>>,
}

impl ZcMsg {
    /// A message of `bufs` for `socket`.
    pub fn new(socket: SocketHandle, bufs: Vec<ZcBuf>) -> ZcMsg {
        ZcMsg { socket, bufs, rc: None }
    }
}

/// F-Stack's `struct ff_zc_mbuf` for the C-shaped API: the buffer chain being
/// filled and its write offset and length.
#[derive(Debug, Default)]
pub struct FfZcMbuf {
    /// The chain (`bsd_mbuf`); `None` before `ff_zc_mbuf_get`.
    pub buf: Option<ZcBuf>,
    /// Bytes written so far (`off`).
    pub off: usize,
    /// Bytes reserved (`len`).
    pub len: usize,
}

/// Received data handed to the application without a copy (`read_zc`): a
/// range of a received frame. Dropping the view releases the frame (the
/// mbuf goes back to its pool once nothing else refers to it).
pub struct RxView {
    buf: SharedRx,
    off: usize,
    len: usize,
    /// The receive budget's charge for the frame, returned with the view.
    _charge: Option<crate::rx_budget::Charge>,
}

impl RxView {
    pub(crate) fn new(buf: SharedRx, off: usize, len: usize) -> RxView {
        RxView { buf, off, len, _charge: None }
    }

    /// The view, carrying the receive budget's charge for its frame.
    pub(crate) fn with_charge(mut self, charge: Option<crate::rx_budget::Charge>) -> RxView {
        self._charge = charge;
        self
    }
}

impl std::ops::Deref for RxView {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf.bytes()[self.off..self.off + self.len]
    }
}

impl std::fmt::Debug for RxView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RxView").field("len", &self.len).finish()
    }
}
