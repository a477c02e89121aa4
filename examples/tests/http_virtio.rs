//! `httpload` against `helloworld` over virtio-user <-> vhost (two
//! processes, both configured by config.ini): keep-alive and
//! connection-per-request, no errors, latency percentiles reported, and
//! both processes end with every page and mbuf back.
mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

/// The JSON after `prefix` in `out`'s stdout; panics with the status and
/// `stderr` when the line is missing.
fn report(out: &std::process::Output, stderr: &[u8], prefix: &str) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find_map(|l| l.strip_prefix(prefix)).unwrap_or_else(|| {
        panic!("no {prefix}in:\n{text}\n{}, stderr:\n{}", out.status, String::from_utf8_lossy(stderr))
    });
    serde_json::from_str(line).unwrap()
}

fn load(close: bool) -> (Value, Value) {
    let _turn = one_at_a_time();
    let tag = if close { "pc" } else { "ka" };
    let dir = std::env::temp_dir().join(format!("zc-http-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = format!("/tmp/zc-http-{}-{tag}.sock", std::process::id());
    let _ = std::fs::remove_file(&sock);
    let server_conf = pair_config(&dir, "srv.ini", "1", "10.78.0.2", &format!("driver=net_vhost\npath={sock}"), "");
    let client_conf = pair_config(
        &dir,
        "cli.ini",
        "2",
        "10.78.0.1",
        &format!("driver=net_virtio_user\npath={sock}\nqueue_size=1024"),
        "[tcp]\nmin_rto_us=10000\n",
    );
    let server = spawn_vhost_server(env!("CARGO_BIN_EXE_helloworld"), &server_conf, &dir, &sock);
    let mut args = vec!["--conf", client_conf.as_str(), "--server", "10.78.0.2", "-n", "8", "-d", "2"];
    if close {
        args.push("--close");
    }
    let client = Command::new(env!("CARGO_BIN_EXE_httpload")).args(&args).output().unwrap();
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let sout = server.wait_with_output().unwrap();
    let serr = std::fs::read(dir.join("srv.err")).unwrap_or_default();
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(client.status.success(), "{}", String::from_utf8_lossy(&client.stderr));
    (report(&client, &client.stderr, "HTTPLOAD "), report(&sout, &serr, "HELLOWORLD "))
}

#[test]
fn keepalive_load_against_helloworld() {
    let (c, s) = load(false);
    assert!(c["requests"].as_u64().unwrap() > 1000, "{c}");
    assert_eq!(c["errors"], 0, "{c}");
    assert_eq!(c["timeouts"], 0, "{c}");
    assert!(c["p50_us"].as_f64().unwrap() > 0.0 && c["p99_us"].as_f64() >= c["p50_us"].as_f64());
    assert!(c["connects"].as_u64().unwrap() <= 8, "keep-alive reuses connections: {c}");
    assert!(s["requests"].as_u64().unwrap() >= c["requests"].as_u64().unwrap(), "{s}");
    assert_eq!(c["clean"], true);
    assert_eq!(s["clean"], true, "{s}");
}

#[test]
fn connection_per_request_load_against_helloworld() {
    let (c, s) = load(true);
    assert!(c["requests"].as_u64().unwrap() > 100, "{c}");
    assert_eq!(c["errors"], 0, "{c}");
    assert!(c["connects"].as_u64().unwrap() >= c["requests"].as_u64().unwrap(), "a connection per request: {c}");
    assert_eq!(c["clean"], true);
    assert_eq!(s["clean"], true, "{s}");
}
