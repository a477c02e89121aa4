//! UDP sockets: bind, send_to, recv_from, with per-socket queue limits:
//! a count of datagrams and a receive buffer in bytes, each datagram
//! charged its buffer (at least its payload) plus [`DATAGRAM_OVERHEAD`] (as the kernel charges
//! an skb's truesize against `sk_rcvbuf`), so neither many tiny nor many
//! full datagrams let a peer make an unread socket hold more.

use std::collections::VecDeque;
use std::net::SocketAddrV4;

use rustc_hash::FxHashMap;
use thiserror::Error;

use crate::iface::{IpOut, HEADROOM};
use crate::scatter::scatter;
use crate::wire::{Checksum, IpProtocol, Ipv4Address, UDP_HEADER};

/// Errors of UDP operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum UdpError {
    /// The port is taken.
    #[error("address in use")]
    AddrInUse,
    /// The handle does not name a live UDP socket.
    #[error("invalid socket handle")]
    InvalidHandle,
    /// No datagram queued.
    #[error("operation would block")]
    WouldBlock,
    /// The datagram does not fit in one IPv4 packet of the link.
    #[error("datagram of {0} bytes is too large")]
    TooLarge(usize),
}

/// Bytes charged per queued datagram beyond its payload: the queue entry,
/// the payload allocation's header and rounding (bytes).
pub const DATAGRAM_OVERHEAD: usize = 256;

/// Default receive buffer of a UDP socket, bytes (Linux `rmem_default`).
pub const DEFAULT_RECV_BUFFER: usize = 212_992;

/// Emptied datagram buffers a socket keeps for its next arrivals, bytes of
/// capacity: a socket read as fast as datagrams come allocates nothing in
/// steady state; under 8% of the default receive buffer it may fill. Kept
/// per socket, not engine-wide: a field in the engine moved the stack's
/// layout and cost the TCP request path 7-9% (enginebench rr64, identical
/// instruction counts).
const SPARE_BYTES: usize = 16 * 1024;
/// A datagram buffer is kept for reuse up to this capacity, bytes (a jumbo
/// frame's payload); larger ones (reassembled datagrams) are freed.
const SPARE_BUF_MAX: usize = 9 * 1024;

/// Why a received datagram was not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DeliverError {
    /// No socket is bound to the destination port.
    NoSocket,
    /// The socket already holds its limit of datagrams.
    QueueFull,
    /// The datagram would take the socket past its receive buffer.
    RecvBufferFull,
}

/// A datagram read or peeked: bytes placed in the caller's buffers, its
/// whole length (more than `placed` when it did not fit: the rest was
/// discarded by a read, `MSG_TRUNC`), and its sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// Bytes copied into the buffers.
    pub placed: usize,
    /// The datagram's payload length, bytes.
    pub len: usize,
    /// Its sender.
    pub from: SocketAddrV4,
}

/// Handle to a UDP socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct UdpHandle {
    idx: u32,
    gen: u32,
}

#[derive(Debug)]
struct UdpSock {
    port: u16,
    rxq: VecDeque<(SocketAddrV4, Vec<u8>)>,
    /// Emptied datagram buffers for the next arrivals ([`SPARE_BYTES`]).
    spare: Spares,
    /// Bytes charged for `rxq` (each datagram's buffer capacity, at least
    /// its payload, + [`DATAGRAM_OVERHEAD`]).
    rx_charged: usize,
    /// Receive buffer, bytes: the most `rx_charged` may reach.
    recv_buffer: usize,
    /// Datagrams queued since the socket was bound (wrapping): the edges
    /// an edge-triggered waiter reports, one per arrival.
    arrivals: u64,
}

#[derive(Debug, Default)]
struct Slot {
    gen: u32,
    sock: Option<UdpSock>,
}

/// UDP sockets of one stack.
#[derive(Debug)]
pub struct UdpEngine {
    slots: Vec<Slot>,
    free: Vec<u32>,
    ports: FxHashMap<u16, u32>,
    queue_limit: usize,
    recv_buffer: usize,
}

/// A socket's emptied datagram buffers ([`SPARE_BYTES`] of capacity at
/// most, each at most [`SPARE_BUF_MAX`]).
#[derive(Debug, Default)]
struct Spares {
    bufs: Vec<Vec<u8>>,
    /// Capacity of `bufs`, bytes.
    bytes: usize,
}

impl Spares {
    /// An empty buffer for `len` bytes: the last one kept when it is not
    /// more than twice the size needed (a charge stays near the payload
    /// it holds), else a new one of exactly `len`.
    fn take(&mut self, len: usize) -> Vec<u8> {
        match self.bufs.last() {
            Some(b) if b.capacity() <= 2 * len + 512 => {
                let mut b = self.bufs.pop().expect("checked above");
                self.bytes -= b.capacity();
                b.clear();
                b.reserve_exact(len);
                b
            }
            _ => Vec::with_capacity(len),
        }
    }

    /// Keeps `b` for a later datagram, within the bounds; else frees it.
    fn give(&mut self, b: Vec<u8>) {
        if b.capacity() <= SPARE_BUF_MAX && self.bytes + b.capacity() <= SPARE_BYTES {
            self.bytes += b.capacity();
            self.bufs.push(b);
        }
    }
}

impl UdpEngine {
    /// Sockets queue at most `queue_limit` datagrams each, within a
    /// receive buffer of [`DEFAULT_RECV_BUFFER`] bytes.
    pub fn new(queue_limit: usize) -> Self {
        UdpEngine {
            slots: Vec::new(),
            free: Vec::new(),
            ports: FxHashMap::default(),
            queue_limit: queue_limit.max(1),
            recv_buffer: DEFAULT_RECV_BUFFER,
        }
    }

    /// New sockets get a receive buffer of `bytes` (payload plus
    /// [`DATAGRAM_OVERHEAD`] per datagram queued; at least one datagram is
    /// always taken into an empty queue).
    pub fn with_recv_buffer(mut self, bytes: usize) -> Self {
        self.recv_buffer = bytes.max(1);
        self
    }

    /// Sets `h`'s receive buffer to `bytes` (`SO_RCVBUF`); datagrams
    /// already queued stay.
    pub fn set_recv_buffer(&mut self, h: UdpHandle, bytes: usize) -> Result<(), UdpError> {
        self.sock(h)?.recv_buffer = bytes.max(1);
        Ok(())
    }

    /// Binds `port`.
    pub fn bind(&mut self, port: u16) -> Result<UdpHandle, UdpError> {
        if port == 0 || self.ports.contains_key(&port) {
            return Err(UdpError::AddrInUse);
        }
        let sock = UdpSock {
            port,
            rxq: VecDeque::new(),
            spare: Spares::default(),
            rx_charged: 0,
            recv_buffer: self.recv_buffer,
            arrivals: 0,
        };
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize].sock = Some(sock);
                i
            }
            None => {
                self.slots.push(Slot { gen: 0, sock: Some(sock) });
                (self.slots.len() - 1) as u32
            }
        };
        self.ports.insert(port, idx);
        Ok(UdpHandle { idx, gen: self.slots[idx as usize].gen })
    }

    fn sock(&mut self, h: UdpHandle) -> Result<&mut UdpSock, UdpError> {
        match self.slots.get_mut(h.idx as usize) {
            Some(Slot { gen, sock: Some(s) }) if *gen == h.gen => Ok(s),
            _ => Err(UdpError::InvalidHandle),
        }
    }

    /// Closes the socket.
    pub fn close(&mut self, h: UdpHandle) -> Result<(), UdpError> {
        let port = self.sock(h)?.port;
        self.ports.remove(&port);
        let slot = &mut self.slots[h.idx as usize];
        slot.sock = None;
        slot.gen = slot.gen.wrapping_add(1);
        self.free.push(h.idx);
        Ok(())
    }

    /// Takes the oldest queued datagram into `buf` (the part that fits;
    /// the rest of it is discarded, as a socket's `recvfrom` does).
    pub fn recv_from(&mut self, h: UdpHandle, buf: &mut [u8]) -> Result<(usize, SocketAddrV4), UdpError> {
        self.recv_vectored(h, &mut [buf]).map(|d| (d.placed, d.from))
    }

    /// Takes the oldest queued datagram, scattered over `bufs` in order
    /// (`recvmsg`/`readv`): what fits is placed, the rest discarded (its
    /// whole length says so, for `MSG_TRUNC`). Its buffer is kept for the
    /// next arrival.
    pub fn recv_vectored(&mut self, h: UdpHandle, bufs: &mut [&mut [u8]]) -> Result<Datagram, UdpError> {
        let s = self.sock(h)?;
        let (from, d) = s.rxq.pop_front().ok_or(UdpError::WouldBlock)?;
        s.rx_charged -= d.capacity() + DATAGRAM_OVERHEAD;
        let placed = scatter(&d, bufs);
        let len = d.len();
        s.spare.give(d);
        Ok(Datagram { placed, len, from })
    }

    /// Copies the oldest queued datagram over `bufs` without taking it
    /// (`MSG_PEEK`; with its whole length, "peek to size, then read").
    pub fn peek_vectored(&mut self, h: UdpHandle, bufs: &mut [&mut [u8]]) -> Result<Datagram, UdpError> {
        let s = self.sock(h)?;
        let (from, d) = s.rxq.front().ok_or(UdpError::WouldBlock)?;
        Ok(Datagram { placed: scatter(d, bufs), len: d.len(), from: *from })
    }

    /// Builds a datagram from `h`'s port to `to`.
    pub fn send_to(
        &mut self,
        h: UdpHandle,
        src: Ipv4Address,
        to: SocketAddrV4,
        data: &[u8],
        mtu: usize,
    ) -> Result<IpOut, UdpError> {
        self.send_vectored(h, src, to, &[data], mtu)
    }

    /// Builds a datagram of the `parts` concatenated (`sendmsg`/`writev`)
    /// from `h`'s port to `to`, whole in a new frame buffer.
    pub fn send_vectored(
        &mut self,
        h: UdpHandle,
        src: Ipv4Address,
        to: SocketAddrV4,
        parts: &[&[u8]],
        mtu: usize,
    ) -> Result<IpOut, UdpError> {
        let port = self.sock(h)?.port;
        let data_len = parts.iter().fold(0usize, |n, p| n.saturating_add(p.len()));
        if data_len.saturating_add(UDP_HEADER + crate::wire::IPV4_HEADER) > mtu {
            return Err(UdpError::TooLarge(data_len));
        }
        let len = (UDP_HEADER + data_len) as u16;
        let mut buf = Vec::with_capacity(HEADROOM + len as usize);
        buf.resize(HEADROOM, 0);
        buf.extend_from_slice(&port.to_be_bytes());
        buf.extend_from_slice(&to.port().to_be_bytes());
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(&[0, 0]);
        for p in parts {
            buf.extend_from_slice(p);
        }
        let dst = *to.ip();
        let mut c = Checksum::new();
        c.add_pseudo_header(src, dst, IpProtocol::Udp, len);
        c.add(&buf[HEADROOM..]);
        let ck = match c.finish() {
            0 => 0xffff,
            x => x,
        };
        buf[HEADROOM + 6..HEADROOM + 8].copy_from_slice(&ck.to_be_bytes());
        Ok(IpOut::inline(dst, IpProtocol::Udp, buf))
    }

    /// Queues a received datagram on the socket bound to `dst_port`, unless
    /// that takes it past its datagram count or its receive buffer (bytes
    /// charged: the memory it holds, its buffer's capacity, plus
    /// [`DATAGRAM_OVERHEAD`]; an empty queue takes one datagram whatever
    /// its size, so the bound is the larger of the buffer and one datagram).
    pub(crate) fn deliver(&mut self, dst_port: u16, from: SocketAddrV4, data: &[u8]) -> Result<(), DeliverError> {
        let idx = *self.ports.get(&dst_port).ok_or(DeliverError::NoSocket)?;
        let limit = self.queue_limit;
        let s = self.slots[idx as usize].sock.as_mut().ok_or(DeliverError::NoSocket)?;
        if s.rxq.len() >= limit {
            return Err(DeliverError::QueueFull);
        }
        let mut d = s.spare.take(data.len());
        let charge = d.capacity() + DATAGRAM_OVERHEAD;
        if !s.rxq.is_empty() && s.rx_charged + charge > s.recv_buffer {
            s.spare.give(d);
            return Err(DeliverError::RecvBufferFull);
        }
        s.rx_charged += charge;
        s.arrivals = s.arrivals.wrapping_add(1);
        d.extend_from_slice(data);
        s.rxq.push_back((from, d));
        Ok(())
    }

    /// Bytes of emptied datagram buffers kept for reuse, over all sockets
    /// (at most 16 KiB each). A scan of the sockets: for diagnostics.
    pub fn spare_bytes(&self) -> usize {
        self.slots.iter().filter_map(|s| s.sock.as_ref()).map(|s| s.spare.bytes).sum()
    }

    /// Bytes charged against `h`'s receive buffer (buffer capacity plus
    /// [`DATAGRAM_OVERHEAD`] per queued datagram).
    pub fn charged(&mut self, h: UdpHandle) -> Result<usize, UdpError> {
        Ok(self.sock(h)?.rx_charged)
    }

    /// Datagrams queued on `h` since it was bound (wrapping; dropped ones
    /// not counted): each arrival is one edge for `EPOLLET`/`EV_CLEAR`.
    pub fn arrivals(&mut self, h: UdpHandle) -> Result<u64, UdpError> {
        Ok(self.sock(h)?.arrivals)
    }

    /// Datagrams queued on `h`.
    pub fn queued(&mut self, h: UdpHandle) -> Result<usize, UdpError> {
        Ok(self.sock(h)?.rxq.len())
    }
}
