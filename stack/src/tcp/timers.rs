//! The engine's timer pass: expires the timing wheel and runs each due
//! connection's timers (see `conn/timers.rs`).

use super::*;

impl TcpEngine {
    /// Runs the timers due at `now`.
    pub(crate) fn on_timers(
        &mut self,
        now: Instant,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
    ) {
        let mut due = std::mem::take(&mut self.expired);
        self.timers.expire(now, &mut due);
        for (t, idx) in due.drain(..) {
            let Some(Slot { sock: Some(Sock::Conn(c)), .. }) = self.slots.get_mut(idx as usize) else { continue };
            if c.timer_scheduled != Some(t) {
                continue; // stale entry
            }
            c.timer_scheduled = None;
            let was = c.state;
            let closed = c.on_timer(now, mem, stats, out) == Outcome::Closed;
            self.account_pages(idx);
            if closed {
                self.finish(idx, was);
                continue;
            }
            self.note(idx);
            self.mark(idx);
            self.schedule(idx);
        }
        self.expired = due;
    }

    /// A time by which the next timer may be due (see [`timer::TimerWheel::next_at`]).
    pub fn poll_at(&mut self) -> Option<Instant> {
        self.timers.next_at()
    }
}
