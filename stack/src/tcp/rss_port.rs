//! The RSS check on outbound connects (F-Stack's `ff_rss_check`): with
//! several stacks sharing a port, a connection's local port must make the
//! NIC put the peer's replies on the connecting stack's queue.

use std::net::SocketAddrV4;

use tracing::debug;

use super::{TcpEngine, TcpError, EPHEMERAL};
use crate::rss::RssLocal;

/// The engine's RSS state: this stack's place in the port's RSS (none: the
/// port has one queue, every port is fine) and what the check did.
#[derive(Clone, Debug, Default)]
pub(crate) struct RssPorts {
    local: Option<Box<RssLocal>>,
    /// Candidate local ports examined by the RSS-aware choice.
    pub(crate) tried: u64,
    /// Explicit local ports refused because replies would land elsewhere.
    pub(crate) refused: u64,
}

impl TcpEngine {
    /// Sets (or clears) this stack's RSS place; connects made after it obey it.
    pub fn set_rss(&mut self, rss: Option<RssLocal>) {
        self.rss.local = rss.map(Box::new);
    }

    /// This stack's RSS place, if set.
    pub fn rss(&self) -> Option<&RssLocal> {
        self.rss.local.as_deref()
    }

    /// Takes the RSS counters (ports tried, explicit ports refused) since
    /// the last call.
    pub fn take_rss_counts(&mut self) -> (u64, u64) {
        (std::mem::take(&mut self.rss.tried), std::mem::take(&mut self.rss.refused))
    }

    /// The local port for a connect to `remote`: `local_port` if nonzero
    /// (refused with [`TcpError::RssWrongQueue`] when RSS is set and the
    /// peer's replies to it would reach another queue), else an ephemeral
    /// port free for this 4-tuple; with RSS set, the `rss_tbl` ports first,
    /// then one bounded pass over the ephemeral range from the engine's
    /// keyed rotating start, keeping only ports whose replies land on this
    /// stack's queue ([`TcpError::NoPorts`] when none is left).
    pub(crate) fn choose_local_port(&mut self, remote: SocketAddrV4, local_port: u16) -> Result<u16, TcpError> {
        let Some(rss) = self.rss.local.as_deref() else {
            return if local_port != 0 { Ok(local_port) } else { self.pick_port(remote) };
        };
        if local_port != 0 {
            if rss.owns(SocketAddrV4::new(self.local_ip, local_port), remote) {
                return Ok(local_port);
            }
            self.rss.refused += 1;
            let queue = rss.spec.queue_of_v4(*remote.ip(), self.local_ip, remote.port(), local_port);
            debug!(local_port, %remote, queue, own = rss.queue, "rss: explicit local port refused");
            return Err(TcpError::RssWrongQueue);
        }
        if self.cfg.randomize_ports {
            self.next_port = super::limits::random_port(self.secret, self.next_port, remote, EPHEMERAL);
        }
        let local = self.local_ip;
        let (listeners, conns) = (&self.listeners, &self.conns);
        let free = |p: u16| !listeners.contains_key(&p) && !conns.contains_key(&(SocketAddrV4::new(local, p), remote));
        let picked = rss.pick_port(local, remote, EPHEMERAL, self.next_port, free, &mut self.rss.tried);
        match picked {
            Some(p) => {
                self.next_port = if p >= *EPHEMERAL.end() { *EPHEMERAL.start() } else { p + 1 };
                Ok(p)
            }
            None => Err(TcpError::NoPorts),
        }
    }
}
