//! The transmit path of [`Stack`] for a flush of several TCP segments:
//! the segments of one connection's output pass share their headers'
//! writing (see [`Stack::flush_segs_runs`]).

use super::*;

impl<M: PageMemory> Stack<M> {
    /// [`Stack::flush_segs`] for more than one segment, where a run of
    /// segments of one connection shares the writing of its headers.
    ///
    /// `tx_hdr` holds the headers of the last segment the fast path wrote
    /// (`run`: when that is the one just before in the list). A segment
    /// that [`SegOut::follows`] it (the next of the same output pass: same
    /// addresses, ACK, window and timestamps) differs only in sequence
    /// number, flags, lengths and checksums: those are patched
    /// ([`SegOut::write_fast_follow`], [`Interface::rewrite_len`]) instead
    /// of writing everything and resolving the next hop's MAC again (the
    /// same destination at the same `now`), giving the same bytes
    /// (checked in debug builds).
    #[inline(never)]
    pub(super) fn flush_segs_runs<D: Device + ?Sized>(&mut self, now: Instant, dev: &mut D, caps: &DeviceCaps) {
        let mut run = false;
        for i in 0..self.segs.len() {
            let seg = &mut self.segs[i];
            // A follower is patched only where it was built, right behind
            // the segment it copied (checked in release builds too: one
            // compare; a list changed in between gets whole headers).
            let follows = run && usize::from(seg.follows) == i + 1;
            self.stats.tcp_rst_sent += u64::from(seg.rst);
            let buf = self.hdr_pool.pop().unwrap_or_else(|| Vec::with_capacity(HEADROOM + 64));
            if seg.fast_layout() {
                let (eth_ip, tcp) = self.tx_hdr.split_at_mut(HEADROOM);
                let tcp = tcp.try_into().expect("a whole TCP header");
                let eth_ip: &mut [u8; HEADROOM] = eth_ip.try_into().expect("HEADROOM bytes");
                let hlen = if follows {
                    debug_assert_eq!(
                        resolved_mac(&self.iface, &self.arp, *seg.dst.ip(), now).map(|m| m.0),
                        Some([eth_ip[0], eth_ip[1], eth_ip[2], eth_ip[3], eth_ip[4], eth_ip[5]]),
                        "a follower's next hop"
                    );
                    let (hlen, l4_len) = seg.write_fast_follow(tcp, &self.mem, caps.tx_checksum_offload);
                    self.iface.rewrite_len(eth_ip, IpProtocol::Tcp, *seg.dst.ip(), l4_len);
                    #[cfg(debug_assertions)]
                    {
                        let mut whole = [0u8; HEADROOM];
                        let mac = EthernetAddress([eth_ip[0], eth_ip[1], eth_ip[2], eth_ip[3], eth_ip[4], eth_ip[5]]);
                        self.iface.write_headers(&mut whole, mac, IpProtocol::Tcp, *seg.dst.ip(), l4_len);
                        debug_assert_eq!(&whole, eth_ip, "a follower's patched IP header");
                    }
                    Some(hlen)
                } else if let Some(mac) = resolved_mac(&self.iface, &self.arp, *seg.dst.ip(), now) {
                    let (hlen, l4_len) = seg.write_fast(tcp, &self.mem, caps.tx_checksum_offload);
                    self.iface.write_headers(eth_ip, mac, IpProtocol::Tcp, *seg.dst.ip(), l4_len);
                    Some(hlen)
                } else {
                    None
                };
                if let Some(hlen) = hlen {
                    run = true;
                    let frame = fast_frame(buf, &self.tx_hdr, hlen, seg);
                    transmit_frame(&mut self.backlog, &mut self.stats, &self.mem, now, dev, frame);
                    continue;
                }
            }
            run = false;
            let pkt = general_packet(buf, seg, &self.mem, caps.tx_checksum_offload);
            self.send_ip(now, dev, pkt);
        }
        self.segs.clear();
    }
}
