//! Publish and ack batches: each element stands alone (a refused one fails without stopping
//! the others), both are bounded like a receive, and a logged batch replays exactly.

mod common;

use common::{broker_with, queue, receive, t};
use mqsim_broker::*;

fn long_key() -> String {
    "k".repeat(2000)
}

fn publish_batch(b: &mut Broker, ms: u64, requests: Vec<PublishRequest>) -> Result<Reply> {
    b.apply(
        t(ms),
        Command::PublishBatch {
            destination: "q".into(),
            requests,
        },
    )
}

fn ack_batch(b: &mut Broker, ms: u64, receipts: Vec<Receipt>) -> Result<Reply> {
    b.apply(t(ms), Command::AckBatch { receipts })
}

fn payloads(got: &[Delivery]) -> Vec<&[u8]> {
    got.iter().map(|d| d.payload.as_ref()).collect()
}

#[test]
fn a_refused_publish_fails_alone_and_the_rest_land_in_order() {
    let mut b = broker_with(Durability::None, vec![queue("q")]);
    let reply = publish_batch(
        &mut b,
        1,
        vec![
            PublishRequest::new("a"),
            PublishRequest::new("bad").with_key(long_key()),
            PublishRequest::new("b"),
        ],
    )
    .unwrap();
    let Reply::PublishedBatch { results } = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok() && results[2].is_ok());
    assert!(matches!(
        results[1],
        Err(BrokerError::InvalidArgument { .. })
    ));
    let (a, c) = (results[0].clone().unwrap(), results[2].clone().unwrap());
    assert!(a.offset < c.offset);
    let got = receive(&mut b, 2, "q", None);
    assert_eq!(payloads(&got), vec![&b"a"[..], &b"b"[..]]);
}

#[test]
fn a_stale_receipt_fails_alone_and_the_rest_are_acked() {
    let mut b = broker_with(Durability::None, vec![queue("q")]);
    for p in ["a", "b", "c"] {
        common::publish(&mut b, 1, "q", p);
    }
    let got = receive(&mut b, 2, "q", None);
    let r: Vec<Receipt> = got.iter().map(|d| d.receipt.unwrap()).collect();
    b.ack(t(3), r[0]).unwrap();
    // Not atomic: the stale first receipt and the repeated second do not stop the others.
    let reply = ack_batch(&mut b, 4, vec![r[0], r[1], r[1], r[2]]).unwrap();
    assert_eq!(
        reply,
        Reply::Acked {
            results: vec![
                Err(BrokerError::StaleReceipt),
                Ok(()),
                Err(BrokerError::StaleReceipt),
                Ok(()),
            ]
        }
    );
    // Nothing comes back once the leases would have run out.
    assert!(receive(&mut b, 500, "q", None).is_empty());
}

#[test]
fn batches_are_bounded_like_a_receive() {
    let mut b = broker_with(Durability::Always, vec![queue("q")]);
    for n in [0, 1025] {
        let requests = vec![PublishRequest::new("x"); n];
        assert!(matches!(
            publish_batch(&mut b, 1, requests),
            Err(BrokerError::InvalidArgument { .. })
        ));
    }
    let ok = publish_batch(&mut b, 1, vec![PublishRequest::new("x"); 1024]).unwrap();
    assert!(matches!(ok, Reply::PublishedBatch { results } if results.len() == 1024));
    let got = b
        .receive(t(2), "q", None, ConsumerId(1), 1024, AckMode::Explicit)
        .unwrap();
    let receipts: Vec<Receipt> = got.iter().map(|d| d.receipt.unwrap()).collect();
    assert!(matches!(
        ack_batch(&mut b, 3, Vec::new()),
        Err(BrokerError::InvalidArgument { .. })
    ));
    assert!(matches!(
        ack_batch(&mut b, 3, vec![receipts[0]; 1025]),
        Err(BrokerError::InvalidArgument { .. })
    ));
    // A refused batch changed nothing: every lease is still there to ack.
    let reply = ack_batch(&mut b, 4, receipts).unwrap();
    assert!(matches!(reply, Reply::Acked { results } if results.iter().all(Result::is_ok)));
}

#[test]
fn a_partly_failed_batch_replays_exactly_after_a_crash() {
    let mut b = broker_with(Durability::Always, vec![queue("q")]);
    let published = publish_batch(
        &mut b,
        1,
        vec![
            PublishRequest::new("a"),
            PublishRequest::new("bad").with_key(long_key()),
            PublishRequest::new("b"),
            PublishRequest::new("c"),
        ],
    )
    .unwrap();
    // A batch that failed whole is not logged, and one whose elements all failed changes
    // nothing; neither may disturb the replay.
    let all_failed = publish_batch(
        &mut b,
        1,
        vec![PublishRequest::new("bad").with_key(long_key())],
    )
    .unwrap();
    assert!(matches!(all_failed, Reply::PublishedBatch { results } if results[0].is_err()));
    let got = receive(&mut b, 2, "q", None);
    assert_eq!(payloads(&got), vec![&b"a"[..], &b"b"[..], &b"c"[..]]);
    let r: Vec<Receipt> = got.iter().map(|d| d.receipt.unwrap()).collect();
    b.ack(t(3), r[0]).unwrap();
    let acked = ack_batch(&mut b, 4, vec![r[0], r[1], r[1]]).unwrap();
    assert_eq!(
        acked,
        Reply::Acked {
            results: vec![
                Err(BrokerError::StaleReceipt),
                Ok(()),
                Err(BrokerError::StaleReceipt)
            ]
        }
    );

    let config = b.config().clone();
    let mut disk = b.into_storage();
    disk.crash();
    let mut b = Broker::open(config, disk, t(10)).unwrap();
    // Only "c" was never acked; its lease ended with the crash and it is delivered again, with
    // the same id, partition and offset as the batch confirmed.
    let again = receive(&mut b, 11, "q", None);
    assert_eq!(payloads(&again), vec![&b"c"[..]]);
    let Reply::PublishedBatch { results } = published else {
        panic!("{published:?}")
    };
    let c = results[3].clone().unwrap();
    assert_eq!(
        (
            again[0].message_id,
            again[0].offset,
            again[0].delivery_count
        ),
        (c.message_id, c.offset, 2)
    );
    ack_batch(&mut b, 12, vec![again[0].receipt.unwrap()]).unwrap();
    assert!(receive(&mut b, 500, "q", None).is_empty());
}
