//! Which registrations of an event set (epoll set or kqueue) a wait must
//! look at, so that a wait costs O(ready), not O(registered): the files
//! that had an edge since the set last looked (from the engine's reports,
//! see [`crate::state::Lib::pump`]), the files whose registrations were
//! reported level-triggered last time or were just added, modified or
//! enabled (`recheck`), and UDP sockets (their edges are datagram
//! arrivals, which the engine does not report: looked at every wait).

use crate::files::slot_of;

/// Values by file id, indexed by the id's slot ([`slot_of`], see
/// [`crate::files`]): a lookup is an index and a compare.
#[derive(Debug)]
struct BySlot<V> {
    slots: Vec<Option<(u64, V)>>,
}

impl<V> Default for BySlot<V> {
    fn default() -> Self {
        BySlot { slots: Vec::new() }
    }
}

impl<V> BySlot<V> {
    #[inline]
    fn get(&self, id: u64) -> Option<&V> {
        match self.slots.get(slot_of(id))? {
            Some((i, v)) if *i == id => Some(v),
            _ => None,
        }
    }

    #[inline]
    fn get_mut(&mut self, id: u64) -> Option<&mut V> {
        match self.slots.get_mut(slot_of(id))? {
            Some((i, v)) if *i == id => Some(v),
            _ => None,
        }
    }

    /// The value of `id`, made by `f` if it has none (an entry left by a
    /// file that had the slot before is replaced: that file is closed).
    fn get_or_insert_with(&mut self, id: u64, f: impl FnOnce() -> V) -> &mut V {
        let s = slot_of(id);
        if self.slots.len() <= s {
            self.slots.resize_with(s + 1, || None);
        }
        let e = &mut self.slots[s];
        if !matches!(e, Some((i, _)) if *i == id) {
            *e = Some((id, f()));
        }
        match e {
            Some((_, v)) => v,
            None => unreachable!("just filled"),
        }
    }

    fn remove(&mut self, id: u64) -> Option<V> {
        let e = self.slots.get_mut(slot_of(id))?;
        match e {
            Some((i, _)) if *i == id => e.take().map(|(_, v)| v),
            _ => None,
        }
    }

    fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots.iter().filter_map(|e| e.as_ref().map(|(i, _)| *i))
    }
}

/// One event set's registrations by file, and its candidates.
#[derive(Debug)]
pub struct Watch<K> {
    /// The keys (epoll: descriptor; kqueue: descriptor and filter) of each
    /// watched file, and the [`Watch::candidates`] call that last listed it.
    by_file: BySlot<Watched<K>>,
    /// Files to look at on the next wait whatever the engine reports, each
    /// with whether only read interest asked for it ([`Watch::again_read`]).
    recheck: Vec<(u64, bool)>,
    /// Files looked at on every wait (UDP sockets).
    always: Vec<u64>,
    /// Number of the current [`Watch::candidates`] call (a file is listed
    /// once per call: its `listed` equals this once it is).
    round: u64,
    /// The list [`Watch::candidates`] returned last, given back by
    /// [`Watch::recycle`] so that a wait allocates nothing in steady state.
    spare: Vec<u64>,
}

/// One watched file.
#[derive(Debug)]
struct Watched<K> {
    keys: Vec<K>,
    listed: u64,
}

impl<K> Default for Watch<K> {
    fn default() -> Self {
        Watch { by_file: BySlot::default(), recheck: Vec::new(), always: Vec::new(), round: 0, spare: Vec::new() }
    }
}

impl<K: Copy + PartialEq> Watch<K> {
    /// `key` now watches `file` (added, modified or enabled): looked at on
    /// the next wait. `every_wait`: the file has no engine reports (UDP).
    pub fn add(&mut self, file: u64, key: K, every_wait: bool) {
        let w = self.by_file.get_or_insert_with(file, || Watched { keys: Vec::new(), listed: 0 });
        if !w.keys.contains(&key) {
            w.keys.push(key);
        }
        if every_wait && !self.always.contains(&file) {
            self.always.push(file);
        }
        self.recheck.push((file, false));
    }

    /// `key` no longer watches `file`; whether the file has no key left.
    pub fn remove(&mut self, file: u64, key: K) -> bool {
        let Some(w) = self.by_file.get_mut(file) else { return true };
        w.keys.retain(|k| *k != key);
        if !w.keys.is_empty() {
            return false;
        }
        self.by_file.remove(file);
        self.always.retain(|f| *f != file);
        true
    }

    /// Look at `file` again on the next wait (reported level-triggered, or
    /// not looked at because the caller's event list was full).
    pub fn again(&mut self, file: u64) {
        self.recheck.push((file, false));
    }

    /// As [`Watch::again`], for a registration with read interest only:
    /// [`Watch::skip_read_rechecks`] may drop it.
    pub fn again_read(&mut self, file: u64) {
        self.recheck.push((file, true));
    }

    /// Drops the rechecks asked for by read-only registrations of the files
    /// `quiet` names (known to have nothing for a reader), before
    /// [`Watch::candidates`] would look them up.
    pub fn skip_read_rechecks(&mut self, quiet: impl Fn(u64) -> bool) {
        self.recheck.retain(|&(f, read_only)| !(read_only && quiet(f)));
    }

    /// Look at `files` first on the next wait: they were not looked at
    /// (or not all their keys) because the caller's list was full, and go
    /// ahead of what was reported this time so that a small list still
    /// reaches every ready registration in turn (as Linux's ready list).
    pub fn first(&mut self, files: &[u64]) {
        let rest = std::mem::take(&mut self.recheck);
        self.recheck.extend(files.iter().map(|&f| (f, false)));
        self.recheck.extend(rest);
    }

    /// Whether a wait has nothing to look at unless an engine report came:
    /// no rechecks, no every-wait files.
    pub fn quiet(&self) -> bool {
        self.recheck.is_empty() && self.always.is_empty()
    }

    /// As [`Watch::quiet`], counting as nothing the rechecks that
    /// [`Watch::skip_read_rechecks`] would drop with the same `quiet`.
    pub fn quiet_but_for(&self, quiet: impl Fn(u64) -> bool) -> bool {
        self.always.is_empty() && self.recheck.iter().all(|&(f, read_only)| read_only && quiet(f))
    }

    /// The keys of `file`, copied out (inline up to 4: a file has one per
    /// filter and descriptor), for a caller that changes the watch while
    /// it goes through them.
    pub fn keys_copy(&self, file: u64) -> smallvec::SmallVec<[K; 4]> {
        // Element by element (a file has one or two keys): `from_slice`
        // called `memcpy`, and reading the SmallVec's length right after
        // waited for the bytes that call had just stored (~16% of
        // `ff_kevent`'s event collection in a profile of the C HTTP
        // example). Codegen-dependent: ci/bench-ffi is the guard.
        self.keys(file).iter().copied().collect()
    }

    /// The keys of `file` (empty if none).
    pub fn keys(&self, file: u64) -> &[K] {
        self.by_file.get(file).map_or(&[], |w| w.keys.as_slice())
    }

    /// Every watched file.
    pub fn files(&self) -> impl Iterator<Item = u64> + '_ {
        self.by_file.ids()
    }

    /// The files to look at now, each once, in this order: the rechecks
    /// (in the order they were asked for), `edged` (edges since the last
    /// wait), the every-wait files. The rechecks are consumed: the caller
    /// re-adds what stays ready level-triggered.
    pub fn candidates(&mut self, edged: impl IntoIterator<Item = u64>) -> Vec<u64> {
        let mut c = std::mem::take(&mut self.spare);
        c.clear();
        c.extend(self.recheck.drain(..).map(|(f, _)| f));
        c.extend(edged);
        c.extend(self.always.iter().copied());
        self.round += 1;
        let (round, by_file) = (self.round, &mut self.by_file);
        // Watched files only, each once: one lookup per entry.
        c.retain(|&f| match by_file.get_mut(f) {
            Some(w) if w.listed != round => {
                w.listed = round;
                true
            }
            _ => false,
        });
        c
    }

    /// Gives back the list [`Watch::candidates`] returned, for its
    /// allocation to serve the next wait.
    pub fn recycle(&mut self, c: Vec<u64>) {
        self.spare = c;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_edges_rechecks_and_every_wait_files_once() {
        let mut w: Watch<i32> = Watch::default();
        w.add(1, 10, false);
        w.add(2, 20, true);
        w.add(3, 30, false);
        assert_eq!(w.candidates([]), vec![1, 2, 3], "fresh registrations are looked at");
        assert_eq!(w.candidates([]), vec![2], "then only the every-wait (UDP) file");
        assert_eq!(w.candidates([3, 3, 9]), vec![3, 2], "edges, once each; unwatched files skipped");
        w.again(1);
        assert_eq!(w.candidates([]), vec![1, 2]);
        w.again(1);
        w.first(&[3]);
        assert_eq!(w.candidates([1]), vec![3, 1, 2], "what a full list left out goes first");
        assert!(!w.remove(1, 11), "another key stays");
        assert!(w.remove(1, 10));
        assert!(w.remove(2, 20));
        assert_eq!(w.candidates([1, 2]), Vec::<u64>::new(), "removed files are not looked at");
        assert_eq!(w.keys(3), &[30]);
    }

    #[test]
    fn read_only_rechecks_of_quiet_files_are_dropped_and_others_kept() {
        let mut w: Watch<i32> = Watch::default();
        for f in [1, 2, 3] {
            w.add(f, f as i32, false);
        }
        let _ = w.candidates([]);
        assert!(w.quiet());
        w.again_read(1);
        w.again_read(2);
        w.again(3);
        let quiet = |f: u64| f != 2;
        assert!(!w.quiet_but_for(quiet), "2 is not quiet, 3 was asked for by a writer");
        w.skip_read_rechecks(quiet);
        assert_eq!(w.candidates([]), vec![2, 3], "1 dropped: read-only and quiet");
        w.again_read(1);
        w.again(1);
        w.skip_read_rechecks(|_| true);
        assert_eq!(w.candidates([]), vec![1], "a writer's recheck of the same file stays");
        w.again_read(1);
        assert!(w.quiet_but_for(|_| true) && !w.quiet_but_for(|_| false));
    }
}
