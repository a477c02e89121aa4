//! A `net_tap` port inside a network namespace this test creates: frames go
//! from DPDK to the Linux kernel and back. The DPDK side is `dpdk-peer tap-arp`
//! started under `ip netns exec`, so the tap device is born inside the netns.
//! The namespace, the tap and the peer are removed even when the test fails.
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

struct Netns {
    name: String,
    peer: Option<Child>,
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(mut c) = self.peer.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tap_port_exchanges_frames_with_the_kernel_in_a_private_netns() {
    let name = format!("zc-tap-{}", std::process::id());
    let _ = Command::new("ip").args(["netns", "del", &name]).status();
    ip(&["netns", "add", &name]);
    let mut ns = Netns { name: name.clone(), peer: None };
    let (ours, kernel, iface) = ("10.211.0.2", "10.211.0.1", "zctap0");
    let child = Command::new("ip")
        .args(["netns", "exec", &name, env!("CARGO_BIN_EXE_dpdk-peer"), "tap-arp", iface, ours, kernel, "20"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn dpdk-peer in the netns");
    ns.peer = Some(child);
    let stdout = ns.peer.as_mut().and_then(|c| c.stdout.take()).expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = |what: &str| -> String {
        rx.recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("peer said nothing while waiting for {what}"))
    };
    let ready = next("READY");
    let dpdk_mac = ready.strip_prefix("READY ").unwrap_or_else(|| panic!("unexpected {ready}")).to_owned();
    // The tap exists inside the netns only.
    assert!(ip(&["-n", &name, "link", "show", iface]).contains(iface));
    assert!(
        !Command::new("ip").args(["link", "show", iface]).output().unwrap().status.success(),
        "tap leaked into the host netns"
    );
    ip(&["-n", &name, "addr", "add", &format!("{kernel}/24"), "dev", iface]);
    ip(&["-n", &name, "link", "set", iface, "up"]);
    let kernel_mac = ip(&["-n", &name, "-br", "link", "show", iface])
        .split_whitespace()
        .nth(2)
        .expect("mac column")
        .replace(':', "");

    // DPDK -> kernel: the ARP request arrives and the kernel answers; kernel -> DPDK: the reply arrives.
    let mut saw_reply = false;
    // Kernel -> DPDK without DPDK asking: a UDP datagram from a kernel socket,
    // preceded by the kernel's own ARP request, which DPDK answers.
    let send_udp = Command::new("ip")
        .args([
            "netns",
            "exec",
            &name,
            "python3",
            "-c",
            &format!(
                "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
                 for _ in range(50):\n s.sendto(b'hello-dpdk',('{ours}',9999)); time.sleep(0.1)"
            ),
        ])
        .spawn()
        .expect("spawn python sender");
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _sender = Kill(send_udp);
    let (mut answered, mut udp) = (false, false);
    loop {
        let line = next("ARP reply, ARP request and UDP");
        if let Some(mac) = line.strip_prefix("ARP-REPLY ") {
            assert_eq!(mac, kernel_mac, "the reply comes from the kernel's tap");
            saw_reply = true;
        } else if let Some(asker) = line.strip_prefix("ARP-ANSWERED ") {
            assert_eq!(asker, kernel);
            answered = true;
        } else if let Some(p) = line.strip_prefix("UDP ") {
            assert_eq!(p, "hello-dpdk");
            udp = true;
        } else if line == "DONE" {
            break;
        }
    }
    assert!(saw_reply && udp, "reply {saw_reply}, udp {udp}");
    // The peer only reports UDP frames sent to its own MAC: the kernel resolved
    // DPDK's address (from DPDK's ARP request, or by asking it).
    eprintln!("kernel asked for DPDK's MAC with its own ARP request: {answered}");
    assert_eq!(dpdk_mac.len(), 12);
    let status = ns.peer.as_mut().expect("peer").wait().expect("peer exit");
    assert!(status.success());
}
