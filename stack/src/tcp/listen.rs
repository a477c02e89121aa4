//! Listeners: the SYN backlog and accept queue, and SYN cookies (RFC 4987)
//! when the backlog is full.

use super::*;

impl TcpEngine {
    /// Listens on `port` of our address with an accept backlog of `backlog`
    /// (capped by `somaxconn`) and default options.
    pub fn listen(&mut self, port: u16, backlog: usize) -> Result<SocketHandle, TcpError> {
        self.listen_with(port, backlog, &SocketOptions::default())
    }

    /// Listens with `opts`, which accepted connections inherit. Fails with
    /// `AddrInUse` if the port has a listener, or, without `SO_REUSEADDR`, if
    /// any connection (even one in TIME-WAIT) still uses it as its local port.
    pub fn listen_with(&mut self, port: u16, backlog: usize, opts: &SocketOptions) -> Result<SocketHandle, TcpError> {
        if port == 0 || self.listeners.contains_key(&port) || (!opts.reuse_addr && self.port_in_use(port)) {
            return Err(TcpError::AddrInUse);
        }
        if self.socket_limit_reached() {
            return Err(TcpError::NoBuffers);
        }
        let local = SocketAddrV4::new(self.local_ip, port);
        let backlog = backlog.clamp(1, self.cfg.somaxconn.max(1));
        let conn_cfg = opts.conn_config(&self.shared_cfg);
        let l = Listener { local, backlog, accept_q: VecDeque::new(), half_open: 0, opts: *opts, conn_cfg };
        let idx = self.alloc_slot(Sock::Listener(l));
        self.listeners.insert(port, idx);
        Ok(self.handle(idx))
    }

    /// Takes an established connection from a listener's accept queue.
    pub fn accept(&mut self, listener: SocketHandle) -> Result<(SocketHandle, SocketAddrV4), TcpError> {
        let l = self.listener_mut(listener)?;
        let idx = l.accept_q.pop_front().ok_or(TcpError::WouldBlock)?;
        let h = self.handle(idx);
        let c = self.conn_mut(h)?;
        c.parent = None;
        Ok((h, c.remote))
    }

    /// Connections waiting in a listener's accept queue.
    pub fn accept_queue_len(&mut self, listener: SocketHandle) -> Result<usize, TcpError> {
        Ok(self.listener_mut(listener)?.accept_q.len())
    }

    #[inline(never)]
    pub(super) fn on_listen_syn(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &SegIn<'_>,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
    ) {
        let Some(&lidx) = self.listeners.get(&local.port()) else { return };
        let full = self.live_sockets() >= self.cfg.max_sockets;
        let Some(Slot { sock: Some(Sock::Listener(l)), .. }) = self.slots.get_mut(lidx as usize) else { return };
        if l.accept_q.len() >= l.backlog {
            // Nobody is accepting: like Linux, drop and let the peer retry.
            stats.drop_tcp_backlog_full += 1;
            return;
        }
        if full {
            // kern.ipc.maxsockets: no socket for the connection; the peer retries.
            stats.tcp_max_sockets_refused += 1;
            return;
        }
        if l.half_open >= l.backlog {
            if self.cfg.syn_cookies {
                // SYN queue full: answer statelessly (RFC 4987 3.6).
                let cookie = self.cookie(local, remote, seg.seq, mss_index(seg.mss), now);
                let mut s = SegOut::empty(local, remote, cookie);
                s.syn = true;
                s.ack = Some(seg.seq + 1);
                s.mss = Some(COOKIE_MSS[usize::from(mss_index(seg.mss))]);
                s.window = self.cfg.recv_buffer.min(65_535) as u16;
                out.push(s);
                stats.tcp_syn_cookies_sent += 1;
            } else {
                stats.drop_tcp_backlog_full += 1;
            }
            return;
        }
        l.half_open += 1;
        let (opts, cfg) = (l.opts, l.conn_cfg.clone());
        let iss = self.isn(local, remote, now);
        let mut conn = Conn::accept_syn(&cfg, local, remote, iss, self.mtu, seg, now);
        conn.apply_options(&opts, now);
        conn.parent = Some(lidx);
        conn.events_pending = false;
        let idx = self.alloc_conn(conn);
        self.conns.insert((local, remote), idx);
        self.flow_memo = None;
        self.mark(idx);
    }

    /// RFC 4987 cookie: 5 bits of time (64 s ticks), 3 bits of MSS index, 24
    /// bits of keyed hash over the 4-tuple, the peer's ISN and the time.
    pub(super) fn cookie(
        &self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        peer_isn: Seq,
        mss_i: u8,
        now: Instant,
    ) -> Seq {
        let t = (now.total_micros() / 64_000_000) as u32 & 31;
        Seq((t << 27) | (u32::from(mss_i) << 24) | self.cookie_hash(local, remote, peer_isn, t))
    }

    pub(super) fn cookie_hash(&self, local: SocketAddrV4, remote: SocketAddrV4, peer_isn: Seq, t: u32) -> u32 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (self.secret ^ 0xC00C_1E5E_C00C_1E5E).hash(&mut h);
        local.hash(&mut h);
        remote.hash(&mut h);
        peer_isn.0.hash(&mut h);
        t.hash(&mut h);
        (h.finish() as u32) & 0x00ff_ffff
    }

    /// Validates a returned cookie (at most one 64 s tick old); the MSS index.
    pub(super) fn check_cookie(
        &self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        peer_isn: Seq,
        cookie: Seq,
        now: Instant,
    ) -> Option<u8> {
        let t = cookie.0 >> 27;
        let now_t = (now.total_micros() / 64_000_000) as u32 & 31;
        if now_t.wrapping_sub(t) & 31 > 1 {
            return None;
        }
        let mss_i = ((cookie.0 >> 24) & 7) as u8;
        (usize::from(mss_i) < COOKIE_MSS.len()
            && cookie.0 & 0x00ff_ffff == self.cookie_hash(local, remote, peer_isn, t))
        .then_some(mss_i)
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(never)]
    pub(super) fn establish_from_cookie(
        &mut self,
        now: Instant,
        local: SocketAddrV4,
        remote: SocketAddrV4,
        seg: &SegIn<'_>,
        iss: Seq,
        mss_i: u8,
        mem: &mut dyn PageMemory,
        stats: &mut Stats,
        out: &mut Vec<SegOut>,
    ) {
        let Some(&lidx) = self.listeners.get(&local.port()) else { return };
        // Rebuild the SYN the cookie stands for (no window scale, SACK or
        // timestamps survive a cookie: RFC 4987 3.6's known limitation).
        let syn = SegIn {
            seq: seg.seq + u32::MAX,
            ack: None,
            syn: true,
            fin: false,
            rst: false,
            wnd: seg.wnd,
            mss: Some(COOKIE_MSS[usize::from(mss_i)]),
            wscale: None,
            sack_permitted: false,
            sack: [None; 3],
            ts: None,
            payload: &[],
            // The ACK's frame: its footprint scales the receive window.
            rx: seg.rx,
        };
        let (opts, cfg) = match &self.slots[lidx as usize].sock {
            Some(Sock::Listener(l)) => (l.opts, l.conn_cfg.clone()),
            _ => return,
        };
        let mut conn = Conn::accept_syn(&cfg, local, remote, iss, self.mtu, &syn, now);
        conn.apply_options(&opts, now);
        conn.parent = Some(lidx);
        conn.events_pending = false;
        conn.syn_ack_sent();
        let idx = self.alloc_conn(conn);
        self.conns.insert((local, remote), idx);
        self.flow_memo = None;
        if let Some(Slot { sock: Some(Sock::Listener(l)), .. }) = self.slots.get_mut(lidx as usize) {
            l.half_open += 1; // the ACK below moves it to the accept queue
        }
        self.ingress_conn(now, idx, seg, mem, stats, out);
    }
}
