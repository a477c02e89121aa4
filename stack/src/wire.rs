//! Wire helpers on top of `smoltcp::wire`: the Internet checksum computed over
//! a header plus a list of payload slices (segments live in page buffers, not
//! in one contiguous frame), and re-exports of the header types the engine uses.

pub use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol, EthernetRepr, Icmpv4Packet,
    Icmpv4Repr, IpAddress, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
    TcpTimestampRepr, UdpPacket, UdpRepr,
};

/// Ethernet II header length.
pub const ETH_HEADER: usize = 14;
/// IPv4 header length without options (the engine never sends options).
pub const IPV4_HEADER: usize = 20;
/// TCP header length without options.
pub const TCP_HEADER: usize = 20;
/// UDP header length.
pub const UDP_HEADER: usize = 8;

/// One's-complement sum accumulator (RFC 1071) that accepts data in pieces of
/// any length, including odd lengths in the middle.
#[derive(Clone, Copy, Debug, Default)]
pub struct Checksum {
    sum: u64,
    odd: bool,
}

impl Checksum {
    /// An empty sum.
    pub fn new() -> Self {
        Checksum::default()
    }

    /// Adds `data` as if it followed everything added before.
    ///
    /// Sums 32-bit native-endian words (RFC 1071 section 2: the sum is
    /// byte-order independent), then swaps into network order; a piece that
    /// starts at an odd stream offset has its partial sum byte-swapped.
    pub fn add(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let part = sum_be16(data);
        self.sum += u64::from(if self.odd { part.swap_bytes() } else { part });
        if data.len() % 2 == 1 {
            self.odd = !self.odd;
        }
    }

    /// Adds the IPv4 pseudo-header of a TCP/UDP segment of `len` bytes.
    pub fn add_pseudo_header(&mut self, src: Ipv4Address, dst: Ipv4Address, proto: IpProtocol, len: u16) {
        debug_assert!(!self.odd, "pseudo-header goes first");
        let mut b = [0u8; 12];
        b[..4].copy_from_slice(&src.octets());
        b[4..8].copy_from_slice(&dst.octets());
        b[9] = u8::from(proto);
        b[10..].copy_from_slice(&len.to_be_bytes());
        self.add(&b);
    }

    /// The folded, complemented checksum to put on the wire.
    pub fn finish(self) -> u16 {
        let mut s = self.sum;
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }
}

/// One's-complement sum of `data` as big-endian 16-bit words (a trailing odd
/// byte is the high byte of a zero-padded word), folded to 16 bits.
fn sum_be16(data: &[u8]) -> u16 {
    // 64-bit native-endian words added into four independent 128-bit
    // accumulators (add + adc per word: the carries are kept, not lost, and
    // the four chains run in parallel). Plain scalar code on purpose: the
    // auto-vectorized form of a lane array shuttled every lane between
    // vector and general registers and ran at a third of this speed.
    let (mut a0, mut a1, mut a2, mut a3) = (0u128, 0u128, 0u128, 0u128);
    let mut chunks = data.chunks_exact(32);
    for c in &mut chunks {
        let w = |i: usize| {
            u128::from(u64::from_ne_bytes([c[i], c[i + 1], c[i + 2], c[i + 3], c[i + 4], c[i + 5], c[i + 6], c[i + 7]]))
        };
        a0 += w(0);
        a1 += w(8);
        a2 += w(16);
        a3 += w(24);
    }
    let mut acc = a0 + a1 + a2 + a3;
    // The last < 32 bytes (all of a header): 16-bit words, no copy. A
    // trailing odd byte is the first byte of a zero-padded word.
    let mut words = chunks.remainder().chunks_exact(2);
    for w in &mut words {
        acc += u128::from(u16::from_ne_bytes([w[0], w[1]]));
    }
    if let [b] = words.remainder() {
        acc += u128::from(u16::from_ne_bytes([*b, 0]));
    }
    // Fold 128 -> 64 -> 32 -> 16 bits with end-around carries; 2^16 = 1
    // (mod 0xffff), so folding keeps the one's-complement sum.
    let acc = (acc as u64 as u128) + (acc >> 64);
    // (< 2^65 here: when bit 64 is set, the low word is below the small
    // carry count just added, so adding the bit back cannot overflow.)
    let acc = (acc as u64) + (acc >> 64) as u64;
    let mut x = (acc & 0xffff_ffff) + (acc >> 32);
    while x > 0xffff {
        x = (x & 0xffff) + (x >> 16);
    }
    // Native-order 16-bit sum -> network order (RFC 1071 section 2(B)).
    u16::from_be(x as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_is_independent_of_how_data_is_split() {
        let data: Vec<u8> = (0..1001u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut whole = Checksum::new();
        whole.add(&data);
        for split in [1usize, 2, 3, 500, 999, 1000] {
            let mut parts = Checksum::new();
            let (a, b) = data.split_at(split);
            let (b1, b2) = b.split_at(b.len() / 3);
            parts.add(a);
            parts.add(b1);
            parts.add(&[]);
            parts.add(b2);
            assert_eq!(parts.finish(), whole.finish(), "split at {split}");
        }
    }

    #[test]
    fn fast_sum_matches_the_reference_on_every_length() {
        fn reference(d: &[u8]) -> u16 {
            let mut s: u32 = 0;
            for c in d.chunks(2) {
                s += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
            }
            while s > 0xffff {
                s = (s & 0xffff) + (s >> 16);
            }
            !(s as u16)
        }
        let data: Vec<u8> = (0..300u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for len in 0..data.len() {
            for start in 0..3.min(len + 1) {
                let d = &data[start..len];
                let mut c = Checksum::new();
                c.add(d);
                assert_eq!(c.finish(), reference(d), "len {} start {start}", d.len());
            }
        }
        // All-ones words carry out of every 64-bit add: the carries must
        // all come back in (end-around), at every length and alignment.
        let ones = vec![0xffu8; 65_543];
        for len in [64, 1448, 9001, 65_536, 65_543] {
            let mut c = Checksum::new();
            c.add(&ones[..len]);
            assert_eq!(c.finish(), reference(&ones[..len]), "ones {len}");
        }
        let mut big = ones.clone();
        big[3] = 0;
        let mut c = Checksum::new();
        c.add(&big[1..]);
        assert_eq!(c.finish(), reference(&big[1..]));
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to ddf2 (before complement).
        let mut c = Checksum::new();
        c.add(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
        assert_eq!(c.finish(), !0xddf2);
    }
}
