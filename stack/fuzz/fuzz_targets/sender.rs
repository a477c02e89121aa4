//! Fuzzes the sender path: a connection with 64 KiB in flight takes
//! fuzzer-chosen ACKs, SACK blocks and windows with time advancing (see
//! `zcstack::fuzzing::sender` for the input format and the invariants).
//! `stack/tests/fuzz_sender.rs` replays a built-in corpus through the same
//! harness on stable.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    zcstack::fuzzing::sender(data);
});
