//! `StopHandle::stop_on_signals` (issue 13, the tail): a SIGTERM stops the
//! loop, and nothing is left running beside the loop to notice it — the
//! watcher thread it used to start inherited the lcore's CPU and woke up
//! every 20 ms, preempting the busy-polling loop 50 times a second. Alone
//! in its test binary: the signal flag is process-wide.

use dpdk_glue::StopHandle;

/// Threads of this process (`/proc/self/task`).
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").expect("procfs").count()
}

#[test]
fn sigterm_stops_the_loop_without_a_watcher_thread() {
    let h = StopHandle::default();
    let other = h.clone();
    let before = threads();
    h.stop_on_signals();
    assert_eq!(threads(), before, "stop_on_signals started a thread");
    assert!(!h.stopped() && !other.stopped(), "no signal yet");
    // SAFETY: raise only sends the signal to this thread; the handler
    // installed above only stores to an atomic.
    assert_eq!(unsafe { libc::raise(libc::SIGTERM) }, 0);
    assert!(h.stopped(), "a SIGTERM stops the loop");
    assert!(other.stopped(), "every clone of the handle sees it");
    // A handle that never asked for signals is not stopped by one.
    assert!(!StopHandle::default().stopped());
    // An explicit stop still works on its own.
    let s = StopHandle::default();
    s.stop();
    assert!(s.stopped());
}
