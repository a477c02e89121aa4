//! A connection the peer reset is CLOSED but its handle stays with the
//! application; the peer may meanwhile open a new connection on the same
//! four-tuple. Closing or aborting the old handle afterwards must leave the
//! new connection reachable (found by a hostile review of issue 13: the
//! table entry of the new connection was removed by the old handle's
//! close, and its data was answered with a RST).

mod common;
use common::script::*;
use zcstack::wire::TcpControl;
use zcstack::{SocketHandle, Stack, State};

/// How the application lets go of its dead handle.
#[derive(Clone, Copy, Debug)]
enum LetGo {
    Close,
    Abort,
    /// Closed after the new connection received data already.
    CloseLater,
}

fn handshake(
    st: &mut Stack<zcstack::mem::HeapPages>,
    dev: &mut zcstack::phy::queue::QueueDevice,
    isn: u32,
    t: u64,
) -> u32 {
    let mut syn = seg(isn, None, TcpControl::Syn);
    syn.mss = Some(1460);
    let out = exchange(st, dev, at(t), vec![tcp_frame(syn)]);
    assert_eq!(out.len(), 1, "SYN-ACK: {out:?}");
    let iss = out[0].seq;
    let out = exchange(st, dev, at(t + 1), vec![tcp_frame(seg(isn + 1, Some(iss + 1), TcpControl::None))]);
    assert!(out.is_empty(), "{out:?}");
    iss
}

fn send(
    st: &mut Stack<zcstack::mem::HeapPages>,
    dev: &mut zcstack::phy::queue::QueueDevice,
    h: SocketHandle,
    seq: u32,
    ack: u32,
    t: u64,
    data: &[u8],
) {
    let mut d = seg(seq, Some(ack), TcpControl::Psh);
    d.payload = data;
    let out = exchange(st, dev, at(t), vec![tcp_frame(d)]);
    assert!(out.iter().all(|g| g.ctl != TcpControl::Rst), "data answered with a RST: {out:?}");
    assert_eq!(drain(st, h).0, data, "state {:?}", st.tcp_state(h));
}

fn reuse_after(let_go: LetGo) {
    let (mut st, mut dev) = stack();
    learn_peer(&mut st, &mut dev);
    let l = st.tcp_listen(80, 8).unwrap();
    let iss_a = handshake(&mut st, &mut dev, 1000, 0);
    let (a, _) = st.tcp_accept(l).unwrap();
    exchange(&mut st, &mut dev, at(2), vec![tcp_frame(seg(1001, Some(iss_a + 1), TcpControl::Rst))]);
    assert_eq!(st.tcp_state(a), Ok(State::Closed), "A reset by the peer, handle held");

    let iss_b = handshake(&mut st, &mut dev, 900_000, 3);
    let (b, _) = st.tcp_accept(l).unwrap();
    assert_eq!(st.tcp_state(b), Ok(State::Established));
    match let_go {
        LetGo::Close => st.tcp_close(a, at(5)).unwrap(),
        LetGo::Abort => st.tcp_abort(a).unwrap(),
        LetGo::CloseLater => {
            send(&mut st, &mut dev, b, 900_001, iss_b + 1, 5, b"first");
            st.tcp_close(a, at(6)).unwrap();
        }
    }
    let seq = if matches!(let_go, LetGo::CloseLater) { 900_006 } else { 900_001 };
    send(&mut st, &mut dev, b, seq, iss_b + 1, 7, b"hello");
    assert_eq!(st.tcp_state(b), Ok(State::Established), "{let_go:?}");
    // The dead handle is gone for good.
    assert!(st.tcp_state(a).is_err(), "{let_go:?}: A still answers");
}

#[test]
fn closing_a_dead_handle_keeps_the_new_connection_on_its_tuple() {
    reuse_after(LetGo::Close);
}

#[test]
fn aborting_a_dead_handle_keeps_the_new_connection_on_its_tuple() {
    reuse_after(LetGo::Abort);
}

#[test]
fn a_dead_handle_closed_after_the_new_connection_carried_data_keeps_it() {
    reuse_after(LetGo::CloseLater);
}
