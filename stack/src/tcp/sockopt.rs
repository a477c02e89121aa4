//! Socket options (`setsockopt`/`getsockopt` for TCP), as plain data.
//!
//! Options that must be known before a socket has an address
//! (`SO_REUSEADDR`) or that accepted connections inherit from their listener
//! (buffers, `TCP_NODELAY`, `SO_KEEPALIVE`, `SO_LINGER`, as in BSD and Linux)
//! are collected in [`SocketOptions`] and passed to `listen`/`connect`; every
//! option can also be set and read on a live socket with [`SockOpt`].

use std::rc::Rc;

use crate::config::TcpConfig;
use crate::time::Duration;

/// One socket option and its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockOpt {
    /// `SO_SNDBUF`: bytes the send queue may hold (at least 1).
    SendBuffer(usize),
    /// `SO_RCVBUF`: bytes the receive queue may hold; bounds the advertised window.
    RecvBuffer(usize),
    /// `TCP_NODELAY`: disable Nagle's algorithm.
    NoDelay(bool),
    /// `SO_KEEPALIVE`: probe an idle peer (idle time, interval and probe count from [`TcpConfig`]).
    KeepAlive(bool),
    /// `SO_LINGER`: `None` closes gracefully in the background (the default);
    /// `Some(0)` makes close abort with a RST; `Some(t)` closes gracefully but
    /// aborts with a RST if the queued data and FIN are not acknowledged within `t`.
    Linger(Option<Duration>),
    /// `SO_REUSEADDR`: allow `listen`/`connect` on a local port that
    /// connections still use (e.g. in TIME-WAIT after a restart); an exact
    /// 4-tuple still in TIME-WAIT is recycled for an active open.
    ReuseAddr(bool),
    /// `TCP_MAXSEG`: set, caps the MSS we offer in our SYN and the segment
    /// size we use (bytes of TCP payload; Linux bounds: 0 clears the cap,
    /// otherwise [`MIN_USER_MSS`]`..=`[`MAX_USER_MSS`], anything else
    /// `InvalidArgument`). Get: the payload bytes a full segment of the
    /// connection carries (the negotiated MSS less the timestamp option, as
    /// Linux's `mss_cache`); before the handshake, the MSS we would offer.
    MaxSeg(u16),
    /// `SO_ERROR` (get only): the connection's pending error, cleared by
    /// reading it (refused, reset, timed out, host unreachable); `None`
    /// when there is none. Setting it is `InvalidArgument`.
    Error(Option<super::TcpError>),
}

/// Smallest `TCP_MAXSEG` accepted (Linux `TCP_MIN_MSS`, 88 bytes).
pub const MIN_USER_MSS: u16 = 88;
/// Largest `TCP_MAXSEG` accepted (Linux `MAX_TCP_WINDOW`, 32,767 bytes).
pub const MAX_USER_MSS: u16 = 32_767;

impl SockOpt {
    /// Checks the value as `setsockopt` does: `TCP_MAXSEG` within Linux's
    /// bounds (or 0), `SO_ERROR` not settable.
    pub fn check(&self) -> Result<(), super::TcpError> {
        match *self {
            SockOpt::MaxSeg(m) if m != 0 && !(MIN_USER_MSS..=MAX_USER_MSS).contains(&m) => {
                Err(super::TcpError::InvalidArgument)
            }
            SockOpt::Error(_) => Err(super::TcpError::InvalidArgument),
            _ => Ok(()),
        }
    }
}

/// The name of an option, to read it back with `get_option`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SockOptName {
    /// `SO_SNDBUF`.
    SendBuffer,
    /// `SO_RCVBUF`.
    RecvBuffer,
    /// `TCP_NODELAY`.
    NoDelay,
    /// `SO_KEEPALIVE`.
    KeepAlive,
    /// `SO_LINGER`.
    Linger,
    /// `SO_REUSEADDR`.
    ReuseAddr,
    /// `TCP_MAXSEG`.
    MaxSeg,
    /// `SO_ERROR` (reading it clears the pending error).
    Error,
}

/// Options a socket starts with; accepted connections inherit their
/// listener's. `Default` takes the buffers and `TCP_NODELAY` from
/// [`TcpConfig`] at the time of use (fields left `None`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SocketOptions {
    /// `SO_SNDBUF`; `None`: [`TcpConfig::send_buffer`].
    pub send_buffer: Option<usize>,
    /// `SO_RCVBUF`; `None`: [`TcpConfig::recv_buffer`].
    pub recv_buffer: Option<usize>,
    /// `TCP_NODELAY`; `None`: [`TcpConfig::nodelay`].
    pub nodelay: Option<bool>,
    /// `SO_KEEPALIVE`.
    pub keepalive: bool,
    /// `SO_LINGER`.
    pub linger: Option<Duration>,
    /// `SO_REUSEADDR`.
    pub reuse_addr: bool,
    /// `TCP_MAXSEG`: cap on the MSS offered and used; `None`: the link's.
    pub max_seg: Option<u16>,
}

impl SocketOptions {
    /// Applies one option (values outside [`SockOpt::check`]'s bounds are
    /// clamped into them; `SO_ERROR` is ignored).
    pub fn set(&mut self, opt: SockOpt) {
        match opt {
            SockOpt::SendBuffer(b) => self.send_buffer = Some(b.max(1)),
            SockOpt::RecvBuffer(b) => self.recv_buffer = Some(b.max(1)),
            SockOpt::NoDelay(on) => self.nodelay = Some(on),
            SockOpt::KeepAlive(on) => self.keepalive = on,
            SockOpt::Linger(l) => self.linger = l,
            SockOpt::ReuseAddr(on) => self.reuse_addr = on,
            SockOpt::MaxSeg(0) => self.max_seg = None,
            SockOpt::MaxSeg(m) => self.max_seg = Some(m.clamp(MIN_USER_MSS, MAX_USER_MSS)),
            SockOpt::Error(_) => {}
        }
    }

    /// Reads one option, filling defaults from `cfg`; `mtu`: the link's, for
    /// the MSS a socket without `TCP_MAXSEG` would offer.
    pub fn get_with_mtu(&self, name: SockOptName, cfg: &TcpConfig, mtu: usize) -> SockOpt {
        match name {
            SockOptName::MaxSeg => {
                let link = super::conn::mss_for_mtu(mtu);
                SockOpt::MaxSeg(self.max_seg.map_or(link, |m| m.min(link)))
            }
            _ => self.get(name, cfg),
        }
    }

    /// Reads one option, filling defaults from `cfg` (`TCP_MAXSEG` without a
    /// value set reads 0 here: see [`SocketOptions::get_with_mtu`]).
    pub fn get(&self, name: SockOptName, cfg: &TcpConfig) -> SockOpt {
        match name {
            SockOptName::SendBuffer => SockOpt::SendBuffer(self.send_buffer.unwrap_or(cfg.send_buffer)),
            SockOptName::RecvBuffer => SockOpt::RecvBuffer(self.recv_buffer.unwrap_or(cfg.recv_buffer)),
            SockOptName::NoDelay => SockOpt::NoDelay(self.nodelay.unwrap_or(cfg.nodelay)),
            SockOptName::KeepAlive => SockOpt::KeepAlive(self.keepalive),
            SockOptName::Linger => SockOpt::Linger(self.linger),
            SockOptName::ReuseAddr => SockOpt::ReuseAddr(self.reuse_addr),
            SockOptName::MaxSeg => SockOpt::MaxSeg(self.max_seg.unwrap_or(0)),
            SockOptName::Error => SockOpt::Error(None),
        }
    }

    /// The configuration a connection with these options starts from:
    /// `base` itself (shared) unless an option changes it.
    pub(crate) fn conn_config(&self, base: &Rc<TcpConfig>) -> Rc<TcpConfig> {
        let cfg = TcpConfig {
            send_buffer: self.send_buffer.map_or(base.send_buffer, |b| b.min(base.send_buffer_max)),
            recv_buffer: self.recv_buffer.map_or(base.recv_buffer, |b| b.min(base.recv_buffer_max)),
            nodelay: self.nodelay.unwrap_or(base.nodelay),
            ..**base
        };
        if cfg == **base {
            base.clone()
        } else {
            Rc::new(cfg)
        }
    }
}
