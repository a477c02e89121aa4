//! [`EthDevice`]: zcstack's [`Device`] over any ethdev port.
//!
//! RX: bursts of mbufs handed to the engine as byte slices and freed in bulk.
//!
//! TX, chosen at runtime ([`TxMode`]):
//! - **zero copy**: the engine's header bytes go into a small header mbuf;
//!   every run of payload slices (ranges of [`PageArray`] buffers) lying end
//!   to end in DMA-contiguous memory, up to [`MAX_ATTACHMENT`] bytes,
//!   becomes an extbuf mbuf whose `buf_addr`/`buf_iova` point at the pages,
//!   chained behind it. No payload byte is copied. Each attachment holds one
//!   completion slot; the PMD's free callback pushes the slot into the
//!   [`CompletionRing`] and the frame goes back to the engine (which drops its
//!   page references) only when **every** attachment of it has completed.
//!   Frames whose payload is below [`EthDeviceConfig::zc_min_payload`], and
//!   frames whose payload the stack copied in anyway ([`TxFrame::copied`]:
//!   small or copy-mode writes), are copied instead: one mbuf costs less
//!   than a header + extbuf chain and no application copy is saved.
//! - **copy**: header and payload are copied into one mbuf, and the frame
//!   completes at once.
//!
//! Zero copy needs multi-segment TX; a port without
//! `RTE_ETH_TX_OFFLOAD_MULTI_SEGS` falls back to copy mode with the reason
//! logged and kept in [`EthDevice::fallback_reason`]. TCP checksums are
//! offloaded when the port granted `TX_TCP_CKSUM` (the engine then leaves the
//! pseudo-header sum in the header and never reads the payload); otherwise
//! the engine computes them in software over the page slices.
//!
//! Nothing is lost under pressure: when completion slots, header mbufs or
//! the TX queue run out, `transmit` hands the frame back and the engine
//! retries on its next poll; partial `tx_burst`s keep the unsent mbufs queued.

use std::collections::VecDeque;
use std::rc::Rc;

use zcstack::mem::PageMemory;
use zcstack::phy::{Device, DeviceCaps, RxBuf, RxFrame, RxMeta, SharedRx, TxFrame};
use zcstack::stages::StageCount;
use zcstack::Instant;

use crate::eal::{rdtsc, Eal};
use crate::error::Result;
use crate::extbuf::{CompletionRing, DmaRegion, MemRegion};
use crate::ffi;
use crate::impair::{Impair, ImpairConfig, ImpairStats};
use crate::mbuf::Mbuf;
use crate::mempool::{Mempool, PoolConfig, Stash};
use crate::pages::PageArray;
use crate::port::{GrantedOffloads, Offloads, Port};

mod prefetch;
mod rx_cap;
mod tx_build;

pub use prefetch::{TxPrefetch, PREFETCH_MAX_PAYLOAD};
use rx_cap::rx_short_burst_ends_poll_max;
pub use tx_build::MAX_ATTACHMENT;

/// How payload reaches the NIC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxMode {
    /// Header and payload copied into one mbuf per frame.
    Copy,
    /// Payload attached in place as external buffers.
    ZeroCopy,
}

/// Tunables of an [`EthDevice`].
#[derive(Clone, Debug)]
pub struct EthDeviceConfig {
    /// TX mode wanted (zero copy falls back to copy on ports without multi-segment TX).
    pub tx_mode: TxMode,
    /// In zero-copy mode, frames with less payload than this are copied.
    pub zc_min_payload: usize,
    /// Frames per RX and TX burst.
    pub burst: usize,
    /// Extbuf attachments in flight at most (completion slots). Size it from
    /// the TX ring plus what a deferred-completion PMD keeps: virtio-user
    /// holds up to a ring's worth until close.
    pub completion_slots: u32,
    /// Mbufs in the copy-mode TX pool and in the header pool.
    pub tx_mbufs: u32,
    /// Frames queued for `tx_burst` at most before `transmit` pushes back.
    pub tx_queue_limit: usize,
    /// Hold a partial TX burst back at most this long, in µs, hoping to fill
    /// it (F-Stack's `pkt_tx_delay`; 0 sends at the end of every poll).
    pub tx_delay_us: u64,
    /// Hand received mbufs to the engine, which keeps TCP payload in them
    /// until the application reads it (zero-copy receive).
    pub rx_zero_copy: bool,
    /// Fault injection on both directions (off by default; for tests).
    pub impair: ImpairConfig,
    /// NUMA socket of the device's TX pools (`None`: any; `numa_on` passes
    /// the port's socket).
    pub socket: Option<i32>,
    /// Count cycles of the RX/TX bursts and the completion drain, and let
    /// the run loop count its stages and the engine's (`[dpdk]
    /// stage_cycles`; off by default).
    pub stage_cycles: bool,
    /// Warm zero-copy payload for a software backend ([`TxPrefetch`]).
    pub tx_prefetch: TxPrefetch,
}

impl Default for EthDeviceConfig {
    fn default() -> Self {
        EthDeviceConfig {
            tx_mode: TxMode::ZeroCopy,
            zc_min_payload: 0,
            burst: 32,
            completion_slots: 8192,
            tx_mbufs: 8191,
            tx_queue_limit: 512,
            tx_delay_us: 0,
            rx_zero_copy: false,
            impair: ImpairConfig::default(),
            socket: None,
            stage_cycles: false,
            tx_prefetch: TxPrefetch::Auto,
        }
    }
}

/// Counters that show where payload bytes went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EthDeviceStats {
    /// Frames received.
    pub rx_frames: u64,
    /// Received frames that arrived as multi-segment chains (copied to be contiguous).
    pub rx_chains_copied: u64,
    /// Received mbufs handed to the engine to keep (zero-copy receive).
    pub rx_mbufs_handed_over: u64,
    /// Of those, mbufs the engine or application still holds.
    pub rx_mbufs_held: u64,
    /// Frames sent with their payload attached in place.
    pub tx_frames_zero_copy: u64,
    /// Frames sent by copying.
    pub tx_frames_copied: u64,
    /// Payload bytes sent without a copy.
    pub tx_payload_zero_copy: u64,
    /// Payload bytes copied into mbufs.
    pub tx_payload_copied: u64,
    /// Extbuf attachments made.
    pub extbuf_attachments: u64,
    /// Attachments completed (PMD released them).
    pub extbuf_completions: u64,
    /// Frames with attachments still held by the PMD.
    pub frames_in_flight: u64,
    /// Most attachments in flight at once (completion-ring high-water mark).
    pub completion_high_water: u64,
    /// Prefetch instructions issued for zero-copy payload, one per cache
    /// line of each sent frame's attached payload ([`TxPrefetch`]; a
    /// retransmitted frame counts again; 0 when off).
    pub tx_lines_prefetched: u64,
    /// Times `transmit` pushed back (slots, mbufs or TX queue exhausted).
    pub tx_backpressure: u64,
    /// TX bursts the PMD took only part of (or none of): its ring was full
    /// or its peer could not take the frames (a vhost port whose guest has
    /// not attached yet refuses every burst: the count then grows once per
    /// loop pass); the rest wait in the device for the next burst.
    pub tx_burst_short: u64,
    /// Received frames whose TCP/UDP checksum the port verified (or that
    /// carry a partial checksum from a peer in the same memory), so the
    /// engine skips its own check.
    pub rx_l4_verified: u64,
    /// Received frames the port found with a bad TCP/UDP checksum (dropped).
    pub rx_l4_bad: u64,
    /// Fault injection on received frames.
    pub rx_impaired: ImpairStats,
    /// Fault injection on transmitted frames.
    pub tx_impaired: ImpairStats,
}

/// A received mbuf the engine keeps (zero-copy receive). The wrapper is
/// recycled, so handing a frame over allocates nothing: the device keeps a
/// clone of every wrapper it lent and, once the engine and application
/// have dropped theirs (strong count back to 1), frees the mbuf to its pool
/// and reuses the wrapper ([`EthDevice::reclaim_rx`]).
struct RxMbuf {
    /// `None` only while the wrapper waits for reuse (never seen by the engine).
    m: Option<Mbuf>,
    l4_verified: bool,
}

impl RxBuf for RxMbuf {
    fn bytes(&self) -> &[u8] {
        self.m.as_ref().map_or(&[][..], Mbuf::data)
    }
    fn footprint(&self) -> usize {
        self.m.as_ref().map_or(0, |m| usize::from(m.buf_len()))
    }
    fn l4_verified(&self) -> bool {
        self.l4_verified
    }
    fn meta(&self) -> RxMeta<'_> {
        match &self.m {
            Some(m) => RxMeta { bytes: m.data(), footprint: usize::from(m.buf_len()), l4_verified: self.l4_verified },
            None => RxMeta { bytes: &[], footprint: 0, l4_verified: self.l4_verified },
        }
    }
}

/// What the port says about a received frame's TCP/UDP checksum.
#[derive(Clone, Copy, PartialEq, Eq)]
enum L4Check {
    /// Verified, or partial in a frame that never left memory (virtio).
    Ok,
    /// Wrong: dropped and counted.
    Bad,
    /// Not checked: the engine verifies.
    Unknown,
}

struct InFlight {
    frame: TxFrame,
    pending: u32,
}

/// The port an [`EthDevice`] bursts on: its own, or one queue pair of a
/// port shared with other lcores.
enum PortLink {
    Owned(Port),
    Shared(crate::deploy::QueueHandle),
}

impl PortLink {
    fn name(&self) -> &str {
        match self {
            PortLink::Owned(p) => p.name(),
            PortLink::Shared(h) => h.port_name(),
        }
    }

    /// The port's driver name and vdev arguments (each when known).
    fn driver(&self) -> (Option<String>, Option<String>) {
        match self {
            PortLink::Owned(p) => (p.info().ok().map(|i| i.driver), p.vdev_args().map(str::to_owned)),
            PortLink::Shared(h) => h.driver(),
        }
    }

    #[inline]
    fn rx_burst(&mut self, queue: u16, out: &mut Vec<Mbuf>, max: u16) -> usize {
        match self {
            PortLink::Owned(p) => p.rx_burst(queue, out, max).unwrap_or(0),
            PortLink::Shared(h) => h.rx_burst(out, max),
        }
    }

    /// Transmits from the front of `pkts`; returns how many the PMD took
    /// (the rest stay in `pkts`). A stopped port refuses the burst: 0.
    #[inline]
    fn tx_burst(&mut self, queue: u16, pkts: &mut Vec<Mbuf>) -> usize {
        match self {
            PortLink::Owned(p) => p.tx_burst(queue, pkts).unwrap_or(0),
            PortLink::Shared(h) => h.tx_burst(pkts),
        }
    }

    fn close(self) -> Result<()> {
        match self {
            PortLink::Owned(mut p) => {
                p.stop()?;
                p.close()
            }
            PortLink::Shared(h) => h.close(),
        }
    }
}

/// A zcstack [`Device`] on one queue pair of an ethdev port.
pub struct EthDevice {
    port: Option<PortLink>,
    /// Software steering of received frames between the lcores sharing
    /// the port (multi-queue ports only).
    steer: Option<crate::steer::Steering>,
    queue: u16,
    caps: DeviceCaps,
    cfg: EthDeviceConfig,
    mode: TxMode,
    fallback: Option<String>,
    tx_ol_flags: u64,
    region: Rc<MemRegion>,
    buf_size: usize,
    /// Zero-copy payload is prefetched as frames are built ([`TxPrefetch`]).
    prefetch: bool,
    /// Header mbufs and extbuf mbufs of zero-copy frames, taken in bulk.
    hdr_pool: Stash,
    ext_pool: Stash,
    copy_pool: Mempool,
    /// Copy mode with TSO: mbufs holding a whole TSO frame, so one is
    /// allocated and filled per frame (falls back to chaining copy mbufs).
    tso_pool: Option<Mempool>,
    /// The port fills IPv4 header checksums (used for TSO frames).
    tx_ip_csum: bool,
    ring: CompletionRing,
    rx: Vec<Mbuf>,
    tx: Vec<Mbuf>,
    frames: Vec<Option<InFlight>>,
    free_frames: Vec<u32>,
    done: Vec<TxFrame>,
    /// When the oldest frame now queued for `tx_burst` was queued.
    tx_since: Option<Instant>,
    /// Wrappers of received mbufs lent to the engine (zero-copy receive),
    /// oldest first; each is reclaimed once only this clone is left.
    rx_lent: VecDeque<Rc<RxMbuf>>,
    /// Reclaimed wrappers (unshared, empty), reused before allocating.
    rx_free: Vec<Rc<RxMbuf>>,
    /// Chained frames are copied here to be contiguous (reused).
    rx_scratch: Vec<u8>,
    /// Cycles of `rte_eth_rx_burst`, `rte_eth_tx_burst` and the completion
    /// drain, when `cfg.stage_cycles`.
    stage_rx_burst: StageCount,
    stage_tx_burst: StageCount,
    stage_drain: StageCount,
    /// TSC at the end of the first RX burst that brought frames since the
    /// last TX burst that sent some (`stage_cycles` only).
    rx_mark: Option<u64>,
    stage_turnaround: StageCount,
    stats: EthDeviceStats,
    impair_rx: Option<Impair>,
    impair_tx: Option<Impair>,
    /// The port verifies TCP/UDP checksums on receive (RX offload granted).
    rx_l4_offload: bool,
}

impl std::fmt::Debug for EthDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EthDevice")
            .field("port", &self.port.as_ref().map(PortLink::name))
            .field("mode", &self.mode)
            .field("stats", &self.stats)
            .finish()
    }
}

/// Payload bytes per TSO frame: 32 KiB keeps a frame's chain (one header
/// mbuf + an extbuf per run of adjacent page-array buffers, one per buffer
/// at worst) within what virtio's indirect descriptors and the completion
/// ring take comfortably, and is still 22 segments per frame at MTU 1500.
const TSO_MAX: usize = 32 * 1024;
/// Header and extbuf mbufs taken from their pools per bulk allocation.
const STASH_BATCH: usize = 32;

impl EthDevice {
    /// Wraps a configured, started `port` (queue 0 for RX and TX). `granted`
    /// is what [`Port::configure`] returned; payload comes from `pages`.
    pub fn new(
        eal: &Eal,
        port: Port,
        granted: GrantedOffloads,
        pages: &PageArray,
        mtu: usize,
        cfg: EthDeviceConfig,
    ) -> Result<EthDevice> {
        let id = port.id();
        EthDevice::on_link(eal, id, PortLink::Owned(port), 0, granted, pages, mtu, cfg)
    }

    /// Like [`EthDevice::new`], on one queue pair of a port shared with
    /// other lcores ([`crate::deploy::Deployment`]); `steer` sorts received
    /// frames between those lcores when the port has several queues.
    pub fn on_queue(
        eal: &Eal,
        handle: crate::deploy::QueueHandle,
        granted: GrantedOffloads,
        pages: &PageArray,
        mtu: usize,
        cfg: EthDeviceConfig,
        steer: Option<crate::steer::Steering>,
    ) -> Result<EthDevice> {
        let id = handle.port_id();
        let mut d = EthDevice::on_link(eal, id, PortLink::Shared(handle), 0, granted, pages, mtu, cfg)?;
        // Steering takes frames out of a burst (those other lcores own):
        // a short count no longer says the queue was empty.
        if steer.is_some() {
            d.caps.rx_short_burst_ends_poll_max = rx_short_burst_ends_poll_max(None, false, true);
        }
        d.steer = steer;
        Ok(d)
    }

    /// Software steering counters, when the device steers.
    pub fn steer_stats(&self) -> Option<crate::steer::SteerStats> {
        self.steer.as_ref().map(|s| s.stats())
    }

    #[allow(clippy::too_many_arguments)]
    fn on_link(
        eal: &Eal,
        id: u16,
        port: PortLink,
        queue: u16,
        granted: GrantedOffloads,
        pages: &PageArray,
        mtu: usize,
        cfg: EthDeviceConfig,
    ) -> Result<EthDevice> {
        let mut mode = cfg.tx_mode;
        let mut fallback = None;
        if mode == TxMode::ZeroCopy && !granted.tx.contains(Offloads::TX_MULTI_SEGS) {
            let why = format!(
                "port {} ({}) lacks RTE_ETH_TX_OFFLOAD_MULTI_SEGS: zero-copy TX needs header + extbuf chains; \
                 using copy mode",
                id,
                port.name()
            );
            tracing::warn!("{why}");
            fallback = Some(why);
            mode = TxMode::Copy;
        }
        let tcp_csum = granted.tx.contains(Offloads::TX_TCP_CKSUM);
        let (driver, devargs) = port.driver();
        if driver.is_none() && cfg.tx_prefetch == TxPrefetch::Auto && mode == TxMode::ZeroCopy && tcp_csum {
            tracing::warn!(
                port = id,
                "driver name unknown (rte_eth_dev_info_get failed): payload_prefetch=auto stays off"
            );
        }
        let prefetch = mode == TxMode::ZeroCopy
            && tcp_csum
            && cfg.tx_prefetch.resolve(driver.as_deref().unwrap_or(""), devargs.as_deref());
        if prefetch {
            tracing::info!(port = id, driver = driver.as_deref().unwrap_or(""), setting = ?cfg.tx_prefetch,
                "zero-copy TX prefetches frames' payload (payload_prefetch)");
        }
        let tx_ol_flags = if tcp_csum { ffi::RTE_MBUF_F_TX_IPV4 | ffi::RTE_MBUF_F_TX_TCP_CKSUM } else { 0 };
        // TSO frames are chains (header + extbufs, or copy mbufs in copy
        // mode): the port must take multi-segment mbufs as well.
        let tso = granted.tx.contains(Offloads::TX_TCP_TSO) && tcp_csum && granted.tx.contains(Offloads::TX_MULTI_SEGS);
        let tso_max = if tso { TSO_MAX } else { 0 };
        // Pool names are process-global in DPDK: number every device.
        static DEVICES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = DEVICES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // A secondary process shares the primary's pool names: tag its own.
        let tag = if eal.is_secondary() { format!("s{}_", std::process::id()) } else { String::new() };
        let pool = |what: &str, c: &PoolConfig| {
            Mempool::new(eal, &format!("zc{what}{id}_{tag}{n}"), &c.clone().on_socket(cfg.socket))
        };
        let hdr_pool = pool(
            "h",
            &PoolConfig { data_room: 256 + ffi::RTE_PKTMBUF_HEADROOM as u16, ..PoolConfig::packets(cfg.tx_mbufs) },
        )?;
        let ext_pool = pool("x", &PoolConfig::extbuf_headers(cfg.completion_slots.max(64)))?;
        let copy_pool = pool("c", &PoolConfig::frames(cfg.tx_mbufs, mtu))?;
        let tso_pool = if tso_max > 0 && mode == TxMode::Copy {
            Some(pool("t", &PoolConfig::frames((cfg.tx_mbufs / 16).max(255), tso_max + 256))?)
        } else {
            None
        };
        Ok(EthDevice {
            port: Some(port),
            steer: None,
            queue,
            caps: DeviceCaps {
                mtu,
                rx_checksum_verified: false,
                tx_checksum_offload: tcp_csum,
                max_burst: cfg.burst,
                tso_max,
                // Steering, set later, is taken out in `on_queue`.
                rx_short_burst_ends_poll_max: rx_short_burst_ends_poll_max(
                    driver.as_deref(),
                    cfg.impair.is_on(),
                    false,
                ),
            },
            ring: CompletionRing::new(cfg.completion_slots),
            rx: Vec::with_capacity(cfg.burst),
            tx: Vec::with_capacity(cfg.tx_queue_limit),
            frames: Vec::new(),
            free_frames: Vec::new(),
            done: Vec::new(),
            tx_since: None,
            rx_lent: VecDeque::new(),
            // Wrappers for a few bursts up front: the pool reaches its
            // steady size during warm-up, not on the first busy pass.
            rx_free: if cfg.rx_zero_copy {
                (0..4 * cfg.burst.max(1)).map(|_| Rc::new(RxMbuf { m: None, l4_verified: false })).collect()
            } else {
                Vec::new()
            },
            rx_scratch: Vec::new(),
            stage_rx_burst: StageCount::default(),
            stage_tx_burst: StageCount::default(),
            stage_drain: StageCount::default(),
            rx_mark: None,
            stage_turnaround: StageCount::default(),
            stats: EthDeviceStats::default(),
            rx_l4_offload: granted.rx.contains(Offloads::RX_TCP_CKSUM),
            impair_rx: cfg.impair.is_on().then(|| Impair::new(cfg.impair, 1)),
            impair_tx: cfg.impair.is_on().then(|| Impair::new(cfg.impair, 2)),
            region: pages.region().clone(),
            buf_size: pages.buf_size(),
            prefetch,
            hdr_pool: Stash::new(hdr_pool, STASH_BATCH),
            ext_pool: Stash::new(ext_pool, STASH_BATCH),
            copy_pool,
            tso_pool,
            tx_ip_csum: granted.tx.contains(Offloads::TX_IPV4_CKSUM),
            tx_ol_flags,
            mode,
            fallback,
            cfg,
        })
    }

    /// The TX mode in effect.
    pub fn tx_mode(&self) -> TxMode {
        self.mode
    }

    /// Whether zero-copy payload is prefetched as frames are built
    /// ([`TxPrefetch`], resolved for this port's driver).
    pub fn tx_prefetch(&self) -> bool {
        self.prefetch
    }

    /// Why zero copy was not used, if it was asked for and refused.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// Counters.
    pub fn stats(&self) -> EthDeviceStats {
        EthDeviceStats {
            extbuf_attachments: self.ring.attached(),
            extbuf_completions: self.ring.completed(),
            completion_high_water: self.ring.high_water() as u64,
            frames_in_flight: (self.frames.len() - self.free_frames.len()) as u64,
            rx_mbufs_held: self.rx_mbufs_held(),
            rx_impaired: self.impair_rx.as_ref().map(|i| i.stats).unwrap_or_default(),
            tx_impaired: self.impair_tx.as_ref().map(|i| i.stats).unwrap_or_default(),
            ..self.stats
        }
    }

    /// The port (while open).
    pub fn port(&self) -> Option<&Port> {
        match self.port.as_ref() {
            Some(PortLink::Owned(p)) => Some(p),
            _ => None,
        }
    }

    /// The port's id, name and counters (whole port, all queues), while open.
    pub fn port_stats(&self) -> Option<(u16, String, Option<crate::port::PortStats>)> {
        match self.port.as_ref()? {
            PortLink::Owned(p) => Some((p.id(), p.name().to_owned(), p.stats().ok())),
            PortLink::Shared(h) => Some((h.port_id(), h.port_name().to_owned(), h.port_stats())),
        }
    }

    /// Whether received mbufs are handed to the engine (zero-copy receive).
    pub fn rx_zero_copy(&self) -> bool {
        self.cfg.rx_zero_copy
    }

    /// Received mbufs the engine or application still holds (zero-copy
    /// receive). Walks the lent wrappers: for reports and shutdown, not
    /// for every pass.
    pub fn rx_mbufs_held(&self) -> u64 {
        self.rx_lent.iter().filter(|w| Rc::strong_count(w) > 1).count() as u64
    }

    /// Cycles of the device's own stages so far (all zero unless
    /// `stage_cycles` is on): RX burst, TX burst, completion drain.
    pub fn stage_counts(&self) -> [StageCount; 4] {
        [self.stage_rx_burst, self.stage_tx_burst, self.stage_drain, self.stage_turnaround]
    }

    /// Zeroes the device's stage counts.
    pub fn reset_stage_counts(&mut self) {
        self.stage_rx_burst = StageCount::default();
        self.stage_tx_burst = StageCount::default();
        self.stage_drain = StageCount::default();
        self.stage_turnaround = StageCount::default();
        self.rx_mark = None;
    }

    /// Wrappers of received mbufs reclaimed per receive call at most
    /// (twice a burst: faster than a burst can lend them).
    fn reclaim_slice(&self) -> usize {
        2 * self.cfg.burst.max(1)
    }

    /// Looks at up to `max` lent wrappers, oldest first: one the engine
    /// and application let go of has its mbuf freed and goes back to the
    /// free list; one still held moves to the back. Bounded work per call
    /// (never a walk of everything held); a released mbuf is found within
    /// `held / max + 1` calls.
    fn reclaim_rx(&mut self, max: usize) {
        for _ in 0..max.min(self.rx_lent.len()) {
            let Some(mut w) = self.rx_lent.pop_front() else { break };
            match Rc::get_mut(&mut w) {
                Some(slot) => {
                    slot.m = None;
                    self.rx_free.push(w);
                }
                None => self.rx_lent.push_back(w),
            }
        }
    }

    /// A wrapper holding `m` for the engine, recycled when one is free
    /// (allocates only while the pool of wrappers grows to its steady size).
    fn lend_rx(&mut self, m: Mbuf, l4_verified: bool) -> SharedRx {
        let fresh = RxMbuf { m: Some(m), l4_verified };
        let w = match self.rx_free.pop() {
            Some(mut w) => match Rc::get_mut(&mut w) {
                Some(slot) => {
                    *slot = fresh;
                    w
                }
                None => Rc::new(fresh),
            },
            None => Rc::new(fresh),
        };
        self.rx_lent.push_back(w.clone());
        w
    }

    /// Mbufs of the device's own pools not back yet (0 once everything
    /// completed; the few spares taken in bulk for zero-copy frames are not
    /// counted).
    pub fn mbufs_in_use(&self) -> u32 {
        self.hdr_pool.in_use()
            + self.ext_pool.in_use()
            + self.copy_pool.in_use()
            + self.tso_pool.as_ref().map_or(0, |p| p.in_use())
    }

    /// Stops and closes the port. PMDs that defer completions (virtio-user)
    /// release everything here, so every in-flight frame completes; the
    /// engine gets them on its next poll. Afterwards RX is empty and TX
    /// refuses frames.
    pub fn close_port(&mut self) -> Result<()> {
        let Some(port) = self.port.take() else { return Ok(()) };
        // Unsent and held mbufs are ours: free them (their attachments complete).
        self.tx.clear();
        self.hdr_pool.clear();
        self.ext_pool.clear();
        for i in [&mut self.impair_rx, &mut self.impair_tx].into_iter().flatten() {
            i.clear();
        }
        // Frames waiting to be steered to another lcore are handed over
        // (the other lcore may still be running) or freed.
        if let Some(s) = self.steer.as_mut() {
            s.flush_backlog();
        }
        port.close()?;
        // Every lcore has left the port now: what other lcores steered here
        // after this stack stopped is freed, counted.
        if let Some(s) = self.steer.as_mut() {
            s.drain_unread();
        }
        self.reap();
        Ok(())
    }

    /// Collects completed attachments; frames with none left move to `done`.
    fn reap(&mut self) {
        self.reap_needing(0);
    }

    /// [`EthDevice::reap`] for a frame that needs `need` free completion
    /// slots ([`CompletionRing::drain_needing`]).
    fn reap_needing(&mut self, need: usize) {
        let t = if self.cfg.stage_cycles { rdtsc() } else { 0 };
        let (frames, free, done) = (&mut self.frames, &mut self.free_frames, &mut self.done);
        self.ring.drain_needing(need, |token| {
            let i = token as usize;
            let Some(f) = frames.get_mut(i).and_then(Option::as_mut) else {
                debug_assert!(false, "completion for unknown frame {i}");
                return;
            };
            f.pending -= 1;
            if f.pending == 0 {
                let f = frames[i].take().expect("checked above");
                done.push(f.frame);
                free.push(i as u32);
            }
        });
        if self.cfg.stage_cycles {
            self.stage_drain.add(rdtsc().wrapping_sub(t));
        }
    }

    /// The port's verdict on `m`'s TCP/UDP checksum (counted).
    #[inline]
    fn l4_check(&mut self, m: &Mbuf) -> L4Check {
        if !self.rx_l4_offload {
            return L4Check::Unknown;
        }
        match m.ol_flags() & u64::from(ffi::RTE_MBUF_F_RX_L4_CKSUM_MASK) {
            f if f == u64::from(ffi::RTE_MBUF_F_RX_L4_CKSUM_GOOD)
                || f == u64::from(ffi::RTE_MBUF_F_RX_L4_CKSUM_NONE) =>
            {
                self.stats.rx_l4_verified += 1;
                L4Check::Ok
            }
            f if f == u64::from(ffi::RTE_MBUF_F_RX_L4_CKSUM_BAD) => {
                self.stats.rx_l4_bad += 1;
                L4Check::Bad
            }
            _ => L4Check::Unknown,
        }
    }

    /// Queues `m` for `tx_burst`, through the TX impairment when one is on.
    fn queue_tx(&mut self, now: Instant, m: Mbuf) {
        match self.impair_tx.as_mut() {
            Some(i) => i.push(now, m, &mut self.tx),
            None => self.tx.push(m),
        }
    }

    /// Passes a received burst (in `self.rx`) through the RX impairment:
    /// afterwards `self.rx` holds what is delivered now.
    #[inline]
    fn impair_received(&mut self, now: Instant) {
        if let Some(i) = self.impair_rx.as_mut() {
            let burst = std::mem::take(&mut self.rx);
            i.release(now, &mut self.rx);
            for m in burst {
                i.push(now, m, &mut self.rx);
            }
        }
    }

    fn send_queued(&mut self) {
        if let Some(port) = self.port.as_mut() {
            if !self.tx.is_empty() {
                let t = if self.cfg.stage_cycles { rdtsc() } else { 0 };
                let sent = port.tx_burst(self.queue, &mut self.tx);
                if !self.tx.is_empty() {
                    self.stats.tx_burst_short += 1;
                }
                if self.cfg.stage_cycles {
                    let end = rdtsc();
                    self.stage_tx_burst.add(end.wrapping_sub(t));
                    if sent > 0 {
                        if let Some(mark) = self.rx_mark.take() {
                            self.stage_turnaround.add(end.wrapping_sub(mark));
                        }
                    }
                }
            }
        }
        if self.tx.is_empty() {
            self.tx_since = None;
        }
    }
}

impl EthDevice {
    /// One RX burst of at most `budget` (and the configured burst) frames
    /// into `self.rx`: received, sorted by the steering (frames another
    /// lcore owns leave, steered-in frames come first), timed when stage
    /// accounting is on, then impaired. False when the port is closed.
    #[inline]
    fn burst_in(&mut self, now: Instant, budget: usize) -> bool {
        let Some(port) = self.port.as_mut() else { return false };
        let max = budget.min(self.cfg.burst).min(usize::from(u16::MAX)) as u16;
        let t = if self.cfg.stage_cycles { rdtsc() } else { 0 };
        port.rx_burst(self.queue, &mut self.rx, max);
        if let Some(s) = self.steer.as_mut() {
            s.sort(&mut self.rx, usize::from(max));
        }
        if self.cfg.stage_cycles {
            let end = rdtsc();
            self.stage_rx_burst.add(end.wrapping_sub(t));
            if !self.rx.is_empty() {
                self.rx_mark.get_or_insert(end);
            }
        }
        self.impair_received(now);
        true
    }
}

impl Device for EthDevice {
    fn caps(&self) -> DeviceCaps {
        self.caps
    }

    fn receive_frames(&mut self, now: Instant, budget: usize, sink: &mut dyn FnMut(RxFrame<'_>)) -> usize {
        if self.port.is_none() {
            return 0;
        }
        if self.cfg.rx_zero_copy && !self.rx_lent.is_empty() {
            self.reclaim_rx(self.reclaim_slice());
        }
        if !self.burst_in(now, budget) {
            return 0;
        }
        let n = self.rx.len();
        let mut rx = std::mem::take(&mut self.rx);
        for m in rx.drain(..) {
            let l4 = self.l4_check(&m);
            if l4 == L4Check::Bad {
                continue;
            }
            let verified = l4 == L4Check::Ok;
            if m.nb_segs() > 1 {
                self.stats.rx_chains_copied += 1;
                let mut v = std::mem::take(&mut self.rx_scratch);
                v.clear();
                m.segments().for_each(|s| v.extend_from_slice(s));
                sink(if verified { RxFrame::L4Verified(&v) } else { RxFrame::Borrowed(&v) });
                self.rx_scratch = v;
            } else if self.cfg.rx_zero_copy {
                self.stats.rx_mbufs_handed_over += 1;
                let w = self.lend_rx(m, verified);
                sink(RxFrame::Shared(w));
            } else {
                sink(if verified { RxFrame::L4Verified(m.data()) } else { RxFrame::Borrowed(m.data()) });
            }
        }
        self.rx = rx;
        self.stats.rx_frames += n as u64;
        n
    }

    fn receive(&mut self, now: Instant, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize {
        if !self.burst_in(now, budget) {
            return 0;
        }
        let n = self.rx.len();
        let mut v = std::mem::take(&mut self.rx_scratch);
        for m in &self.rx {
            if m.nb_segs() == 1 {
                sink(m.data());
            } else {
                self.stats.rx_chains_copied += 1;
                v.clear();
                m.segments().for_each(|s| v.extend_from_slice(s));
                sink(&v);
            }
        }
        self.rx_scratch = v;
        self.stats.rx_frames += n as u64;
        Mbuf::free_bulk(&mut self.rx);
        n
    }

    fn transmit(&mut self, now: Instant, frame: TxFrame, mem: &dyn PageMemory) -> std::result::Result<(), TxFrame> {
        if self.port.is_none() {
            return Err(frame);
        }
        if self.tx.len() >= self.cfg.tx_queue_limit {
            self.send_queued();
            if self.tx.len() >= self.cfg.tx_queue_limit {
                self.stats.tx_backpressure += 1;
                return Err(frame);
            }
        }
        let payload: usize = frame.payload.iter().map(|s| s.len as usize).sum();
        // Payload the stack copied in anyway (small or copy-mode writes) goes
        // by copy as well: one mbuf is cheaper than a header + extbuf chain
        // and saves no application copy.
        // A TSO frame is larger than a copy mbuf: always a chain.
        let attach = self.mode == TxMode::ZeroCopy
            && payload > 0
            && ((payload >= self.cfg.zc_min_payload && !frame.copied) || frame.tso_segsz > 0);
        let r = if attach {
            self.build_zero_copy(now, frame)
        } else {
            match self.build_copy(&frame, mem) {
                Ok(m) => {
                    self.stats.tx_frames_copied += 1;
                    self.stats.tx_payload_copied += payload as u64;
                    self.queue_tx(now, m);
                    self.done.push(frame);
                    Ok(())
                }
                Err(()) => Err(frame),
            }
        };
        if r.is_err() {
            self.stats.tx_backpressure += 1;
        } else {
            self.tx_since.get_or_insert(now);
            if self.tx.len() >= self.cfg.burst {
                self.send_queued();
            }
        }
        r
    }

    fn flush(&mut self, now: Instant) {
        if let Some(i) = self.impair_tx.as_mut() {
            i.release(now, &mut self.tx);
        }
        let held = self.tx_since.is_some_and(|t| now - t < zcstack::Duration::from_micros(self.cfg.tx_delay_us));
        if !held {
            self.send_queued();
        }
    }

    fn poll_at(&self) -> Option<Instant> {
        let held = [&self.impair_rx, &self.impair_tx].into_iter().flatten().filter_map(|i| i.next_due());
        self.tx_since.map(|t| t + zcstack::Duration::from_micros(self.cfg.tx_delay_us)).into_iter().chain(held).min()
    }

    fn poll_completions(&mut self, now: Instant, done: &mut dyn FnMut(TxFrame)) {
        self.flush(now);
        self.reap();
        for f in self.done.drain(..) {
            done(f);
        }
    }
}

impl Drop for EthDevice {
    fn drop(&mut self) {
        if self.port.is_some() {
            if let Err(e) = self.close_port() {
                tracing::warn!(%e, "closing the port on drop failed");
            }
        }
        let held = self.rx_mbufs_held();
        if held > 0 {
            tracing::warn!(
                held,
                "EthDevice dropped while received mbufs are still held (zero-copy views); drop them first"
            );
        }
        if !self.frames.iter().all(Option::is_none) {
            tracing::warn!(
                in_flight = self.frames.iter().filter(|f| f.is_some()).count(),
                "EthDevice dropped with frames the PMD never completed; their pages stay referenced"
            );
        }
    }
}
