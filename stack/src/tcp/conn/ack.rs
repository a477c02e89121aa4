//! ACK processing (RFC 9293 3.10.7.4 fifth check): acceptability, the RFC 5961
//! challenge ACK, and what a new ACK releases from the send queue.

use super::*;

impl Conn {
    /// RFC 5961 5.2 (RFC 9293 3.10.7.4): in a synchronized state an ACK is
    /// acceptable only within `[snd_una - max_snd_wnd, snd_nxt]`, `snd_nxt`
    /// being the highest sequence number sent (`snd_max`) and
    /// `max_snd_wnd` at least one MSS. Anything else acknowledges data never
    /// sent or data acknowledged long ago: the segment must be dropped.
    pub(super) fn ack_acceptable(&self, ack: Seq) -> bool {
        let max_wnd = self.max_snd_wnd.max(self.mss);
        ack <= self.snd_max && (ack >= self.snd_una || self.snd_una.since(ack) <= max_wnd)
    }

    /// Answers a rejected segment with an ACK (RFC 9293 3.10.7.4 first
    /// check, RFC 7323 PAWS). Segments that occupy sequence space (data or
    /// FIN, not SYN) are always answered: zero-window probes and
    /// retransmissions need the ACK and are no part of an ACK loop (as in
    /// Linux `tcp_oow_rate_limited`). Others are limited per connection to
    /// `invalid_ack_burst` per `invalid_ack_interval`.
    #[cold]
    #[inline(never)]
    pub(super) fn ack_rejected(&mut self, now: Instant, seg: &SegIn<'_>, stats: &mut Stats) {
        if (seg.len() > 0 && !seg.syn)
            || self.ack_limiter.allow(now, self.cfg.invalid_ack_interval, self.cfg.invalid_ack_burst)
        {
            self.ack_now = true;
        } else {
            stats.tcp_acks_rate_limited += 1;
        }
    }

    /// Sends a challenge ACK (RFC 5961 3.2, 4.2, 5.2) unless the
    /// per-connection limit or the engine-wide per-second budget (RFC 5961
    /// 7) is spent; suppressed ones are counted.
    #[cold]
    #[inline(never)]
    pub(super) fn challenge_ack(&mut self, now: Instant, budget: &mut ChallengeBudget, stats: &mut Stats) {
        if !self.ack_limiter.allow(now, self.cfg.invalid_ack_interval, self.cfg.invalid_ack_burst) {
            stats.tcp_acks_rate_limited += 1;
        } else if !budget.allow(now, self.cfg.challenge_ack_limit) {
            stats.tcp_challenge_acks_global_limited += 1;
        } else {
            stats.tcp_challenge_acks += 1;
            self.ack_now = true;
        }
    }

    /// [`Conn::take_new_ack`] out of line, for header prediction's straight
    /// line, which is in line in the engine's receive path: a receiver's
    /// in-order data (no new ACK) runs there without the call.
    #[inline(never)]
    pub(super) fn take_new_ack_out<M: PageMemory + ?Sized>(
        &mut self,
        now: Instant,
        ack: Seq,
        mem: &mut M,
        stats: &mut Stats,
    ) {
        self.take_new_ack(now, ack, mem, stats);
    }

    /// The part of a new ACK (`ack` > SND.UNA) both receive paths share —
    /// [`Conn::process_ack`] and header prediction's straight line (RFC 9293
    /// 3.10.7.4, RFC 6298 5.2–5.3): frees the acknowledged bytes, moves
    /// SND.UNA (SND.NXT and HighRxt up to it), takes an RTT sample, runs
    /// congestion control, and stops or restarts the RTO.
    #[inline(always)]
    pub(super) fn take_new_ack<M: PageMemory + ?Sized>(
        &mut self,
        now: Instant,
        ack: Seq,
        mem: &mut M,
        stats: &mut Stats,
    ) {
        let data_start = self.data_start();
        let data_end = data_start + self.sendq.len() as u32;
        let acked_data = ack.min(data_end).since(data_start.min(ack));
        let newly = ack.since(self.snd_una);
        if self.sendq.ack(acked_data as usize, mem).is_err() {
            stats.page_errors += 1;
        }
        self.snd_una = ack;
        if self.snd_nxt < ack {
            self.snd_nxt = ack;
        }
        if self.high_rxt < ack {
            self.high_rxt = ack;
        }
        self.retries = 0;
        if let Some((s, t)) = self.rtt_probe {
            if ack > s {
                self.rtt.sample(now.saturating_duration_since(t));
                self.rtt_probe = None;
            }
        }
        self.on_new_ack(now, ack, newly);
        if self.snd_una == self.snd_max {
            self.rtx_at = None;
        } else {
            self.arm_rtx(now);
        }
        if acked_data > 0 {
            self.events_pending = true;
        }
    }

    /// Processes an acceptable ACK ([`Conn::ack_acceptable`] checked by the
    /// caller): send queue, RTT, congestion control, window update.
    pub(super) fn process_ack(
        &mut self,
        now: Instant,
        seg: &SegIn<'_>,
        ack: Seq,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
    ) -> Outcome {
        let wnd = u32::from(seg.wnd) << self.snd_wscale;
        if self.sack_ok {
            self.scoreboard.update(ack.max(self.snd_una), self.snd_max, &seg.sack);
        }
        if ack > self.snd_una {
            let fin_seq = self.fin_seq();
            self.scoreboard.trim(ack);
            if self.rto_point.is_some_and(|p| ack >= p) {
                self.rto_point = None;
            }
            self.take_new_ack(now, ack, mem, stats);
            if let Some(f) = fin_seq {
                if ack > f {
                    self.fin_acked = true;
                    self.linger_at = None;
                    match self.state {
                        State::FinWait1 => {
                            self.state = State::FinWait2;
                            self.events_pending = true;
                        }
                        State::Closing => self.enter_time_wait(now, mem),
                        State::LastAck => {
                            self.release(mem);
                            self.state = State::Closed;
                            self.events_pending = true;
                            return Outcome::Closed;
                        }
                        _ => {}
                    }
                }
            }
        } else if ack == self.snd_una
            && seg.payload.is_empty()
            && !seg.fin
            && wnd == self.snd_wnd
            && self.data_outstanding()
        {
            self.on_dup_ack(stats);
        }
        // Window update (RFC 9293 3.10.7.4).
        if self.snd_wl1 < seg.seq || (self.snd_wl1 == seg.seq && self.snd_wl2 <= ack) {
            let was_zero = self.snd_wnd == 0;
            self.snd_wnd = wnd;
            self.max_snd_wnd = self.max_snd_wnd.max(wnd);
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = ack;
            if wnd > 0 {
                self.persist_at = None;
                self.persist_backoff = 0;
                if was_zero {
                    self.events_pending = true;
                }
                if was_zero && self.rtx_at.is_none() {
                    // Persisting: whatever went past the shut window (the
                    // probe byte) was refused unless this ACK covers it.
                    self.snd_nxt = self.snd_una;
                }
            } else {
                // The peer answers while its window is shut: alive.
                self.retries = 0;
            }
        }
        // RFC 6675 5 (step 4): SACK-based loss detection enters recovery even
        // when the window changes prevent counting duplicate ACKs.
        if self.sack_ok
            && self.recover.is_none()
            && self.rto_point.is_none()
            && self.snd_max > self.snd_una
            && self.scoreboard.is_lost(self.snd_una, self.mss)
        {
            self.enter_recovery(stats);
        }
        Outcome::Ok
    }
}
