//! [`TxPrefetch`]: whether zero-copy TX warms a frame's payload for the
//! port's software backend, and for which ports (`[zerocopy]
//! payload_prefetch`).

/// Whether zero-copy TX warms a frame's payload in this CPU's caches as it
/// builds the frame (`[zerocopy] payload_prefetch`).
///
/// Zero copy hands the device the application's pages as they are: when the
/// data was written long ago (a file or object cache) they sit in DRAM. A
/// NIC reads them by DMA at no CPU cost, but the software backend of a
/// virtio-user port (a DPDK `net_vhost` process, measured; the kernel's
/// vhost-net works the same way, not measured) copies them on one of its
/// CPUs and waits for every line. Session 12 measured it over virtio-user ↔
/// vhost with a 32 MiB data set, alternating runs
/// (bench-results/zc-2026-11-30-s12-prefetch-ab.txt, section 2, its two
/// fast-state rounds): vhost spent 0.446–0.457 busy cycles per byte on
/// zero-copy frames against 0.283–0.288 on copy mode's (whose sender had
/// read the data in its copy); with the payload prefetched as each frame is
/// built (`prefetcht0`, one per 64-byte line) 0.320–0.338. Zero copy's
/// Gbit/s at 1 KiB writes went from 0.77× copy mode's to 0.94× (medians of
/// all three rounds of that run; two later `ci/bench-zc` runs read 1.06×
/// and 0.99×, paired medians 1.04× and 0.96×).
///
/// Only on x86-64 (elsewhere it resolves to off), only for frames of at
/// most [`PREFETCH_MAX_PAYLOAD`] bytes of payload, and only on ports that
/// offload the TCP checksum (otherwise the engine reads the payload for the
/// checksum as it builds the segment, and it is in cache already).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TxPrefetch {
    /// On for `net_virtio_user` ports, except those on a vhost-vdpa device
    /// (usually hardware, whose DMA needs nothing; software vDPA such as
    /// VDUSE is left off too, unmeasured); off for every other
    /// driver. `net_vhost` and `net_memif` copy the payload themselves, on
    /// this lcore inside `tx_burst` (`rte_vhost_enqueue_burst`,
    /// `eth_memif_tx`): a prefetch could only run a little ahead of that
    /// copy, which was not measured.
    #[default]
    Auto,
    /// On for every port (x86-64).
    On,
    /// Never.
    Off,
}

/// Zero-copy frames with more payload than this, bytes, are not prefetched
/// (TSO and jumbo frames): their prefetches, thousands of bytes' worth
/// issued back to back, cost the sender about what they save the peer, or
/// more (session 12, 64 KiB writes over virtio-user ↔ vhost, medians of 3:
/// TSO sender 0.040 → 0.112 cycles/B, receiver 0.311 → 0.238, +3.6%
/// Gbit/s; MTU 9000 sender 0.077 → 0.158, receiver 0.263 → 0.216, +6.7%),
/// while a standard-MTU segment's ~23 lines overlap with the frame's other
/// work.
pub const PREFETCH_MAX_PAYLOAD: usize = 2048;

impl TxPrefetch {
    /// The setting named by `v`: `auto`, `1` (on) or `0` (off), as
    /// `[zerocopy] payload_prefetch` and `bulk --payload-prefetch` take it.
    pub fn parse(v: &str) -> Option<TxPrefetch> {
        match v {
            "auto" => Some(TxPrefetch::Auto),
            "1" => Some(TxPrefetch::On),
            "0" => Some(TxPrefetch::Off),
            _ => None,
        }
    }

    /// Whether a port of `driver` (a vdev created with `devargs`, when
    /// known) prefetches on this machine.
    pub fn resolve(self, driver: &str, devargs: Option<&str>) -> bool {
        let vdpa = devargs.is_some_and(|a| a.split(',').any(|kv| kv.trim().starts_with("path=/dev/vhost-vdpa")));
        cfg!(target_arch = "x86_64")
            && match self {
                TxPrefetch::Auto => driver == "net_virtio_user" && !vdpa,
                TxPrefetch::On => true,
                TxPrefetch::Off => false,
            }
    }
}
