//! What producers send and consumers receive.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::time::Time;

/// A message's identity, assigned by the broker at publish. It survives dead-lettering and
/// redrive (as SQS keeps a message id when it moves a message to a DLQ). Ids are unique over the
/// broker's whole life, restarts included: each incarnation draws from its own range.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct MessageId(pub u64);

/// A consumer's identity, chosen by the caller. The in-flight limit is kept per consumer.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ConsumerId(pub u64);

/// A destination's index in the broker configuration.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct DestId(pub u32);

/// A subscription's index within its destination. A queue has exactly one, index 0; a topic has
/// one per consumer group, in creation order.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct GroupId(pub u32);

/// A message to publish.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PublishRequest {
    /// Partitioning key; on a destination with FIFO groups, the message group id.
    pub key: Option<String>,
    /// The body. Its length counts toward `max_payload_bytes` and `max_bytes`.
    pub payload: Bytes,
    /// Delay before the message becomes visible; overrides the destination's `delay_ms`.
    pub delay_ms: Option<u64>,
    /// Time to live; overrides the destination's `message_ttl_ms`.
    pub ttl_ms: Option<u64>,
    /// Producer dedup id: a second publish with the same id within the destination's dedup
    /// window is not stored again and gets the first publish's confirm.
    pub dedup_id: Option<String>,
}

impl PublishRequest {
    /// A message with a payload and nothing else set.
    pub fn new(payload: impl Into<Bytes>) -> Self {
        PublishRequest {
            payload: payload.into(),
            ..Default::default()
        }
    }

    /// The same message with a key.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// The same message with a dedup id.
    pub fn with_dedup_id(mut self, id: impl Into<String>) -> Self {
        self.dedup_id = Some(id.into());
        self
    }

    /// The same message with its own delay.
    pub fn with_delay_ms(mut self, delay_ms: u64) -> Self {
        self.delay_ms = Some(delay_ms);
        self
    }

    /// The same message with its own time to live.
    pub fn with_ttl_ms(mut self, ttl_ms: u64) -> Self {
        self.ttl_ms = Some(ttl_ms);
        self
    }
}

/// The broker's answer to an accepted publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirm {
    /// The message's id.
    pub message_id: MessageId,
    /// The partition it went to.
    pub partition: u32,
    /// Its offset in that partition.
    pub offset: u64,
    /// True when a dedup id matched an earlier publish: nothing new was stored, and this confirm
    /// repeats the first one.
    pub duplicate: bool,
}

/// How a receive acknowledges what it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AckMode {
    /// The delivery completes the message at once: if the consumer then fails, the message is
    /// gone. This is at-most-once.
    Auto,
    /// The delivery takes a lease; the message completes only when acknowledged, and comes back
    /// if the lease runs out or is nacked. This is at-least-once.
    #[default]
    Explicit,
}

/// Proof of one lease, handed out with a delivery. It is valid until the lease ends (ack, nack,
/// expiry or broker restart); a later delivery of the same message gets a new receipt, and the
/// old one is stale from then on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Receipt {
    /// The broker incarnation that issued it.
    pub epoch: u32,
    /// Destination of the message.
    pub destination: DestId,
    /// Subscription that leased it.
    pub group: GroupId,
    /// Partition of the message.
    pub partition: u32,
    /// Offset of the message.
    pub offset: u64,
    /// Unique number of this delivery.
    pub token: u64,
}

/// One message handed to a consumer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// The message's id.
    pub message_id: MessageId,
    /// Partition of the message.
    pub partition: u32,
    /// Offset of the message.
    pub offset: u64,
    /// The message key, if any.
    pub key: Option<String>,
    /// The body.
    pub payload: Bytes,
    /// How many times this message has been delivered to this subscription, this one included.
    pub delivery_count: u32,
    /// When the message was published (or moved here by dead-lettering or redrive).
    pub published_at: Time,
    /// The lease; `None` under [`AckMode::Auto`], where there is nothing to acknowledge.
    pub receipt: Option<Receipt>,
}

/// Where a consumer group repositions itself on a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeekTo {
    /// Every partition from its oldest retained message: replay everything.
    Earliest,
    /// Every partition from its end: skip everything not yet consumed.
    Latest,
    /// One partition from `offset` (clamped to what is retained).
    Offset {
        /// The partition.
        partition: u32,
        /// The first offset to deliver again.
        offset: u64,
    },
}
