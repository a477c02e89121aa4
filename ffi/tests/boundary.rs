//! The C boundary's semantics, called from Rust through the exported
//! `extern "C"` functions (the same symbols a C program links): the test
//! re-runs itself inside a private network namespace with a `net_tap`
//! port, plays the peer with Linux kernel sockets from helper threads, and
//! checks on the lcore thread:
//! - epoll: `EPOLLET` gives one event per edge and none while nothing new
//!   arrives (TCP and UDP), level-triggered repeats, `EPOLLONESHOT` is
//!   silent until `EPOLL_CTL_MOD` re-arms it, a registration survives the
//!   close of one of two dup'd descriptors and goes with the last;
//! - kqueue: `EV_CLEAR`, `EV_ONESHOT`, `EV_DISABLE`/`EV_ENABLE`,
//!   `EV_DELETE` (`ENOENT` the second time), `data` of `EVFILT_READ`
//!   (readable bytes; a listener's backlog) and `EVFILT_WRITE` (space);
//! - `ff_poll`/`ff_select` readiness, and timeouts honoured;
//! - a wait that finds something ready at once still runs the stack (a
//!   kernel connect completes while the program only waits);
//! - a partial zero-copy send returns the count and the tail is sent by the
//!   next `ff_write` of the same chain, bytes intact at the peer;
//! - `ff_regist_packet_dispatcher`: pass (0), drop (`FF_DISPATCH_ERROR`),
//!   another queue id (dropped, one queue per process) and send back
//!   (`FF_DISPATCH_RESPONSE`).
//!
//! `harness = false`: one process may call `ff_init` once, so the checks
//! run in order in one child process.
#[path = "boundary/byte_paths.rs"]
mod byte_paths;
#[path = "../../examples/tests/common/mod.rs"]
mod common;

use std::ffi::{c_char, c_int, c_void, CString};
use std::io::{Read, Write};
use std::net::{SocketAddrV4, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use byte_paths::{huge_lengths, tcp_peek_iovecs, zc_stale_handles};
use libc::{epoll_event, pollfd, sockaddr_in, timespec};
use zcstack_ffi as _;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct Kevent {
    ident: usize,
    filter: i16,
    flags: u16,
    fflags: u32,
    data: isize,
    udata: *mut c_void,
}

#[repr(C)]
struct ZcMbuf {
    bsd_mbuf: *mut c_void,
    bsd_mbuf_off: *mut c_void,
    off: c_int,
    len: c_int,
}

type Dispatch = unsafe extern "C" fn(*mut c_void, *mut u16, u16, u16) -> c_int;

extern "C" {
    fn ff_init(argc: c_int, argv: *const *const c_char) -> c_int;
    fn ff_socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int;
    fn ff_bind(s: c_int, addr: *const c_void, len: libc::socklen_t) -> c_int;
    fn ff_listen(s: c_int, backlog: c_int) -> c_int;
    fn ff_accept(s: c_int, addr: *mut c_void, len: *mut libc::socklen_t) -> c_int;
    fn ff_read(fd: c_int, b: *mut c_void, n: usize) -> isize;
    fn ff_write(fd: c_int, b: *const c_void, n: usize) -> isize;
    fn ff_recv(fd: c_int, b: *mut c_void, n: usize, flags: c_int) -> isize;
    fn ff_recvmsg(fd: c_int, msg: *mut libc::msghdr, flags: c_int) -> isize;
    fn ff_recvfrom(
        fd: c_int,
        b: *mut c_void,
        n: usize,
        flags: c_int,
        from: *mut c_void,
        fromlen: *mut libc::socklen_t,
    ) -> isize;
    fn ff_send(fd: c_int, b: *const c_void, n: usize, flags: c_int) -> isize;
    fn ff_sendto(
        fd: c_int,
        b: *const c_void,
        n: usize,
        flags: c_int,
        to: *const c_void,
        tolen: libc::socklen_t,
    ) -> isize;
    fn ff_readv(fd: c_int, iov: *const libc::iovec, n: c_int) -> isize;
    fn ff_writev(fd: c_int, iov: *const libc::iovec, n: c_int) -> isize;
    fn ff_close(fd: c_int) -> c_int;
    fn ff_shutdown(fd: c_int, how: c_int) -> c_int;
    fn ff_dup(fd: c_int) -> c_int;
    fn ff_epoll_create(size: c_int) -> c_int;
    fn ff_epoll_ctl(ep: c_int, op: c_int, fd: c_int, ev: *mut epoll_event) -> c_int;
    fn ff_epoll_wait(ep: c_int, evs: *mut epoll_event, max: c_int, timeout: c_int) -> c_int;
    fn ff_kqueue() -> c_int;
    fn ff_kevent(kq: c_int, ch: *const Kevent, nch: c_int, ev: *mut Kevent, nev: c_int, t: *const timespec) -> c_int;
    fn ff_poll(fds: *mut pollfd, n: libc::nfds_t, timeout: c_int) -> c_int;
    fn ff_select(
        n: c_int,
        r: *mut libc::fd_set,
        w: *mut libc::fd_set,
        e: *mut libc::fd_set,
        t: *mut libc::timeval,
    ) -> c_int;
    fn ff_zc_mbuf_get(m: *mut ZcMbuf, len: c_int) -> c_int;
    fn ff_zc_mbuf_write(m: *mut ZcMbuf, data: *const c_char, len: c_int) -> c_int;
    fn ff_regist_packet_dispatcher(f: Option<Dispatch>);
}

const EVFILT_READ: i16 = -1;
const EVFILT_WRITE: i16 = -2;
const EV_ADD: u16 = 0x1;
const EV_DELETE: u16 = 0x2;
const EV_ENABLE: u16 = 0x4;
const EV_DISABLE: u16 = 0x8;
const EV_ONESHOT: u16 = 0x10;
const EV_CLEAR: u16 = 0x20;
const EV_ERROR: u16 = 0x4000;
const EV_EOF: u16 = 0x8000;
const FF_DISPATCH_ERROR: c_int = -1;
const FF_DISPATCH_RESPONSE: c_int = -2;

const OURS: &str = common::OURS;
/// How long an expected event may take to show (the kernel and the stack
/// on a shared machine); waits that must see nothing use [`QUIET_MS`].
const EVENT_MS: c_int = 3000;
const QUIET_MS: c_int = 150;

fn errno() -> c_int {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn sin(port: u16) -> sockaddr_in {
    sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: 0 },
        sin_zero: [0; 8],
    }
}

fn ok(what: &str) {
    println!("PASS {what}");
}

/// Runs the stack for `ms` (a poll of nothing with a timeout).
fn drive(ms: c_int) {
    // SAFETY: no descriptors; the timeout only.
    assert_eq!(unsafe { ff_poll(std::ptr::null_mut(), 0, ms) }, 0);
}

/// Drives the stack until `cond` holds (at most 10 s).
fn drive_until(what: &str, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < Duration::from_secs(10), "timed out waiting for {what}");
        drive(5);
    }
}

fn ep_wait(ep: c_int, timeout: c_int) -> Vec<(u32, u64)> {
    let mut evs = [epoll_event { events: 0, u64: 0 }; 8];
    // SAFETY: room for 8 events.
    let n = unsafe { ff_epoll_wait(ep, evs.as_mut_ptr(), 8, timeout) };
    assert!(n >= 0, "ff_epoll_wait: errno {}", errno());
    evs[..n as usize].iter().map(|e| (e.events, e.u64)).collect()
}

fn ep_ctl(ep: c_int, op: c_int, fd: c_int, events: u32, data: u64) -> c_int {
    let mut ev = epoll_event { events, u64: data };
    // SAFETY: a valid event.
    unsafe { ff_epoll_ctl(ep, op, fd, &mut ev) }
}

fn kev(fd: c_int, filter: i16, flags: u16) -> Kevent {
    Kevent { ident: fd as usize, filter, flags, fflags: 0, data: 0, udata: std::ptr::null_mut() }
}

fn kq(kq: c_int, changes: &[Kevent], timeout_ms: i64) -> Vec<Kevent> {
    let mut out = [kev(0, 0, 0); 8];
    let t = timespec { tv_sec: timeout_ms / 1000, tv_nsec: (timeout_ms % 1000) * 1_000_000 };
    // SAFETY: the lists and their lengths match.
    let n = unsafe { ff_kevent(kq, changes.as_ptr(), changes.len() as c_int, out.as_mut_ptr(), 8, &t) };
    assert!(n >= 0, "ff_kevent: errno {}", errno());
    out[..n as usize].to_vec()
}

fn read_all(fd: c_int, want: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    drive_until("bytes to read", || {
        // SAFETY: buf is writable for its length.
        let n = unsafe { ff_read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n > 0 {
            got.extend_from_slice(&buf[..n as usize]);
        }
        got.len() >= want
    });
    got
}

/// A kernel-side TCP client connected to zcstack (connects on a helper
/// thread while the lcore thread drives the stack).
fn kernel_clients(n: usize, port: u16, listener: c_int, kqfd: c_int) -> Vec<TcpStream> {
    let addr: SocketAddrV4 = format!("{OURS}:{port}").parse().unwrap();
    let h = std::thread::spawn(move || {
        (0..n)
            .map(|_| TcpStream::connect_timeout(&addr.into(), Duration::from_secs(10)).expect("kernel connect"))
            .collect::<Vec<_>>()
    });
    // The listener's EVFILT_READ data is its backlog: wait until all are queued.
    let mut backlog = 0;
    let t = Instant::now();
    while backlog < n as isize {
        assert!(t.elapsed() < Duration::from_secs(15), "listener backlog stayed at {backlog}");
        for e in kq(kqfd, &[], 100) {
            if e.ident == listener as usize && e.filter == EVFILT_READ {
                backlog = e.data;
            }
        }
    }
    assert_eq!(backlog, n as isize, "EVFILT_READ data of a listener is its backlog");
    drive_until("connect threads", || h.is_finished());
    h.join().unwrap()
}

fn accept(l: c_int) -> c_int {
    // SAFETY: null address pointers are allowed.
    let fd = unsafe { ff_accept(l, std::ptr::null_mut(), std::ptr::null_mut()) };
    assert!(fd >= 0, "ff_accept: errno {}", errno());
    fd
}

static DISPATCHED: AtomicU64 = AtomicU64::new(0);

/// UDP to port 7002: dropped; 7003: sent back with addresses and ports
/// swapped (checksums stay valid: the sums are order-free); 7004: "queue
/// 5" of one queue; everything else to the stack.
unsafe extern "C" fn dispatcher(data: *mut c_void, len: *mut u16, queue: u16, nb: u16) -> c_int {
    assert_eq!((queue, nb), (0, 1));
    DISPATCHED.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the frame is *len bytes (the buffer has room for more).
    let f = unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), usize::from(*len)) };
    if f.len() < 42 || f[12..14] != [0x08, 0x00] || f[23] != 17 {
        return 0;
    }
    let ihl = usize::from(f[14] & 0x0f) * 4;
    let u = 14 + ihl;
    match u16::from_be_bytes([f[u + 2], f[u + 3]]) {
        7002 => FF_DISPATCH_ERROR,
        7004 => 5,
        7003 => {
            for i in 0..6 {
                f.swap(i, 6 + i);
            }
            for i in 0..4 {
                f.swap(26 + i, 30 + i);
            }
            for i in 0..2 {
                f.swap(u + i, u + 2 + i);
            }
            FF_DISPATCH_RESPONSE
        }
        _ => 0,
    }
}

fn inner(conf: &str, iface: &str) {
    let args: Vec<CString> = ["boundary", "-c", conf].iter().map(|s| CString::new(*s).unwrap()).collect();
    let argv: Vec<*const c_char> = args.iter().map(|a| a.as_ptr()).collect();
    // SAFETY: argv holds argc strings.
    assert_eq!(unsafe { ff_init(argv.len() as c_int, argv.as_ptr()) }, 0, "ff_init: errno {}", errno());
    for cmd in [vec!["ip", "addr", "add", "10.212.0.1/24", "dev", iface], vec!["ip", "link", "set", iface, "up"]] {
        let o = Command::new(cmd[0]).args(&cmd[1..]).output().unwrap();
        assert!(o.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&o.stderr));
    }

    // SAFETY: plain values.
    let l = unsafe { ff_socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0) };
    let a = sin(7000);
    // SAFETY: plain values, or pointers valid for the lengths given.
    assert_eq!(unsafe { ff_bind(l, (&a as *const sockaddr_in).cast(), 16) }, 0);
    // SAFETY: plain values, or pointers valid for the lengths given.
    assert_eq!(unsafe { ff_listen(l, 16) }, 0);
    // SAFETY: plain values, or pointers valid for the lengths given.
    let kqfd = unsafe { ff_kqueue() };
    assert!(kq(kqfd, &[kev(l, EVFILT_READ, EV_ADD)], 0).is_empty());
    let mut ks = kernel_clients(2, 7000, l, kqfd);
    ok("kqueue EVFILT_READ data of a listener is its backlog");
    let (c1, c2) = (accept(l), accept(l));
    let (mut k1, mut k2) = (ks.remove(0), ks.remove(0));

    // --- epoll: edge vs level ---
    // SAFETY: plain values, or pointers valid for the lengths given.
    let (ep_et, ep_lt) = unsafe { (ff_epoll_create(1), ff_epoll_create(1)) };
    let et = (libc::EPOLLIN | libc::EPOLLET) as u32;
    assert_eq!(ep_ctl(ep_et, libc::EPOLL_CTL_ADD, c1, et, 1), 0);
    assert_eq!(ep_ctl(ep_lt, libc::EPOLL_CTL_ADD, c1, libc::EPOLLIN as u32, 11), 0);
    assert!(ep_wait(ep_et, QUIET_MS).is_empty(), "nothing to read yet");
    k1.write_all(&[7u8; 100]).unwrap();
    let e = ep_wait(ep_et, EVENT_MS);
    assert_eq!(e.len(), 1);
    assert!(e[0].0 & libc::EPOLLIN as u32 != 0 && e[0].1 == 1, "{e:?}");
    assert!(ep_wait(ep_et, QUIET_MS).is_empty(), "EPOLLET: no second event without new data");
    for _ in 0..3 {
        assert_eq!(ep_wait(ep_lt, 0).len(), 1, "level-triggered repeats while unread");
    }
    k1.write_all(&[8u8; 50]).unwrap();
    assert_eq!(ep_wait(ep_et, EVENT_MS).len(), 1, "EPOLLET: new data is a new edge");
    assert!(ep_wait(ep_et, QUIET_MS).is_empty());
    let got = read_all(c1, 150);
    assert_eq!(got.len(), 150);
    assert!(got[..100].iter().all(|&b| b == 7) && got[100..].iter().all(|&b| b == 8));
    assert!(ep_wait(ep_lt, QUIET_MS).is_empty(), "level-triggered: silent once read");
    ok("epoll EPOLLET one event per edge, level-triggered repeats");

    // --- EPOLLONESHOT ---
    // SAFETY: plain values, or pointers valid for the lengths given.
    let ep1 = unsafe { ff_epoll_create(1) };
    let one = (libc::EPOLLIN | libc::EPOLLONESHOT) as u32;
    assert_eq!(ep_ctl(ep1, libc::EPOLL_CTL_ADD, c2, one, 2), 0);
    k2.write_all(b"0123456789").unwrap();
    assert_eq!(ep_wait(ep1, EVENT_MS), vec![(libc::EPOLLIN as u32, 2)]);
    k2.write_all(b"abcdefghij").unwrap();
    assert!(ep_wait(ep1, QUIET_MS).is_empty(), "EPOLLONESHOT: silent after firing");
    assert_eq!(ep_ctl(ep1, libc::EPOLL_CTL_MOD, c2, one, 3), 0);
    assert_eq!(ep_wait(ep1, EVENT_MS), vec![(libc::EPOLLIN as u32, 3)], "re-armed by EPOLL_CTL_MOD");
    assert!(ep_wait(ep1, QUIET_MS).is_empty());
    assert_eq!(read_all(c2, 20), b"0123456789abcdefghij");
    ok("epoll EPOLLONESHOT re-armed by EPOLL_CTL_MOD");

    // --- kqueue filters and flags ---
    // SAFETY: plain values, or pointers valid for the lengths given.
    let kq2 = unsafe { ff_kqueue() };
    assert!(kq(kq2, &[kev(c1, EVFILT_READ, EV_ADD | EV_CLEAR)], QUIET_MS.into()).is_empty());
    k1.write_all(&[1u8; 30]).unwrap();
    let e = kq(kq2, &[], EVENT_MS.into());
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].ident, e[0].filter), (c1 as usize, EVFILT_READ));
    // The bytes may come in more than one segment: data grows to 30.
    let mut data = e[0].data;
    let t = Instant::now();
    while data < 30 && t.elapsed() < Duration::from_secs(5) {
        if let Some(e) = kq(kq2, &[], 50).first() {
            data = e.data;
        }
    }
    assert_eq!(data, 30, "EVFILT_READ data is the readable bytes");
    assert!(kq(kq2, &[], QUIET_MS.into()).is_empty(), "EV_CLEAR: no event without new data");
    assert!(kq(kq2, &[kev(c1, EVFILT_READ, EV_DISABLE)], 0).is_empty());
    k1.write_all(&[2u8; 20]).unwrap();
    assert!(kq(kq2, &[], QUIET_MS.into()).is_empty(), "EV_DISABLE: silent");
    drive(QUIET_MS);
    let e = kq(kq2, &[kev(c1, EVFILT_READ, EV_ENABLE)], EVENT_MS.into());
    assert_eq!(e.len(), 1, "EV_ENABLE reports what came while disabled");
    assert_eq!(e[0].data, 50);
    let e = kq(kq2, &[kev(c1, EVFILT_READ, EV_DELETE)], 0);
    assert!(e.is_empty(), "{e:?}");
    k1.write_all(&[3u8; 5]).unwrap();
    assert!(kq(kq2, &[], QUIET_MS.into()).is_empty(), "EV_DELETE: silent");
    let e = kq(kq2, &[kev(c1, EVFILT_READ, EV_DELETE)], 0);
    assert_eq!(e.len(), 1);
    assert!(e[0].flags & EV_ERROR != 0 && e[0].data == libc::ENOENT as isize, "{e:?}");
    let e = kq(kq2, &[kev(c1, EVFILT_READ, EV_ADD | EV_ONESHOT)], EVENT_MS.into());
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].data, 55);
    assert!(kq(kq2, &[], QUIET_MS.into()).is_empty(), "EV_ONESHOT: once");
    let e = kq(kq2, &[kev(c1, EVFILT_READ, EV_DELETE)], 0);
    assert!(e.len() == 1 && e[0].data == libc::ENOENT as isize, "EV_ONESHOT knote is gone: {e:?}");
    let e = kq(kq2, &[kev(c1, EVFILT_WRITE, EV_ADD)], EVENT_MS.into());
    assert_eq!(e.len(), 1);
    assert!(e[0].filter == EVFILT_WRITE && e[0].data > 0, "EVFILT_WRITE data is send space: {e:?}");
    assert_eq!(kq(kq2, &[], 0).len(), 1, "without EV_CLEAR the write filter stays ready");
    assert!(kq(kq2, &[kev(c1, EVFILT_WRITE, EV_DELETE)], 0).is_empty());
    ok("kqueue EV_CLEAR EV_ONESHOT EV_DISABLE EV_ENABLE EV_DELETE and data");

    // --- ff_poll / ff_select, timeouts ---
    let mut p = [pollfd { fd: c1, events: libc::POLLIN, revents: 0 }];
    // SAFETY: plain values, or pointers valid for the lengths given.
    assert_eq!(unsafe { ff_poll(p.as_mut_ptr(), 1, 0) }, 1);
    assert!(p[0].revents & libc::POLLIN != 0);
    assert_eq!(read_all(c1, 55).len(), 55);
    let t = Instant::now();
    // SAFETY: plain values, or pointers valid for the lengths given.
    assert_eq!(unsafe { ff_poll(p.as_mut_ptr(), 1, 300) }, 0);
    let el = t.elapsed();
    assert!(el >= Duration::from_millis(300) && el < Duration::from_secs(5), "ff_poll timeout: {el:?}");
    let select = |timeout_ms: i64| {
        // SAFETY: plain values, or pointers valid for the lengths given.
        let mut r: libc::fd_set = unsafe { std::mem::zeroed() };
        // SAFETY: plain values, or pointers valid for the lengths given.
        unsafe { libc::FD_SET(c1, &mut r) };
        let mut tv = libc::timeval { tv_sec: 0, tv_usec: timeout_ms * 1000 };
        // SAFETY: plain values, or pointers valid for the lengths given.
        let n = unsafe { ff_select(c1 + 1, &mut r, std::ptr::null_mut(), std::ptr::null_mut(), &mut tv) };
        // SAFETY: plain values, or pointers valid for the lengths given.
        (n, unsafe { libc::FD_ISSET(c1, &r) })
    };
    let t = Instant::now();
    assert_eq!(select(200), (0, false));
    let el = t.elapsed();
    assert!(el >= Duration::from_millis(200) && el < Duration::from_secs(5), "ff_select timeout: {el:?}");
    k1.write_all(b"x").unwrap();
    assert_eq!(select(EVENT_MS.into()), (1, true));
    assert_eq!(read_all(c1, 1), b"x");
    ok("ff_poll ff_select readiness and timeouts honoured");

    // --- a short event list reaches every ready registration in turn ---
    k1.write_all(b"p").unwrap();
    k2.write_all(b"q").unwrap();
    let mut both =
        [pollfd { fd: c1, events: libc::POLLIN, revents: 0 }, pollfd { fd: c2, events: libc::POLLIN, revents: 0 }];
    // SAFETY: two valid entries.
    drive_until("both readable", || unsafe { ff_poll(both.as_mut_ptr(), 2, 5) } == 2);
    // SAFETY: plain values.
    let ep_two = unsafe { ff_epoll_create(1) };
    assert_eq!(ep_ctl(ep_two, libc::EPOLL_CTL_ADD, c1, libc::EPOLLIN as u32, 1), 0);
    assert_eq!(ep_ctl(ep_two, libc::EPOLL_CTL_ADD, c2, libc::EPOLLIN as u32, 2), 0);
    let mut seen = Vec::new();
    for _ in 0..4 {
        let mut ev = [epoll_event { events: 0, u64: 0 }];
        // SAFETY: room for one event.
        assert_eq!(unsafe { ff_epoll_wait(ep_two, ev.as_mut_ptr(), 1, 0) }, 1);
        seen.push(ev[0].u64);
    }
    assert_eq!(seen, vec![1, 2, 1, 2], "maxevents=1 alternates between two level-ready sockets");
    // SAFETY: no arguments.
    let kq_two = unsafe { ff_kqueue() };
    assert_eq!(kq(kq_two, &[kev(c1, EVFILT_READ, EV_ADD), kev(c2, EVFILT_READ, EV_ADD)], 0).len(), 2);
    let mut out = [kev(0, 0, 0); 1];
    let mut idents = Vec::new();
    let zero = timespec { tv_sec: 0, tv_nsec: 0 };
    for _ in 0..4 {
        // SAFETY: room for one event; no changes.
        let n = unsafe { ff_kevent(kq_two, std::ptr::null(), 0, out.as_mut_ptr(), 1, &zero) };
        assert_eq!(n, 1);
        idents.push(out[0].ident as c_int);
    }
    assert!(idents.contains(&c1) && idents.contains(&c2) && idents[0] != idents[1], "kqueue: {idents:?}");
    assert_eq!(read_all(c1, 1), b"p");
    assert_eq!(read_all(c2, 1), b"q");
    assert!(ep_wait(ep_two, 0).is_empty() && kq(kq_two, &[], 0).is_empty(), "nothing left to report");
    ok("short event lists reach every ready registration");

    // --- UDP edge triggering ---
    // SAFETY: plain values, or pointers valid for the lengths given.
    let u = unsafe { ff_socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, 0) };
    let a = sin(7001);
    // SAFETY: plain values, or pointers valid for the lengths given.
    assert_eq!(unsafe { ff_bind(u, (&a as *const sockaddr_in).cast(), 16) }, 0);
    // SAFETY: plain values, or pointers valid for the lengths given.
    let (ep_u, ep_ul) = unsafe { (ff_epoll_create(1), ff_epoll_create(1)) };
    assert_eq!(ep_ctl(ep_u, libc::EPOLL_CTL_ADD, u, et, 5), 0);
    assert_eq!(ep_ctl(ep_ul, libc::EPOLL_CTL_ADD, u, libc::EPOLLIN as u32, 6), 0);
    // SAFETY: plain values, or pointers valid for the lengths given.
    let kq_u = unsafe { ff_kqueue() };
    assert!(kq(kq_u, &[kev(u, EVFILT_READ, EV_ADD | EV_CLEAR)], 0).is_empty());
    let ku = UdpSocket::bind("10.212.0.1:0").unwrap();
    assert!(ep_wait(ep_u, QUIET_MS).is_empty());
    ku.send_to(b"one", format!("{OURS}:7001")).unwrap();
    assert_eq!(ep_wait(ep_u, EVENT_MS), vec![(libc::EPOLLIN as u32, 5)]);
    assert!(ep_wait(ep_u, QUIET_MS).is_empty(), "UDP EPOLLET: no second event for the same datagram");
    assert_eq!(kq(kq_u, &[], 0).len(), 1);
    assert!(kq(kq_u, &[], QUIET_MS.into()).is_empty(), "UDP EV_CLEAR: once per datagram");
    assert_eq!(ep_wait(ep_ul, 0).len(), 1);
    assert_eq!(ep_wait(ep_ul, 0).len(), 1, "UDP level-triggered repeats");
    ku.send_to(b"two", format!("{OURS}:7001")).unwrap();
    assert_eq!(ep_wait(ep_u, EVENT_MS).len(), 1, "UDP EPOLLET: a new datagram is a new edge");
    assert!(ep_wait(ep_u, QUIET_MS).is_empty());
    let mut buf = [0u8; 16];
    // MSG_PEEK copies the next datagram and leaves it queued.
    // SAFETY: sockaddr_in is plain data; all zeroes is a valid value.
    let mut from: sockaddr_in = unsafe { std::mem::zeroed() };
    let mut fromlen = 16 as libc::socklen_t;
    // SAFETY: plain values, or pointers valid for the lengths given.
    let n = unsafe {
        ff_recvfrom(
            u,
            buf.as_mut_ptr().cast(),
            16,
            libc::MSG_PEEK,
            (&mut from as *mut sockaddr_in).cast(),
            &mut fromlen,
        )
    };
    assert_eq!((n, &buf[..3]), (3, &b"one"[..]), "peeked");
    assert_eq!(u16::from_be(from.sin_port), ku.local_addr().unwrap().port(), "the sender's port");
    // A read or readv of no bytes takes nothing (Linux; it discarded "one").
    // SAFETY: a zero length; the pointers are never used.
    assert_eq!(unsafe { ff_read(u, std::ptr::null_mut(), 0) }, 0);
    // SAFETY: no iovec.
    assert_eq!(unsafe { ff_readv(u, std::ptr::null(), 0) }, 0);
    // SAFETY: plain values, or pointers valid for the lengths given.
    assert_eq!(unsafe { ff_read(u, buf.as_mut_ptr().cast(), 16) }, 3);
    assert_eq!(&buf[..3], b"one", "the peeked datagram is still the next one");
    // SAFETY: plain values, or pointers valid for the lengths given.
    assert_eq!(unsafe { ff_read(u, buf.as_mut_ptr().cast(), 16) }, 3);
    assert_eq!(&buf[..3], b"two");
    // MSG_TRUNC: "peek to size, then read" sees the whole length; a read
    // into less room reports the truncation in msg_flags.
    ku.send_to(b"0123456789", format!("{OURS}:7001")).unwrap();
    assert_eq!(ep_wait(ep_u, EVENT_MS).len(), 1);
    // SAFETY: plain values, or pointers valid for the lengths given.
    let n = unsafe { ff_recv(u, buf.as_mut_ptr().cast(), 4, libc::MSG_PEEK | libc::MSG_TRUNC) };
    assert_eq!(n, 10, "MSG_TRUNC returns the datagram's whole length");
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: 4 };
    // SAFETY: msghdr is plain data; all zeroes is a valid value.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    // SAFETY: mh points at one valid iovec of 4 writable bytes.
    assert_eq!(unsafe { ff_recvmsg(u, &mut mh, 0) }, 4);
    assert_eq!(&buf[..4], b"0123");
    assert_eq!(mh.msg_flags & libc::MSG_TRUNC, libc::MSG_TRUNC, "the rest was discarded, and said so");
    assert!(ep_wait(ep_ul, 0).is_empty(), "the truncated datagram was taken");
    assert!(ep_wait(ep_ul, 0).is_empty());
    ok("UDP EPOLLET and EV_CLEAR one event per datagram; MSG_PEEK leaves the datagram; MSG_TRUNC");

    // --- dup'd descriptors keep epoll registrations until the last close ---
    // SAFETY: plain values, or pointers valid for the lengths given.
    let d = unsafe { ff_dup(c2) };
    assert!(d >= 0);
    // SAFETY: plain values, or pointers valid for the lengths given.
    let ep_d = unsafe { ff_epoll_create(1) };
    assert_eq!(ep_ctl(ep_d, libc::EPOLL_CTL_ADD, c2, libc::EPOLLIN as u32, 42), 0);
    // kqueue knotes belong to the descriptor they were added on (FreeBSD's
    // knote_fdclose, hence F-Stack's): the one on c2 goes with c2, the one
    // on the dup stays.
    // SAFETY: no arguments.
    let kq_d = unsafe { ff_kqueue() };
    assert!(kq(kq_d, &[kev(c2, EVFILT_READ, EV_ADD | EV_CLEAR), kev(d, EVFILT_READ, EV_ADD | EV_CLEAR)], 0).is_empty());
    // SAFETY: plain values, or pointers valid for the lengths given.
    assert_eq!(unsafe { ff_close(c2) }, 0);
    k2.write_all(b"still here").unwrap();
    assert_eq!(ep_wait(ep_d, EVENT_MS), vec![(libc::EPOLLIN as u32, 42)], "registration outlives one close");
    let e = kq(kq_d, &[], EVENT_MS.into());
    assert_eq!(e.iter().map(|e| e.ident as c_int).collect::<Vec<_>>(), vec![d], "only the dup's knote: {e:?}");
    let e = kq(kq_d, &[kev(c2, EVFILT_READ, EV_DELETE)], 0);
    assert!(e.len() == 1 && e[0].data == libc::ENOENT as isize, "c2's knote went with c2: {e:?}");
    assert_eq!(read_all(d, 10), b"still here");
    // A new descriptor that reuses the number is a different file.
    // SAFETY: plain values, or pointers valid for the lengths given.
    let u2 = unsafe { ff_socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    assert_eq!(u2, c2, "lowest free descriptor");
    assert_eq!(ep_ctl(ep_d, libc::EPOLL_CTL_MOD, u2, libc::EPOLLIN as u32, 0), -1);
    assert_eq!(errno(), libc::ENOENT);
    assert_eq!(ep_ctl(ep_d, libc::EPOLL_CTL_ADD, u2, libc::EPOLLIN as u32, 43), 0);
    // The new file's registration under the number does not replace the
    // dup'd file's (Linux keys them by number and file).
    k2.write_all(b"again").unwrap();
    assert_eq!(ep_wait(ep_d, EVENT_MS), vec![(libc::EPOLLIN as u32, 42)], "the dup'd file still reports");
    assert_eq!(read_all(d, 5), b"again");
    assert_eq!(ep_ctl(ep_d, libc::EPOLL_CTL_ADD, u2, libc::EPOLLIN as u32, 44), -1);
    assert_eq!(errno(), libc::EEXIST, "the number's current file is registered");
    // SAFETY: plain values, or pointers valid for the lengths given.
    assert_eq!(unsafe { ff_close(u2) }, 0);
    // SAFETY: plain values, or pointers valid for the lengths given.
    assert_eq!(unsafe { ff_close(d) }, 0);
    let mut rest = Vec::new();
    k2.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    drive_until("the peer sees the close", || k2.read_to_end(&mut rest).is_ok());
    assert!(ep_wait(ep_d, QUIET_MS).is_empty(), "the last close removes the registration");
    ok("epoll registration survives closing one of two dup'd descriptors");

    // --- partial zero-copy send, then the tail ---
    let total: usize = 8 << 20;
    let pattern: Vec<u8> = (0..total).map(|i| (i * 7 + i / 4096) as u8).collect();
    let mut m = ZcMbuf { bsd_mbuf: std::ptr::null_mut(), bsd_mbuf_off: std::ptr::null_mut(), off: 0, len: 0 };
    // SAFETY: plain values, or pointers valid for the lengths given.
    assert_eq!(unsafe { ff_zc_mbuf_get(&mut m, total as c_int) }, 0, "errno {}", errno());
    for chunk in pattern.chunks(1 << 20) {
        // SAFETY: plain values, or pointers valid for the lengths given.
        assert_eq!(unsafe { ff_zc_mbuf_write(&mut m, chunk.as_ptr().cast(), chunk.len() as c_int) }, 0);
    }
    // SAFETY: plain values, or pointers valid for the lengths given.
    let first = unsafe { ff_write(c1, m.bsd_mbuf, total) };
    assert!(first > 0 && (first as usize) < total, "expected a partial send of {total}: {first}");
    k1.set_nonblocking(true).unwrap();
    let mut sent = first as usize;
    let mut got = Vec::with_capacity(total);
    let mut rb = vec![0u8; 1 << 16];
    drive_until("the whole zero-copy chain at the peer", || {
        if sent < total {
            // SAFETY: plain values, or pointers valid for the lengths given.
            let n = unsafe { ff_write(c1, m.bsd_mbuf, total - sent) };
            if n > 0 {
                sent += n as usize;
            } else {
                assert_eq!(errno(), libc::EAGAIN);
            }
        }
        while let Ok(n) = k1.read(&mut rb) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&rb[..n]);
        }
        got.len() >= total
    });
    assert!(got == pattern, "zero-copy bytes differ at the peer");
    ok("partial zero-copy send keeps the tail usable");

    // --- a chain handle after its chain was sent in full is refused ---
    zc_stale_handles(c1, &mut k1);
    // --- lengths no C object can have ---
    huge_lengths(c1, &mut k1);
    // --- MSG_PEEK on TCP fills every iovec, as Linux's recvmsg ---
    tcp_peek_iovecs(c1, &mut k1);
    // --- ff_epoll_create ignores size (F-Stack's own examples pass 0) ---
    for size in [0, -1, c_int::MIN, 1, c_int::MAX] {
        // SAFETY: plain values.
        let ep = unsafe { ff_epoll_create(size) };
        assert!(ep >= 0, "ff_epoll_create({size}): errno {}", errno());
        assert_eq!(ep_ctl(ep, libc::EPOLL_CTL_ADD, c1, libc::EPOLLOUT as u32, 9), 0);
        assert_eq!(ep_wait(ep, EVENT_MS), vec![(libc::EPOLLOUT as u32, 9)], "size {size} gives a working set");
        // SAFETY: plain values.
        assert_eq!(unsafe { ff_close(ep) }, 0);
    }
    ok("ff_epoll_create accepts any size");

    // --- a wait that finds something ready at once still runs the stack ---
    waits_run_the_stack(l, kqfd);
    // --- the peer's FIN is reported when it arrives, not after the drain ---
    fin_before_read(l, kqfd);
    level_after_reads(l, kqfd);

    // --- packet dispatcher ---
    // SAFETY: plain values, or pointers valid for the lengths given.
    unsafe { ff_regist_packet_dispatcher(Some(dispatcher)) };
    let mut socks = Vec::new();
    for port in [7002u16, 7004] {
        // SAFETY: plain values, or pointers valid for the lengths given.
        let s = unsafe { ff_socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
        let a = sin(port);
        // SAFETY: plain values, or pointers valid for the lengths given.
        assert_eq!(unsafe { ff_bind(s, (&a as *const sockaddr_in).cast(), 16) }, 0);
        socks.push(s);
    }
    ku.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    ku.send_to(b"dropped", format!("{OURS}:7002")).unwrap();
    ku.send_to(b"other queue", format!("{OURS}:7004")).unwrap();
    ku.send_to(b"echo me", format!("{OURS}:7003")).unwrap();
    ku.send_to(b"passed", format!("{OURS}:7001")).unwrap();
    let mut echo = None;
    drive_until("the sent-back frame", || {
        if let Ok((n, from)) = ku.recv_from(&mut buf) {
            echo = Some((buf[..n].to_vec(), from));
        }
        echo.is_some()
    });
    let (e, from) = echo.unwrap();
    assert_eq!((e.as_slice(), from.to_string()), (&b"echo me"[..], format!("{OURS}:7003")));
    assert_eq!(read_all(u, 6), b"passed", "0 hands the frame to the stack");
    for &s in &socks {
        // SAFETY: plain values, or pointers valid for the lengths given.
        assert_eq!(unsafe { ff_read(s, buf.as_mut_ptr().cast(), 16) }, -1, "dropped by the dispatcher");
        assert_eq!(errno(), libc::EAGAIN);
    }
    assert!(DISPATCHED.load(Ordering::Relaxed) >= 4);
    // SAFETY: plain values, or pointers valid for the lengths given.
    unsafe { ff_regist_packet_dispatcher(None) };
    let before = DISPATCHED.load(Ordering::Relaxed);
    ku.send_to(b"again", format!("{OURS}:7002")).unwrap();
    let mut n = -1;
    drive_until("the datagram after unregistering", || {
        // SAFETY: plain values, or pointers valid for the lengths given.
        n = unsafe { ff_read(socks[0], buf.as_mut_ptr().cast(), 16) };
        n > 0
    });
    assert_eq!(DISPATCHED.load(Ordering::Relaxed), before, "unregistered");
    ok("packet dispatcher pass drop other-queue send-back");
    println!("BOUNDARY done");
}

/// A wait that finds a registration ready at once still lets the stack
/// run: with one connection left unaccepted (the listener stays
/// level-ready), kernel connects made afterwards complete while the program
/// only waits, once per kind of wait (`ff_kevent` with a 100 ms timeout,
/// `ff_epoll_wait` at 0, `ff_poll` at -1). Each wait returns the ready
/// listener at once; the stack must still read the device between them, or
/// the SYN stays in the tap's queue (the flake of [`kernel_clients`] when
/// the kernel's second SYN came after the first connection was queued).
fn waits_run_the_stack(l: c_int, kqfd: c_int) {
    let mut ks = kernel_clients(1, 7000, l, kqfd);
    // SAFETY: plain values.
    let ep = unsafe { ff_epoll_create(1) };
    assert_eq!(ep_ctl(ep, libc::EPOLL_CTL_ADD, l, libc::EPOLLIN as u32, 7), 0);
    let listener_ready = |e: &Kevent| e.ident == l as usize && e.filter == EVFILT_READ;
    let waits: [(&str, &dyn Fn() -> bool); 3] = [
        ("ff_kevent 100 ms", &|| kq(kqfd, &[], 100).iter().any(listener_ready)),
        ("ff_epoll_wait 0", &|| ep_wait(ep, 0) == vec![(libc::EPOLLIN as u32, 7)]),
        ("ff_poll -1", &|| {
            let mut p = [pollfd { fd: l, events: libc::POLLIN, revents: 0 }];
            // SAFETY: one valid entry.
            unsafe { ff_poll(p.as_mut_ptr(), 1, -1) == 1 && p[0].revents & libc::POLLIN != 0 }
        }),
    ];
    let addr: SocketAddrV4 = format!("{OURS}:7000").parse().unwrap();
    for (what, wait) in waits {
        let h = std::thread::spawn(move || TcpStream::connect_timeout(&addr.into(), Duration::from_secs(8)));
        let t = Instant::now();
        while !h.is_finished() {
            assert!(wait(), "{what}: the listener is ready");
            assert!(t.elapsed() < Duration::from_secs(10), "{what}: the kernel's connect never completed");
        }
        ks.push(h.join().unwrap().unwrap_or_else(|e| panic!("{what}: kernel connect: {e}")));
    }
    let mut cs = Vec::new();
    drive_until("the four connections to accept", || {
        // SAFETY: null address pointers are allowed.
        let fd = unsafe { ff_accept(l, std::ptr::null_mut(), std::ptr::null_mut()) };
        if fd >= 0 {
            cs.push(fd);
        }
        cs.len() == 4
    });
    drop(ks);
    // SAFETY: plain values.
    unsafe {
        for fd in cs.into_iter().chain([ep]) {
            assert_eq!(ff_close(fd), 0);
        }
    }
    drive(QUIET_MS);
    ok("a wait that finds the listener ready still runs the stack");
}

/// Data then the peer's FIN arrive before the application reads: an
/// `EPOLLET` registration gets a new edge with `EPOLLIN | EPOLLRDHUP` (as
/// Linux), a level-triggered one reports `EPOLLRDHUP` at once, kqueue sets
/// `EV_EOF` with `data` still the queued bytes (as FreeBSD); the data is
/// read in full and only then does a read return 0.
fn fin_before_read(l: c_int, kqfd: c_int) {
    let mut k = kernel_clients(1, 7000, l, kqfd).remove(0);
    let c = accept(l);
    // SAFETY: plain values.
    let (ep_et, ep_lt, kq3) = unsafe { (ff_epoll_create(1), ff_epoll_create(1), ff_kqueue()) };
    let rd = (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
    assert_eq!(ep_ctl(ep_et, libc::EPOLL_CTL_ADD, c, rd | libc::EPOLLET as u32, 1), 0);
    assert_eq!(ep_ctl(ep_lt, libc::EPOLL_CTL_ADD, c, rd, 2), 0);
    assert!(kq(kq3, &[kev(c, EVFILT_READ, EV_ADD | EV_CLEAR)], 0).is_empty());
    k.write_all(b"hello").unwrap();
    let e = ep_wait(ep_et, EVENT_MS);
    assert_eq!(e, vec![(libc::EPOLLIN as u32, 1)], "data alone: EPOLLIN without EPOLLRDHUP");
    let e = kq(kq3, &[], EVENT_MS.into());
    assert!(e.len() == 1 && e[0].data == 5 && e[0].flags & EV_EOF == 0, "{e:?}");
    k.shutdown(std::net::Shutdown::Write).unwrap();
    let e = ep_wait(ep_et, EVENT_MS);
    assert_eq!(e, vec![(rd, 1)], "EPOLLET: the FIN is a new edge with data still queued");
    assert!(ep_wait(ep_et, QUIET_MS).is_empty(), "one edge for the FIN");
    assert_eq!(ep_wait(ep_lt, 0), vec![(rd, 2)], "level-triggered: EPOLLRDHUP before the drain");
    let e = kq(kq3, &[], EVENT_MS.into());
    assert!(e.len() == 1 && e[0].flags & EV_EOF != 0 && e[0].data == 5, "EV_EOF with 5 bytes queued: {e:?}");
    let mut b = [0u8; 16];
    // SAFETY: b is writable for 16 bytes.
    assert_eq!(unsafe { ff_read(c, b.as_mut_ptr().cast(), 16) }, 5);
    assert_eq!(&b[..5], b"hello");
    // SAFETY: as above.
    assert_eq!(unsafe { ff_read(c, b.as_mut_ptr().cast(), 16) }, 0, "end of stream only after the data");
    assert_eq!(ep_wait(ep_lt, 0), vec![(rd, 2)], "EPOLLRDHUP stays");
    // SAFETY: plain values.
    unsafe {
        for fd in [ep_et, ep_lt, kq3, c] {
            assert_eq!(ff_close(fd), 0);
        }
    }
    ok("peer FIN before read: EPOLLRDHUP edge and EV_EOF with data queued");
}

/// Level-triggered read registrations after the application read: a
/// partial read is reported again with what is left, a drained connection
/// is silent (zcstack skips re-checking it until the engine reports it),
/// and each way it becomes readable again is reported: new data, the
/// peer's FIN, and the application's own `shutdown(SHUT_RD)`.
fn level_after_reads(l: c_int, kqfd: c_int) {
    let mut ks = kernel_clients(2, 7000, l, kqfd);
    let (c, c2) = (accept(l), accept(l));
    // SAFETY: plain values.
    let (ep, kq4) = unsafe { (ff_epoll_create(1), ff_kqueue()) };
    let rd = (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;
    assert_eq!(ep_ctl(ep, libc::EPOLL_CTL_ADD, c, rd, 1), 0);
    assert!(kq(kq4, &[kev(c, EVFILT_READ, EV_ADD), kev(c2, EVFILT_READ, EV_ADD)], 0).is_empty());
    ks[0].write_all(&[9u8; 40]).unwrap();
    let mut data = 0;
    let t = Instant::now();
    while data < 40 && t.elapsed() < Duration::from_secs(5) {
        data = kq(kq4, &[], 50).first().map_or(data, |e| e.data);
    }
    assert_eq!(data, 40);
    let mut b = [0u8; 64];
    // SAFETY: b is writable for the lengths given.
    assert_eq!(unsafe { ff_read(c, b.as_mut_ptr().cast(), 15) }, 15);
    let e = kq(kq4, &[], 0);
    assert!(e.len() == 1 && e[0].data == 25, "a partial read is reported again with the rest: {e:?}");
    assert_eq!(ep_wait(ep, 0), vec![(libc::EPOLLIN as u32, 1)]);
    // SAFETY: as above.
    assert_eq!(unsafe { ff_read(c, b.as_mut_ptr().cast(), 64) }, 25);
    assert!(kq(kq4, &[], QUIET_MS.into()).is_empty(), "drained: silent");
    assert!(ep_wait(ep, 0).is_empty(), "drained: silent (epoll)");
    ks[0].write_all(&[8u8; 7]).unwrap();
    let e = kq(kq4, &[], EVENT_MS.into());
    assert!(e.len() == 1 && e[0].data == 7 && e[0].flags & EV_EOF == 0, "new data after a drain: {e:?}");
    assert_eq!(kq(kq4, &[], 0).len(), 1, "still unread: reported again");
    assert_eq!(ep_wait(ep, 0), vec![(libc::EPOLLIN as u32, 1)]);
    assert_eq!(read_all(c, 7), vec![8u8; 7]);
    assert!(kq(kq4, &[], QUIET_MS.into()).is_empty());
    ks[0].shutdown(std::net::Shutdown::Write).unwrap();
    let e = kq(kq4, &[], EVENT_MS.into());
    assert!(e.len() == 1 && e[0].flags & EV_EOF != 0 && e[0].data == 0, "the FIN after a drain: {e:?}");
    assert_eq!(kq(kq4, &[], 0).len(), 1, "EOF stays reported (level)");
    assert_eq!(ep_wait(ep, 0), vec![(rd, 1)]);
    // c2: drained, then the application shuts its receive side down: reads
    // now return end of stream, so a read filter reports it.
    assert!(kq(kq4, &[kev(c, EVFILT_READ, EV_DELETE)], 0).is_empty(), "c leaves the kqueue");
    ks[1].write_all(b"abc").unwrap();
    assert_eq!(kq(kq4, &[], EVENT_MS.into()).len(), 1);
    assert_eq!(read_all(c2, 3), b"abc");
    assert!(kq(kq4, &[], QUIET_MS.into()).is_empty(), "c2 drained: silent");
    // SAFETY: plain values.
    assert_eq!(unsafe { ff_shutdown(c2, libc::SHUT_RD) }, 0);
    let e = kq(kq4, &[], 0);
    assert!(e.len() == 1 && e[0].ident == c2 as usize, "a receive shutdown after a drain is reported: {e:?}");
    // SAFETY: b is writable for 64 bytes.
    assert_eq!(unsafe { ff_read(c2, b.as_mut_ptr().cast(), 64) }, 0, "reads give end of stream");
    // SAFETY: plain values.
    unsafe {
        for fd in [ep, kq4, c, c2] {
            assert_eq!(ff_close(fd), 0);
        }
    }
    ok("level-triggered after reads: partial, drained, new data, FIN, SHUT_RD");
}

fn main() {
    if let (Ok(conf), Ok(iface)) = (std::env::var("ZCFFI_BOUNDARY_CONF"), std::env::var("ZCFFI_BOUNDARY_IFACE")) {
        inner(&conf, &iface);
        return;
    }
    let _turn = common::one_at_a_time();
    let ns = common::Netns::new("b");
    let conf = ns.config("b.ini", "");
    let exe = std::env::current_exe().unwrap();
    let o = Command::new("timeout")
        .args(["120", "ip", "netns", "exec", &ns.name])
        .arg(&exe)
        .env("ZCFFI_BOUNDARY_CONF", &conf)
        .env("ZCFFI_BOUNDARY_IFACE", &ns.iface)
        .output()
        .expect("run the boundary checks in the netns");
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success() && out.contains("BOUNDARY done"), "boundary checks failed:\n{out}\n{err}");
    for check in [
        "backlog",
        "EPOLLET one event per edge",
        "EPOLLONESHOT",
        "EV_CLEAR EV_ONESHOT",
        "timeouts honoured",
        "short event lists",
        "UDP EPOLLET",
        "dup'd",
        "partial zero-copy",
        "stale zero-copy handles",
        "huge lengths",
        "ff_epoll_create accepts any size",
        "still runs the stack",
        "peer FIN before read",
        "level-triggered after reads",
        "dispatcher",
    ] {
        assert!(out.lines().any(|l| l.starts_with("PASS") && l.contains(check)), "no PASS for {check}:\n{out}");
    }
    let n = out.lines().filter(|l| l.starts_with("PASS")).count();
    // In libtest's words, so that ci/test counts these checks.
    println!("boundary: {n} checks passed\ntest result: ok. {n} passed; 0 failed; 0 ignored; 0 measured");
}
