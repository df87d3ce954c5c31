//! The reference model: what the broker should answer, written as plainly as possible.
//!
//! Every message ever stored in any destination is one element of a `Vec`, in the order it
//! arrived, and carries one [`Claim`] per subscription saying where that subscription stands
//! with it. Every question ("what is ready?", "which timer is due next?", "how deep is the
//! queue?") is answered by scanning that `Vec` from scratch. Nothing is indexed, cached or
//! counted incrementally, so that each rule of the documented semantics appears once, in a form
//! that can be checked by reading it.
//!
//! The model covers what the generator in `ops.rs` produces: queues and topics without FIFO
//! groups, transactions, seeks or groups created at run time.
//! This file holds the data and the mechanics every command shares (storing, timers, failed
//! deliveries, dead-lettering, drop-head); `commands.rs` the commands and stats;
//! `durability.rs` syncs, crashes and restarts.
//!
//! Readings of the documentation that the broker's code alone does not settle are stated where
//! they apply: what "oldest" means for drop-head (`oldest_droppable`) and for redrive
//! (`redrive`), and what a restart without a disk crash keeps (`Model::restart`).

use std::rc::Rc;

use bytes::Bytes;
use mqsim_broker::{
    BrokerError, Confirm, DestinationConfig, DestinationKind, ExpiryAction, MessageId,
    OverflowPolicy, Time,
};

mod commands;
mod durability;

pub use durability::Model;

/// How long a message that a full dead-letter queue refused waits before it is tried again.
/// The broker does not make this configurable, so the model has to repeat the number.
const DEAD_LETTER_RETRY_MS: u64 = 1000;

/// What the model needs to know about one destination, read from the generated configuration.
#[derive(Debug, Clone)]
pub struct Dest {
    pub name: String,
    pub topic: bool,
    pub partitions: u32,
    /// Subscription names: a queue has one unnamed subscription, a topic one per group.
    pub subs: Vec<Option<String>>,
    pub visibility_ms: u64,
    pub delay_ms: u64,
    pub message_ttl_ms: Option<u64>,
    /// An expired message is dead-lettered (otherwise it is dropped).
    pub expiry_dead_letters: bool,
    pub max_length: u64,
    pub max_bytes: u64,
    pub drop_head: bool,
    pub max_payload_bytes: u32,
    pub dedup_window_ms: u64,
    pub max_dedup_ids: usize,
    pub max_deliveries: Option<u32>,
    /// Index of the dead-letter queue.
    pub dead_letter: Option<usize>,
    /// Some destination dead-letters into this one, so it can be redriven.
    pub is_dead_letter_target: bool,
    /// Retry backoff as (initial, multiplier, cap); the generator only uses whole multipliers.
    pub backoff: (u64, u64, u64),
    pub max_in_flight: u32,
}

impl Dest {
    fn from_config(all: &[DestinationConfig], c: &DestinationConfig) -> Dest {
        let index_of = |name: &str| all.iter().position(|d| d.name == name);
        let topic = c.kind == DestinationKind::Topic;
        assert!(
            c.retry.multiplier.fract() == 0.0,
            "the model needs whole multipliers"
        );
        Dest {
            name: c.name.clone(),
            topic,
            partitions: c.partitions,
            subs: if topic {
                c.groups.iter().map(|g| Some(g.name.clone())).collect()
            } else {
                vec![None]
            },
            visibility_ms: c.visibility_timeout_ms,
            delay_ms: c.delay_ms,
            message_ttl_ms: c.message_ttl_ms,
            expiry_dead_letters: c.on_expiry == ExpiryAction::DeadLetter,
            max_length: c.max_length,
            max_bytes: c.max_bytes,
            drop_head: c.overflow == OverflowPolicy::DropHead,
            max_payload_bytes: c.max_payload_bytes,
            dedup_window_ms: c.dedup_window_ms,
            max_dedup_ids: c.max_dedup_ids as usize,
            max_deliveries: c.max_deliveries,
            dead_letter: c.dead_letter.as_deref().and_then(index_of),
            is_dead_letter_target: all
                .iter()
                .any(|d| d.dead_letter.as_deref() == Some(c.name.as_str())),
            backoff: (
                c.retry.initial_backoff_ms,
                c.retry.multiplier as u64,
                c.retry.max_backoff_ms,
            ),
            max_in_flight: c.max_in_flight_per_consumer,
        }
    }

    /// Milliseconds before the next attempt after the `failures`-th failed delivery:
    /// `min(initial * multiplier^(failures - 1), cap)`, by repeated multiplication.
    fn backoff_ms(&self, failures: u32) -> u64 {
        let (initial, multiplier, cap) = self.backoff;
        let mut delay = initial;
        for _ in 1..failures {
            delay = delay.saturating_mul(multiplier).min(cap);
        }
        delay.min(cap)
    }
}

/// One delivery as a consumer sees it. The broker's opaque receipt is replaced by the test's
/// own lease handle: the number of explicit-ack deliveries handed out before this one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub message_id: MessageId,
    pub partition: u32,
    pub offset: u64,
    pub key: Option<String>,
    pub payload: Bytes,
    pub delivery_count: u32,
    pub published_at: Time,
    pub lease: Option<usize>,
}

/// Where one subscription stands with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Can be delivered now.
    Ready,
    /// Becomes ready (or, if a dead-letter is pending, is dead-lettered again) at `until`.
    Waiting { until: u64 },
    /// Leased by `consumer` under the test's handle `lease` until `until`.
    Leased {
        until: u64,
        lease: usize,
        consumer: u64,
    },
}

#[derive(Debug, Clone)]
struct Claim {
    status: Status,
    deliveries: u32,
    /// The message's time to live ran out while it was leased (in a queue): it expires when the
    /// lease ends without an ack.
    expired: bool,
    /// A full dead-letter queue refused this message; it is tried again when its wait ends.
    dead_letter_pending: bool,
}

/// A message as stored in one destination. A message that is dead-lettered or redriven is
/// stored again, as a new element, in its new destination.
#[derive(Debug, Clone)]
struct Stored {
    dest: usize,
    partition: u32,
    offset: u64,
    id: u64,
    key: Option<String>,
    payload: Bytes,
    /// When it arrived in this destination (publish, dead-lettering or redrive).
    published_at: u64,
    /// When its time to live runs out; `None` if it has none or its expiry was dealt with.
    expires_at: Option<u64>,
    /// Still in the destination's log. For a queue this is the same as "its one claim is
    /// there"; a topic keeps consumed messages until drop-head pushes them out.
    in_log: bool,
    /// For a dead-lettered copy: the destination and subscription it failed in.
    origin: Option<(usize, usize)>,
    /// Per subscription; `None` once that subscription is done with the message (or, for a
    /// message redriven to one group of a topic, for the other groups from the start).
    claims: Vec<Option<Claim>>,
}

impl Stored {
    fn size(&self) -> u64 {
        self.payload.len() as u64
    }
}

/// A dedup id remembered by an accepted publish.
#[derive(Debug, Clone)]
struct Remembered {
    dest: usize,
    dedup_id: String,
    confirm: Confirm,
    at: u64,
}

/// A message about to be stored.
struct Incoming {
    id: u64,
    key: Option<String>,
    payload: Bytes,
    visible_at: u64,
    expires_at: Option<u64>,
    origin: Option<(usize, usize)>,
    only_sub: Option<usize>,
}

/// Timers fire in (deadline, destination, subscription, partition, offset) order.
type TimerOrder = (u64, usize, usize, u32, u64);

/// Where a message's expiry falls in the timer order: it is not one subscription's timer, and
/// fires after those of every subscription of its destination due at the same instant.
/// (A reading of the code's `TTL_GROUP`; the docs do not place it.)
const EXPIRY: usize = usize::MAX;

/// Everything a broker incarnation knows; cloned whole to remember what a sync made durable.
#[derive(Debug, Clone)]
pub struct World {
    dests: Rc<[Dest]>,
    now: u64,
    epoch: u32,
    /// Message ids handed out by this incarnation so far.
    ids_issued: u64,
    /// Every message ever stored, in arrival order.
    msgs: Vec<Stored>,
    /// Per destination and subscription, the partition a receive looks at first.
    rotation: Vec<Vec<u32>>,
    /// Per destination, the partition the next unkeyed message goes to.
    publish_turn: Vec<u32>,
    /// Every dedup id remembered, in the order remembered.
    dedup: Vec<Remembered>,
}

fn invalid(what: &'static str) -> BrokerError {
    BrokerError::InvalidArgument {
        what: what.into(),
        detail: String::new(),
    }
}

/// FNV-1a (64 bit) of the key, as the documentation says partitions are chosen.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn leased_by(claim: &Option<Claim>, consumer: u64) -> bool {
    matches!(claim, Some(Claim { status: Status::Leased { consumer: c, .. }, .. }) if *c == consumer)
}

impl World {
    fn fresh(dests: Rc<[Dest]>, now: u64, epoch: u32) -> World {
        World {
            rotation: dests.iter().map(|d| vec![0; d.subs.len()]).collect(),
            publish_turn: vec![0; dests.len()],
            dests,
            now,
            epoch,
            ids_issued: 0,
            msgs: Vec::new(),
            dedup: Vec::new(),
        }
    }

    fn dest_index(&self, name: &str) -> Result<usize, BrokerError> {
        self.dests
            .iter()
            .position(|d| d.name == name)
            .ok_or_else(|| BrokerError::UnknownDestination(name.to_owned()))
    }

    fn sub_index(&self, d: usize, group: Option<&str>) -> Result<usize, BrokerError> {
        let dest = &self.dests[d];
        match (dest.topic, group) {
            (false, None) => Ok(0),
            (false, Some(_)) => Err(BrokerError::GroupNotAllowed(dest.name.clone())),
            (true, None) => Err(BrokerError::GroupRequired(dest.name.clone())),
            (true, Some(g)) => dest
                .subs
                .iter()
                .position(|s| s.as_deref() == Some(g))
                .ok_or_else(|| BrokerError::UnknownGroup {
                    destination: dest.name.clone(),
                    group: g.to_owned(),
                }),
        }
    }

    fn claim(&self, i: usize, g: usize) -> Option<&Claim> {
        self.msgs[i].claims[g].as_ref()
    }

    fn claim_mut(&mut self, i: usize, g: usize) -> &mut Claim {
        self.msgs[i].claims[g]
            .as_mut()
            .expect("a claim the caller saw")
    }

    /// What counts against `max_length` and `max_bytes`: a queue counts messages that are not
    /// leased, a topic its whole log.
    fn counts_toward_length(&self, m: &Stored) -> bool {
        if self.dests[m.dest].topic {
            m.in_log
        } else {
            matches!(&m.claims[0], Some(c) if !matches!(c.status, Status::Leased { .. }))
        }
    }

    fn length(&self, d: usize) -> (u64, u64) {
        let counted = self
            .msgs
            .iter()
            .filter(|m| m.dest == d && self.counts_toward_length(m));
        counted.fold((0, 0), |(n, b), m| (n + 1, b + m.size()))
    }

    fn fits(&self, d: usize, size: u64) -> bool {
        let (n, b) = self.length(d);
        n < self.dests[d].max_length && b + size <= self.dests[d].max_bytes
    }

    fn log_end(&self, d: usize, p: u32) -> u64 {
        let in_partition = self.msgs.iter().filter(|m| m.dest == d && m.partition == p);
        in_partition.count() as u64
    }

    /// The subscription is done with the message; a queue forgets it.
    fn finish(&mut self, i: usize, g: usize) {
        self.msgs[i].claims[g] = None;
        if !self.dests[self.msgs[i].dest].topic {
            self.msgs[i].in_log = false;
        }
    }

    /// Removes a message from its destination for every subscription (drop-head, or a topic's
    /// retention when its time to live runs out).
    fn drop_message(&mut self, i: usize) {
        let m = &mut self.msgs[i];
        m.in_log = false;
        m.claims.iter_mut().for_each(|c| *c = None);
    }

    /// What drop-head removes first: the message that arrived in the destination earliest
    /// among those that count toward its length (so a queue never drops a leased message).
    ///
    /// Reading of the docs: "the oldest messages" means the earliest arrivals in this
    /// destination. A message moved here by dead-lettering or redrive arrives when it is moved
    /// (its `published_at` says so), even though it keeps its older message id.
    fn oldest_droppable(&self, d: usize) -> Option<usize> {
        (0..self.msgs.len())
            .find(|&i| self.msgs[i].dest == d && self.counts_toward_length(&self.msgs[i]))
    }

    /// Stores a message in `d` at `at`, making room first under drop-head. Reject-publish was
    /// checked by the caller. Returns the message's place.
    fn store(&mut self, at: u64, d: usize, m: Incoming) -> (u32, u64) {
        let size = m.payload.len() as u64;
        if self.dests[d].drop_head {
            while !self.fits(d, size) {
                let Some(oldest) = self.oldest_droppable(d) else {
                    break;
                };
                self.drop_message(oldest);
            }
        }
        let n = self.dests[d].partitions;
        let partition = match &m.key {
            Some(k) => (fnv1a(k.as_bytes()) % u64::from(n)) as u32,
            None => {
                let p = self.publish_turn[d];
                self.publish_turn[d] = (p + 1) % n;
                p
            }
        };
        let offset = self.log_end(d, partition);
        let status = if m.visible_at > at {
            Status::Waiting {
                until: m.visible_at,
            }
        } else {
            Status::Ready
        };
        let claims = (0..self.dests[d].subs.len())
            .map(|g| {
                m.only_sub.is_none_or(|only| only == g).then_some(Claim {
                    status,
                    deliveries: 0,
                    expired: false,
                    dead_letter_pending: false,
                })
            })
            .collect();
        self.msgs.push(Stored {
            dest: d,
            partition,
            offset,
            id: m.id,
            key: m.key,
            payload: m.payload,
            published_at: at,
            expires_at: m.expires_at,
            in_log: true,
            origin: m.origin,
            claims,
        });
        (partition, offset)
    }

    /// A delivery failed at `at` (nack, lease expiry, restart): a message whose time to live
    /// ran out meanwhile expires now; otherwise dead-letter it if it has had `max_deliveries`,
    /// or retry after the given delay or the backoff.
    fn fail(&mut self, at: u64, i: usize, g: usize, delay_ms: Option<u64>) {
        let dests = Rc::clone(&self.dests);
        let dest = &dests[self.msgs[i].dest];
        let Some(claim) = self.claim(i, g) else {
            return;
        };
        if claim.expired {
            self.expire_claim(at, i, g);
            return;
        }
        if dest
            .max_deliveries
            .is_some_and(|max| claim.deliveries >= max)
        {
            self.dead_letter(at, i, g);
            return;
        }
        let delay = delay_ms.unwrap_or_else(|| dest.backoff_ms(claim.deliveries));
        self.claim_mut(i, g).status = if delay > 0 {
            Status::Waiting { until: at + delay }
        } else {
            Status::Ready
        };
    }

    /// Moves a message that ran out of deliveries to the dead-letter queue, or discards it if
    /// there is none. A full reject-publish dead-letter queue refuses it: the message waits and
    /// is tried again later.
    fn dead_letter(&mut self, at: u64, i: usize, g: usize) {
        let d = self.msgs[i].dest;
        let Some(t) = self.dests[d].dead_letter else {
            self.finish(i, g);
            return;
        };
        if !self.dests[t].drop_head && !self.fits(t, self.msgs[i].size()) {
            let claim = self.claim_mut(i, g);
            claim.dead_letter_pending = true;
            claim.status = Status::Waiting {
                until: at + DEAD_LETTER_RETRY_MS,
            };
            return;
        }
        let m = &self.msgs[i];
        let copy = Incoming {
            id: m.id,
            key: m.key.clone(),
            payload: m.payload.clone(),
            visible_at: at + self.dests[t].delay_ms,
            expires_at: self.dests[t].message_ttl_ms.map(|ttl| at + ttl),
            origin: Some((d, g)),
            only_sub: None,
        };
        self.finish(i, g);
        self.store(at, t, copy);
    }

    /// One subscription is done with an expired message: it is dead-lettered (which a full
    /// dead-letter queue may refuse for now) or dropped, as the destination says.
    fn expire_claim(&mut self, at: u64, i: usize, g: usize) {
        if self.dests[self.msgs[i].dest].expiry_dead_letters {
            self.dead_letter(at, i, g);
        } else {
            self.finish(i, g);
        }
    }

    /// A message's time to live ran out at `at`. In a queue, a leased message is marked and
    /// expires when its lease ends without an ack; any other expires now. A topic's retention
    /// removes the message whatever its groups are doing: each group that still held it gets
    /// a dead-lettered copy if so configured and the dead-letter queue takes it now (retention
    /// cannot wait for room), and otherwise just loses it.
    fn expire(&mut self, at: u64, i: usize) {
        self.msgs[i].expires_at = None;
        let d = self.msgs[i].dest;
        if !self.dests[d].topic {
            match self.claim(i, 0).map(|c| c.status) {
                Some(Status::Leased { .. }) => self.claim_mut(i, 0).expired = true,
                Some(_) => self.expire_claim(at, i, 0),
                None => {}
            }
            return;
        }
        for g in 0..self.dests[d].subs.len() {
            if self.claim(i, g).is_none() {
                continue;
            }
            let dlq_takes_it = self.dests[d]
                .dead_letter
                .is_some_and(|t| self.dests[t].drop_head || self.fits(t, self.msgs[i].size()));
            if self.dests[d].expiry_dead_letters && dlq_takes_it {
                self.dead_letter(at, i, g);
            } else {
                self.finish(i, g);
            }
        }
        self.drop_message(i);
    }

    /// Fires every timer due by `now`, one at a time, always the earliest in (deadline,
    /// destination, subscription, partition, offset) order, each at its own deadline.
    fn advance(&mut self, now: u64) {
        loop {
            let mut next: Option<(TimerOrder, usize)> = None;
            for (i, m) in self.msgs.iter().enumerate() {
                if let Some(deadline) = m.expires_at
                    && m.in_log
                {
                    let order = (deadline, m.dest, EXPIRY, m.partition, m.offset);
                    if deadline <= now && next.is_none_or(|(o, _)| order < o) {
                        next = Some((order, i));
                    }
                }
                for (g, c) in m.claims.iter().enumerate() {
                    let deadline = match c.as_ref().map(|c| c.status) {
                        Some(Status::Waiting { until }) | Some(Status::Leased { until, .. }) => {
                            until
                        }
                        _ => continue,
                    };
                    let order = (deadline, m.dest, g, m.partition, m.offset);
                    if deadline <= now && next.is_none_or(|(o, _)| order < o) {
                        next = Some((order, i));
                    }
                }
            }
            let Some(((at, _, g, _, _), i)) = next else {
                break;
            };
            if g == EXPIRY {
                self.expire(at, i);
                continue;
            }
            let claim = self.claim(i, g).expect("the claim just found");
            match claim.status {
                Status::Waiting { .. } if claim.dead_letter_pending => self.dead_letter(at, i, g),
                Status::Waiting { .. } => self.claim_mut(i, g).status = Status::Ready,
                Status::Leased { .. } => self.fail(at, i, g, None),
                Status::Ready => unreachable!("ready claims have no timer"),
            }
        }
        self.now = now;
    }

    /// The message and subscription that a lease handle names, if the lease is still held.
    fn find_lease(&self, lease: Option<usize>) -> Result<(usize, usize), BrokerError> {
        for (i, m) in self.msgs.iter().enumerate() {
            for (g, c) in m.claims.iter().enumerate() {
                if let Some(Claim {
                    status: Status::Leased { lease: held, .. },
                    ..
                }) = c
                    && Some(*held) == lease
                {
                    return Ok((i, g));
                }
            }
        }
        Err(BrokerError::StaleReceipt)
    }

    /// Releases every lease at `at` as a failed delivery, in (destination, subscription,
    /// partition, offset) order: what a restart does.
    fn release_leases(&mut self, at: u64) {
        let mut leased = Vec::new();
        for (i, m) in self.msgs.iter().enumerate() {
            for (g, c) in m.claims.iter().enumerate() {
                if matches!(
                    c,
                    Some(Claim {
                        status: Status::Leased { .. },
                        ..
                    })
                ) {
                    leased.push((m.dest, g, m.partition, m.offset, i));
                }
            }
        }
        leased.sort();
        for (_, g, _, _, i) in leased {
            self.fail(at, i, g, None);
        }
    }
}
