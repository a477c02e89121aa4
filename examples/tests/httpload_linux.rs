//! zcstack's `httpload` (on a `net_tap` port in a private netns) against a
//! Linux HTTP server, nginx, on the kernel side of the tap: keep-alive (with
//! nginx ending connections every 100 requests, which httpload must follow
//! without errors) and connection per request; every response is a 200 of
//! the right length and both sides end clean. Both again over an impaired
//! path (netem's loss 3%, reorder 10%, delay 1 ms, by zcstack's `[impair]`).
mod common;

use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

/// nginx in `ns` on *:8080 with a 1 KiB page; stopped by [`terminate`]
/// (its worker too), and anything left killed with the namespace.
fn start_nginx(ns: &mut Netns) -> std::process::Child {
    let d = ns.dir.display();
    let conf = ns.dir.join("nginx.conf");
    let page = "x".repeat(1024);
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1; daemon off; pid {d}/nginx.pid; error_log {d}/nginx.err;\n\
             events {{ worker_connections 1024; }}\n\
             http {{ access_log off; default_type text/plain; keepalive_requests 100;\n\
             client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};\n\
             server {{ listen 8080 reuseport; location / {{ return 200 \"{page}\"; }} }} }}\n"
        ),
    )
    .unwrap();
    Command::new("ip")
        .args(["netns", "exec", &ns.name, "nginx", "-c", conf.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx (ci/setup installs nginx-light)")
}

fn load(tag: &str, close: bool, impair: &str) -> Value {
    let _turn = one_at_a_time();
    let mut ns = Netns::new(tag);
    let mut nginx = start_nginx(&mut ns);
    let conf = ns.config("hl.ini", &format!("[tcp]\nmin_rto_us=10000\n{impair}"));
    let mut args = vec!["--conf", conf.as_str(), "--server", KERNEL, "--port", "8080", "-n", "4", "-d", "2"];
    args.extend(["--wait-server", "20"]);
    if close {
        args.push("--close");
    }
    // httpload creates the tap; the kernel side is configured while it probes.
    let client = Command::new("ip")
        .args(["netns", "exec", &ns.name, env!("CARGO_BIN_EXE_httpload")])
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    ns.kernel_side_up();
    let out = client.wait_with_output().unwrap();
    terminate(&mut nginx);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(kill_netns_pids(&ns.name), 0, "nginx's master stops its worker: {text}");
    let line = text.lines().find_map(|l| l.strip_prefix("HTTPLOAD ")).unwrap_or_else(|| panic!("{text}"));
    serde_json::from_str(line).unwrap()
}

fn check(r: &Value, min_requests: u64) {
    assert!(r["requests"].as_u64().unwrap() > min_requests, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["timeouts"], 0, "{r}");
    assert_eq!(r["non_2xx"], 0, "{r}");
    assert_eq!(r["clean"], true, "{r}");
    assert!(r["bytes"].as_u64().unwrap() > 1024 * r["requests"].as_u64().unwrap(), "every body is 1 KiB: {r}");
    assert!(r["p50_us"].as_f64().unwrap() > 0.0 && r["p99_us"].as_f64() >= r["p50_us"].as_f64(), "{r}");
}

#[test]
fn httpload_keepalive_against_nginx_over_net_tap() {
    let r = load("hk", false, "");
    check(&r, 200);
    let (reqs, connects) = (r["requests"].as_u64().unwrap(), r["connects"].as_u64().unwrap());
    assert!(
        connects > 4 && connects <= reqs / 100 + 4 + 1,
        "nginx closes every 100 requests, httpload reconnects: {r}"
    );
}

#[test]
fn httpload_connection_per_request_against_nginx_over_net_tap() {
    let r = load("hp", true, "");
    check(&r, 200);
    assert!(r["connects"].as_u64().unwrap() >= r["requests"].as_u64().unwrap(), "{r}");
}

#[test]
fn httpload_against_nginx_under_loss_reorder_and_delay() {
    // A lost SYN or SYN-ACK (about 6% of connects) costs the initial RTO of
    // 1 s (RFC 6298), so connection per request completes far fewer.
    for (tag, close, min_requests) in [("ik", false, 200), ("ip", true, 20)] {
        let r = load(tag, close, IMPAIR);
        check(&r, min_requests);
        assert!(r["impaired"]["dropped"].as_u64().unwrap() > 0, "{r}");
        assert!(r["impaired"]["reordered"].as_u64().unwrap() > 0, "{r}");
    }
}

/// A server that accepts and never answers: every request ends as a
/// timeout, found by httpload's periodic sweep (no event ever comes for a
/// response that never arrives), and its connection is replaced.
#[test]
fn httpload_counts_requests_a_silent_server_never_answers_as_timeouts() {
    let _turn = one_at_a_time();
    let ns = Netns::new("hs");
    // Accepts and holds connections, reads nothing; bounded by `timeout`.
    let mut silent = Command::new("ip")
        .args(["netns", "exec", &ns.name, "timeout", "30", "python3", "-c"])
        .arg(
            "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('0.0.0.0',8081))\ns.listen(64)\nheld=[]\nwhile True:\n    held.append(s.accept()[0])\n",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let conf = ns.config("hs.ini", "[tcp]\nmin_rto_us=10000\n");
    let client = Command::new("ip")
        .args(["netns", "exec", &ns.name, env!("CARGO_BIN_EXE_httpload")])
        .args(["--conf", conf.as_str(), "--server", KERNEL, "--port", "8081", "-n", "2", "-d", "2"])
        .args(["--timeout-ms", "200", "--wait-server", "20"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    ns.kernel_side_up();
    let out = client.wait_with_output().unwrap();
    // SIGTERM: `timeout` passes it to python (SIGKILL would orphan it).
    terminate(&mut silent);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    let line = text.lines().find_map(|l| l.strip_prefix("HTTPLOAD ")).unwrap_or_else(|| panic!("{text}"));
    let r: Value = serde_json::from_str(line).unwrap();
    assert_eq!(r["requests"], 0, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    // 2 connections x (2 s / 200 ms), less the connects: at least 2 each.
    let timeouts = r["timeouts"].as_u64().unwrap();
    assert!(timeouts >= 4, "{r}");
    assert!(r["connects"].as_u64().unwrap() >= timeouts, "each timed-out connection is replaced: {r}");
    assert_eq!(r["clean"], true, "{r}");
}
