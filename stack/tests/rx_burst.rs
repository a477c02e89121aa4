//! One poll takes received frames in bursts of the device's `max_burst`
//! until the device gives none (or the poll's RX budget is spent): a burst
//! shorter than asked does not end the loop, because a device may hand
//! fewer frames than it holds (issue 13 tried stopping there; the C API's
//! boundary test on net_tap then stalled) — unless the device says a
//! short burst of at most so many frames means it had no more
//! (`rx_short_burst_ends_poll_max`; 1 on the ring-based PMDs), where the
//! extra empty call would only delay the answer to the frames just
//! received.
mod common;

use std::collections::VecDeque;

use common::{stack_config, A_IP};
use zcstack::mem::{HeapPages, PageMemory};
use zcstack::phy::{Device, DeviceCaps, RxFrame, TxFrame};
use zcstack::{Instant, Stack};

/// Hands queued frames up to each call's budget (and at most `stingy` per
/// call) and records the budgets asked for.
struct Queue {
    frames: VecDeque<Vec<u8>>,
    calls: Vec<usize>,
    max_burst: usize,
    stingy: usize,
    /// `DeviceCaps::rx_short_burst_ends_poll_max`.
    ends: usize,
}

impl Device for Queue {
    fn caps(&self) -> DeviceCaps {
        DeviceCaps { max_burst: self.max_burst, rx_short_burst_ends_poll_max: self.ends, ..DeviceCaps::default() }
    }
    fn receive(&mut self, _now: Instant, _budget: usize, _sink: &mut dyn FnMut(&[u8])) -> usize {
        0 // the stack calls receive_frames
    }
    fn receive_frames(&mut self, _now: Instant, budget: usize, sink: &mut dyn FnMut(RxFrame<'_>)) -> usize {
        self.calls.push(budget);
        let mut n = 0;
        while n < budget.min(self.stingy) {
            let Some(f) = self.frames.pop_front() else { break };
            sink(RxFrame::Borrowed(&f));
            n += 1;
        }
        n
    }
    fn transmit(&mut self, _now: Instant, _frame: TxFrame, _mem: &dyn PageMemory) -> Result<(), TxFrame> {
        Ok(())
    }
    fn poll_completions(&mut self, _now: Instant, _done: &mut dyn FnMut(TxFrame)) {}
}

/// `n` Ethernet frames of an EtherType the stack does not speak (each
/// received and counted, nothing sent back).
fn junk(n: usize) -> VecDeque<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut f = vec![0u8; 60];
            f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
            f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 9]);
            f[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental EtherType
            f[14] = i as u8;
            f
        })
        .collect()
}

/// A [`Queue`] of `frames` with bursts of 8, handing at most `stingy` per
/// call, whose `rx_short_burst_ends_poll_max` is `ends`.
fn queue(frames: VecDeque<Vec<u8>>, stingy: usize, ends: usize) -> Queue {
    Queue { frames, calls: Vec::new(), max_burst: 8, stingy, ends }
}

fn stack() -> Stack<HeapPages> {
    Stack::new(stack_config(A_IP, 1), HeapPages::new(64, 2048), 1500)
}

/// Fewer frames than one burst: every frame handled, then one more call
/// finds the device empty.
#[test]
fn a_short_burst_is_followed_by_a_call_that_finds_none() {
    let mut st = stack();
    let mut dev = queue(junk(3), usize::MAX, 0);
    assert!(st.poll(Instant::ZERO, &mut dev));
    assert_eq!(dev.calls, vec![8, 8]);
    assert!(dev.frames.is_empty());
    assert_eq!(st.stats().rx_frames, 3);
    // Nothing queued: one call, nothing done.
    dev.calls.clear();
    assert!(!st.poll(Instant::ZERO, &mut dev));
    assert_eq!(dev.calls, vec![8]);
}

/// A device that hands fewer frames per call than it holds (2 of 8 asked):
/// the poll keeps asking and handles all of them, nothing waits.
#[test]
fn a_device_handing_fewer_than_it_holds_is_drained_in_one_poll() {
    let mut st = stack();
    let mut dev = queue(junk(20), 2, 0);
    assert!(st.poll(Instant::ZERO, &mut dev));
    assert!(dev.frames.is_empty(), "{} frames left behind", dev.frames.len());
    assert_eq!(st.stats().rx_frames, 20);
    assert_eq!(dev.calls.len(), 11, "ten calls of 2, one empty");
}

/// More frames than one burst: full bursts until the device is empty.
#[test]
fn full_bursts_continue_until_none() {
    let mut st = stack();
    let mut dev = queue(junk(20), usize::MAX, 0);
    assert!(st.poll(Instant::ZERO, &mut dev));
    assert_eq!(dev.calls, vec![8, 8, 8, 8], "8 + 8 + 4, then none");
    assert!(dev.frames.is_empty());
    assert_eq!(st.stats().rx_frames, 20);
}

/// A device whose short burst means it is empty (any short burst here):
/// fewer frames than one burst take one call, not two; full bursts still
/// continue; and one that (against its word) held more loses nothing: the
/// rest come a poll later.
#[test]
fn a_short_burst_ends_the_poll_where_the_device_says_so() {
    let mut st = stack();
    let mut dev = queue(junk(3), usize::MAX, usize::MAX);
    assert!(st.poll(Instant::ZERO, &mut dev));
    assert_eq!(dev.calls, vec![8], "no second call after a short burst");
    assert_eq!(st.stats().rx_frames, 3);

    dev.calls.clear();
    dev.frames = junk(20);
    assert!(st.poll(Instant::ZERO, &mut dev));
    assert_eq!(dev.calls, vec![8, 8, 8], "8 + 8 + 4: the short third burst ends it");
    assert_eq!(st.stats().rx_frames, 23);

    dev.calls.clear();
    dev.frames = junk(5);
    dev.stingy = 2;
    let mut polls = 0;
    while !dev.frames.is_empty() {
        assert!(st.poll(Instant::ZERO, &mut dev));
        polls += 1;
        assert!(polls <= 3, "frames left behind are taken by the next polls");
    }
    assert_eq!(polls, 3, "2 + 2 + 1, one burst per poll");
    assert_eq!(st.stats().rx_frames, 28);
}

/// The ring-based PMDs' setting (`rx_short_burst_ends_poll_max` 1): a
/// burst of one frame ends the poll's receiving, a short burst of two or
/// more asks again (a loaded queue, or a virtio burst rounded down to a
/// cache line of descriptors), and nothing is left behind either way.
#[test]
fn only_a_burst_of_one_ends_the_poll_at_max_one() {
    let mut st = stack();
    let mut dev = queue(junk(1), usize::MAX, 1);
    assert!(st.poll(Instant::ZERO, &mut dev));
    assert_eq!(dev.calls, vec![8], "a lone frame: no second call");
    assert_eq!(st.stats().rx_frames, 1);

    dev.calls.clear();
    dev.frames = junk(3);
    assert!(st.poll(Instant::ZERO, &mut dev));
    assert_eq!(dev.calls, vec![8, 8], "a short burst of 3 asks again, and finds none");
    assert_eq!(st.stats().rx_frames, 4);

    // A device that rounds bursts down (virtio: 7 queued, 5 handed, as a
    // cache line's rounding can) is drained in the same poll.
    dev.calls.clear();
    dev.frames = junk(7);
    dev.stingy = 5;
    assert!(st.poll(Instant::ZERO, &mut dev));
    assert!(dev.frames.is_empty(), "{} frames left behind", dev.frames.len());
    assert_eq!(dev.calls, vec![8, 8, 8], "5, then the 2 left (short but more than one: ask again), then none");
    assert_eq!(st.stats().rx_frames, 11);

    // 6 queued, handed 5 then 1: the burst of one ends the poll.
    dev.calls.clear();
    dev.frames = junk(6);
    assert!(st.poll(Instant::ZERO, &mut dev));
    assert_eq!(dev.calls, vec![8, 8]);
    assert!(dev.frames.is_empty());
    assert_eq!(st.stats().rx_frames, 17);

    // A device that (against its word) hands one frame while holding more:
    // each poll takes one, none is lost.
    dev.calls.clear();
    dev.frames = junk(3);
    dev.stingy = 1;
    for left in [2, 1, 0] {
        assert!(st.poll(Instant::ZERO, &mut dev));
        assert_eq!(dev.frames.len(), left);
    }
    assert_eq!(dev.calls, vec![8, 8, 8], "one call per poll");
    assert_eq!(st.stats().rx_frames, 20);
}
