//! Cluster specs shared by the integration tests that run simulations.

#![allow(dead_code)]

use mqsim_broker::{BrokerConfig, DestinationConfig, Durability, GroupConfig, StartPosition};
use mqsim_harness::sim::spec::{Processing, PublishRetry};
use mqsim_harness::sim::{ClusterSpec, ConsumerSpec, Fault, FaultSpec, ProducerSpec, Transport};

/// A topic with two consumer groups and a dead-letter queue for poison messages.
pub fn broker(durability: Durability, groups: &[&str]) -> BrokerConfig {
    let orders = DestinationConfig {
        groups: groups
            .iter()
            .map(|g| GroupConfig {
                name: (*g).to_owned(),
                start: StartPosition::Earliest,
            })
            .collect(),
        visibility_timeout_ms: 300,
        max_deliveries: Some(3),
        dead_letter: Some("orders-dlq".into()),
        ..DestinationConfig::topic("orders", &[])
    };
    BrokerConfig::new(
        durability,
        vec![orders, DestinationConfig::queue("orders-dlq")],
    )
}

pub fn consumers(group: &str, count: u32) -> ConsumerSpec {
    ConsumerSpec {
        count,
        destination: "orders".into(),
        group: Some(group.into()),
        processing: Processing::Uniform {
            min_ms: 1,
            max_ms: 3,
        },
        failure_probability: 0.02,
        ..ConsumerSpec::default()
    }
}

/// One broker, two producers, consumers in two groups (billing and shipping), and a schedule
/// with a broker crash, a partition between a producer and the broker, and a slow consumer.
pub fn cluster(seed: u64, durability: Durability) -> ClusterSpec {
    ClusterSpec {
        seed,
        tick_ms: 1,
        duration_ms: 2000,
        drain_timeout_ms: 4000,
        transport: Transport::Network,
        network: Default::default(),
        broker: broker(durability, &["billing", "shipping"]),
        server: Default::default(),
        client: mqsim_harness::sim::spec::ClientSpec {
            request_timeout_ms: Some(200),
            connect_timeout_ms: Some(100),
            ..Default::default()
        },
        producers: vec![ProducerSpec {
            count: 2,
            destination: "orders".into(),
            messages_per_s: 150.0,
            poison_fraction: 0.02,
            dedup_ids: true,
            retry: PublishRetry {
                max_attempts: 10,
                ..PublishRetry::default()
            },
            ..ProducerSpec::default()
        }],
        consumers: vec![consumers("billing", 2), consumers("shipping", 1)],
        faults: vec![
            fault(
                500,
                250,
                Fault::Crash {
                    hosts: vec!["broker".into()],
                },
            ),
            fault(
                1000,
                300,
                Fault::Partition {
                    a: vec!["producer-0".into()],
                    b: vec!["broker".into()],
                    one_way: false,
                },
            ),
            fault(
                1200,
                500,
                Fault::Slow {
                    hosts: vec!["group:shipping".into()],
                    factor: 20.0,
                },
            ),
        ],
    }
}

pub fn fault(at_ms: u64, for_ms: u64, fault: Fault) -> FaultSpec {
    FaultSpec {
        at_ms,
        for_ms: Some(for_ms),
        fault,
    }
}

/// The cluster under every kind of fault: pause, hold, latency, crashes of a producer and a
/// consumer, a one-way partition, and a partition left for the heal to end.
pub fn every_fault(seed: u64) -> ClusterSpec {
    let mut spec = cluster(seed, Durability::Always);
    let hosts = |h: &[&str]| h.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    spec.faults = vec![
        fault(
            100,
            200,
            Fault::Pause {
                hosts: hosts(&["producer-1", "consumer-0"]),
            },
        ),
        fault(
            300,
            300,
            Fault::Hold {
                a: hosts(&["consumers"]),
                b: hosts(&["broker"]),
            },
        ),
        fault(
            600,
            400,
            Fault::Latency {
                a: hosts(&["clients"]),
                b: hosts(&["broker"]),
                latency_ms: 40,
            },
        ),
        // Inside the latency window, so the producer has publishes in flight.
        fault(
            800,
            150,
            Fault::Crash {
                hosts: hosts(&["producer-0", "consumer-2"]),
            },
        ),
        fault(
            1100,
            200,
            Fault::Partition {
                a: hosts(&["group:billing"]),
                b: hosts(&["broker"]),
                one_way: true,
            },
        ),
        // No end: the heal ends it.
        FaultSpec {
            at_ms: 1800,
            for_ms: None,
            fault: Fault::Partition {
                a: hosts(&["producer-1"]),
                b: hosts(&["broker"]),
                one_way: false,
            },
        },
    ];
    spec
}

/// A cluster that exercises every checker: a partitioned FIFO work queue with a delay, retry
/// backoff, a small bound with reject-publish and a dead-letter queue; a topic with a time to
/// live and drop-head, read by an at-least-once group, an at-most-once group and an
/// exactly-once group; keyed producers; and a broker crash, a partition, a slow group and
/// consumers that crash themselves. `always` durability, so no promise may break.
pub fn every_checker(seed: u64) -> ClusterSpec {
    use mqsim_broker::{AckMode, OverflowPolicy, RetryPolicy};
    use mqsim_harness::sim::spec::{CrashSpec, KeySpec};
    let jobs = DestinationConfig {
        partitions: 2,
        fifo_groups: true,
        delay_ms: 5,
        visibility_timeout_ms: 200,
        max_length: 40,
        overflow: OverflowPolicy::RejectPublish,
        max_deliveries: Some(4),
        dead_letter: Some("jobs-dlq".into()),
        retry: RetryPolicy {
            initial_backoff_ms: 10,
            multiplier: 2.0,
            max_backoff_ms: 100,
        },
        ..DestinationConfig::queue("jobs")
    };
    let events = DestinationConfig {
        visibility_timeout_ms: 150,
        message_ttl_ms: Some(400),
        max_length: 200,
        overflow: OverflowPolicy::DropHead,
        max_deliveries: Some(3),
        dead_letter: Some("events-dlq".into()),
        ..DestinationConfig::topic("events", &["audit", "metrics", "ledger"])
    };
    let keys = KeySpec {
        count: 6,
        ..KeySpec::default()
    };
    let crashy = CrashSpec {
        before_effect_probability: 0.01,
        after_effect_probability: 0.01,
        restart_after_ms: 50,
        max_crashes: 3,
    };
    let consumer = |destination: &str, group: Option<&str>| ConsumerSpec {
        destination: destination.into(),
        group: group.map(Into::into),
        processing: Processing::Uniform {
            min_ms: 1,
            max_ms: 4,
        },
        ..ConsumerSpec::default()
    };
    ClusterSpec {
        seed,
        tick_ms: 1,
        duration_ms: 1500,
        drain_timeout_ms: 5000,
        transport: Transport::Network,
        network: Default::default(),
        broker: BrokerConfig::new(
            Durability::Always,
            vec![
                jobs,
                DestinationConfig::queue("jobs-dlq"),
                events,
                DestinationConfig::queue("events-dlq"),
            ],
        ),
        server: Default::default(),
        client: mqsim_harness::sim::spec::ClientSpec {
            request_timeout_ms: Some(200),
            connect_timeout_ms: Some(100),
            ..Default::default()
        },
        producers: vec![
            ProducerSpec {
                count: 2,
                destination: "jobs".into(),
                messages_per_s: 120.0,
                keys,
                poison_fraction: 0.03,
                dedup_ids: true,
                retry: PublishRetry {
                    max_attempts: 6,
                    ..PublishRetry::default()
                },
                ..ProducerSpec::default()
            },
            ProducerSpec {
                destination: "events".into(),
                messages_per_s: 200.0,
                keys,
                poison_fraction: 0.02,
                ..ProducerSpec::default()
            },
        ],
        consumers: vec![
            ConsumerSpec {
                count: 2,
                failure_probability: 0.05,
                crash: crashy,
                ..consumer("jobs", None)
            },
            consumer("events", Some("audit")),
            ConsumerSpec {
                ack_mode: AckMode::Auto,
                ..consumer("events", Some("metrics"))
            },
            ConsumerSpec {
                idempotent_sink: true,
                crash: crashy,
                ..consumer("events", Some("ledger"))
            },
        ],
        faults: vec![
            fault(
                300,
                150,
                Fault::Crash {
                    hosts: vec!["broker".into()],
                },
            ),
            fault(
                700,
                200,
                Fault::Partition {
                    a: vec!["producer-1".into()],
                    b: vec!["broker".into()],
                    one_way: false,
                },
            ),
            fault(
                900,
                400,
                Fault::Slow {
                    hosts: vec!["group:audit".into()],
                    factor: 30.0,
                },
            ),
        ],
    }
}
