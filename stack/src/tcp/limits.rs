//! FreeBSD's TCP resource limits, as `config.ini`'s `[freebsd.sysctl]`
//! sets them: sockets at most (`kern.ipc.maxsockets`), TIME-WAIT
//! connections at most (`net.inet.tcp.maxtcptw`), how long an orphaned
//! FIN-WAIT-2 connection lives (`net.inet.tcp.finwait2_timeout`,
//! `net.inet.tcp.fast_finwait2_recycle`), silence towards closed ports
//! (`net.inet.tcp.blackhole`) and the caps on `SO_SNDBUF`/`SO_RCVBUF`
//! (`net.inet.tcp.sendbuf_max`/`recvbuf_max`).
//!
//! Each limit that refuses or recycles something counts it in [`Stats`].

use std::collections::VecDeque;

use super::sockopt::SockOpt;
use super::{SegIn, Slot, Sock, State, TcpEngine};
use crate::config::TcpConfig;
use crate::stats::Stats;
use crate::time::Duration;

/// Connections that entered TIME-WAIT, oldest first, as (slot, generation):
/// what `maxtcptw` recycles. Entries whose slot moved on are skipped.
#[derive(Debug, Default)]
pub(super) struct TimeWaitQueue(VecDeque<(u32, u32)>);

/// How long an orphaned connection (closed by the application) may stay in
/// FIN-WAIT-2 waiting for the peer's FIN: `finwait2_timeout` with
/// `fast_finwait2_recycle` (what F-Stack ships), else FreeBSD's idle limit,
/// `keepcnt * keepintvl` (its `TP_MAXIDLE`).
pub(super) fn fin_wait2_timeout(cfg: &TcpConfig) -> Duration {
    if cfg.fast_finwait2_recycle {
        cfg.fin_wait2_timeout
    } else {
        cfg.keepalive_interval.saturating_mul(cfg.keepalive_probes.into())
    }
}

/// `opt` with a `SO_SNDBUF`/`SO_RCVBUF` size capped by `sendbuf_max`/`recvbuf_max`.
pub(super) fn cap_buffer(cfg: &TcpConfig, opt: SockOpt) -> SockOpt {
    match opt {
        SockOpt::SendBuffer(b) => SockOpt::SendBuffer(b.min(cfg.send_buffer_max)),
        SockOpt::RecvBuffer(b) => SockOpt::RecvBuffer(b.min(cfg.recv_buffer_max)),
        other => other,
    }
}

/// Whether a segment for no socket is left unanswered (FreeBSD's
/// `net.inet.tcp.blackhole`: 1 drops a SYN to a closed port without a RST,
/// 2 any segment; RST segments are never answered anyway).
pub(super) fn blackholed(cfg: &TcpConfig, seg: &SegIn<'_>) -> bool {
    match cfg.blackhole {
        0 => false,
        1 => seg.syn,
        _ => true,
    }
}

/// A port of `range` drawn from a keyed hash of the previous pick and the
/// destination (RFC 6056 3.3.1's "simple port randomization", FreeBSD's
/// `net.inet.ip.portrange.randomized=1`): unpredictable without `secret`,
/// and deterministic for tests.
pub(super) fn random_port(
    secret: u64,
    prev: u16,
    remote: std::net::SocketAddrV4,
    range: std::ops::RangeInclusive<u16>,
) -> u16 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (secret, prev, remote).hash(&mut h);
    let span = u64::from(*range.end() - *range.start()) + 1;
    *range.start() + (h.finish() % span) as u16
}

impl TcpEngine {
    /// Sockets (listeners and connections, TIME-WAIT included) alive now.
    pub(super) fn live_sockets(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// Whether one more socket would pass `kern.ipc.maxsockets`; if so the
    /// refusal is counted (`Stats::tcp_max_sockets_refused`, collected by
    /// the stack for calls that have no `Stats` at hand).
    pub(super) fn socket_limit_reached(&mut self) -> bool {
        let full = self.live_sockets() >= self.cfg.max_sockets;
        if full {
            self.sockets_refused += 1;
        }
        full
    }

    /// Refusals by [`TcpEngine::socket_limit_reached`] since the last call.
    pub fn take_sockets_refused(&mut self) -> u64 {
        std::mem::take(&mut self.sockets_refused)
    }

    /// Connection `idx` has just entered TIME-WAIT: with `maxtcptw` the
    /// oldest orphaned TIME-WAIT connections beyond the cap are freed.
    /// Returns whether `idx` itself was freed.
    pub(super) fn on_time_wait(&mut self, idx: u32, stats: &mut Stats) -> bool {
        let Some(Slot { gen, .. }) = self.slots.get(idx as usize) else { return false };
        if self.cfg.max_time_wait == usize::MAX {
            return false;
        }
        self.time_wait.0.push_back((idx, *gen));
        // Stale entries (freed, reused, or out of TIME-WAIT) go first; the
        // rest are recycled oldest first while over the cap.
        let mut freed_self = false;
        while let Some(&(i, g)) = self.time_wait.0.front() {
            let live = match self.slots.get(i as usize) {
                Some(Slot { gen, sock: Some(Sock::Conn(c)) }) => *gen == g && c.state == State::TimeWait && c.orphan,
                _ => false,
            };
            if live && self.time_wait.0.len() <= self.cfg.max_time_wait {
                break;
            }
            self.time_wait.0.pop_front();
            if live {
                stats.tcp_time_wait_recycled += 1;
                freed_self |= i == idx;
                self.free_slot(i);
            }
        }
        freed_self
    }
}
