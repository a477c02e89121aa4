//! Counters for every drop reason and every notable event.

/// Declares a struct of `u64` counters and its `fields()` list from one
/// list of fields, so a new counter cannot be left out of reports.
macro_rules! counters {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[doc = $doc:expr])* pub $field:ident: u64,)* }) => {
        $(#[$meta])*
        pub struct $name {
            $($(#[doc = $doc])* pub $field: u64,)*
        }

        impl $name {
            /// Number of counters.
            pub const COUNT: usize = [$(stringify!($field)),*].len();

            /// Every counter with its name, in declaration order (for reports
            /// such as zcstat's).
            pub fn fields(&self) -> [(&'static str, u64); Self::COUNT] {
                [$((stringify!($field), self.$field)),*]
            }
        }
    };
}

counters! {
    /// Engine counters. New fields may be added in any release.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    #[non_exhaustive]
    pub struct Stats {
        /// Frames received from the device.
        pub rx_frames: u64,
        /// Frames handed to the device.
        pub tx_frames: u64,
        /// Payload bytes applications queued by copying (`write`).
        pub tx_bytes_copied: u64,
        /// Payload bytes applications queued without a copy (`write_zc`, `zc_send`).
        pub tx_bytes_zero_copy: u64,
        /// Received payload bytes kept in place in the device's frames (zero-copy receive).
        pub rx_bytes_zero_copy: u64,
        /// Received payload bytes copied into receive queues.
        pub rx_bytes_copied: u64,
        /// Received payload bytes copied because they were shorter than the
        /// copybreak (`StackConfig::rx_copybreak`), their frame freed at once
        /// (not in `rx_bytes_copied`).
        pub rx_bytes_copybreak: u64,
        /// Times kept frames were compacted into a copy (tiny payloads pinning big buffers).
        pub rx_compactions: u64,
        /// Bytes copied by those compactions.
        pub rx_bytes_compacted: u64,
        /// Zero-copy buffers dropped without being sent or released (pages reclaimed).
        pub zc_buffers_reclaimed: u64,
        /// Frames too short or malformed at the Ethernet layer.
        pub drop_eth_malformed: u64,
        /// Frames for another MAC address.
        pub drop_eth_not_ours: u64,
        /// Ethertypes we do not handle (IPv6, VLAN, ...).
        pub drop_eth_unknown_type: u64,
        /// Malformed ARP packets.
        pub drop_arp_malformed: u64,
        /// Malformed IPv4 headers (length, version, header checksum).
        pub drop_ipv4_malformed: u64,
        /// IPv4 packets for another address.
        pub drop_ipv4_not_ours: u64,
        /// IPv4 fragments dropped (overlap, inconsistency, limits, timeout).
        pub drop_ipv4_fragment: u64,
        /// IPv4 datagrams reassembled from fragments.
        pub ipv4_reassembled: u64,
        /// IPv4 packets of unknown protocol (answered with ICMP protocol unreachable).
        pub drop_ipv4_unknown_proto: u64,
        /// Malformed or checksum-failing ICMP.
        pub drop_icmp_malformed: u64,
        /// Malformed or checksum-failing TCP (bad lengths, options, flags like SYN+FIN).
        pub drop_tcp_malformed: u64,
        /// TCP segments for no socket (answered with RST).
        pub drop_tcp_no_socket: u64,
        /// TCP segments outside the receive window.
        pub drop_tcp_out_of_window: u64,
        /// Segments dropped by PAWS (RFC 7323): timestamp older than TS.Recent.
        pub drop_tcp_paws: u64,
        /// Out-of-order segments dropped at the memory cap.
        pub drop_tcp_ooo_full: u64,
        /// SYNs dropped with the backlog full.
        pub drop_tcp_backlog_full: u64,
        /// Malformed or checksum-failing UDP.
        pub drop_udp_malformed: u64,
        /// UDP datagrams for no socket.
        pub drop_udp_no_socket: u64,
        /// UDP datagrams dropped with the socket queue full.
        pub drop_udp_queue_full: u64,
        /// Packets dropped waiting for ARP (queue full or no answer).
        pub drop_arp_unresolved: u64,
        /// Frames still queued when the device shut down (`Stack::discard_unsent`).
        pub drop_unsent_at_shutdown: u64,
        /// Packets with no route.
        pub drop_no_route: u64,
        /// Writes refused or truncated because page memory ran out.
        pub pages_exhausted: u64,
        /// ICMP echo requests answered.
        pub icmp_echo_replies: u64,
        /// SYN-ACKs sent as SYN cookies (SYN queue full).
        pub tcp_syn_cookies_sent: u64,
        /// Connections established from a valid SYN cookie.
        pub tcp_syn_cookies_ok: u64,
        /// RSTs sent.
        pub tcp_rst_sent: u64,
        /// Closes with `SO_LINGER` whose timeout ran out (reset instead of finishing).
        pub tcp_linger_resets: u64,
        /// RFC 5961 challenge ACKs sent.
        pub tcp_challenge_acks: u64,
        /// Segments retransmitted on timeout.
        pub tcp_rto_retransmits: u64,
        /// Segments retransmitted by fast retransmit / recovery.
        pub tcp_fast_retransmits: u64,
        /// TCP frames sent with more than one segment's payload for the device to cut (TSO).
        pub tcp_tso_frames: u64,
        /// Bursts of new data the stack cut into MSS-sized frames itself
        /// (GSO, for a device without TSO; `TcpConfig::gso_max`).
        pub tcp_gso_bursts: u64,
        /// Connections established.
        pub tcp_established: u64,
        /// Connections reset by the peer.
        pub tcp_resets_received: u64,
        /// Connections aborted after too many retransmissions.
        pub tcp_timeouts: u64,
        /// Reference-count misuse caught (a bug; should stay 0).
        pub page_errors: u64,
        /// Window probes sent by the persist timer (zero window, or one too small to use).
        pub tcp_persist_probes: u64,
        /// IPv4 packets whose source may never be answered or create state
        /// (broadcast, multicast, 0/8, loopback 127/8, class E, our own
        /// address; RFC 1122 3.2.1.3): dropped before TCP/UDP/ICMP.
        pub drop_ipv4_bad_source: u64,
        /// TCP segments dropped for an unacceptable ACK (RFC 9293 3.10.7.4,
        /// RFC 5961 5.2: outside `[snd_una - max_snd_wnd, snd_nxt]`); their
        /// data and FIN are not processed.
        pub drop_tcp_bad_ack: u64,
        /// TCP segments to a listening port silently dropped (RST, or
        /// neither SYN nor ACK: RFC 9293 3.10.7.2).
        pub drop_tcp_listen: u64,
        /// Challenge ACKs and ACKs to rejected segments not sent because of
        /// the per-connection limit (`TcpConfig::invalid_ack_burst`).
        pub tcp_acks_rate_limited: u64,
        /// Challenge ACKs not sent because of the engine-wide per-second
        /// budget (`TcpConfig::challenge_ack_limit`).
        pub tcp_challenge_acks_global_limited: u64,
        /// Received TCP frames a receive queue would have kept in place but
        /// receive queues pin the whole receive budget
        /// (`StackConfig::rx_pin_budget`): their payload is copied and the
        /// frame freed at once.
        pub rx_frames_over_budget: u64,
        /// Out-of-order TCP payload bytes not stored because they were
        /// already held (overlapping or duplicate segments, trimmed).
        pub tcp_ooo_bytes_trimmed: u64,
        /// IPv4 datagrams dropped for overlapping fragments that differ
        /// from what is held (exact duplicates are ignored instead).
        pub drop_ipv4_frag_overlap: u64,
        /// IPv4 datagrams dropped for more fragments than the per-datagram cap.
        pub drop_ipv4_frag_too_many: u64,
        /// IPv4 fragments dropped as malformed: beyond 65,535 bytes, a middle
        /// fragment not a multiple of 8, empty, or an inconsistent end.
        pub drop_ipv4_frag_invalid: u64,
        /// IPv4 datagrams under reassembly evicted (oldest first) to make
        /// room: table full, per-source cap, or memory cap.
        pub drop_ipv4_frag_evicted: u64,
        /// IPv4 datagrams given up at the reassembly timeout.
        pub drop_ipv4_frag_timeout: u64,
        /// Exact duplicate IPv4 fragments ignored.
        pub ipv4_frag_duplicates: u64,
        /// Packets waiting for ARP dropped because their destination was
        /// evicted to make room for a new one (`StackConfig::arp_pending_dests`,
        /// `arp_pending_total`).
        pub drop_arp_pending_evicted: u64,
        /// Writes cut short or refused (would-block) because the page array
        /// is under pressure and the connection holds its fair share of it
        /// (`StackConfig::send_low_water`).
        pub tcp_send_pressure_limited: u64,
        /// Zero-copy buffer allocations refused because the page array is
        /// under pressure (the connection's share, or the reserve).
        pub zc_alloc_pressure_limited: u64,
        /// ICMP errors about a TCP segment that matched no connection
        /// (ignored).
        pub drop_icmp_tcp_no_conn: u64,
        /// ICMP errors whose quoted sequence number lies outside the
        /// connection's `[snd_una, snd_max)` (RFC 5927 4.1; ignored).
        pub drop_icmp_tcp_bad_seq: u64,
        /// ICMP errors acted on by TCP (connect failed, soft error recorded,
        /// path MTU lowered).
        pub tcp_icmp_errors: u64,
        /// Path MTU decreases from ICMP "fragmentation needed" (RFC 1191).
        pub tcp_pmtu_updates: u64,
        /// TCP segments whose data lay at or beyond the peer's known FIN
        /// (RFC 9293 3.10.7.4: the FIN ends the stream; bytes refused).
        pub drop_tcp_data_beyond_fin: u64,
        /// FINs at a sequence number other than the one already known
        /// (a FIN never moves; the bogus one is ignored).
        pub drop_tcp_fin_moved: u64,
        /// UDP datagrams dropped because the socket's queue would exceed
        /// its receive buffer in bytes (payload plus per-datagram overhead).
        pub drop_udp_rcvbuf_full: u64,
        /// Connections reset because data arrived after the application
        /// closed them (RFC 1122 4.2.2.13; Linux `TCPAbortOnData`).
        pub tcp_abort_on_data: u64,
        /// SYN+FIN segments dropped whole (`TcpConfig::drop_synfin`).
        pub drop_tcp_synfin: u64,
        /// SYN+FIN segments handled as a SYN: the FIN is never reached in
        /// RFC 9293 3.10.7's order (it only counts in a closed port's RST).
        pub tcp_synfin_fin_ignored: u64,
        /// RST segments that also had SYN or FIN set, handled as a RST
        /// (RFC 9293 3.10.7 checks RST before SYN and FIN).
        pub tcp_rst_other_flags_ignored: u64,
        /// Connections reset by an in-window SYN (`TcpConfig::insecure_syn`,
        /// RFC 793 3.9; off by default, RFC 5961 4.2 challenge ACKs then).
        pub tcp_insecure_syn_resets: u64,
        /// Local ports examined by the RSS check while choosing an ephemeral
        /// port for a connect (`Stack::set_rss`; F-Stack `ff_rss_check`).
        pub rss_connect_ports_tried: u64,
        /// Connects refused because the explicit local port's replies would
        /// land on another lcore's queue (`TcpError::RssWrongQueue`).
        pub rss_connect_refused: u64,
        /// Segments to closed TCP ports left without a RST
        /// (`TcpConfig::blackhole`, FreeBSD's `net.inet.tcp.blackhole`).
        pub tcp_blackholed: u64,
        /// UDP datagrams to closed ports left without an ICMP port
        /// unreachable (`StackConfig::udp_blackhole`).
        pub udp_blackholed: u64,
        /// Sockets refused by `TcpConfig::max_sockets` (`kern.ipc.maxsockets`):
        /// connects and listens that failed with `NoBuffers`, SYNs dropped.
        pub tcp_max_sockets_refused: u64,
        /// Orphaned TIME-WAIT connections freed early, oldest first, to stay
        /// within `TcpConfig::max_time_wait` (`net.inet.tcp.maxtcptw`).
        pub tcp_time_wait_recycled: u64,
        /// Polls that left due TCP timers for the next poll (more than a
        /// slice of them were due at once; see `tcp::timers::TIMER_SLICE`).
        pub tcp_timer_slices_deferred: u64,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fields_lists_every_counter() {
        let dbg = format!("{:?}", super::Stats::default());
        let names: Vec<&str> = super::Stats::default().fields().iter().map(|(n, _)| *n).collect();
        let in_debug = dbg.matches(": ").count();
        assert_eq!(names.len(), in_debug, "a counter is missing from Stats::fields: {dbg}");
        for n in names {
            assert!(dbg.contains(&format!("{n}: ")), "{n}");
        }
    }
}
