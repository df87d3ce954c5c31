//! End-to-end tests of the `mqsim` command line: exit codes, output and input limits.

mod common;

use common::{manifest_dir, mqsim, mqsim_in, scratch_dir};
use std::fs;
use std::path::PathBuf;

/// The repository's scenario files, sorted, as `mqsim` should print them.
fn repository_scenarios() -> (PathBuf, Vec<String>) {
    let dir = manifest_dir().join("../scenarios");
    let mut files: Vec<String> = fs::read_dir(&dir)
        .expect("scenarios/ should exist")
        .map(|entry| entry.expect("entry should be readable").path())
        .filter(|path| path.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .map(|path| path.display().to_string())
        .collect();
    files.sort();
    (dir, files)
}

#[test]
fn run_on_repository_scenarios_passes_and_writes_results() {
    let (dir, files) = repository_scenarios();
    assert!(
        files.len() >= 16,
        "the catalogue has {} scenarios",
        files.len()
    );
    let outcome = mqsim([&dir]);
    // A bare path is not a command: `run` must be named, so scripts cannot run things by accident.
    assert_eq!(outcome.code, Some(2));

    let out = scratch_dir("run-catalogue");
    let outcome = mqsim([
        std::ffi::OsStr::new("run"),
        dir.as_os_str(),
        std::ffi::OsStr::new("--out"),
        out.as_os_str(),
    ]);
    assert_eq!(
        outcome.code,
        Some(0),
        "{}{}",
        outcome.stdout,
        outcome.stderr
    );
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    // A header, a row per scenario, and where the results are.
    assert_eq!(lines.len(), files.len() + 2, "{}", outcome.stdout);
    assert!(lines[0].starts_with("scenario "), "{}", lines[0]);
    assert!(lines[1..=files.len()].iter().all(|l| l.contains(" pass ")));
    assert_eq!(
        lines.last().copied(),
        Some(format!("results in {}", out.display()).as_str())
    );
    // Progress goes to stderr, a line per run.
    assert_eq!(
        outcome.stderr.lines().count(),
        files.len(),
        "{}",
        outcome.stderr
    );
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let runs = summary["runs"].as_array().unwrap();
    assert_eq!(runs.len(), files.len());
    for run in runs {
        let history = out.join(run["history_file"].as_str().unwrap());
        assert!(history.is_file(), "{}", history.display());
        for key in [
            "scenario",
            "file",
            "seed",
            "delivery",
            "verdict",
            "counts",
            "violations",
            "metrics",
            "wall_clock",
            "history_sha256",
        ] {
            assert!(!run[key].is_null(), "{key} missing in {run}");
        }
        // Simulated-time metrics and wall-clock figures are kept apart.
        let metrics = &run["metrics"];
        assert!(metrics["wall_seconds"].is_null());
        assert!(run["wall_clock"]["seconds"].as_f64().unwrap() > 0.0);
        for key in ["e2e_us", "publish_us", "send_delay_us"] {
            assert!(
                metrics["histograms"][key]
                    .as_str()
                    .unwrap()
                    .starts_with("HISTF"),
                "{key}"
            );
        }
        assert!(metrics["e2e_latency_ms"]["p9999"].is_number());
        assert!(
            !metrics["series"]["completed_per_s"]
                .as_array()
                .unwrap()
                .is_empty()
        );
    }
    for name in ["summary.txt", "report.md", "junit.xml", "report.html"] {
        assert!(out.join(name).is_file(), "{name}");
    }
    let junit = fs::read_to_string(out.join("junit.xml")).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), files.len());
    // The page is self-contained: nothing fetched, nothing run; one latency chart and three
    // over time per scenario.
    let html = fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    for external in ["<script", "src=", "href=", "@import", "url("] {
        assert!(!html.contains(external), "{external}");
    }
    assert_eq!(html.matches("<svg ").count(), 4 * files.len());
    assert_eq!(
        html.matches("<svg ").count(),
        html.matches("</svg>").count()
    );
}

/// A scenario that produces to a queue nobody reads, with a short drain.
const NOBODY_READS: &str = "name: nobody-reads\ndescription: A producer and no consumer\n\
    duration: 200ms\nbroker:\n  destinations: [{name: q}]\n\
    producers: [{destination: q, rate: 50/s}]\ndrain: {timeout: 100ms}\n";

#[test]
fn a_drain_that_cannot_finish_exits_3_and_an_unmet_expectation_exits_1() {
    let dir = scratch_dir("run-exit-codes");
    let stuck = dir.join("stuck.yaml");
    fs::write(&stuck, NOBODY_READS).unwrap();
    let outcome = mqsim([
        "run".as_ref(),
        stuck.as_os_str(),
        "--out".as_ref(),
        dir.join("a").as_os_str(),
    ]);
    assert_eq!(
        outcome.code,
        Some(3),
        "{}{}",
        outcome.stdout,
        outcome.stderr
    );
    assert!(outcome.stdout.contains("LIVENESS"), "{}", outcome.stdout);

    // The work-queue scenario with an expectation that cannot hold.
    let text = fs::read_to_string(manifest_dir().join("../scenarios/work-queue.yaml")).unwrap();
    let impossible = text.replace("    lost: 0\n", "    lost: \"> 0\"\n");
    assert_ne!(text, impossible, "the scenario should expect lost: 0");
    let file = dir.join("impossible.yaml");
    fs::write(&file, impossible).unwrap();
    let outcome = mqsim([
        "run".as_ref(),
        file.as_os_str(),
        "--out".as_ref(),
        dir.join("b").as_os_str(),
    ]);
    assert_eq!(
        outcome.code,
        Some(1),
        "{}{}",
        outcome.stdout,
        outcome.stderr
    );
    assert!(
        outcome
            .stdout
            .contains("expectation: counts.lost = 0, expected > 0"),
        "{}",
        outcome.stdout
    );
}

#[test]
fn replay_reproduces_every_history_hash_and_notices_a_different_one() {
    let dir = scratch_dir("replay");
    let out = dir.join("results");
    let scenario = manifest_dir().join("../scenarios/work-queue.yaml");
    let outcome = mqsim([
        "run".as_ref(),
        scenario.as_os_str(),
        "--seeds".as_ref(),
        "2".as_ref(),
        "--out".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(
        outcome.code,
        Some(0),
        "{}{}",
        outcome.stdout,
        outcome.stderr
    );
    let outcome = mqsim(["replay".as_ref(), out.as_os_str()]);
    assert_eq!(
        outcome.code,
        Some(0),
        "{}{}",
        outcome.stdout,
        outcome.stderr
    );
    assert_eq!(
        outcome
            .stdout
            .lines()
            .filter(|l| l.starts_with("same "))
            .count(),
        2
    );
    // One history file alone.
    let one = out.join("work-queue.seed-2.history.jsonl");
    let outcome = mqsim(["replay".as_ref(), one.as_os_str()]);
    assert_eq!(
        outcome.code,
        Some(0),
        "{}{}",
        outcome.stdout,
        outcome.stderr
    );
    assert_eq!(outcome.stdout.lines().count(), 1);
    // A recorded hash that the replay cannot match.
    let summary = fs::read_to_string(out.join("summary.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&summary).unwrap();
    let hash = v["runs"][0]["history_sha256"].as_str().unwrap();
    fs::write(
        out.join("summary.json"),
        summary.replace(hash, &"0".repeat(64)),
    )
    .unwrap();
    let outcome = mqsim(["replay".as_ref(), out.as_os_str()]);
    assert_eq!(
        outcome.code,
        Some(1),
        "{}{}",
        outcome.stdout,
        outcome.stderr
    );
    assert!(outcome.stdout.contains("DIFFERS"), "{}", outcome.stdout);
    // Nothing to replay.
    let outcome = mqsim(["replay".as_ref(), dir.join("nowhere").as_os_str()]);
    assert_eq!(outcome.code, Some(2));
}

#[test]
fn validate_on_repository_scenarios_prints_ok_per_file() {
    let (dir, files) = repository_scenarios();
    let outcome = mqsim([std::ffi::OsStr::new("validate"), dir.as_os_str()]);
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
    let expected: String = files.iter().map(|file| format!("ok {file}\n")).collect();
    assert_eq!(outcome.stdout, expected);
}

#[test]
fn list_defaults_to_the_scenarios_directory() {
    let outcome = mqsim_in(&manifest_dir().join(".."), ["list"]);
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
    let lines: Vec<&str> = outcome.stdout.lines().collect();
    let row = |name: &str, summary: &str| {
        lines.iter().any(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.trim_start() == summary)
        })
    };
    assert!(
        row(
            "pubsub-fanout",
            "Pub/sub fan-out to several consumer groups"
        ),
        "{}",
        outcome.stdout
    );
    assert!(
        row("work-queue", "Work queue with competing consumers"),
        "{}",
        outcome.stdout
    );
}

#[test]
fn list_shows_name_and_first_description_line_in_path_order() {
    let outcome = mqsim(["list", "tests/data/valid"]);
    assert_eq!(outcome.code, Some(0), "stderr: {}", outcome.stderr);
    // notes.txt and .hidden.yaml in that directory are invalid, so their absence here also shows
    // that directory scans skip them.
    assert_eq!(
        outcome.stdout,
        "with-bom          Starts with a UTF-8 byte order mark\n\
         every-section     Uses every section and key of the full format\n\
         long-description  Listings show the first non-blank line only.\n\
         minimal           Only the required keys; the seed defaults to 1\n"
    );
}

#[test]
fn one_invalid_file_stops_run_before_anything_is_listed() {
    let outcome = mqsim([
        "run",
        "tests/data/valid",
        "tests/data/invalid/misspelt-key.yaml",
    ]);
    assert_eq!(outcome.code, Some(2));
    assert_eq!(outcome.stdout, "");
    assert!(
        outcome.stderr.ends_with(
            "tests/data/invalid/misspelt-key.yaml:2:1: unknown key `descripton`; did you mean `description`?\n"
        ),
        "{}",
        outcome.stderr
    );
}

#[test]
fn help_and_version_exit_zero_on_stdout() {
    for args in [
        &["--help"][..],
        &["-h"],
        &["--version"],
        &["run", "--help"],
        &["help"],
    ] {
        let outcome = mqsim(args);
        assert_eq!(outcome.code, Some(0), "{args:?}: {}", outcome.stderr);
        assert!(!outcome.stdout.is_empty(), "{args:?} printed nothing");
    }
    assert!(mqsim(["--version"]).stdout.starts_with("mqsim "));
    // The help is where users learn the exit codes, so it must state them.
    assert!(mqsim(["--help"]).stdout.contains("2 bad input or usage"));
}

#[test]
fn usage_errors_exit_two() {
    for args in [
        &[][..],
        &["frobnicate"],
        &["run"],
        &["validate"],
        &["list", "--bogus"],
        &["list", "a", "b"],
    ] {
        let outcome = mqsim(args);
        assert_eq!(outcome.code, Some(2), "{args:?}");
        assert!(
            outcome.stderr.contains("Usage:"),
            "{args:?}: {}",
            outcome.stderr
        );
    }
}

#[test]
fn missing_path_names_the_path_and_the_os_error() {
    let path = "tests/data/does-not-exist.yaml";
    let os_error = fs::metadata(manifest_dir().join(path)).expect_err("the path must not exist");
    for command in ["run", "validate", "list"] {
        let outcome = mqsim([command, path]);
        assert_eq!(outcome.code, Some(2), "{command}");
        assert_eq!(outcome.stderr, format!("{path}: {os_error}\n"), "{command}");
    }
}

#[test]
fn directory_without_scenarios_is_an_error() {
    let dir = scratch_dir("directory_without_scenarios_is_an_error");
    fs::write(dir.join("notes.txt"), "not a scenario\n").expect("scratch file should be writable");
    let outcome = mqsim([std::ffi::OsStr::new("run"), dir.as_os_str()]);
    assert_eq!(outcome.code, Some(2));
    assert_eq!(
        outcome.stderr,
        format!(
            "{}: no scenario files (*.yaml, *.yml) in this directory\n",
            dir.display()
        )
    );
}

#[test]
fn files_over_one_mebibyte_are_refused_and_one_mebibyte_is_accepted() {
    const LIMIT: usize = 1024 * 1024;
    let dir = scratch_dir("files_over_one_mebibyte_are_refused");
    let header = "name: big\ndescription: Padded with a comment up to the size limit\n\
                  duration: 1s\nbroker: {destinations: []}\n#";
    let at_limit = format!("{header}{}\n", "x".repeat(LIMIT - header.len() - 1));
    assert_eq!(at_limit.len(), LIMIT);
    let at_limit_path = dir.join("at-limit.yaml");
    fs::write(&at_limit_path, &at_limit).expect("scratch file should be writable");
    let outcome = mqsim([std::ffi::OsStr::new("validate"), at_limit_path.as_os_str()]);
    assert_eq!(outcome.code, Some(0), "{}", outcome.stderr);

    let over_path = dir.join("over-limit.yaml");
    fs::write(&over_path, format!("{at_limit}x")).expect("scratch file should be writable");
    let outcome = mqsim([std::ffi::OsStr::new("validate"), over_path.as_os_str()]);
    assert_eq!(outcome.code, Some(2));
    assert_eq!(
        outcome.stderr,
        format!(
            "{}: file is larger than the 1 MiB limit for scenario files\n",
            over_path.display()
        )
    );
}

#[test]
fn duplicate_arguments_are_loaded_once() {
    let outcome = mqsim([
        "validate",
        "tests/data/valid/minimal.yaml",
        "tests/data/valid/minimal.yaml",
    ]);
    assert_eq!(outcome.code, Some(0));
    assert_eq!(outcome.stdout, "ok tests/data/valid/minimal.yaml\n");
}
