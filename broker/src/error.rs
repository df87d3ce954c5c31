//! Typed errors. Every invalid command gets one of these; nothing in the broker panics on input.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::time::Time;

/// A configuration the broker refuses to start with.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum ConfigError {
    /// A numeric setting outside its allowed range.
    #[error("destination `{destination}`: {field} = {value} is out of range ({min} to {max})")]
    OutOfRange {
        destination: String,
        field: Cow<'static, str>,
        value: u64,
        min: u64,
        max: u64,
    },
    /// An empty or overlong name.
    #[error("{what} name `{name}` must be 1 to 256 bytes")]
    BadName {
        what: Cow<'static, str>,
        name: String,
    },
    /// Two destinations, or two groups of one topic, with the same name.
    #[error("{what} `{name}` is defined twice")]
    Duplicate {
        what: Cow<'static, str>,
        name: String,
    },
    /// More items than the broker allows.
    #[error("{count} {what} exceed the limit of {max}")]
    TooMany {
        what: Cow<'static, str>,
        count: usize,
        max: usize,
    },
    /// A dead-letter target that does not exist.
    #[error("destination `{destination}`: dead_letter `{target}` is not defined")]
    UnknownDeadLetter { destination: String, target: String },
    /// A dead-letter target that is a topic.
    #[error("destination `{destination}`: dead_letter `{target}` must be a queue")]
    DeadLetterNotQueue { destination: String, target: String },
    /// Dead-letter targets that lead back to where they started.
    #[error("destination `{destination}`: its dead-letter chain loops back on itself")]
    DeadLetterCycle { destination: String },
    /// Settings that contradict each other.
    #[error("destination `{destination}`: {why}")]
    Inconsistent {
        destination: String,
        why: Cow<'static, str>,
    },
}

/// Why a command was refused. A refused command changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum BrokerError {
    /// No destination of that name.
    #[error("unknown destination `{0}`")]
    UnknownDestination(String),
    /// No consumer group of that name on the topic.
    #[error("unknown consumer group `{group}` on `{destination}`")]
    UnknownGroup { destination: String, group: String },
    /// A topic was addressed without a consumer group.
    #[error("`{0}` is a topic: name a consumer group")]
    GroupRequired(String),
    /// A queue was addressed with a consumer group.
    #[error("`{0}` is a queue: it has no consumer groups")]
    GroupNotAllowed(String),
    /// A group of that name exists already.
    #[error("consumer group `{group}` already exists on `{destination}`")]
    GroupExists { destination: String, group: String },
    /// An argument outside its range: a zero or overlong timeout, an empty batch, a bad partition.
    #[error("invalid argument {what}: {detail}")]
    InvalidArgument {
        what: Cow<'static, str>,
        detail: String,
    },
    /// A payload over the destination's `max_payload_bytes`.
    #[error("payload of {size} bytes exceeds the limit of {max}")]
    PayloadTooLarge { size: usize, max: u32 },
    /// A FIFO destination got a message without a group key.
    #[error("`{0}` has FIFO message groups: every message needs a key")]
    KeyRequired(String),
    /// The receipt does not name a live lease: it was acked, nacked, expired, released by a
    /// restart, or never issued.
    #[error("stale or unknown receipt")]
    StaleReceipt,
    /// The consumer already holds `limit` unacknowledged deliveries on this destination.
    #[error("consumer holds {limit} unacknowledged deliveries, the most allowed")]
    InFlightLimit { limit: u32 },
    /// A publish refused by the `reject-publish` overflow policy: the producer must back off.
    #[error("`{destination}` is full ({length} messages, {bytes} bytes): publish rejected")]
    Overflow {
        destination: String,
        length: u64,
        bytes: u64,
    },
    /// A command carried a time earlier than one already applied.
    #[error("time went backwards: {now} is before {last}")]
    TimeWentBackwards { now: Time, last: Time },
    /// The operation needs a dead-letter queue's origin and the message has none.
    #[error("`{0}` holds no dead-lettered messages to redrive")]
    NotADeadLetterQueue(String),
    /// A transaction was refused as a whole; nothing in it took effect.
    #[error("transaction aborted: {0}")]
    TransactionAborted(Box<BrokerError>),
    /// Storage has no room for another record: the broker refuses changes until it has.
    #[error("storage is full: the broker refuses changes")]
    StorageFull,
    /// The configuration was refused.
    #[error("bad configuration: {0}")]
    Config(#[from] ConfigError),
    /// The synced log could not be replayed: storage is corrupt or the config changed.
    #[error("recovery failed at record {index}: {reason}")]
    Recovery { index: usize, reason: String },
}

/// Shorthand for results of broker commands.
pub type Result<T, E = BrokerError> = std::result::Result<T, E>;

pub(crate) fn invalid(what: &'static str, detail: impl Into<String>) -> BrokerError {
    BrokerError::InvalidArgument {
        what: Cow::Borrowed(what),
        detail: detail.into(),
    }
}
