//! `SimLink`: two devices joined in memory, with seeded loss, reordering,
//! duplication, corruption, latency, bandwidth, MTU and TX-completion delay.
//! Everything is deterministic for a given seed and sequence of calls.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::rc::Rc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{Device, DeviceCaps, RxBuf, RxFrame, TxFrame};
use crate::mem::PageMemory;
use crate::time::{Duration, Instant};

/// When a transmitted frame's memory is released back to the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// At once, inside `transmit` (a copying PMD such as net_tap).
    Immediate,
    /// After a fixed delay (a NIC's DMA and descriptor cleanup).
    Delayed(Duration),
    /// Only when [`SimDevice::release_all`] is called (virtio-user until close).
    Never,
}

/// Impairments of one link, applied to both directions.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Probability a frame is lost.
    pub loss: f64,
    /// Probability a frame is delayed by an extra `reorder_delay` (overtaken).
    pub reorder: f64,
    /// Extra delay of reordered frames.
    pub reorder_delay: Duration,
    /// Probability a frame is delivered twice.
    pub duplicate: f64,
    /// Probability one byte of a frame is flipped.
    pub corrupt: f64,
    /// One-way latency.
    pub latency: Duration,
    /// Bits per second, or 0 for unlimited.
    pub bandwidth_bps: u64,
    /// Largest IP packet; bigger frames are dropped (and counted).
    pub mtu: usize,
    /// Frames queued per direction before `transmit` refuses (device full).
    pub queue_limit: usize,
    /// TX completion behaviour.
    pub completion: Completion,
    /// Hand received frames over to the engine (zero-copy receive, like
    /// DPDK mbufs), each pinning this many bytes; `None` lends them.
    pub rx_shared_footprint: Option<usize>,
    /// Offer transmit checksum offload and TSO (frames up to 64 KiB), done
    /// in software by the link ([`super::offload::finish_tx`]) before the
    /// impairments, as a NIC would before the wire.
    pub offload: bool,
    /// With `offload`: deliver TSO frames whole (checksum completed) instead
    /// of cut, as virtio-user hands them to vhost; the receiver then gets
    /// segments larger than the MTU.
    pub tso_whole: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            loss: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_micros(500),
            duplicate: 0.0,
            corrupt: 0.0,
            latency: Duration::from_micros(10),
            bandwidth_bps: 0,
            mtu: 1500,
            queue_limit: 4096,
            completion: Completion::Immediate,
            rx_shared_footprint: None,
            offload: false,
            tso_whole: false,
        }
    }
}

/// Counters of what the link did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Frames accepted by `transmit`.
    pub sent: u64,
    /// Frames delivered to the receiver (duplicates included).
    pub delivered: u64,
    /// Frames dropped by loss.
    pub lost: u64,
    /// Frames dropped for exceeding the MTU.
    pub too_big: u64,
    /// Frames delayed to be reordered.
    pub reordered: u64,
    /// Extra copies delivered.
    pub duplicated: u64,
    /// Frames with a flipped byte.
    pub corrupted: u64,
    /// Transmits refused because the queue was full.
    pub refused: u64,
}

#[derive(Debug)]
struct Dir {
    /// (deliver_at, seq, bytes), earliest first; seq keeps equal times in send order.
    in_flight: BinaryHeap<Reverse<(Instant, u64, Vec<u8>)>>,
    /// (complete_at, frame) awaiting completion.
    completing: VecDeque<(Instant, TxFrame)>,
    never: Vec<TxFrame>,
    busy_until: Instant,
}

#[derive(Debug)]
struct Link {
    cfg: SimConfig,
    rng: SmallRng,
    dirs: [Dir; 2],
    stats: SimStats,
    seq: u64,
}

/// The link; make its two ends with [`SimLink::devices`].
#[derive(Debug)]
pub struct SimLink;

impl SimLink {
    /// Two devices joined by a link with `cfg`, impairments drawn from `seed`.
    pub fn devices(cfg: SimConfig, seed: u64) -> (SimDevice, SimDevice) {
        let dir = || Dir {
            in_flight: BinaryHeap::new(),
            completing: VecDeque::new(),
            never: Vec::new(),
            busy_until: Instant::ZERO,
        };
        let link = Rc::new(RefCell::new(Link {
            cfg,
            rng: SmallRng::seed_from_u64(seed),
            dirs: [dir(), dir()],
            stats: SimStats::default(),
            seq: 0,
        }));
        (SimDevice { side: 0, link: link.clone() }, SimDevice { side: 1, link })
    }
}

/// One end of a [`SimLink`].
#[derive(Debug)]
pub struct SimDevice {
    side: usize,
    link: Rc<RefCell<Link>>,
}

impl SimDevice {
    /// Link counters (shared by both ends).
    pub fn stats(&self) -> SimStats {
        self.link.borrow().stats
    }

    /// Changes the impairments from now on.
    pub fn set_config(&self, cfg: SimConfig) {
        self.link.borrow_mut().cfg = cfg;
    }

    /// Releases every frame this end transmitted and still holds (the port
    /// closing, for [`Completion::Never`]); they come back on the next
    /// `poll_completions`.
    pub fn release_all(&mut self) {
        let mut l = self.link.borrow_mut();
        let d = &mut l.dirs[self.side];
        let held: Vec<TxFrame> = d.never.drain(..).collect();
        for f in held {
            d.completing.push_back((Instant::ZERO, f));
        }
    }

    /// Frames this end transmitted whose completion is still pending.
    pub fn pending_completions(&self) -> usize {
        let l = self.link.borrow();
        let d = &l.dirs[self.side];
        d.completing.len() + d.never.len()
    }

    /// Frames on the wire towards the other end.
    pub fn in_flight(&self) -> usize {
        self.link.borrow().dirs[self.side].in_flight.len()
    }
}

/// A delivered frame handed over to the engine.
struct SimRxBuf {
    bytes: Vec<u8>,
    footprint: usize,
}

impl RxBuf for SimRxBuf {
    fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    fn footprint(&self) -> usize {
        self.footprint
    }
}

impl SimDevice {
    /// The earliest frame due at `now`, if any.
    fn next_frame(&mut self, now: Instant) -> Option<Vec<u8>> {
        let mut l = self.link.borrow_mut();
        let d = &mut l.dirs[1 - self.side];
        // Deliver the earliest due frame (reordered ones carry a later time).
        match d.in_flight.peek() {
            Some(Reverse((t, _, _))) if *t <= now => {
                let Reverse((_, _, bytes)) = d.in_flight.pop().expect("peeked");
                l.stats.delivered += 1;
                Some(bytes)
            }
            _ => None,
        }
    }
}

impl Link {
    /// Puts one frame on the wire of direction `side`: serialisation at the
    /// link's bandwidth, latency, and the impairments; `oversize` frames
    /// (whole TSO frames) skip the MTU check.
    fn wire(&mut self, side: usize, now: Instant, mut bytes: Vec<u8>, oversize: bool) {
        let cfg = &self.cfg;
        let d = &mut self.dirs[side];
        let start = d.busy_until.max(now);
        let tx_time = if cfg.bandwidth_bps > 0 {
            Duration::from_micros((bytes.len() as u64 * 8 * 1_000_000).div_ceil(cfg.bandwidth_bps))
        } else {
            Duration::ZERO
        };
        d.busy_until = start + tx_time;
        let mut at = d.busy_until + cfg.latency;
        if bytes.len() > cfg.mtu + crate::wire::ETH_HEADER && !oversize {
            self.stats.too_big += 1;
            return;
        }
        if self.rng.gen_bool(cfg.loss) {
            self.stats.lost += 1;
            return;
        }
        if self.rng.gen_bool(cfg.reorder) {
            self.stats.reordered += 1;
            at += cfg.reorder_delay;
        }
        if self.rng.gen_bool(cfg.corrupt) && !bytes.is_empty() {
            self.stats.corrupted += 1;
            let i = self.rng.gen_range(0..bytes.len());
            bytes[i] ^= 1 << self.rng.gen_range(0..8);
        }
        let dup = self.rng.gen_bool(cfg.duplicate);
        let d = &mut self.dirs[side];
        self.seq += 1;
        if dup {
            self.stats.duplicated += 1;
            d.in_flight.push(Reverse((at, self.seq, bytes.clone())));
            self.seq += 1;
        }
        d.in_flight.push(Reverse((at, self.seq, bytes)));
    }
}

impl Device for SimDevice {
    fn caps(&self) -> DeviceCaps {
        let cfg = &self.link.borrow().cfg;
        DeviceCaps {
            mtu: cfg.mtu,
            tx_checksum_offload: cfg.offload,
            tso_max: if cfg.offload { 65_535 } else { 0 },
            ..DeviceCaps::default()
        }
    }

    fn receive(&mut self, now: Instant, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < budget {
            let Some(frame) = self.next_frame(now) else { break };
            sink(&frame);
            n += 1;
        }
        n
    }

    fn receive_frames(&mut self, now: Instant, budget: usize, sink: &mut dyn FnMut(RxFrame<'_>)) -> usize {
        let footprint = self.link.borrow().cfg.rx_shared_footprint;
        let mut n = 0;
        while n < budget {
            let Some(frame) = self.next_frame(now) else { break };
            match footprint {
                Some(f) => sink(RxFrame::Shared(Rc::new(SimRxBuf { footprint: f.max(frame.len()), bytes: frame }))),
                None => sink(RxFrame::Borrowed(&frame)),
            }
            n += 1;
        }
        n
    }

    fn transmit(&mut self, now: Instant, frame: TxFrame, mem: &dyn PageMemory) -> Result<(), TxFrame> {
        let mut l = self.link.borrow_mut();
        let l = &mut *l;
        if l.dirs[self.side].in_flight.len() >= l.cfg.queue_limit {
            l.stats.refused += 1;
            return Err(frame);
        }
        l.stats.sent += 1;
        let mut bytes = Vec::with_capacity(frame.len());
        frame.copy_into(mem, &mut bytes);
        let tso = frame.tso_segsz;
        let d = &mut l.dirs[self.side];
        match l.cfg.completion {
            Completion::Immediate => d.completing.push_back((Instant::ZERO, frame)),
            Completion::Delayed(dl) => d.completing.push_back((now + dl, frame)),
            Completion::Never => d.never.push(frame),
        }
        if l.cfg.offload {
            let whole = l.cfg.tso_whole && tso > 0;
            for piece in super::offload::finish_tx(bytes, if whole { 0 } else { tso }) {
                l.wire(self.side, now, piece, whole);
            }
        } else {
            l.wire(self.side, now, bytes, false);
        }
        Ok(())
    }

    fn poll_completions(&mut self, now: Instant, done: &mut dyn FnMut(TxFrame)) {
        loop {
            let f = {
                let mut l = self.link.borrow_mut();
                let d = &mut l.dirs[self.side];
                match d.completing.front() {
                    Some((t, _)) if *t <= now => d.completing.pop_front().map(|(_, f)| f),
                    _ => None,
                }
            };
            match f {
                Some(f) => done(f),
                None => break,
            }
        }
    }

    fn poll_at(&self) -> Option<Instant> {
        let l = self.link.borrow();
        let rx = l.dirs[1 - self.side].in_flight.peek().map(|Reverse((t, _, _))| *t);
        let comp = l.dirs[self.side].completing.front().map(|(t, _)| *t);
        match (rx, comp) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}
