//! The cluster a simulation runs, as plain data.
//!
//! `crate::scenario` maps YAML scenarios onto these types; they derive `Deserialize`, refuse
//! unknown fields, and name every unit last (`_ms`, `_per_s`, `_bytes`). Every setting has a
//! bound in [`limits`]; [`ClusterSpec::validate`] (in [`super::validate`]) checks them all, and
//! the cross-references (destinations, groups, host names), before anything runs, so a bad spec
//! is an error with the path of the offending field rather than a surprise in the middle of a
//! run.

use mqsim_broker::{AckMode, BrokerConfig};
use serde::{Deserialize, Serialize};

use super::nemesis::FaultSpec;

/// Ceilings on every setting of a spec. They keep one run's memory and simulated time bounded;
/// they are generous for a test harness, not tuned for a benchmark farm.
pub mod limits {
    /// Simulation tick, the unit of simulated time turmoil advances by (1 ms to 1 s).
    pub const MAX_TICK_MS: u64 = 1000;
    /// Fault phase (one simulated day).
    pub const MAX_DURATION_MS: u64 = 24 * 3600 * 1000;
    /// Drain phase (one simulated hour).
    pub const MAX_DRAIN_TIMEOUT_MS: u64 = 3600 * 1000;
    /// One-way network latency.
    pub const MAX_LATENCY_MS: u64 = 60_000;
    /// Producer or consumer hosts, each kind.
    pub const MAX_ACTORS: u32 = 256;
    /// Publish rate of one producer.
    pub const MAX_RATE_PER_S: f64 = 1_000_000.0;
    /// Rate changes in one producer's schedule.
    pub const MAX_RATE_CHANGES: usize = 1024;
    /// Messages one producer sends: its sequence numbers fill the low 32 bits of a message id.
    pub const MAX_MESSAGES_PER_PRODUCER: u64 = u32::MAX as u64;
    /// Distinct keys of one producer.
    pub const MAX_KEYS: u32 = 100_000;
    /// Publishes one producer keeps in flight.
    pub const MAX_IN_FLIGHT: u32 = 65_536;
    /// Attempts of one publish.
    pub const MAX_ATTEMPTS: u32 = 1000;
    /// Any backoff, processing time, poll interval or restart delay (one simulated hour).
    pub const MAX_WAIT_MS: u64 = 3600 * 1000;
    /// One sync of the broker's log (one second: a disk slower than that is a failure, not a
    /// latency).
    pub const MAX_SYNC_TIME_MS: u64 = 1000;
    /// Slow-consumer factor.
    pub const MAX_SLOW_FACTOR: f64 = 1000.0;
    /// Faults in one schedule.
    pub const MAX_FAULTS: usize = 1024;
    /// Crashes one consumer may inject into itself.
    pub const MAX_SELF_CRASHES: u32 = 10_000;
    /// Entries in one history (64 bytes each in memory): a run that would record more stops
    /// with an error rather than exhaust memory.
    pub const MAX_HISTORY_ENTRIES: usize = 16 << 20;
}

/// A whole simulated cluster: one broker, producers, consumers and a fault schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// Fixes everything: turmoil's randomness and every actor's.
    pub seed: u64,
    /// Simulated milliseconds per simulation step.
    #[serde(default = "one")]
    pub tick_ms: u64,
    /// Length of the fault phase: producers publish and the fault schedule runs until then.
    pub duration_ms: u64,
    /// How long the drain phase after the heal may take before it is a liveness failure.
    pub drain_timeout_ms: u64,
    /// How clients reach the broker.
    #[serde(default)]
    pub transport: Transport,
    /// Latency of every link unless a fault changes it.
    #[serde(default)]
    pub network: NetworkSpec,
    /// The broker's destinations and durability policy.
    pub broker: BrokerConfig,
    /// Server settings; unset fields take the server's defaults.
    #[serde(default)]
    pub server: ServerSpec,
    /// Client settings of every actor; unset fields take the client's defaults.
    #[serde(default)]
    pub client: ClientSpec,
    /// Producer hosts.
    #[serde(default)]
    pub producers: Vec<ProducerSpec>,
    /// Consumer hosts.
    #[serde(default)]
    pub consumers: Vec<ConsumerSpec>,
    /// The fault schedule, by simulated time.
    #[serde(default)]
    pub faults: Vec<FaultSpec>,
}

fn one() -> u64 {
    1
}

/// How actors reach the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// The real server and client over turmoil's simulated TCP.
    #[default]
    Network,
    /// No network: actors call the broker in-process through [`super::LocalDriver`], with a
    /// fixed latency and partitions modelled as lost requests or replies. Fast, and useful when
    /// the network is not what a test is about.
    Local,
}

/// Link latency: turmoil draws each message's delay between the two, exponentially distributed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkSpec {
    /// Least one-way delay.
    pub min_latency_ms: u64,
    /// Greatest one-way delay.
    pub max_latency_ms: u64,
}

impl Default for NetworkSpec {
    fn default() -> Self {
        NetworkSpec {
            min_latency_ms: 1,
            max_latency_ms: 5,
        }
    }
}

/// Overrides of the server's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSpec {
    /// How often the server lets time pass in the broker (timers, interval syncs).
    pub tick_interval_ms: Option<u64>,
    /// Connections the server accepts at once.
    pub max_connections: Option<usize>,
    /// Requests one connection may have waiting.
    pub max_pending_requests: Option<usize>,
    /// Simulated time one sync of the broker's log takes under `always` durability; answers
    /// that changed state wait for it (see [`crate::server`]).
    pub sync_time_ms: Option<u64>,
}

/// Overrides of the client's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientSpec {
    /// A request without an answer after this long is indeterminate.
    pub request_timeout_ms: Option<u64>,
    /// A connection attempt that takes longer fails.
    pub connect_timeout_ms: Option<u64>,
    /// First wait before reconnecting.
    pub reconnect_initial_backoff_ms: Option<u64>,
    /// Longest wait before reconnecting.
    pub reconnect_max_backoff_ms: Option<u64>,
    /// Requests in flight on one connection.
    pub max_in_flight: Option<usize>,
}

/// Request timeout the local transport uses when the spec leaves it unset.
pub const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 1000;
/// Broker tick interval the local transport uses when the spec leaves it unset.
pub const DEFAULT_TICK_INTERVAL_MS: u64 = 10;

/// One or more producer hosts sharing a configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProducerSpec {
    /// How many hosts run this producer.
    pub count: u32,
    /// Where they publish.
    pub destination: String,
    /// Open-loop rate of each host from `start_ms`.
    pub messages_per_s: f64,
    /// When the first message is due.
    pub start_ms: u64,
    /// Later rate changes, in increasing `at_ms` order; a rate of zero pauses the schedule.
    pub rate_changes: Vec<RateChange>,
    /// Messages each host sends at most; unset, no limit.
    pub messages: Option<u64>,
    /// How long each host publishes from `start_ms`; unset, until the fault phase ends (which
    /// stops every producer in any case).
    pub duration_ms: Option<u64>,
    /// Message keys.
    pub keys: KeySpec,
    /// Payload size, at least [`super::ids::HEADER_BYTES`] for the message's identity.
    pub payload_bytes: u32,
    /// Fraction of messages that every consumer fails on (poison).
    pub poison_fraction: f64,
    /// Whether each message carries a dedup id, so that a retried publish is stored once.
    pub dedup_ids: bool,
    /// What a publish that was not confirmed does.
    pub retry: PublishRetry,
    /// Publishes in flight at once; when reached, later messages wait (and their send delay
    /// shows it).
    pub max_in_flight: u32,
}

impl Default for ProducerSpec {
    fn default() -> Self {
        ProducerSpec {
            count: 1,
            destination: String::new(),
            messages_per_s: 100.0,
            start_ms: 0,
            rate_changes: Vec::new(),
            messages: None,
            duration_ms: None,
            keys: KeySpec::default(),
            payload_bytes: 32,
            poison_fraction: 0.0,
            dedup_ids: false,
            retry: PublishRetry::default(),
            max_in_flight: 64,
        }
    }
}

/// A change of a producer's rate at a simulated time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateChange {
    /// From when.
    pub at_ms: u64,
    /// The new rate; zero pauses.
    pub messages_per_s: f64,
}

/// How a producer picks keys.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeySpec {
    /// Distinct keys (`k0`, `k1`, ...); zero sends unkeyed messages.
    pub count: u32,
    /// How often each key comes up.
    pub skew: KeySkew,
}

/// A key distribution.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", deny_unknown_fields)]
pub enum KeySkew {
    /// Every key equally likely.
    #[default]
    Uniform,
    /// Key `i` with probability proportional to `1 / (i + 1)^exponent`.
    Zipf {
        /// 0 (uniform) to 10.
        exponent: f64,
    },
    /// Key `k0` takes `fraction` of the messages; the rest are spread evenly.
    HotKey {
        /// 0 to 1.
        fraction: f64,
    },
}

/// Retries of a publish that was not confirmed: capped exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublishRetry {
    /// Attempts in all, the first included; 1 never retries.
    pub max_attempts: u32,
    /// Wait after the first failed attempt.
    pub initial_backoff_ms: u64,
    /// Growth per further attempt, 1 to 100.
    pub multiplier: f64,
    /// Ceiling on the wait.
    pub max_backoff_ms: u64,
    /// Whether an indeterminate attempt (timeout, connection lost) is retried too. Without
    /// dedup ids a retry of a publish that was in fact stored is a duplicate.
    pub retry_indeterminate: bool,
}

impl Default for PublishRetry {
    fn default() -> Self {
        PublishRetry {
            max_attempts: 5,
            initial_backoff_ms: 20,
            multiplier: 2.0,
            max_backoff_ms: 500,
            retry_indeterminate: true,
        }
    }
}

impl PublishRetry {
    /// The wait after the `attempt`-th failed attempt (1-based), before jitter.
    pub fn backoff_ms(&self, attempt: u32) -> u64 {
        // The same capped exponential backoff as the broker's retry policy; one formula serves
        // both.
        mqsim_broker::RetryPolicy {
            initial_backoff_ms: self.initial_backoff_ms,
            multiplier: self.multiplier,
            max_backoff_ms: self.max_backoff_ms,
        }
        .backoff_ms(attempt)
    }
}

/// One or more consumer hosts sharing a configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsumerSpec {
    /// How many hosts run this consumer.
    pub count: u32,
    /// What they consume.
    pub destination: String,
    /// The consumer group of a topic; unset for a queue.
    pub group: Option<String>,
    /// Messages one receive may return (the prefetch).
    pub max_messages: u32,
    /// Lease length asked for on each receive; unset, the destination's.
    pub visibility_timeout_ms: Option<u64>,
    /// Wait after a receive that got nothing or failed.
    pub poll_interval_ms: u64,
    /// Simulated time spent on each message.
    pub processing: Processing,
    /// Chance that processing a message fails (a nack under explicit acks).
    pub failure_probability: f64,
    /// Explicit acks (at-least-once) or auto (at-most-once).
    pub ack_mode: AckMode,
    /// Whether the group's effects go through an idempotent sink that applies each message id
    /// once (exactly-once effects over at-least-once delivery).
    pub idempotent_sink: bool,
    /// Crashes the consumer injects into itself while processing.
    pub crash: CrashSpec,
}

impl Default for ConsumerSpec {
    fn default() -> Self {
        ConsumerSpec {
            count: 1,
            destination: String::new(),
            group: None,
            max_messages: 10,
            visibility_timeout_ms: None,
            poll_interval_ms: 5,
            processing: Processing::default(),
            failure_probability: 0.0,
            ack_mode: AckMode::Explicit,
            idempotent_sink: false,
            crash: CrashSpec::default(),
        }
    }
}

/// A processing-time distribution, in milliseconds, drawn from the consumer's seeded RNG.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind", deny_unknown_fields)]
pub enum Processing {
    /// Always the same.
    Constant { ms: u64 },
    /// Evenly between the two, inclusive.
    Uniform { min_ms: u64, max_ms: u64 },
    /// Exponential with this mean, cut at `max_ms`.
    Exponential { mean_ms: u64, max_ms: u64 },
}

impl Default for Processing {
    fn default() -> Self {
        Processing::Constant { ms: 1 }
    }
}

impl Processing {
    /// The longest processing time it can draw.
    pub fn max_ms(&self) -> u64 {
        match *self {
            Processing::Constant { ms } => ms,
            Processing::Uniform { max_ms, .. } | Processing::Exponential { max_ms, .. } => max_ms,
        }
    }
}

/// Crashes a consumer injects into itself in the fault phase: it stops dead at that point, its
/// leases run out, and it restarts after `restart_after_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrashSpec {
    /// Chance per message of crashing before the effect is applied.
    pub before_effect_probability: f64,
    /// Chance per message of crashing after the effect, before the ack: the message comes back
    /// and its effect repeats unless the sink is idempotent.
    pub after_effect_probability: f64,
    /// Downtime of each crash.
    pub restart_after_ms: u64,
    /// Crashes per host at most.
    pub max_crashes: u32,
}

impl Default for CrashSpec {
    fn default() -> Self {
        CrashSpec {
            before_effect_probability: 0.0,
            after_effect_probability: 0.0,
            restart_after_ms: 100,
            max_crashes: 10,
        }
    }
}

pub use super::validate::SpecError;
