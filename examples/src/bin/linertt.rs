//! `linertt`: how long one cache line takes to go from one CPU to another
//! and back, measured now.
//!
//! Every exchange between two busy-polling lcores (a virtio-user port and
//! its vhost peer, an application and its stack on another core) moves
//! cache lines between their CPUs: ring indexes, descriptors, packet data.
//! On a VM the host decides where the two vCPUs run, and that can change
//! from second to second: on one machine class here the same two vCPUs
//! bounced a line in ~80 ns in one second and ~350 ns in the next (two
//! cores of one L3 against cores that share none). A latency benchmark
//! that crosses lines a dozen times per round trip moves with it, so
//! `ci/bench` runs this next to its latency rounds and prints the figure.
//!
//! Two threads, pinned to `--cpus A,B`, pass a counter back and forth in one
//! 64-byte-aligned line for `--ms` milliseconds, timing each `--slice-ms`
//! slice on its own (round trips per slice over its monotonic-clock time).
//! The report gives the slices' fastest, median and slowest round trip in
//! nanoseconds as text and as `LINERTT {json}`. Bounded: the run stops
//! after `--ms`, and a peer that does not answer for a second (its CPU
//! never ran it) ends it with an error.

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
    /// Milliseconds to measure.
    #[arg(long, default_value_t = 200)]
    ms: u64,
    /// Milliseconds per timed slice.
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
    let ids = core_affinity::get_core_ids().ok_or("cannot read this process's CPUs")?;
    let id =
        ids.into_iter().find(|c| c.id == cpu).ok_or_else(|| format!("CPU {cpu} is not one this process may run on"))?;
    if core_affinity::set_for_current(id) {
        Ok(())
    } else {
        Err(format!("cannot pin a thread to CPU {cpu}"))
    }
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
    if args.slice_ms == 0 || args.ms < args.slice_ms || args.ms > 60_000 {
        return Err("--slice-ms must be at least 1 and --ms between it and 60000".into());
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
                if line.0.load(Ordering::Acquire) == STOP {
                    return Ok(());
                }
                line.0.store(next + 1, Ordering::Release);
                next += 2;
            }
        });
        let pinged = (|| -> Result<(), String> {
            pin(a)?;
            let mut v = 1u64;
            for _ in 0..slices {
                let (t0, mut n) = (Instant::now(), 0u64);
                loop {
                    line.0.store(v, Ordering::Release);
                    if !wait_for(&line, v + 1) {
                        return Err(format!("no answer from CPU {b} for {SILENT:?}"));
                    }
                    v += 2;
                    n += 1;
                    // The clock is read every 16 round trips (it costs
                    // less than one).
                    if n % 16 == 0 && t0.elapsed() >= slice {
                        break;
                    }
                }
                per_slice.push(t0.elapsed().as_nanos() as f64 / n as f64);
            }
            Ok(())
        })();
        line.0.store(STOP, Ordering::Release);
        let answered = peer.join().map_err(|_| "the answering thread panicked".to_string())?;
        answered.and(pinged)
    });
    result?;
    per_slice.sort_by(f64::total_cmp);
    let (min, med, max) = (per_slice[0], per_slice[per_slice.len() / 2], per_slice[per_slice.len() - 1]);
    println!(
        "linertt: CPU {a} <-> CPU {b}, {} slices of {} ms: round trip min {min:.1} median {med:.1} max {max:.1} ns",
        per_slice.len(),
        args.slice_ms
    );
    println!(
        "LINERTT {}",
        json!({"cpus": [a, b], "slices": per_slice.len(), "slice_ms": args.slice_ms,
               "min_ns": min, "median_ns": med, "max_ns": max})
    );
    Ok(())
}
