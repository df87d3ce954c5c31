//! The `explore` section: the bounds within which `mqsim explore` draws a fault schedule and a
//! workload variation for each seed (see `crate::explore`). A scenario without it is explored
//! with the defaults below; `mqsim run` ignores the section.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::units::HumanDuration;

/// Most fault events one seed may draw.
pub const MAX_EXPLORE_FAULTS: u32 = 16;
/// Largest factor on the producers' rates.
pub const MAX_RATE_FACTOR: f64 = 10.0;

/// What exploration may vary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ExploreDoc {
    /// The fault kinds a seed draws from (default: all six). The scenario's own `faults` are
    /// replaced by the drawn ones.
    pub faults: Vec<FaultKindName>,
    /// Most fault events one seed draws, 0 to 16 (default 4); each seed draws from none to
    /// this many.
    pub max_faults: u32,
    /// Which hosts faults may name (default all three): `broker`, `producers`, `consumers`.
    pub targets: Vec<TargetName>,
    /// Longest a fault window lasts (default: a quarter of `duration`, at least 1ms).
    pub max_fault_length: Option<HumanDuration>,
    /// The producers' rates are scaled by a factor drawn from this range (default 0.5 to 1).
    pub rate_factor: FactorRange,
    /// Whether each consumer entry's `count` is drawn from 1 to the count written
    /// (default true), so that shrinking can remove hosts.
    pub vary_consumers: bool,
}

impl Default for ExploreDoc {
    fn default() -> Self {
        ExploreDoc {
            faults: FaultKindName::ALL.to_vec(),
            max_faults: 4,
            targets: TargetName::ALL.to_vec(),
            max_fault_length: None,
            rate_factor: FactorRange { min: 0.5, max: 1.0 },
            vary_consumers: true,
        }
    }
}

/// A closed range of factors.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FactorRange {
    pub min: f64,
    pub max: f64,
}

/// A fault kind, as `faults[].fault.kind` spells it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKindName {
    Crash,
    Partition,
    Latency,
    Hold,
    Slow,
    Pause,
}

impl FaultKindName {
    /// The name as files spell it.
    pub fn name(self) -> &'static str {
        match self {
            FaultKindName::Crash => "crash",
            FaultKindName::Partition => "partition",
            FaultKindName::Latency => "latency",
            FaultKindName::Hold => "hold",
            FaultKindName::Slow => "slow",
            FaultKindName::Pause => "pause",
        }
    }

    pub const ALL: [FaultKindName; 6] = [
        FaultKindName::Crash,
        FaultKindName::Partition,
        FaultKindName::Latency,
        FaultKindName::Hold,
        FaultKindName::Slow,
        FaultKindName::Pause,
    ];
}

/// A class of hosts a drawn fault may name.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum TargetName {
    Broker,
    Producers,
    Consumers,
}

impl TargetName {
    pub const ALL: [TargetName; 3] = [
        TargetName::Broker,
        TargetName::Producers,
        TargetName::Consumers,
    ];
}

impl ExploreDoc {
    /// The first bound that is out of range, as (key, message).
    pub fn check(&self, duration: HumanDuration) -> Result<(), (&'static str, String)> {
        if self.max_faults > MAX_EXPLORE_FAULTS {
            return Err((
                "max_faults",
                format!(
                    "{} is out of range (0 to {MAX_EXPLORE_FAULTS})",
                    self.max_faults
                ),
            ));
        }
        if self.max_faults > 0 && self.faults.is_empty() {
            return Err((
                "faults",
                "no fault kinds to draw from; list at least one or set `max_faults: 0`".into(),
            ));
        }
        if let Some(k) =
            (1..self.faults.len()).find(|&k| self.faults[..k].contains(&self.faults[k]))
        {
            return Err(("faults", format!("fault kind {k} is listed twice")));
        }
        if self.max_faults > 0 && self.targets.is_empty() {
            return Err(("targets", "no hosts for faults to name".into()));
        }
        if let Some(len) = self.max_fault_length
            && (len.as_ms() == 0 || len.as_ms() > duration.as_ms())
        {
            return Err((
                "max_fault_length",
                format!("{len} is out of range (1ms to the duration, {duration})"),
            ));
        }
        let FactorRange { min, max } = self.rate_factor;
        if !(min > 0.0 && min <= max && max <= MAX_RATE_FACTOR) {
            return Err((
                "rate_factor",
                format!(
                    "{min} to {max} is not a range of factors (0 < min <= max <= {MAX_RATE_FACTOR})"
                ),
            ));
        }
        Ok(())
    }

    /// The longest fault window, in ms, for a fault phase of `duration_ms`.
    pub fn max_fault_length_ms(&self, duration_ms: u64) -> u64 {
        self.max_fault_length
            .map_or((duration_ms / 4).max(1), HumanDuration::as_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::FaultKindName;

    // `name` and serde spell kinds alike, so reports and files never disagree.
    #[test]
    fn fault_kind_names_are_the_file_spelling() {
        for k in FaultKindName::ALL {
            assert_eq!(serde_json::to_value(k).unwrap(), k.name());
        }
    }
}
