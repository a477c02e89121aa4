//! Scale: 100,000 concurrent established connections in one stack instance on
//! SimLink. Reports and bounds the memory per idle connection (a counting
//! allocator, so the figure is exact and deterministic), and checks that idle
//! connections leave no timer behind (they cost nothing per poll).
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use common::*;
use zcstack::phy::sim::SimConfig;
use zcstack::{SocketHandle, State};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: p was allocated by System with layout l.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn hundred_thousand_idle_connections() {
    let n = 100_000usize;
    let mut cfg_a = stack_config(A_IP, 1);
    let mut cfg_b = stack_config(B_IP, 2);
    for c in [&mut cfg_a, &mut cfg_b] {
        c.tcp.somaxconn = 200_000;
        // Small buffers: this measures connection state, not buffer space.
        c.tcp.send_buffer = 4096;
        c.tcp.recv_buffer = 4096;
    }
    let sim = SimConfig { queue_limit: 1 << 20, ..SimConfig::default() };
    let mut p = Pair::with_configs(sim, 1, cfg_a, cfg_b, 1024);
    let listeners: Vec<SocketHandle> = (0..4).map(|i| p.a.tcp_listen(80 + i, 200_000).unwrap()).collect();
    // Warm up the ARP caches and allocator pools with one connection.
    let w = p.b.tcp_connect(sa(A_IP, 80), 0, p.now).unwrap();
    let mut warm = None;
    p.run_until(10_000, |p| {
        warm = warm.or_else(|| p.a.tcp_accept(listeners[0]).ok());
        warm.is_some() && p.b.tcp_state(w) == Ok(State::Established)
    });
    assert!(warm.is_some());
    p.run_until(10_000, |_| false);
    let before = LIVE.load(Ordering::Relaxed);

    let mut clients = Vec::with_capacity(n);
    let mut servers = Vec::with_capacity(n);
    for i in 0..n {
        clients.push(p.b.tcp_connect(sa(A_IP, 80 + (i % 4) as u16), 0, p.now).unwrap());
        if i % 1000 == 999 {
            p.run_until(1_000_000, |p| {
                for l in &listeners {
                    while let Ok((h, _)) = p.a.tcp_accept(*l) {
                        servers.push(h);
                    }
                }
                servers.len() == i + 1
            });
        }
    }
    let stop = p.run_until(10_000_000, |p| {
        for l in &listeners {
            while let Ok((h, _)) = p.a.tcp_accept(*l) {
                servers.push(h);
            }
        }
        servers.len() == n
    });
    assert_eq!(stop, Stop::Done);
    p.run_until(10_000_000, |_| false); // let every final ACK and delayed ACK settle
    assert!(clients.iter().all(|c| p.b.tcp_state(*c) == Ok(State::Established)));
    assert_eq!(p.a.tcp_connections(), n + 1);
    assert_eq!(p.b.tcp_connections(), n + 1);
    let after = LIVE.load(Ordering::Relaxed);
    let per_conn = (after - before) as f64 / (2 * n) as f64;
    eprintln!("memory per idle connection (both sides averaged, no buffers): {per_conn:.0} bytes");
    assert!(per_conn <= 1024.0, "{per_conn} bytes per idle connection");
    // Idle connections hold no timers: polling them costs nothing.
    assert_eq!(p.a.poll_at(), None, "no timer pending on 100k idle connections");
    assert_eq!(p.b.poll_at(), None);
    // And one of them still works.
    let c = clients[n / 2];
    let (local, remote) = p.b.tcp().addrs(c).unwrap();
    let s = *servers.iter().find(|s| p.a.tcp().addrs(**s).unwrap() == (remote, local)).expect("its server side");
    p.b.tcp_write(c, b"still alive").unwrap();
    let mut got = 0;
    p.run_until(100_000, |p| {
        let mut buf = [0u8; 64];
        if let Ok(k) = p.a.tcp_read(s, &mut buf) {
            got += k;
        }
        got == 11
    });
    assert_eq!(got, 11);
}
