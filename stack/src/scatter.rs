//! Bytes copied over a list of buffers in order (`readv`/`recvmsg`-style
//! destinations): the shared piece of the TCP peek and the UDP reads.

/// A list of buffers being filled in order, each before the next.
pub(crate) struct Scatter<'a, 'b> {
    bufs: &'a mut [&'b mut [u8]],
    /// The buffer being filled, and the bytes already in it.
    at: usize,
    off: usize,
    /// Bytes placed in all.
    n: usize,
}

impl<'a, 'b> Scatter<'a, 'b> {
    /// Nothing placed yet.
    pub(crate) fn new(bufs: &'a mut [&'b mut [u8]]) -> Self {
        Scatter { bufs, at: 0, off: 0, n: 0 }
    }

    /// Copies as much of `src` as the buffers hold, after what is already
    /// placed; `false` once they are full (empty buffers are skipped).
    pub(crate) fn put(&mut self, mut src: &[u8]) -> bool {
        while !src.is_empty() {
            let Some(dst) = self.bufs.get_mut(self.at) else { return false };
            let k = src.len().min(dst.len() - self.off);
            dst[self.off..self.off + k].copy_from_slice(&src[..k]);
            src = &src[k..];
            self.off += k;
            self.n += k;
            if self.off == dst.len() {
                self.at += 1;
                self.off = 0;
            }
        }
        self.at < self.bufs.len()
    }

    /// Bytes placed so far.
    pub(crate) fn placed(&self) -> usize {
        self.n
    }
}

/// Copies `src` over `bufs` in order; the bytes placed (what fits).
pub(crate) fn scatter(src: &[u8], bufs: &mut [&mut [u8]]) -> usize {
    let mut out = Scatter::new(bufs);
    out.put(src);
    out.placed()
}
