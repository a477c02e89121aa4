//! `pingpong`: a sockperf-style TCP ping-pong client on zcstack, for
//! request/response latency against `echo` (or any TCP echo server).
//!
//! One connection sends a `--size`-byte message, waits until all of it came
//! back, and sends the next, for `--duration` seconds. Round-trip times
//! after a `--warmup-ms` period (like sockperf's 400 ms) go into an
//! HdrHistogram in nanoseconds (3 significant digits), measured with the
//! monotonic clock around the exchange; the report gives min, percentiles
//! and max in microseconds as text and as `PINGPONG {json}`. Bounded: stops
//! after `--duration`, and fails if a reply takes longer than
//! `--timeout-ms` or the server never accepts (`--wait-server`).
//!
//! The same round trips are also kept per `--window-ms` window (default
//! 100 ms): each window's p50 and p99, so a run whose speed changed part
//! way (a VM whose two vCPUs moved apart on the host, making every cache
//! line that crosses between them several times slower) shows as windows
//! with different medians rather than as one blurred distribution.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;
use std::time::{Duration, Instant as Wall};

use clap::Parser;
use dpdk_glue::eal::rdtsc;
use dpdk_glue::Control;
use hdrhistogram::Histogram;
use serde_json::json;
use zcstack::tcp::SockOpt;
use zcstack::{Instant, SocketHandle, State, TcpError};
use zcstack_examples::latency_windows::{self, LatencyWindows};

#[derive(Debug, Parser)]
#[command(about = "TCP ping-pong latency client on zcstack (sockperf ping-pong style)")]
struct Args {
    /// F-Stack-style config.ini (port 0 is used).
    #[arg(long = "conf", short = 'c')]
    conf: String,
    /// Echo server address.
    #[arg(long)]
    server: Ipv4Addr,
    #[arg(long, default_value_t = 7)]
    port: u16,
    /// Message size, bytes.
    #[arg(long, short = 'm', default_value_t = 64)]
    size: usize,
    /// Seconds to run, warm-up included.
    #[arg(long, short = 't', default_value_t = 5)]
    duration: u64,
    /// Round trips in the first milliseconds are not recorded.
    #[arg(long = "warmup-ms", default_value_t = 400)]
    warmup_ms: u64,
    /// A reply taking longer than this ends the run with an error.
    #[arg(long = "timeout-ms", default_value_t = 2000)]
    timeout_ms: u64,
    /// Seconds to keep trying to connect while the server comes up.
    #[arg(long = "wait-server", default_value_t = 20)]
    wait_server: u64,
    /// Round-trip percentiles are also kept per window of this many ms (0:
    /// off), reported as the windows' p50s (smallest, median, largest) and
    /// their own p99/p50.
    #[arg(long = "window-ms", default_value_t = 100)]
    window_ms: u64,
}

fn main() -> ExitCode {
    zcstack_examples::init_logging();
    zcstack_examples::exit("pingpong", run(Args::parse()))
}

/// Loop-side timing uses the engine clock (free: the loop reads the TSC
/// anyway); only the exchange itself is timed with the monotonic clock.
enum Phase {
    Connecting(SocketHandle, Instant),
    /// Sent at (monotonic clock, engine clock), bytes of the reply still to come.
    Waiting(SocketHandle, Wall, Instant, usize),
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.size == 0 || args.size > 65_536 {
        return Err("--size must be 1..=65536 bytes".into());
    }
    let mut rt = zcstack_examples::runtime_from_conf("pingpong", &args.conf, 0)?;
    let to = SocketAddrV4::new(args.server, args.port);
    let msg: Vec<u8> = (0..args.size).map(|i| (i % 251) as u8).collect();
    let mut rbuf = vec![0u8; args.size];
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?;
    // Every window of the run has room up front (nothing allocated while
    // recording).
    let mut windows = LatencyWindows::for_run(rt.tsc_hz().max(1), args.window_ms, args.duration + args.wait_server);
    let mut phase: Option<Phase> = None;
    let mut failure: Option<String> = None;
    let t0 = rt.now();
    let mut measuring_since: Option<Wall> = None;
    let (mut exchanges, mut connects) = (0u64, 0u64);
    let timeout = zcstack::Duration::from_millis(args.timeout_ms);
    let secs = |s: u64| zcstack::Duration::from_secs(s);
    rt.run(|stack, now| {
        if now - t0 >= secs(args.duration) && measuring_since.is_some() {
            return (false, Control::Stop);
        }
        match phase.take() {
            None => {
                if now - t0 >= secs(args.wait_server) {
                    failure = Some(format!("{to} accepted no connection within {} s", args.wait_server));
                    return (false, Control::Stop);
                }
                match stack.tcp_connect(to, 0, now) {
                    Ok(h) => {
                        connects += 1;
                        let _ = stack.tcp_set_option(h, SockOpt::NoDelay(true), now);
                        phase = Some(Phase::Connecting(h, now));
                    }
                    Err(e) => {
                        failure = Some(format!("connect to {to}: {e}"));
                        return (false, Control::Stop);
                    }
                }
                (true, Control::Continue)
            }
            Some(Phase::Connecting(h, at)) => match stack.tcp_state(h) {
                Ok(State::Established) => {
                    measuring_since = Some(Wall::now() + Duration::from_millis(args.warmup_ms));
                    send(stack, h, &msg, now, &mut phase, &mut failure)
                }
                Ok(State::SynSent) if now - at < zcstack::Duration::from_millis(500) => {
                    phase = Some(Phase::Connecting(h, at));
                    (false, Control::Continue)
                }
                _ => {
                    // Refused or no answer yet (server or link still coming up): retry.
                    let _ = stack.tcp_abort(h);
                    (true, Control::Continue)
                }
            },
            Some(Phase::Waiting(h, sent, sent_at, mut left)) => {
                let mut did = false;
                while left > 0 {
                    match stack.tcp_read(h, &mut rbuf[..left]) {
                        Ok(0) => {
                            failure = Some("the server closed the connection".into());
                            return (true, Control::Stop);
                        }
                        Ok(n) => {
                            left -= n;
                            did = true;
                        }
                        Err(TcpError::WouldBlock) => break,
                        Err(e) => {
                            failure = Some(format!("read: {e}"));
                            return (true, Control::Stop);
                        }
                    }
                }
                if left > 0 {
                    if now - sent_at > timeout {
                        failure = Some(format!("no reply within {} ms", args.timeout_ms));
                        return (did, Control::Stop);
                    }
                    phase = Some(Phase::Waiting(h, sent, sent_at, left));
                    return (did, Control::Continue);
                }
                let done = Wall::now();
                exchanges += 1;
                if measuring_since.is_some_and(|m| sent >= m) {
                    let ns = (done - sent).as_nanos() as u64;
                    hist.saturating_record(ns);
                    windows.record(rdtsc(), ns);
                }
                send(stack, h, &msg, now, &mut phase, &mut failure)
            }
        }
    });
    if let Some(Phase::Connecting(h, _) | Phase::Waiting(h, _, _, _)) = phase {
        let now = rt.now();
        let _ = rt.stack.tcp_close(h, now);
    }
    let (free, total, mbufs) = rt.shutdown()?;
    if let Some(f) = failure {
        return Err(f.into());
    }
    if hist.is_empty() {
        return Err("no round trip was measured (--duration shorter than --warmup-ms?)".into());
    }
    let us = |ns: u64| ns as f64 / 1000.0;
    let p = |q: f64| us(hist.value_at_percentile(q));
    windows.finish();
    let win = latency_windows::summarize(windows.windows());
    println!(
        "pingpong: {} round trips of {} bytes ({} measured), rtt us: min {:.3} p50 {:.3} p90 {:.3} p99 {:.3} \
         p99.9 {:.3} max {:.3}",
        exchanges,
        args.size,
        hist.len(),
        us(hist.min()),
        p(50.0),
        p(90.0),
        p(99.0),
        p(99.9),
        us(hist.max())
    );
    if let Some(w) = win {
        println!(
            "  per {} ms window ({} windows): p50 from {:.3} (median {:.3}) to {:.3} us; own p99/p50 median {:.2}",
            args.window_ms, w.windows, w.p50_us.0, w.p50_us.1, w.p50_us.2, w.tail_median
        );
    }
    let mut report = json!({
        "size": args.size, "round_trips": exchanges, "measured": hist.len(), "connects": connects,
        "min_us": us(hist.min()), "p50_us": p(50.0), "p90_us": p(90.0), "p99_us": p(99.0),
        "p999_us": p(99.9), "max_us": us(hist.max()), "mean_us": hist.mean() / 1000.0,
        "clean": free == total && mbufs == 0,
        "window_p50_us": windows.windows().iter().map(|w| us(w.p50_ns)).collect::<Vec<_>>(),
    });
    if let Some(r) = report.as_object_mut() {
        r.extend(latency_windows::report_fields(args.window_ms, win, windows.overflow()));
    }
    println!("PINGPONG {report}");
    Ok(())
}

/// Writes the next message; the whole message must fit the send buffer.
fn send(
    stack: &mut zcstack::Stack<dpdk_glue::PageArray>,
    h: SocketHandle,
    msg: &[u8],
    now: Instant,
    phase: &mut Option<Phase>,
    failure: &mut Option<String>,
) -> (bool, Control) {
    let sent = Wall::now();
    match stack.tcp_write(h, msg) {
        Ok(n) if n == msg.len() => {
            *phase = Some(Phase::Waiting(h, sent, now, msg.len()));
            (true, Control::Continue)
        }
        r => {
            *failure = Some(format!("write of {} bytes: {r:?}", msg.len()));
            (true, Control::Stop)
        }
    }
}
