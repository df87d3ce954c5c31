//! Backpressure: the overflow policy is the configured one, and a queue pushes back only when
//! it may have been full.
//!
//! The history does not record a queue's depth, so the check bounds it. When the broker
//! refused a publish (somewhere between the attempt's invoke at `t0` and its `fail` at `t1`)
//! or dropped a message for room (at `t0 = t1`, broker time), the messages that may have been
//! stored and not leased then number at most
//!
//! ```text
//! sent(t1 + slack) - final(t0 - slack) - leased_throughout(t0 - slack, t1 + slack)
//! ```
//!
//! where `sent` counts the destination's messages whose first publish was invoked by then
//! (messages that were never stored are left out), `final` those acked, dead-lettered, expired
//! or dropped by then, and `leased_throughout` those delivered before `t0 - slack` whose lease
//! was still live after `t1 + slack`. A refusal with this bound below `max_length`, or a
//! drop-head drop with it at or below `max_length` (the new message is counted too), is a
//! violation. The check is skipped where `max_bytes` could be the limit that was hit.
//!
//! Drop-head must drop the oldest ready message: a drop is a violation when a message of the
//! same partition with a smaller offset was confirmed before it, not yet delivered (its first
//! receive was invoked after the drop) and not final until after it.

use mqsim_broker::{DestinationKind, OverflowPolicy};

use crate::sim::history::{Op, What};

use super::facts::{Facts, NONE};
use super::messages::Walked;
use super::settings::Settings;
use super::{Counts, Findings, Invariant};

/// Which destinations the walk must keep leases and final times for.
pub fn needs_leases(f: &Facts<'_>, s: &Settings) -> Vec<bool> {
    let mut v = vec![false; s.destinations.len()];
    let mut mark = |d: u16| {
        if let Some(x) = v.get_mut(usize::from(d)) {
            *x = true;
        }
    };
    for &i in f.rejections.iter().chain(&f.overflow_drops) {
        let e = &f.entries[i as usize];
        match e.what {
            What::Broker { sub, .. } => {
                if let Some(&d) = s.sub_destination.get(usize::from(sub)) {
                    mark(d);
                }
            }
            _ => {
                if let Some(p) = f.plan.producer(e.process) {
                    mark(p.destination);
                }
            }
        }
    }
    v
}

/// Runs the backpressure checks.
pub fn check(
    f: &Facts<'_>,
    s: &Settings,
    walked: &Walked,
    needs: &[bool],
    out: &mut Findings,
    counts: &mut Counts,
) {
    counts.rejected = f.rejections.len() as u64;
    for (d, dest) in s.destinations.iter().enumerate() {
        // A queue that confirmed no more messages than `max_length` never held more than that
        // ready. The walk counted them, so that this check need not go through the message
        // table again (a trip through memory, on a history larger than the caches).
        let confirmed = walked.confirmed.get(d).copied().unwrap_or(u64::MAX);
        if dest.kind == DestinationKind::Queue && confirmed > dest.max_length {
            depth_bound(f, s, d as u16, dest.max_length, out);
        }
    }
    for (d, dest) in s.destinations.iter().enumerate() {
        if !needs[d] {
            continue;
        }
        let d = d as u16;
        let rejections: Vec<u32> = f
            .rejections
            .iter()
            .copied()
            .filter(|&i| {
                f.plan
                    .producer(f.entries[i as usize].process)
                    .is_some_and(|p| p.destination == d)
            })
            .collect();
        let drops: Vec<u32> = f
            .overflow_drops
            .iter()
            .copied()
            .filter(|&i| match f.entries[i as usize].what {
                What::Broker { sub, .. } => s.sub_destination.get(usize::from(sub)) == Some(&d),
                _ => false,
            })
            .collect();
        match dest.overflow {
            OverflowPolicy::RejectPublish => {
                for &i in &drops {
                    out.add(
                        Invariant::Backpressure,
                        "dropped-under-reject-publish",
                        "a message was dropped for room although the policy is reject-publish"
                            .to_owned(),
                        message_of(f, i),
                        vec![i],
                    );
                }
            }
            OverflowPolicy::DropHead => {
                for &i in &rejections {
                    out.add(
                        Invariant::Backpressure,
                        "rejected-under-drop-head",
                        "a publish was refused as full although the policy is drop-head".to_owned(),
                        message_of(f, i),
                        vec![i],
                    );
                }
                drop_order(f, s, d, &drops, out);
            }
        }
        if dest.kind != DestinationKind::Queue
            || !s.length_binds.get(usize::from(d)).copied().unwrap_or(false)
        {
            continue;
        }
        let bound = Bound::new(f, walked, d);
        let slack = s.slack_ns;
        for &i in &rejections {
            let t1 = f.at(i);
            let t0 = match f.entries[i as usize].what {
                What::Failed { invoke, .. } => f.at(invoke).min(t1),
                _ => t1,
            };
            let most = bound.most(t0.saturating_sub(slack), t1.saturating_add(slack));
            if most < dest.max_length {
                out.add(
                    Invariant::Backpressure,
                    "rejected-below-max-length",
                    format!(
                        "a publish was refused as full while at most {most} messages could have been \
                         ready, under max_length {}",
                        dest.max_length
                    ),
                    message_of(f, i),
                    vec![i],
                );
            }
        }
        for &i in &drops {
            let t = f.at(i);
            let most = bound.most(t.saturating_sub(slack), t.saturating_add(slack));
            if most <= dest.max_length {
                out.add(
                    Invariant::Backpressure,
                    "dropped-below-max-length",
                    format!(
                        "a message was dropped for room while at most {most} messages (the new one \
                         included) could have been ready, under max_length {}",
                        dest.max_length
                    ),
                    message_of(f, i),
                    vec![i],
                );
            }
        }
    }
}

fn message_of(f: &Facts<'_>, i: u32) -> Vec<u64> {
    super::facts::message_of(&f.entries[i as usize], &f.ids)
        .into_iter()
        .collect()
}

/// The upper bound on a queue's stored, unleased messages described in the module docs.
struct Bound {
    sent: Vec<u64>,
    finals: Vec<u64>,
    /// Leases that ended, as `(start, end)` by start, and the longest of them.
    leases: Vec<(u64, u64)>,
    longest_ns: u64,
    /// Starts of leases that never ended, sorted.
    open: Vec<u64>,
}

impl Bound {
    fn new(f: &Facts<'_>, walked: &Walked, d: u16) -> Bound {
        let mut sent: Vec<u64> = Vec::new();
        for (m, msg) in f.msgs.iter().enumerate() {
            if msg.destination != d || msg.invoke == NONE || msg.aborted() {
                continue;
            }
            sent.push(f.at(msg.invoke));
            // A retried publish may have been stored more than once (the first attempt's reply
            // was lost and the retry carried no dedup id), and each copy takes room: every
            // later attempt counts as another message sent, which keeps the bound an upper
            // bound whether or not the copy was stored.
            if msg.attempts > 1 {
                for i in f.timeline(m) {
                    if i != msg.invoke
                        && matches!(
                            f.entries[i as usize].what,
                            What::Invoke {
                                op: Op::Publish,
                                ..
                            }
                        )
                    {
                        sent.push(f.at(i));
                    }
                }
            }
        }
        sent.sort_unstable();
        let own = |sub: u16| f.plan.subs_of(d).contains(&sub);
        let mut finals: Vec<u64> = walked
            .finals
            .iter()
            .filter(|(sub, _, _)| own(*sub))
            .map(|&(_, _, t)| t)
            .collect();
        finals.sort_unstable();
        let (mut leases, mut open) = (Vec::new(), Vec::new());
        for l in walked.leases.iter().filter(|l| own(l.sub)) {
            let start = f.at(l.deliver);
            if l.end_ns == u64::MAX {
                open.push(start);
            } else {
                leases.push((start, l.end_ns));
            }
        }
        leases.sort_unstable();
        open.sort_unstable();
        let longest_ns = leases
            .iter()
            .map(|&(start, end)| end.saturating_sub(start))
            .max()
            .unwrap_or(0);
        Bound {
            sent,
            finals,
            leases,
            longest_ns,
            open,
        }
    }

    /// At most how many messages may have been stored and not leased at some instant in
    /// `[a, b]`. Only leases that started within the longest lease before `a` can still be
    /// live after `b`, so a query looks at those alone.
    fn most(&self, a: u64, b: u64) -> u64 {
        let sent = self.sent.partition_point(|&t| t <= b) as u64;
        let finals = self.finals.partition_point(|&t| t <= a) as u64;
        let from = self
            .leases
            .partition_point(|&(start, _)| start < a.saturating_sub(self.longest_ns));
        let to = self.leases.partition_point(|&(start, _)| start <= a);
        let ended_later = self.leases[from..to.max(from)]
            .iter()
            .filter(|&&(_, end)| end > b)
            .count() as u64;
        let never_ended = self.open.partition_point(|&t| t <= a) as u64;
        sent.saturating_sub(finals)
            .saturating_sub(ended_later + never_ended)
    }
}

/// A queue never holds more than `max_length` ready messages. At each confirm the messages
/// certainly stored (confirmed a tick before) number at least that many, less those that may
/// have left the ready set by a tick after (a receive got them, or the broker reported
/// something about them, or a receive whose outcome is unknown may have leased them: as many
/// as it asked for, from its invoke until its lease would have run out, when the broker
/// reports the expiry); more than `max_length` is a violation, reported once per queue.
fn depth_bound(f: &Facts<'_>, s: &Settings, d: u16, max_length: u64, out: &mut Findings) {
    let mut oks: Vec<(u64, u32)> = Vec::new();
    let mut lefts: Vec<u64> = Vec::new();
    for msg in f.msgs.iter().filter(|m| m.destination == d && m.ok != NONE) {
        oks.push((msg.ok_ns, msg.ok));
        lefts.push(msg.left_ns);
    }
    if (oks.len() as u64) <= max_length {
        return;
    }
    // (invoke time, lease end, most messages taken) of the destination's receives with
    // unknown outcome.
    let mut uncertain: Vec<(u64, u64, u64)> = f
        .uncertain_receives
        .iter()
        .filter_map(|&i| match f.entries[i as usize].what {
            What::Failed { invoke, .. } => f.entries.get(invoke as usize),
            _ => None,
        })
        .filter(|e| {
            matches!(e.what, What::Invoke { sub, .. }
                if s.sub_destination.get(usize::from(sub)) == Some(&d))
        })
        .map(|e| {
            let p = usize::from(e.process);
            let lease_ns = s
                .process_visibility_ms
                .get(p)
                .map_or(0, |ms| ms * 1_000_000);
            let most = s.process_max_messages.get(p).copied().unwrap_or(0);
            (e.at_ns, e.at_ns.saturating_add(lease_ns), most)
        })
        .collect();
    // The same, by lease end: from then on, a message the receive took is either ready
    // again or shown leaving by a broker event (its `left_ns`).
    let mut returned: Vec<(u64, u64)> = uncertain.iter().map(|&(_, end, n)| (end, n)).collect();
    oks.sort_unstable();
    lefts.sort_unstable();
    uncertain.sort_unstable();
    returned.sort_unstable();
    let slack = s.slack_ns;
    let (mut stored, mut left) = (0usize, 0usize);
    let (mut taken, mut back, mut unseen) = (0usize, 0usize, 0u64);
    for &(t, i) in &oks {
        while stored < oks.len() && oks[stored].0.saturating_add(slack) <= t {
            stored += 1;
        }
        while left < lefts.len() && lefts[left] <= t.saturating_add(slack) {
            left += 1;
        }
        while taken < uncertain.len() && uncertain[taken].0 <= t.saturating_add(slack) {
            unseen += uncertain[taken].2;
            taken += 1;
        }
        while back < returned.len() && returned[back].0.saturating_add(slack) < t {
            unseen = unseen.saturating_sub(returned[back].1);
            back += 1;
        }
        let least = (stored.saturating_sub(left) as u64).saturating_sub(unseen);
        if least > max_length {
            out.add(
                Invariant::Backpressure,
                "depth-over-max-length",
                format!(
                    "at least {least} messages were ready at once, over max_length {max_length}"
                ),
                Vec::new(),
                vec![i],
            );
            return;
        }
    }
}

/// Drop-head drops the oldest ready message of a partition.
fn drop_order(f: &Facts<'_>, s: &Settings, d: u16, drops: &[u32], out: &mut Findings) {
    let slack = s.slack_ns;
    // Confirmed messages of the destination by (partition, offset): when they were stored
    // for certain, and when they certainly left the ready set at the earliest.
    let mut stored: Vec<(u32, u64, u64, u64, u32)> = Vec::new();
    for (m, msg) in f.msgs.iter().enumerate() {
        if msg.destination != d || msg.ok == NONE {
            continue;
        }
        let What::Ok {
            op: Op::Publish,
            partition,
            offset,
            ..
        } = f.entries[msg.ok as usize].what
        else {
            continue;
        };
        stored.push((partition, offset, msg.ok_ns, msg.left_ns, m as u32));
    }
    stored.sort_unstable();
    for &i in drops {
        let What::Broker {
            partition, offset, ..
        } = f.entries[i as usize].what
        else {
            continue;
        };
        let t = f.at(i);
        let from = stored.partition_point(|x| x.0 < partition);
        let to = stored.partition_point(|x| (x.0, x.1) < (partition, offset));
        // Scan at most a bounded window of older messages: the oldest ready ones are near
        // the head, and a drop-heavy run has many drops.
        let window = &stored[from..to];
        let older = window.iter().take(256).find(|&&(_, _, ok_ns, left_ns, _)| {
            ok_ns.saturating_add(slack) < t && left_ns > t.saturating_add(slack)
        });
        if let Some(&(_, _, _, _, m)) = older {
            let older_id = f.msgs[m as usize].id;
            let mut ids = message_of(f, i);
            ids.push(older_id);
            out.add(
                Invariant::Backpressure,
                "dropped-not-oldest",
                format!(
                    "drop-head dropped a message while the older message {older_id} of the same \
                     partition was still ready"
                ),
                ids,
                vec![f.msgs[m as usize].ok, i],
            );
        }
    }
}
