//! Shared helpers for dpdk-glue's integration tests. Each test file is its own
//! process with one EAL, shared by its tests through [`eal`].
#![allow(dead_code)]

pub mod hugepages;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use dpdk_glue::{Eal, EalArgs};

/// The process's EAL: `--no-huge -m 1024 --no-pci --no-shconf`, one lcore.
/// 1 GiB: a test binary's tests run in parallel, and `zc_ring`'s five each
/// hold two 64 MiB page arrays plus pools at once (512 MiB ran out now and
/// then: `Memzone ... ENOMEM`).
pub fn eal() -> &'static Eal {
    static EAL: OnceLock<Eal> = OnceLock::new();
    EAL.get_or_init(|| {
        let mut a = EalArgs::nic_less("0@0");
        a.memory_mb = Some(1024);
        a.file_prefix = Some(format!("zctest{}", std::process::id()));
        a.log_level = Some("error".into());
        Eal::init(&a).expect("EAL init with --no-huge --no-pci --no-shconf")
    })
}

/// A name unique within this process (DPDK object names are process-global).
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Deterministic test bytes.
pub fn pattern(seed: u32, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}
