//! DPDK on hugepages in IOVA-as-PA mode (what igb_uio/uio_pci_generic NICs
//! use), in a process of its own: the test reserves 2 MiB hugepages with
//! `ci/hugepages` and gives them back on drop (also on panic). It proves
//! that every buffer of the page array reports as its IOVA the physical
//! address the kernel gives for it (`/proc/self/pagemap`), that application
//! memory registers with a physical IOVA table, and that the zero-copy TX
//! path (page-array buffers attached to mbufs as external buffers) carries
//! a TCP stream intact over the in-process ring pair in that mode.
//! Needs root (sysfs, mount, pagemap frame numbers), as the netns tests do.
mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant as Wall;

use common::hugepages::Hugepages;
use dpdk_glue::extbuf::DmaRegion;
use dpdk_glue::{
    DmaMapping, Eal, EalArgs, Error, EthDevice, EthDeviceConfig, ExtMem, IovaMode, Mempool, PageArray, PoolConfig,
    Port, PortConfig, TxMode,
};
use sha2::{Digest, Sha256};
use zcstack::mem::PageMemory;
use zcstack::wire::EthernetAddress;
use zcstack::{IfaceConfig, Instant, Stack, StackConfig, TcpError, ZcBuf};

const A: Ipv4Addr = Ipv4Addr::new(10, 9, 1, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 9, 1, 2);

fn now(t0: Wall) -> Instant {
    Instant::from_micros(t0.elapsed().as_micros() as u64)
}

/// Every buffer's IOVA is the physical address of its first byte; returns
/// how many buffers sit where IOVA != virtual address (all of them, in PA
/// mode, unless the kernel identity-maps, which it does not for user memory).
fn check_iovas_are_physical(pages: &mut PageArray) -> usize {
    let mut differ = 0;
    for id in 0..pages.capacity() as u32 {
        let id = zcstack::mem::PageId(id);
        pages.bytes_mut(id)[0] = id.0 as u8; // touched (hugepages are prefaulted anyway)
        let va = pages.bytes(id).as_ptr() as usize;
        let pa = dpdk_glue::iova::virt_to_phys(va).expect("pagemap readable as root");
        assert_eq!(pages.iova(id), Some(pa), "buffer {id:?} at {va:#x}: IOVA must be its physical address");
        differ += usize::from(pa != va as u64);
    }
    differ
}

struct Side {
    stack: Stack<PageArray>,
    dev: EthDevice,
}

fn side(eal: &Eal, mut port: Port, pool: &Arc<Mempool>, ip: Ipv4Addr, n: u8) -> Side {
    let cfg = PortConfig {
        tx_offloads: dpdk_glue::Offloads::TX_MULTI_SEGS | dpdk_glue::Offloads::TX_TCP_CKSUM,
        ..PortConfig::default()
    };
    let granted = port.configure(&cfg, pool.clone()).unwrap();
    port.start().unwrap();
    let socket = dpdk_glue::ports::placement_socket(&port, true);
    let mut pages = PageArray::new_on_socket(eal, &format!("hp_pages{n}"), 16 << 20, 2048, socket).unwrap();
    let differ = check_iovas_are_physical(&mut pages);
    assert_eq!(differ, pages.capacity(), "in PA mode no buffer's IOVA is its virtual address");
    let dev_cfg = EthDeviceConfig {
        tx_mode: TxMode::ZeroCopy,
        tx_mbufs: 2047,
        completion_slots: 2048,
        socket,
        ..Default::default()
    };
    let dev = EthDevice::new(eal, port, granted, &pages, 1500, dev_cfg).unwrap();
    let mut cfg = StackConfig::new(IfaceConfig {
        mac: EthernetAddress([2, 0, 0, 0, 10, n]),
        addr: ip,
        prefix_len: 24,
        gateway: None,
    });
    cfg.tcp.min_rto = zcstack::Duration::from_millis(5);
    Side { stack: Stack::new(cfg, pages, 1500), dev }
}

/// `total` bytes a -> b written zero-copy (page-array buffers as extbufs),
/// read by copy; returns (sent, received) SHA-256.
fn zero_copy_stream(a: &mut Side, b: &mut Side, total: usize) -> ([u8; 32], [u8; 32]) {
    let t0 = Wall::now();
    let l = b.stack.tcp_listen(80, 4).unwrap();
    let c = a.stack.tcp_connect(SocketAddrV4::new(B, 80), 0, now(t0)).unwrap();
    let data = common::pattern(11, 1 << 20);
    let (mut s, mut sent, mut got, mut pending) = (None, 0usize, 0usize, None::<ZcBuf>);
    let (mut hs, mut hr) = (Sha256::new(), Sha256::new());
    let mut buf = vec![0u8; 64 * 1024];
    while got < total {
        assert!(t0.elapsed().as_secs() < 60, "stream stalled at {got} of {total} bytes");
        let t = now(t0);
        a.stack.poll(t, &mut a.dev);
        b.stack.poll(t, &mut b.dev);
        if s.is_none() {
            s = b.stack.tcp_accept(l).ok().map(|x| x.0);
        }
        if a.stack.tcp_state(c) == Ok(zcstack::State::Established) {
            while sent < total || pending.is_some() {
                let zb = match pending.take() {
                    Some(p) => p,
                    None => {
                        let off = sent % data.len();
                        let n = (total - sent).min(data.len() - off).min(32 * 1024);
                        let Ok(mut zb) = a.stack.zc_mbuf_get(n) else { break };
                        a.stack.zc_mbuf_write(&mut zb, &data[off..off + n]).unwrap();
                        hs.update(&data[off..off + n]);
                        sent += n;
                        zb
                    }
                };
                match a.stack.tcp_write_zc(c, zb) {
                    Ok((_, None)) => {}
                    Ok((_, Some(rest))) | Err((TcpError::WouldBlock, rest)) => {
                        pending = Some(rest);
                        break;
                    }
                    Err((e, _)) => panic!("write_zc: {e}"),
                }
            }
        }
        if let Some(sh) = s {
            loop {
                match b.stack.tcp_read(sh, &mut buf) {
                    Ok(0) | Err(TcpError::WouldBlock) => break,
                    Ok(n) => {
                        hr.update(&buf[..n]);
                        got += n;
                    }
                    Err(e) => panic!("read: {e}"),
                }
            }
        }
    }
    a.stack.tcp_close(c, now(t0)).unwrap();
    b.stack.tcp_close(s.unwrap(), now(t0)).unwrap();
    let end = Wall::now();
    while a.stack.tcp_connections() + b.stack.tcp_connections() > 0 && end.elapsed().as_secs() < 10 {
        let t = now(t0);
        a.stack.poll(t, &mut a.dev);
        b.stack.poll(t, &mut b.dev);
    }
    (hs.finalize().into(), hr.finalize().into())
}

#[test]
fn zero_copy_on_hugepages_in_iova_pa_mode() {
    // Declared first: dropped last, after the EAL has let go of the pages.
    let huge = Hugepages::reserve("zc-iova-pa", 160).expect("reserve 160 2 MiB hugepages (needs root)");
    let mut args = EalArgs::nic_less("0@0");
    args.no_huge = false;
    args.memory_mb = Some(256);
    args.huge_unlink = true;
    args.iova_mode = Some("pa".into());
    args.file_prefix = Some(format!("zchuge{}", std::process::id()));
    args.log_level = Some("error".into());
    args.extra = vec!["--huge-dir".into(), huge.dir.display().to_string()];
    let eal = Eal::init(&args).expect("EAL on hugepages with --iova-mode=pa (root needed for physical addresses)");
    assert_eq!(eal.iova_mode(), IovaMode::Pa);

    // Application memory: 4 KiB pages have no stable physical address and
    // are refused in PA mode; hugepages register with a physical IOVA table.
    match ExtMem::register(&eal, 1 << 20, 4096) {
        Err(e @ Error::ExtMem { .. }) => assert!(e.to_string().contains("PA mode needs hugepages"), "{e}"),
        other => panic!("4 KiB external memory in PA mode must be refused, got {other:?}"),
    }
    let mut ext = ExtMem::register(&eal, 4 << 20, 2 << 20).expect("hugepage-backed external memory in PA mode");
    assert!(ext.iova_at(0).is_some() && ext.iova_at((4 << 20) - 1).is_some() && ext.iova_at(4 << 20).is_none());
    assert!(ext.dma_contiguous(0, 2 << 20), "one hugepage is physically contiguous");

    // Memzones start where the allocator puts them (aligned to the buffer
    // size, not to the 2 MiB page): odd sizes and buffer sizes leave the next
    // zone starting mid-page and spanning physically scattered pages.
    for (i, (bytes, buf)) in
        [(5 << 20 | 3 << 12, 4096), (1 << 20 | 256, 256), (6 << 20, 65536), (3 << 20, 2048)].into_iter().enumerate()
    {
        let mut pages = PageArray::new(&eal, &format!("hp_odd{i}"), bytes, buf).unwrap();
        let differ = check_iovas_are_physical(&mut pages);
        assert_eq!(differ, pages.capacity(), "{bytes} B in {buf} B buffers");
    }

    let pool = Arc::new(Mempool::new(&eal, "hp_rx", &PoolConfig::packets(4095)).unwrap());
    let (pa, pb) = Port::ring_pair(&eal, "hp_ring", 1024).unwrap();
    assert_eq!(
        ext.dma_map_if_needed(&pa).unwrap(),
        DmaMapping::NotNeeded("virtual device: the PMD reads process memory directly")
    );
    let ext = Rc::new(ext);
    ext.write_at(100, b"extmem in PA mode").unwrap();
    let mut a = side(&eal, pa, &pool, A, 1);
    let mut b = side(&eal, pb, &pool, B, 2);

    let total = 8 << 20;
    let (hs, hr) = zero_copy_stream(&mut a, &mut b, total);
    assert_eq!(hs, hr, "the stream arrives intact");
    let st = a.dev.stats();
    assert!(st.tx_payload_zero_copy >= total as u64, "payload left from the page array: {st:?}");
    assert_eq!(st.tx_payload_copied, 0, "no payload byte copied: {st:?}");

    for s in [&mut a, &mut b] {
        s.dev.close_port().unwrap();
        s.stack.poll(Instant::from_secs(1_000_000), &mut s.dev);
        assert_eq!(s.dev.stats().frames_in_flight, 0, "every frame completed");
        assert_eq!(s.stack.mem().free_count(), s.stack.mem().capacity(), "every page back");
    }
    drop((a, b, ext, pool));
    drop(eal);
    drop(huge);
}
