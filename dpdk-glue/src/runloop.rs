//! The lcore run loop: one EAL, one port, one page array, one engine.
//!
//! [`Runtime::init`] starts the EAL, creates the port from its devargs,
//! configures it with the offloads zero copy wants (multi-segment TX, TCP
//! checksum) and whatever the port grants, reserves the page array and
//! builds the [`Stack`] on an [`EthDevice`]. [`Runtime::run`] then loops in
//! F-Stack's order — timers and completions, TX drain (held back by
//! `pkt_tx_delay` until a burst fills), RX burst and protocol work, the
//! user's callback (what it wrote is pushed to the device right after it),
//! `idle_sleep` when nothing happened — and accounts
//! usr/sys/idle cycles like F-Stack's `ff_top`. It stops when the callback
//! returns [`Control::Stop`] or another thread calls [`StopHandle::stop`].

use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use zcstack::phy::pcap::PcapDevice;
use zcstack::phy::Device;
use zcstack::{Instant, Stack, StackConfig};

use crate::control::ControlServer;
use crate::loopstages::{LoopStage, LoopStages};
use crate::pcapfile::PcapFiles;

use crate::device::{EthDevice, EthDeviceConfig};
use crate::eal::{rdtsc, Eal, EalArgs};
use crate::error::Result;
use crate::mempool::{Mempool, PoolConfig};
use crate::pages::PageArray;
use crate::port::{Offloads, Port, PortConfig};

/// Everything [`Runtime::init`] needs (plain data; `config.ini` fills it).
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// EAL arguments (the vdev below is added to them).
    pub eal: EalArgs,
    /// The port's devargs, e.g. `net_tap0,iface=zc0` or `net_virtio_user0,path=/tmp/vh.sock`.
    pub vdev: String,
    /// Port queues, descriptors and promiscuous mode (offloads are filled in).
    pub port: PortConfig,
    /// RX mbufs.
    pub rx_mbufs: u32,
    /// Page array size in MiB (`[freebsd.boot] memsz_MB`).
    pub page_array_mb: usize,
    /// Page array buffer size in bytes.
    pub page_buf_size: usize,
    /// Offload TCP checksums when the port can.
    pub tx_checksum_offload: bool,
    /// Let the port verify received TCP/UDP checksums when it can.
    pub rx_checksum_offload: bool,
    /// Request TCP segmentation offload (`[dpdk] tso`): used when the port
    /// grants it together with TCP checksum offload and multi-segment mbufs.
    pub tso: bool,
    /// Device tunables, TX mode included.
    pub device: EthDeviceConfig,
    /// The engine.
    pub stack: StackConfig,
    /// Link MTU.
    pub mtu: usize,
    /// Sleep this long when an iteration did nothing (`idle_sleep`, µs; 0 spins).
    pub idle_sleep_us: u64,
    /// `[pcap]`: capture RX and TX into `(savepath, snaplen, savelen)` files.
    pub pcap: Option<(String, u32, u64)>,
    /// Answer `zcstat` on this Unix socket (see [`crate::control`]); a
    /// socket that cannot be bound is logged and skipped.
    pub control: Option<std::path::PathBuf>,
}

/// The port configuration `cfg` asks for: its queues and descriptors, and
/// the offloads zero copy and the checksum/TSO settings want (the port
/// grants what it has).
pub(crate) fn wanted_port_config(cfg: &RuntimeConfig) -> PortConfig {
    let mut want = Offloads::TX_MULTI_SEGS;
    if cfg.tx_checksum_offload {
        want = want | Offloads::TX_TCP_CKSUM;
        if cfg.tso {
            // IPv4 checksum offload too, where there is one: DPDK's TSO
            // contract has the port fill each segment's IP checksum.
            want = want | Offloads::TX_TCP_TSO | Offloads::TX_IPV4_CKSUM;
        }
    }
    let mtu = u16::try_from(cfg.mtu).unwrap_or(u16::MAX);
    // Checksums the port verifies on receive need no second pass in the
    // engine (and spare vhost its software checksum of every frame).
    let rx_want =
        if cfg.rx_checksum_offload { Offloads::RX_TCP_CKSUM | Offloads::RX_UDP_CKSUM } else { Offloads::NONE };
    PortConfig {
        tx_offloads: cfg.port.tx_offloads | want,
        rx_offloads: cfg.port.rx_offloads | rx_want,
        mtu,
        ..cfg.port.clone()
    }
}

/// What the loop callback asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Control {
    /// Keep looping.
    Continue,
    /// Leave [`Runtime::run`].
    Stop,
}

/// Cycle accounting of the loop (F-Stack's usr/sys/idle).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopCycles {
    /// Cycles in the application callback.
    pub usr: u64,
    /// Cycles in the stack and device (polls that did work).
    pub sys: u64,
    /// Cycles in iterations where nothing happened.
    pub idle: u64,
    /// Loop iterations.
    pub loops: u64,
    /// Iterations that did work.
    pub busy_loops: u64,
}

/// Where a loop driven piece by piece is ([`Runtime::pass_start`]).
#[derive(Clone, Copy, Debug)]
pub struct LoopPass {
    /// TSC at the start of the pass.
    t_start: u64,
    /// TSC at the end of its stack poll (`t_start` if the poll did nothing).
    t_sys: u64,
    /// The stack poll did work.
    did_sys: bool,
    now: Instant,
    /// Engine stage cycles at the pass's start (stage accounting only).
    eng0: u64,
    /// RX-burst cycles at the pass's start (stage accounting only).
    rx0: u64,
    /// Engine stage cycles at the end of the poll (stage accounting only).
    eng1: u64,
}

impl LoopPass {
    /// Engine time of this pass (read once at its start).
    pub fn now(&self) -> Instant {
        self.now
    }
}

/// Hands the application's output to the device in the middle of a
/// [`Runtime::run_pushing`] callback (through the `[pcap]` writer when
/// capture is on).
pub struct Pusher<'a> {
    dev: &'a mut EthDevice,
    pcap: Option<&'a mut (PcapFiles, usize)>,
    /// The runtime's TSC origin and µs per tick (32.32), for [`Pusher::now`].
    t0: u64,
    us_per_tick_q32: u64,
}

impl Pusher<'_> {
    /// Engine time at this moment, read from the TSC (the callback's `now`
    /// is the pass's start): for timing one connection's exchange inside a
    /// pass that serves many. One TSC read and a multiply.
    #[inline]
    pub fn now(&self) -> Instant {
        let dt = rdtsc().wrapping_sub(self.t0);
        Instant::from_micros(((u128::from(dt) * u128::from(self.us_per_tick_q32)) >> 32) as u64)
    }

    /// Builds the segments the application's writes since the last push
    /// produced (Nagle and delayed ACKs apply as in [`Stack::poll`]) and
    /// transmits them now ([`Stack::push_output`]). Returns whether a frame
    /// went to the device. Costs a TX burst per call that has output: call
    /// it per reply written, not per connection looked at.
    pub fn push(&mut self, stack: &mut Stack<PageArray>, now: Instant) -> bool {
        match self.pcap.as_deref_mut() {
            None => stack.push_output(now, &mut *self.dev),
            Some((files, snaplen)) => stack.push_output(now, &mut PcapDevice::new(&mut *self.dev, files, *snaplen)),
        }
    }
}

impl std::fmt::Debug for Pusher<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pusher").field("pcap", &self.pcap.is_some()).finish()
    }
}

/// Stops a running loop from another thread, or on SIGINT/SIGTERM
/// ([`StopHandle::stop_on_signals`]).
#[derive(Clone, Debug, Default)]
pub struct StopHandle(Arc<StopFlags>);

/// What a [`StopHandle`] and its clones share.
#[derive(Debug, Default)]
struct StopFlags {
    /// [`StopHandle::stop`] was called.
    stop: AtomicBool,
    /// A SIGINT/SIGTERM stops this loop too.
    on_signals: AtomicBool,
}

impl StopHandle {
    /// Asks the loop to end after its current iteration.
    pub fn stop(&self) {
        self.0.stop.store(true, Ordering::Relaxed);
    }
    /// Whether a stop was asked for (by [`StopHandle::stop`], or by a
    /// signal after [`StopHandle::stop_on_signals`]). Two relaxed loads:
    /// the loop asks once per pass.
    #[inline]
    pub fn stopped(&self) -> bool {
        self.0.stop.load(Ordering::Relaxed)
            || (self.0.on_signals.load(Ordering::Relaxed) && SIGNALLED.load(Ordering::Relaxed))
    }
}

static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::Relaxed);
}

impl StopHandle {
    /// Makes SIGINT and SIGTERM stop the loop (after its current iteration)
    /// instead of killing the process, so ports close and counters print.
    /// The handler sets a flag that [`StopHandle::stopped`] reads: no
    /// watcher thread, so nothing wakes up periodically on the lcore's CPU
    /// (a thread polling the flag every 20 ms inherited the lcore's
    /// affinity and preempted the loop 50 times a second).
    pub fn stop_on_signals(&self) {
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: the handler only stores to an atomic (async-signal-safe).
            unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
        }
        self.0.on_signals.store(true, Ordering::Relaxed);
    }
}

/// One lcore's stack on one port.
pub struct Runtime {
    /// The engine.
    pub stack: ManuallyDrop<Stack<PageArray>>,
    /// Its device.
    pub dev: ManuallyDrop<EthDevice>,
    cycles: LoopCycles,
    stop: StopHandle,
    pcap: Option<(PcapFiles, usize)>,
    tsc_hz: u64,
    /// Microseconds per TSC tick, as a 32.32 fixed-point number.
    us_per_tick_q32: u64,
    t0: u64,
    idle_sleep_us: u64,
    control: Option<ControlServer>,
    /// TSC of the next control-socket check.
    next_control: u64,
    /// The loop's own stages, when `[dpdk] stage_cycles` is on.
    stages: Option<Box<LoopStages>>,
    _rx_pool: ManuallyDrop<Arc<Mempool>>,
    eal: ManuallyDrop<Arc<Eal>>,
    /// This runtime's place among the lcores of its deployment.
    lcore_index: usize,
    nb_lcores: usize,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // SAFETY: each field is taken or dropped exactly once, here, and never
        // used again. Order: the stack (its queues release received mbufs and
        // pages), the device (closes the port, frees its pools), the RX pool,
        // and last the EAL — unless the application still holds zero-copy
        // receive views, whose mbufs would then be freed into a torn-down EAL:
        // in that case the pools and the EAL are leaked, with a warning.
        unsafe {
            ManuallyDrop::drop(&mut self.stack);
            let held = self.dev.rx_mbufs_held();
            ManuallyDrop::drop(&mut self.dev);
            if held > 0 {
                tracing::warn!(held, "Runtime dropped while zero-copy receive views are alive; leaking the EAL");
                return;
            }
            ManuallyDrop::drop(&mut self._rx_pool);
            ManuallyDrop::drop(&mut self.eal);
        }
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime").field("dev", &self.dev).field("cycles", &self.cycles).finish()
    }
}

impl Runtime {
    /// Starts EAL, port, page array and engine.
    pub fn init(cfg: &RuntimeConfig) -> Result<Runtime> {
        let eal = Eal::init(&cfg.eal)?;
        let rx_pool = Arc::new(Mempool::new(&eal, "zc_rx", &PoolConfig::frames(cfg.rx_mbufs, cfg.mtu))?);
        let mut port = Port::create_vdev(&eal, &cfg.vdev)?;
        let pcfg = wanted_port_config(cfg);
        let granted = port.configure(&pcfg, rx_pool.clone())?;
        port.start()?;
        let pages = PageArray::new(&eal, "zc_pages", cfg.page_array_mb << 20, cfg.page_buf_size)?;
        let dev = EthDevice::new(&eal, port, granted, &pages, cfg.mtu, cfg.device.clone())?;
        tracing::info!(vdev = %cfg.vdev, mode = ?dev.tx_mode(), granted = ?granted, "port ready");
        Runtime::assemble(Arc::new(eal), rx_pool, dev, pages, cfg, (0, 1))
    }

    /// A runtime on a device built by the caller (e.g. one end of the
    /// in-process ring pair in tests): the EAL, the port's RX pool, the
    /// device and its page array; `cfg` gives the engine, `[pcap]`, the
    /// control socket, `idle_sleep` and `stage_cycles` (its EAL and port
    /// fields are not used).
    pub fn on_device(
        eal: Arc<Eal>,
        rx_pool: Arc<Mempool>,
        dev: EthDevice,
        pages: PageArray,
        cfg: &RuntimeConfig,
    ) -> Result<Runtime> {
        Runtime::assemble(eal, rx_pool, dev, pages, cfg, (0, 1))
    }

    /// The runtime of lcore `lcore.0` of `lcore.1` from its parts (the
    /// device on its queue, its page array and RX pool): builds the stack,
    /// `[pcap]` files and control socket from `cfg`.
    pub(crate) fn assemble(
        eal: Arc<Eal>,
        rx_pool: Arc<Mempool>,
        dev: EthDevice,
        pages: PageArray,
        cfg: &RuntimeConfig,
        lcore: (usize, usize),
    ) -> Result<Runtime> {
        let tsc_hz = eal.tsc_hz().max(1);
        let mut stack = Stack::new(cfg.stack, pages, cfg.mtu);
        stack.announce();
        if cfg.device.stage_cycles {
            stack.set_cycle_counter(Some(rdtsc));
        }
        let pcap = match &cfg.pcap {
            Some((dir, snaplen, savelen)) => Some((
                PcapFiles::create(dir, crate::eal::lcore_id(), *savelen, *snaplen)
                    .map_err(|e| crate::error::Error::Pcap { dir: dir.clone(), reason: e.to_string() })?,
                *snaplen as usize,
            )),
            None => None,
        };
        Ok(Runtime {
            stack: ManuallyDrop::new(stack),
            dev: ManuallyDrop::new(dev),
            cycles: LoopCycles::default(),
            stop: StopHandle::default(),
            pcap,
            tsc_hz,
            us_per_tick_q32: ((1_000_000u128 << 32) / u128::from(tsc_hz)) as u64,
            t0: rdtsc(),
            idle_sleep_us: cfg.idle_sleep_us,
            control: cfg.control.as_deref().and_then(|p| match ControlServer::bind(p) {
                Ok(c) => {
                    tracing::info!(path = %p.display(), "zcstat control socket");
                    Some(c)
                }
                Err(e) => {
                    tracing::warn!(path = %p.display(), %e, "no zcstat control socket");
                    None
                }
            }),
            next_control: 0,
            stages: cfg.device.stage_cycles.then(Box::default),
            _rx_pool: ManuallyDrop::new(rx_pool),
            eal: ManuallyDrop::new(eal),
            lcore_index: lcore.0,
            nb_lcores: lcore.1,
        })
    }

    /// This runtime's index among the lcores of its deployment (0 for
    /// [`Runtime::init`]); it serves queue `lcore_index` of its port.
    pub fn lcore_index(&self) -> usize {
        self.lcore_index
    }

    /// Lcores in the deployment, each with its own runtime (1 for [`Runtime::init`]).
    pub fn nb_lcores(&self) -> usize {
        self.nb_lcores
    }

    /// The EAL.
    pub fn eal(&self) -> &Eal {
        &self.eal
    }

    /// Engine time now (from the TSC).
    pub fn now(&self) -> Instant {
        self.time_at(rdtsc())
    }

    /// Engine time at TSC value `tsc`.
    #[inline]
    fn time_at(&self, tsc: u64) -> Instant {
        let dt = tsc.wrapping_sub(self.t0);
        // ticks * (2^32 * 10^6 / hz) >> 32: one multiply, no division.
        Instant::from_micros(((u128::from(dt) * u128::from(self.us_per_tick_q32)) >> 32) as u64)
    }

    /// A handle that stops [`Runtime::run`] from elsewhere.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Whether a stop was asked for (through a [`StopHandle`] or a signal
    /// it listens to); for a loop driven piece by piece, once per pass (no
    /// handle cloned).
    #[inline]
    pub fn stop_requested(&self) -> bool {
        self.stop.stopped()
    }

    /// Pcap records written and lost, when `[pcap]` is on.
    pub fn pcap_counts(&self) -> Option<(u64, u64)> {
        self.pcap.as_ref().map(|(f, _)| (f.records, f.errors))
    }

    /// Cycle accounting so far.
    pub fn cycles(&self) -> LoopCycles {
        self.cycles
    }

    /// TSC ticks per second.
    pub fn tsc_hz(&self) -> u64 {
        self.tsc_hz
    }

    /// The loop's stage cycles (RX/TX burst and completion drain from the
    /// device, app callback, control work, loop overhead, busy-pass
    /// histogram), or `None` when `[dpdk] stage_cycles` is off. The
    /// engine's stages are [`Stack::stage_cycles`].
    pub fn loop_stages(&self) -> Option<LoopStages> {
        let mut s = *self.stages.as_deref()?;
        let [rx, tx, drain, turnaround] = self.dev.stage_counts();
        s.set(LoopStage::RxBurst, rx);
        s.set(LoopStage::TxBurst, tx);
        s.set(LoopStage::Drain, drain);
        s.set(LoopStage::Turnaround, turnaround);
        Some(s)
    }

    /// Zeroes every stage count: the loop's, the device's and the engine's.
    pub fn reset_stages(&mut self) {
        if let Some(s) = self.stages.as_deref_mut() {
            *s = LoopStages::default();
        }
        self.dev.reset_stage_counts();
        self.stack.reset_stage_cycles();
    }

    /// Runs the loop until `f` returns [`Control::Stop`] or the stop handle
    /// fires. `f` gets the stack and the current time; it returns whether it
    /// did work (for idle accounting) with the control decision. What `f`
    /// wrote goes to the device when it returns.
    pub fn run(&mut self, mut f: impl FnMut(&mut Stack<PageArray>, Instant) -> (bool, Control)) {
        self.run_pushing(|stack, _, now| f(stack, now));
    }

    /// As [`Runtime::run`], and `f` may also hand what it wrote so far to
    /// the device before it returns ([`Pusher::push`]): a reply written
    /// early in a pass that serves many connections leaves at once instead
    /// of waiting for the rest of the pass, so the peer works on it while
    /// this side serves the others. The pushes' cycles count as the
    /// callback's (usr).
    pub fn run_pushing(
        &mut self,
        mut f: impl FnMut(&mut Stack<PageArray>, &mut Pusher<'_>, Instant) -> (bool, Control),
    ) {
        let mut pass = self.pass_start();
        while !self.stop.stopped() {
            let now = pass.now();
            let did_sys = self.with_device(|stack, dev| stack.poll(now, dev));
            self.pass_polled(&mut pass, did_sys);
            let mut pusher = Pusher {
                dev: &mut self.dev,
                pcap: self.pcap.as_mut(),
                t0: self.t0,
                us_per_tick_q32: self.us_per_tick_q32,
            };
            let (did_usr, ctl) = f(&mut self.stack, &mut pusher, now);
            self.pass_end(&mut pass, did_usr);
            if ctl == Control::Stop {
                break;
            }
        }
    }

    /// The first pass of a loop driven piece by piece (for a caller that
    /// cannot hand [`Runtime::run`] a closure, like the C API's `ff_run`,
    /// whose callback re-enters the runtime): per pass, poll the stack
    /// through [`Runtime::with_device`], report it with
    /// [`Runtime::pass_polled`], run the application, then
    /// [`Runtime::pass_end`]. [`Runtime::run`] is exactly this loop.
    pub fn pass_start(&mut self) -> LoopPass {
        let t = rdtsc();
        let mut pass =
            LoopPass { t_start: t, t_sys: t, did_sys: false, now: self.time_at(t), eng0: 0, rx0: 0, eng1: 0 };
        self.pass_meter_start(&mut pass);
        pass
    }

    /// With stage accounting: engine and RX-burst cycles at the pass's
    /// start, to leave them out of the loop's own stages.
    #[inline]
    fn pass_meter_start(&self, pass: &mut LoopPass) {
        if self.stages.is_some() {
            pass.eng0 = self.engine_cycles();
            pass.rx0 = self.dev.stage_counts()[0].cycles;
        }
    }

    /// Marks the end of the pass's stack poll (`did_sys`: it did work).
    pub fn pass_polled(&mut self, pass: &mut LoopPass, did_sys: bool) {
        // One TSC read ends a pass and starts the next, so an idle pass
        // reads the TSC once. A pass whose poll found nothing counts that
        // (short) poll with the callback.
        let metered = self.stages.is_some();
        pass.did_sys = did_sys;
        pass.t_sys = if did_sys || metered { rdtsc() } else { pass.t_start };
        if metered {
            pass.eng1 = self.engine_cycles();
        }
        if did_sys {
            self.cycles.busy_loops += 1;
            self.cycles.sys += pass.t_sys - pass.t_start;
        }
    }

    /// Ends the pass after the application ran (`did_usr`: it did work):
    /// pushes what it wrote to the device, accounts usr/sys/idle cycles,
    /// sleeps `idle_sleep` µs when the whole pass was idle, answers
    /// `zcstat` every [`crate::control::ACCEPT_EVERY_MS`] ms (in an idle
    /// pass when one comes within that time, else forced), charges the
    /// loop's stages when `[dpdk] stage_cycles` is on, and starts the next
    /// pass.
    pub fn pass_end(&mut self, pass: &mut LoopPass, did_usr: bool) {
        let did_sys = pass.did_sys;
        let metered = self.stages.is_some();
        let t_usr = rdtsc();
        // The callback less the engine stages it ran (events).
        let app =
            if metered { (t_usr - pass.t_sys).saturating_sub(self.engine_cycles().wrapping_sub(pass.eng1)) } else { 0 };
        let busy = did_sys || did_usr;
        if metered && busy {
            self.meter(LoopStage::App, app);
        }
        let mut t_end = t_usr;
        self.cycles.loops += 1;
        if busy {
            if !did_sys {
                self.cycles.busy_loops += 1;
                // An idle poll counts with the callback.
                self.cycles.usr += t_usr - pass.t_start;
            } else {
                self.cycles.usr += t_usr - pass.t_sys;
            }
            if did_usr {
                // What the callback wrote leaves now, not a pass later.
                let now = pass.now;
                self.with_device(|stack, dev| stack.push_output(now, dev));
                t_end = rdtsc();
                self.cycles.sys += t_end - t_usr;
            }
        } else {
            self.cycles.idle += t_usr - pass.t_start;
            if self.idle_sleep_us > 0 {
                std::thread::sleep(std::time::Duration::from_micros(self.idle_sleep_us));
                t_end = rdtsc();
                self.cycles.idle += t_end - t_usr;
            }
        }
        let mut control = 0;
        if self.control.is_some()
            && t_end >= self.next_control
            && (!busy || t_end - self.next_control >= self.control_grace())
        {
            // Periodic, not per pass: in a pass that did nothing when
            // one comes within the grace period, else forced.
            self.serve_control();
            let every_ms = if self.control.as_ref().is_some_and(ControlServer::busy) {
                1
            } else {
                crate::control::ACCEPT_EVERY_MS
            };
            self.next_control = t_end + self.tsc_hz / 1000 * every_ms;
            let t = rdtsc();
            self.cycles.sys += t - t_end;
            control = t - t_end;
            self.meter(LoopStage::Control, control);
            t_end = t;
        }
        if metered && busy {
            self.meter_pass(t_end - pass.t_start, pass.eng0, pass.rx0, app + control);
        }
        pass.t_start = t_end;
        pass.t_sys = t_end;
        pass.did_sys = false;
        pass.now = self.time_at(t_end);
        self.pass_meter_start(pass);
    }

    /// TSC ticks a due control check waits for an idle pass before it runs
    /// in a busy one anyway (one check interval).
    fn control_grace(&self) -> u64 {
        self.tsc_hz / 1000 * crate::control::ACCEPT_EVERY_MS
    }

    /// Engine stage cycles so far (all stages; they do not overlap).
    #[inline]
    fn engine_cycles(&self) -> u64 {
        self.stack.stage_cycles().total_cycles()
    }

    /// Charges `cycles` to the loop's `stage` (nothing when off).
    #[inline]
    fn meter(&mut self, stage: LoopStage, cycles: u64) {
        if let Some(s) = self.stages.as_deref_mut() {
            s.add(stage, cycles);
        }
    }

    /// Records a busy pass of `pass` cycles: the histogram, and as loop
    /// overhead what no stage took — less the engine's stages since
    /// `eng0` (the callback's included), the RX bursts since `rx0`, and
    /// `own`: the callback's own cycles and the control work.
    fn meter_pass(&mut self, pass: u64, eng0: u64, rx0: u64, own: u64) {
        let engine = self.engine_cycles().wrapping_sub(eng0);
        let rx = self.dev.stage_counts()[0].cycles.wrapping_sub(rx0);
        let overhead = pass.saturating_sub(engine).saturating_sub(rx).saturating_sub(own);
        if let Some(s) = self.stages.as_deref_mut() {
            s.add_pass(pass);
            s.add(LoopStage::Overhead, overhead);
        }
    }

    /// Calls `f` with the stack and the device, wrapped by the `[pcap]`
    /// writer when capture is on (every frame to and from the port goes
    /// through here, so it is captured).
    pub fn with_device<R>(&mut self, f: impl FnOnce(&mut Stack<PageArray>, &mut dyn Device) -> R) -> R {
        match self.pcap.as_mut() {
            None => f(&mut self.stack, &mut *self.dev),
            Some((files, snaplen)) => f(&mut self.stack, &mut PcapDevice::new(&mut *self.dev, files, *snaplen)),
        }
    }

    /// Answers pending `zcstat` requests.
    fn serve_control(&mut self) {
        let Some(mut c) = self.control.take() else { return };
        c.serve(&mut |req| self.answer(req));
        self.control = Some(c);
    }

    /// The reply to one control request: `stats [max_sockets]` gives
    /// [`Runtime::snapshot`].
    fn answer(&self, req: &str) -> String {
        let mut words = req.split_whitespace();
        match (words.next(), words.next().map(str::parse::<usize>), words.next()) {
            (Some("stats"), None, None) => self.snapshot(1000).to_string(),
            (Some("stats"), Some(Ok(n)), None) => self.snapshot(n).to_string(),
            _ => serde_json::json!({ "error": format!("unknown request {req:?}; expected: stats [max_sockets]") })
                .to_string(),
        }
    }

    /// Everything `zcstat` shows, as JSON: loop cycles, port and device
    /// counters, engine counters, and up to `max_sockets` rows of the TCP
    /// socket table.
    pub fn snapshot(&self, max_sockets: usize) -> serde_json::Value {
        crate::control::snapshot(self, max_sockets)
    }

    /// Aborts the connections still open (their peers get RSTs), closes the
    /// port (completing every in-flight frame), lets the engine release
    /// their pages, and reports whether every page and device mbuf is back:
    /// `(pages_free, pages_total, device_mbufs_in_use)`.
    pub fn shutdown(&mut self) -> Result<(usize, usize, u32)> {
        let aborted = self.stack.abort_all();
        if aborted > 0 {
            tracing::info!(aborted, "connections still open at shutdown were reset");
            let now = self.now();
            self.stack.poll(now, &mut *self.dev);
        }
        use zcstack::mem::PageMemory;
        if let Some((files, _)) = self.pcap.as_mut() {
            if let Err(e) = files.flush() {
                tracing::warn!(%e, "flushing the pcap file failed");
            }
        }
        self.dev.close_port()?;
        let now = self.now();
        // Completions of everything the port held come back here; what the
        // port never took is dropped (counted) so no page stays referenced.
        self.stack.poll(now, &mut *self.dev);
        let dropped = self.stack.discard_unsent();
        if dropped > 0 {
            tracing::info!(dropped, "frames still queued at shutdown were dropped");
        }
        Ok((self.stack.mem().free_count(), self.stack.mem().capacity(), self.dev.mbufs_in_use()))
    }
}
