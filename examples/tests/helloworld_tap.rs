//! `helloworld` on a `net_tap` port inside a network namespace this test
//! creates, driven by a config.ini: the Linux `curl` fetches the page (one
//! request, then several on one keep-alive connection) and `wrk` loads it
//! for two seconds; copy and zero-copy responses. The namespace and the
//! server are removed even when the test fails.
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

struct Netns {
    name: String,
    server: Option<Child>,
    dir: std::path::PathBuf,
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn in_ns(ns: &str, cmd: &[&str]) -> std::process::Output {
    Command::new("ip").args(["netns", "exec", ns]).args(cmd).output().expect("run in the netns")
}

fn serve_and_fetch(tag: &str, zc: bool) -> Value {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let pid = std::process::id();
    let name = format!("zc-hw-{pid}-{tag}");
    let iface = format!("zchw{tag}");
    let dir = std::env::temp_dir().join(format!("zc-hw-{pid}-{tag}"));
    std::fs::create_dir_all(&dir).unwrap();
    let _ = Command::new("ip").args(["netns", "del", &name]).stderr(Stdio::null()).status();
    assert!(Command::new("ip").args(["netns", "add", &name]).status().unwrap().success());
    let mut ns = Netns { name: name.clone(), server: None, dir: dir.clone() };
    let conf = dir.join("config.ini");
    std::fs::write(
        &conf,
        format!(
            "[dpdk]\nlcore_mask=1\nno_huge=1\nmemory=512\nfile_prefix=zchw{pid}{tag}\nnb_vdev=1\npkt_tx_delay=0\n\
             [port0]\naddr=10.212.0.2\nnetmask=255.255.255.0\nbroadcast=10.212.0.255\ngateway=0.0.0.0\n\
             [vdev0]\ndriver=net_tap\niface={iface}\n\
             [freebsd.boot]\nmemsz_MB=64\n\
             [zerocopy]\nsend={z}\nrecv={z}\nmin_write=0\n\
             [pcap]\nenable={p}\nsnaplen=128\nsavelen=1048576\nsavepath={d}\n",
            z = u8::from(zc),
            p = u8::from(!zc),
            d = dir.display()
        ),
    )
    .unwrap();
    let mut args = vec![env!("CARGO_BIN_EXE_helloworld"), "--conf", conf.to_str().unwrap(), "--duration", "60"];
    if zc {
        args.push("--zc");
    }
    let child = Command::new("ip")
        .args(["netns", "exec", &name])
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start helloworld in the netns");
    ns.server = Some(child);
    let stdout = ns.server.as_mut().and_then(|c| c.stdout.take()).unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(30)).expect("helloworld starts");
    assert!(first.contains("listening on 10.212.0.2:80"), "{first}");
    for cmd in [
        vec!["ip", "addr", "add", "10.212.0.1/24", "dev", iface.as_str()],
        vec!["ip", "link", "set", iface.as_str(), "up"],
    ] {
        let o = in_ns(&name, &cmd);
        assert!(o.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
    // One request (retried while the link comes up), then three on one connection.
    let t = Instant::now();
    loop {
        let o = in_ns(&name, &["curl", "-s", "-m", "3", "http://10.212.0.2/"]);
        if o.status.success() {
            assert!(String::from_utf8_lossy(&o.stdout).contains("Welcome to zcstack!"));
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "curl never got the page");
        std::thread::sleep(Duration::from_millis(200));
    }
    let o = in_ns(
        &name,
        &["curl", "-s", "-m", "5", "-v", "http://10.212.0.2/", "http://10.212.0.2/", "http://10.212.0.2/"],
    );
    assert!(o.status.success());
    assert_eq!(String::from_utf8_lossy(&o.stdout).matches("<h1>Welcome to zcstack!</h1>").count(), 3);
    let verbose = String::from_utf8_lossy(&o.stderr);
    assert!(
        verbose.contains("Re-using existing connection") || verbose.matches("Connected to").count() == 1,
        "keep-alive: {verbose}"
    );
    // wrk for two seconds, keep-alive, 4 connections.
    let o = in_ns(&name, &["wrk", "-t1", "-c4", "-d2s", "http://10.212.0.2/"]);
    let wrk = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{wrk}");
    assert!(!wrk.contains("Non-2xx") && !wrk.contains("Socket errors"), "{wrk}");
    let reqs: u64 = wrk
        .lines()
        .find_map(|l| l.trim().split_once(" requests in ").map(|(n, _)| n.trim().parse().unwrap_or(0)))
        .unwrap_or(0);
    assert!(reqs > 100, "{wrk}");
    // Stop it and read its report.
    let pid = ns.server.as_ref().unwrap().id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let mut report = None;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(20)) {
        if let Some(j) = line.strip_prefix("HELLOWORLD ") {
            report = Some(serde_json::from_str::<Value>(j).unwrap());
            break;
        }
    }
    let _ = ns.server.take().map(|mut c| c.wait());
    let report = report.expect("helloworld reports at exit");
    assert!(report["requests"].as_u64().unwrap() >= reqs + 4, "{report}");
    if !zc {
        // [pcap] was on: the capture opens in tcpdump and shows the HTTP exchange.
        let out = Command::new("tcpdump")
            .args(["-r", dir.join("cpu0_0.pcap").to_str().unwrap(), "-nn", "-c", "200", "-A"])
            .output()
            .expect("run tcpdump");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "tcpdump -r: {}", String::from_utf8_lossy(&out.stderr));
        assert!(text.contains("10.212.0.1") && text.contains("10.212.0.2.80"), "{text}");
        assert!(text.contains("GET / HTTP/1.1") && text.contains("HTTP/1.1 200 OK"), "both directions captured");
    }
    report
}

#[test]
fn curl_and_wrk_against_helloworld_over_net_tap() {
    let r = serve_and_fetch("c", false);
    assert_eq!(r["clean"], true, "{r}");
    assert!(r["tx_bytes_copied"].as_u64().unwrap() > 0);
}

#[test]
fn zero_copy_responses_over_net_tap() {
    let r = serve_and_fetch("z", true);
    assert_eq!(r["clean"], true, "{r}");
    assert_eq!(r["tx_bytes_copied"], 0, "responses sent from the page array: {r}");
    assert!(r["tx_bytes_zero_copy"].as_u64().unwrap() > 0);
}
