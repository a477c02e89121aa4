//! zcstack: the sans-IO protocol engine.
//!
//! This crate never reads a clock and never performs I/O: time comes in as an
//! argument ([`time::Instant`]) and frames enter and leave through a device
//! trait supplied by the caller. It has no FFI and no `unsafe` code, so it builds
//! and tests on any machine, with or without DPDK.
//!
//! The TCP/IP engine itself lands with the engine issue; this crate currently
//! holds the vocabulary types the DPDK glue already shares with it.
#![forbid(unsafe_code)]

pub mod time;

pub use time::{Duration, Instant};
