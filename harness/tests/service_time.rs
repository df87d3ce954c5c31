//! Modelled service times show in simulated latency: processing time on the consumer side,
//! and the log's sync time on the broker side under `always` durability.

use std::path::Path;

use mqsim_harness::runner::{self, Outcome, RunVerdict};
use mqsim_harness::scenario::Scenario;

fn run(durability: &str, sync: &str, processing: &str) -> Outcome {
    let text = format!(
        "name: service-time\ndescription: one producer, two consumers\nduration: 2s\n\
         broker:\n  durability: {{policy: {durability}}}\n  destinations: [{{name: q}}]\n\
         server: {{sync_time: {sync}}}\n\
         producers: [{{destination: q, rate: 300/s}}]\n\
         consumers: [{{count: 2, destination: q, processing: {{kind: constant, time: {processing}}}}}]\n"
    );
    let text = text.replace(
        "{policy: interval}",
        "{policy: interval, sync_interval: 10ms}",
    );
    let s = Scenario::parse(&text).unwrap_or_else(|e| panic!("{e:?}\n{text}"));
    let o = runner::execute(&s.name, Path::new("service-time.yaml"), &s.spec, None).unwrap();
    assert_eq!(
        o.record.verdict,
        RunVerdict::Pass,
        "{:?}",
        o.record.violations
    );
    o
}

#[test]
fn a_slow_disk_shows_in_publish_latency_under_always_only() {
    let fast = run("always", "0ms", "1ms");
    let slow = run("always", "8ms", "1ms");
    let p50 = |o: &Outcome| o.record.metrics.publish_latency_ms.p50;
    // A change waits for the sync that covers it, and a connection's next batch waits for its
    // previous one to be answered: between one and three sync times more.
    assert!(
        p50(&slow) >= p50(&fast) + 8.0,
        "{} vs {}",
        p50(&slow),
        p50(&fast)
    );
    assert!(
        p50(&slow) <= p50(&fast) + 24.0 + 1.0,
        "{} vs {}",
        p50(&slow),
        p50(&fast)
    );
    // Group commit: throughput keeps up with the offered 300/s, and the producer is barely
    // held back (under a tick at the 99th percentile).
    assert!(slow.record.metrics.throughput_per_s > 290.0);
    assert!(slow.record.metrics.send_delay_ms.p99 < 1.0);
    // Under `interval`, answers do not wait for syncs.
    let interval = run("interval", "8ms", "1ms");
    assert!(p50(&interval) < p50(&fast) + 1.0, "{}", p50(&interval));
    // The same seed gives the same run.
    assert_eq!(
        run("always", "8ms", "1ms").record.history_sha256,
        slow.record.history_sha256
    );
}

#[test]
fn processing_time_shows_in_end_to_end_latency() {
    let quick = run("always", "0ms", "1ms");
    let slow = run("always", "0ms", "20ms");
    let e2e = |o: &Outcome| o.record.metrics.e2e_latency_ms.p50;
    assert!(
        e2e(&slow) >= e2e(&quick) + 19.0,
        "{} vs {}",
        e2e(&slow),
        e2e(&quick)
    );
}
