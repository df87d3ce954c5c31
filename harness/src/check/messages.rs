//! The per-message invariants: each message's timeline is walked once per subscription it
//! touches, in recording order.
//!
//! Also gathered here, for the ordering and backpressure checks: each message's first
//! delivery per subscription, its leases, when it became final, and how many messages each
//! destination confirmed.

use crate::sim::history::{BrokerEvent, Op, What};
use crate::sim::ids::NO_MSG;
use crate::sim::plan::{Process, SubIndex};

use super::facts::{Facts, Msg, NONE};
use super::settings::{DeliveryMode, Settings};
use super::{Counts, Findings, Invariant};

/// A lease as the history brackets it.
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    /// The subscription.
    pub sub: SubIndex,
    /// Index into `Facts::msgs`.
    pub msg: u32,
    /// The `deliver` entry.
    pub deliver: u32,
    /// Broker time (or an upper bound) at which it ended; `u64::MAX` if it never did.
    pub end_ns: u64,
}

/// A message's first delivery in a subscription.
#[derive(Debug, Clone, Copy)]
pub struct FirstDelivery {
    pub sub: SubIndex,
    /// Index into `Facts::msgs`.
    pub msg: u32,
    /// The `deliver` entry.
    pub deliver: u32,
    /// When its receive was invoked, and when it was recorded: the broker delivered it in
    /// between.
    pub lo_ns: u64,
    pub hi_ns: u64,
}

/// What the walk hands on to the other checkers.
#[derive(Debug, Default)]
pub struct Walked {
    /// Every message's first delivery in each subscription of its own destination, unless the
    /// broker counted it as a redelivery.
    pub first_deliveries: Vec<FirstDelivery>,
    /// Per destination, how many of its messages were confirmed.
    pub confirmed: Vec<u64>,
    /// Every lease, in subscriptions whose destination needs them (FIFO groups or a bound
    /// that was hit).
    pub leases: Vec<Lease>,
    /// `(subscription, message index, ns)`: when the message became final in a subscription
    /// of its own destination (or `u64::MAX`), for destinations whose bound was hit.
    pub finals: Vec<(SubIndex, u32, u64)>,
}

/// State of one message in one subscription during the walk.
#[derive(Debug, Default)]
struct Walk {
    deliveries: u32,
    applied: u32,
    completed: bool,
    /// Earliest proof of an ack: `(time, entry)`.
    acked: Option<(u64, u32)>,
    final_event: Option<(BrokerEvent, u32)>,
    dead_lettered: Option<u32>,
    failures: u32,
    last_delivery: Option<u32>,
    last_count: u32,
    lease_open: bool,
    last_failure: Option<(u64, u32, u32)>,
    /// The last two deliveries and when the broker ended their leases (`u64::MAX`: not
    /// seen to end), to tell which lease an ack settles.
    recent: [(u32, u64); 2],
    final_ns: u64,
    too_many_reported: bool,
    /// The highest delivery count whose lease the broker ended before its delivery was
    /// recorded (a reply held on a link, or sent just before a crash): such a delivery, when
    /// it arrives, holds no lease.
    ended_unseen: u32,
}

impl Walk {
    /// The walks of two copies of one message combined into the message's: deliveries and
    /// effects add up, and it is done when either copy is.
    fn merge(self, o: Walk) -> Walk {
        let earliest = |a: Option<(u64, u32)>, b: Option<(u64, u32)>| match (a, b) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        };
        Walk {
            deliveries: self.deliveries + o.deliveries,
            applied: self.applied + o.applied,
            completed: self.completed || o.completed,
            acked: earliest(self.acked, o.acked),
            final_event: self.final_event.or(o.final_event),
            dead_lettered: self.dead_lettered.or(o.dead_lettered),
            failures: self.failures + o.failures,
            last_delivery: self.last_delivery.max(o.last_delivery),
            final_ns: self.final_ns.min(o.final_ns),
            ..self
        }
    }
}

/// How far ahead of the first entry of the message it walks the walk reads the entries (and
/// their chain links) in order, so that they are in the cache before the walk follows the
/// chains: 4,096 entries are 256 KiB of entries and 16 KiB of links, within a core's L2 cache,
/// and more than nearly every message spans (in the bench's large history, 99.9 % of messages
/// span fewer than 1,450 entries).
const TOUCH_AHEAD: usize = 4096;

/// The read-ahead runs in bursts: once the walk's first entry is within this many entries of
/// the end of what was read, the next stretch up to [`TOUCH_AHEAD`] is read in one tight
/// loop. Independent loads in a row keep many cache misses in flight at once; the same reads
/// spread a few at a time between the walk's steps had few in flight, and each waited on
/// memory (on the bench's large history the walk went from 10.9–11.3 ms to 9.6–10.0 ms;
/// benches/checkers.md).
const TOUCH_LOW: usize = 2048;

/// Runs the per-message checks; `needs_leases[d]` says which destinations' leases and final
/// times the later checks want.
pub fn check(
    f: &Facts<'_>,
    s: &Settings,
    drained: bool,
    needs_leases: &[bool],
    out: &mut Findings,
    counts: &mut Counts,
) -> Walked {
    let mut walked = Walked {
        confirmed: vec![0; s.destinations.len()],
        ..Walked::default()
    };
    for &i in &f.foreign {
        out.add(
            Invariant::NoCreation,
            "unknown-message",
            "a message no producer of this run made was delivered or reported".to_owned(),
            Vec::new(),
            vec![i],
        );
    }
    let mut subs: Vec<SubIndex> = Vec::new();
    // A message's entries lie close to its first one, but a chain visits them in an order no
    // cache foresees: on a history larger than the caches every step would wait for memory,
    // and the walk would run at memory latency rather than memory bandwidth. So the entries
    // are read in order a little ahead of the walk, in bursts (see [`TOUCH_LOW`]). The values
    // read are folded into one number handed to `black_box`, only so that the compiler keeps
    // the reads.
    let mut ahead = 0usize;
    let mut touched = 0u64;
    for (m, msg) in f.msgs.iter().enumerate() {
        let first = f.first(m) as usize;
        if ahead < first.saturating_add(TOUCH_LOW) {
            let to = first.saturating_add(TOUCH_AHEAD).min(f.entries.len());
            while ahead < to {
                touched ^= f.entries[ahead].at_ns ^ u64::from(f.next_at(ahead));
                ahead += 1;
            }
        }
        publish_checks(f, msg, m, out, counts);
        if msg.confirmed()
            && let Some(n) = walked.confirmed.get_mut(usize::from(msg.destination))
        {
            *n += 1;
        }
        // The subscriptions to walk: those the message must reach, and any it showed up in
        // (a dead-letter queue's, say).
        subs.clear();
        if msg.destination != u16::MAX {
            subs.extend_from_slice(f.plan.subs_of(msg.destination));
        }
        for sub in f.timeline(m).map(|i| f.sub_at(i)) {
            if sub != crate::sim::plan::NO_SUB && !subs.contains(&sub) {
                subs.push(sub);
            }
        }
        // Only a message published more than once can have been stored more than once.
        let copies = if msg.attempts > 1 {
            Copies::of(f, m)
        } else {
            Copies::default()
        };
        for &sub in &subs {
            let own = s.sub_destination.get(usize::from(sub)) == Some(&msg.destination);
            let needs = own && needs_leases.get(usize::from(msg.destination)) == Some(&true);
            let w = if copies.ids.len() > 1 {
                // Each stored copy has its own leases, acks and delivery count, so the checks
                // between deliveries run per copy; loss and duplicates are judged for the
                // message, over all its copies. Each copy took room in the destination until
                // it was final, which backpressure counts.
                let mut merged: Option<Walk> = None;
                for (k, &c) in copies.ids.iter().enumerate() {
                    let only = Some((c, copies.owners.as_slice(), k == 0));
                    let w = walk(
                        f,
                        s,
                        m,
                        msg,
                        sub,
                        own,
                        needs,
                        only,
                        out,
                        counts,
                        &mut walked,
                    );
                    if needs {
                        walked.finals.push((sub, m as u32, w.final_ns));
                    }
                    merged = Some(match merged {
                        None => w,
                        Some(a) => a.merge(w),
                    });
                }
                merged.unwrap_or_default()
            } else {
                walk(
                    f,
                    s,
                    m,
                    msg,
                    sub,
                    own,
                    needs,
                    None,
                    out,
                    counts,
                    &mut walked,
                )
            };
            finish(f, s, drained, msg, sub, own, &w, out, counts);
            if needs && copies.ids.len() <= 1 {
                walked.finals.push((sub, m as u32, w.final_ns));
            }
        }
    }
    std::hint::black_box(touched);
    if !drained {
        out.unknown(
            Invariant::NoLoss,
            "the drain did not finish, so unfinished messages may still have been on their way",
        );
    }
    walked
}

fn publish_checks(f: &Facts<'_>, msg: &Msg, m: usize, out: &mut Findings, counts: &mut Counts) {
    let first = f.timeline(m).next().unwrap_or(NONE);
    if msg.invoke == NONE && msg.seen {
        out.add(
            Invariant::NoCreation,
            "never-published",
            format!("message {} was seen but never published", msg.id),
            vec![msg.id],
            vec![first],
        );
    }
    if msg.aborted() && msg.seen {
        let seen = f
            .timeline(m)
            .find(|&i| {
                matches!(
                    f.entries[i as usize].what,
                    What::Deliver { .. } | What::Broker { .. }
                )
            })
            .unwrap_or(first);
        out.add(
            Invariant::NoAbortedRead,
            "aborted-publish-seen",
            format!(
                "every publish of message {} failed, yet it was seen afterwards",
                msg.id
            ),
            vec![msg.id],
            vec![msg.invoke, seen],
        );
    }
    if !msg.confirmed() && msg.info && msg.seen {
        counts.recovered += 1;
    }
}

/// The broker copies of a message stored more than once (a producer's retry of a publish
/// that had in fact been stored, without a dedup id): their broker ids in the order the
/// history first shows them, and for each entry of the message's timeline, the copy it is
/// about. An ack's reply is about the copy the broker reported acked before it; other entries
/// that name no broker id (effects) are about the copy last delivered to their process.
#[derive(Debug, Default)]
struct Copies {
    ids: Vec<u64>,
    owners: Vec<u64>,
}

impl Copies {
    fn of(f: &Facts<'_>, m: usize) -> Copies {
        let mut c = Copies::default();
        let mut latest: Vec<(Process, u64)> = Vec::new();
        // Copies the broker acked whose ack reply has not come yet.
        let mut acked: std::collections::VecDeque<(u32, u64)> = std::collections::VecDeque::new();
        for i in f.timeline(m) {
            let e = &f.entries[i as usize];
            let named = match e.what {
                What::Deliver { broker_msg, .. } | What::Broker { broker_msg, .. } => broker_msg,
                What::Ok {
                    op: Op::Publish,
                    broker_msg,
                    ..
                } => broker_msg,
                _ => NO_MSG,
            };
            let owner = if named != NO_MSG {
                if !c.ids.contains(&named) {
                    c.ids.push(named);
                }
                match e.what {
                    What::Deliver { .. } => {
                        match latest.iter_mut().find(|(p, _)| *p == e.process) {
                            Some(l) => l.1 = named,
                            None => latest.push((e.process, named)),
                        }
                    }
                    What::Broker {
                        event: BrokerEvent::Acked,
                        ..
                    } => acked.push_back((i, named)),
                    _ => {}
                }
                named
            } else if let What::Ok {
                op: Op::Ack,
                invoke,
                ..
            } = e.what
                && let Some(copy) = {
                    // An ack's reply names no copy, but the broker said which copy it acked,
                    // after the ack was sent and before the reply; acks whose replies were
                    // lost leave events that no reply claims, so those before this ack's
                    // invoke are passed over.
                    while acked.front().is_some_and(|&(at, _)| at < invoke) {
                        acked.pop_front();
                    }
                    acked.pop_front().map(|(_, copy)| copy)
                }
            {
                copy
            } else {
                latest
                    .iter()
                    .find(|(p, _)| *p == e.process)
                    .map_or(NO_MSG, |l| l.1)
            };
            c.owners.push(owner);
        }
        c
    }
}

/// Which copy a walk is limited to: its broker id, the owners of the timeline's entries
/// ([`Copies::owners`]), and whether it is the first copy (whose first delivery is the
/// message's, for ordering).
type Only<'a> = Option<(u64, &'a [u64], bool)>;

#[allow(clippy::too_many_arguments)]
fn walk(
    f: &Facts<'_>,
    s: &Settings,
    m: usize,
    msg: &Msg,
    sub: SubIndex,
    own: bool,
    needs_leases: bool,
    only: Only<'_>,
    out: &mut Findings,
    counts: &mut Counts,
    walked: &mut Walked,
) -> Walk {
    let slack = s.slack_ns;
    let dest = s.sub_dest(sub);
    let mode = s.mode(sub);
    let ms = |x: u64| x.saturating_mul(1_000_000);
    let keep_leases = dest.is_some_and(|d| d.fifo_groups) || (own && needs_leases);
    let mut w = Walk {
        final_ns: u64::MAX,
        recent: [(NONE, u64::MAX); 2],
        ..Walk::default()
    };
    let mut open_lease: Option<usize> = None;
    let id = msg.id;
    for (k, i) in f.timeline(m).enumerate() {
        if f.sub_at(i) != sub {
            continue;
        }
        if let Some((copy, owners, _)) = only
            && owners.get(k).is_some_and(|&o| o != copy)
        {
            continue;
        }
        let at = f.at(i);
        match f.entries[i as usize].what {
            What::Deliver { delivery_count, .. } => {
                w.deliveries += 1;
                if delivery_count > 1 {
                    counts.redeliveries += 1;
                }
                // A delivery the broker counted before the previous one recorded here reached
                // its consumer late (a slow link, a reply sent just before a crash): it is that
                // earlier lease arriving, not a new one, so it is judged by neither lease
                // exclusivity nor the retry backoff, and the walk keeps following the newer
                // lease.
                let late = delivery_count < w.last_count || delivery_count <= w.ended_unseen;
                let lo = f.receive_invoked_at(i);
                if let Some((ta, ea)) = w.acked
                    && lo > ta.saturating_add(slack)
                {
                    out.add(
                        Invariant::NoResurrection,
                        "delivered-after-ack",
                        format!("message {id} was delivered again after it was acked"),
                        vec![id],
                        vec![ea, i],
                    );
                }
                if let Some(dl) = w.dead_lettered
                    && lo > f.at(dl).saturating_add(slack)
                {
                    out.add(
                        Invariant::DlqExactness,
                        "delivered-after-dead-letter",
                        format!(
                            "message {id} was delivered from its source after it was dead-lettered"
                        ),
                        vec![id],
                        vec![dl, i],
                    );
                }
                if let Some(prev) = w.last_delivery
                    && w.lease_open
                    && !late
                    && surely_before_lease_end(f, s, prev, at)
                {
                    out.add(
                        Invariant::LeaseExclusivity,
                        "redelivered-during-lease",
                        format!(
                            "message {id} was delivered again while its earlier lease was live"
                        ),
                        vec![id],
                        vec![prev, i],
                    );
                }
                if let (Some((tf, ef, count)), Some(d)) = (w.last_failure, dest)
                    && d.retry.multiplier >= 1.0
                    && !late
                {
                    let backoff = ms(d.retry.backoff_ms(count.max(1)));
                    if at.saturating_add(slack) < tf.saturating_add(backoff) {
                        out.add(
                            Invariant::Timing,
                            "redelivered-before-backoff",
                            format!(
                                "message {id} was redelivered before its retry backoff of {} ms ended",
                                backoff / 1_000_000
                            ),
                            vec![id],
                            vec![ef, i],
                        );
                    }
                }
                if own && let Some(d) = dest {
                    // A first delivery in the history that the broker counts as a later
                    // one is a redelivery (the consumer that took the first crashed before
                    // it could record it), and ordering does not judge redeliveries.
                    if w.deliveries == 1
                        && delivery_count <= 1
                        && only.is_none_or(|(_, _, first)| first)
                    {
                        walked.first_deliveries.push(FirstDelivery {
                            sub,
                            msg: m as u32,
                            deliver: i,
                            lo_ns: lo,
                            hi_ns: at,
                        });
                    }
                    if w.deliveries == 1
                        && d.delay_ms > 0
                        && msg.invoke != NONE
                        && at.saturating_add(slack)
                            < f.at(msg.invoke).saturating_add(ms(d.delay_ms))
                    {
                        out.add(
                            Invariant::Timing,
                            "delivered-before-delay",
                            format!(
                                "message {id} was delivered before its delay of {} ms ended",
                                d.delay_ms
                            ),
                            vec![id],
                            vec![msg.invoke, i],
                        );
                    }
                    if let Some(ttl) = d.message_ttl_ms
                        && msg.ok != NONE
                        && lo > f.at(msg.ok).saturating_add(ms(ttl)).saturating_add(slack)
                    {
                        out.add(
                            Invariant::Timing,
                            "delivered-after-ttl",
                            format!(
                                "message {id} was delivered after its time to live of {ttl} ms"
                            ),
                            vec![id],
                            vec![msg.ok, i],
                        );
                    }
                }
                if let Some(max) = dest.and_then(|d| d.max_deliveries)
                    && w.deliveries > max
                    && !w.too_many_reported
                {
                    w.too_many_reported = true;
                    out.add(
                        Invariant::DlqExactness,
                        "delivered-more-than-max",
                        format!(
                            "message {id} was delivered {} times, more than max_deliveries {max}",
                            w.deliveries
                        ),
                        vec![id],
                        vec![i],
                    );
                }
                if mode == DeliveryMode::AtMostOnce {
                    w.final_ns = w.final_ns.min(at);
                }
                w.recent = [(i, u64::MAX), w.recent[0]];
                if !late {
                    w.last_delivery = Some(i);
                    w.last_count = delivery_count;
                    // Under auto acks a delivery takes no lease.
                    w.lease_open = mode != DeliveryMode::AtMostOnce;
                    w.last_failure = None;
                }
                if keep_leases {
                    open_lease = Some(walked.leases.len());
                    walked.leases.push(Lease {
                        sub,
                        msg: m as u32,
                        deliver: i,
                        end_ns: u64::MAX,
                    });
                }
            }
            What::Effect { applied, .. } => {
                w.applied += u32::from(applied);
                if mode == DeliveryMode::AtMostOnce {
                    w.completed = true;
                }
            }
            What::Ok {
                op: Op::Ack,
                invoke,
                ..
            } => {
                stale_ack_check(f, s, &w, id, invoke, i, out);
                w.completed = true;
                w.acked = Some(w.acked.map_or((at, i), |a| a.min((at, i))));
                w.final_ns = w.final_ns.min(at);
                end_lease(walked, &mut open_lease, at);
            }
            What::Broker { event, count, .. } => {
                let mut ended = true;
                match event {
                    BrokerEvent::Acked => {
                        w.completed = true;
                        w.acked = Some(w.acked.map_or((at, i), |a| a.min((at, i))));
                        w.final_ns = w.final_ns.min(at);
                    }
                    BrokerEvent::Nacked
                    | BrokerEvent::LeaseExpired
                    | BrokerEvent::LeaseReleased => {
                        if event != BrokerEvent::Nacked && !w.lease_open {
                            // No lease is known to be open, so this one belongs to a delivery
                            // the history has not shown yet.
                            w.ended_unseen = w.ended_unseen.max(w.last_count + 1);
                        }
                        w.failures += 1;
                        w.last_failure = Some((at, i, w.last_count));
                        if event == BrokerEvent::LeaseExpired
                            && let Some(prev) = w.last_delivery
                            && w.lease_open
                            && surely_before_lease_end(f, s, prev, at)
                        {
                            out.add(
                                Invariant::LeaseExclusivity,
                                "lease-expired-early",
                                format!(
                                    "the lease of message {id} ran out before its visibility timeout"
                                ),
                                vec![id],
                                vec![prev, i],
                            );
                        }
                    }
                    BrokerEvent::DeadLettered => {
                        counts.dead_lettered += 1;
                        if !msg.poison {
                            counts.healthy_dead_lettered += 1;
                        }
                        dead_letter_checks(f, s, msg, sub, &w, i, count, out);
                        w.dead_lettered = Some(i);
                        w.final_event = Some((event, i));
                        w.final_ns = w.final_ns.min(at);
                    }
                    BrokerEvent::Expired => {
                        counts.expired += 1;
                        w.final_event = Some((event, i));
                        w.final_ns = w.final_ns.min(at);
                    }
                    BrokerEvent::DroppedOverflow
                    | BrokerEvent::DroppedMaxDeliveries
                    | BrokerEvent::DroppedSkipped => {
                        counts.dropped += 1;
                        w.final_event = Some((event, i));
                        w.final_ns = w.final_ns.min(at);
                    }
                    _ => ended = false,
                }
                if ended {
                    if w.recent[0].1 == u64::MAX {
                        w.recent[0].1 = at;
                    }
                    w.lease_open = false;
                    end_lease(walked, &mut open_lease, at);
                }
            }
            _ => {}
        }
    }
    w
}

/// An ack is accepted only for a live lease: one whose end the broker reported before the
/// ack was sent was settled with a stale receipt.
#[allow(clippy::too_many_arguments)]
fn stale_ack_check(
    f: &Facts<'_>,
    s: &Settings,
    w: &Walk,
    id: u64,
    invoke: u32,
    i: u32,
    out: &mut Findings,
) {
    let Some(ack) = f.entries.get(invoke as usize) else {
        return;
    };
    // The lease the ack settles: the acking consumer's latest delivery.
    let lease = w
        .recent
        .iter()
        .find(|(d, _)| *d != NONE && f.entries[*d as usize].process == ack.process);
    if let Some(&(d, ended)) = lease
        && ended != u64::MAX
        && ended.saturating_add(s.slack_ns) < ack.at_ns
    {
        out.add(
            Invariant::LeaseExclusivity,
            "stale-ack-accepted",
            format!("message {id} was acked with the receipt of a lease that had already ended"),
            vec![id],
            vec![d, invoke, i],
        );
    }
}

fn end_lease(walked: &mut Walked, open: &mut Option<usize>, at: u64) {
    if let Some(l) = open.take()
        && let Some(lease) = walked.leases.get_mut(l)
    {
        lease.end_ns = at;
    }
}

/// Whether time `at` certainly falls before the lease of delivery entry `d` could end: the
/// lease started no earlier than its receive was invoked and lasts the visibility timeout.
fn surely_before_lease_end(f: &Facts<'_>, s: &Settings, d: u32, at: u64) -> bool {
    let vis_ns = visibility(f, s, d).saturating_mul(1_000_000);
    at.saturating_add(s.slack_ns) < f.receive_invoked_at(d).saturating_add(vis_ns)
}

/// The lease length, in ms, of the receive behind delivery entry `i`.
fn visibility(f: &Facts<'_>, s: &Settings, i: u32) -> u64 {
    let p = f.entries[i as usize].process;
    s.process_visibility_ms
        .get(usize::from(p))
        .copied()
        .unwrap_or(0)
}

#[allow(clippy::too_many_arguments)]
fn dead_letter_checks(
    f: &Facts<'_>,
    s: &Settings,
    msg: &Msg,
    sub: SubIndex,
    w: &Walk,
    i: u32,
    count: u32,
    out: &mut Findings,
) {
    let id = msg.id;
    let Some(d) = s.sub_dest(sub) else {
        return;
    };
    if let Some((_, ea)) = w.acked {
        out.add(
            Invariant::DlqExactness,
            "dead-lettered-after-ack",
            format!("message {id} was dead-lettered after it was acked"),
            vec![id],
            vec![ea, i],
        );
    }
    // Expiry under `on_expiry: dead-letter` dead-letters whatever the delivery count.
    let by_expiry = matches!(d.on_expiry, mqsim_broker::ExpiryAction::DeadLetter)
        && d.message_ttl_ms.is_some_and(|ttl| {
            msg.invoke != NONE
                && f.at(i).saturating_add(s.slack_ns)
                    >= f.at(msg.invoke)
                        .saturating_add(ttl.saturating_mul(1_000_000))
        });
    let Some(max) = d.max_deliveries else {
        if !by_expiry {
            out.add(
                Invariant::DlqExactness,
                "dead-lettered-without-max-deliveries",
                format!("message {id} was dead-lettered by a destination without max_deliveries"),
                vec![id],
                vec![i],
            );
        }
        return;
    };
    if by_expiry {
        return;
    }
    if count != max || w.failures < max {
        out.add(
            Invariant::DlqExactness,
            "dead-lettered-early",
            format!(
                "message {id} was dead-lettered after {} failed deliveries (delivery count {count}), \
                 not max_deliveries {max}",
                w.failures
            ),
            vec![id],
            vec![i],
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn finish(
    f: &Facts<'_>,
    s: &Settings,
    drained: bool,
    msg: &Msg,
    sub: SubIndex,
    own: bool,
    w: &Walk,
    out: &mut Findings,
    counts: &mut Counts,
) {
    let id = msg.id;
    let mode = s.mode(sub);
    if w.deliveries > 1 {
        counts.duplicate_deliveries += u64::from(w.deliveries - 1);
        if mode == DeliveryMode::AtMostOnce {
            out.add(
                Invariant::NoDuplicateDeliveries,
                "duplicate-delivery",
                format!(
                    "message {id} was delivered {} times under at-most-once",
                    w.deliveries
                ),
                vec![id],
                vec![w.last_delivery.unwrap_or(NONE)],
            );
        }
    }
    if w.applied > 1 {
        counts.duplicate_effects += u64::from(w.applied - 1);
        if mode == DeliveryMode::ExactlyOnce {
            out.add(
                Invariant::NoDuplicateEffects,
                "duplicate-effect",
                format!(
                    "message {id}'s effect was applied {} times under exactly-once",
                    w.applied
                ),
                vec![id],
                vec![w.last_delivery.unwrap_or(NONE)],
            );
        }
    }
    if !own || !msg.confirmed() {
        return;
    }
    let done = w.completed || w.final_event.is_some();
    if !done {
        counts.lost += 1;
        if mode == DeliveryMode::AtMostOnce {
            counts.lost_at_most_once += 1;
        } else if drained {
            let sub_name = f.plan.subs.get(usize::from(sub));
            out.add(
                Invariant::NoLoss,
                "lost",
                format!(
                    "message {id} was confirmed but never completed or discarded in {}{}",
                    sub_name.map_or("?", |x| x.destination.as_str()),
                    sub_name
                        .and_then(|x| x.group.as_deref())
                        .map(|g| format!("/{g}"))
                        .unwrap_or_default()
                ),
                vec![id],
                vec![msg.ok],
            );
        }
    }
    let poison_ok = matches!(
        w.final_event,
        Some((
            BrokerEvent::DeadLettered
                | BrokerEvent::DroppedMaxDeliveries
                | BrokerEvent::Expired
                | BrokerEvent::DroppedOverflow,
            _
        ))
    );
    if drained
        && msg.poison
        && mode != DeliveryMode::AtMostOnce
        && s.sub_dest(sub).is_some_and(|d| d.max_deliveries.is_some())
        && done
        && !poison_ok
    {
        out.add(
            Invariant::DlqExactness,
            "poison-not-dead-lettered",
            format!("poison message {id} ended without being dead-lettered"),
            vec![id],
            vec![w.last_delivery.unwrap_or(msg.ok)],
        );
    }
}
