//! `helloworld`: an HTTP/1.1 keep-alive server answering every request with a
//! fixed page, like F-Stack's example, on port 0 of a `config.ini`.
//!
//! The epoll-style loop registers the listener and every connection with the
//! readiness API (edge-triggered) and serves requests as they complete.
//! `--zc` sends the page zero-copy: it lives in page-array buffers loaded
//! once and every response is a shared reference to them (`tcp_send_shared`).
//! Stops on SIGINT/SIGTERM, after `--duration` seconds, or after
//! `--max-requests`, then prints its counters as `HELLOWORLD {json}`.

use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant as Wall};

use clap::Parser;
use dpdk_glue::Control;
use serde_json::json;
use zcstack::{Event, Interest, SocketHandle, Stack, TcpError, Token, Trigger, ZcBuf};
use zcstack_examples::starts_with_ci;

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
    /// Send the responses of a loop pass together at its end, instead of
    /// each as soon as it is written (for comparison).
    #[arg(long)]
    batch: bool,
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
    // Client `Token(i + 1)` lives in slot `i`; a closed client's slot is
    // reused (after the pass that closed it, so no event of the pass can
    // reach its successor): no hashing per event.
    let mut clients: Vec<Option<Client>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut closed: Vec<usize> = Vec::new();
    // One read buffer for every client, allocated once.
    let mut rbuf = vec![0u8; 4096];
    let mut c = Counters::default();
    let mut events: Vec<Event> = Vec::new();
    let t0 = Wall::now();
    let sched0 = zcstack_examples::ThreadSched::now();
    let mut iter = 0u64;
    rt.run_pushing(|stack, io, now| {
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
                    let i = free.pop().unwrap_or_else(|| {
                        clients.push(None);
                        clients.len() - 1
                    });
                    if stack.register(h, Token(i + 1), Interest::READABLE | Interest::WRITABLE, Trigger::Edge).is_ok() {
                        c.accepted += 1;
                        clients[i] = Some(Client { h, inbuf: Vec::new(), owed: 0, off: 0, close_after: false });
                    } else {
                        free.push(i);
                    }
                }
                continue;
            }
            let i = ev.token.0.wrapping_sub(1);
            let Some(cl) = clients.get_mut(i).and_then(Option::as_mut) else { continue };
            let gone = serve(stack, cl, &resp, page.as_ref(), &mut rbuf, &mut c);
            if gone {
                let _ = stack.deregister(cl.h);
                let _ = stack.tcp_close(cl.h, now);
                clients[i] = None;
                closed.push(i);
                c.closed += 1;
            }
            if !args.batch {
                // This response leaves now: the client works on it while
                // the other connections of the pass are served. Pushed
                // after a `Connection: close` reply's close, so its FIN
                // rides on the data segment instead of trailing it alone.
                io.push(stack, now);
            }
        }
        free.append(&mut closed);
        did |= !events.is_empty();
        if c.requests != counted {
            total.fetch_add(c.requests - counted, Ordering::Relaxed);
            counted = c.requests;
        }
        if args.max_requests > 0
            && total.load(Ordering::Relaxed) >= args.max_requests
            && clients.iter().flatten().all(|k| k.owed == 0)
        {
            return (did, Control::Stop);
        }
        (did, Control::Continue)
    });
    for cl in clients.drain(..).flatten() {
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
    // Before shutdown: what the scheduler took from the serving loop.
    let sched = zcstack_examples::ThreadSched::since(sched0);
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
            "runq_wait_ms": sched.map(|d| d.runq_wait_ms()), "preempted": sched.map(|d| d.preempted),
            "pages_free": free, "pages_total": total, "mbufs_in_use": mbufs, "clean": free == total && mbufs == 0,
            "impaired": impaired,
    }))
}

/// Reads requests (through `buf`, the lcore's read buffer) and writes
/// responses; returns whether to close.
fn serve(
    stack: &mut Stack<dpdk_glue::PageArray>,
    cl: &mut Client,
    resp: &[u8],
    page: Option<&ZcBuf>,
    buf: &mut [u8],
    c: &mut Counters,
) -> bool {
    let mut eof = false;
    loop {
        match stack.tcp_read(cl.h, buf) {
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
    while let Some(end) = head_end(&cl.inbuf) {
        let verdict = judge(&cl.inbuf[..end - 4]);
        cl.inbuf.drain(..end);
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

/// Where the head of the request at the front of `b` ends (just past its
/// blank line, RFC 9112 section 2.1), once it has arrived. Looks only at
/// the line ends (`memchr`), not at every byte window.
fn head_end(b: &[u8]) -> Option<usize> {
    memchr::memchr_iter(b'\n', b).find(|&i| i >= 3 && &b[i - 3..=i] == b"\r\n\r\n").map(|i| i + 1)
}

/// What a request head (without its final blank line) asks for: `None`
/// for anything but GET or HEAD, else whether the connection closes after
/// the response (a `Connection: close` header, or HTTP/1.0 without
/// `Connection: keep-alive`; RFC 9112 section 9.3). One pass over the line
/// ends, names compared case-insensitively on the bytes: nothing is
/// allocated per request.
fn judge(head: &[u8]) -> Option<bool> {
    if !(starts_with_ci(head, b"get ") || starts_with_ci(head, b"head ")) {
        return None;
    }
    let (mut http10, mut close, mut keep_alive) = (false, false, false);
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', head).chain(std::iter::once(head.len())) {
        let line = &head[start..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if start == 0 {
            http10 = line.len() >= 9 && line[line.len() - 9..].eq_ignore_ascii_case(b" http/1.0");
        } else if starts_with_ci(line, b"connection:") {
            for option in line[b"connection:".len()..].split(|&c| c == b',') {
                let option = option.trim_ascii();
                close |= option.eq_ignore_ascii_case(b"close");
                keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        start = end + 1;
    }
    Some(close || (http10 && !keep_alive))
}

#[cfg(test)]
mod tests {
    use super::{head_end, judge};

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
        assert_eq!(judge(b"GET / HTTP/1.1\r\nConnection: keep-alive, close"), Some(true), "a list of options");
        assert_eq!(judge(b"GET / HTTP/1.1\r\nX-Note: connection: close"), Some(false), "only the header counts");
        assert_eq!(judge(b"GET /HTTP/1.0 HTTP/1.1"), Some(false), "the version is the request line's last word");
    }

    #[test]
    fn request_heads_end_at_the_blank_line() {
        let head: &[u8] = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(head_end(&[head, b"GET"].concat()), Some(head.len()), "the next request is not part of it");
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: x\r\n\r"), None, "not yet complete");
        assert_eq!(head_end(b"\r\n\r\n"), Some(4));
        assert_eq!(head_end(b"\n\n\r\n"), None, "bare line feeds are not a blank line");
    }
}
