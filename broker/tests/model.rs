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

    /// `Broker::open` replayed only the synced records and left the unsynced ones in storage,
    /// where its own first sync made them durable. After a process restart without a disk
    /// crash, the restarted broker lacked a publish that the next recovery then brought back.
    #[test]
    fn restart_without_a_disk_crash_keeps_one_history() {
        let config = BrokerConfig {
            durability: Durability::Interval {
                sync_interval_ms: 1000,
            },
            destinations: vec![DestinationConfig::queue("q")],
        };
        let mut b = Broker::open(config.clone(), MemDisk::new(), t(0)).unwrap();
        b.publish(t(1), "q", PublishRequest::new("x")).unwrap();
        assert_eq!(b.storage().unsynced_len(), 1);
        // The process stops; the machine, and so the written record, stays.
        let mut b = Broker::open(config.clone(), b.into_storage(), t(2)).unwrap();
        assert_eq!(b.stats(t(2), "q").unwrap().depth, 1);
        // A publish that is never synced, then a real crash: x is there, once.
        b.publish(t(3), "q", PublishRequest::new("y")).unwrap();
        let mut disk = b.into_storage();
        disk.crash();
        let mut b = Broker::open(config, disk, t(4)).unwrap();
        let got = b
            .receive(t(4), "q", None, ConsumerId(1), 10, AckMode::Auto)
            .unwrap();
        let payloads: Vec<&[u8]> = got.iter().map(|d| &d.payload[..]).collect();
        assert_eq!(payloads, vec![b"x"]);
    }
}
