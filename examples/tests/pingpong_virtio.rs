//! `pingpong` against `echo` over virtio-user <-> vhost (two processes, both
//! configured by config.ini): 64-byte round trips for two seconds, every
//! byte echoed, latency percentiles in order, both ends clean.
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn json_after(text: &str, prefix: &str) -> Value {
    let line = text.lines().find_map(|l| l.strip_prefix(prefix)).unwrap_or_else(|| panic!("no {prefix}in:\n{text}"));
    serde_json::from_str(line).unwrap()
}

#[test]
fn round_trips_of_64_bytes_against_echo() {
    let _turn = one_at_a_time();
    let dir = std::env::temp_dir().join(format!("zc-pp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = format!("/tmp/zc-pp-{}.sock", std::process::id());
    let _ = std::fs::remove_file(&sock);
    let server_conf = pair_config(&dir, "srv.ini", "1", "10.78.0.2", &format!("driver=net_vhost\npath={sock}"), "");
    let client_conf =
        pair_config(&dir, "cli.ini", "2", "10.78.0.1", &format!("driver=net_virtio_user\npath={sock}"), "");
    let mut server = Command::new(env!("CARGO_BIN_EXE_echo"))
        .args(["--conf", &server_conf, "--duration", "60"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("srv.err")).unwrap())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !std::path::Path::new(&sock).exists() {
        if t.elapsed() > Duration::from_secs(20) {
            let _ = server.kill();
            panic!("vhost socket never appeared");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let client = Command::new(env!("CARGO_BIN_EXE_pingpong"))
        .args(["--conf", &client_conf, "--server", "10.78.0.2", "-m", "64", "-t", "2", "--warmup-ms", "200"])
        .output()
        .unwrap();
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let sout = server.wait_with_output().unwrap();
    let serr = std::fs::read_to_string(dir.join("srv.err")).unwrap_or_default();
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_dir_all(&dir);
    let ctext = String::from_utf8_lossy(&client.stdout);
    assert!(client.status.success(), "{ctext}\n{}", String::from_utf8_lossy(&client.stderr));
    let c = json_after(&ctext, "PINGPONG ");
    let s = json_after(&format!("{}\n{serr}", String::from_utf8_lossy(&sout.stdout)), "ECHO ");
    assert!(c["measured"].as_u64().unwrap() > 1000, "{c}");
    assert!(c["measured"].as_u64() <= c["round_trips"].as_u64(), "warm-up not recorded: {c}");
    assert_eq!(c["connects"], 1, "{c}");
    let (min, p50, p99, max) = (
        c["min_us"].as_f64().unwrap(),
        c["p50_us"].as_f64().unwrap(),
        c["p99_us"].as_f64().unwrap(),
        c["max_us"].as_f64().unwrap(),
    );
    assert!(0.0 < min && min <= p50 && p50 <= p99 && p99 <= max, "{c}");
    assert_eq!(c["clean"], true, "{c}");
    // Every round trip's 64 bytes were echoed (the last may be in flight at the stop).
    let echoed = s["tcp_bytes"].as_u64().unwrap();
    let trips = c["round_trips"].as_u64().unwrap();
    assert!(echoed == 64 * trips || echoed == 64 * (trips + 1), "echo {s} vs client {c}");
    assert_eq!(s["clean"], true, "{s}");
}
