//! Broker and destination configuration, with the bounds every setting must respect.
//!
//! Every duration is in milliseconds and says so in its name. Defaults follow the real systems
//! the broker imitates where they agree (see NOTES.md section 3), and every setting has an upper
//! bound so that a scenario cannot ask for unbounded memory or time.

use serde::{Deserialize, Serialize};

#[cfg(feature = "defects")]
use crate::defect::Defect;
use crate::error::ConfigError;

/// Hard ceilings that no configuration may exceed.
pub mod limits {
    /// Destinations in one broker.
    pub const MAX_DESTINATIONS: usize = 1024;
    /// Partitions of one destination.
    pub const MAX_PARTITIONS: u32 = 1024;
    /// Consumer groups on one topic.
    pub const MAX_GROUPS: usize = 256;
    /// Bytes in one message payload (16 MiB).
    pub const MAX_PAYLOAD_BYTES: u32 = 16 * 1024 * 1024;
    /// Bytes in one message key or FIFO group id.
    pub const MAX_KEY_BYTES: usize = 1024;
    /// Bytes in one producer dedup id.
    pub const MAX_DEDUP_ID_BYTES: usize = 128;
    /// Bytes in a destination or group name.
    pub const MAX_NAME_BYTES: usize = 256;
    /// Messages one receive may return.
    pub const MAX_RECEIVE_BATCH: u32 = 1024;
    /// Messages in one transaction (acks plus publishes).
    pub const MAX_TRANSACTION_OPS: usize = 1024;
    /// Messages stored in one destination.
    pub const MAX_LENGTH: u64 = 10_000_000;
    /// Visibility timeout (12 hours, as SQS).
    pub const MAX_VISIBILITY_TIMEOUT_MS: u64 = 12 * 3600 * 1000;
    /// Delay before a message becomes visible, and requeue delay after a nack (1 day).
    pub const MAX_DELAY_MS: u64 = 24 * 3600 * 1000;
    /// Message time to live (14 days, as SQS retention).
    pub const MAX_TTL_MS: u64 = 14 * 24 * 3600 * 1000;
    /// Producer dedup window (1 day).
    pub const MAX_DEDUP_WINDOW_MS: u64 = 24 * 3600 * 1000;
    /// Dedup ids remembered per destination.
    pub const MAX_DEDUP_IDS: u64 = 10_000_000;
    /// Deliveries before dead-lettering (1000, as SQS maxReceiveCount).
    pub const MAX_DELIVERIES: u32 = 1000;
    /// Unacknowledged deliveries one consumer may hold on one destination.
    pub const MAX_IN_FLIGHT_PER_CONSUMER: u32 = 65_535;
    /// Sync interval of the `interval` durability policy (1 minute).
    pub const MAX_SYNC_INTERVAL_MS: u64 = 60_000;
}

/// The whole broker: how it persists and which destinations exist.
///
/// With the `defects` feature it also lists the deliberate bugs to run with, so a struct
/// literal naming only `durability` and `destinations` compiles only without the feature;
/// [`BrokerConfig::new`] compiles either way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// When state changes reach storage; see [`Durability`].
    #[serde(default)]
    pub durability: Durability,
    /// Destinations, created when the broker starts. Their order fixes their ids.
    pub destinations: Vec<DestinationConfig>,
    /// Deliberate bugs, for showing that a checker catches them. Only with the `defects`
    /// feature; empty by default, which is the correct broker.
    #[cfg(feature = "defects")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub defects: Vec<Defect>,
}

/// When the broker syncs its log to storage.
///
/// A crash loses exactly the log records that were not synced. Under `always`, a publish confirm,
/// an ack or any other change is answered only after the record is synced, so nothing that was
/// answered is lost; under `interval`, whatever happened since the last sync is lost; under
/// `none`, the broker keeps nothing and comes back empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "policy", deny_unknown_fields)]
pub enum Durability {
    /// Memory only: a crash loses every message.
    None,
    /// Sync whenever at least `sync_interval_ms` passed since the last sync, checked on every
    /// command and tick (like a group commit or an `appendfsync everysec`).
    Interval {
        /// Milliseconds between syncs, 1 to 60,000.
        sync_interval_ms: u64,
    },
    /// Sync before answering any command that changed state (publisher confirms after fsync).
    #[default]
    Always,
}

/// Point-to-point queue or pub/sub topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DestinationKind {
    /// Competing consumers share one subscription; a message is gone once acknowledged.
    #[default]
    Queue,
    /// A retained log; every consumer group gets every message and tracks its own progress.
    Topic,
}

/// What happens to a publish that would exceed `max_length` or `max_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OverflowPolicy {
    /// Refuse the publish with an explicit error to the producer (RabbitMQ `reject-publish`,
    /// NATS `DiscardNew`).
    RejectPublish,
    /// Accept the publish and drop the oldest messages that are not leased (RabbitMQ
    /// `drop-head`, NATS `DiscardOld`, Redis `MAXLEN`). Each drop is reported.
    DropHead,
}

/// What happens to a message whose time to live ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExpiryAction {
    /// Remove it and report it as expired.
    #[default]
    Drop,
    /// Move it to the dead-letter destination (RabbitMQ dead-letters expired messages).
    DeadLetter,
}

/// Where a new consumer group starts reading a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartPosition {
    /// From the oldest retained message (Kafka `auto.offset.reset=earliest`).
    Earliest,
    /// Only messages published after the group exists.
    #[default]
    Latest,
}

/// Backoff between delivery attempts of one message.
///
/// After the n-th failed delivery (a nack without its own delay, a lease that expired, a lease
/// released by a broker restart) the message becomes visible again after
/// `min(initial_backoff_ms * multiplier^(n-1), max_backoff_ms)` milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Delay after the first failure, 0 (redeliver at once) to 1 day.
    pub initial_backoff_ms: u64,
    /// Growth per further failure, 1.0 to 100.0.
    pub multiplier: f64,
    /// Ceiling on the delay, at least `initial_backoff_ms`, at most 1 day.
    pub max_backoff_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_backoff_ms: 0,
            multiplier: 2.0,
            max_backoff_ms: 0,
        }
    }
}

impl RetryPolicy {
    /// Milliseconds to wait after the `failures`-th failed delivery (1-based).
    pub fn backoff_ms(&self, failures: u32) -> u64 {
        if self.initial_backoff_ms == 0 {
            return 0;
        }
        // Exponentiate in floating point but clamp before converting so that huge exponents
        // saturate at the cap instead of overflowing.
        let exp = failures.saturating_sub(1).min(1024) as i32;
        let raw = self.initial_backoff_ms as f64 * self.multiplier.powi(exp);
        if !raw.is_finite() || raw >= self.max_backoff_ms as f64 {
            self.max_backoff_ms
        } else {
            raw as u64
        }
    }
}

/// A consumer group declared in the configuration of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupConfig {
    /// The group's name, unique within the topic.
    pub name: String,
    /// Where the group starts when the broker creates it.
    #[serde(default)]
    pub start: StartPosition,
}

/// One queue or topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DestinationConfig {
    /// Unique name.
    pub name: String,
    /// Queue or topic.
    pub kind: DestinationKind,
    /// Partitions, 1 to 1024. A keyed message goes to `fnv1a(key) % partitions`; an unkeyed one
    /// to the next partition in turn. Each partition is FIFO.
    pub partitions: u32,
    /// FIFO message groups (SQS FIFO `MessageGroupId`): the key is the group, messages of one
    /// group are delivered in publish order with at most one in flight. Every message needs a key.
    pub fifo_groups: bool,
    /// Consumer groups of a topic, created at start. Must be empty for a queue.
    pub groups: Vec<GroupConfig>,
    /// Lease length of a delivery unless the receive asks for another, 1 ms to 12 h
    /// (SQS `VisibilityTimeout`, 30 s by default).
    pub visibility_timeout_ms: u64,
    /// Delay applied to every message that does not set its own (SQS `DelaySeconds`), 0 to 1 day.
    pub delay_ms: u64,
    /// Time to live of every message that does not set its own, 1 ms to 14 days; `None` keeps
    /// messages until they are consumed (a queue) or pushed out by `max_length` (a topic).
    pub message_ttl_ms: Option<u64>,
    /// What happens to a message whose time to live ran out.
    pub on_expiry: ExpiryAction,
    /// Bound on stored messages, 1 to 10,000,000. A queue counts messages that are not leased
    /// (ready, delayed or waiting for a retry), as RabbitMQ's `x-max-length` does; a topic counts
    /// its retained log.
    pub max_length: u64,
    /// Bound on the payload bytes counted like `max_length`.
    pub max_bytes: u64,
    /// What a publish beyond the bounds does.
    pub overflow: OverflowPolicy,
    /// Largest payload accepted, 1 byte to 16 MiB (SQS: 256 KiB).
    pub max_payload_bytes: u32,
    /// How long a producer dedup id is remembered, 0 (dedup off) to 1 day (SQS FIFO: 5 minutes).
    pub dedup_window_ms: u64,
    /// How many dedup ids are remembered at most; the oldest are forgotten first.
    pub max_dedup_ids: u64,
    /// Deliveries after which a message that was never acknowledged leaves the destination:
    /// to `dead_letter` if set, otherwise it is discarded and reported. `None` retries forever.
    pub max_deliveries: Option<u32>,
    /// The dead-letter destination: an ordinary queue of this broker.
    pub dead_letter: Option<String>,
    /// Backoff between delivery attempts.
    pub retry: RetryPolicy,
    /// Unacknowledged deliveries one consumer may hold (prefetch, `MaxAckPending`).
    pub max_in_flight_per_consumer: u32,
}

impl Default for DestinationConfig {
    fn default() -> Self {
        DestinationConfig {
            name: String::new(),
            kind: DestinationKind::Queue,
            partitions: 1,
            fifo_groups: false,
            groups: Vec::new(),
            visibility_timeout_ms: 30_000,
            delay_ms: 0,
            message_ttl_ms: None,
            on_expiry: ExpiryAction::Drop,
            max_length: 100_000,
            max_bytes: 1024 * 1024 * 1024,
            overflow: OverflowPolicy::RejectPublish,
            max_payload_bytes: 256 * 1024,
            dedup_window_ms: 5 * 60 * 1000,
            max_dedup_ids: 1_000_000,
            max_deliveries: None,
            dead_letter: None,
            retry: RetryPolicy::default(),
            max_in_flight_per_consumer: 1000,
        }
    }
}

impl DestinationConfig {
    /// A queue with default settings.
    pub fn queue(name: &str) -> Self {
        DestinationConfig {
            name: name.to_owned(),
            ..Default::default()
        }
    }

    /// A topic with default settings and the given consumer groups, each starting at the
    /// earliest retained message. Topics drop their oldest messages when full, as a log does.
    pub fn topic(name: &str, groups: &[&str]) -> Self {
        DestinationConfig {
            name: name.to_owned(),
            kind: DestinationKind::Topic,
            overflow: OverflowPolicy::DropHead,
            groups: groups
                .iter()
                .map(|g| GroupConfig {
                    name: (*g).to_owned(),
                    start: StartPosition::Earliest,
                })
                .collect(),
            ..Default::default()
        }
    }
}

fn check_range(
    dest: &str,
    field: &'static str,
    value: u64,
    min: u64,
    max: u64,
) -> Result<(), ConfigError> {
    if value < min || value > max {
        return Err(ConfigError::OutOfRange {
            destination: dest.to_owned(),
            field: field.into(),
            value,
            min,
            max,
        });
    }
    Ok(())
}

pub(crate) fn check_name(what: &'static str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.len() > limits::MAX_NAME_BYTES {
        return Err(ConfigError::BadName {
            what: what.into(),
            name: name.to_owned(),
        });
    }
    Ok(())
}

impl BrokerConfig {
    /// A broker with these destinations and durability (and, with the `defects` feature, no
    /// defects).
    pub fn new(durability: Durability, destinations: Vec<DestinationConfig>) -> Self {
        BrokerConfig {
            durability,
            destinations,
            #[cfg(feature = "defects")]
            defects: Vec::new(),
        }
    }

    /// Switches on the test-only defects named (kebab-case, as `Defect::name` spells them),
    /// for configurations read from text such as scenario files. It exists in every build so
    /// that a reader need not know how the broker was built: without the `defects` feature
    /// there are no defects, and any name is refused with a message that says how to get them.
    pub fn switch_on_defects(&mut self, names: &[String]) -> Result<(), String> {
        #[cfg(feature = "defects")]
        for name in names {
            match Defect::ALL.iter().find(|d| d.name() == name) {
                Some(d) => self.defects.push(*d),
                None => {
                    let known: Vec<&str> = Defect::ALL.iter().map(|d| d.name()).collect();
                    return Err(format!(
                        "unknown defect `{name}`; expected one of {}",
                        known.join(", ")
                    ));
                }
            }
        }
        #[cfg(not(feature = "defects"))]
        if let Some(name) = names.first() {
            return Err(format!(
                "`{name}`: this build has no test-only defects; build mqsim with \
                 `--features defects` to run them"
            ));
        }
        Ok(())
    }

    /// Whether the broker runs with defect `d`.
    #[cfg(feature = "defects")]
    pub fn has_defect(&self, d: Defect) -> bool {
        self.defects.contains(&d)
    }

    /// Checks every bound and cross-reference. A broker is only built from a valid config.
    pub fn validate(&self) -> Result<(), ConfigError> {
        #[cfg(feature = "defects")]
        for (i, d) in self.defects.iter().enumerate() {
            if self.defects[..i].contains(d) {
                return Err(ConfigError::Duplicate {
                    what: "defect".into(),
                    name: d.name().to_owned(),
                });
            }
        }
        if let Durability::Interval { sync_interval_ms } = self.durability {
            check_range(
                "",
                "sync_interval_ms",
                sync_interval_ms,
                1,
                limits::MAX_SYNC_INTERVAL_MS,
            )?;
        }
        if self.destinations.len() > limits::MAX_DESTINATIONS {
            return Err(ConfigError::TooMany {
                what: "destinations".into(),
                count: self.destinations.len(),
                max: limits::MAX_DESTINATIONS,
            });
        }
        let mut names = std::collections::BTreeSet::new();
        for d in &self.destinations {
            check_name("destination", &d.name)?;
            if !names.insert(d.name.as_str()) {
                return Err(ConfigError::Duplicate {
                    what: "destination".into(),
                    name: d.name.clone(),
                });
            }
            d.validate()?;
        }
        for d in &self.destinations {
            self.check_dead_letter_chain(d)?;
        }
        Ok(())
    }

    fn find(&self, name: &str) -> Option<&DestinationConfig> {
        self.destinations.iter().find(|d| d.name == name)
    }

    /// A dead-letter target must exist, be a queue, and the chain of targets must end: a cycle
    /// would move a poison message around forever.
    fn check_dead_letter_chain(&self, start: &DestinationConfig) -> Result<(), ConfigError> {
        let mut seen = vec![start.name.as_str()];
        let mut current = start;
        while let Some(target) = &current.dead_letter {
            let next = self
                .find(target)
                .ok_or_else(|| ConfigError::UnknownDeadLetter {
                    destination: current.name.clone(),
                    target: target.clone(),
                })?;
            if next.kind != DestinationKind::Queue {
                return Err(ConfigError::DeadLetterNotQueue {
                    destination: current.name.clone(),
                    target: target.clone(),
                });
            }
            if seen.contains(&next.name.as_str()) {
                return Err(ConfigError::DeadLetterCycle {
                    destination: start.name.clone(),
                });
            }
            seen.push(next.name.as_str());
            current = next;
        }
        Ok(())
    }
}

impl DestinationConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let n = &self.name;
        check_range(
            n,
            "partitions",
            self.partitions.into(),
            1,
            limits::MAX_PARTITIONS.into(),
        )?;
        check_range(
            n,
            "visibility_timeout_ms",
            self.visibility_timeout_ms,
            1,
            limits::MAX_VISIBILITY_TIMEOUT_MS,
        )?;
        check_range(n, "delay_ms", self.delay_ms, 0, limits::MAX_DELAY_MS)?;
        if let Some(ttl) = self.message_ttl_ms {
            check_range(n, "message_ttl_ms", ttl, 1, limits::MAX_TTL_MS)?;
        }
        check_range(n, "max_length", self.max_length, 1, limits::MAX_LENGTH)?;
        check_range(
            n,
            "max_payload_bytes",
            self.max_payload_bytes.into(),
            1,
            limits::MAX_PAYLOAD_BYTES.into(),
        )?;
        // A message that fits the payload limit must also fit an empty destination.
        check_range(
            n,
            "max_bytes",
            self.max_bytes,
            self.max_payload_bytes.into(),
            u64::MAX / 2,
        )?;
        check_range(
            n,
            "dedup_window_ms",
            self.dedup_window_ms,
            0,
            limits::MAX_DEDUP_WINDOW_MS,
        )?;
        check_range(
            n,
            "max_dedup_ids",
            self.max_dedup_ids,
            1,
            limits::MAX_DEDUP_IDS,
        )?;
        if let Some(m) = self.max_deliveries {
            check_range(
                n,
                "max_deliveries",
                m.into(),
                1,
                limits::MAX_DELIVERIES.into(),
            )?;
        }
        if self.dead_letter.is_some() && self.max_deliveries.is_none() {
            return Err(ConfigError::Inconsistent {
                destination: n.clone(),
                why: "dead_letter needs max_deliveries".into(),
            });
        }
        if self.on_expiry == ExpiryAction::DeadLetter && self.dead_letter.is_none() {
            return Err(ConfigError::Inconsistent {
                destination: n.clone(),
                why: "on_expiry: dead-letter needs dead_letter".into(),
            });
        }
        check_range(
            n,
            "max_in_flight_per_consumer",
            self.max_in_flight_per_consumer.into(),
            1,
            limits::MAX_IN_FLIGHT_PER_CONSUMER.into(),
        )?;
        let r = &self.retry;
        check_range(
            n,
            "retry.initial_backoff_ms",
            r.initial_backoff_ms,
            0,
            limits::MAX_DELAY_MS,
        )?;
        check_range(
            n,
            "retry.max_backoff_ms",
            r.max_backoff_ms,
            r.initial_backoff_ms,
            limits::MAX_DELAY_MS,
        )?;
        if !(1.0..=100.0).contains(&r.multiplier) {
            return Err(ConfigError::Inconsistent {
                destination: n.clone(),
                why: "retry.multiplier must be between 1.0 and 100.0".into(),
            });
        }
        match self.kind {
            DestinationKind::Queue if !self.groups.is_empty() => {
                return Err(ConfigError::Inconsistent {
                    destination: n.clone(),
                    why: "a queue has no consumer groups; use a topic".into(),
                });
            }
            DestinationKind::Topic if self.fifo_groups => {
                return Err(ConfigError::Inconsistent {
                    destination: n.clone(),
                    why: "FIFO message groups are for queues; a topic is ordered per partition"
                        .into(),
                });
            }
            _ => {}
        }
        if self.groups.len() > limits::MAX_GROUPS {
            return Err(ConfigError::TooMany {
                what: "groups".into(),
                count: self.groups.len(),
                max: limits::MAX_GROUPS,
            });
        }
        let mut groups = std::collections::BTreeSet::new();
        for g in &self.groups {
            check_name("group", &g.name)?;
            if !groups.insert(g.name.as_str()) {
                return Err(ConfigError::Duplicate {
                    what: "group".into(),
                    name: g.name.clone(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defects_are_switched_on_by_name_only_in_a_build_that_has_them() {
        let mut c = BrokerConfig::new(Durability::Always, Vec::new());
        assert_eq!(c.switch_on_defects(&[]), Ok(()));
        let named = ["dead-letter-early".to_owned()];
        #[cfg(feature = "defects")]
        {
            assert_eq!(c.switch_on_defects(&named), Ok(()));
            assert!(c.has_defect(Defect::DeadLetterEarly));
            let err = c
                .switch_on_defects(&["eat-messages".to_owned()])
                .unwrap_err();
            assert!(err.starts_with("unknown defect `eat-messages`"), "{err}");
        }
        #[cfg(not(feature = "defects"))]
        {
            let err = c.switch_on_defects(&named).unwrap_err();
            assert!(err.contains("--features defects"), "{err}");
        }
    }

    #[test]
    fn backoff_grows_exponentially_up_to_the_cap() {
        let r = RetryPolicy {
            initial_backoff_ms: 100,
            multiplier: 2.0,
            max_backoff_ms: 1000,
        };
        let got: Vec<u64> = (1..=6).map(|n| r.backoff_ms(n)).collect();
        assert_eq!(got, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(r.backoff_ms(u32::MAX), 1000);
        assert_eq!(RetryPolicy::default().backoff_ms(3), 0);
    }

    fn one(d: DestinationConfig) -> BrokerConfig {
        BrokerConfig::new(Durability::Always, vec![d])
    }

    #[test]
    fn out_of_range_settings_are_rejected() {
        let bad = [
            DestinationConfig {
                partitions: 0,
                ..DestinationConfig::queue("q")
            },
            DestinationConfig {
                partitions: 5000,
                ..DestinationConfig::queue("q")
            },
            DestinationConfig {
                visibility_timeout_ms: 0,
                ..DestinationConfig::queue("q")
            },
            DestinationConfig {
                max_length: 0,
                ..DestinationConfig::queue("q")
            },
            DestinationConfig {
                max_deliveries: Some(0),
                ..DestinationConfig::queue("q")
            },
            DestinationConfig {
                message_ttl_ms: Some(0),
                ..DestinationConfig::queue("q")
            },
            DestinationConfig {
                max_in_flight_per_consumer: 0,
                ..DestinationConfig::queue("q")
            },
            DestinationConfig {
                max_bytes: 10,
                ..DestinationConfig::queue("q")
            },
        ];
        for d in bad {
            assert!(
                matches!(
                    one(d.clone()).validate(),
                    Err(ConfigError::OutOfRange { .. })
                ),
                "{d:?}"
            );
        }
        let interval = BrokerConfig {
            durability: Durability::Interval {
                sync_interval_ms: 0,
            },
            ..one(DestinationConfig::queue("q"))
        };
        assert!(interval.validate().is_err());
    }

    #[test]
    fn dead_letter_chains_must_exist_be_queues_and_end() {
        let dlq = |name: &str, to: &str| DestinationConfig {
            max_deliveries: Some(3),
            dead_letter: Some(to.to_owned()),
            ..DestinationConfig::queue(name)
        };
        let missing = BrokerConfig::new(Durability::None, vec![dlq("a", "nope")]);
        assert!(matches!(
            missing.validate(),
            Err(ConfigError::UnknownDeadLetter { .. })
        ));
        let cycle = BrokerConfig::new(Durability::None, vec![dlq("a", "b"), dlq("b", "a")]);
        assert!(matches!(
            cycle.validate(),
            Err(ConfigError::DeadLetterCycle { .. })
        ));
        let to_topic = BrokerConfig::new(
            Durability::None,
            vec![dlq("a", "t"), DestinationConfig::topic("t", &[])],
        );
        assert!(matches!(
            to_topic.validate(),
            Err(ConfigError::DeadLetterNotQueue { .. })
        ));
        let chain = BrokerConfig::new(
            Durability::None,
            vec![dlq("a", "b"), dlq("b", "c"), DestinationConfig::queue("c")],
        );
        assert_eq!(chain.validate(), Ok(()));
    }

    #[test]
    fn names_must_be_unique_and_non_empty() {
        let dup = BrokerConfig::new(
            Durability::None,
            vec![DestinationConfig::queue("q"), DestinationConfig::queue("q")],
        );
        assert!(matches!(dup.validate(), Err(ConfigError::Duplicate { .. })));
        assert!(matches!(
            one(DestinationConfig::queue("")).validate(),
            Err(ConfigError::BadName { .. })
        ));
        let groups_on_queue = DestinationConfig {
            groups: vec![GroupConfig {
                name: "g".into(),
                start: StartPosition::Latest,
            }],
            ..DestinationConfig::queue("q")
        };
        assert!(matches!(
            one(groups_on_queue).validate(),
            Err(ConfigError::Inconsistent { .. })
        ));
    }
}
