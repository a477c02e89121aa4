//! `QueueDevice`: an in-memory device with a receive queue the caller fills
//! and a transmit log the caller drains. Used by fuzzing, tests and benchmarks.

use std::collections::VecDeque;

use super::{Device, DeviceCaps, TxFrame};
use crate::mem::PageMemory;
use crate::time::Instant;

/// Frames in through [`QueueDevice::push_rx`], out through [`QueueDevice::take_tx`];
/// transmitted frames complete on the next `poll_completions`. With
/// `tx_checksum_offload` in its caps it completes TCP checksums as a NIC
/// would and records TSO frames whole.
#[derive(Debug, Default)]
pub struct QueueDevice {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
    done: Vec<TxFrame>,
    caps: DeviceCaps,
    /// Keep copies of transmitted frames (off: count only).
    pub record_tx: bool,
    /// Frames transmitted so far.
    pub tx_count: u64,
}

impl QueueDevice {
    /// A device with `caps`, recording transmitted frames.
    pub fn new(caps: DeviceCaps) -> Self {
        QueueDevice { caps, record_tx: true, ..Default::default() }
    }

    /// Queues a frame for the stack to receive.
    pub fn push_rx(&mut self, frame: Vec<u8>) {
        self.rx.push_back(frame);
    }

    /// Takes the frames transmitted since the last call.
    pub fn take_tx(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.tx)
    }
}

impl Device for QueueDevice {
    fn caps(&self) -> DeviceCaps {
        self.caps
    }

    fn receive(&mut self, _now: Instant, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < budget {
            let Some(f) = self.rx.pop_front() else { break };
            sink(&f);
            n += 1;
        }
        n
    }

    fn transmit(&mut self, _now: Instant, frame: TxFrame, mem: &dyn PageMemory) -> Result<(), TxFrame> {
        self.tx_count += 1;
        if self.record_tx {
            let mut v = Vec::with_capacity(frame.len());
            frame.copy_into(mem, &mut v);
            if self.caps.tx_checksum_offload {
                // As the hardware would: the checksum completed; a TSO
                // frame is recorded whole (cut: `offload::finish_tx`).
                v = super::offload::finish_tx(v, 0).pop().unwrap_or_default();
            }
            self.tx.push(v);
        }
        self.done.push(frame);
        Ok(())
    }

    fn poll_completions(&mut self, _now: Instant, done: &mut dyn FnMut(TxFrame)) {
        for f in self.done.drain(..) {
            done(f);
        }
    }
}
