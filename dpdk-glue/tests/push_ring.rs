//! `Runtime::run_pushing` (issue 13, the tail): a reply the application
//! pushes in the middle of a loop callback is on the wire before the
//! callback returns — the peer can read it while this side is still
//! serving — and one it does not push leaves when the pass ends, as with
//! `Runtime::run`. Driven on the real run loop over the in-process ring pair
//! (`net_ring`): the server is the runtime, the client a second engine on
//! the other end, polled inside the server's callback.
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

const SRV: Ipv4Addr = Ipv4Addr::new(10, 12, 0, 1);
const CLI: Ipv4Addr = Ipv4Addr::new(10, 12, 0, 2);

fn stack_config(ip: Ipv4Addr, mac: u8) -> StackConfig {
    StackConfig::new(IfaceConfig {
        mac: EthernetAddress([2, 0, 0, 0, 12, mac]),
        addr: ip,
        prefix_len: 24,
        gateway: None,
    })
}

fn device(eal: &Eal, mut port: Port, pool: &Arc<Mempool>, pages: &PageArray) -> EthDevice {
    let granted = port.configure(&PortConfig::default(), pool.clone()).unwrap();
    port.start().unwrap();
    let cfg = EthDeviceConfig { tx_mode: TxMode::Copy, ..Default::default() };
    EthDevice::new(eal, port, granted, pages, 1500, cfg).unwrap()
}

/// Bytes `h` has to read now.
fn readable(stack: &mut Stack<PageArray>, h: SocketHandle) -> usize {
    let mut buf = [0u8; 256];
    let mut got = 0;
    loop {
        match stack.tcp_read(h, &mut buf) {
            Ok(0) | Err(TcpError::WouldBlock) => return got,
            Ok(n) => got += n,
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

#[test]
fn a_pushed_reply_leaves_before_the_callback_returns() {
    let mut args = EalArgs::nic_less("0@0");
    args.memory_mb = Some(256);
    args.file_prefix = Some(format!("zcpush{}", std::process::id()));
    args.log_level = Some("error".into());
    let eal = Arc::new(Eal::init(&args).expect("EAL with --no-huge"));
    let pool = Arc::new(Mempool::new(&eal, "push_rx", &PoolConfig::packets(1023)).unwrap());
    let (ps, pc) = Port::ring_pair(&eal, "push_rp", 256).unwrap();
    let spages = PageArray::new(&eal, "push_ps", 4 << 20, 2048).unwrap();
    let cpages = PageArray::new(&eal, "push_pc", 4 << 20, 2048).unwrap();
    let sdev = device(&eal, ps, &pool, &spages);
    let mut cdev = device(&eal, pc, &pool, &cpages);
    let rcfg = RuntimeConfig {
        eal: args.clone(),
        vdev: String::new(),
        port: PortConfig::default(),
        rx_mbufs: 1023,
        page_array_mb: 4,
        page_buf_size: 2048,
        tx_checksum_offload: false,
        rx_checksum_offload: false,
        tso: false,
        device: EthDeviceConfig::default(),
        stack: stack_config(SRV, 1),
        mtu: 1500,
        idle_sleep_us: 0,
        pcap: None,
        control: None,
    };
    let mut rt = Runtime::on_device(eal.clone(), pool.clone(), sdev, spages, &rcfg).unwrap();
    let mut client = Stack::new(stack_config(CLI, 2), cpages, 1500);
    client.announce();
    let l = rt.stack.tcp_listen(80, 4).unwrap();
    let t0 = rt.now();
    let c = client.tcp_connect(SocketAddrV4::new(SRV, 80), 0, t0).unwrap();
    let mut server: Option<SocketHandle> = None;
    // Per round: 0 = wait for the request, then the reply is written with
    // (even rounds) or without (odd rounds) a push, and what the client
    // could read inside the callback and right after the pass is recorded.
    let mut seen_in_callback = Vec::new();
    let mut seen_after_pass = Vec::new();
    let mut asked = false;
    let mut pending: Option<bool> = None;
    let wall = std::time::Instant::now();
    rt.run_pushing(|stack, io, now| {
        assert!(wall.elapsed() < std::time::Duration::from_secs(30), "stalled");
        if let Some(pushed) = pending.take() {
            // The pass that wrote an unpushed reply has ended: it left then.
            client.poll(now, &mut cdev);
            seen_after_pass.push((pushed, readable(&mut client, c)));
            asked = false;
        }
        client.poll(now, &mut cdev);
        if server.is_none() {
            if let Ok((h, _)) = stack.tcp_accept(l) {
                let _ = stack.tcp_set_option(h, SockOpt::NoDelay(true), now);
                server = Some(h);
            }
        }
        if !asked && client.tcp_state(c) == Ok(zcstack::State::Established) {
            assert_eq!(client.tcp_write(c, b"ping").unwrap(), 4);
            client.push_output(now, &mut cdev);
            asked = true;
        }
        let Some(h) = server else { return (true, Control::Continue) };
        if readable(stack, h) == 0 {
            return (true, Control::Continue);
        }
        let push = seen_in_callback.len() % 2 == 0;
        assert_eq!(stack.tcp_write(h, b"pong").unwrap(), 4);
        if push {
            assert!(io.push(stack, now), "the reply went to the device");
        }
        // Still inside the callback: has the reply reached the client?
        client.poll(now, &mut cdev);
        let got = readable(&mut client, c);
        seen_in_callback.push((push, got));
        if push {
            asked = false;
        } else {
            pending = Some(false);
        }
        (true, if seen_in_callback.len() == 6 { Control::Stop } else { Control::Continue })
    });
    // The last round wrote without a push: its reply left at the pass's end.
    client.poll(rt.now(), &mut cdev);
    seen_after_pass.push((false, readable(&mut client, c)));
    assert_eq!(seen_in_callback.len(), 6, "{seen_in_callback:?}");
    for (push, got) in &seen_in_callback {
        assert_eq!(*got, if *push { 4 } else { 0 }, "in the callback: {seen_in_callback:?}");
    }
    assert!(seen_after_pass.iter().all(|&(_, got)| got == 4), "after the pass: {seen_after_pass:?}");
    assert_eq!(seen_after_pass.len(), 3);
    drop(client);
    let (free, total, _) = rt.shutdown().unwrap();
    assert_eq!(free, total, "every page back");
    drop(rt);
    drop(cdev);
}
