//! The one-entry flow cache in front of the connection table (the last
//! flow a segment was found for): segments of flows that alternate frame by
//! frame each reach their own connection, and a four-tuple used again after
//! its connection was aborted and freed reaches the new connection, not the
//! slot the cache last named. (Debug builds also check every cache hit
//! against the table.)
mod common;

use common::*;
use zcstack::phy::sim::SimConfig;
use zcstack::{SocketHandle, State, TcpError};

/// Reads whatever `h` on a holds, appended to `got`.
fn drain(p: &mut Pair, h: SocketHandle, got: &mut Vec<u8>) {
    let mut buf = [0u8; 4096];
    loop {
        match p.a.tcp_read(h, &mut buf) {
            Ok(0) | Err(TcpError::WouldBlock) => return,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read: {e}"),
        }
    }
}

#[test]
fn alternating_flows_each_reach_their_own_connection() {
    let mut p = Pair::new(SimConfig::default(), 1);
    let l = p.a.tcp_listen(80, 16).unwrap();
    let conns: Vec<(SocketHandle, SocketHandle)> = (0..3).map(|_| p.accept_from_b(l, 80)).collect();
    let want: Vec<Vec<u8>> = (0..3).map(|i| pattern(100 + i, 20_000)).collect();
    let mut got = vec![Vec::new(); 3];
    let mut sent = [0usize; 3];
    // 200-byte writes in turn: the frames of one poll alternate flows.
    for _ in 0..10_000 {
        for (i, (_, c)) in conns.iter().enumerate() {
            if sent[i] < want[i].len() {
                let end = (sent[i] + 200).min(want[i].len());
                sent[i] += p.b.tcp_write(*c, &want[i][sent[i]..end]).unwrap_or(0);
            }
        }
        p.step();
        for (i, (s, _)) in conns.iter().enumerate() {
            drain(&mut p, *s, &mut got[i]);
        }
        if got.iter().zip(&want).all(|(g, w)| g.len() == w.len()) {
            break;
        }
    }
    for i in 0..3 {
        assert_eq!(got[i].len(), want[i].len(), "flow {i}: every byte arrived");
        assert!(got[i] == want[i], "flow {i}: its own bytes, in order");
    }
}

#[test]
fn a_reused_four_tuple_reaches_the_new_connection() {
    let mut p = Pair::new(SimConfig::default(), 2);
    let l = p.a.tcp_listen(80, 16).unwrap();
    let port = 45_000;
    // First connection from b:45000; its data makes it the cached flow.
    let c1 = p.b.tcp_connect(sa(A_IP, 80), port, p.now).unwrap();
    let mut s1 = None;
    p.run_until(100_000, |p| {
        s1 = s1.or_else(|| p.a.tcp_accept(l).ok().map(|x| x.0));
        s1.is_some() && p.b.tcp_state(c1) == Ok(State::Established)
    });
    let s1 = s1.expect("first connection accepted");
    p.b.tcp_write(c1, b"first").unwrap();
    let mut got1 = Vec::new();
    p.run_until(10_000, |p| {
        drain(p, s1, &mut got1);
        got1.len() == 5
    });
    assert_eq!(got1, b"first");
    // Another connection takes a slot, so the reused tuple lands elsewhere.
    let (_s_other, _c_other) = p.accept_from_b(l, 80);
    // Both ends abort: the RST frees a's connection (and its table entry).
    p.b.tcp_abort(c1).unwrap();
    p.run_until(10_000, |p| p.a.tcp_state(s1) != Ok(State::Established));
    p.a.tcp_abort(s1).ok();
    for _ in 0..10 {
        p.step();
    }
    // The same four-tuple again.
    let c2 = p.b.tcp_connect(sa(A_IP, 80), port, p.now).unwrap();
    let mut s2 = None;
    let stop = p.run_until(100_000, |p| {
        s2 = s2.or_else(|| p.a.tcp_accept(l).ok().map(|x| x.0));
        s2.is_some() && p.b.tcp_state(c2) == Ok(State::Established)
    });
    assert_eq!(stop, Stop::Done, "the second handshake on the same tuple");
    let s2 = s2.unwrap();
    assert_ne!(s2, s1, "a new socket");
    p.b.tcp_write(c2, b"second").unwrap();
    let mut got2 = Vec::new();
    let stop = p.run_until(10_000, |p| {
        drain(p, s2, &mut got2);
        got2.len() == 6
    });
    assert_eq!(stop, Stop::Done);
    assert_eq!(got2, b"second", "the new connection got the new bytes");
}
