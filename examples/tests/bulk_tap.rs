//! 256 MiB each way between zcstack (`bulk`, zero-copy send and receive, on
//! net_tap in a private netns) and the Linux kernel's TCP (Python sockets),
//! checked by SHA-256 on both ends; then again over an impaired path (loss
//! 3%, reorder 10%, delay 1 ms: netem's settings, applied by zcstack's
//! `[impair]` at its port in both directions because these kernels have no
//! `sch_netem`).
mod common;

use std::process::{Command, Stdio};

use common::*;

const TOTAL: usize = 256 << 20;
/// Over the impaired path (the kernel's cwnd stays small at 3% loss).
const IMPAIRED_TOTAL: usize = 32 << 20;

const KERNEL_RECV: &str = r#"
import hashlib, socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 5001))
s.listen(1)
s.settimeout(60)
c, _ = s.accept()
h, n = hashlib.sha256(), 0
while True:
    b = c.recv(1 << 20)
    if not b:
        break
    h.update(b)
    n += len(b)
print(n, h.hexdigest())
"#;

const KERNEL_SEND: &str = r#"
import hashlib, socket, sys, time
total = int(sys.argv[2])
chunk = bytes((i * 7 + 3) % 251 for i in range(1 << 20))
for _ in range(100):
    try:
        s = socket.create_connection((sys.argv[1], 5002), timeout=5)
        break
    except OSError:
        time.sleep(0.1)
# Liveness bound per send (the connect timeout above would otherwise stay
# on the socket): under loss with RTO backoff a send may wait seconds.
s.settimeout(30)
h, n = hashlib.sha256(), 0
t0 = time.time()
while n < total:
    b = chunk[: min(len(chunk), total - n)]
    try:
        s.sendall(b)
    except OSError as e:
        sys.exit(f"sendall after {n} bytes, {time.time() - t0:.1f} s: {e!r}")
    h.update(b)
    n += len(b)
s.close()
print(n, h.hexdigest())
"#;

/// Starts `bulk --conf CONF ARGS` inside the namespace (stdout captured).
fn spawn_bulk(ns: &Netns, conf: &str, args: &[&str]) -> std::process::Child {
    Command::new("ip")
        .args(["netns", "exec", &ns.name, env!("CARGO_BIN_EXE_bulk"), "--conf", conf, "--timeout", "90"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start bulk in the netns")
}

fn bulk_json(out: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(out);
    let line = text.lines().find_map(|l| l.strip_prefix("BULK ")).unwrap_or_else(|| panic!("no BULK line:\n{text}"));
    serde_json::from_str(line).unwrap()
}

/// `total` bytes zcstack -> Linux, then Linux -> zcstack; returns both
/// `bulk` reports.
fn exchange(tag: &str, total: usize, extra: &str) -> (serde_json::Value, serde_json::Value) {
    let _turn = one_at_a_time();
    let mut ns = Netns::new(tag);
    let conf = ns.config(
        "bulk.ini",
        &format!(
            "[freebsd.sysctl]\nnet.inet.tcp.sendspace=1048576\nnet.inet.tcp.recvspace=1048576\n\
             [zerocopy]\nsend=1\nrecv=1\nmin_write=0\n{extra}"
        ),
    );
    // zcstack -> Linux.
    let total_s = total.to_string();
    ns.server =
        Some(spawn_bulk(&ns, &conf, &["--role", "send", "--peer", KERNEL, "--port", "5001", "--bytes", &total_s]));
    ns.kernel_side_up();
    let k = ns.run(&["python3", "-c", KERNEL_RECV, KERNEL]);
    assert!(k.status.success(), "{}", String::from_utf8_lossy(&k.stderr));
    let out = ns.server.take().unwrap().wait_with_output().unwrap();
    let s = bulk_json(&out.stdout);
    let kernel = String::from_utf8_lossy(&k.stdout).trim().to_owned();
    assert_eq!(kernel, format!("{total} {}", s["sha256"].as_str().unwrap()), "zcstack -> Linux: {s}");
    assert_eq!(s["dev_tx_payload_copied"], 0, "{s}");
    assert_eq!(s["clean"], true, "{s}");
    // The tap goes with its process.
    for _ in 0..100 {
        if !ns.run(&["ip", "link", "show", &ns.iface]).status.success() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Linux -> zcstack.
    ns.server = Some(spawn_bulk(&ns, &conf, &["--role", "recv", "--port", "5002"]));
    ns.kernel_side_up();
    let k = ns.run(&["python3", "-c", KERNEL_SEND, OURS, &total_s]);
    if !k.status.success() {
        // Show what the zcstack receiver saw before failing.
        let mut server = ns.server.take().unwrap();
        let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
        std::thread::sleep(std::time::Duration::from_secs(2));
        let _ = server.kill();
        let out = server.wait_with_output().unwrap();
        panic!(
            "Linux sender: {}\nzcstack receiver: {}",
            String::from_utf8_lossy(&k.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let out = ns.server.take().unwrap().wait_with_output().unwrap();
    let r = bulk_json(&out.stdout);
    let kernel = String::from_utf8_lossy(&k.stdout).trim().to_owned();
    assert_eq!(kernel, format!("{total} {}", r["sha256"].as_str().unwrap()), "Linux -> zcstack: {r}");
    assert!(r["rx_bytes_zero_copy"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(r["clean"], true, "{r}");
    (s, r)
}

#[test]
fn zcstack_and_linux_exchange_256_mib_each_way_over_net_tap() {
    let (s, r) = exchange("b", TOTAL, "");
    assert_eq!(s["impaired"]["dropped"], 0, "no impairment unless configured: {s}");
    assert_eq!(r["impaired"]["dropped"], 0);
}

#[test]
fn exchange_each_way_under_loss_reorder_and_delay() {
    let (s, r) = exchange("bi", IMPAIRED_TOTAL, &format!("{IMPAIR}[tcp]\nmin_rto_us=10000\n"));
    for j in [&s, &r] {
        let i = &j["impaired"];
        assert!(i["dropped"].as_u64().unwrap() > 100 && i["reordered"].as_u64().unwrap() > 100, "impaired: {j}");
    }
}
