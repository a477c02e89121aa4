//! The device boundary: bursts of received frames in, frames built as a header
//! plus payload slices out, and a completion for every transmitted frame.
//!
//! A frame's payload stays in [`PageMemory`] buffers; the engine takes one
//! reference per buffer per transmission and gets the frame back through
//! [`Device::poll_completions`] when the device no longer needs the memory
//! (a DPDK device attaches the slices as external buffers and completes from
//! the PMD's free callback; a copying device completes at once).

pub mod fault;
pub mod offload;
pub mod pcap;
pub mod queue;
pub mod sim;
#[cfg(feature = "tap")]
pub mod tap;

use std::rc::Rc;

use crate::mem::{PageMemory, PageSlice};
use crate::time::Instant;

/// Received frame memory the engine may keep instead of copying (zero-copy
/// receive), e.g. a DPDK mbuf. Dropping the last reference gives the memory
/// back to the device.
pub trait RxBuf {
    /// The frame's bytes: the same slice (address and length) on every
    /// call for as long as the buffer lives. The engine reads a kept
    /// payload at the offset it found in one call's slice through later
    /// calls (an mbuf's data does not move).
    fn bytes(&self) -> &[u8];
    /// Memory the buffer pins, for receive-window accounting (at least
    /// `bytes().len()`; an mbuf pins its whole data room).
    fn footprint(&self) -> usize {
        self.bytes().len()
    }
    /// The device vouches for the L4 payload's integrity (see
    /// [`RxFrame::L4Verified`]).
    fn l4_verified(&self) -> bool {
        false
    }
    /// [`RxBuf::bytes`], [`RxBuf::footprint`] and [`RxBuf::l4_verified`]
    /// in one call: what the receive path asks of every frame handed over.
    /// A device may answer it at once (one call through the trait object
    /// instead of three); it must give what the three methods give.
    fn meta(&self) -> RxMeta<'_> {
        RxMeta { bytes: self.bytes(), footprint: self.footprint(), l4_verified: self.l4_verified() }
    }
}

/// A received frame's bytes, footprint (bytes) and L4 verdict
/// ([`RxBuf::meta`]).
#[derive(Clone, Copy, Debug)]
pub struct RxMeta<'a> {
    /// [`RxBuf::bytes`].
    pub bytes: &'a [u8],
    /// [`RxBuf::footprint`], bytes.
    pub footprint: usize,
    /// [`RxBuf::l4_verified`].
    pub l4_verified: bool,
}

impl RxBuf for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
    fn footprint(&self) -> usize {
        self.capacity()
    }
}

/// A received frame shared between the engine and the application (not
/// `Send`: one stack per lcore).
pub type SharedRx = Rc<dyn RxBuf>;

/// One received frame: borrowed for the duration of the call, or handed
/// over so the engine can keep its payload in place.
#[derive(Clone)]
pub enum RxFrame<'a> {
    /// Valid only during the sink call; the engine copies what it keeps.
    Borrowed(&'a [u8]),
    /// As `Borrowed`, and the device vouches for the TCP/UDP payload's
    /// integrity (its checksum verified, or the frame never left memory and
    /// carries a partial checksum, DPDK's `RX_L4_CKSUM_GOOD`/`NONE`): the
    /// engine skips its own L4 checksum check. IP headers are still checked.
    L4Verified(&'a [u8]),
    /// Kept by reference: TCP payload stays in this buffer until read.
    Shared(SharedRx),
}

/// What a device can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceCaps {
    /// Largest IP packet (Ethernet payload) the link carries.
    pub mtu: usize,
    /// The device verified IPv4/TCP/UDP checksums of received frames.
    pub rx_checksum_verified: bool,
    /// The device fills TCP/UDP checksums of transmitted frames.
    pub tx_checksum_offload: bool,
    /// Frames to pass per receive call at most.
    pub max_burst: usize,
    /// TCP segmentation offload: the most TCP payload bytes one transmitted
    /// frame may carry, cut into MSS-sized segments by the device
    /// ([`TxFrame::tso_segsz`]); 0 when the device cannot (every frame fits
    /// the MTU). Only meaningful with `tx_checksum_offload`.
    pub tso_max: usize,
    /// A receive call that hands fewer frames than asked, and at most this
    /// many, ends the poll's receiving: the device (a ring-based PMD) as a
    /// rule handed everything it had, so asking again at once would only
    /// cost an empty burst on the path of the frames just received.
    /// dpdk-glue's `EthDevice` sets 1 (why, and where a burst of one can
    /// still leave frames: its `RX_SHORT_BURST_ENDS_POLL_MAX`). Frames a
    /// device still held are not lost: they wait for the next poll, which
    /// a caller runs at once after a poll that returned true. 0 (the
    /// default) keeps asking until a call hands nothing, for devices that
    /// may hand fewer frames than they hold (a TAP device reads one per
    /// system call).
    pub rx_short_burst_ends_poll_max: usize,
}

impl Default for DeviceCaps {
    fn default() -> Self {
        DeviceCaps {
            mtu: 1500,
            rx_checksum_verified: false,
            tx_checksum_offload: false,
            max_burst: 32,
            tso_max: 0,
            rx_short_burst_ends_poll_max: 0,
        }
    }
}

/// Payload slices of one frame: inline up to two (an MSS-sized segment
/// spans at most two page buffers in the common case), so building a frame
/// allocates nothing.
pub type Payload = smallvec::SmallVec<[PageSlice; 2]>;

/// One frame to transmit: the Ethernet/IP/L4 headers, then payload slices.
#[derive(Debug, Default)]
pub struct TxFrame {
    /// Headers, contiguous.
    pub header: Vec<u8>,
    /// Payload, in order; each slice holds one reference on its buffer that the
    /// engine releases when the frame comes back completed.
    pub payload: Payload,
    /// Every payload byte was copied in by the stack (copy-mode writes, and
    /// zero-copy writes under the `zc_min_write` threshold): attaching it in
    /// place saves no application copy, so a device may copy it into its
    /// own buffer instead when that is cheaper (as a copy-mode device does).
    pub copied: bool,
    /// Non-zero: a TCP frame larger than the MTU for the device to cut into
    /// segments of this many payload bytes (TSO; only sent to devices with
    /// [`DeviceCaps::tso_max`]). Its TCP checksum field holds the
    /// pseudo-header sum without the length, as DPDK's
    /// `RTE_MBUF_F_TX_TCP_SEG` requires.
    pub tso_segsz: u16,
}

impl TxFrame {
    /// Total frame length in bytes.
    pub fn len(&self) -> usize {
        self.header.len() + self.payload.iter().map(|s| s.len as usize).sum::<usize>()
    }

    /// Whether the frame is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies the whole frame into `out` (for devices that copy).
    pub fn copy_into(&self, mem: &dyn PageMemory, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.header);
        for s in &self.payload {
            out.extend_from_slice(mem.slice(*s));
        }
    }
}

/// A network device driven by the engine. Implementations never block.
pub trait Device {
    /// Capabilities; read once per poll.
    fn caps(&self) -> DeviceCaps;

    /// Hands up to `budget` received frames to `sink`, oldest first; returns
    /// how many. Frames are borrowed only for the duration of the call.
    fn receive(&mut self, now: Instant, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize;

    /// Like [`Device::receive`], but a device may hand frames over
    /// ([`RxFrame::Shared`]) so the engine keeps received payload in place
    /// (zero-copy receive). The default lends every frame.
    fn receive_frames(&mut self, now: Instant, budget: usize, sink: &mut dyn FnMut(RxFrame<'_>)) -> usize {
        self.receive(now, budget, &mut |b: &[u8]| sink(RxFrame::Borrowed(b)))
    }

    /// Queues a frame. On `Err` the device is full and the frame comes back
    /// untouched (the engine keeps it for the next poll; nothing is lost).
    fn transmit(&mut self, now: Instant, frame: TxFrame, mem: &dyn PageMemory) -> Result<(), TxFrame>;

    /// Returns every transmitted frame whose memory the device released since
    /// the last call. Each frame is returned exactly once.
    fn poll_completions(&mut self, now: Instant, done: &mut dyn FnMut(TxFrame));

    /// Pushes out frames `transmit` queued (devices that batch, such as a
    /// DPDK port bursting 32 at a time). Called at the end of every poll.
    fn flush(&mut self, _now: Instant) {}

    /// The earliest time at which the device will have something to deliver or
    /// complete without being polled for other reasons (simulated devices).
    fn poll_at(&self) -> Option<Instant> {
        None
    }
}

impl std::fmt::Debug for RxFrame<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RxFrame::Borrowed(b) => write!(f, "Borrowed({} B)", b.len()),
            RxFrame::L4Verified(b) => write!(f, "L4Verified({} B)", b.len()),
            RxFrame::Shared(r) => write!(f, "Shared({} B)", r.bytes().len()),
        }
    }
}

/// A device borrowed for a while is still a device (wrappers such as
/// [`pcap::PcapDevice`] can then be built around it per poll).
impl<D: Device + ?Sized> Device for &mut D {
    fn caps(&self) -> DeviceCaps {
        (**self).caps()
    }
    fn receive(&mut self, now: Instant, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize {
        (**self).receive(now, budget, sink)
    }
    fn receive_frames(&mut self, now: Instant, budget: usize, sink: &mut dyn FnMut(RxFrame<'_>)) -> usize {
        (**self).receive_frames(now, budget, sink)
    }
    fn transmit(&mut self, now: Instant, frame: TxFrame, mem: &dyn PageMemory) -> Result<(), TxFrame> {
        (**self).transmit(now, frame, mem)
    }
    fn flush(&mut self, now: Instant) {
        (**self).flush(now)
    }
    fn poll_completions(&mut self, now: Instant, done: &mut dyn FnMut(TxFrame)) {
        (**self).poll_completions(now, done)
    }
    fn poll_at(&self) -> Option<Instant> {
        (**self).poll_at()
    }
}
