//! Physical addresses of this process's memory, for IOVA-as-PA mode.
//!
//! Which memory gets its IOVA how:
//! - DPDK memory (memzones: the page array, mempools): `rte_mem_virt2iova`,
//!   right in both modes, since DPDK tracks the IOVA of every hugepage it
//!   maps; with vfio DPDK also DMA-maps all of it itself.
//! - Application memory registered as external memory ([`crate::ExtMem`]):
//!   in VA mode the IOVA is the address; in PA mode it is the physical
//!   address read here from `/proc/self/pagemap` (Linux
//!   `Documentation/admin-guide/mm/pagemap.rst`: one little-endian u64 per
//!   virtual page, bit 63 "present", bits 0-54 the page frame number; the
//!   frame number reads as 0 without `CAP_SYS_ADMIN`). The memory must be
//!   hugepages (never migrated or swapped) and touched before the lookup.

use std::os::unix::fs::FileExt;

use crate::error::{Error, Result};

/// Size of a base page, bytes (the pagemap's granularity).
const BASE_PAGE: usize = 4096;

const PRESENT: u64 = 1 << 63;
const PFN_MASK: u64 = (1 << 55) - 1;

/// The physical address of virtual address `addr` of this process.
///
/// Errors ([`Error::PhysAddr`]): the pagemap cannot be read, the page is not
/// present (never touched, or swapped out), or the frame number is hidden
/// (reads as 0: the process lacks `CAP_SYS_ADMIN`).
pub fn virt_to_phys(addr: usize) -> Result<u64> {
    let fail = |why: String| Error::PhysAddr { addr, why };
    let f = std::fs::File::open("/proc/self/pagemap").map_err(|e| fail(format!("open: {e}")))?;
    let mut entry = [0u8; 8];
    let off = (addr / BASE_PAGE) as u64 * 8;
    f.read_exact_at(&mut entry, off).map_err(|e| fail(format!("read at {off}: {e}")))?;
    decode(u64::from_le_bytes(entry), addr).map_err(|why| fail(why.to_owned()))
}

/// Decodes one pagemap entry for `addr` into a physical address.
fn decode(entry: u64, addr: usize) -> std::result::Result<u64, &'static str> {
    if entry & PRESENT == 0 {
        return Err("the page is not present (touch it first; hugepages are never swapped)");
    }
    let pfn = entry & PFN_MASK;
    if pfn == 0 {
        return Err("the frame number is hidden (reading it needs root / CAP_SYS_ADMIN)");
    }
    Ok(pfn * BASE_PAGE as u64 + (addr % BASE_PAGE) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagemap_entries_decode_to_frame_plus_offset() {
        assert_eq!(decode(PRESENT | 0x1234, 0x7f00_0000_0abc), Ok(0x1234 * 4096 + 0xabc));
        // Soft-dirty and exclusive bits (55, 56) are not part of the frame.
        assert_eq!(decode(PRESENT | (3 << 55) | 7, 0), Ok(7 * 4096));
        assert!(decode(0x1234, 0).unwrap_err().contains("not present"));
        assert!(decode(PRESENT, 0).unwrap_err().contains("CAP_SYS_ADMIN"));
    }

    #[test]
    fn a_touched_page_has_a_physical_address_or_a_clear_reason() {
        let v = vec![1u8; 3 * BASE_PAGE];
        let a = v.as_ptr() as usize + BASE_PAGE;
        match virt_to_phys(a) {
            Ok(pa) => assert_eq!(pa % BASE_PAGE as u64, (a % BASE_PAGE) as u64),
            Err(e) => assert!(e.to_string().contains("CAP_SYS_ADMIN"), "{e}"),
        }
    }
}
