//! The engine's timer pass: expires the timing wheel and runs each due
//! connection's timers (see `conn/timers.rs`).

use super::*;

/// Timer expiries handled per poll at most. Timers due together (thousands
/// of connections' keep-alives or delayed ACKs in one tick, or a wheel
/// catching up after a stall) are handled in slices of this many, oldest
/// first, one slice per poll, so no single loop pass grows with the number
/// of connections; the rest wait a pass (microseconds) and
/// `Stats::tcp_timer_slices_deferred` counts the polls that left some.
pub(crate) const TIMER_SLICE: usize = 256;

impl TcpEngine {
    /// Runs the timers due at `now`: at most [`TIMER_SLICE`] of them, the
    /// longest-waiting first; [`TcpEngine::poll_at`] asks for another poll
    /// at once while some wait.
    #[inline]
    pub(crate) fn on_timers(
        &mut self,
        now: Instant,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
    ) {
        // Most polls: no slice waits and the earliest deadline is ahead.
        if self.expired.is_empty() && self.timers.skip_idle(now) {
            return;
        }
        self.run_timers(now, mem, stats, out);
    }

    /// [`TcpEngine::on_timers`] once some timer may be due.
    #[inline(never)]
    fn run_timers(&mut self, now: Instant, mem: &mut dyn PageMemory, stats: &mut Stats, out: &mut Vec<SegOut>) {
        let mut due = std::mem::take(&mut self.expired);
        self.timers.expire(now, &mut due);
        let from = self.expired_at.min(due.len());
        let to = due.len().min(from + TIMER_SLICE);
        for &(t, idx) in &due[from..to] {
            let Some(Slot { sock: Some(Sock::Conn(c)), .. }) = self.slots.get_mut(idx as usize) else { continue };
            if c.timer_scheduled != Some(t) {
                continue; // stale entry
            }
            c.timer_scheduled = None;
            let was = c.state;
            let closed = c.on_timer(now, mem, stats, out) == Outcome::Closed;
            // Its entry is gone: the re-arm after output starts from the
            // deadlines as they are (plus any output sets).
            c.deadline_new = c.next_timer();
            self.account_pages(idx);
            if closed {
                self.finish(idx, was);
                continue;
            }
            self.note(idx);
            // On the output list: `dispatch`, later in this poll, re-arms
            // its timer after building its segments.
            self.mark(idx);
        }
        if to < due.len() {
            stats.tcp_timer_slices_deferred += 1;
            self.expired_at = to;
        } else {
            due.clear();
            self.expired_at = 0;
        }
        self.expired = due;
    }

    /// A time by which the next timer may be due (see [`timer::TimerWheel::next_at`]), O(1).
    pub fn poll_at(&mut self) -> Option<Instant> {
        if self.expired_at < self.expired.len() {
            return Some(Instant::ZERO); // a slice of due timers waits
        }
        self.timers.next_at()
    }
}
