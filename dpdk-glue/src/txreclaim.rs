//! TX reclaim in slices on virtio queues (`[dpdk] tx_free_batch`).
//!
//! A virtio split ring reclaims sent descriptors (frees their mbufs, and so
//! runs their external-buffer callbacks) when more than `ring −
//! tx_free_thresh` of its `ring` descriptors are in use, all of them at once
//! (DPDK 22.11 `virtio_xmit_pkts` and its in-order and vectorized split
//! variants). The default threshold (32, or ring/4 for rings of 128 or less)
//! therefore frees nearly the whole ring inside one `tx_burst`: on a 1024
//! ring ~990 frees every ~990 frames, a stall every request in flight waits
//! out. With `tx_free_thresh = ring − batch` the queue reclaims `batch` at a
//! time instead.
//!
//! The driver checks the threshold against the device's ring (`vq_nentries`:
//! virtio-user's `queue_size`, 256 by default; a PCI device's queue size),
//! which can differ from the descriptors asked for, and refuses one of
//! `ring − 3` or more. `setup_sliced` finds the ring from those refusals
//! (largest power of two accepted with a threshold of `candidate − 4`) and
//! then sets the queue up with `ring − batch`.
//!
//! Packed rings are left to the driver: the scalar packed path ignores the
//! threshold and the vectorized one reads it the other way round (frees
//! `tx_free_thresh` descriptors once `ring − tx_free_thresh` are in use, so
//! its default already frees 32 at a time). A virtio-user port asks for a
//! packed ring with `packed_vq=1` in its devargs; a PCI device negotiates it
//! (QEMU `packed=on`), which zcstack cannot see: leave `tx_free_batch=0`
//! there.

/// [`crate::port::PortConfig::tx_free_batch`]'s default (and `[dpdk]
/// tx_free_batch`'s): DPDK's `DEFAULT_TX_FREE_THRESH`, the batch Intel's PMDs
/// free in.
pub const DEFAULT_TX_FREE_BATCH: u16 = 32;

/// Ring sizes tried, largest first: virtio's largest queue down to 16.
const RING_CANDIDATES: [u16; 12] = [32768, 16384, 8192, 4096, 2048, 1024, 512, 256, 128, 64, 32, 16];

/// Whether a TX queue of `driver` (with vdev `devargs`, when known) should
/// reclaim in slices of `batch`: a virtio driver on a split ring, `batch` >
/// 0. Other drivers keep their defaults (Intel's PMDs already free in
/// `tx_rs_thresh`, 32, batches).
pub fn sliced(driver: &str, devargs: Option<&str>, batch: u16) -> bool {
    let virtio = matches!(driver, "net_virtio" | "net_virtio_user");
    let packed = devargs.is_some_and(|a| a.split(',').any(|kv| kv.trim() == "packed_vq=1"));
    batch > 0 && virtio && !packed
}

/// The threshold that makes a split ring of `ring` (16 or more)
/// descriptors reclaim `batch` at a time. The driver refuses a threshold of
/// `ring − 3` or more, so a batch below 4 is 4; a batch the ring cannot take
/// (more than `ring − 4`) becomes a quarter of the ring, the driver's own
/// default for small rings.
pub fn tx_free_thresh(ring: u16, batch: u16) -> u16 {
    let batch = if u32::from(batch) + 4 > u32::from(ring) { ring / 4 } else { batch };
    ring - batch.max(4)
}

/// Sets a virtio TX queue up to reclaim `batch` descriptors at a time.
/// `setup(thresh)` sets the queue up with `tx_free_thresh = thresh` and
/// returns DPDK's result (0, or a negative errno). Returns `(ring,
/// thresh)` once a setup with the sliced threshold succeeded; `None` when
/// no candidate ring was accepted or the final setup failed (the caller
/// then sets the queue up with the driver's defaults).
pub(crate) fn setup_sliced(batch: u16, setup: &mut dyn FnMut(u16) -> i32) -> Option<(u16, u16)> {
    let ring = RING_CANDIDATES.into_iter().find(|&r| setup(r - 4) == 0)?;
    let thresh = tx_free_thresh(ring, batch);
    (thresh == ring - 4 || setup(thresh) == 0).then_some((ring, thresh))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A virtio queue on a ring of `n` descriptors: DPDK 22.11's check.
    fn device(n: u16, calls: &mut Vec<u16>) -> impl FnMut(u16) -> i32 + '_ {
        move |t| {
            calls.push(t);
            if t >= n - 3 {
                -22
            } else {
                0
            }
        }
    }

    #[test]
    fn the_ring_is_found_from_the_drivers_refusals_then_sliced() {
        for n in [16u16, 64, 128, 256, 1024, 4096, 32768] {
            let mut calls = Vec::new();
            let got = setup_sliced(32, &mut device(n, &mut calls));
            let want = tx_free_thresh(n, 32);
            assert_eq!(got, Some((n, want)), "ring {n}");
            // The last setup is the one that stays: the sliced threshold.
            assert_eq!(calls.last(), Some(&want), "ring {n}: {calls:?}");
            assert!(want < n - 3, "accepted by the driver");
        }
    }

    #[test]
    fn thresholds_leave_a_slice_of_batch_or_a_quarter_of_a_small_ring() {
        assert_eq!(tx_free_thresh(1024, 32), 992);
        assert_eq!(tx_free_thresh(256, 64), 192);
        // Below 4: 4 (the driver refuses ring - 3 and above).
        assert_eq!(tx_free_thresh(256, 1), 252);
        // More than the ring can take: a quarter of it.
        assert_eq!(tx_free_thresh(64, 512), 48);
        assert_eq!(tx_free_thresh(16, 13), 12);
        assert_eq!(tx_free_thresh(16, 12), 4);
        for ring in RING_CANDIDATES {
            for batch in [1u16, 4, 32, 500, 4096] {
                let t = tx_free_thresh(ring, batch);
                assert!(t < ring - 3, "ring {ring} batch {batch}: {t}");
            }
        }
    }

    #[test]
    fn a_device_refusing_everything_keeps_the_drivers_defaults() {
        assert_eq!(setup_sliced(32, &mut |_| -22), None);
        // Accepted while probing, refused with the sliced threshold.
        let mut n = 0;
        assert_eq!(
            setup_sliced(32, &mut |t| {
                n += 1;
                if t == 1020 {
                    0
                } else {
                    -22
                }
            }),
            None
        );
        assert!(n > 1);
    }

    #[test]
    fn virtio_split_rings_are_sliced_other_drivers_and_packed_rings_are_not() {
        assert!(sliced("net_virtio_user", Some("path=/tmp/s,queue_size=1024"), 32));
        assert!(sliced("net_virtio", None, 32));
        assert!(!sliced("net_virtio_user", Some("path=/tmp/s,packed_vq=1"), 32));
        assert!(sliced("net_virtio_user", Some("path=/tmp/s,packed_vq=0"), 32));
        assert!(!sliced("net_virtio_user", None, 0));
        for d in ["net_ixgbe", "net_i40e", "net_vhost", "net_memif", "net_tap", "net_ring", ""] {
            assert!(!sliced(d, None, 32), "{d}");
        }
    }
}
