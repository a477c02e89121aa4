//! `pingpong` against `echo` over virtio-user <-> vhost (two processes, both
//! configured by config.ini): 64-byte round trips for two seconds, every
//! byte echoed, latency percentiles in order, both ends clean. Meanwhile
//! `zcstat` attaches to both running stacks: `netstat` shows the listener
//! and the connection from each side, `top` and `traffic` show a busy loop
//! and packets moving, `stats` the counters.
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
    let server = spawn_vhost_server(env!("CARGO_BIN_EXE_echo"), &server_conf, &dir, &sock);
    let client = Command::new(env!("CARGO_BIN_EXE_pingpong"))
        .args(["--conf", &client_conf, "--server", "10.78.0.2", "-m", "64", "-t", "3", "--warmup-ms", "200"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let zcstat = |conf: &str, view: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_zcstat")).args(["--conf", conf]).args(view).output().unwrap();
        assert!(o.status.success(), "zcstat {view:?}: {}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // Wait for the connection, then look at both stacks while they run.
    let t = Instant::now();
    let mut netstat = String::new();
    while t.elapsed() < Duration::from_secs(20) {
        // The control socket appears once the stack is up.
        let o = Command::new(env!("CARGO_BIN_EXE_zcstat")).args(["--conf", &server_conf, "netstat"]).output().unwrap();
        netstat = String::from_utf8_lossy(&o.stdout).into_owned();
        if o.status.success() && netstat.contains("ESTABLISHED") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let rows: Vec<&str> = netstat.lines().collect();
    assert!(rows[0].contains("Recv-Q") && rows[0].contains("Foreign Address"), "{netstat}");
    assert!(rows.iter().any(|r| r.contains("10.78.0.2:7") && r.contains("*:*") && r.ends_with("LISTEN")), "{netstat}");
    assert!(rows.iter().any(|r| r.contains("10.78.0.2:7") && r.contains("10.78.0.1:") && r.ends_with("ESTABLISHED")));
    let theirs = zcstat(&client_conf, &["netstat"]);
    assert!(theirs.lines().any(|r| r.contains("10.78.0.2:7") && r.ends_with("ESTABLISHED")), "{theirs}");
    let top = zcstat(&server_conf, &["top", "-d", "0.3", "-n", "2"]);
    for line in top.lines().skip(1) {
        let pct: Vec<f64> = line.split_whitespace().take(3).map(|x| x.parse().unwrap()).collect();
        assert!((pct.iter().sum::<f64>() - 100.0).abs() < 0.5, "usr+sys+idle = 100%: {top}");
        assert!(pct[0] + pct[1] > 1.0, "the echo server is busy: {top}");
    }
    let traffic = zcstat(&server_conf, &["traffic", "-d", "0.3", "-n", "1"]);
    let rx: f64 = traffic.lines().nth(1).and_then(|l| l.split_whitespace().next()).unwrap().parse().unwrap();
    assert!(rx > 100.0, "packets arrive: {traffic}");
    let stats = zcstat(&server_conf, &["stats"]);
    assert!(stats.contains("port.name = net_vhost0") && stats.contains("stack.tcp_established = 1"), "{stats}");
    let client = client.wait_with_output().unwrap();
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
    // At most 2.8 s measured (less when connecting took retries) in 100 ms
    // windows, those with 100+ round trips kept: each kept window's p50
    // lies in the run's range, and the summary is their smallest, median,
    // largest.
    let w: Vec<f64> = c["window_p50_us"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(c["window_ms"], 100, "{c}");
    assert!((1..=30).contains(&w.len()) && c["windows"].as_u64() == Some(w.len() as u64), "{c}");
    assert_eq!(c["windows_overflow"], 0, "{c}");
    // Window p50s have two significant digits (1%), the run's three.
    assert!(w.iter().all(|&x| min * 0.99 <= x && x <= max * 1.01), "{c}");
    let (wmin, wmed, wmax) = (
        c["window_p50_min_us"].as_f64().unwrap(),
        c["window_p50_median_us"].as_f64().unwrap(),
        c["window_p50_max_us"].as_f64().unwrap(),
    );
    let lo = w.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = w.iter().copied().fold(0.0, f64::max);
    assert!(wmin == lo && wmax == hi && lo <= wmed && wmed <= hi, "{c}");
    // Every round trip's 64 bytes were echoed (the last may be in flight at the stop).
    let echoed = s["tcp_bytes"].as_u64().unwrap();
    let trips = c["round_trips"].as_u64().unwrap();
    assert!(echoed == 64 * trips || echoed == 64 * (trips + 1), "echo {s} vs client {c}");
    assert_eq!(s["clean"], true, "{s}");
}

/// F-Stack's process model: one config, one process per lcore of
/// `lcore_mask` (`--proc-id N` runs on the N-th lcore and serves the N-th
/// port of `port_list`), each an independent stack. Two `echo` processes
/// from one file, on CPUs 0 and 1, each behind its own vhost port; a
/// `pingpong` client reaches each, and `zcstat --proc-id` names each.
#[test]
fn one_config_two_processes_two_lcores_two_ports() {
    let _turn = one_at_a_time();
    let pid = std::process::id();
    let dir = std::env::temp_dir().join(format!("zc-mp-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
    let socks = [format!("/tmp/zc-mp-{pid}-0.sock"), format!("/tmp/zc-mp-{pid}-1.sock")];
    for s in &socks {
        let _ = std::fs::remove_file(s);
    }
    let group = dir.join("group.ini");
    std::fs::write(
        &group,
        format!(
            "[dpdk]\nlcore_mask=3\nport_list=0,1\nno_huge=1\nmemory=512\nfile_prefix=zcmp{pid}\nnb_vdev=2\npkt_tx_delay=0\n\
             [port0]\naddr=10.78.0.2\nnetmask=255.255.255.0\nbroadcast=10.78.0.255\ngateway=0.0.0.0\n\
             [port1]\naddr=10.79.0.2\nnetmask=255.255.255.0\nbroadcast=10.79.0.255\ngateway=0.0.0.0\n\
             [vdev0]\ndriver=net_vhost\npath={}\n[vdev1]\ndriver=net_vhost\npath={}\n\
             [freebsd.boot]\nmemsz_MB=64\n",
            socks[0], socks[1]
        ),
    )
    .unwrap();
    let group = group.to_string_lossy().into_owned();
    // Both servers run until stopped; a guard kills them if an assert fails.
    struct Kill(Vec<std::process::Child>);
    impl Drop for Kill {
        fn drop(&mut self) {
            for c in &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let mut servers = Kill(Vec::new());
    for (n, sock) in socks.iter().enumerate() {
        let child = Command::new(env!("CARGO_BIN_EXE_echo"))
            .args(["--conf", &group, "--proc-type", "auto", "--proc-id", &n.to_string(), "--duration", "60"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join(format!("srv{n}.err"))).unwrap())
            .spawn()
            .unwrap();
        servers.0.push(child);
        let t = Instant::now();
        while !std::path::Path::new(sock).exists() {
            assert!(t.elapsed() < Duration::from_secs(20), "proc {n}: vhost socket {sock} never appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    for (n, (sock, net)) in socks.iter().zip(["10.78.0", "10.79.0"]).enumerate() {
        let conf = dir.join(format!("cli{n}.ini"));
        // The client busy-polls on the CPU its server does not use: two
        // pollers on one CPU would take turns by scheduler time slices.
        let cli_mask = if n == 0 { 2 } else { 1 };
        std::fs::write(
            &conf,
            format!(
                "[dpdk]\nlcore_mask={cli_mask}\nno_huge=1\nmemory=512\nfile_prefix=zcmpc{pid}{n}\nnb_vdev=1\npkt_tx_delay=0\n\
                 [port0]\naddr={net}.1\nnetmask=255.255.255.0\nbroadcast={net}.255\ngateway=0.0.0.0\n\
                 [vdev0]\ndriver=net_virtio_user\npath={sock}\n[freebsd.boot]\nmemsz_MB=64\n"
            ),
        )
        .unwrap();
        let o = Command::new(env!("CARGO_BIN_EXE_pingpong"))
            .args(["--conf", conf.to_str().unwrap(), "--server", &format!("{net}.2"), "-m", "64", "-t", "1"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "client of proc {n}: {text}\n{}", String::from_utf8_lossy(&o.stderr));
        let c = json_after(&text, "PINGPONG ");
        assert!(c["round_trips"].as_u64().unwrap() > 100, "proc {n}: {c}");
        // zcstat finds process n by the group's config and its proc id.
        let o = Command::new(env!("CARGO_BIN_EXE_zcstat"))
            .args(["--conf", &group, "--proc-id", &n.to_string(), "stats"])
            .output()
            .unwrap();
        let stats = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "zcstat --proc-id {n}: {}", String::from_utf8_lossy(&o.stderr));
        assert!(stats.contains(&format!("port.name = net_vhost{n}")), "proc {n} serves vdev {n}: {stats}");
        assert!(stats.contains(&format!(" cpu {n} uptime")), "proc {n} runs on CPU {n}: {stats}");
    }
    for c in &servers.0 {
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
    }
    let mut reports = Vec::new();
    for (n, c) in std::mem::take(&mut servers.0).into_iter().enumerate() {
        let out = c.wait_with_output().unwrap();
        let err = std::fs::read_to_string(dir.join(format!("srv{n}.err"))).unwrap_or_default();
        reports.push((n, json_after(&format!("{}\n{err}", String::from_utf8_lossy(&out.stdout)), "ECHO ")));
    }
    for s in &socks {
        let _ = std::fs::remove_file(s);
    }
    let _ = std::fs::remove_dir_all(&dir);
    for (n, s) in reports {
        assert!(s["tcp_bytes"].as_u64().unwrap() > 64 * 100, "proc {n} echoed its client's bytes: {s}");
        assert_eq!(s["clean"], true, "proc {n}: {s}");
    }
}
