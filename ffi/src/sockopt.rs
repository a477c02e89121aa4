//! Socket options: `ff_setsockopt` and `ff_getsockopt` with Linux's
//! levels and names (`SOL_SOCKET`, `IPPROTO_TCP`), mapped to the engine's
//! [`SockOpt`]; a socket without an engine handle yet keeps what was set.

use std::ffi::{c_int, c_long, c_void};

use libc::socklen_t;
use zcstack::tcp::sockopt::{SockOpt, SockOptName, SocketOptions};
use zcstack::Duration;

use crate::errno;
use crate::state::{entry, with_lib, Kind, Res, TcpSt};

fn int_opt(optval: *const c_void, optlen: socklen_t) -> Res<c_int> {
    if optval.is_null() {
        return Err(libc::EFAULT);
    }
    if (optlen as usize) < std::mem::size_of::<c_int>() {
        return Err(libc::EINVAL);
    }
    // SAFETY: at least an int is readable (checked above).
    Ok(unsafe { optval.cast::<c_int>().read_unaligned() })
}

/// The engine's option for a Linux (level, name, value).
fn to_opt(level: c_int, name: c_int, optval: *const c_void, optlen: socklen_t) -> Res<SockOpt> {
    Ok(match (level, name) {
        (libc::SOL_SOCKET, libc::SO_REUSEADDR) => SockOpt::ReuseAddr(int_opt(optval, optlen)? != 0),
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => SockOpt::KeepAlive(int_opt(optval, optlen)? != 0),
        (libc::SOL_SOCKET, libc::SO_SNDBUF) => SockOpt::SendBuffer(int_opt(optval, optlen)?.max(1) as usize),
        (libc::SOL_SOCKET, libc::SO_RCVBUF) => SockOpt::RecvBuffer(int_opt(optval, optlen)?.max(1) as usize),
        (libc::SOL_SOCKET, libc::SO_LINGER) => {
            if optval.is_null() {
                return Err(libc::EFAULT);
            }
            if (optlen as usize) < std::mem::size_of::<libc::linger>() {
                return Err(libc::EINVAL);
            }
            // SAFETY: a whole struct linger is readable (checked above).
            let l = unsafe { optval.cast::<libc::linger>().read_unaligned() };
            SockOpt::Linger((l.l_onoff != 0).then(|| Duration::from_secs(l.l_linger.max(0) as u64)))
        }
        (libc::SOL_SOCKET, libc::SO_ERROR) => return Err(libc::ENOPROTOOPT),
        (libc::IPPROTO_TCP, libc::TCP_NODELAY) => SockOpt::NoDelay(int_opt(optval, optlen)? != 0),
        (libc::IPPROTO_TCP, libc::TCP_MAXSEG) => {
            SockOpt::MaxSeg(u16::try_from(int_opt(optval, optlen)?).map_err(|_| libc::EINVAL)?)
        }
        _ => return Err(libc::ENOPROTOOPT),
    })
}

/// `int ff_setsockopt(int s, int level, int optname, const void *optval,
/// socklen_t optlen)` with Linux numbers: `SOL_SOCKET` `SO_REUSEADDR`,
/// `SO_KEEPALIVE`, `SO_LINGER`, `SO_SNDBUF`, `SO_RCVBUF`; `IPPROTO_TCP`
/// `TCP_NODELAY`, `TCP_MAXSEG`. Others: `ENOPROTOOPT`. Before
/// listen/connect the options are kept and applied then (accepted
/// connections inherit their listener's). UDP: `SO_RCVBUF` only, the rest
/// are accepted and ignored.
///
/// # Safety
/// `optval` points to `optlen` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn ff_setsockopt(
    s: c_int,
    level: c_int,
    optname: c_int,
    optval: *const c_void,
    optlen: socklen_t,
) -> c_int {
    entry("ff_setsockopt", -1, || {
        with_lib(|lib| {
            let opt = to_opt(level, optname, optval, optlen)?;
            opt.check().map_err(errno::tcp)?;
            let now = lib.now();
            match &mut lib.file(s)?.kind {
                Kind::Tcp { st: TcpSt::Fresh, opts, .. } => {
                    opts.set(opt);
                    Ok(0)
                }
                Kind::Tcp { st: TcpSt::Conn(h) | TcpSt::Listen(h), opts, .. } => {
                    let h = *h;
                    opts.set(opt);
                    lib.stack().tcp_set_option(h, opt, now).map_err(errno::tcp).map(|()| 0)
                }
                Kind::Udp { h, .. } => {
                    if let (SockOpt::RecvBuffer(n), Some(h)) = (opt, *h) {
                        lib.stack().udp_set_recv_buffer(h, n).map_err(errno::udp)?;
                    }
                    Ok(0)
                }
                _ => Err(libc::ENOTSOCK),
            }
        })
    })
}

/// `int ff_getsockopt(int s, int level, int optname, void *optval,
/// socklen_t *optlen)`: the options of [`ff_setsockopt`] plus `SO_ERROR`
/// (reading it clears the error) and `SO_TYPE`.
///
/// # Safety
/// `optval` points to `*optlen` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn ff_getsockopt(
    s: c_int,
    level: c_int,
    optname: c_int,
    optval: *mut c_void,
    optlen: *mut socklen_t,
) -> c_int {
    entry("ff_getsockopt", -1, || {
        with_lib(|lib| {
            if optval.is_null() || optlen.is_null() {
                return Err(libc::EFAULT);
            }
            // SAFETY: optlen is valid (checked above).
            let room = unsafe { *optlen };
            // Linux: a negative length (as an int) is EINVAL.
            if room > c_int::MAX as socklen_t {
                return Err(libc::EINVAL);
            }
            let room = room as usize;
            let name = match (level, optname) {
                (libc::SOL_SOCKET, libc::SO_TYPE) => None,
                (libc::SOL_SOCKET, libc::SO_REUSEADDR) => Some(SockOptName::ReuseAddr),
                (libc::SOL_SOCKET, libc::SO_KEEPALIVE) => Some(SockOptName::KeepAlive),
                (libc::SOL_SOCKET, libc::SO_SNDBUF) => Some(SockOptName::SendBuffer),
                (libc::SOL_SOCKET, libc::SO_RCVBUF) => Some(SockOptName::RecvBuffer),
                (libc::SOL_SOCKET, libc::SO_LINGER) => Some(SockOptName::Linger),
                (libc::SOL_SOCKET, libc::SO_ERROR) => Some(SockOptName::Error),
                (libc::IPPROTO_TCP, libc::TCP_NODELAY) => Some(SockOptName::NoDelay),
                (libc::IPPROTO_TCP, libc::TCP_MAXSEG) => Some(SockOptName::MaxSeg),
                _ => return Err(libc::ENOPROTOOPT),
            };
            let (is_tcp, handle, opts) = match &lib.file(s)?.kind {
                Kind::Tcp { st: TcpSt::Conn(h) | TcpSt::Listen(h), opts, .. } => (true, Some(*h), *opts),
                Kind::Tcp { opts, .. } => (true, None, *opts),
                Kind::Udp { .. } => (false, None, SocketOptions::default()),
                _ => return Err(libc::ENOTSOCK),
            };
            let val: c_long = match name {
                None => c_long::from(if is_tcp { libc::SOCK_STREAM } else { libc::SOCK_DGRAM }),
                Some(n) => {
                    let v = match handle {
                        Some(h) => lib.stack().tcp_get_option(h, n).map_err(errno::tcp)?,
                        None => fresh_value(n, &opts),
                    };
                    match v {
                        SockOpt::SendBuffer(b) | SockOpt::RecvBuffer(b) => b.min(c_int::MAX as usize) as c_long,
                        SockOpt::NoDelay(b) | SockOpt::KeepAlive(b) | SockOpt::ReuseAddr(b) => c_long::from(b),
                        SockOpt::MaxSeg(m) => c_long::from(m),
                        SockOpt::Error(e) => c_long::from(e.map(errno::tcp).unwrap_or(0)),
                        SockOpt::Linger(l) => {
                            let lg = libc::linger {
                                l_onoff: c_int::from(l.is_some()),
                                l_linger: l.map_or(0, |d| (d.total_millis() / 1000).min(c_int::MAX as u64) as c_int),
                            };
                            if room < std::mem::size_of::<libc::linger>() {
                                return Err(libc::EINVAL);
                            }
                            // SAFETY: room for a struct linger (checked above).
                            unsafe {
                                optval.cast::<libc::linger>().write_unaligned(lg);
                                *optlen = std::mem::size_of::<libc::linger>() as socklen_t;
                            }
                            return Ok(0);
                        }
                    }
                }
            };
            // Linux copies min(optlen, sizeof(int)) bytes: a short buffer
            // gets the value truncated, never an error.
            let bytes = (val as c_int).to_ne_bytes();
            let n = room.min(bytes.len());
            // SAFETY: optval has room for `room` >= n bytes (caller contract).
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr(), optval.cast::<u8>(), n);
                *optlen = n as socklen_t;
            }
            Ok(0)
        })
    })
}

/// The value a socket without a handle reports: what was set, or the
/// engine's default (0 for buffers not set: the config's size applies).
fn fresh_value(n: SockOptName, o: &SocketOptions) -> SockOpt {
    match n {
        SockOptName::SendBuffer => SockOpt::SendBuffer(o.send_buffer.unwrap_or(0)),
        SockOptName::RecvBuffer => SockOpt::RecvBuffer(o.recv_buffer.unwrap_or(0)),
        SockOptName::NoDelay => SockOpt::NoDelay(o.nodelay.unwrap_or(false)),
        SockOptName::KeepAlive => SockOpt::KeepAlive(o.keepalive),
        SockOptName::Linger => SockOpt::Linger(o.linger),
        SockOptName::ReuseAddr => SockOpt::ReuseAddr(o.reuse_addr),
        SockOptName::MaxSeg => SockOpt::MaxSeg(o.max_seg.unwrap_or(0)),
        SockOptName::Error => SockOpt::Error(None),
    }
}
