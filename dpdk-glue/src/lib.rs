//! zcstack's DPDK glue: allowlisted bindings to the system's DPDK 22.11 and
//! safe wrappers around them. This is the only crate in the workspace with FFI;
//! no public item here exposes a raw pointer.
//!
//! - [`eal`]: typed EAL arguments, once-per-process init, lcore launch.
//! - [`mempool`], [`mbuf`]: pktmbuf pools and owned mbuf chains.
//! - [`port`]: ethdev ports (vdevs by devargs, the in-process ring pair),
//!   offloads by capability, bursts that never leak unsent mbufs, stats.
//! - [`extbuf`]: DMA-able regions (memzone, registered app memory), external
//!   buffers attached to header mbufs, and the completion ring their free
//!   callbacks feed.

pub mod affinity;
pub(crate) mod completion;
pub mod config;
pub mod control;
pub mod deploy;
pub mod device;
pub mod eal;
pub mod error;
pub mod extbuf;
pub(crate) mod ffi;
pub mod impair;
pub mod iova;
pub mod loopstages;
pub mod mbuf;
pub mod mempool;
pub mod pages;
pub mod pcapfile;
pub mod plan;
pub mod port;
pub mod ports;
pub mod runloop;
pub mod steer;
pub mod txreclaim;

pub use deploy::Deployment;
pub use device::{EthDevice, EthDeviceConfig, EthDeviceStats, TxMode, TxPrefetch};
pub use eal::{Eal, EalArgs, IovaMode, LcoreJob};
pub use error::{Error, Result, RteErrno};
pub use extbuf::{CompletionRing, DmaMapping, ExtMem, MemRegion};
pub use impair::{ImpairConfig, ImpairStats};
pub use loopstages::{LoopStage, LoopStages};
pub use mbuf::Mbuf;
pub use mempool::{Mempool, PoolConfig};
pub use pages::PageArray;
pub use port::{GrantedOffloads, LinkStatus, Offloads, Port, PortConfig, PortInfo, PortStats, Queues};
pub use ports::PortListing;
pub use runloop::{Control, LoopCycles, LoopPass, Pusher, Runtime, RuntimeConfig, StopHandle};
