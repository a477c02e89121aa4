//! Interop with the Linux kernel's TCP/IP over a tap device inside a private
//! network namespace this test creates: ping, curl against a zcstack HTTP
//! listener, 64 MiB both ways with SHA-256 against a Python peer, and an
//! outbound connect to a Linux listener — then all again under
//! `tc netem loss 3% reorder 10% delay 1ms` where the kernel has netem.
//! Namespaces are removed on every exit path (Drop), processes killed.
#![cfg(feature = "tap")]

mod common;

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration as StdDuration, Instant as StdInstant};

use common::{read_into, Sink, Source};
use zcstack::mem::HeapPages;
use zcstack::phy::fault::{FaultConfig, FaultDevice};
use zcstack::phy::tap::TapDevice;
use zcstack::wire::EthernetAddress;
use zcstack::{IfaceConfig, Instant, SocketHandle, Stack, StackConfig};

static N: AtomicU32 = AtomicU32::new(0);

struct Netns {
    name: String,
    children: Vec<Child>,
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

struct Env {
    ns: Netns,
    st: Stack<HeapPages>,
    dev: FaultDevice<TapDevice>,
    clock: StdInstant,
    linux: Ipv4Addr,
    ours: Ipv4Addr,
    netem: bool,
}

/// Creates netns + tap + a stack on it. `None` (with a loud message) only
/// when the machine cannot create namespaces or taps.
fn env(netem: bool) -> Option<Env> {
    let n = N.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id() % 100_000;
    let ns_name = format!("zc-if-{pid}-{n}");
    let tap = format!("zct{pid}x{n}");
    let _ = Command::new("ip").args(["netns", "del", &ns_name]).stderr(Stdio::null()).status();
    if !Command::new("ip").args(["netns", "add", &ns_name]).status().map(|s| s.success()).unwrap_or(false) {
        eprintln!("\n*** SKIPPING tap interop: cannot create a network namespace (needs root and iproute2) ***\n");
        return None;
    }
    let ns = Netns { name: ns_name.clone(), children: Vec::new() };
    let dev = match TapDevice::open(&tap, 1500) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("\n*** SKIPPING tap interop: cannot open a tap device: {e} ***\n");
            return None;
        }
    };
    let sub = 200 + (n % 50) as u8;
    let linux = Ipv4Addr::new(10, 213, sub, 1);
    let ours = Ipv4Addr::new(10, 213, sub, 2);
    ip(&["link", "set", &tap, "netns", &ns_name]);
    ip(&["-n", &ns_name, "addr", "add", &format!("{linux}/24"), "dev", &tap]);
    ip(&["-n", &ns_name, "link", "set", &tap, "up"]);
    ip(&["-n", &ns_name, "link", "set", "lo", "up"]);
    let mut has_netem = false;
    if netem {
        let st = Command::new("ip")
            .args([
                "netns", "exec", &ns_name, "tc", "qdisc", "add", "dev", &tap, "root", "netem", "loss", "3%", "reorder",
                "10%", "delay", "1ms",
            ])
            .stderr(Stdio::null())
            .status();
        has_netem = st.map(|s| s.success()).unwrap_or(false);
        if !has_netem {
            eprintln!(
                "\n*** this kernel has no sch_netem: impairing in userspace instead \
                 (FaultDevice: loss 3%, reorder 10%, delay 1ms, both directions) ***\n"
            );
        }
    }
    let faults = if netem && !has_netem {
        FaultConfig { loss: 0.03, reorder: 0.10, delay: zcstack::Duration::from_millis(1) }
    } else {
        FaultConfig { loss: 0.0, reorder: 0.0, delay: zcstack::Duration::ZERO }
    };
    let dev = FaultDevice::new(dev, faults, u64::from(n) + 1);
    let cfg = StackConfig::new(IfaceConfig {
        mac: EthernetAddress([0x02, 0x5a, 0, 0, sub, 2]),
        addr: ours,
        prefix_len: 24,
        gateway: None,
    });
    let st = Stack::new(cfg, HeapPages::new(16_384, 2048), 1500);
    Some(Env { ns, st, dev, clock: StdInstant::now(), linux, ours, netem })
}

impl Env {
    fn now(&self) -> Instant {
        Instant::from_micros(self.clock.elapsed().as_micros() as u64)
    }

    fn spawn(&mut self, args: &[&str]) -> usize {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns.name]).args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        self.ns.children.push(cmd.spawn().expect("spawn in netns"));
        self.ns.children.len() - 1
    }

    /// Whether child `i` exited; its stdout if so.
    fn finished(&mut self, i: usize) -> Option<(bool, String)> {
        let c = &mut self.ns.children[i];
        match c.try_wait().expect("try_wait") {
            Some(st) => {
                let mut out = String::new();
                c.stdout.take().map(|mut s| s.read_to_string(&mut out));
                let mut err = String::new();
                c.stderr.take().map(|mut s| s.read_to_string(&mut err));
                if !st.success() {
                    eprintln!("child failed: {err}");
                }
                Some((st.success(), out))
            }
            None => None,
        }
    }
}

/// Polls the stack in real time until `f` returns true; panics at the deadline.
fn drive(e: &mut Env, what: &str, secs: u64, mut f: impl FnMut(&mut Env, Instant) -> bool) {
    let deadline = StdInstant::now() + StdDuration::from_secs(secs);
    loop {
        let now = e.now();
        let did = e.st.poll(now, &mut e.dev);
        e.dev.tick(now, e.st.mem());
        if f(e, now) {
            return;
        }
        assert!(StdInstant::now() < deadline, "{what}: timed out after {secs} s; stats {:?}", e.st.stats());
        if !did {
            std::thread::sleep(StdDuration::from_micros(20));
        }
    }
}

const HTTP_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nConnection: close\r\n\r\nhello zcstack";

/// ping, curl against a zcstack listener, and zcstack connecting out.
fn ping_curl_connect(mut e: Env) {
    let ours = e.ours.to_string();
    let p = e.spawn(&["ping", "-c", "3", "-i", "0.2", "-W", "2", &ours]);
    let mut ping = None;
    drive(&mut e, "ping", 30, |e, _| {
        ping = e.finished(p);
        ping.is_some()
    });
    let (ok, out) = ping.unwrap();
    assert!(ok && out.contains("3 received"), "ping: {out}");

    // curl fetches a page from a zcstack listener.
    let l = e.st.tcp_listen(80, 16).unwrap();
    let url = format!("http://{ours}/");
    let c = e.spawn(&["curl", "-s", "--max-time", "20", &url]);
    let mut conns: Vec<(SocketHandle, Vec<u8>, bool)> = Vec::new();
    let mut curl = None;
    drive(&mut e, "curl", 40, |e, now| {
        while let Ok((h, _)) = e.st.tcp_accept(l) {
            conns.push((h, Vec::new(), false));
        }
        for (h, req, answered) in conns.iter_mut() {
            let mut buf = [0u8; 2048];
            while let Ok(n) = e.st.tcp_read(*h, &mut buf) {
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            if !*answered && req.windows(4).any(|w| w == b"\r\n\r\n") {
                assert!(req.starts_with(b"GET / HTTP/1.1"), "{}", String::from_utf8_lossy(req));
                e.st.tcp_write(*h, HTTP_RESPONSE).unwrap();
                e.st.tcp_close(*h, now).unwrap();
                *answered = true;
            }
        }
        curl = e.finished(c);
        curl.is_some()
    });
    let (ok, body) = curl.unwrap();
    assert!(ok, "curl failed");
    assert_eq!(body, "hello zcstack");

    // zcstack connects out to a Linux listener.
    let script = "import socket\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',9000))\ns.listen(1)\nprint('listening',flush=True)\nc,a=s.accept()\nd=b''\nwhile True:\n  x=c.recv(65536)\n  if not x: break\n  d+=x\nc.sendall(b'linux says: '+d)\nc.close()";
    let srv = e.spawn(&["python3", "-c", script]);
    std::thread::sleep(StdDuration::from_millis(500));
    let remote = SocketAddrV4::new(e.linux, 9000);
    let h = e.st.tcp_connect(remote, 0, e.now()).unwrap();
    let mut sent = false;
    let mut sink = Sink::default();
    drive(&mut e, "outbound connect", 40, |e, _| {
        if !sent && e.st.tcp().writable(h) {
            e.st.tcp_write(h, b"hi from zcstack").unwrap();
            e.st.tcp_shutdown(h).unwrap();
            sent = true;
        }
        if let Some(err) = e.st.tcp().error(h) {
            panic!("outbound connection failed: {err}");
        }
        read_into(&mut e.st, h, &mut sink);
        sink.eof
    });
    assert_eq!(sink.received, "linux says: hi from zcstack".len());
    let now = e.now();
    e.st.tcp_close(h, now).unwrap();
    drive(&mut e, "python exits", 20, |e, _| e.finished(srv).is_some());
    assert!(e.netem || e.st.stats().tcp_rto_retransmits < 5, "clean link: {:?}", e.st.stats());
}

/// 64 MiB each way at once between zcstack and a Linux socket, SHA-256 checked.
fn bulk_both_ways(mut e: Env, bytes: usize) {
    let script = format!(
        "import socket,hashlib,threading,os,json\n\
s=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',9001))\ns.listen(1)\n\
print('listening',flush=True)\nc,a=s.accept()\nr=hashlib.sha256()\nt=hashlib.sha256()\nn=[0]\n\
def rx():\n  while True:\n    x=c.recv(1<<20)\n    if not x: break\n    r.update(x); n[0]+=len(x)\n\
th=threading.Thread(target=rx)\nth.start()\nleft={bytes}\n\
while left>0:\n  b=os.urandom(min(left,1<<16))\n  c.sendall(b)\n  t.update(b)\n  left-=len(b)\n\
c.shutdown(socket.SHUT_WR)\nth.join()\nprint(json.dumps({{'recv':r.hexdigest(),'sent':t.hexdigest(),'n':n[0]}}),flush=True)\nc.close()"
    );
    let srv = e.spawn(&["python3", "-c", &script]);
    std::thread::sleep(StdDuration::from_millis(500));
    let h = e.st.tcp_connect(SocketAddrV4::new(e.linux, 9001), 0, e.now()).unwrap();
    let mut src = Source::new(31, bytes);
    let mut sink = Sink::default();
    let mut shut = false;
    let mut result = None;
    drive(&mut e, "bulk", 600, |e, _| {
        if let Some(err) = e.st.tcp().error(h) {
            panic!("bulk connection failed: {err}");
        }
        if e.st.tcp().writable(h) || src.done() {
            src.pump(|d| e.st.tcp_write(h, d).unwrap_or(0));
        }
        if src.done() && !shut {
            e.st.tcp_shutdown(h).unwrap();
            shut = true;
        }
        read_into(&mut e.st, h, &mut sink);
        if sink.eof && result.is_none() {
            result = e.finished(srv);
        }
        result.is_some()
    });
    let (ok, out) = result.unwrap();
    assert!(ok, "python peer failed");
    let hex = |d: [u8; 32]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
    assert!(out.contains(&format!("\"recv\": \"{}\"", hex(src.digest()))), "Linux received our stream intact: {out}");
    assert!(out.contains(&format!("\"sent\": \"{}\"", hex(sink.digest()))), "we received Linux's stream intact: {out}");
    assert_eq!(sink.received, bytes);
    let now = e.now();
    e.st.tcp_close(h, now).unwrap();
}

#[test]
fn linux_ping_curl_and_outbound_connect() {
    if let Some(e) = env(false) {
        ping_curl_connect(e);
    }
}

#[test]
fn linux_bulk_64mib_both_ways() {
    if let Some(e) = env(false) {
        bulk_both_ways(e, 64 << 20);
    }
}

#[test]
fn linux_ping_curl_and_outbound_connect_under_netem() {
    if let Some(e) = env(true) {
        ping_curl_connect(e);
    }
}

#[test]
fn linux_bulk_under_netem() {
    if let Some(e) = env(true) {
        bulk_both_ways(e, 16 << 20);
    }
}
