//! The C examples of `ffi/examples/`, built by `ffi/build-examples` with
//! `cc -Wall -Werror $(pkg-config --cflags --libs zcstack)`, run on a
//! `net_tap` port inside a private network namespace: the error-path
//! program passes every check; the kqueue, epoll and zero-copy HTTP servers
//! answer Linux `curl` (one request, then three on one keep-alive
//! connection) and `wrk` (2 s, 4 connections) without errors.
#[path = "../../examples/tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

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
    ns.wait_for_page("Hello from C on zcstack!");
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

/// The epoll example linked with `pkg-config --libs zcstack-static`
/// (libzcstack.a + DPDK's static archives): no shared DPDK library, and it
/// serves a page.
#[test]
fn statically_linked_example_serves_curl() {
    let exe = bin("main_epoll_static");
    let o = Command::new("ldd").arg(&exe).output().expect("ldd");
    let libs = String::from_utf8_lossy(&o.stdout);
    assert!(!libs.contains("librte_") && !libs.contains("libzcstack"), "linked statically: {libs}");
    let _turn = one_at_a_time();
    let mut ns = Netns::new("s");
    let conf = ns.config("c.ini", "");
    let first = ns.start(&exe, &["-c", &conf, "-t", "primary", "-p", "0"]);
    assert!(first.contains("listening on port 80"), "{first}");
    ns.kernel_side_up();
    ns.wait_for_page("Hello from C on zcstack!");
    let report = ns.stop("REPORT ");
    assert!(report["requests"].as_u64().unwrap() >= 1, "{report}");
}

#[test]
fn zero_copy_example_serves_curl_and_wrk() {
    serve("z", "main_zc");
}

/// Builds `zcstat` (examples/src/bin/zcstat.rs) and returns its path.
fn zcstat() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let o = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "zcstack-examples", "--bin", "zcstat"])
        .current_dir(&root)
        .output()
        .expect("cargo build zcstat");
    assert!(o.status.success(), "build zcstat: {}", String::from_utf8_lossy(&o.stderr));
    root.join("target/debug/zcstat")
}

fn stats(zcstat: &std::path::Path, conf: &str) -> serde_json::Value {
    let o = Command::new(zcstat).args(["--conf", conf, "stats", "--json"]).output().expect("run zcstat");
    assert!(o.status.success(), "zcstat: {}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).expect("zcstat --json prints JSON")
}

/// `ff_run` is `Runtime::run`'s loop: a C server answers `zcstat` on its
/// control socket, accounts usr/sys/idle cycles, sleeps `idle_sleep` when
/// idle (loops bounded by the elapsed time / the sleep) and writes
/// `[pcap]` files showing both directions.
#[test]
fn kqueue_example_gets_zcstat_pcap_and_idle_sleep_from_ff_run() {
    let _turn = one_at_a_time();
    let zcstat = zcstat();
    let mut ns = Netns::new("s");
    let dir = ns.dir.to_string_lossy().into_owned();
    let pcap = format!("[pcap]\nenable=1\nsnaplen=256\nsavelen=1048576\nsavepath={dir}\n");
    let conf = ns.config("s.ini", &pcap);
    let text = std::fs::read_to_string(&conf).unwrap().replacen("[dpdk]\n", "[dpdk]\nidle_sleep=1000\n", 1);
    std::fs::write(&conf, text).unwrap();
    let first = ns.start(&bin("main_kqueue"), &["-c", &conf]);
    assert!(first.contains("listening on port 80"), "{first}");
    ns.kernel_side_up();
    ns.wait_for_page("Hello from C on zcstack!");
    let a = stats(&zcstat, &conf);
    std::thread::sleep(Duration::from_millis(500));
    let b = stats(&zcstat, &conf);
    let d = |k: &str| b["cycles"][k].as_u64().unwrap() - a["cycles"][k].as_u64().unwrap();
    let up_us = b["uptime_us"].as_u64().unwrap() - a["uptime_us"].as_u64().unwrap();
    assert!(b["cycles"]["usr"].as_u64().unwrap() > 0 && b["cycles"]["sys"].as_u64().unwrap() > 0, "{b}");
    assert!(d("idle") > 0 && d("loops") > 0, "idle passes are counted: {a} {b}");
    // Each idle pass sleeps at least idle_sleep = 1 ms.
    let idle_loops = d("loops") - d("busy_loops");
    assert!(idle_loops <= up_us / 1000 + 1, "idle_sleep: {idle_loops} idle passes in {up_us} us");
    assert!(b["stack"].as_object().is_some_and(|s| !s.is_empty()), "engine counters: {b}");
    let report = ns.stop("REPORT ");
    assert!(report["requests"].as_u64().unwrap() >= 1, "{report}");
    let out = Command::new("tcpdump")
        .args(["-r", ns.dir.join("cpu0_0.pcap").to_str().unwrap(), "-nn", "-A"])
        .output()
        .expect("run tcpdump");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "tcpdump -r: {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("GET / HTTP/1.1") && text.contains("HTTP/1.1 200 OK"), "both directions captured: {text}");
}
