//! `mqsim explore`, end to end through the binary: with a broker defect switched on it finds
//! a violation and writes a small reproducer that fails when run; with the correct broker 500
//! seeds pass; `--jobs` does not change the summary; shards merged equal the unsharded
//! exploration.
//!
//! The test binary is built with the broker's `defects` feature (a dev-dependency), so the
//! `mqsim` it runs accepts `broker.defects`.

mod common;

use std::fs;
use std::path::Path;

use common::{mqsim, scratch_dir};
use serde_json::Value;

const QUEUE: &str = "tests/data/explore/queue.yaml";
const DEFECT: &str = "tests/data/explore/queue-defect.yaml";

fn summary(dir: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

fn explore(dir: &Path, args: &[&str]) -> common::Outcome {
    let mut all = vec!["explore"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--out", dir.to_str().unwrap()]);
    mqsim(all)
}

#[test]
fn a_defect_is_found_and_shrunk_to_a_reproducer_that_fails_when_run() {
    let dir = scratch_dir("explore-defect");
    let out = explore(&dir, &[DEFECT, "--seeds", "200"]);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    let s = summary(&dir);
    let runs = s["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 200);
    let failed: Vec<&Value> = runs.iter().filter(|r| r["verdict"] == "fail").collect();
    assert!(!failed.is_empty());
    // Losing leased messages at a restart loses confirmed messages.
    assert!(
        failed.iter().all(|r| r["failure"] == "no-loss"),
        "{failed:?}"
    );

    let reproducers = s["reproducers"].as_array().unwrap();
    assert_eq!(reproducers.len(), 1);
    let p = &reproducers[0];
    assert_eq!(
        p["seed"], failed[0]["seed"],
        "the first failing seed is shrunk"
    );
    assert_eq!(p["failure"], "no-loss");
    assert_eq!(p["reproduced"], true);
    let minimal_faults = p["minimal"]["faults"].as_u64().unwrap();
    assert!((1..=3).contains(&minimal_faults), "{p}");
    assert!(minimal_faults <= p["original"]["faults"].as_u64().unwrap());
    assert!(p["minimal"]["hosts"].as_u64() <= p["original"]["hosts"].as_u64());
    assert!(out.stdout.contains("shrunk seed"), "{}", out.stdout);
    // CI reads the verdict per scenario from junit.xml.
    let junit = fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(junit.contains("tests=\"1\" failures=\"1\""), "{junit}");
    assert!(
        junit.contains(p["reproducer_file"].as_str().unwrap()),
        "{junit}"
    );

    // The reproducer stands alone: `mqsim run` on it fails on the same invariant.
    let file = dir.join(p["reproducer_file"].as_str().unwrap());
    let text = fs::read_to_string(&file).unwrap();
    assert!(text.contains("lose-in-flight-on-restart"), "{text}");
    assert!(!text.contains("\nexplore:"), "{text}");
    let run_dir = dir.join("run");
    let run = mqsim([
        "run",
        file.to_str().unwrap(),
        "--out",
        run_dir.to_str().unwrap(),
    ]);
    assert_eq!(run.code, Some(1), "{}{}", run.stdout, run.stderr);
    let violations = &summary(&run_dir)["runs"][0]["violations"];
    assert!(
        violations
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["invariant"] == "no-loss"),
        "{violations}"
    );
}

#[test]
fn the_correct_broker_passes_500_seeds() {
    let dir = scratch_dir("explore-correct");
    let out = explore(&dir, &[QUEUE, "--seeds", "500"]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let s = summary(&dir);
    let runs = s["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 500);
    assert!(runs.iter().all(|r| r["verdict"] == "pass"));
    assert!(s["reproducers"].as_array().unwrap().is_empty());
    let junit = fs::read_to_string(dir.join("junit.xml")).unwrap();
    assert!(
        junit.contains("failures=\"0\"") && junit.contains("(500 seeds)\"/>"),
        "{junit}"
    );
    // The draws really vary the cluster and reach the paths that matter.
    let faults: Vec<u64> = runs.iter().map(|r| r["faults"].as_u64().unwrap()).collect();
    assert!(faults.contains(&0) && faults.contains(&4), "{faults:?}");
    let hosts: Vec<u64> = runs.iter().map(|r| r["hosts"].as_u64().unwrap()).collect();
    // The broker, two producers and one or two consumers.
    assert!(hosts.contains(&4) && hosts.contains(&5), "{hosts:?}");
    for path in [
        "lease_expiry",
        "crash_recovery",
        "partition_heal",
        "dedup_hit",
        "producer_retry",
    ] {
        assert!(
            runs.iter().any(|r| r["coverage"][path].as_u64() > Some(0)),
            "{path} never reached"
        );
    }
    assert!(!out.stdout.contains("NEVER REACHED lease_expiry"));
}

/// The runs of a summary (wall-clock figures are apart, in `wall_clock`).
fn runs(dir: &Path) -> Value {
    summary(dir)["runs"].clone()
}

#[test]
fn jobs_do_not_change_the_summary_and_shards_merge_to_the_whole() {
    let dir = scratch_dir("explore-shards");
    let args = [DEFECT, QUEUE, "--seeds", "12", "--shrink-runs", "5"];
    let whole = dir.join("whole");
    let out = explore(&whole, &[&args[..], &["--jobs", "2"]].concat());
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    let expected = runs(&whole);
    assert_eq!(expected.as_array().unwrap().len(), 24);

    let one = dir.join("one-job");
    assert_eq!(
        explore(&one, &[&args[..], &["--jobs", "1"]].concat()).code,
        Some(1)
    );
    assert_eq!(runs(&one), expected);
    assert_eq!(summary(&one)["reproducers"], summary(&whole)["reproducers"]);

    let shards: Vec<_> = (1..=3).map(|i| dir.join(format!("shard-{i}"))).collect();
    for (i, s) in shards.iter().enumerate() {
        let shard = format!("{}/3", i + 1);
        explore(s, &[&args[..], &["--shard", &shard]].concat());
        assert_eq!(runs(s).as_array().unwrap().len(), 8, "shard {shard}");
    }
    let merged = dir.join("merged");
    let mut merge = vec!["merge".to_owned()];
    merge.extend(shards.iter().map(|s| s.to_str().unwrap().to_owned()));
    merge.extend(["--out".to_owned(), merged.to_str().unwrap().to_owned()]);
    let out = mqsim(merge);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert_eq!(runs(&merged), expected);
}

#[test]
fn a_budget_stops_early_and_bad_options_are_usage_errors() {
    let dir = scratch_dir("explore-budget");
    let out = explore(&dir, &[QUEUE, "--seeds", "100000", "--budget", "1s"]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let s = summary(&dir);
    let n = s["runs"].as_array().unwrap().len();
    assert!(n > 0 && n < 100_000, "{n}");
    assert_eq!(s["wall_clock"]["stopped_by_budget"], true);
    // The seeds explored are the first ones, in order.
    let seeds: Vec<u64> = s["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["seed"].as_u64().unwrap())
        .collect();
    assert_eq!(seeds, (1..=n as u64).collect::<Vec<_>>());

    // --seed starts the seeds elsewhere, and a seed explored alone is explored the same.
    let again = dir.join("again");
    let out = explore(&again, &[QUEUE, "--seed", "5", "--seeds", "3"]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let runs = summary(&again)["runs"].clone();
    let seeds: Vec<u64> = (0..3).map(|k| runs[k]["seed"].as_u64().unwrap()).collect();
    assert_eq!(seeds, [5, 6, 7]);
    assert_eq!(
        runs[0], s["runs"][4],
        "seed 5 alone is seed 5 of the longer exploration"
    );

    for bad in [
        vec!["explore", QUEUE, "--budget", "soon"],
        vec!["explore", QUEUE, "--budget", "0s"],
        vec!["explore", QUEUE, "--seeds", "0"],
        vec!["explore", QUEUE, "--shard", "4/3"],
        vec!["explore", "tests/data/explore/no-such-file.yaml"],
    ] {
        let out = mqsim(&bad);
        assert_eq!(out.code, Some(2), "{bad:?}: {}{}", out.stdout, out.stderr);
    }
}
