//! A whole scenario run (issue 6 item 6): what `mqsim run` does for one scenario and seed:
//! simulate, check, measure, judge — timed end to end in wall-clock time. The scenarios are
//! the catalogue's, read from `scenarios/`; no history file is written, as with
//! `mqsim compare`.
//!
//! ```sh
//! CARGO_TARGET_DIR=/tmp/target-bench cargo bench -p mqsim-benches --bench scenario
//! ```
//!
//! Criterion's throughput is in history events: events simulated, checked and measured per
//! wall-clock second.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group};
use mqsim_harness::runner;
use mqsim_harness::scenario::ScenarioFile;

/// Scenarios of different shapes: a work queue at 1,000 messages per simulated second, the
/// consumer crashes of the delivery comparison, and a fan-out to three groups.
const SCENARIOS: &[&str] = &["work-queue", "consumer-crash", "pubsub-fanout"];

fn bench(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut group = c.benchmark_group("scenario");
    group.sample_size(10);
    for name in SCENARIOS {
        let path = dir.join(format!("{name}.yaml"));
        let file = ScenarioFile::load(&path).expect("a catalogue scenario loads");
        // One untimed run to count the events and check the run is what the catalogue says.
        let first = runner::execute(name, &path, &file.scenario.spec, None).expect("it runs");
        let mut judged = first;
        runner::judge(&file.scenario.expect, &mut judged);
        assert_eq!(
            judged.record.verdict,
            runner::RunVerdict::Pass,
            "{name} passes its expectations"
        );
        group.throughput(Throughput::Elements(
            judged.run.history.entries().len() as u64
        ));
        group.bench_function(*name, |b| {
            b.iter(|| {
                let mut o =
                    runner::execute(name, &path, &file.scenario.spec, None).expect("it runs");
                runner::judge(&file.scenario.expect, &mut o);
                black_box(o.record.verdict)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
