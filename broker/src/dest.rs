//! One destination's data: its partitioned log and its subscriptions' delivery state.
//!
//! A destination keeps each message once, in its partition's log. Each subscription (the one
//! subscription of a queue, or one per consumer group of a topic) keeps an entry for every
//! message it has not finished with (see `sub.rs`). A queue forgets a message when its
//! subscription finishes with it; a topic keeps it until retention (time to live or
//! `max_length`) removes it.

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;

use crate::config::{DestinationConfig, DestinationKind};
use crate::defect::{Defect, Defects};
use crate::message::{DestId, GroupId, MessageId};
use crate::sub::{EState, Entry, Sub};
use crate::time::Time;
use crate::timers::{TTL_GROUP, Timer, Timers};

/// A stored message.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    pub id: MessageId,
    pub key: Option<String>,
    pub payload: Bytes,
    pub published_at: Time,
    pub visible_at: Time,
    pub expires_at: Option<Time>,
    /// Set when a redrive put the message back into a topic for one consumer group only.
    pub only_group: Option<GroupId>,
    /// Set on dead-lettered copies: the destination and group the message failed in.
    pub origin: Option<(DestId, GroupId)>,
    /// Arrival order in its destination, set by [`Dest::append`]. A dead-lettered or redriven
    /// copy keeps its old id but arrives anew, so ids do not give this order.
    pub arrival: u64,
}

impl Msg {
    pub fn size(&self) -> u32 {
        // Payloads are bounded by `max_payload_bytes` (at most 16 MiB), so this cannot truncate.
        self.payload.len() as u32
    }

    /// What an event that reports the message (dropped, expired, dead-lettered) carries of it:
    /// its id, key and payload.
    pub fn body(&self) -> (MessageId, Option<String>, Bytes) {
        (self.id, self.key.clone(), self.payload.clone())
    }
}

/// One partition's log: offsets are dense and start at `base`; removed messages leave holes that
/// are trimmed from the front.
#[derive(Debug, Default)]
pub(crate) struct PartLog {
    base: u64,
    slots: VecDeque<Option<Msg>>,
    pub live: u64,
    pub bytes: u64,
}

impl PartLog {
    pub fn end(&self) -> u64 {
        self.base + self.slots.len() as u64
    }

    pub fn get(&self, offset: u64) -> Option<&Msg> {
        let i = offset.checked_sub(self.base)?;
        self.slots.get(usize::try_from(i).ok()?)?.as_ref()
    }

    pub fn push(&mut self, msg: Msg) -> u64 {
        self.live += 1;
        self.bytes += u64::from(msg.size());
        self.slots.push_back(Some(msg));
        self.end() - 1
    }

    pub fn remove(&mut self, offset: u64) -> Option<Msg> {
        let i = usize::try_from(offset.checked_sub(self.base)?).ok()?;
        let msg = self.slots.get_mut(i)?.take()?;
        self.live -= 1;
        self.bytes -= u64::from(msg.size());
        while matches!(self.slots.front(), Some(None)) {
            self.slots.pop_front();
            self.base += 1;
        }
        Some(msg)
    }

    /// The oldest retained message; the front slot is never a hole.
    pub fn first(&self) -> Option<(u64, &Msg)> {
        self.slots.front()?.as_ref().map(|m| (self.base, m))
    }

    /// Retained messages from `from` on, with their offsets.
    pub fn iter_from(&self, from: u64) -> impl Iterator<Item = (u64, &Msg)> {
        let skip = usize::try_from(from.saturating_sub(self.base)).unwrap_or(usize::MAX);
        let base = self.base;
        self.slots
            .iter()
            .enumerate()
            .skip(skip)
            .filter_map(move |(i, s)| s.as_ref().map(|m| (base + i as u64, m)))
    }
}

/// A queue or topic.
#[derive(Debug)]
pub(crate) struct Dest {
    pub id: DestId,
    pub cfg: DestinationConfig,
    pub dlq: Option<DestId>,
    /// Some destination dead-letters into this one.
    pub is_dlq_target: bool,
    pub log: Vec<PartLog>,
    pub subs: Vec<Sub>,
    pub groups: BTreeMap<String, GroupId>,
    rr_publish: u32,
    /// Messages appended so far: the next message's `arrival`.
    arrivals: u64,
    pub dedup: BTreeMap<String, (crate::message::Confirm, Time)>,
    pub dedup_order: VecDeque<(Time, String)>,
    defects: Defects,
}

/// The state a newly admitted or promoted message starts in.
pub(crate) fn visible_state(msg: &Msg, now: Time) -> EState {
    if msg.visible_at > now {
        EState::Waiting(msg.visible_at)
    } else {
        EState::Ready
    }
}

impl Dest {
    pub fn new(
        id: DestId,
        cfg: DestinationConfig,
        dlq: Option<DestId>,
        is_dlq_target: bool,
        defects: Defects,
    ) -> Self {
        let fifo = cfg.fifo_groups;
        let p = cfg.partitions;
        let mut d = Dest {
            id,
            dlq,
            is_dlq_target,
            log: (0..p).map(|_| PartLog::default()).collect(),
            subs: Vec::new(),
            groups: BTreeMap::new(),
            rr_publish: 0,
            arrivals: 0,
            dedup: BTreeMap::new(),
            dedup_order: VecDeque::new(),
            defects,
            cfg,
        };
        match d.cfg.kind {
            DestinationKind::Queue => d.subs.push(Sub::new(None, p, fifo)),
            DestinationKind::Topic => {
                for g in d.cfg.groups.clone() {
                    d.add_sub(g.name);
                }
            }
        }
        d
    }

    pub fn is_queue(&self) -> bool {
        self.cfg.kind == DestinationKind::Queue
    }

    pub fn add_sub(&mut self, name: String) -> GroupId {
        let g = GroupId(self.subs.len() as u32);
        self.groups.insert(name.clone(), g);
        self.subs.push(Sub::new(
            Some(name),
            self.cfg.partitions,
            self.cfg.fifo_groups,
        ));
        g
    }

    pub fn key(&self, g: u32, part: u32, off: u64) -> Timer {
        Timer {
            at: Time::ZERO,
            dest: self.id.0,
            group: g,
            part,
            off,
        }
    }

    /// Messages and bytes counted against `max_length` and `max_bytes`.
    pub fn length(&self) -> (u64, u64) {
        if self.is_queue() && !self.defects.has(Defect::CountUnackedTowardMaxLength) {
            (self.subs[0].unleased(), self.subs[0].unleased_bytes)
        } else {
            self.log
                .iter()
                .fold((0, 0), |(n, b), l| (n + l.live, b + l.bytes))
        }
    }

    pub fn fits(&self, count: u64, bytes: u64) -> bool {
        if self.defects.has(Defect::IgnoreMaxLength) {
            return true;
        }
        let (n, b) = self.length();
        n + count <= self.cfg.max_length && b + bytes <= self.cfg.max_bytes
    }

    /// The partition for a key; unkeyed messages take turns. Stable across builds and
    /// platforms: FNV-1a of the key bytes, which is fixed by specification.
    pub fn partition_for(&mut self, key: Option<&str>) -> u32 {
        let n = self.cfg.partitions;
        match key {
            Some(k) => {
                use std::hash::Hasher;
                let mut h = fnv::FnvHasher::default();
                h.write(k.as_bytes());
                (h.finish() % u64::from(n)) as u32
            }
            None => {
                let p = self.rr_publish % n;
                self.rr_publish = (p + 1) % n;
                p
            }
        }
    }

    /// Creates group `g`'s entry for the message at (`part`, `off`).
    pub fn admit(&mut self, timers: &mut Timers, now: Time, g: u32, part: u32, off: u64) {
        let Some(msg) = self.log[part as usize].get(off) else {
            return;
        };
        let mut state = visible_state(msg, now);
        let size = msg.size();
        let k = self.key(g, part, off);
        let sub = &mut self.subs[g as usize];
        if let (Some(fifo), Some(key)) = (sub.fifo.as_mut(), msg.key.as_ref()) {
            if fifo.heads.contains_key(key) {
                fifo.blocked
                    .entry(key.clone())
                    .or_default()
                    .push_back((part, off));
                state = EState::Blocked;
            } else {
                fifo.heads.insert(key.clone(), (part, off));
            }
        }
        let entry = Entry {
            state,
            deliveries: 0,
            size,
            expired: false,
            dead_letter_pending: false,
            lease_queued: false,
        };
        sub.insert(timers, k, entry);
    }

    /// Stores a message in partition `part` and admits it to the subscriptions that get it.
    pub fn append(&mut self, timers: &mut Timers, now: Time, mut msg: Msg, part: u32) -> u64 {
        msg.arrival = self.arrivals;
        self.arrivals += 1;
        let expires_at = msg.expires_at;
        let only = msg.only_group;
        let off = self.log[part as usize].push(msg);
        if let Some(at) = expires_at {
            timers.set.insert(Timer {
                at,
                dest: self.id.0,
                group: TTL_GROUP,
                part,
                off,
            });
        }
        for g in 0..self.subs.len() as u32 {
            if only.is_none_or(|o| o.0 == g) {
                self.admit(timers, now, g, part, off);
            }
        }
        off
    }

    /// Removes group `g`'s entry for a message, promotes the next message of its FIFO group, and
    /// (in a queue) forgets the message. `now` decides whether a promoted message is visible.
    pub fn remove_entry(
        &mut self,
        timers: &mut Timers,
        now: Time,
        g: u32,
        part: u32,
        off: u64,
    ) -> Option<Entry> {
        let k = self.key(g, part, off);
        let sub = &mut self.subs[g as usize];
        let entry = sub.take(timers, k)?;
        let key = self.log[part as usize].get(off).and_then(|m| m.key.clone());
        if let (Some(fifo), Some(key)) = (sub.fifo.as_mut(), key) {
            if entry.state == EState::Blocked {
                if let Some(q) = fifo.blocked.get_mut(&key) {
                    q.retain(|&x| x != (part, off));
                    if q.is_empty() {
                        fifo.blocked.remove(&key);
                    }
                }
            } else if fifo.heads.get(&key) == Some(&(part, off)) {
                fifo.heads.remove(&key);
                self.unblock_next(timers, now, g, key);
            }
        }
        if self.is_queue()
            && let Some(msg) = self.log[part as usize].remove(off)
            && let Some(at) = msg.expires_at
        {
            timers.set.remove(&Timer {
                at,
                dest: self.id.0,
                group: TTL_GROUP,
                part,
                off,
            });
        }
        Some(entry)
    }

    /// Makes the first message queued behind FIFO group `key` its head, visible per its delay.
    /// Returns false if none is queued.
    fn unblock_next(&mut self, timers: &mut Timers, now: Time, g: u32, key: String) -> bool {
        let Some(fifo) = self.subs[g as usize].fifo.as_mut() else {
            return false;
        };
        let next = fifo.blocked.get_mut(&key).and_then(VecDeque::pop_front);
        if fifo.blocked.get(&key).is_some_and(VecDeque::is_empty) {
            fifo.blocked.remove(&key);
        }
        let Some((p2, o2)) = next else {
            return false;
        };
        fifo.heads.insert(key, (p2, o2));
        let st = self.log[p2 as usize]
            .get(o2)
            .map_or(EState::Ready, |m| visible_state(m, now));
        let k2 = self.key(g, p2, o2);
        self.subs[g as usize].set_state(timers, k2, st);
        true
    }

    /// [`Defect::FifoTwoInFlight`]: the head of a FIFO group at (`part`, `off`) was just leased;
    /// release the group's next message at once, unless an earlier released head is still
    /// unfinished (so at most two of a group are out of the blocked queue).
    pub fn release_fifo_group_early(
        &mut self,
        timers: &mut Timers,
        now: Time,
        g: u32,
        part: u32,
        off: u64,
    ) {
        let Some(key) = self.log[part as usize].get(off).and_then(|m| m.key.clone()) else {
            return;
        };
        let sub = &self.subs[g as usize];
        let Some(fifo) = sub.fifo.as_ref() else {
            return;
        };
        let earlier_unfinished = fifo
            .released
            .get(&key)
            .is_some_and(|&(p2, o2)| sub.entry(p2, o2).is_some());
        if fifo.heads.get(&key) != Some(&(part, off)) || earlier_unfinished {
            return;
        }
        if self.unblock_next(timers, now, g, key.clone())
            && let Some(fifo) = self.subs[g as usize].fifo.as_mut()
        {
            fifo.released.insert(key, (part, off));
        }
    }

    /// [`Defect::ForgetDedupAfterDelivery`]: forgets the dedup ids that name message `id`.
    pub fn forget_dedup_of(&mut self, id: MessageId) {
        self.dedup.retain(|_, (c, _)| c.message_id != id);
    }

    /// The oldest message not leased in a queue, or the oldest retained message in a topic:
    /// what drop-head removes first. Age is arrival order in this destination: offsets give it
    /// within a partition, `arrival` across partitions (message ids do not: a dead-lettered or
    /// redriven message keeps its older id).
    pub fn oldest_droppable(&self) -> Option<(u32, u64)> {
        let mut best: Option<(u64, u32, u64)> = None;
        for (p, log) in self.log.iter().enumerate() {
            let candidate = if self.is_queue() {
                self.subs[0].parts[p]
                    .entries
                    .iter()
                    .find(|(_, e)| !matches!(e.state, EState::InFlight { .. }))
                    .map(|(off, _)| off)
            } else {
                log.first().map(|(off, _)| off)
            };
            if let Some(off) = candidate
                && let Some(m) = log.get(off)
                && best.is_none_or(|(arrival, _, _)| m.arrival < arrival)
            {
                best = Some((m.arrival, p as u32, off));
            }
        }
        best.map(|(_, p, off)| (p, off))
    }

    /// Forgets dedup ids older than the window, and the oldest beyond `max_dedup_ids`.
    pub fn purge_dedup(&mut self, now: Time) {
        let window = self.cfg.dedup_window_ms;
        while let Some((t, _)) = self.dedup_order.front() {
            let too_old = t.plus_ms(window) <= now;
            if !too_old && (self.dedup.len() as u64) <= self.cfg.max_dedup_ids {
                break;
            }
            let Some((t, id)) = self.dedup_order.pop_front() else {
                break;
            };
            // A later publish may have re-used the id after it expired; keep that one.
            if self.dedup.get(&id).is_some_and(|(_, seen)| *seen == t) {
                self.dedup.remove(&id);
            }
        }
    }
}
