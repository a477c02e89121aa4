//! `config.ini`, F-Stack compatible, into typed settings.
//!
//! F-Stack's sections and keys read the same (`[dpdk]`, `[portN]`,
//! `[vdevN]`, `[pcap]`, `[freebsd.boot]`, `[freebsd.sysctl]`, `[kni]`), plus
//! zcstack's own `[zerocopy]`, `[tcp]` and `[impair]`. Unknown sections and keys, bad
//! values and missing required keys are errors naming the file, line, key
//! and what is allowed, with the nearest known key suggested. Keys F-Stack
//! has that zcstack does not implement are accepted and listed in
//! [`Config::report`], never silently ignored.

mod check;
mod deploy;
mod fstack;
mod host;
mod ini;
mod keys;
mod toml_form;

use std::net::Ipv4Addr;

use thiserror::Error;
use zcstack::wire::EthernetAddress;
use zcstack::{IfaceConfig, StackConfig, TcpConfig};

use crate::device::{EthDeviceConfig, TxMode, TxPrefetch};
use crate::eal::EalArgs;
use crate::impair::ImpairConfig;
use crate::port::PortConfig;
use crate::runloop::RuntimeConfig;

pub use fstack::{AllowEntry, RssCheckSection};
pub use host::Host;
pub use ini::{Entry, Section};

/// A configuration error: where, and what is allowed instead.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[error("{file}{}: {msg}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// 1-based line, when the error is on one.
    pub line: Option<usize>,
    /// The message (section, key, value and what is allowed).
    pub msg: String,
}

impl ConfigError {
    pub(crate) fn syntax(file: &str, line: usize, msg: String) -> ConfigError {
        ConfigError { file: file.to_owned(), line: Some(line), msg }
    }
}

/// A key F-Stack knows that zcstack accepts but does not implement (or
/// implements differently): part of the load report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    /// Line of the key.
    pub line: usize,
    /// `[section] key`.
    pub key: String,
    /// What zcstack does with it.
    pub msg: String,
}

impl std::fmt::Display for Notice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}: {}", self.line, self.key, self.msg)
    }
}

/// `[dpdk]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpdkSection {
    /// Lcores to run on (hex mask).
    pub lcore_mask: u64,
    /// Memory channels (EAL `-n`).
    pub channel: u32,
    /// Promiscuous mode.
    pub promiscuous: bool,
    /// Skip TX checksum offload (`tx_csum_offoad_skip`, sic, or the alias).
    pub tx_csum_offload_skip: bool,
    /// TCP segmentation offload where the port has it.
    pub tso: bool,
    /// Sleep in idle loop passes, µs.
    pub idle_sleep_us: u64,
    /// Hold partial TX bursts, µs (0..=100).
    pub pkt_tx_delay_us: u64,
    /// Ports to use.
    pub port_list: Vec<u16>,
    /// Number of `[vdevN]` sections.
    pub nb_vdev: u32,
    /// EAL `--no-huge`.
    pub no_huge: bool,
    /// EAL `-m`, MiB.
    pub memory_mb: Option<u32>,
    /// EAL `--file-prefix`.
    pub file_prefix: String,
    /// EAL `--log-level`.
    pub log_level: String,
    /// `numa_on` (F-Stack's default 1): pools and page arrays on the port's NUMA socket.
    pub numa_on: bool,
    /// `symmetric_rss`: the symmetric RSS key, so both directions of a flow hash alike.
    pub symmetric_rss: bool,
    /// `base_virtaddr`: EAL `--base-virtaddr` (where shared memory is mapped,
    /// the same in every process of a group).
    pub base_virtaddr: Option<u64>,
    /// `allow`: PCI devices the EAL may probe, with their driver options.
    pub allow: Vec<AllowEntry>,
    /// `vlan_strip` (F-Stack's default 1). zcstack has no VLANs: a notice.
    pub vlan_strip: bool,
    /// `vlan_filter`: VLAN ids. zcstack has no VLANs: a notice.
    pub vlan_filter: Vec<u16>,
    /// `stage_cycles` (zcstack's, default 0): per-stage cycle counters of
    /// the engine and the run loop (TSC), shown by `zcstat stages`.
    pub stage_cycles: bool,
    /// `tx_free_batch` (zcstack's, default 32): TX descriptors a virtio
    /// split ring reclaims at a time (0: the driver's default, nearly the
    /// whole ring at once); see [`crate::txreclaim`].
    pub tx_free_batch: u16,
}

/// `[portN]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortSection {
    /// N.
    pub id: u16,
    /// IPv4 address.
    pub addr: Ipv4Addr,
    /// Prefix length (from `netmask`).
    pub prefix_len: u8,
    /// Broadcast address.
    pub broadcast: Ipv4Addr,
    /// Default gateway (`0.0.0.0` for none).
    pub gateway: Option<Ipv4Addr>,
    /// Lcores serving the port, ascending: queue `q` is served by the
    /// `q`-th (F-Stack's default: every lcore of `lcore_mask`).
    pub lcore_list: Vec<u32>,
    /// `slave_port_list`: bonding members (bonding is not implemented: a notice).
    pub slave_port_list: Option<Vec<u16>>,
    /// Interface name (the kernel-side name of a `net_tap` port).
    pub if_name: Option<String>,
    /// Link MTU (zcstack's key; both ends must agree). Default 1500.
    pub mtu: usize,
}

/// `[vdevN]`: a NIC-less port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VdevSection {
    /// N.
    pub id: u16,
    /// Driver: `net_virtio_user` (F-Stack's default), `net_vhost`, `net_tap`,
    /// `net_memif`, `net_af_xdp`, `net_af_packet`, `net_ring`, `net_null`.
    pub driver: String,
    /// vhost-user / memif socket path.
    pub path: Option<String>,
    /// Interface (tap name, af_xdp/af_packet netdev).
    pub iface: Option<String>,
    /// Queues.
    pub queues: u16,
    /// Descriptors per queue.
    pub queue_size: u16,
    /// MAC address.
    pub mac: Option<[u8; 6]>,
    /// virtio-user control queue (`cq`; F-Stack's default: on with more than one queue).
    pub cq: Option<bool>,
    /// Raw devargs, overriding everything above.
    pub devargs: Option<String>,
}

impl VdevSection {
    /// The `--vdev` devargs string.
    pub fn devargs(&self) -> String {
        if let Some(d) = &self.devargs {
            return d.clone();
        }
        let mut s = format!("{}{}", self.driver, self.id);
        let mut kv = |k: &str, v: String| s.push_str(&format!(",{k}={v}"));
        match self.driver.as_str() {
            "net_virtio_user" => {
                if let Some(p) = &self.path {
                    kv("path", p.clone());
                }
                kv("queues", self.queues.to_string());
                kv("queue_size", self.queue_size.to_string());
                if let Some(cq) = self.cq.or((self.queues > 1).then_some(true)) {
                    kv("cq", u8::from(cq).to_string());
                }
            }
            "net_vhost" => {
                if let Some(p) = &self.path {
                    kv("iface", p.clone());
                }
                kv("queues", self.queues.to_string());
            }
            "net_memif" => {
                if let Some(p) = &self.path {
                    kv("socket", p.clone());
                }
            }
            _ => {
                if let Some(i) = &self.iface {
                    kv("iface", i.clone());
                }
            }
        }
        if let Some(m) = self.mac {
            let mac = m.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(":");
            kv("mac", mac);
        }
        s
    }
}

/// `[pcap]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcapSection {
    /// Dump RX and TX.
    pub enable: bool,
    /// Bytes kept per packet.
    pub snaplen: u32,
    /// Bytes per file before rotating.
    pub savelen: u64,
    /// Directory.
    pub savepath: String,
}

/// IPv4 reassembly limits from `[freebsd.sysctl]` (FreeBSD's names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReassemblySection {
    /// `net.inet.ip.maxfragsperpacket`: fragments kept per datagram (1..=8192).
    pub max_fragments: usize,
    /// `net.inet.ip.maxfragpackets`: datagrams under reassembly at once (1..=65536).
    pub max_datagrams: usize,
}

/// `[zerocopy]`: zcstack's runtime switches.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZeroCopySection {
    /// Page array in DPDK memory (off: heap pages, copy mode only).
    pub page_array: bool,
    /// Zero-copy send (extbuf TX).
    pub send: bool,
    /// Zero-copy receive (payload kept in RX mbufs).
    pub recv: bool,
    /// Zero-copy writes below this many bytes are copied.
    pub min_write: usize,
    /// Page-array buffer size, bytes.
    pub buf_size: usize,
    /// Share of the RX mbuf pool, percent, that TCP receive queues may pin
    /// with zero-copy receive (`StackConfig::rx_pin_budget`); the rest is
    /// the reserve the RX ring and control traffic always find.
    pub recv_budget: usize,
    /// Received TCP payloads shorter than this many bytes are copied and
    /// their mbuf freed at once (`StackConfig::rx_copybreak`; 0: none).
    pub recv_copybreak: usize,
    /// Send pressure starts below this share of the page array free,
    /// percent (`StackConfig::send_low_water`; 0: off).
    pub send_low_water: usize,
    /// Share of the page array, percent, only connections with (almost)
    /// empty send queues may take (`StackConfig::send_reserve`).
    pub send_reserve: usize,
    /// Under pressure a connection may always hold this many bytes of
    /// send queue (`StackConfig::send_share_floor`).
    pub send_share_floor: usize,
    /// `payload_prefetch`: zero-copy TX prefetches frames' payload for a
    /// software backend (`auto`: on virtio-user ports; [`TxPrefetch`]).
    pub tx_prefetch: TxPrefetch,
}

/// A loaded configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where it came from.
    pub file: String,
    /// `[dpdk]`.
    pub dpdk: DpdkSection,
    /// `[portN]`, by N.
    pub ports: Vec<PortSection>,
    /// `[vdevN]`, by N.
    pub vdevs: Vec<VdevSection>,
    /// `[pcap]`.
    pub pcap: PcapSection,
    /// `[freebsd.boot] memsz_MB`: page array size.
    pub page_array_mb: usize,
    /// TCP tunables from `[freebsd.sysctl]` and `[tcp]`.
    pub tcp: TcpConfig,
    /// `[zerocopy]`.
    pub zerocopy: ZeroCopySection,
    /// `[impair]`: fault injection at the port (off unless set).
    pub impair: ImpairConfig,
    /// IPv4 reassembly limits.
    pub reassembly: ReassemblySection,
    /// F-Stack keys accepted but not (fully) implemented.
    pub report: Vec<Notice>,
    /// The file as read (sections, keys, values and lines), so that errors
    /// found later, at startup, can name the key that caused them.
    pub source: Vec<Section>,
    /// `[rss_check]`.
    pub rss_check: RssCheckSection,
    /// Engine settings mapped from `[freebsd.boot]` and `[freebsd.sysctl]`
    /// by `zcstack::sysctl` (addressing unset; `tcp` above is this plus `[tcp]`).
    pub engine: StackConfig,
}

/// A UTF-8 byte-order mark some editors put at the start of a file.
const BOM: char = '\u{feff}';

impl Config {
    /// Reads and checks `path`: TOML when it ends in `.toml`, F-Stack INI
    /// otherwise.
    pub fn load(path: &str) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            line: None,
            msg: format!("cannot read: {e}"),
        })?;
        if path.ends_with(".toml") {
            Config::parse_toml(path, &text)
        } else {
            Config::parse(path, &text)
        }
    }

    /// Checks INI `text` against the schema, every value against its
    /// range, the keys against each other and against this machine
    /// ([`Host::current`]); `file` names it in messages. A leading UTF-8
    /// byte-order mark is skipped; CRLF line ends are accepted.
    pub fn parse(file: &str, text: &str) -> Result<Config, ConfigError> {
        Config::parse_for_host(file, text, &Host::current())
    }

    /// [`Config::parse`] against `host` instead of this machine.
    pub fn parse_for_host(file: &str, text: &str, host: &Host) -> Result<Config, ConfigError> {
        let sections = ini::parse(file, text.strip_prefix(BOM).unwrap_or(text))?;
        Config::checked(file, sections, host)
    }

    /// Checks TOML `text` against the same schema and with the same
    /// messages as [`Config::parse`] (see the mapping in `toml_form`).
    pub fn parse_toml(file: &str, text: &str) -> Result<Config, ConfigError> {
        Config::parse_toml_for_host(file, text, &Host::current())
    }

    /// [`Config::parse_toml`] against `host` instead of this machine.
    pub fn parse_toml_for_host(file: &str, text: &str, host: &Host) -> Result<Config, ConfigError> {
        let sections = toml_form::parse(file, text.strip_prefix(BOM).unwrap_or(text))?;
        Config::checked(file, sections, host)
    }

    fn checked(file: &str, sections: Vec<Section>, host: &Host) -> Result<Config, ConfigError> {
        let mut c = keys::build(file, &sections)?;
        c.source = sections;
        check::check(&c, host)?;
        Ok(c)
    }

    /// The load report, one line per notice: `file:line: [section] key: what
    /// zcstack does with it` (what the examples print at startup).
    pub fn report_lines(&self) -> Vec<String> {
        self.report.iter().map(|n| format!("{}:{}: {}: {}", self.file, n.line, n.key, n.msg)).collect()
    }

    /// The line of `[section] key`, or of `[section]` when the key is not
    /// set, if the file has that section.
    pub fn line_of(&self, section: &str, key: &str) -> Option<usize> {
        let s = self.source.iter().find(|s| s.name == section)?;
        Some(s.entries.iter().find(|e| e.key == key).map_or(s.line, |e| e.line))
    }

    /// A startup failure of process `proc_id` (from [`crate::Runtime::init`]
    /// with [`Config::runtime_for_proc`]`(proc_id)`) as a configuration error
    /// naming the file, line and keys that set what failed.
    pub fn startup_error(&self, proc_id: u32, e: &crate::error::Error) -> ConfigError {
        use crate::error::Error as E;
        let port = self.dpdk.port_list.get(proc_id as usize).copied().unwrap_or(0);
        let vdev = format!("vdev{port}");
        let keys: Vec<(&str, &str)> = match e {
            E::NoPrimary { .. } => vec![("dpdk", "file_prefix"), ("dpdk", "lcore_mask")],
            E::EalInit { .. } | E::EalPreviouslyFailed | E::NulInArgument(_) | E::BadFilePrefix { .. } => vec![
                ("dpdk", "lcore_mask"),
                ("dpdk", "memory"),
                ("dpdk", "no_huge"),
                ("dpdk", "file_prefix"),
                ("dpdk", "log_level"),
                (vdev.as_str(), "devargs"),
            ],
            E::Vdev { .. } | E::NoSuchPort(_) | E::Port { .. } | E::PortLimit { .. } | E::NoSuchQueue { .. } => vec![
                (vdev.as_str(), "driver"),
                (vdev.as_str(), "path"),
                (vdev.as_str(), "iface"),
                (vdev.as_str(), "queue_size"),
                (vdev.as_str(), "devargs"),
            ],
            E::Memzone { .. } | E::BadPageArray { .. } | E::MempoolCreate { .. } | E::ExtMem { .. } => {
                vec![("freebsd.boot", "memsz_MB"), ("zerocopy", "buf_size"), ("dpdk", "memory"), ("dpdk", "no_huge")]
            }
            E::Pcap { .. } => vec![("pcap", "savepath")],
            E::BadAllowEntry { .. } | E::AllowUnmatched { .. } => vec![("dpdk", "allow")],
            _ => vec![("dpdk", "port_list")],
        };
        let mut line = None;
        let named: Vec<String> = keys
            .iter()
            .map(|(s, k)| {
                match self.source.iter().find(|x| x.name == *s).and_then(|x| x.entries.iter().find(|x| x.key == *k)) {
                    Some(e) => {
                        line = line.or(Some(e.line));
                        format!("[{s}] {k} (line {})", e.line)
                    }
                    None => format!("[{s}] {k} (default)"),
                }
            })
            .collect();
        let set_by = named.join(", ");
        if let E::EalInit { args, .. } = e {
            let primary = args.iter().any(|a| a == "--proc-type=primary")
                || args.windows(2).any(|w| w[0] == "--proc-type" && w[1] == "primary");
            if primary && primary_running(&self.dpdk.file_prefix) {
                return ConfigError {
                    file: self.file.clone(),
                    line: self.line_of("dpdk", "file_prefix"),
                    msg: format!(
                        "startup failed: a --proc-type=primary process with [dpdk] file_prefix \"{}\" is already \
                         running (it holds /var/run/dpdk/{}/config); start this one as --proc-type=secondary, or \
                         give a second group its own file_prefix; the EAL said: {e}",
                        self.dpdk.file_prefix, self.dpdk.file_prefix
                    ),
                };
            }
        }
        if matches!(e, E::EalInit { .. }) && !self.dpdk.no_huge && free_hugepages() == Some(0) {
            // The EAL reports this as EACCES ("Cannot get hugepage information").
            let at = |k: &str| {
                let e =
                    self.source.iter().find(|s| s.name == "dpdk").and_then(|s| s.entries.iter().find(|e| e.key == k));
                e.map_or("default".to_owned(), |e| format!("line {}", e.line))
            };
            return ConfigError {
                file: self.file.clone(),
                line: self.line_of("dpdk", "no_huge"),
                msg: format!(
                    "startup failed: no free hugepages on this machine, and [dpdk] no_huge ({}) is 0 so DPDK needs \
                     them ([dpdk] memory ({}) MiB of them): reserve hugepages (ci/hugepages N, or echo N > \
                     /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages), or set no_huge=1 for tests and the \
                     demo; the EAL said: {e}",
                    at("no_huge"),
                    at("memory")
                ),
            };
        }
        ConfigError { file: self.file.clone(), line, msg: format!("startup failed: {e} (set by {set_by})") }
    }

    /// The `[portN]` serving `id`.
    pub fn port(&self, id: u16) -> Option<&PortSection> {
        self.ports.iter().find(|p| p.id == id)
    }

    /// Runtime settings for process `proc_id` of an F-Stack-style group
    /// (`--proc-id`): one process per lcore of `lcore_mask`, the N-th on
    /// the N-th lcore (lowest first), each with its own stack serving its
    /// own port, the N-th of `port_list` (a NIC-less port cannot be shared
    /// between processes the way F-Stack shares a NIC's queues). Process 0
    /// is [`Config::runtime`] of the first port; the others get the file
    /// prefix `<file_prefix>-<N>` (EAL files and the `zcstat` control
    /// socket) so they do not collide.
    pub fn runtime_for_proc(&self, proc_id: u32) -> Result<RuntimeConfig, ConfigError> {
        let err = |key: &str, msg: String| ConfigError {
            file: self.file.clone(),
            line: self
                .source
                .iter()
                .find(|s| s.name == "dpdk")
                .and_then(|s| s.entries.iter().find(|e| e.key == key).map(|e| e.line).or(Some(s.line))),
            msg,
        };
        let lcores: Vec<u32> = (0..64).filter(|b| self.dpdk.lcore_mask >> b & 1 == 1).collect();
        let Some(&cpu) = lcores.get(proc_id as usize) else {
            return Err(err(
                "lcore_mask",
                format!(
                "--proc-id {proc_id}: [dpdk] lcore_mask {:#x} has {} lcore(s), so proc ids 0..={} (one process per lcore)",
                self.dpdk.lcore_mask,
                lcores.len(),
                lcores.len().saturating_sub(1)
            ),
            ));
        };
        let Some(&port) = self.dpdk.port_list.get(proc_id as usize) else {
            return Err(err(
                "port_list",
                format!(
                    "--proc-id {proc_id}: [dpdk] port_list names {} port(s); each zcstack process serves its own \
                 NIC-less port ([portN] + [vdevN]), so {} processes need {} ports in port_list",
                    self.dpdk.port_list.len(),
                    proc_id + 1,
                    proc_id + 1
                ),
            ));
        };
        let mut rt = self.runtime(port)?;
        rt.eal.lcores = Some(format!("0@{cpu}"));
        if proc_id > 0 {
            let prefix = format!("{}-{proc_id}", self.dpdk.file_prefix);
            rt.control = Some(crate::control::control_path(&prefix));
            rt.eal.file_prefix = Some(prefix);
        }
        Ok(rt)
    }

    /// Runtime settings for port `id`, served by `[vdev<id>]` on the lowest
    /// lcore of `lcore_mask` (one stack, one queue: [`crate::Runtime::init`]).
    /// A port without a `[vdevN]` is a probed device (PCI), which this
    /// single-port form does not start: [`Config::deploy_plan`] does.
    pub fn runtime(&self, id: u16) -> Result<RuntimeConfig, ConfigError> {
        if !self.vdevs.iter().any(|v| v.id == id) && self.port(id).is_some() {
            return Err(ConfigError {
                file: self.file.clone(),
                line: self.source.iter().find(|s| s.name == format!("port{id}")).map(|s| s.line),
                msg: format!(
                    "[port{id}] has no [vdev{id}], so it is a device the EAL probes (PCI, narrowed by [dpdk] allow); \
                     the single-port runtime starts virtual devices only: deploy it with Config::deploy_plan"
                ),
            });
        }
        self.runtime_template(id)
    }

    /// [`Config::runtime`] without the virtual-device requirement: for a
    /// probed port `vdev` is empty and the MAC is the device's own.
    pub(crate) fn runtime_template(&self, id: u16) -> Result<RuntimeConfig, ConfigError> {
        let err = |line: Option<usize>, msg: String| ConfigError { file: self.file.clone(), line, msg };
        let port =
            self.port(id).ok_or_else(|| err(self.line_of("dpdk", "port_list"), format!("no [port{id}] section")))?;
        let vdev = self.vdevs.iter().find(|v| v.id == id);
        let cpu = self.dpdk.lcore_mask.trailing_zeros();
        let mut eal = EalArgs::nic_less(&format!("0@{cpu}"));
        eal.no_huge = self.dpdk.no_huge;
        eal.in_memory = !self.dpdk.no_huge;
        eal.no_shconf = self.dpdk.no_huge;
        eal.memory_mb = self.dpdk.memory_mb.or(self.dpdk.no_huge.then_some(512));
        eal.file_prefix = Some(self.dpdk.file_prefix.clone());
        // F-Stack passes its numeric log_level only when non-zero.
        eal.log_level = (self.dpdk.log_level != "0").then(|| self.dpdk.log_level.clone());
        eal.extra = vec!["-n".into(), self.dpdk.channel.to_string()];
        let mut stack = self.engine;
        stack.iface = IfaceConfig {
            mac: EthernetAddress(vdev.and_then(|v| v.mac).unwrap_or([
                0x02,
                0x7a,
                0x63,
                0,
                id as u8,
                port.addr.octets()[3],
            ])),
            addr: port.addr,
            prefix_len: port.prefix_len,
            gateway: port.gateway,
        };
        stack.tcp = self.tcp;
        stack.reassembly_max_fragments = self.reassembly.max_fragments;
        stack.reassembly_datagrams = self.reassembly.max_datagrams;
        stack.reassembly_per_source = (self.reassembly.max_datagrams / 4).max(1);
        stack.zc_min_write = if self.zerocopy.send { self.zerocopy.min_write } else { 0 };
        let rx_mbufs = 8191;
        let queue_size = vdev.map_or(1024, |v| v.queue_size);
        stack.rx_pin_budget = rx_pin_budget(rx_mbufs, port.mtu, queue_size, self.zerocopy.recv_budget);
        stack.rx_copybreak = self.zerocopy.recv_copybreak;
        stack.send_low_water = self.zerocopy.send_low_water;
        stack.send_reserve = self.zerocopy.send_reserve;
        stack.send_share_floor = self.zerocopy.send_share_floor;
        Ok(RuntimeConfig {
            eal,
            vdev: vdev.map(|v| v.devargs()).unwrap_or_default(),
            port: PortConfig {
                promiscuous: self.dpdk.promiscuous,
                tx_desc: queue_size,
                rx_desc: queue_size,
                tx_free_batch: self.dpdk.tx_free_batch,
                ..PortConfig::default()
            },
            rx_mbufs,
            page_array_mb: if self.zerocopy.page_array { self.page_array_mb } else { 16 },
            page_buf_size: self.zerocopy.buf_size,
            tx_checksum_offload: !self.dpdk.tx_csum_offload_skip,
            tso: self.dpdk.tso,
            rx_checksum_offload: true,
            device: EthDeviceConfig {
                tx_mode: if self.zerocopy.send { TxMode::ZeroCopy } else { TxMode::Copy },
                rx_zero_copy: self.zerocopy.recv,
                tx_delay_us: self.dpdk.pkt_tx_delay_us,
                impair: self.impair,
                stage_cycles: self.dpdk.stage_cycles,
                tx_prefetch: self.zerocopy.tx_prefetch,
                ..EthDeviceConfig::default()
            },
            stack,
            mtu: port.mtu,
            idle_sleep_us: self.dpdk.idle_sleep_us,
            pcap: self.pcap.enable.then(|| (self.pcap.savepath.clone(), self.pcap.snaplen, self.pcap.savelen)),
            control: Some(crate::control::control_path(&self.dpdk.file_prefix)),
        })
    }
}

/// Free hugepages of every size on this machine (`/sys/kernel/mm/hugepages/*/free_hugepages`
/// summed), or `None` when the kernel does not say.
/// Whether a DPDK primary process holds the runtime config of `prefix`
/// (the EAL keeps a write lock on `/var/run/dpdk/<prefix>/config` while it
/// runs).
fn primary_running(prefix: &str) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(f) = std::fs::OpenOptions::new().read(true).write(true).open(format!("/var/run/dpdk/{prefix}/config"))
    else {
        return false;
    };
    // SAFETY: a zeroed flock is a valid argument; F_GETLK only reads the
    // lock table and writes `l`, which lives across the call.
    let mut l: libc::flock = unsafe { std::mem::zeroed() };
    l.l_type = libc::F_WRLCK as libc::c_short;
    l.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: f is an open file; `l` is valid for writes.
    let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETLK, &mut l) };
    r == 0 && l.l_type != libc::F_UNLCK as libc::c_short
}

fn free_hugepages() -> Option<u64> {
    let dir = std::fs::read_dir("/sys/kernel/mm/hugepages").ok()?;
    let mut free = None;
    for d in dir.flatten() {
        if let Ok(t) = std::fs::read_to_string(d.path().join("free_hugepages")) {
            *free.get_or_insert(0) += t.trim().parse::<u64>().unwrap_or(0);
        }
    }
    free
}

/// Bytes of RX mbufs (by data room, what each pins) that receive queues
/// may keep: `percent` of a pool of `rx_mbufs` frames for `mtu`, and never
/// more than leaves the RX ring's `rx_desc` descriptors and two bursts their
/// buffers, so ARP, ICMP, SYN, RST and ACK frames are always received.
pub fn rx_pin_budget(rx_mbufs: u32, mtu: usize, rx_desc: u16, percent: usize) -> usize {
    let room = usize::from(crate::mempool::PoolConfig::frames(rx_mbufs, mtu).data_room);
    let reserve = usize::from(rx_desc) + 2 * 32;
    let frames = (rx_mbufs as usize * percent.min(100) / 100).min((rx_mbufs as usize).saturating_sub(reserve));
    frames * room
}

#[cfg(test)]
mod tests;
