//! Tables keyed by message ids, stored densely.
//!
//! Harness message ids are `producer << 32 | sequence` and broker message ids are
//! `epoch << 40 | counter`; both are dense in their low part. A table keeps one vector per high
//! part, indexed by the low part (times a fixed number of columns, for per-subscription
//! records), which is much cheaper than an ordered map at hundreds of thousands of messages.
//! Ids that do not fit (a high or low part beyond the bounds below, or a column past the
//! width; none occur in a harness run) go to an ordered map instead, so the table is correct
//! for any id.

use std::collections::BTreeMap;

/// Highest high part kept densely.
const MAX_ROWS: u64 = 1 << 16;
/// Highest low part kept densely.
const MAX_LOW: u64 = 1 << 26;

/// A table from `(id, column)` to `T`, where `T::default()` means absent.
#[derive(Debug, Clone)]
pub struct IdTable<T> {
    shift: u32,
    width: usize,
    rows: Vec<Vec<T>>,
    other: BTreeMap<(u64, usize), T>,
}

impl<T: Default + Clone> IdTable<T> {
    /// A table for ids whose high part starts at bit `shift`, with `width` columns per id.
    pub fn new(shift: u32, width: usize) -> Self {
        IdTable {
            shift,
            width: width.max(1),
            rows: Vec::new(),
            other: BTreeMap::new(),
        }
    }

    fn split(&self, id: u64, col: usize) -> Option<(usize, usize)> {
        let high = id >> self.shift;
        let low = id & ((1u64 << self.shift) - 1);
        (high < MAX_ROWS && low < MAX_LOW && col < self.width)
            .then(|| (high as usize, low as usize * self.width + col))
    }

    /// The value at `(id, col)`, created as `T::default()` if absent.
    pub fn entry(&mut self, id: u64, col: usize) -> &mut T {
        match self.split(id, col) {
            Some((r, i)) => {
                if self.rows.len() <= r {
                    self.rows.resize_with(r + 1, Vec::new);
                }
                let row = &mut self.rows[r];
                if row.len() <= i {
                    row.resize((i / self.width + 1) * self.width, T::default());
                }
                &mut row[i]
            }
            None => self.other.entry((id, col)).or_default(),
        }
    }

    /// The value at `(id, col)`, or `None` if it was never created.
    pub fn get(&self, id: u64, col: usize) -> Option<&T> {
        match self.split(id, col) {
            Some((r, i)) => self.rows.get(r).and_then(|row| row.get(i)),
            None => self.other.get(&(id, col)),
        }
    }

    /// Every slot, absent ones (`T::default()`) included, as `(id, column, value)`: dense ids in
    /// ascending order, then the others in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, usize, &T)> {
        let width = self.width;
        let shift = self.shift;
        let dense = self.rows.iter().enumerate().flat_map(move |(r, row)| {
            row.iter().enumerate().map(move |(i, v)| {
                let id = ((r as u64) << shift) | (i / width) as u64;
                (id, i % width, v)
            })
        });
        dense.chain(self.other.iter().map(|(&(id, col), v)| (id, col, v)))
    }
}

/// Broker message id to harness message id.
#[derive(Debug, Clone)]
pub struct BrokerIds {
    /// The harness id plus one; 0 is absent.
    table: IdTable<u64>,
}

impl Default for BrokerIds {
    fn default() -> Self {
        BrokerIds {
            table: IdTable::new(40, 1),
        }
    }
}

impl BrokerIds {
    /// Records that broker id `broker_msg` is harness id `msg` (neither `NO_MSG`).
    pub fn insert(&mut self, broker_msg: u64, msg: u64) {
        *self.table.entry(broker_msg, 0) = msg.wrapping_add(1);
    }

    /// [`BrokerIds::insert`]; returns false when `broker_msg` was known as another harness id
    /// before (the new one replaces it).
    pub fn insert_checked(&mut self, broker_msg: u64, msg: u64) -> bool {
        let slot = self.table.entry(broker_msg, 0);
        let new = msg.wrapping_add(1);
        let same = *slot == 0 || *slot == new;
        *slot = new;
        same
    }

    /// The harness id of broker id `broker_msg`, if known.
    pub fn get(&self, broker_msg: u64) -> Option<u64> {
        match self.table.get(broker_msg, 0) {
            Some(&v) if v != 0 => Some(v - 1),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_and_sparse_ids_both_work() {
        let mut t: IdTable<u32> = IdTable::new(32, 2);
        *t.entry(5, 1) += 1;
        *t.entry((3 << 32) | 7, 0) += 2;
        *t.entry(u64::MAX, 0) += 3;
        *t.entry(5, 9) += 4;
        assert_eq!(t.get(5, 1), Some(&1));
        assert_eq!(t.get((3 << 32) | 7, 0), Some(&2));
        assert_eq!(t.get(u64::MAX, 0), Some(&3));
        assert_eq!(t.get(5, 9), Some(&4));
        assert_eq!(t.get(1 << 40, 0), None);
        let set: Vec<_> = t.iter().filter(|(_, _, v)| **v != 0).collect();
        assert_eq!(
            set,
            vec![
                (5, 1, &1),
                ((3 << 32) | 7, 0, &2),
                (5, 9, &4),
                (u64::MAX, 0, &3)
            ]
        );
    }
}
