//! The receive path of [`Stack`]: a frame from the device through
//! Ethernet, ARP, IPv4 (reassembly), and on to TCP, UDP or ICMP, with the
//! checksum checks the device did not vouch for.

use super::*;
use crate::wire::{IPV4_HEADER, TCP_HEADER};

impl<M: PageMemory> Stack<M> {
    /// Takes one received frame. Not forced inline into the poll's receive
    /// loop: that saved 0.5% of bulk's instructions but cost enginebench
    /// rr64 3% in code placement (session 21, alternated).
    pub(super) fn ingress(
        &mut self,
        now: Instant,
        frame: &[u8],
        rx: Option<&RxRef<'_, '_>>,
        caps: &DeviceCaps,
        l4_verified: bool,
    ) {
        self.stats.rx_frames += 1;
        if self.ingress_plain_tcp(now, frame, rx, caps, l4_verified) {
            return;
        }
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            self.stats.drop_eth_malformed += 1;
            return;
        };
        let dst = eth.dst_addr();
        if dst != self.iface.mac() && !dst.is_broadcast() {
            self.stats.drop_eth_not_ours += 1;
            return;
        }
        match eth.ethertype() {
            EthernetProtocol::Arp => self.ingress_arp(now, eth.payload()),
            EthernetProtocol::Ipv4 => self.ingress_ipv4(now, eth.payload(), rx, caps, l4_verified),
            _ => self.stats.drop_eth_unknown_type += 1,
        }
    }

    /// The frame of an established connection's common case, checked with
    /// one bounds check and handed to TCP without the general dispatch:
    /// unicast to our MAC, IPv4 without options and not a fragment (see
    /// [`ipv4_plain`]), TCP to our address from a valid source. Returns
    /// `false`, having done nothing, for any other frame: the general path
    /// then gives it exactly the treatment (and counted drop) it gave
    /// before. A wrong TCP checksum is the general path's drop
    /// (`drop_tcp_malformed`), counted here.
    #[inline(always)]
    fn ingress_plain_tcp(
        &mut self,
        now: Instant,
        frame: &[u8],
        rx: Option<&RxRef<'_, '_>>,
        caps: &DeviceCaps,
        l4_verified: bool,
    ) -> bool {
        if frame.len() < ETH_HEADER + IPV4_HEADER + TCP_HEADER
            || frame[..6] != self.iface.mac().0
            || frame[12..14] != [0x08, 0x00]
        {
            return false;
        }
        let Some((ip, seg)) = ipv4_plain(&frame[ETH_HEADER..], !caps.rx_checksum_verified) else {
            return false;
        };
        if ip.next_header != IpProtocol::Tcp
            || ip.dst_addr != self.iface.addr()
            || !self.iface.valid_source(ip.src_addr)
        {
            return false;
        }
        if !(caps.rx_checksum_verified || l4_verified || l4_checksum_ok(ip.src_addr, ip.dst_addr, IpProtocol::Tcp, seg))
        {
            self.stats.drop_tcp_malformed += 1;
            return true;
        }
        self.ingress_tcp_seg(now, ip.src_addr, ip.dst_addr, seg, rx);
        true
    }

    fn ingress_arp(&mut self, now: Instant, data: &[u8]) {
        let Ok(pkt) = ArpPacket::new_checked(data) else {
            self.stats.drop_arp_malformed += 1;
            return;
        };
        let Ok(ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        }) = ArpRepr::parse(&pkt)
        else {
            self.stats.drop_arp_malformed += 1;
            return;
        };
        if !source_hardware_addr.is_unicast() || source_protocol_addr.is_unspecified() {
            self.stats.drop_arp_malformed += 1;
            return;
        }
        let for_us = target_protocol_addr == self.iface.addr();
        // Learn from requests for us, replies, and gratuitous ARP of known hosts.
        if for_us || self.arp.lookup(source_protocol_addr, now).is_some() || operation == ArpOperation::Reply {
            let waiting = self.arp.learn(source_protocol_addr, source_hardware_addr, now);
            for p in waiting {
                let f = self.iface.encapsulate(p, source_hardware_addr);
                self.backlog.push_back(f);
            }
        }
        if operation == ArpOperation::Request && for_us {
            let f = self.iface.arp_frame(ArpOperation::Reply, source_protocol_addr, source_hardware_addr);
            self.backlog.push_back(f);
        }
    }

    fn ingress_ipv4(
        &mut self,
        now: Instant,
        data: &[u8],
        rx: Option<&RxRef<'_, '_>>,
        caps: &DeviceCaps,
        l4_verified: bool,
    ) {
        // The common datagram (no options, not a fragment, header checksum
        // right) read at fixed offsets; everything else, every error
        // included, takes the general parse below.
        if let Some((ip, payload)) = ipv4_plain(data, !caps.rx_checksum_verified) {
            if !self.iface.accepts(ip.dst_addr) {
                self.stats.drop_ipv4_not_ours += 1;
                return;
            }
            if !self.iface.valid_source(ip.src_addr) {
                // Spoofed or looped back (RFC 1122 3.2.1.3): never answered.
                self.stats.drop_ipv4_bad_source += 1;
                return;
            }
            self.ingress_l4(now, &ip, payload, rx, data, Checked::by(caps, l4_verified));
            return;
        }
        let Ok(pkt) = Ipv4Packet::new_checked(data) else {
            self.stats.drop_ipv4_malformed += 1;
            return;
        };
        let cks = if caps.rx_checksum_verified {
            smoltcp::phy::ChecksumCapabilities::ignored()
        } else {
            smoltcp::phy::ChecksumCapabilities::default()
        };
        let Ok(ip) = Ipv4Repr::parse(&pkt, &cks) else {
            self.stats.drop_ipv4_malformed += 1;
            return;
        };
        if !self.iface.accepts(ip.dst_addr) {
            self.stats.drop_ipv4_not_ours += 1;
            return;
        }
        let payload = &pkt.payload()[..ip.payload_len.min(pkt.payload().len())];
        let src = ip.src_addr;
        if !self.iface.valid_source(src) {
            // Spoofed or looped back (RFC 1122 3.2.1.3): never answered.
            self.stats.drop_ipv4_bad_source += 1;
            return;
        }
        if pkt.more_frags() || pkt.frag_offset() != 0 {
            let key = (src, ip.dst_addr, pkt.ident(), ip.next_header);
            let offset = usize::from(pkt.frag_offset());
            match self.reasm.add(now, key, offset, pkt.more_frags(), payload, &mut self.stats) {
                FragResult::Complete(whole) => {
                    self.stats.ipv4_reassembled += 1;
                    // The device's per-frame verdicts do not cover a reassembled datagram.
                    self.ingress_l4(now, &ip, &whole, None, data, Checked::by(caps, false));
                }
                FragResult::Pending => {}
                FragResult::Dropped => self.stats.drop_ipv4_fragment += 1,
            }
            return;
        }
        self.ingress_l4(now, &ip, payload, rx, data, Checked::by(caps, l4_verified));
    }

    /// Dispatches an IPv4 payload (whole or reassembled) to TCP, UDP or ICMP.
    fn ingress_l4(
        &mut self,
        now: Instant,
        ip: &Ipv4Repr,
        payload: &[u8],
        rx: Option<&RxRef<'_, '_>>,
        data: &[u8],
        checked: Checked,
    ) {
        let src = ip.src_addr;
        let cks = if checked.ip {
            smoltcp::phy::ChecksumCapabilities::ignored()
        } else {
            smoltcp::phy::ChecksumCapabilities::default()
        };
        match ip.next_header {
            IpProtocol::Tcp => {
                if ip.dst_addr != self.iface.addr() {
                    self.stats.drop_ipv4_not_ours += 1;
                    return;
                }
                // A short or malformed header and a wrong checksum are the
                // same counted drop, so the checksum goes first and the
                // fast path needs no separate bounds check of its own.
                if !(checked.l4 || l4_checksum_ok(src, ip.dst_addr, IpProtocol::Tcp, payload)) {
                    self.stats.drop_tcp_malformed += 1;
                    return;
                }
                self.ingress_tcp_seg(now, src, ip.dst_addr, payload, rx);
            }
            IpProtocol::Udp => {
                let Ok(up) = UdpPacket::new_checked(payload) else {
                    self.stats.drop_udp_malformed += 1;
                    return;
                };
                if !checked.l4 && up.checksum() != 0 && !l4_checksum_ok(src, ip.dst_addr, IpProtocol::Udp, payload) {
                    self.stats.drop_udp_malformed += 1;
                    return;
                }
                let from = SocketAddrV4::new(src, up.src_port());
                let end = (up.len() as usize).min(payload.len()).max(8);
                match self.udp.deliver(up.dst_port(), from, &payload[8..end]) {
                    Ok(()) => {}
                    Err(DeliverError::QueueFull) => self.stats.drop_udp_queue_full += 1,
                    Err(DeliverError::RecvBufferFull) => self.stats.drop_udp_rcvbuf_full += 1,
                    Err(DeliverError::NoSocket) => {
                        self.stats.drop_udp_no_socket += 1;
                        if self.cfg.udp_blackhole {
                            self.stats.udp_blackholed += 1;
                        } else if ip.dst_addr == self.iface.addr() {
                            self.icmp_unreachable(src, 3, data);
                        }
                    }
                }
            }
            IpProtocol::Icmp => {
                let Ok(ic) = Icmpv4Packet::new_checked(payload) else {
                    self.stats.drop_icmp_malformed += 1;
                    return;
                };
                if payload[0] == crate::tcp::icmp::DST_UNREACHABLE {
                    self.ingress_icmp_error(ip, &ic, payload, checked);
                    return;
                }
                let Ok(repr) = Icmpv4Repr::parse(&ic, &cks) else {
                    self.stats.drop_icmp_malformed += 1;
                    return;
                };
                if let Icmpv4Repr::EchoRequest { ident, seq_no, data } = repr {
                    if ip.dst_addr == self.iface.addr() {
                        let reply = Icmpv4Repr::EchoReply { ident, seq_no, data };
                        self.icmp_send(src, &reply);
                        self.stats.icmp_echo_replies += 1;
                    }
                }
                // Everything else (replies, errors) is ignored.
            }
            _ => {
                self.stats.drop_ipv4_unknown_proto += 1;
                if ip.dst_addr == self.iface.addr() {
                    self.icmp_unreachable(src, 2, data);
                }
            }
        }
    }

    /// Parses a TCP segment to us whose checksum is verified (or vouched
    /// for by the device) and hands it to the engine; a malformed header is
    /// a counted drop (`drop_tcp_malformed`).
    #[inline(always)]
    fn ingress_tcp_seg(
        &mut self,
        now: Instant,
        src: Ipv4Address,
        dst: Ipv4Address,
        seg: &[u8],
        rx: Option<&RxRef<'_, '_>>,
    ) {
        // Established connections' layouts at fixed offsets (only for a
        // header `TcpPacket::new_checked` accepts); the general parse for
        // everything else (and every error).
        if let Some((src_port, dst_port, mut s)) = crate::tcp::hdr_fast::parse_seg(seg) {
            s.rx = match rx {
                // A SYN's frame too: its footprint scales the first window.
                Some(r) if !s.payload.is_empty() || s.syn => Some(self.rx_budget.admit(r)),
                _ => None,
            };
            let local = SocketAddrV4::new(dst, dst_port);
            let remote = SocketAddrV4::new(src, src_port);
            self.tcp.ingress_seg(now, local, remote, s, None, &mut self.mem, &mut self.stats, &mut self.segs);
            return;
        }
        self.ingress_tcp_general(now, src, dst, seg, rx);
    }

    /// The general TCP parse (handshake options, SACK, odd flags, errors):
    /// out of line, the fast path stays small.
    #[inline(never)]
    fn ingress_tcp_general(
        &mut self,
        now: Instant,
        src: Ipv4Address,
        dst: Ipv4Address,
        seg: &[u8],
        rx: Option<&RxRef<'_, '_>>,
    ) {
        let Ok(tp) = TcpPacket::new_checked(seg) else {
            self.stats.drop_tcp_malformed += 1;
            return;
        };
        let ignored = smoltcp::phy::ChecksumCapabilities::ignored();
        let Ok(repr) = TcpRepr::parse(&tp, &src.into(), &dst.into(), &ignored) else {
            // SYN/FIN/RST combinations smoltcp refuses but RFC 9293
            // 3.10.7 defines (rare: out of line).
            self.ingress_tcp_odd(now, src, dst, &tp, rx);
            return;
        };
        self.ingress_tcp(now, src, dst, &repr, None, rx);
    }

    /// Hands a parsed TCP segment to the engine. Payload may stay in the
    /// frame only within the receive budget (checked when a queue keeps it);
    /// past it the connection copies what it keeps.
    #[inline(always)]
    fn ingress_tcp(
        &mut self,
        now: Instant,
        src: Ipv4Address,
        dst: Ipv4Address,
        repr: &TcpRepr<'_>,
        odd: Option<crate::tcp::odd_flags::OddFlags>,
        rx: Option<&RxRef<'_, '_>>,
    ) {
        let rx = match rx {
            Some(r) if !repr.payload.is_empty() || repr.control == smoltcp::wire::TcpControl::Syn => {
                Some(self.rx_budget.admit(r))
            }
            _ => None,
        };
        self.tcp.ingress(now, src, dst, repr, odd, rx, &mut self.mem, &mut self.stats, &mut self.segs);
    }

    /// A TCP segment smoltcp refused to parse: a SYN/FIN/RST combination
    /// RFC 9293 3.10.7 defines goes to the engine flagged, anything else is
    /// a counted drop (`drop_tcp_malformed`).
    #[cold]
    #[inline(never)]
    fn ingress_tcp_odd(
        &mut self,
        now: Instant,
        src: Ipv4Address,
        dst: Ipv4Address,
        tp: &TcpPacket<&[u8]>,
        rx: Option<&RxRef<'_, '_>>,
    ) {
        let mut hdr = [0u8; crate::tcp::odd_flags::MAX_HEADER];
        match crate::tcp::odd_flags::reparse(tp, &mut hdr) {
            Some((repr, odd)) => self.ingress_tcp(now, src, dst, &repr, Some(odd), rx),
            None => self.stats.drop_tcp_malformed += 1,
        }
    }

    /// An ICMP destination unreachable: if it quotes a TCP segment we sent
    /// (from our address), TCP checks and applies it (RFC 1122 4.2.3.9,
    /// RFC 1191, RFC 5927); anything else is ignored (malformed: counted).
    fn ingress_icmp_error(&mut self, ip: &Ipv4Repr, ic: &Icmpv4Packet<&[u8]>, payload: &[u8], checked: Checked) {
        if ip.dst_addr != self.iface.addr() {
            return;
        }
        if !checked.ip && !ic.verify_checksum() {
            self.stats.drop_icmp_malformed += 1;
            return;
        }
        match crate::tcp::icmp::parse(payload) {
            Ok(e) if *e.local.ip() == self.iface.addr() => self.tcp.icmp_error(&e, &mut self.mem, &mut self.stats),
            Ok(_) => self.stats.drop_icmp_tcp_no_conn += 1,
            Err(crate::tcp::icmp::IcmpParseError::Malformed) => self.stats.drop_icmp_malformed += 1,
            Err(crate::tcp::icmp::IcmpParseError::NotForTcp) => {}
        }
    }

    fn icmp_send(&mut self, dst: Ipv4Address, repr: &Icmpv4Repr<'_>) {
        let mut buf = vec![0u8; HEADROOM + repr.buffer_len()];
        repr.emit(
            &mut Icmpv4Packet::new_unchecked(&mut buf[HEADROOM..]),
            &smoltcp::phy::ChecksumCapabilities::default(),
        );
        self.ipq.push(IpOut::inline(dst, IpProtocol::Icmp, buf));
    }

    /// ICMP destination unreachable (code 2 protocol, 3 port) quoting the
    /// offending header and 8 bytes (RFC 792).
    fn icmp_unreachable(&mut self, dst: Ipv4Address, code: u8, ip_packet: &[u8]) {
        let quote = &ip_packet[..ip_packet.len().min(28)];
        let mut buf = vec![0u8; HEADROOM + 8];
        buf[HEADROOM] = 3;
        buf[HEADROOM + 1] = code;
        buf.extend_from_slice(quote);
        let mut c = crate::wire::Checksum::new();
        c.add(&buf[HEADROOM..]);
        let ck = c.finish();
        buf[HEADROOM + 2..HEADROOM + 4].copy_from_slice(&ck.to_be_bytes());
        self.ipq.push(IpOut::inline(dst, IpProtocol::Icmp, buf));
    }
}

/// An IPv4 datagram of the common layout, read at fixed offsets: version 4
/// with no options (IHL 5), total length within the frame, not a fragment
/// (MF clear, offset 0), and, when `verify`, a right header checksum (RFC
/// 791 3.1). Gives what `Ipv4Repr::parse` gives for it and the payload
/// (`total_length - 20` bytes, link padding cut off), or `None`: then the
/// caller runs the general parse, which owns options, fragments and every
/// error.
#[inline(always)]
fn ipv4_plain(data: &[u8], verify: bool) -> Option<(Ipv4Repr, &[u8])> {
    let h: &[u8; IPV4_HEADER] = data.get(..IPV4_HEADER)?.try_into().ok()?;
    let total = usize::from(u16::from_be_bytes([h[2], h[3]]));
    let frag = u16::from_be_bytes([h[6], h[7]]) & 0x3fff;
    if h[0] != 0x45 || total < IPV4_HEADER || total > data.len() || frag != 0 {
        return None;
    }
    if verify && crate::wire::ipv4_header_checksum(h) != 0 {
        return None;
    }
    let ip = Ipv4Repr {
        src_addr: Ipv4Address::new(h[12], h[13], h[14], h[15]),
        dst_addr: Ipv4Address::new(h[16], h[17], h[18], h[19]),
        next_header: IpProtocol::from(h[9]),
        payload_len: total - IPV4_HEADER,
        hop_limit: h[8],
    };
    Some((ip, &data[IPV4_HEADER..total]))
}

/// Verifies a TCP/UDP checksum (pseudo-header included) with the engine's fast
/// summing: the sum over a correct segment, checksum field included, is 0xffff.
fn l4_checksum_ok(src: Ipv4Address, dst: Ipv4Address, proto: IpProtocol, seg: &[u8]) -> bool {
    let Ok(len) = u16::try_from(seg.len()) else { return false };
    let mut c = crate::wire::Checksum::new();
    c.add_pseudo_header(src, dst, proto, len);
    c.add(seg);
    c.finish() == 0
}

/// Checksums a frame needs no engine check for (the device verified them).
#[derive(Clone, Copy)]
struct Checked {
    /// IPv4 header (and ICMP): the whole device verifies.
    ip: bool,
    /// TCP/UDP: the device, or its verdict on this frame.
    l4: bool,
}

impl Checked {
    fn by(caps: &DeviceCaps, l4_verified: bool) -> Checked {
        Checked { ip: caps.rx_checksum_verified, l4: caps.rx_checksum_verified || l4_verified }
    }
}
