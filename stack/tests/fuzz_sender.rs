//! Replays a built-in corpus through the sender-path fuzz harness
//! (`zcstack::fuzzing::sender`, also the cargo-fuzz target `sender`), so the
//! stable test run covers it: hand-written inputs for the cases and
//! seeded random ones.
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use zcstack::fuzzing::{sender, SENDER_INITIAL, SENDER_MSS, SENDER_RECORD};

/// One record: kind, ack offset (or raw ack for kind 2), window, SACK left
/// (in units of 8 bytes) and length, time step byte.
fn rec(kind: u8, ack: u32, win: u16, left8: u16, len: u16, step: u8) -> [u8; SENDER_RECORD] {
    let mut r = [0u8; SENDER_RECORD];
    r[0] = kind;
    r[1..5].copy_from_slice(&ack.to_le_bytes());
    r[5..7].copy_from_slice(&win.to_le_bytes());
    r[7..9].copy_from_slice(&left8.to_le_bytes());
    r[9..11].copy_from_slice(&len.to_le_bytes());
    r[11] = step;
    r
}

fn run(records: &[[u8; SENDER_RECORD]]) -> Vec<Vec<(u64, usize)>> {
    sender(&records.concat())
}

#[test]
fn sack_block_ending_past_half_the_flight_after_an_rto() {
    // Input 2's shape: nothing acknowledged until the RTO fires (1 s), then one
    // ACK covering the first segment with a SACK block ending at
    // snd_max - flight/2 + 1, then duplicate ACKs (well inside the next RTO).
    // Expected: the hole before the block is retransmitted at once, in
    // full segments, and nothing the block covers is sent again.
    let mss = u32::from(SENDER_MSS);
    let flight = 10 * mss; // the initial window
    let right = flight - flight / 2 + 1;
    let left = 3 * mss / 8 * 8; // the record carries left / 8: off the segment grid
    let mut v = vec![rec(5, 0, 0, 0, 0, 0x80 | 3)]; // 1.5 s: the RTO fires
    v.push(rec(1, mss, 65535, (left / 8) as u16, (right - left) as u16, 1));
    for i in 0..20 {
        v.push(rec(1, mss, 65535, (left / 8) as u16, (right - left) as u16, 1 + i % 3));
    }
    let trace = run(&v);
    assert!(trace[0].iter().any(|&(o, _)| o == 0), "the RTO retransmits the first segment: {:?}", trace[0]);
    let after: Vec<(u64, usize)> = trace[1..].iter().flatten().copied().filter(|s| s.1 > 0).collect();
    let (mss, left, right) = (u64::from(mss), u64::from(left), u64::from(right));
    assert!(
        after.iter().any(|&(o, l)| o < left && o + l as u64 > mss),
        "the hole [{mss}, {left}) before the SACK block is retransmitted before another RTO: {after:?}"
    );
    for &(o, l) in &after {
        assert!(o + l as u64 <= left || o >= right, "SACKed [{left}, {right}) resent before an RTO: ({o}, {l})");
        // A hole that ends where SACKed data starts is filled exactly.
        assert!(
            l as u64 == mss || o + l as u64 == right || o + l as u64 == left,
            "a sub-MSS segment ({o}, {l}) in recovery: {after:?}"
        );
    }
}

#[test]
fn zero_window_then_reopen_and_lost_updates() {
    let mut v = vec![rec(3, 64, 0, 0, 0, 2)]; // zero window after 64 bytes
    for _ in 0..10 {
        v.push(rec(5, 0, 0, 0, 0, 0x80 | 20)); // 10 s each: probes back off
    }
    // Reopened: a window below one MSS is not worth a segment (sender SWS
    // avoidance, RFC 9293 3.8.6.2.1), so the reopening is a full window.
    v.push(rec(3, 64, 65535, 0, 0, 1));
    v.push(rec(0, 2000, 65535, 0, 0, 0x40 | 5));
    let trace = run(&v);
    // Input 3: probes repeat while the window is zero (10 s between records:
    // each wait past the backed-off persist timer, capped at 60 s, sees at
    // least one probe in the first ones), and data flows after the reopening.
    let probes = trace[1..11].iter().filter(|t| !t.is_empty()).count();
    assert!(probes >= 3, "zero-window probes repeat: {:?}", &trace[1..11]);
    assert!(
        trace[11..].iter().flatten().any(|&(o, l)| o >= 64 && l > 0),
        "data flows after the window reopens: {trace:?}"
    );
}

#[test]
fn acks_for_unsent_data_and_far_behind() {
    let v = [
        rec(2, 0x7fff_ffff, 65535, 0, 0, 1),
        rec(2, 0x8000_0000, 65535, 0, 0, 1),
        rec(2, 0xc000_0000, 65535, 0, 0, 1),
        rec(0, SENDER_INITIAL as u32 + 100, 65535, 0, 0, 1),
        rec(0, 1460, 65535, 0, 0, 1),
        rec(1, 1460, 65535, 0xffff, 0xffff, 1),
        rec(1, 1460, 65535, 8000, 0, 1),
        rec(5, 0, 0, 0, 0, 0xc0 | 63),
    ];
    // Input 4's ACKs must not move snd_una: the data stays queued and the
    // RTO resends from offset 0 at the end (the harness checks the ordering
    // of una/nxt/max and that nothing past the written bytes goes out).
    let trace = run(&v);
    assert!(trace[..4].iter().flatten().all(|&(o, l)| l == 0 || o == 0), "bogus ACKs release nothing new: {trace:?}");
}

#[test]
fn seeded_random_corpus() {
    for seed in 0..200u64 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let n = rng.gen_range(1..60) * SENDER_RECORD;
        let data: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
        let trace = sender(&data);
        assert!(trace.len() <= 60, "one entry per record");
    }
}

#[test]
fn empty_and_short_inputs() {
    assert!(sender(&[]).is_empty());
    assert!(sender(&[1, 2, 3]).is_empty());
}
