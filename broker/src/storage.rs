//! Durable storage behind the broker: an append-only log with explicit sync points.
//!
//! The broker is command-sourced: every command that changed state is appended as a [`Record`],
//! and recovery replays the synced records through the same code that applied them the first
//! time. The broker is a deterministic function of its commands and their times, so replay
//! rebuilds exactly the state the synced prefix produced, and a crash loses exactly the records
//! that were appended but not synced.
//!
//! [`MemDisk`] keeps the log in memory. A simulator keeps it (through [`SharedDisk`]) across a
//! simulated host crash, which drops the broker and calls [`MemDisk::crash`]: that is the
//! "disk" of a simulated machine. An adapter can implement [`Storage`] over real files.

use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::command::Command;
use crate::time::Time;

/// One entry of the broker's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Record {
    /// A command that changed state, applied at `at`.
    Applied { at: Time, command: Command },
    /// The broker came back at `at` as incarnation `epoch`: leases held then were released.
    Recovered { at: Time, epoch: u32 },
}

/// Where the broker's log goes.
pub trait Storage {
    /// Appends a record; it is durable only after the next [`Storage::sync`].
    fn append(&mut self, record: Record);
    /// Makes every appended record durable.
    fn sync(&mut self);
    /// Whether another record fits. A full store makes the broker refuse changes.
    fn has_room(&self) -> bool;
    /// Calls `f` on each durable record in order; stops at the first error and returns it with
    /// the record's index.
    fn replay(
        &self,
        f: &mut dyn FnMut(&Record) -> Result<(), String>,
    ) -> Result<(), (usize, String)>;
    /// Increments and returns the incarnation number. It is durable at once whatever the
    /// durability policy, like a boot counter, so that receipts and message ids of an earlier
    /// incarnation never collide with a later one's.
    fn next_epoch(&mut self) -> u32;
}

/// An in-memory log that survives a simulated crash.
#[derive(Debug, Clone)]
pub struct MemDisk {
    /// The durable log in segments of [`MemDisk::SEGMENT_RECORDS`], the last one filling. A
    /// single vector would copy the whole log into fresh memory each time it doubled, which
    /// costs a long run's step loop more than the copy's instructions suggest (the new
    /// block's page faults); segments are written once and never move.
    synced: Vec<Vec<Record>>,
    synced_len: usize,
    unsynced: Vec<Record>,
    epoch: u32,
    syncs: u64,
    max_records: usize,
}

impl MemDisk {
    /// Records a disk holds by default: enough for runs of a few million messages.
    pub const DEFAULT_MAX_RECORDS: usize = 20_000_000;

    /// Records a segment of the durable log holds.
    pub const SEGMENT_RECORDS: usize = 4096;

    /// An empty disk with the default capacity.
    pub fn new() -> Self {
        Self::with_capacity(Self::DEFAULT_MAX_RECORDS)
    }

    /// An empty disk that holds at most `max_records` records.
    pub fn with_capacity(max_records: usize) -> Self {
        MemDisk {
            synced: Vec::new(),
            synced_len: 0,
            unsynced: Vec::new(),
            epoch: 0,
            syncs: 0,
            max_records,
        }
    }

    /// Loses every record that was not synced, as a power cut or process kill does.
    pub fn crash(&mut self) {
        self.unsynced.clear();
    }

    /// Records that survive a crash.
    pub fn synced_len(&self) -> usize {
        self.synced_len
    }

    /// Records a crash would lose.
    pub fn unsynced_len(&self) -> usize {
        self.unsynced.len()
    }

    /// How many syncs wrote something.
    pub fn syncs(&self) -> u64 {
        self.syncs
    }
}

impl Default for MemDisk {
    fn default() -> Self {
        Self::new()
    }
}

impl Storage for MemDisk {
    fn append(&mut self, record: Record) {
        self.unsynced.push(record);
    }

    fn sync(&mut self) {
        if self.unsynced.is_empty() {
            return;
        }
        self.synced_len += self.unsynced.len();
        let mut records = self.unsynced.drain(..);
        while records.len() > 0 {
            let segment = match self.synced.last_mut() {
                Some(last) if last.len() < Self::SEGMENT_RECORDS => last,
                _ => {
                    self.synced.push(Vec::with_capacity(Self::SEGMENT_RECORDS));
                    self.synced.last_mut().expect("a segment was just pushed")
                }
            };
            let room = Self::SEGMENT_RECORDS - segment.len();
            segment.extend(records.by_ref().take(room));
        }
        self.syncs += 1;
    }

    fn has_room(&self) -> bool {
        self.synced_len + self.unsynced.len() < self.max_records
    }

    fn replay(
        &self,
        f: &mut dyn FnMut(&Record) -> Result<(), String>,
    ) -> Result<(), (usize, String)> {
        for (i, r) in self.synced.iter().flatten().enumerate() {
            f(r).map_err(|e| (i, e))?;
        }
        Ok(())
    }

    fn next_epoch(&mut self) -> u32 {
        self.epoch = self.epoch.saturating_add(1);
        self.epoch
    }
}

/// A [`MemDisk`] shared between a broker and whoever outlives it (the simulated machine).
///
/// The mutex is never contended: the simulation is single-threaded. It is a mutex rather than a
/// `RefCell` only so that a broker over a shared disk can move between threads in a real server.
#[derive(Debug, Clone, Default)]
pub struct SharedDisk(Arc<Mutex<MemDisk>>);

impl SharedDisk {
    /// Wraps a disk.
    pub fn new(disk: MemDisk) -> Self {
        SharedDisk(Arc::new(Mutex::new(disk)))
    }

    /// Access to the disk, for crashing it or reading its counters.
    pub fn lock(&self) -> MutexGuard<'_, MemDisk> {
        // A panic while holding the lock cannot leave the log half-written (every operation is
        // a single push or append), so a poisoned lock is safe to reuse.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Storage for SharedDisk {
    fn append(&mut self, record: Record) {
        self.lock().append(record);
    }
    fn sync(&mut self) {
        self.lock().sync();
    }
    fn has_room(&self) -> bool {
        self.lock().has_room()
    }
    fn replay(
        &self,
        f: &mut dyn FnMut(&Record) -> Result<(), String>,
    ) -> Result<(), (usize, String)> {
        self.lock().replay(f)
    }
    fn next_epoch(&mut self) -> u32 {
        self.lock().next_epoch()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ms: u64) -> Record {
        Record::Applied {
            at: Time::from_ms(ms),
            command: Command::Tick,
        }
    }

    #[test]
    fn a_crash_loses_exactly_what_was_not_synced() {
        let mut d = MemDisk::new();
        d.append(rec(1));
        d.sync();
        d.append(rec(2));
        assert_eq!((d.synced_len(), d.unsynced_len()), (1, 1));
        d.crash();
        let mut seen = Vec::new();
        d.replay(&mut |r| {
            seen.push(r.clone());
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![rec(1)]);
    }

    #[test]
    fn the_log_replays_in_order_across_segments() {
        // Syncs of every size, some filling a segment exactly and some crossing one or more
        // segment boundaries, then a crash: replay must give every synced record once, in
        // order, with its index in the whole log.
        let seg = MemDisk::SEGMENT_RECORDS as u64;
        let mut d = MemDisk::new();
        let mut next = 0;
        for n in [1, seg - 1, seg, 2 * seg + 3, 0, 5] {
            for _ in 0..n {
                d.append(rec(next));
                next += 1;
            }
            d.sync();
            assert_eq!(d.synced_len() as u64, next);
        }
        d.append(rec(next));
        d.crash();
        let mut seen = 0;
        d.replay(&mut |r| {
            assert_eq!(*r, rec(seen));
            seen += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, next);
        assert_eq!(d.syncs(), 5, "an empty sync writes nothing");
        // An error names the record's index in the whole log, not in its segment.
        let bad = seg + 7;
        let err = d
            .replay(&mut |r| match r {
                Record::Applied { at, .. } if *at == Time::from_ms(bad) => Err("bad".into()),
                _ => Ok(()),
            })
            .unwrap_err();
        assert_eq!(err, (bad as usize, "bad".to_owned()));
    }

    #[test]
    fn capacity_and_epochs() {
        let mut d = MemDisk::with_capacity(1);
        assert!(d.has_room());
        d.append(rec(1));
        assert!(!d.has_room());
        assert_eq!(d.next_epoch(), 1);
        assert_eq!(d.next_epoch(), 2);
        d.crash();
        assert_eq!(d.next_epoch(), 3, "the epoch survives a crash");
    }
}
