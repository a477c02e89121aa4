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

use std::cell::Cell;
use std::rc::Rc;

use crate::phy::{RxBuf, SharedRx};

/// The account of frame memory pinned by receive queues (and by views of
/// it the application still holds), against a limit in bytes.
#[derive(Debug)]
pub struct RxBudget {
    limit: usize,
    pinned: Rc<Cell<usize>>,
}

impl RxBudget {
    /// A budget of `limit` bytes of frame footprint.
    pub fn new(limit: usize) -> Self {
        RxBudget { limit, pinned: Rc::new(Cell::new(0)) }
    }

    /// The limit, bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes of frame footprint pinned now.
    pub fn pinned(&self) -> usize {
        self.pinned.get()
    }

    /// Lets `rx` be kept in place when its footprint fits the budget: the
    /// returned frame carries the charge and gives it back when its last
    /// reference goes (read, compacted, connection gone). `None`: over
    /// budget, the caller copies what it keeps.
    pub fn admit(&self, rx: &SharedRx) -> Option<SharedRx> {
        let fp = rx.footprint();
        let now = self.pinned.get();
        if now.saturating_add(fp) > self.limit {
            return None;
        }
        self.pinned.set(now + fp);
        Some(Rc::new(Charged { inner: rx.clone(), fp, acct: self.pinned.clone() }))
    }
}

/// A frame admitted by an [`RxBudget`]; dropping it returns the charge.
struct Charged {
    inner: SharedRx,
    fp: usize,
    acct: Rc<Cell<usize>>,
}

impl RxBuf for Charged {
    fn bytes(&self) -> &[u8] {
        self.inner.bytes()
    }
    fn footprint(&self) -> usize {
        self.fp
    }
    fn l4_verified(&self) -> bool {
        self.inner.l4_verified()
    }
}

impl Drop for Charged {
    fn drop(&mut self) {
        self.acct.set(self.acct.get().saturating_sub(self.fp));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let kept: Vec<SharedRx> = (0..3).map(|_| b.admit(&f).expect("within budget")).collect();
        assert_eq!(b.pinned(), 3 * 2048);
        assert!(b.admit(&f).is_none(), "a fourth frame passes the budget");
        assert_eq!(kept[0].bytes(), f.bytes(), "the same bytes, not a copy");
        assert_eq!(kept[0].bytes().as_ptr(), f.bytes().as_ptr());
        drop(kept);
        assert_eq!(b.pinned(), 0);
        assert!(b.admit(&f).is_some());
        assert_eq!(b.pinned(), 0, "an admitted frame nobody keeps is returned at once");
    }
}
