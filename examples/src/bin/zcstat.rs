//! `zcstat`: attach to a running zcstack and show what it is doing, like
//! F-Stack's `ff_top`, `ff_traffic` and `ff_netstat`.
//!
//! The stack answers on its control socket (`/tmp/zcstack/<file_prefix>.sock`,
//! or under `ZCSTACK_RUN_DIR`); name it by `--conf` (the stack's config
//! file), `--prefix` (its `[dpdk] file_prefix`) or `--sock`.
//!
//! - `top`: usr/sys/idle % of the lcore loop per interval (ff_top).
//! - `traffic`: packets, bytes and drops per second on the port (ff_traffic).
//! - `netstat`: the TCP socket table (ff_netstat).
//! - `stats`: every non-zero counter; `--json` prints the raw reply.
//! - `stages`: cycles per stage of the request path (engine and run loop:
//!   calls, cycles/call, longest call, share of busy time) and the busy-pass
//!   quantiles, when the stack runs with `[dpdk] stage_cycles=1`.
//!
//! `top` and `traffic` print `--count` lines, one per `--interval` seconds.
//!
//! A deployment with several lcores (one stack each) answers on one socket
//! per lcore (`<prefix>.sock` for lcore 0, `<prefix>.lcore<i>.sock` for the
//! others; lcore 0 says how many there are). zcstat asks all of them and
//! shows each lcore and the sum: `top` and `traffic` a row per lcore and an
//! `all` row, `netstat` an `Lcore` column, `stats` the summed counters and a
//! per-lcore table (`--json`: `{"nb_lcores", "sum", "lcores"}`). With one
//! lcore the output is unchanged.
//!
//! An lcore that does not answer (a killed secondary process, an lcore
//! that stopped) does not fail the views: it is marked `not answering`
//! (stderr for `top`, `traffic`, `netstat` and `stages`; a line of `stats`;
//! `"not_answering"` in `--json`) and the sums are over the lcores that
//! answer. Only when none answers does zcstat fail.
//!
//! A closed stdout (`zcstat netstat | head`) ends zcstat quietly, exit 0.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::Value;

/// Writes to stdout; a reader that went away (EPIPE: `zcstat ... | head`)
/// ends zcstat quietly with status 0, any other write error with a message
/// and status 1. Never panics (std's `println!` does on EPIPE).
fn out(a: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if let Err(e) = std::io::stdout().lock().write_fmt(a) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("zcstat: stdout: {e}");
        std::process::exit(1);
    }
}

// Every view prints through `out` (these shadow std's macros in this file).
macro_rules! print {
    ($($t:tt)*) => { out(format_args!($($t)*)) };
}
macro_rules! println {
    () => { out(format_args!("\n")) };
    ($($t:tt)*) => { out(format_args!("{}\n", format_args!($($t)*))) };
}

#[derive(Debug, Parser)]
#[command(about = "Show a running zcstack's load, traffic and connections (ff_top / ff_traffic / ff_netstat)")]
struct Args {
    /// The running stack's config.ini (its [dpdk] file_prefix names it).
    #[arg(long = "conf", short = 'c', global = true)]
    conf: Option<String>,
    /// With --conf: which process of the config's group (`--proc-id` of
    /// the stack; process N > 0 uses the file prefix `<file_prefix>-<N>`).
    #[arg(long = "proc-id", global = true, default_value_t = 0)]
    proc_id: u32,
    /// The running stack's DPDK file prefix.
    #[arg(long, short = 'p', global = true)]
    prefix: Option<String>,
    /// The control socket's path.
    #[arg(long, global = true)]
    sock: Option<PathBuf>,
    #[command(subcommand)]
    view: View,
}

#[derive(Debug, Subcommand)]
enum View {
    /// usr/sys/idle % of the loop, per interval.
    Top {
        #[arg(long, short = 'd', default_value_t = 1.0)]
        interval: f64,
        #[arg(long, short = 'n', default_value_t = 5)]
        count: u32,
    },
    /// Port packets, bytes and drops per second, per interval.
    Traffic {
        #[arg(long, short = 'd', default_value_t = 1.0)]
        interval: f64,
        #[arg(long, short = 'n', default_value_t = 5)]
        count: u32,
    },
    /// The TCP socket table.
    Netstat {
        /// Rows at most.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// Cycles per stage of the request path (needs `[dpdk] stage_cycles=1`).
    Stages {
        /// Over this many seconds (two samples, the difference shown);
        /// 0: everything since the stack started.
        #[arg(long, short = 'd', default_value_t = 0.0)]
        interval: f64,
    },
    /// Every non-zero counter.
    Stats {
        /// The raw JSON reply instead.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zcstat: {e}");
            ExitCode::FAILURE
        }
    }
}

fn socket(args: &Args) -> Result<PathBuf, String> {
    if let Some(s) = &args.sock {
        return Ok(s.clone());
    }
    let prefix = match (&args.prefix, &args.conf) {
        (Some(p), _) => p.clone(),
        (None, Some(c)) => {
            let conf = dpdk_glue::config::Config::load(c).map_err(|e| e.to_string())?;
            let rt = conf.runtime_for_proc(args.proc_id).map_err(|e| e.to_string())?;
            return rt.control.ok_or_else(|| format!("{c}: no control socket configured"));
        }
        (None, None) => return Err("name the stack: --conf FILE, --prefix FILE_PREFIX or --sock PATH".into()),
    };
    Ok(dpdk_glue::control::control_path(&prefix))
}

fn sample(path: &Path, max_sockets: usize) -> Result<Value, String> {
    let reply = dpdk_glue::control::query(path, &format!("stats {max_sockets}"), Duration::from_secs(10))
        .map_err(|e| format!("{}: {e} (is the stack running?)", path.display()))?;
    let v: Value = serde_json::from_str(&reply).map_err(|e| format!("bad reply from {}: {e}", path.display()))?;
    match v.get("error") {
        Some(e) => Err(format!("the stack refused the request: {e}")),
        None => Ok(v),
    }
}

/// Most lcores one deployment is asked about (DPDK's RTE_MAX_LCORE).
const MAX_LCORES: usize = 128;

/// The control sockets of every lcore of the stack answering on `main`:
/// lcore 0 tells how many lcores run (`nb_lcores`); lcore `i > 0` answers
/// on `<stem>.lcore<i>.sock` ([`dpdk_glue::control::lcore_control_path`]).
fn lcore_paths(main: &Path) -> Result<Vec<PathBuf>, String> {
    let first = sample(main, 0)?;
    let n = (u(&first, &["nb_lcores"]) as usize).clamp(1, MAX_LCORES);
    Ok((0..n).map(|i| dpdk_glue::control::lcore_control_path(main, i)).collect())
}

/// One sample of every lcore, in lcore order. An lcore that does not
/// answer gets `{"lcore_index": i, "not_answering": "<why>"}` in its place
/// ([`dead`]); errors only when no lcore answers.
fn sample_all(paths: &[PathBuf], max_sockets: usize) -> Result<Vec<Value>, String> {
    let all: Vec<Value> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            sample(p, max_sockets).unwrap_or_else(|e| serde_json::json!({"lcore_index": i, "not_answering": e}))
        })
        .collect();
    if all.iter().all(dead) {
        let why = all.first().map_or(String::new(), |v| v["not_answering"].as_str().unwrap_or("").to_owned());
        return Err(format!("no lcore answers: {why}"));
    }
    Ok(all)
}

/// Whether `v` is the placeholder of an lcore that did not answer.
fn dead(v: &Value) -> bool {
    v.get("not_answering").is_some()
}

/// The lcores of `all` that did not answer, as `(index, why)`.
fn not_answering(all: &[Value]) -> Vec<(usize, String)> {
    all.iter()
        .enumerate()
        .filter(|(_, v)| dead(v))
        .map(|(i, v)| (i, v["not_answering"].as_str().unwrap_or("?").to_owned()))
        .collect()
}

/// Tells on stderr which lcores did not answer (sums are over the others).
fn warn_not_answering(all: &[Value]) {
    let silent = not_answering(all);
    let live = all.len() - silent.len();
    for (i, why) in silent {
        eprintln!("zcstat: lcore {i} not answering ({why}); shown: the {live} of {} lcores that answer", all.len());
    }
}

/// Adds the numbers of `b` into `a`, field by field (objects recursively;
/// anything else keeps `a`'s value, or takes `b`'s where `a` has none).
fn add_into(a: &mut Value, b: &Value) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, x) in b {
                match a.get_mut(k) {
                    Some(y) => add_into(y, x),
                    None => {
                        a.insert(k.clone(), x.clone());
                    }
                }
            }
        }
        (a @ Value::Number(_), Value::Number(b)) => {
            *a = match (a.as_u64(), b.as_u64()) {
                (Some(x), Some(y)) => Value::from(x.saturating_add(y)),
                _ => Value::from(a.as_f64().unwrap_or(0.0) + b.as_f64().unwrap_or(0.0)),
            };
        }
        (a @ Value::Null, b) => *a = b.clone(),
        _ => {}
    }
}

/// The whole deployment as one sample: counters, cycles, pages and
/// connections summed over `lcores`; the port's own counters (one port
/// shared by every lcore) and identity fields from lcore 0; uptime the
/// longest; sockets of every lcore.
/// Lcores that did not answer ([`dead`]) are left out.
fn sum(lcores: &[Value]) -> Value {
    let mut live = lcores.iter().filter(|v| !dead(v));
    let Some(first) = live.next() else { return Value::Null };
    let mut out = first.clone();
    for v in live {
        for k in ["cycles", "device", "pages", "stack", "steer", "tcp_connections"] {
            if let (Some(a), Some(b)) = (out.get_mut(k), v.get(k)) {
                add_into(a, b);
            }
        }
        out["uptime_us"] = Value::from(u(&out, &["uptime_us"]).max(u(v, &["uptime_us"])));
        if let (Some(a), Some(b)) = (out["sockets"].as_array_mut(), v["sockets"].as_array()) {
            a.extend(b.iter().cloned());
        }
    }
    out
}

fn u(v: &Value, path: &[&str]) -> u64 {
    path.iter().fold(v, |v, k| &v[*k]).as_u64().unwrap_or(0)
}

/// usr/sys/idle %, loops/s and busy % between two samples of one lcore (or of the sum).
fn top_row(prev: &Value, cur: &Value, secs: f64) -> String {
    let d = |k: &str| u(cur, &["cycles", k]).saturating_sub(u(prev, &["cycles", k])) as f64;
    let total = (d("usr") + d("sys") + d("idle")).max(1.0);
    format!(
        "{:>8.2} {:>8.2} {:>8.2} {:>12.0} {:>10.2}",
        100.0 * d("usr") / total,
        100.0 * d("sys") / total,
        100.0 * d("idle") / total,
        d("loops") / secs,
        100.0 * d("busy_loops") / d("loops").max(1.0)
    )
}

/// Seconds between two samples by the stack's clock.
fn secs_between(prev: &Value, cur: &Value) -> f64 {
    (u(cur, &["uptime_us"]).saturating_sub(u(prev, &["uptime_us"])) as f64 / 1e6).max(1e-6)
}

/// Drops of one sample: the stack's `drop_*` counters and the port's and
/// device's losses.
fn drops(v: &Value) -> u64 {
    let stack: u64 = v["stack"]
        .as_object()
        .map(|m| m.iter().filter(|(k, _)| k.starts_with("drop_")).filter_map(|(_, x)| x.as_u64()).sum())
        .unwrap_or(0);
    stack + u(v, &["port", "imissed"]) + u(v, &["port", "rx_nombuf"]) + u(v, &["device", "rx_l4_bad"])
}

/// The label column of a per-lcore row.
fn label(i: Option<usize>) -> String {
    i.map_or("all".to_owned(), |i| i.to_string())
}

fn run(args: Args) -> Result<(), String> {
    let main = socket(&args)?;
    let paths = lcore_paths(&main)?;
    let many = paths.len() > 1;
    match args.view {
        View::Top { interval, count } => {
            let mut prev = sample_all(&paths, 0)?;
            warn_not_answering(&prev);
            let lc = if many { format!("{:>6} ", "lcore") } else { String::new() };
            println!("{lc}{:>8} {:>8} {:>8} {:>12} {:>10}", "usr%", "sys%", "idle%", "loops/s", "busy%");
            for _ in 0..count {
                std::thread::sleep(Duration::from_secs_f64(interval.max(0.05)));
                let cur = sample_all(&paths, 0)?;
                if many {
                    for (i, (p, c)) in prev.iter().zip(&cur).enumerate() {
                        if dead(p) || dead(c) {
                            println!("{:>6} not answering", label(Some(i)));
                            continue;
                        }
                        println!("{:>6} {}", label(Some(i)), top_row(p, c, secs_between(p, c)));
                    }
                    let (p, c) = (sum(&prev), sum(&cur));
                    println!("{:>6} {}", label(None), top_row(&p, &c, secs_between(&p, &c)));
                } else {
                    println!("{}", top_row(&prev[0], &cur[0], secs_between(&prev[0], &cur[0])));
                }
                prev = cur;
            }
        }
        View::Traffic { interval, count } => {
            let mut prev = sample_all(&paths, 0)?;
            warn_not_answering(&prev);
            let lc = if many { format!("{:>6} ", "lcore") } else { String::new() };
            println!(
                "{lc}{:>12} {:>12} {:>14} {:>14} {:>10} {:>10}",
                "rx pkts/s", "tx pkts/s", "rx bytes/s", "tx bytes/s", "drops/s", "errors/s"
            );
            for _ in 0..count {
                std::thread::sleep(Duration::from_secs_f64(interval.max(0.05)));
                let cur = sample_all(&paths, 0)?;
                let (p, c) = (sum(&prev), sum(&cur));
                let secs = secs_between(&p, &c);
                let rate = |p: &Value, c: &Value, v: &dyn Fn(&Value) -> u64| v(c).saturating_sub(v(p)) as f64 / secs;
                let errors = |v: &Value| u(v, &["port", "ierrors"]) + u(v, &["port", "oerrors"]);
                if many {
                    // Per lcore: frames its queue received (before steering)
                    // and its stack sent; bytes are the port's only.
                    for (i, (p, c)) in prev.iter().zip(&cur).enumerate() {
                        if dead(p) || dead(c) {
                            println!("{:>6} not answering", label(Some(i)));
                            continue;
                        }
                        let stack_drops =
                            |v: &Value| drops(v) - u(v, &["port", "imissed"]) - u(v, &["port", "rx_nombuf"]);
                        println!(
                            "{:>6} {:>12.0} {:>12.0} {:>14} {:>14} {:>10.0} {:>10}",
                            label(Some(i)),
                            rate(p, c, &|v| u(v, &["device", "rx_frames"])),
                            rate(p, c, &|v| u(v, &["stack", "tx_frames"])),
                            "-",
                            "-",
                            rate(p, c, &stack_drops),
                            "-"
                        );
                    }
                }
                println!(
                    "{}{:>12.0} {:>12.0} {:>14.0} {:>14.0} {:>10.0} {:>10.0}",
                    if many { format!("{:>6} ", label(None)) } else { String::new() },
                    rate(&p, &c, &|v| u(v, &["port", "ipackets"])),
                    rate(&p, &c, &|v| u(v, &["port", "opackets"])),
                    rate(&p, &c, &|v| u(v, &["port", "ibytes"])),
                    rate(&p, &c, &|v| u(v, &["port", "obytes"])),
                    rate(&p, &c, &drops),
                    rate(&p, &c, &errors)
                );
                prev = cur;
            }
        }
        View::Netstat { limit } => {
            let all = sample_all(&paths, limit)?;
            warn_not_answering(&all);
            let lc = if many { format!("{:<6}", "Lcore") } else { String::new() };
            println!(
                "{lc}{:<6}{:>8} {:>8}  {:<22} {:<22} State",
                "Proto", "Recv-Q", "Send-Q", "Local Address", "Foreign Address"
            );
            let mut shown = 0u64;
            for (i, v) in all.iter().enumerate() {
                let rows = v["sockets"].as_array().cloned().unwrap_or_default();
                for s in &rows {
                    println!(
                        "{}{:<6}{:>8} {:>8}  {:<22} {:<22} {}",
                        if many { format!("{i:<6}") } else { String::new() },
                        "tcp",
                        u(s, &["recv_q"]),
                        u(s, &["send_q"]),
                        s["local"].as_str().unwrap_or("?"),
                        s["remote"].as_str().unwrap_or("*:*"),
                        s["state"].as_str().unwrap_or("?").to_ascii_uppercase()
                    );
                }
                shown += rows.len() as u64;
            }
            let total: u64 = all.iter().map(|v| u(v, &["tcp_connections"])).sum();
            if shown < total {
                println!("({shown} of {total} connections shown; --limit raises it)");
            }
        }
        View::Stages { interval } => {
            // Each lcore's stages (they are per stack; a sum would mix them).
            let first = sample_all(&paths, 0)?;
            warn_not_answering(&first);
            if first.iter().all(|v| v["stages"].is_null()) {
                return Err("the stack runs without stage counters: set [dpdk] stage_cycles=1".into());
            }
            let (cur, prev) = if interval > 0.0 {
                std::thread::sleep(Duration::from_secs_f64(interval));
                (sample_all(&paths, 0)?, Some(first))
            } else {
                (first, None)
            };
            for (i, c) in cur.iter().enumerate() {
                if many {
                    println!("{}lcore {i}:", if i > 0 { "\n" } else { "" });
                }
                if dead(c) {
                    println!("not answering");
                    continue;
                }
                print_stages(c, prev.as_ref().and_then(|p| p.get(i)));
            }
        }
        View::Stats { json } => {
            let all = sample_all(&paths, 0)?;
            let v = sum(&all);
            let silent = not_answering(&all);
            if json {
                if many {
                    let idx: Vec<usize> = silent.iter().map(|(i, _)| *i).collect();
                    println!(
                        "{}",
                        serde_json::json!({"nb_lcores": all.len(), "not_answering": idx, "sum": v, "lcores": all})
                    );
                } else {
                    println!("{v}");
                }
                return Ok(());
            }
            if many {
                println!(
                    "pid {} lcores {} (cpus {}) uptime {:.1} s",
                    u(&v, &["pid"]),
                    all.len(),
                    all.iter()
                        .map(|l| l["cpu"].as_u64().map_or("-".to_owned(), |c| c.to_string()))
                        .collect::<Vec<_>>()
                        .join(","),
                    u(&v, &["uptime_us"]) as f64 / 1e6
                );
                for (i, why) in &silent {
                    println!("lcore {i}: not answering ({why})");
                }
                if !silent.is_empty() {
                    println!(
                        "sums below are over the {} of {} lcores that answer",
                        all.len() - silent.len(),
                        all.len()
                    );
                }
            } else {
                println!(
                    "pid {} lcore {} cpu {} uptime {:.1} s",
                    u(&v, &["pid"]),
                    u(&v, &["lcore"]),
                    v["cpu"].as_u64().map_or("-".to_owned(), |c| c.to_string()),
                    u(&v, &["uptime_us"]) as f64 / 1e6
                );
            }
            let sections: &[&str] = if many {
                &["port", "device", "pages", "stack", "steer"]
            } else {
                &["port", "device", "pages", "stack"]
            };
            for (k, x) in counters(&v, sections) {
                println!("{k} = {x}");
            }
            if many {
                per_lcore_table(&all);
            }
        }
    }
    Ok(())
}

/// The non-zero counters (and strings) of `v`'s `sections`, as
/// `(section.key[.key2], value)` in order.
fn counters(v: &Value, sections: &[&str]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for section in sections {
        let Some(m) = v[*section].as_object() else { continue };
        for (k, x) in m {
            match x {
                Value::Number(n) if n.as_u64() != Some(0) => out.push((format!("{section}.{k}"), n.to_string())),
                Value::String(s) => out.push((format!("{section}.{k}"), s.clone())),
                Value::Object(o) => {
                    for (k2, x2) in o.iter().filter(|(_, x2)| x2.as_u64().is_some_and(|n| n > 0)) {
                        out.push((format!("{section}.{k}.{k2}"), x2.to_string()));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

/// One row per counter that is non-zero on some lcore: its value on
/// each lcore and the sum (the port's counters are shared, so not here).
fn per_lcore_table(all: &[Value]) {
    let sections = ["device", "stack", "steer"];
    let mut names: Vec<String> = Vec::new();
    for v in all {
        for (k, x) in counters(v, &sections) {
            if x.parse::<u64>().is_ok() && !names.contains(&k) {
                names.push(k);
            }
        }
    }
    let width = names.iter().map(String::len).max().unwrap_or(8).max(8);
    print!("\nper lcore:\n{:<width$}", "counter");
    for i in 0..all.len() {
        print!(" {:>14}", format!("lcore {i}"));
    }
    println!(" {:>14}", "sum");
    for k in &names {
        let path: Vec<&str> = k.split('.').collect();
        print!("{k:<width$}");
        for v in all {
            if dead(v) {
                print!(" {:>14}", "-");
            } else {
                print!(" {:>14}", u(v, &path));
            }
        }
        println!(" {:>14}", all.iter().filter(|v| !dead(v)).map(|v| u(v, &path)).sum::<u64>());
    }
}

/// One line per stage: calls, cycles per call, longest call and share of
/// the busy time (stages nested in an engine stage, and spans across stages
/// such as `turnaround`, are marked "(in)" and left out
/// of the shares); then the busy passes. `prev`: show the difference.
fn print_stages(cur: &Value, prev: Option<&Value>) {
    let d = |group: &str, stage: &str, k: &str| {
        u(cur, &["stages", group, stage, k]).saturating_sub(prev.map_or(0, |p| u(p, &["stages", group, stage, k])))
    };
    let mut rows = Vec::new();
    for group in ["engine", "loop"] {
        let Some(m) = cur["stages"][group].as_object() else { continue };
        for (name, v) in m {
            let nested = v["nested"].as_bool().unwrap_or(false);
            // A max over the interval is not derivable: the max since start.
            rows.push((group, name.clone(), d(group, name, "calls"), d(group, name, "cycles"), u(v, &["max"]), nested));
        }
    }
    let total: u64 = rows.iter().filter(|r| !r.5).map(|r| r.3).sum::<u64>().max(1);
    let hz = u(cur, &["tsc_hz"]).max(1) as f64;
    println!(
        "{:<8} {:<14} {:>12} {:>12} {:>12} {:>9} {:>7}",
        "group", "stage", "calls", "cycles/call", "max", "max us", "share%"
    );
    for (group, name, calls, cycles, max, nested) in &rows {
        let share = if *nested { "(in)".to_owned() } else { format!("{:.1}", 100.0 * *cycles as f64 / total as f64) };
        println!(
            "{:<8} {:<14} {:>12} {:>12} {:>12} {:>9.2} {:>7}",
            group,
            name,
            calls,
            cycles.checked_div(*calls).unwrap_or(0),
            max,
            *max as f64 * 1e6 / hz,
            share
        );
    }
    let p = &cur["stages"]["passes"];
    println!(
        "busy passes since start {}: mean {} cycles, p50 <= {}, p99 <= {}, p99.9 <= {}, max {} cycles ({:.2} us)",
        u(p, &["calls"]),
        u(p, &["cycles"]).checked_div(u(p, &["calls"])).unwrap_or(0),
        u(p, &["p50"]),
        u(p, &["p99"]),
        u(p, &["p999"]),
        u(p, &["max"]),
        u(p, &["max"]) as f64 * 1e6 / hz
    );
}
