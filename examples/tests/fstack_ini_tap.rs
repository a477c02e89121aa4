//! Issue 12's acceptance: F-Stack 1.25's `config.ini` with every key (the
//! team's copy, `dpdk-glue/tests/data/fstack-1.25.ini`), changed only where
//! this machine differs — `[port0]` given a `net_tap` vdev inside a private
//! netns and its addresses, no PCI `allow` entries (this VM has no NIC bound
//! to DPDK), anonymous memory instead of hugepages — loads with its report
//! (`rss_tbl` entries name port 0's new address) and serves the Linux `curl` with `helloworld` on both of its lcores.
mod common;

use common::*;
use dpdk_glue::config::Config;

/// The F-Stack file with `[dpdk]`, `[port0]` and `[vdev0]` adapted to the
/// tap `iface` in the test's netns; every other section and key unchanged.
fn adapted(iface: &str, prefix: &str) -> String {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../dpdk-glue/tests/data/fstack-1.25.ini"))
        .expect("read the F-Stack config");
    let mut out = String::new();
    let mut section = String::new();
    for line in text.lines() {
        let t = line.trim();
        if let Some(s) = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            section = s.to_owned();
            out.push_str(line);
            out.push('\n');
            if section == "vdev0" {
                out.push_str(&format!("driver=net_tap\niface={iface}\nqueues=2\n"));
            }
            continue;
        }
        let key = t.split_once('=').map(|(k, _)| k.trim()).unwrap_or("");
        let replaced = match (section.as_str(), key) {
            ("dpdk", "allow") => Some(String::new()),
            ("dpdk", "no_huge") => Some("no_huge=1".into()),
            ("dpdk", "memory") => Some("memory=1536".into()),
            ("dpdk", "file_prefix") => Some(format!("file_prefix={prefix}")),
            ("port0", "addr") => Some(format!("addr={OURS}")),
            ("port0", "broadcast") => Some("broadcast=10.212.0.255".into()),
            ("port0", "gateway") => Some(format!("gateway={KERNEL}")),
            ("port0", "if_name") => Some(format!("if_name={iface}")),
            // Its pre-computed local ports name port 0's own address.
            ("rss_check", "rss_tbl") => Some(t.replace("192.168.1.2 ", &format!("{OURS} "))),
            // F-Stack's virtio-user keys describe a vhost socket this test
            // does not have; the tap replaces them.
            ("vdev0", "path" | "queues" | "queue_size" | "mac" | "cq") => Some(String::new()),
            _ => None,
        };
        match replaced {
            Some(r) if r.is_empty() => {}
            Some(r) => {
                out.push_str(&r);
                out.push('\n');
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[test]
fn fstack_config_with_every_key_loads_reports_and_serves_curl_over_net_tap() {
    let _turn = one_at_a_time();
    let mut ns = Netns::new("fs");
    let text = adapted(&ns.iface, &format!("zcfs{}", std::process::id()));
    let path = ns.dir.join("fstack.ini");
    std::fs::write(&path, &text).unwrap();
    let path = path.to_string_lossy().into_owned();

    // It loads, and the report names F-Stack keys zcstack does not implement,
    // each with its line.
    let conf = Config::load(&path).unwrap_or_else(|e| panic!("F-Stack's config.ini must load: {e}"));
    let report = conf.report_lines();
    for key in ["[kni] enable", "[bond0] mode", "[vlan0] addr", "[port0] addr6", "net.inet6.ip6.auto_linklocal"] {
        assert!(report.iter().any(|l| l.contains(key)), "report names {key}: {report:#?}");
    }
    assert!(report.iter().all(|l| l.starts_with(&format!("{path}:"))), "every notice names file:line: {report:#?}");

    // And serves curl on the lcores of its lcore_mask.
    let first = ns.start(env!("CARGO_BIN_EXE_helloworld"), &["--conf", &path, "--duration", "60"]);
    assert!(first.contains("listening on 10.212.0.2:80"), "{first}");
    ns.kernel_side_up();
    ns.wait_for_page("Welcome to zcstack!");
    // Several connections, so both queues (and lcores) see traffic.
    for i in 0..16 {
        let o = ns.run(&["curl", "-s", "-m", "5", "http://10.212.0.2/", "http://10.212.0.2/"]);
        assert!(o.status.success(), "curl {i}: {}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(String::from_utf8_lossy(&o.stdout).matches("<h1>Welcome to zcstack!</h1>").count(), 2);
    }
    let report = ns.stop("HELLOWORLD ");
    assert!(report["requests"].as_u64().unwrap() >= 33, "{report}");
    assert_eq!(report["nb_lcores"].as_u64(), Some(2), "lcore_mask=3 runs two stacks: {report}");
}
