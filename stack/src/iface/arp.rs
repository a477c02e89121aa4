//! ARP cache with expiry and a bounded size, and the queue of packets waiting
//! for an address to resolve.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use super::IpOut;
use crate::time::{Duration, Instant};
use crate::wire::{EthernetAddress, Ipv4Address};

#[derive(Debug)]
struct Entry {
    mac: EthernetAddress,
    expires: Instant,
}

#[derive(Debug)]
struct Pending {
    packets: VecDeque<IpOut>,
    next_request: Instant,
    requests: u32,
}

/// Neighbour resolution state.
#[derive(Debug)]
pub struct ArpCache {
    entries: FxHashMap<Ipv4Address, Entry>,
    pending: FxHashMap<Ipv4Address, Pending>,
    capacity: usize,
    ttl: Duration,
    per_dest: usize,
}

/// Requests sent for one address before its queued packets are dropped.
pub const MAX_REQUESTS: u32 = 3;
/// Interval between ARP requests for one address.
pub const REQUEST_INTERVAL: Duration = Duration::from_secs(1);

impl ArpCache {
    /// A cache of at most `capacity` entries living `ttl`, queueing at most
    /// `per_dest` packets per unresolved address.
    pub fn new(capacity: usize, ttl: Duration, per_dest: usize) -> Self {
        ArpCache {
            entries: FxHashMap::default(),
            pending: FxHashMap::default(),
            capacity: capacity.max(1),
            ttl,
            per_dest,
        }
    }

    /// The MAC for `ip`, if known and fresh.
    pub fn lookup(&self, ip: Ipv4Address, now: Instant) -> Option<EthernetAddress> {
        self.entries.get(&ip).filter(|e| e.expires > now).map(|e| e.mac)
    }

    /// Learns `ip -> mac` and returns the packets that were waiting for it.
    pub fn learn(&mut self, ip: Ipv4Address, mac: EthernetAddress, now: Instant) -> Vec<IpOut> {
        if !self.entries.contains_key(&ip) && self.entries.len() >= self.capacity {
            // Evict expired entries first, then the one closest to expiry.
            self.entries.retain(|_, e| e.expires > now);
            if self.entries.len() >= self.capacity {
                if let Some(victim) = self.entries.iter().min_by_key(|(_, e)| e.expires).map(|(k, _)| *k) {
                    self.entries.remove(&victim);
                }
            }
        }
        self.entries.insert(ip, Entry { mac, expires: now + self.ttl });
        self.pending.remove(&ip).map(|p| p.packets.into()).unwrap_or_default()
    }

    /// Queues a packet for an unresolved `ip`. Returns whether an ARP request
    /// should go out now, and whether the packet was dropped (queue full).
    pub fn enqueue(&mut self, ip: Ipv4Address, pkt: IpOut, now: Instant) -> (bool, Option<IpOut>) {
        let per_dest = self.per_dest;
        let p = self.pending.entry(ip).or_insert_with(|| Pending {
            packets: VecDeque::new(),
            next_request: now,
            requests: 0,
        });
        let dropped = if p.packets.len() >= per_dest {
            Some(pkt)
        } else {
            p.packets.push_back(pkt);
            None
        };
        let send = p.next_request <= now && p.requests < MAX_REQUESTS;
        if send {
            p.requests += 1;
            p.next_request = now + REQUEST_INTERVAL;
        }
        (send, dropped)
    }

    /// Retries due requests; returns addresses to ask for again, and the packets
    /// of addresses that never answered (to be dropped and counted).
    pub fn poll(&mut self, now: Instant, ask: &mut Vec<Ipv4Address>) -> Vec<IpOut> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let mut dead = Vec::new();
        let mut gone = Vec::new();
        for (ip, p) in self.pending.iter_mut() {
            if p.next_request <= now {
                if p.requests >= MAX_REQUESTS {
                    dead.push(*ip);
                } else {
                    p.requests += 1;
                    p.next_request = now + REQUEST_INTERVAL;
                    ask.push(*ip);
                }
            }
        }
        for ip in dead {
            if let Some(p) = self.pending.remove(&ip) {
                gone.extend(p.packets);
            }
        }
        gone
    }

    /// Takes every packet still waiting for resolution (shutdown).
    pub fn drain_pending(&mut self) -> Vec<IpOut> {
        self.pending.drain().flat_map(|(_, p)| p.packets).collect()
    }

    /// When the next request retry is due.
    pub fn poll_at(&self) -> Option<Instant> {
        self.pending.values().map(|p| p.next_request).min()
    }

    /// Entries cached.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
