//! The engine facade: the socket operations the stack exposes (read, write,
//! shutdown, close, options, queries), each resolving a handle once.

use super::*;

/// `read` would return data, end of stream or an error.
#[inline]
fn conn_readable(c: &Conn) -> bool {
    c.recv_len() > 0 || c.at_eof() || c.read_shut() || c.error.is_some()
}

/// The peer's FIN was received in order, or the connection is gone (RFC
/// 9293 §3.10.7.4, eighth step: CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT).
#[inline]
pub(super) fn conn_peer_closed(c: &Conn) -> bool {
    matches!(c.state, State::CloseWait | State::Closing | State::LastAck | State::TimeWait | State::Closed)
}

/// A connection's readiness in one piece ([`TcpEngine::readiness`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// RFC 9293 state.
    pub state: State,
    /// The pending error, if any.
    pub error: Option<TcpError>,
    /// `read` would return data, end of stream or an error.
    pub readable: bool,
    /// `write` would take at least one byte (or fail).
    pub writable: bool,
    /// No more data will come and none is queued (or the connection is gone).
    pub hung_up: bool,
    /// The peer's FIN arrived in order (data may still be queued).
    pub peer_closed: bool,
    /// Bytes ready to read.
    pub recv_queued: usize,
    /// Bytes `write` would take now.
    pub send_room: usize,
}

impl TcpEngine {
    /// Reads received bytes. `Ok(0)` means end of stream: the peer closed,
    /// the application shut the receive side (`SHUT_RD`), or the
    /// connection's error was already reported once (Linux: the first read
    /// after a reset says `Reset`, later ones 0). An empty `buf` gives
    /// `Ok(0)` only when data is queued or at end of stream; otherwise what
    /// a read finding nothing gives (`WouldBlock`, or the pending error).
    pub fn read(&mut self, h: SocketHandle, buf: &mut [u8]) -> Result<usize, TcpError> {
        let c = self.conn_mut(h)?;
        if buf.is_empty() {
            return Self::zero_length_read(c);
        }
        let n = c.read(buf);
        if n > 0 {
            if c.wants_output() {
                self.mark(h.idx);
            }
            return Ok(n);
        }
        Self::nothing_to_read(c).map(|()| 0)
    }

    /// Copies received bytes without consuming them (`MSG_PEEK`): the next
    /// read returns them again. End of stream and errors as [`TcpEngine::read`].
    pub fn peek(&mut self, h: SocketHandle, buf: &mut [u8]) -> Result<usize, TcpError> {
        self.peek_vectored(h, &mut [buf])
    }

    /// [`TcpEngine::peek`] into several buffers in order, each filled
    /// before the next (`recvmsg`/`readv`-style `MSG_PEEK`); the count,
    /// bytes. No room in any buffer: as a zero-length [`TcpEngine::read`].
    pub fn peek_vectored(&mut self, h: SocketHandle, bufs: &mut [&mut [u8]]) -> Result<usize, TcpError> {
        let c = self.conn_mut(h)?;
        if bufs.iter().all(|b| b.is_empty()) {
            return Self::zero_length_read(c);
        }
        match c.peek_vectored(bufs) {
            0 => Self::nothing_to_read(c).map(|()| 0),
            n => Ok(n),
        }
    }

    /// A read with no room (Linux's `tcp_recvmsg` for a length of 0):
    /// `Ok(0)` when data is queued or at end of stream, else what a read
    /// that found nothing reports — the pending error (taken) or
    /// `WouldBlock` — so a zero-length read on a live, idle connection does
    /// not look like end of stream.
    fn zero_length_read(c: &mut Conn) -> Result<usize, TcpError> {
        if c.recv_len() > 0 {
            return Ok(0);
        }
        Self::nothing_to_read(c).map(|()| 0)
    }

    /// Why a read found no data: `Ok` for end of stream, else the pending
    /// error (reported once), `NotConnected`, or `WouldBlock`.
    pub(super) fn nothing_to_read(c: &mut Conn) -> Result<(), TcpError> {
        if c.at_eof() || c.read_shut() {
            return Ok(());
        }
        if c.error.is_some() {
            // Reported once, then end of stream, as Linux (the call to
            // `take_error` is made only when there is one).
            return c.take_error().map_or(Ok(()), Err);
        }
        if matches!(c.state, State::Closed) {
            return Err(TcpError::NotConnected);
        }
        Err(TcpError::WouldBlock)
    }

    /// Bytes a read would return now (`FIONREAD`, `SIOCINQ`).
    pub fn recv_queued(&self, h: SocketHandle) -> Result<usize, TcpError> {
        Ok(self.conn(h)?.recv_len())
    }

    /// `shutdown(SHUT_RD)`: queued data is discarded, data arriving later
    /// is acknowledged and discarded, and reads return end of stream. (RFC
    /// 9293 has no receive shutdown; these are the BSD semantics
    /// (`sorflush`, data to a socket that cannot receive more is dropped
    /// after being acknowledged): the peer is never stalled by a window
    /// nobody will open, and memory nobody will read is never held. Linux
    /// instead keeps queueing and lets queued data be read.)
    pub fn shutdown_read(&mut self, h: SocketHandle) -> Result<(), TcpError> {
        self.conn_mut(h)?.shutdown_read();
        self.note(h.idx);
        self.mark(h.idx);
        Ok(())
    }

    /// The error a write reports on a connection that failed: its error the
    /// first time it is reported, `Shutdown` (`EPIPE`) afterwards.
    pub(super) fn write_error(c: &mut Conn) -> Option<TcpError> {
        c.error?;
        Some(c.take_error().unwrap_or(TcpError::Shutdown))
    }

    /// Takes the next piece of received data without copying (zero-copy
    /// receive): `Ok(Some(view))`, or `Ok(None)` at end of stream.
    pub fn read_zc(&mut self, h: SocketHandle) -> Result<Option<crate::zc::RxView>, TcpError> {
        let c = self.conn_mut(h)?;
        if let Some(v) = c.read_zc() {
            if c.wants_output() {
                self.mark(h.idx);
            }
            return Ok(Some(v));
        }
        Self::nothing_to_read(c).map(|()| None)
    }

    /// Queues a copy of what fits of `data`; returns bytes taken.
    pub fn write<M: PageMemory + ?Sized>(
        &mut self,
        h: SocketHandle,
        data: &[u8],
        mem: &mut M,
    ) -> Result<usize, TcpError> {
        self.write_from(h, send_queue::CopySrc::Bytes(data), mem)
    }

    /// [`TcpEngine::write`] from bytes or from a page buffer range. Generic
    /// over the page memory: the stack passes its concrete type, so the
    /// copy's page allocation and bytes are reached without a call through
    /// a trait object (`&mut dyn PageMemory` callers work unchanged).
    pub fn write_from<M: PageMemory + ?Sized>(
        &mut self,
        h: SocketHandle,
        data: send_queue::CopySrc<'_>,
        mem: &mut M,
    ) -> Result<usize, TcpError> {
        // One slot lookup for the whole write (the hot path of every send):
        // the connection and the send-pressure state are separate fields.
        let c = match self.slots.get_mut(h.idx as usize) {
            Some(Slot { gen, sock: Some(Sock::Conn(c)) }) if *gen == h.gen && !c.orphan => c,
            _ => return Err(TcpError::InvalidHandle),
        };
        if let Some(e) = Self::write_error(c) {
            return Err(e);
        }
        if !c.can_send() {
            return Err(if c.state == State::Closed { TcpError::NotConnected } else { TcpError::Shutdown });
        }
        if data.is_empty() {
            return Ok(0);
        }
        let room = c.send_room();
        if room == 0 {
            return Err(TcpError::WouldBlock);
        }
        self.pressure.observe(mem);
        let want = data.len().min(room);
        let limit = if want <= self.pressure.unlimited_bytes() {
            want
        } else {
            self.pressure.room(h.idx, c.send_pages(self.pressure.buf_size()).1, true)
        };
        if limit < want {
            self.pressure_limited += 1;
            self.pressure.note_limited(h.idx);
            if limit == 0 {
                return Err(TcpError::WouldBlock);
            }
        }
        let n = c.write(data.truncate(limit), mem);
        self.pressure.account(h.idx, c.send_pages(1).0);
        if n == 0 {
            return Err(TcpError::NoBuffers);
        }
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(h.idx);
        }
        Ok(n)
    }

    /// Grows the connection's last zero-copy chunk by the application range
    /// `s` when `s` starts where that chunk ends in the same page
    /// ([`send_queue::SendQueue::extend_tail`]); `Ok(0)` when it does not
    /// (nothing taken). Errors as [`TcpEngine::write_from`].
    pub fn extend_shared(&mut self, h: SocketHandle, s: crate::mem::PageSlice) -> Result<usize, TcpError> {
        let c = self.conn_mut(h)?;
        if let Some(e) = Self::write_error(c) {
            return Err(e);
        }
        if !c.can_send() {
            return Err(if c.state == State::Closed { TcpError::NotConnected } else { TcpError::Shutdown });
        }
        let room = c.send_room();
        if room == 0 {
            return Err(TcpError::WouldBlock);
        }
        let n = c.extend_shared(s);
        if n > 0 {
            self.mark(h.idx);
        }
        Ok(n)
    }

    /// Whether the last application range written to the connection ended
    /// at byte `at` of `page` (false for an unknown handle).
    pub fn shared_ended_at(&self, h: SocketHandle, page: crate::mem::PageId, at: u32) -> bool {
        self.conn(h).is_ok_and(|c| c.shared_ended_at(page, at))
    }

    /// Queues the filled bytes of `buf` without copying; returns the bytes
    /// taken and, when the send buffer had less room than `buf` holds, the
    /// unsent tail as a buffer of its own (never dropped, never a crash).
    /// On error nothing was taken and `buf` comes back with the error.
    pub fn write_zc(
        &mut self,
        h: SocketHandle,
        mut buf: ZcBuf,
        mem: &mut dyn PageMemory,
    ) -> Result<(usize, Option<ZcBuf>), (TcpError, ZcBuf)> {
        let take = match self.zc_take(h, buf.len(), mem) {
            Ok(0) => return Ok((0, Some(buf))),
            Ok(take) => take,
            Err(e) => return Err((e, buf)),
        };
        let c = match self.conn_mut(h) {
            Ok(c) => c,
            Err(e) => return Err((e, buf)),
        };
        let tail = (take < buf.len()).then(|| buf.split_off(take, mem));
        let mut list = buf.take_filled(mem);
        c.write_slices(list.drain(..));
        // The emptied list serves the next multi-page buffer.
        self.recycle_payload(list);
        self.account_pages(h.idx);
        self.mark(h.idx);
        Ok((take, tail))
    }

    /// Queues bytes `[off, off + len)` of `buf` by reference (one more
    /// reference per page slice, no copy, no allocation: the slices go
    /// straight into the send queue); `buf` stays the caller's. Returns the
    /// bytes queued: what the send buffer and send pressure allow, less if
    /// a page is at [`crate::zc::SHARE_REF_LIMIT`] references (then
    /// `NoBuffers` when none was queued). `InvalidArgument` when the range
    /// is not within `buf`'s filled bytes.
    pub fn write_shared(
        &mut self,
        h: SocketHandle,
        buf: &ZcBuf,
        off: usize,
        len: usize,
        mem: &mut dyn PageMemory,
    ) -> Result<usize, TcpError> {
        if off.checked_add(len).is_none_or(|end| end > buf.len()) {
            return Err(TcpError::InvalidArgument);
        }
        let take = self.zc_take(h, len, mem)?;
        if take == 0 {
            return Ok(0);
        }
        let c = self.conn_mut(h)?;
        let n = buf.copy_range(mem, off, take, |s, mem| {
            if s.len == 0 || !crate::zc::share_ref(mem, s.page) {
                return 0;
            }
            c.write_slices([s]);
            s.len as usize
        });
        if n == 0 {
            return Err(TcpError::NoBuffers);
        }
        self.account_pages(h.idx);
        self.mark(h.idx);
        Ok(n)
    }

    /// How many of `len` bytes a by-reference write may queue now: the
    /// connection's error, a shutdown, a full send buffer or send pressure
    /// (counted, and the socket told when room returns) refuse; 0 only
    /// when `len` is 0.
    fn zc_take(&mut self, h: SocketHandle, len: usize, mem: &mut dyn PageMemory) -> Result<usize, TcpError> {
        let c = self.conn_mut(h)?;
        if let Some(e) = Self::write_error(c) {
            return Err(e);
        }
        if !c.can_send() {
            return Err(if c.state == State::Closed { TcpError::NotConnected } else { TcpError::Shutdown });
        }
        if len == 0 {
            return Ok(0);
        }
        let room = len.min(c.send_room());
        if room == 0 {
            return Err(TcpError::WouldBlock);
        }
        self.pressure.observe(mem);
        let limit = self.pressure_room(h.idx, self.conn(h)?, false);
        if limit < room {
            self.pressure_limited(h.idx);
        }
        match room.min(limit) {
            0 => Err(TcpError::WouldBlock),
            take => Ok(take),
        }
    }

    /// Half-closes: FIN after the queued data.
    pub fn shutdown_write(&mut self, h: SocketHandle) -> Result<(), TcpError> {
        let c = self.conn_mut(h)?;
        c.shutdown_write();
        self.mark(h.idx);
        Ok(())
    }

    /// Closes the socket. Unread received data aborts the connection with a
    /// RST (as Linux does); otherwise a FIN follows the queued data and the
    /// connection finishes on its own. The handle is invalid afterwards.
    pub(crate) fn close(
        &mut self,
        h: SocketHandle,
        now: Instant,
        mem: &mut dyn PageMemory,
        out: &mut Vec<SegOut>,
    ) -> Result<(), TcpError> {
        if let Ok(l) = self.listener_mut(h) {
            let port = l.local.port();
            let pending: Vec<u32> = l.accept_q.drain(..).collect();
            self.listeners.remove(&port);
            // Abort queued and half-open children.
            let children: Vec<u32> = self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| match &s.sock {
                    Some(Sock::Conn(c)) if c.parent == Some(h.idx) => Some(i as u32),
                    _ => None,
                })
                .chain(pending)
                .collect();
            for i in children {
                if let Some(Slot { sock: Some(Sock::Conn(c)), .. }) = self.slots.get_mut(i as usize) {
                    if let Some(r) = c.abort(mem) {
                        out.push(r);
                    }
                    self.free_slot(i);
                }
            }
            self.free_slot(h.idx);
            return Ok(());
        }
        let c = self.conn_mut(h)?;
        if c.recv_len() > 0 || c.state == State::Closed || c.linger == Some(Duration::ZERO) {
            if let Some(r) = c.abort(mem) {
                out.push(r);
            }
            self.free_slot(h.idx);
            return Ok(());
        }
        c.shutdown_write();
        c.orphan = true;
        if c.state == State::Closed {
            self.free_slot(h.idx);
            return Ok(());
        }
        c.start_linger(now);
        self.mark(h.idx);
        self.schedule(h.idx);
        Ok(())
    }

    /// Aborts with a RST and frees the socket (`SO_LINGER` 0 then close).
    pub(crate) fn abort(
        &mut self,
        h: SocketHandle,
        mem: &mut dyn PageMemory,
        out: &mut Vec<SegOut>,
    ) -> Result<(), TcpError> {
        let c = self.conn_mut(h)?;
        if let Some(r) = c.abort(mem) {
            out.push(r);
        }
        self.free_slot(h.idx);
        Ok(())
    }

    /// Aborts every connection (RST to each synchronized peer) and closes
    /// every listener: what a process exit does to its sockets. Returns the
    /// number of connections aborted.
    #[cold]
    #[inline(never)]
    pub(crate) fn abort_all(&mut self, mem: &mut dyn PageMemory, out: &mut Vec<SegOut>) -> usize {
        let mut n = 0;
        for i in 0..self.slots.len() {
            match self.slots[i].sock.as_mut() {
                Some(Sock::Conn(c)) => {
                    if let Some(r) = c.abort(mem) {
                        out.push(r);
                    }
                    n += 1;
                }
                Some(Sock::Listener(_)) => {}
                None => continue,
            }
            if let Some(Sock::Listener(l)) = &self.slots[i].sock {
                self.listeners.remove(&l.local.port());
            }
            self.free_slot(i as u32);
        }
        n
    }

    /// The connection's state.
    pub fn state(&self, h: SocketHandle) -> Result<State, TcpError> {
        Ok(self.conn(h)?.state)
    }

    /// Whether `read` would return data, EOF or an error.
    pub fn readable(&self, h: SocketHandle) -> bool {
        self.conn(h).map(conn_readable).unwrap_or(false)
    }

    /// Whether connection `h` has nothing for a reader: no data, no end of
    /// stream, no error, the peer's FIN not in (`false` if `h` names no
    /// connection). It stays so until the engine reports the connection
    /// ([`TcpEngine::take_notifications`]) or the application shuts its
    /// receive side down: a readiness layer may skip re-checking a
    /// level-triggered reader until then.
    pub fn read_quiet(&self, h: SocketHandle) -> bool {
        // (An error makes a connection readable.)
        self.conn(h).map(|c| !conn_readable(c) && !conn_peer_closed(c)).unwrap_or(false)
    }

    /// Whether `write` would take at least one byte (or fail), with the
    /// page array's free count as last observed ([`TcpEngine::observe_pages`]).
    pub fn writable(&self, h: SocketHandle) -> bool {
        self.conn(h)
            .map(|c| {
                (c.state.synchronized() && c.can_send() && c.send_room() > 0 && self.pressure_room(h.idx, c, true) > 0)
                    || c.error.is_some()
            })
            .unwrap_or(false)
    }

    /// Free space in the send buffer (0 also when the socket cannot send:
    /// `write` then reports why), with the page array's free count as last
    /// observed ([`TcpEngine::observe_pages`]).
    pub fn send_room(&self, h: SocketHandle) -> Result<usize, TcpError> {
        let c = self.conn(h)?;
        Ok(if c.can_send() && c.error.is_none() { c.send_room().min(self.pressure_room(h.idx, c, true)) } else { 0 })
    }

    /// Bytes queued for sending and not yet acknowledged.
    pub fn send_queued(&self, h: SocketHandle) -> Result<usize, TcpError> {
        Ok(self.conn(h)?.send_queued())
    }

    /// The connection's pending error, if any.
    pub fn error(&self, h: SocketHandle) -> Option<TcpError> {
        self.conn(h).ok().and_then(|c| c.error)
    }

    /// What a readiness interface (poll, epoll, kqueue) reports of
    /// connection `h`, from one lookup: each field equals what the query
    /// of the same name returns ([`TcpEngine::state`], [`TcpEngine::error`],
    /// [`TcpEngine::readable`], [`TcpEngine::writable`],
    /// [`TcpEngine::hung_up`], [`TcpEngine::peer_closed`],
    /// [`TcpEngine::recv_queued`], [`TcpEngine::send_room`]).
    /// `InvalidHandle` if `h` names no connection.
    pub fn readiness(&self, h: SocketHandle) -> Result<Readiness, TcpError> {
        let c = self.conn(h)?;
        // send_room's rule; can_send already excludes a failed connection.
        let room = if c.can_send() { c.send_room().min(self.pressure_room(h.idx, c, true)) } else { 0 };
        Ok(Readiness {
            state: c.state,
            error: c.error,
            readable: conn_readable(c),
            writable: (c.state.synchronized() && room > 0) || c.error.is_some(),
            hung_up: c.at_eof() || c.state == State::Closed,
            peer_closed: conn_peer_closed(c),
            recv_queued: c.recv_len(),
            send_room: room,
        })
    }

    /// Local and remote addresses.
    pub fn addrs(&self, h: SocketHandle) -> Result<(SocketAddrV4, SocketAddrV4), TcpError> {
        let c = self.conn(h)?;
        Ok((c.local, c.remote))
    }

    /// A one-line description of the connection's sequence space, windows and
    /// timers (for diagnostics and `zcstat`).
    pub fn describe(&self, h: SocketHandle) -> Result<String, TcpError> {
        Ok(self.conn(h)?.describe())
    }

    /// What the connection's out-of-order store holds, and the receive
    /// window it is bounded by.
    pub fn ooo_usage(&self, h: SocketHandle) -> Result<ooo_store::OooUsage, TcpError> {
        Ok(self.conn(h)?.ooo_usage())
    }

    /// `setsockopt`: on a listener the option applies to connections it
    /// accepts from now on; on a connection it takes effect at once
    /// (`SO_REUSEADDR` only matters before `listen`/`connect`: see [`SocketOptions`]).
    pub fn set_option(&mut self, h: SocketHandle, opt: SockOpt, now: Instant) -> Result<(), TcpError> {
        opt.check()?;
        let opt = limits::cap_buffer(&self.cfg, opt);
        let shared = self.shared_cfg.clone();
        if let Ok(l) = self.listener_mut(h) {
            l.opts.set(opt);
            l.conn_cfg = l.opts.conn_config(&shared);
            return Ok(());
        }
        self.conn_mut(h)?.set_option(opt, now);
        self.mark(h.idx);
        self.schedule(h.idx);
        Ok(())
    }

    /// `getsockopt` (`SO_ERROR` returns the pending error and clears it).
    pub fn get_option(&mut self, h: SocketHandle, name: SockOptName) -> Result<SockOpt, TcpError> {
        let (cfg, mtu) = (self.cfg, self.mtu);
        if let Ok(l) = self.listener_mut(h) {
            return Ok(l.opts.get_with_mtu(name, &cfg, mtu));
        }
        Ok(self.conn_mut(h)?.get_option(name))
    }

    /// An ICMP error about one of our segments (see [`Conn::on_icmp`]):
    /// applied to the connection of its 4-tuple if the quoted sequence
    /// number is one of ours in flight; otherwise ignored and counted.
    #[cold]
    #[inline(never)]
    pub(crate) fn icmp_error(&mut self, err: &icmp::IcmpTcpError, mem: &mut dyn PageMemory, stats: &mut Stats) {
        let Some(&idx) = self.conns.get(&(err.local, err.remote)) else {
            stats.drop_icmp_tcp_no_conn += 1;
            return;
        };
        let Some(Slot { sock: Some(Sock::Conn(c)), .. }) = self.slots.get_mut(idx as usize) else { return };
        let was = c.state;
        match c.on_icmp(err.seq, err.error, mem, stats) {
            Err(()) => stats.drop_icmp_tcp_bad_seq += 1,
            Ok(outcome) => {
                stats.tcp_icmp_errors += 1;
                tracing::debug!(local = %err.local, remote = %err.remote, error = ?err.error, "ICMP error applied");
                self.account_pages(idx);
                if outcome == Outcome::Closed {
                    self.finish(idx, was);
                    return;
                }
                self.note(idx);
                self.mark(idx);
                self.schedule(idx);
            }
        }
    }

    /// Smoothed RTT and congestion window, for diagnostics.
    pub fn rtt_cwnd(&self, h: SocketHandle) -> Result<(Option<Duration>, u32), TcpError> {
        let c = self.conn(h)?;
        Ok((c.srtt(), c.cwnd()))
    }
}
