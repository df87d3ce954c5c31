//! The counts a run reports, computed from its history alone.
//!
//! This is deliberately small: the totals Jepsen's `total-queue` reports, enough for the
//! integration tests to assert no loss, some loss, and indeterminate publishes. Full checkers
//! (order, lease exclusivity, dead-letter exactness, timing) are a later issue.
//!
//! Definitions, per message (harness id) and subscription (a queue, or one group of a topic):
//!
//! * **published**: messages with at least one publish attempt; **confirmed**: at least one
//!   attempt `ok`; **indeterminate**: none `ok` and at least one `info`; **failed**: every
//!   attempt `fail`.
//! * **delivered**: messages delivered at least once, anywhere; **deliveries**: all deliveries.
//! * **completed** (per message and subscription): acknowledged (an `ok` ack, or the broker's
//!   own ack event, which covers acks whose answer was lost), or, under auto acks, its effect
//!   applied.
//! * **dead-lettered**, **expired**, **dropped** (per message and subscription): the broker
//!   reported it.
//! * **lost**: confirmed messages that, for some subscription of their destination, were
//!   never completed, dead-lettered, expired or dropped. Under auto acks a message whose
//!   processing failed or crashed is lost: that is at-most-once.
//! * **recovered**: indeterminate messages that were seen afterwards (delivered, or reported by
//!   the broker): they were stored after all.
//! * **duplicates**: deliveries beyond the first per message and subscription (expected under
//!   at-least-once); **duplicate effects**: effects applied beyond the first (an error under
//!   exactly-once).
//! * **unexpected**: deliveries of messages nobody published (should be zero).

use mqsim_broker::AckMode;
use serde::Serialize;

use super::dense::{BrokerIds, IdTable};
use super::history::{BrokerEvent, Completion, Entry, History, Op, What};
use super::ids::NO_MSG;
use super::plan::{Plan, Process, SubIndex};
use super::spec::ClusterSpec;

/// How many lost ids a summary lists.
const LOST_IDS_SHOWN: usize = 20;

/// Totals of one run; see the module documentation for each definition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub published: u64,
    pub confirmed: u64,
    pub failed: u64,
    pub indeterminate: u64,
    /// Publish attempts that ended `info`, whatever became of their message.
    pub indeterminate_attempts: u64,
    pub delivered: u64,
    pub deliveries: u64,
    pub completed: u64,
    pub dead_lettered: u64,
    pub expired: u64,
    pub dropped: u64,
    pub lost: u64,
    pub recovered: u64,
    pub duplicates: u64,
    pub duplicate_effects: u64,
    pub unexpected: u64,
    /// The first lost message ids, for a failure message.
    pub lost_ids: Vec<u64>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Publish {
    /// Whether any record named this message as published.
    seen: bool,
    destination: u16,
    ok: bool,
    info: bool,
}

#[derive(Debug, Default, Clone, Copy)]
struct PerSub {
    deliveries: u32,
    effects: u32,
    completed: bool,
    discarded: Option<BrokerEvent>,
}

impl Summary {
    /// The totals of `history`, a run of `spec`.
    pub fn of(history: &History, plan: &Plan, spec: &ClusterSpec) -> Summary {
        Summary::with_ids(history, plan, spec, &history.broker_ids())
    }

    /// [`Summary::of`], given the history's [`History::broker_ids`].
    pub fn with_ids(
        history: &History,
        plan: &Plan,
        spec: &ClusterSpec,
        ids: &BrokerIds,
    ) -> Summary {
        let mut counter = Counter::new(plan, spec);
        for (i, e) in history.entries().iter().enumerate() {
            counter.add(i, e, ids);
        }
        counter.finish()
    }
}

/// Counts a history entry by entry, in recording order: what [`Summary::with_ids`] does, and
/// what the history file's writer thread does as the entries reach it.
#[derive(Debug)]
pub(crate) struct Counter<'a> {
    plan: &'a Plan,
    /// Per process, whether it is a consumer under auto acks.
    auto: Vec<bool>,
    s: Summary,
    publishes: IdTable<Publish>,
    subs: IdTable<PerSub>,
    /// The subscription of each ack invoke (plus one; 0 is none), by entry index.
    ack_subs: IdTable<u32>,
}

impl<'a> Counter<'a> {
    pub(crate) fn new(plan: &'a Plan, spec: &ClusterSpec) -> Self {
        let auto = (0..plan.processes.len())
            .map(|p| {
                plan.consumer(p as Process)
                    .and_then(|c| spec.consumers.get(c.spec))
                    .is_some_and(|c| c.ack_mode == AckMode::Auto)
            })
            .collect();
        Counter {
            plan,
            auto,
            s: Summary::default(),
            publishes: IdTable::new(32, 1),
            subs: IdTable::new(32, plan.subs.len()),
            ack_subs: IdTable::new(32, 1),
        }
    }

    /// Counts entry number `index`, `e`. Broker ids resolve through `ids`, which must give
    /// what the finished history's [`History::broker_ids`] gives for this entry.
    pub(crate) fn add(&mut self, index: usize, e: &Entry, ids: &BrokerIds) {
        let s = &mut self.s;
        let (publishes, subs) = (&mut self.publishes, &mut self.subs);
        match e.what {
            What::Invoke {
                op: Op::Publish,
                msg,
                ..
            } => {
                let p = publishes.entry(msg, 0);
                if !p.seen {
                    p.seen = true;
                    p.destination = self
                        .plan
                        .producer(e.process)
                        .map_or(u16::MAX, |p| p.destination);
                }
            }
            What::Invoke {
                op: Op::Ack, sub, ..
            } => {
                *self.ack_subs.entry(index as u64, 0) = u32::from(sub) + 1;
            }
            What::Ok {
                op: Op::Publish,
                msg,
                ..
            } => {
                let p = publishes.entry(msg, 0);
                p.seen = true;
                p.ok = true;
            }
            What::Failed {
                op: Op::Publish,
                msg,
                completion: Completion::Info,
                ..
            } => {
                s.indeterminate_attempts += 1;
                let p = publishes.entry(msg, 0);
                p.seen = true;
                p.info = true;
            }
            What::Ok {
                op: Op::Ack,
                msg,
                invoke,
                ..
            } => {
                // An ack's completion names its invoke, an ack invoke (the completion takes
                // its op from it).
                if let Some(&sub) = self.ack_subs.get(u64::from(invoke), 0)
                    && sub != 0
                {
                    subs.entry(msg, (sub - 1) as usize).completed = true;
                }
            }
            What::Deliver { msg, sub, .. } => {
                s.deliveries += 1;
                if msg == NO_MSG || !publishes.get(msg, 0).is_some_and(|p| p.seen) {
                    s.unexpected += 1;
                }
                subs.entry(msg, usize::from(sub)).deliveries += 1;
            }
            What::Effect { msg, sub, applied } => {
                let auto = self
                    .auto
                    .get(usize::from(e.process))
                    .copied()
                    .unwrap_or(false);
                let per = subs.entry(msg, usize::from(sub));
                if applied {
                    per.effects += 1;
                }
                if auto {
                    per.completed = true;
                }
            }
            What::Broker {
                event,
                msg,
                broker_msg,
                sub,
                ..
            } => {
                let msg = if msg == NO_MSG {
                    ids.get(broker_msg).unwrap_or(NO_MSG)
                } else {
                    msg
                };
                if event == BrokerEvent::Acked {
                    subs.entry(msg, usize::from(sub)).completed = true;
                } else if event.is_final_discard() {
                    subs.entry(msg, usize::from(sub)).discarded = Some(event);
                }
            }
            _ => {}
        }
    }

    /// The totals of everything counted.
    pub(crate) fn finish(self) -> Summary {
        let Counter {
            plan,
            mut s,
            publishes,
            subs,
            ..
        } = self;
        // Per message: bit 0 delivered somewhere, bit 1 seen (delivered or discarded).
        let mut flags: IdTable<u8> = IdTable::new(32, 1);
        for (msg, _, per) in subs.iter() {
            if per.deliveries > 0 {
                *flags.entry(msg, 0) |= 1;
            }
            if per.deliveries > 0 || per.discarded.is_some() {
                *flags.entry(msg, 0) |= 2;
            }
            s.duplicates += u64::from(per.deliveries.saturating_sub(1));
            s.duplicate_effects += u64::from(per.effects.saturating_sub(1));
            s.completed += u64::from(per.completed);
            match per.discarded {
                Some(BrokerEvent::DeadLettered) => s.dead_lettered += 1,
                Some(BrokerEvent::Expired) => s.expired += 1,
                Some(_) => s.dropped += 1,
                None => {}
            }
        }
        s.delivered = flags.iter().filter(|(_, _, f)| **f & 1 != 0).count() as u64;
        let mut lost_ids = Vec::new();
        for (msg, _, p) in publishes.iter() {
            if !p.seen {
                continue;
            }
            s.published += 1;
            if p.ok {
                s.confirmed += 1;
                let finished = |sub: &SubIndex| {
                    subs.get(msg, usize::from(*sub))
                        .is_some_and(|x| x.completed || x.discarded.is_some())
                };
                if !plan.subs_of(p.destination).iter().all(finished) {
                    s.lost += 1;
                    lost_ids.push(msg);
                }
            } else if p.info {
                s.indeterminate += 1;
                s.recovered += u64::from(flags.get(msg, 0).is_some_and(|f| f & 2 != 0));
            } else {
                s.failed += 1;
            }
        }
        // The table lists ids it could not keep densely last; the summary lists the lowest.
        lost_ids.sort_unstable();
        lost_ids.truncate(LOST_IDS_SHOWN);
        s.lost_ids = lost_ids;
        s
    }
}
