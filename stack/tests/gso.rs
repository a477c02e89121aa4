//! Software segmentation (GSO, `TcpConfig::gso_max`): on a device without
//! TSO a connection's output pass hands over bursts of new data which the
//! flush cuts into MSS-sized frames. The frames must be exactly those
//! segment-by-segment output gives (Nagle, SWS avoidance, PSH and FIN
//! placement, timestamps, SACK blocks, checksums in software or left to
//! the device, a full device's backlog, a neighbour not yet resolved),
//! page references must balance, and a refused reference must cost a
//! counted error and a retransmission, never data.
mod common;

use std::cell::Cell;
use std::rc::Rc;

use common::script::*;
use common::*;
use zcstack::mem::{HeapPages, PageError, PageId, PageMemory};
use zcstack::phy::queue::QueueDevice;
use zcstack::phy::sim::SimConfig;
use zcstack::phy::DeviceCaps;
use zcstack::tcp::SockOpt;
use zcstack::wire::TcpControl;
use zcstack::{SocketHandle, Stack, State, TcpError};

/// One scripted exchange, run against a fresh established connection:
/// gets the stack, its device, the connection, our first sequence number
/// and the peer's timestamps, returns every frame the stack transmitted,
/// each poll's closed by an empty one.
type Script = fn(&mut Stack<HeapPages>, &mut QueueDevice, SocketHandle, u32, Option<(u32, u32)>) -> Vec<Vec<u8>>;

/// A connection accepted from the scripted peer on a stack with
/// `gso_max` and `caps`, with timestamps when `ts` (the SYN carries TSval
/// 100). Returns (stack, device, handle, our snd_nxt, our TSval if any).
fn connection(
    gso_max: usize,
    caps: DeviceCaps,
    ts: bool,
) -> (Stack<HeapPages>, QueueDevice, SocketHandle, u32, Option<u32>) {
    let mut cfg = stack_config(A_IP, 1);
    cfg.tcp.gso_max = gso_max;
    cfg.arp_ttl = zcstack::Duration::from_secs(1_000_000);
    let st = Stack::new(cfg, HeapPages::new(256, 2048), 1500);
    let dev = QueueDevice::new(caps);
    if !ts {
        let (st, dev, h, snd) = established_on(st, dev);
        return (st, dev, h, snd, None);
    }
    let (st, dev, h, snd, tsv) = established_ts_on(st, dev);
    (st, dev, h, snd, Some(tsv))
}

/// The peer's ACK of everything before `ack`, advertising `win` bytes.
fn ack_frame(ack: u32, win: u16, ts: Option<(u32, u32)>) -> Vec<u8> {
    let mut s = seg(1001, Some(ack), TcpControl::None);
    s.win = win;
    s.ts = ts;
    tcp_frame(s)
}

/// Moves what the device transmitted into `frames`, then an empty frame
/// marking the end of the poll (so frames leaving in another poll differ).
fn take(frames: &mut Vec<Vec<u8>>, dev: &mut QueueDevice) {
    frames.extend(dev.take_tx());
    frames.push(Vec::new());
}

fn pattern_bytes(n: usize) -> Vec<u8> {
    (0..n as u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect()
}

/// 40,000 bytes with Nagle on: whole segments leave in the initial window,
/// then as ACKs open cwnd; the short tail waits for the last ACK.
fn nagle_tail(
    st: &mut Stack<HeapPages>,
    dev: &mut QueueDevice,
    h: SocketHandle,
    snd: u32,
    ts: Option<(u32, u32)>,
) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    assert_eq!(st.tcp_write(h, &pattern_bytes(40_000)), Ok(40_000));
    st.poll(at(2), dev);
    take(&mut frames, dev);
    for i in 1..=6u32 {
        // Everything sent so far is ACKed (as much as the MSS, with or
        // without timestamps, let out).
        dev.push_rx(ack_frame(snd + sent(&frames), 65_535, ts.map(|(v, e)| (v + i, e))));
        st.poll(at(2 + u64::from(i)), dev);
        take(&mut frames, dev);
    }
    assert_eq!(sent(&frames), 40_000, "all of it, the tail too, by the last ACK");
    frames
}

/// Payload bytes in `frames` (the stack's transmitted frames).
fn sent(frames: &[Vec<u8>]) -> u32 {
    frames.iter().filter_map(|f| decode_tcp(f)).map(|g| g.payload.len() as u32).sum()
}

/// Writes kept topping up the send buffer while every ACK acknowledges
/// all that was sent: cwnd grows until one output pass sends more than one
/// burst (a burst following a burst), against a 65,535-byte peer window.
fn two_bursts(
    st: &mut Stack<HeapPages>,
    dev: &mut QueueDevice,
    h: SocketHandle,
    snd: u32,
    ts: Option<(u32, u32)>,
) -> Vec<Vec<u8>> {
    let data = pattern_bytes(400_000);
    let mut written = 0;
    let mut frames = Vec::new();
    let mut most = 0;
    for i in 0..12u32 {
        while written < data.len() {
            match st.tcp_write(h, &data[written..]) {
                Ok(n) if n > 0 => written += n,
                _ => break,
            }
        }
        if i > 0 {
            dev.push_rx(ack_frame(snd + sent(&frames), 65_535, ts.map(|(v, e)| (v + i, e))));
        }
        st.poll(at(2 + u64::from(i)), dev);
        let before = frames.len();
        take(&mut frames, dev);
        most = most.max(frames.len() - before - 1);
    }
    assert!(most > 23, "some pass sent more than one burst's frames (most {most})");
    frames
}

/// As [`nagle_tail`] with `TCP_NODELAY`: the tail leaves with the rest.
fn nodelay_tail(
    st: &mut Stack<HeapPages>,
    dev: &mut QueueDevice,
    h: SocketHandle,
    snd: u32,
    ts: Option<(u32, u32)>,
) -> Vec<Vec<u8>> {
    st.tcp().set_option(h, SockOpt::NoDelay(true), at(1)).unwrap();
    nagle_tail(st, dev, h, snd, ts)
}

/// A write and a shutdown: the FIN rides on the last segment.
fn fin_on_last(
    st: &mut Stack<HeapPages>,
    dev: &mut QueueDevice,
    h: SocketHandle,
    snd: u32,
    ts: Option<(u32, u32)>,
) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    assert_eq!(st.tcp_write(h, &pattern_bytes(9_000)), Ok(9_000));
    st.tcp_shutdown(h).unwrap();
    st.poll(at(2), dev);
    take(&mut frames, dev);
    dev.push_rx(ack_frame(snd + 9_001, 65_535, ts.map(|(v, e)| (v + 1, e))));
    st.poll(at(3), dev);
    take(&mut frames, dev);
    frames
}

/// A peer window of 5,000 bytes, then 2,000 more: bursts stop at whole
/// segments and sender SWS avoidance decides the short rest.
fn window_limited(
    st: &mut Stack<HeapPages>,
    dev: &mut QueueDevice,
    h: SocketHandle,
    snd: u32,
    ts: Option<(u32, u32)>,
) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    dev.push_rx(ack_frame(snd, 5_000, ts.map(|(v, e)| (v + 1, e))));
    st.poll(at(2), dev);
    take(&mut frames, dev);
    assert_eq!(st.tcp_write(h, &pattern_bytes(30_000)), Ok(30_000));
    st.poll(at(3), dev);
    take(&mut frames, dev);
    let acked = snd + sent(&frames);
    dev.push_rx(ack_frame(acked, 7_000, ts.map(|(v, e)| (v + 2, e))));
    st.poll(at(4), dev);
    take(&mut frames, dev);
    // The persist timer probes the rest of a shut window later.
    st.poll(at(2_000), dev);
    take(&mut frames, dev);
    frames
}

/// A connection accepted from the scripted peer with SACK permitted (and
/// timestamps when `ts`, the SYN's TSval 100) on a stack with `gso_max`
/// and `caps`. Returns as [`connection`].
fn connection_sack(
    gso_max: usize,
    caps: DeviceCaps,
    ts: bool,
) -> (Stack<HeapPages>, QueueDevice, SocketHandle, u32, Option<u32>) {
    let mut cfg = stack_config(A_IP, 1);
    cfg.tcp.gso_max = gso_max;
    cfg.arp_ttl = zcstack::Duration::from_secs(1_000_000);
    let mut st = Stack::new(cfg, HeapPages::new(256, 2048), 1500);
    let mut dev = QueueDevice::new(caps);
    learn_peer(&mut st, &mut dev);
    let l = st.tcp_listen(80, 8).unwrap();
    let mut syn = seg(1000, None, TcpControl::Syn);
    syn.mss = Some(1460);
    syn.sack_ok = true;
    syn.ts = ts.then_some((100, 0));
    let out = exchange(&mut st, &mut dev, at(0), vec![tcp_frame(syn)]);
    assert_eq!(out.len(), 1);
    assert!(out[0].sack_ok, "SACK permitted in the SYN-ACK");
    let (snd, tsv) = (out[0].seq + 1, out[0].ts.map(|t| t.0));
    assert_eq!(tsv.is_some(), ts);
    let mut ack = seg(1001, Some(snd), TcpControl::None);
    ack.ts = tsv.map(|v| (101, v));
    assert!(exchange(&mut st, &mut dev, at(1), vec![tcp_frame(ack)]).is_empty());
    let (h, _) = st.tcp_accept(l).unwrap();
    (st, dev, h, snd, tsv)
}

/// The peer's data `payload` at its sequence number `seq`, ACKing `ack`.
fn data_frame(seq: u32, ack: u32, payload: &[u8], ts: Option<(u32, u32)>) -> Vec<u8> {
    let mut s = seg(seq, Some(ack), TcpControl::None);
    s.payload = payload;
    s.ts = ts;
    tcp_frame(s)
}

/// Data both ways with holes in what the peer sent: the stack's segments
/// carry two SACK blocks, then one, then none as the holes fill (each
/// block shortening the payload a segment has room for), while 300,000
/// bytes of its own leave in bursts against a 65,535-byte window.
fn sack_blocks_on_bursts(
    st: &mut Stack<HeapPages>,
    dev: &mut QueueDevice,
    h: SocketHandle,
    snd: u32,
    ts: Option<(u32, u32)>,
) -> Vec<Vec<u8>> {
    let peer = pattern_bytes(3_000);
    let data = pattern_bytes(300_000);
    let tsn = |i: u32| ts.map(|(v, e)| (v + i, e));
    let mut frames = Vec::new();
    // Bytes 1,000..1,300 and 2,000..2,200 of the peer's stream first:
    // two holes before them.
    dev.push_rx(data_frame(1001 + 1_000, snd, &peer[1_000..1_300], tsn(1)));
    dev.push_rx(data_frame(1001 + 2_000, snd, &peer[2_000..2_200], tsn(1)));
    st.poll(at(2), dev);
    take(&mut frames, dev);
    let mut written = 0;
    for i in 0..10u32 {
        while written < data.len() {
            match st.tcp_write(h, &data[written..]) {
                Ok(n) if n > 0 => written += n,
                _ => break,
            }
        }
        let acked = snd + sent(&frames);
        match i {
            // The first hole fills: one block left.
            2 => dev.push_rx(data_frame(1001, acked, &peer[..1_000], tsn(2 + i))),
            // The second: none.
            4 => dev.push_rx(data_frame(1001 + 1_300, acked, &peer[1_300..2_000], tsn(2 + i))),
            _ if i > 0 => dev.push_rx(ack_frame(acked, 65_535, tsn(2 + i))),
            _ => {}
        }
        st.poll(at(3 + u64::from(i)), dev);
        take(&mut frames, dev);
    }
    let (got, _) = drain(st, h);
    assert_eq!(got, peer[..2_200], "the peer's bytes, reassembled");
    let segs: Vec<Got> = frames.iter().filter_map(|f| decode_tcp(f)).filter(|g| !g.payload.is_empty()).collect();
    let blocks = |n: usize| segs.iter().filter(|g| g.sack.iter().flatten().count() == n).count();
    assert!(
        blocks(2) > 10 && blocks(1) > 10 && blocks(0) > 10,
        "data segments with two, one and no SACK blocks: {}, {}, {}",
        blocks(2),
        blocks(1),
        blocks(0)
    );
    frames
}

/// A connection as [`connection`] gives, on a stack whose ARP entries
/// live 10 s (the peer's expires before [`arp_expired`] writes) and whose
/// pending queue holds four packets per destination.
fn connection_short_arp(
    gso_max: usize,
    caps: DeviceCaps,
    ts: bool,
) -> (Stack<HeapPages>, QueueDevice, SocketHandle, u32, Option<u32>) {
    let mut cfg = stack_config(A_IP, 1);
    cfg.tcp.gso_max = gso_max;
    cfg.arp_ttl = zcstack::Duration::from_secs(10);
    cfg.arp_pending_per_dest = 4;
    let st = Stack::new(cfg, HeapPages::new(256, 2048), 1500);
    let dev = QueueDevice::new(caps);
    if !ts {
        let (st, dev, h, snd) = established_on(st, dev);
        return (st, dev, h, snd, None);
    }
    let (st, dev, h, snd, tsv) = established_ts_on(st, dev);
    (st, dev, h, snd, Some(tsv))
}

/// 20,000 bytes written once the peer's ARP entry has expired: the bursts
/// wait for the resolution (what the pending queue holds; the rest is
/// dropped, counted, and resent), leave when the peer answers, and the
/// rest follows the ACKs and the retransmission timer.
fn arp_expired(
    st: &mut Stack<HeapPages>,
    dev: &mut QueueDevice,
    h: SocketHandle,
    snd: u32,
    ts: Option<(u32, u32)>,
) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    st.tcp().set_option(h, SockOpt::NoDelay(true), at(1)).unwrap();
    assert_eq!(st.tcp_write(h, &pattern_bytes(20_000)), Ok(20_000));
    st.poll(at(20_000), dev);
    take(&mut frames, dev);
    assert!(sent(&frames) == 0 && frames.len() > 1, "an ARP request, no data before the answer");
    assert!(st.stats().drop_arp_unresolved > 0, "more than the pending queue holds: some dropped");
    // The peer asks for us: its MAC is learnt, what waited leaves.
    dev.push_rx(arp_request());
    st.poll(at(20_001), dev);
    take(&mut frames, dev);
    assert!(sent(&frames) > 0, "what waited leaves once the peer is known");
    let mut now = 20_002;
    for i in 1..=40u32 {
        // The peer ACKs what it has in order (a gap waits for the RTO).
        let mut have = snd;
        let mut got: Vec<(u32, u32)> = frames
            .iter()
            .filter_map(|f| decode_tcp(f))
            .filter(|g| !g.payload.is_empty())
            .map(|g| (g.seq, g.payload.len() as u32))
            .collect();
        got.sort_unstable();
        for (seq, len) in got {
            if seq <= have && seq + len > have {
                have = seq + len;
            }
        }
        if have == snd + 20_000 {
            break;
        }
        dev.push_rx(ack_frame(have, 65_535, ts.map(|(v, e)| (v + i, e))));
        st.poll(at(now), dev);
        take(&mut frames, dev);
        now += 250;
        st.poll(at(now), dev);
        take(&mut frames, dev);
    }
    assert!(st.stats().tcp_rto_retransmits > 0, "some data waited for the retransmission timer");
    frames
}

/// A device that takes `room` frames per poll and refuses the rest (a
/// full TX ring), recording what it took in the wrapped device.
struct Full<'a> {
    inner: &'a mut QueueDevice,
    room: usize,
}

impl zcstack::phy::Device for Full<'_> {
    fn caps(&self) -> DeviceCaps {
        self.inner.caps()
    }
    fn receive(&mut self, now: zcstack::Instant, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize {
        self.inner.receive(now, budget, sink)
    }
    fn transmit(
        &mut self,
        now: zcstack::Instant,
        frame: zcstack::phy::TxFrame,
        mem: &dyn PageMemory,
    ) -> Result<(), zcstack::phy::TxFrame> {
        if self.room == 0 {
            return Err(frame);
        }
        self.room -= 1;
        self.inner.transmit(now, frame, mem)
    }
    fn poll_completions(&mut self, now: zcstack::Instant, done: &mut dyn FnMut(zcstack::phy::TxFrame)) {
        self.inner.poll_completions(now, done)
    }
}

/// 40,000 bytes through a device that takes five frames per poll: what
/// it refuses waits in the stack's backlog, in order, for the next poll.
fn device_full(
    st: &mut Stack<HeapPages>,
    dev: &mut QueueDevice,
    h: SocketHandle,
    snd: u32,
    ts: Option<(u32, u32)>,
) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    st.tcp().set_option(h, SockOpt::NoDelay(true), at(1)).unwrap();
    assert_eq!(st.tcp_write(h, &pattern_bytes(40_000)), Ok(40_000));
    let mut most = 0;
    for i in 0..40u32 {
        if i % 3 == 2 {
            dev.push_rx(ack_frame(snd + sent(&frames), 65_535, ts.map(|(v, e)| (v + i, e))));
        }
        st.poll(at(2 + u64::from(i)), &mut Full { inner: dev, room: 5 });
        let before = frames.len();
        take(&mut frames, dev);
        most = most.max(frames.len() - before - 1);
        if sent(&frames) == 40_000 {
            break;
        }
    }
    assert_eq!(most, 5, "the device refused frames");
    assert_eq!(sent(&frames), 40_000, "all of it, in five-frame polls");
    frames
}

/// How a script's connection is opened: [`connection`] or [`connection_sack`].
type Connect = fn(usize, DeviceCaps, bool) -> (Stack<HeapPages>, QueueDevice, SocketHandle, u32, Option<u32>);

/// Runs `script` over a connection from `connect` with GSO (32 KiB) and
/// with `gso_max = 0`, with software checksums and with offload, with and
/// without timestamps; the transmitted frames must be equal byte for byte.
fn assert_gso_frames_are_plain(name: &str, script: Script, connect: Connect) {
    let offload = DeviceCaps { tx_checksum_offload: true, ..DeviceCaps::default() };
    for (caps_name, caps) in [("software checksums", DeviceCaps::default()), ("checksum offload", offload)] {
        for ts in [false, true] {
            let run = |gso_max: usize| {
                let (mut st, mut dev, h, snd, tsv) = connect(gso_max, caps, ts);
                let frames = script(&mut st, &mut dev, h, snd, tsv.map(|v| (101, v)));
                (frames, st.stats().tcp_gso_bursts, st.stats().page_errors)
            };
            let (plain, bursts0, err0) = run(0);
            let (gso, bursts, err) = run(32 * 1024);
            let what = format!("{name}, {caps_name}, timestamps {ts}");
            assert_eq!(bursts0, 0, "{what}: gso_max 0 cuts nothing");
            assert!(bursts > 0, "{what}: the GSO run sent bursts");
            assert_eq!((err0, err), (0, 0), "{what}: no page error");
            assert!(plain.len() > 8, "{what}: the script sends data ({} frames)", plain.len());
            for f in &gso {
                assert!(f.len() <= 1514, "{what}: a {}-byte frame", f.len());
            }
            assert_eq!(gso.len(), plain.len(), "{what}: frame count");
            for (i, (g, p)) in gso.iter().zip(&plain).enumerate() {
                if g != p {
                    let brief = |f: &[u8]| decode_tcp(f).map(|d| (d.seq, d.payload.len(), d.ctl, d.ts, d.sack));
                    panic!("{what}: frame {i} differs: gso {:?}, plain {:?}", brief(g), brief(p));
                }
            }
        }
    }
}

#[test]
fn gso_frames_are_the_segment_by_segment_frames() {
    let scripts: [(&str, Script); 5] = [
        ("nagle_tail", nagle_tail),
        ("nodelay_tail", nodelay_tail),
        ("fin_on_last", fin_on_last),
        ("window_limited", window_limited),
        ("two_bursts", two_bursts),
    ];
    for (name, script) in scripts {
        assert_gso_frames_are_plain(name, script, connection);
    }
}

#[test]
fn gso_frames_carry_the_sack_blocks_segment_by_segment_frames_carry() {
    assert_gso_frames_are_plain("sack_blocks_on_bursts", sack_blocks_on_bursts, connection_sack);
}

#[test]
fn gso_frames_a_full_device_refuses_wait_as_segments_do() {
    assert_gso_frames_are_plain("device_full", device_full, connection);
}

#[test]
fn gso_frames_waiting_for_arp_are_the_segment_by_segment_frames() {
    assert_gso_frames_are_plain("arp_expired", arp_expired, connection_short_arp);
}

#[test]
fn bursts_respect_a_smaller_gso_max_and_every_page_comes_back() {
    // 4,000 bytes per burst: two whole segments (2,920) each.
    let (mut st, mut dev, h, snd, _) = connection(4_000, DeviceCaps::default(), false);
    let data = pattern_bytes(14_600);
    assert_eq!(st.tcp_write(h, &data), Ok(14_600));
    st.poll(at(2), &mut dev);
    let out: Vec<Got> = dev.take_tx().iter().filter_map(|f| decode_tcp(f)).collect();
    assert_eq!(out.len(), 10, "{out:?}");
    let mut next = snd;
    for g in &out {
        assert_eq!(g.seq, next);
        assert_eq!(g.payload.len(), 1460);
        next += 1460;
    }
    let sent: Vec<u8> = out.iter().flat_map(|g| g.payload.clone()).collect();
    assert_eq!(sent, data);
    assert_eq!(st.stats().tcp_gso_bursts, 5, "ten segments in bursts of two");
    dev.push_rx(ack_frame(snd + 14_600, 65_535, None));
    st.poll(at(3), &mut dev);
    assert_eq!(st.mem().free_count(), st.mem().capacity(), "every page free once all is ACKed");
}

#[test]
fn gso_on_lossy_links_keeps_streams_intact_and_off_still_works() {
    for (gso_max, seed) in [(32 * 1024, 21u64), (64 * 1024 - 1, 22), (0, 23)] {
        let sim = SimConfig { loss: 0.03, reorder: 0.03, duplicate: 0.01, ..SimConfig::default() };
        let mut ca = stack_config(A_IP, 1);
        let mut cb = stack_config(B_IP, 2);
        ca.tcp.gso_max = gso_max;
        cb.tcp.gso_max = gso_max;
        let mut p = Pair::with_configs(sim, seed, ca, cb, 8192);
        let l = p.a.tcp_listen(80, 4).unwrap();
        let c = p.b.tcp_connect(sa(A_IP, 80), 0, p.now).unwrap();
        let mut s = None;
        let stop = p.run_until(10_000, |p| {
            if s.is_none() {
                s = p.a.tcp_accept(l).ok().map(|(h, _)| h);
            }
            s.is_some() && p.b.tcp_state(c) == Ok(State::Established)
        });
        assert_eq!(stop, Stop::Done);
        let s = s.unwrap();
        let mut src = Source::new(seed, 2 << 20);
        let mut sink = Sink::default();
        let mut shut = false;
        let mut buf = vec![0u8; 64 * 1024];
        let stop = p.run_until(3_000_000, |p| {
            src.pump(|d| p.b.tcp_write(c, d).unwrap_or(0));
            if src.done() && !shut {
                p.b.tcp_shutdown(c).unwrap();
                shut = true;
            }
            loop {
                match p.a.tcp_read(s, &mut buf) {
                    Ok(0) => {
                        sink.eof = true;
                        break;
                    }
                    Ok(n) => sink.absorb(&buf[..n]),
                    Err(TcpError::WouldBlock) => break,
                    Err(e) => panic!("read: {e}"),
                }
            }
            sink.eof
        });
        assert_eq!(stop, Stop::Done, "gso_max {gso_max}: stalled at {} bytes", sink.received);
        assert_eq!(sink.digest(), src.digest(), "gso_max {gso_max}: stream intact");
        assert_eq!(p.db.stats().too_big, 0, "gso_max {gso_max}: no frame over the MTU");
        let bursts = p.b.stats().tcp_gso_bursts;
        assert_eq!(bursts > 0, gso_max > 0, "gso_max {gso_max}: {bursts} bursts");
        assert_eq!(p.b.stats().page_errors, 0);
        p.a.tcp_close(s, p.now).unwrap();
        p.b.tcp_close(c, p.now).unwrap();
        let stop = p.run_until(1_000_000, |p| p.a.tcp_connections() == 0 && p.b.tcp_connections() == 0);
        assert_eq!(stop, Stop::Done);
        p.da.release_all();
        p.db.release_all();
        assert_eq!(p.run_until(1000, |p| p.no_leaks()), Stop::Done, "gso_max {gso_max}: every page back");
    }
}

/// Page memory whose `incref` is refused once, at the n-th call after
/// arming (as when a page reaches its reference limit).
struct Flaky {
    inner: HeapPages,
    refuse_in: Rc<Cell<Option<u32>>>,
    refused: Rc<Cell<u32>>,
}

impl PageMemory for Flaky {
    fn buf_size(&self) -> usize {
        self.inner.buf_size()
    }
    fn capacity(&self) -> usize {
        self.inner.capacity()
    }
    fn free_count(&self) -> usize {
        self.inner.free_count()
    }
    fn alloc(&mut self) -> Option<PageId> {
        self.inner.alloc()
    }
    fn incref(&mut self, id: PageId) -> Result<(), PageError> {
        if let Some(n) = self.refuse_in.get() {
            if n <= 1 {
                self.refuse_in.set(None);
                self.refused.set(self.refused.get() + 1);
                return Err(PageError::TooManyRefs(id));
            }
            self.refuse_in.set(Some(n - 1));
        }
        self.inner.incref(id)
    }
    fn decref(&mut self, id: PageId) -> Result<bool, PageError> {
        self.inner.decref(id)
    }
    fn refcount(&self, id: PageId) -> u16 {
        self.inner.refcount(id)
    }
    fn bytes(&self, id: PageId) -> &[u8] {
        self.inner.bytes(id)
    }
    fn bytes_mut(&mut self, id: PageId) -> &mut [u8] {
        self.inner.bytes_mut(id)
    }
}

#[test]
fn a_refused_page_reference_costs_a_counted_error_and_a_resend_never_data() {
    // The n-th page reference taken after the write is refused, for every
    // n through the output pass (the burst's slices, then the references
    // of slices cut across frames; segment by segment; a TSO frame), with
    // and without a FIN queued behind the data: whatever was refused, the
    // peer gets every byte once ACKs and timeouts have run, the FIN only
    // right after the last byte, PSH only on a segment ending there (a
    // segment left short carries neither), no empty segment but a bare
    // ACK, and every page returns.
    let data = pattern_bytes(14_600);
    let end = 14_600u32;
    let mut refused_in_flush = 0;
    let tso = DeviceCaps { tx_checksum_offload: true, tso_max: 32 * 1024, ..DeviceCaps::default() };
    for (mode, gso_max, caps) in
        [("gso", 32 * 1024, DeviceCaps::default()), ("segments", 0, DeviceCaps::default()), ("tso", 0, tso)]
    {
        for fin in [false, true] {
            for n in 1..=24u32 {
                let refuse_in = Rc::new(Cell::new(None));
                let refused = Rc::new(Cell::new(0));
                let mem =
                    Flaky { inner: HeapPages::new(256, 2048), refuse_in: refuse_in.clone(), refused: refused.clone() };
                let mut cfg = stack_config(A_IP, 1);
                cfg.arp_ttl = zcstack::Duration::from_secs(1_000_000);
                cfg.tcp.gso_max = gso_max;
                let (mut st, mut dev, h, snd) = established_on(Stack::new(cfg, mem, 1500), QueueDevice::new(caps));
                st.tcp().set_option(h, SockOpt::NoDelay(true), at(1)).unwrap();
                assert_eq!(st.tcp_write(h, &data), Ok(14_600));
                if fin {
                    st.tcp_shutdown(h).unwrap();
                }
                refuse_in.set(Some(n));
                st.poll(at(2), &mut dev);
                let errors = st.stats().page_errors;
                assert_eq!(errors, u64::from(refused.get()), "n={n}: each refusal counted");
                let mut pending: Vec<Got> = dev.take_tx().iter().filter_map(|f| decode_tcp(f)).collect();
                // A refusal while the flush cut the burst: some frames left,
                // all whole, nothing after them (a refusal while the burst's
                // slices were taken leaves a short last frame, or a bare ACK).
                let bytes: usize = pending.iter().map(|g| g.payload.len()).sum();
                if mode == "gso"
                    && refused.get() == 1
                    && !pending.is_empty()
                    && bytes < data.len()
                    && pending.iter().all(|g| g.payload.len() == 1460)
                {
                    refused_in_flush += 1;
                }
                // The peer: keep ACKing what arrived in order; time runs on for
                // the retransmission timer.
                let mut got: Vec<u8> = Vec::new();
                let mut fin_seen = false;
                let mut now = 2u64;
                for _ in 0..200 {
                    let mut data_before = false;
                    for g in pending.drain(..) {
                        let off = g.seq.wrapping_sub(snd) as usize;
                        let what = format!("{mode}, n={n}, fin {fin}: {:?} at {off}+{}", g.ctl, g.payload.len());
                        if g.ctl == TcpControl::Psh {
                            assert_eq!(off + g.payload.len(), end as usize, "{what}: PSH only at the end");
                        }
                        if g.payload.is_empty() {
                            assert!(matches!(g.ctl, TcpControl::None | TcpControl::Fin), "{what}: an empty segment");
                            // A bare ACK behind data of the same poll says
                            // nothing new: a segment left empty is not sent.
                            assert!(g.ctl == TcpControl::Fin || !data_before, "{what}: a bare ACK behind data");
                        }
                        data_before |= !g.payload.is_empty();
                        if g.ctl == TcpControl::Fin {
                            assert!(fin, "n={n}: no FIN was queued");
                            assert_eq!(off + g.payload.len(), end as usize, "n={n}: the FIN right after the last byte");
                        }
                        if off <= got.len() && off + g.payload.len() > got.len() {
                            got.extend_from_slice(&g.payload[got.len() - off..]);
                        }
                        fin_seen |= g.ctl == TcpControl::Fin && got.len() == data.len();
                    }
                    if got.len() == data.len() && fin_seen == fin {
                        break;
                    }
                    now += 300;
                    dev.push_rx(ack_frame(snd + got.len() as u32 + u32::from(fin_seen), 65_535, None));
                    st.poll(at(now), &mut dev);
                    pending = dev.take_tx().iter().filter_map(|f| decode_tcp(f)).collect();
                }
                assert_eq!(got, data, "n={n}, fin {fin}: every byte arrives, in order");
                assert_eq!(fin_seen, fin, "n={n}: the FIN arrives after the data");
                dev.push_rx(ack_frame(snd + end + u32::from(fin), 65_535, None));
                st.poll(at(now + 1), &mut dev);
                assert_eq!(
                    st.mem().free_count(),
                    st.mem().capacity(),
                    "{mode}, n={n}, fin {fin}: every page free once all is ACKed"
                );
            }
        }
    }
    assert!(refused_in_flush > 0, "some refusal hit the flush's cutting of a burst");
}

#[test]
fn a_tso_frame_keeps_its_short_tail_and_a_gso_burst_holds_it_under_nagle() {
    // 5,000 bytes on an idle connection, Nagle on: a TSO device gets one
    // frame with all of it (the tail too: zcstack's TSO behaviour; Linux,
    // Minshall's rule, would also send it with nothing short in flight);
    // cut by the stack, the three
    // whole segments leave and Nagle holds the 620-byte tail for the ACK,
    // as segment-by-segment sending does.
    let tso = DeviceCaps { tx_checksum_offload: true, tso_max: 32 * 1024, ..DeviceCaps::default() };
    let (mut st, mut dev, h, snd) = established_with(tso);
    assert_eq!(st.tcp_write(h, &pattern_bytes(5_000)), Ok(5_000));
    st.poll(at(2), &mut dev);
    let out: Vec<Got> = dev.take_tx().iter().filter_map(|f| decode_tcp(f)).collect();
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!((out[0].seq, out[0].payload.len()), (snd, 5_000));
    assert_eq!(st.stats().tcp_tso_frames, 1);

    let (mut st, mut dev, h, snd, _) = connection(32 * 1024, DeviceCaps::default(), false);
    assert_eq!(st.tcp_write(h, &pattern_bytes(5_000)), Ok(5_000));
    st.poll(at(2), &mut dev);
    let out: Vec<(u32, usize)> =
        dev.take_tx().iter().filter_map(|f| decode_tcp(f)).map(|g| (g.seq, g.payload.len())).collect();
    assert_eq!(out, vec![(snd, 1460), (snd + 1460, 1460), (snd + 2920, 1460)]);
    dev.push_rx(ack_frame(snd + 4380, 65_535, None));
    st.poll(at(3), &mut dev);
    let out: Vec<(u32, usize)> =
        dev.take_tx().iter().filter_map(|f| decode_tcp(f)).map(|g| (g.seq, g.payload.len())).collect();
    assert_eq!(out, vec![(snd + 4380, 620)], "the tail once the rest is ACKed");
}
