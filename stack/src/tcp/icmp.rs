//! ICMP errors about our TCP segments (RFC 792, RFC 1122 4.2.3.9, RFC 1191,
//! RFC 5927): the parse of a destination-unreachable message and the
//! segment it quotes, and what it means for the connection.
//!
//! The quote is read by hand: routers quote only the IP header and 8 bytes
//! of the segment, which a whole-packet parser would reject as truncated.

use std::net::{Ipv4Addr, SocketAddrV4};

use thiserror::Error;

use super::{Seq, TcpError};

/// ICMP type 3, destination unreachable.
pub const DST_UNREACHABLE: u8 = 3;

/// Plateaus of RFC 1191 7 (table 7-1), used when a router reports
/// fragmentation needed without the next-hop MTU (an RFC 792 router).
const PLATEAUS: [u16; 10] = [32_000, 17_914, 8_166, 4_352, 2_002, 1_492, 1_006, 508, 296, 68];

/// What an ICMP error tells TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcmpError {
    /// The destination cannot be reached; the error a failed connect reports:
    /// `Refused` for port and protocol unreachable (RFC 1122 3.2.2.1: the
    /// peer host answered), `HostUnreachable` for the others (net, host,
    /// administratively prohibited, ...).
    Unreachable(TcpError),
    /// Fragmentation needed and DF set (code 4): the path MTU, bytes, as
    /// reported (RFC 1191 4) or estimated from the plateau table.
    FragNeeded(u16),
}

/// An ICMP error's claim about one of our TCP segments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IcmpTcpError {
    /// What happened.
    pub error: IcmpError,
    /// Our address and port in the quoted segment.
    pub local: SocketAddrV4,
    /// The peer's address and port in the quoted segment.
    pub remote: SocketAddrV4,
    /// The quoted segment's sequence number (checked by the connection,
    /// RFC 5927 4.1).
    pub seq: Seq,
}

/// Why an ICMP error was not passed to TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum IcmpParseError {
    /// Not destination unreachable, or a code TCP has no use for
    /// (source route failed).
    #[error("not an ICMP error for TCP")]
    NotForTcp,
    /// Too short, not IPv4, or a quote without the first 8 bytes of TCP.
    #[error("malformed ICMP error quote")]
    Malformed,
}

/// Parses an ICMP message (checksum already verified) whose quoted datagram
/// is a TCP segment we sent.
pub fn parse(icmp: &[u8]) -> Result<IcmpTcpError, IcmpParseError> {
    if icmp.len() < 8 || icmp[0] != DST_UNREACHABLE {
        return Err(IcmpParseError::NotForTcp);
    }
    let code = icmp[1];
    let quote = &icmp[8..];
    let ihl = usize::from(quote.first().ok_or(IcmpParseError::Malformed)? & 0x0f) * 4;
    if quote[0] >> 4 != 4 || ihl < 20 || quote.len() < ihl + 8 {
        return Err(IcmpParseError::Malformed);
    }
    if quote[9] != 6 {
        return Err(IcmpParseError::NotForTcp);
    }
    let src = Ipv4Addr::new(quote[12], quote[13], quote[14], quote[15]);
    let dst = Ipv4Addr::new(quote[16], quote[17], quote[18], quote[19]);
    let tcp = &quote[ihl..];
    let sport = u16::from_be_bytes([tcp[0], tcp[1]]);
    let dport = u16::from_be_bytes([tcp[2], tcp[3]]);
    let seq = Seq(u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]));
    let error = match code {
        2 | 3 => IcmpError::Unreachable(TcpError::Refused),
        4 => {
            let next_hop = u16::from_be_bytes([icmp[6], icmp[7]]);
            let total = u16::from_be_bytes([quote[2], quote[3]]);
            IcmpError::FragNeeded(if next_hop != 0 { next_hop } else { plateau_below(total) })
        }
        5 => return Err(IcmpParseError::NotForTcp),
        _ => IcmpError::Unreachable(TcpError::HostUnreachable),
    };
    Ok(IcmpTcpError { error, local: SocketAddrV4::new(src, sport), remote: SocketAddrV4::new(dst, dport), seq })
}

/// The largest RFC 1191 plateau below a datagram of `total` bytes.
fn plateau_below(total: u16) -> u16 {
    PLATEAUS.iter().copied().find(|&p| p < total).unwrap_or(68)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(code: u8, mtu: u16, quote_len: usize) -> Vec<u8> {
        let mut m = vec![3, code, 0, 0, 0, 0];
        m.extend_from_slice(&mtu.to_be_bytes());
        let mut ip = vec![0x45, 0, 0x05, 0xdc, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 9];
        ip.extend_from_slice(&[0x1f, 0x90, 0x9c, 0x40, 0, 0, 0x10, 0]);
        ip.truncate(quote_len);
        m.extend_from_slice(&ip);
        m
    }

    #[test]
    fn codes_map_to_errors_and_the_quote_is_read() {
        let e = parse(&msg(3, 0, 28)).unwrap();
        assert_eq!(e.error, IcmpError::Unreachable(TcpError::Refused));
        assert_eq!(e.local, "10.0.0.1:8080".parse().unwrap());
        assert_eq!(e.remote, "10.0.0.9:40000".parse().unwrap());
        assert_eq!(e.seq, Seq(0x1000));
        for code in [0, 1, 9, 10, 13] {
            assert_eq!(parse(&msg(code, 0, 28)).unwrap().error, IcmpError::Unreachable(TcpError::HostUnreachable));
        }
        assert_eq!(parse(&msg(4, 1400, 28)).unwrap().error, IcmpError::FragNeeded(1400));
        // No next-hop MTU: the plateau below the quoted length (1500).
        assert_eq!(parse(&msg(4, 0, 28)).unwrap().error, IcmpError::FragNeeded(1492));
        assert_eq!(parse(&msg(5, 0, 28)), Err(IcmpParseError::NotForTcp));
    }

    #[test]
    fn short_quotes_are_malformed() {
        for len in [0, 10, 20, 27] {
            assert_eq!(parse(&msg(3, 0, len)), Err(IcmpParseError::Malformed), "{len}");
        }
    }
}
