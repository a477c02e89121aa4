//! smoltcp 0.12 (Interface + TcpSocket) over the same in-memory wire as
//! zcstack: `enginebench` times it, `perfdrive` counts its instructions
//! with simulated time.
use std::cell::RefCell;
use std::net::Ipv4Addr;
use std::rc::Rc;

use smoltcp::iface::{Config as SmolConfig, Interface, SocketHandle as SmolHandle, SocketSet};
use smoltcp::phy::{Checksum, DeviceCapabilities, Medium};
use smoltcp::socket::tcp::{Socket as SmolTcp, SocketBuffer};
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpAddress, IpCidr};

use super::{buf_size, wire, Clock, End, Frame, Offload, Wire, A, B};

/// A received frame; it returns to the wire's spares once consumed.
pub(crate) struct Rx {
    frame: Rc<Frame>,
    wire: Rc<RefCell<Wire>>,
}
pub(crate) struct Tx {
    side: usize,
    wire: Rc<RefCell<Wire>>,
}

impl smoltcp::phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let r = f(self.frame.bytes());
        self.wire.borrow_mut().spare.push(self.frame);
        r
    }
}

impl smoltcp::phy::TxToken for Tx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        // smoltcp fills `len` bytes in place, as into a NIC's buffer: a
        // recycled buffer of stale bytes, not zeroed first (zeroing a whole
        // frame cost smoltcp a memset per frame that zcstack's side of the
        // wire never paid; until session 22 a buffer last used for a
        // shorter frame, such as an ACK, was still zeroed past that length).
        self.wire.borrow_mut().send(self.side, false, |fr| f(fr.stale_of(len)))
    }
}

impl smoltcp::phy::Device for End {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx;
    fn receive(&mut self, _t: smoltcp::time::Instant) -> Option<(Rx, Tx)> {
        let f = self.wire.borrow_mut().q[1 - self.side].pop_front()?;
        Some((Rx { frame: f, wire: self.wire.clone() }, Tx { side: self.side, wire: self.wire.clone() }))
    }
    fn transmit(&mut self, _t: smoltcp::time::Instant) -> Option<Tx> {
        Some(Tx { side: self.side, wire: self.wire.clone() })
    }
    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ethernet;
        c.max_transmission_unit = 1514;
        // smoltcp's way to leave a checksum to the device: neither computed
        // on send nor verified on receive. It has no TSO.
        match self.offload {
            Offload::None => {}
            Offload::Checksum | Offload::ChecksumTso => {
                // L4 only, as virtio offers (and zcstack gets): IPv4 header
                // checksums stay in software. Until session 20 this wire gave
                // smoltcp `ignored()`, skipping the IPv4 header checksums that
                // zcstack computes and verifies on the same wire (3-6% of
                // smoltcp's Gbit/s in bench-results/engine-2026-12-01-s20-*;
                // `AllChecksums` keeps that case).
                c.checksum.tcp = Checksum::None;
                c.checksum.udp = Checksum::None;
            }
            Offload::AllChecksums => c.checksum = smoltcp::phy::ChecksumCapabilities::ignored(),
        }
        c
    }
}

/// Two smoltcp interfaces, a (10.0.0.1) and b (10.0.0.2), over one wire.
pub(crate) struct Smol {
    pub(crate) ia: Interface,
    pub(crate) ib: Interface,
    pub(crate) sa: SocketSet<'static>,
    pub(crate) sb: SocketSet<'static>,
    pub(crate) da: End,
    pub(crate) db: End,
    clock: Clock,
}

impl Smol {
    pub(crate) fn new(clock: Clock) -> Smol {
        Smol::with_wire(Offload::None, clock)
    }
    pub(crate) fn with_wire(offload: Offload, clock: Clock) -> Smol {
        let (mut da, mut db) = wire(offload);
        let mk = |dev: &mut End, ip: Ipv4Addr, m: u8| {
            let cfg = SmolConfig::new(HardwareAddress::Ethernet(EthernetAddress([2, 0, 0, 0, 0, m])));
            let mut i = Interface::new(cfg, dev, smoltcp::time::Instant::from_micros(0));
            i.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::Ipv4(ip), 24)).unwrap());
            i
        };
        let ia = mk(&mut da, A, 1);
        let ib = mk(&mut db, B, 2);
        Smol { ia, ib, sa: SocketSet::new(vec![]), sb: SocketSet::new(vec![]), da, db, clock }
    }
    pub(crate) fn now(&self) -> smoltcp::time::Instant {
        match self.clock {
            Clock::Wall(t0) => smoltcp::time::Instant::from_micros(t0.elapsed().as_micros() as i64),
            Clock::Simulated { t, .. } => smoltcp::time::Instant::from_micros(t as i64),
        }
    }
    /// Polls both interfaces once (a simulated clock first advances a step).
    pub(crate) fn poll(&mut self) {
        let now = self.tick();
        self.ia.poll(now, &mut self.da, &mut self.sa);
        self.ib.poll(now, &mut self.db, &mut self.sb);
    }
    /// Advances a simulated clock a step; the time to poll with.
    pub(crate) fn tick(&mut self) -> smoltcp::time::Instant {
        if let Clock::Simulated { t, step } = &mut self.clock {
            *t += *step;
        }
        self.now()
    }
    pub(crate) fn socket(buf: usize) -> SmolTcp<'static> {
        let mut s = SmolTcp::new(SocketBuffer::new(vec![0; buf]), SocketBuffer::new(vec![0; buf]));
        s.set_nagle_enabled(false);
        s
    }
    pub(crate) fn pair(&mut self, port: u16) -> (SmolHandle, SmolHandle) {
        let mut srv = Smol::socket(buf_size());
        srv.listen(port).unwrap();
        let s = self.sa.add(srv);
        let cli = Smol::socket(buf_size());
        let c = self.sb.add(cli);
        let cx = self.ib.context();
        self.sb.get_mut::<SmolTcp<'_>>(c).connect(cx, (IpAddress::Ipv4(A), port), 49152).unwrap();
        loop {
            self.poll();
            if self.sb.get::<SmolTcp<'_>>(c).may_send() && self.sa.get::<SmolTcp<'_>>(s).may_recv() {
                return (c, s);
            }
        }
    }
}
