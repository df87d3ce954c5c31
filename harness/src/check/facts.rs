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
    /// The times of `invoke` and `ok` (0 when absent), kept here so that later checks need
    /// not go back to the entries.
    pub invoke_ns: u64,
    pub ok_ns: u64,
    /// Publish attempts, and those that definitely failed.
    pub attempts: u32,
    pub fails: u32,
    /// Whether an attempt ended indeterminate.
    pub info: bool,
    /// Whether a delivery said it is poison.
    pub poison: bool,
    /// Whether anything showed it stored: a delivery or a broker event.
    pub seen: bool,
    /// The partition it went to, from its confirm or else its first delivery or broker event
    /// in its own destination; [`NONE`] when unknown.
    pub partition: u32,
    /// The earliest instant it may have stopped being ready in its own destination: the
    /// invoke of the first receive that got it, or the first broker event about it
    /// (`u64::MAX`: never).
    pub left_ns: u64,
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
    /// Message `m`'s first entry, and each entry's next entry of the same message ([`NONE`]
    /// at the end): the timelines as chains through one array of four bytes an entry, built
    /// in the first pass, rather than several per-entry arrays and a bucketing pass (at a
    /// million entries, each fresh per-entry array costs its page faults on every check).
    head: Vec<u32>,
    next: Vec<u32>,
    /// Entries that name a message the harness cannot identify (a foreign payload).
    pub foreign: Vec<u32>,
    /// Publish attempts refused because the destination was full: the `fail` entries.
    pub rejections: Vec<u32>,
    /// Broker events of drop-head overflow drops.
    pub overflow_drops: Vec<u32>,
    /// The entry saying the drain timed out, if one does.
    pub drain_timed_out: Option<u32>,
    /// Receives whose outcome is unknown (the `info` entries): the broker may have leased
    /// messages to them that the history never shows delivered.
    pub uncertain_receives: Vec<u32>,
}

impl<'h> Facts<'h> {
    /// Indexes `history`.
    pub fn new(history: &'h History, plan: &'h Plan) -> Facts<'h> {
        let entries = history.entries();
        // Broker ids are learnt as the entries go by (from confirms, deliveries and the
        // broker events that carry a payload), which resolves nearly every event that names
        // only a broker id; the few that come before any record of their message wait in
        // `late` until the whole history has been read. One pass over the entries instead of
        // two.
        let mut ids = BrokerIds::default();
        let mut late = Vec::new();
        let mut index: IdTable<u32> = IdTable::new(32, 1);
        // Room for as many messages as a complete history can have (each has a publish invoke
        // and its completion), so that the table is never copied to grow: at 739,050 entries
        // the copies cost about a quarter of this pass (benches/checkers.md). Room that is not
        // used is never touched, so it costs address space, not memory. A hand-written
        // history with more messages than that grows the table as usual.
        let most_msgs = entries.len() / 2;
        let mut p = Pass {
            history,
            entries,
            plan,
            msgs: Vec::with_capacity(most_msgs),
            head: Vec::with_capacity(most_msgs),
            tail: Vec::new(),
            next: vec![NONE; entries.len()],
            rejections: Vec::new(),
        };
        let mut foreign = Vec::new();
        let mut overflow_drops = Vec::new();
        let mut drain_timed_out = None;
        let mut uncertain_receives = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let i = i as u32;
            match e.what {
                What::Ok {
                    op: Op::Publish,
                    msg,
                    broker_msg,
                    ..
                }
                | What::Deliver {
                    msg, broker_msg, ..
                }
                | What::Broker {
                    msg, broker_msg, ..
                } if msg != NO_MSG && broker_msg != NO_MSG => ids.insert(broker_msg, msg),
                _ => {}
            }
            if let What::Broker {
                event: BrokerEvent::DroppedOverflow,
                ..
            } = e.what
            {
                overflow_drops.push(i);
            }
            let Some(id) = message_of(e, &ids) else {
                match e.what {
                    What::Broker {
                        msg: NO_MSG,
                        broker_msg,
                        ..
                    } if broker_msg != NO_MSG => late.push(i),
                    What::Deliver { .. } => foreign.push(i),
                    What::Broker { event, .. } if event.is_final_discard() => foreign.push(i),
                    What::Phase {
                        phase: Phase::DrainTimedOut,
                    } => drain_timed_out = Some(i),
                    What::Failed {
                        op: Op::Receive,
                        completion: Completion::Info,
                        ..
                    } => uncertain_receives.push(i),
                    _ => {}
                }
                continue;
            };
            p.note(&mut index, id, e, i);
        }
        for i in late {
            let e = &entries[i as usize];
            match message_of(e, &ids) {
                Some(id) => p.note(&mut index, id, e, i),
                None => {
                    if matches!(e.what, What::Broker { event, .. } if event.is_final_discard()) {
                        foreign.push(i);
                    }
                }
            }
        }
        let Pass {
            msgs,
            head,
            next,
            rejections,
            ..
        } = p;
        Facts {
            plan,
            entries,
            ids,
            msgs,
            head,
            next,
            foreign,
            rejections,
            overflow_drops,
            drain_timed_out,
            uncertain_receives,
        }
    }

    /// The entries of message number `m` (an index into `msgs`), in recording order.
    pub fn timeline(&self, m: usize) -> Timeline<'_> {
        Timeline {
            next: &self.next,
            at: self.head.get(m).copied().unwrap_or(NONE),
        }
    }

    /// The first entry of message `m`, or [`NONE`].
    pub fn first(&self, m: usize) -> u32 {
        self.head.get(m).copied().unwrap_or(NONE)
    }

    /// The entry after entry `i` in its message's timeline, or [`NONE`].
    pub fn next_at(&self, i: usize) -> u32 {
        self.next.get(i).copied().unwrap_or(NONE)
    }

    /// The subscription entry `i` concerns, or [`NO_SUB`].
    pub fn sub_at(&self, i: u32) -> SubIndex {
        sub_of(self.entries, i)
    }

    /// The time of entry `i`.
    pub fn at(&self, i: u32) -> u64 {
        self.entries[i as usize].at_ns
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

/// What the first pass over the entries builds.
struct Pass<'h> {
    history: &'h History,
    entries: &'h [Entry],
    plan: &'h Plan,
    msgs: Vec<Msg>,
    /// Per message, its first and last entry so far; per entry, the next of its message.
    head: Vec<u32>,
    tail: Vec<u32>,
    next: Vec<u32>,
    rejections: Vec<u32>,
}

impl Pass<'_> {
    /// Appends entry `i` to message `m`'s chain, in recording order: entries come in order but
    /// for the few resolved after the pass, which are inserted where they belong.
    fn link(&mut self, m: usize, i: u32) {
        let last = self.tail[m];
        if last == NONE {
            self.head[m] = i;
            self.tail[m] = i;
        } else if last < i {
            self.next[last as usize] = i;
            self.tail[m] = i;
        } else {
            let (mut prev, mut at) = (NONE, self.head[m]);
            while at != NONE && at < i {
                prev = at;
                at = self.next[at as usize];
            }
            self.next[i as usize] = at;
            if prev == NONE {
                self.head[m] = i;
            } else {
                self.next[prev as usize] = i;
            }
        }
    }

    /// Records that entry `i` concerns message `id`.
    fn note(&mut self, index: &mut IdTable<u32>, id: u64, e: &Entry, i: u32) {
        let slot = index.entry(id, 0);
        if *slot == 0 {
            self.msgs.push(Msg {
                id,
                producer: Process::MAX,
                destination: u16::MAX,
                key: NO_KEY,
                invoke: NONE,
                ok: NONE,
                invoke_ns: 0,
                ok_ns: 0,
                attempts: 0,
                fails: 0,
                info: false,
                poison: false,
                seen: false,
                partition: NONE,
                left_ns: u64::MAX,
            });
            *slot = self.msgs.len() as u32;
            self.head.push(NONE);
            self.tail.push(NONE);
        }
        let m = *slot;
        self.link(m as usize - 1, i);
        let plan = self.plan;
        let msg = &mut self.msgs[m as usize - 1];
        match e.what {
            What::Invoke {
                op: Op::Publish,
                key,
                ..
            } => {
                msg.attempts += 1;
                if msg.invoke == NONE {
                    msg.invoke = i;
                    msg.invoke_ns = e.at_ns;
                    msg.producer = e.process;
                    msg.key = key;
                    msg.destination = plan.producer(e.process).map_or(u16::MAX, |p| p.destination);
                }
            }
            What::Ok {
                op: Op::Publish,
                partition,
                ..
            } if msg.ok == NONE => {
                msg.ok = i;
                msg.ok_ns = e.at_ns;
                msg.partition = partition;
            }
            What::Failed {
                op: Op::Publish,
                completion,
                error,
                ..
            } => match completion {
                Completion::Info => msg.info = true,
                _ => {
                    msg.fails += 1;
                    if is_full_rejection(self.history.string(error)) {
                        self.rejections.push(i);
                    }
                }
            },
            What::Deliver {
                poison,
                partition,
                sub,
                invoke,
                ..
            } => {
                msg.seen = true;
                msg.poison |= poison;
                if own(plan, msg.destination, sub) {
                    if msg.partition == NONE {
                        msg.partition = partition;
                    }
                    let received = self
                        .entries
                        .get(invoke as usize)
                        .map_or(e.at_ns, |r| r.at_ns.min(e.at_ns));
                    msg.left_ns = msg.left_ns.min(received);
                }
            }
            What::Broker { partition, sub, .. } => {
                msg.seen = true;
                if own(plan, msg.destination, sub) {
                    if msg.partition == NONE {
                        msg.partition = partition;
                    }
                    msg.left_ns = msg.left_ns.min(e.at_ns);
                }
            }
            _ => {}
        }
    }
}

/// A message's entries in recording order.
#[derive(Debug, Clone)]
pub struct Timeline<'f> {
    next: &'f [u32],
    at: u32,
}

impl Iterator for Timeline<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let i = self.at;
        if i == NONE {
            return None;
        }
        self.at = self.next.get(i as usize).copied().unwrap_or(NONE);
        Some(i)
    }
}

/// Whether subscription `sub` belongs to destination `dest`.
fn own(plan: &Plan, dest: u16, sub: SubIndex) -> bool {
    dest != u16::MAX && plan.subs_of(dest).contains(&sub)
}

/// The subscription entry `i` concerns, or [`NO_SUB`].
fn sub_of(entries: &[Entry], i: u32) -> SubIndex {
    match entries[i as usize].what {
        What::Invoke { sub, .. }
        | What::Deliver { sub, .. }
        | What::Effect { sub, .. }
        | What::Broker { sub, .. } => sub,
        What::Ok { invoke, .. } | What::Failed { invoke, .. } => {
            match entries.get(invoke as usize).map(|e| e.what) {
                Some(What::Invoke { sub, .. }) => sub,
                _ => NO_SUB,
            }
        }
        _ => NO_SUB,
    }
}

/// The harness message an entry concerns, if any.
pub(super) fn message_of(e: &Entry, ids: &BrokerIds) -> Option<u64> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::read;
    use crate::sim::spec::ClusterSpec;

    #[test]
    fn an_event_resolved_after_the_pass_takes_its_place_in_the_timeline() {
        let spec: ClusterSpec = serde_norway::from_str(
            "seed: 1\nduration_ms: 10\ndrain_timeout_ms: 10\nbroker:\n  destinations: [{ name: q }]\n\
             producers: [{ destination: q }]\nconsumers: [{ destination: q }]\n",
        )
        .unwrap();
        let plan = Plan::new(&spec);
        // The lease end names only the broker id, which no earlier entry links to message 1:
        // it is resolved after the pass and must land between the two deliveries.
        let text = r#"
{"time_ms":0,"process":"producer-0","type":"invoke","op":"publish","msg":1}
{"time_ms":2,"process":"consumer-0","type":"invoke","op":"receive","destination":"q"}
{"time_ms":3,"process":"broker","type":"broker","event":"lease-expired","broker_msg":101,"destination":"q"}
{"time_ms":4,"process":"consumer-0","type":"deliver","invoke":1,"msg":1,"broker_msg":101,"destination":"q"}
{"time_ms":5,"process":"producer-0","type":"ok","op":"publish","invoke":0,"msg":1,"broker_msg":101}
"#;
        let h = read::read(text, &plan).unwrap();
        let f = Facts::new(&h, &plan);
        assert_eq!(f.msgs.len(), 1);
        assert_eq!(f.timeline(0).collect::<Vec<_>>(), vec![0, 2, 3, 4]);
        assert!(f.foreign.is_empty());
    }
}
