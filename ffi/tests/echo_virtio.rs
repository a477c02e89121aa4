//! The C echo pair (`ffi/examples/echo_server.c`, `echo_client.c`, built by
//! `ffi/build-examples` with `cc -Wall -Werror` and pkg-config) over
//! virtio-user <-> vhost, two processes each configured by a config.ini:
//! the client sends 8 MiB of a pseudo-random stream and reads it back; the
//! SHA-256 of what it sent, of what came back and of what the server
//! received are equal, and equal to the SHA-256 Rust computes of the same
//! stream (so the C side's hash is checked too).
#[path = "../../examples/tests/common/mod.rs"]
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sha2::{Digest, Sha256};

/// Kills the server and removes the pair's files, also when the test fails.
struct Pair {
    server: Option<Child>,
    dir: std::path::PathBuf,
    sock: String,
}

impl Drop for Pair {
    fn drop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(&self.sock);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn examples() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let o = Command::new(root.join("ffi/build-examples")).arg("debug").output().expect("run ffi/build-examples");
    assert!(o.status.success(), "ffi/build-examples failed: {}", String::from_utf8_lossy(&o.stderr));
    root.join("target/debug/ffi-examples")
}

/// The client's stream: xorshift64* bytes, as echo_client.c makes them.
fn stream_sha256(total: usize) -> String {
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = Sha256::new();
    let mut chunk = Vec::with_capacity(64 * 1024);
    let mut left = total;
    while left > 0 {
        chunk.clear();
        for _ in 0..left.min(64 * 1024) {
            rng ^= rng >> 12;
            rng ^= rng << 25;
            rng ^= rng >> 27;
            chunk.push((rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8);
        }
        h.update(&chunk);
        left -= chunk.len();
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn json_after(text: &str, prefix: &str) -> serde_json::Value {
    let line = text.lines().find_map(|l| l.strip_prefix(prefix)).unwrap_or_else(|| panic!("no {prefix}in:\n{text}"));
    serde_json::from_str(line).unwrap()
}

#[test]
fn c_echo_pair_over_virtio_user_and_vhost_keeps_every_byte() {
    let _turn = one_at_a_time();
    let bin = examples();
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("zc-ffecho-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = format!("/tmp/zc-ffecho-{pid}.sock");
    let _ = std::fs::remove_file(&sock);
    let mut pair = Pair { server: None, dir: dir.clone(), sock: sock.clone() };
    let srv = pair_config(&dir, "srv.ini", "1", "10.78.0.2", &format!("driver=net_vhost\npath={sock}"), "");
    let cli = pair_config(&dir, "cli.ini", "2", "10.78.0.1", &format!("driver=net_virtio_user\npath={sock}"), "");
    let mut server = Command::new(bin.join("echo_server"))
        .args(["-c", &srv, "--", "7"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("srv.err")).unwrap())
        .spawn()
        .expect("start echo_server");
    let out = server.stdout.take().unwrap();
    pair.server = Some(server);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(30)).expect("echo_server starts");
    assert!(first.contains("listening on port 7"), "{first}");
    let t = Instant::now();
    while !std::path::Path::new(&sock).exists() {
        assert!(t.elapsed() < Duration::from_secs(20), "vhost socket {sock} never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    let total = 8usize << 20;
    let o = Command::new("timeout")
        .args(["150"])
        .arg(bin.join("echo_client"))
        .args(["-c", &cli, "--", "10.78.0.2", "7", &total.to_string()])
        .output()
        .expect("run echo_client");
    let ctext = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "echo_client failed:\n{ctext}\n{}", String::from_utf8_lossy(&o.stderr));
    let c = json_after(&ctext, "ECHO_CLIENT ");
    let pid = pair.server.as_ref().unwrap().id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut stext = String::new();
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(20)) {
        stext.push_str(&l);
        stext.push('\n');
        if l.starts_with("ECHO_SERVER ") {
            break;
        }
    }
    let s = json_after(&stext, "ECHO_SERVER ");
    assert_eq!(
        c["sha256_abc"], "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        "the C SHA-256 meets FIPS 180-4's test vector"
    );
    let want = stream_sha256(total);
    assert_eq!((c["sent"].as_u64(), c["received"].as_u64()), (Some(total as u64), Some(total as u64)), "{c}");
    assert_eq!(c["sha256_sent"], want.as_str(), "the client's stream");
    assert_eq!(c["sha256_received"], want.as_str(), "echoed back intact");
    assert_eq!(s["sha256"], want.as_str(), "the server received it intact: {s}");
    assert_eq!((s["rx_bytes"].as_u64(), s["tx_bytes"].as_u64()), (Some(total as u64), Some(total as u64)));
    assert_eq!(s["accepted"], 1);
}
