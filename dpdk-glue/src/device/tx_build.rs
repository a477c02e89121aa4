//! Building a frame's mbufs for [`EthDevice::transmit`]: the TX offload
//! fields, copy mode (one mbuf, or a chain for a TSO frame) and zero copy
//! (a header mbuf with the payload attached as extbufs, one per run of
//! adjacent page-array buffers).

use super::*;

/// Ethernet + IPv4 header bytes before the TCP header.
const L2_LEN: usize = 14;

/// Bytes one extbuf attachment covers at most when adjacent payload slices
/// are merged: the per-descriptor data limit of Intel's i40e/ice/iavf
/// (`I40E_MAX_DATA_PER_TXD`, 16383), so that no PMD has to split a
/// segment (virtio takes more; a 32 KiB TSO frame of adjacent buffers is
/// three attachments instead of nine).
pub const MAX_ATTACHMENT: usize = 16383;

impl EthDevice {
    fn offload(&self, m: &mut Mbuf, header: &[u8], tso_segsz: u16) {
        // Only TCP over IPv4 gets checksum offload (the engine filled the
        // pseudo-header sum for it); everything else carries full checksums.
        if self.tx_ol_flags == 0
            || header.len() < L2_LEN + 20
            || header[12..14] != [0x08, 0x00]
            || header[L2_LEN + 9] != 6
        {
            return;
        }
        let l3 = usize::from(header[L2_LEN] & 0x0f) * 4;
        let l4 = header.get(L2_LEN + l3 + 12).map_or(20, |b| usize::from(b >> 4) * 4);
        // TSO: RTE_MBUF_F_TX_TCP_SEG (implies the TCP checksum) and the
        // segment size; the engine left the length out of the pseudo-header
        // sum. Where the port fills IPv4 checksums, DPDK's TSO contract also
        // wants RTE_MBUF_F_TX_IP_CKSUM and a zero checksum field (each cut
        // segment gets its own); otherwise the sum the engine computed for
        // the frame's header stays (virtio hands the frame on whole).
        let mut flags = self.tx_ol_flags;
        if tso_segsz > 0 {
            flags |= ffi::RTE_MBUF_F_TX_TCP_SEG;
            if self.tx_ip_csum {
                flags |= ffi::RTE_MBUF_F_TX_IP_CKSUM;
                if let Some(c) = m.data_mut().get_mut(L2_LEN + 10..L2_LEN + 12) {
                    c.copy_from_slice(&[0, 0]);
                }
            }
        }
        m.set_tx_offload(flags, L2_LEN as u8, l3 as u16, l4 as u8, tso_segsz);
    }

    pub(super) fn build_copy(&mut self, frame: &TxFrame, mem: &dyn PageMemory) -> std::result::Result<Mbuf, ()> {
        if frame.tso_segsz > 0 {
            return self.build_copy_chain(frame, mem);
        }
        let mut m = self.copy_pool.alloc().map_err(|_| ())?;
        let len = u16::try_from(frame.len()).map_err(|_| ())?;
        let out = m.append(len).map_err(|_| ())?;
        let (h, mut rest) = out.split_at_mut(frame.header.len());
        h.copy_from_slice(&frame.header);
        for s in &frame.payload {
            let (dst, tail) = rest.split_at_mut(s.len as usize);
            dst.copy_from_slice(mem.slice(*s));
            rest = tail;
        }
        self.offload(&mut m, &frame.header, 0);
        Ok(m)
    }

    /// Copies a TSO frame into one mbuf of the TSO pool, or — when that pool
    /// is empty — into a chain of copy mbufs, header first; on failure the
    /// partial chain is freed.
    fn build_copy_chain(&mut self, frame: &TxFrame, mem: &dyn PageMemory) -> std::result::Result<Mbuf, ()> {
        // One big mbuf when the TSO pool has one, else a chain of small ones.
        let big = self.tso_pool.as_ref().and_then(|p| p.alloc().ok());
        let mut head = match big {
            Some(m) => m,
            None => self.copy_pool.alloc().map_err(|_| ())?,
        };
        let pieces = std::iter::once(&frame.header[..]).chain(frame.payload.iter().map(|s| mem.slice(*s)));
        for piece in pieces {
            let mut rest = piece;
            while !rest.is_empty() {
                let mut room = usize::from(head.tailroom());
                if room == 0 {
                    let m = self.copy_pool.alloc().map_err(|_| ())?;
                    head.chain(m).map_err(|_| ())?;
                    room = usize::from(head.tailroom());
                }
                let n = room.min(rest.len());
                head.append(n as u16).map_err(|_| ())?.copy_from_slice(&rest[..n]);
                rest = &rest[n..];
            }
        }
        self.offload(&mut head, &frame.header, frame.tso_segsz);
        Ok(head)
    }

    /// Builds the header + extbuf chain; on failure everything built is
    /// freed (attachments complete at once) and the frame's slot released.
    pub(super) fn build_zero_copy(&mut self, now: Instant, frame: TxFrame) -> std::result::Result<(), TxFrame> {
        let n = frame.payload.len();
        if n >= usize::from(u16::MAX) {
            return Err(frame);
        }
        if self.ring.capacity() - self.ring.in_flight() < n {
            self.reap_needing(n);
            if self.ring.capacity() - self.ring.in_flight() < n {
                return Err(frame);
            }
        }
        let Ok(mut head) = self.hdr_pool.get() else { return Err(frame) };
        if head.extend_from_slice(&frame.header).is_err() {
            return Err(frame);
        }
        self.offload(&mut head, &frame.header, frame.tso_segsz);
        let idx = self.free_frames.pop().unwrap_or_else(|| {
            self.frames.push(None);
            (self.frames.len() - 1) as u32
        });
        let mut attached = 0u32;
        let mut failed = false;
        // The header mbuf is one segment; `last` follows the chain's tail.
        let mut last = head.as_ptr();
        let payload: usize = frame.payload.iter().map(|s| s.len as usize).sum();
        let prefetch = self.prefetch && payload <= PREFETCH_MAX_PAYLOAD;
        let mut lines = 0;
        let mut i = 0;
        while i < frame.payload.len() {
            // A run of slices adjacent in the region (consecutive page-array
            // buffers of one write, or of one data set) that one DMA
            // descriptor can cover goes out as one attachment.
            let s = frame.payload[i];
            let off = s.page.0 as usize * self.buf_size + s.off as usize;
            let mut len = s.len as usize;
            i += 1;
            while let Some(t) = frame.payload.get(i) {
                let next = t.page.0 as usize * self.buf_size + t.off as usize;
                let merged = len + t.len as usize;
                // The run so far is contiguous: check only from its last
                // byte through the new slice (not the whole run again).
                if next != off + len
                    || merged > MAX_ATTACHMENT
                    || !self.region.dma_contiguous((off + len).saturating_sub(1), t.len as usize + 1)
                {
                    break;
                }
                len = merged;
                i += 1;
            }
            if prefetch {
                lines += self.region.prefetch(off, len) as u64;
            }
            let Ok(m) = self.ext_pool.get() else {
                failed = true;
                break;
            };
            // SAFETY: `last` is the tail of head's chain (head is one fresh
            // segment and attach_tail advances it), and a frame's payload
            // has fewer than u16::MAX slices (checked above).
            let r = unsafe {
                self.ring.attach_tail(&mut head, &mut last, m, &self.region, off, len as u16, u64::from(idx))
            };
            match r {
                Ok(()) => attached += 1,
                Err(e) => {
                    tracing::debug!(%e, "extbuf attach failed");
                    failed = true;
                    break;
                }
            }
        }
        if failed {
            // Freeing the chain releases every attachment made (the PMD
            // never saw them): their completions are queued now. A
            // placeholder absorbs them, and the frame goes back untouched.
            drop(head);
            if attached == 0 {
                self.free_frames.push(idx);
            } else {
                self.frames[idx as usize] = Some(InFlight { frame: TxFrame::default(), pending: attached });
                self.reap();
            }
            return Err(frame);
        }
        self.frames[idx as usize] = Some(InFlight { frame, pending: attached });
        // Counted for frames sent only (a refused one comes back and is
        // prefetched again when retried).
        self.stats.tx_lines_prefetched += lines;
        self.stats.tx_frames_zero_copy += 1;
        self.stats.tx_payload_zero_copy += payload as u64;
        self.queue_tx(now, head);
        Ok(())
    }
}
