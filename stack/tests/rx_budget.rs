//! Issue 10, fault 1: peers must not pin the whole receive pool.
//!
//! The server stack (a) receives through a device with a bounded pool of
//! frame buffers, as a DPDK RX mempool: a frame that arrives while every
//! buffer is pinned is dropped (`rx_nombuf`). Many connections whose
//! application never reads fill their receive queues with zero-copy
//! frames; with the receive budget, ARP, ICMP, UDP, a new connection's
//! handshake and transfer, and the flood's own RSTs are still handled —
//! without it (the control run) the stack goes deaf, which shows the test
//! measures the fault.
mod common;

use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;

use common::script::{eth_ip, PEER_IP, PEER_MAC};
use common::*;
use zcstack::mem::{HeapPages, PageMemory};
use zcstack::phy::sim::{SimConfig, SimDevice, SimLink};
use zcstack::phy::{Device, DeviceCaps, RxBuf, RxFrame, SharedRx, TxFrame};
use zcstack::tcp::SockOpt;
use zcstack::wire::{
    ArpOperation, ArpPacket, ArpRepr, Checksum, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr,
    IpProtocol,
};
use zcstack::{Instant, SocketHandle, Stack, State};

/// Bytes every received frame pins (a DPDK mbuf's data room).
const FP: usize = 2048;
/// Frames in the server's receive pool.
const POOL: usize = 1024;
/// Connections whose application never reads.
const FLOOD: usize = 24;

/// One pool buffer in use; dropping the last reference frees it.
struct PoolBuf {
    bytes: Vec<u8>,
    used: Rc<Cell<usize>>,
}

impl RxBuf for PoolBuf {
    fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    fn footprint(&self) -> usize {
        FP
    }
}

impl Drop for PoolBuf {
    fn drop(&mut self) {
        self.used.set(self.used.get() - 1);
    }
}

/// A [`SimDevice`] behind a receive pool of `cap` buffers, with frames
/// injected from a third host and a record of ARP/ICMP frames sent.
struct PooledDevice {
    inner: SimDevice,
    cap: usize,
    used: Rc<Cell<usize>>,
    nombuf: u64,
    inject: VecDeque<Vec<u8>>,
    arp_replies_to_peer: u64,
}

impl PooledDevice {
    fn take(cap: usize, used: &Rc<Cell<usize>>, nombuf: &mut u64, bytes: Vec<u8>) -> Option<SharedRx> {
        if used.get() >= cap {
            *nombuf += 1;
            return None;
        }
        used.set(used.get() + 1);
        Some(Rc::new(PoolBuf { bytes, used: used.clone() }))
    }
}

impl Device for PooledDevice {
    fn caps(&self) -> DeviceCaps {
        self.inner.caps()
    }
    fn receive(&mut self, _now: Instant, _budget: usize, _sink: &mut dyn FnMut(&[u8])) -> usize {
        0 // the stack calls receive_frames
    }
    fn receive_frames(&mut self, now: Instant, budget: usize, sink: &mut dyn FnMut(RxFrame<'_>)) -> usize {
        let PooledDevice { inner, cap, used, nombuf, inject, .. } = self;
        let mut n = 0;
        while let Some(f) = inject.pop_front() {
            if let Some(rx) = Self::take(*cap, used, nombuf, f) {
                sink(RxFrame::Shared(rx));
            }
            n += 1;
        }
        n + inner.receive_frames(now, budget, &mut |f| {
            let bytes = match f {
                RxFrame::Shared(r) => r.bytes().to_vec(),
                RxFrame::Borrowed(b) | RxFrame::L4Verified(b) => b.to_vec(),
            };
            if let Some(rx) = Self::take(*cap, used, nombuf, bytes) {
                sink(RxFrame::Shared(rx));
            }
        })
    }
    fn transmit(&mut self, now: Instant, frame: TxFrame, mem: &dyn PageMemory) -> Result<(), TxFrame> {
        let h = &frame.header;
        if h.len() >= 42 && h[12..14] == [0x08, 0x06] {
            if let Ok(ArpRepr::EthernetIpv4 { operation: ArpOperation::Reply, target_protocol_addr, .. }) =
                ArpRepr::parse(&ArpPacket::new_unchecked(&h[14..]))
            {
                self.arp_replies_to_peer += u64::from(target_protocol_addr == PEER_IP);
            }
        }
        self.inner.transmit(now, frame, mem)
    }
    fn poll_completions(&mut self, now: Instant, done: &mut dyn FnMut(TxFrame)) {
        self.inner.poll_completions(now, done)
    }
    fn flush(&mut self, now: Instant) {
        self.inner.flush(now)
    }
    fn poll_at(&self) -> Option<Instant> {
        self.inner.poll_at()
    }
}

/// Server `a` on the pooled device, clients on `b`.
struct Rig {
    a: Stack<HeapPages>,
    b: Stack<HeapPages>,
    da: PooledDevice,
    db: SimDevice,
    now: Instant,
}

impl Rig {
    fn new(budget: usize) -> Rig {
        let (da, db) = SimLink::devices(SimConfig::default(), 7);
        let mut ca = stack_config(A_IP, 1);
        ca.rx_pin_budget = budget;
        Rig {
            a: Stack::new(ca, HeapPages::new(8192, 2048), 1500),
            b: Stack::new(stack_config(B_IP, 2), HeapPages::new(8192, 2048), 1500),
            da: PooledDevice {
                inner: da,
                cap: POOL,
                used: Rc::new(Cell::new(0)),
                nombuf: 0,
                inject: VecDeque::new(),
                arp_replies_to_peer: 0,
            },
            db,
            now: Instant::ZERO,
        }
    }

    /// As `Pair::step`: poll both, else jump to the next event.
    fn step(&mut self) -> bool {
        let x = self.a.poll(self.now, &mut self.da);
        let y = self.b.poll(self.now, &mut self.db);
        if x || y || !self.da.inject.is_empty() {
            return true;
        }
        let next =
            [self.a.poll_at(), self.b.poll_at(), self.da.poll_at(), self.db.poll_at()].into_iter().flatten().min();
        match next {
            Some(t) if t > self.now => {
                self.now = t;
                true
            }
            Some(_) => true,
            None => false,
        }
    }

    /// Steps until `cond` or until `secs` of simulated time or a step cap.
    fn run_for(&mut self, secs: u64, mut cond: impl FnMut(&mut Rig) -> bool) -> bool {
        let end = self.now + zcstack::Duration::from_secs(secs);
        for _ in 0..2_000_000 {
            if cond(self) {
                return true;
            }
            if !self.step() || self.now > end {
                break;
            }
        }
        cond(self)
    }
}

/// An ARP request from the third host for our address.
fn arp_request() -> Vec<u8> {
    let mut f = vec![0u8; 42];
    EthernetRepr { src_addr: PEER_MAC, dst_addr: EthernetAddress::BROADCAST, ethertype: EthernetProtocol::Arp }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..14]));
    ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: PEER_MAC,
        source_protocol_addr: PEER_IP,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: A_IP,
    }
    .emit(&mut ArpPacket::new_unchecked(&mut f[14..]));
    f
}

/// An ICMP echo request from the third host.
fn ping() -> Vec<u8> {
    let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34, 0, 1];
    icmp.extend_from_slice(b"are you there?");
    let mut c = Checksum::new();
    c.add(&icmp);
    let ck = c.finish();
    icmp[2..4].copy_from_slice(&ck.to_be_bytes());
    eth_ip(IpProtocol::Icmp, &icmp)
}

/// What still worked after the flood.
#[derive(Debug, Default)]
struct Verdict {
    nombuf_during_flood: u64,
    pinned_after_flood: usize,
    arp: bool,
    ping: bool,
    udp: bool,
    new_conn: bool,
    rsts_freed_everything: bool,
}

impl Verdict {
    fn all_served(&self) -> bool {
        self.arp && self.ping && self.udp && self.new_conn && self.rsts_freed_everything
    }
}

/// `FLOOD` connections each send 512 KiB the server never reads; then
/// the probes; then the clients reset their connections.
fn flood(budget: usize) -> (Verdict, Rig) {
    let mut r = Rig::new(budget);
    let l = r.a.tcp_listen(80, 256).unwrap();
    let u = r.a.udp_bind(7).unwrap();
    let mut clients = Vec::new();
    let mut servers: Vec<SocketHandle> = Vec::new();
    for _ in 0..FLOOD {
        clients.push(r.b.tcp_connect(sa(A_IP, 80), 0, r.now).unwrap());
    }
    let ok = r.run_for(10, |r| {
        while let Ok((s, _)) = r.a.tcp_accept(l) {
            servers.push(s);
        }
        servers.len() == FLOOD
    });
    assert!(ok, "the flood connects");
    let chunk = pattern(3, 64 * 1024);
    let mut sent = [0usize; FLOOD];
    let total = 512 * 1024;
    // Clients write as fast as the windows let them; the server reads nothing.
    r.run_for(5, |r| {
        for (i, &c) in clients.iter().enumerate() {
            while sent[i] < total {
                let want = (total - sent[i]).min(chunk.len());
                match r.b.tcp_write(c, &chunk[..want]) {
                    Ok(n) if n > 0 => sent[i] += n,
                    _ => break,
                }
            }
        }
        false
    });
    let mut v = Verdict { nombuf_during_flood: r.da.nombuf, pinned_after_flood: r.a.rx_pinned(), ..Verdict::default() };
    // Probes: ARP and ICMP from a third host, UDP and a new connection from b.
    r.da.inject.push_back(arp_request());
    r.da.inject.push_back(ping());
    let ub = r.b.udp_bind(5000).unwrap();
    r.b.udp_send_to(ub, sa(A_IP, 7), b"hello over udp").unwrap();
    let fresh = r.b.tcp_connect(sa(A_IP, 80), 0, r.now).unwrap();
    let data = pattern(9, 64 * 1024);
    let (mut wrote, mut got, mut fresh_srv) = (0usize, Vec::new(), None);
    let arp_before = r.da.arp_replies_to_peer;
    r.run_for(5, |r| {
        v.arp |= r.da.arp_replies_to_peer > arp_before;
        v.ping |= r.a.stats().icmp_echo_replies > 0;
        let mut buf = [0u8; 64];
        if let Ok((n, from)) = r.a.udp_recv_from(u, &mut buf) {
            v.udp |= &buf[..n] == b"hello over udp" && from.ip() == &B_IP;
        }
        if fresh_srv.is_none() {
            fresh_srv = r.a.tcp_accept(l).ok().map(|x| x.0);
        }
        if wrote < data.len() {
            wrote += r.b.tcp_write(fresh, &data[wrote..]).unwrap_or(0);
        }
        if let Some(s) = fresh_srv {
            let mut b = [0u8; 16 * 1024];
            while let Ok(n) = r.a.tcp_read(s, &mut b) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&b[..n]);
            }
        }
        v.new_conn = got == data;
        v.arp && v.ping && v.udp && v.new_conn
    });
    // The flood's clients go away with RSTs: the server must see them.
    for &c in &clients {
        let _ = r.b.tcp_abort(c);
    }
    let mut reset = [false; FLOOD];
    r.run_for(5, |r| {
        for (i, &s) in servers.iter().enumerate() {
            if !reset[i] && matches!(r.a.tcp_state(s), Ok(State::Closed) | Err(_)) {
                reset[i] = true;
                let _ = r.a.tcp_close(s, r.now);
            }
        }
        reset.iter().all(|&x| x)
    });
    if let Some(s) = fresh_srv {
        let _ = r.a.tcp_close(s, r.now);
    }
    r.run_for(1, |_| false);
    v.rsts_freed_everything = reset.iter().all(|&x| x) && r.a.rx_pinned() == 0 && r.da.used.get() == 0;
    (v, r)
}

#[test]
fn non_reading_peers_cannot_make_the_stack_deaf() {
    let (v, r) = flood(POOL / 2 * FP);
    assert!(v.all_served(), "{v:?} {:?}", r.a.stats());
    assert!(v.pinned_after_flood <= POOL / 2 * FP, "{v:?}");
    assert_eq!(v.nombuf_during_flood, 0, "the reserve is never touched: {v:?}");
    let st = r.a.stats();
    assert!(st.rx_frames_over_budget > 0, "the budget was at work: {st:?}");
    assert!(st.rx_bytes_copied > 0 && st.rx_bytes_zero_copy > 0, "{st:?}");
}

#[test]
fn control_without_a_budget_the_pool_runs_dry() {
    // The same load with no budget: every buffer ends up pinned and the
    // stack stops hearing anything (the fault the budget fixes).
    let (v, r) = flood(usize::MAX);
    assert!(v.nombuf_during_flood > 0, "{v:?}");
    assert!(v.pinned_after_flood >= (POOL - 1) * FP, "{v:?}");
    assert!(!v.all_served(), "{v:?}");
    assert_eq!(r.a.stats().rx_frames_over_budget, 0);
}

#[test]
fn tiny_segments_cannot_pin_a_buffer_per_byte_of_window() {
    // One connection, an application that never reads, a peer that sends
    // one byte per segment: kept in place (no copybreak), each segment
    // pins a whole 2 KiB frame, so the queue is bounded by what the frames
    // pin, not by bytes, and compaction copies them out. With the default
    // copybreak none is kept at all.
    tiny_segments_pin(0);
    tiny_segments_pin(stack_config(A_IP, 1).rx_copybreak);
}

fn tiny_segments_pin(copybreak: usize) {
    let (da, db) = SimLink::devices(SimConfig { rx_shared_footprint: Some(FP), ..SimConfig::default() }, 3);
    let mut ca = stack_config(A_IP, 1);
    ca.rx_copybreak = copybreak;
    let mut p = Pair::with_configs(SimConfig::default(), 3, ca, stack_config(B_IP, 2), 8192);
    p.da = da;
    p.db = db;
    let (s, c) = p.establish(80);
    p.b.tcp_set_option(c, SockOpt::NoDelay(true), p.now).unwrap();
    let recv_cap = p.a.config().tcp.recv_buffer;
    let mut sent = 0usize;
    let mut most_pinned = 0usize;
    let mut last = p.now;
    let stop = p.run_until(400_000, |p| {
        // One byte per 20 us of simulated time, so the link delivers each.
        if p.now >= last + zcstack::Duration::from_micros(20) && p.b.tcp_write(c, b"x").unwrap_or(0) == 1 {
            sent += 1;
            last = p.now;
        }
        most_pinned = most_pinned.max(p.a.rx_pinned());
        sent >= 20_000
    });
    assert_eq!(stop, Stop::Done);
    p.run_until(100_000, |_| false);
    let queued = p.a.tcp_sockets(8).iter().find(|i| i.remote.is_some()).map(|i| i.recv_q).unwrap_or(0);
    assert!(queued > 0, "{:?}", p.a.tcp_sockets(8));
    assert!(most_pinned <= recv_cap, "frames pinned {most_pinned} > receive buffer {recv_cap}");
    assert!(
        most_pinned / FP < queued,
        "not one buffer per byte: {} frames pinned for {queued} bytes",
        most_pinned / FP
    );
    if copybreak == 0 {
        assert!(p.a.stats().rx_compactions > 0, "{:?}", p.a.stats());
    } else {
        assert_eq!(most_pinned, 0, "copied, none kept");
        assert_eq!(p.a.stats().rx_bytes_zero_copy, 0, "{:?}", p.a.stats());
    }
    // Everything sent arrives once the application reads.
    let mut sink = Sink::default();
    let stop = p.run_until(400_000, |p| {
        read_into(&mut p.a, s, &mut sink);
        sink.received == sent
    });
    assert_eq!(stop, Stop::Done);
    assert!(sink.digest() == sha256(&vec![b'x'; sent]));
}
