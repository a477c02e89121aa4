//! Ports over the in-process crossed ring pair and net_null: payload integrity,
//! partial TX, external buffers with deferred completion, and typed errors.
mod common;

use std::rc::Rc;
use std::sync::Arc;

use dpdk_glue::extbuf::DmaRegion;
use dpdk_glue::{CompletionRing, Error, Mbuf, MemRegion, Mempool, Offloads, PoolConfig, Port, PortConfig};

fn pool(prefix: &str, n: u32) -> Arc<Mempool> {
    Arc::new(
        Mempool::new(common::eal(), &common::unique(prefix), &PoolConfig { cache: 0, ..PoolConfig::packets(n) })
            .unwrap(),
    )
}

fn started_pair(ring: u32, rx_pool: &Arc<Mempool>) -> (Port, Port) {
    let (mut a, mut b) = Port::ring_pair(common::eal(), &common::unique("rp"), ring).unwrap();
    for p in [&mut a, &mut b] {
        p.configure(&PortConfig::default(), rx_pool.clone()).unwrap();
        p.start().unwrap();
        assert!(p.link().unwrap().up);
    }
    (a, b)
}

fn frame(seq: u32, len: usize) -> Vec<u8> {
    let mut f = common::pattern(seq, len);
    f[..4].copy_from_slice(&seq.to_be_bytes());
    f
}

#[test]
fn tx_to_rx_byte_for_byte() {
    let pool = pool("rp", 1023);
    let (mut a, mut b) = started_pair(1024, &pool);
    let sizes = [60usize, 64, 128, 511, 1000, 1514];
    let mut tx = Vec::new();
    let mut sent = Vec::new();
    for i in 0..300u32 {
        let f = frame(i, sizes[i as usize % sizes.len()]);
        let mut m = pool.alloc().unwrap();
        m.extend_from_slice(&f).unwrap();
        tx.push(m);
        sent.push(f);
    }
    assert_eq!(a.tx_burst(0, &mut tx).unwrap(), 300);
    assert!(tx.is_empty());
    let mut rx = Vec::new();
    while rx.len() < 300 {
        assert!(b.rx_burst(0, &mut rx, 32).unwrap() > 0, "frames lost in the ring");
    }
    assert_eq!(b.rx_burst(0, &mut rx, 32).unwrap(), 0, "no extra frames");
    for (m, f) in rx.iter().zip(&sent) {
        assert_eq!(&m.to_vec(), f);
    }
    // And the other direction.
    let mut back: Vec<Mbuf> = rx.drain(..100).collect();
    assert_eq!(b.tx_burst(0, &mut back).unwrap(), 100);
    let mut rx2 = Vec::new();
    while rx2.len() < 100 {
        assert!(a.rx_burst(0, &mut rx2, 64).unwrap() > 0);
    }
    for (m, f) in rx2.iter().zip(&sent) {
        assert_eq!(&m.to_vec(), f);
    }
    let stats = a.stats().unwrap();
    assert_eq!((stats.opackets, stats.ipackets), (300, 100));
    drop((rx, rx2));
    assert_eq!(pool.in_use(), 0, "pool count back to its start");
}

#[test]
fn partial_tx_hands_back_unsent_mbufs() {
    let pool = pool("pt", 511);
    // A 64-slot ring holds 63 packets.
    let (mut a, mut b) = started_pair(64, &pool);
    let mut tx = Vec::new();
    for i in 0..100u32 {
        let mut m = pool.alloc().unwrap();
        m.extend_from_slice(&frame(i, 64)).unwrap();
        tx.push(m);
    }
    let n = a.tx_burst(0, &mut tx).unwrap();
    assert_eq!(n, 63);
    assert_eq!(tx.len(), 37, "unsent packets stay with the caller");
    assert_eq!(u32::from_be_bytes(tx[0].data()[..4].try_into().unwrap()), 63, "in order, starting after the last sent");
    assert_eq!(pool.in_use(), 100, "nothing leaked or freed early");
    let mut rx = Vec::new();
    b.rx_burst(0, &mut rx, 128).unwrap();
    assert_eq!(rx.len(), 63);
    assert_eq!(a.tx_burst(0, &mut tx).unwrap(), 37);
    b.rx_burst(0, &mut rx, 128).unwrap();
    assert_eq!(rx.len(), 100);
    for (i, m) in rx.iter().enumerate() {
        assert_eq!(m.to_vec(), frame(i as u32, 64));
    }
    Mbuf::free_bulk(&mut rx);
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn extbuf_completes_only_when_the_receiver_frees() {
    let eal = common::eal();
    let pool = pool("xr", 511);
    let hdrs = Mempool::new(common::eal(), &common::unique("xh"), &PoolConfig::extbuf_headers(511)).unwrap();
    let (mut a, mut b) = started_pair(1024, &pool);
    let region = Rc::new(MemRegion::reserve(eal, &common::unique("zone"), 1 << 20, 4096).unwrap());
    assert!(region.iova_at(0).is_some());
    assert!(region.iova_at(1 << 20).is_none());
    let mut ring = CompletionRing::new(256);
    let n = 64u32;
    let mut tx = Vec::new();
    let mut expect = Vec::new();
    for i in 0..n {
        // Payload written straight into the region: the only copy of it.
        let payload = common::pattern(1000 + i, 1400);
        let off = i as usize * 2048;
        region.write_at(off, &payload).unwrap();
        let mut hdr = pool.alloc().unwrap();
        hdr.extend_from_slice(&frame(i, 14)).unwrap();
        let ext = ring.attach(&hdrs, &region, off, 1400, u64::from(i)).unwrap();
        assert!(ext.is_extbuf());
        hdr.chain(ext).map_err(|(e, _)| e).unwrap();
        let mut f = frame(i, 14);
        f.extend_from_slice(&payload);
        expect.push(f);
        tx.push(hdr);
    }
    assert_eq!(ring.in_flight(), 64);
    assert_eq!(a.tx_burst(0, &mut tx).unwrap(), 64);
    assert_eq!(ring.drain(|_| panic!("completion before the PMD released the mbuf")), 0);
    let mut rx = Vec::new();
    while rx.len() < n as usize {
        assert!(b.rx_burst(0, &mut rx, 32).unwrap() > 0);
    }
    for (m, f) in rx.iter().zip(&expect) {
        assert_eq!(m.nb_segs(), 2);
        assert_eq!(&m.to_vec(), f, "receiver sees the bytes written into the region");
    }
    assert_eq!(ring.drain(|_| panic!("completion while the receiver still holds the mbuf")), 0);
    // The receiver frees half: exactly those complete.
    let rest = rx.split_off(32);
    drop(rx);
    let mut done = Vec::new();
    ring.drain(|t| done.push(t));
    done.sort_unstable();
    assert_eq!(done, (0..32).collect::<Vec<u64>>());
    drop(rest);
    ring.drain(|t| done.push(t));
    done.sort_unstable();
    assert_eq!(done, (0..64).collect::<Vec<u64>>(), "exactly once per attachment");
    assert_eq!((ring.in_flight(), ring.attached(), ring.completed(), ring.high_water()), (0, 64, 64, 64));
    a.close().unwrap();
    b.close().unwrap();
    assert_eq!(pool.in_use(), 0);
    assert_eq!(hdrs.in_use(), 0);
}

#[test]
fn prefetch_issues_one_per_cache_line_of_the_range_inside_the_region() {
    let eal = common::eal();
    let region = MemRegion::reserve(eal, &common::unique("pf"), 64 * 1024, 4096).unwrap();
    // The lines a range touches depend on where the zone starts within a
    // line: an IOVA has the same offset within its 4 KiB page as the
    // virtual address (IOVA as PA or as VA), so the same within a line.
    let base = region.iova_at(0).unwrap();
    let lines = |off: usize, len: usize| {
        if len == 0 {
            return 0;
        }
        let (a, z) = (base as usize + off, base as usize + off + len - 1);
        z / 64 - a / 64 + 1
    };
    let want = if cfg!(target_arch = "x86_64") { 1 } else { 0 };
    for (off, len) in [(0, 1), (0, 64), (0, 65), (63, 2), (100, 1448), (4000, 200), (64 * 1024 - 64, 64)] {
        assert_eq!(region.prefetch(off, len), want * lines(off, len), "{off}+{len}");
    }
    // Nothing past the end, nothing for an empty or outside range.
    assert_eq!(region.prefetch(64 * 1024 - 10, 100), want * lines(64 * 1024 - 10, 10));
    assert_eq!(region.prefetch(64 * 1024, 64), 0);
    assert_eq!(region.prefetch(usize::MAX, usize::MAX), 0);
    assert_eq!(region.prefetch(5, 0), 0);
}

#[test]
fn completion_slots_are_bounded() {
    let eal = common::eal();
    let hdrs = Mempool::new(common::eal(), &common::unique("sh"), &PoolConfig::extbuf_headers(63)).unwrap();
    let region = Rc::new(MemRegion::reserve(eal, &common::unique("zone"), 64 * 1024, 4096).unwrap());
    let mut ring = CompletionRing::new(4);
    let held: Vec<Mbuf> = (0..4).map(|i| ring.attach(&hdrs, &region, i * 1024, 100, i as u64).unwrap()).collect();
    let e = ring.attach(&hdrs, &region, 0, 100, 9).unwrap_err();
    assert!(matches!(e, Error::CompletionSlotsExhausted(4)), "{e}");
    assert_eq!(hdrs.in_use(), 4, "a refused attach takes no mbuf");
    // Bad slices are refused before anything is taken.
    assert!(matches!(ring.attach(&hdrs, &region, 64 * 1024 - 10, 100, 0), Err(Error::BadSlice { .. })));
    assert!(matches!(ring.attach(&hdrs, &region, 0, 0, 0), Err(Error::BadSlice { .. })));
    drop(held);
    assert_eq!(ring.drain(|_| {}), 4);
    let again = ring.attach(&hdrs, &region, 0, 100, 7).unwrap();
    drop(again);
    let mut t = vec![];
    ring.drain(|x| t.push(x));
    assert_eq!(t, vec![7]);
    assert_eq!(hdrs.in_use(), 0);
}

#[test]
fn completions_come_in_attach_order_and_a_held_one_blocks_nothing_for_long() {
    let eal = common::eal();
    let hdrs = Mempool::new(common::eal(), &common::unique("oo"), &PoolConfig::extbuf_headers(63)).unwrap();
    let region = Rc::new(MemRegion::reserve(eal, &common::unique("zone"), 64 * 1024, 4096).unwrap());
    let mut ring = CompletionRing::new(8);
    let mut held: Vec<Option<Mbuf>> =
        (0..3).map(|i| Some(ring.attach(&hdrs, &region, i * 1024, 100, i as u64).unwrap())).collect();
    // The second is released first: with slots to spare it waits behind
    // the first (one load per drain, no sweep) ...
    held[1] = None;
    assert_eq!(ring.drain(|t| panic!("{t} overtook an older pending attachment")), 0);
    // ... and neither comes back before its own release; then both, in order.
    held[0] = None;
    let mut t = vec![];
    ring.drain(|x| t.push(x));
    assert_eq!(t, vec![0, 1]);
    // A held attachment holds nothing back for long once more than half the
    // slots are in use: everything released behind it is swept within 8
    // drains.
    let more: Vec<Mbuf> = (3..8).map(|i| ring.attach(&hdrs, &region, i * 1024, 100, i as u64).unwrap()).collect();
    drop(more);
    let mut t = vec![];
    let mut drains = 0;
    while t.is_empty() && drains < 100 {
        ring.drain(|x| t.push(x));
        drains += 1;
    }
    assert_eq!(t, vec![3, 4, 5, 6, 7]);
    assert!(drains <= 8, "swept after {drains} drains with the ring more than half in use");
    assert_eq!(ring.in_flight(), 1, "the held one is still in flight");
    drop(held);
    let mut t = vec![];
    ring.drain(|x| t.push(x));
    assert_eq!(t, vec![2]);
    assert_eq!((ring.attached(), ring.completed()), (8, 8));
    assert_eq!(hdrs.in_use(), 0);
}

#[test]
fn a_held_attachment_delays_the_ones_behind_it_by_a_bounded_number_of_drains() {
    // A second port that never reclaims holds the oldest attachment while
    // only a few slots are in use: the ones released behind it still come
    // back within 64 drains (a sweep), not only when half the ring fills.
    let eal = common::eal();
    let hdrs = Mempool::new(common::eal(), &common::unique("hol"), &PoolConfig::extbuf_headers(63)).unwrap();
    let region = Rc::new(MemRegion::reserve(eal, &common::unique("zone"), 64 * 1024, 4096).unwrap());
    let mut ring = CompletionRing::new(1024);
    let held = ring.attach(&hdrs, &region, 0, 100, 0).unwrap();
    let behind: Vec<Mbuf> = (1..4).map(|i| ring.attach(&hdrs, &region, i * 1024, 100, i as u64).unwrap()).collect();
    drop(behind);
    let mut t = vec![];
    let mut drains = 0;
    while t.len() < 3 && drains < 1000 {
        ring.drain(|x| t.push(x));
        drains += 1;
    }
    assert_eq!(t, vec![1, 2, 3], "released attachments behind a held one came back");
    assert!(drains <= 64, "they waited {drains} drains");
    assert_eq!(ring.in_flight(), 1);
    drop(held);
    let mut t = vec![];
    ring.drain(|x| t.push(x));
    assert_eq!(t, vec![0]);
    assert_eq!(hdrs.in_use(), 0);
}

#[test]
fn extmem_registers_application_memory() {
    let eal = common::eal();
    let pool = pool("em", 255);
    let hdrs = Mempool::new(common::eal(), &common::unique("eh"), &PoolConfig::extbuf_headers(255)).unwrap();
    let (mut a, mut b) = started_pair(256, &pool);
    let mut mem = dpdk_glue::ExtMem::register(eal, 256 * 1024, 4096).unwrap();
    // A virtual device needs no IOMMU mapping: skipped, with the reason.
    assert!(
        matches!(mem.dma_map_if_needed(&a).unwrap(), dpdk_glue::DmaMapping::NotNeeded(why) if why.contains("virtual"))
    );
    // NIC-less vdevs have no IOMMU path: DMA mapping is refused with a typed
    // error (ENOTSUP), and the memory stays usable for IOVA-as-VA PMDs.
    match mem.dma_map(&a) {
        Ok(()) => {}
        Err(Error::ExtMem { op: "rte_dev_dma_map", errno, .. }) => assert!(errno.0 > 0),
        Err(e) => panic!("unexpected {e}"),
    }
    let mem = Rc::new(mem);
    let data = common::pattern(77, 3000);
    mem.write_at(5000, &data).unwrap();
    let mut ring = CompletionRing::new(8);
    let mut hdr = pool.alloc().unwrap();
    hdr.extend_from_slice(&[0xaa; 14]).unwrap();
    hdr.chain(ring.attach(&hdrs, &mem, 5000, 3000, 1).unwrap()).map_err(|(e, _)| e).unwrap();
    assert_eq!(a.tx_burst(0, &mut vec![hdr]).unwrap(), 1);
    let mut rx = Vec::new();
    b.rx_burst(0, &mut rx, 4).unwrap();
    assert_eq!(rx.len(), 1);
    assert_eq!(&rx[0].to_vec()[14..], &data[..]);
    drop(rx);
    assert_eq!(ring.drain(|t| assert_eq!(t, 1)), 1);
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn net_null_port_configures_reports_and_counts() {
    let eal = common::eal();
    let pool = pool("nn", 1023);
    let name = common::unique("net_null");
    let mut p = Port::create_vdev(eal, &format!("{name},size=64,copy=0")).unwrap();
    let info = p.info().unwrap();
    assert_eq!(info.driver, "net_null");
    let want = Offloads::TX_MULTI_SEGS | Offloads::TX_TCP_CKSUM;
    let granted = p
        .configure(&PortConfig { tx_offloads: want, rx_desc: 256, tx_desc: 256, ..PortConfig::default() }, pool.clone())
        .unwrap();
    assert_eq!(granted.tx, want.intersect(info.tx_offload_capa), "only what the port can do is requested");
    p.start().unwrap();
    assert!(p.mac().is_ok());
    let mut rx = Vec::new();
    assert_eq!(p.rx_burst(0, &mut rx, 32).unwrap(), 32, "net_null always has packets");
    assert!(rx.iter().all(|m| m.pkt_len() == 64));
    assert_eq!(p.tx_burst(0, &mut rx).unwrap(), 32);
    assert!(rx.is_empty());
    let s = p.stats().unwrap();
    assert_eq!((s.ipackets, s.opackets), (32, 32));
    let xs = p.xstats().unwrap();
    assert!(xs.iter().any(|(n, v)| n == "rx_good_packets" && *v == 32), "{xs:?}");
    p.reset_stats().unwrap();
    assert_eq!(p.stats().unwrap().ipackets, 0);
    // Queue beyond the configured ones: typed error.
    assert!(matches!(p.rx_burst(3, &mut rx, 32), Err(Error::NoSuchQueue { queue: 3, configured: 1, .. })));
    // Too many queues: typed error naming the limits.
    let e = p.configure(&PortConfig { rx_queues: u16::MAX, ..PortConfig::default() }, pool.clone()).unwrap_err();
    assert!(matches!(e, Error::PortLimit { .. }), "{e}");
    p.close().unwrap();
    assert_eq!(pool.in_use(), 0);
    // The vdev was removed with the port: the name is free again.
    let p2 = Port::create_vdev(eal, &name).unwrap();
    drop(p2);
}

#[test]
fn bursts_on_a_stopped_port_are_refused() {
    let pool = pool("stp", 255);
    let (mut a, _b) = started_pair(256, &pool);
    a.stop().unwrap();
    let mut tx = vec![pool.alloc().unwrap()];
    let e = a.tx_burst(0, &mut tx).unwrap_err();
    assert!(matches!(e, Error::PortNotStarted { op: "tx_burst", .. }), "{e}");
    assert_eq!(tx.len(), 1, "the refused mbuf stays with the caller");
    assert!(matches!(a.rx_burst(0, &mut Vec::new(), 8), Err(Error::PortNotStarted { op: "rx_burst", .. })));
    a.start().unwrap();
    assert_eq!(a.tx_burst(0, &mut tx).unwrap(), 1);
}

#[test]
fn unknown_vdev_and_port_are_typed_errors() {
    let eal = common::eal();
    let e = Port::create_vdev(eal, "net_bogus0,x=1").unwrap_err();
    assert!(matches!(&e, Error::Vdev { devargs, .. } if devargs == "net_bogus0,x=1"), "{e}");
    let e = Port::create_vdev(eal, "net_null9,bogus_key=1").unwrap_err();
    assert!(matches!(e, Error::Vdev { .. }), "{e}");
    assert!(matches!(Port::by_name(eal, "no_such_port"), Err(Error::NoSuchPort(_))));
    let mut p = Port::create_vdev(eal, &common::unique("net_null")).unwrap();
    assert!(matches!(p.start(), Err(Error::PortNotStarted { .. })), "start before configure is refused");
}

#[test]
fn a_second_eal_init_is_refused() {
    common::eal();
    let e = dpdk_glue::Eal::init(&dpdk_glue::EalArgs::nic_less("0@0")).unwrap_err();
    assert!(matches!(e, Error::EalAlreadyInitialized));
    assert!(e.to_string().contains("only once per process"));
    // Launching on an lcore this EAL does not have is an error, not a crash.
    assert!(matches!(common::eal().launch(7, || 1), Err(Error::Launch { lcore: 7, .. })));
}

#[test]
fn queue_handles_burst_without_checks_and_keep_unsent() {
    let pool = pool("qh", 511);
    let (mut a, mut b) = started_pair(64, &pool);
    let mut tx: Vec<Mbuf> = (0..100u32)
        .map(|i| {
            let mut m = pool.alloc().unwrap();
            m.extend_from_slice(&frame(i, 64)).unwrap();
            m
        })
        .collect();
    {
        let mut qa = a.queues(0, 0).unwrap();
        assert_eq!(qa.tx_burst(&mut tx), 63, "a 64-slot ring holds 63");
        assert_eq!(tx.len(), 37);
        assert_eq!(u32::from_be_bytes(tx[0].data()[..4].try_into().unwrap()), 63);
    }
    let mut rx = Vec::new();
    {
        let mut qb = b.queues(0, 0).unwrap();
        assert_eq!(qb.rx_burst(&mut rx, 128), 63);
    }
    assert_eq!(a.queues(0, 0).unwrap().tx_burst(&mut tx), 37);
    assert_eq!(b.queues(0, 0).unwrap().rx_burst(&mut rx, 128), 37);
    for (i, m) in rx.iter().enumerate() {
        assert_eq!(m.to_vec(), frame(i as u32, 64));
    }
    // A stopped port or a missing queue gives no handle.
    assert!(matches!(a.queues(1, 0), Err(Error::NoSuchQueue { .. })));
    a.stop().unwrap();
    assert!(matches!(a.queues(0, 0), Err(Error::PortNotStarted { .. })));
    drop(rx);
    assert_eq!(pool.in_use(), 0);
}

#[test]
fn no_huge_runs_iova_as_va_and_page_array_iovas_are_addresses() {
    use zcstack::mem::{PageId, PageMemory};
    let eal = common::eal();
    assert_eq!(eal.iova_mode(), dpdk_glue::IovaMode::Va, "--no-huge implies IOVA as VA");
    // Odd sizes so zones start off page boundaries.
    for (bytes, buf) in [(1 << 20 | 4096, 4096), (300 * 1024 + 256, 256)] {
        let pages = dpdk_glue::PageArray::new_on_socket(eal, &common::unique("vaiova"), bytes, buf, None).unwrap();
        for id in (0..pages.capacity() as u32).map(PageId) {
            assert_eq!(pages.iova(id), Some(pages.bytes(id).as_ptr() as u64), "{id:?}");
        }
    }
}

#[test]
fn an_attach_on_a_full_ring_keeps_the_completions_it_sweeps() {
    // Every slot in flight and released: the next attach sweeps them free;
    // their tokens still come back, from the next drain, before the new one.
    let eal = common::eal();
    let hdrs = Mempool::new(common::eal(), &common::unique("full"), &PoolConfig::extbuf_headers(63)).unwrap();
    let region = Rc::new(MemRegion::reserve(eal, &common::unique("zone"), 64 * 1024, 4096).unwrap());
    let mut ring = CompletionRing::new(4);
    let first: Vec<Mbuf> = (0..4).map(|i| ring.attach(&hdrs, &region, i * 1024, 100, i as u64).unwrap()).collect();
    drop(first);
    let last = ring.attach(&hdrs, &region, 4 * 1024, 100, 99).unwrap();
    drop(last);
    let mut t = vec![];
    for _ in 0..200 {
        ring.drain(|x| t.push(x));
    }
    assert_eq!(t, vec![0, 1, 2, 3, 99], "no completion lost to the attach's sweep");
    assert_eq!((ring.attached(), ring.completed()), (5, 5));
    assert_eq!(hdrs.in_use(), 0);
}

#[test]
fn sweeps_that_find_nothing_back_off_and_a_productive_one_resets_them() {
    // An in-order PMD's front waits for its next reclaim with most slots in
    // use: drains find it held, and sweeps of everything behind it find
    // nothing. They back off (at most 16x the interval of 8), yet a
    // completion released behind the held front still comes back within
    // that bound, and after a sweep that found one the interval is 8 again.
    let eal = common::eal();
    let hdrs = Mempool::new(eal, &common::unique("bo"), &PoolConfig::extbuf_headers(63)).unwrap();
    let region = Rc::new(MemRegion::reserve(eal, &common::unique("zone"), 64 * 1024, 4096).unwrap());
    let mut ring = CompletionRing::new(8);
    let mut held: Vec<Option<Mbuf>> =
        (0..6).map(|i| Some(ring.attach(&hdrs, &region, i * 1024, 100, i as u64).unwrap())).collect();
    for _ in 0..10_000 {
        assert_eq!(ring.drain(|t| panic!("{t} completed while held")), 0);
    }
    let idle_sweeps = ring.sweeps();
    // Without the back-off: 10,000 / 8 = 1,250 sweeps.
    assert!(idle_sweeps <= 10_000 / 128 + 5, "{idle_sweeps} fruitless sweeps in 10,000 drains");
    assert!(idle_sweeps >= 10_000 / 128, "still sweeping: {idle_sweeps}");
    // Released behind the held front: back within the backed-off bound.
    held[3] = None;
    let mut t = vec![];
    let mut drains = 0;
    while t.is_empty() && drains < 1_000 {
        ring.drain(|x| t.push(x));
        drains += 1;
    }
    assert_eq!(t, vec![3]);
    assert!(drains <= 8 * 16, "waited {drains} drains");
    assert!(drains > 8, "the back-off delayed it ({drains} drains)");
    // That sweep found something: the next one comes after 8 drains.
    held[4] = None;
    let mut t = vec![];
    let mut drains = 0;
    while t.is_empty() && drains < 1_000 {
        ring.drain(|x| t.push(x));
        drains += 1;
    }
    assert_eq!(t, vec![4]);
    assert!(drains <= 8, "waited {drains} drains after a productive sweep");
    drop(held);
    let mut t = vec![];
    ring.drain(|x| t.push(x));
    t.sort();
    assert_eq!(t, vec![0, 1, 2, 5]);
    assert_eq!((ring.attached(), ring.completed()), (6, 6));
    assert_eq!(hdrs.in_use(), 0);
}

#[test]
fn a_caller_short_of_slots_gets_its_sweep_without_the_back_off() {
    // Sweeps that found nothing have backed the interval off to 128 drains;
    // then attachments behind the held front are released. An attach that
    // needs more free slots than there are (the device's zero-copy TX, via
    // `drain_needing`) gets them within the undoubled 8 drains.
    let eal = common::eal();
    let hdrs = Mempool::new(eal, &common::unique("need"), &PoolConfig::extbuf_headers(63)).unwrap();
    let region = Rc::new(MemRegion::reserve(eal, &common::unique("zone"), 64 * 1024, 4096).unwrap());
    let mut ring = CompletionRing::new(8);
    let mut held: Vec<Option<Mbuf>> =
        (0..7).map(|i| Some(ring.attach(&hdrs, &region, i * 1024, 100, i as u64).unwrap())).collect();
    for _ in 0..2_000 {
        assert_eq!(ring.drain(|t| panic!("{t} completed while held")), 0);
    }
    for h in &mut held[2..5] {
        *h = None;
    }
    let mut t = vec![];
    let mut drains = 0;
    while t.is_empty() && drains < 1_000 {
        ring.drain_needing(2, |x| t.push(x));
        drains += 1;
    }
    assert_eq!(t, vec![2, 3, 4]);
    assert!(drains <= 8, "a caller short of slots waited {drains} drains");
    // With the slots needed free the back-off stands (the productive sweep
    // above reset it: back it off again, with the ring more than half in
    // use).
    held.push(Some(ring.attach(&hdrs, &region, 7 * 1024, 100, 7).unwrap()));
    held.push(Some(ring.attach(&hdrs, &region, 8 * 1024, 100, 8).unwrap()));
    for _ in 0..2_000 {
        ring.drain(|t| panic!("{t} completed while held"));
    }
    held[5] = None;
    let mut t = vec![];
    let mut drains = 0;
    while t.is_empty() && drains < 1_000 {
        ring.drain_needing(1, |x| t.push(x));
        drains += 1;
    }
    assert_eq!(t, vec![5]);
    assert!(drains > 8 && drains <= 128, "two slots free, one needed: backed off ({drains} drains)");
    drop(held);
    let mut t = vec![];
    ring.drain(|x| t.push(x));
    t.sort();
    assert_eq!(t, vec![0, 1, 6, 7, 8]);
    assert_eq!((ring.attached(), ring.completed()), (9, 9));
    assert_eq!(hdrs.in_use(), 0);
}
