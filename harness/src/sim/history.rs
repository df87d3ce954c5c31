//! The history of a run: every client operation as an invoke and a completion, what consumers
//! applied, the faults, the phases, and the broker-side events a checker needs.
//!
//! Operations follow Jepsen: an invoke, then one completion, `ok`, `fail` (it definitely did not
//! happen) or `info` (nobody knows: a timeout, a lost connection, or the process crashed with
//! the operation in flight). A process may have several operations in flight (a producer is
//! open loop), so each completion names the line of its invoke.
//!
//! In memory an entry is a fixed-size [`Entry`] (64 bytes; see the test below): names are
//! small numbers into the [`Plan`]'s tables, and the rare free text (error messages, fault
//! descriptions) is interned once. The file form ([`super::jsonl`]) is JSON Lines, one entry
//! per line, with names spelt out; its SHA-256 identifies the run. Entries are in
//! recording order, which is deterministic; their times are simulated nanoseconds and may step
//! back by less than a tick between hosts, because turmoil runs the hosts of one step one after
//! another, each through the whole tick.
//!
//! Broker events that carry no payload (acks, lease ends) name only the broker's message id;
//! the harness id is resolved from the confirms, deliveries and payload-carrying events
//! recorded anywhere in the run ([`History::broker_ids`]).

use std::collections::BTreeMap;
use std::io::{self, Write};

use mqsim_broker::{DropReason, Event, EventKind, LeaseEnd, Time};

use super::dense::BrokerIds;
use super::ids::{self, NO_MSG};
use super::plan::{NO_SUB, Plan, Process, SubIndex};

/// Marks "no key" in compact records.
pub const NO_KEY: u32 = u32::MAX;

/// A client operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Publish one message.
    Publish,
    /// Receive a batch.
    Receive,
    /// Acknowledge one delivery.
    Ack,
    /// Give one delivery back.
    Nack,
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// It happened.
    Ok,
    /// It definitely did not happen.
    Fail,
    /// Unknown.
    Info,
}

/// A phase of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Faults run and producers publish.
    Fault,
    /// Everything is healed and restarted.
    Heal,
    /// Waiting for every confirmed message to reach a final state.
    Drain,
    /// The drain finished.
    Done,
    /// The drain did not finish in time: a liveness failure.
    DrainTimedOut,
}

/// A broker-side event the history keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerEvent {
    /// A lease was acknowledged: the message is complete for the subscription.
    Acked,
    /// A lease was given back.
    Nacked,
    /// A lease ran out.
    LeaseExpired,
    /// A lease ended because the broker restarted.
    LeaseReleased,
    /// The message moved to the dead-letter queue.
    DeadLettered,
    /// Dead-lettering was refused (the dead-letter queue is full); the message stays.
    DeadLetterRefused,
    /// The message's time to live ran out.
    Expired,
    /// Dropped by the drop-head overflow policy.
    DroppedOverflow,
    /// Dropped after its last delivery, with no dead-letter queue.
    DroppedMaxDeliveries,
    /// Skipped by a seek.
    DroppedSkipped,
    /// The broker came back from a crash (`count` is its epoch).
    Recovered,
}

impl BrokerEvent {
    /// Whether the message is finished for the subscription (nothing more will deliver it
    /// there) and was not completed by a consumer.
    pub fn is_final_discard(self) -> bool {
        matches!(
            self,
            BrokerEvent::DeadLettered
                | BrokerEvent::Expired
                | BrokerEvent::DroppedOverflow
                | BrokerEvent::DroppedMaxDeliveries
                | BrokerEvent::DroppedSkipped
        )
    }
}

/// What an entry records. Message ids are harness ids ([`NO_MSG`] when unknown); `broker_msg`
/// is the broker's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    /// An operation started. `intended_ns` is a publish's intended send time (open loop).
    Invoke {
        op: Op,
        msg: u64,
        key: u32,
        sub: SubIndex,
        intended_ns: u64,
    },
    /// An operation ended well: a publish's confirm (`count` is 1 for a dedup duplicate), a
    /// receive's batch size in `count`.
    Ok {
        invoke: u32,
        op: Op,
        msg: u64,
        broker_msg: u64,
        partition: u32,
        offset: u64,
        count: u32,
    },
    /// An operation that definitely did not happen, or whose outcome is unknown; `error` is an
    /// interned string.
    Failed {
        invoke: u32,
        op: Op,
        msg: u64,
        completion: Completion,
        error: u32,
    },
    /// One message of a receive's batch.
    Deliver {
        invoke: u32,
        msg: u64,
        broker_msg: u64,
        partition: u32,
        offset: u64,
        delivery_count: u32,
        key: u32,
        sub: SubIndex,
        poison: bool,
    },
    /// A consumer processed a message successfully; `applied` is false when its idempotent
    /// sink had applied this id already and skipped it.
    Effect {
        msg: u64,
        sub: SubIndex,
        applied: bool,
    },
    /// A fault started or ended; `text` is an interned description.
    Nemesis { text: u32 },
    /// The run entered a phase.
    Phase { phase: Phase },
    /// Something the broker did.
    Broker {
        event: BrokerEvent,
        msg: u64,
        broker_msg: u64,
        sub: SubIndex,
        partition: u32,
        offset: u64,
        count: u32,
    },
}

/// What an invoke names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    /// The operation.
    pub op: Op,
    /// The message, or [`NO_MSG`].
    pub msg: u64,
    /// The key, or [`NO_KEY`].
    pub key: u32,
    /// The subscription, or [`NO_SUB`].
    pub sub: SubIndex,
    /// A publish's intended send time.
    pub intended_ns: u64,
}

impl Call {
    /// Publishing message `msg`, meant to be sent at `intended_ns`.
    pub fn publish(msg: u64, key: u32, intended_ns: u64) -> Self {
        Call {
            op: Op::Publish,
            msg,
            key,
            sub: NO_SUB,
            intended_ns,
        }
    }

    /// Receiving from subscription `sub`.
    pub fn receive(sub: SubIndex) -> Self {
        Call {
            op: Op::Receive,
            msg: NO_MSG,
            key: NO_KEY,
            sub,
            intended_ns: 0,
        }
    }

    /// Acking or nacking message `msg` of subscription `sub`.
    pub fn settle(op: Op, msg: u64, sub: SubIndex) -> Self {
        Call {
            op,
            msg,
            key: NO_KEY,
            sub,
            intended_ns: 0,
        }
    }
}

/// One history entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Simulated nanoseconds since the start.
    pub at_ns: u64,
    /// Who.
    pub process: Process,
    /// What.
    pub what: What,
}

/// The history of one run.
#[derive(Debug, Clone, Default)]
pub struct History {
    entries: Vec<Entry>,
    strings: Vec<String>,
    string_ids: BTreeMap<String, u32>,
    /// Invokes without a completion yet: a bit per entry index.
    open: Vec<u64>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty history with room for `entries` entries before its vector first grows.
    ///
    /// Growing copies every entry recorded so far into memory the run has not touched yet,
    /// which costs the step loop more than the copy's instructions suggest (the page faults of
    /// the new block, and the old one's cache lines); a run that reserves what it expects
    /// records into one block. Room never used costs address space only: its pages are not
    /// touched.
    pub fn with_capacity(entries: usize) -> Self {
        let mut h = Self::default();
        h.entries.reserve_exact(entries);
        h.open.reserve_exact(entries.div_ceil(64));
        h
    }

    /// The entries, in recording order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// An interned string.
    pub fn string(&self, id: u32) -> &str {
        self.strings.get(id as usize).map_or("", String::as_str)
    }

    /// Every interned string, by id; strings are only ever appended.
    pub fn strings(&self) -> &[String] {
        &self.strings
    }

    /// Bytes the history holds in memory, roughly: entries and interned strings.
    pub fn memory_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<Entry>()
            + self.strings.iter().map(|s| 2 * s.len() + 48).sum::<usize>()
    }

    /// The number of an interned string, interning it if new.
    pub fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.string_ids.get(s) {
            return id;
        }
        let id = self.strings.len() as u32;
        self.strings.push(s.to_owned());
        self.string_ids.insert(s.to_owned(), id);
        id
    }

    fn push(&mut self, at: Time, process: Process, what: What) -> u32 {
        let i = self.entries.len() as u32;
        self.entries.push(Entry {
            at_ns: at.as_nanos(),
            process,
            what,
        });
        i
    }

    /// Appends an entry as it is, for histories read back from a file (see
    /// [`super::read`]): no invoke is tracked as open.
    pub fn push_entry(&mut self, entry: Entry) {
        self.entries.push(entry);
    }

    /// Records an invoke and returns its handle for the completion.
    pub fn invoke(&mut self, at: Time, process: Process, call: Call) -> u32 {
        let what = What::Invoke {
            op: call.op,
            msg: call.msg,
            key: call.key,
            sub: call.sub,
            intended_ns: call.intended_ns,
        };
        let i = self.push(at, process, what);
        let word = i as usize / 64;
        if self.open.len() <= word {
            self.open.resize(word + 1, 0);
        }
        self.open[word] |= 1 << (i % 64);
        i
    }

    /// The process, op and message of an open invoke; `None` once it completed (including when
    /// a crash closed it, so a completion that arrives afterwards is not recorded twice).
    fn take_open(&mut self, invoke: u32) -> Option<(Process, Op, u64)> {
        let bit = 1u64 << (invoke % 64);
        match self.open.get_mut(invoke as usize / 64) {
            Some(word) if *word & bit != 0 => *word &= !bit,
            _ => return None,
        }
        match self.entries.get(invoke as usize) {
            Some(Entry {
                process,
                what: What::Invoke { op, msg, .. },
                ..
            }) => Some((*process, *op, *msg)),
            _ => None,
        }
    }

    /// Records an `ok` completion.
    pub fn ok(
        &mut self,
        at: Time,
        invoke: u32,
        broker_msg: u64,
        partition: u32,
        offset: u64,
        count: u32,
    ) {
        if let Some((process, op, msg)) = self.take_open(invoke) {
            let what = What::Ok {
                invoke,
                op,
                msg,
                broker_msg,
                partition,
                offset,
                count,
            };
            self.push(at, process, what);
        }
    }

    /// Records a `fail` or `info` completion with its reason.
    pub fn failed(&mut self, at: Time, invoke: u32, completion: Completion, error: &str) {
        if let Some((process, op, msg)) = self.take_open(invoke) {
            let error = self.intern(error);
            let what = What::Failed {
                invoke,
                op,
                msg,
                completion,
                error,
            };
            self.push(at, process, what);
        }
    }

    /// Records a delivered message, part of the `ok` of receive `invoke`.
    #[allow(clippy::too_many_arguments)]
    pub fn deliver(
        &mut self,
        at: Time,
        process: Process,
        invoke: u32,
        delivery: &mqsim_broker::Delivery,
        sub: SubIndex,
    ) {
        let (msg, poison) = ids::message_of(&delivery.payload);
        let key = delivery
            .key
            .as_deref()
            .and_then(ids::key_number)
            .unwrap_or(NO_KEY);
        let what = What::Deliver {
            invoke,
            msg,
            broker_msg: delivery.message_id.0,
            partition: delivery.partition,
            offset: delivery.offset,
            delivery_count: delivery.delivery_count,
            key,
            sub,
            poison,
        };
        self.push(at, process, what);
    }

    /// Records a consumer's effect.
    pub fn effect(&mut self, at: Time, process: Process, msg: u64, sub: SubIndex, applied: bool) {
        self.push(at, process, What::Effect { msg, sub, applied });
    }

    /// Records a fault starting or ending.
    pub fn nemesis(&mut self, at: Time, process: Process, text: &str) {
        let text = self.intern(text);
        self.push(at, process, What::Nemesis { text });
    }

    /// Records a phase change.
    pub fn phase(&mut self, at: Time, phase: Phase) {
        self.push(at, super::plan::HARNESS, What::Phase { phase });
    }

    /// Closes every operation `process` has in flight with an `info`: it crashed, and whether
    /// they happened is unknown.
    pub fn crashed(&mut self, at: Time, process: Process) {
        let mut mine = Vec::new();
        for (w, &word) in self.open.iter().enumerate() {
            let mut bits = word;
            while bits != 0 {
                let i = (w * 64) as u32 + bits.trailing_zeros();
                bits &= bits - 1;
                if self
                    .entries
                    .get(i as usize)
                    .is_some_and(|e| e.process == process)
                {
                    mine.push(i);
                }
            }
        }
        for i in mine {
            self.failed(at, i, Completion::Info, "process crashed");
        }
    }

    /// Records the broker events a checker needs and ignores the rest (publishes, deliveries,
    /// lease extensions and seeks, which the client side records already or which the harness
    /// does not use).
    pub fn broker_events(&mut self, events: impl IntoIterator<Item = Event>, plan: &Plan) {
        for e in events {
            self.broker_event(e, plan);
        }
    }

    fn broker_event(&mut self, e: Event, plan: &Plan) {
        use BrokerEvent as B;
        let from_payload = |p: &[u8]| ids::decode_payload(p).map_or(NO_MSG, |(m, _)| m);
        let (event, msg, broker_msg, slot, group, count) = match e.kind {
            EventKind::Acked {
                message_id,
                at,
                group,
            } => (B::Acked, NO_MSG, message_id, at, group, 0),
            EventKind::Nacked {
                message_id,
                at,
                group,
            } => (B::Nacked, NO_MSG, message_id, at, group, 0),
            EventKind::LeaseEnded {
                message_id,
                at,
                group,
                why,
            } => {
                let event = match why {
                    LeaseEnd::Expired => B::LeaseExpired,
                    LeaseEnd::Restart => B::LeaseReleased,
                };
                (event, NO_MSG, message_id, at, group, 0)
            }
            EventKind::DeadLettered {
                message_id,
                at,
                group,
                delivery_count,
                payload,
                ..
            } => (
                B::DeadLettered,
                from_payload(&payload),
                message_id,
                at,
                group,
                delivery_count,
            ),
            EventKind::DeadLetterRefused {
                message_id,
                at,
                group,
            } => (B::DeadLetterRefused, NO_MSG, message_id, at, group, 0),
            EventKind::Expired {
                message_id,
                at,
                group,
                payload,
                ..
            } => (B::Expired, from_payload(&payload), message_id, at, group, 0),
            EventKind::Dropped {
                message_id,
                at,
                group,
                reason,
                payload,
                ..
            } => {
                let event = match reason {
                    DropReason::Overflow => B::DroppedOverflow,
                    DropReason::MaxDeliveries => B::DroppedMaxDeliveries,
                    DropReason::Skipped => B::DroppedSkipped,
                };
                (event, from_payload(&payload), message_id, at, group, 0)
            }
            EventKind::Recovered { epoch } => {
                let what = What::Broker {
                    event: B::Recovered,
                    msg: NO_MSG,
                    broker_msg: NO_MSG,
                    sub: NO_SUB,
                    partition: 0,
                    offset: 0,
                    count: epoch,
                };
                self.push(e.at, super::plan::BROKER, what);
                return;
            }
            _ => return,
        };
        let what = What::Broker {
            event,
            msg,
            broker_msg: broker_msg.0,
            sub: plan.sub_of(slot.destination.0, group.0),
            partition: slot.partition,
            offset: slot.offset,
            count,
        };
        self.push(e.at, super::plan::BROKER, what);
    }

    /// Writes the history as JSON Lines and returns the SHA-256 of exactly the bytes written,
    /// and their number. See [`super::jsonl`] for the shape of a line.
    pub fn write_jsonl(&self, plan: &Plan, out: impl Write) -> io::Result<([u8; 32], u64)> {
        super::jsonl::write(self, plan, out)
    }

    /// Broker message id to harness message id, from every record that names both.
    pub fn broker_ids(&self) -> BrokerIds {
        let mut map = BrokerIds::default();
        for e in &self.entries {
            if let Some((broker_msg, msg)) = e.id_pair() {
                map.insert(broker_msg, msg);
            }
        }
        map
    }
}

impl Entry {
    /// The broker message id and harness message id this entry names together, if it names
    /// both: what [`History::broker_ids`] is built from.
    pub fn id_pair(&self) -> Option<(u64, u64)> {
        let (msg, broker_msg) = match self.what {
            What::Ok {
                op: Op::Publish,
                msg,
                broker_msg,
                ..
            } => (msg, broker_msg),
            What::Deliver {
                msg, broker_msg, ..
            } => (msg, broker_msg),
            What::Broker {
                msg, broker_msg, ..
            } => (msg, broker_msg),
            _ => return None,
        };
        (msg != NO_MSG && broker_msg != NO_MSG).then_some((broker_msg, msg))
    }

    /// The broker message id a line of the file form resolves to a harness id through
    /// [`History::broker_ids`] (a broker event that carries no payload), if any.
    pub fn unresolved_broker_msg(&self) -> Option<u64> {
        match self.what {
            What::Broker {
                event,
                msg,
                broker_msg,
                ..
            } if event != BrokerEvent::Recovered && msg == NO_MSG => Some(broker_msg),
            _ => None,
        }
    }
}

impl Op {
    /// The name in the history file.
    pub fn name(self) -> &'static str {
        match self {
            Op::Publish => "publish",
            Op::Receive => "receive",
            Op::Ack => "ack",
            Op::Nack => "nack",
        }
    }
}

impl Completion {
    /// The name in the history file.
    pub fn name(self) -> &'static str {
        match self {
            Completion::Ok => "ok",
            Completion::Fail => "fail",
            Completion::Info => "info",
        }
    }
}

impl Phase {
    /// The name in the history file.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Fault => "fault",
            Phase::Heal => "heal",
            Phase::Drain => "drain",
            Phase::Done => "done",
            Phase::DrainTimedOut => "drain-timed-out",
        }
    }
}

impl BrokerEvent {
    /// The name in the history file.
    pub fn name(self) -> &'static str {
        match self {
            BrokerEvent::Acked => "acked",
            BrokerEvent::Nacked => "nacked",
            BrokerEvent::LeaseExpired => "lease-expired",
            BrokerEvent::LeaseReleased => "lease-released",
            BrokerEvent::DeadLettered => "dead-lettered",
            BrokerEvent::DeadLetterRefused => "dead-letter-refused",
            BrokerEvent::Expired => "expired",
            BrokerEvent::DroppedOverflow => "dropped-overflow",
            BrokerEvent::DroppedMaxDeliveries => "dropped-max-deliveries",
            BrokerEvent::DroppedSkipped => "dropped-skipped",
            BrokerEvent::Recovered => "recovered",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_stay_compact() {
        // The history holds one of these per event; keep it at a cache line.
        assert!(
            std::mem::size_of::<Entry>() <= 64,
            "{}",
            std::mem::size_of::<Entry>()
        );
    }

    #[test]
    fn completions_close_invokes_once_and_crashes_close_the_rest() {
        let mut h = History::new();
        let a = h.invoke(Time(1), 3, Call::publish(7, NO_KEY, 0));
        let b = h.invoke(Time(2), 3, Call::publish(8, NO_KEY, 0));
        h.ok(Time(3), a, 100, 0, 0, 0);
        h.ok(Time(4), a, 100, 0, 0, 0);
        h.crashed(Time(5), 3);
        h.failed(Time(6), b, Completion::Fail, "late");
        let kinds: Vec<_> = h.entries().iter().map(|e| e.what).collect();
        assert_eq!(kinds.len(), 4);
        assert!(matches!(
            kinds[3],
            What::Failed {
                invoke,
                completion: Completion::Info,
                ..
            } if invoke == b
        ));
        assert_eq!(h.broker_ids().get(100), Some(7));
    }
}
