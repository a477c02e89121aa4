//! `echo` on net_tap in a private netns: Linux TCP and UDP clients (Python
//! sockets) get their bytes back intact, also a client that starts reading
//! only after it sent everything and does not close (the echo then holds
//! bytes it cannot write back yet, with nothing left to read: only the
//! connection's WRITABLE wakes it).
mod common;

use common::*;

const CLIENT: &str = r#"
import hashlib, os, socket, sys, threading, time
data = os.urandom(4 << 20)
s = socket.create_connection((sys.argv[1], 7), timeout=20)
def send():
    s.sendall(data)
    s.shutdown(socket.SHUT_WR)
t = threading.Thread(target=send)
t.start()
got = bytearray()
while True:
    b = s.recv(1 << 20)
    if not b:
        break
    got += b
t.join()
assert bytes(got) == data, f"TCP echo differs: {len(got)} of {len(data)} bytes"
# Sizes: echo's send buffer is 256 KiB and it reads while under 256 KiB
# (MAX_PENDING) are waiting, so it takes all 400 KiB and holds ~144 KiB it
# cannot send while this reader (a 32 KiB receive buffer, set before the
# handshake) does not read: once the reader starts, only the connection's
# WRITABLE tells echo there is room again.
late = os.urandom(400 << 10)
s2 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s2.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
s2.settimeout(20)
s2.connect((sys.argv[1], 7))
t2 = threading.Thread(target=lambda: s2.sendall(late))
t2.start()
time.sleep(0.5)
s2.settimeout(5)
got2 = bytearray()
while len(got2) < len(late):
    try:
        b = s2.recv(1 << 20)
    except socket.timeout:
        sys.exit(f"late reader stalled: {len(got2)} of {len(late)} bytes back")
    if not b:
        break
    got2 += b
t2.join()
s2.close()
assert bytes(got2) == late, f"late reader's echo differs: {len(got2)} of {len(late)} bytes"
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(2)
ok = 0
for i in range(200):
    msg = f"datagram {i} ".encode() * (1 + i % 50)
    u.sendto(msg, (sys.argv[1], 7))
    try:
        if u.recvfrom(65536)[0] == msg:
            ok += 1
    except socket.timeout:
        pass
print("TCP", len(got), "UDP", ok)
assert ok >= 195, f"only {ok} of 200 datagrams echoed"
"#;

#[test]
fn tcp_and_udp_echo_for_linux_clients_over_net_tap() {
    let _turn = one_at_a_time();
    let mut ns = Netns::new("e");
    let conf = ns.config("echo.ini", "[zerocopy]\nrecv=1\n");
    let first = ns.start(env!("CARGO_BIN_EXE_echo"), &["--conf", &conf, "--duration", "60"]);
    assert!(first.contains("listening on 10.212.0.2:7"), "{first}");
    ns.kernel_side_up();
    let mut out = None;
    for _ in 0..20 {
        let o = ns.run(&["python3", "-c", CLIENT, OURS]);
        if o.status.success() {
            out = Some(o);
            break;
        }
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(err.contains("Connection refused") || err.contains("timed out") || err.contains("No route"), "{err}");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let out = out.expect("the client succeeds");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("TCP {}", 4 << 20)));
    let r = ns.stop("ECHO ");
    assert_eq!(r["tcp_bytes"].as_u64(), Some((4 << 20) + (400 << 10)), "{r}");
    assert!(r["udp_datagrams"].as_u64().unwrap() >= 195);
    assert_eq!(r["clean"], true, "{r}");
}
