//! Invariants between messages: lost-before-successor, ordering and FIFO-group exclusivity.
//! Each compares neighbours: consecutive messages of a lane, or deliveries of a key.

use std::collections::BTreeMap;

use crate::sim::history::NO_KEY;

use super::facts::{Facts, NONE};
use super::messages::{FirstDelivery, Walked};
use super::settings::{DeliveryMode, Settings};
use super::{Counts, Findings, Invariant};

/// Runs the checks between messages.
pub fn check(
    f: &Facts<'_>,
    s: &Settings,
    walked: &Walked,
    out: &mut Findings,
    counts: &mut Counts,
) {
    lost_before_successor(f, s, out);
    ordering(f, s, walked, out, counts);
    fifo_exclusivity(f, s, walked, out);
}

/// `(producer, key, partition)`.
type Lane = (u16, u32, u32);

/// A message's place in its producer's sequence: `(producer, key, partition)`. Unkeyed
/// messages are ordered only within a partition, so their key part is the partition.
fn lane(f: &Facts<'_>, m: usize) -> Option<Lane> {
    let msg = &f.msgs[m];
    if msg.invoke == NONE || msg.partition == NONE {
        return None;
    }
    Some((msg.producer, msg.key, msg.partition))
}

/// Loss is allowed under at-most-once (a consumer whose receive timed out lost messages the
/// broker had already delivered and completed), so a message whose destination is read only
/// at-most-once is not judged.
fn lost_before_successor(f: &Facts<'_>, s: &Settings, out: &mut Findings) {
    let at_most_once = |destination: u16| {
        destination != u16::MAX
            && f.plan
                .subs_of(destination)
                .iter()
                .all(|&sub| s.mode(sub) == DeliveryMode::AtMostOnce)
    };
    // Per lane, the seen message sent last. Messages are in order of their first entry, their
    // publish invoke, so a later one in the same lane replaces an earlier one. Lanes are few
    // (producers times keys), so a map of them costs log(lanes) per message.
    let mut last_seen: BTreeMap<Lane, u32> = BTreeMap::new();
    for (m, msg) in f.msgs.iter().enumerate() {
        if msg.seen
            && let Some(lane) = lane(f, m)
        {
            last_seen.insert(lane, m as u32);
        }
    }
    for (m, msg) in f.msgs.iter().enumerate() {
        if msg.seen || !msg.confirmed() || at_most_once(msg.destination) {
            continue;
        }
        let Some(&last) = lane(f, m).and_then(|lane| last_seen.get(&lane)) else {
            continue;
        };
        let later = &f.msgs[last as usize];
        // Both times are the producer's own clock: no slack needed.
        if msg.ok_ns < later.invoke_ns {
            out.add(
                Invariant::LostBeforeSuccessor,
                "lost-before-successor",
                format!(
                    "message {} was confirmed and never seen, while message {}, sent after that \
                     confirm on the same key and partition, was seen",
                    msg.id, later.id
                ),
                vec![msg.id, later.id],
                vec![msg.ok, later.invoke],
            );
        }
    }
}

fn ordering(f: &Facts<'_>, s: &Settings, walked: &Walked, out: &mut Findings, counts: &mut Counts) {
    // First deliveries come in message order, which is publish order within a lane, so each
    // is compared with the previous first delivery of its subscription and lane.
    let mut previous: BTreeMap<(u16, Lane), FirstDelivery> = BTreeMap::new();
    for &b in &walked.first_deliveries {
        let Some(lane) = lane(f, b.msg as usize) else {
            continue;
        };
        let Some(a) = previous.insert((b.sub, lane), b) else {
            continue;
        };
        let (ma, mb) = (&f.msgs[a.msg as usize], &f.msgs[b.msg as usize]);
        // Only a message confirmed before the next was sent has a place in the order.
        if !ma.confirmed() || ma.ok_ns > mb.invoke_ns {
            continue;
        }
        // b was first delivered no later than its deliver entry, a no earlier than its
        // receive was invoked.
        if b.hi_ns.saturating_add(s.slack_ns) < a.lo_ns {
            counts.out_of_order += 1;
            out.add(
                Invariant::Ordering,
                "out-of-order",
                format!(
                    "message {} was first delivered before message {}, which was confirmed before it \
                     was sent",
                    mb.id, ma.id
                ),
                vec![ma.id, mb.id],
                vec![b.deliver, a.deliver],
            );
        }
    }
}

fn fifo_exclusivity(f: &Facts<'_>, s: &Settings, walked: &Walked, out: &mut Findings) {
    // (subscription, key, deliver entry, lease index)
    let mut v: Vec<(u16, u32, u32, usize)> = walked
        .leases
        .iter()
        .enumerate()
        .filter(|(_, l)| s.sub_dest(l.sub).is_some_and(|d| d.fifo_groups))
        .filter_map(|(k, l)| {
            let key = f.msgs[l.msg as usize].key;
            (key != NO_KEY).then_some((l.sub, key, l.deliver, k))
        })
        .collect();
    v.sort_unstable();
    for pair in v.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a.0 != b.0 || a.1 != b.1 {
            continue;
        }
        let (la, lb) = (walked.leases[a.3], walked.leases[b.3]);
        if la.msg == lb.msg {
            continue;
        }
        // Both came in one receive, so both were leased at once; or a was delivered before b
        // for certain, and its lease ended after b was delivered.
        let one_receive = receive_of(f, la.deliver) == receive_of(f, lb.deliver);
        let a_before_b =
            f.at(la.deliver).saturating_add(s.slack_ns) <= f.receive_invoked_at(lb.deliver);
        if one_receive || (a_before_b && la.end_ns > f.at(lb.deliver).saturating_add(s.slack_ns)) {
            let (ia, ib) = (f.msgs[la.msg as usize].id, f.msgs[lb.msg as usize].id);
            out.add(
                Invariant::FifoExclusivity,
                "two-in-flight",
                format!("messages {ia} and {ib} of one FIFO group were leased at the same time"),
                vec![ia, ib],
                vec![la.deliver, lb.deliver],
            );
        }
    }
}

/// The receive invoke behind delivery entry `i`.
fn receive_of(f: &Facts<'_>, i: u32) -> u32 {
    match f.entries[i as usize].what {
        crate::sim::history::What::Deliver { invoke, .. } => invoke,
        _ => NONE,
    }
}
