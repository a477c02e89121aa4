//! The zero-copy send API of [`Stack`]: F-Stack's `zc_mbuf_get` /
//! `zc_mbuf_write` + `write_zc` (also in its C-shaped `ff_zc_mbuf` form) and
//! Onload's `zc_alloc_buffers` / `zc_send` / `zc_release_buffers`.

use super::Stack;
use crate::mem::PageMemory;
use crate::tcp::send_queue::CopySrc;
use crate::tcp::{SocketHandle, TcpError};
use crate::zc::{FfZcMbuf, ZcBuf, ZcError, ZcMsg};

impl<M: PageMemory> Stack<M> {
    /// Frees the pages of zero-copy buffers the application dropped unsent.
    pub(super) fn reclaim_zc_orphans(&mut self) {
        if !self.zc_handed_out || self.zc_orphans.borrow().is_empty() {
            return; // every poll: a flag, then a shared look, no exclusive borrow
        }
        let mut orphans = self.zc_orphans.borrow_mut();
        for page in orphans.drain(..) {
            self.stats.zc_buffers_reclaimed += 1;
            if self.mem.decref(page).is_err() {
                self.stats.page_errors += 1;
            }
        }
    }

    /// Reserves page-array buffers able to carry `len` bytes (F-Stack
    /// `ff_zc_mbuf_get`). Fill them with [`Stack::zc_mbuf_write`] or
    /// [`Stack::zc_fill`], then send with [`Stack::tcp_write_zc`].
    ///
    /// Under send pressure (see `StackConfig::send_low_water`) a buffer for
    /// no particular connection never takes the reserve and at most one
    /// fair share: [`ZcError::WouldBlock`] past it. Use
    /// [`Stack::zc_mbuf_get_for`] for buffers meant for one connection.
    pub fn zc_mbuf_get(&mut self, len: usize) -> Result<ZcBuf, ZcError> {
        self.zc_admit(None, len)?;
        self.zc_mbuf_get_unchecked(len)
    }

    /// [`Stack::zc_mbuf_get`] for a send on connection `h`: the same rule
    /// as its copying writes. Over its fair share of the page array under
    /// pressure the answer is [`ZcError::WouldBlock`] (try again when the
    /// socket is writable), while connections below their share, and ones
    /// with (almost) empty send queues, still get buffers.
    pub fn zc_mbuf_get_for(&mut self, h: SocketHandle, len: usize) -> Result<ZcBuf, ZcError> {
        self.zc_admit(Some(h), len)?;
        self.zc_mbuf_get_unchecked(len)
    }

    fn zc_mbuf_get_unchecked(&mut self, len: usize) -> Result<ZcBuf, ZcError> {
        self.zc_handed_out = true;
        let list = self.tcp.payload_list(len.div_ceil(self.mem.buf_size()));
        let r = ZcBuf::reserve_in(&mut self.mem, len, &self.zc_orphans, list);
        if matches!(r, Err(ZcError::NoBuffers { .. })) {
            self.stats.pages_exhausted += 1;
        }
        r
    }

    /// Checks an allocation of `len` bytes of pages (for connection `h`, or
    /// none) against the send-pressure rule; counted when refused.
    fn zc_admit(&mut self, h: Option<SocketHandle>, len: usize) -> Result<(), ZcError> {
        if len == 0 {
            return Err(ZcError::Empty);
        }
        self.tcp.observe_pages(&self.mem);
        let wanted = len.div_ceil(self.mem.buf_size());
        let granted = self.tcp.zc_grant(h).map_err(|_| ZcError::InvalidSocket)?;
        // More than is free is plain exhaustion (`NoBuffers`, from the
        // allocation); would-block means the pages exist but are withheld.
        if wanted > granted && wanted <= self.mem.free_count() {
            self.stats.zc_alloc_pressure_limited += 1;
            return Err(ZcError::WouldBlock { wanted, granted });
        }
        Ok(())
    }

    /// Appends `data` to `buf` (F-Stack `ff_zc_mbuf_write`; may be called
    /// repeatedly). Past the reserved length it writes nothing and fails with
    /// [`ZcError::Overflow`].
    pub fn zc_mbuf_write(&mut self, buf: &mut ZcBuf, data: &[u8]) -> Result<(), ZcError> {
        buf.write(&mut self.mem, data)
    }

    /// Fills `buf` in place: `f` gets the free room of one page at a time
    /// (read a file or serialize straight into it) and returns the bytes it
    /// wrote; see [`ZcBuf`]. Returns the bytes added.
    pub fn zc_fill(&mut self, buf: &mut ZcBuf, f: impl FnMut(&mut [u8]) -> usize) -> usize {
        buf.fill_with(&mut self.mem, f)
    }

    /// The filled bytes of segment `i` of `buf`.
    pub fn zc_segment<'a>(&'a self, buf: &ZcBuf, i: usize) -> &'a [u8] {
        buf.segment(&self.mem, i)
    }

    /// Queues `buf` on a connection without copying. Returns the bytes taken
    /// and, if the send buffer had less room, the unsent tail as its own
    /// buffer to send later (F-Stack's #712 crash case). On error nothing is
    /// taken and the buffer comes back with the error.
    ///
    /// Buffers smaller than `StackConfig::zc_min_write` are copied into the
    /// send queue instead (same results, same partial-send contract).
    pub fn tcp_write_zc(&mut self, h: SocketHandle, buf: ZcBuf) -> Result<(usize, Option<ZcBuf>), (TcpError, ZcBuf)> {
        if buf.len() < self.cfg.zc_min_write && !buf.is_empty() {
            return self.write_zc_by_copy(h, buf);
        }
        let r = self.tcp.write_zc(h, buf, &mut self.mem);
        self.stats.tcp_send_pressure_limited += self.tcp.take_pressure_limited();
        if let Ok((n, _)) = &r {
            self.stats.tx_bytes_zero_copy += *n as u64;
        }
        r
    }

    fn write_zc_by_copy(
        &mut self,
        h: SocketHandle,
        mut buf: ZcBuf,
    ) -> Result<(usize, Option<ZcBuf>), (TcpError, ZcBuf)> {
        let taken = match self.copy_to_send_queue(h, &buf, 0, buf.len()) {
            Ok(n) => n,
            Err(e) => return Err((e, buf)),
        };
        let rest = (taken < buf.len()).then(|| buf.split_off(taken, &mut self.mem));
        let list = buf.release_list(&mut self.mem);
        self.tcp.recycle_payload(list);
        Ok((taken, rest))
    }

    /// Sends bytes `[off, off + len)` of `buf` (which stays the caller's,
    /// e.g. a cached object) on a connection, like `sendfile`: by reference
    /// (one more reference on each page, no copy) from `zc_min_write` bytes
    /// up, by copying below — except that a range continuing the one sent
    /// just before goes by reference at any size, and when it starts where
    /// the last queued chunk ends it joins that chunk (no new reference).
    /// Returns the bytes queued (what the send buffer had room for, or the
    /// part in the first page when joining, or up to a page already shared
    /// [`crate::zc::SHARE_REF_LIMIT`] times); send the rest from `off + n`.
    /// `NoBuffers` when the range's first page is at that limit.
    pub fn tcp_send_shared(&mut self, h: SocketHandle, buf: &ZcBuf, off: usize, len: usize) -> Result<usize, TcpError> {
        if off.checked_add(len).is_none_or(|end| end > buf.len()) {
            return Err(TcpError::InvalidArgument);
        }
        if len == 0 {
            return Ok(0);
        }
        if let Some(head) = buf.head(off, len) {
            // Contiguous with the last chunk: that chunk grows, no copy, at
            // any size (the common step of a writer walking a buffer). Only
            // the part in that chunk's page: the caller continues from there.
            let n = self.tcp.extend_shared(h, head)?;
            if n > 0 {
                self.stats.tx_bytes_zero_copy += n as u64;
                return Ok(n);
            }
        }
        if len < self.cfg.zc_min_write && !self.small_send_goes_by_reference(h, buf, off) {
            return self.copy_to_send_queue(h, buf, off, len);
        }
        self.tcp.observe_pages(&self.mem);
        let room = self.tcp.send_room(h)?;
        if room == 0 {
            // Report why nothing fits: the socket's error, shutdown, or a full buffer.
            self.tcp.write(h, &[], &mut self.mem)?;
            return Err(TcpError::WouldBlock);
        }
        let r = self.tcp.write_shared(h, buf, off, len.min(room), &mut self.mem);
        self.stats.tcp_send_pressure_limited += self.tcp.take_pressure_limited();
        let n = r?;
        self.stats.tx_bytes_zero_copy += n as u64;
        Ok(n)
    }

    /// Whether a write below `zc_min_write` still goes by reference: when it
    /// continues, byte for byte, the range of `buf` written just before (a
    /// writer walking a buffer in small steps, sendfile-style), its bytes
    /// join that range's chunk (or start one that the next steps join), so
    /// the frames carry the same few large slices as one big write would.
    /// Isolated small writes are copied: alone they would make tiny slices.
    fn small_send_goes_by_reference(&self, h: SocketHandle, buf: &ZcBuf, off: usize) -> bool {
        off > 0 && buf.head(off - 1, 1).is_some_and(|prev| self.tcp.shared_ended_at(h, prev.page, prev.off + 1))
    }

    /// Copies bytes `[off, off + len)` of `buf` into the connection's send
    /// queue (the below-threshold path); the bytes taken, or why none were.
    fn copy_to_send_queue(&mut self, h: SocketHandle, buf: &ZcBuf, off: usize, len: usize) -> Result<usize, TcpError> {
        let tcp = &mut self.tcp;
        let mut err = None;
        let n =
            buf.copy_range(&mut self.mem, off, len, |piece, mem| match tcp.write_from(h, CopySrc::Page(piece), mem) {
                Ok(n) => n,
                Err(e) => {
                    err = Some(e);
                    0
                }
            });
        if n == 0 {
            return Err(err.unwrap_or(TcpError::WouldBlock));
        }
        self.stats.tx_bytes_copied += n as u64;
        Ok(n)
    }

    /// A buffer sharing bytes `[off, off + len)` of `buf` without copying
    /// (one more reference on each page): send the same bytes on many
    /// connections, e.g. a cached object. Shares have no room to write.
    pub fn zc_share(&mut self, buf: &ZcBuf, off: usize, len: usize) -> Result<ZcBuf, ZcError> {
        buf.share(&mut self.mem, off, len)
    }

    /// Allocates `n` one-page buffers for zero-copy sends (Onload
    /// `onload_zc_alloc_buffers`). Headers travel in separate header
    /// buffers, so the whole page is payload room.
    ///
    /// Under send pressure the same rule as [`Stack::zc_mbuf_get`] applies;
    /// [`Stack::zc_alloc_buffers_for`] allocates for one connection.
    pub fn zc_alloc_buffers(&mut self, n: usize) -> Result<Vec<ZcBuf>, ZcError> {
        self.zc_admit(None, n.saturating_mul(self.mem.buf_size()))?;
        self.zc_alloc_buffers_unchecked(n)
    }

    /// [`Stack::zc_alloc_buffers`] for sends on connection `h`, under its
    /// fair share (see [`Stack::zc_mbuf_get_for`]).
    pub fn zc_alloc_buffers_for(&mut self, h: SocketHandle, n: usize) -> Result<Vec<ZcBuf>, ZcError> {
        self.zc_admit(Some(h), n.saturating_mul(self.mem.buf_size()))?;
        self.zc_alloc_buffers_unchecked(n)
    }

    fn zc_alloc_buffers_unchecked(&mut self, n: usize) -> Result<Vec<ZcBuf>, ZcError> {
        let bs = self.mem.buf_size();
        if self.mem.free_count() < n {
            self.stats.pages_exhausted += 1;
            return Err(ZcError::NoBuffers { wanted: n, free: self.mem.free_count() });
        }
        self.zc_handed_out = true;
        (0..n).map(|_| ZcBuf::reserve(&mut self.mem, bs, &self.zc_orphans)).collect()
    }

    /// Sends each message's buffers on its socket (Onload `onload_zc_send`).
    /// Each message gets its own result: the bytes sent, or the error that
    /// stopped it before any byte went. Buffers not (fully) sent stay in
    /// `msg.bufs` — exactly the unsent bytes — and remain the
    /// application's. Returns the number of messages processed (all).
    pub fn zc_send(&mut self, msgs: &mut [ZcMsg]) -> usize {
        for msg in msgs.iter_mut() {
            let mut sent = 0usize;
            let mut err = None;
            let mut bufs = std::mem::take(&mut msg.bufs).into_iter();
            let mut unsent = Vec::new();
            for buf in bufs.by_ref() {
                match self.tcp_write_zc(msg.socket, buf) {
                    Ok((n, rest)) => {
                        sent += n;
                        if let Some(rest) = rest {
                            unsent.push(rest);
                            break;
                        }
                    }
                    Err((e, buf)) => {
                        err = Some(e);
                        unsent.push(buf);
                        break;
                    }
                }
            }
            unsent.extend(bufs);
            msg.bufs = unsent;
            msg.rc = Some(match (sent, err) {
                (0, Some(e)) => Err(e),
                _ => Ok(sent),
            });
        }
        msgs.len()
    }

    /// Gives buffers back (Onload `onload_zc_release_buffers`).
    pub fn zc_release_buffers(&mut self, bufs: impl IntoIterator<Item = ZcBuf>) {
        for b in bufs {
            let list = b.release_list(&mut self.mem);
            self.tcp.recycle_payload(list);
        }
    }

    /// `ff_zc_mbuf_get`: reserves `len` bytes into `m` (any chain it held is
    /// released first).
    pub fn ff_zc_mbuf_get(&mut self, m: &mut FfZcMbuf, len: usize) -> Result<(), ZcError> {
        if let Some(old) = m.buf.take() {
            self.zc_release_buffers([old]);
        }
        m.buf = Some(self.zc_mbuf_get(len)?);
        m.off = 0;
        m.len = len;
        Ok(())
    }

    /// `ff_zc_mbuf_write`: appends to `m` (all or nothing).
    pub fn ff_zc_mbuf_write(&mut self, m: &mut FfZcMbuf, data: &[u8]) -> Result<(), ZcError> {
        let buf = m.buf.as_mut().ok_or(ZcError::Empty)?;
        buf.write(&mut self.mem, data)?;
        m.off = buf.len();
        Ok(())
    }

    /// `ff_write` of a zero-copy chain (`InvalidArgument` if `m` holds none):
    /// queues what fits; on a partial send
    /// `m` keeps exactly the unsent bytes (`off`/`len` updated) for a later
    /// call, so a chain larger than the send space never crashes or drops.
    pub fn ff_zc_write(&mut self, h: SocketHandle, m: &mut FfZcMbuf) -> Result<usize, TcpError> {
        let buf = m.buf.take().ok_or(TcpError::InvalidArgument)?;
        match self.tcp_write_zc(h, buf) {
            Ok((n, rest)) => {
                m.off = rest.as_ref().map_or(0, ZcBuf::len);
                m.len = rest.as_ref().map_or(0, ZcBuf::capacity);
                m.buf = rest;
                Ok(n)
            }
            Err((e, buf)) => {
                m.buf = Some(buf);
                Err(e)
            }
        }
    }
}
