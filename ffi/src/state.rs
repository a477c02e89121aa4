//! The process's one stack: who may call (the lcore thread), the descriptor
//! table, and the loop (`ff_init`, `ff_run`, `ff_stop_run`).

use std::ffi::{c_char, c_int, c_void, CStr};
use std::net::SocketAddrV4;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::thread::ThreadId;

use dpdk_glue::config::Config;
use dpdk_glue::{PageArray, Runtime, StopHandle};
use rustc_hash::FxHashMap;
use zcstack::tcp::sockopt::SocketOptions;
use zcstack::udp::UdpHandle;
use zcstack::{Instant, SocketHandle, Stack, State};

use crate::errno::set_errno;
use crate::files::Files;
use crate::hooks::{DispatchFn, FfDevice, HookStats};

/// The lowest descriptor `ff_socket` hands out (0-2 look like stdio to C code).
pub const FIRST_FD: usize = 3;
/// The most descriptors open at once (`EMFILE` past it).
pub const MAX_FDS: usize = 65_536;

/// Result of an entry point's body: the value, or a Linux errno.
pub type Res<T> = Result<T, c_int>;

/// The thread that called `ff_init` (the lcore thread).
static OWNER: OnceLock<ThreadId> = OnceLock::new();
/// `ff_stop_run` was called (from any thread).
static STOP: AtomicBool = AtomicBool::new(false);
/// The runtime's stop handle, for `ff_stop_run` from another thread.
static STOPPER: OnceLock<StopHandle> = OnceLock::new();

/// Runs an entry point's body: a panic never crosses into C (it is logged
/// and becomes `errno = EIO`); `Err(e)` sets `errno = e` and returns `fail`.
pub fn entry<T>(name: &'static str, fail: T, f: impl FnOnce() -> Res<T>) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            set_errno(e);
            fail
        }
        Err(_) => {
            tracing::error!(function = name, "panic inside the zcstack C API; returning EIO");
            set_errno(libc::EIO);
            fail
        }
    }
}

pub use crate::slot::with_lib;

/// A TCP socket's life so far.
#[derive(Debug, Clone, Copy)]
pub enum TcpSt {
    /// Made by `ff_socket`, not yet listening or connecting.
    Fresh,
    /// Listening.
    Listen(SocketHandle),
    /// Connecting or connected.
    Conn(SocketHandle),
}

/// What a descriptor names.
#[derive(Debug)]
pub enum Kind {
    /// A TCP socket with the options it was given before it had a handle.
    Tcp { st: TcpSt, opts: SocketOptions, bound: Option<SocketAddrV4> },
    /// A UDP socket (bound on `ff_bind`, or on the first send).
    Udp { h: Option<UdpHandle>, peer: Option<SocketAddrV4> },
    /// An epoll instance.
    Epoll(Box<crate::events::Epoll>),
    /// A kqueue.
    Kqueue(Box<crate::events::Kqueue>),
    /// Placeholder while an event set is being worked on.
    Busy,
}

/// An open file (several descriptors may share it after `ff_dup`).
#[derive(Debug)]
pub struct File {
    /// Descriptors naming it.
    pub refs: u32,
    /// What it is.
    pub kind: Kind,
    /// Edges the engine reported (readable, EOF, error) — edge-triggered
    /// registrations compare against these.
    pub edge_rd: u64,
    /// Edges of writability.
    pub edge_wr: u64,
    /// The event sets watching this file, each with whether this file is
    /// in its [`File::pending`] list now.
    pub watchers: Vec<Watcher>,
    /// An event set's files with an engine report since it last looked
    /// ([`crate::watch::Watch::candidates`]), each once; empty for others.
    pub pending: Vec<u64>,
    /// A TCP connection a read left with nothing for a reader (no data,
    /// EOF, error or peer FIN: [`zcstack::tcp::TcpEngine::read_quiet`]),
    /// and no engine report of its read side since (readable, hung up or
    /// failed): a read filter need not look at it (a level-triggered one's
    /// re-check costs nothing). Cleared by such a report and by
    /// `ff_shutdown`.
    pub rd_quiet: bool,
}

impl File {
    /// A file of `kind` with one descriptor, no edges, watched by no set.
    pub fn new(kind: Kind) -> File {
        File { refs: 1, kind, edge_rd: 0, edge_wr: 0, watchers: Vec::new(), pending: Vec::new(), rd_quiet: false }
    }
}

/// One event set watching a file.
#[derive(Debug, Clone, Copy)]
pub struct Watcher {
    /// The set's file id.
    pub set: u64,
    /// The file is in the set's pending list (so it goes there once).
    pub queued: bool,
}

/// Process-wide state on the lcore thread.
pub struct Lib {
    /// The runtime (EAL, port, page array, engine).
    pub rt: Box<Runtime>,
    /// Descriptor → file id.
    pub fds: Vec<Option<u64>>,
    /// Open files by id (the id is the engine's event token).
    pub files: Files,
    events: Vec<zcstack::Event>,
    /// Live zero-copy chains by their `bsd_mbuf` handle.
    pub zc: FxHashMap<usize, zcstack::FfZcMbuf>,
    /// Where `bsd_mbuf` handles come from (a reserved `PROT_NONE` range).
    pub zc_handles: crate::zc::Handles,
    /// `ff_regist_packet_dispatcher`'s callback.
    pub dispatcher: Option<DispatchFn>,
    /// Counters of the packet hooks.
    pub hooks: HookStats,
    /// Whether the engine made a pass ([`Lib::drive`], or `ff_run`'s own)
    /// since the last event wait returned; a wait makes one first when not
    /// (see `events::wait`).
    pub ran: bool,
    /// `ff_kevent`'s event list, kept between calls.
    pub kevents: Vec<crate::events::Kevent>,
}

impl std::fmt::Debug for Lib {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lib").field("files", &self.files.len()).field("hooks", &self.hooks).finish()
    }
}

impl Lib {
    /// The engine.
    pub fn stack(&mut self) -> &mut Stack<PageArray> {
        &mut self.rt.stack
    }

    /// Engine time now.
    pub fn now(&self) -> Instant {
        self.rt.now()
    }

    /// The file id of descriptor `fd` (`EBADF` if none).
    pub fn file_id(&self, fd: c_int) -> Res<u64> {
        usize::try_from(fd).ok().and_then(|i| self.fds.get(i).copied().flatten()).ok_or(libc::EBADF)
    }

    /// The file of descriptor `fd`.
    pub fn file(&mut self, fd: c_int) -> Res<&mut File> {
        let id = self.file_id(fd)?;
        self.files.get_mut(id).ok_or(libc::EBADF)
    }

    /// A new descriptor for a new file of `kind` (lowest free, `EMFILE` past
    /// [`MAX_FDS`]).
    pub fn open(&mut self, kind: Kind) -> Res<c_int> {
        let fd = self.free_fd()?;
        let id = self.files.insert(File::new(kind));
        self.fds[fd] = Some(id);
        Ok(fd as c_int)
    }

    fn free_fd(&mut self) -> Res<usize> {
        if let Some(i) = self.fds.iter().skip(FIRST_FD).position(Option::is_none) {
            return Ok(i + FIRST_FD);
        }
        if self.fds.len() >= MAX_FDS {
            return Err(libc::EMFILE);
        }
        self.fds.resize(self.fds.len().max(FIRST_FD), None);
        self.fds.push(None);
        Ok(self.fds.len() - 1)
    }

    /// `ff_dup2`-style: makes `new` (or the lowest free if `None`) name `old`'s file.
    pub fn dup(&mut self, old: c_int, new: Option<c_int>) -> Res<c_int> {
        let id = self.file_id(old)?;
        let fd = match new {
            Some(n) if n == old => return Ok(n),
            Some(n) => {
                let n = usize::try_from(n).ok().filter(|&n| n < MAX_FDS).ok_or(libc::EBADF)?;
                if self.fds.get(n).copied().flatten().is_some() {
                    self.close(n as c_int)?;
                }
                if self.fds.len() <= n {
                    self.fds.resize(n + 1, None);
                }
                n
            }
            None => self.free_fd()?,
        };
        self.fds[fd] = Some(id);
        if let Some(f) = self.files.get_mut(id) {
            f.refs += 1;
        }
        Ok(fd as c_int)
    }

    /// Gives the engine's handle of a new connection or listener an event
    /// registration (edge-triggered; the token is the file id).
    pub fn watch(&mut self, id: u64, h: SocketHandle) {
        let (i, t) = (zcstack::Interest::READABLE | zcstack::Interest::WRITABLE, zcstack::Trigger::Edge);
        if let Err(e) = self.rt.stack.register(h, zcstack::Token(id as usize), i, t) {
            tracing::debug!(%e, "register for events");
        }
    }

    /// Closes descriptor `fd`; the file goes when its last descriptor does
    /// (a TCP connection closes gracefully, a listener drops its queue).
    pub fn close(&mut self, fd: c_int) -> Res<()> {
        let id = self.file_id(fd)?;
        self.fds[fd as usize] = None;
        // kqueue knotes belong to the descriptor (FreeBSD's knote_fdclose).
        crate::events::forget_fd_knotes(self, fd);
        let last = self.files.get_mut(id).map(|f| {
            f.refs -= 1;
            f.refs == 0
        });
        if last != Some(true) {
            return Ok(());
        }
        // epoll registrations belong to the file: they go with its last
        // descriptor (Linux: "closing a file descriptor removes it from all
        // epoll sets only if all descriptors of the file are closed").
        crate::events::forget_file_epoll(self, id);
        // Its watchers and (an event set's) pending list go with it; ids
        // of it left in other sets' lists name nothing any more.
        let Some(file) = self.files.remove(id) else { return Ok(()) };
        let now = self.now();
        match file.kind {
            Kind::Tcp { st: TcpSt::Listen(h) | TcpSt::Conn(h), .. } => {
                let _ = self.rt.stack.tcp_close(h, now);
            }
            Kind::Udp { h: Some(h), .. } => {
                let _ = self.rt.stack.udp_close(h);
            }
            Kind::Epoll(e) => e.watch.files().for_each(|f| self.unwatch(id, f)),
            Kind::Kqueue(k) => k.watch.files().for_each(|f| self.unwatch(id, f)),
            _ => {}
        }
        Ok(())
    }

    /// Event set `set` now watches `file`: the engine's reports on `file`
    /// reach it.
    pub fn watch_file(&mut self, set: u64, file: u64) {
        if let Some(f) = self.files.get_mut(file) {
            if !f.watchers.iter().any(|w| w.set == set) {
                f.watchers.push(Watcher { set, queued: false });
            }
        }
    }

    /// Event set `set` no longer watches `file`.
    pub fn unwatch(&mut self, set: u64, file: u64) {
        let Some(f) = self.files.get_mut(file) else { return };
        let Some(i) = f.watchers.iter().position(|w| w.set == set) else { return };
        if f.watchers.swap_remove(i).queued {
            if let Some(s) = self.files.get_mut(set) {
                s.pending.retain(|&p| p != file);
            }
        }
    }

    /// The files with an engine report since event set `set` last looked,
    /// each once (the list is taken: give it back with
    /// [`Lib::recycle_pending`] so its allocation serves again).
    pub fn take_pending(&mut self, set: u64) -> Vec<u64> {
        let Some(s) = self.files.get_mut(set) else { return Vec::new() };
        let list = std::mem::take(&mut s.pending);
        for &file in &list {
            if let Some(f) = self.files.get_mut(file) {
                for w in f.watchers.iter_mut().filter(|w| w.set == set) {
                    w.queued = false;
                }
            }
        }
        list
    }

    /// Gives back the (drained) list [`Lib::take_pending`] returned.
    pub fn recycle_pending(&mut self, set: u64, mut list: Vec<u64>) {
        list.clear();
        if let Some(s) = self.files.get_mut(set) {
            if s.pending.is_empty() {
                s.pending = list;
            }
        }
    }

    /// One pass of the engine: device work (through `[pcap]` and the packet
    /// hooks), timers, then the readiness changes into the files' edge
    /// counters. Returns whether the poll did work.
    pub fn drive(&mut self) -> bool {
        let now = self.now();
        self.poll_at(now)
    }

    /// [`Lib::drive`] at engine time `now`.
    fn poll_at(&mut self, now: Instant) -> bool {
        let (dispatcher, hooks) = (self.dispatcher, &mut self.hooks);
        let did = self.rt.with_device(|stack, dev| match dispatcher {
            // No packet hook: the port as a Rust program's loop polls it.
            None => stack.poll(now, dev),
            Some(_) => stack.poll(now, &mut FfDevice { inner: dev, dispatcher, stats: hooks }),
        });
        self.ran = true;
        self.pump();
        did
    }

    /// Sends what the application queued since the last pass (through
    /// `[pcap]`); whether frames left.
    pub fn push(&mut self) -> bool {
        let now = self.now();
        self.push_at(now)
    }

    /// [`Lib::push`] at engine time `now` (`ff_run` gives its pass's time,
    /// as [`Runtime::run_pushing`] gives a Rust callback: no TSC read).
    pub fn push_at(&mut self, now: Instant) -> bool {
        self.rt.with_device(|stack, dev| stack.push_output(now, dev))
    }

    /// Whether event set `set` has files with engine reports it has not
    /// looked at.
    pub fn has_pending(&self, set: u64) -> bool {
        self.files.get(set).is_some_and(|s| !s.pending.is_empty())
    }

    /// The edge counters of file `id` (read, write): a registration with
    /// `EPOLLET`/`EV_CLEAR` reports again only when one moved. TCP edges
    /// come from the engine's edge-triggered reports; a UDP socket's read
    /// edge is its count of datagrams queued (one edge per arrival, as
    /// Linux wakes an edge-triggered waiter per datagram).
    pub fn edges(&mut self, id: u64) -> (u64, u64) {
        self.candidate(id).map_or((0, 0), |(rd, wr, _)| (rd, wr))
    }

    /// What a wait needs of candidate file `id` from one lookup: its edge
    /// counters ([`Lib::edges`]) and whether a read left it drained
    /// ([`File::rd_quiet`]); `None` if it is closed.
    pub fn candidate(&mut self, id: u64) -> Option<(u64, u64, bool)> {
        let f = self.files.get(id)?;
        Some(match f.kind {
            Kind::Udp { h: Some(h), .. } => {
                let wr = f.edge_wr;
                (self.rt.stack.udp_arrivals(h).unwrap_or(0), wr, false)
            }
            _ => (f.edge_rd, f.edge_wr, f.rd_quiet),
        })
    }

    /// Moves the engine's readiness reports into the edge counters.
    pub fn pump(&mut self) {
        self.events.clear();
        self.rt.stack.poll_events(&mut self.events);
        let files = &mut self.files;
        for ev in &self.events {
            let id = ev.token.0 as u64;
            let Some(f) = files.get_mut(id) else { continue };
            if ev.readable || ev.hup || ev.error {
                f.edge_rd += 1;
                // Something for a reader now (a report of send room alone
                // leaves a drained reader drained).
                f.rd_quiet = false;
            }
            if ev.writable || ev.error {
                f.edge_wr += 1;
            }
            // Each watching set gets the file in its pending list once
            // (the `queued` mark), however many reports come before it looks.
            for j in 0..f.watchers.len() {
                let Some(w) = files.get(id).map(|f| f.watchers[j]).filter(|w| !w.queued) else { continue };
                let Some(s) = files.get_mut(w.set) else { continue };
                s.pending.push(id);
                if let Some(f) = files.get_mut(id) {
                    f.watchers[j].queued = true;
                }
            }
        }
    }

    /// Whether `ff_stop_run` or a signal asked the loop to end.
    pub fn stopping(&self) -> bool {
        STOP.load(Ordering::Relaxed) || self.rt.stop_requested()
    }
}

/// Readiness of one file now.
#[derive(Debug, Default, Clone, Copy)]
pub struct Ready {
    /// Data, EOF, an error or a connection to accept.
    pub rd: bool,
    /// Room to write.
    pub wr: bool,
    /// Both directions are closed (or the connection failed).
    pub hup: bool,
    /// The peer closed its side.
    pub rdhup: bool,
    /// The pending error (Linux errno), 0 if none.
    pub err: c_int,
    /// Bytes readable (a listener: connections waiting).
    pub nread: usize,
    /// Bytes of send space.
    pub nwrite: usize,
}

impl Lib {
    /// The readiness of the file behind `fd` (`None`: not pollable or closed).
    pub fn ready(&mut self, id: u64) -> Option<Ready> {
        let kind = match &self.files.get(id)?.kind {
            Kind::Tcp { st, .. } => *st,
            Kind::Udp { h, .. } => {
                let n = h.and_then(|h| self.rt.stack.udp_recv_queued(h).ok()).unwrap_or(0);
                return Some(Ready { rd: n > 0, wr: true, nread: n, nwrite: 65_507, ..Ready::default() });
            }
            _ => return None,
        };
        let tcp = self.rt.stack.tcp();
        Some(match kind {
            TcpSt::Fresh => Ready { hup: true, wr: true, ..Ready::default() },
            TcpSt::Listen(h) => {
                let n = tcp.accept_queue_len(h).unwrap_or(0);
                Ready { rd: n > 0, nread: n, ..Ready::default() }
            }
            TcpSt::Conn(h) => {
                let Ok(r) = tcp.readiness(h) else {
                    return Some(Ready { rd: true, hup: true, rdhup: true, ..Ready::default() });
                };
                let err = r.error.map(crate::errno::tcp).unwrap_or(0);
                let closed = matches!(r.state, State::Closed | State::Closing | State::LastAck | State::TimeWait);
                Ready {
                    rd: r.readable || err != 0,
                    wr: r.writable || err != 0,
                    hup: closed || err != 0,
                    rdhup: r.peer_closed,
                    err,
                    nread: r.recv_queued,
                    nwrite: r.send_room,
                }
            }
        })
    }
}

/// The options of `ff_init`'s argv: `-c/--conf FILE`, `-t/--proc-type
/// primary|secondary|auto`, `-p/--proc-id N` (`--opt=value` works too).
#[derive(Debug, PartialEq, Eq)]
pub struct InitArgs {
    /// The config file (default `config.ini`, as F-Stack).
    pub conf: String,
    /// The process id (lcore and port index).
    pub proc_id: u32,
    /// `-t`: `primary` or `secondary` (F-Stack's multi-process form: every
    /// process serves its queue of the shared ports); `None` or `auto`:
    /// one process.
    pub proc_type: Option<String>,
}

/// Parses `ff_init`'s arguments (`argv[0]` is skipped); unknown options are
/// an error naming them.
pub fn parse_args(args: &[String]) -> Result<InitArgs, String> {
    let mut out = InitArgs { conf: "config.ini".into(), proc_id: 0, proc_type: None };
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut val = || inline.clone().or_else(|| it.next().cloned()).ok_or(format!("{key} needs a value"));
        match key {
            "-c" | "--conf" => out.conf = val()?,
            "-t" | "--proc-type" => {
                let v = val()?;
                if !matches!(v.as_str(), "primary" | "secondary" | "auto") {
                    return Err(format!("--proc-type {v}: expected primary, secondary or auto"));
                }
                out.proc_type = (v != "auto").then_some(v);
            }
            "-p" | "--proc-id" => {
                let v = val()?;
                out.proc_id = v.parse().map_err(|_| format!("--proc-id {v}: not a number"))?;
            }
            other => return Err(format!("unknown option {other} (expected -c FILE, -t TYPE, -p N)")),
        }
    }
    Ok(out)
}

fn init_logging() {
    // An application that set up its own subscriber keeps it.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

/// `int ff_init(int argc, char * const argv[])`: loads the config and starts
/// the stack on the calling thread. 0, or -1 with `errno`: `EALREADY` when
/// called twice, `EINVAL` for bad arguments or config (the reason is logged
/// and printed to stderr), `ENODEV` when DPDK could not start.
///
/// # Safety
/// `argv` holds `argc` NUL-terminated strings (or is null with `argc == 0`).
#[no_mangle]
pub unsafe extern "C" fn ff_init(argc: c_int, argv: *const *const c_char) -> c_int {
    entry("ff_init", -1, || {
        init_logging();
        if OWNER.get().is_some() {
            tracing::error!("ff_init called twice");
            return Err(libc::EALREADY);
        }
        let n = usize::try_from(argc).map_err(|_| libc::EINVAL)?;
        if n > 0 && argv.is_null() {
            return Err(libc::EFAULT);
        }
        let mut args = Vec::with_capacity(n);
        for i in 0..n {
            // SAFETY: the caller passes argc valid pointers.
            let p = unsafe { *argv.add(i) };
            if p.is_null() {
                break;
            }
            // SAFETY: each argument is a NUL-terminated string.
            args.push(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned());
        }
        let fail = |what: String, e: c_int| {
            eprintln!("ff_init: {what}");
            tracing::error!("ff_init: {what}");
            Err(e)
        };
        let a = match parse_args(&args) {
            Ok(a) => a,
            Err(m) => return fail(m, libc::EINVAL),
        };
        let conf = match Config::load(&a.conf) {
            Ok(c) => c,
            Err(e) => return fail(e.to_string(), libc::EINVAL),
        };
        for n in &conf.report {
            eprintln!("ff_init: {}: not implemented by zcstack: {n}", a.conf);
        }
        // One lcore, process 0: the deployment plan with N = 1 (a virtual
        // or a probed port alike). `-t primary|secondary -p N`: F-Stack's
        // multi-process form on shared ports. `-p N > 0` or several lcores
        // without `-t`: one process per lcore, each with its own virtual
        // port (zcstack's earlier model, kept for such configs).
        let single = a.proc_id == 0 && conf.dpdk.lcore_mask.count_ones() == 1;
        // `-t primary|secondary -p N`: this process serves queue N of the
        // group's shared ports (the primary configures them).
        let nb_procs = conf.dpdk.lcore_mask.count_ones();
        let role = match a.proc_type.as_deref() {
            // F-Stack's examples say `-t primary` even when they run alone.
            Some("primary") if single => Some(dpdk_glue::plan::ProcRole::Single),
            Some("primary") => Some(dpdk_glue::plan::ProcRole::Primary { proc_id: a.proc_id, nb_procs }),
            Some("secondary") => Some(dpdk_glue::plan::ProcRole::Secondary { proc_id: a.proc_id, nb_procs }),
            _ if single => Some(dpdk_glue::plan::ProcRole::Single),
            _ => None,
        };
        let plan = if let Some(role) = role {
            match conf.deploy_plan(role) {
                Ok(p) => Some(p),
                Err(e) => return fail(e.to_string(), libc::EINVAL),
            }
        } else {
            None
        };
        let rc = match plan.is_none().then(|| conf.runtime_for_proc(a.proc_id)).transpose() {
            Ok(r) => r,
            Err(e) => return fail(e.to_string(), libc::EINVAL),
        };
        let zc_handles = crate::zc::Handles::new()?;
        // Only one thread gets past here, and only once.
        if OWNER.set(std::thread::current().id()).is_err() {
            return Err(libc::EALREADY);
        }
        let started = match (&plan, &rc) {
            (Some(p), _) => dpdk_glue::Deployment::init(p).and_then(dpdk_glue::Deployment::into_runtime),
            (None, Some(rc)) => Runtime::init(rc),
            (None, None) => return Err(libc::EINVAL),
        };
        let rt = match started {
            Ok(rt) => rt,
            Err(e) => return fail(conf.startup_error(a.proc_id, &e).to_string(), libc::ENODEV),
        };
        rt.stop_handle().stop_on_signals();
        let _ = STOPPER.set(rt.stop_handle());
        crate::slot::install(Lib {
            rt: Box::new(rt),
            fds: vec![None; FIRST_FD],
            files: Files::default(),
            events: Vec::new(),
            zc: FxHashMap::default(),
            zc_handles,
            dispatcher: None,
            hooks: HookStats::default(),
            ran: false,
            kevents: Vec::new(),
        });
        Ok(0)
    })
}

/// `typedef int (*loop_func_t)(void *arg)`.
pub type LoopFn = unsafe extern "C" fn(*mut c_void) -> c_int;

/// `void ff_run(loop_func_t loop, void *arg)`: drives the stack and calls
/// `loop(arg)` once per pass until `ff_stop_run`, SIGINT or SIGTERM; then
/// resets the connections still open, closes the port and ends the stack
/// (later calls fail with `EPERM`). A null `loop` only drives the stack.
///
/// The passes are [`Runtime::run`]'s own ([`Runtime::pass_start`],
/// [`Runtime::pass_polled`], [`Runtime::pass_end`]), so a C program gets
/// what a Rust one does: `[pcap]` capture, the `zcstat` control socket,
/// usr/sys/idle cycle accounting and `idle_sleep`. A pass counts as the
/// application's work when what it wrote left as frames (F-Stack, too,
/// judges idleness by the stack, not by the loop's return value, which it
/// ignores).
///
/// # Safety
/// `loop` is a valid function taking `arg`.
#[no_mangle]
pub unsafe extern "C" fn ff_run(lp: Option<LoopFn>, arg: *mut c_void) {
    let Some(mut pass) = entry("ff_run", None, || with_lib(|lib| Ok(Some(lib.rt.pass_start())))) else {
        tracing::error!("ff_run: not the lcore thread, or ff_init did not succeed");
        return;
    };
    loop {
        let go = entry("ff_run", false, || {
            with_lib(|lib| {
                if lib.stopping() {
                    return Ok(false);
                }
                let did = lib.poll_at(pass.now());
                lib.rt.pass_polled(&mut pass, did);
                Ok(true)
            })
        });
        if !go {
            break;
        }
        if let Some(f) = lp {
            // SAFETY: the application's loop function, with its argument.
            unsafe { f(arg) };
        }
        entry("ff_run", (), || {
            with_lib(|lib| {
                // Frames sent here are the application's work; pass_end
                // then finds nothing more to push.
                let did_usr = lib.push_at(pass.now());
                lib.rt.pass_end(&mut pass, did_usr);
                Ok(())
            })
        });
    }
    entry("ff_run", (), || {
        let lib = crate::slot::take();
        if let Some(mut lib) = lib {
            let c = lib.rt.cycles();
            match lib.rt.shutdown() {
                Ok((free, total, mbufs)) => tracing::info!(
                    free,
                    total,
                    mbufs,
                    usr_cycles = c.usr,
                    sys_cycles = c.sys,
                    idle_cycles = c.idle,
                    "ff_run: stack shut down"
                ),
                Err(e) => tracing::warn!(%e, "ff_run: shutdown"),
            }
        }
        Ok(())
    });
}

/// `void ff_stop_run(void)`: asks `ff_run` to return after its current pass
/// (any thread may call it).
#[no_mangle]
pub extern "C" fn ff_stop_run() {
    STOP.store(true, Ordering::Relaxed);
    if let Some(s) = STOPPER.get() {
        s.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn init_args_take_fstack_spellings() {
        let a = parse_args(&v(&["prog", "-c", "x.ini", "-t", "primary", "-p", "1"])).unwrap();
        assert_eq!(a, InitArgs { conf: "x.ini".into(), proc_id: 1, proc_type: Some("primary".into()) });
        let a = parse_args(&v(&["prog", "--conf=y.ini", "--proc-type=auto", "--proc-id=0"])).unwrap();
        assert_eq!(a, InitArgs { conf: "y.ini".into(), proc_id: 0, proc_type: None });
        assert!(parse_args(&v(&["prog", "-t", "tertiary"])).unwrap_err().contains("proc-type"));
        assert!(parse_args(&v(&["prog", "-p", "x"])).unwrap_err().contains("not a number"));
        assert!(parse_args(&v(&["prog", "-c"])).unwrap_err().contains("needs a value"));
        assert!(parse_args(&v(&["prog", "--bogus"])).unwrap_err().contains("--bogus"));
    }

    #[test]
    fn calls_before_init_fail_with_eperm_and_panics_become_eio() {
        assert_eq!(with_lib(|_| Ok(())), Err(libc::EPERM));
        let r: c_int = entry("test", -1, || panic!("boom"));
        assert_eq!(r, -1);
        // SAFETY: reading this thread's errno.
        assert_eq!(unsafe { *libc::__errno_location() }, libc::EIO);
    }
}
