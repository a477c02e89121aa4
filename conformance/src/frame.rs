//! Ethernet/IPv4/TCP frames for the in-memory device: inbound segments
//! built with `zcstack::wire`, outbound frames decoded (checksums checked),
//! and the gateway's ARP answers.

use std::net::Ipv4Addr;

use zcstack::wire::*;

use crate::packet::{Flags, TcpOpt};

/// The stack's MAC address.
pub const LOCAL_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
/// The gateway's MAC address: every remote frame comes from it.
pub const GATEWAY_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 0xfe]);

/// A TCP segment with absolute numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawSeg {
    /// Source address and port.
    pub src: (Ipv4Addr, u16),
    /// Destination address and port.
    pub dst: (Ipv4Addr, u16),
    /// Flags.
    pub flags: Flags,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (meaningful with the ACK flag).
    pub ack: u32,
    /// Window field as sent (unscaled).
    pub win: u16,
    /// Urgent pointer.
    pub urg: u16,
    /// Options in wire order (SACK blocks absolute).
    pub options: Vec<TcpOpt>,
    /// Payload length, bytes.
    pub len: u32,
}

/// Encodes TCP options in order, padded to a multiple of 4 with EOL.
fn encode_options(opts: &[TcpOpt]) -> Vec<u8> {
    let mut b = Vec::new();
    for o in opts {
        match *o {
            TcpOpt::Nop => b.push(1),
            TcpOpt::Eol => b.push(0),
            TcpOpt::Mss(m) => b.extend_from_slice(&[2, 4, (m >> 8) as u8, m as u8]),
            TcpOpt::WScale(s) => b.extend_from_slice(&[3, 3, s]),
            TcpOpt::SackOk => b.extend_from_slice(&[4, 2]),
            TcpOpt::Sack(blocks) => {
                let n = blocks.iter().flatten().count();
                b.extend_from_slice(&[5, (2 + 8 * n) as u8]);
                for (l, r) in blocks.iter().flatten() {
                    b.extend_from_slice(&l.to_be_bytes());
                    b.extend_from_slice(&r.to_be_bytes());
                }
            }
            TcpOpt::Ts(v, e) => {
                b.extend_from_slice(&[8, 10]);
                b.extend_from_slice(&v.to_be_bytes());
                b.extend_from_slice(&e.to_be_bytes());
            }
        }
    }
    while b.len() % 4 != 0 {
        b.push(0);
    }
    b
}

/// Parses TCP options; `None` if malformed.
fn decode_options(mut b: &[u8]) -> Option<Vec<TcpOpt>> {
    let mut v = Vec::new();
    while let Some(&kind) = b.first() {
        match kind {
            0 => {
                v.push(TcpOpt::Eol);
                break;
            }
            1 => {
                v.push(TcpOpt::Nop);
                b = &b[1..];
                continue;
            }
            _ => {}
        }
        let len = *b.get(1)? as usize;
        if len < 2 || len > b.len() {
            return None;
        }
        let d = &b[2..len];
        let be32 = |x: &[u8]| u32::from_be_bytes([x[0], x[1], x[2], x[3]]);
        match (kind, d.len()) {
            (2, 2) => v.push(TcpOpt::Mss(u16::from_be_bytes([d[0], d[1]]))),
            (3, 1) => v.push(TcpOpt::WScale(d[0])),
            (4, 0) => v.push(TcpOpt::SackOk),
            (5, n) if n % 8 == 0 && n <= 32 => {
                let mut blocks = [None; 4];
                for (i, c) in d.chunks(8).enumerate() {
                    blocks[i] = Some((be32(&c[..4]), be32(&c[4..])));
                }
                v.push(TcpOpt::Sack(blocks));
            }
            (8, 8) => v.push(TcpOpt::Ts(be32(&d[..4]), be32(&d[4..]))),
            _ => return None,
        }
        b = &b[len..];
    }
    Some(v)
}

/// Builds the Ethernet frame of an inbound segment (from the gateway).
pub fn build(s: &RawSeg) -> Vec<u8> {
    let opts = encode_options(&s.options);
    let tcp_len = 20 + opts.len() + s.len as usize;
    let mut f = vec![0u8; 14 + 20 + tcp_len];
    EthernetRepr { src_addr: GATEWAY_MAC, dst_addr: LOCAL_MAC, ethertype: EthernetProtocol::Ipv4 }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..14]));
    Ipv4Repr {
        src_addr: s.src.0,
        dst_addr: s.dst.0,
        next_header: IpProtocol::Tcp,
        payload_len: tcp_len,
        hop_limit: 64,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..34]), &Default::default());
    {
        let mut t = TcpPacket::new_unchecked(&mut f[34..]);
        t.set_src_port(s.src.1);
        t.set_dst_port(s.dst.1);
        t.set_seq_number(TcpSeqNumber(s.seq as i32));
        t.set_ack_number(TcpSeqNumber(if s.flags.ack { s.ack as i32 } else { 0 }));
        t.set_header_len((20 + opts.len()) as u8);
        t.clear_flags();
        t.set_syn(s.flags.syn);
        t.set_fin(s.flags.fin);
        t.set_rst(s.flags.rst);
        t.set_psh(s.flags.psh);
        t.set_ack(s.flags.ack);
        t.set_urg(s.flags.urg);
        t.set_ece(s.flags.ece);
        t.set_cwr(s.flags.cwr);
        t.set_window_len(s.win);
        t.set_urgent_at(s.urg);
    }
    f[54..54 + opts.len()].copy_from_slice(&opts);
    // Payload: zeros (already).
    let mut t = TcpPacket::new_unchecked(&mut f[34..]);
    t.fill_checksum(&s.src.0.into(), &s.dst.0.into());
    f
}

/// What the stack sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Out {
    /// A TCP segment.
    Tcp(RawSeg),
    /// An ARP request for `target` (answered by the runner, never compared).
    ArpRequest(Ipv4Addr),
    /// Anything else (ICMP, UDP, ARP replies): the reason it is not compared.
    Other(String),
}

/// Decodes a frame the stack transmitted.
pub fn decode(f: &[u8]) -> Out {
    let Ok(eth) = EthernetFrame::new_checked(f) else { return Out::Other("runt frame".into()) };
    if eth.ethertype() == EthernetProtocol::Arp {
        if let Ok(p) = ArpPacket::new_checked(eth.payload()) {
            if let Ok(ArpRepr::EthernetIpv4 { operation: ArpOperation::Request, target_protocol_addr, .. }) =
                ArpRepr::parse(&p)
            {
                return Out::ArpRequest(target_protocol_addr);
            }
        }
        return Out::Other("ARP".into());
    }
    let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else { return Out::Other("non-IPv4 frame".into()) };
    if !ip.verify_checksum() {
        return Out::Other("IPv4 header with a bad checksum".into());
    }
    if ip.next_header() != IpProtocol::Tcp {
        return Out::Other(format!("IP protocol {}", ip.next_header()));
    }
    let Ok(t) = TcpPacket::new_checked(ip.payload()) else { return Out::Other("truncated TCP".into()) };
    if !t.verify_checksum(&ip.src_addr().into(), &ip.dst_addr().into()) {
        return Out::Other("TCP segment with a bad checksum".into());
    }
    let Some(options) = decode_options(t.options()) else { return Out::Other("malformed TCP options".into()) };
    Out::Tcp(RawSeg {
        src: (ip.src_addr(), t.src_port()),
        dst: (ip.dst_addr(), t.dst_port()),
        flags: Flags {
            syn: t.syn(),
            fin: t.fin(),
            rst: t.rst(),
            psh: t.psh(),
            ack: t.ack(),
            urg: t.urg(),
            ece: t.ece(),
            cwr: t.cwr(),
        },
        seq: t.seq_number().0 as u32,
        ack: t.ack_number().0 as u32,
        win: t.window_len(),
        urg: t.urgent_at(),
        options,
        len: t.payload().len() as u32,
    })
}

/// The gateway's ARP reply to a request for `gw` from `local`.
pub fn arp_reply(gw: Ipv4Addr, local: Ipv4Addr) -> Vec<u8> {
    arp(ArpOperation::Reply, gw, local, LOCAL_MAC)
}

/// An ARP request from the gateway for `local` (teaches the stack the gateway's MAC).
pub fn arp_request(gw: Ipv4Addr, local: Ipv4Addr) -> Vec<u8> {
    arp(ArpOperation::Request, gw, local, EthernetAddress([0; 6]))
}

fn arp(op: ArpOperation, gw: Ipv4Addr, local: Ipv4Addr, target_mac: EthernetAddress) -> Vec<u8> {
    let repr = ArpRepr::EthernetIpv4 {
        operation: op,
        source_hardware_addr: GATEWAY_MAC,
        source_protocol_addr: gw,
        target_hardware_addr: target_mac,
        target_protocol_addr: local,
    };
    let mut f = vec![0u8; 14 + repr.buffer_len()];
    let dst = if op == ArpOperation::Request { EthernetAddress::BROADCAST } else { LOCAL_MAC };
    EthernetRepr { src_addr: GATEWAY_MAC, dst_addr: dst, ethertype: EthernetProtocol::Arp }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..14]));
    repr.emit(&mut ArpPacket::new_unchecked(&mut f[14..]));
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = RawSeg {
            src: (Ipv4Addr::new(192, 0, 2, 1), 40000),
            dst: (Ipv4Addr::new(192, 168, 0, 1), 8080),
            flags: Flags { syn: true, ack: true, ece: true, ..Default::default() },
            seq: 7,
            ack: 9,
            win: 1000,
            urg: 0,
            options: vec![
                TcpOpt::Mss(1460),
                TcpOpt::SackOk,
                TcpOpt::Ts(5, 6),
                TcpOpt::Nop,
                TcpOpt::WScale(7),
                TcpOpt::Sack([Some((1, 2)), None, None, None]),
            ],
            len: 10,
        };
        let f = build(&s);
        let Out::Tcp(mut d) = decode(&f) else { panic!("not TCP") };
        // Padding to 4 bytes adds EOL.
        assert_eq!(d.options.pop(), Some(TcpOpt::Eol));
        assert_eq!(d, s);
    }
}
