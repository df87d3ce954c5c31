//! Named, test-only defects: deliberate bugs that imitate real brokers' failures, so that a
//! history checker can be shown to catch each of them.
//!
//! The enum is public only with the `defects` feature, and only then does
//! [`BrokerConfig`](crate::BrokerConfig) have a `defects` field. Without the feature
//! [`Defects::has`] is a constant `false`, so every check compiles away and the correct path is
//! the only one.
//!
//! Every defect is a deterministic change to how a command or timer is applied, made by the
//! same code on the first run and on replay, so a defective broker recovers consistently: its
//! log replays to the state it had, never to an error. Where a defect is about recovery
//! (`lose-in-flight-on-restart`) or about what reaches the disk (`confirm-before-sync`,
//! `resurrect-acked-on-restart`), the synced log is still a prefix of what was applied.

/// A deliberate bug. Each variant says which real failure it imitates and which invariant of
/// a history checker catches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(
    feature = "defects",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "kebab-case")
)]
pub enum Defect {
    /// Under `durability: always`, a publish is confirmed when its record is appended, and the
    /// sync waits for the next change that is not a publish (a receive, ack, nack...), as a
    /// broker that sends publisher confirms from the page cache and fsyncs later does. A crash
    /// loses every confirmed publish since the last such change.
    /// Caught by: no loss (a confirmed message is never delivered).
    ConfirmBeforeSync,
    /// Leases held at a crash vanish at recovery with their messages, instead of ending as
    /// failed deliveries: a broker that removes a message from its durable store on delivery
    /// and keeps the unacknowledged ones only in memory. Nothing is reported.
    /// Caught by: no loss (a confirmed, never acked message is not delivered again and is not
    /// reported dropped, expired or dead-lettered).
    LoseInFlightOnRestart,
    /// A message is dead-lettered after `max_deliveries - 1` failed deliveries: an off-by-one
    /// in the delivery limit (counting from zero, or comparing before incrementing).
    /// Caught by: DLQ exactness (a dead-lettered message had fewer than `max_deliveries`
    /// deliveries).
    DeadLetterEarly,
    /// A lease that runs out is not counted as a delivery, only a nack is, as in brokers whose
    /// delivery limit counts explicit rejections only. A consumer that crashes or hangs on a
    /// poison message gets it back forever with the same delivery count.
    /// Caught by: DLQ exactness (more than `max_deliveries` deliveries without dead-lettering;
    /// delivery counts that do not grow) and, in a run that must drain, liveness.
    NoCountOnLeaseExpiry,
    /// A lease ends at half the visibility timeout (a unit or clock confusion), so a message is
    /// redelivered while its first consumer still holds it, and that consumer's ack is refused.
    /// Caught by: lease exclusivity (two consumers hold one message within one visibility
    /// timeout, with no nack or expiry between) and timing.
    RedeliverBeforeVisibilityTimeout,
    /// An ack, nack or extension naming an earlier lease of a message that is leased again is
    /// accepted, as in brokers that identify an ack by message rather than by delivery: a
    /// consumer whose lease ran out completes the message its successor is processing.
    /// Caught by: lease exclusivity (an ack succeeds after its lease ended).
    AcceptStaleReceipt,
    /// A dedup id is forgotten as soon as its message is delivered, as in a broker that
    /// deduplicates against the messages it still stores: a producer's retry after the first
    /// copy was consumed is stored again.
    /// Caught by: duplicates (one dedup id, two stored messages, both delivered).
    ForgetDedupAfterDelivery,
    /// A nack's `requeue_delay_ms` and the retry backoff are ignored: a failed delivery is
    /// ready again at once, a redelivery storm.
    /// Caught by: timing (a redelivery earlier than the failure plus its delay or backoff).
    IgnoreRequeueDelay,
    /// `overflow: reject-publish` behaves as `drop-head`: a publish to a full destination is
    /// confirmed and the oldest message is dropped (a wrong default, or a policy not applied).
    /// Caught by: backpressure (under reject-publish, no overflow drop and no confirm beyond the
    /// bound) and no loss.
    DropHeadInsteadOfReject,
    /// A queue counts leased messages toward `max_length` and `max_bytes`, so it is "full"
    /// while consumers hold leases and refuses (or, under drop-head, drops) too early: the
    /// confusion between messages ready and messages total.
    /// Caught by: backpressure (a refusal while fewer than `max_length` messages are not leased).
    CountUnackedTowardMaxLength,
    /// When the head of a FIFO group is leased, the group's next message is released at once
    /// instead of on the head's ack (the group lock is dropped on dispatch), so two messages of
    /// one group can be leased together, and a nacked head comes back after its successor.
    /// Caught by: FIFO exclusivity and ordering (two leases in one group at once; a group
    /// processed out of publish order).
    FifoTwoInFlight,
    /// A message's delay (its own `delay_ms` or the destination's) is ignored: it is ready as
    /// soon as it is published.
    /// Caught by: timing (a delivery before the publish time plus the delay).
    IgnoreDelay,
    /// A queue message whose time to live runs out while it waits is still delivered: expiry is
    /// only noticed when a lease of it ends without an ack.
    /// Caught by: timing (a delivery at or after the publish time plus the time to live).
    DeliverExpired,
    /// Under `durability: always`, acks are answered before their records are synced, and the
    /// sync waits for the next change that is not an ack, as a broker that writes acks to its
    /// index lazily does. A crash brings back messages whose ack succeeded.
    /// Caught by: no resurrection (a message delivered again after a successful ack).
    ResurrectAckedOnRestart,
    /// A dead-letter queue that is full under reject-publish makes the message vanish instead
    /// of refusing it (so that it stays and is tried again). Nothing is reported.
    /// Caught by: DLQ exactness and no loss (a message that ran out of deliveries is neither in
    /// the dead-letter queue nor reported refused or dropped).
    DlqFullDrops,
    /// `max_length` is never reached: a full destination accepts every publish, refusing none
    /// and dropping none, so it grows without bound (a queue with its limit unenforced).
    /// Caught by: backpressure (more than `max_length` messages certainly ready at once).
    IgnoreMaxLength,
}

#[cfg(feature = "defects")]
impl Defect {
    /// Every defect, in declaration order.
    pub const ALL: [Defect; 16] = [
        Defect::ConfirmBeforeSync,
        Defect::LoseInFlightOnRestart,
        Defect::DeadLetterEarly,
        Defect::NoCountOnLeaseExpiry,
        Defect::RedeliverBeforeVisibilityTimeout,
        Defect::AcceptStaleReceipt,
        Defect::ForgetDedupAfterDelivery,
        Defect::IgnoreRequeueDelay,
        Defect::DropHeadInsteadOfReject,
        Defect::CountUnackedTowardMaxLength,
        Defect::FifoTwoInFlight,
        Defect::IgnoreDelay,
        Defect::DeliverExpired,
        Defect::ResurrectAckedOnRestart,
        Defect::DlqFullDrops,
        Defect::IgnoreMaxLength,
    ];

    /// The defect's name as configurations spell it (kebab-case).
    pub fn name(self) -> &'static str {
        match self {
            Defect::ConfirmBeforeSync => "confirm-before-sync",
            Defect::LoseInFlightOnRestart => "lose-in-flight-on-restart",
            Defect::DeadLetterEarly => "dead-letter-early",
            Defect::NoCountOnLeaseExpiry => "no-count-on-lease-expiry",
            Defect::RedeliverBeforeVisibilityTimeout => "redeliver-before-visibility-timeout",
            Defect::AcceptStaleReceipt => "accept-stale-receipt",
            Defect::ForgetDedupAfterDelivery => "forget-dedup-after-delivery",
            Defect::IgnoreRequeueDelay => "ignore-requeue-delay",
            Defect::DropHeadInsteadOfReject => "drop-head-instead-of-reject",
            Defect::CountUnackedTowardMaxLength => "count-unacked-toward-max-length",
            Defect::FifoTwoInFlight => "fifo-two-in-flight",
            Defect::IgnoreDelay => "ignore-delay",
            Defect::DeliverExpired => "deliver-expired",
            Defect::ResurrectAckedOnRestart => "resurrect-acked-on-restart",
            Defect::DlqFullDrops => "dlq-full-drops",
            Defect::IgnoreMaxLength => "ignore-max-length",
        }
    }
}

#[cfg(feature = "defects")]
impl std::fmt::Display for Defect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The defects a broker runs with, as a bitmap. Without the `defects` feature it holds nothing
/// and [`Defects::has`] is a constant `false`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Defects {
    #[cfg(feature = "defects")]
    bits: u32,
}

// One bit per defect.
#[cfg(feature = "defects")]
const _: () = assert!(Defect::ALL.len() <= 32);

impl Defects {
    /// The defects `config` asks for.
    pub fn of(config: &crate::config::BrokerConfig) -> Self {
        #[cfg(feature = "defects")]
        {
            Defects {
                bits: config
                    .defects
                    .iter()
                    .fold(0, |bits, &d| bits | 1 << d as u32),
            }
        }
        #[cfg(not(feature = "defects"))]
        {
            let _ = config;
            Defects {}
        }
    }

    /// Whether the broker runs with defect `d`.
    #[inline(always)]
    pub fn has(self, d: Defect) -> bool {
        #[cfg(feature = "defects")]
        {
            self.bits & (1 << d as u32) != 0
        }
        #[cfg(not(feature = "defects"))]
        {
            let _ = d;
            false
        }
    }
}
