//! Validating a scenario and reporting what is wrong in the file's terms: a spec error at
//! `producers[0].messages_per_s` is reported as `producers[0].rate`, with its numbers as rates,
//! at the line and column where the rate was written.

use mqsim_broker::ConfigError;

use super::broker::DurabilityDoc;
use super::locate::{Segment, YamlPath, locate};
use super::units::format_ms;
use super::{InvariantName, ScenarioDoc};
use crate::diagnostic::Located;
use crate::sim::spec::{ClusterSpec, limits};
use crate::sim::{Plan, SpecError};
use crate::suggest;

/// Ceilings on the server settings a scenario may override; the spec leaves these unchecked.
const MAX_SERVER_SETTING: usize = 65_536;

/// An error found after parsing: a path into the file and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathError {
    pub path: YamlPath,
    pub message: String,
}

impl PathError {
    fn new(path: YamlPath, message: impl Into<String>) -> Self {
        PathError {
            path,
            message: message.into(),
        }
    }

    /// The error at the position of its path in `text` (the file's start if it has none),
    /// naming the path first as serde_norway's own errors do.
    pub fn locate(&self, text: &str) -> Located {
        let (line, column) = locate(text, &self.path).unwrap_or((1, 1));
        Located::new(line, column, format!("{}: {}", self.path, self.message))
    }
}

/// Checks what serde could not: every bound and cross-reference of the spec, the server
/// settings the spec leaves open, and the `expect` lists.
pub(crate) fn validate(doc: &ScenarioDoc, spec: &ClusterSpec) -> Result<(), PathError> {
    let server = [
        ("max_connections", doc.server.max_connections),
        ("max_pending_requests", doc.server.max_pending_requests),
    ];
    for (key, value) in server {
        if let Some(value) = value.filter(|v| !(1..=MAX_SERVER_SETTING).contains(v)) {
            return Err(PathError::new(
                YamlPath::parse("server").key(key),
                format!("{value} is out of range (1 to {MAX_SERVER_SETTING})"),
            ));
        }
    }
    // The spec bounds the hosts in all, not the entries: entries with `count: 0` would
    // otherwise be limited only by the file size.
    let entries = [
        ("producers", doc.producers.len()),
        ("consumers", doc.consumers.len()),
    ];
    for (key, len) in entries {
        let max = limits::MAX_ACTORS as usize;
        if len > max {
            return Err(PathError::new(
                YamlPath::parse(key),
                format!("{len} entries exceed the limit of {max}"),
            ));
        }
    }
    for (i, name) in doc.broker.defects.iter().enumerate() {
        let at = || YamlPath::parse("broker").key("defects").index(i);
        if doc.broker.defects[..i].contains(name) {
            return Err(PathError::new(at(), format!("`{name}` is listed twice")));
        }
        mqsim_broker::BrokerConfig::new(mqsim_broker::Durability::None, Vec::new())
            .switch_on_defects(std::slice::from_ref(name))
            .map_err(|e| PathError::new(at(), e))?;
    }
    spec.validate().map_err(|e| spec_error(doc, spec, e))?;
    if let Some(explore) = &doc.explore {
        explore.check(doc.duration).map_err(|(key, message)| {
            PathError::new(YamlPath::parse("explore").key(key), message)
        })?;
    }
    validate_expect(doc)
}

/// An invariant may be listed once, under `allow` or `violated`.
fn validate_expect(doc: &ScenarioDoc) -> Result<(), PathError> {
    let lists: [(&str, &[InvariantName]); 2] = [
        ("allow", &doc.expect.allow),
        ("violated", &doc.expect.violated),
    ];
    let mut seen: Vec<(InvariantName, &str)> = Vec::new();
    for (list, names) in lists {
        for (i, name) in names.iter().enumerate() {
            if let Some((_, first)) = seen.iter().find(|(n, _)| n == name) {
                let path = YamlPath::parse("expect").key(list).index(i);
                return Err(PathError::new(
                    path,
                    format!("`{}` is already listed under `{first}`", name.0.name()),
                ));
            }
            seen.push((*name, list));
        }
    }
    Ok(())
}

/// Maps a spec error onto the file: the path in scenario names, values in scenario units, and
/// a suggestion for a name that almost matches one defined.
fn spec_error(doc: &ScenarioDoc, spec: &ClusterSpec, e: SpecError) -> PathError {
    if e.path == "broker" {
        // The spec wraps the broker's typed error in text; validating the broker again gets
        // the typed error back, which says which destination and field are at fault.
        if let Err(config) = spec.broker.validate() {
            return broker_error(doc, config);
        }
    }
    let (path, unit) = scenario_path(&e.path);
    let mut message = humanize(&e.message, unit);
    if e.path.ends_with(" (hosts)") {
        // The spec checks the total of `count` over the list, which its message does not say.
        message = format!("hosts in all (the sum of `count`): {message}");
    }
    if let Some(hint) = reference_hint(doc, spec, &e.message) {
        message.push_str(&hint);
    }
    PathError::new(path, message)
}

/// What a spec field's numbers are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Ms,
    PerS,
    Plain,
}

/// The scenario path of a spec path, and the unit of the field's numbers.
fn scenario_path(spec_path: &str) -> (YamlPath, Unit) {
    // Host totals are reported on a pseudo-field; the list itself is where to look.
    let spec_path = spec_path.trim_end_matches(" (hosts)");
    let renamed = match spec_path {
        "tick_ms" => Some("tick"),
        "duration_ms" => Some("duration"),
        "drain_timeout_ms" => Some("drain.timeout"),
        "network.max_latency_ms" => Some("network.latency.max"),
        "network.min_latency_ms" => Some("network.latency.min"),
        _ => None,
    };
    if let Some(renamed) = renamed {
        return (YamlPath::parse(renamed), Unit::Ms);
    }
    let mut unit = Unit::Plain;
    let mut segments = Vec::new();
    let parsed = YamlPath::parse(spec_path).0;
    for (i, segment) in parsed.iter().enumerate() {
        let Segment::Key(key) = segment else {
            segments.push(segment.clone());
            continue;
        };
        unit = Unit::Plain;
        let key = if key == "messages_per_s" {
            unit = Unit::PerS;
            "rate".to_owned()
        } else if key == "ms" {
            // `Processing::Constant { ms }` is `time` in the file.
            unit = Unit::Ms;
            "time".to_owned()
        } else if let Some(stem) = key.strip_suffix("_ms") {
            unit = Unit::Ms;
            stem.to_owned()
        } else {
            key.clone()
        };
        // The nemesis puts the fault's kind in some paths (`fault.crash.hosts`); in the file the
        // kind is a tag, and the fields sit directly under `fault`.
        let after_fault = i > 0 && parsed[i - 1] == Segment::Key("fault".into());
        if after_fault && FAULT_KINDS.contains(&key.as_str()) {
            continue;
        }
        segments.push(Segment::Key(key));
    }
    (YamlPath(segments), unit)
}

/// The fault kinds, as the nemesis names them in error paths.
const FAULT_KINDS: [&str; 6] = ["crash", "partition", "latency", "hold", "slow", "pause"];

/// Rewrites the bare numbers of a message in the field's unit: `5000` becomes `5s` for a
/// duration and `5000/s` for a rate. Numbers inside names (`producer-0`) are left alone.
fn humanize(message: &str, unit: Unit) -> String {
    if unit == Unit::Plain {
        return message.to_owned();
    }
    let mut out = String::with_capacity(message.len() + 16);
    let mut rest = message;
    let mut previous: Option<char> = None;
    while let Some(c) = rest.chars().next() {
        let attached = previous.is_some_and(|p| p.is_alphanumeric() || "-_`.".contains(p));
        if c.is_ascii_digit() && !attached {
            let end = rest
                .find(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
                .unwrap_or(rest.len());
            let number = &rest[..end];
            let followed = rest[end..]
                .chars()
                .next()
                .is_some_and(|n| n.is_alphanumeric() || "-_`".contains(n));
            match (unit, number.parse::<u64>()) {
                _ if followed => out.push_str(number),
                (Unit::Ms, Ok(n)) => out.push_str(&format_ms(n)),
                (Unit::PerS, _) => {
                    out.push_str(number);
                    out.push_str("/s");
                }
                _ => out.push_str(number),
            }
            previous = number.chars().last();
            rest = &rest[end..];
        } else {
            out.push(c);
            previous = Some(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// "; did you mean `x`?" for a reference to an undefined destination, group or host.
fn reference_hint(doc: &ScenarioDoc, spec: &ClusterSpec, message: &str) -> Option<String> {
    let quoted = message.split('`').nth(1)?;
    let candidates: Vec<String> = if message.starts_with("unknown destination") {
        doc.broker
            .destinations
            .iter()
            .map(|d| d.name.clone())
            .collect()
    } else if message.contains("is not a group of") {
        let topic = message.split('`').nth(3)?;
        let dest = doc.broker.destinations.iter().find(|d| d.name == topic)?;
        dest.groups.iter().map(|g| g.name.clone()).collect()
    } else if message.ends_with("names no host") {
        host_selectors(spec)
    } else {
        return None;
    };
    let candidates: Vec<&str> = candidates.iter().map(String::as_str).collect();
    suggest::closest(quoted, &candidates).map(|best| format!("; did you mean `{best}`?"))
}

/// Every host selector a fault may use in this spec.
fn host_selectors(spec: &ClusterSpec) -> Vec<String> {
    let plan = Plan::new(spec);
    let mut selectors: Vec<String> = ["producers", "consumers", "clients"]
        .into_iter()
        .map(str::to_owned)
        .collect();
    selectors.extend(plan.processes.iter().filter(|p| *p != "nemesis").cloned());
    for c in &spec.consumers {
        selectors.push(format!(
            "group:{}",
            c.group.as_deref().unwrap_or(&c.destination)
        ));
    }
    selectors
}

/// Maps a broker configuration error onto the destination (and field) it is about.
fn broker_error(doc: &ScenarioDoc, e: ConfigError) -> PathError {
    let destinations = YamlPath::parse("broker.destinations");
    let index_of = |name: &str| doc.broker.destinations.iter().position(|d| d.name == name);
    let at = |name: &str, key: Option<&str>| match index_of(name) {
        Some(i) => {
            let entry = destinations.index(i);
            key.map_or(entry.clone(), |k| {
                let mut path = entry.clone();
                path.0.extend(YamlPath::parse(k).0);
                path
            })
        }
        None => destinations.clone(),
    };
    // The broker's messages start with "destination `q`: ", which the path already says.
    let text = e.to_string();
    let text = match text.split_once("`: ") {
        Some((head, tail)) if head.starts_with("destination `") => tail.to_owned(),
        _ => text,
    };
    match &e {
        ConfigError::OutOfRange {
            destination,
            field,
            value,
            min,
            max,
        } => {
            let (key, unit) = match field.strip_suffix("_ms") {
                Some(stem) => (stem.to_owned(), Unit::Ms),
                None => (field.to_string(), Unit::Plain),
            };
            let path = if destination.is_empty()
                && matches!(doc.broker.durability, Some(DurabilityDoc::Interval { .. }))
            {
                YamlPath::parse("broker.durability.sync_interval")
            } else {
                at(destination, Some(&key))
            };
            PathError::new(
                path,
                humanize(&format!("{value} is out of range ({min} to {max})"), unit),
            )
        }
        ConfigError::UnknownDeadLetter {
            destination,
            target,
        } => {
            let names: Vec<&str> = doc
                .broker
                .destinations
                .iter()
                .map(|d| d.name.as_str())
                .collect();
            let hint = suggest::closest(target, &names)
                .map_or(String::new(), |best| format!("; did you mean `{best}`?"));
            PathError::new(
                at(destination, Some("dead_letter")),
                format!("{text}{hint}"),
            )
        }
        ConfigError::DeadLetterNotQueue { destination, .. }
        | ConfigError::DeadLetterCycle { destination } => {
            PathError::new(at(destination, Some("dead_letter")), text)
        }
        ConfigError::Inconsistent { destination, .. } => {
            PathError::new(at(destination, None), text)
        }
        ConfigError::Duplicate { name, .. } | ConfigError::BadName { name, .. } => {
            // The second definition of a name is the one at fault.
            let last = doc
                .broker
                .destinations
                .iter()
                .rposition(|d| &d.name == name);
            let path = match last {
                Some(i) => destinations.index(i).key("name"),
                None => duplicate_group(doc, name).unwrap_or(destinations),
            };
            PathError::new(path, text)
        }
        ConfigError::TooMany { .. } => PathError::new(destinations, text),
    }
}

/// The path of the last group named `name` in any topic.
fn duplicate_group(doc: &ScenarioDoc, name: &str) -> Option<YamlPath> {
    doc.broker
        .destinations
        .iter()
        .enumerate()
        .find_map(|(i, d)| {
            let j = d.groups.iter().rposition(|g| g.name == name)?;
            Some(
                YamlPath::parse("broker.destinations")
                    .index(i)
                    .key("groups")
                    .index(j)
                    .key("name"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::{Unit, humanize, scenario_path};

    #[test]
    fn spec_paths_become_scenario_paths_with_their_unit() {
        let cases = [
            ("tick_ms", "tick", Unit::Ms),
            ("drain_timeout_ms", "drain.timeout", Unit::Ms),
            ("network.min_latency_ms", "network.latency.min", Unit::Ms),
            ("producers (hosts)", "producers", Unit::Plain),
            (
                "producers[1].rate_changes[0].messages_per_s",
                "producers[1].rate_changes[0].rate",
                Unit::PerS,
            ),
            (
                "producers[0].retry.initial_backoff_ms",
                "producers[0].retry.initial_backoff",
                Unit::Ms,
            ),
            (
                "consumers[2].processing.mean_ms",
                "consumers[2].processing.mean",
                Unit::Ms,
            ),
            (
                "consumers[0].failure_probability",
                "consumers[0].failure_probability",
                Unit::Plain,
            ),
            ("faults[3].for_ms", "faults[3].for", Unit::Ms),
            (
                "faults[0].fault.crash.hosts",
                "faults[0].fault.hosts",
                Unit::Plain,
            ),
            (
                "faults[0].fault.latency.latency_ms",
                "faults[0].fault.latency",
                Unit::Ms,
            ),
            ("faults[1].fault.a", "faults[1].fault.a", Unit::Plain),
        ];
        for (spec, scenario, unit) in cases {
            let (path, found) = scenario_path(spec);
            assert_eq!(
                (path.to_string().as_str(), found),
                (scenario, unit),
                "{spec}"
            );
        }
    }

    #[test]
    fn numbers_take_the_field_unit_but_names_keep_theirs() {
        assert_eq!(
            humanize("5000 is out of range (0 to 1000)", Unit::Ms),
            "5s is out of range (0ms to 1s)"
        );
        assert_eq!(
            humanize("2000000 is out of range (0 to 1000000)", Unit::PerS),
            "2000000/s is out of range (0/s to 1000000/s)"
        );
        assert_eq!(
            humanize("`producer-0` names no host", Unit::Ms),
            "`producer-0` names no host"
        );
        assert_eq!(humanize("0.5 is odd", Unit::Plain), "0.5 is odd");
    }
}
