//! Queue semantics of the reference broker, continued: dead letters and redrive, FIFO message
//! groups, and partitions. Leases, receipts, retries and refused commands are in
//! `queue_semantics.rs`.
//!
//! Every test asserts exact values (ids, counts, times, offsets, events), so that removing the
//! behaviour it covers makes it fail.

mod common;

use bytes::Bytes;
use common::{broker_with, ids, queue, receipt, slot, t};
use mqsim_broker::*;

/// Queue "q" (id 0) dead-lettering into "dlq" (id 1) after `max` deliveries.
fn with_dlq(max: u32, dlq: DestinationConfig) -> Broker {
    broker(vec![
        DestinationConfig {
            max_deliveries: Some(max),
            dead_letter: Some("dlq".into()),
            ..queue("q")
        },
        dlq,
    ])
}

fn broker(destinations: Vec<DestinationConfig>) -> Broker {
    broker_with(Durability::Always, destinations)
}

fn publish(b: &mut Broker, now: u64, q: &str, request: PublishRequest) -> Confirm {
    b.publish(t(now), q, request).unwrap()
}

fn keyed(key: &str) -> PublishRequest {
    PublishRequest::new(format!("payload of {key}")).with_key(key)
}

fn recv(b: &mut Broker, now: u64, q: &str, max: u32) -> Vec<Delivery> {
    b.receive(t(now), q, None, ConsumerId(1), max, AckMode::Explicit)
        .unwrap()
}

/// Messages held by "q" (leased or not) and messages waiting in its dead-letter queue.
fn depths(b: &mut Broker, now: u64) -> (u64, u64) {
    let q = b.stats(t(now), "q").unwrap();
    (q.retained, q.dead_letter_depth.unwrap())
}

/// The events that concern one message, in order.
fn events_of(b: &mut Broker, id: MessageId) -> Vec<Event> {
    b.take_events()
        .into_iter()
        .filter(|e| match &e.kind {
            EventKind::Published { message_id, .. }
            | EventKind::Delivered { message_id, .. }
            | EventKind::Acked { message_id, .. }
            | EventKind::Nacked { message_id, .. }
            | EventKind::LeaseEnded { message_id, .. }
            | EventKind::DeadLettered { message_id, .. }
            | EventKind::DeadLetterRefused { message_id, .. }
            | EventKind::Dropped { message_id, .. }
            | EventKind::Redriven { message_id, .. } => *message_id == id,
            _ => false,
        })
        .collect()
}

fn dead_lettered(at: u64, id: MessageId, from: Slot, to: Slot, count: u32, key: &str) -> Event {
    Event {
        at: t(at),
        kind: EventKind::DeadLettered {
            message_id: id,
            at: from,
            group: GroupId(0),
            to,
            delivery_count: count,
            key: Some(key.to_owned()),
            payload: Bytes::from(format!("payload of {key}")),
        },
    }
}

#[test]
fn a_message_is_dead_lettered_after_exactly_max_deliveries_failures_of_either_kind() {
    let mut b = with_dlq(3, queue("dlq"));

    // First message: nack, lease expiry, nack.
    let a = publish(&mut b, 0, "q", keyed("a")).message_id;
    let d = recv(&mut b, 1, "q", 1);
    b.nack(t(2), receipt(&d[0]), None).unwrap();
    recv(&mut b, 3, "q", 1);
    // Two failures (the lease of the second delivery ends at 103) leave it in the queue.
    assert_eq!(depths(&mut b, 103), (1, 0));
    let d = recv(&mut b, 104, "q", 1);
    assert_eq!(d[0].delivery_count, 3);
    b.clear_events();
    b.nack(t(105), receipt(&d[0]), None).unwrap();
    assert_eq!(depths(&mut b, 105), (0, 1));
    let moved = events_of(&mut b, a);
    assert_eq!(moved.len(), 2, "{moved:?}");
    assert_eq!(
        moved[1],
        dead_lettered(105, a, slot(0, 0, 0), slot(1, 0, 0), 3, "a")
    );

    // Second message: lease expiry, nack, lease expiry; the last lease ends at 401.
    let c = publish(&mut b, 200, "q", keyed("c")).message_id;
    recv(&mut b, 200, "q", 1);
    let d = recv(&mut b, 300, "q", 1);
    b.nack(t(300), receipt(&d[0]), None).unwrap();
    recv(&mut b, 301, "q", 1);
    assert_eq!(depths(&mut b, 400), (1, 1));
    b.clear_events();
    assert_eq!(depths(&mut b, 401), (0, 2));
    let moved = events_of(&mut b, c);
    assert_eq!(moved.len(), 2, "{moved:?}");
    assert_eq!(
        moved[1],
        dead_lettered(401, c, slot(0, 0, 1), slot(1, 0, 1), 3, "c")
    );

    // The dead-letter queue holds the same messages under the same ids, delivered afresh.
    let dl = recv(&mut b, 402, "dlq", 10);
    assert_eq!(ids(&dl), vec![a, c]);
    assert_eq!((dl[0].delivery_count, dl[1].delivery_count), (1, 1));
    assert_eq!(dl[0].key.as_deref(), Some("a"));
    assert_eq!(dl[0].payload, "payload of a");
}

#[test]
fn an_acked_message_is_never_dead_lettered() {
    let mut b = with_dlq(2, queue("dlq"));
    let m = publish(&mut b, 0, "q", keyed("m")).message_id;
    let d = recv(&mut b, 1, "q", 1);
    b.nack(t(2), receipt(&d[0]), None).unwrap();
    // The last allowed delivery is acked: the message is complete, not dead.
    let d = recv(&mut b, 3, "q", 1);
    assert_eq!(d[0].delivery_count, 2);
    b.ack(t(4), receipt(&d[0])).unwrap();

    assert_eq!(depths(&mut b, 10_000), (0, 0));
    let kinds: Vec<EventKind> = events_of(&mut b, m).into_iter().map(|e| e.kind).collect();
    assert!(
        matches!(kinds.last(), Some(EventKind::Acked { .. })),
        "{kinds:?}"
    );
}

#[test]
fn without_a_dead_letter_queue_an_exhausted_message_is_dropped_and_reported() {
    let mut b = broker(vec![DestinationConfig {
        max_deliveries: Some(2),
        ..queue("q")
    }]);
    let m = publish(&mut b, 0, "q", keyed("m")).message_id;
    recv(&mut b, 0, "q", 1);
    // The first lease ends at 100, the second (and last allowed) at 200.
    assert_eq!(recv(&mut b, 100, "q", 1)[0].delivery_count, 2);
    let s = b.stats(t(199), "q").unwrap();
    assert_eq!((s.depth, s.groups[0].in_flight), (0, 1));
    b.clear_events();
    let s = b.stats(t(200), "q").unwrap();
    assert_eq!((s.depth, s.groups[0].in_flight, s.retained), (0, 0, 0));
    let gone = events_of(&mut b, m);
    assert_eq!(gone.len(), 2, "{gone:?}");
    assert_eq!(
        gone[1],
        Event {
            at: t(200),
            kind: EventKind::Dropped {
                message_id: m,
                at: slot(0, 0, 0),
                group: GroupId(0),
                reason: DropReason::MaxDeliveries,
                key: Some("m".into()),
                payload: Bytes::from("payload of m"),
            },
        }
    );
    assert!(recv(&mut b, 10_000, "q", 1).is_empty());
}

#[test]
fn a_full_dead_letter_queue_refuses_and_the_message_moves_once_there_is_room() {
    let mut b = with_dlq(
        1,
        DestinationConfig {
            max_length: 1,
            overflow: OverflowPolicy::RejectPublish,
            ..queue("dlq")
        },
    );
    publish(&mut b, 0, "dlq", keyed("filler"));
    let m = publish(&mut b, 0, "q", keyed("m")).message_id;
    let d = recv(&mut b, 1, "q", 1);
    b.nack(t(2), receipt(&d[0]), None).unwrap();

    // Refused at 2: the message stays in its queue, waiting rather than deliverable.
    let s = b.stats(t(2), "q").unwrap();
    assert_eq!(
        (s.depth, s.groups[0].delayed, s.dead_letter_depth),
        (1, 1, Some(1))
    );
    assert!(recv(&mut b, 500, "q", 10).is_empty());

    // The retry at 1002 finds the dead-letter queue still full; then its filler is consumed.
    let filler = recv(&mut b, 1500, "dlq", 1);
    b.ack(t(1500), receipt(&filler[0])).unwrap();
    assert_eq!(depths(&mut b, 2001), (1, 0));
    assert_eq!(depths(&mut b, 2002), (0, 1));

    let from = slot(0, 0, 0);
    let refused = |at: u64| Event {
        at: t(at),
        kind: EventKind::DeadLetterRefused {
            message_id: m,
            at: from,
            group: GroupId(0),
        },
    };
    let events = events_of(&mut b, m);
    assert_eq!(
        events[events.len() - 3..],
        [
            refused(2),
            refused(1002),
            dead_lettered(2002, m, from, slot(1, 0, 1), 1, "m"),
        ]
    );
    assert_eq!(ids(&recv(&mut b, 2003, "dlq", 10)), vec![m]);
}

#[test]
fn redrive_moves_dead_letters_back_with_a_fresh_delivery_count() {
    let mut b = with_dlq(1, queue("dlq"));
    let m0 = publish(&mut b, 0, "q", keyed("m0")).message_id;
    let m1 = publish(&mut b, 0, "q", keyed("m1")).message_id;
    for d in recv(&mut b, 1, "q", 10) {
        b.nack(t(2), receipt(&d), None).unwrap();
    }
    assert_eq!(depths(&mut b, 2), (0, 2));

    // A queue nothing dead-letters into cannot be redriven, and the refusal changes nothing.
    assert_eq!(
        b.redrive(t(3), "q", 10),
        Err(BrokerError::NotADeadLetterQueue("q".into()))
    );
    assert_eq!(depths(&mut b, 3), (0, 2));

    // Oldest first: one message, then the rest, then nothing.
    b.clear_events();
    assert_eq!(b.redrive(t(4), "dlq", 1), Ok(1));
    assert_eq!(
        events_of(&mut b, m0),
        vec![Event {
            at: t(4),
            kind: EventKind::Redriven {
                message_id: m0,
                from: slot(1, 0, 0),
                to: slot(0, 0, 2),
            },
        }]
    );
    assert_eq!(b.redrive(t(5), "dlq", 10), Ok(1));
    assert_eq!(b.redrive(t(6), "dlq", 10), Ok(0));
    assert_eq!(depths(&mut b, 6), (2, 0));

    // Back in the queue they count deliveries from one again, so each gets max_deliveries more.
    let again = recv(&mut b, 7, "q", 10);
    assert_eq!(ids(&again), vec![m0, m1]);
    assert_eq!((again[0].delivery_count, again[1].delivery_count), (1, 1));
    // m0 fails once more and is dead-lettered again; m1 stays leased in the queue.
    b.nack(t(8), receipt(&again[0]), None).unwrap();
    assert_eq!(depths(&mut b, 8), (1, 1));
}

/// A queue with FIFO message groups and 100 ms leases.
fn fifo() -> Broker {
    broker(vec![DestinationConfig {
        fifo_groups: true,
        ..queue("f")
    }])
}

#[test]
fn fifo_groups_deliver_in_publish_order_one_at_a_time_without_blocking_other_groups() {
    let mut b = fifo();
    let keys = ["a", "a", "b", "a", "b"];
    let id: Vec<MessageId> = keys
        .iter()
        .map(|k| publish(&mut b, 0, "f", keyed(k)).message_id)
        .collect();
    let (a1, a2, b1, a3, b2) = (id[0], id[1], id[2], id[3], id[4]);

    // One head per group is in flight; everything behind a head waits.
    let heads = recv(&mut b, 1, "f", 10);
    assert_eq!(ids(&heads), vec![a1, b1]);
    let s = b.stats(t(1), "f").unwrap().groups[0].clone();
    assert_eq!((s.ready, s.in_flight, s.blocked), (0, 2, 3));
    assert!(recv(&mut b, 1, "f", 10).is_empty());

    // Acking a group's head releases that group's next message and no other.
    b.ack(t(2), receipt(&heads[0])).unwrap();
    let next = recv(&mut b, 3, "f", 10);
    assert_eq!(ids(&next), vec![a2]);
    b.ack(t(4), receipt(&heads[1])).unwrap();
    b.ack(t(4), receipt(&next[0])).unwrap();
    let last = recv(&mut b, 5, "f", 10);
    assert_eq!(ids(&last), vec![a3, b2]);
}

#[test]
fn a_nacked_fifo_head_blocks_its_group_until_it_is_redelivered() {
    let mut b = fifo();
    let a1 = publish(&mut b, 0, "f", keyed("a")).message_id;
    let a2 = publish(&mut b, 0, "f", keyed("a")).message_id;
    let b1 = publish(&mut b, 0, "f", keyed("b")).message_id;
    let heads = recv(&mut b, 1, "f", 10);
    assert_eq!(ids(&heads), vec![a1, b1]);

    // a1 is given back for 100 ms: nothing of group "a" may be delivered until 102, while
    // group "b" carries on.
    b.nack(t(2), receipt(&heads[0]), Some(100)).unwrap();
    b.ack(t(3), receipt(&heads[1])).unwrap();
    let b2 = publish(&mut b, 4, "f", keyed("b")).message_id;
    let other = recv(&mut b, 5, "f", 10);
    assert_eq!(ids(&other), vec![b2]);
    assert!(recv(&mut b, 101, "f", 10).is_empty());

    let retried = recv(&mut b, 102, "f", 10);
    assert_eq!(ids(&retried), vec![a1]);
    assert_eq!(retried[0].delivery_count, 2);
    b.ack(t(103), receipt(&retried[0])).unwrap();
    assert_eq!(ids(&recv(&mut b, 104, "f", 10)), vec![a2]);
}

#[test]
fn a_fifo_queue_refuses_a_message_without_a_key() {
    let mut b = fifo();
    let before = b.stats(t(1), "f").unwrap();
    assert_eq!(
        b.publish(t(1), "f", PublishRequest::new("no key")),
        Err(BrokerError::KeyRequired("f".into()))
    );
    assert_eq!(b.stats(t(1), "f").unwrap(), before);
}

/// 64-bit FNV-1a, written out from its specification so that the test does not share the
/// broker's implementation.
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

fn partitioned(partitions: u32) -> Broker {
    broker(vec![DestinationConfig {
        partitions,
        ..queue("p")
    }])
}

#[test]
fn a_keyed_message_always_lands_in_the_fnv1a_partition_of_its_key() {
    assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c, "published test vector");
    let mut b = partitioned(4);
    let keys: Vec<String> = (0..16).map(|i| format!("key-{i}")).collect();
    let mut next_offset = [0u64; 4];
    // Each key twice, so that the second round shows a key sticks to its partition.
    for key in keys.iter().chain(&keys) {
        let expected = (fnv1a(key.as_bytes()) % 4) as u32;
        let c = publish(&mut b, 0, "p", keyed(key));
        assert_eq!(c.partition, expected, "key {key}");
        assert_eq!(c.offset, next_offset[expected as usize], "key {key}");
        next_offset[expected as usize] += 1;
    }
    // The keys spread over more than one partition, or the check above would prove little.
    assert!(next_offset.iter().filter(|&&n| n > 0).count() > 1);
}

#[test]
fn unkeyed_messages_take_the_partitions_in_turn() {
    let mut b = partitioned(3);
    let placed: Vec<(u32, u64)> = (0..7)
        .map(|_| publish(&mut b, 0, "p", PublishRequest::new("x")))
        .map(|c| (c.partition, c.offset))
        .collect();
    assert_eq!(
        placed,
        vec![(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1), (0, 2)]
    );
}

#[test]
fn each_partition_delivers_its_messages_in_publish_order() {
    let mut b = partitioned(3);
    let mut published: Vec<Vec<MessageId>> = vec![Vec::new(); 3];
    for i in 0..30 {
        let c = publish(&mut b, 0, "p", keyed(&format!("k{}", i % 7)));
        published[c.partition as usize].push(c.message_id);
    }
    // Small batches interleave the partitions; within each one, order must hold.
    let mut delivered: Vec<Vec<MessageId>> = vec![Vec::new(); 3];
    let mut now = 1;
    loop {
        let batch = recv(&mut b, now, "p", 4);
        if batch.is_empty() {
            break;
        }
        for d in &batch {
            assert_eq!(d.delivery_count, 1);
            delivered[d.partition as usize].push(d.message_id);
            b.ack(t(now), receipt(d)).unwrap();
        }
        now += 1;
    }
    assert_eq!(delivered, published);
    assert!(published.iter().all(|p| !p.is_empty()));
}
