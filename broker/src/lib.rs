//! mqsim's reference broker: queues and topics with leases, retries, dead letters, delays,
//! bounds, dedup and durability, as a deterministic state machine with no I/O of its own.
//!
//! # Semantics
//!
//! * **Queues** are point-to-point: competing consumers share one subscription, and a message
//!   is gone once acknowledged. **Topics** keep a retained log; each consumer group gets every
//!   message and tracks its own progress, starts at the earliest or latest message, and can
//!   seek back to replay.
//! * **Partitions**: a keyed message goes to `fnv1a(key) % partitions`, an unkeyed one to the
//!   next partition in turn. A subscription delivers each partition in offset order (redeliveries
//!   first when they are due, since they have lower offsets). A queue with **FIFO groups** treats
//!   the key as the group: messages of one group are delivered in publish order, one at a time.
//! * **Publish** answers with a [`Confirm`] (id, partition, offset) or an error; nothing is
//!   dropped silently. A **dedup id** seen within the window returns the first confirm again.
//! * **Bounds**: `max_length` and `max_bytes` with `reject-publish` (an explicit
//!   [`BrokerError::Overflow`]) or `drop-head` (the oldest messages that are not leased go, each
//!   reported as [`EventKind::Dropped`]).
//! * **Leases**: an explicit-ack receive leases each message for the visibility timeout and
//!   hands out a [`Receipt`]. Ack completes it; nack, or the lease running out, is a failed
//!   delivery: the message returns after the retry backoff, or, once it has been delivered
//!   `max_deliveries` times, moves to the dead-letter queue. A receipt is stale once its lease
//!   has ended. Each consumer holds at most `max_in_flight_per_consumer` leases.
//! * **Delay** per message or per destination; **time to live** per message or per destination,
//!   after which a message is dropped or dead-lettered and reported as expired.
//!
//! # Delivery guarantees
//!
//! * **At-most-once**: receive with [`AckMode::Auto`]. The delivery itself completes the message,
//!   so a consumer that fails afterwards loses it; nothing is ever delivered twice.
//! * **At-least-once**: receive with [`AckMode::Explicit`] and ack after processing. A message is
//!   complete only when acked; a crash before the ack gives a redelivery, so duplicates happen.
//! * **Exactly-once** is not a delivery mode but a composition: at-least-once delivery, producer
//!   dedup ids (so a retried publish is stored once), and either an idempotent consumer (which
//!   records the ids it has applied, together with the effect) or a [`Command::Commit`]
//!   transaction (which acks the input and publishes the outputs atomically, so an output exists
//!   exactly when its input was consumed, as Kafka's consume-transform-produce does).
//!
//! # Durability
//!
//! The broker is command-sourced: each command that changed state is appended to [`Storage`]
//! and synced per [`Durability`]; recovery replays the synced records through the same code.
//! A crash loses exactly what was not synced, and leases held at the crash end as failed
//! deliveries.
//!
//! # Test-only defects
//!
//! A checker is only believable once it has been seen to fail. With the `defects` cargo feature
//! (never on by default), `BrokerConfig` gains a `defects` list (`defects: [ignore-delay, ...]`
//! in a scenario) of named, deliberate bugs, each imitating a real broker's failure and each
//! documented with the invariant that should catch it (see `Defect`):
//!
//! | defect | the broker... | caught by |
//! |---|---|---|
//! | `confirm-before-sync` | confirms a publish under `always` before syncing it | no loss |
//! | `lose-in-flight-on-restart` | forgets leased messages at recovery | no loss |
//! | `dead-letter-early` | dead-letters after `max_deliveries - 1` deliveries | DLQ exactness |
//! | `no-count-on-lease-expiry` | does not count a delivery whose lease ran out | DLQ exactness |
//! | `redeliver-before-visibility-timeout` | ends leases at half the timeout | lease exclusivity |
//! | `accept-stale-receipt` | accepts a receipt of an earlier lease | lease exclusivity |
//! | `forget-dedup-after-delivery` | forgets a dedup id once its message is delivered | duplicates |
//! | `ignore-requeue-delay` | ignores nack delays and retry backoff | timing |
//! | `drop-head-instead-of-reject` | drops the oldest message instead of refusing a publish | backpressure |
//! | `count-unacked-toward-max-length` | counts leased messages toward `max_length` | backpressure |
//! | `fifo-two-in-flight` | releases a FIFO group's next message when its head is leased | FIFO exclusivity |
//! | `ignore-delay` | makes delayed messages ready at once | timing |
//! | `deliver-expired` | delivers queue messages whose time to live ran out | timing |
//! | `resurrect-acked-on-restart` | answers acks under `always` before syncing them | no resurrection |
//! | `dlq-full-drops` | silently drops what a full dead-letter queue should refuse | DLQ exactness |
//!
//! Defects are deterministic and applied by the same code on replay, so a defective broker still
//! recovers consistently. Without the feature the field does not exist (a scenario naming it is
//! refused as an unknown field) and every check is a constant `false` that compiles away. Build
//! configurations with [`BrokerConfig::new`] rather than a struct literal so that they compile
//! either way. A dependent turns it on with `features = ["defects"]`, or for one run with
//! `--features mqsim-broker/defects`.

mod admin;
mod broker;
mod command;
mod config;
mod defect;
mod dest;
mod error;
mod event;
mod index;
mod message;
mod ops;
mod state;
mod stats;
mod storage;
mod sub;
mod time;
mod timers;

pub use broker::Broker;
pub use command::{Command, Reply};
pub use config::{
    BrokerConfig, DestinationConfig, DestinationKind, Durability, ExpiryAction, GroupConfig,
    OverflowPolicy, RetryPolicy, StartPosition, limits,
};
#[cfg(feature = "defects")]
pub use defect::Defect;
pub use error::{BrokerError, ConfigError, Result};
pub use event::{DropReason, Event, EventKind, LeaseEnd, Slot};
pub use message::{
    AckMode, Confirm, ConsumerId, Delivery, DestId, GroupId, MessageId, PublishRequest, Receipt,
    SeekTo,
};
pub use stats::{DestinationStats, GroupStats};
pub use storage::{MemDisk, Record, SharedDisk, Storage};
pub use time::Time;
