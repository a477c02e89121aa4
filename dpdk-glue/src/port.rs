//! Ethdev ports: configuration, offloads by capability, start/stop/close, bursts
//! and statistics. Bursts mirror DPDK 22.11's inline `rte_eth_{rx,tx}_burst`
//! (release build: no debug checks, RX/TX callbacks honoured, fast-path tracing
//! compiled out) over `rte_eth_fp_ops`, so the hot path pays no call into C.

use std::ffi::{CStr, CString};
use std::sync::Arc;

use crate::eal::Eal;
use crate::error::{Error, Result, RteErrno};
use crate::ffi;
use crate::mbuf::Mbuf;
use crate::mempool::Mempool;

mod queues;
pub use queues::Queues;

/// Offload bits (`RTE_ETH_{RX,TX}_OFFLOAD_*`) as a small copyable set.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Offloads(pub u64);

impl Offloads {
    /// No offloads.
    pub const NONE: Offloads = Offloads(0);
    /// RX: IPv4 header checksum verified by the NIC.
    pub const RX_IPV4_CKSUM: Offloads = Offloads(ffi::ZC_RX_OFFLOAD_IPV4_CKSUM as u64);
    /// RX: UDP checksum verified by the NIC.
    pub const RX_UDP_CKSUM: Offloads = Offloads(ffi::ZC_RX_OFFLOAD_UDP_CKSUM as u64);
    /// RX: TCP checksum verified by the NIC.
    pub const RX_TCP_CKSUM: Offloads = Offloads(ffi::ZC_RX_OFFLOAD_TCP_CKSUM as u64);
    /// RX: frames may arrive as multi-segment chains.
    pub const RX_SCATTER: Offloads = Offloads(ffi::ZC_RX_OFFLOAD_SCATTER as u64);
    /// TX: IPv4 header checksum filled in by the NIC.
    pub const TX_IPV4_CKSUM: Offloads = Offloads(ffi::ZC_TX_OFFLOAD_IPV4_CKSUM as u64);
    /// TX: UDP checksum filled in by the NIC.
    pub const TX_UDP_CKSUM: Offloads = Offloads(ffi::ZC_TX_OFFLOAD_UDP_CKSUM as u64);
    /// TX: TCP checksum filled in by the NIC.
    pub const TX_TCP_CKSUM: Offloads = Offloads(ffi::ZC_TX_OFFLOAD_TCP_CKSUM as u64);
    /// TX: TCP segmentation offload.
    pub const TX_TCP_TSO: Offloads = Offloads(ffi::ZC_TX_OFFLOAD_TCP_TSO as u64);
    /// TX: multi-segment mbuf chains (needed for header + extbuf payload).
    pub const TX_MULTI_SEGS: Offloads = Offloads(ffi::ZC_TX_OFFLOAD_MULTI_SEGS as u64);
    /// TX: mbufs are freed back to one pool with refcnt 1 (not for extbufs).
    pub const TX_MBUF_FAST_FREE: Offloads = Offloads(ffi::ZC_TX_OFFLOAD_MBUF_FAST_FREE as u64);

    /// Whether every bit of `other` is in `self`.
    pub fn contains(self, other: Offloads) -> bool {
        self.0 & other.0 == other.0
    }
    /// Bits in both.
    pub fn intersect(self, other: Offloads) -> Offloads {
        Offloads(self.0 & other.0)
    }
    /// Bits of `self` not in `other`.
    pub fn difference(self, other: Offloads) -> Offloads {
        Offloads(self.0 & !other.0)
    }
}

impl std::ops::BitOr for Offloads {
    type Output = Offloads;
    fn bitor(self, rhs: Offloads) -> Offloads {
        Offloads(self.0 | rhs.0)
    }
}

/// What a port can do (`rte_eth_dev_info`).
#[derive(Clone, Debug)]
pub struct PortInfo {
    /// Driver name, e.g. `net_null`.
    pub driver: String,
    /// Maximum RX queues.
    pub max_rx_queues: u16,
    /// Maximum TX queues.
    pub max_tx_queues: u16,
    /// RX offloads the port supports.
    pub rx_offload_capa: Offloads,
    /// TX offloads the port supports.
    pub tx_offload_capa: Offloads,
    /// Largest RX descriptor ring.
    pub max_rx_desc: u16,
    /// Largest TX descriptor ring.
    pub max_tx_desc: u16,
    /// Smallest MTU.
    pub min_mtu: u16,
    /// Largest MTU.
    pub max_mtu: u16,
    /// RSS redirection table entries (0: no RSS).
    pub reta_size: u16,
    /// RSS hash key length in bytes (0: the device does not say).
    pub hash_key_size: u8,
    /// RSS hash types the device can compute (`RTE_ETH_RSS_*` bits).
    pub rss_offloads: u64,
}

/// RSS hash types zcstack asks for: IPv4 with and without TCP/UDP ports,
/// fragments included (`RTE_ETH_RSS_*`), to be narrowed to what the device
/// computes.
pub const RSS_HF_IPV4: u64 = (ffi::ZC_RSS_IPV4
    | ffi::ZC_RSS_FRAG_IPV4
    | ffi::ZC_RSS_NONFRAG_IPV4_TCP
    | ffi::ZC_RSS_NONFRAG_IPV4_UDP
    | ffi::ZC_RSS_NONFRAG_IPV4_OTHER) as u64;

/// RSS wanted on a multi-queue port: Toeplitz with `key`.
#[derive(Clone, Debug)]
pub struct RssWanted {
    /// The Toeplitz key (cycled or cut to the device's `hash_key_size`).
    pub key: Vec<u8>,
}

/// RSS as the port was configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RssGranted {
    /// The key programmed, sized to the device's `hash_key_size`.
    pub key: Vec<u8>,
    /// Hash types programmed: [`RSS_HF_IPV4`] ∩ what the device reports.
    pub hash_types: u64,
}

/// How to configure a port.
#[derive(Clone, Debug)]
pub struct PortConfig {
    /// Number of RX queues.
    pub rx_queues: u16,
    /// Number of TX queues.
    pub tx_queues: u16,
    /// RX descriptors per queue (adjusted to the device's limits).
    pub rx_desc: u16,
    /// TX descriptors per queue (adjusted to the device's limits).
    pub tx_desc: u16,
    /// RX offloads wanted; those the port lacks are left off and logged.
    pub rx_offloads: Offloads,
    /// TX offloads wanted; those the port lacks are left off and logged.
    pub tx_offloads: Offloads,
    /// Enable promiscuous mode after configuration.
    pub promiscuous: bool,
    /// MTU (IP packet size); must be within the port's `min_mtu..=max_mtu`.
    pub mtu: u16,
    /// TX descriptors a virtio queue (`net_virtio`, `net_virtio_user`)
    /// reclaims at a time, so sent mbufs (and the pages their external
    /// buffers point at) come back in slices this size rather than a whole
    /// ring's worth in one `tx_burst`; 0 keeps the driver's default (which
    /// for virtio reclaims only when all but 32 descriptors are in use).
    /// Default [`DEFAULT_TX_FREE_BATCH`].
    /// Other drivers keep their defaults: Intel's PMDs already free in
    /// `tx_rs_thresh` (32) batches. See [`crate::txreclaim`].
    pub tx_free_batch: u16,
}

impl Default for PortConfig {
    fn default() -> Self {
        PortConfig {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            rx_offloads: Offloads::NONE,
            tx_offloads: Offloads::NONE,
            promiscuous: true,
            mtu: 1500,
            tx_free_batch: DEFAULT_TX_FREE_BATCH,
        }
    }
}

pub use crate::txreclaim::DEFAULT_TX_FREE_BATCH;

/// Offloads the port was configured with, after matching against capability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrantedOffloads {
    /// RX offloads enabled.
    pub rx: Offloads,
    /// TX offloads enabled.
    pub tx: Offloads,
}

/// Link state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinkStatus {
    /// Link is up.
    pub up: bool,
    /// Speed in Mbit/s (0 if unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// Basic counters (`rte_eth_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// RX packets dropped by the hardware (ring full).
    pub imissed: u64,
    /// RX errors.
    pub ierrors: u64,
    /// TX errors.
    pub oerrors: u64,
    /// RX mbuf allocation failures.
    pub rx_nombuf: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Probed,
    Configured,
    Started,
    Stopped,
}

/// An ethdev port owned by this process. Dropping it stops and closes it (and
/// removes the virtual device if this handle created it).
pub struct Port {
    id: u16,
    name: String,
    state: State,
    rx_queues: u16,
    tx_queues: u16,
    /// rte_vdev_uninit on drop, for vdevs created by [`Port::create_vdev`].
    vdev_name: Option<CString>,
    /// The devargs after the name, for vdevs created by [`Port::create_vdev`].
    vdev_args: Option<String>,
    /// RX pools must outlive the queues that allocate from them.
    rx_pool: Vec<Arc<Mempool>>,
    /// Keeps backing objects (rings) alive until after close.
    _keep: Option<Arc<dyn Send + Sync>>,
    /// A secondary process's view of a port its primary configured and
    /// started ([`Port::attach`]): never stopped or closed from here.
    attached: bool,
}

impl std::fmt::Debug for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Port").field("id", &self.id).field("name", &self.name).field("state", &self.state).finish()
    }
}

// SAFETY: a Port is a port id plus bookkeeping; DPDK's control-path ethdev calls
// may be made from any thread as long as they are not concurrent on the same
// port, which &mut self (and !Sync) ensures.
unsafe impl Send for Port {}

fn cstring(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::NulInArgument(s.to_owned()))
}

fn port_id_by_name(name: &str) -> Option<u16> {
    let c = CString::new(name).ok()?;
    let mut id: u16 = 0;
    // SAFETY: c is a valid C string; id is a valid out-pointer.
    let ret = unsafe { ffi::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
    (ret == 0).then_some(id)
}

impl Port {
    /// Opens an existing port by name, e.g. a vdev given on the EAL command line
    /// (`net_null0`).
    pub fn by_name(_eal: &Eal, name: &str) -> Result<Port> {
        let id = port_id_by_name(name).ok_or_else(|| Error::NoSuchPort(name.to_owned()))?;
        Ok(Port::from_id(id, name.to_owned()))
    }

    /// Opens a port the EAL probed (a PCI device), by its DPDK port id.
    pub fn probed(_eal: &Eal, id: u16) -> Result<Port> {
        // SAFETY: pure validity check.
        if unsafe { ffi::rte_eth_dev_is_valid_port(id) } == 0 {
            return Err(Error::NoSuchPort(format!("port id {id} (the EAL found no such port)")));
        }
        Ok(Port::from_id(id, format!("port{id}")))
    }

    pub(crate) fn from_id(id: u16, name: String) -> Port {
        Port {
            id,
            name,
            state: State::Probed,
            rx_queues: 0,
            tx_queues: 0,
            vdev_name: None,
            vdev_args: None,
            rx_pool: Vec::new(),
            _keep: None,
            attached: false,
        }
    }

    /// A DPDK secondary process's handle on port `name`, which the primary
    /// process configured and started (F-Stack's `--proc-type=secondary`):
    /// the queues are the primary's (`nb_rx_queues`/`nb_tx_queues` as the
    /// primary set them up); bursts work on them, and dropping or closing
    /// this handle leaves the port running (the primary stops and closes it
    /// last). Configure, start and stop are refused on it.
    ///
    /// Errors: [`Error::NoSuchPort`] if the secondary's EAL did not attach a
    /// port of that name; [`Error::PortNotStarted`] if the primary has not
    /// started it (start the primary first, and wait for it to serve).
    pub fn attach(eal: &Eal, name: &str) -> Result<Port> {
        if !eal.is_secondary() {
            return Err(Error::PortNotStarted {
                port: port_id_by_name(name).unwrap_or(0),
                name: name.to_owned(),
                op: "attach outside a secondary process (the primary configures its ports)",
            });
        }
        let id = port_id_by_name(name).ok_or_else(|| {
            Error::NoSuchPort(format!(
                "{name}: the secondary attached no such port (ports found: {})",
                crate::ports::describe(&crate::ports::list(eal))
            ))
        })?;
        let mut info = ffi::rte_eth_dev_info::default();
        // SAFETY: info is a valid out-pointer to a default-initialised struct.
        let ret = unsafe { ffi::rte_eth_dev_info_get(id, &mut info) };
        let mut p = Port::from_id(id, name.to_owned());
        p.attached = true;
        if ret != 0 {
            return Err(p.err("dev_info_get", ret));
        }
        if info.nb_rx_queues == 0 || info.nb_tx_queues == 0 {
            return Err(Error::PortNotStarted {
                port: id,
                name: name.to_owned(),
                op: "attach before the primary configured the port's queues",
            });
        }
        p.rx_queues = info.nb_rx_queues;
        p.tx_queues = info.nb_tx_queues;
        p.state = State::Started;
        Ok(p)
    }

    /// Whether this is a secondary's handle on a primary's port ([`Port::attach`]).
    pub fn is_attached(&self) -> bool {
        self.attached
    }

    /// Creates a virtual device from devargs (`net_null0,size=64`,
    /// `net_tap0,iface=zc0`, `net_virtio_user0,path=/tmp/s`, `net_vhost0,iface=/tmp/s`,
    /// `net_memif0,role=server`, `net_af_xdp0,iface=veth0`, ...) and opens its port.
    /// The device is removed when the port is dropped.
    pub fn create_vdev(_eal: &Eal, devargs: &str) -> Result<Port> {
        let (name, args) = devargs.split_once(',').unwrap_or((devargs, ""));
        let cname = cstring(name)?;
        let cargs = cstring(args)?;
        // SAFETY: both are valid C strings; DPDK copies them.
        let ret = unsafe { ffi::rte_vdev_init(cname.as_ptr(), cargs.as_ptr()) };
        if ret != 0 {
            return Err(Error::Vdev { devargs: devargs.to_owned(), errno: RteErrno::from_ret(ret) });
        }
        match port_id_by_name(name) {
            Some(id) => {
                let mut p = Port::from_id(id, name.to_owned());
                p.vdev_name = Some(cname);
                p.vdev_args = Some(args.to_owned());
                Ok(p)
            }
            None => {
                // A vdev that is not an ethdev (or failed to register one).
                // SAFETY: removes the device created just above.
                unsafe { ffi::rte_vdev_uninit(cname.as_ptr()) };
                Err(Error::NoSuchPort(name.to_owned()))
            }
        }
    }

    /// Two ports joined back to back by two rings (`rte_eth_from_rings`): what
    /// one transmits the other receives, in the same process, deterministically
    /// and without copying (the receiver gets the sender's very mbufs).
    pub fn ring_pair(_eal: &Eal, name: &str, ring_size: u32) -> Result<(Port, Port)> {
        let rings = RingPairMem::new(name, ring_size)?;
        let mut ports = Vec::with_capacity(2);
        for (i, (rx, tx)) in [(rings.a, rings.b), (rings.b, rings.a)].into_iter().enumerate() {
            let pname = format!("{name}_{}", if i == 0 { "a" } else { "b" });
            let c = cstring(&pname)?;
            // SAFETY: rx/tx point to live rings owned by `rings`, which the
            // ports keep alive (via _keep) until after they are closed.
            let ret = unsafe { ffi::rte_eth_from_rings(c.as_ptr(), &rx, 1, &tx, 1, 0) };
            if ret < 0 {
                return Err(Error::Vdev { devargs: pname, errno: RteErrno::last() });
            }
            ports.push(Port::from_id(ret as u16, format!("net_{pname}")));
        }
        let keep: Arc<dyn Send + Sync> = Arc::new(rings);
        for p in &mut ports {
            p._keep = Some(keep.clone());
        }
        let b = ports.pop().expect("two ports");
        let a = ports.pop().expect("two ports");
        Ok((a, b))
    }

    /// The port id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The port's device name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the port is started.
    pub fn is_started(&self) -> bool {
        self.state == State::Started
    }

    /// A secondary's attached port is the primary's to configure, start and stop.
    fn refuse_attached(&self, op: &'static str) -> Result<()> {
        if self.attached {
            return Err(Error::PortNotStarted {
                port: self.id,
                name: self.name.clone(),
                op: match op {
                    "configure" => "configure in a secondary process (the primary configures the port)",
                    "start" => "start in a secondary process (the primary starts the port)",
                    _ => "stop in a secondary process (the primary stops the port last)",
                },
            });
        }
        Ok(())
    }

    fn err(&self, op: &'static str, ret: i32) -> Error {
        Error::Port { port: self.id, name: self.name.clone(), op, errno: RteErrno::from_ret(ret) }
    }

    /// Capabilities of the port.
    pub fn info(&self) -> Result<PortInfo> {
        let info = self.raw_info()?;
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: driver_name is a static NUL-terminated string owned by the driver.
            unsafe { CStr::from_ptr(info.driver_name) }.to_string_lossy().into_owned()
        };
        Ok(PortInfo {
            driver,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            rx_offload_capa: Offloads(info.rx_offload_capa),
            tx_offload_capa: Offloads(info.tx_offload_capa),
            max_rx_desc: info.rx_desc_lim.nb_max,
            max_tx_desc: info.tx_desc_lim.nb_max,
            min_mtu: info.min_mtu,
            max_mtu: info.max_mtu,
            reta_size: info.reta_size,
            hash_key_size: info.hash_key_size,
            rss_offloads: info.flow_type_rss_offloads,
        })
    }

    /// The arguments (after the name) of the vdev this port was created
    /// from, when known ([`Port::create_vdev`], [`Port::note_vdev_args`]).
    pub fn vdev_args(&self) -> Option<&str> {
        self.vdev_args.as_deref()
    }

    /// Records the devargs (after the name) of a vdev the EAL created from
    /// its command line, as [`Port::create_vdev`] does for its own: queue
    /// setup reads them (a virtio-user `packed_vq=1` keeps the driver's TX
    /// reclaim, see [`crate::txreclaim`]).
    pub fn note_vdev_args(&mut self, args: &str) {
        self.vdev_args = Some(args.to_owned());
    }

    /// The driver's default TX queue configuration (`default_txconf` of
    /// `rte_eth_dev_info_get`).
    fn default_txconf(&self) -> Result<ffi::rte_eth_txconf> {
        // Queue-level offloads: none (the port-level ones apply to every queue).
        Ok(ffi::rte_eth_txconf { offloads: 0, ..self.raw_info()?.default_txconf })
    }

    /// `rte_eth_dev_info_get` as DPDK fills it.
    fn raw_info(&self) -> Result<ffi::rte_eth_dev_info> {
        let mut info = ffi::rte_eth_dev_info::default();
        // SAFETY: info is a valid out-pointer to a default-initialised struct.
        let ret = unsafe { ffi::rte_eth_dev_info_get(self.id, &mut info) };
        if ret != 0 {
            return Err(self.err("dev_info_get", ret));
        }
        Ok(info)
    }

    /// Configures queues and offloads and sets up every queue. RX queues take
    /// mbufs from `rx_pool`, which the port keeps alive. Offloads the port does
    /// not support are not requested; what was granted is returned.
    pub fn configure(&mut self, cfg: &PortConfig, rx_pool: Arc<Mempool>) -> Result<GrantedOffloads> {
        let pools = vec![rx_pool; usize::from(cfg.rx_queues.max(1))];
        Ok(self.configure_queues(cfg, &pools, None)?.0)
    }

    /// Configures the port with one RX queue per entry of `rx_pools` (queue
    /// `q` takes its mbufs from `rx_pools[q]`, kept alive by the port) and
    /// `cfg.tx_queues` TX queues. With `rss` and more than one RX queue, RX
    /// is spread by the Toeplitz hash over [`RSS_HF_IPV4`] ∩ the device's
    /// hash types, with `rss.key` sized to the device's key size; a device
    /// that computes none of those types gets no RSS (`None` is returned
    /// for it, and frames arrive wherever the driver puts them).
    pub fn configure_queues(
        &mut self,
        cfg: &PortConfig,
        rx_pools: &[Arc<Mempool>],
        rss: Option<&RssWanted>,
    ) -> Result<(GrantedOffloads, Option<RssGranted>)> {
        self.refuse_attached("configure")?;
        let cfg = &PortConfig { rx_queues: u16::try_from(rx_pools.len()).unwrap_or(u16::MAX), ..cfg.clone() };
        if self.state == State::Started {
            self.stop()?;
        }
        let info = self.info()?;
        if cfg.rx_queues == 0
            || cfg.rx_queues > info.max_rx_queues
            || cfg.tx_queues == 0
            || cfg.tx_queues > info.max_tx_queues
        {
            return Err(Error::PortLimit {
                port: self.id,
                name: self.name.clone(),
                what: format!(
                    "asked for {} RX / {} TX queues; the port has 1..={} RX and 1..={} TX",
                    cfg.rx_queues, cfg.tx_queues, info.max_rx_queues, info.max_tx_queues
                ),
            });
        }
        let rx = cfg.rx_offloads.intersect(info.rx_offload_capa);
        let tx = cfg.tx_offloads.intersect(info.tx_offload_capa);
        let (rx_missing, tx_missing) = (cfg.rx_offloads.difference(rx), cfg.tx_offloads.difference(tx));
        if rx_missing != Offloads::NONE || tx_missing != Offloads::NONE {
            tracing::info!(port = self.id, driver = %info.driver, rx_missing = rx_missing.0, tx_missing = tx_missing.0,
                "port lacks some requested offloads; continuing without them");
        }
        if cfg.mtu < info.min_mtu || cfg.mtu > info.max_mtu {
            return Err(Error::PortLimit {
                port: self.id,
                name: self.name.clone(),
                what: format!("MTU {} is outside the port's {}..={}", cfg.mtu, info.min_mtu, info.max_mtu),
            });
        }
        let mut conf = ffi::rte_eth_conf::default();
        let hf = info.rss_offloads & RSS_HF_IPV4;
        let mut rss_key: Vec<u8> = Vec::new();
        let mut rss_granted = None;
        if let (Some(want), true) = (rss, cfg.rx_queues > 1) {
            if hf == 0 || want.key.is_empty() {
                tracing::info!(port = self.id, driver = %info.driver, rss_offloads = info.rss_offloads,
                    "port computes no IPv4 RSS hash; RX distribution is the driver's (software steering sorts it)");
            } else {
                let len = if info.hash_key_size == 0 { want.key.len() } else { usize::from(info.hash_key_size) };
                rss_key = want.key.iter().copied().cycle().take(len).collect();
                conf.rxmode.mq_mode = ffi::RTE_ETH_MQ_RX_RSS;
                conf.rx_adv_conf.rss_conf.rss_key = rss_key.as_mut_ptr();
                conf.rx_adv_conf.rss_conf.rss_key_len = u8::try_from(len).unwrap_or(u8::MAX);
                conf.rx_adv_conf.rss_conf.rss_hf = hf;
                rss_granted = Some(RssGranted { key: rss_key.clone(), hash_types: hf });
            }
        }
        conf.rxmode.mtu = u32::from(cfg.mtu);
        conf.rxmode.offloads = rx.0;
        conf.txmode.offloads = tx.0;
        // SAFETY: conf is a valid, fully initialised configuration; the key
        // it points to (rss_key) lives until after the call, which copies it.
        let ret = unsafe { ffi::rte_eth_dev_configure(self.id, cfg.rx_queues, cfg.tx_queues, &conf) };
        drop(rss_key);
        if ret != 0 {
            return Err(self.err("dev_configure", ret));
        }
        let (mut nb_rx, mut nb_tx) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: valid out-pointers; the port is configured.
        let ret = unsafe { ffi::rte_eth_dev_adjust_nb_rx_tx_desc(self.id, &mut nb_rx, &mut nb_tx) };
        if ret != 0 {
            return Err(self.err("adjust_nb_rx_tx_desc", ret));
        }
        // SAFETY: pure getter on a valid port id.
        let socket = unsafe { ffi::rte_eth_dev_socket_id(self.id) };
        let socket = if socket < 0 { 0 } else { socket as u32 };
        for (q, rx_pool) in (0..cfg.rx_queues).zip(rx_pools) {
            // SAFETY: the pool is live and kept alive by self.rx_pool below;
            // NULL rxconf selects the driver's defaults.
            let ret =
                unsafe { ffi::rte_eth_rx_queue_setup(self.id, q, nb_rx, socket, std::ptr::null(), rx_pool.as_ptr()) };
            if ret != 0 {
                return Err(self.err("rx_queue_setup", ret));
            }
        }
        let sliced = crate::txreclaim::sliced(&info.driver, self.vdev_args.as_deref(), cfg.tx_free_batch);
        let base = if sliced { Some(self.default_txconf()?) } else { None };
        for q in 0..cfg.tx_queues {
            if let Some(base) = base {
                let id = self.id;
                let mut setup = |thresh: u16| {
                    let conf = ffi::rte_eth_txconf { tx_free_thresh: thresh, ..base };
                    // SAFETY: conf lives across the call, which copies what it needs.
                    unsafe { ffi::rte_eth_tx_queue_setup(id, q, nb_tx, socket, &conf) }
                };
                // The ring is found from the driver's refusals: their
                // error lines are not errors, so the EAL logs only
                // critical messages meanwhile.
                let found =
                    crate::eal::with_quiet_log(|| crate::txreclaim::setup_sliced(cfg.tx_free_batch, &mut setup));
                match found {
                    Some((ring, thresh)) => tracing::debug!(port = self.id, driver = %info.driver, queue = q, ring,
                        tx_free_thresh = thresh, "TX queue reclaims in slices"),
                    None => tracing::warn!(port = self.id, driver = %info.driver, queue = q, nb_tx,
                        batch = cfg.tx_free_batch, "TX queue refused every tx_free_thresh tried; it reclaims sent mbufs by the driver's default"),
                }
                if found.is_some() {
                    continue;
                }
            }
            // SAFETY: NULL txconf selects the driver's defaults (with the port-level offloads).
            let ret = unsafe { ffi::rte_eth_tx_queue_setup(self.id, q, nb_tx, socket, std::ptr::null()) };
            if ret != 0 {
                return Err(self.err("tx_queue_setup", ret));
            }
        }
        self.rx_pool = rx_pools.to_vec();
        self.rx_queues = cfg.rx_queues;
        self.tx_queues = cfg.tx_queues;
        self.state = State::Configured;
        if cfg.promiscuous {
            self.set_promiscuous(true)?;
        }
        Ok((GrantedOffloads { rx, tx }, rss_granted))
    }

    /// Programs the RSS redirection table: hash `h` goes to RX queue
    /// `reta[h % reta.len()]`. `reta.len()` must be the device's
    /// `reta_size` (a multiple of 64, DPDK's RETA group size).
    pub fn set_reta(&mut self, reta: &[u16]) -> Result<()> {
        let group = ffi::ZC_RETA_GROUP_SIZE as usize;
        if reta.is_empty() || reta.len() % group != 0 {
            return Err(Error::PortLimit {
                port: self.id,
                name: self.name.clone(),
                what: format!("RETA of {} entries is not a multiple of {group}", reta.len()),
            });
        }
        let mut conf: Vec<ffi::rte_eth_rss_reta_entry64> = reta
            .chunks(group)
            .map(|c| {
                let mut e = ffi::rte_eth_rss_reta_entry64 { mask: u64::MAX, ..Default::default() };
                e.reta[..c.len()].copy_from_slice(c);
                e
            })
            .collect();
        let size = u16::try_from(reta.len()).unwrap_or(u16::MAX);
        // SAFETY: conf holds reta.len()/64 entries, as reta_size says.
        let ret = unsafe { ffi::rte_eth_dev_rss_reta_update(self.id, conf.as_mut_ptr(), size) };
        if ret != 0 {
            return Err(self.err("rss_reta_update", ret));
        }
        Ok(())
    }

    /// Starts the port.
    pub fn start(&mut self) -> Result<()> {
        self.refuse_attached("start")?;
        if self.state == State::Probed {
            return Err(Error::PortNotStarted { port: self.id, name: self.name.clone(), op: "start before configure" });
        }
        // SAFETY: the port is configured.
        let ret = unsafe { ffi::rte_eth_dev_start(self.id) };
        if ret != 0 {
            return Err(self.err("dev_start", ret));
        }
        self.state = State::Started;
        Ok(())
    }

    /// Stops the port. Bursts are refused until it is started again.
    pub fn stop(&mut self) -> Result<()> {
        self.refuse_attached("stop")?;
        if self.state != State::Started {
            return Ok(());
        }
        // SAFETY: the port is started; no burst runs concurrently (&mut self).
        let ret = unsafe { ffi::rte_eth_dev_stop(self.id) };
        self.state = State::Stopped;
        if ret != 0 {
            return Err(self.err("dev_stop", ret));
        }
        Ok(())
    }

    /// Stops and closes the port, releasing every mbuf in its rings (on PMDs that
    /// defer TX completion, this is when the last completions fire).
    pub fn close(mut self) -> Result<()> {
        self.close_inner()
    }

    fn close_inner(&mut self) -> Result<()> {
        if self.attached {
            // The primary owns the port: a secondary leaving must not stop it.
            self.state = State::Probed;
            return Ok(());
        }
        let stop = self.stop();
        // SAFETY: the port is stopped (or never started) and owned by self;
        // it is closed once (close_inner runs from close() or Drop, and
        // close() forgets nothing: Drop sees the id already invalid below).
        // SAFETY: pure validity check.
        if unsafe { ffi::rte_eth_dev_is_valid_port(self.id) } == 0 {
            return stop;
        }
        // SAFETY: as above.
        let ret = unsafe { ffi::rte_eth_dev_close(self.id) };
        if let Some(n) = self.vdev_name.take() {
            // SAFETY: removes the vdev this handle created; the port is closed.
            unsafe { ffi::rte_vdev_uninit(n.as_ptr()) };
        }
        self.state = State::Probed;
        self.rx_queues = 0;
        self.tx_queues = 0;
        if ret != 0 {
            return Err(self.err("dev_close", ret));
        }
        stop
    }

    /// Enables or disables promiscuous mode.
    pub fn set_promiscuous(&mut self, on: bool) -> Result<()> {
        // SAFETY: valid port id.
        let ret = unsafe {
            if on {
                ffi::rte_eth_promiscuous_enable(self.id)
            } else {
                ffi::rte_eth_promiscuous_disable(self.id)
            }
        };
        // Some PMDs (net_ring) have no promiscuous control; that is not an error.
        if ret != 0 && ret != -libc::ENOTSUP {
            return Err(self.err("promiscuous", ret));
        }
        Ok(())
    }

    /// Whether promiscuous mode is on.
    pub fn promiscuous(&self) -> bool {
        // SAFETY: valid port id.
        unsafe { ffi::rte_eth_promiscuous_get(self.id) == 1 }
    }

    /// The port's MAC address.
    pub fn mac(&self) -> Result<[u8; 6]> {
        let mut a = ffi::rte_ether_addr::default();
        // SAFETY: a is a valid out-pointer.
        let ret = unsafe { ffi::rte_eth_macaddr_get(self.id, &mut a) };
        if ret != 0 {
            return Err(self.err("macaddr_get", ret));
        }
        Ok(a.addr_bytes)
    }

    /// Link state, without waiting.
    pub fn link(&self) -> Result<LinkStatus> {
        let mut l = ffi::rte_eth_link::default();
        // SAFETY: l is a valid out-pointer.
        let ret = unsafe { ffi::rte_eth_link_get_nowait(self.id, &mut l) };
        if ret != 0 {
            return Err(self.err("link_get_nowait", ret));
        }
        Ok(LinkStatus { up: l.link_status() != 0, speed_mbps: l.link_speed, full_duplex: l.link_duplex() != 0 })
    }

    /// Basic counters.
    pub fn stats(&self) -> Result<PortStats> {
        let mut s = ffi::rte_eth_stats::default();
        // SAFETY: s is a valid out-pointer.
        let ret = unsafe { ffi::rte_eth_stats_get(self.id, &mut s) };
        if ret != 0 {
            return Err(self.err("stats_get", ret));
        }
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Resets basic and extended counters.
    pub fn reset_stats(&mut self) -> Result<()> {
        // SAFETY: valid port id.
        let ret = unsafe { ffi::rte_eth_stats_reset(self.id) };
        if ret != 0 && ret != -libc::ENOTSUP {
            return Err(self.err("stats_reset", ret));
        }
        Ok(())
    }

    /// Extended counters by name.
    pub fn xstats(&self) -> Result<Vec<(String, u64)>> {
        // SAFETY: a NULL array with size 0 asks for the count.
        let n = unsafe { ffi::rte_eth_xstats_get_names(self.id, std::ptr::null_mut(), 0) };
        if n < 0 {
            return Err(self.err("xstats_get_names", n));
        }
        let n = n as usize;
        let mut names = vec![ffi::rte_eth_xstat_name::default(); n];
        let mut vals = vec![ffi::rte_eth_xstat::default(); n];
        // SAFETY: names holds n entries.
        let got = unsafe { ffi::rte_eth_xstats_get_names(self.id, names.as_mut_ptr(), n as u32) };
        if got < 0 {
            return Err(self.err("xstats_get_names", got));
        }
        // SAFETY: vals holds n entries.
        let got2 = unsafe { ffi::rte_eth_xstats_get(self.id, vals.as_mut_ptr(), n as u32) };
        if got2 < 0 {
            return Err(self.err("xstats_get", got2));
        }
        let m = (got as usize).min(got2 as usize).min(n);
        Ok(vals[..m]
            .iter()
            .map(|v| {
                let name = names.get(v.id as usize).map(|nm| {
                    // SAFETY: xstat names are NUL-terminated within their 64-byte array.
                    unsafe { CStr::from_ptr(nm.name.as_ptr()) }.to_string_lossy().into_owned()
                });
                (name.unwrap_or_else(|| format!("xstat{}", v.id)), v.value)
            })
            .collect())
    }

    #[inline]
    fn check_burst(&self, op: &'static str, queue: u16, configured: u16, dir: &'static str) -> Result<()> {
        if self.state != State::Started {
            return Err(Error::PortNotStarted { port: self.id, name: self.name.clone(), op });
        }
        if queue >= configured {
            return Err(Error::NoSuchQueue { port: self.id, dir, queue, configured });
        }
        Ok(())
    }

    /// Receives up to `max` packets on `queue`, appending them to `out`.
    /// Returns how many arrived.
    #[inline]
    pub fn rx_burst(&mut self, queue: u16, out: &mut Vec<Mbuf>, max: u16) -> Result<usize> {
        self.check_burst("rx_burst", queue, self.rx_queues, "RX")?;
        Ok(self.queues(queue, 0)?.rx_burst(out, max))
    }

    /// Transmits `pkts` from the front on `queue`. The packets the PMD took
    /// are removed from `pkts`; those it did not take stay there, in order,
    /// still owned by the caller (retry or drop them). Returns how many were taken.
    #[inline]
    pub fn tx_burst(&mut self, queue: u16, pkts: &mut Vec<Mbuf>) -> Result<usize> {
        self.check_burst("tx_burst", queue, self.tx_queues, "TX")?;
        Ok(self.queues(0, queue)?.tx_burst(pkts))
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        if let Err(e) = self.close_inner() {
            tracing::warn!(port = self.id, error = %e, "closing port on drop failed");
        }
    }
}

/// The two rings behind [`Port::ring_pair`], freed after both ports close.
struct RingPairMem {
    a: *mut ffi::rte_ring,
    b: *mut ffi::rte_ring,
}

// SAFETY: the rings are only freed in Drop, after every port using them has
// been closed (ports hold an Arc to this); rte_ring itself is thread-safe.
unsafe impl Send for RingPairMem {}
// SAFETY: no &self method touches the rings.
unsafe impl Sync for RingPairMem {}

impl RingPairMem {
    fn new(name: &str, size: u32) -> Result<Self> {
        let mk = |suffix: &str| -> Result<*mut ffi::rte_ring> {
            let rn = format!("{name}_{suffix}");
            let c = cstring(&rn)?;
            // SAFETY: c is a valid C string; single producer / single consumer
            // matches one TX queue feeding one RX queue.
            let r = unsafe {
                ffi::rte_ring_create(c.as_ptr(), size, ffi::SOCKET_ID_ANY, ffi::RING_F_SP_ENQ | ffi::RING_F_SC_DEQ)
            };
            if r.is_null() {
                return Err(Error::Vdev { devargs: rn, errno: RteErrno::last() });
            }
            Ok(r)
        };
        let a = mk("ab")?;
        let b = match mk("ba") {
            Ok(b) => b,
            Err(e) => {
                // SAFETY: a was created above and is used by nobody yet.
                unsafe { ffi::rte_ring_free(a) };
                return Err(e);
            }
        };
        Ok(RingPairMem { a, b })
    }
}

impl Drop for RingPairMem {
    fn drop(&mut self) {
        // SAFETY: both ports using the rings are closed (this is the last Arc);
        // mbufs left in the rings are lost to their pool's count, which the
        // mempool's in-use check will report.
        unsafe {
            ffi::rte_ring_free(self.a);
            ffi::rte_ring_free(self.b);
        }
    }
}

impl Port {
    /// The generic device behind the port, for DMA mapping.
    pub(crate) fn device_ptr(&self) -> Result<*mut ffi::rte_device> {
        Ok(self.raw_info()?.device)
    }
}
