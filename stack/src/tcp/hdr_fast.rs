//! The per-segment header fast path: the two header layouts of an
//! established connection — no options, or only the timestamp option
//! (RFC 7323 3.2) — read and written with fixed offsets instead of
//! smoltcp's general option loop. Anything else (SYNs, SACK, MSS, window
//! scale, unknown options, odd flags) returns `None` here and takes the
//! general path, so both paths give byte-identical results.

use super::seq::Seq;
use super::SegIn;
use crate::wire::TcpControl;

/// TCP header length without options, bytes (RFC 9293 3.1).
const BASE: usize = 20;
/// Header length with the timestamp option padded to 32-bit words, bytes
/// (the longest header [`Hdr`] writes).
pub(crate) const WITH_TS: usize = 32;

/// Flag bits of the 13th/14th header bytes (RFC 9293 3.1).
const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

#[inline(always)]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline(always)]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The fields of a segment in one of the common layouts (see [`parse_seg`]).
struct Fields {
    src_port: u16,
    dst_port: u16,
    seq: u32,
    ack: Option<u32>,
    control: TcpControl,
    window: u16,
    ts: Option<(u32, u32)>,
    hlen: usize,
}

/// Reads the header fields at fixed offsets when `seg` has one of the
/// common layouts; `None` for anything else.
#[inline(always)]
fn fields(seg: &[u8]) -> Option<Fields> {
    // One bounds check for the fixed header, one for the option block.
    let h: &[u8; BASE] = seg.first_chunk()?;
    let hlen = usize::from(h[12] >> 4) * 4;
    let flags = h[13];
    let ts = match hlen {
        BASE => None,
        WITH_TS => {
            let o: &[u8; WITH_TS - BASE] = seg.get(BASE..WITH_TS)?.try_into().ok()?;
            let at = match (o[0], o[1], o[2], o[3]) {
                (1, 1, 8, 10) => 4,
                (8, 10, ..) if o[10] == 0 => 2,
                _ => return None,
            };
            Some((be32(o, at), be32(o, at + 4)))
        }
        _ => return None,
    };
    let seg_h: &[u8] = h;
    // SYNs carry the handshake options (general path); RST/FIN mixes that
    // smoltcp refuses go to the odd-flags path through the general parse.
    let control = match flags & (SYN | FIN | RST | PSH) {
        0 => TcpControl::None,
        PSH => TcpControl::Psh,
        f if f & !PSH == FIN => TcpControl::Fin,
        f if f & !PSH == RST => TcpControl::Rst,
        _ => return None,
    };
    let (src_port, dst_port) = (be16(seg_h, 0), be16(seg_h, 2));
    if src_port == 0 || dst_port == 0 {
        return None;
    }
    Some(Fields {
        src_port,
        dst_port,
        seq: be32(seg_h, 4),
        ack: (flags & ACK != 0).then(|| be32(seg_h, 8)),
        control,
        window: be16(seg_h, 14),
        ts,
        hlen,
    })
}

/// Parses `seg` (a whole TCP segment, header and payload) when it has
/// one of the common layouts: a 20-byte header, or a 32-byte one whose
/// options are `NOP, NOP, TS` (Linux, FreeBSD) or `TS, EOL, EOL`
/// (zcstack, smoltcp), straight into the connection's form: (source port,
/// destination port, the segment with no received frame attached). Gives
/// exactly what `TcpRepr::parse` gives for such a segment, converted as the
/// engine's ingress converts it (checksum not verified, as by the caller
/// before), without a `TcpRepr` in between; or `None`: then the caller runs
/// the general parse, which also owns every error.
#[inline(always)]
pub(crate) fn parse_seg(seg: &[u8]) -> Option<(u16, u16, SegIn<'_>)> {
    let f = fields(seg)?;
    let s = SegIn {
        seq: Seq(f.seq),
        ack: f.ack.map(Seq),
        syn: false,
        fin: f.control == TcpControl::Fin,
        rst: f.control == TcpControl::Rst,
        wnd: f.window,
        mss: None,
        wscale: None,
        sack_permitted: false,
        sack: [None; 3],
        ts: f.ts,
        payload: &seg[f.hlen..],
        rx: None,
    };
    Some((f.src_port, f.dst_port, s))
}

/// The fields of a header the fast emit writes (all of an established
/// connection's segment without SACK blocks).
pub(crate) struct Hdr {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: Option<u32>,
    /// FIN/RST/PSH bits (never SYN).
    pub flags: u8,
    pub window: u16,
    /// (TSval, TSecr), RFC 7323 3.2.
    pub ts: Option<(u32, u32)>,
}

impl Hdr {
    /// Header length this emits, bytes: 20, or 32 with the timestamp.
    pub(crate) fn len(&self) -> usize {
        if self.ts.is_some() {
            WITH_TS
        } else {
            BASE
        }
    }

    /// The sum of the header's 16-bit words as [`Hdr::write`] writes them
    /// (checksum field zero), from the field values, in the form
    /// [`crate::wire::Checksum::add_be_words`] takes: no pass over the bytes.
    #[inline]
    pub(crate) fn be_sum(&self) -> u64 {
        let hlen = self.len();
        let off_flags = u16::from_be_bytes([((hlen / 4) as u8) << 4, self.flags_byte()]);
        let ts = match self.ts {
            // kind 8, length 10 (RFC 7323 3.2), then the two values; the
            // end-of-list padding adds nothing.
            Some((val, ecr)) => 0x080a + u64::from(val) + u64::from(ecr),
            None => 0,
        };
        u64::from(self.src_port)
            + u64::from(self.dst_port)
            + u64::from(self.seq)
            + u64::from(self.ack.unwrap_or(0))
            + u64::from(off_flags)
            + u64::from(self.window)
            + ts
    }

    /// The 14th header byte: the flags, ACK when an acknowledgment is sent.
    #[inline(always)]
    pub(crate) fn flags_byte(&self) -> u8 {
        self.flags | if self.ack.is_some() { ACK } else { 0 }
    }

    /// Writes the header into the first [`Hdr::len`] bytes of `out` (the
    /// rest untouched) with a zero checksum, the bytes smoltcp's
    /// `TcpRepr::emit` writes for the same fields: the timestamp option
    /// first, then end-of-list padding. A fixed-size target: no bounds
    /// checks.
    #[inline(always)]
    pub(crate) fn write(&self, out: &mut [u8; WITH_TS]) {
        let hlen = self.len();
        out[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        out[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        out[4..8].copy_from_slice(&self.seq.to_be_bytes());
        out[8..12].copy_from_slice(&self.ack.unwrap_or(0).to_be_bytes());
        out[12] = ((hlen / 4) as u8) << 4;
        out[13] = self.flags_byte();
        out[14..16].copy_from_slice(&self.window.to_be_bytes());
        out[16..20].fill(0);
        if let Some((val, ecr)) = self.ts {
            out[20] = 8;
            out[21] = 10;
            out[22..26].copy_from_slice(&val.to_be_bytes());
            out[26..30].copy_from_slice(&ecr.to_be_bytes());
            out[30] = 0;
            out[31] = 0;
        }
    }
}

/// The FIN/RST/PSH bits of `TcpPacket` flags as [`Hdr::flags`] takes them.
pub(crate) fn flag_bits(fin: bool, rst: bool, psh: bool) -> u8 {
    (if fin { FIN } else { 0 }) | (if rst { RST } else { 0 }) | (if psh { PSH } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Ipv4Address, TcpPacket, TcpRepr, TcpSeqNumber, TcpTimestampRepr};

    /// The fast fields in smoltcp's form, to compare with its general parse.
    fn parse(seg: &[u8]) -> Option<TcpRepr<'_>> {
        let f = fields(seg)?;
        Some(TcpRepr {
            src_port: f.src_port,
            dst_port: f.dst_port,
            control: f.control,
            seq_number: TcpSeqNumber(f.seq as i32),
            ack_number: f.ack.map(|a| TcpSeqNumber(a as i32)),
            window_len: f.window,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: f.ts.map(|(v, e)| TcpTimestampRepr::new(v, e)),
            payload: &seg[f.hlen..],
        })
    }

    fn general(seg: &[u8]) -> Option<TcpRepr<'_>> {
        let tp = TcpPacket::new_checked(seg).ok()?;
        let a: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
        TcpRepr::parse(&tp, &a.into(), &a.into(), &smoltcp::phy::ChecksumCapabilities::ignored()).ok()
    }

    fn seg(flags: u8, opts: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut v = vec![0u8; 20];
        v[0..2].copy_from_slice(&1234u16.to_be_bytes());
        v[2..4].copy_from_slice(&80u16.to_be_bytes());
        v[4..8].copy_from_slice(&0xdead_beefu32.to_be_bytes());
        v[8..12].copy_from_slice(&0x0102_0304u32.to_be_bytes());
        v[12] = (((20 + opts.len()) / 4) as u8) << 4;
        v[13] = flags;
        v[14..16].copy_from_slice(&4096u16.to_be_bytes());
        v.extend_from_slice(opts);
        v.extend_from_slice(payload);
        v
    }

    const TS_LINUX: [u8; 12] = [1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9];
    const TS_SMOL: [u8; 12] = [8, 10, 0, 0, 0, 7, 0, 0, 0, 9, 0, 0];

    /// Every segment the fast parse takes, it reads as the general parse
    /// does; the ones it refuses include all flag and option mixes it does
    /// not know (they take the general path).
    #[test]
    fn fast_parse_agrees_with_general_parse() {
        let opts: [&[u8]; 7] = [
            &[],
            &TS_LINUX,
            &TS_SMOL,
            &[2, 4, 5, 0xb4],                                   // MSS
            &[1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2],             // SACK
            &[8, 10, 0, 0, 0, 7, 0, 0, 0, 9, 1, 0],             // TS, NOP, EOL
            &[1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9, 1, 1, 1, 0], // longer
        ];
        let mut fast = 0;
        for flags in 0..=0x3fu8 {
            for o in opts {
                for p in [&[][..], &[7u8; 5][..]] {
                    let s = seg(flags, o, p);
                    if let Some(r) = parse(&s) {
                        assert_eq!(Some(r), general(&s), "flags {flags:#x} opts {o:?}");
                        fast += 1;
                    }
                }
            }
        }
        // 3 layouts x 2 payloads x ACK or not x URG or not (ignored by
        // both) x 6 flag sets: none, PSH, FIN and RST each with or without PSH.
        assert_eq!(fast, 3 * 2 * 2 * 2 * 6);
        // Too short, zero ports, truncated options: refused (general path errors).
        assert!(parse(&[0u8; 19]).is_none());
        let mut z = seg(0x10, &[], &[]);
        z[0] = 0;
        z[1] = 0;
        assert!(parse(&z).is_none());
        let t = seg(0x10, &TS_LINUX, &[]);
        assert!(parse(&t[..30]).is_none());
    }

    /// The fast parse into the connection's form gives what the engine's
    /// conversion of the general parse gives, for every segment it takes.
    #[test]
    fn parse_seg_agrees_with_the_converted_general_parse() {
        let key = |s: &SegIn<'_>| {
            (
                s.seq,
                s.ack,
                s.syn,
                s.fin,
                s.rst,
                s.wnd,
                s.mss,
                s.wscale,
                s.sack_permitted,
                s.sack,
                s.ts,
                s.payload.to_vec(),
            )
        };
        let mut taken = 0;
        for flags in 0..=0x3fu8 {
            for o in [&[][..], &TS_LINUX[..], &TS_SMOL[..], &[2, 4, 5, 0xb4][..]] {
                for p in [&[][..], &[7u8; 5][..]] {
                    let s = seg(flags, o, p);
                    let fast = parse_seg(&s);
                    assert_eq!(fast.is_some(), parse(&s).is_some(), "same segments taken");
                    if let Some((sp, dp, f)) = fast {
                        let g = general(&s).expect("general parse");
                        assert_eq!((sp, dp), (g.src_port, g.dst_port));
                        assert_eq!(key(&f), key(&crate::tcp::ingress::seg_in(&g, None)), "flags {flags:#x} opts {o:?}");
                        assert!(f.rx.is_none());
                        taken += 1;
                    }
                }
            }
        }
        assert_eq!(taken, 3 * 2 * 2 * 2 * 6);
    }

    /// The fast emit writes the bytes smoltcp's emit writes for the same
    /// fields (so what goes on the wire did not change).
    #[test]
    fn fast_emit_matches_general_emit() {
        for ts in [None, Some((7u32, 9u32))] {
            for (fin, rst, psh) in
                [(false, false, false), (false, false, true), (true, false, false), (false, true, false)]
            {
                for ack in [None, Some(0x0102_0304u32)] {
                    let h = Hdr {
                        src_port: 1234,
                        dst_port: 80,
                        seq: 0xdead_beef,
                        ack,
                        flags: flag_bits(fin, rst, psh),
                        window: 4096,
                        ts,
                    };
                    let mut fast = [0xaau8; WITH_TS];
                    h.write(&mut fast);
                    assert!(fast[h.len()..].iter().all(|b| *b == 0xaa), "nothing written past the header");
                    let fast = fast[..h.len()].to_vec();
                    let control = if fin {
                        TcpControl::Fin
                    } else if rst {
                        TcpControl::Rst
                    } else if psh {
                        TcpControl::Psh
                    } else {
                        TcpControl::None
                    };
                    let repr = TcpRepr {
                        src_port: 1234,
                        dst_port: 80,
                        control,
                        seq_number: TcpSeqNumber(0xdead_beefu32 as i32),
                        ack_number: ack.map(|a| TcpSeqNumber(a as i32)),
                        window_len: 4096,
                        window_scale: None,
                        max_seg_size: None,
                        sack_permitted: false,
                        sack_ranges: [None; 3],
                        timestamp: ts.map(|(v, e)| TcpTimestampRepr::new(v, e)),
                        payload: &[],
                    };
                    let mut gen = vec![0u8; repr.header_len()];
                    let a: Ipv4Address = Ipv4Address::new(10, 0, 0, 1);
                    repr.emit(
                        &mut TcpPacket::new_unchecked(&mut gen[..]),
                        &a.into(),
                        &a.into(),
                        &smoltcp::phy::ChecksumCapabilities::ignored(),
                    );
                    assert_eq!(fast, gen, "ts {ts:?} fin {fin} rst {rst} psh {psh} ack {ack:?}");
                    // The sum from the values is the sum of the bytes.
                    let mut bytes = crate::wire::Checksum::new();
                    bytes.add(&fast);
                    let mut values = crate::wire::Checksum::new();
                    values.add_be_words(h.be_sum());
                    assert_eq!(values.finish(), bytes.finish(), "ts {ts:?} fin {fin} rst {rst} psh {psh} ack {ack:?}");
                    // And the fast parse reads it back.
                    assert_eq!(parse(&fast), Some(repr));
                }
            }
        }
    }
}
