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

mod broker;
mod command;
mod config;
mod defect;
mod dest;
mod error;
mod event;
mod message;
mod ops;
mod state;
mod stats;
mod storage;
mod time;

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
