//! The named defects of the `defects` feature: each one changes what the broker API shows in
//! a small scenario (the correct broker gives one outcome, the defective one another), and no
//! defect makes recovery fail or replay to a state other than the one the broker had.
//!
//! Each scenario runs once without defects and once with its defect and describes the outcome
//! in a short string, so the table below reads as "correct => defective".

#![cfg(feature = "defects")]

mod common;

use common::{ids, queue, receipt, t};
use mqsim_broker::*;

/// A broker with `defects`, started at time zero on a fresh disk.
fn open(
    defects: &[Defect],
    durability: Durability,
    destinations: Vec<DestinationConfig>,
) -> Broker {
    let config = BrokerConfig {
        durability,
        destinations,
        defects: defects.to_vec(),
    };
    Broker::open(config, MemDisk::new(), t(0)).unwrap()
}

/// Queue `q` (100 ms leases) alone, under `always`.
fn just_q(defects: &[Defect]) -> Broker {
    open(defects, Durability::Always, vec![queue("q")])
}

/// Queue `q` with 100 ms leases, `max_deliveries` and a dead-letter queue `dlq`.
fn with_dlq(defects: &[Defect], max_deliveries: u32, dlq: DestinationConfig) -> Broker {
    let q = DestinationConfig {
        max_deliveries: Some(max_deliveries),
        dead_letter: Some("dlq".into()),
        ..queue("q")
    };
    open(defects, Durability::Always, vec![q, dlq])
}

fn crash_and_reopen(b: Broker, ms: u64) -> Broker {
    let config = b.config().clone();
    let mut disk = b.into_storage();
    disk.crash();
    Broker::open(config, disk, t(ms)).unwrap()
}

fn pub_q(b: &mut Broker, ms: u64, payload: &'static str) -> Result<Confirm> {
    b.publish(t(ms), "q", PublishRequest::new(payload))
}

fn recv(b: &mut Broker, ms: u64, consumer: u64, max: u32) -> Vec<Delivery> {
    b.receive(
        t(ms),
        "q",
        None,
        ConsumerId(consumer),
        max,
        AckMode::Explicit,
    )
    .unwrap()
}

fn payloads(ds: &[Delivery]) -> String {
    let p: Vec<_> = ds
        .iter()
        .map(|d| String::from_utf8_lossy(&d.payload).into_owned())
        .collect();
    p.join(",")
}

fn outcome<T>(r: Result<T>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(BrokerError::StaleReceipt) => "stale",
        Err(BrokerError::Overflow { .. }) => "overflow",
        Err(_) => "error",
    }
}

/// The scenarios, one per defect, named as the tests are.
mod scenario {
    use super::*;

    /// A publish under `always`, then a crash before anything else happens.
    pub fn confirm_before_sync(defects: &[Defect]) -> String {
        let mut b = just_q(defects);
        pub_q(&mut b, 1, "a").unwrap();
        let unsynced = b.storage().unsynced_len();
        let mut b = crash_and_reopen(b, 2);
        let got = recv(&mut b, 3, 1, 10);
        format!("unsynced {unsynced}, after the crash [{}]", payloads(&got))
    }

    /// A message leased when the broker crashes.
    pub fn lose_in_flight_on_restart(defects: &[Defect]) -> String {
        let mut b = just_q(defects);
        pub_q(&mut b, 1, "a").unwrap();
        recv(&mut b, 2, 1, 10);
        let mut b = crash_and_reopen(b, 3);
        let got = recv(&mut b, 4, 1, 10);
        format!("after the crash {:?}", common::counts(&got))
    }

    /// A poison message nacked until it leaves, with `max_deliveries: 3`.
    pub fn dead_letter_early(defects: &[Defect]) -> String {
        let mut b = with_dlq(defects, 3, queue("dlq"));
        pub_q(&mut b, 1, "a").unwrap();
        let mut deliveries = 0;
        for ms in 2..20 {
            let Some(d) = recv(&mut b, ms, 1, 1).pop() else {
                break;
            };
            deliveries += 1;
            b.nack(t(ms), receipt(&d), None).unwrap();
        }
        let dlq = b.stats(t(20), "dlq").unwrap().depth;
        format!("delivered {deliveries} times, dead-lettered {dlq}")
    }

    /// A poison message whose consumer never answers, with `max_deliveries: 2`.
    pub fn no_count_on_lease_expiry(defects: &[Defect]) -> String {
        let mut b = with_dlq(defects, 2, queue("dlq"));
        pub_q(&mut b, 1, "a").unwrap();
        let mut counts = Vec::new();
        for i in 1..=4 {
            counts.extend(common::counts(&recv(&mut b, i * 1000, 1, 1)));
        }
        let dlq = b.stats(t(5000), "dlq").unwrap().depth;
        format!("delivery counts {counts:?}, dead-lettered {dlq}")
    }

    /// A second consumer asks 60 ms into the first one's 100 ms lease; then the first acks.
    pub fn redeliver_before_visibility_timeout(defects: &[Defect]) -> String {
        let mut b = just_q(defects);
        pub_q(&mut b, 1, "a").unwrap();
        let first = recv(&mut b, 10, 1, 1);
        let second = recv(&mut b, 70, 2, 1);
        let ack = b.ack(t(80), receipt(&first[0]));
        format!(
            "second consumer [{}], first ack {}",
            payloads(&second),
            outcome(ack)
        )
    }

    /// A consumer's lease runs out, another consumer takes the message, then the first acks.
    pub fn accept_stale_receipt(defects: &[Defect]) -> String {
        let mut b = just_q(defects);
        pub_q(&mut b, 1, "a").unwrap();
        let first = recv(&mut b, 10, 1, 1);
        let second = recv(&mut b, 200, 2, 1);
        let stale = b.ack(t(210), receipt(&first[0]));
        let current = b.ack(t(220), receipt(&second[0]));
        format!(
            "stale ack {}, current ack {}",
            outcome(stale),
            outcome(current)
        )
    }

    /// A publish with a dedup id is consumed, then the producer retries it.
    pub fn forget_dedup_after_delivery(defects: &[Defect]) -> String {
        let mut b = just_q(defects);
        let req = PublishRequest::new("a").with_dedup_id("x");
        let first = b.publish(t(1), "q", req.clone()).unwrap();
        let d = recv(&mut b, 2, 1, 1);
        b.ack(t(3), receipt(&d[0])).unwrap();
        let retry = b.publish(t(4), "q", req).unwrap();
        let again = recv(&mut b, 5, 1, 10);
        format!(
            "retry is a duplicate: {}, same id: {}, delivered again [{}]",
            retry.duplicate,
            retry.message_id == first.message_id,
            payloads(&again)
        )
    }

    /// A nack asking for 500 ms, and a nack under a 1 s retry backoff; receives 10 ms later.
    pub fn ignore_requeue_delay(defects: &[Defect]) -> String {
        let retry = RetryPolicy {
            initial_backoff_ms: 1000,
            multiplier: 2.0,
            max_backoff_ms: 1000,
        };
        let mut got = Vec::new();
        for requeue_delay_ms in [Some(500), None] {
            let q = DestinationConfig {
                retry,
                ..queue("q")
            };
            let mut b = open(defects, Durability::Always, vec![q]);
            pub_q(&mut b, 1, "a").unwrap();
            let d = recv(&mut b, 10, 1, 1);
            b.nack(t(20), receipt(&d[0]), requeue_delay_ms).unwrap();
            got.push(recv(&mut b, 30, 1, 1).len());
        }
        format!(
            "redelivered after the requeue delay {}, after the backoff {}",
            got[0], got[1]
        )
    }

    /// A third publish to a queue with `max_length: 2` and reject-publish.
    pub fn drop_head_instead_of_reject(defects: &[Defect]) -> String {
        let q = DestinationConfig {
            max_length: 2,
            ..queue("q")
        };
        let mut b = open(defects, Durability::Always, vec![q]);
        pub_q(&mut b, 1, "a").unwrap();
        pub_q(&mut b, 2, "b").unwrap();
        let third = pub_q(&mut b, 3, "c");
        let got = recv(&mut b, 4, 1, 10);
        format!(
            "third publish {}, queue [{}]",
            outcome(third),
            payloads(&got)
        )
    }

    /// A queue with `max_length: 2` whose two messages are leased, then a third publish.
    pub fn count_unacked_toward_max_length(defects: &[Defect]) -> String {
        let q = DestinationConfig {
            max_length: 2,
            ..queue("q")
        };
        let mut b = open(defects, Durability::Always, vec![q]);
        pub_q(&mut b, 1, "a").unwrap();
        pub_q(&mut b, 2, "b").unwrap();
        recv(&mut b, 3, 1, 10);
        let third = pub_q(&mut b, 4, "c");
        format!("third publish {}", outcome(third))
    }

    /// Three messages of one FIFO group; one consumer asks for ten, then nacks the first.
    pub fn fifo_two_in_flight(defects: &[Defect]) -> String {
        let q = DestinationConfig {
            fifo_groups: true,
            ..queue("q")
        };
        let mut b = open(defects, Durability::Always, vec![q]);
        for (ms, p) in [(1, "a"), (2, "b"), (3, "c")] {
            b.publish(t(ms), "q", PublishRequest::new(p).with_key("g"))
                .unwrap();
        }
        let leased = recv(&mut b, 10, 1, 10);
        let blocked = b.stats(t(10), "q").unwrap().groups[0].blocked;
        b.nack(t(20), receipt(&leased[0]), None).unwrap();
        let next = recv(&mut b, 30, 2, 10);
        format!(
            "leased [{}] with {blocked} blocked, after nacking the first [{}]",
            payloads(&leased),
            payloads(&next)
        )
    }

    /// A message published with a 1 s delay, received 1 ms later.
    pub fn ignore_delay(defects: &[Defect]) -> String {
        let mut b = just_q(defects);
        let req = PublishRequest {
            delay_ms: Some(1000),
            ..PublishRequest::new("a")
        };
        b.publish(t(1), "q", req).unwrap();
        let got = recv(&mut b, 2, 1, 10);
        format!("received [{}]", payloads(&got))
    }

    /// A message with a 100 ms time to live, received at 200 ms.
    pub fn deliver_expired(defects: &[Defect]) -> String {
        let mut b = just_q(defects);
        let req = PublishRequest {
            ttl_ms: Some(100),
            ..PublishRequest::new("a")
        };
        b.publish(t(1), "q", req).unwrap();
        let got = recv(&mut b, 200, 1, 10);
        let expired = b
            .take_events()
            .iter()
            .filter(|e| matches!(e.kind, EventKind::Expired { .. }))
            .count();
        format!("received [{}], expired {expired}", payloads(&got))
    }

    /// A message is received and acked under `always`, then the broker crashes.
    pub fn resurrect_acked_on_restart(defects: &[Defect]) -> String {
        let mut b = just_q(defects);
        let c = pub_q(&mut b, 1, "a").unwrap();
        let d = recv(&mut b, 2, 1, 1);
        b.ack(t(3), receipt(&d[0])).unwrap();
        let mut b = crash_and_reopen(b, 4);
        let got = recv(&mut b, 5, 1, 10);
        format!(
            "after the crash [{}], the acked message again: {}",
            payloads(&got),
            ids(&got).contains(&c.message_id)
        )
    }

    /// Two poison messages with `max_deliveries: 1` and a dead-letter queue that holds one.
    pub fn dlq_full_drops(defects: &[Defect]) -> String {
        let dlq = DestinationConfig {
            max_length: 1,
            ..queue("dlq")
        };
        let mut b = with_dlq(defects, 1, dlq);
        pub_q(&mut b, 1, "a").unwrap();
        pub_q(&mut b, 2, "b").unwrap();
        for ms in [3, 4] {
            let d = recv(&mut b, ms, 1, 1);
            b.nack(t(ms), receipt(&d[0]), None).unwrap();
        }
        let refused = b
            .take_events()
            .iter()
            .filter(|e| matches!(e.kind, EventKind::DeadLetterRefused { .. }))
            .count();
        let q = b.stats(t(5), "q").unwrap().depth;
        let dlq = b.stats(t(5), "dlq").unwrap().depth;
        format!("q holds {q}, dlq holds {dlq}, refusals reported {refused}")
    }

    /// Three publishes to a queue that holds two, under reject-publish.
    pub fn ignore_max_length(defects: &[Defect]) -> String {
        let q = DestinationConfig {
            max_length: 2,
            ..queue("q")
        };
        let mut b = open(defects, Durability::Always, vec![q]);
        pub_q(&mut b, 1, "a").unwrap();
        pub_q(&mut b, 2, "b").unwrap();
        let third = pub_q(&mut b, 3, "c");
        let depth = b.stats(t(4), "q").unwrap().depth;
        format!("third publish {}, depth {depth}", outcome(third))
    }
}

/// Runs `scenario` without defects and with `defect` alone, and checks both outcomes.
fn check(defect: Defect, scenario: fn(&[Defect]) -> String, correct: &str, defective: &str) {
    assert_ne!(correct, defective, "{defect}: the outcomes must differ");
    assert_eq!(
        scenario(&[]),
        correct,
        "correct broker, scenario of {defect}"
    );
    assert_eq!(scenario(&[defect]), defective, "broker with {defect}");
}

macro_rules! cases {
    ($($name:ident: $defect:ident, $correct:literal => $defective:literal;)*) => {
        $(
            #[test]
            fn $name() {
                check(Defect::$defect, scenario::$name, $correct, $defective);
            }
        )*

        /// Every defect with its scenario.
        const CASES: &[(Defect, fn(&[Defect]) -> String)] = &[$((Defect::$defect, scenario::$name)),*];
    };
}

cases! {
    confirm_before_sync: ConfirmBeforeSync,
        "unsynced 0, after the crash [a]" => "unsynced 1, after the crash []";
    lose_in_flight_on_restart: LoseInFlightOnRestart,
        "after the crash [2]" => "after the crash []";
    dead_letter_early: DeadLetterEarly,
        "delivered 3 times, dead-lettered 1" => "delivered 2 times, dead-lettered 1";
    no_count_on_lease_expiry: NoCountOnLeaseExpiry,
        "delivery counts [1, 2], dead-lettered 1" => "delivery counts [1, 1, 1, 1], dead-lettered 0";
    redeliver_before_visibility_timeout: RedeliverBeforeVisibilityTimeout,
        "second consumer [], first ack ok" => "second consumer [a], first ack stale";
    accept_stale_receipt: AcceptStaleReceipt,
        "stale ack stale, current ack ok" => "stale ack ok, current ack stale";
    forget_dedup_after_delivery: ForgetDedupAfterDelivery,
        "retry is a duplicate: true, same id: true, delivered again []"
        => "retry is a duplicate: false, same id: false, delivered again [a]";
    ignore_requeue_delay: IgnoreRequeueDelay,
        "redelivered after the requeue delay 0, after the backoff 0"
        => "redelivered after the requeue delay 1, after the backoff 1";
    drop_head_instead_of_reject: DropHeadInsteadOfReject,
        "third publish overflow, queue [a,b]" => "third publish ok, queue [b,c]";
    count_unacked_toward_max_length: CountUnackedTowardMaxLength,
        "third publish ok" => "third publish overflow";
    fifo_two_in_flight: FifoTwoInFlight,
        "leased [a] with 2 blocked, after nacking the first [a]"
        => "leased [a,b] with 1 blocked, after nacking the first [a]";
    ignore_delay: IgnoreDelay,
        "received []" => "received [a]";
    deliver_expired: DeliverExpired,
        "received [], expired 1" => "received [a], expired 0";
    resurrect_acked_on_restart: ResurrectAckedOnRestart,
        "after the crash [], the acked message again: false"
        => "after the crash [a], the acked message again: true";
    dlq_full_drops: DlqFullDrops,
        "q holds 1, dlq holds 1, refusals reported 1" => "q holds 0, dlq holds 1, refusals reported 0";
    ignore_max_length: IgnoreMaxLength,
        "third publish overflow, depth 2" => "third publish ok, depth 3";
}

#[test]
fn every_defect_has_exactly_one_scenario() {
    let covered: Vec<Defect> = CASES.iter().map(|&(d, _)| d).collect();
    assert_eq!(
        covered,
        Defect::ALL,
        "one case per defect, in declaration order"
    );
}

#[test]
fn names_are_kebab_case_and_round_trip() {
    use serde::de::IntoDeserializer;
    for d in Defect::ALL {
        let name = d.name();
        assert!(name.chars().all(|c| c.is_ascii_lowercase() || c == '-'));
        let de: serde::de::value::StrDeserializer<'_, serde::de::value::Error> =
            name.into_deserializer();
        assert_eq!(serde::Deserialize::deserialize(de), Ok(d));
        assert_eq!(d.to_string(), name);
    }
}

#[test]
fn a_defect_listed_twice_is_refused() {
    let config = BrokerConfig {
        defects: vec![Defect::IgnoreDelay, Defect::IgnoreDelay],
        ..BrokerConfig::new(Durability::Always, vec![queue("q")])
    };
    assert!(matches!(
        Broker::open(config, MemDisk::new(), t(0)),
        Err(BrokerError::Config(ConfigError::Duplicate { .. }))
    ));
}

/// A small deterministic generator (an LCG), so the workload needs no randomness crate.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % n
    }
}

/// What a consumer sees of a delivery, without the receipt (which names the incarnation).
fn seen(ds: &[Delivery]) -> Vec<(MessageId, u32, u64, u32)> {
    ds.iter()
        .map(|d| (d.message_id, d.partition, d.offset, d.delivery_count))
        .collect()
}

/// Every destination's stats at `ms`, then everything each one delivers from then on.
fn snapshot(b: &mut Broker, ms: u64) -> Vec<String> {
    let names = ["q", "dlq", "f", "t"];
    let mut out: Vec<String> = names
        .iter()
        .map(|n| format!("{:?}", b.stats(t(ms), n).unwrap()))
        .collect();
    let mut now = ms;
    for (n, g) in [("q", None), ("dlq", None), ("f", None), ("t", Some("g"))] {
        loop {
            let got = b
                .receive(t(now), n, g, ConsumerId(99), 1024, AckMode::Explicit)
                .unwrap();
            if got.is_empty() {
                break;
            }
            out.push(format!("{n}: {:?}", seen(&got)));
            for d in &got {
                b.ack(t(now), receipt(d)).unwrap();
            }
            now += 1;
        }
    }
    out
}

/// A mixed workload with timers, dead letters, FIFO groups, dedup, delays, stale receipts and
/// crashes; then every lease runs out, and the broker stops without a crash and recovers from
/// its disk. Returns the snapshot of the broker that never stopped and of the recovered one.
fn workload(defects: &[Defect]) -> (Vec<String>, Vec<String>) {
    let destinations = vec![
        DestinationConfig {
            max_deliveries: Some(3),
            dead_letter: Some("dlq".into()),
            max_length: 20,
            retry: RetryPolicy {
                initial_backoff_ms: 30,
                multiplier: 2.0,
                max_backoff_ms: 200,
            },
            partitions: 2,
            ..queue("q")
        },
        DestinationConfig {
            max_length: 4,
            ..queue("dlq")
        },
        DestinationConfig {
            fifo_groups: true,
            ..queue("f")
        },
        DestinationConfig {
            max_length: 10,
            ..DestinationConfig::topic("t", &["g"])
        },
    ];
    let config = BrokerConfig {
        durability: Durability::Always,
        destinations,
        defects: defects.to_vec(),
    };
    let mut b = Broker::open(config.clone(), MemDisk::new(), t(0)).unwrap();
    let mut rng = Lcg(7);
    let mut receipts: Vec<Receipt> = Vec::new();
    let mut now = 0;
    // Crash right after the next successful op of this kind: the defects about what reaches
    // the disk differ only then.
    let mut crash_after: Option<&str> = None;
    for i in 0..600u64 {
        now += rng.below(20);
        let mut done = "";
        let dest = ["q", "f", "t"][rng.below(3) as usize];
        let group = (dest == "t").then_some("g");
        match rng.below(8) {
            0..=2 => {
                let mut req =
                    PublishRequest::new(format!("m{i}")).with_key(format!("k{}", rng.below(3)));
                if rng.below(3) == 0 {
                    req.dedup_id = Some(format!("d{}", rng.below(10)));
                }
                if rng.below(4) == 0 {
                    req.delay_ms = Some(rng.below(100));
                }
                if rng.below(4) == 0 {
                    req.ttl_ms = Some(1 + rng.below(300));
                }
                if b.publish(t(now), dest, req).is_ok() {
                    done = "publish";
                }
            }
            3 | 4 => {
                let consumer = ConsumerId(rng.below(3));
                if let Ok(got) = b.receive(t(now), dest, group, consumer, 3, AckMode::Explicit) {
                    receipts.extend(got.iter().map(receipt));
                }
            }
            5 if !receipts.is_empty() => {
                // Sometimes a stale receipt: the defects about receipts need them.
                let r = receipts[rng.below(receipts.len() as u64) as usize];
                if b.ack(t(now), r).is_ok() {
                    done = "ack";
                }
            }
            6 if !receipts.is_empty() => {
                let r = receipts[rng.below(receipts.len() as u64) as usize];
                let delay = (rng.below(2) == 0).then(|| rng.below(100));
                let _ = b.nack(t(now), r, delay);
            }
            7 if !receipts.is_empty() => {
                let r = receipts[rng.below(receipts.len() as u64) as usize];
                let _ = b.extend_visibility(t(now), r, 1 + rng.below(200));
            }
            _ => b.tick(t(now)).unwrap(),
        }
        if i % 97 == 0 {
            let _ = b.redrive(t(now), "dlq", 2);
        }
        if crash_after.is_some_and(|kind| kind == done) {
            b = crash_and_reopen(b, now);
            crash_after = None;
        }
        match i % 200 {
            99 => crash_after = Some("ack"),
            199 => crash_after = Some("publish"),
            _ => {}
        }
    }
    // Every lease has run out by then (the topic's last 30 s), and so has every delay.
    let end = now + 100_000;
    b.tick(t(end)).unwrap();
    let disk = b.storage().clone();
    let live = snapshot(&mut b, end);
    let mut recovered = Broker::open(config, disk, t(end)).unwrap();
    (live, snapshot(&mut recovered, end))
}

/// Every defect (and all of them together) replays to exactly the state the broker had: with no
/// lease left to release, the recovered broker must look and behave exactly as the one that
/// never stopped. And the workload reaches every defect: each one alone changes the outcome.
#[test]
fn every_defect_replays_to_the_state_the_broker_had() {
    let (correct, recovered) = workload(&[]);
    assert_eq!(recovered, correct, "no defects");
    for d in Defect::ALL {
        let (live, recovered) = workload(&[d]);
        assert_eq!(recovered, live, "{d}: replay");
        assert_ne!(live, correct, "{d}: the workload does not reach it");
    }
    let (live, recovered) = workload(&Defect::ALL);
    assert_eq!(recovered, live, "all defects: replay");
}
