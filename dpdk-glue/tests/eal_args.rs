//! EAL argument handling, in a process of its own: a rejected argument list is
//! a typed error carrying DPDK's errno text, and a retry in the same process is
//! refused with a clear reason instead of touching DPDK's half-set state.
//! (The refusal of a second init after a successful one is in ring_pair.rs.)
use dpdk_glue::{Eal, EalArgs, Error};

#[test]
fn bad_arguments_then_good_then_second_init() {
    let mut bad = EalArgs::nic_less("0@0");
    bad.extra.push("--definitely-not-an-eal-option".into());
    let e = Eal::init(&bad).unwrap_err();
    match &e {
        Error::EalInit { args, errno } => {
            assert!(args.contains(&"--definitely-not-an-eal-option".to_string()));
            assert_eq!(errno.0, libc::EINVAL);
        }
        other => panic!("expected EalInit, got {other}"),
    }
    assert!(e.to_string().contains("Invalid argument"), "rte_strerror text carried: {e}");

    let mut nul = EalArgs::nic_less("0@0");
    nul.extra.push("a\0b".into());
    assert!(matches!(Eal::init(&nul), Err(Error::NulInArgument(_))));

    // DPDK keeps partial state after a failed init: the process's one chance
    // is spent, and a later attempt says so instead of failing obscurely.
    let good = EalArgs::nic_less("0@0");
    let e = Eal::init(&good).unwrap_err();
    assert!(matches!(e, Error::EalPreviouslyFailed), "{e}");
    assert!(e.to_string().contains("start a new process"));
}
