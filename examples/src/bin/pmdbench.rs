//! `pmdbench`: a testpmd-style forwarding benchmark on zcstack's DPDK glue.
//!
//! Forwarding modes as in `dpdk-testpmd`: `io` (forward as is), `mac` (set
//! source to the port's MAC and destination to the peer address), `macswap`
//! (swap source and destination), `txonly` (generate UDP packets), `rxonly`
//! (receive and free). Ports come from `--vdev` devargs, paired 0<->1, 2<->3,
//! ... (a single port forwards to itself). Forwarding runs on the first worker
//! lcore while the main lcore prints statistics, the layout testpmd uses.
//!
//! One mode testpmd lacks: `ping` keeps one `--txpkts`-byte frame in flight
//! on port 0, sends it and waits for it to come back (a `macswap` peer at
//! the other end of the link returns it), and times each round trip with
//! the TSC: the round trip of the link and its PMDs alone, the floor under
//! any stack's request/response over the same link (`ci/bench` rr64). Each
//! frame carries a sequence number; only its own reply ends its round trip
//! (a late reply to a frame given up on is dropped and counted as stale).
//!
//! Output follows testpmd: periodic `Throughput (since last show)` blocks with
//! `Rx-pps`/`Tx-pps`, then per-port `Forward statistics`, the accumulated
//! totals and `CPU cycles/packet`, and finally one `PMDBENCH {json}` line.
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use dpdk_glue::eal::rdtsc;
use dpdk_glue::{Eal, EalArgs, Mbuf, Mempool, PoolConfig, Port, PortConfig};
use hdrhistogram::Histogram;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Io,
    Mac,
    Macswap,
    Txonly,
    Rxonly,
    Ping,
}

#[derive(Debug, Parser)]
#[command(about = "testpmd-style packet forwarding benchmark on zcstack's dpdk-glue")]
struct Args {
    /// Virtual device devargs, one port each (repeatable), e.g. net_null0 or net_ring0.
    #[arg(long = "vdev", required = true)]
    vdevs: Vec<String>,
    /// EAL --lcores layout; the first worker lcore forwards.
    #[arg(long, default_value = "0@0,1@1")]
    lcores: String,
    /// Forwarding mode.
    #[arg(long = "forward-mode", value_enum, default_value = "io")]
    mode: Mode,
    /// Packets per burst.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u16).range(1..=512))]
    burst: u16,
    /// Length of generated packets in txonly mode (bytes, >= 42).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(42..=9000))]
    txpkts: u16,
    /// Seconds to forward.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Seconds between throughput reports.
    #[arg(long = "stats-period", default_value_t = 1)]
    stats_period: u64,
    /// Mbufs in the pool.
    #[arg(long = "total-num-mbufs", default_value_t = 32768)]
    nb_mbufs: u32,
    /// RX descriptors per queue.
    #[arg(long, default_value_t = 1024)]
    rxd: u16,
    /// TX descriptors per queue.
    #[arg(long, default_value_t = 1024)]
    txd: u16,
    /// Send one txonly burst on every port before forwarding (for loopback rings).
    #[arg(long = "tx-first")]
    tx_first: bool,
    /// Use hugepages instead of --no-huge.
    #[arg(long)]
    huge: bool,
    /// EAL memory in MiB.
    #[arg(long, default_value_t = 512)]
    memory: u32,
    /// EAL --file-prefix (default: unique per process).
    #[arg(long = "file-prefix")]
    file_prefix: Option<String>,
    /// Wait up to this many seconds for every link to come up before forwarding.
    #[arg(long = "wait-link", default_value_t = 10)]
    wait_link: u64,
    /// TX reclaim batch (`[dpdk] tx_free_batch`); default: the driver's own
    /// reclaim (testpmd's), or zcstack's default 32 in `ping` mode, so its
    /// round trips meet the reclaim a zcstack port does.
    #[arg(long = "tx-free-batch")]
    tx_free_batch: Option<u16>,
}

/// `ping` mode gives up on a frame after this long (µs): counted as lost,
/// and the next one is sent.
const PING_TIMEOUT_US: u64 = 10_000;
/// Where `ping` writes its sequence number (8 bytes, little-endian): the
/// UDP payload's start (Ethernet 14 + IPv4 20 + UDP 8), so `--txpkts` is at
/// least 50 in `ping` mode.
const PING_SEQ_AT: usize = 42;

/// Counters one forwarding lcore publishes (plain stores, read by main).
#[derive(Default)]
struct PortCounters {
    rx: AtomicU64,
    tx: AtomicU64,
    tx_dropped: AtomicU64,
}

impl PortCounters {
    /// Publishes the forwarding lcore's running counts.
    fn publish(&self, rx: u64, tx: u64, dropped: u64) {
        self.rx.store(rx, Ordering::Relaxed);
        self.tx.store(tx, Ordering::Relaxed);
        self.tx_dropped.store(dropped, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    ports: Vec<PortCounters>,
    /// TSC cycles the forwarding lcore has spent in its loop so far.
    fwd_cycles: AtomicU64,
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match run(Args::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pmdbench: error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let eal_args = EalArgs {
        lcores: Some(args.lcores.clone()),
        no_huge: !args.huge,
        in_memory: args.huge,
        memory_mb: Some(args.memory),
        no_pci: true,
        no_shconf: !args.huge,
        file_prefix: Some(args.file_prefix.clone().unwrap_or_else(|| format!("pmdbench{}", std::process::id()))),
        vdevs: args.vdevs.clone(),
        log_level: Some("warning".into()),
        ..EalArgs::default()
    };
    if args.mode == Mode::Ping {
        if args.tx_first {
            return Err("--tx-first puts more frames in flight: ping keeps exactly one".into());
        }
        if args.vdevs.len() != 1 {
            return Err(format!("ping runs on one port; {} --vdev given", args.vdevs.len()).into());
        }
        if usize::from(args.txpkts) < PING_SEQ_AT + 8 {
            return Err(
                format!("--txpkts {} is too short for ping's sequence number (at least 50)", args.txpkts).into()
            );
        }
    }
    let eal = Eal::init(&eal_args)?;
    let worker = *eal
        .worker_lcores()
        .first()
        .ok_or("pmdbench needs two lcores (e.g. --lcores 0@0,1@0): main for stats, a worker to forward")?;
    let pool = Arc::new(Mempool::new(&eal, "pmdbench_pool", &PoolConfig::packets(args.nb_mbufs))?);
    if matches!(args.mode, Mode::Txonly | Mode::Ping) {
        let room = pool.alloc()?.tailroom();
        if args.txpkts > room {
            return Err(format!("--txpkts {} exceeds an mbuf's data room ({room} bytes)", args.txpkts).into());
        }
    }
    let mut ports = Vec::new();
    for v in &args.vdevs {
        let name = v.split(',').next().unwrap_or(v);
        let mut p = Port::by_name(&eal, name)?;
        // The driver's TX reclaim (tx_free_batch 0), as testpmd's queues
        // have; `ping` reclaims as a zcstack port does unless told.
        let default_batch = if args.mode == Mode::Ping { PortConfig::default().tx_free_batch } else { 0 };
        let tx_free_batch = args.tx_free_batch.unwrap_or(default_batch);
        let pc = PortConfig { rx_desc: args.rxd, tx_desc: args.txd, tx_free_batch, ..PortConfig::default() };
        p.configure(&pc, pool.clone())?;
        p.start()?;
        ports.push(p);
    }
    let deadline = Instant::now() + Duration::from_secs(args.wait_link);
    for p in &ports {
        while !p.link()?.up {
            if Instant::now() > deadline {
                return Err(
                    format!("link of port {} ({}) did not come up in {} s", p.id(), p.name(), args.wait_link).into()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let macs: Vec<[u8; 6]> = ports.iter().map(|p| p.mac()).collect::<Result<_, _>>()?;
    println!(
        "pmdbench: {:?} forwarding on lcore {worker}, {} port(s), burst {}, {} s",
        args.mode,
        ports.len(),
        args.burst,
        args.duration
    );
    let shared =
        Arc::new(Shared { ports: (0..ports.len()).map(|_| PortCounters::default()).collect(), ..Shared::default() });
    let fwd = Forwarder {
        ports,
        pool: pool.clone(),
        mode: args.mode,
        burst: args.burst,
        template: udp_template(args.txpkts),
        macs,
        shared: shared.clone(),
        tsc_hz: eal.tsc_hz(),
        rtt: Histogram::new_with_bounds(1, PING_TIMEOUT_US * 2_000, 3)?,
        lost: 0,
        stale: 0,
    };
    let tx_first = args.tx_first;
    let job = eal.launch(worker, move || fwd.run(tx_first))?;

    let hz = eal.tsc_hz();
    let start = Instant::now();
    let (mut last_rx, mut last_tx, mut last_t) = (0u64, 0u64, Instant::now());
    let (mut rx_pps, mut tx_pps) = (Vec::new(), Vec::new());
    let period = Duration::from_secs(args.stats_period.max(1));
    while start.elapsed() < Duration::from_secs(args.duration) {
        std::thread::sleep(period.min(Duration::from_secs(args.duration).saturating_sub(start.elapsed())));
        let (rx, tx) = totals(&shared);
        let dt = last_t.elapsed().as_secs_f64();
        last_t = Instant::now();
        let (rp, tp) = ((rx - last_rx) as f64 / dt, (tx - last_tx) as f64 / dt);
        (last_rx, last_tx) = (rx, tx);
        println!("\n  Throughput (since last show)\n  Rx-pps: {:>12.0}\n  Tx-pps: {:>12.0}", rp, tp);
        rx_pps.push(rp);
        tx_pps.push(tp);
    }
    shared.stop.store(true, Ordering::Relaxed);
    let fwd = job.join().ok_or("forwarding lcore panicked")?.map_err(|e| format!("forwarding failed: {e}"))?;
    let elapsed = start.elapsed().as_secs_f64();

    let mut acc = (0u64, 0u64, 0u64, 0u64);
    for (i, p) in fwd.ports.iter().enumerate() {
        let c = &shared.ports[i];
        let (rx, tx, txd) =
            (c.rx.load(Ordering::Relaxed), c.tx.load(Ordering::Relaxed), c.tx_dropped.load(Ordering::Relaxed));
        let rxd = p.stats().map(|s| s.imissed + s.rx_nombuf).unwrap_or(0);
        println!("\n  ---------------------- Forward statistics for port {}  ----------------------", p.id());
        println!("  RX-packets: {:<14} RX-dropped: {:<14} RX-total: {}", rx, rxd, rx + rxd);
        println!("  TX-packets: {:<14} TX-dropped: {:<14} TX-total: {}", tx, txd, tx + txd);
        println!("  ----------------------------------------------------------------------------");
        acc = (acc.0 + rx, acc.1 + rxd, acc.2 + tx, acc.3 + txd);
    }
    println!("\n  +++++++++++++++ Accumulated forward statistics for all ports+++++++++++++++");
    println!("  RX-packets: {:<14} RX-dropped: {:<14} RX-total: {}", acc.0, acc.1, acc.0 + acc.1);
    println!("  TX-packets: {:<14} TX-dropped: {:<14} TX-total: {}", acc.2, acc.3, acc.2 + acc.3);
    println!("  ++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++");
    // As testpmd 22.11 reports it: every cycle of the forwarding lcore's loop
    // (a polling core is all cost) over the packets it handled.
    let cycles = shared.fwd_cycles.load(Ordering::Relaxed);
    // Modes that generate their frames count what they sent.
    let generated = matches!(args.mode, Mode::Txonly | Mode::Ping);
    let pkts = if generated { acc.2 } else { acc.0 };
    let cpp = if pkts > 0 { cycles as f64 / pkts as f64 } else { 0.0 };
    println!(
        "\n  CPU cycles/packet={cpp:.2} (total cycles={cycles} / total {} packets={pkts}) at {} MHz Clock",
        if generated { "TX" } else { "RX" },
        hz / 1_000_000
    );
    let rtt = (args.mode == Mode::Ping).then(|| {
        let us = |q: f64| fwd.rtt.value_at_quantile(q) as f64 / 1000.0;
        let (p50, p99, p999) = (us(0.50), us(0.99), us(0.999));
        let n = fwd.rtt.len();
        println!(
            "\n  Round trips: {n} ({} lost, {} stale replies dropped), p50 {p50:.2} us, p99 {p99:.2} us, p99.9 {p999:.2} us",
            fwd.lost, fwd.stale
        );
        serde_json::json!({ "round_trips": n, "lost": fwd.lost, "stale": fwd.stale, "p50_us": p50, "p99_us": p99,
                            "p999_us": p999 })
    });
    let json = serde_json::json!({
        "tool": "pmdbench",
        "mode": format!("{:?}", args.mode).to_lowercase(),
        "vdevs": args.vdevs,
        "burst": args.burst,
        "duration_s": elapsed,
        "rx_packets": acc.0,
        "tx_packets": acc.2,
        "rx_dropped": acc.1,
        "tx_dropped": acc.3,
        "rx_pps_median": median(&rx_pps),
        "tx_pps_median": median(&tx_pps),
        "cycles_per_packet": cpp,
        "rtt": rtt,
    });
    println!("PMDBENCH {json}");
    for p in fwd.ports {
        p.close()?;
    }
    Ok(())
}

fn totals(s: &Shared) -> (u64, u64) {
    s.ports.iter().fold((0, 0), |(r, t), c| (r + c.rx.load(Ordering::Relaxed), t + c.tx.load(Ordering::Relaxed)))
}

fn median(v: &[f64]) -> f64 {
    // Skip the first period (warm-up) when there are enough samples.
    let mut v: Vec<f64> = if v.len() > 2 { v[1..].to_vec() } else { v.to_vec() };
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Ethernet + IPv4 + UDP header and zero payload, as testpmd's txonly sends
/// (198.18.0.1 -> 198.18.0.2, benchmark-reserved addresses; the frame never
/// leaves the vdev).
fn udp_template(len: u16) -> Vec<u8> {
    let mut f = vec![0u8; usize::from(len)];
    f[..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 0]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip_len = len - 14;
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&[198, 18, 0, 1]);
    ip[16..20].copy_from_slice(&[198, 18, 0, 2]);
    let sum = ip.chunks(2).fold(0u32, |a, c| a + u32::from(u16::from_be_bytes([c[0], c[1]])));
    let sum = (sum & 0xffff) + (sum >> 16);
    let ck = !((sum & 0xffff) + (sum >> 16)) as u16;
    ip[10..12].copy_from_slice(&ck.to_be_bytes());
    let udp = &mut f[34..42];
    udp[0..2].copy_from_slice(&9u16.to_be_bytes());
    udp[2..4].copy_from_slice(&9u16.to_be_bytes());
    udp[4..6].copy_from_slice(&(ip_len - 20).to_be_bytes());
    f
}

/// Allocates `burst` mbufs into `out`, each holding a copy of `template`.
///
/// Each mbuf is reset and filled in one pass (`alloc_bulk_with`), as
/// testpmd's txonly initialises each mbuf it takes with
/// `rte_mempool_get_bulk`: with `--no-huge` every mbuf of the pool sits at
/// the same 4 KiB page offset, so a burst's 32 headers share a few L1 sets
/// and a separate reset pass before the fill pass missed on every header
/// twice (0.66x testpmd's rate; see README).
#[inline(always)]
fn fill_txonly(pool: &Mempool, burst: u16, template: &[u8], out: &mut Vec<Mbuf>) -> Result<(), dpdk_glue::Error> {
    let len = template.len() as u16;
    pool.alloc_bulk_with(out, usize::from(burst), |m| {
        copy_template(m.append(len)?, template);
        Ok(())
    })
}

/// Copies a txonly template into a frame. testpmd's default 64-byte frame
/// takes a fixed-size copy the compiler inlines (two vector moves) instead of
/// a `memmove` call per packet; other lengths take `copy_from_slice`.
#[inline(always)]
fn copy_template(dst: &mut [u8], src: &[u8]) {
    match (<&mut [u8; 64]>::try_from(&mut *dst), <&[u8; 64]>::try_from(src)) {
        (Ok(d), Ok(s)) => *d = *s,
        _ => dst.copy_from_slice(src),
    }
}

struct Forwarder {
    ports: Vec<Port>,
    pool: Arc<Mempool>,
    mode: Mode,
    burst: u16,
    template: Vec<u8>,
    macs: Vec<[u8; 6]>,
    shared: Arc<Shared>,
    /// TSC ticks per second (`ping`'s clock).
    tsc_hz: u64,
    /// `ping`: the round trips, ns (HdrHistogram, 3 significant digits).
    rtt: Histogram<u64>,
    /// `ping`: frames that did not come back within [`PING_TIMEOUT_US`].
    lost: u64,
    /// `ping`: frames received that were not the reply awaited (a late
    /// reply to a frame given up on, or anything else), dropped.
    stale: u64,
}

impl Forwarder {
    fn fill_txonly(&self, out: &mut Vec<Mbuf>) -> Result<(), dpdk_glue::Error> {
        fill_txonly(&self.pool, self.burst, &self.template, out)
    }

    // Each stream reads port i and writes its peer: index loops say that best.
    #[allow(clippy::needless_range_loop)]
    fn run(mut self, tx_first: bool) -> Result<Forwarder, dpdk_glue::Error> {
        let n = self.ports.len();
        let burst = self.burst;
        let mut pkts: Vec<Mbuf> = Vec::with_capacity(usize::from(burst) * 2);
        let mut rx = vec![0u64; n];
        let mut tx = vec![0u64; n];
        let mut dropped = vec![0u64; n];
        if tx_first {
            for i in 0..n {
                self.fill_txonly(&mut pkts)?;
                tx[i] += self.ports[i].tx_burst(0, &mut pkts)? as u64;
                dropped[i] += pkts.len() as u64;
                Mbuf::free_bulk(&mut pkts);
            }
        }
        match self.mode {
            Mode::Io => self.forward::<0>(&mut pkts, &mut rx, &mut tx, &mut dropped)?,
            Mode::Mac => self.forward::<1>(&mut pkts, &mut rx, &mut tx, &mut dropped)?,
            Mode::Macswap => self.forward::<2>(&mut pkts, &mut rx, &mut tx, &mut dropped)?,
            Mode::Txonly => self.forward::<3>(&mut pkts, &mut rx, &mut tx, &mut dropped)?,
            Mode::Rxonly => self.forward::<4>(&mut pkts, &mut rx, &mut tx, &mut dropped)?,
            Mode::Ping => self.ping(&mut pkts)?,
        }
        Ok(self)
    }

    /// `ping` mode: one frame of the template in flight on port 0 at a
    /// time, carrying a sequence number at [`PING_SEQ_AT`]; the frame that
    /// comes back with that number ends its round trip, any other is
    /// dropped (`stale`). A frame not back within [`PING_TIMEOUT_US`]
    /// counts as lost and the next is sent. Bounded by the stop flag,
    /// checked every 64 round trips and after each timeout; the counters
    /// are published before it returns.
    fn ping(&mut self, pkts: &mut Vec<Mbuf>) -> Result<(), dpdk_glue::Error> {
        let (pool, template, shared) = (&self.pool, &self.template, &self.shared);
        let mut q = self.ports[0].queues(0, 0)?;
        let ns_per_tick = 1e9 / self.tsc_hz as f64;
        let timeout = self.tsc_hz / 1_000_000 * PING_TIMEOUT_US;
        let (mut tx, mut rx, mut dropped, mut iter, mut seq) = (0u64, 0u64, 0u64, 0u32, 0u64);
        let mut rcvd: Vec<Mbuf> = Vec::with_capacity(32);
        let start_tsc = rdtsc();
        let publish = |tx: u64, rx: u64, dropped: u64| {
            shared.ports[0].publish(rx, tx, dropped);
            shared.fwd_cycles.store(rdtsc().saturating_sub(start_tsc), Ordering::Relaxed);
        };
        loop {
            iter = iter.wrapping_add(1);
            if iter % 64 == 0 {
                publish(tx, rx, dropped);
                if shared.stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
            }
            if fill_txonly(pool, 1, template, pkts).is_err() {
                continue; // pool momentarily empty: the PMD still holds mbufs
            }
            seq += 1;
            let tag = seq.to_le_bytes();
            for m in pkts.iter_mut() {
                m.data_mut()[PING_SEQ_AT..PING_SEQ_AT + 8].copy_from_slice(&tag);
            }
            let t0 = rdtsc();
            if q.tx_burst(pkts) == 0 {
                dropped += 1;
                Mbuf::free_bulk(pkts);
                continue;
            }
            tx += 1;
            let t1 = 'wait: loop {
                if q.rx_burst(&mut rcvd, 32) > 0 {
                    let now = rdtsc();
                    rx += rcvd.len() as u64;
                    let mine = rcvd.iter().any(|m| m.data().get(PING_SEQ_AT..PING_SEQ_AT + 8) == Some(&tag[..]));
                    self.stale += rcvd.len() as u64 - u64::from(mine);
                    Mbuf::free_bulk(&mut rcvd);
                    if mine {
                        break 'wait Some(now);
                    }
                }
                if rdtsc().saturating_sub(t0) > timeout {
                    break None;
                }
            };
            match t1 {
                Some(t1) => {
                    let ns = (t1.saturating_sub(t0) as f64 * ns_per_tick) as u64;
                    self.rtt.saturating_record(ns.max(1));
                }
                None => {
                    self.lost += 1;
                    if shared.stop.load(Ordering::Relaxed) {
                        publish(tx, rx, dropped);
                        return Ok(());
                    }
                }
            }
        }
    }

    /// The forwarding loop, compiled once per mode (`M` indexes [`Mode`]) so
    /// the per-burst path carries no mode dispatch, like testpmd's per-mode
    /// engines.
    #[allow(clippy::needless_range_loop)]
    fn forward<const M: u8>(
        &mut self,
        pkts: &mut Vec<Mbuf>,
        rx: &mut [u64],
        tx: &mut [u64],
        dropped: &mut [u64],
    ) -> Result<(), dpdk_glue::Error> {
        let mode = [Mode::Io, Mode::Mac, Mode::Macswap, Mode::Txonly, Mode::Rxonly][usize::from(M)];
        let n = self.ports.len();
        let burst = self.burst;
        let single = n == 1;
        let peer = |i: usize| if single { 0 } else { i ^ 1 };
        let peer_mac: Vec<[u8; 6]> = (0..n).map(|i| [0x02, 0, 0, 0, 0, i as u8]).collect();
        let (pool, template, macs, shared) = (&self.pool, &self.template, &self.macs, &self.shared);
        // Queue handles resolve each queue once; bursts then need no checks.
        let mut qs = self.ports.iter_mut().map(|p| p.queues(0, 0)).collect::<Result<Vec<_>, _>>()?;
        let mut iter: u32 = 0;
        let start_tsc = rdtsc();
        loop {
            iter = iter.wrapping_add(1);
            if iter % 64 == 0 {
                // Publish counters and look for the stop flag every 64 passes.
                for i in 0..n {
                    shared.ports[i].publish(rx[i], tx[i], dropped[i]);
                }
                shared.fwd_cycles.store(rdtsc() - start_tsc, Ordering::Relaxed);
                if shared.stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
            }
            for i in 0..n {
                if mode == Mode::Txonly {
                    if fill_txonly(pool, burst, template, pkts).is_err() {
                        continue; // pool momentarily empty: the PMD still holds mbufs
                    }
                } else {
                    let got = qs[i].rx_burst(pkts, burst);
                    if got == 0 {
                        continue;
                    }
                    rx[i] += got as u64;
                }
                let out = match mode {
                    Mode::Rxonly => {
                        Mbuf::free_bulk(pkts);
                        continue;
                    }
                    // (`ping` runs its own loop, `Forwarder::ping`.)
                    Mode::Txonly | Mode::Ping => i,
                    Mode::Io => peer(i),
                    Mode::Mac => {
                        let o = peer(i);
                        for m in pkts.iter_mut() {
                            let d = m.data_mut();
                            if d.len() >= 12 {
                                d[..6].copy_from_slice(&peer_mac[o]);
                                d[6..12].copy_from_slice(&macs[o]);
                            }
                        }
                        o
                    }
                    Mode::Macswap => {
                        for m in pkts.iter_mut() {
                            let d = m.data_mut();
                            if d.len() >= 12 {
                                let (a, b) = d.split_at_mut(6);
                                a.swap_with_slice(&mut b[..6]);
                            }
                        }
                        peer(i)
                    }
                };
                let sent = qs[out].tx_burst(pkts);
                tx[out] += sent as u64;
                if !pkts.is_empty() {
                    dropped[out] += pkts.len() as u64;
                    Mbuf::free_bulk(pkts);
                }
            }
        }
    }
}
