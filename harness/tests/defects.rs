//! Proof that the checks can fail, end to end: for each of the broker's named, test-only
//! defects (broker/src/defect.rs), a scenario that makes it matter is run twice, once with
//! the correct broker and once with the defect, and the invariant the table names must be
//! valid in the first run and invalid in the second. The correct run must also be free of
//! every other correctness violation, so the scenario itself is not what the checker objects
//! to.

use mqsim_broker::{Defect, DestinationConfig, Durability, OverflowPolicy, RetryPolicy};
use mqsim_harness::check::{self, Invariant, Report, Verdict};
use mqsim_harness::sim::spec::{ClientSpec, KeySpec, Processing, PublishRetry};
use mqsim_harness::sim::{ClusterSpec, ConsumerSpec, Fault, FaultSpec, ProducerSpec, run};

/// A queue `q` (200 ms leases, dead-lettered to `dlq` after 3 deliveries), one producer at
/// 200 messages/s for a simulated second, two consumers, `always` durability, no faults.
fn base(seed: u64) -> ClusterSpec {
    let q = DestinationConfig {
        visibility_timeout_ms: 200,
        max_deliveries: Some(3),
        dead_letter: Some("dlq".into()),
        ..DestinationConfig::queue("q")
    };
    ClusterSpec {
        seed,
        tick_ms: 1,
        duration_ms: 1000,
        drain_timeout_ms: 3000,
        transport: Default::default(),
        network: Default::default(),
        broker: mqsim_broker::BrokerConfig::new(
            Durability::Always,
            vec![q, DestinationConfig::queue("dlq")],
        ),
        server: Default::default(),
        client: ClientSpec {
            request_timeout_ms: Some(200),
            connect_timeout_ms: Some(100),
            ..Default::default()
        },
        producers: vec![ProducerSpec {
            destination: "q".into(),
            messages_per_s: 200.0,
            retry: PublishRetry {
                max_attempts: 10,
                ..PublishRetry::default()
            },
            ..ProducerSpec::default()
        }],
        consumers: vec![ConsumerSpec {
            count: 2,
            destination: "q".into(),
            processing: Processing::Uniform {
                min_ms: 1,
                max_ms: 3,
            },
            ..ConsumerSpec::default()
        }],
        faults: Vec::new(),
    }
}

fn window(at_ms: u64, for_ms: u64, fault: Fault) -> FaultSpec {
    FaultSpec {
        at_ms,
        for_ms: Some(for_ms),
        fault,
    }
}

fn hosts(h: &[&str]) -> Vec<String> {
    h.iter().map(|s| (*s).to_owned()).collect()
}

fn broker_crash() -> FaultSpec {
    window(
        500,
        100,
        Fault::Crash {
            hosts: hosts(&["broker"]),
        },
    )
}

fn q(spec: &mut ClusterSpec) -> &mut DestinationConfig {
    &mut spec.broker.destinations[0]
}

fn consumer(spec: &mut ClusterSpec) -> &mut ConsumerSpec {
    &mut spec.consumers[0]
}

/// A defect, the change to [`base`] that exposes it, and the invariant that must catch it.
type Row = (Defect, fn(&mut ClusterSpec), Invariant);

/// Every defect's row.
fn table() -> Vec<Row> {
    vec![
        (
            Defect::ConfirmBeforeSync,
            |s| {
                // Nothing but publishes reach the broker while consumers are paused, so
                // nothing syncs the confirmed publishes before the crash.
                s.faults = vec![
                    window(
                        200,
                        500,
                        Fault::Pause {
                            hosts: hosts(&["consumers"]),
                        },
                    ),
                    broker_crash(),
                ];
            },
            Invariant::NoLoss,
        ),
        (
            Defect::LoseInFlightOnRestart,
            |s| {
                q(s).visibility_timeout_ms = 2000;
                consumer(s).processing = Processing::Constant { ms: 30 };
                s.faults = vec![broker_crash()];
            },
            Invariant::NoLoss,
        ),
        (
            Defect::DeadLetterEarly,
            |s| s.producers[0].poison_fraction = 0.1,
            Invariant::DlqExactness,
        ),
        (
            Defect::NoCountOnLeaseExpiry,
            |s| {
                // Every lease runs out before its message is processed.
                q(s).visibility_timeout_ms = 50;
                consumer(s).processing = Processing::Constant { ms: 80 };
                consumer(s).max_messages = 1;
                s.producers[0].messages_per_s = 20.0;
            },
            Invariant::DlqExactness,
        ),
        (
            Defect::RedeliverBeforeVisibilityTimeout,
            |s| {
                q(s).visibility_timeout_ms = 100;
                consumer(s).processing = Processing::Uniform {
                    min_ms: 60,
                    max_ms: 80,
                };
                consumer(s).max_messages = 1;
                consumer(s).count = 4;
                s.producers[0].messages_per_s = 40.0;
            },
            Invariant::LeaseExclusivity,
        ),
        (
            Defect::AcceptStaleReceipt,
            |s| {
                q(s).visibility_timeout_ms = 50;
                consumer(s).processing = Processing::Uniform {
                    min_ms: 55,
                    max_ms: 70,
                };
                consumer(s).max_messages = 1;
                consumer(s).count = 4;
                s.producers[0].messages_per_s = 40.0;
            },
            Invariant::LeaseExclusivity,
        ),
        (
            Defect::ForgetDedupAfterDelivery,
            |s| {
                // Replies to the producer are lost, so it retries publishes that were stored;
                // under auto acks a duplicate stored message is a second delivery.
                consumer(s).ack_mode = mqsim_broker::AckMode::Auto;
                s.producers[0].dedup_ids = true;
                s.faults = vec![window(
                    300,
                    300,
                    Fault::Partition {
                        a: hosts(&["broker"]),
                        b: hosts(&["producer-0"]),
                        one_way: true,
                    },
                )];
            },
            Invariant::NoDuplicateDeliveries,
        ),
        (
            Defect::IgnoreRequeueDelay,
            |s| {
                q(s).retry = RetryPolicy {
                    initial_backoff_ms: 50,
                    multiplier: 2.0,
                    max_backoff_ms: 200,
                };
                s.producers[0].poison_fraction = 0.1;
            },
            Invariant::Timing,
        ),
        (
            Defect::DropHeadInsteadOfReject,
            |s| {
                q(s).max_length = 20;
                q(s).overflow = OverflowPolicy::RejectPublish;
                consumer(s).count = 1;
                consumer(s).processing = Processing::Constant { ms: 10 };
                s.producers[0].messages_per_s = 300.0;
                s.producers[0].retry.max_attempts = 1;
            },
            Invariant::Backpressure,
        ),
        (
            Defect::CountUnackedTowardMaxLength,
            |s| {
                // Consumers hold 20 long leases, so the queue fills with leased messages.
                q(s).max_length = 20;
                q(s).overflow = OverflowPolicy::RejectPublish;
                q(s).visibility_timeout_ms = 2000;
                consumer(s).processing = Processing::Constant { ms: 20 };
                s.producers[0].messages_per_s = 300.0;
                s.producers[0].retry.max_attempts = 1;
            },
            Invariant::Backpressure,
        ),
        (
            Defect::FifoTwoInFlight,
            |s| {
                q(s).fifo_groups = true;
                s.producers[0].keys = KeySpec {
                    count: 2,
                    ..KeySpec::default()
                };
                consumer(s).count = 3;
                consumer(s).processing = Processing::Constant { ms: 5 };
            },
            Invariant::FifoExclusivity,
        ),
        (
            Defect::IgnoreDelay,
            |s| q(s).delay_ms = 100,
            Invariant::Timing,
        ),
        (
            Defect::DeliverExpired,
            |s| {
                q(s).message_ttl_ms = Some(50);
                consumer(s).count = 1;
                consumer(s).processing = Processing::Constant { ms: 10 };
            },
            Invariant::Timing,
        ),
        (
            Defect::ResurrectAckedOnRestart,
            |s| {
                s.producers[0].messages_per_s = 20.0;
                s.faults = vec![broker_crash()];
            },
            Invariant::NoResurrection,
        ),
        (
            Defect::DlqFullDrops,
            |s| {
                s.broker.destinations[1].max_length = 2;
                s.broker.destinations[1].overflow = OverflowPolicy::RejectPublish;
                s.producers[0].poison_fraction = 0.2;
            },
            Invariant::NoLoss,
        ),
        (
            Defect::IgnoreMaxLength,
            |s| {
                q(s).max_length = 20;
                q(s).overflow = OverflowPolicy::RejectPublish;
                s.faults = vec![window(
                    200,
                    400,
                    Fault::Pause {
                        hosts: hosts(&["consumers"]),
                    },
                )];
            },
            Invariant::Backpressure,
        ),
    ]
}

fn checked(spec: &ClusterSpec) -> Report {
    let r = run(spec.clone(), None).unwrap_or_else(|e| panic!("run failed: {e}"));
    check::check(&r.history, &r.plan, spec, r.drained())
}

fn broken(report: &Report) -> String {
    report
        .invariants
        .iter()
        .filter(|i| i.verdict == Verdict::Invalid)
        .map(|i| {
            format!(
                "{} ({}: {})",
                i.invariant.name(),
                i.violations,
                i.anomalies.first().map_or("", |a| a.message.as_str())
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[test]
fn every_defect_is_caught_by_the_invariant_it_breaks() {
    let table = table();
    assert!(table.len() >= 10);
    let mut failures = Vec::new();
    for (defect, scenario, invariant) in table {
        let mut spec = base(1);
        scenario(&mut spec);
        let correct = checked(&spec);
        let wrong: Vec<_> = correct
            .correctness_failures()
            .map(|i| i.invariant)
            .collect();
        if !wrong.is_empty() {
            failures.push(format!(
                "{defect:?}: the correct broker failed {}",
                broken(&correct)
            ));
        }
        spec.broker.defects = vec![defect];
        let defective = checked(&spec);
        if defective.get(invariant).verdict != Verdict::Invalid {
            failures.push(format!(
                "{defect:?}: {} did not catch it; invalid: {}",
                invariant.name(),
                broken(&defective)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
