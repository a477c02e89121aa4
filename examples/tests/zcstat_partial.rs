//! `zcstat` against control sockets this test serves itself (no DPDK, no
//! network): a 3-lcore deployment whose lcore 1 does not answer (its
//! socket file is left behind by a killed process: connection refused) is
//! still shown: the answering lcores, lcore 1 marked, the sums over the
//! live ones; and a reader that closes the pipe early (`zcstat netstat |
//! head`) ends zcstat quietly instead of a panic.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

/// A fresh directory for this test's sockets (removed on drop).
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("zcstat-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One lcore's `stats` reply: `rx` frames, `socks` connections listed.
fn reply(index: usize, nb_lcores: usize, rx: u64, socks: usize) -> String {
    let sockets: Vec<_> = (0..socks)
        .map(|i| {
            json!({"local": "10.212.0.2:80", "remote": format!("10.212.0.1:{}", 10000 + i),
                   "state": "established", "recv_q": 0, "send_q": 0})
        })
        .collect();
    json!({
        "pid": 4242, "lcore": index, "lcore_index": index, "cpu": index, "nb_lcores": nb_lcores,
        "uptime_us": 1_000_000,
        "cycles": {"usr": 10, "sys": 0, "idle": 90, "loops": 100, "busy_loops": 10},
        "device": {"rx_frames": rx}, "stack": {"rx_frames": rx, "tcp_established": 1},
        "steer": {"steered_in": 0}, "tcp_connections": socks, "sockets": sockets,
    })
    .to_string()
}

/// Serves `reply` on `path` for connections accepted within 30 s (a
/// thread; bounded in time, so none outlives the test for long).
fn serve(path: &Path, reply: String) {
    let l = UnixListener::bind(path).unwrap();
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(30) {
            match l.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false).unwrap();
                    let mut line = String::new();
                    let mut r = BufReader::new(&s);
                    if r.read_line(&mut line).is_ok() {
                        let _ = (&s).write_all(format!("{reply}\n").as_bytes());
                    }
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    });
}

fn zcstat(main: &Path, view: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_zcstat")).arg("--sock").arg(main).args(view).output().unwrap()
}

#[test]
fn an_lcore_that_does_not_answer_is_marked_and_left_out_of_the_sums() {
    let dir = Dir::new("partial");
    let main = dir.0.join("zp.sock");
    serve(&main, reply(0, 3, 5, 2));
    // lcore 1: a socket file nobody listens on (its process was killed).
    drop(UnixListener::bind(dpdk_glue::control::lcore_control_path(&main, 1)).unwrap());
    serve(&dpdk_glue::control::lcore_control_path(&main, 2), reply(2, 3, 7, 1));

    let o = zcstat(&main, &["stats", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["nb_lcores"], 3, "{j}");
    assert_eq!(j["not_answering"], json!([1]), "{j}");
    assert_eq!(j["sum"]["stack"]["rx_frames"], 12, "the live lcores' sum: {j}");
    assert_eq!(j["lcores"][1]["lcore_index"], 1, "{j}");
    assert!(j["lcores"][1]["not_answering"].as_str().unwrap().contains("Connection refused"), "{j}");

    let o = zcstat(&main, &["stats"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    assert!(text.contains("lcore 1: not answering"), "{text}");
    assert!(text.contains("sums below are over the 2 of 3 lcores that answer"), "{text}");
    assert!(text.lines().any(|l| l == "stack.rx_frames = 12"), "{text}");
    let row: Vec<&str> = text
        .lines()
        .find(|l| l.starts_with("stack.rx_frames ") && !l.contains('='))
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(row[1..], ["5", "-", "7", "12"], "{text}");

    let o = zcstat(&main, &["netstat"]);
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{err}");
    assert_eq!(out.lines().filter(|l| l.contains("ESTABLISHED")).count(), 3, "{out}");
    assert!(err.contains("lcore 1 not answering"), "{err}");

    let o = zcstat(&main, &["top", "-d", "0.05", "-n", "1"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["1", "not", "answering"]), "{out}");
    assert_eq!(out.lines().count(), 5, "header, lcores 0-2, all: {out}");
}

#[test]
fn no_lcore_answering_is_an_error() {
    let dir = Dir::new("none");
    let main = dir.0.join("zn.sock");
    let o = zcstat(&main, &["stats"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("zn.sock") && err.contains("is the stack running?"), "{err}");
}

/// `zcstat netstat | head -1` and the like: the reader goes away after one
/// line; zcstat ends quietly (no panic, no backtrace), for every view.
#[test]
fn a_closed_stdout_ends_every_view_quietly() {
    let dir = Dir::new("pipe");
    let main = dir.0.join("zq.sock");
    // 5,000 connections: far more output than a pipe holds.
    serve(&main, reply(0, 1, 5, 5000));
    for view in [
        &["netstat", "--limit", "5000"][..],
        &["stats"],
        &["top", "-d", "0.05", "-n", "50"],
        &["traffic", "-d", "0.05", "-n", "50"],
    ] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_zcstat"))
            .arg("--sock")
            .arg(&main)
            .args(view)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = [0u8; 1];
        let mut stdout = c.stdout.take().unwrap();
        stdout.read_exact(&mut first).unwrap();
        drop(stdout);
        let o = c.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{view:?}: {err}");
        assert!(o.status.success(), "{view:?}: {:?} {err}", o.status);
    }
}
