//! The control socket a running stack answers `zcstat` on.
//!
//! A Unix stream socket at [`control_path`]`(file_prefix)`. A client sends
//! one request line and gets one reply line (JSON), then the connection
//! closes. The run loop calls [`ControlServer::serve`] every
//! [`ACCEPT_EVERY_MS`] (every millisecond while a client is in progress),
//! on a pass that found no work when there is one within that interval;
//! everything is non-blocking, so a slow or stuck client costs the data
//! path nothing but a bounded buffer (and is dropped after
//! [`CLIENT_DEADLINE`]).

/// Milliseconds between checks for a new `zcstat` client. Each check is an
/// `accept` system call (~10 µs on a VM under load, measured with
/// `[dpdk] stage_cycles`): once a millisecond it landed in about one
/// request in a hundred at 100k requests/s, a p99 outlier; every 20 ms and
/// preferably in an idle pass it reaches no percentile that matters.
pub const ACCEPT_EVERY_MS: u64 = 20;

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Clients served at once; more wait in the listen backlog.
const MAX_CLIENTS: usize = 8;
/// Longest request line.
const MAX_REQUEST: usize = 1024;
/// A client that has not sent its request and read its reply by then is dropped.
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(2);

/// The control socket of lcore `index` of a deployment whose lcore 0
/// answers on `main`: `<stem>.lcore<index>.sock` next to it.
pub fn lcore_control_path(main: &std::path::Path, index: usize) -> PathBuf {
    if index == 0 {
        return main.to_path_buf();
    }
    let stem = main.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    main.with_file_name(format!("{stem}.lcore{index}.sock"))
}

/// Where the stack with DPDK file prefix `prefix` listens: the directory in
/// `ZCSTACK_RUN_DIR`, else `/tmp/zcstack` (lcore 0 of a deployment; lcore
/// `i > 0` answers on [`lcore_control_path`]).
pub fn control_path(prefix: &str) -> PathBuf {
    let dir = std::env::var_os("ZCSTACK_RUN_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/tmp/zcstack"));
    dir.join(format!("{prefix}.sock"))
}

struct Client {
    s: UnixStream,
    request: Vec<u8>,
    reply: Vec<u8>,
    sent: usize,
    deadline: Instant,
}

/// The listening side; removes its socket file when dropped.
pub struct ControlServer {
    listener: UnixListener,
    path: PathBuf,
    clients: Vec<Client>,
}

impl std::fmt::Debug for ControlServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlServer").field("path", &self.path).field("clients", &self.clients.len()).finish()
    }
}

impl ControlServer {
    /// Listens at `path`. A stale socket file (nobody answering) is
    /// replaced; a live one is an `AddrInUse` error (another stack runs
    /// with the same file prefix).
    pub fn bind(path: &Path) -> std::io::Result<ControlServer> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        if path.exists() {
            if UnixStream::connect(path).is_ok() {
                return Err(std::io::Error::new(
                    ErrorKind::AddrInUse,
                    format!("{} is answered by another running stack", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        let listener = UnixListener::bind(path)?;
        listener.set_nonblocking(true)?;
        Ok(ControlServer { listener, path: path.to_owned(), clients: Vec::new() })
    }

    /// Whether a client is being served (its request or reply in progress).
    pub fn busy(&self) -> bool {
        !self.clients.is_empty()
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts new clients, reads complete request lines, answers each
    /// with `answer(line)` (one line, newline added), and writes what the
    /// sockets take. Never blocks.
    pub fn serve(&mut self, answer: &mut dyn FnMut(&str) -> String) {
        let now = Instant::now();
        while self.clients.len() < MAX_CLIENTS {
            match self.listener.accept() {
                Ok((s, _)) => {
                    if s.set_nonblocking(true).is_ok() {
                        self.clients.push(Client {
                            s,
                            request: Vec::new(),
                            reply: Vec::new(),
                            sent: 0,
                            deadline: now + CLIENT_DEADLINE,
                        });
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!(%e, "control socket accept failed");
                    break;
                }
            }
        }
        self.clients.retain_mut(|c| c.step(now, answer));
    }
}

impl Client {
    /// Advances one client; false when it is finished or dropped.
    fn step(&mut self, now: Instant, answer: &mut dyn FnMut(&str) -> String) -> bool {
        if now > self.deadline {
            return false;
        }
        if self.reply.is_empty() {
            let mut buf = [0u8; 256];
            loop {
                match self.s.read(&mut buf) {
                    Ok(0) => return false,
                    Ok(n) => self.request.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => return false,
                }
                if self.request.len() > MAX_REQUEST {
                    return false;
                }
            }
            let Some(end) = self.request.iter().position(|&b| b == b'\n') else { return true };
            let line = String::from_utf8_lossy(&self.request[..end]).trim().to_owned();
            self.reply = answer(&line).into_bytes();
            self.reply.push(b'\n');
        }
        while self.sent < self.reply.len() {
            match self.s.write(&self.reply[self.sent..]) {
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(_) => return false,
            }
        }
        false
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Sends `request` to the stack at `path` and returns its reply line;
/// gives up after `timeout`.
pub fn query(path: &Path, request: &str, timeout: Duration) -> std::io::Result<String> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(request.as_bytes())?;
    s.write_all(b"\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    if !out.ends_with('\n') {
        return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "the stack closed before a whole reply"));
    }
    out.pop();
    Ok(out)
}

/// The `stats` reply (see [`crate::Runtime::snapshot`]).
pub(crate) fn snapshot(rt: &crate::Runtime, max_sockets: usize) -> serde_json::Value {
    use serde_json::json;
    let c = rt.cycles();
    let d = rt.dev.stats();
    let port = rt.dev.port_stats().map(|(id, name, s)| {
        json!({
            "id": id, "name": name,
            "ipackets": s.map(|s| s.ipackets), "opackets": s.map(|s| s.opackets),
            "ibytes": s.map(|s| s.ibytes), "obytes": s.map(|s| s.obytes),
            "imissed": s.map(|s| s.imissed), "ierrors": s.map(|s| s.ierrors),
            "oerrors": s.map(|s| s.oerrors), "rx_nombuf": s.map(|s| s.rx_nombuf),
        })
    });
    let imp = |i: crate::ImpairStats| json!({"dropped": i.dropped, "reordered": i.reordered, "delayed": i.delayed});
    let device = json!({
        "tx_mode": format!("{:?}", rt.dev.tx_mode()),
        "rx_frames": d.rx_frames, "rx_chains_copied": d.rx_chains_copied,
        "rx_mbufs_handed_over": d.rx_mbufs_handed_over, "rx_mbufs_held": d.rx_mbufs_held,
        "tx_frames_zero_copy": d.tx_frames_zero_copy, "tx_frames_copied": d.tx_frames_copied,
        "tx_payload_zero_copy": d.tx_payload_zero_copy, "tx_payload_copied": d.tx_payload_copied,
        "extbuf_attachments": d.extbuf_attachments, "extbuf_completions": d.extbuf_completions,
        "frames_in_flight": d.frames_in_flight, "completion_high_water": d.completion_high_water,
        "payload_prefetch": if rt.dev.tx_prefetch() { "on" } else { "off" },
        "tx_lines_prefetched": d.tx_lines_prefetched,
        "tx_backpressure": d.tx_backpressure, "tx_burst_short": d.tx_burst_short,
        "mbufs_in_use": rt.dev.mbufs_in_use(),
        "rx_l4_verified": d.rx_l4_verified, "rx_l4_bad": d.rx_l4_bad,
        "rx_impaired": imp(d.rx_impaired), "tx_impaired": imp(d.tx_impaired),
    });
    let stack: serde_json::Map<String, serde_json::Value> =
        rt.stack.stats().fields().iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
    let sockets: Vec<serde_json::Value> = rt
        .stack
        .tcp_sockets(max_sockets)
        .iter()
        .map(|s| {
            json!({
                "local": s.local.to_string(),
                "remote": s.remote.map(|r| r.to_string()),
                "state": s.state.map_or("LISTEN".to_owned(), |st| format!("{st:?}")),
                "recv_q": s.recv_q, "send_q": s.send_q,
            })
        })
        .collect();
    use zcstack::mem::PageMemory;
    json!({
        "pid": std::process::id(),
        "lcore": crate::eal::lcore_id(),
        "lcore_index": rt.lcore_index(),
        "nb_lcores": rt.nb_lcores(),
        "steer": rt.dev.steer_stats().map(|s| json!({
            "steered_out": s.steered_out, "steered_in": s.steered_in, "copied": s.copied,
            "backlogged": s.backlogged, "backlog_now": s.backlog_now, "copy_failed": s.copy_failed,
            "dropped_at_close": s.dropped_at_close,
            "unread_at_close": s.unread_at_close,
            "dropped_owner_stalled": s.dropped_owner_stalled,
        })),
        "cpu": crate::eal::current_cpu(),
        "uptime_us": rt.now().total_micros(),
        "tsc_hz": rt.tsc_hz(),
        "cycles": {"usr": c.usr, "sys": c.sys, "idle": c.idle, "loops": c.loops, "busy_loops": c.busy_loops},
        "port": port,
        "device": device,
        "pages": {"free": rt.stack.mem().free_count(), "total": rt.stack.mem().capacity()},
        "stack": stack,
        "tcp_connections": rt.stack.tcp_connections(),
        "sockets": sockets,
        "stages": stages(rt),
    })
}

/// The `stages` part of the snapshot: `null` unless `[dpdk] stage_cycles`
/// is on; else every engine and loop stage as `{calls, cycles, max,
/// nested}` (TSC cycles; `nested`: already inside an engine stage) and the
/// busy passes with their log2 histogram and quantiles.
fn stages(rt: &crate::Runtime) -> serde_json::Value {
    use serde_json::json;
    let Some(l) = rt.loop_stages() else { return serde_json::Value::Null };
    let row = |c: zcstack::stages::StageCount, nested: bool| json!({"calls": c.calls, "cycles": c.cycles, "max": c.max, "nested": nested});
    let engine: serde_json::Map<String, serde_json::Value> =
        rt.stack.stage_cycles().iter().map(|(s, c)| (s.name().to_owned(), row(c, false))).collect();
    let lp: serde_json::Map<String, serde_json::Value> =
        l.iter().map(|(s, c)| (s.name().to_owned(), row(c, s.nested_in_engine()))).collect();
    json!({
        "engine": engine,
        "loop": lp,
        "passes": {
            "calls": l.passes.calls, "cycles": l.passes.cycles, "max": l.passes.max,
            "p50": l.pass_quantile(0.5), "p99": l.pass_quantile(0.99), "p999": l.pass_quantile(0.999),
            "log2": l.pass_log2.to_vec(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_reply_stale_socket_and_cleanup() {
        let dir = std::env::temp_dir().join(format!("zc-ctl-{}", std::process::id()));
        let path = dir.join("t.sock");
        std::fs::create_dir_all(&dir).unwrap();
        // A stale file from a crashed process is replaced.
        drop(UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let mut srv = ControlServer::bind(&path).unwrap();
        assert_eq!(ControlServer::bind(&path).unwrap_err().kind(), ErrorKind::AddrInUse);
        let p = path.clone();
        let client = std::thread::spawn(move || query(&p, "stats 3", Duration::from_secs(5)));
        let t = Instant::now();
        let mut seen = Vec::new();
        while !client.is_finished() && t.elapsed() < Duration::from_secs(5) {
            srv.serve(&mut |req| {
                seen.push(req.to_owned());
                format!("{{\"echo\":\"{req}\"}}")
            });
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(client.join().unwrap().unwrap(), "{\"echo\":\"stats 3\"}");
        assert_eq!(seen, ["stats 3"]);
        // A client that never sends a request is dropped at its deadline.
        let _idle = UnixStream::connect(&path).unwrap();
        srv.serve(&mut |_| unreachable!("no request was sent"));
        assert_eq!(srv.clients.len(), 1);
        srv.clients[0].deadline = Instant::now() - Duration::from_millis(1);
        srv.serve(&mut |_| unreachable!("no request was sent"));
        assert!(srv.clients.is_empty());
        drop(srv);
        assert!(!path.exists(), "the socket file goes with the server");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
