//! Output and segmentation: the advertised window, what may be sent now,
//! and building segments from the send queue (RFC 9293 3.10.4 and 3.8.6).

use super::*;
use crate::phy::Payload;

impl Conn {
    /// The window field for an outgoing segment; never shrinks the right edge
    /// (RFC 9293 3.8.6.2.2) and avoids silly small increases (RFC 1122 4.2.3.3).
    pub(super) fn advertise(&mut self) -> u16 {
        let win = self.rcv_window();
        let new_right = self.rcv_nxt + win;
        let cur = self.rcv_adv.max(self.rcv_nxt);
        let step = (self.recv_cap as u32 / 2).min(self.mss).max(1);
        // An empty buffer an application can still read into is offered
        // whole even when only the 16-bit field (not the buffer) limits it,
        // e.g. after a FIN took one number: RFC 1122 4.2.3.3 guards against
        // small windows of a full buffer. An orphan (closed by its
        // application) keeps its right edge, as FreeBSD's TIME-WAIT does.
        let empty = || self.rcvq.held() + self.rcvq.ooo_bytes() == 0 && !self.orphan && !self.rd_shut;
        if new_right > cur && (new_right.since(cur) >= step || win as usize == self.recv_cap || empty()) {
            self.rcv_adv = new_right;
        } else if self.rcv_adv < self.rcv_nxt {
            self.rcv_adv = self.rcv_nxt;
        }
        (self.rcv_adv.since(self.rcv_nxt) >> self.rcv_wscale).min(MAX_WIN) as u16
    }

    /// Payload bytes a segment may carry now: the MSS less the TCP options we
    /// put on data segments (SACK blocks while we hold out-of-order data), so
    /// frames never exceed the MTU (RFC 6691).
    pub(super) fn seg_payload_max(&self) -> u32 {
        // As `SegOut::emit` lays them out: `nop, nop, TS` (12 bytes) and
        // `nop, nop, SACK` (4 + 8 per block).
        let ts = if self.ts_ok { 12 } else { 0 };
        if !(self.sack_ok && self.rcvq.has_hole()) {
            // No SACK blocks: 12 or 0 option bytes, already 4-aligned.
            return self.mss.saturating_sub(ts).max(1);
        }
        let sack = if self.sack_ok && self.rcvq.has_hole() {
            4 + 8 * self.sack_blocks().iter().flatten().count() as u32
        } else {
            0
        };
        let opt = (ts + sack).div_ceil(4) * 4;
        self.mss.saturating_sub(opt).max(1)
    }

    /// Whether output is due without waiting for a timer.
    pub fn wants_output(&self) -> bool {
        self.ack_now
            || self.dupack_now
            || self.rtx_one
            || self.probe_due
            || self.ka_probe_due
            || self.snd_nxt == self.iss
            || self.has_sendable()
    }

    /// Whether [`Conn::output`] has anything to do: a segment due
    /// ([`Conn::wants_output`]), SACK recovery (holes the pipe may let
    /// out, RFC 6675 5 step C), or the persist timer to arm (data unsent,
    /// nothing timing it). When false, `output` would neither build a
    /// segment nor change any state that a later segment reads (its TSval
    /// clock is ticked again before any segment is built), so a
    /// connection marked for output only because a segment arrived (an
    /// ACK to delay, a timer to re-arm) skips it.
    #[inline(always)]
    pub(crate) fn output_due(&self) -> bool {
        self.wants_output()
            || (self.sack_ok && self.recover.is_some())
            || (self.persist_at.is_none()
                && self.rtx_at.is_none()
                && self.snd_una < self.data_start() + self.sendq.len() as u32)
    }

    pub(super) fn has_sendable(&self) -> bool {
        if !self.state.synchronized() {
            return false;
        }
        let end = self.data_start() + self.sendq.len() as u32;
        self.snd_nxt < end || (self.fin_queued && !self.fin_acked && self.snd_nxt == end)
    }

    pub(super) fn seg(&mut self, seq: Seq, with_ack: bool) -> SegOut {
        let mut s = SegOut::empty(self.local, self.remote, seq);
        self.fill_seg(&mut s, with_ack);
        s
    }

    /// Fills the window, the ACK (with SACK blocks) and the timestamps of
    /// `s`, an empty segment of this connection ([`SegOut::empty`]); an ACK
    /// sent clears what was owed.
    #[inline(always)]
    fn fill_seg(&mut self, s: &mut SegOut, with_ack: bool) {
        let window = self.advertise();
        if with_ack {
            s.ack = Some(self.rcv_nxt);
            if self.sack_ok && self.rcvq.has_hole() {
                let base = self.rcvq.next_offset();
                for (a, e) in self.sack_blocks().into_iter().map_while(|b| b) {
                    s.sack[usize::from(s.sack_len)] =
                        ((self.rcv_nxt + (a - base) as u32).0, (self.rcv_nxt + (e - base) as u32).0);
                    s.sack_len += 1;
                }
            }
            self.ack_now = false;
            self.delack_at = None;
            self.segs_since_ack = 0;
        }
        s.window = window;
        if self.ts_ok {
            s.ts = Some((self.ts_now, self.ts_recent));
        }
    }

    /// The SACK blocks our next ACK carries, as stream offsets: four when
    /// no timestamps option shares the 40 option bytes, else three (RFC
    /// 2018 3).
    pub(super) fn sack_blocks(&self) -> [Option<(u64, u64)>; 4] {
        let mut b = self.rcvq.sack_blocks4();
        if self.ts_ok {
            b[3] = None;
        }
        b
    }

    pub(super) fn syn_options(&self, s: &mut SegOut, offer_wscale: bool) {
        s.syn = true;
        s.mss = Some(self.our_mss);
        if self.syn_options_dropped() {
            return;
        }
        // Offer SACK and timestamps in a SYN; accept them in a SYN-ACK only if
        // the peer offered them.
        s.sack_permitted = (self.state == State::SynSent && self.cfg.sack) || self.sack_ok;
        if self.state == State::SynSent && self.cfg.timestamps {
            s.ts = Some((self.ts_now, 0));
        }
        if offer_wscale {
            s.wscale = Some(self.rcv_wscale);
        }
    }

    /// Whether our SYN goes with the MSS option only: the third and later
    /// retransmissions of an active open's SYN under
    /// `TcpConfig::rexmit_drop_options` (FreeBSD's `rexmit_drop_options`).
    /// The SYN-ACK's options are then ignored too: RFC 7323 2.2/3.2 and
    /// RFC 2018 2 enable an option only when both SYNs carry it.
    pub(super) fn syn_options_dropped(&self) -> bool {
        self.cfg.rexmit_drop_options && self.state == State::SynSent && self.retries >= 3
    }

    /// Produces every segment due now: SYN/SYN-ACK, retransmissions, new data
    /// within the congestion and peer windows (Nagle and SWS avoidance applied),
    /// FIN, and ACKs.
    ///
    /// `tso_max` > 0: new data may leave in bursts of up to that many
    /// payload bytes (whole segments, and a short tail only at the end of
    /// the data or where a page refused a reference), each one [`SegOut`] with `tso_segsz` set. `gso`: the
    /// stack's flush cuts them, and a burst is exactly the segments
    /// segment-by-segment sending gives (Nagle holds the tail while data is
    /// in flight); else the device does (TSO), and a TSO frame keeps its
    /// short tail whatever is in flight (zcstack's TSO behaviour from the
    /// start: with Nagle on, a write's short tail leaves at once on a TSO
    /// port and waits on one without TSO). A burst's slice list comes from
    /// `spares` when one is there (emptied lists of former bursts), so
    /// steady-state bursts allocate nothing.
    ///
    /// At most `TcpConfig::output_pass_frames` frames of data go per call
    /// (new data and go-back-N resends; a TSO burst is one frame, a GSO
    /// burst the frames it is cut into and capped at what is left; at
    /// least one frame; 0: no limit). Returns `true` when it stopped there
    /// with data left to send: the caller runs it again in its next pass.
    #[allow(clippy::too_many_arguments)]
    pub fn output<M: PageMemory + ?Sized>(
        &mut self,
        now: Instant,
        mem: &mut M,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
        tso_max: u32,
        gso: bool,
        spares: &mut Vec<Payload>,
    ) -> bool {
        self.tick_ts(now);
        if matches!(self.state, State::Closed | State::SynSent | State::SynReceived | State::TimeWait) {
            self.output_unsynchronized(now, out);
            return false;
        }
        let data_start = self.data_start();
        let data_end = data_start + self.sendq.len() as u32;
        let max_payload = self.seg_payload_max();

        if self.dupack_now || self.probe_due || self.rtx_one {
            self.output_owed(now, data_start, data_end, max_payload, &mut &mut *mem, stats, out);
        }

        let sack_recovery = self.sack_ok && self.recover.is_some();
        if sack_recovery {
            self.sack_retransmit(now, data_start, data_end, max_payload, &mut &mut *mem, stats, out);
        }

        // Segments after the first of this loop copy its ACK, window, SACK
        // blocks and timestamps (`send_data_next`) instead of computing them
        // again: nothing they are computed from changes in between.
        let mut built = false;
        let mut short = false;
        // Frames of data sent by this call, against the pass limit.
        let pass_max = match self.cfg.output_pass_frames {
            0 => u32::MAX,
            n => u32::try_from(n).unwrap_or(u32::MAX),
        };
        let mut sent = 0u32;
        let mut more = false;
        loop {
            if self.snd_nxt >= data_end {
                break;
            }
            let retransmitting = self.snd_nxt < self.snd_max;
            // Going back after a timeout: skip what the peer holds (RFC 6675
            // 5.1; the scoreboard was cleared if the receiver reneged).
            if retransmitting && self.sack_ok {
                if let Some(end) = self.scoreboard.sacked_end(self.snd_nxt) {
                    self.snd_nxt = end;
                    continue;
                }
            }
            let peer_end = self.snd_una + self.snd_wnd;
            let peer_left = if self.snd_nxt < peer_end { peer_end.since(self.snd_nxt) } else { 0 };
            let cwnd_left = if sack_recovery {
                // New data only as far as the pipe allows (rule 2 of NextSeg).
                self.cwnd.saturating_sub(self.pipe())
            } else {
                let mut outstanding = self.snd_nxt.since(self.snd_una);
                if self.rto_point.is_some() && self.sack_ok {
                    // After a timeout everything past snd_nxt counts as lost
                    // and SACKed bytes have left the network.
                    outstanding -= self.scoreboard.sacked_between(self.snd_una, self.snd_nxt);
                }
                self.cwnd.saturating_add(self.limited_transmit * self.mss).saturating_sub(outstanding)
            };
            let wnd_left = cwnd_left.min(peer_left);
            let avail = data_end.since(self.snd_nxt);
            // A resend stops where SACKed data starts (a hole may be short).
            // (New data has nothing SACKed past it: no scoreboard query.)
            let hole = match retransmitting && self.sack_ok {
                true => self.scoreboard.next_sacked(self.snd_nxt).map_or(avail, |a| a.since(self.snd_nxt).min(avail)),
                false => avail,
            };
            // With TSO, as many whole segments as fit in one frame (all of
            // what is left when it fits); new data only, outside recovery
            // (a go-back-N resend after a timeout goes segment by segment).
            // (Data for more than one segment first: the division below
            // cost a request/response exchange ~9% when taken for every
            // small write.)
            let fresh = self.snd_nxt >= self.snd_max;
            // A GSO burst is also capped at the frames the pass has left;
            // the cut below keeps it whole segments.
            let burst =
                if hole > max_payload && tso_max > max_payload && fresh && !sack_recovery && self.recover.is_none() {
                    let whole = tso_max - tso_max % max_payload;
                    if gso {
                        whole.min(pass_max.saturating_sub(sent).max(1).saturating_mul(max_payload))
                    } else {
                        whole
                    }
                } else {
                    max_payload
                };
            let mut len = burst.min(hole).min(wnd_left);
            // A burst carries whole segments, and a short tail only at the
            // end of the data. For GSO only where segment-by-segment
            // sending would send it right behind them: with Nagle off or a
            // FIN queued (with Nagle on the whole segments are in flight
            // when the tail's turn comes, and Nagle holds it), so the cut
            // frames are exactly those. A TSO frame keeps its tail, as it
            // always has here; holding it under zcstack's classic Nagle
            // cost ci/bench-regress's write-tso case ~15%. (Linux holds
            // such a tail only while an earlier short segment is
            // unacknowledged, Minshall's rule, with or without TSO;
            // zcstack does not track that.)
            if len > max_payload && (len < hole || (gso && !self.nodelay && !self.fin_queued)) {
                len -= len % max_payload;
            }
            if len == 0 {
                break;
            }
            if len < max_payload && len < hole {
                // Limited by a window, not by the data: no segment below
                // SMSS for want of cwnd (wait for ACKs), and none smaller
                // than half the peer's largest window (sender SWS, RFC 9293
                // 3.8.6.2.1; the persist timer overrides it).
                if cwnd_left < max_payload.min(hole) || len < self.max_snd_wnd / 2 {
                    break;
                }
            } else if len < max_payload
                && !retransmitting
                && !self.nodelay
                && self.snd_max > self.snd_una
                && !self.fin_queued
            {
                // Nagle: one small segment in flight at a time.
                break;
            }
            // The pass's frames are spent, and this segment would go: the
            // connection goes on in the next pass (checked here, after the
            // window, Nagle and SWS rules, so a connection with nothing it
            // may send now is not kept busy).
            if sent >= pass_max {
                more = true;
                break;
            }
            let seq = self.snd_nxt;
            let probe = !retransmitting && self.rtt_probe.is_none();
            if probe {
                self.rtt_probe = Some((seq, now));
            }
            // An ACK owed before this segment took it (a first segment
            // left empty by a refused page reference stays as that ACK).
            let ack_owed = !built && (self.ack_now || self.delack_at.is_some());
            let whole = if built {
                self.send_data_next(seq, len, data_start, data_end, spares, mem, stats, out)
            } else {
                built = true;
                self.send_data_in(seq, len, data_start, data_end, spares, mem, stats, out)
            };
            // A page that refused a reference (`page_errors`) leaves the
            // segment short of `len`: only what it carries counts as sent
            // (no PSH; no FIN, snd_nxt stays short of data_end), and the
            // pass stops; the rest goes
            // with a later pass (an ACK's, or the retransmission or
            // persist timer's). A segment left with no payload is not sent,
            // unless it is the ACK that was owed.
            if !whole {
                len = short_segment(out, seq, !ack_owed).min(len);
                if len == 0 {
                    if probe {
                        self.rtt_probe = None;
                    }
                    break;
                }
                short = true;
            }
            if len > max_payload {
                if let Some(last) = out.last_mut() {
                    last.tso_segsz = max_payload as u16;
                }
            }
            self.snd_nxt = seq + len;
            // A segment of at most one MSS (every request/response
            // segment) counts one frame without the division.
            sent = sent.saturating_add(if gso && len > max_payload { len.div_ceil(max_payload) } else { 1 });
            if self.fin_queued && self.snd_nxt == data_end {
                if let Some(last) = out.last_mut() {
                    last.fin = true;
                }
                self.snd_nxt = self.snd_nxt + 1;
            }
            self.snd_max = self.snd_max.max(self.snd_nxt);
            if self.rtx_at.is_none() {
                self.arm_rtx(now);
            }
            if short {
                break;
            }
        }

        if self.fin_queued && !self.fin_acked && self.snd_nxt == data_end {
            let mut s = self.seg(data_end, true);
            s.fin = true;
            out.push(s);
            self.snd_nxt = data_end + 1;
            self.snd_max = self.snd_max.max(self.snd_nxt);
            if self.rtx_at.is_none() {
                self.arm_rtx(now);
            }
        }

        // Data unacknowledged and nothing timing it: the peer's window is
        // shut (or too small to use). The persist timer probes, backing off
        // exponentially up to max_rto, for as long as that lasts.
        if self.persist_at.is_none() && self.rtx_at.is_none() && self.snd_una < data_end {
            let interval = self.rtt.rto().saturating_mul(1u64 << self.persist_backoff.min(16));
            self.persist_at = Some(now + interval.min(self.cfg.max_rto));
            self.note_deadline(now + interval.min(self.cfg.max_rto));
        }

        if self.ka_probe_due {
            self.ka_probe_due = false;
            let s = self.seg(self.snd_una + u32::MAX, true); // snd_una - 1: elicits an ACK
            out.push(s);
        }
        if self.ack_now {
            let s = self.seg(self.snd_nxt, true);
            out.push(s);
        }
        more
    }

    /// [`Conn::output`] in CLOSED, SYN-SENT, SYN-RECEIVED and TIME-WAIT:
    /// the SYN or SYN-ACK, and ACKs owed.
    #[cold]
    #[inline(never)]
    fn output_unsynchronized(&mut self, now: Instant, out: &mut Vec<SegOut>) {
        match self.state {
            State::SynSent if self.snd_nxt == self.iss => {
                let mut s = self.seg(self.iss, false);
                s.window = self.rcv_window().min(MAX_WIN) as u16;
                self.syn_options(&mut s, self.cfg.offer_window_scale);
                out.push(s);
                if self.rtt_probe.is_none() && self.retries == 0 {
                    self.rtt_probe = Some((self.iss, now));
                }
                self.snd_nxt = self.iss + 1;
                self.snd_max = self.snd_max.max(self.snd_nxt);
                self.arm_rtx(now);
            }
            State::SynReceived => {
                if self.snd_nxt == self.iss {
                    let offer = self.rcv_wscale > 0 || self.snd_wscale > 0;
                    let mut s = self.seg(self.iss, true);
                    s.window = self.rcv_window().min(MAX_WIN) as u16;
                    self.rcv_adv = self.rcv_nxt + u32::from(s.window);
                    self.syn_options(&mut s, offer);
                    out.push(s);
                    self.snd_nxt = self.iss + 1;
                    self.snd_max = self.snd_max.max(self.snd_nxt);
                    self.arm_rtx(now);
                }
                if self.ack_now {
                    let s = self.seg(self.snd_nxt, true);
                    out.push(s);
                }
            }
            State::TimeWait if self.ack_now => {
                let s = self.seg(self.snd_nxt, true);
                out.push(s);
            }
            _ => {} // CLOSED, or nothing owed
        }
    }

    /// [`Conn::output`]'s segments owed before new data: a duplicate ACK,
    /// a window probe (the persist timer fired), a retransmission of the
    /// first unacknowledged segment (fast retransmit, partial ACK, RTO).
    #[allow(clippy::too_many_arguments)]
    #[cold]
    #[inline(never)]
    fn output_owed(
        &mut self,
        now: Instant,
        data_start: Seq,
        data_end: Seq,
        max_payload: u32,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
    ) {
        if self.dupack_now {
            self.dupack_now = false;
            let s = self.seg(self.snd_nxt, true);
            out.push(s);
        }
        if self.probe_due {
            self.probe_due = false;
            self.window_probe(now, data_start, data_end, max_payload, mem, stats, out);
        }
        if self.rtx_one {
            self.rtx_one = false;
            if self.snd_max > self.snd_una {
                let avail = data_end.min(self.snd_max).since(self.snd_una.max(data_start).min(data_end));
                let mut len = avail.min(max_payload);
                if self.sack_ok {
                    // Only the hole: not into data the peer SACKed.
                    if let Some(a) = self.scoreboard.next_sacked(self.snd_una) {
                        len = len.min(a.since(self.snd_una));
                    }
                }
                if len > 0 {
                    stats.tcp_fast_retransmits += u64::from(self.recover.is_some() && self.dupacks > 3);
                    if !self.send_data(now, self.snd_una, len, data_start, data_end, mem, stats, out) {
                        len = short_segment(out, self.snd_una, true).min(len);
                    }
                    if self.sack_ok {
                        self.high_rxt = self.high_rxt.max(self.snd_una + len);
                    }
                } else if self.fin_queued && !self.fin_acked && self.snd_una == data_end {
                    let mut s = self.seg(data_end, true);
                    s.fin = true;
                    out.push(s);
                }
                if self.rtx_at.is_none() {
                    self.arm_rtx(now);
                }
            }
        }
    }

    /// SACK recovery's retransmissions (RFC 6675 5 step C): while
    /// cwnd - pipe >= 1 SMSS, the lost holes, oldest first.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    #[inline(never)]
    fn sack_retransmit(
        &mut self,
        now: Instant,
        data_start: Seq,
        data_end: Seq,
        max_payload: u32,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
    ) {
        while self.cwnd.saturating_sub(self.pipe()) >= self.mss {
            let Some((seq, len)) = self.scoreboard.next_hole(self.snd_una, self.high_rxt, self.mss) else { break };
            let len = len.min(data_end.since(seq.min(data_end))).min(max_payload);
            if len == 0 {
                break;
            }
            stats.tcp_fast_retransmits += 1;
            if !self.send_data(now, seq, len, data_start, data_end, mem, stats, out) {
                // A refused page reference: what was obtained, then stop.
                self.high_rxt = seq + short_segment(out, seq, true).min(len);
                break;
            }
            self.high_rxt = seq + len;
        }
    }

    /// The persist timer fired (RFC 9293 3.8.6.1, RFC 1122 4.2.2.17). With
    /// the peer's window shut, the byte at snd_una goes past it (a new probe
    /// or the last one again; a lost window update is learnt from its ACK).
    /// With a window open but too small for the SWS rule, what fits of it
    /// goes (the SWS override). Probes are timed by the persist timer, not
    /// the RTO.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    #[inline(never)]
    pub(super) fn window_probe(
        &mut self,
        now: Instant,
        data_start: Seq,
        data_end: Seq,
        max_payload: u32,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
    ) {
        if self.rtx_at.is_some() || self.snd_una >= data_end {
            return;
        }
        stats.tcp_persist_probes += 1;
        let peer_end = self.snd_una + self.snd_wnd;
        if self.snd_nxt < peer_end && self.snd_nxt < data_end {
            let mut len = peer_end.since(self.snd_nxt).min(max_payload).min(data_end.since(self.snd_nxt));
            if !self.send_data(now, self.snd_nxt, len, data_start, data_end, mem, stats, out) {
                // A refused page reference: what was obtained (the persist
                // timer tries again when nothing was).
                len = short_segment(out, self.snd_nxt, true).min(len);
                if len == 0 {
                    return;
                }
            }
            self.snd_nxt = self.snd_nxt + len;
            self.snd_max = self.snd_max.max(self.snd_nxt);
            self.arm_rtx(now);
        } else {
            if !self.send_data(now, self.snd_una, 1, data_start, data_end, mem, stats, out)
                && short_segment(out, self.snd_una, true) == 0
            {
                return;
            }
            self.snd_nxt = self.snd_nxt.max(self.snd_una + 1);
            self.snd_max = self.snd_max.max(self.snd_nxt);
        }
    }

    /// A data segment (and ACK) at `seq` with the `len` bytes from there,
    /// at the end of `out`; `false` when a page refused a reference (its
    /// payload then stops short, see [`Conn::payload_into`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_data<M: PageMemory + ?Sized>(
        &mut self,
        _now: Instant,
        seq: Seq,
        len: u32,
        data_start: Seq,
        data_end: Seq,
        mem: &mut M,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
    ) -> bool {
        self.send_data_in(seq, len, data_start, data_end, &mut Vec::new(), mem, stats, out)
    }

    /// [`Conn::send_data`] taking a burst's slice list from `spares` (see
    /// [`Conn::payload_into`]).
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn send_data_in<M: PageMemory + ?Sized>(
        &mut self,
        seq: Seq,
        len: u32,
        data_start: Seq,
        data_end: Seq,
        spares: &mut Vec<Payload>,
        mem: &mut M,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
    ) -> bool {
        // Built in its place at the end of `out`: no copy of the segment.
        out.push(SegOut::empty(self.local, self.remote, seq));
        let Some(s) = out.last_mut() else { return false };
        self.fill_seg(s, true);
        let whole = self.payload_into(s, seq, len, data_start, spares, mem, stats);
        s.psh = seq + len == data_end;
        whole
    }

    /// Points `s`'s payload at the `len` bytes of the send queue from
    /// `seq` (page references, no copy); a page error is counted, and
    /// `false` returned with the payload holding what was obtained.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn payload_into<M: PageMemory + ?Sized>(
        &mut self,
        s: &mut SegOut,
        seq: Seq,
        len: u32,
        data_start: Seq,
        spares: &mut Vec<Payload>,
        mem: &mut M,
        stats: &mut Stats,
    ) -> bool {
        if len > self.mss {
            // A burst's slices, one per page it touches: in a list a
            // former burst outgrew (`TcpEngine::recycle_payload`) when one
            // is spare, else in one allocation instead of a doubling series.
            if let Some(l) = spares.pop() {
                debug_assert!(s.payload.is_empty() && l.is_empty(), "a fresh segment, an emptied list");
                s.payload = l;
            }
            // (A spare list from a smaller burst grows once to this size.)
            s.payload.reserve(len as usize / mem.buf_size().max(1) + 2);
        }
        match self.sendq.slices(seq.since(data_start) as usize, len as usize, mem, &mut s.payload) {
            Ok(copied) => {
                s.copied = copied;
                true
            }
            Err(_) => {
                stats.page_errors += 1;
                false
            }
        }
    }

    /// [`Conn::send_data`] for a segment following one that this output
    /// pass just built for this connection (the last of `out`): the ACK,
    /// window, SACK blocks and timestamps are that segment's.
    /// [`Conn::fill_seg`] would give the same values (checked in debug
    /// builds): `rcv_nxt`, the receive queue, `ts_now` and `ts_recent` do
    /// not change during output, and the window's right edge (`rcv_adv`)
    /// only moves on the first call.
    #[allow(clippy::too_many_arguments)]
    fn send_data_next<M: PageMemory + ?Sized>(
        &mut self,
        seq: Seq,
        len: u32,
        data_start: Seq,
        data_end: Seq,
        spares: &mut Vec<Payload>,
        mem: &mut M,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
    ) -> bool {
        let Some(p) = out.last() else { return false };
        // The header fields are read into locals and the segment is built
        // in its slot at the end of `out` (as `send_data` does), not in a
        // stack temporary moved there: that move copied an odd-sized group
        // of fields with overlapping wide loads over the narrow stores just
        // made, which store forwarding cannot serve (a stall per segment).
        let (src, dst, ack, window, sack, sack_len, ts) = (p.src, p.dst, p.ack, p.window, p.sack, p.sack_len, p.ts);
        out.push(SegOut::empty(src, dst, seq));
        let at = u16::try_from(out.len()).unwrap_or(0);
        let Some(s) = out.last_mut() else { return false };
        s.ack = ack;
        s.psh = seq + len == data_end;
        s.window = window;
        s.sack = sack;
        s.sack_len = sack_len;
        s.ts = ts;
        s.follows = at;
        #[cfg(debug_assertions)]
        {
            let mut t = SegOut::empty(self.local, self.remote, seq);
            self.fill_seg(&mut t, true);
            debug_assert!(
                (t.ack, t.window, t.sack, t.sack_len, t.ts) == (s.ack, s.window, s.sack, s.sack_len, s.ts),
                "a following segment's header differs from fill_seg's"
            );
        }
        self.payload_into(s, seq, len, data_start, spares, mem, stats)
    }
}

/// After a `send_data` that returned `false` (a page refused a reference):
/// the payload bytes the segment it pushed at `seq` (the last of `out`)
/// carries, its PSH cleared (it ends before what was asked). A segment
/// left with none is removed when `drop_empty`, else kept as a pure ACK.
fn short_segment(out: &mut Vec<SegOut>, seq: Seq, drop_empty: bool) -> u32 {
    let Some(s) = out.last_mut().filter(|s| s.seq == seq) else { return 0 };
    s.psh = false;
    let got = s.payload.iter().map(|p| p.len).sum::<u32>();
    if got == 0 && drop_empty {
        out.pop();
    }
    got
}

#[cfg(test)]
mod output_due_tests {
    use super::*;
    use crate::mem::HeapPages;
    use crate::tcp::send_queue::CopySrc;

    /// `output_due` false means `output` has nothing to do: over states,
    /// queued data, send positions, FIN, every flag, SACK recovery, the
    /// peer's window and the retransmission and persist timers, a
    /// connection `output_due` passes over produces no segment and leaves
    /// every field as it was (its TSval clock aside, ticked before any
    /// segment is built) — so skipping its output pass changes nothing.
    #[test]
    fn a_connection_not_due_produces_nothing_and_changes_nothing() {
        let cfg = Rc::new(TcpConfig::default());
        let (local, remote) = (SocketAddrV4::new([10, 0, 0, 1].into(), 80), SocketAddrV4::new([10, 0, 0, 2].into(), 9));
        let now = Instant::from_millis(5_000);
        let states = [
            State::Closed,
            State::SynSent,
            State::SynReceived,
            State::Established,
            State::CloseWait,
            State::FinWait1,
            State::FinWait2,
            State::Closing,
            State::LastAck,
            State::TimeWait,
        ];
        let (mut skipped, mut produced) = (0u32, 0u32);
        for state in states {
            for queued in [0usize, 100, 3000] {
                for sent in [0u32, 50, 100, 3000] {
                    for acked_all in [false, true] {
                        for fin in [(false, false), (true, false), (true, true)] {
                            for flags in 0u32..64 {
                                for (wnd, timers) in [(0u32, 0u8), (65_535, 0), (65_535, 1), (0, 2), (65_535, 3)] {
                                    let mut mem = HeapPages::new(8, 2048);
                                    let mut c = Conn::connect(&cfg, local, remote, Seq(1000), 1500, now);
                                    c.state = state;
                                    c.mss = 1000;
                                    c.cwnd = 10_000;
                                    c.snd_wnd = wnd;
                                    c.max_snd_wnd = 65_535;
                                    c.snd_una = Seq(1001);
                                    let data = vec![7u8; queued];
                                    c.write(CopySrc::Bytes(&data), &mut mem);
                                    let sent = sent.min(queued as u32);
                                    c.snd_nxt = Seq(1001) + sent;
                                    c.snd_max = c.snd_nxt;
                                    if acked_all && sent > 0 {
                                        // The sent part is acked: snd_una moves, the queue drops it.
                                        c.sendq.ack(sent as usize, &mut mem).unwrap();
                                        c.snd_una = c.snd_nxt;
                                    }
                                    (c.fin_queued, c.fin_acked) = fin;
                                    c.ack_now = flags & 1 != 0;
                                    c.dupack_now = flags & 2 != 0;
                                    c.rtx_one = flags & 4 != 0;
                                    c.probe_due = flags & 8 != 0;
                                    c.ka_probe_due = flags & 16 != 0;
                                    if flags & 32 != 0 {
                                        c.sack_ok = true;
                                        c.recover = Some(c.snd_max);
                                    }
                                    if timers & 1 != 0 {
                                        c.rtx_at = Some(now + Duration::from_millis(200));
                                        c.note_deadline(now + Duration::from_millis(200));
                                    }
                                    if timers & 2 != 0 {
                                        c.persist_at = Some(now + Duration::from_millis(300));
                                        c.note_deadline(now + Duration::from_millis(300));
                                    }
                                    let mut out = Vec::new();
                                    let mut stats = Stats::default();
                                    if c.output_due() {
                                        c.output(now, &mut mem, &mut stats, &mut out, 0, false, &mut Vec::new());
                                        produced += u32::from(!out.is_empty());
                                        continue;
                                    }
                                    c.tick_ts(now);
                                    let before = format!("{c:?}");
                                    c.output(now, &mut mem, &mut stats, &mut out, 0, false, &mut Vec::new());
                                    assert!(
                                        out.is_empty(),
                                        "{state:?} q{queued} s{sent} {fin:?} f{flags} w{wnd} t{timers}"
                                    );
                                    assert_eq!(
                                        format!("{c:?}"),
                                        before,
                                        "{state:?} q{queued} s{sent} {fin:?} f{flags}"
                                    );
                                    assert_eq!(format!("{stats:?}"), format!("{:?}", Stats::default()));
                                    skipped += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(skipped > 100 && produced > 100, "both sides exercised: {skipped} skipped, {produced} produced");
    }
}
