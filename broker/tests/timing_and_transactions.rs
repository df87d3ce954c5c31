//! Delay, time to live, transactions and statistics: one focused test per documented semantic,
//! each asserting exact ids, counts, errors and events so that it fails if the behaviour is
//! removed. Topics, dedup and bounds are in `topic_semantics.rs`.

mod common;

use bytes::Bytes;
use common::{broker_with, ids, publish, receive, slot, t};
use mqsim_broker::*;

/// A broker with the given destinations, started at time zero. Durability does not matter for
/// these tests, so the cheapest policy is used.
fn broker(destinations: Vec<DestinationConfig>) -> Broker {
    broker_with(Durability::None, destinations)
}

#[test]
fn delay_hides_a_message_until_exactly_its_delay_without_blocking_later_ones() {
    let mut b = broker(vec![DestinationConfig {
        delay_ms: 100,
        ..DestinationConfig::queue("q")
    }]);
    // The destination's delay (visible at 110), a per-message override of no delay, and a
    // per-message delay of 50 (visible at 80); all three share the one partition.
    let a = publish(&mut b, 10, "q", "a").message_id;
    let bb = b
        .publish(t(20), "q", PublishRequest::new("b").with_delay_ms(0))
        .unwrap()
        .message_id;
    let c = b
        .publish(t(30), "q", PublishRequest::new("c").with_delay_ms(50))
        .unwrap()
        .message_id;

    // "b" comes out although "a", earlier in the partition, is still delayed.
    assert_eq!(ids(&receive(&mut b, 30, "q", None)), vec![bb]);
    let g = &b.stats(t(79), "q").unwrap().groups[0];
    assert_eq!((g.ready, g.delayed, g.in_flight), (0, 2, 1));
    assert!(receive(&mut b, 79, "q", None).is_empty());
    assert_eq!(ids(&receive(&mut b, 80, "q", None)), vec![c]);
    assert!(receive(&mut b, 109, "q", None).is_empty());
    assert_eq!(ids(&receive(&mut b, 110, "q", None)), vec![a]);
}

fn expired(m: MessageId, at: Slot, group: u32, payload: &'static str) -> EventKind {
    EventKind::Expired {
        message_id: m,
        at,
        group: GroupId(group),
        key: None,
        payload: Bytes::from_static(payload.as_bytes()),
    }
}

#[test]
fn ttl_expires_ready_messages_and_leased_ones_when_their_lease_ends() {
    let mut b = broker(vec![DestinationConfig {
        message_ttl_ms: Some(100),
        visibility_timeout_ms: 100,
        ..DestinationConfig::queue("q")
    }]);
    let a = publish(&mut b, 0, "q", "a").message_id;
    let bb = publish(&mut b, 0, "q", "b").message_id;
    let c = publish(&mut b, 0, "q", "c").message_id;
    let d = b
        .publish(t(0), "q", PublishRequest::new("d").with_ttl_ms(50))
        .unwrap()
        .message_id;

    // The per-message time to live ends first, at exactly 50 ms.
    b.tick(t(49)).unwrap();
    assert_eq!(b.stats(t(49), "q").unwrap().depth, 4);
    b.take_events();
    b.tick(t(50)).unwrap();
    let at50 = Event {
        at: t(50),
        kind: expired(d, slot(0, 0, 3), 0, "d"),
    };
    assert_eq!(b.take_events(), vec![at50]);

    // "a" and "b" are leased until 160 when their time runs out at 100; "c" expires at once.
    let leased = b
        .receive(t(60), "q", None, ConsumerId(1), 2, AckMode::Explicit)
        .unwrap();
    assert_eq!(ids(&leased), vec![a, bb]);
    b.take_events();
    b.tick(t(100)).unwrap();
    let at100 = Event {
        at: t(100),
        kind: expired(c, slot(0, 0, 2), 0, "c"),
    };
    assert_eq!(b.take_events(), vec![at100]);
    let s = b.stats(t(100), "q").unwrap();
    assert_eq!((s.depth, s.groups[0].in_flight), (0, 2));

    // A leased expired message can still be acked; the other expires when its lease ends.
    b.ack(t(120), leased[0].receipt.unwrap()).unwrap();
    b.take_events();
    b.tick(t(160)).unwrap();
    let lease_end = EventKind::LeaseEnded {
        message_id: bb,
        at: slot(0, 0, 1),
        group: GroupId(0),
        why: LeaseEnd::Expired,
    };
    let events: Vec<Event> = b.take_events();
    assert_eq!(
        events,
        vec![
            Event {
                at: t(160),
                kind: lease_end
            },
            Event {
                at: t(160),
                kind: expired(bb, slot(0, 0, 1), 0, "b")
            },
        ]
    );
    let s = b.stats(t(160), "q").unwrap();
    assert_eq!((s.depth, s.groups[0].in_flight, s.retained), (0, 0, 0));
    assert!(receive(&mut b, 161, "q", None).is_empty());
}

#[test]
fn expired_messages_are_dead_lettered_and_topic_retention_removes_them_from_every_group() {
    let mut b = broker(vec![
        DestinationConfig {
            message_ttl_ms: Some(100),
            on_expiry: ExpiryAction::DeadLetter,
            max_deliveries: Some(5),
            dead_letter: Some("dlq".into()),
            ..DestinationConfig::queue("q")
        },
        DestinationConfig::queue("dlq"),
        DestinationConfig {
            message_ttl_ms: Some(100),
            ..DestinationConfig::topic("t", &["a", "b"])
        },
    ]);
    let x = publish(&mut b, 0, "q", "x").message_id;
    let m = publish(&mut b, 0, "t", "m").message_id;
    let leased = receive(&mut b, 10, "t", Some("a"));
    assert_eq!(ids(&leased), vec![m]);
    b.take_events();

    b.tick(t(100)).unwrap();
    let events: Vec<EventKind> = b.take_events().into_iter().map(|e| e.kind).collect();
    assert_eq!(
        events,
        vec![
            EventKind::DeadLettered {
                message_id: x,
                at: slot(0, 0, 0),
                group: GroupId(0),
                to: slot(1, 0, 0),
                delivery_count: 0,
                key: None,
                payload: Bytes::from_static(b"x"),
            },
            expired(m, slot(2, 0, 0), 0, "m"),
            expired(m, slot(2, 0, 0), 1, "m"),
        ]
    );
    assert_eq!(b.stats(t(100), "q").unwrap().dead_letter_depth, Some(1));
    let dl = receive(&mut b, 101, "dlq", None);
    assert_eq!((ids(&dl), dl[0].published_at), (vec![x], t(100)));

    // Retention removed the topic's message from both groups, the leased one included.
    assert_eq!(
        b.ack(t(101), leased[0].receipt.unwrap()),
        Err(BrokerError::StaleReceipt)
    );
    let s = b.stats(t(101), "t").unwrap();
    assert_eq!(s.retained, 0);
    for g in &s.groups {
        assert_eq!(
            (g.pending.clone(), g.in_flight, g.lag.clone()),
            (vec![0], 0, vec![0])
        );
    }
}

#[test]
fn topic_retention_into_a_full_dead_letter_queue_reports_only_the_expiry() {
    // Retention removes the message whatever happens, so a refusal, which promises that the
    // message stays and is tried again, would be false. The dead-letter queue has room for
    // group a's copy only; group b's is reported as expired, and nothing else happens.
    let mut b = broker(vec![
        DestinationConfig {
            message_ttl_ms: Some(100),
            on_expiry: ExpiryAction::DeadLetter,
            max_deliveries: Some(3),
            dead_letter: Some("dlq".into()),
            ..DestinationConfig::topic("t", &["a", "b"])
        },
        DestinationConfig {
            max_length: 2,
            ..DestinationConfig::queue("dlq")
        },
    ]);
    publish(&mut b, 0, "dlq", "fill");
    let m = publish(&mut b, 0, "t", "m").message_id;
    b.take_events();
    b.tick(t(100)).unwrap();
    let events: Vec<EventKind> = b.take_events().into_iter().map(|e| e.kind).collect();
    assert_eq!(
        events,
        vec![
            EventKind::DeadLettered {
                message_id: m,
                at: slot(0, 0, 0),
                group: GroupId(0),
                to: slot(1, 0, 1),
                delivery_count: 0,
                key: None,
                payload: Bytes::from_static(b"m"),
            },
            expired(m, slot(0, 0, 0), 1, "m"),
        ]
    );
    b.tick(t(5000)).unwrap();
    assert_eq!(b.take_events(), vec![]);
    let s = b.stats(t(5000), "t").unwrap();
    assert_eq!((s.retained, s.dead_letter_depth), (0, Some(2)));
}

#[test]
fn a_transaction_applies_all_or_nothing() {
    let mut b = broker(vec![
        DestinationConfig::queue("in"),
        DestinationConfig {
            max_length: 1,
            overflow: OverflowPolicy::RejectPublish,
            ..DestinationConfig::queue("out")
        },
        DestinationConfig::queue("log"),
    ]);
    for p in ["i1", "i2", "i3"] {
        publish(&mut b, 1, "in", p);
    }
    let r: Vec<Receipt> = receive(&mut b, 2, "in", None)
        .iter()
        .map(|d| d.receipt.unwrap())
        .collect();

    let out = |p: &'static str| ("out".to_owned(), PublishRequest::new(p));
    let log = |p: &'static str| ("log".to_owned(), PublishRequest::new(p));
    let confirms = b.commit(t(3), vec![r[0]], vec![out("o1")]).unwrap();
    assert_eq!(confirms.len(), 1);
    assert_eq!((confirms[0].partition, confirms[0].offset), (0, 0));
    assert_eq!(b.stats(t(3), "in").unwrap().groups[0].in_flight, 2);
    b.take_events();

    // A stale receipt (r[0] was acked) refuses the whole transaction: r[1] is not acked and
    // nothing reaches "log".
    assert_eq!(
        b.commit(t(4), vec![r[1], r[0]], vec![log("l1")]),
        Err(BrokerError::TransactionAborted(Box::new(
            BrokerError::StaleReceipt
        )))
    );
    // A publish that would overflow refuses it too, acks and the other publish included.
    assert_eq!(
        b.commit(t(5), vec![r[1]], vec![log("l2"), out("o2")]),
        Err(BrokerError::TransactionAborted(Box::new(
            BrokerError::Overflow {
                destination: "out".into(),
                length: 1,
                bytes: 2
            }
        )))
    );
    let empty = b.commit(t(6), vec![], vec![]);
    assert!(
        matches!(&empty, Err(BrokerError::TransactionAborted(e))
            if matches!(**e, BrokerError::InvalidArgument { .. })),
        "{empty:?}"
    );
    assert_eq!(b.take_events(), vec![]);
    assert_eq!(b.stats(t(6), "in").unwrap().groups[0].in_flight, 2);
    assert_eq!(b.stats(t(6), "out").unwrap().depth, 1);
    assert_eq!(b.stats(t(6), "log").unwrap().depth, 0);
    b.ack(t(7), r[1]).unwrap();
}

#[test]
fn a_transaction_sees_exactly_the_dedup_ids_its_publishes_will_see() {
    let mut b = broker(vec![
        DestinationConfig::queue("in"),
        DestinationConfig {
            max_length: 2,
            max_dedup_ids: 1,
            overflow: OverflowPolicy::RejectPublish,
            ..DestinationConfig::queue("out")
        },
        DestinationConfig {
            max_length: 3,
            max_dedup_ids: 2,
            overflow: OverflowPolicy::RejectPublish,
            ..DestinationConfig::queue("out2")
        },
    ]);
    publish(&mut b, 1, "in", "i1");
    publish(&mut b, 1, "in", "i2");
    let leased = receive(&mut b, 1, "in", None);
    let (r, r2) = (leased[0].receipt.unwrap(), leased[1].receipt.unwrap());

    // With max_dedup_ids 1, publishing "b" after "a" means "a" is forgotten: a publish with id
    // "a" is stored again. The transaction's capacity check must see the same and refuse the
    // publish into the full queue before anything is applied.
    b.publish(t(2), "out", PublishRequest::new("a").with_dedup_id("a"))
        .unwrap();
    b.publish(t(3), "out", PublishRequest::new("b").with_dedup_id("b"))
        .unwrap();

    let again = (
        "out".to_owned(),
        PublishRequest::new("a").with_dedup_id("a"),
    );
    let got = b.commit(t(4), vec![r], vec![again]);
    assert!(
        matches!(&got, Err(BrokerError::TransactionAborted(e))
            if matches!(**e, BrokerError::Overflow { .. })),
        "{got:?}"
    );
    assert_eq!(b.stats(t(4), "in").unwrap().groups[0].in_flight, 2);
    b.ack(t(5), r).unwrap();

    // A transaction's own new ids do not push out ids it counted as duplicates: "c" is new and
    // "a" repeats the first confirm, so one place in "out2" is enough.
    let a = b
        .publish(t(6), "out2", PublishRequest::new("a").with_dedup_id("a"))
        .unwrap();
    b.publish(t(6), "out2", PublishRequest::new("b").with_dedup_id("b"))
        .unwrap();
    let req = |id: &str| {
        (
            "out2".to_owned(),
            PublishRequest::new("x").with_dedup_id(id),
        )
    };
    let confirms = b.commit(t(7), vec![r2], vec![req("c"), req("a")]).unwrap();
    assert_eq!((confirms[0].duplicate, confirms[0].offset), (false, 2));
    assert_eq!(
        confirms[1],
        Confirm {
            duplicate: true,
            ..a
        }
    );
    assert_eq!(b.stats(t(7), "out2").unwrap().depth, 3);
    assert_eq!(b.stats(t(7), "in").unwrap().groups[0].in_flight, 0);
}

#[test]
fn a_transaction_counts_repeated_dedup_ids_as_stored_when_dedup_is_off() {
    // With a dedup window of 0 every publish is stored, so two publishes with one dedup id
    // need two places; the second overflows and the transaction must be refused before its ack.
    let mut b = broker(vec![
        DestinationConfig::queue("in"),
        DestinationConfig {
            max_length: 1,
            dedup_window_ms: 0,
            overflow: OverflowPolicy::RejectPublish,
            ..DestinationConfig::queue("out")
        },
    ]);
    publish(&mut b, 1, "in", "i1");
    let r = receive(&mut b, 1, "in", None)[0].receipt.unwrap();
    let z = || {
        (
            "out".to_owned(),
            PublishRequest::new("z").with_dedup_id("z"),
        )
    };
    let got = b.commit(t(2), vec![r], vec![z(), z()]);
    assert_eq!(
        got,
        Err(BrokerError::TransactionAborted(Box::new(
            BrokerError::Overflow {
                destination: "out".into(),
                length: 0,
                bytes: 0
            }
        )))
    );
    assert_eq!(b.stats(t(2), "in").unwrap().groups[0].in_flight, 1);
    assert_eq!(b.stats(t(2), "out").unwrap().depth, 0);
    b.ack(t(3), r).unwrap();
}

#[test]
fn statistics_are_exact_in_a_scripted_scenario() {
    let mut b = broker(vec![
        DestinationConfig {
            fifo_groups: true,
            max_deliveries: Some(1),
            dead_letter: Some("dlq".into()),
            ..DestinationConfig::queue("q")
        },
        DestinationConfig::queue("dlq"),
    ]);
    let keyed = |p: &'static str, k: &str| PublishRequest::new(p).with_key(k);
    let a1 = b.publish(t(10), "q", keyed("a1", "a")).unwrap().message_id;
    b.publish(t(20), "q", keyed("a2", "a")).unwrap();
    b.publish(t(30), "q", keyed("b1", "b").with_delay_ms(50))
        .unwrap();
    let c1 = b.publish(t(40), "q", keyed("c1", "c")).unwrap().message_id;

    let stats = |b: &mut Broker, ms: u64| {
        let s = b.stats(t(ms), "q").unwrap();
        let g = &s.groups[0];
        (
            s.depth,
            g.ready,
            g.delayed,
            g.in_flight,
            g.blocked,
            s.dead_letter_depth,
            g.oldest_age_ms,
        )
    };
    // a2 waits behind a1, b1 is delayed until 80.
    assert_eq!(stats(&mut b, 45), (4, 2, 1, 0, 1, Some(0), Some(35)));

    let got = receive(&mut b, 50, "q", None);
    assert_eq!(ids(&got), vec![a1, c1]);
    assert_eq!(stats(&mut b, 50), (2, 0, 1, 2, 1, Some(0), Some(40)));

    // c1 is out of deliveries: a nack dead-letters it.
    b.nack(t(60), got[1].receipt.unwrap(), None).unwrap();
    assert_eq!(stats(&mut b, 60), (2, 0, 1, 1, 1, Some(1), Some(50)));

    // b1's delay ends; acking a1 releases a2, and the oldest unconsumed message is now a2.
    assert_eq!(stats(&mut b, 80), (2, 1, 0, 1, 1, Some(1), Some(70)));
    b.ack(t(90), got[0].receipt.unwrap()).unwrap();
    assert_eq!(stats(&mut b, 90), (2, 2, 0, 0, 0, Some(1), Some(70)));
    assert_eq!(b.stats(t(90), "dlq").unwrap().depth, 1);
}
