//! The page array: zcstack's [`PageMemory`] in DPDK memory.
//!
//! One memzone (F-Stack's `memsz_MB`, default 256 MiB) carved into buffers
//! of a power-of-two size that divides the memory page size, so no buffer
//! ever crosses a page boundary (in IOVA-as-PA mode pages are physically
//! scattered) and the IOVA of every buffer is known. The TCP send queue,
//! in-flight frames and zero-copy application buffers hold references on
//! these buffers; [`crate::device::EthDevice`] attaches them to mbufs as
//! external buffers, so the NIC reads the payload where the application
//! wrote it.

use std::rc::Rc;

use zcstack::mem::{PageError, PageId, PageMemory, RefTable};

use crate::eal::Eal;
use crate::error::{Error, Result};
use crate::extbuf::{sealed::Sealed, DmaRegion, MemRegion};

/// A region of DPDK memory carved into reference-counted buffers.
pub struct PageArray {
    region: Rc<MemRegion>,
    base: *mut u8,
    buf_size: usize,
    table: RefTable,
}

impl std::fmt::Debug for PageArray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageArray")
            .field("region", &self.region)
            .field("buf_size", &self.buf_size)
            .field("buffers", &self.table.capacity())
            .field("free", &self.table.free_count())
            .finish()
    }
}

impl PageArray {
    /// Reserves `bytes` of DPDK memory named `name` and carves it into
    /// buffers of `buf_size` bytes (a power of two from 256 up to the memory
    /// page size).
    pub fn new(eal: &Eal, name: &str, bytes: usize, buf_size: usize) -> Result<PageArray> {
        PageArray::new_on_socket(eal, name, bytes, buf_size, None)
    }

    /// As [`PageArray::new`], with the memory on NUMA socket `socket`
    /// (`None`: any socket; F-Stack's `numa_on` passes the port's socket,
    /// see [`crate::ports::placement_socket`]).
    ///
    /// IOVAs: the memory is DPDK's own (a memzone), so every buffer's IOVA
    /// (`PageMemory::iova`) is what `rte_mem_virt2iova` reports for it: the
    /// physical address in IOVA-as-PA mode, the virtual address in VA mode.
    /// With vfio DPDK maps its memory for DMA itself; no `rte_dev_dma_map`
    /// is needed.
    pub fn new_on_socket(
        eal: &Eal,
        name: &str,
        bytes: usize,
        buf_size: usize,
        socket: Option<i32>,
    ) -> Result<PageArray> {
        if !buf_size.is_power_of_two() || !(256..=1 << 16).contains(&buf_size) {
            return Err(Error::BadPageArray {
                bytes,
                buf_size,
                why: "buffer size must be a power of two in 256..=65536",
            });
        }
        let count = bytes / buf_size;
        if count == 0 || count > u32::MAX as usize {
            return Err(Error::BadPageArray { bytes, buf_size, why: "size must hold 1 to 2^32-1 buffers" });
        }
        let region = MemRegion::reserve_on_socket(eal, name, count * buf_size, buf_size.max(4096) as u32, socket)?;
        if buf_size > region.page_size() {
            return Err(Error::BadPageArray {
                bytes,
                buf_size,
                why: "buffers larger than the memory page size would cross page boundaries",
            });
        }
        let base = region.base();
        Ok(PageArray { region: Rc::new(region), base, buf_size, table: RefTable::new(count as u32) })
    }

    /// Byte offset of a buffer in the region.
    pub fn offset_of(&self, id: PageId) -> usize {
        id.0 as usize * self.buf_size
    }

    /// The region, for attaching buffers to mbufs (crate-private: no one
    /// else may write through it while slices are borrowed).
    pub(crate) fn region(&self) -> &Rc<MemRegion> {
        &self.region
    }

    fn range(&self, id: PageId) -> usize {
        assert!((id.0 as usize) < self.table.capacity(), "page {id:?} outside the page array");
        self.offset_of(id)
    }
}

impl PageMemory for PageArray {
    fn buf_size(&self) -> usize {
        self.buf_size
    }
    fn capacity(&self) -> usize {
        self.table.capacity()
    }
    fn free_count(&self) -> usize {
        self.table.free_count()
    }
    fn alloc(&mut self) -> Option<PageId> {
        self.table.alloc()
    }
    fn incref(&mut self, id: PageId) -> std::result::Result<(), PageError> {
        self.table.incref(id)
    }
    fn decref(&mut self, id: PageId) -> std::result::Result<bool, PageError> {
        self.table.decref(id)
    }
    fn refcount(&self, id: PageId) -> u16 {
        self.table.refcount(id)
    }
    fn bytes(&self, id: PageId) -> &[u8] {
        let off = self.range(id);
        // SAFETY: [off, off + buf_size) is inside the memzone (checked id),
        // which lives as long as self (Rc). The CPU writes to region memory
        // only through bytes_mut (needs &mut self, so not while this borrow
        // lives); the NIC only reads it (TX DMA).
        unsafe { std::slice::from_raw_parts(self.base.add(off), self.buf_size) }
    }
    fn bytes_mut(&mut self, id: PageId) -> &mut [u8] {
        let off = self.range(id);
        // SAFETY: as in bytes(); &mut self makes this the only CPU reference.
        // A NIC may still be reading other bytes of a shared buffer (a
        // partly sent zero-copy chain), never the bytes a writer owns.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(off), self.buf_size) }
    }
    fn copy_between(&mut self, src: PageId, src_off: usize, dst: PageId, dst_off: usize, len: usize) {
        let bs = self.buf_size;
        assert!(src_off + len <= bs && dst_off + len <= bs, "copy outside a buffer");
        let (s, d) = (self.range(src) + src_off, self.range(dst) + dst_off);
        // SAFETY: both ranges are inside the memzone (ids checked by range(),
        // offsets above); &mut self excludes other CPU references; ptr::copy
        // allows overlap (the same buffer).
        unsafe { std::ptr::copy(self.base.add(s), self.base.add(d), len) };
    }
    fn iova(&self, id: PageId) -> Option<u64> {
        self.region.iova_at(self.offset_of(id))
    }
}
