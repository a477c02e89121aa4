//! `TapDevice`: a Linux tap interface as a [`Device`], so the engine can talk
//! to the Linux kernel's own TCP/IP (interop tests in a private network
//! namespace, no DPDK). Non-blocking; every transmit is a `write(2)` of one
//! frame, so completions are immediate.

use std::io;

use super::{Device, DeviceCaps, TxFrame};
use crate::mem::PageMemory;
use crate::time::Instant;

/// A tap device opened by name (created if missing; needs CAP_NET_ADMIN).
#[derive(Debug)]
pub struct TapDevice {
    iface: tun_tap::Iface,
    mtu: usize,
    rx_buf: Vec<u8>,
    tx_buf: Vec<u8>,
    done: Vec<TxFrame>,
}

impl TapDevice {
    /// Opens (or creates) tap interface `name` for frames of up to `mtu` bytes of IP.
    pub fn open(name: &str, mtu: usize) -> io::Result<TapDevice> {
        let iface = tun_tap::Iface::without_packet_info(name, tun_tap::Mode::Tap)?;
        iface.set_non_blocking()?;
        Ok(TapDevice { iface, mtu, rx_buf: vec![0; 65_536], tx_buf: Vec::with_capacity(mtu + 14), done: Vec::new() })
    }

    /// The interface name the kernel gave it.
    pub fn name(&self) -> &str {
        self.iface.name()
    }
}

impl Device for TapDevice {
    fn caps(&self) -> DeviceCaps {
        DeviceCaps { mtu: self.mtu, ..DeviceCaps::default() }
    }

    fn receive(&mut self, _now: Instant, budget: usize, sink: &mut dyn FnMut(&[u8])) -> usize {
        let mut n = 0;
        while n < budget {
            match self.iface.recv(&mut self.rx_buf) {
                Ok(len) => {
                    sink(&self.rx_buf[..len]);
                    n += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => break,
                Err(e) => {
                    tracing::warn!(error = %e, "tap read failed");
                    break;
                }
            }
        }
        n
    }

    fn transmit(&mut self, _now: Instant, frame: TxFrame, mem: &dyn PageMemory) -> Result<(), TxFrame> {
        self.tx_buf.clear();
        frame.copy_into(mem, &mut self.tx_buf);
        match self.iface.send(&self.tx_buf) {
            Ok(_) => {
                self.done.push(frame);
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Err(frame),
            Err(e) => {
                // The interface is down or gone: the frame is lost like on a wire.
                tracing::debug!(error = %e, "tap write failed; frame dropped");
                self.done.push(frame);
                Ok(())
            }
        }
    }

    fn poll_completions(&mut self, _now: Instant, done: &mut dyn FnMut(TxFrame)) {
        for f in self.done.drain(..) {
            done(f);
        }
    }
}
