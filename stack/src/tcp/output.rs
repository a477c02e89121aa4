//! Output: segments to send ([`SegOut`]) with their header encoding, and the
//! pass that asks each connection marked dirty for its segments.

use super::*;

impl TcpEngine {
    /// Produces the segments of every connection with something to send.
    ///
    /// `burst`: new data may leave in bursts of up to `burst.max` bytes of
    /// TCP payload (0 or under two segments: none), cut into MSS-sized
    /// segments by the device (TSO) or, with `burst.gso`, by the stack's
    /// flush; retransmissions always go one segment at a time.
    #[inline]
    pub(crate) fn dispatch<M: PageMemory + ?Sized>(
        &mut self,
        now: Instant,
        mem: &mut M,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
        burst: BurstLimit,
    ) {
        // Most polls have nothing to send: the check is inlined into the
        // caller, so they pay no call into (nor the register saves of) the
        // large output body.
        if !self.dirty.is_empty() {
            self.dispatch_dirty(now, mem, stats, out, burst);
        }
    }

    /// [`TcpEngine::dispatch`] for a non-empty dirty list.
    #[inline(never)]
    fn dispatch_dirty<M: PageMemory + ?Sized>(
        &mut self,
        now: Instant,
        mem: &mut M,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
        burst: BurstLimit,
    ) {
        // Walked in place: nothing below marks a connection (output,
        // accounting and scheduling never do), so the list cannot grow
        // during the walk. A connection its pass limit stopped stays
        // marked, moved to the front (`kept` <= `i`), for the next pass;
        // the rest of the list is dropped after the walk.
        let mut i = 0;
        let mut kept = 0;
        while let Some(&idx) = self.dirty.get(i) {
            i += 1;
            if let Some(Slot { sock: Some(Sock::Conn(c)), .. }) = self.slots.get_mut(idx as usize) {
                c.dirty = false;
                if c.output_due() && c.output(now, mem, stats, out, burst.max, burst.gso, &mut self.payload_spares) {
                    c.dirty = true;
                    self.dirty[kept] = idx;
                    kept += 1;
                }
                let pages = c.send_pages(1).0;
                self.pressure.account(idx, pages);
                table::rearm(c, &mut self.timers, idx);
            }
        }
        self.dirty.truncate(kept);
    }

    /// Whether any connection has output pending.
    pub fn has_dirty(&self) -> bool {
        !self.dirty.is_empty()
    }
}

/// How far connections' output may batch new data ([`TcpEngine::dispatch`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BurstLimit {
    /// Payload bytes per burst at most.
    pub max: u32,
    /// The stack cuts the bursts (GSO), not the device (TSO).
    pub gso: bool,
}

/// A segment to send, before IP/Ethernet encapsulation.
#[derive(Debug)]
pub(crate) struct SegOut {
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub seq: Seq,
    pub ack: Option<Seq>,
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
    pub window: u16,
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
    pub sack_permitted: bool,
    /// SACK blocks (left, right), the first `sack_len` valid; the fourth
    /// only without timestamps. Plain pairs and a count (not `Option`s)
    /// keep the segment within 128 bytes, moved by inline stores instead
    /// of a `memcpy` call on the per-segment path.
    pub sack: [(u32, u32); 4],
    /// How many of `sack` are valid (0..=4).
    pub sack_len: u8,
    pub ts: Option<(u32, u32)>,
    pub payload: crate::phy::Payload,
    /// The payload was copied in by the stack (see [`crate::phy::TxFrame::copied`]).
    pub copied: bool,
    /// Non-zero: more than one segment's payload, cut into segments of
    /// this size by the device (TSO, [`crate::phy::TxFrame::tso_segsz`])
    /// or, on a device without TSO, by the stack's flush (GSO).
    pub tso_segsz: u16,
    /// Built right behind the segment before it in the output list, for
    /// the same connection in the same output pass, with that segment's
    /// addresses, ACK, window, SACK blocks and timestamps
    /// ([`Conn::send_data_next`]): its header differs only in sequence
    /// number, flags, lengths and checksums ([`SegOut::write_fast_follow`]).
    /// 0: not such a segment (or built past index 65,534); else 1 + this
    /// segment's index in the output list when it was built, so a flush
    /// that finds it elsewhere (a segment dropped or inserted before it
    /// since) writes its header whole.
    pub follows: u16,
}

// The per-segment path moves SegOut by inline stores (see `sack`).
const _: () = assert!(std::mem::size_of::<SegOut>() <= 128);

impl SegOut {
    pub fn empty(src: SocketAddrV4, dst: SocketAddrV4, seq: Seq) -> SegOut {
        SegOut {
            src,
            dst,
            seq,
            ack: None,
            syn: false,
            fin: false,
            rst: false,
            psh: false,
            window: 0,
            mss: None,
            wscale: None,
            sack_permitted: false,
            sack: [(0, 0); 4],
            sack_len: 0,
            ts: None,
            payload: crate::phy::Payload::new(),
            copied: false,
            tso_segsz: 0,
            follows: 0,
        }
    }

    pub fn rst(src: SocketAddrV4, dst: SocketAddrV4, seq: Seq, ack: Option<Seq>) -> SegOut {
        let mut s = SegOut::empty(src, dst, seq);
        s.rst = true;
        s.ack = ack;
        s
    }

    /// Writes the TCP header after `headroom` bytes of `buf` and fills the
    /// checksum over header and payload; with `checksum_offload` the field
    /// holds the pseudo-header sum for the device to complete.
    pub fn emit(&self, buf: &mut Vec<u8>, headroom: usize, mem: &dyn PageMemory, checksum_offload: bool) {
        if self.fast_layout() {
            let mut tcp = [0u8; hdr_fast::WITH_TS];
            let (hlen, _) = self.write_fast(&mut tcp, mem, checksum_offload);
            buf.resize(headroom, 0);
            buf.extend_from_slice(&tcp[..hlen]);
            return;
        }
        let control = match (self.syn, self.fin, self.rst) {
            (true, _, _) => TcpControl::Syn,
            (_, true, _) => TcpControl::Fin,
            (_, _, true) => TcpControl::Rst,
            _ if self.psh => TcpControl::Psh,
            _ => TcpControl::None,
        };
        let repr = TcpRepr {
            src_port: self.src.port(),
            dst_port: self.dst.port(),
            control,
            seq_number: self.seq.into(),
            ack_number: self.ack.map(Into::into),
            window_len: self.window,
            window_scale: self.wscale,
            max_seg_size: self.mss,
            sack_permitted: self.sack_permitted,
            sack_ranges: [None; 3],
            timestamp: self.ts.map(|(v, e)| smoltcp::wire::TcpTimestampRepr::new(v, e)),
            payload: &[],
        };
        // SACK blocks (never on a SYN) are written here, not by smoltcp,
        // whose option holds three: without timestamps four fit (RFC 2018 3).
        let sack_opts =
            if self.syn { None } else { sack_option_bytes(&self.sack[..usize::from(self.sack_len)], self.ts) };
        let repr = if sack_opts.is_some() { TcpRepr { timestamp: None, ..repr } } else { repr };
        let hlen = repr.header_len() + sack_opts.as_ref().map_or(0, |o| o.len());
        buf.resize(headroom + hlen, 0);
        let mut pkt = TcpPacket::new_unchecked(&mut buf[headroom..]);
        let src = *self.src.ip();
        let dst = *self.dst.ip();
        repr.emit(&mut pkt, &src.into(), &dst.into(), &smoltcp::phy::ChecksumCapabilities::ignored());
        if let Some(o) = &sack_opts {
            pkt.set_header_len(hlen as u8);
            let start = headroom + repr.header_len();
            buf[start..start + o.len()].copy_from_slice(o);
        }
        let mut pkt = TcpPacket::new_unchecked(&mut buf[headroom..]);
        // TcpControl carries one flag: add PSH back to a FIN segment.
        if self.fin && !self.syn {
            pkt.set_fin(true);
            pkt.set_psh(self.psh);
        }
        self.fill_checksum(buf, headroom, hlen, mem, checksum_offload);
    }

    /// Whether the segment has an established connection's header layout
    /// (no SYN, SACK block, MSS, window scale nor SACK-permitted: no option
    /// loop), which [`SegOut::write_fast`] writes; the rest take the
    /// general emit.
    #[inline]
    pub(crate) fn fast_layout(&self) -> bool {
        !(self.syn || self.sack_len != 0 || self.mss.is_some() || self.wscale.is_some() || self.sack_permitted)
    }

    /// The fixed-layout header of a [`SegOut::fast_layout`] segment. As the
    /// general path: FIN wins over RST; PSH rides on FIN or goes alone,
    /// never on a RST.
    #[inline(always)]
    fn fast_hdr(&self) -> hdr_fast::Hdr {
        let rst = self.rst && !self.fin;
        hdr_fast::Hdr {
            src_port: self.src.port(),
            dst_port: self.dst.port(),
            seq: self.seq.0,
            ack: self.ack.map(|a| a.0),
            flags: hdr_fast::flag_bits(self.fin, rst, self.psh && !rst),
            window: self.window,
            ts: self.ts,
        }
    }

    /// Writes the header of a [`SegOut::fast_layout`] segment into the
    /// first [`hdr_fast::Hdr::len`] bytes of `out` with its checksum (the
    /// rest untouched), and returns (header length, TCP length: header +
    /// payload), bytes.
    ///
    /// The checksum (RFC 9293 3.1, RFC 1071) is one pass over the payload,
    /// which also gives its length, plus the pseudo-header and the header
    /// summed from the field values (RFC 1071 2(C); no second pass over
    /// the bytes just written); with `checksum_offload` the field holds the
    /// pseudo-header sum for the device (a TSO frame's without the length,
    /// DPDK's `RTE_MBUF_F_TX_TCP_SEG` contract) and the payload is not read.
    #[inline]
    pub(crate) fn write_fast<P: PageMemory + ?Sized>(
        &self,
        out: &mut [u8; hdr_fast::WITH_TS],
        mem: &P,
        checksum_offload: bool,
    ) -> (usize, usize) {
        debug_assert!(self.fast_layout());
        debug_assert!(self.tso_segsz == 0 || checksum_offload, "TSO needs checksum offload");
        // The payload first: the header's fields are read after its loop.
        let (c, payload_len) = self.payload_sum(mem, checksum_offload);
        let h = self.fast_hdr();
        let hlen = h.len();
        h.write(out);
        let field = self.fast_checksum(c, &h, payload_len, checksum_offload);
        out[16..18].copy_from_slice(&field.to_be_bytes());
        (hlen, hlen + payload_len)
    }

    /// The payload's length and, without `checksum_offload`, its sum (the
    /// payload starts at an even offset, the header being whole 32-bit
    /// words, where a new sum starts).
    #[inline(always)]
    fn payload_sum<P: PageMemory + ?Sized>(&self, mem: &P, checksum_offload: bool) -> (Checksum, usize) {
        let mut c = Checksum::new();
        let mut payload_len = 0usize;
        if checksum_offload {
            for p in &self.payload {
                payload_len += p.len as usize;
            }
        } else {
            for p in &self.payload {
                payload_len += p.len as usize;
                c.add(mem.slice(*p));
            }
        }
        (c, payload_len)
    }

    /// The TCP checksum field of fast header `h` over a payload whose sum
    /// is `c` (RFC 9293 3.1 pseudo-header); with `checksum_offload`, the
    /// pseudo-header sum the device completes (length 0 for TSO).
    #[inline(always)]
    fn fast_checksum(&self, mut c: Checksum, h: &hdr_fast::Hdr, payload_len: usize, checksum_offload: bool) -> u16 {
        let hlen = h.len();
        let pseudo = self.pseudo_sum();
        if checksum_offload {
            let l4_len = if self.tso_segsz > 0 { 0 } else { (hlen + payload_len) as u16 };
            c.add_be_words(pseudo + u64::from(l4_len));
            !c.finish()
        } else {
            let l4_len = (hlen + payload_len) as u16;
            c.add_be_words(pseudo + u64::from(l4_len) + h.be_sum());
            c.finish()
        }
    }

    /// What the frames cut from this burst (GSO) share when the device
    /// completes checksums: header length, the pseudo-header sum without
    /// the length, and the flags byte of a middle and of the last frame
    /// (PSH and FIN only on the last). `None` when its header is not the
    /// fast layout. With it [`PieceTcp::write`] patches each frame's TCP
    /// header from the one before it.
    pub(crate) fn piece_tcp(&self) -> Option<PieceTcp> {
        if !self.fast_layout() || self.rst {
            return None;
        }
        let mut h = self.fast_hdr();
        let flags_last = h.flags_byte();
        h.flags = 0;
        let flags_mid = h.flags_byte();
        Some(PieceTcp { pseudo: self.pseudo_sum(), hlen: h.len(), flags_mid, flags_last })
    }

    /// The pseudo-header's addresses and protocol as a sum of 32-bit words
    /// (RFC 9293 3.1), the TCP length left out.
    #[inline(always)]
    fn pseudo_sum(&self) -> u64 {
        u64::from(self.src.ip().to_bits()) + u64::from(self.dst.ip().to_bits()) + u64::from(u8::from(IpProtocol::Tcp))
    }

    /// [`SegOut::write_fast`] for a [`SegOut::follows`] segment, into an
    /// `out` that holds a copy of its run's first header (as `write_fast`
    /// wrote it; every segment since followed the one before it, so all
    /// but these fields are equal): only what can differ is written
    /// (sequence number, flags byte, checksum), giving the bytes
    /// `write_fast` gives (checked in debug builds); returns the same
    /// (header length, TCP length), bytes.
    #[inline(always)]
    pub(crate) fn write_fast_follow<P: PageMemory + ?Sized>(
        &self,
        out: &mut [u8; hdr_fast::WITH_TS],
        mem: &P,
        checksum_offload: bool,
    ) -> (usize, usize) {
        debug_assert!(self.fast_layout());
        let (c, payload_len) = self.payload_sum(mem, checksum_offload);
        let h = self.fast_hdr();
        let hlen = h.len();
        out[4..8].copy_from_slice(&h.seq.to_be_bytes());
        out[13] = h.flags_byte();
        let field = self.fast_checksum(c, &h, payload_len, checksum_offload);
        out[16..18].copy_from_slice(&field.to_be_bytes());
        #[cfg(debug_assertions)]
        {
            let mut whole = [0u8; hdr_fast::WITH_TS];
            let r = self.write_fast(&mut whole, mem, checksum_offload);
            debug_assert_eq!(r, (hlen, hlen + payload_len));
            debug_assert_eq!(whole[..hlen], out[..hlen], "a follower's patched header differs from write_fast's");
        }
        (hlen, hlen + payload_len)
    }

    /// Fills the checksum of the header written at `headroom` (`hlen`
    /// bytes, checksum field zero) over header and payload, or with
    /// `checksum_offload` the pseudo-header sum for the device.
    fn fill_checksum(
        &self,
        buf: &mut [u8],
        headroom: usize,
        hlen: usize,
        mem: &dyn PageMemory,
        checksum_offload: bool,
    ) {
        let mut pkt = TcpPacket::new_unchecked(&mut buf[headroom..]);
        pkt.set_checksum(0);
        let (src, dst) = (*self.src.ip(), *self.dst.ip());
        let payload_len: usize = self.payload.iter().map(|p| p.len as usize).sum();
        let mut c = Checksum::new();
        // A TSO frame's pseudo-header sum leaves the length out: the device
        // adds each cut segment's own (RTE_MBUF_F_TX_TCP_SEG contract).
        let l4_len = if self.tso_segsz > 0 { 0 } else { (hlen + payload_len) as u16 };
        c.add_pseudo_header(src, dst, IpProtocol::Tcp, l4_len);
        debug_assert!(self.tso_segsz == 0 || checksum_offload, "TSO needs checksum offload");
        if checksum_offload {
            // The NIC completes the sum from the pseudo-header sum left in
            // the field (DPDK's RTE_MBUF_F_TX_TCP_CKSUM contract, virtio's
            // NEEDS_CSUM): the payload is never read by the CPU.
            pkt.set_checksum(!c.finish());
            return;
        }
        c.add(&buf[headroom..headroom + hlen]);
        for p in &self.payload {
            c.add(mem.slice(*p));
        }
        let mut pkt = TcpPacket::new_unchecked(&mut buf[headroom..]);
        pkt.set_checksum(c.finish());
    }
}

/// The shared part of the TCP headers of one burst's frames (GSO with
/// checksum offload, [`SegOut::piece_tcp`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct PieceTcp {
    pseudo: u64,
    hlen: usize,
    flags_mid: u8,
    flags_last: u8,
}

impl PieceTcp {
    /// Patches the TCP header in `out` (a copy of its run's first frame's,
    /// as [`SegOut::write_fast`] wrote it) for the frame at `seq`
    /// with `payload_len` bytes: sequence number, flags, and the
    /// pseudo-header sum the device completes — the bytes `write_fast`
    /// gives that frame. Returns (header length, TCP length), bytes.
    #[inline(always)]
    pub(crate) fn write(
        &self,
        out: &mut [u8; hdr_fast::WITH_TS],
        seq: u32,
        payload_len: usize,
        last: bool,
    ) -> (usize, usize) {
        out[4..8].copy_from_slice(&seq.to_be_bytes());
        out[13] = if last { self.flags_last } else { self.flags_mid };
        let l4_len = self.hlen + payload_len;
        let mut c = Checksum::new();
        c.add_be_words(self.pseudo + l4_len as u64);
        out[16..18].copy_from_slice(&(!c.finish()).to_be_bytes());
        (self.hlen, l4_len)
    }
}

/// The options of an ACK carrying SACK blocks, laid out as Linux and
/// FreeBSD do: `nop, nop, TS` (when `ts` is set) then `nop, nop, SACK`
/// (RFC 2018 3: kind 5, length 2 + 8n; RFC 7323 3.2 for the timestamps),
/// 4-byte aligned, at most 40 bytes: three blocks with timestamps, four
/// without. `None` when there is no block.
pub(super) fn sack_option_bytes(blocks: &[(u32, u32)], ts: Option<(u32, u32)>) -> Option<OptBytes> {
    let max = if ts.is_some() { 3 } else { 4 };
    let n = blocks.len().min(max);
    if n == 0 {
        return None;
    }
    let mut o = OptBytes { buf: [0; 40], len: 0 };
    if let Some((val, ecr)) = ts {
        o.push(&[1, 1, 8, 10]);
        o.push(&val.to_be_bytes());
        o.push(&ecr.to_be_bytes());
    }
    o.push(&[1, 1, 5, 2 + 8 * n as u8]);
    for &(l, r) in &blocks[..n] {
        o.push(&l.to_be_bytes());
        o.push(&r.to_be_bytes());
    }
    Some(o)
}

/// TCP option bytes in a fixed 40-byte buffer (no allocation per segment).
pub(super) struct OptBytes {
    buf: [u8; 40],
    len: usize,
}

impl OptBytes {
    /// Appends `b`; the caller keeps the total within 40 bytes.
    fn push(&mut self, b: &[u8]) {
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
    }
}

impl std::ops::Deref for OptBytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

#[cfg(test)]
mod emit_tests {
    use super::*;
    use crate::mem::HeapPages;

    /// With checksum offload the field holds the pseudo-header sum for the
    /// device to finish: with the L4 length for a plain frame, without it
    /// for a TSO frame (each cut segment adds its own, DPDK's contract).
    #[test]
    fn offloaded_checksums_leave_the_pseudo_header_sum() {
        let mem = HeapPages::new(1, 64);
        let (src, dst) = (SocketAddrV4::new([10, 0, 0, 1].into(), 80), SocketAddrV4::new([10, 0, 0, 2].into(), 9));
        for tso in [0u16, 1448] {
            let mut s = SegOut::empty(src, dst, Seq(1));
            s.tso_segsz = tso;
            let mut buf = Vec::new();
            s.emit(&mut buf, 0, &mem, true);
            let mut c = Checksum::new();
            let len = if tso > 0 { 0 } else { buf.len() as u16 };
            c.add_pseudo_header(*src.ip(), *dst.ip(), IpProtocol::Tcp, len);
            let field = u16::from_be_bytes([buf[16], buf[17]]);
            assert_eq!(field, !c.finish(), "tso {tso}");
        }
    }

    /// SACK blocks go out as `nop, nop, TS, nop, nop, SACK`: four blocks
    /// without timestamps (40 option bytes), three with (RFC 2018 3); the
    /// checksum covers the options.
    #[test]
    fn sack_option_holds_four_blocks_without_timestamps_and_three_with() {
        let mem = HeapPages::new(1, 64);
        let (src, dst) = (SocketAddrV4::new([10, 0, 0, 1].into(), 80), SocketAddrV4::new([10, 0, 0, 2].into(), 9));
        let blocks = [(10, 20), (30, 40), (50, 60), (70, 80)];
        for (ts, hlen, n) in [(None, 20 + 36, 4usize), (Some((5, 6)), 20 + 12 + 28, 3)] {
            let mut s = SegOut::empty(src, dst, Seq(1));
            (s.ack, s.sack, s.sack_len, s.ts) = (Some(Seq(9)), blocks, 4, ts);
            let mut buf = Vec::new();
            s.emit(&mut buf, 0, &mem, false);
            let pkt = TcpPacket::new_checked(&buf[..]).unwrap();
            assert_eq!(usize::from(pkt.header_len()), hlen);
            assert!(pkt.verify_checksum(&(*src.ip()).into(), &(*dst.ip()).into()));
            let opts = pkt.options();
            let at = if ts.is_some() { 12 } else { 0 };
            assert_eq!(&opts[at..at + 4], &[1, 1, 5, 2 + 8 * n as u8]);
            let got: Vec<(u32, u32)> = opts[at + 4..]
                .chunks(8)
                .map(|c| {
                    (u32::from_be_bytes(c[..4].try_into().unwrap()), u32::from_be_bytes(c[4..].try_into().unwrap()))
                })
                .collect();
            assert_eq!(got, blocks[..n].to_vec());
            let r = TcpRepr::parse(&pkt, &(*src.ip()).into(), &(*dst.ip()).into(), &Default::default()).unwrap();
            assert_eq!(r.timestamp.map(|t| (t.tsval, t.tsecr)), ts);
            assert_eq!(r.sack_ranges, [Some(blocks[0]), Some(blocks[1]), Some(blocks[2])]);
        }
    }
}
