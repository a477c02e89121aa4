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
        let (mut st, mut dev) = stack();
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
                p.now = p.now + Duration::from_millis(1);
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
    p.now = p.now + Duration::from_millis(1);
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
    hostile_ack_then_cooperate(&mut p, &mut rx, total, flight, &[(5 * m, 6 * m + 7), (2 * m, 3 * m), (4 * m - 100, 4 * m)]);
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
        p.now = p.now + Duration::from_micros(100);
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
    p.now = p.now + Duration::from_millis(1);
    let out = p.send(acks);
    assert!(out.iter().all(|g| g.payload.is_empty()), "duplicate ACKs after a timeout send nothing: {}", brief(&out));
    hostile_ack_then_cooperate(&mut p, &mut rx, total, flight, &[]);
}
