//! A port shared by several lcores: each lcore bursts on its own queue pair
//! through a [`QueueHandle`]; the port is stopped and closed only when the
//! last handle is given back, so no lcore ever bursts on a stopped port.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::mbuf::Mbuf;
use crate::port::{Port, Queues};

/// The port and how many queue handles are still out.
#[derive(Debug)]
struct State {
    port: Option<Port>,
    live: usize,
    /// How closing went, once it has happened.
    closed: Option<std::result::Result<(), String>>,
}

/// A started port whose queue pairs are handed to lcores.
#[derive(Debug)]
pub(crate) struct SharedPort {
    id: u16,
    name: String,
    state: Mutex<State>,
    cv: Condvar,
    /// The multi-process group around the port, if any.
    group: Option<Arc<super::layout::Group>>,
}

/// How long a primary waits for the secondaries to give their queues back
/// before it stops the port anyway (a killed secondary never does).
const SECONDARY_GRACE: Duration = Duration::from_secs(10);

impl SharedPort {
    /// Wraps a configured, started port.
    pub(crate) fn new(port: Port) -> Arc<SharedPort> {
        SharedPort::in_group(port, None)
    }

    /// As [`SharedPort::new`], for one process of a multi-process group: a
    /// secondary's handles are counted in the shared layout, and the
    /// primary's last handle waits (bounded) for them before the port stops.
    pub(crate) fn in_group(port: Port, group: Option<Arc<super::layout::Group>>) -> Arc<SharedPort> {
        Arc::new(SharedPort {
            id: port.id(),
            name: port.name().to_owned(),
            state: Mutex::new(State { port: Some(port), live: 0, closed: None }),
            cv: Condvar::new(),
            group,
        })
    }

    fn secondary_group(&self) -> Option<&super::layout::Group> {
        self.group.as_deref().filter(|g| !g.is_primary())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands out queue pair `q` (RX and TX queue `q`). Every handle must be
    /// given back (closed or dropped) before the port closes.
    pub(crate) fn handle(self: &Arc<SharedPort>, q: u16) -> Result<QueueHandle> {
        let mut st = self.lock();
        let Some(port) = st.port.as_ref() else {
            return Err(Error::PortNotStarted {
                port: self.id,
                name: self.name.clone(),
                op: "queue handle after close",
            });
        };
        if let Some(g) = self.secondary_group() {
            let pid = std::process::id();
            match g.claim(q, pid) {
                Ok(None) => {}
                Ok(Some(dead)) => {
                    tracing::warn!(queue = q, dead, "taking over the queue of a secondary that died");
                    super::layout::free_stale_zone(&super::layout::secondary_pages_name(self.id, usize::from(q), dead));
                }
                Err(live) => {
                    return Err(Error::Layout {
                        name: super::layout::layout_name(self.id),
                        why: format!(
                            "queue {q} of port {} is already served by process {live} (another --proc-type=secondary \
                             with the same --proc-id)",
                            self.id
                        ),
                    })
                }
            }
        }
        // SAFETY: the port stays started until every handle is released
        // (release() below stops it only when `live` drops to 0), and each
        // queue is handed to exactly one lcore by the deployment (and to
        // one process of a group: `claim` above).
        let queues = match unsafe { port.queues_detached(q, q) } {
            Ok(queues) => queues,
            Err(e) => {
                if let Some(g) = self.secondary_group() {
                    g.unclaim(q, std::process::id());
                }
                return Err(e);
            }
        };
        st.live += 1;
        if let Some(g) = self.secondary_group() {
            g.hold();
        }
        Ok(QueueHandle { shared: self.clone(), queues: Some(queues), q })
    }

    /// One handle is back; the last one stops and closes the port.
    fn release(&self, q: u16) {
        let mut st = self.lock();
        st.live = st.live.saturating_sub(1);
        if let Some(g) = self.secondary_group() {
            g.unclaim(q, std::process::id());
            g.release();
        }
        if st.live == 0 && st.closed.is_none() {
            if let Some(g) = self.group.as_deref().filter(|g| g.is_primary()) {
                g.wait_secondaries(SECONDARY_GRACE);
            }
            if let Some(port) = st.port.take() {
                let r = port.close().map_err(|e| e.to_string());
                if let Err(e) = &r {
                    tracing::warn!(port = self.id, %e, "closing the shared port failed");
                }
                st.closed = Some(r);
            }
            self.cv.notify_all();
        }
    }

    /// Waits until the port is closed (every other lcore gave its handle
    /// back), logging every 5 s while it waits.
    fn wait_closed(&self) -> std::result::Result<(), String> {
        let mut st = self.lock();
        loop {
            if let Some(r) = &st.closed {
                return r.clone();
            }
            let (g, t) = self.cv.wait_timeout(st, Duration::from_secs(5)).unwrap_or_else(|p| p.into_inner());
            st = g;
            if t.timed_out() && st.closed.is_none() {
                tracing::info!(port = self.id, live = st.live, "waiting for the other lcores to leave the port");
            }
        }
    }

    /// Closes the port now if no handle is out (Deployment drop).
    pub(crate) fn close_if_unused(&self) {
        let mut st = self.lock();
        if st.live == 0 && st.closed.is_none() {
            if let Some(g) = self.group.as_deref().filter(|g| g.is_primary()) {
                g.wait_secondaries(SECONDARY_GRACE);
            }
            if let Some(port) = st.port.take() {
                st.closed = Some(port.close().map_err(|e| e.to_string()));
            }
        }
    }
}

/// One lcore's queue pair of a [`SharedPort`].
pub struct QueueHandle {
    shared: Arc<SharedPort>,
    queues: Option<Queues<'static>>,
    /// The queue pair's index.
    q: u16,
}

// SAFETY: a queue pair of a started port may be used from any thread, one
// thread at a time; the handle is moved to its lcore and used only there.
unsafe impl Send for QueueHandle {}

impl std::fmt::Debug for QueueHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueHandle").field("port", &self.shared.id).field("queues", &self.queues).finish()
    }
}

impl QueueHandle {
    /// The port id.
    pub fn port_id(&self) -> u16 {
        self.shared.id
    }

    /// The port's device name.
    pub fn port_name(&self) -> &str {
        &self.shared.name
    }

    /// The port's driver name (`rte_eth_dev_info.driver_name`) and vdev
    /// arguments, each when known (the port open, a vdev).
    pub fn driver(&self) -> (Option<String>, Option<String>) {
        let g = self.shared.lock();
        let p = g.port.as_ref();
        (p.and_then(|p| p.info().ok()).map(|i| i.driver), p.and_then(|p| p.vdev_args()).map(str::to_owned))
    }

    /// The whole port's counters (every queue), while it is open.
    pub fn port_stats(&self) -> Option<crate::port::PortStats> {
        self.shared.lock().port.as_ref().and_then(|p| p.stats().ok())
    }

    /// Receives up to `max` frames into `out`; 0 once closed.
    #[inline]
    pub fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: u16) -> usize {
        self.queues.as_mut().map_or(0, |q| q.rx_burst(out, max))
    }

    /// Transmits from the front of `pkts`; 0 once closed.
    #[inline]
    pub fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>) -> usize {
        self.queues.as_mut().map_or(0, |q| q.tx_burst(pkts))
    }

    /// Gives the queue pair back and waits until the port is closed (by
    /// whichever lcore gives the last one back), so completions the PMD
    /// held until close have fired when this returns.
    pub fn close(mut self) -> Result<()> {
        if self.queues.take().is_some() {
            self.shared.release(self.q);
        }
        self.shared.wait_closed().map_err(|what| Error::PortLimit {
            port: self.shared.id,
            name: self.shared.name.clone(),
            what,
        })
    }
}

impl Drop for QueueHandle {
    fn drop(&mut self) {
        if self.queues.take().is_some() {
            self.shared.release(self.q);
        }
    }
}
