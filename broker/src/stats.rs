//! Read-only statistics: depth, leases, delays, dead letters, lag and age.

use serde::{Deserialize, Serialize};

use crate::config::DestinationKind;
use crate::state::State;
use crate::time::Time;

/// A snapshot of one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationStats {
    /// Its name.
    pub name: String,
    /// Queue or topic.
    pub kind: DestinationKind,
    /// Messages counted against `max_length` (see [`crate::DestinationConfig::max_length`]).
    pub depth: u64,
    /// Payload bytes counted against `max_bytes`.
    pub depth_bytes: u64,
    /// Messages kept in the log: for a topic, including those every group has consumed.
    pub retained: u64,
    /// Per subscription: the queue's one, or each consumer group of a topic.
    pub groups: Vec<GroupStats>,
    /// Depth of the dead-letter queue, if the destination has one.
    pub dead_letter_depth: Option<u64>,
}

/// A snapshot of one subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupStats {
    /// The group's name; `None` for a queue.
    pub name: Option<String>,
    /// Deliverable now.
    pub ready: u64,
    /// Waiting for a delay or a retry backoff.
    pub delayed: u64,
    /// Leased to consumers.
    pub in_flight: u64,
    /// Behind the head of their FIFO group.
    pub blocked: u64,
    /// Per partition, messages not yet consumed by this group.
    pub pending: Vec<u64>,
    /// Per partition, the committed offset: the lowest offset the group has not consumed.
    pub committed: Vec<u64>,
    /// Per partition, the log end minus the committed offset (Kafka's consumer lag).
    pub lag: Vec<u64>,
    /// Milliseconds since the oldest message not yet consumed was published.
    pub oldest_age_ms: Option<u64>,
}

impl State {
    pub fn stats(&self, now: Time, d: usize) -> DestinationStats {
        let dest = &self.dests[d];
        let (depth, depth_bytes) = dest.length();
        let groups = dest
            .subs
            .iter()
            .map(|sub| {
                let mut g = GroupStats {
                    name: sub.name.clone(),
                    ready: sub.n_ready,
                    delayed: sub.n_waiting,
                    in_flight: sub.n_in_flight,
                    blocked: sub.n_blocked,
                    pending: Vec::new(),
                    committed: Vec::new(),
                    lag: Vec::new(),
                    oldest_age_ms: None,
                };
                let mut oldest: Option<Time> = None;
                for (p, part) in sub.parts.iter().enumerate() {
                    let end = dest.log[p].end();
                    let committed = part.entries.first_offset().unwrap_or(end);
                    g.pending.push(part.entries.len() as u64);
                    g.committed.push(committed);
                    g.lag.push(end - committed);
                    if let Some(m) = dest.log[p].get(committed) {
                        oldest = Some(oldest.map_or(m.published_at, |o| o.min(m.published_at)));
                    }
                }
                g.oldest_age_ms = oldest.map(|t| now.ms_since(t));
                g
            })
            .collect();
        DestinationStats {
            name: dest.cfg.name.clone(),
            kind: dest.cfg.kind,
            depth,
            depth_bytes,
            retained: dest.log.iter().map(|l| l.live).sum(),
            groups,
            dead_letter_depth: dest.dlq.map(|t| self.dests[t.0 as usize].length().0),
        }
    }
}
