//! The connection table: slots with generation-checked handles, the
//! 4-tuple map (one hash per segment), readiness marks, timer scheduling
//! and slot release.

use super::*;

impl TcpEngine {
    pub(super) fn alloc_slot(&mut self, sock: Sock) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize].sock = Some(sock);
                i
            }
            None => {
                self.slots.push(Slot { gen: 0, sock: Some(sock) });
                let idx = (self.slots.len() - 1) as u32;
                self.pressure.track_slot(idx);
                idx
            }
        }
    }

    /// A slot for a new connection, in a recycled box when one is kept
    /// (its queues' storage adopted by `conn`): a connection per request
    /// allocates nothing in steady state.
    pub(super) fn alloc_conn(&mut self, conn: Conn) -> u32 {
        let boxed = match self.conn_spares.pop() {
            Some(mut b) => {
                let mut old = std::mem::replace(&mut *b, conn);
                b.adopt_storage(&mut old);
                b
            }
            None => Box::new(conn),
        };
        self.alloc_slot(Sock::Conn(boxed))
    }

    pub(super) fn handle(&self, idx: u32) -> SocketHandle {
        SocketHandle { idx, gen: self.slots[idx as usize].gen }
    }

    pub(super) fn conn(&self, h: SocketHandle) -> Result<&Conn, TcpError> {
        match self.slots.get(h.idx as usize) {
            Some(Slot { gen, sock: Some(Sock::Conn(c)) }) if *gen == h.gen && !c.orphan => Ok(c),
            _ => Err(TcpError::InvalidHandle),
        }
    }

    pub(super) fn conn_mut(&mut self, h: SocketHandle) -> Result<&mut Conn, TcpError> {
        match self.slots.get_mut(h.idx as usize) {
            Some(Slot { gen, sock: Some(Sock::Conn(c)) }) if *gen == h.gen && !c.orphan => Ok(c),
            _ => Err(TcpError::InvalidHandle),
        }
    }

    pub(super) fn listener_mut(&mut self, h: SocketHandle) -> Result<&mut Listener, TcpError> {
        match self.slots.get_mut(h.idx as usize) {
            Some(Slot { gen, sock: Some(Sock::Listener(l)) }) if *gen == h.gen => Ok(l),
            _ => Err(TcpError::InvalidHandle),
        }
    }

    /// Whether any connection uses `port` as its local port. A scan of the
    /// table: only `listen`/`connect` with an explicit port without
    /// `SO_REUSEADDR` ask, never the per-segment path.
    pub(super) fn port_in_use(&self, port: u16) -> bool {
        self.conns.keys().any(|(l, _)| l.port() == port)
    }

    pub(super) fn free_slot(&mut self, idx: u32) {
        if let Some(Sock::Conn(mut c)) = self.slots[idx as usize].sock.take() {
            self.unmap((c.local, c.remote), idx);
            if self.conn_spares.len() < CONN_SPARES && c.scrub_for_reuse() {
                self.conn_spares.push(c);
            }
        }
        self.pressure.account(idx, 0);
        let slot = &mut self.slots[idx as usize];
        slot.gen = slot.gen.wrapping_add(1);
        self.free.push(idx);
    }

    pub(super) fn mark(&mut self, idx: u32) {
        if let Some(Slot { sock: Some(Sock::Conn(c)), .. }) = self.slots.get_mut(idx as usize) {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(idx);
            }
        }
    }

    /// Re-arms connection `idx`'s timer (see [`rearm`]).
    pub(super) fn schedule(&mut self, idx: u32) {
        if let Some(Slot { sock: Some(Sock::Conn(c)), .. }) = self.slots.get_mut(idx as usize) {
            rearm(c, &mut self.timers, idx);
        }
    }

    pub(super) fn isn(&self, local: SocketAddrV4, remote: SocketAddrV4, now: Instant) -> Seq {
        // RFC 6528: ISN = M + F(localip, localport, remoteip, remoteport, secretkey),
        // M a 4-microsecond timer, F a keyed hash (SipHash, keyed by the secret).
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.secret.hash(&mut h);
        local.hash(&mut h);
        remote.hash(&mut h);
        Seq((now.total_micros() / 4) as u32) + h.finish() as u32
    }

    /// Connection `idx` reached CLOSED (from state `was`): detach it from its
    /// listener and free it, free it if the application already let go, or
    /// keep the slot (unmapped) until the application closes the handle.
    pub(super) fn finish(&mut self, idx: u32, was: State) {
        let Some(Slot { sock: Some(Sock::Conn(c)), .. }) = self.slots.get(idx as usize) else { return };
        let (parent, orphan, key) = (c.parent, c.orphan, (c.local, c.remote));
        if let Some(p) = parent {
            if let Some(Slot { sock: Some(Sock::Listener(l)), .. }) = self.slots.get_mut(p as usize) {
                if was == State::SynReceived {
                    l.half_open = l.half_open.saturating_sub(1);
                }
                l.accept_q.retain(|&i| i != idx);
            }
            self.free_slot(idx);
        } else if orphan {
            self.free_slot(idx);
        } else {
            self.unmap(key, idx);
            self.note(idx);
        }
    }

    /// Removes the four-tuple `key` from the connection table if it still
    /// maps to slot `idx`. A connection that reached CLOSED while its
    /// handle is held was unmapped then, and a new connection may since
    /// have taken the same four-tuple: closing or aborting the old handle
    /// later must not unmap the new one.
    fn unmap(&mut self, key: (SocketAddrV4, SocketAddrV4), idx: u32) {
        if self.conns.get(&key) == Some(&idx) {
            self.conns.remove(&key);
            self.flow_memo = None;
        }
    }
}

/// Lazy re-arm of connection `idx` (`c`): the wheel gets the earliest
/// deadline set since the last re-arm (`Conn::deadline_new`, kept by
/// `Conn::note_deadline` where deadlines are set) only when it is earlier
/// than the entry the wheel already holds for it (`timer_scheduled`), so a
/// deadline that moves later (an ACK restarting the RTO) costs a compare
/// and an unchanged one a test, not a scan of the six deadlines. An entry
/// that comes due before the connection's real deadline (that deadline
/// moved later or was cleared) finds nothing due, and the connection is
/// re-armed from its deadlines then (`on_timers`).
///
/// Promise (checked in debug builds): afterwards the wheel holds an entry
/// for the connection at or before its earliest deadline.
#[inline]
pub(super) fn rearm(c: &mut Conn, timers: &mut timer::TimerWheel, idx: u32) {
    if let Some(t) = c.deadline_new.take() {
        if c.timer_scheduled.is_none_or(|s| t < s) {
            c.timer_scheduled = Some(t);
            timers.insert(t, idx);
        }
    }
    debug_assert!(
        c.next_timer().is_none_or(|t| c.timer_scheduled.is_some_and(|s| s <= t)),
        "a deadline set without note_deadline"
    );
}
