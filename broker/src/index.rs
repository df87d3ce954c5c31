//! Dense indexes by offset: a subscription's entries and its ready set per partition.
//!
//! A partition's offsets are dense and only grow, and a subscription holds an entry only for a
//! message its partition's log still stores, so both indexes cover a window of the log's own
//! window. Indexing by position in a ring buffer costs an array access where an ordered tree
//! costs a search, and a steady publish-receive-ack loop adds at the back and removes at the
//! front without allocating. Each index trims empty room at both ends, so it never spans more
//! than from its lowest to its highest member: its memory is bounded by the log's.

use std::collections::VecDeque;

/// Values by offset, in offset order.
#[derive(Debug)]
pub(crate) struct OffsetMap<T> {
    /// The offset of `slots[0]`; meaningless while `slots` is empty.
    base: u64,
    /// Never starts or ends with `None`.
    slots: VecDeque<Option<T>>,
    len: usize,
}

impl<T> Default for OffsetMap<T> {
    fn default() -> Self {
        OffsetMap {
            base: 0,
            slots: VecDeque::new(),
            len: 0,
        }
    }
}

impl<T> OffsetMap<T> {
    /// How many values it holds.
    pub fn len(&self) -> usize {
        self.len
    }

    fn index(&self, off: u64) -> Option<usize> {
        usize::try_from(off.checked_sub(self.base)?).ok()
    }

    pub fn get(&self, off: u64) -> Option<&T> {
        self.slots.get(self.index(off)?)?.as_ref()
    }

    pub fn get_mut(&mut self, off: u64) -> Option<&mut T> {
        let i = self.index(off)?;
        self.slots.get_mut(i)?.as_mut()
    }

    /// Puts `value` at `off`, returning the value it replaces.
    pub fn insert(&mut self, off: u64, value: T) -> Option<T> {
        if self.slots.is_empty() {
            self.base = off;
        }
        while off < self.base {
            self.slots.push_front(None);
            self.base -= 1;
        }
        // The caller's offsets lie within its log's window, which is held in memory, so the
        // distance fits in a `usize` and the room added is bounded by that window.
        let i = (off - self.base) as usize;
        while self.slots.len() <= i {
            self.slots.push_back(None);
        }
        let old = self.slots[i].replace(value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub fn remove(&mut self, off: u64) -> Option<T> {
        let i = self.index(off)?;
        let value = self.slots.get_mut(i)?.take()?;
        self.len -= 1;
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.base += 1;
        }
        while matches!(self.slots.back(), Some(None)) {
            self.slots.pop_back();
        }
        Some(value)
    }

    /// The lowest offset held; the front slot is never empty.
    pub fn first_offset(&self) -> Option<u64> {
        (!self.slots.is_empty()).then_some(self.base)
    }

    /// The values with their offsets, in offset order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &T)> {
        let base = self.base;
        self.slots
            .iter()
            .enumerate()
            .filter_map(move |(i, s)| s.as_ref().map(|v| (base + i as u64, v)))
    }

    /// The values below offset `end`, in offset order.
    pub fn iter_below(&self, end: u64) -> impl Iterator<Item = (u64, &T)> {
        self.iter().take_while(move |&(off, _)| off < end)
    }
}

/// A set of offsets, as a bitmap in words of 64 offsets.
#[derive(Debug, Default)]
pub(crate) struct OffsetSet {
    /// The offset of bit 0 of `words[0]`, a multiple of 64; meaningless while `words` is empty.
    base: u64,
    /// Never starts or ends with a zero word.
    words: VecDeque<u64>,
}

impl OffsetSet {
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    pub fn insert(&mut self, off: u64) {
        let word_base = off & !63;
        if self.words.is_empty() {
            self.base = word_base;
        }
        while word_base < self.base {
            self.words.push_front(0);
            self.base -= 64;
        }
        // As for `OffsetMap::insert`: within the log's window, so it fits and is bounded.
        let w = ((word_base - self.base) / 64) as usize;
        while self.words.len() <= w {
            self.words.push_back(0);
        }
        self.words[w] |= 1 << (off % 64);
    }

    pub fn remove(&mut self, off: u64) {
        let Some(w) = off
            .checked_sub(self.base)
            .and_then(|d| usize::try_from(d / 64).ok())
        else {
            return;
        };
        let Some(word) = self.words.get_mut(w) else {
            return;
        };
        *word &= !(1 << (off % 64));
        while self.words.front() == Some(&0) {
            self.words.pop_front();
            self.base += 64;
        }
        while self.words.back() == Some(&0) {
            self.words.pop_back();
        }
    }

    /// The lowest member; the front word is never zero, so this looks at one word.
    pub fn first(&self) -> Option<u64> {
        let w = *self.words.front()?;
        Some(self.base + u64::from(w.trailing_zeros()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::{OffsetMap, OffsetSet};

    proptest! {
        /// Any sequence of inserts and removes leaves the same contents as an ordered tree, and
        /// the index spans no more than from its lowest to its highest member.
        #[test]
        fn offset_map_is_an_ordered_map(ops in prop::collection::vec((any::<bool>(), 0u64..300), 0..400)) {
            let mut map = OffsetMap::default();
            let mut model = BTreeMap::new();
            for (i, (insert, off)) in ops.into_iter().enumerate() {
                if insert {
                    prop_assert_eq!(map.insert(off, i), model.insert(off, i));
                } else {
                    prop_assert_eq!(map.remove(off), model.remove(&off));
                }
                prop_assert_eq!(map.len(), model.len());
                prop_assert_eq!(map.first_offset(), model.keys().next().copied());
                let got: Vec<_> = map.iter().map(|(o, v)| (o, *v)).collect();
                let want: Vec<_> = model.iter().map(|(o, v)| (*o, *v)).collect();
                prop_assert_eq!(got, want);
                let below: Vec<_> = map.iter_below(150).map(|(o, _)| o).collect();
                let want_below: Vec<_> = model.range(..150).map(|(o, _)| *o).collect();
                prop_assert_eq!(below, want_below);
                for probe in [0, 1, 149, 150, 299] {
                    prop_assert_eq!(map.get(probe), model.get(&probe));
                }
                let span = match (model.keys().next(), model.keys().next_back()) {
                    (Some(lo), Some(hi)) => (hi - lo + 1) as usize,
                    _ => 0,
                };
                prop_assert_eq!(map.slots.len(), span);
            }
        }

        /// The same for the set: its members and its lowest member.
        #[test]
        fn offset_set_is_an_ordered_set(ops in prop::collection::vec((any::<bool>(), 0u64..700), 0..400)) {
            let mut set = OffsetSet::default();
            let mut model = BTreeSet::new();
            for (insert, off) in ops {
                if insert {
                    set.insert(off);
                    model.insert(off);
                } else {
                    set.remove(off);
                    model.remove(&off);
                }
                prop_assert_eq!(set.is_empty(), model.is_empty());
                prop_assert_eq!(set.first(), model.first().copied());
                let members: BTreeSet<u64> = (0u64..700)
                    .filter(|&o| {
                        o.checked_sub(set.base)
                            .and_then(|d| set.words.get((d / 64) as usize))
                            .is_some_and(|w| w & (1 << (o % 64)) != 0)
                    })
                    .collect();
                prop_assert_eq!(&members, &model);
            }
        }
    }
}
