//! Stage cycle counters over a real port (issue 13): `helloworld` on a
//! `net_tap` port inside a network namespace this test creates, with
//! `[dpdk] stage_cycles=1` and zero-copy send and receive; after `curl`
//! keep-alive requests, `zcstat` must show every engine stage and every
//! run-loop stage moving (calls and cycles), a longest call no shorter than
//! the mean, and busy passes with their quantiles. A second run without the
//! key must show no stages (off by default). Counts only, no timing targets.
mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

const ENGINE: [&str; 8] = ["completions", "parse", "lookup", "tcp_input", "events", "output", "tx", "timers"];
const LOOP: [&str; 7] = ["rx_burst", "tx_burst", "drain", "app", "control", "loop_overhead", "turnaround"];

/// Starts helloworld in `ns` with `stage_cycles`, fetches the page over a
/// few keep-alive requests, and returns `zcstat stats --json`, `zcstat
/// stages`' output (status, text) and the server's report.
fn run(tag: &str, stage_cycles: bool) -> (Value, (bool, String), Value) {
    let _turn = one_at_a_time();
    let mut ns = Netns::new(tag);
    let conf = ns.config("st.ini", "[zerocopy]\nsend=1\nrecv=1\nmin_write=0\n");
    if stage_cycles {
        let text =
            std::fs::read_to_string(&conf).unwrap().replace("pkt_tx_delay=0\n", "pkt_tx_delay=0\nstage_cycles=1\n");
        std::fs::write(&conf, text).unwrap();
    }
    let first = ns.start(env!("CARGO_BIN_EXE_helloworld"), &["--conf", conf.as_str(), "--duration", "60", "--zc"]);
    assert!(first.contains("listening on 10.212.0.2:80"), "{first}");
    ns.kernel_side_up();
    ns.wait_for_page("");
    let urls = vec!["http://10.212.0.2/"; 20];
    let mut cmd = vec!["curl", "-s", "-m", "10"];
    cmd.extend(urls.iter().copied());
    let o = ns.run(&cmd);
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout).matches("<h1>Welcome to zcstack!</h1>").count(), 20);
    let zcstat = env!("CARGO_BIN_EXE_zcstat");
    let json = Command::new(zcstat).args(["--conf", &conf, "stats", "--json"]).output().expect("run zcstat");
    assert!(json.status.success(), "zcstat: {}", String::from_utf8_lossy(&json.stderr));
    let snap: Value = serde_json::from_slice(&json.stdout).expect("zcstat's JSON");
    let view = Command::new(zcstat).args(["--conf", &conf, "stages"]).output().expect("run zcstat stages");
    let text = format!("{}{}", String::from_utf8_lossy(&view.stdout), String::from_utf8_lossy(&view.stderr));
    let report = ns.stop("HELLOWORLD ");
    (snap, (view.status.success(), text), report)
}

#[test]
fn every_stage_moves_with_stage_cycles_on() {
    let (snap, (ok, text), report) = run("s", true);
    assert!(report["requests"].as_u64().unwrap() >= 21, "{report}");
    assert_eq!(report["clean"], true, "{report}");
    let st = &snap["stages"];
    for (group, names) in [("engine", &ENGINE[..]), ("loop", &LOOP[..])] {
        for name in names {
            let s = &st[group][name];
            let (calls, cycles, max) = (s["calls"].as_u64(), s["cycles"].as_u64(), s["max"].as_u64());
            let (Some(calls), Some(cycles), Some(max)) = (calls, cycles, max) else {
                panic!("{group}.{name} missing: {st}")
            };
            assert!(calls > 0 && cycles > 0, "{group}.{name} never moved: {s}");
            assert!(max >= cycles / calls && max <= cycles, "{group}.{name} longest call out of range: {s}");
        }
    }
    let p = &st["passes"];
    assert!(p["calls"].as_u64().unwrap() > 0, "{p}");
    assert_eq!(
        p["log2"].as_array().unwrap().iter().filter_map(Value::as_u64).sum::<u64>(),
        p["calls"].as_u64().unwrap()
    );
    assert!(p["p50"].as_u64().unwrap() <= p["p99"].as_u64().unwrap(), "{p}");
    assert!(p["p99"].as_u64().unwrap() <= p["p999"].as_u64().unwrap(), "{p}");
    // The human view names every stage and the passes (printed for the log).
    eprintln!("{text}");
    assert!(ok, "{text}");
    for name in ENGINE.iter().chain(&LOOP) {
        assert!(text.contains(name), "zcstat stages lacks {name}: {text}");
    }
    assert!(text.contains("busy passes"), "{text}");
}

#[test]
fn no_stages_without_the_key() {
    let (snap, (ok, text), report) = run("n", false);
    assert!(report["requests"].as_u64().unwrap() >= 21, "{report}");
    assert!(snap["stages"].is_null(), "off by default: {}", snap["stages"]);
    assert!(!ok && text.contains("stage_cycles=1"), "zcstat says how to turn them on: {text}");
}
