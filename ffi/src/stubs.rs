//! The rest of F-Stack's `ff_api.h`: what zcstack cannot honour exists and
//! fails with `ENOSYS` (documented in the header), so programs link.

use std::ffi::{c_int, c_uint, c_void};

use crate::errno::set_errno;

macro_rules! enosys {
    ($($(#[$m:meta])* fn $name:ident($($a:ident: $t:ty),*);)*) => {$(
        $(#[$m])*
        #[no_mangle]
        pub extern "C" fn $name($($a: $t),*) -> c_int {
            $(let _ = $a;)*
            tracing::debug!(function = stringify!($name), "not implemented by zcstack: ENOSYS");
            set_errno(libc::ENOSYS);
            -1
        }
    )*};
}

enosys! {
    /// `ff_sysctl`: FreeBSD sysctls do not exist (zcstack reads `[freebsd.sysctl]` at start).
    fn ff_sysctl(name: *const c_int, namelen: c_uint, oldp: *mut c_void, oldlenp: *mut usize, newp: *const c_void, newlen: usize);
    /// `ff_route_ctl`: one interface, no routing table.
    fn ff_route_ctl(req: c_int, flag: c_int, dst: *mut c_void, gw: *mut c_void, netmask: *mut c_void);
    /// `ff_rtioctl`.
    fn ff_rtioctl(fib: c_int, data: *mut c_void, plen: *mut c_uint, maxlen: c_uint);
    /// `ff_ngctl`: no netgraph.
    fn ff_ngctl(cmd: c_int, data: *mut c_void);
    /// `ff_setsockopt_freebsd`: FreeBSD option numbers; use `ff_setsockopt`.
    fn ff_setsockopt_freebsd(s: c_int, level: c_int, optname: c_int, optval: *const c_void, optlen: c_uint);
    /// `ff_getsockopt_freebsd`.
    fn ff_getsockopt_freebsd(s: c_int, level: c_int, optname: c_int, optval: *mut c_void, optlen: *mut c_uint);
    /// `ff_ioctl_freebsd` (the header's variadic wrapper calls this).
    fn zcstack_ioctl_freebsd(fd: c_int, request: libc::c_ulong, argp: *mut c_void);
    /// `ff_pthread_create`: one stack per lcore thread; no thread adapters.
    fn ff_pthread_create(thread: *mut libc::pthread_t, attr: *const c_void, start: *mut c_void, arg: *mut c_void);
    /// `ff_pthread_join`.
    fn ff_pthread_join(thread: libc::pthread_t, retval: *mut *mut c_void);
}

/// `void ff_regist_pcblddr_fun(pcblddr_func_t func)`: one local address;
/// ignored (logged).
#[no_mangle]
pub extern "C" fn ff_regist_pcblddr_fun(_func: *mut c_void) {
    tracing::warn!("ff_regist_pcblddr_fun: zcstack has one local address; ignored");
}

/// `void ff_get_traffic(void *buffer)`: not available; the buffer's 32
/// bytes are zeroed (null is ignored).
///
/// # Safety
/// `buffer` is null or has 32 writable bytes.
#[no_mangle]
pub unsafe extern "C" fn ff_get_traffic(buffer: *mut c_void) {
    if !buffer.is_null() {
        // SAFETY: 32 writable bytes per F-Stack's contract.
        unsafe { std::ptr::write_bytes(buffer.cast::<u8>(), 0, 32) };
    }
}
