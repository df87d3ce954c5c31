//! The broker's state and the mechanics every command shares: timers, leases ending, retries,
//! dead-lettering, expiry and overflow. The commands themselves are in `ops.rs`.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{BrokerConfig, ExpiryAction, OverflowPolicy};
use crate::defect::{Defect, Defects};
use crate::dest::{Dest, Msg};
use crate::error::{BrokerError, ConfigError, Result};
use crate::event::{DropReason, Event, EventKind, LeaseEnd, Slot};
use crate::message::{DestId, GroupId, MessageId};
use crate::sub::EState;
use crate::time::Time;
use crate::timers::{TTL_GROUP, Timer, Timers};

/// How long a message waits before dead-lettering is tried again after the dead-letter queue
/// refused it for being full.
pub(crate) const DEAD_LETTER_RETRY_MS: u64 = 1000;

/// Where events go; recording is off while the log is replayed, because replay re-applies what
/// was already reported once.
#[derive(Debug, Default)]
pub(crate) struct Out {
    pub events: Vec<Event>,
    pub record: bool,
}

impl Out {
    /// Makes room for `n` more events, when they are recorded.
    pub fn reserve(&mut self, n: usize) {
        if self.record {
            self.events.reserve(n);
        }
    }

    pub fn emit(&mut self, at: Time, kind: EventKind) {
        if self.record {
            self.events.push(Event { at, kind });
        }
    }
}

/// Everything the broker knows. A deterministic function of the commands applied and their
/// times: no clock, no randomness, and every collection iterated is ordered.
#[derive(Debug)]
pub(crate) struct State {
    pub dests: Vec<Dest>,
    pub by_name: BTreeMap<String, DestId>,
    pub timers: Timers,
    pub now: Time,
    pub epoch: u32,
    pub next_msg: u64,
    pub next_token: u64,
    pub out: Out,
    /// Deliberate bugs; none without the `defects` feature.
    pub defects: Defects,
}

pub(crate) fn slot(d: usize, part: u32, off: u64) -> Slot {
    Slot {
        destination: DestId(d as u32),
        partition: part,
        offset: off,
    }
}

impl State {
    pub fn new(config: &BrokerConfig) -> Result<State, ConfigError> {
        config.validate()?;
        let defects = Defects::of(config);
        let by_name: BTreeMap<String, DestId> = config
            .destinations
            .iter()
            .enumerate()
            .map(|(i, d)| (d.name.clone(), DestId(i as u32)))
            .collect();
        let targets: BTreeSet<&str> = config
            .destinations
            .iter()
            .filter_map(|d| d.dead_letter.as_deref())
            .collect();
        let dests = config
            .destinations
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let dlq = c.dead_letter.as_ref().and_then(|n| by_name.get(n).copied());
                Dest::new(
                    DestId(i as u32),
                    c.clone(),
                    dlq,
                    targets.contains(c.name.as_str()),
                    defects,
                )
            })
            .collect();
        Ok(State {
            dests,
            by_name,
            timers: Timers::default(),
            now: Time::ZERO,
            epoch: 0,
            next_msg: 0,
            next_token: 0,
            out: Out {
                events: Vec::new(),
                record: true,
            },
            defects,
        })
    }

    pub fn check_time(&self, now: Time) -> Result<()> {
        if now < self.now {
            return Err(BrokerError::TimeWentBackwards {
                now,
                last: self.now,
            });
        }
        Ok(())
    }

    pub fn resolve(&self, name: &str) -> Result<usize> {
        self.by_name
            .get(name)
            .map(|d| d.0 as usize)
            .ok_or_else(|| BrokerError::UnknownDestination(name.to_owned()))
    }

    /// The subscription a consumer addresses: the queue's own, or a topic's named group.
    pub fn resolve_sub(&self, d: usize, group: Option<&str>) -> Result<u32> {
        let dest = &self.dests[d];
        match (dest.is_queue(), group) {
            (true, None) => Ok(0),
            (true, Some(_)) => Err(BrokerError::GroupNotAllowed(dest.cfg.name.clone())),
            (false, None) => Err(BrokerError::GroupRequired(dest.cfg.name.clone())),
            (false, Some(g)) => {
                dest.groups
                    .get(g)
                    .map(|g| g.0)
                    .ok_or_else(|| BrokerError::UnknownGroup {
                        destination: dest.cfg.name.clone(),
                        group: g.into(),
                    })
            }
        }
    }

    pub fn next_message_id(&mut self) -> MessageId {
        let id = MessageId(self.next_msg);
        self.next_msg += 1;
        id
    }

    /// Fires every timer due at or before `now`, in (deadline, destination, group, partition,
    /// offset) order. Each timer's effect depends only on the state and its own deadline, never
    /// on `now`, so catching up in one call or in many gives the same state: that is what lets
    /// recovery replay only the commands and still rebuild what the timers did.
    pub fn advance(&mut self, now: Time) {
        loop {
            let lease = if self.timers.leases_due <= now {
                self.first_lease()
            } else {
                None
            };
            let (t, queued) = match (self.timers.set.first().copied(), lease) {
                (Some(s), Some(l)) if l < s => (l, true),
                (Some(s), _) => (s, false),
                (None, Some(l)) => (l, true),
                (None, None) => break,
            };
            if t.at > now {
                break;
            }
            if queued {
                self.dests[t.dest as usize].subs[t.group as usize]
                    .leases
                    .pop_front();
            } else {
                self.timers.set.pop_first();
            }
            self.fire(t);
        }
        self.now = now;
    }

    /// The first live lease in any subscription's lease queue, as a timer, dropping ended
    /// leases from the queues' fronts on the way; also makes `leases_due` exact again. Looks
    /// at every subscription, so it is called only once a lease may be due.
    fn first_lease(&mut self) -> Option<Timer> {
        let mut first: Option<Timer> = None;
        for dest in &mut self.dests {
            for (g, sub) in dest.subs.iter_mut().enumerate() {
                sub.drop_ended_leases();
                let Some(l) = sub.leases.front() else {
                    continue;
                };
                let t = Timer {
                    at: l.until,
                    dest: dest.id.0,
                    group: g as u32,
                    part: l.part,
                    off: l.off,
                };
                if first.is_none_or(|f| t < f) {
                    first = Some(t);
                }
            }
        }
        self.timers.leases_due = first.map_or(Time::MAX, |t| t.at);
        first
    }

    fn fire(&mut self, t: Timer) {
        let (d, g, p, off) = (t.dest as usize, t.group, t.part, t.off);
        if g == TTL_GROUP {
            self.expire_message(t.at, d, p, off);
            return;
        }
        let Some(e) = self.dests[d].subs[g as usize].entry(p, off) else {
            return;
        };
        match e.state {
            EState::Waiting(at) if at == t.at => {
                if e.dead_letter_pending {
                    self.dead_letter(t.at, d, g, p, off);
                } else {
                    let k = self.dests[d].key(g, p, off);
                    self.dests[d].subs[g as usize].set_state(&mut self.timers, k, EState::Ready);
                }
            }
            EState::InFlight { until, .. } if until == t.at => {
                let id = self.message_id(d, p, off);
                let at = slot(d, p, off);
                let why = LeaseEnd::Expired;
                self.out.emit(
                    t.at,
                    EventKind::LeaseEnded {
                        message_id: id,
                        at,
                        group: GroupId(g),
                        why,
                    },
                );
                if self.defects.has(Defect::NoCountOnLeaseExpiry)
                    && let Some(e) = self.dests[d].subs[g as usize].entry_mut(p, off)
                {
                    e.deliveries = e.deliveries.saturating_sub(1);
                }
                self.fail_attempt(t.at, d, g, p, off, None);
            }
            _ => {}
        }
    }

    pub fn message_id(&self, d: usize, p: u32, off: u64) -> MessageId {
        self.dests[d].log[p as usize]
            .get(off)
            .map_or(MessageId(u64::MAX), |m| m.id)
    }

    /// A delivery failed (nack, lease expiry, restart): retry after a backoff, or dead-letter
    /// the message once it has had `max_deliveries`, or expire it if its time ran out meanwhile.
    pub fn fail_attempt(
        &mut self,
        at: Time,
        d: usize,
        g: u32,
        p: u32,
        off: u64,
        delay_ms: Option<u64>,
    ) {
        let dest = &self.dests[d];
        let Some(e) = dest.subs[g as usize].entry(p, off) else {
            return;
        };
        if e.expired {
            self.expire_entry(at, d, g, p, off);
            return;
        }
        let early = self.defects.has(Defect::DeadLetterEarly);
        if dest
            .cfg
            .max_deliveries
            .is_some_and(|max| e.deliveries >= if early { max - 1 } else { max })
        {
            self.dead_letter(at, d, g, p, off);
            return;
        }
        let delay = if self.defects.has(Defect::IgnoreRequeueDelay) {
            0
        } else {
            delay_ms.unwrap_or_else(|| dest.cfg.retry.backoff_ms(e.deliveries))
        };
        let st = if delay > 0 {
            EState::Waiting(at.plus_ms(delay))
        } else {
            EState::Ready
        };
        let k = dest.key(g, p, off);
        self.dests[d].subs[g as usize].set_state(&mut self.timers, k, st);
    }

    /// Moves a message that ran out of deliveries (or expired, under `on_expiry: dead-letter`)
    /// to the dead-letter queue, or discards it when there is none. A full dead-letter queue
    /// with `reject-publish` refuses it: the message stays and is tried again later, so that
    /// nothing is ever dropped silently. Returns whether the message left.
    pub fn dead_letter(&mut self, at: Time, d: usize, g: u32, p: u32, off: u64) -> bool {
        let src = &self.dests[d];
        let (Some(msg), Some(e)) = (
            src.log[p as usize].get(off),
            src.subs[g as usize].entry(p, off),
        ) else {
            return false;
        };
        let (id, key, payload) = msg.body();
        let deliveries = e.deliveries;
        let from = slot(d, p, off);
        let group = GroupId(g);
        let Some(t) = src.dlq.map(|t| t.0 as usize) else {
            self.dests[d].remove_entry(&mut self.timers, at, g, p, off);
            let reason = DropReason::MaxDeliveries;
            let kind = EventKind::Dropped {
                message_id: id,
                at: from,
                group,
                reason,
                key,
                payload,
            };
            self.out.emit(at, kind);
            return true;
        };
        let target = &self.dests[t];
        if target.cfg.overflow == OverflowPolicy::RejectPublish
            && !target.fits(1, payload.len() as u64)
        {
            if self.defects.has(Defect::DlqFullDrops) {
                self.dests[d].remove_entry(&mut self.timers, at, g, p, off);
                return true;
            }
            self.out.emit(
                at,
                EventKind::DeadLetterRefused {
                    message_id: id,
                    at: from,
                    group,
                },
            );
            let k = src.key(g, p, off);
            let sub = &mut self.dests[d].subs[g as usize];
            if let Some(e) = sub.entry_mut(p, off) {
                e.dead_letter_pending = true;
            }
            sub.set_state(
                &mut self.timers,
                k,
                EState::Waiting(at.plus_ms(DEAD_LETTER_RETRY_MS)),
            );
            return false;
        }
        let copy = Msg {
            id,
            key: key.clone(),
            payload: payload.clone(),
            published_at: at,
            visible_at: at.plus_ms(target.cfg.delay_ms),
            expires_at: target.cfg.message_ttl_ms.map(|ttl| at.plus_ms(ttl)),
            only_group: None,
            origin: Some((DestId(d as u32), group)),
            arrival: 0,
        };
        self.dests[d].remove_entry(&mut self.timers, at, g, p, off);
        let to = self.store(at, t, copy);
        let kind = EventKind::DeadLettered {
            message_id: id,
            at: from,
            group,
            to,
            delivery_count: deliveries,
            key,
            payload,
        };
        self.out.emit(at, kind);
        true
    }

    /// A message's time to live ran out. In a queue, a leased message is marked and expires when
    /// its lease ends without an ack; a topic's retention removes the message whatever its
    /// groups are doing, as a log's retention does.
    fn expire_message(&mut self, at: Time, d: usize, p: u32, off: u64) {
        if self.dests[d].log[p as usize].get(off).is_none() {
            return;
        }
        if self.dests[d].is_queue() {
            let lazy = self.defects.has(Defect::DeliverExpired);
            let Some(e) = self.dests[d].subs[0].entry_mut(p, off) else {
                return;
            };
            if lazy || matches!(e.state, EState::InFlight { .. }) {
                e.expired = true;
            } else {
                self.expire_entry(at, d, 0, p, off);
            }
            return;
        }
        let size = self.dests[d].log[p as usize]
            .get(off)
            .map_or(0, |m| u64::from(m.size()));
        for g in 0..self.dests[d].subs.len() as u32 {
            if self.dests[d].subs[g as usize].entry(p, off).is_some() {
                // A full dead-letter queue cannot refuse here as it does elsewhere: a refusal
                // promises that the message stays and is tried again, but retention removes it
                // regardless, so it is reported as expired instead.
                let dlq_has_room = self.dests[d].dlq.is_some_and(|t| {
                    let target = &self.dests[t.0 as usize];
                    target.cfg.overflow != OverflowPolicy::RejectPublish || target.fits(1, size)
                });
                let moved = self.dests[d].cfg.on_expiry == ExpiryAction::DeadLetter
                    && dlq_has_room
                    && self.dead_letter(at, d, g, p, off);
                if !moved {
                    self.drop_entry_as_expired(at, d, g, p, off);
                }
            }
        }
        self.dests[d].log[p as usize].remove(off);
    }

    /// Ends one group's hold on an expired message: dead-letter it if so configured, otherwise
    /// remove it and report it expired.
    pub fn expire_entry(&mut self, at: Time, d: usize, g: u32, p: u32, off: u64) {
        if self.dests[d].cfg.on_expiry == ExpiryAction::DeadLetter {
            self.dead_letter(at, d, g, p, off);
        } else {
            self.drop_entry_as_expired(at, d, g, p, off);
        }
    }

    fn drop_entry_as_expired(&mut self, at: Time, d: usize, g: u32, p: u32, off: u64) {
        let Some(m) = self.dests[d].log[p as usize].get(off) else {
            return;
        };
        let (message_id, key, payload) = m.body();
        if self.dests[d]
            .remove_entry(&mut self.timers, at, g, p, off)
            .is_some()
        {
            let kind = EventKind::Expired {
                message_id,
                at: slot(d, p, off),
                group: GroupId(g),
                key,
                payload,
            };
            self.out.emit(at, kind);
        }
    }

    /// Removes a message for good on overflow or a skip: every group that still held it is told.
    pub fn drop_message(&mut self, at: Time, d: usize, p: u32, off: u64, reason: DropReason) {
        let Some(m) = self.dests[d].log[p as usize].get(off) else {
            return;
        };
        let (message_id, key, payload) = m.body();
        let expires_at = m.expires_at;
        for g in 0..self.dests[d].subs.len() as u32 {
            if self.dests[d]
                .remove_entry(&mut self.timers, at, g, p, off)
                .is_some()
            {
                let kind = EventKind::Dropped {
                    message_id,
                    at: slot(d, p, off),
                    group: GroupId(g),
                    reason,
                    key: key.clone(),
                    payload: payload.clone(),
                };
                self.out.emit(at, kind);
            }
        }
        if let Some(exp) = expires_at {
            self.timers.set.remove(&Timer {
                at: exp,
                dest: d as u32,
                group: TTL_GROUP,
                part: p,
                off,
            });
        }
        self.dests[d].log[p as usize].remove(off);
    }

    /// Stores a message in destination `d`, first dropping the oldest messages if the
    /// destination is full and its policy is drop-head. The caller has already applied
    /// reject-publish. Returns where the message went.
    pub fn store(&mut self, at: Time, d: usize, msg: Msg) -> Slot {
        let size = u64::from(msg.size());
        while !self.dests[d].fits(1, size) {
            let Some((p, off)) = self.dests[d].oldest_droppable() else {
                break;
            };
            self.drop_message(at, d, p, off, DropReason::Overflow);
        }
        let dest = &mut self.dests[d];
        let p = dest.partition_for(msg.key.as_deref());
        let off = dest.append(&mut self.timers, at, msg, p);
        slot(d, p, off)
    }

    /// The broker came back as incarnation `epoch` at `at`: every lease held at the crash ends
    /// as a failed delivery, and message ids continue in the new incarnation's own range so that
    /// ids handed out but lost with unsynced records are never reused.
    pub fn recover(&mut self, at: Time, epoch: u32) {
        let mut leased = Vec::new();
        for (d, dest) in self.dests.iter().enumerate() {
            for (g, sub) in dest.subs.iter().enumerate() {
                for (p, part) in sub.parts.iter().enumerate() {
                    for (off, e) in part.entries.iter() {
                        if matches!(e.state, EState::InFlight { .. }) {
                            leased.push((d, g as u32, p as u32, off));
                        }
                    }
                }
            }
        }
        for (d, g, p, off) in leased {
            if self.defects.has(Defect::LoseInFlightOnRestart) {
                self.dests[d].remove_entry(&mut self.timers, at, g, p, off);
                continue;
            }
            let id = self.message_id(d, p, off);
            let why = LeaseEnd::Restart;
            let kind = EventKind::LeaseEnded {
                message_id: id,
                at: slot(d, p, off),
                group: GroupId(g),
                why,
            };
            self.out.emit(at, kind);
            self.fail_attempt(at, d, g, p, off, None);
        }
        self.epoch = epoch;
        self.next_msg = self.next_msg.max(u64::from(epoch) << 40);
        self.out.emit(at, EventKind::Recovered { epoch });
    }
}
