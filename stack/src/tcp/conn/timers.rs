//! The connection's timers: retransmission (RFC 6298), persist, keepalive,
//! delayed ACK, linger, FIN-WAIT-2 and TIME-WAIT (RFC 9293 3.10.8).

use super::*;

impl Conn {
    pub(super) fn arm_rtx(&mut self, now: Instant) {
        let at = now + self.rtt.rto_with_slop(self.cfg.rto_slop);
        self.rtx_at = Some(at);
        self.note_deadline(at);
    }

    /// Records a deadline just set (any of the six `*_at` timers) for the
    /// next re-arm (`tcp::table::rearm`), which then compares one value
    /// instead of scanning all six. Every `x_at = Some(at)` is followed by
    /// this call; clearing a deadline needs none (a wheel entry left
    /// earlier than the connection's real deadline finds nothing due and
    /// re-arms from [`Conn::next_timer`]).
    #[inline]
    pub(crate) fn note_deadline(&mut self, at: Instant) {
        self.deadline_new = Some(self.deadline_new.map_or(at, |d| d.min(at)));
    }

    #[cold]
    #[inline(never)]
    pub(super) fn enter_time_wait(&mut self, now: Instant, mem: &mut dyn PageMemory) {
        self.state = State::TimeWait;
        let at = now + self.cfg.msl.saturating_mul(2);
        self.timewait_at = Some(at);
        self.note_deadline(at);
        self.rtx_at = None;
        self.persist_at = None;
        self.keepalive_at = None;
        self.linger_at = None;
        let _ = self.sendq.clear(mem);
    }

    /// The earliest timer of this connection.
    pub fn next_timer(&self) -> Option<Instant> {
        // A plain fold: the iterator-of-Options form compiled to a loop
        // over a stack copy of all six on every schedule().
        let earliest = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, None) | (None, x) => x,
        };
        let a = earliest(self.rtx_at, self.delack_at);
        let b = earliest(self.timewait_at, self.persist_at);
        let c = earliest(self.keepalive_at, self.linger_at);
        earliest(earliest(a, b), c)
    }

    /// Marks the SYN-ACK as already sent (a SYN-cookie connection: the cookie
    /// was our ISS and its SYN-ACK went out statelessly).
    pub fn syn_ack_sent(&mut self) {
        self.snd_nxt = self.iss + 1;
        self.snd_max = self.snd_nxt;
        self.rcv_adv = self.rcv_nxt + self.rcv_window().min(MAX_WIN);
    }

    /// Bounds an orphan's wait in FIN-WAIT-2 (Linux `tcp_fin_timeout`).
    pub fn timer_fin2(&mut self, at: Instant) {
        self.timewait_at = Some(at);
        self.note_deadline(at);
    }

    /// Enables keepalive probing.
    pub fn set_keepalive(&mut self, on: bool, now: Instant) {
        self.keepalive = on;
        self.keepalive_at = on.then(|| now + self.cfg.keepalive_idle);
        if let Some(at) = self.keepalive_at {
            self.note_deadline(at);
        }
        self.ka_probes = 0;
    }

    /// A close with `SO_LINGER` set to a timeout: if our data and FIN are not
    /// acknowledged by then, the connection is reset.
    pub fn start_linger(&mut self, now: Instant) {
        if let Some(t) = self.linger {
            self.linger_at = Some(now + t);
            self.note_deadline(now + t);
        }
    }

    /// Runs every timer due at `now`. Returns `Closed` when the connection ends.
    pub fn on_timer(
        &mut self,
        now: Instant,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
    ) -> Outcome {
        if let Some(t) = self.timewait_at {
            if now >= t {
                self.release(mem);
                self.state = State::Closed;
                return Outcome::Closed;
            }
        }
        if self.linger_at.is_some_and(|t| now >= t) {
            // SO_LINGER ran out with data or FIN unacknowledged: reset.
            stats.tcp_linger_resets += 1;
            if let Some(r) = self.abort(mem) {
                out.push(r);
            }
            return Outcome::Closed;
        }
        if let Some(t) = self.delack_at {
            if now >= t {
                self.delack_at = None;
                self.ack_now = true;
            }
        }
        if let Some(t) = self.rtx_at {
            if now >= t {
                self.retries += 1;
                let limit = if self.state.synchronized() { self.cfg.max_retries } else { self.cfg.syn_retries };
                if self.retries > limit {
                    stats.tcp_timeouts += 1;
                    // RFC 1122 4.2.3.9: a soft error seen meanwhile says why.
                    self.error = Some(self.soft_error.unwrap_or(TcpError::TimedOut));
                    self.release(mem);
                    self.state = State::Closed;
                    self.events_pending = true;
                    return Outcome::Closed;
                }
                stats.tcp_rto_retransmits += 1;
                // RFC 5681 3.1 eq. 4 and RFC 6298 5.4-5.6: go back to snd_una.
                if self.state.synchronized() {
                    self.ssthresh = self.decrease();
                    if let Some(c) = self.cubic.as_mut() {
                        c.on_timeout();
                    }
                    self.cwnd = self.mss;
                }
                // RFC 6675 5.1 / RFC 6582 4: leave any recovery; no new one
                // before everything sent so far is acknowledged.
                self.recover = None;
                if self.snd_max > self.snd_una {
                    self.rto_point = Some(self.snd_max);
                }
                self.dupacks = 0;
                self.limited_transmit = 0;
                self.rtt_probe = None;
                // Keep the SACK information (resend the holes, not what the
                // peer holds) unless the receiver reneged (RFC 2018 8): the
                // byte at snd_una SACKed yet not acknowledged. The segment at
                // snd_una is resent either way.
                if self.scoreboard.reneged(self.snd_una) {
                    self.scoreboard.clear();
                }
                self.high_rxt = self.snd_una;
                self.snd_nxt = self.snd_una;
                self.rtt.back_off();
                self.rtx_at = None;
            }
        }
        if let Some(t) = self.persist_at {
            // A stale persist deadline while the RTO times data is moot.
            if now >= t && self.rtx_at.is_some() {
                self.persist_at = None;
            } else if now >= t {
                self.persist_at = None;
                // RFC 1122 4.2.2.17: a receiver that keeps answering probes
                // keeps the connection (any ACK resets `retries`); one that
                // stays silent through max_retries probes is given up on.
                self.retries += 1;
                if self.retries > self.cfg.max_retries {
                    stats.tcp_timeouts += 1;
                    self.error = Some(TcpError::TimedOut);
                    self.release(mem);
                    self.state = State::Closed;
                    self.events_pending = true;
                    return Outcome::Closed;
                }
                self.persist_backoff = self.persist_backoff.saturating_add(1);
                self.probe_due = true;
            }
        }
        if let Some(t) = self.keepalive_at {
            if now >= t {
                if self.ka_probes >= self.cfg.keepalive_probes {
                    self.error = Some(TcpError::TimedOut);
                    self.release(mem);
                    self.state = State::Closed;
                    self.events_pending = true;
                    return Outcome::Closed;
                }
                self.ka_probes += 1;
                self.keepalive_at = Some(now + self.cfg.keepalive_interval);
                self.note_deadline(now + self.cfg.keepalive_interval);
                self.ka_probe_due = true;
            }
        }
        Outcome::Ok
    }
}
