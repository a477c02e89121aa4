//! `linertt`: how long one cache line takes to go from one CPU to another
//! and back, measured now.
//!
//! Every exchange between two busy-polling lcores (a virtio-user port and
//! its vhost peer, an application and its stack on another core) moves
//! cache lines between their CPUs: ring indexes, descriptors, packet data.
//! On a VM the host decides where the two vCPUs run, and that changes: on
//! session 26's host the same two vCPUs bounced a line in ~30, ~75 or
//! ~310–340 ns (SMT siblings, one L3, two L3s), from one run to the next
//! and sometimes within one. A latency benchmark that crosses lines a dozen
//! times per round trip moves with it; `ci/bench` prints this probe next to
//! its rr64 runs.
//!
//! Usage: `linertt --cpus 0,1 --ms 200 --slice-ms 10`. Two threads, pinned
//! to CPUs A and B, pass a counter back and forth in one 64-byte-aligned
//! line: one untimed round trip first (B's thread starting and its vCPU
//! waking), then `--ms` milliseconds in `--slice-ms` slices, each timed on
//! its own (its round trips over its monotonic-clock time). The report
//! gives each slice's round trip in time order (`slice_ns`) and their
//! smallest, median and largest, in nanoseconds per round trip, as text and
//! as `LINERTT {json}`.
//!
//! Bounded: a peer silent for a second ends the run with an error, and so
//! does a run still going a second past `--ms` (a slice ends at the first
//! clock check after its time, every 16 round trips; at worst 16 round trips
//! of just under a second each).

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;

#[derive(Debug, Parser)]
#[command(about = "Cache-line round trip between two CPUs, ns (ci/bench's vCPU placement probe)")]
struct Args {
    /// The two CPUs, `A,B`: the pinging thread runs on A, the answering one on B.
    #[arg(long, default_value = "0,1", value_parser = parse_cpus)]
    cpus: (usize, usize),
    /// Milliseconds to measure (at least `--slice-ms`, at most 60,000).
    #[arg(long, default_value_t = 200)]
    ms: u64,
    /// Milliseconds per timed slice (at least 1).
    #[arg(long = "slice-ms", default_value_t = 10)]
    slice_ms: u64,
}

fn parse_cpus(s: &str) -> Result<(usize, usize), String> {
    let (a, b) = s.split_once(',').ok_or("expected two CPU numbers, `A,B`")?;
    let n = |v: &str| v.trim().parse::<usize>().map_err(|e| format!("CPU `{v}`: {e}"));
    let (a, b) = (n(a)?, n(b)?);
    if a == b {
        return Err("the two CPUs must differ".into());
    }
    Ok((a, b))
}

/// The line the two threads pass between them: odd values are pings, even
/// ones answers; `STOP` ends the answering thread.
#[repr(align(64))]
#[derive(Debug, Default)]
struct Line(AtomicU64);

const STOP: u64 = u64::MAX;
/// A peer silent for this long has not been run by its CPU.
const SILENT: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    zcstack_examples::exit("linertt", run(Args::parse()))
}

fn pin(cpu: usize) -> Result<(), String> {
    dpdk_glue::affinity::pin_current_thread(cpu)
        .map_err(|e| format!("cannot pin a thread to CPU {cpu} (absent, offline or not in this process's cpuset): {e}"))
}

/// Waits until `line` holds `want` (or `STOP`); false after `SILENT`.
fn wait_for(line: &Line, want: u64) -> bool {
    let mut spins = 0u32;
    let mut since: Option<Instant> = None;
    loop {
        let v = line.0.load(Ordering::Acquire);
        if v == want || v == STOP {
            return true;
        }
        spins = spins.wrapping_add(1);
        if spins % 4096 == 0 {
            let t = *since.get_or_insert_with(Instant::now);
            if t.elapsed() > SILENT {
                return false;
            }
        }
        std::hint::spin_loop();
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.slice_ms == 0 {
        return Err("--slice-ms must be at least 1".into());
    }
    if args.ms < args.slice_ms || args.ms > 60_000 {
        return Err(format!("--ms {} must be between --slice-ms ({}) and 60000", args.ms, args.slice_ms).into());
    }
    let (a, b) = args.cpus;
    let line = Line::default();
    let slices = (args.ms / args.slice_ms) as usize;
    let slice = Duration::from_millis(args.slice_ms);
    let mut per_slice: Vec<f64> = Vec::with_capacity(slices);
    let result = std::thread::scope(|s| -> Result<(), String> {
        let peer = s.spawn(|| -> Result<(), String> {
            pin(b)?;
            let mut next = 1u64;
            loop {
                if !wait_for(&line, next) {
                    return Err(format!("no ping reached CPU {b} for {SILENT:?}"));
                }
                // The answer replaces exactly the ping: a STOP stored since
                // (the pinger giving up) stays.
                if line.0.compare_exchange(next, next + 1, Ordering::AcqRel, Ordering::Acquire).is_err() {
                    return Ok(());
                }
                next += 2;
            }
        });
        let pinged = (|| -> Result<(), String> {
            pin(a)?;
            let deadline = Instant::now() + Duration::from_millis(args.ms) + SILENT;
            let mut v = 1u64;
            // One untimed round trip: the peer thread started, pinned and
            // its CPU awake.
            let trip = |v: &mut u64| {
                line.0.store(*v, Ordering::Release);
                let answered = wait_for(&line, *v + 1);
                *v += 2;
                if answered {
                    Ok(())
                } else {
                    Err(format!("no answer from CPU {b} for {SILENT:?}"))
                }
            };
            trip(&mut v)?;
            for _ in 0..slices {
                let (t0, mut n) = (Instant::now(), 0u64);
                loop {
                    trip(&mut v)?;
                    n += 1;
                    // The clock is read every 16 round trips.
                    if n % 16 == 0 {
                        let now = Instant::now();
                        if now >= deadline {
                            return Err(format!(
                                "still measuring {SILENT:?} past --ms: CPU {b} answers too slowly (shared with \
                                 other busy threads?)"
                            ));
                        }
                        if now - t0 >= slice {
                            per_slice.push((now - t0).as_nanos() as f64 / n as f64);
                            break;
                        }
                    }
                }
            }
            Ok(())
        })();
        line.0.store(STOP, Ordering::Release);
        let answered = peer.join().map_err(|_| "the answering thread panicked".to_string())?;
        answered.and(pinged)
    });
    result?;
    let mut sorted = per_slice.clone();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let med = zcstack_examples::latency_windows::median(&sorted);
    let (min, max) = (sorted[0], sorted[n - 1]);
    println!(
        "linertt: CPU {a} <-> CPU {b}, {n} slices of {} ms: round trip min {min:.1} median {med:.1} max {max:.1} ns",
        args.slice_ms
    );
    let round = |x: f64| (x * 10.0).round() / 10.0;
    println!(
        "LINERTT {}",
        json!({"cpus": [a, b], "slices": n, "slice_ms": args.slice_ms,
               "min_ns": round(min), "median_ns": round(med), "max_ns": round(max),
               "slice_ns": per_slice.iter().map(|&x| round(x)).collect::<Vec<_>>()})
    );
    Ok(())
}
