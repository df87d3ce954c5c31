//! The `broker` section: [`BrokerConfig`] with human durations.
//!
//! Every field mirrors one of [`DestinationConfig`] under the same name, except that the `_ms`
//! settings (`visibility_timeout_ms`, `delay_ms`, `message_ttl_ms`, `dedup_window_ms`, the
//! retry backoffs, `sync_interval_ms`) drop their unit and take a duration such as `30s`. The
//! broker's enums are used as they are, so their spellings cannot drift from the broker's.
//!
//! `profile` names a preset of a real system ([`crate::profile`]); it fills the durability and
//! every destination setting the file leaves unset, so the settings a profile covers are
//! optional here and resolved in [`BrokerDoc::to_config`]: the file's value, else the
//! profile's, else the reference broker's default.

use mqsim_broker::{
    BrokerConfig, DestinationConfig, DestinationKind, Durability, ExpiryAction, GroupConfig,
    OverflowPolicy, RetryPolicy, StartPosition,
};
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use super::schema::string_enum;
use super::units::HumanDuration;
use crate::profile::{self, Profile};

const fn ms(n: u64) -> HumanDuration {
    HumanDuration::from_ms(n)
}

/// The broker: how it persists and which destinations exist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BrokerDoc {
    /// A real system's defaults for every setting left unset: `sqs`, `sqs-fifo`,
    /// `rabbitmq-classic`, `rabbitmq-quorum`, `redis-streams`, `google-pubsub`, `kafka`,
    /// `activemq` or `celery-redis` (`mqsim profiles` lists what each sets).
    #[serde(default)]
    pub profile: Option<ProfileName>,
    /// When state changes reach storage; unset, the profile's, else `always`.
    #[serde(default)]
    pub durability: Option<DurabilityDoc>,
    /// Queues and topics, created when the broker starts.
    pub destinations: Vec<DestinationDoc>,
    /// Test-only deliberate bugs to run the broker with (`confirm-before-sync`,
    /// `dead-letter-early`, ...; see broker/src/defect.rs), for showing that a check or an
    /// exploration catches them. Only an mqsim built with `--features defects` accepts them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub defects: Vec<String>,
}

/// A profile's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProfileName {
    Sqs,
    SqsFifo,
    RabbitmqClassic,
    RabbitmqQuorum,
    RedisStreams,
    GooglePubsub,
    Kafka,
    Activemq,
    CeleryRedis,
}

impl ProfileName {
    /// Every name, in [`profile::PROFILES`] order.
    pub const ALL: [ProfileName; 9] = [
        ProfileName::Sqs,
        ProfileName::SqsFifo,
        ProfileName::RabbitmqClassic,
        ProfileName::RabbitmqQuorum,
        ProfileName::RedisStreams,
        ProfileName::GooglePubsub,
        ProfileName::Kafka,
        ProfileName::Activemq,
        ProfileName::CeleryRedis,
    ];

    /// The preset it names.
    pub fn profile(self) -> &'static Profile {
        let i = Self::ALL.iter().position(|n| *n == self).unwrap_or(0);
        &profile::PROFILES[i]
    }
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
    pub fifo_groups: Option<bool>,
    /// Consumer groups of a topic; none for a queue.
    #[serde(default)]
    pub groups: Vec<GroupDoc>,
    /// Lease length of a delivery, 1ms to 12h.
    #[serde(default)]
    pub visibility_timeout: Option<HumanDuration>,
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
    #[serde(default)]
    pub max_length: Option<u64>,
    /// Bound on stored payload bytes.
    #[serde(default = "defaults::max_bytes")]
    pub max_bytes: u64,
    /// What a publish beyond the bounds does: `reject-publish` or `drop-head`.
    #[serde(default)]
    #[schemars(schema_with = "overflow_schema")]
    pub overflow: Option<OverflowPolicy>,
    /// Largest payload accepted, 1 byte to 16 MiB.
    #[serde(default = "defaults::max_payload_bytes")]
    pub max_payload_bytes: u32,
    /// How long a producer dedup id is remembered; `0s` turns dedup off.
    #[serde(default)]
    pub dedup_window: Option<HumanDuration>,
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
    pub retry: Option<RetryDoc>,
    /// Unacknowledged deliveries one consumer may hold.
    #[serde(default)]
    pub max_in_flight_per_consumer: Option<u32>,
}

/// The broker's defaults, read from [`DestinationConfig::default`] so they cannot diverge.
mod defaults {
    use super::DestinationConfig;

    fn base() -> DestinationConfig {
        DestinationConfig::default()
    }
    pub fn partitions() -> u32 {
        base().partitions
    }
    pub fn max_bytes() -> u64 {
        base().max_bytes
    }
    pub fn max_payload_bytes() -> u32 {
        base().max_payload_bytes
    }
    pub fn max_dedup_ids() -> u64 {
        base().max_dedup_ids
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
        self.to_config_as(self.profile.map(ProfileName::profile))
    }

    /// The configuration with `profile` standing for the whole system, as `mqsim compare
    /// --profiles` runs it: the profile's durability and destination settings replace the
    /// file's, written out or not. What the profile does not cover stays the file's: names,
    /// kinds, partitions, groups, delays, dead-letter queues, byte bounds, FIFO groups a file
    /// asks for, and a delivery limit when the profile has none (dead-lettering needs one).
    pub fn to_config_overridden_by(&self, profile: &Profile) -> BrokerConfig {
        let mut config = self.to_config_as(Some(profile));
        config.durability = profile.durability;
        for (d, doc) in config.destinations.iter_mut().zip(&self.destinations) {
            let p = profile.destination_defaults(doc.dead_letter.is_some());
            d.visibility_timeout_ms = p.visibility_timeout_ms;
            d.message_ttl_ms = p.message_ttl_ms;
            d.max_length = p.max_length;
            d.overflow = p.overflow;
            d.dedup_window_ms = p.dedup_window_ms;
            d.retry = p.retry;
            d.max_in_flight_per_consumer = p.max_in_flight_per_consumer;
            d.max_deliveries = p.max_deliveries.or(d.max_deliveries);
            d.fifo_groups |= p.fifo_groups;
        }
        config
    }

    /// [`Self::to_config`] with `profile` in place of the file's own.
    pub fn to_config_as(&self, profile: Option<&Profile>) -> BrokerConfig {
        let durability = match self.durability {
            Some(DurabilityDoc::None) => Durability::None,
            Some(DurabilityDoc::Interval { sync_interval }) => Durability::Interval {
                sync_interval_ms: sync_interval.as_ms(),
            },
            Some(DurabilityDoc::Always) => Durability::Always,
            None => profile.map_or(Durability::Always, |p| p.durability),
        };
        let mut config = BrokerConfig::new(
            durability,
            self.destinations
                .iter()
                .map(|d| d.to_config(profile))
                .collect(),
        );
        // A name this build cannot switch on is reported by validation (`errors.rs`), which
        // asks again; here it is left out so that conversion stays infallible.
        let _ = config.switch_on_defects(&self.defects);
        config
    }
}

impl DestinationDoc {
    fn to_config(&self, profile: Option<&Profile>) -> DestinationConfig {
        let base = profile.map_or_else(DestinationConfig::default, |p| {
            p.destination_defaults(self.dead_letter.is_some())
        });
        DestinationConfig {
            name: self.name.clone(),
            kind: self.kind,
            partitions: self.partitions,
            fifo_groups: self.fifo_groups.unwrap_or(base.fifo_groups),
            groups: self
                .groups
                .iter()
                .map(|g| GroupConfig {
                    name: g.name.clone(),
                    start: g.start,
                })
                .collect(),
            visibility_timeout_ms: self
                .visibility_timeout
                .map_or(base.visibility_timeout_ms, HumanDuration::as_ms),
            delay_ms: self.delay.as_ms(),
            message_ttl_ms: self
                .message_ttl
                .map_or(base.message_ttl_ms, |t| Some(t.as_ms())),
            on_expiry: self.on_expiry,
            max_length: self.max_length.unwrap_or(base.max_length),
            max_bytes: self.max_bytes,
            overflow: self.overflow.unwrap_or(base.overflow),
            max_payload_bytes: self.max_payload_bytes,
            dedup_window_ms: self
                .dedup_window
                .map_or(base.dedup_window_ms, HumanDuration::as_ms),
            max_dedup_ids: self.max_dedup_ids,
            max_deliveries: self.max_deliveries.or(base.max_deliveries),
            dead_letter: self.dead_letter.clone(),
            retry: self.retry.map_or(base.retry, |r| RetryPolicy {
                initial_backoff_ms: r.initial_backoff.as_ms(),
                multiplier: r.multiplier,
                max_backoff_ms: r.max_backoff.as_ms(),
            }),
            max_in_flight_per_consumer: self
                .max_in_flight_per_consumer
                .unwrap_or(base.max_in_flight_per_consumer),
        }
    }
}
