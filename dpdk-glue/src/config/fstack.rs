//! The F-Stack sections and keys zcstack reads but does not (all) run:
//! `[rss_check]`, `[vlanN]`, `[bondN]`, `[kni]`, the `[dpdk] allow` list,
//! and the FreeBSD tunables of `[freebsd.boot]` and `[freebsd.sysctl]`.
//!
//! The rule for each: every key F-Stack 1.25 reads loads; what zcstack
//! implements changes its setting; the rest is a [`Notice`] in the load
//! report ("F-Stack key not implemented"), never silently dropped. Keys
//! F-Stack does not know in these sections are errors naming the nearest.

use std::net::Ipv4Addr;

use zcstack::StackConfig;

use super::ini::Section;
use super::keys::Reader;
use super::{ConfigError, Notice};
use crate::plan::RssTblEntry;

/// What the load report says of a key zcstack accepts but does not run.
pub(super) const NOT_IMPLEMENTED: &str = "F-Stack key not implemented";

/// One `[dpdk] allow` entry: a PCI device the EAL may probe, with the
/// driver options that follow it (EAL `-a <addr>[,<opt>...]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllowEntry {
    /// PCI address as written, `[domain:]bus:device.function`.
    pub pci: String,
    /// Driver options, `key=value` each, in file order.
    pub options: Vec<String>,
}

impl AllowEntry {
    /// The EAL `-a` argument: the address and its options joined by `,`.
    pub fn eal_arg(&self) -> String {
        std::iter::once(self.pci.as_str()).chain(self.options.iter().map(String::as_str)).collect::<Vec<_>>().join(",")
    }
}

/// What `[dpdk] allow` may be.
pub(super) const ALLOW_ALLOWED: &str = "PCI addresses like 0000:02:00.0 or 02:00.0, separated by ',', each \
     optionally followed by its driver options key=value (e.g. 0000:02:00.0,txq_inline_max=128,0000:03:00.0)";

/// F-Stack splits `allow` at every `,` and passes each piece to the EAL as
/// its own `--allow`; a piece that is not a PCI address is a driver option
/// and belongs to the address before it (so `0000:02:00.0,rxq_pkt_pad_en=1`
/// keeps its option instead of becoming a second, bogus allow entry).
pub(super) fn allow_list(v: &str) -> Result<Vec<AllowEntry>, &'static str> {
    let mut out: Vec<AllowEntry> = Vec::new();
    for piece in v.split(',').map(str::trim) {
        if is_pci_addr(piece) {
            out.push(AllowEntry { pci: piece.to_owned(), options: Vec::new() });
        } else if let (Some(last), Some((k, val))) = (out.last_mut(), piece.split_once('=')) {
            let ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic() && c != ',' && c != '=');
            if !ok(k) || !ok(val) {
                return Err(ALLOW_ALLOWED);
            }
            last.options.push(piece.to_owned());
        } else {
            return Err(ALLOW_ALLOWED);
        }
    }
    if out.is_empty() {
        return Err(ALLOW_ALLOWED);
    }
    Ok(out)
}

/// `[dddd:]bb:dd.f` in hex: domain up to 4 digits, bus 2, device 2 (< 0x20), function 1 (< 8).
fn is_pci_addr(s: &str) -> bool {
    let hex = |p: &str, n: usize| !p.is_empty() && p.len() <= n && p.chars().all(|c| c.is_ascii_hexdigit());
    let Some((rest, func)) = s.rsplit_once('.') else { return false };
    let parts: Vec<&str> = rest.split(':').collect();
    let (dom, bus, dev) = match parts.as_slice() {
        [b, d] => ("0", *b, *d),
        [a, b, d] => (*a, *b, *d),
        _ => return false,
    };
    hex(dom, 4)
        && hex(bus, 2)
        && hex(dev, 2)
        && u8::from_str_radix(dev, 16).is_ok_and(|d| d < 0x20)
        && func.len() == 1
        && func.chars().next().and_then(|c| c.to_digit(16)).is_some_and(|f| f < 8)
}

/// What one `[rss_check] rss_tbl` entry looks like.
pub(super) const RSS_TBL_FORMAT: &str = "entries separated by ';', each \"<port_id> <local addr> <remote addr> \
     <remote port>\" (F-Stack's order: port id, daddr = the port's own IPv4 address, saddr = the peer, sport = \
     the peer's port 1..=65535), e.g. 0 192.168.1.2 192.168.1.10 80;0 192.168.1.2 192.168.1.11 80";

/// Largest number of `rss_tbl` entries (F-Stack's `FF_RSS_TBL_MAX_ENTRIES`
/// is 256).
pub(super) const RSS_TBL_MAX: usize = 256;

/// Parses `rss_tbl` into entries with no pre-computed ports yet (the
/// runtime computes them from the port's RSS key and RETA). `port_addr`
/// gives the IPv4 address of a `port_list` port (None: not in the list).
pub(super) fn rss_tbl(v: &str, port_addr: impl Fn(u16) -> Option<Ipv4Addr>) -> Result<Vec<RssTblEntry>, String> {
    let mut out: Vec<RssTblEntry> = Vec::new();
    for (i, raw) in v.split(';').map(str::trim).enumerate() {
        if raw.is_empty() && i > 0 {
            continue; // a trailing ';'
        }
        let n = i + 1;
        let f: Vec<&str> = raw.split_whitespace().collect();
        let [port, local, remote, rport] = f.as_slice() else {
            return Err(format!("entry {n} \"{raw}\" has {} field(s), not 4", f.len()));
        };
        let port_id: u16 = port.parse().map_err(|_| format!("entry {n}: port id \"{port}\" is not 0..=65535"))?;
        let Some(own) = port_addr(port_id) else {
            return Err(format!("entry {n}: port {port_id} is not in [dpdk] port_list"));
        };
        let saddr: Ipv4Addr = local.parse().map_err(|_| format!("entry {n}: \"{local}\" is not an IPv4 address"))?;
        if saddr != own {
            return Err(format!("entry {n}: local address {saddr} is not port {port_id}'s addr {own}"));
        }
        let daddr: Ipv4Addr = remote.parse().map_err(|_| format!("entry {n}: \"{remote}\" is not an IPv4 address"))?;
        if daddr.is_unspecified() || daddr.is_broadcast() || daddr.is_multicast() {
            return Err(format!("entry {n}: remote address {daddr} is not a unicast address"));
        }
        let dport: u16 = rport
            .parse()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| format!("entry {n}: remote port \"{rport}\" is not 1..=65535"))?;
        if out.iter().any(|e| e.port_id == port_id && e.daddr == daddr && e.dport == dport) {
            return Err(format!("entry {n}: {port_id} {saddr} {daddr} {dport} appears twice"));
        }
        if out.len() == RSS_TBL_MAX {
            return Err(format!("more than {RSS_TBL_MAX} entries (F-Stack's FF_RSS_TBL_MAX_ENTRIES)"));
        }
        out.push(RssTblEntry { port_id, daddr, dport, saddr, sports: Vec::new() });
    }
    Ok(out)
}

/// `[rss_check]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RssCheckSection {
    /// `enable`: outbound connects pick local ports whose replies hash to
    /// the connecting lcore's queue.
    pub enable: bool,
    /// `rss_tbl`.
    pub tbl: Vec<RssTblEntry>,
}

const RSS_CHECK_KEYS: &[&str] = &["enable", "rss_tbl", "recheck", "thash_adjust"];
const VLAN_KEYS: &[&str] = &[
    "portid",
    "addr",
    "netmask",
    "broadcast",
    "gateway",
    "addr6",
    "prefix_len",
    "gateway6",
    "vip_ifname",
    "vip_addr",
    "ipfw_pr",
    "vip_addr6",
    "vip_prefix_len",
];
const BOND_KEYS: &[&str] =
    &["mode", "slave", "primary", "mac", "socket_id", "xmit_policy", "lsc_poll_period_ms", "up_delay", "down_delay"];
const KNI_KEYS: &[&str] = &[
    "enable",
    "method",
    "tcp_port",
    "udp_port",
    "console_packets_ratelimit",
    "general_packets_ratelimit",
    "kernel_packets_ratelimit",
    "kni_action",
];

/// `[rss_check]`; `port_addr` as for [`rss_tbl`].
pub(super) fn rss_check_section(
    file: &str,
    s: &Section,
    port_addr: impl Fn(u16) -> Option<Ipv4Addr>,
    report: &mut Vec<Notice>,
) -> Result<RssCheckSection, ConfigError> {
    let mut r = Reader::new(file, s, RSS_CHECK_KEYS);
    let enable = r.or("enable", false, super::keys::bool01)?;
    let tbl = match r.entry("rss_tbl") {
        None => Vec::new(),
        Some(e) => rss_tbl(&e.value, port_addr).map_err(|why| ConfigError {
            file: file.to_owned(),
            line: Some(e.line),
            msg: format!("[rss_check] rss_tbl = \"{}\": {why}; expected {RSS_TBL_FORMAT}", e.value),
        })?,
    };
    r.not_implemented(
        report,
        &[
            ("recheck", "zcstack checks every connect; there is no later re-check"),
            ("thash_adjust", "zcstack computes the hash in software from the port's key and RETA"),
        ],
    );
    r.finish()?;
    Ok(RssCheckSection { enable, tbl })
}

/// `[vlanN]`, `[bondN]`, `[kni]`: every key F-Stack reads is a notice
/// (zcstack has no VLANs, bonding or KNI); other keys are errors.
pub(super) fn unimplemented_section(
    file: &str,
    s: &Section,
    kind: &str,
    report: &mut Vec<Notice>,
) -> Result<(), ConfigError> {
    let (known, why): (&'static [&'static str], &str) = match kind {
        "vlan" => (VLAN_KEYS, "VLAN sub-interfaces are not implemented (tagged frames are dropped and counted)"),
        "bond" => (BOND_KEYS, "link bonding is not implemented"),
        _ => (KNI_KEYS, "the KNI exception path to the kernel is not implemented"),
    };
    let mut r = Reader::new(file, s, known);
    report.push(Notice { line: s.line, key: format!("[{}]", s.name), msg: format!("{NOT_IMPLEMENTED}: {why}") });
    let keys: Vec<(&str, &str)> = known.iter().map(|k| (*k, why)).collect();
    r.not_implemented(report, &keys);
    r.finish()
}

/// Whether `name` is a well-formed FreeBSD sysctl/tunable name: dot-
/// separated parts of letters, digits, `_`, `-` and `%` (FreeBSD's OID
/// names, e.g. `dev.ix.0.fc`, `net.inet.tcp.cc.algorithm`,
/// `hw.ixl.enable_head_writeback`), the first starting with a letter.
pub(super) fn sysctl_name_ok(name: &str) -> bool {
    name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '%'))
}

/// What a FreeBSD name may be.
const SYSCTL_NAME_ALLOWED: &str = "a FreeBSD sysctl name: dot-separated parts of letters, digits, '_', '-' and '%', \
     starting with a letter, at most 128 bytes (e.g. net.inet.tcp.msl)";

/// Names `zcstack::sysctl` maps onto the engine, FreeBSD's only (the Linux
/// names it also knows are for conformance scripts, not `config.ini`).
pub(super) fn mapped_names() -> Vec<&'static str> {
    zcstack::sysctl::KNOBS
        .iter()
        .copied()
        .filter(|k| !k.starts_with("net.ipv4.") && !k.starts_with("net.core."))
        .collect()
}

/// The mapped name one edit (insert, delete, substitute or swap of two
/// neighbours) away from `name`, if any: a typo of a knob zcstack runs.
fn one_edit_from(name: &str, mapped: &[&'static str]) -> Option<&'static str> {
    mapped.iter().copied().find(|k| super::keys::edit_distance(name, k) == 1 || swapped(name, k))
}

fn swapped(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let diff: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    diff.len() == 2 && diff[1] == diff[0] + 1 && a[diff[0]] == b[diff[1]] && a[diff[1]] == b[diff[0]]
}

/// `[freebsd.boot]` (besides its own keys, read by the caller) and
/// `[freebsd.sysctl]`: every well-formed name loads, as in F-Stack. Names
/// `zcstack::sysctl` maps change `sc`; the others are notices, with "did
/// you mean" when one edit away from a mapped name. `skip` are keys the
/// caller has read already.
pub(super) fn freebsd_section(
    file: &str,
    s: &Section,
    skip: &[&str],
    sc: &mut StackConfig,
    report: &mut Vec<Notice>,
) -> Result<(), ConfigError> {
    let mapped = mapped_names();
    for e in s.entries.iter().filter(|e| !skip.contains(&e.key.as_str())) {
        let bad = |msg: String| ConfigError { file: file.to_owned(), line: Some(e.line), msg };
        if !sysctl_name_ok(&e.key) {
            return Err(bad(format!("[{}] \"{}\" is not {SYSCTL_NAME_ALLOWED}", s.name, e.key)));
        }
        let key = format!("[{}] {}", s.name, e.key);
        if mapped.contains(&e.key.as_str()) {
            let mut c = *sc;
            match zcstack::sysctl::apply(&mut c, &e.key, &e.value) {
                Ok(zcstack::sysctl::Applied::Unsupported(why)) => {
                    report.push(Notice { line: e.line, key, msg: format!("{NOT_IMPLEMENTED}: {why}") })
                }
                Ok(_) => *sc = c,
                Err(zcstack::sysctl::SysctlError::BadValue { allowed, .. }) => {
                    return Err(bad(format!("[{}] {} = \"{}\": expected {allowed}", s.name, e.key, e.value)))
                }
                Err(zcstack::sysctl::SysctlError::Unknown(_)) => {
                    report.push(Notice { line: e.line, key, msg: format!("{NOT_IMPLEMENTED}; ignored") })
                }
            }
            continue;
        }
        if e.value.is_empty() || e.value.chars().any(char::is_control) {
            return Err(bad(format!(
                "[{}] {} = \"{}\": expected a non-empty value without control characters",
                s.name, e.key, e.value
            )));
        }
        let msg = match one_edit_from(&e.key, &mapped) {
            Some(k) => format!("{NOT_IMPLEMENTED}: no zcstack equivalent, ignored; did you mean \"{k}\"?"),
            None => format!("{NOT_IMPLEMENTED}: FreeBSD tunable with no zcstack equivalent; ignored"),
        };
        report.push(Notice { line: e.line, key, msg });
    }
    Ok(())
}
