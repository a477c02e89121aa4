//! `dpdk-peer`: the other end for dpdk-glue's multi-process tests.
//!
//! DPDK allows one EAL per process, and some pairs (virtio-user <-> vhost) only
//! work across two processes, and a `net_tap` port lives in the network
//! namespace of the process that creates it. So tests run this small helper:
//!
//! - `dpdk-peer vhost-rx <socket> <count> <timeout_s>`: serves a `net_vhost`
//!   port on `socket`, prints `READY`, then one `PKT <hex>` line per frame
//!   received until `count` frames arrived or the timeout passed, then `DONE <n>`.
//! - `dpdk-peer tap-arp <iface> <our_ip> <kernel_ip> <timeout_s>`: creates a
//!   `net_tap` port named `iface` (start it under `ip netns exec`), prints
//!   `READY <mac>`, sends ARP requests for `kernel_ip` until answered
//!   (`ARP-REPLY <mac>`), answers ARP requests for `our_ip`
//!   (`ARP-ANSWERED <asker_ip>`) and prints `UDP <payload>` for IPv4/UDP frames
//!   addressed to it; exits with `DONE` once it saw a reply and a UDP datagram,
//!   or fails at the timeout.
//!
//! Every mode is bounded in time and exits by itself.
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dpdk_glue::{Eal, EalArgs, Mbuf, Mempool, PoolConfig, Port, PortConfig};

fn eal() -> Result<Eal, dpdk_glue::Error> {
    let mut a = EalArgs::nic_less("0@0");
    a.memory_mb = Some(128);
    a.file_prefix = Some(format!("zcpeer{}", std::process::id()));
    a.log_level = Some("error".into());
    Eal::init(&a)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let r = match args.get(1).map(String::as_str) {
        Some("vhost-rx") if args.len() == 5 => vhost_rx(&args[2], args[3].parse().unwrap_or(0), secs(&args[4])),
        Some("tap-arp") if args.len() == 6 => match (args[3].parse(), args[4].parse()) {
            (Ok(ours), Ok(kernel)) => tap_arp(&args[2], ours, kernel, secs(&args[5])),
            _ => Err("tap-arp: bad IPv4 address".into()),
        },
        _ => Err(
            "usage: dpdk-peer vhost-rx <socket> <count> <timeout_s> | tap-arp <iface> <our_ip> <kernel_ip> <timeout_s>"
                .into(),
        ),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dpdk-peer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn secs(s: &str) -> Duration {
    Duration::from_secs(s.parse().unwrap_or(10).min(300))
}

fn open(eal: &Eal, devargs: &str) -> Result<(Port, Arc<Mempool>), Box<dyn std::error::Error>> {
    let pool = Arc::new(Mempool::new(eal, "peer_pool", &PoolConfig::packets(4095))?);
    let mut port = Port::create_vdev(eal, devargs)?;
    port.configure(&PortConfig { rx_desc: 512, tx_desc: 512, ..PortConfig::default() }, pool.clone())?;
    port.start()?;
    Ok((port, pool))
}

fn vhost_rx(sock: &str, count: usize, timeout: Duration) -> Result<(), Box<dyn std::error::Error>> {
    let eal = eal()?;
    let (mut port, _pool) = open(&eal, &format!("net_vhost0,iface={sock},queues=1"))?;
    println!("READY");
    std::io::stdout().flush()?;
    let deadline = Instant::now() + timeout;
    let mut got = 0usize;
    let mut rx: Vec<Mbuf> = Vec::with_capacity(32);
    let mut out = std::io::stdout().lock();
    while got < count && Instant::now() < deadline {
        if port.rx_burst(0, &mut rx, 32)? == 0 {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        for m in rx.drain(..) {
            writeln!(out, "PKT {}", hex(&m.to_vec()))?;
            got += 1;
        }
    }
    writeln!(out, "DONE {got}")?;
    out.flush()?;
    drop(out);
    port.close()?;
    if got < count {
        return Err(format!("timed out with {got} of {count} frames").into());
    }
    Ok(())
}

fn arp_frame(op: u16, src_mac: [u8; 6], src_ip: Ipv4Addr, dst_mac: [u8; 6], dst_ip: Ipv4Addr) -> Vec<u8> {
    let eth_dst = if op == 1 { [0xff; 6] } else { dst_mac };
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&eth_dst);
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&0x0806u16.to_be_bytes());
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4]);
    f.extend_from_slice(&op.to_be_bytes());
    f.extend_from_slice(&src_mac);
    f.extend_from_slice(&src_ip.octets());
    f.extend_from_slice(&if op == 1 { [0; 6] } else { dst_mac });
    f.extend_from_slice(&dst_ip.octets());
    f.resize(60, 0);
    f
}

fn send(port: &mut Port, pool: &Mempool, frame: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
    let mut m = pool.alloc()?;
    m.extend_from_slice(frame)?;
    let mut v = vec![m];
    port.tx_burst(0, &mut v)?;
    if !v.is_empty() {
        return Err("tap refused a frame".into());
    }
    Ok(())
}

fn tap_arp(iface: &str, ours: Ipv4Addr, kernel: Ipv4Addr, timeout: Duration) -> Result<(), Box<dyn std::error::Error>> {
    let eal = eal()?;
    let (mut port, pool) = open(&eal, &format!("net_tap0,iface={iface}"))?;
    let mac = port.mac()?;
    println!("READY {}", hex(&mac));
    std::io::stdout().flush()?;
    let deadline = Instant::now() + timeout;
    let (mut replied, mut udp) = (false, false);
    let mut next_req = Instant::now();
    let mut rx: Vec<Mbuf> = Vec::with_capacity(32);
    while !(replied && udp) {
        let now = Instant::now();
        if now > deadline {
            return Err(format!("timed out: arp reply seen {replied}, udp seen {udp}").into());
        }
        if !replied && now >= next_req {
            send(&mut port, &pool, &arp_frame(1, mac, ours, [0; 6], kernel))?;
            next_req = now + Duration::from_millis(100);
        }
        if port.rx_burst(0, &mut rx, 32)? == 0 {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        for m in rx.drain(..) {
            let f = m.to_vec();
            if f.len() < 42 {
                continue;
            }
            let ethertype = u16::from_be_bytes([f[12], f[13]]);
            if ethertype == 0x0806 {
                let op = u16::from_be_bytes([f[20], f[21]]);
                let sender_ip = Ipv4Addr::new(f[28], f[29], f[30], f[31]);
                let target_ip = Ipv4Addr::new(f[38], f[39], f[40], f[41]);
                let sender_mac: [u8; 6] = f[22..28].try_into().expect("6 bytes");
                if op == 2 && sender_ip == kernel && target_ip == ours && !replied {
                    println!("ARP-REPLY {}", hex(&sender_mac));
                    replied = true;
                } else if op == 1 && target_ip == ours {
                    send(&mut port, &pool, &arp_frame(2, mac, ours, sender_mac, sender_ip))?;
                    println!("ARP-ANSWERED {sender_ip}");
                }
            } else if ethertype == 0x0800 && f[0..6] == mac && f[23] == 17 {
                let ihl = usize::from(f[14] & 0x0f) * 4;
                let dst = Ipv4Addr::new(f[30], f[31], f[32], f[33]);
                let udp_start = 14 + ihl;
                if dst == ours && f.len() >= udp_start + 8 {
                    let ulen = usize::from(u16::from_be_bytes([f[udp_start + 4], f[udp_start + 5]]));
                    let end = (udp_start + ulen).min(f.len());
                    println!("UDP {}", String::from_utf8_lossy(&f[udp_start + 8..end]));
                    udp = true;
                }
            }
        }
        std::io::stdout().flush()?;
    }
    println!("DONE");
    std::io::stdout().flush()?;
    port.close()?;
    Ok(())
}
