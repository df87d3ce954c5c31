//! What one exploration seed varies, drawn with proptest strategies from the seed: the fault
//! mix and schedule (which kinds are on, how many events, when, how long, on which hosts) and
//! the workload (the producers' rates, the number of consumers), within the scenario's
//! `explore` bounds.
//!
//! The mix is swarm testing's: each seed switches on a random subset of the fault kinds and
//! draws its events from those alone, so some seeds see only crashes and others only
//! partitions and slow-downs, rather than every seed an even blend of everything, which makes
//! interactions of a few kinds, and long stretches of one, more likely.
//!
//! A [`Variation`] is kept abstract (indexes and numbers, not host names) so that proptest can
//! shrink it: removing a fault, lowering a rate or a consumer count always gives another valid
//! variation. [`apply`] turns it into a scenario file, which is what runs and what a
//! reproducer is.

use proptest::prelude::*;
use proptest::strategy::{BoxedStrategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use sha2::{Digest, Sha256};

use crate::scenario::{
    ExploreDoc, FaultDoc, FaultKindDoc, FaultKindName, HumanDuration, HumanRate, ScenarioDoc,
    TargetName,
};
use crate::sim::plan::{BROKER, Plan, Process};

/// One drawn fault. The fields are raw draws that [`apply`] maps onto the hosts the variation
/// has, so that a variation with fewer consumers still names hosts that exist.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultDraw {
    /// Picks a kind among those the variation switched on (modulo their number).
    pub kind: u32,
    /// Index into the bounds' target classes, then (divided by their number) into the class's
    /// hosts.
    pub target: u32,
    pub at_ms: u64,
    pub length_ms: u64,
    /// The kind's parameter: latency, slow-down factor, or one-way for a partition.
    pub param: u32,
}

/// Everything one seed varies.
#[derive(Debug, Clone, PartialEq)]
pub struct Variation {
    /// Which of the bounds' fault kinds are on: bit `k` for kind `k`, never none.
    pub kinds_on: u32,
    pub faults: Vec<FaultDraw>,
    /// Each consumer entry's count.
    pub consumer_counts: Vec<u32>,
    /// The factor on every producer's rate, in thousandths.
    pub rate_permille: u32,
}

impl Variation {
    /// The fault kinds switched on, of `bounds`' kinds.
    pub fn kinds(&self, bounds: &ExploreDoc) -> Vec<FaultKindName> {
        bounds
            .faults
            .iter()
            .enumerate()
            .filter(|(k, _)| self.kinds_on & (1 << k) != 0)
            .map(|(_, kind)| *kind)
            .collect()
    }

    /// The rate factor.
    pub fn rate_factor(&self) -> f64 {
        f64::from(self.rate_permille) / 1000.0
    }
}

/// The strategy that draws a [`Variation`] for `doc` within `bounds`.
///
/// Fault draws do not shrink individually (`no_shrink`): shrinking removes whole faults, which
/// is what makes a reproducer small, rather than spending runs nudging times towards zero.
/// The rate shrinks towards the lowest factor allowed and consumer counts towards one.
pub fn strategy(doc: &ScenarioDoc, bounds: &ExploreDoc) -> BoxedStrategy<Variation> {
    let duration_ms = doc.duration.as_ms().max(1);
    let max_length_ms = bounds.max_fault_length_ms(duration_ms).max(1);
    let kinds = bounds.faults.len().clamp(1, 31);
    let fault = (
        any::<u32>(),
        any::<u32>(),
        0..duration_ms,
        1..=max_length_ms,
        any::<u32>(),
    )
        .prop_map(|(kind, target, at_ms, length_ms, param)| FaultDraw {
            kind,
            target,
            at_ms,
            length_ms,
            param,
        })
        .no_shrink();
    let max_faults = if bounds.faults.is_empty() || bounds.targets.is_empty() {
        0
    } else {
        bounds.max_faults as usize
    };
    let faults = proptest::collection::vec(fault, 0..=max_faults);
    let counts: Vec<BoxedStrategy<u32>> = doc
        .consumers
        .iter()
        .map(|c| {
            if bounds.vary_consumers && c.count > 1 {
                (1..=c.count).boxed()
            } else {
                Just(c.count).boxed()
            }
        })
        .collect();
    let permille = |f: f64| (f * 1000.0).round() as u32;
    let (low, high) = (
        permille(bounds.rate_factor.min).max(1),
        permille(bounds.rate_factor.max).max(1),
    );
    // Which kinds are on does not shrink: changing it changes every fault's kind at once,
    // which would rarely keep a failure.
    let kinds_on = (1u32..(1 << kinds)).no_shrink();
    (faults, counts, low..=high.max(low), kinds_on)
        .prop_map(
            |(faults, consumer_counts, rate_permille, kinds_on)| Variation {
                kinds_on,
                faults,
                consumer_counts,
                rate_permille,
            },
        )
        .boxed()
}

/// A proptest runner whose random numbers come from `seed` alone (ChaCha, keyed by a hash of
/// the seed), so the same seed draws the same variation on every machine and with any
/// `--jobs`.
pub fn runner(seed: u64) -> TestRunner {
    let key: [u8; 32] = Sha256::new()
        .chain_update(b"mqsim explore")
        .chain_update(seed.to_le_bytes())
        .finalize()
        .into();
    TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &key),
    )
}

/// The value tree of `seed`'s variation: its current value is the variation drawn, and
/// shrinking walks it towards simpler ones.
pub fn tree(
    doc: &ScenarioDoc,
    bounds: &ExploreDoc,
    seed: u64,
) -> Result<Box<dyn ValueTree<Value = Variation>>, String> {
    strategy(doc, bounds)
        .new_tree(&mut runner(seed))
        .map_err(|e| format!("cannot draw a variation: {e}"))
}

/// The scenario file that runs `variation` of `doc` with `seed`: rates scaled, consumer counts
/// set, and the drawn faults in place of the file's own. The `explore` section is dropped, so
/// the result stands alone.
pub fn apply(
    doc: &ScenarioDoc,
    bounds: &ExploreDoc,
    variation: &Variation,
    seed: u64,
) -> ScenarioDoc {
    let mut out = doc.clone();
    out.seed = seed;
    out.explore = None;
    let factor = variation.rate_factor();
    for p in &mut out.producers {
        p.rate = scale(p.rate, factor);
        for change in &mut p.rate_changes {
            change.rate = scale(change.rate, factor);
        }
        if let Some(m) = &mut p.messages {
            *m = ((*m as f64 * factor).ceil() as u64).max(1);
        }
    }
    for (c, count) in out.consumers.iter_mut().zip(&variation.consumer_counts) {
        c.count = *count;
    }
    let hosts = Hosts::of(&out);
    let kinds = variation.kinds(bounds);
    out.faults = Vec::new();
    for f in &variation.faults {
        let Some(new) = fault(f, &kinds, bounds, &hosts, doc.duration.as_ms()) else {
            continue;
        };
        // One window of a kind on a host at a time. Overlapping windows would compound (slow
        // factors multiply: three windows of 10x make a consumer 1,000 times slower, and a
        // message it takes then outlasts any drain) or mean nothing (crashing a crashed
        // host), so a draw that overlaps an earlier one of its kind and hosts is left out.
        if !out.faults.iter().any(|old| overlaps(old, &new)) {
            out.faults.push(new);
        }
    }
    out
}

/// Whether two fault windows of the same kind on the same hosts overlap in time.
fn overlaps(a: &FaultDoc, b: &FaultDoc) -> bool {
    let window = |f: &FaultDoc| {
        let at = f.at.as_ms();
        (at, at + f.lasts.map_or(u64::MAX - at, HumanDuration::as_ms))
    };
    let ((a0, a1), (b0, b1)) = (window(a), window(b));
    let same = std::mem::discriminant(&a.fault) == std::mem::discriminant(&b.fault)
        && targets(&a.fault) == targets(&b.fault);
    same && a0 < b1 && b0 < a1
}

/// The hosts a fault names first (`hosts`, or side `a` of a link).
fn targets(f: &FaultKindDoc) -> &[String] {
    match f {
        FaultKindDoc::Crash { hosts }
        | FaultKindDoc::Slow { hosts, .. }
        | FaultKindDoc::Pause { hosts } => hosts,
        FaultKindDoc::Partition { a, .. }
        | FaultKindDoc::Latency { a, .. }
        | FaultKindDoc::Hold { a, .. } => a,
    }
}

/// A rate times `factor`, to a thousandth of a message per second (so that it prints back as
/// a plain decimal), and never down to zero from a positive rate.
fn scale(rate: HumanRate, factor: f64) -> HumanRate {
    if rate.per_s() <= 0.0 {
        return rate;
    }
    let per_s = ((rate.per_s() * factor * 1000.0).round() / 1000.0).max(0.001);
    HumanRate::from_per_s(per_s)
}

/// The host names of a scenario, by class.
struct Hosts {
    broker: [String; 1],
    producers: Vec<String>,
    consumers: Vec<String>,
}

impl Hosts {
    /// The names the run will give its hosts: the plan of the scenario's cluster names them,
    /// so a drawn fault names exactly the hosts that exist.
    fn of(doc: &ScenarioDoc) -> Hosts {
        let plan = Plan::new(&doc.to_spec());
        let names = |is: fn(&Plan, Process) -> bool| -> Vec<String> {
            plan.hosts()
                .filter(|&p| is(&plan, p))
                .map(|p| plan.name(p).to_owned())
                .collect()
        };
        Hosts {
            broker: [plan.name(BROKER).to_owned()],
            producers: names(|plan, p| plan.producer(p).is_some()),
            consumers: names(|plan, p| plan.consumer(p).is_some()),
        }
    }

    /// The hosts of a class; the broker is one.
    fn class(&self, class: TargetName) -> &[String] {
        match class {
            TargetName::Broker => &self.broker,
            TargetName::Producers => &self.producers,
            TargetName::Consumers => &self.consumers,
        }
    }
}

/// A drawn fault as the file writes it, or `None` when the variation has no host it can
/// apply to (a slow-down with no consumers).
fn fault(
    f: &FaultDraw,
    kinds: &[FaultKindName],
    bounds: &ExploreDoc,
    hosts: &Hosts,
    duration_ms: u64,
) -> Option<FaultDoc> {
    let kind = *kinds.get((f.kind as usize) % kinds.len().max(1))?;
    // The class first, then a host in it: the broker is one host among many, and as likely
    // a target as all producers together, since it is where most faults matter.
    let classes: Vec<TargetName> = bounds
        .targets
        .iter()
        .copied()
        .filter(|c| !hosts.class(*c).is_empty())
        .collect();
    let n = classes.len() as u32;
    let class = *classes.get((f.target % n.max(1)) as usize)?;
    let members = hosts.class(class);
    let host = members[((f.target / n.max(1)) as usize) % members.len()].clone();
    let no_clients = hosts.producers.is_empty() && hosts.consumers.is_empty();
    // The other side of a link fault: the broker for a client, every client for the broker.
    let peer = if class == TargetName::Broker {
        "clients".to_owned()
    } else {
        "broker".to_owned()
    };
    let link_fault = matches!(
        kind,
        FaultKindName::Partition | FaultKindName::Latency | FaultKindName::Hold
    );
    if no_clients && (link_fault || kind == FaultKindName::Pause) {
        return None;
    }
    let fault = match kind {
        FaultKindName::Crash => FaultKindDoc::Crash { hosts: vec![host] },
        FaultKindName::Partition => FaultKindDoc::Partition {
            a: vec![host],
            b: vec![peer],
            one_way: f.param % 2 == 1,
        },
        FaultKindName::Latency => FaultKindDoc::Latency {
            a: vec![host],
            b: vec![peer],
            latency: HumanDuration::from_ms(1 + u64::from(f.param % 200)),
        },
        FaultKindName::Hold => FaultKindDoc::Hold {
            a: vec![host],
            b: vec![peer],
        },
        FaultKindName::Slow => {
            // Only consumers slow down; a draw aimed elsewhere slows all of them.
            let target = if class == TargetName::Consumers {
                host
            } else if !hosts.consumers.is_empty() {
                "consumers".to_owned()
            } else {
                return None;
            };
            FaultKindDoc::Slow {
                hosts: vec![target],
                factor: f64::from(2 + f.param % 19),
            }
        }
        FaultKindName::Pause => {
            // Only clients pause; a draw aimed at the broker pauses every client.
            let target = if class == TargetName::Broker {
                "clients".to_owned()
            } else {
                host
            };
            FaultKindDoc::Pause {
                hosts: vec![target],
            }
        }
    };
    let length_ms = f.length_ms.min(duration_ms.saturating_sub(f.at_ms)).max(1);
    Some(FaultDoc {
        at: HumanDuration::from_ms(f.at_ms),
        lasts: Some(HumanDuration::from_ms(length_ms)),
        fault,
    })
}
