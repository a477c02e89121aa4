//! Wire helpers on top of `smoltcp::wire`: the Internet checksum computed over
//! a header plus a list of payload slices (segments live in page buffers, not
//! in one contiguous frame), and re-exports of the header types the engine uses.

pub use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, Icmpv4Packet,
    Icmpv4Repr, IpAddress, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
    UdpPacket, UdpRepr,
};

/// Ethernet II header length.
pub const ETH_HEADER: usize = 14;
/// IPv4 header length without options (the engine never sends options).
pub const IPV4_HEADER: usize = 20;
/// TCP header length without options.
pub const TCP_HEADER: usize = 20;
/// UDP header length.
pub const UDP_HEADER: usize = 8;

/// One's-complement sum accumulator (RFC 1071) that accepts data in pieces of
/// any length, including odd lengths in the middle.
#[derive(Clone, Copy, Debug, Default)]
pub struct Checksum {
    sum: u64,
    odd: bool,
}

impl Checksum {
    /// An empty sum.
    pub fn new() -> Self {
        Checksum::default()
    }

    /// Adds `data` as if it followed everything added before.
    pub fn add(&mut self, mut data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.odd {
            self.sum += u64::from(data[0]);
            data = &data[1..];
            self.odd = false;
        }
        let mut chunks = data.chunks_exact(2);
        for c in &mut chunks {
            self.sum += u64::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            self.sum += u64::from(*last) << 8;
            self.odd = true;
        }
    }

    /// Adds the IPv4 pseudo-header of a TCP/UDP segment of `len` bytes.
    pub fn add_pseudo_header(&mut self, src: Ipv4Address, dst: Ipv4Address, proto: IpProtocol, len: u16) {
        debug_assert!(!self.odd, "pseudo-header goes first");
        self.add(&src.octets());
        self.add(&dst.octets());
        self.add(&[0, u8::from(proto)]);
        self.add(&len.to_be_bytes());
    }

    /// The folded, complemented checksum to put on the wire.
    pub fn finish(self) -> u16 {
        let mut s = self.sum;
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_is_independent_of_how_data_is_split() {
        let data: Vec<u8> = (0..1001u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut whole = Checksum::new();
        whole.add(&data);
        for split in [1usize, 2, 3, 500, 999, 1000] {
            let mut parts = Checksum::new();
            let (a, b) = data.split_at(split);
            let (b1, b2) = b.split_at(b.len() / 3);
            parts.add(a);
            parts.add(b1);
            parts.add(&[]);
            parts.add(b2);
            assert_eq!(parts.finish(), whole.finish(), "split at {split}");
        }
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to ddf2 (before complement).
        let mut c = Checksum::new();
        c.add(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
        assert_eq!(c.finish(), !0xddf2);
    }
}
