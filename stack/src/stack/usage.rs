//! What a stack holds in memory right now, for bounds checked by tests
//! under hostile input and for diagnostics.

use super::Stack;
use crate::mem::PageMemory;

/// Memory a [`Stack`] holds at one instant. Every field is in bytes except
/// `pages_in_use` (payload pages) and `tx_backlog` (frames).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    /// Payload pages allocated (send queues, zero-copy buffers, frames in flight).
    pub pages_in_use: usize,
    /// Bytes held by IPv4 reassembly.
    pub reassembly_bytes: usize,
    /// TCP bytes held out of order, over all connections.
    pub tcp_ooo_bytes: usize,
    /// Memory pinned by received, in-order data not yet read, over all connections.
    pub tcp_rx_held: usize,
    /// Bytes queued to send (unsent or unacknowledged), over all connections.
    pub tcp_send_queued: usize,
    /// Frames refused by the device, waiting to be sent again.
    pub tx_backlog: usize,
    /// Bytes of completed frames' header buffers kept for the next frames
    /// (at most 16,384 buffers of 98 bytes).
    pub tx_header_pool: usize,
    /// Bytes of freed TCP connections kept for new ones (at most 256 boxes,
    /// each with at most a 4 KiB ring and 64-entry queue storage).
    pub tcp_conn_spares: usize,
    /// Bytes of emptied UDP datagram buffers kept for new arrivals (at most
    /// 16 KiB per socket).
    pub udp_spares: usize,
}

impl<M: PageMemory> Stack<M> {
    /// What the stack holds now. Scans the connection table (O(connections)):
    /// meant for tests and diagnostics, not for every poll.
    pub fn memory_usage(&self) -> MemoryUsage {
        let (tcp_ooo_bytes, tcp_rx_held, tcp_send_queued) = self.tcp.memory_totals();
        MemoryUsage {
            pages_in_use: self.mem.capacity() - self.mem.free_count(),
            reassembly_bytes: self.reasm.bytes(),
            tcp_ooo_bytes,
            tcp_rx_held,
            tcp_send_queued,
            tx_backlog: self.backlog.len(),
            tx_header_pool: self.hdr_pool.iter().map(Vec::capacity).sum(),
            tcp_conn_spares: self.tcp.spare_conn_bytes(),
            udp_spares: self.udp.spare_bytes(),
        }
    }
}
