//! A hashed timing wheel: O(1) to schedule, O(1) amortised per tick to expire,
//! and nothing at all for connections without timers.
//!
//! 1 ms ticks, 4096 slots (a 4.096 s horizon). The wheel only holds timers
//! inside its horizon, so the first occupied slot after the cursor holds the
//! earliest ones; timers further out (keepalive, FIN timeout) wait in a small
//! overflow heap and cascade into the wheel as the horizon reaches them. A
//! bitmap of occupied slots finds the next one in at most 64 word tests.
//! Deadlines are kept exactly: a timer never fires early.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::time::Instant;

const SLOTS: usize = 4096;
const TICK_US: u64 = 1000;

/// Timers keyed by an opaque `u32` (the connection slot).
#[derive(Debug)]
pub struct TimerWheel {
    slots: Vec<Vec<(Instant, u32)>>,
    occupied: [u64; SLOTS / 64],
    /// Ticks before this have been expired (its own slot may still hold
    /// entries due later within the tick).
    cursor: u64,
    wheel_len: usize,
    overflow: BinaryHeap<Reverse<(Instant, u32)>>,
}

impl Default for TimerWheel {
    fn default() -> Self {
        TimerWheel {
            slots: vec![Vec::new(); SLOTS],
            occupied: [0; SLOTS / 64],
            cursor: 0,
            wheel_len: 0,
            overflow: BinaryHeap::new(),
        }
    }
}

fn tick_of(t: Instant) -> u64 {
    t.total_micros().div_ceil(TICK_US)
}

impl TimerWheel {
    /// Entries held (stale ones included until they expire).
    pub fn len(&self) -> usize {
        self.wheel_len + self.overflow.len()
    }

    /// Whether nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Schedules `key` at `at`.
    pub fn insert(&mut self, at: Instant, key: u32) {
        let tick = tick_of(at).max(self.cursor);
        if tick >= self.cursor + SLOTS as u64 {
            self.overflow.push(Reverse((at, key)));
            return;
        }
        let s = (tick % SLOTS as u64) as usize;
        self.slots[s].push((at, key));
        self.occupied[s / 64] |= 1 << (s % 64);
        self.wheel_len += 1;
    }

    /// Moves every entry due at `now` into `out`.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<(Instant, u32)>) {
        let now_tick = tick_of(now);
        if self.wheel_len > 0 {
            let last = now_tick.min(self.cursor + SLOTS as u64 - 1);
            let mut t = self.cursor;
            while t <= last {
                let s = (t % SLOTS as u64) as usize;
                if self.occupied[s / 64] & (1 << (s % 64)) != 0 {
                    let slot = &mut self.slots[s];
                    let before = slot.len();
                    let mut i = 0;
                    while i < slot.len() {
                        if slot[i].0 <= now {
                            out.push(slot.swap_remove(i));
                        } else {
                            i += 1;
                        }
                    }
                    self.wheel_len -= before - slot.len();
                    if slot.is_empty() {
                        self.occupied[s / 64] &= !(1 << (s % 64));
                    }
                }
                t += 1;
            }
        }
        self.cursor = self.cursor.max(now_tick);
        // Cascade overflow timers that the horizon now reaches.
        while let Some(Reverse((at, key))) = self.overflow.peek().copied() {
            if tick_of(at) >= self.cursor + SLOTS as u64 {
                break;
            }
            self.overflow.pop();
            if at <= now {
                out.push((at, key));
            } else {
                self.insert(at, key);
            }
        }
    }

    /// The earliest deadline scheduled (stale entries included).
    pub fn next_at(&self) -> Option<Instant> {
        let far = self.overflow.peek().map(|Reverse((at, _))| *at);
        if self.wheel_len == 0 {
            return far;
        }
        let start = (self.cursor % SLOTS as u64) as usize;
        for step in 0..=SLOTS / 64 {
            let w = (start / 64 + step) % (SLOTS / 64);
            let mut bits = self.occupied[w];
            if step == 0 {
                bits &= !0u64 << (start % 64);
            } else if step == SLOTS / 64 {
                bits &= !(!0u64 << (start % 64));
            }
            if bits != 0 {
                let s = w * 64 + bits.trailing_zeros() as usize;
                let near = self.slots[s].iter().map(|e| e.0).min();
                return match (near, far) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
        far
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fires_on_time_never_early_and_handles_far_timers() {
        let mut w = TimerWheel::default();
        let mut out = Vec::new();
        w.insert(Instant::from_micros(1500), 1);
        w.insert(Instant::from_millis(40), 2);
        w.insert(Instant::from_secs(7200), 3); // beyond one revolution
        assert_eq!(w.next_at(), Some(Instant::from_micros(1500)));
        w.expire(Instant::from_micros(1400), &mut out);
        assert!(out.is_empty(), "not early");
        w.expire(Instant::from_millis(2), &mut out);
        assert_eq!(out, vec![(Instant::from_micros(1500), 1)]);
        out.clear();
        w.expire(Instant::from_millis(100), &mut out);
        assert_eq!(out, vec![(Instant::from_millis(40), 2)]);
        out.clear();
        // The far timer is skipped on every revolution until its time.
        let mut t = Instant::from_millis(100);
        while out.is_empty() {
            let next = w.next_at().expect("still scheduled");
            assert!(next >= t);
            t = next;
            w.expire(t, &mut out);
            assert!(t <= Instant::from_secs(7200));
        }
        assert_eq!(out, vec![(Instant::from_secs(7200), 3)]);
        assert!(w.is_empty());
        assert_eq!(w.next_at(), None);
    }
}
