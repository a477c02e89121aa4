//! Packet capture: a [`Device`] wrapper that records every received and
//! transmitted frame in pcap format (readable by `tcpdump -r`, Wireshark).
//!
//! The engine still does no I/O of its own: frames go to a [`PcapSink`] the
//! caller provides (the DPDK runtime writes rotating files, F-Stack's
//! `[pcap]` section). Timestamps are the engine's time. At most `snaplen`
//! bytes of each frame are kept.

use std::io::Write;

use super::{Device, DeviceCaps, RxFrame, TxFrame};
use crate::mem::PageMemory;
use crate::time::Instant;

/// Where captured records go.
pub trait PcapSink {
    /// Writes one record (already in pcap record format). Errors are
    /// counted by the device, never fatal to traffic.
    fn write_record(&mut self, record: &[u8]) -> std::io::Result<()>;
}

/// Records appended to any writer (a file, a `Vec<u8>`).
#[derive(Debug)]
pub struct PcapWriter<W: Write>(pub W);

impl<W: Write> PcapSink for PcapWriter<W> {
    fn write_record(&mut self, record: &[u8]) -> std::io::Result<()> {
        self.0.write_all(record)
    }
}

impl<S: PcapSink + ?Sized> PcapSink for &mut S {
    fn write_record(&mut self, record: &[u8]) -> std::io::Result<()> {
        (**self).write_record(record)
    }
}

/// The pcap global header for Ethernet frames kept up to `snaplen` bytes
/// (microsecond timestamps, little endian).
pub fn file_header(snaplen: u32) -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    h[16..20].copy_from_slice(&snaplen.to_le_bytes());
    h[20..24].copy_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
    h
}

/// A device that captures what passes through `inner`.
#[derive(Debug)]
pub struct PcapDevice<D, S> {
    inner: D,
    sink: S,
    snaplen: usize,
    record: Vec<u8>,
    /// Records written.
    pub captured: u64,
    /// Records the sink refused.
    pub errors: u64,
}

impl<D: Device, S: PcapSink> PcapDevice<D, S> {
    /// Captures `inner`'s traffic into `sink` (which must already hold a
    /// [`file_header`]), `snaplen` bytes per frame at most.
    pub fn new(inner: D, sink: S, snaplen: usize) -> Self {
        PcapDevice { inner, sink, snaplen: snaplen.max(14), record: Vec::new(), captured: 0, errors: 0 }
    }

    /// The wrapped device.
    pub fn inner(&mut self) -> &mut D {
        &mut self.inner
    }

    /// The sink.
    pub fn sink(&mut self) -> &mut S {
        &mut self.sink
    }

    fn begin(&mut self, now: Instant, orig_len: usize) {
        let us = now.total_micros();
        let incl = orig_len.min(self.snaplen);
        self.record.clear();
        self.record.extend_from_slice(&((us / 1_000_000) as u32).to_le_bytes());
        self.record.extend_from_slice(&((us % 1_000_000) as u32).to_le_bytes());
        self.record.extend_from_slice(&(incl as u32).to_le_bytes());
        self.record.extend_from_slice(&(orig_len as u32).to_le_bytes());
    }

    fn commit(&mut self) {
        match self.sink.write_record(&self.record) {
            Ok(()) => self.captured += 1,
            Err(_) => self.errors += 1,
        }
    }
}

impl<D: Device, S: PcapSink> Device for PcapDevice<D, S> {
    fn caps(&self) -> DeviceCaps {
        self.inner.caps()
    }

    fn receive(&mut self, now: Instant, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize {
        let snap = self.snaplen;
        let mut seen: Vec<(usize, Vec<u8>)> = Vec::new();
        let n = self.inner.receive(now, budget, &mut |f: &[u8]| {
            seen.push((f.len(), f[..f.len().min(snap)].to_vec()));
            sink(f);
        });
        for (len, head) in seen {
            self.begin(now, len);
            self.record.extend_from_slice(&head);
            self.commit();
        }
        n
    }

    fn receive_frames(&mut self, now: Instant, budget: usize, sink: &mut dyn FnMut(RxFrame<'_>)) -> usize {
        let snap = self.snaplen;
        let mut seen: Vec<(usize, Vec<u8>)> = Vec::new();
        let n = self.inner.receive_frames(now, budget, &mut |f: RxFrame<'_>| {
            let b = match &f {
                RxFrame::Borrowed(b) | RxFrame::L4Verified(b) => *b,
                RxFrame::Shared(r) => r.bytes(),
            };
            seen.push((b.len(), b[..b.len().min(snap)].to_vec()));
            sink(f);
        });
        for (len, head) in seen {
            self.begin(now, len);
            self.record.extend_from_slice(&head);
            self.commit();
        }
        n
    }

    fn transmit(&mut self, now: Instant, frame: TxFrame, mem: &dyn PageMemory) -> Result<(), TxFrame> {
        let len = frame.len();
        self.begin(now, len);
        let mut left = self.snaplen;
        let h = frame.header.len().min(left);
        self.record.extend_from_slice(&frame.header[..h]);
        left -= h;
        for s in &frame.payload {
            if left == 0 {
                break;
            }
            let b = mem.slice(*s);
            let k = b.len().min(left);
            self.record.extend_from_slice(&b[..k]);
            left -= k;
        }
        match self.inner.transmit(now, frame, mem) {
            Ok(()) => {
                self.commit();
                Ok(())
            }
            Err(f) => Err(f),
        }
    }

    fn flush(&mut self, now: Instant) {
        self.inner.flush(now);
    }

    fn poll_completions(&mut self, now: Instant, done: &mut dyn FnMut(TxFrame)) {
        self.inner.poll_completions(now, done);
    }

    fn poll_at(&self) -> Option<Instant> {
        self.inner.poll_at()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::HeapPages;
    use crate::phy::queue::QueueDevice;

    #[test]
    fn records_rx_and_tx_with_snaplen_and_the_original_length() {
        let mut out = file_header(64).to_vec();
        let mut dev = PcapDevice::new(QueueDevice::new(DeviceCaps::default()), PcapWriter(&mut out), 64);
        dev.inner().push_rx(vec![0xab; 100]);
        let mut got = 0;
        dev.receive(Instant::from_micros(1_500_000), 8, &mut |f| got += f.len());
        assert_eq!(got, 100);
        let mem = HeapPages::new(1, 64);
        dev.transmit(
            Instant::from_micros(2_000_001),
            TxFrame { header: vec![1; 20], payload: Default::default(), copied: false, tso_segsz: 0 },
            &mem,
        )
        .unwrap();
        assert_eq!(dev.captured, 2);
        drop(dev);
        assert_eq!(out.len(), 24 + 16 + 64 + 16 + 20);
        // First record: ts 1.5 s, 64 of 100 bytes.
        assert_eq!(&out[24..28], &1u32.to_le_bytes());
        assert_eq!(&out[28..32], &500_000u32.to_le_bytes());
        assert_eq!(&out[32..36], &64u32.to_le_bytes());
        assert_eq!(&out[36..40], &100u32.to_le_bytes());
        assert_eq!(out[40], 0xab);
        // Second: 20 of 20 bytes.
        let r2 = 24 + 16 + 64;
        assert_eq!(&out[r2 + 8..r2 + 12], &20u32.to_le_bytes());
    }
}
