//! Hostile input: thousands of malformed and adversarial frames thrown at a
//! stack with an established connection. The stack must never panic, must
//! count what it drops, and must keep serving the connection.
mod common;

use common::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use zcstack::phy::sim::SimConfig;
use zcstack::wire::*;
use zcstack::{State, TcpError};

/// A valid-looking Ethernet/IPv4 frame from b to a with the given L4 bytes.
fn frame(proto: IpProtocol, l4: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 34 + l4.len()];
    EthernetRepr {
        src_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
        dst_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
        ethertype: EthernetProtocol::Ipv4,
    }
    .emit(&mut EthernetFrame::new_unchecked(&mut f[..14]));
    Ipv4Repr { src_addr: B_IP, dst_addr: A_IP, next_header: proto, payload_len: l4.len(), hop_limit: 64 }
        .emit(&mut Ipv4Packet::new_unchecked(&mut f[14..34]), &Default::default());
    f[34..].copy_from_slice(l4);
    f
}

fn tcp(sport: u16, dport: u16, seq: u32, ack: Option<u32>, ctl: TcpControl, payload: &[u8], sack: bool) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: sport,
        dst_port: dport,
        control: ctl,
        seq_number: TcpSeqNumber(seq as i32),
        ack_number: ack.map(|a| TcpSeqNumber(a as i32)),
        window_len: 1000,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: if sack { [Some((seq, seq.wrapping_add(100))), Some((1, 0)), None] } else { [None; 3] },
        timestamp: None,
        payload,
    };
    let mut l4 = vec![0u8; repr.buffer_len()];
    repr.emit(&mut TcpPacket::new_unchecked(&mut l4[..]), &B_IP.into(), &A_IP.into(), &Default::default());
    frame(IpProtocol::Tcp, &l4)
}

/// One adversarial frame of a randomly chosen kind.
fn evil(rng: &mut SmallRng, port: u16) -> Vec<u8> {
    let seq: u32 = rng.gen();
    let ack: u32 = rng.gen();
    let ctl =
        [TcpControl::None, TcpControl::Syn, TcpControl::Fin, TcpControl::Rst, TcpControl::Psh][rng.gen_range(0..5)];
    let payload: Vec<u8> = (0..rng.gen_range(0..200)).map(|_| rng.gen()).collect();
    let base = tcp(9999, port, seq, rng.gen_bool(0.7).then_some(ack), ctl, &payload, rng.gen_bool(0.3));
    let mut f = base.clone();
    match rng.gen_range(0..12) {
        0 => f.truncate(rng.gen_range(0..f.len())), // truncated anywhere
        1 => f[16..18].copy_from_slice(&rng.gen::<u16>().to_be_bytes()), // bad IP total length
        2 => f[14] = rng.gen(),                     // bad version / IHL
        3 => {
            let i = rng.gen_range(14..f.len());
            f[i] ^= 0xff; // bad checksum somewhere
        }
        4 => f[34 + 13] |= 0x03,     // SYN+FIN (checksum now wrong too)
        5 => f[34 + 12] = rng.gen(), // TCP data offset garbage
        6 => {
            // Options with bad lengths, checksum fixed so parsing reaches them.
            let mut l4 = f[34..].to_vec();
            if l4.len() >= 24 {
                l4[12] = 0x60;
                l4[20] = 2;
                l4[21] = rng.gen_range(0..3);
                l4[16] = 0;
                l4[17] = 0;
                let mut c = Checksum::new();
                c.add_pseudo_header(B_IP, A_IP, IpProtocol::Tcp, l4.len() as u16);
                c.add(&l4);
                let ck = c.finish();
                l4[16..18].copy_from_slice(&ck.to_be_bytes());
                f = frame(IpProtocol::Tcp, &l4);
            }
        }
        7 => {
            // Overlapping IPv4 fragments.
            f[14 + 6] = 0x20 | rng.gen_range(0..4);
            f[14 + 7] = rng.gen();
        }
        8 => f = (0..rng.gen_range(0..80)).map(|_| rng.gen()).collect(), // random junk
        9 => f = frame(IpProtocol::Udp, &payload),                       // UDP garbage
        10 => f = frame(IpProtocol::Icmp, &payload),                     // ICMP garbage
        _ => f[12..14].copy_from_slice(&[0x08, 0x06]),                   // ARP ethertype on IP bytes
    }
    f
}

#[test]
fn thousands_of_adversarial_frames_never_break_an_established_connection() {
    let mut p = Pair::new(SimConfig::default(), 77);
    let l = p.a.tcp_listen(80, 8).unwrap();
    let c = p.b.tcp_connect(sa(A_IP, 80), 0, p.now).unwrap();
    let mut s = None;
    p.run_until(10_000, |p| {
        s = s.or_else(|| p.a.tcp_accept(l).ok().map(|x| x.0));
        s.is_some() && p.b.tcp_state(c) == Ok(State::Established)
    });
    let s = s.unwrap();
    let (local, remote) = p.b.tcp().addrs(c).unwrap();
    let mut rng = SmallRng::seed_from_u64(5);
    let mut script = script_device();
    let mut total_sent = 0usize;
    let mut echoed = Vec::new();
    for round in 0..50 {
        // 100 hostile frames straight into a, including ones aimed at the live 4-tuple.
        for i in 0..100 {
            let f = if i % 10 == 0 {
                // Blind injection on the real connection's ports with random numbers.
                let ctl = [TcpControl::Rst, TcpControl::Syn, TcpControl::None][i / 10 % 3];
                tcp(local.port(), remote.port(), rng.gen(), Some(rng.gen()), ctl, b"injected", false)
            } else {
                evil(&mut rng, 80)
            };
            script.push_rx(f);
        }
        p.a.poll(p.now, &mut script);
        script.take_tx();
        // And the real connection keeps working.
        let msg = pattern(round, 1000);
        total_sent += p.b.tcp_write(c, &msg).unwrap();
        echoed.extend_from_slice(&msg);
        let mut got = Vec::new();
        let stop = p.run_until(100_000, |p| {
            let mut buf = [0u8; 4096];
            loop {
                match p.a.tcp_read(s, &mut buf) {
                    Ok(n) if n > 0 => got.extend_from_slice(&buf[..n]),
                    Ok(_) | Err(TcpError::WouldBlock) => break,
                    Err(e) => panic!("connection broken by hostile input: {e}"),
                }
            }
            got.len() == msg.len()
        });
        assert_eq!(stop, Stop::Done, "round {round}");
        assert_eq!(got, msg);
    }
    assert_eq!(total_sent, 50_000);
    let st = p.a.stats();
    let dropped = st.drop_eth_malformed
        + st.drop_ipv4_malformed
        + st.drop_ipv4_fragment
        + st.drop_tcp_malformed
        + st.drop_tcp_no_socket
        + st.drop_udp_malformed
        + st.drop_udp_no_socket
        + st.drop_icmp_malformed
        + st.drop_arp_malformed
        + st.drop_tcp_out_of_window
        + st.drop_tcp_bad_ack
        + st.drop_tcp_listen
        + st.drop_ipv4_bad_source
        + st.tcp_challenge_acks
        + st.tcp_acks_rate_limited
        + st.tcp_challenge_acks_global_limited;
    assert!(dropped >= 4000, "hostile frames are counted: {st:?}");
    assert_eq!(p.a.tcp_state(s), Ok(State::Established));
    assert_eq!(st.page_errors, 0);
}
