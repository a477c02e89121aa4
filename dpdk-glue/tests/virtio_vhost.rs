//! Zero-copy TX over a `net_virtio_user` port whose backend is a `net_vhost`
//! port in a second process (`dpdk-peer vhost-rx`). virtio-user defers TX
//! completion like a real NIC: the extbuf free callbacks must not fire at
//! tx_burst time, and every one must fire exactly once by port close.
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dpdk_glue::extbuf::DmaRegion;
use dpdk_glue::{CompletionRing, MemRegion, Mempool, Offloads, PoolConfig, Port, PortConfig};

/// Kills the peer and removes its socket even when the test fails.
struct Peer {
    child: Child,
    sock: String,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.sock);
    }
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex")).collect()
}

#[test]
fn extbuf_over_virtio_user_completes_only_after_later_bursts_or_close() {
    let eal = common::eal();
    let n = 64usize;
    let sock = format!("/tmp/zc-vhost-{}.sock", std::process::id());
    let _ = std::fs::remove_file(&sock);
    let child = Command::new(env!("CARGO_BIN_EXE_dpdk-peer"))
        .args(["vhost-rx", &sock, &n.to_string(), "30"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn dpdk-peer");
    let mut peer = Peer { child, sock: sock.clone() };
    let mut lines = BufReader::new(peer.child.stdout.take().expect("stdout")).lines();
    assert_eq!(lines.next().expect("peer output").expect("line"), "READY");

    let pool = Arc::new(Mempool::new(eal, &common::unique("vp"), &PoolConfig::packets(2047)).unwrap());
    let hdrs = Mempool::new(eal, &common::unique("vh"), &PoolConfig::extbuf_headers(1023)).unwrap();
    let mut port = Port::create_vdev(eal, &format!("net_virtio_user7,path={sock},queues=1,queue_size=256")).unwrap();
    let granted = port
        .configure(
            &PortConfig { rx_desc: 256, tx_desc: 256, tx_offloads: Offloads::TX_MULTI_SEGS, ..PortConfig::default() },
            pool.clone(),
        )
        .unwrap();
    assert!(granted.tx.contains(Offloads::TX_MULTI_SEGS), "virtio-user chains segments");
    port.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !port.link().unwrap().up {
        assert!(Instant::now() < deadline, "virtio-user link never came up");
        std::thread::sleep(Duration::from_millis(10));
    }

    let region = Rc::new(MemRegion::reserve(eal, &common::unique("vz"), 1 << 20, 4096).unwrap());
    let mut ring = CompletionRing::new(512);
    let mut expect = Vec::new();
    let mut tx = Vec::new();
    for i in 0..n {
        let payload = common::pattern(i as u32 + 5, 1000);
        let off = i * 4096;
        region.write_at(off, &payload).unwrap();
        let mut hdr = pool.alloc().unwrap();
        let mut eth = [0u8; 14];
        eth[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
        eth[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
        eth[12..].copy_from_slice(&0x88b5u16.to_be_bytes()); // local experimental ethertype
        hdr.extend_from_slice(&eth).unwrap();
        hdr.chain(ring.attach(&hdrs, &region, off, 1000, i as u64).unwrap()).map_err(|(e, _)| e).unwrap();
        let mut f = eth.to_vec();
        f.extend_from_slice(&payload);
        expect.push(f);
        tx.push(hdr);
    }
    let mut sent = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !tx.is_empty() {
        sent += port.tx_burst(0, &mut tx).unwrap();
        assert!(Instant::now() < deadline, "virtio-user stopped taking packets");
    }
    assert_eq!(sent, n);
    // The peer receives every frame with the bytes written into the region.
    let mut got = Vec::new();
    for line in lines.by_ref() {
        let line = line.expect("line");
        if let Some(h) = line.strip_prefix("PKT ") {
            got.push(unhex(h));
        } else if line.starts_with("DONE") {
            assert_eq!(line, format!("DONE {n}"));
            break;
        }
    }
    assert_eq!(got.len(), n);
    for (g, e) in got.iter().zip(&expect) {
        assert_eq!(g, e);
    }
    // Delivered, but virtio-user has not released the mbufs: no completion yet.
    assert_eq!(ring.drain(|t| panic!("completion {t} fired before virtio-user released the mbuf")), 0);
    assert_eq!(ring.in_flight(), n);
    // Closing the port releases them: every attachment completes exactly once.
    port.close().unwrap();
    let mut done = Vec::new();
    ring.drain(|t| done.push(t));
    done.sort_unstable();
    assert_eq!(done, (0..n as u64).collect::<Vec<_>>());
    assert_eq!(ring.in_flight(), 0);
    assert_eq!(hdrs.in_use(), 0);
    assert_eq!(pool.in_use(), 0, "nothing leaks after port close");
    let status = peer.child.wait().expect("peer exit");
    assert!(status.success(), "peer failed: {status}");
}
