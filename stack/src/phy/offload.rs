//! Transmit offloads done in software, as a NIC would do them in hardware:
//! completing TCP checksums left as pseudo-header sums and cutting TSO
//! frames into MSS-sized segments. Test devices ([`super::sim::SimLink`]
//! with `offload`) use it to offer the engine the capabilities of a DPDK
//! port, so the engine's TSO and checksum-offload paths run under the same
//! loss, reordering and corruption tests as everything else.

use smoltcp::wire::{EthernetFrame, EthernetProtocol, IpProtocol, Ipv4Packet, TcpPacket};

use crate::wire::{Checksum, ETH_HEADER};

/// Finishes one transmitted frame: a TCP/IPv4 frame gets its checksum
/// completed and, when `tso_segsz` is non-zero and its payload is larger,
/// is cut into segments of `tso_segsz` payload bytes (consecutive sequence
/// numbers and IP identifications, FIN and PSH on the last one only, every
/// checksum filled). Anything else, or a frame too malformed to parse, is
/// returned unchanged.
pub fn finish_tx(frame: Vec<u8>, tso_segsz: u16) -> Vec<Vec<u8>> {
    let Some((ihl, thl, total)) = tcp_layout(&frame) else { return vec![frame] };
    let hdr = ETH_HEADER + ihl + thl;
    let end = ETH_HEADER + total;
    let seg = usize::from(tso_segsz);
    if seg == 0 || end - hdr <= seg {
        let mut f = frame;
        f.truncate(end);
        fill_tcp_checksum(&mut f, ihl);
        return vec![f];
    }
    let ip = Ipv4Packet::new_unchecked(&frame[ETH_HEADER..]);
    let ident = ip.ident();
    let tcp = TcpPacket::new_unchecked(&frame[ETH_HEADER + ihl..]);
    let (seq, fin, psh) = (tcp.seq_number(), tcp.fin(), tcp.psh());
    let payload = &frame[hdr..end];
    let n = payload.len().div_ceil(seg);
    let mut out = Vec::with_capacity(n);
    for (i, chunk) in payload.chunks(seg).enumerate() {
        let mut f = Vec::with_capacity(hdr + chunk.len());
        f.extend_from_slice(&frame[..hdr]);
        f.extend_from_slice(chunk);
        let last = i + 1 == n;
        {
            let mut ip = Ipv4Packet::new_unchecked(&mut f[ETH_HEADER..]);
            ip.set_total_len((ihl + thl + chunk.len()) as u16);
            ip.set_ident(ident.wrapping_add(i as u16));
            ip.fill_checksum();
        }
        {
            let mut tcp = TcpPacket::new_unchecked(&mut f[ETH_HEADER + ihl..]);
            tcp.set_seq_number(seq + i * seg);
            tcp.set_fin(fin && last);
            tcp.set_psh(psh && last);
        }
        fill_tcp_checksum(&mut f, ihl);
        out.push(f);
    }
    out
}

/// (IP header length, TCP header length, IP total length) of a well-formed
/// TCP/IPv4 frame.
fn tcp_layout(frame: &[u8]) -> Option<(usize, usize, usize)> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EthernetProtocol::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.next_header() != IpProtocol::Tcp {
        return None;
    }
    let ihl = usize::from(ip.header_len());
    let total = usize::from(ip.total_len());
    let tcp = TcpPacket::new_checked(&eth.payload()[ihl..total]).ok()?;
    Some((ihl, usize::from(tcp.header_len()), total))
}

fn fill_tcp_checksum(f: &mut [u8], ihl: usize) {
    let ip = Ipv4Packet::new_unchecked(&f[ETH_HEADER..]);
    let (src, dst, total) = (ip.src_addr(), ip.dst_addr(), usize::from(ip.total_len()));
    let l4 = &mut f[ETH_HEADER + ihl..ETH_HEADER + total];
    TcpPacket::new_unchecked(&mut *l4).set_checksum(0);
    let mut c = Checksum::new();
    c.add_pseudo_header(src, dst, IpProtocol::Tcp, l4.len() as u16);
    c.add(l4);
    TcpPacket::new_unchecked(l4).set_checksum(c.finish());
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{IpAddress, Ipv4Address, TcpSeqNumber};

    fn frame(payload: &[u8], fin: bool) -> Vec<u8> {
        let (src, dst) = (Ipv4Address::new(10, 0, 0, 1), Ipv4Address::new(10, 0, 0, 2));
        let mut f = vec![0u8; ETH_HEADER + 20 + 20 + payload.len()];
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        {
            let mut ip = Ipv4Packet::new_unchecked(&mut f[ETH_HEADER..]);
            ip.set_version(4);
            ip.set_header_len(20);
            ip.set_total_len((40 + payload.len()) as u16);
            ip.set_ident(7);
            ip.set_hop_limit(64);
            ip.set_next_header(IpProtocol::Tcp);
            ip.set_src_addr(src);
            ip.set_dst_addr(dst);
            ip.fill_checksum();
        }
        let mut tcp = TcpPacket::new_unchecked(&mut f[ETH_HEADER + 20..]);
        tcp.set_header_len(20);
        tcp.set_seq_number(TcpSeqNumber(1000));
        tcp.set_ack(true);
        tcp.set_fin(fin);
        tcp.set_psh(true);
        tcp.payload_mut().copy_from_slice(payload);
        f
    }

    #[test]
    fn tso_frames_are_cut_into_valid_segments() {
        let data: Vec<u8> = (0..3500u32).map(|i| (i * 13) as u8).collect();
        let segs = finish_tx(frame(&data, true), 1448);
        assert_eq!(segs.len(), 3);
        let mut got = Vec::new();
        for (i, f) in segs.iter().enumerate() {
            let ip = Ipv4Packet::new_checked(&f[ETH_HEADER..]).unwrap();
            assert!(ip.verify_checksum());
            assert_eq!(ip.ident(), 7 + i as u16);
            let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
            let (s, d) = (IpAddress::Ipv4(ip.src_addr()), IpAddress::Ipv4(ip.dst_addr()));
            assert!(tcp.verify_checksum(&s, &d), "segment {i}");
            assert_eq!(tcp.seq_number(), TcpSeqNumber(1000 + (i * 1448) as i32));
            assert_eq!((tcp.fin(), tcp.psh()), (i == 2, i == 2));
            got.extend_from_slice(tcp.payload());
        }
        assert_eq!(got, data);
    }

    #[test]
    fn small_frames_only_get_their_checksum_and_others_pass() {
        let f = finish_tx(frame(b"hello", false), 1448);
        assert_eq!(f.len(), 1);
        let ip = Ipv4Packet::new_checked(&f[0][ETH_HEADER..]).unwrap();
        let tcp = TcpPacket::new_checked(ip.payload()).unwrap();
        assert!(tcp.verify_checksum(&IpAddress::Ipv4(ip.src_addr()), &IpAddress::Ipv4(ip.dst_addr())));
        let junk = vec![1u8, 2, 3];
        assert_eq!(finish_tx(junk.clone(), 1448), vec![junk]);
    }
}
