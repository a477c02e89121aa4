//! The transmit path of [`Stack`] for a flush of several TCP segments, or
//! of bursts: the segments of one connection's output pass share their
//! headers' writing (see [`Stack::flush_segs_runs`]), and a burst for a
//! device without TSO is cut into its segments here (GSO,
//! [`Stack::flush_gso`]).

use super::*;
use crate::mem::PageSlice;

impl<M: PageMemory> Stack<M> {
    /// [`Stack::flush_segs`] for more than one segment or for a burst,
    /// where a run of segments of one connection shares the writing of its
    /// headers.
    ///
    /// `tx_hdr` holds the headers the fast path wrote whole for the first
    /// segment of the current run (`run`: the segments since, up to the
    /// one just before in the list, each followed the one before it). A
    /// segment that [`SegOut::follows`] the one before it (the next of the
    /// same output pass: same addresses, ACK, window and timestamps)
    /// differs from the run's first only in sequence number, flags,
    /// lengths and checksums: those are patched into its own copy of
    /// `tx_hdr` ([`SegOut::write_fast_follow`], [`Interface::rewrite_len`],
    /// `patched_frame`) instead of writing everything and resolving the
    /// next hop's MAC again (the same destination at the same `now`),
    /// giving the same bytes (checked in debug builds). A burst
    /// (`tso_segsz` set) goes to the device whole when it does TSO, else is
    /// cut here.
    #[inline(never)]
    pub(super) fn flush_segs_runs<D: Device + ?Sized>(&mut self, now: Instant, dev: &mut D, caps: &DeviceCaps) {
        let cut = tso_limit(caps) == 0;
        let mut run = false;
        for i in 0..self.segs.len() {
            // A follower is patched only where it was built, right behind
            // the segment it copied (checked in release builds too: one
            // compare; a list changed in between gets whole headers).
            let follows = run && usize::from(self.segs[i].follows) == i + 1;
            // Whether the next segment may follow this one: only then is a
            // run's first header kept in `tx_hdr` (else it is written
            // straight into its frame's buffer).
            let next = self.segs.get(i + 1).is_some_and(|n| usize::from(n.follows) == i + 2);
            if self.segs[i].tso_segsz == 0 {
                run = self.flush_seg(i, follows, next, now, dev, caps);
            } else if cut {
                run = self.flush_gso(i, follows, next, now, dev, caps);
            } else {
                self.stats.tcp_tso_frames += 1;
                run = self.flush_seg(i, follows, next, now, dev, caps);
            }
        }
        self.segs.clear();
    }

    /// Builds and hands over the frame of `segs[i]`: a patched copy of
    /// `tx_hdr` when it `follows` the segment before it; else, on the fast
    /// path, headers written whole — into `tx_hdr` and copied when `keep`
    /// (a segment after it may follow it), straight into the frame's buffer
    /// when not. Returns whether `tx_hdr` now holds its run's headers (the
    /// next may follow it).
    #[inline(always)]
    fn flush_seg<D: Device + ?Sized>(
        &mut self,
        i: usize,
        follows: bool,
        keep: bool,
        now: Instant,
        dev: &mut D,
        caps: &DeviceCaps,
    ) -> bool {
        let seg = &mut self.segs[i];
        self.stats.tcp_rst_sent += u64::from(seg.rst);
        let buf = self.hdr_pool.pop().unwrap_or_else(|| Vec::with_capacity(super::HDR_BUF));
        if seg.fast_layout() {
            if follows {
                debug_assert_eq!(
                    resolved_mac(&self.iface, &self.arp, *seg.dst.ip(), now).map(|m| m.0),
                    Some([
                        self.tx_hdr[0],
                        self.tx_hdr[1],
                        self.tx_hdr[2],
                        self.tx_hdr[3],
                        self.tx_hdr[4],
                        self.tx_hdr[5]
                    ]),
                    "a follower's next hop"
                );
                let (iface, mem) = (&self.iface, &self.mem);
                let frame = patched_frame(buf, &self.tx_hdr, seg, |seg, eth_ip, tcp| {
                    let (hlen, l4_len) = seg.write_fast_follow(tcp, mem, caps.tx_checksum_offload);
                    iface.rewrite_len(eth_ip, IpProtocol::Tcp, *seg.dst.ip(), l4_len);
                    #[cfg(debug_assertions)]
                    check_patched_ip(iface, eth_ip, seg, l4_len, "a follower's patched IP header");
                    hlen
                });
                transmit_frame(&mut self.backlog, &mut self.stats, &self.mem, now, dev, frame);
                return true;
            }
            if let Some(mac) = resolved_mac(&self.iface, &self.arp, *seg.dst.ip(), now) {
                if !keep {
                    let frame = whole_frame(buf, seg, &self.iface, mac, &self.mem, caps.tx_checksum_offload);
                    transmit_frame(&mut self.backlog, &mut self.stats, &self.mem, now, dev, frame);
                    return false;
                }
                let (eth_ip, tcp) = self.tx_hdr.split_at_mut(HEADROOM);
                let tcp = tcp.try_into().expect("a whole TCP header");
                let eth_ip: &mut [u8; HEADROOM] = eth_ip.try_into().expect("HEADROOM bytes");
                let (hlen, l4_len) = seg.write_fast(tcp, &self.mem, caps.tx_checksum_offload);
                self.iface.write_headers(eth_ip, mac, IpProtocol::Tcp, *seg.dst.ip(), l4_len);
                let frame = fast_frame(buf, &self.tx_hdr, hlen, seg);
                transmit_frame(&mut self.backlog, &mut self.stats, &self.mem, now, dev, frame);
                return true;
            }
        }
        let pkt = general_packet(buf, seg, &self.mem, caps.tx_checksum_offload);
        self.send_ip(now, dev, pkt);
        false
    }

    /// Hands over the frame of the burst piece now in `segs[i]` (its
    /// sequence number, flags and payload set) whose headers are a copy of
    /// `tx_hdr` (its run's first frame's) patched by `p`, with
    /// checksum offload: the bytes [`Stack::flush_seg`] writes (checked in
    /// debug builds), at a fraction of the work. A piece leaves `tx_hdr`
    /// as it is: the run goes on, and the next piece or following segment
    /// patches its own copy of the same template.
    #[inline(always)]
    fn flush_piece<D: Device + ?Sized>(
        &mut self,
        i: usize,
        p: &crate::tcp::PieceTcp,
        payload_len: usize,
        last: bool,
        now: Instant,
        dev: &mut D,
    ) {
        let seg = &mut self.segs[i];
        let buf = self.hdr_pool.pop().unwrap_or_else(|| Vec::with_capacity(super::HDR_BUF));
        let iface = &self.iface;
        #[cfg(debug_assertions)]
        let mem = &self.mem;
        let frame = patched_frame(buf, &self.tx_hdr, seg, |seg, eth_ip, tcp| {
            let (hlen, l4_len) = p.write(&mut *tcp, seg.seq.0, payload_len, last);
            iface.rewrite_len(eth_ip, IpProtocol::Tcp, *seg.dst.ip(), l4_len);
            #[cfg(debug_assertions)]
            {
                let mut whole = [0u8; crate::tcp::hdr_fast::WITH_TS];
                assert_eq!(seg.write_fast(&mut whole, mem, true), (hlen, l4_len), "a piece's lengths");
                debug_assert_eq!(whole[..hlen], tcp[..hlen], "a piece's patched TCP header");
                check_patched_ip(iface, eth_ip, seg, l4_len, "a piece's patched IP header");
            }
            hlen
        });
        transmit_frame(&mut self.backlog, &mut self.stats, &self.mem, now, dev, frame);
    }

    /// Cuts the burst `segs[i]` into segments of `tso_segsz` payload bytes
    /// (the last may be shorter) and hands each over as
    /// [`Stack::flush_seg`] does: consecutive sequence numbers, PSH and FIN
    /// only on the last, each with its own checksum — the frames
    /// segment-by-segment output gives. Each frame's payload slices hold
    /// one page reference apiece: a slice wholly in one frame passes the
    /// burst's reference on, one cut across frames gets one more per extra
    /// frame. Should a reference be refused (a page at its reference
    /// limit), the rest of the burst is not sent (its references
    /// released, `Stats::page_errors`): the data stays queued and the
    /// retransmission timer resends it. Every frame gets the burst's
    /// [`SegOut::copied`]: a frame of only stack-copied bytes in a burst
    /// that also holds application (zero-copy) buffers is marked not
    /// copied (same bytes; a device may then attach it rather than copy
    /// it). Returns as `flush_seg` does (`follows` for an empty burst).
    fn flush_gso<D: Device + ?Sized>(
        &mut self,
        i: usize,
        follows: bool,
        next: bool,
        now: Instant,
        dev: &mut D,
        caps: &DeviceCaps,
    ) -> bool {
        let seg = &mut self.segs[i];
        let segsz = u32::from(seg.tso_segsz);
        let whole = std::mem::take(&mut seg.payload);
        let (seq0, psh, fin) = (seg.seq, seg.psh, seg.fin);
        seg.tso_segsz = 0;
        // With checksum offload the frames after the first patch only
        // sequence number, flags and two length-dependent sums.
        let piece = if caps.tx_checksum_offload { seg.piece_tcp() } else { None };
        let total: u32 = whole.iter().map(|s| s.len).sum();
        self.stats.tcp_gso_bursts += u64::from(total > 0);
        // `whole[k..]` hold the burst's references; `whole[k]` is used up
        // to `used` bytes (by frames holding references of their own).
        let (mut k, mut used, mut sent) = (0usize, 0u32, 0u32);
        let mut run = follows;
        while sent < total {
            let n = segsz.min(total - sent);
            // The frame's slices go straight into the segment's (empty)
            // payload list, which the frame then takes.
            let (segs, mem) = (&mut self.segs, &mut self.mem);
            let part = &mut segs[i].payload;
            let mut need = n;
            while need > 0 {
                let s = whole[k];
                let take = (s.len - used).min(need);
                if used + take < s.len && mem.incref(s.page).is_err() {
                    // Nothing of this frame or the rest leaves.
                    self.stats.page_errors += 1;
                    for p in part.drain(..).chain(whole[k..].iter().copied()) {
                        if mem.decref(p.page).is_err() {
                            self.stats.page_errors += 1;
                        }
                    }
                    self.tcp.recycle_payload(whole);
                    return false;
                }
                part.push(PageSlice { page: s.page, off: s.off + used, len: take });
                used += take;
                need -= take;
                if used == s.len {
                    k += 1;
                    used = 0;
                }
            }
            let last = sent + n == total;
            let seg = &mut self.segs[i];
            seg.seq = seq0 + sent;
            seg.psh = psh && last;
            seg.fin = fin && last;
            run = match piece {
                Some(p) if run => {
                    self.flush_piece(i, &p, n as usize, last, now, dev);
                    true
                }
                // Its header is kept for the pieces after it, or for the
                // segment after the burst when that may follow.
                _ => self.flush_seg(i, run, !last || next, now, dev, caps),
            };
            sent += n;
        }
        // Every reference `whole` held went to a frame: the list serves a
        // later burst.
        self.tcp.recycle_payload(whole);
        run
    }
}

/// Debug builds: the patched Ethernet/IPv4 headers `eth_ip` of `seg`
/// (`l4_len` TCP bytes) are the bytes `write_headers` gives.
#[cfg(debug_assertions)]
fn check_patched_ip(iface: &Interface, eth_ip: &[u8; HEADROOM], seg: &SegOut, l4_len: usize, what: &str) {
    let mut whole = [0u8; HEADROOM];
    let mac = EthernetAddress([eth_ip[0], eth_ip[1], eth_ip[2], eth_ip[3], eth_ip[4], eth_ip[5]]);
    iface.write_headers(&mut whole, mac, IpProtocol::Tcp, *seg.dst.ip(), l4_len);
    assert_eq!(&whole, eth_ip, "{what}");
}
