//! Issue 10 fault 1 (audit follow-up): pools a peer can make the stack hold.
//! The page array shared by send queues (slow readers must not stop other
//! connections' sends) and the ARP pending queue.

mod common;

use common::*;
use zcstack::mem::{HeapPages, PageMemory};
use zcstack::phy::sim::SimConfig;
use zcstack::wire::*;
use zcstack::{Event, Instant, Interest, SocketHandle, Stack, StackConfig, TcpError, Token, Trigger, ZcError};

const PAGES: u32 = 1024; // 2 MiB of 2 KiB pages
const SLOW: usize = 40;

/// B sends (64 KiB send buffers: 40 of them are 2.5 MiB, over the 2 MiB
/// page array); A reads little (16 KiB receive buffers). Pressure from half
/// the array free; a quarter is the reserve.
fn pair() -> Pair {
    let mut ca = stack_config(A_IP, 1);
    ca.tcp.recv_buffer = 16 * 1024;
    let mut cb = stack_config(B_IP, 2);
    cb.tcp.send_buffer = 64 * 1024;
    cb.send_share_floor = 16 * 1024;
    cb.send_low_water = 50;
    cb.send_reserve = 25;
    Pair::with_configs(SimConfig::default(), 77, ca, cb, PAGES)
}

/// Writes on `h` until it would block (bounded), letting the link run.
fn fill(p: &mut Pair, h: SocketHandle) -> usize {
    let chunk = [0x5au8; 4096];
    let mut total = 0;
    for _ in 0..64 {
        match p.b.tcp_write(h, &chunk) {
            Ok(n) => total += n,
            Err(TcpError::WouldBlock) => break,
            Err(e) => panic!("slow write: {e}"),
        }
        for _ in 0..4 {
            p.step();
        }
    }
    total
}

fn open_slow(p: &mut Pair, l: SocketHandle, n: usize) -> Vec<(SocketHandle, SocketHandle)> {
    (0..n).map(|_| p.accept_from_b(l, 80)).collect()
}

#[test]
fn slow_readers_cannot_starve_other_connections_of_pages() {
    let mut p = pair();
    let l = p.a.tcp_listen(80, 64).unwrap();
    let slow = open_slow(&mut p, l, SLOW);
    let mut limited_writes = 0;
    for &(_, c) in &slow {
        fill(&mut p, c);
        // Full (buffer or share): a write now would block, and is counted
        // when the share, not the buffer, stopped it.
        match p.b.tcp_write(c, &[1u8; 4096]) {
            Err(TcpError::WouldBlock) => {}
            r => panic!("slow connection should be full: {r:?}"),
        }
        if p.b.tcp().send_queued(c).unwrap() < 64 * 1024 {
            limited_writes += 1;
        }
    }
    let limited = p.b.stats().tcp_send_pressure_limited;
    assert!(limited_writes > 0 && limited > 0, "the share limited slow senders: {limited_writes} / {limited}");
    assert!(p.b.mem().free_count() > 0, "the page array never ran dry");
    assert_eq!(p.b.stats().pages_exhausted, 0, "no write hit an empty page array");

    // Another connection still completes a transfer, SHA-256 checked.
    let (fs, fc) = p.accept_from_b(l, 80);
    let mut src = Source::new(3, 512 * 1024);
    let mut sink = Sink::default();
    let stop = p.run_until(2_000_000, |p| {
        src.pump(|d| p.b.tcp_write(fc, d).unwrap_or(0));
        read_into(&mut p.a, fs, &mut sink);
        sink.received == 512 * 1024
    });
    assert_eq!(stop, Stop::Done, "the transfer beside 40 slow readers finished");
    assert_eq!(sink.digest(), src.digest());

    // A new connection gets its first response out at once.
    let (ns, nc) = p.accept_from_b(l, 80);
    let first = pattern(9, 6000);
    assert_eq!(p.b.tcp_write(nc, &first), Ok(first.len()), "a first response always fits");
    let mut got = Sink::default();
    let stop = p.run_until(100_000, |p| {
        read_into(&mut p.a, ns, &mut got);
        got.received == first.len()
    });
    assert_eq!(stop, Stop::Done);
    assert_eq!(got.digest(), sha256(&first));

    // A limited slow sender registered edge-triggered hears when room returns.
    let (_, watched) = *slow.iter().rev().find(|(_, c)| p.b.tcp().send_queued(*c).unwrap() < 64 * 1024).unwrap();
    p.b.register(watched, Token(7), Interest::WRITABLE, Trigger::Edge).unwrap();
    let mut ev: Vec<Event> = Vec::new();
    p.b.poll_events(&mut ev);
    assert!(ev.iter().all(|e| e.token != Token(7) || !e.writable), "not writable while limited: {ev:?}");
    // The slow peers go away: 30 reset, 9 more the app closes; their pages come back.
    let before = p.b.mem().free_count();
    for &(s, _) in slow.iter().filter(|(_, c)| *c != watched).take(30) {
        p.a.tcp_abort(s).unwrap();
    }
    let stop = p.run_until(100_000, |p| p.b.tcp().send_pages_held() < 200);
    assert_eq!(stop, Stop::Done, "reset connections released their send queues");
    assert!(p.b.mem().free_count() > before + 100, "{} -> {}", before, p.b.mem().free_count());
    ev.clear();
    p.b.poll_events(&mut ev);
    assert!(ev.iter().any(|e| e.token == Token(7) && e.writable), "writable edge when room returned: {ev:?}");
    assert!(p.b.tcp_write(watched, &[2u8; 4096]).is_ok(), "writes resume");
    for &(_, c) in slow.iter().filter(|(_, c)| *c != watched).skip(30) {
        p.b.tcp_abort(c).unwrap();
    }
    p.step();
    assert!(p.b.tcp().send_pages_held() <= 32 + 2 + 1, "only the watched connection and the fast ones hold pages");
    assert_eq!(p.b.stats().page_errors, 0);
}

#[test]
fn zero_copy_allocation_takes_the_same_share() {
    let mut p = pair();
    let l = p.a.tcp_listen(80, 64).unwrap();
    let slow = open_slow(&mut p, l, SLOW);
    // Slow connections fill with zero-copy buffers allocated for them.
    let (mut refused, mut sent) = (0, 0);
    for &(_, c) in &slow {
        for _ in 0..40 {
            match p.b.zc_alloc_buffers_for(c, 2) {
                Ok(bufs) => {
                    let mut bufs = bufs;
                    for b in &mut bufs {
                        p.b.zc_mbuf_write(b, &[3u8; 2048]).unwrap();
                    }
                    let mut msg = [zcstack::ZcMsg::new(c, bufs)];
                    p.b.zc_send(&mut msg);
                    let [m] = msg;
                    sent += m.rc.unwrap().unwrap_or(0);
                    let unsent = m.bufs;
                    let stuck = !unsent.is_empty();
                    p.b.zc_release_buffers(unsent);
                    if stuck {
                        break;
                    }
                }
                Err(ZcError::WouldBlock { wanted, granted }) => {
                    assert!(granted < wanted);
                    refused += 1;
                    break;
                }
                Err(e) => panic!("zc alloc: {e}"),
            }
            for _ in 0..4 {
                p.step();
            }
        }
        assert!(p.b.mem().free_count() > 0, "never drained");
    }
    assert!(sent > 0);
    assert!(refused > 0, "allocations over the share would block");
    assert_eq!(p.b.stats().zc_alloc_pressure_limited, refused as u64);
    // An allocation for no connection never takes the reserve.
    let free = p.b.mem().free_count();
    assert!(matches!(p.b.zc_mbuf_get(free * 2048), Err(ZcError::WouldBlock { .. })), "free {free}");
    // A new connection still gets buffers for its first response.
    let (ns, nc) = p.accept_from_b(l, 80);
    let mut b = p.b.zc_mbuf_get_for(nc, 4096).expect("a first response always gets buffers");
    p.b.zc_mbuf_write(&mut b, &pattern(4, 4096)).unwrap();
    assert!(matches!(p.b.tcp_write_zc(nc, b), Ok((4096, None))));
    let mut got = Sink::default();
    let stop = p.run_until(100_000, |p| {
        read_into(&mut p.a, ns, &mut got);
        got.received == 4096
    });
    assert_eq!(stop, Stop::Done);
    assert_eq!(got.digest(), sha256(&pattern(4, 4096)));
    assert!(matches!(p.b.zc_mbuf_get_for(SocketHandle::clone(&ns), 10), Err(ZcError::InvalidSocket)));
    for &(_, c) in &slow {
        p.b.tcp_abort(c).unwrap();
    }
    p.step();
    assert!(p.b.zc_alloc_buffers_for(nc, 64).is_ok(), "after the slow senders left, buffers are granted again");
    assert_eq!(p.b.stats().page_errors, 0);
}

fn arp_stack(dests: usize, total: usize) -> (Stack<HeapPages>, zcstack::phy::queue::QueueDevice) {
    let mut cfg: StackConfig = stack_config(B_IP, 2);
    cfg.arp_pending_dests = dests;
    cfg.arp_pending_total = total;
    (Stack::new(cfg, HeapPages::new(64, 2048), 1500), script_device())
}

fn arp_reply(from: Ipv4Address, mac: EthernetAddress) -> Vec<u8> {
    let repr = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: mac,
        source_protocol_addr: from,
        target_hardware_addr: EthernetAddress([0x02, 0, 0, 0, 0, 2]),
        target_protocol_addr: B_IP,
    };
    let mut buf = vec![0u8; 14 + repr.buffer_len()];
    let mut eth = EthernetFrame::new_unchecked(&mut buf);
    eth.set_dst_addr(EthernetAddress([0x02, 0, 0, 0, 0, 2]));
    eth.set_src_addr(mac);
    eth.set_ethertype(EthernetProtocol::Arp);
    repr.emit(&mut ArpPacket::new_unchecked(eth.payload_mut()));
    buf
}

#[test]
fn arp_pending_queue_is_capped_in_destinations_and_packets() {
    let (mut st, mut dev) = arp_stack(8, 20);
    let u = st.udp_bind(5000).unwrap();
    let mut now = Instant::ZERO;
    // A scan of the subnet: 3 packets to each of 100 unresolved neighbours.
    for host in 10..110u8 {
        for _ in 0..3 {
            st.udp_send_to(u, sa(std::net::Ipv4Addr::new(10, 0, 0, host), 9), b"probe").unwrap();
        }
        st.poll(now, &mut dev);
        let (d, n) = st.arp_pending();
        assert!(d <= 8 && n <= 20, "pending {d} dests, {n} packets");
        now += zcstack::Duration::from_millis(1);
    }
    let evicted = st.stats().drop_arp_pending_evicted;
    let (d, n) = st.arp_pending();
    assert!(evicted > 0 && d > 0);
    assert_eq!(evicted + st.stats().drop_arp_unresolved + n as u64, 300, "every packet kept or counted");
    // A burst to one destination beyond the total cap is dropped, not kept.
    let (mut st2, mut dev2) = arp_stack(8, 20);
    let u2 = st2.udp_bind(5000).unwrap();
    for _ in 0..30 {
        st2.udp_send_to(u2, sa(std::net::Ipv4Addr::new(10, 0, 0, 50), 9), b"x").unwrap();
    }
    st2.poll(now, &mut dev2);
    assert_eq!(st2.arp_pending(), (1, 20));
    assert_eq!(st2.stats().drop_arp_unresolved, 10);
    assert_eq!(st2.mem().free_count(), 64);

    // Resolution of a new destination still works under the scan.
    dev.take_tx();
    let new = Ipv4Address::new(10, 0, 0, 200);
    st.udp_send_to(u, sa(std::net::Ipv4Addr::new(10, 0, 0, 200), 9), b"hello").unwrap();
    st.poll(now, &mut dev);
    let asked = dev.take_tx().iter().any(|f| {
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        eth.ethertype() == EthernetProtocol::Arp
            && ArpPacket::new_checked(eth.payload()).map(|a| a.target_protocol_addr() == new.octets()).unwrap_or(false)
    });
    assert!(asked, "an ARP request for the new destination went out");
    let mac = EthernetAddress([0x02, 0, 0, 0, 0, 0xc8]);
    dev.push_rx(arp_reply(new, mac));
    st.poll(now, &mut dev);
    let delivered = dev.take_tx().iter().any(|f| {
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        eth.dst_addr() == mac && eth.ethertype() == EthernetProtocol::Ipv4
    });
    assert!(delivered, "the waiting datagram left once resolved");
    // Nothing answers the rest: they time out and the queue empties.
    for _ in 0..10 {
        now += zcstack::Duration::from_secs(1);
        st.poll(now, &mut dev);
    }
    assert_eq!(st.arp_pending(), (0, 0));
    assert_eq!(st.mem().free_count(), 64);
}

#[test]
fn whole_packet_frames_are_not_kept_as_header_buffers() {
    // A UDP datagram (like an ICMP echo reply or an ARP frame) is built
    // whole in its frame's buffer; only header-sized buffers go back to
    // the pool for the next frames, so a datagram flood leaves no
    // megabytes of packet buffers behind (16,384 of 1,442 bytes: 23 MB).
    let mut p = Pair::new(SimConfig::default(), 57);
    p.establish(80); // both ARP entries known
    let ua = p.a.udp_bind(9000).unwrap();
    let ub = p.b.udp_bind(9001).unwrap();
    let datagram = [0x42u8; 1400];
    let mut buf = [0u8; 2048];
    let mut got = 0;
    for i in 0..20_000 {
        p.b.udp_send_to(ub, sa(A_IP, 9000), &datagram).unwrap();
        let stop = p.run_until(1000, |p| match p.a.udp_recv_from(ua, &mut buf) {
            Ok((n, _)) => {
                assert_eq!(n, datagram.len());
                got += 1;
                true
            }
            Err(_) => false,
        });
        assert_eq!(stop, Stop::Done, "datagram {i} delivered");
    }
    assert_eq!(got, 20_000);
    let kept = p.b.memory_usage().tx_header_pool;
    assert!(kept <= 16 * 1024, "header pool holds {kept} bytes after 20,000 datagrams");
}

#[test]
fn udp_vectored_sends_and_reads_and_peek_keep_datagrams_whole() {
    let mut p = Pair::new(SimConfig::default(), 59);
    p.establish(80); // both ARP entries known
    let ua = p.a.udp_bind(9000).unwrap();
    let ub = p.b.udp_bind(9001).unwrap();
    let msg: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
    // Gathered from three parts; the same bytes as one slice.
    p.b.udp_send_vectored(ub, sa(A_IP, 9000), &[&msg[..1], &msg[1..200], &msg[200..]]).unwrap();
    p.b.udp_send_to(ub, sa(A_IP, 9000), &msg[..10]).unwrap();
    assert_eq!(p.run_until(1000, |p| p.a.udp_recv_queued(ua) == Ok(2)), Stop::Done);
    // Peek leaves the datagram queued, scattered over two buffers.
    let (mut x, mut y) = ([0u8; 100], [0u8; 400]);
    let d = p.a.udp_peek_vectored(ua, &mut [&mut x, &mut y]).unwrap();
    assert_eq!((d.placed, d.len, d.from), (300, 300, sa(B_IP, 9001)));
    assert_eq!((&x[..], &y[..200]), (&msg[..100], &msg[100..]));
    assert_eq!(p.a.udp_recv_queued(ua), Ok(2));
    // A read too short takes the datagram and discards its tail.
    let (mut s1, mut s2) = ([0u8; 50], [0u8; 50]);
    // A peek into too little room still reports the whole length.
    let d = p.a.udp_peek_vectored(ua, &mut [&mut s1]).unwrap();
    assert_eq!((d.placed, d.len), (50, 300));
    let d = p.a.udp_recv_vectored(ua, &mut [&mut s1, &mut s2]).unwrap();
    assert_eq!((d.placed, d.len, d.from), (100, 300, sa(B_IP, 9001)));
    assert_eq!([&s1[..], &s2[..]].concat(), msg[..100]);
    let mut z = [0u8; 64];
    assert_eq!(p.a.udp_recv_from(ua, &mut z), Ok((10, sa(B_IP, 9001))));
    assert_eq!(&z[..10], &msg[..10]);
    assert_eq!(p.a.udp_recv_from(ua, &mut z), Err(zcstack::udp::UdpError::WouldBlock));
    // Over the MTU, gathered or not: refused, nothing sent.
    let big = vec![0u8; 1000];
    assert_eq!(p.b.udp_send_vectored(ub, sa(A_IP, 9000), &[&big, &big]), Err(zcstack::udp::UdpError::TooLarge(2000)));
}

#[test]
fn udp_tiny_datagrams_do_not_take_large_spare_buffers() {
    // A receive charge is the memory a datagram pins (its buffer's
    // capacity): after large datagrams were read, their buffers wait as
    // spares, and a flood of 1-byte datagrams must not each pin one of
    // them while being charged for one byte (3.7x the receive buffer in
    // memory when it did).
    let mut p = Pair::new(SimConfig::default(), 60);
    p.establish(80);
    let ua = p.a.udp_bind(9000).unwrap();
    let ub = p.b.udp_bind(9001).unwrap();
    let mut buf = [0u8; 9000];
    for _ in 0..20 {
        p.b.udp_send_to(ub, sa(A_IP, 9000), &[7u8; 1400]).unwrap();
        let stop = p.run_until(1000, |p| p.a.udp_recv_from(ua, &mut buf).is_ok());
        assert_eq!(stop, Stop::Done);
    }
    let spares = p.a.memory_usage().udp_spares;
    assert!(spares >= 1400, "read buffers kept as spares: {spares}");
    // 500 fit the default receive buffer (212,992 bytes at ~257 each).
    for _ in 0..500 {
        p.b.udp_send_to(ub, sa(A_IP, 9000), &[1u8]).unwrap();
        p.step();
    }
    assert_eq!(p.run_until(10_000, |p| p.a.udp_recv_queued(ua) == Ok(500)), Stop::Done);
    assert_eq!(p.a.memory_usage().udp_spares, spares, "no tiny datagram took a 1.4 KB spare");
}

#[test]
fn recycled_connections_keep_no_grown_storage() {
    // With maxtcptw = 0 a connection leaving TIME-WAIT is freed at once,
    // without the close path's release: its box must still come back
    // scrubbed (received frames released, a grown ring or queue freed),
    // not holding a 200 KiB upload's receive storage for the next one.
    let mut ca = stack_config(A_IP, 1);
    ca.tcp.max_time_wait = 0;
    let mut p = Pair::with_configs(SimConfig::default(), 61, ca, stack_config(B_IP, 2), 8192);
    let (s, c) = p.establish(80);
    let data = pattern(11, 200 * 1024);
    let mut src = Source::new(11, data.len());
    let mut sink = Sink::default();
    let stop = p.run_until(1_000_000, |p| {
        src.pump(|d| p.b.tcp_write(c, d).unwrap_or(0));
        read_into(&mut p.a, s, &mut sink);
        sink.received == data.len()
    });
    assert_eq!(stop, Stop::Done);
    let now = p.now;
    p.a.tcp_close(s, now).unwrap(); // the server closes first: TIME-WAIT on a
    let stop = p.run_until(100_000, |p| {
        if p.b.tcp_read(c, &mut [0u8; 64]) == Ok(0) {
            let now = p.now;
            let _ = p.b.tcp_close(c, now);
        }
        p.a.tcp_connections() == 0 && p.b.tcp_connections() == 0
    });
    assert_eq!(stop, Stop::Done);
    let kept = p.a.memory_usage().tcp_conn_spares;
    assert!(kept > 0, "the freed connection's box is kept");
    assert!(kept <= 16 * 1024, "a spare connection holds {kept} bytes");
    assert_eq!(p.a.rx_pinned(), 0, "no received frame pinned by a spare");
}
