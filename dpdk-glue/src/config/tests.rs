use super::*;

const MIN: &str =
    "[dpdk]\nlcore_mask=1\n\n[port0]\naddr=10.1.0.2\nnetmask=255.255.255.0\nbroadcast=10.1.0.255\ngateway=10.1.0.1\n";

fn err(text: &str) -> String {
    Config::parse("t.ini", text).unwrap_err().to_string()
}

#[test]
fn the_shipped_config_ini_loads() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config.ini");
    let c = Config::load(path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.ports[0].addr, Ipv4Addr::new(192, 0, 2, 2));
    assert_eq!(c.ports[0].prefix_len, 24);
    assert!(c.zerocopy.send && c.zerocopy.recv);
    assert_eq!(c.vdevs.len(), c.dpdk.nb_vdev as usize);
    let rt = c.runtime(0).unwrap();
    assert!(rt.vdev.starts_with("net_virtio_user0,path="), "{}", rt.vdev);
}

#[test]
fn minimal_file_gets_defaults() {
    let c = Config::parse("t.ini", MIN).unwrap();
    assert_eq!(c.dpdk.channel, 4);
    assert_eq!(c.dpdk.pkt_tx_delay_us, 100);
    assert_eq!(c.dpdk.port_list, vec![0]);
    assert_eq!(c.ports[0].gateway, Some(Ipv4Addr::new(10, 1, 0, 1)));
    assert_eq!(c.page_array_mb, 256);
    assert_eq!(c.pcap, PcapSection { enable: false, snaplen: 96, savelen: 16 << 20, savepath: ".".into() });
    assert_eq!(c.tcp, TcpConfig::default());
    assert!(c.report.is_empty());
    assert_eq!(
        Config::parse("t.ini", MIN).unwrap().runtime(0).unwrap_err().to_string(),
        "t.ini: port 0 needs a [vdev0] section (zcstack uses NIC-less ports)"
    );
}

#[test]
fn every_section_maps_onto_the_engine() {
    let text = format!("{MIN}\n[dpdk2]\n");
    assert!(err(&text).contains("unknown section [dpdk2]"));
    let text = "[dpdk]\nlcore_mask=0x4\nchannel=2\npromiscuous=0\ntx_csum_offload_skip=1\nidle_sleep=50\npkt_tx_delay=0\n\
        port_list=0\nnb_vdev=1\nno_huge=1\nmemory=700\nfile_prefix=zz\nlog_level=debug\n\
        [port0]\naddr=10.2.0.2\nnetmask=255.255.0.0\nbroadcast=10.2.255.255\ngateway=0.0.0.0\nlcore_list=0-1\nif_name=zc0\n\
        [vdev0]\ndriver=net_tap\niface=zc0\nmac=02:00:00:00:00:07\n\
        [pcap]\nenable=1\nsnaplen=128\nsavelen=65536\nsavepath=/tmp\n\
        [freebsd.boot]\nmemsz_MB=64\n\
        [freebsd.sysctl]\nnet.inet.tcp.sendspace=65536\nnet.inet.tcp.recvspace=131072\nnet.inet.tcp.delayed_ack=0\n\
        net.inet.tcp.cc.algorithm=cubic\nnet.inet.tcp.msl=500\nkern.ipc.somaxconn=128\n\
        [zerocopy]\npage_array=1\nsend=0\nrecv=1\nmin_write=1024\nbuf_size=4096\n\
        [tcp]\nmin_rto_us=5000\nnodelay=1\ninitial_cwnd=20\n";
    let c = Config::parse("t.ini", text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.dpdk.lcore_mask, 4);
    assert!(c.dpdk.tx_csum_offload_skip && !c.dpdk.promiscuous);
    assert_eq!(c.ports[0].prefix_len, 16);
    assert_eq!(c.ports[0].gateway, None);
    assert_eq!(c.ports[0].lcore_list, vec![0, 1]);
    assert_eq!(c.ports[0].mtu, 1500, "default");
    let jumbo = Config::parse("t.ini", &text.replace("if_name=zc0\n", "if_name=zc0\nmtu=9000\n")).unwrap();
    assert_eq!(jumbo.runtime(0).unwrap().mtu, 9000);
    assert_eq!(
        err(&text.replace("if_name=zc0\n", "if_name=zc0\nmtu=65000\n")),
        "t.ini:21: [port0] mtu = \"65000\": expected bytes, 576 to 9600"
    );
    assert_eq!(c.vdevs[0].devargs(), "net_tap0,iface=zc0,mac=02:00:00:00:00:07");
    assert!(c.pcap.enable);
    assert_eq!(c.tcp.send_buffer, 65536);
    assert_eq!(c.tcp.recv_buffer, 131072);
    assert_eq!(c.tcp.delayed_ack, None);
    assert_eq!(c.tcp.congestion, zcstack::config::CongestionControl::Cubic);
    assert_eq!(c.tcp.msl, zcstack::Duration::from_millis(500));
    assert_eq!(c.tcp.somaxconn, 128);
    assert_eq!(c.tcp.min_rto, zcstack::Duration::from_millis(5));
    assert!(c.tcp.nodelay);
    assert_eq!(c.tcp.initial_cwnd_segments, 20);
    let rt = c.runtime(0).unwrap();
    assert_eq!(rt.eal.lcores.as_deref(), Some("0@2"));
    assert_eq!(rt.eal.memory_mb, Some(700));
    assert_eq!(rt.device.tx_mode, TxMode::Copy);
    assert!(rt.device.rx_zero_copy);
    assert_eq!(rt.device.tx_delay_us, 0);
    assert_eq!(rt.page_array_mb, 64);
    assert_eq!(rt.page_buf_size, 4096);
    assert_eq!(rt.stack.zc_min_write, 0, "no zero-copy send: no threshold");
    assert!(!rt.tx_checksum_offload);
    assert!(!rt.tso, "default");
    assert_eq!(rt.idle_sleep_us, 50);
    assert_eq!(rt.stack.iface.mac, EthernetAddress([2, 0, 0, 0, 0, 7]));
    let tso = Config::parse("t.ini", &text.replace("log_level=debug\n", "log_level=debug\ntso=1\n")).unwrap();
    assert!(tso.runtime(0).unwrap().tso, "[dpdk] tso=1 requests TCP segmentation offload");
    assert!(!tso.report.iter().any(|n| n.key.contains("tso")), "implemented, not reported: {:?}", tso.report);
    assert_eq!(
        err(&text.replace("log_level=debug\n", "log_level=debug\ntso=2\n")),
        "t.ini:14: [dpdk] tso = \"2\": expected 0 or 1"
    );
}

#[test]
fn error_messages_name_file_line_key_and_what_is_allowed() {
    assert_eq!(
        err(&MIN.replace("lcore_mask=1", "lcore_mask=1\npromiscous=1")),
        "t.ini:3: [dpdk] unknown key \"promiscous\"; did you mean \"promiscuous\"? (known keys: lcore_mask, channel, \
         promiscuous, numa_on, tx_csum_offoad_skip, tx_csum_offload_skip, tso, vlan_strip, idle_sleep, pkt_tx_delay, \
         symmetric_rss, port_list, nb_vdev, no_huge, memory, file_prefix, log_level, base_virtaddr, vlan_filter, \
         allow, nb_bond)"
    );
    assert_eq!(
        err(&MIN.replace("lcore_mask=1", "lcore_mask=1\npromiscuous=yes")),
        "t.ini:3: [dpdk] promiscuous = \"yes\": expected 0 or 1"
    );
    assert_eq!(
        err(&MIN.replace("lcore_mask=1", "pkt_tx_delay=500")),
        "t.ini:2: [dpdk] pkt_tx_delay = \"500\": expected microseconds in 0..=100"
    );
    assert_eq!(
        err(&MIN.replace("lcore_mask=1", "lcore_mask=0")),
        "t.ini:2: [dpdk] lcore_mask = \"0\": expected a non-zero hex lcore mask like 1 or 0x3"
    );
    assert_eq!(
        err(&MIN.replace("addr=10.1.0.2\n", "")),
        "t.ini:4: [port0] missing required key \"addr\" (the port's IPv4 address)"
    );
    assert_eq!(
        err(&MIN.replace("netmask=255.255.255.0", "netmask=255.0.255.0")),
        "t.ini:6: [port0] netmask = \"255.0.255.0\": expected a contiguous netmask like 255.255.255.0"
    );
    assert_eq!(err(&format!("{MIN}[pocap]\nenable=1\n")), "t.ini:9: unknown section [pocap]; did you mean [pcap]? (known: dpdk, portN, vdevN, pcap, freebsd.boot, freebsd.sysctl, kni, bondN, zerocopy, tcp, impair)");
    assert_eq!(
        err(&format!("{MIN}[freebsd.sysctl]\nnet.inet.tcp.sendspce=1\n")),
        "t.ini:10: [freebsd.sysctl] unknown key \"net.inet.tcp.sendspce\"; did you mean \"net.inet.tcp.sendspace\"?"
    );
    assert_eq!(
        err(&format!("{MIN}[freebsd.sysctl]\nnet.inet.tcp.cc.algorithm=bbr\n")),
        "t.ini:10: [freebsd.sysctl] net.inet.tcp.cc.algorithm = \"bbr\": expected newreno or cubic"
    );
    assert_eq!(
        err(&format!("{MIN}[zerocopy]\npage_array=0\n")),
        "t.ini:10: [zerocopy] send = 1 needs page_array = 1 (zero-copy TX sends from the page array)"
    );
    assert_eq!(
        err(&MIN.replace("lcore_mask=1", "lcore_mask=1\nnb_vdev=1")),
        "t.ini: [dpdk] nb_vdev = 1 but the file has 0 [vdevN] sections"
    );
    assert_eq!(
        err(&format!("{}[vdev0]\nqueues=1\n", MIN.replace("lcore_mask=1", "lcore_mask=1\nnb_vdev=1"))),
        "t.ini:10: [vdev0] missing required key \"path\" (the net_virtio_user socket path)"
    );
    assert_eq!(err(&MIN.replace("[dpdk]\nlcore_mask=1\n", "")), "t.ini: missing required section [dpdk]");
    assert_eq!(
        Config::load("/nonexistent/zc.ini").unwrap_err().to_string().split(':').next(),
        Some("/nonexistent/zc.ini")
    );
}

#[test]
fn fstack_keys_zcstack_does_not_implement_are_reported() {
    // The keys of F-Stack's own shipped config.ini (REFERENCE.md), with its defaults.
    let fstack = "[dpdk]\nlcore_mask=1\nchannel=4\npromiscuous=1\nnuma_on=1\ntx_csum_offoad_skip=0\ntso=0\n\
        vlan_strip=1\nidle_sleep=0\npkt_tx_delay=100\nsymmetric_rss=0\nport_list=0\nnb_vdev=0\nnb_bond=0\n\
        [port0]\naddr=192.168.1.2\nnetmask=255.255.225.0\nbroadcast=192.168.1.255\ngateway=192.168.1.1\n";
    // (F-Stack's sample netmask 255.255.225.0 is not contiguous: reported as an error.)
    assert!(err(fstack).contains("[port0] netmask = \"255.255.225.0\": expected a contiguous netmask"));
    let fstack = fstack.replace("255.255.225.0", "255.255.255.0")
        + "[pcap]\nenable=0\nsnaplen=96\nsavelen=16777216\nsavepath=.\n\
        [kni]\nenable=1\nmethod=reject\ntcp_port=80,443\n\
        [freebsd.boot]\nhz=100\nfd_reserve=1024\nphysmem=0\nmemsz_MB=256\n\
        [freebsd.sysctl]\nkern.ipc.maxsockets=262144\nnet.inet.tcp.syncache.hashsize=4096\nnet.inet.tcp.sendspace=16384\n\
        net.inet.tcp.recvspace=8192\nnet.inet.tcp.cc.algorithm=cubic\nnet.inet.tcp.delayed_ack=1\nnet.inet.tcp.msl=2000\n\
        kern.ipc.somaxconn=32768\nnet.inet.tcp.sack.enable=1\nnet.inet.tcp.rfc1323=1\n";
    let c = Config::parse("fstack.ini", &fstack).unwrap_or_else(|e| panic!("{e}"));
    let keys: Vec<&str> = c.report.iter().map(|n| n.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "[dpdk] numa_on",
            "[dpdk] vlan_strip",
            "[dpdk] nb_bond",
            "[kni] enable",
            "[kni] method",
            "[kni] tcp_port",
            "[freebsd.boot] hz",
            "[freebsd.boot] fd_reserve",
            "[freebsd.boot] physmem",
            "[freebsd.sysctl] kern.ipc.maxsockets",
            "[freebsd.sysctl] net.inet.tcp.syncache.hashsize",
        ]
    );
    assert_eq!(
        c.report[1].to_string(),
        "line 8: [dpdk] vlan_strip: VLAN is not implemented: tagged frames are dropped and counted"
    );
    assert_eq!(c.tcp.send_buffer, 16384);
    assert_eq!(c.tcp.congestion, zcstack::config::CongestionControl::Cubic);
}

fn toml_err(text: &str) -> String {
    Config::parse_toml("t.toml", text).unwrap_err().to_string()
}

/// The typed settings, without where they came from.
fn settings(c: &Config) -> String {
    format!(
        "{:?} {:?} {:?} {:?} {} {:?} {:?} {:?}",
        c.dpdk, c.ports, c.vdevs, c.pcap, c.page_array_mb, c.tcp, c.zerocopy, c.reassembly
    )
}

#[test]
fn the_shipped_config_toml_means_the_same_as_config_ini() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let ini = Config::load(&format!("{root}/config.ini")).unwrap_or_else(|e| panic!("{e}"));
    let toml = Config::load(&format!("{root}/config.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(settings(&toml), settings(&ini));
    let keys = |c: &Config| c.report.iter().map(|n| n.key.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&toml), keys(&ini), "the same F-Stack keys are reported as not implemented");
    assert_eq!(format!("{:?}", toml.runtime(0).unwrap()), format!("{:?}", ini.runtime(0).unwrap()));
}

#[test]
fn toml_values_map_onto_the_ini_schema() {
    let text = "[dpdk]\nlcore_mask = 0x6\nport_list = [0]\nno_huge = true\n\n\
        [port0]\naddr = \"10.1.0.2\"\nnetmask = \"255.255.255.0\"\nbroadcast = \"10.1.0.255\"\ngateway = \"10.1.0.1\"\n\
        [freebsd.sysctl]\n\"net.inet.tcp.msl\" = 500\nnet.inet.tcp.cc.algorithm = \"cubic\"\n\
        [freebsd.boot]\nmemsz_MB = 64\n";
    let c = Config::parse_toml("t.toml", text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.dpdk.lcore_mask, 6, "an integer mask is its value, not hex digits");
    assert_eq!(c.dpdk.port_list, vec![0]);
    let e = toml_err(&text.replace("[0]", "[0, 1]"));
    assert_eq!(e, "t.toml: [dpdk] port_list names port 1 but there is no [port1] section", "arrays are lists");
    assert!(c.dpdk.no_huge);
    assert_eq!(c.page_array_mb, 64);
    assert_eq!(c.tcp.msl, zcstack::Duration::from_millis(500));
    assert_eq!(c.tcp.congestion, zcstack::config::CongestionControl::Cubic);
}

#[test]
fn toml_errors_name_file_line_and_key_like_ini() {
    let base = "[dpdk]\nlcore_mask = 1\n\n[port0]\naddr = \"10.1.0.2\"\nnetmask = \"255.255.255.0\"\n\
        broadcast = \"10.1.0.255\"\ngateway = \"10.1.0.1\"\n";
    assert_eq!(
        toml_err(&format!("{base}[tcp]\nmin_rto_uss = 5\n")),
        "t.toml:10: [tcp] unknown key \"min_rto_uss\"; did you mean \"min_rto_us\"? (known keys: min_rto_us, \
         initial_rto_ms, nodelay, timestamps, syn_cookies, initial_cwnd, window_scale, keepalive_idle_s, \
         keepalive_interval_s, keepalive_probes, max_ooo_segments)"
    );
    assert_eq!(toml_err(&format!("{base}[pcap]\nenable = 2\n")), "t.toml:10: [pcap] enable = \"2\": expected 0 or 1");
    assert_eq!(toml_err("lcore_mask = 1\n"), "t.toml:1: key before any [section]: lcore_mask");
    assert_eq!(
        toml_err("[dpdk]\nlog_level = 1979-05-27\n"),
        "t.toml:2: log_level: a date (1979-05-27) is not a configuration value"
    );
    let e = toml_err("[dpdk]\nlcore_mask = = 1\n");
    assert!(e.starts_with("t.toml:2: TOML: "), "{e}");
    let e = toml_err("[dpdk]\nchannel = 1\nchannel = 2\n");
    assert!(e.starts_with("t.toml:3: TOML: "), "duplicate keys are TOML errors: {e}");
}

#[test]
fn impair_section_maps_to_the_device_and_checks_its_values() {
    let c = Config::parse("t.ini", MIN).unwrap();
    assert!(!c.impair.is_on(), "off unless set");
    let text = format!("{MIN}[vdev0]\ndriver=net_tap\n[impair]\nloss=3\nreorder=10%\ndelay_us=1000\nseed=7\n")
        .replace("lcore_mask=1\n", "lcore_mask=1\nnb_vdev=1\n");
    let c = Config::parse("t.ini", &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.impair, ImpairConfig { loss_ppm: 30_000, reorder_ppm: 100_000, delay_us: 1000, seed: 7 });
    assert_eq!(c.runtime(0).unwrap().device.impair, c.impair);
    assert_eq!(
        err(&format!("{MIN}[impair]\nloss=0.5\nreorder=10\n")),
        "t.ini:11: [impair] reorder needs delay_us > 0 (reordered frames overtake delayed ones, as in netem)"
    );
    assert_eq!(
        err(&format!("{MIN}[impair]\nloss=101\n")),
        "t.ini:10: [impair] loss = \"101\": expected a percentage from 0 to 100, like 3 or 0.5"
    );
}

#[test]
fn one_process_per_lcore_each_with_its_own_port() {
    let text = "[dpdk]\nlcore_mask=0x6\nport_list=0,1\nfile_prefix=grp\nnb_vdev=2\n\
        [port0]\naddr=10.3.0.2\nnetmask=255.255.255.0\nbroadcast=10.3.0.255\ngateway=0.0.0.0\n\
        [port1]\naddr=10.4.0.2\nnetmask=255.255.255.0\nbroadcast=10.4.0.255\ngateway=0.0.0.0\n\
        [vdev0]\ndriver=net_vhost\npath=/tmp/a.sock\n\
        [vdev1]\ndriver=net_vhost\npath=/tmp/b.sock\n";
    let c = Config::parse("t.ini", text).unwrap_or_else(|e| panic!("{e}"));
    let p0 = c.runtime_for_proc(0).unwrap();
    let p1 = c.runtime_for_proc(1).unwrap();
    // The N-th lcore of the mask (lowest first) and the N-th port.
    assert_eq!(p0.eal.lcores.as_deref(), Some("0@1"));
    assert_eq!(p1.eal.lcores.as_deref(), Some("0@2"));
    assert_eq!(p0.stack.iface.addr, std::net::Ipv4Addr::new(10, 3, 0, 2));
    assert_eq!(p1.stack.iface.addr, std::net::Ipv4Addr::new(10, 4, 0, 2));
    assert!(p0.vdev.contains("/tmp/a.sock") && p1.vdev.contains("/tmp/b.sock"), "{} {}", p0.vdev, p1.vdev);
    assert_eq!(p0.eal.file_prefix.as_deref(), Some("grp"));
    assert_eq!(p1.eal.file_prefix.as_deref(), Some("grp-1"), "EAL files do not collide");
    assert_eq!(p1.control, Some(crate::control::control_path("grp-1")), "nor zcstat sockets");
    assert_ne!(p0.control, p1.control);
    assert_eq!(
        c.runtime_for_proc(2).unwrap_err().to_string(),
        "t.ini: --proc-id 2: [dpdk] lcore_mask 0x6 has 2 lcore(s), so proc ids 0..=1 (one process per lcore)"
    );
    let one_port = Config::parse("t.ini", &text.replace("port_list=0,1", "port_list=0")).unwrap();
    assert_eq!(
        one_port.runtime_for_proc(1).unwrap_err().to_string(),
        "t.ini: --proc-id 1: [dpdk] port_list names 1 port(s); each zcstack process serves its own NIC-less port \
         ([portN] + [vdevN]), so 2 processes need 2 ports in port_list"
    );
}

#[test]
fn reassembly_sysctls_map_to_the_engine_within_their_ranges() {
    let with = |sysctls: &str| {
        format!(
            "{}[vdev0]\ndriver=net_tap\niface=zc0\n[freebsd.sysctl]\n{sysctls}",
            MIN.replace("lcore_mask=1\n", "lcore_mask=1\nnb_vdev=1\n").replace("[port0]\n", "[port0]\nif_name=zc0\n")
        )
    };
    let rt = |text: String| {
        Config::parse("t.ini", &text)
            .unwrap_or_else(|e| panic!("{e}"))
            .runtime(0)
            .unwrap_or_else(|e| panic!("{e}"))
            .stack
    };
    let s = rt(with("net.inet.ip.maxfragsperpacket=32\nnet.inet.ip.maxfragpackets=200\n"));
    assert_eq!(s.reassembly_max_fragments, 32);
    assert_eq!(s.reassembly_datagrams, 200);
    assert_eq!(s.reassembly_per_source, 50, "a quarter of the table per source");
    let d = rt(with(""));
    assert_eq!((d.reassembly_max_fragments, d.reassembly_datagrams), (16, 64), "FreeBSD's defaults");
    assert_eq!(
        err(&format!("{MIN}\n[freebsd.sysctl]\nnet.inet.ip.maxfragsperpacket=0\n")),
        "t.ini:11: [freebsd.sysctl] net.inet.ip.maxfragsperpacket = \"0\": expected a count of fragments, 1 to 8192"
    );
    assert_eq!(
        err(&format!("{MIN}\n[freebsd.sysctl]\nnet.inet.ip.maxfragpackets=100000\n")),
        "t.ini:11: [freebsd.sysctl] net.inet.ip.maxfragpackets = \"100000\": expected a count of datagrams, 1 to 65536"
    );
}
