//! zcstack: the sans-IO protocol engine.
//!
//! This crate never reads a clock and never performs I/O: time comes in as an
//! argument ([`time::Instant`]) and frames enter and leave through a
//! [`phy::Device`]. It has no FFI and no `unsafe` code, so it builds and tests
//! on any machine, with or without DPDK.
//!
//! - [`stack::Stack`]: one interface with ARP, IPv4, ICMP, UDP and TCP, driven
//!   by `poll(now, device)`; `poll_at()` says when to call next.
//! - [`mem`]: reference-counted page buffers; the TCP send queue holds page
//!   references, so zero-copy plugs in without changing the engine.
//! - [`phy::sim`]: `SimLink`, a deterministic impaired link for tests.
#![forbid(unsafe_code)]

pub mod config;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
pub mod iface;
pub mod mem;
pub mod phy;
pub mod rss;
pub mod rx_budget;
mod scatter;
pub mod stack;
pub mod stages;
pub mod stats;
pub mod sysctl;
pub mod tcp;
pub mod time;
pub mod udp;
pub mod wire;
pub mod zc;

pub use config::{IfaceConfig, StackConfig, TcpConfig};
pub use event::{Event, Interest, Token, Trigger};
pub use stack::Stack;
pub use tcp::{SocketHandle, State, TcpError};
pub use time::{Duration, Instant};
pub use zc::{FfZcMbuf, RxView, ZcBuf, ZcError, ZcMsg};
