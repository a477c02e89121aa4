//! External buffers: DMA-able memory regions, header mbufs whose buffer points
//! into them, and the completion ring their free callbacks feed.
//!
//! This is the primitive under zcstack's zero-copy TX: payload bytes stay where
//! they were written (a [`MemRegion`] reserved from DPDK memory, or application
//! memory registered as [`ExtMem`]); a header mbuf is attached to a slice of it
//! with `rte_pktmbuf_attach_extbuf`; when the PMD is done with that mbuf, DPDK
//! calls our free callback, which marks the attachment's slot released. The
//! owning thread drains the [`CompletionRing`] (in `completion.rs`) and
//! learns, per attachment token, that the NIC no longer references the memory.
//! Every in-flight attachment owns one slot, reused only after it was drained.

use std::cell::Cell;
use std::ffi::{c_void, CString};
use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::eal::Eal;
use crate::error::{Error, Result, RteErrno};
use crate::ffi;
use crate::port::Port;

pub use crate::completion::CompletionRing;

pub(crate) mod sealed {
    pub trait Sealed {
        /// Start of the region's memory.
        fn base(&self) -> *mut u8;
    }
}

/// Memory a NIC can read by DMA: a length, and an IOVA for every byte.
///
/// Reads and writes go through copies at byte offsets (`write_at`/`read_at`);
/// regions are `!Sync`, so only one thread touches the CPU side of a region.
pub trait DmaRegion: sealed::Sealed + 'static {
    /// Size in bytes.
    fn len(&self) -> usize;

    /// Whether the region is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The IOVA of byte `offset`, or `None` past the end.
    fn iova_at(&self, offset: usize) -> Option<u64>;

    /// The page size the IOVA table is kept at.
    fn page_size(&self) -> usize;

    /// How far the region's start lies into its first memory page, bytes
    /// (`base % page_size`): page boundaries fall at region offsets
    /// `k * page_size - page_lead()`, not at multiples of the page size.
    fn page_lead(&self) -> usize {
        0
    }

    /// Whether the whole region is one run in IOVA space (every page's IOVA
    /// continues the previous one's, as in IOVA-as-VA mode or on a
    /// physically contiguous zone): then any slice inside it is DMA
    /// contiguous, which [`DmaRegion::dma_contiguous`] answers from bounds
    /// alone (on the zero-copy TX path, per attachment).
    fn iova_contiguous(&self) -> bool {
        false
    }

    /// Whether `[offset, offset+len)` lies inside the region and is contiguous
    /// in IOVA space (one DMA descriptor can cover it).
    fn dma_contiguous(&self, offset: usize, len: usize) -> bool {
        let Some(end) = offset.checked_add(len) else {
            return false;
        };
        if end > self.len() || len == 0 {
            return end <= self.len();
        }
        if self.iova_contiguous() {
            return true;
        }
        // Walk the real memory pages the range touches (they start at
        // offsets k*ps - lead): each must continue the IOVA of the first byte.
        // (Page sizes are powers of two: shifts, not divisions.)
        let (ps, lead) = (self.page_size(), self.page_lead());
        let shift = ps.trailing_zeros();
        let (first, last) = ((offset + lead) >> shift, (end - 1 + lead) >> shift);
        let Some(start) = self.iova_at(offset) else {
            return false;
        };
        for p in first + 1..=last {
            let at = p * ps - lead;
            match self.iova_at(at) {
                Some(i) if i == start + (at - offset) as u64 => {}
                _ => return false,
            }
        }
        true
    }

    /// Asks this CPU to bring the bytes `[offset, offset+len)` into its
    /// caches, one `prefetcht0` per 64-byte line they touch (x86-64;
    /// nothing on other architectures), and returns how many it issued.
    /// A hint: it never faults and does not wait for the data (though
    /// thousands in a row can stall the CPU on its outstanding misses); the
    /// part of the range outside the region is ignored. Zero-copy TX uses it
    /// so that a software backend copying the payload on another CPU of
    /// this host reads it from cache instead of DRAM ([`crate::TxPrefetch`]).
    fn prefetch(&self, offset: usize, len: usize) -> usize {
        let end = offset.saturating_add(len).min(self.len());
        if offset >= end || !cfg!(target_arch = "x86_64") {
            return 0;
        }
        let base = self.base();
        // One address per cache line the range touches, each inside it:
        // its first byte, then the first byte of every following line.
        let line_end = |at: usize| at + (64 - (base as usize + at) % 64);
        let mut at = offset;
        let mut lines = 0;
        while at < end {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `offset <= at < end <= len`, so `base + at` is inside
            // the region; a prefetch reads nothing into the program and
            // cannot fault (SSE, baseline on x86-64).
            unsafe {
                core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(base.add(at) as *const i8)
            };
            at = line_end(at);
            lines += 1;
        }
        lines
    }

    /// Copies `data` into the region at `offset`.
    fn write_at(&self, offset: usize, data: &[u8]) -> Result<()> {
        check_range(self.len(), offset, data.len())?;
        // SAFETY: the range is inside the region (checked); the region is !Sync
        // so no other thread copies concurrently; data cannot overlap region
        // memory handed out as a Rust reference (none is ever handed out).
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.base().add(offset), data.len()) };
        Ok(())
    }

    /// Copies `out.len()` bytes from the region at `offset` into `out`.
    fn read_at(&self, offset: usize, out: &mut [u8]) -> Result<()> {
        check_range(self.len(), offset, out.len())?;
        // SAFETY: as in write_at, with the direction reversed.
        unsafe { std::ptr::copy_nonoverlapping(self.base().add(offset), out.as_mut_ptr(), out.len()) };
        Ok(())
    }
}

fn check_range(region_len: usize, offset: usize, len: usize) -> Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= region_len => Ok(()),
        _ => Err(Error::BadSlice { offset, len, region_len, why: "outside the region" }),
    }
}

/// A region reserved from DPDK's own memory (`rte_memzone_reserve_aligned`),
/// with the IOVA of every page recorded. DPDK memory is what every PMD can
/// DMA from, including virtio-user (which silently drops anonymous extmem).
pub struct MemRegion {
    mz: NonNull<ffi::rte_memzone>,
    base: *mut u8,
    len: usize,
    page_size: usize,
    /// `base % page_size`: a memzone need not start on a page boundary.
    lead: usize,
    /// IOVA of the start of every memory page the zone touches (the first
    /// page starts `lead` bytes before `base`).
    iovas: Vec<u64>,
    /// The IOVA of `base` when the whole zone is one IOVA run
    /// ([`DmaRegion::iova_contiguous`]).
    iova_run: Option<u64>,
    name: String,
    _not_sync: PhantomData<Cell<()>>,
}

impl std::fmt::Debug for MemRegion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemRegion")
            .field("name", &self.name)
            .field("len", &self.len)
            .field("page_size", &self.page_size)
            .finish()
    }
}

impl MemRegion {
    /// Reserves `len` bytes named `name` (unique per process), aligned to
    /// `align` (a power of two). Prefers IOVA-contiguous memory and falls back
    /// to page-wise IOVAs.
    pub fn reserve(eal: &Eal, name: &str, len: usize, align: u32) -> Result<MemRegion> {
        MemRegion::reserve_on_socket(eal, name, len, align, None)
    }

    /// As [`MemRegion::reserve`], on NUMA socket `socket` (`None`: any).
    pub fn reserve_on_socket(_eal: &Eal, name: &str, len: usize, align: u32, socket: Option<i32>) -> Result<MemRegion> {
        if name.len() >= 32 {
            return Err(Error::TooLong { what: "memzone name", value: name.to_owned(), max: 31 });
        }
        let c = CString::new(name).map_err(|_| Error::NulInArgument(name.to_owned()))?;
        let mut mz = std::ptr::null();
        for flags in [ffi::RTE_MEMZONE_IOVA_CONTIG, 0] {
            // SAFETY: c is a valid C string; DPDK copies the name.
            mz = unsafe {
                ffi::rte_memzone_reserve_aligned(c.as_ptr(), len, socket.unwrap_or(ffi::SOCKET_ID_ANY), flags, align)
            };
            if !mz.is_null() {
                break;
            }
        }
        let mz = NonNull::new(mz as *mut ffi::rte_memzone).ok_or_else(|| Error::Memzone {
            name: name.to_owned(),
            len,
            errno: RteErrno::last(),
        })?;
        // SAFETY: a reserved memzone descriptor stays valid until freed in Drop.
        let d = unsafe { mz.as_ref() };
        // SAFETY: addr is the active member of the union for reserved zones.
        let base = unsafe { d.__bindgen_anon_1.addr } as *mut u8;
        let page_size = (d.hugepage_sz as usize).max(4096);
        if !page_size.is_power_of_two() {
            // DPDK's page sizes are powers of two; the IOVA math below
            // (shifts and masks) relies on it.
            // SAFETY: the zone was reserved above and nothing refers to it.
            unsafe { ffi::rte_memzone_free(mz.as_ptr()) };
            return Err(Error::Memzone { name: name.to_owned(), len, errno: RteErrno(libc::EINVAL) });
        }
        // Memzones are aligned to `align`, not to the page size: in IOVA-as-PA
        // mode a zone that is not IOVA-contiguous changes IOVA at the real
        // page boundaries, so the table is kept per real page.
        let lead = base as usize % page_size;
        let pages = (lead + len).div_ceil(page_size);
        let iovas = (0..pages)
            .map(|p| {
                // The first byte of page p that is inside the zone.
                let probe = (p * page_size).max(lead) - lead;
                // SAFETY: probe < len, so the address is inside the zone.
                let iova = unsafe { ffi::rte_mem_virt2iova(base.add(probe) as *const c_void) };
                if iova == u64::MAX {
                    iova
                } else {
                    iova - ((probe + lead) % page_size) as u64
                }
            })
            .collect::<Vec<u64>>();
        let iova_run = one_run(&iovas, page_size).map(|first| first + lead as u64);
        Ok(MemRegion { mz, base, len, page_size, lead, iovas, iova_run, name: name.to_owned(), _not_sync: PhantomData })
    }

    /// The memzone's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl sealed::Sealed for MemRegion {
    fn base(&self) -> *mut u8 {
        self.base
    }
}

impl DmaRegion for MemRegion {
    fn len(&self) -> usize {
        self.len
    }
    fn page_size(&self) -> usize {
        self.page_size
    }
    fn page_lead(&self) -> usize {
        self.lead
    }
    fn iova_contiguous(&self) -> bool {
        self.iova_run.is_some()
    }
    fn iova_at(&self, offset: usize) -> Option<u64> {
        if offset >= self.len {
            return None;
        }
        if let Some(first) = self.iova_run {
            return Some(first + offset as u64);
        }
        let at = offset + self.lead;
        let shift = self.page_size.trailing_zeros();
        let iova = *self.iovas.get(at >> shift)?;
        // RTE_BAD_IOVA is ((rte_iova_t)-1).
        (iova != u64::MAX).then_some(iova + (at & (self.page_size - 1)) as u64)
    }
}

impl Drop for MemRegion {
    fn drop(&mut self) {
        // SAFETY: the zone was reserved by us and is freed once; whoever attached
        // slices of it holds an Rc, so no attachment outlives this.
        let ret = unsafe { ffi::rte_memzone_free(self.mz.as_ptr()) };
        if ret != 0 {
            tracing::warn!(zone = %self.name, errno = %RteErrno::from_ret(ret), "rte_memzone_free failed");
        }
    }
}

/// Application memory registered with DPDK (`rte_extmem_register`) and
/// DMA-mapped to the ports whose bus needs it ([`ExtMem::dma_map_if_needed`]).
/// In IOVA-as-VA mode the IOVA of a byte is its virtual address; in
/// IOVA-as-PA mode the memory must be hugepages and the IOVA of each page is
/// its physical address, read from `/proc/self/pagemap` (needs root) and
/// handed to DPDK as the registration's IOVA table.
pub struct ExtMem {
    base: *mut u8,
    len: usize,
    page_size: usize,
    hugetlb: bool,
    /// Per-page IOVAs in PA mode; `None` in VA mode (IOVA = address).
    iovas: Option<Vec<u64>>,
    /// The pages form one IOVA run ([`DmaRegion::iova_contiguous`]).
    contiguous: bool,
    mapped: Vec<(u16, *mut ffi::rte_device)>,
    _not_sync: PhantomData<Cell<()>>,
}

impl std::fmt::Debug for ExtMem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtMem")
            .field("len", &self.len)
            .field("page_size", &self.page_size)
            .field("hugetlb", &self.hugetlb)
            .finish()
    }
}

impl ExtMem {
    /// Maps `len` bytes of anonymous memory (rounded up to `page_size`; 2 MiB
    /// pages use MAP_HUGETLB and need reserved hugepages) and registers them.
    pub fn register(_eal: &Eal, len: usize, page_size: usize) -> Result<ExtMem> {
        let fail = |op, errno| Error::ExtMem { op, len, page_size, errno };
        let pa = crate::eal::IovaMode::current() == crate::eal::IovaMode::Pa;
        if !page_size.is_power_of_two() || page_size < 4096 {
            return Err(fail("page size check (a power of two >= 4096)", RteErrno(libc::EINVAL)));
        }
        if pa && page_size <= 4096 {
            // 4 KiB anonymous pages may be migrated or swapped: their physical
            // address is not stable, so a NIC could DMA into someone else's page.
            return Err(fail(
                "IOVA-as-PA check (PA mode needs hugepages: pass a 2 MiB page size, or run in VA mode)",
                RteErrno(libc::ENOTSUP),
            ));
        }
        let len = len.div_ceil(page_size) * page_size;
        let hugetlb = page_size > 4096;
        let mut flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE;
        if hugetlb {
            flags |= libc::MAP_HUGETLB;
        }
        // SAFETY: anonymous mapping with no address hint; checked below.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, flags, -1, 0) };
        if p == libc::MAP_FAILED {
            return Err(fail("mmap", RteErrno(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::ENOMEM))));
        }
        let mut iovas = None;
        if pa {
            let mut t = Vec::with_capacity(len / page_size);
            for off in (0..len).step_by(page_size) {
                match crate::iova::virt_to_phys(p as usize + off) {
                    Ok(a) => t.push(a),
                    Err(e) => {
                        tracing::warn!(error = %e, "no physical address for external memory in IOVA-as-PA mode");
                        // SAFETY: unmapping what we mapped above.
                        unsafe { libc::munmap(p, len) };
                        return Err(fail(
                            "physical address lookup (/proc/self/pagemap, needs root)",
                            RteErrno(libc::EPERM),
                        ));
                    }
                }
            }
            iovas = Some(t);
        }
        let (table, n) = match &mut iovas {
            Some(t) => (t.as_mut_ptr(), t.len() as u32),
            None => (std::ptr::null_mut(), 0),
        };
        // SAFETY: p..p+len is a fresh mapping; the IOVA table (NULL in VA
        // mode) has one entry per page and DPDK copies it.
        let ret = unsafe { ffi::rte_extmem_register(p, len, table, n, page_size) };
        if ret != 0 {
            let e = RteErrno::last();
            // SAFETY: unmapping what we mapped above.
            unsafe { libc::munmap(p, len) };
            return Err(fail("rte_extmem_register", e));
        }
        let contiguous = iovas.as_deref().is_none_or(|t| one_run(t, page_size).is_some());
        Ok(ExtMem {
            base: p as *mut u8,
            len,
            page_size,
            hugetlb,
            iovas,
            contiguous,
            mapped: Vec::new(),
            _not_sync: PhantomData,
        })
    }

    /// DMA-maps the memory for `port` when its bus needs it: a device on a
    /// physical bus (PCI, ...) with vfio enabled (the IOMMU must learn the
    /// mapping). Virtual devices (net_tap, virtio-user, net_ring, ...) and
    /// uio-bound devices (no IOMMU) need none: skipped, and the reason is
    /// logged once per process. DPDK's own memory (memzones, mempools, the
    /// page array) never needs this: the EAL maps it to vfio itself.
    pub fn dma_map_if_needed(&mut self, port: &Port) -> Result<DmaMapping> {
        let bus = crate::ports::listing(port.id()).map(|l| l.bus).unwrap_or_default();
        let skip = if bus == "vdev" || bus.is_empty() {
            Some("virtual device: the PMD reads process memory directly")
        } else {
            let vfio = CString::new("vfio").map_err(|_| Error::NulInArgument("vfio".into()))?;
            // SAFETY: vfio is a valid C string; pure query.
            (unsafe { ffi::rte_vfio_is_enabled(vfio.as_ptr()) } == 0)
                .then_some("vfio is not in use (uio drivers DMA to physical addresses without an IOMMU)")
        };
        if let Some(why) = skip {
            static LOGGED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            if !LOGGED.swap(true, std::sync::atomic::Ordering::Relaxed) {
                tracing::info!(port = port.id(), bus, why, "external memory DMA mapping skipped");
            }
            return Ok(DmaMapping::NotNeeded(why));
        }
        self.dma_map(port)?;
        Ok(DmaMapping::Mapped)
    }

    /// DMA-maps the memory for `port`'s device. PMDs without an IOMMU path
    /// (every NIC-less vdev) answer `ENOTSUP`, reported as an error the caller
    /// may treat as "no mapping needed".
    pub fn dma_map(&mut self, port: &Port) -> Result<()> {
        let dev = port.device_ptr()?;
        let mut done = Vec::new();
        for (off, len) in self.iova_runs() {
            let iova = self.iova_at(off).unwrap_or(u64::MAX);
            // SAFETY: dev is the port's live device; [off, off+len) is inside
            // the registered extmem and IOVA-contiguous from `iova`.
            let ret = unsafe { ffi::rte_dev_dma_map(dev, self.base.add(off) as *mut c_void, iova, len) };
            if ret != 0 {
                let errno = RteErrno::last();
                for (o, l) in done {
                    // SAFETY: undoes the maps of this call that succeeded.
                    unsafe {
                        ffi::rte_dev_dma_unmap(dev, self.base.add(o) as *mut c_void, self.iova_at(o).unwrap_or(0), l)
                    };
                }
                return Err(Error::ExtMem { op: "rte_dev_dma_map", len: self.len, page_size: self.page_size, errno });
            }
            done.push((off, len));
        }
        self.mapped.push((port.id(), dev));
        Ok(())
    }

    /// The region split into IOVA-contiguous runs `(offset, len)`: one run in
    /// VA mode, one per run of physically adjacent pages in PA mode.
    fn iova_runs(&self) -> Vec<(usize, usize)> {
        match &self.iovas {
            Some(t) => contiguous_runs(t, self.page_size),
            None => vec![(0, self.len)],
        }
    }
}

/// The first page's IOVA when pages with IOVAs `iovas` (each `page_size`
/// bytes) form one IOVA run: none is `RTE_BAD_IOVA` and each continues the
/// one before.
fn one_run(iovas: &[u64], page_size: usize) -> Option<u64> {
    let first = *iovas.first()?;
    (!iovas.contains(&u64::MAX) && contiguous_runs(iovas, page_size).len() == 1).then_some(first)
}

/// Splits pages with IOVAs `iovas` (page `i` at offset `i * page_size`) into
/// maximal IOVA-contiguous runs `(offset, len)`, in order.
fn contiguous_runs(iovas: &[u64], page_size: usize) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut prev: Option<u64> = None;
    for (i, &a) in iovas.iter().enumerate() {
        match (runs.last_mut(), prev) {
            (Some((_, l)), Some(p)) if p.checked_add(page_size as u64) == Some(a) => *l += page_size,
            _ => runs.push((i * page_size, page_size)),
        }
        prev = Some(a);
    }
    runs
}

impl sealed::Sealed for ExtMem {
    fn base(&self) -> *mut u8 {
        self.base
    }
}

impl DmaRegion for ExtMem {
    fn len(&self) -> usize {
        self.len
    }
    fn page_size(&self) -> usize {
        self.page_size
    }
    fn iova_contiguous(&self) -> bool {
        self.contiguous
    }
    fn iova_at(&self, offset: usize) -> Option<u64> {
        if offset >= self.len {
            return None;
        }
        // page_size is a power of two (checked by `register`).
        match &self.iovas {
            Some(t) => Some(t.get(offset >> self.page_size.trailing_zeros())? + (offset & (self.page_size - 1)) as u64),
            None => Some(self.base as u64 + offset as u64),
        }
    }
}

impl Drop for ExtMem {
    fn drop(&mut self) {
        let runs = self.iova_runs();
        for (port, dev) in std::mem::take(&mut self.mapped) {
            for &(off, len) in &runs {
                let iova = self.iova_at(off).unwrap_or(u64::MAX);
                // SAFETY: undoes a successful dma_map on a device that is still
                // registered (if the port was closed since, DPDK reports an
                // error which we only log).
                let ret = unsafe { ffi::rte_dev_dma_unmap(dev, self.base.add(off) as *mut c_void, iova, len) };
                if ret != 0 {
                    tracing::debug!(port, errno = %RteErrno::last(), "rte_dev_dma_unmap failed");
                }
            }
        }
        // SAFETY: registered in register(); no attachment outlives self (Rc).
        unsafe {
            if ffi::rte_extmem_unregister(self.base as *mut c_void, self.len) != 0 {
                tracing::warn!(errno = %RteErrno::last(), "rte_extmem_unregister failed");
            }
            libc::munmap(self.base as *mut c_void, self.len);
        }
    }
}

/// What [`ExtMem::dma_map_if_needed`] did for a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmaMapping {
    /// Mapped with `rte_dev_dma_map`; unmapped when the memory is dropped.
    Mapped,
    /// No mapping needed, and why.
    NotNeeded(&'static str),
}

#[cfg(test)]
mod tests {
    use super::{contiguous_runs, one_run};

    /// A region is one IOVA run (slices checked from bounds alone) only
    /// when no page is `RTE_BAD_IOVA` and every page continues the one
    /// before.
    #[test]
    fn one_run_only_when_every_page_continues_the_last() {
        const P: usize = 4096;
        let p = P as u64;
        assert_eq!(one_run(&[], P), None);
        assert_eq!(one_run(&[7 * p], P), Some(7 * p));
        assert_eq!(one_run(&[7 * p, 8 * p, 9 * p], P), Some(7 * p));
        for t in [
            vec![7 * p, 9 * p],
            vec![7 * p, 6 * p],
            vec![7 * p, u64::MAX],
            vec![u64::MAX],
            vec![u64::MAX - p + 1, u64::MAX],
        ] {
            assert_eq!(one_run(&t, P), None, "{t:?}");
        }
        // (contiguous_runs, for DMA mapping, splits at gaps only.)
        assert_eq!(contiguous_runs(&[7 * p, 9 * p], P).len(), 2);
        for t in [vec![7 * p], vec![7 * p, 8 * p, 9 * p]] {
            assert_eq!(contiguous_runs(&t, P), vec![(0, t.len() * P)]);
        }
    }

    #[test]
    fn physically_adjacent_pages_map_as_one_run() {
        const P: usize = 2 << 20;
        let p = P as u64;
        assert_eq!(contiguous_runs(&[], P), vec![]);
        assert_eq!(contiguous_runs(&[10 * p], P), vec![(0, P)]);
        assert_eq!(contiguous_runs(&[10 * p, 11 * p, 12 * p], P), vec![(0, 3 * P)]);
        // Scattered, descending, and adjacent again after a gap.
        assert_eq!(
            contiguous_runs(&[10 * p, 9 * p, 3 * p, 4 * p, u64::MAX], P),
            vec![(0, P), (P, P), (2 * P, 2 * P), (4 * P, P)]
        );
    }
}
