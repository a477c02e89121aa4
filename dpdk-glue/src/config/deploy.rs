//! `config.ini` into a [`DeployPlan`]: which lcores run stacks, which
//! ports they share through which queues, and the EAL command line, for
//! each of F-Stack's launch forms.
//!
//! Port ids follow the EAL's enumeration, as in F-Stack: the probed (PCI)
//! devices first, then the `--vdev`s in command-line order. zcstack puts
//! every `[vdevN]` on the command line in ascending N, so `[vdevN]` is
//! port `nb_pci + (its index among the vdevs)`. `nb_pci` is only known
//! after the EAL has probed, so the plan does not guess it: a `[portN]`
//! with a `[vdevN]` is [`PortDevice::Vdev`] (found by its devargs), one
//! without is [`PortDevice::Probed`] (found by port id N; the runtime says
//! which ports the EAL found if there is no port N).
//!
//! PCI: like F-Stack, the EAL probes PCI unless the file has `[vdevN]`
//! sections and no `[dpdk] allow` (F-Stack passes `--no-pci` whenever it
//! has vdevs; zcstack keeps probing when `allow` names devices, so a NIC
//! and virtual devices can be mixed).

use super::{Config, ConfigError};
use crate::plan::{DeployPlan, PortDevice, PortPlan, ProcRole, RssPlan};

impl Config {
    /// The deployment for this process in `role` (see the module docs for
    /// port ids and PCI probing).
    ///
    /// - [`ProcRole::Single`]: one process, a stack on every lcore of
    ///   `lcore_mask` (EAL `--lcores` maps lcore *i* to CPU *i*, main lcore
    ///   the lowest).
    /// - [`ProcRole::Primary`]/[`ProcRole::Secondary`] `{ proc_id, nb_procs }`:
    ///   F-Stack's `--proc-type`/`--proc-id`: this process runs the
    ///   `proc_id`-th lcore of `lcore_mask` only; all share the file prefix
    ///   (DPDK multi-process needs hugepages, so `no_huge = 1` is an error
    ///   here) and `nb_procs` must equal the number of lcores.
    pub fn deploy_plan(&self, role: ProcRole) -> Result<DeployPlan, ConfigError> {
        let err = |section: &str, key: &str, msg: String| ConfigError {
            file: self.file.clone(),
            line: self.line_of(section, key),
            msg,
        };
        let all_lcores: Vec<u32> = (0..64).filter(|b| self.dpdk.lcore_mask >> b & 1 == 1).collect();
        self.check_lcore_lists(&all_lcores)?;
        let (lcores, proc_type) = match role {
            ProcRole::Single => (all_lcores.clone(), None),
            ProcRole::Primary { proc_id, nb_procs } | ProcRole::Secondary { proc_id, nb_procs } => {
                let kind = if matches!(role, ProcRole::Primary { .. }) { "primary" } else { "secondary" };
                if nb_procs as usize != all_lcores.len() || proc_id >= nb_procs {
                    return Err(err(
                        "dpdk",
                        "lcore_mask",
                        format!(
                            "--proc-type={kind} --proc-id={proc_id} of {nb_procs} processes: [dpdk] lcore_mask {:#x} \
                             has {} lcore(s), so one process per lcore with proc ids 0..={}",
                            self.dpdk.lcore_mask,
                            all_lcores.len(),
                            all_lcores.len().saturating_sub(1)
                        ),
                    ));
                }
                if kind == "secondary" && proc_id == 0 {
                    return Err(err(
                        "dpdk",
                        "lcore_mask",
                        "--proc-type=secondary --proc-id=0: proc-id 0 is the primary's (F-Stack: the primary \
                         configures the ports); expected secondaries with --proc-id 1.. and the primary with 0"
                            .to_owned(),
                    ));
                }
                if self.dpdk.no_huge {
                    return Err(err(
                        "dpdk",
                        "no_huge",
                        format!(
                            "--proc-type={kind}: DPDK multi-process shares hugepage memory; expected no_huge = 0 \
                             (hugepages reserved) for primary and secondary processes"
                        ),
                    ));
                }
                (vec![all_lcores[proc_id as usize]], Some(kind))
            }
        };
        // The per-lcore template: pools, devices and engine as one port's runtime.
        let first = *self.dpdk.port_list.first().unwrap_or(&0);
        let template = self.runtime_template(first)?;
        let mut eal = template.eal.clone();
        eal.lcores = Some(lcores.iter().map(|c| format!("{c}@{c}")).collect::<Vec<_>>().join(","));
        eal.main_lcore = lcores.first().copied();
        eal.file_prefix = Some(self.dpdk.file_prefix.clone());
        if let Some(kind) = proc_type {
            // Shared runtime files: no --in-memory/--no-shconf, which would
            // hide the primary, and hugepage files kept so secondaries can map them.
            eal.in_memory = false;
            eal.no_shconf = false;
            eal.huge_unlink = false;
            eal.extra.push(format!("--proc-type={kind}"));
        }
        if let Some(a) = self.dpdk.base_virtaddr {
            eal.extra.push(format!("--base-virtaddr={a:#x}"));
        }
        // `-a` per entry; Eal::init checks each matched a probed device.
        eal.allow = self.dpdk.allow.iter().map(|a| a.eal_arg()).collect();
        eal.vdevs = self.vdevs.iter().map(|v| v.devargs()).collect();
        if matches!(role, ProcRole::Secondary { .. }) {
            // A secondary attaches to the primary's virtual devices through
            // the vdev bus's IPC (and the PMD's own, e.g. net_tap's queue
            // fds); creating them again is the primary's job. Memory is the
            // primary's too (-m is the primary's preallocation).
            eal.vdevs.clear();
            eal.memory_mb = None;
        }
        eal.no_pci = !self.vdevs.is_empty() && self.dpdk.allow.is_empty();
        let mut ports = Vec::new();
        for &id in &self.dpdk.port_list {
            let p = self.port(id).ok_or_else(|| err("dpdk", "port_list", format!("no [port{id}] section")))?;
            let vdev = self.vdevs.iter().find(|v| v.id == id);
            let queues = p.lcore_list.len() as u16;
            let desc = vdev.map_or(1024, |v| v.queue_size);
            if let Some(v) = vdev.filter(|v| v.devargs.is_none() && v.queues < queues) {
                return Err(err(
                    &format!("vdev{}", v.id),
                    "queues",
                    format!(
                        "[vdev{}] queues = {}: expected at least {queues}, one per lcore of [port{id}] lcore_list",
                        v.id, v.queues
                    ),
                ));
            }
            ports.push(PortPlan {
                port_id: id,
                device: match vdev {
                    Some(v) => PortDevice::Vdev { devargs: v.devargs() },
                    None => PortDevice::Probed,
                },
                lcores: p.lcore_list.clone(),
                addr: p.addr,
                prefix_len: p.prefix_len,
                gateway: p.gateway,
                mac: vdev.and_then(|v| v.mac),
                mtu: p.mtu,
                port: crate::port::PortConfig {
                    rx_queues: queues,
                    tx_queues: queues,
                    rx_desc: desc,
                    tx_desc: desc,
                    promiscuous: self.dpdk.promiscuous,
                    mtu: p.mtu as u16,
                    tx_free_batch: self.dpdk.tx_free_batch,
                    ..crate::port::PortConfig::default()
                },
            });
        }
        Ok(DeployPlan {
            eal,
            role,
            lcores,
            all_lcores,
            ports,
            rss: RssPlan {
                symmetric: self.dpdk.symmetric_rss,
                check: self.rss_check.enable,
                tbl: self.rss_check.tbl.clone(),
            },
            numa_on: self.dpdk.numa_on,
            lcore: template,
        })
    }
}

impl Config {
    /// Each lcore of `lcore_mask` runs one stack on one port: it must be in
    /// exactly one `port_list` port's `lcore_list`. Errors name both
    /// `[portN] lcore_list` keys and their lines (or that the list is the
    /// default, every lcore of `lcore_mask`).
    fn check_lcore_lists(&self, all_lcores: &[u32]) -> Result<(), ConfigError> {
        let key_at = |id: u16| match self.source.iter().find(|s| s.name == format!("port{id}")) {
            Some(s) => match s.entries.iter().find(|e| e.key == "lcore_list") {
                Some(e) => (format!("[port{id}] lcore_list = {} (line {})", e.value, e.line), Some(e.line)),
                None => (
                    format!("[port{id}] lcore_list (default: every lcore of lcore_mask; line {})", s.line),
                    Some(s.line),
                ),
            },
            None => (format!("[port{id}] lcore_list (default)"), None),
        };
        for &l in all_lcores {
            let serving: Vec<u16> = self
                .dpdk
                .port_list
                .iter()
                .copied()
                .filter(|&id| self.port(id).is_some_and(|p| p.lcore_list.contains(&l)))
                .collect();
            match serving.as_slice() {
                [_] => {}
                [] => {
                    return Err(ConfigError {
                        file: self.file.clone(),
                        line: self.line_of("dpdk", "lcore_mask"),
                        msg: format!(
                            "[dpdk] lcore_mask {:#x} has lcore {l}, but no port of port_list has it in its \
                             lcore_list; expected every lcore of lcore_mask in one port's lcore_list",
                            self.dpdk.lcore_mask
                        ),
                    })
                }
                [a, b, ..] => {
                    let ((ka, la), (kb, _)) = (key_at(*a), key_at(*b));
                    return Err(ConfigError {
                        file: self.file.clone(),
                        line: la,
                        msg: format!(
                            "lcore {l} is in {ka} and in {kb}; each lcore runs one stack on one port, so expected \
                             disjoint lcore_lists (for example lcore_list=0 and lcore_list=1)"
                        ),
                    });
                }
            }
        }
        Ok(())
    }
}
