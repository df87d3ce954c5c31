//! Seeds spread over shards and merged back give the unsharded run, and `--jobs` does not
//! change a summary: only wall-clock figures may differ.

mod common;

use std::fs;
use std::path::Path;

use common::{mqsim, scratch_dir};
use serde_json::Value;

const SCENARIOS: [&str; 2] = [
    "../scenarios/consumer-crash.yaml",
    "../scenarios/poison-dead-letters.yaml",
];

/// A summary's runs without their wall-clock figures.
fn runs(dir: &Path) -> Vec<Value> {
    let v: Value =
        serde_json::from_str(&fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let mut r = r.clone();
            r.as_object_mut().unwrap().remove("wall_clock");
            r
        })
        .collect()
}

fn run(out: &Path, extra: &[&str]) -> common::Outcome {
    let mut args = vec!["run", SCENARIOS[0], SCENARIOS[1], "--seeds", "3"];
    args.extend_from_slice(&["--out", out.to_str().unwrap()]);
    args.extend_from_slice(extra);
    mqsim(args)
}

#[test]
fn shards_merged_equal_the_unsharded_run_whatever_the_jobs() {
    let dir = scratch_dir("shards");
    let whole = dir.join("whole");
    let out = run(&whole, &["--jobs", "2"]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    let expected = runs(&whole);
    assert_eq!(expected.len(), 6);

    // One job gives the same summary as two.
    let one_job = dir.join("one-job");
    assert_eq!(run(&one_job, &["--jobs", "1"]).code, Some(0));
    assert_eq!(runs(&one_job), expected);

    // Three shards take disjoint shares that cover the batch.
    let shards: Vec<_> = (1..=3).map(|i| dir.join(format!("shard-{i}"))).collect();
    for (i, s) in shards.iter().enumerate() {
        let shard = format!("{}/3", i + 1);
        let out = run(s, &["--shard", &shard]);
        assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
        assert_eq!(runs(s).len(), 2, "shard {shard}");
    }
    let merged = dir.join("merged");
    let mut args = vec!["merge".to_owned()];
    args.extend(shards.iter().map(|s| s.to_str().unwrap().to_owned()));
    args.extend(["--out".to_owned(), merged.to_str().unwrap().to_owned()]);
    let out = mqsim(&args);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.starts_with("6 runs from 3 directories"),
        "{}",
        out.stdout
    );
    assert_eq!(runs(&merged), expected);
    // The histories came along, so the merged directory replays.
    let out = mqsim(["replay", merged.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);

    // Overlapping shards are refused.
    let out = mqsim([
        "merge",
        shards[0].to_str().unwrap(),
        shards[0].to_str().unwrap(),
        "--out",
        dir.join("overlap").to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.contains("shards must not overlap"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_bad_shard_is_a_usage_error() {
    for shard in ["0/2", "3/2", "1", "a/b", "1/0"] {
        let out = mqsim(["run", SCENARIOS[0], "--shard", shard]);
        assert_eq!(out.code, Some(2), "{shard}: {}", out.stderr);
        assert!(out.stderr.contains("is not a shard"), "{}", out.stderr);
    }
}
