//! Segments combining SYN, FIN and RST (which smoltcp's parser refuses) are
//! handled in RFC 9293 3.10.7's order, and the SYN option switches
//! (`sack`, `rexmit_drop_options`) do what FreeBSD's sysctls do.
mod common;

use common::script::*;
use common::*;
use zcstack::mem::HeapPages;
use zcstack::phy::queue::QueueDevice;
use zcstack::wire::*;
use zcstack::{Stack, State};

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;

/// `s` as a frame with `extra` flag bits OR-ed in and the checksum redone.
fn with_flags(s: Seg<'_>, extra: u8) -> Vec<u8> {
    let mut f = tcp_frame(s);
    f[34 + 13] |= extra;
    let mut tp = TcpPacket::new_unchecked(&mut f[34..]);
    tp.fill_checksum(&PEER_IP.into(), &A_IP.into());
    f
}

fn stack_cfg(edit: impl FnOnce(&mut zcstack::StackConfig)) -> (Stack<HeapPages>, QueueDevice) {
    let mut cfg = stack_config(A_IP, 1);
    edit(&mut cfg);
    let mut st = Stack::new(cfg, HeapPages::new(256, 2048), 1500);
    let mut dev = QueueDevice::new(Default::default());
    learn_peer(&mut st, &mut dev);
    (st, dev)
}

#[test]
fn syn_fin_to_a_closed_port_is_reset_counting_syn_fin_and_data() {
    let (mut st, mut dev) = stack();
    learn_peer(&mut st, &mut dev);
    // RFC 9293 3.10.7.1: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
    let mut s = seg(17, None, TcpControl::Syn);
    s.payload = b"abc";
    let out = exchange(&mut st, &mut dev, at(0), vec![with_flags(s, FIN)]);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!((out[0].ctl, out[0].seq, out[0].ack), (TcpControl::Rst, 0, Some(17 + 3 + 2)));
    let out = exchange(&mut st, &mut dev, at(1), vec![with_flags(seg(40, None, TcpControl::Syn), FIN)]);
    assert_eq!((out[0].ctl, out[0].seq, out[0].ack), (TcpControl::Rst, 0, Some(42)));
    // With an ACK the RST takes its sequence number from it.
    let out = exchange(&mut st, &mut dev, at(2), vec![with_flags(seg(40, Some(777), TcpControl::Syn), FIN)]);
    assert_eq!((out[0].ctl, out[0].seq, out[0].ack), (TcpControl::Rst, 777, None));
    assert_eq!(st.stats().drop_tcp_malformed, 0);
    assert_eq!(st.stats().tcp_synfin_fin_ignored, 3);
}

#[test]
fn rst_with_syn_or_fin_is_a_rst_and_never_answered_on_a_closed_port() {
    let (mut st, mut dev) = stack();
    learn_peer(&mut st, &mut dev);
    for (i, extra) in [SYN, FIN, SYN | FIN].into_iter().enumerate() {
        let out = exchange(&mut st, &mut dev, at(i as u64), vec![with_flags(seg(5, None, TcpControl::Rst), extra)]);
        assert!(out.is_empty(), "flags RST|{extra:#x}: {out:?}");
    }
    assert_eq!(st.stats().tcp_rst_other_flags_ignored, 3);
    assert_eq!(st.stats().drop_tcp_malformed, 0);
}

#[test]
fn syn_fin_to_a_listener_is_answered_for_the_syn_only_without_drop_synfin() {
    let (mut st, mut dev) = stack_cfg(|c| c.tcp.drop_synfin = false);
    let l = st.tcp_listen(80, 8).unwrap();
    let mut s = seg(17, None, TcpControl::Syn);
    (s.payload, s.mss) = (b"abc", Some(1460));
    let out = exchange(&mut st, &mut dev, at(0), vec![with_flags(s, FIN)]);
    assert_eq!(out.len(), 1, "{out:?}");
    // FreeBSD (drop_synfin=0): SYN-ACK acknowledging the SYN alone.
    assert_eq!((out[0].ctl, out[0].ack), (TcpControl::Syn, Some(18)));
    let iss = out[0].seq;
    exchange(&mut st, &mut dev, at(1), vec![tcp_frame(seg(18, Some(iss + 1), TcpControl::None))]);
    let (h, _) = st.tcp_accept(l).unwrap();
    assert_eq!(st.tcp_state(h), Ok(State::Established), "the FIN was not taken");
}

#[test]
fn drop_synfin_by_default_drops_and_counts_then_a_plain_syn_is_answered() {
    let (mut st, mut dev) = stack();
    learn_peer(&mut st, &mut dev);
    st.tcp_listen(80, 8).unwrap();
    let out = exchange(&mut st, &mut dev, at(0), vec![with_flags(seg(17, None, TcpControl::Syn), FIN)]);
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(st.stats().drop_tcp_synfin, 1);
    assert_eq!(st.tcp_connections(), 0);
    let out = exchange(&mut st, &mut dev, at(1000), vec![tcp_frame(seg(27, None, TcpControl::Syn))]);
    assert_eq!((out[0].ctl, out[0].ack), (TcpControl::Syn, Some(28)));
}

#[test]
fn syn_fin_in_established_gets_a_challenge_ack_and_changes_nothing() {
    let (mut st, mut dev, h, _snd) = established();
    for (i, seq) in [1001u32, 1500, 5000].into_iter().enumerate() {
        let out =
            exchange(&mut st, &mut dev, at(10 + i as u64), vec![with_flags(seg(seq, None, TcpControl::Syn), FIN)]);
        assert_eq!(out.len(), 1, "seq {seq}: {out:?}");
        assert_eq!((out[0].ctl, out[0].ack), (TcpControl::None, Some(1001)), "RFC 5961 4.2 challenge ACK");
        assert_eq!(st.tcp_state(h), Ok(State::Established), "the FIN is never reached");
    }
}

#[test]
fn rst_syn_in_established_follows_the_rst_rules() {
    let (mut st, mut dev, h, _snd) = established();
    // In window but not exact: challenge ACK (RFC 5961 3.2), connection kept.
    let out = exchange(&mut st, &mut dev, at(10), vec![with_flags(seg(1500, None, TcpControl::Rst), SYN)]);
    assert_eq!((out.len(), out.first().map(|g| g.ack)), (1, Some(Some(1001))));
    assert_eq!(st.tcp_state(h), Ok(State::Established));
    // Exactly at RCV.NXT: the connection is reset.
    let out = exchange(&mut st, &mut dev, at(11), vec![with_flags(seg(1001, None, TcpControl::Rst), SYN | FIN)]);
    assert!(out.is_empty(), "{out:?}");
    let mut buf = [0u8; 4];
    assert_eq!(st.tcp_read(h, &mut buf), Err(zcstack::TcpError::Reset));
}

/// Sends the first SYN and every retransmission up to `n`, returning them.
fn syns(st: &mut Stack<HeapPages>, dev: &mut QueueDevice, n: usize) -> Vec<Got> {
    let mut got = exchange(st, dev, at(0), vec![]);
    for _ in 0..200 {
        if got.len() > n {
            break;
        }
        let now = st.poll_at().expect("the SYN timer is armed");
        got.extend(exchange(st, dev, now, vec![]));
    }
    got
}

#[test]
fn rexmit_drop_options_sends_mss_only_from_the_third_syn_retransmission() {
    let (mut st, mut dev) = stack_cfg(|c| c.tcp.rexmit_drop_options = true);
    let h = st.tcp_connect(sa(PEER_IP, 80), 5555, at(0)).unwrap();
    let got = syns(&mut st, &mut dev, 4);
    assert!(got.len() >= 5 && got.iter().all(|g| g.ctl == TcpControl::Syn), "{got:?}");
    for g in &got[..3] {
        assert!(g.wscale.is_some() && g.sack_ok && g.ts.is_some(), "{g:?}");
    }
    for g in &got[3..] {
        assert_eq!((g.mss, g.wscale, g.sack_ok, g.ts), (Some(1460), None, false, None), "{g:?}");
    }
    // A SYN-ACK offering everything anyway gets none of it enabled.
    let iss = got[0].seq;
    let mut sa_ = seg(7000, Some(iss + 1), TcpControl::Syn);
    (sa_.sport, sa_.dport, sa_.mss, sa_.wscale, sa_.sack_ok, sa_.ts) =
        (80, 5555, Some(1460), Some(7), true, Some((1, 0)));
    let now = at(20_000);
    let out = exchange(&mut st, &mut dev, now, vec![tcp_frame(sa_)]);
    assert_eq!(st.tcp_state(h), Ok(State::Established));
    assert_eq!(out[0].ts, None, "no timestamps without ours in the SYN");
}

#[test]
fn without_rexmit_drop_options_every_syn_keeps_its_options() {
    let (mut st, mut dev) = stack();
    learn_peer(&mut st, &mut dev);
    st.tcp_connect(sa(PEER_IP, 80), 5555, at(0)).unwrap();
    let got = syns(&mut st, &mut dev, 4);
    assert!(got.len() >= 5, "{got:?}");
    assert!(got.iter().all(|g| g.wscale.is_some() && g.sack_ok && g.ts.is_some()), "{got:?}");
}

#[test]
fn sack_off_neither_offers_nor_accepts_sack_permitted() {
    let (mut st, mut dev) = stack_cfg(|c| c.tcp.sack = false);
    // Active open: no SACK-permitted in our SYN.
    st.tcp_connect(sa(PEER_IP, 80), 5555, at(0)).unwrap();
    let out = exchange(&mut st, &mut dev, at(0), vec![]);
    assert!(out[0].ctl == TcpControl::Syn && !out[0].sack_ok, "{out:?}");
    // Passive open: the peer's SACK-permitted is not answered.
    let l = st.tcp_listen(80, 8).unwrap();
    let mut s = seg(1000, None, TcpControl::Syn);
    (s.mss, s.sack_ok) = (Some(1460), true);
    let out = exchange(&mut st, &mut dev, at(1), vec![tcp_frame(s)]);
    assert!(out[0].ctl == TcpControl::Syn && !out[0].sack_ok, "{out:?}");
    let iss = out[0].seq;
    exchange(&mut st, &mut dev, at(2), vec![tcp_frame(seg(1001, Some(iss + 1), TcpControl::None))]);
    let (_h, _) = st.tcp_accept(l).unwrap();
    // A hole: the ACK carries no SACK blocks.
    let mut d = seg(2001, Some(iss + 1), TcpControl::None);
    d.payload = b"later";
    let out = exchange(&mut st, &mut dev, at(3), vec![tcp_frame(d)]);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!((out[0].ack, out[0].sack), (Some(1001), [None; 3]));
}
