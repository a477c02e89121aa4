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
    have: Vec<bool>,
    /// Bytes the client has reported as held (SACK), never to be resent.
    sacked: Vec<bool>,
    sent_bytes: usize,
    segments: usize,
}

impl Receiver {
    fn new(flight: usize) -> Receiver {
        Receiver { have: vec![false; flight], sacked: vec![false; flight], sent_bytes: 0, segments: 0 }
    }

    fn cum(&self) -> usize {
        self.have.iter().position(|h| !h).unwrap_or(self.have.len())
    }

    /// Ranges held above the cumulative ACK, as absolute sequence numbers.
    fn blocks(&self, snd: u32) -> Vec<(u32, u32)> {
        let mut v = Vec::new();
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
        assert!(off + len <= self.have.len(), "beyond the flight: {off}+{len}");
        let end = off + len;
        let ends_at_sacked = end < self.have.len() && self.sacked[end];
        assert!(
            len == smss(&p.opts) || end == self.have.len() || ends_at_sacked,
            "a {len}-byte segment at offset {off} (SMSS {}) that neither carries the last bytes nor fills a hole",
            smss(&p.opts)
        );
        for i in off..end {
            assert!(!self.sacked[i], "byte {i} was SACKed and is resent (segment {off}+{len})");
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

/// Issue 10 fault 2, exactly: MSS 1460 and SACK, 40 pipelined responses
/// (10,220 bytes), no ACK until the RTO resends the first segment, then one
/// ACK for that segment with one SACK block ending at snd_max - flight/2 + 1.
fn rto_then_one_sack_block(opts: Opts) {
    let mut p = Peer::open(opts);
    let total = forty_responses(&mut p);
    assert_eq!(total, 10_220);
    p.now = Instant::from_millis(2);
    let out = p.send(vec![]);
    let mss = smss(&opts);
    // Without timestamps: seven full segments. With them (1448 bytes of
    // payload each) Nagle holds the last 84 bytes until an ACK comes.
    let flight: usize = out.iter().map(|g| g.payload.len()).sum();
    assert_eq!(flight, total - total % mss, "the initial window carries every full segment");
    assert!(out.iter().all(|g| g.payload.len() == mss), "{out:?}");
    // ACKs withheld: the RTO resends one full segment, no runt after it.
    let out = p.wait();
    assert_eq!(out.len(), 1, "one retransmission: {out:?}");
    assert_eq!((out[0].seq, out[0].payload.len()), (p.snd, mss));
    assert_eq!(p.st.stats().tcp_rto_retransmits, 1);
    // The hostile ACK.
    let snd_max = flight;
    let (l, r) = (2 * mss, snd_max - flight / 2 + 1);
    let mut rx = Receiver::new(total);
    rx.claim(0, mss);
    rx.claim(l, r);
    p.now = p.now + Duration::from_millis(1);
    let ack = p.ack(p.snd + mss as u32, opts.win, &[(p.snd + l as u32, p.snd + r as u32)]);
    let out = p.send(vec![ack]);
    let took = rx.run(&mut p, out, opts.win);
    let rtos = p.st.stats().tcp_rto_retransmits;
    assert_eq!(rtos, 1, "no second timeout: {}", p.st.tcp().describe(p.h).unwrap());
    assert!(rx.sent_bytes + mss <= 2 * total, "{} bytes resent for a {total}-byte queue", rx.sent_bytes);
    assert!(took < Duration::from_millis(100), "recovery took {took}");
}

#[test]
fn rto_then_one_sack_block_sends_full_segments_and_skips_sacked_data() {
    rto_then_one_sack_block(SACK_TS);
}

#[test]
fn rto_with_timestamps_sends_no_runt_segments() {
    rto_then_one_sack_block(Opts { ts: true, ..SACK_TS });
}
