//! Issue 10 review, more inputs of each kind the reviewer found (see
//! `review.rs`): TS.Recent taken only from acceptable segments, a FIN that
//! ends the stream even out of order, out-of-order memory counted against
//! the receive buffer, UDP queues bounded in bytes.
mod common;

use common::script::*;
use common::*;
use zcstack::mem::HeapPages;
use zcstack::phy::queue::QueueDevice;
use zcstack::wire::*;
use zcstack::{SocketHandle, Stack, State};

/// The real peer's next segment (its own clock, TSval 102) is delivered.
fn real_segment_delivered(st: &mut Stack<HeapPages>, dev: &mut QueueDevice, h: SocketHandle, snd: u32, tsv: u32) {
    let mut real = seg(1001, Some(snd), TcpControl::Psh);
    real.ts = Some((102, tsv));
    real.payload = b"real data";
    exchange(st, dev, at(10), vec![tcp_frame(real)]);
    assert_eq!(drain(st, h).0, b"real data", "drop_tcp_paws = {}", st.stats().drop_tcp_paws);
}

// ----- TS.Recent only from acceptable segments (RFC 7323 4.3, 5.3 R3) -----

#[test]
fn ts_recent_not_taken_from_an_in_window_inexact_rst() {
    // RFC 5961 3.2: an in-window RST not at rcv_nxt draws a challenge ACK
    // and is otherwise ignored, its TSval included.
    let (mut st, mut dev, h, snd, tsv) = established_ts();
    let mut rst = seg(1001 + 100, Some(snd), TcpControl::Rst);
    rst.ts = Some((0x7000_0000, 0));
    exchange(&mut st, &mut dev, at(5), vec![tcp_frame(rst)]);
    assert_eq!(st.tcp_state(h), Ok(State::Established));
    real_segment_delivered(&mut st, &mut dev, h, snd, tsv);
}

#[test]
fn ts_recent_not_taken_from_a_data_segment_acking_2_pow_30_behind() {
    let (mut st, mut dev, h, snd, tsv) = established_ts();
    let mut s = seg(1001, Some(snd.wrapping_sub(1 << 30)), TcpControl::Psh);
    s.payload = b"evil";
    s.ts = Some((0x7000_0000, 0));
    exchange(&mut st, &mut dev, at(5), vec![tcp_frame(s)]);
    assert_eq!(drain(&mut st, h).0, b"", "data under an unacceptable ACK is not delivered");
    assert_eq!(st.stats().drop_tcp_bad_ack, 1);
    real_segment_delivered(&mut st, &mut dev, h, snd, tsv);
}

#[test]
fn ts_recent_not_taken_in_syn_received_from_an_ack_for_data_never_sent() {
    // SYN-RECEIVED: an unacceptable ACK is answered with a RST and the
    // segment dropped (RFC 9293 3.10.7.4); the real handshake ACK (TSval
    // 101) must still complete the connection.
    let (mut st, mut dev, l, snd, tsv) = syn_received_ts();
    let mut bad = seg(1001, Some(snd.wrapping_add(50_000)), TcpControl::None);
    bad.ts = Some((0x7000_0000, 0));
    let out = exchange(&mut st, &mut dev, at(1), vec![tcp_frame(bad)]);
    assert!(out.iter().any(|g| g.ctl == TcpControl::Rst), "{out:?}");
    let mut ack = seg(1001, Some(snd), TcpControl::Psh);
    ack.ts = Some((101, tsv));
    ack.payload = b"hello";
    exchange(&mut st, &mut dev, at(2), vec![tcp_frame(ack)]);
    let (h, _) = st.tcp_accept(l).expect("the real handshake completes");
    assert_eq!(drain(&mut st, h).0, b"hello", "drop_tcp_paws = {}", st.stats().drop_tcp_paws);
}

// ----- the FIN ends the stream (RFC 9293 3.10.7.4, eighth check) -----

#[test]
fn data_beyond_held_before_an_ooo_fin_arrives_is_discarded_and_the_fin_processed() {
    // The reverse order of the reviewer's input: bytes past the FIN are
    // already held out of order when the FIN arrives.
    let (mut st, mut dev, h, snd) = established();
    let mut beyond = seg(1020, Some(snd), TcpControl::Psh);
    beyond.payload = b"ZZZZZ";
    let mut fin = seg(1006, Some(snd), TcpControl::Fin);
    fin.payload = b"fghij"; // FIN at 1011
    let mut head = seg(1001, Some(snd), TcpControl::Psh);
    head.payload = b"abcde";
    exchange(&mut st, &mut dev, at(5), vec![tcp_frame(beyond)]);
    exchange(&mut st, &mut dev, at(6), vec![tcp_frame(fin)]);
    assert_eq!(st.stats().drop_tcp_data_beyond_fin, 1, "held bytes past the FIN discarded");
    let out = exchange(&mut st, &mut dev, at(7), vec![tcp_frame(head)]);
    let (got, eof) = drain(&mut st, h);
    assert_eq!(got, b"abcdefghij");
    assert!(eof, "EOF; state {:?}", st.tcp_state(h));
    assert_eq!(st.tcp_state(h), Ok(State::CloseWait));
    assert!(out.iter().any(|g| g.ack == Some(1012)), "the FIN is acknowledged: {out:?}");
}

#[test]
fn a_second_fin_at_another_sequence_number_is_ignored() {
    let (mut st, mut dev, h, snd) = established();
    let mut fin = seg(1006, Some(snd), TcpControl::Fin);
    fin.payload = b"fghij"; // FIN at 1011
    let mut later = seg(1011, Some(snd), TcpControl::Fin);
    later.payload = b"0123456789"; // a FIN at 1021: bogus
    let mut head = seg(1001, Some(snd), TcpControl::Psh);
    head.payload = b"abcde";
    exchange(&mut st, &mut dev, at(5), vec![tcp_frame(fin), tcp_frame(later)]);
    assert_eq!(st.stats().drop_tcp_fin_moved, 1);
    exchange(&mut st, &mut dev, at(7), vec![tcp_frame(head)]);
    let (got, eof) = drain(&mut st, h);
    assert_eq!(got, b"abcdefghij", "the first FIN stands");
    assert!(eof);
}

#[test]
fn in_order_segment_straddling_a_known_fin_is_cut_at_the_fin() {
    let (mut st, mut dev, h, snd) = established();
    let mut fin = seg(1006, Some(snd), TcpControl::Fin);
    fin.payload = b"fghij"; // FIN at 1011
    let mut long = seg(1001, Some(snd), TcpControl::Psh);
    long.payload = b"abcdefghijKLMNOPQRST";
    exchange(&mut st, &mut dev, at(5), vec![tcp_frame(fin)]);
    exchange(&mut st, &mut dev, at(6), vec![tcp_frame(long)]);
    let (got, eof) = drain(&mut st, h);
    assert_eq!(got, b"abcdefghij", "nothing past the FIN");
    assert!(eof);
    assert_eq!(st.stats().drop_tcp_data_beyond_fin, 1);
}

// ----- OOO memory counted against the receive buffer -----

#[test]
fn scattered_ooo_bytes_across_the_window_plus_in_order_fill_stay_within_the_receive_buffer() {
    // One byte every 4 KiB over the whole scaled window (a block each),
    // then the peer fills the promised window in order and nobody reads.
    let mut cfg = stack_config(A_IP, 1);
    cfg.tcp.window_scale = 7;
    let recv_buffer = cfg.tcp.recv_buffer;
    let mut st = Stack::new(cfg, HeapPages::new(256, 2048), 1500);
    let mut dev = script_device();
    learn_peer(&mut st, &mut dev);
    let l = st.tcp_listen(80, 8).unwrap();
    let mut syn = seg(1000, None, TcpControl::Syn);
    (syn.mss, syn.wscale) = (Some(1460), Some(7));
    let out = exchange(&mut st, &mut dev, at(0), vec![tcp_frame(syn)]);
    let snd = out[0].seq + 1;
    let ws = out[0].wscale.expect("window scaling negotiated");
    let ack = seg(1001, Some(snd), TcpControl::None);
    exchange(&mut st, &mut dev, at(1), vec![tcp_frame(ack)]);
    st.tcp_accept(l).unwrap();
    // Learn the scaled right edge from a window probe's ACK.
    let probe = seg(1000, Some(snd), TcpControl::None);
    let out = exchange(&mut st, &mut dev, at(2), vec![tcp_frame(probe)]);
    let a = out.last().expect("an old duplicate is answered with an ACK");
    let right = a.ack.unwrap() + (u32::from(a.win) << ws);
    assert!(right - 1001 > 65_535, "a scaled window: {}", right - 1001);
    let mut t = 3;
    let mut off = 1001 + 4096;
    while off < right {
        let mut s = seg(off, Some(snd), TcpControl::Psh);
        s.payload = b"q";
        exchange(&mut st, &mut dev, at(t), vec![tcp_frame(s)]);
        off += 4096;
        t += 1;
    }
    let (ooo, _, _) = st.tcp().memory_totals();
    assert!(ooo <= recv_buffer + recv_buffer / 8, "scattered bytes: {ooo} bytes out of order");
    let chunk = vec![0x61u8; 1448];
    let mut rcv = 1001u32;
    while rcv + 1448 <= right {
        let mut d = seg(rcv, Some(snd), TcpControl::Psh);
        d.payload = &chunk;
        exchange(&mut st, &mut dev, at(t), vec![tcp_frame(d)]);
        rcv += 1448;
        t += 1;
        let (ooo, held_now, _) = st.tcp().memory_totals();
        assert!(
            ooo + held_now <= recv_buffer + recv_buffer / 8,
            "at {rcv}: out of order {ooo} + held {held_now} against a {recv_buffer}-byte buffer"
        );
    }
}

// ----- UDP: the receive buffer bounds bytes whatever the datagram size -----

fn udp_flood(st: &mut Stack<HeapPages>, dev: &mut QueueDevice, port: u16, size: usize, count: u32) {
    let payload = vec![0x33u8; size];
    for i in 0..count {
        let mut l4 = vec![0u8; 8 + payload.len()];
        let repr = UdpRepr { src_port: 4000 + (i % 5) as u16, dst_port: port };
        repr.emit(
            &mut UdpPacket::new_unchecked(&mut l4[..]),
            &PEER_IP.into(),
            &A_IP.into(),
            payload.len(),
            |b| b.copy_from_slice(&payload),
            &Default::default(),
        );
        dev.push_rx(eth_ip(IpProtocol::Udp, &l4));
        if i % 32 == 31 {
            st.poll(at(u64::from(i)), dev);
        }
    }
    st.poll(at(u64::from(count) + 1), dev);
}

#[test]
fn unread_udp_socket_bounds_tiny_datagrams_by_their_overhead_and_a_set_buffer_holds() {
    let (mut st, mut dev) = stack();
    learn_peer(&mut st, &mut dev);
    let u = st.udp_bind(5353).unwrap();
    st.udp_set_recv_buffer(u, 16 * 1024).unwrap();
    // 1-byte datagrams: each charged its overhead too, so far fewer than
    // the 1,024-datagram count limit fit in 16 KiB.
    udp_flood(&mut st, &mut dev, 5353, 1, 3000);
    let per = 1 + zcstack::udp::DATAGRAM_OVERHEAD;
    let mut n = 0usize;
    let mut buf = [0u8; 64];
    while st.udp_recv_from(u, &mut buf).is_ok() {
        n += 1;
    }
    assert_eq!(n, 16 * 1024 / per, "datagrams held in a 16 KiB buffer");
    assert_eq!(st.stats().drop_udp_rcvbuf_full, 3000 - n as u64);
    // Reading frees the budget: the socket takes datagrams again.
    udp_flood(&mut st, &mut dev, 5353, 1000, 4);
    let mut m = 0;
    while st.udp_recv_from(u, &mut buf).is_ok() {
        m += 1;
    }
    assert_eq!(m, 4);
}

#[test]
fn unread_udp_socket_of_the_default_config_holds_at_most_rmem_default() {
    let (mut st, mut dev) = stack();
    learn_peer(&mut st, &mut dev);
    let u = st.udp_bind(5353).unwrap();
    udp_flood(&mut st, &mut dev, 5353, 1472, 400);
    let limit = st.config().udp_recv_buffer;
    let mut held = 0usize;
    let mut buf = vec![0u8; 2048];
    while let Ok((n, _)) = st.udp_recv_from(u, &mut buf) {
        held += n + zcstack::udp::DATAGRAM_OVERHEAD;
    }
    assert!(held <= limit, "{held} bytes charged against {limit}");
    assert!(held > limit - 2000, "the buffer is used, not just a few datagrams: {held}");
}
