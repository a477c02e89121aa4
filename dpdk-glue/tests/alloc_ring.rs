//! No heap allocation per exchange on the DPDK path (issue 13, item 3): a
//! counting global allocator (global only in this test binary) watches
//! 10,000 keep-alive request/response exchanges after a warm-up, driven by
//! the real run loop ([`Runtime::run`]) on one end of the in-process ring
//! pair (`net_ring`), with zero-copy receive (recycled mbuf wrappers), the
//! stage counters on, and the client stack on the other end polled in the
//! same loop. Zero allocations are counted on the thread that drives them:
//! the run loop, both `EthDevice`s, both engines and the applications.
mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;

use dpdk_glue::{
    Control, Eal, EalArgs, EthDevice, EthDeviceConfig, Mempool, PageArray, PoolConfig, Port, PortConfig, Runtime,
    RuntimeConfig, TxMode,
};
use zcstack::tcp::SockOpt;
use zcstack::wire::EthernetAddress;
use zcstack::{IfaceConfig, SocketHandle, Stack, StackConfig, TcpError};

#[path = "../../stack/tests/common/counting_alloc.rs"]
mod counting_alloc;

const SRV: Ipv4Addr = Ipv4Addr::new(10, 11, 0, 1);
const CLI: Ipv4Addr = Ipv4Addr::new(10, 11, 0, 2);
const WARMUP: u64 = 2_000;
const COUNTED: u64 = 10_000;
const MSG: usize = 64;

fn stack_config(ip: Ipv4Addr, mac: u8) -> StackConfig {
    let mut c = StackConfig::new(IfaceConfig {
        mac: EthernetAddress([2, 0, 0, 0, 11, mac]),
        addr: ip,
        prefix_len: 24,
        gateway: None,
    });
    c.tcp.min_rto = zcstack::Duration::from_millis(20);
    c
}

fn device(eal: &Eal, port: Port, pool: &Arc<Mempool>, pages: &PageArray, cfg: EthDeviceConfig) -> EthDevice {
    let mut port = port;
    let pcfg = PortConfig {
        tx_offloads: dpdk_glue::Offloads::TX_MULTI_SEGS | dpdk_glue::Offloads::TX_TCP_CKSUM,
        ..PortConfig::default()
    };
    let granted = port.configure(&pcfg, pool.clone()).unwrap();
    port.start().unwrap();
    EthDevice::new(eal, port, granted, pages, 1500, cfg).unwrap()
}

/// Reads what `h` has into `got` (a count of bytes), without allocating.
fn drain(stack: &mut Stack<PageArray>, h: SocketHandle, got: &mut usize) -> bool {
    let mut buf = [0u8; 512];
    loop {
        match stack.tcp_read(h, &mut buf) {
            Ok(0) => return false,
            Ok(n) => *got += n,
            Err(TcpError::WouldBlock) => return true,
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

#[test]
fn keepalive_exchanges_allocate_nothing_on_the_dpdk_run_loop() {
    let mut args = EalArgs::nic_less("0@0");
    args.memory_mb = Some(512);
    args.file_prefix = Some(format!("zcalloc{}", std::process::id()));
    args.log_level = Some("error".into());
    let eal = Arc::new(Eal::init(&args).expect("EAL with --no-huge"));
    let pool = Arc::new(Mempool::new(&eal, "alloc_rx", &PoolConfig::packets(4095)).unwrap());
    let (ps, pc) = Port::ring_pair(&eal, "alloc_rp", 1024).unwrap();
    let dev_cfg =
        EthDeviceConfig { tx_mode: TxMode::ZeroCopy, rx_zero_copy: true, stage_cycles: true, ..Default::default() };
    let spages = PageArray::new(&eal, "alloc_ps", 8 << 20, 2048).unwrap();
    let cpages = PageArray::new(&eal, "alloc_pc", 8 << 20, 2048).unwrap();
    let sdev = device(&eal, ps, &pool, &spages, dev_cfg.clone());
    let cdev = device(&eal, pc, &pool, &cpages, dev_cfg.clone());
    let rcfg = RuntimeConfig {
        eal: args.clone(),
        vdev: String::new(),
        port: PortConfig::default(),
        rx_mbufs: 4095,
        page_array_mb: 8,
        page_buf_size: 2048,
        tx_checksum_offload: true,
        rx_checksum_offload: true,
        tso: false,
        device: dev_cfg,
        stack: stack_config(SRV, 1),
        mtu: 1500,
        idle_sleep_us: 0,
        pcap: None,
        control: None,
    };
    let mut rt = Runtime::on_device(eal.clone(), pool.clone(), sdev, spages, &rcfg).unwrap();
    let mut cdev = cdev;
    let mut client = Stack::new(stack_config(CLI, 2), cpages, 1500);
    client.announce();

    let l = rt.stack.tcp_listen(80, 16).unwrap();
    let t0 = rt.now();
    let c = client.tcp_connect(SocketAddrV4::new(SRV, 80), 0, t0).unwrap();
    let _ = client.tcp_set_option(c, SockOpt::NoDelay(true), t0);
    let mut server: Option<SocketHandle> = None;
    let request = [b'q'; MSG];
    let response = [b'r'; MSG];
    let (mut sent_req, mut srv_got, mut cli_got, mut exchanges) = (false, 0usize, 0usize, 0u64);
    let (mut counted, mut passes) = (None, 0u64);
    let wall = std::time::Instant::now();
    rt.run(|stack, now| {
        passes += 1;
        assert!(wall.elapsed() < std::time::Duration::from_secs(120), "stalled at {exchanges} exchanges");
        client.poll(now, &mut cdev);
        if server.is_none() {
            if let Ok((h, _)) = stack.tcp_accept(l) {
                let _ = stack.tcp_set_option(h, SockOpt::NoDelay(true), now);
                server = Some(h);
            }
        }
        let mut did = false;
        // Server application: one response per whole request.
        if let Some(h) = server {
            drain(stack, h, &mut srv_got);
            while srv_got >= MSG {
                srv_got -= MSG;
                assert_eq!(stack.tcp_write(h, &response).unwrap(), MSG);
                did = true;
            }
        }
        // Client application: the next request once the response is in.
        if !sent_req && client.tcp_state(c) == Ok(zcstack::State::Established) {
            assert_eq!(client.tcp_write(c, &request).unwrap(), MSG);
            sent_req = true;
        }
        drain(&mut client, c, &mut cli_got);
        if cli_got >= MSG {
            cli_got -= MSG;
            exchanges += 1;
            sent_req = false;
            did = true;
            if exchanges == WARMUP {
                counting_alloc::arm();
            }
            if exchanges == WARMUP + COUNTED {
                counted = Some(counting_alloc::disarm());
                return (true, Control::Stop);
            }
        }
        client.push_output(now, &mut cdev);
        (did, Control::Continue)
    });
    counting_alloc::disarm();
    let allocs = counted.expect("the exchanges completed");
    // The path under test really was taken: zero-copy receive and the stage counters.
    let ds = rt.dev.stats();
    assert!(ds.rx_mbufs_handed_over >= WARMUP + COUNTED, "zero-copy receive was used: {ds:?}");
    let stages = rt.loop_stages().expect("stage counters on");
    assert!(stages.passes.calls > 0 && rt.stack.stage_cycles().total_cycles() > 0);
    eprintln!("{COUNTED} exchanges after {WARMUP} of warm-up in {passes} passes: {allocs} allocations");
    assert_eq!(allocs, 0, "heap allocations during {COUNTED} keep-alive exchanges (ZC_ALLOC_TRACE=1 shows where)");
    // Clean shutdown: every wrapper's mbuf back once the engines let go.
    drop(client);
    let (free, total, _) = rt.shutdown().unwrap();
    assert_eq!(free, total, "every page back");
    drop(rt);
    drop(cdev);
}
