//! One subscription's delivery state: the queue's one subscription, or one consumer group of a
//! topic. It keeps an [`Entry`] for every message it has not finished with and indexes those
//! entries by what can happen next: ready to deliver, waiting on a timer (delay, retry backoff,
//! lease expiry), or blocked behind the head of its FIFO group.

use std::collections::{BTreeMap, VecDeque};

use crate::index::{OffsetMap, OffsetSet};
use crate::message::ConsumerId;
use crate::time::Time;
use crate::timers::{LeaseQueue, QueuedLease, Timer, Timers};

/// What can happen next to a message in one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EState {
    /// Deliverable now.
    Ready,
    /// Deliverable at the given time (a delay or a retry backoff).
    Waiting(Time),
    /// Leased to a consumer until the given time.
    InFlight {
        until: Time,
        token: u64,
        consumer: ConsumerId,
    },
    /// Behind the head of its FIFO group.
    Blocked,
}

/// A subscription's state for one message it has not finished with.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub state: EState,
    pub deliveries: u32,
    pub size: u32,
    /// The time to live ran out while the message was leased: it expires when the lease ends
    /// without an acknowledgement.
    pub expired: bool,
    /// The dead-letter queue refused the message; it is retried when its timer fires.
    pub dead_letter_pending: bool,
    /// The lease (in state `InFlight`) is in the subscription's [`LeaseQueue`], not in the
    /// timer set.
    pub lease_queued: bool,
}

/// One partition's share of a subscription: its entries by offset, and which are ready.
#[derive(Debug, Default)]
pub(crate) struct Part {
    pub entries: OffsetMap<Entry>,
    pub ready: OffsetSet,
}

/// FIFO message groups: the head of each group (the one message that may be delivered) and the
/// messages queued behind it, in publish order.
#[derive(Debug, Default)]
pub(crate) struct Fifo {
    pub heads: BTreeMap<String, (u32, u64)>,
    pub blocked: BTreeMap<String, VecDeque<(u32, u64)>>,
    /// Only with `Defect::FifoTwoInFlight` (the `defects` feature): per group, a former head
    /// that was leased when the group was released to its next message. While it is
    /// unfinished, the group is not released again. Empty otherwise.
    pub released: BTreeMap<String, (u32, u64)>,
}

/// A set of partition numbers, as a bitmap: a steady receive-ack loop empties and refills a
/// partition's ready set on every message, which in an ordered tree costs an allocation each time.
#[derive(Debug)]
pub(crate) struct PartitionSet {
    words: Vec<u64>,
}

impl PartitionSet {
    fn new(partitions: u32) -> Self {
        PartitionSet {
            words: vec![0; (partitions as usize).div_ceil(64)],
        }
    }

    fn insert(&mut self, p: u32) {
        self.words[p as usize / 64] |= 1 << (p % 64);
    }

    fn remove(&mut self, p: u32) {
        self.words[p as usize / 64] &= !(1 << (p % 64));
    }

    /// The first member at or after `from`, wrapping around to the start.
    fn first_from(&self, from: u32) -> Option<u32> {
        let n = self.words.len();
        let start = (from as usize / 64) % n.max(1);
        for step in 0..=n {
            let w = (start + step) % n;
            let mut bits = self.words[w];
            if step == 0 {
                // In the starting word, look at bits from `from` on first; the bits below it
                // are looked at last, on the wrap-around pass (step == n).
                bits &= u64::MAX << (from % 64);
            } else if step == n {
                bits = self.words[w] & !(u64::MAX << (from % 64));
            }
            if bits != 0 {
                return Some((w * 64) as u32 + bits.trailing_zeros());
            }
        }
        None
    }
}

/// A subscription: the queue's consumers, or one consumer group of a topic.
#[derive(Debug)]
pub(crate) struct Sub {
    pub name: Option<String>,
    pub parts: Vec<Part>,
    /// Partitions with at least one ready entry, so a receive need not scan empty ones.
    pub nonempty: PartitionSet,
    pub fifo: Option<Fifo>,
    pub in_flight: BTreeMap<ConsumerId, u32>,
    /// Lease deadlines granted in firing order (see `timers.rs`).
    pub leases: LeaseQueue,
    /// The partition a receive looks at first, rotated for fairness.
    pub rr: u32,
    pub n_ready: u64,
    pub n_waiting: u64,
    pub n_in_flight: u64,
    pub n_blocked: u64,
    pub unleased_bytes: u64,
}

impl Sub {
    pub fn new(name: Option<String>, partitions: u32, fifo: bool) -> Self {
        Sub {
            name,
            parts: (0..partitions).map(|_| Part::default()).collect(),
            nonempty: PartitionSet::new(partitions),
            fifo: fifo.then(Fifo::default),
            in_flight: BTreeMap::new(),
            leases: LeaseQueue::default(),
            rr: 0,
            n_ready: 0,
            n_waiting: 0,
            n_in_flight: 0,
            n_blocked: 0,
            unleased_bytes: 0,
        }
    }

    /// Messages not leased: what a queue's `max_length` counts.
    pub fn unleased(&self) -> u64 {
        self.n_ready + self.n_waiting + self.n_blocked
    }

    /// Indexes an entry in state `st`. Returns whether its lease, if it is leased, went to the
    /// subscription's lease queue rather than the timer set.
    fn attach(&mut self, timers: &mut Timers, k: Timer, st: EState, size: u32) -> bool {
        let p = k.part as usize;
        let mut queued = false;
        match st {
            EState::Ready => {
                self.parts[p].ready.insert(k.off);
                self.nonempty.insert(k.part);
                self.n_ready += 1;
            }
            EState::Waiting(at) => {
                timers.set.insert(Timer { at, ..k });
                self.n_waiting += 1;
            }
            EState::InFlight {
                until,
                token,
                consumer,
            } => {
                let lease = QueuedLease {
                    until,
                    part: k.part,
                    off: k.off,
                    token,
                };
                if self.leases.push(lease) {
                    timers.leases_due = timers.leases_due.min(until);
                    queued = true;
                } else {
                    timers.set.insert(Timer { at: until, ..k });
                }
                *self.in_flight.entry(consumer).or_insert(0) += 1;
                self.n_in_flight += 1;
            }
            EState::Blocked => self.n_blocked += 1,
        }
        if !matches!(st, EState::InFlight { .. }) {
            self.unleased_bytes += u64::from(size);
        }
        queued
    }

    /// Unindexes an entry that was in state `st`; `queued` says where its lease's timer is.
    /// The entry must already be gone or in its new state, so that a queued lease of it reads
    /// as ended.
    fn detach(&mut self, timers: &mut Timers, k: Timer, st: EState, size: u32, queued: bool) {
        let p = k.part as usize;
        match st {
            EState::Ready => {
                self.parts[p].ready.remove(k.off);
                if self.parts[p].ready.is_empty() {
                    self.nonempty.remove(k.part);
                }
                self.n_ready -= 1;
            }
            EState::Waiting(at) => {
                timers.set.remove(&Timer { at, ..k });
                self.n_waiting -= 1;
            }
            EState::InFlight {
                until, consumer, ..
            } => {
                if queued {
                    // Left in the queue; dropped once it reaches the front, as leases are
                    // mostly acked in the order they were granted.
                    self.leases.ended();
                    self.drop_ended_leases();
                } else {
                    timers.set.remove(&Timer { at: until, ..k });
                }
                // The entry stays at zero rather than being removed: a consumer in a steady
                // receive-ack loop would otherwise delete and re-create it on every message.
                // Entries are bounded by the number of consumers.
                if let Some(n) = self.in_flight.get_mut(&consumer) {
                    *n -= 1;
                }
                self.n_in_flight -= 1;
            }
            EState::Blocked => self.n_blocked -= 1,
        }
        if !matches!(st, EState::InFlight { .. }) {
            self.unleased_bytes -= u64::from(size);
        }
    }

    pub fn insert(&mut self, timers: &mut Timers, k: Timer, mut entry: Entry) {
        entry.lease_queued = self.attach(timers, k, entry.state, entry.size);
        self.parts[k.part as usize].entries.insert(k.off, entry);
        self.compact_leases_if_needed();
    }

    /// Moves an entry to a new state, keeping every index in step. Returns false if there is
    /// no such entry.
    pub fn set_state(&mut self, timers: &mut Timers, k: Timer, new: EState) -> bool {
        let Some(e) = self.parts[k.part as usize].entries.get_mut(k.off) else {
            return false;
        };
        let (old, size, queued) = (e.state, e.size, e.lease_queued);
        if old == new {
            // Unindexing and indexing again would leave every index as it is.
            return true;
        }
        e.state = new;
        e.lease_queued = false;
        self.detach(timers, k, old, size, queued);
        let queued = self.attach(timers, k, new, size);
        if let Some(e) = self.parts[k.part as usize].entries.get_mut(k.off) {
            e.lease_queued = queued;
        }
        self.compact_leases_if_needed();
        true
    }

    pub fn take(&mut self, timers: &mut Timers, k: Timer) -> Option<Entry> {
        let e = self.parts[k.part as usize].entries.remove(k.off)?;
        self.detach(timers, k, e.state, e.size, e.lease_queued);
        Some(e)
    }

    /// Drops ended leases from the front of the lease queue, so that its front is live.
    pub fn drop_ended_leases(&mut self) {
        while let Some(l) = self.leases.front() {
            if lease_is_live(&self.parts, l) {
                break;
            }
            self.leases.pop_front();
        }
    }

    fn compact_leases_if_needed(&mut self) {
        if self.leases.needs_compaction() {
            let parts = &self.parts;
            self.leases.retain(|l| lease_is_live(parts, l));
        }
    }

    pub fn entry(&self, part: u32, off: u64) -> Option<&Entry> {
        self.parts.get(part as usize)?.entries.get(off)
    }

    pub fn entry_mut(&mut self, part: u32, off: u64) -> Option<&mut Entry> {
        self.parts.get_mut(part as usize)?.entries.get_mut(off)
    }

    /// The next ready message, rotating over partitions.
    pub fn next_ready(&self) -> Option<(u32, u64)> {
        let p = self.nonempty.first_from(self.rr)?;
        let off = self.parts[p as usize].ready.first()?;
        Some((p, off))
    }
}

/// Whether a queued lease has not ended: its entry is still leased with this deadline and
/// token, and its timer is in the queue.
fn lease_is_live(parts: &[Part], l: &QueuedLease) -> bool {
    parts[l.part as usize].entries.get(l.off).is_some_and(|e| {
        e.lease_queued
            && matches!(e.state, EState::InFlight { until, token, .. }
                if until == l.until && token == l.token)
    })
}

#[cfg(test)]
mod tests {
    use super::PartitionSet;

    #[test]
    fn partition_set_finds_the_next_member_with_wrap_around() {
        let mut s = PartitionSet::new(130);
        assert_eq!(s.first_from(0), None);
        for p in [3, 64, 129] {
            s.insert(p);
        }
        assert_eq!(s.first_from(0), Some(3));
        assert_eq!(s.first_from(3), Some(3));
        assert_eq!(s.first_from(4), Some(64));
        assert_eq!(s.first_from(65), Some(129));
        assert_eq!(s.first_from(130 - 1), Some(129));
        s.remove(129);
        assert_eq!(s.first_from(65), Some(3), "wraps around to the start");
        s.remove(3);
        s.remove(64);
        assert_eq!(s.first_from(7), None);
        let mut one = PartitionSet::new(1);
        one.insert(0);
        assert_eq!(one.first_from(0), Some(0));
    }
}
