//! Broker profiles: presets of the reference broker's settings that stand for real systems'
//! documented semantics and defaults (NOTES.md section 3), so that the same workload and
//! faults can be run "as SQS", "as a RabbitMQ quorum queue" or "as Kafka".
//!
//! A profile fills every destination setting a scenario leaves unset; a setting the scenario
//! writes out wins. Each value says which real parameter it stands for, and where the
//! reference broker has no exact equivalent the note says what was approximated. The
//! approximation that matters most: the reference broker ends a lease only by its visibility
//! timeout, while RabbitMQ, ActiveMQ and Kafka end it when the consumer's connection or
//! session is declared dead; those profiles use that detection time as the timeout.

use mqsim_broker::{
    DestinationConfig, Durability, OverflowPolicy, RetryPolicy, limits::MAX_IN_FLIGHT_PER_CONSUMER,
    limits::MAX_LENGTH,
};

/// When unacknowledged deliveries stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryLimit {
    /// Never: a failing message is redelivered for ever.
    Never,
    /// After this many deliveries, but only when the destination has a dead-letter queue (the
    /// limit is part of the dead-letter policy, as SQS's redrive policy is).
    WithDeadLetter(u32),
    /// After this many deliveries, dead-lettered if a dead-letter queue is set, else dropped.
    Always(u32),
}

/// One system's preset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// The name a scenario or `--profiles` uses.
    pub name: &'static str,
    /// The system and mode it stands for.
    pub system: &'static str,
    pub durability: Durability,
    pub visibility_timeout_ms: u64,
    pub delivery_limit: DeliveryLimit,
    pub retry: RetryPolicy,
    pub max_length: u64,
    pub overflow: OverflowPolicy,
    pub message_ttl_ms: Option<u64>,
    pub dedup_window_ms: u64,
    pub fifo_groups: bool,
    pub max_in_flight_per_consumer: u32,
    /// Per setting, the real parameter it stands for.
    pub notes: &'static [(&'static str, &'static str)],
}

const DAY_MS: u64 = 24 * 3600 * 1000;
const NO_RETRY_DELAY: RetryPolicy = RetryPolicy {
    initial_backoff_ms: 0,
    multiplier: 2.0,
    max_backoff_ms: 0,
};
const APPEND_FSYNC_EVERYSEC: Durability = Durability::Interval {
    sync_interval_ms: 1000,
};

/// Every profile, in the order listings show them.
pub const PROFILES: &[Profile] = &[
    Profile {
        name: "sqs",
        system: "Amazon SQS, standard queue",
        durability: Durability::Always,
        visibility_timeout_ms: 30_000,
        delivery_limit: DeliveryLimit::WithDeadLetter(10),
        retry: NO_RETRY_DELAY,
        max_length: MAX_LENGTH,
        overflow: OverflowPolicy::RejectPublish,
        message_ttl_ms: Some(4 * DAY_MS),
        dedup_window_ms: 0,
        fifo_groups: false,
        max_in_flight_per_consumer: MAX_IN_FLIGHT_PER_CONSUMER,
        notes: &[
            (
                "durability",
                "SendMessage returns after the message is stored redundantly",
            ),
            ("visibility_timeout", "VisibilityTimeout, 30 s by default"),
            (
                "max_deliveries",
                "RedrivePolicy maxReceiveCount, only with a dead-letter queue; the API has no default, 10 is the console's",
            ),
            (
                "retry",
                "none: a message is visible again as soon as its visibility timeout ends",
            ),
            ("max_length", "unbounded (the reference broker's ceiling)"),
            ("message_ttl", "MessageRetentionPeriod, 4 days by default"),
            ("dedup_window", "none: standard queues do not deduplicate"),
            (
                "max_in_flight_per_consumer",
                "no per-consumer limit (120,000 in flight per queue)",
            ),
        ],
    },
    Profile {
        name: "sqs-fifo",
        system: "Amazon SQS, FIFO queue",
        durability: Durability::Always,
        visibility_timeout_ms: 30_000,
        delivery_limit: DeliveryLimit::WithDeadLetter(10),
        retry: NO_RETRY_DELAY,
        max_length: MAX_LENGTH,
        overflow: OverflowPolicy::RejectPublish,
        message_ttl_ms: Some(4 * DAY_MS),
        dedup_window_ms: 5 * 60_000,
        fifo_groups: true,
        max_in_flight_per_consumer: 20_000,
        notes: &[
            (
                "durability",
                "SendMessage returns after the message is stored redundantly",
            ),
            ("visibility_timeout", "VisibilityTimeout, 30 s by default"),
            (
                "max_deliveries",
                "RedrivePolicy maxReceiveCount, only with a dead-letter queue; the API has no default, 10 is the console's",
            ),
            (
                "fifo_groups",
                "MessageGroupId: one message of a group in flight at a time",
            ),
            (
                "dedup_window",
                "MessageDeduplicationId, remembered for 5 minutes",
            ),
            ("message_ttl", "MessageRetentionPeriod, 4 days by default"),
            (
                "max_in_flight_per_consumer",
                "20,000 in flight per FIFO queue",
            ),
        ],
    },
    Profile {
        name: "rabbitmq-classic",
        system: "RabbitMQ, classic queue with publisher confirms and manual acks",
        durability: Durability::Always,
        visibility_timeout_ms: 60_000,
        delivery_limit: DeliveryLimit::Never,
        retry: NO_RETRY_DELAY,
        max_length: MAX_LENGTH,
        overflow: OverflowPolicy::DropHead,
        message_ttl_ms: None,
        dedup_window_ms: 0,
        fifo_groups: false,
        max_in_flight_per_consumer: MAX_IN_FLIGHT_PER_CONSUMER,
        notes: &[
            (
                "durability",
                "persistent messages to a durable queue are confirmed once on disk",
            ),
            (
                "visibility_timeout",
                "unacked messages return when the connection dies, detected by heartbeat (60 s by default); consumer_timeout (30 min) bounds a live consumer",
            ),
            (
                "max_deliveries",
                "none: classic queues have no delivery limit",
            ),
            ("retry", "basic.nack with requeue: back at once"),
            (
                "overflow",
                "x-overflow drop-head, the default, when x-max-length is set",
            ),
            ("max_length", "x-max-length unset: unbounded"),
            (
                "max_in_flight_per_consumer",
                "basic.qos prefetch 0: unlimited",
            ),
        ],
    },
    Profile {
        name: "rabbitmq-quorum",
        system: "RabbitMQ 4.x, quorum queue with publisher confirms and manual acks",
        durability: Durability::Always,
        visibility_timeout_ms: 60_000,
        delivery_limit: DeliveryLimit::Always(20),
        retry: NO_RETRY_DELAY,
        max_length: MAX_LENGTH,
        overflow: OverflowPolicy::DropHead,
        message_ttl_ms: None,
        dedup_window_ms: 0,
        fifo_groups: false,
        max_in_flight_per_consumer: MAX_IN_FLIGHT_PER_CONSUMER,
        notes: &[
            (
                "durability",
                "confirmed once a Raft quorum has written it to disk",
            ),
            (
                "visibility_timeout",
                "unacked messages return when the connection dies, detected by heartbeat (60 s by default)",
            ),
            (
                "max_deliveries",
                "x-delivery-limit, 20 by default since 4.0; then dead-lettered, or dropped without a dead-letter exchange",
            ),
            ("retry", "basic.nack with requeue: back at once"),
            ("overflow", "x-overflow drop-head, the default"),
            (
                "max_in_flight_per_consumer",
                "basic.qos prefetch 0: unlimited",
            ),
        ],
    },
    Profile {
        name: "redis-streams",
        system: "Redis Streams with consumer groups (XREADGROUP, XACK, XAUTOCLAIM)",
        durability: APPEND_FSYNC_EVERYSEC,
        visibility_timeout_ms: 60_000,
        delivery_limit: DeliveryLimit::Never,
        retry: NO_RETRY_DELAY,
        max_length: MAX_LENGTH,
        overflow: OverflowPolicy::DropHead,
        message_ttl_ms: None,
        dedup_window_ms: 0,
        fifo_groups: false,
        max_in_flight_per_consumer: MAX_IN_FLIGHT_PER_CONSUMER,
        notes: &[
            (
                "durability",
                "appendonly yes with appendfsync everysec, the usual production setting (the default, RDB snapshots only, loses more)",
            ),
            (
                "visibility_timeout",
                "XAUTOCLAIM min-idle-time: the application's choice, 60 s here; the pending entries list is the lease",
            ),
            (
                "max_deliveries",
                "none: the delivery counter in XPENDING is not acted on",
            ),
            ("overflow", "XADD MAXLEN trimming drops the oldest entries"),
            (
                "dedup_window",
                "none: stream ids are assigned by the server",
            ),
        ],
    },
    Profile {
        name: "google-pubsub",
        system: "Google Cloud Pub/Sub, pull subscription",
        durability: Durability::Always,
        visibility_timeout_ms: 10_000,
        delivery_limit: DeliveryLimit::WithDeadLetter(5),
        retry: NO_RETRY_DELAY,
        max_length: MAX_LENGTH,
        overflow: OverflowPolicy::RejectPublish,
        message_ttl_ms: Some(7 * DAY_MS),
        dedup_window_ms: 0,
        fifo_groups: false,
        max_in_flight_per_consumer: 1_000,
        notes: &[
            (
                "durability",
                "a publish is acknowledged once stored in several zones",
            ),
            ("visibility_timeout", "ackDeadlineSeconds, 10 s by default"),
            (
                "max_deliveries",
                "dead_letter_policy max_delivery_attempts, 5 by default, only with a dead-letter topic",
            ),
            ("retry", "no RetryPolicy: redelivered at once"),
            (
                "message_ttl",
                "message_retention_duration, 7 days by default",
            ),
            (
                "max_in_flight_per_consumer",
                "flow control max_outstanding_messages, 1,000 in the client libraries",
            ),
        ],
    },
    Profile {
        name: "kafka",
        system: "Apache Kafka 3.x, consumer group committing offsets, acks=all",
        durability: Durability::Always,
        visibility_timeout_ms: 45_000,
        delivery_limit: DeliveryLimit::Never,
        retry: NO_RETRY_DELAY,
        max_length: MAX_LENGTH,
        overflow: OverflowPolicy::DropHead,
        message_ttl_ms: Some(7 * DAY_MS),
        dedup_window_ms: 5 * 60_000,
        fifo_groups: false,
        max_in_flight_per_consumer: MAX_IN_FLIGHT_PER_CONSUMER,
        notes: &[
            (
                "durability",
                "acks=all with min.insync.replicas 2: a confirmed record survives a broker's crash; the single simulated broker stands for the replicated cluster",
            ),
            (
                "visibility_timeout",
                "session.timeout.ms, 45 s by default: a crashed consumer's partitions move to another after it; max.poll.interval.ms (5 min) bounds a slow one",
            ),
            (
                "max_deliveries",
                "none: no dead-letter topic in classic consumer groups",
            ),
            (
                "overflow",
                "retention deletes the oldest segments; producers are never refused",
            ),
            (
                "message_ttl",
                "log.retention.hours, 168 (7 days) by default",
            ),
            (
                "dedup_window",
                "enable.idempotence=true, the default since 3.0: retries are not duplicated",
            ),
        ],
    },
    Profile {
        name: "activemq",
        system: "Apache ActiveMQ Classic, persistent queue",
        durability: Durability::Always,
        visibility_timeout_ms: 30_000,
        delivery_limit: DeliveryLimit::Always(7),
        retry: RetryPolicy {
            initial_backoff_ms: 1_000,
            multiplier: 1.0,
            max_backoff_ms: 1_000,
        },
        max_length: MAX_LENGTH,
        overflow: OverflowPolicy::RejectPublish,
        message_ttl_ms: None,
        dedup_window_ms: 0,
        fifo_groups: false,
        max_in_flight_per_consumer: 1_000,
        notes: &[
            (
                "durability",
                "KahaDB with enableJournalDiskSyncs=true, the default",
            ),
            (
                "visibility_timeout",
                "unacked messages return when the connection dies, detected by the inactivity monitor (maxInactivityDuration 30 s)",
            ),
            (
                "max_deliveries",
                "RedeliveryPolicy maximumRedeliveries 6 (7 deliveries), then ActiveMQ.DLQ; declare a dead_letter queue to keep them",
            ),
            (
                "retry",
                "initialRedeliveryDelay 1 s, useExponentialBackOff false (backOffMultiplier 5 when turned on)",
            ),
            (
                "overflow",
                "producer flow control: the producer is held back rather than anything dropped",
            ),
            ("max_in_flight_per_consumer", "queue prefetch 1,000"),
        ],
    },
    Profile {
        name: "celery-redis",
        system: "Celery with the Redis broker (kombu), acks_late=True",
        durability: APPEND_FSYNC_EVERYSEC,
        visibility_timeout_ms: 3_600_000,
        delivery_limit: DeliveryLimit::Never,
        retry: NO_RETRY_DELAY,
        max_length: MAX_LENGTH,
        overflow: OverflowPolicy::RejectPublish,
        message_ttl_ms: None,
        dedup_window_ms: 0,
        fifo_groups: false,
        max_in_flight_per_consumer: 4,
        notes: &[
            (
                "durability",
                "Redis with appendfsync everysec (the default, RDB snapshots only, loses more)",
            ),
            (
                "visibility_timeout",
                "broker_transport_options visibility_timeout, 1 hour by default; with the default acks_late=False a task is acked before it runs: use ack_mode auto for that",
            ),
            (
                "max_deliveries",
                "none at the broker: Task.max_retries (3) counts the task's own retries, not redeliveries",
            ),
            (
                "max_in_flight_per_consumer",
                "worker_prefetch_multiplier 4 (per worker process)",
            ),
        ],
    },
];

/// The profile called `name`.
pub fn find(name: &str) -> Option<&'static Profile> {
    PROFILES.iter().find(|p| p.name == name)
}

/// Every profile's name, comma-separated, for error messages.
pub fn names() -> String {
    PROFILES
        .iter()
        .map(|p| p.name)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Profile {
    /// The destination settings this profile gives a destination that sets none of its own;
    /// `has_dead_letter` says whether the destination has a dead-letter queue.
    pub fn destination_defaults(&self, has_dead_letter: bool) -> DestinationConfig {
        DestinationConfig {
            visibility_timeout_ms: self.visibility_timeout_ms,
            max_deliveries: match self.delivery_limit {
                DeliveryLimit::Never => None,
                DeliveryLimit::WithDeadLetter(n) => has_dead_letter.then_some(n),
                DeliveryLimit::Always(n) => Some(n),
            },
            retry: self.retry,
            max_length: self.max_length,
            overflow: self.overflow,
            message_ttl_ms: self.message_ttl_ms,
            dedup_window_ms: self.dedup_window_ms,
            fifo_groups: self.fifo_groups,
            max_in_flight_per_consumer: self.max_in_flight_per_consumer,
            ..DestinationConfig::default()
        }
    }

    /// The listing `mqsim profiles` prints: each setting's value and what it stands for.
    pub fn describe(&self) -> String {
        use std::fmt::Write as _;
        let mut s = format!("{}: {}\n", self.name, self.system);
        for (setting, real) in self.notes {
            let value = self.value(setting);
            let _ = writeln!(s, "  {setting:<27} {value:<18} {real}");
        }
        s
    }

    /// A setting's value as a scenario would write it.
    fn value(&self, setting: &str) -> String {
        let ms = crate::scenario::format_ms;
        let d = self.destination_defaults(true);
        match setting {
            "durability" => match self.durability {
                Durability::None => "none".to_owned(),
                Durability::Always => "always".to_owned(),
                Durability::Interval { sync_interval_ms } => {
                    format!("interval {}", ms(sync_interval_ms))
                }
            },
            "visibility_timeout" => ms(d.visibility_timeout_ms),
            "max_deliveries" => match self.delivery_limit {
                DeliveryLimit::Never => "unlimited".to_owned(),
                DeliveryLimit::WithDeadLetter(n) => format!("{n} with a DLQ"),
                DeliveryLimit::Always(n) => n.to_string(),
            },
            "retry" if d.retry.initial_backoff_ms == 0 => "none".to_owned(),
            "retry" => format!("{} x{}", ms(d.retry.initial_backoff_ms), d.retry.multiplier),
            "max_length" => d.max_length.to_string(),
            "overflow" => match d.overflow {
                OverflowPolicy::DropHead => "drop-head".to_owned(),
                OverflowPolicy::RejectPublish => "reject-publish".to_owned(),
            },
            "message_ttl" => d.message_ttl_ms.map_or("none".to_owned(), ms),
            "dedup_window" => ms(d.dedup_window_ms),
            "fifo_groups" => d.fifo_groups.to_string(),
            "max_in_flight_per_consumer" => d.max_in_flight_per_consumer.to_string(),
            _ => String::new(),
        }
    }
}
