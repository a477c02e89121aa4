//! RSS in process: N stacks sharing one address and MAC behind a simulated
//! NIC that spreads received frames over their queues, and peers on the
//! other side of the wire. Two NIC modes:
//!
//! - `Nic::Rss`: the NIC computes the Toeplitz hash with the port's key and
//!   looks the queue up in the RETA (implemented here independently of
//!   `zcstack::rss::steer_frame`, from smoltcp's parsers);
//! - `Nic::Spray`: the NIC puts each frame on a seeded-random queue (a
//!   device whose distribution cannot be predicted) and software steering
//!   (`steer_frame`) forwards it to its owner, as the runtime does.
//!
//! In both modes every receiving queue runs `steer_frame` first, so the
//! counts of frames steered between queues prove the NIC and the software
//! agree. Simulated time, bounded loops.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddrV4};

use common::{pattern, sa, stack_config};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use zcstack::mem::HeapPages;
use zcstack::phy::queue::QueueDevice;
use zcstack::phy::DeviceCaps;
use zcstack::rss::{
    steer_frame, Reta, RssLocal, RssSpec, RssTblPorts, Steer, Toeplitz, FSTACK_RSS_KEY, SYMMETRIC_RSS_KEY,
};
use zcstack::wire::{EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, TcpPacket, UdpPacket};
use zcstack::{Instant, SocketHandle, Stack, StackConfig, State, TcpError};

const US: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const US_MAC: u8 = 1;
const RETA_SIZE: usize = 128;

fn peer_ip(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 10 + k as u8)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Nic {
    Rss,
    Spray,
}

/// A TCP 4-tuple as the RSS group receives it: (peer, us).
type Tuple = (SocketAddrV4, SocketAddrV4);

struct Lab {
    n: usize,
    /// Stacks 0..n: the RSS group (same IP and MAC); n..: peers.
    stacks: Vec<Stack<HeapPages>>,
    devs: Vec<QueueDevice>,
    spec: RssSpec,
    nic: Nic,
    rng: SmallRng,
    now: Instant,
    /// Per group stack: frames the NIC put on its queue that steering sent
    /// to another queue, and frames it got that way.
    steered_out: Vec<u64>,
    steered_in: Vec<u64>,
    /// ARP copies made for `AllQueues`.
    copies: u64,
    /// Frames entering the group from the wire, and frames delivered to a
    /// group stack (copies included).
    ingress: u64,
    delivered: u64,
    /// Which group stacks received frames of each TCP 4-tuple.
    seen: HashMap<Tuple, BTreeSet<usize>>,
    /// RSTs sent by group stacks.
    group_rsts: u64,
    /// Hostile frames injected.
    hostile: u64,
}

fn config(ip: Ipv4Addr, mac: u8, secret: u64) -> StackConfig {
    let mut c = stack_config(ip, mac);
    c.isn_secret = secret;
    c
}

impl Lab {
    fn new(n: usize, peers: usize, nic: Nic, key: &[u8], seed: u64) -> Lab {
        let spec = RssSpec { toeplitz: Toeplitz::new(key), reta: Reta::spread(RETA_SIZE, n as u16) };
        let mut stacks = Vec::new();
        for q in 0..n {
            // Same address and MAC; each its own secret (ISNs, port start).
            let mut s =
                Stack::new(config(US, US_MAC, seed ^ ((q as u64 + 1) * 0x9e37)), HeapPages::new(4096, 2048), 1500);
            s.set_rss(Some(RssLocal { spec: spec.clone(), queue: q as u16, tbl: Vec::new() }));
            stacks.push(s);
        }
        for k in 0..peers {
            stacks.push(Stack::new(
                config(peer_ip(k), 100 + k as u8, seed ^ 0xabcd ^ k as u64),
                HeapPages::new(8192, 2048),
                1500,
            ));
        }
        let devs = (0..n + peers).map(|_| QueueDevice::new(DeviceCaps::default())).collect();
        Lab {
            n,
            stacks,
            devs,
            spec,
            nic,
            rng: SmallRng::seed_from_u64(seed),
            now: Instant::ZERO,
            steered_out: vec![0; n],
            steered_in: vec![0; n],
            copies: 0,
            ingress: 0,
            delivered: 0,
            seen: HashMap::new(),
            group_rsts: 0,
            hostile: 0,
        }
    }

    fn peer(&mut self, k: usize) -> &mut Stack<HeapPages> {
        let n = self.n;
        &mut self.stacks[n + k]
    }

    /// The NIC's choice, computed from smoltcp's parsers: TCP/UDP and not a
    /// fragment → 4-tuple hash; other IPv4 → address hash; else queue 0.
    fn nic_queue(&mut self, frame: &[u8]) -> usize {
        if self.nic == Nic::Spray {
            return self.rng.gen_range(0..self.n);
        }
        let t = &self.spec.toeplitz;
        let hash = (|| {
            let eth = EthernetFrame::new_checked(frame).ok()?;
            if eth.ethertype() != EthernetProtocol::Ipv4 {
                return None;
            }
            let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            if ip.more_frags() || ip.frag_offset() != 0 {
                return Some(t.hash_v4(src, dst));
            }
            let ports = match ip.next_header() {
                IpProtocol::Tcp => TcpPacket::new_checked(ip.payload()).ok().map(|p| (p.src_port(), p.dst_port())),
                IpProtocol::Udp => UdpPacket::new_checked(ip.payload()).ok().map(|p| (p.src_port(), p.dst_port())),
                _ => None,
            };
            Some(match ports {
                Some((sp, dp)) => t.hash_v4_ports(src, dst, sp, dp),
                None => t.hash_v4(src, dst),
            })
        })();
        hash.map_or(0, |h| usize::from(self.spec.reta.queue(h)))
    }

    fn deliver_group(&mut self, q: usize, frame: &[u8]) {
        self.delivered += 1;
        if let Some(t) = tcp_tuple(frame) {
            self.seen.entry(t).or_default().insert(q);
        }
        self.devs[q].push_rx(frame.to_vec());
    }

    /// A frame from the wire into the group: the NIC picks a queue, that
    /// queue's software steering forwards it to its owner.
    fn ingress(&mut self, frame: &[u8]) {
        self.ingress += 1;
        let r = self.nic_queue(frame);
        match steer_frame(&self.spec, frame) {
            Steer::Queue(q) => {
                let q = usize::from(q);
                assert!(q < self.n, "steer_frame named queue {q} of {}", self.n);
                if q != r {
                    self.steered_out[r] += 1;
                    self.steered_in[q] += 1;
                }
                self.deliver_group(q, frame);
            }
            Steer::AllQueues => {
                self.deliver_group(r, frame);
                for q in (0..self.n).filter(|&q| q != r) {
                    self.copies += 1;
                    self.deliver_group(q, frame);
                }
            }
            Steer::Here => self.deliver_group(r, frame),
        }
    }

    /// Moves every transmitted frame to its receivers. Returns how many moved.
    fn wire(&mut self) -> usize {
        let mut moved = 0;
        for i in 0..self.stacks.len() {
            for f in self.devs[i].take_tx() {
                moved += 1;
                let dst = [f[0], f[1], f[2], f[3], f[4], f[5]];
                let bcast = dst == [0xff; 6];
                if i < self.n {
                    if is_rst(&f) {
                        self.group_rsts += 1;
                    }
                } else if bcast || dst == [2, 0, 0, 0, 0, US_MAC] {
                    self.ingress(&f);
                }
                for k in 0..self.stacks.len() - self.n {
                    let p = self.n + k;
                    if p != i && (bcast || dst == [2, 0, 0, 0, 0, 100 + k as u8]) {
                        self.devs[p].push_rx(f.clone());
                    }
                }
            }
        }
        moved
    }

    /// Polls everything once; if nothing happened, jumps to the next timer.
    /// False when nothing will ever happen again.
    fn step(&mut self) -> bool {
        let mut did = false;
        for i in 0..self.stacks.len() {
            did |= self.stacks[i].poll(self.now, &mut self.devs[i]);
        }
        did |= self.wire() > 0;
        if did {
            return true;
        }
        match self.stacks.iter_mut().filter_map(|s| s.poll_at()).min() {
            Some(t) => {
                self.now = self.now.max(t);
                true
            }
            None => false,
        }
    }

    /// Every connection of every stack is closed or in TIME-WAIT.
    fn settled(&self) -> bool {
        self.stacks.iter().all(|s| {
            s.tcp_sockets(100_000).iter().all(|i| matches!(i.state, None | Some(State::TimeWait | State::Closed)))
        })
    }

    /// The group stack owning each live TCP connection.
    fn owners(&self) -> HashMap<Tuple, usize> {
        let mut m = HashMap::new();
        for (q, s) in self.stacks[..self.n].iter().enumerate() {
            for info in s.tcp_sockets(100_000) {
                if let Some(remote) = info.remote {
                    assert!(m.insert((remote, info.local), q).is_none(), "two stacks hold {remote} -> {}", info.local);
                }
            }
        }
        m
    }

    /// Every TCP frame the group received went to the one stack owning its
    /// connection; returns the frames that reached another stack (must be 0).
    fn check_ownership(&self, owners: &HashMap<Tuple, usize>) -> usize {
        let mut wrong = 0;
        for (t, got) in &self.seen {
            let owner = owners.get(t).unwrap_or_else(|| panic!("frames of {t:?} but no stack owns it"));
            assert!(got.contains(owner), "{t:?}: owner {owner} never received a frame");
            wrong += got.iter().filter(|&&q| q != *owner).count();
        }
        wrong
    }

    fn assert_counts_match(&self) {
        let (out, inn): (u64, u64) = (self.steered_out.iter().sum(), self.steered_in.iter().sum());
        assert_eq!(out, inn, "steered out {:?} vs in {:?}", self.steered_out, self.steered_in);
        assert_eq!(self.delivered, self.ingress + self.copies, "every frame delivered once, ARP once per stack");
        // Clean traffic only: for malformed frames and ICMP errors the NIC
        // (address hash, or queue 0) and steering (the quoted flow's owner)
        // legitimately differ, and steering wins.
        if self.nic == Nic::Rss && self.hostile == 0 {
            assert_eq!(out, 0, "the NIC and steer_frame disagree: {:?}", self.steered_out);
        }
    }
}

fn tcp_tuple(frame: &[u8]) -> Option<Tuple> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 || ip.next_header() != IpProtocol::Tcp {
        return None;
    }
    let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
    Some((SocketAddrV4::new(ip.src_addr(), tcp.src_port()), SocketAddrV4::new(ip.dst_addr(), tcp.dst_port())))
}

fn is_rst(frame: &[u8]) -> bool {
    (|| {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
        (ip.next_header() == IpProtocol::Tcp).then_some(())?;
        Some(TcpPacket::new_checked(ip.payload()).ok()?.rst())
    })()
    .unwrap_or(false)
}

/// One echo exchange: the client writes `data`, the server echoes it, the
/// client checks it and closes; the server closes on end of stream.
struct Client {
    side: usize,
    h: SocketHandle,
    data: Vec<u8>,
    sent: usize,
    got: Vec<u8>,
    closed: bool,
}

struct Server {
    side: usize,
    h: SocketHandle,
    pending: Vec<u8>,
    closed: bool,
}

fn serve(s: &mut Stack<HeapPages>, srv: &mut Server, now: Instant) {
    if srv.closed {
        return;
    }
    let mut buf = [0u8; 4096];
    loop {
        match s.tcp_read(srv.h, &mut buf) {
            Ok(0) => {
                if srv.pending.is_empty() {
                    s.tcp_close(srv.h, now).unwrap();
                    srv.closed = true;
                }
                break;
            }
            Ok(n) => srv.pending.extend_from_slice(&buf[..n]),
            Err(TcpError::WouldBlock) => break,
            Err(e) => panic!("server read: {e}"),
        }
    }
    if !srv.pending.is_empty() {
        if let Ok(n) = s.tcp_write(srv.h, &srv.pending) {
            srv.pending.drain(..n);
        }
    }
}

fn drive_client(s: &mut Stack<HeapPages>, c: &mut Client, now: Instant) {
    if c.closed || s.tcp_state(c.h) != Ok(State::Established) && c.sent == 0 {
        return;
    }
    if c.sent < c.data.len() {
        if let Ok(n) = s.tcp_write(c.h, &c.data[c.sent..]) {
            c.sent += n;
        }
    }
    let mut buf = [0u8; 4096];
    loop {
        match s.tcp_read(c.h, &mut buf) {
            Ok(0) => break,
            Ok(n) => c.got.extend_from_slice(&buf[..n]),
            Err(TcpError::WouldBlock) => break,
            Err(e) => panic!("client read: {e}"),
        }
    }
    if c.got.len() == c.data.len() {
        assert_eq!(c.got, c.data, "echo differs");
        s.tcp_close(c.h, now).unwrap();
        c.closed = true;
    }
}

/// Runs clients and servers (with listeners `listen` to accept from) until
/// every client and server is closed and the group holds no connection.
fn run(lab: &mut Lab, clients: &mut [Client], listen: &[(usize, SocketHandle)], servers: &mut Vec<Server>) {
    let mut checked_owners = false;
    for _ in 0..200_000 {
        let now = lab.now;
        for &(side, l) in listen {
            while let Ok((h, _)) = lab.stacks[side].tcp_accept(l) {
                servers.push(Server { side, h, pending: Vec::new(), closed: false });
            }
        }
        for srv in servers.iter_mut() {
            serve(&mut lab.stacks[srv.side], srv, now);
        }
        for c in clients.iter_mut() {
            drive_client(&mut lab.stacks[c.side], c, now);
        }
        // Once every connection is up and none has closed: record owners.
        if !checked_owners && clients.iter().all(|c| c.sent == c.data.len() && !c.closed) {
            let owners = lab.owners();
            assert_eq!(lab.check_ownership(&owners), 0, "frames reached a stack not owning their flow");
            checked_owners = true;
        }
        if clients.iter().all(|c| c.closed) && servers.iter().all(|s| s.closed) && lab.settled() {
            break;
        }
        if !lab.step() {
            let states: Vec<_> = lab.stacks.iter().map(|s| s.tcp_sockets(8)).collect();
            panic!(
                "stalled: clients open {}, servers open {}, sockets {states:?}",
                clients.iter().filter(|c| !c.closed).count(),
                servers.iter().filter(|s| !s.closed).count()
            );
        }
    }
    assert!(clients.iter().all(|c| c.closed), "{} clients unfinished", clients.iter().filter(|c| !c.closed).count());
    assert!(servers.iter().all(|s| s.closed));
    assert!(checked_owners);
}

/// (a) Listeners on every stack; 64+ connections from peers are each
/// accepted by exactly one stack, served (data checked), and spread over
/// all stacks.
fn inbound(n: usize, nic: Nic, key: &[u8], seed: u64) {
    inbound_with(n, nic, key, seed, 0);
}

/// `inbound` with `garbage` hostile frames (random bytes behind a valid
/// Ethernet header, truncated IPv4/TCP, fake fragments) sent into the group
/// first: steering must not panic or misroute, and the receiving stacks
/// drop them.
fn inbound_with(n: usize, nic: Nic, key: &[u8], seed: u64, garbage: usize) {
    let peers = 2;
    let mut lab = Lab::new(n, peers, nic, key, seed);
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x6a7b);
    for i in 0..garbage {
        let len = rng.gen_range(0..90);
        let mut f = vec![2, 0, 0, 0, 0, US_MAC, 2, 0, 0, 0, 0, 100];
        f.extend_from_slice(&[[0x08, 0x00], [0x08, 0x06], [0x86, 0xdd]][i % 3]);
        f.extend((0..len).map(|_| rng.gen::<u8>()));
        if i % 3 == 0 && f.len() > 34 {
            f[14] = 0x45;
            f[23] = [1u8, 6, 17][i % 9 / 3];
        }
        lab.ingress(&f);
        lab.hostile += 1;
    }
    let listen: Vec<_> = (0..n).map(|q| (q, lab.stacks[q].tcp_listen(80, 128).unwrap())).collect();
    let mut clients = Vec::new();
    for i in 0..72 {
        let k = i % peers;
        let now = lab.now;
        let h = lab.peer(k).tcp_connect(sa(US, 80), 0, now).unwrap();
        let data = pattern(seed ^ i as u64, 1000 + 37 * i);
        clients.push(Client { side: n + k, h, data, sent: 0, got: Vec::new(), closed: false });
    }
    let mut servers = Vec::new();
    run(&mut lab, &mut clients, &listen, &mut servers);
    assert_eq!(servers.len(), clients.len(), "each connection accepted exactly once");
    let mut per_stack = vec![0usize; n];
    servers.iter().for_each(|s| per_stack[s.side] += 1);
    assert!(per_stack.iter().all(|&c| c > 0), "connections spread over every stack: {per_stack:?}");
    let owners_seen: usize = lab.seen.len();
    assert_eq!(owners_seen, clients.len(), "one 4-tuple per connection");
    assert!(lab.seen.values().all(|s| s.len() == 1), "a flow's frames reached two stacks");
    assert_eq!(lab.group_rsts, 0, "no connection reset");
    if garbage > 0 {
        let drops: u64 = lab.stacks[..n]
            .iter()
            .flat_map(|s| s.stats().fields())
            .filter(|(name, _)| name.starts_with("drop_"))
            .map(|(_, v)| v)
            .sum();
        assert!(drops > 0, "hostile frames are counted drops");
    }
    lab.assert_counts_match();
}

/// (b) Each group stack connects out `per` times with the RSS check on;
/// every reply comes back to the connecting stack.
fn outbound(n: usize, nic: Nic, key: &[u8], per: usize, seed: u64) {
    let mut lab = Lab::new(n, 1, nic, key, seed);
    let l = lab.peer(0).tcp_listen(9000, 1024).unwrap();
    let mut clients = Vec::new();
    for q in 0..n {
        for i in 0..per {
            let now = lab.now;
            let h = lab.stacks[q].tcp_connect(sa(peer_ip(0), 9000), 0, now).unwrap();
            let data = pattern(seed ^ (q * 1000 + i) as u64, 500 + 13 * i);
            clients.push(Client { side: q, h, data, sent: 0, got: Vec::new(), closed: false });
        }
    }
    // Every chosen port hashes the peer's replies to the connecting queue.
    for (q, s) in lab.stacks[..n].iter().enumerate() {
        let rss = s.rss().unwrap();
        for info in s.tcp_sockets(10_000) {
            assert!(rss.owns(info.local, info.remote.unwrap()));
            let want = lab.spec.queue_of_v4(*info.remote.unwrap().ip(), US, 9000, info.local.port());
            assert_eq!(usize::from(want), q);
        }
        assert!(s.stats().rss_connect_ports_tried >= per as u64);
    }
    let mut servers = Vec::new();
    run(&mut lab, &mut clients, &[(n, l)], &mut servers);
    assert_eq!(servers.len(), n * per);
    assert_eq!(lab.seen.len(), n * per);
    let wrong: usize = lab.seen.values().filter(|s| s.len() != 1).count();
    assert_eq!(wrong, 0, "replies reached a stack that did not connect");
    assert_eq!(lab.group_rsts, 0, "no connection reset");
    lab.assert_counts_match();
}

#[test]
fn inbound_rss_nic_two_and_four_stacks() {
    inbound(2, Nic::Rss, &FSTACK_RSS_KEY, 1);
    inbound(4, Nic::Rss, &FSTACK_RSS_KEY, 2);
}

#[test]
fn inbound_rss_nic_symmetric_key() {
    inbound(4, Nic::Rss, &SYMMETRIC_RSS_KEY, 3);
}

#[test]
fn outbound_connects_come_back_to_their_stack() {
    outbound(2, Nic::Rss, &FSTACK_RSS_KEY, 32, 4);
    outbound(4, Nic::Rss, &FSTACK_RSS_KEY, 32, 5);
    outbound(4, Nic::Rss, &SYMMETRIC_RSS_KEY, 32, 6);
}

#[test]
fn software_steering_delivers_every_frame_to_its_owner() {
    for (n, seed) in [(2, 7), (4, 8)] {
        inbound(n, Nic::Spray, &FSTACK_RSS_KEY, seed);
        outbound(n, Nic::Spray, &FSTACK_RSS_KEY, 32, seed + 100);
    }
}

#[test]
fn hostile_frames_among_steered_traffic_are_dropped_not_misrouted() {
    inbound_with(4, Nic::Spray, &FSTACK_RSS_KEY, 11, 600);
    inbound_with(2, Nic::Rss, &FSTACK_RSS_KEY, 12, 600);
}

#[test]
fn spray_without_steering_would_misdeliver() {
    // The control: a sprayed frame's queue is usually not its owner, so
    // the steering above did real work.
    let mut lab = Lab::new(4, 1, Nic::Spray, &FSTACK_RSS_KEY, 9);
    let l = lab.peer(0).tcp_listen(9000, 64).unwrap();
    let mut clients = Vec::new();
    for q in 0..4 {
        let now = lab.now;
        let h = lab.stacks[q].tcp_connect(sa(peer_ip(0), 9000), 0, now).unwrap();
        clients.push(Client { side: q, h, data: pattern(q as u64, 3000), sent: 0, got: Vec::new(), closed: false });
    }
    let mut servers = Vec::new();
    run(&mut lab, &mut clients, &[(4, l)], &mut servers);
    let out: u64 = lab.steered_out.iter().sum();
    assert!(out > 0 && lab.steered_in.iter().all(|&x| x > 0), "steered {:?}", lab.steered_in);
    lab.assert_counts_match();
}

// ----- (d) rss_tbl, explicit ports, exhaustion -----

fn one_stack(n: u16, q: u16, tbl: Vec<RssTblPorts>) -> (Stack<HeapPages>, RssSpec) {
    let spec = RssSpec { toeplitz: Toeplitz::new(&FSTACK_RSS_KEY), reta: Reta::spread(RETA_SIZE, n) };
    let mut s = Stack::new(config(US, US_MAC, 77), HeapPages::new(64, 2048), 1500);
    s.set_rss(Some(RssLocal { spec: spec.clone(), queue: q, tbl }));
    (s, spec)
}

fn local_ports(s: &Stack<HeapPages>) -> Vec<u16> {
    let mut v: Vec<u16> = s.tcp_sockets(100_000).iter().map(|i| i.local.port()).collect();
    v.sort_unstable();
    v
}

#[test]
fn rss_tbl_ports_are_used_first() {
    let remote = sa(peer_ip(0), 443);
    let spec = RssSpec { toeplitz: Toeplitz::new(&FSTACK_RSS_KEY), reta: Reta::spread(RETA_SIZE, 4) };
    let entry = RssLocal::tbl_entry(&spec, 3, US, remote, 20000..=20200);
    assert!(entry.ports.len() >= 3, "{entry:?}");
    // A table port of another queue (a stale table) is skipped, not used.
    let stale = (20000..=20200).find(|p| !entry.ports.contains(p)).unwrap();
    let mut tbl = entry.clone();
    tbl.ports.insert(0, stale);
    let (mut s, _) = one_stack(4, 3, vec![tbl]);
    for i in 0..3 {
        let h = s.tcp_connect(remote, 0, Instant::ZERO).unwrap();
        assert_eq!(s.tcp_sockets(100).iter().filter(|x| x.local.port() == entry.ports[i]).count(), 1, "connect {i}");
        let _ = h;
    }
    // Another destination does not use the table.
    s.tcp_connect(sa(peer_ip(1), 443), 0, Instant::ZERO).unwrap();
    let ports = local_ports(&s);
    assert!(ports.iter().any(|p| (32768..=60999).contains(p)), "{ports:?}");
}

#[test]
fn explicit_port_of_another_queue_is_refused() {
    let (mut s, spec) = one_stack(4, 1, Vec::new());
    let remote = sa(peer_ip(0), 80);
    let mut refused = 0;
    for p in 40000..40040u16 {
        let owner = spec.queue_of_v4(*remote.ip(), US, 80, p);
        match s.tcp_connect(remote, p, Instant::ZERO) {
            Ok(_) => assert_eq!(owner, 1, "port {p} accepted for queue {owner}"),
            Err(e) => {
                assert_eq!(e, TcpError::RssWrongQueue);
                assert_ne!(owner, 1);
                refused += 1;
            }
        }
    }
    assert!(refused > 0 && refused < 40);
    assert_eq!(s.stats().rss_connect_refused, refused);
    assert_eq!(s.tcp_connections(), 40 - refused as usize, "a refused connect leaves nothing behind");
    assert!(TcpError::RssWrongQueue.to_string().contains("RSS"));
}

#[test]
fn exhausting_the_ports_of_a_queue_is_a_clear_error() {
    let (mut s, spec) = one_stack(4, 2, Vec::new());
    let remote = sa(peer_ip(0), 8080);
    let mine = (32768..=60999u16).filter(|&p| spec.queue_of_v4(*remote.ip(), US, 8080, p) == 2).count();
    let mut made = 0;
    for _ in 0..=mine {
        match s.tcp_connect(remote, 0, Instant::ZERO) {
            Ok(_) => made += 1,
            Err(e) => {
                assert_eq!(e, TcpError::NoPorts);
                break;
            }
        }
    }
    assert_eq!(made, mine, "every port of the queue used once, then NoPorts");
    assert_eq!(s.tcp_connect(remote, 0, Instant::ZERO).unwrap_err(), TcpError::NoPorts, "stays exhausted");
    // Each used port belongs to queue 2 and is distinct.
    let ports = local_ports(&s);
    assert_eq!(ports.len(), mine);
    assert!(ports.windows(2).all(|w| w[0] < w[1]));
    assert!(ports.iter().all(|&p| spec.queue_of_v4(*remote.ip(), US, 8080, p) == 2));
    // Another peer still has ports.
    assert!(s.tcp_connect(sa(peer_ip(1), 8080), 0, Instant::ZERO).is_ok());
}

#[test]
fn without_rss_every_port_is_allowed() {
    let (mut s, _) = one_stack(4, 0, Vec::new());
    s.set_rss(None);
    for p in 40000..40020u16 {
        s.tcp_connect(sa(peer_ip(0), 80), p, Instant::ZERO).unwrap();
    }
    assert_eq!(s.stats().rss_connect_refused, 0);
    assert_eq!(s.stats().rss_connect_ports_tried, 0);
}
