//! Port discovery: which ethdev ports the EAL probed (PCI devices bound to
//! vfio-pci/igb_uio/uio_pci_generic, then virtual devices), in the EAL's
//! order, and the checks that turn a configuration naming a device the EAL
//! did not find into an error that says what it did find.
//!
//! Numbering follows DPDK (and so F-Stack's `port_list`): the EAL probes every
//! bus but the vdev bus first, then the vdev bus, so PCI ports take the low
//! ids in PCI address order and `--vdev` ports follow in command-line order.

use std::ffi::CStr;
use std::fmt;

use crate::eal::Eal;
use crate::error::{Error, Result};
use crate::ffi;
use crate::port::Port;

/// One ethdev port the EAL knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortListing {
    /// DPDK port id (what `[dpdk] port_list` names).
    pub id: u16,
    /// The ethdev name (`0000:01:00.0` for a PCI port, `net_tap0` for a vdev).
    pub name: String,
    /// The PMD's name, e.g. `net_ixgbe`, `net_virtio`, `net_tap`.
    pub driver: String,
    /// The bus of the underlying device: `pci`, `vdev`, `auxiliary`, ... (empty if DPDK does not say).
    pub bus: String,
    /// The PCI address (`DDDD:BB:DD.F`) for devices on the PCI bus.
    pub pci_addr: Option<String>,
    /// NUMA socket of the device; `None` when unknown (virtual devices, single-node machines).
    pub socket_id: Option<i32>,
    /// The port's MAC address (all zero if DPDK could not read it).
    pub mac: [u8; 6],
}

impl fmt::Display for PortListing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port {} = {} (driver {}", self.id, self.name, self.driver)?;
        if !self.bus.is_empty() {
            write!(f, ", bus {}", self.bus)?;
        }
        if let Some(s) = self.socket_id {
            write!(f, ", socket {s}")?;
        }
        write!(f, ")")
    }
}

/// Every valid ethdev port, in port-id order (the EAL's probe order).
pub fn list(_eal: &Eal) -> Vec<PortListing> {
    let mut out = Vec::new();
    let mut id: u64 = 0;
    // Bounded: at most RTE_MAX_ETHPORTS iterations, ids strictly increase.
    while id < u64::from(ffi::RTE_MAX_ETHPORTS) {
        // SAFETY: pure iterator over the ethdev table; any start id is accepted
        // and RTE_MAX_ETHPORTS is returned past the last port.
        let next = unsafe { ffi::rte_eth_find_next_owned_by(id as u16, 0) };
        if next >= u64::from(ffi::RTE_MAX_ETHPORTS) {
            break;
        }
        if let Some(l) = listing(next as u16) {
            out.push(l);
        }
        id = next + 1;
    }
    out
}

/// What `list` found, for error messages: `port 0 = ... ; port 1 = ...`, or a
/// hint when there are none.
pub fn describe(found: &[PortListing]) -> String {
    if found.is_empty() {
        return "no ports (no PCI device bound to vfio-pci/igb_uio was probed and no [vdevN] was created; \
                see `dpdk-devbind.py --status`)"
            .to_owned();
    }
    found.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; ")
}

fn c_str(p: *const std::os::raw::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: DPDK's name getters return NUL-terminated strings that live as
    // long as the device/bus/driver; copied out at once.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The listing of port `id`, or `None` if it is not a valid port.
pub(crate) fn listing(id: u16) -> Option<PortListing> {
    // SAFETY: pure check on any id.
    if unsafe { ffi::rte_eth_dev_is_valid_port(id) } == 0 {
        return None;
    }
    let mut name = [0 as std::os::raw::c_char; ffi::RTE_ETH_NAME_MAX_LEN as usize];
    // SAFETY: the buffer holds RTE_ETH_NAME_MAX_LEN bytes, what DPDK writes at most.
    let name = if unsafe { ffi::rte_eth_dev_get_name_by_port(id, name.as_mut_ptr()) } == 0 {
        c_str(name.as_ptr())
    } else {
        String::new()
    };
    let mut info = ffi::rte_eth_dev_info::default();
    // SAFETY: valid out-pointer to a default-initialised struct.
    let have_info = unsafe { ffi::rte_eth_dev_info_get(id, &mut info) } == 0;
    let driver = if have_info { c_str(info.driver_name) } else { String::new() };
    let (bus, dev_name) = if have_info && !info.device.is_null() {
        // SAFETY: info.device is the port's live generic device; these are getters.
        let bus = unsafe { ffi::rte_dev_bus(info.device) };
        // SAFETY: as above; a null bus is handled by c_str via the check.
        let bus = if bus.is_null() { String::new() } else { c_str(unsafe { ffi::rte_bus_name(bus) }) };
        // SAFETY: as above.
        (bus, c_str(unsafe { ffi::rte_dev_name(info.device) }))
    } else {
        (String::new(), String::new())
    };
    let pci_addr = (bus == "pci").then(|| normalize_pci(&dev_name).unwrap_or(dev_name));
    // SAFETY: pure getter; returns SOCKET_ID_ANY (-1) when unknown.
    let socket = unsafe { ffi::rte_eth_dev_socket_id(id) };
    let mut mac = ffi::rte_ether_addr::default();
    // SAFETY: valid out-pointer.
    let mac = if unsafe { ffi::rte_eth_macaddr_get(id, &mut mac) } == 0 { mac.addr_bytes } else { [0; 6] };
    Some(PortListing { id, name, driver, bus, pci_addr, socket_id: (socket >= 0).then_some(socket), mac })
}

/// The NUMA socket to allocate a port's memory on (mempools, page array):
/// the port's socket when `numa_on` and DPDK knows it, else `SOCKET_ID_ANY`
/// (`None`). F-Stack's `numa_on`.
pub fn placement_socket(port: &Port, numa_on: bool) -> Option<i32> {
    if numa_on {
        port.socket_id()
    } else {
        None
    }
}

impl Port {
    /// Opens port `id` as the EAL probed it (a PCI device or a `--vdev`).
    ///
    /// Errors: [`Error::PortNotProbed`] naming `[dpdk] port_list` and every
    /// port the EAL did find (driver and name).
    pub fn by_id(eal: &Eal, id: u16) -> Result<Port> {
        match listing(id) {
            Some(l) => Ok(Port::from_id(id, l.name)),
            None => Err(Error::PortNotProbed { port: id, found: describe(&list(eal)) }),
        }
    }

    /// The port's NUMA socket, `None` when DPDK does not know it.
    pub fn socket_id(&self) -> Option<i32> {
        // SAFETY: pure getter.
        let s = unsafe { ffi::rte_eth_dev_socket_id(self.id()) };
        (s >= 0).then_some(s)
    }

    /// The port as [`list`] describes it.
    pub fn listing(&self) -> Option<PortListing> {
        listing(self.id())
    }
}

/// Normalises a PCI address as DPDK writes it, `DDDD:BB:DD.F` in lowercase
/// hex; accepts the short form `BB:DD.F` (domain 0). `None` if `s` is not a
/// PCI address.
pub fn normalize_pci(s: &str) -> Option<String> {
    let hex = |t: &str, max_len: usize| -> Option<u32> {
        (!t.is_empty() && t.len() <= max_len && t.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u32::from_str_radix(t, 16).ok())
            .flatten()
    };
    let (rest, func) = s.rsplit_once('.')?;
    let func = hex(func, 1).filter(|&f| f <= 7)?;
    let parts: Vec<&str> = rest.split(':').collect();
    let (domain, bus, dev) = match parts.as_slice() {
        [b, d] => (0, hex(b, 2)?, hex(d, 2)?),
        [dom, b, d] => (hex(dom, 8)?, hex(b, 2)?, hex(d, 2)?),
        _ => return None,
    };
    if dev > 0x1f {
        return None;
    }
    Some(format!("{domain:04x}:{bus:02x}:{dev:02x}.{func:x}"))
}

/// The device part of an allow-list entry (before its first `,`), normalised
/// to `DDDD:BB:DD.F`. Errors say why the entry is not usable; zcstack's
/// `allow` names PCI devices only (virtual devices go in `[vdevN]`).
pub fn parse_allow_entry(entry: &str) -> std::result::Result<String, &'static str> {
    let dev = entry.split(',').next().unwrap_or("").trim();
    if dev.is_empty() {
        return Err("it is empty: expected a PCI address such as 0000:01:00.0, optionally followed by ,driver options");
    }
    normalize_pci(dev).ok_or(
        "its device is not a PCI address (DDDD:BB:DD.F or BB:DD.F, hex; F is 0-7): \
         `allow` names PCI devices, virtual devices go in [vdevN]",
    )
}

/// Why a PCI address probably was not probed, from sysfs: absent, or bound to
/// a kernel driver DPDK cannot use.
fn sysfs_hint(pci: &str) -> String {
    let dev = std::path::Path::new("/sys/bus/pci/devices").join(pci);
    if !dev.exists() {
        return format!("there is no PCI device {pci} on this machine (`lspci -D`)");
    }
    match std::fs::read_link(dev.join("driver")) {
        Ok(d) => {
            let drv = d.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if ["vfio-pci", "igb_uio", "uio_pci_generic"].contains(&drv.as_str()) {
                format!("{pci} is bound to {drv} but no DPDK driver took it (PMD for this NIC not installed?)")
            } else {
                format!("{pci} is bound to the kernel driver {drv}: bind it with `dpdk-devbind.py -b vfio-pci {pci}`")
            }
        }
        Err(_) => format!("{pci} is bound to no driver: bind it with `dpdk-devbind.py -b vfio-pci {pci}`"),
    }
}

/// Checks, after EAL init, that every `[dpdk] allow` entry matches a probed
/// port. DPDK 22.11 accepts an allow-list address that matches no device
/// (or a device bound to a kernel driver) and simply probes nothing for
/// it; this turns that silence into [`Error::AllowUnmatched`] naming the
/// entry, why it was likely not probed, and the ports found.
pub fn check_allow(eal: &Eal, entries: &[String]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let found = list(eal);
    for e in entries {
        let pci = parse_allow_entry(e).map_err(|why| Error::BadAllowEntry { entry: e.clone(), why })?;
        if !found.iter().any(|p| p.pci_addr.as_deref() == Some(pci.as_str())) {
            return Err(Error::AllowUnmatched { entry: e.clone(), hint: sysfs_hint(&pci), found: describe(&found) });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_addresses_normalise_like_dpdk() {
        assert_eq!(normalize_pci("0000:01:00.0").as_deref(), Some("0000:01:00.0"));
        assert_eq!(normalize_pci("3B:00.1").as_deref(), Some("0000:3b:00.1"));
        assert_eq!(normalize_pci("10000:af:1f.7").as_deref(), Some("10000:af:1f.7"));
        for bad in
            ["", "garbage", "01:00", "01:00.8", "01:20.0", "0000:001:00.0", "g1:00.0", "0000:01:00.0.1", ":01:00.0"]
        {
            assert_eq!(normalize_pci(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn allow_entries_keep_driver_options_and_refuse_non_pci() {
        assert_eq!(parse_allow_entry("0000:01:00.0,txq_inline=128").unwrap(), "0000:01:00.0");
        assert_eq!(parse_allow_entry(" 01:00.1 ").unwrap(), "0000:01:00.1");
        assert!(parse_allow_entry("net_tap0,iface=x").unwrap_err().contains("[vdevN]"));
        assert!(parse_allow_entry("").unwrap_err().contains("empty"));
        assert!(parse_allow_entry(",a=b").unwrap_err().contains("empty"));
    }

    #[test]
    fn describe_names_driver_and_name_or_says_none() {
        let l = PortListing {
            id: 0,
            name: "0000:01:00.0".into(),
            driver: "net_ixgbe".into(),
            bus: "pci".into(),
            pci_addr: Some("0000:01:00.0".into()),
            socket_id: Some(1),
            mac: [0; 6],
        };
        let d = describe(&[l]);
        assert!(d.contains("port 0 = 0000:01:00.0 (driver net_ixgbe, bus pci, socket 1)"), "{d}");
        assert!(describe(&[]).contains("no ports"));
    }
}
