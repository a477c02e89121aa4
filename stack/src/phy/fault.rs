//! `FaultDevice`: wraps any [`Device`] and impairs both directions with seeded
//! loss, reordering and delay — the userspace equivalent of
//! `tc netem loss L reorder R delay D`, for kernels without `sch_netem`.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::{Device, DeviceCaps, TxFrame};
use crate::mem::PageMemory;
use crate::time::{Duration, Instant};

/// Impairments applied in each direction.
#[derive(Clone, Copy, Debug)]
pub struct FaultConfig {
    /// Probability a frame is dropped.
    pub loss: f64,
    /// Probability a frame skips the delay (and so overtakes others), as netem's `reorder`.
    pub reorder: f64,
    /// Delay of every other frame.
    pub delay: Duration,
}

struct Held<T> {
    at: Instant,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Held<T> {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl<T> Eq for Held<T> {}
impl<T> PartialOrd for Held<T> {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl<T> Ord for Held<T> {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

/// A device with impairments on both directions.
pub struct FaultDevice<D: Device> {
    inner: D,
    cfg: FaultConfig,
    rng: SmallRng,
    seq: u64,
    rx: BinaryHeap<Reverse<Held<Vec<u8>>>>,
    tx: BinaryHeap<Reverse<Held<TxFrame>>>,
    dropped: Vec<TxFrame>,
    /// Frames dropped so far (both directions).
    pub lost: u64,
}

impl<D: Device> std::fmt::Debug for FaultDevice<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultDevice").field("cfg", &self.cfg).field("lost", &self.lost).finish()
    }
}

impl<D: Device> FaultDevice<D> {
    /// Wraps `inner` with `cfg`, drawing from `seed`.
    pub fn new(inner: D, cfg: FaultConfig, seed: u64) -> Self {
        FaultDevice {
            inner,
            cfg,
            rng: SmallRng::seed_from_u64(seed),
            seq: 0,
            rx: BinaryHeap::new(),
            tx: BinaryHeap::new(),
            dropped: Vec::new(),
            lost: 0,
        }
    }

    fn due(&mut self, now: Instant) -> Instant {
        if self.rng.gen_bool(self.cfg.reorder) {
            now
        } else {
            now + self.cfg.delay
        }
    }

    fn flush_tx(&mut self, now: Instant, mem: &dyn PageMemory) {
        while let Some(Reverse(h)) = self.tx.peek() {
            if h.at > now {
                break;
            }
            let Reverse(h) = self.tx.pop().expect("peeked");
            if let Err(f) = self.inner.transmit(now, h.item, mem) {
                // Inner device full: try again on the next poll.
                self.tx.push(Reverse(Held { at: now, seq: h.seq, item: f }));
                break;
            }
        }
    }
}

impl<D: Device> Device for FaultDevice<D> {
    fn caps(&self) -> DeviceCaps {
        self.inner.caps()
    }

    fn receive(&mut self, now: Instant, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize {
        let mut incoming = Vec::new();
        self.inner.receive(now, budget, &mut |f: &[u8]| incoming.push(f.to_vec()));
        for f in incoming {
            if self.rng.gen_bool(self.cfg.loss) {
                self.lost += 1;
                continue;
            }
            let at = self.due(now);
            self.seq += 1;
            self.rx.push(Reverse(Held { at, seq: self.seq, item: f }));
        }
        let mut n = 0;
        while n < budget {
            match self.rx.peek() {
                Some(Reverse(h)) if h.at <= now => {
                    let Reverse(h) = self.rx.pop().expect("peeked");
                    sink(&h.item);
                    n += 1;
                }
                _ => break,
            }
        }
        n
    }

    fn transmit(&mut self, now: Instant, frame: TxFrame, mem: &dyn PageMemory) -> Result<(), TxFrame> {
        if self.rng.gen_bool(self.cfg.loss) {
            self.lost += 1;
            self.dropped.push(frame);
            return Ok(());
        }
        let at = self.due(now);
        self.seq += 1;
        self.tx.push(Reverse(Held { at, seq: self.seq, item: frame }));
        self.flush_tx(now, mem);
        Ok(())
    }

    fn poll_completions(&mut self, now: Instant, done: &mut dyn FnMut(TxFrame)) {
        for f in self.dropped.drain(..) {
            done(f);
        }
        self.inner.poll_completions(now, done);
    }

    fn poll_at(&self) -> Option<Instant> {
        let a = self.rx.peek().map(|Reverse(h)| h.at);
        let b = self.tx.peek().map(|Reverse(h)| h.at);
        [a, b, self.inner.poll_at()].into_iter().flatten().min()
    }
}

impl<D: Device> FaultDevice<D> {
    /// Sends frames whose delay has passed; call on every poll (the stack's
    /// `poll` does not know about held frames).
    pub fn tick(&mut self, now: Instant, mem: &dyn PageMemory) {
        self.flush_tx(now, mem);
    }
}
