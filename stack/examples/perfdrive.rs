//! perfdrive: enginebench's zcstack cases with simulated time (5 us per poll),
//! for repeatable instruction counts of the measured loops only:
//! `valgrind --tool=callgrind --toggle-collect='*measure_*' perfdrive CASE N`
//! (CASE: bulk, bulk-csum, bulk-tso [N MiB], rr64, rr10, rr10k, rr100k [N exchanges];
//! idle [N polls of both stacks with one established, idle connection];
//! smol-rr64 [N exchanges], smol-idle [N polls], smol-bulk, smol-bulk-csum [N MiB]: smoltcp over
//! the same wire, driven as `enginebench` drives it, for the gap).
//!
//! Cache and branch behaviour: add `--cache-sim=yes --branch-sim=yes
//! --LL=1048576,8,64` (this host's 1 MiB L2 per core as the last level).
//! Measured (session 22): an idle poll of both stacks costs zcstack 245
//! instructions and smoltcp 577; rr64 per exchange ~6,490 against ~6,730, yet
//! the two are level in wall time. The cache simulation's 40 I1 misses per
//! zcstack exchange (smoltcp: none) did not predict time: LLVM's
//! `-hot-cold-split` cut them to 9 and made rr64 ~7% slower.
//! `PERFDRIVE_BUF=BYTES` sets both stacks' socket buffers (default 256 KiB),
//! which bound the bytes moved per poll pair; `PERFDRIVE_PAGE=BYTES` sets
//! zcstack's page size (default 4 KiB, dpdk-glue's `[zerocopy] buf_size`). Measured (8 MiB, D1 = 48 KiB):
//! at 256 KiB zcstack moves ~120 KB per poll pair and every copy streams
//! through L1 (bulk-csum ~6.9 D1 misses per payload line), smoltcp sends one
//! segment per socket per poll and misses only in its two rings (~2.0);
//! both miss almost nothing in a 1 MiB L2.
//! `PERFDRIVE_PASS=N` sets zcstack's `[tcp] output_pass_frames` (default
//! 32; 0: no limit): the frames one connection hands the device per output
//! pass, two passes per poll here, so it bounds the frames moved per poll
//! pair. Measured (session 28,
//! an Intel host, 48 KiB L1d, 8 GiB bulk-csum): N = 2, 4, 8, 16, 32, 0 took
//! 1.22, 1.22, 1.12, 1.05, 1.04, 1.04 s. At N = 2 each payload copy was
//! cheaper (call graphs: 17.5-27 against 29-39 ns) but all else cost
//! ~280 ns more per poll pair.
//! `PERFDRIVE_WINDOWS=W` times the rr cases in W windows and prints the
//! fastest and the median (ns per exchange): on a noisy VM the fastest of
//! many short windows compares two builds better than one long run.
//! `PERFDRIVE_PHASES=1 perfdrive rr64 N` times each step of an exchange
//! (each side's write, poll and read) for both stacks, three times each.
//! Measured (session 23, a Zen 3 host): zcstack's ingress is level with
//! smoltcp's or faster, its writes and reads cost 0-4 ns more, and the poll
//! that builds and sends a segment ~20 ns more; zcstack runs fewer
//! instructions but slower per instruction there than on Zen 4.
//! Store-forwarding failures: `valgrind --tool=lackey --trace-mem=yes
//! perfdrive rr64 1300` and a script that checks each load against the
//! stores of the last ~60 instructions (session 23 found three per
//! received frame in the receive loop's `RxRef` copies; none are left).
//! Stalls an instruction count cannot show (store-forwarding failures,
//! dependent load misses): `perf record -e cpu-clock` (a software clock:
//! works in this VM without PMU counters) on `perfdrive CASE 1024`, then
//! `perf annotate -s SYMBOL`; samples piled on one load are the stall.

use smoltcp::iface::SocketHandle as SmolHandle;
use smoltcp::socket::tcp::Socket as SmolTcp;
use zcstack::{SocketHandle, TcpError};

mod zcwire;
use zcwire::smol::Smol;
use zcwire::{Clock, Offload, Zc};

// ----- zcstack side -----

fn zc_bulk(bytes: usize, offload: Offload) -> f64 {
    let mut z = Zc::with_wire(offload, Clock::simulated());
    let l = z.a.tcp_listen(80, 16).unwrap();
    let (c, s) = z.connect(l, 80);
    let chunk = vec![0x5au8; 64 * 1024];
    let mut buf = vec![0u8; 64 * 1024];
    let (mut sent, mut got) = (0usize, 0usize);
    measure_bulk(&mut z, c, s, bytes, &chunk, &mut buf, &mut sent, &mut got);
    0.0
}

#[inline(never)]
#[allow(clippy::too_many_arguments)]
fn measure_bulk(
    z: &mut Zc,
    c: SocketHandle,
    s: SocketHandle,
    bytes: usize,
    chunk: &[u8],
    buf: &mut [u8],
    sent: &mut usize,
    got: &mut usize,
) {
    let (mut sent, mut got) = (*sent, *got);
    while got < bytes {
        while sent < bytes {
            match z.b.tcp_write(c, &chunk[..chunk.len().min(bytes - sent)]) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
        z.poll();
        while let Ok(n) = z.a.tcp_read(s, buf) {
            if n == 0 {
                break;
            }
            got += n;
        }
    }
    std::hint::black_box((sent, got));
}

/// Request/response exchanges per second on one connection, with `idle`
/// other established connections in both stacks.
fn zc_rr(exchanges: usize, idle: usize) -> f64 {
    let mut z = Zc::new(Clock::simulated());
    let (c, s, _idle) = z.rr_pair(idle);
    windows(exchanges, |n| measure_rr(&mut z, c, s, n));
    0.0
}

/// Runs `measure` over `n` units in `PERFDRIVE_WINDOWS` timed windows
/// (default 1, untimed) and prints the fastest and the median window in
/// ns per unit: on a noisy VM the fastest of many short windows compares
/// two builds better than one long run (an A/B aid, not a benchmark).
fn windows(n: usize, mut measure: impl FnMut(usize)) {
    let w: usize = std::env::var("PERFDRIVE_WINDOWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    if w == 1 {
        measure(n);
        return;
    }
    let per = (n / w).max(1);
    let mut ns: Vec<f64> = (0..w)
        .map(|_| {
            let t = std::time::Instant::now();
            measure(per);
            t.elapsed().as_nanos() as f64 / per as f64
        })
        .collect();
    ns.sort_by(f64::total_cmp);
    println!("min {:.1} median {:.1} ns/unit over {w} windows of {per}", ns[0], ns[w / 2]);
}

#[inline(never)]
fn measure_rr(z: &mut Zc, c: SocketHandle, s: SocketHandle, exchanges: usize) {
    let req = [7u8; 64];
    let mut buf = [0u8; 256];
    for _ in 0..exchanges {
        z.b.tcp_write(c, &req).unwrap();
        let mut got = 0;
        while got < 64 {
            z.poll();
            match z.a.tcp_read(s, &mut buf) {
                Ok(n) => got += n,
                Err(TcpError::WouldBlock) => {}
                Err(e) => panic!("{e}"),
            }
        }
        z.a.tcp_write(s, &buf[..64]).unwrap();
        let mut got = 0;
        while got < 64 {
            z.poll();
            match z.b.tcp_read(c, &mut buf) {
                Ok(n) => got += n,
                Err(TcpError::WouldBlock) => {}
                Err(e) => panic!("{e}"),
            }
        }
    }
}

// ----- smoltcp side -----

/// smoltcp's bulk transfer (enginebench's `smol_bulk` with simulated time).
fn smol_bulk(bytes: usize, offload: Offload) {
    let mut m = Smol::with_wire(offload, Clock::simulated());
    let (c, s) = m.pair(80);
    let chunk = vec![0x5au8; 64 * 1024];
    let mut buf = vec![0u8; 64 * 1024];
    measure_smol_bulk(&mut m, c, s, bytes, &chunk, &mut buf);
}

#[inline(never)]
fn measure_smol_bulk(m: &mut Smol, c: SmolHandle, s: SmolHandle, bytes: usize, chunk: &[u8], buf: &mut [u8]) {
    let (mut sent, mut got) = (0usize, 0usize);
    while got < bytes {
        if sent < bytes {
            sent += m.sb.get_mut::<SmolTcp<'_>>(c).send_slice(&chunk[..chunk.len().min(bytes - sent)]).unwrap_or(0);
        }
        m.poll();
        got += m.sa.get_mut::<SmolTcp<'_>>(s).recv_slice(buf).unwrap_or(0);
    }
    std::hint::black_box((sent, got));
}

/// smoltcp's 64-byte request/response on one connection (enginebench's
/// `smol_rr` with simulated time).
fn smol_rr(exchanges: usize) {
    let mut m = Smol::new(Clock::simulated());
    let (c, s) = m.pair(80);
    windows(exchanges, |n| measure_smol_rr(&mut m, c, s, n));
}

#[inline(never)]
fn measure_smol_rr(m: &mut Smol, c: SmolHandle, s: SmolHandle, exchanges: usize) {
    let req = [7u8; 64];
    let mut buf = [0u8; 256];
    for _ in 0..exchanges {
        m.sb.get_mut::<SmolTcp<'_>>(c).send_slice(&req).unwrap();
        let mut got = 0;
        while got < 64 {
            m.poll();
            got += m.sa.get_mut::<SmolTcp<'_>>(s).recv_slice(&mut buf).unwrap_or(0);
        }
        m.sa.get_mut::<SmolTcp<'_>>(s).send_slice(&buf[..64]).unwrap();
        let mut got = 0;
        while got < 64 {
            m.poll();
            got += m.sb.get_mut::<SmolTcp<'_>>(c).recv_slice(&mut buf).unwrap_or(0);
        }
    }
}

/// The steps of one exchange `PERFDRIVE_PHASES` times (wall ns, each
/// step timed alone, so ~20-40 ns of clock reads per step for both stacks).
const PHASES: [&str; 8] = [
    "b write req",
    "a poll (req)",
    "b poll (req)",
    "a read req",
    "a write resp",
    "a poll (resp)",
    "b poll (resp)",
    "b read resp",
];

/// Exchanges per window of `PERFDRIVE_PHASES`: each step's figure is its
/// fastest window's mean (the quietest stretch of a noisy VM).
const PHASE_WINDOW: usize = 10_000;

/// Step times, ns: the current window's sums and each step's best window.
struct PhaseAcc {
    sum: [u128; 8],
    n: usize,
    best: [f64; 8],
}

impl PhaseAcc {
    fn new() -> Self {
        PhaseAcc { sum: [0; 8], n: 0, best: [f64::INFINITY; 8] }
    }
    /// One exchange done; closes the window after [`PHASE_WINDOW`].
    fn exchange(&mut self) {
        self.n += 1;
        if self.n == PHASE_WINDOW {
            for (b, s) in self.best.iter_mut().zip(self.sum) {
                *b = b.min(s as f64 / PHASE_WINDOW as f64);
            }
            self.sum = [0; 8];
            self.n = 0;
        }
    }
    fn print(&self, who: &str) {
        println!("{who}: {:.1} ns/exchange (sum of the steps' best windows)", self.best.iter().sum::<f64>());
        for (name, ns) in PHASES.iter().zip(self.best) {
            println!("  {name:<14} {ns:7.1}");
        }
    }
}

/// rr64 with each step timed (`PERFDRIVE_PHASES=1 perfdrive rr64 N`): where
/// zcstack's and smoltcp's exchanges differ, step by step.
fn zc_rr_phases(exchanges: usize) {
    use std::time::Instant as T;
    let mut z = Zc::new(Clock::simulated());
    let (c, s, _idle) = z.rr_pair(0);
    let (req, mut buf, mut p) = ([7u8; 64], [0u8; 256], PhaseAcc::new());
    for _ in 0..exchanges {
        for half in 0..2 {
            let o = half * 4;
            let t = T::now();
            if half == 0 {
                z.b.tcp_write(c, &req).unwrap();
            } else {
                z.a.tcp_write(s, &buf[..64]).unwrap();
            }
            p.sum[o] += t.elapsed().as_nanos();
            let mut got = 0;
            while got < 64 {
                let now = z.tick();
                let t = T::now();
                z.a.poll(now, &mut z.da);
                p.sum[o + 1] += t.elapsed().as_nanos();
                let t = T::now();
                z.b.poll(now, &mut z.db);
                p.sum[o + 2] += t.elapsed().as_nanos();
                let t = T::now();
                let r = if half == 0 { z.a.tcp_read(s, &mut buf) } else { z.b.tcp_read(c, &mut buf) };
                p.sum[o + 3] += t.elapsed().as_nanos();
                match r {
                    Ok(n) => got += n,
                    Err(TcpError::WouldBlock) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        }
        p.exchange();
    }
    p.print("zcstack");
}

/// smoltcp's rr64 timed step by step as [`zc_rr_phases`] times zcstack's.
fn smol_rr_phases(exchanges: usize) {
    use std::time::Instant as T;
    let mut m = Smol::new(Clock::simulated());
    let (c, s) = m.pair(80);
    let (req, mut buf, mut p) = ([7u8; 64], [0u8; 256], PhaseAcc::new());
    for _ in 0..exchanges {
        for half in 0..2 {
            let o = half * 4;
            let t = T::now();
            if half == 0 {
                m.sb.get_mut::<SmolTcp<'_>>(c).send_slice(&req).unwrap();
            } else {
                m.sa.get_mut::<SmolTcp<'_>>(s).send_slice(&buf[..64]).unwrap();
            }
            p.sum[o] += t.elapsed().as_nanos();
            let mut got = 0;
            while got < 64 {
                let now = m.tick();
                let t = T::now();
                m.ia.poll(now, &mut m.da, &mut m.sa);
                p.sum[o + 1] += t.elapsed().as_nanos();
                let t = T::now();
                m.ib.poll(now, &mut m.db, &mut m.sb);
                p.sum[o + 2] += t.elapsed().as_nanos();
                let t = T::now();
                let n = if half == 0 {
                    m.sa.get_mut::<SmolTcp<'_>>(s).recv_slice(&mut buf).unwrap_or(0)
                } else {
                    m.sb.get_mut::<SmolTcp<'_>>(c).recv_slice(&mut buf).unwrap_or(0)
                };
                p.sum[o + 3] += t.elapsed().as_nanos();
                got += n;
            }
        }
        p.exchange();
    }
    p.print("smoltcp");
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    if std::env::var_os("PERFDRIVE_PHASES").is_some() {
        let n: usize = a.get(2).and_then(|s| s.parse().ok()).unwrap_or(200_000);
        for _ in 0..3 {
            zc_rr_phases(n);
            smol_rr_phases(n);
        }
        return;
    }
    let case = a.get(1).map(String::as_str).unwrap_or("rr64");
    let n: usize = a.get(2).and_then(|s| s.parse().ok()).unwrap_or(2000);
    match case {
        "bulk" => {
            zc_bulk(n << 20, Offload::None);
        }
        "bulk-csum" => {
            zc_bulk(n << 20, Offload::Checksum);
        }
        "bulk-tso" => {
            zc_bulk(n << 20, Offload::ChecksumTso);
        }
        "rr64" => {
            zc_rr(n, 0);
        }
        "rr10" => {
            zc_rr(n, 10);
        }
        "rr10k" => {
            zc_rr(n, 10_000);
        }
        "rr100k" => {
            zc_rr(n, 100_000);
        }
        "idle" => {
            let mut z = Zc::new(Clock::simulated());
            let l = z.a.tcp_listen(80, 16).unwrap();
            let _ = z.connect(l, 80);
            for _ in 0..200 {
                z.poll();
            }
            measure_idle(&mut z, n);
        }
        "smol-idle" => {
            let mut m = Smol::new(Clock::simulated());
            let _ = m.pair(80);
            for _ in 0..200 {
                m.poll();
            }
            measure_smol_idle(&mut m, n);
        }
        "smol-rr64" => smol_rr(n),
        "smol-bulk" => smol_bulk(n << 20, Offload::None),
        "smol-bulk-csum" => smol_bulk(n << 20, Offload::Checksum),
        _ => panic!("case"),
    }
}

/// `n` polls of both stacks with nothing to do: the fixed cost of a poll.
#[inline(never)]
fn measure_idle(z: &mut Zc, n: usize) {
    for _ in 0..n {
        z.poll();
    }
}

#[inline(never)]
fn measure_smol_idle(m: &mut Smol, n: usize) {
    for _ in 0..n {
        m.poll();
    }
}
