//! The interface: addressing, routing (on-link subnet + default gateway), and
//! building Ethernet/IPv4 headers around outgoing L4 packets.

pub mod arp;
pub mod reassembly;

use crate::config::IfaceConfig;
use crate::phy::Payload;
use crate::phy::TxFrame;
use crate::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, IpProtocol,
    Ipv4Address, ETH_HEADER, IPV4_HEADER,
};

/// Bytes reserved in front of every L4 header for Ethernet + IPv4.
pub const HEADROOM: usize = ETH_HEADER + IPV4_HEADER;

/// IPv4 version 4, header length 5 words (no options).
const VER_IHL: u16 = 0x4500;
/// Don't Fragment, fragment offset 0.
const DF: u16 = 0x4000;
/// Time to live of the packets we send.
const TTL: u8 = 64;

/// An L4 packet waiting for IP/Ethernet encapsulation. `buf` holds
/// [`HEADROOM`] reserved bytes, then the L4 header (and inline payload, for
/// small control packets); `payload` holds page-array payload.
#[derive(Debug)]
pub struct IpOut {
    /// Destination address.
    pub dst: Ipv4Address,
    /// L4 protocol.
    pub proto: IpProtocol,
    /// Reserved headroom + L4 header (+ inline payload).
    pub buf: Vec<u8>,
    /// Payload slices in page memory (one reference each).
    pub payload: crate::phy::Payload,
    /// The payload was copied in by the stack (see [`crate::phy::TxFrame::copied`]).
    pub copied: bool,
    /// TSO segment size (see [`crate::phy::TxFrame::tso_segsz`]); 0 = none.
    pub tso_segsz: u16,
}

impl IpOut {
    /// A packet whose whole L4 part is in `buf` (ICMP, UDP): no page slices.
    pub fn inline(dst: Ipv4Address, proto: IpProtocol, buf: Vec<u8>) -> IpOut {
        IpOut { dst, proto, buf, payload: crate::phy::Payload::new(), copied: false, tso_segsz: 0 }
    }
}

/// Addressing and routing of one interface.
#[derive(Debug, Clone, Copy)]
pub struct Interface {
    cfg: IfaceConfig,
    mask: u32,
}

impl Interface {
    /// An interface with `cfg`'s addresses.
    pub fn new(cfg: IfaceConfig) -> Self {
        let p = u32::from(cfg.prefix_len.min(32));
        let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
        Interface { cfg, mask }
    }

    /// Our MAC.
    pub fn mac(&self) -> EthernetAddress {
        self.cfg.mac
    }

    /// Our IPv4 address.
    pub fn addr(&self) -> Ipv4Address {
        self.cfg.addr
    }

    fn subnet_broadcast(&self) -> Ipv4Address {
        Ipv4Address::from_bits(self.cfg.addr.to_bits() | !self.mask)
    }

    /// Whether a packet to `dst` is for us (unicast or broadcast).
    pub fn accepts(&self, dst: Ipv4Address) -> bool {
        dst == self.cfg.addr
            || dst == Ipv4Address::BROADCAST
            || (self.mask != u32::MAX && dst == self.subnet_broadcast())
    }

    /// Whether `src` may be the source of a packet we accept. RFC 1122
    /// 3.2.1.3 (and 3.2.2.x for ICMP): a datagram whose source is a
    /// broadcast (limited, or this subnet's directed broadcast), multicast,
    /// "this network" (0/8), loopback (127/8) or reserved class E (240/4)
    /// address, or our own address, must never be answered nor create
    /// state; such packets are spoofed or looped back.
    pub fn valid_source(&self, src: Ipv4Address) -> bool {
        let b = src.to_bits();
        let first = (b >> 24) as u8;
        !(first == 0
            || first == 127
            || src.is_multicast()
            || first >= 240
            || src == self.cfg.addr
            || (self.mask < u32::MAX << 1 && src == self.subnet_broadcast()))
    }

    /// Whether `ip` is on the local subnet.
    pub fn on_link(&self, ip: Ipv4Address) -> bool {
        (ip.to_bits() & self.mask) == (self.cfg.addr.to_bits() & self.mask)
    }

    /// Next hop for `dst`: itself when on-link, else the gateway.
    pub fn next_hop(&self, dst: Ipv4Address) -> Option<Ipv4Address> {
        if self.on_link(dst) || dst == Ipv4Address::BROADCAST {
            Some(dst)
        } else {
            self.cfg.gateway
        }
    }

    /// Fills Ethernet and IPv4 headers into `pkt`'s headroom and makes the frame.
    ///
    /// The headers are [`Interface::write_headers`]'s.
    pub fn encapsulate(&self, mut pkt: IpOut, dst_mac: EthernetAddress) -> TxFrame {
        let l4_len: usize = pkt.buf.len() - HEADROOM + pkt.payload.iter().map(|p| p.len as usize).sum::<usize>();
        let h: &mut [u8; HEADROOM] = (&mut pkt.buf[..HEADROOM]).try_into().expect("HEADROOM bytes");
        self.write_headers(h, dst_mac, pkt.proto, pkt.dst, l4_len);
        TxFrame { header: pkt.buf, payload: pkt.payload, copied: pkt.copied, tso_segsz: pkt.tso_segsz }
    }

    /// Writes the Ethernet II and IPv4 headers of an `l4_len`-byte `proto`
    /// packet to `dst` through `dst_mac`: the bytes smoltcp's
    /// `EthernetRepr`/`Ipv4Repr::emit` write (RFC 791 3.1: version 4, IHL 5,
    /// DSCP/ECN 0, identification 0, DF set, TTL 64, no options; the total
    /// length cut to 16 bits as theirs), in straight-line code, with the
    /// header checksum summed from the field values (RFC 1071), not read
    /// back from the bytes.
    #[inline]
    pub fn write_headers(
        &self,
        h: &mut [u8; HEADROOM],
        dst_mac: EthernetAddress,
        proto: IpProtocol,
        dst: Ipv4Address,
        l4_len: usize,
    ) {
        let total_len = (IPV4_HEADER + l4_len) as u16;
        let (src, dst) = (self.cfg.addr.to_bits(), dst.to_bits());
        let ttl_proto = u16::from_be_bytes([TTL, u8::from(proto)]);
        let sum = self.ipv4_sum(proto, dst, total_len);
        h[0..6].copy_from_slice(&dst_mac.0);
        h[6..12].copy_from_slice(&self.cfg.mac.0);
        h[12..14].copy_from_slice(&u16::from(EthernetProtocol::Ipv4).to_be_bytes());
        let ip = &mut h[ETH_HEADER..];
        ip[0..2].copy_from_slice(&VER_IHL.to_be_bytes());
        ip[2..4].copy_from_slice(&total_len.to_be_bytes());
        ip[4..6].fill(0); // identification
        ip[6..8].copy_from_slice(&DF.to_be_bytes()); // fragment offset 0
        ip[8..10].copy_from_slice(&ttl_proto.to_be_bytes());
        ip[10..12].copy_from_slice(&crate::wire::be_words_checksum(sum).to_be_bytes());
        ip[12..16].copy_from_slice(&src.to_be_bytes());
        ip[16..20].copy_from_slice(&dst.to_be_bytes());
    }

    /// Rewrites the IPv4 total length and header checksum of headers
    /// [`Interface::write_headers`] wrote into `h` for `proto` and `dst`,
    /// for an L4 length of `l4_len` bytes: the bytes `write_headers` would
    /// write with that length (the rest of `h` is left as it is).
    #[inline]
    pub fn rewrite_len(&self, h: &mut [u8; HEADROOM], proto: IpProtocol, dst: Ipv4Address, l4_len: usize) {
        let total_len = (IPV4_HEADER + l4_len) as u16;
        let sum = self.ipv4_sum(proto, dst.to_bits(), total_len);
        let ip = &mut h[ETH_HEADER..];
        ip[2..4].copy_from_slice(&total_len.to_be_bytes());
        ip[10..12].copy_from_slice(&crate::wire::be_words_checksum(sum).to_be_bytes());
    }

    /// The sum of the 16-bit words of the IPv4 header `write_headers`
    /// writes (checksum field zero), from the field values.
    #[inline(always)]
    fn ipv4_sum(&self, proto: IpProtocol, dst: u32, total_len: u16) -> u64 {
        let ttl_proto = u16::from_be_bytes([TTL, u8::from(proto)]);
        u64::from(VER_IHL)
            + u64::from(total_len)
            + u64::from(DF)
            + u64::from(ttl_proto)
            + u64::from(self.cfg.addr.to_bits())
            + u64::from(dst)
    }

    /// An ARP request for `target`, or a reply to `asker` when `reply_to` is given.
    pub fn arp_frame(&self, op: ArpOperation, target_ip: Ipv4Address, target_mac: EthernetAddress) -> TxFrame {
        let repr = ArpRepr::EthernetIpv4 {
            operation: op,
            source_hardware_addr: self.cfg.mac,
            source_protocol_addr: self.cfg.addr,
            target_hardware_addr: target_mac,
            target_protocol_addr: target_ip,
        };
        let dst = if op == ArpOperation::Request { EthernetAddress::BROADCAST } else { target_mac };
        let mut buf = vec![0u8; ETH_HEADER + repr.buffer_len()];
        EthernetRepr { src_addr: self.cfg.mac, dst_addr: dst, ethertype: EthernetProtocol::Arp }
            .emit(&mut EthernetFrame::new_unchecked(&mut buf[..ETH_HEADER]));
        repr.emit(&mut ArpPacket::new_unchecked(&mut buf[ETH_HEADER..]));
        // Pad to the Ethernet minimum.
        buf.resize(buf.len().max(60), 0);
        TxFrame { header: buf, payload: Payload::new(), copied: false, tso_segsz: 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Ipv4Packet, Ipv4Repr};

    fn iface() -> Interface {
        Interface::new(IfaceConfig {
            mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
            addr: Ipv4Address::new(10, 0, 0, 2),
            prefix_len: 24,
            gateway: Some(Ipv4Address::new(10, 0, 0, 1)),
        })
    }

    /// The straight-line Ethernet/IPv4 emit writes the bytes smoltcp's
    /// `EthernetRepr::emit` + `Ipv4Repr::emit` (checksum filled) write, for
    /// every protocol and lengths up to the largest TSO frame.
    #[test]
    fn encapsulate_writes_what_smoltcp_emits() {
        let i = iface();
        let mac = EthernetAddress([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        for proto in [IpProtocol::Tcp, IpProtocol::Udp, IpProtocol::Icmp] {
            for (n, l4_len) in [0usize, 1, 20, 84, 1480, 65_515].into_iter().enumerate() {
                let dst = Ipv4Address::new(10, 0, n as u8, 200 + n as u8);
                let mut buf = vec![0xeeu8; HEADROOM + l4_len];
                buf[HEADROOM..].fill(0x11);
                let f = i.encapsulate(IpOut::inline(dst, proto, buf), mac);
                let mut want = [0u8; HEADROOM];
                EthernetRepr { src_addr: i.mac(), dst_addr: mac, ethertype: EthernetProtocol::Ipv4 }
                    .emit(&mut EthernetFrame::new_unchecked(&mut want[..ETH_HEADER]));
                Ipv4Repr { src_addr: i.addr(), dst_addr: dst, next_header: proto, payload_len: l4_len, hop_limit: 64 }
                    .emit(
                        &mut Ipv4Packet::new_unchecked(&mut want[ETH_HEADER..]),
                        &smoltcp::phy::ChecksumCapabilities::default(),
                    );
                assert_eq!(&f.header[..HEADROOM], &want[..], "{proto} {l4_len}");
                assert!(f.header[HEADROOM..].iter().all(|b| *b == 0x11));
            }
        }
    }

    #[test]
    fn routes_on_link_and_via_gateway() {
        let i = iface();
        assert_eq!(i.next_hop(Ipv4Address::new(10, 0, 0, 9)), Some(Ipv4Address::new(10, 0, 0, 9)));
        assert_eq!(i.next_hop(Ipv4Address::new(8, 8, 8, 8)), Some(Ipv4Address::new(10, 0, 0, 1)));
        assert!(i.accepts(Ipv4Address::new(10, 0, 0, 255)));
        assert!(i.accepts(Ipv4Address::BROADCAST));
        assert!(!i.accepts(Ipv4Address::new(10, 0, 0, 3)));
        for bad in [
            Ipv4Address::BROADCAST,
            Ipv4Address::new(10, 0, 0, 255),
            Ipv4Address::new(224, 0, 0, 1),
            Ipv4Address::new(239, 255, 255, 250),
            Ipv4Address::UNSPECIFIED,
            Ipv4Address::new(0, 1, 2, 3),
            Ipv4Address::new(127, 0, 0, 1),
            Ipv4Address::new(127, 9, 9, 9),
            Ipv4Address::new(240, 0, 0, 1),
            Ipv4Address::new(10, 0, 0, 2),
        ] {
            assert!(!i.valid_source(bad), "{bad}");
        }
        for good in [Ipv4Address::new(10, 0, 0, 9), Ipv4Address::new(8, 8, 8, 8), Ipv4Address::new(10, 0, 0, 0)] {
            assert!(i.valid_source(good), "{good}");
        }
        // A /31 (RFC 3021) and a /32 have no directed broadcast.
        let p2p = Interface::new(IfaceConfig { prefix_len: 31, ..i.cfg });
        assert!(p2p.valid_source(Ipv4Address::new(10, 0, 0, 3)));
        let no_gw = Interface::new(IfaceConfig { gateway: None, ..i.cfg });
        assert_eq!(no_gw.next_hop(Ipv4Address::new(8, 8, 8, 8)), None);
    }

    #[test]
    fn encapsulation_emits_valid_headers() {
        let i = iface();
        let mut buf = vec![0u8; HEADROOM];
        buf.extend_from_slice(&[1, 2, 3, 4]);
        let f = i.encapsulate(
            IpOut {
                dst: Ipv4Address::new(10, 0, 0, 9),
                proto: IpProtocol::Udp,
                buf,
                payload: crate::phy::Payload::new(),
                copied: false,
                tso_segsz: 0,
            },
            EthernetAddress([2, 0, 0, 0, 0, 9]),
        );
        let eth = EthernetFrame::new_checked(&f.header[..]).unwrap();
        assert_eq!(eth.ethertype(), EthernetProtocol::Ipv4);
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.total_len(), 24);
        assert_eq!(ip.payload(), &[1, 2, 3, 4]);
        let arp = i.arp_frame(ArpOperation::Request, Ipv4Address::new(10, 0, 0, 1), EthernetAddress([0; 6]));
        assert_eq!(arp.header.len(), 60);
    }
}
