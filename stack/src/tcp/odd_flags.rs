//! Segments whose control bits combine SYN, FIN and RST.
//!
//! `smoltcp::wire::TcpRepr::parse` refuses SYN+FIN, SYN+RST, FIN+RST (and
//! all three), although RFC 9293 3.10.7 defines what each does: the checks
//! of "segment arrives" run in order (sequence number, RST, ..., SYN, ...,
//! FIN), so
//! - with RST set, the RST check comes first and ends the processing: the
//!   segment is a RST (SYN and FIN are never looked at), and a RST is never
//!   answered in CLOSED or LISTEN;
//! - SYN+FIN to a closed port is answered `<SEQ=0><ACK=SEG.SEQ+SEG.LEN>
//!   <CTL=RST,ACK>` with SEG.LEN counting SYN, FIN and data (3.10.7.1);
//! - SYN+FIN in a synchronized state ends at the SYN check (RFC 5961 4
//!   challenge ACK), so the FIN is never reached; in SYN-SENT the FIN is
//!   ignored (the peer retransmits it); in LISTEN the segment is dropped
//!   (Linux, [`TcpConfig::drop_synfin`]) or its SYN answered and the FIN
//!   ignored (FreeBSD's default `net.inet.tcp.drop_synfin=0`).
//!
//! [`reparse`] reads such a header into a [`TcpRepr`] carrying the control
//! bit that the RFC's order makes effective, and says which bits it set aside.
//!
//! [`TcpConfig::drop_synfin`]: crate::config::TcpConfig::drop_synfin

use crate::wire::{TcpPacket, TcpRepr};

/// Which combination a segment had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OddFlags {
    /// SYN and FIN, no RST: the repr carries SYN; the FIN was set aside.
    SynFin,
    /// RST with SYN and/or FIN: the repr carries RST only.
    RstPlus,
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;
/// Offset of the flags byte in the TCP header (RFC 9293 3.1).
const FLAGS_OFFSET: usize = 13;
/// Longest TCP header: data offset 15 words (RFC 9293 3.1).
pub(crate) const MAX_HEADER: usize = 60;

/// Re-reads a segment that `TcpRepr::parse` refused. Returns `None` unless
/// the only fault was a combination of SYN, FIN and RST (the header and its
/// options otherwise parse; the checksum must have been verified by the
/// caller). `hdr` is scratch space for a copy of the header with the
/// set-aside bits cleared; the repr's payload is `tp`'s.
#[cold]
#[inline(never)]
pub(crate) fn reparse<'a>(tp: &TcpPacket<&'a [u8]>, hdr: &'a mut [u8; MAX_HEADER]) -> Option<(TcpRepr<'a>, OddFlags)> {
    let raw = tp.as_ref();
    let hlen = usize::from(tp.header_len());
    let flags = *raw.get(FLAGS_OFFSET)?;
    let odd = match (flags & SYN != 0, flags & FIN != 0, flags & RST != 0) {
        (_, _, true) if flags & (SYN | FIN) != 0 => OddFlags::RstPlus,
        (true, true, false) => OddFlags::SynFin,
        _ => return None,
    };
    let src = raw.get(..hlen)?;
    let copy = hdr.get_mut(..hlen)?;
    copy.copy_from_slice(src);
    copy[FLAGS_OFFSET] &= match odd {
        OddFlags::SynFin => !FIN,
        OddFlags::RstPlus => !(SYN | FIN),
    };
    let ignored = smoltcp::phy::ChecksumCapabilities::ignored();
    let any = smoltcp::wire::IpAddress::v4(0, 0, 0, 0);
    let view = TcpPacket::new_checked(&hdr[..hlen]).ok()?;
    let repr = TcpRepr::parse(&view, &any, &any, &ignored).ok()?;
    Some((TcpRepr { payload: tp.payload(), ..repr }, odd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{TcpControl, TcpSeqNumber};

    fn segment(flags: u8, payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; 20];
        b[0..2].copy_from_slice(&1234u16.to_be_bytes());
        b[2..4].copy_from_slice(&80u16.to_be_bytes());
        b[4..8].copy_from_slice(&17u32.to_be_bytes());
        b[12] = 5 << 4;
        b[13] = flags;
        b[14..16].copy_from_slice(&1000u16.to_be_bytes());
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn syn_fin_reads_as_syn_with_payload() {
        let b = segment(SYN | FIN, b"abc");
        let tp = TcpPacket::new_checked(&b[..]).unwrap();
        let mut hdr = [0u8; MAX_HEADER];
        let (r, odd) = reparse(&tp, &mut hdr).unwrap();
        assert_eq!(odd, OddFlags::SynFin);
        assert_eq!(r.control, TcpControl::Syn);
        assert_eq!(r.seq_number, TcpSeqNumber(17));
        assert_eq!(r.payload, b"abc");
        assert_eq!(r.window_len, 1000);
    }

    #[test]
    fn rst_with_syn_or_fin_reads_as_rst() {
        for f in [RST | SYN, RST | FIN, RST | SYN | FIN, RST | SYN | 0x10] {
            let b = segment(f, b"");
            let tp = TcpPacket::new_checked(&b[..]).unwrap();
            let mut hdr = [0u8; MAX_HEADER];
            let (r, odd) = reparse(&tp, &mut hdr).unwrap();
            assert_eq!((odd, r.control), (OddFlags::RstPlus, TcpControl::Rst), "flags {f:#x}");
        }
    }

    #[test]
    fn other_faults_stay_refused() {
        // Plain SYN parses normally: reparse is not for it.
        let b = segment(SYN, b"");
        let tp = TcpPacket::new_checked(&b[..]).unwrap();
        assert!(reparse(&tp, &mut [0u8; MAX_HEADER]).is_none());
        // SYN+FIN with port 0 is malformed for another reason.
        let mut b = segment(SYN | FIN, b"");
        b[0..2].copy_from_slice(&0u16.to_be_bytes());
        let tp = TcpPacket::new_checked(&b[..]).unwrap();
        assert!(reparse(&tp, &mut [0u8; MAX_HEADER]).is_none());
    }
}
