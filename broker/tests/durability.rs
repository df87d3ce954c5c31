//! Durability and recovery: what survives a crash under each policy, what recovery does with
//! leases and ids, that it is deterministic, and what a full disk refuses. A crash is the broker
//! dropped (or handed back with `into_storage`) and its disk crashed, losing unsynced records.

mod common;

use bytes::Bytes;
use common::t;
use mqsim_broker::*;

/// A queue with a dead-letter queue, and a topic with two partitions and two groups.
fn config(durability: Durability) -> BrokerConfig {
    BrokerConfig::new(
        durability,
        vec![
            DestinationConfig {
                visibility_timeout_ms: 100,
                max_deliveries: Some(2),
                dead_letter: Some("dlq".into()),
                ..DestinationConfig::queue("q")
            },
            DestinationConfig::queue("dlq"),
            DestinationConfig {
                partitions: 2,
                ..DestinationConfig::topic("t", &["a", "b"])
            },
        ],
    )
}

const DESTINATIONS: [&str; 3] = ["q", "dlq", "t"];

/// Drops the broker, loses what was not synced, and starts a new incarnation at `ms`.
fn crash_and_reopen(b: Broker, ms: u64) -> Broker {
    let config = b.config().clone();
    let mut disk = b.into_storage();
    disk.crash();
    Broker::open(config, disk, t(ms)).unwrap()
}

/// What a consumer sees of a delivery, without the receipt (which names the incarnation).
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    id: MessageId,
    partition: u32,
    offset: u64,
    payload: Bytes,
    delivery_count: u32,
    published_at: Time,
}

/// Receives and acks everything visible at `ms`, in delivery order.
fn drain<S: Storage>(b: &mut Broker<S>, ms: u64, dest: &str, group: Option<&str>) -> Vec<Seen> {
    let mut seen = Vec::new();
    loop {
        let got = b
            .receive(t(ms), dest, group, ConsumerId(9), 1024, AckMode::Explicit)
            .unwrap();
        if got.is_empty() {
            return seen;
        }
        for d in got {
            b.ack(t(ms), d.receipt.unwrap()).unwrap();
            seen.push(Seen {
                id: d.message_id,
                partition: d.partition,
                offset: d.offset,
                payload: d.payload,
                delivery_count: d.delivery_count,
                published_at: d.published_at,
            });
        }
    }
}

fn all_stats<S: Storage>(b: &mut Broker<S>, ms: u64) -> Vec<DestinationStats> {
    DESTINATIONS
        .iter()
        .map(|d| b.stats(t(ms), d).unwrap())
        .collect()
}

/// Everything a full drain of every subscription delivers at `ms`.
fn drain_all<S: Storage>(b: &mut Broker<S>, ms: u64) -> Vec<Vec<Seen>> {
    vec![
        drain(b, ms, "q", None),
        drain(b, ms, "dlq", None),
        drain(b, ms, "t", Some("a")),
        drain(b, ms, "t", Some("b")),
        drain(b, ms, "t", Some("late")),
    ]
}

fn payloads(seen: &[Seen]) -> Vec<&str> {
    seen.iter()
        .map(|s| std::str::from_utf8(&s.payload).unwrap())
        .collect()
}

/// Publishes, acks, a nack, a topic group's progress, a new group and a dedup id, leaving no
/// lease held at the end. Returns the confirms of the queue's publishes.
fn script(b: &mut Broker) -> Vec<Confirm> {
    let mut q: Vec<Confirm> = (1..=5)
        .map(|i| {
            let payload = format!("q{i}");
            b.publish(t(i), "q", PublishRequest::new(payload)).unwrap()
        })
        .collect();
    let got = b
        .receive(t(10), "q", None, ConsumerId(1), 3, AckMode::Explicit)
        .unwrap();
    b.ack(t(11), got[0].receipt.unwrap()).unwrap();
    b.ack(t(11), got[1].receipt.unwrap()).unwrap();
    b.nack(t(12), got[2].receipt.unwrap(), None).unwrap();
    for p in ["t1", "t2", "t3"] {
        b.publish(t(20), "t", PublishRequest::new(p)).unwrap();
    }
    for d in b
        .receive(t(21), "t", Some("a"), ConsumerId(1), 10, AckMode::Explicit)
        .unwrap()
    {
        b.ack(t(21), d.receipt.unwrap()).unwrap();
    }
    b.create_group(t(22), "t", "late", StartPosition::Earliest)
        .unwrap();
    let q6 = PublishRequest::new("q6").with_dedup_id("d");
    q.push(b.publish(t(23), "q", q6).unwrap());
    q
}

#[test]
fn always_keeps_every_confirmed_change_and_recovers_the_exact_state() {
    // The reference runs the script and is inspected without a crash; the other runs the same
    // script, crashes, and recovers at the same instant.
    let mut reference = Broker::open(config(Durability::Always), MemDisk::new(), t(0)).unwrap();
    let q = script(&mut reference);
    let mut crashed = Broker::open(config(Durability::Always), MemDisk::new(), t(0)).unwrap();
    assert_eq!(script(&mut crashed), q);
    assert_eq!(crashed.storage().unsynced_len(), 0);
    let mut recovered = crash_and_reopen(crashed, 30);
    assert_eq!(recovered.epoch(), 2);

    let before = all_stats(&mut reference, 30);
    assert_eq!(all_stats(&mut recovered, 30), before);
    assert_eq!((before[0].depth, before[2].retained), (4, 3));

    let expected = drain_all(&mut reference, 30);
    assert_eq!(drain_all(&mut recovered, 30), expected);
    let ids: Vec<MessageId> = expected[0].iter().map(|s| s.id).collect();
    let want: Vec<MessageId> = q[2..].iter().map(|c| c.message_id).collect();
    assert_eq!(ids, want);
    let counts: Vec<u32> = expected[0].iter().map(|s| s.delivery_count).collect();
    assert_eq!(counts, vec![2, 1, 1, 1]);
    assert!(expected[1].is_empty() && expected[2].is_empty());
    assert_eq!(payloads(&expected[3]), vec!["t1", "t2", "t3"]);
    assert_eq!(payloads(&expected[4]), vec!["t1", "t2", "t3"]);

    // The dedup id is remembered across the crash, although its message was consumed.
    let again = PublishRequest::new("q6").with_dedup_id("d");
    let dup = recovered.publish(t(31), "q", again).unwrap();
    assert_eq!(
        dup,
        Confirm {
            duplicate: true,
            ..q[5]
        }
    );
}

/// Publishes one message to "q" at each of 10, 20, 30, 40 and 50 ms under an interval policy,
/// optionally ticks, crashes the shared disk, and returns the confirms and what survives.
fn interval_run(sync_interval_ms: u64, tick_at: Option<u64>) -> (Vec<Confirm>, Vec<MessageId>) {
    let cfg = config(Durability::Interval { sync_interval_ms });
    let disk = SharedDisk::new(MemDisk::new());
    let mut b = Broker::open(cfg.clone(), disk.clone(), t(0)).unwrap();
    let confirms: Vec<Confirm> = [10, 20, 30, 40, 50]
        .iter()
        .map(|&ms| b.publish(t(ms), "q", PublishRequest::new("m")).unwrap())
        .collect();
    if let Some(ms) = tick_at {
        b.tick(t(ms)).unwrap();
    }
    drop(b);
    disk.lock().crash();
    let mut b = Broker::open(cfg, disk, t(60)).unwrap();
    let survivors = drain(&mut b, 60, "q", None).iter().map(|s| s.id).collect();
    (confirms, survivors)
}

#[test]
fn interval_loses_exactly_the_publishes_since_the_last_sync() {
    let first = |c: &[Confirm], n: usize| -> Vec<MessageId> {
        c[..n].iter().map(|c| c.message_id).collect()
    };
    // Every 15 ms: syncs after the publishes at 20 and 40, so the one at 50 is lost.
    let (c, kept) = interval_run(15, None);
    assert_eq!(kept, first(&c, 4));
    // Every 25 ms: one sync, after the publish at 30.
    let (c, kept) = interval_run(25, None);
    assert_eq!(kept, first(&c, 3));
    // Every 10 ms: each publish is synced.
    let (c, kept) = interval_run(10, None);
    assert_eq!(kept, first(&c, 5));
    // Every 100 ms: nothing was synced before the crash.
    let (_, kept) = interval_run(100, None);
    assert_eq!(kept, vec![]);
    // A tick is also a sync point: at 55, 25 ms after the last sync, it saves 40 and 50.
    let (c, kept) = interval_run(25, Some(55));
    assert_eq!(kept, first(&c, 5));
    let (c, kept) = interval_run(25, Some(54));
    assert_eq!(kept, first(&c, 3));
}

#[test]
fn none_comes_back_empty_after_a_restart() {
    let mut b = Broker::open(config(Durability::None), MemDisk::new(), t(0)).unwrap();
    b.publish(t(1), "q", PublishRequest::new("x")).unwrap();
    b.publish(t(1), "t", PublishRequest::new("y")).unwrap();
    b.create_group(t(2), "t", "late", StartPosition::Earliest)
        .unwrap();
    // Not even a clean stop (no crash of the disk) keeps anything.
    let config = b.config().clone();
    let disk = b.into_storage();
    assert_eq!((disk.synced_len(), disk.unsynced_len()), (0, 0));
    let mut b = Broker::open(config, disk, t(10)).unwrap();
    assert_eq!(b.epoch(), 2);
    let stats = all_stats(&mut b, 10);
    assert_eq!(
        stats
            .iter()
            .map(|s| (s.depth, s.retained))
            .collect::<Vec<_>>(),
        vec![(0, 0), (0, 0), (0, 0)]
    );
    assert!(drain(&mut b, 10, "q", None).is_empty());
    assert_eq!(
        b.receive(t(10), "t", Some("late"), ConsumerId(1), 1, AckMode::Auto),
        Err(BrokerError::UnknownGroup {
            destination: "t".into(),
            group: "late".into()
        })
    );
}

#[test]
fn leases_held_at_a_crash_end_as_failed_deliveries() {
    let mut b = Broker::open(config(Durability::Always), MemDisk::new(), t(0)).unwrap();
    let x = b.publish(t(1), "q", PublishRequest::new("x")).unwrap();
    let y = b.publish(t(1), "q", PublishRequest::new("y")).unwrap();
    let first = b
        .receive(t(2), "q", None, ConsumerId(1), 2, AckMode::Explicit)
        .unwrap();
    b.nack(t(3), first[1].receipt.unwrap(), None).unwrap();
    // y's second delivery uses its last one (max_deliveries is 2); x is on its first.
    let second = b
        .receive(t(4), "q", None, ConsumerId(1), 2, AckMode::Explicit)
        .unwrap();
    assert_eq!(second[0].delivery_count, 2);

    let mut b = crash_and_reopen(b, 10);
    // x comes back for its second delivery; y is dead-lettered, not delivered a third time.
    let ended = |m: &Confirm| EventKind::LeaseEnded {
        message_id: m.message_id,
        at: Slot {
            destination: DestId(0),
            partition: 0,
            offset: m.offset,
        },
        group: GroupId(0),
        why: LeaseEnd::Restart,
    };
    let events: Vec<EventKind> = b.take_events().into_iter().map(|e| e.kind).collect();
    assert_eq!(
        events,
        vec![
            ended(&x),
            ended(&y),
            EventKind::DeadLettered {
                message_id: y.message_id,
                at: Slot {
                    destination: DestId(0),
                    partition: 0,
                    offset: 1
                },
                group: GroupId(0),
                to: Slot {
                    destination: DestId(1),
                    partition: 0,
                    offset: 0
                },
                delivery_count: 2,
                key: None,
                payload: Bytes::from_static(b"y"),
            },
            EventKind::Recovered { epoch: 2 },
        ]
    );

    // Receipts of the previous incarnation are stale, even for the message still in "q".
    for r in [first[0].receipt.unwrap(), second[0].receipt.unwrap()] {
        assert_eq!(b.ack(t(11), r), Err(BrokerError::StaleReceipt));
    }
    let q = drain(&mut b, 12, "q", None);
    assert_eq!(
        q.iter()
            .map(|s| (s.id, s.delivery_count))
            .collect::<Vec<_>>(),
        vec![(x.message_id, 2)]
    );
    let dlq = drain(&mut b, 12, "dlq", None);
    assert_eq!(
        dlq.iter()
            .map(|s| (s.id, s.delivery_count))
            .collect::<Vec<_>>(),
        vec![(y.message_id, 1)]
    );
}

#[test]
fn ids_after_a_restart_never_reuse_ids_lost_with_unsynced_records() {
    let cfg = config(Durability::Interval {
        sync_interval_ms: 1000,
    });
    let mut b = Broker::open(cfg, MemDisk::new(), t(0)).unwrap();
    let mut handed_out: Vec<MessageId> = Vec::new();
    for round in 0..3 {
        // Each round publishes three messages that are never synced, then crashes.
        let base = round * 100 + 10;
        for i in 0..3 {
            let c = b
                .publish(t(base + i), "q", PublishRequest::new("m"))
                .unwrap();
            assert!(
                !handed_out.contains(&c.message_id),
                "{:?} reused",
                c.message_id
            );
            handed_out.push(c.message_id);
        }
        assert_eq!(b.storage().unsynced_len(), 3);
        b = crash_and_reopen(b, base + 50);
        assert_eq!(b.stats(t(base + 50), "q").unwrap().depth, 0);
    }
    assert_eq!(handed_out.len(), 9);
}

/// Commands after a recovery, each using receipts from the replies before it, so that two
/// brokers can be compared reply by reply.
fn follow_up<S: Storage>(b: &mut Broker<S>) -> Vec<Result<Reply>> {
    let receive = |dest: &str, group: Option<&str>| Command::Receive {
        destination: dest.into(),
        group: group.map(Into::into),
        consumer: ConsumerId(3),
        max_messages: 2,
        visibility_timeout_ms: None,
        ack_mode: AckMode::Explicit,
    };
    let mut replies = vec![
        b.apply(t(51), receive("q", None)),
        b.apply(t(51), receive("t", Some("b"))),
    ];
    let receipts: Vec<Receipt> = replies
        .iter()
        .filter_map(|r| match r {
            Ok(Reply::Delivered { deliveries }) => Some(deliveries),
            _ => None,
        })
        .flatten()
        .filter_map(|d| d.receipt)
        .collect();
    if let [first, second, ..] = receipts[..] {
        replies.push(b.apply(t(52), Command::Ack { receipt: first }));
        let nack = Command::Nack {
            receipt: second,
            requeue_delay_ms: Some(5),
        };
        replies.push(b.apply(t(52), nack));
    }
    let publish = Command::Publish {
        destination: "q".into(),
        request: PublishRequest::new("after"),
    };
    replies.push(b.apply(t(53), publish));
    // The nacked message was on its last delivery, so it is in the dead-letter queue by now.
    replies.push(b.apply(t(200), receive("q", None)));
    replies.push(b.apply(t(200), receive("dlq", None)));
    replies
}

#[test]
fn recovering_the_same_disk_twice_gives_identical_brokers() {
    let cfg = config(Durability::Interval {
        sync_interval_ms: 20,
    });
    let mut b = Broker::open(cfg.clone(), MemDisk::new(), t(0)).unwrap();
    for i in 0..6 {
        b.publish(t(i), "q", PublishRequest::new(format!("q{i}")))
            .unwrap();
        b.publish(t(i), "t", PublishRequest::new(format!("t{i}")))
            .unwrap();
    }
    b.receive(t(20), "q", None, ConsumerId(1), 3, AckMode::Explicit)
        .unwrap();
    b.receive(t(25), "t", Some("a"), ConsumerId(1), 3, AckMode::Explicit)
        .unwrap();
    b.receive(t(40), "q", None, ConsumerId(2), 1, AckMode::Auto)
        .unwrap();
    b.receive(t(45), "q", None, ConsumerId(2), 1, AckMode::Explicit)
        .unwrap();
    let mut disk = b.into_storage();
    disk.crash();

    let mut one = Broker::open(cfg.clone(), disk.clone(), t(50)).unwrap();
    let mut two = Broker::open(cfg, disk, t(50)).unwrap();
    assert_eq!(one.epoch(), two.epoch());
    assert_eq!(one.take_events(), two.take_events());
    let stats = all_stats(&mut one, 50);
    assert_eq!(all_stats(&mut two, 50), stats);
    // The sync at 40 kept the auto-acked delivery and the three leases taken at 20, which the
    // restart released; the lease taken at 45 was lost. Five of the six are ready again.
    assert_eq!((stats[0].depth, stats[0].groups[0].in_flight), (5, 0));
    assert_eq!(stats[2].groups[0].pending, vec![3, 3]);

    let replies = follow_up(&mut one);
    assert_eq!(follow_up(&mut two), replies);
    assert!(replies.iter().all(Result::is_ok), "{replies:?}");
    assert_eq!(one.take_events(), two.take_events());
    assert_eq!(all_stats(&mut one, 300), all_stats(&mut two, 300));
}

#[test]
fn timer_effects_before_a_crash_are_reproduced_by_recovery() {
    let mut b = Broker::open(config(Durability::Always), MemDisk::new(), t(0)).unwrap();
    let y = b.publish(t(0), "q", PublishRequest::new("y")).unwrap();
    let z = b.publish(t(0), "q", PublishRequest::new("z")).unwrap();
    let one = |b: &mut Broker, ms: u64| {
        b.receive(t(ms), "q", None, ConsumerId(1), 1, AckMode::Explicit)
            .unwrap()[0]
            .message_id
    };
    // y's first lease runs out at 110; its second, its last delivery, at 220, which
    // dead-letters it. z's lease runs out at 250 and z goes back to the queue.
    assert_eq!(one(&mut b, 10), y.message_id);
    assert_eq!(one(&mut b, 120), y.message_id);
    assert_eq!(one(&mut b, 150), z.message_id);
    // Ticks are not logged: recovery must rebuild what these timers did from the commands.
    b.tick(t(300)).unwrap();
    let before = all_stats(&mut b, 300);
    assert_eq!((before[0].depth, before[0].groups[0].in_flight), (1, 0));
    assert_eq!(before[0].dead_letter_depth, Some(1));

    let mut b = crash_and_reopen(b, 300);
    assert_eq!(all_stats(&mut b, 300), before);
    let q = drain(&mut b, 300, "q", None);
    assert_eq!(
        q.iter()
            .map(|s| (s.id, s.delivery_count))
            .collect::<Vec<_>>(),
        vec![(z.message_id, 2)]
    );
    let dlq = drain(&mut b, 300, "dlq", None);
    assert_eq!(
        dlq.iter()
            .map(|s| (s.id, s.published_at))
            .collect::<Vec<_>>(),
        vec![(y.message_id, t(220))]
    );
}

#[test]
fn a_full_disk_refuses_every_change_and_changes_nothing() {
    // Room for four records: the start, two publishes and one receive.
    let cfg = BrokerConfig::new(
        Durability::Always,
        vec![
            DestinationConfig::queue("q"),
            DestinationConfig::topic("t", &[]),
        ],
    );
    let mut b = Broker::open(cfg, MemDisk::with_capacity(4), t(0)).unwrap();
    b.publish(t(1), "q", PublishRequest::new("a")).unwrap();
    b.publish(t(1), "q", PublishRequest::new("b")).unwrap();
    let got = b
        .receive(t(2), "q", None, ConsumerId(1), 1, AckMode::Explicit)
        .unwrap();
    let r = got[0].receipt.unwrap();
    let before = b.stats(t(3), "q").unwrap();
    b.take_events();

    let full: Result<()> = Err(BrokerError::StorageFull);
    let publish = b.publish(t(3), "q", PublishRequest::new("c"));
    assert_eq!(publish.map(drop), full);
    let receive = b.receive(t(3), "q", None, ConsumerId(1), 1, AckMode::Auto);
    assert_eq!(receive.map(drop), full);
    assert_eq!(b.ack(t(3), r), full);
    assert_eq!(b.nack(t(3), r, None), full);
    assert_eq!(b.extend_visibility(t(3), r, 1000), full);
    assert_eq!(b.commit(t(3), vec![r], vec![]).map(drop), full);
    assert_eq!(
        b.create_group(t(3), "t", "g", StartPosition::Earliest),
        full
    );
    // Letting time pass changes nothing durable, so it is not refused.
    assert_eq!(b.tick(t(3)), Ok(()));

    assert_eq!(b.take_events(), vec![]);
    assert_eq!(b.stats(t(3), "q").unwrap(), before);
    assert_eq!(b.stats(t(3), "t").unwrap().groups.len(), 0);
    assert_eq!((before.depth, before.groups[0].in_flight), (1, 1));
    assert_eq!(
        (b.storage().synced_len(), b.storage().unsynced_len()),
        (4, 0)
    );
}
