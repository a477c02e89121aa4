//! The C examples of `ffi/examples/`, built by `ffi/build-examples` with
//! `cc -Wall -Werror $(pkg-config --cflags --libs zcstack)`, run on a
//! `net_tap` port inside a private network namespace: the error-path
//! program passes every check; the kqueue, epoll and zero-copy HTTP servers
//! answer Linux `curl` (one request, then three on one keep-alive
//! connection) and `wrk` (2 s, 4 connections) without errors.
mod common;

use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;

/// Builds the library, the pkg-config file and the examples once.
fn examples() -> &'static std::path::Path {
    static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let o = Command::new(root.join("ffi/build-examples")).arg("debug").output().expect("run ffi/build-examples");
        assert!(
            o.status.success(),
            "ffi/build-examples failed:\n{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        root.join("target/debug/ffi-examples")
    })
}

fn bin(name: &str) -> String {
    examples().join(name).to_string_lossy().into_owned()
}

#[test]
fn error_paths_give_linux_errno_values() {
    let _turn = one_at_a_time();
    let ns = Netns::new("e");
    let conf = ns.config("err.ini", "");
    let o = ns.run(&[&bin("errors"), "-c", &conf]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "errors example failed:\n{out}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("ERRORS passed=") && out.contains("failed=0"), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
    for check in ["missing config", "ff_init twice", "AF_INET6", "another thread", "bad fd", "blocking refused"] {
        assert!(out.lines().any(|l| l.starts_with("PASS") && l.contains(check)), "no PASS for {check}: {out}");
    }
}

fn serve(tag: &str, example: &str) {
    let _turn = one_at_a_time();
    let mut ns = Netns::new(tag);
    let conf = ns.config("c.ini", "");
    let first = ns.start(&bin(example), &["-c", &conf, "-t", "primary", "-p", "0"]);
    assert!(first.contains("listening on port 80"), "{first}");
    ns.kernel_side_up();
    let t = Instant::now();
    loop {
        let o = ns.run(&["curl", "-s", "-m", "3", "http://10.212.0.2/"]);
        if o.status.success() {
            assert!(String::from_utf8_lossy(&o.stdout).contains("Hello from C on zcstack!"));
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "curl never got the page");
        std::thread::sleep(Duration::from_millis(200));
    }
    let o = ns.run(&["curl", "-s", "-m", "5", "-v", "http://10.212.0.2/", "http://10.212.0.2/", "http://10.212.0.2/"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout).matches("Hello from C on zcstack!").count(), 3);
    let verbose = String::from_utf8_lossy(&o.stderr);
    assert!(
        verbose.contains("Re-using existing connection") || verbose.matches("Connected to").count() == 1,
        "keep-alive: {verbose}"
    );
    let o = ns.run(&["wrk", "-t1", "-c4", "-d2s", "http://10.212.0.2/"]);
    let wrk = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{wrk}");
    assert!(!wrk.contains("Non-2xx") && !wrk.contains("Socket errors"), "{wrk}");
    let reqs: u64 = wrk
        .lines()
        .find_map(|l| l.trim().split_once(" requests in ").map(|(n, _)| n.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    assert!(reqs > 100, "{wrk}");
    let report = ns.stop("REPORT ");
    assert!(report["requests"].as_u64().unwrap() >= reqs + 4, "{report}");
    if example == "main_zc" {
        assert!(report["zc_writes"].as_u64().unwrap() >= reqs + 4, "{report}");
    }
}

#[test]
fn kqueue_example_serves_curl_and_wrk() {
    serve("k", "main_kqueue");
}

#[test]
fn epoll_example_serves_curl_and_wrk() {
    serve("p", "main_epoll");
}

#[test]
fn zero_copy_example_serves_curl_and_wrk() {
    serve("z", "main_zc");
}
