//! Zero-copy TCP over the crossed ring pair in one process: two zcstack
//! engines on `EthDevice`s with page arrays in DPDK memory. A 256 MiB
//! transfer in zero-copy mode must arrive intact (SHA-256) with no payload
//! byte copied on the sender, and afterwards every page and every mbuf is
//! back. Copy mode runs the same transfer for comparison of the counters.
mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Instant as Wall;

use dpdk_glue::{EthDevice, EthDeviceConfig, Mempool, PageArray, PoolConfig, Port, PortConfig, TxMode};
use sha2::{Digest, Sha256};
use zcstack::mem::PageMemory;
use zcstack::wire::EthernetAddress;
use zcstack::{IfaceConfig, Instant, Stack, StackConfig, TcpError, ZcBuf};

const A: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 2);
const PAGES_MB: usize = 64;

struct Side {
    stack: Stack<PageArray>,
    dev: EthDevice,
}

fn side(port: Port, pool: &Arc<Mempool>, ip: Ipv4Addr, mac: u8, dev_cfg: EthDeviceConfig) -> Side {
    let eal = common::eal();
    let mut port = port;
    let cfg = PortConfig {
        tx_offloads: dpdk_glue::Offloads::TX_MULTI_SEGS | dpdk_glue::Offloads::TX_TCP_CKSUM,
        ..PortConfig::default()
    };
    let granted = port.configure(&cfg, pool.clone()).unwrap();
    port.start().unwrap();
    let pages = PageArray::new(eal, &common::unique("pa"), PAGES_MB << 20, 2048).unwrap();
    let dev = EthDevice::new(eal, port, granted, &pages, 1500, dev_cfg).unwrap();
    let mut cfg = StackConfig::new(IfaceConfig {
        mac: EthernetAddress([2, 0, 0, 0, 9, mac]),
        addr: ip,
        prefix_len: 24,
        gateway: None,
    });
    cfg.tcp.send_buffer = 1 << 20;
    cfg.tcp.recv_buffer = 1 << 20;
    cfg.tcp.min_rto = zcstack::Duration::from_millis(5);
    Side { stack: Stack::new(cfg, pages, 1500), dev }
}

fn now(t0: Wall) -> Instant {
    Instant::from_micros(t0.elapsed().as_micros() as u64)
}

/// Moves `total` bytes a -> b; zero-copy writes when `zc`. Returns the
/// receiver's SHA-256 and the sender's.
fn transfer(mode: TxMode, zc: bool, rx_zc: bool, total: usize) -> (Side, Side, [u8; 32], [u8; 32]) {
    transfer_with(EthDeviceConfig { tx_mode: mode, ..Default::default() }, zc, rx_zc, total)
}

/// Moves `total` bytes a -> b with sender device `tx` settings.
fn transfer_with(tx: EthDeviceConfig, zc: bool, rx_zc: bool, total: usize) -> (Side, Side, [u8; 32], [u8; 32]) {
    let mode = tx.tx_mode;
    let pool = Arc::new(Mempool::new(common::eal(), &common::unique("rx"), &PoolConfig::packets(8191)).unwrap());
    let (pa, pb) = Port::ring_pair(common::eal(), &common::unique("zr"), 1024).unwrap();
    let mut a = side(pa, &pool, A, 1, tx);
    let mut b = side(pb, &pool, B, 2, EthDeviceConfig { tx_mode: mode, rx_zero_copy: rx_zc, ..Default::default() });
    let t0 = Wall::now();
    let l = b.stack.tcp_listen(80, 4).unwrap();
    let c = a.stack.tcp_connect(SocketAddrV4::new(B, 80), 0, now(t0)).unwrap();
    let mut s = None;
    let data = common::pattern(7, 1 << 20);
    let (mut sent, mut got) = (0usize, 0usize);
    let (mut hs, mut hr) = (Sha256::new(), Sha256::new());
    let mut pending: Option<ZcBuf> = None;
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = std::time::Duration::from_secs(120);
    while got < total {
        assert!(t0.elapsed() < deadline, "transfer stalled at {got} of {total} bytes");
        let t = now(t0);
        a.stack.poll(t, &mut a.dev);
        b.stack.poll(t, &mut b.dev);
        if s.is_none() {
            s = b.stack.tcp_accept(l).ok().map(|x| x.0);
        }
        if a.stack.tcp_state(c) != Ok(zcstack::State::Established) {
            continue;
        }
        while sent < total || pending.is_some() {
            let off = sent % data.len();
            let n = (total - sent).min(data.len() - off).min(64 * 1024);
            if zc {
                let zb = match pending.take() {
                    Some(p) => p,
                    None => {
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
            } else {
                match a.stack.tcp_write(c, &data[off..off + n]) {
                    Ok(k) => {
                        hs.update(&data[off..off + k]);
                        sent += k;
                    }
                    Err(TcpError::WouldBlock | TcpError::NoBuffers) => break,
                    Err(e) => panic!("write: {e}"),
                }
            }
        }
        if let (Some(sh), true) = (s, rx_zc) {
            loop {
                match b.stack.tcp_read_zc(sh) {
                    Ok(Some(v)) => {
                        hr.update(&v[..]);
                        got += v.len();
                    }
                    Ok(None) | Err(TcpError::WouldBlock) => break,
                    Err(e) => panic!("read_zc: {e}"),
                }
            }
        } else if let Some(sh) = s {
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
    // Close both ends and let the FIN exchange finish.
    let sh = s.unwrap();
    a.stack.tcp_close(c, now(t0)).unwrap();
    b.stack.tcp_close(sh, now(t0)).unwrap();
    let end = Wall::now();
    while a.stack.tcp_connections() + b.stack.tcp_connections() > 0 && end.elapsed().as_secs() < 10 {
        let t = now(t0);
        a.stack.poll(t, &mut a.dev);
        b.stack.poll(t, &mut b.dev);
    }
    (a, b, hs.finalize().into(), hr.finalize().into())
}

fn close_and_check(mut a: Side, mut b: Side) {
    for s in [&mut a, &mut b] {
        s.dev.close_port().unwrap();
        s.stack.poll(Instant::from_secs(1_000_000), &mut s.dev);
        assert_eq!(s.dev.stats().frames_in_flight, 0, "every frame completed");
        assert_eq!(s.dev.mbufs_in_use(), 0, "device pools back to their start counts");
        assert_eq!(s.dev.rx_mbufs_held(), 0, "every received mbuf freed");
        assert_eq!(s.stack.mem().free_count(), s.stack.mem().capacity(), "every page back");
        assert_eq!(s.stack.stats().page_errors, 0);
    }
}

#[test]
fn zero_copy_256_mib_over_the_ring_pair() {
    let total = 256 << 20;
    let (a, b, sent, got) = transfer(TxMode::ZeroCopy, true, false, total);
    assert_eq!(sent, got, "SHA-256 of the stream");
    let st = a.dev.stats();
    assert_eq!(a.dev.tx_mode(), TxMode::ZeroCopy);
    assert_eq!(st.tx_payload_copied, 0, "no payload byte copied on the sender: {st:?}");
    assert!(st.tx_payload_zero_copy >= total as u64, "{st:?}");
    assert_eq!(a.stack.stats().tx_bytes_copied, 0);
    assert_eq!(a.stack.stats().tx_bytes_zero_copy, total as u64);
    assert!(st.extbuf_attachments > 0 && st.completion_high_water > 0);
    close_and_check(a, b);
}

#[test]
fn copy_mode_moves_the_same_stream_by_copying() {
    let total = 32 << 20;
    let (a, b, sent, got) = transfer(TxMode::Copy, false, false, total);
    assert_eq!(sent, got);
    let st = a.dev.stats();
    assert_eq!(st.tx_payload_zero_copy, 0);
    assert!(st.tx_payload_copied >= total as u64);
    assert_eq!(st.extbuf_attachments, 0);
    close_and_check(a, b);
}

#[test]
fn a_zero_copy_device_copies_frames_the_stack_copied_anyway() {
    // Ordinary writes (zc = false) put stack-made copies in the send queue:
    // attaching them in place would save no application copy, so even a
    // zero-copy device sends them as single copied mbufs.
    let total = 16 << 20;
    let (a, b, sent, got) = transfer(TxMode::ZeroCopy, false, false, total);
    assert_eq!(sent, got);
    assert_eq!(a.dev.tx_mode(), TxMode::ZeroCopy);
    let st = a.dev.stats();
    assert_eq!(st.extbuf_attachments, 0, "{st:?}");
    assert!(st.tx_payload_copied >= total as u64, "{st:?}");
    close_and_check(a, b);
}

#[test]
fn zero_copy_receive_keeps_payload_in_the_mbufs() {
    // A copy-mode sender: net_ring hands the receiver the sender's own mbufs,
    // and a zero-copy sender's are header + extbuf chains, which the
    // receiver copies to make contiguous (counted as rx_chains_copied).
    let total = 64 << 20;
    let (a, b, sent, got) = transfer(TxMode::Copy, false, true, total);
    assert_eq!(sent, got);
    let st = b.stack.stats();
    assert!(st.rx_bytes_zero_copy > (total as u64) * 9 / 10, "{st:?}");
    assert!(b.dev.stats().rx_mbufs_handed_over > 0);
    assert_eq!(b.dev.stats().rx_chains_copied, 0);
    close_and_check(a, b);
}

#[test]
fn few_completion_slots_push_back_without_losing_anything() {
    // 48 slots: far fewer than the frames in flight. net_ring completes an
    // attachment only when the receiver frees the mbuf, so the sender runs
    // out of slots again and again; transmit hands frames back and the
    // engine retries them — the stream still arrives whole.
    let tx = EthDeviceConfig { tx_mode: TxMode::ZeroCopy, completion_slots: 48, ..Default::default() };
    let (a, b, sent, got) = transfer_with(tx, true, false, 16 << 20);
    assert_eq!(sent, got);
    let st = a.dev.stats();
    assert!(st.tx_backpressure > 0, "the slots ran out: {st:?}");
    assert!(st.completion_high_water <= 48, "{st:?}");
    assert_eq!(st.tx_payload_copied, 0);
    close_and_check(a, b);
}
