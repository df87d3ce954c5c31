//! What the broker did, for the history a checker reads.
//!
//! Client-visible results (confirms, deliveries, errors) come back from commands; events also
//! record what happened without a client asking: leases that ran out, messages dead-lettered,
//! expired or dropped. The hot-path events carry ids only; the rare ones also carry the key and
//! payload, so that a harness can name a message whose publish confirm it never saw.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::message::{ConsumerId, DestId, GroupId, MessageId};
use crate::time::Time;

/// One thing that happened, at a simulated instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened: the command's time, or the deadline of the timer that fired.
    pub at: Time,
    /// What happened.
    pub kind: EventKind,
}

/// A message's place: which destination, partition and offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    /// The destination.
    pub destination: DestId,
    /// The partition.
    pub partition: u32,
    /// The offset.
    pub offset: u64,
}

/// Why a message was removed without being consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DropReason {
    /// The drop-head overflow policy made room for a newer message.
    Overflow,
    /// It reached `max_deliveries` and the destination has no dead-letter queue.
    MaxDeliveries,
    /// A consumer group seeked past it before consuming it.
    Skipped,
}

/// Why a lease ended without an acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaseEnd {
    /// The visibility timeout ran out.
    Expired,
    /// The broker restarted; leases do not survive a restart.
    Restart,
}

/// The kinds of events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum EventKind {
    /// A publish was accepted (`duplicate`: it matched a dedup id and stored nothing).
    Published {
        message_id: MessageId,
        at: Slot,
        duplicate: bool,
    },
    /// A publish was refused by the reject-publish overflow policy.
    Rejected { destination: DestId },
    /// A message was handed to a consumer.
    Delivered {
        message_id: MessageId,
        at: Slot,
        group: GroupId,
        consumer: ConsumerId,
        delivery_count: u32,
        auto_ack: bool,
    },
    /// A lease was acknowledged; the message is complete for the group.
    Acked {
        message_id: MessageId,
        at: Slot,
        group: GroupId,
    },
    /// A lease was given back; the message will be retried or dead-lettered.
    Nacked {
        message_id: MessageId,
        at: Slot,
        group: GroupId,
    },
    /// A lease ended without an acknowledgement.
    LeaseEnded {
        message_id: MessageId,
        at: Slot,
        group: GroupId,
        why: LeaseEnd,
    },
    /// A lease was extended to a new deadline.
    LeaseExtended {
        message_id: MessageId,
        at: Slot,
        group: GroupId,
        until: Time,
    },
    /// A message left its destination for the dead-letter queue after `delivery_count`
    /// deliveries (or because it expired).
    DeadLettered {
        message_id: MessageId,
        at: Slot,
        group: GroupId,
        to: Slot,
        delivery_count: u32,
        key: Option<String>,
        payload: Bytes,
    },
    /// Dead-lettering was refused because the dead-letter queue is full; the message stays and
    /// is tried again later. It is never dropped silently.
    DeadLetterRefused {
        message_id: MessageId,
        at: Slot,
        group: GroupId,
    },
    /// A message's time to live ran out before it was consumed.
    Expired {
        message_id: MessageId,
        at: Slot,
        group: GroupId,
        key: Option<String>,
        payload: Bytes,
    },
    /// A message was removed without being consumed.
    Dropped {
        message_id: MessageId,
        at: Slot,
        group: GroupId,
        reason: DropReason,
        key: Option<String>,
        payload: Bytes,
    },
    /// A dead-lettered message was moved back to where it came from.
    Redriven {
        message_id: MessageId,
        from: Slot,
        to: Slot,
    },
    /// A consumer group was created or repositioned.
    GroupSeeked { destination: DestId, group: GroupId },
    /// The broker came back from a crash; `epoch` is its new incarnation.
    Recovered { epoch: u32 },
}
