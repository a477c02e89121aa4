//! Software steering between lcores (`dpdk_glue::steer`), one lcore's side
//! against real `rte_ring`s: frames for another queue reach its ring in
//! order, ARP is copied to every other queue, a full ring holds frames in a
//! backlog without losing them while the owner drains, and an owner that
//! never drains costs at most `BACKLOG_MAX` frames of the sender's pool
//! (the oldest are freed and counted) instead of the whole pool.
mod common;

use std::sync::Arc;

use dpdk_glue::steer::{Dest, SteerRing, Steering, BACKLOG_MAX};
use dpdk_glue::{Mbuf, Mempool, PoolConfig};

/// Rings for a 2-queue port: `rings[from][to]`, `size` slots each.
fn rings(size: u32) -> Vec<Vec<Option<Arc<SteerRing>>>> {
    let mk = |from: u16, to: u16| {
        let name = common::unique(&format!("st{from}{to}"));
        Some(Arc::new(SteerRing::create(common::eal(), &name, size, -1).expect("ring")))
    };
    vec![vec![None, mk(0, 1)], vec![mk(1, 0), None]]
}

/// Frames whose first byte says where they belong: 0 → queue 0, 1 →
/// queue 1, 2 → every queue (ARP); bytes 1..5 number them.
fn classify() -> dpdk_glue::steer::Classify {
    Arc::new(|f: &[u8]| match f.first() {
        Some(0) => Dest::Queue(0),
        Some(1) => Dest::Queue(1),
        Some(2) => Dest::All,
        _ => Dest::Here,
    })
}

fn frame(pool: &Mempool, kind: u8, n: u32) -> Mbuf {
    let mut m = pool.alloc().expect("mbuf");
    let mut b = vec![kind];
    b.extend_from_slice(&n.to_be_bytes());
    m.extend_from_slice(&b).unwrap();
    m
}

fn number(m: &Mbuf) -> u32 {
    u32::from_be_bytes(m.data()[1..5].try_into().unwrap())
}

fn pool(n: u32) -> Arc<Mempool> {
    Arc::new(Mempool::new(common::eal(), &common::unique("stp"), &PoolConfig::packets(n)).expect("pool"))
}

#[test]
fn frames_reach_their_owner_in_order_and_arp_is_copied() {
    let (rx_pool, copies) = (pool(1023), pool(255));
    let r = rings(64);
    let mut lcore0 = Steering::new(0, &r, classify(), copies.clone());
    let mut lcore1 = Steering::new(1, &r, classify(), copies.clone());
    // 200 frames for queue 1 (more than its ring holds), 20 of our own, one ARP.
    let mut sent = 0u32;
    let mut got1: Vec<u32> = Vec::new();
    let mut kept0 = 0;
    for burst in 0..10 {
        let mut rx: Vec<Mbuf> = (0..20).map(|i| frame(&rx_pool, 1, burst * 20 + i)).collect();
        sent += 20;
        rx.push(frame(&rx_pool, 0, 10_000 + burst));
        rx.push(frame(&rx_pool, 0, 20_000 + burst));
        if burst == 3 {
            rx.push(frame(&rx_pool, 2, 30_000));
        }
        lcore0.sort(&mut rx, 32);
        kept0 += rx.len();
        drop(rx);
        // The owner drains at most 8 per pass: it falls behind, the ring
        // (63 frames) fills and frames wait in lcore 0's backlog.
        let mut rx1 = Vec::new();
        lcore1.sort(&mut rx1, 8);
        got1.extend(rx1.iter().filter(|m| m.data()[0] == 1).map(number));
    }
    assert!(lcore0.stats().backlogged > 0, "the ring filled: {:?}", lcore0.stats());
    for _ in 0..100 {
        let mut none = Vec::new();
        lcore0.sort(&mut none, 32);
        let mut rx1 = Vec::new();
        lcore1.sort(&mut rx1, 16);
        got1.extend(rx1.iter().filter(|m| m.data()[0] == 1).map(number));
    }
    assert_eq!(got1, (0..sent).collect::<Vec<_>>(), "every frame once, in order");
    assert_eq!(kept0, 21, "own frames and the ARP original stay");
    let (s0, s1) = (lcore0.stats(), lcore1.stats());
    assert_eq!(s0.copied, 1);
    assert_eq!(s0.steered_out, u64::from(sent) + 1, "{s0:?}");
    assert_eq!(s1.steered_in, s0.steered_out, "{s1:?}");
    assert_eq!((s0.backlog_now, s0.dropped_owner_stalled, s0.dropped_at_close), (0, 0, 0));
    assert_eq!(rx_pool.in_use(), 0);
    assert_eq!(copies.in_use(), 0);
}

#[test]
fn an_owner_that_never_drains_costs_a_bounded_backlog_not_the_pool() {
    let ring = 64u32;
    let total = BACKLOG_MAX as u32 + 1000;
    let rx_pool = pool(total + 1024);
    let r = rings(ring);
    let mut lcore0 = Steering::new(0, &r, classify(), pool(63));
    for burst in 0..total / 32 {
        let mut rx: Vec<Mbuf> = (0..32).map(|i| frame(&rx_pool, 1, burst * 32 + i)).collect();
        lcore0.sort(&mut rx, 32);
    }
    let s = lcore0.stats();
    let sent = u64::from(total / 32 * 32);
    assert_eq!(s.steered_out, u64::from(ring - 1), "the ring took what fits: {s:?}");
    assert_eq!(s.backlog_now, BACKLOG_MAX as u64, "{s:?}");
    assert_eq!(s.dropped_owner_stalled, sent - u64::from(ring - 1) - BACKLOG_MAX as u64, "{s:?}");
    assert_eq!(
        u64::from(rx_pool.in_use()),
        u64::from(ring - 1) + BACKLOG_MAX as u64,
        "held: the ring and the bounded backlog"
    );
    // The frames kept are the newest: the owner, back, gets them in order.
    let mut lcore1 = Steering::new(1, &r, classify(), pool(63));
    let mut got: Vec<u32> = Vec::new();
    for _ in 0..(BACKLOG_MAX as u32 / 16 + 100) {
        let mut none = Vec::new();
        lcore0.sort(&mut none, 32);
        let mut rx1 = Vec::new();
        lcore1.sort(&mut rx1, 64);
        got.extend(rx1.iter().map(number));
    }
    let first_kept = sent as u32 - BACKLOG_MAX as u32;
    assert_eq!(&got[..(ring - 1) as usize], &(0..ring - 1).collect::<Vec<_>>()[..]);
    assert_eq!(&got[(ring - 1) as usize..], &(first_kept..sent as u32).collect::<Vec<_>>()[..]);
    assert_eq!(rx_pool.in_use(), 0);
}

/// A flow the device moves from queue 0 to queue 1 mid-life (the tun driver
/// does this when its flow table gains an entry for the queue the owner
/// transmits on): its older frames arrive through lcore 0's ring, its newer
/// ones directly on queue 1 in the same burst. The stack must see them in
/// the order the peer sent them, so steered-in frames come first, and both
/// groups keep their own order, over several bursts and with a ring that
/// holds more than one pass drains.
#[test]
fn steered_in_frames_come_before_own_frames_of_the_same_burst() {
    let (rx_pool, copies) = (pool(1023), pool(63));
    let r = rings(64);
    let mut lcore0 = Steering::new(0, &r, classify(), copies.clone());
    let mut lcore1 = Steering::new(1, &r, classify(), copies.clone());
    let mut seen: Vec<u32> = Vec::new();
    let mut next = 0u32;
    for burst in 0..5u32 {
        // Older frames of queue 1's flows reached queue 0 and were steered...
        let older = 3 + burst;
        let mut rx0: Vec<Mbuf> = (0..older).map(|i| frame(&rx_pool, 1, next + i)).collect();
        lcore0.sort(&mut rx0, 32);
        assert!(rx0.is_empty(), "lcore 0 keeps none of them");
        next += older;
        // ...then newer ones reach queue 1 directly, in the same burst as
        // lcore 1 drains its ring.
        let mut rx1: Vec<Mbuf> = (0..4).map(|i| frame(&rx_pool, 1, next + i)).collect();
        next += 4;
        lcore1.sort(&mut rx1, 32);
        let got: Vec<u32> = rx1.iter().map(number).collect();
        assert_eq!(got, (next - older - 4..next).collect::<Vec<_>>(), "burst {burst}: ring first, then own");
        seen.extend(got);
    }
    // A pass that drains less than the ring holds: what is left of the
    // ring still comes before the own frames of the next pass.
    let mut rx0: Vec<Mbuf> = (0..10).map(|i| frame(&rx_pool, 1, next + i)).collect();
    lcore0.sort(&mut rx0, 32);
    let mut rx1: Vec<Mbuf> = (10..12).map(|i| frame(&rx_pool, 1, next + i)).collect();
    lcore1.sort(&mut rx1, 6);
    let got: Vec<u32> = rx1.iter().map(number).collect();
    assert_eq!(got, [0, 1, 2, 3, 4, 5, 10, 11].map(|i| next + i).to_vec());
    seen.extend(got);
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "the peer's order end to end: {seen:?}");
    assert_eq!(lcore1.stats().steered_in + 4, lcore0.stats().steered_out, "4 still in the ring");
    drop(rx1);
    drop(lcore0);
    drop(lcore1);
    drop(r);
    assert_eq!(rx_pool.in_use(), 0, "the 4 frames left in the ring were freed with it");
}
