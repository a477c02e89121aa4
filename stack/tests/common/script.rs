//! A scripted peer for segment-level tests: hand-built Ethernet/IPv4/TCP
//! frames in, decoded (checksum-verified) TCP segments out.

use std::net::Ipv4Addr;

use super::*;
use zcstack::mem::{HeapPages, PageMemory};
use zcstack::phy::queue::QueueDevice;
use zcstack::wire::*;
use zcstack::{Instant, Stack, State};

pub const PEER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 9);
pub const PEER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 9]);
pub const OUR_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);

pub fn stack() -> (Stack<HeapPages>, QueueDevice) {
    stack_with(zcstack::phy::DeviceCaps::default())
}

/// [`stack`] on a device with `caps`.
pub fn stack_with(caps: zcstack::phy::DeviceCaps) -> (Stack<HeapPages>, QueueDevice) {
    (Stack::new(stack_config(A_IP, 1), HeapPages::new(256, 2048), 1500), QueueDevice::new(caps))
}

pub fn eth_ip(proto: IpProtocol, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 34 + l4.len()];
    EthernetRepr { src_addr: PEER_MAC, dst_addr: OUR_MAC, ethertype: EthernetProtocol::Ipv4 }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..14]));
    Ipv4Repr { src_addr: PEER_IP, dst_addr: A_IP, next_header: proto, payload_len: l4.len(), hop_limit: 64 }
        .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..34]), &Default::default());
    f[34..].copy_from_slice(l4);
    f
}

#[derive(Clone, Copy)]
pub struct Seg<'a> {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: Option<u32>,
    pub ctl: TcpControl,
    pub win: u16,
    pub payload: &'a [u8],
    pub mss: Option<u16>,
    pub ts: Option<(u32, u32)>,
    /// Window scale option (SYN only).
    pub wscale: Option<u8>,
    /// SACK-permitted option (SYN only).
    pub sack_ok: bool,
    /// SACK blocks (absolute sequence numbers, left edge, right edge).
    pub sack: [Option<(u32, u32)>; 3],
}

pub fn seg<'a>(seq: u32, ack: Option<u32>, ctl: TcpControl) -> Seg<'a> {
    Seg {
        sport: 40000,
        dport: 80,
        seq,
        ack,
        ctl,
        win: 65535,
        payload: &[],
        mss: None,
        ts: None,
        wscale: None,
        sack_ok: false,
        sack: [None; 3],
    }
}

pub fn tcp_frame(s: Seg<'_>) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: s.sport,
        dst_port: s.dport,
        control: s.ctl,
        seq_number: TcpSeqNumber(s.seq as i32),
        ack_number: s.ack.map(|a| TcpSeqNumber(a as i32)),
        window_len: s.win,
        window_scale: s.wscale,
        max_seg_size: s.mss,
        sack_permitted: s.sack_ok,
        sack_ranges: s.sack,
        timestamp: s.ts.map(|(v, e)| TcpTimestampRepr::new(v, e)),
        payload: s.payload,
    };
    let mut l4 = vec![0u8; repr.buffer_len()];
    repr.emit(&mut TcpPacket::new_unchecked(&mut l4[..]), &PEER_IP.into(), &A_IP.into(), &Default::default());
    eth_ip(IpProtocol::Tcp, &l4)
}

/// A transmitted TCP segment, decoded (checksums verified).
#[derive(Debug)]
pub struct Got {
    pub seq: u32,
    pub ack: Option<u32>,
    pub ctl: TcpControl,
    pub win: u16,
    pub mss: Option<u16>,
    pub ts: Option<(u32, u32)>,
    pub dport: u16,
    pub payload: Vec<u8>,
    pub wscale: Option<u8>,
    pub sack_ok: bool,
    pub sack: [Option<(u32, u32)>; 3],
}

pub fn decode_tcp(f: &[u8]) -> Option<Got> {
    let eth = EthernetFrame::new_checked(f).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    assert!(ip.verify_checksum(), "IPv4 header checksum");
    if ip.next_header() != IpProtocol::Tcp {
        return None;
    }
    let tp = TcpPacket::new_checked(ip.payload()).ok()?;
    let r = TcpRepr::parse(&tp, &ip.src_addr().into(), &ip.dst_addr().into(), &Default::default())
        .expect("valid TCP with a correct checksum");
    Some(Got {
        seq: r.seq_number.0 as u32,
        ack: r.ack_number.map(|a| a.0 as u32),
        ctl: r.control,
        win: r.window_len,
        mss: r.max_seg_size,
        ts: r.timestamp.map(|t| (t.tsval, t.tsecr)),
        dport: r.dst_port,
        payload: r.payload.to_vec(),
        wscale: r.window_scale,
        sack_ok: r.sack_permitted,
        sack: r.sack_ranges,
    })
}

/// Delivers frames, polls, and returns the TCP segments sent in reply.
pub fn exchange<M: PageMemory>(
    st: &mut Stack<M>,
    dev: &mut QueueDevice,
    now: Instant,
    frames: Vec<Vec<u8>>,
) -> Vec<Got> {
    for f in frames {
        dev.push_rx(f);
    }
    st.poll(now, dev);
    dev.take_tx().iter().filter_map(|f| decode_tcp(f)).collect()
}

/// An ARP request from the peer for our address (teaches the stack its MAC).
pub fn arp_request() -> Vec<u8> {
    let repr = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: PEER_MAC,
        source_protocol_addr: PEER_IP,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: A_IP,
    };
    let mut f = vec![0u8; 14 + repr.buffer_len()];
    EthernetRepr { src_addr: PEER_MAC, dst_addr: EthernetAddress::BROADCAST, ethertype: EthernetProtocol::Arp }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..14]));
    repr.emit(&mut ArpPacket::new_unchecked(&mut f[14..]));
    f
}

/// Milliseconds as an `Instant`.
pub fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// Everything readable now, and whether EOF was seen (stops at EOF or
/// would-block; any other error is a test failure).
pub fn drain<M: PageMemory>(st: &mut Stack<M>, h: zcstack::SocketHandle) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match st.tcp_read(h, &mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(zcstack::TcpError::WouldBlock) => return (got, false),
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// A stack listening on 80 with timestamps; the peer's SYN (TSval 100) is
/// answered. Returns (stack, dev, listener, our ISS + 1, our TSval).
pub fn syn_received_ts() -> (Stack<HeapPages>, QueueDevice, zcstack::SocketHandle, u32, u32) {
    let mut cfg = stack_config(A_IP, 1);
    cfg.arp_ttl = zcstack::Duration::from_secs(1_000_000);
    syn_received_ts_on(Stack::new(cfg, HeapPages::new(256, 2048), 1500), script_device())
}

/// [`syn_received_ts`] for a stack and device built by the caller.
pub fn syn_received_ts_on<M: PageMemory>(
    mut st: Stack<M>,
    mut dev: QueueDevice,
) -> (Stack<M>, QueueDevice, zcstack::SocketHandle, u32, u32) {
    learn_peer(&mut st, &mut dev);
    let l = st.tcp_listen(80, 8).unwrap();
    let mut syn = seg(1000, None, TcpControl::Syn);
    syn.mss = Some(1460);
    syn.ts = Some((100, 0));
    let out = exchange(&mut st, &mut dev, at(0), vec![tcp_frame(syn)]);
    assert_eq!(out.len(), 1);
    (st, dev, l, out[0].seq + 1, out[0].ts.expect("timestamps negotiated").0)
}

/// A connection accepted from the scripted peer with timestamps on.
/// Returns (stack, dev, handle, our snd_nxt, the stack's latest TSval).
pub fn established_ts() -> (Stack<HeapPages>, QueueDevice, zcstack::SocketHandle, u32, u32) {
    let (st, dev, l, snd, tsv) = syn_received_ts();
    established_ts_from(st, dev, l, snd, tsv)
}

/// [`established_ts`] for a stack and device built by the caller.
pub fn established_ts_on<M: PageMemory>(
    st: Stack<M>,
    dev: QueueDevice,
) -> (Stack<M>, QueueDevice, zcstack::SocketHandle, u32, u32) {
    let (st, dev, l, snd, tsv) = syn_received_ts_on(st, dev);
    established_ts_from(st, dev, l, snd, tsv)
}

/// The peer's ACK completing [`syn_received_ts_on`]'s handshake, accepted.
fn established_ts_from<M: PageMemory>(
    mut st: Stack<M>,
    mut dev: QueueDevice,
    l: zcstack::SocketHandle,
    snd: u32,
    tsv: u32,
) -> (Stack<M>, QueueDevice, zcstack::SocketHandle, u32, u32) {
    let mut ack = seg(1001, Some(snd), TcpControl::None);
    ack.ts = Some((101, tsv));
    exchange(&mut st, &mut dev, at(1), vec![tcp_frame(ack)]);
    let (h, _) = st.tcp_accept(l).unwrap();
    assert_eq!(st.tcp_state(h), Ok(State::Established));
    (st, dev, h, snd, tsv)
}

/// Teaches the stack our MAC so replies need no ARP round trip.
pub fn learn_peer<M: PageMemory>(st: &mut Stack<M>, dev: &mut QueueDevice) {
    learn_peer_at(st, dev, Instant::ZERO)
}

/// [`learn_peer`] at `now` (ARP entries expire).
pub fn learn_peer_at<M: PageMemory>(st: &mut Stack<M>, dev: &mut QueueDevice, now: Instant) {
    dev.push_rx(arp_request());
    st.poll(now, dev);
    let replies = dev.take_tx();
    assert_eq!(replies.len(), 1, "ARP request for our address is answered");
    let eth = EthernetFrame::new_checked(&replies[0][..]).unwrap();
    assert_eq!(eth.dst_addr(), PEER_MAC);
    let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
    assert!(matches!(arp, ArpRepr::EthernetIpv4 { operation: ArpOperation::Reply, source_hardware_addr: OUR_MAC, .. }));
}

/// Opens a connection from the scripted peer; returns (stack, dev, handle, our ISN + 1).
pub fn established() -> (Stack<HeapPages>, QueueDevice, zcstack::SocketHandle, u32) {
    established_with(zcstack::phy::DeviceCaps::default())
}

/// [`established`] on a device with `caps`.
pub fn established_with(caps: zcstack::phy::DeviceCaps) -> (Stack<HeapPages>, QueueDevice, zcstack::SocketHandle, u32) {
    let (st, dev) = stack_with(caps);
    established_on(st, dev)
}

/// [`established`] for a stack built by the caller (its own config or page memory).
pub fn established_on<M: PageMemory>(
    mut st: Stack<M>,
    mut dev: QueueDevice,
) -> (Stack<M>, QueueDevice, zcstack::SocketHandle, u32) {
    learn_peer(&mut st, &mut dev);
    let l = st.tcp_listen(80, 8).unwrap();
    let mut syn = seg(1000, None, TcpControl::Syn);
    syn.mss = Some(1460);
    let out = exchange(&mut st, &mut dev, Instant::ZERO, vec![tcp_frame(syn)]);
    assert_eq!(out.len(), 1);
    let synack = &out[0];
    assert_eq!(synack.ctl, TcpControl::Syn);
    assert_eq!(synack.ack, Some(1001));
    assert_eq!(synack.mss, Some(1460));
    assert!(synack.win > 0, "the SYN-ACK opens a window");
    let iss = synack.seq;
    let out = exchange(
        &mut st,
        &mut dev,
        Instant::from_millis(1),
        vec![tcp_frame(seg(1001, Some(iss + 1), TcpControl::None))],
    );
    assert!(out.is_empty(), "the final ACK of the handshake is not answered: {out:?}");
    let (h, from) = st.tcp_accept(l).unwrap();
    assert_eq!(from, sa(PEER_IP, 40000));
    assert_eq!(st.tcp_state(h), Ok(State::Established));
    (st, dev, h, iss + 1)
}
