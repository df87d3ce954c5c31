//! The scenario file format. For now only the header (name, description, seed) is interpreted.
//!
//! The sections of the full format (workload, faults, expectations) are accepted as untyped
//! YAML so that scenario files can be written ahead of the loader, while `deny_unknown_fields`
//! still rejects misspelt keys. The scenario issue replaces those `Value` fields with real types.

use crate::diagnostic::{FileError, Located};
use crate::source;
use serde::Deserialize;
use serde::de::{self, Deserializer, Unexpected, Visitor};
use serde_norway::Value;
use std::fmt;
use std::path::{Path, PathBuf};

/// The seed used when a scenario does not set one. Fixed, so omitting it stays deterministic.
pub const DEFAULT_SEED: u64 = 1;

/// The top level of a scenario file.
#[derive(Debug, Clone, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with at least `name` and `description`"
)]
pub struct ScenarioHeader {
    #[serde(deserialize_with = "single_line_name")]
    name: String,
    description: String,
    #[serde(default = "default_seed")]
    seed: u64,
    // Sections of the full format, accepted but not interpreted yet. They are kept rather than
    // skipped so `pending_sections` can say honestly that they were not checked.
    #[serde(default)]
    duration: Option<Value>,
    #[serde(default)]
    tick: Option<Value>,
    #[serde(default)]
    network: Option<Value>,
    #[serde(default)]
    broker: Option<Value>,
    #[serde(default)]
    producers: Option<Value>,
    #[serde(default)]
    consumers: Option<Value>,
    #[serde(default)]
    faults: Option<Value>,
    #[serde(default)]
    drain: Option<Value>,
    #[serde(default)]
    expect: Option<Value>,
}

fn default_seed() -> u64 {
    DEFAULT_SEED
}

impl ScenarioHeader {
    /// Parses a scenario from YAML text.
    pub fn parse(text: &str) -> Result<Self, Located> {
        // Parsing into `Option` turns an empty document (blank, comments only, or `~`) into
        // `None`, which gets a clearer message than serde's "missing field `name`".
        match serde_norway::from_str::<Option<ScenarioHeader>>(text) {
            Ok(Some(header)) => Ok(header),
            Ok(None) => Err(Located::new(
                1,
                1,
                "empty scenario; expected a mapping with at least `name` and `description`",
            )),
            Err(err) => Err(Located::from_yaml(&err, text)),
        }
    }

    /// The scenario's name: non-empty and on one line, so it can head one line of output.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The full description, which may span several lines.
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

    /// The sections of the full format present in the file, which nothing checks or runs yet.
    pub fn pending_sections(&self) -> Vec<&'static str> {
        [
            ("duration", &self.duration),
            ("tick", &self.tick),
            ("network", &self.network),
            ("broker", &self.broker),
            ("producers", &self.producers),
            ("consumers", &self.consumers),
            ("faults", &self.faults),
            ("drain", &self.drain),
            ("expect", &self.expect),
        ]
        .into_iter()
        .filter(|(_, value)| value.is_some())
        .map(|(key, _)| key)
        .collect()
    }
}

/// A scenario file that parsed, with the path it was read from.
#[derive(Debug, Clone)]
pub struct ScenarioFile {
    pub path: PathBuf,
    pub header: ScenarioHeader,
}

impl ScenarioFile {
    /// Reads, decodes and parses the scenario at `path`.
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let bytes = source::read_limited(path)?;
        let content_error = |at| FileError::Content {
            path: path.to_path_buf(),
            at,
        };
        let text = source::decode(&bytes).map_err(content_error)?;
        let header = ScenarioHeader::parse(text).map_err(content_error)?;
        Ok(ScenarioFile {
            path: path.to_path_buf(),
            header,
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
    use super::{DEFAULT_SEED, ScenarioHeader};

    fn parse(text: &str) -> ScenarioHeader {
        match ScenarioHeader::parse(text) {
            Ok(header) => header,
            Err(err) => panic!("{}:{}: {}", err.line, err.column, err.message),
        }
    }

    #[test]
    fn header_fields_are_read_and_seed_defaults() {
        let header = parse("name: work-queue\ndescription: Work queue\n");
        assert_eq!(header.name(), "work-queue");
        assert_eq!(header.description(), "Work queue");
        assert_eq!(header.seed(), DEFAULT_SEED);
        assert!(header.pending_sections().is_empty());
        assert_eq!(parse("name: a\ndescription: b\nseed: 42\n").seed(), 42);
    }

    #[test]
    fn summary_is_the_first_non_blank_line() {
        let header = parse("name: a\ndescription: |\n\n  First line.\n  Second line.\n");
        assert_eq!(header.summary(), "First line.");
        assert_eq!(parse("name: a\ndescription: ''\n").summary(), "");
    }

    #[test]
    fn future_sections_are_accepted_and_reported_in_format_order() {
        let header = parse("name: a\ndescription: b\nexpect: [x]\nbroker: {partitions: 3}\n");
        assert_eq!(header.pending_sections(), ["broker", "expect"]);
    }

    #[test]
    fn errors_carry_the_position_of_the_bad_value() {
        let err = ScenarioHeader::parse("description: b\nname: ''\n").unwrap_err();
        assert_eq!((err.line, err.column), (2, 7));
        assert_eq!(
            err.message,
            "name: invalid value: string \"\", expected a non-empty, single-line name"
        );
        let err = ScenarioHeader::parse("name: a\ndescription: b\nseed: -1\n").unwrap_err();
        assert_eq!((err.line, err.column), (3, 7));
        assert_eq!(
            err.message,
            "seed: invalid type: integer `-1`, expected u64"
        );
    }

    #[test]
    fn empty_documents_get_their_own_message() {
        for text in ["", "\n", "# comment only\n", "---\n", "~\n"] {
            let err = ScenarioHeader::parse(text).unwrap_err();
            assert!(
                err.message.starts_with("empty scenario"),
                "{text:?}: {}",
                err.message
            );
            assert_eq!((err.line, err.column), (1, 1));
        }
    }
}
