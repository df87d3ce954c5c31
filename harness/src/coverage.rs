//! Coverage signals: which interesting paths a run actually went through, counted from its
//! history. A scenario (or an exploration) meant to exercise dead-lettering but whose runs
//! never dead-letter anything tests less than it seems to; the table makes that visible.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Serialize;

use crate::sim::history::{BrokerEvent, History, Op, What};

/// The paths counted, in report order, with what each counts.
pub const PATHS: [(&str, &str); 8] = [
    ("lease_expiry", "leases that ran out (a redelivery follows)"),
    ("dead_lettered", "messages moved to a dead-letter queue"),
    ("dedup_hit", "publishes the broker recognised as duplicates"),
    ("overflow_reject", "publishes refused by a full destination"),
    ("drop_head", "messages dropped by drop-head"),
    ("crash_recovery", "broker recoveries and host restarts"),
    ("partition_heal", "partitions healed"),
    ("producer_retry", "publish attempts after a message's first"),
];

/// How often a run went through each path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Coverage {
    pub lease_expiry: u64,
    pub dead_lettered: u64,
    pub dedup_hit: u64,
    pub overflow_reject: u64,
    pub drop_head: u64,
    pub crash_recovery: u64,
    pub partition_heal: u64,
    pub producer_retry: u64,
}

impl Coverage {
    /// The counts in [`PATHS`] order.
    pub fn counts(&self) -> [u64; 8] {
        [
            self.lease_expiry,
            self.dead_lettered,
            self.dedup_hit,
            self.overflow_reject,
            self.drop_head,
            self.crash_recovery,
            self.partition_heal,
            self.producer_retry,
        ]
    }

    /// Counts `history`; `rejected` is the checkers' count of publishes refused as full.
    pub fn of(history: &History, rejected: u64) -> Coverage {
        let mut c = Coverage {
            overflow_reject: rejected,
            ..Coverage::default()
        };
        let mut published = BTreeSet::new();
        for e in history.entries() {
            match e.what {
                What::Broker { event, count, .. } => match event {
                    BrokerEvent::LeaseExpired => c.lease_expiry += 1,
                    BrokerEvent::DeadLettered => c.dead_lettered += 1,
                    BrokerEvent::DroppedOverflow => c.drop_head += 1,
                    // Epoch 1 is the broker's first start, not a recovery.
                    BrokerEvent::Recovered if count > 1 => c.crash_recovery += 1,
                    _ => {}
                },
                // A message's first publish goes into the set; any later one is a retry.
                What::Invoke {
                    op: Op::Publish,
                    msg,
                    ..
                } if !published.insert(msg) => c.producer_retry += 1,
                // A confirm's count is 1 for a duplicate the broker recognised.
                What::Ok {
                    op: Op::Publish,
                    count: 1,
                    ..
                } => c.dedup_hit += 1,
                What::Nemesis { text } => {
                    let text = history.string(text);
                    // The heal at the end of every fault phase ("heal all") is not a
                    // partition's.
                    if text.starts_with("heal ") && text != "heal all" {
                        c.partition_heal += 1;
                    } else if text.starts_with("restart ") {
                        c.crash_recovery += 1;
                    }
                }
                _ => {}
            }
        }
        c
    }
}

/// The coverage table of several runs: per path, the runs that reached it and the total count;
/// a path no run reached is flagged.
pub fn table(runs: &[Coverage]) -> String {
    let mut s = format!("coverage over {} runs:\n", runs.len());
    let width = PATHS.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (i, (name, what)) in PATHS.iter().enumerate() {
        let reached = runs.iter().filter(|c| c.counts()[i] > 0).count();
        let total: u64 = runs.iter().map(|c| c.counts()[i]).sum();
        let flag = if reached == 0 { "  NEVER REACHED" } else { "" };
        let _ = writeln!(
            s,
            "  {name:<width$}  {reached:>5} runs  {total:>8} times  ({what}){flag}"
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::ClusterSpec;
    use crate::sim::plan::Plan;
    use crate::sim::read;

    #[test]
    fn each_path_is_counted_from_the_history() {
        let spec: ClusterSpec = serde_norway::from_str(
            "seed: 1\nduration_ms: 1000\ndrain_timeout_ms: 1000\nbroker:\n  destinations:\n    \
             - { name: q }\nproducers: [{ destination: q }]\nconsumers: [{ destination: q }]\n",
        )
        .unwrap();
        let plan = Plan::new(&spec);
        // Message 1 is sent twice (a retry) and confirmed as a duplicate the second time; a
        // partition heals; the broker restarts.
        let text = r#"
{"time_ms":1,"process":"producer-0","type":"invoke","op":"publish","msg":1,"intended_ns":0}
{"time_ms":2,"process":"producer-0","type":"info","op":"publish","invoke":0,"msg":1}
{"time_ms":3,"process":"producer-0","type":"invoke","op":"publish","msg":1,"intended_ns":0}
{"time_ms":4,"process":"producer-0","type":"ok","op":"publish","invoke":2,"msg":1,"duplicate":true}
{"time_ms":0,"process":"broker","type":"broker","event":"recovered","epoch":1}
{"time_ms":5,"process":"nemesis","type":"nemesis","fault":"partition producer-0 | broker"}
{"time_ms":6,"process":"nemesis","type":"nemesis","fault":"heal producer-0 | broker"}
{"time_ms":7,"process":"nemesis","type":"nemesis","fault":"restart consumer-0"}
{"time_ms":8,"process":"nemesis","type":"nemesis","fault":"heal all"}
{"time_ms":9,"process":"broker","type":"broker","event":"recovered","epoch":2}
"#;
        let h = read::read(text, &plan).unwrap();
        let c = Coverage::of(&h, 2);
        assert_eq!(c.producer_retry, 1);
        assert_eq!(c.dedup_hit, 1);
        assert_eq!(c.partition_heal, 1);
        // The restart and the broker's second epoch; not its first start.
        assert_eq!(c.crash_recovery, 2);
        assert_eq!(c.overflow_reject, 2);
        assert_eq!(c.lease_expiry + c.dead_lettered + c.drop_head, 0);
        let t = table(&[c, Coverage::default()]);
        assert!(t.contains("dedup_hit") && t.contains("    1 runs"), "{t}");
        assert_eq!(t.matches("NEVER REACHED").count(), 3, "{t}");
    }
}
