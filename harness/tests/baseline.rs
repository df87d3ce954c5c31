//! Regression tracking end to end: a baseline saved from a run passes the same run again and
//! catches a deliberate regression (consumers that take twice as long) with exit 1.

mod common;

use std::fs;

use common::{mqsim, scratch_dir};

const SCENARIO: &str = "../scenarios/consumer-crash.yaml";

#[test]
fn a_baseline_passes_an_unchanged_run_and_catches_doubled_processing_time() {
    let dir = scratch_dir("baseline-e2e");
    let first = dir.join("first");
    let out = mqsim(["run", SCENARIO, "--out", first.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);

    let baseline = dir.join("baseline.json");
    let out = mqsim([
        "baseline",
        "save",
        first.to_str().unwrap(),
        "--out",
        baseline.to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("baseline of 1 runs"), "{}", out.stdout);
    let saved: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&baseline).unwrap()).unwrap();
    assert_eq!(saved["runs"][0]["scenario"], "consumer-crash");
    assert!(
        saved["runs"][0]["values"]["e2e_latency_ms_p99"]
            .as_f64()
            .unwrap()
            > 0.0
    );

    // The same run again: simulated figures are exact, so nothing moves.
    let again = dir.join("again");
    let out = mqsim([
        "run",
        SCENARIO,
        "--out",
        again.to_str().unwrap(),
        "--baseline",
        baseline.to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("baseline: 1 runs compared, 0 regressions"),
        "{}",
        out.stdout
    );
    assert!(again.join("baseline.txt").is_file());

    // Consumers twice as slow: latency regresses; the run itself still passes its own
    // expectations, so the exit code is the baseline's doing.
    let slow = dir.join("consumer-crash.yaml");
    let text = fs::read_to_string(common::manifest_dir().join(SCENARIO)).unwrap();
    let doubled = text.replace("min: 1ms, max: 4ms", "min: 2ms, max: 8ms");
    assert_ne!(doubled, text);
    fs::write(&slow, doubled).unwrap();
    let regressed = dir.join("regressed");
    let out = mqsim([
        "run",
        slow.to_str().unwrap(),
        "--out",
        regressed.to_str().unwrap(),
        "--baseline",
        baseline.to_str().unwrap(),
    ]);
    assert_eq!(out.code, Some(1), "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains(" pass "), "{}", out.stdout);
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.ends_with("REGRESSION"))
        .collect();
    assert!(
        lines.iter().any(|l| l.contains("e2e_latency_ms_p50")),
        "{}",
        out.stdout
    );
    // Each line says by how much and against which threshold.
    assert!(
        lines
            .iter()
            .all(|l| l.contains('%') && l.contains("<=") || l.contains(">="))
    );

    // A tolerance wide enough lets it through.
    let out = mqsim([
        "run",
        slow.to_str().unwrap(),
        "--out",
        dir.join("tolerated").to_str().unwrap(),
        "--baseline",
        baseline.to_str().unwrap(),
        "--tolerance",
        "200%",
    ]);
    assert_eq!(out.code, Some(0), "{}{}", out.stdout, out.stderr);
}

#[test]
fn bad_baselines_and_tolerances_are_bad_input() {
    let dir = scratch_dir("baseline-bad");
    let junk = dir.join("junk.json");
    fs::write(&junk, "{\"runs\": 3}").unwrap();
    let out = mqsim(["run", SCENARIO, "--baseline", junk.to_str().unwrap()]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("not a baseline"), "{}", out.stderr);

    let missing = dir.join("missing.json");
    let out = mqsim(["run", SCENARIO, "--baseline", missing.to_str().unwrap()]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);

    fs::write(&junk, "{\"mqsim\": \"0\", \"runs\": []}").unwrap();
    for tol in ["fast", "e2e_latency_ms_p98=5%", "--tolerance=-5%"] {
        let tol = tol.strip_prefix("--tolerance=").map_or_else(
            || vec!["--tolerance".to_owned(), tol.to_owned()],
            |t| vec![format!("--tolerance={t}")],
        );
        let mut args = vec![
            "run".to_owned(),
            SCENARIO.to_owned(),
            "--baseline".to_owned(),
            junk.to_str().unwrap().to_owned(),
        ];
        args.extend(tol.iter().cloned());
        let out = mqsim(&args);
        assert_eq!(out.code, Some(2), "{tol:?}: {}", out.stderr);
        assert!(out.stderr.contains("--tolerance"), "{}", out.stderr);
    }
    // A tolerance without a baseline is a usage error.
    let out = mqsim(["run", SCENARIO, "--tolerance", "5%"]);
    assert_eq!(out.code, Some(2));

    let out = mqsim(["baseline", "save", dir.to_str().unwrap()]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
}
