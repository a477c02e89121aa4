//! Hostile review of issue 10: new inputs of each fault kind, at segment
//! level with the scripted peer. Each test states the expected behaviour
//! (RFC section or the rule) and checks it.
mod common;

use common::script::*;
use common::*;
use zcstack::mem::HeapPages;
use zcstack::phy::queue::QueueDevice;
use zcstack::wire::*;
use zcstack::{Stack, State};

// ----- fault 4 / 7: TS.Recent taken from a segment that is then dropped -----
//
// RFC 5961 5.2 drops a segment whose ACK is unacceptable; its TSval must not
// become TS.Recent (Linux bd090dfc634d: "tcp_replace_ts_recent() should not
// be called from tcp_validate_incoming()"), else one blind segment with a
// high TSval makes PAWS drop every later segment of the real peer (a stall
// and a dup-ACK storm, each real segment answered with an ACK).

fn poisoned_then_real(poison: Seg<'_>, what: &str) {
    let (mut st, mut dev, h, snd, tsv) = established_ts();
    exchange(&mut st, &mut dev, at(5), vec![tcp_frame(poison)]);
    assert_eq!(drain(&mut st, h).0, b"", "{what}: the injected segment delivers nothing");
    // The real peer goes on with its own clock.
    let mut real = seg(1001, Some(snd), TcpControl::Psh);
    real.ts = Some((102, tsv));
    real.payload = b"real data";
    exchange(&mut st, &mut dev, at(10), vec![tcp_frame(real)]);
    assert_eq!(
        drain(&mut st, h).0,
        b"real data",
        "{what}: the real peer's next segment is delivered (drop_tcp_paws = {})",
        st.stats().drop_tcp_paws
    );
}

#[test]
fn ts_recent_not_taken_from_a_segment_with_an_ack_for_data_never_sent() {
    let mut s = seg(1001, Some(0), TcpControl::Psh);
    s.payload = b"evil";
    s.ts = Some((0x7000_0000, 0));
    // The ACK is fixed below once snd is known: use an ACK far ahead.
    let (mut st, mut dev, h, snd, tsv) = established_ts();
    s.ack = Some(snd.wrapping_add(100_000));
    exchange(&mut st, &mut dev, at(5), vec![tcp_frame(s)]);
    assert_eq!(drain(&mut st, h).0, b"", "bad-ACK data not delivered");
    assert_eq!(st.stats().drop_tcp_bad_ack, 1);
    let mut real = seg(1001, Some(snd), TcpControl::Psh);
    real.ts = Some((102, tsv));
    real.payload = b"real data";
    exchange(&mut st, &mut dev, at(10), vec![tcp_frame(real)]);
    assert_eq!(
        drain(&mut st, h).0,
        b"real data",
        "the real peer's next segment is delivered (drop_tcp_paws = {})",
        st.stats().drop_tcp_paws
    );
}

#[test]
fn ts_recent_not_taken_from_a_segment_without_the_ack_flag() {
    let mut s = seg(1001, None, TcpControl::Psh);
    s.payload = b"evil";
    s.ts = Some((0x7000_0000, 0));
    poisoned_then_real(s, "no ACK flag");
}

#[test]
fn ts_recent_not_taken_from_an_in_window_syn() {
    let mut s = seg(1001, None, TcpControl::Syn);
    s.ts = Some((0x7000_0000, 0));
    poisoned_then_real(s, "in-window SYN (challenge ACK only)");
}

#[test]
fn ts_recent_not_taken_from_a_pure_ack_2_pow_30_behind_snd_una() {
    let (mut st, mut dev, h, snd, tsv) = established_ts();
    let mut s = seg(1001, Some(snd.wrapping_sub(1 << 30)), TcpControl::None);
    s.ts = Some((0x7000_0000, 0));
    exchange(&mut st, &mut dev, at(5), vec![tcp_frame(s)]);
    let mut real = seg(1001, Some(snd), TcpControl::Psh);
    real.ts = Some((102, tsv));
    real.payload = b"real data";
    exchange(&mut st, &mut dev, at(10), vec![tcp_frame(real)]);
    assert_eq!(drain(&mut st, h).0, b"real data", "drop_tcp_paws = {}", st.stats().drop_tcp_paws);
}

// ----- fault 5: out-of-order data past an out-of-order FIN -----
//
// RFC 9293 3.10.7.4 (eighth check): the FIN ends the sequence space; data
// beyond it cannot belong to the stream. A FIN that arrives out of order
// must still be processed when the hole before it fills, and bytes queued
// after it must never be delivered.

#[test]
fn ooo_fin_then_data_beyond_it_delivers_up_to_the_fin_and_eof() {
    let (mut st, mut dev, h, snd) = established();
    let mut fin = seg(1006, Some(snd), TcpControl::Fin);
    fin.payload = b"fghij"; // FIN at 1011
    let mut beyond = seg(1012, Some(snd), TcpControl::Psh);
    beyond.payload = b"XXXXX";
    let mut head = seg(1001, Some(snd), TcpControl::Psh);
    head.payload = b"abcde";
    exchange(&mut st, &mut dev, at(5), vec![tcp_frame(fin)]);
    exchange(&mut st, &mut dev, at(6), vec![tcp_frame(beyond)]);
    let out = exchange(&mut st, &mut dev, at(7), vec![tcp_frame(head)]);
    let (got, eof) = drain(&mut st, h);
    assert_eq!(got, b"abcdefghij", "exactly the stream up to the FIN");
    assert!(eof, "EOF after the FIN; state {:?}, acks {out:?}", st.tcp_state(h));
    assert_eq!(st.tcp_state(h), Ok(State::CloseWait));
}

#[test]
fn ooo_fin_then_data_right_after_it_delivers_up_to_the_fin_and_eof() {
    // Data starting exactly at the FIN's sequence number (the FIN's own slot).
    let (mut st, mut dev, h, snd) = established();
    let mut fin = seg(1006, Some(snd), TcpControl::Fin);
    fin.payload = b"fghij"; // FIN at 1011
    let mut beyond = seg(1011, Some(snd), TcpControl::Psh);
    beyond.payload = b"YYYY";
    let mut head = seg(1001, Some(snd), TcpControl::Psh);
    head.payload = b"abcde";
    exchange(&mut st, &mut dev, at(5), vec![tcp_frame(fin), tcp_frame(beyond)]);
    exchange(&mut st, &mut dev, at(7), vec![tcp_frame(head)]);
    let (got, eof) = drain(&mut st, h);
    assert_eq!(got, b"abcdefghij");
    assert!(eof, "EOF after the FIN; state {:?}", st.tcp_state(h));
}

// ----- fault 3: the persist timer in states the tests do not reach -----

/// The scripted receiver's view: the next byte it expects, the bytes it
/// took, whether it saw our FIN, and the probes (data while shut) it refused.
struct Receiver {
    sport: u16,
    dport: u16,
    seq: u32,
    rcv: u32,
    got: Vec<u8>,
    fin: bool,
    refused: usize,
}

impl Receiver {
    /// Runs from `from` to `to` ms in `step` ms steps, advertising `win`
    /// (0: every data segment is refused and answered with the same ACK).
    fn run(&mut self, st: &mut Stack<HeapPages>, dev: &mut QueueDevice, from: u64, to: u64, step: u64, win: u16) {
        let mut t = from;
        let mut inbox = Vec::new();
        while t <= to {
            if t % 1000 < step {
                // The peer refreshes its ARP entry (entries expire; the
                // scripted peer answers no ARP requests).
                inbox.push(arp_request());
            }
            let out = exchange(st, dev, at(t), std::mem::take(&mut inbox));
            for g in out {
                if g.payload.is_empty() && g.ctl != TcpControl::Fin {
                    continue;
                }
                if win == 0 {
                    self.refused += 1;
                } else if g.seq == self.rcv {
                    self.got.extend_from_slice(&g.payload);
                    self.rcv = self.rcv.wrapping_add(g.payload.len() as u32);
                    if g.ctl == TcpControl::Fin {
                        self.rcv = self.rcv.wrapping_add(1);
                        self.fin = true;
                    }
                }
                let mut a = seg(self.seq, Some(self.rcv), TcpControl::None);
                (a.sport, a.dport, a.win) = (self.sport, self.dport, win);
                inbox.push(tcp_frame(a));
            }
            t += step;
        }
    }
}

#[test]
fn window_retracted_to_zero_with_data_in_flight_is_probed_until_it_reopens() {
    // RFC 9293 3.8.6 allows the receiver to retract its window; the sender
    // must then probe (RFC 1122 4.2.2.17) for as long as it stays shut.
    let (mut st, mut dev, h, snd) = established();
    let data = pattern(7, 4000);
    assert_eq!(st.tcp_write(h, &data).unwrap(), 4000);
    let out = exchange(&mut st, &mut dev, at(10), vec![]);
    assert!(out.iter().map(|g| g.payload.len()).sum::<usize>() >= 2920, "{out:?}");
    // The receiver takes the first 1000 bytes and shuts its window: the
    // rest in flight lies beyond it.
    let mut r = Receiver {
        sport: 40000,
        dport: 80,
        seq: 1001,
        rcv: snd + 1000,
        got: data[..1000].to_vec(),
        fin: false,
        refused: 0,
    };
    let mut a = seg(1001, Some(snd + 1000), TcpControl::None);
    a.win = 0;
    exchange(&mut st, &mut dev, at(20), vec![tcp_frame(a)]);
    r.run(&mut st, &mut dev, 21, 10 * 60_000, 50, 0);
    assert_eq!(st.tcp_state(h), Ok(State::Established), "a peer that answers is never aborted");
    assert!(r.refused >= 10, "probes repeat while the window is shut: {}", r.refused);
    r.run(&mut st, &mut dev, 10 * 60_000 + 50, 10 * 60_000 + 200_000, 50, 65535);
    assert!(r.got == data, "everything arrives once the window reopens: {} of {} bytes", r.got.len(), data.len());
}

#[test]
fn syn_ack_with_zero_window_then_data_is_probed_until_it_opens() {
    let (mut st, mut dev) = stack();
    learn_peer(&mut st, &mut dev);
    let h = st.tcp_connect(sa(PEER_IP, 80), 5555, at(0)).unwrap();
    let out = exchange(&mut st, &mut dev, at(0), vec![]);
    assert_eq!(out[0].ctl, TcpControl::Syn);
    let iss = out[0].seq;
    let mut sa_ = seg(7000, Some(iss + 1), TcpControl::Syn);
    (sa_.sport, sa_.dport, sa_.win, sa_.mss) = (80, 5555, 0, Some(1460));
    exchange(&mut st, &mut dev, at(1), vec![tcp_frame(sa_)]);
    assert_eq!(st.tcp_state(h), Ok(State::Established));
    let data = pattern(8, 3000);
    assert_eq!(st.tcp_write(h, &data).unwrap(), 3000);
    let mut r = Receiver { sport: 80, dport: 5555, seq: 7001, rcv: iss + 1, got: Vec::new(), fin: false, refused: 0 };
    r.run(&mut st, &mut dev, 2, 120_000, 50, 0);
    assert_eq!(st.tcp_state(h), Ok(State::Established));
    assert!(r.refused >= 5, "probes repeat while the window is shut: {}", r.refused);
    r.run(&mut st, &mut dev, 120_050, 320_000, 50, 65535);
    assert!(r.got == data, "{} of {} bytes arrived", r.got.len(), data.len());
}

#[test]
fn zero_window_with_data_and_fin_queued_delivers_both_once_it_opens() {
    let (mut st, mut dev, h, snd) = established();
    let mut a = seg(1001, Some(snd), TcpControl::None);
    a.win = 0;
    exchange(&mut st, &mut dev, at(5), vec![tcp_frame(a)]);
    let data = pattern(9, 3000);
    assert_eq!(st.tcp_write(h, &data).unwrap(), 3000);
    st.tcp_shutdown(h).unwrap();
    let mut r = Receiver { sport: 40000, dport: 80, seq: 1001, rcv: snd, got: Vec::new(), fin: false, refused: 0 };
    r.run(&mut st, &mut dev, 6, 180_000, 50, 0);
    assert_eq!(st.tcp_state(h), Ok(State::FinWait1));
    assert!(r.refused >= 5, "probes repeat: {}", r.refused);
    r.run(&mut st, &mut dev, 180_050, 400_000, 50, 65535);
    assert!(r.got == data, "{} of {} bytes arrived", r.got.len(), data.len());
    assert!(r.fin, "the FIN follows the data");
    assert_eq!(st.tcp_state(h), Ok(State::FinWait2));
}

// ----- fault 1: the window promises only memory it accounts for -----

#[test]
fn one_ooo_byte_at_the_far_edge_plus_unread_in_order_data_stays_within_the_receive_buffer() {
    // With window scaling the advertised window is the whole receive
    // buffer; the out-of-order ring is sized to the span it covers, so one
    // byte at the window's far edge costs a window's worth. The in-order
    // data the peer may still send (the right edge never shrinks) must not
    // take the total past the receive buffer.
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
    let mut first = seg(1001, Some(snd), TcpControl::Psh);
    first.payload = b"x";
    let out = exchange(&mut st, &mut dev, at(1), vec![tcp_frame(first)]);
    let (h, _) = st.tcp_accept(l).unwrap();
    let _ = h;
    let mut rcv = 1002u32;
    // The current right edge (an ACK is due after a delayed-ACK timeout at most).
    let out = if out.is_empty() { exchange(&mut st, &mut dev, at(600), vec![]) } else { out };
    let right = out.last().unwrap().ack.unwrap() + (u32::from(out.last().unwrap().win) << ws);
    let mut far = seg(right - 1, Some(snd), TcpControl::Psh);
    far.payload = b"z";
    exchange(&mut st, &mut dev, at(700), vec![tcp_frame(far)]);
    // In-order data up to the edge, nobody reading.
    let chunk = vec![0x61u8; 1448];
    let mut t = 701;
    while rcv + 1448 < right - 1 {
        let mut d = seg(rcv, Some(snd), TcpControl::Psh);
        d.payload = &chunk;
        exchange(&mut st, &mut dev, at(t), vec![tcp_frame(d)]);
        rcv += 1448;
        t += 1;
    }
    let (ooo, held, _) = st.tcp().memory_totals();
    assert!(
        ooo + held <= recv_buffer + recv_buffer / 8,
        "out of order {ooo} + held {held} = {} bytes against a {recv_buffer}-byte receive buffer",
        ooo + held
    );
}

// ----- fault 1: UDP receive queues are bounded in bytes, not only in datagrams -----

#[test]
fn unread_udp_socket_holds_at_most_a_receive_buffer_of_peer_data() {
    let (mut st, mut dev) = stack();
    learn_peer(&mut st, &mut dev);
    let u = st.udp_bind(5353).unwrap();
    let payload = vec![0x55u8; 1472];
    for i in 0..3000u32 {
        let mut l4 = vec![0u8; 8 + payload.len()];
        let repr = UdpRepr { src_port: 4000 + (i % 7) as u16, dst_port: 5353 };
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
            st.poll(at(u64::from(i)), &mut dev);
        }
    }
    st.poll(at(3001), &mut dev);
    let mut held = 0usize;
    let mut buf = vec![0u8; 2048];
    while let Ok((n, _)) = st.udp_recv_from(u, &mut buf) {
        held += n;
    }
    let limit = st.config().tcp.recv_buffer;
    assert!(held <= limit, "{held} bytes of one peer's datagrams held by an unread socket (receive buffer {limit})");
}
