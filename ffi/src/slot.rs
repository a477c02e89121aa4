//! Where the process's one [`Lib`] lives, and who may touch it.
//!
//! Every `ff_*` call reaches the stack through [`with_lib`], so its check
//! is on the path of every request: a compare of `pthread_self()` with the
//! lcore thread's, and a re-entry flag. (A `thread_local!` in a shared
//! library costs a `__tls_get_addr` call per access instead.) The slot is
//! a plain static that only the lcore thread ever reads or writes: every
//! function here checks the caller first.

use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::state::{Lib, Res};

struct Slot {
    lib: UnsafeCell<Option<Lib>>,
    /// A [`with_lib`] body is running (a callback it made re-entered).
    busy: Cell<bool>,
}

// SAFETY: `lib` and `busy` are touched only by the thread whose
// `pthread_self()` is in `OWNER_PT` (each accessor checks first), and that
// value names one live thread at a time: it is set by the thread itself in
// `install` and cleared by its thread-exit guard before the id can be
// reused. So the slot is never shared between threads.
unsafe impl Sync for Slot {}

static SLOT: Slot = Slot { lib: UnsafeCell::new(None), busy: Cell::new(false) };

/// `pthread_self()` of the lcore thread (0: none yet, or it exited).
static OWNER_PT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// On the lcore thread: drops the stack and forgets the owner when the
    /// thread exits (as the thread-local slot did).
    static EXIT_GUARD: ExitGuard = const { ExitGuard };
}

struct ExitGuard;

impl Drop for ExitGuard {
    fn drop(&mut self) {
        if !is_owner() {
            return;
        }
        if !SLOT.busy.get() {
            // SAFETY: the owner thread, nothing borrowed (not busy).
            drop(unsafe { (*SLOT.lib.get()).take() });
        }
        OWNER_PT.store(0, Ordering::Release);
    }
}

#[inline]
fn me() -> usize {
    // SAFETY: pthread_self has no preconditions and cannot fail.
    unsafe { libc::pthread_self() as usize }
}

#[inline]
fn is_owner() -> bool {
    OWNER_PT.load(Ordering::Acquire) == me()
}

/// Makes the calling thread the lcore thread and `lib` its stack (once per
/// process: `ff_init` guarantees it).
pub fn install(lib: Lib) {
    OWNER_PT.store(me(), Ordering::Release);
    EXIT_GUARD.with(|_| {});
    // SAFETY: the owner thread (just set), not inside with_lib (ff_init).
    unsafe { *SLOT.lib.get() = Some(lib) };
}

/// Takes the stack out (`ff_run`'s end); `None` on another thread, inside
/// [`with_lib`], or when there is none.
pub fn take() -> Option<Lib> {
    if !is_owner() || SLOT.busy.get() {
        return None;
    }
    // SAFETY: the owner thread, nothing borrowed (not busy).
    unsafe { (*SLOT.lib.get()).take() }
}

/// Runs `f` with the stack of this process: `EPERM` when called from a
/// thread other than the lcore thread or before `ff_init` (or after `ff_run`
/// returned), `EBUSY` when re-entered from a callback that zcstack is running
/// (a packet dispatcher calling `ff_*`).
#[inline]
pub fn with_lib<R>(f: impl FnOnce(&mut Lib) -> Res<R>) -> Res<R> {
    if !is_owner() {
        return Err(libc::EPERM);
    }
    if SLOT.busy.replace(true) {
        return Err(libc::EBUSY);
    }
    // Clears `busy` on every way out, unwinding included (`entry` catches).
    struct Release;
    impl Drop for Release {
        fn drop(&mut self) {
            SLOT.busy.set(false);
        }
    }
    let _release = Release;
    // SAFETY: the owner thread, and `busy` was clear: no other reference
    // into the slot exists until `_release` drops.
    let lib = unsafe { (*SLOT.lib.get()).as_mut() }.ok_or(libc::EPERM)?;
    f(lib)
}
