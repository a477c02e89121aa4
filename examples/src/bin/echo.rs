//! `echo`: TCP and UDP echo on one port of a `config.ini` (RFC 862 style).
//!
//! TCP: every byte read is written back (reads are zero-copy views when the
//! port hands frames over; what the send buffer cannot take yet waits and
//! reading pauses, so a fast sender is slowed by TCP, never by dropping).
//! UDP: every datagram goes back to its sender. Stops on SIGINT/SIGTERM or
//! after `--duration` seconds and prints `ECHO {json}`.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::{Duration, Instant as Wall};

use clap::Parser;
use dpdk_glue::Control;
use serde_json::json;
use zcstack::{Event, Interest, SocketHandle, TcpError, Token, Trigger};

#[derive(Debug, Parser)]
#[command(about = "TCP and UDP echo server on zcstack")]
struct Args {
    #[command(flatten)]
    fstack: zcstack_examples::FstackArgs,
    /// TCP and UDP port.
    #[arg(long, default_value_t = 7)]
    port: u16,
    /// Stop after this many seconds (0: run until a signal).
    #[arg(long, default_value_t = 0)]
    duration: u64,
}

/// Bytes a connection read but could not write back yet.
const MAX_PENDING: usize = 256 * 1024;

fn main() -> ExitCode {
    zcstack_examples::init_logging();
    zcstack_examples::exit("echo", run(Args::parse()))
}

/// Serves on every lcore of the config (each lcore listens; RSS or
/// software steering brings each its flows) and prints the sum over lcores
/// with the per-lcore figures under `"lcores"`.
fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let per = zcstack_examples::launch_from_conf("echo", &args.fstack.conf, &args.fstack, |rt| {
        serve_lcore(rt, &args).map_err(|e| e.to_string())
    })?;
    let rows = per.into_iter().collect::<Result<Vec<_>, String>>()?;
    let mut sum = zcstack_examples::sum_json(&rows);
    sum.as_object_mut().map(|o| o.remove("lcore_index"));
    sum["nb_lcores"] = json!(rows.len());
    sum["lcores"] = json!(rows);
    println!("ECHO {sum}");
    Ok(())
}

/// One lcore's echo server; returns its counters.
fn serve_lcore(rt: &mut dpdk_glue::Runtime, args: &Args) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let l = rt.stack.tcp_listen(args.port, 1024)?;
    let u = rt.stack.udp_bind(args.port)?;
    rt.stack.register(l, Token(0), Interest::READABLE, Trigger::Level)?;
    println!(
        "echo: listening on {}:{} (TCP and UDP, lcore {} of {})",
        rt.stack.addr(),
        args.port,
        rt.lcore_index(),
        rt.nb_lcores()
    );
    // Per connection: its handle, the bytes read but not yet written back,
    // and whether it is registered for WRITABLE too (only while bytes wait:
    // a level-triggered WRITABLE on an idle connection fires every pass,
    // and each such pass costs a lookup and a read attempt before the
    // loop polls the port again).
    let mut conns: HashMap<usize, (SocketHandle, Vec<u8>, bool)> = HashMap::new();
    let mut next = 1usize;
    let (mut tcp_bytes, mut udp_datagrams, mut accepted) = (0u64, 0u64, 0u64);
    let mut events: Vec<Event> = Vec::new();
    let mut dgram = vec![0u8; 65_536];
    let t0 = Wall::now();
    let mut iter = 0u64;
    rt.run(|stack, now| {
        iter += 1;
        if args.duration > 0 && iter % 1024 == 0 && t0.elapsed() >= Duration::from_secs(args.duration) {
            return (false, Control::Stop);
        }
        let mut did = false;
        while let Ok((n, from)) = stack.udp_recv_from(u, &mut dgram) {
            let _ = stack.udp_send_to(u, from, &dgram[..n]);
            udp_datagrams += 1;
            did = true;
        }
        events.clear();
        stack.poll_events(&mut events);
        // An event is not work by itself (level-triggered READABLE repeats
        // while bytes wait unread, WRITABLE while bytes wait to go back);
        // only moved bytes, accepts and closes count (ff_top's busy/idle
        // split).
        for ev in &events {
            if ev.token == Token(0) {
                while let Ok((h, _)) = stack.tcp_accept(l) {
                    if stack.register(h, Token(next), Interest::READABLE, Trigger::Level).is_ok() {
                        conns.insert(next, (h, Vec::new(), false));
                        next += 1;
                        accepted += 1;
                        did = true;
                    }
                }
                continue;
            }
            let Some((h, pending, writable)) = conns.get_mut(&ev.token.0) else { continue };
            let h = *h;
            let mut done = false;
            // Write back what is pending, then read more while there is room.
            while !pending.is_empty() {
                match stack.tcp_write(h, pending) {
                    Ok(n) => {
                        pending.drain(..n);
                        did = true;
                    }
                    Err(TcpError::WouldBlock | TcpError::NoBuffers) => break,
                    Err(_) => {
                        done = true;
                        break;
                    }
                }
            }
            while !done && pending.len() < MAX_PENDING {
                match stack.tcp_read_zc(h) {
                    Ok(Some(v)) => {
                        did = true;
                        tcp_bytes += v.len() as u64;
                        let mut off = 0;
                        if pending.is_empty() {
                            while off < v.len() {
                                match stack.tcp_write(h, &v[off..]) {
                                    Ok(n) => off += n,
                                    Err(_) => break,
                                }
                            }
                        }
                        pending.extend_from_slice(&v[off..]);
                    }
                    Ok(None) => {
                        // The client closed: finish writing back, then close.
                        done = pending.is_empty();
                        if !done {
                            break;
                        }
                    }
                    Err(TcpError::WouldBlock) => break,
                    Err(_) => done = true,
                }
            }
            if !done && pending.is_empty() == *writable {
                // Bytes wait (ask for WRITABLE) or none do any more.
                let want =
                    if pending.is_empty() { Interest::READABLE } else { Interest::READABLE | Interest::WRITABLE };
                *writable = stack.register(h, ev.token, want, Trigger::Level).is_ok() && !pending.is_empty();
            }
            if done {
                did = true;
                let _ = stack.deregister(h);
                let _ = stack.tcp_close(h, now);
                conns.remove(&ev.token.0);
            }
        }
        (did, Control::Continue)
    });
    for (_, (h, _, _)) in conns.drain() {
        let now = rt.now();
        let _ = rt.stack.tcp_close(h, now);
    }
    let t = Wall::now();
    rt.run(|stack, _| {
        (
            false,
            if stack.tcp_connections() == 0 || t.elapsed() >= Duration::from_secs(1) {
                Control::Stop
            } else {
                Control::Continue
            },
        )
    });
    let over_budget = rt.stack.stats().rx_frames_over_budget;
    let (free, total, mbufs) = rt.shutdown()?;
    let steer = rt.dev.steer_stats().unwrap_or_default();
    Ok(json!({
        "lcore_index": rt.lcore_index(),
        "accepted": accepted, "tcp_bytes": tcp_bytes, "udp_datagrams": udp_datagrams,
        "pages_free": free, "pages_total": total, "mbufs_in_use": mbufs, "clean": free == total && mbufs == 0,
        "rx_frames_over_budget": over_budget, "rx_frames": rt.dev.stats().rx_frames,
        "steered_out": steer.steered_out, "steered_in": steer.steered_in, "steer_copied": steer.copied,
        "steer_backlogged": steer.backlogged, "steer_dropped_at_close": steer.dropped_at_close,
            "steer_unread_at_close": steer.unread_at_close,
    }))
}
