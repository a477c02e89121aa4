//! perfdrive: enginebench's zcstack cases with simulated time (5 us per poll),
//! for repeatable instruction counts of the measured loops only:
//! `valgrind --tool=callgrind --toggle-collect='*measure_*' perfdrive CASE N`
//! (CASE: bulk, bulk-csum, bulk-tso [N MiB], rr64, rr10, rr10k, rr100k [N exchanges]).
use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;

use zcstack::mem::{HeapPages, PageMemory};
use zcstack::phy::{Device, DeviceCaps, RxBuf, RxFrame, TxFrame};
use zcstack::tcp::SockOpt;
use zcstack::{IfaceConfig, Instant, SocketHandle, Stack, StackConfig, TcpError};

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const BUF: usize = 256 * 1024;

// ----- the shared in-memory wire -----

#[derive(Default)]
struct Wire {
    q: [VecDeque<Vec<u8>>; 2],
}

struct End {
    side: usize,
    wire: Rc<RefCell<Wire>>,
    done: Vec<TxFrame>,
    /// The wire offers what a virtio port does: checksums left to the
    /// "device" (a frame that never leaves memory needs none, as vhost
    /// treats virtio's partial checksums) and, to a stack that can use it,
    /// TSO with frames delivered whole (as virtio-user hands them to vhost).
    offload: Offload,
}

/// What the wire offers the stacks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Offload {
    /// Nothing: both stacks checksum in software, frames fit the MTU.
    None,
    /// Checksums left to the device, for both stacks.
    Checksum,
    /// Checksums and TSO (only zcstack can use TSO).
    ChecksumTso,
}

fn wire(offload: Offload) -> (End, End) {
    let w = Rc::new(RefCell::new(Wire::default()));
    (End { side: 0, wire: w.clone(), done: Vec::new(), offload }, End { side: 1, wire: w, done: Vec::new(), offload })
}

/// A wire frame handed to zcstack; `verified` when the wire offloads checksums.
struct Frame {
    bytes: Vec<u8>,
    verified: bool,
}

impl RxBuf for Frame {
    fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    fn footprint(&self) -> usize {
        self.bytes.capacity()
    }
    fn l4_verified(&self) -> bool {
        self.verified
    }
}

impl Device for End {
    fn caps(&self) -> DeviceCaps {
        match self.offload {
            Offload::None => DeviceCaps::default(),
            Offload::Checksum => DeviceCaps { tx_checksum_offload: true, ..DeviceCaps::default() },
            Offload::ChecksumTso => {
                DeviceCaps { tx_checksum_offload: true, tso_max: 32 * 1024, ..DeviceCaps::default() }
            }
        }
    }
    fn receive(&mut self, _now: Instant, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < budget {
            let f = self.wire.borrow_mut().q[1 - self.side].pop_front();
            match f {
                Some(f) => {
                    sink(&f);
                    n += 1;
                }
                None => break,
            }
        }
        n
    }
    /// Hands each wire frame over instead of lending it: zcstack keeps the
    /// TCP payload in the frame until the application reads it (its
    /// zero-copy receive, as with DPDK mbufs). smoltcp's `RxToken` can only
    /// lend a frame, so it copies the payload into its socket ring.
    fn receive_frames(&mut self, _now: Instant, budget: usize, sink: &mut dyn FnMut(RxFrame<'_>)) -> usize {
        let mut n = 0;
        while n < budget {
            let f = self.wire.borrow_mut().q[1 - self.side].pop_front();
            match f {
                Some(f) => {
                    sink(RxFrame::Shared(Rc::new(Frame { bytes: f, verified: self.offload != Offload::None })));
                    n += 1;
                }
                None => break,
            }
        }
        n
    }
    fn transmit(&mut self, _now: Instant, frame: TxFrame, mem: &dyn PageMemory) -> Result<(), TxFrame> {
        let mut v = Vec::with_capacity(frame.len());
        frame.copy_into(mem, &mut v);
        self.wire.borrow_mut().q[self.side].push_back(v);
        self.done.push(frame);
        Ok(())
    }
    fn poll_completions(&mut self, _now: Instant, done: &mut dyn FnMut(TxFrame)) {
        for f in self.done.drain(..) {
            done(f);
        }
    }
}

// ----- zcstack side -----

struct Zc {
    a: Stack<HeapPages>,
    b: Stack<HeapPages>,
    da: End,
    db: End,
    t: u64,
    /// Simulated microseconds per poll (`PERFDRIVE_STEP_US`, default 5).
    step: u64,
}

impl Zc {
    fn new() -> Zc {
        Zc::with_wire(Offload::None)
    }
    fn with_wire(offload: Offload) -> Zc {
        let cfg = |ip: Ipv4Addr, m: u8| {
            let mut c = StackConfig::new(IfaceConfig {
                mac: zcstack::wire::EthernetAddress([2, 0, 0, 0, 0, m]),
                addr: ip,
                prefix_len: 24,
                gateway: None,
            });
            c.tcp.send_buffer = BUF;
            c.tcp.recv_buffer = BUF;
            c.tcp.somaxconn = 1 << 20;
            c
        };
        let (da, db) = wire(offload);
        Zc {
            a: Stack::new(cfg(A, 1), HeapPages::new(65_536, 2048), 1500),
            b: Stack::new(cfg(B, 2), HeapPages::new(65_536, 2048), 1500),
            da,
            db,
            t: 0,
            step: std::env::var("PERFDRIVE_STEP_US").ok().and_then(|v| v.parse().ok()).unwrap_or(5),
        }
    }
    fn now(&self) -> Instant {
        Instant::from_micros(self.t)
    }
    fn poll(&mut self) {
        self.t += self.step;
        let now = self.now();
        self.a.poll(now, &mut self.da);
        self.b.poll(now, &mut self.db);
    }
    /// A connection b -> a:port; returns (client, server).
    fn connect(&mut self, l: SocketHandle, port: u16) -> (SocketHandle, SocketHandle) {
        let c = self.b.tcp_connect(SocketAddrV4::new(A, port), 0, self.now()).unwrap();
        loop {
            self.poll();
            if let Ok((s, _)) = self.a.tcp_accept(l) {
                self.b.tcp().set_option(c, SockOpt::NoDelay(true), Instant::ZERO).unwrap();
                self.a.tcp().set_option(s, SockOpt::NoDelay(true), Instant::ZERO).unwrap();
                return (c, s);
            }
        }
    }
}

fn zc_bulk(bytes: usize, offload: Offload) -> f64 {
    let mut z = Zc::with_wire(offload);
    let l = z.a.tcp_listen(80, 16).unwrap();
    let (c, s) = z.connect(l, 80);
    let chunk = vec![0x5au8; 64 * 1024];
    let mut buf = vec![0u8; 64 * 1024];
    let (mut sent, mut got) = (0usize, 0usize);
    measure_bulk(&mut z, c, s, bytes, &chunk, &mut buf, &mut sent, &mut got);
    0.0
}

#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn measure_bulk(
    z: &mut Zc,
    c: SocketHandle,
    s: SocketHandle,
    bytes: usize,
    chunk: &[u8],
    buf: &mut [u8],
    sent: &mut usize,
    got: &mut usize,
) {
    let (mut sent, mut got) = (*sent, *got);
    while got < bytes {
        while sent < bytes {
            match z.b.tcp_write(c, &chunk[..chunk.len().min(bytes - sent)]) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        z.poll();
        while let Ok(n) = z.a.tcp_read(s, buf) {
            if n == 0 {
                break;
            }
            got += n;
        }
    }
    std::hint::black_box((sent, got));
}

/// Request/response exchanges per second on one connection, with `idle`
/// other established connections in both stacks.
fn zc_rr(exchanges: usize, idle: usize) -> f64 {
    let mut z = Zc::new();
    let ls: Vec<SocketHandle> = (0..4).map(|i| z.a.tcp_listen(80 + i, 1 << 20).unwrap()).collect();
    let mut idle_conns = Vec::with_capacity(idle);
    for i in 0..idle {
        idle_conns.push(z.b.tcp_connect(SocketAddrV4::new(A, 80 + (i % 4) as u16), 0, z.now()).unwrap());
        if i % 1000 == 999 {
            for _ in 0..20 {
                z.poll();
            }
            for l in &ls {
                while z.a.tcp_accept(*l).is_ok() {}
            }
        }
    }
    for _ in 0..200 {
        z.poll();
        for l in &ls {
            while z.a.tcp_accept(*l).is_ok() {}
        }
    }
    let (c, s) = z.connect(ls[0], 80);
    measure_rr(&mut z, c, s, exchanges);
    0.0
}

#[inline(never)]
fn measure_rr(z: &mut Zc, c: SocketHandle, s: SocketHandle, exchanges: usize) {
    let req = [7u8; 64];
    let mut buf = [0u8; 256];
    for _ in 0..exchanges {
        z.b.tcp_write(c, &req).unwrap();
        let mut got = 0;
        while got < 64 {
            z.poll();
            match z.a.tcp_read(s, &mut buf) {
                Ok(n) => got += n,
                Err(TcpError::WouldBlock) => {}
                Err(e) => panic!("{e}"),
            }
        }
        z.a.tcp_write(s, &buf[..64]).unwrap();
        let mut got = 0;
        while got < 64 {
            z.poll();
            match z.b.tcp_read(c, &mut buf) {
                Ok(n) => got += n,
                Err(TcpError::WouldBlock) => {}
                Err(e) => panic!("{e}"),
            }
        }
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let case = a.get(1).map(String::as_str).unwrap_or("rr64");
    let n: usize = a.get(2).and_then(|s| s.parse().ok()).unwrap_or(2000);
    match case {
        "bulk" => {
            zc_bulk(n << 20, Offload::None);
        }
        "bulk-csum" => {
            zc_bulk(n << 20, Offload::Checksum);
        }
        "bulk-tso" => {
            zc_bulk(n << 20, Offload::ChecksumTso);
        }
        "rr64" => {
            zc_rr(n, 0);
        }
        "rr10" => {
            zc_rr(n, 10);
        }
        "rr10k" => {
            zc_rr(n, 10_000);
        }
        "rr100k" => {
            zc_rr(n, 100_000);
        }
        _ => panic!("case"),
    }
}
