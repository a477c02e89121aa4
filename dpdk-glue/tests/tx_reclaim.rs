//! `PortConfig::tx_free_batch` on a virtio-user port whose backend is a
//! `net_vhost` port in the same process: how many sent mbufs one
//! `tx_burst` gives back. With the driver's default a split ring gives back
//! almost the whole ring at once; sliced, at most a batch (plus the burst
//! in hand), whatever the ring size against the descriptors asked for.
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dpdk_glue::{Mempool, PoolConfig, Port, PortConfig};

/// What one run saw: the most mbufs a single `tx_burst` gave back, the most
/// held by the port at once, and frames sent and received.
#[derive(Debug)]
struct Seen {
    most_reclaimed: u32,
    most_held: u32,
    sent: usize,
    received: usize,
}

/// Removes the vhost socket even when the test fails.
struct Sock(String);

impl Drop for Sock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Sends `bursts` bursts of 8 64-byte frames from virtio-user (`devargs`
/// after the path, `tx_desc`, `batch`) to vhost, receiving as it goes.
fn run(devargs: &str, tx_desc: u16, batch: u16, bursts: usize) -> Seen {
    // One pair at a time: DPDK's control path (vdev creation, vhost
    // registration) is not safe from two threads at once, and the tests of
    // this file run on parallel threads (two vhost ports registered together
    // hung in "device not found").
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // A DPDK call that never returns cannot be interrupted: the process
    // fails instead of hanging the suite.
    static WATCHDOG: std::sync::Once = std::sync::Once::new();
    WATCHDOG.call_once(|| {
        std::thread::spawn(|| {
            std::thread::sleep(Duration::from_secs(120));
            eprintln!("tx_reclaim: still running after 120 s (each run is bounded to ~15 s): failing");
            std::process::exit(101);
        });
    });
    let eal = common::eal();
    let tag = common::unique("");
    let sock = Sock(format!("/tmp/zc-txreclaim-{}-{tag}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock.0);
    let vpool = Arc::new(Mempool::new(eal, &common::unique("trv"), &PoolConfig::packets(4095)).unwrap());
    let mut vhost = Port::create_vdev(eal, &format!("net_vhost{tag},iface={},queues=1", sock.0)).unwrap();
    vhost.configure(&PortConfig { rx_desc: 1024, tx_desc: 1024, ..PortConfig::default() }, vpool).unwrap();
    vhost.start().unwrap();
    let upool = Arc::new(Mempool::new(eal, &common::unique("tru"), &PoolConfig::packets(4095)).unwrap());
    let tx_pool = Mempool::new(eal, &common::unique("trx"), &PoolConfig::packets(8191)).unwrap();
    let mut vu = Port::create_vdev(eal, &format!("net_virtio_user{tag},path={},queues=1{devargs}", sock.0)).unwrap();
    vu.configure(&PortConfig { rx_desc: 256, tx_desc, tx_free_batch: batch, ..PortConfig::default() }, upool).unwrap();
    vu.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !vu.link().unwrap().up || !vhost.link().unwrap().up {
        assert!(Instant::now() < deadline, "virtio-user <-> vhost link did not come up");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut frame = [0u8; 64];
    frame[..12].copy_from_slice(&[2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]);
    frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes()); // IEEE local experimental
    let mut seen = Seen { most_reclaimed: 0, most_held: 0, sent: 0, received: 0 };
    let (mut tx, mut rx) = (Vec::new(), Vec::new());
    for _ in 0..bursts {
        for _ in 0..8 {
            let mut m = tx_pool.alloc().unwrap();
            m.extend_from_slice(&frame).unwrap();
            tx.push(m);
        }
        let before = tx_pool.in_use();
        let n = vu.tx_burst(0, &mut tx).unwrap();
        let unsent = tx.len() as u32;
        tx.clear();
        let after = tx_pool.in_use();
        seen.sent += n;
        // Given back by this burst: what left the pool's count, less the
        // frames it refused (freed by the clear above).
        seen.most_reclaimed = seen.most_reclaimed.max((before - after).saturating_sub(unsent));
        seen.most_held = seen.most_held.max(after);
        seen.received += vhost.rx_burst(0, &mut rx, 32).unwrap();
        rx.clear();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.received < seen.sent && Instant::now() < deadline {
        seen.received += vhost.rx_burst(0, &mut rx, 32).unwrap();
        rx.clear();
    }
    vu.close().unwrap();
    vhost.close().unwrap();
    seen
}

#[test]
fn a_split_ring_gives_back_a_batch_at_a_time_whatever_its_size() {
    // The driver's default on a 1024 ring: nearly all of it in one burst.
    let default = run(",queue_size=1024", 1024, 0, 4000);
    assert!(default.most_reclaimed > 900, "{default:?}");
    // Sliced: the ring as asked, a device ring smaller than the descriptors
    // asked for (virtio-user's default 256), and a larger one.
    for (devargs, tx_desc) in [(",queue_size=1024", 1024), ("", 1024), (",queue_size=1024", 256), (",in_order=1", 512)]
    {
        let s = run(devargs, tx_desc, 32, 4000);
        assert!(s.most_reclaimed <= 32 + 8, "{devargs} tx_desc {tx_desc}: {s:?}");
        assert!(s.most_held <= 64 + 8, "{devargs} tx_desc {tx_desc}: {s:?}");
        assert_eq!(s.received, s.sent, "{devargs} tx_desc {tx_desc}: every frame arrives");
        assert_eq!(s.sent, 4000 * 8, "{devargs}: nothing refused");
    }
}

#[test]
fn small_rings_large_batches_and_packed_rings_still_carry_every_frame() {
    // A batch the ring cannot take: a quarter of the ring.
    let s = run(",queue_size=64", 64, 512, 2000);
    assert!(s.most_reclaimed <= 16 + 8, "{s:?}");
    assert_eq!(s.received, s.sent);
    // Packed rings keep the driver's reclaim (see dpdk_glue::txreclaim).
    let p = run(",queue_size=256,packed_vq=1", 256, 32, 2000);
    assert_eq!(p.received, p.sent, "{p:?}");
    assert!(p.sent > 0);
}
