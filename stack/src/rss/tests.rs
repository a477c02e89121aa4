use super::*;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Microsoft's RSS verification key ("Verifying the RSS Hash Calculation").
const MS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b,
    0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac,
    0x01, 0xfa,
];

/// (destination, destination port, source, source port, IPv4 hash,
/// IPv4-with-TCP hash), as Microsoft publishes them.
type Vector = ([u8; 4], u16, [u8; 4], u16, u32, u32);
const MS_V4: [Vector; 5] = [
    ([161, 142, 100, 80], 1766, [66, 9, 149, 187], 2794, 0x323e8fc2, 0x51ccc178),
    ([65, 69, 140, 83], 4739, [199, 92, 111, 2], 14230, 0xd718262a, 0xc626b0ea),
    ([12, 22, 207, 184], 38024, [24, 19, 198, 95], 12898, 0xd2d0a5de, 0x5c2b394a),
    ([209, 142, 163, 6], 2217, [38, 27, 205, 30], 48228, 0x82989176, 0xafc7327f),
    ([202, 188, 127, 2], 1303, [153, 39, 163, 191], 44251, 0x5d1809c5, 0x10e828a2),
];

fn ip(o: [u8; 4]) -> Ipv4Address {
    Ipv4Address::new(o[0], o[1], o[2], o[3])
}

/// Bit-by-bit Toeplitz straight from the specification, to cross-check the
/// table form on keys and inputs the vectors do not cover.
fn toeplitz_reference(key: &[u8], input: &[u8]) -> u32 {
    let kbit = |n: usize| key.get(n / 8).map_or(0, |b| (b >> (7 - n % 8)) & 1);
    let mut h = 0u32;
    for (i, &b) in input.iter().enumerate() {
        for j in 0..8 {
            if b & (0x80 >> j) != 0 {
                let off = 8 * i + j;
                h ^= (0..32).fold(0u32, |w, k| (w << 1) | u32::from(kbit(off + k)));
            }
        }
    }
    h
}

#[test]
fn microsoft_vectors_ipv4_only() {
    let t = Toeplitz::new(&MS_KEY);
    for (dst, _, src, _, h3, _) in MS_V4 {
        assert_eq!(t.hash_v4(ip(src), ip(dst)), h3, "{src:?} -> {dst:?}");
    }
}

#[test]
fn microsoft_vectors_ipv4_with_tcp() {
    let t = Toeplitz::new(&MS_KEY);
    for (dst, dport, src, sport, _, h4) in MS_V4 {
        assert_eq!(t.hash_v4_ports(ip(src), ip(dst), sport, dport), h4, "{src:?}:{sport} -> {dst:?}:{dport}");
    }
}

#[test]
fn table_form_matches_the_bitwise_definition() {
    let mut rng = SmallRng::seed_from_u64(7);
    for len in [4usize, 5, 16, 40, 52, 64] {
        let key: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        let t = Toeplitz::new(&key);
        assert_eq!(t.key(), &key[..]);
        for _ in 0..50 {
            // Inputs up to and past the key's end (extra bits meet zeros).
            let n = rng.gen_range(0..=len + 8);
            let input: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            assert_eq!(t.hash(&input), toeplitz_reference(&key, &input), "key {len} input {n}");
        }
    }
}

#[test]
fn odd_key_lengths_never_panic() {
    assert_eq!(Toeplitz::try_new(&[1, 2, 3]).unwrap_err(), RssError::KeyLength(3));
    assert_eq!(Toeplitz::try_new(&[0; 65]).unwrap_err(), RssError::KeyLength(65));
    assert_eq!(Toeplitz::new(&[]).key(), &[0, 0, 0, 0]);
    assert_eq!(Toeplitz::new(&[9; 80]).key().len(), 64);
    assert_eq!(Toeplitz::new(&[]).hash(&[0xff; 100]), 0);
}

#[test]
fn symmetric_key_hashes_both_directions_alike() {
    let mut rng = SmallRng::seed_from_u64(12);
    for key in [&SYMMETRIC_RSS_KEY[..], &SYMMETRIC_RSS_KEY_52[..]] {
        let t = Toeplitz::new(key);
        for _ in 0..2000 {
            let (a, b) = (ip(rng.gen()), ip(rng.gen()));
            let (pa, pb): (u16, u16) = (rng.gen(), rng.gen());
            assert_eq!(t.hash_v4_ports(a, b, pa, pb), t.hash_v4_ports(b, a, pb, pa));
            assert_eq!(t.hash_v4(a, b), t.hash_v4(b, a));
        }
    }
    // The default key is not symmetric: some tuple tells the directions apart.
    let t = Toeplitz::new(&FSTACK_RSS_KEY);
    let (a, b) = (Ipv4Address::new(10, 0, 0, 1), Ipv4Address::new(10, 0, 0, 2));
    assert!((1000..1100u16).any(|p| t.hash_v4_ports(a, b, p, 80) != t.hash_v4_ports(b, a, 80, p)));
}

#[test]
fn reta_spread_and_lookup() {
    let r = Reta::spread(128, 3);
    assert_eq!(r.entries().len(), 128);
    assert!(r.entries().iter().enumerate().all(|(j, &q)| usize::from(q) == j % 3));
    assert_eq!(r.queue(0), 0);
    assert_eq!(r.queue(128 + 4), 1);
    assert_eq!(r.queue(u32::MAX), (u32::MAX % 128 % 3) as u16);
    // Degenerate sizes are clamped, never a division by zero.
    assert_eq!(Reta::spread(0, 0).entries(), &[0]);
    assert_eq!(Reta::spread(0, 4).queue(12345), 0);
    assert_eq!(Reta::from_entries(vec![]).unwrap_err(), RssError::EmptyReta);
    // F-Stack's check: (hash & (reta_size - 1)) % nb_queues, the same queue.
    let r = Reta::spread(512, 4);
    for h in [0u32, 1, 511, 512, 0xdead_beef, u32::MAX] {
        assert_eq!(u32::from(r.queue(h)), (h & 511) % 4);
    }
}

// ----- steer_frame on crafted frames -----

const US: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
const PEER: Ipv4Address = Ipv4Address::new(10, 0, 0, 2);

fn spec(queues: u16) -> RssSpec {
    RssSpec { toeplitz: Toeplitz::new(&FSTACK_RSS_KEY), reta: Reta::spread(128, queues) }
}

fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn ipv4(src: Ipv4Address, dst: Ipv4Address, proto: u8, frag: u16, payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x45, 0, 0, 0, 0, 1, 0, 0, 64, proto, 0, 0];
    let total = (20 + payload.len()) as u16;
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[6..8].copy_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    h.extend_from_slice(payload);
    h
}

fn l4(sport: u16, dport: u16, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len.max(4)];
    b[..2].copy_from_slice(&sport.to_be_bytes());
    b[2..4].copy_from_slice(&dport.to_be_bytes());
    b
}

#[test]
fn arp_goes_to_every_queue() {
    let s = spec(4);
    assert_eq!(steer_frame(&s, &eth(0x0806, &[0; 28])), Steer::AllQueues);
}

#[test]
fn tcp_and_udp_go_to_their_tuple_queue() {
    let s = spec(4);
    let mut seen = [false; 4];
    for port in 40000..40064u16 {
        for proto in [6u8, 17] {
            let f = eth(0x0800, &ipv4(PEER, US, proto, 0, &l4(port, 80, 20)));
            let want = s.queue_of_v4(PEER, US, port, 80);
            assert_eq!(steer_frame(&s, &f), Steer::Queue(want));
            seen[usize::from(want)] = true;
        }
    }
    assert!(seen.iter().all(|&x| x), "64 tuples reach all 4 queues: {seen:?}");
}

#[test]
fn all_fragments_of_a_datagram_meet() {
    let s = spec(4);
    let want = Steer::Queue(s.queue_of_v4_addrs(PEER, US));
    let first = eth(0x0800, &ipv4(PEER, US, 17, 0x2000, &l4(5000, 53, 24)));
    let middle = eth(0x0800, &ipv4(PEER, US, 17, 0x2000 | 3, &[7; 24]));
    let last = eth(0x0800, &ipv4(PEER, US, 17, 6, &[7; 10]));
    for f in [first, middle, last] {
        assert_eq!(steer_frame(&s, &f), want);
    }
}

#[test]
fn icmp_error_goes_to_the_quoted_flows_owner() {
    let s = spec(4);
    for lport in 33000..33032u16 {
        // Our segment us:lport -> peer:443, quoted in a router's
        // "fragmentation needed" from another address.
        let quoted = ipv4(US, PEER, 6, 0x4000, &l4(lport, 443, 20));
        for ty in [3u8, 4, 5, 11, 12] {
            let mut icmp = vec![ty, 4, 0, 0, 0, 0, 0x05, 0xdc];
            icmp.extend_from_slice(&quoted[..28]);
            let router = Ipv4Address::new(192, 168, 7, 1);
            let f = eth(0x0800, &ipv4(router, US, 1, 0, &icmp));
            // The owner is the queue the peer's replies land on.
            assert_eq!(steer_frame(&s, &f), Steer::Queue(s.queue_of_v4(PEER, US, 443, lport)), "type {ty}");
        }
    }
}

#[test]
fn other_ipv4_goes_by_addresses() {
    let s = spec(4);
    let want = Steer::Queue(s.queue_of_v4_addrs(PEER, US));
    let echo = eth(0x0800, &ipv4(PEER, US, 1, 0, &[8, 0, 0, 0, 0, 1, 0, 1]));
    assert_eq!(steer_frame(&s, &echo), want);
    // An ICMP error quoting too little, or quoting ICMP, is not a flow's.
    let short = eth(0x0800, &ipv4(PEER, US, 1, 0, &[3, 3, 0, 0, 0, 0, 0, 0, 0x45]));
    assert_eq!(steer_frame(&s, &short), want);
    let gre = eth(0x0800, &ipv4(PEER, US, 47, 0, &[0; 8]));
    assert_eq!(steer_frame(&s, &gre), want);
}

#[test]
fn short_malformed_and_foreign_frames_stay_here() {
    let s = spec(4);
    let good = eth(0x0800, &ipv4(PEER, US, 6, 0, &l4(1, 2, 20)));
    assert_eq!(steer_frame(&s, &[]), Steer::Here);
    assert_eq!(steer_frame(&s, &good[..13]), Steer::Here);
    assert_eq!(steer_frame(&s, &good[..14 + 19]), Steer::Here, "truncated IP header");
    assert_eq!(steer_frame(&s, &good[..14 + 22]), Steer::Here, "truncated ports");
    let mut v6 = good.clone();
    v6[14] = 0x65;
    assert_eq!(steer_frame(&s, &v6), Steer::Here, "IP version 6 in an IPv4 frame");
    let mut ihl = good.clone();
    ihl[14] = 0x44;
    assert_eq!(steer_frame(&s, &ihl), Steer::Here, "header length 16");
    let mut tot = good.clone();
    tot[16..18].copy_from_slice(&10u16.to_be_bytes());
    assert_eq!(steer_frame(&s, &tot), Steer::Here, "total length below the header");
    assert_eq!(steer_frame(&s, &eth(0x86dd, &[0x60; 60])), Steer::Here, "IPv6");
    assert_eq!(steer_frame(&s, &eth(0x8100, &[0; 60])), Steer::Here, "VLAN tag");
}

#[test]
fn random_bytes_never_panic_and_stay_in_range() {
    let mut rng = SmallRng::seed_from_u64(99);
    for queues in [1u16, 2, 3, 4, 16] {
        let s = spec(queues);
        for i in 0..20_000 {
            let n = rng.gen_range(0..120);
            let mut f: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            // Bias half the cases into IPv4/ICMP so the deep paths are fuzzed.
            if i % 2 == 0 && f.len() > 24 {
                f[12] = 0x08;
                f[13] = 0;
                f[14] = 0x45;
                f[23] = [1u8, 6, 17][i % 3];
            }
            match steer_frame(&s, &f) {
                Steer::Queue(q) => assert!(q < queues),
                Steer::AllQueues | Steer::Here => {}
            }
        }
    }
}

// ----- port choice -----

#[test]
fn pick_port_prefers_the_table_then_searches_and_stays_on_its_queue() {
    let s = spec(4);
    let remote = SocketAddrV4::new(PEER, 80);
    let entry = RssLocal::tbl_entry(&s, 2, US, remote, 50000..=50999);
    assert!(!entry.ports.is_empty());
    let rss = RssLocal { spec: s.clone(), queue: 2, tbl: vec![entry.clone()] };
    let mut tried = 0;
    let p = rss.pick_port(US, remote, 32768..=60999, 32768, |_| true, &mut tried).unwrap();
    assert_eq!(p, entry.ports[0], "the table comes first");
    assert_eq!(tried, 1);
    // Table ports taken: the search finds another port of queue 2.
    let p = rss.pick_port(US, remote, 32768..=60999, 40000, |p| !entry.ports.contains(&p), &mut tried).unwrap();
    assert!(rss.owns(SocketAddrV4::new(US, p), remote) && !entry.ports.contains(&p));
    // Nothing free: None after one bounded pass.
    tried = 0;
    assert_eq!(rss.pick_port(US, remote, 32768..=60999, 1, |_| false, &mut tried), None);
    assert_eq!(tried, entry.ports.len() as u64 + 28232);
    // An empty range never loops.
    #[allow(clippy::reversed_empty_ranges)]
    let empty = 10..=5;
    assert_eq!(rss.pick_port(US, SocketAddrV4::new(PEER, 1), empty, 7, |_| true, &mut tried), None);
}
