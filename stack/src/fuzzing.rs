//! Fuzz harnesses shared by the cargo-fuzz targets (`stack/fuzz`) and the
//! stable tests that replay a built-in corpus through them (so `cargo test`
//! exercises what the fuzzer does, without nightly). Not part of the API.

use std::net::SocketAddrV4;

use crate::mem::HeapPages;
use crate::phy::queue::QueueDevice;
use crate::phy::DeviceCaps;
use crate::time::{Duration, Instant};
use crate::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpProtocol,
    Ipv4Address, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
};
use crate::{IfaceConfig, SocketHandle, Stack, StackConfig};

const OUR_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const PEER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
const OUR_IP: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
const PEER_IP: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);
const PEER_PORT: u16 = 80;
/// The peer's MSS (bytes): every data segment the stack sends fits it.
pub const SENDER_MSS: u16 = 1460;
/// Bytes the application writes before the first input (more may follow).
pub const SENDER_INITIAL: usize = 64 * 1024;
/// Bytes in one input record of [`sender`].
pub const SENDER_RECORD: usize = 12;
/// Payload pages of the fuzzed stack.
const PAGES: u32 = 512;

/// Frames the stack sent and what they say about the sender.
struct Peer {
    dev: QueueDevice,
    /// Our (the stack's) initial send sequence number + 1: stream offset 0.
    base: u32,
    /// Our receive sequence (the peer's `snd_nxt`).
    peer_seq: u32,
    local_port: u16,
}

fn eth_ip(l4: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 34 + l4.len()];
    EthernetRepr { src_addr: PEER_MAC, dst_addr: OUR_MAC, ethertype: EthernetProtocol::Ipv4 }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..14]));
    Ipv4Repr {
        src_addr: PEER_IP,
        dst_addr: OUR_IP,
        next_header: IpProtocol::Tcp,
        payload_len: l4.len(),
        hop_limit: 64,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..34]), &Default::default());
    f[34..].copy_from_slice(l4);
    f
}

fn tcp_frame(repr: &TcpRepr<'_>) -> Vec<u8> {
    let mut l4 = vec![0u8; repr.buffer_len()];
    repr.emit(&mut TcpPacket::new_unchecked(&mut l4[..]), &PEER_IP.into(), &OUR_IP.into(), &Default::default());
    eth_ip(&l4)
}

/// (seq, control, payload length) of each TCP segment in `frames`.
fn segments(frames: &[Vec<u8>]) -> Vec<(u32, TcpControl, usize, Option<u32>)> {
    let mut out = Vec::new();
    for f in frames {
        let Ok(eth) = EthernetFrame::new_checked(&f[..]) else { continue };
        if eth.ethertype() != EthernetProtocol::Ipv4 {
            continue;
        }
        let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else { continue };
        if ip.next_header() != IpProtocol::Tcp {
            continue;
        }
        let Ok(tp) = TcpPacket::new_checked(ip.payload()) else { continue };
        let Ok(r) = TcpRepr::parse(&tp, &ip.src_addr().into(), &ip.dst_addr().into(), &Default::default()) else {
            panic!("the stack sent a TCP segment that does not parse or has a bad checksum");
        };
        out.push((r.seq_number.0 as u32, r.control, r.payload.len(), r.ack_number.map(|a| a.0 as u32)));
    }
    out
}

/// Opens a connection from a fresh stack to the peer (MSS 1460, SACK
/// permitted, window scale 0, no timestamps) and writes
/// [`SENDER_INITIAL`] bytes.
/// An ARP request from the peer for our address: the stack learns (or
/// refreshes) the peer's MAC from it, as from a live peer's ARP traffic.
fn arp_request() -> Vec<u8> {
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: PEER_MAC,
        source_protocol_addr: PEER_IP,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: OUR_IP,
    };
    let mut f = vec![0u8; 14 + arp.buffer_len()];
    EthernetRepr { src_addr: PEER_MAC, dst_addr: EthernetAddress::BROADCAST, ethertype: EthernetProtocol::Arp }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..14]));
    arp.emit(&mut ArpPacket::new_unchecked(&mut f[14..]));
    f
}

fn open() -> (Stack<HeapPages>, Peer, SocketHandle) {
    let cfg = StackConfig::new(IfaceConfig { mac: OUR_MAC, addr: OUR_IP, prefix_len: 24, gateway: None });
    let mut st = Stack::new(cfg, HeapPages::new(PAGES, 2048), 1500);
    let mut dev = QueueDevice::new(DeviceCaps::default());
    // Teach the stack the peer's MAC.
    dev.push_rx(arp_request());
    st.poll(Instant::ZERO, &mut dev);
    dev.take_tx();
    let h = st.tcp_connect(SocketAddrV4::new(PEER_IP, PEER_PORT), 0, Instant::ZERO).expect("connect");
    st.poll(Instant::ZERO, &mut dev);
    let syn = segments(&dev.take_tx());
    let &(iss, ctl, _, _) = syn.first().expect("a SYN is sent");
    assert_eq!(ctl, TcpControl::Syn);
    let local_port = st.tcp().addrs(h).expect("addrs").0.port();
    let peer_seq = 7_000_000u32;
    let synack = TcpRepr {
        src_port: PEER_PORT,
        dst_port: local_port,
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(peer_seq as i32),
        ack_number: Some(TcpSeqNumber(iss.wrapping_add(1) as i32)),
        window_len: 65535,
        window_scale: Some(0),
        max_seg_size: Some(SENDER_MSS),
        sack_permitted: true,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    dev.push_rx(tcp_frame(&synack));
    let t = Instant::from_millis(1);
    st.poll(t, &mut dev);
    assert_eq!(st.tcp_state(h), Ok(crate::State::Established), "handshake");
    let data: Vec<u8> = (0..SENDER_INITIAL).map(|i| (i * 7) as u8).collect();
    let n = st.tcp_write(h, &data).expect("write");
    assert!(n > 0);
    // The initial window goes out before the first input.
    st.poll(t, &mut dev);
    dev.take_tx();
    let peer = Peer { dev, base: iss.wrapping_add(1), peer_seq: peer_seq.wrapping_add(1), local_port };
    (st, peer, h)
}

/// The sender path under fuzzer-chosen ACKs, SACK blocks and windows, with
/// time advancing; any panic or broken invariant is a bug.
///
/// Input: records of [`SENDER_RECORD`] bytes: `kind`, ack (u32), window
/// (u16), SACK left and length (u16 each), time step (u8, in ms × 4 for
/// the low 6 bits, or several RTOs when the high bits say so). Kinds: plain
/// ACK, ACK with one to three SACK blocks, ACK far outside the sequence
/// space, a window update, an application write, time passing alone.
///
/// Invariants checked after every record, all through public state and the
/// emitted segments: every data segment lies inside what the application
/// wrote and fits the MSS; the sequence numbers the connection reports
/// (`una ≤ nxt ≤ max`) are ordered and within the written bytes; the send
/// queue never holds more than was written; pages in use stay under the
/// pool; the frames sent per record stay under a bound and at most two of
/// them are shorter than the MSS without ending at the written data (no
/// flood of one-byte segments).
///
/// Returns, per record, the segments sent other than SYN and RST as
/// (stream offset of `seq`, payload length; 0 for pure ACKs and
/// zero-length probes) for tests that check a scenario more closely.
pub fn sender(data: &[u8]) -> Vec<Vec<(u64, usize)>> {
    let mut trace = Vec::new();
    let (mut st, mut peer, h) = open();
    let mut written = SENDER_INITIAL as u64;
    let mut now = Instant::from_millis(1);
    let mut rest = data;
    while rest.len() >= SENDER_RECORD {
        let (r, tail) = rest.split_at(SENDER_RECORD);
        rest = tail;
        let kind = r[0] % 6;
        let raw_ack = u32::from_le_bytes([r[1], r[2], r[3], r[4]]);
        let win = u16::from_le_bytes([r[5], r[6]]);
        let left = u32::from(u16::from_le_bytes([r[7], r[8]]));
        let len = u32::from(u16::from_le_bytes([r[9], r[10]]));
        let step = match r[11] >> 6 {
            0 => Duration::from_micros(u64::from(r[11] & 63) * 250),
            1 => Duration::from_millis(u64::from(r[11] & 63) * 10),
            _ => Duration::from_millis(u64::from(r[11] & 63) * 500),
        };
        // Most ACKs fall inside what was written (offsets from the base);
        // kind 2 takes the raw 32-bit value: far ahead or far behind.
        let span = (written as u32).wrapping_add(2 * u32::from(SENDER_MSS)).max(1);
        let ack = match kind {
            2 => raw_ack,
            _ => peer.base.wrapping_add(raw_ack % span),
        };
        let sack_at = |l: u32, n: u32| {
            let l = peer.base.wrapping_add(l.wrapping_mul(8) % span);
            (l, l.wrapping_add(n))
        };
        let sack = match kind {
            1 => [
                Some(sack_at(left, len)),
                (len & 1 == 1).then(|| sack_at(len, left / 2 + 1)),
                (left & 1 == 1).then(|| sack_at(left / 3, len / 3 + 1)),
            ],
            _ => [None; 3],
        };
        match kind {
            4 => {
                let more: Vec<u8> = (0..(len as usize % 8192)).map(|i| i as u8).collect();
                if let Ok(n) = st.tcp_write(h, &more) {
                    written += n as u64;
                }
            }
            5 => {}
            _ => {
                let repr = TcpRepr {
                    src_port: PEER_PORT,
                    dst_port: peer.local_port,
                    control: TcpControl::None,
                    seq_number: TcpSeqNumber(peer.peer_seq as i32),
                    ack_number: Some(TcpSeqNumber(ack as i32)),
                    window_len: if kind == 3 { win } else { win | 0x0100 },
                    window_scale: None,
                    max_seg_size: None,
                    sack_permitted: false,
                    sack_ranges: sack,
                    timestamp: None,
                    payload: &[],
                };
                peer.dev.push_rx(tcp_frame(&repr));
            }
        }
        now += step;
        // A live peer keeps its ARP entry fresh (entries expire): without
        // this, long waits would hide segments behind ARP resolution.
        peer.dev.push_rx(arp_request());
        st.poll(now, &mut peer.dev);
        let out = peer.dev.take_tx();
        trace.push(check(&mut st, &peer, h, &out, written));
    }
    trace
}

/// The invariants of [`sender`] after one record.
fn check(st: &mut Stack<HeapPages>, peer: &Peer, h: SocketHandle, out: &[Vec<u8>], written: u64) -> Vec<(u64, usize)> {
    let segs = segments(out);
    let mut data = Vec::new();
    // One record may release at most a window's worth of data plus a probe
    // and an ACK: a bound that a flood of one-byte segments breaks.
    let bound = 64 * 1024 / usize::from(SENDER_MSS) + 4;
    assert!(segs.len() <= bound, "{} segments sent for one input (bound {bound})", segs.len());
    for &(seq, ctl, len, _) in &segs {
        if ctl == TcpControl::Rst || ctl == TcpControl::Syn {
            continue;
        }
        let off = u64::from(seq.wrapping_sub(peer.base));
        assert!(len <= usize::from(SENDER_MSS), "segment of {len} bytes over the MSS");
        assert!(off + len as u64 <= written + 1, "segment [{off}, +{len}) beyond the {written} bytes written");
        data.push((off, len));
    }
    let runts = data.iter().filter(|&&(o, l)| l > 0 && l < usize::from(SENDER_MSS) && o + l as u64 != written).count();
    assert!(runts <= 2, "{runts} segments shorter than the MSS in one burst: {data:?}");
    if let Ok(d) = st.tcp().describe(h) {
        let field = |name: &str| -> Option<u32> {
            let at = d.find(&format!(" {name}="))? + name.len() + 2;
            d[at..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        };
        if let (Some(una), Some(nxt), Some(max)) = (field("una"), field("nxt"), field("max")) {
            let (una, nxt, max) =
                (una.wrapping_sub(peer.base), nxt.wrapping_sub(peer.base), max.wrapping_sub(peer.base));
            assert!(una <= nxt && nxt <= max, "una {una} ≤ nxt {nxt} ≤ max {max}: {d}");
            assert!(u64::from(max) <= written + 1, "max {max} within the {written} bytes written (+FIN): {d}");
        }
    }
    let u = st.memory_usage();
    assert!(u.tcp_send_queued as u64 <= written, "send queue {u:?} over {written} bytes written");
    assert!(u.pages_in_use <= PAGES as usize, "{u:?}");
    assert_eq!(st.stats().page_errors, 0);
    data
}
