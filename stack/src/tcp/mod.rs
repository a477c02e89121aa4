//! The TCP engine: connection table keyed by 4-tuple (O(1) per segment),
//! listeners with a SYN backlog and an accept queue, a timer heap so idle
//! connections cost nothing per poll, and the socket operations.

mod api;
mod conn;
pub mod cubic;
pub(crate) mod hdr_fast;
pub mod icmp;
mod ingress;
mod limits;
mod listen;
pub(crate) mod odd_flags;
pub mod ooo_store;
mod output;
mod ratelimit;
pub mod recv_queue;
mod rss_port;
pub mod rtt;
mod sack;
mod send_pressure;
pub mod send_queue;
pub mod seq;
pub mod sockopt;
mod table;
pub mod timer;
mod timers;

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};
use std::net::SocketAddrV4;
use std::rc::Rc;

use rustc_hash::FxHashMap;
use thiserror::Error;

pub use api::Readiness;
pub(crate) use conn::{Conn, Outcome, SegIn};
pub(crate) use output::{BurstLimit, PieceTcp, SegOut};
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
    /// An explicit local port whose replies the NIC's RSS would deliver to
    /// another lcore's queue (F-Stack `ff_rss_check` fails;
    /// `EADDRNOTAVAIL`): that stack would never see the connection.
    #[error("local port's RSS queue belongs to another lcore")]
    RssWrongQueue,
}

/// Handle to a TCP socket (listener or connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketHandle {
    idx: u32,
    gen: u32,
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
    /// The last flow `ingress_seg` found in `conns` and its slot (the
    /// one-entry cache in front of the hash, as BSD's `tcp_last_inpcb`):
    /// consecutive segments of one flow skip the hash and probe. Cleared by
    /// every insert into and removal from `conns`, so it always agrees.
    flow_memo: Option<((SocketAddrV4, SocketAddrV4), u32)>,
    listeners: FxHashMap<u16, u32>,
    timers: timer::TimerWheel,
    expired: Vec<(Instant, u32)>,
    /// Entries of `expired` before this were handled (a slice per poll).
    expired_at: usize,
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
    /// The RSS check on connect (`set_rss`).
    rss: rss_port::RssPorts,
    /// Per-stage cycle accounting (off unless a cycle source is set).
    pub(crate) stages: crate::stages::StageClock,
    /// Orphaned TIME-WAIT connections, oldest first (`maxtcptw`).
    time_wait: limits::TimeWaitQueue,
    /// Sockets refused by `max_sockets` since the stack last collected the count.
    sockets_refused: u64,
    /// Emptied payload lists that outgrew their inline room (a burst's
    /// slices, one per page it touches): a GSO burst's once the stack cut
    /// it, a TSO frame's once the device completed it. The next burst takes
    /// one, so bursts allocate nothing in steady state.
    payload_spares: Vec<crate::phy::Payload>,
    /// Boxes of freed connections, for the next ones ([`CONN_SPARES`]):
    /// the boxes themselves are the point (a slot holds a `Box<Conn>`).
    #[allow(clippy::vec_box)]
    conn_spares: Vec<Box<Conn>>,
}

/// Freed connections' boxes kept for new ones (each with its queues'
/// storage): connection churn allocates nothing up to this many closes
/// ahead of opens.
const CONN_SPARES: usize = 256;

/// At most this many spare payload lists are kept: a poll may complete as
/// many TSO frames as a TX ring holds (a few hundred) before its output
/// takes them again.
const PAYLOAD_SPARES: usize = 256;

/// A spare payload list is kept only up to this many slices (12 bytes
/// each): a 64 KiB burst of 4 KiB pages needs 18; a larger one (many small
/// zero-copy buffers) is freed rather than held.
const PAYLOAD_SPARE_SLICES: usize = 64;

const EPHEMERAL: std::ops::RangeInclusive<u16> = 32768..=60999;
/// MSS values a SYN cookie can carry (3 bits).
const COOKIE_MSS: [u16; 6] = [536, 1220, 1360, 1440, 1460, 8960];

fn mss_index(mss: Option<u16>) -> u8 {
    let m = mss.unwrap_or(536);
    COOKIE_MSS.iter().rposition(|&x| x <= m).unwrap_or(0) as u8
}
/// Initial capacity of the per-pass work lists (timers due, connections
/// with output, readiness notes): reused every pass, so they grow only when
/// a pass has more work than any before, never per exchange.
const WORK_LIST: usize = 64;

impl TcpEngine {
    /// An engine for address `local_ip` on a link of `mtu`.
    pub fn new(cfg: TcpConfig, secret: u64, local_ip: Ipv4Address, mtu: usize) -> TcpEngine {
        TcpEngine {
            slots: Vec::new(),
            free: Vec::new(),
            conns: FxHashMap::default(),
            flow_memo: None,
            listeners: FxHashMap::default(),
            timers: timer::TimerWheel::default(),
            expired: Vec::with_capacity(WORK_LIST),
            expired_at: 0,
            dirty: Vec::with_capacity(WORK_LIST),
            next_port: *EPHEMERAL.start() + (secret % 20000) as u16,
            cfg,
            shared_cfg: Rc::new(cfg),
            secret,
            local_ip,
            mtu,
            notify: Vec::with_capacity(WORK_LIST),
            challenge_budget: ratelimit::ChallengeBudget::new(secret),
            pressure: send_pressure::SendPressure::default(),
            pressure_limited: 0,
            rss: Default::default(),
            stages: Default::default(),
            time_wait: limits::TimeWaitQueue::default(),
            sockets_refused: 0,
            payload_spares: Vec::new(),
            conn_spares: Vec::new(),
        }
    }

    /// Keeps `p`, emptied, for a later burst when it outgrew its inline
    /// room (and fewer than [`PAYLOAD_SPARES`] are kept); else drops it.
    /// The caller has released the page references it held.
    pub(crate) fn recycle_payload(&mut self, mut p: crate::phy::Payload) {
        if p.spilled() && p.capacity() <= PAYLOAD_SPARE_SLICES && self.payload_spares.len() < PAYLOAD_SPARES {
            p.clear();
            self.payload_spares.push(p);
        }
    }

    /// An empty slice list for `n` slices, with no room reserved (the
    /// caller reserves once it knows `n` is sane): a kept spare (see
    /// [`TcpEngine::recycle_payload`]) when `n` outgrows the inline room and
    /// fits a kept list, so a zero-copy buffer of 3 to
    /// [`PAYLOAD_SPARE_SLICES`] pages allocates nothing in steady state.
    pub(crate) fn payload_list(&mut self, n: usize) -> crate::phy::Payload {
        if n > 2 && n <= PAYLOAD_SPARE_SLICES {
            self.payload_spares.pop().unwrap_or_default()
        } else {
            Default::default()
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

    /// Bytes of queue storage kept in freed connections' boxes for reuse.
    pub fn spare_conn_bytes(&self) -> usize {
        self.conn_spares.iter().map(|c| std::mem::size_of::<Conn>() + c.storage_bytes()).sum()
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

    /// Forgets the sockets whose readiness may have changed (nobody is
    /// registered to hear about them), so the list stays bounded for
    /// applications that never call `poll_events`.
    pub(crate) fn clear_notifications(&mut self) {
        self.notify.clear();
    }

    /// Whether sockets changed since [`TcpEngine::take_notifications`].
    #[inline]
    pub fn has_notifications(&self) -> bool {
        !self.notify.is_empty()
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

    /// The peer's FIN was received in order (RFC 9293 §3.10.7.4, eighth
    /// step: CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT) or the connection is
    /// gone: no more data can arrive, though queued data may remain to be
    /// read (Linux's `EPOLLRDHUP`, FreeBSD's `EV_EOF`). [`Self::hung_up`]
    /// additionally waits for the queue to drain.
    pub fn peer_closed(&self, h: SocketHandle) -> bool {
        self.conn(h).map(api::conn_peer_closed).unwrap_or(true)
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

    // ----- socket operations -----

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
        let port = self.choose_local_port(remote, local_port)?;
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
            port
        };
        let local = SocketAddrV4::new(self.local_ip, port);
        let iss = self.isn(local, remote, now);
        let cfg = opts.conn_config(&self.shared_cfg);
        let mut conn = Conn::connect(&cfg, local, remote, iss, self.mtu, now);
        conn.apply_options(opts, now);
        let idx = self.alloc_conn(conn);
        self.conns.insert((local, remote), idx);
        self.flow_memo = None;
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

    // ----- engine -----
}
