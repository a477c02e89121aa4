//! Sequence numbers with modulo-2^32 comparison (RFC 9293 section 3.4).

use core::cmp::Ordering;
use core::ops::{Add, Sub};

/// A TCP sequence number.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Seq(pub u32);

impl Seq {
    /// Bytes from `earlier` to `self` (assumes `earlier <= self` in sequence space).
    pub fn since(self, earlier: Seq) -> u32 {
        self.0.wrapping_sub(earlier.0)
    }

    /// `lo <= self < hi` in sequence space.
    pub fn in_range(self, lo: Seq, hi: Seq) -> bool {
        lo <= self && self < hi
    }

    /// The larger of two sequence numbers.
    pub fn max(self, o: Seq) -> Seq {
        if self >= o {
            self
        } else {
            o
        }
    }

    /// The smaller of two sequence numbers.
    pub fn min(self, o: Seq) -> Seq {
        if self <= o {
            self
        } else {
            o
        }
    }
}

impl PartialOrd for Seq {
    fn partial_cmp(&self, other: &Seq) -> Option<Ordering> {
        Some((self.0.wrapping_sub(other.0) as i32).cmp(&0))
    }
}

impl Add<u32> for Seq {
    type Output = Seq;
    fn add(self, n: u32) -> Seq {
        Seq(self.0.wrapping_add(n))
    }
}

impl Sub<Seq> for Seq {
    type Output = i32;
    fn sub(self, o: Seq) -> i32 {
        self.0.wrapping_sub(o.0) as i32
    }
}

impl From<smoltcp::wire::TcpSeqNumber> for Seq {
    fn from(s: smoltcp::wire::TcpSeqNumber) -> Seq {
        Seq(s.0 as u32)
    }
}

impl From<Seq> for smoltcp::wire::TcpSeqNumber {
    fn from(s: Seq) -> smoltcp::wire::TcpSeqNumber {
        smoltcp::wire::TcpSeqNumber(s.0 as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_wrap_around() {
        let a = Seq(u32::MAX - 10);
        let b = a + 20;
        assert!(a < b);
        assert_eq!(b.since(a), 20);
        assert_eq!(b - a, 20);
        assert_eq!(a - b, -20);
        assert!(Seq(5).in_range(a, b));
        assert!(!b.in_range(a, b));
        assert_eq!(a.max(b), b);
        assert_eq!(a.min(b), a);
    }
}
