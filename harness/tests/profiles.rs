//! Broker profiles: each one's key defaults are pinned here, so that a change to what "sqs" or
//! "kafka" means is a deliberate edit of this table and of the profile's notes together.

use mqsim_broker::{BrokerConfig, DestinationConfig, Durability, OverflowPolicy};
use mqsim_harness::profile::{PROFILES, find};
use mqsim_harness::scenario::{ProfileName, Scenario};

const DAY_MS: u64 = 24 * 3600 * 1000;

/// One row: the settings a profile gives a destination without and with a dead-letter queue.
struct Pinned {
    name: &'static str,
    durability: Durability,
    visibility_timeout_ms: u64,
    max_deliveries: Option<u32>,
    max_deliveries_with_dead_letter: Option<u32>,
    initial_backoff_ms: u64,
    overflow: OverflowPolicy,
    message_ttl_ms: Option<u64>,
    dedup_window_ms: u64,
    fifo_groups: bool,
    max_in_flight_per_consumer: u32,
}

const EVERYSEC: Durability = Durability::Interval {
    sync_interval_ms: 1000,
};
const REJECT: OverflowPolicy = OverflowPolicy::RejectPublish;
const DROP_HEAD: OverflowPolicy = OverflowPolicy::DropHead;

#[rustfmt::skip]
const PINNED: &[Pinned] = &[
    Pinned { name: "sqs", durability: Durability::Always, visibility_timeout_ms: 30_000, max_deliveries: None, max_deliveries_with_dead_letter: Some(10), initial_backoff_ms: 0, overflow: REJECT, message_ttl_ms: Some(4 * DAY_MS), dedup_window_ms: 0, fifo_groups: false, max_in_flight_per_consumer: 65_535 },
    Pinned { name: "sqs-fifo", durability: Durability::Always, visibility_timeout_ms: 30_000, max_deliveries: None, max_deliveries_with_dead_letter: Some(10), initial_backoff_ms: 0, overflow: REJECT, message_ttl_ms: Some(4 * DAY_MS), dedup_window_ms: 300_000, fifo_groups: true, max_in_flight_per_consumer: 20_000 },
    Pinned { name: "rabbitmq-classic", durability: Durability::Always, visibility_timeout_ms: 60_000, max_deliveries: None, max_deliveries_with_dead_letter: None, initial_backoff_ms: 0, overflow: DROP_HEAD, message_ttl_ms: None, dedup_window_ms: 0, fifo_groups: false, max_in_flight_per_consumer: 65_535 },
    Pinned { name: "rabbitmq-quorum", durability: Durability::Always, visibility_timeout_ms: 60_000, max_deliveries: Some(20), max_deliveries_with_dead_letter: Some(20), initial_backoff_ms: 0, overflow: DROP_HEAD, message_ttl_ms: None, dedup_window_ms: 0, fifo_groups: false, max_in_flight_per_consumer: 65_535 },
    Pinned { name: "redis-streams", durability: EVERYSEC, visibility_timeout_ms: 60_000, max_deliveries: None, max_deliveries_with_dead_letter: None, initial_backoff_ms: 0, overflow: DROP_HEAD, message_ttl_ms: None, dedup_window_ms: 0, fifo_groups: false, max_in_flight_per_consumer: 65_535 },
    Pinned { name: "google-pubsub", durability: Durability::Always, visibility_timeout_ms: 10_000, max_deliveries: None, max_deliveries_with_dead_letter: Some(5), initial_backoff_ms: 0, overflow: REJECT, message_ttl_ms: Some(7 * DAY_MS), dedup_window_ms: 0, fifo_groups: false, max_in_flight_per_consumer: 1_000 },
    Pinned { name: "kafka", durability: Durability::Always, visibility_timeout_ms: 45_000, max_deliveries: None, max_deliveries_with_dead_letter: None, initial_backoff_ms: 0, overflow: DROP_HEAD, message_ttl_ms: Some(7 * DAY_MS), dedup_window_ms: 300_000, fifo_groups: false, max_in_flight_per_consumer: 65_535 },
    Pinned { name: "activemq", durability: Durability::Always, visibility_timeout_ms: 30_000, max_deliveries: Some(7), max_deliveries_with_dead_letter: Some(7), initial_backoff_ms: 1_000, overflow: REJECT, message_ttl_ms: None, dedup_window_ms: 0, fifo_groups: false, max_in_flight_per_consumer: 1_000 },
    Pinned { name: "celery-redis", durability: EVERYSEC, visibility_timeout_ms: 3_600_000, max_deliveries: None, max_deliveries_with_dead_letter: None, initial_backoff_ms: 0, overflow: REJECT, message_ttl_ms: None, dedup_window_ms: 0, fifo_groups: false, max_in_flight_per_consumer: 4 },
];

#[test]
fn every_profile_is_pinned_and_every_pin_is_a_profile() {
    let names: Vec<&str> = PROFILES.iter().map(|p| p.name).collect();
    let pinned: Vec<&str> = PINNED.iter().map(|p| p.name).collect();
    assert_eq!(names, pinned);
    // The scenario format's names are the same, in the same order.
    for (name, profile) in ProfileName::ALL.iter().zip(PROFILES) {
        assert_eq!(name.profile().name, profile.name);
        let yaml = serde_norway::to_string(name).unwrap();
        assert_eq!(yaml.trim(), profile.name);
    }
}

#[test]
fn profile_defaults_are_pinned() {
    for pin in PINNED {
        let p = find(pin.name).unwrap();
        let d = p.destination_defaults(false);
        let with_dlq = p.destination_defaults(true);
        let name = pin.name;
        assert_eq!(p.durability, pin.durability, "{name}");
        assert_eq!(d.visibility_timeout_ms, pin.visibility_timeout_ms, "{name}");
        assert_eq!(d.max_deliveries, pin.max_deliveries, "{name}");
        assert_eq!(
            with_dlq.max_deliveries, pin.max_deliveries_with_dead_letter,
            "{name}"
        );
        assert_eq!(d.retry.initial_backoff_ms, pin.initial_backoff_ms, "{name}");
        assert_eq!(d.overflow, pin.overflow, "{name}");
        assert_eq!(d.message_ttl_ms, pin.message_ttl_ms, "{name}");
        assert_eq!(d.dedup_window_ms, pin.dedup_window_ms, "{name}");
        assert_eq!(d.fifo_groups, pin.fifo_groups, "{name}");
        assert_eq!(
            d.max_in_flight_per_consumer, pin.max_in_flight_per_consumer,
            "{name}"
        );
    }
}

#[test]
fn every_profile_is_a_valid_broker_and_says_what_it_stands_for() {
    for p in PROFILES {
        let mut queue = p.destination_defaults(true);
        queue.name = "q".to_owned();
        // The reference broker dead-letters only after a delivery limit, so a profile
        // without one gets a dead-letter queue only when a scenario also sets the limit.
        if queue.max_deliveries.is_some() {
            queue.dead_letter = Some("dlq".to_owned());
        }
        let dlq = DestinationConfig {
            name: "dlq".to_owned(),
            ..p.destination_defaults(false)
        };
        let config = BrokerConfig::new(p.durability, vec![queue, dlq]);
        config
            .validate()
            .unwrap_or_else(|e| panic!("{}: {e}", p.name));
        // The settings every comparison turns on are always explained.
        for setting in ["durability", "visibility_timeout", "max_deliveries"] {
            assert!(
                p.notes.iter().any(|(s, _)| *s == setting),
                "{} has no note on {setting}",
                p.name
            );
        }
        assert!(p.describe().starts_with(&format!("{}: ", p.name)));
    }
}

const SCENARIO: &str = "\
name: profiled
description: a queue run as some system
duration: 1s
broker:
  profile: PROFILE
  destinations:
    - name: q
      dead_letter: dlq
      OVERRIDE
    - name: dlq
";

fn scenario(profile: &str, overrides: &str) -> Result<Scenario, String> {
    let text = SCENARIO
        .replace("PROFILE", profile)
        .replace("OVERRIDE", overrides);
    Scenario::parse(&text).map_err(|e| format!("{}:{}: {}", e.line, e.column, e.message))
}

#[test]
fn a_scenario_takes_its_profiles_settings_and_overrides_single_ones() {
    let s = scenario("google-pubsub", "retry: {initial_backoff: 0s}").unwrap();
    let q = &s.spec.broker.destinations[0];
    assert_eq!(q.visibility_timeout_ms, 10_000);
    assert_eq!(q.max_deliveries, Some(5));
    assert_eq!(q.message_ttl_ms, Some(7 * DAY_MS));
    // The dead-letter queue itself has none, so no delivery limit.
    assert_eq!(s.spec.broker.destinations[1].max_deliveries, None);
    assert_eq!(s.spec.broker.durability, Durability::Always);

    let s = scenario(
        "google-pubsub",
        "visibility_timeout: 2s\n      max_deliveries: 3",
    )
    .unwrap();
    let q = &s.spec.broker.destinations[0];
    assert_eq!(q.visibility_timeout_ms, 2_000);
    assert_eq!(q.max_deliveries, Some(3));
    // What the override leaves alone stays the profile's.
    assert_eq!(q.max_in_flight_per_consumer, 1_000);

    // Durability written out wins over the profile's.
    let text = SCENARIO
        .replace("PROFILE", "redis-streams")
        .replace("OVERRIDE", "max_deliveries: 3")
        .replace("  profile:", "  durability: {policy: none}\n  profile:");
    let s = Scenario::parse(&text).unwrap();
    assert_eq!(s.spec.broker.durability, Durability::None);
    let s = scenario("redis-streams", "max_deliveries: 3").unwrap();
    assert_eq!(s.spec.broker.durability, EVERYSEC);
}

#[test]
fn without_a_profile_the_reference_brokers_defaults_apply() {
    let text = SCENARIO
        .replace("  profile: PROFILE\n", "")
        .replace("OVERRIDE", "max_deliveries: 3");
    let s = Scenario::parse(&text).unwrap();
    let q = &s.spec.broker.destinations[0];
    let d = DestinationConfig::default();
    assert_eq!(q.visibility_timeout_ms, d.visibility_timeout_ms);
    assert_eq!(q.message_ttl_ms, d.message_ttl_ms);
    assert_eq!(q.max_length, d.max_length);
    assert_eq!(s.spec.broker.durability, Durability::Always);
}

#[test]
fn a_profile_without_a_delivery_limit_needs_one_for_a_dead_letter_queue() {
    let err = scenario("kafka", "").unwrap_err();
    assert!(err.contains("dead_letter needs max_deliveries"), "{err}");
}

#[test]
fn an_unknown_profile_is_a_located_error_naming_the_choices() {
    let err = scenario("rabbitmq", "").unwrap_err();
    assert!(err.starts_with("5:"), "{err}");
    assert!(err.contains("rabbitmq-quorum"), "{err}");
}
