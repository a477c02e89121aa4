//! Two lcores sharing one `net_tap` port (2 RX/TX queues; `lcore_mask=3`)
//! inside a network namespace this test creates: the kernel's tun driver
//! spreads Linux's flows over the two tap queues by its own hash, so frames
//! of a flow another lcore owns must be steered to it over the per-pair
//! rings (issue 12, items 2 and 3). 64 Linux client connections, one
//! request each: every one is served, both lcores receive frames and
//! accept connections, and the steering counters agree (frames one lcore
//! steered out are the frames the other took in; none dropped).
mod common;

use std::time::{Duration, Instant};

use common::*;

/// Python client: `n` connections from the netns, one `GET` each with
/// `Connection: close`; prints how many got a 200 with the page.
const CLIENT: &str = r#"
import socket, sys
n, ok = int(sys.argv[1]), 0
for i in range(n):
    try:
        s = socket.create_connection(("10.212.0.2", 80), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            data += b
        s.close()
        if data.startswith(b"HTTP/1.1 200") and b"Welcome to zcstack!" in data:
            ok += 1
    except OSError as e:
        print("error", i, e, file=sys.stderr)
print("OK", ok)
"#;

#[test]
fn two_lcores_share_a_two_queue_tap_and_serve_64_connections() {
    let _turn = one_at_a_time();
    let mut ns = Netns::new("mq");
    let conf = ns.config("mq.ini", "");
    let text = std::fs::read_to_string(&conf).unwrap().replace("lcore_mask=1", "lcore_mask=3");
    std::fs::write(&conf, text).unwrap();
    let first = ns.start(env!("CARGO_BIN_EXE_helloworld"), &["--conf", conf.as_str(), "--duration", "60"]);
    assert!(first.contains("listening on 10.212.0.2:80"), "{first}");
    ns.kernel_side_up();
    // The link comes up; one request proves it (bounded: 20 s).
    let t = Instant::now();
    loop {
        let o = ns.run(&["curl", "-s", "-m", "3", "http://10.212.0.2/"]);
        if o.status.success() && String::from_utf8_lossy(&o.stdout).contains("Welcome to zcstack!") {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "curl never got the page");
        std::thread::sleep(Duration::from_millis(200));
    }
    let o = ns.run(&["timeout", "120", "python3", "-c", CLIENT, "64"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "client: {out} {}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("OK 64"), "every connection served: {out} {}", String::from_utf8_lossy(&o.stderr));
    let r = ns.stop("HELLOWORLD ");
    eprintln!("{r}");
    assert_eq!(r["nb_lcores"], 2, "{r}");
    assert!(r["requests"].as_u64().unwrap() >= 65, "{r}");
    let lc = r["lcores"].as_array().unwrap();
    for l in lc {
        assert!(l["rx_frames"].as_u64().unwrap() > 0, "every lcore received frames: {r}");
        assert!(l["accepted"].as_u64().unwrap() > 0, "every lcore accepted connections: {r}");
        assert_eq!(l["steer_dropped_at_close"], 0, "{r}");
        assert_eq!(l["clean"], true, "pages and mbufs back: {r}");
    }
    let out: Vec<u64> = lc.iter().map(|l| l["steered_out"].as_u64().unwrap()).collect();
    let inn: Vec<u64> = lc.iter().map(|l| l["steered_in"].as_u64().unwrap()).collect();
    assert_eq!(out[0], inn[1], "lcore 0 steered out what lcore 1 took in: {r}");
    assert_eq!(out[1], inn[0], "lcore 1 steered out what lcore 0 took in: {r}");
    // Every lcore keeps its own ARP cache: ARP frames were copied across.
    assert!(lc.iter().map(|l| l["steer_copied"].as_u64().unwrap()).sum::<u64>() > 0, "{r}");
}
