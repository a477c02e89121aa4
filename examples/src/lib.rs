//! Start-up shared by the examples: logging, `config.ini` to a running
//! [`Runtime`], and exit codes.

pub mod latency_windows;

use std::error::Error;
use std::process::ExitCode;

use dpdk_glue::config::Config;
use dpdk_glue::plan::ProcRole;
use dpdk_glue::{Deployment, Runtime};

/// F-Stack's `init(argc, argv)` options, shared by the servers:
/// `-c/--conf FILE`, `--proc-type` and `--proc-id`.
#[derive(Debug, clap::Args)]
pub struct FstackArgs {
    /// F-Stack-style config.ini.
    #[arg(long = "conf", short = 'c')]
    pub conf: String,
    /// F-Stack's --proc-type. `primary`/`secondary`: one process per lcore
    /// of `lcore_mask` sharing the ports (the primary configures them and
    /// runs lcore `--proc-id`'s stack, secondaries attach and run theirs);
    /// `auto` (or `--proc-id` alone): a process with its own EAL, stack
    /// and port (the `proc-id`-th of `port_list`).
    #[arg(long = "proc-type", value_parser = ["primary", "secondary", "auto"])]
    pub proc_type: Option<String>,
    /// F-Stack's --proc-id: this process runs on the N-th lcore of
    /// `lcore_mask` and serves the N-th port of `port_list` (default 0).
    #[arg(long = "proc-id", default_value_t = 0)]
    pub proc_id: u32,
}

/// `tracing` to stderr, filtered by `RUST_LOG`.
pub fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
}

/// Loads `path`, prints its report of F-Stack keys zcstack does not
/// implement, starts the runtime of process `proc_id` (its lcore and port,
/// see `Config::runtime_for_proc`), and makes SIGINT/SIGTERM stop its loop
/// cleanly.
pub fn runtime_from_conf(tool: &str, path: &str, proc_id: u32) -> Result<Runtime, Box<dyn Error>> {
    let conf = Config::load(path)?;
    for line in conf.report_lines() {
        eprintln!("{tool}: {line}");
    }
    // A failure DPDK reports only now still names the keys that set it up.
    let rt = Runtime::init(&conf.runtime_for_proc(proc_id)?).map_err(|e| conf.startup_error(proc_id, &e))?;
    rt.stop_handle().stop_on_signals();
    Ok(rt)
}

/// Loads `path` (printing its report) and runs `app` on every lcore of
/// `lcore_mask` (the plan of `Config::deploy_plan`), each with its own [`Runtime`] serving its queue of the
/// port; returns their results in lcore order. With
/// `--proc-type=primary|secondary --proc-id=i` (F-Stack's multi-process
/// form, one process per lcore sharing the ports), `app` runs once on lcore
/// `i`'s queue; one lcore is the same plan with N = 1 (so a probed NIC port
/// works there too); with `--proc-type=auto`/`--proc-id` alone (a process
/// with its own virtual port), once on the runtime [`runtime_from_conf`]
/// starts. SIGINT/SIGTERM stop every loop.
pub fn launch_from_conf<T: Send>(
    tool: &str,
    path: &str,
    fstack: &FstackArgs,
    app: impl Fn(&mut Runtime) -> T + Sync,
) -> Result<Vec<T>, Box<dyn Error>> {
    let conf = Config::load(path)?;
    if let Some(kind @ ("primary" | "secondary")) = fstack.proc_type.as_deref() {
        return launch_role(tool, &conf, kind, fstack.proc_id, app);
    }
    // F-Stack's own-port process model (`--proc-type=auto`, or `--proc-id`
    // alone): process N has its own EAL and serves the N-th port. Every
    // other form, one lcore included (N = 1), is a deployment plan.
    if fstack.proc_type.as_deref() == Some("auto") || fstack.proc_id > 0 {
        drop(conf);
        let mut rt = runtime_from_conf(tool, path, fstack.proc_id)?;
        return Ok(vec![app(&mut rt)]);
    }
    for line in conf.report_lines() {
        eprintln!("{tool}: {line}");
    }
    let mut plan = conf.deploy_plan(ProcRole::Single)?;
    if conf.dpdk.no_huge {
        // Without hugepages `memory` is plain process memory: make room
        // for every lcore's page array and pools (each lcore has its own).
        let n = plan.lcores.len() as u32;
        let per_lcore = plan.lcore.page_array_mb as u32 + 128;
        plan.eal.memory_mb = plan.eal.memory_mb.map(|m| m.max(256 + n * per_lcore));
    }
    let mut d = Deployment::init(&plan).map_err(|e| conf.startup_error(0, &e))?;
    Ok(d.launch(|rt| {
        rt.stop_handle().stop_on_signals();
        app(rt)
    })?)
}

/// F-Stack's multi-process form: this process is `kind` (`primary` or
/// `secondary`) with `--proc-id` `proc_id` of a group with one process per
/// lcore of `lcore_mask` (see `Config::deploy_plan`); `app` runs once, on
/// this process's lcore and queue.
fn launch_role<T: Send>(
    tool: &str,
    conf: &Config,
    kind: &str,
    proc_id: u32,
    app: impl Fn(&mut Runtime) -> T + Sync,
) -> Result<Vec<T>, Box<dyn Error>> {
    for line in conf.report_lines() {
        eprintln!("{tool}: {line}");
    }
    let nb_procs = conf.dpdk.lcore_mask.count_ones();
    let role = if kind == "primary" {
        ProcRole::Primary { proc_id, nb_procs }
    } else {
        ProcRole::Secondary { proc_id, nb_procs }
    };
    let plan = conf.deploy_plan(role)?;
    let mut d = Deployment::init(&plan).map_err(|e| conf.startup_error(0, &e))?;
    Ok(d.launch(|rt| {
        rt.stop_handle().stop_on_signals();
        app(rt)
    })?)
}

/// Sums the numeric fields of per-lcore JSON objects (non-numbers are taken
/// from the first), for the examples' summaries.
pub fn sum_json(per: &[serde_json::Value]) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for v in per {
        let Some(o) = v.as_object() else { continue };
        for (k, x) in o {
            match (out.get(k), x) {
                (Some(serde_json::Value::Number(a)), serde_json::Value::Number(b)) => {
                    let sum = if let (Some(a), Some(b)) = (a.as_u64(), b.as_u64()) {
                        serde_json::json!(a + b)
                    } else {
                        serde_json::json!(a.as_f64().unwrap_or(0.0) + b.as_f64().unwrap_or(0.0))
                    };
                    out.insert(k.clone(), sum);
                }
                (Some(serde_json::Value::Bool(a)), serde_json::Value::Bool(b)) => {
                    let v = serde_json::Value::Bool(*a && *b);
                    out.insert(k.clone(), v);
                }
                (None, _) => {
                    out.insert(k.clone(), x.clone());
                }
                _ => {}
            }
        }
    }
    serde_json::Value::Object(out)
}

/// The process exit code for `r`, printing the error.
pub fn exit(tool: &str, r: Result<(), Box<dyn Error>>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{tool}: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Latency recorder for the load generators: an HdrHistogram of
/// nanoseconds (1 ns to 60 s, 3 significant digits), every sample kept;
/// read back in µs with sub-µs resolution (a 6.4 µs median is not a 6).
#[derive(Debug)]
pub struct Latency(hdrhistogram::Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Latency(hdrhistogram::Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds"))
    }
}

impl Latency {
    /// Records one sample of `ns` nanoseconds, clamped into the range.
    pub fn record_ns(&mut self, ns: u64) {
        self.0.saturating_record(ns.max(1));
    }

    /// Records one sample of `us` microseconds, clamped into the range.
    pub fn record_us(&mut self, us: u64) {
        self.record_ns(us.saturating_mul(1000));
    }

    /// Adds every sample of `other` (another lcore's recorder).
    pub fn merge(&mut self, other: &Latency) {
        // Both have the same bounds, so adding cannot fail.
        let _ = self.0.add(&other.0);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.0.len()
    }

    /// The value at percentile `p` (0..=100), µs to 0.01 µs (the
    /// histogram's 3 significant digits); 0 with no samples.
    pub fn percentile(&self, p: f64) -> f64 {
        if self.0.is_empty() {
            0.0
        } else {
            us(self.0.value_at_percentile(p))
        }
    }

    /// The largest sample, µs.
    pub fn max(&self) -> f64 {
        us(self.0.max())
    }
}

/// `ns` nanoseconds in µs, rounded to 0.01 µs.
fn us(ns: u64) -> f64 {
    (ns as f64 / 10.0).round() / 100.0
}

#[cfg(test)]
mod latency_tests {
    use super::Latency;

    #[test]
    fn percentiles_keep_sub_microsecond_resolution() {
        let mut l = Latency::default();
        for i in 0..100u64 {
            // 6.00, 6.05, ... 10.95 µs
            l.record_ns(6_000 + i * 50);
        }
        l.record_us(40);
        assert_eq!(l.count(), 101);
        let p50 = l.percentile(50.0);
        assert!((8.4..=8.6).contains(&p50), "p50 {p50}");
        assert!((40.0..40.1).contains(&l.max()), "max {}", l.max());
        assert_eq!(Latency::default().percentile(99.0), 0.0);
    }
}

/// What the guest kernel's scheduler did to the calling thread (Linux's
/// `/proc/thread-self/schedstat` and `status`): the time it was runnable
/// but another task ran on its CPU, and how often it was preempted. A
/// busy-polling lcore is never idle, so this is the time something else on
/// the machine took from it (a kernel thread sharing the CPU). Time the
/// hypervisor takes from the whole vCPU (steal) does not show here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadSched {
    /// Nanoseconds spent waiting on a run queue (schedstat's second field).
    pub runq_wait_ns: u64,
    /// Involuntary context switches (`nonvoluntary_ctxt_switches`).
    pub preempted: u64,
}

impl ThreadSched {
    /// The calling thread's figures now; `None` where the kernel does not
    /// give them (no `/proc/thread-self`, schedstat or status field).
    pub fn now() -> Option<ThreadSched> {
        let runq_wait_ns =
            std::fs::read_to_string("/proc/thread-self/schedstat").ok()?.split_whitespace().nth(1)?.parse().ok()?;
        let preempted = std::fs::read_to_string("/proc/thread-self/status")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))?
            .trim()
            .parse()
            .ok()?;
        Some(ThreadSched { runq_wait_ns, preempted })
    }

    /// The figures since `start` (read on the same thread); `None` when
    /// either reading is missing.
    pub fn since(start: Option<ThreadSched>) -> Option<ThreadSched> {
        let (s, n) = (start?, ThreadSched::now()?);
        Some(ThreadSched {
            runq_wait_ns: n.runq_wait_ns.saturating_sub(s.runq_wait_ns),
            preempted: n.preempted.saturating_sub(s.preempted),
        })
    }

    /// Run-queue wait in milliseconds, for the JSON reports (`runq_wait_ms`).
    pub fn runq_wait_ms(&self) -> f64 {
        self.runq_wait_ns as f64 / 1e6
    }
}

/// What `[impair]` did to the port's frames, for the JSON reports:
/// `{"dropped", "reordered", "delayed"}` summed over both directions.
pub fn impaired(s: &dpdk_glue::EthDeviceStats) -> serde_json::Value {
    let (rx, tx) = (s.rx_impaired, s.tx_impaired);
    serde_json::json!({
        "dropped": rx.dropped + tx.dropped,
        "reordered": rx.reordered + tx.reordered,
        "delayed": rx.delayed + tx.delayed,
    })
}

/// Whether `hay` starts with `lower` (lower-case ASCII: letters, digits,
/// punctuation), ASCII case ignored in `hay`: the per-request header-name
/// test of the HTTP examples. Eight bytes per step (the last step overlaps
/// the one before it); only the needle's letters are folded, so it is
/// exactly `hay[..n].eq_ignore_ascii_case(lower)` without a byte loop.
pub fn starts_with_ci(hay: &[u8], lower: &[u8]) -> bool {
    debug_assert!(lower.is_ascii() && !lower.iter().any(u8::is_ascii_uppercase), "needle must be lower case");
    let n = lower.len();
    if hay.len() < n {
        return false;
    }
    if n < 8 {
        return hay[..n].iter().zip(lower).all(|(h, l)| h.to_ascii_lowercase() == *l);
    }
    let mut next = 0;
    loop {
        let at = next.min(n - 8);
        let l = word(lower, at);
        if word(hay, at) | letter_bits(l) != l {
            return false;
        }
        if at == n - 8 {
            return true;
        }
        next += 8;
    }
}

/// The 8 bytes of `b` from `at` as one word (one load; callers keep
/// `at + 8 <= b.len()`).
#[inline(always)]
fn word(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8).and_then(|w| w.try_into().ok()).map_or(0, u64::from_le_bytes)
}

/// 0x20 in each byte of `w` (ASCII) that is a lower-case letter, else 0:
/// the bit that folds an upper-case letter onto it. Per byte, `b + 0x1f`
/// reaches 0x80 from `a` on and `b + 0x05` from `{` on; no carry crosses
/// bytes because every byte is below 0x80.
fn letter_bits(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    (w.wrapping_add(ONES * 0x1f) & !w.wrapping_add(ONES * 0x05) & (ONES * 0x80)) >> 2
}

#[cfg(test)]
mod tests {
    use super::starts_with_ci;

    #[test]
    fn thread_sched_counts_up_for_this_thread() {
        // Linux with /proc (every machine the suite runs on) gives both.
        let a = super::ThreadSched::now().expect("/proc/thread-self/schedstat and status");
        // Yielding a few thousand times may or may not be preempted; the
        // figures must be read and must not go back.
        for _ in 0..2000 {
            std::thread::yield_now();
        }
        let b = super::ThreadSched::now().unwrap();
        assert!(b.runq_wait_ns >= a.runq_wait_ns && b.preempted >= a.preempted, "{a:?} {b:?}");
        let d = super::ThreadSched::since(Some(a)).unwrap();
        assert!(d.runq_wait_ns >= b.runq_wait_ns - a.runq_wait_ns && d.preempted >= b.preempted - a.preempted);
        assert_eq!(d.runq_wait_ms(), d.runq_wait_ns as f64 / 1e6);
        assert_eq!(super::ThreadSched::since(None), None, "no start, no figures");
    }

    #[test]
    fn case_insensitive_prefix_equals_the_byte_by_byte_test() {
        for needle in
            [&b"connection:"[..], b"content-length:", b"http/1.", b"get ", b"keep-alive", b"x-0123456789-abcdef:"]
        {
            // Every byte value at every position, on the needle and on its
            // upper-case form, and a hay one byte short.
            for base in [needle.to_vec(), needle.to_ascii_uppercase()] {
                for i in 0..needle.len() {
                    for b in 0..=255u8 {
                        let mut hay = base.clone();
                        hay[i] = b;
                        hay.extend_from_slice(b" tail");
                        let want = hay[..needle.len()].eq_ignore_ascii_case(needle);
                        assert_eq!(starts_with_ci(&hay, needle), want, "{:?} vs {:?}", hay, needle);
                    }
                }
                assert!(!starts_with_ci(&base[..needle.len() - 1], needle), "shorter than the needle");
                assert!(starts_with_ci(&base, needle));
            }
        }
    }
}
