//! F-Stack's multi-process form from C: the kqueue example started twice,
//! `-t primary -p 0` and `-t secondary -p 1`, with one config.ini
//! (`lcore_mask=3`, a 2-queue net_tap in a private netns, hugepages the test
//! reserves and gives back), serves Linux clients from both processes: the
//! primary configures the shared port, the secondary serves its queue.
#[path = "../../examples/tests/common/mod.rs"]
mod common;

#[allow(dead_code)]
#[path = "../../dpdk-glue/tests/common/hugepages.rs"]
mod hugepages;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// One C server process; killed on drop.
struct Proc(Option<Child>, std::path::PathBuf);

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Proc {
    fn start(ns: &Netns, bin: &str, conf: &str, kind: &str, id: &str) -> Proc {
        let out = ns.dir.join(format!("{kind}.out"));
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, bin, "-c", conf, "-t", kind, "-p", id])
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the C example in the netns");
        let p = Proc(Some(child), out);
        let t = Instant::now();
        while !p.output().contains("listening on port 80") {
            assert!(t.elapsed() < Duration::from_secs(30), "{kind} never listened: {}", p.output());
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }

    /// SIGTERM, then the `REPORT {"requests":N}` line's N (20 s bound).
    fn stop(&mut self) -> u64 {
        let mut c = self.0.take().expect("running");
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        let t = Instant::now();
        while c.try_wait().ok().flatten().is_none() && t.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        let out = self.output();
        let line = out.lines().find_map(|l| l.strip_prefix("REPORT ")).unwrap_or_else(|| panic!("no REPORT: {out}"));
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        v["requests"].as_u64().unwrap()
    }
}

/// Removes the group's EAL runtime directory.
struct RuntimeDir(std::path::PathBuf);

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn kqueue_example_as_primary_and_secondary_serves_from_both() {
    let _turn = one_at_a_time();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let o = Command::new(root.join("ffi/build-examples")).arg("debug").output().expect("run ffi/build-examples");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bin = root.join("target/debug/ffi-examples/main_kqueue").to_string_lossy().into_owned();
    let mut _huge = hugepages::Hugepages::reserve("zc-cmp", 256).expect("reserve 256 2 MiB hugepages (needs root)");
    _huge.remove_files_on_drop(&file_prefix("cmp.ini"));
    let ns = Netns::new("cmp");
    let conf = ns.multiprocess_config("cmp.ini");
    let _rt = RuntimeDir(std::path::PathBuf::from("/var/run/dpdk").join(file_prefix("cmp.ini")));
    let mut primary = Proc::start(&ns, &bin, &conf, "primary", "0");
    ns.kernel_side_up();
    let mut secondary = Proc::start(&ns, &bin, &conf, "secondary", "1");
    ns.wait_for_page("");
    // 32 connections, two requests each: the kernel spreads them over both queues.
    for i in 0..32 {
        let o = ns.run(&["curl", "-s", "-m", "5", "http://10.212.0.2/", "http://10.212.0.2/"]);
        assert!(o.status.success(), "curl {i}: {}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(String::from_utf8_lossy(&o.stdout).matches("Hello from C on zcstack!").count(), 2);
    }
    let s = secondary.stop();
    let p = primary.stop();
    assert!(p + s >= 65, "primary {p} + secondary {s} requests");
    assert!(p > 0 && s > 0, "both processes served: primary {p}, secondary {s}");
}
