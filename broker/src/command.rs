//! The broker's commands as data: what a client asks for, what the log records, what a model
//! test generates and what a wire protocol carries.

use serde::{Deserialize, Serialize};

use crate::config::StartPosition;
use crate::error::BrokerError;
use crate::message::{AckMode, Confirm, ConsumerId, Delivery, PublishRequest, Receipt, SeekTo};

/// A request to the broker.
///
/// Commands and replies are externally tagged (the serde default) rather than internally
/// tagged, because compact binary formats such as the wire protocol's cannot decode internally
/// tagged enums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Command {
    /// Store a message.
    Publish {
        destination: String,
        request: PublishRequest,
    },
    /// Store up to 1024 messages in one destination, in order, each on its own: one refused
    /// publish does not stop the others.
    PublishBatch {
        destination: String,
        requests: Vec<PublishRequest>,
    },
    /// Take up to `max_messages` (1 to 1024) visible messages. `group` names the consumer group
    /// of a topic and must be `None` for a queue. `visibility_timeout_ms` overrides the
    /// destination's lease length (1 ms to 12 h).
    Receive {
        destination: String,
        group: Option<String>,
        consumer: ConsumerId,
        max_messages: u32,
        visibility_timeout_ms: Option<u64>,
        ack_mode: AckMode,
    },
    /// Complete a leased message.
    Ack { receipt: Receipt },
    /// Complete up to 1024 leased messages, each on its own: unlike `Commit` this is not
    /// atomic, and a stale receipt fails alone while the others are acked.
    AckBatch { receipts: Vec<Receipt> },
    /// Give a lease back: the message is retried after `requeue_delay_ms` (0 to 1 day), or after
    /// the retry policy's backoff when `None`, or dead-lettered when out of deliveries.
    Nack {
        receipt: Receipt,
        requeue_delay_ms: Option<u64>,
    },
    /// Set a lease to end `visibility_timeout_ms` (1 ms to 12 h) from now.
    ExtendVisibility {
        receipt: Receipt,
        visibility_timeout_ms: u64,
    },
    /// Acknowledge `acks` and publish `publishes` atomically: all or nothing.
    Commit {
        acks: Vec<Receipt>,
        publishes: Vec<(String, PublishRequest)>,
    },
    /// Create a consumer group on a topic.
    CreateGroup {
        destination: String,
        group: String,
        start: StartPosition,
    },
    /// Reposition a consumer group on a topic (replay or skip).
    Seek {
        destination: String,
        group: String,
        to: SeekTo,
    },
    /// Move up to `max_messages` (1 to 1024) dead-lettered messages back to where they came from.
    Redrive {
        destination: String,
        max_messages: u32,
    },
    /// Let time pass: fire due timers and sync if the durability policy says so.
    Tick,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reply {
    /// The publish was accepted.
    Published { confirm: Confirm },
    /// One result per publish of a batch, in order.
    PublishedBatch {
        results: Vec<Result<Confirm, BrokerError>>,
    },
    /// What a receive got; possibly nothing.
    Delivered { deliveries: Vec<Delivery> },
    /// One result per receipt of an ack batch, in order.
    Acked {
        results: Vec<Result<(), BrokerError>>,
    },
    /// The transaction committed; one confirm per publish, in order.
    Committed { confirms: Vec<Confirm> },
    /// How many messages a redrive moved.
    Redriven { count: u32 },
    /// Done, with nothing to report.
    Done,
}

impl Command {
    /// Whether a successful run of this command, answered with `reply`, changed state and so
    /// belongs in the log. Ticks and empty receives change nothing that replay would not redo.
    pub(crate) fn is_logged(&self, reply: &Reply) -> bool {
        match (self, reply) {
            (Command::Tick, _) => false,
            (Command::Receive { .. }, Reply::Delivered { deliveries }) => !deliveries.is_empty(),
            (Command::Redrive { .. }, Reply::Redriven { count }) => *count > 0,
            // A batch whose elements all failed changed nothing. One with any success is logged
            // whole: replay re-applies every element to the same state, so those that failed
            // live fail again the same way and change nothing then either.
            (Command::PublishBatch { .. }, Reply::PublishedBatch { results }) => {
                results.iter().any(Result::is_ok)
            }
            (Command::AckBatch { .. }, Reply::Acked { results }) => {
                results.iter().any(Result::is_ok)
            }
            _ => true,
        }
    }
}
