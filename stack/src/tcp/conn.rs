//! One TCP connection: the RFC 9293 state machine, sans-IO. Segments come in
//! through [`Conn::on_segment`], time through [`Conn::on_timer`], and
//! [`Conn::output`] produces what must be sent now.

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

impl Conn {
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
    pub fn write(&mut self, src: crate::tcp::send_queue::CopySrc<'_>, mem: &mut dyn PageMemory) -> usize {
        let room = self.send_room();
        self.sendq.push_copy_from(src, room, mem)
    }

    /// Reads received bytes; sends a window update when the window opened a lot.
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        if self.rcvq.is_empty() {
            return 0;
        }
        let before = self.rcv_window();
        let n = self.rcvq.read(buf);
        self.window_update(before, n);
        n
    }

    /// Takes the next piece of received data without copying it.
    pub fn read_zc(&mut self) -> Option<crate::zc::RxView> {
        let before = self.rcv_window();
        let v = self.rcvq.read_zc();
        self.window_update(before, v.as_ref().map_or(0, |v| v.len()));
        v
    }

    /// Copies up to `buf.len()` ready bytes without consuming them (`MSG_PEEK`).
    pub fn peek(&self, buf: &mut [u8]) -> usize {
        self.rcvq.peek(buf)
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

    /// After the application consumed `n` bytes: an ACK announcing the
    /// window if it reopened from (near) zero or grew by two segments.
    fn window_update(&mut self, before: u32, n: usize) {
        let after = self.rcv_window();
        if n > 0 && self.state.synchronized() && !self.peer_fin {
            // Window update when it reopened from (near) zero or by two segments.
            let grew = after.saturating_sub(before);
            let advertised = self.rcv_adv.since(self.rcv_nxt);
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

    /// Enables keepalive probing.
    pub fn set_keepalive(&mut self, on: bool, now: Instant) {
        self.keepalive = on;
        self.keepalive_at = on.then(|| now + self.cfg.keepalive_idle);
        self.ka_probes = 0;
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

    /// A close with `SO_LINGER` set to a timeout: if our data and FIN are not
    /// acknowledged by then, the connection is reset.
    pub fn start_linger(&mut self, now: Instant) {
        if let Some(t) = self.linger {
            self.linger_at = Some(now + t);
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
        let free = self.rcvq.window_for(
            self.recv_cap.saturating_sub(self.rcvq.held() + self.rcvq.ooo_bytes()),
            usize::from(self.our_mss),
        );
        (free as u64).min(u64::from(MAX_WIN) << self.rcv_wscale) as u32
    }

    /// The window field for an outgoing segment; never shrinks the right edge
    /// (RFC 9293 3.8.6.2.2) and avoids silly small increases (RFC 1122 4.2.3.3).
    fn advertise(&mut self) -> u16 {
        let win = self.rcv_window();
        let new_right = self.rcv_nxt + win;
        let cur = self.rcv_adv.max(self.rcv_nxt);
        let step = (self.recv_cap as u32 / 2).min(self.mss).max(1);
        // An empty buffer an application can still read into is offered
        // whole even when only the 16-bit field (not the buffer) limits it,
        // e.g. after a FIN took one number: RFC 1122 4.2.3.3 guards against
        // small windows of a full buffer. An orphan (closed by its
        // application) keeps its right edge, as FreeBSD's TIME-WAIT does.
        let empty = || self.rcvq.held() + self.rcvq.ooo_bytes() == 0 && !self.orphan && !self.rd_shut;
        if new_right > cur && (new_right.since(cur) >= step || win as usize == self.recv_cap || empty()) {
            self.rcv_adv = new_right;
        } else if self.rcv_adv < self.rcv_nxt {
            self.rcv_adv = self.rcv_nxt;
        }
        (self.rcv_adv.since(self.rcv_nxt) >> self.rcv_wscale).min(MAX_WIN) as u16
    }

    fn in_flight(&self) -> u32 {
        self.snd_max.since(self.snd_una)
    }

    /// The new ssthresh after a congestion event: half the flight for
    /// NewReno (RFC 5681 eq. 4), beta = 0.7 of the window for CUBIC.
    fn decrease(&mut self) -> u32 {
        let (w, flight, mss) = (self.cwnd.max(self.in_flight()), self.in_flight(), self.mss);
        match self.cubic.as_mut() {
            Some(c) => c.on_congestion(w, mss),
            None => (flight / 2).max(2 * mss),
        }
    }

    /// Payload bytes a segment may carry now: the MSS less the TCP options we
    /// put on data segments (SACK blocks while we hold out-of-order data), so
    /// frames never exceed the MTU (RFC 6691).
    fn seg_payload_max(&self) -> u32 {
        // As `SegOut::emit` lays them out: `nop, nop, TS` (12 bytes) and
        // `nop, nop, SACK` (4 + 8 per block).
        let ts = if self.ts_ok { 12 } else { 0 };
        let sack = if self.sack_ok && self.rcvq.has_hole() {
            4 + 8 * self.sack_blocks().iter().flatten().count() as u32
        } else {
            0
        };
        let opt = (ts + sack).div_ceil(4) * 4;
        self.mss.saturating_sub(opt).max(1)
    }

    fn pipe(&self) -> u32 {
        if self.sack_ok {
            self.scoreboard.pipe(self.snd_una, self.snd_max, self.high_rxt, self.mss)
        } else {
            self.in_flight()
        }
    }

    fn arm_rtx(&mut self, now: Instant) {
        self.rtx_at = Some(now + self.rtt.rto_with_slop(self.cfg.rto_slop));
    }

    #[cold]
    #[inline(never)]
    fn enter_time_wait(&mut self, now: Instant, mem: &mut dyn PageMemory) {
        self.state = State::TimeWait;
        self.timewait_at = Some(now + self.cfg.msl.saturating_mul(2));
        self.rtx_at = None;
        self.persist_at = None;
        self.keepalive_at = None;
        self.linger_at = None;
        let _ = self.sendq.clear(mem);
    }

    /// The earliest timer of this connection.
    pub fn next_timer(&self) -> Option<Instant> {
        // A plain fold: the iterator-of-Options form compiled to a loop
        // over a stack copy of all six on every schedule().
        let earliest = |a: Option<Instant>, b: Option<Instant>| match (a, b) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, None) | (None, x) => x,
        };
        let a = earliest(self.rtx_at, self.delack_at);
        let b = earliest(self.timewait_at, self.persist_at);
        let c = earliest(self.keepalive_at, self.linger_at);
        earliest(earliest(a, b), c)
    }

    /// Marks the SYN-ACK as already sent (a SYN-cookie connection: the cookie
    /// was our ISS and its SYN-ACK went out statelessly).
    pub fn syn_ack_sent(&mut self) {
        self.snd_nxt = self.iss + 1;
        self.snd_max = self.snd_nxt;
        self.rcv_adv = self.rcv_nxt + self.rcv_window().min(MAX_WIN);
    }

    /// Bounds an orphan's wait in FIN-WAIT-2 (Linux `tcp_fin_timeout`).
    pub fn timer_fin2(&mut self, at: Instant) {
        self.timewait_at = Some(at);
    }

    /// Whether output is due without waiting for a timer.
    pub fn wants_output(&self) -> bool {
        self.ack_now
            || self.dupack_now
            || self.rtx_one
            || self.probe_due
            || self.ka_probe_due
            || self.snd_nxt == self.iss
            || self.has_sendable()
    }

    fn has_sendable(&self) -> bool {
        if !self.state.synchronized() {
            return false;
        }
        let end = self.data_start() + self.sendq.len() as u32;
        self.snd_nxt < end || (self.fin_queued && !self.fin_acked && self.snd_nxt == end)
    }

    // ----- input -----

    /// Processes one segment for this connection (RFC 9293 3.10.7.3-4, with
    /// RFC 5961 and RFC 7323 PAWS): the sequence test, then RST, SYN and
    /// ACK checks in that order; a segment failing any of them is dropped
    /// whole (its data and FIN are never delivered) and answered at most
    /// with an ACK, rate-limited per connection and, for challenge ACKs,
    /// engine-wide through `budget` (RFC 5961 7).
    pub fn on_segment(
        &mut self,
        now: Instant,
        seg: &SegIn<'_>,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
        budget: &mut ChallengeBudget,
    ) -> Outcome {
        self.last_rx = now;
        self.tick_ts(now);
        if self.keepalive {
            self.keepalive_at = Some(now + self.cfg.keepalive_idle);
            self.ka_probes = 0;
        }
        if let Some(ack) = self.predicted_ack(seg) {
            // Header prediction: steps 0-5's checks all pass; what is left
            // is what the full path does after them.
            self.take_ts_recent(now, seg);
            if let r @ Outcome::Closed = self.process_ack(now, seg, ack, mem, stats) {
                return r;
            }
            if !seg.payload.is_empty() {
                self.accept_data(now, seg, stats);
            }
            return if self.state == State::Closed { Outcome::Closed } else { Outcome::Ok };
        }
        self.on_segment_full(now, seg, mem, stats, out, budget)
    }

    /// The full RFC 9293 3.10.7 processing of a segment header prediction
    /// did not take; out of line so the fast path stays small in the
    /// instruction cache.
    #[inline(never)]
    fn on_segment_full(
        &mut self,
        now: Instant,
        seg: &SegIn<'_>,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
        budget: &mut ChallengeBudget,
    ) -> Outcome {
        if self.state == State::SynSent {
            return self.on_segment_syn_sent(now, seg, mem, stats, out);
        }
        if self.state == State::Closed {
            return Outcome::Closed;
        }

        // Simultaneous open (RFC 9293 3.5 figure 7): in SYN-RECEIVED the
        // peer's SYN-ACK repeats its SYN (left of the window) but carries the
        // ACK of ours. Only its new part is processed (RFC 9293 3.10.7.4:
        // "only the new parts are processed"): the SYN is trimmed, the ACK
        // completes the handshake, and an ACK answers the duplicate SYN.
        if self.state == State::SynReceived
            && self.parent.is_none()
            && seg.syn
            && !seg.rst
            && seg.ack == Some(self.snd_nxt)
            && seg.seq + 1 == self.rcv_nxt
        {
            let mut trimmed = *seg;
            trimmed.syn = false;
            trimmed.seq = self.rcv_nxt;
            self.ack_now = true;
            return self.on_segment(now, &trimmed, mem, stats, out, budget);
        }

        // 0. PAWS (RFC 7323 5.3 R1): a timestamp older than TS.Recent marks
        // an old duplicate (or a wrapped sequence number): ACK and drop.
        if self.ts_ok && !seg.rst && self.state.synchronized() {
            if let Some((tsval, _)) = seg.ts {
                let valid = now.saturating_duration_since(self.ts_recent_at) < PAWS_IDLE;
                if valid && (tsval.wrapping_sub(self.ts_recent) as i32) < 0 {
                    stats.drop_tcp_paws += 1;
                    self.ack_rejected(now, seg, stats);
                    return Outcome::Ok;
                }
            }
        }

        // 1. Sequence acceptability. RCV.WND is the space the receiver can
        // hold: at least what was advertised, and the free buffer when the
        // 16-bit field (no window scaling) could not show all of it
        // (RFC 9293 3.10.7.4; FreeBSD's max(sbspace, rcv_adv - rcv_nxt)).
        // The test only widens with the window, so the free-buffer term
        // (divisions) is needed only when the advertised window rejects the
        // segment, or for a FIN (step 7 bounds it by RCV.WND).
        let len = seg.len();
        let mut rcv_wnd = self.rcv_adv.max(self.rcv_nxt).since(self.rcv_nxt);
        let mut acceptable = seq_acceptable(seg.seq, len, self.rcv_nxt, rcv_wnd);
        if !acceptable || seg.fin {
            let free = self.recv_cap.saturating_sub(self.rcvq.held() + self.rcvq.ooo_bytes());
            let room = self.rcvq.window_for(free, usize::from(self.our_mss)).min((MAX_WIN as usize) << 14) as u32;
            rcv_wnd = rcv_wnd.max(room);
            acceptable = acceptable || seq_acceptable(seg.seq, len, self.rcv_nxt, rcv_wnd);
        }
        if !acceptable {
            // Zero window probes and old duplicates get an ACK; RSTs nothing.
            if seg.rst {
                stats.drop_tcp_out_of_window += 1;
                return Outcome::Ok;
            }
            if self.state == State::TimeWait && seg.fin {
                // The peer retransmitted its FIN (our ACK was lost): ACK
                // again and restart the 2 MSL timer (RFC 9293 3.10.7.4).
                self.ack_now = true;
                self.timewait_at = Some(now + self.cfg.msl.saturating_mul(2));
                return Outcome::Ok;
            }
            if seg.syn && seg.ack.is_none() && self.state == State::SynReceived && seg.seq + 1 == self.rcv_nxt {
                // The peer retransmitted its SYN: our SYN-ACK was lost. Its
                // sequence number lies left of the window (RFC 9293
                // 3.10.7.4 would only ACK), but an ACK cannot complete the
                // peer's SYN-SENT; Linux and FreeBSD resend the SYN-ACK.
                self.snd_nxt = self.iss;
                return Outcome::Ok;
            }
            if seg.syn && self.state.synchronized() {
                // RFC 5961 4.2: a SYN in a synchronized state, whatever its
                // sequence number, draws a challenge ACK.
                stats.drop_tcp_out_of_window += 1;
                self.challenge_ack(now, budget, stats);
                return Outcome::Ok;
            }
            if seg.seq <= self.rcv_nxt && self.state.synchronized() && !seg.syn {
                // An old duplicate (or data at rcv_nxt into a zero window)
                // still carries a current ACK (RFC 9293 3.10.7.4: "special
                // allowance ... to accept valid ACKs"; BSD does the same):
                // after a go-back-N retransmission the peer's segments start
                // below our rcv_nxt, and ignoring their ACKs would deadlock
                // both sides. The ACK must pass RFC 5961 5.2 like any other.
                if let Some(ack) = seg.ack {
                    if !self.ack_acceptable(ack) {
                        stats.drop_tcp_bad_ack += 1;
                        self.challenge_ack(now, budget, stats);
                        return Outcome::Ok;
                    }
                    if let Outcome::Closed = self.process_ack(now, seg, ack, mem, stats) {
                        return Outcome::Closed;
                    }
                }
            } else {
                stats.drop_tcp_out_of_window += 1;
            }
            self.ack_rejected(now, seg, stats);
            return Outcome::Ok;
        }

        // 2. RST (RFC 5961 3.2). In TIME-WAIT a RST is ignored (RFC 1337:
        // no TIME-WAIT assassination).
        if seg.rst && self.state == State::TimeWait {
            return Outcome::Ok;
        }
        if seg.rst {
            // RFC 5961 3.2 accepts only a RST at exactly rcv_nxt; with
            // `insecure_rst` any RST that passed the window test above
            // resets (RFC 793 3.4).
            if seg.seq == self.rcv_nxt || self.cfg.insecure_rst {
                stats.tcp_resets_received += 1;
                if self.state == State::SynReceived && self.parent.is_some() {
                    self.release(mem);
                    self.state = State::Closed;
                    return Outcome::Closed;
                }
                self.error = Some(TcpError::Reset);
                self.release(mem);
                self.state = State::Closed;
                self.events_pending = true;
                return Outcome::Closed;
            }
            self.challenge_ack(now, budget, stats);
            return Outcome::Ok;
        }

        // New data after the application closed the socket can never be
        // read: RFC 1122 4.2.2.13 "its TCP SHOULD send a RST to show that
        // data was lost" (Linux and FreeBSD do, with <SEQ=SEG.ACK>).
        if self.orphan
            && matches!(self.state, State::FinWait1 | State::FinWait2)
            && !seg.payload.is_empty()
            && seg.seq + seg.payload.len() as u32 > self.rcv_nxt
        {
            stats.tcp_abort_on_data += 1;
            let seq = seg.ack.unwrap_or(self.snd_nxt);
            out.push(SegOut::rst(self.local, self.remote, seq, None));
            self.release(mem);
            self.state = State::Closed;
            return Outcome::Closed;
        }

        // 3. SYN in a synchronized state (RFC 5961 4.2): challenge ACK.
        if seg.syn {
            if self.state == State::SynReceived && seg.seq + 1 == self.rcv_nxt {
                // Retransmitted SYN: our SYN-ACK was lost.
                self.snd_nxt = self.iss;
                return Outcome::Ok;
            }
            if self.cfg.insecure_syn && self.state != State::SynReceived {
                // RFC 793 3.9: a SYN in the window is an error; send a
                // reset (RST+ACK from snd_nxt, as FreeBSD's
                // `insecure_syn=1`) and report the reset to the user.
                stats.tcp_insecure_syn_resets += 1;
                out.push(SegOut::rst(self.local, self.remote, self.snd_nxt, Some(self.rcv_nxt)));
                self.error = Some(TcpError::Reset);
                self.release(mem);
                self.state = State::Closed;
                self.events_pending = true;
                return Outcome::Closed;
            }
            self.challenge_ack(now, budget, stats);
            return Outcome::Ok;
        }

        // 4. ACK is required from here on (RFC 9293 3.10.7.4 fifth check).
        let Some(ack) = seg.ack else { return Outcome::Ok };
        if self.state != State::SynReceived && !self.ack_acceptable(ack) {
            // RFC 5961 5.2: drop the whole segment (data and FIN too) and
            // answer with an ACK; this also covers an ACK of data never
            // sent (RFC 9293: "send an ACK, drop the segment, and return").
            stats.drop_tcp_bad_ack += 1;
            self.challenge_ack(now, budget, stats);
            return Outcome::Ok;
        }
        let mut outcome = Outcome::Ok;
        if self.state == State::SynReceived {
            if ack.in_range(self.snd_una + 1, self.snd_max + 1) {
                self.state = State::Established;
                self.round_buffers_to_mss();
                stats.tcp_established += 1;
                self.snd_wnd = u32::from(seg.wnd) << self.snd_wscale;
                self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
                self.snd_wl1 = seg.seq;
                self.snd_wl2 = ack;
                self.events_pending = true;
                outcome = Outcome::Established;
                if self.fin_queued {
                    self.state = State::FinWait1;
                }
            } else {
                // RFC 9293 3.10.7.4: <SEQ=SEG.ACK><CTL=RST>, segment dropped.
                stats.drop_tcp_bad_ack += 1;
                out.push(SegOut::rst(self.local, self.remote, ack, None));
                return Outcome::Ok;
            }
        }
        // RFC 7323 4.3 (R3), only now that the segment passed the sequence,
        // RST, SYN and ACK checks (Linux bd090dfc634d): a segment that is
        // dropped must not move TS.Recent, else one forged TSval makes PAWS
        // drop every later segment of the real peer.
        self.take_ts_recent(now, seg);
        if let r @ Outcome::Closed = self.process_ack(now, seg, ack, mem, stats) {
            return r;
        }

        // 6. Data.
        if !seg.payload.is_empty() {
            if matches!(self.state, State::Established | State::FinWait1 | State::FinWait2) {
                self.accept_data(now, seg, stats);
            } else {
                // After the peer's FIN: ignore data (RFC 9293 3.10.7.4 sixth).
            }
        }

        // 7. FIN.
        if seg.fin {
            let fin_at = seg.seq + seg.payload.len() as u32;
            match self.fin_seq_in {
                // A FIN never moves once known: another one is bogus.
                Some(f) if f != fin_at => {
                    stats.drop_tcp_fin_moved += 1;
                    self.ack_now = true;
                }
                Some(_) => {}
                None if !self.peer_fin && fin_at >= self.rcv_nxt && fin_at < self.rcv_nxt + rcv_wnd.max(1) => {
                    self.fin_seq_in = Some(fin_at);
                    // Out-of-order data already held past the FIN can never
                    // be delivered: drop it, or its hole would keep the FIN
                    // from being processed.
                    let end = self.rcvq.next_offset() + u64::from(fin_at.since(self.rcv_nxt));
                    if self.rcvq.truncate_ooo(end) > 0 {
                        stats.drop_tcp_data_beyond_fin += 1;
                    }
                }
                None => {}
            }
            if fin_at > self.rcv_nxt && !self.peer_fin {
                // A FIN beyond RCV.NXT is an out-of-order segment: answer
                // with an immediate duplicate ACK (RFC 5681 4.2).
                self.ack_now = true;
            }
            if fin_at > self.rcv_nxt {
                // A FIN beyond a hole is an out-of-order segment: a duplicate
                // ACK goes out at once (RFC 5681 4.2, RFC 9293 3.10.7.4).
                self.ack_now = true;
            }
        }
        if let Some(f) = self.fin_seq_in {
            if f == self.rcv_nxt && !self.peer_fin && !self.rcvq.has_hole() {
                self.rcv_nxt = self.rcv_nxt + 1;
                self.peer_fin = true;
                self.ack_now = true;
                self.events_pending = true;
                match self.state {
                    State::SynReceived | State::Established => self.state = State::CloseWait,
                    State::FinWait1 => {
                        // Our FIN not yet acked (else process_ack moved us on).
                        self.state = State::Closing;
                    }
                    State::FinWait2 => self.enter_time_wait(now, mem),
                    State::TimeWait => self.timewait_at = Some(now + self.cfg.msl.saturating_mul(2)),
                    _ => {}
                }
            }
        }
        if self.state == State::Closed {
            return Outcome::Closed;
        }
        outcome
    }

    /// Header prediction (RFC 9293 3.10.7.4's checks, as BSD's fast path):
    /// the segment's ACK when the segment is the common case of ESTABLISHED
    /// — the next one in order (SEG.SEQ = RCV.NXT), within the advertised
    /// window, no SYN, RST or FIN (and no FIN seen out of order), an ACK in
    /// [SND.UNA, SND.MAX] (so RFC 5961 5.2 accepts it) and, with timestamps,
    /// a TSval not older than TS.Recent (RFC 7323 5.3 PAWS passes). Then
    /// every check before the ACK's processing passes and can be skipped;
    /// `None`: take the full path.
    #[inline(always)]
    fn predicted_ack(&self, seg: &SegIn<'_>) -> Option<Seq> {
        let ack = seg.ack?;
        if self.state != State::Established
            || seg.syn
            || seg.rst
            || seg.fin
            || seg.seq != self.rcv_nxt
            || self.fin_seq_in.is_some()
            || ack < self.snd_una
            || ack > self.snd_max
            || seg.payload.len() as u64 > u64::from(self.rcv_adv.max(self.rcv_nxt).since(self.rcv_nxt))
        {
            return None;
        }
        if let (true, Some((tsval, _))) = (self.ts_ok, seg.ts) {
            if (tsval.wrapping_sub(self.ts_recent) as i32) < 0 {
                return None;
            }
        }
        Some(ack)
    }

    /// RFC 9293 3.6.1 (RFC 6191; Linux does the same): in TIME-WAIT a new
    /// SYN for the same 4-tuple may replace the old connection only when it
    /// cannot belong to it: its sequence number lies above the old
    /// `rcv_nxt`, or timestamps are in use and its TSval is newer than
    /// TS.Recent. Any other SYN is handled as one in a synchronized state
    /// (challenge ACK, RFC 5961 4.2), so a blind SYN cannot end TIME-WAIT.
    #[cold]
    #[inline(never)]
    pub fn time_wait_accepts_syn(&self, seg: &SegIn<'_>) -> bool {
        let newer_ts = match (self.ts_ok, seg.ts) {
            (true, Some((tsval, _))) => (tsval.wrapping_sub(self.ts_recent) as i32) > 0,
            _ => false,
        };
        seg.seq > self.rcv_nxt || newer_ts
    }

    #[cold]
    #[inline(never)]
    fn on_segment_syn_sent(
        &mut self,
        now: Instant,
        seg: &SegIn<'_>,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
    ) -> Outcome {
        if let Some(ack) = seg.ack {
            if !ack.in_range(self.iss + 1, self.snd_max + 1) {
                if !seg.rst {
                    out.push(SegOut::rst(self.local, self.remote, ack, None));
                }
                return Outcome::Ok;
            }
            if seg.rst {
                stats.tcp_resets_received += 1;
                self.error = Some(TcpError::Refused);
                self.release(mem);
                self.state = State::Closed;
                self.events_pending = true;
                return Outcome::Closed;
            }
        } else if seg.rst {
            return Outcome::Ok;
        }
        if !seg.syn {
            return Outcome::Ok;
        }
        self.irs = seg.seq;
        self.rcv_nxt = seg.seq + 1;
        self.take_syn_options(seg);
        self.snd_wnd = u32::from(seg.wnd);
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = seg.seq;
        self.ack_now = true;
        if let Some(ack) = seg.ack {
            // SYN-ACK.
            self.snd_wl2 = ack;
            if let Some((s, t)) = self.rtt_probe.take() {
                if ack > s {
                    self.rtt.sample(now.saturating_duration_since(t));
                }
            }
            self.snd_una = ack;
            self.snd_nxt = self.snd_nxt.max(ack);
            self.rtx_at = None;
            self.retries = 0;
            self.state = if self.fin_queued { State::FinWait1 } else { State::Established };
            stats.tcp_established += 1;
            self.events_pending = true;
            if !self.sendq.is_empty() || self.fin_queued {
                self.arm_rtx(now);
            }
            // RFC 9293 3.10.7.3: text in the SYN-ACK is processed as in
            // ESTABLISHED (the sixth step): queued, not dropped. The SYN
            // occupies seg.seq, so the data starts at rcv_nxt.
            if !seg.payload.is_empty() && matches!(self.state, State::Established | State::FinWait1) {
                let data = SegIn { seq: seg.seq + 1, syn: false, fin: false, ..*seg };
                self.accept_data(now, &data, stats);
            }
        } else {
            // Simultaneous open (RFC 9293 3.5 figure 7).
            self.state = State::SynReceived;
            self.snd_nxt = self.iss;
        }
        Outcome::Ok
    }

    /// RFC 7323 4.3 (R3): records the TSval of an acceptable segment that
    /// covers the left edge of the window (`SEG.SEQ <= rcv_nxt`, the last
    /// ACK sent) and is not older than TS.Recent. The caller promises the
    /// segment passed every acceptance check (RFC 9293 3.10.7.4 first to
    /// fifth) and will be processed.
    fn take_ts_recent(&mut self, now: Instant, seg: &SegIn<'_>) {
        if let (true, Some((tsval, _))) = (self.ts_ok, seg.ts) {
            if seg.seq <= self.rcv_nxt && (tsval.wrapping_sub(self.ts_recent) as i32) >= 0 {
                self.ts_recent = tsval;
                self.ts_recent_at = now;
            }
        }
    }

    /// RFC 5961 5.2 (RFC 9293 3.10.7.4): in a synchronized state an ACK is
    /// acceptable only within `[snd_una - max_snd_wnd, snd_nxt]`, `snd_nxt`
    /// being the highest sequence number sent (`snd_max`) and
    /// `max_snd_wnd` at least one MSS. Anything else acknowledges data never
    /// sent or data acknowledged long ago: the segment must be dropped.
    fn ack_acceptable(&self, ack: Seq) -> bool {
        let max_wnd = self.max_snd_wnd.max(self.mss);
        ack <= self.snd_max && (ack >= self.snd_una || self.snd_una.since(ack) <= max_wnd)
    }

    /// Answers a rejected segment with an ACK (RFC 9293 3.10.7.4 first
    /// check, RFC 7323 PAWS). Segments that occupy sequence space (data or
    /// FIN, not SYN) are always answered: zero-window probes and
    /// retransmissions need the ACK and are no part of an ACK loop (as in
    /// Linux `tcp_oow_rate_limited`). Others are limited per connection to
    /// `invalid_ack_burst` per `invalid_ack_interval`.
    #[cold]
    #[inline(never)]
    fn ack_rejected(&mut self, now: Instant, seg: &SegIn<'_>, stats: &mut Stats) {
        if (seg.len() > 0 && !seg.syn)
            || self.ack_limiter.allow(now, self.cfg.invalid_ack_interval, self.cfg.invalid_ack_burst)
        {
            self.ack_now = true;
        } else {
            stats.tcp_acks_rate_limited += 1;
        }
    }

    /// Sends a challenge ACK (RFC 5961 3.2, 4.2, 5.2) unless the
    /// per-connection limit or the engine-wide per-second budget (RFC 5961
    /// 7) is spent; suppressed ones are counted.
    #[cold]
    #[inline(never)]
    fn challenge_ack(&mut self, now: Instant, budget: &mut ChallengeBudget, stats: &mut Stats) {
        if !self.ack_limiter.allow(now, self.cfg.invalid_ack_interval, self.cfg.invalid_ack_burst) {
            stats.tcp_acks_rate_limited += 1;
        } else if !budget.allow(now, self.cfg.challenge_ack_limit) {
            stats.tcp_challenge_acks_global_limited += 1;
        } else {
            stats.tcp_challenge_acks += 1;
            self.ack_now = true;
        }
    }

    /// Processes an acceptable ACK ([`Conn::ack_acceptable`] checked by the
    /// caller): send queue, RTT, congestion control, window update.
    fn process_ack(
        &mut self,
        now: Instant,
        seg: &SegIn<'_>,
        ack: Seq,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
    ) -> Outcome {
        let wnd = u32::from(seg.wnd) << self.snd_wscale;
        if self.sack_ok {
            self.scoreboard.update(ack.max(self.snd_una), self.snd_max, &seg.sack);
        }
        if ack > self.snd_una {
            let data_start = self.data_start();
            let fin_seq = self.fin_seq();
            let data_end = data_start + self.sendq.len() as u32;
            let acked_data = ack.min(data_end).since(data_start.min(ack));
            let newly = ack.since(self.snd_una);
            if let Err(_e) = self.sendq.ack(acked_data as usize, mem) {
                stats.page_errors += 1;
            }
            self.snd_una = ack;
            if self.snd_nxt < ack {
                self.snd_nxt = ack;
            }
            self.scoreboard.trim(ack);
            if self.rto_point.is_some_and(|p| ack >= p) {
                self.rto_point = None;
            }
            if self.high_rxt < ack {
                self.high_rxt = ack;
            }
            self.retries = 0;
            if let Some((s, t)) = self.rtt_probe {
                if ack > s {
                    self.rtt.sample(now.saturating_duration_since(t));
                    self.rtt_probe = None;
                }
            }
            self.on_new_ack(now, ack, newly);
            if self.snd_una == self.snd_max {
                self.rtx_at = None;
            } else {
                self.arm_rtx(now);
            }
            if acked_data > 0 {
                self.events_pending = true;
            }
            if let Some(f) = fin_seq {
                if ack > f {
                    self.fin_acked = true;
                    self.linger_at = None;
                    match self.state {
                        State::FinWait1 => {
                            self.state = State::FinWait2;
                            self.events_pending = true;
                        }
                        State::Closing => self.enter_time_wait(now, mem),
                        State::LastAck => {
                            self.release(mem);
                            self.state = State::Closed;
                            self.events_pending = true;
                            return Outcome::Closed;
                        }
                        _ => {}
                    }
                }
            }
        } else if ack == self.snd_una
            && seg.payload.is_empty()
            && !seg.fin
            && wnd == self.snd_wnd
            && self.data_outstanding()
        {
            self.on_dup_ack(stats);
        }
        // Window update (RFC 9293 3.10.7.4).
        if self.snd_wl1 < seg.seq || (self.snd_wl1 == seg.seq && self.snd_wl2 <= ack) {
            let was_zero = self.snd_wnd == 0;
            self.snd_wnd = wnd;
            self.max_snd_wnd = self.max_snd_wnd.max(wnd);
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = ack;
            if wnd > 0 {
                self.persist_at = None;
                self.persist_backoff = 0;
                if was_zero {
                    self.events_pending = true;
                }
                if was_zero && self.rtx_at.is_none() {
                    // Persisting: whatever went past the shut window (the
                    // probe byte) was refused unless this ACK covers it.
                    self.snd_nxt = self.snd_una;
                }
            } else {
                // The peer answers while its window is shut: alive.
                self.retries = 0;
            }
        }
        // RFC 6675 5 (step 4): SACK-based loss detection enters recovery even
        // when the window changes prevent counting duplicate ACKs.
        if self.sack_ok
            && self.recover.is_none()
            && self.rto_point.is_none()
            && self.snd_max > self.snd_una
            && self.scoreboard.is_lost(self.snd_una, self.mss)
        {
            self.enter_recovery(stats);
        }
        Outcome::Ok
    }

    #[cold]
    #[inline(never)]
    fn enter_recovery(&mut self, stats: &mut Stats) {
        stats.tcp_fast_retransmits += 1;
        self.ssthresh = self.decrease();
        self.recover = Some(self.snd_max);
        self.rtt_probe = None;
        if self.sack_ok {
            // RFC 6675 5 (4.2-4.3): cwnd = ssthresh; the first segment goes
            // at once whatever the pipe says; output retransmits the other
            // holes by pipe.
            self.cwnd = self.ssthresh;
            self.high_rxt = self.snd_una;
            self.rtx_one = true;
        } else {
            // RFC 6582: retransmit the first segment, inflate by three.
            self.cwnd = self.ssthresh + 3 * self.mss;
            self.rtx_one = true;
        }
    }

    fn on_new_ack(&mut self, now: Instant, ack: Seq, newly: u32) {
        self.dupacks = 0;
        self.limited_transmit = 0;
        match self.recover {
            Some(rec) if ack < rec => {
                if !self.sack_ok {
                    // Partial ACK (RFC 6582 3.2 step 5): retransmit the next
                    // hole, deflate by what was acked, add back one segment.
                    self.rtx_one = true;
                    self.cwnd = self.cwnd.saturating_sub(newly).saturating_add(self.mss).max(self.mss);
                }
            }
            Some(_) => {
                // Full ACK: leave recovery.
                self.recover = None;
                self.cwnd = self.ssthresh.min(self.in_flight().max(self.mss) + self.mss).max(self.mss);
            }
            None => {
                // Byte counting (RFC 3465), without its per-ACK cap in slow
                // start (as Linux counts every ACKed segment): a receiver
                // that ACKs a whole burst at once (stretch ACKs, GRO-style
                // batching) must not slow the window's growth.
                if self.cwnd < self.ssthresh {
                    self.cwnd = self.cwnd.saturating_add(newly).min(self.ssthresh.max(self.cwnd));
                } else if let Some(cubic) = self.cubic.as_mut() {
                    let srtt = self.rtt.srtt().unwrap_or(Duration::from_millis(1));
                    self.cwnd = cubic.on_ack(now, self.cwnd, self.mss, newly, srtt);
                } else {
                    let inc = (u64::from(self.mss) * u64::from(newly) / u64::from(self.cwnd.max(1))).max(1);
                    self.cwnd = self.cwnd.saturating_add(inc as u32);
                }
            }
        }
    }

    fn on_dup_ack(&mut self, stats: &mut Stats) {
        if self.rto_point.is_some() || self.snd_wnd == 0 {
            // Going back after a timeout: duplicates start no recovery
            // before the recovery point is acknowledged (RFC 6582 4). With
            // the window shut they answer window probes, and say nothing
            // about loss.
            return;
        }
        self.dupacks += 1;
        // Early retransmit (RFC 5827): with fewer than four segments
        // outstanding and nothing new to send, three duplicates can never
        // arrive; lower the threshold to outstanding - 1.
        let outstanding = self.in_flight().div_ceil(self.mss.max(1));
        let unsent = self.data_start() + self.sendq.len() as u32 > self.snd_max;
        let thresh = if outstanding < 4 && !unsent { outstanding.saturating_sub(1).max(1) } else { 3 };
        if self.recover.is_some() {
            // Inflate during NewReno recovery (RFC 5681 3.2 step 4); with SACK
            // the pipe estimate does this job.
            if !self.sack_ok {
                self.cwnd = self.cwnd.saturating_add(self.mss);
            }
        } else if self.dupacks < thresh {
            // Limited transmit (RFC 3042): the first two duplicates each let
            // one new segment out, keeping the ACK clock running.
            self.limited_transmit += 1;
        } else if self.dupacks == thresh {
            self.enter_recovery(stats);
        }
    }

    /// Stores an acceptable segment's payload: trimmed to the receive window
    /// and, once the peer's FIN is known, to the FIN (RFC 9293 3.10.7.4:
    /// the FIN ends the sequence space; bytes at or beyond it are refused
    /// and counted in `drop_tcp_data_beyond_fin`).
    fn accept_data(&mut self, now: Instant, seg: &SegIn<'_>, stats: &mut Stats) {
        let wnd_end = self.rcv_nxt + self.rcv_adv.max(self.rcv_nxt).since(self.rcv_nxt).max(1);
        let mut start = seg.seq;
        let mut data = seg.payload;
        if start < self.rcv_nxt {
            let skip = self.rcv_nxt.since(start) as usize;
            if skip >= data.len() {
                self.ack_now = true;
                return;
            }
            data = &data[skip..];
            start = self.rcv_nxt;
        }
        // The stream ends at the FIN once known (never past the window).
        let data_end = match self.fin_seq_in {
            Some(f) if f < wnd_end => {
                if start >= f || start + data.len() as u32 > f {
                    stats.drop_tcp_data_beyond_fin += 1;
                    self.ack_now = true;
                }
                if start >= f {
                    return;
                }
                f
            }
            _ => wnd_end,
        };
        let room = data_end.since(start) as usize;
        if data.len() > room {
            data = &data[..room];
        }
        if data.is_empty() {
            self.ack_now = true;
            return;
        }
        let off = self.rcvq.next_offset() + u64::from(start.since(self.rcv_nxt));
        let window = wnd_end.since(self.rcv_nxt) as usize;
        // Whether this segment may fill (part of) a hole: asked before it does.
        let had_hole = self.rcvq.has_hole();
        match self.rcvq.insert_within(off, data, window, self.cfg.max_ooo_segments, seg.rx, stats) {
            Inserted::InOrder(n) => {
                self.rcv_nxt = self.rcv_nxt + n as u32;
                if self.rd_shut {
                    // SHUT_RD: acknowledged, never delivered.
                    self.rcvq.discard_ready();
                }
                self.events_pending = true;
                self.segs_since_ack += 1;
                if had_hole || self.segs_since_ack >= 2 || self.cfg.delayed_ack.is_none() || n as u32 > self.mss {
                    // RFC 5681 4.2: ACK at least every second full segment
                    // (a single segment carrying more than one MSS counts
                    // as two, as Linux's rcv_mss rule does), and at once
                    // while filling a hole.
                    self.ack_now = true;
                } else if self.delack_at.is_none() {
                    self.delack_at = self.cfg.delayed_ack.map(|d| now + d);
                }
                if !had_hole && seg.seq < self.rcv_nxt && start != seg.seq {
                    self.ack_now = true;
                }
            }
            Inserted::OutOfOrder | Inserted::Duplicate => {
                // A duplicate ACK signals the hole (RFC 5681 4.2).
                self.ack_now = true;
                self.dupack_now = true;
            }
            Inserted::Full => {
                stats.drop_tcp_ooo_full += 1;
                self.ack_now = true;
            }
        }
    }

    // ----- ICMP -----

    /// An ICMP error about a segment of ours whose sequence number was `seq`
    /// (RFC 5927 4.1: believed only when `seq` lies in `[snd_una, snd_max)`;
    /// returns `false` and changes nothing otherwise).
    ///
    /// - Unreachable in SYN-SENT ends the connection attempt with `hard`
    ///   (RFC 1122 4.2.3.9 lets hard errors abort; like Linux and RFC 5461
    ///   3, every unreachable does so before the connection exists).
    /// - Unreachable in other states is soft: recorded, reported if the
    ///   connection later times out (RFC 1122 4.2.3.9, RFC 5461).
    /// - Fragmentation needed (RFC 1191): the segment size drops to fit
    ///   `mtu` (never below `TcpConfig::min_path_mtu`), and what is in
    ///   flight is sent again from `snd_una` in the new size at once
    ///   (not a congestion signal: cwnd and ssthresh are left alone).
    #[cold]
    #[inline(never)]
    pub fn on_icmp(
        &mut self,
        seq: Seq,
        err: super::icmp::IcmpError,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
    ) -> Result<Outcome, ()> {
        if !(seq >= self.snd_una && seq < self.snd_max) {
            return Err(());
        }
        match err {
            super::icmp::IcmpError::Unreachable(e) if self.state == State::SynSent => {
                self.error = Some(e);
                self.release(mem);
                self.state = State::Closed;
                self.events_pending = true;
                return Ok(Outcome::Closed);
            }
            super::icmp::IcmpError::Unreachable(e) => self.soft_error = Some(e),
            super::icmp::IcmpError::FragNeeded(mtu) => {
                let mtu = usize::from(mtu).max(self.cfg.min_path_mtu.max(68));
                let new = u32::from(mss_for_mtu(mtu));
                if !self.state.synchronized() {
                    self.our_mss = self.our_mss.min(new as u16);
                }
                if new < self.mss {
                    stats.tcp_pmtu_updates += 1;
                    self.mss = new;
                    if self.state.synchronized() && self.snd_max > self.snd_una {
                        // Resend what is in flight in the new size (the
                        // originals were dropped); Karn: no RTT sample.
                        self.snd_nxt = self.snd_una;
                        self.high_rxt = self.snd_una;
                        self.rtt_probe = None;
                    }
                }
            }
        }
        Ok(Outcome::Ok)
    }

    // ----- timers -----

    /// Runs every timer due at `now`. Returns `Closed` when the connection ends.
    pub fn on_timer(
        &mut self,
        now: Instant,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
    ) -> Outcome {
        if let Some(t) = self.timewait_at {
            if now >= t {
                self.release(mem);
                self.state = State::Closed;
                return Outcome::Closed;
            }
        }
        if self.linger_at.is_some_and(|t| now >= t) {
            // SO_LINGER ran out with data or FIN unacknowledged: reset.
            stats.tcp_linger_resets += 1;
            if let Some(r) = self.abort(mem) {
                out.push(r);
            }
            return Outcome::Closed;
        }
        if let Some(t) = self.delack_at {
            if now >= t {
                self.delack_at = None;
                self.ack_now = true;
            }
        }
        if let Some(t) = self.rtx_at {
            if now >= t {
                self.retries += 1;
                let limit = if self.state.synchronized() { self.cfg.max_retries } else { self.cfg.syn_retries };
                if self.retries > limit {
                    stats.tcp_timeouts += 1;
                    // RFC 1122 4.2.3.9: a soft error seen meanwhile says why.
                    self.error = Some(self.soft_error.unwrap_or(TcpError::TimedOut));
                    self.release(mem);
                    self.state = State::Closed;
                    self.events_pending = true;
                    return Outcome::Closed;
                }
                stats.tcp_rto_retransmits += 1;
                // RFC 5681 3.1 eq. 4 and RFC 6298 5.4-5.6: go back to snd_una.
                if self.state.synchronized() {
                    self.ssthresh = self.decrease();
                    if let Some(c) = self.cubic.as_mut() {
                        c.on_timeout();
                    }
                    self.cwnd = self.mss;
                }
                // RFC 6675 5.1 / RFC 6582 4: leave any recovery; no new one
                // before everything sent so far is acknowledged.
                self.recover = None;
                if self.snd_max > self.snd_una {
                    self.rto_point = Some(self.snd_max);
                }
                self.dupacks = 0;
                self.limited_transmit = 0;
                self.rtt_probe = None;
                // Keep the SACK information (resend the holes, not what the
                // peer holds) unless the receiver reneged (RFC 2018 8): the
                // byte at snd_una SACKed yet not acknowledged. The segment at
                // snd_una is resent either way.
                if self.scoreboard.reneged(self.snd_una) {
                    self.scoreboard.clear();
                }
                self.high_rxt = self.snd_una;
                self.snd_nxt = self.snd_una;
                self.rtt.back_off();
                self.rtx_at = None;
            }
        }
        if let Some(t) = self.persist_at {
            // A stale persist deadline while the RTO times data is moot.
            if now >= t && self.rtx_at.is_some() {
                self.persist_at = None;
            } else if now >= t {
                self.persist_at = None;
                // RFC 1122 4.2.2.17: a receiver that keeps answering probes
                // keeps the connection (any ACK resets `retries`); one that
                // stays silent through max_retries probes is given up on.
                self.retries += 1;
                if self.retries > self.cfg.max_retries {
                    stats.tcp_timeouts += 1;
                    self.error = Some(TcpError::TimedOut);
                    self.release(mem);
                    self.state = State::Closed;
                    self.events_pending = true;
                    return Outcome::Closed;
                }
                self.persist_backoff = self.persist_backoff.saturating_add(1);
                self.probe_due = true;
            }
        }
        if let Some(t) = self.keepalive_at {
            if now >= t {
                if self.ka_probes >= self.cfg.keepalive_probes {
                    self.error = Some(TcpError::TimedOut);
                    self.release(mem);
                    self.state = State::Closed;
                    self.events_pending = true;
                    return Outcome::Closed;
                }
                self.ka_probes += 1;
                self.keepalive_at = Some(now + self.cfg.keepalive_interval);
                self.ka_probe_due = true;
            }
        }
        Outcome::Ok
    }
}

impl Conn {
    fn seg(&mut self, seq: Seq, with_ack: bool) -> SegOut {
        let window = self.advertise();
        let mut s = SegOut::empty(self.local, self.remote, seq);
        if with_ack {
            s.ack = Some(self.rcv_nxt);
            if self.sack_ok && self.rcvq.has_hole() {
                let base = self.rcvq.next_offset();
                for (a, e) in self.sack_blocks().into_iter().map_while(|b| b) {
                    s.sack[usize::from(s.sack_len)] =
                        ((self.rcv_nxt + (a - base) as u32).0, (self.rcv_nxt + (e - base) as u32).0);
                    s.sack_len += 1;
                }
            }
            self.ack_now = false;
            self.delack_at = None;
            self.segs_since_ack = 0;
        }
        s.window = window;
        if self.ts_ok {
            s.ts = Some((self.ts_now, self.ts_recent));
        }
        s
    }

    /// The SACK blocks our next ACK carries, as stream offsets: four when
    /// no timestamps option shares the 40 option bytes, else three (RFC
    /// 2018 3).
    fn sack_blocks(&self) -> [Option<(u64, u64)>; 4] {
        let mut b = self.rcvq.sack_blocks4();
        if self.ts_ok {
            b[3] = None;
        }
        b
    }

    fn syn_options(&self, s: &mut SegOut, offer_wscale: bool) {
        s.syn = true;
        s.mss = Some(self.our_mss);
        if self.syn_options_dropped() {
            return;
        }
        // Offer SACK and timestamps in a SYN; accept them in a SYN-ACK only if
        // the peer offered them.
        s.sack_permitted = (self.state == State::SynSent && self.cfg.sack) || self.sack_ok;
        if self.state == State::SynSent && self.cfg.timestamps {
            s.ts = Some((self.ts_now, 0));
        }
        if offer_wscale {
            s.wscale = Some(self.rcv_wscale);
        }
    }

    /// Whether our SYN goes with the MSS option only: the third and later
    /// retransmissions of an active open's SYN under
    /// `TcpConfig::rexmit_drop_options` (FreeBSD's `rexmit_drop_options`).
    /// The SYN-ACK's options are then ignored too: RFC 7323 2.2/3.2 and
    /// RFC 2018 2 enable an option only when both SYNs carry it.
    fn syn_options_dropped(&self) -> bool {
        self.cfg.rexmit_drop_options && self.state == State::SynSent && self.retries >= 3
    }

    /// Produces every segment due now: SYN/SYN-ACK, retransmissions, new data
    /// within the congestion and peer windows (Nagle and SWS avoidance applied),
    /// FIN, and ACKs.
    ///
    /// `tso_max` > 0: new data may leave in frames of up to that many
    /// payload bytes (whole segments), for the device to cut (TSO).
    pub fn output(
        &mut self,
        now: Instant,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
        tso_max: u32,
    ) {
        self.tick_ts(now);
        match self.state {
            State::Closed => return,
            State::SynSent => {
                if self.snd_nxt == self.iss {
                    let mut s = self.seg(self.iss, false);
                    s.window = self.rcv_window().min(MAX_WIN) as u16;
                    self.syn_options(&mut s, self.cfg.offer_window_scale);
                    out.push(s);
                    if self.rtt_probe.is_none() && self.retries == 0 {
                        self.rtt_probe = Some((self.iss, now));
                    }
                    self.snd_nxt = self.iss + 1;
                    self.snd_max = self.snd_max.max(self.snd_nxt);
                    self.arm_rtx(now);
                }
                return;
            }
            State::SynReceived => {
                if self.snd_nxt == self.iss {
                    let offer = self.rcv_wscale > 0 || self.snd_wscale > 0;
                    let mut s = self.seg(self.iss, true);
                    s.window = self.rcv_window().min(MAX_WIN) as u16;
                    self.rcv_adv = self.rcv_nxt + u32::from(s.window);
                    self.syn_options(&mut s, offer);
                    out.push(s);
                    self.snd_nxt = self.iss + 1;
                    self.snd_max = self.snd_max.max(self.snd_nxt);
                    self.arm_rtx(now);
                }
                if self.ack_now {
                    let s = self.seg(self.snd_nxt, true);
                    out.push(s);
                }
                return;
            }
            State::TimeWait => {
                if self.ack_now {
                    let s = self.seg(self.snd_nxt, true);
                    out.push(s);
                }
                return;
            }
            _ => {}
        }
        let data_start = self.data_start();
        let data_end = data_start + self.sendq.len() as u32;
        let max_payload = self.seg_payload_max();

        if self.dupack_now {
            self.dupack_now = false;
            let s = self.seg(self.snd_nxt, true);
            out.push(s);
        }
        if self.probe_due {
            self.probe_due = false;
            self.window_probe(now, data_start, data_end, max_payload, mem, stats, out);
        }
        if self.rtx_one {
            self.rtx_one = false;
            if self.snd_max > self.snd_una {
                let avail = data_end.min(self.snd_max).since(self.snd_una.max(data_start).min(data_end));
                let mut len = avail.min(max_payload);
                if self.sack_ok {
                    // Only the hole: not into data the peer SACKed.
                    if let Some(a) = self.scoreboard.next_sacked(self.snd_una) {
                        len = len.min(a.since(self.snd_una));
                    }
                    self.high_rxt = self.high_rxt.max(self.snd_una + len);
                }
                if len > 0 {
                    stats.tcp_fast_retransmits += u64::from(self.recover.is_some() && self.dupacks > 3);
                    self.send_data(now, self.snd_una, len, data_start, data_end, mem, stats, out);
                } else if self.fin_queued && !self.fin_acked && self.snd_una == data_end {
                    let mut s = self.seg(data_end, true);
                    s.fin = true;
                    out.push(s);
                }
                if self.rtx_at.is_none() {
                    self.arm_rtx(now);
                }
            }
        }

        let sack_recovery = self.sack_ok && self.recover.is_some();
        if sack_recovery {
            // RFC 6675 5 step (C): while cwnd - pipe >= 1 SMSS, retransmit lost holes.
            while self.cwnd.saturating_sub(self.pipe()) >= self.mss {
                let Some((seq, len)) = self.scoreboard.next_hole(self.snd_una, self.high_rxt, self.mss) else { break };
                let len = len.min(data_end.since(seq.min(data_end))).min(max_payload);
                if len == 0 {
                    break;
                }
                stats.tcp_fast_retransmits += 1;
                self.send_data(now, seq, len, data_start, data_end, mem, stats, out);
                self.high_rxt = seq + len;
            }
        }

        loop {
            if self.snd_nxt >= data_end {
                break;
            }
            let retransmitting = self.snd_nxt < self.snd_max;
            // Going back after a timeout: skip what the peer holds (RFC 6675
            // 5.1; the scoreboard was cleared if the receiver reneged).
            if retransmitting && self.sack_ok {
                if let Some(end) = self.scoreboard.sacked_end(self.snd_nxt) {
                    self.snd_nxt = end;
                    continue;
                }
            }
            let peer_end = self.snd_una + self.snd_wnd;
            let peer_left = if self.snd_nxt < peer_end { peer_end.since(self.snd_nxt) } else { 0 };
            let cwnd_left = if sack_recovery {
                // New data only as far as the pipe allows (rule 2 of NextSeg).
                self.cwnd.saturating_sub(self.pipe())
            } else {
                let mut outstanding = self.snd_nxt.since(self.snd_una);
                if self.rto_point.is_some() && self.sack_ok {
                    // After a timeout everything past snd_nxt counts as lost
                    // and SACKed bytes have left the network.
                    outstanding -= self.scoreboard.sacked_between(self.snd_una, self.snd_nxt);
                }
                self.cwnd.saturating_add(self.limited_transmit * self.mss).saturating_sub(outstanding)
            };
            let wnd_left = cwnd_left.min(peer_left);
            let avail = data_end.since(self.snd_nxt);
            // A resend stops where SACKed data starts (a hole may be short).
            // (New data has nothing SACKed past it: no scoreboard query.)
            let hole = match retransmitting && self.sack_ok {
                true => self.scoreboard.next_sacked(self.snd_nxt).map_or(avail, |a| a.since(self.snd_nxt).min(avail)),
                false => avail,
            };
            // With TSO, as many whole segments as fit in one frame (all of
            // what is left when it fits); new data only, outside recovery
            // (a go-back-N resend after a timeout goes segment by segment).
            let fresh = self.snd_nxt >= self.snd_max;
            let burst = if tso_max > max_payload && fresh && !sack_recovery && self.recover.is_none() {
                tso_max - tso_max % max_payload
            } else {
                max_payload
            };
            let mut len = burst.min(hole).min(wnd_left);
            if len > max_payload && len < hole {
                len -= len % max_payload;
            }
            if len == 0 {
                break;
            }
            if len < max_payload && len < hole {
                // Limited by a window, not by the data: no segment below
                // SMSS for want of cwnd (wait for ACKs), and none smaller
                // than half the peer's largest window (sender SWS, RFC 9293
                // 3.8.6.2.1; the persist timer overrides it).
                if cwnd_left < max_payload.min(hole) || len < self.max_snd_wnd / 2 {
                    break;
                }
            } else if len < max_payload
                && !retransmitting
                && !self.nodelay
                && self.snd_max > self.snd_una
                && !self.fin_queued
            {
                // Nagle: one small segment in flight at a time.
                break;
            }
            let seq = self.snd_nxt;
            if !retransmitting && self.rtt_probe.is_none() {
                self.rtt_probe = Some((seq, now));
            }
            self.send_data(now, seq, len, data_start, data_end, mem, stats, out);
            if len > max_payload {
                if let Some(last) = out.last_mut() {
                    last.tso_segsz = max_payload as u16;
                }
                stats.tcp_tso_frames += 1;
            }
            self.snd_nxt = seq + len;
            if self.fin_queued && self.snd_nxt == data_end {
                if let Some(last) = out.last_mut() {
                    last.fin = true;
                }
                self.snd_nxt = self.snd_nxt + 1;
            }
            self.snd_max = self.snd_max.max(self.snd_nxt);
            if self.rtx_at.is_none() {
                self.arm_rtx(now);
            }
        }

        if self.fin_queued && !self.fin_acked && self.snd_nxt == data_end {
            let mut s = self.seg(data_end, true);
            s.fin = true;
            out.push(s);
            self.snd_nxt = data_end + 1;
            self.snd_max = self.snd_max.max(self.snd_nxt);
            if self.rtx_at.is_none() {
                self.arm_rtx(now);
            }
        }

        // Data unacknowledged and nothing timing it: the peer's window is
        // shut (or too small to use). The persist timer probes, backing off
        // exponentially up to max_rto, for as long as that lasts.
        if self.persist_at.is_none() && self.rtx_at.is_none() && self.snd_una < data_end {
            let interval = self.rtt.rto().saturating_mul(1u64 << self.persist_backoff.min(16));
            self.persist_at = Some(now + interval.min(self.cfg.max_rto));
        }

        if self.ka_probe_due {
            self.ka_probe_due = false;
            let s = self.seg(self.snd_una + u32::MAX, true); // snd_una - 1: elicits an ACK
            out.push(s);
        }
        if self.ack_now {
            let s = self.seg(self.snd_nxt, true);
            out.push(s);
        }
    }

    /// The persist timer fired (RFC 9293 3.8.6.1, RFC 1122 4.2.2.17). With
    /// the peer's window shut, the byte at snd_una goes past it (a new probe
    /// or the last one again; a lost window update is learnt from its ACK).
    /// With a window open but too small for the SWS rule, what fits of it
    /// goes (the SWS override). Probes are timed by the persist timer, not
    /// the RTO.
    #[allow(clippy::too_many_arguments)]
    #[cold]
    #[inline(never)]
    fn window_probe(
        &mut self,
        now: Instant,
        data_start: Seq,
        data_end: Seq,
        max_payload: u32,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
    ) {
        if self.rtx_at.is_some() || self.snd_una >= data_end {
            return;
        }
        stats.tcp_persist_probes += 1;
        let peer_end = self.snd_una + self.snd_wnd;
        if self.snd_nxt < peer_end && self.snd_nxt < data_end {
            let len = peer_end.since(self.snd_nxt).min(max_payload).min(data_end.since(self.snd_nxt));
            self.send_data(now, self.snd_nxt, len, data_start, data_end, mem, stats, out);
            self.snd_nxt = self.snd_nxt + len;
            self.snd_max = self.snd_max.max(self.snd_nxt);
            self.arm_rtx(now);
        } else {
            self.send_data(now, self.snd_una, 1, data_start, data_end, mem, stats, out);
            self.snd_nxt = self.snd_nxt.max(self.snd_una + 1);
            self.snd_max = self.snd_max.max(self.snd_nxt);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn send_data(
        &mut self,
        _now: Instant,
        seq: Seq,
        len: u32,
        data_start: Seq,
        data_end: Seq,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
    ) {
        let mut s = self.seg(seq, true);
        let off = seq.since(data_start) as usize;
        match self.sendq.slices(off, len as usize, mem, &mut s.payload) {
            Ok(copied) => s.copied = copied,
            Err(_) => stats.page_errors += 1,
        }
        s.psh = seq + len == data_end;
        out.push(s);
    }
}

/// RFC 9293 3.10.7.4 first check: whether a segment at `seq` occupying
/// `len` sequence numbers falls in the receive window `[rcv_nxt, rcv_nxt +
/// wnd)` (the four cases of the table). Widening `wnd` never turns an
/// acceptable segment into an unacceptable one.
#[inline]
fn seq_acceptable(seq: Seq, len: u32, rcv_nxt: Seq, wnd: u32) -> bool {
    match (len, wnd) {
        (0, 0) => seq == rcv_nxt,
        (0, w) => seq.in_range(rcv_nxt, rcv_nxt + w),
        (_, 0) => false,
        (l, w) => seq.in_range(rcv_nxt, rcv_nxt + w) || (seq + (l - 1)).in_range(rcv_nxt, rcv_nxt + w),
    }
}

#[cfg(test)]
mod acceptability_tests {
    use super::{seq_acceptable, Seq};

    /// The fast path of `on_segment` tests the advertised window first and
    /// widens only on rejection: sound because a segment acceptable in a
    /// window stays acceptable in every wider one (all four cases, around
    /// the wrap of the sequence space).
    #[test]
    fn acceptability_only_widens_with_the_window() {
        for base in [0u32, 1000, u32::MAX - 5] {
            let rcv_nxt = Seq(base);
            for off in -8i64..24 {
                let seq = Seq(base.wrapping_add(off as u32));
                for len in 0..6 {
                    for w in 0..12 {
                        if seq_acceptable(seq, len, rcv_nxt, w) {
                            for wider in w..16 {
                                assert!(seq_acceptable(seq, len, rcv_nxt, wider), "{off} {len} {w} {wider}");
                            }
                        }
                    }
                }
            }
        }
        assert!(seq_acceptable(Seq(7), 0, Seq(7), 0), "empty segment at RCV.NXT, zero window");
        assert!(!seq_acceptable(Seq(7), 1, Seq(7), 0), "data into a zero window");
        assert!(seq_acceptable(Seq(5), 3, Seq(7), 1), "ends in the window: overlaps the left edge");
        assert!(!seq_acceptable(Seq(8), 1, Seq(7), 1), "past the right edge");
    }
}

#[cfg(test)]
mod size_tests {
    #[test]
    fn connection_state_is_small() {
        let n = std::mem::size_of::<super::Conn>();
        eprintln!("size_of::<Conn>() = {n}");
        assert!(n <= 1024, "{n}");
    }
}
