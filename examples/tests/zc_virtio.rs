//! Zero-copy TCP over `net_virtio_user` <-> `net_vhost` in two processes
//! (TX completion deferred like a real NIC): `bulk` sends 256 MiB in
//! zero-copy mode; the stream's SHA-256 must match, the sender must have
//! copied no payload byte, and both processes must end with every page and
//! every device mbuf back. A copy-mode run checks the counters the other way.
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Kills the child on drop (test failure included).
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn bulk_line(out: &str) -> Value {
    let line = out.lines().find_map(|l| l.strip_prefix("BULK ")).unwrap_or_else(|| panic!("no BULK line in:\n{out}"));
    serde_json::from_str(line).expect("BULK line is JSON")
}

/// Runs receiver (vhost, CPU 0) and sender (virtio-user, CPU 1); returns their reports.
fn run_pair(tag: &str, mode: &str, bytes: usize) -> (Value, Value) {
    // One pair at a time: each process is pinned to its own CPU.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bin = env!("CARGO_BIN_EXE_bulk");
    let sock = format!("/tmp/zc-bulk-{}-{tag}.sock", std::process::id());
    let _ = std::fs::remove_file(&sock);
    let recv = Command::new(bin)
        .args(["--role", "recv", "--lcores", "0@0", "--ip", "10.77.0.2", "--timeout", "60"])
        .args(["--vdev", &format!("net_vhost0,iface={sock},queues=1")])
        .args(["--file-prefix", &format!("zcr{}{tag}", std::process::id())])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the receiver");
    let mut recv = Guard(Some(recv));
    let t = Instant::now();
    while !std::path::Path::new(&sock).exists() {
        assert!(t.elapsed() < Duration::from_secs(20), "vhost socket {sock} never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    let send = Command::new(bin)
        .args(["--role", "send", "--lcores", "0@1", "--ip", "10.77.0.1", "--peer", "10.77.0.2", "--timeout", "60"])
        .args(["--vdev", &format!("net_virtio_user0,path={sock},queues=1,queue_size=1024")])
        .args(["--mode", mode, "--bytes", &bytes.to_string()])
        .args(["--file-prefix", &format!("zcs{}{tag}", std::process::id())])
        .output()
        .expect("run the sender");
    let recv_out = recv.0.take().expect("receiver").wait_with_output().expect("receiver output");
    let _ = std::fs::remove_file(&sock);
    let s = String::from_utf8_lossy(&send.stdout).into_owned();
    let r = String::from_utf8_lossy(&recv_out.stdout).into_owned();
    assert!(
        send.status.success() && recv_out.status.success(),
        "sender {:?}:\n{s}\n{}\nreceiver {:?}:\n{r}\n{}",
        send.status,
        String::from_utf8_lossy(&send.stderr),
        recv_out.status,
        String::from_utf8_lossy(&recv_out.stderr)
    );
    (bulk_line(&s), bulk_line(&r))
}

#[test]
fn zero_copy_256_mib_over_virtio_user_and_vhost() {
    let bytes = 256usize << 20;
    let (s, r) = run_pair("zc", "zc", bytes);
    assert_eq!(s["sha256"], r["sha256"], "stream SHA-256");
    assert_eq!(r["bytes"], bytes);
    assert_eq!(s["tx_mode"], "ZeroCopy", "{s}");
    assert_eq!(s["tx_bytes_copied"], 0, "no payload byte copied into the send queue: {s}");
    assert_eq!(s["dev_tx_payload_copied"], 0, "no payload byte copied into mbufs: {s}");
    assert!(s["dev_tx_payload_zero_copy"].as_u64().unwrap() >= bytes as u64, "{s}");
    assert!(s["extbuf_attachments"].as_u64().unwrap() > 0);
    assert_eq!(s["extbuf_attachments"], s["extbuf_completions"], "every attachment completed by close: {s}");
    for v in [&s, &r] {
        assert_eq!(v["clean"], true, "pages and mempools back to their start counts: {v}");
        assert_eq!(v["pages_free"], v["pages_total"]);
        assert_eq!(v["mbufs_in_use"], 0);
    }
}

#[test]
fn copy_mode_over_virtio_user_counts_copies() {
    let bytes = 32usize << 20;
    let (s, r) = run_pair("cp", "copy", bytes);
    assert_eq!(s["sha256"], r["sha256"]);
    assert_eq!(s["tx_mode"], "Copy");
    assert_eq!(s["tx_bytes_copied"], bytes);
    assert_eq!(s["dev_tx_payload_zero_copy"], 0);
    assert_eq!(s["extbuf_attachments"], 0);
    assert_eq!(s["clean"], true);
    assert_eq!(r["clean"], true);
}
