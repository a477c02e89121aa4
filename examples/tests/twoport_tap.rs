//! Two ports with disjoint `lcore_list`s in one process (issue 12 review,
//! package fixa, item 2): `[port0] lcore_list=0` on one net_tap,
//! `[port1] lcore_list=1` on another, both inside a network namespace the
//! test creates. Each lcore runs its own stack on its own port; `curl`
//! from the namespace gets the page from both addresses, and the exit
//! report counts requests on both lcores. The netns, the taps (they go
//! with the process and the netns) and the process are removed on drop,
//! also when an assert fails.
mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn two_tap_ports_one_lcore_each_both_serve_curl() {
    let _turn = one_at_a_time();
    let mut ns = Netns::new("2p");
    let pid = std::process::id();
    let (tap0, tap1) = ("zcx2pa", "zcx2pb");
    let text = format!(
        "[dpdk]\nlcore_mask=3\nno_huge=1\nmemory=512\nfile_prefix=zcx{pid}2p\nnb_vdev=2\nport_list=0,1\npkt_tx_delay=0\n\
         [port0]\naddr=10.212.0.2\nnetmask=255.255.255.0\nbroadcast=10.212.0.255\ngateway=0.0.0.0\nlcore_list=0\n\
         [vdev0]\ndriver=net_tap\niface={tap0}\n\
         [port1]\naddr=10.213.0.2\nnetmask=255.255.255.0\nbroadcast=10.213.0.255\ngateway=0.0.0.0\nlcore_list=1\n\
         [vdev1]\ndriver=net_tap\niface={tap1}\n\
         [freebsd.boot]\nmemsz_MB=32\n"
    );
    let conf = ns.dir.join("2p.ini");
    std::fs::write(&conf, text).unwrap();
    let conf = conf.to_string_lossy().into_owned();
    let first = ns.start(env!("CARGO_BIN_EXE_helloworld"), &["--conf", &conf, "--duration", "60"]);
    assert!(first.contains("listening on"), "{first}");
    let second = ns.next_line(30).expect("the second lcore starts");
    let both = format!("{first}\n{second}");
    assert!(both.contains("10.212.0.2:80") && both.contains("10.213.0.2:80"), "one stack per port: {both}");
    for (tap, kernel) in [(tap0, "10.212.0.1/24"), (tap1, "10.213.0.1/24")] {
        let t = Instant::now();
        while !ns.run(&["ip", "link", "show", tap]).status.success() {
            assert!(t.elapsed() < Duration::from_secs(10), "{tap} never appeared");
            std::thread::sleep(Duration::from_millis(50));
        }
        for cmd in [vec!["ip", "addr", "add", kernel, "dev", tap], vec!["ip", "link", "set", tap, "up"]] {
            let o = ns.run(&cmd);
            assert!(o.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&o.stderr));
        }
    }
    for url in ["http://10.212.0.2/", "http://10.213.0.2/"] {
        let t = Instant::now();
        loop {
            let o = ns.run(&["curl", "-s", "-m", "3", url]);
            if o.status.success() {
                assert!(String::from_utf8_lossy(&o.stdout).contains("Welcome to zcstack!"), "{url}");
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(20), "curl {url} never got the page");
            std::thread::sleep(Duration::from_millis(200));
        }
        let o = ns.run(&["curl", "-s", "-m", "5", url, url]);
        assert!(o.status.success(), "{url}");
        assert_eq!(String::from_utf8_lossy(&o.stdout).matches("<h1>Welcome to zcstack!</h1>").count(), 2, "{url}");
    }
    let report = ns.stop("HELLOWORLD ");
    // Three requests per port at least (retries may add more), summed over both lcores.
    assert!(report["requests"].as_u64().unwrap() >= 6, "{report}");
}
