//! Segment-level tests of the socket-API pieces conformance scripts need
//! (issue 11): `MSG_PEEK`, `FIONREAD`, `SHUT_RD`, `TCP_MAXSEG`, `SO_ERROR`,
//! `EPIPE`, ICMP errors delivered to TCP (RFC 1122 4.2.3.9, RFC 1191,
//! RFC 5927) and urgent data delivered in line (RFC 6093).
mod common;

use common::script::*;
use common::*;
use zcstack::mem::HeapPages;
use zcstack::phy::queue::QueueDevice;
use zcstack::tcp::{SockOpt, SockOptName, SocketOptions};
use zcstack::wire::*;
use zcstack::{Instant, SocketHandle, Stack, State, TcpError};

const PEER_PORT: u16 = 80;

fn take(st: &mut Stack<HeapPages>, dev: &mut QueueDevice, now: Instant) -> Vec<Got> {
    st.poll(now, dev);
    dev.take_tx().iter().filter_map(|f| decode_tcp(f)).collect()
}

/// An active open to the scripted peer with `opts`: returns the handle, our
/// port and the SYN we sent.
fn syn_sent(opts: &SocketOptions) -> (Stack<HeapPages>, QueueDevice, SocketHandle, u16, Got) {
    let (mut st, mut dev) = stack();
    learn_peer(&mut st, &mut dev);
    let h = st.tcp_connect_with(sa(PEER_IP, PEER_PORT), 0, opts, Instant::ZERO).unwrap();
    let port = st.tcp().addrs(h).unwrap().0.port();
    let mut out = take(&mut st, &mut dev, Instant::ZERO);
    assert_eq!(out.len(), 1, "{out:?}");
    let syn = out.remove(0);
    assert_eq!(syn.ctl, TcpControl::Syn);
    (st, dev, h, port, syn)
}

/// A segment from the peer to our `port`.
fn from_peer<'a>(port: u16, seq: u32, ack: Option<u32>, ctl: TcpControl) -> Seg<'a> {
    let mut s = seg(seq, ack, ctl);
    s.sport = PEER_PORT;
    s.dport = port;
    s
}

/// An ICMP destination unreachable (`code`, next-hop `mtu`) from the peer
/// quoting a TCP segment we sent from `our_port` to `peer_port` with `seq`.
fn icmp_unreach(code: u8, mtu: u16, our_port: u16, peer_port: u16, seq: u32, quoted_len: u16) -> Vec<u8> {
    icmp_frame(icmp_body(code, mtu, our_port, peer_port, seq, quoted_len))
}

/// An ICMP message with its checksum filled, in a frame from the peer.
fn icmp_frame(mut m: Vec<u8>) -> Vec<u8> {
    Icmpv4Packet::new_unchecked(&mut m[..]).fill_checksum();
    eth_ip(IpProtocol::Icmp, &m)
}

/// The ICMP message of [`icmp_unreach`], checksum not filled.
fn icmp_body(code: u8, mtu: u16, our_port: u16, peer_port: u16, seq: u32, quoted_len: u16) -> Vec<u8> {
    let mut m = vec![3, code, 0, 0, 0, 0];
    m.extend_from_slice(&mtu.to_be_bytes());
    let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 6, 0, 0];
    ip[2..4].copy_from_slice(&quoted_len.to_be_bytes());
    ip.extend_from_slice(&A_IP.octets());
    ip.extend_from_slice(&PEER_IP.octets());
    m.extend_from_slice(&ip);
    m.extend_from_slice(&our_port.to_be_bytes());
    m.extend_from_slice(&peer_port.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m
}

fn pending_error(st: &mut Stack<HeapPages>, h: SocketHandle) -> Option<TcpError> {
    match st.tcp_get_option(h, SockOptName::Error).unwrap() {
        SockOpt::Error(e) => e,
        o => panic!("SO_ERROR read back {o:?}"),
    }
}

fn maxseg(st: &mut Stack<HeapPages>, h: SocketHandle) -> u16 {
    match st.tcp_get_option(h, SockOptName::MaxSeg).unwrap() {
        SockOpt::MaxSeg(m) => m,
        o => panic!("TCP_MAXSEG read back {o:?}"),
    }
}

/// Runs timers until the connection leaves SYN-SENT/ESTABLISHED (bounded).
fn run_until_closed(st: &mut Stack<HeapPages>, dev: &mut QueueDevice, h: SocketHandle, mut now: Instant) -> Instant {
    for _ in 0..200 {
        if st.tcp_state(h) == Ok(State::Closed) {
            return now;
        }
        now = st.poll_at().expect("a timer runs while the connection lives").max(now);
        st.poll(now, dev);
        dev.take_tx();
    }
    panic!("still {:?} after 200 timer runs", st.tcp_state(h));
}

#[test]
fn peek_leaves_data_and_fionread_counts_it() {
    let (mut st, mut dev, h, snd) = established();
    assert_eq!(st.tcp_recv_queued(h), Ok(0));
    assert_eq!(st.tcp_peek(h, &mut [0u8; 8]), Err(TcpError::WouldBlock));
    let mut d = seg(1001, Some(snd), TcpControl::Psh);
    d.payload = b"hello world";
    exchange(&mut st, &mut dev, Instant::from_millis(2), vec![tcp_frame(d)]);
    assert_eq!(st.tcp_recv_queued(h), Ok(11));
    let mut buf = [0u8; 5];
    assert_eq!(st.tcp_peek(h, &mut buf), Ok(5));
    assert_eq!(&buf, b"hello");
    let mut big = [0u8; 64];
    assert_eq!(st.tcp_peek(h, &mut big), Ok(11), "a peek never consumes");
    assert_eq!(&big[..11], b"hello world");
    assert_eq!(st.tcp_recv_queued(h), Ok(11));
    assert_eq!(st.tcp_read(h, &mut buf), Ok(5));
    assert_eq!(st.tcp_recv_queued(h), Ok(6));
    assert_eq!(st.tcp_peek(h, &mut big), Ok(6));
    assert_eq!(&big[..6], b" world");
    assert_eq!(st.tcp_read(h, &mut big), Ok(6));
    assert_eq!(&big[..6], b" world");
    assert_eq!(st.tcp_recv_queued(h), Ok(0));
    // The peer's FIN: a peek sees end of stream like a read.
    exchange(&mut st, &mut dev, Instant::from_millis(3), vec![tcp_frame(seg(1012, Some(snd), TcpControl::Fin))]);
    assert_eq!(st.tcp_peek(h, &mut big), Ok(0));
    assert_eq!(st.tcp_read(h, &mut big), Ok(0));
}

/// A vectored peek fills its buffers in order (an empty one skipped) from
/// data spread over several received segments, consuming nothing.
#[test]
fn peek_vectored_fills_every_buffer_in_order() {
    let (mut st, mut dev, h, snd) = established();
    let mut x = [0u8; 4];
    assert_eq!(st.tcp_peek_vectored(h, &mut [&mut x[..]]), Err(TcpError::WouldBlock));
    for (i, part) in [&b"hello "[..], b"vectored ", b"world"].iter().enumerate() {
        let mut d = seg(1001 + [0, 6, 15][i], Some(snd), TcpControl::Psh);
        d.payload = part;
        exchange(&mut st, &mut dev, Instant::from_millis(2 + i as u64), vec![tcp_frame(d)]);
    }
    assert_eq!(st.tcp_recv_queued(h), Ok(20));
    let (mut a, mut b, mut c) = ([0u8; 3], [0u8; 10], [0u8; 64]);
    let n = st.tcp_peek_vectored(h, &mut [&mut a[..], &mut [][..], &mut b[..], &mut c[..]]);
    assert_eq!(n, Ok(20));
    assert_eq!((&a[..], &b[..], &c[..7]), (&b"hel"[..], &b"lo vectore"[..], &b"d world"[..]));
    // Less room than data: the buffers are filled, the rest stays.
    let (mut a, mut b) = ([0u8; 2], [0u8; 2]);
    assert_eq!(st.tcp_peek_vectored(h, &mut [&mut a[..], &mut b[..]]), Ok(4));
    assert_eq!((&a, &b), (b"he", b"ll"));
    assert_eq!(st.tcp_peek_vectored(h, &mut [&mut [][..]]), Ok(0), "no room");
    let mut all = [0u8; 32];
    assert_eq!(st.tcp_read(h, &mut all), Ok(20), "a peek consumes nothing");
    assert_eq!(&all[..20], b"hello vectored world");
}

/// A read with no room answers as Linux's `tcp_recvmsg` does for a length
/// of 0: would-block on a live, idle connection (it returned 0, which
/// reads as end of stream), 0 with data queued or at end of stream, and a
/// pending error once (it was left pending) — for read, readv and peek.
#[test]
fn zero_length_reads_are_not_end_of_stream() {
    let (mut st, mut dev, h, snd) = established();
    assert_eq!(st.tcp_read(h, &mut []), Err(TcpError::WouldBlock));
    assert_eq!(st.tcp_peek(h, &mut []), Err(TcpError::WouldBlock));
    assert_eq!(st.tcp_readv(h, &mut []), Err(TcpError::WouldBlock));
    assert_eq!(st.tcp_readv(h, &mut [&mut [][..], &mut [][..]]), Err(TcpError::WouldBlock));
    assert_eq!(st.tcp_peek_vectored(h, &mut []), Err(TcpError::WouldBlock));
    let mut d = seg(1001, Some(snd), TcpControl::Psh);
    d.payload = b"data";
    exchange(&mut st, &mut dev, Instant::from_millis(2), vec![tcp_frame(d)]);
    assert_eq!(st.tcp_read(h, &mut []), Ok(0));
    assert_eq!(st.tcp_readv(h, &mut [&mut [][..]]), Ok(0));
    assert_eq!(st.tcp_peek_vectored(h, &mut [&mut [][..]]), Ok(0));
    assert_eq!(st.tcp_recv_queued(h), Ok(4), "nothing consumed");
    assert_eq!(st.tcp_read(h, &mut [0u8; 8]), Ok(4));
    exchange(&mut st, &mut dev, Instant::from_millis(3), vec![tcp_frame(seg(1005, Some(snd), TcpControl::Fin))]);
    assert_eq!(st.tcp_read(h, &mut []), Ok(0), "end of stream");

    let (mut st, mut dev, h, snd) = established();
    exchange(&mut st, &mut dev, Instant::from_millis(2), vec![tcp_frame(seg(1001, Some(snd), TcpControl::Rst))]);
    assert_eq!(st.tcp_read(h, &mut []), Err(TcpError::Reset), "the error, once");
    assert_eq!(st.tcp_read(h, &mut []), Ok(0));
}

#[test]
fn shut_rd_discards_queued_and_later_data_acknowledging_it() {
    let (mut st, mut dev, h, snd) = established();
    let mut d = seg(1001, Some(snd), TcpControl::Psh);
    d.payload = b"queued";
    exchange(&mut st, &mut dev, Instant::from_millis(2), vec![tcp_frame(d)]);
    assert_eq!(st.tcp_recv_queued(h), Ok(6));
    st.tcp_shutdown_read(h).unwrap();
    assert_eq!(st.tcp_recv_queued(h), Ok(0), "queued data is discarded");
    assert_eq!(st.tcp_read(h, &mut [0u8; 16]), Ok(0), "reads are at end of stream");
    // Later data is acknowledged (the peer is never stalled) and discarded.
    let data = [7u8; 3000];
    let mut seq = 1007;
    let mut acks = Vec::new();
    for (i, chunk) in data.chunks(1000).enumerate() {
        let mut d = seg(seq, Some(snd), TcpControl::None);
        d.payload = chunk;
        acks.extend(exchange(&mut st, &mut dev, Instant::from_millis(10 + i as u64), vec![tcp_frame(d)]));
        seq += chunk.len() as u32;
    }
    acks.extend(take(&mut st, &mut dev, Instant::from_millis(100)));
    let last = acks.last().expect("the data is acknowledged");
    assert_eq!(last.ack, Some(seq), "everything is acknowledged");
    assert!(acks.iter().all(|g| g.win > 0), "the window stays open: {acks:?}");
    assert_eq!(st.tcp_recv_queued(h), Ok(0));
    assert_eq!(st.tcp_read(h, &mut [0u8; 16]), Ok(0));
    assert_eq!(st.tcp_peek(h, &mut [0u8; 16]), Ok(0));
    // Sending still works (SHUT_RD leaves the send side alone), and close
    // is graceful: nothing unread is left to provoke a RST.
    assert_eq!(st.tcp_write(h, b"still sending"), Ok(13));
    let out = take(&mut st, &mut dev, Instant::from_millis(101));
    assert!(out.iter().any(|g| g.payload == b"still sending"), "{out:?}");
    st.tcp_close(h, Instant::from_millis(102)).unwrap();
    let out = take(&mut st, &mut dev, Instant::from_millis(102));
    assert!(out.iter().all(|g| g.ctl != TcpControl::Rst), "{out:?}");
    assert!(out.iter().any(|g| g.ctl == TcpControl::Fin), "{out:?}");
}

#[test]
fn maxseg_get_and_set_clamp_the_mss_offered_and_used() {
    // Default: the link's MSS before the handshake.
    let (mut st, _dev, h, _port, syn) = syn_sent(&SocketOptions::default());
    assert_eq!(syn.mss, Some(1460));
    assert_eq!(maxseg(&mut st, h), 1460);
    // Linux's bounds.
    assert_eq!(st.tcp_set_option(h, SockOpt::MaxSeg(87), Instant::ZERO), Err(TcpError::InvalidArgument));
    assert_eq!(st.tcp_set_option(h, SockOpt::MaxSeg(32_768), Instant::ZERO), Err(TcpError::InvalidArgument));
    assert_eq!(st.tcp_set_option(h, SockOpt::Error(None), Instant::ZERO), Err(TcpError::InvalidArgument));

    // Set before connect: the SYN offers it, and data segments respect it.
    let mut opts = SocketOptions::default();
    opts.set(SockOpt::MaxSeg(1000));
    let (mut st, mut dev, h, port, syn) = syn_sent(&opts);
    assert_eq!(syn.mss, Some(1000), "the MSS option offered");
    assert_eq!(maxseg(&mut st, h), 1000);
    let mut sa_ = from_peer(port, 5000, Some(syn.seq + 1), TcpControl::Syn);
    sa_.mss = Some(1460);
    sa_.ts = Some((100, syn.ts.unwrap().0));
    let out = exchange(&mut st, &mut dev, Instant::from_millis(1), vec![tcp_frame(sa_)]);
    assert_eq!(st.tcp_state(h), Ok(State::Established), "{out:?}");
    assert_eq!(maxseg(&mut st, h), 1000 - 12, "the MSS less the timestamp option, as Linux reports");
    st.tcp_set_option(h, SockOpt::NoDelay(true), Instant::from_millis(1)).unwrap();
    let data = pattern(3, 5000);
    assert_eq!(st.tcp_write(h, &data), Ok(5000));
    let out = take(&mut st, &mut dev, Instant::from_millis(2));
    let sent: Vec<u8> = out.iter().flat_map(|g| g.payload.clone()).collect();
    assert!(sent == data, "the data goes out whole and in order");
    let sizes: Vec<usize> = out.iter().map(|g| g.payload.len()).collect();
    assert_eq!(sizes, [988, 988, 988, 988, 988, 60]);

    // On a listener: the SYN-ACK offers it.
    let (mut st, mut dev) = stack();
    learn_peer(&mut st, &mut dev);
    let l = st.tcp_listen(80, 8).unwrap();
    st.tcp_set_option(l, SockOpt::MaxSeg(700), Instant::ZERO).unwrap();
    assert_eq!(st.tcp_get_option(l, SockOptName::MaxSeg), Ok(SockOpt::MaxSeg(700)));
    let mut s = seg(1000, None, TcpControl::Syn);
    s.mss = Some(1460);
    let out = exchange(&mut st, &mut dev, Instant::ZERO, vec![tcp_frame(s)]);
    assert_eq!(out[0].mss, Some(700), "{out:?}");
}

#[test]
fn so_error_reports_refused_once_then_writes_get_epipe() {
    let (mut st, mut dev, h, port, syn) = syn_sent(&SocketOptions::default());
    assert_eq!(pending_error(&mut st, h), None);
    let rst = from_peer(port, 0, Some(syn.seq + 1), TcpControl::Rst);
    exchange(&mut st, &mut dev, Instant::from_millis(1), vec![tcp_frame(rst)]);
    assert_eq!(st.tcp_state(h), Ok(State::Closed));
    assert_eq!(pending_error(&mut st, h), Some(TcpError::Refused));
    assert_eq!(pending_error(&mut st, h), None, "reading SO_ERROR clears it");
    assert_eq!(st.tcp_write(h, b"x"), Err(TcpError::Shutdown), "EPIPE once the error was reported");
    assert_eq!(st.tcp_read(h, &mut [0u8; 4]), Ok(0));
}

#[test]
fn reset_is_reported_once_by_so_error_or_by_the_first_write_then_epipe() {
    // SO_ERROR first.
    let (mut st, mut dev, h, snd) = established();
    exchange(&mut st, &mut dev, Instant::from_millis(2), vec![tcp_frame(seg(1001, Some(snd), TcpControl::Rst))]);
    assert_eq!(pending_error(&mut st, h), Some(TcpError::Reset));
    assert_eq!(pending_error(&mut st, h), None);
    assert_eq!(st.tcp_write(h, b"x"), Err(TcpError::Shutdown));
    assert_eq!(st.tcp_write(h, b"x"), Err(TcpError::Shutdown));
    assert_eq!(st.tcp_read(h, &mut [0u8; 4]), Ok(0), "after the report, end of stream");
    assert_eq!(st.tcp().error(h), Some(TcpError::Reset), "the reason stays known");

    // The first write reports it (ECONNRESET), later ones EPIPE.
    let (mut st, mut dev, h, snd) = established();
    exchange(&mut st, &mut dev, Instant::from_millis(2), vec![tcp_frame(seg(1001, Some(snd), TcpControl::Rst))]);
    assert_eq!(st.tcp_write(h, b"x"), Err(TcpError::Reset));
    assert_eq!(st.tcp_write(h, b"x"), Err(TcpError::Shutdown));
    assert_eq!(pending_error(&mut st, h), None);

    // The first read reports it.
    let (mut st, mut dev, h, snd) = established();
    exchange(&mut st, &mut dev, Instant::from_millis(2), vec![tcp_frame(seg(1001, Some(snd), TcpControl::Rst))]);
    assert_eq!(st.tcp_read(h, &mut [0u8; 4]), Err(TcpError::Reset));
    assert_eq!(st.tcp_read(h, &mut [0u8; 4]), Ok(0));
    assert_eq!(st.tcp_write(h, b"x"), Err(TcpError::Shutdown));
}

#[test]
fn write_after_shutdown_is_epipe() {
    let (mut st, mut dev, h, _snd) = established();
    st.tcp_shutdown(h).unwrap();
    assert_eq!(st.tcp_write(h, b"late"), Err(TcpError::Shutdown));
    let out = take(&mut st, &mut dev, Instant::from_millis(2));
    assert!(out.iter().any(|g| g.ctl == TcpControl::Fin), "{out:?}");
    assert_eq!(st.tcp_write(h, b"late"), Err(TcpError::Shutdown));
    assert_eq!(pending_error(&mut st, h), None, "a shutdown is no error");
}

#[test]
fn so_error_reports_a_connect_timeout() {
    let (mut st, mut dev, h, _port, _syn) = syn_sent(&SocketOptions::default());
    run_until_closed(&mut st, &mut dev, h, Instant::ZERO);
    assert_eq!(pending_error(&mut st, h), Some(TcpError::TimedOut));
    assert_eq!(pending_error(&mut st, h), None);
    assert_eq!(st.stats().tcp_timeouts, 1);
}

#[test]
fn icmp_unreachable_in_syn_sent_ends_the_connect() {
    for (code, want) in [
        (3u8, TcpError::Refused),
        (2, TcpError::Refused),
        (1, TcpError::HostUnreachable),
        (0, TcpError::HostUnreachable),
        (10, TcpError::HostUnreachable),
        (13, TcpError::HostUnreachable),
    ] {
        let (mut st, mut dev, h, port, syn) = syn_sent(&SocketOptions::default());
        let out = exchange(
            &mut st,
            &mut dev,
            Instant::from_millis(1),
            vec![icmp_unreach(code, 0, port, PEER_PORT, syn.seq, 60)],
        );
        assert!(out.is_empty(), "code {code}: {out:?}");
        assert_eq!(st.tcp_state(h), Ok(State::Closed), "code {code}");
        assert_eq!(st.stats().tcp_icmp_errors, 1);
        assert_eq!(st.tcp_read(h, &mut [0u8; 4]), Err(want), "code {code}");
        assert_eq!(pending_error(&mut st, h), None, "reported by the read");
        assert_eq!(st.tcp_connections(), 0);
        // No SYN retransmission follows.
        assert!(st.poll_at().is_none_or(|t| {
            st.poll(t, &mut dev);
            dev.take_tx().is_empty()
        }));
    }
}

#[test]
fn icmp_errors_with_a_sequence_number_not_in_flight_are_ignored_and_counted() {
    let (mut st, mut dev, h, port, syn) = syn_sent(&SocketOptions::default());
    for (i, seq) in [syn.seq.wrapping_add(1), syn.seq.wrapping_sub(1), syn.seq ^ 0x8000_0000].into_iter().enumerate() {
        exchange(&mut st, &mut dev, Instant::from_millis(1), vec![icmp_unreach(3, 0, port, PEER_PORT, seq, 60)]);
        assert_eq!(st.tcp_state(h), Ok(State::SynSent));
        assert_eq!(st.stats().drop_icmp_tcp_bad_seq, i as u64 + 1);
    }
    // No such connection (another port), and a quote too short to check.
    exchange(&mut st, &mut dev, Instant::from_millis(1), vec![icmp_unreach(3, 0, port ^ 1, PEER_PORT, syn.seq, 60)]);
    assert_eq!(st.stats().drop_icmp_tcp_no_conn, 1);
    let mut short = icmp_body(3, 0, port, PEER_PORT, syn.seq, 60);
    short.truncate(short.len() - 4); // the quoted sequence number cut off
    let before = st.stats().drop_icmp_malformed;
    exchange(&mut st, &mut dev, Instant::from_millis(1), vec![icmp_frame(short)]);
    assert_eq!(st.stats().drop_icmp_malformed, before + 1);
    assert_eq!(st.tcp_state(h), Ok(State::SynSent));
    assert_eq!(st.stats().tcp_icmp_errors, 0);

    // Established: a quote below snd_una (old data) or at/after snd_max is
    // not believed either.
    let (mut st, mut dev, h, snd) = established();
    st.tcp_write(h, &[1u8; 100]).unwrap();
    take(&mut st, &mut dev, Instant::from_millis(2));
    for seq in [snd - 1, snd + 100, snd + 5000] {
        exchange(&mut st, &mut dev, Instant::from_millis(3), vec![icmp_unreach(4, 576, 80, 40000, seq, 1500)]);
    }
    assert_eq!(st.stats().drop_icmp_tcp_bad_seq, 3);
    assert_eq!(st.stats().tcp_pmtu_updates, 0);
    assert_eq!(maxseg(&mut st, h), 1460);
}

#[test]
fn icmp_unreachable_when_established_is_soft_and_names_a_later_timeout() {
    let (mut st, mut dev, h, snd) = established();
    st.tcp_write(h, b"unanswered").unwrap();
    take(&mut st, &mut dev, Instant::from_millis(2));
    exchange(&mut st, &mut dev, Instant::from_millis(3), vec![icmp_unreach(1, 0, 80, 40000, snd, 60)]);
    assert_eq!(st.tcp_state(h), Ok(State::Established), "a soft error is not fatal");
    assert_eq!(pending_error(&mut st, h), None);
    assert_eq!(st.stats().tcp_icmp_errors, 1);
    run_until_closed(&mut st, &mut dev, h, Instant::from_millis(3));
    assert_eq!(pending_error(&mut st, h), Some(TcpError::HostUnreachable), "the timeout reports the soft error");
}

/// Writes 4000 bytes on an established connection (MSS 1460, no options)
/// and returns the segments that left.
fn in_flight_4000() -> (Stack<HeapPages>, QueueDevice, SocketHandle, u32, Vec<u8>) {
    let (mut st, mut dev, h, snd) = established();
    st.tcp_set_option(h, SockOpt::NoDelay(true), Instant::from_millis(1)).unwrap();
    let data = pattern(11, 4000);
    assert_eq!(st.tcp_write(h, &data), Ok(4000));
    let out = take(&mut st, &mut dev, Instant::from_millis(2));
    assert_eq!(out.iter().map(|g| g.payload.len()).collect::<Vec<_>>(), [1460, 1460, 1080]);
    (st, dev, h, snd, data)
}

#[test]
fn frag_needed_resends_what_is_in_flight_in_smaller_segments() {
    let (mut st, mut dev, h, snd, data) = in_flight_4000();
    let out = exchange(&mut st, &mut dev, Instant::from_millis(3), vec![icmp_unreach(4, 1000, 80, 40000, snd, 1500)]);
    assert_eq!(st.stats().tcp_pmtu_updates, 1);
    assert_eq!(maxseg(&mut st, h), 960);
    // Resent at once from snd_una, every segment within the new MSS.
    assert!(!out.is_empty());
    assert_eq!(out[0].seq, snd);
    assert!(out.iter().all(|g| g.payload.len() <= 960), "{out:?}");
    let mut next = snd;
    let mut got = Vec::new();
    for g in &out {
        assert_eq!(g.seq, next, "contiguous resend");
        next += g.payload.len() as u32;
        got.extend_from_slice(&g.payload);
    }
    assert!(got[..] == data[..got.len()], "the same bytes");
    // The peer acknowledges; new data leaves in the new size too.
    let ack = tcp_frame(seg(1001, Some(next), TcpControl::None));
    exchange(&mut st, &mut dev, Instant::from_millis(4), vec![ack]);
    st.tcp_write(h, &[9u8; 3000]).unwrap();
    let out = take(&mut st, &mut dev, Instant::from_millis(5));
    assert!(!out.is_empty());
    assert!(out.iter().all(|g| g.payload.len() <= 960), "{out:?}");
    assert_eq!(st.stats().tcp_rto_retransmits, 0, "no timeout was needed");
}

#[test]
fn frag_needed_below_the_floor_is_clamped_and_a_larger_mtu_ignored() {
    // 68 bytes asked: clamped at the 576-byte floor (MSS 536).
    let (mut st, mut dev, h, snd, _data) = in_flight_4000();
    let out = exchange(&mut st, &mut dev, Instant::from_millis(3), vec![icmp_unreach(4, 68, 80, 40000, snd, 1500)]);
    assert_eq!(maxseg(&mut st, h), 536);
    assert_eq!(out.first().map(|g| g.seq), Some(snd), "resent at once");
    assert!(out.iter().all(|g| g.payload.len() == 536 || g.seq + g.payload.len() as u32 == snd + 4000), "{out:?}");
    // Then a message claiming a larger MTU changes nothing.
    let out = exchange(&mut st, &mut dev, Instant::from_millis(4), vec![icmp_unreach(4, 1400, 80, 40000, snd, 1500)]);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(maxseg(&mut st, h), 536);
    assert_eq!(st.stats().tcp_pmtu_updates, 1);

    // No next-hop MTU (an RFC 792 router): the RFC 1191 plateau below the
    // quoted length (1500 -> 1492).
    let (mut st, mut dev, h, snd, _data) = in_flight_4000();
    exchange(&mut st, &mut dev, Instant::from_millis(3), vec![icmp_unreach(4, 0, 80, 40000, snd, 1500)]);
    assert_eq!(maxseg(&mut st, h), 1452);
}

#[test]
fn urgent_data_is_delivered_in_line_with_the_stream_intact() {
    let (mut st, mut dev, h, snd) = established();
    let data = pattern(5, 6000);
    let mut seq = 1001u32;
    let mut frames = Vec::new();
    // Segments with URG and pointers inside, at the end, past the end, and 0.
    for (i, chunk) in data.chunks(1000).enumerate() {
        let mut d = seg(seq, Some(snd), TcpControl::Psh);
        d.payload = chunk;
        let mut f = tcp_frame(d);
        if i % 2 == 0 {
            let urg = [1u16, 1000, 4000, 0, 65535, 500][i];
            let mut p = TcpPacket::new_unchecked(&mut f[34..]);
            p.set_urg(true);
            p.set_urgent_at(urg);
            p.fill_checksum(&PEER_IP.into(), &A_IP.into());
        }
        frames.push(f);
        seq += chunk.len() as u32;
    }
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let mut acks = Vec::new();
    for (i, f) in frames.into_iter().enumerate() {
        acks.extend(exchange(&mut st, &mut dev, Instant::from_millis(2 + i as u64), vec![f]));
        while let Ok(n @ 1..) = st.tcp_read(h, &mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
    }
    assert_eq!(got.len(), data.len());
    assert_eq!(sha256(&got), sha256(&data), "every byte, the urgent ones in line");
    acks.extend(take(&mut st, &mut dev, Instant::from_millis(100)));
    assert_eq!(acks.last().and_then(|g| g.ack), Some(seq));
    assert_eq!(st.tcp_state(h), Ok(State::Established));
}
