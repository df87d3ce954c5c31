//! The scenario file format: a YAML file describing one deterministic experiment, read into a
//! [`Scenario`]: a [`ClusterSpec`] to simulate and the [`Expect`]ations to judge it by.
//!
//! * [`ScenarioDoc`] is the file as serde reads it, with human units (`format.rs`,
//!   `broker.rs`, `expect.rs`, `units.rs`, `bound.rs`); every section refuses unknown keys.
//! * `convert.rs` maps it onto the [`ClusterSpec`] the simulation takes; `errors.rs` runs the
//!   spec's validation and maps its errors back to the file (`locate.rs`) with their line and
//!   column.
//! * `schema.rs` derives the JSON Schema committed as `scenarios/schema.json`.
//!
//! The format is documented for authors in `scenarios/README.md`.

mod bound;
mod broker;
mod convert;
mod errors;
mod expect;
mod explore;
mod format;
mod locate;
pub mod schema;
mod units;

pub use bound::Bound;
pub use broker::{BrokerDoc, DestinationDoc, DurabilityDoc, GroupDoc, ProfileName, RetryDoc};
pub use expect::{
    CountBounds, CountName, Expect, InvariantName, Judgement, MetricBounds, MetricName,
};
pub use explore::{
    ExploreDoc, FactorRange, FaultKindName, MAX_EXPLORE_FAULTS, MAX_RATE_FACTOR, TargetName,
};
pub use format::{
    ClientDoc, ConsumerDoc, CrashDoc, DrainDoc, FaultDoc, FaultKindDoc, KeySkewDoc, KeysDoc,
    LatencyDoc, NetworkDoc, ProcessingDoc, ProducerDoc, PublishRetryDoc, RateChangeDoc, ServerDoc,
};
pub use locate::{Segment, YamlPath};
pub use units::{HumanDuration, HumanRate, format_ms};

use crate::diagnostic::{FileError, Located};
use crate::sim::spec::{ClusterSpec, Transport};
use crate::source;
use schemars::JsonSchema;
use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};

/// The seed used when a scenario does not set one. Fixed, so omitting it stays deterministic.
pub const DEFAULT_SEED: u64 = 1;

/// What a scenario file must be, for the message about an empty or non-mapping document.
const EXPECTED: &str = "a mapping with at least `name`, `description`, `duration` and `broker`";

/// A scenario file as written: the top level and every section, with human units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with at least `name`, `description`, `duration` and `broker`"
)]
#[schemars(title = "mqsim scenario")]
pub struct ScenarioDoc {
    /// Short identifier shown in listings: non-empty, one line.
    #[serde(deserialize_with = "single_line_name")]
    #[schemars(length(min = 1))]
    pub name: String,
    /// What the scenario demonstrates; listings show its first non-blank line.
    pub description: String,
    /// Seed of every random choice in the run.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Length of the fault phase: producers publish and faults happen until then (up to 1 day).
    pub duration: HumanDuration,
    /// Simulated time per simulation step, 1ms to 1s.
    #[serde(default = "default_tick")]
    pub tick: HumanDuration,
    /// How clients reach the broker: `network` (simulated TCP) or `local` (in-process).
    #[serde(default)]
    #[schemars(schema_with = "format::transport_schema")]
    pub transport: Transport,
    /// Link latency.
    #[serde(default)]
    pub network: NetworkDoc,
    /// The broker's destinations and durability.
    pub broker: BrokerDoc,
    /// Server overrides.
    #[serde(default)]
    pub server: ServerDoc,
    /// Client overrides for every actor.
    #[serde(default)]
    pub client: ClientDoc,
    /// Producer hosts.
    #[serde(default)]
    pub producers: Vec<ProducerDoc>,
    /// Consumer hosts.
    #[serde(default)]
    pub consumers: Vec<ConsumerDoc>,
    /// The fault schedule.
    #[serde(default)]
    pub faults: Vec<FaultDoc>,
    /// The drain after the heal.
    #[serde(default)]
    pub drain: DrainDoc,
    /// What must hold.
    #[serde(default)]
    pub expect: Expect,
    /// The bounds `mqsim explore` draws faults and workload variations within; `mqsim run`
    /// ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explore: Option<ExploreDoc>,
}

fn default_seed() -> u64 {
    DEFAULT_SEED
}

fn default_tick() -> HumanDuration {
    HumanDuration::from_ms(1)
}

/// A valid scenario: what to simulate and what must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Non-empty and on one line, so it can head one line of output.
    pub name: String,
    /// The full description, which may span several lines.
    pub description: String,
    /// The scenario's seed; also `spec.seed`, which a runner overrides to run other seeds.
    pub seed: u64,
    /// The cluster to simulate, already validated.
    pub spec: ClusterSpec,
    /// What must hold.
    pub expect: Expect,
    /// The broker section as written, so that a comparison can apply another profile.
    pub broker: BrokerDoc,
    /// The whole file as read, so that exploration can vary it and write variations back out.
    pub doc: ScenarioDoc,
}

impl Scenario {
    /// Parses and validates a scenario from YAML text. Every error has a line and column.
    pub fn parse(text: &str) -> Result<Self, Located> {
        // Parsing into `Option` turns an empty document (blank, comments only, or `~`) into
        // `None`, which gets a clearer message than serde's "missing field `name`".
        let doc = match serde_norway::from_str::<Option<ScenarioDoc>>(text) {
            Ok(Some(doc)) => doc,
            Ok(None) => {
                return Err(Located::new(
                    1,
                    1,
                    format!("empty scenario; expected {EXPECTED}"),
                ));
            }
            Err(err) => return Err(refine(Located::from_yaml(&err, text), text)),
        };
        let spec = doc.to_spec();
        errors::validate(&doc, &spec).map_err(|e| e.locate(text))?;
        Ok(Scenario {
            name: doc.name.clone(),
            description: doc.description.clone(),
            seed: doc.seed,
            spec,
            expect: doc.expect.clone(),
            broker: doc.broker.clone(),
            doc,
        })
    }

    /// The scenario's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The full description.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The first non-blank line of the description, for one-line listings.
    pub fn summary(&self) -> &str {
        self.description
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty())
            .unwrap_or("")
    }

    /// The seed for the simulation's random choices.
    pub fn seed(&self) -> u64 {
        self.seed
    }
}

/// Moves an error that serde reported at an enclosing list element, because it arose inside
/// a `kind`-tagged section (see [`locate::find_key_below`]), to the key or value at fault,
/// with its path. Errors that already point further on are left alone.
fn refine(located: Located, text: &str) -> Located {
    let Some((path, rest)) = located.message.split_once(": ") else {
        return located;
    };
    let path = YamlPath::parse(path);
    let found = if let Some(unknown) = rest.strip_prefix("unknown key `") {
        let key = unknown.split('`').next().unwrap_or("");
        // The message names the key's parent mapping, as serde's own would.
        locate::find_key_below(text, &path, key).map(|(found, line, column)| {
            let parent = YamlPath(found.0[..found.0.len().saturating_sub(1)].to_vec());
            (parent, line, column)
        })
    } else {
        quoted_value(rest).and_then(|value| locate::find_tagged_value_below(text, &path, value))
    };
    match found {
        Some((found, line, column)) if (line, column) > (located.line, located.column) => {
            Located::new(line, column, format!("{found}: {rest}"))
        }
        _ => located,
    }
}

/// The first value quoted in a message, in backticks (`` `5` ``, ours and serde's numbers) or
/// double quotes (serde's strings).
fn quoted_value(message: &str) -> Option<&str> {
    let start = message.find(['`', '"'])?;
    let quote = message[start..].chars().next()?;
    let rest = &message[start + 1..];
    rest.split(quote).next()
}

/// A scenario file that parsed and validated, with the path it was read from.
#[derive(Debug, Clone)]
pub struct ScenarioFile {
    pub path: PathBuf,
    pub scenario: Scenario,
}

impl ScenarioFile {
    /// The file's name without its extension, which names the files a run writes for it
    /// (histories, reproducers); `scenario` for a path without one.
    pub fn stem(&self) -> String {
        self.path
            .file_stem()
            .map_or_else(|| "scenario".into(), |s| s.to_string_lossy().into_owned())
    }

    /// Reads, decodes, parses and validates the scenario at `path`.
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let bytes = source::read_limited(path)?;
        let content_error = |at| FileError::Content {
            path: path.to_path_buf(),
            at,
        };
        let text = source::decode(&bytes).map_err(content_error)?;
        let scenario = Scenario::parse(text).map_err(content_error)?;
        Ok(ScenarioFile {
            path: path.to_path_buf(),
            scenario,
        })
    }
}

/// Deserializes a name that is not blank and has no line breaks or other control characters.
///
/// The check runs inside a `Visitor` rather than after `String::deserialize` because serde_norway
/// only attaches the scalar's line and column to errors raised while that scalar is visited;
/// an error returned afterwards would point at the start of the file.
fn single_line_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct NameVisitor;

    impl Visitor<'_> for NameVisitor {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a non-empty, single-line name")
        }

        fn visit_str<E: de::Error>(self, name: &str) -> Result<String, E> {
            if name.trim().is_empty() || name.chars().any(char::is_control) {
                return Err(E::invalid_value(Unexpected::Str(name), &self));
            }
            Ok(name.to_owned())
        }
    }

    deserializer.deserialize_str(NameVisitor)
}

#[cfg(test)]
mod tests {
    use super::{DEFAULT_SEED, Scenario};
    use crate::diagnostic::Located;

    const REQUIRED: &str = "duration: 1s\nbroker: {destinations: [{name: q}]}\n";

    fn parse(text: &str) -> Result<Scenario, Located> {
        Scenario::parse(&format!("{text}{REQUIRED}"))
    }

    fn ok(text: &str) -> Scenario {
        match parse(text) {
            Ok(scenario) => scenario,
            Err(err) => panic!("{}:{}: {}", err.line, err.column, err.message),
        }
    }

    #[test]
    fn header_fields_are_read_and_seed_defaults() {
        let scenario = ok("name: work-queue\ndescription: Work queue\n");
        assert_eq!(scenario.name(), "work-queue");
        assert_eq!(scenario.description(), "Work queue");
        assert_eq!(scenario.seed(), DEFAULT_SEED);
        assert_eq!(scenario.spec.seed, DEFAULT_SEED);
        assert_eq!(ok("name: a\ndescription: b\nseed: 42\n").spec.seed, 42);
    }

    #[test]
    fn defaults_fill_the_spec() {
        let spec = ok("name: a\ndescription: b\n").spec;
        assert_eq!(spec.duration_ms, 1000);
        assert_eq!(spec.tick_ms, 1);
        assert_eq!(spec.drain_timeout_ms, 30_000);
        assert_eq!(spec.broker.destinations[0].visibility_timeout_ms, 30_000);
        assert!(spec.producers.is_empty() && spec.faults.is_empty());
    }

    #[test]
    fn summary_is_the_first_non_blank_line() {
        let scenario = ok("name: a\ndescription: |\n\n  First line.\n  Second line.\n");
        assert_eq!(scenario.summary(), "First line.");
        assert_eq!(ok("name: a\ndescription: ''\n").summary(), "");
    }

    #[test]
    fn errors_carry_the_position_of_the_bad_value() {
        let err = parse("description: b\nname: ''\n").unwrap_err();
        assert_eq!((err.line, err.column), (2, 7));
        assert_eq!(
            err.message,
            "name: invalid value: string \"\", expected a non-empty, single-line name"
        );
        let err = parse("name: a\ndescription: b\nseed: -1\n").unwrap_err();
        assert_eq!((err.line, err.column), (3, 7));
        assert_eq!(
            err.message,
            "seed: invalid type: integer `-1`, expected u64"
        );
    }

    #[test]
    fn validation_errors_point_at_the_key_in_scenario_units() {
        let err = parse("name: a\ndescription: b\ntick: 2s\n").unwrap_err();
        assert_eq!((err.line, err.column), (3, 1));
        assert_eq!(err.message, "tick: 2s is out of range (1ms to 1s)");
    }

    #[test]
    fn empty_documents_get_their_own_message() {
        for text in ["", "\n", "# comment only\n", "---\n", "~\n"] {
            let err = Scenario::parse(text).unwrap_err();
            assert!(
                err.message.starts_with("empty scenario"),
                "{text:?}: {}",
                err.message
            );
            assert_eq!((err.line, err.column), (1, 1));
        }
    }

    // Every truncation and byte flip of a full scenario must give a scenario or a located
    // error, never a panic, whatever part of the loader (parse, convert, validate, locate)
    // the damage reaches.
    const FULL: &str = include_str!("../../tests/data/valid/every-section.yaml");

    proptest::proptest! {
        #[test]
        fn damaged_files_never_panic(cut in 0..FULL.len(), at in 0..FULL.len(), byte in 0u8..128) {
            let mut bytes = FULL.as_bytes()[..cut.max(at)].to_vec();
            if let Some(b) = bytes.get_mut(at) {
                *b = byte;
            }
            if let Ok(text) = std::str::from_utf8(&bytes)
                && let Err(err) = Scenario::parse(text)
            {
                proptest::prop_assert!(err.line >= 1 && err.column >= 1);
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in "[a-z_:\\-\\[\\]{}, 0-9\n.>=<\"'/]{0,200}") {
            let _ = Scenario::parse(&text);
        }
    }
}
