//! Model-based test of the broker. This file starts with the regression tests of the bugs the
//! model test found; the model itself follows.

// Regressions: bugs the model found, each pinned by a direct test named after it.

mod regressions {
    use mqsim_broker::*;

    fn t(ms: u64) -> Time {
        Time::from_ms(ms)
    }

    /// Drop-head chose its victim across partitions by message id. A dead-lettered message
    /// keeps its (older) id but arrives in the dead-letter queue when it is moved, so drop-head
    /// dropped the message that had just arrived instead of the one that had waited longest;
    /// with one partition the same queue dropped the other message.
    #[test]
    fn drop_head_drops_the_earliest_arrival_across_partitions() {
        let config = BrokerConfig {
            durability: Durability::Always,
            destinations: vec![
                DestinationConfig {
                    visibility_timeout_ms: 100,
                    max_deliveries: Some(1),
                    dead_letter: Some("dlq".into()),
                    ..DestinationConfig::queue("q")
                },
                DestinationConfig {
                    partitions: 2,
                    max_length: 2,
                    overflow: OverflowPolicy::DropHead,
                    ..DestinationConfig::queue("dlq")
                },
            ],
        };
        let mut b = Broker::open(config, MemDisk::new(), t(0)).unwrap();
        let x = b.publish(t(1), "q", PublishRequest::new("x")).unwrap();
        let y = b.publish(t(1), "dlq", PublishRequest::new("y")).unwrap();
        b.receive(t(2), "q", None, ConsumerId(1), 1, AckMode::Explicit)
            .unwrap();
        // The lease runs out at 102: x, older than y by id, arrives in the dead-letter queue.
        b.tick(t(102)).unwrap();
        let z = b.publish(t(103), "dlq", PublishRequest::new("z")).unwrap();
        let mut left: Vec<MessageId> = b
            .receive(t(104), "dlq", None, ConsumerId(1), 10, AckMode::Auto)
            .unwrap()
            .iter()
            .map(|d| d.message_id)
            .collect();
        left.sort();
        assert_eq!(
            left,
            vec![x.message_id, z.message_id],
            "y ({y:?}) arrived first"
        );
    }
}
