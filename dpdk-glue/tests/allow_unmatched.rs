//! `[dpdk] allow` entries that match no device, in a process of its own (the
//! EAL is spent by the failure). DPDK 22.11 refuses a malformed `-a` entry
//! with a bare EINVAL, and accepts a well-formed PCI address that matches no
//! device, probing nothing for it; zcstack names the key, the entry and what
//! was found in both cases.
mod common;

use dpdk_glue::{Eal, EalArgs, Error};

fn args(allow: &[&str]) -> EalArgs {
    let mut a = EalArgs::nic_less("0@0");
    // PCI probing on, narrowed by the allow list (nothing else is touched).
    a.no_pci = false;
    a.allow = allow.iter().map(|s| s.to_string()).collect();
    a.file_prefix = Some(format!("zcallow{}", std::process::id()));
    a.log_level = Some("error".into());
    a.vdevs = vec!["net_null0,size=64".into()];
    a
}

#[test]
fn allow_entries_matching_no_device_are_errors_naming_the_key_and_what_exists() {
    // Malformed entries are refused before DPDK runs (the process keeps its one init).
    for (bad, why) in [
        ("garbage", "not a PCI address"),
        ("net_tap0,iface=x", "[vdevN]"),
        ("0000:01:00.9", "not a PCI address"),
        ("", "empty"),
    ] {
        let a = args(&["0000:00:00.0", bad]);
        assert!(a.to_args().windows(2).any(|w| w[0] == "-a" && w[1] == bad), "rendered as -a ENTRY");
        let e = Eal::init(&a).unwrap_err();
        assert!(matches!(&e, Error::BadAllowEntry { entry, .. } if entry == bad), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("[dpdk] allow") && msg.contains(why), "{msg}");
    }

    // Well formed, but no such device: the EAL starts, probes nothing for it,
    // and the check after init says so (short form and driver options kept).
    let e = Eal::init(&args(&["99:1f.7,txq_inline=128"])).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::AllowUnmatched { .. }), "{msg}");
    for want in [
        "[dpdk] allow",
        "\"99:1f.7,txq_inline=128\"",
        "no PCI device 0000:99:1f.7",
        "port 0 = net_null0 (driver net_null",
    ] {
        assert!(msg.contains(want), "{msg:?} lacks {want:?}");
    }
    // The EAL was cleaned up; this process cannot start another.
    assert!(matches!(Eal::init(&args(&[])), Err(Error::EalPreviouslyFailed)));
}
