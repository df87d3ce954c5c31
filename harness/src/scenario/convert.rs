//! From the file's sections to a [`ClusterSpec`], and from the spec's validation errors back to
//! the file: `producers[0].messages_per_s` is reported as `producers[0].rate` with a rate, at
//! the line and column where the rate was written.

use mqsim_broker::ConfigError;

use super::broker::DurabilityDoc;
use super::format::{FaultKindDoc, KeySkewDoc, ProcessingDoc};
use super::locate::{Segment, YamlPath, locate};
use super::units::{HumanDuration, format_ms};
use super::{InvariantName, ScenarioDoc};
use crate::diagnostic::Located;
use crate::sim::nemesis::{Fault, FaultSpec};
use crate::sim::spec::{
    ClientSpec, ClusterSpec, ConsumerSpec, CrashSpec, KeySkew, KeySpec, NetworkSpec, Processing,
    ProducerSpec, PublishRetry, RateChange, ServerSpec,
};
use crate::sim::{Plan, SpecError};
use crate::suggest;

/// Ceilings on the server settings a scenario may override; the spec leaves these unchecked.
const MAX_SERVER_SETTING: usize = 65_536;

fn ms(duration: HumanDuration) -> u64 {
    duration.as_ms()
}

impl ScenarioDoc {
    /// The cluster this scenario describes (not yet validated).
    pub fn to_spec(&self) -> ClusterSpec {
        ClusterSpec {
            seed: self.seed,
            tick_ms: ms(self.tick),
            duration_ms: ms(self.duration),
            drain_timeout_ms: ms(self.drain.timeout),
            transport: self.transport,
            network: NetworkSpec {
                min_latency_ms: ms(self.network.latency.min),
                max_latency_ms: ms(self.network.latency.max),
            },
            broker: self.broker.to_config(),
            server: ServerSpec {
                tick_interval_ms: self.server.tick_interval.map(ms),
                max_connections: self.server.max_connections,
                max_pending_requests: self.server.max_pending_requests,
            },
            client: ClientSpec {
                request_timeout_ms: self.client.request_timeout.map(ms),
                connect_timeout_ms: self.client.connect_timeout.map(ms),
                reconnect_initial_backoff_ms: self.client.reconnect_initial_backoff.map(ms),
                reconnect_max_backoff_ms: self.client.reconnect_max_backoff.map(ms),
                max_in_flight: self.client.max_in_flight,
            },
            producers: self.producers.iter().map(producer).collect(),
            consumers: self.consumers.iter().map(consumer).collect(),
            faults: self.faults.iter().map(fault).collect(),
        }
    }
}

fn producer(p: &super::format::ProducerDoc) -> ProducerSpec {
    ProducerSpec {
        count: p.count,
        destination: p.destination.clone(),
        messages_per_s: p.rate.per_s(),
        start_ms: ms(p.start),
        rate_changes: p
            .rate_changes
            .iter()
            .map(|c| RateChange {
                at_ms: ms(c.at),
                messages_per_s: c.rate.per_s(),
            })
            .collect(),
        messages: p.messages,
        duration_ms: p.duration.map(ms),
        keys: KeySpec {
            count: p.keys.count,
            skew: match p.keys.skew {
                KeySkewDoc::Uniform => KeySkew::Uniform,
                KeySkewDoc::Zipf { exponent } => KeySkew::Zipf { exponent },
                KeySkewDoc::HotKey { fraction } => KeySkew::HotKey { fraction },
            },
        },
        payload_bytes: p.payload_bytes,
        poison_fraction: p.poison_fraction,
        dedup_ids: p.dedup_ids,
        retry: PublishRetry {
            max_attempts: p.retry.max_attempts,
            initial_backoff_ms: ms(p.retry.initial_backoff),
            multiplier: p.retry.multiplier,
            max_backoff_ms: ms(p.retry.max_backoff),
            retry_indeterminate: p.retry.retry_indeterminate,
        },
        max_in_flight: p.max_in_flight,
    }
}

fn consumer(c: &super::format::ConsumerDoc) -> ConsumerSpec {
    ConsumerSpec {
        count: c.count,
        destination: c.destination.clone(),
        group: c.group.clone(),
        max_messages: c.max_messages,
        visibility_timeout_ms: c.visibility_timeout.map(ms),
        poll_interval_ms: ms(c.poll_interval),
        processing: match c.processing {
            ProcessingDoc::Constant { time } => Processing::Constant { ms: ms(time) },
            ProcessingDoc::Uniform { min, max } => Processing::Uniform {
                min_ms: ms(min),
                max_ms: ms(max),
            },
            ProcessingDoc::Exponential { mean, max } => Processing::Exponential {
                mean_ms: ms(mean),
                max_ms: ms(max),
            },
        },
        failure_probability: c.failure_probability,
        ack_mode: c.ack_mode,
        idempotent_sink: c.idempotent_sink,
        crash: CrashSpec {
            before_effect_probability: c.crash.before_effect_probability,
            after_effect_probability: c.crash.after_effect_probability,
            restart_after_ms: ms(c.crash.restart_after),
            max_crashes: c.crash.max_crashes,
        },
    }
}

fn fault(f: &super::format::FaultDoc) -> FaultSpec {
    let fault = match &f.fault {
        FaultKindDoc::Crash { hosts } => Fault::Crash {
            hosts: hosts.clone(),
        },
        FaultKindDoc::Partition { a, b, one_way } => Fault::Partition {
            a: a.clone(),
            b: b.clone(),
            one_way: *one_way,
        },
        FaultKindDoc::Latency { a, b, latency } => Fault::Latency {
            a: a.clone(),
            b: b.clone(),
            latency_ms: ms(*latency),
        },
        FaultKindDoc::Hold { a, b } => Fault::Hold {
            a: a.clone(),
            b: b.clone(),
        },
        FaultKindDoc::Slow { hosts, factor } => Fault::Slow {
            hosts: hosts.clone(),
            factor: *factor,
        },
        FaultKindDoc::Pause { hosts } => Fault::Pause {
            hosts: hosts.clone(),
        },
    };
    FaultSpec {
        at_ms: ms(f.at),
        for_ms: f.lasts.map(ms),
        fault,
    }
}

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
    spec.validate().map_err(|e| spec_error(doc, spec, e))?;
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
                && matches!(doc.broker.durability, DurabilityDoc::Interval { .. })
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
    use super::{Unit, humanize};

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
