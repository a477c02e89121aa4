//! Congestion control (RFC 5681, RFC 6675 recovery with the CUBIC or Reno
//! window): flight size, the window decrease, and new and duplicate ACKs.

use super::*;

impl Conn {
    pub(super) fn in_flight(&self) -> u32 {
        self.snd_max.since(self.snd_una)
    }

    /// The new ssthresh after a congestion event: half the flight for
    /// NewReno (RFC 5681 eq. 4), beta = 0.7 of the window for CUBIC.
    pub(super) fn decrease(&mut self) -> u32 {
        let (w, flight, mss) = (self.cwnd.max(self.in_flight()), self.in_flight(), self.mss);
        match self.cubic.as_mut() {
            Some(c) => c.on_congestion(w, mss),
            None => (flight / 2).max(2 * mss),
        }
    }

    pub(super) fn pipe(&self) -> u32 {
        if self.sack_ok {
            self.scoreboard.pipe(self.snd_una, self.snd_max, self.high_rxt, self.mss)
        } else {
            self.in_flight()
        }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn enter_recovery(&mut self, stats: &mut Stats) {
        stats.tcp_fast_retransmits += 1;
        self.ssthresh = self.decrease();
        self.recover = Some(self.snd_max);
        self.rtt_probe = None;
        if self.sack_ok {
            // RFC 6675 5 (4.2-4.3): cwnd = ssthresh; the first segment goes
            // at once whatever the pipe says; output retransmits the other
            // holes by pipe.
            self.cwnd = self.ssthresh;
            self.high_rxt = self.snd_una;
            self.rtx_one = true;
        } else {
            // RFC 6582: retransmit the first segment, inflate by three.
            self.cwnd = self.ssthresh + 3 * self.mss;
            self.rtx_one = true;
        }
    }

    pub(super) fn on_new_ack(&mut self, now: Instant, ack: Seq, newly: u32) {
        self.dupacks = 0;
        self.limited_transmit = 0;
        match self.recover {
            Some(rec) if ack < rec => {
                if !self.sack_ok {
                    // Partial ACK (RFC 6582 3.2 step 5): retransmit the next
                    // hole, deflate by what was acked, add back one segment.
                    self.rtx_one = true;
                    self.cwnd = self.cwnd.saturating_sub(newly).saturating_add(self.mss).max(self.mss);
                }
            }
            Some(_) => {
                // Full ACK: leave recovery.
                self.recover = None;
                self.cwnd = self.ssthresh.min(self.in_flight().max(self.mss) + self.mss).max(self.mss);
            }
            None => {
                // Byte counting (RFC 3465), without its per-ACK cap in slow
                // start (as Linux counts every ACKed segment): a receiver
                // that ACKs a whole burst at once (stretch ACKs, GRO-style
                // batching) must not slow the window's growth.
                if self.cwnd < self.ssthresh {
                    self.cwnd = self.cwnd.saturating_add(newly).min(self.ssthresh.max(self.cwnd));
                } else if let Some(cubic) = self.cubic.as_mut() {
                    let srtt = self.rtt.srtt().unwrap_or(Duration::from_millis(1));
                    self.cwnd = cubic.on_ack(now, self.cwnd, self.mss, newly, srtt);
                } else {
                    let inc = (u64::from(self.mss) * u64::from(newly) / u64::from(self.cwnd.max(1))).max(1);
                    self.cwnd = self.cwnd.saturating_add(inc as u32);
                }
            }
        }
    }

    pub(super) fn on_dup_ack(&mut self, stats: &mut Stats) {
        if self.rto_point.is_some() || self.snd_wnd == 0 {
            // Going back after a timeout: duplicates start no recovery
            // before the recovery point is acknowledged (RFC 6582 4). With
            // the window shut they answer window probes, and say nothing
            // about loss.
            return;
        }
        self.dupacks += 1;
        // Early retransmit (RFC 5827): with fewer than four segments
        // outstanding and nothing new to send, three duplicates can never
        // arrive; lower the threshold to outstanding - 1.
        let outstanding = self.in_flight().div_ceil(self.mss.max(1));
        let unsent = self.data_start() + self.sendq.len() as u32 > self.snd_max;
        let thresh = if outstanding < 4 && !unsent { outstanding.saturating_sub(1).max(1) } else { 3 };
        if self.recover.is_some() {
            // Inflate during NewReno recovery (RFC 5681 3.2 step 4); with SACK
            // the pipe estimate does this job.
            if !self.sack_ok {
                self.cwnd = self.cwnd.saturating_add(self.mss);
            }
        } else if self.dupacks < thresh {
            // Limited transmit (RFC 3042): the first two duplicates each let
            // one new segment out, keeping the ACK clock running.
            self.limited_transmit += 1;
        } else if self.dupacks == thresh {
            self.enter_recovery(stats);
        }
    }
}
