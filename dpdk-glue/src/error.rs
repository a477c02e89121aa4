//! Typed errors of the DPDK glue. Every error that comes from DPDK carries the
//! errno it reported and `rte_strerror`'s text for it.

use std::ffi::CStr;
use std::fmt;

use crate::ffi;

/// An errno value reported by DPDK (through `rte_errno` or a negative return),
/// displayed with `rte_strerror`'s text.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RteErrno(pub i32);

impl RteErrno {
    /// The current thread's `rte_errno`.
    pub fn last() -> Self {
        // SAFETY: reads a thread-local integer through the shim; no preconditions.
        RteErrno(unsafe { ffi::zc_rte_errno() })
    }

    /// The errno of a negative DPDK return code (`-EINVAL` -> `EINVAL`).
    pub fn from_ret(ret: i32) -> Self {
        RteErrno(ret.saturating_abs())
    }

    /// `rte_strerror`'s description of this errno.
    pub fn text(self) -> String {
        // SAFETY: rte_strerror accepts any integer and returns a pointer to a
        // NUL-terminated string that is static or in a thread-local buffer; we
        // copy it out before any other DPDK call on this thread.
        let p = unsafe { ffi::rte_strerror(self.0) };
        if p.is_null() {
            return format!("errno {}", self.0);
        }
        // SAFETY: p is non-null and NUL-terminated per rte_strerror's contract.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

impl fmt::Display for RteErrno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (errno {})", self.text(), self.0)
    }
}

impl fmt::Debug for RteErrno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Everything that can go wrong in the DPDK glue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `rte_eal_init` was already run in this process (it can run only once,
    /// even after `rte_eal_cleanup`).
    #[error("the DPDK EAL is already initialised in this process (it can be initialised only once per process; share the existing Eal)")]
    EalAlreadyInitialized,
    /// An earlier `rte_eal_init` in this process failed; DPDK keeps partial
    /// state after a failure and cannot be initialised again.
    #[error(
        "an earlier EAL initialisation failed in this process; DPDK cannot be initialised again (start a new process)"
    )]
    EalPreviouslyFailed,
    /// `rte_eal_init` rejected its arguments or failed to start.
    #[error("EAL initialisation failed with arguments {args:?}: {errno}")]
    EalInit { args: Vec<String>, errno: RteErrno },
    /// `--file-prefix` is not a plain name (see [`crate::eal::check_file_prefix`]).
    #[error("EAL file prefix {prefix:?} refused: {why}; expected {}", crate::eal::FILE_PREFIX_ALLOWED)]
    BadFilePrefix { prefix: String, why: &'static str },
    /// An argument could not be passed to C (it contains a NUL byte).
    #[error("argument {0:?} contains a NUL byte")]
    NulInArgument(String),
    /// A name or argument is longer than DPDK allows.
    #[error("{what} {value:?} is too long (at most {max} bytes)")]
    TooLong { what: &'static str, value: String, max: usize },
    /// Creating a mempool failed.
    #[error("cannot create mempool {name:?} ({count} mbufs of {data_room} B): {errno}")]
    MempoolCreate { name: String, count: u32, data_room: u16, errno: RteErrno },
    /// A mempool ran out of mbufs.
    #[error("mempool {pool:?} is exhausted (wanted {wanted} mbufs)")]
    PoolExhausted { pool: String, wanted: usize },
    /// An mbuf operation needed more room than the mbuf has.
    #[error("mbuf has no room: {op} of {len} B (headroom {headroom}, tailroom {tailroom})")]
    NoRoom { op: &'static str, len: usize, headroom: u16, tailroom: u16 },
    /// Chaining would exceed the maximum number of segments or packet length.
    #[error("cannot chain mbufs: {errno}")]
    Chain { errno: RteErrno },
    /// Creating or probing a virtual device failed.
    #[error("cannot create virtual device {devargs:?}: {errno}")]
    Vdev { devargs: String, errno: RteErrno },
    /// No ethdev port has this name.
    #[error("no ethdev port named {0:?}")]
    NoSuchPort(String),
    /// An ethdev operation failed.
    #[error("port {port} ({name}): {op} failed: {errno}")]
    Port { port: u16, name: String, op: &'static str, errno: RteErrno },
    /// A burst was attempted on a port that is not started.
    #[error("port {port} ({name}) is not started: {op} refused")]
    PortNotStarted { port: u16, name: String, op: &'static str },
    /// A queue index beyond the configured queues.
    #[error("port {port} has {configured} {dir} queues; queue {queue} does not exist")]
    NoSuchQueue { port: u16, dir: &'static str, queue: u16, configured: u16 },
    /// The port was asked for more than it can do.
    #[error("port {port} ({name}): {what}")]
    PortLimit { port: u16, name: String, what: String },
    /// Reserving DMA-able memory failed.
    #[error("cannot reserve {len} B of DPDK memory for {name:?}: {errno}")]
    Memzone { name: String, len: usize, errno: RteErrno },
    /// Registering or DMA-mapping external memory failed.
    #[error("external memory {op} failed for {len} B at page size {page_size}: {errno}")]
    ExtMem { op: &'static str, len: usize, page_size: usize, errno: RteErrno },
    /// A slice is outside its region or crosses a page whose IOVA is not contiguous.
    #[error("slice {offset}+{len} is not usable in a region of {region_len} B: {why}")]
    BadSlice { offset: usize, len: usize, region_len: usize, why: &'static str },
    /// Every completion slot is attached to an in-flight mbuf.
    #[error("all {0} external-buffer completion slots are in flight; drain completions first")]
    CompletionSlotsExhausted(usize),
    /// A page array cannot be carved as asked.
    #[error("page array of {bytes} B with {buf_size} B buffers: {why}")]
    BadPageArray { bytes: usize, buf_size: usize, why: &'static str },
    /// Pcap files cannot be created.
    #[error("cannot write pcap files in {dir}: {reason}")]
    Pcap { dir: String, reason: String },
    /// Launching work on an lcore failed.
    #[error("cannot launch on lcore {lcore}: {errno}")]
    Launch { lcore: u32, errno: RteErrno },
    /// A port id the EAL did not probe (config `[dpdk] port_list`).
    #[error("[dpdk] port_list names port {port}, but the EAL found {found}")]
    PortNotProbed { port: u16, found: String },
    /// A `[dpdk] allow` entry that is not a PCI device address.
    #[error("[dpdk] allow entry {entry:?} refused: {why}")]
    BadAllowEntry { entry: String, why: &'static str },
    /// A `[dpdk] allow` entry that matches no device the EAL probed.
    #[error("[dpdk] allow entry {entry:?} matches no probed device ({hint}); the EAL found {found}")]
    AllowUnmatched { entry: String, hint: String, found: String },
    /// A page's physical address could not be learned (IOVA-as-PA mode).
    #[error("cannot learn the physical address of {addr:#x} from /proc/self/pagemap: {why}")]
    PhysAddr { addr: usize, why: String },
    /// A secondary process found no mempool of that name (the primary
    /// creates them; start the primary first, with the same file prefix).
    #[error(
        "mempool {name:?} not found: is the --proc-type=primary process running with the same [dpdk] file_prefix?"
    )]
    MempoolMissing { name: String },
    /// A secondary process found no steering ring of that name.
    #[error("steering ring {name:?} not found: is the --proc-type=primary process running with the same [dpdk] file_prefix and lcore_mask?")]
    SteerRingMissing { name: String },
    /// A secondary process's EAL found no primary to attach to.
    #[error(
        "--proc-type=secondary: no primary process with file prefix {prefix:?} to attach to (start the \
         --proc-type=primary process first, with the same config.ini): {cause}"
    )]
    NoPrimary { prefix: String, cause: String },
    /// A secondary process found no (or a different) shared layout.
    #[error("multi-process layout {name:?}: {why}")]
    Layout { name: String, why: String },
}

/// Result alias of the glue.
pub type Result<T, E = Error> = std::result::Result<T, E>;
