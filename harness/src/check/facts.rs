//! One pass over a history that indexes it by message: what each publish did, and each
//! message's entries in recording order (its *timeline*), which the checkers walk.

use crate::sim::dense::{BrokerIds, IdTable};
use crate::sim::history::{BrokerEvent, Completion, Entry, History, NO_KEY, Op, Phase, What};
use crate::sim::ids::NO_MSG;
use crate::sim::plan::{NO_SUB, Plan, Process, SubIndex};

/// Marks "no entry".
pub const NONE: u32 = u32::MAX;

/// What the history says about one message's publishing.
#[derive(Debug, Clone, Copy)]
pub struct Msg {
    /// The harness id.
    pub id: u64,
    /// The producer that published it, or `Process::MAX` if none did.
    pub producer: Process,
    /// Its destination number, or `u16::MAX`.
    pub destination: u16,
    /// Its key, or [`NO_KEY`].
    pub key: u32,
    /// The first publish invoke, or [`NONE`].
    pub invoke: u32,
    /// The first `ok` of a publish, or [`NONE`].
    pub ok: u32,
    /// Publish attempts, and those that definitely failed.
    pub attempts: u32,
    pub fails: u32,
    /// Whether an attempt ended indeterminate.
    pub info: bool,
    /// Whether a delivery said it is poison.
    pub poison: bool,
    /// Whether anything showed it stored: a delivery or a broker event.
    pub seen: bool,
}

impl Msg {
    /// Confirmed: at least one attempt `ok`.
    pub fn confirmed(&self) -> bool {
        self.ok != NONE
    }

    /// Every attempt definitely failed: it was never stored.
    pub fn aborted(&self) -> bool {
        self.attempts > 0 && self.fails == self.attempts
    }
}

/// A history indexed by message.
pub struct Facts<'h> {
    pub plan: &'h Plan,
    pub entries: &'h [Entry],
    /// Broker id to harness id.
    pub ids: BrokerIds,
    /// Messages in order of first appearance.
    pub msgs: Vec<Msg>,
    /// Entries of message `i` are `timeline[start[i]..start[i + 1]]`.
    start: Vec<u32>,
    timeline: Vec<u32>,
    /// Entries that name a message the harness cannot identify (a foreign payload).
    pub foreign: Vec<u32>,
    /// Publish attempts refused because the destination was full: the `fail` entries.
    pub rejections: Vec<u32>,
    /// Broker events of drop-head overflow drops.
    pub overflow_drops: Vec<u32>,
    /// The entry saying the drain timed out, if one does.
    pub drain_timed_out: Option<u32>,
}

impl<'h> Facts<'h> {
    /// Indexes `history`.
    pub fn new(history: &'h History, plan: &'h Plan) -> Facts<'h> {
        let entries = history.entries();
        let ids = history.broker_ids();
        let mut index: IdTable<u32> = IdTable::new(32, 1);
        let mut msgs: Vec<Msg> = Vec::new();
        // Per entry, its message's index plus one (0: none), filled in the first pass so the
        // second pass (bucketing) need not look ids up again.
        let mut of_entry: Vec<u32> = vec![0; entries.len()];
        let mut foreign = Vec::new();
        let mut rejections = Vec::new();
        let mut overflow_drops = Vec::new();
        let mut drain_timed_out = None;
        let full = |h: &History, error: u32| is_full_rejection(h.string(error));
        for (i, e) in entries.iter().enumerate() {
            let i = i as u32;
            if let What::Broker {
                event: BrokerEvent::DroppedOverflow,
                ..
            } = e.what
            {
                overflow_drops.push(i);
            }
            let Some(id) = message_of(e, &ids) else {
                match e.what {
                    What::Deliver { .. } => foreign.push(i),
                    What::Broker { event, .. } if event.is_final_discard() => foreign.push(i),
                    What::Phase {
                        phase: Phase::DrainTimedOut,
                    } => drain_timed_out = Some(i),
                    _ => {}
                }
                continue;
            };
            let slot = index.entry(id, 0);
            if *slot == 0 {
                msgs.push(Msg {
                    id,
                    producer: Process::MAX,
                    destination: u16::MAX,
                    key: NO_KEY,
                    invoke: NONE,
                    ok: NONE,
                    attempts: 0,
                    fails: 0,
                    info: false,
                    poison: false,
                    seen: false,
                });
                *slot = msgs.len() as u32;
            }
            let m = *slot;
            of_entry[i as usize] = m;
            let msg = &mut msgs[m as usize - 1];
            match e.what {
                What::Invoke {
                    op: Op::Publish,
                    key,
                    ..
                } => {
                    msg.attempts += 1;
                    if msg.invoke == NONE {
                        msg.invoke = i;
                        msg.producer = e.process;
                        msg.key = key;
                        msg.destination =
                            plan.producer(e.process).map_or(u16::MAX, |p| p.destination);
                    }
                }
                What::Ok {
                    op: Op::Publish, ..
                } if msg.ok == NONE => msg.ok = i,
                What::Failed {
                    op: Op::Publish,
                    completion,
                    error,
                    ..
                } => match completion {
                    Completion::Info => msg.info = true,
                    _ => {
                        msg.fails += 1;
                        if full(history, error) {
                            rejections.push(i);
                        }
                    }
                },
                What::Deliver { poison, .. } => {
                    msg.seen = true;
                    msg.poison |= poison;
                }
                What::Broker { .. } => msg.seen = true,
                _ => {}
            }
        }
        // Bucket the entries by message, keeping recording order within a message.
        let mut start = vec![0u32; msgs.len() + 1];
        for &m in &of_entry {
            if m != 0 {
                start[m as usize] += 1;
            }
        }
        for k in 1..start.len() {
            start[k] += start[k - 1];
        }
        let mut fill = start.clone();
        let mut timeline = vec![0u32; start.last().copied().unwrap_or(0) as usize];
        for (i, &m) in of_entry.iter().enumerate() {
            if m != 0 {
                let slot = &mut fill[m as usize - 1];
                timeline[*slot as usize] = i as u32;
                *slot += 1;
            }
        }
        Facts {
            plan,
            entries,
            ids,
            msgs,
            start,
            timeline,
            foreign,
            rejections,
            overflow_drops,
            drain_timed_out,
        }
    }

    /// The entries of message number `m` (an index into `msgs`), in recording order.
    pub fn timeline(&self, m: usize) -> &[u32] {
        &self.timeline[self.start[m] as usize..self.start[m + 1] as usize]
    }

    /// The partition message number `m` went to, from its confirm or its first delivery or
    /// broker event.
    pub fn partition(&self, m: usize) -> Option<u32> {
        let dest = self.msgs[m].destination;
        let own = |sub: SubIndex| dest != u16::MAX && self.plan.subs_of(dest).contains(&sub);
        self.timeline(m)
            .iter()
            .find_map(|&i| match self.entries[i as usize].what {
                What::Ok {
                    op: Op::Publish,
                    partition,
                    ..
                } => Some(partition),
                What::Deliver { partition, sub, .. } | What::Broker { partition, sub, .. }
                    if own(sub) =>
                {
                    Some(partition)
                }
                _ => None,
            })
    }

    /// The time of entry `i`.
    pub fn at(&self, i: u32) -> u64 {
        self.entries[i as usize].at_ns
    }

    /// The subscription entry `i` concerns, or [`NO_SUB`].
    pub fn sub_of(&self, i: u32) -> SubIndex {
        match self.entries[i as usize].what {
            What::Invoke { sub, .. }
            | What::Deliver { sub, .. }
            | What::Effect { sub, .. }
            | What::Broker { sub, .. } => sub,
            What::Ok { invoke, .. } | What::Failed { invoke, .. } => {
                match self.entries.get(invoke as usize).map(|e| e.what) {
                    Some(What::Invoke { sub, .. }) => sub,
                    _ => NO_SUB,
                }
            }
            _ => NO_SUB,
        }
    }

    /// The time the receive behind delivery entry `i` was invoked: the broker delivered no
    /// earlier.
    pub fn receive_invoked_at(&self, i: u32) -> u64 {
        match self.entries[i as usize].what {
            What::Deliver { invoke, .. } => self
                .entries
                .get(invoke as usize)
                .map_or(0, |e| e.at_ns.min(self.at(i))),
            _ => self.at(i),
        }
    }
}

/// The harness message an entry concerns, if any.
fn message_of(e: &Entry, ids: &BrokerIds) -> Option<u64> {
    let msg = match e.what {
        What::Invoke { msg, .. }
        | What::Ok { msg, .. }
        | What::Failed { msg, .. }
        | What::Deliver { msg, .. }
        | What::Effect { msg, .. } => msg,
        What::Broker {
            msg, broker_msg, ..
        } => {
            if msg == NO_MSG && broker_msg != NO_MSG {
                ids.get(broker_msg).unwrap_or(NO_MSG)
            } else {
                msg
            }
        }
        What::Nemesis { .. } | What::Phase { .. } => NO_MSG,
    };
    (msg != NO_MSG).then_some(msg)
}

/// Whether a publish's error says the destination was full (the broker's `Overflow` error).
pub fn is_full_rejection(error: &str) -> bool {
    error.contains(" is full (") && error.ends_with("publish rejected")
}
