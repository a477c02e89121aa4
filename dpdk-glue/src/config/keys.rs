//! The schema: every section and key zcstack knows, their types, defaults
//! and the F-Stack keys it accepts without implementing.

use std::net::Ipv4Addr;

use zcstack::{Duration, TcpConfig};

use super::fstack::{self, NOT_IMPLEMENTED};
use super::ini::{Entry, Section};
use super::{
    Config, ConfigError, DpdkSection, Notice, PcapSection, PortSection, ReassemblySection, VdevSection, ZeroCopySection,
};
use crate::device::TxPrefetch;
use crate::impair::ImpairConfig;

/// Reads the keys of one section; what is left at the end is unknown.
pub(super) struct Reader<'a> {
    file: &'a str,
    section: &'a Section,
    used: Vec<bool>,
    known: &'static [&'static str],
}

type Parsed<T> = Result<T, &'static str>;

impl<'a> Reader<'a> {
    pub(super) fn new(file: &'a str, section: &'a Section, known: &'static [&'static str]) -> Self {
        Reader { file, section, used: vec![false; section.entries.len()], known }
    }

    pub(super) fn entry(&mut self, key: &str) -> Option<&'a Entry> {
        let i = self.section.entries.iter().position(|e| e.key == key)?;
        self.used[i] = true;
        Some(&self.section.entries[i])
    }

    fn err(&self, e: &Entry, allowed: &str) -> ConfigError {
        ConfigError {
            file: self.file.to_owned(),
            line: Some(e.line),
            msg: format!("[{}] {} = \"{}\": expected {allowed}", self.section.name, e.key, e.value),
        }
    }

    /// The value of `key` parsed by `f`, or `None` if absent.
    fn get<T>(&mut self, key: &str, f: impl Fn(&str) -> Parsed<T>) -> Result<Option<T>, ConfigError> {
        match self.entry(key) {
            None => Ok(None),
            Some(e) => f(&e.value).map(Some).map_err(|allowed| self.err(e, allowed)),
        }
    }

    pub(super) fn or<T>(&mut self, key: &str, default: T, f: impl Fn(&str) -> Parsed<T>) -> Result<T, ConfigError> {
        Ok(self.get(key, f)?.unwrap_or(default))
    }

    fn required<T>(&mut self, key: &str, what: &str, f: impl Fn(&str) -> Parsed<T>) -> Result<T, ConfigError> {
        self.get(key, f)?.ok_or_else(|| ConfigError {
            file: self.file.to_owned(),
            line: Some(self.section.line),
            msg: format!("[{}] missing required key \"{key}\" ({what})", self.section.name),
        })
    }

    /// F-Stack keys zcstack accepts without implementing: into the report.
    pub(super) fn not_implemented(&mut self, report: &mut Vec<Notice>, keys: &[(&str, &str)]) {
        for (k, why) in keys {
            if let Some(e) = self.entry(k) {
                report.push(Notice {
                    line: e.line,
                    key: format!("[{}] {k}", self.section.name),
                    msg: format!("{NOT_IMPLEMENTED}: {why}"),
                });
            }
        }
    }

    /// Errors on the first key nobody read, suggesting the nearest known one.
    pub(super) fn finish(self) -> Result<(), ConfigError> {
        let Some(i) = self.used.iter().position(|u| !u) else { return Ok(()) };
        let e = &self.section.entries[i];
        let hint = nearest(&e.key, self.known).map(|k| format!("; did you mean \"{k}\"?")).unwrap_or_default();
        Err(ConfigError {
            file: self.file.to_owned(),
            line: Some(e.line),
            msg: format!(
                "[{}] unknown key \"{}\"{hint} (known keys: {})",
                self.section.name,
                e.key,
                self.known.join(", ")
            ),
        })
    }
}

/// The known name closest to `s` by edit distance, if close enough to be a typo.
pub(super) fn nearest<'k>(s: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(&s.to_ascii_lowercase(), &k.to_ascii_lowercase()), *k))
        .filter(|(d, k)| *d <= (k.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

pub(super) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb)).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

// ----- value parsers (the Err is what is allowed) -----

pub(super) fn bool01(v: &str) -> Parsed<bool> {
    match v {
        "0" => Ok(false),
        "1" => Ok(true),
        _ => Err("0 or 1"),
    }
}

fn uint<T: TryFrom<u64>>(v: &str) -> Option<T> {
    v.parse::<u64>().ok().and_then(|x| T::try_from(x).ok())
}

fn ipv4(v: &str) -> Parsed<Ipv4Addr> {
    v.parse().map_err(|_| "an IPv4 address like 192.0.2.2")
}

fn netmask(v: &str) -> Parsed<u8> {
    let m = u32::from(ipv4(v).map_err(|_| "a netmask like 255.255.255.0")?);
    let len = m.leading_ones();
    if m.checked_shl(len).unwrap_or(0) != 0 {
        return Err("a contiguous netmask like 255.255.255.0");
    }
    Ok(len as u8)
}

fn hex_mask(v: &str) -> Parsed<u64> {
    let h = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")).unwrap_or(v);
    match u64::from_str_radix(h, 16) {
        Ok(m) if m != 0 => Ok(m),
        _ => Err("a non-zero hex lcore mask of at most 64 bits (CPUs 0-63) like 1 or 0x3"),
    }
}

/// `0,2-3` style lists.
fn list<T: TryFrom<u64> + Copy>(v: &str) -> Option<Vec<T>> {
    let mut out = Vec::new();
    for part in v.split(',').map(str::trim) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u64, u64) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if a > b || b - a > 4096 {
                    return None;
                }
                for x in a..=b {
                    out.push(T::try_from(x).ok()?);
                }
            }
            None => out.push(T::try_from(part.parse::<u64>().ok()?).ok()?),
        }
    }
    Some(out)
}

fn mac(v: &str) -> Parsed<[u8; 6]> {
    let parts: Vec<&str> = v.split(':').collect();
    let mut m = [0u8; 6];
    if parts.len() != 6 {
        return Err("a MAC address like 02:00:00:00:00:01");
    }
    for (o, p) in m.iter_mut().zip(parts) {
        *o = u8::from_str_radix(p, 16).map_err(|_| "a MAC address like 02:00:00:00:00:01")?;
    }
    Ok(m)
}

fn text(v: &str) -> Parsed<String> {
    if v.is_empty() || v.chars().any(char::is_control) {
        Err("a non-empty value without control characters")
    } else {
        Ok(v.to_owned())
    }
}

/// `lo..=hi` of an unsigned integer type; the caller's message states the range.
fn uint_in<T: TryFrom<u64> + PartialOrd>(v: &str, lo: T, hi: T) -> Option<T> {
    uint::<T>(v).filter(|x| *x >= lo && *x <= hi)
}

/// A unicast host address: what a port may be.
fn unicast_ipv4(v: &str) -> Parsed<Ipv4Addr> {
    const ALLOWED: &str =
        "a unicast IPv4 address like 192.0.2.2 (not 0.0.0.0, 127.0.0.0/8, 224.0.0.0/4 or 255.255.255.255)";
    let a = ipv4(v).map_err(|_| ALLOWED)?;
    if a.is_unspecified() || a.is_loopback() || a.is_multicast() || a.is_broadcast() {
        return Err(ALLOWED);
    }
    Ok(a)
}

/// What a gateway may be: a unicast address, or 0.0.0.0 for none.
fn gateway_ipv4(v: &str) -> Parsed<Ipv4Addr> {
    const ALLOWED: &str = "0.0.0.0 (none) or a unicast IPv4 address like 192.0.2.1 in the port's subnet";
    let a = ipv4(v).map_err(|_| ALLOWED)?;
    if a.is_unspecified() {
        return Ok(a);
    }
    unicast_ipv4(v).map_err(|_| ALLOWED)
}

/// Longest network interface name, bytes (Linux `IFNAMSIZ` - 1).
pub(super) const IFNAME_MAX: usize = 15;

/// A network interface name as Linux accepts it (`dev_valid_name`), which
/// also goes into DPDK devargs (so no `,` or `=`).
fn ifname(v: &str) -> Parsed<String> {
    const ALLOWED: &str = "an interface name of 1 to 15 bytes (IFNAMSIZ-1) without '/', ':', ',', '=' or \
                           whitespace, not '.' or '..'";
    let bad = |c: char| c == '/' || c == ':' || c == ',' || c == '=' || c.is_whitespace() || c.is_control();
    if v.is_empty() || v.len() > IFNAME_MAX || v == "." || v == ".." || v.chars().any(bad) {
        return Err(ALLOWED);
    }
    Ok(v.to_owned())
}

/// Longest Unix socket path, bytes (`sun_path` is 108 bytes with its NUL).
pub(super) const SUN_PATH_MAX: usize = 107;

/// A Unix socket path that fits `sun_path` and can go into DPDK devargs.
fn socket_path(v: &str) -> Parsed<String> {
    const ALLOWED: &str = "a Unix socket path of 1 to 107 bytes (sun_path) without ',' or control characters \
                           (it goes into DPDK devargs)";
    if v.is_empty() || v.len() > SUN_PATH_MAX || v.contains(',') || v.chars().any(char::is_control) {
        return Err(ALLOWED);
    }
    Ok(v.to_owned())
}

/// A directory path (`PATH_MAX` is 4096 bytes with its NUL).
fn dir_path(v: &str) -> Parsed<String> {
    if v.len() >= 4096 {
        return Err("a directory path shorter than 4096 bytes (PATH_MAX)");
    }
    text(v).map_err(|_| "a non-empty directory path without control characters")
}

/// Longest `[dpdk] file_prefix`, bytes: process N > 0 of a group runs with
/// `<file_prefix>-N` (N < 64), which must stay within the EAL's limit.
pub(super) const FILE_PREFIX_MAX: usize = crate::eal::FILE_PREFIX_MAX - 3;
/// What `[dpdk] file_prefix` may be.
pub(super) const FILE_PREFIX_ALLOWED: &str = "a plain name of 1 to 61 bytes: letters, digits, '_', '-' and '.', \
     not starting with '.' or '-' (no '/', no '..': it names files under the runtime directory; processes \
     N > 0 add -N)";

/// Largest receive or send buffer, bytes: the largest window RFC 7323
/// §2.3 can advertise (65535 << 14); more could never be in flight.
pub(super) const MAX_SOCK_BUFFER: usize = 65_535 << 14;
/// Largest page array, MiB: its buffers are counted in 32 bits, and at the
/// smallest buffer size (256 B) 2^32 - 1 of them hold just under 1 TiB.
pub(super) const MAX_MEMSZ_MB: usize = (1 << 20) - 1;

const DPDK_KEYS: &[&str] = &[
    "lcore_mask",
    "channel",
    "promiscuous",
    "numa_on",
    "tx_csum_offoad_skip",
    "tx_csum_offload_skip",
    "tso",
    "vlan_strip",
    "idle_sleep",
    "pkt_tx_delay",
    "symmetric_rss",
    "port_list",
    "nb_vdev",
    "no_huge",
    "memory",
    "file_prefix",
    "log_level",
    "base_virtaddr",
    "vlan_filter",
    "allow",
    "nb_bond",
    "fstack_log_level",
    "fstack_log_file_prefix",
    "thread_mode",
    "lro",
    "mtu_enable",
    "max_mtu",
    "mbuf_mode",
    "stage_cycles",
    "tx_free_batch",
];
const PORT_KEYS: &[&str] = &[
    "addr",
    "netmask",
    "broadcast",
    "gateway",
    "lcore_list",
    "if_name",
    "mtu",
    "addr6",
    "prefix_len",
    "gateway6",
    "vip_addr",
    "vip_addr6",
    "vip_ifname",
    "vip_prefix_len",
    "ipfw_pr",
    "slave_port_list",
];
const VDEV_KEYS: &[&str] = &["driver", "path", "iface", "queues", "queue_size", "mac", "cq", "devargs"];
const PCAP_KEYS: &[&str] = &["enable", "snaplen", "savelen", "savepath", "timestamp_precision"];
const BOOT_KEYS: &[&str] = &["memsz_MB", "hz", "fd_reserve", "physmem", "tcp_ecn"];
const ZC_KEYS: &[&str] = &[
    "page_array",
    "send",
    "recv",
    "min_write",
    "buf_size",
    "recv_budget",
    "recv_copybreak",
    "send_low_water",
    "send_reserve",
    "send_share_floor",
    "payload_prefetch",
];
const TCP_KEYS: &[&str] = &[
    "min_rto_us",
    "initial_rto_ms",
    "nodelay",
    "timestamps",
    "syn_cookies",
    "initial_cwnd",
    "window_scale",
    "keepalive_idle_s",
    "keepalive_interval_s",
    "keepalive_probes",
    "max_ooo_segments",
    "invalid_ack_interval_ms",
    "invalid_ack_burst",
    "challenge_ack_limit",
    "delayed_ack_ms",
    "syn_retries",
    "min_path_mtu",
    "gso_max",
    "output_pass_frames",
];
const IMPAIR_KEYS: &[&str] = &["loss", "reorder", "delay_us", "seed"];
const SECTIONS: &[&str] = &[
    "dpdk",
    "portN",
    "vdevN",
    "vlanN",
    "bondN",
    "pcap",
    "rss_check",
    "kni",
    "freebsd.boot",
    "freebsd.sysctl",
    "zerocopy",
    "tcp",
    "impair",
];

/// Builds the typed configuration from the parsed sections.
pub(super) fn build(file: &str, sections: &[Section]) -> Result<Config, ConfigError> {
    let mut report = Vec::new();
    let mut dpdk = None;
    let mut ports = Vec::new();
    let mut vdevs = Vec::new();
    let mut pcap = PcapSection { enable: false, snaplen: 96, savelen: 16 << 20, savepath: ".".into() };
    let mut page_array_mb = 256;
    let mut zerocopy = ZeroCopySection {
        page_array: true,
        send: true,
        recv: true,
        min_write: 4096,
        buf_size: 4096,
        recv_budget: 50,
        recv_copybreak: 256,
        send_low_water: 25,
        send_reserve: 5,
        send_share_floor: 64 * 1024,
        tx_prefetch: TxPrefetch::Auto,
    };
    let mut tcp_section = None;
    // Lines of the [dpdk] keys checked against other sections below (the
    // key's line, else the section's): every startup error names its line.
    let mut port_list_line = None;
    let mut nb_vdev_line = None;
    let mut impair = ImpairConfig::default();
    // Engine settings the FreeBSD sections map (`zcstack::sysctl`).
    let mut engine = zcstack::StackConfig::new(zcstack::IfaceConfig {
        mac: zcstack::wire::EthernetAddress([0; 6]),
        addr: Ipv4Addr::UNSPECIFIED,
        prefix_len: 0,
        gateway: None,
    });
    let mut rss_check_src = None;
    for s in sections {
        let numbered = |prefix: &str| s.name.strip_prefix(prefix).and_then(|n| n.parse::<u16>().ok());
        match s.name.as_str() {
            "dpdk" => {
                let line_of = |key: &str| s.entries.iter().rev().find(|e| e.key == key).map_or(s.line, |e| e.line);
                port_list_line = Some(line_of("port_list"));
                nb_vdev_line = Some(line_of("nb_vdev"));
                dpdk = Some(dpdk_section(file, s, &mut report)?);
            }
            "pcap" => pcap = pcap_section(file, s, &mut report)?,
            "freebsd.boot" => {
                let mut r = Reader::new(file, s, BOOT_KEYS);
                page_array_mb = r.or("memsz_MB", 256, |v| {
                    uint_in::<usize>(v, 1, MAX_MEMSZ_MB)
                        .ok_or("a size in MiB, 1..=1048575 (the page array counts its buffers in 32 bits)")
                })?;
                r.not_implemented(
                    &mut report,
                    &[
                        ("hz", "FreeBSD timer frequency: zcstack's timers run in microseconds from the TSC"),
                        ("fd_reserve", "no FreeBSD file table in zcstack"),
                        ("physmem", "no FreeBSD kernel memory in zcstack"),
                        ("tcp_ecn", "ECN (RFC 3168) is not implemented"),
                    ],
                );
                // Any other FreeBSD tunable loads, as in F-Stack.
                fstack::freebsd_section(file, s, BOOT_KEYS, &mut engine, &mut report)?;
            }
            "freebsd.sysctl" => fstack::freebsd_section(file, s, &[], &mut engine, &mut report)?,
            "rss_check" => rss_check_src = Some(s),
            "zerocopy" => zerocopy = zc_section(file, s)?,
            "impair" => impair = impair_section(file, s)?,
            "tcp" => tcp_section = Some(s),
            "kni" => fstack::unimplemented_section(file, s, "kni", &mut report)?,
            _ if numbered("port").is_some() => {
                ports.push(port_section(file, s, numbered("port").unwrap_or(0), &mut report)?)
            }
            _ if numbered("vdev").is_some() => vdevs.push(vdev_section(file, s, numbered("vdev").unwrap_or(0))?),
            _ if numbered("bond").is_some() => fstack::unimplemented_section(file, s, "bond", &mut report)?,
            _ if numbered("vlan").is_some() => fstack::unimplemented_section(file, s, "vlan", &mut report)?,
            other => {
                let hint = nearest(other, SECTIONS).map(|k| format!("; did you mean [{k}]?")).unwrap_or_default();
                return Err(ConfigError {
                    file: file.to_owned(),
                    line: Some(s.line),
                    msg: format!("unknown section [{other}]{hint} (known: {})", SECTIONS.join(", ")),
                });
            }
        }
    }
    let mut tcp = engine.tcp;
    let reassembly = ReassemblySection {
        max_fragments: engine.reassembly_max_fragments,
        max_datagrams: engine.reassembly_datagrams,
    };
    // [tcp] last: its keys override what the sysctls set.
    if let Some(s) = tcp_section {
        tcp_keys(file, s, &mut tcp)?;
    }
    let dpdk = dpdk.ok_or_else(|| ConfigError {
        file: file.to_owned(),
        line: None,
        msg: "missing required section [dpdk]".into(),
    })?;
    if ports.is_empty() {
        return Err(ConfigError {
            file: file.to_owned(),
            line: None,
            msg: "missing required section [port0] (the port's addr, netmask, broadcast, gateway)".into(),
        });
    }
    for p in &dpdk.port_list {
        if !ports.iter().any(|x| x.id == *p) {
            return Err(ConfigError {
                file: file.to_owned(),
                line: port_list_line,
                msg: format!("[dpdk] port_list names port {p} but there is no [port{p}] section"),
            });
        }
    }
    if vdevs.len() != dpdk.nb_vdev as usize {
        return Err(ConfigError {
            file: file.to_owned(),
            line: nb_vdev_line,
            msg: format!("[dpdk] nb_vdev = {} but the file has {} [vdevN] sections", dpdk.nb_vdev, vdevs.len()),
        });
    }
    ports.sort_by_key(|p| p.id);
    vdevs.sort_by_key(|v| v.id);
    lcore_lists(file, sections, &dpdk, &mut ports)?;
    let rss_check = match rss_check_src {
        None => fstack::RssCheckSection::default(),
        Some(s) => {
            let addr_of = |id: u16| {
                dpdk.port_list.contains(&id).then(|| ports.iter().find(|p| p.id == id).map(|p| p.addr)).flatten()
            };
            fstack::rss_check_section(file, s, addr_of, &mut report)?
        }
    };
    if !rss_check.enable {
        // F-Stack's default is off; with several lcores on a port zcstack
        // keeps the check on, since software steering delivers each reply to
        // the lcore its RSS hash names.
        if let Some(p) = ports.iter().find(|p| dpdk.port_list.contains(&p.id) && p.lcore_list.len() > 1) {
            // At `[rss_check] enable` when the file has it; otherwise at what
            // gave the port several lcores: its lcore_list, else lcore_mask.
            let entry = |sec: &str, key: &str| {
                sections.iter().find(|s| s.name == sec).and_then(|s| s.entries.iter().find(|e| e.key == key))
            };
            let port = format!("port{}", p.id);
            let (line, key) = match rss_check_src {
                Some(s) => (
                    s.entries.iter().find(|e| e.key == "enable").map_or(s.line, |e| e.line),
                    "[rss_check] enable".to_owned(),
                ),
                None => match entry(&port, "lcore_list").or_else(|| entry("dpdk", "lcore_mask")) {
                    Some(e) if e.key == "lcore_list" => (e.line, format!("[{port}] lcore_list")),
                    Some(e) => (e.line, "[dpdk] lcore_mask".to_owned()),
                    None => (sections.iter().find(|s| s.name == "dpdk").map_or(0, |s| s.line), "[dpdk]".to_owned()),
                },
            };
            report.push(Notice {
                line,
                key,
                msg: format!(
                    "{}0 (F-Stack's default), but [port{}] has {} lcores: zcstack checks RSS anyway, so an outbound \
                     connect picks a local port whose replies hash to its own lcore (software steering delivers \
                     every frame to the lcore its hash names; without the check a connection would be answered on \
                     another lcore)",
                    if rss_check_src.is_some() { "" } else { "[rss_check] enable (no such section) is " },
                    p.id,
                    p.lcore_list.len()
                ),
            });
        }
    }
    Ok(Config {
        file: file.to_owned(),
        dpdk,
        ports,
        vdevs,
        pcap,
        page_array_mb,
        tcp,
        zerocopy,
        impair,
        reassembly,
        report,
        source: Vec::new(),
        rss_check,
        engine,
    })
}

/// `[portN] lcore_list`: F-Stack's default is every lcore of `lcore_mask`;
/// a list names lcores of `lcore_mask`, each once (queue `q` of the port is
/// served by the `q`-th, ascending, as F-Stack sorts it).
fn lcore_lists(
    file: &str,
    sections: &[Section],
    dpdk: &DpdkSection,
    ports: &mut [PortSection],
) -> Result<(), ConfigError> {
    let mask: Vec<u32> = (0..64).filter(|b| dpdk.lcore_mask >> b & 1 == 1).collect();
    let mask_at = sections
        .iter()
        .find(|s| s.name == "dpdk")
        .and_then(|s| s.entries.iter().find(|e| e.key == "lcore_mask"))
        .map_or("(default 1)".to_owned(), |e| format!("= {} (line {})", e.value, e.line));
    for p in ports.iter_mut() {
        if p.lcore_list.is_empty() {
            p.lcore_list = mask.clone();
            continue;
        }
        let name = format!("port{}", p.id);
        let e = sections.iter().find(|s| s.name == name).and_then(|s| s.entries.iter().find(|e| e.key == "lcore_list"));
        let err = |msg: String| ConfigError { file: file.to_owned(), line: e.map(|e| e.line), msg };
        let value = e.map(|e| e.value.as_str()).unwrap_or_default();
        if let Some(l) = p.lcore_list.iter().find(|l| !mask.contains(l)) {
            return Err(err(format!(
                "[{name}] lcore_list = \"{value}\": lcore {l} is not in [dpdk] lcore_mask {mask_at}, whose lcores are \
                 {mask:?}; expected lcores of lcore_mask like 0 or 0-1,3 (default: all of them)"
            )));
        }
        let mut sorted = p.lcore_list.clone();
        sorted.sort_unstable();
        if sorted.windows(2).any(|w| w[0] == w[1]) {
            return Err(err(format!(
                "[{name}] lcore_list = \"{value}\": expected each lcore once (one queue per lcore), lcores of \
                 lcore_mask like 0 or 0-1,3"
            )));
        }
        p.lcore_list = sorted;
    }
    Ok(())
}

fn dpdk_section(file: &str, s: &Section, report: &mut Vec<Notice>) -> Result<DpdkSection, ConfigError> {
    let mut r = Reader::new(file, s, DPDK_KEYS);
    let skip_sic = r.get("tx_csum_offoad_skip", bool01)?;
    let skip = r.get("tx_csum_offload_skip", bool01)?;
    let d = DpdkSection {
        lcore_mask: r.or("lcore_mask", 1, hex_mask)?,
        channel: r.or("channel", 4, |v| uint(v).filter(|&c| (1..=32).contains(&c)).ok_or("1..=32 memory channels"))?,
        promiscuous: r.or("promiscuous", true, bool01)?,
        tx_csum_offload_skip: skip.or(skip_sic).unwrap_or(false),
        tso: r.or("tso", false, bool01)?,
        idle_sleep_us: r
            .or("idle_sleep", 0, |v| uint_in(v, 0, 999_999).ok_or("microseconds in 0..=999999 (usleep's range)"))?,
        pkt_tx_delay_us: r
            .or("pkt_tx_delay", 100, |v| uint(v).filter(|&d| d <= 100).ok_or("microseconds in 0..=100"))?,
        port_list: r.or("port_list", vec![0], |v| {
            list::<u16>(v)
                .filter(|l| l.iter().enumerate().all(|(i, p)| !l[..i].contains(p)))
                .ok_or("ports like 0 or 0,1-2, each port once, 0..=65535")
        })?,
        nb_vdev: r.or("nb_vdev", 0, |v| uint(v).filter(|&n| n <= 64).ok_or("a count in 0..=64"))?,
        no_huge: r.or("no_huge", false, bool01)?,
        memory_mb: r.get("memory", |v| uint_in(v, 1, u32::MAX).ok_or("MiB in 1..=4294967295"))?,
        file_prefix: r.or("file_prefix", "zcstack".into(), |v| {
            crate::eal::check_file_prefix(v)
                .ok()
                .filter(|()| v.len() <= FILE_PREFIX_MAX)
                .map(|()| v.to_owned())
                .ok_or(FILE_PREFIX_ALLOWED)
        })?,
        // F-Stack writes a number (RTE_LOG_*: 1 emergency .. 8 debug), zcstack a name: both reach the EAL.
        log_level: r.or("log_level", "warning".into(), |v| {
            (["emergency", "alert", "critical", "error", "warning", "notice", "info", "debug"].contains(&v)
                || uint_in::<u8>(v, 0, 8).is_some())
            .then(|| v.to_owned())
            .ok_or("emergency, alert, critical, error, warning, notice, info or debug, or F-Stack's number 0..=8")
        })?,
        numa_on: r.or("numa_on", true, bool01)?,
        symmetric_rss: r.or("symmetric_rss", false, bool01)?,
        base_virtaddr: r.get("base_virtaddr", |v| {
            let h = v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")).unwrap_or(v);
            u64::from_str_radix(h, 16)
                .ok()
                .filter(|&a| a != 0 && a % 4096 == 0 && a < 1 << 47)
                .ok_or("a page-aligned hex user-space address like 0x7f0000000000 (EAL --base-virtaddr)")
        })?,
        allow: r.or("allow", Vec::new(), fstack::allow_list)?,
        vlan_strip: r.or("vlan_strip", true, bool01)?,
        vlan_filter: r.or("vlan_filter", Vec::new(), |v| {
            list::<u16>(v)
                .filter(|l| l.iter().all(|&id| (1..=4094).contains(&id)))
                .ok_or("VLAN ids like 10 or 10-12,20 (1..=4094)")
        })?,
        stage_cycles: r.or("stage_cycles", false, bool01)?,
        tx_free_batch: r.or("tx_free_batch", crate::port::DEFAULT_TX_FREE_BATCH, |v| {
            uint_in(v, 0, 4096).ok_or("TX descriptors in 0..=4096 (0: the driver's default)")
        })?,
    };
    if let (Some(a), Some(b)) = (skip_sic, skip) {
        if a != b {
            let e = r.entry("tx_csum_offload_skip").expect("read above");
            return Err(ConfigError {
                file: file.to_owned(),
                line: Some(e.line),
                msg: "[dpdk] tx_csum_offload_skip contradicts tx_csum_offoad_skip (the same key, two spellings)".into(),
            });
        }
    }
    // zcstack has no VLANs: both switches load, and say so.
    r.not_implemented(
        report,
        &[
            ("vlan_strip", "VLAN is not implemented (no VLAN sub-interfaces): tagged frames are dropped and counted"),
            ("vlan_filter", "VLAN is not implemented (no VLAN sub-interfaces): no VLAN filter is programmed"),
            ("nb_bond", "link bonding is not implemented"),
            ("fstack_log_level", "zcstack logs through tracing (RUST_LOG), not F-Stack's log file"),
            ("fstack_log_file_prefix", "zcstack logs through tracing (RUST_LOG), not F-Stack's log file"),
            ("thread_mode", "zcstack runs one stack per lcore, never shared between threads"),
            ("lro", "large receive offload is not used"),
            ("mtu_enable", "zcstack sets the MTU per port ([portN] mtu)"),
            ("max_mtu", "zcstack sets the MTU per port ([portN] mtu)"),
            ("mbuf_mode", "zcstack chooses its mbuf layout from [zerocopy]"),
        ],
    );
    r.finish()?;
    Ok(d)
}

fn port_section(file: &str, s: &Section, id: u16, report: &mut Vec<Notice>) -> Result<PortSection, ConfigError> {
    let mut r = Reader::new(file, s, PORT_KEYS);
    let gateway = r.required("gateway", "the default gateway; 0.0.0.0 for none", gateway_ipv4)?;
    let p = PortSection {
        id,
        addr: r.required("addr", "the port's IPv4 address", unicast_ipv4)?,
        prefix_len: r.required("netmask", "the port's netmask, e.g. 255.255.255.0", netmask)?,
        broadcast: r.required("broadcast", "the subnet's broadcast address", ipv4)?,
        gateway: (!gateway.is_unspecified()).then_some(gateway),
        // Empty: not set, F-Stack's default (every lcore of lcore_mask), filled in by `lcore_lists`.
        lcore_list: r.or("lcore_list", Vec::new(), |v| {
            list(v)
                .filter(|l: &Vec<u32>| l.iter().all(|&c| c < 64))
                .ok_or("lcores of [dpdk] lcore_mask like 0 or 0-1,3 (lcore ids 0..=63, ranges a-b with a <= b)")
        })?,
        slave_port_list: r.get("slave_port_list", |v| {
            list::<u16>(v).ok_or("port ids like 0,1 or 0-1 (ranges a-b with a <= b, 0..=65535)")
        })?,
        if_name: r.get("if_name", ifname)?,
        mtu: r
            .or("mtu", 1500, |v| uint::<usize>(v).filter(|m| (576..=9600).contains(m)).ok_or("bytes, 576 to 9600"))?,
    };
    r.not_implemented(
        report,
        &[
            ("addr6", "IPv6 is not implemented"),
            ("prefix_len", "IPv6 is not implemented"),
            ("gateway6", "IPv6 is not implemented"),
            ("vip_addr", "virtual IPs are not implemented"),
            ("vip_addr6", "virtual IPs are not implemented"),
            ("vip_ifname", "virtual IPs are not implemented"),
            ("vip_prefix_len", "virtual IPs are not implemented"),
            ("ipfw_pr", "ipfw policy routing is not implemented"),
            ("slave_port_list", "link bonding is not implemented"),
        ],
    );
    r.finish()?;
    Ok(p)
}

fn vdev_section(file: &str, s: &Section, id: u16) -> Result<VdevSection, ConfigError> {
    const DRIVERS: &[&str] = &[
        "net_virtio_user",
        "net_vhost",
        "net_tap",
        "net_memif",
        "net_af_xdp",
        "net_af_packet",
        "net_ring",
        "net_null",
    ];
    let mut r = Reader::new(file, s, VDEV_KEYS);
    let v = VdevSection {
        id,
        driver: r.or("driver", "net_virtio_user".into(), |v| {
            DRIVERS.contains(&v).then(|| v.to_owned()).ok_or(
                "net_virtio_user, net_vhost, net_tap, net_memif, net_af_xdp, net_af_packet, net_ring or net_null",
            )
        })?,
        path: r.get("path", socket_path)?,
        iface: r.get("iface", ifname)?,
        queues: r.or("queues", 1, |v| uint(v).filter(|&q| (1..=16).contains(&q)).ok_or("1..=16 queues"))?,
        queue_size: r.or("queue_size", 256, |v| {
            uint::<u16>(v).filter(|q| q.is_power_of_two() && *q >= 64).ok_or("a power of two from 64 to 32768")
        })?,
        mac: r.get("mac", mac)?,
        cq: r.get("cq", bool01)?,
        devargs: r.get("devargs", text)?,
    };
    r.finish()?;
    if v.devargs.is_none()
        && matches!(v.driver.as_str(), "net_virtio_user" | "net_vhost" | "net_memif")
        && v.path.is_none()
    {
        return Err(ConfigError {
            file: file.to_owned(),
            line: Some(s.line),
            msg: format!("[{}] missing required key \"path\" (the {} socket path)", s.name, v.driver),
        });
    }
    Ok(v)
}

fn pcap_section(file: &str, s: &Section, report: &mut Vec<Notice>) -> Result<PcapSection, ConfigError> {
    let mut r = Reader::new(file, s, PCAP_KEYS);
    let p = PcapSection {
        enable: r.or("enable", false, bool01)?,
        snaplen: r
            .or("snaplen", 96, |v| uint(v).filter(|&n| (64..=65_535).contains(&n)).ok_or("bytes in 64..=65535"))?,
        savelen: r.or("savelen", 16 << 20, |v| {
            uint_in(v, 4096, 1 << 40).ok_or("bytes in 4096..=1099511627776 (1 TiB per file)")
        })?,
        savepath: r.or("savepath", ".".into(), dir_path)?,
    };
    r.not_implemented(report, &[("timestamp_precision", "zcstack's pcap files keep microseconds")]);
    r.finish()?;
    Ok(p)
}

fn zc_section(file: &str, s: &Section) -> Result<ZeroCopySection, ConfigError> {
    let mut r = Reader::new(file, s, ZC_KEYS);
    let z = ZeroCopySection {
        page_array: r.or("page_array", true, bool01)?,
        send: r.or("send", true, bool01)?,
        recv: r.or("recv", true, bool01)?,
        min_write: r.or("min_write", 4096, |v| {
            uint_in(v, 0, MAX_SOCK_BUFFER).ok_or("bytes in 0..=1073725440 (0: never copy)")
        })?,
        buf_size: r.or("buf_size", 4096, |v| {
            uint::<usize>(v)
                .filter(|b| b.is_power_of_two() && (256..=4096).contains(b))
                .ok_or("256, 512, 1024, 2048 or 4096")
        })?,
        recv_budget: r.or("recv_budget", 50, |v| {
            uint::<usize>(v).filter(|p| *p <= 90).ok_or("a percentage of the RX pool, 0 to 90 (0: always copy)")
        })?,
        recv_copybreak: r.or("recv_copybreak", 256, |v| {
            uint_in::<usize>(v, 0, 65_535).ok_or("bytes in 0..=65535 (0: every payload stays in its mbuf)")
        })?,
        send_low_water: r.or("send_low_water", 25, |v| {
            uint_in::<usize>(v, 0, 90).ok_or("a percentage of the page array in 0..=90 (0: no send pressure)")
        })?,
        send_reserve: r
            .or("send_reserve", 5, |v| uint_in::<usize>(v, 0, 50).ok_or("a percentage of the page array in 0..=50"))?,
        send_share_floor: r.or("send_share_floor", 64 * 1024, |v| {
            uint_in::<usize>(v, 4096, MAX_SOCK_BUFFER).ok_or("bytes in 4096..=1073725440")
        })?,
        tx_prefetch: r.or("payload_prefetch", TxPrefetch::Auto, |v| TxPrefetch::parse(v).ok_or("auto, 0 or 1"))?,
    };
    r.finish()?;
    if z.send && !z.page_array {
        let e = s.entries.iter().find(|e| e.key == "page_array").map_or(s.line, |e| e.line);
        return Err(ConfigError {
            file: file.to_owned(),
            line: Some(e),
            msg: "[zerocopy] send = 1 needs page_array = 1 (zero-copy TX sends from the page array)".into(),
        });
    }
    Ok(z)
}

/// A percentage with up to four decimals, in parts per million.
fn percent_ppm(v: &str) -> Parsed<u32> {
    const ALLOWED: &str = "a percentage from 0 to 100, like 3 or 0.5";
    let x: f64 = v.strip_suffix('%').unwrap_or(v).trim().parse().map_err(|_| ALLOWED)?;
    if !(0.0..=100.0).contains(&x) {
        return Err(ALLOWED);
    }
    Ok((x * 10_000.0).round() as u32)
}

fn impair_section(file: &str, s: &Section) -> Result<ImpairConfig, ConfigError> {
    let mut r = Reader::new(file, s, IMPAIR_KEYS);
    let c = ImpairConfig {
        loss_ppm: r.or("loss", 0, percent_ppm)?,
        reorder_ppm: r.or("reorder", 0, percent_ppm)?,
        delay_us: r.or("delay_us", 0, |v| uint(v).filter(|&d| d <= 10_000_000).ok_or("microseconds, 0 to 10000000"))?,
        seed: r.or("seed", 1, |v| uint(v).ok_or("an unsigned 64-bit integer"))?,
    };
    r.finish()?;
    if c.reorder_ppm > 0 && c.delay_us == 0 {
        let line = s.entries.iter().find(|e| e.key == "reorder").map_or(s.line, |e| e.line);
        return Err(ConfigError {
            file: file.to_owned(),
            line: Some(line),
            msg: "[impair] reorder needs delay_us > 0 (reordered frames overtake delayed ones, as in netem)".into(),
        });
    }
    Ok(c)
}

fn tcp_keys(file: &str, s: &Section, tcp: &mut TcpConfig) -> Result<(), ConfigError> {
    let mut r = Reader::new(file, s, TCP_KEYS);
    if let Some(us) = r.get("min_rto_us", |v| {
        uint_in::<u64>(v, 1000, 60_000_000).ok_or("microseconds in 1000..=60000000 (up to the 60 s maximum RTO)")
    })? {
        tcp.min_rto = Duration::from_micros(us);
    }
    if let Some(ms) = r.get("initial_rto_ms", |v| {
        uint_in::<u64>(v, 1, 60_000).ok_or("milliseconds in 1..=60000 (up to the 60 s maximum RTO)")
    })? {
        tcp.initial_rto = Duration::from_millis(ms);
    }
    if let Some(b) = r.get("nodelay", bool01)? {
        tcp.nodelay = b;
    }
    if let Some(b) = r.get("timestamps", bool01)? {
        tcp.timestamps = b;
    }
    if let Some(b) = r.get("syn_cookies", bool01)? {
        tcp.syn_cookies = b;
    }
    if let Some(n) =
        r.get("initial_cwnd", |v| uint(v).filter(|&n| (1..=64).contains(&n)).ok_or("segments in 1..=64"))?
    {
        tcp.initial_cwnd_segments = n;
    }
    if let Some(n) = r.get("window_scale", |v| uint(v).filter(|&n| n <= 14).ok_or("a shift in 0..=14"))? {
        tcp.window_scale = n;
    }
    if let Some(s) = r.get("keepalive_idle_s", |v| uint_in::<u64>(v, 1, 32_767).ok_or("seconds in 1..=32767"))? {
        tcp.keepalive_idle = Duration::from_secs(s);
    }
    if let Some(s) = r.get("keepalive_interval_s", |v| uint_in::<u64>(v, 1, 32_767).ok_or("seconds in 1..=32767"))? {
        tcp.keepalive_interval = Duration::from_secs(s);
    }
    if let Some(n) = r.get("keepalive_probes", |v| uint_in(v, 1, 127).ok_or("a count in 1..=127"))? {
        tcp.keepalive_probes = n;
    }
    if let Some(n) = r.get("max_ooo_segments", |v| uint_in(v, 1, 65_535).ok_or("a count in 1..=65535"))? {
        tcp.max_ooo_segments = n;
    }
    if let Some(ms) = r.get("invalid_ack_interval_ms", |v| {
        uint::<u64>(v).filter(|&m| m <= 60_000).ok_or("milliseconds in 0..=60000 (0: no limit)")
    })? {
        tcp.invalid_ack_interval = Duration::from_millis(ms);
    }
    if let Some(n) = r.get("invalid_ack_burst", |v| {
        uint(v).filter(|&n| (1..=1_000_000).contains(&n)).ok_or("a count in 1..=1000000")
    })? {
        tcp.invalid_ack_burst = n;
    }
    if let Some(n) = r.get("challenge_ack_limit", |v| {
        uint(v).filter(|&n| (1..=1_000_000_000).contains(&n)).ok_or("a count per second in 1..=1000000000")
    })? {
        tcp.challenge_ack_limit = n;
    }
    if let Some(ms) = r.get("delayed_ack_ms", |v| {
        uint::<u64>(v).filter(|&m| m <= 500).ok_or("milliseconds in 0..=500 (RFC 1122 4.2.3.2; 0: ACK every segment)")
    })? {
        tcp.delayed_ack = (ms > 0).then(|| Duration::from_millis(ms));
    }
    if let Some(n) = r.get("syn_retries", |v| uint_in(v, 1, 127).ok_or("a count in 1..=127"))? {
        tcp.syn_retries = n;
    }
    if let Some(n) = r.get("min_path_mtu", |v| uint_in(v, 68, 65_535).ok_or("bytes in 68..=65535 (RFC 1191)"))? {
        tcp.min_path_mtu = n;
    }
    if let Some(n) = r.get("gso_max", |v| uint_in(v, 0, 65_535).ok_or("bytes in 0..=65535 (0: segment by segment)"))? {
        tcp.gso_max = n;
    }
    if let Some(n) =
        r.get("output_pass_frames", |v| uint_in(v, 0, 65_535).ok_or("frames in 0..=65535 (0: no limit)"))?
    {
        tcp.output_pass_frames = n;
    }
    r.finish()
}
