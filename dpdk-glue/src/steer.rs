//! Software steering: on a port whose RX distribution zcstack cannot
//! predict (net_tap with several queues, where the kernel's tun driver picks
//! the queue; virtio-user; af_xdp), a frame that reaches an lcore which does
//! not own its flow is handed to the owner's stack over a per-pair ring
//! (issue 12, item 3).
//!
//! Each ordered lcore pair (`from`, `to`) of a port has one single-producer
//! single-consumer `rte_ring` named `zc_steer_p{port}_{from}_{to}` (so a
//! secondary process can look it up). In its RX burst an lcore classifies
//! every received frame ([`Dest`], from `zcstack::rss::steer_frame`):
//! another queue's frame goes to that queue's ring, an ARP frame is kept and
//! a copy goes to every other lcore (each stack keeps its own ARP cache),
//! everything else stays. Frames drained from its incoming rings go ahead
//! of its own frames in the burst (they are the older ones of their flow). A full ring does not drop: the frame waits in a per-destination
//! backlog, in order, and is retried on the next burst (counted). Only an
//! owner that has stopped draining (a dead or stopped lcore, such as a
//! killed secondary process) bounds that: past [`BACKLOG_MAX`] frames for
//! one owner the oldest are freed and counted (`dropped_owner_stalled`), so
//! the live lcores keep their RX pool instead of going deaf.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::eal::Eal;
use crate::error::{Error, Result, RteErrno};
use crate::ffi;
use crate::mbuf::Mbuf;
use crate::mempool::Mempool;

/// Frames one lcore keeps waiting for one owner whose ring is full before
/// it frees the oldest (`SteerStats::dropped_owner_stalled`): one ring
/// more at the deployment's ring size (2,048), so a stalled owner pins at most
/// two rings of the sender's RX pool (8,191 mbufs), and a live owner,
/// which drains up to a burst per pass, never gets that far behind.
pub const BACKLOG_MAX: usize = 2048;

/// Where a received frame belongs (what `zcstack::rss::steer_frame` says).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    /// The stack of this queue of the port.
    Queue(u16),
    /// Every stack on the port (ARP).
    All,
    /// The stack that received it (malformed, non-IPv4: it counts the drop).
    Here,
}

/// Classifies a received Ethernet frame; must never panic.
pub type Classify = Arc<dyn Fn(&[u8]) -> Dest + Send + Sync>;

/// `rings[from][to]` of one port: the ring from queue `from` to queue `to`
/// (`None` on the diagonal).
pub type RingMatrix = Vec<Vec<Option<Arc<SteerRing>>>>;

/// The rings of a port with `n` queues, `rings[from][to]` from `ring(from,
/// to)` (`None` on the diagonal); empty for one queue, which steers nothing.
pub fn ring_matrix(n: u16, mut ring: impl FnMut(u16, u16) -> Result<SteerRing>) -> Result<RingMatrix> {
    if n < 2 {
        return Ok(Vec::new());
    }
    (0..n)
        .map(|from| {
            (0..n).map(|to| if from == to { Ok(None) } else { ring(from, to).map(|r| Some(Arc::new(r))) }).collect()
        })
        .collect()
}

/// The name of the ring carrying frames of `port` from queue `from` to queue `to`.
pub fn ring_name(port: u16, from: u16, to: u16) -> String {
    format!("zc_steer_p{port}_{from}_{to}")
}

/// One single-producer single-consumer ring of mbufs.
#[derive(Debug)]
pub struct SteerRing {
    raw: NonNull<ffi::rte_ring>,
    name: String,
    /// Created here (freed on drop) rather than looked up from the primary.
    owned: bool,
}

// SAFETY: an rte_ring is shared memory made for crossing lcores; the SP/SC
// contract (one enqueuing lcore, one dequeuing lcore) is kept by Steering:
// only the `from` lcore's Steering enqueues, only the `to` lcore's dequeues.
unsafe impl Send for SteerRing {}
// SAFETY: as above.
unsafe impl Sync for SteerRing {}

impl SteerRing {
    /// Creates the ring `name` with room for `size - 1` frames (`size` a
    /// power of two).
    pub fn create(_eal: &Eal, name: &str, size: u32, socket: i32) -> Result<SteerRing> {
        let c = CString::new(name).map_err(|_| Error::NulInArgument(name.to_owned()))?;
        // SAFETY: c is a valid C string; flags ask for SP/SC, as used.
        let r = unsafe { ffi::rte_ring_create(c.as_ptr(), size, socket, ffi::RING_F_SP_ENQ | ffi::RING_F_SC_DEQ) };
        let raw = NonNull::new(r).ok_or_else(|| Error::Vdev { devargs: name.to_owned(), errno: RteErrno::last() })?;
        Ok(SteerRing { raw, name: name.to_owned(), owned: true })
    }

    /// Finds the ring `name` a primary process created (`rte_ring_lookup`),
    /// for a secondary process: mbufs in it come from the primary's shared
    /// pools, valid in every process. Dropping the handle leaves the ring
    /// (and what is in it) to its creator.
    ///
    /// Errors: [`Error::SteerRingMissing`] naming the ring when the primary
    /// has none of that name.
    pub fn lookup(_eal: &Eal, name: &str) -> Result<SteerRing> {
        let c = CString::new(name).map_err(|_| Error::NulInArgument(name.to_owned()))?;
        // SAFETY: c is a valid C string; lookup only reads the shared ring list.
        let r = unsafe { ffi::rte_ring_lookup(c.as_ptr()) };
        let raw = NonNull::new(r).ok_or_else(|| Error::SteerRingMissing { name: name.to_owned() })?;
        Ok(SteerRing { raw, name: name.to_owned(), owned: false })
    }

    /// The ring's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Moves frames from the front of `frames` into the ring, as many as fit,
    /// keeping the rest in order. Returns how many moved.
    pub fn enqueue(&self, frames: &mut Vec<Mbuf>) -> usize {
        if frames.is_empty() {
            return 0;
        }
        let n = u32::try_from(frames.len()).unwrap_or(u32::MAX);
        // SAFETY: frames holds n owned mbufs laid out as pointers (Mbuf is
        // repr(transparent)); the ring takes ownership of the first `k`.
        let k = unsafe {
            ffi::zc_rte_ring_enqueue_burst(self.raw.as_ptr(), frames.as_ptr() as *const *mut std::ffi::c_void, n)
        } as usize;
        // The first k now belong to the ring: forget them, keep the rest.
        for m in frames.drain(..k) {
            let _ = m.into_raw();
        }
        k
    }

    /// Appends up to `max` frames from the ring to `out`; returns how many.
    pub fn dequeue(&self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        let mut ptrs: [*mut std::ffi::c_void; 64] = [std::ptr::null_mut(); 64];
        let mut total = 0;
        while total < max {
            let want = (max - total).min(ptrs.len()) as u32;
            // SAFETY: ptrs has room for `want` pointers; the ring gives up
            // ownership of the `k` mbufs it returns.
            let k = unsafe { ffi::zc_rte_ring_dequeue_burst(self.raw.as_ptr(), ptrs.as_mut_ptr(), want) } as usize;
            for p in &ptrs[..k] {
                if let Some(nn) = NonNull::new(*p as *mut ffi::rte_mbuf) {
                    // SAFETY: every object in the ring is an owned mbuf put
                    // there by `enqueue`; dequeuing transfers it to us.
                    out.push(unsafe { Mbuf::from_raw(nn) });
                }
            }
            total += k;
            if k < want as usize {
                break;
            }
        }
        total
    }

    /// Frames waiting in the ring.
    pub fn count(&self) -> u32 {
        // SAFETY: pure read of the ring's indices.
        unsafe { ffi::zc_rte_ring_count(self.raw.as_ptr()) }
    }
}

impl Drop for SteerRing {
    fn drop(&mut self) {
        if !self.owned {
            // The primary's ring: it drains and frees it when it leaves.
            return;
        }
        // Frames nobody dequeued go back to their pools before the ring goes.
        let mut left = Vec::new();
        while self.dequeue(&mut left, 64) > 0 {
            Mbuf::free_bulk(&mut left);
        }
        // SAFETY: the ring was created by `create` and is freed once; its
        // users (Steering values) hold an Arc, so this runs after the last.
        unsafe { ffi::rte_ring_free(self.raw.as_ptr()) };
    }
}

/// Per-lcore steering counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SteerStats {
    /// Frames handed to another lcore's ring.
    pub steered_out: u64,
    /// Frames taken from other lcores' rings.
    pub steered_in: u64,
    /// Copies of ARP frames made for the other lcores.
    pub copied: u64,
    /// Frames that found their ring full and waited in the backlog.
    pub backlogged: u64,
    /// Frames in the backlog now.
    pub backlog_now: u64,
    /// ARP copies not made because the copy pool was empty (the original
    /// is still processed here; the other lcores learn the address from
    /// their own ARP exchange).
    pub copy_failed: u64,
    /// Backlogged frames freed at shutdown because the owner's ring stayed
    /// full after its lcore had left.
    pub dropped_at_close: u64,
    /// Backlogged frames freed, oldest first, because their owner had
    /// [`BACKLOG_MAX`] frames waiting and was not draining its ring.
    pub dropped_owner_stalled: u64,
    /// Frames other lcores steered here that were still in the rings when
    /// this lcore's stack had stopped (freed once every lcore of the port
    /// has left it, so the count is exact: steered out by the others =
    /// steered in + this).
    pub unread_at_close: u64,
}

/// One lcore's side of the steering of one port.
pub struct Steering {
    me: u16,
    /// `out[q]`: ring to queue `q` (`None` for `me`).
    out: Vec<Option<Arc<SteerRing>>>,
    /// Rings from every other queue to `me`.
    inc: Vec<Arc<SteerRing>>,
    /// `pending[q]`: frames for queue `q` waiting for room in its ring.
    pending: Vec<Vec<Mbuf>>,
    classify: Classify,
    copy_pool: Arc<Mempool>,
    keep: Vec<Mbuf>,
    /// `added[q]`: frames for queue `q` new in this burst (reused, so a
    /// burst allocates nothing).
    added: Vec<usize>,
    stats: SteerStats,
}

impl std::fmt::Debug for Steering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Steering").field("me", &self.me).field("stats", &self.stats).finish()
    }
}

impl Steering {
    /// Steering for queue `me` of a port with `rings[from][to]` (`None` on
    /// the diagonal); ARP copies come from `copy_pool`.
    pub fn new(
        me: u16,
        rings: &[Vec<Option<Arc<SteerRing>>>],
        classify: Classify,
        copy_pool: Arc<Mempool>,
    ) -> Steering {
        let n = rings.len();
        let out = (0..n).map(|to| rings[usize::from(me)][to].clone()).collect();
        let inc = (0..n).filter_map(|from| rings[from][usize::from(me)].clone()).collect();
        Steering {
            me,
            out,
            inc,
            pending: (0..n).map(|_| Vec::new()).collect(),
            classify,
            copy_pool,
            keep: Vec::new(),
            added: vec![0; n],
            stats: SteerStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> SteerStats {
        SteerStats { backlog_now: self.pending.iter().map(|p| p.len() as u64).sum(), ..self.stats }
    }

    /// Sorts a received burst in place: up to `max` frames from each
    /// incoming ring come first, then this lcore's own frames of the burst
    /// (frames another lcore owns leave for its ring or the backlog, ARP
    /// frames stay and are copied to the others).
    ///
    /// Order promise: within one flow, a frame steered in is older than any
    /// frame of that flow this lcore received directly (the device moves a
    /// flow to a queue, as the tun driver moves it to the queue its owner
    /// transmits on, never back while the owner keeps it), so it is handed
    /// to the stack before them; processing it after them would make TCP
    /// see reordering (PAWS drops, RFC 7323 5.3, and duplicate ACKs that
    /// trigger fast retransmits). Frames of one ring keep their ring order,
    /// and own frames their queue order.
    pub fn sort(&mut self, rx: &mut Vec<Mbuf>, max: usize) {
        let n = self.out.len();
        let mut added = std::mem::take(&mut self.added);
        added.clear();
        added.resize(n, 0);
        let mut keep = std::mem::take(&mut self.keep);
        for r in &self.inc {
            let k = r.dequeue(&mut keep, max);
            self.stats.steered_in += k as u64;
        }
        for m in rx.drain(..) {
            match (self.classify)(m.data()) {
                Dest::Queue(q) if q != self.me && usize::from(q) < n => {
                    self.pending[usize::from(q)].push(m);
                    added[usize::from(q)] += 1;
                }
                Dest::All => {
                    for q in (0..n).filter(|&q| q != usize::from(self.me)) {
                        match self.copy_of(&m) {
                            Some(c) => {
                                self.stats.copied += 1;
                                self.pending[q].push(c);
                                added[q] += 1;
                            }
                            None => self.stats.copy_failed += 1,
                        }
                    }
                    keep.push(m);
                }
                _ => keep.push(m),
            }
        }
        self.push_pending(&added);
        self.added = added;
        std::mem::swap(rx, &mut keep);
        self.keep = keep;
    }

    /// Hands the backlog to the rings as far as they have room; `added[q]`
    /// frames at the end of `pending[q]` are new in this burst.
    fn push_pending(&mut self, added: &[usize]) {
        for (q, p) in self.pending.iter_mut().enumerate() {
            if p.is_empty() {
                continue;
            }
            let Some(r) = self.out[q].as_ref() else { continue };
            let k = r.enqueue(p);
            self.stats.steered_out += k as u64;
            self.stats.backlogged += added.get(q).copied().unwrap_or(0).min(p.len()) as u64;
            if p.len() > BACKLOG_MAX {
                let over = p.len() - BACKLOG_MAX;
                self.stats.dropped_owner_stalled += over as u64;
                let mut old: Vec<Mbuf> = p.drain(..over).collect();
                tracing::warn!(queue = q, dropped = over, "steering: owner not draining its ring; oldest frames freed");
                Mbuf::free_bulk(&mut old);
            }
        }
    }

    /// Before the port closes: hands the backlog over where there is room
    /// (bounded: 100 tries, 1 ms apart, for the owner to make room) and
    /// frees what is left (counted).
    pub fn flush_backlog(&mut self) {
        let none = vec![0; self.out.len()];
        for _ in 0..100 {
            self.push_pending(&none);
            if self.pending.iter().all(Vec::is_empty) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        for p in &mut self.pending {
            self.stats.dropped_at_close += p.len() as u64;
            Mbuf::free_bulk(p);
        }
    }

    /// After the port closed (every lcore has left it, so nothing more is
    /// steered here): frees what is left in the incoming rings, counted.
    pub fn drain_unread(&mut self) {
        let mut left = Vec::new();
        for r in &self.inc {
            while r.dequeue(&mut left, 64) > 0 {
                self.stats.unread_at_close += left.len() as u64;
                Mbuf::free_bulk(&mut left);
            }
        }
    }

    fn copy_of(&self, m: &Mbuf) -> Option<Mbuf> {
        let mut c = self.copy_pool.alloc().ok()?;
        let bytes = m.to_vec();
        c.extend_from_slice(&bytes).ok()?;
        Some(c)
    }
}
