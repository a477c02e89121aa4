//! A segment's frame: its headers written (whole, or patched from a run's
//! template), the general path's packet, and the hand-over to the device
//! (or the backlog behind a full one). Shared by [`Stack::flush_segs`] and
//! the runs of `tx_run`.

use super::*;

/// The MAC of `dst`'s next hop when it is known now (a route, and the
/// limited broadcast or a live ARP entry); `None` sends the packet through
/// [`Stack::send_ip`], which counts or resolves.
#[inline]
pub(super) fn resolved_mac(
    iface: &Interface,
    arp: &ArpCache,
    dst: Ipv4Address,
    now: Instant,
) -> Option<EthernetAddress> {
    let hop = iface.next_hop(dst)?;
    if hop == Ipv4Address::BROADCAST {
        Some(EthernetAddress::BROADCAST)
    } else {
        arp.lookup(hop, now)
    }
}

/// The frame of a segment whose headers were written in one pass into
/// `hdr` (Ethernet + IPv4 + a TCP header of `hlen` bytes): `buf` (a
/// recycled header buffer) gets those bytes, the segment's payload moves
/// on with it.
#[inline(always)]
pub(super) fn fast_frame(
    mut buf: Vec<u8>,
    hdr: &[u8; HEADROOM + crate::tcp::hdr_fast::WITH_TS],
    hlen: usize,
    seg: &mut SegOut,
) -> TxFrame {
    buf.clear();
    // One constant length (a few stores, where two lengths chosen at run
    // time became a `memcpy` call), then cut to the header's own.
    buf.extend_from_slice(hdr);
    buf.truncate(HEADROOM + hlen);
    TxFrame { header: buf, payload: std::mem::take(&mut seg.payload), copied: seg.copied, tso_segsz: seg.tso_segsz }
}

/// The frame of a segment whose headers are `template` (a run's first
/// segment's headers, or zeros) with what `patch` writes over them in
/// place (a follower's sequence number, flags, lengths and checksums, or a
/// whole header; it returns the TCP header length, bytes): the template is
/// copied into `buf` first and the copy written, so no header is built in
/// one place and then copied. Built that way, the copy's wide loads waited
/// for the build's narrow stores to reach the cache (a failed
/// store-to-load forward: a quarter of `flush_segs_runs`' samples in
/// `enginebench` bulk/csum-offload; rr64's single segments likewise).
#[inline(always)]
pub(super) fn patched_frame(
    mut buf: Vec<u8>,
    template: &[u8; HEADROOM + crate::tcp::hdr_fast::WITH_TS],
    seg: &mut SegOut,
    patch: impl FnOnce(&SegOut, &mut [u8; HEADROOM], &mut [u8; crate::tcp::hdr_fast::WITH_TS]) -> usize,
) -> TxFrame {
    buf.clear();
    buf.extend_from_slice(template);
    let h: &mut [u8; HEADROOM + crate::tcp::hdr_fast::WITH_TS] =
        buf.as_mut_slice().try_into().expect("the whole template was copied");
    let (eth_ip, tcp) = h.split_at_mut(HEADROOM);
    let eth_ip: &mut [u8; HEADROOM] = eth_ip.try_into().expect("HEADROOM bytes");
    let tcp: &mut [u8; crate::tcp::hdr_fast::WITH_TS] = tcp.try_into().expect("a whole TCP header");
    let hlen = patch(seg, eth_ip, tcp);
    buf.truncate(HEADROOM + hlen);
    TxFrame { header: buf, payload: std::mem::take(&mut seg.payload), copied: seg.copied, tso_segsz: seg.tso_segsz }
}

/// The frame of a fast-layout segment with its headers written whole
/// (`write_fast`, `write_headers` towards `mac`) straight into `buf`
/// ([`patched_frame`] over a zeroed template).
#[inline(always)]
pub(super) fn whole_frame<P: PageMemory + ?Sized>(
    buf: Vec<u8>,
    seg: &mut SegOut,
    iface: &Interface,
    mac: EthernetAddress,
    mem: &P,
    checksum_offload: bool,
) -> TxFrame {
    patched_frame(buf, &[0; HEADROOM + crate::tcp::hdr_fast::WITH_TS], seg, |seg, eth_ip, tcp| {
        let (hlen, l4_len) = seg.write_fast(tcp, mem, checksum_offload);
        iface.write_headers(eth_ip, mac, IpProtocol::Tcp, *seg.dst.ip(), l4_len);
        hlen
    })
}

/// The general path's packet for a segment: its TCP header emitted after
/// [`HEADROOM`] in `buf`, for [`Stack::send_ip`] to route and encapsulate.
#[inline(always)]
pub(super) fn general_packet(
    mut buf: Vec<u8>,
    seg: &mut SegOut,
    mem: &dyn PageMemory,
    checksum_offload: bool,
) -> IpOut {
    seg.emit(&mut buf, HEADROOM, mem, checksum_offload);
    IpOut {
        dst: *seg.dst.ip(),
        proto: IpProtocol::Tcp,
        buf,
        payload: std::mem::take(&mut seg.payload),
        copied: seg.copied,
        tso_segsz: seg.tso_segsz,
    }
}

/// Hands a frame to the device, unless older frames wait in `backlog`
/// (order kept): then, or when the device is full, it joins the backlog.
#[inline]
pub(super) fn transmit_frame<D: Device + ?Sized>(
    backlog: &mut VecDeque<TxFrame>,
    stats: &mut Stats,
    mem: &dyn PageMemory,
    now: Instant,
    dev: &mut D,
    f: TxFrame,
) {
    if backlog.is_empty() {
        match dev.transmit(now, f, mem) {
            Ok(()) => stats.tx_frames += 1,
            Err(f) => backlog.push_back(f),
        }
    } else {
        backlog.push_back(f);
    }
}
