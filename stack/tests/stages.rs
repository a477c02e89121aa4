//! Per-stage cycle accounting (issue 13, item 1): with a cycle source lent
//! to the stack every stage of the request path is charged when exercised;
//! without one nothing is counted. The source here is a fake counter that
//! advances by one per reading, so every charged call adds at least one.
mod common;

use std::sync::atomic::{AtomicU64, Ordering};

use common::*;
use zcstack::phy::sim::SimConfig;
use zcstack::stages::{Stage, StageCount};
use zcstack::{Interest, Token, Trigger};

static TICKS: AtomicU64 = AtomicU64::new(0);

/// A fake cycle counter: one more on every reading.
fn ticks() -> u64 {
    TICKS.fetch_add(1, Ordering::Relaxed)
}

/// A request from b and its answer from a, with events and reads on both
/// sides, then an idle second so a's timers run.
fn exchange(p: &mut Pair) {
    let (s, c) = p.establish(80);
    p.a.register(s, Token(1), Interest::READABLE, Trigger::Level).unwrap();
    assert_eq!(p.b.tcp_write(c, b"GET / HTTP/1.1\r\n\r\n"), Ok(18));
    let mut buf = [0u8; 512];
    let mut events = Vec::with_capacity(8);
    let stop = p.run_until(10_000, |p| {
        events.clear();
        p.a.poll_events(&mut events);
        !events.is_empty()
    });
    assert_eq!(stop, Stop::Done, "request arrives");
    assert_eq!(p.a.tcp_read(s, &mut buf), Ok(18));
    assert_eq!(p.a.tcp_write(s, &[b'r'; 300]), Ok(300));
    let mut got = 0;
    let stop = p.run_until(10_000, |p| {
        if let Ok(n) = p.b.tcp_read(c, &mut buf) {
            got += n;
        }
        got == 300
    });
    assert_eq!(stop, Stop::Done, "response arrives");
    let until = p.now + zcstack::Duration::from_secs(1);
    p.run_until(100_000, |p| p.now >= until);
}

#[test]
fn every_stage_is_charged_when_a_counter_is_set() {
    let mut p = Pair::new(SimConfig::default(), 7);
    p.a.set_cycle_counter(Some(ticks));
    exchange(&mut p);
    let st = *p.a.stage_cycles();
    for (stage, count) in st.iter() {
        assert!(count.calls > 0, "{} never charged: {st:?}", stage.name());
        assert!(count.cycles >= count.calls, "{} charged fewer cycles than calls: {count:?}", stage.name());
        // The longest call bounds the mean from above and the sum from below.
        assert!(
            count.max >= count.per_call() && count.max <= count.cycles,
            "{} max per call out of range: {count:?}",
            stage.name()
        );
    }
    assert_eq!(st.total_cycles(), st.iter().map(|(_, c)| c.cycles).sum::<u64>());
    // Every received TCP segment was looked up once and processed once.
    assert_eq!(st.get(Stage::Lookup).calls, st.get(Stage::TcpInput).calls);
    assert!(st.get(Stage::Parse).calls >= st.get(Stage::Lookup).calls, "every frame parsed");
    assert_eq!(st.get(Stage::Parse).calls, p.a.stats().rx_frames, "one parse per received frame");

    // Off: counts stay as they were; a reset zeroes them.
    p.a.set_cycle_counter(None);
    let (s, c) = (p.a.stage_cycles().get(Stage::Events), *p.a.stage_cycles());
    exchange_again(&mut p);
    assert_eq!(*p.a.stage_cycles(), c, "nothing counted while off");
    assert!(s.calls > 0);
    p.a.reset_stage_cycles();
    assert!(p.a.stage_cycles().iter().all(|(_, c)| c == StageCount::default()));
}

/// More traffic on a second connection.
fn exchange_again(p: &mut Pair) {
    let l = p.a.tcp_listen(81, 4).unwrap();
    let (s, c) = p.accept_from_b(l, 81);
    assert_eq!(p.b.tcp_write(c, b"again"), Ok(5));
    let mut buf = [0u8; 16];
    let stop = p.run_until(10_000, |p| p.a.tcp_read(s, &mut buf) == Ok(5));
    assert_eq!(stop, Stop::Done);
    let mut events = Vec::new();
    p.a.poll_events(&mut events);
}

#[test]
fn nothing_is_counted_without_a_counter() {
    let mut p = Pair::new(SimConfig::default(), 8);
    exchange(&mut p);
    assert!(p.a.stats().rx_frames > 0 && p.b.stats().rx_frames > 0, "traffic flowed");
    for st in [p.a.stage_cycles(), p.b.stage_cycles()] {
        assert!(st.iter().all(|(_, c)| c == StageCount::default()), "counted while off: {st:?}");
    }
}
