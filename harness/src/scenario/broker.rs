//! The `broker` section: [`BrokerConfig`] with human durations.
//!
//! Every field mirrors one of [`DestinationConfig`] under the same name, except that the `_ms`
//! settings (`visibility_timeout_ms`, `delay_ms`, `message_ttl_ms`, `dedup_window_ms`, the
//! retry backoffs, `sync_interval_ms`) drop their unit and take a duration such as `30s`. The
//! broker's enums are used as they are, so their spellings cannot drift from the broker's.

use mqsim_broker::{
    BrokerConfig, DestinationConfig, DestinationKind, Durability, ExpiryAction, GroupConfig,
    OverflowPolicy, RetryPolicy, StartPosition,
};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use super::schema::string_enum;
use super::units::HumanDuration;

const fn ms(n: u64) -> HumanDuration {
    HumanDuration::from_ms(n)
}

/// The broker: how it persists and which destinations exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BrokerDoc {
    /// When state changes reach storage.
    #[serde(default)]
    pub durability: DurabilityDoc,
    /// Queues and topics, created when the broker starts.
    pub destinations: Vec<DestinationDoc>,
}

/// When the broker syncs its log: `none` (a crash loses everything), `interval` (a crash loses
/// what changed since the last sync) or `always` (nothing answered is lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", tag = "policy", deny_unknown_fields)]
pub enum DurabilityDoc {
    /// Memory only.
    None,
    /// Sync when `sync_interval` (1ms to 1m) has passed since the last sync.
    Interval { sync_interval: HumanDuration },
    /// Sync before answering.
    #[default]
    Always,
}

/// One queue or topic; see `broker/src/config.rs` for each setting's full meaning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationDoc {
    /// Unique name.
    pub name: String,
    /// `queue` or `topic`.
    #[serde(default)]
    #[schemars(schema_with = "kind_schema")]
    pub kind: DestinationKind,
    /// Partitions, 1 to 1024; each is FIFO.
    #[serde(default = "defaults::partitions")]
    pub partitions: u32,
    /// FIFO message groups: the key is the group, one message of a group in flight at a time.
    #[serde(default)]
    pub fifo_groups: bool,
    /// Consumer groups of a topic; none for a queue.
    #[serde(default)]
    pub groups: Vec<GroupDoc>,
    /// Lease length of a delivery, 1ms to 12h.
    #[serde(default = "defaults::visibility_timeout")]
    pub visibility_timeout: HumanDuration,
    /// Delay before every message becomes visible, up to 1 day.
    #[serde(default)]
    pub delay: HumanDuration,
    /// Time to live of every message, 1ms to 14 days; unset, no expiry.
    #[serde(default)]
    pub message_ttl: Option<HumanDuration>,
    /// What an expired message does: `drop` or `dead-letter`.
    #[serde(default)]
    #[schemars(schema_with = "expiry_schema")]
    pub on_expiry: ExpiryAction,
    /// Bound on stored messages, 1 to 10,000,000.
    #[serde(default = "defaults::max_length")]
    pub max_length: u64,
    /// Bound on stored payload bytes.
    #[serde(default = "defaults::max_bytes")]
    pub max_bytes: u64,
    /// What a publish beyond the bounds does: `reject-publish` or `drop-head`.
    #[serde(default = "defaults::overflow")]
    #[schemars(schema_with = "overflow_schema")]
    pub overflow: OverflowPolicy,
    /// Largest payload accepted, 1 byte to 16 MiB.
    #[serde(default = "defaults::max_payload_bytes")]
    pub max_payload_bytes: u32,
    /// How long a producer dedup id is remembered; `0s` turns dedup off.
    #[serde(default = "defaults::dedup_window")]
    pub dedup_window: HumanDuration,
    /// How many dedup ids are remembered at most.
    #[serde(default = "defaults::max_dedup_ids")]
    pub max_dedup_ids: u64,
    /// Deliveries after which an unacknowledged message leaves (to `dead_letter` if set).
    #[serde(default)]
    pub max_deliveries: Option<u32>,
    /// The dead-letter queue, a queue of this broker.
    #[serde(default)]
    pub dead_letter: Option<String>,
    /// Backoff between delivery attempts of one message.
    #[serde(default)]
    pub retry: RetryDoc,
    /// Unacknowledged deliveries one consumer may hold.
    #[serde(default = "defaults::max_in_flight_per_consumer")]
    pub max_in_flight_per_consumer: u32,
}

/// The broker's defaults, read from [`DestinationConfig::default`] so they cannot diverge.
mod defaults {
    use super::{DestinationConfig, HumanDuration, OverflowPolicy, ms};

    fn base() -> DestinationConfig {
        DestinationConfig::default()
    }
    pub fn partitions() -> u32 {
        base().partitions
    }
    pub fn visibility_timeout() -> HumanDuration {
        ms(base().visibility_timeout_ms)
    }
    pub fn max_length() -> u64 {
        base().max_length
    }
    pub fn max_bytes() -> u64 {
        base().max_bytes
    }
    pub fn overflow() -> OverflowPolicy {
        base().overflow
    }
    pub fn max_payload_bytes() -> u32 {
        base().max_payload_bytes
    }
    pub fn dedup_window() -> HumanDuration {
        ms(base().dedup_window_ms)
    }
    pub fn max_dedup_ids() -> u64 {
        base().max_dedup_ids
    }
    pub fn max_in_flight_per_consumer() -> u32 {
        base().max_in_flight_per_consumer
    }
}

fn kind_schema(_: &mut SchemaGenerator) -> Schema {
    string_enum::<DestinationKind>(&["queue", "topic"], "Queue or topic.")
}

fn expiry_schema(_: &mut SchemaGenerator) -> Schema {
    string_enum::<ExpiryAction>(&["drop", "dead-letter"], "What an expired message does.")
}

fn overflow_schema(_: &mut SchemaGenerator) -> Schema {
    string_enum::<OverflowPolicy>(
        &["reject-publish", "drop-head"],
        "What a publish beyond the bounds does.",
    )
}

fn start_schema(_: &mut SchemaGenerator) -> Schema {
    string_enum::<StartPosition>(&["earliest", "latest"], "Where a new group starts reading.")
}

/// A consumer group of a topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupDoc {
    /// Unique within the topic.
    pub name: String,
    /// `earliest` or `latest`.
    #[serde(default)]
    #[schemars(schema_with = "start_schema")]
    pub start: StartPosition,
}

/// Backoff between delivery attempts: after the n-th failure, `initial_backoff *
/// multiplier^(n-1)`, at most `max_backoff`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RetryDoc {
    /// Delay after the first failure; `0s` redelivers at once.
    pub initial_backoff: HumanDuration,
    /// Growth per further failure, 1 to 100.
    pub multiplier: f64,
    /// Ceiling on the delay, at least `initial_backoff`.
    pub max_backoff: HumanDuration,
}

impl Default for RetryDoc {
    fn default() -> Self {
        let policy = RetryPolicy::default();
        RetryDoc {
            initial_backoff: ms(policy.initial_backoff_ms),
            multiplier: policy.multiplier,
            max_backoff: ms(policy.max_backoff_ms),
        }
    }
}

impl BrokerDoc {
    /// The broker configuration this section describes (not yet validated).
    pub fn to_config(&self) -> BrokerConfig {
        let durability = match self.durability {
            DurabilityDoc::None => Durability::None,
            DurabilityDoc::Interval { sync_interval } => Durability::Interval {
                sync_interval_ms: sync_interval.as_ms(),
            },
            DurabilityDoc::Always => Durability::Always,
        };
        BrokerConfig::new(
            durability,
            self.destinations
                .iter()
                .map(DestinationDoc::to_config)
                .collect(),
        )
    }
}

impl DestinationDoc {
    fn to_config(&self) -> DestinationConfig {
        DestinationConfig {
            name: self.name.clone(),
            kind: self.kind,
            partitions: self.partitions,
            fifo_groups: self.fifo_groups,
            groups: self
                .groups
                .iter()
                .map(|g| GroupConfig {
                    name: g.name.clone(),
                    start: g.start,
                })
                .collect(),
            visibility_timeout_ms: self.visibility_timeout.as_ms(),
            delay_ms: self.delay.as_ms(),
            message_ttl_ms: self.message_ttl.map(HumanDuration::as_ms),
            on_expiry: self.on_expiry,
            max_length: self.max_length,
            max_bytes: self.max_bytes,
            overflow: self.overflow,
            max_payload_bytes: self.max_payload_bytes,
            dedup_window_ms: self.dedup_window.as_ms(),
            max_dedup_ids: self.max_dedup_ids,
            max_deliveries: self.max_deliveries,
            dead_letter: self.dead_letter.clone(),
            retry: RetryPolicy {
                initial_backoff_ms: self.retry.initial_backoff.as_ms(),
                multiplier: self.retry.multiplier,
                max_backoff_ms: self.retry.max_backoff.as_ms(),
            },
            max_in_flight_per_consumer: self.max_in_flight_per_consumer,
        }
    }
}
