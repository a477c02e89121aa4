//! FreeBSD's sysctl limits as F-Stack's `config.ini` sets them, through
//! the one mapping `zcstack::sysctl` (the names, not the struct fields):
//! each knob changes what the engine does on the wire, and each refusal or
//! recycling is counted. Deterministic: scripted peer or `SimLink` pair,
//! simulated time.

mod common;

use common::script::*;
use common::*;
use zcstack::mem::HeapPages;
use zcstack::phy::sim::SimConfig;
use zcstack::tcp::sockopt::{SockOpt, SockOptName, SocketOptions};
use zcstack::wire::*;
use zcstack::{Duration, Instant, Stack, StackConfig, TcpError};

/// Our stack's config with `knobs` applied by their FreeBSD names.
fn with_sysctls(mut cfg: StackConfig, knobs: &[(&str, &str)]) -> StackConfig {
    for (k, v) in knobs {
        zcstack::sysctl::apply(&mut cfg, k, v).unwrap_or_else(|e| panic!("{k}={v}: {e}"));
    }
    cfg
}

fn scripted(knobs: &[(&str, &str)]) -> (Stack<HeapPages>, zcstack::phy::queue::QueueDevice) {
    let mut cfg = with_sysctls(stack_config(A_IP, 1), knobs);
    cfg.arp_ttl = Duration::from_secs(1_000_000);
    let mut st = Stack::new(cfg, HeapPages::new(256, 2048), 1500);
    let mut dev = script_device();
    learn_peer(&mut st, &mut dev);
    (st, dev)
}

#[test]
fn tcp_blackhole_leaves_closed_ports_silent_as_freebsd_levels_say() {
    // (level, SYN answered?, ACK answered?)
    for (level, syn_rst, ack_rst) in [("0", true, true), ("1", false, true), ("2", false, false)] {
        let (mut st, mut dev) = scripted(&[("net.inet.tcp.blackhole", level)]);
        let out = exchange(&mut st, &mut dev, at(1), vec![tcp_frame(seg(1000, None, TcpControl::Syn))]);
        assert_eq!(out.iter().any(|g| g.ctl == TcpControl::Rst), syn_rst, "blackhole={level}: SYN to a closed port");
        let out = exchange(&mut st, &mut dev, at(2), vec![tcp_frame(seg(1000, Some(5), TcpControl::None))]);
        assert_eq!(out.iter().any(|g| g.ctl == TcpControl::Rst), ack_rst, "blackhole={level}: ACK to a closed port");
        let silent = u64::from(!syn_rst) + u64::from(!ack_rst);
        assert_eq!(st.stats().tcp_blackholed, silent, "blackhole={level}: each silent drop counted");
        assert_eq!(st.stats().drop_tcp_no_socket, 2);
        // A RST is never answered, whatever the level.
        let out = exchange(&mut st, &mut dev, at(3), vec![tcp_frame(seg(1000, None, TcpControl::Rst))]);
        assert!(out.is_empty());
    }
    // A listening port still answers a SYN with blackhole=2.
    let (mut st, mut dev) = scripted(&[("net.inet.tcp.blackhole", "2")]);
    st.tcp_listen(80, 4).unwrap();
    let out = exchange(&mut st, &mut dev, at(1), vec![tcp_frame(seg(1000, None, TcpControl::Syn))]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ctl, TcpControl::Syn, "SYN-ACK from the listener");
}

fn udp_frame(dport: u16) -> Vec<u8> {
    let payload = b"probe";
    let repr = UdpRepr { src_port: 5000, dst_port: dport };
    let mut l4 = vec![0u8; 8 + payload.len()];
    repr.emit(
        &mut UdpPacket::new_unchecked(&mut l4[..]),
        &PEER_IP.into(),
        &A_IP.into(),
        payload.len(),
        |b| b.copy_from_slice(payload),
        &Default::default(),
    );
    eth_ip(IpProtocol::Udp, &l4)
}

fn icmp_frames(frames: &[Vec<u8>]) -> usize {
    frames
        .iter()
        .filter(|f| {
            let Ok(eth) = EthernetFrame::new_checked(&f[..]) else { return false };
            let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else { return false };
            ip.next_header() == IpProtocol::Icmp
        })
        .count()
}

#[test]
fn udp_blackhole_sends_no_port_unreachable() {
    for (level, icmp) in [("0", 1), ("1", 0)] {
        let (mut st, mut dev) = scripted(&[("net.inet.udp.blackhole", level)]);
        dev.push_rx(udp_frame(9999));
        st.poll(at(1), &mut dev);
        assert_eq!(icmp_frames(&dev.take_tx()), icmp, "udp.blackhole={level}");
        assert_eq!(st.stats().udp_blackholed, 1 - icmp as u64);
        assert_eq!(st.stats().drop_udp_no_socket, 1);
    }
}

#[test]
fn maxsockets_refuses_connect_listen_and_syns_beyond_the_cap() {
    let (mut st, mut dev) = scripted(&[("kern.ipc.maxsockets", "2")]);
    let l = st.tcp_listen(80, 8).unwrap();
    // First SYN: a socket for it (2 of 2).
    let mut syn = seg(1000, None, TcpControl::Syn);
    syn.mss = Some(1460);
    let out = exchange(&mut st, &mut dev, at(1), vec![tcp_frame(syn)]);
    assert_eq!(out.len(), 1, "SYN-ACK");
    // A second peer port: no socket left, dropped silently (the peer retries).
    syn.sport = 40001;
    let out = exchange(&mut st, &mut dev, at(2), vec![tcp_frame(syn)]);
    assert!(out.is_empty(), "no SYN-ACK past kern.ipc.maxsockets: {out:?}");
    assert_eq!(st.stats().tcp_max_sockets_refused, 1);
    assert_eq!(st.tcp_connect(sa(PEER_IP, 80), 0, at(3)), Err(TcpError::NoBuffers));
    assert_eq!(st.tcp_listen(81, 8), Err(TcpError::NoBuffers));
    assert_eq!(st.stats().tcp_max_sockets_refused, 3);
    // Freeing one makes room again.
    st.tcp_close(l, at(4)).unwrap();
    assert!(st.tcp_connect(sa(PEER_IP, 80), 0, at(5)).is_ok());
    assert_eq!(st.stats().tcp_max_sockets_refused, 3);
}

/// Opens `n` connections b -> a, then closes each from a first (a ends in
/// TIME-WAIT) and from b, and runs until b has none left.
fn close_from_a(p: &mut Pair, n: u16) {
    let mut pairs = Vec::new();
    for i in 0..n {
        pairs.push(p.establish(7000 + i));
    }
    for (s, _) in &pairs {
        p.a.tcp_close(*s, p.now).unwrap();
    }
    let mut closed = vec![false; pairs.len()];
    let stop = p.run_until(100_000, |p| {
        for (i, (_, c)) in pairs.iter().enumerate() {
            if !closed[i] && matches!(drain(&mut p.b, *c), (_, true)) {
                p.b.tcp_close(*c, p.now).unwrap();
                closed[i] = true;
            }
        }
        closed.iter().all(|c| *c) && p.b.tcp_connections() == 0
    });
    assert_eq!(stop, Stop::Done, "every connection closed");
}

#[test]
fn maxtcptw_recycles_the_oldest_time_wait_connections_and_counts_them() {
    let ca = with_sysctls(stack_config(A_IP, 1), &[("net.inet.tcp.maxtcptw", "2"), ("net.inet.tcp.msl", "30000")]);
    let mut p = Pair::with_configs(SimConfig::default(), 1, ca, stack_config(B_IP, 2), 8192);
    close_from_a(&mut p, 5);
    assert!(p.now < Instant::ZERO + Duration::from_secs(60), "still within 2*MSL: {:?}", p.now);
    assert_eq!(p.a.tcp_connections(), 2, "TIME-WAIT held at maxtcptw");
    assert_eq!(p.a.stats().tcp_time_wait_recycled, 3);
    let mut left: Vec<u16> =
        p.a.tcp_sockets(16).iter().filter(|s| s.remote.is_some()).map(|s| s.local.port()).collect();
    left.sort_unstable();
    assert_eq!(left, vec![7003, 7004], "the oldest were recycled, the newest wait");
    assert!(p.a.tcp_sockets(16).iter().all(|s| s.remote.is_none() || s.state == Some(zcstack::State::TimeWait)));
    // Without the cap all five wait.
    let ca = with_sysctls(stack_config(A_IP, 1), &[("net.inet.tcp.msl", "30000")]);
    let mut p = Pair::with_configs(SimConfig::default(), 1, ca, stack_config(B_IP, 2), 8192);
    close_from_a(&mut p, 5);
    assert_eq!(p.a.tcp_connections(), 5);
    assert_eq!(p.a.stats().tcp_time_wait_recycled, 0);
}

/// Established from the scripted peer, closed by the application, and the
/// peer's ACK of our FIN (no FIN of its own): an orphan in FIN-WAIT-2.
fn orphan_in_fin_wait_2(knobs: &[(&str, &str)]) -> (Stack<HeapPages>, zcstack::phy::queue::QueueDevice) {
    let (mut st, mut dev) = scripted(knobs);
    let l = st.tcp_listen(80, 8).unwrap();
    let mut syn = seg(1000, None, TcpControl::Syn);
    syn.mss = Some(1460);
    let out = exchange(&mut st, &mut dev, at(0), vec![tcp_frame(syn)]);
    let iss1 = out[0].seq + 1;
    exchange(&mut st, &mut dev, at(1), vec![tcp_frame(seg(1001, Some(iss1), TcpControl::None))]);
    let (h, _) = st.tcp_accept(l).unwrap();
    st.tcp_close(l, at(2)).unwrap();
    st.tcp_close(h, at(2)).unwrap();
    st.poll(at(2), &mut dev);
    let fin = dev.take_tx().iter().filter_map(|f| decode_tcp(f)).find(|g| g.ctl == TcpControl::Fin);
    assert!(fin.is_some(), "our FIN");
    exchange(&mut st, &mut dev, at(3), vec![tcp_frame(seg(1001, Some(iss1 + 1), TcpControl::None))]);
    assert_eq!(st.tcp_connections(), 1, "FIN-WAIT-2");
    (st, dev)
}

/// The time, ms after the close, at which the orphan is gone (polled every 100 ms).
fn fin_wait_2_lifetime(knobs: &[(&str, &str)]) -> u64 {
    let (mut st, mut dev) = orphan_in_fin_wait_2(knobs);
    for ms in (100..=3_600_000).step_by(100) {
        st.poll(at(3 + ms), &mut dev);
        if st.tcp_connections() == 0 {
            return ms;
        }
    }
    panic!("the orphan outlived an hour");
}

#[test]
fn finwait2_timeout_and_fast_recycle_bound_an_orphan_in_fin_wait_2() {
    let fast = fin_wait_2_lifetime(&[("net.inet.tcp.finwait2_timeout", "5000")]);
    assert!((5000..=5100).contains(&fast), "finwait2_timeout=5000 ms: gone after {fast} ms");
    let dflt = fin_wait_2_lifetime(&[]);
    assert!((60_000..=60_100).contains(&dflt), "default 60 s: {dflt} ms");
    // Without fast recycling FreeBSD waits its idle limit, keepcnt * keepintvl.
    let slow = fin_wait_2_lifetime(&[
        ("net.inet.tcp.fast_finwait2_recycle", "0"),
        ("net.inet.tcp.keepintvl", "10000"),
        ("net.inet.tcp.keepcnt", "3"),
        ("net.inet.tcp.finwait2_timeout", "5000"),
    ]);
    assert!((30_000..=30_100).contains(&slow), "3 * 10 s: {slow} ms");
}

#[test]
fn sendbuf_max_and_recvbuf_max_cap_so_sndbuf_and_so_rcvbuf() {
    let (mut st, _dev) = scripted(&[("net.inet.tcp.sendbuf_max", "65536"), ("net.inet.tcp.recvbuf_max", "131072")]);
    let h = st.tcp_connect(sa(PEER_IP, 80), 0, at(1)).unwrap();
    st.tcp_set_option(h, SockOpt::SendBuffer(1 << 24), at(1)).unwrap();
    st.tcp_set_option(h, SockOpt::RecvBuffer(1 << 24), at(1)).unwrap();
    assert_eq!(st.tcp_get_option(h, SockOptName::SendBuffer), Ok(SockOpt::SendBuffer(65536)));
    assert_eq!(st.tcp_get_option(h, SockOptName::RecvBuffer), Ok(SockOpt::RecvBuffer(131072)));
    // Below the cap the request stands.
    st.tcp_set_option(h, SockOpt::SendBuffer(4096), at(1)).unwrap();
    assert_eq!(st.tcp_get_option(h, SockOptName::SendBuffer), Ok(SockOpt::SendBuffer(4096)));
    // Options given at connect time are capped the same way.
    let opts = SocketOptions { send_buffer: Some(1 << 24), ..SocketOptions::default() };
    let h2 = st.tcp_connect_with(sa(PEER_IP, 81), 0, &opts, at(1)).unwrap();
    assert_eq!(st.tcp_get_option(h2, SockOptName::SendBuffer), Ok(SockOpt::SendBuffer(65536)));
}

fn local_ports(randomized: &str) -> Vec<u16> {
    let (mut st, _dev) = scripted(&[("net.inet.ip.portrange.randomized", randomized)]);
    (0..8)
        .map(|i| {
            let h = st.tcp_connect(sa(PEER_IP, 80 + i), 0, at(1)).unwrap();
            st.tcp().addrs(h).unwrap().0.port()
        })
        .collect()
}

#[test]
fn portrange_randomized_draws_ephemeral_ports_out_of_sequence() {
    let seq = local_ports("0");
    assert!(seq.windows(2).all(|w| w[1] == w[0] + 1), "sequential: {seq:?}");
    let rnd = local_ports("1");
    assert!(rnd.iter().all(|p| (32768..=60999).contains(p)), "in the ephemeral range: {rnd:?}");
    assert!(rnd.windows(2).filter(|w| w[1] == w[0] + 1).count() < 2, "not sequential: {rnd:?}");
    assert_eq!(rnd, local_ports("1"), "deterministic for a given secret");
}

#[test]
fn nolocaltimewait_holds_because_no_connection_to_our_own_address_exists() {
    // FreeBSD skips TIME-WAIT for connections whose peer is one of our own
    // addresses. zcstack never has one: a segment from our own address is
    // spoofed or looped back (RFC 1122 3.2.1.3) and creates no state.
    let mut cfg = stack_config(A_IP, 1);
    assert_eq!(
        zcstack::sysctl::apply(&mut cfg, "net.inet.tcp.nolocaltimewait", "1"),
        Ok(zcstack::sysctl::Applied::Fixed)
    );
    assert!(zcstack::sysctl::apply(&mut cfg, "net.inet.tcp.nolocaltimewait", "2").is_err());
    let mut st = Stack::new(cfg, HeapPages::new(256, 2048), 1500);
    let mut dev = script_device();
    learn_peer(&mut st, &mut dev);
    st.tcp_listen(80, 8).unwrap();
    let mut f = tcp_frame(seg(1000, None, TcpControl::Syn));
    // The same SYN from our own address, checksums valid.
    let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
    ip.set_src_addr(A_IP);
    ip.fill_checksum();
    TcpPacket::new_unchecked(&mut f[34..]).fill_checksum(&A_IP.into(), &A_IP.into());
    dev.push_rx(f);
    st.poll(at(1), &mut dev);
    assert!(dev.take_tx().is_empty(), "no SYN-ACK to our own address");
    assert_eq!(st.tcp_connections(), 0, "no connection from our own address");
    assert_eq!(st.stats().drop_ipv4_bad_source, 1, "dropped for its source, counted");
}
