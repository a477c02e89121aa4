//! Packet hooks: `ff_regist_packet_dispatcher` (the application sees every
//! received frame first) and `ff_dpdk_raw_packet_send` (a frame built by the
//! application goes straight to the port). The dispatcher runs in a device
//! wrapper around the port, so neither the engine nor dpdk-glue changes.

use std::ffi::{c_int, c_void};

use zcstack::mem::{PageError, PageId, PageMemory};
use zcstack::phy::{Device, DeviceCaps, RxFrame, TxFrame};
use zcstack::Instant;

use crate::state::{entry, with_lib};

/// `typedef int (*dispatch_func_t)(void *data, uint16_t *len, uint16_t queue_id, uint16_t nb_queues)`.
pub type DispatchFn = unsafe extern "C" fn(*mut c_void, *mut u16, u16, u16) -> c_int;

/// F-Stack's `FF_DISPATCH_ERROR`: the frame is dropped.
pub const FF_DISPATCH_ERROR: c_int = -1;
/// F-Stack's `FF_DISPATCH_RESPONSE`: the (possibly rewritten) frame is sent back out.
pub const FF_DISPATCH_RESPONSE: c_int = -2;

/// Counters of the hooks (frames, bytes).
#[derive(Debug, Default, Clone, Copy)]
pub struct HookStats {
    /// Frames the dispatcher passed to the stack.
    pub passed: u64,
    /// Frames it dropped (`FF_DISPATCH_ERROR`) or sent to a queue this
    /// process does not have (counted drops).
    pub dropped: u64,
    /// Frames it answered (`FF_DISPATCH_RESPONSE`).
    pub responded: u64,
    /// Responses or raw sends the port refused (full).
    pub tx_refused: u64,
}

/// The port seen through the packet dispatcher.
pub struct FfDevice<'a> {
    /// The port (behind the `[pcap]` writer when capture is on).
    pub inner: &'a mut dyn Device,
    /// The dispatcher, if one is registered.
    pub dispatcher: Option<DispatchFn>,
    /// Counters.
    pub stats: &'a mut HookStats,
}

/// Largest frame the dispatcher may grow a response to (bytes).
const MAX_FRAME: usize = 9216 + 18;

impl Device for FfDevice<'_> {
    fn caps(&self) -> DeviceCaps {
        self.inner.caps()
    }

    fn receive(&mut self, now: Instant, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize {
        self.receive_frames(now, budget, &mut |f: RxFrame<'_>| match f {
            RxFrame::Borrowed(b) | RxFrame::L4Verified(b) => sink(b),
            RxFrame::Shared(r) => sink(r.bytes()),
        })
    }

    fn receive_frames(&mut self, now: Instant, budget: usize, sink: &mut dyn FnMut(RxFrame<'_>)) -> usize {
        let Some(d) = self.dispatcher else { return self.inner.receive_frames(now, budget, sink) };
        let mut responses: Vec<Vec<u8>> = Vec::new();
        let stats = &mut *self.stats;
        let n = self.inner.receive_frames(now, budget, &mut |f: RxFrame<'_>| {
            let bytes = match &f {
                RxFrame::Borrowed(b) | RxFrame::L4Verified(b) => *b,
                RxFrame::Shared(r) => r.bytes(),
            };
            // The callback may rewrite the frame: it gets a copy with room.
            let mut buf = vec![0u8; MAX_FRAME];
            let len = bytes.len().min(MAX_FRAME);
            buf[..len].copy_from_slice(&bytes[..len]);
            let mut l = len as u16;
            // SAFETY: buf holds MAX_FRAME bytes and outlives the call; l is a
            // valid u16 slot. The callback is the application's.
            let r = unsafe { d(buf.as_mut_ptr().cast(), &mut l, 0, 1) };
            match r {
                0 => {
                    stats.passed += 1;
                    sink(f)
                }
                FF_DISPATCH_RESPONSE => {
                    stats.responded += 1;
                    buf.truncate(usize::from(l).min(MAX_FRAME));
                    responses.push(buf);
                }
                FF_DISPATCH_ERROR => stats.dropped += 1,
                _ => stats.dropped += 1,
            }
        });
        for r in responses {
            if self.inner.transmit(now, TxFrame { header: r, ..TxFrame::default() }, &NoPages).is_err() {
                self.stats.tx_refused += 1;
            }
        }
        n
    }

    fn transmit(&mut self, now: Instant, frame: TxFrame, mem: &dyn PageMemory) -> Result<(), TxFrame> {
        self.inner.transmit(now, frame, mem)
    }

    fn poll_completions(&mut self, now: Instant, done: &mut dyn FnMut(TxFrame)) {
        self.inner.poll_completions(now, done)
    }

    fn flush(&mut self, now: Instant) {
        self.inner.flush(now)
    }
}

/// Page memory for frames that carry no pages (raw frames: header only).
struct NoPages;

impl PageMemory for NoPages {
    fn buf_size(&self) -> usize {
        0
    }
    fn capacity(&self) -> usize {
        0
    }
    fn free_count(&self) -> usize {
        0
    }
    fn alloc(&mut self) -> Option<PageId> {
        None
    }
    fn incref(&mut self, _: PageId) -> Result<(), PageError> {
        Ok(())
    }
    fn decref(&mut self, _: PageId) -> Result<bool, PageError> {
        Ok(false)
    }
    fn refcount(&self, _: PageId) -> u16 {
        0
    }
    fn bytes(&self, _: PageId) -> &[u8] {
        &[]
    }
    fn bytes_mut(&mut self, _: PageId) -> &mut [u8] {
        &mut []
    }
}

/// `void ff_regist_packet_dispatcher(dispatch_func_t func)`: every received
/// frame goes to `func` first, with queue 0 of 1 (one queue per process).
/// It returns 0 to hand the frame to the stack, `FF_DISPATCH_ERROR` to drop
/// it, `FF_DISPATCH_RESPONSE` to send the rewritten frame (`*len` bytes,
/// at most 9234) back out; any other queue id is a counted drop. Null
/// unregisters. Called from another thread: ignored (logged).
#[no_mangle]
pub extern "C" fn ff_regist_packet_dispatcher(func: Option<DispatchFn>) {
    let r = entry("ff_regist_packet_dispatcher", Err(()), || {
        with_lib(|lib| {
            lib.dispatcher = func;
            Ok(Ok(()))
        })
    });
    if r.is_err() {
        tracing::warn!("ff_regist_packet_dispatcher: not on the lcore thread; ignored");
    }
}

/// `int ff_dpdk_raw_packet_send(void *data, int total, uint16_t port_id)`:
/// copies the `total`-byte Ethernet frame at `data` onto the port (it
/// leaves with the next flush). 0, or -1 with `errno`: `EINVAL` for a null
/// pointer, a length outside 14..=9234 or another port than this
/// process's, `ENOBUFS` when the port's queue is full.
///
/// # Safety
/// `data` points to `total` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn ff_dpdk_raw_packet_send(data: *const c_void, total: c_int, port_id: u16) -> c_int {
    entry("ff_dpdk_raw_packet_send", -1, || {
        with_lib(|lib| {
            let len = usize::try_from(total).ok().filter(|l| (14..=MAX_FRAME).contains(l)).ok_or(libc::EINVAL)?;
            if data.is_null() {
                return Err(libc::EINVAL);
            }
            if lib.rt.dev.port().map(|p| p.id()) != Some(port_id) {
                return Err(libc::EINVAL);
            }
            // SAFETY: the caller passes `total` readable bytes at `data`.
            let bytes = unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) }.to_vec();
            let now = lib.now();
            let dev = &mut *lib.rt.dev;
            if dev.transmit(now, TxFrame { header: bytes, ..TxFrame::default() }, &NoPages).is_err() {
                lib.hooks.tx_refused += 1;
                return Err(libc::ENOBUFS);
            }
            dev.flush(now);
            Ok(0)
        })
    })
}
