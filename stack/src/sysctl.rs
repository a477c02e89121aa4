//! FreeBSD and Linux `sysctl` knobs with an engine equivalent: one mapping
//! onto [`StackConfig`], shared by `config.ini`'s `[freebsd.sysctl]` section
//! and the `sysctl -w` lines of conformance scripts.

use thiserror::Error;

use crate::config::{CongestionControl, StackConfig};
use crate::time::Duration;

/// Largest socket buffer: 65535 << 14, the largest window RFC 7323 can advertise.
pub const MAX_SOCK_BUFFER: usize = 65_535 << 14;

/// What applying a knob did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The configuration now holds the value.
    Set,
    /// The knob selects behaviour zcstack does not have (e.g. a pre-RFC 5961
    /// mode); the reason says which.
    Unsupported(String),
    /// The value is zcstack's fixed behaviour already; nothing to change.
    Fixed,
}

/// Why a knob could not be applied.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SysctlError {
    /// No engine equivalent.
    #[error("no zcstack equivalent for sysctl {0}")]
    Unknown(String),
    /// The value is out of range; `allowed` describes the range.
    #[error("bad value {value:?} for {name}: expected {allowed}")]
    BadValue {
        /// Knob name.
        name: String,
        /// Value given.
        value: String,
        /// What is allowed.
        allowed: &'static str,
    },
}

/// The knobs [`apply`] knows.
pub const KNOBS: &[&str] = &[
    "net.inet.tcp.sendspace",
    "net.inet.tcp.recvspace",
    "net.inet.tcp.delayed_ack",
    "net.inet.tcp.cc.algorithm",
    "net.inet.tcp.msl",
    "kern.ipc.somaxconn",
    "net.inet.tcp.rfc1323",
    "net.inet.tcp.sack.enable",
    "net.inet.tcp.syncookies",
    "net.inet.tcp.rexmit_min",
    "net.inet.ip.maxfragsperpacket",
    "net.inet.ip.maxfragpackets",
    "kern.ipc.maxsockbuf",
    "net.inet.tcp.blackhole",
    "net.inet.udp.blackhole",
    "net.inet.tcp.insecure_rst",
    "net.inet.tcp.insecure_syn",
    "net.inet.tcp.drop_synfin",
    "net.inet.tcp.rexmit_drop_options",
    "net.inet.tcp.initcwnd_segments",
    "net.inet.tcp.rexmit_initial",
    "net.inet.tcp.rexmit_slop",
    "net.inet.tcp.delacktime",
    "net.inet.tcp.keepidle",
    "net.inet.tcp.keepintvl",
    "net.inet.tcp.keepcnt",
    "net.ipv4.tcp_timestamps",
    "net.ipv4.tcp_sack",
    "net.ipv4.tcp_window_scaling",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.tcp_syn_retries",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
    "net.core.somaxconn",
    "net.inet.tcp.finwait2_timeout",
    "net.inet.tcp.fast_finwait2_recycle",
    "net.inet.tcp.maxtcptw",
    "net.inet.tcp.nolocaltimewait",
    "net.inet.tcp.sendbuf_max",
    "net.inet.tcp.recvbuf_max",
    "kern.ipc.maxsockets",
    "net.inet.ip.portrange.randomized",
];

fn uint<T: std::str::FromStr + PartialOrd>(v: &str, lo: T, hi: T) -> Option<T> {
    v.trim().parse::<T>().ok().filter(|n| *n >= lo && *n <= hi)
}

/// `0` or `1`.
pub fn bool01(v: &str) -> Option<bool> {
    match v.trim() {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

const BYTES: &str = "bytes in 1024..=1073725440 (65535 << 14, the largest window RFC 7323 can advertise)";
const BOOL: &str = "0 or 1";

/// Applies `name = value` to `cfg`. Units follow FreeBSD (milliseconds for
/// times, bytes for buffers); Linux's `tcp_rmem`/`tcp_wmem` take their
/// middle (default) value.
pub fn apply(cfg: &mut StackConfig, name: &str, value: &str) -> Result<Applied, SysctlError> {
    let bad = |allowed: &'static str| SysctlError::BadValue { name: name.into(), value: value.into(), allowed };
    let bytes = |v: &str| uint::<usize>(v, 1024, MAX_SOCK_BUFFER).ok_or_else(|| bad(BYTES));
    let flag = |v: &str| bool01(v).ok_or_else(|| bad(BOOL));
    let tcp = &mut cfg.tcp;
    match name {
        "net.inet.tcp.sendspace" => tcp.send_buffer = bytes(value)?,
        "net.inet.tcp.recvspace" => tcp.recv_buffer = bytes(value)?,
        "net.ipv4.tcp_rmem" | "net.ipv4.tcp_wmem" => {
            let mid = value.split_whitespace().nth(1).ok_or_else(|| bad("three byte counts: min default max"))?;
            let b = bytes(mid)?;
            if name.ends_with("rmem") {
                tcp.recv_buffer = b;
            } else {
                tcp.send_buffer = b;
            }
        }
        "kern.ipc.maxsockbuf" => {
            // FreeBSD offers the smallest window scale that can advertise
            // the largest socket buffer (RFC 7323 §2.2; at most 14).
            let max = uint::<usize>(value, 1024, usize::MAX).ok_or_else(|| bad("bytes, at least 1024"))?;
            let mut shift = 0u8;
            while shift < 14 && (65_535usize << shift) < max {
                shift += 1;
            }
            tcp.window_scale = shift;
        }
        "net.inet.tcp.delayed_ack" => tcp.delayed_ack = flag(value)?.then(|| Duration::from_millis(40)),
        "net.inet.tcp.delacktime" => {
            let ms = uint::<u64>(value, 1, 1000).ok_or_else(|| bad("milliseconds in 1..=1000"))?;
            tcp.delayed_ack = Some(Duration::from_millis(ms));
        }
        "net.inet.tcp.cc.algorithm" => {
            tcp.congestion = match value {
                "newreno" => CongestionControl::NewReno,
                "cubic" => CongestionControl::Cubic,
                _ => return Err(bad("newreno or cubic")),
            }
        }
        "net.inet.tcp.msl" => {
            let ms = uint::<u64>(value, 1, 3_600_000).ok_or_else(|| bad("milliseconds in 1..=3600000 (1 hour)"))?;
            tcp.msl = Duration::from_millis(ms);
        }
        "kern.ipc.somaxconn" | "net.core.somaxconn" => {
            tcp.somaxconn = uint(value, 1, 65_535).ok_or_else(|| bad("a count in 1..=65535"))?
        }
        "net.inet.tcp.rfc1323" => {
            // 1: window scaling and timestamps (RFC 7323); 0: neither.
            tcp.timestamps = flag(value)?;
            tcp.offer_window_scale = tcp.timestamps;
        }
        "net.ipv4.tcp_timestamps" => tcp.timestamps = uint::<u8>(value, 0, 2).ok_or_else(|| bad("0..=2"))? != 0,
        "net.ipv4.tcp_window_scaling" => tcp.offer_window_scale = flag(value)?,
        "net.inet.tcp.rexmit_slop" => {
            let ms = uint::<u64>(value, 0, 60_000).ok_or_else(|| bad("milliseconds in 0..=60000"))?;
            tcp.rto_slop = Duration::from_millis(ms);
        }
        "net.inet.tcp.sack.enable" | "net.ipv4.tcp_sack" => tcp.sack = flag(value)?,
        "net.inet.tcp.rexmit_drop_options" => tcp.rexmit_drop_options = flag(value)?,
        "net.inet.tcp.syncookies" => tcp.syn_cookies = flag(value)?,
        "net.ipv4.tcp_syncookies" => tcp.syn_cookies = uint::<u8>(value, 0, 2).ok_or_else(|| bad("0..=2"))? != 0,
        "net.inet.tcp.rexmit_min" => {
            let ms = uint::<u64>(value, 1, 60_000)
                .ok_or_else(|| bad("milliseconds in 1..=60000 (up to the 60 s maximum RTO)"))?;
            tcp.min_rto = Duration::from_millis(ms);
        }
        "net.inet.tcp.rexmit_initial" => {
            let ms = uint::<u64>(value, 1, 60_000).ok_or_else(|| bad("milliseconds in 1..=60000"))?;
            tcp.initial_rto = Duration::from_millis(ms);
        }
        "net.inet.tcp.initcwnd_segments" => {
            tcp.initial_cwnd_segments = uint(value, 1, 1000).ok_or_else(|| bad("segments in 1..=1000"))?
        }
        "net.ipv4.tcp_syn_retries" => tcp.syn_retries = uint(value, 1, 127).ok_or_else(|| bad("a count in 1..=127"))?,
        "net.inet.tcp.keepidle" => {
            tcp.keepalive_idle =
                Duration::from_millis(uint(value, 1, u32::MAX as u64).ok_or_else(|| bad("milliseconds"))?)
        }
        "net.inet.tcp.keepintvl" => {
            tcp.keepalive_interval =
                Duration::from_millis(uint(value, 1, u32::MAX as u64).ok_or_else(|| bad("milliseconds"))?)
        }
        "net.inet.tcp.keepcnt" => {
            tcp.keepalive_probes = uint(value, 1, 1000).ok_or_else(|| bad("a count in 1..=1000"))?
        }
        "net.inet.ip.maxfragsperpacket" => {
            cfg.reassembly_max_fragments =
                uint(value, 1, 8192).ok_or_else(|| bad("a count of fragments in 1..=8192"))?
        }
        "net.inet.ip.maxfragpackets" => {
            cfg.reassembly_datagrams = uint(value, 1, 65536).ok_or_else(|| bad("a count of datagrams in 1..=65536"))?
        }
        "net.inet.tcp.blackhole" => {
            tcp.blackhole = uint::<u8>(value, 0, 2)
                .ok_or_else(|| bad("0 (RST every segment to a closed port), 1 (none for SYNs) or 2 (none)"))?
        }
        "net.inet.udp.blackhole" => {
            cfg.udp_blackhole = uint::<u8>(value, 0, 2)
                .ok_or_else(|| bad("0 (ICMP port unreachable for closed ports) or 1..=2 (none)"))?
                != 0
        }
        "net.inet.tcp.finwait2_timeout" => {
            let ms = uint::<u64>(value, 1, 3_600_000).ok_or_else(|| bad("milliseconds in 1..=3600000 (1 hour)"))?;
            tcp.fin_wait2_timeout = Duration::from_millis(ms);
        }
        "net.inet.tcp.fast_finwait2_recycle" => tcp.fast_finwait2_recycle = flag(value)?,
        "net.inet.tcp.maxtcptw" => {
            // FreeBSD: 0 sizes the cap from maxsockets; zcstack: 0 is no cap.
            let n = uint::<usize>(value, 0, u32::MAX as usize)
                .ok_or_else(|| bad("a count of TIME-WAIT connections in 0..=4294967295 (0: no cap)"))?;
            tcp.max_time_wait = if n == 0 { usize::MAX } else { n };
        }
        "net.inet.tcp.nolocaltimewait" => {
            // FreeBSD skips TIME-WAIT when the peer is one of our own
            // addresses; zcstack never has such a connection (a segment
            // from our own address is dropped, RFC 1122 3.2.1.3), so either
            // value is what it does already.
            flag(value)?;
            return Ok(Applied::Fixed);
        }
        "net.inet.tcp.sendbuf_max" => tcp.send_buffer_max = bytes(value)?,
        "net.inet.tcp.recvbuf_max" => tcp.recv_buffer_max = bytes(value)?,
        "kern.ipc.maxsockets" => {
            tcp.max_sockets =
                uint(value, 1, u32::MAX as usize).ok_or_else(|| bad("a count of sockets in 1..=4294967295"))?
        }
        "net.inet.ip.portrange.randomized" => tcp.randomize_ports = flag(value)?,
        "net.inet.tcp.insecure_rst" => tcp.insecure_rst = flag(value)?,
        "net.inet.tcp.insecure_syn" => tcp.insecure_syn = flag(value)?,
        "net.inet.tcp.drop_synfin" => tcp.drop_synfin = flag(value)?,
        _ => return Err(SysctlError::Unknown(name.into())),
    }
    Ok(Applied::Set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::IfaceConfig;
    use crate::wire::EthernetAddress;

    fn cfg() -> StackConfig {
        StackConfig::new(IfaceConfig {
            mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
            addr: [10, 0, 0, 1].into(),
            prefix_len: 24,
            gateway: None,
        })
    }

    #[test]
    fn knobs_set_and_check_ranges() {
        let mut c = cfg();
        assert_eq!(apply(&mut c, "net.inet.tcp.recvspace", "65536"), Ok(Applied::Set));
        assert_eq!(c.tcp.recv_buffer, 65536);
        assert_eq!(apply(&mut c, "net.inet.tcp.msl", "1000"), Ok(Applied::Set));
        assert_eq!(c.tcp.msl, Duration::from_millis(1000));
        assert_eq!(apply(&mut c, "net.inet.tcp.delayed_ack", "0"), Ok(Applied::Set));
        assert_eq!(c.tcp.delayed_ack, None);
        assert!(matches!(apply(&mut c, "net.inet.tcp.recvspace", "12"), Err(SysctlError::BadValue { .. })));
        assert_eq!(apply(&mut c, "net.inet.tcp.insecure_rst", "1"), Ok(Applied::Set));
        assert!(c.tcp.insecure_rst);
        assert_eq!(apply(&mut c, "net.inet.tcp.insecure_rst", "0"), Ok(Applied::Set));
        assert!(!c.tcp.insecure_rst);
        assert_eq!(apply(&mut c, "net.inet.tcp.insecure_syn", "1"), Ok(Applied::Set));
        assert!(c.tcp.insecure_syn);
        assert!(matches!(apply(&mut c, "net.inet.tcp.nope", "1"), Err(SysctlError::Unknown(_))));
        assert_eq!(apply(&mut c, "kern.ipc.maxsockbuf", "2097152"), Ok(Applied::Set));
        assert_eq!(c.tcp.window_scale, 6, "2 MiB needs 65535 << 6");
        // RFC 7323 off: no window scale option at all, not "shift 0".
        assert_eq!(apply(&mut c, "net.inet.tcp.rfc1323", "0"), Ok(Applied::Set));
        assert!(!c.tcp.offer_window_scale && !c.tcp.timestamps);
        assert_eq!(c.tcp.window_scale, 6, "the shift is kept for when scaling is turned back on");
        assert_eq!(apply(&mut c, "net.inet.tcp.rfc1323", "1"), Ok(Applied::Set));
        assert!(c.tcp.offer_window_scale && c.tcp.timestamps);
        assert_eq!(apply(&mut c, "net.ipv4.tcp_window_scaling", "0"), Ok(Applied::Set));
        assert!(!c.tcp.offer_window_scale);
        assert_eq!(apply(&mut c, "net.inet.tcp.rexmit_slop", "200"), Ok(Applied::Set));
        assert_eq!(c.tcp.rto_slop, Duration::from_millis(200));
        for k in KNOBS {
            let _ = apply(&mut c, k, "1");
        }
    }
}
