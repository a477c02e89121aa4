//! Pair scenarios on SimLink: handshake, bulk transfer both ways checked by
//! SHA-256, close, TIME-WAIT expiry, and no leaked page at the end.
mod common;

use common::*;
use zcstack::phy::sim::{Completion, SimConfig};
use zcstack::{Duration, SocketHandle, State, TcpError};

fn connect(p: &mut Pair, port: u16) -> (SocketHandle, SocketHandle) {
    let l = p.a.tcp_listen(port, 16).unwrap();
    let c = p.b.tcp_connect(sa(A_IP, port), 0, p.now).unwrap();
    let mut server = None;
    let stop = p.run_until(10_000, |p| {
        if server.is_none() {
            server = p.a.tcp_accept(l).ok().map(|(h, _)| h);
        }
        server.is_some() && p.b.tcp_state(c) == Ok(State::Established)
    });
    assert_eq!(stop, Stop::Done, "handshake");
    p.a.tcp_close(l, p.now).unwrap();
    (server.unwrap(), c)
}

/// Sends `bytes` from b to a and `bytes` from a to b at once, then closes both.
fn bidirectional(p: &mut Pair, bytes: usize, seed: u64, max_steps: usize) {
    let (s, c) = connect(p, 80);
    let mut src_c = Source::new(seed, bytes);
    let mut src_s = Source::new(seed + 1, bytes);
    let (mut sink_s, mut sink_c) = (Sink::default(), Sink::default());
    let mut buf = vec![0u8; 64 * 1024];
    let (mut shut_c, mut shut_s) = (false, false);
    let mut log_at = 0u64;
    let stop = p.run_until(max_steps, |p| {
        if std::env::var("ZC_TRACE").is_ok() && p.now.total_micros() / 1_000_000 > log_at {
            log_at = p.now.total_micros() / 1_000_000;
            eprintln!("t={} C: {}", p.now, p.b.tcp().describe(c).unwrap_or_default());
            eprintln!("t={} S: {}", p.now, p.a.tcp().describe(s).unwrap_or_default());
            eprintln!("   sim: {:?} backlog a={} b={}", p.da.stats(), p.a.tx_backlog(), p.b.tx_backlog());
        }
        src_c.pump(|d| p.b.tcp_write(c, d).unwrap_or(0));
        src_s.pump(|d| p.a.tcp_write(s, d).unwrap_or(0));
        if src_c.done() && !shut_c {
            p.b.tcp_shutdown(c).unwrap();
            shut_c = true;
        }
        if src_s.done() && !shut_s {
            p.a.tcp_shutdown(s).unwrap();
            shut_s = true;
        }
        loop {
            match p.a.tcp_read(s, &mut buf) {
                Ok(0) => {
                    sink_s.eof = true;
                    break;
                }
                Ok(n) => sink_s.absorb(&buf[..n]),
                Err(TcpError::WouldBlock) => break,
                Err(e) => panic!("server read: {e}"),
            }
        }
        loop {
            match p.b.tcp_read(c, &mut buf) {
                Ok(0) => {
                    sink_c.eof = true;
                    break;
                }
                Ok(n) => sink_c.absorb(&buf[..n]),
                Err(TcpError::WouldBlock) => break,
                Err(e) => panic!("client read: {e}"),
            }
        }
        sink_s.eof && sink_c.eof
    });
    assert_eq!(p.da.stats().too_big, 0, "no frame exceeds the MTU");
    assert_eq!(stop, Stop::Done, "transfer stalled at {} / {} bytes (t={})", sink_s.received, sink_c.received, p.now);
    assert_eq!(sink_s.received, bytes);
    assert_eq!(sink_c.received, bytes);
    assert_eq!(sink_s.digest(), src_c.digest(), "client->server stream intact");
    assert_eq!(sink_c.digest(), src_s.digest(), "server->client stream intact");
    p.a.tcp_close(s, p.now).unwrap();
    p.b.tcp_close(c, p.now).unwrap();
    let stop = p.run_until(max_steps, |p| p.a.tcp_connections() == 0 && p.b.tcp_connections() == 0);
    assert_eq!(stop, Stop::Done, "connections finish (TIME-WAIT expires)");
    // Completions may still be pending on delayed links: drain them.
    p.da.release_all();
    p.db.release_all();
    let stop = p.run_until(1000, |p| p.no_leaks());
    assert_eq!(stop, Stop::Done, "every page back on its free list");
}

#[test]
fn clean_link_bulk_both_ways() {
    let mut p = Pair::new(SimConfig::default(), 1);
    bidirectional(&mut p, 4 << 20, 7, 2_000_000);
    assert_eq!(p.a.stats().tcp_rto_retransmits, 0);
}

#[test]
fn lossy_reordering_duplicating_corrupting_link() {
    let sim = SimConfig { loss: 0.05, reorder: 0.05, duplicate: 0.01, corrupt: 0.001, ..SimConfig::default() };
    let mut p = Pair::new(sim, 42);
    bidirectional(&mut p, 2 << 20, 9, 5_000_000);
    let st = p.da.stats();
    assert!(st.lost > 0 && st.reordered > 0 && st.duplicated > 0, "{st:?}");
}

#[test]
fn delayed_completion_keeps_pages_until_released() {
    let sim = SimConfig { completion: Completion::Delayed(Duration::from_millis(5)), ..SimConfig::default() };
    let mut p = Pair::new(sim, 3);
    bidirectional(&mut p, 1 << 20, 11, 2_000_000);
}

#[test]
fn tso_frames_cut_by_the_link_on_clean_and_lossy_links() {
    // The link offers checksum offload and TSO: the engine sends new data
    // in frames of many segments, which the link cuts (as a NIC would)
    // before loss, reordering, duplication and corruption hit them.
    for (sim, seed) in [
        (SimConfig { offload: true, ..SimConfig::default() }, 5u64),
        (
            SimConfig {
                offload: true,
                loss: 0.05,
                reorder: 0.05,
                duplicate: 0.01,
                corrupt: 0.001,
                ..SimConfig::default()
            },
            43,
        ),
        (
            SimConfig {
                offload: true,
                loss: 0.02,
                completion: Completion::Delayed(Duration::from_millis(2)),
                ..SimConfig::default()
            },
            44,
        ),
        // Delivered whole, as virtio-user hands TSO frames to vhost: the
        // receiver takes segments far larger than the MTU, lost whole.
        (SimConfig { offload: true, tso_whole: true, ..SimConfig::default() }, 45),
        (SimConfig { offload: true, tso_whole: true, loss: 0.02, reorder: 0.05, ..SimConfig::default() }, 46),
    ] {
        let (lossy, whole) = (sim.loss > 0.0, sim.tso_whole);
        let mut p = Pair::new(sim, seed);
        bidirectional(&mut p, 4 << 20, seed * 13, 5_000_000);
        let tso = p.a.stats().tcp_tso_frames + p.b.stats().tcp_tso_frames;
        assert!(tso > 0, "TSO frames were sent: {:?}", p.a.stats());
        // Far fewer frames than segments on the clean link.
        if !lossy {
            assert!(p.b.stats().tx_frames < (4 << 20) / 1448 / 4, "{:?}", p.b.stats());
        }
        if whole && !lossy {
            // The receiver took the frames whole: far fewer than segments.
            assert!(p.a.stats().rx_frames < (4 << 20) / 1448 / 4, "{:?}", p.a.stats());
        }
    }
}

/// The acceptance soak: 20 seeds, each a 64 MiB transfer in each direction at
/// once over 5% loss, 5% reordering, 1% duplication and 0.1% corruption, checked
/// by SHA-256, with every page back at the end. Split in four to use both cores.
fn soak(seeds: std::ops::Range<u64>) {
    for seed in seeds {
        let sim = SimConfig { loss: 0.05, reorder: 0.05, duplicate: 0.01, corrupt: 0.001, ..SimConfig::default() };
        let mut p = Pair::new(sim, seed);
        bidirectional(&mut p, 64 << 20, seed * 7919, 60_000_000);
    }
}

#[test]
fn soak_64mib_seeds_1_to_5() {
    soak(1..6);
}

#[test]
fn soak_64mib_seeds_6_to_10() {
    soak(6..11);
}

#[test]
fn soak_64mib_seeds_11_to_15() {
    soak(11..16);
}

#[test]
fn soak_64mib_seeds_16_to_20() {
    soak(16..21);
}

#[test]
fn cubic_on_a_lossy_link() {
    let sim = SimConfig { loss: 0.02, reorder: 0.02, latency: Duration::from_millis(5), ..SimConfig::default() };
    let mut ca = stack_config(A_IP, 1);
    let mut cb = stack_config(B_IP, 2);
    ca.tcp.congestion = zcstack::config::CongestionControl::Cubic;
    cb.tcp.congestion = zcstack::config::CongestionControl::Cubic;
    let mut p = Pair::with_configs(sim, 77, ca, cb, 8192);
    bidirectional(&mut p, 8 << 20, 123, 20_000_000);
    assert!(p.a.stats().tcp_fast_retransmits > 0, "losses were recovered: {:?}", p.a.stats());
}
