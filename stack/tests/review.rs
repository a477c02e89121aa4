//! Hostile review of issue 10: new inputs of each fault kind, at segment
//! level with the scripted peer. Each test states the expected behaviour
//! (RFC section or the rule) and checks it.
mod common;

use common::script::*;
use common::*;
use zcstack::mem::HeapPages;
use zcstack::phy::queue::QueueDevice;
use zcstack::wire::*;
use zcstack::{Duration, Instant, SocketHandle, Stack, State, TcpError};

fn at(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

/// Everything readable now (stops at EOF or would-block); `eof` tells which.
fn drain(st: &mut Stack<HeapPages>, h: SocketHandle) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match st.tcp_read(h, &mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(TcpError::WouldBlock) => return (got, false),
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// A connection accepted from the scripted peer with timestamps on.
/// Returns (stack, dev, handle, our snd_nxt, the stack's latest TSval).
fn established_ts() -> (Stack<HeapPages>, QueueDevice, SocketHandle, u32, u32) {
    let mut cfg = stack_config(A_IP, 1);
    cfg.arp_ttl = Duration::from_secs(1_000_000);
    let mut st = Stack::new(cfg, HeapPages::new(256, 2048), 1500);
    let mut dev = script_device();
    learn_peer(&mut st, &mut dev);
    let l = st.tcp_listen(80, 8).unwrap();
    let mut syn = seg(1000, None, TcpControl::Syn);
    syn.mss = Some(1460);
    syn.ts = Some((100, 0));
    let out = exchange(&mut st, &mut dev, at(0), vec![tcp_frame(syn)]);
    assert_eq!(out.len(), 1);
    let tsv = out[0].ts.expect("timestamps negotiated").0;
    let snd = out[0].seq + 1;
    let mut ack = seg(1001, Some(snd), TcpControl::None);
    ack.ts = Some((101, tsv));
    exchange(&mut st, &mut dev, at(1), vec![tcp_frame(ack)]);
    let (h, _) = st.tcp_accept(l).unwrap();
    assert_eq!(st.tcp_state(h), Ok(State::Established));
    (st, dev, h, snd, tsv)
}

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
