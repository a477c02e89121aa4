//! Send-queue pressure on the page array: the fair-share rule that keeps
//! slow readers from starving everyone else's sends.
//!
//! Each connection's send queue is capped by its send buffer, but the
//! connections together are not: enough peers that never ACK keep their
//! queues full, and once connections × send buffer passes the page array
//! every other connection's write fails. Like the kernel's `tcp_mem`
//! pressure mode, made fair: when the free share of the page array falls
//! below a low-water mark, a connection may hold at most a fair share of
//! the pages (the larger of a floor and the free-plus-held pages divided
//! among the connections holding pages); connections below their share
//! still get pages. A reserve of pages is left to connections whose send
//! queue is (almost) empty, so a new or idle connection can always send its
//! first response. Pages are counted as the page references send queues
//! hold ([`crate::tcp::send_queue::SendQueue::pages_held`]).

use crate::mem::PageMemory;

/// Bytes a connection with an (almost) empty send queue may take from the
/// reserve: room for a first response.
const RESERVE_ENTRY_BYTES: usize = 16 * 1024;

/// The page array seen by the send queues, and the rule applied to it.
#[derive(Debug, Default)]
pub(crate) struct SendPressure {
    /// Pressure starts below this percentage of the page array free (0: off).
    low_water_pct: usize,
    /// Share every connection may hold whatever the pressure, bytes.
    floor_bytes: usize,
    /// Percentage of the page array only (almost) empty queues may take.
    reserve_pct: usize,
    capacity: usize,
    free: usize,
    buf_size: usize,
    /// Pages held by all send queues (the sum of `per_slot`).
    held: usize,
    /// Connections whose send queue holds at least one page.
    holders: usize,
    /// Pages held by each slot's send queue, as last accounted.
    per_slot: Vec<u32>,
    /// Slots refused room by the rule, to notify when room returns.
    limited: Vec<u32>,
    /// `(free, held)` when the limited slots were last checked.
    last_check: (usize, usize),
    /// [`Self::reserve`] and the reserve entry, pages, for the current
    /// capacity and page size (recomputed only when those change).
    reserve_pages: usize,
    entry_pages: usize,
    /// Pressure holds while `free` is below this many pages:
    /// `ceil(capacity * low_water_pct / 100)` (0 when off).
    pressure_below: usize,
}

impl SendPressure {
    /// The rule with pressure below `low_water_pct` % free (0 disables it),
    /// a floor share of `floor_bytes` and a reserve of `reserve_pct` % of the
    /// page array.
    pub(crate) fn new(low_water_pct: usize, floor_bytes: usize, reserve_pct: usize) -> Self {
        SendPressure {
            low_water_pct: low_water_pct.min(100),
            floor_bytes,
            reserve_pct: reserve_pct.min(100),
            ..Default::default()
        }
    }

    /// Takes the page array's free count, and its size and page size the
    /// first time (a [`PageMemory`] region never changes either: "Number of
    /// buffers in the region", fixed at creation). One call to `mem` per
    /// observation after the first.
    #[inline]
    pub(crate) fn observe<M: PageMemory + ?Sized>(&mut self, mem: &M) {
        self.free = mem.free_count();
        if self.buf_size == 0 {
            self.size_from(mem);
        }
    }

    #[cold]
    fn size_from<M: PageMemory + ?Sized>(&mut self, mem: &M) {
        self.capacity = mem.capacity();
        self.buf_size = mem.buf_size().max(1);
        self.reserve_pages = self.capacity * self.reserve_pct / 100;
        self.entry_pages = self.pages(RESERVE_ENTRY_BYTES.min(self.floor_bytes.max(1)));
        self.pressure_below = (self.capacity * self.low_water_pct).div_ceil(100);
    }

    /// Bytes a copy into any connection's send queue may take without the
    /// rule limiting it, as of the last observation: the free pages above
    /// the reserve while there is no pressure ([`Self::room`] with `alloc`
    /// is never less), 0 under pressure (the caller then asks
    /// [`Self::room`]). The write path's check when nothing is scarce.
    #[inline(always)]
    pub(crate) fn unlimited_bytes(&self) -> usize {
        if self.low_water_pct == 0 {
            return usize::MAX;
        }
        if self.free < self.pressure_below {
            return 0;
        }
        self.free.saturating_sub(self.reserve_pages).saturating_mul(self.buf_size)
    }

    /// Whether a slot waits for room (was refused by the rule and not yet
    /// notified): only then does a poll need to observe the page array.
    #[inline]
    pub(crate) fn has_waiters(&self) -> bool {
        !self.limited.is_empty()
    }

    /// Makes room for slot `idx` in the per-slot table (called when the
    /// slot is created, so accounting never grows the table: O(1)).
    pub(crate) fn track_slot(&mut self, idx: u32) {
        let i = idx as usize;
        if i >= self.per_slot.len() {
            self.per_slot.resize(i + 1, 0);
        }
    }

    /// Records that slot `idx`'s send queue now holds `pages` pages. O(1);
    /// nothing to do when the count did not change (a compare on the hot
    /// path of every segment, inlined).
    #[inline(always)]
    pub(crate) fn account(&mut self, idx: u32, pages: usize) {
        let pages = pages.min(u32::MAX as usize) as u32;
        match self.per_slot.get_mut(idx as usize) {
            Some(was) if *was == pages => {}
            Some(was) => {
                let was = std::mem::replace(was, pages) as usize;
                let p = pages as usize;
                self.held = self.held - was + p;
                self.holders = self.holders + usize::from(p > 0) - usize::from(was > 0);
            }
            None if pages == 0 => {}
            None => self.account_untracked(idx, pages),
        }
    }

    /// [`Self::account`] for a slot [`Self::track_slot`] never saw.
    #[cold]
    fn account_untracked(&mut self, idx: u32, pages: u32) {
        self.track_slot(idx);
        self.account(idx, pages as usize);
    }

    /// Pages held by slot `idx`'s send queue.
    #[inline]
    pub(crate) fn held_by(&self, idx: u32) -> usize {
        self.per_slot.get(idx as usize).map_or(0, |&p| p as usize)
    }

    /// Whether the free share of the page array is below the low-water mark.
    #[inline]
    pub(crate) fn pressured(&self) -> bool {
        self.low_water_pct > 0 && self.free * 100 < self.capacity * self.low_water_pct
    }

    fn reserve(&self) -> usize {
        self.reserve_pages
    }

    fn pages(&self, bytes: usize) -> usize {
        bytes.div_ceil(self.buf_size).max(1)
    }

    /// The fair share, pages, of a connection holding `held`: the floor, or
    /// the pages free (above the reserve) plus those all queues hold,
    /// divided among the connections holding pages (it included).
    pub(crate) fn share(&self, held: usize) -> usize {
        let n = (self.holders + usize::from(held == 0)).max(1);
        self.pages(self.floor_bytes).max((self.free.saturating_sub(self.reserve()) + self.held) / n)
    }

    /// Pages a connection whose queue holds `held` pages may add. `alloc`:
    /// they come from the free list (a copy into the queue); otherwise the
    /// application already holds them (zero-copy) and only the share counts.
    #[inline]
    pub(crate) fn grant(&self, held: usize, alloc: bool) -> usize {
        if self.low_water_pct == 0 {
            return usize::MAX;
        }
        let mut g = if alloc { self.free.saturating_sub(self.reserve()) } else { usize::MAX };
        if self.pressured() {
            g = g.min(self.share(held).saturating_sub(held));
        }
        let entry = self.entry_pages;
        if held < entry {
            let r = entry - held;
            g = g.max(if alloc { r.min(self.free) } else { r });
        }
        g
    }

    /// Bytes a connection (slot `idx`) may add to its send queue under the
    /// rule: granted pages plus `tail_room` bytes left in its last page.
    #[inline]
    pub(crate) fn room(&self, idx: u32, tail_room: usize, alloc: bool) -> usize {
        self.grant(self.held_by(idx), alloc).saturating_mul(self.buf_size).saturating_add(tail_room)
    }

    /// Pages an allocation for no particular connection may take: never the
    /// reserve, and under pressure no more than one fair share at a time.
    pub(crate) fn grant_unattributed(&self) -> usize {
        if self.low_water_pct == 0 {
            return usize::MAX;
        }
        let g = self.free.saturating_sub(self.reserve());
        if self.pressured() {
            g.min(self.share(0))
        } else {
            g
        }
    }

    /// Remembers that slot `idx` was refused room, to be notified when
    /// room returns.
    pub(crate) fn note_limited(&mut self, idx: u32) {
        if !self.limited.contains(&idx) {
            self.limited.push(idx);
        }
    }

    /// When pages were freed since the last look, hands over the limited
    /// slots to recheck (the caller notifies those that have room again and
    /// gives back the rest with [`SendPressure::still_limited`]).
    pub(crate) fn take_limited(&mut self) -> Vec<u32> {
        let key = (self.free, self.held);
        if self.limited.is_empty() || key == self.last_check {
            return Vec::new();
        }
        self.last_check = key;
        std::mem::take(&mut self.limited)
    }

    /// Puts back a slot still refused room.
    pub(crate) fn still_limited(&mut self, idx: u32) {
        self.limited.push(idx);
    }

    /// Size of one page, bytes.
    pub(crate) fn buf_size(&self) -> usize {
        self.buf_size.max(1)
    }

    /// Pages held by all send queues together.
    pub(crate) fn held_total(&self) -> usize {
        self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::HeapPages;

    fn with_free(capacity: u32, free: u32) -> (SendPressure, HeapPages) {
        let mut mem = HeapPages::new(capacity, 2048);
        for _ in 0..capacity - free {
            mem.alloc().unwrap();
        }
        let mut p = SendPressure::new(25, 8 * 2048, 5);
        p.observe(&mem);
        (p, mem)
    }

    #[test]
    fn no_limit_but_the_reserve_above_low_water() {
        let (p, _m) = with_free(1000, 600);
        assert!(!p.pressured());
        assert_eq!(p.grant(300, true), 600 - 50, "everything above the reserve");
        assert_eq!(p.grant(300, false), usize::MAX);
    }

    #[test]
    fn under_pressure_a_connection_gets_its_fair_share_and_empty_ones_the_reserve() {
        let (mut p, _m) = with_free(1000, 200);
        for i in 0..10 {
            p.account(i, 80);
        }
        assert!(p.pressured());
        // (200 free - 50 reserve + 800 held) / 10 holders = 95 pages each.
        assert_eq!(p.share(80), 95);
        assert_eq!(p.grant(80, true), 15);
        p.account(3, 96);
        assert_eq!(p.grant(p.held_by(3), true), 0, "at its share");
        // A new connection: share (150 + 815) / 11 = 87, limited by free above the reserve.
        assert_eq!(p.grant(0, true), 87);
        let (mut q, _m) = with_free(1000, 40);
        q.account(0, 900);
        assert_eq!(q.grant(900, true), 0, "over its share");
        assert_eq!(q.grant(0, true), 8, "the reserve: a first response (16 KiB)");
        assert_eq!(q.grant(6, true), 2);
        assert_eq!(q.grant_unattributed(), 0, "the reserve is for connections");
        q.account(0, 0);
        assert_eq!(q.held_total(), 0);
    }

    /// The write path skips [`SendPressure::room`] when the bytes wanted fit
    /// [`SendPressure::unlimited_bytes`]: that must never exceed the room
    /// of any connection, and must be 0 exactly under pressure.
    #[test]
    fn unlimited_bytes_never_exceed_any_connections_room() {
        for free in [0, 1, 49, 50, 51, 249, 250, 251, 600, 1000] {
            let (mut p, _m) = with_free(1000, free);
            for i in 0..4 {
                p.account(i, 100 * i as usize);
            }
            let u = p.unlimited_bytes();
            assert_eq!(u == 0, p.pressured() || free <= 50, "free {free}: {u}");
            for i in 0..6 {
                assert!(p.room(i, 0, true) >= u, "free {free} slot {i}: {} < {u}", p.room(i, 0, true));
            }
        }
        let mut off = SendPressure::new(0, 0, 5);
        off.observe(&HeapPages::new(10, 2048));
        assert_eq!(off.unlimited_bytes(), usize::MAX);
    }

    #[test]
    fn off_means_no_limit() {
        let mut p = SendPressure::new(0, 0, 5);
        let mem = HeapPages::new(10, 2048);
        p.observe(&mem);
        assert_eq!(p.grant(9, true), usize::MAX);
        assert_eq!(p.grant_unattributed(), usize::MAX);
    }
}
