//! Zero-copy send at engine level: transfers of application-filled page
//! buffers over an impaired SimLink with TX completion immediate, delayed and
//! never-until-close; the partial-accept paths of `write_zc`, `ff_zc_write`
//! and `zc_send`; buffer overflow; buffers dropped unsent. Every test ends
//! with every page free and no refcount error.
mod common;

use common::*;
use zcstack::mem::PageMemory;
use zcstack::phy::sim::{Completion, SimConfig};
use zcstack::tcp::{SockOpt, SocketOptions};
use zcstack::{Duration, FfZcMbuf, TcpError, ZcBuf, ZcError, ZcMsg};

/// Offers a pending zero-copy tail again; keeps whatever is still unsent.
fn resend(p: &mut Pair, c: zcstack::SocketHandle, pending: &mut Option<ZcBuf>) {
    if let Some(b) = pending.take() {
        *pending = match p.b.tcp_write_zc(c, b) {
            Ok((_, r)) => r,
            Err((_, b)) => Some(b),
        };
    }
}

fn lossy(completion: Completion) -> SimConfig {
    SimConfig { loss: 0.05, reorder: 0.05, duplicate: 0.01, corrupt: 0.001, completion, ..SimConfig::default() }
}

/// Fills a zero-copy buffer of `len` bytes from `data` in place (no write call).
fn filled(p: &mut Pair, data: &[u8]) -> ZcBuf {
    let mut buf = p.b.zc_mbuf_get(data.len()).unwrap();
    let mut off = 0;
    let n = p.b.zc_fill(&mut buf, |room| {
        let n = room.len().min(data.len() - off);
        room[..n].copy_from_slice(&data[off..off + n]);
        off += n;
        n
    });
    assert_eq!(n, data.len());
    buf
}

/// Sends `total` bytes from b to a with zero-copy writes of `chunk` bytes,
/// resending partial tails; returns (sent digest, received digest).
fn zc_transfer(p: &mut Pair, total: usize, chunk: usize, seed: u64) -> ([u8; 32], [u8; 32]) {
    let (s, c) = p.establish(80);
    let data = pattern(seed, total);
    let mut next = 0usize;
    let mut pending: Option<ZcBuf> = None;
    let mut sink = Sink::default();
    let stop = p.run_until(5_000_000, |p| {
        loop {
            let buf = match pending.take() {
                Some(b) => b,
                None if next < total => {
                    let end = (next + chunk).min(total);
                    let b = filled(p, &data[next..end]);
                    next = end;
                    b
                }
                None => break,
            };
            match p.b.tcp_write_zc(c, buf) {
                Ok((_, None)) => {}
                Ok((_, Some(rest))) => {
                    pending = Some(rest);
                    break;
                }
                Err((TcpError::WouldBlock, b)) => {
                    pending = Some(b);
                    break;
                }
                Err((e, _)) => panic!("write_zc: {e}"),
            }
        }
        read_into(&mut p.a, s, &mut sink);
        sink.received == total
    });
    assert_eq!(stop, Stop::Done, "transfer finished");
    p.b.tcp_close(c, p.now).unwrap();
    p.a.tcp_close(s, p.now).unwrap();
    let stop = p.run_until(1_000_000, |p| p.a.tcp_connections() == 0 && p.b.tcp_connections() == 0);
    assert_eq!(stop, Stop::Done, "both sides closed");
    (sha256(&data), sink.digest())
}

#[test]
fn zero_copy_transfer_with_immediate_delayed_and_never_completion() {
    for (i, completion) in [Completion::Immediate, Completion::Delayed(Duration::from_micros(300)), Completion::Never]
        .into_iter()
        .enumerate()
    {
        let mut p = Pair::new(lossy(completion), 40 + i as u64);
        let (sent, got) = zc_transfer(&mut p, 4 << 20, 48 * 1024 + 7, i as u64);
        assert_eq!(sent, got, "{completion:?}: SHA-256 of the stream");
        assert_eq!(p.b.stats().tx_bytes_copied, 0, "{completion:?}: no byte copied on the sender");
        assert_eq!(p.b.stats().tx_bytes_zero_copy, 4 << 20);
        if completion == Completion::Never {
            // Closed and ACKed, but the device still holds frames: pages wait.
            assert!(p.b.mem().free_count() < p.pages as usize, "pages are held until completion");
            p.db.release_all();
            p.da.release_all();
            p.run_until(1000, |p| p.no_leaks());
        }
        assert!(p.no_leaks(), "{completion:?}: every page back");
        assert_eq!(p.b.stats().page_errors, 0, "{completion:?}: no double free");
    }
}

#[test]
fn unacknowledged_zero_copy_pages_are_never_freed() {
    // The receiver never reads and has a small window: pages it has not
    // ACKed stay referenced even though every transmission completed at once.
    let mut p = Pair::new(SimConfig::default(), 50);
    let opts = SocketOptions { recv_buffer: Some(8192), ..SocketOptions::default() };
    let l = p.a.tcp_listen_with(80, 4, &opts).unwrap();
    let (s, c) = p.accept_from_b(l, 80);
    let data = pattern(9, 64 * 1024);
    let buf = filled(&mut p, &data);
    let pages_used = buf.segment_count();
    let (took, rest) = p.b.tcp_write_zc(c, buf).unwrap();
    assert_eq!((took, rest.is_none()), (64 * 1024, true));
    let t = p.now + Duration::from_secs(5);
    p.run_until(100_000, |p| p.now >= t);
    let queued = p.b.tcp().send_queued(c).unwrap();
    assert!(queued >= 64 * 1024 - 8192, "the unread part is still queued: {queued}");
    let held = p.pages as usize - p.b.mem().free_count();
    assert!(held >= queued / 2048, "queued bytes keep their pages: {held} pages for {queued} bytes");
    assert!(held <= pages_used);
    // Reading lets everything be ACKed and freed.
    let mut sink = Sink::default();
    let stop = p.run_until(100_000, |p| {
        read_into(&mut p.a, s, &mut sink);
        sink.received == data.len() && p.b.tcp().send_queued(c) == Ok(0)
    });
    assert_eq!(stop, Stop::Done);
    assert_eq!(sink.digest(), sha256(&data));
    assert_eq!(p.b.mem().free_count(), p.pages as usize);
}

#[test]
fn write_zc_returns_exactly_the_unsent_tail() {
    let mut p = Pair::new(SimConfig::default(), 51);
    let (s, c) = p.establish(80);
    p.b.tcp_set_option(c, SockOpt::SendBuffer(5000), p.now).unwrap();
    let data = pattern(3, 12_000);
    let buf = filled(&mut p, &data);
    let (took, rest) = p.b.tcp_write_zc(c, buf).unwrap();
    assert_eq!(took, 5000);
    let rest = rest.expect("a tail");
    assert_eq!(rest.len(), 7000);
    let tail: Vec<u8> = (0..rest.segment_count()).flat_map(|i| p.b.zc_segment(&rest, i).to_vec()).collect();
    assert_eq!(tail, data[5000..], "the tail holds exactly the unsent bytes");
    // A full send buffer refuses the tail whole.
    let (e, rest) = p.b.tcp_write_zc(c, rest).unwrap_err();
    assert_eq!((e, rest.len()), (TcpError::WouldBlock, 7000));
    // Resend the tail as room opens up; the stream arrives intact and in order.
    let mut pending = Some(rest);
    let mut sink = Sink::default();
    let stop = p.run_until(100_000, |p| {
        resend(p, c, &mut pending);
        read_into(&mut p.a, s, &mut sink);
        sink.received == data.len()
    });
    assert_eq!(stop, Stop::Done);
    assert_eq!(sink.digest(), sha256(&data));
    let stop = p.run_until(10_000, |p| p.b.tcp().send_queued(c) == Ok(0));
    assert_eq!(stop, Stop::Done);
    assert_eq!(p.b.mem().free_count(), p.pages as usize);
}

#[test]
fn ff_zc_mbuf_get_write_and_partial_ff_write() {
    let mut p = Pair::new(SimConfig::default(), 52);
    let (s, c) = p.establish(80);
    p.b.tcp_set_option(c, SockOpt::SendBuffer(3000), p.now).unwrap();
    let mut m = FfZcMbuf::default();
    p.b.ff_zc_mbuf_get(&mut m, 5000).unwrap();
    assert_eq!((m.off, m.len), (0, 5000));
    let data = pattern(4, 5000);
    for part in data.chunks(1700) {
        p.b.ff_zc_mbuf_write(&mut m, part).unwrap();
    }
    assert_eq!(m.off, 5000);
    // Past the reserved length: refused, nothing written.
    assert_eq!(p.b.ff_zc_mbuf_write(&mut m, b"x"), Err(ZcError::Overflow { cap: 5000, len: 5000, tried: 1 }));
    assert_eq!(p.b.ff_zc_write(c, &mut m), Ok(3000));
    assert_eq!((m.off, m.len), (2000, 2000), "the mbuf now holds the unsent 2000 bytes");
    let mut sink = Sink::default();
    let stop = p.run_until(100_000, |p| {
        if m.buf.is_some() {
            let _ = p.b.ff_zc_write(c, &mut m);
        }
        read_into(&mut p.a, s, &mut sink);
        sink.received == data.len()
    });
    assert_eq!(stop, Stop::Done);
    assert_eq!(sink.digest(), sha256(&data));
    assert_eq!(p.b.ff_zc_write(c, &mut m), Err(TcpError::InvalidArgument), "nothing left to write");
}

#[test]
fn zc_send_gives_each_message_its_result_and_keeps_unsent_buffers() {
    let mut p = Pair::new(SimConfig::default(), 53);
    let (s1, c1) = p.establish(80);
    let (s2, c2) = p.establish(81);
    p.b.tcp_set_option(c2, SockOpt::SendBuffer(5000), p.now).unwrap();
    let mut bufs1 = p.b.zc_alloc_buffers(3).unwrap();
    let mut bufs2 = p.b.zc_alloc_buffers(3).unwrap();
    assert!(bufs1.iter().all(|b| b.capacity() == 2048), "one page each, all payload room");
    let d1 = pattern(5, 3 * 2048);
    let d2 = pattern(6, 3 * 2048);
    for (b, d) in bufs1.iter_mut().zip(d1.chunks(2048)) {
        p.b.zc_mbuf_write(b, d).unwrap();
    }
    for (b, d) in bufs2.iter_mut().zip(d2.chunks(2048)) {
        p.b.zc_mbuf_write(b, d).unwrap();
    }
    let stale = {
        let l = p.a.tcp_listen(82, 1).unwrap();
        let c = p.b.tcp_connect(sa(A_IP, 82), 0, p.now).unwrap();
        p.b.tcp_abort(c).unwrap();
        p.a.tcp_close(l, p.now).unwrap();
        c
    };
    let mut bufs3 = p.b.zc_alloc_buffers(1).unwrap();
    p.b.zc_mbuf_write(&mut bufs3[0], b"never sent").unwrap();
    let mut msgs = [ZcMsg::new(c1, bufs1), ZcMsg::new(c2, bufs2), ZcMsg::new(stale, bufs3)];
    assert_eq!(p.b.zc_send(&mut msgs), 3);
    assert_eq!(msgs[0].rc, Some(Ok(3 * 2048)));
    assert!(msgs[0].bufs.is_empty());
    assert_eq!(msgs[1].rc, Some(Ok(5000)), "partly sent");
    let left: usize = msgs[1].bufs.iter().map(ZcBuf::len).sum();
    assert_eq!(left, 3 * 2048 - 5000, "exactly the unsent bytes stay with the app");
    let unsent: Vec<u8> = msgs[1]
        .bufs
        .iter()
        .flat_map(|b| (0..b.segment_count()).flat_map(|i| p.b.zc_segment(b, i).to_vec()).collect::<Vec<_>>())
        .collect();
    assert_eq!(unsent, d2[5000..]);
    assert_eq!(msgs[2].rc, Some(Err(TcpError::InvalidHandle)));
    assert_eq!(msgs[2].bufs.len(), 1, "a failed message keeps its buffers");
    // The app releases what it will not resend; everything else arrives.
    let [m0, m1, m2] = msgs;
    assert!(m0.bufs.is_empty());
    p.b.zc_release_buffers(m1.bufs);
    p.b.zc_release_buffers(m2.bufs);
    let (mut k1, mut k2) = (Sink::default(), Sink::default());
    let stop = p.run_until(100_000, |p| {
        read_into(&mut p.a, s1, &mut k1);
        read_into(&mut p.a, s2, &mut k2);
        k1.received == d1.len() && k2.received == 5000
    });
    assert_eq!(stop, Stop::Done);
    assert_eq!(k1.digest(), sha256(&d1));
    assert_eq!(k2.digest(), sha256(&d2[..5000]));
    let stop = p.run_until(10_000, |p| p.b.tcp().send_queued(c1) == Ok(0) && p.b.tcp().send_queued(c2) == Ok(0));
    assert_eq!(stop, Stop::Done);
    assert_eq!(p.b.mem().free_count(), p.pages as usize);
    assert_eq!(p.b.stats().zc_buffers_reclaimed, 0);
}

#[test]
fn buffers_dropped_unsent_are_reclaimed_and_exhaustion_is_an_error() {
    let mut p = Pair::with_configs(SimConfig::default(), 54, stack_config(A_IP, 1), stack_config(B_IP, 2), 16);
    let mut b = p.b.zc_mbuf_get(3 * 2048).unwrap();
    p.b.zc_mbuf_write(&mut b, &[1u8; 100]).unwrap();
    assert_eq!(p.b.mem().free_count(), 13);
    assert_eq!(p.b.zc_mbuf_get(14 * 2048).err(), Some(ZcError::NoBuffers { wanted: 14, free: 13 }));
    assert_eq!(p.b.zc_alloc_buffers(14).err(), Some(ZcError::NoBuffers { wanted: 14, free: 13 }));
    assert_eq!(p.b.zc_mbuf_get(0).err(), Some(ZcError::Empty));
    drop(b);
    p.step();
    assert_eq!(p.b.mem().free_count(), 16, "a dropped buffer's pages come back on the next poll");
    assert_eq!(p.b.stats().zc_buffers_reclaimed, 3);
    assert_eq!(p.b.stats().page_errors, 0);
}

#[test]
fn one_buffer_shared_on_two_connections_is_freed_after_both() {
    let mut p = Pair::new(SimConfig::default(), 55);
    let (s1, c1) = p.establish(80);
    let (s2, c2) = p.establish(81);
    let object = pattern(8, 10_000);
    let cached = filled(&mut p, &object);
    for c in [c1, c2] {
        let share = p.b.zc_share(&cached, 1000, 9000).unwrap();
        assert_eq!(p.b.tcp_write_zc(c, share).unwrap().0, 9000);
    }
    assert_eq!(
        p.b.zc_share(&cached, 5000, 6000).err(),
        Some(ZcError::Overflow { cap: 10_000, len: 5000, tried: 6000 })
    );
    let (mut k1, mut k2) = (Sink::default(), Sink::default());
    let stop = p.run_until(100_000, |p| {
        read_into(&mut p.a, s1, &mut k1);
        read_into(&mut p.a, s2, &mut k2);
        k1.received == 9000
            && k2.received == 9000
            && p.b.tcp().send_queued(c1) == Ok(0)
            && p.b.tcp().send_queued(c2) == Ok(0)
    });
    assert_eq!(stop, Stop::Done);
    assert_eq!(k1.digest(), sha256(&object[1000..]));
    assert_eq!(k2.digest(), sha256(&object[1000..]));
    // The cache still owns its pages; they come back when it lets go.
    assert_eq!(p.b.mem().free_count(), p.pages as usize - 5);
    p.b.zc_release_buffers([cached]);
    assert_eq!(p.b.mem().free_count(), p.pages as usize);
    assert_eq!(p.b.stats().page_errors, 0);
}

#[test]
fn writes_below_the_threshold_are_copied_with_the_same_contract() {
    let mut cb = stack_config(B_IP, 2);
    cb.zc_min_write = 1024;
    let mut p = Pair::with_configs(SimConfig::default(), 56, stack_config(A_IP, 1), cb, 8192);
    let (s, c) = p.establish(80);
    p.b.tcp_set_option(c, SockOpt::SendBuffer(1000), p.now).unwrap();
    let data = pattern(10, 700);
    let buf = filled(&mut p, &data);
    assert_eq!(p.b.tcp_write_zc(c, buf).map(|(n, r)| (n, r.is_none())).unwrap(), (700, true));
    // The next small write only partly fits: the tail comes back as a buffer.
    let data2 = pattern(11, 900);
    let buf = filled(&mut p, &data2);
    let (n, rest) = p.b.tcp_write_zc(c, buf).unwrap();
    assert_eq!(n, 300);
    let rest = rest.unwrap();
    assert_eq!(rest.len(), 600);
    assert_eq!(p.b.stats().tx_bytes_copied, 1000);
    assert_eq!(p.b.stats().tx_bytes_zero_copy, 0);
    let mut pending = Some(rest);
    let mut sink = Sink::default();
    let stop = p.run_until(100_000, |p| {
        resend(p, c, &mut pending);
        read_into(&mut p.a, s, &mut sink);
        sink.received == 1600 && p.b.tcp().send_queued(c) == Ok(0)
    });
    assert_eq!(stop, Stop::Done);
    let all: Vec<u8> = data.iter().chain(&data2).copied().collect();
    assert_eq!(sink.digest(), sha256(&all));
    assert_eq!(p.b.mem().free_count(), p.pages as usize);
}

/// Sends `plan` ranges of `cached` in order (continuing after partial
/// sends) and reads everything on the other side; returns the sink.
fn send_plan(
    p: &mut Pair,
    s: zcstack::SocketHandle,
    c: zcstack::SocketHandle,
    cached: &ZcBuf,
    plan: &[(usize, usize)],
) -> Sink {
    let mut sink = Sink::default();
    for &(off, len) in plan {
        let mut done = 0;
        let stop = p.run_until(100_000, |p| {
            while done < len {
                match p.b.tcp_send_shared(c, cached, off + done, len - done) {
                    Ok(n) => done += n,
                    Err(TcpError::WouldBlock) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            read_into(&mut p.a, s, &mut sink);
            done == len
        });
        assert_eq!(stop, Stop::Done);
    }
    let total: usize = plan.iter().map(|r| r.1).sum();
    let stop = p.run_until(100_000, |p| {
        read_into(&mut p.a, s, &mut sink);
        sink.received == total && p.b.tcp().send_queued(c) == Ok(0)
    });
    assert_eq!(stop, Stop::Done);
    sink
}

#[test]
fn send_shared_is_sendfile_by_reference_or_by_copy_below_the_threshold() {
    let mut cb = stack_config(B_IP, 2);
    cb.zc_min_write = 4096;
    let mut p = Pair::with_configs(SimConfig::default(), 57, stack_config(A_IP, 1), cb, 8192);
    let (s, c) = p.establish(80);
    let object = pattern(12, 100_000);
    let cached = filled(&mut p, &object);
    p.b.tcp_set_option(c, SockOpt::SendBuffer(30_000), p.now).unwrap();
    // An isolated small range is copied; a small range continuing the one
    // before goes by reference (joining it); large ranges go by reference;
    // partial sends report what was taken and the caller continues.
    let plan = [(0usize, 100usize), (100, 50), (150, 19_850), (20_000, 100), (20_100, 79_900)];
    let sink = send_plan(&mut p, s, c, &cached, &plan);
    assert_eq!(sink.digest(), sha256(&object));
    assert_eq!(p.b.stats().tx_bytes_copied, 100, "{:?}", p.b.stats());
    assert_eq!(p.b.stats().tx_bytes_zero_copy, 99_900);
    assert_eq!(p.b.tcp_send_shared(c, &cached, 99_000, 2000), Err(TcpError::InvalidArgument));
    // Small ranges out of order are copied again.
    let sink = send_plan(&mut p, s, c, &cached, &[(500, 64), (100, 64), (700, 64)]);
    let mut want = object[500..564].to_vec();
    want.extend_from_slice(&object[100..164]);
    want.extend_from_slice(&object[700..764]);
    assert_eq!(sink.digest(), sha256(&want));
    assert_eq!(p.b.stats().tx_bytes_copied, 100 + 192);
    p.b.zc_release_buffers([cached]);
    assert_eq!(p.b.mem().free_count(), p.pages as usize);
}

#[test]
fn small_sequential_shared_sends_coalesce_into_full_segments() {
    // A sender walking a cached object in small steps (threshold 4096):
    // after the first step every byte goes by reference, the steps join
    // the chunk before them — across page boundaries too, also steps that
    // straddle one — and the wire carries full-sized segments.
    let mut cb = stack_config(B_IP, 2);
    cb.zc_min_write = 4096;
    for (step, completion) in [
        (64, Completion::Immediate),
        (64, Completion::Delayed(Duration::from_micros(300))),
        (100, Completion::Immediate),
        (1000, Completion::Delayed(Duration::from_micros(300))),
    ] {
        let sim = SimConfig { completion, ..SimConfig::default() };
        let mut p = Pair::with_configs(sim, 58, stack_config(A_IP, 1), cb, 8192);
        let (s, c) = p.establish(80);
        let object = pattern(13, 200_000);
        let cached = filled(&mut p, &object);
        let frames_before = p.b.stats().tx_frames;
        let plan: Vec<(usize, usize)> =
            (0..object.len()).step_by(step).map(|o| (o, step.min(object.len() - o))).collect();
        let sink = send_plan(&mut p, s, c, &cached, &plan);
        assert_eq!(sink.digest(), sha256(&object));
        let what = format!("step {step} {completion:?}: {:?}", p.b.stats());
        assert_eq!(p.b.stats().tx_bytes_copied, step as u64, "{what}");
        assert_eq!(p.b.stats().tx_bytes_zero_copy, 200_000 - step as u64, "{what}");
        let frames = p.b.stats().tx_frames - frames_before;
        assert!(frames < 200_000 / 1000, "{frames} frames for 200 kB: {what}");
        p.b.zc_release_buffers([cached]);
        assert_eq!(p.b.mem().free_count(), p.pages as usize, "{what}");
    }
}

#[test]
fn absurd_buffer_lengths_are_refused_without_allocating() {
    // More pages than exist: refused before any page list is sized (a
    // length like usize::MAX once sized a list first and aborted).
    let mut p = Pair::with_configs(SimConfig::default(), 56, stack_config(A_IP, 1), stack_config(B_IP, 2), 64);
    let (_s, c) = p.establish(80);
    for len in [usize::MAX, usize::MAX / 2, i32::MAX as usize, 65 * 2048] {
        assert!(matches!(p.b.zc_mbuf_get(len), Err(ZcError::NoBuffers { .. })), "zc_mbuf_get({len})");
        assert!(matches!(p.b.zc_mbuf_get_for(c, len), Err(ZcError::NoBuffers { .. })), "zc_mbuf_get_for({len})");
        let mut m = FfZcMbuf::default();
        assert!(matches!(p.b.ff_zc_mbuf_get(&mut m, len), Err(ZcError::NoBuffers { .. })), "ff_zc_mbuf_get({len})");
    }
    // Nothing was taken, and buffers of many pages are still served.
    assert_eq!(p.b.mem().free_count(), 64);
    let half = p.b.zc_mbuf_get(32 * 2048).expect("half the pages");
    assert_eq!(p.b.mem().free_count(), 32);
    p.b.zc_release_buffers([half]);
    assert_eq!(p.b.mem().free_count(), 64);
    assert_eq!(p.b.stats().page_errors, 0);
}

#[test]
fn a_page_shared_to_its_limit_is_refused_not_queued_unsendable() {
    // Sharing stops at SHARE_REF_LIMIT references, leaving the output
    // path references for the frames that carry the page: a range it
    // accepts is always sent (at the count's 65,535 it could be queued
    // and never leave).
    let mut p = Pair::new(SimConfig::default(), 58);
    let (s, c) = p.establish(80);
    let object = pattern(10, 2048);
    let cached = filled(&mut p, &object);
    // The object's one page: the only one b holds (its send queue is empty).
    let held: Vec<_> = (0..p.pages).map(zcstack::mem::PageId).filter(|&id| p.b.mem().refcount(id) > 0).collect();
    assert_eq!(held.len(), 1);
    let page = held[0];
    let mut shares = Vec::new();
    while p.b.mem().refcount(page) < zcstack::zc::SHARE_REF_LIMIT - 1 {
        shares.push(p.b.zc_share(&cached, 0, 2048).expect("below the limit"));
    }
    // The last reference below the limit: accepted, and delivered.
    assert_eq!(p.b.tcp_send_shared(c, &cached, 0, 2048), Ok(2048));
    // At the limit: refused, nothing queued.
    assert!(matches!(p.b.zc_share(&cached, 0, 2048), Err(ZcError::NoBuffers { .. })));
    assert_eq!(p.b.tcp_send_shared(c, &cached, 0, 2048), Err(TcpError::NoBuffers));
    assert_eq!(p.b.tcp().send_queued(c), Ok(2048), "only the accepted range queued");
    let mut sink = Sink::default();
    let stop = p.run_until(100_000, |p| {
        read_into(&mut p.a, s, &mut sink);
        sink.received == 2048 && p.b.tcp().send_queued(c) == Ok(0)
    });
    assert_eq!(stop, Stop::Done, "{} of 2048 bytes delivered", sink.received);
    assert_eq!(sink.digest(), sha256(&object));
    p.b.zc_release_buffers(shares);
    p.b.zc_release_buffers([cached]);
    assert_eq!(p.b.stats().page_errors, 0);
    assert!(p.run_until(10_000, |p| p.no_leaks()) == Stop::Done, "every page back");
}
