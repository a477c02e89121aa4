//! Issue 13: one poll takes received frames in bursts of the device's
//! `max_burst` until a burst comes back short (the device had no more
//! ready), as a DPDK loop reads `rx_burst` — no further call only to find
//! the queue empty, and nothing left behind when the bursts were full.
mod common;

use std::collections::VecDeque;

use common::{stack_config, A_IP};
use zcstack::mem::{HeapPages, PageMemory};
use zcstack::phy::{Device, DeviceCaps, RxFrame, TxFrame};
use zcstack::{Instant, Stack};

/// Hands queued frames up to each call's budget and records the budgets
/// asked for.
struct Queue {
    frames: VecDeque<Vec<u8>>,
    calls: Vec<usize>,
    max_burst: usize,
}

impl Device for Queue {
    fn caps(&self) -> DeviceCaps {
        DeviceCaps { max_burst: self.max_burst, ..DeviceCaps::default() }
    }
    fn receive(&mut self, _now: Instant, _budget: usize, _sink: &mut dyn FnMut(&[u8])) -> usize {
        0 // the stack calls receive_frames
    }
    fn receive_frames(&mut self, _now: Instant, budget: usize, sink: &mut dyn FnMut(RxFrame<'_>)) -> usize {
        self.calls.push(budget);
        let mut n = 0;
        while n < budget {
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

fn stack() -> Stack<HeapPages> {
    Stack::new(stack_config(A_IP, 1), HeapPages::new(64, 2048), 1500)
}

/// Fewer frames than one burst: one call, every frame handled.
#[test]
fn a_short_burst_ends_the_receive_loop() {
    let mut st = stack();
    let mut dev = Queue { frames: junk(3), calls: Vec::new(), max_burst: 8 };
    assert!(st.poll(Instant::ZERO, &mut dev));
    assert_eq!(dev.calls, vec![8], "one burst asked, none more after it came back short");
    assert!(dev.frames.is_empty());
    assert_eq!(st.stats().rx_frames, 3);
}

/// More frames than one burst: full bursts are followed by another call
/// in the same poll until a short one, so nothing waits for the next poll.
#[test]
fn full_bursts_continue_until_a_short_one() {
    let mut st = stack();
    let mut dev = Queue { frames: junk(20), calls: Vec::new(), max_burst: 8 };
    assert!(st.poll(Instant::ZERO, &mut dev));
    assert_eq!(dev.calls, vec![8, 8, 8], "8 + 8 full, then 4 of 8: short");
    assert!(dev.frames.is_empty());
    assert_eq!(st.stats().rx_frames, 20);
    // A burst exactly full calls once more and finds the queue empty.
    dev.frames = junk(16);
    dev.calls.clear();
    assert!(st.poll(Instant::ZERO, &mut dev));
    assert_eq!(dev.calls, vec![8, 8, 8]);
    assert_eq!(st.stats().rx_frames, 36);
    // Nothing queued: one call, nothing done.
    dev.calls.clear();
    assert!(!st.poll(Instant::ZERO, &mut dev));
    assert_eq!(dev.calls, vec![8]);
}
