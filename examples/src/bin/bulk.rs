//! `bulk`: a TCP bulk sender or receiver on zcstack over one DPDK port.
//!
//! The receiver listens, reads one connection to its end and prints the
//! SHA-256 of what arrived. The sender connects, sends `--bytes` in writes of
//! `--write-size` and closes, in copy mode (`write` from the application's
//! buffer: the stack copies into its pages and the device copies into mbufs)
//! or zero-copy mode (the data set lives in page-array buffers loaded once;
//! each write sends a range of them by reference with `tcp_send_shared`,
//! like `sendfile`, and the device attaches the pages to mbufs in place: no
//! payload byte is touched on the way; writes below `--zc-min-write` copy). Both
//! print a `BULK {json}` line with throughput, busy CPU cycles per byte and
//! the copy/zero-copy counters, and check at exit that every page and mbuf
//! came back.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration as WallDuration, Instant as Wall};

use clap::{Parser, ValueEnum};
use dpdk_glue::{Control, EalArgs, EthDeviceConfig, PortConfig, Runtime, RuntimeConfig, TxMode};
use serde_json::json;
use sha2::{Digest, Sha256};
use zcstack::wire::EthernetAddress;
use zcstack::{IfaceConfig, SocketHandle, StackConfig, TcpError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Role {
    Send,
    Recv,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Copy writes (`write`) and a copy-mode device (`[zerocopy] send=0`):
    /// application → page buffers → mbufs, two copies.
    Copy,
    /// Zero-copy writes (`tcp_send_shared` of a page-array data set) on a
    /// zero-copy device: no copy.
    Zc,
    /// Copy writes on a zero-copy device (the default config with ordinary
    /// `write`s): one copy, into page buffers the device sends in place
    /// when a frame is worth it (TSO frames, large zero-copy payloads).
    Write,
}

#[derive(Debug, Parser)]
#[command(about = "TCP bulk sender/receiver on zcstack (copy or zero-copy writes)")]
struct Args {
    #[arg(long, value_enum)]
    role: Role,
    /// F-Stack-style config.ini: EAL, port 0 ([port0] + [vdev0]), TCP
    /// tunables and the [zerocopy] switches come from it (--vdev, --ip,
    /// --mode, --zc-min-write, --lcores, --memory, --page-mb, --sockbuf,
    /// --mtu, --tx-free-batch and --file-prefix are then not used).
    #[arg(long = "conf", short = 'c')]
    conf: Option<String>,
    /// The port's devargs, e.g. net_vhost0,iface=/tmp/vh.sock,queues=1.
    #[arg(long, required_unless_present = "conf")]
    vdev: Option<String>,
    /// Our IPv4 address (a /24 is assumed).
    #[arg(long, required_unless_present = "conf")]
    ip: Option<Ipv4Addr>,
    /// The receiver's address (sender only).
    #[arg(long)]
    peer: Option<Ipv4Addr>,
    #[arg(long, default_value_t = 5001)]
    port: u16,
    /// Bytes to send.
    #[arg(long, default_value_t = 256 << 20)]
    bytes: usize,
    #[arg(long = "write-size", default_value_t = 64 * 1024)]
    write_size: usize,
    #[arg(long, value_enum, default_value = "zc")]
    mode: Mode,
    /// Zero-copy writes below this size are copied (StackConfig::zc_min_write).
    #[arg(long = "zc-min-write", default_value_t = 0)]
    zc_min_write: usize,
    /// Compute and verify TCP checksums in software even where the port could offload them.
    #[arg(long = "no-checksum-offload")]
    no_checksum_offload: bool,
    /// Send TSO frames (many segments per frame, cut by the port) where the
    /// port offers TCP segmentation offload (`[dpdk] tso`).
    #[arg(long)]
    tso: bool,
    /// EAL lcore layout; the EAL pins the process to these CPUs (overriding
    /// taskset), so give two processes different CPUs, e.g. 0@0 and 0@1.
    #[arg(long, default_value = "0@0")]
    lcores: String,
    #[arg(long = "file-prefix")]
    file_prefix: Option<String>,
    /// EAL memory, MiB.
    #[arg(long, default_value_t = 512)]
    memory: u32,
    /// Page-array buffer size, bytes (power of two, at most the memory page size).
    #[arg(long = "buf-size", default_value_t = 4096)]
    buf_size: usize,
    /// Page array size, MiB.
    #[arg(long = "page-mb", default_value_t = 128)]
    page_mb: usize,
    /// Send and receive buffer per connection, bytes.
    #[arg(long, default_value_t = 1 << 20)]
    sockbuf: usize,
    /// Link MTU (both ends must agree; 9000 for jumbo frames).
    #[arg(long, default_value_t = 1500)]
    mtu: usize,
    /// TX descriptors a virtio port reclaims at a time (`[dpdk]
    /// tx_free_batch`; 0: the driver's default).
    #[arg(long = "tx-free-batch", default_value_t = dpdk_glue::port::DEFAULT_TX_FREE_BATCH,
        value_parser = clap::value_parser!(u16).range(0..=4096))]
    tx_free_batch: u16,
    /// Zero-copy TX warms each frame's payload for a software backend
    /// (`[zerocopy] payload_prefetch`: auto is on for virtio-user ports;
    /// with `--conf` the file's key decides).
    #[arg(long = "payload-prefetch", default_value = "auto", value_name = "auto|1|0",
        value_parser = |v: &str| dpdk_glue::TxPrefetch::parse(v).ok_or("expected auto, 1 or 0"))]
    tx_prefetch: dpdk_glue::TxPrefetch,
    /// Size of the data set the sender cycles through, MiB (in zero-copy
    /// mode it lives in the page array). Larger than the caches, like a
    /// file or object cache, unless you want cache-hot copies.
    #[arg(long = "dataset-mb", default_value_t = 32)]
    dataset_mb: usize,
    /// Receiver: skip the SHA-256 of the stream (benchmarks measuring the sender).
    #[arg(long = "no-digest")]
    no_digest: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout: u64,
    /// Connections in all. The sender spreads them over the lcores of its
    /// config (connection j on lcore j mod lcores) and splits `--bytes`
    /// evenly (the first takes the remainder); the receiver stops once this
    /// many connections ended, whichever lcores they came to.
    #[arg(long, default_value_t = 1)]
    connections: usize,
}

fn main() -> ExitCode {
    zcstack_examples::init_logging();
    match run(Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("bulk: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stream the sender sends: a pattern of `len` bytes, repeated.
fn dataset(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// The run's digest over its connections' stream digests: the digest
/// itself with one connection, else the SHA-256 of the sorted digests
/// (sender and receiver compute the same value when every stream arrived
/// whole, whichever lcores they went through).
fn combined_digest(mut digests: Vec<String>) -> String {
    if digests.len() == 1 {
        return digests.remove(0);
    }
    digests.sort();
    hex(&Sha256::digest(digests.concat().as_bytes()))
}

fn stream_digest(data: &[u8], total: usize) -> String {
    let mut h = Sha256::new();
    let mut left = total;
    while left > 0 {
        let n = left.min(data.len());
        h.update(&data[..n]);
        left -= n;
    }
    hex(&h.finalize())
}

/// The one runtime of a run without `--conf`.
fn runtime(args: &Args) -> Result<Runtime, Box<dyn std::error::Error>> {
    let (Some(vdev), Some(ip)) = (&args.vdev, args.ip) else {
        return Err("--vdev and --ip are required without --conf".into());
    };
    let mut eal = EalArgs::nic_less(&args.lcores);
    eal.memory_mb = Some(args.memory);
    eal.file_prefix = Some(args.file_prefix.clone().unwrap_or_else(|| format!("bulk{}", std::process::id())));
    let mut stack = StackConfig::new(IfaceConfig {
        mac: EthernetAddress([2, 0x7a, 0x63, 0, u8::from(args.role == Role::Send), ip.octets()[3]]),
        addr: ip,
        prefix_len: 24,
        gateway: None,
    });
    stack.tcp.send_buffer = args.sockbuf;
    stack.tcp.recv_buffer = args.sockbuf;
    stack.tcp.min_rto = zcstack::Duration::from_millis(10);
    stack.zc_min_write = args.zc_min_write;
    let control = eal.file_prefix.as_deref().map(dpdk_glue::control::control_path);
    let cfg = RuntimeConfig {
        control,
        eal,
        vdev: vdev.clone(),
        port: PortConfig { tx_free_batch: args.tx_free_batch, ..PortConfig::default() },
        rx_mbufs: 8191,
        page_array_mb: args.page_mb,
        page_buf_size: args.buf_size,
        tx_checksum_offload: !args.no_checksum_offload,
        rx_checksum_offload: !args.no_checksum_offload,
        tso: args.tso,
        device: EthDeviceConfig {
            tx_mode: if args.mode == Mode::Copy { TxMode::Copy } else { TxMode::ZeroCopy },
            tx_prefetch: args.tx_prefetch,
            ..EthDeviceConfig::default()
        },
        stack,
        mtu: args.mtu,
        idle_sleep_us: 0,
        pcap: None,
    };
    Ok(Runtime::init(&cfg)?)
}

fn run(args: Args) -> Result<bool, Box<dyn std::error::Error>> {
    if args.connections == 0 {
        return Err("--connections must be at least 1".into());
    }
    let shared = Shared::default();
    let per = match &args.conf {
        Some(path) => {
            let fstack = zcstack_examples::FstackArgs { conf: path.clone(), proc_type: None, proc_id: 0 };
            zcstack_examples::launch_from_conf("bulk", path, &fstack, |rt| {
                lcore(rt, &args, &shared).map_err(|e| e.to_string())
            })?
        }
        None => {
            let mut rt = runtime(&args)?;
            vec![lcore(&mut rt, &args, &shared).map_err(|e| e.to_string())]
        }
    };
    let rows = per.into_iter().collect::<Result<Vec<_>, String>>()?;
    let report = combine(&rows);
    println!("BULK {report}");
    let clean = report["clean"] == json!(true);
    if !clean {
        eprintln!(
            "bulk: leak: {}/{} pages free, {} device mbufs in use",
            report["pages_free"], report["pages_total"], report["mbufs_in_use"]
        );
    }
    Ok(clean && report["ok"] == json!(true))
}

/// What the lcores of one run share.
#[derive(Default)]
struct Shared {
    /// Receiver: connections read to their end, over every lcore.
    finished: AtomicUsize,
    /// Receiver: a failure on one lcore stops them all.
    failed: AtomicBool,
}

/// The run's report from the lcores' reports: counters summed, the
/// slowest lcore's time, rates recomputed, digests combined, per-lcore
/// figures under `"lcores"` (with one lcore: its report, plus those two keys).
fn combine(rows: &[serde_json::Value]) -> serde_json::Value {
    let mut sum = zcstack_examples::sum_json(rows);
    let first = &rows[0];
    for k in ["tsc_hz", "write_size"] {
        sum[k] = first[k].clone();
    }
    let secs = rows.iter().filter_map(|r| r["secs"].as_f64()).fold(0.0, f64::max);
    let bytes = sum["bytes"].as_u64().unwrap_or(0) as f64;
    sum["secs"] = json!(secs);
    sum["gbps"] = json!(bytes * 8.0 / secs.max(1e-9) / 1e9);
    sum["cycles_per_byte"] = json!(sum["busy_cycles"].as_u64().unwrap_or(0) as f64 / bytes.max(1.0));
    if first["role"] == "send" {
        sum["gbps"] = json!(if secs > 0.0 { bytes * 8.0 / secs / 1e9 } else { 0.0 });
        sum["work_cycles_per_byte"] = json!(sum["work_cycles"].as_u64().unwrap_or(0) as f64 / bytes);
    }
    sum["error"] = rows.iter().map(|r| r["error"].clone()).find(|e| !e.is_null()).unwrap_or(serde_json::Value::Null);
    let digests: Vec<String> = rows
        .iter()
        .flat_map(|r| r["sha256s"].as_array().cloned().unwrap_or_default())
        .filter_map(|d| d.as_str().map(str::to_owned))
        .collect();
    sum["sha256"] =
        json!(if digests.is_empty() { hex(&Sha256::digest(b"")) } else { combined_digest(digests.clone()) });
    sum["sha256s"] = json!(digests);
    sum.as_object_mut().map(|o| o.remove("lcore_index"));
    sum["nb_lcores"] = json!(rows.len());
    sum["lcores"] = json!(rows);
    sum
}

/// One lcore's share of the run; its report.
fn lcore(rt: &mut Runtime, args: &Args, shared: &Shared) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let deadline = Wall::now() + WallDuration::from_secs(args.timeout);
    let mut report = match args.role {
        Role::Recv => receive(rt, args, shared, deadline)?,
        Role::Send => send(rt, args, deadline)?,
    };
    // Close the port first: deferred completions arrive then, and the
    // counters below are final.
    let (pages_free, pages_total, mbufs_in_use) = rt.shutdown()?;
    let st = *rt.stack.stats();
    let ds = rt.dev.stats();
    let mode = rt.dev.tx_mode();
    let fallback = rt.dev.fallback_reason().map(str::to_owned);
    let clean = pages_free == pages_total && mbufs_in_use == 0;
    let steer = rt.dev.steer_stats().unwrap_or_default();
    let o = report.as_object_mut().expect("an object");
    o.insert("lcore_index".into(), json!(rt.lcore_index()));
    o.insert("tx_mode".into(), json!(format!("{mode:?}")));
    o.insert("fallback".into(), json!(fallback));
    o.insert("tx_bytes_copied".into(), json!(st.tx_bytes_copied));
    o.insert("tx_bytes_zero_copy".into(), json!(st.tx_bytes_zero_copy));
    o.insert("dev_tx_payload_copied".into(), json!(ds.tx_payload_copied));
    o.insert("impaired".into(), zcstack_examples::impaired(&ds));
    o.insert("dev_rx_l4_verified".into(), json!(ds.rx_l4_verified));
    o.insert("dev_rx_frames".into(), json!(ds.rx_frames));
    o.insert("dev_rx_l4_bad".into(), json!(ds.rx_l4_bad));
    o.insert("dev_tx_payload_zero_copy".into(), json!(ds.tx_payload_zero_copy));
    o.insert("tcp_tso_frames".into(), json!(st.tcp_tso_frames));
    o.insert("tcp_gso_bursts".into(), json!(st.tcp_gso_bursts));
    o.insert("dev_rx_chains_copied".into(), json!(ds.rx_chains_copied));
    o.insert("extbuf_attachments".into(), json!(ds.extbuf_attachments));
    o.insert("extbuf_completions".into(), json!(ds.extbuf_completions));
    o.insert("completion_high_water".into(), json!(ds.completion_high_water));
    o.insert("dev_tx_lines_prefetched".into(), json!(ds.tx_lines_prefetched));
    o.insert("payload_prefetch".into(), json!(rt.dev.tx_prefetch()));
    o.insert("rx_bytes_zero_copy".into(), json!(st.rx_bytes_zero_copy));
    o.insert("rx_bytes_copied".into(), json!(st.rx_bytes_copied));
    o.insert("rx_bytes_copybreak".into(), json!(st.rx_bytes_copybreak));
    o.insert("tcp_rto_retransmits".into(), json!(st.tcp_rto_retransmits));
    o.insert("tcp_fast_retransmits".into(), json!(st.tcp_fast_retransmits));
    o.insert("tcp_send_pressure_limited".into(), json!(st.tcp_send_pressure_limited));
    o.insert("dev_tx_backpressure".into(), json!(ds.tx_backpressure));
    o.insert("rx_frames".into(), json!(st.rx_frames));
    o.insert("tx_frames".into(), json!(st.tx_frames));
    o.insert("dev_tx_frames_zero_copy".into(), json!(ds.tx_frames_zero_copy));
    o.insert("rss_connect_ports_tried".into(), json!(st.rss_connect_ports_tried));
    o.insert("rss_connect_refused".into(), json!(st.rss_connect_refused));
    o.insert("steered_out".into(), json!(steer.steered_out));
    o.insert("steered_in".into(), json!(steer.steered_in));
    o.insert("steer_copied".into(), json!(steer.copied));
    o.insert("steer_backlogged".into(), json!(steer.backlogged));
    o.insert("steer_dropped_at_close".into(), json!(steer.dropped_at_close));
    o.insert("steer_unread_at_close".into(), json!(steer.unread_at_close));
    o.insert("pages_free".into(), json!(pages_free));
    o.insert("pages_total".into(), json!(pages_total));
    o.insert("mbufs_in_use".into(), json!(mbufs_in_use));
    o.insert("clean".into(), json!(clean));
    Ok(report)
}

/// One received connection.
struct Incoming {
    h: SocketHandle,
    digest: Sha256,
    got: usize,
}

fn receive(
    rt: &mut Runtime,
    args: &Args,
    shared: &Shared,
    deadline: Wall,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let l = rt.stack.tcp_listen(args.port, 1024)?;
    let mut conns: Vec<Incoming> = Vec::new();
    let mut digests = Vec::new();
    let mut got = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    let mut err = None;
    let mut t_first = None;
    let mut iter = 0u64;
    let zc_rx = rt.dev.stats().rx_mbufs_handed_over > 0 || rt.dev.rx_zero_copy();
    let c0 = rt.cycles();
    rt.run(|stack, now| {
        iter += 1;
        if iter % 4096 == 0 && Wall::now() > deadline {
            err = Some("timed out".to_string());
            shared.failed.store(true, Ordering::Relaxed);
            return (false, Control::Stop);
        }
        if shared.failed.load(Ordering::Relaxed) || shared.finished.load(Ordering::Relaxed) >= args.connections {
            return (false, Control::Stop);
        }
        let mut did = false;
        while let Ok((h, _)) = stack.tcp_accept(l) {
            conns.push(Incoming { h, digest: Sha256::new(), got: 0 });
            did = true;
        }
        let mut i = 0;
        while i < conns.len() {
            let c = &mut conns[i];
            let mut ended = false;
            loop {
                // Zero-copy receive: views of the received mbufs; else a copy.
                let r = if zc_rx {
                    stack.tcp_read_zc(c.h).map(|v| {
                        v.map(|v| {
                            if !args.no_digest {
                                c.digest.update(&v[..]);
                            }
                            v.len()
                        })
                    })
                } else {
                    stack.tcp_read(c.h, &mut buf).map(|n| {
                        if !args.no_digest {
                            c.digest.update(&buf[..n]);
                        }
                        (n > 0).then_some(n)
                    })
                };
                match r {
                    Ok(None) => {
                        ended = true;
                        break;
                    }
                    Ok(Some(n)) => {
                        t_first.get_or_insert_with(Wall::now);
                        c.got += n;
                        got += n;
                        did = true;
                    }
                    Err(TcpError::WouldBlock) => break,
                    Err(e) => {
                        err = Some(e.to_string());
                        shared.failed.store(true, Ordering::Relaxed);
                        return (did, Control::Stop);
                    }
                }
            }
            if ended {
                let c = conns.swap_remove(i);
                let _ = stack.tcp_close(c.h, now);
                digests.push(hex(&c.digest.finalize()));
                shared.finished.fetch_add(1, Ordering::Relaxed);
                did = true;
            } else {
                i += 1;
            }
        }
        (did, Control::Continue)
    });
    let secs = t_first.map_or(0.0, |t| t.elapsed().as_secs_f64());
    // The receiver's cycles in passes that did anything (RX burst, vhost's
    // dequeue, TCP input, the reads, ACKs); idle passes are left out.
    let c1 = rt.cycles();
    let busy = (c1.usr + c1.sys).saturating_sub(c0.usr + c0.sys);
    for c in conns.drain(..) {
        let _ = rt.stack.tcp_abort(c.h);
    }
    // Let our FINs and their ACKs finish before shutting down.
    let t = Wall::now();
    rt.run(|stack, _| {
        (
            false,
            if stack.tcp_connections() == 0 || t.elapsed().as_secs() >= 2 { Control::Stop } else { Control::Continue },
        )
    });
    let ok = err.is_none() && shared.finished.load(Ordering::Relaxed) >= args.connections;
    let digest = combined_digest(digests.clone());
    println!("bulk recv: {got} bytes in {secs:.3} s on {} connections, sha256 {digest}", digests.len());
    Ok(json!({
        "role": "recv", "ok": ok, "error": err, "bytes": got, "secs": secs,
        "gbps": got as f64 * 8.0 / secs.max(1e-9) / 1e9, "connections": digests.len(), "sha256s": digests,
        "busy_cycles": busy, "busy_loops": c1.busy_loops - c0.busy_loops,
        "cycles_per_byte": busy as f64 / got.max(1) as f64, "tsc_hz": rt.tsc_hz(),
    }))
}

/// One connection of the sender.
struct Flow {
    h: SocketHandle,
    /// Bytes this connection sends.
    bytes: usize,
    sent: usize,
}

/// Bytes connection `j` of `n` sends of `total` (the first takes the remainder).
fn share(total: usize, n: usize, j: usize) -> usize {
    total / n + if j == 0 { total % n } else { 0 }
}

/// Connects every connection of this lcore, retrying those the peer
/// refuses (its listener may not be up yet) every 100 ms until `deadline`.
fn connect_all(
    rt: &mut Runtime,
    to: SocketAddrV4,
    sizes: &[usize],
    deadline: Wall,
) -> Result<Vec<Flow>, Box<dyn std::error::Error>> {
    let mut flows: Vec<Option<Flow>> = sizes.iter().map(|_| None).collect();
    loop {
        for (f, &bytes) in flows.iter_mut().zip(sizes) {
            if f.is_none() {
                let now = rt.now();
                *f = Some(Flow { h: rt.stack.tcp_connect(to, 0, now)?, bytes, sent: 0 });
            }
        }
        rt.run(|stack, _| {
            let waiting = flows
                .iter()
                .flatten()
                .any(|f| matches!(stack.tcp_state(f.h), Ok(zcstack::State::SynSent | zcstack::State::SynReceived)));
            (false, if waiting && Wall::now() < deadline { Control::Continue } else { Control::Stop })
        });
        let mut refused = false;
        for f in flows.iter_mut() {
            if let Some(x) = f {
                if matches!(rt.stack.tcp_state(x.h), Ok(zcstack::State::Closed) | Err(_)) {
                    let now = rt.now();
                    let _ = rt.stack.tcp_close(x.h, now);
                    *f = None;
                    refused = true;
                }
            }
        }
        if !refused || Wall::now() >= deadline {
            break;
        }
        std::thread::sleep(WallDuration::from_millis(100));
    }
    let flows: Vec<Flow> = flows.into_iter().flatten().collect();
    if flows.len() < sizes.len() {
        for f in &flows {
            let _ = rt.stack.tcp_abort(f.h);
        }
        return Err(format!(
            "{to} refused {} of {} connections until the timeout",
            sizes.len() - flows.len(),
            sizes.len()
        )
        .into());
    }
    Ok(flows)
}

fn send(rt: &mut Runtime, args: &Args, deadline: Wall) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let peer = args.peer.ok_or("--peer is required for --role send")?;
    let data = dataset(args.dataset_mb.max(1) << 20);
    let w = args.write_size.clamp(1, data.len());
    let (me, nb) = (rt.lcore_index(), rt.nb_lcores().max(1));
    // Connection j runs on lcore j mod nb.
    let sizes: Vec<usize> =
        (0..args.connections).filter(|j| j % nb == me).map(|j| share(args.bytes, args.connections, j)).collect();
    let total: usize = sizes.iter().sum();
    let to = SocketAddrV4::new(peer, args.port);
    let mut flows = connect_all(rt, to, &sizes, deadline)?;
    // Zero copy: the data set lives in page-array buffers, loaded once.
    // Zero-copy sends when the device sends zero-copy (or was asked to and
    // fell back: the page-array data set still saves the stack's copy).
    let zc = (rt.dev.tx_mode() == TxMode::ZeroCopy || rt.dev.fallback_reason().is_some()) && args.mode != Mode::Write;
    let cache = if zc && !flows.is_empty() {
        let mut b = rt.stack.zc_mbuf_get(data.len())?;
        rt.stack.zc_mbuf_write(&mut b, &data)?;
        Some(b)
    } else {
        None
    };
    let mut iter = 0u64;
    let trace = std::env::var_os("BULK_TRACE").is_some();
    let mut last_trace = Wall::now();
    let mut err = None;
    let mut start: Option<(Wall, dpdk_glue::LoopCycles)> = None;
    let mut end: Option<(Wall, dpdk_glue::LoopCycles)> = None;
    // The loop callback cannot borrow the runtime; cycle snapshots are taken
    // between short runs instead.
    loop {
        let mut phase_done = false;
        rt.run(|stack, _now| {
            iter += 1;
            if iter % 4096 == 0 && Wall::now() > deadline {
                err = Some("timed out".to_string());
                return (false, Control::Stop);
            }
            for f in &flows {
                match stack.tcp_state(f.h) {
                    Ok(zcstack::State::Established | zcstack::State::CloseWait) => {}
                    Ok(zcstack::State::SynSent | zcstack::State::SynReceived) => return (false, Control::Continue),
                    Ok(s) if f.sent < f.bytes => {
                        err = Some(format!("connection in {s:?} before the data was sent"));
                        return (false, Control::Stop);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        err = Some(e.to_string());
                        return (false, Control::Stop);
                    }
                }
            }
            if start.is_none() {
                phase_done = true;
                return (false, Control::Stop);
            }
            if trace && last_trace.elapsed().as_millis() >= 100 {
                last_trace = Wall::now();
                for f in &flows {
                    eprintln!(
                        "bulk send: t={:?} {} {:?}",
                        _now,
                        stack.tcp().describe(f.h).unwrap_or_default(),
                        stack.stats().rx_frames
                    );
                }
            }
            let mut did = false;
            let mut all_done = true;
            for f in flows.iter_mut() {
                while f.sent < f.bytes {
                    let off = f.sent % data.len();
                    let n = w.min(data.len() - off).min(f.bytes - f.sent);
                    let r = match &cache {
                        // Zero copy: send a range of the cached data set by reference.
                        Some(cache) => stack.tcp_send_shared(f.h, cache, off, n),
                        None => stack.tcp_write(f.h, &data[off..off + n]),
                    };
                    match r {
                        Ok(k) => {
                            f.sent += k;
                            did = true;
                        }
                        Err(TcpError::WouldBlock | TcpError::NoBuffers) => break,
                        Err(e) => {
                            err = Some(e.to_string());
                            return (did, Control::Stop);
                        }
                    }
                }
                all_done &= f.sent >= f.bytes && stack.tcp().send_queued(f.h) == Ok(0);
            }
            if all_done {
                phase_done = true;
                return (did, Control::Stop);
            }
            (did, Control::Continue)
        });
        if err.is_some() {
            break;
        }
        if phase_done && start.is_none() {
            start = Some((Wall::now(), rt.cycles()));
            continue;
        }
        if phase_done {
            end = Some((Wall::now(), rt.cycles()));
            break;
        }
    }
    if let Some(cache) = cache {
        rt.stack.zc_release_buffers([cache]);
    }
    for f in &flows {
        let now = rt.now();
        let _ = rt.stack.tcp_close(f.h, now);
    }
    let t = Wall::now();
    rt.run(|stack, _| {
        (
            false,
            if stack.tcp_connections() == 0 || t.elapsed().as_secs() >= 5 { Control::Stop } else { Control::Continue },
        )
    });
    for f in &flows {
        if let Ok((srtt, cwnd)) = rt.stack.tcp().rtt_cwnd(f.h) {
            tracing::info!(?srtt, cwnd, "sender's connection at the end");
            eprintln!("bulk send: srtt {srtt:?} cwnd {cwnd}");
        }
    }
    let digests: Vec<String> = flows.iter_mut().map(|f| stream_digest(&data, f.sent.min(f.bytes))).collect();
    let sent: usize = flows.iter().map(|f| f.sent.min(f.bytes)).sum();
    let digest = combined_digest(digests.clone());
    let (secs, busy, usr, busy_loops, work) = match (start, end) {
        (Some((t0, c0)), Some((t1, c1))) => {
            let busy = (c1.usr + c1.sys) - (c0.usr + c0.sys);
            let busy_loops = c1.busy_loops - c0.busy_loops;
            // Work: busy cycles less what an empty loop pass costs (measured
            // from the idle passes of the same run), so a sender waiting for
            // its peer is not charged the polling it does between ACKs.
            let idle_loops = (c1.loops - c0.loops) - busy_loops;
            let per_idle = (c1.idle - c0.idle) / idle_loops.max(1);
            ((t1 - t0).as_secs_f64(), busy, c1.usr - c0.usr, busy_loops, busy.saturating_sub(busy_loops * per_idle))
        }
        _ => (0.0, 0, 0, 0, 0),
    };
    let gbps = if secs > 0.0 { total as f64 * 8.0 / secs / 1e9 } else { 0.0 };
    let cpb = busy as f64 / total.max(1) as f64;
    let mode = if zc {
        "Zc"
    } else if args.mode == Mode::Write {
        "Write"
    } else {
        "Copy"
    };
    println!(
        "bulk send: {sent} bytes in {secs:.3} s = {gbps:.2} Gbit/s on {} connections, {cpb:.3} busy cycles/byte ({mode} mode, {w} B writes), sha256 {digest}",
        flows.len()
    );
    Ok(json!({
        "role": "send", "ok": err.is_none() && end.is_some(), "error": err, "mode": mode,
        "write_size": w, "bytes": total, "secs": secs, "gbps": gbps, "busy_cycles": busy,
        "cycles_per_byte": cpb, "work_cycles": work, "work_cycles_per_byte": work as f64 / total.max(1) as f64, "usr_cycles": usr, "busy_loops": busy_loops, "tsc_hz": rt.tsc_hz(),
        "connections": flows.len(), "sha256s": digests, "sha256": digest,
    }))
}
