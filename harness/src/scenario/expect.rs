//! The `expect` section: what must hold for a run to pass.
//!
//! * Every invariant the checkers report must be `valid`, except those listed under `allow`
//!   (not judged at all) and those under `violated` (which must be `invalid`: the scenario
//!   demonstrates the anomaly). Defaulting to "all" means a new invariant is enforced by every
//!   existing scenario without editing it, and a scenario has to say out loud what it tolerates.
//!   Liveness is an invariant like the others: `allow: [liveness]` accepts a drain that timed out.
//! * `counts` bounds the run's counts by name (`lost: 0`, `duplicate_deliveries: "> 0"`).
//! * `metrics` bounds measurements (`e2e_latency_ms_p99: "< 50"`); the runner computes them.
//!
//! Unknown names are errors with a suggestion, like unknown keys.

use std::borrow::Cow;
use std::fmt;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::bound::Bound;
use crate::check::{Counts, Invariant};
use crate::sim::Summary;
use crate::suggest;

/// What must hold after a run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Expect {
    /// Invariants whose verdict is not judged (any of `valid`, `invalid`, `unknown` passes).
    pub allow: Vec<InvariantName>,
    /// Invariants that must be `invalid`: the scenario exists to show them broken.
    pub violated: Vec<InvariantName>,
    /// Bounds on counts.
    pub counts: CountBounds,
    /// Bounds on metrics.
    pub metrics: MetricBounds,
}

impl Expect {
    /// How an invariant is judged under this expectation.
    pub fn judgement(&self, invariant: Invariant) -> Judgement {
        let named = |list: &[InvariantName]| list.iter().any(|n| n.0 == invariant);
        if named(&self.violated) {
            Judgement::MustBeInvalid
        } else if named(&self.allow) {
            Judgement::Ignored
        } else {
            Judgement::MustBeValid
        }
    }
}

/// What an invariant's verdict must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    /// `valid`; `invalid` or `unknown` fails the run. The default.
    MustBeValid,
    /// `invalid`; anything else fails the run.
    MustBeInvalid,
    /// Anything.
    Ignored,
}

/// An invariant as named in scenario files (`no-loss`, `ordering`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct InvariantName(pub Invariant);

impl Serialize for InvariantName {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.name())
    }
}

impl<'de> Deserialize<'de> for InvariantName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;

        impl Visitor<'_> for NameVisitor {
            type Value = InvariantName;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an invariant name such as `no-loss`")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<InvariantName, E> {
                if let Some(invariant) = Invariant::from_name(name) {
                    return Ok(InvariantName(invariant));
                }
                let names: Vec<&str> = Invariant::ALL.iter().map(|i| i.name()).collect();
                Err(E::custom(unknown_name("invariant", name, &names)))
            }
        }

        deserializer.deserialize_str(NameVisitor)
    }
}

impl JsonSchema for InvariantName {
    fn schema_name() -> Cow<'static, str> {
        "Invariant".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let names: Vec<&str> = Invariant::ALL.iter().map(|i| i.name()).collect();
        json_schema!({
            "type": "string",
            "enum": names,
            "description": "An invariant the checkers report (see harness/src/check/mod.rs).",
        })
    }
}

/// "unknown invariant `x`; did you mean `y`?", or the list of names when none is close.
fn unknown_name(what: &str, name: &str, known: &[&str]) -> String {
    match suggest::closest(name, known) {
        Some(best) => format!("unknown {what} `{name}`; did you mean `{best}`?"),
        None => format!(
            "unknown {what} `{name}`; expected one of {}",
            known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Defines a struct of optional bounds, one per name, and the enum of those names, so that
/// serde refuses (and suggests for) unknown names and the schema lists them.
macro_rules! bounds {
    (
        $(#[$doc:meta])* $bounds:ident, $name:ident {
            $( $(#[$field_doc:meta])* $field:ident => $variant:ident, )*
        }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
        #[serde(deny_unknown_fields, default)]
        pub struct $bounds {
            $(
                $(#[$field_doc])*
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $field: Option<Bound>,
            )*
        }

        /// The names that can be bounded, in file order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub enum $name {
            $( $variant, )*
        }

        impl $name {
            /// Every name, in the order of the fields.
            pub const ALL: &[$name] = &[$( $name::$variant, )*];

            /// The name as written in scenario files.
            pub fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => stringify!($field), )*
                }
            }
        }

        impl $bounds {
            /// The bounds that are set, in field order.
            pub fn iter(&self) -> impl Iterator<Item = ($name, Bound)> + '_ {
                [$( ($name::$variant, self.$field), )*]
                    .into_iter()
                    .filter_map(|(name, bound)| bound.map(|b| (name, b)))
            }
        }
    };
}

bounds! {
    /// Bounds on the counts of a run. The checkers' [`Counts`] give most; [`Summary`] gives
    /// the publish-side totals (`published`, `confirmed`, `failed`, `indeterminate`,
    /// `delivered`, `deliveries`, `completed`, `unexpected`). See [`CountName::value`].
    CountBounds, CountName {
        /// Messages with at least one publish attempt.
        published => Published,
        /// Messages with a confirmed publish.
        confirmed => Confirmed,
        /// Messages whose every publish attempt failed.
        failed => Failed,
        /// Messages without a confirm and with an indeterminate attempt.
        indeterminate => Indeterminate,
        /// Publishes refused because the destination was full.
        rejected => Rejected,
        /// Messages delivered at least once.
        delivered => Delivered,
        /// All deliveries.
        deliveries => Deliveries,
        /// (Message, subscription) pairs completed.
        completed => Completed,
        /// Confirmed messages not final in some subscription after the run.
        lost => Lost,
        /// Of those, in at-most-once subscriptions.
        lost_at_most_once => LostAtMostOnce,
        /// Indeterminate messages seen afterwards.
        recovered => Recovered,
        /// Deliveries beyond the first, per message and subscription.
        duplicate_deliveries => DuplicateDeliveries,
        /// Effects applied beyond the first, per message and subscription.
        duplicate_effects => DuplicateEffects,
        /// Ordering violations.
        out_of_order => OutOfOrder,
        /// Deliveries with a delivery count above one.
        redeliveries => Redeliveries,
        /// Messages dead-lettered, per subscription.
        dead_lettered => DeadLettered,
        /// Of those, messages that were not poison.
        healthy_dead_lettered => HealthyDeadLettered,
        /// Messages expired, per subscription.
        expired => Expired,
        /// Messages dropped by a policy, per subscription.
        dropped => Dropped,
        /// Deliveries of messages nobody published.
        unexpected => Unexpected,
    }
}

impl CountName {
    /// This count's value in a run. Where [`Counts`] and [`Summary`] both have a name, the
    /// checkers' definition wins, since it is the one the verdicts use.
    pub fn value(self, counts: &Counts, summary: &Summary) -> u64 {
        match self {
            CountName::Published => summary.published,
            CountName::Confirmed => summary.confirmed,
            CountName::Failed => summary.failed,
            CountName::Indeterminate => summary.indeterminate,
            CountName::Rejected => counts.rejected,
            CountName::Delivered => summary.delivered,
            CountName::Deliveries => summary.deliveries,
            CountName::Completed => summary.completed,
            CountName::Lost => counts.lost,
            CountName::LostAtMostOnce => counts.lost_at_most_once,
            CountName::Recovered => counts.recovered,
            CountName::DuplicateDeliveries => counts.duplicate_deliveries,
            CountName::DuplicateEffects => counts.duplicate_effects,
            CountName::OutOfOrder => counts.out_of_order,
            CountName::Redeliveries => counts.redeliveries,
            CountName::DeadLettered => counts.dead_lettered,
            CountName::HealthyDeadLettered => counts.healthy_dead_lettered,
            CountName::Expired => counts.expired,
            CountName::Dropped => counts.dropped,
            CountName::Unexpected => summary.unexpected,
        }
    }
}

bounds! {
    /// Bounds on measurements of a run, in simulated time. The runner computes the values;
    /// units are in the names.
    MetricBounds, MetricName {
        /// Completed messages per simulated second of the fault phase.
        throughput_per_s => ThroughputPerS,
        /// End-to-end latency (publish invoked to first completion), median.
        e2e_latency_ms_p50 => E2eLatencyMsP50,
        /// End-to-end latency, 90th percentile.
        e2e_latency_ms_p90 => E2eLatencyMsP90,
        /// End-to-end latency, 99th percentile.
        e2e_latency_ms_p99 => E2eLatencyMsP99,
        /// End-to-end latency, 99.9th percentile.
        e2e_latency_ms_p999 => E2eLatencyMsP999,
        /// End-to-end latency, greatest.
        e2e_latency_ms_max => E2eLatencyMsMax,
        /// Publish latency (invoked to confirmed), median.
        publish_latency_ms_p50 => PublishLatencyMsP50,
        /// Publish latency, 90th percentile.
        publish_latency_ms_p90 => PublishLatencyMsP90,
        /// Publish latency, 99th percentile.
        publish_latency_ms_p99 => PublishLatencyMsP99,
        /// Publish latency, 99.9th percentile.
        publish_latency_ms_p999 => PublishLatencyMsP999,
        /// Publish latency, greatest.
        publish_latency_ms_max => PublishLatencyMsMax,
        /// Greatest lag of any subscription (messages stored and not yet completed).
        max_lag => MaxLag,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Expect, String> {
        serde_norway::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn every_invariant_is_judged_valid_unless_listed() {
        let expect = parse("allow: [liveness]\nviolated: [no-loss]\n").unwrap();
        assert_eq!(
            expect.judgement(Invariant::Ordering),
            Judgement::MustBeValid
        );
        assert_eq!(expect.judgement(Invariant::Liveness), Judgement::Ignored);
        assert_eq!(
            expect.judgement(Invariant::NoLoss),
            Judgement::MustBeInvalid
        );
        assert_eq!(
            Expect::default().judgement(Invariant::NoLoss),
            Judgement::MustBeValid
        );
    }

    #[test]
    fn names_are_checked_with_suggestions() {
        let err = parse("allow: [no-los]\n").unwrap_err();
        assert!(
            err.contains("unknown invariant `no-los`; did you mean `no-loss`?"),
            "{err}"
        );
        let err = parse("counts: {lots: 0}\n").unwrap_err();
        assert!(err.contains("unknown field `lots`"), "{err}");
        let err = parse("metrics: {e2e_latency_p99: '< 5'}\n").unwrap_err();
        assert!(err.contains("unknown field `e2e_latency_p99`"), "{err}");
    }

    #[test]
    fn bounds_are_listed_in_field_order() {
        let expect = parse("counts: {lost: 0, published: '> 10'}\n").unwrap();
        let names: Vec<&str> = expect.counts.iter().map(|(n, _)| n.name()).collect();
        assert_eq!(names, ["published", "lost"]);
        let expect = parse("metrics: {max_lag: '< 100', throughput_per_s: '>= 1'}\n").unwrap();
        let set: Vec<(MetricName, Bound)> = expect.metrics.iter().collect();
        assert_eq!(
            set,
            [
                (MetricName::ThroughputPerS, Bound::Ge(1.0)),
                (MetricName::MaxLag, Bound::Lt(100.0))
            ]
        );
    }

    #[test]
    fn count_values_come_from_the_checkers_first() {
        let counts = Counts {
            lost: 3,
            ..Counts::default()
        };
        let summary = Summary {
            lost: 9,
            published: 5,
            ..Summary::default()
        };
        assert_eq!(CountName::Lost.value(&counts, &summary), 3);
        assert_eq!(CountName::Published.value(&counts, &summary), 5);
        assert_eq!(CountName::ALL.len(), 20);
    }
}
