//! The adapter from a script's system calls to [`zcstack::Stack`]'s API.
//!
//! Every call the engine cannot express yet answers [`CallResult::Skip`]
//! with the reason ("engine lacks MSG_PEEK"); wiring such a call up is a
//! change to this module only.
//!
//! File descriptors are names: `socket(...) = 3` names the new socket 3.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use zcstack::mem::HeapPages;
use zcstack::tcp::sockopt::{SockOpt, SockOptName, SocketOptions};
use zcstack::{Duration, Instant, SocketHandle, Stack, State, TcpError};

use crate::value::Value;

/// The port `bind` and `connect` use (packetdrill's default).
pub const SCRIPT_PORT: u16 = 8080;

/// An errno name such as `EAGAIN`.
pub type Errno = &'static str;

/// What a call did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallResult {
    /// It returned: a value, or -1 with an errno.
    Done(Result<i64, Errno>),
    /// A blocking socket would block: retry after the next poll.
    Block,
    /// The engine cannot do this yet: skip the script.
    Skip(String),
    /// The script is wrong (unknown descriptor, malformed arguments).
    Bad(String),
}

/// One script socket.
#[derive(Clone, Debug)]
enum Kind {
    /// `socket()` done; options gathered until `listen` or `connect`.
    Fresh { opts: SocketOptions, bound: Option<u16> },
    /// A listener.
    Listener(SocketHandle),
    /// A connection (accepted or connecting).
    Conn(SocketHandle),
}

#[derive(Clone, Debug)]
struct Sock {
    kind: Kind,
    nonblock: bool,
}

/// The script's sockets by descriptor name.
#[derive(Debug, Default)]
pub struct Sockets {
    socks: HashMap<i64, Sock>,
    /// The connection a `%{ tcpi_state }%` check looks at: the last one used.
    pub last_conn: Option<SocketHandle>,
    /// A listener named after the last connection (`listen`), and whether
    /// it is still open: `tcpi_state` reports LISTEN (or CLOSE) for it.
    pub last_listener: Option<(SocketHandle, bool)>,
    /// Whether the script set a socket buffer size (the window is compared then).
    pub buffers_set: bool,
    /// Where `connect` goes.
    pub remote: Option<Ipv4Addr>,
}

/// What `%{ tcpi_state }%` sees: a listener or a connection's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpiState {
    /// A listening socket (Linux `TCP_LISTEN`, FreeBSD `TCPS_LISTEN`).
    Listen,
    /// A connection in this state.
    Conn(State),
}

impl Sockets {
    /// Makes `h` the connection `tcpi_state` checks look at.
    fn use_conn(&mut self, h: SocketHandle) {
        self.last_conn = Some(h);
        self.last_listener = None;
    }

    /// The state of the socket named last (a listener or a connection).
    pub fn last_tcpi(&self, st: &Stack<HeapPages>) -> Option<TcpiState> {
        match self.last_listener {
            Some((_, true)) => Some(TcpiState::Listen),
            Some((_, false)) => Some(TcpiState::Conn(State::Closed)),
            None => self.last_state(st).map(TcpiState::Conn),
        }
    }

    /// No socket is open (none created yet, or all closed).
    pub fn is_empty(&self) -> bool {
        self.socks.is_empty()
    }
}

/// Linux `O_NONBLOCK`.
const O_NONBLOCK: i64 = 0x800;
/// `O_RDWR`.
const O_RDWR: i64 = 2;

/// The numeric value of a symbolic constant (Linux values), if known.
pub fn constant(name: &str) -> Option<i64> {
    Some(match name {
        "O_NONBLOCK" => O_NONBLOCK,
        "O_RDWR" => O_RDWR,
        "O_RDONLY" => 0,
        "O_WRONLY" => 1,
        "POLLIN" => 0x1,
        "POLLPRI" => 0x2,
        "POLLOUT" => 0x4,
        "POLLERR" => 0x8,
        "POLLHUP" => 0x10,
        "POLLNVAL" => 0x20,
        "POLLRDNORM" => 0x40,
        "POLLWRNORM" => 0x100,
        "POLLRDHUP" => 0x2000,
        "MSG_PEEK" => 0x2,
        "MSG_DONTWAIT" => 0x40,
        "MSG_OOB" => 0x1,
        "MSG_WAITALL" => 0x100,
        "MSG_NOSIGNAL" => 0x4000,
        "SHUT_RD" => 0,
        "SHUT_WR" => 1,
        "SHUT_RDWR" => 2,
        "F_GETFL" => 3,
        "F_SETFL" => 4,
        "TCP_ESTABLISHED" => 1,
        _ => return None,
    })
}

/// Evaluates an integer argument (`1`, `O_RDWR|O_NONBLOCK`, `[1]`).
pub fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        Value::Sym(s) => constant(s),
        Value::Or(parts) => parts.iter().try_fold(0, |acc, p| int(p).map(|x| acc | x)),
        Value::List(l) if l.len() == 1 => int(&l[0]),
        _ => None,
    }
}

/// The errno name of an engine error.
pub fn errno(e: TcpError) -> Errno {
    match e {
        TcpError::WouldBlock => "EAGAIN",
        TcpError::InvalidHandle => "EBADF",
        TcpError::AddrInUse => "EADDRINUSE",
        TcpError::NoPorts => "EADDRNOTAVAIL",
        TcpError::RssWrongQueue => "EADDRNOTAVAIL",
        TcpError::Refused => "ECONNREFUSED",
        TcpError::Reset => "ECONNRESET",
        TcpError::TimedOut => "ETIMEDOUT",
        TcpError::Shutdown => "EPIPE",
        TcpError::NotConnected => "ENOTCONN",
        TcpError::InvalidArgument => "EINVAL",
        TcpError::NoBuffers => "ENOBUFS",
        TcpError::HostUnreachable => "EHOSTUNREACH",
    }
}

fn arg<'a>(args: &'a [Value], i: usize, call: &str) -> Result<&'a Value, CallResult> {
    args.get(i).ok_or_else(|| CallResult::Bad(format!("{call}: missing argument {}", i + 1)))
}

fn int_arg(args: &[Value], i: usize, call: &str) -> Result<i64, CallResult> {
    let v = arg(args, i, call)?;
    int(v).ok_or_else(|| CallResult::Bad(format!("{call}: argument {} ({v}) is not a known integer", i + 1)))
}

fn done(r: Result<i64, TcpError>) -> CallResult {
    CallResult::Done(r.map_err(errno))
}

impl Sockets {
    /// No sockets yet; `connect` goes to `remote`.
    pub fn new(remote: Ipv4Addr) -> Self {
        Sockets { remote: Some(remote), ..Default::default() }
    }

    fn get(&self, fd: i64, call: &str) -> Result<&Sock, CallResult> {
        self.socks.get(&fd).ok_or_else(|| CallResult::Bad(format!("{call}: no socket named {fd} in the script")))
    }

    fn conn(&mut self, fd: i64, call: &str) -> Result<(SocketHandle, bool), CallResult> {
        match self.get(fd, call)? {
            Sock { kind: Kind::Conn(h), nonblock } => {
                let r = (*h, *nonblock);
                self.use_conn(r.0);
                Ok(r)
            }
            _ => Err(CallResult::Done(Err("ENOTCONN"))),
        }
    }

    /// Runs `name(args)`; `ret_fd` is the value the script expects (the
    /// name of a new descriptor for `socket`/`accept`); `waited` is how long
    /// a blocking call has waited so far.
    pub fn call(
        &mut self,
        st: &mut Stack<HeapPages>,
        now: Instant,
        name: &str,
        args: &[Value],
        ret_fd: Option<i64>,
        waited: Duration,
    ) -> CallResult {
        match self.dispatch(st, now, name, args, ret_fd, waited) {
            Ok(r) | Err(r) => r,
        }
    }

    fn dispatch(
        &mut self,
        st: &mut Stack<HeapPages>,
        now: Instant,
        name: &str,
        args: &[Value],
        ret_fd: Option<i64>,
        waited: Duration,
    ) -> Result<CallResult, CallResult> {
        let fd = || int_arg(args, 0, name);
        Ok(match name {
            "socket" => {
                let ty = arg(args, 1, name)?;
                if !matches!(ty, Value::Sym(s) if s == "SOCK_STREAM") && *ty != Value::Ellipsis {
                    return Ok(CallResult::Skip(format!("socket type {ty}: only SOCK_STREAM (TCP) is supported")));
                }
                let Some(new) = ret_fd.filter(|n| *n >= 0) else {
                    return Ok(CallResult::Bad("socket: the script must name the new descriptor".into()));
                };
                self.socks.insert(
                    new,
                    Sock { kind: Kind::Fresh { opts: SocketOptions::default(), bound: None }, nonblock: false },
                );
                CallResult::Done(Ok(new))
            }
            "bind" => {
                let fd = fd()?;
                match self.socks.get_mut(&fd) {
                    Some(Sock { kind: Kind::Fresh { bound, .. }, .. }) => {
                        *bound = Some(SCRIPT_PORT);
                        CallResult::Done(Ok(0))
                    }
                    Some(_) => CallResult::Done(Err("EINVAL")),
                    None => CallResult::Bad(format!("bind: no socket named {fd}")),
                }
            }
            "listen" => {
                let fd = fd()?;
                let backlog = int_arg(args, 1, name).unwrap_or(128).max(1) as usize;
                match self.socks.get(&fd).cloned() {
                    Some(Sock { kind: Kind::Fresh { opts, bound }, nonblock }) => {
                        match st.tcp_listen_with(bound.unwrap_or(SCRIPT_PORT), backlog, &opts) {
                            Ok(h) => {
                                self.last_listener = Some((h, true));
                                self.socks.insert(fd, Sock { kind: Kind::Listener(h), nonblock });
                                CallResult::Done(Ok(0))
                            }
                            Err(e) => done(Err(e)),
                        }
                    }
                    Some(Sock { kind: Kind::Listener(_), .. }) => CallResult::Done(Ok(0)),
                    Some(_) => CallResult::Done(Err("EINVAL")),
                    None => CallResult::Bad(format!("listen: no socket named {fd}")),
                }
            }
            "accept" | "accept4" => {
                let fd = fd()?;
                let Sock { kind: Kind::Listener(l), nonblock } = self.get(fd, name)?.clone() else {
                    return Ok(CallResult::Done(Err("EINVAL")));
                };
                match st.tcp_accept(l) {
                    Ok((h, _)) => {
                        let Some(new) = ret_fd.filter(|n| *n >= 0) else {
                            // The script expected a failure; the call succeeded.
                            return Ok(CallResult::Done(Ok(i64::MAX)));
                        };
                        self.socks.insert(new, Sock { kind: Kind::Conn(h), nonblock: false });
                        self.use_conn(h);
                        CallResult::Done(Ok(new))
                    }
                    Err(TcpError::WouldBlock) if !nonblock => CallResult::Block,
                    Err(e) => done(Err(e)),
                }
            }
            "connect" => {
                let fd = fd()?;
                let sock = self.get(fd, name)?.clone();
                match sock.kind {
                    Kind::Fresh { opts, bound } => {
                        let remote = SocketAddrV4::new(self.remote.unwrap_or(Ipv4Addr::new(192, 0, 2, 1)), SCRIPT_PORT);
                        match st.tcp_connect_with(remote, bound.unwrap_or(0), &opts, now) {
                            Ok(h) => {
                                self.socks.insert(fd, Sock { kind: Kind::Conn(h), nonblock: sock.nonblock });
                                self.use_conn(h);
                                if sock.nonblock {
                                    CallResult::Done(Err("EINPROGRESS"))
                                } else {
                                    CallResult::Block
                                }
                            }
                            Err(e) => done(Err(e)),
                        }
                    }
                    Kind::Conn(h) => {
                        if let Some(e) = st.tcp().error(h) {
                            return Ok(done(Err(e)));
                        }
                        match st.tcp_state(h) {
                            Ok(State::SynSent | State::SynReceived) if sock.nonblock => {
                                CallResult::Done(Err("EALREADY"))
                            }
                            Ok(State::SynSent | State::SynReceived) => CallResult::Block,
                            Ok(_) if waited > Duration::ZERO || !sock.nonblock => CallResult::Done(Ok(0)),
                            Ok(_) => CallResult::Done(Err("EISCONN")),
                            Err(e) => done(Err(e)),
                        }
                    }
                    Kind::Listener(_) => CallResult::Done(Err("EINVAL")),
                }
            }
            "close" => {
                let fd = fd()?;
                let sock = self.get(fd, name)?.clone();
                self.socks.remove(&fd);
                if let (Kind::Listener(h), Some((l, open))) = (&sock.kind, self.last_listener.as_mut()) {
                    if *h == *l {
                        *open = false;
                    }
                }
                match sock.kind {
                    Kind::Fresh { .. } => CallResult::Done(Ok(0)),
                    // The fd is the application's: closing it succeeds even
                    // when the engine already let the connection go (reaped
                    // after TIME-WAIT, replaced by a new one on the 4-tuple).
                    Kind::Listener(h) | Kind::Conn(h) => match st.tcp_close(h, now) {
                        Err(TcpError::InvalidHandle) => CallResult::Done(Ok(0)),
                        r => done(r.map(|_| 0)),
                    },
                }
            }
            "shutdown" => {
                let (h, _) = self.conn(fd()?, name)?;
                match int_arg(args, 1, name)? {
                    1 => done(st.tcp_shutdown(h).map(|_| 0)),
                    0 => done(st.tcp_shutdown_read(h).map(|_| 0)),
                    2 => done(st.tcp_shutdown_read(h).and_then(|_| st.tcp_shutdown(h)).map(|_| 0)),
                    n => CallResult::Bad(format!("shutdown: bad how {n}")),
                }
            }
            "read" | "recv" | "recvfrom" => {
                let (h, nonblock) = self.conn(fd()?, name)?;
                let len = int_arg(args, 2, name)?.max(0) as usize;
                let flags = if name == "read" { 0 } else { int_arg(args, 3, name).unwrap_or(0) };
                if flags & 0x1 != 0 {
                    return Ok(CallResult::Skip("engine lacks MSG_OOB (urgent data is delivered in line)".into()));
                }
                let dontwait = nonblock || flags & 0x40 != 0;
                // What a read can return is what is queued: the buffer is
                // never larger (a script may ask for 1e14 bytes), and at
                // least one byte so that "nothing yet" is not end of stream.
                let queued = st.tcp_recv_queued(h).unwrap_or(IO_CHUNK);
                let mut buf = vec![0u8; len.min(queued.max(1))];
                let r = if flags & 0x2 != 0 { st.tcp_peek(h, &mut buf) } else { st.tcp_read(h, &mut buf) };
                match r {
                    Ok(n) => CallResult::Done(Ok(n as i64)),
                    Err(TcpError::WouldBlock) if !dontwait => CallResult::Block,
                    Err(e) => done(Err(e)),
                }
            }
            "write" | "send" | "sendto" => {
                let (h, nonblock) = self.conn(fd()?, name)?;
                let len = int_arg(args, 2, name)?.max(0) as usize;
                let flags = if name == "write" { 0 } else { int_arg(args, 3, name).unwrap_or(0) };
                if flags & 0x1 != 0 {
                    return Ok(CallResult::Skip("engine lacks MSG_OOB sends".into()));
                }
                let dontwait = nonblock || flags & 0x40 != 0;
                if len > 0 && !dontwait && !st.tcp().writable(h) && st.tcp().error(h).is_none() {
                    if let Ok(State::SynSent | State::SynReceived | State::Established | State::CloseWait) =
                        st.tcp_state(h)
                    {
                        return Ok(CallResult::Block);
                    }
                }
                match write_zeros(st, h, len) {
                    Ok(n) => CallResult::Done(Ok(n as i64)),
                    Err(TcpError::WouldBlock) if !dontwait => CallResult::Block,
                    Err(e) => done(Err(e)),
                }
            }
            "fcntl" => {
                let fd = fd()?;
                let cmd = int_arg(args, 1, name)?;
                let sock = self.socks.get_mut(&fd).ok_or_else(|| CallResult::Bad(format!("fcntl: no socket {fd}")))?;
                match cmd {
                    3 => CallResult::Done(Ok(O_RDWR | if sock.nonblock { O_NONBLOCK } else { 0 })),
                    4 => {
                        sock.nonblock = int_arg(args, 2, name)? & O_NONBLOCK != 0;
                        CallResult::Done(Ok(0))
                    }
                    _ => CallResult::Skip(format!("fcntl command {} not supported", args[1])),
                }
            }
            "ioctl" => {
                let (h, _) = self.conn(fd()?, name)?;
                match arg(args, 1, name)? {
                    Value::Sym(s) if s == "FIONREAD" || s == "SIOCINQ" => {}
                    v => return Ok(CallResult::Skip(format!("ioctl {v} not supported"))),
                }
                let n = match st.tcp_recv_queued(h) {
                    Ok(n) => n as i64,
                    Err(e) => return Ok(done(Err(e))),
                };
                let want = arg(args, 2, name)?;
                let want = match want {
                    Value::List(l) if l.len() == 1 => &l[0],
                    v => v,
                };
                match want {
                    Value::Ellipsis => CallResult::Done(Ok(0)),
                    w if int(w) == Some(n) => CallResult::Done(Ok(0)),
                    w => CallResult::Bad(format!("ioctl {}: expected [{w}] got [{n}]", args[1])),
                }
            }
            "getsockopt" => self.getsockopt(st, args)?,
            "setsockopt" => self.setsockopt(st, now, args)?,
            "poll" => self.poll(st, args, waited)?,
            other => CallResult::Bad(format!("unknown system call {other}")),
        })
    }

    fn opt_name(args: &[Value], call: &str) -> Result<String, CallResult> {
        match arg(args, 2, call)? {
            Value::Sym(s) => Ok(s.clone()),
            v => Err(CallResult::Bad(format!("{call}: option name {v} is not a symbol"))),
        }
    }

    fn handle(&self, fd: i64, call: &str) -> Result<Option<SocketHandle>, CallResult> {
        Ok(match self.get(fd, call)?.kind {
            Kind::Fresh { .. } => None,
            Kind::Listener(h) | Kind::Conn(h) => Some(h),
        })
    }

    fn getsockopt(&mut self, st: &mut Stack<HeapPages>, args: &[Value]) -> Result<CallResult, CallResult> {
        let fd = int_arg(args, 0, "getsockopt")?;
        let opt = Self::opt_name(args, "getsockopt")?;
        let h = self.handle(fd, "getsockopt")?;
        let want = arg(args, 3, "getsockopt")?;
        let get = |st: &mut Stack<HeapPages>, n: SockOptName, this: &Self| -> Result<SockOpt, CallResult> {
            match h {
                Some(h) => st.tcp_get_option(h, n).map_err(|e| CallResult::Done(Err(errno(e)))),
                None => match &this.socks[&fd].kind {
                    Kind::Fresh { opts, .. } => Ok(opts.get(n, st.tcp().config())),
                    _ => unreachable!("handle() said fresh"),
                },
            }
        };
        let got: Value = match opt.as_str() {
            "SO_RCVBUF" | "SO_SNDBUF" => {
                let n = if opt == "SO_RCVBUF" { SockOptName::RecvBuffer } else { SockOptName::SendBuffer };
                match get(st, n, self)? {
                    SockOpt::RecvBuffer(b) | SockOpt::SendBuffer(b) => Value::Int(b as i64),
                    _ => Value::Ellipsis,
                }
            }
            "TCP_NODELAY" | "SO_KEEPALIVE" | "SO_REUSEADDR" => {
                let n = match opt.as_str() {
                    "TCP_NODELAY" => SockOptName::NoDelay,
                    "SO_KEEPALIVE" => SockOptName::KeepAlive,
                    _ => SockOptName::ReuseAddr,
                };
                match get(st, n, self)? {
                    SockOpt::NoDelay(b) | SockOpt::KeepAlive(b) | SockOpt::ReuseAddr(b) => Value::Int(b as i64),
                    _ => Value::Ellipsis,
                }
            }
            "SO_ERROR" => match get(st, SockOptName::Error, self)? {
                SockOpt::Error(Some(e)) => Value::Sym(errno(e).into()),
                _ => Value::Int(0),
            },
            "TCP_MAXSEG" => match get(st, SockOptName::MaxSeg, self)? {
                // Linux and FreeBSD both answer 536 (the default MSS) for a
                // socket without a connection or a user MSS.
                SockOpt::MaxSeg(0) => Value::Int(536),
                SockOpt::MaxSeg(m) => Value::Int(i64::from(m)),
                _ => Value::Ellipsis,
            },
            other => return Ok(CallResult::Skip(format!("getsockopt {other} not supported"))),
        };
        let want = match want {
            Value::List(l) if l.len() == 1 => &l[0],
            v => v,
        };
        let ok = match (want, &got) {
            (Value::Ellipsis, _) => true,
            (Value::Sym(a), Value::Sym(b)) => a == b || errno_alias(a) == errno_alias(b),
            (w, g) => int(w).is_some() && int(w) == int(g),
        };
        if ok {
            Ok(CallResult::Done(Ok(0)))
        } else {
            Ok(CallResult::Bad(format!("getsockopt {opt}: expected [{want}] got [{got}]")))
        }
    }

    fn setsockopt(
        &mut self,
        st: &mut Stack<HeapPages>,
        now: Instant,
        args: &[Value],
    ) -> Result<CallResult, CallResult> {
        let fd = int_arg(args, 0, "setsockopt")?;
        let opt = Self::opt_name(args, "setsockopt")?;
        let val = arg(args, 3, "setsockopt")?;
        let n = || int(val).ok_or_else(|| CallResult::Bad(format!("setsockopt {opt}: value {val} is not an integer")));
        let o = match opt.as_str() {
            "SO_RCVBUF" => {
                self.buffers_set = true;
                SockOpt::RecvBuffer(n()?.max(0) as usize)
            }
            "SO_SNDBUF" => {
                self.buffers_set = true;
                SockOpt::SendBuffer(n()?.max(0) as usize)
            }
            "TCP_NODELAY" => SockOpt::NoDelay(n()? != 0),
            "SO_KEEPALIVE" => SockOpt::KeepAlive(n()? != 0),
            "SO_REUSEADDR" | "SO_REUSEPORT" => SockOpt::ReuseAddr(n()? != 0),
            "SO_LINGER" => {
                let Value::Struct(fields) = val else {
                    return Ok(CallResult::Bad("setsockopt SO_LINGER: expected {onoff=.., linger=..}".into()));
                };
                let field = |k: &str, i: usize| {
                    fields.iter().find(|(n, _)| n == k).or(fields.get(i)).and_then(|(_, v)| int(v)).unwrap_or(0)
                };
                let (on, secs) =
                    (field("onoff", 0) != 0 || field("l_onoff", 0) != 0, field("linger", 1).max(field("l_linger", 1)));
                SockOpt::Linger(on.then(|| Duration::from_secs(secs.max(0) as u64)))
            }
            "TCP_MAXSEG" => SockOpt::MaxSeg(n()?.clamp(0, i64::from(u16::MAX)) as u16),
            other => return Ok(CallResult::Skip(format!("setsockopt {other} not supported"))),
        };
        match self.handle(fd, "setsockopt")? {
            Some(h) => Ok(done(st.tcp_set_option(h, o, now).map(|_| 0))),
            None => {
                if let Some(Sock { kind: Kind::Fresh { opts, .. }, .. }) = self.socks.get_mut(&fd) {
                    opts.set(o);
                }
                Ok(CallResult::Done(Ok(0)))
            }
        }
    }

    /// `poll([{fd=F, events=E, revents=R}, ...], n, timeout_ms)`: returns
    /// how many entries have events; checks each `revents`.
    fn poll(&mut self, st: &mut Stack<HeapPages>, args: &[Value], waited: Duration) -> Result<CallResult, CallResult> {
        let Value::List(entries) = arg(args, 0, "poll")? else {
            return Ok(CallResult::Bad("poll: expected [{fd=.., events=.., revents=..}]".into()));
        };
        let timeout = int_arg(args, 2, "poll")?;
        let mut ready = 0i64;
        let mut results = Vec::new();
        for e in entries {
            let Value::Struct(f) = e else {
                return Ok(CallResult::Bad("poll: entries are {fd=.., events=.., revents=..}".into()));
            };
            let get = |k: &str| f.iter().find(|(n, _)| n == k).map(|(_, v)| v);
            let fd = get("fd").and_then(int).ok_or_else(|| CallResult::Bad("poll: entry without fd".into()))?;
            let events = get("events").and_then(int).unwrap_or(0);
            let want = get("revents").cloned();
            let mut rev = 0i64;
            match self.get(fd, "poll")?.kind {
                Kind::Listener(l) => {
                    if st.tcp().acceptable(l) {
                        rev |= 0x1;
                    }
                }
                Kind::Conn(h) => {
                    self.use_conn(h);
                    let tcp = st.tcp();
                    if tcp.readable(h) {
                        rev |= 0x1;
                    }
                    if tcp.writable(h) {
                        rev |= 0x4;
                    }
                    if tcp.error(h).is_some() {
                        rev |= 0x8;
                    }
                    let state = tcp.state(h).unwrap_or(State::Closed);
                    let rd_closed = tcp.hung_up(h) && !matches!(state, State::SynSent | State::SynReceived);
                    if rd_closed {
                        rev |= 0x2000;
                    }
                    if matches!(state, State::Closed | State::TimeWait | State::LastAck | State::Closing)
                        || (rd_closed && matches!(state, State::FinWait2))
                        || tcp.error(h).is_some()
                    {
                        rev |= 0x10;
                    }
                }
                Kind::Fresh { .. } => rev |= 0x4 | 0x10,
            }
            // POLLERR and POLLHUP are reported whether asked for or not.
            let rev = rev & (events | 0x8 | 0x10);
            if rev != 0 {
                ready += 1;
            }
            results.push((want, rev));
        }
        if ready == 0 && (timeout < 0 || waited < Duration::from_millis(timeout as u64)) {
            return Ok(CallResult::Block);
        }
        for (want, rev) in results {
            if let Some(w) = want {
                if w != Value::Ellipsis && int(&w) != Some(rev) {
                    return Ok(CallResult::Bad(format!(
                        "poll: expected revents={w} got revents={}",
                        revents_name(rev)
                    )));
                }
            }
        }
        Ok(CallResult::Done(Ok(ready)))
    }

    /// The state of the connection named last, for `tcpi_state` checks.
    pub fn last_state(&self, st: &Stack<HeapPages>) -> Option<State> {
        self.last_conn.map(|h| st.tcp_state(h).unwrap_or(State::Closed))
    }

    /// The timeout of a blocking `poll` in `args`, if any (ms; negative: none).
    pub fn poll_timeout(args: &[Value]) -> Option<i64> {
        args.get(2).and_then(int)
    }
}

/// The largest piece a script's `write` hands the engine at once, bytes.
const IO_CHUNK: usize = 64 * 1024;

/// Writes `len` zero bytes in pieces of at most [`IO_CHUNK`] and returns
/// how many the engine queued, as a Linux `write` returns a short count once
/// the send buffer is full; an error only when nothing was queued. Ends
/// after the first short piece, so it runs at most send-buffer / `IO_CHUNK`
/// + 1 times whatever `len` is.
fn write_zeros(st: &mut Stack<HeapPages>, h: SocketHandle, len: usize) -> Result<usize, TcpError> {
    static ZEROS: [u8; IO_CHUNK] = [0; IO_CHUNK];
    if len == 0 {
        return st.tcp_write(h, &[]);
    }
    let mut done = 0;
    while done < len {
        let piece = (len - done).min(IO_CHUNK);
        match st.tcp_write(h, &ZEROS[..piece]) {
            Ok(n) => {
                done += n;
                if n < piece {
                    break;
                }
            }
            Err(_) if done > 0 => break,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// `EWOULDBLOCK` is `EAGAIN`.
pub fn errno_alias(e: &str) -> &str {
    if e == "EWOULDBLOCK" {
        "EAGAIN"
    } else {
        e
    }
}

fn revents_name(r: i64) -> String {
    let mut v = Vec::new();
    for (bit, n) in [(0x1, "POLLIN"), (0x4, "POLLOUT"), (0x8, "POLLERR"), (0x10, "POLLHUP"), (0x2000, "POLLRDHUP")] {
        if r & bit != 0 {
            v.push(n);
        }
    }
    if v.is_empty() {
        "0".into()
    } else {
        v.join("|")
    }
}
