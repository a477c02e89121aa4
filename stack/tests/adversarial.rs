//! The seeded adversarial peer: while a clean 64 MiB transfer runs from b to
//! a on one connection, an attacker injects, for a bounded simulated time and
//! count, random valid-looking and invalid segments at both ends of that
//! connection, at a second connection and at closed ports: data with ACKs for
//! data never sent or far behind, in- and out-of-window data, SACK blocks
//! (plausible, overlapping, beyond `snd_max`, below `snd_una`, reversed),
//! window shrinks and zero windows, RSTs and SYNs with near-miss sequence
//! numbers, and IPv4 fragments (tiny, overlapping, duplicated, beyond 64 KiB).
//!
//! The attacker sees the wire (on-path) but never knows the receiver's exact
//! `rcv_nxt`: its RSTs land beside it, the way RFC 5961 says must not hurt.
//! It never sends an ACK a correct stack could accept together with data.
//!
//! Checked: the transfer completes with its SHA-256; b reads nothing it was
//! not sent; no panic; the memory both stacks hold, sampled through the run,
//! stays under [`Bounds`]; the drop and challenge counters show the attack
//! was seen and refused; every page comes back at the end.
mod common;

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use common::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use zcstack::mem::PageMemory;
use zcstack::phy::sim::{SimConfig, SimDevice};
use zcstack::phy::{Device, DeviceCaps, RxFrame, TxFrame};
use zcstack::stack::MemoryUsage;
use zcstack::wire::*;
use zcstack::{Duration, Instant, SocketHandle, State, TcpError};

const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
const TRANSFER: usize = 64 << 20;
/// The attack lasts this long in simulated time from the first data byte...
const ATTACK_FOR: Duration = Duration::from_millis(400);
/// ...and injects at most this many frames.
const ATTACK_FRAMES: usize = 40_000;
/// A clean run takes ~140k steps and 0.33 s of simulated time; an attacked
/// one a few times that. Beyond these the run has failed (stalled or an ACK
/// storm), and stops quickly instead of using the whole time box.
const MAX_STEPS: u64 = 4_000_000;
const MAX_SIM_TIME: Duration = Duration::from_secs(30);
/// Frames per burst; a burst every `BURST_EVERY` of simulated time.
const BURST: usize = 8;
const BURST_EVERY: Duration = Duration::from_micros(100);

/// What an on-path observer learned of the main connection from the wire.
#[derive(Clone, Copy, Debug, Default)]
struct View {
    /// End of the highest segment b sent (b's `snd_max` as seen on the wire).
    b_seq_end: u32,
    /// The last acknowledgment b sent (a's `snd_nxt`).
    b_ack: u32,
    /// a's sequence number (a sends no data: its `snd_nxt`).
    a_seq: u32,
    /// The last acknowledgment a sent (b's `snd_una` as seen on the wire).
    a_ack: u32,
    b_tsval: Option<u32>,
    a_tsval: Option<u32>,
    seen: bool,
}

/// A device that adds the attacker's frames to what the link delivers and
/// lets the attacker watch what the stack transmits.
struct Tapped<'a> {
    dev: &'a mut SimDevice,
    inject: &'a mut VecDeque<Vec<u8>>,
    view: &'a mut View,
    /// The main connection as (this stack's port, peer's port).
    ports: (u16, u16),
    is_a: bool,
}

/// (seq, ack, tsval) of a TCP header at the start of `h` (Ethernet/IPv4/TCP).
fn sniff(h: &[u8], ports: (u16, u16)) -> Option<(u32, u32, Option<u32>, usize)> {
    if h.len() < 54 || h[12..14] != [0x08, 0x00] || h[23] != 6 {
        return None;
    }
    let ihl = usize::from(h[14] & 0x0f) * 4;
    let t = &h[14 + ihl..];
    if t.len() < 20 || u16::from_be_bytes([t[0], t[1]]) != ports.0 || u16::from_be_bytes([t[2], t[3]]) != ports.1 {
        return None;
    }
    let seq = u32::from_be_bytes(t[4..8].try_into().ok()?);
    let ack = u32::from_be_bytes(t[8..12].try_into().ok()?);
    let off = usize::from(t[12] >> 4) * 4;
    let mut ts = None;
    let mut i = 20;
    while i + 1 < off.min(t.len()) {
        match t[i] {
            0 => break,
            1 => i += 1,
            k => {
                let l = usize::from(t[i + 1]).max(2);
                if k == 8 && l == 10 && i + 10 <= t.len() {
                    ts = Some(u32::from_be_bytes(t[i + 2..i + 6].try_into().ok()?));
                }
                i += l;
            }
        }
    }
    let syn_fin = usize::from(t[13] & 0x03 != 0);
    Some((seq, ack, ts, syn_fin))
}

impl Device for Tapped<'_> {
    fn caps(&self) -> DeviceCaps {
        self.dev.caps()
    }
    fn receive(&mut self, now: Instant, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < budget {
            let Some(f) = self.inject.pop_front() else { break };
            sink(&f);
            n += 1;
        }
        n + self.dev.receive(now, budget - n, sink)
    }
    fn receive_frames(&mut self, now: Instant, budget: usize, sink: &mut dyn FnMut(RxFrame<'_>)) -> usize {
        let mut n = 0;
        while n < budget {
            let Some(f) = self.inject.pop_front() else { break };
            sink(RxFrame::Borrowed(&f));
            n += 1;
        }
        n + self.dev.receive_frames(now, budget - n, sink)
    }
    fn transmit(&mut self, now: Instant, frame: TxFrame, mem: &dyn PageMemory) -> Result<(), TxFrame> {
        if let Some((seq, ack, ts, ctl)) = sniff(&frame.header, self.ports) {
            let len = (frame.len() - frame.header.len() + ctl) as u32;
            let v = &mut *self.view;
            v.seen = true;
            if self.is_a {
                v.a_seq = seq;
                v.a_ack = ack;
                v.a_tsval = ts.or(v.a_tsval);
            } else {
                if (seq.wrapping_add(len).wrapping_sub(v.b_seq_end) as i32) > 0 || v.b_seq_end == 0 {
                    v.b_seq_end = seq.wrapping_add(len);
                }
                v.b_ack = ack;
                v.b_tsval = ts.or(v.b_tsval);
            }
        }
        self.dev.transmit(now, frame, mem)
    }
    fn poll_completions(&mut self, now: Instant, done: &mut dyn FnMut(TxFrame)) {
        self.dev.poll_completions(now, done)
    }
    fn flush(&mut self, now: Instant) {
        self.dev.flush(now)
    }
    fn poll_at(&self) -> Option<Instant> {
        self.dev.poll_at()
    }
}

/// An Ethernet/IPv4 frame `src` → `dst` carrying `l4` (whole, not fragmented).
fn ip_frame(
    src: (EthernetAddress, Ipv4Addr),
    dst: (EthernetAddress, Ipv4Addr),
    proto: IpProtocol,
    l4: &[u8],
) -> Vec<u8> {
    let mut f = vec![0u8; 34 + l4.len()];
    EthernetRepr { src_addr: src.0, dst_addr: dst.0, ethertype: EthernetProtocol::Ipv4 }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..14]));
    Ipv4Repr { src_addr: src.1, dst_addr: dst.1, next_header: proto, payload_len: l4.len(), hop_limit: 64 }
        .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..34]), &Default::default());
    f[34..].copy_from_slice(l4);
    f
}

/// One forged TCP segment.
struct Forge<'p> {
    src: (EthernetAddress, Ipv4Addr),
    dst: (EthernetAddress, Ipv4Addr),
    sport: u16,
    dport: u16,
    seq: u32,
    ack: Option<u32>,
    ctl: TcpControl,
    win: u16,
    sack: [Option<(u32, u32)>; 3],
    ts: Option<(u32, u32)>,
    payload: &'p [u8],
}

impl Forge<'_> {
    fn l4(&self) -> Vec<u8> {
        let repr = TcpRepr {
            src_port: self.sport,
            dst_port: self.dport,
            control: self.ctl,
            seq_number: TcpSeqNumber(self.seq as i32),
            ack_number: self.ack.map(|a| TcpSeqNumber(a as i32)),
            window_len: self.win,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: self.sack,
            timestamp: self.ts.map(|(v, e)| TcpTimestampRepr::new(v, e)),
            payload: self.payload,
        };
        let mut l4 = vec![0u8; repr.buffer_len()];
        repr.emit(
            &mut TcpPacket::new_unchecked(&mut l4[..]),
            &self.src.1.into(),
            &self.dst.1.into(),
            &Default::default(),
        );
        l4
    }
    fn frame(&self) -> Vec<u8> {
        ip_frame(self.src, self.dst, IpProtocol::Tcp, &self.l4())
    }
}

/// IPv4 fragments of `l4` from `src` to `dst` with `id`: (byte offset, bytes,
/// more-fragments) as given, offsets not necessarily multiples of 8 after
/// the first (those are what a hostile sender picks).
fn fragment(
    src: (EthernetAddress, Ipv4Addr),
    dst: (EthernetAddress, Ipv4Addr),
    id: u16,
    off8: u16,
    more: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut f = ip_frame(src, dst, IpProtocol::Tcp, payload);
    let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
    ip.set_ident(id);
    ip.set_more_frags(more);
    ip.set_dont_frag(false);
    ip.set_frag_offset(off8.wrapping_mul(8));
    ip.fill_checksum();
    // `set_frag_offset` masks to 13 bits; a hostile offset near the top of
    // that range plus the payload runs past 65535 bytes.
    f
}

/// Counters of what the attacker sent, by kind.
#[derive(Debug, Default)]
struct Sent {
    to_a: usize,
    to_b: usize,
    fragments: usize,
    rst: usize,
    syn: usize,
    bad_ack_data: usize,
    sack: usize,
    window: usize,
    other_conn: usize,
}

/// The seeded attacker.
struct Adversary {
    rng: SmallRng,
    to_a: VecDeque<Vec<u8>>,
    to_b: VecDeque<Vec<u8>>,
    view: View,
    /// Main connection: a's port, b's port.
    main: (u16, u16),
    /// Second connection: a's port, b's port.
    other: (u16, u16),
    sent: Sent,
    next_burst: Instant,
    until: Option<Instant>,
}

const A: (EthernetAddress, Ipv4Addr) = (MAC_A, A_IP);
const B: (EthernetAddress, Ipv4Addr) = (MAC_B, B_IP);

impl Adversary {
    fn junk(&mut self, max: usize) -> Vec<u8> {
        let n = self.rng.gen_range(0..=max);
        (0..n).map(|_| self.rng.gen()).collect()
    }

    /// A window right edge not far past `base` for plausible SACK blocks.
    fn sack_blocks(&mut self, una: u32, max: u32) -> [Option<(u32, u32)>; 3] {
        let mut s = [None; 3];
        let flight = max.wrapping_sub(una).max(1);
        for b in s.iter_mut().take(self.rng.gen_range(1..=3)) {
            let l = match self.rng.gen_range(0..6) {
                0 => una.wrapping_add(self.rng.gen_range(0..flight)),  // plausible
                1 => max.wrapping_add(self.rng.gen_range(0..1 << 20)), // beyond snd_max
                2 => una.wrapping_sub(self.rng.gen_range(1..1 << 20)), // below snd_una
                3 => self.rng.gen(),                                   // anywhere
                4 => una.wrapping_add(flight / 2),                     // overlapping ones
                _ => max.wrapping_sub(flight / 2).wrapping_add(1),     // input 2's edge
            };
            let r = match self.rng.gen_range(0..4) {
                0 => l.wrapping_sub(self.rng.gen_range(1..5000)), // reversed
                1 => l.wrapping_add(1),                           // one byte
                _ => l.wrapping_add(self.rng.gen_range(1..=flight.min(1 << 20))),
            };
            *b = Some((l, r));
        }
        s
    }

    /// One forged frame; pushes it to the queue of the stack it targets.
    fn one(&mut self) {
        let v = self.view;
        let (pa, pb) = self.main;
        let payload_len = [0usize, 1, 100, 1448][self.rng.gen_range(0..4)];
        let payload = self.junk(payload_len);
        let ts_b = v.b_tsval.map(|t| (t.wrapping_add(self.rng.gen_range(0..3)), v.a_tsval.unwrap_or(0)));
        let ts_a = v.a_tsval.map(|t| (t.wrapping_add(self.rng.gen_range(0..3)), v.b_tsval.unwrap_or(0)));
        let ts_b = if self.rng.gen_bool(0.8) { ts_b } else { None };
        let ts_a = if self.rng.gen_bool(0.8) { ts_a } else { None };
        // As b, towards a (the receiver).
        let as_b = |seq, ack, ctl, win, payload| Forge {
            src: B,
            dst: A,
            sport: pb,
            dport: pa,
            seq,
            ack,
            ctl,
            win,
            sack: [None; 3],
            ts: ts_b,
            payload,
        };
        let kind = self.rng.gen_range(0..20);
        let (frame, to_a) = match kind {
            // Data near the window with an ACK for data a never sent (input 4).
            0 | 1 => {
                self.sent.bad_ack_data += 1;
                let seq = v.b_seq_end.wrapping_sub(self.rng.gen_range(0..64 * 1024));
                let ack = v.b_ack.wrapping_add(self.rng.gen_range(1..200_000));
                (as_b(seq, Some(ack), TcpControl::Psh, 1000, &payload).frame(), true)
            }
            // ... or an ACK 2^30 behind.
            2 => {
                self.sent.bad_ack_data += 1;
                let seq = v.b_seq_end.wrapping_sub(self.rng.gen_range(0..64 * 1024));
                let ack = v.b_ack.wrapping_sub((1 << 30) + self.rng.gen_range(0..1 << 29));
                (as_b(seq, Some(ack), TcpControl::None, 1000, &payload).frame(), true)
            }
            // Data far outside the window with a valid ACK, ahead or long behind.
            3 => {
                let seq = if self.rng.gen_bool(0.5) {
                    v.b_seq_end.wrapping_add(self.rng.gen_range(16 << 20..1 << 30))
                } else {
                    v.b_seq_end.wrapping_sub(self.rng.gen_range(16 << 20..1 << 30))
                };
                (as_b(seq, Some(v.b_ack), TcpControl::None, 1000, &payload).frame(), true)
            }
            // RST beside rcv_nxt (never on it: past everything b sent), or blind.
            4 | 5 => {
                self.sent.rst += 1;
                let seq =
                    if kind == 4 { v.b_seq_end.wrapping_add(self.rng.gen_range(1..300_000)) } else { self.rng.gen() };
                let ack = self.rng.gen_bool(0.5).then_some(v.b_ack);
                (as_b(seq, ack, TcpControl::Rst, 0, &[]).frame(), true)
            }
            // SYN on the live 4-tuple.
            6 => {
                self.sent.syn += 1;
                (as_b(self.rng.gen(), None, TcpControl::Syn, 1000, &[]).frame(), true)
            }
            // IPv4 fragments spoofed from b: tiny, overlapping, duplicated, beyond 64 KiB.
            7 | 8 => {
                self.sent.fragments += 1;
                let seg = as_b(
                    v.b_seq_end.wrapping_sub(self.rng.gen_range(0..8192)),
                    Some(v.b_ack.wrapping_add(self.rng.gen_range(1..100_000))),
                    TcpControl::Psh,
                    1000,
                    &payload,
                )
                .l4();
                let id = self.rng.gen();
                let to_a = self.rng.gen_bool(0.7);
                let (s, d) = if to_a { (B, A) } else { (A, B) };
                let n = seg.len();
                match self.rng.gen_range(0..4) {
                    0 => {
                        // Tiny 8-byte pieces with one missing.
                        for (i, c) in seg.chunks(8).enumerate().skip(1) {
                            self.push(fragment(s, d, id, i as u16, true, c), to_a);
                        }
                    }
                    1 => {
                        // Overlapping halves.
                        let h = (n / 2) & !7;
                        self.push(fragment(s, d, id, 0, true, &seg[..(h + 16).min(n)]), to_a);
                        self.push(fragment(s, d, id, (h / 8) as u16, false, &seg[h..]), to_a);
                    }
                    2 => {
                        // The same first fragment twice, the last never.
                        let f = fragment(s, d, id, 0, true, &seg[..8.min(n)]);
                        self.push(f.clone(), to_a);
                        self.push(f, to_a);
                    }
                    _ => {
                        // An offset whose end passes 65535 bytes.
                        let off = 8191 - self.rng.gen_range(0..4);
                        self.push(fragment(s, d, id, off, false, &seg), to_a);
                    }
                }
                return;
            }
            // As a, towards b (the sender): ACKs for data never sent.
            9 => {
                let ack = v.b_seq_end.wrapping_add(self.rng.gen_range(1..200_000));
                (self.as_a(v, ts_a, ack, 1000, [None; 3], &payload), false)
            }
            // ACKs 2^30 behind snd_una.
            10 => {
                let ack = v.a_ack.wrapping_sub((1 << 30) + self.rng.gen_range(0..1 << 29));
                (self.as_a(v, ts_a, ack, 1000, [None; 3], &[]), false)
            }
            // Duplicate ACKs with SACK blocks of every kind.
            11..=13 => {
                self.sent.sack += 1;
                let sack = self.sack_blocks(v.a_ack, v.b_seq_end);
                (self.as_a(v, ts_a, v.a_ack, 1000, sack, &[]), false)
            }
            // Window shrinks and zero windows on a current ACK.
            14 | 15 => {
                self.sent.window += 1;
                let win = [0u16, 0, 1, 2, 64, self.rng.gen()][self.rng.gen_range(0..6)];
                (self.as_a(v, ts_a, v.a_ack, win, [None; 3], &[]), false)
            }
            // RST / SYN at b beside its rcv_nxt (a sends no data: a_seq is it).
            16 => {
                let rst = self.rng.gen_bool(0.5);
                if rst {
                    self.sent.rst += 1;
                } else {
                    self.sent.syn += 1;
                }
                let seq = v.a_seq.wrapping_add(self.rng.gen_range(1..500_000));
                let ctl = if rst { TcpControl::Rst } else { TcpControl::Syn };
                let f = Forge {
                    src: A,
                    dst: B,
                    sport: pa,
                    dport: pb,
                    seq,
                    ack: None,
                    ctl,
                    win: 0,
                    sack: [None; 3],
                    ts: ts_a,
                    payload: &[],
                };
                (f.frame(), false)
            }
            // The second connection: near-miss RSTs, data with bad ACKs, SACK junk.
            17 => {
                self.sent.other_conn += 1;
                let (oa, ob) = self.other;
                let ctl = [TcpControl::Rst, TcpControl::None, TcpControl::Syn][self.rng.gen_range(0..3)];
                let to_a = self.rng.gen_bool(0.5);
                let (s, d, sp, dp) = if to_a { (B, A, ob, oa) } else { (A, B, oa, ob) };
                let (x, y) = (self.rng.gen(), self.rng.gen());
                let sack = self.sack_blocks(x, y);
                let f = Forge {
                    src: s,
                    dst: d,
                    sport: sp,
                    dport: dp,
                    seq: self.rng.gen(),
                    ack: Some(self.rng.gen()),
                    ctl,
                    win: self.rng.gen(),
                    sack,
                    ts: None,
                    payload: &payload,
                };
                (f.frame(), to_a)
            }
            // Closed ports and SYNs from spoofed ports (b answers the SYN-ACKs with RSTs).
            18 => {
                self.sent.other_conn += 1;
                let f = Forge {
                    src: B,
                    dst: A,
                    sport: self.rng.gen_range(1024..65535),
                    dport: [81, 82, self.rng.gen()][self.rng.gen_range(0..3)],
                    seq: self.rng.gen(),
                    ack: None,
                    ctl: TcpControl::Syn,
                    win: 1000,
                    sack: [None; 3],
                    ts: None,
                    payload: &[],
                };
                (f.frame(), true)
            }
            // Plain garbage bytes, and truncated copies of valid-looking segments.
            _ => {
                let mut f =
                    as_b(v.b_seq_end, Some(v.b_ack.wrapping_add(70_000)), TcpControl::None, 0, &payload).frame();
                let cut = self.rng.gen_range(0..f.len());
                f.truncate(cut);
                (f, self.rng.gen_bool(0.5))
            }
        };
        self.push(frame, to_a);
    }

    #[allow(clippy::too_many_arguments)]
    fn as_a(
        &mut self,
        v: View,
        ts: Option<(u32, u32)>,
        ack: u32,
        win: u16,
        sack: [Option<(u32, u32)>; 3],
        payload: &[u8],
    ) -> Vec<u8> {
        let (pa, pb) = self.main;
        Forge {
            src: A,
            dst: B,
            sport: pa,
            dport: pb,
            seq: v.a_seq,
            ack: Some(ack),
            ctl: TcpControl::None,
            win,
            sack,
            ts,
            payload,
        }
        .frame()
    }

    fn push(&mut self, f: Vec<u8>, to_a: bool) {
        if to_a {
            self.sent.to_a += 1;
            self.to_a.push_back(f);
        } else {
            self.sent.to_b += 1;
            self.to_b.push_back(f);
        }
    }

    fn sent_total(&self) -> usize {
        self.sent.to_a + self.sent.to_b
    }

    /// Injects a burst if one is due; returns whether the attack is still on.
    fn act(&mut self, now: Instant) -> bool {
        if !self.view.seen {
            return true;
        }
        let until = *self.until.get_or_insert(now + ATTACK_FOR);
        if now >= until || self.sent_total() >= ATTACK_FRAMES {
            return false;
        }
        if now >= self.next_burst {
            for _ in 0..BURST {
                self.one();
            }
            self.next_burst = now + BURST_EVERY;
        }
        true
    }
}

/// What each stack may hold at any sampled instant.
#[derive(Debug)]
struct Bounds {
    /// Payload pages: the send buffer (256 KiB = 128 pages of 2 KiB) plus
    /// frames in flight on the link and the second connection, with room.
    pages: usize,
    /// The configured reassembly limit (1 MiB).
    reassembly: usize,
    /// Out-of-order bytes: at most the receive window, which the receive
    /// buffer (256 KiB) bounds, plus rounding to the window scale and one
    /// segment's overlap.
    ooo: usize,
    /// Received and unread: the receive buffer, twice for whole-frame pinning.
    rx_held: usize,
    /// Frames refused by the device and waiting.
    tx_backlog: usize,
}

const BOUNDS: Bounds =
    Bounds { pages: 512, reassembly: 1 << 20, ooo: 256 * 1024 + 2048, rx_held: 512 * 1024, tx_backlog: 4096 };

fn check(u: &MemoryUsage, who: &str, at: Instant, max: &mut MemoryUsage) {
    assert!(u.pages_in_use <= BOUNDS.pages, "{who} at {at}: {u:?} over {BOUNDS:?}");
    assert!(u.reassembly_bytes <= BOUNDS.reassembly, "{who} at {at}: {u:?} over {BOUNDS:?}");
    assert!(u.tcp_ooo_bytes <= BOUNDS.ooo, "{who} at {at}: {u:?} over {BOUNDS:?}");
    assert!(u.tcp_rx_held <= BOUNDS.rx_held, "{who} at {at}: {u:?} over {BOUNDS:?}");
    assert!(u.tx_backlog <= BOUNDS.tx_backlog, "{who} at {at}: {u:?} over {BOUNDS:?}");
    max.pages_in_use = max.pages_in_use.max(u.pages_in_use);
    max.reassembly_bytes = max.reassembly_bytes.max(u.reassembly_bytes);
    max.tcp_ooo_bytes = max.tcp_ooo_bytes.max(u.tcp_ooo_bytes);
    max.tcp_rx_held = max.tcp_rx_held.max(u.tcp_rx_held);
    max.tcp_send_queued = max.tcp_send_queued.max(u.tcp_send_queued);
    max.tx_backlog = max.tx_backlog.max(u.tx_backlog);
}

/// Polls both stacks once through the tapped devices, or jumps time to the
/// next event (as `Pair::step`). Returns false when nothing is pending.
fn step(p: &mut Pair, adv: &mut Adversary) -> bool {
    let (pa, pb) = adv.main;
    let mut view = adv.view;
    let did_a = p.a.poll(
        p.now,
        &mut Tapped { dev: &mut p.da, inject: &mut adv.to_a, view: &mut view, ports: (pa, pb), is_a: true },
    );
    let did_b = p.b.poll(
        p.now,
        &mut Tapped { dev: &mut p.db, inject: &mut adv.to_b, view: &mut view, ports: (pb, pa), is_a: false },
    );
    adv.view = view;
    if did_a || did_b {
        return true;
    }
    let attack_on = adv.until.is_none_or(|u| p.now < u) && adv.sent_total() < ATTACK_FRAMES;
    let burst = Some(adv.next_burst).filter(|_| attack_on && adv.view.seen);
    let next = [p.a.poll_at(), p.b.poll_at(), p.da.poll_at(), p.db.poll_at(), burst].into_iter().flatten().min();
    match next {
        Some(t) => {
            if t > p.now {
                p.now = t;
            }
            true
        }
        None => false,
    }
}

fn read_all(st: &mut zcstack::Stack<zcstack::mem::HeapPages>, h: SocketHandle, sink: &mut Sink, buf: &mut [u8]) {
    loop {
        match st.tcp_read(h, buf) {
            Ok(0) => {
                sink.eof = true;
                return;
            }
            Ok(n) => sink.absorb(&buf[..n]),
            Err(TcpError::WouldBlock) => return,
            Err(e) => panic!("read failed under attack: {e}"),
        }
    }
}

/// One seed: the transfer under attack, then the checks.
fn run(seed: u64) {
    let sim = SimConfig { bandwidth_bps: 2_000_000_000, latency: Duration::from_micros(50), ..SimConfig::default() };
    let mut p = Pair::new(sim, seed);
    // A listener that stays open (SYN floods reach it) and a second, quiet connection.
    let l2 = p.a.tcp_listen(81, 8).unwrap();
    let (s2, c2) = p.accept_from_b(l2, 81);
    let (s, c) = p.establish(80);
    let main = (p.a.tcp().addrs(s).unwrap().0.port(), p.b.tcp().addrs(c).unwrap().0.port());
    let other = (p.a.tcp().addrs(s2).unwrap().0.port(), p.b.tcp().addrs(c2).unwrap().0.port());
    let mut adv = Adversary {
        rng: SmallRng::seed_from_u64(seed ^ 0xad7e_55a7),
        to_a: VecDeque::new(),
        to_b: VecDeque::new(),
        view: View::default(),
        main,
        other,
        sent: Sent::default(),
        next_burst: p.now,
        until: None,
    };
    let mut src = Source::new(seed, TRANSFER);
    let mut sink = Sink::default();
    let mut sink_b = Sink::default();
    let mut sink_other = (Sink::default(), Sink::default());
    let mut buf = vec![0u8; 64 * 1024];
    let (mut max_a, mut max_b) = (MemoryUsage::default(), MemoryUsage::default());
    let mut shut = false;
    let mut done = false;
    let mut steps = 0u64;
    let start = p.now;
    while steps < MAX_STEPS {
        steps += 1;
        src.pump(|d| p.b.tcp_write(c, d).unwrap_or(0));
        if src.done() && !shut {
            p.b.tcp_shutdown(c).unwrap();
            shut = true;
        }
        read_all(&mut p.a, s, &mut sink, &mut buf);
        read_all(&mut p.b, c, &mut sink_b, &mut buf);
        read_all(&mut p.a, s2, &mut sink_other.0, &mut buf);
        read_all(&mut p.b, c2, &mut sink_other.1, &mut buf);
        if steps % 64 == 0 {
            check(&p.a.memory_usage(), "a", p.now, &mut max_a);
            check(&p.b.memory_usage(), "b", p.now, &mut max_b);
        }
        if sink.eof {
            done = true;
            break;
        }
        adv.act(p.now);
        if p.now >= start + MAX_SIM_TIME {
            break;
        }
        if !step(&mut p, &mut adv) {
            break;
        }
    }
    let sa_ = *p.a.stats();
    let sb = *p.b.stats();
    eprintln!(
        "seed {seed}: {} bytes at t={} in {steps} steps; attacker {:?}\n  max a {max_a:?}\n  max b {max_b:?}\n  a {sa_:?}\n  b {sb:?}",
        sink.received, p.now, adv.sent
    );
    assert!(
        done,
        "the transfer completes: {} of {TRANSFER} bytes at t={} (a: {}, b: {})",
        sink.received,
        p.now,
        p.a.tcp().describe(s).unwrap_or_default(),
        p.b.tcp().describe(c).unwrap_or_default()
    );
    assert!(adv.sent_total() >= 1000, "the attack ran: {:?}", adv.sent);
    assert_eq!(sink.received, TRANSFER, "every byte arrived, no more");
    assert_eq!(sink.digest(), src.digest(), "the stream is intact (SHA-256)");
    assert_eq!(sink_b.received, 0, "b read nothing: a sent nothing");
    assert_eq!((sink_other.0.received, sink_other.1.received), (0, 0), "the quiet connection delivered nothing");
    assert_eq!(p.b.tcp_state(c2), Ok(State::Established), "the quiet connection survives");
    // The counters show the attack was seen and refused.
    assert!(sa_.tcp_challenge_acks > 0 && sb.tcp_challenge_acks > 0, "RFC 5961 challenge ACKs: a {sa_:?} b {sb:?}");
    assert!(sa_.drop_tcp_out_of_window > 0, "out-of-window data dropped: {sa_:?}");
    assert!(sa_.drop_ipv4_fragment + sb.drop_ipv4_fragment > 0, "bad fragments dropped: {sa_:?}");
    assert!(sa_.drop_tcp_no_socket > 0, "segments for closed ports counted: {sa_:?}");
    assert!(sa_.drop_tcp_malformed + sa_.drop_ipv4_malformed + sa_.drop_eth_malformed > 0, "truncated frames: {sa_:?}");
    // The limits issue 10 added, each seen at work.
    assert!(sa_.drop_tcp_bad_ack + sb.drop_tcp_bad_ack > 0, "data with unacceptable ACKs dropped: {sa_:?}");
    assert!(
        sa_.tcp_acks_rate_limited + sb.tcp_acks_rate_limited > 0,
        "ACKs to rejected segments rate-limited: {sa_:?}"
    );
    let frag_limits = |s: &zcstack::stats::Stats| {
        s.drop_ipv4_frag_overlap + s.drop_ipv4_frag_too_many + s.drop_ipv4_frag_invalid + s.ipv4_frag_duplicates
    };
    assert!(frag_limits(&sa_) + frag_limits(&sb) > 0, "fragment limits at work: {sa_:?}");
    eprintln!(
        "seed {seed}: bad_ack {} {}, ooo_trimmed {} {}, frag {} {}, challenge {} {}, rate-limited {} {}, global {} {}",
        sa_.drop_tcp_bad_ack,
        sb.drop_tcp_bad_ack,
        sa_.tcp_ooo_bytes_trimmed,
        sb.tcp_ooo_bytes_trimmed,
        frag_limits(&sa_),
        frag_limits(&sb),
        sa_.tcp_challenge_acks,
        sb.tcp_challenge_acks,
        sa_.tcp_acks_rate_limited,
        sb.tcp_acks_rate_limited,
        sa_.tcp_challenge_acks_global_limited,
        sb.tcp_challenge_acks_global_limited
    );
    assert_eq!(sa_.page_errors + sb.page_errors, 0);
    // No ACK storm: a sends at most about one ACK per data segment, one
    // answer per forged frame and per probe, not millions.
    let segments = (TRANSFER / 1448) as u64;
    let forged = adv.sent_total() as u64;
    assert!(sa_.tx_frames <= segments + 2 * forged + 10_000, "a sent {} frames for {segments} segments", sa_.tx_frames);
    assert!(
        sb.tx_frames <= 2 * segments + 2 * forged + 10_000,
        "b sent {} frames for {segments} segments",
        sb.tx_frames
    );
    // Close everything; every page comes back.
    for h in [s, s2, l2] {
        p.a.tcp_close(h, p.now).unwrap();
    }
    for h in [c, c2] {
        p.b.tcp_close(h, p.now).unwrap();
    }
    let stop = p.run_until(2_000_000, |p| p.a.tcp_connections() == 0 && p.b.tcp_connections() == 0);
    assert_eq!(stop, Stop::Done, "connections finish");
    p.da.release_all();
    p.db.release_all();
    assert_eq!(p.run_until(1000, |p| p.no_leaks()), Stop::Done, "every page back on its free list");
}

#[test]
fn adversarial_peer_seed_1() {
    run(1);
}

#[test]
fn adversarial_peer_seed_2() {
    run(2);
}

#[test]
fn adversarial_peer_seed_3() {
    run(3);
}

#[test]
fn adversarial_peer_seed_4() {
    run(4);
}
