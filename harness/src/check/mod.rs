//! Checkers: a recorded history in, a verdict per invariant out.
//!
//! [`check`] is a pure function of a [`History`], the [`Plan`] that names its numbers, the
//! [`ClusterSpec`] the run followed (destination semantics, consumers' delivery modes, the
//! tick) and whether the drain finished. It does no I/O and reads no clock. Its cost is
//! linear in the history but for a few sorts (n·log n).
//!
//! # Time
//!
//! Entries carry simulated nanoseconds, but each at its own host, and the hosts of one
//! simulation step run one after another, each through the whole tick: two entries of
//! different hosts may be out of order by up to a tick. Every comparison of times recorded at
//! different hosts therefore allows one tick of *slack* in the direction that avoids a false
//! alarm. What the broker did is bracketed by what clients saw: the broker delivered a
//! message after the receive that got it was invoked and before its `deliver` entry was
//! recorded; it stored a message before the `ok` of its publish was recorded; broker events
//! carry the broker's own time. A violation is reported only when these brackets prove it.
//!
//! # Invariants
//!
//! Each [`Invariant`] documents its precise definition. The verdict is `valid` when no
//! anomaly was found, `invalid` with the anomalies otherwise, and `unknown` when the history
//! cannot decide it (no-loss when the drain did not finish).

mod backpressure;
mod facts;
mod messages;
mod metrics;
mod order;
mod series;
mod settings;

use serde::Serialize;

use crate::sim::history::History;
use crate::sim::plan::Plan;
use crate::sim::spec::ClusterSpec;

pub use metrics::{Histograms, Metrics, Percentiles, histogram, measure, percentiles};
pub use series::{FaultWindow, Series};
pub use settings::{DeliveryMode, Settings};

/// How many anomalies of one invariant a report lists; the count covers them all.
pub const ANOMALIES_SHOWN: usize = 20;

/// The invariants, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Invariant {
    /// Every message delivered or reported by the broker was published by a producer.
    NoCreation,
    /// No message whose every publish attempt definitely failed is ever delivered or reported.
    NoAbortedRead,
    /// After a finished drain every confirmed message is, in every subscription of its
    /// destination, completed (acked, or applied under auto acks), dead-lettered, expired or
    /// dropped by a policy. Loss in an at-most-once subscription is counted, not a violation.
    /// Unknown when the drain did not finish.
    NoLoss,
    /// A confirmed message that no one ever saw (delivered or reported by the broker), while
    /// a later message of the same producer, key and partition, sent after the first was
    /// confirmed, was seen: lost, whether or not the run drained.
    LostBeforeSuccessor,
    /// At-most-once subscriptions: no message delivered twice.
    NoDuplicateDeliveries,
    /// Exactly-once subscriptions: no message's effect applied twice.
    NoDuplicateEffects,
    /// No delivery by a receive invoked after the message was acked in that subscription.
    NoResurrection,
    /// No redelivery while an earlier lease of the message may still be live: a redelivery
    /// needs a nack, an expiry no earlier than the visibility timeout, or a broker restart.
    LeaseExclusivity,
    /// With `max_deliveries` N: dead-lettered only after N failed deliveries and with a
    /// delivery count of N; never more than N deliveries; never after an ack; never delivered
    /// from the source afterwards; after a finished drain every confirmed poison message was
    /// dead-lettered (or dropped after its last delivery without a dead-letter queue, or
    /// expired). "Healthy messages never do" is decided the same way: no message, poison or
    /// not, reaches the dead-letter queue without N observed failed deliveries (a healthy one
    /// can fail N times under crashes or partitions); the count of healthy dead letters is
    /// reported for expectations to bound.
    DlqExactness,
    /// Per subscription, producer and key (partition for unkeyed messages): when a message
    /// was confirmed before the next one was sent, the next one is not first-delivered
    /// before it. Redeliveries are counted apart, not as violations.
    Ordering,
    /// FIFO-group destinations: no two messages of one key leased at the same time.
    FifoExclusivity,
    /// A queue never holds more than `max_length` messages certainly ready; `reject-publish`
    /// never drops and `drop-head` never refuses; a refusal or an overflow drop happens only
    /// when at least `max_length` messages may have been stored and not leased; drop-head
    /// drops no message while an older one was certainly ready.
    Backpressure,
    /// No delivery before the destination's delay ended, none after the message's time to
    /// live, and no redelivery before the retry backoff after a failed delivery.
    Timing,
    /// The drain finished within its bound: every subscription producers publish to ended
    /// with nothing ready, delayed, leased or blocked.
    Liveness,
}

impl Invariant {
    /// Every invariant, in report order.
    pub const ALL: [Invariant; 14] = [
        Invariant::NoCreation,
        Invariant::NoAbortedRead,
        Invariant::NoLoss,
        Invariant::LostBeforeSuccessor,
        Invariant::NoDuplicateDeliveries,
        Invariant::NoDuplicateEffects,
        Invariant::NoResurrection,
        Invariant::LeaseExclusivity,
        Invariant::DlqExactness,
        Invariant::Ordering,
        Invariant::FifoExclusivity,
        Invariant::Backpressure,
        Invariant::Timing,
        Invariant::Liveness,
    ];

    /// The name in reports and scenario files.
    pub fn name(self) -> &'static str {
        match self {
            Invariant::NoCreation => "no-creation",
            Invariant::NoAbortedRead => "no-aborted-read",
            Invariant::NoLoss => "no-loss",
            Invariant::LostBeforeSuccessor => "lost-before-successor",
            Invariant::NoDuplicateDeliveries => "no-duplicate-deliveries",
            Invariant::NoDuplicateEffects => "no-duplicate-effects",
            Invariant::NoResurrection => "no-resurrection",
            Invariant::LeaseExclusivity => "lease-exclusivity",
            Invariant::DlqExactness => "dlq-exactness",
            Invariant::Ordering => "ordering",
            Invariant::FifoExclusivity => "fifo-exclusivity",
            Invariant::Backpressure => "backpressure",
            Invariant::Timing => "timing",
            Invariant::Liveness => "liveness",
        }
    }

    /// The invariant of a name.
    pub fn from_name(name: &str) -> Option<Invariant> {
        Invariant::ALL.into_iter().find(|i| i.name() == name)
    }
}

/// A verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Checked, and it held.
    Valid,
    /// It broke; the anomalies show where.
    Invalid,
    /// The history cannot decide it.
    Unknown,
}

/// One anomaly: what broke, the messages involved and the history entries (indexes into
/// [`History::entries`], which are also line numbers, from 0, of the history file) that show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Anomaly {
    /// A short kind, e.g. `delivered-after-ack`.
    pub kind: &'static str,
    /// A sentence for people.
    pub message: String,
    /// Harness message ids.
    pub message_ids: Vec<u64>,
    /// History entry indexes.
    pub entries: Vec<u32>,
}

/// The result of one invariant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvariantReport {
    /// Which.
    pub invariant: Invariant,
    /// The verdict.
    pub verdict: Verdict,
    /// Why it is unknown, when it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How many anomalies were found (all of them, not only those listed).
    pub violations: u64,
    /// The first [`ANOMALIES_SHOWN`] anomalies, in history order of their first entry.
    pub anomalies: Vec<Anomaly>,
}

/// Counts the checkers measure besides violations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// (Message, subscription) pairs where a confirmed message was not final after the run
    /// (any delivery mode).
    pub lost: u64,
    /// Of those, in at-most-once subscriptions, where loss is allowed.
    pub lost_at_most_once: u64,
    /// Messages without a confirm, with an indeterminate attempt, that were seen afterwards.
    pub recovered: u64,
    /// Deliveries beyond the first, per message and subscription.
    pub duplicate_deliveries: u64,
    /// Effects applied beyond the first, per message and subscription.
    pub duplicate_effects: u64,
    /// Ordering violations.
    pub out_of_order: u64,
    /// Redeliveries (deliveries with a delivery count above one).
    pub redeliveries: u64,
    /// Messages dead-lettered, per subscription.
    pub dead_lettered: u64,
    /// Of those, messages that were not poison.
    pub healthy_dead_lettered: u64,
    /// Messages expired, per subscription.
    pub expired: u64,
    /// Messages dropped (overflow, last delivery without a DLQ, seek), per subscription.
    pub dropped: u64,
    /// Publishes refused because the destination was full.
    pub rejected: u64,
}

/// What the checkers found in one history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// One entry per invariant, in [`Invariant::ALL`] order.
    pub invariants: Vec<InvariantReport>,
    /// The counts.
    pub counts: Counts,
}

impl Report {
    /// The report of one invariant.
    pub fn get(&self, invariant: Invariant) -> &InvariantReport {
        // `check` builds one report per invariant in `ALL` order.
        &self.invariants[invariant as usize]
    }

    /// Invariants other than liveness that are invalid.
    pub fn correctness_failures(&self) -> impl Iterator<Item = &InvariantReport> {
        self.invariants
            .iter()
            .filter(|r| r.verdict == Verdict::Invalid && r.invariant != Invariant::Liveness)
    }

    /// Whether liveness failed.
    pub fn liveness_failed(&self) -> bool {
        self.get(Invariant::Liveness).verdict == Verdict::Invalid
    }
}

/// Collects anomalies per invariant while the checkers run.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    found: Vec<(u64, Vec<Anomaly>)>,
    unknown: Vec<Option<String>>,
}

impl Findings {
    fn new() -> Self {
        Findings {
            found: vec![(0, Vec::new()); Invariant::ALL.len()],
            unknown: vec![None; Invariant::ALL.len()],
        }
    }

    /// Records an anomaly of `invariant`.
    pub(crate) fn add(
        &mut self,
        invariant: Invariant,
        kind: &'static str,
        message: String,
        message_ids: Vec<u64>,
        entries: Vec<u32>,
    ) {
        let (count, list) = &mut self.found[invariant as usize];
        *count += 1;
        list.push(Anomaly {
            kind,
            message,
            message_ids,
            entries,
        });
    }

    /// Marks `invariant` as undecidable, unless an anomaly proves it invalid anyway.
    pub(crate) fn unknown(&mut self, invariant: Invariant, reason: &str) {
        self.unknown[invariant as usize] = Some(reason.to_owned());
    }

    fn report(self, counts: Counts) -> Report {
        let invariants = Invariant::ALL
            .iter()
            .zip(self.found)
            .zip(self.unknown)
            .map(|((&invariant, (violations, mut anomalies)), unknown)| {
                // Checkers find anomalies in different passes; list them in history order.
                anomalies.sort_by_key(|a| a.entries.first().copied().unwrap_or(u32::MAX));
                anomalies.truncate(ANOMALIES_SHOWN);
                let verdict = match (violations, &unknown) {
                    (0, None) => Verdict::Valid,
                    (0, Some(_)) => Verdict::Unknown,
                    _ => Verdict::Invalid,
                };
                InvariantReport {
                    invariant,
                    verdict,
                    reason: if verdict == Verdict::Unknown {
                        unknown
                    } else {
                        None
                    },
                    violations,
                    anomalies,
                }
            })
            .collect();
        Report { invariants, counts }
    }
}

/// Checks every invariant over `history`, a run of `spec` named by `plan`; `drained` says
/// whether the run's drain finished (see [`crate::sim::RunReport::drained`]).
pub fn check(history: &History, plan: &Plan, spec: &ClusterSpec, drained: bool) -> Report {
    let settings = Settings::new(spec, plan);
    check_with(history, plan, &settings, drained)
}

/// [`check`] with settings already derived.
pub fn check_with(history: &History, plan: &Plan, settings: &Settings, drained: bool) -> Report {
    check_facts(&facts::Facts::new(history, plan), settings, drained)
}

/// [`check`] and [`measure`] of one history, indexing it once for both.
pub fn check_and_measure(
    history: &History,
    plan: &Plan,
    spec: &ClusterSpec,
    drained: bool,
) -> (Report, Metrics) {
    let settings = Settings::new(spec, plan);
    let facts = facts::Facts::new(history, plan);
    let report = check_facts(&facts, &settings, drained);
    (report, metrics::measure_facts(&facts, &settings, spec))
}

fn check_facts(facts: &facts::Facts<'_>, settings: &Settings, drained: bool) -> Report {
    let mut findings = Findings::new();
    let mut counts = Counts::default();
    let needs_leases = backpressure::needs_leases(facts, settings);
    let walked = messages::check(
        facts,
        settings,
        drained,
        &needs_leases,
        &mut findings,
        &mut counts,
    );
    order::check(facts, settings, &walked, &mut findings, &mut counts);
    backpressure::check(
        facts,
        settings,
        &walked,
        &needs_leases,
        &mut findings,
        &mut counts,
    );
    if !drained {
        findings.add(
            Invariant::Liveness,
            "drain-timed-out",
            "the drain did not finish within its bound: something was still pending".to_owned(),
            Vec::new(),
            facts.drain_timed_out.into_iter().collect(),
        );
    }
    findings.report(counts)
}
