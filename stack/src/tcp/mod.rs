//! The TCP engine: connection table keyed by 4-tuple (O(1) per segment),
//! listeners with a SYN backlog and an accept queue, a timer heap so idle
//! connections cost nothing per poll, and the socket operations.

mod conn;
pub mod cubic;
pub mod icmp;
mod limits;
pub(crate) mod odd_flags;
pub mod ooo_store;
mod ratelimit;
pub mod recv_queue;
pub mod rtt;
mod sack;
mod send_pressure;
pub mod send_queue;
pub mod seq;
pub mod sockopt;
pub mod timer;

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::net::SocketAddrV4;
use std::rc::Rc;

use rustc_hash::FxHashMap;
use thiserror::Error;

pub(crate) use conn::{Conn, Outcome, SegIn};
pub use seq::Seq;
pub use sockopt::{SockOpt, SockOptName, SocketOptions};

use crate::config::TcpConfig;
use crate::mem::PageMemory;
use crate::stats::Stats;
use crate::time::{Duration, Instant};
use crate::wire::{Checksum, IpProtocol, Ipv4Address, TcpControl, TcpPacket, TcpRepr};
use crate::zc::ZcBuf;

/// Connection states of RFC 9293 (LISTEN is a [`SocketHandle`] of its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// No connection.
    Closed,
    /// SYN sent, waiting for SYN-ACK.
    SynSent,
    /// SYN received, SYN-ACK sent.
    SynReceived,
    /// Data flows both ways.
    Established,
    /// We closed; our FIN is not yet acknowledged.
    FinWait1,
    /// Our FIN is acknowledged; waiting for the peer's.
    FinWait2,
    /// The peer closed; we may still send.
    CloseWait,
    /// Both closed at once; waiting for the ACK of our FIN.
    Closing,
    /// We closed after the peer; waiting for the ACK of our FIN.
    LastAck,
    /// Waiting 2*MSL for stray segments.
    TimeWait,
}

impl State {
    /// Whether sequence numbers are synchronized (past the handshake).
    pub fn synchronized(self) -> bool {
        !matches!(self, State::Closed | State::SynSent | State::SynReceived)
    }
}

/// Errors of socket operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum TcpError {
    /// Nothing to do now; try again after the next poll (`EAGAIN`).
    #[error("operation would block")]
    WouldBlock,
    /// The handle does not name a live socket of this kind.
    #[error("invalid socket handle")]
    InvalidHandle,
    /// The local address is taken (`EADDRINUSE`).
    #[error("address in use")]
    AddrInUse,
    /// No free ephemeral port for this destination.
    #[error("no free local port")]
    NoPorts,
    /// The peer refused the connection (`ECONNREFUSED`).
    #[error("connection refused")]
    Refused,
    /// The peer reset the connection (`ECONNRESET`).
    #[error("connection reset by peer")]
    Reset,
    /// Retransmissions or keepalives went unanswered (`ETIMEDOUT`).
    #[error("connection timed out")]
    TimedOut,
    /// Writing after shutdown/close, or after the connection's error
    /// (reset, refused, timed out, unreachable) was reported once (`EPIPE`,
    /// as Linux: the first call reports the error, later writes `EPIPE`).
    #[error("socket is shut down for writing")]
    Shutdown,
    /// The socket is not connected (`ENOTCONN`).
    #[error("socket is not connected")]
    NotConnected,
    /// An argument is invalid, e.g. an empty zero-copy chain (`EINVAL`).
    #[error("invalid argument")]
    InvalidArgument,
    /// Page memory for send buffers is exhausted (`ENOBUFS`).
    #[error("no buffer space (page memory exhausted)")]
    NoBuffers,
    /// An ICMP destination unreachable (host, network, administratively
    /// prohibited) ended the connection attempt (`EHOSTUNREACH`; RFC 1122
    /// 4.2.3.9, RFC 5461).
    #[error("no route to host")]
    HostUnreachable,
}

/// Handle to a TCP socket (listener or connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketHandle {
    idx: u32,
    gen: u32,
}

/// A segment to send, before IP/Ethernet encapsulation.
#[derive(Debug)]
pub(crate) struct SegOut {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub seq: Seq,
    pub ack: Option<Seq>,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
    pub window: u16,
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    /// SACK blocks (left, right), the first `sack_len` valid; the fourth
    /// only without timestamps. Plain pairs and a count (not `Option`s)
    /// keep the segment within 128 bytes, moved by inline stores instead
    /// of a `memcpy` call on the per-segment path.
    pub sack: [(u32, u32); 4],
    /// How many of `sack` are valid (0..=4).
    pub sack_len: u8,
    pub ts: Option<(u32, u32)>,
    pub payload: crate::phy::Payload,
    /// The payload was copied in by the stack (see [`crate::phy::TxFrame::copied`]).
    pub copied: bool,
    /// Non-zero: more than one segment's payload, for the device to cut
    /// into segments of this size (TSO, [`crate::phy::TxFrame::tso_segsz`]).
    pub tso_segsz: u16,
}

impl SegOut {
    pub fn empty(src: SocketAddrV4, dst: SocketAddrV4, seq: Seq) -> SegOut {
        SegOut {
            src,
            dst,
            seq,
            ack: None,
            syn: false,
            fin: false,
            rst: false,
            psh: false,
            window: 0,
            mss: None,
            wscale: None,
            sack_permitted: false,
            sack: [(0, 0); 4],
            sack_len: 0,
            ts: None,
            payload: crate::phy::Payload::new(),
            copied: false,
            tso_segsz: 0,
        }
    }

    pub fn rst(src: SocketAddrV4, dst: SocketAddrV4, seq: Seq, ack: Option<Seq>) -> SegOut {
        let mut s = SegOut::empty(src, dst, seq);
        s.rst = true;
        s.ack = ack;
        s
    }

    /// Writes the TCP header after `headroom` bytes of `buf` and fills the
    /// checksum over header and payload; with `checksum_offload` the field
    /// holds the pseudo-header sum for the device to complete.
    pub fn emit(&self, buf: &mut Vec<u8>, headroom: usize, mem: &dyn PageMemory, checksum_offload: bool) {
        let control = match (self.syn, self.fin, self.rst) {
            (true, _, _) => TcpControl::Syn,
            (_, true, _) => TcpControl::Fin,
            (_, _, true) => TcpControl::Rst,
            _ if self.psh => TcpControl::Psh,
            _ => TcpControl::None,
        };
        let repr = TcpRepr {
            src_port: self.src.port(),
            dst_port: self.dst.port(),
            control,
            seq_number: self.seq.into(),
            ack_number: self.ack.map(Into::into),
            window_len: self.window,
            window_scale: self.wscale,
            max_seg_size: self.mss,
            sack_permitted: self.sack_permitted,
            sack_ranges: [None; 3],
            timestamp: self.ts.map(|(v, e)| smoltcp::wire::TcpTimestampRepr::new(v, e)),
            payload: &[],
        };
        // SACK blocks (never on a SYN) are written here, not by smoltcp,
        // whose option holds three: without timestamps four fit (RFC 2018 3).
        let sack_opts =
            if self.syn { None } else { sack_option_bytes(&self.sack[..usize::from(self.sack_len)], self.ts) };
        let repr = if sack_opts.is_some() { TcpRepr { timestamp: None, ..repr } } else { repr };
        let hlen = repr.header_len() + sack_opts.as_ref().map_or(0, |o| o.len());
        buf.resize(headroom + hlen, 0);
        let mut pkt = TcpPacket::new_unchecked(&mut buf[headroom..]);
        let src = *self.src.ip();
        let dst = *self.dst.ip();
        repr.emit(&mut pkt, &src.into(), &dst.into(), &smoltcp::phy::ChecksumCapabilities::ignored());
        if let Some(o) = &sack_opts {
            pkt.set_header_len(hlen as u8);
            let start = headroom + repr.header_len();
            buf[start..start + o.len()].copy_from_slice(o);
        }
        let mut pkt = TcpPacket::new_unchecked(&mut buf[headroom..]);
        // TcpControl carries one flag: add PSH back to a FIN segment.
        if self.fin && !self.syn {
            pkt.set_fin(true);
            pkt.set_psh(self.psh);
        }
        pkt.set_checksum(0);
        let payload_len: usize = self.payload.iter().map(|p| p.len as usize).sum();
        let mut c = Checksum::new();
        // A TSO frame's pseudo-header sum leaves the length out: the device
        // adds each cut segment's own (RTE_MBUF_F_TX_TCP_SEG contract).
        let l4_len = if self.tso_segsz > 0 { 0 } else { (hlen + payload_len) as u16 };
        c.add_pseudo_header(src, dst, IpProtocol::Tcp, l4_len);
        debug_assert!(self.tso_segsz == 0 || checksum_offload, "TSO needs checksum offload");
        if checksum_offload {
            // The NIC completes the sum from the pseudo-header sum left in
            // the field (DPDK's RTE_MBUF_F_TX_TCP_CKSUM contract, virtio's
            // NEEDS_CSUM): the payload is never read by the CPU.
            pkt.set_checksum(!c.finish());
            return;
        }
        c.add(&buf[headroom..headroom + hlen]);
        for p in &self.payload {
            c.add(mem.slice(*p));
        }
        let mut pkt = TcpPacket::new_unchecked(&mut buf[headroom..]);
        pkt.set_checksum(c.finish());
    }
}

/// One row of [`TcpEngine::sockets`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketInfo {
    /// Local address.
    pub local: SocketAddrV4,
    /// Peer (`None` for a listener).
    pub remote: Option<SocketAddrV4>,
    /// Connection state (`None` for a listener: LISTEN).
    pub state: Option<State>,
    /// Connection: bytes received, not yet read. Listener: connections
    /// waiting in the accept queue (as `ss` shows).
    pub recv_q: usize,
    /// Connection: bytes queued to send, unacknowledged or unsent.
    /// Listener: the accept backlog.
    pub send_q: usize,
}

#[derive(Debug)]
struct Listener {
    local: SocketAddrV4,
    backlog: usize,
    accept_q: VecDeque<u32>,
    half_open: usize,
    /// Options accepted connections inherit.
    opts: SocketOptions,
    /// The configuration they start from (the options applied).
    conn_cfg: Rc<TcpConfig>,
}

#[derive(Debug)]
enum Sock {
    Listener(Listener),
    Conn(Box<Conn>),
}

#[derive(Debug)]
struct Slot {
    gen: u32,
    sock: Option<Sock>,
}

/// The TCP engine of one stack instance.
#[derive(Debug)]
pub struct TcpEngine {
    slots: Vec<Slot>,
    free: Vec<u32>,
    conns: FxHashMap<(SocketAddrV4, SocketAddrV4), u32>,
    listeners: FxHashMap<u16, u32>,
    timers: timer::TimerWheel,
    expired: Vec<(Instant, u32)>,
    dirty: Vec<u32>,
    next_port: u16,
    cfg: TcpConfig,
    /// `cfg`, shared by connections with default options.
    shared_cfg: Rc<TcpConfig>,
    secret: u64,
    local_ip: Ipv4Address,
    mtu: usize,
    /// Sockets whose readiness may have changed since the last look.
    notify: Vec<SocketHandle>,
    /// Engine-wide challenge ACK budget (RFC 5961 7).
    challenge_budget: ratelimit::ChallengeBudget,
    /// The fair-share rule for send queues on the page array.
    pressure: send_pressure::SendPressure,
    /// Writes limited by `pressure` since the stack last collected the count.
    pressure_limited: u64,
    /// Orphaned TIME-WAIT connections, oldest first (`maxtcptw`).
    time_wait: limits::TimeWaitQueue,
    /// Sockets refused by `max_sockets` since the stack last collected the count.
    sockets_refused: u64,
}

const EPHEMERAL: std::ops::RangeInclusive<u16> = 32768..=60999;
/// MSS values a SYN cookie can carry (3 bits).
const COOKIE_MSS: [u16; 6] = [536, 1220, 1360, 1440, 1460, 8960];

fn mss_index(mss: Option<u16>) -> u8 {
    let m = mss.unwrap_or(536);
    COOKIE_MSS.iter().rposition(|&x| x <= m).unwrap_or(0) as u8
}

impl TcpEngine {
    /// An engine for address `local_ip` on a link of `mtu`.
    pub fn new(cfg: TcpConfig, secret: u64, local_ip: Ipv4Address, mtu: usize) -> TcpEngine {
        TcpEngine {
            slots: Vec::new(),
            free: Vec::new(),
            conns: FxHashMap::default(),
            listeners: FxHashMap::default(),
            timers: timer::TimerWheel::default(),
            expired: Vec::new(),
            dirty: Vec::new(),
            next_port: *EPHEMERAL.start() + (secret % 20000) as u16,
            cfg,
            shared_cfg: Rc::new(cfg),
            secret,
            local_ip,
            mtu,
            notify: Vec::new(),
            challenge_budget: ratelimit::ChallengeBudget::new(secret),
            pressure: send_pressure::SendPressure::default(),
            pressure_limited: 0,
            time_wait: limits::TimeWaitQueue::default(),
            sockets_refused: 0,
        }
    }

    /// Sets the send-pressure rule (see [`send_pressure`]): pressure below
    /// `low_water_pct` % of the page array free (0: off), a fair share of at
    /// least `floor_bytes`, and `reserve_pct` % of the page array left to
    /// connections with (almost) empty send queues.
    pub fn set_send_pressure(&mut self, low_water_pct: usize, floor_bytes: usize, reserve_pct: usize) {
        self.pressure = send_pressure::SendPressure::new(low_water_pct, floor_bytes, reserve_pct);
    }

    /// Takes the page array's free count for the send-pressure rule, and
    /// queues a writable notification for every connection that was refused
    /// room by the rule and has room again (edge-triggered registrations
    /// hear of it too).
    pub fn observe_pages<M: PageMemory + ?Sized>(&mut self, mem: &M) {
        self.pressure.observe(mem);
        for idx in self.pressure.take_limited() {
            let Some(Slot { gen, sock: Some(Sock::Conn(c)) }) = self.slots.get(idx as usize) else { continue };
            let gen = *gen;
            if c.orphan || !c.can_send() {
                continue;
            }
            if self.pressure_room(idx, c, true) > 0 {
                self.notify.push(SocketHandle { idx, gen });
            } else {
                self.pressure.still_limited(idx);
            }
        }
    }

    /// Whether a connection waits for send room the rule refused it: only
    /// then must a poll call [`TcpEngine::observe_pages`] (to notify it when
    /// pages return). Readers of the free count ([`TcpEngine::writable`],
    /// [`TcpEngine::send_room`], [`TcpEngine::zc_grant`]) observe first.
    pub fn pressure_waiters(&self) -> bool {
        self.pressure.has_waiters()
    }

    /// Writes cut short or refused by the send-pressure rule since the last call.
    pub fn take_pressure_limited(&mut self) -> u64 {
        std::mem::take(&mut self.pressure_limited)
    }

    /// Pages held by all send queues together.
    pub fn send_pages_held(&self) -> usize {
        self.pressure.held_total()
    }

    /// Pages a zero-copy allocation may take now: for connection `h`
    /// (its fair share and, while its queue is almost empty, the reserve),
    /// or for no connection (`None`: never the reserve).
    pub fn zc_grant(&self, h: Option<SocketHandle>) -> Result<usize, TcpError> {
        match h {
            None => Ok(self.pressure.grant_unattributed()),
            Some(h) => {
                self.conn(h)?;
                Ok(self.pressure.grant(self.pressure.held_by(h.idx), true))
            }
        }
    }

    /// Bytes connection `c` (slot `idx`) may add to its send queue under the
    /// send-pressure rule; `alloc` as in [`send_pressure::SendPressure::grant`].
    fn pressure_room(&self, idx: u32, c: &Conn, alloc: bool) -> usize {
        let tail = if alloc { c.send_pages(self.pressure_buf_size()).1 } else { 0 };
        self.pressure.room(idx, tail, alloc)
    }

    fn pressure_buf_size(&self) -> usize {
        self.pressure.buf_size()
    }

    /// Re-counts the pages slot `idx`'s send queue holds.
    fn account_pages(&mut self, idx: u32) {
        let pages = match self.slots.get(idx as usize) {
            Some(Slot { sock: Some(Sock::Conn(c)), .. }) => c.send_pages(1).0,
            _ => 0,
        };
        self.pressure.account(idx, pages);
    }

    /// Counts a write the rule limited and remembers to notify the socket.
    fn pressure_limited(&mut self, idx: u32) {
        self.pressure_limited += 1;
        self.pressure.note_limited(idx);
    }

    /// Queues a readiness notification if the connection has news.
    fn note(&mut self, idx: u32) {
        if let Some(Slot { gen, sock: Some(Sock::Conn(c)) }) = self.slots.get_mut(idx as usize) {
            if c.events_pending && !c.orphan {
                c.events_pending = false;
                self.notify.push(SocketHandle { idx, gen: *gen });
            }
        }
    }

    fn note_listener(&mut self, idx: u32) {
        if let Some(Slot { gen, sock: Some(Sock::Listener(_)) }) = self.slots.get(idx as usize) {
            self.notify.push(SocketHandle { idx, gen: *gen });
        }
    }

    /// Moves the sockets whose readiness may have changed into `out`.
    pub fn take_notifications(&mut self, out: &mut Vec<SocketHandle>) {
        out.append(&mut self.notify);
    }

    /// Whether a listener has connections to accept.
    pub fn acceptable(&self, h: SocketHandle) -> bool {
        matches!(self.slots.get(h.idx as usize), Some(Slot { gen, sock: Some(Sock::Listener(l)) }) if *gen == h.gen && !l.accept_q.is_empty())
    }

    /// Whether the handle names a listener.
    pub fn is_listener(&self, h: SocketHandle) -> bool {
        matches!(self.slots.get(h.idx as usize), Some(Slot { gen, sock: Some(Sock::Listener(_)) }) if *gen == h.gen)
    }

    /// The peer closed (or the connection is gone): reading returns EOF or an error.
    pub fn hung_up(&self, h: SocketHandle) -> bool {
        self.conn(h).map(|c| c.at_eof() || c.state == State::Closed).unwrap_or(true)
    }

    /// The configuration new sockets get.
    pub fn config(&self) -> &TcpConfig {
        &self.cfg
    }

    /// Live connections (any state but CLOSED).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// The socket table, like `netstat -t`: listeners then connections in
    /// slot order, at most `limit` rows (the table may hold millions).
    pub fn sockets(&self, limit: usize) -> Vec<SocketInfo> {
        let rows = self.slots.iter().filter_map(|s| match s.sock.as_ref()? {
            Sock::Listener(l) => Some(SocketInfo {
                local: l.local,
                remote: None,
                state: None,
                recv_q: l.accept_q.len(),
                send_q: l.backlog,
            }),
            Sock::Conn(c) => Some(SocketInfo {
                local: c.local,
                remote: Some(c.remote),
                state: Some(c.state),
                recv_q: c.recv_len(),
                send_q: c.send_queued(),
            }),
        });
        rows.take(limit).collect()
    }

    /// Totals over every connection, in bytes: (held out of order, pinned
    /// by ready received data, queued to send). A scan of the table: for
    /// diagnostics and tests, not the per-segment path.
    pub fn memory_totals(&self) -> (usize, usize, usize) {
        let mut t = (0, 0, 0);
        for s in &self.slots {
            if let Some(Sock::Conn(c)) = &s.sock {
                let (ooo, held) = c.recv_memory();
                t.0 += ooo;
                t.1 += held;
                t.2 += c.send_queued();
            }
        }
        t
    }

    fn alloc_slot(&mut self, sock: Sock) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize].sock = Some(sock);
                i
            }
            None => {
                self.slots.push(Slot { gen: 0, sock: Some(sock) });
                let idx = (self.slots.len() - 1) as u32;
                self.pressure.track_slot(idx);
                idx
            }
        }
    }

    fn handle(&self, idx: u32) -> SocketHandle {
        SocketHandle { idx, gen: self.slots[idx as usize].gen }
    }

    fn conn(&self, h: SocketHandle) -> Result<&Conn, TcpError> {
        match self.slots.get(h.idx as usize) {
            Some(Slot { gen, sock: Some(Sock::Conn(c)) }) if *gen == h.gen && !c.orphan => Ok(c),
            _ => Err(TcpError::InvalidHandle),
        }
    }

    fn conn_mut(&mut self, h: SocketHandle) -> Result<&mut Conn, TcpError> {
        match self.slots.get_mut(h.idx as usize) {
            Some(Slot { gen, sock: Some(Sock::Conn(c)) }) if *gen == h.gen && !c.orphan => Ok(c),
            _ => Err(TcpError::InvalidHandle),
        }
    }

    fn listener_mut(&mut self, h: SocketHandle) -> Result<&mut Listener, TcpError> {
        match self.slots.get_mut(h.idx as usize) {
            Some(Slot { gen, sock: Some(Sock::Listener(l)) }) if *gen == h.gen => Ok(l),
            _ => Err(TcpError::InvalidHandle),
        }
    }

    /// Whether any connection uses `port` as its local port. A scan of the
    /// table: only `listen`/`connect` with an explicit port without
    /// `SO_REUSEADDR` ask, never the per-segment path.
    fn port_in_use(&self, port: u16) -> bool {
        self.conns.keys().any(|(l, _)| l.port() == port)
    }

    fn free_slot(&mut self, idx: u32) {
        if let Some(Sock::Conn(c)) = self.slots[idx as usize].sock.take() {
            self.conns.remove(&(c.local, c.remote));
        }
        self.pressure.account(idx, 0);
        let slot = &mut self.slots[idx as usize];
        slot.gen = slot.gen.wrapping_add(1);
        self.free.push(idx);
    }

    fn mark(&mut self, idx: u32) {
        if let Some(Slot { sock: Some(Sock::Conn(c)), .. }) = self.slots.get_mut(idx as usize) {
            if !c.dirty {
                c.dirty = true;
                self.dirty.push(idx);
            }
        }
    }

    fn schedule(&mut self, idx: u32) {
        if let Some(Slot { sock: Some(Sock::Conn(c)), .. }) = self.slots.get_mut(idx as usize) {
            if let Some(t) = c.next_timer() {
                if c.timer_scheduled.is_none_or(|s| t < s) {
                    c.timer_scheduled = Some(t);
                    self.timers.insert(t, idx);
                }
            }
        }
    }

    fn isn(&self, local: SocketAddrV4, remote: SocketAddrV4, now: Instant) -> Seq {
        // RFC 6528: ISN = M + F(localip, localport, remoteip, remoteport, secretkey),
        // M a 4-microsecond timer, F a keyed hash (SipHash, keyed by the secret).
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.secret.hash(&mut h);
        local.hash(&mut h);
        remote.hash(&mut h);
        Seq((now.total_micros() / 4) as u32) + h.finish() as u32
    }

    // ----- socket operations -----

    /// Listens on `port` of our address with an accept backlog of `backlog`
    /// (capped by `somaxconn`) and default options.
    pub fn listen(&mut self, port: u16, backlog: usize) -> Result<SocketHandle, TcpError> {
        self.listen_with(port, backlog, &SocketOptions::default())
    }

    /// Listens with `opts`, which accepted connections inherit. Fails with
    /// `AddrInUse` if the port has a listener, or, without `SO_REUSEADDR`, if
    /// any connection (even one in TIME-WAIT) still uses it as its local port.
    pub fn listen_with(&mut self, port: u16, backlog: usize, opts: &SocketOptions) -> Result<SocketHandle, TcpError> {
        if port == 0 || self.listeners.contains_key(&port) || (!opts.reuse_addr && self.port_in_use(port)) {
            return Err(TcpError::AddrInUse);
        }
        if self.socket_limit_reached() {
            return Err(TcpError::NoBuffers);
        }
        let local = SocketAddrV4::new(self.local_ip, port);
        let backlog = backlog.clamp(1, self.cfg.somaxconn.max(1));
        let conn_cfg = opts.conn_config(&self.shared_cfg);
        let l = Listener { local, backlog, accept_q: VecDeque::new(), half_open: 0, opts: *opts, conn_cfg };
        let idx = self.alloc_slot(Sock::Listener(l));
        self.listeners.insert(port, idx);
        Ok(self.handle(idx))
    }

    /// Starts connecting to `remote` from `local_port` (0 picks an ephemeral
    /// port) with default options.
    pub fn connect(&mut self, remote: SocketAddrV4, local_port: u16, now: Instant) -> Result<SocketHandle, TcpError> {
        self.connect_with(remote, local_port, &SocketOptions::default(), now)
    }

    /// Starts connecting with `opts`. An explicit `local_port` fails with
    /// `AddrInUse` if it has a listener or the exact 4-tuple is live; without
    /// `SO_REUSEADDR` also if any connection uses that port. With it, a
    /// 4-tuple left in TIME-WAIT is recycled (its old incarnation is dropped).
    pub fn connect_with(
        &mut self,
        remote: SocketAddrV4,
        local_port: u16,
        opts: &SocketOptions,
        now: Instant,
    ) -> Result<SocketHandle, TcpError> {
        if self.socket_limit_reached() {
            return Err(TcpError::NoBuffers);
        }
        let port = if local_port != 0 {
            let key = (SocketAddrV4::new(self.local_ip, local_port), remote);
            if self.listeners.contains_key(&local_port) || (!opts.reuse_addr && self.port_in_use(local_port)) {
                return Err(TcpError::AddrInUse);
            }
            if let Some(&old) = self.conns.get(&key) {
                match &self.slots[old as usize].sock {
                    Some(Sock::Conn(c)) if c.state == State::TimeWait && c.orphan => self.free_slot(old),
                    _ => return Err(TcpError::AddrInUse),
                }
            }
            local_port
        } else {
            self.pick_port(remote)?
        };
        let local = SocketAddrV4::new(self.local_ip, port);
        let iss = self.isn(local, remote, now);
        let cfg = opts.conn_config(&self.shared_cfg);
        let mut conn = Conn::connect(&cfg, local, remote, iss, self.mtu, now);
        conn.apply_options(opts, now);
        let idx = self.alloc_slot(Sock::Conn(Box::new(conn)));
        self.conns.insert((local, remote), idx);
        self.mark(idx);
        self.schedule(idx);
        Ok(self.handle(idx))
    }

    fn pick_port(&mut self, remote: SocketAddrV4) -> Result<u16, TcpError> {
        let span = u32::from(*EPHEMERAL.end() - *EPHEMERAL.start()) + 1;
        if self.cfg.randomize_ports {
            self.next_port = limits::random_port(self.secret, self.next_port, remote, EPHEMERAL);
        }
        for _ in 0..span {
            let p = self.next_port;
            self.next_port = if p >= *EPHEMERAL.end() { *EPHEMERAL.start() } else { p + 1 };
            let l = SocketAddrV4::new(self.local_ip, p);
            if !self.listeners.contains_key(&p) && !self.conns.contains_key(&(l, remote)) {
                return Ok(p);
            }
        }
        Err(TcpError::NoPorts)
    }

    /// Takes an established connection from a listener's accept queue.
    pub fn accept(&mut self, listener: SocketHandle) -> Result<(SocketHandle, SocketAddrV4), TcpError> {
        let l = self.listener_mut(listener)?;
        let idx = l.accept_q.pop_front().ok_or(TcpError::WouldBlock)?;
        let h = self.handle(idx);
        let c = self.conn_mut(h)?;
        c.parent = None;
        Ok((h, c.remote))
    }

    /// Connections waiting in a listener's accept queue.
    pub fn accept_queue_len(&mut self, listener: SocketHandle) -> Result<usize, TcpError> {
        Ok(self.listener_mut(listener)?.accept_q.len())
    }

    /// Reads received bytes. `Ok(0)` means end of stream: the peer closed,
    /// the application shut the receive side (`SHUT_RD`), or the
    /// connection's error was already reported once (Linux: the first read
    /// after a reset says `Reset`, later ones 0).
    pub fn read(&mut self, h: SocketHandle, buf: &mut [u8]) -> Result<usize, TcpError> {
        let c = self.conn_mut(h)?;
        if buf.is_empty() {
            return Ok(0);
        }
        let n = c.read(buf);
        let wants = c.wants_output();
        if n > 0 {
            if wants {
                self.mark(h.idx);
            }
            return Ok(n);
        }
        Self::nothing_to_read(c).map(|()| 0)
    }

    /// Copies received bytes without consuming them (`MSG_PEEK`): the next
    /// read returns them again. End of stream and errors as [`TcpEngine::read`].
    pub fn peek(&mut self, h: SocketHandle, buf: &mut [u8]) -> Result<usize, TcpError> {
        let c = self.conn_mut(h)?;
        if buf.is_empty() {
            return Ok(0);
        }
        match c.peek(buf) {
            0 => Self::nothing_to_read(c).map(|()| 0),
            n => Ok(n),
        }
    }

    /// Why a read found no data: `Ok` for end of stream, else the pending
    /// error (reported once), `NotConnected`, or `WouldBlock`.
    fn nothing_to_read(c: &mut Conn) -> Result<(), TcpError> {
        if c.at_eof() || c.read_shut() {
            return Ok(());
        }
        if let Some(e) = c.take_error() {
            return Err(e);
        }
        if c.error.is_some() {
            return Ok(()); // reported before: end of stream, as Linux
        }
        if matches!(c.state, State::Closed) {
            return Err(TcpError::NotConnected);
        }
        Err(TcpError::WouldBlock)
    }

    /// Bytes a read would return now (`FIONREAD`, `SIOCINQ`).
    pub fn recv_queued(&self, h: SocketHandle) -> Result<usize, TcpError> {
        Ok(self.conn(h)?.recv_len())
    }

    /// `shutdown(SHUT_RD)`: queued data is discarded, data arriving later
    /// is acknowledged and discarded, and reads return end of stream. (RFC
    /// 9293 has no receive shutdown; these are the BSD semantics
    /// (`sorflush`, data to a socket that cannot receive more is dropped
    /// after being acknowledged): the peer is never stalled by a window
    /// nobody will open, and memory nobody will read is never held. Linux
    /// instead keeps queueing and lets queued data be read.)
    pub fn shutdown_read(&mut self, h: SocketHandle) -> Result<(), TcpError> {
        self.conn_mut(h)?.shutdown_read();
        self.note(h.idx);
        self.mark(h.idx);
        Ok(())
    }

    /// The error a write reports on a connection that failed: its error the
    /// first time it is reported, `Shutdown` (`EPIPE`) afterwards.
    fn write_error(c: &mut Conn) -> Option<TcpError> {
        c.error?;
        Some(c.take_error().unwrap_or(TcpError::Shutdown))
    }

    /// Takes the next piece of received data without copying (zero-copy
    /// receive): `Ok(Some(view))`, or `Ok(None)` at end of stream.
    pub fn read_zc(&mut self, h: SocketHandle) -> Result<Option<crate::zc::RxView>, TcpError> {
        let c = self.conn_mut(h)?;
        if let Some(v) = c.read_zc() {
            if c.wants_output() {
                self.mark(h.idx);
            }
            return Ok(Some(v));
        }
        Self::nothing_to_read(c).map(|()| None)
    }

    /// Queues a copy of what fits of `data`; returns bytes taken.
    pub fn write(&mut self, h: SocketHandle, data: &[u8], mem: &mut dyn PageMemory) -> Result<usize, TcpError> {
        self.write_from(h, send_queue::CopySrc::Bytes(data), mem)
    }

    /// [`TcpEngine::write`] from bytes or from a page buffer range.
    pub fn write_from(
        &mut self,
        h: SocketHandle,
        data: send_queue::CopySrc<'_>,
        mem: &mut dyn PageMemory,
    ) -> Result<usize, TcpError> {
        // One slot lookup for the whole write (the hot path of every send):
        // the connection and the send-pressure state are separate fields.
        let c = match self.slots.get_mut(h.idx as usize) {
            Some(Slot { gen, sock: Some(Sock::Conn(c)) }) if *gen == h.gen && !c.orphan => c,
            _ => return Err(TcpError::InvalidHandle),
        };
        if let Some(e) = Self::write_error(c) {
            return Err(e);
        }
        if !c.can_send() {
            return Err(if c.state == State::Closed { TcpError::NotConnected } else { TcpError::Shutdown });
        }
        if data.is_empty() {
            return Ok(0);
        }
        let room = c.send_room();
        if room == 0 {
            return Err(TcpError::WouldBlock);
        }
        self.pressure.observe(mem);
        let want = data.len().min(room);
        let limit = if want <= self.pressure.unlimited_bytes() {
            want
        } else {
            self.pressure.room(h.idx, c.send_pages(self.pressure.buf_size()).1, true)
        };
        if limit < want {
            self.pressure_limited += 1;
            self.pressure.note_limited(h.idx);
            if limit == 0 {
                return Err(TcpError::WouldBlock);
            }
        }
        let n = c.write(data.truncate(limit), mem);
        self.pressure.account(h.idx, c.send_pages(1).0);
        if n == 0 {
            return Err(TcpError::NoBuffers);
        }
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(h.idx);
        }
        Ok(n)
    }

    /// Grows the connection's last zero-copy chunk by the application range
    /// `s` when `s` starts where that chunk ends in the same page
    /// ([`send_queue::SendQueue::extend_tail`]); `Ok(0)` when it does not
    /// (nothing taken). Errors as [`TcpEngine::write_from`].
    pub fn extend_shared(&mut self, h: SocketHandle, s: crate::mem::PageSlice) -> Result<usize, TcpError> {
        let c = self.conn_mut(h)?;
        if let Some(e) = Self::write_error(c) {
            return Err(e);
        }
        if !c.can_send() {
            return Err(if c.state == State::Closed { TcpError::NotConnected } else { TcpError::Shutdown });
        }
        let room = c.send_room();
        if room == 0 {
            return Err(TcpError::WouldBlock);
        }
        let n = c.extend_shared(s);
        if n > 0 {
            self.mark(h.idx);
        }
        Ok(n)
    }

    /// Whether the last application range written to the connection ended
    /// at byte `at` of `page` (false for an unknown handle).
    pub fn shared_ended_at(&self, h: SocketHandle, page: crate::mem::PageId, at: u32) -> bool {
        self.conn(h).is_ok_and(|c| c.shared_ended_at(page, at))
    }

    /// Queues the filled bytes of `buf` without copying; returns the bytes
    /// taken and, when the send buffer had less room than `buf` holds, the
    /// unsent tail as a buffer of its own (never dropped, never a crash).
    /// On error nothing was taken and `buf` comes back with the error.
    pub fn write_zc(
        &mut self,
        h: SocketHandle,
        mut buf: ZcBuf,
        mem: &mut dyn PageMemory,
    ) -> Result<(usize, Option<ZcBuf>), (TcpError, ZcBuf)> {
        let c = match self.conn_mut(h) {
            Ok(c) => c,
            Err(e) => return Err((e, buf)),
        };
        if let Some(e) = Self::write_error(c) {
            return Err((e, buf));
        }
        if !c.can_send() {
            return Err((if c.state == State::Closed { TcpError::NotConnected } else { TcpError::Shutdown }, buf));
        }
        if buf.is_empty() {
            return Ok((0, Some(buf)));
        }
        let room = buf.len().min(c.send_room());
        if room == 0 {
            return Err((TcpError::WouldBlock, buf));
        }
        self.pressure.observe(mem);
        let limit = match self.conn(h) {
            Ok(c) => self.pressure_room(h.idx, c, false),
            Err(e) => return Err((e, buf)),
        };
        if limit < room {
            self.pressure_limited(h.idx);
        }
        let take = room.min(limit);
        if take == 0 {
            return Err((TcpError::WouldBlock, buf));
        }
        let tail = (take < buf.len()).then(|| buf.split_off(take, mem));
        match self.conn_mut(h) {
            Ok(c) => c.write_slices(buf.take_filled(mem)),
            Err(e) => return Err((e, buf)),
        }
        self.account_pages(h.idx);
        self.mark(h.idx);
        Ok((take, tail))
    }

    /// Half-closes: FIN after the queued data.
    pub fn shutdown_write(&mut self, h: SocketHandle) -> Result<(), TcpError> {
        let c = self.conn_mut(h)?;
        c.shutdown_write();
        self.mark(h.idx);
        Ok(())
    }

    /// Closes the socket. Unread received data aborts the connection with a
    /// RST (as Linux does); otherwise a FIN follows the queued data and the
    /// connection finishes on its own. The handle is invalid afterwards.
    pub(crate) fn close(
        &mut self,
        h: SocketHandle,
        now: Instant,
        mem: &mut dyn PageMemory,
        out: &mut Vec<SegOut>,
    ) -> Result<(), TcpError> {
        if let Ok(l) = self.listener_mut(h) {
            let port = l.local.port();
            let pending: Vec<u32> = l.accept_q.drain(..).collect();
            self.listeners.remove(&port);
            // Abort queued and half-open children.
            let children: Vec<u32> = self
                .slots
                .iter()
                .enumerate()
                .filter_map(|(i, s)| match &s.sock {
                    Some(Sock::Conn(c)) if c.parent == Some(h.idx) => Some(i as u32),
                    _ => None,
                })
                .chain(pending)
                .collect();
            for i in children {
                if let Some(Slot { sock: Some(Sock::Conn(c)), .. }) = self.slots.get_mut(i as usize) {
                    if let Some(r) = c.abort(mem) {
                        out.push(r);
                    }
                    self.free_slot(i);
                }
            }
            self.free_slot(h.idx);
            return Ok(());
        }
        let c = self.conn_mut(h)?;
        if c.recv_len() > 0 || c.state == State::Closed || c.linger == Some(Duration::ZERO) {
            if let Some(r) = c.abort(mem) {
                out.push(r);
            }
            self.free_slot(h.idx);
            return Ok(());
        }
        c.shutdown_write();
        c.orphan = true;
        if c.state == State::Closed {
            self.free_slot(h.idx);
            return Ok(());
        }
        c.start_linger(now);
        self.mark(h.idx);
        self.schedule(h.idx);
        Ok(())
    }

    /// Aborts with a RST and frees the socket (`SO_LINGER` 0 then close).
    pub(crate) fn abort(
        &mut self,
        h: SocketHandle,
        mem: &mut dyn PageMemory,
        out: &mut Vec<SegOut>,
    ) -> Result<(), TcpError> {
        let c = self.conn_mut(h)?;
        if let Some(r) = c.abort(mem) {
            out.push(r);
        }
        self.free_slot(h.idx);
        Ok(())
    }

    /// Aborts every connection (RST to each synchronized peer) and closes
    /// every listener: what a process exit does to its sockets. Returns the
    /// number of connections aborted.
    #[cold]
    #[inline(never)]
    pub(crate) fn abort_all(&mut self, mem: &mut dyn PageMemory, out: &mut Vec<SegOut>) -> usize {
        let mut n = 0;
        for i in 0..self.slots.len() {
            match self.slots[i].sock.as_mut() {
                Some(Sock::Conn(c)) => {
                    if let Some(r) = c.abort(mem) {
                        out.push(r);
                    }
                    n += 1;
                }
                Some(Sock::Listener(_)) => {}
                None => continue,
            }
            if let Some(Sock::Listener(l)) = &self.slots[i].sock {
                self.listeners.remove(&l.local.port());
            }
            self.free_slot(i as u32);
        }
        n
    }

    /// The connection's state.
    pub fn state(&self, h: SocketHandle) -> Result<State, TcpError> {
        Ok(self.conn(h)?.state)
    }

    /// Whether `read` would return data, EOF or an error.
    pub fn readable(&self, h: SocketHandle) -> bool {
        self.conn(h).map(|c| c.recv_len() > 0 || c.at_eof() || c.read_shut() || c.error.is_some()).unwrap_or(false)
    }

    /// Whether `write` would take at least one byte (or fail), with the
    /// page array's free count as last observed ([`TcpEngine::observe_pages`]).
    pub fn writable(&self, h: SocketHandle) -> bool {
        self.conn(h)
            .map(|c| {
                (c.state.synchronized() && c.can_send() && c.send_room() > 0 && self.pressure_room(h.idx, c, true) > 0)
                    || c.error.is_some()
            })
            .unwrap_or(false)
    }

    /// Free space in the send buffer (0 also when the socket cannot send:
    /// `write` then reports why), with the page array's free count as last
    /// observed ([`TcpEngine::observe_pages`]).
    pub fn send_room(&self, h: SocketHandle) -> Result<usize, TcpError> {
        let c = self.conn(h)?;
        Ok(if c.can_send() && c.error.is_none() { c.send_room().min(self.pressure_room(h.idx, c, true)) } else { 0 })
    }

    /// Bytes queued for sending and not yet acknowledged.
    pub fn send_queued(&self, h: SocketHandle) -> Result<usize, TcpError> {
        Ok(self.conn(h)?.send_queued())
    }

    /// The connection's pending error, if any.
    pub fn error(&self, h: SocketHandle) -> Option<TcpError> {
        self.conn(h).ok().and_then(|c| c.error)
    }

    /// Local and remote addresses.
    pub fn addrs(&self, h: SocketHandle) -> Result<(SocketAddrV4, SocketAddrV4), TcpError> {
        let c = self.conn(h)?;
        Ok((c.local, c.remote))
    }

    /// A one-line description of the connection's sequence space, windows and
    /// timers (for diagnostics and `zcstat`).
    pub fn describe(&self, h: SocketHandle) -> Result<String, TcpError> {
        Ok(self.conn(h)?.describe())
    }

    /// What the connection's out-of-order store holds, and the receive
    /// window it is bounded by.
    pub fn ooo_usage(&self, h: SocketHandle) -> Result<ooo_store::OooUsage, TcpError> {
        Ok(self.conn(h)?.ooo_usage())
    }

    /// `setsockopt`: on a listener the option applies to connections it
    /// accepts from now on; on a connection it takes effect at once
    /// (`SO_REUSEADDR` only matters before `listen`/`connect`: see [`SocketOptions`]).
    pub fn set_option(&mut self, h: SocketHandle, opt: SockOpt, now: Instant) -> Result<(), TcpError> {
        opt.check()?;
        let opt = limits::cap_buffer(&self.cfg, opt);
        let shared = self.shared_cfg.clone();
        if let Ok(l) = self.listener_mut(h) {
            l.opts.set(opt);
            l.conn_cfg = l.opts.conn_config(&shared);
            return Ok(());
        }
        self.conn_mut(h)?.set_option(opt, now);
        self.mark(h.idx);
        self.schedule(h.idx);
        Ok(())
    }

    /// `getsockopt` (`SO_ERROR` returns the pending error and clears it).
    pub fn get_option(&mut self, h: SocketHandle, name: SockOptName) -> Result<SockOpt, TcpError> {
        let (cfg, mtu) = (self.cfg, self.mtu);
        if let Ok(l) = self.listener_mut(h) {
            return Ok(l.opts.get_with_mtu(name, &cfg, mtu));
        }
        Ok(self.conn_mut(h)?.get_option(name))
    }

    /// An ICMP error about one of our segments (see [`Conn::on_icmp`]):
    /// applied to the connection of its 4-tuple if the quoted sequence
    /// number is one of ours in flight; otherwise ignored and counted.
    #[cold]
    #[inline(never)]
    pub(crate) fn icmp_error(&mut self, err: &icmp::IcmpTcpError, mem: &mut dyn PageMemory, stats: &mut Stats) {
        let Some(&idx) = self.conns.get(&(err.local, err.remote)) else {
            stats.drop_icmp_tcp_no_conn += 1;
            return;
        };
        let Some(Slot { sock: Some(Sock::Conn(c)), .. }) = self.slots.get_mut(idx as usize) else { return };
        let was = c.state;
        match c.on_icmp(err.seq, err.error, mem, stats) {
            Err(()) => stats.drop_icmp_tcp_bad_seq += 1,
            Ok(outcome) => {
                stats.tcp_icmp_errors += 1;
                tracing::debug!(local = %err.local, remote = %err.remote, error = ?err.error, "ICMP error applied");
                self.account_pages(idx);
                if outcome == Outcome::Closed {
                    self.finish(idx, was);
                    return;
                }
                self.note(idx);
                self.mark(idx);
                self.schedule(idx);
            }
        }
    }

    /// Smoothed RTT and congestion window, for diagnostics.
    pub fn rtt_cwnd(&self, h: SocketHandle) -> Result<(Option<Duration>, u32), TcpError> {
        let c = self.conn(h)?;
        Ok((c.srtt(), c.cwnd()))
    }

    // ----- engine -----

    /// Handles one received segment addressed to us. `odd` says the
    /// segment combined SYN, FIN and RST and `repr` carries the control bit
    /// RFC 9293's processing order makes effective (see [`odd_flags`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn ingress(
        &mut self,
        now: Instant,
        src: Ipv4Address,
        dst: Ipv4Address,
        repr: &TcpRepr<'_>,
        odd: Option<odd_flags::OddFlags>,
        rx: Option<crate::rx_budget::RxIn<'_>>,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
    ) {
        let remote = SocketAddrV4::new(src, repr.src_port);
        let local = SocketAddrV4::new(dst, repr.dst_port);
        let mut seg = SegIn {
            seq: repr.seq_number.into(),
            ack: repr.ack_number.map(Into::into),
            syn: repr.control == TcpControl::Syn,
            fin: repr.control == TcpControl::Fin,
            rst: repr.control == TcpControl::Rst,
            wnd: repr.window_len,
            mss: repr.max_seg_size,
            wscale: repr.window_scale,
            sack_permitted: repr.sack_permitted,
            sack: repr.sack_ranges,
            ts: repr.timestamp.map(|t| (t.tsval, t.tsecr)),
            payload: repr.payload,
            rx,
        };
        match odd {
            Some(odd_flags::OddFlags::SynFin) => {
                let conn = self.conns.contains_key(&(local, remote));
                let listen = !conn && self.listeners.contains_key(&local.port());
                if listen && self.cfg.drop_synfin {
                    // Linux; FreeBSD's `net.inet.tcp.drop_synfin=1`.
                    stats.drop_tcp_synfin += 1;
                    return;
                }
                stats.tcp_synfin_fin_ignored += 1;
                // To a closed port the FIN counts in SEG.LEN of the RST's
                // ACK (RFC 9293 3.10.7.1); elsewhere it is never reached.
                seg.fin = !conn && !listen;
            }
            Some(odd_flags::OddFlags::RstPlus) => stats.tcp_rst_other_flags_ignored += 1,
            None => {}
        }
        if let Some(&idx) = self.conns.get(&(local, remote)) {
            let Some(Slot { sock: Some(Sock::Conn(c)), .. }) = self.slots.get_mut(idx as usize) else {
                return;
            };
            // A new SYN may reuse a TIME-WAIT pair (RFC 9293 3.6.1).
            if c.state == State::TimeWait
                && seg.syn
                && seg.ack.is_none()
                && c.time_wait_accepts_syn(&seg)
                && self.listeners.contains_key(&local.port())
            {
                self.free_slot(idx);
                self.on_listen_syn(now, local, remote, &seg, stats, out);
                return;
            }
            self.ingress_conn(now, idx, &seg, mem, stats, out);
            return;
        }
        self.ingress_no_conn(now, local, remote, &seg, mem, stats, out);
    }

    /// A segment for no connection: a listener's SYN, the last ACK of a
    /// SYN-cookie handshake, or a RST for a closed port. Out of line so the
    /// established path stays small in the instruction cache.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn ingress_no_conn(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &SegIn<'_>,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
    ) {
        let seg = *seg;
        if seg.syn && seg.ack.is_none() && self.listeners.contains_key(&local.port()) {
            self.on_listen_syn(now, local, remote, &seg, stats, out);
            return;
        }
        // The final ACK of a SYN-cookie handshake.
        if let (Some(ack), false, false, true) =
            (seg.ack, seg.syn, seg.rst, self.cfg.syn_cookies && self.listeners.contains_key(&local.port()))
        {
            if let Some(mss_i) = self.check_cookie(local, remote, seg.seq + u32::MAX, ack + u32::MAX, now) {
                if self.live_sockets() >= self.cfg.max_sockets {
                    stats.tcp_max_sockets_refused += 1;
                    return;
                }
                stats.tcp_syn_cookies_ok += 1;
                self.establish_from_cookie(now, local, remote, &seg, ack + u32::MAX, mss_i, mem, stats, out);
                return;
            }
        }
        // LISTEN (RFC 9293 3.10.7.2): a RST is ignored, and a segment with
        // neither SYN nor ACK is dropped; neither is ever answered. (SYN
        // without ACK was handled above; an ACK falls through to the RST
        // <SEQ=SEG.ACK><CTL=RST> below.)
        if (seg.rst || seg.ack.is_none()) && self.listeners.contains_key(&local.port()) {
            stats.drop_tcp_listen += 1;
            return;
        }
        // No socket: RST (RFC 9293 3.10.7.1), never in answer to a RST.
        stats.drop_tcp_no_socket += 1;
        if !seg.rst && limits::blackholed(&self.cfg, &seg) {
            stats.tcp_blackholed += 1;
        } else if !seg.rst {
            out.push(match seg.ack {
                Some(a) => SegOut::rst(local, remote, a, None),
                None => SegOut::rst(local, remote, Seq(0), Some(seg.seq + seg_len(&seg))),
            });
        }
    }

    #[inline(never)]
    fn on_listen_syn(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &SegIn<'_>,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
    ) {
        let Some(&lidx) = self.listeners.get(&local.port()) else { return };
        let full = self.live_sockets() >= self.cfg.max_sockets;
        let Some(Slot { sock: Some(Sock::Listener(l)), .. }) = self.slots.get_mut(lidx as usize) else { return };
        if l.accept_q.len() >= l.backlog {
            // Nobody is accepting: like Linux, drop and let the peer retry.
            stats.drop_tcp_backlog_full += 1;
            return;
        }
        if full {
            // kern.ipc.maxsockets: no socket for the connection; the peer retries.
            stats.tcp_max_sockets_refused += 1;
            return;
        }
        if l.half_open >= l.backlog {
            if self.cfg.syn_cookies {
                // SYN queue full: answer statelessly (RFC 4987 3.6).
                let cookie = self.cookie(local, remote, seg.seq, mss_index(seg.mss), now);
                let mut s = SegOut::empty(local, remote, cookie);
                s.syn = true;
                s.ack = Some(seg.seq + 1);
                s.mss = Some(COOKIE_MSS[usize::from(mss_index(seg.mss))]);
                s.window = self.cfg.recv_buffer.min(65_535) as u16;
                out.push(s);
                stats.tcp_syn_cookies_sent += 1;
            } else {
                stats.drop_tcp_backlog_full += 1;
            }
            return;
        }
        l.half_open += 1;
        let (opts, cfg) = (l.opts, l.conn_cfg.clone());
        let iss = self.isn(local, remote, now);
        let mut conn = Conn::accept_syn(&cfg, local, remote, iss, self.mtu, seg, now);
        conn.apply_options(&opts, now);
        conn.parent = Some(lidx);
        conn.events_pending = false;
        let idx = self.alloc_slot(Sock::Conn(Box::new(conn)));
        self.conns.insert((local, remote), idx);
        self.mark(idx);
    }

    /// Feeds a segment to connection `idx` and applies the outcome
    /// (accept queue, freeing, notifications, output, timers).
    #[allow(clippy::too_many_arguments)]
    fn ingress_conn(
        &mut self,
        now: Instant,
        idx: u32,
        seg: &SegIn<'_>,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
    ) {
        let Some(Slot { sock: Some(Sock::Conn(c)), .. }) = self.slots.get_mut(idx as usize) else {
            return;
        };
        let was = c.state;
        let outcome = c.on_segment(now, seg, mem, stats, out, &mut self.challenge_budget);
        let pages = c.send_pages(1).0;
        self.pressure.account(idx, pages);
        if c.orphan && c.state == State::FinWait2 && was != State::FinWait2 {
            c.timer_fin2(now + limits::fin_wait2_timeout(&self.cfg));
        }
        let entered_time_wait = c.state == State::TimeWait && was != State::TimeWait;
        let parent = c.parent;
        match outcome {
            Outcome::Established => {
                if let Some(p) = parent {
                    if let Some(Slot { sock: Some(Sock::Listener(l)), .. }) = self.slots.get_mut(p as usize) {
                        l.half_open = l.half_open.saturating_sub(1);
                        l.accept_q.push_back(idx);
                    }
                    self.note_listener(p);
                }
            }
            Outcome::Closed => {
                self.finish(idx, was);
                return;
            }
            Outcome::Ok => {}
        }
        if entered_time_wait && self.on_time_wait(idx, stats) {
            return;
        }
        self.note(idx);
        self.mark(idx);
        self.schedule(idx);
    }

    /// Connection `idx` reached CLOSED (from state `was`): detach it from its
    /// listener and free it, free it if the application already let go, or
    /// keep the slot (unmapped) until the application closes the handle.
    fn finish(&mut self, idx: u32, was: State) {
        let Some(Slot { sock: Some(Sock::Conn(c)), .. }) = self.slots.get(idx as usize) else { return };
        let (parent, orphan, key) = (c.parent, c.orphan, (c.local, c.remote));
        if let Some(p) = parent {
            if let Some(Slot { sock: Some(Sock::Listener(l)), .. }) = self.slots.get_mut(p as usize) {
                if was == State::SynReceived {
                    l.half_open = l.half_open.saturating_sub(1);
                }
                l.accept_q.retain(|&i| i != idx);
            }
            self.free_slot(idx);
        } else if orphan {
            self.free_slot(idx);
        } else {
            self.conns.remove(&key);
            self.note(idx);
        }
    }

    /// RFC 4987 cookie: 5 bits of time (64 s ticks), 3 bits of MSS index, 24
    /// bits of keyed hash over the 4-tuple, the peer's ISN and the time.
    fn cookie(&self, local: SocketAddrV4, remote: SocketAddrV4, peer_isn: Seq, mss_i: u8, now: Instant) -> Seq {
        let t = (now.total_micros() / 64_000_000) as u32 & 31;
        Seq((t << 27) | (u32::from(mss_i) << 24) | self.cookie_hash(local, remote, peer_isn, t))
    }

    fn cookie_hash(&self, local: SocketAddrV4, remote: SocketAddrV4, peer_isn: Seq, t: u32) -> u32 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (self.secret ^ 0xC00C_1E5E_C00C_1E5E).hash(&mut h);
        local.hash(&mut h);
        remote.hash(&mut h);
        peer_isn.0.hash(&mut h);
        t.hash(&mut h);
        (h.finish() as u32) & 0x00ff_ffff
    }

    /// Validates a returned cookie (at most one 64 s tick old); the MSS index.
    fn check_cookie(
        &self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        peer_isn: Seq,
        cookie: Seq,
        now: Instant,
    ) -> Option<u8> {
        let t = cookie.0 >> 27;
        let now_t = (now.total_micros() / 64_000_000) as u32 & 31;
        if now_t.wrapping_sub(t) & 31 > 1 {
            return None;
        }
        let mss_i = ((cookie.0 >> 24) & 7) as u8;
        (usize::from(mss_i) < COOKIE_MSS.len()
            && cookie.0 & 0x00ff_ffff == self.cookie_hash(local, remote, peer_isn, t))
        .then_some(mss_i)
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    fn establish_from_cookie(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &SegIn<'_>,
        iss: Seq,
        mss_i: u8,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
    ) {
        let Some(&lidx) = self.listeners.get(&local.port()) else { return };
        // Rebuild the SYN the cookie stands for (no window scale, SACK or
        // timestamps survive a cookie: RFC 4987 3.6's known limitation).
        let syn = SegIn {
            seq: seg.seq + u32::MAX,
            ack: None,
            syn: true,
            fin: false,
            rst: false,
            wnd: seg.wnd,
            mss: Some(COOKIE_MSS[usize::from(mss_i)]),
            wscale: None,
            sack_permitted: false,
            sack: [None; 3],
            ts: None,
            payload: &[],
            rx: None,
        };
        let (opts, cfg) = match &self.slots[lidx as usize].sock {
            Some(Sock::Listener(l)) => (l.opts, l.conn_cfg.clone()),
            _ => return,
        };
        let mut conn = Conn::accept_syn(&cfg, local, remote, iss, self.mtu, &syn, now);
        conn.apply_options(&opts, now);
        conn.parent = Some(lidx);
        conn.events_pending = false;
        conn.syn_ack_sent();
        let idx = self.alloc_slot(Sock::Conn(Box::new(conn)));
        self.conns.insert((local, remote), idx);
        if let Some(Slot { sock: Some(Sock::Listener(l)), .. }) = self.slots.get_mut(lidx as usize) {
            l.half_open += 1; // the ACK below moves it to the accept queue
        }
        self.ingress_conn(now, idx, seg, mem, stats, out);
    }

    /// Runs the timers due at `now`.
    pub(crate) fn on_timers(
        &mut self,
        now: Instant,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
    ) {
        let mut due = std::mem::take(&mut self.expired);
        self.timers.expire(now, &mut due);
        for (t, idx) in due.drain(..) {
            let Some(Slot { sock: Some(Sock::Conn(c)), .. }) = self.slots.get_mut(idx as usize) else { continue };
            if c.timer_scheduled != Some(t) {
                continue; // stale entry
            }
            c.timer_scheduled = None;
            let was = c.state;
            let closed = c.on_timer(now, mem, stats, out) == Outcome::Closed;
            self.account_pages(idx);
            if closed {
                self.finish(idx, was);
                continue;
            }
            self.note(idx);
            self.mark(idx);
            self.schedule(idx);
        }
        self.expired = due;
    }

    /// Produces the segments of every connection with something to send.
    ///
    /// `tso_max` > 0: new data may leave in frames of up to that many bytes
    /// of TCP payload, cut into MSS-sized segments by the device (TSO);
    /// retransmissions always go one segment at a time.
    pub(crate) fn dispatch(
        &mut self,
        now: Instant,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
        tso_max: u32,
    ) {
        let dirty = std::mem::take(&mut self.dirty);
        for idx in &dirty {
            if let Some(Slot { sock: Some(Sock::Conn(c)), .. }) = self.slots.get_mut(*idx as usize) {
                c.dirty = false;
                c.output(now, mem, stats, out, tso_max);
                let pages = c.send_pages(1).0;
                self.pressure.account(*idx, pages);
            }
            self.schedule(*idx);
        }
        let mut dirty = dirty;
        dirty.clear();
        if self.dirty.is_empty() {
            self.dirty = dirty;
        }
    }

    /// A time by which the next timer may be due (see [`timer::TimerWheel::next_at`]).
    pub fn poll_at(&mut self) -> Option<Instant> {
        self.timers.next_at()
    }

    /// Whether any connection has output pending.
    pub fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }
}

/// The options of an ACK carrying SACK blocks, laid out as Linux and
/// FreeBSD do: `nop, nop, TS` (when `ts` is set) then `nop, nop, SACK`
/// (RFC 2018 3: kind 5, length 2 + 8n; RFC 7323 3.2 for the timestamps),
/// 4-byte aligned, at most 40 bytes: three blocks with timestamps, four
/// without. `None` when there is no block.
fn sack_option_bytes(blocks: &[(u32, u32)], ts: Option<(u32, u32)>) -> Option<OptBytes> {
    let max = if ts.is_some() { 3 } else { 4 };
    let n = blocks.len().min(max);
    if n == 0 {
        return None;
    }
    let mut o = OptBytes { buf: [0; 40], len: 0 };
    if let Some((val, ecr)) = ts {
        o.push(&[1, 1, 8, 10]);
        o.push(&val.to_be_bytes());
        o.push(&ecr.to_be_bytes());
    }
    o.push(&[1, 1, 5, 2 + 8 * n as u8]);
    for &(l, r) in &blocks[..n] {
        o.push(&l.to_be_bytes());
        o.push(&r.to_be_bytes());
    }
    Some(o)
}

/// TCP option bytes in a fixed 40-byte buffer (no allocation per segment).
struct OptBytes {
    buf: [u8; 40],
    len: usize,
}

impl OptBytes {
    /// Appends `b`; the caller keeps the total within 40 bytes.
    fn push(&mut self, b: &[u8]) {
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
    }
}

impl std::ops::Deref for OptBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

fn seg_len(s: &SegIn<'_>) -> u32 {
    s.payload.len() as u32 + u32::from(s.syn) + u32::from(s.fin)
}

#[cfg(test)]
mod emit_tests {
    use super::*;
    use crate::mem::HeapPages;

    /// With checksum offload the field holds the pseudo-header sum for the
    /// device to finish: with the L4 length for a plain frame, without it
    /// for a TSO frame (each cut segment adds its own, DPDK's contract).
    #[test]
    fn offloaded_checksums_leave_the_pseudo_header_sum() {
        let mem = HeapPages::new(1, 64);
        let (src, dst) = (SocketAddrV4::new([10, 0, 0, 1].into(), 80), SocketAddrV4::new([10, 0, 0, 2].into(), 9));
        for tso in [0u16, 1448] {
            let mut s = SegOut::empty(src, dst, Seq(1));
            s.tso_segsz = tso;
            let mut buf = Vec::new();
            s.emit(&mut buf, 0, &mem, true);
            let mut c = Checksum::new();
            let len = if tso > 0 { 0 } else { buf.len() as u16 };
            c.add_pseudo_header(*src.ip(), *dst.ip(), IpProtocol::Tcp, len);
            let field = u16::from_be_bytes([buf[16], buf[17]]);
            assert_eq!(field, !c.finish(), "tso {tso}");
        }
    }

    /// SACK blocks go out as `nop, nop, TS, nop, nop, SACK`: four blocks
    /// without timestamps (40 option bytes), three with (RFC 2018 3); the
    /// checksum covers the options.
    #[test]
    fn sack_option_holds_four_blocks_without_timestamps_and_three_with() {
        let mem = HeapPages::new(1, 64);
        let (src, dst) = (SocketAddrV4::new([10, 0, 0, 1].into(), 80), SocketAddrV4::new([10, 0, 0, 2].into(), 9));
        let blocks = [(10, 20), (30, 40), (50, 60), (70, 80)];
        for (ts, hlen, n) in [(None, 20 + 36, 4usize), (Some((5, 6)), 20 + 12 + 28, 3)] {
            let mut s = SegOut::empty(src, dst, Seq(1));
            (s.ack, s.sack, s.sack_len, s.ts) = (Some(Seq(9)), blocks, 4, ts);
            let mut buf = Vec::new();
            s.emit(&mut buf, 0, &mem, false);
            let pkt = TcpPacket::new_checked(&buf[..]).unwrap();
            assert_eq!(usize::from(pkt.header_len()), hlen);
            assert!(pkt.verify_checksum(&(*src.ip()).into(), &(*dst.ip()).into()));
            let opts = pkt.options();
            let at = if ts.is_some() { 12 } else { 0 };
            assert_eq!(&opts[at..at + 4], &[1, 1, 5, 2 + 8 * n as u8]);
            let got: Vec<(u32, u32)> = opts[at + 4..]
                .chunks(8)
                .map(|c| {
                    (u32::from_be_bytes(c[..4].try_into().unwrap()), u32::from_be_bytes(c[4..].try_into().unwrap()))
                })
                .collect();
            assert_eq!(got, blocks[..n].to_vec());
            let r = TcpRepr::parse(&pkt, &(*src.ip()).into(), &(*dst.ip()).into(), &Default::default()).unwrap();
            assert_eq!(r.timestamp.map(|t| (t.tsval, t.tsecr)), ts);
            assert_eq!(r.sack_ranges, [Some(blocks[0]), Some(blocks[1]), Some(blocks[2])]);
        }
    }
}
