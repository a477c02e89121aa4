//! A private network namespace with one zcstack example serving a net_tap
//! port inside it, configured by a config.ini the test writes. Everything is
//! removed on drop, also when the test fails. Shared by the examples' and
//! the C API's (`ffi/tests`) integration tests; names carry a letter of the
//! crate (`x`, `f`) so both suites' namespaces, taps and EAL prefixes differ.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// `[impair]` with netem's `loss 3% reorder 10% delay 1ms`, for the
/// impaired-path variants (zcstack's port impairs both directions).
pub const IMPAIR: &str = "[impair]\nloss=3\nreorder=10\ndelay_us=1000\nseed=11\n";

/// Python client: `n` connections from the netns, one `GET` each with
/// `Connection: close`; prints how many got a 200 with the page.
pub const GET_CLIENT: &str = r#"
import socket, sys
n, ok = int(sys.argv[1]), 0
for i in range(n):
    try:
        s = socket.create_connection(("10.212.0.2", 80), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            b = s.recv(4096)
            if not b:
                break
            data += b
        s.close()
        if data.startswith(b"HTTP/1.1 200") and b"Welcome to zcstack!" in data:
            ok += 1
    except OSError as e:
        print("error", i, e, file=sys.stderr)
print("OK", ok)
"#;

/// The kernel side of the tap.
pub const KERNEL: &str = "10.212.0.1";
/// zcstack's side.
pub const OURS: &str = "10.212.0.2";

pub struct Netns {
    pub name: String,
    pub iface: String,
    pub dir: std::path::PathBuf,
    pub server: Option<Child>,
    pub lines: Option<mpsc::Receiver<String>>,
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Whatever a test started in the namespace and did not reap (a
        // server's forked workers, say: deleting the namespace does not
        // end them) is killed with it.
        kill_netns_pids(&self.name);
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// SIGKILLs every process in netns `name` (`ip netns pids`) and waits up to
/// 2 s for them to go; returns how many it found (0, killing none, when the
/// list holds this process: the name is bound to our own namespace).
pub fn kill_netns_pids(name: &str) -> usize {
    let pids = || -> Vec<String> {
        Command::new("ip")
            .args(["netns", "pids", name])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let found = pids();
    if found.is_empty() {
        return 0;
    }
    // A name bound to this process's own namespace would list everyone.
    if found.iter().any(|p| p.parse() == Ok(std::process::id())) {
        return 0;
    }
    let _ = Command::new("kill").arg("-KILL").args(&found).stderr(Stdio::null()).status();
    for _ in 0..200 {
        if pids().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    found.len()
}

/// Stops `child` with SIGTERM (a server's graceful stop: nginx's master
/// then stops its workers; SIGKILL would orphan them) and reaps it; SIGKILL
/// after 5 s.
pub fn terminate(child: &mut Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).stderr(Stdio::null()).status();
    for _ in 0..500 {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// `x` in the examples' tests, `f` in the C API's.
fn letter() -> &'static str {
    if env!("CARGO_PKG_NAME").ends_with("ffi") {
        "f"
    } else {
        "x"
    }
}

/// The EAL `file_prefix` [`Netns::config`] gives config file `file` (its
/// runtime directory is `/var/run/dpdk/<prefix>`).
pub fn file_prefix(file: &str) -> String {
    format!("zc{}{}{file}", letter(), std::process::id())
}

/// Serializes the tests of one binary (each example pins CPU 0).
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

impl Netns {
    /// A fresh namespace named after the test process and `tag`.
    pub fn new(tag: &str) -> Netns {
        let pid = std::process::id();
        let name = format!("zc-e{}-{pid}-{tag}", letter());
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let _ = Command::new("ip").args(["netns", "del", &name]).stderr(Stdio::null()).status();
        assert!(Command::new("ip").args(["netns", "add", &name]).status().unwrap().success());
        Netns { name, iface: format!("zc{}{tag}", letter()), dir, server: None, lines: None }
    }

    /// Writes a config.ini for port 0 on our tap, with `extra` sections appended.
    pub fn config(&self, file: &str, extra: &str) -> String {
        let prefix = file_prefix(file);
        let text = format!(
            "[dpdk]\nlcore_mask=1\nno_huge=1\nmemory=512\nfile_prefix={prefix}\nnb_vdev=1\npkt_tx_delay=0\n\
             [port0]\naddr={OURS}\nnetmask=255.255.255.0\nbroadcast=10.212.0.255\ngateway=0.0.0.0\n\
             [vdev0]\ndriver=net_tap\niface={}\n\
             [freebsd.boot]\nmemsz_MB=64\n{extra}",
            self.iface
        );
        let path = self.dir.join(file);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }

    /// [`Netns::config`] for a 2-lcore group on a 2-queue tap with
    /// hugepages (the multi-process form: `--proc-type` needs them; the
    /// test reserves them).
    pub fn multiprocess_config(&self, file: &str) -> String {
        let conf = self.config(file, "");
        let text = std::fs::read_to_string(&conf)
            .unwrap()
            .replace("lcore_mask=1", "lcore_mask=3")
            .replace("no_huge=1", "no_huge=0")
            .replace("memory=512", "memory=256")
            .replace("[vdev0]\n", "[vdev0]\nqueues=2\n");
        std::fs::write(&conf, text).unwrap();
        conf
    }

    /// Fetches `http://10.212.0.2/` with curl until it succeeds with a
    /// body containing `needle` (retried while the link comes up; panics
    /// after 20 s).
    pub fn wait_for_page(&self, needle: &str) {
        let t = std::time::Instant::now();
        loop {
            let o = self.run(&["curl", "-s", "-m", "3", "http://10.212.0.2/"]);
            if o.status.success() {
                assert!(String::from_utf8_lossy(&o.stdout).contains(needle), "the page has {needle:?}");
                return;
            }
            assert!(t.elapsed() < Duration::from_secs(20), "curl never got the page");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs `cmd` inside the namespace.
    pub fn run(&self, cmd: &[&str]) -> Output {
        Command::new("ip").args(["netns", "exec", &self.name]).args(cmd).output().expect("run in the netns")
    }

    /// Starts an example inside the namespace and waits for its first line.
    pub fn start(&mut self, bin: &str, args: &[&str]) -> String {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name, bin])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the example in the netns");
        self.server = Some(child);
        let stdout = self.server.as_mut().and_then(|c| c.stdout.take()).unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        self.lines = Some(rx);
        self.next_line(30).expect("the example starts")
    }

    /// The example's next output line, waiting up to `secs`.
    pub fn next_line(&self, secs: u64) -> Option<String> {
        self.lines.as_ref()?.recv_timeout(Duration::from_secs(secs)).ok()
    }

    /// Waits for the tap and gives the kernel side its address.
    pub fn kernel_side_up(&self) {
        for _ in 0..200 {
            if self.run(&["ip", "link", "show", &self.iface]).status.success() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        for cmd in [
            vec!["ip", "addr", "add", "10.212.0.1/24", "dev", self.iface.as_str()],
            vec!["ip", "link", "set", self.iface.as_str(), "up"],
        ] {
            let o = self.run(&cmd);
            assert!(o.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&o.stderr));
        }
    }

    /// SIGTERM to the example; returns its `PREFIX {json}` report line's JSON.
    pub fn stop(&mut self, prefix: &str) -> serde_json::Value {
        let pid = self.server.as_ref().expect("a server").id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let mut report = None;
        while let Some(line) = self.next_line(20) {
            if let Some(j) = line.strip_prefix(prefix) {
                report = Some(serde_json::from_str(j.trim()).unwrap());
                break;
            }
        }
        let _ = self.server.take().map(|mut c| c.wait());
        report.unwrap_or_else(|| panic!("no {prefix} report at exit"))
    }
}

/// A config.ini for one end of a virtio-user <-> vhost pair: `role_vdev`
/// is the `[vdev0]` body (driver, path, ...), `cpu_mask` the lcore mask.
pub fn pair_config(dir: &std::path::Path, name: &str, cpu_mask: &str, addr: &str, vdev: &str, extra: &str) -> String {
    let pid = std::process::id();
    let text = format!(
        "[dpdk]\nlcore_mask={cpu_mask}\nno_huge=1\nmemory=512\nfile_prefix=zcp{pid}{name}\nnb_vdev=1\npkt_tx_delay=0\n\
         [port0]\naddr={addr}\nnetmask=255.255.255.0\nbroadcast=10.78.0.255\ngateway=0.0.0.0\n\
         [vdev0]\n{vdev}\n\
         [freebsd.boot]\nmemsz_MB=128\n{extra}"
    );
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the config");
    path.to_string_lossy().into_owned()
}

/// Starts `bin --conf CONF --duration 60` as the vhost side of a pair
/// (stdout piped, stderr to `dir/srv.err`) and waits up to 20 s for its
/// vhost-user socket `sock`; kills it and panics if the socket never appears.
pub fn spawn_vhost_server(bin: &str, conf: &str, dir: &std::path::Path, sock: &str) -> Child {
    let mut server = Command::new(bin)
        .args(["--conf", conf, "--duration", "60"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(dir.join("srv.err")).expect("create srv.err"))
        .spawn()
        .expect("start the vhost server");
    let t = std::time::Instant::now();
    while !std::path::Path::new(sock).exists() {
        if t.elapsed() > Duration::from_secs(20) {
            let _ = server.kill();
            let _ = server.wait();
            panic!("vhost socket {sock} never appeared");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    server
}
