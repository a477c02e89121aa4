//! The receive fast path (an established connection's plain Ethernet/IPv4/
//! TCP frame, checked at fixed offsets) against every near miss: each frame
//! that differs from the common layout in one way gets the general path's
//! verdict — delivered, or dropped and counted under the general path's
//! counter — and the connection goes on in order afterwards.
mod common;

use common::script::*;
use common::*;
use zcstack::mem::HeapPages;
use zcstack::phy::queue::QueueDevice;
use zcstack::stats::Stats;
use zcstack::wire::*;
use zcstack::{Instant, SocketHandle, Stack};

/// How a test frame differs from the plain layout.
#[derive(Clone, Copy)]
struct Variant {
    mac: EthernetAddress,
    src: Ipv4Address,
    dst: Ipv4Address,
    /// Four bytes of IPv4 options (NOP NOP NOP EOL, IHL 6).
    ip_options: bool,
    /// More-fragments set (a first fragment).
    more_frags: bool,
    /// Link padding after the IP datagram, bytes.
    pad: usize,
    /// Bytes cut from the frame's end (total length beyond the frame).
    cut: usize,
    bad_ip_checksum: bool,
    bad_tcp_checksum: bool,
}

const PLAIN: Variant = Variant {
    mac: OUR_MAC,
    src: PEER_IP,
    dst: A_IP,
    ip_options: false,
    more_frags: false,
    pad: 0,
    cut: 0,
    bad_ip_checksum: false,
    bad_tcp_checksum: false,
};

/// A data segment `seq` carrying `payload` from the scripted peer, built as
/// `v` says, every checksum right unless `v` spoils it.
fn frame(v: Variant, seq: u32, ack: u32, payload: &[u8]) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: 40000,
        dst_port: 80,
        control: TcpControl::Psh,
        seq_number: TcpSeqNumber(seq as i32),
        ack_number: Some(TcpSeqNumber(ack as i32)),
        window_len: 65535,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload,
    };
    let mut l4 = vec![0u8; repr.buffer_len()];
    repr.emit(&mut TcpPacket::new_unchecked(&mut l4[..]), &v.src.into(), &v.dst.into(), &Default::default());
    if v.bad_tcp_checksum {
        l4[16] ^= 0x5a;
    }
    let ihl = if v.ip_options { 24 } else { 20 };
    let mut ip = vec![0u8; ihl + l4.len()];
    ip[0] = 0x40 | (ihl / 4) as u8;
    ip[2..4].copy_from_slice(&((ihl + l4.len()) as u16).to_be_bytes());
    ip[6] = if v.more_frags { 0x20 } else { 0x40 };
    ip[8] = 64;
    ip[9] = u8::from(IpProtocol::Tcp);
    ip[12..16].copy_from_slice(&v.src.octets());
    ip[16..20].copy_from_slice(&v.dst.octets());
    if v.ip_options {
        ip[20..24].copy_from_slice(&[1, 1, 1, 0]);
    }
    ip[ihl..].copy_from_slice(&l4);
    let mut p = Ipv4Packet::new_unchecked(&mut ip[..]);
    p.fill_checksum();
    if v.bad_ip_checksum {
        ip[10] ^= 0x33;
    }
    let mut f = vec![0u8; 14];
    EthernetRepr { src_addr: PEER_MAC, dst_addr: v.mac, ethertype: EthernetProtocol::Ipv4 }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..]));
    f.extend_from_slice(&ip);
    f.extend(std::iter::repeat_n(0u8, v.pad));
    f.truncate(f.len() - v.cut);
    f
}

/// Delivers `f` and returns what the application can read then.
fn deliver(st: &mut Stack<HeapPages>, dev: &mut QueueDevice, h: SocketHandle, now: u64, f: Vec<u8>) -> Vec<u8> {
    dev.push_rx(f);
    st.poll(Instant::from_millis(now), dev);
    dev.take_tx();
    let mut buf = [0u8; 64];
    match st.tcp_read(h, &mut buf) {
        Ok(n) => buf[..n].to_vec(),
        Err(zcstack::TcpError::WouldBlock) => Vec::new(),
        Err(e) => panic!("{e}"),
    }
}

/// The drop counters of the receive path, by name, for before/after diffs.
fn drops(s: &Stats) -> [(&'static str, u64); 7] {
    [
        ("drop_eth_not_ours", s.drop_eth_not_ours),
        ("drop_ipv4_malformed", s.drop_ipv4_malformed),
        ("drop_ipv4_not_ours", s.drop_ipv4_not_ours),
        ("drop_ipv4_bad_source", s.drop_ipv4_bad_source),
        ("drop_ipv4_fragment", s.drop_ipv4_fragment),
        ("drop_tcp_malformed", s.drop_tcp_malformed),
        ("drop_tcp_no_socket", s.drop_tcp_no_socket),
    ]
}

#[test]
fn near_misses_of_the_plain_layout_get_the_general_verdict() {
    let (mut st, mut dev, h, snd) = established();
    let mut seq = 1001u32;
    let mut now = 2;
    // (what differs, the frame's variant, the counter that must rise by
    // one, or None: the data is delivered).
    let cases: Vec<(&str, Variant, Option<&str>)> = vec![
        ("plain", PLAIN, None),
        ("IPv4 options", Variant { ip_options: true, ..PLAIN }, None),
        ("broadcast MAC", Variant { mac: EthernetAddress::BROADCAST, ..PLAIN }, None),
        ("link padding", Variant { pad: 11, ..PLAIN }, None),
        ("other MAC", Variant { mac: EthernetAddress([2, 0, 0, 0, 0, 7]), ..PLAIN }, Some("drop_eth_not_ours")),
        ("IPv4 checksum", Variant { bad_ip_checksum: true, ..PLAIN }, Some("drop_ipv4_malformed")),
        ("truncated datagram", Variant { cut: 3, ..PLAIN }, Some("drop_ipv4_malformed")),
        ("TCP checksum", Variant { bad_tcp_checksum: true, ..PLAIN }, Some("drop_tcp_malformed")),
        ("loopback source", Variant { src: Ipv4Address::new(127, 0, 0, 1), ..PLAIN }, Some("drop_ipv4_bad_source")),
        ("our own source", Variant { src: A_IP, ..PLAIN }, Some("drop_ipv4_bad_source")),
        ("other destination", Variant { dst: Ipv4Address::new(10, 0, 0, 3), ..PLAIN }, Some("drop_ipv4_not_ours")),
        (
            "options and TCP checksum",
            Variant { ip_options: true, bad_tcp_checksum: true, ..PLAIN },
            Some("drop_tcp_malformed"),
        ),
        ("plain again", PLAIN, None),
    ];
    for (what, v, counter) in cases {
        let payload = format!("{what}!");
        let before = drops(st.stats());
        let got = deliver(&mut st, &mut dev, h, now, frame(v, seq, snd, payload.as_bytes()));
        let after = drops(st.stats());
        now += 1;
        match counter {
            None => {
                assert_eq!(got, payload.as_bytes(), "{what}: delivered exactly");
                assert_eq!(before, after, "{what}: nothing dropped");
                seq += payload.len() as u32;
            }
            Some(name) => {
                assert!(got.is_empty(), "{what}: not delivered");
                for ((n, b), (_, a)) in before.iter().zip(after.iter()) {
                    let want = if *n == name { b + 1 } else { *b };
                    assert_eq!(*a, want, "{what}: {n}");
                }
            }
        }
    }
    // A first fragment waits for the rest (reassembly), nothing delivered
    // nor dropped; the connection still takes the next plain segment.
    let before = drops(st.stats());
    let got = deliver(&mut st, &mut dev, h, now, frame(Variant { more_frags: true, ..PLAIN }, seq, snd, b"frag"));
    assert!(got.is_empty(), "a lone first fragment is not delivered");
    assert_eq!(drops(st.stats()), before, "a lone first fragment is held, not dropped");
    let got = deliver(&mut st, &mut dev, h, now + 1, frame(PLAIN, seq, snd, b"last"));
    assert_eq!(got, b"last");
}
