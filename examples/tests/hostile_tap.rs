//! Issue 10's inputs 2-4 against `helloworld` on a `net_tap` port inside a
//! network namespace this test creates, driven from the kernel side with raw
//! frames: `hostile_peer.py` (scapy over an AF_PACKET socket) speaks TCP from
//! 10.212.0.9, an address no kernel interface owns, so the kernel's own TCP
//! never answers (it would reset the crafted connection); the script answers
//! zcstack's ARP itself. Each scenario is bounded in time by the script and
//! by `timeout`; the namespace, tap and server go on drop, also on failure.
mod common;

use common::*;
use serde_json::Value;

/// Runs one scenario of the script against a fresh helloworld; returns its report.
fn scenario(tag: &str, name: &str) -> Value {
    scenario_with(tag, name, &[])
}

/// [`scenario`] with extra script arguments (seed, then scenario options).
fn scenario_with(tag: &str, name: &str, extra: &[&str]) -> Value {
    let _turn = one_at_a_time();
    let mut ns = Netns::new(tag);
    let conf = ns.config("hw.ini", "");
    let first = ns.start(env!("CARGO_BIN_EXE_helloworld"), &["--conf", conf.as_str(), "--duration", "120"]);
    assert!(first.contains("listening on 10.212.0.2:80"), "{first}");
    ns.kernel_side_up();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/hostile_peer.py");
    let iface = ns.iface.clone();
    let mut cmd = vec!["timeout", "90", "/usr/bin/python3", script, name, iface.as_str(), OURS];
    cmd.extend_from_slice(extra);
    let o = ns.run(&cmd);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let line = stdout.lines().find_map(|l| l.strip_prefix("HOSTILE ")).unwrap_or_else(|| {
        panic!("{name}: no report (status {:?}): {stdout}\n{}", o.status, String::from_utf8_lossy(&o.stderr))
    });
    let r: Value = serde_json::from_str(line).expect("the report is JSON");
    eprintln!("{name}: {r}");
    assert!(r.get("error").is_none(), "{name}: {r}");
    let report = ns.stop("HELLOWORLD ");
    eprintln!("{name}: helloworld {report}");
    r
}

/// Input 2: after one ACK with a SACK block ending at snd_max - flight/2 + 1,
/// the holes come back in full segments, no segment wholly SACKed is resent, and all
/// 40 responses arrive promptly (before another RTO could fire).
fn sack_after_rto(tag: &str, extra: &[&str]) {
    let r = scenario_with(tag, "sack", extra);
    let total = r["total"].as_u64().unwrap();
    let frames = r["data_frames_after_sack"].as_u64().unwrap();
    assert_eq!(r["responses"], 40, "every pipelined response arrives: {r}");
    assert_eq!(r["contiguous"].as_u64(), Some(total), "{r}");
    assert!(frames <= total / 1460 + 10, "about one frame per MSS, not per byte: {frames} frames: {r}");
    assert!(r["runts_after_sack"].as_u64().unwrap() <= 2, "no sub-MSS segments but the last: {r}");
    assert_eq!(r["sacked_bytes_resent"], 0, "nothing the peer SACKed is resent: {r}");
    let rto = r["rto_seconds"].as_f64().unwrap();
    assert!(r["seconds_to_complete"].as_f64().unwrap() < rto, "completes before another RTO ({rto} s): {r}");
}

/// The block starts one MSS past the ACK: one segment's hole before it.
#[test]
fn sack_block_past_half_the_flight_after_an_rto() {
    sack_after_rto("s", &[]);
}

/// The block is one byte short of an MSS and ends one byte into a segment
/// (both edges off the segment grid).
#[test]
fn sack_block_off_the_segment_grid_after_an_rto() {
    sack_after_rto("g", &["10", "1459"]);
}

fn zero_window(tag: &str, name: &str) {
    let r = scenario(tag, name);
    let probes = r["probe_times"].as_array().unwrap().len();
    assert!(probes >= 3, "probes repeat while the window is zero (8 s, backoff from the RTO): {r}");
    assert_eq!(r["starts_ok"], true, "{r}");
    assert_eq!(r["received"], r["expected"], "the whole response arrives after the window reopens: {r}");
}

/// Input 3: MSS 64, window 64, 64 bytes taken, then a zero window.
#[test]
fn zero_window_probes_repeat_and_the_response_completes() {
    zero_window("w", "zerowin");
}

/// Input 3, second form: the window-update ACK is lost; the next probe's
/// answer must reopen the window.
#[test]
fn zero_window_with_the_window_update_lost() {
    zero_window("l", "zerowin-lost");
}

/// Input 4: a GET whose ACK is for data never sent, or 2^30 behind snd_una,
/// is dropped with an ACK and never answered; a valid GET then is.
#[test]
fn get_with_an_ack_for_unsent_or_ancient_data_is_not_answered() {
    let r = scenario("a", "badack");
    for b in r["bad"].as_array().unwrap() {
        assert_eq!(b["data_bytes"], 0, "no response to a GET with a bad ACK: {r}");
        assert!(b["acks"].as_u64().unwrap() >= 1, "the bad segment is answered with an ACK: {r}");
    }
    assert_eq!(r["valid_answered"], true, "the connection still serves a valid GET: {r}");
}
