//! The catalogue is a test: every scenario in `scenarios/` runs at its own seed, as a test of
//! its own, and must meet its `expect` block; a second run must give the same history hash.

use std::path::{Path, PathBuf};

use mqsim_harness::runner::{self, RunVerdict};
use mqsim_harness::scenario::ScenarioFile;

fn catalogue() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// Runs one catalogue file: it must meet its expectations, and a second run must give the
/// same history hash.
fn meets_its_expectations_and_replays(name: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(format!("{name}.yaml"));
    let file = ScenarioFile::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let s = &file.scenario;
    let mut outcome = runner::execute(&s.name, &path, &s.spec, None).unwrap();
    runner::judge(&s.expect, &mut outcome);
    let r = &outcome.record;
    assert_eq!(
        r.verdict,
        RunVerdict::Pass,
        "{}: {:?} {:?}",
        path.display(),
        r.failed_expectations,
        r.violations.iter().take(3).collect::<Vec<_>>()
    );
    let again = mqsim_harness::sim::run(s.spec.clone(), None).unwrap();
    assert_eq!(
        again.hash, r.history_sha256,
        "the second run's history differs"
    );
}

/// One test per catalogue file, so a failure names its scenario; `the_list_is_the_directory`
/// keeps this list and `scenarios/` the same.
macro_rules! catalogue {
    ($($test:ident => $file:literal,)*) => {
        $(
            #[test]
            fn $test() {
                meets_its_expectations_and_replays($file);
            }
        )*
        const LISTED: &[&str] = &[$($file),*];
    };
}

catalogue! {
    backpressure_drop_head => "backpressure-drop-head",
    backpressure_reject_publish => "backpressure-reject-publish",
    broker_crash_always => "broker-crash-always",
    broker_crash_interval => "broker-crash-interval",
    broker_crash_none => "broker-crash-none",
    checkout_flow => "checkout-flow",
    consumer_crash => "consumer-crash",
    dedup_window => "dedup-window",
    delay_queue => "delay-queue",
    delivery_semantics => "delivery-semantics",
    explore_orders => "explore-orders",
    fifo_groups => "fifo-groups",
    lag_spike => "lag-spike",
    partition_consumers => "partition-consumers",
    partition_producers => "partition-producers",
    per_key_ordering => "per-key-ordering",
    poison_dead_letters => "poison-dead-letters",
    pubsub_fanout => "pubsub-fanout",
    retry_backoff => "retry-backoff",
    retry_destinations => "retry-destinations",
    stream_replay => "stream-replay",
    ttl_expiry => "ttl-expiry",
    under_capacity_scaled => "under-capacity-scaled",
    under_capacity => "under-capacity",
    work_queue => "work-queue",
}

#[test]
fn the_list_is_the_directory() {
    let files: Vec<String> = catalogue()
        .iter()
        .filter_map(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .collect();
    assert!(files.len() >= 16, "only {} scenarios", files.len());
    assert_eq!(
        files, LISTED,
        "add each new scenario file to the catalogue! list above"
    );
}

/// Each scenario's description says what it demonstrates, and names are unique.
#[test]
fn every_scenario_is_described_and_named_once() {
    let mut names = Vec::new();
    for path in catalogue() {
        let file = ScenarioFile::load(&path).unwrap();
        let s = file.scenario;
        assert!(
            s.description
                .lines()
                .filter(|l| !l.trim().is_empty())
                .count()
                >= 2,
            "{}: a summary line and what it shows",
            path.display()
        );
        assert!(!names.contains(&s.name), "{} twice", s.name);
        names.push(s.name);
    }
}
