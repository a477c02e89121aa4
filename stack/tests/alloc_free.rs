//! No heap allocation per exchange (issue 13, item 3): a counting global
//! allocator (global only in this test binary) watches 10,000 keep-alive
//! request/response exchanges between two stacks after a warm-up, and
//! counts zero allocations on the thread that drives them; a bulk transfer
//! does the same over 32 MiB once warm (segment by segment, GSO bursts,
//! TSO frames).
//!
//! The wire between the stacks is itself allocation-free (frames copied
//! into recycled buffers, zero-copy receive through recycled `Rc` frames),
//! so every allocation counted is the engine's. Time is simulated.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;

use zcstack::mem::{HeapPages, PageMemory};
use zcstack::phy::{Device, DeviceCaps, RxBuf, RxFrame, SharedRx, TxFrame};
use zcstack::tcp::SockOpt;
use zcstack::wire::EthernetAddress;
use zcstack::{
    Duration, Event, IfaceConfig, Instant, Interest, SocketHandle, Stack, StackConfig, TcpError, Token, Trigger,
};

#[path = "common/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::count_allocs;

// ----- an allocation-free wire -----

const FRAME_CAP: usize = 2048;
const RING: usize = 256;

/// A received frame kept by reference (zero-copy receive); recycled once
/// the engine drops its last reference.
struct Frame {
    bytes: Vec<u8>,
    /// The TCP checksum is the sender's device's to fill (checksum
    /// offload): vouched for, as a virtio port's partial checksums are.
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

#[derive(Default)]
struct Wire {
    /// Frames in flight per direction (index: sender side).
    q: [VecDeque<Vec<u8>>; 2],
    /// Empty buffers to copy frames into.
    spare: Vec<Vec<u8>>,
}

struct End {
    side: usize,
    wire: Rc<RefCell<Wire>>,
    done: Vec<TxFrame>,
    /// Hand frames over by reference (`true`) or lend them.
    shared: bool,
    /// `Rc` frames for zero-copy receive, reused when the engine let go.
    frames: Vec<Rc<Frame>>,
    next_frame: usize,
    caps: DeviceCaps,
    /// Transmitted frames complete all at once when this many are waiting
    /// (a NIC with a deep TX ring that reclaims late and in bulk): up to
    /// that many frames, and their header buffers, in flight, then none.
    hold: usize,
}

fn wire(shared: bool) -> (End, End) {
    wire_with(shared, DeviceCaps::default())
}

/// The wire with both ends offering `caps` (a TSO frame, up to `tso_max`
/// bytes, travels whole, as virtio-user hands it to vhost).
fn wire_with(shared: bool, caps: DeviceCaps) -> (End, End) {
    wire_holding(shared, caps, 0)
}

/// [`wire_with`] whose second end (the bulk sender's) completes frames
/// only when `hold` are waiting, then all of them.
fn wire_holding(shared: bool, caps: DeviceCaps, hold: usize) -> (End, End) {
    let cap = FRAME_CAP.max(caps.tso_max + 128);
    let w = Rc::new(RefCell::new(Wire {
        q: [VecDeque::with_capacity(RING), VecDeque::with_capacity(RING)],
        spare: (0..RING).map(|_| Vec::with_capacity(cap)).collect(),
    }));
    let end = |side, hold| End {
        side,
        wire: w.clone(),
        done: Vec::with_capacity(RING + hold),
        shared,
        frames: (0..RING).map(|_| Rc::new(Frame { bytes: Vec::with_capacity(cap), verified: false })).collect(),
        next_frame: 0,
        caps,
        hold,
    };
    (end(0, 0), end(1, hold))
}

impl End {
    /// A frame the engine no longer holds, refilled with `bytes`.
    fn frame(&mut self, bytes: &[u8]) -> SharedRx {
        for _ in 0..self.frames.len() {
            let i = self.next_frame;
            self.next_frame = (self.next_frame + 1) % self.frames.len();
            if let Some(f) = Rc::get_mut(&mut self.frames[i]) {
                f.bytes.clear();
                f.bytes.extend_from_slice(bytes);
                f.verified = self.caps.tx_checksum_offload;
                return self.frames[i].clone();
            }
        }
        panic!("all {} receive frames held by the engine", self.frames.len());
    }
}

impl Device for End {
    fn caps(&self) -> DeviceCaps {
        self.caps
    }
    fn receive(&mut self, _now: Instant, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < budget {
            let Some(f) = self.wire.borrow_mut().q[1 - self.side].pop_front() else { break };
            sink(&f);
            self.wire.borrow_mut().spare.push(f);
            n += 1;
        }
        n
    }
    fn receive_frames(&mut self, now: Instant, budget: usize, sink: &mut dyn FnMut(RxFrame<'_>)) -> usize {
        if !self.shared {
            return self.receive(now, budget, &mut |b: &[u8]| sink(RxFrame::Borrowed(b)));
        }
        let mut n = 0;
        while n < budget {
            let Some(f) = self.wire.borrow_mut().q[1 - self.side].pop_front() else { break };
            let rx = self.frame(&f);
            self.wire.borrow_mut().spare.push(f);
            sink(RxFrame::Shared(rx));
            n += 1;
        }
        n
    }
    fn transmit(&mut self, _now: Instant, frame: TxFrame, mem: &dyn PageMemory) -> Result<(), TxFrame> {
        let mut w = self.wire.borrow_mut();
        let Some(mut v) = w.spare.pop() else { return Err(frame) };
        v.clear();
        frame.copy_into(mem, &mut v);
        w.q[self.side].push_back(v);
        self.done.push(frame);
        Ok(())
    }
    fn poll_completions(&mut self, _now: Instant, done: &mut dyn FnMut(TxFrame)) {
        if self.done.len() < self.hold {
            return;
        }
        for f in self.done.drain(..) {
            done(f);
        }
    }
}

// ----- the exchange -----

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const REQUEST: usize = 64;
const RESPONSE: usize = 300;

struct Rr {
    /// The server.
    a: Stack<HeapPages>,
    /// The client.
    b: Stack<HeapPages>,
    da: End,
    db: End,
    now: Instant,
    s: SocketHandle,
    c: SocketHandle,
    events: Vec<Event>,
    /// Both sides read with `tcp_read_zc` (views) instead of `tcp_read`.
    read_zc: bool,
    /// The server answers with this many bytes written into a zero-copy
    /// buffer (`zc_mbuf_get`, `zc_mbuf_write`, `tcp_write_zc`) instead of
    /// RESPONSE bytes by `tcp_write`.
    zc_response: Option<usize>,
    /// ... through F-Stack's calls instead (`ff_zc_mbuf_get`,
    /// `ff_zc_mbuf_write`, `ff_zc_write`), one `FfZcMbuf` reused.
    zc_ff: bool,
    ff_mbuf: zcstack::FfZcMbuf,
}

fn config(ip: Ipv4Addr, m: u8) -> StackConfig {
    let mut c = StackConfig::new(IfaceConfig {
        mac: EthernetAddress([2, 0, 0, 0, 0, m]),
        addr: ip,
        prefix_len: 24,
        gateway: None,
    });
    c.tcp.nodelay = true;
    c
}

impl Rr {
    /// Two stacks over the wire, `copybreak` as their `rx_copybreak`.
    fn new(shared: bool, copybreak: usize) -> Rr {
        let (da, db) = wire(shared);
        let cfg = |ip, m| {
            let mut c = config(ip, m);
            c.rx_copybreak = copybreak;
            c
        };
        let mut a = Stack::new(cfg(A, 1), HeapPages::new(4096, 2048), 1500);
        let mut b = Stack::new(cfg(B, 2), HeapPages::new(4096, 2048), 1500);
        let l = a.tcp_listen(80, 16).unwrap();
        let c = b.tcp_connect(SocketAddrV4::new(A, 80), 0, Instant::ZERO).unwrap();
        let mut rr = Rr {
            a,
            b,
            da,
            db,
            now: Instant::ZERO,
            s: l,
            c,
            events: Vec::with_capacity(64),
            read_zc: false,
            zc_response: None,
            zc_ff: false,
            ff_mbuf: Default::default(),
        };
        let mut s = None;
        for _ in 0..1000 {
            rr.poll();
            s = s.or_else(|| rr.a.tcp_accept(l).ok().map(|x| x.0));
            if s.is_some() && rr.b.tcp_state(rr.c) == Ok(zcstack::State::Established) {
                break;
            }
        }
        rr.s = s.expect("handshake");
        rr.a.tcp_set_option(rr.s, SockOpt::NoDelay(true), rr.now).unwrap();
        rr.b.tcp_set_option(rr.c, SockOpt::NoDelay(true), rr.now).unwrap();
        rr.a.register(rr.s, Token(1), Interest::READABLE, Trigger::Edge).unwrap();
        rr.b.register(rr.c, Token(2), Interest::READABLE, Trigger::Edge).unwrap();
        rr
    }

    /// Both stacks poll once, 5 µs of simulated time later.
    fn poll(&mut self) {
        self.now += Duration::from_micros(5);
        self.a.poll(self.now, &mut self.da);
        self.b.poll(self.now, &mut self.db);
    }

    /// One request from b, answered by a, read whole by b; bounded in polls.
    fn exchange(&mut self) {
        let mut buf = [0u8; 1024];
        let response = self.zc_response.unwrap_or(RESPONSE);
        assert_eq!(self.b.tcp_write(self.c, &[b'q'; REQUEST]), Ok(REQUEST));
        let (mut asked, mut answered) = (0, 0);
        for _ in 0..100 {
            self.poll();
            self.events.clear();
            self.a.poll_events(&mut self.events);
            if !self.events.is_empty() {
                asked += read_all(&mut self.a, self.s, &mut buf, self.read_zc);
                if asked == REQUEST {
                    asked = 0;
                    self.respond(response);
                }
            }
            self.events.clear();
            self.b.poll_events(&mut self.events);
            if !self.events.is_empty() {
                answered += read_all(&mut self.b, self.c, &mut buf, self.read_zc);
                if answered == response {
                    return;
                }
            }
        }
        panic!("exchange did not complete in 100 polls ({answered} of {response} bytes back)");
    }

    /// The server's answer of `n` bytes: copied, or through a zero-copy buffer.
    fn respond(&mut self, n: usize) {
        if self.zc_response.is_none() {
            assert_eq!(self.a.tcp_write(self.s, &[b'r'; RESPONSE]), Ok(RESPONSE));
            return;
        }
        const PAGE_OF_R: [u8; 4096] = [b'r'; 4096];
        if self.zc_ff {
            let mut m = std::mem::take(&mut self.ff_mbuf);
            self.a.ff_zc_mbuf_get(&mut m, n).expect("zero-copy pages");
            for k in (0..n).step_by(PAGE_OF_R.len()) {
                self.a.ff_zc_mbuf_write(&mut m, &PAGE_OF_R[..PAGE_OF_R.len().min(n - k)]).expect("filled");
            }
            assert_eq!(self.a.ff_zc_write(self.s, &mut m), Ok(n));
            assert!(m.buf.is_none(), "the chain was queued whole");
            self.ff_mbuf = m;
            return;
        }
        let mut z = self.a.zc_mbuf_get_for(self.s, n).expect("zero-copy pages");
        for k in (0..n).step_by(PAGE_OF_R.len()) {
            self.a.zc_mbuf_write(&mut z, &PAGE_OF_R[..PAGE_OF_R.len().min(n - k)]).expect("filled");
        }
        match self.a.tcp_write_zc(self.s, z) {
            Ok((k, None)) => assert_eq!(k, n),
            Ok((k, Some(_))) => panic!("only {k} of {n} bytes queued"),
            Err((e, _)) => panic!("tcp_write_zc: {e}"),
        }
    }
}

/// Reads everything `h` holds into `buf`; returns the bytes read.
fn drain(st: &mut Stack<HeapPages>, h: SocketHandle, buf: &mut [u8]) -> usize {
    let mut n = 0;
    loop {
        match st.tcp_read(h, buf) {
            Ok(0) | Err(TcpError::WouldBlock) => return n,
            Ok(k) => n += k,
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Reads everything `h` holds, through `buf` or as views (`zc`); returns
/// the bytes read.
fn read_all(st: &mut Stack<HeapPages>, h: SocketHandle, buf: &mut [u8], zc: bool) -> usize {
    if !zc {
        return drain(st, h, buf);
    }
    let mut n = 0;
    loop {
        match st.tcp_read_zc(h) {
            Ok(Some(v)) => n += v.len(),
            Ok(None) | Err(TcpError::WouldBlock) => return n,
            Err(e) => panic!("read_zc: {e}"),
        }
    }
}

/// With zero-copy receive (`shared`) every payload stays in its frame
/// (copybreak 0): the kept-frame path.
fn exchanges_allocate(shared: bool) -> u64 {
    exchanges_allocate_reading(shared, false, 0)
}

fn exchanges_allocate_reading(shared: bool, read_zc: bool, copybreak: usize) -> u64 {
    let mut rr = Rr::new(shared, copybreak);
    rr.read_zc = read_zc;
    for _ in 0..1000 {
        rr.exchange();
    }
    let frames = rr.a.stats().tx_frames;
    let n = count_allocs(|| {
        for _ in 0..10_000 {
            rr.exchange();
        }
    });
    assert!(rr.a.stats().tx_frames >= frames + 10_000, "the server answered every request");
    n
}

#[test]
fn keepalive_exchanges_allocate_nothing_with_copied_receive() {
    assert_eq!(exchanges_allocate(false), 0, "allocations across 10,000 exchanges (ZC_ALLOC_TRACE=1 shows where)");
}

#[test]
fn keepalive_exchanges_allocate_nothing_with_zero_copy_receive() {
    assert_eq!(exchanges_allocate(true), 0, "allocations across 10,000 exchanges (ZC_ALLOC_TRACE=1 shows where)");
}

#[test]
fn keepalive_zero_copy_responses_of_many_pages_allocate_nothing() {
    // A 16 KiB answer takes four pages: its buffer's page list outgrows the
    // two inline slots, and comes from (and goes back to) the stack's spares.
    // Rust calls, then F-Stack's (one `FfZcMbuf` reused, as a C server does).
    for ff in [false, true] {
        let mut rr = Rr::new(true, 0);
        rr.zc_response = Some(16 * 1024);
        rr.zc_ff = ff;
        for _ in 0..1000 {
            rr.exchange();
        }
        let zc0 = rr.a.stats().tx_bytes_zero_copy;
        let n = count_allocs(|| {
            for _ in 0..10_000 {
                rr.exchange();
            }
        });
        assert_eq!(rr.a.stats().tx_bytes_zero_copy - zc0, 10_000 * 16 * 1024, "every answer went by reference");
        assert_eq!(n, 0, "ff calls {ff}: allocations across 10,000 zero-copy answers (ZC_ALLOC_TRACE=1 shows where)");
    }
}

#[test]
fn keepalive_exchanges_read_as_views_allocate_nothing() {
    // With the default copybreak (256 bytes) the 64-byte requests are
    // copied on receive and `read_zc` hands them out in a buffer it reuses
    // once the view is gone; the 300-byte responses stay in their frames.
    let copybreak = config(A, 1).rx_copybreak;
    assert!((REQUEST..RESPONSE).contains(&copybreak), "one of each kind");
    assert_eq!(
        exchanges_allocate_reading(true, true, copybreak),
        0,
        "allocations across 10,000 exchanges read with read_zc"
    );
}

// ----- bulk transfer -----

/// Warm-up of [`bulk_allocates`], MiB: cwnd grown to the window, every
/// pool at its working size.
const WARM_UP_MIB: usize = 8;

/// Allocations on the driving thread while `mib` MiB flow b -> a over one
/// connection on a wire offering `caps`, after [`WARM_UP_MIB`] of the same
/// stream. Frames leave segment by segment
/// when `gso_max` is 0, else in bursts (GSO, or TSO where `caps` has it).
fn bulk_allocates(caps: DeviceCaps, gso_max: usize, mib: usize) -> u64 {
    bulk_allocates_sending(caps, gso_max, mib, Send::Copy, 0)
}

/// How [`bulk_allocates_sending`]'s sender queues its bytes.
#[derive(Clone, Copy, PartialEq)]
enum Send {
    /// `tcp_write` of a 64 KiB chunk (copied into the send queue).
    Copy,
    /// `tcp_send_shared` of 64 KiB ranges of a 1 MiB page-array data set
    /// (by reference: 16 or 17 page slices per write, as `bulk --mode zc`).
    Shared,
}

/// [`bulk_allocates`] sending `how`, the sender's end completing frames
/// in batches of `hold` (or more).
fn bulk_allocates_sending(caps: DeviceCaps, gso_max: usize, mib: usize, how: Send, hold: usize) -> u64 {
    let (mut da, mut db) = wire_holding(true, caps, hold);
    let cfg = |ip, m| {
        let mut c = config(ip, m);
        c.tcp.gso_max = gso_max;
        c
    };
    let mut a = Stack::new(cfg(A, 1), HeapPages::new(4096, 4096), 1500);
    let mut b = Stack::new(cfg(B, 2), HeapPages::new(4096, 4096), 1500);
    let l = a.tcp_listen(80, 16).unwrap();
    let c = b.tcp_connect(SocketAddrV4::new(A, 80), 0, Instant::ZERO).unwrap();
    let mut now = Instant::ZERO;
    let mut s = None;
    for _ in 0..1000 {
        now += Duration::from_micros(5);
        a.poll(now, &mut da);
        b.poll(now, &mut db);
        s = s.or_else(|| a.tcp_accept(l).ok().map(|x| x.0));
        if s.is_some() && b.tcp_state(c) == Ok(zcstack::State::Established) {
            break;
        }
    }
    let s = s.expect("handshake");
    let chunk = vec![0x5a_u8; 64 * 1024];
    let mut buf = vec![0u8; 64 * 1024];
    let data: Vec<u8> = (0..1 << 20).map(|i: usize| (i % 251) as u8).collect();
    let set = (how == Send::Shared).then(|| {
        let mut z = b.zc_mbuf_get(data.len()).expect("data set pages");
        b.zc_mbuf_write(&mut z, &data).expect("data set filled");
        z
    });
    // One stream: the measured part follows the warm-up with the pipe
    // full, as a long transfer runs (a pipe drained and refilled at once
    // would be a new peak, not the steady state).
    let total = (WARM_UP_MIB + mib) << 20;
    let (mut sent, mut got) = (0, 0);
    // Runs until `until` bytes arrived; returns the sender's (zero-copy,
    // copied) byte counters from when it started.
    let mut run_to = |until: usize| -> (u64, u64) {
        let at = (b.stats().tx_bytes_zero_copy, b.stats().tx_bytes_copied);
        for _ in 0..1_000_000 {
            while sent < total {
                let want = chunk.len().min(total - sent);
                let r = match &set {
                    // Ranges start anywhere in the set (a write may end mid-page).
                    Some(z) => {
                        let off = sent % z.len();
                        b.tcp_send_shared(c, z, off, want.min(z.len() - off))
                    }
                    None => b.tcp_write(c, &chunk[..want]),
                };
                match r {
                    Ok(n) if n > 0 => sent += n,
                    _ => break,
                }
            }
            now += Duration::from_micros(5);
            a.poll(now, &mut da);
            b.poll(now, &mut db);
            got += drain(&mut a, s, &mut buf);
            if got >= until {
                return at;
            }
        }
        panic!("bulk stalled at {got} of {until} bytes");
    };
    run_to(WARM_UP_MIB << 20);
    let mut at = (0, 0);
    let n = count_allocs(|| at = run_to(total));
    let (zc0, copied0) = at;
    let st = b.stats();
    if how == Send::Shared {
        // The measured part went by reference, every byte of it (less what
        // the warm-up had already queued ahead: up to a send buffer).
        let by_ref = st.tx_bytes_zero_copy - zc0;
        assert!(by_ref >= ((mib - 1) << 20) as u64, "by reference: {by_ref}");
        assert_eq!(st.tx_bytes_copied, copied0, "nothing copied");
    }
    match (caps.tso_max, gso_max) {
        (0, 0) => assert_eq!((st.tcp_gso_bursts, st.tcp_tso_frames), (0, 0), "segment by segment"),
        (0, _) => assert!(st.tcp_gso_bursts > 1000, "bursts cut by the stack: {}", st.tcp_gso_bursts),
        _ => assert!(st.tcp_tso_frames > 1000, "TSO frames: {}", st.tcp_tso_frames),
    }
    n
}

#[test]
fn bulk_transfer_allocates_nothing_in_steady_state() {
    let offload = DeviceCaps { tx_checksum_offload: true, ..DeviceCaps::default() };
    let tso = DeviceCaps { tx_checksum_offload: true, tso_max: 32 * 1024, ..DeviceCaps::default() };
    for (what, caps, gso_max) in [
        ("segment by segment", DeviceCaps::default(), 0),
        ("GSO, software checksums", DeviceCaps::default(), 32 * 1024),
        ("GSO, checksum offload", offload, 32 * 1024),
        ("TSO", tso, 32 * 1024),
    ] {
        let n = bulk_allocates(caps, gso_max, 32);
        assert_eq!(n, 0, "{what}: allocations across 32 MiB (ZC_ALLOC_TRACE=1 shows where)");
    }
}

#[test]
fn shared_sends_of_many_pages_allocate_nothing_in_steady_state() {
    // Each 64 KiB range of the data set spans 16-17 pages: the slices go
    // into the send queue one by one, with no list built per write.
    let offload = DeviceCaps { tx_checksum_offload: true, ..DeviceCaps::default() };
    for (what, caps, gso_max) in
        [("segment by segment", DeviceCaps::default(), 0), ("GSO, checksum offload", offload, 32 * 1024)]
    {
        let n = bulk_allocates_sending(caps, gso_max, 32, Send::Shared, 0);
        assert_eq!(n, 0, "{what}: allocations across 32 MiB sent by reference (ZC_ALLOC_TRACE=1 shows where)");
    }
}

#[test]
fn frames_completed_late_allocate_nothing_in_steady_state() {
    // A deep TX ring (virtio's 1,024 descriptors and more) completes frames
    // long after they left and in bulk: ~1,500 frames, each with its header
    // buffer, in flight, then all back at once. Those header buffers must
    // all be kept for the next frames, not freed and allocated again.
    for how in [Send::Copy, Send::Shared] {
        let n = bulk_allocates_sending(DeviceCaps::default(), 0, 32, how, 1500);
        assert_eq!(n, 0, "allocations across 32 MiB with 1,500 frames in flight (ZC_ALLOC_TRACE=1 shows where)");
    }
}

// ----- UDP -----

#[test]
fn udp_exchanges_allocate_only_each_sent_datagrams_frame() {
    // A request/response UDP service (DNS-like): received datagrams go
    // into recycled buffers (none allocated); each datagram sent is built
    // whole in its own frame buffer, the one allocation per datagram (the
    // completion path keeps only header-sized buffers: a pool of packet
    // buffers there cost the TCP path ~55 instructions per frame).
    // Scattered reads and gathered writes (the C API's recvmsg/sendmsg).
    let (mut da, mut db) = wire(true);
    let mut a = Stack::new(config(A, 1), HeapPages::new(4096, 256), 1500);
    let mut b = Stack::new(config(B, 2), HeapPages::new(4096, 256), 1500);
    let ua = a.udp_bind(53).unwrap();
    let ub = b.udp_bind(5353).unwrap();
    let mut now = Instant::ZERO;
    let (mut head, mut tail) = ([0u8; 16], [0u8; 2048]);
    let mut exchange = |i: usize| {
        let q = [b'q'; 64];
        b.udp_send_vectored(ub, SocketAddrV4::new(A, 53), &[&q[..16], &q[16..]]).unwrap();
        let mut answered = false;
        for _ in 0..20 {
            now += Duration::from_micros(5);
            a.poll(now, &mut da);
            b.poll(now, &mut db);
            if let Ok(d) = a.udp_recv_vectored(ua, &mut [&mut head, &mut tail]) {
                let from = d.from;
                assert_eq!((d.placed, d.len, from), (64, 64, SocketAddrV4::new(B, 5353)));
                a.udp_send_to(ua, from, &[b'r'; 1200]).unwrap();
            }
            if let Ok((n, _)) = b.udp_recv_from(ub, &mut tail) {
                assert_eq!(n, 1200);
                answered = true;
                break;
            }
        }
        assert!(answered, "exchange {i} answered");
    };
    for i in 0..1000 {
        exchange(i);
    }
    let n = count_allocs(|| {
        for i in 0..10_000 {
            exchange(i);
        }
    });
    assert_eq!(
        n, 20_000,
        "allocations across 10,000 UDP exchanges: one per datagram sent (ZC_ALLOC_TRACE=1 shows where)"
    );
}

// ----- connection per request -----

#[test]
fn connection_per_request_allocates_nothing_in_steady_state() {
    // Warm-up: the timer wheel's node list reaches its peak (stale entries
    // are reclaimed lazily) within a few thousand connections.
    const WARM: usize = 5000;
    // Open, one request and answer, close from the server (as
    // Connection: close), on both sides: a freed connection's box and its
    // queues' storage serve the next one. TIME-WAIT is 2 x 50 us here, so
    // the server's closed connections come back within a few exchanges.
    let (mut da, mut db) = wire(true);
    let cfg = |ip, m| {
        let mut c = config(ip, m);
        c.tcp.msl = Duration::from_micros(50);
        c
    };
    let mut a = Stack::new(cfg(A, 1), HeapPages::new(4096, 256), 1500);
    let mut b = Stack::new(cfg(B, 2), HeapPages::new(4096, 256), 1500);
    let l = a.tcp_listen(80, 64).unwrap();
    let mut now = Instant::ZERO;
    let mut port = 40_000u16;
    let mut buf = [0u8; 1024];
    let mut cycle = |i: usize| {
        port = if port == 60_000 { 40_000 } else { port + 1 };
        let c = b.tcp_connect(SocketAddrV4::new(A, 80), port, now).unwrap();
        let (mut s, mut stage) = (None, 0);
        for _ in 0..200 {
            now += Duration::from_micros(5);
            a.poll(now, &mut da);
            b.poll(now, &mut db);
            if s.is_none() {
                s = a.tcp_accept(l).ok().map(|x| x.0);
            }
            if stage == 0 && b.tcp_state(c) == Ok(zcstack::State::Established) {
                assert_eq!(b.tcp_write(c, &[b'q'; REQUEST]), Ok(REQUEST));
                stage = 1;
            }
            if let (1, Some(s)) = (stage, s) {
                if drain(&mut a, s, &mut buf) == REQUEST {
                    assert_eq!(a.tcp_write(s, &[b'r'; RESPONSE]), Ok(RESPONSE));
                    a.tcp_close(s, now).unwrap();
                    stage = 2;
                }
            }
            if stage == 2 && drain(&mut b, c, &mut buf) == RESPONSE {
                stage = 3;
            }
            if stage == 3 && b.tcp_read(c, &mut buf) == Ok(0) {
                b.tcp_close(c, now).unwrap();
                stage = 4;
            }
            if stage == 4 && a.tcp_connections() == 0 && b.tcp_connections() == 0 {
                return;
            }
        }
        panic!("connection {i} did not finish (stage {stage})");
    };
    for i in 0..WARM {
        cycle(i);
    }
    let n = count_allocs(|| {
        for i in 0..1000 {
            cycle(i);
        }
    });
    assert_eq!(n, 0, "allocations across 1,000 connections (ZC_ALLOC_TRACE=1 shows where)");
}
