use super::*;

const MIN: &str =
    "[dpdk]\nlcore_mask=1\n\n[port0]\naddr=10.1.0.2\nnetmask=255.255.255.0\nbroadcast=10.1.0.255\ngateway=10.1.0.1\n";

/// A machine with 8 CPUs and 16 GiB: the checks against the machine are
/// tested with it (and with others) so that results do not depend on where
/// the tests run.
fn host() -> Host {
    Host::with(8, 16 << 10)
}

fn parse_at(file: &str, text: &str) -> Result<Config, ConfigError> {
    Config::parse_for_host(file, text, &host())
}

fn parse_toml_at(file: &str, text: &str) -> Result<Config, ConfigError> {
    Config::parse_toml_for_host(file, text, &host())
}

fn err(text: &str) -> String {
    parse_at("t.ini", text).unwrap_err().to_string()
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
    let c = parse_at("t.ini", MIN).unwrap();
    assert_eq!(c.dpdk.channel, 4);
    assert_eq!(c.dpdk.pkt_tx_delay_us, 100);
    assert_eq!(c.dpdk.port_list, vec![0]);
    assert_eq!(c.ports[0].gateway, Some(Ipv4Addr::new(10, 1, 0, 1)));
    assert_eq!(c.page_array_mb, 256);
    assert_eq!(c.pcap, PcapSection { enable: false, snaplen: 96, savelen: 16 << 20, savepath: ".".into() });
    assert_eq!(c.tcp, TcpConfig::default());
    assert!(c.report.is_empty());
    assert_eq!(
        parse_at("t.ini", MIN).unwrap().runtime(0).unwrap_err().to_string(),
        "t.ini:4: [port0] has no [vdev0], so it is a device the EAL probes (PCI, narrowed by [dpdk] allow); the \
         single-port runtime starts virtual devices only: deploy it with Config::deploy_plan"
    );
}

#[test]
fn every_section_maps_onto_the_engine() {
    let text = format!("{MIN}\n[dpdk2]\n");
    assert!(err(&text).contains("unknown section [dpdk2]"));
    let text = "[dpdk]\nlcore_mask=0x4\nchannel=2\npromiscuous=0\ntx_csum_offload_skip=1\nidle_sleep=50\npkt_tx_delay=0\n\
        port_list=0\nnb_vdev=1\nno_huge=1\nmemory=700\nfile_prefix=zz\nlog_level=debug\n\
        [port0]\naddr=10.2.0.2\nnetmask=255.255.0.0\nbroadcast=10.2.255.255\ngateway=0.0.0.0\nlcore_list=2\nif_name=zc0\n\
        [vdev0]\ndriver=net_tap\niface=zc0\nmac=02:00:00:00:00:07\n\
        [pcap]\nenable=1\nsnaplen=128\nsavelen=65536\nsavepath=/tmp\n\
        [freebsd.boot]\nmemsz_MB=64\n\
        [freebsd.sysctl]\nnet.inet.tcp.sendspace=65536\nnet.inet.tcp.recvspace=131072\nnet.inet.tcp.delayed_ack=0\n\
        net.inet.tcp.cc.algorithm=cubic\nnet.inet.tcp.msl=500\nkern.ipc.somaxconn=128\n\
        [zerocopy]\npage_array=1\nsend=0\nrecv=1\nmin_write=1024\nbuf_size=4096\n\
        [tcp]\nmin_rto_us=5000\nnodelay=1\ninitial_cwnd=20\ninvalid_ack_burst=3\nchallenge_ack_limit=50\n";
    let c = parse_at("t.ini", text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.dpdk.lcore_mask, 4);
    assert!(c.dpdk.tx_csum_offload_skip && !c.dpdk.promiscuous);
    assert_eq!(c.ports[0].prefix_len, 16);
    assert_eq!(c.ports[0].gateway, None);
    assert_eq!(c.ports[0].lcore_list, vec![2]);
    assert_eq!(c.ports[0].mtu, 1500, "default");
    let jumbo = parse_at("t.ini", &text.replace("if_name=zc0\n", "if_name=zc0\nmtu=9000\n")).unwrap();
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
    assert_eq!((c.tcp.invalid_ack_burst, c.tcp.challenge_ack_limit), (3, 50));
    assert_eq!(c.tcp.gso_max, 32 * 1024, "GSO on by default");
    let no_gso = parse_at("t.ini", &text.replace("nodelay=1\n", "nodelay=1\ngso_max=0\n")).unwrap();
    assert_eq!(no_gso.runtime(0).unwrap().stack.tcp.gso_max, 0, "[tcp] gso_max=0 sends segment by segment");
    assert_eq!(c.tcp.output_pass_frames, 32, "a pass sends 32 frames per connection by default");
    let pass = parse_at("t.ini", &text.replace("nodelay=1\n", "nodelay=1\noutput_pass_frames=0\n")).unwrap();
    assert_eq!(pass.runtime(0).unwrap().stack.tcp.output_pass_frames, 0, "[tcp] output_pass_frames=0: no limit");
    assert_eq!(
        err(&text.replace("nodelay=1\n", "nodelay=1\ngso_max=65536\n")),
        "t.ini:48: [tcp] gso_max = \"65536\": expected bytes in 0..=65535 (0: segment by segment)"
    );
    assert_eq!(
        err(&text.replace("invalid_ack_burst=3", "invalid_ack_burst=0")),
        "t.ini:49: [tcp] invalid_ack_burst = \"0\": expected a count in 1..=1000000"
    );
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
    let tso = parse_at("t.ini", &text.replace("log_level=debug\n", "log_level=debug\ntso=1\n")).unwrap();
    assert!(tso.runtime(0).unwrap().tso, "[dpdk] tso=1 requests TCP segmentation offload");
    assert!(!tso.report.iter().any(|n| n.key.contains("tso")), "implemented, not reported: {:?}", tso.report);
    assert_eq!(
        err(&text.replace("log_level=debug\n", "log_level=debug\ntso=2\n")),
        "t.ini:14: [dpdk] tso = \"2\": expected 0 or 1"
    );
    // Stage cycle counters: off by default, 0 or 1, reaching the device
    // config the run loop reads; implemented, so not in the report.
    assert!(!rt.device.stage_cycles, "off by default");
    let on = parse_at("t.ini", &text.replace("log_level=debug\n", "log_level=debug\nstage_cycles=1\n")).unwrap();
    assert!(on.runtime(0).unwrap().device.stage_cycles, "[dpdk] stage_cycles=1 turns the counters on");
    assert!(!on.report.iter().any(|n| n.key.contains("stage")), "implemented, not reported: {:?}", on.report);
    for bad in ["2", "yes", "-1", ""] {
        assert_eq!(
            err(&text.replace("log_level=debug\n", &format!("log_level=debug\nstage_cycles={bad}\n"))),
            format!("t.ini:14: [dpdk] stage_cycles = \"{bad}\": expected 0 or 1")
        );
    }
    // TX reclaim slices: 32 by default, 0 for the driver's default, reaching
    // the runtime's port config.
    assert_eq!(rt.port.tx_free_batch, 32);
    let tfb = parse_at("t.ini", &text.replace("log_level=debug\n", "log_level=debug\ntx_free_batch=0\n")).unwrap();
    assert_eq!(tfb.runtime(0).unwrap().port.tx_free_batch, 0);
    assert!(!tfb.report.iter().any(|n| n.key.contains("tx_free")), "implemented, not reported: {:?}", tfb.report);
    assert_eq!(
        err(&text.replace("log_level=debug\n", "log_level=debug\ntx_free_batch=4097\n")),
        "t.ini:14: [dpdk] tx_free_batch = \"4097\": expected TX descriptors in 0..=4096 (0: the driver's default)"
    );
}

#[test]
fn error_messages_name_file_line_key_and_what_is_allowed() {
    assert_eq!(
        err(&MIN.replace("lcore_mask=1", "lcore_mask=1\npromiscous=1")),
        "t.ini:3: [dpdk] unknown key \"promiscous\"; did you mean \"promiscuous\"? (known keys: lcore_mask, channel, \
         promiscuous, numa_on, tx_csum_offoad_skip, tx_csum_offload_skip, tso, vlan_strip, idle_sleep, pkt_tx_delay, \
         symmetric_rss, port_list, nb_vdev, no_huge, memory, file_prefix, log_level, base_virtaddr, vlan_filter, \
         allow, nb_bond, fstack_log_level, fstack_log_file_prefix, thread_mode, lro, mtu_enable, max_mtu, mbuf_mode, \
         stage_cycles, tx_free_batch)"
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
        "t.ini:2: [dpdk] lcore_mask = \"0\": expected a non-zero hex lcore mask of at most 64 bits (CPUs 0-63) like 1 or 0x3"
    );
    assert_eq!(
        err(&MIN.replace("addr=10.1.0.2\n", "")),
        "t.ini:4: [port0] missing required key \"addr\" (the port's IPv4 address)"
    );
    assert_eq!(
        err(&MIN.replace("netmask=255.255.255.0", "netmask=255.0.255.0")),
        "t.ini:6: [port0] netmask = \"255.0.255.0\": expected a contiguous netmask like 255.255.255.0"
    );
    assert_eq!(err(&format!("{MIN}[pocap]\nenable=1\n")), "t.ini:9: unknown section [pocap]; did you mean [pcap]? (known: dpdk, portN, vdevN, vlanN, bondN, pcap, rss_check, kni, freebsd.boot, freebsd.sysctl, zerocopy, tcp, impair)");
    // A typo of a mapped FreeBSD name loads (F-Stack would pass it to FreeBSD), with a "did you mean".
    let typo = parse_at("t.ini", &format!("{MIN}[freebsd.sysctl]\nnet.inet.tcp.sendspce=1\n")).unwrap();
    assert_eq!(
        typo.report[0].to_string(),
        "line 10: [freebsd.sysctl] net.inet.tcp.sendspce: F-Stack key not implemented: no zcstack equivalent, \
         ignored; did you mean \"net.inet.tcp.sendspace\"?"
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
        "t.ini:3: [dpdk] nb_vdev = 1 but the file has 0 [vdevN] sections"
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
    let c = parse_at("fstack.ini", &fstack).unwrap_or_else(|e| panic!("{e}"));
    let keys: Vec<&str> = c.report.iter().map(|n| n.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "[dpdk] vlan_strip",
            "[dpdk] nb_bond",
            "[kni]",
            "[kni] enable",
            "[kni] method",
            "[kni] tcp_port",
            "[freebsd.boot] hz",
            "[freebsd.boot] fd_reserve",
            "[freebsd.boot] physmem",
            "[freebsd.sysctl] net.inet.tcp.syncache.hashsize",
        ]
    );
    assert_eq!(
        c.report[0].to_string(),
        "line 8: [dpdk] vlan_strip: F-Stack key not implemented: VLAN is not implemented (no VLAN sub-interfaces): \
         tagged frames are dropped and counted"
    );
    assert_eq!(c.tcp.send_buffer, 16384);
    assert_eq!(c.tcp.congestion, zcstack::config::CongestionControl::Cubic);
    assert_eq!(c.tcp.max_sockets, 262_144, "kern.ipc.maxsockets is mapped");
}

fn toml_err(text: &str) -> String {
    parse_toml_at("t.toml", text).unwrap_err().to_string()
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
    let c = parse_toml_at("t.toml", text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.dpdk.lcore_mask, 6, "an integer mask is its value, not hex digits");
    assert_eq!(c.dpdk.port_list, vec![0]);
    let e = toml_err(&text.replace("[0]", "[0, 1]"));
    // Issue 10: the error names the line of `port_list` in TOML too.
    assert_eq!(e, "t.toml:3: [dpdk] port_list names port 1 but there is no [port1] section", "arrays are lists");
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
         keepalive_interval_s, keepalive_probes, max_ooo_segments, invalid_ack_interval_ms, invalid_ack_burst, \
         challenge_ack_limit, delayed_ack_ms, syn_retries, min_path_mtu, gso_max, output_pass_frames)"
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
    let c = parse_at("t.ini", MIN).unwrap();
    assert!(!c.impair.is_on(), "off unless set");
    let text = format!("{MIN}[vdev0]\ndriver=net_tap\n[impair]\nloss=3\nreorder=10%\ndelay_us=1000\nseed=7\n")
        .replace("lcore_mask=1\n", "lcore_mask=1\nnb_vdev=1\n");
    let c = parse_at("t.ini", &text).unwrap_or_else(|e| panic!("{e}"));
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
    let c = parse_at("t.ini", text).unwrap_or_else(|e| panic!("{e}"));
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
        "t.ini:2: --proc-id 2: [dpdk] lcore_mask 0x6 has 2 lcore(s), so proc ids 0..=1 (one process per lcore)"
    );
    let one_port = parse_at("t.ini", &text.replace("port_list=0,1", "port_list=0")).unwrap();
    assert_eq!(
        one_port.runtime_for_proc(1).unwrap_err().to_string(),
        "t.ini:3: --proc-id 1: [dpdk] port_list names 1 port(s); each zcstack process serves its own NIC-less port \
         ([portN] + [vdevN]), so 2 processes need 2 ports in port_list"
    );
}

// ----- fault 8: every value in its physical range, keys against each other and the machine -----

/// MIN with `line` added to `[dpdk]` (it becomes line 3).
fn in_dpdk(line: &str) -> String {
    MIN.replace("lcore_mask=1\n", &format!("lcore_mask=1\n{line}\n"))
}

#[test]
fn issue_inputs_are_refused_naming_file_line_key_and_range() {
    // [freebsd.boot] memsz_MB larger than [dpdk] memory: the wrong key, and the one it conflicts with.
    assert_eq!(
        err(&format!("{}[freebsd.boot]\nmemsz_MB=1024\n", in_dpdk("no_huge=1\nmemory=512"))),
        "t.ini:12: [freebsd.boot] memsz_MB = \"1024\": expected MiB in 1..=437: the page array, the mbuf pools \
         (43 MiB at mtu 1500) and 32 MiB for DPDK must fit in [dpdk] memory = 512 (t.ini:4)"
    );
    // memory too small for the default page array and the pools.
    assert_eq!(
        err(&in_dpdk("memory=64")),
        "t.ini:3: [dpdk] memory = \"64\": expected MiB in 331..=16384: it must hold the page array (256 MiB, \
         [freebsd.boot] memsz_MB (not set)), the mbuf pools (43 MiB at mtu 1500) and 32 MiB for DPDK"
    );
    // An lcore on a CPU that does not exist (the test machine has CPUs 0-7).
    assert_eq!(
        err(&MIN.replace("lcore_mask=1", "lcore_mask=0x300")),
        "t.ini:2: [dpdk] lcore_mask = \"0x300\": expected a hex mask of CPUs this process may use (0-7): CPU 8 \
         does not exist or is outside its cpuset"
    );
    // The same against this machine (CPU 63 unless this process may run on 64 CPUs).
    let here = Host::current();
    if !here.has_cpu(63) {
        let e = Config::parse("t.ini", &MIN.replace("lcore_mask=1", "lcore_mask=0x8000000000000000")).unwrap_err();
        assert!(e.to_string().contains("CPU 63 does not exist"), "{e}");
    }
    assert_eq!(
        err(&MIN.replace("lcore_mask=1", "lcore_mask=0x10000000000000000")),
        "t.ini:2: [dpdk] lcore_mask = \"0x10000000000000000\": expected a non-zero hex lcore mask of at most 64 \
         bits (CPUs 0-63) like 1 or 0x3"
    );
    // Over-long file_prefix and iface.
    let allowed = keys::FILE_PREFIX_ALLOWED;
    let long = "p".repeat(62);
    assert_eq!(
        err(&in_dpdk(&format!("file_prefix={long}"))),
        format!("t.ini:3: [dpdk] file_prefix = \"{long}\": expected {allowed}")
    );
    assert!(parse_at("t.ini", &in_dpdk(&format!("file_prefix={}", "p".repeat(61)))).is_ok(), "61 bytes fit");
    let group = format!("{}-63", "p".repeat(61));
    assert_eq!(crate::eal::check_file_prefix(&group), Ok(()), "so does process 63's prefix, for the EAL");
    let vdev = |kv: &str| format!("{}[vdev0]\ndriver=net_tap\n{kv}\n", in_dpdk("nb_vdev=1"));
    assert_eq!(
        err(&vdev("iface=zcstack-iface-16")),
        "t.ini:12: [vdev0] iface = \"zcstack-iface-16\": expected an interface name of 1 to 15 bytes \
         (IFNAMSIZ-1) without '/', ':', ',', '=' or whitespace, not '.' or '..'"
    );
    assert!(parse_at("t.ini", &vdev("iface=zcstack-ifac15")).is_ok(), "15 bytes fit");
    // file_prefix=../../etc/x: a path, refused when the file is read and by the EAL wrapper.
    assert_eq!(
        err(&in_dpdk("file_prefix=../../etc/x")),
        format!("t.ini:3: [dpdk] file_prefix = \"../../etc/x\": expected {allowed}")
    );
    let args = EalArgs { file_prefix: Some("../../etc/x".into()), ..EalArgs::nic_less("0@0") };
    let e = crate::eal::Eal::init(&args).unwrap_err();
    assert!(matches!(e, crate::error::Error::BadFilePrefix { .. }), "refused before DPDK is touched: {e}");
    // net.inet.tcp.sendspace of 91 TiB.
    assert_eq!(
        err(&format!("{MIN}[freebsd.sysctl]\nnet.inet.tcp.sendspace=100055558127616\n")),
        "t.ini:10: [freebsd.sysctl] net.inet.tcp.sendspace = \"100055558127616\": expected bytes in \
         1024..=1073725440 (65535 << 14, the largest window RFC 7323 can advertise)"
    );
    // A UTF-8 byte-order mark at the start is accepted, in both forms, and lines still count from 1.
    let c = parse_at("t.ini", &format!("\u{feff}{MIN}")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.ports[0].addr, Ipv4Addr::new(10, 1, 0, 2));
    assert_eq!(
        err(&format!("\u{feff}{}", MIN.replace("lcore_mask=1", "lcore_mask=x"))).split(' ').next(),
        Some("t.ini:2:")
    );
    // A gateway outside the port's subnet.
    assert_eq!(
        err(&MIN.replace("gateway=10.1.0.1", "gateway=10.9.0.1")),
        "t.ini:8: [port0] gateway = \"10.9.0.1\": expected 0.0.0.0 (none) or a host address of the port's subnet \
         10.1.0.0/24 other than addr itself (subnet from [port0] addr = 10.1.0.2 (t.ini:5) and [port0] netmask = \
         255.255.255.0 (t.ini:6))"
    );
}

#[test]
fn crlf_and_bom_read_like_plain_lines_in_ini_and_toml() {
    let crlf = MIN.replace('\n', "\r\n");
    let plain = parse_at("t.ini", MIN).unwrap();
    for text in [crlf.clone(), format!("\u{feff}{crlf}")] {
        let c = parse_at("t.ini", &text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(settings(&c), settings(&plain));
    }
    let e = err(&format!("\u{feff}{}", crlf.replace("netmask=255.255.255.0", "netmask=255.0.255.0")));
    assert_eq!(e, "t.ini:6: [port0] netmask = \"255.0.255.0\": expected a contiguous netmask like 255.255.255.0");
    let toml = "[dpdk]\nlcore_mask = 1\n[port0]\naddr = \"10.1.0.2\"\nnetmask = \"255.255.255.0\"\n\
        broadcast = \"10.1.0.255\"\ngateway = \"10.1.0.1\"\n";
    for text in
        [format!("\u{feff}{toml}"), toml.replace('\n', "\r\n"), format!("\u{feff}{}", toml.replace('\n', "\r\n"))]
    {
        let c = parse_toml_at("t.toml", &text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(settings(&c), settings(&plain));
    }
    assert_eq!(
        toml_err(&format!("\u{feff}{}", toml.replace("lcore_mask = 1", "channel = -1").replace('\n', "\r\n"))),
        "t.toml:2: [dpdk] channel = \"-1\": expected 1..=32 memory channels"
    );
}

/// `(section, key, lowest, highest)` of every numeric key.
const NUMERIC: &[(&str, &str, u64, u64)] = &[
    ("dpdk", "channel", 1, 32),
    ("dpdk", "idle_sleep", 0, 999_999),
    ("dpdk", "tx_free_batch", 0, 4096),
    ("dpdk", "pkt_tx_delay", 0, 100),
    ("dpdk", "nb_vdev", 0, 64),
    ("dpdk", "memory", 1, u32::MAX as u64),
    ("port0", "mtu", 576, 9600),
    ("pcap", "snaplen", 64, 65_535),
    ("pcap", "savelen", 4096, 1 << 40),
    ("freebsd.boot", "memsz_MB", 1, 1_048_575),
    ("freebsd.sysctl", "net.inet.tcp.sendspace", 1024, 1_073_725_440),
    ("freebsd.sysctl", "net.inet.tcp.recvspace", 1024, 1_073_725_440),
    ("freebsd.sysctl", "net.inet.tcp.msl", 1, 3_600_000),
    ("freebsd.sysctl", "kern.ipc.somaxconn", 1, 65_535),
    ("freebsd.sysctl", "net.inet.tcp.rexmit_min", 1, 60_000),
    ("zerocopy", "min_write", 0, 1_073_725_440),
    ("zerocopy", "buf_size", 256, 4096),
    ("zerocopy", "recv_budget", 0, 90),
    ("zerocopy", "recv_copybreak", 0, 65_535),
    ("zerocopy", "send_low_water", 0, 90),
    ("zerocopy", "send_reserve", 0, 50),
    ("zerocopy", "send_share_floor", 4096, 1_073_725_440),
    ("freebsd.sysctl", "net.inet.ip.maxfragsperpacket", 1, 8192),
    ("freebsd.sysctl", "net.inet.ip.maxfragpackets", 1, 65_536),
    ("tcp", "invalid_ack_interval_ms", 0, 60_000),
    ("tcp", "invalid_ack_burst", 1, 1_000_000),
    ("tcp", "challenge_ack_limit", 1, 1_000_000_000),
    ("tcp", "min_rto_us", 1000, 60_000_000),
    ("tcp", "initial_rto_ms", 1, 60_000),
    ("tcp", "initial_cwnd", 1, 64),
    ("tcp", "window_scale", 0, 14),
    ("tcp", "keepalive_idle_s", 1, 32_767),
    ("tcp", "keepalive_interval_s", 1, 32_767),
    ("tcp", "keepalive_probes", 1, 127),
    ("tcp", "max_ooo_segments", 1, 65_535),
    ("tcp", "delayed_ack_ms", 0, 500),
    ("tcp", "syn_retries", 1, 127),
    ("tcp", "min_path_mtu", 68, 65_535),
    ("tcp", "gso_max", 0, 65_535),
    ("tcp", "output_pass_frames", 0, 65_535),
    ("impair", "delay_us", 0, 10_000_000),
    ("impair", "loss", 0, 100),
    ("impair", "reorder", 0, 100),
];

/// MIN with `key=value` in `[section]`, and the line it is on.
fn with_key(section: &str, key: &str, value: &str) -> (String, usize) {
    match section {
        "dpdk" => (in_dpdk(&format!("{key}={value}")), 3),
        "port0" => (MIN.replace("gateway=10.1.0.1\n", &format!("gateway=10.1.0.1\n{key}={value}\n")), 9),
        _ => (format!("{MIN}[{section}]\n{key}={value}\n"), 10),
    }
}

#[test]
fn every_numeric_key_refuses_below_range_above_range_negative_and_huge() {
    for &(section, key, lo, hi) in NUMERIC {
        let mut bad = vec![(hi + 1).to_string(), "-1".into(), "18446744073709551616".into(), "1e3".into(), "".into()];
        if lo > 0 {
            bad.push((lo - 1).to_string());
        }
        for v in bad {
            let (text, line) = with_key(section, key, &v);
            let e = err(&text);
            let head = format!("t.ini:{line}: [{section}] {key} = \"{v}\": expected ");
            assert!(e.starts_with(&head), "{section} {key}={v}: {e}");
            assert!(e.contains(&hi.to_string()), "{section} {key}={v}: the message gives the range: {e}");
        }
    }
}

#[test]
fn every_numeric_key_takes_its_bounds_on_a_machine_big_enough() {
    let big = Host::with(64, 1 << 32);
    for &(section, key, lo, hi) in NUMERIC {
        for v in [lo, hi] {
            let (mut text, _) = with_key(section, key, &v.to_string());
            if section == "impair" && key == "reorder" && v > 0 {
                text.push_str("delay_us=1\n");
            }
            if (key == "memory" && v < 331) || (key == "nb_vdev" && v > 0) {
                continue; // below what the pools need, or sections to add: tested elsewhere
            }
            if key.starts_with("net.inet.tcp.") && key.ends_with("space") && v > 256 << 20 {
                text.push_str("[freebsd.boot]\nmemsz_MB=1024\n");
            }
            let r = Config::parse_for_host("t.ini", &text, &big);
            assert!(r.is_ok(), "{section} {key}={v}: {}", r.unwrap_err());
        }
    }
}

#[test]
fn string_keys_refuse_paths_dotdot_control_bytes_and_overlong_names() {
    let prefix_bad = ["", "a/b", "..", "../x", ".hidden", "-x", "a b", "a\tb", "x\u{0}y", "é"];
    for v in prefix_bad {
        let e = err(&in_dpdk(&format!("file_prefix={v}")));
        assert!(e.starts_with("t.ini:3: [dpdk] file_prefix = ") && e.contains("a plain name"), "{v:?}: {e}");
    }
    let vdev = |kv: &str| format!("{}[vdev0]\ndriver=net_tap\n{kv}\n", in_dpdk("nb_vdev=1"));
    for v in ["a/b", "..", ".", "a:b", "a,b", "a=b", "a b", &"i".repeat(16)] {
        let e = err(&vdev(&format!("iface={v}")));
        assert!(e.starts_with(&format!("t.ini:12: [vdev0] iface = \"{v}\": expected an interface name")), "{e}");
        let port = MIN.replace("gateway=10.1.0.1\n", &format!("gateway=10.1.0.1\nif_name={v}\n"));
        assert!(err(&port).starts_with(&format!("t.ini:9: [port0] if_name = \"{v}\": expected an interface")));
    }
    let sock = |p: &str| format!("{}[vdev0]\ndriver=net_vhost\npath={p}\n", in_dpdk("nb_vdev=1"));
    let long = format!("/tmp/{}", "s".repeat(103));
    for p in [long.as_str(), "/tmp/a,iface=b", "/tmp/a\u{7}"] {
        assert!(
            err(&sock(p)).starts_with(&format!(
                "t.ini:12: [vdev0] path = \"{p}\": expected a Unix socket path of 1 \
                                                 to 107 bytes"
            )),
            "{p:?}"
        );
    }
    assert!(parse_at("t.ini", &sock(&long[..107])).is_ok(), "107 bytes fit sun_path");
    let e = err(&format!("{MIN}[pcap]\nsavepath=/{}\n", "d".repeat(4096)));
    assert!(e.starts_with("t.ini:10: [pcap] savepath = ") && e.contains("PATH_MAX"), "{e}");
    assert!(err(&vdev("devargs=net_tap0\u{0}")).contains("without control characters"));
    assert_eq!(
        err(&in_dpdk("port_list=0,0")),
        "t.ini:3: [dpdk] port_list = \"0,0\": expected ports like 0 or 0,1-2, each port once, 0..=65535"
    );
}

#[test]
fn cross_key_checks_name_both_keys() {
    assert_eq!(
        err(&MIN.replace("broadcast=10.1.0.255", "broadcast=10.1.0.127")),
        "t.ini:7: [port0] broadcast = \"10.1.0.127\": expected 10.1.0.255, the broadcast address of 10.1.0.0/24 \
         (from [port0] addr = 10.1.0.2 (t.ini:5) and [port0] netmask = 255.255.255.0 (t.ini:6))"
    );
    assert_eq!(
        err(&MIN.replace("addr=10.1.0.2", "addr=10.1.0.0")),
        "t.ini:5: [port0] addr = \"10.1.0.0\": expected a host address of 10.1.0.0/24, not its network (10.1.0.0) \
         or broadcast (10.1.0.255) address (subnet from [port0] netmask = 255.255.255.0 (t.ini:6))"
    );
    for a in ["0.0.0.0", "127.0.0.1", "224.0.0.1", "255.255.255.255"] {
        assert!(err(&MIN.replace("addr=10.1.0.2", &format!("addr={a}"))).contains("expected a unicast IPv4 address"));
    }
    for g in ["10.1.0.2", "10.1.0.0", "10.1.0.255", "10.1.1.1"] {
        let e = err(&MIN.replace("gateway=10.1.0.1", &format!("gateway={g}")));
        assert!(e.starts_with(&format!("t.ini:8: [port0] gateway = \"{g}\"")), "{e}");
    }
    // A /31 has no network or broadcast address (RFC 3021).
    let p2p = MIN
        .replace("netmask=255.255.255.0", "netmask=255.255.255.254")
        .replace("broadcast=10.1.0.255", "broadcast=10.1.0.3")
        .replace("gateway=10.1.0.1", "gateway=10.1.0.3");
    assert!(parse_at("t.ini", &p2p).is_ok(), "{}", err(&p2p));
    // One connection's buffer must fit in the page array.
    assert_eq!(
        err(&format!("{MIN}[freebsd.boot]\nmemsz_MB=4\n[freebsd.sysctl]\nnet.inet.tcp.recvspace=8388608\n")),
        "t.ini:12: [freebsd.sysctl] net.inet.tcp.recvspace = \"8388608\": expected bytes in 1024..=4194304: one \
         connection's buffer must fit in the page array sized by [freebsd.boot] memsz_MB = 4 (t.ini:10)"
    );
    // A pcap file must hold one record.
    assert_eq!(
        err(&format!("{MIN}[pcap]\nsnaplen=65535\nsavelen=4096\n")),
        "t.ini:11: [pcap] savelen = \"4096\": expected bytes in 65575..=1099511627776: a file must hold its \
         header and one record of [pcap] snaplen = 65535 (t.ini:10)"
    );
    // lcore_list names lcores of lcore_mask, and so CPUs of the machine.
    let e = err(&MIN.replace("gateway=10.1.0.1\n", "gateway=10.1.0.1\nlcore_list=0,9\n"));
    assert_eq!(
        e,
        "t.ini:9: [port0] lcore_list = \"0,9\": lcore 9 is not in [dpdk] lcore_mask = 1 (line 2), whose lcores \
         are [0]; expected lcores of lcore_mask like 0 or 0-1,3 (default: all of them)"
    );
    // memory more than the machine has; memsz_MB with no_huge and memory unset (512 MiB).
    assert_eq!(
        err(&in_dpdk("memory=20000")),
        "t.ini:3: [dpdk] memory = \"20000\": expected MiB in 331..=16384 (this machine's memory)"
    );
    assert_eq!(
        err(&format!("{}[freebsd.boot]\nmemsz_MB=600\n", in_dpdk("no_huge=1"))),
        "t.ini:11: [freebsd.boot] memsz_MB = \"600\": expected MiB in 1..=437: the page array, the mbuf pools (43 \
         MiB at mtu 1500) and 32 MiB for DPDK must fit in [dpdk] memory (not set: 512 MiB with no_huge = 1)"
    );
    // Jumbo frames need bigger pools: the same memory that holds MTU 1500 does not hold MTU 9000.
    let jumbo = format!("{}[freebsd.boot]\nmemsz_MB=256\n", in_dpdk("memory=400"));
    assert!(parse_at("t.ini", &jumbo).is_ok());
    let e = err(&jumbo.replace("gateway=10.1.0.1\n", "gateway=10.1.0.1\nmtu=9000\n"));
    assert!(e.starts_with("t.ini:3: [dpdk] memory = \"400\": expected MiB in 442..=16384"), "{e}");
}

#[test]
fn startup_failures_name_the_keys_that_set_them_up() {
    let text = format!(
        "{}[vdev0]\ndriver=net_tap\niface=zc0\n[pcap]\nenable=1\nsavepath=/nonexistent\n",
        in_dpdk("nb_vdev=1")
    );
    let c = parse_at("t.ini", &text).unwrap();
    let pcap = crate::error::Error::Pcap { dir: "/nonexistent".into(), reason: "No such file or directory".into() };
    assert_eq!(
        c.startup_error(0, &pcap).to_string(),
        "t.ini:15: startup failed: cannot write pcap files in /nonexistent: No such file or directory (set by \
         [pcap] savepath (line 15))"
    );
    let pages = crate::error::Error::BadPageArray { bytes: 1 << 20, buf_size: 4096, why: "too small" };
    assert_eq!(
        c.startup_error(0, &pages).to_string(),
        "t.ini: startup failed: page array of 1048576 B with 4096 B buffers: too small (set by [freebsd.boot] \
         memsz_MB (default), [zerocopy] buf_size (default), [dpdk] memory (default), [dpdk] no_huge (default))"
    );
    let nul = crate::error::Error::NulInArgument("x".into());
    assert_eq!(
        c.startup_error(0, &nul).to_string(),
        "t.ini:2: startup failed: argument \"x\" contains a NUL byte (set by [dpdk] lcore_mask (line 2), [dpdk] \
         memory (default), [dpdk] no_huge (default), [dpdk] file_prefix (default), [dpdk] log_level (default), \
         [vdev0] devargs (default))"
    );
    let port = crate::error::Error::NoSuchPort("net_tap0".into());
    assert_eq!(
        c.startup_error(0, &port).to_string(),
        "t.ini:11: startup failed: no ethdev port named \"net_tap0\" (set by [vdev0] driver (line 11), [vdev0] \
         path (default), [vdev0] iface (line 12), [vdev0] queue_size (default), [vdev0] devargs (default))"
    );
}

#[test]
fn zerocopy_recv_budget_is_a_checked_share_of_the_rx_pool() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config.ini");
    let c = Config::load(path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.zerocopy.recv_budget, 50, "documented default");
    let rt = c.runtime(0).unwrap();
    let room = usize::from(crate::mempool::PoolConfig::frames(rt.rx_mbufs, rt.mtu).data_room);
    let pool = rt.rx_mbufs as usize * room;
    assert!(rt.stack.rx_pin_budget > 0 && rt.stack.rx_pin_budget <= pool / 2, "{} of {pool}", rt.stack.rx_pin_budget);
    // Never the RX ring's own buffers: a small pool with a big ring keeps them.
    assert_eq!(rx_pin_budget(1000, 1500, 1024, 90), 0);
    let ring = 256usize;
    assert!(rx_pin_budget(8191, 1500, ring as u16, 90) <= (8191 - ring - 64) * room);
    assert_eq!(rx_pin_budget(8191, 1500, 256, 0), 0, "0 always copies");
    let with = |v: &str| format!("{MIN}[zerocopy]\nrecv_budget={v}\n");
    assert_eq!(parse_at("t.ini", &with("20")).unwrap().zerocopy.recv_budget, 20);
    // Send pressure on the page array: the three keys reach the engine.
    assert_eq!((rt.stack.send_low_water, rt.stack.send_reserve, rt.stack.send_share_floor), (25, 5, 65536));
    let text = format!(
        "{}[vdev0]\ndriver=net_tap\niface=zc0\n[zerocopy]\nsend_low_water=40\nsend_reserve=10\nsend_share_floor=8192\n",
        MIN.replace("lcore_mask=1\n", "lcore_mask=1\nnb_vdev=1\n").replace("[port0]\n", "[port0]\nif_name=zc0\n")
    );
    let s = parse_at("t.ini", &text).unwrap_or_else(|e| panic!("{e}")).runtime(0).unwrap().stack;
    assert_eq!((s.send_low_water, s.send_reserve, s.send_share_floor), (40, 10, 8192));
    assert_eq!(
        err(&with("91")),
        "t.ini:10: [zerocopy] recv_budget = \"91\": expected a percentage of the RX pool, 0 to 90 (0: always copy)"
    );
    assert_eq!(
        err(&with("half")),
        "t.ini:10: [zerocopy] recv_budget = \"half\": expected a percentage of the RX pool, 0 to 90 (0: always copy)"
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
        parse_at("t.ini", &text).unwrap_or_else(|e| panic!("{e}")).runtime(0).unwrap_or_else(|e| panic!("{e}")).stack
    };
    let s = rt(with("net.inet.ip.maxfragsperpacket=32\nnet.inet.ip.maxfragpackets=200\n"));
    assert_eq!(s.reassembly_max_fragments, 32);
    assert_eq!(s.reassembly_datagrams, 200);
    assert_eq!(s.reassembly_per_source, 50, "a quarter of the table per source");
    let d = rt(with(""));
    assert_eq!((d.reassembly_max_fragments, d.reassembly_datagrams), (16, 64), "FreeBSD's defaults");
    assert_eq!(
        err(&format!("{MIN}\n[freebsd.sysctl]\nnet.inet.ip.maxfragsperpacket=0\n")),
        "t.ini:11: [freebsd.sysctl] net.inet.ip.maxfragsperpacket = \"0\": expected a count of fragments in 1..=8192"
    );
    assert_eq!(
        err(&format!("{MIN}\n[freebsd.sysctl]\nnet.inet.ip.maxfragpackets=100000\n")),
        "t.ini:11: [freebsd.sysctl] net.inet.ip.maxfragpackets = \"100000\": expected a count of datagrams in 1..=65536"
    );
}

#[test]
fn port_list_naming_a_missing_port_names_the_line() {
    // Issue 10 fault 8: every startup failure names file, line and key.
    // `port_list=0-3` with only [port0] is refused, but without a line.
    let e = err(&in_dpdk("port_list=0-3"));
    assert!(e.starts_with("t.ini:3: [dpdk] port_list"), "file, line and key: {e}");
}

#[test]
fn cross_section_checks_name_the_line_of_the_key_in_ini_and_toml() {
    // Issue 10 fault 8, same kind as `port_list`: a [dpdk] key checked
    // against other sections names its own line, wherever it stands.
    let e = err(&MIN.replace(
        "lcore_mask=1",
        "port_list=0,7
lcore_mask=1",
    ));
    assert_eq!(e, "t.ini:2: [dpdk] port_list names port 7 but there is no [port7] section");
    let e = err(&in_dpdk(
        "no_huge=1
nb_vdev=2",
    ));
    assert_eq!(e, "t.ini:4: [dpdk] nb_vdev = 2 but the file has 0 [vdevN] sections");
    let text = "[dpdk]\nlcore_mask = 1\nno_huge = true\nport_list = [0, 2]\n\n\
        [port0]\naddr = \"10.1.0.2\"\nnetmask = \"255.255.255.0\"\nbroadcast = \"10.1.0.255\"\ngateway = \"10.1.0.1\"\n";
    assert_eq!(toml_err(text), "t.toml:4: [dpdk] port_list names port 2 but there is no [port2] section");
    let e = toml_err(&text.replace("port_list = [0, 2]", "port_list = [0]\nnb_vdev = 1"));
    assert_eq!(e, "t.toml:5: [dpdk] nb_vdev = 1 but the file has 0 [vdevN] sections");
}

#[test]
fn sack_enable_reaches_the_engine_through_the_shared_mapping() {
    let c = parse_at("t.ini", &format!("{MIN}[freebsd.sysctl]\nnet.inet.tcp.sack.enable=0\n")).unwrap();
    assert!(!c.tcp.sack, "SACK switched off");
    assert!(c.report.iter().all(|n| !n.key.contains("sack.enable")), "no 'not implemented' notice: {:?}", c.report);
    let c = parse_at("t.ini", &format!("{MIN}[freebsd.sysctl]\nnet.inet.tcp.sack.enable=1\n")).unwrap();
    assert!(c.tcp.sack);
}

#[test]
fn zerocopy_payload_prefetch_is_auto_by_default_and_checked() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config.ini");
    let rt = Config::load(path).unwrap_or_else(|e| panic!("{e}")).runtime(0).unwrap();
    assert_eq!(rt.device.tx_prefetch, TxPrefetch::Auto, "documented default");
    let tap = MIN.replace("lcore_mask=1\n", "lcore_mask=1\nnb_vdev=1\n").replace("[port0]\n", "[port0]\nif_name=zc0\n");
    let pf = |v: &str| format!("{tap}[vdev0]\ndriver=net_tap\niface=zc0\n[zerocopy]\npayload_prefetch={v}\n");
    for (v, want) in [("auto", TxPrefetch::Auto), ("1", TxPrefetch::On), ("0", TxPrefetch::Off)] {
        let c = parse_at("t.ini", &pf(v)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.zerocopy.tx_prefetch, want, "{v}");
        assert_eq!(c.runtime(0).unwrap().device.tx_prefetch, want, "{v}");
    }
    for bad in ["yes", "on", "2", ""] {
        assert_eq!(
            err(&pf(bad)),
            format!("t.ini:15: [zerocopy] payload_prefetch = \"{bad}\": expected auto, 0 or 1"),
            "{bad}"
        );
    }
    // TOML: a boolean is 0/1, a string the word.
    let toml_min = "[dpdk]\nlcore_mask = 1\n\n[port0]\naddr = \"10.1.0.2\"\nnetmask = \"255.255.255.0\"\n\
        broadcast = \"10.1.0.255\"\ngateway = \"10.1.0.1\"\n";
    let toml = |v: &str| parse_toml_at("t.toml", &format!("{toml_min}\n[zerocopy]\npayload_prefetch = {v}\n"));
    assert_eq!(toml("true").map(|c| c.zerocopy.tx_prefetch).ok(), Some(TxPrefetch::On));
    assert_eq!(toml("\"auto\"").map(|c| c.zerocopy.tx_prefetch).ok(), Some(TxPrefetch::Auto));
    // Auto: virtio-user ports, not on a vhost-vdpa device; only on x86-64.
    let x86 = cfg!(target_arch = "x86_64");
    assert_eq!(TxPrefetch::Auto.resolve("net_virtio_user", Some("path=/tmp/vhost.sock,queues=1")), x86);
    assert_eq!(TxPrefetch::Auto.resolve("net_virtio_user", None), x86);
    assert!(!TxPrefetch::Auto.resolve("net_virtio_user", Some("queues=1,path=/dev/vhost-vdpa-0")));
    for d in ["net_vhost", "net_memif", "net_ixgbe", "net_mlx5", "net_tap", "net_ring", "net_null", "net_virtio", ""] {
        assert!(!TxPrefetch::Auto.resolve(d, None), "{d}");
        assert_eq!(TxPrefetch::On.resolve(d, None), x86, "{d}");
        assert!(!TxPrefetch::Off.resolve(d, None), "{d}");
    }
}
