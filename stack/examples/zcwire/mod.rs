//! The in-memory wire `enginebench` and `perfdrive` run zcstack over: two
//! queues of frames, a `Device` end for each stack, offloads as a virtio
//! port offers them (and one reported-only wire that offers smoltcp more,
//! [`Offload::AllChecksums`]). Shared by both examples (`mod zcwire;`); each uses a
//! part (wall or simulated clock), hence `dead_code` is allowed.
#![allow(dead_code)]
pub(crate) mod smol;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use std::net::{Ipv4Addr, SocketAddrV4};

use zcstack::mem::{HeapPages, PageMemory};
use zcstack::phy::{Device, DeviceCaps, RxBuf, RxFrame, RxMeta, TxFrame};
use zcstack::tcp::SockOpt;
use zcstack::{IfaceConfig, Instant, SocketHandle, Stack, StackConfig};

pub(crate) const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub(crate) const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
/// Socket buffers of both stacks, bytes.
pub(crate) const BUF: usize = 256 * 1024;

/// The socket buffer size both stacks get: [`BUF`], or `PERFDRIVE_BUF`
/// bytes when set (a diagnostic: how the bytes moved per poll, bounded by
/// the window, change the cache misses; `perfdrive` header).
pub(crate) fn buf_size() -> usize {
    std::env::var("PERFDRIVE_BUF").ok().and_then(|v| v.parse().ok()).unwrap_or(BUF)
}

/// zcstack's `[tcp] output_pass_frames` when `PERFDRIVE_PASS` sets it (a
/// diagnostic, `perfdrive` header); else the config's default.
pub(crate) fn pass_frames() -> Option<usize> {
    std::env::var("PERFDRIVE_PASS").ok().and_then(|v| v.parse().ok())
}

/// zcstack's page size in both stacks, bytes: dpdk-glue's default
/// `[zerocopy] buf_size` (4 KiB), the page a deployed stack gets. Session 9
/// found the harness had used 2 KiB pages, which no deployment uses by
/// default: a 1448-byte segment then spans two pages twice as often (more
/// slices per segment to queue, copy and free), ~15% of bulk/csum-offload's
/// time (bench-results/bulk-2026-11-30-s9.txt).
pub(crate) const PAGE: usize = 4096;

/// The page size both zcstacks get: [`PAGE`], or `PERFDRIVE_PAGE` bytes
/// when set (a diagnostic: `PERFDRIVE_PAGE=2048` gives the harness of
/// sessions 1-8).
pub(crate) fn page_size() -> usize {
    std::env::var("PERFDRIVE_PAGE").ok().and_then(|v| v.parse().ok()).unwrap_or(PAGE)
}

// ----- the shared in-memory wire -----

/// Both stacks' harness costs are the same and allocation-free in steady
/// state (as DPDK's mempools are): a transmitted frame's bytes go into a
/// recycled [`Frame`] from `spare`, and a received one returns there once
/// the stack is done with it (smoltcp: after its `RxToken` is consumed;
/// zcstack: when the receiving end sees the stack let go of it). Queues and
/// pools move one pointer per frame, as a DPDK ring moves an mbuf pointer.
#[derive(Default)]
pub(crate) struct Wire {
    pub(crate) q: [VecDeque<Rc<Frame>>; 2],
    /// Frames no one holds (each the only reference to its `Frame`), reused
    /// by either side's transmit, most recently freed first.
    pub(crate) spare: Vec<Rc<Frame>>,
}

impl Wire {
    /// Queues a frame on `side`'s direction, filled by `fill` in a recycled
    /// [`Frame`] (a new one only while the pool grows) that holds its
    /// previous frame's bytes on entry. `verified` becomes the frame's
    /// [`RxBuf::l4_verified`].
    pub(crate) fn send<R>(&mut self, side: usize, verified: bool, fill: impl FnOnce(&mut Frame) -> R) -> R {
        let mut f = self.spare.pop().unwrap_or_default();
        let slot = Rc::get_mut(&mut f).expect("a spare frame has no other holder");
        slot.verified = verified;
        let r = fill(slot);
        self.q[side].push_back(f);
        r
    }
}

pub(crate) struct End {
    pub(crate) side: usize,
    pub(crate) wire: Rc<RefCell<Wire>>,
    pub(crate) done: Vec<TxFrame>,
    /// The wire offers what a virtio port does: TCP/UDP checksums left to
    /// the "device" (a frame that never leaves memory needs none, as vhost
    /// treats virtio's partial checksums) and, to a stack that can use it,
    /// TSO with frames delivered whole (as virtio-user hands them to vhost).
    pub(crate) offload: Offload,
    /// Frames lent to zcstack, a ring roughly in the order they were lent:
    /// `ring[next]` (wrapping to 0 past the end) is the first checked for
    /// reuse, a frame going back to the wire's spares once the stack lets go
    /// of it (as a DPDK mempool recycles an mbuf the stack freed).
    ring: Vec<Rc<Frame>>,
    next: usize,
}

/// What the wire offers the stacks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offload {
    /// Nothing: both stacks checksum in software, frames fit the MTU.
    None,
    /// TCP/UDP checksums left to the device, for both stacks, as a virtio
    /// port offers them (`VIRTIO_NET_F_CSUM`/`GUEST_CSUM` cover L4 only):
    /// IPv4 header checksums stay in software, computed on send and
    /// verified on receive, by both.
    Checksum,
    /// [`Offload::Checksum`] and TSO (only zcstack can use TSO).
    ChecksumTso,
    /// The `Checksum` wire as it was before session 20 (reported only):
    /// smoltcp leaves every checksum to the device, IPv4 headers' too
    /// (`ChecksumCapabilities::ignored()`, more than virtio offers), while
    /// zcstack gets exactly what it gets on `Checksum`.
    AllChecksums,
}

pub(crate) fn wire(offload: Offload) -> (End, End) {
    let w = Rc::new(RefCell::new(Wire::default()));
    let end = |side, wire| End { side, wire, done: Vec::new(), offload, ring: Vec::new(), next: 0 };
    (end(0, w.clone()), end(1, w))
}

/// A frame on the wire: its bytes are `buf[..len]`; `verified` when the
/// wire offloads checksums.
#[derive(Default)]
pub(crate) struct Frame {
    buf: Vec<u8>,
    len: usize,
    pub(crate) verified: bool,
}

impl Frame {
    /// The frame's bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// Fills the frame with a copy of `frame` (zcstack's transmit).
    pub(crate) fn copy_from(&mut self, frame: &TxFrame, mem: &dyn PageMemory) {
        self.buf.clear();
        frame.copy_into(mem, &mut self.buf);
        self.len = self.buf.len();
    }

    /// `len` bytes to fill in place, whose contents are unspecified as a
    /// NIC's transmit buffer's are (smoltcp's `TxToken` contract): the
    /// buffer keeps the stale bytes of earlier frames up to the longest
    /// it held; only bytes past that are zeroed (safe Rust has no
    /// uninitialised bytes), once per buffer while the pool warms up.
    pub(crate) fn stale_of(&mut self, len: usize) -> &mut [u8] {
        if self.buf.len() < len {
            self.buf.resize(len, 0);
        }
        self.len = len;
        &mut self.buf[..len]
    }
}

impl RxBuf for Frame {
    fn bytes(&self) -> &[u8] {
        Frame::bytes(self)
    }
    /// The frame's length (a recycled buffer's capacity may be larger).
    fn footprint(&self) -> usize {
        self.len
    }
    fn l4_verified(&self) -> bool {
        self.verified
    }
    fn meta(&self) -> RxMeta<'_> {
        RxMeta { bytes: Frame::bytes(self), footprint: self.len, l4_verified: self.verified }
    }
}

impl Device for End {
    /// As a virtio port: a receive call takes every queued frame up to
    /// its budget, and a burst of one frame ends the poll's receiving
    /// (`rx_short_burst_ends_poll_max` 1, as dpdk-glue's `EthDevice` sets
    /// for virtio, vhost, `net_ring` and memif ports).
    fn caps(&self) -> DeviceCaps {
        let base = DeviceCaps { rx_short_burst_ends_poll_max: 1, ..DeviceCaps::default() };
        match self.offload {
            Offload::None => base,
            Offload::Checksum | Offload::AllChecksums => DeviceCaps { tx_checksum_offload: true, ..base },
            Offload::ChecksumTso => DeviceCaps { tx_checksum_offload: true, tso_max: 32 * 1024, ..base },
        }
    }
    fn receive(&mut self, _now: Instant, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < budget {
            let f = self.wire.borrow_mut().q[1 - self.side].pop_front();
            match f {
                Some(f) => {
                    sink(f.bytes());
                    self.wire.borrow_mut().spare.push(f);
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
                    let rx = self.lend(f);
                    sink(RxFrame::Shared(rx));
                    n += 1;
                }
                None => break,
            }
        }
        n
    }
    fn transmit(&mut self, _now: Instant, frame: TxFrame, mem: &dyn PageMemory) -> Result<(), TxFrame> {
        self.wire.borrow_mut().send(self.side, self.offload != Offload::None, |f| f.copy_from(&frame, mem));
        self.done.push(frame);
        Ok(())
    }
    fn poll_completions(&mut self, _now: Instant, done: &mut dyn FnMut(TxFrame)) {
        for f in self.done.drain(..) {
            done(f);
        }
    }
}

impl End {
    /// Hands frame `f` to zcstack and keeps a reference in the ring of lent
    /// frames. From `ring[next]` on, up to [`End::PROBE`] slots are checked:
    /// the first the stack let go of (the stack releases frames in the
    /// order their payload is read, mostly the order they were lent)
    /// returns its frame to the wire's spares and `f` takes the slot. When
    /// all of them are still held, `f` gets a new slot right after them, so
    /// the next call checks older slots, not the same held ones again. The
    /// ring grows only when `PROBE` slots in a row are held (while a reader
    /// holds every frame it is as large as what it holds), and a frame held
    /// long costs one check per trip around the ring. In steady state: one
    /// reference-count check per frame, no allocation.
    fn lend(&mut self, f: Rc<Frame>) -> Rc<Frame> {
        let n = self.ring.len();
        let mut i = self.next;
        for _ in 0..Self::PROBE.min(n) {
            if i >= n {
                i = 0;
            }
            if Rc::strong_count(&self.ring[i]) == 1 {
                let old = std::mem::replace(&mut self.ring[i], f.clone());
                self.wire.borrow_mut().spare.push(old);
                self.next = i + 1;
                return f;
            }
            i += 1;
        }
        // Every probed slot is still held: a new slot after them.
        let at = i.min(n);
        self.ring.insert(at, f.clone());
        self.next = at + 1;
        f
    }

    /// Ring slots [`End::lend`] checks before growing the ring.
    const PROBE: usize = 4;
}

/// Where the stacks' time comes from.
pub(crate) enum Clock {
    /// The wall clock (enginebench's timed runs).
    Wall(std::time::Instant),
    /// Simulated: `step` µs per poll (perfdrive's repeatable instruction
    /// counts; `PERFDRIVE_STEP_US`, default 5).
    Simulated { t: u64, step: u64 },
}

impl Clock {
    pub(crate) fn wall() -> Clock {
        Clock::Wall(std::time::Instant::now())
    }
    pub(crate) fn simulated() -> Clock {
        let step = std::env::var("PERFDRIVE_STEP_US").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
        Clock::Simulated { t: 0, step }
    }
}

/// Two zcstack stacks, a (10.0.0.1) and b (10.0.0.2), over one wire.
pub(crate) struct Zc {
    pub(crate) a: Stack<HeapPages>,
    pub(crate) b: Stack<HeapPages>,
    pub(crate) da: End,
    pub(crate) db: End,
    clock: Clock,
}

impl Zc {
    /// The request/response setup of the rr cases: `idle` established
    /// connections from B to A (over four listening ports, all accepted),
    /// then one more whose (client on B, server on A) handles are returned
    /// with the idle ones.
    pub(crate) fn rr_pair(&mut self, idle: usize) -> (SocketHandle, SocketHandle, Vec<SocketHandle>) {
        let ls: Vec<SocketHandle> = (0..4).map(|i| self.a.tcp_listen(80 + i, 1 << 20).unwrap()).collect();
        let mut idle_conns = Vec::with_capacity(idle);
        let accept_all = |z: &mut Zc| {
            for l in &ls {
                while z.a.tcp_accept(*l).is_ok() {}
            }
        };
        for i in 0..idle {
            let now = self.now();
            idle_conns.push(self.b.tcp_connect(SocketAddrV4::new(A, 80 + (i % 4) as u16), 0, now).unwrap());
            if i % 1000 == 999 {
                for _ in 0..20 {
                    self.poll();
                }
                accept_all(self);
            }
        }
        for _ in 0..200 {
            self.poll();
            accept_all(self);
        }
        let (c, s) = self.connect(ls[0], 80);
        (c, s, idle_conns)
    }

    pub(crate) fn new(clock: Clock) -> Zc {
        Zc::with_wire(Offload::None, clock)
    }
    pub(crate) fn with_wire(offload: Offload, clock: Clock) -> Zc {
        let cfg = |ip: Ipv4Addr, m: u8| {
            let mut c = StackConfig::new(IfaceConfig {
                mac: zcstack::wire::EthernetAddress([2, 0, 0, 0, 0, m]),
                addr: ip,
                prefix_len: 24,
                gateway: None,
            });
            c.tcp.send_buffer = buf_size();
            c.tcp.recv_buffer = buf_size();
            c.tcp.somaxconn = 1 << 20;
            if let Some(n) = pass_frames() {
                c.tcp.output_pass_frames = n;
            }
            c
        };
        let (da, db) = wire(offload);
        Zc {
            a: Stack::new(cfg(A, 1), HeapPages::new(65_536, page_size()), 1500),
            b: Stack::new(cfg(B, 2), HeapPages::new(65_536, page_size()), 1500),
            da,
            db,
            clock,
        }
    }
    pub(crate) fn now(&self) -> Instant {
        match self.clock {
            Clock::Wall(t0) => Instant::from_micros(t0.elapsed().as_micros() as u64),
            Clock::Simulated { t, .. } => Instant::from_micros(t),
        }
    }
    /// Polls both stacks once (a simulated clock first advances a step).
    pub(crate) fn poll(&mut self) {
        let now = self.tick();
        self.a.poll(now, &mut self.da);
        self.b.poll(now, &mut self.db);
    }
    /// Advances a simulated clock a step; the time to poll with.
    pub(crate) fn tick(&mut self) -> Instant {
        if let Clock::Simulated { t, step } = &mut self.clock {
            *t += *step;
        }
        self.now()
    }
    /// A connection b -> a:port; returns (client, server).
    pub(crate) fn connect(&mut self, l: SocketHandle, port: u16) -> (SocketHandle, SocketHandle) {
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
