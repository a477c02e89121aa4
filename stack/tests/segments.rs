//! Segment-level tests: a scripted peer sends hand-built frames to one stack
//! and checks every frame it answers with (RFC 9293 state transitions,
//! RFC 5961 challenge ACKs, RST generation, ARP, ICMP, UDP).
mod common;

use common::script::*;
use common::*;
use zcstack::mem::{HeapPages, PageMemory};
use zcstack::wire::*;
use zcstack::{Instant, Stack, State};

#[test]
fn passive_open_data_and_passive_close() {
    let (mut st, mut dev, h, snd) = established();
    // Data arrives in order: delayed ACK, then ACK after the timer.
    let mut d = seg(1001, Some(snd), TcpControl::Psh);
    d.payload = b"hello";
    let out = exchange(&mut st, &mut dev, Instant::from_millis(2), vec![tcp_frame(d)]);
    assert!(out.is_empty(), "one segment is ACKed after the delayed-ACK timer: {out:?}");
    let mut buf = [0u8; 16];
    assert_eq!(st.tcp_read(h, &mut buf), Ok(5));
    assert_eq!(&buf[..5], b"hello");
    st.poll(Instant::from_millis(50), &mut dev);
    let out: Vec<Got> = dev.take_tx().iter().filter_map(|f| decode_tcp(f)).collect();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ack, Some(1006));
    // Our data goes out with the right sequence number.
    st.tcp_write(h, b"world").unwrap();
    st.poll(Instant::from_millis(51), &mut dev);
    let out: Vec<Got> = dev.take_tx().iter().filter_map(|f| decode_tcp(f)).collect();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].seq, out[0].payload.as_slice()), (snd, &b"world"[..]));
    // Peer FIN (acking our data): CLOSE-WAIT, ACKed at once, EOF on read.
    let out = exchange(
        &mut st,
        &mut dev,
        Instant::from_millis(52),
        vec![tcp_frame(seg(1006, Some(snd + 5), TcpControl::Fin))],
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ack, Some(1007));
    assert_eq!(st.tcp_state(h), Ok(State::CloseWait));
    assert_eq!(st.tcp_read(h, &mut buf), Ok(0));
    // Our close: LAST-ACK with a FIN; the peer's ACK frees the connection.
    st.tcp_close(h, Instant::from_millis(53)).unwrap();
    st.poll(Instant::from_millis(53), &mut dev);
    let out: Vec<Got> = dev.take_tx().iter().filter_map(|f| decode_tcp(f)).collect();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].ctl, out[0].seq), (TcpControl::Fin, snd + 5));
    assert_eq!(st.tcp_connections(), 1);
    exchange(&mut st, &mut dev, Instant::from_millis(54), vec![tcp_frame(seg(1007, Some(snd + 6), TcpControl::None))]);
    assert_eq!(st.tcp_connections(), 0, "LAST-ACK -> CLOSED frees the connection");
    assert_eq!(st.mem().free_count(), 256, "no page leaked");
}

#[test]
fn out_of_window_and_blind_segments_get_challenge_acks_not_resets() {
    let (mut st, mut dev, h, snd) = established();
    // RST with an in-window but inexact sequence number: challenge ACK (RFC 5961 3.2).
    let out = exchange(&mut st, &mut dev, Instant::from_millis(2), vec![tcp_frame(seg(1500, None, TcpControl::Rst))]);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].ctl, out[0].ack), (TcpControl::None, Some(1001)));
    assert_eq!(st.tcp_state(h), Ok(State::Established));
    // RST far outside the window: silently dropped.
    let out =
        exchange(&mut st, &mut dev, Instant::from_millis(3), vec![tcp_frame(seg(900_000_000, None, TcpControl::Rst))]);
    assert!(out.is_empty());
    // SYN on an established connection: challenge ACK (RFC 5961 4.2).
    let out = exchange(&mut st, &mut dev, Instant::from_millis(4), vec![tcp_frame(seg(5000, None, TcpControl::Syn))]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ack, Some(1001));
    assert_eq!(st.tcp_state(h), Ok(State::Established));
    // Data outside the window: ACK, data dropped.
    let mut d = seg(1001 + 10_000_000, Some(snd), TcpControl::None);
    d.payload = b"evil";
    let out = exchange(&mut st, &mut dev, Instant::from_millis(5), vec![tcp_frame(d)]);
    assert_eq!(out.len(), 1);
    let mut buf = [0u8; 8];
    assert_eq!(st.tcp_read(h, &mut buf), Err(zcstack::TcpError::WouldBlock));
    // An ACK for data never sent: ACK back, ignored.
    let out = exchange(
        &mut st,
        &mut dev,
        Instant::from_millis(6),
        vec![tcp_frame(seg(1001, Some(snd + 1_000_000), TcpControl::None))],
    );
    assert_eq!(out.len(), 1);
    // The exact RST resets.
    exchange(&mut st, &mut dev, Instant::from_millis(7), vec![tcp_frame(seg(1001, None, TcpControl::Rst))]);
    assert_eq!(st.tcp_read(h, &mut buf), Err(zcstack::TcpError::Reset));
    assert!(st.stats().tcp_challenge_acks >= 2);
}

#[test]
fn segments_to_closed_ports_are_reset() {
    let (mut st, mut dev) = stack();
    learn_peer(&mut st, &mut dev);
    let out = exchange(&mut st, &mut dev, Instant::ZERO, vec![tcp_frame(seg(7, None, TcpControl::Syn))]);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].ctl, out[0].seq, out[0].ack), (TcpControl::Rst, 0, Some(8)));
    let out = exchange(&mut st, &mut dev, Instant::ZERO, vec![tcp_frame(seg(7, Some(99), TcpControl::None))]);
    assert_eq!((out[0].ctl, out[0].seq, out[0].ack), (TcpControl::Rst, 99, None));
    // Never a RST for a RST.
    let out = exchange(&mut st, &mut dev, Instant::ZERO, vec![tcp_frame(seg(7, None, TcpControl::Rst))]);
    assert!(out.is_empty());
    assert_eq!(st.stats().drop_tcp_no_socket, 3);
}

#[test]
fn syn_backlog_limit_drops_and_counts_without_cookies() {
    let mut cfg = stack_config(A_IP, 1);
    cfg.tcp.syn_cookies = false;
    let mut st = Stack::new(cfg, HeapPages::new(256, 2048), 1500);
    let mut dev = script_device();
    learn_peer(&mut st, &mut dev);
    let _l = st.tcp_listen(80, 2).unwrap();
    let frames = (0..5u16)
        .map(|i| {
            let mut s = seg(100, None, TcpControl::Syn);
            s.sport = 1000 + i;
            tcp_frame(s)
        })
        .collect();
    let out = exchange(&mut st, &mut dev, Instant::ZERO, frames);
    assert_eq!(out.iter().filter(|g| g.ctl == TcpControl::Syn).count(), 2);
    assert_eq!(st.stats().drop_tcp_backlog_full, 3);
}

#[test]
fn syn_cookies_answer_a_full_syn_queue_statelessly() {
    let (mut st, mut dev) = stack();
    learn_peer(&mut st, &mut dev);
    let l = st.tcp_listen(80, 2).unwrap();
    let frames = (0..5u16)
        .map(|i| {
            let mut s = seg(100 + u32::from(i), None, TcpControl::Syn);
            s.sport = 1000 + i;
            s.mss = Some(1460);
            tcp_frame(s)
        })
        .collect();
    let out = exchange(&mut st, &mut dev, Instant::ZERO, frames);
    assert_eq!(out.iter().filter(|g| g.ctl == TcpControl::Syn).count(), 5, "every SYN is answered");
    assert_eq!(st.stats().tcp_syn_cookies_sent, 3);
    assert_eq!(st.tcp_connections(), 2, "cookies keep no state");
    // The fifth peer completes with its cookie: a connection appears, established.
    let synack = out.iter().find(|g| g.dport == 1004).expect("SYN-ACK to the fifth peer");
    let cookie = synack.seq;
    assert_eq!(synack.mss, Some(1460), "the MSS survives in the cookie");
    let mut ack = seg(105, Some(cookie.wrapping_add(1)), TcpControl::Psh);
    ack.sport = 1004;
    ack.payload = b"data with the ACK";
    exchange(&mut st, &mut dev, Instant::from_millis(5), vec![tcp_frame(ack)]);
    assert_eq!(st.stats().tcp_syn_cookies_ok, 1);
    let (h, from) = st.tcp_accept(l).unwrap();
    assert_eq!(from.port(), 1004);
    let mut buf = [0u8; 32];
    assert_eq!(st.tcp_read(h, &mut buf), Ok(17));
    // A forged ACK (wrong cookie) is answered with a RST, no connection.
    let mut forged = seg(104, Some(cookie ^ 0x55), TcpControl::None);
    forged.sport = 1003;
    let out = exchange(&mut st, &mut dev, Instant::from_millis(6), vec![tcp_frame(forged)]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ctl, TcpControl::Rst);
    assert_eq!(st.stats().tcp_syn_cookies_ok, 1);
    // A valid cookie returned too late (more than one 64-second tick) is refused.
    let third = out_cookie_for(&mut st, &mut dev, 2000);
    let mut late = seg(2001, Some(third.wrapping_add(1)), TcpControl::None);
    late.sport = 2000;
    let refused_before = st.stats().drop_tcp_no_socket;
    exchange(&mut st, &mut dev, Instant::from_millis(200_000), vec![tcp_frame(late)]);
    assert_eq!(st.stats().tcp_syn_cookies_ok, 1, "an expired cookie establishes nothing");
    assert_eq!(st.stats().drop_tcp_no_socket, refused_before + 1, "it is treated as a segment for no socket (RST)");
}

/// Sends a SYN from `port` to a listener whose SYN queue is full; returns the cookie.
fn out_cookie_for(st: &mut Stack<HeapPages>, dev: &mut zcstack::phy::queue::QueueDevice, port: u16) -> u32 {
    let mut s = seg(2000, None, TcpControl::Syn);
    s.sport = port;
    let out = exchange(st, dev, Instant::from_millis(6), vec![tcp_frame(s)]);
    out.iter().find(|g| g.dport == port && g.ctl == TcpControl::Syn).expect("cookie SYN-ACK").seq
}

#[test]
fn icmp_echo_and_udp_port_unreachable() {
    let (mut st, mut dev) = stack();
    learn_peer(&mut st, &mut dev);
    let req = Icmpv4Repr::EchoRequest { ident: 7, seq_no: 3, data: b"ping!" };
    let mut l4 = vec![0u8; req.buffer_len()];
    req.emit(&mut Icmpv4Packet::new_unchecked(&mut l4[..]), &Default::default());
    dev.push_rx(eth_ip(IpProtocol::Icmp, &l4));
    // UDP to a closed port.
    let udp = UdpRepr { src_port: 5555, dst_port: 9 };
    let mut u = vec![0u8; 8 + 3];
    udp.emit(
        &mut UdpPacket::new_unchecked(&mut u[..]),
        &PEER_IP.into(),
        &A_IP.into(),
        3,
        |b| b.copy_from_slice(b"abc"),
        &Default::default(),
    );
    dev.push_rx(eth_ip(IpProtocol::Udp, &u));
    st.poll(Instant::ZERO, &mut dev);
    let sent = dev.take_tx();
    assert_eq!(sent.len(), 2);
    let icmps: Vec<(u8, u8)> = sent
        .iter()
        .map(|f| {
            let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
            assert_eq!(ip.dst_addr(), PEER_IP);
            let ic = Icmpv4Packet::new_checked(ip.payload()).unwrap();
            assert!(ic.verify_checksum());
            (ic.msg_type().into(), ic.msg_code())
        })
        .collect();
    assert!(icmps.contains(&(0, 0)), "echo reply: {icmps:?}");
    assert!(icmps.contains(&(3, 3)), "port unreachable: {icmps:?}");
    // A bound UDP socket receives and answers.
    let h = st.udp_bind(9).unwrap();
    dev.push_rx(eth_ip(IpProtocol::Udp, &u));
    st.poll(Instant::ZERO, &mut dev);
    let mut buf = [0u8; 8];
    let (n, from) = st.udp_recv_from(h, &mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"abc"[..], sa(PEER_IP, 5555)));
    st.udp_send_to(h, from, b"xyz").unwrap();
    st.poll(Instant::ZERO, &mut dev);
    let sent = dev.take_tx();
    let ip = Ipv4Packet::new_checked(&sent[0][14..]).unwrap();
    let up = UdpPacket::new_checked(ip.payload()).unwrap();
    assert!(up.verify_checksum(&ip.src_addr().into(), &ip.dst_addr().into()));
    assert_eq!(up.payload(), b"xyz");
}

#[test]
fn active_open_to_unreachable_host_arps_then_gives_up() {
    let (mut st, mut dev) = stack();
    let h = st.tcp_connect(sa(PEER_IP, 80), 0, Instant::ZERO).unwrap();
    st.poll(Instant::ZERO, &mut dev);
    let sent = dev.take_tx();
    assert_eq!(sent.len(), 1, "an ARP request, no TCP yet");
    assert_eq!(EthernetFrame::new_checked(&sent[0][..]).unwrap().ethertype(), EthernetProtocol::Arp);
    // No answer: the SYN retransmits pile up behind ARP, which gives up after 3 requests.
    let mut now = Instant::ZERO;
    for _ in 0..200 {
        match st.poll_at() {
            Some(t) if t > now => now = t,
            Some(_) => {}
            None => break,
        }
        st.poll(now, &mut dev);
        dev.take_tx();
    }
    assert!(st.stats().drop_arp_unresolved > 0);
    assert_eq!(st.tcp_read(h, &mut [0u8; 4]), Err(zcstack::TcpError::TimedOut));
    assert_eq!(st.mem().free_count(), 256);
}

#[test]
fn timestamps_are_negotiated_echoed_and_paws_drops_old_segments() {
    let (mut st, mut dev) = stack();
    learn_peer(&mut st, &mut dev);
    let l = st.tcp_listen(80, 8).unwrap();
    let mut syn = seg(5000, None, TcpControl::Syn);
    syn.ts = Some((1000, 0));
    let out = exchange(&mut st, &mut dev, Instant::ZERO, vec![tcp_frame(syn)]);
    let (tsval, tsecr) = out[0].ts.expect("SYN-ACK carries timestamps when the SYN did");
    assert_eq!(tsecr, 1000, "echoes the SYN's TSval");
    let snd = out[0].seq + 1;
    let mut ack = seg(5001, Some(snd), TcpControl::None);
    ack.ts = Some((1001, tsval));
    exchange(&mut st, &mut dev, Instant::from_millis(1), vec![tcp_frame(ack)]);
    let (h, _) = st.tcp_accept(l).unwrap();
    // In-order data with a newer timestamp is accepted.
    let mut d = seg(5001, Some(snd), TcpControl::Psh);
    d.payload = b"new";
    d.ts = Some((1005, tsval));
    exchange(&mut st, &mut dev, Instant::from_millis(2), vec![tcp_frame(d)]);
    let mut buf = [0u8; 8];
    assert_eq!(st.tcp_read(h, &mut buf), Ok(3));
    // A segment whose TSval went backwards is an old duplicate: dropped, ACKed.
    let mut old = seg(5004, Some(snd), TcpControl::Psh);
    old.payload = b"old";
    old.ts = Some((900, tsval));
    let out = exchange(&mut st, &mut dev, Instant::from_millis(3), vec![tcp_frame(old)]);
    assert_eq!(out.len(), 1, "PAWS answers with an ACK");
    assert_eq!(out[0].ack, Some(5004));
    assert!(out[0].ts.is_some(), "every segment carries timestamps once negotiated");
    assert_eq!(st.tcp_read(h, &mut buf), Err(zcstack::TcpError::WouldBlock));
    assert_eq!(st.stats().drop_tcp_paws, 1);
    // A RST is never dropped by PAWS (RFC 7323 5.3).
    let mut rst = seg(5004, None, TcpControl::Rst);
    rst.ts = Some((1, 0));
    exchange(&mut st, &mut dev, Instant::from_millis(4), vec![tcp_frame(rst)]);
    assert_eq!(st.tcp_read(h, &mut buf), Err(zcstack::TcpError::Reset));
}

/// RFC 7323 5.3 R1 rejects only a TSval *older* than TS.Recent: segments a
/// path (or zcstack's own software steering) reordered within one tick of
/// the peer's timestamp clock carry an equal TSval and must be accepted,
/// in any order, including a pure ACK that arrives after newer data.
#[test]
fn paws_accepts_reordered_segments_with_an_equal_tsval() {
    let (mut st, mut dev) = stack();
    learn_peer(&mut st, &mut dev);
    let l = st.tcp_listen(80, 8).unwrap();
    let mut syn = seg(5000, None, TcpControl::Syn);
    syn.ts = Some((1000, 0));
    let out = exchange(&mut st, &mut dev, Instant::ZERO, vec![tcp_frame(syn)]);
    let (tsval, _) = out[0].ts.expect("timestamps negotiated");
    let snd = out[0].seq + 1;
    let mut ack = seg(5001, Some(snd), TcpControl::None);
    ack.ts = Some((1000, tsval));
    exchange(&mut st, &mut dev, Instant::from_millis(1), vec![tcp_frame(ack)]);
    let (h, _) = st.tcp_accept(l).unwrap();
    // Three segments sent in one tick (TSval 1007), delivered 3, 1, 2.
    let mk = |seq: u32, payload: &'static [u8]| {
        let mut d = seg(seq, Some(snd), TcpControl::Psh);
        d.payload = payload;
        d.ts = Some((1007, tsval));
        tcp_frame(d)
    };
    exchange(&mut st, &mut dev, Instant::from_millis(2), vec![mk(5007, b"ghi")]);
    exchange(&mut st, &mut dev, Instant::from_millis(3), vec![mk(5001, b"abc")]);
    exchange(&mut st, &mut dev, Instant::from_millis(4), vec![mk(5004, b"def")]);
    // The handshake's ACK again, late and with the same TSval as the data
    // is not "older": no PAWS drop either.
    let mut late = seg(5001, Some(snd), TcpControl::None);
    late.ts = Some((1007, tsval));
    exchange(&mut st, &mut dev, Instant::from_millis(5), vec![tcp_frame(late)]);
    let mut buf = [0u8; 16];
    assert_eq!(st.tcp_read(h, &mut buf), Ok(9));
    assert_eq!(&buf[..9], b"abcdefghi", "every segment accepted, in sequence order");
    assert_eq!(st.stats().drop_tcp_paws, 0, "an equal TSval is never a PAWS drop");
    // One tick older than TS.Recent (now 1007) passes (Linux's
    // TCP_PAWS_WINDOW: reordering by a tick); two ticks older is dropped.
    let mut late1 = seg(5010, Some(snd), TcpControl::Psh);
    late1.payload = b"x";
    late1.ts = Some((1006, tsval));
    exchange(&mut st, &mut dev, Instant::from_millis(6), vec![tcp_frame(late1)]);
    assert_eq!(st.stats().drop_tcp_paws, 0, "one tick of reordering is not an old duplicate");
    assert_eq!(st.tcp_read(h, &mut buf), Ok(1));
    let mut old = seg(5011, Some(snd), TcpControl::Psh);
    old.payload = b"y";
    old.ts = Some((1005, tsval));
    exchange(&mut st, &mut dev, Instant::from_millis(7), vec![tcp_frame(old)]);
    assert_eq!(st.stats().drop_tcp_paws, 1);
    assert_eq!(st.tcp_read(h, &mut buf), Err(zcstack::TcpError::WouldBlock));
}

#[test]
fn without_timestamps_in_the_syn_none_are_sent() {
    let (mut st, mut dev, h, _snd) = established();
    st.tcp_write(h, b"x").unwrap();
    st.poll(Instant::from_millis(100), &mut dev);
    let out: Vec<Got> = dev.take_tx().iter().filter_map(|f| decode_tcp(f)).collect();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].payload, b"x");
    assert!(out[0].ts.is_none(), "the peer did not offer timestamps");
}

/// An IPv4 fragment from the scripted peer: `payload` is this fragment's part.
fn fragment(proto: IpProtocol, ident: u16, offset: usize, more: bool, part: &[u8]) -> Vec<u8> {
    let mut f = eth_ip(proto, part);
    let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
    ip.set_ident(ident);
    ip.set_more_frags(more);
    ip.set_frag_offset(offset as u16);
    ip.set_dont_frag(false);
    ip.fill_checksum();
    f
}

#[test]
fn fragmented_datagrams_are_reassembled() {
    let (mut st, mut dev) = stack();
    learn_peer(&mut st, &mut dev);
    let h = st.udp_bind(9).unwrap();
    // A 3000-byte UDP datagram in three fragments, delivered out of order.
    let body: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    let udp = UdpRepr { src_port: 5555, dst_port: 9 };
    let mut whole = vec![0u8; 8 + body.len()];
    udp.emit(
        &mut UdpPacket::new_unchecked(&mut whole[..]),
        &PEER_IP.into(),
        &A_IP.into(),
        body.len(),
        |b| b.copy_from_slice(&body),
        &Default::default(),
    );
    dev.push_rx(fragment(IpProtocol::Udp, 77, 2400, false, &whole[2400..]));
    dev.push_rx(fragment(IpProtocol::Udp, 77, 0, true, &whole[..1200]));
    st.poll(Instant::ZERO, &mut dev);
    let mut buf = vec![0u8; 4096];
    assert!(st.udp_recv_from(h, &mut buf).is_err(), "incomplete: nothing delivered yet");
    dev.push_rx(fragment(IpProtocol::Udp, 77, 1200, true, &whole[1200..2400]));
    st.poll(Instant::ZERO, &mut dev);
    let (n, _) = st.udp_recv_from(h, &mut buf).unwrap();
    assert_eq!(&buf[..n], &body[..]);
    assert_eq!(st.stats().ipv4_reassembled, 1);
    // An overlapping fragment poisons its datagram; a lone fragment times out.
    dev.push_rx(fragment(IpProtocol::Udp, 78, 0, true, &whole[..1200]));
    dev.push_rx(fragment(IpProtocol::Udp, 78, 800, false, &whole[800..1600]));
    dev.push_rx(fragment(IpProtocol::Udp, 79, 0, true, &whole[..1200]));
    st.poll(Instant::ZERO, &mut dev);
    assert!(st.udp_recv_from(h, &mut buf).is_err());
    let dropped = st.stats().drop_ipv4_fragment;
    assert!(dropped >= 1);
    st.poll(Instant::from_millis(31_000), &mut dev);
    assert!(st.stats().drop_ipv4_fragment > dropped, "the incomplete datagram expired");
    assert_eq!(st.poll_at(), None, "nothing left waiting");
}

#[test]
fn gratuitous_arp_announces_our_address() {
    let (mut st, mut dev) = stack();
    st.announce();
    st.poll(Instant::ZERO, &mut dev);
    let sent = dev.take_tx();
    assert_eq!(sent.len(), 1);
    let eth = EthernetFrame::new_checked(&sent[0][..]).unwrap();
    assert_eq!(eth.dst_addr(), EthernetAddress::BROADCAST);
    let arp = ArpRepr::parse(&ArpPacket::new_checked(eth.payload()).unwrap()).unwrap();
    let ArpRepr::EthernetIpv4 { operation, source_hardware_addr, source_protocol_addr, target_protocol_addr, .. } = arp
    else {
        panic!("not IPv4 ARP")
    };
    assert_eq!(operation, ArpOperation::Request);
    assert_eq!(source_hardware_addr, OUR_MAC);
    assert_eq!((source_protocol_addr, target_protocol_addr), (A_IP, A_IP), "sender = target = our address");
}

/// Our TSval clock is milliseconds plus a per-connection offset, modulo
/// 2^32: it wraps (after 49.7 days of uptime, or at once for a large
/// offset) without an overflow, and keeps counting milliseconds across the
/// wrap. Found by a connection-per-request load where a debug build
/// panicked on the addition.
#[test]
fn timestamp_clock_wraps_modulo_2_32() {
    let (mut st, mut dev) = stack();
    // u32::MAX ms: any offset above 0 wraps.
    let t0 = Instant::from_millis(u64::from(u32::MAX) - 3);
    learn_peer_at(&mut st, &mut dev, t0);
    let l = st.tcp_listen(80, 64).unwrap();
    for port in 0..32u16 {
        let mut syn = seg(1000, None, TcpControl::Syn);
        syn.sport = 41000 + port;
        syn.mss = Some(1460);
        syn.ts = Some((77, 0));
        let out = exchange(&mut st, &mut dev, t0, vec![tcp_frame(syn)]);
        assert_eq!(out.len(), 1, "{out:?}");
        let (tsval0, tsecr) = out[0].ts.expect("timestamps negotiated");
        assert_eq!(tsecr, 77);
        let iss = out[0].seq;
        let mut ack = seg(1001, Some(iss.wrapping_add(1)), TcpControl::None);
        ack.sport = syn.sport;
        ack.ts = Some((78, tsval0));
        assert!(exchange(&mut st, &mut dev, t0 + zcstack::Duration::from_millis(1), vec![tcp_frame(ack)]).is_empty());
        let (h, _) = st.tcp_accept(l).unwrap();
        st.tcp_set_option(h, zcstack::tcp::SockOpt::NoDelay(true), t0).unwrap();
        assert_eq!(st.tcp_write(h, b"x"), Ok(1));
        let out = exchange(&mut st, &mut dev, t0 + zcstack::Duration::from_millis(10), vec![]);
        assert_eq!(out.len(), 1, "{out:?}");
        let (tsval1, _) = out[0].ts.unwrap();
        assert_eq!(tsval1.wrapping_sub(tsval0), 10, "10 ms later across the wrap");
    }
}

/// `push_output` sends what the application just wrote without a full
/// poll, and does nothing (returns false) when nothing is queued.
#[test]
fn push_output_sends_written_data_without_a_poll() {
    let (mut st, mut dev, h, snd) = established();
    let t = Instant::from_millis(2);
    assert!(!st.push_output(t, &mut dev), "nothing queued");
    assert!(dev.take_tx().is_empty());
    assert_eq!(st.tcp_write(h, b"reply"), Ok(5));
    assert!(st.push_output(t, &mut dev));
    let out: Vec<Got> = dev.take_tx().iter().filter_map(|f| decode_tcp(f)).collect();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!((out[0].seq, out[0].payload.as_slice()), (snd, &b"reply"[..]));
    assert!(!st.push_output(t, &mut dev), "sent once");
}

/// A device that vouches for every frame's L4 checksum (as a DPDK port
/// with the RX checksum offload does).
struct Vouching<'a>(&'a mut zcstack::phy::queue::QueueDevice);

impl zcstack::phy::Device for Vouching<'_> {
    fn caps(&self) -> zcstack::phy::DeviceCaps {
        self.0.caps()
    }
    fn receive(&mut self, now: Instant, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize {
        self.0.receive(now, budget, sink)
    }
    fn receive_frames(
        &mut self,
        now: Instant,
        budget: usize,
        sink: &mut dyn FnMut(zcstack::phy::RxFrame<'_>),
    ) -> usize {
        self.0.receive(now, budget, &mut |b: &[u8]| sink(zcstack::phy::RxFrame::L4Verified(b)))
    }
    fn transmit(
        &mut self,
        now: Instant,
        frame: zcstack::phy::TxFrame,
        mem: &dyn PageMemory,
    ) -> Result<(), zcstack::phy::TxFrame> {
        self.0.transmit(now, frame, mem)
    }
    fn poll_completions(&mut self, now: Instant, done: &mut dyn FnMut(zcstack::phy::TxFrame)) {
        self.0.poll_completions(now, done)
    }
}

/// A frame the device vouches for skips the engine's TCP checksum check
/// (a partial checksum from a virtio peer is accepted); the same frame
/// from a device that does not vouch is dropped and counted.
#[test]
fn device_verified_l4_checksums_are_trusted_and_others_checked() {
    let (mut st, mut dev, h, snd) = established();
    let mut d = seg(1001, Some(snd), TcpControl::Psh);
    d.payload = b"partial";
    let mut f = tcp_frame(d);
    f[14 + 20 + 16] ^= 0x5a; // TCP checksum: no longer the full sum
    dev.push_rx(f.clone());
    st.poll(Instant::from_millis(2), &mut dev);
    assert_eq!(st.stats().drop_tcp_malformed, 1, "checked and dropped");
    let mut buf = [0u8; 16];
    assert_eq!(st.tcp_read(h, &mut buf), Err(zcstack::TcpError::WouldBlock));
    dev.push_rx(f);
    st.poll(Instant::from_millis(3), &mut Vouching(&mut dev));
    assert_eq!(st.stats().drop_tcp_malformed, 1);
    assert_eq!(st.tcp_read(h, &mut buf), Ok(7), "accepted on the device's word");
    assert_eq!(&buf[..7], b"partial");
}

#[test]
fn tso_frames_carry_whole_segments_and_retransmissions_go_one_by_one() {
    // A device with checksum offload and TSO (it completes checksums and
    // records TSO frames whole, as virtio hands a frame to vhost).
    let caps = zcstack::phy::DeviceCaps { tx_checksum_offload: true, tso_max: 32 * 1024, ..Default::default() };
    let (mut st, mut dev, h, snd) = established_with(caps);
    let sent = |dev: &mut zcstack::phy::queue::QueueDevice| -> Vec<Got> {
        dev.take_tx().iter().filter_map(|f| decode_tcp(f)).collect()
    };
    let data: Vec<u8> = (0..40_000u32).map(|i| (i * 7) as u8).collect();
    assert_eq!(st.tcp_write(h, &data), Ok(40_000));
    st.poll(Instant::from_millis(2), &mut dev);
    let out = sent(&mut dev);
    // The initial window (10 segments of 1460) leaves as one frame.
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!((out[0].seq, out[0].payload.len()), (snd, 14_600));
    assert_eq!(out[0].payload, data[..14_600]);
    assert_eq!(st.stats().tcp_tso_frames, 1);
    // Nothing is ACKed: the timeout resends one segment, not the frame.
    st.poll(Instant::from_millis(1100), &mut dev);
    let out = sent(&mut dev);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!((out[0].seq, out[0].payload.len()), (snd, 1460));
    // Everything ACKed: new data goes in whole segments again, up to what
    // the window allows (cwnd restarts small after the timeout).
    let ack = seg(1001, Some(snd + 14_600), TcpControl::None);
    let out: Vec<Got> = {
        dev.push_rx(tcp_frame(ack));
        st.poll(Instant::from_millis(1101), &mut dev);
        sent(&mut dev)
    };
    assert!(!out.is_empty(), "more data follows the ACK");
    assert_eq!(out[0].seq, snd + 14_600);
    let mut at = snd + 14_600;
    for g in &out {
        assert_eq!(g.seq, at, "in order, no gaps");
        assert_eq!(g.payload.len() % 1460, 0, "whole segments: {}", g.payload.len());
        at += g.payload.len() as u32;
    }
}

/// Every TCP frame the engine sends (data of odd and even lengths, across
/// page buffers, with and without timestamps, with and without checksum
/// offload completed by the device, FIN with PSH, and a RST) is byte for
/// byte what smoltcp's `EthernetRepr`/`Ipv4Repr`/`TcpRepr::emit` write for
/// the same fields with their checksums: the one-pass frame emit (headers
/// and checksums summed from the values written) changed nothing on the
/// wire.
#[test]
fn tcp_frames_are_the_bytes_smoltcp_emits() {
    use zcstack::tcp::SockOpt;
    let offload = zcstack::phy::DeviceCaps { tx_checksum_offload: true, ..Default::default() };
    let mut checked = 0;
    for (ts, caps) in [(false, Default::default()), (false, offload), (true, Default::default())] {
        let (mut st, mut dev, h) = if ts {
            let (st, dev, h, _, _) = established_ts();
            (st, dev, h)
        } else {
            let (st, dev, h, _) = established_with(caps);
            (st, dev, h)
        };
        st.tcp_set_option(h, SockOpt::NoDelay(true), at(2)).unwrap();
        let mut frames = Vec::new();
        let mut now = 2;
        let peer_ack = |st: &mut Stack<HeapPages>, dev: &mut zcstack::phy::queue::QueueDevice, now: u64| {
            let out = dev.take_tx();
            for f in &out {
                let g = decode_tcp(f).expect("a TCP frame");
                let end = g.seq + g.payload.len() as u32 + u32::from(g.ctl == TcpControl::Fin);
                let mut a = seg(1001, Some(end), TcpControl::None);
                a.ts = g.ts.map(|(v, _)| (200 + now as u32, v));
                dev.push_rx(tcp_frame(a));
            }
            st.poll(at(now), dev);
            out
        };
        for len in [1usize, 63, 64, 65, 333, 1460, 2047, 2049, 4001] {
            let data: Vec<u8> = (0..len).map(|i| (i * 131 + len) as u8).collect();
            assert_eq!(st.tcp_write(h, &data), Ok(len));
            st.poll(at(now), &mut dev);
            frames.extend(peer_ack(&mut st, &mut dev, now));
            now += 1;
        }
        st.tcp_write(h, b"last words").unwrap();
        st.tcp_close(h, at(now)).unwrap();
        st.poll(at(now), &mut dev);
        frames.extend(peer_ack(&mut st, &mut dev, now));
        assert!(frames.len() >= 11, "{}", frames.len());
        // A RST for a segment to a port with no connection.
        let mut stray = seg(7, Some(9), TcpControl::None);
        stray.dport = 4444;
        dev.push_rx(tcp_frame(stray));
        st.poll(at(now + 2), &mut dev);
        frames.extend(dev.take_tx());
        for f in &frames {
            let eth = EthernetFrame::new_checked(&f[..]).unwrap();
            let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            let tp = TcpPacket::new_checked(ip.payload()).unwrap();
            let r = TcpRepr::parse(&tp, &src.into(), &dst.into(), &Default::default()).unwrap();
            let ipr = Ipv4Repr {
                src_addr: src,
                dst_addr: dst,
                next_header: IpProtocol::Tcp,
                payload_len: r.buffer_len(),
                hop_limit: 64,
            };
            let mut want = vec![0u8; 14 + 20 + r.buffer_len()];
            EthernetRepr { src_addr: eth.src_addr(), dst_addr: eth.dst_addr(), ethertype: EthernetProtocol::Ipv4 }
                .emit(&mut EthernetFrame::new_unchecked(&mut want[..]));
            let csum = smoltcp::phy::ChecksumCapabilities::default();
            ipr.emit(&mut Ipv4Packet::new_unchecked(&mut want[14..]), &csum);
            let mut wt = TcpPacket::new_unchecked(&mut want[34..]);
            r.emit(&mut wt, &src.into(), &dst.into(), &csum);
            if tp.fin() && tp.psh() {
                // TcpControl holds one flag: PSH back on a FIN.
                wt.set_psh(true);
                wt.fill_checksum(&src.into(), &dst.into());
            }
            assert_eq!(&f[..], &want[..], "ts {ts} offload {} {r}", caps.tx_checksum_offload);
            checked += 1;
        }
        assert!(frames.iter().any(|f| TcpPacket::new_unchecked(&f[34..]).rst()), "a RST was compared");
        assert!(frames.iter().any(|f| TcpPacket::new_unchecked(&f[34..]).fin()), "a FIN was compared");
    }
    assert!(checked >= 3 * 13, "{checked}");
}
