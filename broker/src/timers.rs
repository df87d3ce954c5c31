//! Timers: every deadline the broker waits for, fired in one global order.
//!
//! Waits (delays, retry backoff, a refused dead-letter's retry) and times to live are kept in
//! one ordered set. Lease deadlines are by far the most common timers (one per explicit-ack
//! delivery) and almost never fire: the ack comes first. A lease ends at the receive's time plus
//! the visibility timeout, so a subscription's leases are nearly always granted in deadline
//! order. They are therefore appended to a per-subscription queue ([`LeaseQueue`]) and left there
//! when the lease ends (lazy deletion) instead of being inserted into and removed from the set;
//! a lease granted out of order goes to the set instead. The broker still fires every timer in
//! (deadline, destination, group, partition, offset) order: it takes the earlier of the set's
//! first timer and the live fronts of the subscriptions' queues.

use std::collections::{BTreeSet, VecDeque};

use crate::time::Time;

/// A timer: an entry's wait or lease ending, or (with `group == TTL_GROUP`) a message's time to
/// live running out. Ordered by time first, so the broker fires timers in one global order
/// whatever the moments at which it is asked to catch up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Timer {
    pub at: Time,
    pub dest: u32,
    pub group: u32,
    pub part: u32,
    pub off: u64,
}

pub(crate) const TTL_GROUP: u32 = u32::MAX;

/// The broker-wide timers: the ordered set, and a lower bound on the deadlines queued in the
/// subscriptions' [`LeaseQueue`]s, so that a command need not look at the queues until a lease
/// may be due.
#[derive(Debug)]
pub(crate) struct Timers {
    pub set: BTreeSet<Timer>,
    /// No lease queued in any subscription ends before this.
    pub leases_due: Time,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            set: BTreeSet::new(),
            leases_due: Time::MAX,
        }
    }
}

/// One lease as queued: its deadline, its message and its token, which tells a live lease from
/// an ended one for the same message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueuedLease {
    pub until: Time,
    pub part: u32,
    pub off: u64,
    pub token: u64,
}

impl QueuedLease {
    /// The order the broker fires timers in, within one subscription.
    fn key(&self) -> (Time, u32, u64) {
        (self.until, self.part, self.off)
    }
}

/// A subscription's leases in firing order, with ended ones left in place until they reach the
/// front or the queue is compacted.
#[derive(Debug, Default)]
pub(crate) struct LeaseQueue {
    items: VecDeque<QueuedLease>,
    /// Leases in `items` that have not ended.
    live: usize,
}

/// Ended leases a queue may hold beyond its live ones before it is compacted: at most
/// `live + SLACK` ended ones, so a queue never holds more than twice its live leases plus this.
const SLACK: usize = 64;

impl LeaseQueue {
    /// Appends `lease` if it fires no earlier than the last one queued; returns false (and
    /// queues nothing) otherwise, and the caller keeps the lease in the set.
    pub fn push(&mut self, lease: QueuedLease) -> bool {
        if self.items.back().is_some_and(|b| b.key() > lease.key()) {
            return false;
        }
        self.items.push_back(lease);
        self.live += 1;
        true
    }

    /// A queued lease ended (acked, given back, expired, extended or dropped).
    pub fn ended(&mut self) {
        self.live -= 1;
    }

    pub fn front(&self) -> Option<&QueuedLease> {
        self.items.front()
    }

    pub fn pop_front(&mut self) -> Option<QueuedLease> {
        self.items.pop_front()
    }

    /// Whether enough ended leases have piled up (behind a live one at the front) that the
    /// queue should be compacted.
    pub fn needs_compaction(&self) -> bool {
        self.items.len() > 2 * self.live + SLACK
    }

    /// Keeps only the leases `live` says have not ended, in order.
    pub fn retain(&mut self, live: impl FnMut(&QueuedLease) -> bool) {
        self.items.retain(live);
    }
}

#[cfg(test)]
mod tests {
    use super::{LeaseQueue, QueuedLease};
    use crate::time::Time;

    fn lease(until_ms: u64, part: u32, off: u64) -> QueuedLease {
        QueuedLease {
            until: Time::from_ms(until_ms),
            part,
            off,
            token: off,
        }
    }

    #[test]
    fn a_lease_out_of_firing_order_is_refused() {
        let mut q = LeaseQueue::default();
        assert!(q.push(lease(10, 0, 5)));
        assert!(q.push(lease(10, 0, 6)));
        assert!(!q.push(lease(10, 0, 4)), "same deadline, lower offset");
        assert!(!q.push(lease(9, 1, 9)), "earlier deadline");
        assert!(q.push(lease(10, 1, 0)), "same deadline, higher partition");
        assert!(q.push(lease(11, 0, 0)));
        assert_eq!(q.items.len(), 4);
    }
}
