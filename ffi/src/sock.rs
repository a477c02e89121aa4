//! Sockets: `ff_socket` … `ff_dup2` (options in `sockopt`) with Linux's
//! constants, `struct linux_sockaddr` (`short sa_family; char
//! sa_data[14]`, i.e. Linux's `sockaddr_in` for IPv4) and Linux errno
//! values.

use std::ffi::{c_int, c_long, c_void};
use std::net::{Ipv4Addr, SocketAddrV4};

use libc::{iovec, msghdr, socklen_t};
use smallvec::SmallVec;
use zcstack::tcp::sockopt::{SockOptName, SocketOptions};
use zcstack::{State, TcpError};

use crate::errno;
use crate::state::{entry, with_lib, Kind, Lib, Res, TcpSt};

/// The `AF_INET6` values F-Stack accepts (Linux 10, FreeBSD 28).
const AF_INET6_ANY: [c_int; 2] = [10, 28];

/// Reads an IPv4 `linux_sockaddr` of `len` bytes.
///
/// # Safety
/// `sa` is null or points to `len` readable bytes.
unsafe fn read_addr(sa: *const c_void, len: socklen_t) -> Res<SocketAddrV4> {
    if sa.is_null() {
        return Err(libc::EFAULT);
    }
    // Linux: shorter than the family, or longer than a sockaddr_storage.
    if (len as usize) < std::mem::size_of::<libc::sa_family_t>()
        || (len as usize) > std::mem::size_of::<libc::sockaddr_storage>()
    {
        return Err(libc::EINVAL);
    }
    // SAFETY: at least the family is readable (checked above).
    let family = c_int::from(unsafe { sa.cast::<libc::sa_family_t>().read_unaligned() });
    if family != libc::AF_INET {
        return Err(libc::EAFNOSUPPORT);
    }
    if (len as usize) < std::mem::size_of::<libc::sockaddr_in>() {
        return Err(libc::EINVAL);
    }
    // SAFETY: a whole sockaddr_in is readable (checked above).
    let sin = unsafe { sa.cast::<libc::sockaddr_in>().read_unaligned() };
    Ok(SocketAddrV4::new(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)), u16::from_be(sin.sin_port)))
}

/// Writes `a` to an out-address (`len` in: room, out: the full size, as
/// Linux; a short buffer gets a truncated address). Null `sa` is skipped.
///
/// # Safety
/// `sa` is null or points to `*len` writable bytes; `len` is null or valid.
unsafe fn write_addr(a: SocketAddrV4, sa: *mut c_void, len: *mut socklen_t) -> Res<()> {
    if sa.is_null() {
        return Ok(());
    }
    if len.is_null() {
        return Err(libc::EFAULT);
    }
    // SAFETY: len is valid (checked above).
    let room = unsafe { *len } as usize;
    // SAFETY: sockaddr_in is plain data; zeroed is a valid value.
    let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sin.sin_family = libc::AF_INET as libc::sa_family_t;
    sin.sin_port = a.port().to_be();
    sin.sin_addr.s_addr = u32::from(*a.ip()).to_be();
    let full = std::mem::size_of::<libc::sockaddr_in>();
    // SAFETY: copying min(room, full) bytes into the caller's buffer of `room`.
    unsafe {
        std::ptr::copy_nonoverlapping((&raw const sin).cast::<u8>(), sa.cast::<u8>(), room.min(full));
        *len = full as socklen_t;
    }
    Ok(())
}

fn conn(lib: &mut Lib, fd: c_int) -> Res<zcstack::SocketHandle> {
    match lib.file(fd)?.kind {
        Kind::Tcp { st: TcpSt::Conn(h), .. } => Ok(h),
        Kind::Tcp { .. } | Kind::Udp { .. } => Err(libc::ENOTCONN),
        _ => Err(libc::ENOTSOCK),
    }
}

/// `int ff_socket(int domain, int type, int protocol)`: `AF_INET` with
/// `SOCK_STREAM` or `SOCK_DGRAM` (`SOCK_NONBLOCK`/`SOCK_CLOEXEC` accepted).
/// Every zcstack socket is non-blocking whether or not `SOCK_NONBLOCK` is
/// given (F-Stack programs set `FIONBIO` right after); making it blocking
/// later is refused (`ff_fcntl`, `ff_ioctl`). `AF_INET6` and other families:
/// `EAFNOSUPPORT`; known types zcstack lacks (`SOCK_RAW`, `SOCK_SEQPACKET`,
/// ...) and a protocol other than the type's: `EPROTONOSUPPORT`; an unknown
/// type: `EINVAL` (as Linux).
#[no_mangle]
pub extern "C" fn ff_socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    entry("ff_socket", -1, || {
        with_lib(|lib| {
            if AF_INET6_ANY.contains(&domain) || domain != libc::AF_INET {
                return Err(libc::EAFNOSUPPORT);
            }
            let base = ty & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC);
            match (base, protocol) {
                (libc::SOCK_STREAM, 0 | libc::IPPROTO_TCP) => {
                    lib.open(Kind::Tcp { st: TcpSt::Fresh, opts: SocketOptions::default(), bound: None })
                }
                (libc::SOCK_DGRAM, 0 | libc::IPPROTO_UDP) => lib.open(Kind::Udp { h: None, peer: None }),
                (
                    libc::SOCK_STREAM
                    | libc::SOCK_DGRAM
                    | libc::SOCK_RAW
                    | libc::SOCK_RDM
                    | libc::SOCK_SEQPACKET
                    | libc::SOCK_DCCP
                    | 10, // SOCK_PACKET
                    _,
                ) => Err(libc::EPROTONOSUPPORT),
                _ => Err(libc::EINVAL),
            }
        })
    })
}

/// `int ff_bind(int s, const struct linux_sockaddr *addr, socklen_t addrlen)`:
/// the address must be `INADDR_ANY` or the port's (`EADDRNOTAVAIL`); a TCP
/// port is taken at `ff_listen`/`ff_connect` (a clash is `EADDRINUSE`
/// there), a UDP port here.
///
/// # Safety
/// `addr` points to `addrlen` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn ff_bind(s: c_int, addr: *const c_void, addrlen: socklen_t) -> c_int {
    entry("ff_bind", -1, || {
        with_lib(|lib| {
            // SAFETY: forwarded caller contract.
            let a = unsafe { read_addr(addr, addrlen) }?;
            let ours = lib.stack().addr();
            if !a.ip().is_unspecified() && *a.ip() != Ipv4Addr::from(ours.octets()) {
                return Err(libc::EADDRNOTAVAIL);
            }
            let is_udp = matches!(lib.file(s)?.kind, Kind::Udp { h: None, .. });
            let udp = if is_udp { Some(lib.stack().udp_bind(a.port()).map_err(errno::udp)?) } else { None };
            match &mut lib.file(s)?.kind {
                Kind::Tcp { st: TcpSt::Fresh, bound: b @ None, .. } => *b = Some(a),
                Kind::Udp { h: h @ None, .. } => *h = udp,
                Kind::Tcp { .. } | Kind::Udp { .. } => return Err(libc::EINVAL),
                _ => return Err(libc::ENOTSOCK),
            }
            Ok(0)
        })
    })
}

/// `int ff_listen(int s, int backlog)`: listens on the bound port (`EINVAL`
/// if not bound or already connected; `EADDRINUSE`); the backlog is at least 1.
#[no_mangle]
pub extern "C" fn ff_listen(s: c_int, backlog: c_int) -> c_int {
    entry("ff_listen", -1, || {
        with_lib(|lib| {
            let id = lib.file_id(s)?;
            let (port, opts) = match &lib.file(s)?.kind {
                Kind::Tcp { st: TcpSt::Listen(_), .. } => return Ok(0),
                Kind::Tcp { st: TcpSt::Fresh, bound: Some(a), opts } => (a.port(), *opts),
                Kind::Tcp { .. } => return Err(libc::EINVAL),
                Kind::Udp { .. } => return Err(libc::EOPNOTSUPP),
                _ => return Err(libc::ENOTSOCK),
            };
            let bl = usize::try_from(backlog).unwrap_or(0).clamp(1, 65_535);
            let h = lib.stack().tcp_listen_with(port, bl, &opts).map_err(errno::tcp)?;
            if let Kind::Tcp { st, .. } = &mut lib.file(s)?.kind {
                *st = TcpSt::Listen(h);
            }
            lib.watch(id, h);
            Ok(0)
        })
    })
}

/// `int ff_accept4(int s, struct linux_sockaddr *addr, socklen_t *addrlen,
/// int flags)`: a queued connection (`EAGAIN` if none; `EINVAL` if `s` is not
/// listening). `flags` may hold `SOCK_NONBLOCK`/`SOCK_CLOEXEC`.
///
/// # Safety
/// `addr`/`addrlen` are null or valid for `*addrlen` bytes.
#[no_mangle]
pub unsafe extern "C" fn ff_accept4(s: c_int, addr: *mut c_void, addrlen: *mut socklen_t, flags: c_int) -> c_int {
    entry("ff_accept4", -1, || {
        with_lib(|lib| {
            if flags & !(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC) != 0 {
                return Err(libc::EINVAL);
            }
            let l = match lib.file(s)?.kind {
                Kind::Tcp { st: TcpSt::Listen(h), .. } => h,
                Kind::Tcp { .. } => return Err(libc::EINVAL),
                Kind::Udp { .. } => return Err(libc::EOPNOTSUPP),
                _ => return Err(libc::ENOTSOCK),
            };
            let (h, peer) = lib.stack().tcp_accept(l).map_err(errno::tcp)?;
            let fd = match lib.open(Kind::Tcp { st: TcpSt::Conn(h), opts: SocketOptions::default(), bound: None }) {
                Ok(fd) => fd,
                Err(e) => {
                    let _ = lib.stack().tcp_abort(h);
                    return Err(e);
                }
            };
            let id = lib.file_id(fd)?;
            lib.watch(id, h);
            // SAFETY: forwarded caller contract.
            unsafe { write_addr(peer, addr, addrlen) }?;
            Ok(fd)
        })
    })
}

/// `int ff_accept(int s, struct linux_sockaddr *addr, socklen_t *addrlen)`.
///
/// # Safety
/// As [`ff_accept4`].
#[no_mangle]
pub unsafe extern "C" fn ff_accept(s: c_int, addr: *mut c_void, addrlen: *mut socklen_t) -> c_int {
    // SAFETY: same contract.
    unsafe { ff_accept4(s, addr, addrlen, 0) }
}

/// `int ff_connect(int s, const struct linux_sockaddr *name, socklen_t
/// namelen)`: TCP starts the handshake and fails with `EINPROGRESS`; called
/// again: `EALREADY` while connecting, `EISCONN` once connected, the
/// connection's error (`ECONNREFUSED`, …) if it failed. UDP records the peer.
///
/// # Safety
/// `name` points to `namelen` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn ff_connect(s: c_int, name: *const c_void, namelen: socklen_t) -> c_int {
    entry("ff_connect", -1, || {
        with_lib(|lib| {
            // SAFETY: forwarded caller contract.
            let to = unsafe { read_addr(name, namelen) }?;
            let id = lib.file_id(s)?;
            let now = lib.now();
            match lib.file(s)?.kind {
                Kind::Tcp { st: TcpSt::Conn(h), .. } => {
                    let tcp = lib.stack().tcp();
                    if let Some(e) = tcp.error(h) {
                        let _ = tcp.get_option(h, SockOptName::Error);
                        return Err(errno::tcp(e));
                    }
                    match tcp.state(h) {
                        Ok(State::SynSent | State::SynReceived) => Err(libc::EALREADY),
                        Ok(_) => Err(libc::EISCONN),
                        Err(e) => Err(errno::tcp(e)),
                    }
                }
                Kind::Tcp { st: TcpSt::Listen(_), .. } => Err(libc::EINVAL),
                Kind::Tcp { st: TcpSt::Fresh, bound, opts } => {
                    let lport = bound.map_or(0, |b| b.port());
                    let h = lib.stack().tcp_connect_with(to, lport, &opts, now).map_err(errno::tcp)?;
                    if let Kind::Tcp { st, .. } = &mut lib.file(s)?.kind {
                        *st = TcpSt::Conn(h);
                    }
                    lib.watch(id, h);
                    Err(libc::EINPROGRESS)
                }
                Kind::Udp { .. } => {
                    if let Kind::Udp { peer, .. } = &mut lib.file(s)?.kind {
                        *peer = Some(to);
                    }
                    Ok(0)
                }
                _ => Err(libc::ENOTSOCK),
            }
        })
    })
}

/// `int ff_close(int fd)`: TCP closes gracefully (RST if unread data
/// remains, as Linux); the descriptor is free for reuse at once.
#[no_mangle]
pub extern "C" fn ff_close(fd: c_int) -> c_int {
    entry("ff_close", -1, || with_lib(|lib| lib.close(fd).map(|()| 0)))
}

/// `int ff_shutdown(int s, int how)`: `SHUT_RD`, `SHUT_WR`, `SHUT_RDWR`.
#[no_mangle]
pub extern "C" fn ff_shutdown(s: c_int, how: c_int) -> c_int {
    entry("ff_shutdown", -1, || {
        with_lib(|lib| {
            let h = conn(lib, s)?;
            if how == libc::SHUT_RD || how == libc::SHUT_RDWR {
                // A receive side shut down reads as end of stream.
                lib.file(s)?.rd_quiet = false;
            }
            let st = lib.stack();
            match how {
                libc::SHUT_RD => st.tcp_shutdown_read(h),
                libc::SHUT_WR => st.tcp_shutdown(h),
                libc::SHUT_RDWR => st.tcp_shutdown_read(h).and_then(|()| st.tcp_shutdown(h)),
                _ => return Err(libc::EINVAL),
            }
            .map_err(errno::tcp)?;
            Ok(0)
        })
    })
}

fn names(lib: &mut Lib, s: c_int) -> Res<(SocketAddrV4, Option<SocketAddrV4>)> {
    let ours = Ipv4Addr::from(lib.stack().addr().octets());
    match lib.file(s)?.kind {
        Kind::Tcp { st: TcpSt::Conn(h), .. } => {
            let (l, r) = lib.stack().tcp().addrs(h).map_err(errno::tcp)?;
            Ok((l, Some(r)))
        }
        Kind::Tcp { bound, .. } => Ok((bound.unwrap_or(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)), None)),
        Kind::Udp { peer, .. } => Ok((SocketAddrV4::new(ours, 0), peer)),
        _ => Err(libc::ENOTSOCK),
    }
}

/// `int ff_getpeername(int s, struct linux_sockaddr *name, socklen_t *namelen)`.
///
/// # Safety
/// `name`/`namelen` valid for `*namelen` bytes.
#[no_mangle]
pub unsafe extern "C" fn ff_getpeername(s: c_int, name: *mut c_void, namelen: *mut socklen_t) -> c_int {
    entry("ff_getpeername", -1, || {
        with_lib(|lib| {
            let peer = names(lib, s)?.1.ok_or(libc::ENOTCONN)?;
            if name.is_null() {
                return Err(libc::EFAULT);
            }
            // SAFETY: forwarded caller contract.
            unsafe { write_addr(peer, name, namelen) }.map(|()| 0)
        })
    })
}

/// `int ff_getsockname(int s, struct linux_sockaddr *name, socklen_t *namelen)`.
///
/// # Safety
/// `name`/`namelen` valid for `*namelen` bytes.
#[no_mangle]
pub unsafe extern "C" fn ff_getsockname(s: c_int, name: *mut c_void, namelen: *mut socklen_t) -> c_int {
    entry("ff_getsockname", -1, || {
        with_lib(|lib| {
            let local = names(lib, s)?.0;
            if name.is_null() {
                return Err(libc::EFAULT);
            }
            // SAFETY: forwarded caller contract.
            unsafe { write_addr(local, name, namelen) }.map(|()| 0)
        })
    })
}

/// Reads into the buffers (`peek`: `MSG_PEEK`): the bytes placed, the
/// whole datagram's length (UDP, which returns one datagram and discards
/// what does not fit: `MSG_TRUNC`; TCP: the bytes placed) and the sender.
fn read_into(
    lib: &mut Lib,
    fd: c_int,
    bufs: &mut [&mut [u8]],
    peek: bool,
) -> Res<(usize, usize, Option<SocketAddrV4>)> {
    match lib.file(fd)?.kind {
        Kind::Tcp { st: TcpSt::Conn(h), .. } => {
            let st = lib.stack();
            let n = if peek {
                st.tcp_peek_vectored(h, bufs)
            } else {
                let n = st.tcp_readv(h, bufs);
                // Drained: a read filter skips this file until the engine
                // reports it again.
                let quiet = st.tcp().read_quiet(h);
                lib.file(fd)?.rd_quiet = quiet;
                n
            };
            let n = n.map_err(errno::tcp)?;
            Ok((n, n, None))
        }
        Kind::Tcp { .. } => Err(libc::ENOTCONN),
        Kind::Udp { h: Some(h), .. } => {
            // Straight into the caller's buffers (no bounce buffer per
            // call); MSG_PEEK leaves the datagram queued.
            let st = lib.stack();
            let r = if peek { st.udp_peek_vectored(h, bufs) } else { st.udp_recv_vectored(h, bufs) };
            let d = r.map_err(errno::udp)?;
            Ok((d.placed, d.len, Some(d.from)))
        }
        Kind::Udp { h: None, .. } => Err(libc::EAGAIN),
        _ => Err(libc::EINVAL),
    }
}

/// Writes the buffers; UDP sends one datagram to `to` (or the connected peer).
fn write_from(lib: &mut Lib, fd: c_int, bufs: &[&[u8]], to: Option<SocketAddrV4>) -> Res<usize> {
    match lib.file(fd)?.kind {
        Kind::Tcp { st: TcpSt::Conn(h), .. } => {
            let st = lib.stack();
            if let Some(e) = st.tcp().error(h) {
                let _ = st.tcp_get_option(h, SockOptName::Error);
                return Err(errno::tcp(e));
            }
            if matches!(st.tcp_state(h), Ok(State::SynSent | State::SynReceived)) {
                return Err(libc::EAGAIN);
            }
            st.tcp_writev(h, bufs).map_err(|e| match e {
                TcpError::NoBuffers => libc::EAGAIN,
                e => errno::tcp(e),
            })
        }
        Kind::Tcp { .. } => Err(libc::ENOTCONN),
        Kind::Udp { h, peer } => {
            let to = to.or(peer).ok_or(libc::EDESTADDRREQ)?;
            let h = match h {
                Some(h) => h,
                None => {
                    let h = lib.stack().udp_bind(0).map_err(errno::udp)?;
                    if let Kind::Udp { h: slot, .. } = &mut lib.file(fd)?.kind {
                        *slot = Some(h);
                    }
                    h
                }
            };
            // Built from the caller's buffers in a recycled frame (no
            // gathered copy per call).
            lib.stack().udp_send_vectored(h, to, bufs).map_err(errno::udp)?;
            Ok(bufs.iter().map(|b| b.len()).sum())
        }
        _ => Err(libc::EINVAL),
    }
}

/// Linux's `MAX_RW_COUNT` (`INT_MAX & PAGE_MASK`): the most bytes one call
/// moves; a longer request is cut to it (as Linux's `read`/`recv`/iovecs).
pub const MAX_RW_COUNT: usize = 0x7fff_f000;

/// The largest length a C object can have (`SSIZE_MAX`); longer ones are
/// caller bugs: `EINVAL`, as FreeBSD's (F-Stack's) `write`/`readv` for a
/// length above `IOSIZE_MAX` and Linux's `import_iovec` for one iovec
/// segment. Linux's `write`/`send` of such a length, and a `readv`/`writev`
/// whose segments only add up past it, say `EFAULT` instead (their
/// `access_ok` of the range fails first).
const SSIZE_MAX: usize = isize::MAX as usize;

/// Checks a (pointer, length) pair from C and views it (null with length 0 is
/// an empty buffer): null is `EFAULT`, a length above `SSIZE_MAX` is
/// `EINVAL` (no object is that long: nothing is sent), a length above
/// [`MAX_RW_COUNT`] is cut to it, and a buffer that would end past the
/// address space's end is `EFAULT`.
///
/// # Safety
/// `p` points to `len` bytes valid for the returned lifetime.
unsafe fn buf<'a>(p: *const c_void, len: usize) -> Res<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(libc::EFAULT);
    }
    if len > SSIZE_MAX {
        return Err(libc::EINVAL);
    }
    let len = view_len(p as usize, len)?;
    // SAFETY: caller contract; the length is at most MAX_RW_COUNT (< isize::MAX).
    Ok(unsafe { std::slice::from_raw_parts(p.cast(), len) })
}

/// The length a buffer at `addr` of `len` bytes is viewed with: cut to
/// [`MAX_RW_COUNT`]; one that would end past the address space's end is
/// `EFAULT` (no object does).
fn view_len(addr: usize, len: usize) -> Res<usize> {
    let len = len.min(MAX_RW_COUNT);
    addr.checked_add(len).map(|_| len).ok_or(libc::EFAULT)
}

/// A buffer to read into: null, or one that would end past the address
/// space's end, is `EFAULT`; any length (even above `SSIZE_MAX`, as Linux's
/// `recv`) is cut to [`MAX_RW_COUNT`], and the read returns what is queued.
///
/// # Safety
/// `p` points to `len` writable bytes valid for the returned lifetime.
unsafe fn buf_mut<'a>(p: *mut c_void, len: usize) -> Res<&'a mut [u8]> {
    if len == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return Err(libc::EFAULT);
    }
    let len = view_len(p as usize, len)?;
    // SAFETY: caller contract; the length is at most MAX_RW_COUNT (< isize::MAX).
    Ok(unsafe { std::slice::from_raw_parts_mut(p.cast(), len) })
}

/// A `msghdr`'s iovec count: more than `IOV_MAX` (1024) is `EMSGSIZE`, as
/// Linux's `sendmsg`/`recvmsg` (`readv`/`writev` say `EINVAL`).
fn msg_iovcnt(n: usize) -> Res<c_int> {
    if n > 1024 {
        return Err(libc::EMSGSIZE);
    }
    Ok(n as c_int)
}

/// The (base, length) pairs of an iovec array (at most `IOV_MAX` = 1024
/// entries; none when `n` is 0, whatever `iov` is, as Linux), each with the
/// length it is used for: a segment or a total above `SSIZE_MAX` is
/// `EINVAL` (POSIX `readv`/`writev`); the total is then cut to
/// [`MAX_RW_COUNT`] by shortening the last segments (as Linux's
/// `import_iovec`). Up to 8 iovecs without allocating.
///
/// # Safety
/// `iov` points to `n` iovecs.
unsafe fn iov_parts(iov: *const iovec, n: c_int) -> Res<SmallVec<[(*mut c_void, usize); 8]>> {
    let n = usize::try_from(n).ok().filter(|&n| n <= 1024).ok_or(libc::EINVAL)?;
    if n == 0 {
        return Ok(SmallVec::new());
    }
    if iov.is_null() {
        return Err(libc::EFAULT);
    }
    // SAFETY: caller contract: n iovecs at a non-null address.
    let v = unsafe { std::slice::from_raw_parts(iov, n) };
    v.iter().try_fold(0usize, |t, e| t.checked_add(e.iov_len).filter(|&t| t <= SSIZE_MAX)).ok_or(libc::EINVAL)?;
    let mut left = MAX_RW_COUNT;
    Ok(v.iter()
        .map(|e| {
            let len = e.iov_len.min(left);
            left -= len;
            (e.iov_base, len)
        })
        .collect())
}

/// The buffers of an iovec array to send from ([`iov_parts`]; a null
/// segment with a length is `EFAULT`).
///
/// # Safety
/// `iov` points to `n` iovecs, each readable for its length.
unsafe fn iovs<'a>(iov: *const iovec, n: c_int) -> Res<Vec<&'a [u8]>> {
    // SAFETY: caller contract.
    let parts = unsafe { iov_parts(iov, n) }?;
    // SAFETY: caller contract; each length is at most its segment's.
    parts.into_iter().map(|(p, len)| unsafe { buf(p, len) }).collect()
}

/// The buffers of an iovec array to read into ([`iov_parts`]; a null
/// segment with a length, or one whose end would pass the end of the
/// address space, is `EFAULT`). Segments that overlap are `EINVAL` — a
/// difference from Linux, which fills them in order (a later segment
/// overwriting the overlap): two writable views of the same bytes cannot
/// be made, so the check runs on the addresses before any view is.
///
/// # Safety
/// `iov` points to `n` iovecs, each writable for its length.
unsafe fn iovs_mut<'a>(iov: *const iovec, n: c_int) -> Res<Vec<&'a mut [u8]>> {
    // SAFETY: caller contract.
    let parts = unsafe { iov_parts(iov, n) }?;
    let mut spans: SmallVec<[(usize, usize); 8]> = SmallVec::new();
    for &(p, len) in parts.iter().filter(|&&(_, len)| len > 0) {
        if p.is_null() {
            return Err(libc::EFAULT);
        }
        let a = p as usize;
        spans.push((a, a.checked_add(len).ok_or(libc::EFAULT)?));
    }
    spans.sort_unstable();
    if spans.windows(2).any(|w| w[1].0 < w[0].1) {
        return Err(libc::EINVAL);
    }
    // SAFETY: caller contract; each length is at most its segment's, and
    // no two non-empty segments overlap.
    parts.into_iter().map(|(p, len)| unsafe { buf_mut(p, len) }).collect()
}

/// `ssize_t ff_read(int d, void *buf, size_t nbytes)`: 0 at end of stream,
/// -1 with `EAGAIN` when nothing is queued. `nbytes` 0 returns 0 for any
/// open descriptor and consumes nothing (Linux's `read` does not reach the
/// protocol for an empty transfer, nor does FreeBSD's `soreceive`; only
/// `recv`/`recvfrom`/`recvmsg` of 0 bytes do).
///
/// # Safety
/// `buf` points to `nbytes` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn ff_read(d: c_int, b: *mut c_void, nbytes: usize) -> isize {
    if nbytes == 0 {
        return empty_read("ff_read", d);
    }
    // SAFETY: caller contract.
    unsafe { ff_recvfrom(d, b, nbytes, 0, std::ptr::null_mut(), std::ptr::null_mut()) }
}

/// A `read`/`readv` of no bytes: 0 for an open descriptor (`EBADF`
/// otherwise), nothing consumed, no error taken.
fn empty_read(name: &'static str, fd: c_int) -> isize {
    entry(name, -1, || with_lib(|lib| lib.file(fd).map(|_| 0)))
}

/// `ssize_t ff_readv(int fd, const struct iovec *iov, int iovcnt)`.
///
/// # Safety
/// `iov` holds `iovcnt` valid iovecs.
#[no_mangle]
pub unsafe extern "C" fn ff_readv(fd: c_int, iov: *const iovec, iovcnt: c_int) -> isize {
    entry("ff_readv", -1, || {
        with_lib(|lib| {
            // SAFETY: caller contract.
            let mut v = unsafe { iovs_mut(iov, iovcnt) }?;
            if v.iter().all(|b| b.is_empty()) {
                // As `ff_read` of 0 bytes: nothing reaches the socket.
                return lib.file(fd).map(|_| 0);
            }
            read_into(lib, fd, &mut v, false).map(|(n, _, _)| n as isize)
        })
    })
}

/// `ssize_t ff_recv(int s, void *buf, size_t len, int flags)` (`MSG_PEEK`,
/// `MSG_DONTWAIT` honoured, and on UDP `MSG_TRUNC`: the datagram's whole
/// length is returned, as Linux does; others ignored).
///
/// # Safety
/// `buf` points to `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn ff_recv(s: c_int, b: *mut c_void, len: usize, flags: c_int) -> isize {
    // SAFETY: caller contract.
    unsafe { ff_recvfrom(s, b, len, flags, std::ptr::null_mut(), std::ptr::null_mut()) }
}

/// `ssize_t ff_recvfrom(int s, void *buf, size_t len, int flags, struct
/// linux_sockaddr *from, socklen_t *fromlen)`.
///
/// # Safety
/// `buf` points to `len` writable bytes; `from`/`fromlen` null or valid.
#[no_mangle]
pub unsafe extern "C" fn ff_recvfrom(
    s: c_int,
    b: *mut c_void,
    len: usize,
    flags: c_int,
    from: *mut c_void,
    fromlen: *mut socklen_t,
) -> isize {
    entry("ff_recvfrom", -1, || {
        with_lib(|lib| {
            // SAFETY: caller contract.
            let mut v = [unsafe { buf_mut(b, len) }?];
            let (n, whole, peer) = read_into(lib, s, &mut v, flags & libc::MSG_PEEK != 0)?;
            if let Some(p) = peer {
                // SAFETY: caller contract.
                unsafe { write_addr(p, from, fromlen) }?;
            }
            Ok(if flags & libc::MSG_TRUNC != 0 && peer.is_some() { whole } else { n } as isize)
        })
    })
}

/// `ssize_t ff_recvmsg(int s, struct msghdr *msg, int flags)` (no control
/// data; `msg_flags` has `MSG_TRUNC` when a datagram did not fit, and the
/// `MSG_TRUNC` flag returns its whole length, as Linux's UDP does).
///
/// # Safety
/// `msg` is a valid msghdr with valid buffers.
#[no_mangle]
pub unsafe extern "C" fn ff_recvmsg(s: c_int, msg: *mut msghdr, flags: c_int) -> isize {
    entry("ff_recvmsg", -1, || {
        with_lib(|lib| {
            if msg.is_null() {
                return Err(libc::EFAULT);
            }
            // SAFETY: caller contract.
            let m = unsafe { &mut *msg };
            // SAFETY: caller contract.
            let mut v = unsafe { iovs_mut(m.msg_iov, msg_iovcnt(m.msg_iovlen)?) }?;
            let (n, whole, peer) = read_into(lib, s, &mut v, flags & libc::MSG_PEEK != 0)?;
            if let Some(p) = peer {
                if !m.msg_name.is_null() {
                    // SAFETY: msg_name holds msg_namelen bytes.
                    unsafe { write_addr(p, m.msg_name, &mut m.msg_namelen) }?;
                }
            } else {
                m.msg_namelen = 0;
            }
            m.msg_controllen = 0;
            m.msg_flags = if whole > n { libc::MSG_TRUNC } else { 0 };
            Ok(if flags & libc::MSG_TRUNC != 0 && peer.is_some() { whole } else { n } as isize)
        })
    })
}

/// `ssize_t ff_write(int fd, const void *buf, size_t nbytes)`: copies into
/// the send queue and returns what fit (-1 `EAGAIN` if nothing did). When
/// `buf` is the `bsd_mbuf` of a `struct ff_zc_mbuf` filled by
/// `ff_zc_mbuf_write`, the chain is sent without a copy (see `ff_api.h`); a
/// handle whose chain was already sent in full is refused (`EINVAL`).
///
/// # Safety
/// `buf` points to `nbytes` readable bytes (or is a live `bsd_mbuf`).
#[no_mangle]
pub unsafe extern "C" fn ff_write(fd: c_int, b: *const c_void, nbytes: usize) -> isize {
    entry("ff_write", -1, || {
        with_lib(|lib| {
            if lib.zc_handles.owns(b as usize) {
                return crate::zc::write_chain(lib, fd, b as usize, nbytes);
            }
            // SAFETY: caller contract.
            let data = unsafe { buf(b, nbytes) }?;
            write_from(lib, fd, &[data], None).map(|n| n as isize)
        })
    })
}

/// `ssize_t ff_writev(int fd, const struct iovec *iov, int iovcnt)`.
///
/// # Safety
/// `iov` holds `iovcnt` valid iovecs.
#[no_mangle]
pub unsafe extern "C" fn ff_writev(fd: c_int, iov: *const iovec, iovcnt: c_int) -> isize {
    entry("ff_writev", -1, || {
        with_lib(|lib| {
            // SAFETY: caller contract.
            let v = unsafe { iovs(iov, iovcnt) }?;
            write_from(lib, fd, &v, None).map(|n| n as isize)
        })
    })
}

/// `ssize_t ff_send(int s, const void *buf, size_t len, int flags)`.
///
/// # Safety
/// `buf` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn ff_send(s: c_int, b: *const c_void, len: usize, flags: c_int) -> isize {
    // SAFETY: caller contract.
    unsafe { ff_sendto(s, b, len, flags, std::ptr::null(), 0) }
}

/// `ssize_t ff_sendto(int s, const void *buf, size_t len, int flags, const
/// struct linux_sockaddr *to, socklen_t tolen)` (`to` is for UDP; TCP ignores it).
///
/// # Safety
/// `buf` points to `len` readable bytes; `to` null or `tolen` bytes.
#[no_mangle]
pub unsafe extern "C" fn ff_sendto(
    s: c_int,
    b: *const c_void,
    len: usize,
    flags: c_int,
    to: *const c_void,
    tolen: socklen_t,
) -> isize {
    entry("ff_sendto", -1, || {
        with_lib(|lib| {
            if flags & libc::MSG_OOB != 0 {
                // Urgent data is received in line but never sent.
                return Err(libc::EOPNOTSUPP);
            }
            // SAFETY: caller contract.
            let data = unsafe { buf(b, len) }?;
            // SAFETY: caller contract.
            let to = if to.is_null() { None } else { Some(unsafe { read_addr(to, tolen) }?) };
            write_from(lib, s, &[data], to).map(|n| n as isize)
        })
    })
}

/// `ssize_t ff_sendmsg(int s, const struct msghdr *msg, int flags)` (no control data).
///
/// # Safety
/// `msg` is a valid msghdr with valid buffers.
#[no_mangle]
pub unsafe extern "C" fn ff_sendmsg(s: c_int, msg: *const msghdr, flags: c_int) -> isize {
    entry("ff_sendmsg", -1, || {
        with_lib(|lib| {
            if msg.is_null() {
                return Err(libc::EFAULT);
            }
            if flags & libc::MSG_OOB != 0 {
                return Err(libc::EOPNOTSUPP);
            }
            // SAFETY: caller contract.
            let m = unsafe { &*msg };
            if !m.msg_control.is_null() && m.msg_controllen > 0 {
                // No control message (SCM_RIGHTS, IP_PKTINFO, ...) is supported.
                return Err(libc::EINVAL);
            }
            // SAFETY: caller contract.
            let v = unsafe { iovs(m.msg_iov, msg_iovcnt(m.msg_iovlen)?) }?;
            let to = if m.msg_name.is_null() {
                None
            } else {
                // SAFETY: msg_name holds msg_namelen bytes.
                Some(unsafe { read_addr(m.msg_name, m.msg_namelen) }?)
            };
            write_from(lib, s, &v, to).map(|n| n as isize)
        })
    })
}

/// `ff_fcntl(fd, cmd, arg)` (the header's variadic `ff_fcntl` calls this):
/// `F_GETFL` gives `O_RDWR | O_NONBLOCK`; `F_SETFL` accepts flags with
/// `O_NONBLOCK` and refuses clearing it (`EINVAL`: zcstack never blocks);
/// `F_GETFD`/`F_SETFD` are accepted (no exec across a DPDK process).
#[no_mangle]
pub extern "C" fn zcstack_fcntl(fd: c_int, cmd: c_int, arg: c_long) -> c_int {
    entry("ff_fcntl", -1, || {
        with_lib(|lib| {
            lib.file(fd)?;
            match cmd {
                libc::F_GETFL => Ok(libc::O_RDWR | libc::O_NONBLOCK),
                libc::F_SETFL if arg as c_int & libc::O_NONBLOCK != 0 => Ok(0),
                libc::F_SETFL => {
                    tracing::warn!(fd, "ff_fcntl: blocking sockets are not supported (F_SETFL without O_NONBLOCK)");
                    Err(libc::EINVAL)
                }
                libc::F_GETFD => Ok(libc::FD_CLOEXEC),
                libc::F_SETFD => Ok(0),
                _ => Err(libc::EINVAL),
            }
        })
    })
}

/// `ff_ioctl(fd, request, argp)` (the header's variadic `ff_ioctl` calls
/// this): `FIONBIO` (an `int`: non-zero accepted, 0 refused with `EINVAL`)
/// and `FIONREAD` (bytes readable, or a listener's queued connections).
///
/// # Safety
/// `argp` points to an `int`.
#[no_mangle]
pub unsafe extern "C" fn zcstack_ioctl(fd: c_int, request: libc::c_ulong, argp: *mut c_void) -> c_int {
    entry("ff_ioctl", -1, || {
        with_lib(|lib| {
            let id = lib.file_id(fd)?;
            if argp.is_null() {
                return Err(libc::EFAULT);
            }
            match request {
                libc::FIONBIO => {
                    // SAFETY: caller contract: an int.
                    if unsafe { argp.cast::<c_int>().read_unaligned() } == 0 {
                        tracing::warn!(fd, "ff_ioctl: blocking sockets are not supported (FIONBIO 0)");
                        return Err(libc::EINVAL);
                    }
                    Ok(0)
                }
                libc::FIONREAD => {
                    let n = lib.ready(id).ok_or(libc::ENOTTY)?.nread;
                    // SAFETY: caller contract: an int.
                    unsafe { argp.cast::<c_int>().write_unaligned(n.min(c_int::MAX as usize) as c_int) };
                    Ok(0)
                }
                _ => Err(libc::ENOTTY),
            }
        })
    })
}

/// `int ff_dup(int oldfd)`: a new descriptor for the same socket (the socket
/// closes with its last descriptor).
#[no_mangle]
pub extern "C" fn ff_dup(oldfd: c_int) -> c_int {
    entry("ff_dup", -1, || with_lib(|lib| lib.dup(oldfd, None)))
}

/// `int ff_dup2(int oldfd, int newfd)`: `newfd` (closed first if open) names
/// `oldfd`'s socket.
#[no_mangle]
pub extern "C" fn ff_dup2(oldfd: c_int, newfd: c_int) -> c_int {
    entry("ff_dup2", -1, || with_lib(|lib| lib.dup(oldfd, Some(newfd))))
}

/// `int ff_gettimeofday(struct timeval *tv, struct timezone *tz)`: the
/// system's wall clock (`tz` is filled with zeros when given).
///
/// # Safety
/// `tv`/`tz` are null or valid.
#[no_mangle]
pub unsafe extern "C" fn ff_gettimeofday(tv: *mut libc::timeval, tz: *mut c_void) -> c_int {
    entry("ff_gettimeofday", -1, || {
        if tv.is_null() {
            return Err(libc::EFAULT);
        }
        // SAFETY: timespec is plain data.
        let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
        // SAFETY: valid out pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
        // SAFETY: tv is valid (checked above); tz is null or a struct timezone (8 bytes).
        unsafe {
            (*tv).tv_sec = ts.tv_sec;
            (*tv).tv_usec = ts.tv_nsec / 1000;
            if !tz.is_null() {
                tz.cast::<[c_int; 2]>().write_unaligned([0, 0]);
            }
        }
        Ok(0)
    })
}

/// `int ff_fdisused(int fd)`: 1 if `fd` is a zcstack descriptor.
#[no_mangle]
pub extern "C" fn ff_fdisused(fd: c_int) -> c_int {
    entry("ff_fdisused", 0, || with_lib(|lib| Ok(c_int::from(lib.file_id(fd).is_ok()))))
}

/// `int ff_getmaxfd(void)`: the largest descriptor number zcstack hands out.
#[no_mangle]
pub extern "C" fn ff_getmaxfd() -> c_int {
    crate::state::MAX_FDS as c_int - 1
}
