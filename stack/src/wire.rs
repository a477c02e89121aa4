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
///
/// The running sum is kept unfolded as a 64-bit one's-complement sum of
/// native-endian words (end-around carry, i.e. modulo 2^64 - 1). Because
/// 2^16 = 1 (mod 0xffff) and 0xffff divides 2^64 - 1, folding it to 16 bits
/// at [`Checksum::finish`] gives the RFC 1071 sum whatever the 16-bit word's
/// position in the 64-bit ones was (RFC 1071 section 2(C), "parallel
/// summation"); the byte swap of a piece that starts at an odd offset is a
/// rotation by 8 bits (multiplication by 2^8 modulo 0xffff, section 2(B)).
#[derive(Clone, Copy, Debug, Default)]
pub struct Checksum {
    sum: u64,
    odd: bool,
}

/// `a + b` with the carry out of bit 63 added back in (one's-complement
/// addition modulo 2^64 - 1).
#[inline(always)]
fn add_ec(a: u64, b: u64) -> u64 {
    let (s, c) = a.overflowing_add(b);
    // No second carry: with c set, s <= 2^64 - 2.
    s + u64::from(c)
}

impl Checksum {
    /// An empty sum.
    pub fn new() -> Self {
        Checksum::default()
    }

    /// Adds `data` as if it followed everything added before.
    ///
    /// Sums native-endian words (RFC 1071 section 2: the sum is byte-order
    /// independent); a piece that starts at an odd stream offset has its
    /// partial sum byte-swapped (rotated by 8 bits).
    #[inline(always)]
    pub fn add(&mut self, data: &[u8]) {
        let part = sum_ne(data);
        self.sum = add_ec(self.sum, if self.odd { part.rotate_left(8) } else { part });
        if data.len() % 2 == 1 {
            self.odd = !self.odd;
        }
    }

    /// Adds the IPv4 pseudo-header of a TCP/UDP segment of `len` bytes
    /// (RFC 9293 3.1: source, destination, zero + protocol, TCP length).
    #[inline]
    pub fn add_pseudo_header(&mut self, src: Ipv4Address, dst: Ipv4Address, proto: IpProtocol, len: u16) {
        debug_assert!(!self.odd, "pseudo-header goes first");
        // The 12 bytes as native-endian words: each term is below 2^32, so
        // the plain sum cannot overflow.
        let words = u64::from(u32::from_ne_bytes(src.octets()))
            + u64::from(u32::from_ne_bytes(dst.octets()))
            + u64::from(u16::from_ne_bytes([0, u8::from(proto)]))
            + u64::from(u16::from_ne_bytes(len.to_be_bytes()));
        self.sum = add_ec(self.sum, words);
    }

    /// Adds header fields given as numbers rather than bytes: `sum` is the
    /// plain sum of big-endian fields at even offsets, a 16-bit field as
    /// its value, a 32-bit one as its value too (2^16 = 1 modulo 0xffff,
    /// RFC 1071 2(C)); at most 2^32 terms below 2^32 each. Where the fields
    /// sit in the stream does not matter. Lets a header's sum come from the
    /// values being written instead of a second pass over its bytes.
    #[inline]
    pub fn add_be_words(&mut self, sum: u64) {
        // Native-endian words are the big-endian ones byte-swapped on a
        // little-endian machine: a rotation by 8 bits (RFC 1071 2(B)).
        let ne = if cfg!(target_endian = "little") { sum.rotate_left(8) } else { sum };
        self.sum = add_ec(self.sum, ne);
    }

    /// The folded, complemented checksum to put on the wire.
    #[inline]
    pub fn finish(self) -> u16 {
        !fold(self.sum)
    }
}

/// A 64-bit native-order one's-complement sum folded to 16 bits, in
/// network order (RFC 1071 section 2(B)).
#[inline(always)]
fn fold(sum: u64) -> u16 {
    u16::from_be(fold16(sum))
}

/// A 64-bit one's-complement sum folded to 16 bits as a number: 0 only
/// for 0, else in 1..=0xffff (the end-around carries lose no bit).
#[inline(always)]
fn fold16(sum: u64) -> u16 {
    // Halves added with the carry brought back in (end-around), twice: a
    // carry out leaves at most 2^n - 2, so adding it back cannot carry
    // again, and a non-zero sum stays non-zero.
    let (s, c) = (sum as u32).overflowing_add((sum >> 32) as u32);
    let s = s + u32::from(c);
    let (s, c) = (s as u16).overflowing_add((s >> 16) as u16);
    s + u16::from(c)
}

/// The plain sum of `block`'s 32-bit native-endian words (`block` a
/// multiple of 32 bytes, at most 2^30), in eight 64-bit lanes ([`sum_ne`]).
/// Out of line: the short pieces' inlined path stays as small as before.
#[inline(never)]
fn sum_lanes(block: &[u8]) -> u128 {
    debug_assert!(block.len() % 32 == 0 && block.len() <= 1 << 30);
    let mut lanes = [0u64; 8];
    for c in block.chunks_exact(32) {
        for (l, w) in lanes.iter_mut().zip(c.chunks_exact(4)) {
            *l += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
        }
    }
    lanes.iter().map(|&l| u128::from(l)).sum()
}

/// Pieces at least this long (bytes) are summed in vectorizable 32-bit
/// lanes ([`sum_ne`]).
const VECTOR_MIN: usize = 256;

/// One's-complement sum (modulo 2^64 - 1) of `data` as native-endian
/// words, a trailing partial word zero-padded at its end.
#[inline(always)]
fn sum_ne(data: &[u8]) -> u64 {
    let mut d = data;
    let mut acc = 0u128;
    while d.len() >= VECTOR_MIN {
        // 32-bit words added into eight 64-bit lanes, no carries to keep:
        // a lane takes at most 2^25 words (below 2^32 each) of a block of
        // at most 2^30 bytes. Any sum congruent modulo 0xffff is as good
        // (2^32 = 1 modulo 0xffff, RFC 1071 2(C)), and this form needs no
        // add-with-carry chain, so it vectorizes on any x86-64 (SSE2:
        // widen, then add 64-bit lanes): a segment's payload, which comes
        // from L2 (a received frame, a send-queue page), is summed ~4%
        // faster end to end (`perfdrive bulk`), though in more
        // instructions than the carried words below, which therefore keep
        // the short pieces (a request/response payload, a header).
        let (block, rest) = d.split_at(d.len().min(1 << 30) & !31);
        acc += sum_lanes(block);
        d = rest;
    }
    if d.len() >= 64 {
        // 64-bit words added into four independent 128-bit accumulators
        // (add + adc per word: the carries are kept, not lost, and the four
        // chains run in parallel). Plain scalar code on purpose: the
        // auto-vectorized form of a lane array shuttled every lane between
        // vector and general registers and ran at a third of this speed.
        let (mut a0, mut a1, mut a2, mut a3) = (0u128, 0u128, 0u128, 0u128);
        let mut chunks = d.chunks_exact(32);
        for c in &mut chunks {
            let w = |i: usize| {
                u128::from(u64::from_ne_bytes([
                    c[i],
                    c[i + 1],
                    c[i + 2],
                    c[i + 3],
                    c[i + 4],
                    c[i + 5],
                    c[i + 6],
                    c[i + 7],
                ]))
            };
            a0 += w(0);
            a1 += w(8);
            a2 += w(16);
            a3 += w(24);
        }
        d = chunks.remainder();
        acc += a0 + a1 + a2 + a3;
    }
    // The rest (all of a header): whole 8-byte words, then 4-, 2- and
    // 1-byte pieces, each at its offset from an 8-byte boundary, so the
    // 16-bit lanes stay aligned (a lone last byte is the first byte of a
    // zero-padded word).
    while let Some((w, rest)) = d.split_first_chunk::<8>() {
        acc += u128::from(u64::from_ne_bytes(*w));
        d = rest;
    }
    if let Some((w, rest)) = d.split_first_chunk::<4>() {
        acc += u128::from(u32::from_ne_bytes(*w));
        d = rest;
    }
    if let Some((w, rest)) = d.split_first_chunk::<2>() {
        acc += u128::from(u16::from_ne_bytes(*w));
        d = rest;
    }
    if let [b] = d {
        acc += u128::from(u16::from_ne_bytes([*b, 0]));
    }
    // 128 -> 64 bits with end-around carries (2^64 = 1 modulo 2^64 - 1).
    add_ec(acc as u64, (acc >> 64) as u64)
}

/// The Internet checksum of a 20-byte IPv4 header without options (RFC 791
/// 3.1, RFC 1071), over the header as it is (a header whose checksum field
/// is right sums to 0 here), in straight-line code.
#[inline]
pub fn ipv4_header_checksum(h: &[u8; IPV4_HEADER]) -> u16 {
    let w = |i: usize| u64::from(u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
    // Five terms below 2^32: no overflow.
    !fold(w(0) + w(4) + w(8) + w(12) + w(16))
}

/// The Internet checksum (complemented, as a number to write big-endian)
/// of header fields summed as numbers, as [`Checksum::add_be_words`] takes
/// them; for a header with no payload, such as IPv4's (RFC 791 3.1).
#[inline]
pub fn be_words_checksum(sum: u64) -> u16 {
    !fold16(sum)
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
        // Every length to 700 bytes: the 32-bit lanes (pieces of 256 bytes
        // and more), the carried 64-bit words (64 and more) and the tails.
        let data: Vec<u8> = (0..700u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
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
    fn pseudo_header_matches_its_bytes() {
        let (src, dst) = (Ipv4Address::new(10, 0, 0, 1), Ipv4Address::new(192, 168, 255, 254));
        for len in [0u16, 1, 84, 1480, 0xffff] {
            let mut b = [0u8; 12];
            b[..4].copy_from_slice(&src.octets());
            b[4..8].copy_from_slice(&dst.octets());
            b[9] = u8::from(IpProtocol::Tcp);
            b[10..].copy_from_slice(&len.to_be_bytes());
            let mut bytes = Checksum::new();
            bytes.add(&b);
            bytes.add(&[0xab; 7]);
            let mut fast = Checksum::new();
            fast.add_pseudo_header(src, dst, IpProtocol::Tcp, len);
            fast.add(&[0xab; 7]);
            assert_eq!(fast.finish(), bytes.finish(), "len {len}");
        }
    }

    /// The fold gives the sum modulo 0xffff in 1..=0xffff (one's-complement
    /// "negative zero" for a non-zero multiple), 0 only for 0: the one
    /// representative, whatever the order of the end-around carries.
    #[test]
    fn fold_is_the_sum_modulo_0xffff() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut vals = vec![0, 1, 0xfffe, 0xffff, 0x1_0000, 0xffff_ffff, 1 << 32, u64::MAX, u64::MAX - 1, 0xffff << 48];
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            vals.push(x);
            vals.push(x >> (x % 64));
        }
        for v in vals {
            let want = if v == 0 { 0 } else { (v % 0xffff) as u16 };
            let want = if v != 0 && want == 0 { 0xffff } else { want };
            assert_eq!(fold16(v), want, "{v:#x}");
        }
    }

    /// Fields added as numbers (`add_be_words`) sum as their big-endian
    /// bytes do, before, after or between pieces of data of any parity,
    /// carries included; `be_words_checksum` is the checksum of those bytes.
    #[test]
    fn be_words_sum_as_their_bytes() {
        let fields: [&[u32]; 4] = [&[0], &[0xffff_ffff; 7], &[0x1234, 0xdead_beef, 0x0a00_0001, 6], &[0xffff, 1]];
        for f in fields {
            let mut bytes = Vec::new();
            for v in f {
                bytes.extend_from_slice(&v.to_be_bytes());
            }
            let sum: u64 = f.iter().map(|v| u64::from(*v)).sum();
            let mut want = Checksum::new();
            want.add(&bytes);
            let mut alone = Checksum::new();
            alone.add_be_words(sum);
            assert_eq!(alone.finish(), want.finish(), "{f:x?}");
            assert_eq!(be_words_checksum(sum), want.finish(), "{f:x?}");
            for data_len in [0usize, 1, 3, 64, 65] {
                let data: Vec<u8> = (0..data_len).map(|i| (i * 37 + 11) as u8).collect();
                let mut want = Checksum::new();
                want.add(&bytes);
                want.add(&data);
                let mut after = Checksum::new();
                after.add(&data);
                after.add_be_words(sum);
                assert_eq!(after.finish(), want.finish(), "{f:x?} after {data_len}");
            }
        }
    }

    #[test]
    fn ipv4_header_checksum_matches_smoltcp() {
        for (i, (len, ttl)) in [(20usize, 64u8), (84, 1), (1500, 255), (65_535, 0)].into_iter().enumerate() {
            let repr = Ipv4Repr {
                src_addr: Ipv4Address::new(10, 0, i as u8, 1),
                dst_addr: Ipv4Address::new(255, 255, 255, 254),
                next_header: IpProtocol::Tcp,
                payload_len: len - IPV4_HEADER,
                hop_limit: ttl,
            };
            let mut h = [0u8; IPV4_HEADER];
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut h[..]), &smoltcp::phy::ChecksumCapabilities::default());
            // A right header sums to zero; with the field cleared the sum is the field.
            assert_eq!(ipv4_header_checksum(&h), 0);
            let field = u16::from_be_bytes([h[10], h[11]]);
            h[10..12].fill(0);
            assert_eq!(ipv4_header_checksum(&h), field);
        }
    }

    #[test]
    fn checksum_matches_rfc1071_example() {
        // RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to ddf2 (before complement).
        let mut c = Checksum::new();
        c.add(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]);
        assert_eq!(c.finish(), !0xddf2);
    }
}
