//! What a deployment runs, as plain data: which lcores run a stack, which
//! ports they share and through which queues, how RSS spreads flows, and
//! how this process takes part (F-Stack's `--proc-type`/`--proc-id`).
//!
//! [`crate::config::Config::deploy_plan`] fills it from `config.ini`;
//! [`crate::deploy::Deployment`] starts it. Queue *q* of a port is served by
//! the *q*-th lcore of that port's [`PortPlan::lcores`] (F-Stack's
//! `lcore_list`, default every lcore of `lcore_mask`).

use std::net::Ipv4Addr;

use crate::eal::EalArgs;
use crate::port::PortConfig;
use crate::runloop::RuntimeConfig;

/// How this process takes part in the deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProcRole {
    /// One process runs a stack on every lcore of `lcore_mask` (threads
    /// pinned by the EAL; the main lcore is one of them).
    Single,
    /// F-Stack's `--proc-type=primary --proc-id=i`: configures every port
    /// with one queue pair per lcore, creates the shared pools and steering
    /// rings, and runs the stack of lcore `i` itself.
    Primary {
        /// This process's index into `lcore_mask`'s lcores.
        proc_id: u32,
        /// Processes in the group (lcores of `lcore_mask`).
        nb_procs: u32,
    },
    /// F-Stack's `--proc-type=secondary --proc-id=i`: attaches to the
    /// primary's ports, pools and rings and runs the stack of lcore `i`.
    Secondary {
        /// This process's index into `lcore_mask`'s lcores.
        proc_id: u32,
        /// Processes in the group.
        nb_procs: u32,
    },
}

/// Where a port comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortDevice {
    /// A virtual device this process creates from `[vdevN]` (devargs).
    Vdev {
        /// Devargs, e.g. `net_tap0,iface=zc0,queues=2`.
        devargs: String,
    },
    /// A device the EAL probed (PCI, narrowed by `[dpdk] allow`), found by
    /// its DPDK port id.
    Probed,
}

/// One port of `port_list`.
#[derive(Clone, Debug)]
pub struct PortPlan {
    /// DPDK port id as the EAL enumerates ports (PCI first, then vdevs).
    pub port_id: u16,
    /// Where it comes from.
    pub device: PortDevice,
    /// Lcores serving it, ascending; queue `q` belongs to `lcores[q]`.
    pub lcores: Vec<u32>,
    /// IPv4 address.
    pub addr: Ipv4Addr,
    /// On-link prefix length.
    pub prefix_len: u8,
    /// Default gateway.
    pub gateway: Option<Ipv4Addr>,
    /// MAC to use instead of the port's own (`[vdevN] mac`), if any.
    pub mac: Option<[u8; 6]>,
    /// Link MTU, bytes.
    pub mtu: usize,
    /// Descriptors, promiscuous mode, offloads wanted (queue counts are
    /// filled in from `lcores`).
    pub port: PortConfig,
}

/// One pre-computed entry of F-Stack's `[rss_check] rss_tbl`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RssTblEntry {
    /// Port id the entry applies to.
    pub port_id: u16,
    /// Remote (destination of the connect) address.
    pub daddr: Ipv4Addr,
    /// Remote port.
    pub dport: u16,
    /// Local address.
    pub saddr: Ipv4Addr,
    /// Local ports whose replies land on the connecting lcore's queue,
    /// as F-Stack pre-computes them.
    pub sports: Vec<u16>,
}

/// RSS for every port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RssPlan {
    /// `[dpdk] symmetric_rss`: the symmetric Toeplitz key instead of F-Stack's default key.
    pub symmetric: bool,
    /// `[rss_check] enable`: outbound connects pick local ports whose
    /// replies hash to the connecting lcore's queue.
    pub check: bool,
    /// `[rss_check] rss_tbl`.
    pub tbl: Vec<RssTblEntry>,
}

/// Everything a deployment needs.
#[derive(Clone, Debug)]
pub struct DeployPlan {
    /// EAL arguments: lcores, proc type, allow list, every `[vdevN]`, memory.
    pub eal: EalArgs,
    /// How this process takes part.
    pub role: ProcRole,
    /// The lcores this process runs stacks on, ascending (all of
    /// `lcore_mask` for [`ProcRole::Single`], the `proc_id`-th otherwise).
    pub lcores: Vec<u32>,
    /// Every lcore of `lcore_mask`, ascending (the whole group).
    pub all_lcores: Vec<u32>,
    /// Ports, in `port_list` order.
    pub ports: Vec<PortPlan>,
    /// RSS.
    pub rss: RssPlan,
    /// `[dpdk] numa_on`: pools and page arrays on the port's NUMA socket.
    pub numa_on: bool,
    /// Per-lcore template: pools, page array size, offload wishes, device
    /// and engine settings (its `eal`, `vdev`, `port` and the stack's
    /// addressing are taken from the fields above instead).
    pub lcore: RuntimeConfig,
}
