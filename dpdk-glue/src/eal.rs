//! The DPDK Environment Abstraction Layer: typed arguments, once-per-process
//! initialisation, lcore launch, and cleanup on drop.

use std::ffi::{c_void, CString};
use std::os::raw::{c_char, c_int};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result, RteErrno};
use crate::ffi;

static EAL_STARTED: AtomicBool = AtomicBool::new(false);
static EAL_FAILED: AtomicBool = AtomicBool::new(false);

/// Typed EAL command line. [`EalArgs::to_args`] renders what `rte_eal_init` gets.
#[derive(Clone, Debug, Default)]
pub struct EalArgs {
    /// `--lcores` layout, e.g. `"0@0,1@0"` (several lcores on one CPU) or `"0-1"`.
    pub lcores: Option<String>,
    /// `--main-lcore`.
    pub main_lcore: Option<u32>,
    /// `--no-huge`: anonymous memory instead of hugepages (IOVA as VA).
    pub no_huge: bool,
    /// `-m`: memory to preallocate, in MiB.
    pub memory_mb: Option<u32>,
    /// `--no-pci`: leave the machine's PCI NICs to the kernel.
    pub no_pci: bool,
    /// `--no-shconf`: no shared config file, so several processes can run at once.
    pub no_shconf: bool,
    /// `--in-memory`: no hugepage files at all (needs hugepages reserved).
    pub in_memory: bool,
    /// `--huge-unlink`: do not leave hugepage map files behind.
    pub huge_unlink: bool,
    /// `--file-prefix`: isolates this process's runtime files from others.
    pub file_prefix: Option<String>,
    /// `--vdev` devargs, e.g. `net_null0,size=64` or `net_tap0,iface=zc0`.
    pub vdevs: Vec<String>,
    /// `--log-level`, e.g. `"error"`, `"7"`, or `"pmd.net.tap:debug"`.
    pub log_level: Option<String>,
    /// `--iova-mode` (`va` or `pa`).
    pub iova_mode: Option<String>,
    /// Anything else, appended verbatim.
    pub extra: Vec<String>,
    /// `-a ENTRY` per entry: the PCI devices to probe (F-Stack's `[dpdk] allow`),
    /// each `DDDD:BB:DD.F` or `BB:DD.F` optionally followed by `,driver options`.
    /// Empty probes every PCI device bound to a DPDK-capable driver (unless
    /// [`EalArgs::no_pci`]). Checked before and after init ([`Eal::init`]).
    pub allow: Vec<String>,
    /// `--proc-type` (`primary`, `secondary` or `auto`).
    pub proc_type: Option<String>,
    /// `--base-virtaddr`, e.g. `0x7f0000000000` (F-Stack's `base_virtaddr`: where
    /// the primary maps DPDK memory so secondaries can map it at the same address).
    pub base_virtaddr: Option<String>,
}

impl EalArgs {
    /// The CI default that needs no machine setup: `--no-huge -m 256 --no-pci --no-shconf`
    /// with warnings-only logging, on the given lcore layout.
    pub fn nic_less(lcores: &str) -> Self {
        EalArgs {
            lcores: Some(lcores.to_owned()),
            no_huge: true,
            memory_mb: Some(256),
            no_pci: true,
            no_shconf: true,
            log_level: Some("warning".to_owned()),
            ..EalArgs::default()
        }
    }

    /// A deployment on NIC ports: hugepages (DPDK's default memory), PCI
    /// probing narrowed by `allow` when given, a shared config (so secondary
    /// processes can attach), warnings-only logging.
    pub fn nic(lcores: &str, allow: Vec<String>) -> Self {
        EalArgs { lcores: Some(lcores.to_owned()), allow, log_level: Some("warning".to_owned()), ..EalArgs::default() }
    }

    /// The argv handed to `rte_eal_init`, starting with the program name.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = vec!["zcstack".to_owned()];
        if let Some(l) = &self.lcores {
            a.extend(["--lcores".to_owned(), l.clone()]);
        }
        if let Some(m) = self.main_lcore {
            a.extend(["--main-lcore".to_owned(), m.to_string()]);
        }
        if self.no_huge {
            a.push("--no-huge".to_owned());
        }
        if let Some(m) = self.memory_mb {
            a.extend(["-m".to_owned(), m.to_string()]);
        }
        if self.no_pci {
            a.push("--no-pci".to_owned());
        }
        if self.no_shconf {
            a.push("--no-shconf".to_owned());
        }
        if self.in_memory {
            a.push("--in-memory".to_owned());
        }
        if self.huge_unlink {
            a.push("--huge-unlink".to_owned());
        }
        if let Some(p) = &self.file_prefix {
            a.extend(["--file-prefix".to_owned(), p.clone()]);
        }
        for v in &self.vdevs {
            a.extend(["--vdev".to_owned(), v.clone()]);
        }
        if let Some(l) = &self.log_level {
            a.extend(["--log-level".to_owned(), l.clone()]);
        }
        if let Some(i) = &self.iova_mode {
            a.extend(["--iova-mode".to_owned(), i.clone()]);
        }
        for e in &self.allow {
            a.extend(["-a".to_owned(), e.clone()]);
        }
        if let Some(p) = &self.proc_type {
            a.extend(["--proc-type".to_owned(), p.clone()]);
        }
        if let Some(b) = &self.base_virtaddr {
            a.extend(["--base-virtaddr".to_owned(), b.clone()]);
        }
        a.extend(self.extra.iter().cloned());
        a
    }
}

/// Longest `--file-prefix` zcstack passes, bytes. The prefix names the EAL
/// runtime directory (`/var/run/dpdk/<prefix>/`, holding DPDK's `mp_socket`),
/// hugepage files and the `zcstat` socket `<prefix>-<proc id>.sock`; Unix
/// socket paths hold 107 bytes (`sun_path` is 108 with its NUL), so the
/// prefix keeps well inside that.
pub const FILE_PREFIX_MAX: usize = 64;

/// What a file prefix may be, for messages.
pub const FILE_PREFIX_ALLOWED: &str = "a plain name of 1 to 64 bytes: letters, digits, '_', '-' and '.', \
     not starting with '.' or '-' (no '/', no '..': it names files under the runtime directory)";

/// Checks that `p` is a plain file name usable as an EAL `--file-prefix`:
/// 1..=[`FILE_PREFIX_MAX`] bytes of `[A-Za-z0-9_.-]`, not starting with `.`
/// or `-` (so never `..`, a path, an option or a hidden file). The error
/// says what is wrong.
pub fn check_file_prefix(p: &str) -> std::result::Result<(), &'static str> {
    if p.is_empty() {
        return Err("it is empty");
    }
    if p.len() > FILE_PREFIX_MAX {
        return Err("it is longer than 64 bytes");
    }
    if p.contains('/') || p.contains('\0') {
        return Err("it contains '/' or a NUL byte: it must be a name, not a path");
    }
    if p.starts_with('.') || p.starts_with('-') {
        return Err("it starts with '.' or '-'");
    }
    if !p.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) {
        return Err("it contains a byte other than letters, digits, '_', '-' and '.'");
    }
    Ok(())
}

/// The initialised EAL. Exactly one can exist per process, ever: DPDK does not
/// support a second `rte_eal_init`, even after cleanup. Dropping it runs
/// `rte_eal_cleanup`; drop every port and pool first.
#[derive(Debug)]
pub struct Eal {
    args: Vec<String>,
}

impl Eal {
    /// Runs `rte_eal_init` with `args`.
    ///
    /// Errors: [`Error::EalAlreadyInitialized`] if an EAL was ever started in this
    /// process (checked before DPDK is touched); [`Error::EalInit`] with DPDK's
    /// errno when it rejects the arguments. DPDK cannot be initialised again
    /// after a failed attempt either: later calls return
    /// [`Error::EalPreviouslyFailed`].
    /// A `file_prefix` that is not a plain name ([`check_file_prefix`]) is
    /// [`Error::BadFilePrefix`], before DPDK is touched.
    pub fn init(args: &EalArgs) -> Result<Eal> {
        if let Some(p) = &args.file_prefix {
            check_file_prefix(p).map_err(|why| Error::BadFilePrefix { prefix: p.clone(), why })?;
        }
        // DPDK refuses a malformed -a entry with a bare EINVAL (and the
        // process's one init is spent): say which entry, before DPDK runs.
        for e in &args.allow {
            crate::ports::parse_allow_entry(e).map_err(|why| Error::BadAllowEntry { entry: e.clone(), why })?;
        }
        let argv = args.to_args();
        let c_args = argv
            .iter()
            .map(|s| CString::new(s.as_str()).map_err(|_| Error::NulInArgument(s.clone())))
            .collect::<Result<Vec<_>>>()?;
        if EAL_STARTED.swap(true, Ordering::SeqCst) {
            if EAL_FAILED.load(Ordering::SeqCst) {
                return Err(Error::EalPreviouslyFailed);
            }
            return Err(Error::EalAlreadyInitialized);
        }
        // rte_eal_init may permute argv; give it its own pointer array. The
        // CStrings outlive the call; DPDK keeps no pointer into argv after it.
        let mut ptrs: Vec<*mut c_char> = c_args.iter().map(|c| c.as_ptr() as *mut c_char).collect();
        let argc = c_int::try_from(ptrs.len()).expect("fewer than 2^31 EAL arguments");
        // SAFETY: argv points to argc valid NUL-terminated strings that live
        // until after the call; EAL_STARTED guarantees no concurrent or repeated
        // call from this crate.
        let ret = unsafe { ffi::rte_eal_init(argc, ptrs.as_mut_ptr()) };
        if ret < 0 {
            let errno = RteErrno::last();
            if errno.0 == libc::EALREADY {
                // Someone outside this crate initialised DPDK.
                return Err(Error::EalAlreadyInitialized);
            }
            // DPDK keeps half-parsed state after a failed init (measured on
            // 22.11: a retry fails with "--lcores is set"), so the one chance
            // this process had is spent; later calls say so.
            EAL_FAILED.store(true, Ordering::SeqCst);
            return Err(Error::EalInit { args: argv, errno });
        }
        tracing::info!(args = ?argv, "EAL initialised");
        let eal = Eal { args: argv };
        // DPDK 22.11 accepts an allow entry that matches no device and probes
        // nothing for it: a deployment would then fail later with "no port".
        if let Err(e) = crate::ports::check_allow(&eal, &args.allow) {
            // The Eal is dropped (cleaned up) here; DPDK cannot start again.
            EAL_FAILED.store(true, Ordering::SeqCst);
            return Err(e);
        }
        Ok(eal)
    }

    /// The IOVA mode DPDK chose (`--iova-mode`, or its own pick from the
    /// buses' needs: VA with `--no-huge` or vfio with an IOMMU, PA with
    /// igb_uio/uio_pci_generic or vfio in no-IOMMU mode).
    pub fn iova_mode(&self) -> IovaMode {
        IovaMode::current()
    }

    /// Whether this process is a DPDK secondary (attached to a primary's
    /// memory and ports with `--proc-type=secondary`).
    pub fn is_secondary(&self) -> bool {
        // SAFETY: the EAL is initialised; pure getter.
        unsafe { ffi::rte_eal_process_type() == ffi::RTE_PROC_SECONDARY }
    }

    /// The argument list the EAL was started with.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// TSC ticks per second, for converting `rdtsc` readings.
    pub fn tsc_hz(&self) -> u64 {
        // SAFETY: the EAL is initialised (self exists); pure getter.
        unsafe { ffi::rte_get_tsc_hz() }
    }

    /// The main lcore's id.
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: the EAL is initialised; pure getter.
        unsafe { ffi::rte_get_main_lcore() }
    }

    /// Ids of the enabled worker lcores (every enabled lcore but the main one).
    pub fn worker_lcores(&self) -> Vec<u32> {
        let mut out = Vec::new();
        let mut i: u32 = u32::MAX;
        loop {
            // SAFETY: the EAL is initialised; rte_get_next_lcore accepts any
            // previous id (-1 to start) and returns RTE_MAX_LCORE at the end.
            i = unsafe { ffi::rte_get_next_lcore(i, 1, 0) };
            if i >= ffi::RTE_MAX_LCORE {
                return out;
            }
            out.push(i);
        }
    }

    /// Runs `f` on worker lcore `lcore` and returns a handle to wait for its
    /// result. The lcore must be idle (not running an earlier launch).
    pub fn launch<F, T>(&self, lcore: u32, f: F) -> Result<LcoreJob<T>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        type Slot<T> = std::sync::Mutex<Option<T>>;
        struct Job<F, T> {
            f: Option<F>,
            out: std::sync::Arc<Slot<T>>,
        }
        extern "C" fn trampoline<F: FnOnce() -> T, T>(arg: *mut c_void) -> c_int {
            // SAFETY: arg is the Box<Job> leaked by launch() below, handed to
            // exactly one lcore; reclaiming it here frees it exactly once.
            let mut job = unsafe { Box::from_raw(arg as *mut Job<F, T>) };
            if let Some(f) = job.f.take() {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
                match r {
                    Ok(v) => {
                        *job.out.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
                        0
                    }
                    Err(_) => -1,
                }
            } else {
                -1
            }
        }
        let out = std::sync::Arc::new(Slot::<T>::new(None));
        let job = Box::new(Job { f: Some(f), out: out.clone() });
        let raw = Box::into_raw(job) as *mut c_void;
        // SAFETY: trampoline matches lcore_function_t; raw is a valid Box
        // pointer consumed exactly once by the trampoline, or reclaimed below
        // when the launch fails (then the trampoline never runs).
        let ret = unsafe { ffi::rte_eal_remote_launch(Some(trampoline::<F, T>), raw, lcore) };
        if ret != 0 {
            // SAFETY: the launch failed, so the trampoline never took ownership.
            drop(unsafe { Box::from_raw(raw as *mut Job<F, T>) });
            return Err(Error::Launch { lcore, errno: RteErrno::from_ret(ret) });
        }
        Ok(LcoreJob { lcore, out })
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: the EAL was initialised by this value; callers drop ports and
        // pools first (they borrow nothing from Eal, so this is documented).
        let ret = unsafe { ffi::rte_eal_cleanup() };
        if ret != 0 {
            tracing::warn!(errno = %RteErrno::from_ret(ret), "rte_eal_cleanup failed");
        }
    }
}

/// How devices address memory for DMA (`rte_eal_iova_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IovaMode {
    /// IOVA = physical address (igb_uio, uio_pci_generic, vfio no-IOMMU):
    /// memory handed to a NIC must be pinned and its physical address known.
    Pa,
    /// IOVA = virtual address (vfio with an IOMMU, `--no-huge`, virtual devices).
    Va,
    /// DPDK has not decided (no device needs DMA).
    DontCare,
}

impl IovaMode {
    /// The running EAL's mode (`DontCare` before init).
    pub(crate) fn current() -> IovaMode {
        // SAFETY: pure getter of a global set during init.
        match unsafe { ffi::rte_eal_iova_mode() } {
            ffi::RTE_IOVA_PA => IovaMode::Pa,
            ffi::RTE_IOVA_VA => IovaMode::Va,
            _ => IovaMode::DontCare,
        }
    }
}

/// Work running on a worker lcore; [`LcoreJob::join`] waits for it.
#[derive(Debug)]
#[must_use = "join the job to learn its result"]
pub struct LcoreJob<T> {
    lcore: u32,
    out: std::sync::Arc<std::sync::Mutex<Option<T>>>,
}

impl<T> LcoreJob<T> {
    /// Waits for the lcore to finish; `None` if the job panicked.
    pub fn join(self) -> Option<T> {
        // SAFETY: waits on an lcore this job launched; no memory is shared.
        unsafe { ffi::rte_eal_wait_lcore(self.lcore) };
        self.out.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Current lcore id (`u32::MAX` on a non-EAL thread).
pub fn lcore_id() -> u32 {
    // SAFETY: reads a thread-local; no preconditions.
    unsafe { ffi::zc_rte_lcore_id() }
}

/// The CPU the calling thread runs on (an lcore thread is pinned to the
/// CPU of its `--lcores L@CPU`), or `None` if the kernel cannot say.
pub fn current_cpu() -> Option<u32> {
    // SAFETY: sched_getcpu has no preconditions; it returns -1 on error.
    let cpu = unsafe { libc::sched_getcpu() };
    u32::try_from(cpu).ok()
}

/// The CPU's time-stamp counter (inlined on x86_64, like DPDK's `rte_rdtsc`).
#[inline(always)]
pub fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: RDTSC has no preconditions and touches no memory.
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
    #[cfg(not(target_arch = "x86_64"))]
    // SAFETY: reads the cycle counter through the shim; no preconditions.
    unsafe {
        ffi::zc_rte_rdtsc()
    }
}

/// Runs `f` with the EAL's global log level at "critical", then restores
/// it: for probing a driver whose refusals log error lines that are not
/// errors (see [`crate::txreclaim`]). Log levels are process-wide, so a
/// message another thread logs meanwhile below "critical" is lost; ports
/// are configured at start-up, before lcores run.
pub fn with_quiet_log<T>(f: impl FnOnce() -> T) -> T {
    /// Restores the level on the way out, a panic included.
    struct Restore(u32);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: plain setter of the EAL's global log level (an integer).
            unsafe { ffi::rte_log_set_global_level(self.0) };
        }
    }
    // SAFETY: plain getter of the EAL's global log level.
    let _restore = Restore(unsafe { ffi::rte_log_get_global_level() });
    // SAFETY: as above; 2 is RTE_LOG_CRIT.
    unsafe { ffi::rte_log_set_global_level(2) };
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nic_args_use_hugepages_and_pci_and_render_allow_proc_type_base_virtaddr() {
        let mut a = EalArgs::nic("0-1", vec!["0000:01:00.0,txq_inline=128".into(), "3b:00.1".into()]);
        a.proc_type = Some("secondary".into());
        a.base_virtaddr = Some("0x7f0000000000".into());
        let v = a.to_args();
        for absent in ["--no-huge", "--no-pci", "--no-shconf", "--in-memory"] {
            assert!(!v.iter().any(|x| x == absent), "{absent} in {v:?}");
        }
        let pairs: Vec<(&str, &str)> = v.windows(2).map(|w| (w[0].as_str(), w[1].as_str())).collect();
        for want in [
            ("-a", "0000:01:00.0,txq_inline=128"),
            ("-a", "3b:00.1"),
            ("--proc-type", "secondary"),
            ("--base-virtaddr", "0x7f0000000000"),
            ("--lcores", "0-1"),
        ] {
            assert!(pairs.contains(&want), "{want:?} in {v:?}");
        }
        // The NIC-less test default asks for --no-pci explicitly.
        assert!(EalArgs::nic_less("0@0").to_args().iter().any(|x| x == "--no-pci"));
        assert!(!EalArgs::default().to_args().iter().any(|x| x == "--no-pci" || x == "--no-huge"));
    }
}
