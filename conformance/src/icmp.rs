//! ICMP lines in packetdrill's syntax:
//!
//! `< icmp unreachable frag_needed mtu 1200 [1:1461(1460)]` or, with the
//! quoted segment first, `< [1:1461(1460)] icmp unreachable port_unreachable`.
//!
//! The bracket names a TCP segment the stack sent (sequence numbers
//! relative to the stack's ISS); the runner builds an ICMP error from the
//! remote address that quotes that segment's IPv4 header and first 8 TCP
//! bytes (RFC 792: what every router returns), as packetdrill does.
//! Only inbound (`<`) ICMP lines run; `>` ICMP lines are a SKIP.

use std::net::Ipv4Addr;

use zcstack::wire::*;

use crate::frame::{GATEWAY_MAC, LOCAL_MAC};
use crate::value::{head, Cursor};

/// The TCP segment an ICMP error quotes: `[start:end(len)]`, relative to our ISS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quoted {
    /// Relative sequence number of the quoted segment.
    pub seq: u32,
    /// Its payload length, bytes (sets the quoted IPv4 total length).
    pub len: u32,
}

/// An inbound ICMP line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpLine {
    /// ICMP type (RFC 792).
    pub kind: u8,
    /// ICMP code.
    pub code: u8,
    /// Next-hop MTU of a fragmentation-needed message (RFC 1191 4), bytes.
    pub mtu: Option<u16>,
    /// The quoted segment; `None` quotes relative sequence 0.
    pub quoted: Option<Quoted>,
}

/// ICMPv4 type names packetdrill accepts.
fn type_by_name(n: &str) -> Option<u8> {
    Some(match n {
        "echo_reply" => 0,
        "unreachable" | "dest_unreachable" => 3,
        "source_quench" => 4,
        "redirect" => 5,
        "echo_request" => 8,
        "time_exceeded" => 11,
        "parameter_problem" => 12,
        "timestamp_request" => 13,
        "timestamp_reply" => 14,
        "information_request" => 15,
        "information_reply" => 16,
        _ => return n.parse().ok(),
    })
}

/// ICMPv4 code names packetdrill accepts (destination unreachable,
/// RFC 792 and RFC 1812 5.2.7.1; time exceeded).
fn code_by_name(n: &str) -> Option<u8> {
    Some(match n {
        "net_unreachable" => 0,
        "host_unreachable" => 1,
        "protocol_unreachable" => 2,
        "port_unreachable" => 3,
        "frag_needed" => 4,
        "source_route_failed" => 5,
        "net_unknown" => 6,
        "host_unknown" => 7,
        "source_host_isolated" => 8,
        "net_prohibited" => 9,
        "host_prohibited" => 10,
        "net_unreachable_for_tos" => 11,
        "host_unreachable_for_tos" => 12,
        "packet_filtered" => 13,
        "precedence_violation" => 14,
        "precedence_cutoff" => 15,
        "ttl_exceeded" | "exceeded_ttl" => 0,
        "frag_reassembly_time_exceeded" | "exceeded_frag_reassembly" => 1,
        _ => return n.parse().ok(),
    })
}

fn quoted(c: &mut Cursor<'_>) -> Result<Quoted, String> {
    let r = c.rest();
    let end = r.find(']').ok_or("unterminated [start:end(len)] in an ICMP line")?;
    let inner = r[..end].trim();
    c.pos += end + 1;
    let bad = || format!("expected [start:end(len)] in an ICMP line, found \"[{inner}]\"");
    let (se, len) = inner.strip_suffix(')').and_then(|s| s.split_once('(')).ok_or_else(bad)?;
    let (s, e) = se.split_once(':').ok_or_else(bad)?;
    let (seq, end_seq, len): (u32, u32, u32) = (
        s.trim().parse().map_err(|_| bad())?,
        e.trim().parse().map_err(|_| bad())?,
        len.trim().parse().map_err(|_| bad())?,
    );
    if end_seq.wrapping_sub(seq) != len {
        return Err(format!("{seq}:{end_seq} is not {len} bytes long"));
    }
    Ok(Quoted { seq, len })
}

/// Parses what follows the direction (and `icmp` keyword position):
/// `[q] icmp TYPE [CODE] [mtu N] [q]`. `c` is at the optional leading bracket.
pub fn parse(c: &mut Cursor<'_>) -> Result<IcmpLine, String> {
    let mut q = None;
    if c.peek() == Some(b'[') {
        c.pos += 1;
        q = Some(quoted(c)?);
    }
    if c.word() != "icmp" {
        return Err("expected icmp after the quoted segment".into());
    }
    let tname = c.word();
    let kind = type_by_name(tname).ok_or_else(|| format!("unknown ICMP type \"{tname}\""))?;
    let mut line = IcmpLine { kind, code: 0, mtu: None, quoted: q };
    loop {
        match c.peek() {
            None => break,
            Some(b'[') => {
                c.pos += 1;
                if line.quoted.is_some() {
                    return Err("two quoted segments in an ICMP line".into());
                }
                line.quoted = Some(quoted(c)?);
                continue;
            }
            _ => {}
        }
        let w = c.word();
        match w {
            "mtu" => {
                let m = c.word();
                line.mtu = Some(m.parse().map_err(|_| format!("expected an MTU, found \"{m}\""))?);
            }
            "" => return Err(format!("unexpected \"{}\" in an ICMP line", head(c.rest()))),
            name => line.code = code_by_name(name).ok_or_else(|| format!("unknown ICMP code \"{name}\""))?,
        }
    }
    if line.mtu.is_some() && !(line.kind == 3 && line.code == 4) {
        return Err("mtu is only meaningful with unreachable frag_needed".into());
    }
    Ok(line)
}

/// The quoted segment in absolute terms.
#[derive(Clone, Copy, Debug)]
pub struct QuoteAbs {
    /// Our address and port (source of the quoted segment).
    pub local: (Ipv4Addr, u16),
    /// The peer's address and port.
    pub remote: (Ipv4Addr, u16),
    /// Absolute sequence number.
    pub seq: u32,
    /// Payload length, bytes.
    pub len: u32,
}

/// Builds the Ethernet frame of an ICMP error from `q.remote`'s address
/// (the router on the path) to our address, quoting `q` (IPv4 header +
/// 8 TCP bytes, RFC 792), checksummed.
pub fn build(l: &IcmpLine, q: &QuoteAbs) -> Vec<u8> {
    let mut icmp = vec![l.kind, l.code, 0, 0, 0, 0];
    icmp.extend_from_slice(&l.mtu.unwrap_or(0).to_be_bytes());
    let total = (40 + q.len).min(65_535) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
    ip.extend_from_slice(&q.local.0.octets());
    ip.extend_from_slice(&q.remote.0.octets());
    let mut ck = 0u32;
    for w in ip.chunks(2) {
        ck += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    let ipck = fold(ck);
    ip[10..12].copy_from_slice(&ipck.to_be_bytes());
    icmp.extend_from_slice(&ip);
    icmp.extend_from_slice(&q.local.1.to_be_bytes());
    icmp.extend_from_slice(&q.remote.1.to_be_bytes());
    icmp.extend_from_slice(&q.seq.to_be_bytes());
    let mut s = 0u32;
    for w in icmp.chunks(2) {
        s += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
    }
    let c = fold(s);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());

    let mut f = vec![0u8; 14 + 20 + icmp.len()];
    EthernetRepr { src_addr: GATEWAY_MAC, dst_addr: LOCAL_MAC, ethertype: EthernetProtocol::Ipv4 }
        .emit(&mut EthernetFrame::new_unchecked(&mut f[..14]));
    Ipv4Repr {
        src_addr: q.remote.0,
        dst_addr: q.local.0,
        next_header: IpProtocol::Icmp,
        payload_len: icmp.len(),
        hop_limit: 64,
    }
    .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..34]), &Default::default());
    f[34..].copy_from_slice(&icmp);
    f
}

/// One's-complement fold of a 32-bit sum to a 16-bit checksum.
fn fold(mut s: u32) -> u16 {
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<IcmpLine, String> {
        parse(&mut Cursor::new(s))
    }

    #[test]
    fn both_quote_positions_and_names() {
        let a = p("icmp unreachable frag_needed mtu 1200 [1:1461(1460)]").unwrap();
        assert_eq!((a.kind, a.code, a.mtu), (3, 4, Some(1200)));
        assert_eq!(a.quoted, Some(Quoted { seq: 1, len: 1460 }));
        let b = p("[1:1461(1460)] icmp unreachable frag_needed mtu 1200").unwrap();
        assert_eq!(a, b);
        let c = p("icmp unreachable port_unreachable").unwrap();
        assert_eq!((c.kind, c.code, c.mtu, c.quoted), (3, 3, None, None));
        assert_eq!(p("[0:0(0)] icmp unreachable host_unreachable").unwrap().code, 1);
        assert_eq!(p("icmp time_exceeded ttl_exceeded [0:0(0)]").unwrap().kind, 11);
    }

    #[test]
    fn bad_lines_are_errors() {
        for s in [
            "icmp bogus",
            "icmp unreachable nonsense",
            "icmp unreachable frag_needed mtu x",
            "icmp unreachable port_unreachable mtu 1200",
            "icmp unreachable [1:5(3)]",
            "icmp unreachable [1:5(4)",
            "[1:5(4)] icmp unreachable [1:5(4)]",
            "[1:5(4)] tcp",
        ] {
            assert!(p(s).is_err(), "{s}");
        }
    }

    #[test]
    fn frame_is_a_valid_icmp_error_quoting_the_segment() {
        let l = p("icmp unreachable frag_needed mtu 1200").unwrap();
        let q = QuoteAbs {
            local: (Ipv4Addr::new(192, 168, 0, 1), 8080),
            remote: (Ipv4Addr::new(192, 0, 2, 1), 40000),
            seq: 0x0102_0304,
            len: 1460,
        };
        let f = build(&l, &q);
        let eth = EthernetFrame::new_checked(&f[..]).unwrap();
        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.next_header(), IpProtocol::Icmp);
        let ic = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        assert!(ic.verify_checksum());
        let b = ip.payload();
        assert_eq!((b[0], b[1], u16::from_be_bytes([b[6], b[7]])), (3, 4, 1200));
        let quote = Ipv4Packet::new_unchecked(&b[8..28]);
        assert!(quote.verify_checksum());
        assert_eq!(quote.total_len(), 1500);
        assert_eq!(&b[28..36], &[0x1f, 0x90, 0x9c, 0x40, 1, 2, 3, 4]);
    }
}
