//! The receive budget: how much device receive memory TCP receive queues
//! may pin, all connections together (zero-copy receive).
//!
//! With zero-copy receive a connection keeps its in-order payload in the
//! device's frames (DPDK mbufs) until the application reads it. Each
//! connection is bounded by its receive buffer, but connections together
//! are not: enough peers whose data the application does not read pin the
//! whole RX pool, and then the device has no buffer for anything — ARP,
//! ICMP, new SYNs, the RSTs that would free the memory. The budget caps
//! what queues pin (counted by [`RxBuf::footprint`], the memory a frame
//! really holds, as the kernel counts truesize): a frame that would pass it
//! is not kept, its payload is copied (like `[zerocopy] recv=0`) and the
//! frame goes back to the device at once. Sized below the device's pool,
//! the rest of the pool is a reserve that control traffic always finds.
//!
//! Small payloads are not kept at all (the copybreak, as Linux NIC drivers
//! copy frames below `copybreak` bytes into a fresh buffer and recycle the
//! DMA buffer at once): below [`RxBudget::with_copybreak`]'s size a payload
//! costs less copied than held — a reference, a charge, a queue entry, and
//! a whole frame pinned for a few bytes.

use std::cell::Cell;
use std::rc::Rc;

use crate::phy::{RxMeta, SharedRx};

/// The account of frame memory pinned by receive queues (and by views of
/// it the application still holds), against a limit in bytes.
#[derive(Debug)]
pub struct RxBudget {
    limit: usize,
    copybreak: usize,
    pinned: Rc<Cell<usize>>,
}

impl RxBudget {
    /// A budget of `limit` bytes of frame footprint, no copybreak.
    pub fn new(limit: usize) -> Self {
        RxBudget { limit, copybreak: 0, pinned: Rc::new(Cell::new(0)) }
    }

    /// The budget with payloads shorter than `bytes` copied, not kept
    /// ([`RxIn::copybreak`]; `StackConfig::rx_copybreak`). 0 keeps every
    /// payload the budget admits.
    pub fn with_copybreak(mut self, bytes: usize) -> Self {
        self.copybreak = bytes;
        self
    }

    /// The limit, bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes of frame footprint pinned now.
    pub fn pinned(&self) -> usize {
        self.pinned.get()
    }

    /// Offers `rx` to the receive queues: the budget is checked only when a
    /// queue would keep the frame ([`RxIn::keep`]), so a frame whose payload
    /// is copied anyway (or that carries none) is not charged. Nothing is
    /// charged (nor allocated) here; the footprint came with the frame
    /// ([`RxRef::with`]'s one `meta` call). `RxIn` copies `rx`'s fields it
    /// uses rather than holding `rx` (holding it cost the receive path
    /// 0.2% more instructions in perfdrive bulk-csum).
    #[inline]
    pub fn admit<'a>(&'a self, rx: &RxRef<'_, 'a>) -> RxIn<'a> {
        RxIn {
            frame: rx.frame,
            bytes: rx.meta.bytes,
            footprint: rx.meta.footprint,
            limit: self.limit,
            copybreak: self.copybreak,
            acct: &self.pinned,
        }
    }
}

/// A frame the device handed over, with its bytes, footprint and L4
/// verdict as one [`crate::phy::RxBuf::meta`] call gave them: the receive
/// path reads them through this, not through more calls on the trait
/// object. Built only by [`RxRef::with`], so they are always the frame's own.
///
/// The meta stays where the call wrote it, in [`RxRef::with`]'s frame, and
/// `RxRef` (two pointers) points at it: its fields are read one by one,
/// never copied as a block. A copy moved them in 16-byte loads from the
/// 8-byte stores `meta` had just made, a store-forwarding failure each
/// (three per received frame when `RxRef` held the meta by value and went
/// down the receive path by value: ~6% of perfdrive rr64's time on a Zen 3
/// host).
#[derive(Clone, Copy)]
pub struct RxRef<'m, 'a> {
    frame: &'a SharedRx,
    meta: &'m RxMeta<'a>,
}

impl std::fmt::Debug for RxRef<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RxRef({} bytes)", self.meta.bytes.len())
    }
}

impl<'a> RxRef<'_, 'a> {
    /// Runs `f` with `frame`, its bytes, footprint and L4 verdict (one
    /// `meta` call), and returns what `f` returns.
    #[inline(always)]
    pub fn with<R>(frame: &'a SharedRx, f: impl FnOnce(&RxRef<'_, 'a>) -> R) -> R {
        let meta = frame.meta();
        debug_assert!(
            std::ptr::eq(meta.bytes, frame.bytes())
                && meta.footprint == frame.footprint()
                && meta.l4_verified == frame.l4_verified(),
            "RxBuf::meta must give what bytes, footprint and l4_verified give"
        );
        f(&RxRef { frame, meta: &meta })
    }

    /// The frame's bytes (`frame.bytes()` as [`RxRef::with`] read them).
    #[inline]
    pub fn bytes(&self) -> &'a [u8] {
        self.meta.bytes
    }

    /// The device vouches for the frame's L4 payload ([`RxBuf::l4_verified`]).
    #[inline]
    pub fn l4_verified(&self) -> bool {
        self.meta.l4_verified
    }
}

/// A received frame admitted by an [`RxBudget`], on its way to a receive
/// queue.
#[derive(Clone, Copy)]
pub struct RxIn<'a> {
    frame: &'a SharedRx,
    /// `frame`'s bytes ([`RxRef::bytes`]).
    bytes: &'a [u8],
    /// `frame`'s footprint, bytes ([`crate::phy::RxBuf::footprint`] as
    /// [`RxRef::with`] read it).
    footprint: usize,
    limit: usize,
    copybreak: usize,
    acct: &'a Rc<Cell<usize>>,
}

impl std::fmt::Debug for RxIn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RxIn({} bytes)", self.bytes.len())
    }
}

impl<'a> RxIn<'a> {
    /// The frame.
    pub fn frame(&self) -> &'a SharedRx {
        self.frame
    }

    /// The frame's bytes, as [`crate::phy::RxBuf::bytes`] gave them when
    /// it was admitted.
    #[inline]
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// The frame's footprint, bytes, as [`crate::phy::RxBuf::footprint`]
    /// gave it when it was admitted.
    #[inline]
    pub fn footprint(&self) -> usize {
        self.footprint
    }

    /// Payloads shorter than this many bytes are copied, not kept in the
    /// frame, by a receive queue holding no frame (a copy behind kept
    /// frames would need a buffer of its own). 0: none.
    #[inline]
    pub fn copybreak(&self) -> usize {
        self.copybreak
    }

    /// Charges the frame's footprint (bytes, as [`RxRef::with`] read it) to
    /// the budget for as long as the returned token lives, when it
    /// fits the budget now; `None` when it would pass the limit (the caller
    /// then copies what it keeps). Whoever keeps the frame keeps the token
    /// with it (a receive queue's chunk, then the application's view).
    pub fn keep(&self) -> Option<Charge> {
        let fp = self.footprint;
        let pinned = self.acct.get();
        if pinned.saturating_add(fp) > self.limit {
            return None;
        }
        self.acct.set(pinned + fp);
        Some(Charge { fp, acct: self.acct.clone() })
    }
}

/// Footprint of one kept frame charged to an [`RxBudget`]; dropping it
/// returns the charge.
#[derive(Debug)]
pub struct Charge {
    fp: usize,
    acct: Rc<Cell<usize>>,
}

impl Charge {
    /// The footprint charged, bytes.
    pub fn footprint(&self) -> usize {
        self.fp
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.acct.set(self.acct.get().saturating_sub(self.fp));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::phy::RxBuf;

    struct Frame(Vec<u8>);
    impl RxBuf for Frame {
        fn bytes(&self) -> &[u8] {
            &self.0
        }
        fn footprint(&self) -> usize {
            2048
        }
    }

    #[test]
    fn admits_up_to_the_limit_and_returns_charges_on_drop() {
        let b = RxBudget::new(3 * 2048);
        let f: SharedRx = Rc::new(Frame(vec![1; 100]));
        let kept: Vec<Charge> =
            (0..3).map(|_| RxRef::with(&f, |r| b.admit(r).keep()).expect("within budget")).collect();
        assert_eq!(b.pinned(), 3 * 2048);
        assert!(RxRef::with(&f, |r| b.admit(r).keep()).is_none(), "a fourth frame passes the budget");
        assert_eq!(b.pinned(), 3 * 2048, "a refused frame is not charged");
        drop(kept);
        assert_eq!(b.pinned(), 0);
        let a = RxRef::with(&f, |r| b.admit(r));
        assert!(a.keep().is_some(), "room again");
        assert_eq!(b.pinned(), 0, "the charge went with its token");
        assert_eq!(a.frame().bytes().as_ptr(), f.bytes().as_ptr(), "the same bytes, not a copy");
        assert_eq!(a.bytes().as_ptr(), f.bytes().as_ptr(), "the bytes it was admitted with");
        assert_eq!(b.pinned(), 0, "an admitted frame nobody keeps costs nothing");
    }
}
