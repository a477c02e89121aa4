//! `helloworld` on a `net_tap` port inside a network namespace this test
//! creates, driven by a config.ini: the Linux `curl` fetches the page (one
//! request, then several on one keep-alive connection) and `wrk` loads it
//! for two seconds; copy responses with `[pcap]` on (the capture must open
//! in `tcpdump -r`), and zero-copy responses; then zero-copy again over an
//! impaired path (netem's loss 3%, reorder 10%, delay 1 ms, applied by
//! `[impair]` at zcstack's port: these kernels have no `sch_netem`).
mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

fn serve_and_fetch(tag: &str, zc: bool, impair: &str) -> Value {
    let _turn = one_at_a_time();
    let mut ns = Netns::new(tag);
    let extra = format!(
        "[zerocopy]\nsend={z}\nrecv={z}\nmin_write=0\n[pcap]\nenable={p}\nsnaplen=128\nsavelen=1048576\nsavepath={d}\n{impair}",
        z = u8::from(zc),
        p = u8::from(!zc),
        d = ns.dir.display()
    );
    let conf = ns.config("hw.ini", &extra);
    let mut args = vec!["--conf", conf.as_str(), "--duration", "60"];
    if zc {
        args.push("--zc");
    }
    let first = ns.start(env!("CARGO_BIN_EXE_helloworld"), &args);
    assert!(first.contains("listening on 10.212.0.2:80"), "{first}");
    ns.kernel_side_up();
    // One request (retried while the link comes up), then three on one connection.
    ns.wait_for_page("Welcome to zcstack!");
    let o = ns.run(&["curl", "-s", "-m", "5", "-v", "http://10.212.0.2/", "http://10.212.0.2/", "http://10.212.0.2/"]);
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout).matches("<h1>Welcome to zcstack!</h1>").count(), 3);
    let verbose = String::from_utf8_lossy(&o.stderr);
    assert!(
        verbose.contains("Re-using existing connection") || verbose.matches("Connected to").count() == 1,
        "keep-alive: {verbose}"
    );
    // wrk for two seconds, keep-alive, 4 connections.
    let o = ns.run(&["wrk", "-t1", "-c4", "-d2s", "http://10.212.0.2/"]);
    let wrk = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{wrk}");
    assert!(!wrk.contains("Non-2xx") && !wrk.contains("Socket errors"), "{wrk}");
    let reqs: u64 = wrk
        .lines()
        .find_map(|l| l.trim().split_once(" requests in ").map(|(n, _)| n.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    assert!(reqs > 100, "{wrk}");
    let report = ns.stop("HELLOWORLD ");
    assert!(report["requests"].as_u64().unwrap() >= reqs + 4, "{report}");
    if !zc {
        // [pcap] was on: the capture opens in tcpdump and shows the HTTP exchange.
        let out = Command::new("tcpdump")
            .args(["-r", ns.dir.join("cpu0_0.pcap").to_str().unwrap(), "-nn", "-c", "200", "-A"])
            .output()
            .expect("run tcpdump");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "tcpdump -r: {}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains(KERNEL) && text.contains("10.212.0.2.80"), "{text}");
        assert!(text.contains("GET / HTTP/1.1") && text.contains("HTTP/1.1 200 OK"), "both directions captured");
    }
    report
}

#[test]
fn curl_and_wrk_against_helloworld_over_net_tap() {
    let r = serve_and_fetch("c", false, "");
    assert_eq!(r["clean"], true, "{r}");
    assert!(r["tx_bytes_copied"].as_u64().unwrap() > 0);
}

#[test]
fn zero_copy_responses_over_net_tap() {
    let r = serve_and_fetch("z", true, "");
    assert_eq!(r["clean"], true, "{r}");
    assert_eq!(r["tx_bytes_copied"], 0, "responses sent from the page array: {r}");
    assert!(r["tx_bytes_zero_copy"].as_u64().unwrap() > 0);
}

#[test]
fn curl_and_wrk_under_loss_reorder_and_delay() {
    let r = serve_and_fetch("i", true, IMPAIR);
    assert_eq!(r["clean"], true, "{r}");
    assert!(r["impaired"]["dropped"].as_u64().unwrap() > 0, "{r}");
    assert!(r["impaired"]["reordered"].as_u64().unwrap() > 0, "{r}");
}
