//! A hashed timing wheel: O(1) to schedule, O(1) amortised per tick to expire,
//! and nothing at all for connections without timers.
//!
//! 1 ms ticks, 4096 slots (a 4.096 s horizon). The wheel only holds timers
//! inside its horizon, so the first occupied slot after the cursor holds the
//! earliest ones; timers further out (keepalive, FIN timeout) wait in a small
//! overflow heap and cascade into the wheel as the horizon reaches them. A
//! bitmap of occupied slots finds the next one in at most 64 word tests.
//! Deadlines are kept exactly: a timer never fires early.
//!
//! Entries live in one pool of nodes linked per slot and recycled through a
//! free list: the pool grows only when more timers are pending at once than
//! ever before, so steady-state scheduling allocates nothing (a `Vec` per
//! slot would allocate on the first use of each of the 4096 slots).
//!
//! The earliest deadline held is cached (kept exact on insert, found again
//! after each expiry that ran), so a poll with nothing due costs one compare
//! ([`TimerWheel::skip_idle`]) and [`TimerWheel::next_at`] is O(1).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::time::Instant;

const SLOTS: usize = 4096;
const TICK_US: u64 = 1000;
/// End of a slot's list / of the free list.
const NIL: u32 = u32::MAX;
/// Nodes allocated up front (grown on demand beyond).
const INITIAL_NODES: usize = 256;

/// One scheduled timer, linked into its slot's list or the free list.
#[derive(Clone, Copy, Debug)]
struct Node {
    at: Instant,
    key: u32,
    next: u32,
}

/// Timers keyed by an opaque `u32` (the connection slot).
#[derive(Debug)]
pub struct TimerWheel {
    /// Head node of each slot's list (`NIL`: empty).
    heads: Vec<u32>,
    nodes: Vec<Node>,
    /// Head of the list of unused nodes.
    free: u32,
    occupied: [u64; SLOTS / 64],
    /// Ticks before this have been expired (its own slot may still hold
    /// entries due later within the tick).
    cursor: u64,
    /// The end of the cursor's tick in microseconds (`cursor` × 1000):
    /// `now`'s tick is past the cursor once `now` is past this.
    cursor_end: u64,
    wheel_len: usize,
    overflow: BinaryHeap<Reverse<(Instant, u32)>>,
    /// The earliest deadline held, in microseconds (`u64::MAX` when
    /// empty): no entry is due before it.
    earliest: u64,
}

impl Default for TimerWheel {
    fn default() -> Self {
        TimerWheel {
            heads: vec![NIL; SLOTS],
            nodes: Vec::with_capacity(INITIAL_NODES),
            free: NIL,
            occupied: [0; SLOTS / 64],
            cursor: 0,
            cursor_end: 0,
            wheel_len: 0,
            overflow: BinaryHeap::with_capacity(INITIAL_NODES),
            earliest: u64::MAX,
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
        self.earliest = self.earliest.min(at.total_micros());
        let tick = tick_of(at).max(self.cursor);
        if tick >= self.cursor + SLOTS as u64 {
            self.overflow.push(Reverse((at, key)));
            return;
        }
        let s = (tick % SLOTS as u64) as usize;
        let node = Node { at, key, next: self.heads[s] };
        let n = if self.free != NIL {
            let n = self.free;
            self.free = self.nodes[n as usize].next;
            self.nodes[n as usize] = node;
            n
        } else {
            self.nodes.push(node);
            (self.nodes.len() - 1) as u32
        };
        self.heads[s] = n;
        self.occupied[s / 64] |= 1 << (s % 64);
        self.wheel_len += 1;
    }

    /// Whether an entry may be due at `now` (the cached earliest deadline
    /// has come).
    #[inline]
    pub fn due(&self, now: Instant) -> bool {
        now.total_micros() >= self.earliest
    }

    /// If nothing is due at `now`, moves the cursor to `now` without
    /// walking slots and returns `true` (the caller skips
    /// [`TimerWheel::expire`]); otherwise returns `false` and changes
    /// nothing. Safe because every entry sits in the slot of its own tick
    /// or a later one, and none is before the earliest deadline, which is
    /// after `now`: no slot before `now`'s tick holds an entry.
    #[inline]
    pub fn skip_idle(&mut self, now: Instant) -> bool {
        if self.due(now) {
            return false;
        }
        // A compare per poll; the division only once `now` leaves the
        // cursor's tick.
        if now.total_micros() > self.cursor_end {
            self.set_cursor(tick_of(now));
            if !self.overflow.is_empty() {
                // Nothing is due, so the cascade only moves entries the
                // horizon now reaches into the wheel (kept per tick, as
                // in `expire`, so no pass cascades a backlog at once).
                self.cascade(now, &mut Vec::new());
            }
        }
        true
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
                    self.expire_slot(s, now, out);
                }
                t += 1;
            }
        }
        self.set_cursor(self.cursor.max(now_tick));
        self.cascade(now, out);
        self.earliest = self.scan_earliest().map_or(u64::MAX, Instant::total_micros);
    }

    fn set_cursor(&mut self, tick: u64) {
        self.cursor = tick;
        self.cursor_end = tick.saturating_mul(TICK_US);
    }

    /// Cascades overflow timers that the horizon now reaches into the
    /// wheel, or into `out` when already due at `now`.
    fn cascade(&mut self, now: Instant, out: &mut Vec<(Instant, u32)>) {
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

    /// Moves the entries of slot `s` due at `now` into `out`, returning their
    /// nodes to the free list.
    fn expire_slot(&mut self, s: usize, now: Instant, out: &mut Vec<(Instant, u32)>) {
        let mut prev = NIL;
        let mut n = self.heads[s];
        while n != NIL {
            let Node { at, key, next } = self.nodes[n as usize];
            if at <= now {
                out.push((at, key));
                if prev == NIL {
                    self.heads[s] = next;
                } else {
                    self.nodes[prev as usize].next = next;
                }
                self.nodes[n as usize].next = self.free;
                self.free = n;
                self.wheel_len -= 1;
            } else {
                prev = n;
            }
            n = next;
        }
        if self.heads[s] == NIL {
            self.occupied[s / 64] &= !(1 << (s % 64));
        }
    }

    /// The earliest deadline in slot `s`.
    fn slot_min(&self, s: usize) -> Option<Instant> {
        let mut min = None;
        let mut n = self.heads[s];
        while n != NIL {
            let node = &self.nodes[n as usize];
            min = Some(min.map_or(node.at, |m: Instant| m.min(node.at)));
            n = node.next;
        }
        min
    }

    /// The earliest deadline scheduled (stale entries included), O(1).
    pub fn next_at(&self) -> Option<Instant> {
        if self.is_empty() {
            return None;
        }
        Some(Instant::from_micros(self.earliest))
    }

    /// The earliest deadline held, found by a walk of the bitmap from the
    /// cursor (at most 65 word tests) and of the first occupied slot.
    fn scan_earliest(&self) -> Option<Instant> {
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
                let near = self.slot_min(s);
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

    #[test]
    fn nodes_are_recycled_across_every_slot() {
        // Ten timers pending at a time, rescheduled 1.3 ms ahead for three
        // revolutions of the wheel: every slot gets used, the node pool never
        // holds more than the most timers pending at once.
        let mut w = TimerWheel::default();
        let mut out = Vec::with_capacity(16);
        let mut now = Instant::ZERO;
        for k in 0..10 {
            w.insert(Instant::from_micros(1300 + k), k as u32);
        }
        let mut fired = 0u64;
        while now < Instant::from_millis(3 * SLOTS as u64) {
            now = w.next_at().expect("always ten pending");
            w.expire(now, &mut out);
            for (at, key) in out.drain(..) {
                assert!(at <= now, "never early");
                w.insert(now + crate::time::Duration::from_micros(1300), key);
                fired += 1;
            }
            assert_eq!(w.len(), 10);
        }
        assert!(fired > 3 * SLOTS as u64, "fired {fired}");
        assert!(w.nodes.len() <= 10, "pool grew to {}", w.nodes.len());
        assert_eq!(w.nodes.capacity(), INITIAL_NODES, "no reallocation");
    }

    #[test]
    fn cached_earliest_and_idle_skips_match_a_plain_list() {
        // A deterministic mix of inserts (near, inside the horizon, beyond
        // it, in the past) and polls every 0.1..6 ms, some long idle gaps:
        // what expires, when, and `next_at` match a plain list of the same
        // timers; `skip_idle` says "nothing due" exactly when none is.
        let mut w = TimerWheel::default();
        let mut plain: Vec<(Instant, u32)> = Vec::new();
        let mut out = Vec::new();
        let mut now = Instant::ZERO;
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move |m: u64| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) % m
        };
        let mut fired = 0;
        for key in 0..4000u32 {
            let at = match rnd(4) {
                0 => now + crate::time::Duration::from_micros(rnd(3_000)),
                1 => now + crate::time::Duration::from_micros(rnd(5_000_000)),
                2 => now + crate::time::Duration::from_secs(5 + rnd(60)),
                _ => Instant::from_micros(now.total_micros().saturating_sub(rnd(2_000))),
            };
            w.insert(at, key);
            plain.push((at, key));
            now += crate::time::Duration::from_micros(if rnd(50) == 0 { rnd(8_000_000) } else { 100 + rnd(6_000) });
            let due_plain = plain.iter().any(|&(t, _)| t <= now);
            if w.skip_idle(now) {
                assert!(!due_plain, "skipped with a timer due at {now}");
            } else {
                w.expire(now, &mut out);
            }
            let mut want: Vec<_> = plain.iter().copied().filter(|&(t, _)| t <= now).collect();
            plain.retain(|&(t, _)| t > now);
            out.sort();
            want.sort();
            assert_eq!(out, want, "at {now}");
            fired += out.len();
            out.clear();
            assert_eq!(w.next_at(), plain.iter().map(|&(t, _)| t).min(), "at {now}");
            assert_eq!(w.len(), plain.len());
        }
        assert!(fired > 1000, "fired {fired}");
    }
}
