//! A counting global allocator for the allocation-free tests (the engine's
//! `alloc_free.rs`, dpdk-glue's `alloc_ring.rs`): every call goes to the
//! system allocator; while counting is armed on a thread, its allocations
//! and reallocations are counted (`ZC_ALLOC_TRACE=1` prints a backtrace of
//! each). Include it with `#[path]` in a test binary of its own: it installs
//! itself as that binary's global allocator.
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    /// Counting is on for this thread.
    static ARMED: Cell<bool> = const { Cell::new(false) };
    /// Allocations (and reallocations) counted while armed.
    static COUNT: Cell<u64> = const { Cell::new(0) };
    /// Print a backtrace of each counted allocation (`ZC_ALLOC_TRACE=1`).
    static TRACE: Cell<bool> = const { Cell::new(false) };
}

fn note_alloc() {
    // `try_with`: thread-locals may be gone while a thread exits.
    if !ARMED.try_with(|a| a.get()).unwrap_or(false) {
        return;
    }
    let _ = COUNT.try_with(|c| c.set(c.get() + 1));
    if TRACE.try_with(|t| t.get()).unwrap_or(false) {
        ARMED.with(|a| a.set(false));
        eprintln!("allocation:\n{}", std::backtrace::Backtrace::force_capture());
        ARMED.with(|a| a.set(true));
    }
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counting only touches const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc();
        // SAFETY: same contract as ours, passed through.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_alloc();
        // SAFETY: same contract as ours, passed through.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_alloc();
        // SAFETY: same contract as ours, passed through.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours, passed through.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Starts counting on this thread from zero (tracing if `ZC_ALLOC_TRACE` is set).
pub fn arm() {
    TRACE.with(|t| t.set(std::env::var_os("ZC_ALLOC_TRACE").is_some()));
    COUNT.with(|c| c.set(0));
    ARMED.with(|a| a.set(true));
}

/// Stops counting on this thread; returns what was counted since [`arm`].
pub fn disarm() -> u64 {
    ARMED.with(|a| a.set(false));
    COUNT.with(|c| c.get())
}

/// Runs `f` with counting armed on this thread; returns its allocations.
pub fn count_allocs(f: impl FnOnce()) -> u64 {
    arm();
    f();
    disarm()
}
