//! The in-memory wire `enginebench` and `perfdrive` run zcstack over: two
//! queues of frames, a `Device` end for each stack, offloads as a virtio
//! port offers them. Shared by both examples (`mod zcwire;`).
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use zcstack::mem::PageMemory;
use zcstack::phy::{Device, DeviceCaps, RxBuf, RxFrame, TxFrame};
use zcstack::Instant;

// ----- the shared in-memory wire -----

#[derive(Default)]
pub(crate) struct Wire {
    pub(crate) q: [VecDeque<Vec<u8>>; 2],
}

pub(crate) struct End {
    pub(crate) side: usize,
    pub(crate) wire: Rc<RefCell<Wire>>,
    pub(crate) done: Vec<TxFrame>,
    /// The wire offers what a virtio port does: checksums left to the
    /// "device" (a frame that never leaves memory needs none, as vhost
    /// treats virtio's partial checksums) and, to a stack that can use it,
    /// TSO with frames delivered whole (as virtio-user hands them to vhost).
    pub(crate) offload: Offload,
}

/// What the wire offers the stacks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offload {
    /// Nothing: both stacks checksum in software, frames fit the MTU.
    None,
    /// Checksums left to the device, for both stacks.
    Checksum,
    /// Checksums and TSO (only zcstack can use TSO).
    ChecksumTso,
}

pub(crate) fn wire(offload: Offload) -> (End, End) {
    let w = Rc::new(RefCell::new(Wire::default()));
    (End { side: 0, wire: w.clone(), done: Vec::new(), offload }, End { side: 1, wire: w, done: Vec::new(), offload })
}

/// A wire frame handed to zcstack; `verified` when the wire offloads checksums.
pub(crate) struct Frame {
    pub(crate) bytes: Vec<u8>,
    pub(crate) verified: bool,
}

impl RxBuf for Frame {
    fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    fn footprint(&self) -> usize {
        self.bytes.capacity()
    }
    fn l4_verified(&self) -> bool {
        self.verified
    }
}

impl Device for End {
    fn caps(&self) -> DeviceCaps {
        match self.offload {
            Offload::None => DeviceCaps::default(),
            Offload::Checksum => DeviceCaps { tx_checksum_offload: true, ..DeviceCaps::default() },
            Offload::ChecksumTso => {
                DeviceCaps { tx_checksum_offload: true, tso_max: 32 * 1024, ..DeviceCaps::default() }
            }
        }
    }
    fn receive(&mut self, _now: Instant, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < budget {
            let f = self.wire.borrow_mut().q[1 - self.side].pop_front();
            match f {
                Some(f) => {
                    sink(&f);
                    n += 1;
                }
                None => break,
            }
        }
        n
    }
    /// Hands each wire frame over instead of lending it: zcstack keeps the
    /// TCP payload in the frame until the application reads it (its
    /// zero-copy receive, as with DPDK mbufs). smoltcp's `RxToken` can only
    /// lend a frame, so it copies the payload into its socket ring.
    fn receive_frames(&mut self, _now: Instant, budget: usize, sink: &mut dyn FnMut(RxFrame<'_>)) -> usize {
        let mut n = 0;
        while n < budget {
            let f = self.wire.borrow_mut().q[1 - self.side].pop_front();
            match f {
                Some(f) => {
                    sink(RxFrame::Shared(Rc::new(Frame { bytes: f, verified: self.offload != Offload::None })));
                    n += 1;
                }
                None => break,
            }
        }
        n
    }
    fn transmit(&mut self, _now: Instant, frame: TxFrame, mem: &dyn PageMemory) -> Result<(), TxFrame> {
        let mut v = Vec::with_capacity(frame.len());
        frame.copy_into(mem, &mut v);
        self.wire.borrow_mut().q[self.side].push_back(v);
        self.done.push(frame);
        Ok(())
    }
    fn poll_completions(&mut self, _now: Instant, done: &mut dyn FnMut(TxFrame)) {
        for f in self.done.drain(..) {
            done(f);
        }
    }
}
