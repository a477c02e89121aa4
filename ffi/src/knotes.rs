//! A kqueue's knotes, indexed by descriptor: the lookup every reported
//! event makes is an index, not a hash probe (descriptors are small
//! integers, below [`crate::state::MAX_FDS`]; the two filters zcstack
//! supports, `EVFILT_READ` and `EVFILT_WRITE`, share one entry).

use std::ffi::c_int;

use crate::events::{EVFILT_READ, EVFILT_WRITE};

/// Knotes by (descriptor, filter).
#[derive(Debug)]
pub struct Knotes<N> {
    /// `by_fd[fd]` = the fd's (`EVFILT_READ`, `EVFILT_WRITE`) knotes.
    by_fd: Vec<[Option<N>; 2]>,
}

impl<N> Default for Knotes<N> {
    fn default() -> Self {
        Knotes { by_fd: Vec::new() }
    }
}

/// The entry of a key, if it can have one (a non-negative descriptor and a
/// supported filter).
#[inline]
fn index((fd, filter): (c_int, i16)) -> Option<(usize, usize)> {
    let f = match filter {
        EVFILT_READ => 0,
        EVFILT_WRITE => 1,
        _ => return None,
    };
    Some((usize::try_from(fd).ok()?, f))
}

impl<N> Knotes<N> {
    /// The knote of `key`.
    #[inline]
    pub fn get_mut(&mut self, key: (c_int, i16)) -> Option<&mut N> {
        let (i, f) = index(key)?;
        self.by_fd.get_mut(i)?[f].as_mut()
    }

    /// Stores the knote of `key` and returns the one it replaces. A key
    /// with no entry (a filter other than read or write, a negative
    /// descriptor: the caller refuses those first) stores nothing and
    /// hands `n` back as `Err`.
    pub fn insert(&mut self, key: (c_int, i16), n: N) -> Result<Option<N>, N> {
        let Some((i, f)) = index(key) else { return Err(n) };
        if self.by_fd.len() <= i {
            self.by_fd.resize_with(i + 1, || [None, None]);
        }
        Ok(self.by_fd[i][f].replace(n))
    }

    /// Removes the knote of `key`.
    pub fn remove(&mut self, key: (c_int, i16)) -> Option<N> {
        let (i, f) = index(key)?;
        self.by_fd.get_mut(i)?[f].take()
    }

    /// Removes every knote of descriptor `fd`, with its key.
    pub fn remove_fd(&mut self, fd: c_int) -> Vec<((c_int, i16), N)> {
        [EVFILT_READ, EVFILT_WRITE].into_iter().filter_map(|f| Some(((fd, f), self.remove((fd, f))?))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_their_own_entry() {
        let mut k: Knotes<u32> = Knotes::default();
        assert_eq!(k.insert((5, EVFILT_READ), 1), Ok(None));
        assert_eq!(k.insert((5, EVFILT_WRITE), 2), Ok(None));
        assert_eq!(k.insert((0, EVFILT_READ), 3), Ok(None));
        assert_eq!(k.insert((5, EVFILT_READ), 4), Ok(Some(1)), "replaced");
        assert_eq!(k.get_mut((5, EVFILT_READ)), Some(&mut 4));
        assert_eq!(k.get_mut((5, EVFILT_WRITE)), Some(&mut 2));
        assert_eq!(k.get_mut((6, EVFILT_READ)), None, "past the end");
        assert_eq!(k.get_mut((-1, EVFILT_READ)), None);
        assert_eq!(k.get_mut((5, -3)), None, "unsupported filter");
        assert_eq!(k.insert((-1, EVFILT_READ), 9), Err(9), "no entry for a negative descriptor");
        assert_eq!(k.insert((1, -3), 8), Err(8), "no entry for another filter");
        assert_eq!(k.remove_fd(5), vec![((5, EVFILT_READ), 4), ((5, EVFILT_WRITE), 2)]);
        assert_eq!(k.remove((0, EVFILT_READ)), Some(3));
        assert_eq!(k.remove((0, EVFILT_READ)), None);
        assert_eq!(k.remove_fd(5), vec![]);
    }
}
