//! The executor: one fresh [`Stack`] per script on a [`QueueDevice`], a
//! virtual clock that jumps to the next script event or `poll_at()`
//! deadline (never sleeps), and a step and wall-clock limit per script.
//!
//! Relaxations (all off with `strict`): the PSH flag is not compared; the
//! window of an outbound segment is compared only when the line states it
//! and the script set a buffer size; options compare as a set (kinds and
//! values; NOP/EOL padding and order ignored; TS val never compared); one
//! `>` line may match several consecutive segments that together cover it.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use zcstack::mem::HeapPages;
use zcstack::phy::queue::QueueDevice;
use zcstack::phy::DeviceCaps;
use zcstack::sysctl::{self, Applied, SysctlError};
use zcstack::wire::EthernetAddress;
use zcstack::{Duration, IfaceConfig, Instant, Stack, StackConfig, State};

use crate::frame::{self, Out, RawSeg};
use crate::packet::{Dir, Options, PacketLine, Segment, TcpOpt};
use crate::parse::{parse_script, Action, Event, Ret, Script, When};
use crate::report::Outcome;
use crate::syscall::{errno_alias, int, CallResult, Sockets, TcpiState};
use crate::value::Value;

/// The stack's address (packetdrill's default local address).
pub const LOCAL_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 1);
/// The scripted peer (packetdrill's default remote address), reached via the gateway.
pub const REMOTE_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The on-link gateway (its ARP entry is learnt before the script starts).
pub const GATEWAY_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 0, 254);
/// The peer's port when the stack listens.
pub const REMOTE_PORT: u16 = 48_888;
/// The latest virtual time a script may name, µs (one year): a later time
/// (or one whose sum overflows) is a FAIL at its line, so the engine's own
/// timer arithmetic never sees a time near `u64::MAX`.
pub const MAX_SCRIPT_US: u64 = 365 * 24 * 3_600 * 1_000_000;
/// How long a `*` packet line waits for its segment, µs of virtual time
/// (24 h: longer than the keepalive idle time, 7200 s, plus its probes).
pub const ANY_TIME_HORIZON_US: u64 = 24 * 3_600 * 1_000_000;

/// How scripts run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Timing tolerance, µs (a script's `--tolerance_usecs` overrides it).
    pub tolerance_usecs: Option<u64>,
    /// Names `#ifdef` sees.
    pub defines: Vec<String>,
    /// Switch every relaxation off.
    pub strict: bool,
    /// Poll steps per event (and per idle wait between two events) at most:
    /// bounds the work one line can cause, not the length of the script.
    pub max_steps: u64,
    /// Wall-clock limit per script.
    pub wall_limit: std::time::Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            tolerance_usecs: None,
            defines: Vec::new(),
            strict: false,
            max_steps: 200_000,
            wall_limit: std::time::Duration::from_secs(10),
        }
    }
}

/// Parses and runs a script's text.
pub fn run_source(src: &str, opts: &RunOptions) -> Outcome {
    let script = match parse_script(src, &opts.defines) {
        Ok(s) => s,
        Err(e) => return Outcome::Fail { line: e.line, msg: format!("parse error: {}", e.msg) },
    };
    run_script(&script, opts)
}

/// Runs a parsed script.
pub fn run_script(script: &Script, opts: &RunOptions) -> Outcome {
    match Runner::new(script, opts).and_then(|mut r| r.run(script)) {
        Ok(()) => Outcome::Pass,
        Err(o) => o,
    }
}

fn fail(line: usize, msg: impl Into<String>) -> Outcome {
    Outcome::Fail { line, msg: msg.into() }
}

fn skip(line: usize, reason: impl Into<String>) -> Outcome {
    Outcome::Skip { line, reason: reason.into() }
}

/// The one connection scripts talk about: ports and both sides' ISNs.
#[derive(Debug, Default)]
struct Flow {
    /// The stack's port (the listener's, or learnt from its SYN).
    local_port: Option<u16>,
    /// The peer's port.
    remote_port: u16,
    /// Our initial send sequence number (RFC 9293 ISS), learnt from our SYN.
    iss: Option<u32>,
    /// The peer's initial sequence number (IRS), from the script's SYN.
    irs: Option<u32>,
    /// The last TSval the stack sent.
    last_tsval: Option<u32>,
    /// The last TSval the script sent (what our ecr must echo).
    script_tsval: Option<u32>,
    /// A script SYN with a new ISN opened a new connection on the 4-tuple
    /// (TIME-WAIT reuse, a SYN after a reset): the stack's next SYN-ACK
    /// carries a new ISS, learnt afresh as packetdrill does per connection.
    new_conn: bool,
    /// The stack sent a SYN-ACK and the script has not completed (or reset)
    /// that handshake yet: a SYN with the same ISN is a retransmission.
    synack_pending: bool,
    /// The ISN of a script SYN that may open a new connection: the IRS once
    /// the stack answers it with a SYN-ACK.
    next_irs: Option<u32>,
}

/// A blocking call waiting for its result.
#[derive(Debug)]
struct InFlight {
    ev: Event,
    start_us: u64,
    end_us: u64,
}

struct Runner<'a> {
    st: Option<Stack<HeapPages>>,
    cfg: StackConfig,
    mtu: usize,
    dev: QueueDevice,
    now_us: u64,
    tol: u64,
    opts: &'a RunOptions,
    pending: VecDeque<(u64, RawSeg)>,
    flow: Flow,
    socks: Sockets,
    inflight: Option<InFlight>,
    /// Poll steps since the current event started (reset per event).
    steps: u64,
    /// Poll steps in the whole script (paces the wall-clock check).
    total_steps: u64,
    started: std::time::Instant,
    line: usize,
    /// Numeric `tcpi_state` values follow Linux (else FreeBSD).
    linux_states: bool,
}

impl<'a> Runner<'a> {
    fn new(script: &Script, opts: &'a RunOptions) -> Result<Self, Outcome> {
        let mut cfg = StackConfig::new(IfaceConfig {
            mac: frame::LOCAL_MAC,
            addr: LOCAL_IP,
            prefix_len: 24,
            gateway: Some(GATEWAY_IP),
        });
        cfg.arp_ttl = Duration::from_secs(1 << 30);
        // The socket buffers portable scripts assume (FreeBSD's defaults,
        // net.inet.tcp.recvspace and sendspace); sysctl lines override them.
        cfg.tcp.recv_buffer = 65_536;
        cfg.tcp.send_buffer = 32_768;
        // Linux's default window scale (tcp_rmem's 6 MiB maximum); FreeBSD
        // scripts select theirs with kern.ipc.maxsockbuf in the preamble.
        cfg.tcp.window_scale = 8;
        let _ = EthernetAddress::BROADCAST;
        let mut tol = opts.tolerance_usecs.unwrap_or(4000);
        let mut mtu = 1500;
        let mut mss = None;
        for (k, v) in &script.options {
            let bad = || fail(0, format!("bad header option --{k}={v}"));
            match k.as_str() {
                "tolerance_usecs" => tol = v.parse().map_err(|_| bad())?,
                "mtu" => mtu = v.parse::<usize>().ok().filter(|m| (576..=9216).contains(m)).ok_or_else(bad)?,
                // packetdrill's --mss=N (bytes): the MSS of the test
                // interface, so the stack advertises and sends segments of
                // at most N bytes; applied as an IPv4 MTU of N + 40 (20-byte
                // IP and TCP headers), overriding --mtu.
                "mss" => mss = Some(v.parse::<usize>().ok().filter(|m| (536..=9176).contains(m)).ok_or_else(bad)?),
                "ip_version" if v != "ipv4" => {
                    return Err(skip(0, format!("--ip_version={v}: only ipv4 is supported")))
                }
                _ => {}
            }
        }
        if let Some(mss) = mss {
            mtu = mss + 40;
        }
        // Every time sum stays far from u64::MAX.
        let tol = tol.min(MAX_SCRIPT_US);
        let linux_states =
            script.events.iter().any(|e| matches!(&e.action, Action::Shell(s) if s.contains("net.ipv4.")))
                || opts.defines.iter().any(|d| d.eq_ignore_ascii_case("linux"));
        if !linux_states && freebsd_flavoured(script) {
            // FreeBSD's default kern.ipc.maxsockbuf (2 MiB) gives scale 6.
            cfg.tcp.window_scale = 6;
            // FreeBSD's net.inet.tcp.drop_synfin=0: a listener answers the
            // SYN of a SYN+FIN.
            cfg.tcp.drop_synfin = false;
            // Scripts older than FreeBSD's move to RFC 6298's 1 s initial
            // RTO (those with no sysctl preamble) assume its former
            // TCPTV_RTOBASE of 3 s; scripts with a preamble get 1 s (or
            // set net.inet.tcp.rexmit_initial themselves).
            let preamble = script.events.iter().any(|e| matches!(&e.action, Action::Shell(s) if s.contains("sysctl")));
            if !preamble {
                cfg.tcp.initial_rto = Duration::from_secs(3);
            }
        }
        // FreeBSD's tcp_mss() rounds the socket buffers up to whole
        // segments (SO_RCVBUF 65536 reads 65700 once the MSS is 1460);
        // Linux does not.
        cfg.tcp.round_buffers_to_mss = !linux_states;
        Ok(Runner {
            st: None,
            cfg,
            mtu,
            dev: QueueDevice::new(DeviceCaps::default()),
            now_us: 0,
            tol,
            opts,
            pending: VecDeque::new(),
            flow: Flow { remote_port: REMOTE_PORT, ..Default::default() },
            socks: Sockets::new(REMOTE_IP),
            inflight: None,
            steps: 0,
            total_steps: 0,
            started: std::time::Instant::now(),
            line: 0,
            linux_states,
        })
    }

    fn now(&self) -> Instant {
        Instant::from_micros(self.now_us)
    }

    /// The stack, created on first use (after the script's sysctl preamble).
    fn stack(&mut self) -> &mut Stack<HeapPages> {
        if self.st.is_none() {
            let mut st = Stack::new(self.cfg, HeapPages::new(4096, 2048), self.mtu);
            self.dev.push_rx(frame::arp_request(GATEWAY_IP, LOCAL_IP));
            st.poll(Instant::ZERO, &mut self.dev);
            self.dev.take_tx();
            self.st = Some(st);
        }
        self.st.as_mut().expect("created above")
    }

    fn run(&mut self, script: &Script) -> Result<(), Outcome> {
        let mut last_us: u64 = 0;
        for ev in &script.events {
            self.line = ev.line;
            self.steps = 0;
            let base = |w: When, now: u64| -> Result<u64, Outcome> {
                let t = match w {
                    When::Any => Some(now as i64),
                    When::Abs(t) => Some(t),
                    When::Rel(d) => (last_us as i64).checked_add(d),
                };
                script_time(ev.line, t)
            };
            let start = base(ev.time.start, self.now_us)?;
            let offset = start as i64
                - match ev.time.start {
                    When::Rel(d) => d,
                    When::Abs(t) => t,
                    When::Any => start as i64,
                };
            let end_at = |e: i64| script_time(ev.line, offset.checked_add(e).map(|t| t.max(0)));
            let window_end = ev.time.window_end.map(end_at).transpose()?;
            match &ev.action {
                Action::Packet(PacketLine::Unsupported(r)) => return Err(skip(ev.line, r.clone())),
                Action::Packet(PacketLine::Tcp(seg)) if seg.dir == Dir::Out => {
                    let (lo, hi) = match (ev.time.start, window_end) {
                        (When::Any, _) => (0, self.now_us.saturating_add(ANY_TIME_HORIZON_US)),
                        (_, Some(end)) => (start.saturating_sub(self.tol), end.saturating_add(self.tol)),
                        _ => (start.saturating_sub(self.tol), start.saturating_add(self.tol)),
                    };
                    let at = self.expect_out(ev.line, seg, lo, hi)?;
                    last_us = at;
                    continue;
                }
                _ => {}
            }
            self.advance_to(start)?;
            self.check_unexpected(ev.line, start)?;
            last_us = start;
            match &ev.action {
                Action::Packet(PacketLine::Tcp(seg)) => self.inject(seg)?,
                Action::Packet(PacketLine::Icmp(l)) => self.inject_icmp(l),
                Action::Packet(PacketLine::Unsupported(_)) => unreachable!("handled above"),
                Action::Shell(cmd) => self.shell(ev.line, cmd)?,
                Action::Python(code) => self.python(ev.line, code)?,
                Action::Call { .. } => {
                    if self.inflight.is_some() {
                        self.finish_inflight()?;
                    }
                    let end = ev.time.block_end.map(end_at).transpose()?.unwrap_or(start);
                    self.start_call(ev, start, end)?;
                }
            }
            if self.st.is_some() {
                self.poll_once()?;
            }
        }
        if self.inflight.is_some() {
            self.finish_inflight()?;
        }
        Ok(())
    }

    /// The per-event step budget and the per-script wall clock.
    fn limits(&mut self) -> Result<(), Outcome> {
        self.steps += 1;
        self.total_steps += 1;
        if self.steps > self.opts.max_steps {
            return Err(fail(
                self.line,
                format!("time limit: {} poll steps in one event without finishing", self.opts.max_steps),
            ));
        }
        if self.total_steps % 256 == 0 && self.started.elapsed() > self.opts.wall_limit {
            return Err(fail(self.line, format!("time limit: {:?} of wall clock", self.opts.wall_limit)));
        }
        Ok(())
    }

    /// Polls the stack once at the current time and sniffs what it sent.
    fn poll_once(&mut self) -> Result<bool, Outcome> {
        self.limits()?;
        let now = self.now();
        let did = {
            let st = self.stack();
            let _ = st;
            let (st, dev) = (self.st.as_mut().expect("stack"), &mut self.dev);
            st.poll(now, dev)
        };
        for f in self.dev.take_tx() {
            match frame::decode(&f) {
                Out::Tcp(seg) => {
                    if seg.src.0 != LOCAL_IP {
                        continue;
                    }
                    if seg.flags.syn && (self.flow.iss.is_none() || !seg.flags.ack || self.flow.new_conn) {
                        self.flow.iss = Some(seg.seq);
                        self.flow.new_conn = false;
                        if let Some(irs) = self.flow.next_irs.take() {
                            self.flow.irs = Some(irs);
                        }
                    }
                    if seg.flags.syn && seg.flags.ack {
                        self.flow.synack_pending = true;
                    }
                    if seg.flags.syn && !seg.flags.ack && self.flow.local_port.is_none() {
                        self.flow.local_port = Some(seg.src.1);
                        self.flow.remote_port = seg.dst.1;
                    }
                    if let Some(TcpOpt::Ts(v, _)) = seg.options.iter().find(|o| matches!(o, TcpOpt::Ts(..))) {
                        self.flow.last_tsval = Some(*v);
                    }
                    self.pending.push_back((self.now_us, seg));
                }
                Out::ArpRequest(ip) => self.dev.push_rx(frame::arp_reply(ip, LOCAL_IP)),
                Out::Other(what) => tracing::debug!(what, "not compared"),
            }
        }
        self.check_inflight()?;
        Ok(did)
    }

    /// Advances the clock to `to_us`, stopping at every stack deadline on the way.
    /// With `until_output`, returns as soon as the stack sent a segment.
    fn advance(&mut self, to_us: u64, until_output: bool) -> Result<(), Outcome> {
        if self.st.is_none() {
            // Still in the sysctl preamble: nothing runs yet.
            self.now_us = self.now_us.max(to_us);
            return Ok(());
        }
        loop {
            let did = self.poll_once()?;
            if until_output && !self.pending.is_empty() {
                return Ok(());
            }
            let next = self.stack().poll_at().map(|t| t.total_micros());
            match next {
                Some(n) if n <= to_us => {
                    if n > self.now_us {
                        self.now_us = n;
                    } else if !did {
                        // A deadline that does not move: nudge the clock.
                        self.now_us = (self.now_us + 1000).min(to_us);
                        if self.now_us == to_us {
                            break;
                        }
                    }
                }
                _ => break,
            }
        }
        if to_us > self.now_us {
            self.now_us = to_us;
            self.poll_once()?;
        }
        Ok(())
    }

    fn advance_to(&mut self, to_us: u64) -> Result<(), Outcome> {
        self.advance(to_us, false)
    }

    /// A segment sent well before an event that is not a `>` line: unexpected.
    fn check_unexpected(&mut self, line: usize, at_us: u64) -> Result<(), Outcome> {
        if let Some((t, seg)) = self.pending.front() {
            if t + self.tol < at_us {
                let got = self.relative(seg);
                return Err(fail(line, format!("unexpected segment {got} at {} before this event", secs(*t))));
            }
        }
        Ok(())
    }

    /// Waits for the segment(s) of a `>` line inside `[lo, hi]` µs.
    fn expect_out(&mut self, line: usize, want: &Segment, lo: u64, hi: u64) -> Result<u64, Outcome> {
        let mut want = want.clone();
        let mut first_at = None;
        loop {
            // Run the clock up to the line's latest time (`hi` is bounded:
            // MAX_SCRIPT_US plus the tolerance, or the `*` horizon); the
            // per-event step budget and the wall clock bound the work.
            while self.pending.is_empty() && self.now_us < hi {
                self.advance(hi, true)?;
            }
            let Some((t, got)) = self.pending.pop_front() else {
                let after = if first_at.is_some() { " (the rest of a segment split in pieces)" } else { "" };
                return Err(fail(line, format!("expected {want}{after} by {} got nothing", secs(hi))));
            };
            let rel = self.relative(&got);
            if t < lo {
                return Err(fail(
                    line,
                    format!("expected {want} at {} got {rel} at {} (too early)", secs(lo + self.tol), secs(t)),
                ));
            }
            if t > hi {
                return Err(fail(line, format!("expected {want} by {} got {rel} at {} (too late)", secs(hi), secs(t))));
            }
            match self.compare(&want, &got, &rel) {
                Ok(None) => return Ok(first_at.unwrap_or(t)),
                Ok(Some(rest)) => {
                    first_at.get_or_insert(t);
                    want = rest;
                }
                Err(why) => return Err(fail(line, format!("expected {want} got {rel} ({why})"))),
            }
        }
    }

    /// `seg` in the script's notation: numbers relative to the ISNs.
    fn relative(&self, s: &RawSeg) -> Segment {
        let iss = self.flow.iss.unwrap_or(0);
        let options = if s.options.is_empty() {
            Options::None
        } else {
            Options::List(
                // SACK blocks and the ACK carry the peer's numbers: literal.
                s.options.clone(),
            )
        };
        Segment {
            dir: Dir::Out,
            flags: s.flags,
            seq: s.seq.wrapping_sub(iss),
            len: s.len,
            ack: s.flags.ack.then_some(s.ack),
            win: Some(u32::from(s.win)),
            urg: (s.flags.urg).then_some(s.urg),
            options,
        }
    }

    /// Compares a `>` line with what was sent: `Ok(None)` matched,
    /// `Ok(Some(rest))` matched the first piece of a line that covers
    /// several segments, `Err(why)` differs.
    fn compare(&self, want: &Segment, raw: &RawSeg, got: &Segment) -> Result<Option<Segment>, String> {
        let strict = self.opts.strict;
        let mut wf = want.flags;
        let mut gf = got.flags;
        if !strict {
            wf.psh = false;
            gf.psh = false;
        }
        let partial = !strict && got.len > 0 && got.len < want.len && got.seq == want.seq && !gf.fin && !gf.rst;
        if partial {
            wf.fin = false;
        }
        if wf != gf {
            return Err(format!("flags {} vs {}", want.flags, got.flags));
        }
        if got.seq != want.seq {
            return Err("sequence number".into());
        }
        if got.len != want.len && !partial {
            return Err("payload length".into());
        }
        if want.flags.ack && want.ack.is_some() && got.ack != want.ack {
            return Err("ack number".into());
        }
        if let Some(w) = want.win {
            if (strict || self.socks.buffers_set) && u32::from(raw.win) != w {
                return Err("window".into());
            }
        }
        // The urgent pointer is compared whenever the line states it, as
        // packetdrill compares the header field: against the raw field, so
        // `urg N` on a segment without URG fails unless the field is N.
        if let Some(u) = want.urg {
            if raw.urg != u {
                return Err(format!("urgent pointer {} vs {}", u, raw.urg));
            }
        }
        self.compare_options(&want.options, &got.options)?;
        if partial {
            let mut rest = want.clone();
            rest.seq = want.seq.wrapping_add(got.len);
            rest.len = want.len - got.len;
            return Ok(Some(rest));
        }
        Ok(None)
    }

    fn compare_options(&self, want: &Options, got: &Options) -> Result<(), String> {
        let empty = Vec::new();
        let w = match want {
            Options::Any => return Ok(()),
            Options::None => &empty,
            Options::List(v) => v,
        };
        let g = match got {
            Options::List(v) => v,
            _ => &empty,
        };
        let same = |a: &TcpOpt, b: &TcpOpt| match (a, b) {
            (TcpOpt::Ts(_, e1), TcpOpt::Ts(_, e2)) => e1 == e2,
            _ => a == b,
        };
        if self.opts.strict {
            if w.len() == g.len() && w.iter().zip(g).all(|(a, b)| same(a, b)) {
                return Ok(());
            }
            return Err("options (strict: order and padding)".into());
        }
        let pad = |o: &&TcpOpt| !matches!(o, TcpOpt::Nop | TcpOpt::Eol);
        let mut left: Vec<&TcpOpt> = g.iter().filter(pad).collect();
        for o in w.iter().filter(pad) {
            match left.iter().position(|x| same(o, x)) {
                Some(i) => {
                    left.remove(i);
                }
                None => return Err(format!("option {o} missing or different")),
            }
        }
        if let Some(o) = left.first() {
            return Err(format!("unexpected option {o}"));
        }
        Ok(())
    }

    /// Injects a `<` line.
    fn inject(&mut self, s: &Segment) -> Result<(), Outcome> {
        self.stack();
        // The peer's numbers are literal (below); `irs` only tells a new
        // connection on the 4-tuple (TIME-WAIT reuse, a SYN after a reset)
        // from a retransmitted SYN (same ISN while our SYN-ACK is
        // unanswered): a new one makes the stack's next SYN-ACK carry a new
        // ISS, learnt afresh as packetdrill does per connection. A SYN the
        // stack rejects (RFC 5961 4: challenge ACK) changes nothing.
        let first_syn = s.flags.syn && self.flow.irs.is_none();
        if first_syn {
            self.flow.irs = Some(s.seq);
        } else if s.flags.syn
            && !s.flags.ack
            && self.flow.irs.is_some_and(|irs| irs != s.seq || !self.flow.synack_pending)
        {
            self.flow.new_conn = true;
            self.flow.next_irs = Some(s.seq);
        }
        if !s.flags.syn && (s.flags.ack || s.flags.rst) {
            self.flow.synack_pending = false;
            self.flow.new_conn = false;
            self.flow.next_irs = None;
        }
        // The peer's numbers are the script's, literally, as packetdrill
        // (the peer) sends them: only the stack's side is relative.
        let iss = self.flow.iss.unwrap_or(0);
        let seq = s.seq;
        let ack = s.ack.map(|a| iss.wrapping_add(a)).unwrap_or(0);
        let mut options = match &s.options {
            Options::List(v) => v.clone(),
            _ => Vec::new(),
        };
        for o in options.iter_mut() {
            match o {
                TcpOpt::Ts(v, e) => {
                    self.flow.script_tsval = Some(*v);
                    if *e != 0 || !s.flags.syn {
                        if let Some(t) = self.flow.last_tsval {
                            *e = t;
                        }
                    }
                }
                TcpOpt::Sack(b) => {
                    *b = b.map(|x| x.map(|(l, r)| (iss.wrapping_add(l), iss.wrapping_add(r))));
                }
                _ => {}
            }
        }
        let local_port = self.flow.local_port.unwrap_or(crate::syscall::SCRIPT_PORT);
        let raw = RawSeg {
            src: (REMOTE_IP, self.flow.remote_port),
            dst: (LOCAL_IP, local_port),
            flags: s.flags,
            seq,
            ack,
            win: s.win.unwrap_or(65535).min(65535) as u16,
            urg: s.urg.unwrap_or(0),
            options,
            len: s.len,
        };
        self.dev.push_rx(frame::build(&raw));
        Ok(())
    }

    /// Injects a `<` ICMP line: an error from the peer's address quoting the
    /// named segment of ours (relative to our ISS; relative 0 when unnamed).
    fn inject_icmp(&mut self, l: &crate::icmp::IcmpLine) {
        self.stack();
        let iss = self.flow.iss.unwrap_or(0);
        let q = l.quoted.unwrap_or(crate::icmp::Quoted { seq: 0, len: 0 });
        let local_port = self.flow.local_port.unwrap_or(crate::syscall::SCRIPT_PORT);
        let abs = crate::icmp::QuoteAbs {
            local: (LOCAL_IP, local_port),
            remote: (REMOTE_IP, self.flow.remote_port),
            seq: iss.wrapping_add(q.seq),
            len: q.len,
        };
        self.dev.push_rx(crate::icmp::build(l, &abs));
    }

    fn start_call(&mut self, ev: &Event, start: u64, end: u64) -> Result<(), Outcome> {
        let Action::Call { name, args, ret } = &ev.action else { unreachable!("a call") };
        self.stack();
        let ret_fd = int(&ret.value);
        let now = self.now();
        let st = self.st.as_mut().expect("stack");
        let r = self.socks.call(st, now, name, args, ret_fd, Duration::ZERO);
        match r {
            CallResult::Block => {
                self.inflight = Some(InFlight { ev: ev.clone(), start_us: start, end_us: end });
                Ok(())
            }
            r => self.finish_call(ev.line, name, ret, r, end),
        }
    }

    fn finish_call(&self, line: usize, name: &str, ret: &Ret, r: CallResult, end: u64) -> Result<(), Outcome> {
        match r {
            CallResult::Skip(why) => Err(skip(line, why)),
            CallResult::Bad(why) => Err(fail(line, why)),
            CallResult::Block => unreachable!("blocking handled by the caller"),
            CallResult::Done(got) => {
                if self.now_us + self.tol < end {
                    return Err(fail(
                        line,
                        format!("{name} returned at {} but should block until {}", secs(self.now_us), secs(end)),
                    ));
                }
                check_ret(name, ret, &got).map_err(|m| fail(line, m))
            }
        }
    }

    /// Retries a blocked call; fails it when its time is up.
    fn check_inflight(&mut self) -> Result<(), Outcome> {
        let Some(inf) = self.inflight.as_ref() else { return Ok(()) };
        let Action::Call { name, args, ret } = &inf.ev.action else { unreachable!("a call") };
        let waited = Duration::from_micros(self.now_us.saturating_sub(inf.start_us));
        let ret_fd = int(&ret.value);
        let now = self.now();
        let st = self.st.as_mut().expect("stack");
        let r = self.socks.call(st, now, name, args, ret_fd, waited);
        if r == CallResult::Block {
            if self.now_us > inf.end_us.saturating_add(self.tol) {
                return Err(fail(
                    inf.ev.line,
                    format!("{name} still blocked at {} (should return at {})", secs(self.now_us), secs(inf.end_us)),
                ));
            }
            return Ok(());
        }
        let inf = self.inflight.take().expect("checked");
        let Action::Call { name, ret, .. } = &inf.ev.action else { unreachable!("a call") };
        if self.now_us + self.tol < inf.end_us {
            return Err(fail(
                inf.ev.line,
                format!("{name} returned at {}, expected at {}", secs(self.now_us), secs(inf.end_us)),
            ));
        }
        self.finish_call(inf.ev.line, name, ret, r, 0)
    }

    /// Runs the clock until the blocked call returns or its deadline passes.
    fn finish_inflight(&mut self) -> Result<(), Outcome> {
        let Some(inf) = self.inflight.as_ref() else { return Ok(()) };
        let (line, deadline) = (inf.ev.line, inf.end_us.saturating_add(self.tol));
        while self.inflight.is_some() {
            if self.now_us > deadline {
                return Err(fail(line, format!("blocking call did not return by {}", secs(deadline))));
            }
            let next =
                self.now_us.max(self.stack().poll_at().map_or(deadline + 1, |t| t.total_micros())).min(deadline + 1);
            let next = if next == self.now_us { next + 1000 } else { next };
            self.advance_to(next)?;
        }
        Ok(())
    }

    fn shell(&mut self, line: usize, cmd: &str) -> Result<(), Outcome> {
        for part in cmd.split(['\n', ';']).flat_map(|p| p.split("&&")) {
            let words: Vec<&str> = part.split_whitespace().collect();
            if words.first() != Some(&"sysctl") {
                if !words.is_empty() {
                    tracing::info!(line, cmd = part.trim(), "shell command not executed");
                }
                continue;
            }
            for w in words[1..].iter().filter(|w| !w.starts_with('-')) {
                let Some((k, v)) = w.split_once('=') else { continue };
                let v = v.trim_matches(['"', '\'']);
                let mut cfg = self.cfg;
                match sysctl::apply(&mut cfg, k, v) {
                    Ok(Applied::Unsupported(why)) => return Err(skip(line, why)),
                    Ok(Applied::Fixed) => {}
                    Ok(Applied::Set) => {
                        if self.st.is_some() && cfg != self.cfg && self.socks.is_empty() {
                            // A cleanup line restoring a knob once every
                            // socket is closed changes nothing left to check.
                            tracing::info!(line, knob = k, "sysctl after every socket closed ignored");
                            continue;
                        }
                        if self.st.is_some() && cfg != self.cfg {
                            return Err(skip(line, format!("sysctl {k} after the stack started: not supported")));
                        }
                        if k.contains("space") || k.contains("mem") {
                            self.socks.buffers_set = true;
                        }
                        self.cfg = cfg;
                    }
                    Err(SysctlError::Unknown(_)) => {
                        tracing::info!(line, knob = k, "sysctl with no zcstack equivalent ignored")
                    }
                    Err(e) => return Err(fail(line, e.to_string())),
                }
            }
        }
        Ok(())
    }

    fn python(&mut self, line: usize, code: &str) -> Result<(), Outcome> {
        for stmt in code.lines().flat_map(|l| l.split(';')).map(str::trim).filter(|s| !s.is_empty()) {
            let Some(rest) = stmt.strip_prefix("assert") else {
                return Err(skip(line, format!("inline Python not supported: {stmt}")));
            };
            // Python's `assert test, message`: the message is only shown
            // when the test fails; it is not evaluated here.
            let (test, message) = split_assert_message(rest);
            let Some((lhs, rhs)) = test.split_once("==") else {
                return Err(skip(line, format!("inline Python not supported: {stmt}")));
            };
            if lhs.trim() != "tcpi_state" {
                return Err(skip(line, format!("inline Python not supported: {stmt}")));
            }
            let want = rhs.trim();
            let st = self.stack();
            let _ = st;
            let state = self.socks.last_tcpi(self.st.as_ref().expect("stack"));
            // Names in the script's own flavour: a `TCP_*` name is answered
            // with Linux names, `TCPS_*` with FreeBSD's, a number with the
            // script's platform.
            let linux = if want.starts_with("TCPS_") { false } else { want.starts_with("TCP_") || self.linux_states };
            let got = state.map(|s| tcpi_names(s, linux)).unwrap_or(("no connection", -1));
            let ok = match want.parse::<i64>() {
                Ok(n) => n == got.1,
                Err(_) => tcpi_by_name(want).is_some_and(|s| Some(s) == state),
            };
            if !ok {
                let message = message.map(|m| format!(" (assert message: {m})")).unwrap_or_default();
                return Err(fail(line, format!("expected tcpi_state == {want} got {}{message}", got.0)));
            }
        }
        Ok(())
    }
}

/// Checks a call's result against the script's `= ret [ERRNO]`.
fn check_ret(name: &str, ret: &Ret, got: &Result<i64, &'static str>) -> Result<(), String> {
    let want_val = match &ret.value {
        Value::Ellipsis => None,
        v => Some(int(v).ok_or_else(|| format!("{name}: cannot evaluate return value {v}"))?),
    };
    let show = |g: &Result<i64, &str>| match g {
        Ok(n) => n.to_string(),
        Err(e) => format!("-1 {e}"),
    };
    let want_txt = match (&want_val, &ret.errno) {
        (Some(v), Some(e)) => format!("{v} {e}"),
        (Some(v), None) => v.to_string(),
        (None, _) => "...".into(),
    };
    let ok = match (got, want_val, &ret.errno) {
        (_, None, _) => true,
        (Ok(n), Some(v), None) => *n == v,
        (Err(e), Some(-1), Some(we)) => errno_alias(e) == errno_alias(we),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{name}: expected = {want_txt} got = {}", show(got)))
    }
}

/// A script time in µs, or a FAIL at `line` when it overflowed (`None`),
/// is negative or lies beyond [`MAX_SCRIPT_US`].
fn script_time(line: usize, t: Option<i64>) -> Result<u64, Outcome> {
    match t {
        None => Err(fail(line, "time overflows")),
        Some(t) if t < 0 => Err(fail(line, "negative time")),
        Some(t) if t as u64 > MAX_SCRIPT_US => {
            Err(fail(line, format!("time {} is beyond the runner's limit of {}", secs(t as u64), secs(MAX_SCRIPT_US))))
        }
        Some(t) => Ok(t as u64),
    }
}

fn secs(us: u64) -> String {
    if us == u64::MAX {
        "any time".into()
    } else {
        format!("{}.{:06}s", us / 1_000_000, us % 1_000_000)
    }
}

/// Splits Python's `assert test, message` at the first comma outside
/// brackets and quotes: `(test, Some(message))`, or `(test, None)`.
fn split_assert_message(s: &str) -> (&str, Option<&str>) {
    let mut depth = 0i32;
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '(' | '[' | '{') => depth += 1,
            (None, ')' | ']' | '}') => depth -= 1,
            (None, ',') if depth == 0 => return (&s[..i], Some(s[i + 1..].trim())),
            _ => {}
        }
    }
    (s, None)
}

/// A `tcpi_state` name: Linux `TCP_*` or FreeBSD `TCPS_*`, LISTEN included.
fn tcpi_by_name(n: &str) -> Option<TcpiState> {
    match n {
        "TCP_LISTEN" | "TCPS_LISTEN" => Some(TcpiState::Listen),
        _ => linux_name(n).or_else(|| freebsd_name(n)).map(TcpiState::Conn),
    }
}

/// A `tcpi_state`'s name and number: Linux `TCP_LISTEN` is 10, FreeBSD
/// `TCPS_LISTEN` is 1; connection states as [`state_names`].
fn tcpi_names(s: TcpiState, linux: bool) -> (&'static str, i64) {
    match s {
        TcpiState::Listen if linux => ("TCP_LISTEN", 10),
        TcpiState::Listen => ("TCPS_LISTEN", 1),
        TcpiState::Conn(c) => state_names(c, linux),
    }
}

fn linux_name(n: &str) -> Option<State> {
    Some(match n {
        "TCP_ESTABLISHED" => State::Established,
        "TCP_SYN_SENT" => State::SynSent,
        "TCP_SYN_RECV" => State::SynReceived,
        "TCP_FIN_WAIT1" => State::FinWait1,
        "TCP_FIN_WAIT2" => State::FinWait2,
        "TCP_TIME_WAIT" => State::TimeWait,
        "TCP_CLOSE" => State::Closed,
        "TCP_CLOSE_WAIT" => State::CloseWait,
        "TCP_LAST_ACK" => State::LastAck,
        "TCP_CLOSING" => State::Closing,
        _ => return None,
    })
}

fn freebsd_name(n: &str) -> Option<State> {
    Some(match n {
        "TCPS_CLOSED" => State::Closed,
        "TCPS_SYN_SENT" => State::SynSent,
        "TCPS_SYN_RECEIVED" => State::SynReceived,
        "TCPS_ESTABLISHED" => State::Established,
        "TCPS_CLOSE_WAIT" => State::CloseWait,
        "TCPS_FIN_WAIT_1" => State::FinWait1,
        "TCPS_CLOSING" => State::Closing,
        "TCPS_LAST_ACK" => State::LastAck,
        "TCPS_FIN_WAIT_2" => State::FinWait2,
        "TCPS_TIME_WAIT" => State::TimeWait,
        _ => return None,
    })
}

/// A state's name and number (Linux `TCP_*` or FreeBSD `TCPS_*` numbering).
fn state_names(s: State, linux: bool) -> (&'static str, i64) {
    if linux {
        match s {
            State::Established => ("TCP_ESTABLISHED", 1),
            State::SynSent => ("TCP_SYN_SENT", 2),
            State::SynReceived => ("TCP_SYN_RECV", 3),
            State::FinWait1 => ("TCP_FIN_WAIT1", 4),
            State::FinWait2 => ("TCP_FIN_WAIT2", 5),
            State::TimeWait => ("TCP_TIME_WAIT", 6),
            State::Closed => ("TCP_CLOSE", 7),
            State::CloseWait => ("TCP_CLOSE_WAIT", 8),
            State::LastAck => ("TCP_LAST_ACK", 9),
            State::Closing => ("TCP_CLOSING", 11),
        }
    } else {
        match s {
            State::Closed => ("TCPS_CLOSED", 0),
            State::SynSent => ("TCPS_SYN_SENT", 2),
            State::SynReceived => ("TCPS_SYN_RECEIVED", 3),
            State::Established => ("TCPS_ESTABLISHED", 4),
            State::CloseWait => ("TCPS_CLOSE_WAIT", 5),
            State::FinWait1 => ("TCPS_FIN_WAIT_1", 6),
            State::Closing => ("TCPS_CLOSING", 7),
            State::LastAck => ("TCPS_LAST_ACK", 8),
            State::FinWait2 => ("TCPS_FIN_WAIT_2", 9),
            State::TimeWait => ("TCPS_TIME_WAIT", 10),
        }
    }
}

/// A script written for FreeBSD: it names a FreeBSD knob or tool
/// (`net.inet.*`, `kern.ipc.*`, `sockstat`), a `TCPS_*` state, or reads
/// `SO_RCVBUF` (FreeBSD's suites check the 65536-byte default; Linux's
/// doubles what was set). Selects FreeBSD's defaults where they differ.
fn freebsd_flavoured(script: &Script) -> bool {
    script.events.iter().any(|e| match &e.action {
        Action::Packet(PacketLine::Tcp(seg)) => freebsd_syn_options(seg),
        Action::Shell(s) => s.contains("net.inet.") || s.contains("kern.ipc.") || s.contains("sockstat"),
        Action::Python(p) => p.contains("TCPS_"),
        Action::Call { name, args, .. } => {
            name == "getsockopt" && args.iter().any(|a| matches!(a, Value::Sym(s) if s == "SO_RCVBUF"))
        }
        _ => false,
    })
}

/// An outbound SYN whose expected options list the window scale before
/// SACK-permitted or the timestamp: FreeBSD's order (`mss, nop, wscale,
/// sackOK, TS`); Linux writes `mss, sackOK, TS, nop, wscale`.
fn freebsd_syn_options(seg: &Segment) -> bool {
    let Options::List(opts) = &seg.options else { return false };
    if seg.dir != Dir::Out || !seg.flags.syn || seg.flags.ack {
        return false;
    }
    let at = |f: fn(&TcpOpt) -> bool| opts.iter().position(f);
    match at(|o| matches!(o, TcpOpt::WScale(_))) {
        Some(w) => [at(|o| matches!(o, TcpOpt::SackOk)), at(|o| matches!(o, TcpOpt::Ts(..)))]
            .into_iter()
            .flatten()
            .any(|later| later > w),
        None => false,
    }
}
