//! Segment ingress: the connection lookup by 4-tuple and the hand-off to the
//! connection's input processing (or the listener, or a RST for a closed port).

use super::*;
use crate::stages::Stage;

impl TcpEngine {
    /// Handles one received segment addressed to us. `odd` says the
    /// segment combined SYN, FIN and RST and `repr` carries the control bit
    /// RFC 9293's processing order makes effective (see [`odd_flags`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn ingress(
        &mut self,
        now: Instant,
        src: Ipv4Address,
        dst: Ipv4Address,
        repr: &TcpRepr<'_>,
        odd: Option<odd_flags::OddFlags>,
        rx: Option<crate::rx_budget::RxIn<'_>>,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
    ) {
        let local = SocketAddrV4::new(dst, repr.dst_port);
        let remote = SocketAddrV4::new(src, repr.src_port);
        self.ingress_seg(now, local, remote, seg_in(repr, rx), odd, mem, stats, out);
    }

    /// [`TcpEngine::ingress`] for a segment already in the connection's
    /// form (`local` its destination, `remote` its source): the receive
    /// fast path builds it straight from the header
    /// ([`hdr_fast::parse_seg`]).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn ingress_seg<M: PageMemory + ?Sized>(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        mut seg: SegIn<'_>,
        odd: Option<odd_flags::OddFlags>,
        mem: &mut M,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
    ) {
        match odd {
            Some(odd_flags::OddFlags::SynFin) => {
                let conn = self.conns.contains_key(&(local, remote));
                let listen = !conn && self.listeners.contains_key(&local.port());
                if listen && self.cfg.drop_synfin {
                    // Linux; FreeBSD's `net.inet.tcp.drop_synfin=1`.
                    stats.drop_tcp_synfin += 1;
                    return;
                }
                stats.tcp_synfin_fin_ignored += 1;
                // To a closed port the FIN counts in SEG.LEN of the RST's
                // ACK (RFC 9293 3.10.7.1); elsewhere it is never reached.
                seg.fin = !conn && !listen;
            }
            Some(odd_flags::OddFlags::RstPlus) => stats.tcp_rst_other_flags_ignored += 1,
            None => {}
        }
        // Read once: accounting that is off costs a test of a local.
        let timing = self.stages.on();
        let t = self.stages.start_if(timing);
        let found = self.find_conn(local, remote);
        self.stages.stop_if(timing, Stage::Lookup, t);
        if let Some(idx) = found {
            let Some(Slot { sock: Some(Sock::Conn(c)), .. }) = self.slots.get_mut(idx as usize) else {
                return;
            };
            // A new SYN may reuse a TIME-WAIT pair (RFC 9293 3.6.1).
            if seg.syn
                && c.state == State::TimeWait
                && seg.ack.is_none()
                && c.time_wait_accepts_syn(&seg)
                && self.listeners.contains_key(&local.port())
            {
                self.free_slot(idx);
                self.on_listen_syn(now, local, remote, &seg, stats, out);
                return;
            }
            let t = self.stages.start_if(timing);
            self.ingress_conn(now, idx, &seg, mem, stats, out);
            self.stages.stop_if(timing, Stage::TcpInput, t);
            return;
        }
        let t = self.stages.start_if(timing);
        self.ingress_no_conn(now, local, remote, &seg, &mut &mut *mem, stats, out);
        self.stages.stop_if(timing, Stage::TcpInput, t);
    }

    /// The slot of the connection `(local, remote)`: the memo of the last
    /// flow found when it is this one, else the table (which then becomes
    /// the memo). Same answer as `conns.get` (checked in debug builds).
    #[inline(always)]
    fn find_conn(&mut self, local: SocketAddrV4, remote: SocketAddrV4) -> Option<u32> {
        if let Some(((l, r), idx)) = self.flow_memo {
            if l == local && r == remote {
                debug_assert_eq!(self.conns.get(&(local, remote)).copied(), Some(idx), "a stale flow memo");
                return Some(idx);
            }
        }
        let found = self.conns.get(&(local, remote)).copied();
        if let Some(idx) = found {
            self.flow_memo = Some(((local, remote), idx));
        }
        found
    }

    /// A segment for no connection: a listener's SYN, the last ACK of a
    /// SYN-cookie handshake, or a RST for a closed port. Out of line so the
    /// established path stays small in the instruction cache.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ingress_no_conn(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &SegIn<'_>,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
    ) {
        let seg = *seg;
        if seg.syn && seg.ack.is_none() && self.listeners.contains_key(&local.port()) {
            self.on_listen_syn(now, local, remote, &seg, stats, out);
            return;
        }
        // The final ACK of a SYN-cookie handshake.
        if let (Some(ack), false, false, true) =
            (seg.ack, seg.syn, seg.rst, self.cfg.syn_cookies && self.listeners.contains_key(&local.port()))
        {
            if let Some(mss_i) = self.check_cookie(local, remote, seg.seq + u32::MAX, ack + u32::MAX, now) {
                if self.live_sockets() >= self.cfg.max_sockets {
                    stats.tcp_max_sockets_refused += 1;
                    return;
                }
                stats.tcp_syn_cookies_ok += 1;
                self.establish_from_cookie(now, local, remote, &seg, ack + u32::MAX, mss_i, mem, stats, out);
                return;
            }
        }
        // LISTEN (RFC 9293 3.10.7.2): a RST is ignored, and a segment with
        // neither SYN nor ACK is dropped; neither is ever answered. (SYN
        // without ACK was handled above; an ACK falls through to the RST
        // <SEQ=SEG.ACK><CTL=RST> below.)
        if (seg.rst || seg.ack.is_none()) && self.listeners.contains_key(&local.port()) {
            stats.drop_tcp_listen += 1;
            return;
        }
        // No socket: RST (RFC 9293 3.10.7.1), never in answer to a RST.
        stats.drop_tcp_no_socket += 1;
        if !seg.rst && limits::blackholed(&self.cfg, &seg) {
            stats.tcp_blackholed += 1;
        } else if !seg.rst {
            out.push(match seg.ack {
                Some(a) => SegOut::rst(local, remote, a, None),
                None => SegOut::rst(local, remote, Seq(0), Some(seg.seq + seg_len(&seg))),
            });
        }
    }

    /// Feeds a segment to connection `idx` and applies the outcome
    /// (accept queue, freeing, notifications, output, timers).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ingress_conn<M: PageMemory + ?Sized>(
        &mut self,
        now: Instant,
        idx: u32,
        seg: &SegIn<'_>,
        mem: &mut M,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
    ) {
        let Some(Slot { gen, sock: Some(Sock::Conn(c)) }) = self.slots.get_mut(idx as usize) else {
            return;
        };
        let was = c.state;
        let outcome = c.on_segment(now, seg, mem, stats, out, &mut self.challenge_budget);
        let pages = c.send_pages(1).0;
        self.pressure.account(idx, pages);
        if outcome == Outcome::Ok && c.state == was {
            // The common case (no state change, nothing to hand over),
            // with the connection in hand: what `note`, `mark` and
            // `schedule` do below, without looking the slot up again.
            if c.events_pending && !c.orphan {
                c.events_pending = false;
                self.notify.push(SocketHandle { idx, gen: *gen });
            }
            if c.output_due() {
                if !c.dirty {
                    c.dirty = true;
                    self.dirty.push(idx);
                }
            } else {
                table::rearm(c, &mut self.timers, idx);
            }
            return;
        }
        if c.orphan && c.state == State::FinWait2 && was != State::FinWait2 {
            c.timer_fin2(now + limits::fin_wait2_timeout(&self.cfg));
        }
        let entered_time_wait = c.state == State::TimeWait && was != State::TimeWait;
        let parent = c.parent;
        match outcome {
            Outcome::Established => {
                if let Some(p) = parent {
                    if let Some(Slot { sock: Some(Sock::Listener(l)), .. }) = self.slots.get_mut(p as usize) {
                        l.half_open = l.half_open.saturating_sub(1);
                        l.accept_q.push_back(idx);
                    }
                    self.note_listener(p);
                }
            }
            Outcome::Closed => {
                self.finish(idx, was);
                return;
            }
            Outcome::Ok => {}
        }
        if entered_time_wait && self.on_time_wait(idx, stats) {
            return;
        }
        self.note(idx);
        // Marked for output only when some is due (`Conn::output_due`): a
        // segment whose ACK is delayed needs none, its timer is scheduled
        // here. A marked one is scheduled by the output pass that follows
        // each receive burst (`dispatch`), before any timer runs.
        if matches!(self.slots.get(idx as usize), Some(Slot { sock: Some(Sock::Conn(c)), .. }) if c.output_due()) {
            self.mark(idx);
        } else {
            self.schedule(idx);
        }
    }
}

pub(super) fn seg_len(s: &SegIn<'_>) -> u32 {
    s.payload.len() as u32 + u32::from(s.syn) + u32::from(s.fin)
}

/// A parsed segment's fields as the connection reads them (RFC 9293 3.1;
/// RFC 7323 timestamps; RFC 2018 SACK blocks), with the received frame the
/// payload lies in (zero-copy receive).
#[inline(always)]
pub(crate) fn seg_in<'a>(repr: &TcpRepr<'a>, rx: Option<crate::rx_budget::RxIn<'a>>) -> SegIn<'a> {
    SegIn {
        seq: repr.seq_number.into(),
        ack: repr.ack_number.map(Into::into),
        syn: repr.control == TcpControl::Syn,
        fin: repr.control == TcpControl::Fin,
        rst: repr.control == TcpControl::Rst,
        wnd: repr.window_len,
        mss: repr.max_seg_size,
        wscale: repr.window_scale,
        sack_permitted: repr.sack_permitted,
        sack: repr.sack_ranges,
        ts: repr.timestamp.map(|t| (t.tsval, t.tsecr)),
        payload: repr.payload,
        rx,
    }
}
