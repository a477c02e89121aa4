//! One TCP connection: the RFC 9293 state machine, sans-IO. Segments come in
//! through [`Conn::on_segment`], time through [`Conn::on_timer`], and
//! [`Conn::output`] produces what must be sent now.

mod ack;
mod congestion;
mod input;
mod output;
mod timers;

use std::net::SocketAddrV4;
use std::rc::Rc;

use super::cubic::Cubic;
use super::ratelimit::{ChallengeBudget, ConnLimiter};
use super::recv_queue::{Inserted, RecvQueue};
use super::rtt::RttEstimator;
use super::sack::Scoreboard;
use super::send_queue::SendQueue;
use super::seq::Seq;
use super::{SegOut, SockOpt, SockOptName, SocketOptions, State, TcpError};
use crate::config::CongestionControl;
use crate::config::TcpConfig;
use crate::mem::PageMemory;
use crate::stats::Stats;
use crate::time::{Duration, Instant};

/// A parsed incoming segment.
#[derive(Clone, Copy)]
pub(crate) struct SegIn<'a> {
    pub seq: Seq,
    pub ack: Option<Seq>,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub wnd: u16,
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    pub sack: [Option<(u32, u32)>; 3],
    /// RFC 7323 timestamps option (TSval, TSecr).
    pub ts: Option<(u32, u32)>,
    pub payload: &'a [u8],
    /// The received frame `payload` lies in, when the device handed it over
    /// (zero-copy receive keeps the payload there), admitted by the
    /// receive budget.
    pub rx: Option<crate::rx_budget::RxIn<'a>>,
}

impl SegIn<'_> {
    fn len(&self) -> u32 {
        self.payload.len() as u32 + u32::from(self.syn) + u32::from(self.fin)
    }
}

/// What the engine must do after a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Nothing special.
    Ok,
    /// A passive connection became established (move it to the accept queue).
    Established,
    /// The connection is finished and can be freed.
    Closed,
}

#[derive(Debug)]
pub(crate) struct Conn {
    pub state: State,
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    /// Listener slot of a passively opened connection until accepted.
    pub parent: Option<u32>,
    pub error: Option<TcpError>,
    /// The application dropped its handle; free once the protocol is done.
    pub orphan: bool,
    pub timer_scheduled: Option<Instant>,
    /// The earliest deadline set since the timer was last re-armed
    /// (`Conn::note_deadline`); `tcp::table::rearm` takes it.
    pub deadline_new: Option<Instant>,
    pub dirty: bool,
    /// Readiness changed since the application last looked (edge-triggered events).
    pub events_pending: bool,

    // Send side.
    iss: Seq,
    snd_una: Seq,
    snd_nxt: Seq,
    snd_max: Seq,
    snd_wnd: u32,
    max_snd_wnd: u32,
    snd_wl1: Seq,
    snd_wl2: Seq,
    snd_wscale: u8,
    rcv_wscale: u8,
    mss: u32,
    our_mss: u16,
    sendq: SendQueue,
    pub send_cap: usize,
    fin_queued: bool,
    /// Our FIN has been acknowledged: nothing of ours is left to (re)send.
    fin_acked: bool,

    // Receive side.
    irs: Seq,
    rcv_nxt: Seq,
    rcvq: RecvQueue,
    pub recv_cap: usize,
    rcv_adv: Seq,
    fin_seq_in: Option<Seq>,
    peer_fin: bool,

    // Acknowledgements.
    ack_now: bool,
    /// A pure duplicate ACK is owed (out-of-order arrival): sent even when data
    /// goes out, because ACKs riding on data do not count as duplicates.
    dupack_now: bool,
    delack_at: Option<Instant>,
    segs_since_ack: u32,
    /// Limits ACKs to rejected segments and challenge ACKs (RFC 5961 7).
    ack_limiter: ConnLimiter,

    // Retransmission.
    rtt: RttEstimator,
    rtx_at: Option<Instant>,
    retries: u32,
    rtt_probe: Option<(Seq, Instant)>,

    // Congestion control (NewReno, or CUBIC in congestion avoidance).
    cubic: Option<Cubic>,
    cwnd: u32,
    ssthresh: u32,
    dupacks: u32,
    recover: Option<Seq>,
    /// After a retransmission timeout: snd_max when it fired. No fast
    /// recovery starts until snd_una reaches it (RFC 6582 4, RFC 6675 5.1);
    /// meanwhile the sender resends from snd_una in slow start, skipping
    /// SACKed data.
    rto_point: Option<Seq>,
    rtx_one: bool,
    /// SACK negotiated (RFC 2018).
    sack_ok: bool,
    /// Timestamps negotiated (RFC 7323).
    ts_ok: bool,
    /// TS.Recent: the peer's latest valid TSval.
    ts_recent: u32,
    /// When TS.Recent was set (it expires after 24 days, RFC 7323 5.5).
    ts_recent_at: Instant,
    /// Our TSval clock right now (milliseconds plus a per-connection offset).
    ts_now: u32,
    /// SACKed ranges above snd_una, sorted and merged (RFC 6675 scoreboard).
    scoreboard: Scoreboard,
    /// Highest sequence retransmitted in this recovery (RFC 6675 HighRxt).
    high_rxt: Seq,
    /// Segments RFC 3042 lets out beyond cwnd.
    limited_transmit: u32,

    timewait_at: Option<Instant>,
    persist_at: Option<Instant>,
    persist_backoff: u32,
    /// The persist timer fired: a window probe is due (RFC 9293 3.8.6.1).
    probe_due: bool,
    keepalive: bool,
    keepalive_at: Option<Instant>,
    ka_probes: u32,
    ka_probe_due: bool,
    last_rx: Instant,
    pub nodelay: bool,
    /// `SO_LINGER`.
    pub linger: Option<Duration>,
    /// When a lingering close gives up and resets.
    linger_at: Option<Instant>,
    reuse_addr: bool,
    /// Shared by every connection with the same options (one copy per listener).
    cfg: Rc<TcpConfig>,
    /// `error` was reported to the application once (by a read, a write or
    /// `SO_ERROR`): reads now return end of stream and writes `EPIPE`.
    pub error_reported: bool,
    /// The latest soft error (an ICMP error that may be transient, RFC 1122
    /// 4.2.3.9): reported instead of `TimedOut` if the connection times out.
    soft_error: Option<TcpError>,
    /// `shutdown(SHUT_RD)`: received data is acknowledged and discarded.
    rd_shut: bool,
}

/// The MSS for a link or path of `mtu` bytes: the MTU less 40 bytes of
/// IPv4 and TCP headers, within 64..=65,495.
pub(crate) fn mss_for_mtu(mtu: usize) -> u16 {
    mtu.saturating_sub(40).clamp(64, 65_495) as u16
}

/// The largest window we can advertise unscaled.
const MAX_WIN: u32 = 65_535;
/// TS.Recent older than this is invalid for PAWS (RFC 7323 5.5: 24 days).
const PAWS_IDLE: Duration = Duration::from_secs(24 * 24 * 3600);
/// Timestamp ticks a segment's TSval may trail TS.Recent and still pass
/// PAWS (Linux's `TCP_PAWS_WINDOW`): a segment reordered by up to one tick
/// of the peer's clock — as when a flow moves between RX queues and an
/// older frame is steered in after a newer one — is not an old duplicate.
/// Duplicates from a previous incarnation trail by far more.
pub(super) const PAWS_WINDOW: i32 = 1;

impl Conn {
    /// Readies a freed connection's box for reuse: received frames released
    /// now (their receive-budget charges with them), a grown ring or queue
    /// storage freed ([`SendQueue::shrink_storage`],
    /// [`RecvQueue::shrink_storage`]). False, and nothing kept, while the
    /// send queue still holds bytes (the box is dropped, as before).
    pub(crate) fn scrub_for_reuse(&mut self) -> bool {
        if !self.sendq.is_empty() {
            return false;
        }
        self.rcvq.clear();
        self.sendq.shrink_storage();
        self.rcvq.shrink_storage();
        true
    }

    /// Bytes of queue storage this connection holds (for spares' accounting).
    pub(crate) fn storage_bytes(&self) -> usize {
        self.sendq.storage_bytes() + self.rcvq.storage_bytes()
    }

    /// Takes over `old`'s queue storage where it is empty (a freed
    /// connection's, for this new one): no allocation for the first segments.
    pub(crate) fn adopt_storage(&mut self, old: &mut Conn) {
        self.sendq.adopt_storage(&mut old.sendq);
        self.rcvq.adopt_storage(&mut old.rcvq);
    }

    fn new(cfg: &Rc<TcpConfig>, local: SocketAddrV4, remote: SocketAddrV4, iss: Seq, mtu: usize, now: Instant) -> Conn {
        let our_mss = mss_for_mtu(mtu);
        Conn {
            state: State::Closed,
            local,
            remote,
            parent: None,
            error: None,
            orphan: false,
            timer_scheduled: None,
            deadline_new: None,
            dirty: false,
            events_pending: true,
            iss,
            snd_una: iss,
            snd_nxt: iss,
            snd_max: iss,
            snd_wnd: 0,
            max_snd_wnd: 0,
            snd_wl1: Seq(0),
            snd_wl2: iss,
            snd_wscale: 0,
            rcv_wscale: 0,
            mss: 536,
            our_mss,
            sendq: SendQueue::default(),
            send_cap: cfg.send_buffer,
            fin_queued: false,
            fin_acked: false,
            irs: Seq(0),
            rcv_nxt: Seq(0),
            rcvq: RecvQueue::default(),
            recv_cap: cfg.recv_buffer,
            rcv_adv: Seq(0),
            fin_seq_in: None,
            peer_fin: false,
            ack_now: false,
            dupack_now: false,
            delack_at: None,
            segs_since_ack: 0,
            ack_limiter: ConnLimiter::default(),
            rtt: RttEstimator::new(cfg.initial_rto, cfg.min_rto, cfg.max_rto),
            rtx_at: None,
            retries: 0,
            rtt_probe: None,
            cubic: (cfg.congestion == CongestionControl::Cubic).then(Cubic::default),
            cwnd: 0,
            ssthresh: u32::MAX,
            dupacks: 0,
            recover: None,
            rto_point: None,
            rtx_one: false,
            sack_ok: false,
            ts_ok: false,
            ts_recent: 0,
            ts_recent_at: now,
            ts_now: 0,
            scoreboard: Scoreboard::default(),
            high_rxt: Seq(0),
            limited_transmit: 0,
            timewait_at: None,
            persist_at: None,
            persist_backoff: 0,
            probe_due: false,
            keepalive: false,
            keepalive_at: None,
            ka_probes: 0,
            ka_probe_due: false,
            last_rx: now,
            nodelay: cfg.nodelay,
            linger: None,
            linger_at: None,
            reuse_addr: false,
            cfg: cfg.clone(),
            error_reported: false,
            soft_error: None,
            rd_shut: false,
        }
    }

    /// An active open: SYN goes out on the next output.
    pub fn connect(
        cfg: &Rc<TcpConfig>,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: Seq,
        mtu: usize,
        now: Instant,
    ) -> Conn {
        let mut c = Conn::new(cfg, local, remote, iss, mtu, now);
        c.state = State::SynSent;
        c.rcv_wscale = if cfg.offer_window_scale { cfg.window_scale.min(14) } else { 0 };
        c
    }

    /// A passive open from a received SYN: SYN-ACK goes out on the next output.
    pub fn accept_syn(
        cfg: &Rc<TcpConfig>,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        iss: Seq,
        mtu: usize,
        seg: &SegIn<'_>,
        now: Instant,
    ) -> Conn {
        let mut c = Conn::new(cfg, local, remote, iss, mtu, now);
        c.state = State::SynReceived;
        c.irs = seg.seq;
        c.rcv_nxt = seg.seq + 1;
        c.take_syn_options(seg);
        c.snd_wnd = u32::from(seg.wnd); // never scaled in a SYN
        c.max_snd_wnd = c.snd_wnd;
        c.snd_wl1 = seg.seq;
        c
    }

    #[cold]
    #[inline(never)]
    fn take_syn_options(&mut self, seg: &SegIn<'_>) {
        self.mss = u32::from(seg.mss.unwrap_or(536)).clamp(64, u32::from(self.our_mss));
        // RFC 7323 2.2: scaling applies only when both SYNs carry the option.
        let dropped = self.syn_options_dropped();
        match seg.wscale.filter(|_| self.cfg.offer_window_scale && !dropped) {
            Some(ws) => {
                self.snd_wscale = ws.min(14);
                self.rcv_wscale = self.cfg.window_scale.min(14);
            }
            None => {
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
            }
        }
        // RFC 2018 2: SACK only when both sides sent SACK-permitted.
        self.sack_ok = seg.sack_permitted && self.cfg.sack && !dropped;
        // From the first window on, what the device's frames pin (zero-copy
        // receive) scales it: a peer's first flight cannot pin more than
        // the receive buffer.
        if let Some(r) = seg.rx {
            self.rcvq.note_frame(r.footprint());
        }
        if let (Some((tsval, _)), true) = (seg.ts, self.cfg.timestamps && !dropped) {
            self.ts_ok = true;
            self.ts_recent = tsval;
        } else {
            self.ts_ok = false;
        }
        self.cwnd = self.cfg.initial_cwnd_segments.max(1) * self.mss;
        if self.state == State::SynSent {
            // An active open rounds when the SYN-ACK arrives; a passive one
            // once established: its SYN-ACK offers the listener's buffer
            // as it is (FreeBSD: the syncache answers from the listen
            // socket, tcp_mss() runs for the new socket).
            self.round_buffers_to_mss();
        }
    }

    /// With `round_buffers_to_mss`, grows each socket buffer of at least
    /// one segment to a whole number of segments of `mss` bytes (FreeBSD's
    /// `tcp_mss()`); never shrinks one. Idempotent.
    pub(crate) fn round_buffers_to_mss(&mut self) {
        if self.cfg.round_buffers_to_mss {
            let m = self.mss.max(1) as usize;
            for cap in [&mut self.recv_cap, &mut self.send_cap] {
                if *cap >= m {
                    *cap = cap.div_ceil(m) * m;
                }
            }
        }
    }

    /// Advances our TSval clock: milliseconds, offset per connection so the
    /// value reveals nothing about uptime (RFC 7323 7.1).
    fn tick_ts(&mut self, now: Instant) {
        self.ts_now = ((now.total_micros() / 1000) as u32).wrapping_add(self.iss.0.rotate_left(13));
    }

    // ----- application side -----

    /// Bytes the application can read now.
    pub fn recv_len(&self) -> usize {
        self.rcvq.len()
    }

    /// Received bytes held out of order and memory the ready data pins
    /// (bytes), for [`crate::stack::MemoryUsage`].
    pub fn recv_memory(&self) -> (usize, usize) {
        (self.rcvq.ooo_bytes(), self.rcvq.held())
    }

    /// The peer closed its side and everything before the FIN was read.
    pub fn at_eof(&self) -> bool {
        self.peer_fin && self.rcvq.is_empty()
    }

    /// Free space in the send buffer.
    pub fn send_room(&self) -> usize {
        self.send_cap.saturating_sub(self.sendq.len())
    }

    /// Bytes queued and not yet acknowledged.
    pub fn send_queued(&self) -> usize {
        self.sendq.len()
    }

    /// The send queue: pages it holds, and bytes a copy may add to its last
    /// page (pages of `buf_size` bytes), for send pressure.
    #[inline]
    pub fn send_pages(&self, buf_size: usize) -> (usize, usize) {
        (self.sendq.pages_held(), self.sendq.tail_room(buf_size))
    }

    /// Whether new data may still be queued.
    pub fn can_send(&self) -> bool {
        !self.fin_queued
            && self.error.is_none()
            && matches!(self.state, State::SynSent | State::SynReceived | State::Established | State::CloseWait)
    }

    /// Appends filled page slices to the send queue; the queue takes over
    /// their references (zero-copy).
    pub fn write_slices(&mut self, slices: impl IntoIterator<Item = crate::mem::PageSlice>) {
        for s in slices {
            self.sendq.push_slice(s);
        }
    }

    /// Grows the last zero-copy chunk by what fits of `s` when contiguous
    /// (see [`SendQueue::extend_tail`]); the bytes taken.
    pub fn extend_shared(&mut self, s: crate::mem::PageSlice) -> usize {
        let room = self.send_room();
        self.sendq.extend_tail(s, room)
    }

    /// Whether the last application range written ended at byte `at` of `page`.
    pub fn shared_ended_at(&self, page: crate::mem::PageId, at: u32) -> bool {
        self.sendq.last_src_ended_at(page, at)
    }

    /// Copies what fits of `data` into the send queue.
    #[inline]
    pub fn write<M: PageMemory + ?Sized>(&mut self, src: crate::tcp::send_queue::CopySrc<'_>, mem: &mut M) -> usize {
        let room = self.send_room();
        self.sendq.push_copy_from(src, room, mem)
    }

    /// Reads received bytes; sends a window update when the window opened a lot.
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        if self.rcvq.is_empty() {
            return 0;
        }
        let held = self.rcvq.held();
        let n = self.rcvq.read(buf);
        self.window_update(held, n);
        n
    }

    /// Takes the next piece of received data without copying it.
    pub fn read_zc(&mut self) -> Option<crate::zc::RxView> {
        let held = self.rcvq.held();
        let v = self.rcvq.read_zc();
        self.window_update(held, v.as_ref().map_or(0, |v| v.len()));
        v
    }

    /// Copies ready bytes into `bufs` in order, each filled before the
    /// next, without consuming them (`MSG_PEEK`).
    pub fn peek_vectored(&self, bufs: &mut [&mut [u8]]) -> usize {
        self.rcvq.peek_vectored(bufs)
    }

    /// `shutdown(SHUT_RD)` (BSD semantics): what is queued is discarded now,
    /// and data arriving later is acknowledged (the window stays open) and
    /// discarded; reads return end of stream.
    #[cold]
    #[inline(never)]
    pub fn shutdown_read(&mut self) {
        self.rd_shut = true;
        self.rcvq.discard_ready();
        self.events_pending = true;
    }

    /// Whether the application shut the receive side (`SHUT_RD`).
    pub fn read_shut(&self) -> bool {
        self.rd_shut
    }

    /// The pending error, reported once (Linux `sock_error`): `Some` the
    /// first time, `None` afterwards (the connection stays failed:
    /// `error` keeps the reason, reads give end of stream, writes `EPIPE`).
    #[cold]
    #[inline(never)]
    pub fn take_error(&mut self) -> Option<TcpError> {
        let e = self.error.filter(|_| !self.error_reported);
        self.error_reported |= e.is_some();
        e
    }

    /// After the application consumed `n` bytes, the receive queue having
    /// pinned `held_before` bytes before: an ACK announcing the window if
    /// it reopened from (near) zero or grew by two segments.
    fn window_update(&mut self, held_before: usize, n: usize) {
        if n > 0 && self.state.synchronized() && !self.peer_fin {
            let advertised = self.rcv_adv.since(self.rcv_nxt);
            // The window grows by at most the memory the read freed (the
            // scaling of `rcv_window` never exceeds 1:1): an advertised
            // window of a segment or more and less than two segments freed
            // cannot call for an update, and need no window computed.
            let freed = held_before.saturating_sub(self.rcvq.held());
            if advertised >= self.mss && freed < 2 * self.mss as usize {
                return;
            }
            let before = self.rcv_window_held(held_before);
            let after = self.rcv_window();
            // Window update when it reopened from (near) zero or by two segments.
            let grew = after.saturating_sub(before);
            // Growth alone must also be a quarter of the buffer, unless the
            // window was down to an eighth or the buffer holds at most eight
            // segments (FreeBSD tcp_output's rule; Linux waits for the
            // window to double): no ACK per small read of a large buffer.
            let cap = self.recv_cap as u32;
            let large = grew >= cap / 4 || advertised <= cap / 8 || cap <= 8 * self.mss;
            if (advertised < self.mss && after >= self.mss)
                || grew >= 2 * self.mss && after > advertised + 2 * self.mss && large
            {
                self.ack_now = true;
            }
        }
    }

    /// Half-close: a FIN follows the queued data.
    pub fn shutdown_write(&mut self) {
        if !self.fin_queued {
            self.fin_queued = true;
            match self.state {
                State::SynSent => self.state = State::Closed,
                State::Established | State::SynReceived => self.state = State::FinWait1,
                State::CloseWait => self.state = State::LastAck,
                _ => {}
            }
        }
    }

    /// Aborts: the caller sends a RST (if synchronized) and frees the connection.
    #[cold]
    #[inline(never)]
    pub fn abort(&mut self, mem: &mut dyn PageMemory) -> Option<SegOut> {
        let rst = if self.state.synchronized() || self.state == State::SynReceived {
            Some(SegOut::rst(self.local, self.remote, self.snd_nxt, Some(self.rcv_nxt)))
        } else {
            None
        };
        self.release(mem);
        self.state = State::Closed;
        rst
    }

    /// Applies the options a new connection starts with (buffers and
    /// `TCP_NODELAY` already came in through its config).
    pub fn apply_options(&mut self, opts: &SocketOptions, now: Instant) {
        self.linger = opts.linger;
        self.reuse_addr = opts.reuse_addr;
        if let Some(m) = opts.max_seg {
            self.clamp_mss(m);
        }
        if opts.keepalive {
            self.set_keepalive(true, now);
        }
    }

    /// `setsockopt` on a live connection.
    pub fn set_option(&mut self, opt: SockOpt, now: Instant) {
        match opt {
            SockOpt::SendBuffer(b) => self.send_cap = b.max(1),
            SockOpt::RecvBuffer(b) => self.recv_cap = b.max(1),
            SockOpt::NoDelay(on) => self.nodelay = on,
            SockOpt::KeepAlive(on) => self.set_keepalive(on, now),
            SockOpt::Linger(l) => self.linger = l,
            SockOpt::ReuseAddr(on) => self.reuse_addr = on,
            SockOpt::MaxSeg(0) | SockOpt::Error(_) => {}
            SockOpt::MaxSeg(m) => self.clamp_mss(m),
        }
    }

    /// `TCP_MAXSEG` set to `m`: before our SYN leaves it caps the MSS we
    /// offer; it caps the segment size used from now on.
    #[cold]
    #[inline(never)]
    fn clamp_mss(&mut self, m: u16) {
        let m = m.max(super::sockopt::MIN_USER_MSS);
        if !self.state.synchronized() && self.snd_nxt == self.iss {
            self.our_mss = self.our_mss.min(m);
        }
        if self.mss > u32::from(m) {
            let unsent_handshake = !self.state.synchronized();
            self.mss = u32::from(m);
            if unsent_handshake && self.cwnd > 0 {
                self.cwnd = self.cfg.initial_cwnd_segments.max(1) * self.mss;
            }
        }
    }

    /// Payload bytes of a full segment (`TCP_MAXSEG` get): the MSS less the
    /// timestamp option, as Linux's `mss_cache`; before the peer's SYN is
    /// seen, the MSS we offer.
    fn effective_mss(&self) -> u16 {
        if matches!(self.state, State::SynSent) || (self.state == State::Closed && self.irs == Seq(0)) {
            return self.our_mss;
        }
        let ts = if self.ts_ok { 12 } else { 0 };
        self.mss.saturating_sub(ts).max(1) as u16
    }

    /// `getsockopt` on a live connection (`SO_ERROR` clears the pending error).
    pub fn get_option(&mut self, name: SockOptName) -> SockOpt {
        match name {
            SockOptName::SendBuffer => SockOpt::SendBuffer(self.send_cap),
            SockOptName::RecvBuffer => SockOpt::RecvBuffer(self.recv_cap),
            SockOptName::NoDelay => SockOpt::NoDelay(self.nodelay),
            SockOptName::KeepAlive => SockOpt::KeepAlive(self.keepalive),
            SockOptName::Linger => SockOpt::Linger(self.linger),
            SockOptName::ReuseAddr => SockOpt::ReuseAddr(self.reuse_addr),
            SockOptName::MaxSeg => SockOpt::MaxSeg(self.effective_mss()),
            SockOptName::Error => SockOpt::Error(self.take_error()),
        }
    }

    /// Releases every page reference held.
    pub fn release(&mut self, mem: &mut dyn PageMemory) {
        let _ = self.sendq.clear(mem);
        self.rcvq.clear();
    }

    /// A one-line summary of sequence space and windows, for diagnostics.
    pub fn describe(&self) -> String {
        format!(
            "{:?} una={} nxt={} max={} wnd={} cwnd={} ssth={} rec={:?} hrx={} q={} | rnxt={} radv={} rq={} ooo={}/{} fin_in={:?} peer_fin={} retries={} rto={}",
            self.state,
            self.snd_una.0,
            self.snd_nxt.0,
            self.snd_max.0,
            self.snd_wnd,
            self.cwnd,
            self.ssthresh,
            self.recover.map(|r| r.0),
            self.high_rxt.0,
            self.sendq.len(),
            self.rcv_nxt.0,
            self.rcv_adv.0,
            self.rcvq.len(),
            self.rcvq.ooo_segments(),
            self.rcvq.ooo_bytes(),
            self.fin_seq_in.map(|f| f.0),
            self.peer_fin,
            self.retries,
            self.rtt.rto(),
        )
    }

    /// The out-of-order store's holdings and the window advertised, bytes.
    pub fn ooo_usage(&self) -> super::ooo_store::OooUsage {
        super::ooo_store::OooUsage {
            bytes: self.rcvq.ooo_bytes(),
            payload: self.rcvq.ooo_payload(),
            ranges: self.rcvq.ooo_segments(),
            window: self.rcv_adv.max(self.rcv_nxt).since(self.rcv_nxt) as usize,
        }
    }

    /// Smoothed RTT, once measured.
    pub fn srtt(&self) -> Option<Duration> {
        self.rtt.srtt()
    }

    /// Congestion window in bytes.
    pub fn cwnd(&self) -> u32 {
        self.cwnd
    }

    // ----- helpers -----

    fn data_start(&self) -> Seq {
        if self.snd_una == self.iss {
            self.iss + 1
        } else {
            self.snd_una
        }
    }

    fn fin_seq(&self) -> Option<Seq> {
        (self.fin_queued && !self.fin_acked).then(|| self.data_start() + self.sendq.len() as u32)
    }

    /// Whether sent, unacknowledged *data* exists (our FIN alone does not
    /// count): RFC 5681 2's duplicate-ACK definition, condition (a).
    fn data_outstanding(&self) -> bool {
        let data_max = match self.fin_seq() {
            Some(f) if self.snd_max > f => f,
            _ => self.snd_max,
        };
        data_max > self.snd_una
    }

    fn rcv_window(&self) -> u32 {
        self.rcv_window_held(self.rcvq.held())
    }

    /// [`Conn::rcv_window`] as it is while the ready data pins `held`
    /// bytes (the window before a read, computed after it).
    fn rcv_window_held(&self, held: usize) -> u32 {
        let free =
            self.rcvq.window_for(self.recv_cap.saturating_sub(held + self.rcvq.ooo_bytes()), usize::from(self.our_mss));
        (free as u64).min(u64::from(MAX_WIN) << self.rcv_wscale) as u32
    }

    // ----- input -----

    // ----- ICMP -----

    // ----- timers -----
}

impl Conn {}

#[cfg(test)]
mod size_tests {
    #[test]
    fn connection_state_is_small() {
        let n = std::mem::size_of::<super::Conn>();
        eprintln!("size_of::<Conn>() = {n}");
        assert!(n <= 1024, "{n}");
    }
}
