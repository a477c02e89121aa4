//! `httpload`: a wrk-like HTTP/1.1 load generator on zcstack.
//!
//! `-c` connections send GET requests for `--duration` seconds, keep-alive
//! (the default) or one connection per request (`--close`), and it prints
//! requests/s, transfer, errors and latency percentiles (p50/p90/p99/p99.9/
//! max, from every request's latency in an HdrHistogram) as text and as `HTTPLOAD {json}`.
//! Bounded: stops after `--duration` or `--requests`, and gives up on a
//! request after `--timeout-ms`.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant as Wall};

use clap::Parser;
use dpdk_glue::eal::rdtsc;
use dpdk_glue::Control;
use serde_json::json;
use zcstack::{Event, Instant, Interest, SocketHandle, Stack, State, TcpError, Token, Trigger};
use zcstack_examples::latency_windows::{self, LatencyWindows};
use zcstack_examples::starts_with_ci;

/// Every this many loop passes the connections whose request is older than
/// `--timeout-ms` are driven without an event (so a lost response counts as
/// a timeout); the others are only looked at (one comparison each), so the
/// sweep adds no stall to the requests in flight.
const SWEEP: u64 = 1024;

#[derive(Debug, Parser)]
#[command(about = "HTTP/1.1 load generator on zcstack (wrk-like)")]
struct Args {
    /// F-Stack-style config.ini (port 0 is used).
    #[arg(long = "conf", short = 'c')]
    conf: String,
    /// Server address.
    #[arg(long)]
    server: Ipv4Addr,
    #[arg(long, default_value_t = 80)]
    port: u16,
    /// Request path.
    #[arg(long, default_value = "/")]
    path: String,
    /// Concurrent connections.
    #[arg(long, short = 'n', default_value_t = 16)]
    connections: usize,
    /// Seconds to run.
    #[arg(long, short = 'd', default_value_t = 5)]
    duration: u64,
    /// Stop after this many requests (0: no limit).
    #[arg(long, default_value_t = 0)]
    requests: u64,
    /// One connection per request (`Connection: close`).
    #[arg(long)]
    close: bool,
    /// A request taking longer than this counts as a timeout and its
    /// connection is reset.
    #[arg(long = "timeout-ms", default_value_t = 2000)]
    timeout_ms: u64,
    /// Before the load starts, retry a probe connection for up to this many
    /// seconds until the server accepts one (a link or server still coming
    /// up); the run fails if none is accepted in time. 0: no probe.
    #[arg(long = "wait-server", default_value_t = 0)]
    wait_server: u64,
    /// Latency percentiles are also kept per window of this many ms (0:
    /// not), reported as the windows' own p99/p50 and the spread of their
    /// p50s: the stack's spread apart from the machine's speed drifting
    /// during the run.
    #[arg(long = "window-ms", default_value_t = 100)]
    window_ms: u64,
    /// Send the requests of a loop pass together at its end, instead of
    /// each as soon as it is written (for comparison).
    #[arg(long)]
    batch: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Connecting,
    Waiting,
}

struct Conn {
    h: SocketHandle,
    phase: Phase,
    sent_at: Instant,
    /// TSC at the request's write: its latency in ns at the response.
    sent_tsc: u64,
    buf: Vec<u8>,
}

#[derive(Default)]
struct Totals {
    ok: u64,
    errors: u64,
    timeouts: u64,
    non_2xx: u64,
    connects: u64,
    bytes: u64,
    latency: zcstack_examples::Latency,
    /// The same latencies per `--window-ms` window.
    windows: LatencyWindows,
    /// TSC ticks per second, for request latencies in ns.
    tsc_hz: u64,
}

fn main() -> ExitCode {
    zcstack_examples::init_logging();
    zcstack_examples::exit("httpload", run(Args::parse()))
}

/// The `--wait-server` probe: one connection at a time until one is
/// established.
struct Probe {
    deadline: Wall,
    conn: Option<(SocketHandle, Instant)>,
    ready: bool,
}

impl Probe {
    fn drive(&mut self, stack: &mut Stack<dpdk_glue::PageArray>, to: SocketAddrV4, now: Instant) -> (bool, Control) {
        if Wall::now() >= self.deadline {
            return (false, Control::Stop);
        }
        match self.conn {
            None => {
                self.conn = stack.tcp_connect(to, 0, now).ok().map(|h| (h, now));
                (true, Control::Continue)
            }
            Some((h, at)) => match stack.tcp_state(h) {
                Ok(State::Established) => {
                    let _ = stack.tcp_close(h, now);
                    self.ready = true;
                    (true, Control::Continue)
                }
                Ok(State::SynSent) if now - at < zcstack::Duration::from_millis(500) => (false, Control::Continue),
                _ => {
                    let _ = stack.tcp_abort(h);
                    self.conn = None;
                    (true, Control::Continue)
                }
            },
        }
    }
}

/// A complete response at the front of the buffer.
struct Response {
    /// Its length.
    end: usize,
    /// Status 2xx.
    success: bool,
    /// The server closes the connection after it (`Connection: close`).
    close: bool,
}

/// The response at the front of `b`, if it is complete (needs a
/// Content-Length; chunked encoding is not supported and counts as an error).
/// One pass over the head's lines, header names matched case-insensitively
/// on the bytes: nothing is allocated per response (RFC 9112 sections 2.1,
/// 4, 6.3 and 9.3 for the status line, body length and persistence).
fn response_end(b: &[u8]) -> Option<Result<Response, ()>> {
    let mut pos = 0;
    let (mut success, mut http10) = (false, false);
    let (mut close, mut keep_alive, mut length) = (false, false, None);
    loop {
        let nl = pos + memchr::memchr(b'\n', &b[pos..])?;
        let line = &b[pos..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if pos == 0 {
            if !starts_with_ci(line, b"http/1.") {
                return Some(Err(()));
            }
            http10 = line.get(7) == Some(&b'0');
            success = memchr::memchr(b' ', line).and_then(|sp| line.get(sp + 1)) == Some(&b'2');
        } else if line.is_empty() {
            pos = nl + 1;
            break;
        } else if let Some(v) = header_value(line, b"connection:") {
            close |= v.eq_ignore_ascii_case(b"close");
            keep_alive |= v.eq_ignore_ascii_case(b"keep-alive");
        } else if let Some(v) = header_value(line, b"content-length:") {
            length = std::str::from_utf8(v).ok().and_then(|v| v.parse::<usize>().ok());
            if length.is_none() {
                return Some(Err(()));
            }
        }
        pos = nl + 1;
    }
    let close = close || (http10 && !keep_alive);
    match length {
        Some(n) if b.len() >= pos + n => Some(Ok(Response { end: pos + n, success, close })),
        Some(_) => None,
        None => Some(Err(())),
    }
}

/// The value of header line `line` when its name is `name` (which ends in
/// `:`; compared case-insensitively), without surrounding whitespace.
fn header_value<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    starts_with_ci(line, name).then(|| line[name.len()..].trim_ascii())
}

/// Runs the load on every lcore of the config (lcore i opens its share of
/// `-n`: connection j on lcore j mod lcores, each connect's local port
/// chosen by the RSS check so replies come back to it) and prints the sum
/// over lcores, latencies merged, with per-lcore figures under `"lcores"`.
fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let to = SocketAddrV4::new(args.server, args.port);
    let ok_total = AtomicU64::new(0);
    let fstack = zcstack_examples::FstackArgs { conf: args.conf.clone(), proc_type: None, proc_id: 0 };
    let per = zcstack_examples::launch_from_conf("httpload", &args.conf, &fstack, |rt| {
        load_lcore(rt, &args, to, &ok_total).map_err(|e| e.to_string())
    })?;
    let lcores = per.into_iter().collect::<Result<Vec<_>, String>>()?;
    let mut t = Totals::default();
    let mut rows = Vec::new();
    let mut secs = 0.0f64;
    let mut windows = Vec::new();
    let mut windows_overflow = 0;
    for (i, l) in lcores.iter().enumerate() {
        windows.extend_from_slice(l.t.windows.windows());
        windows_overflow += l.t.windows.overflow();
        t.ok += l.t.ok;
        t.errors += l.t.errors;
        t.timeouts += l.t.timeouts;
        t.non_2xx += l.t.non_2xx;
        t.connects += l.t.connects;
        t.bytes += l.t.bytes;
        t.latency.merge(&l.t.latency);
        secs = secs.max(l.secs);
        let mut row = l.extra.clone();
        row["lcore_index"] = json!(i);
        row["requests"] = json!(l.t.ok);
        row["rps"] = json!(l.t.ok as f64 / l.secs.max(1e-9));
        row["errors"] = json!(l.t.errors);
        row["timeouts"] = json!(l.t.timeouts);
        row["connects"] = json!(l.t.connects);
        row["connections"] = json!(l.connections);
        row["p50_us"] = json!(l.t.latency.percentile(50.0));
        row["p99_us"] = json!(l.t.latency.percentile(99.0));
        rows.push(row);
    }
    let clean = rows.iter().all(|r| r["clean"] == json!(true));
    let impaired = zcstack_examples::sum_json(&rows.iter().map(|r| r["impaired"].clone()).collect::<Vec<_>>());
    let l = &t.latency;
    let (p50, p90, p99, p999) = (l.percentile(50.0), l.percentile(90.0), l.percentile(99.0), l.percentile(99.9));
    let max = l.max();
    let rps = t.ok as f64 / secs.max(1e-9);
    println!(
        "httpload: {} requests in {secs:.2} s ({} connections on {} lcores, {}), {rps:.0} requests/s, {:.2} MB read, \
         {} errors, {} timeouts, {} non-2xx\n  latency us: p50 {p50} p90 {p90} p99 {p99} p99.9 {p999} max {max}",
        t.ok,
        args.connections,
        rows.len(),
        if args.close { "connection per request" } else { "keep-alive" },
        t.bytes as f64 / 1e6,
        t.errors,
        t.timeouts,
        t.non_2xx
    );
    let sum = |k: &str| rows.iter().filter_map(|r| r[k].as_u64()).sum::<u64>();
    // The client's own cost (F-Stack's usr/sys/idle loop cycles, summed
    // over lcores): whether the load generator, not the server, is the limit.
    let busy = sum("usr_cycles") + sum("sys_cycles");
    let cycles_per_req = busy as f64 / (t.ok as f64).max(1.0);
    let busy_share = busy as f64 / ((busy + sum("idle_cycles")) as f64).max(1.0);
    let win = latency_windows::summarize(&windows);
    if let Some(w) = &win {
        println!(
            "  per {} ms window ({} windows): own p99/p50 median {:.2} max {:.2}; the windows' p50 from {:.2} \
             (median {:.2}) to {:.2} us",
            args.window_ms, w.windows, w.tail_median, w.tail_max, w.p50_us.0, w.p50_us.1, w.p50_us.2
        );
    }
    let mut report = json!({
            "requests": t.ok, "secs": secs, "rps": rps, "bytes": t.bytes, "errors": t.errors, "timeouts": t.timeouts,
            "non_2xx": t.non_2xx,
            "connects": t.connects, "connections": args.connections, "keepalive": !args.close,
            "p50_us": p50, "p90_us": p90, "p95_us": l.percentile(95.0), "p98_us": l.percentile(98.0), "p99_us": p99,
            "p999_us": p999, "max_us": max,
            "clean": clean,
            "impaired": impaired,
            "rss_connect_ports_tried": sum("rss_connect_ports_tried"), "rss_connect_refused": sum("rss_connect_refused"),
            "steered_out": sum("steered_out"), "steered_in": sum("steered_in"),
            "steer_dropped_at_close": sum("steer_dropped_at_close"),
            "client_cycles_per_req": cycles_per_req, "client_busy_share": busy_share,
            "client_loops": sum("loops"), "client_busy_loops": sum("busy_loops"),
            // What the guest's scheduler took from the lcores (time other
            // tasks ran on their CPUs), summed; null when an lcore could not
            // read its figures. Host steal is not in it.
            "client_runq_wait_ms": rows.iter().map(|r| r["runq_wait_ms"].as_f64()).sum::<Option<f64>>(),
            "client_preempted": rows.iter().map(|r| r["preempted"].as_u64()).sum::<Option<u64>>(),
            "nb_lcores": rows.len(), "lcores": rows,
    });
    // Per --window-ms window: each window's own p99/p50 (median, max) and
    // the spread of the windows' p50s; null without windows.
    if let Some(r) = report.as_object_mut() {
        r.extend(latency_windows::report_fields(args.window_ms, win, windows_overflow));
    }
    println!("HTTPLOAD {report}");
    if let Some(e) = lcores.iter().find_map(|l| l.probe_error.clone()) {
        return Err(e.into());
    }
    Ok(())
}

/// One lcore's result.
struct LcoreLoad {
    t: Totals,
    secs: f64,
    connections: usize,
    /// `--wait-server` found no server from this lcore.
    probe_error: Option<String>,
    /// This lcore's device and steering figures.
    extra: serde_json::Value,
}

/// One lcore's share of the load; `ok_total` counts answered requests over
/// every lcore (for `--requests`).
fn load_lcore(
    rt: &mut dpdk_glue::Runtime,
    args: &Args,
    to: SocketAddrV4,
    ok_total: &AtomicU64,
) -> Result<LcoreLoad, Box<dyn std::error::Error>> {
    let (me, nb) = (rt.lcore_index(), rt.nb_lcores().max(1));
    let mine = (0..args.connections).filter(|j| j % nb == me).count();
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: zcstack-httpload\r\n{}\r\n",
        args.path,
        args.server,
        if args.close { "Connection: close\r\n" } else { "" }
    )
    .into_bytes();
    let timeout = zcstack::Duration::from_millis(args.timeout_ms);
    let mut conns: Vec<Option<Conn>> = (0..mine).map(|_| None).collect();
    let tsc_hz = rt.tsc_hz().max(1);
    // Room for every window of the run (plus the wait for the server and
    // slack); the windows are allocated here, never while recording.
    let windows = LatencyWindows::for_run(tsc_hz, args.window_ms, args.duration + args.wait_server);
    let mut t = Totals { tsc_hz, windows, ..Totals::default() };
    let mut started: Option<Wall> = None;
    let mut sched0 = None;
    let mut rbuf = vec![0u8; 64 * 1024];
    let mut iter = 0u64;
    let mut counted = 0u64;
    let mut probe = Probe {
        deadline: Wall::now() + Duration::from_secs(args.wait_server),
        conn: None,
        ready: args.wait_server == 0,
    };
    // Slots without a connection (all of them at first): connected in the
    // next pass.
    let mut vacant: Vec<usize> = (0..mine).rev().collect();
    let mut events: Vec<Event> = Vec::with_capacity(mine.max(1));
    rt.run_pushing(|stack, io, now| {
        iter += 1;
        if !probe.ready {
            return probe.drive(stack, to, now);
        }
        let begun = *started.get_or_insert_with(|| {
            sched0 = zcstack_examples::ThreadSched::now();
            Wall::now()
        });
        if t.ok != counted {
            ok_total.fetch_add(t.ok - counted, Ordering::Relaxed);
            counted = t.ok;
        }
        let stopping = (iter % 256 == 0 && begun.elapsed() >= Duration::from_secs(args.duration))
            || (args.requests > 0 && ok_total.load(Ordering::Relaxed) >= args.requests);
        if stopping {
            return (false, Control::Stop);
        }
        let mut did = false;
        while let Some(i) = vacant.pop() {
            match stack.tcp_connect(to, 0, now) {
                Ok(h) => {
                    t.connects += 1;
                    did = true;
                    // Edge-triggered: established (writable), response
                    // data or EOF (readable) wake the connection.
                    let _ = stack.register(h, Token(i), Interest::READABLE | Interest::WRITABLE, Trigger::Edge);
                    conns[i] =
                        Some(Conn { h, phase: Phase::Connecting, sent_at: now, sent_tsc: rdtsc(), buf: Vec::new() });
                }
                Err(_) => {
                    vacant.push(i);
                    break;
                }
            }
        }
        // Only connections with news are driven (a pass costs O(events),
        // not O(connections)); every SWEEP passes, also those past their
        // timeout.
        events.clear();
        stack.poll_events(&mut events);
        let swept = if iter % SWEEP == 0 { conns.len() } else { 0 };
        let evs = events.iter().map(|e| (e.token.0, false));
        for (i, sweeping) in evs.chain((0..swept).map(|i| (i, true))) {
            let Some(c) = conns.get_mut(i).and_then(Option::as_mut) else { continue };
            if sweeping && now - c.sent_at <= timeout {
                continue;
            }
            // Timed at the moment this connection is handled, not at the
            // pass's start: a request's latency runs from its write to the
            // read of its response, wherever they fall in their passes.
            let (tsc, at) = (rdtsc(), io.now());
            if let Some(done) = drive(stack, c, &request, &mut rbuf, (at, tsc), timeout, args.close, &mut t) {
                did = true;
                if !done && !args.batch {
                    // The next request leaves now: the server works on it
                    // while the other responses of the pass are read.
                    io.push(stack, now);
                }
                if done {
                    let h = c.h;
                    let _ = stack.deregister(h);
                    if args.close {
                        let _ = stack.tcp_close(h, now);
                    } else {
                        let _ = stack.tcp_abort(h);
                    }
                    conns[i] = None;
                    vacant.push(i);
                }
            }
        }
        (did, Control::Continue)
    });
    let probe_error = (!probe.ready)
        .then(|| format!("{to} accepted no connection within --wait-server {} s (lcore {me})", args.wait_server));
    let secs = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
    let sched = zcstack_examples::ThreadSched::since(sched0);
    for c in conns.into_iter().flatten() {
        let _ = rt.stack.tcp_abort(c.h);
    }
    let st = *rt.stack.stats();
    let cycles = rt.cycles();
    let tsc_hz = rt.tsc_hz();
    let (free, total, mbufs) = rt.shutdown()?;
    let impaired = zcstack_examples::impaired(&rt.dev.stats());
    let steer = rt.dev.steer_stats().unwrap_or_default();
    let extra = json!({
        "rx_frames": rt.dev.stats().rx_frames,
        "rss_connect_ports_tried": st.rss_connect_ports_tried, "rss_connect_refused": st.rss_connect_refused,
        "steered_out": steer.steered_out, "steered_in": steer.steered_in, "steer_copied": steer.copied,
        "steer_backlogged": steer.backlogged, "steer_dropped_at_close": steer.dropped_at_close,
        "steer_unread_at_close": steer.unread_at_close,
        "clean": free == total && mbufs == 0, "impaired": impaired,
        "usr_cycles": cycles.usr, "sys_cycles": cycles.sys, "idle_cycles": cycles.idle,
        "loops": cycles.loops, "busy_loops": cycles.busy_loops, "tsc_hz": tsc_hz,
        "runq_wait_ms": sched.map(|d| d.runq_wait_ms()), "preempted": sched.map(|d| d.preempted),
    });
    t.windows.finish();
    Ok(LcoreLoad { t, secs, connections: mine, probe_error, extra })
}

/// Advances one connection. `None`: nothing happened; `Some(done)`: it did
/// work, and `done` says the connection is finished (closed, failed, or one
/// request done in connection-per-request mode).
#[allow(clippy::too_many_arguments)]
fn drive(
    stack: &mut Stack<dpdk_glue::PageArray>,
    c: &mut Conn,
    request: &[u8],
    rbuf: &mut [u8],
    (now, tsc): (Instant, u64),
    timeout: zcstack::Duration,
    close: bool,
    t: &mut Totals,
) -> Option<bool> {
    match (&c.phase, stack.tcp_state(c.h)) {
        (Phase::Connecting, Ok(State::Established)) => {
            c.phase = Phase::Waiting;
            (c.sent_at, c.sent_tsc) = (now, tsc);
            return match stack.tcp_write(c.h, request) {
                Ok(n) if n == request.len() => Some(false),
                _ => {
                    t.errors += 1;
                    Some(true)
                }
            };
        }
        (Phase::Connecting, Ok(State::SynSent | State::SynReceived)) => {
            if now - c.sent_at > timeout {
                t.timeouts += 1;
                return Some(true);
            }
            return None;
        }
        (_, Err(_) | Ok(State::Closed)) => {
            t.errors += 1;
            return Some(true);
        }
        _ => {}
    }
    let mut did = false;
    let mut eof = false;
    loop {
        match stack.tcp_read(c.h, rbuf) {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(n) => {
                c.buf.extend_from_slice(&rbuf[..n]);
                did = true;
            }
            Err(TcpError::WouldBlock) => break,
            Err(_) => {
                t.errors += 1;
                return Some(true);
            }
        }
    }
    match response_end(&c.buf) {
        Some(Ok(r)) => {
            if r.success {
                t.ok += 1;
            } else {
                t.non_2xx += 1;
            }
            t.bytes += r.end as u64;
            let ticks = u128::from(tsc.wrapping_sub(c.sent_tsc));
            let ns = (ticks * 1_000_000_000 / u128::from(t.tsc_hz)) as u64;
            t.latency.record_ns(ns);
            t.windows.record(tsc, ns);
            c.buf.drain(..r.end);
            if close || r.close {
                // Like wrk, a server that ends a keep-alive connection (say
                // nginx after keepalive_requests) just gets a new one.
                return Some(true);
            }
            (c.sent_at, c.sent_tsc) = (now, tsc);
            match stack.tcp_write(c.h, request) {
                Ok(n) if n == request.len() => Some(false),
                _ => {
                    t.errors += 1;
                    Some(true)
                }
            }
        }
        Some(Err(())) => {
            t.errors += 1;
            Some(true)
        }
        None if eof => {
            // Closed in the middle of (or before) a response.
            t.errors += 1;
            Some(true)
        }
        None if now - c.sent_at > timeout => {
            t.timeouts += 1;
            Some(true)
        }
        None => did.then_some(false),
    }
}

#[cfg(test)]
mod tests {
    use super::response_end;

    fn parse(b: &[u8]) -> Option<Result<(usize, bool, bool), ()>> {
        response_end(b).map(|r| r.map(|r| (r.end, r.success, r.close)))
    }

    #[test]
    fn responses_are_framed_by_content_length() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse(r), Some(Ok((r.len(), true, false))));
        // A second response behind the first is not part of it.
        let two = [&r[..], &r[..]].concat();
        assert_eq!(parse(&two), Some(Ok((r.len(), true, false))));
        // Incomplete head or body: wait for more.
        for cut in [0, 10, 17, r.len() - 6, r.len() - 1] {
            assert_eq!(parse(&r[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn status_and_persistence_are_read_case_insensitively() {
        let r: &[u8] = b"http/1.1 404 Not Found\r\ncontent-length:0\r\nCONNECTION:  Close \r\n\r\n";
        assert_eq!(parse(r), Some(Ok((r.len(), false, true))));
        let r: &[u8] = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parse(r), Some(Ok((r.len(), true, true))), "HTTP/1.0 closes by default");
        let r: &[u8] = b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parse(r), Some(Ok((r.len(), true, false))));
    }

    #[test]
    fn unsupported_responses_are_errors() {
        assert_eq!(parse(b"SSH-2.0-x\r\n"), Some(Err(())), "not HTTP/1.x");
        assert_eq!(parse(b"HTTP/1.\r\n\r\n"), Some(Err(())), "a bare version, no length");
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), Some(Err(())), "no length");
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: x1\r\n\r\n"), Some(Err(())), "bad length");
        let r: &[u8] = b"HTTP/1.1 200 \xff\r\nContent-Length: 1\r\n\r\n!";
        assert_eq!(parse(r), Some(Ok((r.len(), true, false))), "bytes that are not UTF-8 are fine");
    }
}
