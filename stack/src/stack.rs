//! The stack: one interface, its TCP and UDP engines and payload memory,
//! driven by [`Stack::poll`] with time passed in.

use std::collections::VecDeque;
use std::net::SocketAddrV4;

use crate::config::StackConfig;
use crate::event::{Event, Interest, Registration, Registry, Token, Trigger};
use crate::iface::arp::ArpCache;
use crate::iface::reassembly::{FragResult, Reassembler};
use crate::iface::{Interface, IpOut, HEADROOM};
use crate::mem::PageMemory;
use crate::phy::{Device, DeviceCaps, RxFrame, TxFrame};
use crate::rx_budget::{RxBudget, RxRef};
use crate::stats::Stats;
use crate::tcp::{SegOut, SockOpt, SockOptName, SocketHandle, SocketOptions, State, TcpEngine, TcpError};
use crate::time::Instant;
use crate::udp::{DeliverError, UdpEngine, UdpError, UdpHandle};
use crate::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, Icmpv4Packet, Icmpv4Repr,
    IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, TcpPacket, TcpRepr, UdpPacket, ETH_HEADER,
};

use crate::stages::{CycleSource, Stage, StageCycles};

mod frame;
mod ingress;
mod tx_run;
mod usage;
mod zc_api;

use frame::{fast_frame, general_packet, patched_frame, resolved_mac, transmit_frame, whole_frame};

pub use usage::MemoryUsage;

/// Frames handled per poll before yielding (bounded work per call).
const RX_BUDGET: usize = 1024;
/// Completed header buffers kept for reuse: as many as frames a device
/// holds at once (a virtio TX ring of 1,024 descriptors plus dpdk-glue's
/// 8,192 zero-copy completion slots), so a deep ring's late, batched
/// completions come back whole and the next frames allocate nothing
/// (`tests/alloc_free.rs`; at 1,024, ~1,700 frames in flight freed and
/// allocated the difference). Only header-sized buffers are kept
/// ([`HDR_BUF`] bytes; a UDP, ICMP or ARP frame built whole in its buffer
/// is freed): at most 1.6 MiB.
const HDR_POOL: usize = 16 * 1024;
/// A header buffer's size, bytes: Ethernet and IPv4 headers and a TCP
/// header with the most options (60 bytes) fit.
const HDR_BUF: usize = HEADROOM + 64;

/// A TCP/IP stack instance (one per lcore, shared-nothing).
#[derive(Debug)]
pub struct Stack<M: PageMemory> {
    cfg: StackConfig,
    iface: Interface,
    arp: ArpCache,
    reasm: Reassembler,
    tcp: TcpEngine,
    udp: UdpEngine,
    mem: M,
    stats: Stats,
    mtu: usize,
    segs: Vec<SegOut>,
    ipq: Vec<IpOut>,
    backlog: VecDeque<TxFrame>,
    registry: Registry,
    scratch: Vec<SocketHandle>,
    /// Header buffers of completed frames, reused for new ones.
    hdr_pool: Vec<Vec<u8>>,
    /// Pages of zero-copy buffers dropped unsent, freed on the next poll.
    pub(crate) zc_orphans: crate::zc::Orphans,
    /// A zero-copy buffer was ever handed out (only then can `zc_orphans`
    /// hold anything): a poll of a stack that never did so tests this flag
    /// instead of borrowing the shared list.
    zc_handed_out: bool,
    /// Received frame memory receive queues may pin (zero-copy receive).
    rx_budget: RxBudget,
    /// Headers of the last TCP segment [`Stack::flush_segs`] wrote on its
    /// fast path, which the segments following it patch.
    tx_hdr: [u8; HEADROOM + crate::tcp::hdr_fast::WITH_TS],
}

impl<M: PageMemory> Stack<M> {
    /// A stack with `cfg`, payload buffers from `mem`, on a link of `mtu`.
    pub fn new(cfg: StackConfig, mem: M, mtu: usize) -> Self {
        let mut tcp = TcpEngine::new(cfg.tcp, cfg.isn_secret, cfg.iface.addr, mtu);
        tcp.set_send_pressure(cfg.send_low_water, cfg.send_share_floor, cfg.send_reserve);
        tcp.observe_pages(&mem);
        Stack {
            iface: Interface::new(cfg.iface),
            arp: ArpCache::new(cfg.arp_cache_size, cfg.arp_ttl, cfg.arp_pending_per_dest)
                .with_pending_limits(cfg.arp_pending_dests, cfg.arp_pending_total),
            reasm: Reassembler::new(cfg.reassembly_datagrams, cfg.reassembly_bytes, cfg.reassembly_timeout)
                .with_fragment_limits(cfg.reassembly_max_fragments, cfg.reassembly_per_source),
            tcp,
            udp: UdpEngine::new(cfg.udp_queue).with_recv_buffer(cfg.udp_recv_buffer),
            cfg,
            mem,
            stats: Stats::default(),
            mtu,
            segs: Vec::new(),
            ipq: Vec::new(),
            backlog: VecDeque::new(),
            registry: Registry::default(),
            scratch: Vec::new(),
            hdr_pool: Vec::new(),
            zc_orphans: Default::default(),
            zc_handed_out: false,
            rx_budget: RxBudget::new(cfg.rx_pin_budget).with_copybreak(cfg.rx_copybreak),
            tx_hdr: [0; HEADROOM + crate::tcp::hdr_fast::WITH_TS],
        }
    }

    /// Turns per-stage cycle accounting on with `source` (e.g. a TSC read),
    /// or off with `None` (the default; then a poll tests it once and runs
    /// a pass without stage accounting).
    /// Counts are kept across changes; see [`Stack::stage_cycles`].
    pub fn set_cycle_counter(&mut self, source: Option<CycleSource>) {
        self.tcp.stages.set_source(source);
    }

    /// Cycles (of the source given to [`Stack::set_cycle_counter`]) and
    /// calls per stage of the request path since the last reset.
    pub fn stage_cycles(&self) -> &StageCycles {
        self.tcp.stages.cycles()
    }

    /// Zeroes the per-stage counts.
    pub fn reset_stage_cycles(&mut self) {
        self.tcp.stages.reset();
    }

    /// Bytes of received frames (by footprint) that receive queues and the
    /// application's views pin now, against `StackConfig::rx_pin_budget`.
    pub fn rx_pinned(&self) -> usize {
        self.rx_budget.pinned()
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Payload memory (to check buffer counts).
    pub fn mem(&self) -> &M {
        &self.mem
    }

    /// The configuration.
    pub fn config(&self) -> &StackConfig {
        &self.cfg
    }

    /// Our address.
    pub fn addr(&self) -> Ipv4Address {
        self.iface.addr()
    }

    /// Live TCP connections.
    pub fn tcp_connections(&self) -> usize {
        self.tcp.connection_count()
    }

    /// The TCP socket table (at most `limit` rows), for `netstat`-style views.
    pub fn tcp_sockets(&self, limit: usize) -> Vec<crate::tcp::SocketInfo> {
        self.tcp.sockets(limit)
    }

    /// Packets waiting for ARP resolution: (destinations, packets).
    pub fn arp_pending(&self) -> (usize, usize) {
        (self.arp.pending_dests(), self.arp.pending_packets())
    }

    /// Frames refused by the device and waiting to be sent again.
    pub fn tx_backlog(&self) -> usize {
        self.backlog.len()
    }

    // ----- TCP -----

    /// Listens on `port`.
    pub fn tcp_listen(&mut self, port: u16, backlog: usize) -> Result<SocketHandle, TcpError> {
        let r = self.tcp.listen(port, backlog);
        self.stats.tcp_max_sockets_refused += self.tcp.take_sockets_refused();
        r
    }

    /// Connects to `remote` (local port 0 = ephemeral).
    pub fn tcp_connect(
        &mut self,
        remote: SocketAddrV4,
        local_port: u16,
        now: Instant,
    ) -> Result<SocketHandle, TcpError> {
        self.tcp_connect_with(remote, local_port, &SocketOptions::default(), now)
    }

    /// Listens on `port` with socket options (inherited by accepted connections).
    pub fn tcp_listen_with(
        &mut self,
        port: u16,
        backlog: usize,
        opts: &SocketOptions,
    ) -> Result<SocketHandle, TcpError> {
        let r = self.tcp.listen_with(port, backlog, opts);
        self.stats.tcp_max_sockets_refused += self.tcp.take_sockets_refused();
        r
    }

    /// Connects with socket options.
    pub fn tcp_connect_with(
        &mut self,
        remote: SocketAddrV4,
        local_port: u16,
        opts: &SocketOptions,
        now: Instant,
    ) -> Result<SocketHandle, TcpError> {
        let r = self.tcp.connect_with(remote, local_port, opts, now);
        let (tried, refused) = self.tcp.take_rss_counts();
        self.stats.rss_connect_ports_tried += tried;
        self.stats.rss_connect_refused += refused;
        self.stats.tcp_max_sockets_refused += self.tcp.take_sockets_refused();
        r
    }

    /// Places this stack in a port's RSS (`None`: the port has one queue).
    /// With it set, [`Stack::tcp_connect`] with local port 0 picks a port
    /// whose replies the NIC delivers to `rss.queue` (the `rss_tbl` ports
    /// for the 4-tuple first), and an explicit local port hashing to
    /// another queue fails with [`TcpError::RssWrongQueue`] (F-Stack
    /// `ff_rss_check`).
    pub fn set_rss(&mut self, rss: Option<crate::rss::RssLocal>) {
        self.tcp.set_rss(rss);
    }

    /// This stack's RSS place, if set.
    pub fn rss(&self) -> Option<&crate::rss::RssLocal> {
        self.tcp.rss()
    }

    /// `setsockopt` (see [`TcpEngine::set_option`]).
    pub fn tcp_set_option(&mut self, h: SocketHandle, opt: SockOpt, now: Instant) -> Result<(), TcpError> {
        self.tcp.set_option(h, opt, now)
    }

    /// `getsockopt`.
    pub fn tcp_get_option(&mut self, h: SocketHandle, name: SockOptName) -> Result<SockOpt, TcpError> {
        self.tcp.get_option(h, name)
    }

    /// Accepts one established connection.
    pub fn tcp_accept(&mut self, listener: SocketHandle) -> Result<(SocketHandle, SocketAddrV4), TcpError> {
        self.tcp.accept(listener)
    }

    /// Reads; `Ok(0)` is end of stream, or data queued when `buf` is
    /// empty (see [`TcpEngine::read`]).
    pub fn tcp_read(&mut self, h: SocketHandle, buf: &mut [u8]) -> Result<usize, TcpError> {
        self.tcp.read(h, buf)
    }

    /// Copies received bytes without consuming them (`recv(MSG_PEEK)`);
    /// `Ok(0)` is end of stream, errors as [`Stack::tcp_read`].
    pub fn tcp_peek(&mut self, h: SocketHandle, buf: &mut [u8]) -> Result<usize, TcpError> {
        self.tcp.peek(h, buf)
    }

    /// [`Stack::tcp_peek`] into several buffers in order, each filled
    /// before the next (`MSG_PEEK` with an iovec); `Ok(0)` is end of stream,
    /// or data queued when no buffer has room (see [`TcpEngine::read`]).
    pub fn tcp_peek_vectored(&mut self, h: SocketHandle, bufs: &mut [&mut [u8]]) -> Result<usize, TcpError> {
        self.tcp.peek_vectored(h, bufs)
    }

    /// Bytes readable now (`ioctl(FIONREAD)` / `SIOCINQ`).
    pub fn tcp_recv_queued(&self, h: SocketHandle) -> Result<usize, TcpError> {
        self.tcp.recv_queued(h)
    }

    /// `shutdown(SHUT_RD)`: queued and later data is acknowledged and
    /// discarded, reads return end of stream (see [`TcpEngine::shutdown_read`]).
    pub fn tcp_shutdown_read(&mut self, h: SocketHandle) -> Result<(), TcpError> {
        self.tcp.shutdown_read(h)
    }

    /// Takes the next piece of received data without copying it (zero-copy
    /// receive when the device hands frames over; copied data otherwise):
    /// `Ok(Some(view))`, `Ok(None)` at end of stream, `WouldBlock` if none.
    /// Dropping the view releases the frame.
    pub fn tcp_read_zc(&mut self, h: SocketHandle) -> Result<Option<crate::zc::RxView>, TcpError> {
        self.tcp.read_zc(h)
    }

    /// Reads into several buffers in order (`readv`); `Ok(0)` is end of
    /// stream (or, with no room in any buffer, data queued: as a
    /// zero-length [`Stack::tcp_read`]).
    pub fn tcp_readv(&mut self, h: SocketHandle, bufs: &mut [&mut [u8]]) -> Result<usize, TcpError> {
        if bufs.iter().all(|b| b.is_empty()) {
            return self.tcp.read(h, &mut []);
        }
        let mut total = 0;
        for b in bufs.iter_mut().filter(|b| !b.is_empty()) {
            match self.tcp.read(h, b) {
                Ok(0) => break,
                Ok(n) => {
                    total += n;
                    if n < b.len() {
                        break;
                    }
                }
                Err(TcpError::WouldBlock) if total > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    /// Writes several buffers in order (`writev`, copy mode); returns bytes queued.
    pub fn tcp_writev(&mut self, h: SocketHandle, bufs: &[&[u8]]) -> Result<usize, TcpError> {
        let mut total = 0;
        for b in bufs.iter().filter(|b| !b.is_empty()) {
            match self.tcp_write(h, b) {
                Ok(n) => {
                    total += n;
                    if n < b.len() {
                        break;
                    }
                }
                Err(TcpError::WouldBlock | TcpError::NoBuffers) if total > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(total)
    }

    /// Queues a gratuitous ARP announcing our address (sent on the next poll),
    /// so neighbours update stale entries when a stack (re)starts.
    pub fn announce(&mut self) {
        let ip = self.iface.addr();
        let mut f = self.iface.arp_frame(ArpOperation::Request, ip, EthernetAddress([0; 6]));
        // Gratuitous: sender and target protocol address are both ours.
        f.header[ETH_HEADER + 24..ETH_HEADER + 28].copy_from_slice(&ip.octets());
        self.backlog.push_back(f);
    }

    /// Writes (copy mode); returns bytes queued.
    pub fn tcp_write(&mut self, h: SocketHandle, data: &[u8]) -> Result<usize, TcpError> {
        let r = self.tcp.write(h, data, &mut self.mem);
        self.stats.tcp_send_pressure_limited += self.tcp.take_pressure_limited();
        match r {
            Ok(n) => self.stats.tx_bytes_copied += n as u64,
            Err(TcpError::NoBuffers) => self.stats.pages_exhausted += 1,
            Err(_) => {}
        }
        r
    }

    /// Half-close (`shutdown(SHUT_WR)`): a FIN follows the queued data;
    /// later writes fail with `Shutdown` (`EPIPE`).
    pub fn tcp_shutdown(&mut self, h: SocketHandle) -> Result<(), TcpError> {
        self.tcp.shutdown_write(h)
    }

    /// Close (FIN, or RST if unread data remains); the handle is invalid
    /// afterwards and its event registration is removed.
    pub fn tcp_close(&mut self, h: SocketHandle, now: Instant) -> Result<(), TcpError> {
        self.registry.regs.remove(&h);
        self.tcp.close(h, now, &mut self.mem, &mut self.segs)
    }

    // ----- readiness events -----

    /// Registers `h` for events; the next [`Stack::poll_events`] reports it if
    /// it is already ready (like `epoll_ctl(ADD)`). Re-registering replaces.
    pub fn register(
        &mut self,
        h: SocketHandle,
        token: Token,
        interest: Interest,
        trigger: Trigger,
    ) -> Result<(), TcpError> {
        if !self.tcp.is_listener(h) {
            self.tcp.state(h)?;
        }
        self.registry.regs.insert(h, Registration { token, interest, trigger });
        self.registry.recheck.push(h);
        Ok(())
    }

    /// Stops reporting `h`.
    pub fn deregister(&mut self, h: SocketHandle) -> Result<(), TcpError> {
        self.registry.regs.remove(&h).map(|_| ()).ok_or(TcpError::InvalidHandle)
    }

    /// Whether [`Stack::poll_events`] may report something: a socket
    /// changed, one was reported level-triggered last time (or just
    /// registered), or a writer waits for pages. `false` means it would
    /// report nothing (an idle pass's cost: three tests).
    #[inline]
    fn may_have_events(&self) -> bool {
        self.tcp.has_notifications() || !self.registry.recheck.is_empty() || self.tcp.pressure_waiters()
    }

    /// Appends the events of registered sockets to `out` (see [`crate::event`]
    /// for level and edge semantics); returns how many were added. Costs
    /// O(changed + level-ready sockets), never O(all sockets).
    pub fn poll_events(&mut self, out: &mut Vec<Event>) -> usize {
        // The page array's free count first, every call: pages come back
        // without any socket changing (zero-copy buffers released, late
        // device completions), and the send room reported from here on
        // (writable, send_room, readiness) is computed from it.
        self.tcp.observe_pages(&self.mem);
        if !self.may_have_events() {
            return 0;
        }
        let t = self.tcp.stages.start();
        let mut cand = std::mem::take(&mut self.scratch);
        cand.clear();
        self.tcp.take_notifications(&mut cand);
        cand.append(&mut self.registry.recheck);
        let before = out.len();
        let mut seen = std::mem::take(&mut self.registry.seen);
        seen.clear();
        // Candidates: sockets whose state changed, fresh registrations, and
        // level-triggered sockets reported last time. Edge-triggered sockets
        // enter only through the first two.
        for h in cand.iter() {
            let Some(reg) = self.registry.regs.get(h).copied() else { continue };
            if !seen.insert(*h) {
                continue;
            }
            let (readable, writable, hup, error) = if self.tcp.is_listener(*h) {
                (self.tcp.acceptable(*h), false, false, false)
            } else {
                match self.tcp.readiness(*h) {
                    Ok(r) => (r.readable, r.writable, r.hung_up, r.error.is_some()),
                    // Gone: hung up (as `hung_up` reports a handle it cannot find).
                    Err(_) => (false, false, true, false),
                }
            };
            let r = readable && reg.interest.is_readable();
            let w = writable && reg.interest.is_writable();
            if r || w || hup || error {
                out.push(Event { token: reg.token, readable: r, writable: w, hup, error });
                if reg.trigger == Trigger::Level {
                    self.registry.recheck.push(*h);
                }
            }
        }
        self.scratch = cand;
        self.registry.seen = seen;
        self.tcp.stages.stop(Stage::Events, t);
        out.len() - before
    }

    /// Abort with RST.
    pub fn tcp_abort(&mut self, h: SocketHandle) -> Result<(), TcpError> {
        self.tcp.abort(h, &mut self.mem, &mut self.segs)
    }

    /// The TCP engine, for state queries and socket options.
    pub fn tcp(&mut self) -> &mut TcpEngine {
        &mut self.tcp
    }

    /// Connection state.
    pub fn tcp_state(&self, h: SocketHandle) -> Result<State, TcpError> {
        self.tcp.state(h)
    }

    // ----- UDP -----

    /// Binds a UDP port.
    pub fn udp_bind(&mut self, port: u16) -> Result<UdpHandle, UdpError> {
        self.udp.bind(port)
    }

    /// Sends one datagram (goes out on the next poll).
    pub fn udp_send_to(&mut self, h: UdpHandle, to: SocketAddrV4, data: &[u8]) -> Result<(), UdpError> {
        self.udp_send_vectored(h, to, &[data])
    }

    /// Sends one datagram of the `parts` concatenated (`sendmsg` with an
    /// iovec), built whole in its frame's buffer (one allocation per
    /// datagram: the engine's completion path keeps only header-sized
    /// buffers). `TooLarge` past the link MTU.
    pub fn udp_send_vectored(&mut self, h: UdpHandle, to: SocketAddrV4, parts: &[&[u8]]) -> Result<(), UdpError> {
        let pkt = self.udp.send_vectored(h, self.iface.addr(), to, parts, self.mtu)?;
        self.ipq.push(pkt);
        Ok(())
    }

    /// Receives one datagram (what fits in `buf`; the rest is discarded).
    pub fn udp_recv_from(&mut self, h: UdpHandle, buf: &mut [u8]) -> Result<(usize, SocketAddrV4), UdpError> {
        self.udp.recv_from(h, buf)
    }

    /// Copies the next datagram over `bufs` and leaves it queued
    /// (`MSG_PEEK`): the bytes placed, its whole length and its sender.
    pub fn udp_peek_vectored(
        &mut self,
        h: UdpHandle,
        bufs: &mut [&mut [u8]],
    ) -> Result<crate::udp::Datagram, UdpError> {
        self.udp.peek_vectored(h, bufs)
    }

    /// Receives one datagram scattered over `bufs` (`recvmsg` with an
    /// iovec): the bytes placed (the rest is discarded), its whole length
    /// and its sender.
    pub fn udp_recv_vectored(
        &mut self,
        h: UdpHandle,
        bufs: &mut [&mut [u8]],
    ) -> Result<crate::udp::Datagram, UdpError> {
        self.udp.recv_vectored(h, bufs)
    }

    /// Sets a UDP socket's receive buffer (`SO_RCVBUF`), bytes: queued
    /// datagrams are charged their payload plus
    /// [`crate::udp::DATAGRAM_OVERHEAD`] each; past it they are dropped
    /// (`Stats::drop_udp_rcvbuf_full`).
    pub fn udp_set_recv_buffer(&mut self, h: UdpHandle, bytes: usize) -> Result<(), UdpError> {
        self.udp.set_recv_buffer(h, bytes)
    }

    /// Datagrams queued for reading on `h` (for `poll`/`epoll` readiness
    /// and `FIONREAD` in the C API).
    pub fn udp_recv_queued(&mut self, h: UdpHandle) -> Result<usize, UdpError> {
        self.udp.queued(h)
    }

    /// Datagrams queued on `h` since it was bound (wrapping): one edge per
    /// arrival for edge-triggered waits in the C API.
    pub fn udp_arrivals(&mut self, h: UdpHandle) -> Result<u64, UdpError> {
        self.udp.arrivals(h)
    }

    /// Closes a UDP socket.
    pub fn udp_close(&mut self, h: UdpHandle) -> Result<(), UdpError> {
        self.udp.close(h)
    }

    // ----- driving -----

    /// When to call [`Stack::poll`] next at the latest (`None`: only when a
    /// frame arrives or the application acts). After a poll that returned
    /// true, poll again without waiting for it: a device may still hold
    /// frames behind a short burst (`DeviceCaps::rx_short_burst_ends_poll_max`).
    pub fn poll_at(&mut self) -> Option<Instant> {
        if !self.backlog.is_empty() || self.tcp.has_dirty() || !self.ipq.is_empty() || !self.segs.is_empty() {
            return Some(Instant::ZERO);
        }
        [self.tcp.poll_at(), self.arp.poll_at(), self.reasm.poll_at()].into_iter().flatten().min()
    }

    /// Does all due work: completions, received frames, timers, output.
    /// Returns whether anything happened.
    pub fn poll<D: Device + ?Sized>(&mut self, now: Instant, dev: &mut D) -> bool {
        // Stage accounting, read once: off, the pass has no trace of it.
        if self.tcp.stages.on() {
            self.poll_metered(now, dev)
        } else {
            self.poll_pass::<false, D>(now, dev)
        }
    }

    /// [`Stack::poll`] with stage accounting on.
    #[cold]
    #[inline(never)]
    fn poll_metered<D: Device + ?Sized>(&mut self, now: Instant, dev: &mut D) -> bool {
        self.poll_pass::<true, D>(now, dev)
    }

    /// One poll pass; `METER`: charge each stage to the stage clock.
    #[inline(always)]
    fn poll_pass<const METER: bool, D: Device + ?Sized>(&mut self, now: Instant, dev: &mut D) -> bool {
        let caps = dev.caps();
        let mut did = false;
        let t = self.tcp.stages.start_if(METER);
        self.reclaim_zc_orphans();
        {
            let mem = &mut self.mem;
            let stats = &mut self.stats;
            let pool = &mut self.hdr_pool;
            let tcp = &mut self.tcp;
            dev.poll_completions(now, &mut |f: TxFrame| {
                for p in &f.payload {
                    if mem.decref(p.page).is_err() {
                        stats.page_errors += 1;
                    }
                }
                if f.payload.spilled() {
                    // A TSO frame's list, for the next burst (the test here
                    // spares the common frame the move into the call).
                    tcp.recycle_payload(f.payload);
                }
                if pool.len() < HDR_POOL && f.header.capacity() <= HDR_BUF {
                    let mut h = f.header;
                    h.clear();
                    pool.push(h);
                }
            });
        }
        self.tcp.stages.stop_if(METER, Stage::Completions, t);
        let mut handled = 0;
        while handled < RX_BUDGET {
            // Until the device has nothing more (or the budget is spent):
            // a burst shorter than asked ends the loop only where the
            // device says a short burst of that many frames means it had
            // no more (`rx_short_burst_ends_poll_max`);
            // elsewhere the loop asks again, because a device may return
            // fewer frames than it holds (stopping there for every device,
            // tried in issue 13, stalled the C API's boundary test on
            // net_tap).
            let want = caps.max_burst.min(RX_BUDGET - handled);
            let n = dev.receive_frames(now, want, &mut |frame: RxFrame<'_>| {
                let (t, nested) = self.tcp.stages.start_parse_if(METER);
                // A kept frame goes down the path as a reference to an
                // `RxRef`, itself two pointers (see `RxRef`: no block copy
                // of what `RxBuf::meta` just wrote).
                match &frame {
                    RxFrame::Borrowed(b) => self.ingress(now, b, None, &caps, false),
                    RxFrame::L4Verified(b) => self.ingress(now, b, None, &caps, true),
                    RxFrame::Shared(rx) => RxRef::with(rx, |r| {
                        self.ingress(now, r.bytes(), Some(r), &caps, r.l4_verified());
                    }),
                }
                self.tcp.stages.stop_parse_if(METER, t, nested);
            });
            if n == 0 {
                break;
            }
            handled += n;
            did = true;
            // Answer each burst before taking the next: ACKs (and data they
            // clock out) leave per burst, not once per poll budget.
            if self.tcp.has_dirty() {
                self.output(now, dev, &caps, METER);
            }
            if n < want && n <= caps.rx_short_burst_ends_poll_max {
                // The device had no more (`DeviceCaps::rx_short_burst_ends_poll_max`).
                break;
            }
        }
        let t = self.tcp.stages.start_if(METER);
        self.tcp.on_timers(now, &mut self.mem, &mut self.stats, &mut self.segs);
        if self.reasm.datagrams() > 0 {
            self.stats.drop_ipv4_fragment += self.reasm.expire(now, &mut self.stats) as u64;
        }
        // ARP retries and expiry only while packets wait for a resolution
        // (a steady-state poll skips the call and its two empty Vecs).
        if self.arp.has_pending() {
            let mut ask = Vec::new();
            let dead = self.arp.poll(now, &mut ask);
            for p in dead {
                self.drop_ip(p);
            }
            for ip in ask {
                let f = self.iface.arp_frame(ArpOperation::Request, ip, EthernetAddress([0; 6]));
                self.backlog.push_back(f);
            }
        }
        self.tcp.stages.stop_if(METER, Stage::Timers, t);
        if self.tcp.has_dirty() {
            let t = self.tcp.stages.start_if(METER);
            self.tcp.dispatch(
                now,
                &mut self.mem,
                &mut self.stats,
                &mut self.segs,
                burst_limit(&caps, self.cfg.tcp.gso_max),
            );
            self.tcp.stages.stop_if(METER, Stage::Output, t);
        }
        did |= !self.segs.is_empty() || !self.ipq.is_empty();
        let t = self.tcp.stages.start_if(METER);
        self.flush(now, dev, &caps);
        self.tcp.stages.stop_if(METER, Stage::Tx, t);
        if self.tcp.pressure_waiters() {
            self.tcp.observe_pages(&self.mem);
        }
        self.stats.tcp_send_pressure_limited += self.tcp.take_pressure_limited();
        if self.registry.regs.is_empty() {
            // No socket registered for events: readiness notes would pile
            // up (one per event) with nobody to take them.
            self.tcp.clear_notifications();
        }
        did
    }

    /// Aborts every TCP connection (RSTs go out on the next poll) and closes
    /// every listener and UDP socket's queue, releasing their buffers: the
    /// stack's share of a process exit. Returns the connections aborted.
    pub fn abort_all(&mut self) -> usize {
        self.registry.regs.clear();
        self.registry.recheck.clear();
        self.tcp.abort_all(&mut self.mem, &mut self.segs)
    }

    /// Drops every frame and packet not yet handed to the device (queued
    /// behind a full device, or waiting for ARP) and releases their page
    /// references; returns how many. For shutdown, after the device can no
    /// longer take frames, so no page stays referenced by output that will
    /// never be sent.
    pub fn discard_unsent(&mut self) -> usize {
        let mut n = 0;
        let mut pages = Vec::new();
        for f in self.backlog.drain(..) {
            pages.extend(f.payload.iter().map(|s| s.page));
            n += 1;
        }
        for p in self.ipq.drain(..).chain(self.arp.drain_pending()) {
            pages.extend(p.payload.iter().map(|s| s.page));
            n += 1;
        }
        for s in self.segs.drain(..) {
            pages.extend(s.payload.iter().map(|s| s.page));
            n += 1;
        }
        for page in pages {
            if self.mem.decref(page).is_err() {
                self.stats.page_errors += 1;
            }
        }
        self.stats.drop_unsent_at_shutdown += n as u64;
        n
    }

    fn drop_ip(&mut self, p: IpOut) {
        self.stats.drop_arp_unresolved += 1;
        self.release_payload(p);
    }

    /// Drops the page references of a packet that will not be sent.
    fn release_payload(&mut self, p: IpOut) {
        for s in p.payload {
            if self.mem.decref(s.page).is_err() {
                self.stats.page_errors += 1;
            }
        }
    }

    /// Sends what the application queued since the last poll (data, FINs,
    /// window updates after reads, UDP datagrams) without the rest of a
    /// poll: no receive, no timers. For run loops that want a reply on the
    /// wire in the same pass as the callback that wrote it. Nagle and
    /// delayed ACKs apply as in [`Stack::poll`]. Returns whether anything
    /// was handed to the device.
    pub fn push_output<D: Device + ?Sized>(&mut self, now: Instant, dev: &mut D) -> bool {
        if !self.tcp.has_dirty() && self.ipq.is_empty() && self.backlog.is_empty() {
            return false;
        }
        let caps = dev.caps();
        let before = self.stats.tx_frames;
        let meter = self.tcp.stages.on();
        self.output(now, dev, &caps, meter);
        self.stats.tx_frames > before
    }

    /// Builds the segments of every connection with output and hands them
    /// to the device (the `Output` and `Tx` stages).
    /// `meter`: a [`crate::stages::StageClock::on`] reading.
    #[inline(always)]
    fn output<D: Device + ?Sized>(&mut self, now: Instant, dev: &mut D, caps: &DeviceCaps, meter: bool) {
        let t = self.tcp.stages.start_if(meter);
        self.tcp.dispatch(now, &mut self.mem, &mut self.stats, &mut self.segs, burst_limit(caps, self.cfg.tcp.gso_max));
        self.tcp.stages.stop_if(meter, Stage::Output, t);
        let t = self.tcp.stages.start_if(meter);
        self.flush(now, dev, caps);
        self.tcp.stages.stop_if(meter, Stage::Tx, t);
    }

    /// Hands everything queued to the device, then lets the device push
    /// out what it batched (every poll: a device may release frames it
    /// holds by time). Nothing queued costs three tests.
    #[inline]
    fn flush<D: Device + ?Sized>(&mut self, now: Instant, dev: &mut D, caps: &DeviceCaps) {
        if !self.ipq.is_empty() || !self.segs.is_empty() || !self.backlog.is_empty() {
            self.flush_queued(now, dev, caps);
        }
        dev.flush(now);
    }

    fn flush_queued<D: Device + ?Sized>(&mut self, now: Instant, dev: &mut D, caps: &DeviceCaps) {
        // IP packets queued earlier (ICMP, UDP) first, then the TCP
        // segments just produced: each goes out as soon as it is built.
        if !self.ipq.is_empty() {
            let mut ipq = std::mem::take(&mut self.ipq);
            for pkt in ipq.drain(..) {
                self.send_ip(now, dev, pkt);
            }
            self.ipq = ipq;
        }
        if !self.segs.is_empty() {
            self.flush_segs(now, dev, caps);
        }
        if !self.backlog.is_empty() {
            self.flush_backlog(now, dev);
        }
    }

    /// Emits the TCP segments built since the last flush and routes them.
    ///
    /// An established connection's segment to a next hop whose MAC is known
    /// (every segment of a running connection) is written whole in one
    /// pass: Ethernet, IPv4 and TCP headers straight into one frame header,
    /// checksums summed from the values written ([`SegOut::write_fast`],
    /// [`Interface::write_headers`]); the bytes are those of the general
    /// path (emit, then [`Stack::send_ip`]), which takes everything else.
    fn flush_segs<D: Device + ?Sized>(&mut self, now: Instant, dev: &mut D, caps: &DeviceCaps) {
        if self.segs.len() > 1 || self.segs.first().is_some_and(|s| s.tso_segsz != 0) {
            self.flush_segs_runs(now, dev, caps);
            return;
        }
        // Emitted in place (each segment is 128 bytes; only its payload
        // list moves on with the packet), by index: nothing below adds to
        // the list, and the general path's `send_ip` starts after the
        // segment's last use. (At most one segment here, not a burst.)
        for i in 0..self.segs.len() {
            let seg = &mut self.segs[i];
            self.stats.tcp_rst_sent += u64::from(seg.rst);
            let buf = self.hdr_pool.pop().unwrap_or_else(|| Vec::with_capacity(HDR_BUF));
            if seg.fast_layout() {
                if let Some(mac) = resolved_mac(&self.iface, &self.arp, *seg.dst.ip(), now) {
                    // Written in the frame's own buffer: a header written
                    // elsewhere and then copied made the copy's wide loads
                    // wait for the write's narrow stores (a failed
                    // store-to-load forward).
                    let frame = whole_frame(buf, seg, &self.iface, mac, &self.mem, caps.tx_checksum_offload);
                    transmit_frame(&mut self.backlog, &mut self.stats, &self.mem, now, dev, frame);
                    continue;
                }
            }
            let pkt = general_packet(buf, seg, &self.mem, caps.tx_checksum_offload);
            self.send_ip(now, dev, pkt);
        }
        self.segs.clear();
    }

    /// Hands frames refused earlier (or queued behind them) to the device,
    /// oldest first, until it refuses one again.
    fn flush_backlog<D: Device + ?Sized>(&mut self, now: Instant, dev: &mut D) {
        while let Some(f) = self.backlog.pop_front() {
            match dev.transmit(now, f, &self.mem) {
                Ok(()) => self.stats.tx_frames += 1,
                Err(f) => {
                    self.backlog.push_front(f);
                    break;
                }
            }
        }
    }

    /// Routes one IP packet: to the device (or behind older frames in the
    /// backlog) when the next hop's MAC is known, else held by ARP while it
    /// asks; dropped and counted without a route.
    fn send_ip<D: Device + ?Sized>(&mut self, now: Instant, dev: &mut D, pkt: IpOut) {
        let Some(hop) = self.iface.next_hop(pkt.dst) else {
            self.stats.drop_no_route += 1;
            for s in pkt.payload {
                let _ = self.mem.decref(s.page);
            }
            return;
        };
        let mac =
            if hop == Ipv4Address::BROADCAST { Some(EthernetAddress::BROADCAST) } else { self.arp.lookup(hop, now) };
        match mac {
            Some(mac) => {
                let f = self.iface.encapsulate(pkt, mac);
                transmit_frame(&mut self.backlog, &mut self.stats, &self.mem, now, dev, f);
            }
            None => {
                let (ask, refused) = self.arp.enqueue(hop, pkt, now);
                if let Some(d) = refused.full {
                    self.drop_ip(d);
                }
                for d in refused.evicted {
                    self.stats.drop_arp_pending_evicted += 1;
                    self.release_payload(d);
                }
                if ask {
                    let f = self.iface.arp_frame(ArpOperation::Request, hop, EthernetAddress([0; 6]));
                    self.backlog.push_back(f);
                }
            }
        }
    }
}

/// The TSO frame size (TCP payload bytes) the engine may use on a device:
/// TSO needs the device to fill checksums as well, and an IPv4 packet holds
/// at most 65,535 bytes (20 of IP header, up to 60 of TCP header).
fn tso_limit(caps: &DeviceCaps) -> u32 {
    if caps.tx_checksum_offload {
        caps.tso_max.min(65_455) as u32
    } else {
        0
    }
}

/// The burst size (TCP payload bytes) connections' output may use on a
/// device, and whether the stack cuts the bursts: the device's TSO limit
/// (the device cuts), or without TSO `gso_max` (the flush cuts,
/// [`Stack::flush_segs_runs`]).
fn burst_limit(caps: &DeviceCaps, gso_max: usize) -> crate::tcp::BurstLimit {
    match tso_limit(caps) {
        0 => crate::tcp::BurstLimit { max: gso_max.min(65_535) as u32, gso: true },
        t => crate::tcp::BurstLimit { max: t, gso: false },
    }
}
