//! One process, one stack per lcore, sharing ports through their queues
//! (issue 12, item 2; F-Stack's single-process multi-lcore launch).
//!
//! [`Deployment::init`] starts the EAL, configures each port of the
//! [`DeployPlan`] once with one RX/TX queue pair per serving lcore (queue
//! `q` for `PortPlan::lcores[q]`), each RX queue with its own mempool; with
//! more than one queue and a device that computes IPv4 RSS hashes it
//! programs Toeplitz with F-Stack's key (or the symmetric key) and a RETA
//! spreading the device's `reta_size` entries over the queues, and it
//! creates the software steering rings ([`crate::steer`]).
//! [`Deployment::launch`] then runs the application on every lcore at once,
//! each with its own [`Runtime`]: page array (`memsz_MB`), TX pools,
//! timers, control socket, and a `Stack` told its RSS place
//! (`Stack::set_rss`) so outbound connects pick ports whose replies come
//! back to it.
//!
//! Multi-process form (F-Stack's `--proc-type`/`--proc-id`,
//! [`ProcRole::Primary`]/[`ProcRole::Secondary`]): every process runs one
//! lcore's stack on its queue (`PortPlan::lcores[q]` serves queue `q`). The
//! primary configures and starts the port with one queue pair per lcore of
//! the group, creates the RX pools `zc_rx_p{port}_{q}`, the steering rings
//! and the layout memzone `zc_layout_p{port}` (queue count, RSS key and
//! RETA, granted offloads); a secondary looks all of these up by name, opens
//! the started port without configuring it ([`Port::attach`]) and builds
//! its own page array and TX pools. Steering between processes goes through
//! the same rings: only mbufs of the shared RX pools travel (received
//! frames and ARP copies made from the RX pool), never a TX mbuf, whose
//! external buffer points into one process's page array. A secondary
//! leaving leaves the port running; the primary waits (bounded) for the
//! secondaries' queue handles before it stops and closes the port, so start
//! the primary first and stop it last.

mod layout;
mod shared;

use std::sync::Arc;

use zcstack::rss::{steer_frame, Reta, RssLocal, RssSpec, RssTblPorts, Steer, Toeplitz};

pub use shared::QueueHandle;
use shared::SharedPort;

use crate::device::EthDevice;
use crate::eal::Eal;
use crate::error::{Error, Result};
use crate::mempool::{Mempool, PoolConfig};
use crate::pages::PageArray;
use crate::plan::{DeployPlan, PortDevice, PortPlan, ProcRole};
use crate::port::{GrantedOffloads, Port, RssWanted};
use crate::runloop::{wanted_port_config, Runtime, RuntimeConfig};
use crate::steer::{Dest, SteerRing, Steering};

/// Slots per steering ring (frames waiting from one lcore to another).
const STEER_RING_SIZE: u32 = 2048;
/// RETA size used for classification when the device has no RSS table.
const SOFT_RETA_SIZE: usize = 128;
/// Local ports `[rss_check] rss_tbl` entries are computed over: the
/// engine's ephemeral range (Linux's default `ip_local_port_range`).
const TBL_PORTS: std::ops::RangeInclusive<u16> = 32768..=60999;

/// One configured, started port and what its lcores need.
struct DeployedPort {
    plan: PortPlan,
    shared: Arc<SharedPort>,
    granted: GrantedOffloads,
    spec: RssSpec,
    /// `rx_pools[q]`: queue `q`'s pool (looked up from the primary in a secondary).
    rx_pools: Vec<Arc<Mempool>>,
    /// `rings[from][to]`, `None` on the diagonal; empty with one queue.
    rings: crate::steer::RingMatrix,
    /// NUMA socket for this process's memory of the port (`numa_on`).
    socket: Option<i32>,
}

/// EAL, ports, RSS and steering rings of a one-process, many-lcore
/// deployment. Drop it after [`Deployment::launch`] returned.
pub struct Deployment {
    plan: DeployPlan,
    ports: Vec<DeployedPort>,
    launched: bool,
    eal: Arc<Eal>,
}

impl std::fmt::Debug for Deployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployment").field("lcores", &self.plan.lcores).field("ports", &self.ports.len()).finish()
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for p in &self.ports {
            p.shared.close_if_unused();
        }
        // Rings and pools go with `ports`, then the EAL (its last Arc).
        self.ports.clear();
    }
}

fn limit(port: &Port, what: String) -> Error {
    Error::PortLimit { port: port.id(), name: port.name().to_owned(), what }
}

impl Deployment {
    /// Starts the EAL and configures every port of `plan` (see the module
    /// docs). Errors name the numbers: a device with fewer queues than the
    /// lcores serving it, an lcore the EAL did not enable, a plan with no
    /// or several ports (one stack serves one port).
    pub fn init(plan: &DeployPlan) -> Result<Deployment> {
        if plan.ports.is_empty() {
            return Err(Error::PortLimit {
                port: 0,
                name: String::new(),
                what: "the plan has no ports (port_list is empty)".to_owned(),
            });
        }
        // Each lcore runs one stack on one port: its lcore must be in exactly
        // one port's lcore_list (`Config::deploy_plan` names the keys).
        for l in &plan.lcores {
            let serving: Vec<u16> = plan.ports.iter().filter(|p| p.lcores.contains(l)).map(|p| p.port_id).collect();
            if serving.len() != 1 {
                return Err(Error::PortLimit {
                    port: serving.first().copied().unwrap_or(plan.ports[0].port_id),
                    name: String::new(),
                    what: format!(
                        "lcore {l} serves ports {serving:?}; each lcore runs one stack on exactly one port (give the \
                         ports disjoint lcore_lists)"
                    ),
                });
            }
        }
        let eal = match Eal::init(&plan.eal) {
            Err(e @ Error::EalInit { .. }) if matches!(plan.role, ProcRole::Secondary { .. }) => {
                return Err(Error::NoPrimary {
                    prefix: plan.eal.file_prefix.clone().unwrap_or_default(),
                    cause: e.to_string(),
                })
            }
            r => Arc::new(r?),
        };
        let mut enabled = eal.worker_lcores();
        enabled.push(eal.main_lcore());
        if let Some(l) = plan.lcores.iter().find(|l| !enabled.contains(l)) {
            return Err(Error::Launch { lcore: *l, errno: crate::error::RteErrno(libc::ENODEV) });
        }
        // `allow` entries were checked by Eal::init; say so once more for
        // the deployment's own list, in case the EAL args were edited.
        crate::ports::check_allow(&eal, &plan.eal.allow)?;
        let mut ports = Vec::new();
        for pp in &plan.ports {
            let dp = match plan.role {
                ProcRole::Secondary { .. } => Deployment::port_attach(&eal, plan, pp)?,
                ProcRole::Single | ProcRole::Primary { .. } => Deployment::port_up(&eal, plan, pp)?,
            };
            if !plan.rss.check && pp.lcores.len() > 1 {
                tracing::info!(
                    port = pp.port_id,
                    "[rss_check] enable=0 with {} lcores on the port: the check stays on (software steering sends a \
                     reply to the lcore its hash names, so a connect must pick a port whose replies come back to it)",
                    pp.lcores.len()
                );
            }
            ports.push(dp);
        }
        Ok(Deployment { plan: plan.clone(), ports, launched: false, eal })
    }

    /// Opens the port `pp` as a DPDK secondary: the primary configured and
    /// started it; its pools, rings and layout are looked up by name.
    fn port_attach(eal: &Eal, plan: &DeployPlan, pp: &PortPlan) -> Result<DeployedPort> {
        let name = match &pp.device {
            PortDevice::Vdev { devargs } => devargs.split(',').next().unwrap_or_default().to_owned(),
            PortDevice::Probed => match crate::ports::listing(pp.port_id) {
                Some(l) => l.name,
                None => {
                    return Err(Error::PortNotProbed {
                        port: pp.port_id,
                        found: crate::ports::describe(&crate::ports::list(eal)),
                    })
                }
            },
        };
        let mut port = Port::attach(eal, &name)?;
        if let PortDevice::Vdev { devargs } = &pp.device {
            // As the primary knows them (the payload prefetch policy reads
            // them: a vhost-vdpa backend keeps it off).
            port.note_vdev_args(devargs.split_once(',').map_or("", |(_, a)| a));
        }
        let (lay, group) = layout::read(eal, port.id())?;
        let differ = layout::Agreement::of(plan, pp).differences(&lay.agree, pp.port_id);
        if !differ.is_empty() {
            return Err(Error::Layout {
                name: layout::layout_name(port.id()),
                why: format!(
                    "this secondary's config differs from the primary's: {} (every process of the group reads \
                     the same config.ini)",
                    differ.join(", ")
                ),
            });
        }
        let n = u16::try_from(pp.lcores.len()).unwrap_or(u16::MAX);
        if lay.queues != n {
            return Err(limit(
                &port,
                format!(
                    "the primary configured {} queue(s) but this process's config has {n} lcore(s) serving the port \
                     (same config.ini for every process of the group)",
                    lay.queues
                ),
            ));
        }
        let rx_pools = (0..n)
            .map(|q| Mempool::lookup(eal, &format!("zc_rx_p{}_{q}", port.id())).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        let rings = crate::steer::ring_matrix(n, |from, to| {
            SteerRing::lookup(eal, &crate::steer::ring_name(port.id(), from, to))
        })?;
        let socket = crate::ports::placement_socket(&port, plan.numa_on);
        tracing::info!(port = port.id(), queues = n, "attached to the primary's port");
        Ok(DeployedPort {
            plan: pp.clone(),
            shared: SharedPort::in_group(port, Some(Arc::new(group))),
            granted: lay.granted,
            spec: lay.spec,
            rx_pools,
            rings,
            socket,
        })
    }

    fn port_up(eal: &Eal, plan: &DeployPlan, pp: &PortPlan) -> Result<DeployedPort> {
        let mut port = match &pp.device {
            // `Config::deploy_plan` puts the vdevs on the EAL command line
            // (port ids in F-Stack's order): attach to the port the EAL made.
            PortDevice::Vdev { devargs } if plan.eal.vdevs.contains(devargs) => {
                let (name, args) = devargs.split_once(',').unwrap_or((devargs, ""));
                let mut port = Port::by_name(eal, name)?;
                port.note_vdev_args(args);
                port
            }
            PortDevice::Vdev { devargs } => Port::create_vdev(eal, devargs)?,
            PortDevice::Probed => Port::by_id(eal, pp.port_id)?,
        };
        let info = port.info()?;
        let n = u16::try_from(pp.lcores.len()).unwrap_or(u16::MAX);
        if n == 0 || n > info.max_rx_queues || n > info.max_tx_queues {
            return Err(limit(
                &port,
                format!(
                    "{n} lcore(s) serve this port (one RX/TX queue pair each) but the device ({}) has {} RX and {} TX \
                     queues",
                    info.driver, info.max_rx_queues, info.max_tx_queues
                ),
            ));
        }
        let socket = crate::ports::placement_socket(&port, plan.numa_on);
        let lc = &plan.lcore;
        let mtu = pp.mtu;
        let rx_pools = (0..n)
            .map(|q| {
                let cfg = PoolConfig::frames(lc.rx_mbufs, mtu).on_socket(socket);
                Mempool::new(eal, &format!("zc_rx_p{}_{q}", port.id()), &cfg).map(Arc::new)
            })
            .collect::<Result<Vec<_>>>()?;
        let base = RuntimeConfig { port: pp.port.clone(), mtu, ..lc.clone() };
        let pcfg = crate::port::PortConfig { rx_queues: n, tx_queues: n, ..wanted_port_config(&base) };
        let key: &[u8] =
            if plan.rss.symmetric { &zcstack::rss::SYMMETRIC_RSS_KEY } else { &zcstack::rss::FSTACK_RSS_KEY };
        let want = RssWanted { key: key.to_vec() };
        let (granted, rss) = port.configure_queues(&pcfg, &rx_pools, Some(&want))?;
        port.start()?;
        let mut reta = Reta::spread(if info.reta_size > 0 { usize::from(info.reta_size) } else { SOFT_RETA_SIZE }, n);
        let toeplitz = Toeplitz::new(rss.as_ref().map_or(key, |r| &r.key[..]));
        if rss.is_some() && info.reta_size > 0 {
            if let Err(e) = port.set_reta(reta.entries()) {
                tracing::warn!(%e, "RETA update refused; software steering sorts frames by the computed table");
                reta = Reta::spread(SOFT_RETA_SIZE, n);
            }
        }
        tracing::info!(port = port.id(), queues = n, rss = ?rss.as_ref().map(|r| r.hash_types),
            reta = reta.entries().len(), granted = ?granted, "port ready for {n} lcore(s)");
        let s = socket.unwrap_or(crate::ffi::SOCKET_ID_ANY);
        let rings = crate::steer::ring_matrix(n, |from, to| {
            SteerRing::create(eal, &crate::steer::ring_name(port.id(), from, to), STEER_RING_SIZE, s)
        })?;
        let spec = RssSpec { toeplitz, reta };
        let shared = if matches!(plan.role, ProcRole::Primary { .. }) {
            let lay = layout::Layout { queues: n, spec: spec.clone(), granted, agree: layout::Agreement::of(plan, pp) };
            let group = layout::publish(eal, port.id(), &lay)?;
            SharedPort::in_group(port, Some(Arc::new(group)))
        } else {
            SharedPort::new(port)
        };
        Ok(DeployedPort { plan: pp.clone(), shared, granted, spec, rx_pools, rings, socket })
    }

    /// The EAL.
    pub fn eal(&self) -> &Eal {
        &self.eal
    }

    /// Lcores this process runs stacks on, in launch order.
    pub fn lcores(&self) -> &[u32] {
        &self.plan.lcores
    }

    /// The RSS spec lcores classify by (key and table of port `i` of the plan).
    pub fn rss_spec(&self, i: usize) -> Option<&RssSpec> {
        self.ports.get(i).map(|p| &p.spec)
    }

    /// Runs `app` on every lcore of this process at once (the calling
    /// thread, which must be the EAL's main lcore, runs its own share),
    /// each with its own [`Runtime`]; returns their results in lcore order.
    /// Runtimes the application did not shut down are dropped on their
    /// lcore (their port queue is given back; the port closes when the
    /// last lcore leaves). A deployment launches once.
    pub fn launch<T: Send>(&mut self, app: impl Fn(&mut Runtime) -> T + Sync) -> Result<Vec<T>> {
        if self.launched {
            return Err(Error::PortNotStarted { port: 0, name: String::new(), op: "launch twice" });
        }
        self.launched = true;
        let main = self.eal.main_lcore();
        if crate::eal::lcore_id() != main {
            return Err(Error::Launch { lcore: crate::eal::lcore_id(), errno: crate::error::RteErrno(libc::EPERM) });
        }
        let n = self.plan.lcores.len();
        let mut kits = Vec::with_capacity(n);
        for i in 0..n {
            kits.push(self.kit(i)?);
        }
        let app: &(dyn Fn(&mut Runtime) -> T + Sync) = &app;
        let mut results: Vec<Option<Result<T>>> = (0..n).map(|_| None).collect();
        let mut jobs = Vec::new();
        let mut main_kit = None;
        for (i, kit) in kits.into_iter().enumerate() {
            let lcore = self.plan.lcores[i];
            if lcore == main {
                main_kit = Some((i, kit));
                continue;
            }
            let task = LcoreTask { app: app as *const (dyn Fn(&mut Runtime) -> T + Sync), out: &mut results[i] };
            let job: Box<dyn FnOnce() + Send + '_> = Box::new(move || task.run(kit));
            // SAFETY: only the lifetime is erased: every launched job is
            // joined below before this function returns, on every path, so
            // `app` and `results` outlive the job that uses them.
            let job: Box<dyn FnOnce() + Send + 'static> = unsafe { std::mem::transmute(job) };
            match self.eal.launch(lcore, job) {
                Ok(j) => jobs.push((i, j)),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        if let Some((i, kit)) = main_kit {
            // A panic here must not unwind past the joins below.
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| kit.start().map(|mut rt| app(&mut rt))));
            results[i] =
                Some(r.unwrap_or(Err(Error::Launch { lcore: main, errno: crate::error::RteErrno(libc::EFAULT) })));
        }
        for (i, j) in jobs {
            if j.join().is_none() {
                results[i] = Some(Err(Error::Launch {
                    lcore: self.plan.lcores[i],
                    errno: crate::error::RteErrno(libc::EFAULT),
                }));
            }
        }
        results
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.unwrap_or(Err(Error::Launch { lcore: self.plan.lcores[i], errno: crate::error::RteErrno(0) }))
            })
            .collect()
    }

    /// The runtime of a one-lcore plan, built on the calling thread (the
    /// EAL's main lcore), for callers that drive the loop themselves (the
    /// FFI's `ff_init`/`ff_run`). The port stays open while the runtime
    /// holds its queue; it closes when the runtime is dropped. Errors: a
    /// plan with more than one lcore, or a deployment already launched.
    pub fn into_runtime(mut self) -> Result<Runtime> {
        if self.launched || self.plan.lcores.len() != 1 {
            return Err(Error::PortLimit {
                port: self.ports.first().map_or(0, |p| p.plan.port_id),
                name: String::new(),
                what: format!(
                    "one runtime for the calling thread needs a plan with one lcore, not {:?}",
                    self.plan.lcores
                ),
            });
        }
        self.launched = true;
        let main = self.eal.main_lcore();
        if crate::eal::lcore_id() != main {
            return Err(Error::Launch { lcore: crate::eal::lcore_id(), errno: crate::error::RteErrno(libc::EPERM) });
        }
        self.kit(0)?.start()
    }

    /// What lcore `i` needs to build its runtime.
    fn kit(&self, i: usize) -> Result<LcoreKit> {
        let lcore = self.plan.lcores[i];
        // The one port whose lcore_list has this lcore (checked in init).
        let p = self.ports.iter().find(|p| p.plan.lcores.contains(&lcore)).unwrap_or(&self.ports[0]);
        let n = p.plan.lcores.len();
        // Queue q of the port is served by its q-th lcore.
        let qi = p.plan.lcores.iter().position(|&l| l == lcore).unwrap_or(i);
        let q = u16::try_from(qi).unwrap_or(u16::MAX);
        let mut cfg = self.plan.lcore.clone();
        cfg.mtu = p.plan.mtu;
        cfg.stack.iface.addr = p.plan.addr;
        cfg.stack.iface.prefix_len = p.plan.prefix_len;
        cfg.stack.iface.gateway = p.plan.gateway;
        if let Some(m) = p.plan.mac {
            cfg.stack.iface.mac = zcstack::wire::EthernetAddress(m);
        }
        cfg.device.socket = p.socket;
        // One control socket per stack: by lcore index in a one-process
        // deployment (several ports may each have a queue 0), by queue in a
        // multi-process group (each process runs one lcore).
        let ci = if matches!(self.plan.role, ProcRole::Single) { i } else { qi };
        cfg.control = cfg.control.as_deref().map(|c| crate::control::lcore_control_path(c, ci));
        let steer = (n > 1).then(|| {
            let spec = p.spec.clone();
            let classify: crate::steer::Classify = Arc::new(move |f: &[u8]| match steer_frame(&spec, f) {
                Steer::Queue(q) => Dest::Queue(q),
                Steer::AllQueues => Dest::All,
                Steer::Here => Dest::Here,
            });
            (p.rings.clone(), classify)
        });
        let rss = (n > 1).then(|| RssLocal {
            spec: p.spec.clone(),
            queue: q,
            tbl: self
                .plan
                .rss
                .tbl
                .iter()
                .filter(|e| e.port_id == p.plan.port_id)
                .map(|e| {
                    if e.sports.is_empty() {
                        // F-Stack pre-computes these at start-up from the port's key and RETA.
                        let remote = std::net::SocketAddrV4::new(e.daddr, e.dport);
                        RssLocal::tbl_entry(&p.spec, q, e.saddr, remote, TBL_PORTS)
                    } else {
                        RssTblPorts { remote: e.daddr, remote_port: e.dport, local: e.saddr, ports: e.sports.clone() }
                    }
                })
                .collect(),
        });
        Ok(LcoreKit {
            index: qi,
            nb: n,
            socket: p.socket,
            port_id: p.plan.port_id,
            eal: self.eal.clone(),
            handle: p.shared.handle(q)?,
            rx_pool: p.rx_pools[qi].clone(),
            granted: p.granted,
            cfg,
            steer,
            rss,
        })
    }
}

/// Everything one lcore builds its [`Runtime`] from (moved to its thread).
struct LcoreKit {
    /// The queue this lcore serves (its index in the port's lcore_list).
    index: usize,
    /// Queues of the port (lcores of the whole group).
    nb: usize,
    socket: Option<i32>,
    port_id: u16,
    eal: Arc<Eal>,
    handle: QueueHandle,
    rx_pool: Arc<Mempool>,
    granted: GrantedOffloads,
    cfg: RuntimeConfig,
    steer: Option<(crate::steer::RingMatrix, crate::steer::Classify)>,
    rss: Option<RssLocal>,
}

impl LcoreKit {
    /// Builds the runtime on the calling (lcore) thread: page array, device
    /// on its queue pair with steering, stack with its RSS place.
    fn start(self) -> Result<Runtime> {
        let q = u16::try_from(self.index).unwrap_or(u16::MAX);
        let cfg = &self.cfg;
        // Named by port and queue: unique across the processes of a group.
        // A secondary's carries its pid, so the process that replaces it
        // after a crash neither collides with nor leaks it (see `claim`).
        let name = if self.eal.is_secondary() {
            layout::secondary_pages_name(self.port_id, self.index, std::process::id())
        } else {
            format!("zc_pages_p{}_{}", self.port_id, self.index)
        };
        let pages =
            PageArray::new_on_socket(&self.eal, &name, cfg.page_array_mb << 20, cfg.page_buf_size, self.socket)?;
        let steering = self.steer.map(|(rings, classify)| Steering::new(q, &rings, classify, self.rx_pool.clone()));
        let dev =
            EthDevice::on_queue(&self.eal, self.handle, self.granted, &pages, cfg.mtu, cfg.device.clone(), steering)?;
        let mut rt = Runtime::assemble(self.eal, self.rx_pool, dev, pages, cfg, (self.index, self.nb))?;
        rt.stack.set_rss(self.rss);
        tracing::info!(lcore = crate::eal::lcore_id(), index = self.index, "lcore stack ready");
        Ok(rt)
    }
}

/// A job for one worker lcore: the application and where its result goes.
struct LcoreTask<'a, T> {
    app: *const (dyn Fn(&mut Runtime) -> T + Sync + 'a),
    out: *mut Option<Result<T>>,
}

// SAFETY: `app` is Sync (shared by reference across lcores), `out` points to
// one slot written only by this job's lcore and read after it is joined,
// and T is Send.
unsafe impl<T: Send> Send for LcoreTask<'_, T> {}

impl<T> LcoreTask<'_, T> {
    fn run(self, kit: LcoreKit) {
        // SAFETY: see Deployment::launch: both pointers stay valid until the
        // job is joined, and nobody else touches `out` meanwhile.
        unsafe {
            let r = kit.start().map(|mut rt| (*self.app)(&mut rt));
            *self.out = Some(r);
        }
    }
}
