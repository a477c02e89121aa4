//! Linux errno values for zcstack's errors, and setting `errno` for C.

use libc::c_int;
use zcstack::udp::UdpError;
use zcstack::{TcpError, ZcError};

/// Sets the calling thread's `errno` (the C library's thread-local).
pub fn set_errno(e: c_int) {
    // SAFETY: __errno_location returns the calling thread's errno slot,
    // valid for the thread's lifetime.
    unsafe { *libc::__errno_location() = e };
}

/// The Linux errno of a TCP error.
pub fn tcp(e: TcpError) -> c_int {
    match e {
        TcpError::WouldBlock => libc::EAGAIN,
        TcpError::InvalidHandle => libc::EBADF,
        TcpError::AddrInUse => libc::EADDRINUSE,
        TcpError::NoPorts | TcpError::RssWrongQueue => libc::EADDRNOTAVAIL,
        TcpError::Refused => libc::ECONNREFUSED,
        TcpError::Reset => libc::ECONNRESET,
        TcpError::TimedOut => libc::ETIMEDOUT,
        TcpError::Shutdown => libc::EPIPE,
        TcpError::NotConnected => libc::ENOTCONN,
        TcpError::InvalidArgument => libc::EINVAL,
        TcpError::NoBuffers => libc::ENOBUFS,
        TcpError::HostUnreachable => libc::EHOSTUNREACH,
    }
}

/// The Linux errno of a UDP error.
pub fn udp(e: UdpError) -> c_int {
    match e {
        UdpError::AddrInUse => libc::EADDRINUSE,
        UdpError::InvalidHandle => libc::EBADF,
        UdpError::WouldBlock => libc::EAGAIN,
        UdpError::TooLarge(_) => libc::EMSGSIZE,
    }
}

/// The Linux errno of a zero-copy buffer error.
pub fn zc(e: ZcError) -> c_int {
    match e {
        ZcError::Empty | ZcError::Overflow { .. } => libc::EINVAL,
        ZcError::NoBuffers { .. } => libc::ENOBUFS,
        ZcError::WouldBlock { .. } => libc::EAGAIN,
        ZcError::InvalidSocket => libc::EBADF,
    }
}
