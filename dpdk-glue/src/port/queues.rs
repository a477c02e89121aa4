//! The burst fast path of a started port: [`Queues`], one RX and one TX
//! queue whose driver functions and queue data are resolved once, so each
//! burst is the PMD call (and its callbacks, when any are installed) with no
//! per-call checks.

use super::Port;
use crate::error::{Error, Result};
use crate::ffi;
use crate::mbuf::Mbuf;

impl Port {
    /// A fast-path handle on one RX and one TX queue of a started port. While
    /// it exists the port cannot be stopped or reconfigured (it borrows the
    /// port mutably), so its bursts need no per-call state checks: the
    /// queue's driver function and data pointers are resolved once here.
    pub fn queues(&mut self, rx: u16, tx: u16) -> Result<Queues<'_>> {
        // SAFETY: the returned handle borrows the port mutably, so the port
        // cannot be stopped, reconfigured or closed while it exists.
        unsafe { self.queues_detached(rx, tx) }
    }

    /// [`Port::queues`] without the borrow, for the per-lcore queue
    /// handles of a port shared by several lcores.
    ///
    /// # Safety
    /// The caller guarantees the port stays started (not stopped,
    /// reconfigured or closed) while the handle is used, and that each
    /// queue is used by one thread at a time.
    pub(crate) unsafe fn queues_detached(&self, rx: u16, tx: u16) -> Result<Queues<'static>> {
        self.check_burst("queues", rx, self.rx_queues, "RX")?;
        self.check_burst("queues", tx, self.tx_queues, "TX")?;
        // SAFETY: the port is started and both queues exist (checked); the
        // fp_ops entry is stable until the port is stopped, which needs
        // &mut self, held by the returned value.
        let (rx_fn, rx_qd, rx_cb, tx_fn, tx_qd, tx_cb) = unsafe {
            let p = &*std::ptr::addr_of!(ffi::rte_eth_fp_ops).cast::<ffi::rte_eth_fp_ops>().add(usize::from(self.id));
            (
                p.rx_pkt_burst,
                *p.rxq.data.add(usize::from(rx)),
                p.rxq.clbk.add(usize::from(rx)),
                p.tx_pkt_burst,
                *p.txq.data.add(usize::from(tx)),
                p.txq.clbk.add(usize::from(tx)),
            )
        };
        let (Some(rx_fn), Some(tx_fn)) = (rx_fn, tx_fn) else {
            return Err(Error::PortNotStarted { port: self.id, name: self.name.clone(), op: "queues" });
        };
        Ok(Queues {
            port: self.id,
            rxq: rx,
            txq: tx,
            rx_fn,
            rx_qd,
            rx_cb,
            tx_fn,
            tx_qd,
            tx_cb,
            _port: std::marker::PhantomData,
        })
    }
}

/// One RX and one TX queue of a started port; see [`Port::queues`].
pub struct Queues<'a> {
    port: u16,
    rxq: u16,
    txq: u16,
    rx_fn: unsafe extern "C" fn(*mut std::ffi::c_void, *mut *mut ffi::rte_mbuf, u16) -> u16,
    rx_qd: *mut std::ffi::c_void,
    rx_cb: *mut *mut std::ffi::c_void,
    tx_fn: unsafe extern "C" fn(*mut std::ffi::c_void, *mut *mut ffi::rte_mbuf, u16) -> u16,
    tx_qd: *mut std::ffi::c_void,
    tx_cb: *mut *mut std::ffi::c_void,
    _port: std::marker::PhantomData<&'a mut Port>,
}

impl std::fmt::Debug for Queues<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queues").field("port", &self.port).field("rxq", &self.rxq).field("txq", &self.txq).finish()
    }
}

impl Queues<'_> {
    /// Receives up to `max` packets, appending them to `out`; returns how many.
    #[inline(always)]
    pub fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: u16) -> usize {
        if out.capacity() - out.len() < usize::from(max) {
            out.reserve(usize::from(max));
        }
        let len = out.len();
        // SAFETY: as rte_eth_rx_burst: the queue is live (port borrowed and
        // started), the spare capacity holds `max` mbuf pointers.
        let n = unsafe {
            let pkts = out.as_mut_ptr().add(len) as *mut *mut ffi::rte_mbuf;
            let mut n = (self.rx_fn)(self.rx_qd, pkts, max);
            let cb = std::sync::atomic::AtomicPtr::from_ptr(self.rx_cb).load(std::sync::atomic::Ordering::Relaxed);
            if !cb.is_null() {
                n = ffi::rte_eth_call_rx_callbacks(self.port, self.rxq, pkts, n, max, cb);
            }
            out.set_len(len + usize::from(n));
            n
        };
        usize::from(n)
    }

    /// Transmits from the front of `pkts`; what the PMD did not take stays in
    /// `pkts` in order, still owned by the caller. Returns how many were taken.
    #[inline(always)]
    pub fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>) -> usize {
        let len = pkts.len();
        let mut n = 0;
        while n < len {
            let want = (len - n).min(usize::from(u16::MAX)) as u16;
            // SAFETY: as rte_eth_tx_burst: the queue is live; pkts[n..n+want]
            // are owned mbufs; the PMD takes ownership of the first `sent`.
            let sent = unsafe {
                let p = pkts.as_mut_ptr().add(n) as *mut *mut ffi::rte_mbuf;
                let mut nb = want;
                let cb = std::sync::atomic::AtomicPtr::from_ptr(self.tx_cb).load(std::sync::atomic::Ordering::Relaxed);
                if !cb.is_null() {
                    nb = ffi::rte_eth_call_tx_callbacks(self.port, self.txq, p, nb, cb);
                }
                (self.tx_fn)(self.tx_qd, p, nb)
            };
            n += usize::from(sent);
            if sent < want {
                break;
            }
        }
        if n == len {
            // SAFETY: every entry now belongs to the PMD.
            unsafe { pkts.set_len(0) };
        } else if n > 0 {
            // SAFETY: move the unsent tail to the front, forget the sent head.
            unsafe {
                let p = pkts.as_mut_ptr();
                std::ptr::copy(p.add(n), p, len - n);
                pkts.set_len(len - n);
            }
        }
        n
    }
}
