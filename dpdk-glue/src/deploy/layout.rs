//! The shared RSS/queue layout of a multi-process deployment: a memzone
//! `zc_layout_p{port}` the primary writes once its port is configured and
//! started, and every secondary reads (F-Stack keeps the same facts in its
//! shared `ff_dpdk_config`): how many queues the port has, the Toeplitz key
//! and RETA the port was programmed with (so every process classifies a
//! frame to the same queue), the offloads the port granted, and the
//! settings every process of the group must share ([`Agreement`]: a
//! secondary started with another config.ini is refused, naming the keys).

use std::ffi::CString;
use std::ptr::NonNull;

use zcstack::rss::{Reta, RssSpec, Toeplitz};

use crate::eal::Eal;
use crate::error::{Error, Result, RteErrno};
use crate::ffi;
use crate::port::{GrantedOffloads, Offloads};

const MAGIC: u64 = 0x7a63_6c61_796f_7574; // "zclayout"
const VERSION: u32 = 3;
/// Queues whose serving process the layout records.
const OWNERS_MAX: usize = 64;
/// Longest RSS key kept (NICs use 40 or 52 bytes).
const KEY_MAX: usize = 64;
/// Largest RETA kept (DPDK's `RTE_ETH_RSS_RETA_SIZE_512`).
const RETA_MAX: usize = 512;

/// What the memzone holds (plain data, same binary in every process).
#[repr(C)]
#[derive(Clone, Copy)]
struct Raw {
    magic: u64,
    version: u32,
    port_id: u16,
    queues: u16,
    key_len: u32,
    reta_len: u32,
    key: [u8; KEY_MAX],
    reta: [u16; RETA_MAX],
    rx_offloads: u64,
    tx_offloads: u64,
    agree: Agreement,
    /// Queue handles secondaries hold on the port (an `AtomicU32`, updated
    /// by the secondaries; the primary waits for 0 before stopping the port).
    attached: u32,
    /// `owners[q]`: pid of the secondary serving queue `q` (0: none; each an
    /// `AtomicU32`), so a second live process for the same queue is refused
    /// and a dead one's leftovers are reclaimed by its replacement.
    owners: [u32; OWNERS_MAX],
}

/// What every process of a group must have read from the same config.ini
/// for one port (F-Stack: "every process uses the same config.ini").
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Agreement {
    /// `[portN] addr`, host order.
    pub addr: u32,
    /// `[portN] gateway` (0: none).
    pub gateway: u32,
    /// `[portN] lcore_list` as a mask of lcore ids (< 64).
    pub lcore_mask: u64,
    /// `[portN] mtu`, bytes.
    pub mtu: u32,
    /// `[freebsd.boot] memsz_MB`: each process's page array.
    pub memsz_mb: u32,
    /// `[zerocopy] buf_size`, bytes.
    pub buf_size: u32,
    /// `[vdevN] mac` (all zero: the port's own).
    pub mac: [u8; 6],
    /// `[portN] netmask` as a prefix length.
    pub prefix_len: u8,
    _pad: u8,
}

impl Agreement {
    /// The settings of `pp` and the per-lcore template of `plan`.
    pub(crate) fn of(plan: &crate::plan::DeployPlan, pp: &crate::plan::PortPlan) -> Agreement {
        Agreement {
            addr: u32::from(pp.addr),
            gateway: pp.gateway.map_or(0, u32::from),
            lcore_mask: pp.lcores.iter().filter(|&&l| l < 64).fold(0, |m, &l| m | 1 << l),
            mtu: u32::try_from(pp.mtu).unwrap_or(u32::MAX),
            memsz_mb: u32::try_from(plan.lcore.page_array_mb).unwrap_or(u32::MAX),
            buf_size: u32::try_from(plan.lcore.page_buf_size).unwrap_or(u32::MAX),
            mac: pp.mac.unwrap_or([0; 6]),
            prefix_len: pp.prefix_len,
            _pad: 0,
        }
    }

    /// Each setting where `self` (this process) differs from `primary`,
    /// as `key: ours (primary: theirs)`; empty when they agree.
    pub(crate) fn differences(&self, primary: &Agreement, port: u16) -> Vec<String> {
        let ip = |a: u32| std::net::Ipv4Addr::from(a).to_string();
        let mac = |m: [u8; 6]| {
            if m == [0; 6] {
                "the port's own".to_owned()
            } else {
                m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":")
            }
        };
        let lcores =
            |m: u64| (0..64).filter(|b| m >> b & 1 == 1).map(|b: u32| b.to_string()).collect::<Vec<_>>().join(",");
        let mut out = Vec::new();
        let mut cmp = |key: String, a: String, b: String| {
            if a != b {
                out.push(format!("{key} = {a} (primary: {b})"));
            }
        };
        cmp(format!("[port{port}] addr"), ip(self.addr), ip(primary.addr));
        cmp(format!("[port{port}] netmask"), format!("/{}", self.prefix_len), format!("/{}", primary.prefix_len));
        cmp(format!("[port{port}] gateway"), ip(self.gateway), ip(primary.gateway));
        cmp(format!("[port{port}] lcore_list"), lcores(self.lcore_mask), lcores(primary.lcore_mask));
        cmp(format!("[port{port}] mtu"), self.mtu.to_string(), primary.mtu.to_string());
        cmp(format!("[vdev{port}] mac"), mac(self.mac), mac(primary.mac));
        cmp("[freebsd.boot] memsz_MB".into(), self.memsz_mb.to_string(), primary.memsz_mb.to_string());
        cmp("[zerocopy] buf_size".into(), self.buf_size.to_string(), primary.buf_size.to_string());
        out
    }
}

/// The name of port `port`'s layout memzone.
pub(crate) fn layout_name(port: u16) -> String {
    format!("zc_layout_p{port}")
}

/// One port's layout as the processes share it.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    /// Queue pairs the primary configured.
    pub queues: u16,
    /// Key and RETA every process classifies by.
    pub spec: RssSpec,
    /// Offloads the port granted.
    pub granted: GrantedOffloads,
    /// Settings every process must share.
    pub agree: Agreement,
}

/// This process's place in the group around one port's layout memzone:
/// the primary owns the zone (freed on drop) and waits for the
/// secondaries' queue handles before it stops the port; a secondary counts
/// its handles in and out.
pub(crate) struct Group {
    mz: NonNull<ffi::rte_memzone>,
    primary: bool,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group").field("primary", &self.primary).field("attached", &self.attached()).finish()
    }
}

// SAFETY: the memzone is shared DPDK memory; its counter is only touched
// atomically, the rest is read-only after `publish`; freed once in Drop.
unsafe impl Send for Group {}
// SAFETY: as above.
unsafe impl Sync for Group {}

impl Group {
    fn counter(&self) -> &std::sync::atomic::AtomicU32 {
        // SAFETY: the zone holds a Raw (publish wrote it, read checked its
        // size); `attached` is a 4-byte aligned u32 only ever accessed
        // atomically, and the zone outlives `self`.
        unsafe {
            let raw = self.mz.as_ref().__bindgen_anon_1.addr as *mut Raw;
            &*(std::ptr::addr_of_mut!((*raw).attached) as *const std::sync::atomic::AtomicU32)
        }
    }

    fn owner(&self, q: u16) -> Option<&std::sync::atomic::AtomicU32> {
        if usize::from(q) >= OWNERS_MAX {
            return None;
        }
        // SAFETY: as in `counter`: `owners` is an array of 4-byte aligned
        // u32s inside the zone, each only accessed atomically.
        unsafe {
            let raw = self.mz.as_ref().__bindgen_anon_1.addr as *mut Raw;
            let p = std::ptr::addr_of_mut!((*raw).owners) as *const std::sync::atomic::AtomicU32;
            Some(&*p.add(usize::from(q)))
        }
    }

    /// A secondary takes queue `q` for process `pid`. `Ok(None)`: the queue
    /// was free; `Ok(Some(dead))`: process `dead` had it and is gone (its
    /// leftovers may be reclaimed; its hold on the port is given back);
    /// `Err(live)`: process `live` still serves it.
    pub(crate) fn claim(&self, q: u16, pid: u32) -> std::result::Result<Option<u32>, u32> {
        use std::sync::atomic::Ordering::AcqRel;
        use std::sync::atomic::Ordering::Acquire;
        let Some(slot) = self.owner(q) else { return Ok(None) };
        loop {
            let cur = slot.load(Acquire);
            if cur != 0 && cur != pid && process_alive(cur) {
                return Err(cur);
            }
            if slot.compare_exchange(cur, pid, AcqRel, Acquire).is_ok() {
                if cur != 0 && cur != pid {
                    // The dead process never gave its queue handle back.
                    self.release();
                    return Ok(Some(cur));
                }
                return Ok(None);
            }
        }
    }

    /// Process `pid` leaves queue `q`.
    pub(crate) fn unclaim(&self, q: u16, pid: u32) {
        use std::sync::atomic::Ordering::{AcqRel, Acquire};
        if let Some(slot) = self.owner(q) {
            let _ = slot.compare_exchange(pid, 0, AcqRel, Acquire);
        }
    }

    /// Whether this process created the zone.
    pub(crate) fn is_primary(&self) -> bool {
        self.primary
    }

    /// Queue handles secondaries hold now.
    pub(crate) fn attached(&self) -> u32 {
        self.counter().load(std::sync::atomic::Ordering::Acquire)
    }

    /// A secondary took a queue handle.
    pub(crate) fn hold(&self) {
        self.counter().fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// A secondary gave its queue handle back.
    pub(crate) fn release(&self) {
        let c = self.counter();
        let _ = c.fetch_update(std::sync::atomic::Ordering::AcqRel, std::sync::atomic::Ordering::Acquire, |v| {
            Some(v.saturating_sub(1))
        });
    }

    /// Primary, before stopping the port: waits until no secondary holds a
    /// queue, at most `limit` (a secondary killed without leaving never
    /// gives its count back), logging every second. Returns what is still held.
    pub(crate) fn wait_secondaries(&self, limit: std::time::Duration) -> u32 {
        let t = std::time::Instant::now();
        let mut said = 0;
        loop {
            let n = self.attached();
            if n == 0 || t.elapsed() >= limit {
                if n > 0 {
                    tracing::warn!(held = n, "secondary processes still hold queues; stopping the port anyway");
                }
                return n;
            }
            let s = t.elapsed().as_secs();
            if s > said {
                said = s;
                tracing::info!(held = n, "waiting for secondary processes to leave the port");
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.primary {
            // SAFETY: reserved by `publish`, freed once here.
            unsafe { ffi::rte_memzone_free(self.mz.as_ptr()) };
        }
    }
}

/// Whether process `pid` exists (signal 0: no signal, only the check).
fn process_alive(pid: u32) -> bool {
    let Ok(p) = i32::try_from(pid) else { return false };
    // SAFETY: kill with signal 0 sends nothing; it only checks the pid.
    let r = unsafe { libc::kill(p, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The page array memzone of a secondary `pid` serving queue `q` of `port`.
pub(crate) fn secondary_pages_name(port: u16, q: usize, pid: u32) -> String {
    format!("zc_pages_p{port}_{q}_s{pid}")
}

/// Frees the memzone `name` if it exists (a dead secondary's page array,
/// which no frame in flight can reference any more: its process, the only
/// one that could send from it, is gone).
pub(crate) fn free_stale_zone(name: &str) {
    let Ok(c) = CString::new(name) else { return };
    // SAFETY: c is a valid C string; lookup only reads the shared memzone list.
    let mz = unsafe { ffi::rte_memzone_lookup(c.as_ptr()) };
    if !mz.is_null() {
        // SAFETY: the zone exists and its owner is dead; nothing else maps it by name.
        let r = unsafe { ffi::rte_memzone_free(mz) };
        tracing::info!(zone = name, ret = r, "freed a dead secondary's page array");
    }
}

/// Writes port `port`'s layout for the secondaries (primary only).
pub(crate) fn publish(_eal: &Eal, port: u16, l: &Layout) -> Result<Group> {
    let name = layout_name(port);
    let key = l.spec.toeplitz.key();
    let reta = l.spec.reta.entries();
    if key.len() > KEY_MAX || reta.len() > RETA_MAX {
        return Err(Error::Layout {
            name,
            why: format!("key of {} B or RETA of {} entries exceeds {KEY_MAX} B / {RETA_MAX}", key.len(), reta.len()),
        });
    }
    let mut raw = Raw {
        magic: MAGIC,
        version: VERSION,
        port_id: port,
        queues: l.queues,
        key_len: key.len() as u32,
        reta_len: reta.len() as u32,
        key: [0; KEY_MAX],
        reta: [0; RETA_MAX],
        rx_offloads: l.granted.rx.0,
        tx_offloads: l.granted.tx.0,
        agree: l.agree,
        attached: 0,
        owners: [0; OWNERS_MAX],
    };
    raw.key[..key.len()].copy_from_slice(key);
    raw.reta[..reta.len()].copy_from_slice(reta);
    let c = CString::new(name.as_str()).map_err(|_| Error::NulInArgument(name.clone()))?;
    let len = std::mem::size_of::<Raw>();
    // SAFETY: c is a valid C string; DPDK copies the name.
    let mz = unsafe { ffi::rte_memzone_reserve_aligned(c.as_ptr(), len, ffi::SOCKET_ID_ANY, 0, 64) };
    let mz = NonNull::new(mz as *mut ffi::rte_memzone).ok_or_else(|| Error::Memzone {
        name: name.clone(),
        len,
        errno: RteErrno::last(),
    })?;
    // SAFETY: the zone is ours, `len` bytes, 64-byte aligned (enough for Raw);
    // nobody reads it before this write (secondaries attach after the primary serves).
    unsafe { std::ptr::write(mz.as_ref().__bindgen_anon_1.addr as *mut Raw, raw) };
    Ok(Group { mz, primary: true })
}

/// Reads port `port`'s layout (secondary). Errors say what is missing or
/// different: no primary, another port, a layout of another version.
pub(crate) fn read(_eal: &Eal, port: u16) -> Result<(Layout, Group)> {
    let name = layout_name(port);
    let c = CString::new(name.as_str()).map_err(|_| Error::NulInArgument(name.clone()))?;
    // SAFETY: c is a valid C string; lookup only reads the shared memzone list.
    let mz = unsafe { ffi::rte_memzone_lookup(c.as_ptr()) };
    let bad = |why: String| Error::Layout { name: name.clone(), why };
    let Some(mz) = NonNull::new(mz as *mut ffi::rte_memzone) else {
        return Err(bad(
            "not found: is the --proc-type=primary process running with the same [dpdk] file_prefix?".into()
        ));
    };
    // SAFETY: the zone lives while the primary runs.
    let d = unsafe { mz.as_ref() };
    let zone_len = d.len;
    if zone_len < std::mem::size_of::<Raw>() {
        return Err(bad(format!("{zone_len} B, expected {} (another zcstack version?)", std::mem::size_of::<Raw>())));
    }
    // SAFETY: the zone holds at least one Raw (checked), written by `publish`
    // before the primary started serving; read by value.
    let raw = unsafe { std::ptr::read(d.__bindgen_anon_1.addr as *const Raw) };
    if raw.magic != MAGIC || raw.version != VERSION || raw.port_id != port {
        return Err(bad(format!(
            "magic {:#x} version {} port {}: expected {MAGIC:#x} version {VERSION} port {port} (another zcstack version?)",
            raw.magic, raw.version, raw.port_id
        )));
    }
    let (kl, rl) = (raw.key_len as usize, raw.reta_len as usize);
    if !(4..=KEY_MAX).contains(&kl) || rl == 0 || rl > RETA_MAX || raw.queues == 0 {
        return Err(bad(format!("key of {kl} B, RETA of {rl}, {} queues: not a layout", raw.queues)));
    }
    let reta = &raw.reta[..rl];
    if reta.iter().any(|&q| q >= raw.queues) {
        return Err(bad(format!("RETA names a queue beyond the port's {}", raw.queues)));
    }
    let reta = Reta::from_entries(reta.to_vec()).map_err(|e| bad(e.to_string()))?;
    Ok((
        Layout {
            queues: raw.queues,
            spec: RssSpec { toeplitz: Toeplitz::new(&raw.key[..kl]), reta },
            granted: GrantedOffloads { rx: Offloads(raw.rx_offloads), tx: Offloads(raw.tx_offloads) },
            agree: raw.agree,
        },
        Group { mz, primary: false },
    ))
}
