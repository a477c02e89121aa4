//! Receive-side scaling (RSS) as a NIC computes it, in software.
//!
//! A port shared by several lcores spreads received frames over its RX
//! queues with the Toeplitz hash of the IPv4 addresses and TCP/UDP ports
//! (Microsoft's "RSS hashing" specification, the hash every DPDK NIC
//! implements) and a redirection table (RETA) from hash to queue. Each
//! queue is served by its own [`crate::Stack`], so:
//!
//! - an outbound connection must use a local port whose replies the NIC puts
//!   on the connecting stack's queue (F-Stack's `ff_rss_check`); see
//!   [`RssLocal`] and `Stack::set_rss`;
//! - where the device's distribution cannot be predicted (net_tap with
//!   several queues, virtio-user), software steering hands each frame to the
//!   queue that owns it: [`steer_frame`].
//!
//! Everything here is pure computation on bytes: no I/O, no clock, no panic
//! on any input.

use std::net::SocketAddrV4;
use std::ops::RangeInclusive;

use thiserror::Error;

use crate::wire::Ipv4Address;

/// F-Stack's default 40-byte RSS key (`default_rsskey_40bytes` in F-Stack's
/// `lib/ff_dpdk_if.c`, the key of Mellanox's Linux driver).
pub const FSTACK_RSS_KEY: [u8; 40] = [
    0xd1, 0x81, 0xc6, 0x2c, 0xf7, 0xf4, 0xdb, 0x5b, 0x19, 0x83, 0xa2, 0xfc, 0x94, 0x3e, 0x1a, 0xdb, 0xd9, 0x38, 0x9e,
    0x6b, 0xd1, 0x03, 0x9c, 0x2c, 0xa7, 0x44, 0x99, 0xad, 0x59, 0x3d, 0x56, 0xd9, 0xf3, 0x25, 0x3c, 0x06, 0x2a, 0xdc,
    0x1f, 0xfc,
];

/// F-Stack's 52-byte RSS key, used on NICs whose key is 52 bytes
/// (`default_rsskey_52bytes`).
pub const FSTACK_RSS_KEY_52: [u8; 52] = [
    0x44, 0x39, 0x79, 0x6b, 0xb5, 0x4c, 0x50, 0x23, 0xb6, 0x75, 0xea, 0x5b, 0x12, 0x4f, 0x9f, 0x30, 0xb8, 0xa2, 0xc0,
    0x3d, 0xdf, 0xdc, 0x4d, 0x02, 0xa0, 0x8c, 0x9b, 0x33, 0x4a, 0xf6, 0x4a, 0x4c, 0x05, 0xc6, 0xfa, 0x34, 0x39, 0x58,
    0xd8, 0x55, 0x7d, 0x99, 0x58, 0x3a, 0xe1, 0x38, 0xc9, 0x2e, 0x81, 0x15, 0x03, 0x66,
];

/// F-Stack's symmetric key (`symmetric_rss=1`): the 16-bit pattern `6d5a`
/// repeated, so swapping source and destination (addresses and ports, each a
/// multiple of 16 bits) leaves the hash unchanged. F-Stack declares it with
/// 52 bytes; the first 40 are this array ([`SYMMETRIC_RSS_KEY_52`] is the
/// full one).
pub const SYMMETRIC_RSS_KEY: [u8; 40] = symmetric_key();

/// The 52-byte form of [`SYMMETRIC_RSS_KEY`].
pub const SYMMETRIC_RSS_KEY_52: [u8; 52] = symmetric_key();

const fn symmetric_key<const N: usize>() -> [u8; N] {
    let mut k = [0u8; N];
    let mut i = 0;
    while i < N {
        k[i] = if i % 2 == 0 { 0x6d } else { 0x5a };
        i += 1;
    }
    k
}

/// Shortest and longest key [`Toeplitz`] accepts, in bytes.
pub const KEY_LEN: RangeInclusive<usize> = 4..=64;

/// Errors building RSS parameters.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum RssError {
    /// The key length is outside [`KEY_LEN`].
    #[error("RSS key of {0} bytes (must be 4..=64; NICs use 40 or 52)")]
    KeyLength(usize),
    /// A redirection table with no entries.
    #[error("RSS redirection table is empty")]
    EmptyReta,
}

/// The Toeplitz hash with a fixed key, precomputed per input byte: for byte
/// position `i` and value `b`, `tables[i][b]` is the XOR of the 32-bit key
/// windows at bit offsets `8i + j` for every bit `j` set in `b` (MSB first).
/// A hash is then one table lookup per input byte.
#[derive(Clone, Debug)]
pub struct Toeplitz {
    key: Vec<u8>,
    tables: Vec<[u32; 256]>,
}

impl Toeplitz {
    /// The hash for `key`. A key shorter than 4 bytes is zero-padded to 4
    /// and one longer than 64 truncated to 64 (never a panic);
    /// [`Toeplitz::try_new`] refuses them instead.
    pub fn new(key: &[u8]) -> Toeplitz {
        let mut k = key[..key.len().min(*KEY_LEN.end())].to_vec();
        k.resize(k.len().max(*KEY_LEN.start()), 0);
        Toeplitz::build(k)
    }

    /// The hash for `key`, or [`RssError::KeyLength`] unless it has 4..=64 bytes.
    pub fn try_new(key: &[u8]) -> Result<Toeplitz, RssError> {
        if !KEY_LEN.contains(&key.len()) {
            return Err(RssError::KeyLength(key.len()));
        }
        Ok(Toeplitz::build(key.to_vec()))
    }

    fn build(key: Vec<u8>) -> Toeplitz {
        // Key bits beyond its end are zero (as a NIC and F-Stack's
        // `toeplitz_hash` shift in zeros), so input bytes up to key.len()
        // still see part of a window; later bytes contribute nothing.
        let bit = |n: usize| -> u32 { u32::from(key.get(n / 8).map_or(0, |b| (b >> (7 - n % 8)) & 1)) };
        let window = |off: usize| -> u32 { (0..32).fold(0u32, |w, j| (w << 1) | bit(off + j)) };
        let tables = (0..key.len())
            .map(|i| {
                let w: [u32; 8] = std::array::from_fn(|j| window(8 * i + j));
                let mut t = [0u32; 256];
                for (b, slot) in t.iter_mut().enumerate() {
                    *slot = (0..8).filter(|j| b & (0x80 >> j) != 0).fold(0, |h, j| h ^ w[j]);
                }
                t
            })
            .collect();
        Toeplitz { key, tables }
    }

    /// The key.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The Toeplitz hash of `input` (bytes in wire order). Inputs longer
    /// than `key.len() - 4` bytes go past the key; their extra bits meet
    /// zero key bits, as on a NIC.
    pub fn hash(&self, input: &[u8]) -> u32 {
        input.iter().zip(&self.tables).fold(0, |h, (&b, t)| h ^ t[usize::from(b)])
    }

    /// The NIC's "IPv4" hash type: source then destination address.
    pub fn hash_v4(&self, src: Ipv4Address, dst: Ipv4Address) -> u32 {
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&src.octets());
        b[4..].copy_from_slice(&dst.octets());
        self.hash(&b)
    }

    /// The NIC's "IPv4 TCP/UDP" hash type: source address, destination
    /// address, source port, destination port (network byte order).
    pub fn hash_v4_ports(&self, src: Ipv4Address, dst: Ipv4Address, sport: u16, dport: u16) -> u32 {
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&src.octets());
        b[4..8].copy_from_slice(&dst.octets());
        b[8..10].copy_from_slice(&sport.to_be_bytes());
        b[10..].copy_from_slice(&dport.to_be_bytes());
        self.hash(&b)
    }
}

/// A redirection table: hash → queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reta {
    entries: Vec<u16>,
}

impl Reta {
    /// `size` entries, entry `j` = `j % queues`: what zcstack (and F-Stack's
    /// `set_rss_table`) programs into the port. `size` 0 or `queues` 0 count
    /// as 1.
    pub fn spread(size: usize, queues: u16) -> Reta {
        let queues = queues.max(1);
        Reta { entries: (0..size.max(1)).map(|j| (j % usize::from(queues)) as u16).collect() }
    }

    /// A table with the given entries (as read back from a device).
    pub fn from_entries(entries: Vec<u16>) -> Result<Reta, RssError> {
        if entries.is_empty() {
            return Err(RssError::EmptyReta);
        }
        Ok(Reta { entries })
    }

    /// The queue of `hash`: `entries[hash % len]` (NICs index by the hash's
    /// low bits; RETA sizes are powers of two).
    pub fn queue(&self, hash: u32) -> u16 {
        self.entries[hash as usize % self.entries.len()]
    }

    /// The entries.
    pub fn entries(&self) -> &[u16] {
        &self.entries
    }
}

/// A port's RSS: the hash and the table.
#[derive(Clone, Debug)]
pub struct RssSpec {
    /// The hash with the port's key.
    pub toeplitz: Toeplitz,
    /// The port's redirection table.
    pub reta: Reta,
}

impl RssSpec {
    /// The queue a TCP/UDP frame from `src:sport` to `dst:dport` lands on.
    pub fn queue_of_v4(&self, src: Ipv4Address, dst: Ipv4Address, sport: u16, dport: u16) -> u16 {
        self.reta.queue(self.toeplitz.hash_v4_ports(src, dst, sport, dport))
    }

    /// The queue an IPv4 frame hashed on addresses only (fragments, ICMP)
    /// lands on.
    pub fn queue_of_v4_addrs(&self, src: Ipv4Address, dst: Ipv4Address) -> u16 {
        self.reta.queue(self.toeplitz.hash_v4(src, dst))
    }
}

/// Where a received frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Steer {
    /// The stack of this queue owns it.
    Queue(u16),
    /// Every stack takes it (ARP: each keeps its own cache).
    AllQueues,
    /// Not classifiable (short, malformed, not IPv4): the receiving stack
    /// processes it and counts its drop.
    Here,
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const PROTO_ICMP: u8 = 1;
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;

/// The parts of an IPv4 header steering looks at.
struct V4<'a> {
    src: Ipv4Address,
    dst: Ipv4Address,
    proto: u8,
    /// MF set or fragment offset ≠ 0.
    fragment: bool,
    /// Fragment offset ≠ 0: the payload does not start with a transport header.
    later_fragment: bool,
    /// Bytes after the header, up to the total length (or the frame's end).
    payload: &'a [u8],
}

fn parse_v4(b: &[u8]) -> Option<V4<'_>> {
    let vihl = *b.first()?;
    let hlen = usize::from(vihl & 0x0f) * 4;
    if vihl >> 4 != 4 || hlen < 20 || b.len() < hlen {
        return None;
    }
    let total = usize::from(u16::from_be_bytes([b[2], b[3]]));
    if total < hlen {
        return None;
    }
    let flags_off = u16::from_be_bytes([b[6], b[7]]);
    let fragment = flags_off & 0x2000 != 0 || flags_off & 0x1fff != 0;
    let ip = |o: usize| Ipv4Address::new(b[o], b[o + 1], b[o + 2], b[o + 3]);
    Some(V4 {
        src: ip(12),
        dst: ip(16),
        proto: b[9],
        fragment,
        later_fragment: flags_off & 0x1fff != 0,
        payload: &b[hlen..total.min(b.len())],
    })
}

fn ports(l4: &[u8]) -> Option<(u16, u16)> {
    Some((u16::from_be_bytes([*l4.first()?, *l4.get(1)?]), u16::from_be_bytes([*l4.get(2)?, *l4.get(3)?])))
}

/// Which queue's stack owns a received Ethernet frame (never panics on any
/// input).
///
/// - ARP → [`Steer::AllQueues`];
/// - IPv4 TCP/UDP, not a fragment → the 4-tuple's queue as received;
/// - any IPv4 fragment (MF set or offset ≠ 0) → the address pair's queue, so
///   all pieces meet at one reassembler (a NIC's "IPv4" hash type);
/// - ICMP errors (type 3, 4, 5, 11, 12) quoting an IPv4 TCP/UDP header → the
///   queue owning the quoted flow (the quoted packet is ours: its source is
///   us, so the flow's received direction is the quote reversed);
/// - other IPv4 → the address pair's queue;
/// - anything short, malformed or not IPv4 → [`Steer::Here`].
pub fn steer_frame(spec: &RssSpec, frame: &[u8]) -> Steer {
    let Some(ethertype) = frame.get(12..14).map(|t| u16::from_be_bytes([t[0], t[1]])) else {
        return Steer::Here;
    };
    match ethertype {
        ETHERTYPE_ARP => Steer::AllQueues,
        ETHERTYPE_IPV4 => steer_v4(spec, &frame[14..]),
        _ => Steer::Here,
    }
}

fn steer_v4(spec: &RssSpec, packet: &[u8]) -> Steer {
    let Some(ip) = parse_v4(packet) else {
        return Steer::Here;
    };
    let by_addrs = Steer::Queue(spec.queue_of_v4_addrs(ip.src, ip.dst));
    if ip.fragment {
        return by_addrs;
    }
    match ip.proto {
        PROTO_TCP | PROTO_UDP => match ports(ip.payload) {
            Some((sport, dport)) => Steer::Queue(spec.queue_of_v4(ip.src, ip.dst, sport, dport)),
            None => Steer::Here,
        },
        PROTO_ICMP => steer_icmp(spec, ip.payload).unwrap_or(by_addrs),
        _ => by_addrs,
    }
}

/// The owner of the flow an ICMP error quotes, if it quotes a whole
/// TCP/UDP header start (RFC 792: IP header + at least 8 bytes).
fn steer_icmp(spec: &RssSpec, icmp: &[u8]) -> Option<Steer> {
    if !matches!(icmp.first()?, 3 | 4 | 5 | 11 | 12) {
        return None;
    }
    let q = parse_v4(icmp.get(8..)?)?;
    if !matches!(q.proto, PROTO_TCP | PROTO_UDP) || q.later_fragment {
        return None;
    }
    let (sport, dport) = ports(q.payload)?;
    Some(Steer::Queue(spec.queue_of_v4(q.dst, q.src, dport, sport)))
}

/// F-Stack's `rss_tbl` entry: pre-computed local ports for one 4-tuple
/// (`remote:remote_port` seen from `local`), tried first by an outbound
/// connect to that peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RssTblPorts {
    /// The peer's address.
    pub remote: Ipv4Address,
    /// The peer's port.
    pub remote_port: u16,
    /// Our address.
    pub local: Ipv4Address,
    /// Local ports to try, in order.
    pub ports: Vec<u16>,
}

/// One stack's place in a port's RSS: the port's spec, the queue this stack
/// serves, and F-Stack's `rss_tbl`.
#[derive(Clone, Debug)]
pub struct RssLocal {
    /// The port's hash and table.
    pub spec: RssSpec,
    /// The queue this stack serves.
    pub queue: u16,
    /// Pre-computed ports per 4-tuple (F-Stack `[rss_check] rss_tbl`).
    pub tbl: Vec<RssTblPorts>,
}

impl RssLocal {
    /// Whether the peer's segments to `local` from `remote` land on this
    /// stack's queue (F-Stack `ff_rss_check`: the tuple as received, the
    /// peer being the source).
    pub fn owns(&self, local: SocketAddrV4, remote: SocketAddrV4) -> bool {
        self.spec.queue_of_v4(*remote.ip(), *local.ip(), remote.port(), local.port()) == self.queue
    }

    /// The `rss_tbl` ports for this 4-tuple (empty if none).
    pub fn tbl_ports(&self, local: Ipv4Address, remote: SocketAddrV4) -> &[u16] {
        self.tbl
            .iter()
            .find(|e| e.remote == *remote.ip() && e.remote_port == remote.port() && e.local == local)
            .map_or(&[], |e| &e.ports)
    }

    /// Chooses a local port for a connect to `remote` from `local`: the
    /// `rss_tbl` ports first, then `range` once around from `start`; the
    /// first port that `free` accepts and whose replies land on this queue.
    /// `tried` counts the ports examined. `None` when no port fits.
    pub fn pick_port(
        &self,
        local: Ipv4Address,
        remote: SocketAddrV4,
        range: RangeInclusive<u16>,
        start: u16,
        mut free: impl FnMut(u16) -> bool,
        tried: &mut u64,
    ) -> Option<u16> {
        let mut fits = |p: u16| {
            *tried += 1;
            p != 0 && self.owns(SocketAddrV4::new(local, p), remote) && free(p)
        };
        if let Some(&p) = self.tbl_ports(local, remote).iter().find(|&&p| fits(p)) {
            return Some(p);
        }
        let (lo, hi) = (u32::from(*range.start()), u32::from(*range.end()));
        if lo > hi {
            return None;
        }
        let span = hi - lo + 1;
        let first = u32::from(start).clamp(lo, hi) - lo;
        (0..span).map(|i| (lo + (first + i) % span) as u16).find(|&p| fits(p))
    }

    /// The ports of `range` whose replies from `remote` to `local` land on
    /// `queue`: an `rss_tbl` entry computed the way F-Stack's
    /// `ff_rss_tbl_set_portrange` does.
    pub fn tbl_entry(
        spec: &RssSpec,
        queue: u16,
        local: Ipv4Address,
        remote: SocketAddrV4,
        range: RangeInclusive<u16>,
    ) -> RssTblPorts {
        let ports = range.filter(|&p| spec.queue_of_v4(*remote.ip(), local, remote.port(), p) == queue).collect();
        RssTblPorts { remote: *remote.ip(), remote_port: remote.port(), local, ports }
    }
}

#[cfg(test)]
mod tests;
