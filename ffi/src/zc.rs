//! Zero copy: `struct ff_zc_mbuf`, `ff_zc_mbuf_get`, `ff_zc_mbuf_write` and
//! `ff_write` of `m.bsd_mbuf` (the chain is queued by reference, no copy).
//!
//! `bsd_mbuf` is a handle naming a chain zcstack keeps until it is sent in
//! full; a partial send leaves the unsent tail in it for the next `ff_write`
//! (F-Stack crashes there, its issue #712).
//!
//! Handles are addresses inside one reserved `PROT_NONE` mapping
//! ([`Handles`]): no user buffer can lie there, so `ff_write` tells a chain
//! from a plain buffer by address range alone, and a handle whose chain was
//! sent and freed (or never existed) is refused with `EINVAL` — it is never
//! read as a buffer. Each handle is a fresh sequence number (the
//! generation), so a stale handle does not name a later chain until
//! [`HANDLE_SPACE`] more chains were made.

use std::ffi::{c_char, c_int, c_void};

use crate::errno;
use crate::state::{entry, with_lib, Kind, Lib, Res, TcpSt};

/// Chains alive at once (`ENOBUFS` past it: chains got and never written).
pub const MAX_LIVE_CHAINS: usize = 65_536;

/// Bytes of address space reserved for handles (never readable; a handle
/// value is reused only after this many chains, skipping live ones).
pub const HANDLE_SPACE: usize = 1 << 30;

/// The reserved `PROT_NONE` range chain handles are drawn from.
#[derive(Debug)]
pub struct Handles {
    base: usize,
    next: usize,
}

impl Handles {
    /// Reserves [`HANDLE_SPACE`] bytes of inaccessible address space
    /// (`ENOMEM` if the kernel refuses).
    pub fn new() -> Result<Self, c_int> {
        // SAFETY: an anonymous private PROT_NONE reservation at an address
        // the kernel picks; it touches no existing mapping.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                HANDLE_SPACE,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(libc::ENOMEM);
        }
        Ok(Self { base: p as usize, next: 0 })
    }

    /// True if `addr` lies in the reserved range (a chain handle, live or not).
    pub fn owns(&self, addr: usize) -> bool {
        addr.wrapping_sub(self.base) < HANDLE_SPACE
    }

    /// A handle not in `live` (the next generation, wrapping in the range).
    fn fresh(&mut self, live: &rustc_hash::FxHashMap<usize, zcstack::FfZcMbuf>) -> usize {
        loop {
            // Start at offset 1 so no handle equals the mapping's base.
            self.next = self.next % (HANDLE_SPACE - 1) + 1;
            let h = self.base + self.next;
            if !live.contains_key(&h) {
                return h;
            }
        }
    }
}

impl Drop for Handles {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the reservation made in `new`.
        unsafe { libc::munmap(self.base as *mut c_void, HANDLE_SPACE) };
    }
}

/// F-Stack's `struct ff_zc_mbuf`.
#[repr(C)]
#[derive(Debug)]
pub struct FfZcMbufC {
    /// The chain (zcstack's handle).
    pub bsd_mbuf: *mut c_void,
    /// Same as `bsd_mbuf` (F-Stack: the current mbuf).
    pub bsd_mbuf_off: *mut c_void,
    /// Bytes written so far.
    pub off: c_int,
    /// Bytes reserved.
    pub len: c_int,
}

/// `int ff_zc_mbuf_get(struct ff_zc_mbuf *m, int len)`: reserves `len`
/// bytes of page buffers (`EINVAL` for a null `m` or `len <= 0`, `ENOBUFS`
/// when page memory is short).
///
/// # Safety
/// `m` is null or valid.
#[no_mangle]
pub unsafe extern "C" fn ff_zc_mbuf_get(m: *mut FfZcMbufC, len: c_int) -> c_int {
    entry("ff_zc_mbuf_get", -1, || {
        with_lib(|lib| {
            if m.is_null() || len <= 0 {
                return Err(libc::EINVAL);
            }
            if lib.zc.len() >= MAX_LIVE_CHAINS {
                return Err(libc::ENOBUFS);
            }
            let mut b = zcstack::FfZcMbuf::default();
            lib.stack().ff_zc_mbuf_get(&mut b, len as usize).map_err(errno::zc)?;
            let key = lib.zc_handles.fresh(&lib.zc);
            lib.zc.insert(key, b);
            // SAFETY: m is valid (checked non-null; caller contract).
            unsafe {
                m.write(FfZcMbufC { bsd_mbuf: key as *mut c_void, bsd_mbuf_off: key as *mut c_void, off: 0, len });
            }
            Ok(0)
        })
    })
}

/// `int ff_zc_mbuf_write(struct ff_zc_mbuf *m, const char *data, int len)`:
/// appends `len` bytes (may be called repeatedly; the total stays within
/// the reserved length, else `EINVAL` and nothing is written).
///
/// # Safety
/// `m` is valid; `data` points to `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn ff_zc_mbuf_write(m: *mut FfZcMbufC, data: *const c_char, len: c_int) -> c_int {
    entry("ff_zc_mbuf_write", -1, || {
        with_lib(|lib| {
            if m.is_null() || len < 0 || (data.is_null() && len > 0) {
                return Err(libc::EINVAL);
            }
            // SAFETY: m valid per contract.
            let key = unsafe { (*m).bsd_mbuf } as usize;
            let mut b = lib.zc.remove(&key).ok_or(libc::EINVAL)?;
            let bytes = if len == 0 {
                &[][..]
            } else {
                // SAFETY: data holds len bytes per contract (checked non-null above).
                unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len as usize) }
            };
            let r = lib.stack().ff_zc_mbuf_write(&mut b, bytes).map_err(errno::zc);
            let off = b.off;
            lib.zc.insert(key, b);
            r?;
            // SAFETY: m valid per contract.
            unsafe { (*m).off = off as c_int };
            Ok(0)
        })
    })
}

/// `int ff_zc_mbuf_read(struct ff_zc_mbuf *m, const char *data, int len)`:
/// not implemented by F-Stack either — `ENOSYS`.
#[no_mangle]
pub extern "C" fn ff_zc_mbuf_read(_m: *mut FfZcMbufC, _data: *const c_char, _len: c_int) -> c_int {
    crate::errno::set_errno(libc::ENOSYS);
    -1
}

/// `ff_write(fd, m.bsd_mbuf, nbytes)`: queues the chain's bytes by reference.
/// `nbytes` must be the bytes still unsent in it (`EINVAL` otherwise, and
/// for a handle whose chain was already sent in full and freed).
/// Returns what was queued; the rest stays in the chain for the next call
/// (`EAGAIN` when nothing fit). The chain is freed once fully queued.
pub fn write_chain(lib: &mut Lib, fd: c_int, key: usize, nbytes: usize) -> Res<isize> {
    let h = match lib.file(fd)?.kind {
        Kind::Tcp { st: TcpSt::Conn(h), .. } => h,
        Kind::Tcp { .. } | Kind::Udp { .. } => return Err(libc::ENOTCONN),
        _ => return Err(libc::EINVAL),
    };
    let mut b = lib.zc.remove(&key).ok_or(libc::EINVAL)?;
    if nbytes != b.off || nbytes == 0 {
        lib.zc.insert(key, b);
        return Err(libc::EINVAL);
    }
    let r = lib.stack().ff_zc_write(h, &mut b);
    if b.buf.is_some() {
        lib.zc.insert(key, b);
    }
    match r {
        Ok(n) => Ok(n as isize),
        Err(e) => Err(errno::tcp(e)),
    }
}
