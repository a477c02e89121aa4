//! The open-file table: a slab indexed by the low half of a file id, so
//! that the lookups every call makes (descriptor → file, the engine's event
//! token → file, an event set's candidates → file) are an index and a
//! compare, not a hash probe.
//!
//! A file id is `generation << 32 | slot`. A slot's generation moves on
//! when its file is removed, so an id that outlived its file (an engine
//! report already queued for a closed connection, an event set's stale
//! candidate) finds nothing, even after the slot serves a new file. Ids are
//! never 0 (generations start at 1).

use crate::state::File;

/// Open files by id.
#[derive(Debug, Default)]
pub struct Files {
    slots: Vec<Slot>,
    /// Free slots, most recently freed last (reused first: warm in cache).
    free: Vec<u32>,
    len: usize,
}

#[derive(Debug)]
struct Slot {
    /// Generation of the file in the slot, or of the next one if empty.
    gen: u32,
    file: Option<File>,
}

/// The slot of file id `id` (its low 32 bits): where tables indexed by
/// file (such as an event set's watch) keep it.
#[inline]
pub(crate) fn slot_of(id: u64) -> usize {
    (id & 0xffff_ffff) as usize
}

#[inline]
fn split(id: u64) -> (usize, u32) {
    (slot_of(id), (id >> 32) as u32)
}

impl Files {
    /// Stores `file`; returns its id (never 0, never one a live file has).
    pub fn insert(&mut self, file: File) -> u64 {
        self.len += 1;
        let idx = match self.free.pop() {
            Some(i) => i,
            None => {
                // Descriptors cap the files (MAX_FDS), far below u32::MAX.
                let i = u32::try_from(self.slots.len()).expect("file table below 2^32 slots");
                self.slots.push(Slot { gen: 1, file: None });
                i
            }
        };
        let slot = &mut self.slots[idx as usize];
        slot.file = Some(file);
        (u64::from(slot.gen) << 32) | u64::from(idx)
    }

    /// The file `id` names, if it is still open.
    #[inline]
    pub fn get(&self, id: u64) -> Option<&File> {
        let (i, gen) = split(id);
        let s = self.slots.get(i)?;
        if s.gen != gen {
            return None;
        }
        s.file.as_ref()
    }

    /// The file `id` names, mutably.
    #[inline]
    pub fn get_mut(&mut self, id: u64) -> Option<&mut File> {
        let (i, gen) = split(id);
        let s = self.slots.get_mut(i)?;
        if s.gen != gen {
            return None;
        }
        s.file.as_mut()
    }

    /// Whether `id` names an open file a read left drained
    /// ([`File::rd_quiet`]); `false` for an id that names nothing.
    #[inline]
    pub fn rd_quiet(&self, id: u64) -> bool {
        self.get(id).is_some_and(|f| f.rd_quiet)
    }

    /// Takes file `id` out; its id names nothing from now on.
    pub fn remove(&mut self, id: u64) -> Option<File> {
        let (i, gen) = split(id);
        let s = self.slots.get_mut(i)?;
        if s.gen != gen {
            return None;
        }
        let f = s.file.take()?;
        // Generation 0 is never handed out: ids stay non-zero.
        s.gen = s.gen.checked_add(1).unwrap_or(1);
        self.free.push(i as u32);
        self.len -= 1;
        Some(f)
    }

    /// Open files.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no file is open.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every open file with its id.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u64, &mut File)> {
        self.slots.iter_mut().enumerate().filter_map(|(i, s)| {
            let gen = s.gen;
            s.file.as_mut().map(|f| ((u64::from(gen) << 32) | i as u64, f))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Kind;

    fn file() -> File {
        File::new(Kind::Busy)
    }

    #[test]
    fn a_removed_id_names_nothing_even_after_its_slot_is_reused() {
        let mut t = Files::default();
        let a = t.insert(file());
        let b = t.insert(file());
        assert_ne!(a, 0);
        assert_ne!(a, b);
        assert!(t.get(a).is_some() && t.get(b).is_some());
        assert!(t.remove(a).is_some());
        assert!(t.remove(a).is_none(), "removed once");
        assert!(t.get(a).is_none());
        let c = t.insert(file());
        assert_eq!(c & 0xffff_ffff, a & 0xffff_ffff, "the freed slot serves again");
        assert_ne!(c, a, "with a new generation");
        assert!(t.get(a).is_none() && t.get(c).is_some());
        assert_eq!(t.len(), 2);
        let mut ids: Vec<u64> = t.iter_mut().map(|(id, _)| id).collect();
        ids.sort_unstable();
        let mut want = vec![b, c];
        want.sort_unstable();
        assert_eq!(ids, want);
        assert!(t.get(u64::MAX).is_none() && t.get(0).is_none(), "ids never handed out name nothing");
    }

    #[test]
    fn generations_wrap_past_zero() {
        let mut t = Files::default();
        let a = t.insert(file());
        t.slots[0].gen = u32::MAX;
        t.remove(a); // stale generation: nothing removed
        assert_eq!(t.len(), 1);
        let a = (u64::from(u32::MAX) << 32) | (a & 0xffff_ffff);
        assert!(t.remove(a).is_some());
        let b = t.insert(file());
        assert_eq!(b >> 32, 1, "generation 0 is skipped");
    }
}
