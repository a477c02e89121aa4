//! Deployment forms and their startup errors, run through `helloworld`
//! (issue 12 review, package fixa). Every config here starts the EAL with
//! `no_huge=1` on a port the EAL cannot find (no traffic is sent: a probed
//! port that does not exist is refused before any queue starts), so each
//! test proves which mechanism handled the config and what it says. Each
//! process is bounded by a deadline and killed on expiry.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `helloworld --conf FILE ARGS` on `text` (written to a private
/// file) and returns (succeeded, stderr). Bounded: killed after 60 s.
fn helloworld(tag: &str, text: &str, args: &[&str]) -> (bool, String) {
    let dir = std::env::temp_dir().join(format!("zc-deployerr-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("c.ini");
    std::fs::write(&conf, text).unwrap();
    let err = dir.join("err.txt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_helloworld"))
        .args(["--conf", conf.to_str().unwrap(), "--duration", "1"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if t.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = std::fs::read_to_string(&err).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    let status = status.unwrap_or_else(|| panic!("{tag}: helloworld did not exit within 60 s: {text}"));
    (status.success(), text)
}

/// F-Stack's shipped shape: one lcore, `[portN]` without `[vdevN]` (a NIC
/// the EAL probes), plus `no_huge=1` so the EAL starts on any machine.
fn probed_port_conf(prefix: &str, lcore_mask: &str, port: u16) -> String {
    format!(
        "[dpdk]\nlcore_mask={lcore_mask}\nchannel=4\npromiscuous=1\nnuma_on=1\nno_huge=1\nmemory=256\n\
         file_prefix={prefix}\nport_list={port}\nnb_vdev=0\nnb_bond=0\n\
         [port{port}]\naddr=192.168.1.2\nnetmask=255.255.255.0\nbroadcast=192.168.1.255\ngateway=192.168.1.1\n\
         [freebsd.boot]\nmemsz_MB=16\n"
    )
}

/// A one-lcore config is a deployment plan with N = 1, not the old
/// virtual-device-only runtime: the EAL starts, probes, and the error for
/// a missing port names the ports it found and how to bind one, for port
/// 0 and for any other N.
#[test]
fn one_lcore_probed_port_reaches_the_eal_and_names_the_ports_found() {
    let pid = std::process::id();
    for port in [0u16, 3] {
        let (ok, err) =
            helloworld(&format!("p{port}"), &probed_port_conf(&format!("zcde{pid}p{port}"), "1", port), &[]);
        assert!(!ok, "port {port}: no such device, yet helloworld succeeded: {err}");
        assert!(!err.contains("single-port runtime"), "port {port}: stopped before the EAL: {err}");
        assert!(err.contains(&format!("[dpdk] port_list names port {port}, but the EAL found")), "port {port}: {err}");
        assert!(err.contains("dpdk-devbind.py"), "port {port}: the error says how to bind a NIC: {err}");
    }
}

/// The same through F-Stack's multi-lcore shape with lcore_mask=3 (one
/// process, a stack per lcore): the same error, so every form takes the
/// same path.
#[test]
fn two_lcore_probed_port_gives_the_same_error() {
    let pid = std::process::id();
    let (ok, err) = helloworld("m3", &probed_port_conf(&format!("zcde{pid}m3"), "3", 0), &[]);
    assert!(!ok, "{err}");
    assert!(err.contains("[dpdk] port_list names port 0, but the EAL found"), "{err}");
}

/// Two ports whose lcore_lists share an lcore (F-Stack's default list is
/// every lcore, so two ports without lists overlap too): refused before the
/// EAL starts, naming both `[portN] lcore_list` keys and their lines.
#[test]
fn an_lcore_in_two_ports_lcore_lists_is_refused_naming_both_keys() {
    let pid = std::process::id();
    let ports = |l0: &str, l1: &str| {
        format!(
            "[dpdk]\nlcore_mask=3\nno_huge=1\nmemory=256\nfile_prefix=zcde{pid}ov\nnb_vdev=2\nport_list=0,1\n\
             [port0]\naddr=10.212.0.2\nnetmask=255.255.255.0\nbroadcast=10.212.0.255\ngateway=0.0.0.0\n{l0}\
             [vdev0]\ndriver=net_null\n\
             [port1]\naddr=10.213.0.2\nnetmask=255.255.255.0\nbroadcast=10.213.0.255\ngateway=0.0.0.0\n{l1}\
             [vdev1]\ndriver=net_null\n[freebsd.boot]\nmemsz_MB=16\n"
        )
    };
    // Line 13 is port0's lcore_list, line 21 port1's.
    let (ok, err) = helloworld("ov1", &ports("lcore_list=0-1\n", "lcore_list=1\n"), &[]);
    assert!(!ok, "{err}");
    assert!(
        err.contains("lcore 1 is in [port0] lcore_list = 0-1 (line 13) and in [port1] lcore_list = 1 (line 21)"),
        "{err}"
    );
    assert!(!err.contains("EAL initialisation"), "refused before the EAL: {err}");
    // Default lists (every lcore) overlap at lcore 0.
    let (ok, err) = helloworld("ov2", &ports("", ""), &[]);
    assert!(!ok, "{err}");
    assert!(err.contains("lcore 0 is in [port0] lcore_list (default"), "{err}");
    assert!(err.contains("and in [port1] lcore_list (default"), "{err}");
    // An lcore of lcore_mask (0x7 needs a third CPU: only where the host has one) in no port's list.
    if std::thread::available_parallelism().map_or(1, |n| n.get()) >= 3 {
        let text = ports("lcore_list=0\n", "lcore_list=1\n").replace("lcore_mask=3", "lcore_mask=7");
        let (ok, err) = helloworld("ov3", &text, &[]);
        assert!(!ok, "{err}");
        assert!(err.contains("has lcore 2, but no port of port_list has it in its lcore_list"), "{err}");
    }
}
