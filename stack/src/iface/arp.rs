//! ARP cache with expiry and a bounded size, and the queue of packets waiting
//! for an address to resolve.

use std::cell::Cell;
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
    /// Order of arrival among pending destinations (oldest evicted first).
    born: u64,
}

/// Packets [`ArpCache::enqueue`] did not keep, by reason.
#[derive(Debug, Default)]
pub struct Refused {
    /// The new packet itself: its destination's queue, or the queue of all
    /// pending packets, was full.
    pub full: Option<IpOut>,
    /// Packets of the oldest pending destination, evicted to make room for
    /// a new destination.
    pub evicted: Vec<IpOut>,
}

/// Neighbour resolution state.
#[derive(Debug)]
pub struct ArpCache {
    entries: FxHashMap<Ipv4Address, Entry>,
    pending: FxHashMap<Ipv4Address, Pending>,
    capacity: usize,
    ttl: Duration,
    per_dest: usize,
    /// Destinations with packets pending at most.
    max_dests: usize,
    /// Packets pending over all destinations at most.
    max_total: usize,
    /// Packets pending now, all destinations.
    total: usize,
    next_born: u64,
    /// The entry [`ArpCache::lookup`] found last, as (address, MAC,
    /// expiry): every frame of a connection asks for the same next hop, so
    /// a repeat costs a compare instead of a hash probe. A copy of an
    /// entry, cleared by every change of `entries` ([`ArpCache::learn`]).
    last: Cell<Option<(Ipv4Address, EthernetAddress, Instant)>>,
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
            max_dests: usize::MAX,
            max_total: usize::MAX,
            total: 0,
            next_born: 0,
            last: Cell::new(None),
        }
    }

    /// Caps the pending queue: at most `dests` unresolved destinations with
    /// packets waiting (a new one evicts the oldest, its packets dropped)
    /// and at most `total` packets over all of them (beyond it a packet to
    /// an already pending destination is dropped; one to a new destination
    /// evicts the oldest). Both at least 1.
    pub fn with_pending_limits(mut self, dests: usize, total: usize) -> Self {
        self.max_dests = dests.max(1);
        self.max_total = total.max(1);
        self
    }

    /// Destinations with packets waiting for resolution.
    pub fn pending_dests(&self) -> usize {
        self.pending.len()
    }

    /// Packets waiting for resolution, all destinations.
    pub fn pending_packets(&self) -> usize {
        self.total
    }

    /// Removes the pending destination that arrived first; its packets.
    fn evict_oldest(&mut self) -> Vec<IpOut> {
        let Some(ip) = self.pending.iter().min_by_key(|(_, p)| p.born).map(|(ip, _)| *ip) else {
            return Vec::new();
        };
        let p = self.pending.remove(&ip).map(|p| p.packets).unwrap_or_default();
        self.total -= p.len();
        p.into()
    }

    /// The MAC for `ip`, if known and fresh.
    #[inline]
    pub fn lookup(&self, ip: Ipv4Address, now: Instant) -> Option<EthernetAddress> {
        let (mac, expires) = match self.last.get() {
            Some((last, mac, expires)) if last == ip => (mac, expires),
            _ => {
                let e = self.entries.get(&ip)?;
                self.last.set(Some((ip, e.mac, e.expires)));
                (e.mac, e.expires)
            }
        };
        (expires > now).then_some(mac)
    }

    /// Learns `ip -> mac` and returns the packets that were waiting for it.
    pub fn learn(&mut self, ip: Ipv4Address, mac: EthernetAddress, now: Instant) -> Vec<IpOut> {
        self.last.set(None);
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
        let waiting: Vec<IpOut> = self.pending.remove(&ip).map(|p| p.packets.into()).unwrap_or_default();
        self.total -= waiting.len();
        waiting
    }

    /// Queues a packet for an unresolved `ip`. Returns whether an ARP request
    /// should go out now, and the packets not kept: memory a peer (or a
    /// scan of the subnet) can make us hold stays within the per-destination,
    /// destination-count and total caps; a new destination always gets its
    /// request out, at the cost of the oldest pending one.
    pub fn enqueue(&mut self, ip: Ipv4Address, pkt: IpOut, now: Instant) -> (bool, Refused) {
        let mut refused = Refused::default();
        if !self.pending.contains_key(&ip) {
            while !self.pending.is_empty() && (self.pending.len() >= self.max_dests || self.total >= self.max_total) {
                refused.evicted.extend(self.evict_oldest());
            }
            let born = self.next_born;
            self.next_born += 1;
            self.pending.insert(ip, Pending { packets: VecDeque::new(), next_request: now, requests: 0, born });
        }
        let full = self.total >= self.max_total;
        let p = self.pending.get_mut(&ip).expect("inserted above");
        if p.packets.len() >= self.per_dest || full {
            refused.full = Some(pkt);
        } else {
            p.packets.push_back(pkt);
            self.total += 1;
        }
        let send = p.next_request <= now && p.requests < MAX_REQUESTS;
        if send {
            p.requests += 1;
            p.next_request = now + REQUEST_INTERVAL;
        }
        (send, refused)
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
                self.total -= p.packets.len();
                gone.extend(p.packets);
            }
        }
        gone
    }

    /// Takes every packet still waiting for resolution (shutdown).
    pub fn drain_pending(&mut self) -> Vec<IpOut> {
        self.total = 0;
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

    /// Whether packets wait for a resolution ([`ArpCache::poll`] has work).
    #[inline]
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The remembered last entry never answers for a changed table: a new
    /// MAC for the address, its expiry, its eviction by a newer entry and
    /// another address all give what the table itself holds.
    #[test]
    fn lookup_memo_follows_every_change_of_the_table() {
        let (a, b) = (Ipv4Address::new(10, 0, 0, 1), Ipv4Address::new(10, 0, 0, 2));
        let (m1, m2) = (EthernetAddress([2, 0, 0, 0, 0, 1]), EthernetAddress([2, 0, 0, 0, 0, 2]));
        let t = Instant::from_millis;
        let mut c = ArpCache::new(1, Duration::from_secs(10), 4);
        assert_eq!(c.lookup(a, t(0)), None);
        c.learn(a, m1, t(0));
        assert_eq!(c.lookup(a, t(1)), Some(m1));
        assert_eq!(c.lookup(a, t(2)), Some(m1), "repeated");
        c.learn(a, m2, t(3));
        assert_eq!(c.lookup(a, t(4)), Some(m2), "a new MAC is seen at once");
        assert_eq!(c.lookup(a, t(10_002)), Some(m2), "the refreshed expiry");
        assert_eq!(c.lookup(a, t(10_003)), None, "expired");
        assert_eq!(c.lookup(b, t(5)), None);
        // Capacity 1: learning b evicts a, and a is no longer answered.
        assert_eq!(c.lookup(a, t(5)), Some(m2));
        c.learn(b, m1, t(6));
        assert_eq!(c.lookup(a, t(7)), None, "evicted");
        assert_eq!(c.lookup(b, t(7)), Some(m1));
        assert_eq!(c.len(), 1);
    }
}
