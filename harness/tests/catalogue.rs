//! The catalogue is a test: every scenario in `scenarios/` runs at its own seed and must meet
//! its `expect` block, and a second run must give the same history hash. One failing file
//! names itself; the others still run.

use std::path::{Path, PathBuf};

use mqsim_harness::batch;
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

#[test]
fn every_catalogue_scenario_meets_its_expectations_and_replays() {
    let files = catalogue();
    assert!(files.len() >= 16, "only {} scenarios", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let file = match ScenarioFile::load(path) {
            Ok(f) => f,
            Err(e) => {
                failures.push(e.to_string());
                continue;
            }
        };
        let s = &file.scenario;
        let mut outcome = runner::execute(&s.name, path, &s.spec, None).unwrap();
        batch::judge(&s.expect, &mut outcome);
        let r = &outcome.record;
        if r.verdict != RunVerdict::Pass {
            failures.push(format!(
                "{}: {:?}: {:?} {:?}",
                path.display(),
                r.verdict,
                r.failed_expectations,
                r.violations.iter().take(3).collect::<Vec<_>>()
            ));
        }
        let again = mqsim_harness::sim::run(s.spec.clone(), None).unwrap();
        if again.hash != r.history_sha256 {
            failures.push(format!(
                "{}: the second run's history differs",
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
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
