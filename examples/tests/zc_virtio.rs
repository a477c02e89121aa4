//! Zero-copy TCP over `net_virtio_user` <-> `net_vhost` in two processes
//! (TX completion deferred like a real NIC): `bulk` sends 256 MiB in
//! zero-copy mode; the stream's SHA-256 must match, the sender must have
//! copied no payload byte, and both processes must end with every page and
//! every device mbuf back. A copy-mode run checks the counters the other way.
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Kills the child on drop (test failure included).
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn bulk_line(out: &str) -> Value {
    let line = out.lines().find_map(|l| l.strip_prefix("BULK ")).unwrap_or_else(|| panic!("no BULK line in:\n{out}"));
    serde_json::from_str(line).expect("BULK line is JSON")
}

/// Runs receiver (vhost, CPU 0) and sender (virtio-user, CPU 1) with
/// command-line flags; returns their reports.
fn run_pair(tag: &str, mode: &str, bytes: usize) -> (Value, Value) {
    run_pair_with(tag, mode, bytes, &[])
}

/// [`run_pair`] with more sender flags.
fn run_pair_with(tag: &str, mode: &str, bytes: usize, more: &[&str]) -> (Value, Value) {
    let sock = format!("/tmp/zc-bulk-{}-{tag}.sock", std::process::id());
    let recv: Vec<String> = ["--lcores", "0@0", "--ip", "10.77.0.2", "--timeout", "60"]
        .iter()
        .map(|s| s.to_string())
        .chain(["--vdev".into(), format!("net_vhost0,iface={sock},queues=1")])
        .chain(["--file-prefix".into(), format!("zcr{}{tag}", std::process::id())])
        .collect();
    let send: Vec<String> = ["--lcores", "0@1", "--ip", "10.77.0.1", "--peer", "10.77.0.2", "--timeout", "60"]
        .iter()
        .map(|s| s.to_string())
        .chain(["--vdev".into(), format!("net_virtio_user0,path={sock},queues=1,queue_size=1024")])
        .chain(["--mode".into(), mode.into(), "--bytes".into(), bytes.to_string()])
        .chain(["--file-prefix".into(), format!("zcs{}{tag}", std::process::id())])
        .chain(more.iter().map(|s| s.to_string()))
        .collect();
    run_with(&sock, &recv, &send)
}

/// Starts `bulk --role recv RECV...`, waits for the vhost socket, runs
/// `bulk --role send SEND...`; returns (sender report, receiver report).
fn run_with(sock: &str, recv_args: &[String], send_args: &[String]) -> (Value, Value) {
    // One pair at a time: each process is pinned to its own CPU.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let bin = env!("CARGO_BIN_EXE_bulk");
    let _ = std::fs::remove_file(sock);
    let recv = Command::new(bin)
        .args(["--role", "recv"])
        .args(recv_args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the receiver");
    let mut recv = Guard(Some(recv));
    let t = Instant::now();
    while !std::path::Path::new(sock).exists() {
        assert!(t.elapsed() < Duration::from_secs(20), "vhost socket {sock} never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    let send = Command::new(bin).args(["--role", "send"]).args(send_args).output().expect("run the sender");
    let recv_out = recv.0.take().expect("receiver").wait_with_output().expect("receiver output");
    let _ = std::fs::remove_file(sock);
    let s = String::from_utf8_lossy(&send.stdout).into_owned();
    let r = String::from_utf8_lossy(&recv_out.stdout).into_owned();
    assert!(
        send.status.success() && recv_out.status.success(),
        "sender {:?}:\n{s}\n{}\nreceiver {:?}:\n{r}\n{}",
        send.status,
        String::from_utf8_lossy(&send.stderr),
        recv_out.status,
        String::from_utf8_lossy(&recv_out.stderr)
    );
    (bulk_line(&s), bulk_line(&r))
}

/// A zero-copy sender's frames each went out with `per_frame` attachments
/// at most (runs of adjacent page-array buffers of up to
/// `MAX_ATTACHMENT` bytes), plus one for each frame crossing the end of
/// `bulk`'s 32 MiB data set back to its start (two ranges apart in
/// memory): once per wrap, and again for a retransmission of such a frame.
fn attachments_per_frame_at_most(s: &Value, bytes: usize, per_frame: u64) {
    let (att, frames) = (s["extbuf_attachments"].as_u64().unwrap(), s["dev_tx_frames_zero_copy"].as_u64().unwrap());
    let retx = s["tcp_rto_retransmits"].as_u64().unwrap() + s["tcp_fast_retransmits"].as_u64().unwrap();
    let wraps = (bytes as u64).div_ceil(32 << 20) + retx;
    assert!(att >= frames && att <= frames * per_frame + wraps, "{att} attachments for {frames} frames: {s}");
}

#[test]
fn zero_copy_256_mib_over_virtio_user_and_vhost() {
    let bytes = 256usize << 20;
    let (s, r) = run_pair("zc", "zc", bytes);
    assert_eq!(s["sha256"], r["sha256"], "stream SHA-256");
    assert_eq!(r["bytes"], bytes);
    // vhost vouches for the (partial, offloaded) TCP checksums it carries, so
    // the receiver skips its own pass, and the digest above still matches.
    assert!(r["dev_rx_l4_verified"].as_u64().unwrap() > 100_000, "{r}");
    assert_eq!(r["dev_rx_l4_bad"], 0, "{r}");
    assert_eq!(s["tx_mode"], "ZeroCopy", "{s}");
    assert_eq!(s["tx_bytes_copied"], 0, "no payload byte copied into the send queue: {s}");
    assert_eq!(s["dev_tx_payload_copied"], 0, "no payload byte copied into mbufs: {s}");
    assert!(s["dev_tx_payload_zero_copy"].as_u64().unwrap() >= bytes as u64, "{s}");
    assert!(s["extbuf_attachments"].as_u64().unwrap() > 0);
    assert_eq!(s["extbuf_attachments"], s["extbuf_completions"], "every attachment completed by close: {s}");
    // The data set is one run of consecutive page-array buffers: a segment
    // crossing from one buffer into the next goes out as one attachment
    // (two only where the stream wraps around the 32 MiB data set).
    attachments_per_frame_at_most(&s, bytes, 1);
    // `[zerocopy] payload_prefetch=auto` on a virtio-user port (x86-64):
    // every standard-MTU frame's payload prefetched for vhost, line by line.
    let x86 = cfg!(target_arch = "x86_64");
    assert_eq!(s["payload_prefetch"], x86, "{s}");
    let lines = s["dev_tx_lines_prefetched"].as_u64().unwrap();
    if x86 {
        assert!(lines >= bytes as u64 / 64 && lines <= bytes as u64 / 64 * 2, "{lines} lines for {bytes} B: {s}");
    } else {
        assert_eq!(lines, 0, "{s}");
    }
    // The receiver reports its own work (ci/bench-zc prints what each mode's
    // frames cost it): busy cycles over the run, per byte received.
    let busy = r["busy_cycles"].as_u64().expect("receiver busy_cycles");
    assert!(busy > 0 && r["busy_loops"].as_u64().unwrap() > 0, "{r}");
    let cpb = r["cycles_per_byte"].as_f64().unwrap();
    assert!((cpb - busy as f64 / bytes as f64).abs() < 1e-9, "cycles_per_byte is busy/bytes: {r}");
    for v in [&s, &r] {
        assert_eq!(v["clean"], true, "pages and mempools back to their start counts: {v}");
        assert_eq!(v["pages_free"], v["pages_total"]);
        assert_eq!(v["mbufs_in_use"], 0);
    }
}

#[test]
fn zero_copy_without_checksum_offload_is_not_prefetched() {
    // The software checksum reads the payload as the segment is built: it is
    // in cache already, so payload_prefetch=auto stays off.
    let bytes = 16usize << 20;
    let (s, r) = run_pair_with("nocsum", "zc", bytes, &["--no-checksum-offload"]);
    assert_eq!(s["sha256"], r["sha256"]);
    assert_eq!(s["tx_mode"], "ZeroCopy", "{s}");
    assert!(s["dev_tx_payload_zero_copy"].as_u64().unwrap() >= bytes as u64, "{s}");
    assert_eq!((&s["payload_prefetch"], &s["dev_tx_lines_prefetched"]), (&false.into(), &0.into()), "{s}");
}

#[test]
fn copy_mode_over_virtio_user_counts_copies() {
    let bytes = 32usize << 20;
    let (s, r) = run_pair("cp", "copy", bytes);
    assert_eq!(s["sha256"], r["sha256"]);
    assert_eq!(s["tx_mode"], "Copy");
    assert_eq!(s["tx_bytes_copied"], bytes);
    assert_eq!(s["dev_tx_payload_zero_copy"], 0);
    assert_eq!(s["extbuf_attachments"], 0);
    assert_eq!(s["payload_prefetch"], false, "copy mode's frames are hot already: {s}");
    assert_eq!(s["dev_tx_lines_prefetched"], 0, "{s}");
    assert_eq!(s["clean"], true);
    assert_eq!(r["clean"], true);
}

/// A config.ini for one side of the pair (F-Stack sections, zcstack switches,
/// jumbo frames).
fn conf(dir: &std::path::Path, name: &str, cpu_mask: &str, addr: &str, vdev: &str, prefix: &str) -> String {
    conf_with(dir, name, cpu_mask, addr, vdev, prefix, "", 9000, "")
}

/// [`conf`] with more `[dpdk]` lines, an MTU and more sections.
#[allow(clippy::too_many_arguments)]
fn conf_with(
    dir: &std::path::Path,
    name: &str,
    cpu_mask: &str,
    addr: &str,
    vdev: &str,
    prefix: &str,
    dpdk_extra: &str,
    mtu: u32,
    extra: &str,
) -> String {
    let text = format!(
        "[dpdk]\nlcore_mask={cpu_mask}\nno_huge=1\nmemory=512\nfile_prefix={prefix}\nnb_vdev=1\npkt_tx_delay=0\n{dpdk_extra}\
         [port0]\naddr={addr}\nnetmask=255.255.255.0\nbroadcast=10.78.0.255\ngateway=0.0.0.0\nmtu={mtu}\n\
         [vdev0]\n{vdev}\n\
         [freebsd.boot]\nmemsz_MB=128\n\
         [freebsd.sysctl]\nnet.inet.tcp.sendspace=1048576\nnet.inet.tcp.recvspace=1048576\n\
         [zerocopy]\nsend=1\nrecv=1\nmin_write=4096\n\
         [tcp]\nmin_rto_us=10000\n{extra}"
    );
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the config");
    path.to_string_lossy().into_owned()
}

/// Runs a receiver and a sender driven by the config files `rc` and `sc`
/// (sending `bytes`), then removes `dir`; returns (sender, receiver) reports.
fn run_confs(dir: &std::path::Path, sock: &str, rc: String, sc: &str, bytes: usize, timeout: u32) -> (Value, Value) {
    let t = timeout.to_string();
    let recv = vec!["--conf".to_string(), rc, "--timeout".into(), t.clone()];
    let send: Vec<String> = ["--conf", sc, "--peer", "10.78.0.2", "--timeout", &t, "--bytes", &bytes.to_string()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // Removed even when a run panics.
    struct RmDir<'a>(&'a std::path::Path);
    impl Drop for RmDir<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(self.0);
        }
    }
    let _rm = RmDir(dir);
    run_with(sock, &recv, &send)
}

#[test]
fn config_files_drive_both_sides_with_zero_copy_send_and_receive_over_jumbo_frames() {
    let dir = std::env::temp_dir().join(format!("zc-conf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let sock = format!("/tmp/zc-bulk-{}-conf.sock", std::process::id());
    let pid = std::process::id();
    let rc = conf(&dir, "recv.ini", "1", "10.78.0.2", &format!("driver=net_vhost\npath={sock}"), &format!("zcrc{pid}"));
    let sc = conf(
        &dir,
        "send.ini",
        "2",
        "10.78.0.1",
        &format!("driver=net_virtio_user\npath={sock}\nqueue_size=1024"),
        &format!("zcsc{pid}"),
    );
    // The sender turns the payload prefetch off by its config file.
    let text =
        std::fs::read_to_string(&sc).unwrap().replace("min_write=4096\n", "min_write=4096\npayload_prefetch=0\n");
    std::fs::write(&sc, text).unwrap();
    let bytes = 64usize << 20;
    let (s, r) = run_confs(&dir, &sock, rc, &sc, bytes, 60);
    assert_eq!(s["sha256"], r["sha256"]);
    assert_eq!(s["tx_mode"], "ZeroCopy", "[zerocopy] send=1: {s}");
    assert_eq!((&s["payload_prefetch"], &s["dev_tx_lines_prefetched"]), (&false.into(), &0.into()), "{s}");
    assert_eq!(s["dev_tx_payload_copied"], 0, "{s}");
    assert!(r["rx_bytes_zero_copy"].as_u64().unwrap() >= bytes as u64 * 9 / 10, "[zerocopy] recv=1: {r}");
    // mtu=9000: about 8.9 KB per frame, not 1.4 KB.
    assert!(r["dev_rx_frames"].as_u64().unwrap() < bytes as u64 / 6000, "jumbo frames: {r}");
    assert_eq!(s["clean"], true);
    assert_eq!(r["clean"], true);
}

/// A TSO pair: vhost offers TSO (tso=1) and takes big frames into external
/// buffers (ext-buffer=1); the sender (in `mode`) sends 32 KiB frames.
fn run_tso_pair(tag: &str, mode: &str, bytes: usize) -> (Value, Value) {
    let pid = std::process::id();
    let sock = format!("/tmp/zc-bulk-{pid}-{tag}.sock");
    let recv: Vec<String> = ["--lcores", "0@0", "--ip", "10.77.0.2", "--timeout", "60"]
        .iter()
        .map(|s| s.to_string())
        .chain(["--vdev".into(), format!("net_vhost0,iface={sock},queues=1,tso=1,ext-buffer=1")])
        .chain(["--file-prefix".into(), format!("zcr{tag}{pid}")])
        .collect();
    let send: Vec<String> = ["--lcores", "0@1", "--ip", "10.77.0.1", "--peer", "10.77.0.2", "--timeout", "60", "--tso"]
        .iter()
        .map(|s| s.to_string())
        .chain(["--vdev".into(), format!("net_virtio_user0,path={sock},queues=1,queue_size=1024")])
        .chain(["--mode".into(), mode.into(), "--bytes".into(), bytes.to_string()])
        .chain(["--file-prefix".into(), format!("zcs{tag}{pid}")])
        .collect();
    run_with(&sock, &recv, &send)
}

#[test]
fn copy_mode_tso_copies_whole_frames_into_big_mbufs() {
    let bytes = 64usize << 20;
    let (s, r) = run_tso_pair("cptso", "copy", bytes);
    assert_eq!(s["sha256"], r["sha256"]);
    assert_eq!(s["tx_mode"], "Copy");
    assert!(s["tcp_tso_frames"].as_u64().unwrap() >= bytes as u64 / (32 << 10) * 9 / 10, "{s}");
    assert_eq!(s["extbuf_attachments"], 0, "copy mode never attaches: {s}");
    assert!(s["dev_tx_payload_copied"].as_u64().unwrap() >= bytes as u64, "{s}");
    assert_eq!(s["clean"], true, "{s}");
    assert_eq!(r["clean"], true, "{r}");
}

#[test]
fn copy_writes_on_a_zero_copy_device_copy_once_with_tso() {
    // Ordinary writes copy into page buffers; the zero-copy device sends
    // those buffers in place in TSO frames (no second copy into mbufs).
    let bytes = 64usize << 20;
    let (s, r) = run_tso_pair("wrtso", "write", bytes);
    assert_eq!(s["sha256"], r["sha256"]);
    assert_eq!(s["mode"], "Write", "{s}");
    assert_eq!(s["tx_mode"], "ZeroCopy", "{s}");
    assert_eq!(s["tx_bytes_copied"], bytes, "the application's one copy: {s}");
    assert!(s["dev_tx_payload_copied"].as_u64().unwrap() < bytes as u64 / 100, "no second copy: {s}");
    assert!(s["tcp_tso_frames"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["extbuf_attachments"], s["extbuf_completions"], "{s}");
    assert_eq!(s["clean"], true, "{s}");
    assert_eq!(r["clean"], true, "{r}");
}

#[test]
fn tso_256_mib_over_virtio_user_and_vhost() {
    let bytes = 256usize << 20;
    let (s, r) = run_tso_pair("tso", "zc", bytes);
    assert_eq!(s["sha256"], r["sha256"], "stream SHA-256");
    assert_eq!(r["bytes"], bytes);
    let tso = s["tcp_tso_frames"].as_u64().unwrap();
    assert!(tso >= bytes as u64 / (32 << 10) * 9 / 10, "almost every frame a 32 KiB TSO frame: {s}");
    assert!(r["dev_rx_frames"].as_u64().unwrap() < bytes as u64 / 20_000, "the receiver took them whole: {r}");
    assert_eq!(r["dev_rx_chains_copied"], 0, "in external buffers, not chains: {r}");
    assert_eq!(s["dev_tx_payload_copied"], 0, "{s}");
    // TSO frames (32 KiB of payload) are not prefetched: only the few
    // standard-MTU frames (handshake, tail) are.
    assert!(s["dev_tx_lines_prefetched"].as_u64().unwrap() * 64 < bytes as u64 / 20, "{s}");
    assert_eq!(s["extbuf_attachments"], s["extbuf_completions"], "{s}");
    // A 32 KiB frame spans nine page-array buffers of the data set, in a
    // row: three attachments of at most 16383 bytes each, not nine.
    attachments_per_frame_at_most(&s, bytes, 3);
    for v in [&s, &r] {
        assert_eq!(v["clean"], true, "pages and mempools back to their start counts: {v}");
    }
}

#[test]
fn tso_by_config_files_over_an_impaired_path() {
    // [dpdk] tso=1 on both sides, MTU 1500, and the receiver's port losing
    // 1% and reordering 5% of frames (whole TSO frames): retransmissions
    // go one segment at a time, and the stream still arrives intact.
    let dir = std::env::temp_dir().join(format!("zc-tso-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pid = std::process::id();
    let sock = format!("/tmp/zc-bulk-{pid}-tsoi.sock");
    let rc = conf_with(
        &dir,
        "recv.ini",
        "1",
        "10.78.0.2",
        // Raw devargs: vhost's tso and ext-buffer switches have no key of their own.
        &format!("driver=net_vhost\ndevargs=net_vhost0,iface={sock},queues=1,tso=1,ext-buffer=1"),
        &format!("zcrti{pid}"),
        "tso=1\n",
        1500,
        "[impair]\nloss=1\nreorder=5\ndelay_us=100\nseed=7\n",
    );
    let sc = conf_with(
        &dir,
        "send.ini",
        "2",
        "10.78.0.1",
        &format!("driver=net_virtio_user\npath={sock}\nqueue_size=1024"),
        &format!("zcsti{pid}"),
        "tso=1\n",
        1500,
        "",
    );
    let bytes = 64usize << 20;
    let (s, r) = run_confs(&dir, &sock, rc, &sc, bytes, 90);
    assert_eq!(s["sha256"], r["sha256"]);
    assert!(s["tcp_tso_frames"].as_u64().unwrap() > 100, "{s}");
    assert!(r["impaired"]["dropped"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(s["clean"], true);
    assert_eq!(r["clean"], true);
}
