//! Lazy timer re-arm (issue 13, poll loop and timers): a connection's
//! deadlines live in the connection and the timer wheel is touched only
//! when a deadline moves earlier than the entry it holds; an entry that
//! fires before the connection's real deadline re-arms it. Retransmission
//! must still leave at exactly the RTO (RFC 6298 5.3, 5.4) after a deadline
//! moved later, and a deadline moved earlier than the wheel's entry must
//! fire on time, after long idle stretches the wheel skipped. Simulated
//! time, one scripted peer.
mod common;

use common::script::*;
use zcstack::mem::HeapPages;
use zcstack::phy::queue::QueueDevice;
use zcstack::tcp::SockOpt;
use zcstack::wire::*;
use zcstack::{Instant, SocketHandle, Stack};

/// The connection's current RTO, as its description reports it.
fn rto(st: &mut Stack<HeapPages>, h: SocketHandle) -> zcstack::Duration {
    let d = st.tcp().describe(h).unwrap();
    let s = d.split("rto=").nth(1).expect("rto in the description");
    let s = s.trim_end_matches('s');
    let (secs, micros) = s.split_once('.').expect("seconds.micros");
    zcstack::Duration::from_micros(secs.parse::<u64>().unwrap() * 1_000_000 + micros.parse::<u64>().unwrap())
}

/// Polls every millisecond in `from..to` and returns the first poll's time
/// and the segments it sent, if any sent one.
fn first_send(
    st: &mut Stack<HeapPages>,
    dev: &mut QueueDevice,
    from: Instant,
    to: Instant,
) -> Option<(Instant, Vec<Got>)> {
    let mut t = from;
    while t < to {
        let out = exchange(st, dev, t, vec![]);
        if !out.is_empty() {
            return Some((t, out));
        }
        t += zcstack::Duration::from_millis(1);
    }
    None
}

#[test]
fn retransmission_fires_at_the_exact_rto_after_an_ack_moved_it_later() {
    let (mut st, mut dev, h, snd) = established();
    st.tcp_set_option(h, SockOpt::NoDelay(true), at(1)).unwrap();
    // A first round trip of 2 ms sets the RTO (RFC 6298 2.2).
    st.tcp_write(h, &[b'a'; 100]).unwrap();
    let out = exchange(&mut st, &mut dev, at(10), vec![]);
    assert_eq!((out.len(), out[0].seq, out[0].payload.len()), (1, snd, 100));
    let ack = |n: u32| vec![tcp_frame(seg(1001, Some(snd + n), TcpControl::None))];
    assert!(exchange(&mut st, &mut dev, at(12), ack(100)).is_empty());
    // Two segments in flight; the RTO timer starts with the first (5.1)
    // and the wheel takes that deadline.
    st.tcp_write(h, &[b'b'; 100]).unwrap();
    let out = exchange(&mut st, &mut dev, at(20), vec![]);
    assert_eq!((out.len(), out[0].seq), (1, snd + 100));
    let first = at(20) + rto(&mut st, h);
    assert_eq!(st.poll_at(), Some(first));
    st.tcp_write(h, &[b'c'; 100]).unwrap();
    let out = exchange(&mut st, &mut dev, at(30), vec![]);
    assert_eq!((out.len(), out[0].seq), (1, snd + 200));
    // The first is acknowledged at 40 ms: the timer restarts for the
    // second (5.3), later than the wheel's entry, which stays as it is.
    assert!(exchange(&mut st, &mut dev, at(40), ack(200)).is_empty());
    let deadline = at(40) + rto(&mut st, h);
    assert!(deadline > first, "the deadline moved later: {deadline} vs {first}");
    assert_eq!(st.poll_at(), Some(first), "the wheel still holds the earlier entry");
    // Polled every millisecond: nothing before the deadline (the early
    // entry fires and re-arms quietly), the retransmission exactly at it.
    let (t, out) = first_send(&mut st, &mut dev, at(41), deadline + zcstack::Duration::from_millis(50))
        .expect("the last segment is retransmitted");
    assert_eq!(t, deadline, "retransmitted at the RTO after the restart, not before or after");
    assert_eq!((out.len(), out[0].seq, out[0].payload.as_slice()), (1, snd + 200, &[b'c'; 100][..]));
    assert_eq!(st.stats().tcp_rto_retransmits, 1);
}

#[test]
fn a_deadline_moved_earlier_than_the_wheel_entry_fires_on_time_after_idle_stretches() {
    let (mut st, mut dev, h, snd) = established();
    // Keep-alive (two hours idle by default) is the only timer: after the
    // handshake's stale entry fires, the wheel holds just that far deadline.
    st.tcp_set_option(h, SockOpt::KeepAlive(true), at(1)).unwrap();
    assert!(exchange(&mut st, &mut dev, at(1), vec![]).is_empty());
    let far = st.poll_at().expect("a timer is pending");
    assert!(far < at(60_000), "the handshake's entry comes first: {far}");
    assert!(exchange(&mut st, &mut dev, far, vec![]).is_empty(), "nothing is due at the stale entry");
    let keepalive = st.poll_at().expect("keep-alive is pending");
    assert!(keepalive > at(3_600_000), "only keep-alive is left: {keepalive}");
    // Idle polls, sparse and dense, that the wheel skips without a walk.
    let mut t = far;
    for step in [1u64, 7, 250, 1_000, 3_000, 5_000, 9_000] {
        t += zcstack::Duration::from_millis(step);
        assert!(exchange(&mut st, &mut dev, t, vec![]).is_empty());
        assert_eq!(st.poll_at(), Some(keepalive));
    }
    // Data moves the earliest deadline far ahead of the keep-alive entry:
    // the wheel takes it, and it fires at exactly the RTO.
    let sent = t + zcstack::Duration::from_millis(1);
    st.tcp_write(h, &[b'c'; 64]).unwrap();
    let out = exchange(&mut st, &mut dev, sent, vec![]);
    assert_eq!((out.len(), out[0].seq), (1, snd));
    let deadline = sent + rto(&mut st, h);
    assert_eq!(st.poll_at(), Some(deadline));
    let (t, out) = first_send(&mut st, &mut dev, sent + zcstack::Duration::from_millis(1), keepalive)
        .expect("the segment is retransmitted");
    assert_eq!(t, deadline);
    assert_eq!((out.len(), out[0].seq, out[0].payload.len()), (1, snd, 64));
    assert_eq!(st.stats().tcp_rto_retransmits, 1);
    // Acknowledged: keep-alive is the earliest again (after the stale
    // retransmission entry of the backed-off timer goes).
    let out = exchange(
        &mut st,
        &mut dev,
        t + zcstack::Duration::from_millis(5),
        vec![tcp_frame(seg(1001, Some(snd + 64), TcpControl::None))],
    );
    assert!(out.is_empty(), "{out:?}");
    let next = st.poll_at().expect("pending");
    assert!(exchange(&mut st, &mut dev, next, vec![]).is_empty(), "a stale entry fires quietly");
    assert!(st.poll_at().expect("keep-alive") > at(3_600_000));
}

#[test]
fn a_delayed_ack_armed_by_a_segment_goes_out_on_time_with_only_a_far_entry_in_the_wheel() {
    let (mut st, mut dev, h, snd) = established();
    st.tcp_set_option(h, SockOpt::KeepAlive(true), at(1)).unwrap();
    assert!(exchange(&mut st, &mut dev, at(1), vec![]).is_empty());
    // Let the handshake's stale entry go: keep-alive is all the wheel holds.
    let stale = st.poll_at().expect("pending");
    assert!(exchange(&mut st, &mut dev, stale, vec![]).is_empty());
    let keepalive = st.poll_at().expect("keep-alive");
    assert!(keepalive > at(3_600_000));
    // Data in: the ACK is delayed (RFC 9293 3.8.6.3), a deadline far before
    // the wheel's entry that only the segment's own pass can put there.
    let delay = st.config().tcp.delayed_ack.expect("delayed ACKs on by default");
    let t0 = stale + zcstack::Duration::from_millis(3);
    let mut data = seg(1001, Some(snd), TcpControl::Psh);
    data.payload = b"0123456789";
    let out = exchange(&mut st, &mut dev, t0, vec![tcp_frame(data)]);
    let (got, _) = drain(&mut st, h);
    assert_eq!(got, b"0123456789");
    assert!(out.is_empty(), "one small segment is not acknowledged at once: {out:?}");
    assert_eq!(st.poll_at(), Some(t0 + delay), "the delayed ACK's deadline is in the wheel");
    let (t, out) =
        first_send(&mut st, &mut dev, t0 + zcstack::Duration::from_millis(1), keepalive).expect("the ACK is sent");
    assert_eq!(t, t0 + delay, "the delayed ACK leaves at its deadline: {out:?}");
    assert_eq!((out.len(), out[0].ack, out[0].payload.len()), (1, Some(1011), 0));
}

/// The re-arm takes only deadlines set since the last one
/// (`Conn::note_deadline`): a deadline set and then cleared (a delayed ACK
/// that a response then carried) leaves its wheel entry, which comes due
/// quietly, and the deadline set after it (the response's RTO) still fires
/// at exactly its time (RFC 6298 5.1, 5.4).
#[test]
fn a_cleared_deadline_leaves_a_quiet_entry_and_the_rto_set_after_it_fires_on_time() {
    let (mut st, mut dev, h, snd) = established();
    st.tcp_set_option(h, SockOpt::NoDelay(true), at(1)).unwrap();
    st.tcp_set_option(h, SockOpt::KeepAlive(true), at(1)).unwrap();
    assert!(exchange(&mut st, &mut dev, at(1), vec![]).is_empty());
    let stale = st.poll_at().expect("pending");
    assert!(exchange(&mut st, &mut dev, stale, vec![]).is_empty());
    let keepalive = st.poll_at().expect("keep-alive");
    assert!(keepalive > at(3_600_000));
    // A request: its ACK is delayed, and the wheel takes that deadline.
    let delay = st.config().tcp.delayed_ack.expect("delayed ACKs on by default");
    let t0 = stale + zcstack::Duration::from_millis(3);
    let mut data = seg(1001, Some(snd), TcpControl::Psh);
    data.payload = b"request";
    assert!(exchange(&mut st, &mut dev, t0, vec![tcp_frame(data)]).is_empty());
    assert_eq!(st.poll_at(), Some(t0 + delay));
    let (got, _) = drain(&mut st, h);
    assert_eq!(got, b"request");
    // The response carries the ACK (the delayed ACK's deadline is cleared)
    // and starts the RTO.
    let t1 = t0 + zcstack::Duration::from_millis(1);
    st.tcp_write(h, b"response").unwrap();
    let out = exchange(&mut st, &mut dev, t1, vec![]);
    assert_eq!((out.len(), out[0].seq, out[0].ack, out[0].payload.len()), (1, snd, Some(1008), 8));
    let deadline = t1 + rto(&mut st, h);
    // Polled every millisecond: nothing leaves at the cleared delayed ACK's
    // entry, the response is retransmitted at exactly the RTO.
    let (t, out) = first_send(&mut st, &mut dev, t1 + zcstack::Duration::from_millis(1), keepalive)
        .expect("the response is retransmitted");
    assert_eq!(t, deadline);
    assert_eq!((out.len(), out[0].seq, out[0].payload.len()), (1, snd, 8));
    assert_eq!(st.stats().tcp_rto_retransmits, 1);
}
