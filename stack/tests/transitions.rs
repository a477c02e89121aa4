//! RFC 9293 state transitions at segment level, one scripted peer and one
//! stack: active open (and its failures), simultaneous open, SYN-RECEIVED
//! reset, active close through FIN-WAIT-1/2 and TIME-WAIT, simultaneous
//! close through CLOSING, FIN+ACK straight to TIME-WAIT, and a RST in every
//! synchronized state (ignored in TIME-WAIT, RFC 1337).
mod common;

use common::script::*;
use common::*;
use zcstack::mem::{HeapPages, PageMemory};
use zcstack::phy::queue::QueueDevice;
use zcstack::wire::*;
use zcstack::{Duration, Instant, SocketHandle, Stack, State, TcpError};

/// Polls at `ms` and returns what went out.
fn poll(st: &mut Stack<HeapPages>, dev: &mut QueueDevice, ms: u64) -> Vec<Got> {
    exchange(st, dev, Instant::from_millis(ms), vec![])
}

/// A segment from the scripted peer's port 80 to our port 5555.
fn from_server<'a>(seq: u32, ack: Option<u32>, ctl: TcpControl) -> Seg<'a> {
    let mut s = seg(seq, ack, ctl);
    s.sport = 80;
    s.dport = 5555;
    s
}

/// Connects out from port 5555; returns the stack, device, handle and our ISN.
fn syn_sent() -> (Stack<HeapPages>, QueueDevice, SocketHandle, u32) {
    let (mut st, mut dev) = stack();
    learn_peer(&mut st, &mut dev);
    let h = st.tcp_connect(sa(PEER_IP, 80), 5555, Instant::ZERO).unwrap();
    let out = poll(&mut st, &mut dev, 0);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].ctl, out[0].ack), (TcpControl::Syn, None));
    assert!(out[0].mss.is_some(), "the SYN carries our MSS");
    assert_eq!(st.tcp_state(h), Ok(State::SynSent));
    (st, dev, h, out[0].seq)
}

#[test]
fn active_open_syn_sent_to_established() {
    let (mut st, mut dev, h, iss) = syn_sent();
    // An unacceptable ACK in SYN-SENT is answered with <SEQ=SEG.ACK><CTL=RST>.
    let out = exchange(
        &mut st,
        &mut dev,
        Instant::from_millis(1),
        vec![tcp_frame(from_server(500, Some(iss + 77), TcpControl::Syn))],
    );
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].ctl, out[0].seq), (TcpControl::Rst, iss + 77));
    assert_eq!(st.tcp_state(h), Ok(State::SynSent));
    // The right SYN-ACK establishes; we ACK its SYN.
    let mut synack = from_server(500, Some(iss + 1), TcpControl::Syn);
    synack.mss = Some(1400);
    let out = exchange(&mut st, &mut dev, Instant::from_millis(2), vec![tcp_frame(synack)]);
    assert_eq!(st.tcp_state(h), Ok(State::Established));
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].ctl, out[0].seq, out[0].ack), (TcpControl::None, iss + 1, Some(501)));
    // The peer's MSS bounds our segments.
    st.tcp_write(h, &[5u8; 3000]).unwrap();
    let out = poll(&mut st, &mut dev, 3);
    assert!(!out.is_empty() && out.iter().all(|g| g.payload.len() <= 1400), "{out:?}");
}

#[test]
fn syn_sent_rst_with_acceptable_ack_refuses_and_others_are_ignored() {
    let (mut st, mut dev, h, iss) = syn_sent();
    // RST without an ACK, or with a wrong one, is ignored in SYN-SENT.
    exchange(&mut st, &mut dev, Instant::from_millis(1), vec![tcp_frame(from_server(0, None, TcpControl::Rst))]);
    exchange(
        &mut st,
        &mut dev,
        Instant::from_millis(1),
        vec![tcp_frame(from_server(0, Some(iss + 9), TcpControl::Rst))],
    );
    assert_eq!(st.tcp_state(h), Ok(State::SynSent));
    // RST+ACK acknowledging our SYN: connection refused.
    let out = exchange(
        &mut st,
        &mut dev,
        Instant::from_millis(2),
        vec![tcp_frame(from_server(0, Some(iss + 1), TcpControl::Rst))],
    );
    assert!(out.is_empty(), "no RST answers a RST");
    assert_eq!(st.tcp_state(h), Ok(State::Closed));
    assert_eq!(st.tcp_read(h, &mut [0u8; 4]), Err(TcpError::Refused));
    assert_eq!(st.tcp_connections(), 0);
}

#[test]
fn syn_sent_retransmits_the_syn_with_backoff() {
    let (mut st, mut dev, _h, iss) = syn_sent();
    // Initial RTO 1 s, then 2 s: SYNs at 1 s and 3 s, same sequence number.
    assert!(poll(&mut st, &mut dev, 999).is_empty());
    let out = poll(&mut st, &mut dev, 1000);
    assert_eq!((out.len(), out[0].ctl, out[0].seq), (1, TcpControl::Syn, iss));
    assert!(poll(&mut st, &mut dev, 2999).is_empty());
    let out = poll(&mut st, &mut dev, 3000);
    assert_eq!((out.len(), out[0].ctl, out[0].seq), (1, TcpControl::Syn, iss));
}

#[test]
fn simultaneous_open_goes_through_syn_received() {
    let (mut st, mut dev, h, iss) = syn_sent();
    // A bare SYN crosses ours: SYN-RECEIVED, and we send SYN-ACK with our ISS.
    let out =
        exchange(&mut st, &mut dev, Instant::from_millis(1), vec![tcp_frame(from_server(700, None, TcpControl::Syn))]);
    assert_eq!(st.tcp_state(h), Ok(State::SynReceived));
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].ctl, out[0].seq, out[0].ack), (TcpControl::Syn, iss, Some(701)));
    // The peer's SYN-ACK (acking our SYN) completes it.
    exchange(
        &mut st,
        &mut dev,
        Instant::from_millis(2),
        vec![tcp_frame(from_server(700, Some(iss + 1), TcpControl::Syn))],
    );
    exchange(
        &mut st,
        &mut dev,
        Instant::from_millis(3),
        vec![tcp_frame(from_server(701, Some(iss + 1), TcpControl::None))],
    );
    assert_eq!(st.tcp_state(h), Ok(State::Established));
}

#[test]
fn rst_in_syn_received_drops_the_embryo_and_the_listener_carries_on() {
    let (mut st, mut dev) = stack();
    learn_peer(&mut st, &mut dev);
    let l = st.tcp_listen(80, 8).unwrap();
    let out = exchange(&mut st, &mut dev, Instant::ZERO, vec![tcp_frame(seg(1000, None, TcpControl::Syn))]);
    assert_eq!(out[0].ctl, TcpControl::Syn);
    assert_eq!(st.tcp_connections(), 1);
    exchange(&mut st, &mut dev, Instant::from_millis(1), vec![tcp_frame(seg(1001, None, TcpControl::Rst))]);
    assert_eq!(st.tcp_connections(), 0, "the half-open connection is gone");
    assert_eq!(st.tcp_accept(l).err(), Some(TcpError::WouldBlock));
    // The same peer can come back.
    let out = exchange(&mut st, &mut dev, Instant::from_millis(2), vec![tcp_frame(seg(5000, None, TcpControl::Syn))]);
    assert_eq!((out[0].ctl, out[0].ack), (TcpControl::Syn, Some(5001)));
    let iss = out[0].seq;
    exchange(&mut st, &mut dev, Instant::from_millis(3), vec![tcp_frame(seg(5001, Some(iss + 1), TcpControl::None))]);
    assert!(st.tcp_accept(l).is_ok());
}

/// Our side sends its FIN (shutdown): FIN-WAIT-1. Returns our FIN's sequence number.
fn fin_wait_1(st: &mut Stack<HeapPages>, dev: &mut QueueDevice, h: SocketHandle, snd: u32) -> u32 {
    st.tcp_shutdown(h).unwrap();
    let out = poll(st, dev, 10);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].ctl, out[0].seq, out[0].ack), (TcpControl::Fin, snd, Some(1001)));
    assert_eq!(st.tcp_state(h), Ok(State::FinWait1));
    snd
}

#[test]
fn active_close_fin_wait_1_fin_wait_2_time_wait_closed() {
    let (mut st, mut dev, h, snd) = established();
    let fin = fin_wait_1(&mut st, &mut dev, h, snd);
    // The ACK of our FIN: FIN-WAIT-2 (nothing sent).
    let out = exchange(
        &mut st,
        &mut dev,
        Instant::from_millis(11),
        vec![tcp_frame(seg(1001, Some(fin + 1), TcpControl::None))],
    );
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(st.tcp_state(h), Ok(State::FinWait2));
    // Data still flows to us in FIN-WAIT-2.
    let mut d = seg(1001, Some(fin + 1), TcpControl::Psh);
    d.payload = b"late data";
    exchange(&mut st, &mut dev, Instant::from_millis(12), vec![tcp_frame(d)]);
    let mut buf = [0u8; 16];
    assert_eq!(st.tcp_read(h, &mut buf), Ok(9));
    // The peer's FIN: ACKed at once, TIME-WAIT.
    let out = exchange(
        &mut st,
        &mut dev,
        Instant::from_millis(13),
        vec![tcp_frame(seg(1010, Some(fin + 1), TcpControl::Fin))],
    );
    assert_eq!(st.tcp_state(h), Ok(State::TimeWait));
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].seq, out[0].ack), (fin + 1, Some(1011)));
    // A retransmitted FIN in TIME-WAIT is ACKed again.
    let out = exchange(
        &mut st,
        &mut dev,
        Instant::from_millis(1000),
        vec![tcp_frame(seg(1010, Some(fin + 1), TcpControl::Fin))],
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ack, Some(1011));
    // After 2 MSL (2 x 2 s here, counted from the last FIN) the connection is gone.
    poll(&mut st, &mut dev, 4999);
    assert_eq!(st.tcp_state(h), Ok(State::TimeWait));
    poll(&mut st, &mut dev, 5000);
    assert_eq!(st.tcp_state(h), Ok(State::Closed));
    assert_eq!(st.tcp_connections(), 0);
    assert_eq!(st.tcp_read(h, &mut buf), Ok(0), "EOF, no error, after an orderly close");
}

#[test]
fn simultaneous_close_goes_through_closing() {
    let (mut st, mut dev, h, snd) = established();
    let fin = fin_wait_1(&mut st, &mut dev, h, snd);
    // The peer's FIN crosses ours (it has not seen our FIN): CLOSING.
    let out =
        exchange(&mut st, &mut dev, Instant::from_millis(11), vec![tcp_frame(seg(1001, Some(fin), TcpControl::Fin))]);
    assert_eq!(st.tcp_state(h), Ok(State::Closing));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ack, Some(1002));
    // The ACK of our FIN: TIME-WAIT.
    exchange(&mut st, &mut dev, Instant::from_millis(12), vec![tcp_frame(seg(1002, Some(fin + 1), TcpControl::None))]);
    assert_eq!(st.tcp_state(h), Ok(State::TimeWait));
}

#[test]
fn fin_acking_our_fin_in_fin_wait_1_goes_straight_to_time_wait() {
    let (mut st, mut dev, h, snd) = established();
    let fin = fin_wait_1(&mut st, &mut dev, h, snd);
    let out = exchange(
        &mut st,
        &mut dev,
        Instant::from_millis(11),
        vec![tcp_frame(seg(1001, Some(fin + 1), TcpControl::Fin))],
    );
    assert_eq!(st.tcp_state(h), Ok(State::TimeWait));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].ack, Some(1002));
}

#[test]
fn fin_wait_1_retransmits_an_unacknowledged_fin() {
    let (mut st, mut dev, h, snd) = established();
    let fin = fin_wait_1(&mut st, &mut dev, h, snd);
    // No RTT sample yet: the RTO is the initial 1 s.
    let out = poll(&mut st, &mut dev, 1010);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].ctl, out[0].seq), (TcpControl::Fin, fin));
    assert_eq!(st.tcp_state(h), Ok(State::FinWait1));
}

/// Drives a fresh connection into `target`; returns the stack, device,
/// handle and the sequence number an exact RST from the peer must carry.
fn in_state(target: State) -> (Stack<HeapPages>, QueueDevice, SocketHandle, u32) {
    let (mut st, mut dev, h, snd) = established();
    let at = |ms| Instant::from_millis(ms);
    let rcv = match target {
        State::Established => 1001,
        State::CloseWait | State::LastAck => {
            exchange(&mut st, &mut dev, at(5), vec![tcp_frame(seg(1001, Some(snd), TcpControl::Fin))]);
            if target == State::LastAck {
                st.tcp_shutdown(h).unwrap();
                poll(&mut st, &mut dev, 6);
            }
            1002
        }
        State::FinWait1 | State::FinWait2 | State::Closing | State::TimeWait => {
            let fin = fin_wait_1(&mut st, &mut dev, h, snd);
            match target {
                State::FinWait1 => 1001,
                State::FinWait2 => {
                    exchange(&mut st, &mut dev, at(11), vec![tcp_frame(seg(1001, Some(fin + 1), TcpControl::None))]);
                    1001
                }
                State::Closing => {
                    exchange(&mut st, &mut dev, at(11), vec![tcp_frame(seg(1001, Some(fin), TcpControl::Fin))]);
                    1002
                }
                _ => {
                    exchange(&mut st, &mut dev, at(11), vec![tcp_frame(seg(1001, Some(fin + 1), TcpControl::Fin))]);
                    1002
                }
            }
        }
        s => panic!("no recipe for {s:?}"),
    };
    assert_eq!(st.tcp_state(h), Ok(target));
    (st, dev, h, rcv)
}

#[test]
fn exact_rst_closes_every_synchronized_state() {
    for target in
        [State::Established, State::CloseWait, State::LastAck, State::FinWait1, State::FinWait2, State::Closing]
    {
        let (mut st, mut dev, h, rcv) = in_state(target);
        let out =
            exchange(&mut st, &mut dev, Instant::from_millis(20), vec![tcp_frame(seg(rcv, None, TcpControl::Rst))]);
        assert!(out.is_empty(), "{target:?}: nothing answers a RST: {out:?}");
        assert_eq!(st.tcp_state(h), Ok(State::Closed), "{target:?}");
        assert_eq!(st.tcp_connections(), 0, "{target:?}");
        st.tcp_close(h, Instant::from_millis(21)).unwrap();
        assert_eq!(st.mem().free_count(), 256, "{target:?}: no page leaked");
    }
}

#[test]
fn inexact_rst_in_window_draws_a_challenge_ack_in_every_synchronized_state() {
    for target in
        [State::Established, State::CloseWait, State::FinWait1, State::FinWait2, State::Closing, State::LastAck]
    {
        let (mut st, mut dev, h, rcv) = in_state(target);
        let out = exchange(
            &mut st,
            &mut dev,
            Instant::from_millis(20),
            vec![tcp_frame(seg(rcv + 100, None, TcpControl::Rst))],
        );
        assert_eq!(out.len(), 1, "{target:?}");
        assert_eq!((out[0].ctl, out[0].ack), (TcpControl::None, Some(rcv)), "{target:?}");
        assert_eq!(st.tcp_state(h), Ok(target), "{target:?}");
    }
}

#[test]
fn rst_in_time_wait_is_ignored_rfc_1337() {
    let (mut st, mut dev, h, rcv) = in_state(State::TimeWait);
    exchange(&mut st, &mut dev, Instant::from_millis(20), vec![tcp_frame(seg(rcv, None, TcpControl::Rst))]);
    assert_eq!(st.tcp_state(h), Ok(State::TimeWait), "TIME-WAIT assassination refused");
    // It still ends after 2 MSL.
    let end = Instant::from_millis(11) + Duration::from_secs(4);
    st.poll(end, &mut dev);
    assert_eq!(st.tcp_state(h), Ok(State::Closed));
}

/// RFC 5681 4.2: a FIN beyond RCV.NXT is an out-of-order segment and draws
/// an immediate duplicate ACK; it is not processed until the gap is filled.
#[test]
fn out_of_order_fin_draws_a_duplicate_ack() {
    let (mut st, mut dev, h, snd) = established();
    let out = exchange(
        &mut st,
        &mut dev,
        Instant::from_millis(5),
        vec![tcp_frame(seg(1001 + 500, Some(snd), TcpControl::Fin))],
    );
    assert_eq!(out.len(), 1, "one duplicate ACK: {out:?}");
    assert_eq!((out[0].seq, out[0].ack, out[0].ctl), (snd, Some(1001), TcpControl::None));
    assert_eq!(st.tcp_state(h), Ok(State::Established), "the FIN waits for the gap");
}

/// RFC 5681 2 (a): with only our FIN unacknowledged there is no outstanding
/// data, so a repeated ACK of SND.UNA is no duplicate ACK and retransmits
/// nothing (the FIN goes again only on its retransmission timer).
#[test]
fn acks_repeated_in_fin_wait_1_do_not_retransmit_the_fin() {
    let (mut st, mut dev, h, snd) = established();
    st.tcp_shutdown(h).unwrap();
    let out = poll(&mut st, &mut dev, 5);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].seq, out[0].ctl), (snd, TcpControl::Fin));
    for i in 0..3 {
        let out = exchange(
            &mut st,
            &mut dev,
            Instant::from_millis(10 + i),
            vec![tcp_frame(seg(1001, Some(snd), TcpControl::None))],
        );
        assert!(out.is_empty(), "ACK {i} of SND.UNA is not answered: {out:?}");
    }
    assert_eq!(st.tcp_state(h), Ok(State::FinWait1));
}
