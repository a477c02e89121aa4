//! Packet-mbuf pools.

use std::ffi::CString;
use std::ptr::NonNull;

use crate::eal::Eal;
use crate::error::{Error, Result, RteErrno};
use crate::ffi;
use crate::mbuf::Mbuf;

/// Longest pool name DPDK accepts (RTE_MEMPOOL_NAMESIZE - 1 minus the "MP_" prefix).
const MAX_POOL_NAME: usize = 26;

/// A pool of packet mbufs (`rte_pktmbuf_pool_create`).
///
/// Dropping the pool frees it only when every mbuf has come back; a pool with
/// mbufs still out (in a port's ring, or held by the application) is left
/// allocated and a warning is logged, so no live mbuf ever points into freed
/// memory. Drop ports before pools.
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<ffi::rte_mempool>,
    name: String,
    size: u32,
    /// Created here (freed on drop) rather than looked up from the primary.
    owned: bool,
}

// SAFETY: DPDK mempools use a multi-producer/multi-consumer ring by default, so
// getting and putting mbufs from any thread is safe; the handle itself is only
// a pointer to the shared pool.
unsafe impl Send for Mempool {}
// SAFETY: as above: every operation on &Mempool is thread-safe in DPDK.
unsafe impl Sync for Mempool {}

/// How to build a pktmbuf pool.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// Number of mbufs (DPDK recommends 2^k - 1).
    pub count: u32,
    /// Per-lcore cache size (0 disables; at most 512 and count / 1.5; 250 like testpmd).
    pub cache: u32,
    /// Data room per mbuf including headroom; 0 makes a pool of bare mbufs
    /// used as packet headers for external buffers.
    pub data_room: u16,
    /// NUMA socket, or `None` for any.
    pub socket: Option<i32>,
}

impl PoolConfig {
    /// `count` mbufs of DPDK's default 2 KiB + headroom, cache 256.
    pub fn packets(count: u32) -> Self {
        PoolConfig { count, cache: 250.min(count / 2), data_room: ffi::RTE_MBUF_DEFAULT_BUF_SIZE as u16, socket: None }
    }

    /// `count` mbufs whose data room holds a whole frame of `mtu` bytes
    /// (plus Ethernet header and headroom), at least DPDK's default size.
    pub fn frames(count: u32, mtu: usize) -> Self {
        // Frame, VLAN tags, CRC and a virtio-net header fit with room to spare.
        let need = (mtu + 128 + ffi::RTE_PKTMBUF_HEADROOM as usize).min(usize::from(u16::MAX));
        let room = (ffi::RTE_MBUF_DEFAULT_BUF_SIZE as usize).max(need) as u16;
        PoolConfig { data_room: room, ..PoolConfig::packets(count) }
    }

    /// The same pool on NUMA socket `socket` (`None`: any socket).
    pub fn on_socket(self, socket: Option<i32>) -> Self {
        PoolConfig { socket, ..self }
    }

    /// `count` mbufs with no data room: headers to attach external buffers to.
    pub fn extbuf_headers(count: u32) -> Self {
        PoolConfig { count, cache: 256.min(count / 2), data_room: 0, socket: None }
    }
}

impl Mempool {
    /// Creates a pktmbuf pool named `name` (process-wide, unique). Taking the
    /// [`Eal`] proves DPDK is initialised.
    pub fn new(_eal: &Eal, name: &str, cfg: &PoolConfig) -> Result<Mempool> {
        if name.len() > MAX_POOL_NAME {
            return Err(Error::TooLong { what: "mempool name", value: name.to_owned(), max: MAX_POOL_NAME });
        }
        let cname = CString::new(name).map_err(|_| Error::NulInArgument(name.to_owned()))?;
        let socket = cfg.socket.unwrap_or(ffi::SOCKET_ID_ANY);
        // SAFETY: cname is a valid C string for the call; DPDK copies it.
        let raw =
            unsafe { ffi::rte_pktmbuf_pool_create(cname.as_ptr(), cfg.count, cfg.cache, 0, cfg.data_room, socket) };
        let raw = NonNull::new(raw).ok_or_else(|| Error::MempoolCreate {
            name: name.to_owned(),
            count: cfg.count,
            data_room: cfg.data_room,
            errno: RteErrno::last(),
        })?;
        Ok(Mempool { raw, name: name.to_owned(), size: cfg.count, owned: true })
    }

    /// Finds the pool `name` a primary process created (`rte_mempool_lookup`),
    /// for a secondary process (its mbufs live in shared hugepage memory and
    /// are valid in every process of the group). Dropping the handle leaves
    /// the pool to its creator.
    ///
    /// Errors: [`Error::MempoolMissing`] naming the pool.
    pub fn lookup(_eal: &Eal, name: &str) -> Result<Mempool> {
        let cname = CString::new(name).map_err(|_| Error::NulInArgument(name.to_owned()))?;
        // SAFETY: cname is a valid C string; lookup only reads the shared pool list.
        let raw = unsafe { ffi::rte_mempool_lookup(cname.as_ptr()) };
        let raw = NonNull::new(raw).ok_or_else(|| Error::MempoolMissing { name: name.to_owned() })?;
        // SAFETY: raw is a live pool (the lookup found it); `size` is a plain field.
        let size = unsafe { raw.as_ref().size };
        Ok(Mempool { raw, name: name.to_owned(), size, owned: false })
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of mbufs the pool was created with.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Mbufs currently free (including those in per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: raw is a live pool (freed only in Drop).
        unsafe { ffi::rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Mbufs currently allocated.
    pub fn in_use(&self) -> u32 {
        // SAFETY: raw is a live pool.
        unsafe { ffi::rte_mempool_in_use_count(self.raw.as_ptr()) }
    }

    /// Data room of each mbuf (headroom included).
    pub fn data_room(&self) -> u16 {
        // SAFETY: raw is a live pktmbuf pool (created by rte_pktmbuf_pool_create).
        unsafe { ffi::zc_rte_pktmbuf_data_room_size(self.raw.as_ptr()) }
    }

    /// Allocates one mbuf (reset, default headroom, empty).
    pub fn alloc(&self) -> Result<Mbuf> {
        // SAFETY: raw is a live pktmbuf pool.
        let m = unsafe { ffi::zc_rte_pktmbuf_alloc(self.raw.as_ptr()) };
        match NonNull::new(m) {
            // SAFETY: a freshly allocated mbuf is exclusively ours.
            Some(m) => Ok(unsafe { Mbuf::from_raw(m) }),
            None => Err(Error::PoolExhausted { pool: self.name.clone(), wanted: 1 }),
        }
    }

    /// Allocates `n` mbufs at once and appends them to `out`; all or nothing.
    pub fn alloc_bulk(&self, out: &mut Vec<Mbuf>, n: usize) -> Result<()> {
        self.take_bulk(out, n, ffi::zc_rte_pktmbuf_alloc_bulk)
    }

    /// Appends `n` mbufs that `take` (a bulk allocator of the shim: all or
    /// nothing, 0 on success) writes into `out`'s spare capacity.
    #[inline(always)]
    fn take_bulk(
        &self,
        out: &mut Vec<Mbuf>,
        n: usize,
        take: unsafe extern "C" fn(*mut ffi::rte_mempool, *mut *mut ffi::rte_mbuf, u32) -> i32,
    ) -> Result<()> {
        out.reserve(n);
        let count = u32::try_from(n).map_err(|_| Error::PoolExhausted { pool: self.name.clone(), wanted: n })?;
        let len = out.len();
        // SAFETY: the spare capacity holds at least n pointer-sized slots; Mbuf
        // is repr(transparent) over NonNull<rte_mbuf>, so the C side may write
        // rte_mbuf pointers there; on success all n are non-null and owned
        // (`take` is one of the shim's all-or-nothing bulk allocators).
        let ret = unsafe { take(self.raw.as_ptr(), out.as_mut_ptr().add(len) as *mut *mut ffi::rte_mbuf, count) };
        if ret != 0 {
            return Err(Error::PoolExhausted { pool: self.name.clone(), wanted: n });
        }
        // SAFETY: the n slots after len were initialised with owned mbufs.
        unsafe { out.set_len(len + n) };
        Ok(())
    }

    /// Allocates `n` mbufs, appends them to `out` and calls `init` on each
    /// right after resetting it (as [`Mempool::alloc_bulk`] would have), so
    /// each mbuf's header is written once, in the pass that fills it, instead
    /// of a reset pass over the whole burst followed by a fill pass. What
    /// `init` sees is exactly what `alloc_bulk` hands out. All or nothing: if
    /// the pool has fewer than `n` free, or `init` fails for one, `out` is left
    /// as it was (every mbuf taken goes back to the pool) and the error is
    /// returned.
    ///
    /// Why it matters: under `--no-huge` a pktmbuf pool places one mbuf per
    /// 4 KiB page (objects may not cross pages there), so every mbuf sits at
    /// the same page offset and all of a burst's headers compete for the same
    /// few L1 sets; each extra pass over a burst misses again.
    #[inline]
    pub fn alloc_bulk_with<F>(&self, out: &mut Vec<Mbuf>, n: usize, mut init: F) -> Result<()>
    where
        F: FnMut(&mut Mbuf) -> Result<()>,
    {
        let len = out.len();
        // Raw mbufs (not reset): each is reset below right before `init`. A
        // raw mbuf is a valid mbuf to free (refcnt 1, one segment), so an
        // early truncate returns unreset ones correctly too.
        self.take_bulk(out, n, ffi::zc_rte_mbuf_raw_alloc_bulk)?;
        let mut failed = None;
        for m in &mut out[len..] {
            m.reset();
            if let Err(e) = init(m) {
                failed = Some(e);
                break;
            }
        }
        match failed {
            None => Ok(()),
            Some(e) => {
                out.truncate(len);
                Err(e)
            }
        }
    }

    pub(crate) fn as_ptr(&self) -> *mut ffi::rte_mempool {
        self.raw.as_ptr()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        let in_use = self.in_use();
        if in_use != 0 {
            tracing::warn!(pool = %self.name, in_use, "mempool dropped with mbufs outstanding; leaving it allocated");
            return;
        }
        // SAFETY: no mbuf of this pool is outstanding, and raw is freed once.
        unsafe { ffi::rte_mempool_free(self.raw.as_ptr()) };
    }
}

/// A pool with a few mbufs taken in bulk and handed out one at a time, so
/// the per-packet path pays one `rte_pktmbuf_alloc_bulk` call per `batch`
/// mbufs instead of one allocation call each. The spare mbufs are reset
/// (as from `rte_pktmbuf_alloc`) and stay unused until handed out.
#[derive(Debug)]
pub(crate) struct Stash {
    // Declared before `pool`: the spares go back before the pool is dropped.
    spare: Vec<Mbuf>,
    pool: Mempool,
    batch: usize,
}

impl Stash {
    /// A stash over `pool`, refilled `batch` mbufs at a time.
    pub(crate) fn new(pool: Mempool, batch: usize) -> Stash {
        Stash { spare: Vec::with_capacity(batch.max(1)), pool, batch: batch.max(1) }
    }

    /// One fresh mbuf: a spare, or a refill (one mbuf when the pool has
    /// fewer than a batch left).
    #[inline]
    pub(crate) fn get(&mut self) -> Result<Mbuf> {
        if let Some(m) = self.spare.pop() {
            return Ok(m);
        }
        if self.pool.alloc_bulk(&mut self.spare, self.batch).is_ok() {
            if let Some(m) = self.spare.pop() {
                return Ok(m);
            }
        }
        self.pool.alloc()
    }

    /// Mbufs of the pool in use outside the stash.
    pub(crate) fn in_use(&self) -> u32 {
        self.pool.in_use().saturating_sub(self.spare.len() as u32)
    }

    /// Gives the spare mbufs back to the pool.
    pub(crate) fn clear(&mut self) {
        self.spare.clear();
    }
}
