//! Invariants between messages: lost-before-successor, ordering and FIFO-group exclusivity.
//! Each sorts a list of per-message records once and compares neighbours.

use crate::sim::history::NO_KEY;

use super::facts::{Facts, NONE};
use super::messages::Walked;
use super::settings::Settings;
use super::{Counts, Findings, Invariant};

/// Runs the checks between messages.
pub fn check(
    f: &Facts<'_>,
    s: &Settings,
    walked: &Walked,
    out: &mut Findings,
    counts: &mut Counts,
) {
    lost_before_successor(f, out);
    ordering(f, s, walked, out, counts);
    fifo_exclusivity(f, s, walked, out);
}

/// `(producer, key, partition)`.
type Lane = (u16, u32, u32);

/// A message's place in its producer's sequence: `(producer, key, partition)`. Unkeyed
/// messages are ordered only within a partition, so their key part is the partition.
fn lane(f: &Facts<'_>, m: usize) -> Option<Lane> {
    let msg = &f.msgs[m];
    if msg.invoke == NONE {
        return None;
    }
    let partition = f.partition(m)?;
    Some((msg.producer, msg.key, partition))
}

fn lost_before_successor(f: &Facts<'_>, out: &mut Findings) {
    // (lane, first invoke time, message index)
    let mut v: Vec<(Lane, u64, u32)> = f
        .msgs
        .iter()
        .enumerate()
        .filter(|(_, msg)| msg.seen || msg.confirmed())
        .filter_map(|(m, msg)| Some((lane(f, m)?, f.at(msg.invoke), m as u32)))
        .collect();
    v.sort_unstable();
    for group in v.chunk_by(|a, b| a.0 == b.0) {
        // The latest-sent message of the lane that was seen.
        let Some(&(_, last_seen_ns, last)) = group
            .iter()
            .rev()
            .find(|(_, _, m)| f.msgs[*m as usize].seen)
        else {
            continue;
        };
        for &(_, _, m) in group {
            let msg = &f.msgs[m as usize];
            if msg.seen || !msg.confirmed() {
                continue;
            }
            // Both times are the producer's own clock: no slack needed.
            if f.at(msg.ok) < last_seen_ns {
                let later = &f.msgs[last as usize];
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
}

fn ordering(f: &Facts<'_>, s: &Settings, walked: &Walked, out: &mut Findings, counts: &mut Counts) {
    // (subscription, lane, first invoke entry, deliver entry, message index)
    let mut v: Vec<(u16, Lane, u32, u32, u32)> = walked
        .first_deliveries
        .iter()
        .filter_map(|&(sub, m, d)| {
            let lane = lane(f, m as usize)?;
            Some((sub, lane, f.msgs[m as usize].invoke, d, m))
        })
        .collect();
    v.sort_unstable();
    for pair in v.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        if a.0 != b.0 || a.1 != b.1 {
            continue;
        }
        let (ma, mb) = (&f.msgs[a.4 as usize], &f.msgs[b.4 as usize]);
        // Only a message confirmed before the next was sent has a place in the order.
        if !ma.confirmed() || f.at(ma.ok) > f.at(mb.invoke) {
            continue;
        }
        // b was first delivered no later than its deliver entry, a no earlier than its
        // receive was invoked.
        if f.at(b.3).saturating_add(s.slack_ns) < f.receive_invoked_at(a.3) {
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
                vec![b.3, a.3],
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
