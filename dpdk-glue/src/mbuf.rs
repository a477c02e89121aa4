//! Owned packet buffers.

use std::ptr::NonNull;

use crate::error::{Error, Result, RteErrno};
use crate::ffi;

/// An owned `rte_mbuf` chain, freed (every segment) on drop.
///
/// `repr(transparent)` over a non-null pointer, so a `[Mbuf]` is exactly the
/// `struct rte_mbuf *[]` that burst functions take.
#[repr(transparent)]
pub struct Mbuf {
    raw: NonNull<ffi::rte_mbuf>,
}

// SAFETY: an Mbuf is exclusively owned; freeing returns it to its mempool,
// which is thread-safe (MPMC ring), so ownership may move between threads.
unsafe impl Send for Mbuf {}

impl std::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mbuf")
            .field("pkt_len", &self.pkt_len())
            .field("data_len", &self.data_len())
            .field("nb_segs", &self.nb_segs())
            .field("extbuf", &self.is_extbuf())
            .finish()
    }
}

impl Mbuf {
    /// Wraps a raw mbuf.
    ///
    /// # Safety
    /// `raw` must be a valid mbuf (chain head) that nobody else owns or frees.
    pub(crate) unsafe fn from_raw(raw: NonNull<ffi::rte_mbuf>) -> Mbuf {
        Mbuf { raw }
    }

    /// Gives up ownership without freeing.
    pub(crate) fn into_raw(self) -> NonNull<ffi::rte_mbuf> {
        let raw = self.raw;
        std::mem::forget(self);
        raw
    }

    pub(crate) fn as_ptr(&self) -> *mut ffi::rte_mbuf {
        self.raw.as_ptr()
    }

    fn head(&self) -> &ffi::rte_mbuf {
        // SAFETY: raw is valid and owned by self for self's lifetime.
        unsafe { self.raw.as_ref() }
    }

    fn head_mut(&mut self) -> &mut ffi::rte_mbuf {
        // SAFETY: raw is valid and exclusively owned by self.
        unsafe { self.raw.as_mut() }
    }

    /// Total length of the chain.
    #[inline]
    pub fn pkt_len(&self) -> u32 {
        self.head().pkt_len
    }

    /// Length of the first segment's data.
    #[inline]
    pub fn data_len(&self) -> u16 {
        self.head().data_len
    }

    /// Number of segments in the chain.
    pub fn nb_segs(&self) -> u16 {
        self.head().nb_segs
    }

    /// The port the mbuf was received on.
    pub fn port(&self) -> u16 {
        self.head().port
    }

    /// Free bytes before the first segment's data.
    pub fn headroom(&self) -> u16 {
        // SAFETY: raw is a valid mbuf.
        unsafe { ffi::zc_rte_pktmbuf_headroom(self.as_ptr()) }
    }

    /// Free bytes after the last segment's data.
    pub fn tailroom(&self) -> u16 {
        // SAFETY: tailroom is computed on the last segment, which is valid.
        unsafe { ffi::zc_rte_pktmbuf_tailroom(last_seg(self.as_ptr())) }
    }

    /// The first segment's data.
    #[inline]
    pub fn data(&self) -> &[u8] {
        seg_data(self.head())
    }

    /// The first segment's data, writable.
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let m = self.head_mut();
        let len = usize::from(m.data_len);
        // SAFETY: buf_addr + data_off .. + data_len lies within the segment's
        // buffer, which self owns exclusively (refcnt checked by callers that
        // share; a freshly allocated or received mbuf is unshared).
        unsafe { std::slice::from_raw_parts_mut((m.buf_addr as *mut u8).add(usize::from(m.data_off)), len) }
    }

    /// Every segment's data, in order.
    pub fn segments(&self) -> Segments<'_> {
        Segments { next: self.raw.as_ptr(), _owner: std::marker::PhantomData }
    }

    /// A copy of the whole packet (all segments).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.pkt_len() as usize);
        for s in self.segments() {
            v.extend_from_slice(s);
        }
        v
    }

    /// Grows the last segment's data by `len` bytes at the end and returns them.
    ///
    /// Same contract as `rte_pktmbuf_append`, written in Rust so the per-packet
    /// hot path (txonly, header building) pays no FFI call.
    #[inline]
    pub fn append(&mut self, len: u16) -> Result<&mut [u8]> {
        let last = last_seg(self.as_ptr());
        // SAFETY: last is a segment of the chain self owns exclusively.
        let l = unsafe { &mut *last };
        let used = u32::from(l.data_off) + u32::from(l.data_len);
        if used + u32::from(len) > u32::from(l.buf_len) {
            return Err(self.no_room("append", len));
        }
        // SAFETY: [buf_addr+used, +len) is inside the last segment's buffer
        // (checked above) and owned by this chain.
        let p = unsafe { (l.buf_addr as *mut u8).add(used as usize) };
        l.data_len += len;
        self.head_mut().pkt_len += u32::from(len);
        // SAFETY: see above; the bytes are now part of the packet.
        Ok(unsafe { std::slice::from_raw_parts_mut(p, usize::from(len)) })
    }

    /// Appends a copy of `bytes` to the end of the packet (one segment).
    pub fn extend_from_slice(&mut self, bytes: &[u8]) -> Result<()> {
        let len = u16::try_from(bytes.len()).map_err(|_| self.no_room("append", u16::MAX))?;
        self.append(len)?.copy_from_slice(bytes);
        Ok(())
    }

    /// Grows the first segment's data by `len` bytes at the front (into headroom).
    pub fn prepend(&mut self, len: u16) -> Result<&mut [u8]> {
        // SAFETY: raw is a valid, owned mbuf.
        let p = unsafe { ffi::zc_rte_pktmbuf_prepend(self.as_ptr(), len) };
        if p.is_null() {
            return Err(self.no_room("prepend", len));
        }
        // SAFETY: DPDK returned a pointer to len bytes now at the front of the data.
        Ok(unsafe { std::slice::from_raw_parts_mut(p as *mut u8, usize::from(len)) })
    }

    /// Removes `len` bytes from the front of the first segment.
    pub fn adj(&mut self, len: u16) -> Result<()> {
        // SAFETY: raw is a valid, owned mbuf.
        let p = unsafe { ffi::zc_rte_pktmbuf_adj(self.as_ptr(), len) };
        if p.is_null() {
            return Err(self.no_room("adj", len));
        }
        Ok(())
    }

    /// Removes `len` bytes from the end of the last segment.
    pub fn trim(&mut self, len: u16) -> Result<()> {
        // SAFETY: raw is a valid, owned mbuf.
        if unsafe { ffi::zc_rte_pktmbuf_trim(self.as_ptr(), len) } != 0 {
            return Err(self.no_room("trim", len));
        }
        Ok(())
    }

    /// Appends `tail`'s chain to this one. On failure (too many segments),
    /// `tail` comes back to the caller unchanged.
    pub fn chain(&mut self, tail: Mbuf) -> std::result::Result<(), (Error, Mbuf)> {
        // SAFETY: both chains are valid and owned; on success DPDK links tail
        // into self, so we give up tail's ownership; on failure nothing changed.
        let ret = unsafe { ffi::zc_rte_pktmbuf_chain(self.as_ptr(), tail.as_ptr()) };
        if ret != 0 {
            return Err((Error::Chain { errno: RteErrno::from_ret(ret) }, tail));
        }
        let _ = tail.into_raw();
        Ok(())
    }

    /// Whether the first segment's buffer is external (attached with an extbuf).
    pub fn is_extbuf(&self) -> bool {
        // SAFETY: raw is a valid mbuf.
        unsafe { ffi::zc_rte_mbuf_is_extbuf(self.as_ptr()) != 0 }
    }

    /// Reference count of the first segment.
    pub fn refcnt(&self) -> u16 {
        // SAFETY: raw is a valid mbuf.
        unsafe { ffi::zc_rte_mbuf_refcnt_read(self.as_ptr()) }
    }

    /// Size of the first segment's buffer (the memory it pins).
    pub fn buf_len(&self) -> u16 {
        self.head().buf_len
    }

    /// Offload flags (`RTE_MBUF_F_*`).
    pub fn ol_flags(&self) -> u64 {
        self.head().ol_flags
    }

    /// Sets offload flags and header lengths for checksum/TSO offload.
    pub fn set_tx_offload(&mut self, ol_flags: u64, l2_len: u8, l3_len: u16, l4_len: u8, tso_segsz: u16) {
        let m = self.head_mut();
        m.ol_flags = ol_flags;
        // tx_offload packs l2_len:7, l3_len:9, l4_len:8, tso_segsz:16, ...
        let packed = u64::from(l2_len & 0x7f)
            | (u64::from(l3_len & 0x1ff) << 7)
            | (u64::from(l4_len) << 16)
            | (u64::from(tso_segsz) << 24);
        // Writing the tx_offload union member as a whole u64 is how DPDK's own
        // rte_mbuf_tx_offload() sets these bitfields (a safe union write).
        m.__bindgen_anon_3.tx_offload = packed;
    }

    /// Resets a freshly taken mbuf as `rte_pktmbuf_reset` (DPDK 22.11) does:
    /// one empty segment at the default headroom, no offload flags but
    /// `RTE_MBUF_F_EXTERNAL`, no VLAN, port `RTE_MBUF_PORT_INVALID`. Written
    /// in Rust so a caller can reset and fill each mbuf in one pass
    /// ([`crate::Mempool::alloc_bulk_with`]); `tests/mbuf.rs` checks it
    /// against DPDK's own reset field by field.
    #[inline(always)]
    pub(crate) fn reset(&mut self) {
        let m = self.head_mut();
        m.next = std::ptr::null_mut();
        m.pkt_len = 0;
        m.__bindgen_anon_3.tx_offload = 0;
        m.vlan_tci = 0;
        m.vlan_tci_outer = 0;
        m.nb_segs = 1;
        m.port = u16::MAX;
        m.ol_flags &= ffi::RTE_MBUF_F_EXTERNAL;
        m.__bindgen_anon_1.packet_type = 0;
        m.data_off = (ffi::RTE_PKTMBUF_HEADROOM as u16).min(m.buf_len);
        m.data_len = 0;
    }

    /// Frees many mbufs in one call (`rte_pktmbuf_free_bulk`).
    pub fn free_bulk(mbufs: &mut Vec<Mbuf>) {
        if mbufs.is_empty() {
            return;
        }
        let n = u32::try_from(mbufs.len()).expect("fewer than 2^32 mbufs");
        // SAFETY: the vector holds n owned mbufs laid out as rte_mbuf pointers;
        // DPDK frees each chain; set_len(0) then forgets them without a double free.
        unsafe {
            ffi::rte_pktmbuf_free_bulk(mbufs.as_mut_ptr() as *mut *mut ffi::rte_mbuf, n);
            mbufs.set_len(0);
        }
    }

    fn no_room(&self, op: &'static str, len: u16) -> Error {
        Error::NoRoom { op, len: usize::from(len), headroom: self.headroom(), tailroom: self.tailroom() }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: self owns the chain; it is freed exactly once here.
        unsafe { ffi::zc_rte_pktmbuf_free(self.raw.as_ptr()) }
    }
}

fn seg_data(m: &ffi::rte_mbuf) -> &[u8] {
    // SAFETY: buf_addr + data_off .. + data_len lies within the segment buffer,
    // which stays alive while the owning Mbuf is borrowed.
    unsafe {
        std::slice::from_raw_parts((m.buf_addr as *const u8).add(usize::from(m.data_off)), usize::from(m.data_len))
    }
}

/// The last segment of the chain headed by `m`. A head whose `nb_segs` is 1 is
/// its own last segment (DPDK keeps `nb_segs` equal to the chain's length:
/// `rte_pktmbuf_chain`, the PMDs' RX and the pool's reset all maintain it), so
/// the common one-segment case reads no `next` pointer (the mbuf's second
/// cache line).
#[inline]
fn last_seg(mut m: *mut ffi::rte_mbuf) -> *mut ffi::rte_mbuf {
    // SAFETY: m heads a valid chain owned by the caller.
    if unsafe { (*m).nb_segs } == 1 {
        return m;
    }
    // SAFETY: walks a valid chain's next pointers until null.
    unsafe {
        while !(*m).next.is_null() {
            m = (*m).next;
        }
    }
    m
}

/// Iterator over the data of each segment of an [`Mbuf`] chain.
#[derive(Debug)]
pub struct Segments<'a> {
    next: *mut ffi::rte_mbuf,
    _owner: std::marker::PhantomData<&'a Mbuf>,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        if self.next.is_null() {
            return None;
        }
        // SAFETY: next is a segment of a chain borrowed for 'a.
        let m: &'a ffi::rte_mbuf = unsafe { &*self.next };
        self.next = m.next;
        Some(seg_data(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header with every field `rte_pktmbuf_reset` writes set to junk.
    fn dirty(buf: &mut [u8], seed: u64, ext: bool, buf_len: u16) -> ffi::rte_mbuf {
        // SAFETY: rte_mbuf is plain old data (integers, pointers, unions of
        // them); all-zero bytes are a valid value.
        let mut m: ffi::rte_mbuf = unsafe { std::mem::zeroed() };
        m.buf_addr = buf.as_mut_ptr().cast();
        m.buf_len = buf_len;
        m.data_off = 7;
        m.refcnt = 1;
        m.nb_segs = 3;
        m.port = 5;
        m.ol_flags = seed | if ext { ffi::RTE_MBUF_F_EXTERNAL } else { 0 };
        m.__bindgen_anon_1.packet_type = seed as u32 | 1;
        m.pkt_len = 999;
        m.data_len = 99;
        m.vlan_tci = 0x123;
        m.vlan_tci_outer = 0x456;
        m.next = std::ptr::NonNull::<ffi::rte_mbuf>::dangling().as_ptr();
        m.__bindgen_anon_3.tx_offload = seed.rotate_left(17) | 1;
        m
    }

    fn bytes(m: &ffi::rte_mbuf) -> &[u8] {
        // SAFETY: reads the header's own bytes, in bounds of the value.
        unsafe { std::slice::from_raw_parts((m as *const ffi::rte_mbuf).cast::<u8>(), std::mem::size_of_val(m)) }
    }

    #[test]
    fn reset_matches_dpdk_byte_for_byte() {
        let mut buf = vec![0u8; 2176];
        for (seed, ext, buf_len) in [
            (0u64, false, 2176u16),
            (u64::MAX >> 3, false, 2176),
            (0x5a5a_5a5a_5a5a_5a5a, true, 2176),
            (0x1234_5678_9abc_def0, false, 100), // room below the default headroom
            (!0u64, true, 0),
        ] {
            let mut ours = dirty(&mut buf, seed, ext, buf_len);
            let mut theirs = dirty(&mut buf, seed, ext, buf_len);
            // SAFETY: `ours` is a valid header we own; the Mbuf is forgotten
            // (into_raw) before it could free anything.
            let mut m = unsafe { Mbuf::from_raw(std::ptr::NonNull::from(&mut ours)) };
            m.reset();
            let _ = m.into_raw();
            // SAFETY: `theirs` is a valid header; reset only writes its fields.
            unsafe { ffi::zc_rte_pktmbuf_reset(&mut theirs) };
            assert_eq!(bytes(&ours), bytes(&theirs), "seed {seed:#x} ext {ext} buf_len {buf_len}");
        }
    }
}
