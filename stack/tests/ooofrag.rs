//! Hostile and unlucky peers against the out-of-order store and IPv4
//! reassembly (issue 10, faults 5 and 6), at the segment level with a
//! scripted peer and simulated time.
//!
//! Out of order: overlapping data is trimmed and merged, its memory stays
//! within the advertised window however the peer slices it (plain segments
//! or IP fragments), and filling the hole delivers exactly the stream.
//! Reassembly: tiny fragments at high offsets, floods of first fragments
//! from one or many sources, thousands of fragments of one datagram and
//! exact duplicates never stop a fragmented SYN from being answered.
mod common;

use std::net::Ipv4Addr;

use common::script::*;
use common::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use zcstack::mem::HeapPages;
use zcstack::phy::queue::QueueDevice;
use zcstack::tcp::ooo_store::{BLOCK_COST, RANGE_COST};
use zcstack::wire::*;
use zcstack::{Instant, SocketHandle, Stack, State};

/// Receive buffer of the stack under test (the default), bytes.
const RCVBUF: usize = 256 * 1024;

/// An IPv4 fragment of a TCP datagram from `src`: `part` lies at byte
/// `offset` of the datagram's payload.
fn ip_fragment(src: Ipv4Addr, ident: u16, offset: usize, more: bool, part: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 34 + part.len()];
    EthernetRepr { src_addr: PEER_MAC, dst_addr: OUR_MAC, ethertype: EthernetProtocol::Ipv4 }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..14]));
    Ipv4Repr { src_addr: src, dst_addr: A_IP, next_header: IpProtocol::Tcp, payload_len: part.len(), hop_limit: 64 }
        .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..34]), &Default::default());
    f[34..].copy_from_slice(part);
    let mut ip = Ipv4Packet::new_unchecked(&mut f[14..]);
    ip.set_ident(ident);
    ip.set_more_frags(more);
    ip.set_frag_offset(offset as u16);
    ip.set_dont_frag(false);
    ip.fill_checksum();
    f
}

/// The TCP bytes (header and payload) of a segment from the scripted peer.
fn tcp_bytes(s: Seg<'_>) -> Vec<u8> {
    tcp_frame(s)[34..].to_vec()
}

/// `l4` cut into fragments of `piece` bytes (a multiple of 8) from `src`.
fn fragments(src: Ipv4Addr, ident: u16, l4: &[u8], piece: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < l4.len() {
        let end = (at + piece).min(l4.len());
        out.push(ip_fragment(src, ident, at, end < l4.len(), &l4[at..end]));
        at = end;
    }
    out
}

/// Feeds frames 32 at a time, polling after each batch; returns the TCP replies.
fn feed(st: &mut Stack<HeapPages>, dev: &mut QueueDevice, now: Instant, frames: Vec<Vec<u8>>) -> Vec<Got> {
    let mut got = Vec::new();
    let mut it = frames.into_iter().peekable();
    while it.peek().is_some() {
        let batch: Vec<Vec<u8>> = it.by_ref().take(32).collect();
        got.extend(exchange(st, dev, now, batch));
    }
    got
}

/// A connection from the scripted peer with window scaling (both sides
/// offer 7) and SACK; one byte is exchanged so the full scaled window is
/// advertised. Returns the stack, device, handle, our next sequence number
/// and the peer's next sequence number.
fn established_scaled() -> (Stack<HeapPages>, QueueDevice, SocketHandle, u32, u32) {
    let (mut st, mut dev) = stack();
    learn_peer(&mut st, &mut dev);
    let l = st.tcp_listen(80, 8).unwrap();
    let mut syn = seg(1000, None, TcpControl::Syn);
    syn.mss = Some(1460);
    syn.wscale = Some(7);
    syn.sack_ok = true;
    let out = exchange(&mut st, &mut dev, Instant::ZERO, vec![tcp_frame(syn)]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].wscale, Some(7), "we offer window scaling");
    let ours = out[0].seq + 1;
    let mut ack = seg(1001, Some(ours), TcpControl::None);
    ack.payload = b"p";
    let out = exchange(&mut st, &mut dev, Instant::from_millis(1), vec![tcp_frame(ack)]);
    let (h, _) = st.tcp_accept(l).unwrap();
    assert_eq!(st.tcp_state(h), Ok(State::Established));
    let mut b = [0u8; 4];
    assert_eq!(st.tcp_read(h, &mut b), Ok(1));
    // The delayed ACK of that byte carries the full scaled window.
    let mut acks = out;
    acks.extend(exchange(&mut st, &mut dev, Instant::from_millis(100), vec![]));
    let last = acks.last().expect("the byte is acknowledged");
    assert_eq!(last.ack, Some(1002));
    assert!(usize::from(last.win) << 7 >= RCVBUF - 4096, "full window: {}", last.win);
    (st, dev, h, ours, 1002)
}

/// Reads everything readable.
fn read_all(st: &mut Stack<HeapPages>, h: SocketHandle) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match st.tcp_read(h, &mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// The memory the out-of-order store holds stays within the window.
fn assert_within_window(st: &mut Stack<HeapPages>, h: SocketHandle, what: &str) -> zcstack::tcp::ooo_store::OooUsage {
    let u = st.tcp().ooo_usage(h).unwrap();
    assert!(u.window <= RCVBUF, "{what}: window {} above the buffer", u.window);
    assert!(u.bytes <= u.window + u.ranges * RANGE_COST, "{what}: {u:?}");
    u
}

/// Issue input: 1,024 segments of 1,400 bytes at `rcv_nxt + 1 + i`, all
/// overlapping, a hole at `rcv_nxt`. They used to cost ~1.45 MB against a
/// 256 KiB window; now one range of 2,423 bytes in one 4 KiB block.
#[test]
fn overlapping_out_of_order_segments_cost_at_most_the_window() {
    let (mut st, mut dev, h, ours, base) = established_scaled();
    let data = pattern(5, 1 + 1023 + 1400);
    let frames: Vec<Vec<u8>> = (0..1024usize)
        .map(|i| {
            let mut s = seg(base + 1 + i as u32, Some(ours), TcpControl::None);
            s.payload = &data[1 + i..1 + i + 1400];
            tcp_frame(s)
        })
        .collect();
    let replies = feed(&mut st, &mut dev, Instant::from_millis(200), frames);
    assert!(replies.iter().all(|g| g.ack == Some(base)), "every reply is a duplicate ACK for the hole");
    let u = assert_within_window(&mut st, h, "after 1,024 overlapping segments");
    assert!(u.bytes <= u.window, "{u:?}");
    assert_eq!(u.payload, 1023 + 1400, "overlaps counted once");
    assert_eq!(u.ranges, 1);
    assert!(u.bytes <= BLOCK_COST + RANGE_COST, "{u:?}");
    assert_eq!(st.stats().tcp_ooo_bytes_trimmed, 1023 * 1399);
    assert_eq!(st.stats().drop_tcp_ooo_full, 0);
    // The hole fills: exactly the stream comes out.
    let mut s = seg(base, Some(ours), TcpControl::None);
    s.payload = &data[..1];
    let out = exchange(&mut st, &mut dev, Instant::from_millis(201), vec![tcp_frame(s)]);
    assert_eq!(out.last().and_then(|g| g.ack), Some(base + data.len() as u32));
    let got = read_all(&mut st, h);
    assert_eq!(got.len(), data.len());
    assert_eq!(sha256(&got), sha256(&data));
    assert_eq!(st.tcp().ooo_usage(h).unwrap().bytes, 0, "nothing left out of order");
}

/// Issue input, as IP fragments: 1,024 segments of 8,000 bytes at
/// `rcv_nxt + 1 + i`, each cut into 1,480-byte fragments (used to cost ~16×
/// the window).
#[test]
fn overlapping_fragmented_8000_byte_segments_cost_at_most_the_window() {
    let (mut st, mut dev, h, ours, base) = established_scaled();
    let data = pattern(6, 1 + 1023 + 8000);
    let mut frames = Vec::new();
    for i in 0..1024usize {
        let mut s = seg(base + 1 + i as u32, Some(ours), TcpControl::None);
        s.payload = &data[1 + i..1 + i + 8000];
        frames.extend(fragments(PEER_IP, i as u16, &tcp_bytes(s), 1480));
    }
    feed(&mut st, &mut dev, Instant::from_millis(200), frames);
    assert_eq!(st.stats().ipv4_reassembled, 1024);
    assert_eq!(st.stats().drop_ipv4_fragment, 0);
    let u = assert_within_window(&mut st, h, "after 1,024 fragmented segments");
    assert!(u.bytes <= u.window, "{u:?}");
    assert_eq!(u.payload, 1023 + 8000);
    let mut s = seg(base, Some(ours), TcpControl::None);
    s.payload = &data[..1];
    exchange(&mut st, &mut dev, Instant::from_millis(201), vec![tcp_frame(s)]);
    let got = read_all(&mut st, h);
    assert_eq!(sha256(&got), sha256(&data));
}

/// Overlapping segments of random lengths in random (and descending) order,
/// the hole at the start filled last: memory stays within the window
/// throughout and the stream comes out exact.
#[test]
fn overlapping_segments_in_any_order_with_the_hole_filled_last_deliver_the_stream() {
    const LEN: usize = 150_000;
    for seed in 0..6u64 {
        let (mut st, mut dev, h, ours, base) = established_scaled();
        let mut rng = SmallRng::seed_from_u64(seed);
        let data = pattern(100 + seed, LEN);
        let mut pieces: Vec<(usize, usize)> = Vec::new();
        let mut at = 1;
        while at < LEN {
            let len = rng.gen_range(1..=1460).min(LEN - at);
            let back = rng.gen_range(0..at.min(700));
            pieces.push((at - back.min(at - 1), at + len));
            at += len;
        }
        // A few exact duplicates, too.
        for _ in 0..50 {
            let p = pieces[rng.gen_range(0..pieces.len())];
            pieces.push(p);
        }
        match seed {
            0 => pieces.sort_by(|a, b| b.cmp(a)),
            _ => {
                for i in (1..pieces.len()).rev() {
                    pieces.swap(i, rng.gen_range(0..=i));
                }
            }
        }
        for chunk in pieces.chunks(64) {
            let frames: Vec<Vec<u8>> = chunk
                .iter()
                .map(|&(a, b)| {
                    let mut s = seg(base + a as u32, Some(ours), TcpControl::None);
                    s.payload = &data[a..b];
                    tcp_frame(s)
                })
                .collect();
            feed(&mut st, &mut dev, Instant::from_millis(200), frames);
            assert_within_window(&mut st, h, &format!("seed {seed}"));
        }
        let u = st.tcp().ooo_usage(h).unwrap();
        assert_eq!((u.ranges, u.payload), (1, LEN - 1), "seed {seed}");
        assert_eq!(st.stats().drop_tcp_ooo_full, 0);
        let mut s = seg(base, Some(ours), TcpControl::None);
        s.payload = &data[..1];
        exchange(&mut st, &mut dev, Instant::from_millis(201), vec![tcp_frame(s)]);
        let got = read_all(&mut st, h);
        assert_eq!(got.len(), LEN, "seed {seed}");
        assert_eq!(sha256(&got), sha256(&data), "seed {seed}");
    }
}

/// A stack listening on port 80 that knows the scripted peer's MAC.
fn listening() -> (Stack<HeapPages>, QueueDevice) {
    let (mut st, mut dev) = stack();
    learn_peer(&mut st, &mut dev);
    st.tcp_listen(80, 64).unwrap();
    (st, dev)
}

/// A SYN from the scripted peer (port `sport`) in two fragments (16 + 8 bytes).
fn fragmented_syn(sport: u16, ident: u16) -> Vec<Vec<u8>> {
    let mut syn = seg(7000, None, TcpControl::Syn);
    syn.sport = sport;
    syn.mss = Some(1460);
    let l4 = tcp_bytes(syn);
    assert_eq!(l4.len(), 24);
    fragments(PEER_IP, ident, &l4, 16)
}

/// The stack answers the fragmented SYN at once with a SYN-ACK.
fn assert_syn_answered(
    st: &mut Stack<HeapPages>,
    dev: &mut QueueDevice,
    now: Instant,
    frames: Vec<Vec<u8>>,
    what: &str,
) {
    let out = feed(st, dev, now, frames);
    let synacks: Vec<&Got> = out.iter().filter(|g| g.ctl == TcpControl::Syn && g.ack == Some(7001)).collect();
    assert_eq!(synacks.len(), 1, "{what}: the fragmented SYN is answered once: {out:?}");
}

/// Issue input: seventeen 8-byte fragments at offset 64,992 with MF set
/// (each a datagram of its own) used to exhaust the budget for 31 s.
#[test]
fn tiny_fragments_at_a_high_offset_do_not_switch_reassembly_off() {
    let (mut st, mut dev) = listening();
    let t = Instant::from_millis(10);
    let frames: Vec<Vec<u8>> = (0..17u16).map(|id| ip_fragment(PEER_IP, 100 + id, 64_992, true, &[0xee; 8])).collect();
    feed(&mut st, &mut dev, t, frames);
    assert_syn_answered(&mut st, &mut dev, t, fragmented_syn(41000, 1), "after 17 datagrams");
    // The same seventeen as one datagram: the second and later are exact
    // duplicates, ignored; differing ones discard only that datagram.
    let frames: Vec<Vec<u8>> = (0..17).map(|_| ip_fragment(PEER_IP, 200, 64_992, true, &[0xee; 8])).collect();
    feed(&mut st, &mut dev, t, frames);
    assert_eq!(st.stats().ipv4_frag_duplicates, 16);
    let frames: Vec<Vec<u8>> = (0..17u8).map(|k| ip_fragment(PEER_IP, 201, 64_992, true, &[k; 8])).collect();
    feed(&mut st, &mut dev, t, frames);
    assert!(st.stats().drop_ipv4_frag_overlap >= 1);
    assert_syn_answered(&mut st, &mut dev, t, fragmented_syn(41001, 2), "after one datagram of 17");
}

/// Issue input: 64 first fragments used to fill the table for 31 s.
#[test]
fn sixty_four_first_fragments_do_not_block_a_fragmented_syn() {
    let (mut st, mut dev) = listening();
    let t = Instant::from_millis(10);
    let big = vec![0x11u8; 1480];
    let frames: Vec<Vec<u8>> = (0..64u16).map(|id| ip_fragment(PEER_IP, 300 + id, 0, true, &big)).collect();
    feed(&mut st, &mut dev, t, frames);
    assert_syn_answered(&mut st, &mut dev, t, fragmented_syn(41000, 1), "after 64 first fragments");
    // From 64 (and then 1,000) different sources: the oldest is evicted.
    for n in [64u32, 1000] {
        let frames: Vec<Vec<u8>> =
            (0..n).map(|i| ip_fragment(Ipv4Addr::new(10, 1, (i >> 8) as u8, i as u8), 9, 0, true, &big)).collect();
        feed(&mut st, &mut dev, t, frames);
        assert_syn_answered(&mut st, &mut dev, t, fragmented_syn(41001 + n as u16, 2 + n as u16), "after many sources");
    }
    assert!(st.stats().drop_ipv4_frag_evicted > 0);
}

/// Issue input: an exact duplicate fragment used to drop the whole datagram.
#[test]
fn an_exact_duplicate_fragment_does_not_drop_the_datagram() {
    let (mut st, mut dev) = listening();
    let t = Instant::from_millis(10);
    let f = fragmented_syn(41000, 1);
    assert_syn_answered(&mut st, &mut dev, t, vec![f[0].clone(), f[0].clone(), f[1].clone()], "first duplicated");
    let f = fragmented_syn(41001, 2);
    assert_syn_answered(&mut st, &mut dev, t, vec![f[1].clone(), f[1].clone(), f[0].clone()], "last duplicated");
    assert_eq!(st.stats().ipv4_frag_duplicates, 2);
    assert_eq!(st.stats().drop_ipv4_fragment, 0);
}

/// One source's flood of first fragments, sent between the two fragments
/// of another source's SYN, evicts only its own datagrams.
#[test]
fn one_sources_fragments_cannot_block_another_sources_datagram() {
    let (mut st, mut dev) = listening();
    let t = Instant::from_millis(10);
    let f = fragmented_syn(41000, 1);
    feed(&mut st, &mut dev, t, vec![f[0].clone()]);
    let evil = Ipv4Addr::new(10, 0, 0, 66);
    let frames: Vec<Vec<u8>> = (0..5000u32).map(|i| ip_fragment(evil, i as u16, 0, true, &[0x22; 800])).collect();
    feed(&mut st, &mut dev, t, frames);
    assert!(st.stats().drop_ipv4_frag_evicted >= 5000 - 16);
    assert_syn_answered(&mut st, &mut dev, t, vec![f[1].clone()], "after another source's flood");
}

/// FragmentSmack: thousands of 8-byte fragments of one datagram, ascending
/// and descending, are cut off at the per-datagram cap and leave
/// reassembly working (the cost per fragment is checked by count in the
/// module's unit tests).
#[test]
fn thousands_of_tiny_fragments_of_one_datagram_are_cut_off() {
    let (mut st, mut dev) = listening();
    let t = Instant::from_millis(10);
    const N: usize = 8000;
    let body = pattern(9, N * 8);
    for (k, descending) in [false, true].into_iter().enumerate() {
        let mut idx: Vec<usize> = (0..N).collect();
        if descending {
            idx.reverse();
        }
        let frames: Vec<Vec<u8>> = idx
            .iter()
            .map(|&i| ip_fragment(PEER_IP, 500 + k as u16, i * 8, i + 1 < N, &body[i * 8..i * 8 + 8]))
            .collect();
        feed(&mut st, &mut dev, t, frames);
        assert_syn_answered(&mut st, &mut dev, t, fragmented_syn(41000 + k as u16, 1 + k as u16), "after the flood");
    }
    assert!(st.stats().drop_ipv4_frag_too_many >= 2 * (N as u64 / 17));
}

/// Fragments a datagram never completes are given up at the timeout and
/// counted; nothing waits afterwards.
#[test]
fn incomplete_datagrams_time_out_and_are_counted() {
    let (mut st, mut dev) = listening();
    let frames: Vec<Vec<u8>> = (0..10u16).map(|id| ip_fragment(PEER_IP, id, 0, true, &[1; 64])).collect();
    feed(&mut st, &mut dev, Instant::from_millis(10), frames);
    assert!(st.poll_at().is_some());
    st.poll(Instant::from_millis(31_000), &mut dev);
    assert_eq!(st.stats().drop_ipv4_frag_timeout, 10);
    assert_eq!(st.poll_at(), None);
}
