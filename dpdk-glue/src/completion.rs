//! [`CompletionRing`]: bounded extbuf attachments and their completions.
//!
//! Every attachment owns one slot: an `rte_mbuf_ext_shared_info` at a stable
//! heap address plus a "released" flag. DPDK calls the slot's free callback
//! exactly once, when the last reference to the attached mbuf goes (inside
//! `tx_burst`, when a receiver frees it, or at port close, depending on the
//! PMD), possibly on another thread; the callback only stores the flag
//! (release ordering: one plain store on x86, no locked instruction). The
//! owning thread keeps its in-flight slots in attach order and
//! [`CompletionRing::drain`] takes released ones from the front.
//!
//! Why not a lock-free queue: a multi-producer queue costs two locked
//! read-modify-writes per completion (push and pop) and a full fence on
//! every empty pop, i.e. on every poll of the run loop; PMDs release TX
//! mbufs in the order they were sent (descriptor rings are FIFO), so the
//! front-of-line walk finds them at the cost of one load each. A PMD (or a
//! receiver holding mbufs) that releases out of order is still served:
//! after 64 drains in a row that found the oldest one held (8 when more than
//! half the slots are in use), `drain` sweeps every in-flight slot; an
//! attach that finds no free slot sweeps too, and keeps the tokens it freed
//! for the next drain. Each sweep that finds nothing (an in-order PMD whose
//! front waits for its next reclaim) doubles that interval, up to four
//! doublings (16×: 128 and 1,024 drains); only a sweep that finds something
//! brings it back (the front's progress does not), except that a caller
//! short of free slots ([`CompletionRing::drain_needing`]) gets the sweep at
//! the undoubled interval.

use std::any::Any;
use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::ffi::c_void;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};
use crate::extbuf::DmaRegion;
use crate::ffi;
use crate::mbuf::Mbuf;
use crate::mempool::Mempool;

/// One attachment's shared info and completion flag, at a stable heap
/// address for the PMD (the slots are one boxed slice, never moved).
struct Slot {
    shinfo: UnsafeCell<ffi::rte_mbuf_ext_shared_info>,
    /// Set by the free callback; cleared when the slot is drained.
    released: AtomicBool,
}

/// Bounded external-buffer attachments and their completions.
///
/// [`CompletionRing::attach`] (or [`CompletionRing::attach_tail`]) takes a
/// free slot, attaches an mbuf to a region slice, and records the caller's
/// token. [`CompletionRing::drain`] yields the token once the PMD released
/// that mbuf: in attach order, and any released one at the latest after
/// [`SWEEP_EVERY`] drains behind a held one ([`SWEEP_EVERY_FULL`] when more
/// than half the slots are in use), times up to 16 after sweeps that found
/// nothing ([`SWEEP_BACKOFF_MAX`]), but never more than that base interval
/// for a caller short of free slots ([`CompletionRing::drain_needing`]; see
/// the module doc).
pub struct CompletionRing {
    slots: Box<[Slot]>,
    free: Vec<u32>,
    /// In-flight slots, oldest attachment first.
    order: VecDeque<u32>,
    tokens: Vec<u64>,
    keep: Vec<Option<Rc<dyn Any>>>,
    high_water: usize,
    attached: u64,
    completed: u64,
    /// Drains in a row that completed nothing while attachments were in
    /// flight (see [`CompletionRing::drain`]).
    blocked_drains: u32,
    /// Doublings of the sweep interval: one more after each sweep that
    /// completed nothing (up to [`SWEEP_BACKOFF_MAX`]), none after one
    /// that completed something.
    sweep_backoff: u32,
    /// Sweeps made (by drains and by attaches that found no free slot).
    sweeps: u64,
    /// Tokens of slots an attach swept free, handed out by the next drain.
    swept: Vec<u64>,
}

/// Drains in a row with a blocked front after which [`CompletionRing::drain`]
/// sweeps every in-flight slot.
const SWEEP_EVERY: u32 = 64;
/// The same when more than half the slots are in use.
const SWEEP_EVERY_FULL: u32 = 8;
/// At most this many doublings of the interval while sweeps find nothing
/// (a PMD releasing in order, its front waiting for the next reclaim):
/// a sweep then comes every 128 (1,024) blocked drains instead of every 8
/// (64). A sweep walks every slot in flight; in `ci/bench-zc`'s sender,
/// with ~1,700 in flight and the front waiting for virtio's next reclaim,
/// sweeps every 8 drains that found nothing were 8% of its cycles.
const SWEEP_BACKOFF_MAX: u32 = 4;

impl std::fmt::Debug for CompletionRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompletionRing")
            .field("capacity", &self.slots.len())
            .field("in_flight", &self.order.len())
            .field("attached", &self.attached)
            .field("completed", &self.completed)
            .finish()
    }
}

extern "C" fn extbuf_freed(_addr: *mut c_void, opaque: *mut c_void) {
    // SAFETY: opaque is the &Slot we registered; slots live at a stable address
    // until the ring is dropped, which never happens while attachments are in
    // flight (Drop leaks them instead).
    let slot = unsafe { &*(opaque as *const Slot) };
    // Release: everything the PMD did with the mbuf happens-before the
    // owner's acquire load of the flag, after which it reuses the slot.
    slot.released.store(true, Ordering::Release);
}

impl CompletionRing {
    /// A ring with `capacity` attachment slots (size it from the TX descriptor
    /// count plus what the application keeps in flight).
    pub fn new(capacity: u32) -> CompletionRing {
        let slots: Box<[Slot]> = (0..capacity)
            .map(|_| Slot { shinfo: UnsafeCell::new(Default::default()), released: AtomicBool::new(false) })
            .collect();
        CompletionRing {
            slots,
            free: (0..capacity).rev().collect(),
            order: VecDeque::with_capacity(capacity as usize),
            tokens: vec![0; capacity as usize],
            keep: (0..capacity).map(|_| None).collect(),
            high_water: 0,
            attached: 0,
            completed: 0,
            blocked_drains: 0,
            sweep_backoff: 0,
            sweeps: 0,
            swept: Vec::new(),
        }
    }

    /// Checks that `region[offset .. offset+len]` can be attached, and takes
    /// a free slot for it (sweeping released ones when none is free).
    fn take_slot<R: DmaRegion>(&mut self, region: &R, offset: usize, len: u16) -> Result<(u32, u64)> {
        let l = usize::from(len);
        if !region.dma_contiguous(offset, l) || len == 0 {
            return Err(Error::BadSlice {
                offset,
                len: l,
                region_len: region.len(),
                why: if len == 0 { "empty slice" } else { "outside the region or crossing a non-contiguous page" },
            });
        }
        let iova = region.iova_at(offset).expect("checked by dma_contiguous");
        if self.free.is_empty() {
            // Released slots anywhere in the order free up; their tokens
            // wait in `swept` for the next drain (none is lost).
            let mut swept = std::mem::take(&mut self.swept);
            self.sweep(&mut |t| swept.push(t));
            self.swept = swept;
        }
        match self.free.last() {
            Some(&idx) => Ok((idx, iova)),
            None => Err(Error::CompletionSlotsExhausted(self.slots.len())),
        }
    }

    /// Records slot `idx` (already attached) as in flight with `token`.
    fn commit<R: DmaRegion>(&mut self, idx: u32, region: &Rc<R>, token: u64) {
        self.free.pop();
        self.order.push_back(idx);
        self.tokens[idx as usize] = token;
        self.keep[idx as usize] = Some(region.clone() as Rc<dyn Any>);
        self.high_water = self.high_water.max(self.order.len());
        self.attached += 1;
    }

    /// Allocates a header mbuf from `pool` (a data-room-0 pool is enough) and
    /// attaches `region[offset .. offset+len]` to it as an external buffer; the
    /// mbuf's data is exactly those `len` bytes, read by the NIC in place.
    /// `token` comes back from [`CompletionRing::drain`] once the PMD releases it.
    /// The region is kept alive until then.
    pub fn attach<R: DmaRegion>(
        &mut self,
        pool: &Mempool,
        region: &Rc<R>,
        offset: usize,
        len: u16,
        token: u64,
    ) -> Result<Mbuf> {
        let (idx, iova) = self.take_slot(&**region, offset, len)?;
        let mut m = pool.alloc()?;
        let slot = &self.slots[idx as usize];
        // SAFETY: the slot is free (not referenced by any mbuf), so we may
        // (re)initialise its shinfo; refcnt 1 = this one attachment.
        unsafe {
            ffi::zc_rte_ext_shinfo_init(slot.shinfo.get(), Some(extbuf_freed), slot as *const Slot as *mut c_void)
        };
        slot.released.store(false, Ordering::Relaxed);
        // SAFETY: m is a fresh, unshared mbuf; the slice is inside the region
        // (checked) and stays alive via `keep` until the callback has fired and
        // been drained; shinfo is the slot's, initialised above.
        unsafe {
            ffi::zc_rte_pktmbuf_attach_extbuf(
                m.as_ptr(),
                region.base().add(offset) as *mut c_void,
                iova,
                len,
                slot.shinfo.get(),
            )
        };
        m.append(len).expect("an attached extbuf has exactly len bytes of tailroom");
        self.commit(idx, region, token);
        Ok(m)
    }

    /// Like [`CompletionRing::attach`] with the fresh, unchained mbuf `m`
    /// (from a data-room-0 pool; freed when this fails), and chains it after
    /// `*last`, the last segment of `head`'s chain, in one FFI call (no chain
    /// walk, the shinfo and the mbuf initialised once); `*last` then points
    /// at the new segment. On error nothing was taken or chained.
    ///
    /// # Safety
    /// `*last` must be the last segment of the chain `head` owns, and
    /// `head` must have fewer than `u16::MAX` segments.
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn attach_tail<R: DmaRegion>(
        &mut self,
        head: &mut Mbuf,
        last: &mut *mut ffi::rte_mbuf,
        m: Mbuf,
        region: &Rc<R>,
        offset: usize,
        len: u16,
        token: u64,
    ) -> Result<()> {
        let (idx, iova) = self.take_slot(&**region, offset, len)?;
        let m = m.into_raw();
        let slot = &self.slots[idx as usize];
        slot.released.store(false, Ordering::Relaxed);
        // SAFETY: m is a fresh, unchained mbuf now owned by head's chain; the
        // slot is free, so its shinfo may be (re)initialised; the slice is
        // inside the region (checked) and stays alive via `keep` until the
        // callback fired and was drained; `*last` is head's last segment
        // (the caller's contract).
        unsafe {
            ffi::zc_attach_ext_tail(
                head.as_ptr(),
                *last,
                m.as_ptr(),
                region.base().add(offset) as *mut c_void,
                iova,
                len,
                slot.shinfo.get(),
                Some(extbuf_freed),
                slot as *const Slot as *mut c_void,
            )
        };
        *last = m.as_ptr();
        self.commit(idx, region, token);
        Ok(())
    }

    /// Calls `f(token)` for attachments the PMD has released since the last
    /// drain (see the type's doc for which), and frees their slots. Returns
    /// how many completed.
    pub fn drain(&mut self, f: impl FnMut(u64)) -> usize {
        self.drain_needing(0, f)
    }

    /// [`CompletionRing::drain`] for a caller that needs `need` free slots
    /// (an attach refused for want of them): while fewer are free the sweep
    /// comes at the undoubled interval, so released slots behind a held one
    /// are not kept from it by the back-off of sweeps that found nothing.
    pub fn drain_needing(&mut self, need: usize, mut f: impl FnMut(u64)) -> usize {
        let mut n = 0;
        // Completions an attach swept to free a slot come first.
        for t in self.swept.drain(..) {
            f(t);
            n += 1;
        }
        let mut walked = 0;
        while let Some(&idx) = self.order.front() {
            if !self.slots[idx as usize].released.load(Ordering::Acquire) {
                break;
            }
            self.order.pop_front();
            self.release(idx, &mut f);
            walked += 1;
        }
        n += walked;
        if self.order.is_empty() || walked > 0 {
            self.blocked_drains = 0;
            return n;
        }
        self.blocked_drains += 1;
        // The oldest attachment is held while later ones may not be (a
        // receiver keeping an mbuf, an impaired path holding a frame): after
        // SWEEP_EVERY drains in a row that completed nothing, or
        // SWEEP_EVERY_FULL when more than half the slots are in use (each
        // doubled once per fruitless sweep before, up to 16×, unless the
        // caller is short of `need` free slots), sweep every in-flight slot,
        // so a completion behind a held one waits a bounded number of polls
        // and a sweep (a load per slot in flight) is paid at most once per
        // that many drains, never while the front makes progress.
        let base = if self.free.len() < self.slots.len() / 2 { SWEEP_EVERY_FULL } else { SWEEP_EVERY };
        let backoff = if self.free.len() < need { 0 } else { self.sweep_backoff };
        if self.blocked_drains >= base << backoff {
            self.blocked_drains = 0;
            n += self.sweep(&mut f);
        }
        n
    }

    /// Completes every released slot wherever it is in the attach order.
    fn sweep(&mut self, f: &mut dyn FnMut(u64)) -> usize {
        let mut order = std::mem::take(&mut self.order);
        let before = order.len();
        order.retain(|&idx| {
            let done = self.slots[idx as usize].released.load(Ordering::Acquire);
            if done {
                self.release(idx, f);
            }
            !done
        });
        self.order = order;
        let done = before - self.order.len();
        self.sweeps += 1;
        self.sweep_backoff = if done == 0 { (self.sweep_backoff + 1).min(SWEEP_BACKOFF_MAX) } else { 0 };
        done
    }

    /// Sweeps of every in-flight slot made so far (see the module doc).
    pub fn sweeps(&self) -> u64 {
        self.sweeps
    }

    fn release<F: FnMut(u64) + ?Sized>(&mut self, idx: u32, f: &mut F) {
        let i = idx as usize;
        self.keep[i] = None;
        self.free.push(idx);
        self.completed += 1;
        f(self.tokens[i]);
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
    /// Attachments whose completion has not been drained yet.
    pub fn in_flight(&self) -> usize {
        self.order.len()
    }
    /// Most attachments ever in flight at once.
    pub fn high_water(&self) -> usize {
        self.high_water
    }
    /// Attachments made.
    pub fn attached(&self) -> u64 {
        self.attached
    }
    /// Completions taken off the ring (drained, or swept by an attach and
    /// handed out by the next drain).
    pub fn completed(&self) -> u64 {
        self.completed
    }
}

impl Drop for CompletionRing {
    fn drop(&mut self) {
        // Completions may have fired without being drained: count them.
        self.sweep(&mut |_| {});
        if !self.order.is_empty() {
            tracing::warn!(
                in_flight = self.order.len(),
                "CompletionRing dropped while a PMD still holds attached mbufs; leaking its slots and regions \
                 so the free callbacks stay safe (close the port and drain first)"
            );
            std::mem::forget(std::mem::take(&mut self.slots));
            std::mem::forget(std::mem::take(&mut self.keep));
        }
    }
}
