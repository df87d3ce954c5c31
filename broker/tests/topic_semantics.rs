//! Topics, consumer groups, replay, producer dedup and bounds: one focused test per documented
//! semantic, each asserting exact ids, offsets, counts, errors and events so that it fails if the
//! behaviour is removed. Delay, time to live, transactions and statistics are in
//! `timing_and_transactions.rs`.

mod common;

use bytes::Bytes;
use common::{broker_with, counts, ids, publish, receive, slot, t};
use mqsim_broker::*;

/// A broker with the given destinations, started at time zero. Durability does not matter for
/// these tests, so the cheapest policy is used.
fn broker(destinations: Vec<DestinationConfig>) -> Broker {
    broker_with(Durability::None, destinations)
}

fn ack_all(b: &mut Broker, ms: u64, deliveries: &[Delivery]) {
    for d in deliveries {
        b.ack(t(ms), d.receipt.unwrap()).unwrap();
    }
}

#[test]
fn topic_fans_out_to_every_group_and_groups_progress_independently() {
    let mut b = broker(vec![DestinationConfig::topic("t", &["a", "b"])]);
    let m1 = publish(&mut b, 1, "t", "m1").message_id;
    let m2 = publish(&mut b, 1, "t", "m2").message_id;

    let da = receive(&mut b, 2, "t", Some("a"));
    assert_eq!(ids(&da), vec![m1, m2]);
    ack_all(&mut b, 3, &da);
    assert!(receive(&mut b, 4, "t", Some("a")).is_empty());

    // Group a acked everything; group b still gets both messages, each for the first time.
    let db = receive(&mut b, 5, "t", Some("b"));
    assert_eq!(ids(&db), vec![m1, m2]);
    assert_eq!(counts(&db), vec![1, 1]);
    assert_eq!(db[0].payload, Bytes::from_static(b"m1"));

    // Nacking in group b gives the message back to b only.
    b.nack(t(6), db[0].receipt.unwrap(), None).unwrap();
    assert!(receive(&mut b, 7, "t", Some("a")).is_empty());
    let again = receive(&mut b, 7, "t", Some("b"));
    assert_eq!(ids(&again), vec![m1]);
    assert_eq!(counts(&again), vec![2]);

    let s = b.stats(t(8), "t").unwrap();
    assert_eq!(s.groups[0].name.as_deref(), Some("a"));
    assert_eq!(
        (s.groups[0].pending.clone(), s.groups[0].in_flight),
        (vec![0], 0)
    );
    assert_eq!(
        (s.groups[1].pending.clone(), s.groups[1].in_flight),
        (vec![2], 2)
    );
    assert_eq!(s.retained, 2);

    // A topic must be addressed through a known consumer group.
    let no_group = b.receive(t(9), "t", None, ConsumerId(1), 1, AckMode::Explicit);
    assert_eq!(no_group, Err(BrokerError::GroupRequired("t".into())));
    let unknown = b.receive(t(9), "t", Some("c"), ConsumerId(1), 1, AckMode::Explicit);
    assert_eq!(
        unknown,
        Err(BrokerError::UnknownGroup {
            destination: "t".into(),
            group: "c".into()
        })
    );
}

#[test]
fn new_groups_start_at_the_earliest_or_latest_message() {
    let mut b = broker(vec![
        DestinationConfig::topic("t", &[]),
        DestinationConfig::queue("q"),
    ]);
    let m1 = publish(&mut b, 1, "t", "m1").message_id;
    let m2 = publish(&mut b, 2, "t", "m2").message_id;
    b.create_group(t(3), "t", "early", StartPosition::Earliest)
        .unwrap();
    b.create_group(t(3), "t", "late", StartPosition::Latest)
        .unwrap();
    let m3 = publish(&mut b, 4, "t", "m3").message_id;

    assert_eq!(
        ids(&receive(&mut b, 5, "t", Some("early"))),
        vec![m1, m2, m3]
    );
    assert_eq!(ids(&receive(&mut b, 5, "t", Some("late"))), vec![m3]);
    let seeked: Vec<EventKind> = b
        .take_events()
        .into_iter()
        .map(|e| e.kind)
        .filter(|k| matches!(k, EventKind::GroupSeeked { .. }))
        .collect();
    assert_eq!(
        seeked,
        vec![
            EventKind::GroupSeeked {
                destination: DestId(0),
                group: GroupId(0)
            },
            EventKind::GroupSeeked {
                destination: DestId(0),
                group: GroupId(1)
            },
        ]
    );

    assert_eq!(
        b.create_group(t(6), "t", "early", StartPosition::Latest),
        Err(BrokerError::GroupExists {
            destination: "t".into(),
            group: "early".into()
        })
    );
    assert_eq!(
        b.create_group(t(6), "q", "g", StartPosition::Earliest),
        Err(BrokerError::GroupNotAllowed("q".into()))
    );
    assert_eq!(b.stats(t(6), "t").unwrap().groups.len(), 2);
}

#[test]
fn seek_replays_consumed_messages_and_skips_unconsumed_ones() {
    let mut b = broker(vec![DestinationConfig {
        partitions: 2,
        ..DestinationConfig::topic("t", &["g"])
    }]);
    // Unkeyed messages take turns: p0 o0, p1 o0, p0 o1, p1 o1.
    let c: Vec<Confirm> = (0..4).map(|i| publish(&mut b, 1 + i, "t", "m")).collect();
    let places: Vec<(u32, u64)> = c.iter().map(|c| (c.partition, c.offset)).collect();
    assert_eq!(places, vec![(0, 0), (1, 0), (0, 1), (1, 1)]);
    let in_place_order = [&c[0], &c[2], &c[1], &c[3]].map(|c| c.message_id);

    // Consume everything, the first message only on its second delivery.
    let first = by_place(receive(&mut b, 10, "t", Some("g")));
    assert_eq!(ids(&first), in_place_order);
    b.nack(t(11), first[0].receipt.unwrap(), None).unwrap();
    ack_all(&mut b, 11, &first[1..]);
    let retry = receive(&mut b, 12, "t", Some("g"));
    assert_eq!(
        (ids(&retry), counts(&retry)),
        (vec![c[0].message_id], vec![2])
    );
    ack_all(&mut b, 12, &retry);
    assert!(receive(&mut b, 13, "t", Some("g")).is_empty());

    // Earliest: everything again, each delivery counted from 1 again.
    b.seek(t(20), "t", "g", SeekTo::Earliest).unwrap();
    let replay = by_place(receive(&mut b, 21, "t", Some("g")));
    assert_eq!(ids(&replay), in_place_order);
    assert_eq!(counts(&replay), vec![1, 1, 1, 1]);
    ack_all(&mut b, 22, &replay);

    // An offset on one partition replays that partition only, from that offset.
    b.seek(
        t(30),
        "t",
        "g",
        SeekTo::Offset {
            partition: 1,
            offset: 1,
        },
    )
    .unwrap();
    let one = receive(&mut b, 31, "t", Some("g"));
    assert_eq!((ids(&one), counts(&one)), (vec![c[3].message_id], vec![1]));
    ack_all(&mut b, 31, &one);

    // Latest: two unconsumed messages are skipped and reported; a leased one keeps its lease.
    let m4 = publish(&mut b, 40, "t", "m4");
    let leased = receive(&mut b, 41, "t", Some("g"));
    assert_eq!(ids(&leased), vec![m4.message_id]);
    let m5 = publish(&mut b, 41, "t", "m5");
    let m6 = publish(&mut b, 41, "t", "m6");
    assert_eq!([m5.partition, m6.partition], [1, 0]);
    b.take_events();
    b.seek(t(42), "t", "g", SeekTo::Latest).unwrap();
    let skipped = |m: Confirm, payload: &'static str| EventKind::Dropped {
        message_id: m.message_id,
        at: slot(0, m.partition, m.offset),
        group: GroupId(0),
        reason: DropReason::Skipped,
        key: None,
        payload: Bytes::from_static(payload.as_bytes()),
    };
    let events: Vec<EventKind> = b.take_events().into_iter().map(|e| e.kind).collect();
    assert_eq!(
        events,
        vec![
            skipped(m6, "m6"),
            skipped(m5, "m5"),
            EventKind::GroupSeeked {
                destination: DestId(0),
                group: GroupId(0)
            },
        ]
    );
    assert!(receive(&mut b, 43, "t", Some("g")).is_empty());
    b.ack(t(44), leased[0].receipt.unwrap()).unwrap();

    // A partition that does not exist is refused.
    let bad = b.seek(
        t(50),
        "t",
        "g",
        SeekTo::Offset {
            partition: 2,
            offset: 0,
        },
    );
    assert!(
        matches!(&bad, Err(BrokerError::InvalidArgument { what, .. }) if what == "partition"),
        "{bad:?}"
    );
}

/// Deliveries in (partition, offset) order: the broker orders each partition, but rotates over
/// partitions in an order these tests need not depend on.
fn by_place(mut deliveries: Vec<Delivery>) -> Vec<Delivery> {
    deliveries.sort_by_key(|d| (d.partition, d.offset));
    deliveries
}

#[test]
fn retained_log_has_dense_offsets_and_kafka_style_lag() {
    let mut b = broker(vec![
        DestinationConfig {
            partitions: 2,
            ..DestinationConfig::topic("t", &["a", "b"])
        },
        DestinationConfig {
            partitions: 4,
            ..DestinationConfig::topic("keyed", &[])
        },
    ]);
    let c: Vec<Confirm> = (0..5).map(|i| publish(&mut b, 1 + i, "t", "m")).collect();
    let places: Vec<(u32, u64)> = c.iter().map(|c| (c.partition, c.offset)).collect();
    assert_eq!(places, vec![(0, 0), (1, 0), (0, 1), (1, 1), (0, 2)]);

    // One key always lands in one partition, at the next offset.
    let k: Vec<Confirm> = (0..3)
        .map(|i| {
            let req = PublishRequest::new("k").with_key("user-7");
            b.publish(t(10 + i), "keyed", req).unwrap()
        })
        .collect();
    let p = k[0].partition;
    let keyed: Vec<(u32, u64)> = k.iter().map(|c| (c.partition, c.offset)).collect();
    assert_eq!(keyed, vec![(p, 0), (p, 1), (p, 2)]);

    // Group a acks p0 o0, p0 o1 and p1 o1, and keeps p0 o2 and p1 o0 leased. The committed
    // offset is the lowest one not consumed, so p1 stays at 0 although o1 was acked.
    let got = by_place(receive(&mut b, 20, "t", Some("a")));
    let in_place_order = [&c[0], &c[2], &c[4], &c[1], &c[3]].map(|c| c.message_id);
    assert_eq!(ids(&got), in_place_order);
    for d in &got {
        if matches!((d.partition, d.offset), (0, 0) | (0, 1) | (1, 1)) {
            b.ack(t(21), d.receipt.unwrap()).unwrap();
        }
    }
    let s = b.stats(t(22), "t").unwrap();
    assert_eq!((s.depth, s.retained), (5, 5));
    let group_a = &s.groups[0];
    assert_eq!(group_a.pending, vec![1, 1]);
    assert_eq!(group_a.committed, vec![2, 0]);
    assert_eq!(group_a.lag, vec![1, 2]);
    assert_eq!((group_a.ready, group_a.in_flight), (0, 2));
    // Group b has consumed nothing: its lag is the whole log.
    let group_b = &s.groups[1];
    assert_eq!(group_b.pending, vec![3, 2]);
    assert_eq!(group_b.committed, vec![0, 0]);
    assert_eq!(group_b.lag, vec![3, 2]);
    assert_eq!((group_b.ready, group_b.in_flight), (5, 0));
}

#[test]
fn dedup_id_within_the_window_repeats_the_first_confirm_even_after_ack() {
    let mut b = broker(vec![DestinationConfig {
        dedup_window_ms: 100,
        ..DestinationConfig::queue("q")
    }]);
    let req = || PublishRequest::new("x").with_dedup_id("order-1");
    let first = b.publish(t(10), "q", req()).unwrap();
    assert!(!first.duplicate);

    // Deliver and ack the original: the id must still be remembered (forgetting ids once the
    // message is consumed is a known bug of real brokers).
    let got = receive(&mut b, 20, "q", None);
    assert_eq!(ids(&got), vec![first.message_id]);
    ack_all(&mut b, 20, &got);
    b.take_events();

    let dup = b.publish(t(109), "q", req()).unwrap();
    assert_eq!(
        dup,
        Confirm {
            duplicate: true,
            ..first
        }
    );
    assert_eq!(
        b.take_events(),
        vec![Event {
            at: t(109),
            kind: EventKind::Published {
                message_id: first.message_id,
                at: slot(0, 0, 0),
                duplicate: true
            }
        }]
    );
    assert_eq!(b.stats(t(109), "q").unwrap().depth, 0);
    assert!(receive(&mut b, 109, "q", None).is_empty());

    // The window counts from the first publish; once it has passed the id is new again.
    let again = b.publish(t(110), "q", req()).unwrap();
    assert!(!again.duplicate);
    assert_ne!(again.message_id, first.message_id);
    assert_eq!((again.partition, again.offset), (0, 1));
    assert_eq!(
        ids(&receive(&mut b, 111, "q", None)),
        vec![again.message_id]
    );
}

#[test]
fn max_dedup_ids_forgets_the_oldest_id_first() {
    let mut b = broker(vec![DestinationConfig {
        max_dedup_ids: 2,
        ..DestinationConfig::queue("q")
    }]);
    let req = |id: &str| PublishRequest::new("x").with_dedup_id(id);
    let a = b.publish(t(1), "q", req("a")).unwrap();
    let bb = b.publish(t(2), "q", req("b")).unwrap();
    let c = b.publish(t(3), "q", req("c")).unwrap();

    // Three ids were seen and two are remembered: "a", the oldest, is forgotten.
    assert_eq!(
        b.publish(t(4), "q", req("c")).unwrap(),
        Confirm {
            duplicate: true,
            ..c
        }
    );
    assert_eq!(
        b.publish(t(5), "q", req("b")).unwrap(),
        Confirm {
            duplicate: true,
            ..bb
        }
    );
    let a2 = b.publish(t(6), "q", req("a")).unwrap();
    assert!(!a2.duplicate);
    assert_ne!(a2.message_id, a.message_id);
    assert_eq!(b.stats(t(7), "q").unwrap().depth, 4);
}

#[test]
fn reject_publish_refuses_beyond_max_length_and_max_bytes_but_leases_do_not_count() {
    let mut b = broker(vec![
        DestinationConfig {
            max_length: 2,
            overflow: OverflowPolicy::RejectPublish,
            ..DestinationConfig::queue("len")
        },
        DestinationConfig {
            max_payload_bytes: 4,
            max_bytes: 10,
            overflow: OverflowPolicy::RejectPublish,
            ..DestinationConfig::queue("bytes")
        },
    ]);
    let a = publish(&mut b, 1, "len", "a").message_id;
    let bb = publish(&mut b, 1, "len", "b").message_id;
    b.take_events();
    let full = BrokerError::Overflow {
        destination: "len".into(),
        length: 2,
        bytes: 2,
    };
    assert_eq!(
        b.publish(t(2), "len", PublishRequest::new("c")),
        Err(full.clone())
    );
    assert_eq!(
        b.take_events(),
        vec![Event {
            at: t(2),
            kind: EventKind::Rejected {
                destination: DestId(0)
            }
        }]
    );
    assert_eq!(b.stats(t(2), "len").unwrap().depth, 2);

    // Leased messages do not count toward a queue's max_length (RabbitMQ semantics): with both
    // leased, two more fit, and the fifth is refused.
    assert_eq!(ids(&receive(&mut b, 3, "len", None)), vec![a, bb]);
    let c = publish(&mut b, 4, "len", "c").message_id;
    let d = publish(&mut b, 4, "len", "d").message_id;
    assert_eq!(b.publish(t(5), "len", PublishRequest::new("e")), Err(full));
    let s = b.stats(t(5), "len").unwrap();
    assert_eq!((s.depth, s.groups[0].in_flight), (2, 2));
    let got = b
        .receive(t(6), "len", None, ConsumerId(2), 100, AckMode::Auto)
        .unwrap();
    assert_eq!(ids(&got), vec![c, d]);

    publish(&mut b, 10, "bytes", "aaaa");
    publish(&mut b, 10, "bytes", "bbbb");
    assert_eq!(
        b.publish(t(11), "bytes", PublishRequest::new("ccc")),
        Err(BrokerError::Overflow {
            destination: "bytes".into(),
            length: 2,
            bytes: 8
        })
    );
    publish(&mut b, 12, "bytes", "cc");
    let s = b.stats(t(12), "bytes").unwrap();
    assert_eq!((s.depth, s.depth_bytes), (3, 10));
}

fn dropped(m: MessageId, at: Slot, group: u32, payload: &'static str) -> EventKind {
    EventKind::Dropped {
        message_id: m,
        at,
        group: GroupId(group),
        reason: DropReason::Overflow,
        key: None,
        payload: Bytes::from_static(payload.as_bytes()),
    }
}

fn published(c: &Confirm, dest: u32) -> EventKind {
    EventKind::Published {
        message_id: c.message_id,
        at: slot(dest, c.partition, c.offset),
        duplicate: false,
    }
}

#[test]
fn drop_head_drops_the_oldest_unleased_message_of_a_queue() {
    let mut b = broker(vec![DestinationConfig {
        max_length: 2,
        overflow: OverflowPolicy::DropHead,
        ..DestinationConfig::queue("q")
    }]);
    let a = publish(&mut b, 1, "q", "a");
    let bb = publish(&mut b, 2, "q", "b");
    let leased = b
        .receive(t(3), "q", None, ConsumerId(1), 1, AckMode::Explicit)
        .unwrap();
    assert_eq!(ids(&leased), vec![a.message_id]);

    // "a" is leased, so "c" still fits; "d" pushes out "b", the oldest message not leased.
    let c = publish(&mut b, 4, "q", "c");
    b.take_events();
    let d = publish(&mut b, 5, "q", "d");
    let events: Vec<EventKind> = b.take_events().into_iter().map(|e| e.kind).collect();
    assert_eq!(
        events,
        vec![
            dropped(bb.message_id, slot(0, 0, 1), 0, "b"),
            published(&d, 0)
        ]
    );
    let e = publish(&mut b, 6, "q", "e");
    let events: Vec<EventKind> = b.take_events().into_iter().map(|e| e.kind).collect();
    assert_eq!(
        events,
        vec![
            dropped(c.message_id, slot(0, 0, 2), 0, "c"),
            published(&e, 0)
        ]
    );

    let s = b.stats(t(7), "q").unwrap();
    assert_eq!((s.depth, s.groups[0].in_flight), (2, 1));
    assert_eq!(
        ids(&receive(&mut b, 7, "q", None)),
        vec![d.message_id, e.message_id]
    );
    b.ack(t(8), leased[0].receipt.unwrap()).unwrap();
}

#[test]
fn a_topic_counts_its_retained_log_and_drops_its_oldest_message() {
    let mut b = broker(vec![DestinationConfig {
        max_length: 2,
        ..DestinationConfig::topic("t", &["g", "h"])
    }]);
    let a = publish(&mut b, 1, "t", "a");
    let bb = publish(&mut b, 1, "t", "b");
    let leased = b
        .receive(t(2), "t", Some("g"), ConsumerId(1), 1, AckMode::Explicit)
        .unwrap();
    assert_eq!(ids(&leased), vec![a.message_id]);
    // Group h has consumed both, but the consumed messages still count: the log is retained.
    let h = receive(&mut b, 2, "t", Some("h"));
    ack_all(&mut b, 2, &h);
    b.take_events();

    // The oldest retained message goes even though g holds it; only g, which had not finished
    // with it, is told.
    let c = publish(&mut b, 3, "t", "c");
    let events: Vec<EventKind> = b.take_events().into_iter().map(|e| e.kind).collect();
    assert_eq!(
        events,
        vec![
            dropped(a.message_id, slot(0, 0, 0), 0, "a"),
            published(&c, 0)
        ]
    );
    let s = b.stats(t(4), "t").unwrap();
    assert_eq!((s.depth, s.retained), (2, 2));
    assert_eq!(
        b.ack(t(4), leased[0].receipt.unwrap()),
        Err(BrokerError::StaleReceipt)
    );
    assert_eq!(
        ids(&receive(&mut b, 5, "t", Some("g"))),
        vec![bb.message_id, c.message_id]
    );
    b.seek(t(6), "t", "h", SeekTo::Earliest).unwrap();
    assert_eq!(
        ids(&receive(&mut b, 6, "t", Some("h"))),
        vec![bb.message_id, c.message_id]
    );
}
