//! Outbound connects from both lcores (issue 12, item 3): `bulk` as the
//! client with `lcore_mask=3` on a 2-queue `net_tap` inside a network
//! namespace this test creates, 8 connections to a Linux (Python) server in
//! the namespace. Each lcore opens its share (connection j on lcore j mod 2)
//! with the local port the RSS check chose; every connection completes with
//! the SHA-256 Linux computed, both lcores opened connections, no connect
//! was refused by the RSS check, and the steering counters agree (what one
//! lcore handed over is what the other took in, nothing dropped), so no
//! frame was processed by a stack that does not own its flow.
mod common;

use std::io::Read;
use std::process::{Command, Stdio};

use common::*;

/// Linux server: accepts `n` connections (a thread each), reads each to
/// its end, prints one `DIGEST <bytes> <sha256>` line per connection.
const SERVER: &str = r#"
import hashlib, socket, sys, threading, time
n = int(sys.argv[1])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
for _ in range(100):  # the address may still be settling on the new tap
    try:
        s.bind(("10.212.0.1", 5001))
        break
    except OSError:
        time.sleep(0.1)
s.listen(64)
s.settimeout(60)
out, lock = [], threading.Lock()
def serve(c):
    c.settimeout(60)
    h, got = hashlib.sha256(), 0
    while True:
        b = c.recv(1 << 20)
        if not b:
            break
        h.update(b)
        got += len(b)
    c.close()
    with lock:
        out.append((got, h.hexdigest()))
threads = []
for _ in range(n):
    c, _ = s.accept()
    t = threading.Thread(target=serve, args=(c,))
    t.start()
    threads.append(t)
for t in threads:
    t.join(60)
for got, d in out:
    print("DIGEST", got, d)
"#;

#[test]
fn both_lcores_connect_out_to_a_linux_server() {
    let _turn = one_at_a_time();
    let mut ns = Netns::new("mqo");
    let conf = ns.config("mqo.ini", "");
    let text = std::fs::read_to_string(&conf)
        .unwrap()
        .replace("lcore_mask=1", "lcore_mask=3")
        .replace("driver=net_tap", "driver=net_tap\nqueues=2");
    std::fs::write(&conf, text).unwrap();
    let bytes = (16u64 << 20).to_string();
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.name, env!("CARGO_BIN_EXE_bulk"), "--conf", &conf, "--role", "send"])
        .args(["--peer", KERNEL, "--port", "5001", "--bytes", &bytes, "--connections", "8", "--timeout", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bulk in the netns");
    // Dropping `ns` kills the client if an assert fails.
    ns.server = Some(child);
    ns.kernel_side_up();
    let server = ns.run(&["timeout", "90", "python3", "-c", SERVER, "8"]);
    let sout = String::from_utf8_lossy(&server.stdout).into_owned();
    let mut child = ns.server.take().unwrap();
    let mut cout = String::new();
    child.stdout.take().unwrap().read_to_string(&mut cout).unwrap();
    let mut cerr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut cerr).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "bulk: {cout}\n{cerr}\nserver: {sout} {}", String::from_utf8_lossy(&server.stderr));
    let line = cout.lines().find_map(|l| l.strip_prefix("BULK ")).unwrap_or_else(|| panic!("no BULK line:\n{cout}"));
    let r: serde_json::Value = serde_json::from_str(line).unwrap();
    eprintln!("{r}");
    // Every connection completed whole: Linux's digests are the sender's.
    let mut linux: Vec<String> = sout
        .lines()
        .filter_map(|l| l.strip_prefix("DIGEST "))
        .map(|l| l.split_whitespace().nth(1).unwrap().to_owned())
        .collect();
    let got: u64 = sout
        .lines()
        .filter_map(|l| l.strip_prefix("DIGEST "))
        .map(|l| l.split(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(linux.len(), 8, "Linux saw every connection end: {sout}");
    assert_eq!(got, 16 << 20, "{sout}");
    let mut ours: Vec<String> =
        r["sha256s"].as_array().unwrap().iter().map(|d| d.as_str().unwrap().to_owned()).collect();
    linux.sort();
    ours.sort();
    assert_eq!(linux, ours, "{r}");
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["nb_lcores"], 2, "{r}");
    let lc = r["lcores"].as_array().unwrap();
    for l in lc {
        assert_eq!(l["connections"], 4, "each lcore opened its share: {r}");
        assert!(l["rx_frames"].as_u64().unwrap() > 0, "each lcore's stack received its replies: {r}");
        assert_eq!(l["rss_connect_refused"], 0, "{r}");
        assert_eq!(l["steer_dropped_at_close"], 0, "{r}");
        assert_eq!(l["clean"], true, "pages and mbufs back: {r}");
    }
    let n = |i: usize, k: &str| lc[i][k].as_u64().unwrap();
    let took = |i: usize| n(i, "steered_in") + n(i, "steer_unread_at_close");
    assert_eq!(n(0, "steered_out"), took(1), "lcore 0 handed over what lcore 1 took in: {r}");
    assert_eq!(n(1, "steered_out"), took(0), "lcore 1 handed over what lcore 0 took in: {r}");
}
