//! Issue 10, fault 1 over net_tap in a private netns: 90 Linux clients each
//! send 1 MiB to `echo` and never read the replies. With them connected,
//! and 10 s after they are gone (closed with RSTs), a new TCP client, a UDP
//! client and an ARP request (the kernel's neighbour entry is flushed
//! first, so it must ask again) are answered within 5 s each.
mod common;

use common::*;

const CLIENTS: &str = r#"
import os, select, socket, struct, subprocess, sys, time
HOST, IFACE = sys.argv[1], sys.argv[2]
N, SIZE = 90, 1 << 20

def probe(tag):
    subprocess.run(["ip", "neigh", "flush", "dev", IFACE], check=False)
    t0 = time.time()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(0.5)
    msg = b"probe " + tag.encode()
    udp = False
    while not udp and time.time() - t0 < 5:
        u.sendto(msg, (HOST, 7))
        try:
            udp = u.recvfrom(2048)[0] == msg
        except socket.timeout:
            pass
    u.close()
    udp_s = time.time() - t0
    neigh = subprocess.run(["ip", "neigh", "show", HOST, "dev", IFACE], capture_output=True, text=True).stdout
    arp = "lladdr" in neigh
    t1 = time.time()
    tcp = False
    data = os.urandom(1000)
    try:
        s = socket.create_connection((HOST, 7), timeout=5)
        s.settimeout(max(0.1, 5 - (time.time() - t1)))
        s.sendall(data)
        got = b""
        while len(got) < len(data):
            b = s.recv(4096)
            if not b:
                break
            got += b
        tcp = got == data
        s.close()
    except OSError as e:
        print("tcp probe", tag, e, flush=True)
    tcp_s = time.time() - t1
    print(f"PROBE {tag} arp={int(arp)} udp={int(udp)} tcp={int(tcp)} udp_s={udp_s:.2f} tcp_s={tcp_s:.2f} neigh={neigh.strip()!r}", flush=True)

socks = []
for i in range(N):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5)
    s.connect((HOST, 7))
    s.setblocking(False)
    socks.append(s)
data = os.urandom(SIZE)
sent = {s.fileno(): 0 for s in socks}
by_fd = {s.fileno(): s for s in socks}
start = last = time.time()
while time.time() - start < 15 and time.time() - last < 3:
    want = [by_fd[f] for f, n in sent.items() if n < SIZE]
    if not want:
        break
    _, w, _ = select.select([], want, [], 0.5)
    for s in w:
        f = s.fileno()
        try:
            n = s.send(data[sent[f]:sent[f] + 65536])
            if n > 0:
                sent[f] += n
                last = time.time()
        except BlockingIOError:
            pass
print(f"FLOOD sent={sum(sent.values())} complete={sum(1 for n in sent.values() if n >= SIZE)} secs={time.time() - start:.1f}", flush=True)
probe("connected")
for s in socks:
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
time.sleep(10)
probe("after")
"#;

#[test]
fn non_reading_clients_cannot_make_echo_deaf_over_net_tap() {
    let _turn = one_at_a_time();
    let mut ns = Netns::new("rb");
    let conf = ns.config("echo.ini", "[zerocopy]\nrecv=1\n");
    let first = ns.start(env!("CARGO_BIN_EXE_echo"), &["--conf", &conf, "--duration", "120"]);
    assert!(first.contains("listening on 10.212.0.2:7"), "{first}");
    ns.kernel_side_up();
    // Wait until echo answers at all (the tap just came up).
    let mut up = false;
    for _ in 0..20 {
        let o = ns.run(&[
            "timeout",
            "3",
            "python3",
            "-c",
            "import socket,sys; s=socket.create_connection((sys.argv[1],7),timeout=1); s.close()",
            OURS,
        ]);
        if o.status.success() {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    assert!(up, "echo reachable");
    let iface = ns.iface.clone();
    let o = ns.run(&["timeout", "55", "python3", "-c", CLIENTS, OURS, &iface]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    eprintln!("{out}");
    assert!(o.status.success(), "clients failed: {out}\n{err}");
    for tag in ["connected", "after"] {
        let line = out.lines().find(|l| l.starts_with(&format!("PROBE {tag} "))).unwrap_or_else(|| panic!("{out}"));
        assert!(line.contains("arp=1 udp=1 tcp=1"), "{line}\n{out}");
    }
    let flood = out.lines().find(|l| l.starts_with("FLOOD ")).expect("flood line");
    let r = ns.stop("ECHO ");
    assert!(r["accepted"].as_u64().unwrap() >= 92, "{r}");
    // The clients pushed more than the budget: echo must have copied.
    assert!(r["rx_frames_over_budget"].as_u64().unwrap() > 0, "{flood} {r}");
    assert_eq!(r["clean"], true, "{r}");
}
