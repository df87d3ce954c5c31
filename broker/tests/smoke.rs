mod common;

use common::t;
use mqsim_broker::*;

#[test]
fn publish_receive_ack_and_redelivery() {
    let cfg = BrokerConfig::new(
        Durability::Always,
        vec![
            DestinationConfig {
                visibility_timeout_ms: 100,
                max_deliveries: Some(2),
                dead_letter: Some("dlq".into()),
                ..DestinationConfig::queue("q")
            },
            DestinationConfig::queue("dlq"),
        ],
    );
    let mut b = Broker::open(cfg.clone(), MemDisk::new(), t(0)).unwrap();
    let c = b.publish(t(1), "q", PublishRequest::new("a")).unwrap();
    b.publish(t(1), "q", PublishRequest::new("b")).unwrap();
    let d = b
        .receive(t(2), "q", None, ConsumerId(1), 10, AckMode::Explicit)
        .unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(d[0].message_id, c.message_id);
    b.ack(t(3), d[1].receipt.unwrap()).unwrap();
    assert_eq!(
        b.ack(t(3), d[1].receipt.unwrap()),
        Err(BrokerError::StaleReceipt)
    );
    // lease of "a" expires at 102
    assert!(
        b.receive(t(50), "q", None, ConsumerId(1), 10, AckMode::Explicit)
            .unwrap()
            .is_empty()
    );
    let d2 = b
        .receive(t(102), "q", None, ConsumerId(2), 10, AckMode::Explicit)
        .unwrap();
    assert_eq!(d2.len(), 1);
    assert_eq!(d2[0].delivery_count, 2);
    b.nack(t(103), d2[0].receipt.unwrap(), None).unwrap();
    let s = b.stats(t(103), "q").unwrap();
    assert_eq!(s.dead_letter_depth, Some(1));
    let dl = b
        .receive(t(104), "dlq", None, ConsumerId(1), 10, AckMode::Explicit)
        .unwrap();
    assert_eq!(dl[0].message_id, c.message_id);
    // crash and recover: the dlq lease is released; the message stays in the dlq.
    let disk = b.into_storage();
    let mut b2 = Broker::open(cfg, disk, t(200)).unwrap();
    assert_eq!(b2.epoch(), 2);
    assert_eq!(
        b2.ack(t(201), dl[0].receipt.unwrap()),
        Err(BrokerError::StaleReceipt)
    );
    let s = b2.stats(t(201), "dlq").unwrap();
    assert_eq!(s.depth, 1, "{s:?}");
    assert_eq!(b2.redrive(t(202), "dlq", 10).unwrap(), 1);
    let d3 = b2
        .receive(t(203), "q", None, ConsumerId(1), 10, AckMode::Explicit)
        .unwrap();
    assert_eq!(d3[0].delivery_count, 1);
    let ev = b2.take_events();
    assert!(!ev.is_empty());
}
