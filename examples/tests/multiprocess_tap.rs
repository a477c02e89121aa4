//! F-Stack's multi-process form on one 2-queue `net_tap` port inside a
//! network namespace this test creates (issue 12, item 5): `helloworld
//! --proc-type=primary --proc-id=0` configures the port with two queues,
//! the RX pools, the steering rings and the layout memzone and serves queue
//! 0; `helloworld --proc-type=secondary --proc-id=1` attaches (net_tap
//! hands its queue fds to secondaries over DPDK's IPC) and serves queue 1.
//! The kernel's tun driver spreads Linux's flows over the two queues by its
//! own hash, so frames of a flow the other process owns cross between the
//! processes over the named rings. 64 Linux connections: every one served,
//! both processes accept connections and receive frames, what one process
//! steered out the other took in. Hugepages are reserved by the test and
//! given back, the processes killed and the netns removed, also on failure.
mod common;

#[allow(dead_code)]
#[path = "../../dpdk-glue/tests/common/hugepages.rs"]
mod hugepages;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

/// One helloworld process of the group; killed on drop.
struct Proc {
    name: &'static str,
    child: Option<Child>,
    lines: mpsc::Receiver<String>,
    err: std::path::PathBuf,
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Proc {
    /// Starts `helloworld --conf CONF --proc-type KIND --proc-id ID` in the
    /// netns and waits (30 s) for its listening line.
    fn start(ns: &Netns, conf: &str, name: &'static str, kind: &str, id: &str) -> Proc {
        let err = ns.dir.join(format!("{name}.err"));
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, env!("CARGO_BIN_EXE_helloworld")])
            .args(["--conf", conf, "--proc-type", kind, "--proc-id", id, "--duration", "60"])
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&err).expect("create the stderr file"))
            .spawn()
            .expect("start helloworld in the netns");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let p = Proc { name, child: Some(child), lines, err };
        let first = p.lines.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        assert!(first.contains("listening on 10.212.0.2:80"), "{name}: {first:?}\n{}", p.stderr());
        p
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// SIGTERM; returns its `HELLOWORLD {json}` report (20 s bound).
    fn stop(&mut self) -> serde_json::Value {
        let pid = self.child.as_ref().expect("running").id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let mut report = None;
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(20)) {
            if let Some(j) = line.strip_prefix("HELLOWORLD ") {
                report = Some(serde_json::from_str(j.trim()).unwrap());
                break;
            }
        }
        let status = self.child.take().map(|mut c| c.wait());
        report.unwrap_or_else(|| panic!("{}: no report at exit ({status:?}):\n{}", self.name, self.stderr()))
    }
}

#[test]
fn primary_and_secondary_share_a_two_queue_tap_and_serve_64_connections() {
    let _turn = one_at_a_time();
    // Declared first: dropped last, after both processes have let go of the pages.
    let mut _huge = hugepages::Hugepages::reserve("zc-mp", 256).expect("reserve 256 2 MiB hugepages (needs root)");
    _huge.remove_files_on_drop(&file_prefix("mp.ini"));
    let ns = Netns::new("mp");
    let conf = ns.multiprocess_config("mp.ini");
    // The group's shared runtime files (Netns::config's file prefix).
    let _rt = RuntimeDir(std::path::PathBuf::from("/var/run/dpdk").join(file_prefix("mp.ini")));

    let mut primary = Proc::start(&ns, &conf, "primary", "primary", "0");
    ns.kernel_side_up();
    let mut secondary = Proc::start(&ns, &conf, "secondary", "secondary", "1");
    // The link is up; one request proves it (bounded: 20 s).
    let t = Instant::now();
    loop {
        let o = ns.run(&["curl", "-s", "-m", "3", "http://10.212.0.2/"]);
        if o.status.success() && String::from_utf8_lossy(&o.stdout).contains("Welcome to zcstack!") {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "curl never got the page\nprimary:\n{}\nsecondary:\n{}",
            primary.stderr(),
            secondary.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A secondary started with another config (address, page array) is
    // refused, naming what differs; the group keeps serving.
    let other = ns.dir.join("other.ini");
    let text = std::fs::read_to_string(&conf).unwrap().replace("addr=10.212.0.2", "addr=10.212.0.9");
    std::fs::write(&other, text.replace("memsz_MB=64", "memsz_MB=32")).unwrap();
    let o = ns.run(&[
        "timeout",
        "20",
        env!("CARGO_BIN_EXE_helloworld"),
        "--conf",
        other.to_str().unwrap(),
        "--proc-type",
        "secondary",
        "--proc-id",
        "1",
        "--duration",
        "1",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "this secondary's config differs from the primary's: [port0] addr = 10.212.0.9 (primary: 10.212.0.2)"
        ) && err.contains("[freebsd.boot] memsz_MB = 32 (primary: 64)"),
        "{err}"
    );
    // A second primary of the same group says a primary is running.
    let o = ns.run(&[
        "timeout",
        "20",
        env!("CARGO_BIN_EXE_helloworld"),
        "--conf",
        &conf,
        "--proc-type",
        "primary",
        "--proc-id",
        "0",
        "--duration",
        "1",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("a --proc-type=primary process with [dpdk] file_prefix") && err.contains("is already running"),
        "{err}"
    );
    let o = ns.run(&["timeout", "60", "python3", "-c", GET_CLIENT, "64"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "client: {out} {}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("OK 64"), "every connection served: {out} {}", String::from_utf8_lossy(&o.stderr));

    // The secondary leaves first: the port keeps running for the primary.
    let s = secondary.stop();
    eprintln!("secondary: {s}");
    let p = primary.stop();
    eprintln!("primary: {p}");
    let (pl, sl) = (&p["lcores"][0], &s["lcores"][0]);
    assert_eq!((pl["lcore_index"].as_u64(), sl["lcore_index"].as_u64()), (Some(0), Some(1)), "{p}\n{s}");
    for (who, l) in [("primary", pl), ("secondary", sl)] {
        assert!(l["rx_frames"].as_u64().unwrap() > 0, "{who} received frames: {l}");
        assert!(l["accepted"].as_u64().unwrap() > 0, "{who} accepted connections: {l}");
        assert_eq!(l["steer_dropped_at_close"], 0, "{who}: {l}");
        assert_eq!(l["clean"], true, "{who}: pages and mbufs back: {l}");
    }
    assert!(p["requests"].as_u64().unwrap() + s["requests"].as_u64().unwrap() >= 65, "{p}\n{s}");
    // Frames crossed between the processes over the named rings, none lost:
    // the secondary took in all the primary steered out while it ran, and
    // the primary took in all the secondary steered out.
    let n = |l: &serde_json::Value, k: &str| l[k].as_u64().unwrap();
    assert_eq!(
        n(sl, "steered_out"),
        n(pl, "steered_in") + n(pl, "steer_unread_at_close"),
        "secondary → primary: {p}\n{s}"
    );
    assert!(n(pl, "steered_out") >= n(sl, "steered_in"), "primary → secondary: {p}\n{s}");
    assert!(n(pl, "steered_out") + n(sl, "steered_out") > 0, "the processes steered frames to each other: {p}\n{s}");
    assert!(n(pl, "steer_copied") + n(sl, "steer_copied") > 0, "ARP frames copied across: {p}\n{s}");
}

/// A secondary killed with SIGKILL leaves its queue unserved (as in
/// F-Stack); a new secondary started with the same `--proc-id` takes the
/// queue over, and every connection is served again.
#[test]
fn a_killed_secondary_is_replaced_by_a_new_one_with_its_proc_id() {
    let _turn = one_at_a_time();
    let mut _huge = hugepages::Hugepages::reserve("zc-mp2", 256).expect("reserve 256 2 MiB hugepages (needs root)");
    _huge.remove_files_on_drop(&file_prefix("mk.ini"));
    let ns = Netns::new("mk");
    let conf = ns.multiprocess_config("mk.ini");
    let _rt = RuntimeDir(std::path::PathBuf::from("/var/run/dpdk").join(file_prefix("mk.ini")));
    let mut primary = Proc::start(&ns, &conf, "primary", "primary", "0");
    ns.kernel_side_up();
    let mut first = Proc::start(&ns, &conf, "secondary", "secondary", "1");
    ns.wait_for_page("");
    // A second live secondary for the same queue is refused.
    let o = ns.run(&[
        "timeout",
        "20",
        env!("CARGO_BIN_EXE_helloworld"),
        "--conf",
        &conf,
        "--proc-type",
        "secondary",
        "--proc-id",
        "1",
        "--duration",
        "1",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("queue 1 of port 0 is already served by process"), "{err}");
    if let Some(mut c) = first.child.take() {
        c.kill().unwrap();
        let _ = c.wait();
    }
    let mut second = Proc::start(&ns, &conf, "secondary2", "secondary", "1");
    let o = ns.run(&["timeout", "60", "python3", "-c", GET_CLIENT, "64"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("OK 64"),
        "every connection served after the replacement: {out} {}\nprimary:\n{}\nsecondary:\n{}",
        String::from_utf8_lossy(&o.stderr),
        primary.stderr(),
        second.stderr()
    );
    let s = second.stop();
    let p = primary.stop();
    assert!(s["lcores"][0]["accepted"].as_u64().unwrap() > 0, "the new secondary serves its queue: {s}");
    assert_eq!(s["lcores"][0]["clean"], true, "{s}");
    assert!(p["lcores"][0]["accepted"].as_u64().unwrap() > 0, "{p}");
}

/// Removes the EAL runtime directory a failed secondary leaves behind.
struct RuntimeDir(std::path::PathBuf);

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_secondary_without_its_primary_says_so_and_exits() {
    let _turn = one_at_a_time();
    // No network is touched: the secondary's EAL stops before any device.
    let dir = std::env::temp_dir().join(format!("zc-mp-alone-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let prefix = format!("zcmpalone{}", std::process::id());
    let _rt = RuntimeDir(std::path::PathBuf::from("/var/run/dpdk").join(&prefix));
    let conf = dir.join("alone.ini");
    std::fs::write(
        &conf,
        format!(
            "[dpdk]\nlcore_mask=3\nmemory=512\nfile_prefix={prefix}\nnb_vdev=1\n\
             [port0]\naddr={OURS}\nnetmask=255.255.255.0\nbroadcast=10.212.0.255\ngateway=0.0.0.0\n\
             [vdev0]\ndriver=net_tap\niface=zcxalone\nqueues=2\n[freebsd.boot]\nmemsz_MB=64\n"
        ),
    )
    .unwrap();
    let o = Command::new("timeout")
        .args(["20", env!("CARGO_BIN_EXE_helloworld"), "--conf", conf.to_str().unwrap()])
        .args(["--proc-type", "secondary", "--proc-id", "1", "--duration", "1"])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "--proc-type=secondary: no primary process with file prefix \"{prefix}\" to attach to (start the \
             --proc-type=primary process first"
        )) && err.contains("[dpdk] file_prefix (line 4)"),
        "{err}"
    );
}
