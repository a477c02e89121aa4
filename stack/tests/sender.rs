//! Sender-side loss recovery and the persist timer against hostile and
//! unlucky peers (issue 10, faults 2 and 3): a scripted receiver that
//! withholds ACKs, sends odd SACK blocks or keeps its window shut, and
//! checks every segment the stack sends.
mod common;

use common::script::*;
use common::*;
use zcstack::mem::HeapPages;
use zcstack::phy::queue::QueueDevice;
use zcstack::wire::*;
use zcstack::{Duration, Instant, SocketHandle, Stack, State};

/// The connection options the scripted client's SYN offers.
#[derive(Clone, Copy)]
struct Opts {
    mss: u16,
    sack: bool,
    ts: bool,
    win: u16,
}

const SACK_TS: Opts = Opts { mss: 1460, sack: true, ts: false, win: 65535 };

/// One accepted connection and the scripted client on the other end.
struct Peer {
    st: Stack<HeapPages>,
    dev: QueueDevice,
    h: SocketHandle,
    /// Our (the stack's) first data sequence number.
    snd: u32,
    /// The client's next sequence number.
    cseq: u32,
    now: Instant,
    opts: Opts,
    /// The client's TSval clock.
    tsval: u32,
    /// Latest TSval seen from the stack.
    ts_recent: u32,
}

impl Peer {
    fn open(opts: Opts) -> Peer {
        // ARP entries outlive the longest test (probes go on for minutes).
        let mut cfg = stack_config(A_IP, 1);
        cfg.arp_ttl = Duration::from_secs(1_000_000);
        let (mut st, mut dev) = (Stack::new(cfg, HeapPages::new(256, 2048), 1500), script_device());
        learn_peer(&mut st, &mut dev);
        let l = st.tcp_listen(80, 8).unwrap();
        let mut syn = seg(1000, None, TcpControl::Syn);
        syn.mss = Some(opts.mss);
        syn.sack_ok = opts.sack;
        syn.win = opts.win;
        if opts.ts {
            syn.ts = Some((100, 0));
        }
        let out = exchange(&mut st, &mut dev, Instant::ZERO, vec![tcp_frame(syn)]);
        assert_eq!(out.len(), 1, "SYN-ACK: {out:?}");
        assert_eq!(out[0].sack_ok, opts.sack);
        let snd = out[0].seq + 1;
        let mut p = Peer {
            st,
            dev,
            h: l,
            snd,
            cseq: 1001,
            now: Instant::from_millis(1),
            opts,
            tsval: 101,
            ts_recent: out[0].ts.map_or(0, |t| t.0),
        };
        let ack = p.ack(snd, opts.win, &[]);
        assert!(p.send(vec![ack]).is_empty());
        p.h = p.st.tcp_accept(l).unwrap().0;
        assert_eq!(p.st.tcp_state(p.h), Ok(State::Established));
        p
    }

    /// A pure ACK from the client with up to three SACK blocks.
    fn ack(&mut self, ack: u32, win: u16, sack: &[(u32, u32)]) -> Vec<u8> {
        let mut s = seg(self.cseq, Some(ack), TcpControl::None);
        s.win = win;
        for (slot, b) in s.sack.iter_mut().zip(sack) {
            *slot = Some(*b);
        }
        if self.opts.ts {
            self.tsval += 1;
            s.ts = Some((self.tsval, self.ts_recent));
        }
        tcp_frame(s)
    }

    /// Delivers frames at `self.now`, polls, returns what the stack sent.
    fn send(&mut self, frames: Vec<Vec<u8>>) -> Vec<Got> {
        let out = exchange(&mut self.st, &mut self.dev, self.now, frames);
        for g in &out {
            if let Some((v, _)) = g.ts {
                self.ts_recent = v;
            }
        }
        out
    }

    /// Jumps from timer to timer until the stack sends something (at most
    /// 100 timers).
    fn wait(&mut self) -> Vec<Got> {
        for _ in 0..100 {
            let t = self.st.poll_at().expect("a timer is pending");
            self.now = self.now.max(t);
            let out = self.send(vec![]);
            if !out.is_empty() {
                return out;
            }
        }
        panic!("nothing sent after 100 timers: {}", self.st.tcp().describe(self.h).unwrap());
    }

    /// Writes `n` responses of `size` bytes each (pipelined requests).
    fn write_responses(&mut self, sizes: impl IntoIterator<Item = usize>) -> usize {
        let mut total = 0;
        for (i, n) in sizes.into_iter().enumerate() {
            let d = pattern(i as u64, n);
            assert_eq!(self.st.tcp_write(self.h, &d), Ok(n));
            total += n;
        }
        total
    }
}

/// Payload a full segment carries: the MSS less 12 bytes of timestamps.
fn smss(o: &Opts) -> usize {
    usize::from(o.mss) - if o.ts { 12 } else { 0 }
}

/// 40 responses of 255 or 256 bytes: a 10,220-byte flight (seven segments of 1460).
fn forty_responses(p: &mut Peer) -> usize {
    p.write_responses((0..40).map(|i| 255 + (i % 2)))
}

/// The receiving side of the scripted client after the hostile opening:
/// holds a byte map of the flight, ACKs every segment at once with SACK
/// blocks for what it holds, one millisecond RTT. Checks every segment:
/// full-sized unless it carries the last bytes or ends where SACKed data
/// starts, and never a byte the client had SACKed (no RTO happens once the
/// client cooperates). Returns the payload bytes sent from `start` on.
struct Receiver {
    /// Report SACK blocks (SACK negotiated).
    sack: bool,
    /// Assert that no SACKed byte is resent (off only where the peer
    /// SACKed more ranges than any sender keeps).
    strict: bool,
    have: Vec<bool>,
    /// Bytes the client has reported as held (SACK), never to be resent.
    sacked: Vec<bool>,
    sent_bytes: usize,
    segments: usize,
}

impl Receiver {
    fn new(flight: usize) -> Receiver {
        Receiver {
            sack: true,
            strict: true,
            have: vec![false; flight],
            sacked: vec![false; flight],
            sent_bytes: 0,
            segments: 0,
        }
    }

    fn cum(&self) -> usize {
        self.have.iter().position(|h| !h).unwrap_or(self.have.len())
    }

    /// Ranges held above the cumulative ACK, as absolute sequence numbers.
    fn blocks(&self, snd: u32) -> Vec<(u32, u32)> {
        let mut v = Vec::new();
        if !self.sack {
            return v;
        }
        let mut i = self.cum();
        while i < self.have.len() {
            if self.have[i] {
                let a = i;
                while i < self.have.len() && self.have[i] {
                    i += 1;
                }
                v.push((snd + a as u32, snd + i as u32));
            } else {
                i += 1;
            }
        }
        v.truncate(3);
        v
    }

    /// Marks `[a, b)` (offsets) held and reported.
    fn claim(&mut self, a: usize, b: usize) {
        for i in a..b.min(self.have.len()) {
            self.have[i] = true;
            self.sacked[i] = true;
        }
    }

    /// Checks one data segment and records it.
    fn take(&mut self, p: &Peer, g: &Got) {
        let off = g.seq.wrapping_sub(p.snd) as usize;
        let len = g.payload.len();
        assert!(off + len <= self.have.len(), "beyond the data: {off}+{len}");
        let end = off + len;
        let ends_at_sacked = end < self.have.len() && self.sacked[end];
        assert!(
            len == smss(&p.opts) || end == self.have.len() || ends_at_sacked,
            "a {len}-byte segment at offset {off} (SMSS {}) that neither carries the last bytes nor fills a hole",
            smss(&p.opts)
        );
        for i in off..end {
            assert!(!self.strict || !self.sacked[i], "byte {i} was SACKed and is resent (segment {off}+{len})");
            self.have[i] = true;
        }
        self.sent_bytes += len;
        self.segments += 1;
    }

    /// Cooperates until everything is acknowledged: answers each segment
    /// with an ACK (and SACK blocks), 1 ms later. Bounded in steps.
    fn run(&mut self, p: &mut Peer, mut out: Vec<Got>, win: u16) -> Duration {
        let t0 = p.now;
        for _ in 0..10_000 {
            let mut acks = Vec::new();
            for g in out.iter().filter(|g| !g.payload.is_empty()) {
                self.take(p, g);
                for b in self.blocks(p.snd) {
                    for i in b.0 - p.snd..b.1 - p.snd {
                        self.sacked[i as usize] = true;
                    }
                }
                let (cum, blocks) = (p.snd + self.cum() as u32, self.blocks(p.snd));
                acks.push(p.ack(cum, win, &blocks));
            }
            if p.st.tcp().send_queued(p.h).unwrap() == 0 {
                return p.now.saturating_duration_since(t0);
            }
            if acks.is_empty() {
                out = p.wait();
            } else {
                p.now += Duration::from_millis(1);
                out = p.send(acks);
            }
        }
        panic!("the transfer did not finish: {}", p.st.tcp().describe(p.h).unwrap());
    }
}

/// Sends the whole initial flight of the forty responses; returns (queued
/// bytes, bytes in flight). Without timestamps: seven full segments. With
/// them (1448 bytes of payload each) Nagle holds the last 84 bytes until an
/// ACK comes.
fn send_flight(p: &mut Peer) -> (usize, usize) {
    let total = forty_responses(p);
    assert_eq!(total, 10_220);
    p.now = Instant::from_millis(2);
    let out = p.send(vec![]);
    let mss = smss(&p.opts);
    let flight: usize = out.iter().map(|g| g.payload.len()).sum();
    assert_eq!(flight, total - total % mss, "the initial window carries every full segment");
    assert!(out.iter().all(|g| g.payload.len() == mss), "{}", brief(&out));
    (total, flight)
}

/// Sequence numbers and lengths of segments (no payload dumps in messages).
fn brief(out: &[Got]) -> String {
    out.iter().map(|g| format!("{}+{} ", g.seq, g.payload.len())).collect()
}

/// Withholds ACKs through `rtos` retransmission timeouts: each resends one
/// full segment at snd_una (no runt after it), each after twice the wait
/// of the one before (RFC 6298 5.5).
fn withhold_through_rtos(p: &mut Peer, rtos: u64) {
    let mss = smss(&p.opts);
    let mut last: Option<(Instant, Duration)> = None;
    let t0 = p.now;
    for n in 1..=rtos {
        let out = p.wait();
        assert_eq!(out.len(), 1, "one retransmission per timeout: {}", brief(&out));
        assert_eq!((out[0].seq, out[0].payload.len()), (p.snd, mss));
        assert_eq!(p.st.stats().tcp_rto_retransmits, n);
        let since = p.now.saturating_duration_since(last.map_or(t0, |l| l.0));
        if let Some((_, prev)) = last {
            assert_eq!(since, prev.saturating_mul(2), "the RTO backs off");
        }
        last = Some((p.now, since));
    }
}

/// A SACK block as offsets from our first data byte (negative: below it).
type Block = (i64, i64);

fn abs(p: &Peer, off: i64) -> u32 {
    p.snd.wrapping_add(off as u32)
}

/// After the timeouts: one ACK of the first segment with `blocks`; the
/// receiver holds what of them is valid, then cooperates. Checks the
/// bounds of fault 2.
fn hostile_ack_then_cooperate(p: &mut Peer, rx: &mut Receiver, total: usize, flight: usize, blocks: &[Block]) {
    let mss = smss(&p.opts);
    rx.claim(0, mss);
    for &(l, r) in blocks {
        // The stack may only believe blocks within (ack, snd_max].
        if l >= mss as i64 && l < r && r <= flight as i64 {
            rx.claim(l as usize, r as usize);
        }
    }
    p.now += Duration::from_millis(1);
    let sack: Vec<(u32, u32)> = blocks.iter().map(|&(l, r)| (abs(p, l), abs(p, r))).collect();
    let rtos = p.st.stats().tcp_rto_retransmits;
    let ack = p.ack(p.snd + mss as u32, p.opts.win, &sack);
    let out = p.send(vec![ack]);
    let took = rx.run(p, out, p.opts.win);
    let after = p.st.stats().tcp_rto_retransmits;
    assert_eq!(after, rtos, "no further timeout: {}", p.st.tcp().describe(p.h).unwrap());
    assert!(rx.sent_bytes + mss <= 2 * total, "{} bytes resent for a {total}-byte queue", rx.sent_bytes);
    assert!(took < Duration::from_millis(100), "recovery took {took}");
}

/// Issue 10 fault 2, exactly: MSS 1460 and SACK, 40 pipelined responses
/// (10,220 bytes), no ACK until the RTO resends the first segment, then one
/// ACK for that segment with one SACK block ending at snd_max - flight/2 + 1.
fn rto_then_one_sack_block(opts: Opts) {
    let mut p = Peer::open(opts);
    let (total, flight) = send_flight(&mut p);
    withhold_through_rtos(&mut p, 1);
    let mss = smss(&opts) as i64;
    let block = (2 * mss, flight as i64 - flight as i64 / 2 + 1);
    let mut rx = Receiver::new(total);
    hostile_ack_then_cooperate(&mut p, &mut rx, total, flight, &[block]);
}

#[test]
fn rto_then_one_sack_block_sends_full_segments_and_skips_sacked_data() {
    rto_then_one_sack_block(SACK_TS);
}

#[test]
fn rto_with_timestamps_sends_no_runt_segments() {
    rto_then_one_sack_block(Opts { ts: true, ..SACK_TS });
}

#[test]
fn rto_then_several_sack_blocks() {
    let mut p = Peer::open(SACK_TS);
    let (total, flight) = send_flight(&mut p);
    withhold_through_rtos(&mut p, 1);
    let m = 1460;
    let mut rx = Receiver::new(total);
    // Three blocks, one not on a segment boundary, most recent first.
    hostile_ack_then_cooperate(
        &mut p,
        &mut rx,
        total,
        flight,
        &[(5 * m, 6 * m + 7), (2 * m, 3 * m), (4 * m - 100, 4 * m)],
    );
}

#[test]
fn rto_then_invalid_sack_blocks_are_ignored() {
    // Beyond snd_max, below snd_una, reversed, straddling snd_una, and two
    // that overlap each other: only the overlapping pair is believed.
    for (i, blocks) in [
        vec![(9000, 20_000), (-5000, -10), (6000, 3000)],
        vec![(-100, 3000), (2920, 5000), (4000, 5111)],
        vec![(10_220, 10_221), (1_000_000, 2_000_000), (3000, 3000)],
    ]
    .into_iter()
    .enumerate()
    {
        let mut p = Peer::open(SACK_TS);
        let (total, flight) = send_flight(&mut p);
        withhold_through_rtos(&mut p, 1);
        let mut rx = Receiver::new(total);
        hostile_ack_then_cooperate(&mut p, &mut rx, total, flight, &blocks);
        assert_eq!(p.st.stats().page_errors, 0, "case {i}");
    }
}

#[test]
fn repeated_rtos_then_sack() {
    let mut p = Peer::open(SACK_TS);
    let (total, flight) = send_flight(&mut p);
    withhold_through_rtos(&mut p, 4);
    let mut rx = Receiver::new(total);
    hostile_ack_then_cooperate(&mut p, &mut rx, total, flight, &[(2920, flight as i64 / 2 + 1)]);
}

#[test]
fn rto_without_sack_goes_back_n_in_full_segments() {
    // NewReno path: no SACK. The peer holds everything but the first
    // segment (it cannot say so); after the RTO it ACKs only that segment
    // (a partial ACK), then cooperates with cumulative ACKs.
    let opts = Opts { sack: false, ..SACK_TS };
    let mut p = Peer::open(opts);
    let (total, flight) = send_flight(&mut p);
    withhold_through_rtos(&mut p, 2);
    let mut rx = Receiver::new(total);
    rx.sack = false;
    hostile_ack_then_cooperate(&mut p, &mut rx, total, flight, &[]);
}

#[test]
fn rto_during_sack_recovery() {
    // Three duplicate ACKs SACKing segments 2-4 start recovery: the first
    // segment is resent. That is lost too; the RTO fires during recovery;
    // then one ACK with a block for segments 6-7.
    let mut p = Peer::open(SACK_TS);
    let (total, flight) = send_flight(&mut p);
    let m = 1460u32;
    let snd = p.snd;
    let mut dups = Vec::new();
    for k in 2..=4 {
        p.now += Duration::from_micros(100);
        dups.push(p.ack(snd, p.opts.win, &[(snd + m, snd + k * m)]));
    }
    let out = p.send(dups);
    let data: Vec<&Got> = out.iter().filter(|g| !g.payload.is_empty()).collect();
    assert!(!data.is_empty(), "fast retransmit");
    assert_eq!((data[0].seq, data[0].payload.len()), (snd, 1460), "{}", brief(&out));
    for g in &data {
        let off = g.seq - snd;
        assert!(!(m..4 * m).contains(&off), "SACKed segment at {off} resent in recovery");
    }
    withhold_through_rtos_after_recovery(&mut p);
    let mut rx = Receiver::new(total);
    rx.claim(m as usize, 4 * m as usize);
    hostile_ack_then_cooperate(&mut p, &mut rx, total, flight, &[(5 * 1460, flight as i64)]);
}

/// The RTO fires with recovery underway: it resends the first segment
/// (the peer reneged on nothing; SACKed data stays skipped).
fn withhold_through_rtos_after_recovery(p: &mut Peer) {
    let out = p.wait();
    assert_eq!(out.len(), 1, "{}", brief(&out));
    assert_eq!((out[0].seq, out[0].payload.len()), (p.snd, 1460));
    assert_eq!(p.st.stats().tcp_rto_retransmits, 1);
}

#[test]
fn many_tiny_sack_blocks_keep_the_sender_bounded() {
    // 300 ACKs, each SACKing three distinct single bytes: more ranges than
    // a scoreboard keeps. The sender forgets the highest (it may resend
    // those bytes) but keeps sending full segments and finishes.
    let mut p = Peer::open(SACK_TS);
    let (total, flight) = send_flight(&mut p);
    withhold_through_rtos(&mut p, 1);
    let mut rx = Receiver::new(total);
    rx.strict = false;
    let mut acks = Vec::new();
    for i in 0..300u32 {
        let offs: Vec<u32> = (0..3u32).map(|k| 1461 + ((i * 3 + k) * 7) % (flight as u32 - 1462)).collect();
        for &o in &offs {
            rx.claim(o as usize, o as usize + 1);
        }
        let b: Vec<(u32, u32)> = offs.iter().map(|&o| (p.snd + o, p.snd + o + 1)).collect();
        acks.push(p.ack(p.snd, p.opts.win, &b));
    }
    p.now += Duration::from_millis(1);
    let out = p.send(acks);
    assert!(out.iter().all(|g| g.payload.is_empty()), "duplicate ACKs after a timeout send nothing: {}", brief(&out));
    hostile_ack_then_cooperate(&mut p, &mut rx, total, flight, &[]);
}

#[test]
fn a_receiver_that_reneges_gets_the_data_after_the_next_timeout() {
    // After the RTO the client SACKs segments 3-5, then discards them
    // (reneges, RFC 2018 8): its cumulative ACK stops where they start.
    // The sender skips them until the next timeout, then sends them again.
    let mut p = Peer::open(SACK_TS);
    let (total, _flight) = send_flight(&mut p);
    withhold_through_rtos(&mut p, 1);
    let m = 1460;
    let mut rx = Receiver::new(total);
    rx.strict = false;
    rx.claim(0, m as usize);
    p.now += Duration::from_millis(1);
    let ack = p.ack(p.snd + m, p.opts.win, &[(p.snd + 2 * m, p.snd + 5 * m)]);
    let out = p.send(vec![ack]);
    let win = p.opts.win;
    rx.run(&mut p, out, win);
    // Finishing means the client acknowledged every byte, so it got them.
    assert!(rx.have.iter().all(|&h| h));
    assert_eq!(p.st.stats().tcp_rto_retransmits, 2, "one more timeout found the renege");
    assert!(rx.sent_bytes <= 2 * total, "{} bytes", rx.sent_bytes);
}

// ----- fault 3: the persist timer -----

/// Issue 10 fault 3's setup: MSS 64, window 64, a 927-byte response. The
/// client takes the first 64 bytes and shuts its window. Returns the peer
/// and the response.
fn shut_window_after_64() -> (Peer, Vec<u8>) {
    let opts = Opts { mss: 64, sack: false, ts: false, win: 64 };
    let mut p = Peer::open(opts);
    let data = pattern(927, 927);
    assert_eq!(p.st.tcp_write(p.h, &data), Ok(927));
    p.now = Instant::from_millis(2);
    let out = p.send(vec![]);
    assert_eq!(out.len(), 1, "{}", brief(&out));
    assert_eq!((out[0].seq, out[0].payload.as_slice()), (p.snd, &data[..64]));
    p.now += Duration::from_millis(1);
    let ack = p.ack(p.snd + 64, 0, &[]);
    assert!(p.send(vec![ack]).iter().all(|g| g.payload.is_empty()));
    (p, data)
}

/// Waits for the next probe: one byte at `una`, the first byte the client
/// has not taken. Returns when it came.
fn next_probe(p: &mut Peer, una: u32, data: &[u8]) -> Instant {
    let out = p.wait();
    assert_eq!(out.len(), 1, "{}", brief(&out));
    assert_eq!(out[0].seq, p.snd + una, "the probe carries the first byte not taken");
    assert_eq!(out[0].payload, data[una as usize..una as usize + 1]);
    p.now
}

/// Opens the window to 64 and takes everything, one ACK per segment;
/// checks the bytes arrive in order and complete.
fn take_all(p: &mut Peer, mut got: usize, data: &[u8], mut out: Vec<Got>) {
    for _ in 0..1000 {
        let mut acks = Vec::new();
        for g in out.iter().filter(|g| !g.payload.is_empty()) {
            let off = g.seq.wrapping_sub(p.snd) as usize;
            assert!(off <= got, "a gap: segment at {off}, {got} taken");
            assert!(g.payload.len() <= 64);
            let end = off + g.payload.len();
            assert_eq!(g.payload, data[off..end]);
            got = got.max(end);
            acks.push(p.ack(p.snd + got as u32, 64, &[]));
        }
        if got == data.len() {
            p.now += Duration::from_millis(1);
            assert!(p.send(acks).iter().all(|g| g.payload.is_empty()));
            assert_eq!(p.st.tcp().send_queued(p.h).unwrap(), 0, "everything acknowledged");
            return;
        }
        if acks.is_empty() {
            out = p.wait();
        } else {
            p.now += Duration::from_millis(1);
            out = p.send(acks);
        }
    }
    panic!("{got} of {} bytes arrived", data.len());
}

#[test]
fn zero_window_probes_back_off_to_a_cap_and_never_give_up_on_an_answering_peer() {
    let (mut p, data) = shut_window_after_64();
    let mut at = p.now;
    let mut intervals = Vec::new();
    // Twenty minutes of probes, each answered with a zero window.
    while p.now < Instant::from_secs(1200) {
        let t = next_probe(&mut p, 64, &data);
        intervals.push(t.saturating_duration_since(at));
        at = t;
        p.now += Duration::from_millis(1);
        let ack = p.ack(p.snd + 64, 0, &[]);
        let o = p.send(vec![ack]);
        assert!(o.is_empty(), "a zero-window answer sends nothing: {o:?} {}", p.st.tcp().describe(p.h).unwrap());
        assert_eq!(p.st.tcp_state(p.h), Ok(State::Established));
    }
    // RTO first (here the 200 ms minimum), then doubling, capped at max_rto (60 s).
    let cap = Duration::from_secs(60);
    assert!(intervals[0] >= Duration::from_millis(200) && intervals[0] < Duration::from_millis(300), "{intervals:?}");
    for w in intervals.windows(2) {
        // Each wait is measured from the previous answer, 1 ms after the probe.
        let want = w[0].saturating_mul(2).min(cap);
        let got = w[1];
        assert!(got + Duration::from_millis(1) >= want && got <= want, "{intervals:?}");
    }
    assert_eq!(*intervals.last().unwrap(), cap);
    assert!(intervals.len() > 20, "{} probes", intervals.len());
    assert_eq!(p.st.stats().tcp_persist_probes, intervals.len() as u64);
    assert_eq!(p.st.stats().tcp_timeouts, 0);
    // The window opens: everything arrives.
    p.now += Duration::from_millis(5);
    let upd = p.ack(p.snd + 64, 64, &[]);
    let out = p.send(vec![upd]);
    assert!(!out.is_empty(), "the window update restarts the transfer");
    take_all(&mut p, 64, &data, out);
}

#[test]
fn window_opening_mid_backoff_resumes_at_once() {
    let (mut p, data) = shut_window_after_64();
    for _ in 0..4 {
        next_probe(&mut p, 64, &data);
        p.now += Duration::from_millis(1);
        let ack = p.ack(p.snd + 64, 0, &[]);
        p.send(vec![ack]);
    }
    // Half-way to the fifth probe the window opens.
    p.now += Duration::from_millis(1500);
    let upd = p.ack(p.snd + 64, 64, &[]);
    let out = p.send(vec![upd]);
    assert_eq!(out.first().map(|g| (g.seq, g.payload.len())), Some((p.snd + 64, 64)), "{}", brief(&out));
    take_all(&mut p, 64, &data, out);
}

#[test]
fn lost_window_update_is_recovered_by_the_next_probe() {
    let (mut p, data) = shut_window_after_64();
    next_probe(&mut p, 64, &data);
    // The client reads, opens its window to 64 and says so, but that ACK is
    // lost. The probe byte went nowhere either (answered with win 0 before).
    p.now += Duration::from_millis(1);
    let ack = p.ack(p.snd + 64, 0, &[]);
    p.send(vec![ack]);
    let _lost = p.ack(p.snd + 64, 64, &[]);
    // The next probe arrives; the client takes its byte and shows the window.
    let t = next_probe(&mut p, 64, &data);
    assert!(t < Instant::from_secs(2), "the next probe came at {t}");
    p.now += Duration::from_millis(1);
    let ack = p.ack(p.snd + 65, 64, &[]);
    let out = p.send(vec![ack]);
    assert!(!out.is_empty(), "the answer to the probe restarts the transfer");
    take_all(&mut p, 65, &data, out);
}

#[test]
fn probe_bytes_taken_one_at_a_time_keep_the_transfer_moving() {
    // A receiver that takes each probe's byte but keeps advertising zero.
    let (mut p, data) = shut_window_after_64();
    for una in 64..80u32 {
        next_probe(&mut p, una, &data);
        p.now += Duration::from_millis(1);
        let ack = p.ack(p.snd + una + 1, 0, &[]);
        p.send(vec![ack]);
    }
    assert_eq!(p.st.tcp().send_queued(p.h).unwrap(), 927 - 80);
    assert_eq!(p.st.stats().tcp_timeouts, 0);
    // The window opens: the rest follows.
    let upd = p.ack(p.snd + 80, 64, &[]);
    let out = p.send(vec![upd]);
    take_all(&mut p, 80, &data, out);
}

#[test]
fn a_silent_peer_behind_a_zero_window_is_given_up_on() {
    // Probes that are never answered end the connection (bounded), with
    // a timeout error, after max_retries probes.
    let (mut p, data) = shut_window_after_64();
    let mut probes = 0;
    while p.st.tcp_state(p.h) == Ok(State::Established) {
        let Some(t) = p.st.poll_at() else { break };
        p.now = p.now.max(t);
        let out = p.send(vec![]);
        probes += out.iter().filter(|g| g.payload == data[64..65]).count();
        assert!(probes <= 16 && p.now < Instant::from_secs(3600), "{probes} probes by {}", p.now);
    }
    assert_eq!(probes, 15, "max_retries probes");
    assert_eq!(p.st.tcp_read(p.h, &mut [0u8; 4]), Err(zcstack::TcpError::TimedOut));
    assert_eq!(p.st.stats().tcp_timeouts, 1);
}

/// A receiver that stops reading (its window shuts), resumes, stops again
/// and resumes, on a link that loses, reorders and duplicates frames (lost
/// probes, lost window updates). Everything arrives intact.
fn zero_window_on_a_lossy_link(seed: u64) {
    use zcstack::phy::sim::SimConfig;
    let sim = SimConfig { loss: 0.1, reorder: 0.05, duplicate: 0.01, ..SimConfig::default() };
    let mut p = Pair::new(sim, seed);
    let (s, c) = p.establish(80);
    let total = 300_000;
    let mut src = Source::new(seed, total);
    let mut sink = Sink::default();
    let mut phase = |p: &mut Pair, sink: &mut Sink, read: bool, until: usize| {
        p.run_until(200_000, |p| {
            src.pump(|d| p.b.tcp_write(c, d).unwrap_or(0));
            if read {
                read_into(&mut p.a, s, sink);
            }
            sink.received >= until
        })
    };
    // Not reading: the window shuts; simulated minutes pass with probes.
    let t0 = p.now;
    phase(&mut p, &mut sink, false, usize::MAX);
    assert!(p.b.tcp().send_queued(c).unwrap() > 0, "the sender is blocked by the zero window");
    assert!(p.now.saturating_duration_since(t0) > Duration::from_secs(60), "probing went on");
    assert_eq!(p.b.tcp_state(c), Ok(State::Established));
    assert_eq!(phase(&mut p, &mut sink, true, total / 2), Stop::Done, "resumed: {}", p.b.tcp().describe(c).unwrap());
    phase(&mut p, &mut sink, false, usize::MAX);
    assert_eq!(phase(&mut p, &mut sink, true, total), Stop::Done, "resumed again: {}", p.b.tcp().describe(c).unwrap());
    assert_eq!(sink.received, total);
    assert_eq!(sink.digest(), src.digest());
    assert!(p.b.stats().tcp_persist_probes > 0);
    assert_eq!(p.b.stats().tcp_timeouts, 0);
}

#[test]
fn zero_window_on_a_lossy_link_recovers_every_time() {
    for seed in 1..=4 {
        zero_window_on_a_lossy_link(seed);
    }
}
