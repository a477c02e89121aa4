//! F-Stack's `config.ini`, unchanged, into zcstack (issue 12 item 4): every
//! F-Stack 1.25 key loads, mapped keys change their setting, the rest are
//! named in the load report; typos, bad lists and unknown keys of
//! zcstack's own sections are errors naming file, line, key and what is
//! allowed; `deploy_plan` per launch form. No EAL: checked against a fixed
//! machine (`Host::with`).

use std::net::Ipv4Addr;

use dpdk_glue::config::{Config, ConfigError, Host};
use dpdk_glue::plan::{PortDevice, ProcRole, RssTblEntry};
use zcstack::config::CongestionControl;
use zcstack::Duration;

const FSTACK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/fstack-1.25.ini");

fn host() -> Host {
    Host::with(8, 16 << 10)
}

fn fstack_text() -> String {
    std::fs::read_to_string(FSTACK).unwrap()
}

fn load(text: &str) -> Result<Config, ConfigError> {
    Config::parse_for_host("t.ini", text, &host())
}

fn err(text: &str) -> String {
    load(text).map(|_| ()).unwrap_err().to_string()
}

/// The smallest file: one port, one lcore.
const MIN: &str =
    "[dpdk]\nlcore_mask=1\n\n[port0]\naddr=10.1.0.2\nnetmask=255.255.255.0\nbroadcast=10.1.0.255\ngateway=10.1.0.1\n";

#[test]
fn fstack_1_25_config_loads_and_reports_each_key_zcstack_does_not_implement() {
    let text = fstack_text();
    let c = Config::parse_for_host(FSTACK, &text, &host()).unwrap_or_else(|e| panic!("{e}"));
    let lines: Vec<&str> = text.lines().collect();
    // Every notice points at its own key's line, and says it is F-Stack's key not implemented.
    for n in &c.report {
        let line = lines[n.line - 1].trim();
        let key = n.key.rsplit(' ').next().unwrap();
        assert!(line.starts_with(key) || line == key, "notice {n} points at line {}: {line}", n.line);
        assert!(n.msg.starts_with("F-Stack key not implemented"), "{n}");
    }
    let reported: Vec<&str> = c.report.iter().map(|n| n.key.as_str()).collect();
    for key in [
        "[dpdk] vlan_strip",
        "[dpdk] vlan_filter",
        "[dpdk] nb_bond",
        "[dpdk] fstack_log_level",
        "[dpdk] fstack_log_file_prefix",
        "[port0] addr6",
        "[port0] prefix_len",
        "[port0] gateway6",
        "[port0] vip_ifname",
        "[port0] vip_addr",
        "[port0] ipfw_pr",
        "[port0] vip_addr6",
        "[port0] vip_prefix_len",
        "[port0] slave_port_list",
        "[vlan0]",
        "[vlan0] portid",
        "[vlan0] vip_prefix_len",
        "[bond0]",
        "[bond0] mode",
        "[bond0] down_delay",
        "[kni]",
        "[kni] enable",
        "[kni] kernel_packets_ratelimit",
        "[freebsd.boot] hz",
        "[freebsd.boot] fd_reserve",
        "[freebsd.boot] physmem",
        "[freebsd.boot] net.inet.tcp.syncache.hashsize",
        "[freebsd.boot] net.inet.tcp.syncache.bucketlimit",
        "[freebsd.boot] net.inet.tcp.tcbhashsize",
        "[freebsd.boot] kern.ncallout",
        "[freebsd.boot] kern.features.inet6",
        "[freebsd.sysctl] net.add_addr_allfibs",
        "[freebsd.sysctl] net.link.ether.inet.maxhold",
        "[freebsd.sysctl] net.inet.tcp.sendbuf_auto",
        "[freebsd.sysctl] net.inet.tcp.recvbuf_auto",
        "[freebsd.sysctl] net.inet.tcp.sendbuf_inc",
        "[freebsd.sysctl] net.inet.tcp.recvbuf_inc",
        "[freebsd.sysctl] net.inet.ip.redirect",
        "[freebsd.sysctl] net.inet.ip.forwarding",
        "[freebsd.sysctl] net.inet.ip.portrange.randomtime",
        "[freebsd.sysctl] net.inet6.ip6.auto_linklocal",
        "[freebsd.sysctl] net.inet6.ip6.accept_rtadv",
        "[freebsd.sysctl] net.inet6.icmp6.rediraccept",
        "[freebsd.sysctl] net.inet6.ip6.forwarding",
        "[freebsd.sysctl] net.inet.tcp.functions_default",
        "[freebsd.sysctl] net.inet.tcp.hpts.skip_swi",
        "[freebsd.sysctl] net.inet.tcp.hpts.minsleep",
        "[freebsd.sysctl] net.inet.tcp.hpts.maxsleep",
    ] {
        assert!(reported.contains(&key), "{key} is reported: {reported:#?}");
    }
    // What zcstack maps is not reported, and took effect.
    for key in [
        "numa_on",
        "symmetric_rss",
        "allow",
        "base_virtaddr",
        "lcore_list",
        "rss_tbl",
        "maxsockets",
        "somaxconn",
        "finwait2_timeout",
        "maxtcptw",
        "sendbuf_max",
        "blackhole",
        "portrange.randomized",
        "nolocaltimewait",
        "cc.algorithm",
    ] {
        assert!(!reported.iter().any(|r| r.ends_with(key)), "{key} is mapped, not reported: {reported:#?}");
    }
    assert_eq!(c.tcp.max_sockets, 262_144);
    assert_eq!(c.tcp.fin_wait2_timeout, Duration::from_millis(5000));
    assert_eq!(c.tcp.max_time_wait, 200_000);
    assert_eq!(c.tcp.blackhole, 1);
    assert!(c.engine.udp_blackhole);
    assert_eq!(c.tcp.congestion, CongestionControl::Cubic);
    assert_eq!((c.tcp.send_buffer, c.tcp.recv_buffer), (16384, 8192));
    assert_eq!(c.ports[0].lcore_list, vec![0, 1]);
    assert!(c.dpdk.numa_on && !c.dpdk.symmetric_rss);
    assert_eq!(c.dpdk.allow.len(), 2);
    assert_eq!(c.dpdk.allow[0].eal_arg(), "0000:02:00.0,txq_inline_max=128");
    assert_eq!(c.dpdk.allow[1].eal_arg(), "0000:03:00.0");
    assert!(c.rss_check.enable);
    assert_eq!(
        c.rss_check.tbl[1],
        RssTblEntry {
            port_id: 0,
            daddr: Ipv4Addr::new(192, 168, 1, 11),
            dport: 443,
            saddr: Ipv4Addr::new(192, 168, 1, 2),
            sports: vec![]
        }
    );
    // The report as the examples print it: file:line per notice.
    let first = &c.report_lines()[0];
    assert!(first.starts_with(&format!("{FSTACK}:15: [dpdk] vlan_strip: F-Stack key not implemented")), "{first}");
}

/// `MIN` plus `[section] key=value` (the section added if new).
fn with_key(section: &str, key: &str, value: &str) -> String {
    if section == "dpdk" {
        return MIN.replace("lcore_mask=1\n", &format!("lcore_mask=1\n{key}={value}\n"));
    }
    if section == "port0" {
        return format!("{MIN}{key}={value}\n");
    }
    format!("{MIN}[{section}]\n{key}={value}\n")
}

#[test]
fn every_mapped_key_changes_its_setting() {
    let base = load(MIN).unwrap();
    type Check = fn(&Config) -> String;
    let table: &[(&str, &str, &str, Check)] = &[
        ("dpdk", "numa_on", "0", |c| format!("{}", c.dpdk.numa_on)),
        ("dpdk", "symmetric_rss", "1", |c| format!("{}", c.dpdk.symmetric_rss)),
        ("dpdk", "base_virtaddr", "0x7f0000000000", |c| format!("{:?}", c.dpdk.base_virtaddr)),
        ("dpdk", "allow", "02:00.0", |c| format!("{:?}", c.dpdk.allow)),
        ("dpdk", "port_list", "0", |c| format!("{:?}", c.dpdk.port_list)),
        ("dpdk", "log_level", "7", |c| c.dpdk.log_level.clone()),
        ("port0", "lcore_list", "0", |c| format!("{:?}", c.ports[0].lcore_list)),
        ("rss_check", "enable", "1", |c| format!("{}", c.rss_check.enable)),
        ("rss_check", "rss_tbl", "0 10.1.0.2 10.1.0.9 80", |c| format!("{:?}", c.rss_check.tbl)),
        ("freebsd.boot", "memsz_MB", "128", |c| format!("{}", c.page_array_mb)),
        ("freebsd.boot", "kern.ipc.maxsockets", "1000", |c| format!("{}", c.tcp.max_sockets)),
        ("freebsd.sysctl", "kern.ipc.maxsockets", "1000", |c| format!("{}", c.tcp.max_sockets)),
        ("freebsd.sysctl", "kern.ipc.somaxconn", "128", |c| format!("{}", c.tcp.somaxconn)),
        ("freebsd.sysctl", "kern.ipc.maxsockbuf", "16777216", |c| format!("{}", c.tcp.window_scale)),
        ("freebsd.sysctl", "net.inet.tcp.finwait2_timeout", "5000", |c| format!("{:?}", c.tcp.fin_wait2_timeout)),
        ("freebsd.sysctl", "net.inet.tcp.fast_finwait2_recycle", "0", |c| format!("{}", c.tcp.fast_finwait2_recycle)),
        ("freebsd.sysctl", "net.inet.tcp.maxtcptw", "100", |c| format!("{}", c.tcp.max_time_wait)),
        ("freebsd.sysctl", "net.inet.tcp.blackhole", "2", |c| format!("{}", c.tcp.blackhole)),
        ("freebsd.sysctl", "net.inet.udp.blackhole", "1", |c| format!("{}", c.engine.udp_blackhole)),
        ("freebsd.sysctl", "net.inet.tcp.sendbuf_max", "65536", |c| format!("{}", c.tcp.send_buffer_max)),
        ("freebsd.sysctl", "net.inet.tcp.recvbuf_max", "65536", |c| format!("{}", c.tcp.recv_buffer_max)),
        ("freebsd.sysctl", "net.inet.ip.portrange.randomized", "1", |c| format!("{}", c.tcp.randomize_ports)),
        ("freebsd.sysctl", "net.inet.tcp.msl", "1000", |c| format!("{:?}", c.tcp.msl)),
        ("freebsd.sysctl", "net.inet.tcp.delayed_ack", "0", |c| format!("{:?}", c.tcp.delayed_ack)),
        ("freebsd.sysctl", "net.inet.tcp.rfc1323", "0", |c| format!("{}", c.tcp.timestamps)),
        ("freebsd.sysctl", "net.inet.tcp.sack.enable", "0", |c| format!("{}", c.tcp.sack)),
        ("freebsd.sysctl", "net.inet.tcp.sendspace", "16384", |c| format!("{}", c.tcp.send_buffer)),
        ("freebsd.sysctl", "net.inet.tcp.recvspace", "8192", |c| format!("{}", c.tcp.recv_buffer)),
        ("freebsd.sysctl", "net.inet.tcp.cc.algorithm", "cubic", |c| format!("{:?}", c.tcp.congestion)),
        ("freebsd.sysctl", "net.inet.tcp.syncookies", "0", |c| format!("{}", c.tcp.syn_cookies)),
        ("freebsd.sysctl", "net.inet.ip.maxfragpackets", "8", |c| format!("{}", c.reassembly.max_datagrams)),
        ("freebsd.sysctl", "net.inet.tcp.keepidle", "1000", |c| format!("{:?}", c.tcp.keepalive_idle)),
    ];
    for (section, key, value, get) in table {
        let c = load(&with_key(section, key, value)).unwrap_or_else(|e| panic!("[{section}] {key}={value}: {e}"));
        // port_list=0 and lcore_list=0 are the defaults of MIN: check they parse to them.
        if *key == "port_list" || *key == "lcore_list" {
            assert_eq!(get(&c), "[0]", "[{section}] {key}");
            continue;
        }
        assert_ne!(get(&c), get(&base), "[{section}] {key}={value} changes its setting");
        assert!(
            !c.report.iter().any(|n| n.key.ends_with(key)),
            "[{section}] {key} is mapped, not reported: {:?}",
            c.report
        );
    }
    // The engine settings reach the stack each lcore runs.
    let c = load(&with_key("freebsd.sysctl", "net.inet.udp.blackhole", "1")).unwrap();
    let mut c = c;
    c.vdevs.clear();
    let plan = c.deploy_plan(ProcRole::Single).unwrap();
    assert!(plan.lcore.stack.udp_blackhole);
}

#[test]
fn a_typo_of_a_mapped_name_gets_did_you_mean() {
    // FreeBSD names load as F-Stack passes them on, with a hint one edit away.
    for (typo, meant) in [
        ("net.inet.tcp.finwait2_timout", "net.inet.tcp.finwait2_timeout"),
        ("kern.ipc.maxsocket", "kern.ipc.maxsockets"),
        ("net.inet.tcp.blakchole", "net.inet.tcp.blackhole"),
        ("net.inet.tcp.sendbuf_mux", "net.inet.tcp.sendbuf_max"),
    ] {
        for section in ["freebsd.sysctl", "freebsd.boot"] {
            let c = load(&with_key(section, typo, "1")).unwrap_or_else(|e| panic!("{typo}: {e}"));
            let n = c.report.iter().find(|n| n.key.ends_with(typo)).unwrap_or_else(|| panic!("{typo} reported"));
            assert!(n.msg.ends_with(&format!("did you mean \"{meant}\"?")), "{n}");
        }
    }
    // Two edits away from every mapped name: a plain notice, no guess.
    let c = load(&with_key("freebsd.sysctl", "net.inet.tcp.sendbuf_inc", "16384")).unwrap();
    assert!(!c.report[0].msg.contains("did you mean"), "{}", c.report[0]);
    // In zcstack's sections and F-Stack's typed ones a typo is an error with the hint.
    for (section, typo, meant) in [
        ("dpdk", "numa_onn", "numa_on"),
        ("port0", "lcore_lst", "lcore_list"),
        ("rss_check", "rss_tb", "rss_tbl"),
        ("kni", "tcp_prt", "tcp_port"),
        ("zerocopy", "recv_budgte", "recv_budget"),
        ("tcp", "nodely", "nodelay"),
        ("impair", "los", "loss"),
    ] {
        let e = err(&with_key(section, typo, "1"));
        assert!(e.contains(&format!("[{section}] unknown key \"{typo}\"; did you mean \"{meant}\"?")), "{e}");
    }
    assert!(err(&format!("{MIN}[rss_chek]\nenable=1\n")).contains("did you mean [rss_check]?"));
}

#[test]
fn unknown_keys_in_zcstacks_sections_stay_errors() {
    for section in ["dpdk", "port0", "zerocopy", "tcp", "impair", "pcap", "rss_check", "vlan0", "bond0", "kni"] {
        let e = err(&with_key(section, "no_such_key_at_all", "1"));
        assert!(e.starts_with("t.ini:"), "{e}");
        assert!(e.contains(&format!("[{section}] unknown key \"no_such_key_at_all\"")), "{e}");
        assert!(e.contains("known keys:"), "{e}");
    }
    // A malformed FreeBSD name is an error too.
    let e = err(&with_key("freebsd.sysctl", "net..inet", "1"));
    assert_eq!(
        e,
        "t.ini:10: [freebsd.sysctl] \"net..inet\" is not a FreeBSD sysctl name: dot-separated parts of letters, \
         digits, '_', '-' and '%', starting with a letter, at most 128 bytes (e.g. net.inet.tcp.msl)"
    );
    assert!(err(&with_key("freebsd.boot", "9lives", "1")).contains("is not a FreeBSD sysctl name"));
    // Bad values of mapped names are errors with the range.
    assert!(err(&with_key("freebsd.sysctl", "net.inet.tcp.blackhole", "3")).contains("expected 0 (RST every"));
    assert!(err(&with_key("freebsd.boot", "kern.ipc.maxsockets", "0")).contains("expected a count of sockets"));
}

#[test]
fn bad_lists_name_file_line_key_and_what_is_allowed() {
    let rss = |tbl: &str| err(&with_key("rss_check", "rss_tbl", tbl));
    let fmt = "expected entries separated by ';', each \"<port_id> <local addr> <remote addr> <remote port>\"";
    for (tbl, why) in [
        ("0 10.1.0.2 10.1.0.9", "entry 1 \"0 10.1.0.2 10.1.0.9\" has 3 field(s), not 4"),
        ("0 10.1.0.2 10.1.0.9 80 81", "entry 1 \"0 10.1.0.2 10.1.0.9 80 81\" has 5 field(s), not 4"),
        ("1 10.1.0.2 10.1.0.9 80", "entry 1: port 1 is not in [dpdk] port_list"),
        ("x 10.1.0.2 10.1.0.9 80", "entry 1: port id \"x\" is not 0..=65535"),
        ("0 10.1.0.3 10.1.0.9 80", "entry 1: local address 10.1.0.3 is not port 0's addr 10.1.0.2"),
        ("0 10.1.0.2 10.1.0.9 80;0 10.1.0.2 nope 80", "entry 2: \"nope\" is not an IPv4 address"),
        ("0 10.1.0.2 255.255.255.255 80", "entry 1: remote address 255.255.255.255 is not a unicast address"),
        ("0 10.1.0.2 10.1.0.9 0", "entry 1: remote port \"0\" is not 1..=65535"),
        ("0 10.1.0.2 10.1.0.9 65536", "entry 1: remote port \"65536\" is not 1..=65535"),
        ("0 10.1.0.2 10.1.0.9 80;0 10.1.0.2 10.1.0.9 80", "entry 2: 0 10.1.0.2 10.1.0.9 80 appears twice"),
        ("", "entry 1 \"\" has 0 field(s), not 4"),
    ] {
        let e = rss(tbl);
        assert!(e.starts_with(&format!("t.ini:10: [rss_check] rss_tbl = \"{tbl}\": {why}")), "{tbl}: {e}");
        assert!(e.contains(fmt), "{e}");
    }
    let many: Vec<String> = (1..=257).map(|p| format!("0 10.1.0.2 10.1.0.9 {p}")).collect();
    assert!(rss(&many.join(";")).contains("more than 256 entries"));
    // lcore_list: lcores of lcore_mask, each once.
    let two = MIN.replace("lcore_mask=1", "lcore_mask=0x5");
    let lcores = |l: &str| err(&format!("{two}lcore_list={l}\n"));
    assert_eq!(
        lcores("0-1"),
        "t.ini:9: [port0] lcore_list = \"0-1\": lcore 1 is not in [dpdk] lcore_mask = 0x5 (line 2), whose lcores \
         are [0, 2]; expected lcores of lcore_mask like 0 or 0-1,3 (default: all of them)"
    );
    assert!(lcores("2,0,2").contains("expected each lcore once"));
    for bad in ["", "a", "3-1", "0,", "64", "-1", "0-99999"] {
        assert!(
            lcores(bad).starts_with(&format!("t.ini:9: [port0] lcore_list = \"{bad}\": expected lcores of")),
            "{bad}: {}",
            lcores(bad)
        );
    }
    let c = load(&format!("{two}lcore_list=2,0\n")).unwrap();
    assert_eq!(c.ports[0].lcore_list, vec![0, 2], "sorted, as F-Stack sorts it: queue q is the q-th");
    assert_eq!(load(&two).unwrap().ports[0].lcore_list, vec![0, 2], "default: every lcore of lcore_mask");
    // port_list: ranges like F-Stack's.
    let ports = |l: &str| MIN.replace("lcore_mask=1\n", &format!("lcore_mask=1\nport_list={l}\n"));
    for bad in ["0,0", "1-0", "x", "0-", "70000"] {
        let e = err(&ports(bad));
        assert!(e.starts_with(&format!("t.ini:3: [dpdk] port_list = \"{bad}\": expected ports like")), "{bad}: {e}");
    }
    let text = ports("0-2,4")
        + &["1", "2", "4"]
            .map(|n| {
                format!("[port{n}]\naddr=10.1.{n}.2\nnetmask=255.255.255.0\nbroadcast=10.1.{n}.255\ngateway=0.0.0.0\n")
            })
            .concat();
    assert_eq!(load(&text).unwrap().dpdk.port_list, vec![0, 1, 2, 4]);
    // allow: PCI addresses with their driver options.
    for bad in ["", "eth0", "txq=1,02:00.0", "02:00.0,=1", "02:00.8", "02:20.0", "1:2:3:4.0"] {
        let e = err(&with_key("dpdk", "allow", bad));
        assert!(e.starts_with(&format!("t.ini:3: [dpdk] allow = \"{bad}\": expected PCI addresses")), "{bad}: {e}");
    }
}

/// Two lcores, port 0 on a net_tap vdev with 2 queues (port 1, probed, is
/// not in port_list here: its lcore_list overlaps port 0's default one;
/// [`two_ports`] gives both ports disjoint lists).
const TWO: &str = "[dpdk]\nlcore_mask=0x6\nport_list=0\nnb_vdev=1\nfile_prefix=zt\nsymmetric_rss=1\n\
    allow=0000:02:00.0,txq_inline_max=128\nbase_virtaddr=0x7f0000000000\n\
    [port0]\naddr=10.1.0.2\nnetmask=255.255.255.0\nbroadcast=10.1.0.255\ngateway=0.0.0.0\n\
    [port1]\naddr=10.2.0.2\nnetmask=255.255.255.0\nbroadcast=10.2.0.255\ngateway=0.0.0.0\nlcore_list=2\n\
    [vdev0]\ndriver=net_tap\niface=zt0\nqueues=2\n\
    [rss_check]\nenable=1\nrss_tbl=0 10.1.0.2 10.1.0.9 80\n";

/// [`TWO`] with both ports in port_list: port 0 on lcore 1, port 1 on lcore 2.
fn two_ports() -> Config {
    load(
        &TWO.replace("port_list=0\n", "port_list=0-1\n")
            .replace("gateway=0.0.0.0\n[port1]", "gateway=0.0.0.0\nlcore_list=1\n[port1]"),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// An lcore in two ports' lcore_lists is refused by the plan, naming both
/// keys and lines (port 0's default list is every lcore); so is an lcore
/// in none.
#[test]
fn overlapping_lcore_lists_are_refused_naming_both_keys() {
    let c = load(&TWO.replace("port_list=0\n", "port_list=0-1\n")).unwrap();
    for role in [ProcRole::Single, ProcRole::Primary { proc_id: 0, nb_procs: 2 }] {
        let e = c.deploy_plan(role).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "t.ini:9: lcore 2 is in [port0] lcore_list (default: every lcore of lcore_mask; line 9) and in \
                 [port1] lcore_list = 2 (line 19)"
            ),
            "{e}"
        );
    }
    let none = TWO.replace("port_list=0\n", "port_list=0-1\n").replace("lcore_mask=0x6", "lcore_mask=0xe");
    let none = load(&none.replace("gateway=0.0.0.0\n[port1]", "gateway=0.0.0.0\nlcore_list=1\n[port1]")).unwrap();
    let e = none.deploy_plan(ProcRole::Single).unwrap_err().to_string();
    assert!(e.contains("[dpdk] lcore_mask 0xe has lcore 3, but no port of port_list has it in its lcore_list"), "{e}");
}

#[test]
fn deploy_plan_gives_lcores_queues_and_eal_args_per_role() {
    let c = load(TWO).unwrap_or_else(|e| panic!("{e}"));
    let single = c.deploy_plan(ProcRole::Single).unwrap();
    assert_eq!(single.all_lcores, vec![1, 2]);
    assert_eq!(single.lcores, vec![1, 2]);
    assert_eq!(single.ports.len(), 1);
    let p0 = &single.ports[0];
    assert_eq!((p0.port_id, p0.lcores.clone(), p0.port.rx_queues, p0.port.tx_queues), (0, vec![1, 2], 2, 2));
    assert_eq!(p0.device, PortDevice::Vdev { devargs: "net_tap0,iface=zt0".into() });
    // Two ports with disjoint lcore_lists: one lcore (and stack) each.
    let both = two_ports().deploy_plan(ProcRole::Single).unwrap();
    assert_eq!(both.lcores, vec![1, 2]);
    assert_eq!(both.ports.len(), 2);
    assert_eq!((both.ports[0].lcores.clone(), both.ports[0].port.rx_queues), (vec![1], 1));
    let p1 = &both.ports[1];
    assert_eq!((p1.port_id, p1.lcores.clone(), p1.port.rx_queues), (1, vec![2], 1));
    assert_eq!(p1.device, PortDevice::Probed);
    assert_eq!(p1.addr, Ipv4Addr::new(10, 2, 0, 2));
    assert!(single.rss.symmetric && single.rss.check);
    assert_eq!(single.rss.tbl.len(), 1);
    let args = single.eal.to_args().join(" ");
    for want in [
        "--lcores 1@1,2@2",
        "--main-lcore 1",
        "--file-prefix zt",
        "--vdev net_tap0,iface=zt0",
        "--base-virtaddr=0x7f0000000000",
        "-a 0000:02:00.0,txq_inline_max=128",
    ] {
        assert!(args.contains(want), "{want} in {args}");
    }
    assert!(!args.contains("--no-pci"), "allow names a PCI device: the EAL probes: {args}");
    assert!(!args.contains("--no-huge"), "hugepages are the default: {args}");
    assert!(!args.contains("--proc-type"), "{args}");
    // Multi-process needs hugepages (shared memory).
    let e = load(&TWO.replace("lcore_mask=0x6\n", "lcore_mask=0x6\nno_huge=1\n"))
        .unwrap()
        .deploy_plan(ProcRole::Primary { proc_id: 0, nb_procs: 2 })
        .unwrap_err();
    assert!(
        e.to_string().starts_with("t.ini:3: --proc-type=primary: DPDK multi-process shares hugepage memory"),
        "{e}"
    );
    let primary = c.deploy_plan(ProcRole::Primary { proc_id: 0, nb_procs: 2 }).unwrap();
    let secondary = c.deploy_plan(ProcRole::Secondary { proc_id: 1, nb_procs: 2 }).unwrap();
    assert_eq!((primary.lcores.clone(), secondary.lcores.clone()), (vec![1], vec![2]));
    assert_eq!(primary.all_lcores, secondary.all_lcores);
    let (pa, sa) = (primary.eal.to_args().join(" "), secondary.eal.to_args().join(" "));
    assert!(
        pa.contains("--proc-type=primary") && pa.contains("--lcores 1@1") && pa.contains("--file-prefix zt"),
        "{pa}"
    );
    assert!(
        sa.contains("--proc-type=secondary") && sa.contains("--lcores 2@2") && sa.contains("--file-prefix zt"),
        "{sa}"
    );
    assert!(!pa.contains("--in-memory") && !pa.contains("--no-shconf"), "shared runtime files: {pa}");
    // Queues are the group's, whichever process asks.
    assert_eq!(secondary.ports[0].port.rx_queues, 2);
    // proc ids beyond lcore_mask's lcores are refused, naming the key.
    let e = c.deploy_plan(ProcRole::Secondary { proc_id: 2, nb_procs: 3 }).unwrap_err().to_string();
    assert!(
        e.starts_with("t.ini:2: --proc-type=secondary --proc-id=2 of 3 processes: [dpdk] lcore_mask 0x6 has 2"),
        "{e}"
    );
    // A vdev with fewer queues than the lcores serving its port.
    let e = load(&TWO.replace("queues=2", "queues=1")).unwrap().deploy_plan(ProcRole::Single).unwrap_err().to_string();
    assert!(e.contains("[vdev0] queues = 1: expected at least 2, one per lcore of [port0] lcore_list"), "{e}");
    // Only vdevs and no allow: like F-Stack, no PCI probing.
    let vdev_only =
        load(&TWO.replace("allow=0000:02:00.0,txq_inline_max=128\n", "").replace("port_list=0-1", "port_list=0"))
            .unwrap()
            .deploy_plan(ProcRole::Single)
            .unwrap();
    assert!(vdev_only.eal.no_pci);
    // F-Stack's virtio-user vdev: path, queues, queue_size, mac, cq.
    let c = load(&fstack_text()).unwrap();
    let plan = c.deploy_plan(ProcRole::Single).unwrap();
    assert_eq!(
        plan.ports[0].device,
        PortDevice::Vdev {
            devargs: "net_virtio_user0,path=/var/run/openvswitch/vhost-user0,queues=2,queue_size=256,cq=1,\
                      mac=00:00:00:00:00:01"
                .into()
        }
    );
    assert!(!plan.eal.to_args().iter().any(|a| a == "--log-level"), "F-Stack's log_level=0: not passed");
}

#[test]
fn multi_process_plans_share_memory_and_leave_devices_and_memory_to_the_primary() {
    let c = load(TWO).unwrap_or_else(|e| panic!("{e}"));
    let primary = c.deploy_plan(ProcRole::Primary { proc_id: 0, nb_procs: 2 }).unwrap();
    let secondary = c.deploy_plan(ProcRole::Secondary { proc_id: 1, nb_procs: 2 }).unwrap();
    let (pa, sa) = (primary.eal.to_args().join(" "), secondary.eal.to_args().join(" "));
    // The primary creates the vdevs and preallocates; the secondary attaches to both.
    assert!(pa.contains("--vdev net_tap0,iface=zt0"), "{pa}");
    assert!(!sa.contains("--vdev"), "a secondary attaches to the primary's vdevs: {sa}");
    assert!(secondary.eal.memory_mb.is_none(), "{sa}");
    // Hugepage files stay so secondaries can map them.
    for a in [&pa, &sa] {
        assert!(!a.contains("--huge-unlink") && !a.contains("--in-memory") && !a.contains("--no-shconf"), "{a}");
        // `allow` is the EAL's -a list, which Eal::init checks against the probed ports.
        assert!(a.contains("-a 0000:02:00.0,txq_inline_max=128"), "{a}");
    }
    assert_eq!(primary.eal.allow, vec!["0000:02:00.0,txq_inline_max=128".to_owned()]);
    assert_eq!(secondary.eal.allow, primary.eal.allow);
    // Both see the same ports and queue layout.
    assert_eq!(primary.ports[0].lcores, secondary.ports[0].lcores);
    assert_eq!(primary.ports[0].device, secondary.ports[0].device);
}

#[test]
fn rss_check_off_with_several_lcores_on_a_port_is_reported() {
    let notice = |c: &Config| c.report_lines().into_iter().find(|l| l.contains("[rss_check] enable"));
    // enable=0 and port 0 served by two lcores: reported at its line.
    let off = load(&TWO.replace("enable=1", "enable=0")).unwrap();
    let n = notice(&off).expect("a notice for enable=0 with 2 lcores");
    assert!(n.starts_with("t.ini:25: [rss_check] enable: 0 (F-Stack's default), but [port0] has 2 lcores"), "{n}");
    let absent = load(TWO.split("[rss_check]").next().unwrap()).unwrap();
    // No [rss_check] at all: F-Stack's default (off), reported at what gave
    // the port two lcores (lcore_mask here), never at a section the file lacks.
    let n = notice(&absent).expect("a notice without [rss_check]");
    assert!(n.starts_with("t.ini:2: [dpdk] lcore_mask: [rss_check] enable (no such section) is 0"), "{n}");
    let listed = load(
        &TWO.split("[rss_check]")
            .next()
            .unwrap()
            .replace("gateway=0.0.0.0\n[port1]", "gateway=0.0.0.0\nlcore_list=1-2\n[port1]"),
    )
    .unwrap();
    let n = notice(&listed).expect("a notice with lcore_list");
    assert!(n.starts_with("t.ini:14: [port0] lcore_list: [rss_check] enable (no such section) is 0"), "{n}");
    // On, or one lcore per port: nothing to say.
    assert!(notice(&load(TWO).unwrap()).is_none());
    let one = TWO
        .split("[rss_check]")
        .next()
        .unwrap()
        .replace("lcore_mask=0x6", "lcore_mask=0x2")
        .replace("port_list=0-1", "port_list=0");
    let one = one.replace("lcore_list=2\n", "");
    let one = load(&one).unwrap_or_else(|e| panic!("{e}"));
    assert!(notice(&one).is_none(), "{:?}", one.report_lines());
}

#[test]
fn a_port_without_a_vdev_is_a_probed_device_not_an_error() {
    let c = load(MIN).unwrap();
    let plan = c.deploy_plan(ProcRole::Single).unwrap();
    assert_eq!(plan.ports[0].device, PortDevice::Probed);
    assert_eq!(plan.ports[0].port_id, 0);
    assert!(!plan.eal.no_pci, "probed devices need the PCI bus");
    // The single-port runtime serves virtual devices only, and says what to use instead.
    let e = c.runtime(0).unwrap_err().to_string();
    assert!(e.contains("deploy it with Config::deploy_plan"), "{e}");
}

/// `--proc-type=secondary --proc-id=0`: proc-id 0 is the primary's, said
/// before any EAL starts (a secondary 0 would attach as a second queue 0).
#[test]
fn secondary_with_proc_id_0_is_refused() {
    let c = load(TWO).unwrap();
    let e = c.deploy_plan(ProcRole::Secondary { proc_id: 0, nb_procs: 2 }).unwrap_err().to_string();
    assert!(e.starts_with("t.ini:2: --proc-type=secondary --proc-id=0: proc-id 0 is the primary's"), "{e}");
    assert!(c.deploy_plan(ProcRole::Secondary { proc_id: 1, nb_procs: 2 }).is_ok());
}
