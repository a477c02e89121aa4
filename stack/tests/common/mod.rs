//! The `Pair` harness: two stacks on a `SimLink`, deterministic simulated
//! time that jumps to the next event, and bounded driving.
#![allow(dead_code)]

pub mod script;

use std::net::{Ipv4Addr, SocketAddrV4};

use sha2::{Digest, Sha256};
use zcstack::mem::{HeapPages, PageMemory};
use zcstack::phy::sim::{SimConfig, SimDevice, SimLink};
use zcstack::phy::Device;
use zcstack::wire::EthernetAddress;
use zcstack::{IfaceConfig, Instant, Stack, StackConfig};

pub const A_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const B_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

pub fn stack_config(ip: Ipv4Addr, mac_last: u8) -> StackConfig {
    StackConfig::new(IfaceConfig {
        mac: EthernetAddress([0x02, 0, 0, 0, 0, mac_last]),
        addr: ip,
        prefix_len: 24,
        gateway: None,
    })
}

pub struct Pair {
    pub a: Stack<HeapPages>,
    pub b: Stack<HeapPages>,
    pub da: SimDevice,
    pub db: SimDevice,
    pub now: Instant,
    pub pages: u32,
}

/// What stopped a bounded run.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// The condition held.
    Done,
    /// Nothing will ever happen again (no timer, nothing in flight).
    Stalled,
    /// The step budget ran out.
    Budget,
}

impl Pair {
    pub fn new(sim: SimConfig, seed: u64) -> Pair {
        Pair::with_configs(sim, seed, stack_config(A_IP, 1), stack_config(B_IP, 2), 8192)
    }

    pub fn with_configs(sim: SimConfig, seed: u64, ca: StackConfig, cb: StackConfig, pages: u32) -> Pair {
        let mtu = sim.mtu;
        let (da, db) = SimLink::devices(sim, seed);
        Pair {
            a: Stack::new(ca, HeapPages::new(pages, 2048), mtu),
            b: Stack::new(cb, HeapPages::new(pages, 2048), mtu),
            da,
            db,
            now: Instant::ZERO,
            pages,
        }
    }

    /// Polls both stacks once at the current time; if neither did anything,
    /// jumps time to the next event. Returns false when nothing is pending.
    pub fn step(&mut self) -> bool {
        let did_a = self.a.poll(self.now, &mut self.da);
        let did_b = self.b.poll(self.now, &mut self.db);
        if did_a || did_b {
            return true;
        }
        let next =
            [self.a.poll_at(), self.b.poll_at(), self.da.poll_at(), self.db.poll_at()].into_iter().flatten().min();
        match next {
            Some(t) => {
                if t > self.now {
                    self.now = t;
                }
                true
            }
            None => false,
        }
    }

    /// Steps until `cond` holds, at most `max_steps` times.
    pub fn run_until(&mut self, max_steps: usize, mut cond: impl FnMut(&mut Pair) -> bool) -> Stop {
        for _ in 0..max_steps {
            if cond(self) {
                return Stop::Done;
            }
            if !self.step() {
                return if cond(self) { Stop::Done } else { Stop::Stalled };
            }
        }
        if cond(self) {
            Stop::Done
        } else {
            Stop::Budget
        }
    }

    /// Whether every page of both stacks is back on its free list.
    pub fn no_leaks(&self) -> bool {
        self.a.mem().free_count() == self.pages as usize && self.b.mem().free_count() == self.pages as usize
    }
}

pub fn sa(ip: Ipv4Addr, port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(ip, port)
}

/// Deterministic pseudo-random bytes.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

pub fn sha256(d: &[u8]) -> [u8; 32] {
    Sha256::digest(d).into()
}

/// Streams data incrementally (generated on the fly) and hashes it.
pub struct Source {
    seed: u64,
    total: usize,
    sent: usize,
    hasher: Sha256,
    chunk: Vec<u8>,
    chunk_off: usize,
}

impl Source {
    pub fn new(seed: u64, total: usize) -> Self {
        Source { seed, total, sent: 0, hasher: Sha256::new(), chunk: Vec::new(), chunk_off: 0 }
    }
    pub fn done(&self) -> bool {
        self.sent == self.total
    }
    /// Offers the next bytes to `write`, which returns how many it took.
    pub fn pump(&mut self, mut write: impl FnMut(&[u8]) -> usize) {
        while self.sent < self.total {
            if self.chunk_off == self.chunk.len() {
                let n = (self.total - self.sent).min(64 * 1024);
                self.chunk = pattern(self.seed ^ self.sent as u64, n);
                self.chunk_off = 0;
            }
            let want = &self.chunk[self.chunk_off..];
            let n = write(want);
            if n == 0 {
                return;
            }
            self.hasher.update(&want[..n]);
            self.chunk_off += n;
            self.sent += n;
        }
    }
    pub fn digest(&self) -> [u8; 32] {
        self.hasher.clone().finalize().into()
    }
}

/// Hashes a received stream.
#[derive(Default)]
pub struct Sink {
    pub received: usize,
    hasher: Sha256,
    pub eof: bool,
}

impl Sink {
    pub fn absorb(&mut self, d: &[u8]) {
        self.received += d.len();
        self.hasher.update(d);
    }
    pub fn digest(&self) -> [u8; 32] {
        self.hasher.clone().finalize().into()
    }
}

pub fn free_pages(m: &HeapPages) -> usize {
    m.free_count()
}

/// A device driven by the test: frames in with `push_rx`, out with `take_tx`.
pub fn script_device() -> zcstack::phy::queue::QueueDevice {
    zcstack::phy::queue::QueueDevice::new(zcstack::phy::DeviceCaps::default())
}

impl Pair {
    /// Listens on a:`port`, connects from b, and runs until both ends are
    /// established and the connection is accepted. Returns (server on a,
    /// client on b); the listener is closed.
    pub fn establish(&mut self, port: u16) -> (zcstack::SocketHandle, zcstack::SocketHandle) {
        let l = self.a.tcp_listen(port, 16).unwrap();
        let (s, c) = self.accept_from_b(l, port);
        self.a.tcp_close(l, self.now).unwrap();
        (s, c)
    }

    /// Connects from b to a:`port` where listener `l` waits; runs until
    /// both ends are established and accepted. Returns (server, client).
    pub fn accept_from_b(
        &mut self,
        l: zcstack::SocketHandle,
        port: u16,
    ) -> (zcstack::SocketHandle, zcstack::SocketHandle) {
        let c = self.b.tcp_connect(sa(A_IP, port), 0, self.now).unwrap();
        let mut s = None;
        let stop = self.run_until(100_000, |p| {
            s = s.or_else(|| p.a.tcp_accept(l).ok().map(|x| x.0));
            s.is_some() && p.b.tcp_state(c) == Ok(zcstack::State::Established)
        });
        assert_eq!(stop, Stop::Done, "handshake");
        (s.unwrap(), c)
    }
}

/// Reads everything `h` has into `sink`; marks EOF; panics on a socket error.
pub fn read_into(st: &mut Stack<HeapPages>, h: zcstack::SocketHandle, sink: &mut Sink) {
    let mut buf = [0u8; 32 * 1024];
    loop {
        match st.tcp_read(h, &mut buf) {
            Ok(0) => {
                sink.eof = true;
                return;
            }
            Ok(n) => sink.absorb(&buf[..n]),
            Err(zcstack::TcpError::WouldBlock) => return,
            Err(e) => panic!("read: {e}"),
        }
    }
}
