//! Fuzzes the whole ingress path: Ethernet, ARP, IPv4, ICMP, UDP and TCP
//! parsing and the TCP state machine, on a stack with a listener, an open UDP
//! port and an active connection. Input: frames as (u16 length, bytes), with
//! time advancing between frames. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zcstack::mem::HeapPages;
use zcstack::phy::queue::QueueDevice;
use zcstack::phy::DeviceCaps;
use zcstack::wire::{EthernetAddress, Ipv4Address};
use zcstack::{IfaceConfig, Instant, Stack, StackConfig};

fuzz_target!(|data: &[u8]| {
    let cfg = StackConfig::new(IfaceConfig {
        mac: EthernetAddress([2, 0, 0, 0, 0, 1]),
        addr: Ipv4Address::new(10, 0, 0, 1),
        prefix_len: 24,
        gateway: Some(Ipv4Address::new(10, 0, 0, 254)),
    });
    let mut st = Stack::new(cfg, HeapPages::new(64, 2048), 1500);
    let mut dev = QueueDevice::new(DeviceCaps::default());
    let _l = st.tcp_listen(80, 4).unwrap();
    let _u = st.udp_bind(53).unwrap();
    let c = st.tcp_connect("10.0.0.2:8080".parse().unwrap(), 40000, Instant::ZERO).unwrap();
    let _ = st.tcp_write(c, b"hello");
    let mut now = Instant::ZERO;
    let mut rest = data;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        dev.push_rx(rest[2..2 + len].to_vec());
        rest = &rest[2 + len..];
        now = now + zcstack::Duration::from_millis(u64::from(len as u8));
        st.poll(now, &mut dev);
        dev.take_tx();
    }
    let mut buf = [0u8; 64];
    let _ = st.tcp_read(c, &mut buf);
});
