//! What the model test generates: a small broker configuration and a sequence of timed steps.
//!
//! The configuration space is deliberately small so that the reference model stays obviously
//! right: a queue `q` with a retry policy, `max_deliveries` and the dead-letter queue `dlq`,
//! optional bounds with either overflow policy, a time to live, dedup and an in-flight limit;
//! and, in some cases, a topic `t` with two consumer groups that may also dead-letter into
//! `dlq`. Payloads
//! are at most 8 bytes (9 are generated now and then, to see them refused) so that `max_bytes`
//! can be small enough to matter.

use bytes::Bytes;
use mqsim_broker::{
    AckMode, BrokerConfig, DestinationConfig, Durability, ExpiryAction, GroupConfig,
    OverflowPolicy, PublishRequest, RetryPolicy, StartPosition,
};
use proptest::prelude::*;
use proptest::sample::select;

pub const MAX_PAYLOAD_BYTES: u32 = 8;

/// A bound on a destination: `max_length`, and whether a full destination drops its head
/// (otherwise it rejects publishes).
pub type Bound = Option<(u64, bool)>;

/// A destination's time to live, and whether an expired message is dead-lettered (otherwise
/// it is dropped).
pub type Ttl = Option<(u64, bool)>;

#[derive(Debug, Clone)]
pub struct Setup {
    pub durability: Durability,
    pub queue: QueueSetup,
    pub dlq_partitions: u32,
    pub dlq_bound: Bound,
    pub dlq_ttl_ms: Option<u64>,
    pub topic: Option<TopicSetup>,
}

#[derive(Debug, Clone)]
pub struct QueueSetup {
    pub partitions: u32,
    pub visibility_ms: u64,
    pub delay_ms: u64,
    pub max_deliveries: u32,
    /// Retry backoff: initial delay, whole multiplier, and the cap as a multiple of the initial.
    pub retry: (u64, u32, u64),
    pub bound: Bound,
    pub ttl: Ttl,
    pub max_bytes: Option<u64>,
    pub dedup_window_ms: u64,
    pub max_dedup_ids: u64,
    pub max_in_flight: u32,
}

#[derive(Debug, Clone)]
pub struct TopicSetup {
    pub partitions: u32,
    pub visibility_ms: u64,
    pub max_deliveries: Option<u32>,
    pub dead_letter: bool,
    pub bound: Bound,
    pub ttl: Ttl,
}

/// The consumer-facing address of a receive: the two queues, the topic's groups, and three
/// ways of addressing a subscription wrongly.
#[derive(Debug, Clone, Copy)]
pub enum Reader {
    Queue,
    DeadLetters,
    Group1,
    Group2,
    QueueWithGroup,
    TopicWithoutGroup,
    UnknownGroup,
}

impl Reader {
    pub fn address(self) -> (&'static str, Option<&'static str>) {
        match self {
            Reader::Queue => ("q", None),
            Reader::DeadLetters => ("dlq", None),
            Reader::Group1 => ("t", Some("g1")),
            Reader::Group2 => ("t", Some("g2")),
            Reader::QueueWithGroup => ("q", Some("g1")),
            Reader::TopicWithoutGroup => ("t", None),
            Reader::UnknownGroup => ("t", Some("nope")),
        }
    }
}

/// Which receipt an ack, nack or extend uses. The model is asked which leases are live only to
/// aim the test at them; whether a receipt is live is still checked against the broker.
#[derive(Debug, Clone, Copy)]
pub enum ReceiptPick {
    /// The n-th (modulo their number) lease the model holds live; a stale receipt if none is.
    Live(usize),
    /// The n-th receipt handed out, counted back from the newest: often a stale one.
    Any(usize),
}

#[derive(Debug, Clone)]
pub enum Op {
    Publish {
        to: &'static str,
        request: PublishRequest,
    },
    Receive {
        from: Reader,
        consumer: u64,
        max_messages: u32,
        visibility_ms: Option<u64>,
        mode: AckMode,
    },
    Ack(ReceiptPick),
    Nack(ReceiptPick, Option<u64>),
    Extend(ReceiptPick, u64),
    Redrive {
        from: &'static str,
        max_messages: u32,
    },
    Tick,
    /// Drop the broker, lose the disk's unsynced records, open it again.
    Crash,
    /// Drop the broker and open it again on the disk as it was left, unsynced records and all:
    /// a process that died while the machine (and its page cache) stayed up.
    Restart,
    /// Compare the stats of every destination.
    Stats,
}

/// One step: let `dt_ms` pass, then do `op`.
#[derive(Debug, Clone)]
pub struct Step {
    pub dt_ms: u64,
    pub op: Op,
}

fn bound(max_length: u64) -> impl Strategy<Value = Bound> {
    prop_oneof![
        1 => Just(None),
        2 => (1..=max_length, any::<bool>()).prop_map(Some),
    ]
}

fn ttl(ms: Vec<u64>) -> impl Strategy<Value = Ttl> {
    prop_oneof![
        2 => Just(None),
        1 => (select(ms), any::<bool>()).prop_map(Some),
    ]
}

fn durability() -> impl Strategy<Value = Durability> {
    prop_oneof![
        3 => Just(Durability::Always),
        4 => select(vec![50u64, 400, 1500])
            .prop_map(|sync_interval_ms| Durability::Interval { sync_interval_ms }),
        1 => Just(Durability::None),
    ]
}

fn queue_setup() -> impl Strategy<Value = QueueSetup> {
    let timing = (
        1u32..=2,
        select(vec![300u64, 1000, 2500]),
        select(vec![0u64, 0, 0, 300]),
        1u32..=3,
        (
            select(vec![0u64, 0, 100, 400]),
            1u32..=3,
            select(vec![1u64, 4, 10]),
        ),
    );
    let limits = (
        (bound(5), ttl(vec![800, 3000])),
        proptest::option::of(8u64..=30),
        select(vec![0u64, 500, 3000]),
        select(vec![1u64, 2, 1000]),
        select(vec![1u32, 2, 3, 1000]),
    );
    (timing, limits).prop_map(
        |(
            (partitions, visibility_ms, delay_ms, max_deliveries, retry),
            ((bound, ttl), max_bytes, dedup_window_ms, max_dedup_ids, max_in_flight),
        )| QueueSetup {
            partitions,
            visibility_ms,
            delay_ms,
            max_deliveries,
            retry,
            bound,
            ttl,
            max_bytes,
            dedup_window_ms,
            max_dedup_ids,
            max_in_flight,
        },
    )
}

fn topic_setup() -> impl Strategy<Value = TopicSetup> {
    (
        1u32..=2,
        select(vec![500u64, 2000]),
        proptest::option::of(1u32..=3),
        any::<bool>(),
        bound(6),
        ttl(vec![1000, 4000]),
    )
        .prop_map(
            |(partitions, visibility_ms, max_deliveries, dead_letter, bound, ttl)| {
                let dead_letter = dead_letter && max_deliveries.is_some();
                TopicSetup {
                    partitions,
                    visibility_ms,
                    max_deliveries,
                    dead_letter,
                    bound,
                    // Dead-lettering on expiry needs a dead-letter queue.
                    ttl: ttl.map(|(ms, to_dlq)| (ms, to_dlq && dead_letter)),
                }
            },
        )
}

pub fn setup() -> impl Strategy<Value = Setup> {
    (
        durability(),
        queue_setup(),
        1u32..=2,
        bound(3),
        prop_oneof![3 => Just(None), 1 => Just(Some(2000u64))],
        proptest::option::of(topic_setup()),
    )
        .prop_map(
            |(durability, queue, dlq_partitions, dlq_bound, dlq_ttl_ms, topic)| Setup {
                durability,
                queue,
                dlq_partitions,
                dlq_bound,
                dlq_ttl_ms,
                topic,
            },
        )
}

fn apply_ttl(d: &mut DestinationConfig, ttl: Ttl) {
    if let Some((ms, dead_letter)) = ttl {
        d.message_ttl_ms = Some(ms);
        d.on_expiry = if dead_letter {
            ExpiryAction::DeadLetter
        } else {
            ExpiryAction::Drop
        };
    }
}

fn apply_bound(d: &mut DestinationConfig, bound: Bound) {
    if let Some((max_length, drop_head)) = bound {
        d.max_length = max_length;
        d.overflow = if drop_head {
            OverflowPolicy::DropHead
        } else {
            OverflowPolicy::RejectPublish
        };
    }
}

impl Setup {
    pub fn config(&self) -> BrokerConfig {
        let q = &self.queue;
        let (initial, multiplier, cap) = q.retry;
        let mut queue = DestinationConfig {
            partitions: q.partitions,
            visibility_timeout_ms: q.visibility_ms,
            delay_ms: q.delay_ms,
            max_bytes: q.max_bytes.unwrap_or(1 << 20),
            max_payload_bytes: MAX_PAYLOAD_BYTES,
            dedup_window_ms: q.dedup_window_ms,
            max_dedup_ids: q.max_dedup_ids,
            max_deliveries: Some(q.max_deliveries),
            dead_letter: Some("dlq".into()),
            retry: RetryPolicy {
                initial_backoff_ms: initial,
                multiplier: f64::from(multiplier),
                max_backoff_ms: initial * cap,
            },
            max_in_flight_per_consumer: q.max_in_flight,
            ..DestinationConfig::queue("q")
        };
        apply_bound(&mut queue, q.bound);
        apply_ttl(&mut queue, q.ttl);
        let mut dlq = DestinationConfig {
            partitions: self.dlq_partitions,
            visibility_timeout_ms: 1000,
            message_ttl_ms: self.dlq_ttl_ms,
            max_payload_bytes: MAX_PAYLOAD_BYTES,
            ..DestinationConfig::queue("dlq")
        };
        apply_bound(&mut dlq, self.dlq_bound);
        let mut destinations = vec![queue, dlq];
        if let Some(t) = &self.topic {
            let group = |name: &str| GroupConfig {
                name: name.into(),
                start: StartPosition::Earliest,
            };
            let mut topic = DestinationConfig {
                partitions: t.partitions,
                groups: vec![group("g1"), group("g2")],
                visibility_timeout_ms: t.visibility_ms,
                max_payload_bytes: MAX_PAYLOAD_BYTES,
                dedup_window_ms: 1000,
                max_deliveries: t.max_deliveries,
                dead_letter: t.dead_letter.then(|| "dlq".into()),
                ..DestinationConfig::topic("t", &[])
            };
            apply_bound(&mut topic, t.bound);
            apply_ttl(&mut topic, t.ttl);
            destinations.push(topic);
        }
        BrokerConfig::new(self.durability, destinations)
    }
}

/// Time between steps: often none, and often a round number so that steps land exactly on the
/// deadlines (lease ends, backoffs, dedup windows, sync intervals) that the settings produce.
fn dt_ms() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => Just(0u64),
        3 => 1u64..=50,
        3 => select(vec![50u64, 100, 200, 250, 300, 400, 500, 1000]),
        2 => 50u64..=1500,
        1 => 1500u64..=5000,
    ]
}

fn publish(topic: bool) -> impl Strategy<Value = Op> {
    let to = prop_oneof![
        6 => Just("q"),
        2 => Just("dlq"),
        if topic { 4 } else { 0 } => Just("t"),
        1 => Just("nowhere"),
    ];
    let payload = prop_oneof![
        12 => proptest::collection::vec(b'a'..=b'z', 0..=MAX_PAYLOAD_BYTES as usize),
        1 => proptest::collection::vec(b'a'..=b'z', MAX_PAYLOAD_BYTES as usize + 1),
    ];
    (
        to,
        proptest::option::of(select(vec!["a", "b", "c", "d"])),
        payload,
        prop_oneof![3 => Just(None), 1 => (0u64..=1500).prop_map(Some)],
        prop_oneof![2 => Just(None), 1 => select(vec!["x", "y", "z"]).prop_map(Some)],
        prop_oneof![8 => Just(None), 3 => (1u64..=3000).prop_map(Some), 1 => Just(Some(0))],
    )
        .prop_map(
            |(to, key, payload, delay_ms, dedup_id, ttl_ms)| Op::Publish {
                to,
                request: PublishRequest {
                    key: key.map(str::to_owned),
                    payload: Bytes::from(payload),
                    delay_ms,
                    ttl_ms,
                    dedup_id: dedup_id.map(str::to_owned),
                },
            },
        )
}

fn receive(topic: bool) -> impl Strategy<Value = Op> {
    let groups = if topic { 4 } else { 0 };
    let from = prop_oneof![
        8 => Just(Reader::Queue),
        3 => Just(Reader::DeadLetters),
        groups => Just(Reader::Group1),
        groups => Just(Reader::Group2),
        1 => select(vec![
            Reader::QueueWithGroup,
            Reader::TopicWithoutGroup,
            Reader::UnknownGroup
        ]),
    ];
    (
        from,
        1u64..=3,
        prop_oneof![12 => 1u32..=3, 1 => Just(0u32)],
        prop_oneof![4 => Just(None), 1 => (1u64..=3000).prop_map(Some)],
        prop_oneof![3 => Just(AckMode::Explicit), 1 => Just(AckMode::Auto)],
    )
        .prop_map(
            |(from, consumer, max_messages, visibility_ms, mode)| Op::Receive {
                from,
                consumer,
                max_messages,
                visibility_ms,
                mode,
            },
        )
}

fn receipt() -> impl Strategy<Value = ReceiptPick> {
    prop_oneof![
        4 => (0usize..4).prop_map(ReceiptPick::Live),
        1 => (0usize..20).prop_map(ReceiptPick::Any),
    ]
}

fn op(topic: bool) -> impl Strategy<Value = Op> {
    prop_oneof![
        30 => publish(topic),
        25 => receive(topic),
        10 => receipt().prop_map(Op::Ack),
        8 => (
            receipt(),
            prop_oneof![3 => Just(None), 1 => Just(Some(0)), 2 => (1u64..=2000).prop_map(Some)]
        )
            .prop_map(|(r, delay)| Op::Nack(r, delay)),
        5 => (receipt(), prop_oneof![12 => 1u64..=3000, 1 => Just(0u64)])
            .prop_map(|(r, ms)| Op::Extend(r, ms)),
        4 => (select(vec!["dlq", "dlq", "dlq", "q"]), prop_oneof![8 => 1u32..=3, 1 => Just(0u32)])
            .prop_map(|(from, max_messages)| Op::Redrive { from, max_messages }),
        8 => Just(Op::Tick),
        4 => Just(Op::Crash),
        2 => Just(Op::Restart),
        6 => Just(Op::Stats),
    ]
}

fn steps(topic: bool, max_len: usize) -> impl Strategy<Value = Vec<Step>> {
    proptest::collection::vec(
        (dt_ms(), op(topic)).prop_map(|(dt_ms, op)| Step { dt_ms, op }),
        1..=max_len,
    )
}

/// A configuration and up to `max_len` steps that address the topic only if there is one.
pub fn case(max_len: usize) -> impl Strategy<Value = (Setup, Vec<Step>)> {
    setup().prop_flat_map(move |setup| {
        let topic = setup.topic.is_some();
        (Just(setup), steps(topic, max_len))
    })
}
