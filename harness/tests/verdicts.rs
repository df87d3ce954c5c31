//! The checkers on real runs: the correct broker under crashes, partitions and slow consumers
//! gives no violation over many seeds, and a weak durability policy's loss is reported.

mod clusters;

use mqsim_broker::Durability;
use mqsim_harness::check::{self, Invariant, Report, Verdict};
use mqsim_harness::sim::{ClusterSpec, RunReport, run};

use clusters::{cluster, every_checker, every_fault};

fn checked(spec: ClusterSpec) -> (RunReport, Report) {
    let r = run(spec.clone(), None).unwrap_or_else(|e| panic!("run failed: {e}"));
    let report = check::check(&r.history, &r.plan, &spec, r.drained());
    (r, report)
}

fn violations(report: &Report) -> String {
    report
        .invariants
        .iter()
        .filter(|i| i.verdict != Verdict::Valid)
        .map(|i| format!("{}: {:?} {:#?}", i.invariant.name(), i.verdict, i.anomalies))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Issue 4's no-false-alarm requirement: 50 seeds of each cluster, the correct broker under
/// broker crashes, partitions (both ways and one way), holds, latency, pauses, slow groups and
/// consumers crashing themselves, and not one violation of any invariant.
#[test]
fn the_correct_broker_breaks_no_invariant_over_fifty_seeds() {
    let mut failures = Vec::new();
    for seed in 0..50 {
        for (name, spec) in [
            ("cluster", cluster(seed, Durability::Always)),
            ("every_fault", every_fault(seed)),
            ("every_checker", every_checker(seed)),
        ] {
            let (r, report) = checked(spec);
            if !r.drained()
                || report
                    .invariants
                    .iter()
                    .any(|i| i.verdict != Verdict::Valid)
            {
                failures.push(format!("{name} seed {seed}: {}", violations(&report)));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The checks have something to find in these runs: the counts they report are not zero.
#[test]
fn the_runs_exercise_every_checker() {
    let (_, report) = checked(every_checker(3));
    let c = &report.counts;
    assert!(c.duplicate_deliveries > 0, "{c:?}");
    assert!(c.duplicate_effects > 0, "{c:?}");
    assert!(c.dead_lettered > 0, "{c:?}");
    assert!(c.expired > 0, "{c:?}");
    assert!(c.rejected > 0, "{c:?}");
    assert!(c.lost_at_most_once > 0, "{c:?}");
}

/// The measurements of a real run are consistent: percentiles in order, throughput close to
/// what the producers offered, and some lag while the slow group falls behind.
#[test]
fn a_run_is_measured() {
    let spec = every_checker(4);
    let r = run(spec.clone(), None).unwrap();
    let m = check::measure(&r.history, &r.plan, &spec);
    let e = m.e2e_latency_ms;
    assert!(e.count > 1000 && e.p50 > 0.0, "{m:?}");
    assert!(
        e.p50 <= e.p90 && e.p90 <= e.p99 && e.p99 <= e.p999 && e.p999 <= e.max,
        "{m:?}"
    );
    assert!(m.publish_latency_ms.p50 <= e.p50, "{m:?}");
    assert!(m.max_lag > 10, "{m:?}");
    assert!(m.throughput_per_s > 100.0 && m.sim_seconds > 1.5, "{m:?}");
}

/// With no durability the same broker crash loses confirmed messages, and the checkers say so
/// in the invariants that define loss.
#[test]
fn a_crash_without_durability_is_reported_as_loss() {
    let (r, report) = checked(cluster(7, Durability::None));
    assert!(r.drained());
    assert_eq!(report.get(Invariant::NoLoss).verdict, Verdict::Invalid);
    assert_eq!(
        report.get(Invariant::LostBeforeSuccessor).verdict,
        Verdict::Invalid
    );
    // The summary counts lost messages, the checkers (message, subscription) pairs.
    assert!(report.counts.lost >= r.summary.lost && r.summary.lost > 0);
}
