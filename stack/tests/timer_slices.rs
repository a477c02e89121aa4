//! Timers due together are handled in bounded slices (issue 13, the tail):
//! when the keep-alive timers of many connections fall due in one tick, a
//! single poll handles at most a slice of them (no pass grows with the
//! number of connections), the rest follow on the next polls, counted in
//! `tcp_timer_slices_deferred`, and no timer is lost: every connection
//! sends its probe and stays established. Simulated time.
mod common;

use common::*;
use zcstack::phy::sim::SimConfig;
use zcstack::tcp::SockOpt;
use zcstack::{Duration, SocketHandle, State};

/// The engine's slice (`tcp::timers::TIMER_SLICE`).
const SLICE: u64 = 256;

/// `n` connections b -> a, established; returns a's sides.
fn connections(p: &mut Pair, n: usize) -> Vec<SocketHandle> {
    let l = p.a.tcp_listen(80, 4096).unwrap();
    let clients: Vec<SocketHandle> = (0..n).map(|_| p.b.tcp_connect(sa(A_IP, 80), 0, p.now).unwrap()).collect();
    let mut servers = Vec::new();
    let stop = p.run_until(1_000_000, |p| {
        while let Ok((h, _)) = p.a.tcp_accept(l) {
            servers.push(h);
        }
        servers.len() == n && clients.iter().all(|c| p.b.tcp_state(*c) == Ok(State::Established))
    });
    assert_eq!(stop, Stop::Done);
    p.run_until(1_000_000, |_| false); // delayed ACKs settle: nothing pending
    servers
}

fn keepalive_burst(n: usize) {
    let mut ca = stack_config(A_IP, 1);
    ca.tcp.keepalive_idle = Duration::from_secs(5);
    ca.tcp.keepalive_interval = Duration::from_secs(5);
    let sim = SimConfig { queue_limit: 1 << 16, ..SimConfig::default() };
    let mut p = Pair::with_configs(sim, 3, ca, stack_config(B_IP, 2), 8192);
    let servers = connections(&mut p, n);
    // Every keep-alive timer armed in the same tick: all due together.
    for h in &servers {
        p.a.tcp_set_option(*h, SockOpt::KeepAlive(true), p.now).unwrap();
    }
    p.now += Duration::from_secs(6);
    // (Setup may have sliced too: 600 handshakes' delayed ACKs fall due together.)
    let (before, d0) = (p.a.stats().tx_frames, p.a.stats().tcp_timer_slices_deferred);
    p.a.poll(p.now, &mut p.da);
    let first = p.a.stats().tx_frames - before;
    let n64 = n as u64;
    assert_eq!(first, n64.min(SLICE), "one poll probes at most a slice of {n} connections");
    let slices = n64.div_ceil(SLICE);
    assert_eq!(p.a.stats().tcp_timer_slices_deferred - d0, u64::from(slices > 1));
    if slices > 1 {
        assert!(p.a.poll_at().is_some_and(|t| t <= p.now), "the rest are due at once");
    }
    // The other slices follow on the next polls, one each, and the peers answer.
    for _ in 1..slices {
        p.a.poll(p.now, &mut p.da);
    }
    assert_eq!(p.a.stats().tx_frames - before, n64, "every connection probed, none twice");
    assert_eq!(p.a.stats().tcp_timer_slices_deferred - d0, slices - 1);
    p.run_until(20_000, |_| false); // answers delivered, nothing left pending
    assert!(servers.iter().all(|h| p.a.tcp_state(*h) == Ok(State::Established)), "no connection lost a timer");
}

#[test]
fn keepalive_timers_of_many_connections_fire_in_slices() {
    keepalive_burst(600);
}

#[test]
fn exactly_one_slice_defers_nothing() {
    keepalive_burst(SLICE as usize);
}

#[test]
fn a_slice_and_one_more() {
    keepalive_burst(SLICE as usize + 1);
}
