//! Throughput and recovery benchmarks of the reference broker. See benches/broker.md for what
//! each one measures and the figures of the last run.
//!
//! Every benchmark keeps simulated time monotonic (one microsecond per iteration), checks the
//! results of the operations it times so that none can be skipped, and drains the broker's event
//! buffer periodically so that memory stays bounded however many iterations criterion asks for.

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{
    BatchSize, BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use mqsim_broker::{
    AckMode, Broker, BrokerConfig, ConsumerId, DestinationConfig, Durability, GroupConfig, MemDisk,
    OverflowPolicy, PublishRequest, StartPosition, Time,
};

/// Payload size of every message.
const PAYLOAD_BYTES: usize = 64;
/// Messages per iteration of the batched variants.
const BATCH: u32 = 64;
/// Consumer groups of the fan-out topic.
const GROUPS: usize = 8;
/// Iterations between two `clear_events` calls.
const DRAIN_EVERY: u64 = 1024;
/// Cycles a `Durability::Always` broker runs before it is replaced by a fresh one (untimed), so
/// that its in-memory log (3 records per cycle) stays bounded.
const ALWAYS_CHUNK: u64 = 100_000;
/// One simulated microsecond, in nanoseconds.
const MICROS: u64 = 1_000;

const QUEUE: &str = "q";
const TOPIC: &str = "t";

fn payload() -> Bytes {
    Bytes::from(vec![0xA5u8; PAYLOAD_BYTES])
}

fn queue_config(durability: Durability) -> BrokerConfig {
    BrokerConfig::new(durability, vec![DestinationConfig::queue(QUEUE)])
}

fn group_name(g: usize) -> String {
    format!("g{g}")
}

/// A topic with [`GROUPS`] groups. A topic retains consumed messages until retention removes
/// them, so it drops the oldest past 10,000 to keep memory bounded: the steady state of a
/// retained log.
fn topic_config() -> BrokerConfig {
    let groups = (0..GROUPS)
        .map(|g| GroupConfig {
            name: group_name(g),
            start: StartPosition::Latest,
        })
        .collect();
    BrokerConfig::new(
        Durability::None,
        vec![DestinationConfig {
            groups,
            max_length: 10_000,
            overflow: OverflowPolicy::DropHead,
            ..DestinationConfig::topic(TOPIC, &[])
        }],
    )
}

/// A broker on one queue, its simulated clock and an iteration counter.
struct Rig {
    broker: Broker,
    now: u64,
    iterations: u64,
    payload: Bytes,
}

impl Rig {
    fn new(config: BrokerConfig) -> Rig {
        Rig {
            broker: Broker::open(config, MemDisk::new(), Time::ZERO).expect("valid config"),
            now: 0,
            iterations: 0,
            payload: payload(),
        }
    }

    /// Advances the clock by one microsecond and drains events every [`DRAIN_EVERY`] calls.
    fn tick(&mut self) -> Time {
        self.now += MICROS;
        self.iterations += 1;
        if self.iterations.is_multiple_of(DRAIN_EVERY) {
            self.broker.clear_events();
        }
        Time(self.now)
    }

    /// Publishes `n` messages, receives them in one call and acks each.
    fn cycle(&mut self, n: u32) {
        let now = self.tick();
        for _ in 0..n {
            let confirm = self
                .broker
                .publish(now, QUEUE, PublishRequest::new(self.payload.clone()))
                .expect("publish");
            black_box(confirm);
        }
        let deliveries = self
            .broker
            .receive(now, QUEUE, None, ConsumerId(1), n, AckMode::Explicit)
            .expect("receive");
        assert_eq!(deliveries.len(), n as usize);
        for d in deliveries {
            black_box(&d.payload);
            let receipt = d.receipt.expect("explicit ack gives a receipt");
            self.broker.ack(now, receipt).expect("ack");
        }
    }
}

/// publish → receive → ack on one queue in memory, one message and a batch at a time.
fn cycle_none(c: &mut Criterion) {
    let mut group = c.benchmark_group("cycle/durability_none");
    for n in [1, BATCH] {
        group.throughput(Throughput::Elements(u64::from(n)));
        group.bench_function(BenchmarkId::new("batch", n), |b| {
            let mut rig = Rig::new(queue_config(Durability::None));
            b.iter(|| rig.cycle(n));
            assert_eq!(rig.broker.stats(Time(rig.now), QUEUE).unwrap().depth, 0);
        });
    }
    group.finish();
}

/// The same cycle with every command logged and synced to a `MemDisk`. The broker is replaced
/// every [`ALWAYS_CHUNK`] cycles, outside the timed region, to bound the log's memory.
fn cycle_always(c: &mut Criterion) {
    let mut group = c.benchmark_group("cycle/durability_always");
    for n in [1, BATCH] {
        group.throughput(Throughput::Elements(u64::from(n)));
        group.bench_function(BenchmarkId::new("batch", n), |b| {
            b.iter_custom(|iters| {
                let mut timed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let chunk = left.min(ALWAYS_CHUNK / u64::from(n)).max(1);
                    let mut rig = Rig::new(queue_config(Durability::Always));
                    let start = Instant::now();
                    for _ in 0..chunk {
                        rig.cycle(n);
                    }
                    timed += start.elapsed();
                    // 1 recovery record, then publish + receive + ack records per cycle.
                    let expected = 1 + chunk * (2 * u64::from(n) + 1);
                    assert_eq!(rig.broker.storage().synced_len() as u64, expected);
                    left -= chunk;
                }
                timed
            });
        });
    }
    group.finish();
}

/// One publish to a topic, then each of the 8 groups receives it and acks it. Throughput counts
/// published messages (each one is delivered and acked 8 times).
fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout");
    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("groups", GROUPS), |b| {
        let mut rig = Rig::new(topic_config());
        let names: Vec<String> = (0..GROUPS).map(group_name).collect();
        b.iter(|| {
            let now = rig.tick();
            let confirm = rig
                .broker
                .publish(now, TOPIC, PublishRequest::new(rig.payload.clone()))
                .expect("publish");
            for name in &names {
                let mut deliveries = rig
                    .broker
                    .receive(now, TOPIC, Some(name), ConsumerId(1), 1, AckMode::Explicit)
                    .expect("receive");
                assert_eq!(deliveries.len(), 1);
                let d = deliveries.pop().expect("one delivery");
                assert_eq!(d.message_id, confirm.message_id);
                rig.broker
                    .ack(now, d.receipt.expect("receipt"))
                    .expect("ack");
            }
        });
    });
    group.finish();
}

/// The floor: a `VecDeque<Bytes>` push and pop of the same payload, one and a batch at a time.
fn floor(c: &mut Criterion) {
    let mut group = c.benchmark_group("floor/vecdeque");
    for n in [1, BATCH] {
        group.throughput(Throughput::Elements(u64::from(n)));
        group.bench_function(BenchmarkId::new("batch", n), |b| {
            let payload = payload();
            let mut q: VecDeque<Bytes> = VecDeque::new();
            b.iter(|| {
                for _ in 0..n {
                    q.push_back(black_box(payload.clone()));
                }
                for _ in 0..n {
                    let m = q.pop_front().expect("pushed");
                    assert_eq!(m.len(), PAYLOAD_BYTES);
                    black_box(m);
                }
            });
            assert!(q.is_empty());
        });
    }
    group.finish();
}

/// The queue of the recovery benchmarks: large enough to hold a backlog of a million messages.
fn recovery_config() -> BrokerConfig {
    BrokerConfig::new(
        Durability::Always,
        vec![DestinationConfig {
            max_length: 2_000_000,
            ..DestinationConfig::queue(QUEUE)
        }],
    )
}

/// A `Durability::Always` log of about `records` records: publish, receive, ack cycles when
/// `consume`, otherwise publishes only (the recovered broker then holds every message).
fn build_log(records: usize, consume: bool) -> MemDisk {
    let mut rig = Rig::new(recovery_config());
    while rig.broker.storage().synced_len() < records {
        if consume {
            rig.cycle(1);
        } else {
            let now = rig.tick();
            let request = PublishRequest::new(rig.payload.clone());
            rig.broker.publish(now, QUEUE, request).expect("publish");
        }
    }
    rig.broker.clear_events();
    rig.broker.into_storage()
}

/// `Broker::open` replaying logs of 100k, 250k and 1M records. Throughput counts records, so
/// criterion's elements/s is the replay rate; a constant rate across sizes means linear recovery.
/// Two workloads: `consumed` (publish, receive, ack: the queue ends empty) and `backlog`
/// (publishes only: the recovered queue holds one message per record).
/// The disk is cloned outside the timed region; the recovered broker is dropped outside it too.
fn recovery(c: &mut Criterion) {
    let mut group = c.benchmark_group("recovery");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(4));
    for (workload, consume) in [("consumed", true), ("backlog", false)] {
        for records in [100_000, 250_000, 1_000_000] {
            let disk = build_log(records, consume);
            let len = disk.synced_len();
            let depth = if consume { 0 } else { len as u64 - 1 };
            group.throughput(Throughput::Elements(len as u64));
            group.bench_function(BenchmarkId::new(workload, records), |b| {
                let reopen_at = Time::from_ms(3_600_000);
                b.iter_batched(
                    || disk.clone(),
                    |disk| {
                        let mut broker =
                            Broker::open(recovery_config(), disk, reopen_at).expect("recovery");
                        assert_eq!(broker.epoch(), 2);
                        assert_eq!(broker.storage().synced_len(), len + 1);
                        assert_eq!(broker.stats(reopen_at, QUEUE).unwrap().depth, depth);
                        broker
                    },
                    BatchSize::PerIteration,
                );
            });
        }
    }
    group.finish();
}

fn quick() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50)
}

criterion_group! {
    name = throughput;
    config = quick();
    targets = cycle_none, cycle_always, fanout, floor
}
criterion_group!(slow, recovery);
criterion_main!(throughput, slow);
