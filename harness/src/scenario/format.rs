//! The scenario file's cluster sections as serde types, mirroring [`crate::sim::spec`] with
//! human units: every `_ms` number of the spec is a [`HumanDuration`] here and every
//! `messages_per_s` a [`HumanRate`], under the same name without its unit (`start_ms` is
//! `start`, `messages_per_s` is `rate`). `convert.rs` maps them onto a [`ClusterSpec`], whose
//! validation then checks every bound; `errors.rs` maps its error paths back onto these names.
//!
//! Defaults are the spec's, written out here so that the JSON Schema shows them.
//!
//! [`ClusterSpec`]: crate::sim::ClusterSpec

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::schema::string_enum;
use super::units::{HumanDuration, HumanRate};
use crate::sim::spec::{ConsumerSpec, CrashSpec, ProducerSpec, PublishRetry, Transport};

const fn ms(n: u64) -> HumanDuration {
    HumanDuration::from_ms(n)
}

/// Link latency: each message's one-way delay is drawn between the two.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkDoc {
    /// Latency of every link unless a fault changes it.
    #[serde(default)]
    pub latency: LatencyDoc,
}

/// The range of one-way delays.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LatencyDoc {
    /// Least one-way delay.
    pub min: HumanDuration,
    /// Greatest one-way delay, at most 60s.
    pub max: HumanDuration,
}

impl Default for LatencyDoc {
    fn default() -> Self {
        LatencyDoc {
            min: ms(1),
            max: ms(5),
        }
    }
}

/// How long the drain after the heal may take.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DrainDoc {
    /// Past this the run is a liveness failure; 1ms to 1h.
    pub timeout: HumanDuration,
}

/// The drain bound when a scenario does not set one.
pub const DEFAULT_DRAIN_TIMEOUT: HumanDuration = ms(30_000);

impl Default for DrainDoc {
    fn default() -> Self {
        DrainDoc {
            timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

/// How clients reach the broker: `network` (the real server and client over simulated TCP) or
/// `local` (in-process calls with a fixed latency; faster, for scenarios not about the network).
pub(crate) fn transport_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let _ = generator;
    string_enum::<Transport>(&["network", "local"], "How clients reach the broker.")
}

/// Overrides of the server's settings; unset, the server's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ServerDoc {
    /// How often the server lets time pass in the broker (timers, interval syncs).
    pub tick_interval: Option<HumanDuration>,
    /// Connections the server accepts at once, 1 to 65536.
    pub max_connections: Option<usize>,
    /// Requests one connection may have waiting, 1 to 65536.
    pub max_pending_requests: Option<usize>,
    /// How long one sync of the log takes under `always` durability, up to 1s; answers that
    /// changed state wait for it, and syncs queue on one disk. Unset, `0s`.
    pub sync_time: Option<HumanDuration>,
}

/// Overrides of every actor's client settings; unset, the client's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ClientDoc {
    /// A request without an answer after this long is indeterminate.
    pub request_timeout: Option<HumanDuration>,
    /// A connection attempt that takes longer fails.
    pub connect_timeout: Option<HumanDuration>,
    /// First wait before reconnecting.
    pub reconnect_initial_backoff: Option<HumanDuration>,
    /// Longest wait before reconnecting.
    pub reconnect_max_backoff: Option<HumanDuration>,
    /// Requests in flight on one connection.
    pub max_in_flight: Option<usize>,
}

/// One or more producer hosts sharing a configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProducerDoc {
    /// How many hosts run this producer.
    #[serde(default = "one_u32")]
    pub count: u32,
    /// The destination they publish to.
    pub destination: String,
    /// Open-loop publish rate of each host from `start`.
    #[serde(default = "default_rate")]
    pub rate: HumanRate,
    /// When the first message is due.
    #[serde(default)]
    pub start: HumanDuration,
    /// Later rate changes, in increasing `at` order; a rate of `0/s` pauses.
    #[serde(default)]
    pub rate_changes: Vec<RateChangeDoc>,
    /// Messages each host sends at most; unset, no limit.
    #[serde(default)]
    pub messages: Option<u64>,
    /// How long each host publishes from `start`; unset, until the fault phase ends.
    #[serde(default)]
    pub duration: Option<HumanDuration>,
    /// Message keys.
    #[serde(default)]
    pub keys: KeysDoc,
    /// Payload size in bytes, at least the 16-byte message identity.
    #[serde(default = "default_payload_bytes")]
    pub payload_bytes: u32,
    /// Fraction of messages that every consumer fails on (poison), 0 to 1.
    #[serde(default)]
    pub poison_fraction: f64,
    /// Whether each message carries a dedup id, so that a retried publish is stored once.
    #[serde(default)]
    pub dedup_ids: bool,
    /// What a publish that was not confirmed does.
    #[serde(default)]
    pub retry: PublishRetryDoc,
    /// Publishes in flight at once per host.
    #[serde(default = "default_producer_in_flight")]
    pub max_in_flight: u32,
}

fn one_u32() -> u32 {
    1
}

fn default_rate() -> HumanRate {
    HumanRate::from_per_s(ProducerSpec::default().messages_per_s)
}

fn default_payload_bytes() -> u32 {
    ProducerSpec::default().payload_bytes
}

fn default_producer_in_flight() -> u32 {
    ProducerSpec::default().max_in_flight
}

/// A change of a producer's rate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateChangeDoc {
    /// From when.
    pub at: HumanDuration,
    /// The new rate; `0/s` pauses.
    pub rate: HumanRate,
}

/// How a producer picks message keys.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct KeysDoc {
    /// Distinct keys (`k0`, `k1`, ...); 0 sends unkeyed messages.
    pub count: u32,
    /// How often each key comes up.
    pub skew: KeySkewDoc,
}

/// A key distribution.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", tag = "kind", deny_unknown_fields)]
pub enum KeySkewDoc {
    /// Every key equally likely.
    #[default]
    Uniform,
    /// Key `i` with probability proportional to `1 / (i + 1)^exponent`, exponent 0 to 10.
    Zipf { exponent: f64 },
    /// Key `k0` takes `fraction` (0 to 1) of the messages; the rest are spread evenly.
    HotKey { fraction: f64 },
}

/// Retries of a publish that was not confirmed: capped exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PublishRetryDoc {
    /// Attempts in all, the first included; 1 never retries.
    pub max_attempts: u32,
    /// Wait after the first failed attempt.
    pub initial_backoff: HumanDuration,
    /// Growth per further attempt, 1 to 100.
    pub multiplier: f64,
    /// Ceiling on the wait.
    pub max_backoff: HumanDuration,
    /// Whether a timed-out or cut-off attempt is retried too (a duplicate without dedup ids).
    pub retry_indeterminate: bool,
}

impl Default for PublishRetryDoc {
    fn default() -> Self {
        let spec = PublishRetry::default();
        PublishRetryDoc {
            max_attempts: spec.max_attempts,
            initial_backoff: ms(spec.initial_backoff_ms),
            multiplier: spec.multiplier,
            max_backoff: ms(spec.max_backoff_ms),
            retry_indeterminate: spec.retry_indeterminate,
        }
    }
}

/// One or more consumer hosts sharing a configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsumerDoc {
    /// How many hosts run this consumer.
    #[serde(default = "one_u32")]
    pub count: u32,
    /// What they consume.
    pub destination: String,
    /// The consumer group, for a topic; none for a queue.
    #[serde(default)]
    pub group: Option<String>,
    /// Messages one receive may return (the prefetch).
    #[serde(default = "default_max_messages")]
    pub max_messages: u32,
    /// Lease length asked for on each receive; unset, the destination's.
    #[serde(default)]
    pub visibility_timeout: Option<HumanDuration>,
    /// Wait after a receive that got nothing or failed.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: HumanDuration,
    /// Simulated time spent on each message.
    #[serde(default)]
    pub processing: ProcessingDoc,
    /// Chance that processing a message fails (a nack under explicit acks), 0 to 1.
    #[serde(default)]
    pub failure_probability: f64,
    /// `explicit` (at-least-once) or `auto` (at-most-once).
    #[serde(default)]
    #[schemars(schema_with = "ack_mode_schema")]
    pub ack_mode: mqsim_broker::AckMode,
    /// Whether effects go through an idempotent sink (exactly-once effects).
    #[serde(default)]
    pub idempotent_sink: bool,
    /// Crashes the consumer injects into itself while processing.
    #[serde(default)]
    pub crash: CrashDoc,
}

fn default_max_messages() -> u32 {
    ConsumerSpec::default().max_messages
}

fn default_poll_interval() -> HumanDuration {
    ms(ConsumerSpec::default().poll_interval_ms)
}

fn ack_mode_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    string_enum::<mqsim_broker::AckMode>(
        &["explicit", "auto"],
        "`explicit`: a lease, acked after processing (at-least-once); `auto`: complete on delivery (at-most-once).",
    )
}

/// A processing-time distribution.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", tag = "kind", deny_unknown_fields)]
pub enum ProcessingDoc {
    /// Always `time`.
    Constant { time: HumanDuration },
    /// Evenly between `min` and `max`, inclusive.
    Uniform {
        min: HumanDuration,
        max: HumanDuration,
    },
    /// Exponential with mean `mean`, cut at `max`.
    Exponential {
        mean: HumanDuration,
        max: HumanDuration,
    },
}

impl Default for ProcessingDoc {
    fn default() -> Self {
        ProcessingDoc::Constant { time: ms(1) }
    }
}

/// Crashes a consumer injects into itself: it stops dead, its leases run out, and it restarts
/// after `restart_after`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CrashDoc {
    /// Chance per message of crashing before the effect is applied, 0 to 1.
    pub before_effect_probability: f64,
    /// Chance per message of crashing after the effect and before the ack, 0 to 1.
    pub after_effect_probability: f64,
    /// Downtime of each crash.
    pub restart_after: HumanDuration,
    /// Crashes per host at most.
    pub max_crashes: u32,
}

impl Default for CrashDoc {
    fn default() -> Self {
        let spec = CrashSpec::default();
        CrashDoc {
            before_effect_probability: spec.before_effect_probability,
            after_effect_probability: spec.after_effect_probability,
            restart_after: ms(spec.restart_after_ms),
            max_crashes: spec.max_crashes,
        }
    }
}

/// One fault of the schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultDoc {
    /// When it starts, inside the fault phase (before `duration`).
    pub at: HumanDuration,
    /// How long it lasts; unset, until the heal at the end of the fault phase.
    #[serde(default, rename = "for")]
    pub lasts: Option<HumanDuration>,
    /// What it is.
    pub fault: FaultKindDoc,
}

/// The kinds of faults, tagged by `kind` like every other choice in the format (YAML has no
/// plain spelling of serde's externally tagged enums; serde_norway wants `!crash` tags).
/// Hosts are named by selectors: `broker`, `producer-0`, `consumer-2`, `producers`,
/// `consumers`, `clients`, `group:NAME` (the consumers of a group or a queue).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case", tag = "kind", deny_unknown_fields)]
pub enum FaultKindDoc {
    /// Crash the hosts; the end of the window restarts them.
    Crash { hosts: Vec<String> },
    /// Lose every message between `a` and `b`; with `one_way`, only those from `a` to `b`.
    Partition {
        a: Vec<String>,
        b: Vec<String>,
        #[serde(default)]
        one_way: bool,
    },
    /// Every message between `a` and `b` takes exactly `latency`.
    Latency {
        a: Vec<String>,
        b: Vec<String>,
        latency: HumanDuration,
    },
    /// Messages between `a` and `b` wait until the fault ends.
    Hold { a: Vec<String>, b: Vec<String> },
    /// Consumers' processing takes `factor` (1 to 1000) times as long.
    Slow { hosts: Vec<String>, factor: f64 },
    /// Producers or consumers start no new work.
    Pause { hosts: Vec<String> },
}
