//! Readiness events in the style of epoll and mio: register a socket with a
//! [`Token`] and an [`Interest`], then [`crate::Stack::poll_events`] reports it.
//!
//! - [`Trigger::Level`]: a socket is reported on every call while it is ready
//!   (data to read, room to write, a connection to accept, EOF or an error).
//! - [`Trigger::Edge`]: a socket is reported once per change that made or kept
//!   it ready (new data, freed send space, a new connection, EOF, an error),
//!   and not again until the next change — even if the application leaves the
//!   data unread. This is what F-Stack's `EPOLLET` does not do.

use rustc_hash::FxHashMap;

use crate::tcp::SocketHandle;

/// Caller-chosen identifier returned with events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub usize);

/// What readiness a registration asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Interest(u8);

impl Interest {
    /// Data, EOF or a connection to accept.
    pub const READABLE: Interest = Interest(1);
    /// Room in the send buffer.
    pub const WRITABLE: Interest = Interest(2);

    /// Whether readable readiness is asked for.
    pub fn is_readable(self) -> bool {
        self.0 & 1 != 0
    }

    /// Whether writable readiness is asked for.
    pub fn is_writable(self) -> bool {
        self.0 & 2 != 0
    }
}

impl std::ops::BitOr for Interest {
    type Output = Interest;
    fn bitor(self, o: Interest) -> Interest {
        Interest(self.0 | o.0)
    }
}

/// Level- or edge-triggered reporting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Trigger {
    /// Report while ready.
    Level,
    /// Report on changes.
    Edge,
}

/// One readiness report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// The registration's token.
    pub token: Token,
    /// Readable (data, EOF, error, or a pending connection on a listener).
    pub readable: bool,
    /// Writable.
    pub writable: bool,
    /// The peer closed its side, or the connection is gone.
    pub hup: bool,
    /// The connection failed (reset, refused, timed out).
    pub error: bool,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Registration {
    pub token: Token,
    pub interest: Interest,
    pub trigger: Trigger,
}

/// Registered sockets and the level-triggered ones still ready.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    pub regs: FxHashMap<SocketHandle, Registration>,
    /// Level-triggered sockets reported last time and possibly still ready,
    /// plus fresh registrations: looked at on the next call.
    pub recheck: Vec<SocketHandle>,
    /// Sockets already looked at in the current `poll_events` (reused).
    pub seen: rustc_hash::FxHashSet<SocketHandle>,
}
