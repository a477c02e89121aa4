//! Payload memory: one region carved into fixed-size buffers with reference
//! counts, addressed by [`PageId`]. The TCP send queue, in-flight frames and
//! the application hold references; a buffer returns to the free list when the
//! last one is dropped — so a payload byte is freed only when it is both ACKed
//! (the send queue let go) and every transmission of it completed (the device
//! let go). [`HeapPages`] is the heap-backed implementation for tests; the
//! DPDK glue provides one in DPDK memory.

use thiserror::Error;

/// Index of a buffer in a [`PageMemory`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PageId(pub u32);

/// A byte range inside one buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageSlice {
    /// The buffer.
    pub page: PageId,
    /// Offset of the first byte.
    pub off: u32,
    /// Number of bytes.
    pub len: u32,
}

/// Misuse of reference counts: a bug in the caller, reported instead of
/// corrupting memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum PageError {
    /// The id is outside the region.
    #[error("page {0:?} does not exist")]
    NoSuchPage(PageId),
    /// The buffer is already free.
    #[error("page {0:?} is free (double free or use after free)")]
    NotAllocated(PageId),
    /// The reference count would overflow.
    #[error("page {0:?} has too many references")]
    TooManyRefs(PageId),
}

/// A region of fixed-size, reference-counted buffers.
pub trait PageMemory {
    /// Size of every buffer in bytes.
    fn buf_size(&self) -> usize;
    /// Number of buffers in the region.
    fn capacity(&self) -> usize;
    /// Number of free buffers.
    fn free_count(&self) -> usize;
    /// Takes a free buffer with one reference, or `None` when exhausted.
    fn alloc(&mut self) -> Option<PageId>;
    /// Adds a reference.
    fn incref(&mut self, id: PageId) -> Result<(), PageError>;
    /// Drops a reference; returns `true` when the buffer went back to the free list.
    fn decref(&mut self, id: PageId) -> Result<bool, PageError>;
    /// Current reference count (0 = free).
    fn refcount(&self, id: PageId) -> u16;
    /// The buffer's bytes. Panics if `id` is outside the region.
    fn bytes(&self, id: PageId) -> &[u8];
    /// The buffer's bytes, writable. Panics if `id` is outside the region.
    fn bytes_mut(&mut self, id: PageId) -> &mut [u8];
    /// Copies `len` bytes from buffer `src` at `src_off` to buffer `dst` at
    /// `dst_off` (a buffer-to-buffer copy without a bounce where the memory
    /// allows). Panics if either range is outside its buffer.
    fn copy_between(&mut self, src: PageId, src_off: usize, dst: PageId, dst_off: usize, len: usize) {
        let mut tmp = [0u8; 256];
        let mut done = 0;
        while done < len {
            let n = tmp.len().min(len - done);
            tmp[..n].copy_from_slice(&self.bytes(src)[src_off + done..src_off + done + n]);
            self.bytes_mut(dst)[dst_off + done..dst_off + done + n].copy_from_slice(&tmp[..n]);
            done += n;
        }
    }
    /// The bytes of a slice. Panics if the slice is outside its buffer.
    fn slice(&self, s: PageSlice) -> &[u8] {
        &self.bytes(s.page)[s.off as usize..(s.off + s.len) as usize]
    }
    /// The DMA address of a buffer's first byte, where the memory has one.
    fn iova(&self, _id: PageId) -> Option<u64> {
        None
    }
}

/// A reference to a page memory is one: generic code holding `&mut M` for
/// an `M` that may be unsized (`dyn PageMemory` itself) hands `&mut &mut M`
/// to a function taking `&mut dyn PageMemory` (an unsized `M` cannot be
/// coerced directly). Every method forwards.
impl<T: PageMemory + ?Sized> PageMemory for &mut T {
    #[inline]
    fn buf_size(&self) -> usize {
        (**self).buf_size()
    }
    #[inline]
    fn capacity(&self) -> usize {
        (**self).capacity()
    }
    #[inline]
    fn free_count(&self) -> usize {
        (**self).free_count()
    }
    #[inline]
    fn alloc(&mut self) -> Option<PageId> {
        (**self).alloc()
    }
    #[inline]
    fn incref(&mut self, id: PageId) -> Result<(), PageError> {
        (**self).incref(id)
    }
    #[inline]
    fn decref(&mut self, id: PageId) -> Result<bool, PageError> {
        (**self).decref(id)
    }
    #[inline]
    fn refcount(&self, id: PageId) -> u16 {
        (**self).refcount(id)
    }
    #[inline]
    fn bytes(&self, id: PageId) -> &[u8] {
        (**self).bytes(id)
    }
    #[inline]
    fn bytes_mut(&mut self, id: PageId) -> &mut [u8] {
        (**self).bytes_mut(id)
    }
    #[inline]
    fn copy_between(&mut self, src: PageId, src_off: usize, dst: PageId, dst_off: usize, len: usize) {
        (**self).copy_between(src, src_off, dst, dst_off, len)
    }
    #[inline]
    fn slice(&self, s: PageSlice) -> &[u8] {
        (**self).slice(s)
    }
    #[inline]
    fn iova(&self, id: PageId) -> Option<u64> {
        (**self).iova(id)
    }
}

/// Reference counts and the free list of a region of `count` buffers: the
/// bookkeeping every [`PageMemory`] shares, whatever backs its bytes.
#[derive(Debug)]
pub struct RefTable {
    refs: Vec<u16>,
    free: Vec<u32>,
}

impl RefTable {
    /// `count` free buffers; the lowest ids are handed out first.
    pub fn new(count: u32) -> Self {
        RefTable { refs: vec![0; count as usize], free: (0..count).rev().collect() }
    }

    fn idx(&self, id: PageId) -> Result<usize, PageError> {
        let i = id.0 as usize;
        if i < self.refs.len() {
            Ok(i)
        } else {
            Err(PageError::NoSuchPage(id))
        }
    }

    /// Number of buffers.
    pub fn capacity(&self) -> usize {
        self.refs.len()
    }

    /// Number of free buffers.
    pub fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Takes a free buffer (most recently freed first, for cache warmth)
    /// with one reference.
    pub fn alloc(&mut self) -> Option<PageId> {
        let i = self.free.pop()?;
        self.refs[i as usize] = 1;
        Some(PageId(i))
    }

    /// Adds a reference.
    pub fn incref(&mut self, id: PageId) -> Result<(), PageError> {
        let i = self.idx(id)?;
        match self.refs[i] {
            0 => Err(PageError::NotAllocated(id)),
            u16::MAX => Err(PageError::TooManyRefs(id)),
            _ => {
                self.refs[i] += 1;
                Ok(())
            }
        }
    }

    /// Drops a reference; `true` when the buffer went back to the free list.
    pub fn decref(&mut self, id: PageId) -> Result<bool, PageError> {
        let i = self.idx(id)?;
        match self.refs[i] {
            0 => Err(PageError::NotAllocated(id)),
            1 => {
                self.refs[i] = 0;
                self.free.push(id.0);
                Ok(true)
            }
            _ => {
                self.refs[i] -= 1;
                Ok(false)
            }
        }
    }

    /// Current reference count (0 = free or out of range).
    pub fn refcount(&self, id: PageId) -> u16 {
        self.refs.get(id.0 as usize).copied().unwrap_or(0)
    }
}

/// Heap-backed [`PageMemory`] for tests and copy-mode devices.
#[derive(Debug)]
pub struct HeapPages {
    data: Vec<u8>,
    buf_size: usize,
    table: RefTable,
}

impl HeapPages {
    /// `count` buffers of `buf_size` bytes.
    pub fn new(count: u32, buf_size: usize) -> Self {
        HeapPages { data: vec![0; count as usize * buf_size], buf_size, table: RefTable::new(count) }
    }
}

impl PageMemory for HeapPages {
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
    fn incref(&mut self, id: PageId) -> Result<(), PageError> {
        self.table.incref(id)
    }
    fn decref(&mut self, id: PageId) -> Result<bool, PageError> {
        self.table.decref(id)
    }
    fn refcount(&self, id: PageId) -> u16 {
        self.table.refcount(id)
    }
    fn bytes(&self, id: PageId) -> &[u8] {
        let s = id.0 as usize * self.buf_size;
        &self.data[s..s + self.buf_size]
    }
    fn bytes_mut(&mut self, id: PageId) -> &mut [u8] {
        let s = id.0 as usize * self.buf_size;
        &mut self.data[s..s + self.buf_size]
    }
    fn copy_between(&mut self, src: PageId, src_off: usize, dst: PageId, dst_off: usize, len: usize) {
        let bs = self.buf_size;
        assert!(src_off + len <= bs && dst_off + len <= bs, "copy outside a buffer");
        let (s, d) = (src.0 as usize * bs + src_off, dst.0 as usize * bs + dst_off);
        self.data.copy_within(s..s + len, d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_between_buffers() {
        let mut m = HeapPages::new(4, 16);
        let (a, b) = (m.alloc().unwrap(), m.alloc().unwrap());
        m.bytes_mut(a).copy_from_slice(b"0123456789abcdef");
        m.copy_between(a, 3, b, 10, 6);
        assert_eq!(&m.bytes(b)[10..16], b"345678");
        m.copy_between(a, 0, a, 8, 8); // the same buffer, overlapping-safe
        assert_eq!(m.bytes(a), b"0123456701234567");
    }

    #[test]
    fn refcounts_free_on_last_release_and_catch_misuse() {
        let mut m = HeapPages::new(2, 64);
        let a = m.alloc().unwrap();
        let b = m.alloc().unwrap();
        assert_eq!(m.alloc(), None);
        m.incref(a).unwrap();
        assert_eq!(m.decref(a), Ok(false));
        assert_eq!(m.free_count(), 0);
        assert_eq!(m.decref(a), Ok(true));
        assert_eq!(m.free_count(), 1);
        assert_eq!(m.decref(a), Err(PageError::NotAllocated(a)));
        assert_eq!(m.incref(a), Err(PageError::NotAllocated(a)));
        assert_eq!(m.incref(PageId(9)), Err(PageError::NoSuchPage(PageId(9))));
        m.bytes_mut(b)[..3].copy_from_slice(b"abc");
        assert_eq!(m.slice(PageSlice { page: b, off: 1, len: 2 }), b"bc");
        assert_eq!(m.decref(b), Ok(true));
        assert_eq!(m.free_count(), 2);
    }
}
