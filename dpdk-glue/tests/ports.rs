//! Port discovery, in a process of its own whose EAL was given two virtual
//! devices on its command line: ports are listed in the EAL's order with
//! their driver and bus, `Port::by_id` opens what the EAL probed, and an id
//! it did not probe is an error naming `[dpdk] port_list` and every port found.
mod common;

use dpdk_glue::{ports, Eal, EalArgs, Error, Port};

fn eal() -> Eal {
    let mut a = EalArgs::nic_less("0@0");
    a.file_prefix = Some(format!("zcports{}", std::process::id()));
    a.log_level = Some("error".into());
    a.vdevs = vec!["net_null1,size=64".into(), "net_null0,size=64".into()];
    Eal::init(&a).expect("EAL with two net_null vdevs")
}

#[test]
fn probed_ports_are_listed_opened_by_id_and_unknown_ids_say_what_exists() {
    let eal = eal();
    let found = ports::list(&eal);
    // --vdev order, not name order: port 0 is net_null1.
    let names: Vec<(u16, &str, &str, &str)> =
        found.iter().map(|p| (p.id, p.name.as_str(), p.driver.as_str(), p.bus.as_str())).collect();
    assert_eq!(names, vec![(0, "net_null1", "net_null", "vdev"), (1, "net_null0", "net_null", "vdev")]);
    assert!(found.iter().all(|p| p.pci_addr.is_none()), "virtual devices have no PCI address");

    let mut p = Port::by_id(&eal, 1).unwrap();
    assert_eq!(p.name(), "net_null0");
    assert_eq!(p.listing().unwrap(), found[1]);
    assert_eq!(p.socket_id(), found[1].socket_id);
    assert_eq!(ports::placement_socket(&p, false), None, "numa_on=0 places anywhere");
    assert_eq!(ports::placement_socket(&p, true), p.socket_id());
    p.set_promiscuous(true).unwrap();

    for missing in [2u16, 31, 1000, u16::MAX] {
        let e = Port::by_id(&eal, missing).unwrap_err();
        assert!(matches!(e, Error::PortNotProbed { port, .. } if port == missing), "{e}");
        let msg = e.to_string();
        for want in [
            "[dpdk] port_list",
            &format!("port {missing}"),
            "port 0 = net_null1 (driver net_null",
            "port 1 = net_null0",
        ] {
            assert!(msg.contains(want), "{msg:?} lacks {want:?}");
        }
    }
    drop(p);
    drop(eal);
}
