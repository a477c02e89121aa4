//! `helloworld`: an HTTP/1.1 keep-alive server answering every request with a
//! fixed page, like F-Stack's example, on port 0 of a `config.ini`.
//!
//! The epoll-style loop registers the listener and every connection with the
//! readiness API (edge-triggered) and serves requests as they complete.
//! `--zc` sends the page zero-copy: it lives in page-array buffers loaded
//! once and every response is a shared reference to them (`tcp_send_shared`).
//! Stops on SIGINT/SIGTERM, after `--duration` seconds, or after
//! `--max-requests`, then prints its counters as `HELLOWORLD {json}`.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant as Wall};

use clap::Parser;
use dpdk_glue::Control;
use serde_json::json;
use zcstack::{Event, Interest, SocketHandle, Stack, TcpError, Token, Trigger, ZcBuf};

#[derive(Debug, Parser)]
#[command(about = "HTTP/1.1 keep-alive hello world on zcstack")]
struct Args {
    #[command(flatten)]
    fstack: zcstack_examples::FstackArgs,
    /// TCP port to listen on.
    #[arg(long, default_value_t = 80)]
    port: u16,
    /// Send the page zero-copy from the page array.
    #[arg(long)]
    zc: bool,
    /// Stop after this many seconds (0: run until a signal).
    #[arg(long, default_value_t = 0)]
    duration: u64,
    /// Stop after this many requests (0: no limit).
    #[arg(long = "max-requests", default_value_t = 0)]
    max_requests: u64,
}

const BODY: &str = "<!DOCTYPE html>\r\n<html>\r\n<head>\r\n<title>Welcome to zcstack!</title>\r\n</head>\r\n\
<body>\r\n<h1>Welcome to zcstack!</h1>\r\n<p>A userspace TCP/IP stack on DPDK with a zero-copy data path.</p>\r\n\
</body>\r\n</html>\r\n";

fn response() -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nServer: zcstack\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n{BODY}",
        BODY.len()
    )
    .into_bytes()
}

/// One client connection.
struct Client {
    h: SocketHandle,
    inbuf: Vec<u8>,
    /// Response bytes still to send (whole responses queued back to back).
    owed: usize,
    /// Offset into the current response.
    off: usize,
    close_after: bool,
}

#[derive(Default)]
struct Counters {
    accepted: u64,
    requests: u64,
    bad_requests: u64,
    closed: u64,
}

fn main() -> ExitCode {
    zcstack_examples::init_logging();
    zcstack_examples::exit("helloworld", run(Args::parse()))
}

/// Serves on every lcore of the config (a listener on each; RSS or
/// software steering brings each its flows) and prints the sum over lcores
/// with the per-lcore figures under `"lcores"`.
fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let total = AtomicU64::new(0);
    let per = zcstack_examples::launch_from_conf("helloworld", &args.fstack.conf, &args.fstack, |rt| {
        serve_lcore(rt, &args, &total).map_err(|e| e.to_string())
    })?;
    let rows = per.into_iter().collect::<Result<Vec<_>, String>>()?;
    let mut sum = zcstack_examples::sum_json(&rows);
    let secs = rows.iter().filter_map(|r| r["secs"].as_f64()).fold(0.0, f64::max);
    sum["secs"] = json!(secs);
    sum["rps"] = json!(sum["requests"].as_u64().unwrap_or(0) as f64 / secs.max(1e-9));
    sum.as_object_mut().map(|o| o.remove("lcore_index"));
    sum["nb_lcores"] = json!(rows.len());
    sum["lcores"] = json!(rows);
    println!("HELLOWORLD {sum}");
    Ok(())
}

/// One lcore's server; `total` counts requests over every lcore (for
/// `--max-requests`). Returns this lcore's counters.
fn serve_lcore(
    rt: &mut dpdk_glue::Runtime,
    args: &Args,
    total: &AtomicU64,
) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let resp = response();
    let page = if args.zc {
        let mut b = rt.stack.zc_mbuf_get(resp.len())?;
        rt.stack.zc_mbuf_write(&mut b, &resp)?;
        Some(b)
    } else {
        None
    };
    let l = rt.stack.tcp_listen(args.port, 4096)?;
    rt.stack.register(l, Token(0), Interest::READABLE, Trigger::Edge)?;
    println!(
        "helloworld: listening on {}:{} ({} responses, lcore {} of {})",
        rt.stack.addr(),
        args.port,
        if args.zc { "zero-copy" } else { "copied" },
        rt.lcore_index(),
        rt.nb_lcores()
    );
    let mut counted = 0u64;
    let mut clients: HashMap<usize, Client> = HashMap::new();
    let mut next_token = 1usize;
    let mut c = Counters::default();
    let mut events: Vec<Event> = Vec::new();
    let t0 = Wall::now();
    let mut iter = 0u64;
    rt.run(|stack, now| {
        iter += 1;
        if args.duration > 0 && iter % 1024 == 0 && t0.elapsed() >= Duration::from_secs(args.duration) {
            return (false, Control::Stop);
        }
        events.clear();
        stack.poll_events(&mut events);
        let mut did = !events.is_empty();
        for ev in &events {
            if ev.token == Token(0) {
                while let Ok((h, _)) = stack.tcp_accept(l) {
                    let t = next_token;
                    next_token += 1;
                    if stack.register(h, Token(t), Interest::READABLE | Interest::WRITABLE, Trigger::Edge).is_ok() {
                        c.accepted += 1;
                        clients.insert(t, Client { h, inbuf: Vec::new(), owed: 0, off: 0, close_after: false });
                    }
                }
                continue;
            }
            let Some(cl) = clients.get_mut(&ev.token.0) else { continue };
            let gone = serve(stack, cl, &resp, page.as_ref(), &mut c, now);
            if gone {
                let _ = stack.deregister(cl.h);
                let _ = stack.tcp_close(cl.h, now);
                clients.remove(&ev.token.0);
                c.closed += 1;
            }
        }
        did |= !events.is_empty();
        total.fetch_add(c.requests - counted, Ordering::Relaxed);
        counted = c.requests;
        if args.max_requests > 0
            && total.load(Ordering::Relaxed) >= args.max_requests
            && clients.values().all(|k| k.owed == 0)
        {
            return (did, Control::Stop);
        }
        (did, Control::Continue)
    });
    for (_, cl) in clients.drain() {
        let now = rt.now();
        let _ = rt.stack.tcp_close(cl.h, now);
    }
    if let Some(p) = page {
        rt.stack.zc_release_buffers([p]);
    }
    // Let FINs go out before the port closes.
    let t = Wall::now();
    rt.run(|stack, _| {
        (
            false,
            if stack.tcp_connections() == 0 || t.elapsed() >= Duration::from_secs(1) {
                Control::Stop
            } else {
                Control::Continue
            },
        )
    });
    let st = *rt.stack.stats();
    let cycles = rt.cycles();
    let (free, total, mbufs) = rt.shutdown()?;
    let impaired = zcstack_examples::impaired(&rt.dev.stats());
    let secs = t0.elapsed().as_secs_f64();
    let steer = rt.dev.steer_stats().unwrap_or_default();
    Ok(json!({
            "lcore_index": rt.lcore_index(),
            "rx_frames": rt.dev.stats().rx_frames,
            "steered_out": steer.steered_out, "steered_in": steer.steered_in, "steer_copied": steer.copied,
            "steer_backlogged": steer.backlogged, "steer_dropped_at_close": steer.dropped_at_close,
            "steer_unread_at_close": steer.unread_at_close,
            "accepted": c.accepted, "requests": c.requests, "bad_requests": c.bad_requests, "closed": c.closed,
            "secs": secs, "rps": c.requests as f64 / secs.max(1e-9), "zc": args.zc,
            "tx_bytes_copied": st.tx_bytes_copied, "tx_bytes_zero_copy": st.tx_bytes_zero_copy,
            "usr_cycles": cycles.usr, "sys_cycles": cycles.sys, "idle_cycles": cycles.idle,
            "pages_free": free, "pages_total": total, "mbufs_in_use": mbufs, "clean": free == total && mbufs == 0,
            "impaired": impaired,
    }))
}

/// Reads requests and writes responses; returns whether to close.
fn serve(
    stack: &mut Stack<dpdk_glue::PageArray>,
    cl: &mut Client,
    resp: &[u8],
    page: Option<&ZcBuf>,
    c: &mut Counters,
    _now: zcstack::Instant,
) -> bool {
    let mut buf = [0u8; 4096];
    let mut eof = false;
    loop {
        match stack.tcp_read(cl.h, &mut buf) {
            Ok(0) => {
                eof = true;
                break;
            }
            Ok(n) => cl.inbuf.extend_from_slice(&buf[..n]),
            Err(TcpError::WouldBlock) => break,
            Err(_) => return true,
        }
    }
    // Every complete request owes one response.
    while let Some(end) = cl.inbuf.windows(4).position(|w| w == b"\r\n\r\n") {
        let verdict = judge(&cl.inbuf[..end]);
        cl.inbuf.drain(..end + 4);
        let Some(close) = verdict else {
            c.bad_requests += 1;
            return true;
        };
        c.requests += 1;
        cl.owed += resp.len();
        if close {
            cl.close_after = true;
            break;
        }
    }
    if cl.inbuf.len() > 64 * 1024 {
        c.bad_requests += 1;
        return true;
    }
    while cl.owed > 0 {
        let n = (resp.len() - cl.off).min(cl.owed);
        let r = match page {
            Some(p) => stack.tcp_send_shared(cl.h, p, cl.off, n),
            None => stack.tcp_write(cl.h, &resp[cl.off..cl.off + n]),
        };
        match r {
            Ok(k) => {
                cl.owed -= k;
                cl.off = (cl.off + k) % resp.len();
            }
            Err(TcpError::WouldBlock | TcpError::NoBuffers) => break,
            Err(_) => return true,
        }
    }
    (cl.close_after || eof) && cl.owed == 0
}

/// What a request head (without its final blank line) asks for: `None`
/// for anything but GET or HEAD, else whether the connection closes after
/// the response (`Connection: close`, or HTTP/1.0 without keep-alive).
/// Case-insensitive on the bytes, so it allocates nothing per request.
fn judge(head: &[u8]) -> Option<bool> {
    if !(starts_with_ci(head, b"get ") || starts_with_ci(head, b"head ")) {
        return None;
    }
    Some(
        contains_ci(head, b"\r\nconnection: close")
            || (contains_ci(head, b" http/1.0") && !contains_ci(head, b"keep-alive")),
    )
}

fn starts_with_ci(hay: &[u8], prefix: &[u8]) -> bool {
    hay.len() >= prefix.len() && hay[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::judge;

    #[test]
    fn request_heads_are_judged_case_insensitively() {
        assert_eq!(judge(b"GET / HTTP/1.1\r\nHost: x"), Some(false));
        assert_eq!(judge(b"head / HTTP/1.1"), Some(false));
        assert_eq!(judge(b"GET / HTTP/1.1\r\nCONNECTION: Close"), Some(true));
        assert_eq!(judge(b"GET / HTTP/1.0"), Some(true), "HTTP/1.0 closes by default");
        assert_eq!(judge(b"GET / HTTP/1.0\r\nConnection: Keep-Alive"), Some(false));
        assert_eq!(judge(b"POST / HTTP/1.1"), None);
        assert_eq!(judge(b"GE"), None, "shorter than any method");
        assert_eq!(judge(b"GET \xff\xfe HTTP/1.1"), Some(false), "bytes that are not UTF-8 are fine");
    }
}
