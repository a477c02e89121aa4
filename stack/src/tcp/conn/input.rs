//! Segment arrival (RFC 9293 3.10.7): acceptance (sequence and PAWS checks),
//! the SYN-SENT and TIME-WAIT cases, data and FIN into the receive queue, and
//! ICMP errors for the connection.

use super::*;

impl Conn {
    /// Processes one segment for this connection (RFC 9293 3.10.7.3-4, with
    /// RFC 5961 and RFC 7323 PAWS): the sequence test, then RST, SYN and
    /// ACK checks in that order; a segment failing any of them is dropped
    /// whole (its data and FIN are never delivered) and answered at most
    /// with an ACK, rate-limited per connection and, for challenge ACKs,
    /// engine-wide through `budget` (RFC 5961 7).
    ///
    /// In line where it is called: header prediction's straight line (an
    /// in-order segment, a new ACK or both; the new ACK's work out of line,
    /// [`Conn::take_new_ack_out`]); what follows a prediction that holds
    /// but is not straight ([`Conn::on_segment_predicted`]) and the full
    /// processing ([`Conn::on_segment_full`]) out of line.
    #[inline(always)]
    pub fn on_segment<M: PageMemory + ?Sized>(
        &mut self,
        now: Instant,
        seg: &SegIn<'_>,
        mem: &mut M,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
        budget: &mut ChallengeBudget,
    ) -> Outcome {
        self.last_rx = now;
        self.tick_ts(now);
        if self.keepalive {
            self.keepalive_at = Some(now + self.cfg.keepalive_idle);
            self.note_deadline(now + self.cfg.keepalive_idle);
            self.ka_probes = 0;
        }
        if let Some(ack) = self.predicted_ack(seg) {
            if self.predicted_straight(now, seg, ack, mem, stats) {
                return Outcome::Ok;
            }
            return self.on_segment_predicted(now, seg, ack, &mut &mut *mem, stats);
        }
        self.on_segment_full(now, seg, &mut &mut *mem, stats, out, budget)
    }

    /// Header prediction held (steps 0-5's checks all pass) but not its
    /// straight line: what the full path does after those checks.
    #[inline(never)]
    fn on_segment_predicted(
        &mut self,
        now: Instant,
        seg: &SegIn<'_>,
        ack: Seq,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
    ) -> Outcome {
        self.take_ts_recent(now, seg);
        if let r @ Outcome::Closed = self.process_ack(now, seg, ack, mem, stats) {
            return r;
        }
        if !seg.payload.is_empty() {
            self.accept_data(now, seg, stats);
        }
        if self.state == State::Closed {
            Outcome::Closed
        } else {
            Outcome::Ok
        }
    }

    /// The full RFC 9293 3.10.7 processing of a segment header prediction
    /// did not take; out of line so the fast path stays small in the
    /// instruction cache.
    #[inline(never)]
    pub(super) fn on_segment_full(
        &mut self,
        now: Instant,
        seg: &SegIn<'_>,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
        budget: &mut ChallengeBudget,
    ) -> Outcome {
        if self.state == State::SynSent {
            return self.on_segment_syn_sent(now, seg, mem, stats, out);
        }
        if self.state == State::Closed {
            return Outcome::Closed;
        }

        // Simultaneous open (RFC 9293 3.5 figure 7): in SYN-RECEIVED the
        // peer's SYN-ACK repeats its SYN (left of the window) but carries the
        // ACK of ours. Only its new part is processed (RFC 9293 3.10.7.4:
        // "only the new parts are processed"): the SYN is trimmed, the ACK
        // completes the handshake, and an ACK answers the duplicate SYN.
        if self.state == State::SynReceived
            && self.parent.is_none()
            && seg.syn
            && !seg.rst
            && seg.ack == Some(self.snd_nxt)
            && seg.seq + 1 == self.rcv_nxt
        {
            let mut trimmed = *seg;
            trimmed.syn = false;
            trimmed.seq = self.rcv_nxt;
            self.ack_now = true;
            return self.on_segment(now, &trimmed, mem, stats, out, budget);
        }

        // 0. PAWS (RFC 7323 5.3 R1): a timestamp older than TS.Recent marks
        // an old duplicate (or a wrapped sequence number): ACK and drop —
        // beyond `PAWS_WINDOW` ticks, as Linux, so one tick of reordering
        // passes.
        if self.ts_ok && !seg.rst && self.state.synchronized() {
            if let Some((tsval, _)) = seg.ts {
                let valid = now.saturating_duration_since(self.ts_recent_at) < PAWS_IDLE;
                if valid && (tsval.wrapping_sub(self.ts_recent) as i32) < -PAWS_WINDOW {
                    stats.drop_tcp_paws += 1;
                    self.ack_rejected(now, seg, stats);
                    return Outcome::Ok;
                }
            }
        }

        // 1. Sequence acceptability. RCV.WND is the space the receiver can
        // hold: at least what was advertised, and the free buffer when the
        // 16-bit field (no window scaling) could not show all of it
        // (RFC 9293 3.10.7.4; FreeBSD's max(sbspace, rcv_adv - rcv_nxt)).
        // The test only widens with the window, so the free-buffer term
        // (divisions) is needed only when the advertised window rejects the
        // segment, or for a FIN (step 7 bounds it by RCV.WND).
        let len = seg.len();
        let mut rcv_wnd = self.rcv_adv.max(self.rcv_nxt).since(self.rcv_nxt);
        let mut acceptable = seq_acceptable(seg.seq, len, self.rcv_nxt, rcv_wnd);
        if !acceptable || seg.fin {
            let free = self.recv_cap.saturating_sub(self.rcvq.held() + self.rcvq.ooo_bytes());
            let room = self.rcvq.window_for(free, usize::from(self.our_mss)).min((MAX_WIN as usize) << 14) as u32;
            rcv_wnd = rcv_wnd.max(room);
            acceptable = acceptable || seq_acceptable(seg.seq, len, self.rcv_nxt, rcv_wnd);
        }
        if !acceptable {
            // Zero window probes and old duplicates get an ACK; RSTs nothing.
            if seg.rst {
                stats.drop_tcp_out_of_window += 1;
                return Outcome::Ok;
            }
            if self.state == State::TimeWait && seg.fin {
                // The peer retransmitted its FIN (our ACK was lost): ACK
                // again and restart the 2 MSL timer (RFC 9293 3.10.7.4).
                self.ack_now = true;
                self.timewait_at = Some(now + self.cfg.msl.saturating_mul(2));
                self.note_deadline(now + self.cfg.msl.saturating_mul(2));
                return Outcome::Ok;
            }
            if seg.syn && seg.ack.is_none() && self.state == State::SynReceived && seg.seq + 1 == self.rcv_nxt {
                // The peer retransmitted its SYN: our SYN-ACK was lost. Its
                // sequence number lies left of the window (RFC 9293
                // 3.10.7.4 would only ACK), but an ACK cannot complete the
                // peer's SYN-SENT; Linux and FreeBSD resend the SYN-ACK.
                self.snd_nxt = self.iss;
                return Outcome::Ok;
            }
            if seg.syn && self.state.synchronized() {
                // RFC 5961 4.2: a SYN in a synchronized state, whatever its
                // sequence number, draws a challenge ACK.
                stats.drop_tcp_out_of_window += 1;
                self.challenge_ack(now, budget, stats);
                return Outcome::Ok;
            }
            if seg.seq <= self.rcv_nxt && self.state.synchronized() && !seg.syn {
                // An old duplicate (or data at rcv_nxt into a zero window)
                // still carries a current ACK (RFC 9293 3.10.7.4: "special
                // allowance ... to accept valid ACKs"; BSD does the same):
                // after a go-back-N retransmission the peer's segments start
                // below our rcv_nxt, and ignoring their ACKs would deadlock
                // both sides. The ACK must pass RFC 5961 5.2 like any other.
                if let Some(ack) = seg.ack {
                    if !self.ack_acceptable(ack) {
                        stats.drop_tcp_bad_ack += 1;
                        self.challenge_ack(now, budget, stats);
                        return Outcome::Ok;
                    }
                    if let Outcome::Closed = self.process_ack(now, seg, ack, mem, stats) {
                        return Outcome::Closed;
                    }
                }
            } else {
                stats.drop_tcp_out_of_window += 1;
            }
            self.ack_rejected(now, seg, stats);
            return Outcome::Ok;
        }

        // 2. RST (RFC 5961 3.2). In TIME-WAIT a RST is ignored (RFC 1337:
        // no TIME-WAIT assassination).
        if seg.rst && self.state == State::TimeWait {
            return Outcome::Ok;
        }
        if seg.rst {
            // RFC 5961 3.2 accepts only a RST at exactly rcv_nxt; with
            // `insecure_rst` any RST that passed the window test above
            // resets (RFC 793 3.4).
            if seg.seq == self.rcv_nxt || self.cfg.insecure_rst {
                stats.tcp_resets_received += 1;
                if self.state == State::SynReceived && self.parent.is_some() {
                    self.release(mem);
                    self.state = State::Closed;
                    return Outcome::Closed;
                }
                self.error = Some(TcpError::Reset);
                self.release(mem);
                self.state = State::Closed;
                self.events_pending = true;
                return Outcome::Closed;
            }
            self.challenge_ack(now, budget, stats);
            return Outcome::Ok;
        }

        // New data after the application closed the socket can never be
        // read: RFC 1122 4.2.2.13 "its TCP SHOULD send a RST to show that
        // data was lost" (Linux and FreeBSD do, with <SEQ=SEG.ACK>).
        if self.orphan
            && matches!(self.state, State::FinWait1 | State::FinWait2)
            && !seg.payload.is_empty()
            && seg.seq + seg.payload.len() as u32 > self.rcv_nxt
        {
            stats.tcp_abort_on_data += 1;
            let seq = seg.ack.unwrap_or(self.snd_nxt);
            out.push(SegOut::rst(self.local, self.remote, seq, None));
            self.release(mem);
            self.state = State::Closed;
            return Outcome::Closed;
        }

        // 3. SYN in a synchronized state (RFC 5961 4.2): challenge ACK.
        if seg.syn {
            if self.state == State::SynReceived && seg.seq + 1 == self.rcv_nxt {
                // Retransmitted SYN: our SYN-ACK was lost.
                self.snd_nxt = self.iss;
                return Outcome::Ok;
            }
            if self.cfg.insecure_syn && self.state != State::SynReceived {
                // RFC 793 3.9: a SYN in the window is an error; send a
                // reset (RST+ACK from snd_nxt, as FreeBSD's
                // `insecure_syn=1`) and report the reset to the user.
                stats.tcp_insecure_syn_resets += 1;
                out.push(SegOut::rst(self.local, self.remote, self.snd_nxt, Some(self.rcv_nxt)));
                self.error = Some(TcpError::Reset);
                self.release(mem);
                self.state = State::Closed;
                self.events_pending = true;
                return Outcome::Closed;
            }
            self.challenge_ack(now, budget, stats);
            return Outcome::Ok;
        }

        // 4. ACK is required from here on (RFC 9293 3.10.7.4 fifth check).
        let Some(ack) = seg.ack else { return Outcome::Ok };
        if self.state != State::SynReceived && !self.ack_acceptable(ack) {
            // RFC 5961 5.2: drop the whole segment (data and FIN too) and
            // answer with an ACK; this also covers an ACK of data never
            // sent (RFC 9293: "send an ACK, drop the segment, and return").
            stats.drop_tcp_bad_ack += 1;
            self.challenge_ack(now, budget, stats);
            return Outcome::Ok;
        }
        let mut outcome = Outcome::Ok;
        if self.state == State::SynReceived {
            if ack.in_range(self.snd_una + 1, self.snd_max + 1) {
                self.state = State::Established;
                self.round_buffers_to_mss();
                stats.tcp_established += 1;
                self.snd_wnd = u32::from(seg.wnd) << self.snd_wscale;
                self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
                self.snd_wl1 = seg.seq;
                self.snd_wl2 = ack;
                self.events_pending = true;
                outcome = Outcome::Established;
                if self.fin_queued {
                    self.state = State::FinWait1;
                }
            } else {
                // RFC 9293 3.10.7.4: <SEQ=SEG.ACK><CTL=RST>, segment dropped.
                stats.drop_tcp_bad_ack += 1;
                out.push(SegOut::rst(self.local, self.remote, ack, None));
                return Outcome::Ok;
            }
        }
        // RFC 7323 4.3 (R3), only now that the segment passed the sequence,
        // RST, SYN and ACK checks (Linux bd090dfc634d): a segment that is
        // dropped must not move TS.Recent, else one forged TSval makes PAWS
        // drop every later segment of the real peer.
        self.take_ts_recent(now, seg);
        if let r @ Outcome::Closed = self.process_ack(now, seg, ack, mem, stats) {
            return r;
        }

        // 6. Data.
        if !seg.payload.is_empty() {
            if matches!(self.state, State::Established | State::FinWait1 | State::FinWait2) {
                self.accept_data(now, seg, stats);
            } else {
                // After the peer's FIN: ignore data (RFC 9293 3.10.7.4 sixth).
            }
        }

        // 7. FIN.
        if seg.fin {
            let fin_at = seg.seq + seg.payload.len() as u32;
            match self.fin_seq_in {
                // A FIN never moves once known: another one is bogus.
                Some(f) if f != fin_at => {
                    stats.drop_tcp_fin_moved += 1;
                    self.ack_now = true;
                }
                Some(_) => {}
                None if !self.peer_fin && fin_at >= self.rcv_nxt && fin_at < self.rcv_nxt + rcv_wnd.max(1) => {
                    self.fin_seq_in = Some(fin_at);
                    // Out-of-order data already held past the FIN can never
                    // be delivered: drop it, or its hole would keep the FIN
                    // from being processed.
                    let end = self.rcvq.next_offset() + u64::from(fin_at.since(self.rcv_nxt));
                    if self.rcvq.truncate_ooo(end) > 0 {
                        stats.drop_tcp_data_beyond_fin += 1;
                    }
                }
                None => {}
            }
            if fin_at > self.rcv_nxt && !self.peer_fin {
                // A FIN beyond RCV.NXT is an out-of-order segment: answer
                // with an immediate duplicate ACK (RFC 5681 4.2).
                self.ack_now = true;
            }
            if fin_at > self.rcv_nxt {
                // A FIN beyond a hole is an out-of-order segment: a duplicate
                // ACK goes out at once (RFC 5681 4.2, RFC 9293 3.10.7.4).
                self.ack_now = true;
            }
        }
        if let Some(f) = self.fin_seq_in {
            if f == self.rcv_nxt && !self.peer_fin && !self.rcvq.has_hole() {
                self.rcv_nxt = self.rcv_nxt + 1;
                self.peer_fin = true;
                self.ack_now = true;
                self.events_pending = true;
                match self.state {
                    State::SynReceived | State::Established => self.state = State::CloseWait,
                    State::FinWait1 => {
                        // Our FIN not yet acked (else process_ack moved us on).
                        self.state = State::Closing;
                    }
                    State::FinWait2 => self.enter_time_wait(now, mem),
                    State::TimeWait => {
                        self.timewait_at = Some(now + self.cfg.msl.saturating_mul(2));
                        self.note_deadline(now + self.cfg.msl.saturating_mul(2));
                    }
                    _ => {}
                }
            }
        }
        if self.state == State::Closed {
            return Outcome::Closed;
        }
        outcome
    }

    /// Header prediction (RFC 9293 3.10.7.4's checks, as BSD's fast path):
    /// the segment's ACK when the segment is the common case of ESTABLISHED
    /// — the next one in order (SEG.SEQ = RCV.NXT), within the advertised
    /// window, no SYN, RST or FIN (and no FIN seen out of order), an ACK in
    /// [SND.UNA, SND.MAX] (so RFC 5961 5.2 accepts it) and, with timestamps,
    /// a TSval not older than TS.Recent (RFC 7323 5.3 PAWS passes). Then
    /// every check before the ACK's processing passes and can be skipped;
    /// `None`: take the full path.
    #[inline(always)]
    pub(super) fn predicted_ack(&self, seg: &SegIn<'_>) -> Option<Seq> {
        let ack = seg.ack?;
        if self.state != State::Established
            || seg.syn
            || seg.rst
            || seg.fin
            || seg.seq != self.rcv_nxt
            || self.fin_seq_in.is_some()
            || ack < self.snd_una
            || ack > self.snd_max
            || seg.payload.len() as u64 > u64::from(self.rcv_adv.max(self.rcv_nxt).since(self.rcv_nxt))
        {
            return None;
        }
        if let (true, Some((tsval, _))) = (self.ts_ok, seg.ts) {
            if (tsval.wrapping_sub(self.ts_recent) as i32) < 0 {
                return None;
            }
        }
        Some(ack)
    }

    /// Header prediction's straight line (BSD `tcp_input`'s fast path) for
    /// a segment [`Conn::predicted_ack`] passed: either an ACK advancing
    /// SND.UNA, or in-order data (with an ACK at or past SND.UNA), while no
    /// recovery (RFC 6582, RFC 6675) or timeout recovery is under way, no
    /// FIN of ours is queued, SACK has nothing to record (no blocks in the
    /// segment, an empty scoreboard), both the peer's old and new windows
    /// are open, and the data fits with nothing held out of order and the
    /// receive side not shut. Then it does exactly what the full path
    /// (RFC 7323 4.3 TS.Recent, [`Conn::process_ack`], [`Conn::accept_data`])
    /// does, touching only the fields that change, and returns `true`;
    /// `false`, having changed nothing: take the full path. A pure ACK
    /// that does not advance SND.UNA (a duplicate ACK or a window update)
    /// always takes the full path.
    #[inline(always)]
    fn predicted_straight<M: PageMemory + ?Sized>(
        &mut self,
        now: Instant,
        seg: &SegIn<'_>,
        ack: Seq,
        mem: &mut M,
        stats: &mut Stats,
    ) -> bool {
        #[cfg(test)]
        if straight_off() {
            return false;
        }
        // SACK blocks fill the array from the front (smoltcp's parse and
        // the fast parse alike), so the first slot says whether any came.
        debug_assert!(seg.sack[0].is_some() || seg.sack.iter().all(Option::is_none));
        let wnd = u32::from(seg.wnd) << self.snd_wscale;
        let new_ack = ack > self.snd_una;
        let data = !seg.payload.is_empty();
        if !(new_ack || data)
            || self.recover.is_some()
            || self.rto_point.is_some()
            || self.fin_queued
            || wnd == 0
            || self.snd_wnd == 0
            || (self.sack_ok && (seg.sack[0].is_some() || !self.scoreboard.is_empty()))
            || (data && (self.rd_shut || self.rcvq.has_hole()))
        {
            return false;
        }
        // RFC 7323 4.3 (R3): SEG.SEQ = RCV.NXT and PAWS passed.
        if let (true, Some((tsval, _))) = (self.ts_ok, seg.ts) {
            self.ts_recent = tsval;
            self.ts_recent_at = now;
        }
        if new_ack {
            // Process_ack's new ACK (no FIN of ours, no recovery, no SACK).
            self.take_new_ack_out(now, ack, mem, stats);
        }
        // Window update (RFC 9293 3.10.7.4), open before and after.
        if self.snd_wl1 < seg.seq || (self.snd_wl1 == seg.seq && self.snd_wl2 <= ack) {
            self.snd_wnd = wnd;
            self.max_snd_wnd = self.max_snd_wnd.max(wnd);
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = ack;
            self.persist_at = None;
            self.persist_backoff = 0;
        }
        #[cfg(test)]
        STRAIGHT_TAKEN.with(|c| c.set(c.get() + 1));
        if data {
            // Accept_data's in-order case: SEG.SEQ = RCV.NXT and the
            // payload within the advertised window (predicted), so nothing
            // is trimmed.
            let n = seg.payload.len() as u32;
            self.rcvq.append_in_order(seg.payload, seg.rx, stats);
            self.rcv_nxt = self.rcv_nxt + n;
            self.events_pending = true;
            self.segs_since_ack += 1;
            if self.segs_since_ack >= 2 || self.cfg.delayed_ack.is_none() || n > self.mss {
                // RFC 5681 4.2, as in accept_data.
                self.ack_now = true;
            } else if self.delack_at.is_none() {
                self.delack_at = self.cfg.delayed_ack.map(|d| now + d);
                if let Some(at) = self.delack_at {
                    self.note_deadline(at);
                }
            }
        }
        true
    }

    /// RFC 9293 3.6.1 (RFC 6191; Linux does the same): in TIME-WAIT a new
    /// SYN for the same 4-tuple may replace the old connection only when it
    /// cannot belong to it: its sequence number lies above the old
    /// `rcv_nxt`, or timestamps are in use and its TSval is newer than
    /// TS.Recent. Any other SYN is handled as one in a synchronized state
    /// (challenge ACK, RFC 5961 4.2), so a blind SYN cannot end TIME-WAIT.
    #[cold]
    #[inline(never)]
    pub fn time_wait_accepts_syn(&self, seg: &SegIn<'_>) -> bool {
        let newer_ts = match (self.ts_ok, seg.ts) {
            (true, Some((tsval, _))) => (tsval.wrapping_sub(self.ts_recent) as i32) > 0,
            _ => false,
        };
        seg.seq > self.rcv_nxt || newer_ts
    }

    #[cold]
    #[inline(never)]
    pub(super) fn on_segment_syn_sent(
        &mut self,
        now: Instant,
        seg: &SegIn<'_>,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
    ) -> Outcome {
        if let Some(ack) = seg.ack {
            if !ack.in_range(self.iss + 1, self.snd_max + 1) {
                if !seg.rst {
                    out.push(SegOut::rst(self.local, self.remote, ack, None));
                }
                return Outcome::Ok;
            }
            if seg.rst {
                stats.tcp_resets_received += 1;
                self.error = Some(TcpError::Refused);
                self.release(mem);
                self.state = State::Closed;
                self.events_pending = true;
                return Outcome::Closed;
            }
        } else if seg.rst {
            return Outcome::Ok;
        }
        if !seg.syn {
            return Outcome::Ok;
        }
        self.irs = seg.seq;
        self.rcv_nxt = seg.seq + 1;
        self.take_syn_options(seg);
        self.snd_wnd = u32::from(seg.wnd);
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = seg.seq;
        self.ack_now = true;
        if let Some(ack) = seg.ack {
            // SYN-ACK.
            self.snd_wl2 = ack;
            if let Some((s, t)) = self.rtt_probe.take() {
                if ack > s {
                    self.rtt.sample(now.saturating_duration_since(t));
                }
            }
            self.snd_una = ack;
            self.snd_nxt = self.snd_nxt.max(ack);
            self.rtx_at = None;
            self.retries = 0;
            self.state = if self.fin_queued { State::FinWait1 } else { State::Established };
            stats.tcp_established += 1;
            self.events_pending = true;
            if !self.sendq.is_empty() || self.fin_queued {
                self.arm_rtx(now);
            }
            // RFC 9293 3.10.7.3: text in the SYN-ACK is processed as in
            // ESTABLISHED (the sixth step): queued, not dropped. The SYN
            // occupies seg.seq, so the data starts at rcv_nxt.
            if !seg.payload.is_empty() && matches!(self.state, State::Established | State::FinWait1) {
                let data = SegIn { seq: seg.seq + 1, syn: false, fin: false, ..*seg };
                self.accept_data(now, &data, stats);
            }
        } else {
            // Simultaneous open (RFC 9293 3.5 figure 7).
            self.state = State::SynReceived;
            self.snd_nxt = self.iss;
        }
        Outcome::Ok
    }

    /// RFC 7323 4.3 (R3): records the TSval of an acceptable segment that
    /// covers the left edge of the window (`SEG.SEQ <= rcv_nxt`, the last
    /// ACK sent) and is not older than TS.Recent. The caller promises the
    /// segment passed every acceptance check (RFC 9293 3.10.7.4 first to
    /// fifth) and will be processed.
    pub(super) fn take_ts_recent(&mut self, now: Instant, seg: &SegIn<'_>) {
        if let (true, Some((tsval, _))) = (self.ts_ok, seg.ts) {
            if seg.seq <= self.rcv_nxt && (tsval.wrapping_sub(self.ts_recent) as i32) >= 0 {
                self.ts_recent = tsval;
                self.ts_recent_at = now;
            }
        }
    }

    /// Stores an acceptable segment's payload: trimmed to the receive window
    /// and, once the peer's FIN is known, to the FIN (RFC 9293 3.10.7.4:
    /// the FIN ends the sequence space; bytes at or beyond it are refused
    /// and counted in `drop_tcp_data_beyond_fin`).
    pub(super) fn accept_data(&mut self, now: Instant, seg: &SegIn<'_>, stats: &mut Stats) {
        let wnd_end = self.rcv_nxt + self.rcv_adv.max(self.rcv_nxt).since(self.rcv_nxt).max(1);
        let mut start = seg.seq;
        let mut data = seg.payload;
        if start < self.rcv_nxt {
            let skip = self.rcv_nxt.since(start) as usize;
            if skip >= data.len() {
                self.ack_now = true;
                return;
            }
            data = &data[skip..];
            start = self.rcv_nxt;
        }
        // The stream ends at the FIN once known (never past the window).
        let data_end = match self.fin_seq_in {
            Some(f) if f < wnd_end => {
                if start >= f || start + data.len() as u32 > f {
                    stats.drop_tcp_data_beyond_fin += 1;
                    self.ack_now = true;
                }
                if start >= f {
                    return;
                }
                f
            }
            _ => wnd_end,
        };
        let room = data_end.since(start) as usize;
        if data.len() > room {
            data = &data[..room];
        }
        if data.is_empty() {
            self.ack_now = true;
            return;
        }
        let off = self.rcvq.next_offset() + u64::from(start.since(self.rcv_nxt));
        let window = wnd_end.since(self.rcv_nxt) as usize;
        // Whether this segment may fill (part of) a hole: asked before it does.
        let had_hole = self.rcvq.has_hole();
        match self.rcvq.insert_within(off, data, window, self.cfg.max_ooo_segments, seg.rx, stats) {
            Inserted::InOrder(n) => {
                self.rcv_nxt = self.rcv_nxt + n as u32;
                if self.rd_shut {
                    // SHUT_RD: acknowledged, never delivered.
                    self.rcvq.discard_ready();
                }
                self.events_pending = true;
                self.segs_since_ack += 1;
                if had_hole || self.segs_since_ack >= 2 || self.cfg.delayed_ack.is_none() || n as u32 > self.mss {
                    // RFC 5681 4.2: ACK at least every second full segment
                    // (a single segment carrying more than one MSS counts
                    // as two, as Linux's rcv_mss rule does), and at once
                    // while filling a hole.
                    self.ack_now = true;
                } else if self.delack_at.is_none() {
                    self.delack_at = self.cfg.delayed_ack.map(|d| now + d);
                    if let Some(at) = self.delack_at {
                        self.note_deadline(at);
                    }
                }
                if !had_hole && seg.seq < self.rcv_nxt && start != seg.seq {
                    self.ack_now = true;
                }
            }
            Inserted::OutOfOrder | Inserted::Duplicate => {
                // A duplicate ACK signals the hole (RFC 5681 4.2).
                self.ack_now = true;
                self.dupack_now = true;
            }
            Inserted::Full => {
                stats.drop_tcp_ooo_full += 1;
                self.ack_now = true;
            }
        }
    }

    /// An ICMP error about a segment of ours whose sequence number was `seq`
    /// (RFC 5927 4.1: believed only when `seq` lies in `[snd_una, snd_max)`;
    /// returns `false` and changes nothing otherwise).
    ///
    /// - Unreachable in SYN-SENT ends the connection attempt with `hard`
    ///   (RFC 1122 4.2.3.9 lets hard errors abort; like Linux and RFC 5461
    ///   3, every unreachable does so before the connection exists).
    /// - Unreachable in other states is soft: recorded, reported if the
    ///   connection later times out (RFC 1122 4.2.3.9, RFC 5461).
    /// - Fragmentation needed (RFC 1191): the segment size drops to fit
    ///   `mtu` (never below `TcpConfig::min_path_mtu`), and what is in
    ///   flight is sent again from `snd_una` in the new size at once
    ///   (not a congestion signal: cwnd and ssthresh are left alone).
    #[cold]
    #[inline(never)]
    pub fn on_icmp(
        &mut self,
        seq: Seq,
        err: crate::tcp::icmp::IcmpError,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
    ) -> Result<Outcome, ()> {
        if !(seq >= self.snd_una && seq < self.snd_max) {
            return Err(());
        }
        match err {
            crate::tcp::icmp::IcmpError::Unreachable(e) if self.state == State::SynSent => {
                self.error = Some(e);
                self.release(mem);
                self.state = State::Closed;
                self.events_pending = true;
                return Ok(Outcome::Closed);
            }
            crate::tcp::icmp::IcmpError::Unreachable(e) => self.soft_error = Some(e),
            crate::tcp::icmp::IcmpError::FragNeeded(mtu) => {
                let mtu = usize::from(mtu).max(self.cfg.min_path_mtu.max(68));
                let new = u32::from(mss_for_mtu(mtu));
                if !self.state.synchronized() {
                    self.our_mss = self.our_mss.min(new as u16);
                }
                if new < self.mss {
                    stats.tcp_pmtu_updates += 1;
                    self.mss = new;
                    if self.state.synchronized() && self.snd_max > self.snd_una {
                        // Resend what is in flight in the new size (the
                        // originals were dropped); Karn: no RTT sample.
                        self.snd_nxt = self.snd_una;
                        self.high_rxt = self.snd_una;
                        self.rtt_probe = None;
                    }
                }
            }
        }
        Ok(Outcome::Ok)
    }
}

#[cfg(test)]
thread_local! {
    /// Test-only switch: the straight line of header prediction off, so the
    /// same segments can be run through the general path for comparison.
    static STRAIGHT_OFF: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

#[cfg(test)]
thread_local! {
    /// Test-only count of segments the straight line took.
    static STRAIGHT_TAKEN: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

#[cfg(test)]
fn straight_off() -> bool {
    STRAIGHT_OFF.with(|c| c.get())
}

/// RFC 9293 3.10.7.4 first check: whether a segment at `seq` occupying
/// `len` sequence numbers falls in the receive window `[rcv_nxt, rcv_nxt +
/// wnd)` (the four cases of the table). Widening `wnd` never turns an
/// acceptable segment into an unacceptable one.
#[inline]
pub(super) fn seq_acceptable(seq: Seq, len: u32, rcv_nxt: Seq, wnd: u32) -> bool {
    match (len, wnd) {
        (0, 0) => seq == rcv_nxt,
        (0, w) => seq.in_range(rcv_nxt, rcv_nxt + w),
        (_, 0) => false,
        (l, w) => seq.in_range(rcv_nxt, rcv_nxt + w) || (seq + (l - 1)).in_range(rcv_nxt, rcv_nxt + w),
    }
}

#[cfg(test)]
mod acceptability_tests {
    use super::{seq_acceptable, Seq};

    /// The fast path of `on_segment` tests the advertised window first and
    /// widens only on rejection: sound because a segment acceptable in a
    /// window stays acceptable in every wider one (all four cases, around
    /// the wrap of the sequence space).
    #[test]
    fn acceptability_only_widens_with_the_window() {
        for base in [0u32, 1000, u32::MAX - 5] {
            let rcv_nxt = Seq(base);
            for off in -8i64..24 {
                let seq = Seq(base.wrapping_add(off as u32));
                for len in 0..6 {
                    for w in 0..12 {
                        if seq_acceptable(seq, len, rcv_nxt, w) {
                            for wider in w..16 {
                                assert!(seq_acceptable(seq, len, rcv_nxt, wider), "{off} {len} {w} {wider}");
                            }
                        }
                    }
                }
            }
        }
        assert!(seq_acceptable(Seq(7), 0, Seq(7), 0), "empty segment at RCV.NXT, zero window");
        assert!(!seq_acceptable(Seq(7), 1, Seq(7), 0), "data into a zero window");
        assert!(seq_acceptable(Seq(5), 3, Seq(7), 1), "ends in the window: overlaps the left edge");
        assert!(!seq_acceptable(Seq(8), 1, Seq(7), 1), "past the right edge");
    }
}

#[cfg(test)]
mod straight_tests {
    use super::*;
    use crate::mem::HeapPages;
    use crate::tcp::send_queue::CopySrc;

    /// A small deterministic generator (64-bit LCG, high bits).
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u32 {
            self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) as u32
        }
        fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
            xs[self.next() as usize % xs.len()]
        }
    }

    /// The knobs of one generated connection.
    #[derive(Clone, Copy, Debug)]
    struct Setup {
        ts: bool,
        sack: bool,
        wscale: Option<u8>,
        delack: bool,
        /// 0 nothing, 1 recovery, 2 timeout recovery, 3 peer window shut,
        /// 4 FIN queued, 5 SHUT_RD, 6 a hole in the receive queue, 7 a
        /// SACKed range on the scoreboard, 8 data already queued to read.
        knob: u8,
        sent: u32,
    }

    fn seg_at<'a>(seq: Seq, ack: Option<Seq>, wnd: u16, ts: Option<(u32, u32)>, payload: &'a [u8]) -> SegIn<'a> {
        SegIn {
            seq,
            ack,
            syn: false,
            fin: false,
            rst: false,
            wnd,
            mss: None,
            wscale: None,
            sack_permitted: false,
            sack: [None; 3],
            ts,
            payload,
            rx: None,
        }
    }

    /// An established active open (a real handshake through `on_segment`)
    /// with `sent` bytes in flight, then the setup's knob applied.
    fn build(cfg: &Rc<TcpConfig>, s: Setup, now: Instant, mem: &mut HeapPages) -> Conn {
        let (local, remote) = (SocketAddrV4::new([10, 0, 0, 1].into(), 80), SocketAddrV4::new([10, 0, 0, 2].into(), 9));
        let mut stats = Stats::default();
        let mut budget = ChallengeBudget::new(7);
        let mut out = Vec::new();
        let mut c = Conn::connect(cfg, local, remote, Seq(1000), 1500, now);
        c.output(now, mem, &mut stats, &mut out, 0, false, &mut Vec::new());
        let mut synack = seg_at(Seq(7000), Some(Seq(1001)), 20_000, s.ts.then_some((500, c.ts_now)), &[]);
        synack.syn = true;
        synack.mss = Some(1460);
        synack.wscale = s.wscale;
        synack.sack_permitted = s.sack;
        let _ = c.on_segment(now, &synack, mem, &mut stats, &mut out, &mut budget);
        assert_eq!(c.state, State::Established);
        let data = vec![3u8; 6000];
        c.write(CopySrc::Bytes(&data), mem);
        c.cwnd = 20_000;
        c.output(now, mem, &mut stats, &mut out, 0, false, &mut Vec::new());
        // Keep `sent` bytes in flight: the rest of what went out is acked.
        let ack = c.snd_max + 0u32.wrapping_sub(s.sent.min(c.snd_max.since(c.snd_una)));
        let wnd = (20_000u32 >> c.snd_wscale) as u16;
        let ts = s.ts.then_some((501, c.ts_now));
        let _ = c.on_segment(now, &seg_at(c.rcv_nxt, Some(ack), wnd, ts, &[]), mem, &mut stats, &mut out, &mut budget);
        match s.knob {
            1 => c.recover = Some(c.snd_max),
            2 => c.rto_point = Some(c.snd_max),
            3 => c.snd_wnd = 0,
            4 => c.fin_queued = true,
            5 => c.shutdown_read(),
            6 => {
                let seg = seg_at(c.rcv_nxt + 200, Some(c.snd_una), wnd, ts, &data[..100]);
                let _ = c.on_segment(now, &seg, mem, &mut stats, &mut out, &mut budget);
            }
            7 if c.snd_max.since(c.snd_una) > 1000 => {
                let mut seg = seg_at(c.rcv_nxt, Some(c.snd_una), wnd, ts, &[]);
                seg.sack[0] = Some(((c.snd_una + 500).0, (c.snd_una + 1000).0));
                let _ = c.on_segment(now, &seg, mem, &mut stats, &mut out, &mut budget);
            }
            8 => {
                let seg = seg_at(c.rcv_nxt, Some(c.snd_una), wnd, ts, &data[..300]);
                let _ = c.on_segment(now, &seg, mem, &mut stats, &mut out, &mut budget);
            }
            _ => {}
        }
        c
    }

    /// One segment generated against the connection's present state: in
    /// order, old, future or at the window's edges; ACKs old, duplicate,
    /// partial, complete or of data never sent; windows kept, changed or
    /// shut; timestamps older, equal, newer or absent; odd flags and SACK
    /// blocks now and then.
    fn gen<'a>(r: &mut Lcg, c: &Conn, data: &'a [u8]) -> SegIn<'a> {
        let adv = c.rcv_adv.max(c.rcv_nxt).since(c.rcv_nxt);
        let seq = c.rcv_nxt + r.pick(&[0u32, 0, 0, 0, 1, u32::MAX, 100, adv, adv.wrapping_sub(1)]);
        let in_flight = c.snd_max.since(c.snd_una);
        let ack = match r.next() % 10 {
            0 => None,
            1 => Some(c.snd_una + u32::MAX),
            2 | 3 => Some(c.snd_una),
            4 => Some(c.snd_una + in_flight / 2),
            5 => Some(c.snd_una + 1),
            6 => Some(c.snd_max + 1),
            _ => Some(c.snd_max),
        };
        let len = r.pick(&[0usize, 0, 1, 64, 64, 1000, 1460, adv as usize, adv as usize + 1, 3000]).min(data.len());
        let same = (c.snd_wnd >> c.snd_wscale) as u16;
        let wnd = r.pick(&[same, same, same, 0, same.wrapping_add(7), same / 2, u16::MAX]);
        let ts = match r.next() % 6 {
            0 => None,
            1 => Some((c.ts_recent.wrapping_sub(1), c.ts_now)),
            2 => Some((c.ts_recent, c.ts_now)),
            _ => Some((c.ts_recent.wrapping_add(1 + r.next() % 50), c.ts_now)),
        };
        let mut s = seg_at(seq, ack, wnd, ts, &data[..len]);
        match r.next() % 24 {
            0 => s.fin = true,
            1 => s.rst = true,
            2 => s.syn = true,
            3 | 4 if in_flight > 200 => s.sack[0] = Some(((c.snd_una + 100).0, (c.snd_una + 200).0)),
            _ => {}
        }
        s
    }

    /// The straight line of header prediction is the general path for
    /// every segment it takes: over generated connections (timestamps,
    /// SACK and window scaling on or off, delayed ACKs on or off, data in
    /// flight, recovery, timeout recovery, a shut peer window, a queued
    /// FIN, SHUT_RD, a hole, a SACKed range, unread data) and sequences of
    /// generated segments (in-window, edge-of-window, old, future; with and
    /// without timestamps; window changes; duplicate, partial, complete and
    /// impossible ACKs), two identical connections — one with the straight
    /// line switched off — end every step with equal state (`Debug`),
    /// output, counters and outcome.
    #[test]
    fn the_straight_line_equals_the_general_path() {
        let data: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
        let mut r = Lcg(0x5eed_1234);
        let (mut taken, mut steps) = (0u64, 0u64);
        for case in 0..6000u32 {
            let s = Setup {
                ts: r.next() % 4 != 0,
                sack: r.next() % 2 == 0,
                wscale: r.pick(&[None, Some(0), Some(2), Some(7)]),
                delack: r.next() % 4 != 0,
                knob: if r.next() % 2 == 0 { 0 } else { (r.next() % 9) as u8 },
                sent: r.pick(&[0u32, 64, 1000, 3000, 6000]),
            };
            let mut cfg = TcpConfig::default();
            if !s.delack {
                cfg.delayed_ack = None;
            }
            let cfg = Rc::new(cfg);
            let mut now = Instant::from_millis(10_000);
            let (mut mem_a, mut mem_b) = (HeapPages::new(64, 2048), HeapPages::new(64, 2048));
            let mut a = build(&cfg, s, now, &mut mem_a);
            let mut b = build(&cfg, s, now, &mut mem_b);
            assert_eq!(format!("{a:?}"), format!("{b:?}"), "case {case}: built alike");
            let (mut stats_a, mut stats_b) = (Stats::default(), Stats::default());
            let (mut budget_a, mut budget_b) = (ChallengeBudget::new(7), ChallengeBudget::new(7));
            for step in 0..4 {
                now += Duration::from_millis(u64::from(r.next() % 3));
                let seg = gen(&mut r, &a, &data);
                let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
                let before = STRAIGHT_TAKEN.with(|c| c.get());
                let ra = a.on_segment(now, &seg, &mut mem_a, &mut stats_a, &mut out_a, &mut budget_a);
                taken += STRAIGHT_TAKEN.with(|c| c.get()) - before;
                STRAIGHT_OFF.with(|c| c.set(true));
                let rb = b.on_segment(now, &seg, &mut mem_b, &mut stats_b, &mut out_b, &mut budget_b);
                STRAIGHT_OFF.with(|c| c.set(false));
                steps += 1;
                let what = format!("case {case} step {step} {s:?}");
                assert_eq!(ra, rb, "{what}");
                assert_eq!(format!("{a:?}"), format!("{b:?}"), "{what}");
                assert_eq!(format!("{out_a:?}"), format!("{out_b:?}"), "{what}");
                assert_eq!(format!("{stats_a:?}"), format!("{stats_b:?}"), "{what}");
                if ra == Outcome::Closed {
                    break;
                }
                // Both answer alike too (ACKs, data), so the next step starts equal.
                a.output(now, &mut mem_a, &mut stats_a, &mut out_a, 0, false, &mut Vec::new());
                b.output(now, &mut mem_b, &mut stats_b, &mut out_b, 0, false, &mut Vec::new());
                assert_eq!(format!("{out_a:?}"), format!("{out_b:?}"), "{what}: output");
            }
        }
        assert!(taken > steps / 20 && taken < steps / 2, "both paths exercised: {taken} of {steps} straight");
    }
}
