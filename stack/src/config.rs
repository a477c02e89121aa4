//! Engine configuration: plain typed data with defaults. File parsing
//! (config.ini / TOML) lives in the runtime, not here.

use crate::time::Duration;
use crate::wire::{EthernetAddress, Ipv4Address};

/// Congestion control algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CongestionControl {
    /// RFC 5681 + RFC 6582.
    #[default]
    NewReno,
    /// RFC 9438.
    Cubic,
}

/// Interface addressing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IfaceConfig {
    /// Our MAC address.
    pub mac: EthernetAddress,
    /// Our IPv4 address.
    pub addr: Ipv4Address,
    /// Prefix length of the on-link subnet.
    pub prefix_len: u8,
    /// Default gateway, if any.
    pub gateway: Option<Ipv4Address>,
}

/// TCP tunables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// Default send buffer per connection, bytes (`SO_SNDBUF`, `net.inet.tcp.sendspace`).
    pub send_buffer: usize,
    /// Default receive buffer per connection, bytes (`SO_RCVBUF`, `net.inet.tcp.recvspace`).
    pub recv_buffer: usize,
    /// Minimum retransmission timeout (RFC 6298 says 1 s; 200 ms like Linux; 1 ms in datacenters).
    pub min_rto: Duration,
    /// Maximum retransmission timeout.
    pub max_rto: Duration,
    /// Initial retransmission timeout before any RTT sample (RFC 6298: 1 s).
    pub initial_rto: Duration,
    /// Delayed ACK timeout; `None` acknowledges every segment at once.
    pub delayed_ack: Option<Duration>,
    /// Maximum segment lifetime; TIME_WAIT lasts twice this.
    pub msl: Duration,
    /// Listen backlog cap (`somaxconn`).
    pub somaxconn: usize,
    /// Retransmissions of one segment before the connection is aborted.
    pub max_retries: u32,
    /// SYN retransmissions before a connect fails.
    pub syn_retries: u32,
    /// Window scale shift we offer (0..=14).
    pub window_scale: u8,
    /// Offer and accept RFC 7323 timestamps (PAWS).
    pub timestamps: bool,
    /// Answer SYNs with RFC 4987 cookies when a listener's SYN queue is full.
    pub syn_cookies: bool,
    /// Disable Nagle on new sockets.
    pub nodelay: bool,
    /// Congestion control for new connections.
    pub congestion: CongestionControl,
    /// Initial congestion window in segments (RFC 6928: 10).
    pub initial_cwnd_segments: u32,
    /// Cap on out-of-order segments kept per connection.
    pub max_ooo_segments: usize,
    /// Keepalive idle time before probing, if enabled on a socket.
    pub keepalive_idle: Duration,
    /// Keepalive probe interval.
    pub keepalive_interval: Duration,
    /// Keepalive probes before the connection is dropped.
    pub keepalive_probes: u32,
    /// Per-connection limit on ACKs generated in answer to rejected
    /// segments (challenge ACKs, RFC 5961 7; ACKs to out-of-window or PAWS-
    /// failing segments without data): at most `invalid_ack_burst` per this
    /// interval (Linux `tcp_invalid_ratelimit`: 500 ms). Zero: no limit.
    pub invalid_ack_interval: Duration,
    /// ACKs per `invalid_ack_interval` per connection (see there).
    pub invalid_ack_burst: u32,
    /// Engine-wide mean number of challenge ACKs per second (RFC 5961 7,
    /// Linux `tcp_challenge_ack_limit`). Each second's budget is drawn at
    /// random from `[limit/2, limit/2 + limit)`, keyed by the stack's secret,
    /// so the global count leaks nothing (CVE-2016-5696). `u32::MAX`: no limit.
    pub challenge_ack_limit: u32,
    /// The smallest path MTU an ICMP "fragmentation needed" may set, bytes
    /// (RFC 1191 3 forbids going below 68; 576, every IPv4 host's minimum
    /// datagram (RFC 791, RFC 1122 3.3.3), keeps segments at >= 536 bytes
    /// against forged messages (RFC 5927 7)). Default 576.
    pub min_path_mtu: usize,
    /// Software segmentation (GSO) on a device without TSO: a
    /// connection's output pass lets new data leave in bursts of up to
    /// this many TCP payload bytes, which the stack's flush cuts into the
    /// MSS-sized frames segment-by-segment output gives (same bytes, same
    /// order; headers patched per frame, `Stats::tcp_gso_bursts`), so the
    /// per-segment work of the output pass is done once per burst. 0 (or
    /// anything under two segments' payload): segment by segment. A device
    /// with TSO gets its own limit instead.
    /// Default 32 KiB (`[tcp] gso_max`, 0..=65535).
    pub gso_max: usize,
    /// Frames one connection may hand the device in one output pass (a
    /// poll runs one after each receive burst and one at its end): new
    /// data and go-back-N resends after a timeout stop there (SACK-recovery
    /// resends, a fast retransmission and window probes are not counted:
    /// the recovery's pipe bounds them), and the connection goes on
    /// in the next pass (the stack stays busy, [`crate::Stack::poll_at`]
    /// is now). A frame is a segment, or a TSO frame (one however many
    /// segments it carries); a GSO burst counts the frames the stack cuts
    /// it into, and is capped at what the pass has left. At least one
    /// frame goes per pass. Like DPDK's TX burst (32), it bounds each
    /// pass's work per connection, so one bulk sender cannot fill a pass
    /// while other connections wait. Measured in `enginebench`
    /// bulk/csum-offload: +1.7-4.3% against no limit in alternated runs
    /// (a cache simulation showed no fewer L1 misses, so not from
    /// locality); TSO bulk unchanged (a limit in bytes had cost it 8%).
    /// 0: no limit. Default 32 (`[tcp] output_pass_frames`).
    pub output_pass_frames: usize,
    /// Round both socket buffers up to a whole number of segments once the
    /// MSS is known (at the SYN or SYN-ACK), as FreeBSD's `tcp_mss()` does:
    /// `SO_RCVBUF` 65536 with an MSS of 1460 becomes 65700. A host choice
    /// RFC 9293 leaves open; default `false` (buffers stay as configured).
    pub round_buffers_to_mss: bool,
    /// Offer the window scale option (RFC 7323 2) in our SYN, and answer a
    /// peer's with ours; `false` sends no window scale option at all
    /// (`net.inet.tcp.rfc1323=0`, `net.ipv4.tcp_window_scaling=0`), which is
    /// not the same as offering shift 0. Default `true`.
    pub offer_window_scale: bool,
    /// Added to every retransmission timeout computed from an RTT sample or
    /// after a backoff (not to the initial RTO), as FreeBSD's
    /// `net.inet.tcp.rexmit_slop` (default 200 ms there). RFC 6298 2.4 lets
    /// a host use a larger RTO than its formula; default zero.
    pub rto_slop: Duration,
    /// A listener drops segments with both SYN and FIN set, unanswered and
    /// counted (`Stats::drop_tcp_synfin`), as Linux does and FreeBSD with
    /// `net.inet.tcp.drop_synfin=1` (SYN+FIN is a scanner's fingerprint
    /// probe). `false`: the SYN opens a connection and the FIN is not taken
    /// (FreeBSD's default). Other states follow RFC 9293 3.10.7's order
    /// either way (see `tcp::odd_flags`). Default `true`.
    pub drop_synfin: bool,
    /// From the third retransmission of a SYN on, send it with the MSS
    /// option only (no window scale, SACK-permitted or timestamps), in case
    /// a middlebox drops SYNs with unknown options, as FreeBSD's
    /// `net.inet.tcp.rexmit_drop_options=1`. The connection then runs
    /// without those options (RFC 7323 and RFC 2018 need them in both
    /// SYNs). Default `false`.
    pub rexmit_drop_options: bool,
    /// Offer SACK-permitted in our SYN and accept a peer's (RFC 2018 2);
    /// `false` neither sends nor honours it, so no SACK blocks flow either
    /// way (`net.inet.tcp.sack.enable=0`, `net.ipv4.tcp_sack=0`). Default
    /// `true`.
    pub sack: bool,
    /// Pre-RFC 5961 RST check (RFC 793 3.4, FreeBSD's
    /// `net.inet.tcp.insecure_rst=1`): a RST anywhere in the receive window
    /// resets the connection, instead of only one at exactly `rcv_nxt`
    /// (others draw a challenge ACK, RFC 5961 3.2). Default `false`.
    pub insecure_rst: bool,
    /// Pre-RFC 5961 SYN check (RFC 793 3.9 "If the SYN is in the window it
    /// is an error, send a reset", FreeBSD's `net.inet.tcp.insecure_syn=1`):
    /// a SYN in the receive window of a synchronized connection resets it
    /// (RST+ACK at `snd_nxt`/`rcv_nxt`, `ECONNRESET`), instead of drawing a
    /// challenge ACK (RFC 5961 4.2). Default `false`.
    pub insecure_syn: bool,
    /// How long an orphaned connection waits in FIN-WAIT-2 for the peer's
    /// FIN when `fast_finwait2_recycle` is on (FreeBSD's
    /// `net.inet.tcp.finwait2_timeout`, Linux's `tcp_fin_timeout`). Default 60 s.
    pub fin_wait2_timeout: Duration,
    /// An orphaned FIN-WAIT-2 connection is freed after `fin_wait2_timeout`
    /// (FreeBSD's `net.inet.tcp.fast_finwait2_recycle=1`, what F-Stack
    /// ships); `false`: after FreeBSD's idle limit, `keepalive_probes *
    /// keepalive_interval`. Default `true`.
    pub fast_finwait2_recycle: bool,
    /// Orphaned connections in TIME-WAIT at most; past it the oldest is
    /// freed early (counted in `Stats::tcp_time_wait_recycled`; FreeBSD's
    /// `net.inet.tcp.maxtcptw`). Default `usize::MAX` (no cap).
    pub max_time_wait: usize,
    /// Segments to closed ports answered without a RST: 0 every one gets
    /// its RST (RFC 9293 3.10.7.1), 1 none for SYNs, 2 none at all
    /// (FreeBSD's `net.inet.tcp.blackhole`; counted in
    /// `Stats::tcp_blackholed`). Default 0.
    pub blackhole: u8,
    /// Largest `SO_SNDBUF` a socket may set, bytes (FreeBSD's
    /// `net.inet.tcp.sendbuf_max`); larger requests are capped. Default
    /// 65535 << 14 (the largest window RFC 7323 can advertise).
    pub send_buffer_max: usize,
    /// Largest `SO_RCVBUF`, bytes (`net.inet.tcp.recvbuf_max`). Default 65535 << 14.
    pub recv_buffer_max: usize,
    /// Sockets (listeners and connections, TIME-WAIT included) at most:
    /// `connect`/`listen` beyond it fail with `NoBuffers` (`ENOBUFS`, as
    /// FreeBSD's `socket()`), SYNs are dropped; each counted in
    /// `Stats::tcp_max_sockets_refused` (FreeBSD's `kern.ipc.maxsockets`).
    /// Default `usize::MAX`.
    pub max_sockets: usize,
    /// Ephemeral ports are drawn at random (FreeBSD's
    /// `net.inet.ip.portrange.randomized`, RFC 6056 3.3.1) instead of in
    /// sequence from a secret start. Default `false`.
    pub randomize_ports: bool,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            send_buffer: 256 * 1024,
            recv_buffer: 256 * 1024,
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(60),
            initial_rto: Duration::from_secs(1),
            delayed_ack: Some(Duration::from_millis(40)),
            msl: Duration::from_secs(2),
            somaxconn: 32768,
            max_retries: 15,
            syn_retries: 6,
            window_scale: 7,
            timestamps: true,
            syn_cookies: true,
            nodelay: false,
            congestion: CongestionControl::NewReno,
            initial_cwnd_segments: 10,
            max_ooo_segments: 1024,
            keepalive_idle: Duration::from_secs(7200),
            keepalive_interval: Duration::from_secs(75),
            keepalive_probes: 9,
            invalid_ack_interval: Duration::from_millis(500),
            invalid_ack_burst: 5,
            challenge_ack_limit: 1000,
            min_path_mtu: 576,
            gso_max: 32 * 1024,
            output_pass_frames: 32,
            round_buffers_to_mss: false,
            offer_window_scale: true,
            rto_slop: Duration::ZERO,
            drop_synfin: true,
            rexmit_drop_options: false,
            sack: true,
            insecure_rst: false,
            insecure_syn: false,
            fin_wait2_timeout: Duration::from_secs(60),
            fast_finwait2_recycle: true,
            max_time_wait: usize::MAX,
            blackhole: 0,
            send_buffer_max: 65_535 << 14,
            recv_buffer_max: 65_535 << 14,
            max_sockets: usize::MAX,
            randomize_ports: false,
        }
    }
}

/// Everything the engine needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackConfig {
    /// Addressing.
    pub iface: IfaceConfig,
    /// TCP tunables.
    pub tcp: TcpConfig,
    /// ARP entries kept at most.
    pub arp_cache_size: usize,
    /// ARP entry lifetime.
    pub arp_ttl: Duration,
    /// Packets waiting for ARP resolution, per destination.
    pub arp_pending_per_dest: usize,
    /// Unresolved destinations with packets waiting, at most; a new one
    /// evicts the oldest (its packets dropped, counted in
    /// `Stats::drop_arp_pending_evicted`). Default 256.
    pub arp_pending_dests: usize,
    /// Packets waiting for ARP resolution over all destinations, at most
    /// (they hold page references). Default 1024.
    pub arp_pending_total: usize,
    /// Datagrams queued per UDP socket.
    pub udp_queue: usize,
    /// Zero-copy writes smaller than this many bytes are copied into the
    /// send queue instead (a tiny write costs more as its own buffer
    /// reference and extbuf than as a memcpy), unless they continue the
    /// range written just before (they join its chunk by reference);
    /// 0 never copies.
    pub zc_min_write: usize,
    /// IPv4 datagrams under reassembly at once; when full, the oldest is evicted.
    pub reassembly_datagrams: usize,
    /// Bytes held by IPv4 reassembly at most: payload plus a fixed cost per
    /// fragment and datagram; when full, the oldest datagrams are evicted.
    pub reassembly_bytes: usize,
    /// Time to collect all fragments of a datagram (RFC 791 suggests 15 s; Linux 30 s).
    pub reassembly_timeout: Duration,
    /// Secret for RFC 6528 ISNs (vary it per boot; fixed in tests for determinism).
    pub isn_secret: u64,
    /// Bytes of received frames (by [`crate::phy::RxBuf::footprint`], the
    /// memory each really pins) that TCP receive queues may keep in place
    /// with zero-copy receive, all connections together. Past it, payload is
    /// copied and the frame returned to the device at once (counted in
    /// `Stats::rx_frames_over_budget`). Keep it below the device's receive
    /// pool: the rest is the reserve ARP, ICMP, SYN, RST and ACK frames
    /// always find. `[zerocopy] recv_budget` sets it from the pool size.
    /// Default: 8 MiB.
    pub rx_pin_budget: usize,
    /// Received TCP payloads shorter than this many bytes are copied into
    /// the receive queue and their frame returned to the device at once,
    /// when the queue keeps no frame ahead of them (a copy behind kept
    /// frames would need a buffer of its own); longer ones stay in their
    /// frames (zero-copy receive), and bytes copied before such a payload
    /// go ahead of it as one buffer of their own (nothing behind a short
    /// segment is copied for it). Counted in `Stats::rx_bytes_copybreak`.
    /// A value above the MSS copies every segment that arrives with no
    /// frame kept; with a device that lends frames (no zero-copy receive)
    /// everything is copied anyway. Linux NIC drivers' rx copybreak
    /// (e1000e's default is 256): a small payload costs less copied than
    /// held (a reference, a budget charge, a queue entry, a whole frame
    /// pinned for a few bytes); the receive window is still scaled to what
    /// the device's frames pin (from the handshake's frame on). Measured:
    /// on the engine's in-memory wire copying was cheaper at every size up
    /// to a full segment; over virtio-user <-> vhost copying 64-byte HTTP
    /// requests cut the server's cycles per request ~5% and copying
    /// 309-byte responses slowed the client (a DPDK mbuf is cheaper to hold
    /// than the engine wire's frames). Full-sized segments stay in their
    /// frames (copied only past the receive budget). Copied bytes moved
    /// ahead of a kept frame, or handed to `read_zc`, are copied a second
    /// time into their own buffer (not counted again). 0 keeps every
    /// payload. Default 256.
    pub rx_copybreak: usize,
    /// Fragments kept per IPv4 datagram; one more discards it (FreeBSD's
    /// `net.inet.ip.maxfragsperpacket`, 16).
    pub reassembly_max_fragments: usize,
    /// IPv4 datagrams under reassembly per source address; a new one from a
    /// source at the cap evicts that source's oldest.
    pub reassembly_per_source: usize,
    /// Send pressure starts when less than this percentage of the page
    /// array is free (like the kernel's `tcp_mem` pressure, made fair):
    /// then a connection's send queue may hold at most a fair share of the
    /// pages, `max(send_share_floor, (free + held by send queues) /
    /// connections holding pages)`, and writes past it are short or would
    /// block (`Stats::tcp_send_pressure_limited`). 0 turns the rule (and the
    /// reserve) off. Default 25.
    pub send_low_water: usize,
    /// The fair share never falls below this many bytes per connection.
    /// Default 64 KiB.
    pub send_share_floor: usize,
    /// Percentage of the page array only connections with (almost) empty
    /// send queues (under 16 KiB) may take, so a new or idle connection can
    /// always send a first response. Default 5.
    pub send_reserve: usize,
    /// Receive buffer of each UDP socket, bytes: queued datagrams are
    /// charged their payload plus `udp::DATAGRAM_OVERHEAD` each, and one
    /// that would take the queue past it is dropped (counted in
    /// `Stats::drop_udp_rcvbuf_full`). Default 212,992 (Linux
    /// `rmem_default`).
    pub udp_recv_buffer: usize,
    /// UDP datagrams to closed ports get no ICMP port unreachable (FreeBSD's
    /// `net.inet.udp.blackhole`; counted in `Stats::udp_blackholed`).
    /// Default `false`.
    pub udp_blackhole: bool,
}

impl StackConfig {
    /// Defaults around the given addressing.
    pub fn new(iface: IfaceConfig) -> Self {
        StackConfig {
            iface,
            tcp: TcpConfig::default(),
            arp_cache_size: 1024,
            arp_ttl: Duration::from_secs(60),
            arp_pending_per_dest: 64,
            arp_pending_dests: 256,
            arp_pending_total: 1024,
            udp_queue: 1024,
            zc_min_write: 0,
            reassembly_datagrams: 64,
            reassembly_bytes: 1 << 20,
            reassembly_timeout: Duration::from_secs(30),
            isn_secret: 0x5eed_cafe_f00d_0001,
            rx_pin_budget: 8 << 20,
            rx_copybreak: 256,
            reassembly_max_fragments: 16,
            reassembly_per_source: 16,
            send_low_water: 25,
            send_share_floor: 64 * 1024,
            send_reserve: 5,
            udp_recv_buffer: crate::udp::DEFAULT_RECV_BUFFER,
            udp_blackhole: false,
        }
    }
}
