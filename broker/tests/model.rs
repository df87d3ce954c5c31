//! Model-based test of the broker: random command sequences, with crashes, restarts and jumps
//! in time, run against the broker and against a small reference model written independently
//! and naively (`model/reference.rs`: a `Vec` of every message with per-subscription state,
//! linear scans, everything recomputed), comparing every reply (confirms, deliveries, errors),
//! the epoch after each restart and, now and then, the stats of every destination.
//!
//! Covered (see `model/ops.rs` for the exact ranges): a queue with one or two partitions, a
//! default delay, a retry backoff, `max_deliveries` with a dead-letter queue, `max_length` and
//! `max_bytes` under either overflow policy, a time to live that drops or dead-letters, dedup
//! ids within a window and a count, an in-flight limit; the dead-letter queue, bounded or not,
//! with or without a time to live; optionally a topic with two groups, bounded, with or
//! without a time to live, `max_deliveries` and dead-lettering. Commands: publish (keyed or
//! not, with a delay, a time to live, a dedup id, a payload too large, to an unknown
//! destination), receive (explicit or auto ack, batch of 1 to 3, a visibility override,
//! wrongly addressed), ack, nack (with or without a requeue delay) and extend of live, stale
//! and never-issued receipts, redrive, tick; durability `always`, `interval` and `none`, with
//! crashes that lose what was not synced and restarts of the process alone that lose nothing.
//!
//! Left out, to keep the model small enough to trust: FIFO groups, transactions (`Commit`),
//! creating groups and seeking at run time, and events (only replies and stats are compared;
//! events are counted to check that the cases reach what they should).
//!
//! The run is deterministic: the generator's seed is fixed unless `PROPTEST_RNG_SEED` is set,
//! and `PROPTEST_CASES` scales the number of cases, e.g.
//! `PROPTEST_CASES=50000 PROPTEST_RNG_SEED=7 cargo test -p mqsim-broker --test model`.
//! A failure prints the seed, the shrunk case, and a trace of every step and the broker's
//! answers.

mod model {
    pub mod check;
    pub mod ops;
    pub mod reference;
}

use std::cell::RefCell;

use model::{check, ops};
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestError, TestRunner};

/// The seed used when `PROPTEST_RNG_SEED` is not set, so that CI runs the same cases each time.
const DEFAULT_SEED: u64 = 20_261_129;

/// The number of cases when `PROPTEST_CASES` is not set: about a second in the test profile.
const DEFAULT_CASES: u32 = 4096;

/// The longest command sequence generated.
const MAX_STEPS: usize = 80;

/// What the default run must have seen at least this often (summed over its cases), so that a
/// change to the generator cannot quietly stop exercising it.
const MUST_SEE: &[(&str, u64)] = &[
    ("redelivered", 300),
    ("duplicate publish", 50),
    ("publish rejected by a full destination", 300),
    ("lease expired", 500),
    ("lease released by a restart", 150),
    ("dead-lettered", 200),
    ("dead-letter refused", 300),
    ("dropped by drop-head", 300),
    ("dropped after max deliveries", 20),
    ("redriven", 40),
    ("expired", 1000),
    ("crash lost unsynced records", 100),
];

#[test]
fn broker_agrees_with_the_reference_model() {
    let mut config = Config::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = DEFAULT_CASES;
    }
    if config.rng_seed == RngSeed::Random {
        config.rng_seed = RngSeed::Fixed(DEFAULT_SEED);
    }
    // The seed and the printed case are what reproduce a failure; no regression files.
    config.failure_persistence = None;
    let (seed, cases) = (config.rng_seed, config.cases);
    let tally = RefCell::new(check::Tally::new());
    let mut runner = TestRunner::new(config);
    let result = runner.run(&ops::case(MAX_STEPS), |(setup, steps)| {
        let seen = check::run(&setup, &steps, false).map_err(TestCaseError::fail)?;
        let mut tally = tally.borrow_mut();
        for (what, n) in seen {
            *tally.entry(what).or_default() += n;
        }
        Ok(())
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, (setup, steps))) => {
            // Run the shrunk case again, this time writing down every step and answer.
            let trace = check::run(&setup, &steps, true).err().unwrap_or_default();
            panic!(
                "the broker disagrees with the model (PROPTEST_RNG_SEED={seed}): {why}\n\
                 setup: {setup:#?}\nsteps:\n{trace}"
            );
        }
        Err(e) => panic!("PROPTEST_RNG_SEED={seed}: {e}"),
    }
    if cases >= DEFAULT_CASES {
        let tally = tally.into_inner();
        for &(what, min) in MUST_SEE {
            let seen = tally.get(what).copied().unwrap_or(0);
            assert!(
                seen >= min,
                "only {seen} times {what} in {cases} cases, expected {min}: {tally:#?}"
            );
        }
    }
}

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
        let config = BrokerConfig::new(
            Durability::Always,
            vec![
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
        );
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
        let config = BrokerConfig::new(
            Durability::Interval {
                sync_interval_ms: 1000,
            },
            vec![DestinationConfig::queue("q")],
        );
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
