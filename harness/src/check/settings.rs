//! What the checkers need to know of a run's configuration, derived from its spec.

use mqsim_broker::{
    AckMode, DestinationKind, Durability, ExpiryAction, OverflowPolicy, RetryPolicy,
};
use serde::Serialize;

use crate::sim::plan::Plan;
use crate::sim::spec::ClusterSpec;

/// The delivery promise a subscription's consumers make, from their ack mode and sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryMode {
    /// Auto acks: a message is done once delivered; loss is allowed, duplicates are not.
    AtMostOnce,
    /// Explicit acks: no loss; duplicates allowed (and counted).
    AtLeastOnce,
    /// Explicit acks into an idempotent sink: no loss and no duplicate effects.
    ExactlyOnce,
}

impl DeliveryMode {
    /// The name in reports.
    pub fn name(self) -> &'static str {
        match self {
            DeliveryMode::AtMostOnce => "at-most-once",
            DeliveryMode::AtLeastOnce => "at-least-once",
            DeliveryMode::ExactlyOnce => "exactly-once",
        }
    }
}

/// A destination's semantics, as far as the checkers use them.
#[derive(Debug, Clone, PartialEq)]
pub struct DestSettings {
    /// A queue (one subscription) or a topic (one per group).
    pub kind: DestinationKind,
    /// FIFO message groups by key.
    pub fifo_groups: bool,
    /// Lease length unless the consumer asks for another.
    pub visibility_timeout_ms: u64,
    /// Delay before a new message is ready.
    pub delay_ms: u64,
    /// Time to live.
    pub message_ttl_ms: Option<u64>,
    /// What expiry does.
    pub on_expiry: ExpiryAction,
    /// Ready messages at most.
    pub max_length: u64,
    /// What a full destination does.
    pub overflow: OverflowPolicy,
    /// Deliveries before dead-lettering.
    pub max_deliveries: Option<u32>,
    /// Whether a dead-letter destination is configured.
    pub dead_letter: bool,
    /// Backoff after a failed delivery.
    pub retry: RetryPolicy,
}

/// Everything the checkers read besides the history.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Slack for comparing times recorded at different hosts: one tick.
    pub slack_ns: u64,
    /// Whether the broker syncs every change before answering (`always`).
    pub durability_always: bool,
    /// Per destination, in the plan's order.
    pub destinations: Vec<DestSettings>,
    /// Per subscription, in the plan's order: its destination number.
    pub sub_destination: Vec<u16>,
    /// Per subscription: the delivery promise.
    pub sub_mode: Vec<DeliveryMode>,
    /// Per destination: whether `max_length` is the bound a full destination hits (rather
    /// than `max_bytes`), so that refusals can be checked against it.
    pub length_binds: Vec<bool>,
    /// Per process: the lease length its receives ask for, in ms (consumers only; 0 else).
    pub process_visibility_ms: Vec<u64>,
    /// Per process: the most messages one of its receives asks for (consumers only; 0 else).
    pub process_max_messages: Vec<u64>,
}

impl Settings {
    /// The settings of a run of `spec`.
    pub fn new(spec: &ClusterSpec, plan: &Plan) -> Settings {
        let destinations: Vec<DestSettings> = spec
            .broker
            .destinations
            .iter()
            .map(|d| DestSettings {
                kind: d.kind,
                fifo_groups: d.fifo_groups,
                visibility_timeout_ms: d.visibility_timeout_ms,
                delay_ms: d.delay_ms,
                message_ttl_ms: d.message_ttl_ms,
                on_expiry: d.on_expiry,
                max_length: d.max_length,
                overflow: d.overflow,
                max_deliveries: d.max_deliveries,
                dead_letter: d.dead_letter.is_some(),
                retry: d.retry,
            })
            .collect();
        let sub_destination: Vec<u16> = plan
            .subs
            .iter()
            .map(|s| {
                plan.destinations
                    .iter()
                    .position(|d| *d == s.destination)
                    .map_or(u16::MAX, |i| i as u16)
            })
            .collect();
        // A subscription's promise is the weakest its consumers make: one auto-acking
        // consumer makes it at-most-once, one without an idempotent sink at-least-once.
        let sub_mode = (0..plan.subs.len())
            .map(|s| {
                let specs = plan
                    .consumers
                    .iter()
                    .filter(|c| usize::from(c.sub) == s)
                    .filter_map(|c| spec.consumers.get(c.spec));
                let mut mode = DeliveryMode::ExactlyOnce;
                let mut any = false;
                for c in specs {
                    any = true;
                    if c.ack_mode == AckMode::Auto {
                        mode = DeliveryMode::AtMostOnce;
                    } else if !c.idempotent_sink && mode == DeliveryMode::ExactlyOnce {
                        mode = DeliveryMode::AtLeastOnce;
                    }
                }
                if any { mode } else { DeliveryMode::AtLeastOnce }
            })
            .collect();
        let process_max_messages = (0..plan.processes.len())
            .map(|p| {
                plan.consumer(p as u16)
                    .and_then(|slot| spec.consumers.get(slot.spec))
                    .map_or(0, |c| u64::from(c.max_messages))
            })
            .collect();
        let process_visibility_ms = (0..plan.processes.len())
            .map(|p| {
                let Some(slot) = plan.consumer(p as u16) else {
                    return 0;
                };
                let dest = sub_destination
                    .get(usize::from(slot.sub))
                    .and_then(|&d| destinations.get(usize::from(d)));
                spec.consumers
                    .get(slot.spec)
                    .and_then(|c| c.visibility_timeout_ms)
                    .or(dest.map(|d| d.visibility_timeout_ms))
                    .unwrap_or(0)
            })
            .collect();
        let length_binds = spec
            .broker
            .destinations
            .iter()
            .map(|d| {
                let payload = spec
                    .producers
                    .iter()
                    .filter(|p| p.destination == d.name)
                    .map(|p| u64::from(p.payload_bytes))
                    .max()
                    .unwrap_or(0);
                // Keys and bookkeeping may count toward the bytes too: leave a margin.
                d.max_length.saturating_mul(payload + 64) <= d.max_bytes
            })
            .collect();
        Settings {
            length_binds,
            slack_ns: spec.tick_ms.saturating_mul(1_000_000),
            durability_always: matches!(spec.broker.durability, Durability::Always),
            destinations,
            sub_destination,
            sub_mode,
            process_visibility_ms,
            process_max_messages,
        }
    }

    /// The destination of subscription `sub`.
    pub fn sub_dest(&self, sub: u16) -> Option<&DestSettings> {
        let d = *self.sub_destination.get(usize::from(sub))?;
        self.destinations.get(usize::from(d))
    }

    /// The delivery mode of subscription `sub`.
    pub fn mode(&self, sub: u16) -> DeliveryMode {
        self.sub_mode
            .get(usize::from(sub))
            .copied()
            .unwrap_or(DeliveryMode::AtLeastOnce)
    }
}
