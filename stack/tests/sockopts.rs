//! Socket options: SO_LINGER (abortive and timed), SO_REUSEADDR (listen
//! over TIME-WAIT, recycling a TIME-WAIT 4-tuple), inheritance by accepted
//! connections, and set/get round trips.
mod common;

use common::*;
use zcstack::mem::PageMemory;
use zcstack::phy::sim::SimConfig;
use zcstack::tcp::{SockOpt, SockOptName, SocketOptions};
use zcstack::{Duration, State, TcpError};

#[test]
fn linger_zero_close_resets_at_once() {
    let mut p = Pair::new(SimConfig::default(), 1);
    let (s, c) = p.establish(80);
    p.a.tcp_write(s, &[7u8; 10_000]).unwrap();
    p.a.tcp_set_option(s, SockOpt::Linger(Some(Duration::ZERO)), p.now).unwrap();
    let rst_before = p.a.stats().tcp_rst_sent;
    p.a.tcp_close(s, p.now).unwrap();
    assert_eq!(p.a.tcp_state(s), Err(TcpError::InvalidHandle));
    let stop = p.run_until(10_000, |p| p.b.tcp_state(c) == Ok(State::Closed));
    assert_eq!(stop, Stop::Done);
    assert_eq!(p.b.tcp().error(c), Some(TcpError::Reset));
    assert_eq!(p.a.tcp_connections(), 0, "no TIME-WAIT after an abortive close");
    assert!(p.a.stats().tcp_rst_sent > rst_before);
    p.b.tcp_close(c, p.now).unwrap();
    assert!(p.no_leaks());
}

#[test]
fn linger_timeout_resets_when_the_peer_never_acknowledges() {
    let mut p = Pair::new(SimConfig::default(), 2);
    let (s, c) = p.establish(80);
    // The client stops reading with a small window: the server's data
    // cannot all be delivered.
    p.b.tcp_set_option(c, SockOpt::RecvBuffer(4096), p.now).unwrap();
    let mut sent = 0;
    let stop = p.run_until(10_000, |p| {
        while let Ok(n) = p.a.tcp_write(s, &[1u8; 8192]) {
            sent += n;
        }
        sent > 100_000
    });
    assert_eq!(stop, Stop::Done);
    p.a.tcp_set_option(s, SockOpt::Linger(Some(Duration::from_secs(3))), p.now).unwrap();
    assert_eq!(p.a.tcp_get_option(s, SockOptName::Linger), Ok(SockOpt::Linger(Some(Duration::from_secs(3)))));
    let closed_at = p.now;
    p.a.tcp_close(s, p.now).unwrap();
    let stop = p.run_until(100_000, |p| p.b.tcp_state(c) == Ok(State::Closed));
    assert_eq!(stop, Stop::Done);
    assert_eq!(p.b.tcp().error(c), Some(TcpError::Reset));
    assert_eq!(p.a.stats().tcp_linger_resets, 1);
    let waited = p.now - closed_at;
    assert!(waited >= Duration::from_secs(3) && waited < Duration::from_secs(4), "reset after {waited:?}");
    assert_eq!(p.a.tcp_connections(), 0);
    p.b.tcp_close(c, p.now).unwrap();
    assert!(p.no_leaks());
}

#[test]
fn linger_timeout_does_not_fire_when_everything_is_acknowledged() {
    let mut p = Pair::new(SimConfig::default(), 3);
    let (s, c) = p.establish(80);
    p.a.tcp_set_option(s, SockOpt::Linger(Some(Duration::from_secs(1))), p.now).unwrap();
    p.a.tcp_write(s, &[9u8; 50_000]).unwrap();
    p.a.tcp_close(s, p.now).unwrap();
    let mut sink = Sink::default();
    // The client reads everything but keeps its side open for 10 s: the
    // server sits in FIN-WAIT-2 past its linger time without resetting.
    let stop = p.run_until(100_000, |p| {
        read_into(&mut p.b, c, &mut sink);
        sink.eof
    });
    assert_eq!(stop, Stop::Done);
    assert_eq!(sink.received, 50_000);
    let t = p.now + Duration::from_secs(10);
    p.run_until(100_000, |p| p.now >= t);
    assert_eq!(p.a.stats().tcp_linger_resets, 0);
    assert_eq!(p.b.tcp().error(c), None);
    p.b.tcp_close(c, p.now).unwrap();
    let stop = p.run_until(100_000, |p| p.a.tcp_connections() == 0 && p.b.tcp_connections() == 0);
    assert_eq!(stop, Stop::Done);
    assert!(p.no_leaks());
}

/// The server closes first, so its side of the connection sits in TIME-WAIT
/// on port 80; returns once it is there (the listener is already closed).
fn server_in_time_wait(p: &mut Pair) {
    let (s, c) = p.establish(80);
    p.a.tcp_close(s, p.now).unwrap();
    let mut sink = Sink::default();
    let stop = p.run_until(10_000, |p| {
        read_into(&mut p.b, c, &mut sink);
        sink.eof
    });
    assert_eq!(stop, Stop::Done);
    p.b.tcp_close(c, p.now).unwrap();
    let stop = p.run_until(10_000, |p| p.b.tcp_connections() == 0);
    assert_eq!(stop, Stop::Done);
    assert_eq!(p.a.tcp_connections(), 1, "server side in TIME-WAIT");
}

#[test]
fn listen_over_time_wait_needs_reuseaddr() {
    let mut p = Pair::new(SimConfig::default(), 4);
    server_in_time_wait(&mut p);
    assert_eq!(p.a.tcp_listen(80, 16).err(), Some(TcpError::AddrInUse));
    let opts = SocketOptions { reuse_addr: true, ..SocketOptions::default() };
    let l = p.a.tcp_listen_with(80, 16, &opts).expect("SO_REUSEADDR listen over TIME-WAIT");
    // A second listener on the port is refused even with SO_REUSEADDR.
    assert_eq!(p.a.tcp_listen_with(80, 16, &opts).err(), Some(TcpError::AddrInUse));
    // The restarted server accepts a new connection from another port.
    let c = p.b.tcp_connect(sa(A_IP, 80), 0, p.now).unwrap();
    let mut got = None;
    let stop = p.run_until(10_000, |p| {
        got = got.or_else(|| p.a.tcp_accept(l).ok());
        got.is_some() && p.b.tcp_state(c) == Ok(State::Established)
    });
    assert_eq!(stop, Stop::Done);
    // Once TIME-WAIT (2 MSL) and the new connection are gone, plain listen works.
    let (s, _) = got.unwrap();
    p.a.tcp_abort(s).unwrap();
    p.b.tcp_abort(c).unwrap();
    p.a.tcp_close(l, p.now).unwrap();
    let stop = p.run_until(100_000, |p| p.a.tcp_connections() == 0);
    assert_eq!(stop, Stop::Done);
    p.a.tcp_listen(80, 16).expect("port free again");
    assert!(p.no_leaks());
}

#[test]
fn connect_recycles_a_time_wait_tuple_only_with_reuseaddr() {
    let mut p = Pair::new(SimConfig::default(), 5);
    // a connects out from port 7000 and closes first: a's side of
    // (a:7000, b:90) sits in TIME-WAIT.
    let l = p.b.tcp_listen(90, 4).unwrap();
    let c = p.a.tcp_connect(sa(B_IP, 90), 7000, p.now).unwrap();
    let mut srv = None;
    let stop = p.run_until(10_000, |p| {
        srv = srv.or_else(|| p.b.tcp_accept(l).ok().map(|x| x.0));
        srv.is_some() && p.a.tcp_state(c) == Ok(State::Established)
    });
    assert_eq!(stop, Stop::Done);
    let srv = srv.unwrap();
    p.a.tcp_close(c, p.now).unwrap();
    let mut sink = Sink::default();
    let stop = p.run_until(10_000, |p| {
        read_into(&mut p.b, srv, &mut sink);
        sink.eof
    });
    assert_eq!(stop, Stop::Done);
    p.b.tcp_close(srv, p.now).unwrap();
    let stop = p.run_until(10_000, |p| p.b.tcp_connections() == 0);
    assert_eq!(stop, Stop::Done);
    assert_eq!(p.a.tcp_connections(), 1, "client side in TIME-WAIT");

    assert_eq!(p.a.tcp_connect(sa(B_IP, 90), 7000, p.now).err(), Some(TcpError::AddrInUse));
    let opts = SocketOptions { reuse_addr: true, ..SocketOptions::default() };
    let c2 = p.a.tcp_connect_with(sa(B_IP, 90), 7000, &opts, p.now).expect("recycle TIME-WAIT tuple");
    assert_eq!(p.a.tcp_connections(), 1, "the old incarnation is gone");
    let mut srv2 = None;
    let stop = p.run_until(10_000, |p| {
        srv2 = srv2.or_else(|| p.b.tcp_accept(l).ok().map(|x| x.0));
        srv2.is_some() && p.a.tcp_state(c2) == Ok(State::Established)
    });
    assert_eq!(stop, Stop::Done);
    assert_eq!(p.a.tcp_get_option(c2, SockOptName::ReuseAddr), Ok(SockOpt::ReuseAddr(true)));
    // A live 4-tuple is never taken over.
    assert_eq!(p.a.tcp_connect_with(sa(B_IP, 90), 7000, &opts, p.now).err(), Some(TcpError::AddrInUse));
    // Nor is a listening port.
    assert_eq!(p.b.tcp_connect_with(sa(A_IP, 1234), 90, &opts, p.now).err(), Some(TcpError::AddrInUse));
}

#[test]
fn accepted_connections_inherit_listener_options() {
    let mut p = Pair::new(SimConfig::default(), 6);
    let opts = SocketOptions {
        send_buffer: Some(32_768),
        recv_buffer: Some(16_384),
        nodelay: Some(true),
        keepalive: true,
        linger: Some(Duration::from_secs(5)),
        reuse_addr: false,
        max_seg: None,
    };
    let l = p.a.tcp_listen_with(80, 4, &opts).unwrap();
    // Changing the listener affects later connections only.
    p.a.tcp_set_option(l, SockOpt::SendBuffer(65_536), p.now).unwrap();
    assert_eq!(p.a.tcp_get_option(l, SockOptName::SendBuffer), Ok(SockOpt::SendBuffer(65_536)));
    let (s, c) = p.accept_from_b(l, 80);
    let get = |p: &mut Pair, n| p.a.tcp_get_option(s, n).unwrap();
    assert_eq!(get(&mut p, SockOptName::SendBuffer), SockOpt::SendBuffer(65_536));
    assert_eq!(get(&mut p, SockOptName::RecvBuffer), SockOpt::RecvBuffer(16_384));
    assert_eq!(get(&mut p, SockOptName::NoDelay), SockOpt::NoDelay(true));
    assert_eq!(get(&mut p, SockOptName::KeepAlive), SockOpt::KeepAlive(true));
    assert_eq!(get(&mut p, SockOptName::Linger), SockOpt::Linger(Some(Duration::from_secs(5))));
    // The client got defaults; the receive buffer bounds what the server may send.
    assert_eq!(p.b.tcp_get_option(c, SockOptName::NoDelay), Ok(SockOpt::NoDelay(false)));
    let big = vec![3u8; 100_000];
    let took = p.b.tcp_write(c, &big).unwrap();
    let t = p.now + Duration::from_secs(2);
    assert_eq!(p.run_until(100_000, |p| p.now >= t), Stop::Done);
    let delivered = took - p.b.tcp().send_queued(c).unwrap();
    assert!(delivered > 8_000 && delivered <= 16_384, "delivered {delivered} into a 16 KiB receive buffer");
    // SO_SNDBUF bounds what write takes.
    p.a.tcp_set_option(s, SockOpt::SendBuffer(1000), p.now).unwrap();
    assert_eq!(p.a.tcp_write(s, &big), Ok(1000));
    // Options on a stale handle fail cleanly.
    p.a.tcp_abort(s).unwrap();
    assert_eq!(p.a.tcp_set_option(s, SockOpt::NoDelay(true), p.now), Err(TcpError::InvalidHandle));
    assert_eq!(p.a.tcp_get_option(s, SockOptName::NoDelay), Err(TcpError::InvalidHandle));
}

#[test]
fn abort_all_resets_every_connection_and_frees_everything() {
    let mut p = Pair::new(SimConfig::default(), 7);
    let (s1, c1) = p.establish(80);
    let (_s2, c2) = p.establish(81);
    p.a.tcp_write(s1, &[1u8; 100_000]).unwrap();
    let _l = p.a.tcp_listen(90, 4).unwrap();
    assert_eq!(p.a.abort_all(), 2);
    assert_eq!(p.a.tcp_connections(), 0);
    let stop =
        p.run_until(10_000, |p| p.b.tcp_state(c1) == Ok(State::Closed) && p.b.tcp_state(c2) == Ok(State::Closed));
    assert_eq!(stop, Stop::Done);
    assert_eq!(p.b.tcp().error(c1), Some(TcpError::Reset));
    // The listener is gone too: a new connect is refused.
    let c3 = p.b.tcp_connect(sa(A_IP, 90), 0, p.now).unwrap();
    let stop = p.run_until(10_000, |p| p.b.tcp_state(c3) == Ok(State::Closed));
    assert_eq!(stop, Stop::Done);
    assert_eq!(p.b.tcp().error(c3), Some(TcpError::Refused));
    assert_eq!(p.a.discard_unsent(), 0, "nothing left queued after the RSTs went out");
    assert_eq!(p.a.mem().free_count(), p.pages as usize);
}
