//! Zero-copy receive at engine level: the device hands frames over
//! (SimLink's `rx_shared_footprint`, like DPDK mbufs pinning 2 KiB each);
//! received payload stays in them, `read_zc` returns views in order, plain
//! `read` still works and may be mixed, the receive window accounts for the
//! memory frames pin, and tiny payloads get compacted (counted).
mod common;

use common::*;
use zcstack::phy::sim::SimConfig;
use zcstack::tcp::{SockOpt, SocketOptions};
use zcstack::{Duration, RxView, TcpError};

fn zc_rx(loss: bool) -> SimConfig {
    let mut c = SimConfig { rx_shared_footprint: Some(2048), ..SimConfig::default() };
    if loss {
        c.loss = 0.05;
        c.reorder = 0.05;
        c.duplicate = 0.01;
        c.corrupt = 0.001;
    }
    c
}

/// A pair whose receiver keeps every payload in its frame (no copybreak).
fn keep_all(sim: SimConfig, seed: u64) -> Pair {
    let mut ca = stack_config(A_IP, 1);
    ca.rx_copybreak = 0;
    Pair::with_configs(sim, seed, ca, stack_config(B_IP, 2), 8192)
}

#[test]
fn read_zc_delivers_the_stream_in_order_without_copies() {
    for lossy in [false, true] {
        let mut p = keep_all(zc_rx(lossy), 60);
        let (s, c) = p.establish(80);
        let total = 8 << 20;
        let mut src = Source::new(20, total);
        let mut sink = Sink::default();
        let mut views = 0;
        let stop = p.run_until(2_000_000, |p| {
            src.pump(|d| p.b.tcp_write(c, d).unwrap_or(0));
            loop {
                match p.a.tcp_read_zc(s) {
                    Ok(Some(v)) => {
                        views += 1;
                        sink.absorb(&v);
                    }
                    Ok(None) | Err(TcpError::WouldBlock) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            sink.received == total
        });
        assert_eq!(stop, Stop::Done, "lossy={lossy}");
        assert_eq!(sink.digest(), src.digest(), "lossy={lossy}");
        let st = p.a.stats();
        assert!(views > 1000, "one view per segment or so: {views}");
        if lossy {
            // Out-of-order arrivals are copied into the reassembly store.
            assert!(st.rx_bytes_zero_copy >= total as u64 / 2, "{st:?}");
        } else {
            assert_eq!(st.rx_bytes_copied, 0, "{st:?}");
            assert_eq!(st.rx_bytes_zero_copy, total as u64);
        }
    }
}

#[test]
fn read_and_read_zc_mix_in_order_and_views_outlive_more_traffic() {
    let mut p = Pair::new(zc_rx(false), 61);
    let (s, c) = p.establish(80);
    let data = pattern(21, 300_000);
    let mut off = 0;
    let mut got = Vec::new();
    let mut kept: Vec<RxView> = Vec::new();
    let mut turn = 0u32;
    let stop = p.run_until(100_000, |p| {
        if off < data.len() {
            off += p.b.tcp_write(c, &data[off..]).unwrap_or(0);
        }
        loop {
            turn += 1;
            if turn % 2 == 0 {
                let mut buf = [0u8; 1000];
                match p.a.tcp_read(s, &mut buf) {
                    Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            } else {
                match p.a.tcp_read_zc(s) {
                    Ok(Some(v)) => {
                        got.extend_from_slice(&v);
                        if kept.len() < 50 {
                            kept.push(v);
                        }
                    }
                    _ => break,
                }
            }
        }
        got.len() == data.len()
    });
    assert_eq!(
        stop,
        Stop::Done,
        "got {} of {}, sender queued {:?}, off {off}: {}",
        got.len(),
        data.len(),
        p.b.tcp().send_queued(c),
        p.a.tcp().describe(s).unwrap()
    );
    assert_eq!(got, data);
    // Views kept across all that traffic still hold their bytes.
    let mut pos = 0;
    for v in &kept {
        let at = data.windows(v.len()).skip(pos).position(|w| w == &v[..]).expect("a kept view's bytes") + pos;
        pos = at + 1;
    }
    drop(kept);
}

#[test]
fn pinned_frames_shrink_the_window_for_a_slow_reader() {
    let mut p = Pair::new(zc_rx(false), 62);
    let opts = SocketOptions { recv_buffer: Some(64 * 1024), ..SocketOptions::default() };
    let l = p.a.tcp_listen_with(80, 4, &opts).unwrap();
    let (s, c) = p.accept_from_b(l, 80);
    let big = pattern(22, 1 << 20);
    let mut off = 0;
    let t = p.now + Duration::from_secs(3);
    p.run_until(100_000, |p| {
        if off < big.len() {
            off += p.b.tcp_write(c, &big[off..]).unwrap_or(0);
        }
        p.now >= t
    });
    // The reader never read: what it holds is bounded by the buffer, counted
    // in pinned frames (2 KiB each for ~1.4 KiB of payload).
    let queued = p.b.tcp().send_queued(c).unwrap();
    let delivered = off - queued;
    // The first window is promised before any frame's footprint is known;
    // after it the window closes on pinned memory, not on payload.
    assert!(delivered <= 64 * 1024 + 1448, "delivered {delivered} into a 64 KiB buffer");
    assert!(delivered >= 32 * 1024, "the window was used: {delivered}");
    // Reading it all drains and the rest flows.
    let mut sink = Sink::default();
    let stop = p.run_until(1_000_000, |p| {
        if off < big.len() {
            off += p.b.tcp_write(c, &big[off..]).unwrap_or(0);
        }
        while let Ok(Some(v)) = p.a.tcp_read_zc(s) {
            sink.absorb(&v);
        }
        sink.received == big.len()
    });
    assert_eq!(stop, Stop::Done);
    assert_eq!(sink.digest(), sha256(&big));
}

#[test]
fn tiny_payloads_are_compacted_and_counted() {
    let mut p = keep_all(zc_rx(false), 63);
    let (s, c) = p.establish(80);
    p.b.tcp_set_option(c, SockOpt::NoDelay(true), p.now).unwrap();
    // 200 small writes the reader does not read yet: each arrives in its own
    // 2 KiB frame, so they pin far more than they carry.
    let mut sent = Vec::new();
    for i in 0..200u32 {
        let msg = format!("message {i:05}|");
        p.b.tcp_write(c, msg.as_bytes()).unwrap();
        sent.extend_from_slice(msg.as_bytes());
        p.step();
        p.step();
    }
    let stop = p.run_until(100_000, |p| p.b.tcp().send_queued(c) == Ok(0));
    assert_eq!(stop, Stop::Done);
    let st = p.a.stats();
    assert!(st.rx_compactions > 0, "{st:?}");
    assert!(st.rx_bytes_compacted > 0);
    let mut got = Vec::new();
    while let Ok(Some(v)) = p.a.tcp_read_zc(s) {
        got.extend_from_slice(&v);
    }
    assert_eq!(got, sent, "compaction keeps the bytes and their order");
}

#[test]
fn short_payloads_are_copied_and_their_frames_freed_long_ones_stay() {
    // The default copybreak (256 bytes): a 64-byte message the application
    // has not read pins no frame; a bulk stream stays in its frames, short
    // write tails and all, while the reader keeps up.
    let mut p = Pair::new(zc_rx(false), 64);
    assert_eq!(p.a.config().rx_copybreak, 256);
    let (s, c) = p.establish(80);
    p.b.tcp_set_option(c, SockOpt::NoDelay(true), p.now).unwrap();
    for i in 0..50u8 {
        p.b.tcp_write(c, &[i; 64]).unwrap();
        assert_eq!(p.run_until(10_000, |p| p.a.tcp_recv_queued(s).unwrap_or(0) == 64), Stop::Done);
        assert_eq!(p.a.rx_pinned(), 0, "a short payload pins no frame");
        let v = p.a.tcp_read_zc(s).unwrap().expect("the message");
        assert_eq!(&v[..], &[i; 64][..]);
    }
    let st = p.a.stats();
    assert_eq!((st.rx_bytes_copybreak, st.rx_bytes_copied, st.rx_bytes_zero_copy), (50 * 64, 0, 0), "{st:?}");

    let total = 4 << 20;
    let mut src = Source::new(65, total);
    let mut sink = Sink::default();
    let stop = p.run_until(2_000_000, |p| {
        src.pump(|d| p.b.tcp_write(c, d).unwrap_or(0));
        while let Ok(Some(v)) = p.a.tcp_read_zc(s) {
            sink.absorb(&v);
        }
        sink.received == total
    });
    assert_eq!(stop, Stop::Done);
    assert_eq!(sink.digest(), src.digest());
    let st = p.a.stats();
    assert!(st.rx_bytes_zero_copy >= total as u64 * 99 / 100, "bulk stays in its frames: {st:?}");
}

#[test]
fn a_short_segment_does_not_make_the_data_behind_it_be_copied() {
    // A peer puts a 1-byte segment before every 64 KiB flight, and the
    // reader is slow (reads every 50 steps): the short bytes are copied
    // (copybreak), and go ahead of the frames behind them as a chunk of
    // their own; every full segment stays in its frame.
    let mut p = Pair::new(zc_rx(false), 66);
    let (s, c) = p.establish(80);
    p.b.tcp_set_option(c, SockOpt::NoDelay(true), p.now).unwrap();
    let flight = vec![0x42u8; 64 * 1024];
    let (mut sent, mut got) = (0usize, Vec::new());
    let mut expect = Vec::new();
    for round in 0..40u32 {
        if p.b.tcp_write(c, &[round as u8]) == Ok(1) {
            expect.push(round as u8);
            sent += 1;
        }
        p.step();
        let n = p.b.tcp_write(c, &flight).unwrap_or(0);
        expect.extend_from_slice(&flight[..n]);
        sent += n;
        for _ in 0..50 {
            p.step();
        }
        while let Ok(Some(v)) = p.a.tcp_read_zc(s) {
            got.extend_from_slice(&v);
        }
    }
    let stop = p.run_until(200_000, |p| {
        while let Ok(Some(v)) = p.a.tcp_read_zc(s) {
            got.extend_from_slice(&v);
        }
        got.len() == sent
    });
    assert_eq!(stop, Stop::Done);
    assert!(got == expect, "the stream in order");
    let st = p.a.stats();
    assert_eq!(st.rx_bytes_copybreak, 40, "the 1-byte segments: {st:?}");
    assert_eq!(st.rx_bytes_copied, 0, "nothing but the short segments copied: {st:?}");
    assert!(st.rx_bytes_zero_copy as usize >= sent - 40 * 1460, "{st:?}");
}

#[test]
fn copied_short_payloads_still_scale_the_window_to_what_frames_pin() {
    // 500 short request/response exchanges (copied with the default
    // copybreak, kept with none), or none at all, then a bulk sender and a
    // reader that does not read: the window was scaled to the frames'
    // footprint from the handshake on, so what the frames pin stays at the
    // 64 KiB receive buffer every way.
    let cap = 64 * 1024;
    let default = stack_config(A_IP, 1).rx_copybreak;
    for (copybreak, exchanges) in [(0, 500u32), (default, 500), (default, 0), (0, 0)] {
        let mut ca = stack_config(A_IP, 1);
        ca.rx_copybreak = copybreak;
        let mut p = Pair::with_configs(zc_rx(false), 67, ca, stack_config(B_IP, 2), 8192);
        let opts = SocketOptions { recv_buffer: Some(cap), ..SocketOptions::default() };
        let l = p.a.tcp_listen_with(80, 4, &opts).unwrap();
        let (s, c) = p.accept_from_b(l, 80);
        p.b.tcp_set_option(c, SockOpt::NoDelay(true), p.now).unwrap();
        for i in 0..exchanges {
            p.b.tcp_write(c, &[i as u8; 200]).unwrap();
            assert_eq!(p.run_until(10_000, |p| p.a.tcp_recv_queued(s).unwrap_or(0) == 200), Stop::Done);
            assert_eq!(p.a.tcp_read_zc(s).unwrap().expect("the message").len(), 200);
        }
        let st = p.a.stats();
        assert_eq!(st.rx_bytes_zero_copy == 0, copybreak > 0 || exchanges == 0, "copybreak {copybreak}: {st:?}");
        let big = vec![7u8; 1 << 20];
        let mut off = 0;
        let until = p.now + Duration::from_secs(3);
        p.run_until(100_000, |p| {
            if off < big.len() {
                off += p.b.tcp_write(c, &big[off..]).unwrap_or(0);
            }
            p.now >= until
        });
        let pinned = p.a.rx_pinned();
        let what = format!("copybreak {copybreak} after {exchanges} exchanges");
        assert!(pinned > cap / 2, "{what}: bulk kept in frames ({pinned})");
        assert!(pinned <= cap * 11 / 10, "{what}: frames pin {pinned} for a {cap}-byte buffer");
    }
}

#[test]
fn a_copied_view_keeps_its_bytes_while_later_ones_are_read() {
    // A short message, then a full segment before the reader looks: the
    // short bytes go ahead of the kept frame in a buffer of their own,
    // which `read_zc` hands out and reuses only once no view holds it. Views
    // kept across later rounds keep their bytes.
    let mut p = Pair::new(zc_rx(false), 68);
    let (s, c) = p.establish(80);
    p.b.tcp_set_option(c, SockOpt::NoDelay(true), p.now).unwrap();
    let mut held = Vec::new();
    for i in 0..20u8 {
        p.b.tcp_write(c, &[i; 100]).unwrap();
        assert_eq!(p.run_until(10_000, |p| p.a.tcp_recv_queued(s).unwrap_or(0) == 100), Stop::Done);
        p.b.tcp_write(c, &[i.wrapping_add(100); 1400]).unwrap();
        assert_eq!(p.run_until(10_000, |p| p.a.tcp_recv_queued(s).unwrap_or(0) == 1500), Stop::Done);
        let short = p.a.tcp_read_zc(s).unwrap().expect("the short message");
        assert_eq!(&short[..], &[i; 100][..]);
        let long = p.a.tcp_read_zc(s).unwrap().expect("the long one");
        assert_eq!(&long[..], &[i.wrapping_add(100); 1400][..]);
        if i % 2 == 0 {
            held.push((i, short));
        }
    }
    for (i, v) in &held {
        assert_eq!(&v[..], &[*i; 100][..], "view {i} kept its bytes");
    }
    let st = p.a.stats();
    assert_eq!((st.rx_bytes_copybreak, st.rx_bytes_zero_copy, st.rx_bytes_copied), (2000, 28_000, 0), "{st:?}");
}
