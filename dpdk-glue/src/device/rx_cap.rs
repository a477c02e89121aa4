//! When a short RX burst ends a poll's receiving
//! ([`zcstack::phy::DeviceCaps::rx_short_burst_ends_poll_max`]): which drivers hand all
//! they hold in one burst, and the threshold `EthDevice` declares.

/// [`zcstack::phy::DeviceCaps::rx_short_burst_ends_poll_max`] on the ports of
/// [`rx_burst_takes_all`]: a burst of one frame (fewer than asked) ends a
/// poll's receiving, a short burst of two or more does not. Chosen by
/// measurement (session 30,
/// `bench-results/ab-shortburst-cap-2026-12-02-s30-zen5.txt`): a lone
/// frame is the light-load case the cap is for (an exchange's request or
/// answer: one empty `rx_burst` fewer on its path; rr64 kept its gain),
/// while several are a loaded queue where asking again batches what
/// arrived meanwhile into this pass (ending on any short burst cost
/// per-connection HTTP ~10%). Also, DPDK 22.11's split and packed virtio
/// receive paths that round a burst of more than 4 down to a cache line
/// of descriptors still hand at least 2 in that call.
///
/// A burst of one can still leave frames in the queue: the in-order path
/// does not round but the mergeable paths round buffers, not frames (a
/// frame over several buffers, when the peer's MTU is larger), the PMD may
/// discard a bad buffer inside the call, vhost and memif stop at an mbuf
/// allocation failure, an RX callback may take frames out, and a frame may
/// land just after the PMD read its ring. Such frames wait one pass: a pass
/// that received anything is followed by another at once (the run loop
/// sleeps only after a pass that did nothing).
const RX_SHORT_BURST_ENDS_POLL_MAX: usize = 1;

// Virtio hands at most 64 frames per call (`VIRTIO_MBUF_BURST_SZ`) whatever
// the budget: a full 64 must never count as a short burst that ends a poll.
const _: () = assert!(RX_SHORT_BURST_ENDS_POLL_MAX < 64);

/// The receive-loop cap of a port of `driver` (`None`: not known here):
/// [`RX_SHORT_BURST_ENDS_POLL_MAX`] on the ring-based PMDs
/// ([`rx_burst_takes_all`]), 0 (ask until a burst comes back empty) on the
/// others and wherever the count the engine sees is not the PMD's: RX
/// impairment (`impaired`) holds and drops frames of a burst, software
/// steering (`steered`) takes out those another lcore owns.
pub(crate) fn rx_short_burst_ends_poll_max(driver: Option<&str>, impaired: bool, steered: bool) -> usize {
    if driver.is_some_and(rx_burst_takes_all) && !impaired && !steered {
        RX_SHORT_BURST_ENDS_POLL_MAX
    } else {
        0
    }
}

/// Whether `driver`'s RX burst takes the frames its queue holds up to the
/// budget (with the exceptions [`RX_SHORT_BURST_ENDS_POLL_MAX`] lists): the
/// ring-based PMDs, vhost, `net_ring`, memif and virtio (PCI and
/// virtio-user). The vectorized virtio path (opt-in with the `vectorized=1`
/// devarg, and for split rings only without mergeable buffers, in-order
/// and RX offloads) also stops at the ring's wrap. Not `net_tap` (one frame
/// per `read`) nor unknown drivers.
fn rx_burst_takes_all(driver: &str) -> bool {
    matches!(driver, "net_virtio" | "net_virtio_user" | "net_vhost" | "net_ring" | "net_memif")
}

#[cfg(test)]
mod tests {
    use super::{rx_burst_takes_all, rx_short_burst_ends_poll_max, RX_SHORT_BURST_ENDS_POLL_MAX};

    #[test]
    fn only_ring_based_pmds_take_all_in_a_burst() {
        for d in ["net_virtio", "net_virtio_user", "net_vhost", "net_ring", "net_memif"] {
            assert!(rx_burst_takes_all(d), "{d}");
        }
        // A TAP device hands one frame per read; unknown drivers keep the
        // engine's default of asking until a burst comes back empty.
        for d in ["net_tap", "net_af_packet", "net_ixgbe", "", "net_virtio_userx"] {
            assert!(!rx_burst_takes_all(d), "{d}");
        }
    }

    #[test]
    fn a_burst_of_one_ends_the_poll_only_where_the_count_is_the_pmds() {
        for d in ["net_virtio", "net_virtio_user", "net_vhost", "net_ring", "net_memif"] {
            assert_eq!(rx_short_burst_ends_poll_max(Some(d), false, false), RX_SHORT_BURST_ENDS_POLL_MAX, "{d}");
            assert_eq!(rx_short_burst_ends_poll_max(Some(d), true, false), 0, "{d} impaired");
            assert_eq!(rx_short_burst_ends_poll_max(Some(d), false, true), 0, "{d} steered");
        }
        assert_eq!(RX_SHORT_BURST_ENDS_POLL_MAX, 1);
        assert_eq!(rx_short_burst_ends_poll_max(Some("net_tap"), false, false), 0);
        assert_eq!(rx_short_burst_ends_poll_max(None, false, false), 0);
    }
}
