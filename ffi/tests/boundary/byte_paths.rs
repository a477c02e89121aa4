//! The byte paths' checks of the boundary test (reads, writes, peeks,
//! zero-copy chain handles, lengths no C object can have), run on the
//! lcore thread by `boundary.rs`'s `inner`.

use super::*;

/// `ff_recvmsg(MSG_PEEK)` on a TCP socket places the queued bytes across
/// all of its iovecs (it filled only the first: a peek of 5+8 bytes
/// returned 5) and leaves them queued for the next read; before, with
/// nothing queued, a zero-length `recv`/`recvmsg` is `EAGAIN` (it returned
/// 0; a `msghdr` with no iovec and a null `msg_iov` panicked on a null
/// slice) while a zero-length `read`/`readv` is 0, overlapping read
/// iovecs are `EINVAL`, and a buffer wrapping the address space `EFAULT`.
pub(super) fn tcp_peek_iovecs(c: c_int, k: &mut TcpStream) {
    // Nothing queued on a live connection: a zero-length recv is EAGAIN,
    // not 0 (end of stream); a zero-length read or readv is 0 and never
    // reaches the socket (both as Linux).
    let mut one = [0u8; 1];
    // SAFETY: a valid buffer; the length is 0.
    assert_eq!(unsafe { ff_recv(c, one.as_mut_ptr().cast(), 0, 0) }, -1);
    assert_eq!(errno(), libc::EAGAIN, "ff_recv(len 0) on an idle connection");
    // SAFETY: a zero length; the pointer is never used.
    assert_eq!(unsafe { ff_read(c, std::ptr::null_mut(), 0) }, 0, "ff_read(len 0)");
    // SAFETY: no iovec.
    assert_eq!(unsafe { ff_readv(c, std::ptr::null(), 0) }, 0, "ff_readv(no iovec)");
    // SAFETY: an all-zero msghdr (no iovecs) is valid.
    let mut empty: libc::msghdr = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    assert_eq!(unsafe { ff_recvmsg(c, &mut empty, libc::MSG_PEEK) }, -1);
    assert_eq!(errno(), libc::EAGAIN, "ff_recvmsg(no iovecs, MSG_PEEK) on an idle connection");
    // Overlapping buffers to read into are refused (two writable views of
    // the same bytes), nothing consumed.
    let mut buf = [0u8; 16];
    let p = buf.as_mut_ptr().cast::<c_void>();
    // SAFETY: both point into buf; p + 4 is within it.
    let over = [libc::iovec { iov_base: p, iov_len: 8 }, libc::iovec { iov_base: unsafe { p.add(4) }, iov_len: 8 }];
    // SAFETY: the iovecs are valid.
    assert_eq!(unsafe { ff_readv(c, over.as_ptr(), 2) }, -1);
    assert_eq!(errno(), libc::EINVAL, "overlapping read iovecs");
    k.write_all(b"peek-me-whole").unwrap();
    let (mut a, mut b) = ([0u8; 5], [0u8; 8]);
    let mut n = -1;
    drive_until("a 13-byte peek", || {
        let mut iov = [
            libc::iovec { iov_base: a.as_mut_ptr().cast(), iov_len: a.len() },
            libc::iovec { iov_base: b.as_mut_ptr().cast(), iov_len: b.len() },
        ];
        // SAFETY: an all-zero msghdr is valid; the fields set point at live buffers.
        let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
        mh.msg_iov = iov.as_mut_ptr();
        mh.msg_iovlen = 2;
        // SAFETY: mh and its iovecs are valid for the call.
        n = unsafe { ff_recvmsg(c, &mut mh, libc::MSG_PEEK) };
        assert!(n != -1 || errno() == libc::EAGAIN, "errno {}", errno());
        n == 13
    });
    assert_eq!((&a, &b), (b"peek-", b"me-whole"));
    // A buffer that would end past the address space's end is EFAULT, and
    // nothing is taken (it was viewed as a slice and written through).
    let wrap = (usize::MAX - 7) as *mut c_void;
    // SAFETY: the library must refuse the buffer without touching it.
    assert_eq!(unsafe { ff_read(c, wrap, 64) }, -1);
    assert_eq!(errno(), libc::EFAULT, "a buffer wrapping the address space");
    assert_eq!(read_all(c, 13), b"peek-me-whole", "the peek left the bytes queued");
    ok("TCP recvmsg MSG_PEEK fills every iovec and leaves the bytes; zero-length recv EAGAIN, read 0 on an idle connection");
}

/// What the kernel peer `k` receives within `ms` (it is non-blocking).
pub(super) fn peer_bytes(k: &mut TcpStream, want: usize, ms: u64) -> Vec<u8> {
    let mut got = Vec::new();
    let mut rb = [0u8; 4096];
    let t = Instant::now();
    while got.len() < want || t.elapsed() < Duration::from_millis(ms) {
        assert!(t.elapsed() < Duration::from_secs(10), "peer got {} of {want} bytes", got.len());
        drive(5);
        while let Ok(n) = k.read(&mut rb) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&rb[..n]);
        }
    }
    got
}

pub(super) fn new_chain(data: &[u8]) -> ZcMbuf {
    let mut m = ZcMbuf { bsd_mbuf: std::ptr::null_mut(), bsd_mbuf_off: std::ptr::null_mut(), off: 0, len: 0 };
    // SAFETY: m is valid; data holds its length.
    unsafe {
        assert_eq!(ff_zc_mbuf_get(&mut m, data.len() as c_int), 0, "errno {}", errno());
        assert_eq!(ff_zc_mbuf_write(&mut m, data.as_ptr().cast(), data.len() as c_int), 0);
    }
    m
}

/// `ff_write` of a chain handle whose chain was sent in full (and freed),
/// or of an address near a live handle, is `EINVAL` and sends nothing:
/// the peer receives each payload once.
pub(super) fn zc_stale_handles(c: c_int, k: &mut TcpStream) {
    let m = new_chain(b"ZEROCOPY-PAYLOAD");
    // SAFETY: a live chain handle and its length.
    assert_eq!(unsafe { ff_write(c, m.bsd_mbuf, 16) }, 16);
    for _ in 0..3 {
        // SAFETY: a stale handle: the library must refuse it, not read it.
        assert_eq!(unsafe { ff_write(c, m.bsd_mbuf, 16) }, -1, "second ff_write of a sent chain");
        assert_eq!(errno(), libc::EINVAL);
    }
    let mut stale = ZcMbuf { bsd_mbuf: m.bsd_mbuf, bsd_mbuf_off: m.bsd_mbuf_off, off: 16, len: 16 };
    // SAFETY: a stale handle in a valid struct.
    assert_eq!(unsafe { ff_zc_mbuf_write(&mut stale, b"x".as_ptr().cast(), 1) }, -1);
    assert_eq!(errno(), libc::EINVAL);
    // A chain got after the first was freed has a different handle, and
    // the old handle still does not name it.
    let m2 = new_chain(b"SECOND-CHAIN");
    assert_ne!(m2.bsd_mbuf, m.bsd_mbuf, "a new chain never reuses a just-freed handle");
    // SAFETY: stale handle (refused) and addresses next to a live one (refused: not handles).
    unsafe {
        assert_eq!(ff_write(c, m.bsd_mbuf, 12), -1);
        assert_eq!(errno(), libc::EINVAL);
        assert_eq!(ff_write(c, m2.bsd_mbuf.cast::<u8>().add(1).cast(), 12), -1);
        assert_eq!(errno(), libc::EINVAL);
        assert_eq!(ff_write(c, m2.bsd_mbuf, 12), 12);
        assert_eq!(ff_write(c, m2.bsd_mbuf, 12), -1);
        assert_eq!(errno(), libc::EINVAL);
    }
    let got = peer_bytes(k, 28, QUIET_MS as u64);
    assert_eq!(got, b"ZEROCOPY-PAYLOADSECOND-CHAIN", "each chain reaches the peer once");
    ok("stale zero-copy handles refused with EINVAL, payload sent once");
}

/// Lengths above `SSIZE_MAX`: reads are cut to `MAX_RW_COUNT` and return
/// what is queued (`ff_read`, `ff_recv`, `ff_recvfrom`, a `ff_readv`
/// segment); writes (`ff_write`, `ff_send`, `ff_sendto`) and iovec totals
/// (`ff_readv`, `ff_writev`) are `EINVAL` with nothing sent. No abort.
pub(super) fn huge_lengths(c: c_int, k: &mut TcpStream) {
    let mut b = [0u8; 64];
    let p = b.as_mut_ptr().cast::<c_void>();
    let readers: [(&str, &dyn Fn() -> isize); 4] = [
        // SAFETY: b is valid; the library must cut or refuse the length without touching more.
        ("ff_read", &|| unsafe { ff_read(c, p, usize::MAX) }),
        // SAFETY: b is valid; the library must cut or refuse the length without touching more.
        ("ff_recv", &|| unsafe { ff_recv(c, p, usize::MAX, 0) }),
        // SAFETY: b is valid; the library must cut or refuse the length without touching more.
        ("ff_recvfrom", &|| unsafe { ff_recvfrom(c, p, usize::MAX, 0, std::ptr::null_mut(), std::ptr::null_mut()) }),
        ("ff_readv one huge segment", &|| {
            let v = [libc::iovec { iov_base: p, iov_len: isize::MAX as usize }];
            // SAFETY: b is writable; the engine writes only what is queued (10 < 64).
            unsafe { ff_readv(c, v.as_ptr(), 1) }
        }),
    ];
    for (i, (what, f)) in readers.iter().enumerate() {
        let sent = [b'a' + i as u8; 10];
        k.write_all(&sent).unwrap();
        let mut n = -1;
        drive_until(what, || {
            n = f();
            n != -1 || errno() != libc::EAGAIN
        });
        assert_eq!(n, 10, "{what}(SIZE_MAX) reads what is queued (errno {})", errno());
        assert_eq!(&b[..10], &sent, "{what}");
    }
    let big = [libc::iovec { iov_base: p, iov_len: isize::MAX as usize }; 2];
    let over = [libc::iovec { iov_base: p, iov_len: usize::MAX }];
    let q = b.as_ptr().cast::<c_void>();
    let to = sin(9);
    let refused: [(&str, &dyn Fn() -> isize); 7] = [
        // SAFETY: b is valid; the library must cut or refuse the length without touching more.
        ("ff_write", &|| unsafe { ff_write(c, q, usize::MAX) }),
        // SAFETY: b is valid; the library must cut or refuse the length without touching more.
        ("ff_write SSIZE_MAX+1", &|| unsafe { ff_write(c, q, isize::MAX as usize + 1) }),
        // SAFETY: b is valid; the library must cut or refuse the length without touching more.
        ("ff_send", &|| unsafe { ff_send(c, q, usize::MAX, 0) }),
        // SAFETY: b is valid; the library must cut or refuse the length without touching more.
        ("ff_sendto", &|| unsafe { ff_sendto(c, q, usize::MAX, 0, (&to as *const sockaddr_in).cast(), 16) }),
        // SAFETY: b is valid; the library must cut or refuse the length without touching more.
        ("ff_writev total", &|| unsafe { ff_writev(c, big.as_ptr(), 2) }),
        // SAFETY: b is valid; the library must cut or refuse the length without touching more.
        ("ff_readv total", &|| unsafe { ff_readv(c, big.as_ptr(), 2) }),
        // SAFETY: b is valid; the library must cut or refuse the length without touching more.
        ("ff_readv segment", &|| unsafe { ff_readv(c, over.as_ptr(), 1) }),
    ];
    for (what, f) in refused {
        assert_eq!(f(), -1, "{what}");
        assert_eq!(errno(), libc::EINVAL, "{what}");
    }
    // SAFETY: a valid 3-byte buffer.
    assert_eq!(unsafe { ff_write(c, b"end".as_ptr().cast(), 3) }, 3);
    assert_eq!(peer_bytes(k, 3, QUIET_MS as u64), b"end", "the refused writes sent nothing");
    ok("huge lengths: reads cut to MAX_RW_COUNT, writes and iovec totals EINVAL, no abort");
}
