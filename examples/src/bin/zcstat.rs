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

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde_json::Value;

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
    let reply = dpdk_glue::control::query(path, &format!("stats {max_sockets}"), Duration::from_secs(3))
        .map_err(|e| format!("{}: {e} (is the stack running?)", path.display()))?;
    let v: Value = serde_json::from_str(&reply).map_err(|e| format!("bad reply from {}: {e}", path.display()))?;
    match v.get("error") {
        Some(e) => Err(format!("the stack refused the request: {e}")),
        None => Ok(v),
    }
}

fn u(v: &Value, path: &[&str]) -> u64 {
    path.iter().fold(v, |v, k| &v[*k]).as_u64().unwrap_or(0)
}

fn run(args: Args) -> Result<(), String> {
    let path = socket(&args)?;
    match args.view {
        View::Top { interval, count } => {
            let mut prev = sample(&path, 0)?;
            println!("{:>8} {:>8} {:>8} {:>12} {:>10}", "usr%", "sys%", "idle%", "loops/s", "busy%");
            for _ in 0..count {
                std::thread::sleep(Duration::from_secs_f64(interval.max(0.05)));
                let cur = sample(&path, 0)?;
                let d = |k: &str| u(&cur, &["cycles", k]).saturating_sub(u(&prev, &["cycles", k])) as f64;
                let total = (d("usr") + d("sys") + d("idle")).max(1.0);
                let secs = (u(&cur, &["uptime_us"]).saturating_sub(u(&prev, &["uptime_us"])) as f64 / 1e6).max(1e-6);
                println!(
                    "{:>8.2} {:>8.2} {:>8.2} {:>12.0} {:>10.2}",
                    100.0 * d("usr") / total,
                    100.0 * d("sys") / total,
                    100.0 * d("idle") / total,
                    d("loops") / secs,
                    100.0 * d("busy_loops") / d("loops").max(1.0)
                );
                prev = cur;
            }
        }
        View::Traffic { interval, count } => {
            let mut prev = sample(&path, 0)?;
            println!(
                "{:>12} {:>12} {:>14} {:>14} {:>10} {:>10}",
                "rx pkts/s", "tx pkts/s", "rx bytes/s", "tx bytes/s", "drops/s", "errors/s"
            );
            for _ in 0..count {
                std::thread::sleep(Duration::from_secs_f64(interval.max(0.05)));
                let cur = sample(&path, 0)?;
                let secs = (u(&cur, &["uptime_us"]).saturating_sub(u(&prev, &["uptime_us"])) as f64 / 1e6).max(1e-6);
                let rate = |v: &dyn Fn(&Value) -> u64| v(&cur).saturating_sub(v(&prev)) as f64 / secs;
                let drops = |v: &Value| {
                    let stack: u64 = v["stack"]
                        .as_object()
                        .map(|m| m.iter().filter(|(k, _)| k.starts_with("drop_")).filter_map(|(_, x)| x.as_u64()).sum())
                        .unwrap_or(0);
                    stack + u(v, &["port", "imissed"]) + u(v, &["port", "rx_nombuf"]) + u(v, &["device", "rx_l4_bad"])
                };
                let errors = |v: &Value| u(v, &["port", "ierrors"]) + u(v, &["port", "oerrors"]);
                println!(
                    "{:>12.0} {:>12.0} {:>14.0} {:>14.0} {:>10.0} {:>10.0}",
                    rate(&|v| u(v, &["port", "ipackets"])),
                    rate(&|v| u(v, &["port", "opackets"])),
                    rate(&|v| u(v, &["port", "ibytes"])),
                    rate(&|v| u(v, &["port", "obytes"])),
                    rate(&drops),
                    rate(&errors)
                );
                prev = cur;
            }
        }
        View::Netstat { limit } => {
            let v = sample(&path, limit)?;
            println!(
                "{:<6}{:>8} {:>8}  {:<22} {:<22} State",
                "Proto", "Recv-Q", "Send-Q", "Local Address", "Foreign Address"
            );
            let rows = v["sockets"].as_array().cloned().unwrap_or_default();
            for s in &rows {
                println!(
                    "{:<6}{:>8} {:>8}  {:<22} {:<22} {}",
                    "tcp",
                    u(s, &["recv_q"]),
                    u(s, &["send_q"]),
                    s["local"].as_str().unwrap_or("?"),
                    s["remote"].as_str().unwrap_or("*:*"),
                    s["state"].as_str().unwrap_or("?").to_ascii_uppercase()
                );
            }
            let total = u(&v, &["tcp_connections"]);
            if (rows.len() as u64) < total {
                println!("({} of {total} connections shown; --limit raises it)", rows.len());
            }
        }
        View::Stages { interval } => {
            let first = sample(&path, 0)?;
            if first["stages"].is_null() {
                return Err("the stack runs without stage counters: set [dpdk] stage_cycles=1".into());
            }
            let (cur, prev) = if interval > 0.0 {
                std::thread::sleep(Duration::from_secs_f64(interval));
                (sample(&path, 0)?, Some(first))
            } else {
                (first, None)
            };
            print_stages(&cur, prev.as_ref());
        }
        View::Stats { json } => {
            let v = sample(&path, 0)?;
            if json {
                println!("{v}");
                return Ok(());
            }
            println!(
                "pid {} lcore {} cpu {} uptime {:.1} s",
                u(&v, &["pid"]),
                u(&v, &["lcore"]),
                v["cpu"].as_u64().map_or("-".to_owned(), |c| c.to_string()),
                u(&v, &["uptime_us"]) as f64 / 1e6
            );
            for section in ["port", "device", "pages", "stack"] {
                let Some(m) = v[section].as_object() else { continue };
                for (k, x) in m {
                    match x {
                        Value::Number(n) if n.as_u64() != Some(0) => println!("{section}.{k} = {n}"),
                        Value::String(s) => println!("{section}.{k} = {s}"),
                        Value::Object(o) => {
                            for (k2, x2) in o.iter().filter(|(_, x2)| x2.as_u64().is_some_and(|n| n > 0)) {
                                println!("{section}.{k}.{k2} = {x2}");
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    Ok(())
}

/// One line per stage: calls, cycles per call, longest call and share of
/// the busy time (stages nested in an engine stage are marked and left out
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
