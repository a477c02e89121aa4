//! Segment acceptance (RFC 9293 3.10.7, RFC 5961) and limits on generated
//! ACKs (RFC 5961 7), at segment level with the scripted peer: a segment
//! whose ACK is unacceptable is dropped whole in every state; the sequence
//! test's four cases; RST and SYN checks in every synchronized state; LISTEN
//! and closed-port rules; sources that must never create state (RFC 1122
//! 3.2.1.3); and challenge ACKs bounded per connection and engine-wide, with
//! a randomised (seeded) global budget.
mod common;

use std::net::Ipv4Addr;

use common::script::*;
use common::*;
use zcstack::mem::{HeapPages, PageMemory};
use zcstack::phy::queue::QueueDevice;
use zcstack::wire::*;
use zcstack::{Instant, SocketHandle, Stack, StackConfig, State, TcpError};

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";

/// Bytes the application can read now (0 at EOF or when nothing is there).
fn readable(st: &mut Stack<HeapPages>, h: SocketHandle) -> usize {
    let mut buf = [0u8; 4096];
    match st.tcp_read(h, &mut buf) {
        Ok(n) => n,
        Err(TcpError::WouldBlock) => 0,
        Err(e) => panic!("read: {e}"),
    }
}

/// A connection accepted from the scripted peer (port 40000 -> 80) on a
/// stack with `cfg`; returns (stack, device, handle, our snd_nxt).
fn established_cfg(cfg: StackConfig, sport: u16) -> (Stack<HeapPages>, QueueDevice, SocketHandle, u32) {
    let mut st = Stack::new(cfg, HeapPages::new(256, 2048), 1500);
    let mut dev = script_device();
    learn_peer(&mut st, &mut dev);
    let l = st.tcp_listen(80, 8).unwrap();
    let snd = handshake(&mut st, &mut dev, sport, at(0));
    let (h, _) = st.tcp_accept(l).unwrap();
    (st, dev, h, snd)
}

/// Completes a handshake from peer port `sport` (ISN 1000); returns our ISN + 1.
fn handshake(st: &mut Stack<HeapPages>, dev: &mut QueueDevice, sport: u16, now: Instant) -> u32 {
    let mut syn = seg(1000, None, TcpControl::Syn);
    syn.sport = sport;
    let out = exchange(st, dev, now, vec![tcp_frame(syn)]);
    assert_eq!(out.len(), 1, "SYN-ACK");
    let iss = out[0].seq;
    let mut ack = seg(1001, Some(iss.wrapping_add(1)), TcpControl::None);
    ack.sport = sport;
    let out = exchange(st, dev, now, vec![tcp_frame(ack)]);
    assert!(out.is_empty(), "{out:?}");
    iss.wrapping_add(1)
}

/// Drives a fresh connection into `target`. Returns the stack, device,
/// handle, the peer's next sequence number (our rcv_nxt) and the highest
/// sequence number we have sent (our snd_nxt).
fn in_state(target: State) -> (Stack<HeapPages>, QueueDevice, SocketHandle, u32, u32) {
    let (mut st, mut dev, h, snd) = established();
    let (rcv, snd_max) = match target {
        State::Established => (1001, snd),
        State::CloseWait | State::LastAck => {
            exchange(&mut st, &mut dev, at(5), vec![tcp_frame(seg(1001, Some(snd), TcpControl::Fin))]);
            if target == State::LastAck {
                st.tcp_shutdown(h).unwrap();
                exchange(&mut st, &mut dev, at(6), vec![]);
                (1002, snd + 1)
            } else {
                (1002, snd)
            }
        }
        State::FinWait1 | State::FinWait2 | State::Closing => {
            st.tcp_shutdown(h).unwrap();
            let out = exchange(&mut st, &mut dev, at(10), vec![]);
            assert_eq!(out[0].ctl, TcpControl::Fin);
            match target {
                State::FinWait1 => (1001, snd + 1),
                State::FinWait2 => {
                    exchange(&mut st, &mut dev, at(11), vec![tcp_frame(seg(1001, Some(snd + 1), TcpControl::None))]);
                    (1001, snd + 1)
                }
                _ => {
                    exchange(&mut st, &mut dev, at(11), vec![tcp_frame(seg(1001, Some(snd), TcpControl::Fin))]);
                    (1002, snd + 1)
                }
            }
        }
        s => panic!("no recipe for {s:?}"),
    };
    assert_eq!(st.tcp_state(h), Ok(target));
    (st, dev, h, rcv, snd_max)
}

const SYNCHRONIZED: [State; 6] =
    [State::Established, State::CloseWait, State::FinWait1, State::FinWait2, State::Closing, State::LastAck];

/// Asserts `out` is exactly one pure ACK acknowledging `rcv`.
fn one_ack(out: &[Got], rcv: u32, what: &str) {
    assert_eq!(out.len(), 1, "{what}: one ACK expected: {out:?}");
    assert_eq!((out[0].ctl, out[0].ack), (TcpControl::None, Some(rcv)), "{what}");
    assert!(out[0].payload.is_empty(), "{what}: a pure ACK");
}

// ----- fault 4: an unacceptable ACK drops the whole segment -----

#[test]
fn get_acking_data_never_sent_is_not_delivered() {
    let (mut st, mut dev, h, snd) = established();
    let mut get = seg(1001, Some(snd.wrapping_add(100_000)), TcpControl::Psh);
    get.payload = GET;
    let out = exchange(&mut st, &mut dev, at(5), vec![tcp_frame(get)]);
    one_ack(&out, 1001, "ACK for data never sent");
    assert_eq!(readable(&mut st, h), 0, "the application reads nothing");
    assert_eq!(st.stats().drop_tcp_bad_ack, 1);
    // The same request with a valid ACK is delivered: the drop was the ACK's doing.
    get.ack = Some(snd);
    exchange(&mut st, &mut dev, at(6), vec![tcp_frame(get)]);
    assert_eq!(readable(&mut st, h), GET.len());
}

#[test]
fn get_acking_2_pow_30_behind_snd_una_is_not_delivered() {
    let (mut st, mut dev, h, snd) = established();
    let mut get = seg(1001, Some(snd.wrapping_sub(1 << 30)), TcpControl::Psh);
    get.payload = GET;
    let out = exchange(&mut st, &mut dev, at(5), vec![tcp_frame(get)]);
    one_ack(&out, 1001, "ACK 2^30 behind snd_una");
    assert_eq!(readable(&mut st, h), 0);
    assert_eq!(st.stats().drop_tcp_bad_ack, 1);
    assert_eq!(st.tcp_state(h), Ok(State::Established));
}

#[test]
fn ack_just_inside_and_just_outside_rfc_5961_range() {
    // Our SYN-ACK carried the window; the peer's largest window is 65535
    // (no scaling), so the acceptable range is [snd_una - 65535, snd_nxt].
    let (mut st, mut dev, h, snd) = established();
    st.tcp_write(h, b"hello").unwrap();
    let out = exchange(&mut st, &mut dev, at(2), vec![]);
    assert_eq!(out[0].payload, b"hello");
    let cases = [
        (snd.wrapping_sub(65_535), true, "snd_una - max_snd_wnd"),
        (snd.wrapping_sub(65_536), false, "one below"),
        (snd + 5, true, "snd_nxt"),
        (snd + 6, false, "one above snd_nxt"),
    ];
    let mut rcv = 1001;
    for (i, (ack, ok, what)) in cases.into_iter().enumerate() {
        let mut d = seg(rcv, Some(ack), TcpControl::Psh);
        d.payload = b"x";
        exchange(&mut st, &mut dev, at(600 * (i as u64 + 1)), vec![tcp_frame(d)]);
        let n = readable(&mut st, h);
        assert_eq!(n, usize::from(ok), "{what}");
        rcv += n as u32;
    }
    assert_eq!(st.stats().drop_tcp_bad_ack, 2);
}

#[test]
fn unacceptable_ack_drops_data_and_fin_in_every_synchronized_state() {
    for target in SYNCHRONIZED {
        for (bad, what) in [(100_000u32, "ahead of snd_nxt"), (0u32.wrapping_sub(1 << 30), "2^30 behind")] {
            let (mut st, mut dev, h, rcv, snd_max) = in_state(target);
            let before = readable(&mut st, h);
            let mut s = seg(rcv, Some(snd_max.wrapping_add(bad)), TcpControl::Fin);
            s.payload = GET;
            let out = exchange(&mut st, &mut dev, at(20), vec![tcp_frame(s)]);
            one_ack(&out, rcv, &format!("{target:?} {what}"));
            assert_eq!(st.tcp_state(h), Ok(target), "{target:?} {what}: FIN not processed");
            assert_eq!(readable(&mut st, h), before, "{target:?} {what}: no data");
            assert_eq!(st.stats().drop_tcp_bad_ack, 1, "{target:?} {what}");
        }
    }
}

#[test]
fn syn_received_with_a_bad_ack_is_reset_and_its_data_dropped() {
    let (mut st, mut dev) = stack();
    learn_peer(&mut st, &mut dev);
    let l = st.tcp_listen(80, 8).unwrap();
    let out = exchange(&mut st, &mut dev, at(0), vec![tcp_frame(seg(1000, None, TcpControl::Syn))]);
    let iss = out[0].seq;
    for bad in [iss, iss.wrapping_add(2), iss.wrapping_add(100_000), iss.wrapping_sub(1 << 30)] {
        let mut d = seg(1001, Some(bad), TcpControl::Psh);
        d.payload = GET;
        let out = exchange(&mut st, &mut dev, at(1), vec![tcp_frame(d)]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!((out[0].ctl, out[0].seq), (TcpControl::Rst, bad), "<SEQ=SEG.ACK><CTL=RST>");
        assert_eq!(st.tcp_accept(l).err(), Some(TcpError::WouldBlock), "not established");
    }
    // The right ACK still completes it, and only its own data arrives.
    let mut d = seg(1001, Some(iss + 1), TcpControl::Psh);
    d.payload = b"ok";
    exchange(&mut st, &mut dev, at(2), vec![tcp_frame(d)]);
    let (h, _) = st.tcp_accept(l).unwrap();
    assert_eq!(readable(&mut st, h), 2);
    assert_eq!(st.stats().drop_tcp_bad_ack, 4);
}

// ----- the sequence test, RST and SYN checks -----

#[test]
fn rst_and_syn_checks_in_every_synchronized_state() {
    for target in SYNCHRONIZED {
        // RST outside the window: silently dropped.
        let (mut st, mut dev, h, rcv, _) = in_state(target);
        let out = exchange(&mut st, &mut dev, at(20), vec![tcp_frame(seg(rcv + 1_000_000, None, TcpControl::Rst))]);
        assert!(out.is_empty(), "{target:?}: {out:?}");
        let out = exchange(&mut st, &mut dev, at(21), vec![tcp_frame(seg(rcv.wrapping_sub(1), None, TcpControl::Rst))]);
        assert!(out.is_empty(), "{target:?}: just left of the window: {out:?}");
        assert_eq!(st.tcp_state(h), Ok(target));
        // RST in the window but not exact: challenge ACK, state kept.
        let out = exchange(&mut st, &mut dev, at(22), vec![tcp_frame(seg(rcv + 1, None, TcpControl::Rst))]);
        one_ack(&out, rcv, &format!("{target:?} inexact RST"));
        assert_eq!(st.tcp_state(h), Ok(target));
        // SYN, in or out of the window: challenge ACK (RFC 5961 4.2), state kept.
        for (s, what) in [(rcv, "SYN in window"), (rcv + 2_000_000_000, "SYN out of window")] {
            let out = exchange(&mut st, &mut dev, at(23), vec![tcp_frame(seg(s, None, TcpControl::Syn))]);
            one_ack(&out, rcv, &format!("{target:?} {what}"));
            assert_eq!(st.tcp_state(h), Ok(target), "{target:?} {what}");
        }
        // The exact RST closes.
        let out = exchange(&mut st, &mut dev, at(24), vec![tcp_frame(seg(rcv, None, TcpControl::Rst))]);
        assert!(out.is_empty());
        assert_eq!(st.tcp_state(h), Ok(State::Closed), "{target:?}");
        st.tcp_close(h, at(25)).unwrap();
        assert_eq!(st.mem().free_count(), 256, "{target:?}: no page leaked");
    }
}

/// A stack whose receive buffer is one segment, so a window can be shut.
fn small_window() -> (Stack<HeapPages>, QueueDevice, SocketHandle, u32, u32) {
    let mut cfg = stack_config(A_IP, 1);
    cfg.tcp.recv_buffer = 1000;
    let (mut st, mut dev, h, snd) = established_cfg(cfg, 40000);
    let mut d = seg(1001, Some(snd), TcpControl::Psh);
    let fill = vec![7u8; 1000];
    d.payload = &fill;
    let mut out = exchange(&mut st, &mut dev, at(5), vec![tcp_frame(d)]);
    out.extend(exchange(&mut st, &mut dev, at(100), vec![])); // the delayed ACK
    let win = out.last().map(|g| g.win);
    assert_eq!(win, Some(0), "the window is shut: {out:?}");
    (st, dev, h, snd, 2001)
}

#[test]
fn sequence_test_zero_window_cases() {
    // Length 0, window 0: acceptable only at rcv_nxt. Its ACK is processed.
    let (mut st, mut dev, h, snd, rcv) = small_window();
    st.tcp_write(h, b"abc").unwrap();
    let out = exchange(&mut st, &mut dev, at(106), vec![]);
    assert_eq!(out[0].payload, b"abc");
    let out = exchange(&mut st, &mut dev, at(107), vec![tcp_frame(seg(rcv, Some(snd + 3), TcpControl::None))]);
    assert!(out.is_empty(), "an acceptable pure ACK is not answered: {out:?}");
    assert_eq!(st.tcp().send_queued(h), Ok(0), "its ACK was processed");
    let drops = st.stats().drop_tcp_out_of_window;
    let out = exchange(&mut st, &mut dev, at(108), vec![tcp_frame(seg(rcv + 1, Some(snd + 3), TcpControl::None))]);
    one_ack(&out, rcv, "length 0 beyond a zero window");
    assert_eq!(st.stats().drop_tcp_out_of_window, drops + 1);
    // Length > 0, window 0: never acceptable; the data is not kept, an ACK
    // (with window 0) answers, and a valid ACK on it still counts.
    let mut probe = seg(rcv, Some(snd + 3), TcpControl::Psh);
    probe.payload = b"P";
    let out = exchange(&mut st, &mut dev, at(109), vec![tcp_frame(probe)]);
    one_ack(&out, rcv, "zero-window probe");
    assert_eq!(out[0].win, 0);
    assert_eq!(readable(&mut st, h), 1000, "only the data that fit the window");
    assert_eq!(readable(&mut st, h), 0);
}

#[test]
fn sequence_test_open_window_cases() {
    let (mut st, mut dev, h, snd) = established();
    // Length 0, window > 0: acceptable in [rcv_nxt, rcv_nxt + wnd).
    let out = exchange(&mut st, &mut dev, at(5), vec![tcp_frame(seg(1001 + 100, Some(snd), TcpControl::None))]);
    assert!(out.is_empty(), "{out:?}");
    let out = exchange(&mut st, &mut dev, at(6), vec![tcp_frame(seg(1001 + 3_000_000, Some(snd), TcpControl::None))]);
    one_ack(&out, 1001, "pure ACK beyond the window");
    // Length > 0, window > 0: acceptable when its first or last byte is in
    // the window; a segment overlapping the left edge delivers its new part.
    let mut d = seg(1001, Some(snd), TcpControl::Psh);
    d.payload = b"hello";
    exchange(&mut st, &mut dev, at(7), vec![tcp_frame(d)]);
    let mut d = seg(1003, Some(snd), TcpControl::Psh);
    d.payload = b"llo world";
    exchange(&mut st, &mut dev, at(8), vec![tcp_frame(d)]);
    let mut buf = [0u8; 64];
    let n = st.tcp_read(h, &mut buf).unwrap();
    assert_eq!(&buf[..n], b"hello world");
    // Entirely old, entirely beyond: not delivered, answered with an ACK.
    for (s, what) in [(1001, "old duplicate"), (1012 + 3_000_000, "beyond the window")] {
        let mut d = seg(s, Some(snd), TcpControl::Psh);
        d.payload = b"evil";
        let out = exchange(&mut st, &mut dev, at(9), vec![tcp_frame(d)]);
        one_ack(&out, 1012, what);
        assert_eq!(readable(&mut st, h), 0, "{what}");
    }
}

// ----- LISTEN and closed ports -----

/// Rewrites the TCP flags of a frame from [`tcp_frame`] and fixes the checksum.
fn with_flags(mut f: Vec<u8>, flags: u8) -> Vec<u8> {
    f[34 + 13] = flags;
    f[34 + 16] = 0;
    f[34 + 17] = 0;
    let mut c = Checksum::new();
    c.add_pseudo_header(PEER_IP, A_IP, IpProtocol::Tcp, (f.len() - 34) as u16);
    c.add(&f[34..]);
    let ck = c.finish();
    f[34 + 16..34 + 18].copy_from_slice(&ck.to_be_bytes());
    f
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;

#[test]
fn listen_state_rules() {
    let (mut st, mut dev) = stack();
    learn_peer(&mut st, &mut dev);
    let l = st.tcp_listen(80, 8).unwrap();
    let mut data = seg(5000, None, TcpControl::Psh);
    data.payload = b"data";
    let silent = [
        (tcp_frame(seg(5000, None, TcpControl::Rst)), "RST"),
        (tcp_frame(seg(5000, Some(77), TcpControl::Rst)), "RST+ACK"),
        (tcp_frame(seg(5000, None, TcpControl::Fin)), "FIN without ACK"),
        (tcp_frame(data), "data without ACK"),
        (with_flags(tcp_frame(seg(5000, None, TcpControl::None)), 0), "no flags at all"),
        (with_flags(tcp_frame(seg(5000, None, TcpControl::Syn)), SYN | FIN), "SYN+FIN"),
        (with_flags(tcp_frame(seg(5000, None, TcpControl::Syn)), SYN | RST), "SYN+RST"),
    ];
    for (i, (f, what)) in silent.into_iter().enumerate() {
        let out = exchange(&mut st, &mut dev, at(i as u64), vec![f]);
        assert!(out.is_empty(), "{what}: never answered: {out:?}");
        assert_eq!(st.tcp_connections(), 0, "{what}: no state");
    }
    // SYN+RST is a RST (RFC 9293 3.10.7: RST checked first); SYN+FIN is
    // dropped by the listener (`TcpConfig::drop_synfin`, default on).
    assert_eq!(st.stats().drop_tcp_listen, 6);
    assert_eq!(st.stats().drop_tcp_synfin, 1, "SYN+FIN");
    assert_eq!(st.stats().drop_tcp_malformed, 0);
    // An ACK (with or without SYN) is answered <SEQ=SEG.ACK><CTL=RST>.
    for (f, what) in [
        (tcp_frame(seg(5000, Some(4242), TcpControl::None)), "ACK"),
        (tcp_frame(seg(5000, Some(4242), TcpControl::Syn)), "SYN+ACK"),
        (tcp_frame(seg(5000, Some(4242), TcpControl::Fin)), "FIN+ACK"),
    ] {
        let out = exchange(&mut st, &mut dev, at(20), vec![f]);
        assert_eq!(out.len(), 1, "{what}");
        assert_eq!((out[0].ctl, out[0].seq, out[0].ack), (TcpControl::Rst, 4242, None), "{what}");
        assert_eq!(st.tcp_connections(), 0, "{what}");
    }
    assert_eq!(st.tcp_accept(l).err(), Some(TcpError::WouldBlock));
    // And a plain SYN still opens a connection.
    let out = exchange(&mut st, &mut dev, at(30), vec![tcp_frame(seg(5000, None, TcpControl::Syn))]);
    assert_eq!((out.len(), out[0].ctl, out[0].ack), (1, TcpControl::Syn, Some(5001)));
}

#[test]
fn closed_port_resets_carry_the_right_numbers() {
    let (mut st, mut dev) = stack();
    learn_peer(&mut st, &mut dev);
    // No ACK: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>, FIN and SYN counted.
    let mut d = seg(7000, None, TcpControl::Fin);
    d.payload = b"12345";
    let out = exchange(&mut st, &mut dev, at(0), vec![tcp_frame(d)]);
    assert_eq!((out.len(), out[0].ctl, out[0].seq, out[0].ack), (1, TcpControl::Rst, 0, Some(7006)));
    // ACK: <SEQ=SEG.ACK><CTL=RST>.
    let mut d = seg(7000, Some(0xffff_fff0), TcpControl::Psh);
    d.payload = b"12345";
    let out = exchange(&mut st, &mut dev, at(1), vec![tcp_frame(d)]);
    assert_eq!((out.len(), out[0].ctl, out[0].seq, out[0].ack), (1, TcpControl::Rst, 0xffff_fff0, None));
    // Never a RST for a RST, with or without ACK.
    for ack in [None, Some(5)] {
        let out = exchange(&mut st, &mut dev, at(2), vec![tcp_frame(seg(7000, ack, TcpControl::Rst))]);
        assert!(out.is_empty(), "{out:?}");
    }
    assert_eq!(st.stats().drop_tcp_no_socket, 4);
}

// ----- sources that must never create state -----

/// An Ethernet/IPv4 frame to us with source address `src`.
fn frame_from(src: Ipv4Addr, proto: IpProtocol, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 34 + l4.len()];
    EthernetRepr { src_addr: PEER_MAC, dst_addr: OUR_MAC, ethertype: EthernetProtocol::Ipv4 }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..14]));
    Ipv4Repr { src_addr: src, dst_addr: A_IP, next_header: proto, payload_len: l4.len(), hop_limit: 64 }
        .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..34]), &Default::default());
    f[34..].copy_from_slice(l4);
    f
}

/// A SYN to port 80, a UDP datagram to `udp_port` and an ICMP echo request, all from `src`.
fn probes_from(src: Ipv4Addr, udp_port: u16) -> Vec<Vec<u8>> {
    let syn = TcpRepr {
        src_port: 40000,
        dst_port: 80,
        control: TcpControl::Syn,
        seq_number: TcpSeqNumber(1000),
        ack_number: None,
        window_len: 65535,
        window_scale: None,
        max_seg_size: Some(1460),
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    let mut t = vec![0u8; syn.buffer_len()];
    syn.emit(&mut TcpPacket::new_unchecked(&mut t[..]), &src.into(), &A_IP.into(), &Default::default());
    let udp = UdpRepr { src_port: 5555, dst_port: udp_port };
    let mut u = vec![0u8; 8 + 4];
    udp.emit(
        &mut UdpPacket::new_unchecked(&mut u[..]),
        &src.into(),
        &A_IP.into(),
        4,
        |b| b.copy_from_slice(b"boom"),
        &Default::default(),
    );
    let echo = Icmpv4Repr::EchoRequest { ident: 1, seq_no: 1, data: b"ping" };
    let mut i = vec![0u8; echo.buffer_len()];
    echo.emit(&mut Icmpv4Packet::new_unchecked(&mut i[..]), &Default::default());
    vec![
        frame_from(src, IpProtocol::Tcp, &t),
        frame_from(src, IpProtocol::Udp, &u),
        frame_from(src, IpProtocol::Icmp, &i),
    ]
}

#[test]
fn bogus_sources_create_no_state_and_draw_no_reply() {
    let (mut st, mut dev) = stack();
    learn_peer(&mut st, &mut dev);
    let _l = st.tcp_listen(80, 8).unwrap();
    let u = st.udp_bind(7000).unwrap();
    let bogus = [
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(10, 0, 0, 255), // our subnet's broadcast
        Ipv4Addr::new(224, 0, 0, 1),
        Ipv4Addr::new(239, 1, 2, 3),
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::new(0, 9, 9, 9),
        Ipv4Addr::LOCALHOST,
        Ipv4Addr::new(127, 1, 2, 3),
        Ipv4Addr::new(240, 0, 0, 9),
        A_IP, // our own address
    ];
    for (k, src) in bogus.into_iter().enumerate() {
        for port in [7000, 7001] {
            for f in probes_from(src, port) {
                dev.push_rx(f);
            }
            st.poll(at(k as u64), &mut dev);
            let tx = dev.take_tx();
            assert!(tx.is_empty(), "{src}: nothing goes out (no reply, no ARP): {} frames", tx.len());
            assert_eq!(st.tcp_connections(), 0, "{src}: no TCP state");
            let mut buf = [0u8; 16];
            assert!(st.udp_recv_from(u, &mut buf).is_err(), "{src}: no datagram delivered");
        }
    }
    assert_eq!(st.stats().drop_ipv4_bad_source, bogus.len() as u64 * 6);
    assert_eq!(st.stats().icmp_echo_replies, 0);
    // The same probes from a real neighbour are answered (SYN-ACK, ICMP port
    // unreachable for 7001, echo reply): the drops above were the source's doing.
    for port in [7000, 7001] {
        for f in probes_from(PEER_IP, port) {
            dev.push_rx(f);
        }
    }
    st.poll(at(100), &mut dev);
    assert!(dev.take_tx().len() >= 4);
    assert_eq!(st.tcp_connections(), 1);
    assert_eq!(st.stats().icmp_echo_replies, 2);
}

// ----- fault 7: limits on generated ACKs -----

/// Sends `n` in-window inexact RSTs from peer port `sport`, `gap_us` apart
/// from `start`; returns how many challenge ACKs went back.
fn inexact_rsts(
    st: &mut Stack<HeapPages>,
    dev: &mut QueueDevice,
    sport: u16,
    n: u32,
    start: Instant,
    gap_us: u64,
) -> usize {
    let mut acks = 0;
    for i in 0..n {
        let mut r = seg(1001 + 1 + (i % 1000), None, TcpControl::Rst);
        r.sport = sport;
        let now = Instant::from_micros(start.total_micros() + u64::from(i) * gap_us);
        let out = exchange(st, dev, now, vec![tcp_frame(r)]);
        acks += out.iter().filter(|g| g.ctl == TcpControl::None && g.dport == sport).count();
    }
    acks
}

#[test]
fn twenty_thousand_inexact_rsts_draw_at_most_the_per_connection_budget() {
    let cfg = stack_config(A_IP, 1);
    let (burst, interval) = (cfg.tcp.invalid_ack_burst, cfg.tcp.invalid_ack_interval);
    let (mut st, mut dev, h, snd) = established_cfg(cfg, 40000);
    // 20,000 RSTs over 10 s of simulated time (one every 500 us).
    let acks = inexact_rsts(&mut st, &mut dev, 40000, 20_000, at(10), 500);
    let intervals = 10_000_000 / interval.total_micros() + 1;
    assert!(acks >= 1, "challenge ACKs are still sent");
    assert!(acks as u64 <= u64::from(burst) * intervals, "{acks} > {burst} x {intervals}");
    let s = st.stats();
    assert_eq!(s.tcp_challenge_acks, acks as u64);
    assert_eq!(s.tcp_acks_rate_limited + s.tcp_challenge_acks_global_limited, 20_000 - acks as u64);
    // The connection is untouched and still carries data.
    assert_eq!(st.tcp_state(h), Ok(State::Established));
    let mut d = seg(1001, Some(snd), TcpControl::Psh);
    d.payload = GET;
    exchange(&mut st, &mut dev, at(20_000), vec![tcp_frame(d)]);
    assert_eq!(readable(&mut st, h), GET.len());
}

#[test]
fn acks_to_out_of_window_pure_acks_are_limited_but_data_is_always_answered() {
    let cfg = stack_config(A_IP, 1);
    let burst = cfg.tcp.invalid_ack_burst as usize;
    let (mut st, mut dev, _h, snd) = established_cfg(cfg, 40000);
    // A broken middlebox loops: every ACK we send comes back out of window.
    let mut acks = 0;
    for i in 0..1000u64 {
        let out = exchange(
            &mut st,
            &mut dev,
            Instant::from_micros(10_000 + i * 100),
            vec![tcp_frame(seg(1001 + 2_000_000, Some(snd), TcpControl::None))],
        );
        acks += out.len();
    }
    assert!((1..=burst).contains(&acks), "{acks} ACKs within 100 ms");
    assert_eq!(st.stats().tcp_acks_rate_limited, 1000 - acks as u64);
    // Out-of-window data (retransmissions, window probes) is always answered.
    for i in 0..20u64 {
        let mut d = seg(1001 + 2_000_000, Some(snd), TcpControl::Psh);
        d.payload = b"x";
        let out = exchange(&mut st, &mut dev, Instant::from_micros(110_000 + i), vec![tcp_frame(d)]);
        one_ack(&out, 1001, "data out of window");
    }
}

/// `conns` connections, each hit by `per_conn` inexact RSTs within one
/// second; returns the challenge ACKs sent in total.
fn global_run(secret: u64, limit: u32, conns: u16, per_conn: u32) -> (u64, zcstack::stats::Stats) {
    let mut cfg = stack_config(A_IP, 1);
    cfg.isn_secret = secret;
    cfg.tcp.challenge_ack_limit = limit;
    let mut st = Stack::new(cfg, HeapPages::new(256, 2048), 1500);
    let mut dev = script_device();
    learn_peer(&mut st, &mut dev);
    let _l = st.tcp_listen(80, 1024).unwrap();
    for p in 0..conns {
        handshake(&mut st, &mut dev, 20_000 + p, at(0));
    }
    assert_eq!(st.tcp_connections(), usize::from(conns));
    let mut acks = 0;
    for p in 0..conns {
        acks += inexact_rsts(&mut st, &mut dev, 20_000 + p, per_conn, at(1000 + u64::from(p)), 1) as u64;
    }
    (acks, *st.stats())
}

#[test]
fn challenge_acks_are_bounded_globally_across_connections() {
    let limit = 100;
    let burst = stack_config(A_IP, 1).tcp.invalid_ack_burst;
    // 200 connections could draw 200 x burst challenge ACKs in one second.
    let (acks, s) = global_run(1, limit, 200, burst);
    assert!(acks >= u64::from(limit / 2) && acks < u64::from(limit / 2 + limit), "{acks} outside [50, 150)");
    assert_eq!(s.tcp_challenge_acks, acks);
    assert_eq!(s.tcp_challenge_acks_global_limited, 200 * u64::from(burst) - acks);
    assert_eq!(s.tcp_acks_rate_limited, 0);
}

#[test]
fn the_global_budget_varies_with_the_seed_and_is_deterministic_given_it() {
    let burst = stack_config(A_IP, 1).tcp.invalid_ack_burst;
    let runs: Vec<u64> = (1..=4).map(|seed| global_run(seed, 100, 200, burst).0).collect();
    assert!(runs.windows(2).any(|w| w[0] != w[1]), "randomised per seed: {runs:?}");
    assert!(runs.iter().all(|&n| (50..150).contains(&n)), "{runs:?}");
    assert_eq!(global_run(3, 100, 200, burst).0, runs[2], "same seed, same budget");
}

#[test]
fn a_blind_syn_cannot_end_time_wait() {
    let (mut st, mut dev, h, snd) = established();
    st.tcp_shutdown(h).unwrap();
    exchange(&mut st, &mut dev, at(10), vec![]);
    exchange(&mut st, &mut dev, at(11), vec![tcp_frame(seg(1001, Some(snd + 1), TcpControl::Fin))]);
    assert_eq!(st.tcp_state(h), Ok(State::TimeWait));
    // SYNs at or below the old rcv_nxt (1002) could be the old connection's:
    // challenge ACK, TIME-WAIT kept.
    for s in [1002u32, 1001, 1002u32.wrapping_sub(1_000_000)] {
        let out = exchange(&mut st, &mut dev, at(12), vec![tcp_frame(seg(s, None, TcpControl::Syn))]);
        one_ack(&out, 1002, &format!("SYN seq {s}"));
        assert_eq!(st.tcp_state(h), Ok(State::TimeWait), "SYN seq {s}");
    }
    // A SYN above it opens a new connection on the pair (RFC 9293 3.6.1).
    let out = exchange(&mut st, &mut dev, at(13), vec![tcp_frame(seg(50_000, None, TcpControl::Syn))]);
    assert_eq!((out.len(), out[0].ctl, out[0].ack), (1, TcpControl::Syn, Some(50_001)));
}
