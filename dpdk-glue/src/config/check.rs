//! Checks across keys and against the machine, run when the file is read
//! (after every key has passed its own range check in `keys`).
//!
//! Each error names the key that is wrong (its file and line), the other
//! key it conflicts with (and that key's line), and the values allowed.

use std::net::Ipv4Addr;

use super::host::Host;
use super::ini::Entry;
use super::keys::SUN_PATH_MAX;
use super::{Config, ConfigError, PortSection};

/// Memory DPDK itself needs besides zcstack's pools and page array, MiB
/// (memzones of the ports and rings, the malloc heap's own structures).
pub const DPDK_RESERVE_MB: u64 = 32;
/// Page array the runtime uses when `[zerocopy] page_array = 0`, MiB.
pub const SMALL_PAGE_ARRAY_MB: usize = 16;
/// EAL memory DPDK takes with `no_huge = 1` when `memory` is not set, MiB.
pub const NO_HUGE_DEFAULT_MB: u32 = 512;

/// Bytes of a pcap file header and of one record header.
const PCAP_FILE_HEADER: u64 = 24;
const PCAP_RECORD_HEADER: u64 = 16;

/// Upper bound, MiB, of the mbuf pools one port's runtime creates at link
/// `mtu` (RX and copy-mode TX frames, header mbufs, external-buffer
/// headers, and the TSO copy pool when `tso_copy`), mirroring
/// `Runtime::init` and `EthDevice::new` with 192 bytes per mbuf for the
/// `rte_mbuf` and the mempool's object header.
pub fn pools_mib(mtu: usize, tso_copy: bool) -> u64 {
    const MBUFS: u64 = 8191;
    const OVERHEAD: u64 = 192;
    const HEADROOM: u64 = 128;
    let room = (mtu as u64 + 128 + HEADROOM).max(2048 + HEADROOM);
    let mut bytes = MBUFS * (room + OVERHEAD) * 2 // RX pool, copy pool
        + MBUFS * (256 + HEADROOM + OVERHEAD) // header pool
        + 8192 * OVERHEAD; // external-buffer headers
    if tso_copy {
        bytes += 511 * (32 * 1024 + 256 + HEADROOM + OVERHEAD);
    }
    bytes.div_ceil(1 << 20)
}

/// Every cross-key and machine check of `c` (read from `c.source`).
pub(super) fn check(c: &Config, host: &Host) -> Result<(), ConfigError> {
    let k = Keys(c);
    for p in &c.ports {
        subnet(&k, p)?;
    }
    cpus(&k, host)?;
    memory(&k, host)?;
    buffers(&k)?;
    pcap(&k)?;
    control_socket(&k)?;
    Ok(())
}

/// Finds keys and their lines in the file.
struct Keys<'a>(&'a Config);

impl Keys<'_> {
    fn entry(&self, section: &str, key: &str) -> Option<&Entry> {
        self.0.source.iter().find(|s| s.name == section)?.entries.iter().find(|e| e.key == key)
    }

    /// `[section] key = value (file:line)`, for naming the other key of a conflict.
    fn other(&self, section: &str, key: &str) -> String {
        match self.entry(section, key) {
            Some(e) => format!("[{section}] {key} = {} ({}:{})", e.value, self.0.file, e.line),
            None => format!("[{section}] {key} (not set)"),
        }
    }

    /// An error on `[section] key` (which must be in the file): `expected` says what is allowed.
    fn err(&self, section: &str, key: &str, expected: String) -> ConfigError {
        let e = self.entry(section, key);
        let value = e.map(|e| e.value.as_str()).unwrap_or_default();
        ConfigError {
            file: self.0.file.clone(),
            line: e.map(|e| e.line),
            msg: format!("[{section}] {key} = \"{value}\": expected {expected}"),
        }
    }
}

/// `addr`, `broadcast` and `gateway` agree with `netmask`.
fn subnet(k: &Keys<'_>, p: &PortSection) -> Result<(), ConfigError> {
    let sec = format!("port{}", p.id);
    let mask = u32::MAX.checked_shl(32 - u32::from(p.prefix_len)).unwrap_or(0);
    let net = Ipv4Addr::from(u32::from(p.addr) & mask);
    let bcast = Ipv4Addr::from(u32::from(p.addr) | !mask);
    let cidr = format!("{net}/{}", p.prefix_len);
    let both = format!("{} and {}", k.other(&sec, "addr"), k.other(&sec, "netmask"));
    // RFC 3021: /31 and /32 have no network or broadcast address.
    let ends = p.prefix_len <= 30;
    if ends && (p.addr == net || p.addr == bcast) {
        return Err(k.err(
            &sec,
            "addr",
            format!(
                "a host address of {cidr}, not its network ({net}) or broadcast ({bcast}) address \
                 (subnet from {})",
                k.other(&sec, "netmask")
            ),
        ));
    }
    if p.broadcast != bcast && !p.broadcast.is_broadcast() {
        return Err(k.err(&sec, "broadcast", format!("{bcast}, the broadcast address of {cidr} (from {both})")));
    }
    if let Some(gw) = p.gateway {
        let inside = u32::from(gw) & mask == u32::from(net);
        if !inside || gw == p.addr || (ends && (gw == net || gw == bcast)) {
            return Err(k.err(
                &sec,
                "gateway",
                format!(
                    "0.0.0.0 (none) or a host address of the port's subnet {cidr} other than addr itself \
                     (subnet from {both})"
                ),
            ));
        }
    }
    Ok(())
}

/// `lcore_mask` and every `lcore_list` name CPUs this process may run on.
fn cpus(k: &Keys<'_>, host: &Host) -> Result<(), ConfigError> {
    let c = k.0;
    let have = host.cpu_list();
    if let Some(cpu) = (0..64u32).find(|&b| c.dpdk.lcore_mask >> b & 1 == 1 && !host.has_cpu(b)) {
        return Err(k.err(
            "dpdk",
            "lcore_mask",
            format!(
                "a hex mask of CPUs this process may use ({have}): CPU {cpu} does not exist or is outside \
                 its cpuset"
            ),
        ));
    }
    for p in &c.ports {
        if let Some(cpu) = p.lcore_list.iter().find(|&&l| !host.has_cpu(l)) {
            return Err(k.err(
                &format!("port{}", p.id),
                "lcore_list",
                format!("CPUs this process may use ({have}): CPU {cpu} does not exist or is outside its cpuset"),
            ));
        }
    }
    Ok(())
}

/// The page array and the mbuf pools fit in `[dpdk] memory`, and that in
/// the machine.
fn memory(k: &Keys<'_>, host: &Host) -> Result<(), ConfigError> {
    let c = k.0;
    let mtu = c.ports.iter().map(|p| p.mtu).max().unwrap_or(1500);
    let pools = pools_mib(mtu, c.dpdk.tso && !c.zerocopy.send);
    let pages = if c.zerocopy.page_array { c.page_array_mb } else { SMALL_PAGE_ARRAY_MB } as u64;
    let need = pages + pools + DPDK_RESERVE_MB;
    let why = format!("the mbuf pools ({pools} MiB at mtu {mtu}) and {DPDK_RESERVE_MB} MiB for DPDK");
    if let (Some(host_mib), Some(m)) = (host.mem_mib, c.dpdk.memory_mb) {
        if u64::from(m) > host_mib {
            return Err(k.err("dpdk", "memory", format!("MiB in {need}..={host_mib} (this machine's memory)")));
        }
    }
    if let Some(host_mib) = host.mem_mib {
        if pages > host_mib && c.zerocopy.page_array && k.entry("freebsd.boot", "memsz_MB").is_some() {
            return Err(k.err("freebsd.boot", "memsz_MB", format!("MiB in 1..={host_mib} (this machine's memory)")));
        }
    }
    let (mem, mem_name) = match c.dpdk.memory_mb {
        Some(m) => (m, k.other("dpdk", "memory")),
        None if c.dpdk.no_huge => {
            (NO_HUGE_DEFAULT_MB, format!("[dpdk] memory (not set: {NO_HUGE_DEFAULT_MB} MiB with no_huge = 1)"))
        }
        // Hugepages without -m: DPDK takes what it needs as it goes.
        None => return Ok(()),
    };
    let mem = u64::from(mem);
    if mem >= need {
        return Ok(());
    }
    let memsz_set = c.zerocopy.page_array && k.entry("freebsd.boot", "memsz_MB").is_some();
    if memsz_set && (pages >= mem || c.dpdk.memory_mb.is_none()) {
        let room = mem.saturating_sub(pools + DPDK_RESERVE_MB);
        let range = if room >= 1 { format!("MiB in 1..={room}") } else { "a smaller page array".to_owned() };
        return Err(k.err(
            "freebsd.boot",
            "memsz_MB",
            format!("{range}: the page array, {why} must fit in {mem_name}"),
        ));
    }
    let top = host.mem_mib.map(|h| h.to_string()).unwrap_or_else(|| "4294967295".into());
    Err(k.err(
        "dpdk",
        "memory",
        format!(
            "MiB in {need}..={top}: it must hold the page array ({pages} MiB, {}), {why}",
            k.other("freebsd.boot", "memsz_MB")
        ),
    ))
}

/// One connection's send and receive buffers fit in the page array.
fn buffers(k: &Keys<'_>) -> Result<(), ConfigError> {
    let c = k.0;
    let pages_mb = if c.zerocopy.page_array { c.page_array_mb } else { SMALL_PAGE_ARRAY_MB };
    let max = (pages_mb << 20).min(super::keys::MAX_SOCK_BUFFER);
    let sizer = if c.zerocopy.page_array {
        k.other("freebsd.boot", "memsz_MB")
    } else {
        format!("{} ({SMALL_PAGE_ARRAY_MB} MiB)", k.other("zerocopy", "page_array"))
    };
    for (key, v) in [("net.inet.tcp.sendspace", c.tcp.send_buffer), ("net.inet.tcp.recvspace", c.tcp.recv_buffer)] {
        if v > max && k.entry("freebsd.sysctl", key).is_some() {
            return Err(k.err(
                "freebsd.sysctl",
                key,
                format!("bytes in 1024..={max}: one connection's buffer must fit in the page array sized by {sizer}"),
            ));
        }
    }
    Ok(())
}

/// A pcap file holds at least one whole record.
fn pcap(k: &Keys<'_>) -> Result<(), ConfigError> {
    let p = &k.0.pcap;
    let min = PCAP_FILE_HEADER + PCAP_RECORD_HEADER + u64::from(p.snaplen);
    if p.savelen < min {
        return Err(k.err(
            "pcap",
            "savelen",
            format!(
                "bytes in {}..=1099511627776: a file must hold its header and one record of {}",
                min.max(4096),
                k.other("pcap", "snaplen")
            ),
        ));
    }
    Ok(())
}

/// The `zcstat` socket of the highest process id fits `sun_path`.
fn control_socket(k: &Keys<'_>) -> Result<(), ConfigError> {
    let c = k.0;
    let procs = c.dpdk.lcore_mask.count_ones();
    let prefix = if procs > 1 { format!("{}-{}", c.dpdk.file_prefix, procs - 1) } else { c.dpdk.file_prefix.clone() };
    let path = crate::control::control_path(&prefix);
    let len = path.as_os_str().len();
    if len > SUN_PATH_MAX {
        let spare = c.dpdk.file_prefix.len().saturating_sub(len - SUN_PATH_MAX);
        return Err(k.err(
            "dpdk",
            "file_prefix",
            format!(
                "a plain name of at most {spare} bytes here: the zcstat socket {} would be {len} bytes, more \
                 than {SUN_PATH_MAX} (sun_path; the directory is ZCSTACK_RUN_DIR or /tmp/zcstack)",
                path.display()
            ),
        ));
    }
    Ok(())
}
