//! The output pass limit (`TcpConfig::output_pass_frames`): a connection
//! hands the device at most that many frames per output pass, goes on in
//! the next pass without waiting for an ACK (the stack reports itself busy),
//! loses and reorders nothing, and leaves room in the pass for the other
//! connections. A TSO frame counts as one frame; a GSO burst counts the
//! frames it is cut into.
mod common;

use common::script::*;
use common::*;
use zcstack::mem::HeapPages;
use zcstack::phy::queue::QueueDevice;
use zcstack::phy::DeviceCaps;
use zcstack::wire::TcpControl;
use zcstack::{Instant, SocketHandle, Stack};

/// Payload of a full segment (the peer's MSS, 1460, without options).
const MSS: usize = 1460;

fn stack_limited(frames: usize, gso_max: usize, caps: DeviceCaps) -> (Stack<HeapPages>, QueueDevice, SocketHandle) {
    let mut cfg = stack_config(A_IP, 1);
    cfg.tcp.output_pass_frames = frames;
    cfg.tcp.gso_max = gso_max;
    cfg.tcp.nodelay = true;
    let mut st = Stack::new(cfg, HeapPages::new(256, 4096), 1500);
    let mut dev = QueueDevice::new(caps);
    learn_peer(&mut st, &mut dev);
    let l = st.tcp_listen(80, 8).unwrap();
    (st, dev, l)
}

/// A connection from the scripted peer's port `sport` to the listener
/// `l` (port 80): (handle, our first data sequence number).
fn handshake(st: &mut Stack<HeapPages>, dev: &mut QueueDevice, l: SocketHandle, sport: u16) -> (SocketHandle, u32) {
    let mut syn = seg(1000, None, TcpControl::Syn);
    syn.sport = sport;
    syn.mss = Some(1460);
    let out = exchange(st, dev, at(1), vec![tcp_frame(syn)]);
    assert_eq!(out.len(), 1, "a SYN-ACK");
    let iss = out[0].seq;
    let mut ack = seg(1001, Some(iss + 1), TcpControl::None);
    ack.sport = sport;
    exchange(st, dev, at(1), vec![tcp_frame(ack)]);
    (st.tcp_accept(l).expect("established").0, iss + 1)
}

fn limited(frames: usize, gso_max: usize, caps: DeviceCaps) -> (Stack<HeapPages>, QueueDevice, SocketHandle, u32) {
    let (mut st, mut dev, l) = stack_limited(frames, gso_max, caps);
    let (h, snd) = handshake(&mut st, &mut dev, l, 40000);
    (st, dev, h, snd)
}

/// Polls once at `ms` ([`exchange`] with nothing received); the data
/// segments sent.
fn poll_data(st: &mut Stack<HeapPages>, dev: &mut QueueDevice, ms: u64) -> Vec<Got> {
    exchange(st, dev, at(ms), Vec::new()).into_iter().filter(|g| !g.payload.is_empty()).collect()
}

/// The segments' payloads in order, checked contiguous from `snd`.
fn stream(segs: &[Got], mut snd: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for g in segs {
        assert_eq!(g.seq, snd, "segments leave in order, with no gap or repeat");
        snd = snd.wrapping_add(g.payload.len() as u32);
        out.extend_from_slice(&g.payload);
    }
    out
}

#[test]
fn a_pass_sends_at_most_its_frames_and_the_rest_follows_without_an_ack() {
    for gso_max in [0, 32 * 1024] {
        let (mut st, mut dev, h, snd) = limited(4, gso_max, DeviceCaps::default());
        let data = pattern(7, 12 * MSS);
        assert_eq!(st.tcp_write(h, &data), Ok(data.len()));
        let mut all = Vec::new();
        let mut per_poll = Vec::new();
        for i in 0..6 {
            let segs = poll_data(&mut st, &mut dev, 2 + i);
            per_poll.push(segs.len());
            if segs.len() == 4 {
                assert_eq!(st.poll_at(), Some(Instant::ZERO), "gso_max {gso_max}: a connection held back is work now");
            }
            all.extend(segs);
        }
        // The initial window is 10 segments (RFC 6928); no ACK came.
        assert_eq!(per_poll, [4, 4, 2, 0, 0, 0], "gso_max {gso_max}: frames per poll");
        assert!(all.iter().all(|g| g.payload.len() == MSS), "gso_max {gso_max}: whole segments");
        assert_eq!(stream(&all, snd), data[..10 * MSS], "gso_max {gso_max}: the bytes written, in order");
        // The ACK of all ten lets the last two go (cwnd grew).
        let out = exchange(
            &mut st,
            &mut dev,
            at(20),
            vec![tcp_frame(seg(1001, Some(snd.wrapping_add(10 * MSS as u32)), TcpControl::None))],
        );
        let rest: Vec<Got> = out.into_iter().filter(|g| !g.payload.is_empty()).collect();
        assert_eq!(stream(&rest, snd.wrapping_add(10 * MSS as u32)), data[10 * MSS..], "gso_max {gso_max}: the tail");
    }
}

/// Writes 12 segments' worth on a fresh connection limited to `frames`
/// per pass, polls once: the stack and the data segments of that pass,
/// checked to be the first bytes written.
fn first_pass(frames: usize) -> (Stack<HeapPages>, Vec<Got>) {
    let (mut st, mut dev, h, snd) = limited(frames, 0, DeviceCaps::default());
    let data = pattern(7, 12 * MSS);
    assert_eq!(st.tcp_write(h, &data), Ok(data.len()));
    let segs = poll_data(&mut st, &mut dev, 2);
    assert_eq!(stream(&segs, snd), data[..segs.len() * MSS]);
    (st, segs)
}

#[test]
fn no_limit_sends_the_whole_window_in_one_pass() {
    let (_, segs) = first_pass(0);
    assert_eq!(segs.len(), 10, "0: no limit, the initial window at once");
}

#[test]
fn a_tso_frame_counts_as_one() {
    let caps = DeviceCaps { tx_checksum_offload: true, tso_max: 64 * 1024, ..DeviceCaps::default() };
    let (mut st, mut dev, h, _) = limited(1, 0, caps);
    let data = pattern(7, 12 * MSS);
    assert_eq!(st.tcp_write(h, &data), Ok(data.len()));
    st.poll(at(2), &mut dev);
    let frames = dev.take_tx();
    assert_eq!(frames.len(), 1, "one TSO frame in the pass");
    // The frame carries the whole initial window (10 segments) in one TSO
    // frame: the limit is in frames, not bytes.
    let payload = frames[0].len() - 14 - 20 - 20;
    assert_eq!(payload, 10 * MSS, "a TSO frame is not cut to fit the pass");
    assert_eq!(&frames[0][54..], &data[..10 * MSS]);
}

/// Two connections from the peer's ports 40000 and 40001, 4 frames per pass.
fn two_connections() -> (Stack<HeapPages>, QueueDevice, [(SocketHandle, u32); 2]) {
    let (mut st, mut dev, l) = stack_limited(4, 0, DeviceCaps::default());
    let first = handshake(&mut st, &mut dev, l, 40000);
    let second = handshake(&mut st, &mut dev, l, 40001);
    (st, dev, [first, second])
}

#[test]
fn one_bulk_sender_leaves_room_in_the_pass_for_the_others() {
    let (mut st, mut dev, [(h1, snd1), (h2, snd2)]) = two_connections();
    let d1 = pattern(7, 10 * MSS);
    let d2: Vec<u8> = d1.iter().map(|b| b ^ 0xa5).collect();
    assert_eq!(st.tcp_write(h1, &d1), Ok(d1.len()));
    assert_eq!(st.tcp_write(h2, &d2), Ok(d2.len()));
    let mut got: [Vec<Got>; 2] = [Vec::new(), Vec::new()];
    let mut first = [0usize; 2];
    for i in 0..5 {
        let segs = poll_data(&mut st, &mut dev, 2 + i);
        for g in segs {
            // Our segments go to the peer's port: 40000 first, 40001 second.
            let k = usize::from(g.dport == 40001);
            if i == 0 {
                first[k] += 1;
            }
            got[k].push(g);
        }
    }
    assert_eq!(first, [4, 4], "each connection had its 4 frames in the first pass");
    assert_eq!(stream(&got[0], snd1), d1);
    assert_eq!(stream(&got[1], snd2), d2);
}

#[test]
fn a_pass_that_spends_the_window_leaves_the_connection_idle() {
    // The limit and the initial window are both 10 frames: the pass sends
    // all the window allows, and nothing may go until an ACK comes.
    let (mut st, segs) = first_pass(10);
    assert_eq!(segs.len(), 10);
    assert_ne!(st.poll_at(), Some(Instant::ZERO), "no pass is owed: the window is spent, not the pass");
}

#[test]
fn a_connection_marked_after_a_held_one_still_goes_in_the_same_pass() {
    // Held connections are served first in the next pass (the list is not
    // reordered: doing so cost rr64 ~7-8% in code layout alone), but a
    // pass serves every marked connection, so a reply written after a
    // bulk sender was held back leaves in the very next pass, behind at
    // most one pass's frames of the bulk sender.
    let (mut st, mut dev, [(bulk, _), (reply, reply_snd)]) = two_connections();
    let data = pattern(7, 10 * MSS);
    assert_eq!(st.tcp_write(bulk, &data), Ok(data.len()));
    assert_eq!(poll_data(&mut st, &mut dev, 2).len(), 4, "the bulk sender is held back after 4");
    assert_eq!(st.tcp_write(reply, b"reply"), Ok(5));
    let segs = poll_data(&mut st, &mut dev, 3);
    let ports: Vec<u16> = segs.iter().map(|g| g.dport).collect();
    assert_eq!(ports, [40000, 40000, 40000, 40000, 40001], "the reply leaves in the next pass, after 4 bulk frames");
    assert_eq!(stream(&segs[4..], reply_snd), b"reply");
}
