//! virtio-user <-> vhost with 2 queues (`queues=2` on both vdevs) and
//! zcstack on both ends with 2 lcores each (issue 12, item 5): frames a
//! client lcore sends on its queue arrive on the server's queue of the
//! same number, whichever lcore owns the flow, so both ends steer in
//! software. Bulk: 8 connections spread over the client's lcores, every
//! stream's SHA-256 checked at the server; HTTP: `httpload` (2 lcores)
//! against `helloworld` (2 lcores), every request answered. Four polling
//! lcores share the machine's CPUs (each process maps its lcores 0 and 1
//! to CPUs 0 and 1), so the runs are short and only correctness is checked.
mod common;

use std::process::Command;

use common::*;
use serde_json::Value;

fn report(out: &std::process::Output, stderr: &[u8], prefix: &str) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find_map(|l| l.strip_prefix(prefix)).unwrap_or_else(|| {
        panic!("no {prefix}in:\n{text}\n{}, stderr:\n{}", out.status, String::from_utf8_lossy(stderr))
    });
    serde_json::from_str(line).unwrap()
}

/// Server and client configs of a 2-queue, 2-lcore pair in `dir`.
fn pair(dir: &std::path::Path, sock: &str) -> (String, String) {
    let server = pair_config(dir, "srv.ini", "3", "10.78.0.2", &format!("driver=net_vhost\npath={sock}\nqueues=2"), "");
    let client = pair_config(
        dir,
        "cli.ini",
        "3",
        "10.78.0.1",
        &format!("driver=net_virtio_user\npath={sock}\nqueues=2\nqueue_size=1024"),
        "[tcp]\nmin_rto_us=10000\n",
    );
    (server, client)
}

/// Steering of one 2-lcore report: lcore 0 handed over what lcore 1 took
/// in and back, nothing dropped, pages and mbufs back.
fn steering_consistent(r: &Value) {
    assert_eq!(r["nb_lcores"], 2, "{r}");
    let lc = r["lcores"].as_array().unwrap();
    // What one lcore steered out, the other took in or (steered after its
    // stack stopped) found unread at close.
    let n = |i: usize, k: &str| lc[i][k].as_u64().unwrap();
    assert_eq!(n(0, "steered_out"), n(1, "steered_in") + n(1, "steer_unread_at_close"), "{r}");
    assert_eq!(n(1, "steered_out"), n(0, "steered_in") + n(0, "steer_unread_at_close"), "{r}");
    for l in lc {
        assert_eq!(l["steer_dropped_at_close"], 0, "{r}");
        assert_eq!(l["clean"], true, "{r}");
    }
}

#[test]
fn bulk_over_two_queues_two_lcores_each_end() {
    let _turn = one_at_a_time();
    let dir = std::env::temp_dir().join(format!("zc-mqv-{}-bulk", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = format!("/tmp/zc-mqv-{}-bulk.sock", std::process::id());
    let _ = std::fs::remove_file(&sock);
    let (server_conf, client_conf) = pair(&dir, &sock);
    let server = Command::new(env!("CARGO_BIN_EXE_bulk"))
        .args(["--conf", &server_conf, "--role", "recv", "--connections", "8", "--timeout", "60"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(dir.join("srv.err")).unwrap())
        .spawn()
        .unwrap();
    struct Kill(Option<std::process::Child>);
    impl Drop for Kill {
        fn drop(&mut self) {
            if let Some(c) = &mut self.0 {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
    let mut server = Kill(Some(server));
    let t = std::time::Instant::now();
    while !std::path::Path::new(&sock).exists() {
        assert!(t.elapsed() < std::time::Duration::from_secs(20), "vhost socket {sock} never appeared");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let bytes = (32u64 << 20).to_string();
    let client = Command::new(env!("CARGO_BIN_EXE_bulk"))
        .args(["--conf", &client_conf, "--role", "send", "--peer", "10.78.0.2", "--bytes", &bytes])
        .args(["--connections", "8", "--timeout", "60"])
        .output()
        .unwrap();
    let sout = server.0.take().unwrap().wait_with_output().unwrap();
    let serr = std::fs::read(dir.join("srv.err")).unwrap_or_default();
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_dir_all(&dir);
    let c = report(&client, &client.stderr, "BULK ");
    let s = report(&sout, &serr, "BULK ");
    eprintln!("client {c}\nserver {s}");
    assert!(client.status.success(), "{c}");
    assert!(sout.status.success(), "{s}");
    assert_eq!(c["ok"], true, "{c}");
    assert_eq!(s["ok"], true, "{s}");
    assert_eq!(s["bytes"], 32u64 << 20, "{s}");
    assert_eq!(s["sha256s"].as_array().unwrap().len(), 8, "{s}");
    assert_eq!(c["sha256"], s["sha256"], "every stream arrived whole");
    for l in c["lcores"].as_array().unwrap() {
        assert_eq!(l["connections"], 4, "each client lcore sent its share: {c}");
        assert_eq!(l["rss_connect_refused"], 0, "{c}");
        // Zero copy on a shared virtio-user port, by config file:
        // payload_prefetch=auto resolves on for each lcore's queue (x86-64).
        let x86 = cfg!(target_arch = "x86_64");
        assert_eq!(l["payload_prefetch"], x86, "{c}");
        assert_eq!(l["dev_tx_lines_prefetched"].as_u64().unwrap() > 0, x86, "{c}");
    }
    steering_consistent(&c);
    steering_consistent(&s);
}

#[test]
fn http_over_two_queues_two_lcores_each_end() {
    let _turn = one_at_a_time();
    let dir = std::env::temp_dir().join(format!("zc-mqv-{}-http", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = format!("/tmp/zc-mqv-{}-http.sock", std::process::id());
    let _ = std::fs::remove_file(&sock);
    let (server_conf, client_conf) = pair(&dir, &sock);
    let server = spawn_vhost_server(env!("CARGO_BIN_EXE_helloworld"), &server_conf, &dir, &sock);
    let client = Command::new(env!("CARGO_BIN_EXE_httpload"))
        .args(["--conf", &client_conf, "--server", "10.78.0.2", "-n", "8", "-d", "2", "--wait-server", "10"])
        .output()
        .unwrap();
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let sout = server.wait_with_output().unwrap();
    let serr = std::fs::read(dir.join("srv.err")).unwrap_or_default();
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_dir_all(&dir);
    assert!(client.status.success(), "{}", String::from_utf8_lossy(&client.stderr));
    let c = report(&client, &client.stderr, "HTTPLOAD ");
    let s = report(&sout, &serr, "HELLOWORLD ");
    eprintln!("client {c}\nserver {s}");
    assert!(c["requests"].as_u64().unwrap() > 100, "{c}");
    assert_eq!(c["errors"], 0, "{c}");
    assert_eq!(c["timeouts"], 0, "{c}");
    assert_eq!(c["non_2xx"], 0, "{c}");
    assert!(s["requests"].as_u64().unwrap() >= c["requests"].as_u64().unwrap(), "every request answered: {s}");
    for l in c["lcores"].as_array().unwrap() {
        assert_eq!(l["connections"], 4, "{c}");
        assert!(l["requests"].as_u64().unwrap() > 0, "each client lcore's connections were served: {c}");
        assert_eq!(l["rss_connect_refused"], 0, "{c}");
    }
    let accepted: Vec<u64> = s["lcores"].as_array().unwrap().iter().map(|l| l["accepted"].as_u64().unwrap()).collect();
    assert_eq!(accepted.iter().sum::<u64>(), s["accepted"].as_u64().unwrap(), "{s}");
    steering_consistent(&c);
    steering_consistent(&s);
}
