//! `ff_log.h`: F-Stack's log calls routed into zcstack's `tracing` output
//! (target `fstack`, field `logtype`). The header's `ff_log`/`ff_vlog`
//! format the message in C and hand it to [`zcstack_log_str`].

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::atomic::{AtomicU32, Ordering};

/// `FF_LOG_DEBUG`: the most detailed level.
const FF_LOG_DEBUG: u32 = 8;
static GLOBAL_LEVEL: AtomicU32 = AtomicU32::new(FF_LOG_DEBUG);
/// Per-logtype levels for logtypes 0..64 (0: unset, the global level applies).
static LEVELS: [AtomicU32; 64] = [const { AtomicU32::new(0) }; 64];

/// Emits one formatted message at F-Stack `level` (1 emerg … 8 debug) for
/// `logtype`; returns 0, or -1 for a null message.
///
/// # Safety
/// `msg` is null or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn zcstack_log_str(level: u32, logtype: u32, msg: *const c_char) -> c_int {
    crate::state::entry("ff_log", -1, || {
        if msg.is_null() {
            return Err(libc::EINVAL);
        }
        let max = LEVELS.get(logtype as usize).map(|l| l.load(Ordering::Relaxed)).filter(|&l| l != 0);
        if level > max.unwrap_or_else(|| GLOBAL_LEVEL.load(Ordering::Relaxed)) {
            return Ok(0);
        }
        // SAFETY: NUL-terminated per contract.
        let m = unsafe { CStr::from_ptr(msg) }.to_string_lossy();
        let m = m.trim_end();
        match level {
            0..=4 => tracing::error!(target: "fstack", logtype, "{m}"),
            5 => tracing::warn!(target: "fstack", logtype, "{m}"),
            6 | 7 => tracing::info!(target: "fstack", logtype, "{m}"),
            _ => tracing::debug!(target: "fstack", logtype, "{m}"),
        }
        Ok(0)
    })
}

/// `void ff_log_set_global_level(uint32_t level)`.
#[no_mangle]
pub extern "C" fn ff_log_set_global_level(level: u32) {
    GLOBAL_LEVEL.store(level, Ordering::Relaxed);
}

/// `int ff_log_set_level(uint32_t logtype, uint32_t level)`: logtypes 0..64
/// (`EINVAL` beyond).
#[no_mangle]
pub extern "C" fn ff_log_set_level(logtype: u32, level: u32) -> c_int {
    match LEVELS.get(logtype as usize) {
        Some(l) => {
            l.store(level, Ordering::Relaxed);
            0
        }
        None => {
            crate::errno::set_errno(libc::EINVAL);
            -1
        }
    }
}

/// `int ff_log_open_set(void)`: the log goes to `tracing` (stderr, filtered
/// by `RUST_LOG`) already; 0.
#[no_mangle]
pub extern "C" fn ff_log_open_set() -> c_int {
    0
}

/// `int ff_log_reset_stream(void *f)`: zcstack logs through `tracing`, not a
/// `FILE *`; the stream is ignored (0).
#[no_mangle]
pub extern "C" fn ff_log_reset_stream(_f: *mut c_void) -> c_int {
    tracing::debug!("ff_log_reset_stream: logs go to tracing's subscriber; stream ignored");
    0
}

/// `int ff_openlog_stream(FILE *f)`: as [`ff_log_reset_stream`].
#[no_mangle]
pub extern "C" fn ff_openlog_stream(f: *mut c_void) -> c_int {
    ff_log_reset_stream(f)
}

/// `void ff_log_close(void)`: nothing to close.
#[no_mangle]
pub extern "C" fn ff_log_close() {}
