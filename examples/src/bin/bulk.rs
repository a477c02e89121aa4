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
    /// --mode, --zc-min-write, --lcores, --memory, --page-mb, --sockbuf
    /// and --file-prefix are then not used).
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

fn runtime(args: &Args) -> Result<Runtime, Box<dyn std::error::Error>> {
    if let Some(path) = &args.conf {
        return zcstack_examples::runtime_from_conf("bulk", path, 0);
    }
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
        port: PortConfig::default(),
        rx_mbufs: 8191,
        page_array_mb: args.page_mb,
        page_buf_size: args.buf_size,
        tx_checksum_offload: !args.no_checksum_offload,
        rx_checksum_offload: !args.no_checksum_offload,
        tso: args.tso,
        device: EthDeviceConfig {
            tx_mode: if args.mode == Mode::Copy { TxMode::Copy } else { TxMode::ZeroCopy },
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
    let mut rt = runtime(&args)?;
    let deadline = Wall::now() + WallDuration::from_secs(args.timeout);
    let mut report = match args.role {
        Role::Recv => receive(&mut rt, &args, deadline)?,
        Role::Send => send(&mut rt, &args, deadline)?,
    };
    // Close the port first: deferred completions arrive then, and the
    // counters below are final.
    let (pages_free, pages_total, mbufs_in_use) = rt.shutdown()?;
    let st = *rt.stack.stats();
    let ds = rt.dev.stats();
    let mode = rt.dev.tx_mode();
    let fallback = rt.dev.fallback_reason().map(str::to_owned);
    let clean = pages_free == pages_total && mbufs_in_use == 0;
    let o = report.as_object_mut().expect("an object");
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
    o.insert("dev_rx_chains_copied".into(), json!(ds.rx_chains_copied));
    o.insert("tcp_rto_retransmits".into(), json!(st.tcp_rto_retransmits));
    o.insert("extbuf_attachments".into(), json!(ds.extbuf_attachments));
    o.insert("extbuf_completions".into(), json!(ds.extbuf_completions));
    o.insert("completion_high_water".into(), json!(ds.completion_high_water));
    o.insert("rx_bytes_zero_copy".into(), json!(st.rx_bytes_zero_copy));
    o.insert("rx_bytes_copied".into(), json!(st.rx_bytes_copied));
    o.insert("tcp_rto_retransmits".into(), json!(st.tcp_rto_retransmits));
    o.insert("tcp_fast_retransmits".into(), json!(st.tcp_fast_retransmits));
    o.insert("rx_frames".into(), json!(st.rx_frames));
    o.insert("tx_frames".into(), json!(st.tx_frames));
    o.insert("pages_free".into(), json!(pages_free));
    o.insert("pages_total".into(), json!(pages_total));
    o.insert("mbufs_in_use".into(), json!(mbufs_in_use));
    o.insert("clean".into(), json!(clean));
    println!("BULK {report}");
    if !clean {
        eprintln!("bulk: leak: {pages_free}/{pages_total} pages free, {mbufs_in_use} device mbufs in use");
    }
    Ok(clean && report["ok"] == json!(true))
}

fn receive(rt: &mut Runtime, args: &Args, deadline: Wall) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let l = rt.stack.tcp_listen(args.port, 16)?;
    let mut conn: Option<SocketHandle> = None;
    let mut h = Sha256::new();
    let mut got = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    let mut eof = false;
    let mut err = None;
    let mut t_first = None;
    let mut iter = 0u64;
    let zc_rx = rt.dev.stats().rx_mbufs_handed_over > 0 || rt.dev.rx_zero_copy();
    rt.run(|stack, _now| {
        iter += 1;
        if iter % 4096 == 0 && Wall::now() > deadline {
            err = Some("timed out".to_string());
            return (false, Control::Stop);
        }
        let Some(c) = conn.or_else(|| stack.tcp_accept(l).ok().map(|x| x.0)) else { return (false, Control::Continue) };
        conn = Some(c);
        let mut did = false;
        loop {
            // Zero-copy receive: views of the received mbufs; else a copy.
            let r = if zc_rx {
                stack.tcp_read_zc(c).map(|v| {
                    v.map(|v| {
                        if !args.no_digest {
                            h.update(&v[..]);
                        }
                        v.len()
                    })
                })
            } else {
                stack.tcp_read(c, &mut buf).map(|n| {
                    if !args.no_digest {
                        h.update(&buf[..n]);
                    }
                    (n > 0).then_some(n)
                })
            };
            match r {
                Ok(None) => {
                    eof = true;
                    let _ = stack.tcp_close(c, _now);
                    return (true, Control::Stop);
                }
                Ok(Some(n)) => {
                    t_first.get_or_insert_with(Wall::now);
                    got += n;
                    did = true;
                }
                Err(TcpError::WouldBlock) => return (did, Control::Continue),
                Err(e) => {
                    err = Some(e.to_string());
                    return (did, Control::Stop);
                }
            }
        }
    });
    let secs = t_first.map_or(0.0, |t| t.elapsed().as_secs_f64());
    // Let our FIN and its ACK finish before shutting down.
    let t = Wall::now();
    rt.run(|stack, _| {
        (
            false,
            if stack.tcp_connections() == 0 || t.elapsed().as_secs() >= 2 { Control::Stop } else { Control::Continue },
        )
    });
    let digest = hex(&h.finalize());
    println!("bulk recv: {got} bytes in {secs:.3} s, sha256 {digest}");
    Ok(json!({
        "role": "recv", "ok": eof && err.is_none(), "error": err, "bytes": got, "secs": secs,
        "gbps": got as f64 * 8.0 / secs.max(1e-9) / 1e9, "sha256": digest,
    }))
}

fn send(rt: &mut Runtime, args: &Args, deadline: Wall) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let peer = args.peer.ok_or("--peer is required for --role send")?;
    let data = dataset(args.dataset_mb.max(1) << 20);
    let total = args.bytes;
    let w = args.write_size.clamp(1, data.len());
    // Connect, retrying while the peer refuses (its listener may not be up
    // yet), until the deadline.
    let to = SocketAddrV4::new(peer, args.port);
    let c = loop {
        let now = rt.now();
        let c = rt.stack.tcp_connect(to, 0, now)?;
        let mut refused = false;
        rt.run(|stack, _| match stack.tcp_state(c) {
            Ok(zcstack::State::SynSent | zcstack::State::SynReceived) if Wall::now() < deadline => {
                (false, Control::Continue)
            }
            Ok(zcstack::State::Closed) => {
                refused = true;
                (false, Control::Stop)
            }
            _ => (false, Control::Stop),
        });
        if !refused || Wall::now() >= deadline {
            break c;
        }
        let now = rt.now();
        let _ = rt.stack.tcp_close(c, now);
        std::thread::sleep(WallDuration::from_millis(100));
    };
    // Zero copy: the data set lives in page-array buffers, loaded once.
    // Zero-copy sends when the device sends zero-copy (or was asked to and
    // fell back: the page-array data set still saves the stack's copy).
    let zc = (rt.dev.tx_mode() == TxMode::ZeroCopy || rt.dev.fallback_reason().is_some()) && args.mode != Mode::Write;
    let cache = if zc {
        let mut b = rt.stack.zc_mbuf_get(data.len())?;
        rt.stack.zc_mbuf_write(&mut b, &data)?;
        Some(b)
    } else {
        None
    };
    let mut sent = 0usize;
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
            match stack.tcp_state(c) {
                Ok(zcstack::State::Established | zcstack::State::CloseWait) => {}
                Ok(zcstack::State::SynSent | zcstack::State::SynReceived) => return (false, Control::Continue),
                Ok(s) if sent < total => {
                    err = Some(format!("connection in {s:?} before the data was sent"));
                    return (false, Control::Stop);
                }
                Ok(_) => {}
                Err(e) => {
                    err = Some(e.to_string());
                    return (false, Control::Stop);
                }
            }
            if start.is_none() {
                phase_done = true;
                return (false, Control::Stop);
            }
            if trace && last_trace.elapsed().as_millis() >= 100 {
                last_trace = Wall::now();
                eprintln!(
                    "bulk send: t={:?} {} {:?}",
                    _now,
                    stack.tcp().describe(c).unwrap_or_default(),
                    stack.stats().rx_frames
                );
            }
            let mut did = false;
            while sent < total {
                let off = sent % data.len();
                let n = w.min(data.len() - off).min(total - sent);
                let r = match &cache {
                    // Zero copy: send a range of the cached data set by reference.
                    Some(cache) => stack.tcp_send_shared(c, cache, off, n),
                    None => stack.tcp_write(c, &data[off..off + n]),
                };
                match r {
                    Ok(k) => {
                        sent += k;
                        did = true;
                    }
                    Err(TcpError::WouldBlock | TcpError::NoBuffers) => break,
                    Err(e) => {
                        err = Some(e.to_string());
                        return (did, Control::Stop);
                    }
                }
            }
            if sent >= total && stack.tcp().send_queued(c) == Ok(0) {
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
    let now = rt.now();
    let _ = rt.stack.tcp_close(c, now);
    let t = Wall::now();
    rt.run(|stack, _| {
        (
            false,
            if stack.tcp_connections() == 0 || t.elapsed().as_secs() >= 5 { Control::Stop } else { Control::Continue },
        )
    });
    if let Ok((srtt, cwnd)) = rt.stack.tcp().rtt_cwnd(c) {
        tracing::info!(?srtt, cwnd, "sender's connection at the end");
        eprintln!("bulk send: srtt {srtt:?} cwnd {cwnd}");
    }
    let digest = stream_digest(&data, sent.min(total));
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
    let cpb = busy as f64 / total as f64;
    let mode = if zc {
        "Zc"
    } else if args.mode == Mode::Write {
        "Write"
    } else {
        "Copy"
    };
    println!(
        "bulk send: {total} bytes in {secs:.3} s = {gbps:.2} Gbit/s, {cpb:.3} busy cycles/byte ({mode} mode, {w} B writes), sha256 {digest}"
    );
    Ok(json!({
        "role": "send", "ok": err.is_none() && end.is_some(), "error": err, "mode": mode,
        "write_size": w, "bytes": total, "secs": secs, "gbps": gbps, "busy_cycles": busy,
        "cycles_per_byte": cpb, "work_cycles_per_byte": work as f64 / total as f64, "usr_cycles": usr, "busy_loops": busy_loops, "tsc_hz": rt.tsc_hz(), "sha256": digest,
    }))
}
