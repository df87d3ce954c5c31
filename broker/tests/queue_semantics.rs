//! Queue semantics of the reference broker, one focused test per rule: competing consumers,
//! leases and visibility timeouts, receipts, nack and retry backoff, the per-consumer in-flight
//! limit, ack modes, refused commands and the event stream. Dead letters, FIFO groups and
//! partitions are in `queue_ordering_and_dead_letters.rs`.
//!
//! Every test asserts exact values (ids, counts, times, error variants), so that removing the
//! behaviour it covers makes it fail.

mod common;

use common::{broker_with, counts, ids, queue, receipt, t};
use mqsim_broker::*;

/// A broker that logs every change (`Durability::Always`): `snapshot` counts the records in
/// storage to check that a refused command changed nothing, which needs a log to count.
fn broker(destinations: Vec<DestinationConfig>) -> Broker {
    broker_with(Durability::Always, destinations)
}

fn publish(b: &mut Broker, now: u64, q: &str, payload: &'static str) -> MessageId {
    common::publish(b, now, q, payload).message_id
}

/// An explicit-ack receive with the destination's own visibility timeout.
fn recv(b: &mut Broker, now: u64, q: &str, consumer: u64, max: u32) -> Vec<Delivery> {
    b.receive(
        t(now),
        q,
        None,
        ConsumerId(consumer),
        max,
        AckMode::Explicit,
    )
    .unwrap()
}

/// An explicit-ack receive that asks for its own visibility timeout.
fn recv_for(
    b: &mut Broker,
    now: u64,
    q: &str,
    consumer: u64,
    max: u32,
    visibility_timeout_ms: Option<u64>,
) -> Result<Vec<Delivery>> {
    let command = Command::Receive {
        destination: q.to_owned(),
        group: None,
        consumer: ConsumerId(consumer),
        max_messages: max,
        visibility_timeout_ms,
        ack_mode: AckMode::Explicit,
    };
    match b.apply(t(now), command)? {
        Reply::Delivered { deliveries } => Ok(deliveries),
        other => panic!("a receive answered {other:?}"),
    }
}

/// What a refused command must leave as it was: the destination's statistics and the number
/// of records in storage (a change would have been logged).
fn snapshot(b: &mut Broker, now: u64, q: &str) -> (DestinationStats, usize) {
    let stats = b.stats(t(now), q).unwrap();
    let records = b.storage().synced_len() + b.storage().unsynced_len();
    (stats, records)
}

fn invalid_argument(what: &str) -> impl Fn(&BrokerError) -> bool + '_ {
    move |e| matches!(e, BrokerError::InvalidArgument { what: w, .. } if w == what)
}

#[test]
fn competing_consumers_never_share_a_live_lease_and_acked_messages_never_return() {
    let mut b = broker(vec![queue("q")]);
    let m0 = publish(&mut b, 1, "q", "m0");
    let m1 = publish(&mut b, 1, "q", "m1");
    let m2 = publish(&mut b, 1, "q", "m2");

    // Consumer 1 leases two messages; consumer 2 gets only what is left, and then nothing.
    let c1 = recv(&mut b, 2, "q", 1, 2);
    assert_eq!(ids(&c1), vec![m0, m1]);
    let c2 = recv(&mut b, 3, "q", 2, 10);
    assert_eq!(ids(&c2), vec![m2]);
    assert!(recv(&mut b, 4, "q", 2, 10).is_empty());
    assert!(recv(&mut b, 4, "q", 1, 10).is_empty());

    b.ack(t(5), receipt(&c1[0])).unwrap();
    b.ack(t(5), receipt(&c2[0])).unwrap();

    // Consumer 1's lease on m1 ends at 102: only then may consumer 2 have it. The acked m0 and
    // m2 do not come back with it.
    assert!(recv(&mut b, 101, "q", 2, 10).is_empty());
    let again = recv(&mut b, 102, "q", 2, 10);
    assert_eq!(ids(&again), vec![m1]);
    assert_eq!(counts(&again), vec![2]);
    b.ack(t(103), receipt(&again[0])).unwrap();

    assert!(recv(&mut b, 10_000, "q", 1, 10).is_empty());
    let s = b.stats(t(10_000), "q").unwrap();
    assert_eq!((s.depth, s.groups[0].in_flight), (0, 0));
}

#[test]
fn a_lease_lasts_the_default_visibility_timeout_and_redelivery_happens_exactly_at_its_end() {
    let mut b = broker(vec![queue("q")]);
    let m = publish(&mut b, 0, "q", "m");

    let first = recv(&mut b, 10, "q", 1, 1);
    assert_eq!((ids(&first), counts(&first)), (vec![m], vec![1]));
    // The lease taken at 10 ends at 110 (the configured 100 ms), not a millisecond earlier.
    assert!(recv(&mut b, 109, "q", 2, 1).is_empty());
    assert_eq!(b.stats(t(109), "q").unwrap().groups[0].in_flight, 1);
    let second = recv(&mut b, 110, "q", 2, 1);
    assert_eq!((ids(&second), counts(&second)), (vec![m], vec![2]));

    // Each delivery counts: the third comes when the second lease ends, at 210.
    assert!(recv(&mut b, 209, "q", 1, 1).is_empty());
    let third = recv(&mut b, 210, "q", 1, 1);
    assert_eq!((ids(&third), counts(&third)), (vec![m], vec![3]));

    let expiries: Vec<Event> = b
        .take_events()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::LeaseEnded { .. }))
        .collect();
    let ended = |at: u64| Event {
        at: t(at),
        kind: EventKind::LeaseEnded {
            message_id: m,
            at: first[0].receipt.map(slot_of).unwrap(),
            group: GroupId(0),
            why: LeaseEnd::Expired,
        },
    };
    assert_eq!(expiries, vec![ended(110), ended(210)]);
}

fn slot_of(r: Receipt) -> Slot {
    Slot {
        destination: r.destination,
        partition: r.partition,
        offset: r.offset,
    }
}

#[test]
fn a_receive_can_ask_for_its_own_visibility_timeout() {
    let mut b = broker(vec![queue("q")]);
    let m = publish(&mut b, 0, "q", "m");

    let first = recv_for(&mut b, 10, "q", 1, 1, Some(500)).unwrap();
    assert_eq!(ids(&first), vec![m]);
    // Well past the default 100 ms, the 500 ms lease still holds; it ends at exactly 510.
    assert!(recv(&mut b, 110, "q", 2, 1).is_empty());
    assert!(recv(&mut b, 509, "q", 2, 1).is_empty());
    let second = recv_for(&mut b, 510, "q", 2, 1, Some(1)).unwrap();
    assert_eq!((ids(&second), counts(&second)), (vec![m], vec![2]));
    // A 1 ms lease is the shortest there is.
    let third = recv(&mut b, 511, "q", 1, 1);
    assert_eq!((ids(&third), counts(&third)), (vec![m], vec![3]));
}

/// Tries every use of a receipt that should be stale and checks that each is refused with
/// `StaleReceipt` and leaves the queue, the log and the event stream as they were.
fn assert_stale(b: &mut Broker, now: u64, r: Receipt) {
    let before = snapshot(b, now, "q");
    b.clear_events();
    assert_eq!(b.ack(t(now), r), Err(BrokerError::StaleReceipt));
    assert_eq!(b.nack(t(now), r, None), Err(BrokerError::StaleReceipt));
    assert_eq!(b.nack(t(now), r, Some(50)), Err(BrokerError::StaleReceipt));
    assert_eq!(
        b.extend_visibility(t(now), r, 1000),
        Err(BrokerError::StaleReceipt)
    );
    assert_eq!(snapshot(b, now, "q"), before);
    assert_eq!(b.take_events(), vec![]);
}

#[test]
fn a_receipt_is_stale_after_ack_nack_expiry_redelivery_and_forgery() {
    let mut b = broker(vec![queue("q")]);
    let m = publish(&mut b, 0, "q", "m");

    // After a nack the message is ready again, and the nacked receipt is dead.
    let d1 = recv(&mut b, 1, "q", 1, 1);
    b.nack(t(2), receipt(&d1[0]), None).unwrap();
    assert_stale(&mut b, 3, receipt(&d1[0]));
    assert_eq!(b.stats(t(3), "q").unwrap().groups[0].ready, 1);

    // After the lease runs out (at 104), its receipt is dead at that very millisecond, and
    // stays dead once a redelivery is in flight on the same offset with a new receipt.
    let d2 = recv(&mut b, 4, "q", 1, 1);
    assert_stale(&mut b, 104, receipt(&d2[0]));
    let d3 = recv(&mut b, 105, "q", 2, 1);
    assert_eq!((ids(&d3), counts(&d3)), (vec![m], vec![3]));
    assert_eq!(receipt(&d3[0]).offset, receipt(&d2[0]).offset);
    assert_stale(&mut b, 106, receipt(&d2[0]));
    assert_stale(&mut b, 106, receipt(&d1[0]));

    // Forged receipts: each differs from the live one in one field.
    let live = receipt(&d3[0]);
    let forgeries: [fn(&mut Receipt); 6] = [
        |r| r.token += 1,
        |r| r.epoch += 1,
        |r| r.offset += 1,
        |r| r.partition = 1,
        |r| r.group = GroupId(1),
        |r| r.destination = DestId(7),
    ];
    for forge in forgeries {
        let mut forged = live;
        forge(&mut forged);
        assert_stale(&mut b, 107, forged);
    }
    assert_eq!(b.stats(t(107), "q").unwrap().groups[0].in_flight, 1);

    // After an ack the receipt is dead, and the message is gone.
    b.ack(t(108), live).unwrap();
    assert_stale(&mut b, 109, live);
    assert_eq!(b.stats(t(109), "q").unwrap().depth, 0);
}

#[test]
fn a_receipt_from_before_a_restart_is_stale() {
    // Syncing once a second lets the second part lose a delivery in a crash.
    let cfg = BrokerConfig::new(
        Durability::Interval {
            sync_interval_ms: 1000,
        },
        vec![queue("q")],
    );
    let restart = |b: Broker, now: u64| {
        let mut disk = b.into_storage();
        disk.crash();
        Broker::open(cfg.clone(), disk, t(now)).unwrap()
    };
    let mut b = Broker::open(cfg.clone(), MemDisk::new(), t(0)).unwrap();
    let m = publish(&mut b, 1000, "q", "m");
    let synced = recv(&mut b, 2000, "q", 1, 1);

    // The synced lease would last until 2100; the restart at 2050 ends it as a failed delivery.
    let mut b = restart(b, 2050);
    assert_eq!(b.epoch(), 2);
    assert_stale(&mut b, 2050, receipt(&synced[0]));
    let lost = recv(&mut b, 2051, "q", 1, 1);
    assert_eq!((ids(&lost), counts(&lost)), (vec![m], vec![2]));

    // That delivery was never synced, so after the next crash the broker hands out the same
    // delivery again, with the same token on the same offset: only the epoch tells the
    // receipts apart, and the old one must not settle the new lease.
    let mut b = restart(b, 2100);
    let again = recv(&mut b, 2101, "q", 1, 1);
    assert_eq!((ids(&again), counts(&again)), (vec![m], vec![2]));
    let (old, new) = (receipt(&lost[0]), receipt(&again[0]));
    assert_eq!((old.epoch, new.epoch), (2, 3));
    assert_eq!(Receipt { epoch: 3, ..old }, new);
    assert_stale(&mut b, 2102, old);
    b.ack(t(2103), new).unwrap();
}

#[test]
fn extend_visibility_moves_the_deadline_and_refuses_invalid_timeouts() {
    let mut b = broker(vec![queue("q")]);
    let m = publish(&mut b, 0, "q", "m");
    let d = recv(&mut b, 0, "q", 1, 1);
    let r = receipt(&d[0]);

    // Timeouts of 0 and of more than 12 hours are refused and leave the lease as it was.
    let before = snapshot(&mut b, 10, "q");
    let twelve_hours = 12 * 3600 * 1000;
    for bad in [0, twelve_hours + 1] {
        let err = b.extend_visibility(t(10), r, bad).unwrap_err();
        assert!(invalid_argument("visibility_timeout_ms")(&err), "{err:?}");
    }
    assert_eq!(snapshot(&mut b, 10, "q"), before);

    // At 50 the lease (due to end at 100) is extended by 200 ms, to 250.
    b.clear_events();
    b.extend_visibility(t(50), r, 200).unwrap();
    let slot = slot_of(r);
    assert_eq!(
        b.take_events(),
        vec![Event {
            at: t(50),
            kind: EventKind::LeaseExtended {
                message_id: m,
                at: slot,
                group: GroupId(0),
                until: t(250),
            },
        }]
    );
    assert!(recv(&mut b, 100, "q", 2, 1).is_empty());
    assert!(recv(&mut b, 249, "q", 2, 1).is_empty());
    let again = recv(&mut b, 250, "q", 2, 1);
    assert_eq!((ids(&again), counts(&again)), (vec![m], vec![2]));

    // The longest allowed extension, exactly 12 hours, is accepted.
    b.extend_visibility(t(251), receipt(&again[0]), twelve_hours)
        .unwrap();
    assert!(recv(&mut b, 251 + twelve_hours - 1, "q", 1, 1).is_empty());
    assert_eq!(ids(&recv(&mut b, 251 + twelve_hours, "q", 1, 1)), vec![m]);
}

#[test]
fn a_nack_with_a_requeue_delay_hides_the_message_until_then() {
    let mut b = broker(vec![DestinationConfig {
        retry: RetryPolicy {
            initial_backoff_ms: 50,
            multiplier: 2.0,
            max_backoff_ms: 50,
        },
        ..queue("q")
    }]);
    let m = publish(&mut b, 0, "q", "m");
    let d = recv(&mut b, 10, "q", 1, 1);
    b.nack(t(20), receipt(&d[0]), Some(300)).unwrap();

    // The nack's own delay (300 ms, until 320) overrides the 50 ms backoff.
    assert!(recv(&mut b, 70, "q", 1, 1).is_empty());
    assert!(recv(&mut b, 319, "q", 1, 1).is_empty());
    let s = b.stats(t(319), "q").unwrap();
    assert_eq!((s.groups[0].delayed, s.groups[0].ready), (1, 0));
    let again = recv(&mut b, 320, "q", 1, 1);
    assert_eq!((ids(&again), counts(&again)), (vec![m], vec![2]));

    // A requeue delay of zero makes it ready at once, backoff or not.
    b.nack(t(321), receipt(&again[0]), Some(0)).unwrap();
    assert_eq!(counts(&recv(&mut b, 321, "q", 1, 1)), vec![3]);
}

#[test]
fn failed_deliveries_back_off_exponentially_up_to_the_cap() {
    // Backoffs after failures 1, 2, 3, 4, 5: 100, 300, 900, then 2700 and 8100 capped to 1000.
    let mut b = broker(vec![DestinationConfig {
        visibility_timeout_ms: 50,
        retry: RetryPolicy {
            initial_backoff_ms: 100,
            multiplier: 3.0,
            max_backoff_ms: 1000,
        },
        ..DestinationConfig::queue("q")
    }]);
    let m = publish(&mut b, 0, "q", "m");

    // Failures alternate between a nack right at delivery and the 50 ms lease running out.
    // Each next delivery is due exactly the expected backoff after the failure, not earlier.
    let backoffs = [100, 300, 900, 1000, 1000];
    let mut deliver_at = 0;
    for (n, backoff) in backoffs.into_iter().enumerate() {
        let d = recv(&mut b, deliver_at, "q", 1, 1);
        assert_eq!(ids(&d), vec![m], "delivery {} at {deliver_at}", n + 1);
        assert_eq!(counts(&d), vec![n as u32 + 1]);
        let failed_at = if n % 2 == 0 {
            b.nack(t(deliver_at), receipt(&d[0]), None).unwrap();
            deliver_at
        } else {
            deliver_at + 50
        };
        deliver_at = failed_at + backoff;
        assert!(
            recv(&mut b, deliver_at - 1, "q", 1, 1).is_empty(),
            "delivery {} came before {deliver_at}",
            n + 2
        );
    }
    assert_eq!(deliver_at, 3400);
    assert_eq!(counts(&recv(&mut b, deliver_at, "q", 1, 1)), vec![6]);
}

#[test]
fn the_in_flight_limit_is_a_window_per_consumer() {
    let mut b = broker(vec![DestinationConfig {
        max_in_flight_per_consumer: 3,
        ..queue("q")
    }]);
    let all: Vec<MessageId> = (0..10).map(|_| publish(&mut b, 0, "q", "m")).collect();

    // Consumer 1 takes 2, then only the 1 left in its window of 3 although it asks for 10.
    assert_eq!(ids(&recv(&mut b, 1, "q", 1, 2)), all[0..2]);
    let third = recv(&mut b, 1, "q", 1, 10);
    assert_eq!(ids(&third), all[2..3]);

    // At the limit the receive is refused and takes nothing.
    let before = snapshot(&mut b, 2, "q");
    assert_eq!(
        b.receive(t(2), "q", None, ConsumerId(1), 10, AckMode::Explicit),
        Err(BrokerError::InFlightLimit { limit: 3 })
    );
    assert_eq!(snapshot(&mut b, 2, "q"), before);

    // Consumer 2 has a window of its own.
    assert_eq!(ids(&recv(&mut b, 3, "q", 2, 10)), all[3..6]);

    // An ack frees one place in consumer 1's window, and only one.
    b.ack(t(4), receipt(&third[0])).unwrap();
    assert_eq!(ids(&recv(&mut b, 5, "q", 1, 10)), all[6..7]);
    assert_eq!(
        b.receive(t(5), "q", None, ConsumerId(1), 1, AckMode::Explicit),
        Err(BrokerError::InFlightLimit { limit: 3 })
    );
}

#[test]
fn auto_ack_completes_at_delivery_and_explicit_ack_leases() {
    let mut b = broker(vec![queue("q")]);
    let auto = publish(&mut b, 0, "q", "auto");
    let explicit = publish(&mut b, 0, "q", "explicit");

    let d = b
        .receive(t(1), "q", None, ConsumerId(1), 1, AckMode::Auto)
        .unwrap();
    assert_eq!((ids(&d), counts(&d)), (vec![auto], vec![1]));
    assert_eq!(d[0].receipt, None);
    let s = b.stats(t(1), "q").unwrap();
    assert_eq!((s.depth, s.groups[0].in_flight), (1, 0));

    let e = recv(&mut b, 2, "q", 1, 1);
    assert_eq!(ids(&e), vec![explicit]);
    assert!(e[0].receipt.is_some());
    assert_eq!(b.stats(t(2), "q").unwrap().groups[0].in_flight, 1);

    // Long after every lease would have ended, only the explicit delivery comes back.
    let later = recv(&mut b, 10_000, "q", 1, 10);
    assert_eq!((ids(&later), counts(&later)), (vec![explicit], vec![2]));
    b.ack(t(10_001), receipt(&later[0])).unwrap();
    assert!(recv(&mut b, 20_000, "q", 1, 10).is_empty());

    let auto_events: Vec<EventKind> = b
        .take_events()
        .into_iter()
        .map(|e| e.kind)
        .filter(|k| match k {
            EventKind::Delivered { message_id, .. }
            | EventKind::Acked { message_id, .. }
            | EventKind::LeaseEnded { message_id, .. } => *message_id == auto,
            _ => false,
        })
        .collect();
    assert_eq!(
        auto_events,
        vec![EventKind::Delivered {
            message_id: auto,
            at: Slot {
                destination: DestId(0),
                partition: 0,
                offset: 0,
            },
            group: GroupId(0),
            consumer: ConsumerId(1),
            delivery_count: 1,
            auto_ack: true,
        }]
    );
}

#[test]
fn every_invalid_command_is_refused_with_a_typed_error_and_changes_nothing() {
    let mut b = broker(vec![DestinationConfig {
        max_payload_bytes: 16,
        ..queue("q")
    }]);
    // One leased message and one ready, so that a refused command that touched either would
    // show in the statistics.
    let first = b.publish(t(1), "q", PublishRequest::new("leased")).unwrap();
    publish(&mut b, 1, "q", "ready");
    let leased = recv(&mut b, 5, "q", 1, 1);
    let before = snapshot(&mut b, 5, "q");
    b.clear_events();

    let receive_with =
        |q: &str, group: Option<&str>, max: u32, vis: Option<u64>| Command::Receive {
            destination: q.to_owned(),
            group: group.map(str::to_owned),
            consumer: ConsumerId(2),
            max_messages: max,
            visibility_timeout_ms: vis,
            ack_mode: AckMode::Explicit,
        };
    let receive = |q: &str, group: Option<&str>, max: u32| receive_with(q, group, max, None);
    let receive_for = |vis: u64| receive_with("q", None, 1, Some(vis));
    let publish_cmd = |request: PublishRequest| Command::Publish {
        destination: "q".to_owned(),
        request,
    };
    let twelve_hours = 12 * 3600 * 1000;
    let day = 24 * 3600 * 1000;
    type Check = Box<dyn Fn(&BrokerError) -> bool>;
    let is = |expected: BrokerError| -> Check { Box::new(move |e| *e == expected) };
    let arg = |what: &'static str| -> Check { Box::new(invalid_argument(what)) };
    // Each case: the time it is applied at, the command, and the error it must get.
    let cases: Vec<(u64, Command, Check)> = vec![
        (
            5,
            Command::Publish {
                destination: "nope".into(),
                request: PublishRequest::new("x"),
            },
            is(BrokerError::UnknownDestination("nope".into())),
        ),
        (
            5,
            receive("nope", None, 1),
            is(BrokerError::UnknownDestination("nope".into())),
        ),
        (
            5,
            receive("q", Some("g"), 1),
            is(BrokerError::GroupNotAllowed("q".into())),
        ),
        (5, receive("q", None, 0), arg("max_messages")),
        (5, receive("q", None, 1025), arg("max_messages")),
        (5, receive_for(0), arg("visibility_timeout_ms")),
        (
            5,
            receive_for(twelve_hours + 1),
            arg("visibility_timeout_ms"),
        ),
        (
            5,
            publish_cmd(PublishRequest::new("seventeen bytes!!")),
            is(BrokerError::PayloadTooLarge { size: 17, max: 16 }),
        ),
        (
            4,
            publish_cmd(PublishRequest::new("x")),
            is(BrokerError::TimeWentBackwards {
                now: t(4),
                last: t(5),
            }),
        ),
        (
            5,
            publish_cmd(PublishRequest::new("x").with_key("k".repeat(1025))),
            arg("key"),
        ),
        (
            5,
            publish_cmd(PublishRequest::new("x").with_dedup_id("")),
            arg("dedup_id"),
        ),
        (
            5,
            publish_cmd(PublishRequest::new("x").with_dedup_id("d".repeat(129))),
            arg("dedup_id"),
        ),
        (
            5,
            publish_cmd(PublishRequest::new("x").with_ttl_ms(0)),
            arg("ttl_ms"),
        ),
        (
            5,
            publish_cmd(PublishRequest::new("x").with_delay_ms(day + 1)),
            arg("delay_ms"),
        ),
        (
            5,
            Command::Nack {
                receipt: receipt(&leased[0]),
                requeue_delay_ms: Some(day + 1),
            },
            arg("requeue_delay_ms"),
        ),
        (
            5,
            Command::Redrive {
                destination: "nope".into(),
                max_messages: 1,
            },
            is(BrokerError::UnknownDestination("nope".into())),
        ),
    ];
    for (now, command, check) in cases {
        let err = b.apply(t(now), command.clone()).unwrap_err();
        assert!(check(&err), "{command:?} gave {err:?}");
        assert_eq!(
            snapshot(&mut b, 5, "q"),
            before,
            "{command:?} changed state"
        );
        assert_eq!(b.take_events(), vec![], "{command:?} reported events");
    }

    // The limits themselves are accepted: a 1024-byte key and a 128-byte dedup id.
    let ok = PublishRequest::new("sixteen bytes!!!")
        .with_key("k".repeat(1024))
        .with_dedup_id("d".repeat(128));
    let c = b.publish(t(5), "q", ok).unwrap();
    // No refused publish used up an id or an offset, and the lease is still live.
    assert_eq!(c.offset, 2);
    assert_eq!(c.message_id, MessageId(first.message_id.0 + 2));
    b.ack(t(6), receipt(&leased[0])).unwrap();
}

#[test]
fn a_simple_flow_reports_published_delivered_and_acked() {
    let mut b = broker(vec![queue("other"), queue("q")]);
    b.clear_events();
    let c = b.publish(t(1), "q", PublishRequest::new("m")).unwrap();
    let d = recv(&mut b, 2, "q", 7, 1);
    b.ack(t(3), receipt(&d[0])).unwrap();

    let at = Slot {
        destination: DestId(1),
        partition: 0,
        offset: 0,
    };
    assert_eq!((c.partition, c.offset, c.duplicate), (0, 0, false));
    assert_eq!(d[0].message_id, c.message_id);
    assert_eq!(slot_of(receipt(&d[0])), at);
    let id = c.message_id;
    assert_eq!(
        b.take_events(),
        vec![
            Event {
                at: t(1),
                kind: EventKind::Published {
                    message_id: id,
                    at,
                    duplicate: false,
                },
            },
            Event {
                at: t(2),
                kind: EventKind::Delivered {
                    message_id: id,
                    at,
                    group: GroupId(0),
                    consumer: ConsumerId(7),
                    delivery_count: 1,
                    auto_ack: false,
                },
            },
            Event {
                at: t(3),
                kind: EventKind::Acked {
                    message_id: id,
                    at,
                    group: GroupId(0),
                },
            },
        ]
    );
}
