//! Data-driven error tests: every `tests/data/invalid/NAME.yaml` must make `mqsim validate` exit
//! with 2 and print exactly `tests/data/invalid/NAME.yaml:` followed by `NAME.expected`.

mod common;

use common::{manifest_dir, mqsim};
use std::fs;
use std::path::PathBuf;

const DIR: &str = "tests/data/invalid";

/// The files in the data directory with extension `ext`, sorted, as paths relative to the crate.
fn files_with_extension(ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(manifest_dir().join(DIR))
        .expect("the invalid data directory should exist")
        .map(|entry| entry.expect("directory entry should be readable").path())
        .filter(|path| path.extension().is_some_and(|e| e == ext))
        .map(|path| PathBuf::from(DIR).join(path.file_name().expect("entries have names")))
        .collect();
    files.sort();
    files
}

#[test]
fn every_invalid_file_reports_its_expected_error() {
    let inputs = files_with_extension("yaml");
    // Guards against the test passing vacuously if the data directory were moved or emptied.
    assert!(
        inputs.len() >= 20,
        "only {} invalid inputs found",
        inputs.len()
    );
    let mut failures = Vec::new();
    for input in &inputs {
        let expected_path = manifest_dir().join(input.with_extension("expected"));
        let expected = fs::read_to_string(&expected_path)
            .unwrap_or_else(|err| panic!("{}: {err}", expected_path.display()));
        let expected = format!("{}:{expected}", input.display());
        let outcome = mqsim([std::ffi::OsStr::new("validate"), input.as_os_str()]);
        if outcome.code != Some(2) || outcome.stderr != expected || !outcome.stdout.is_empty() {
            failures.push(format!(
                "{}\n  expected: exit 2, stderr {expected:?}\n  got:      exit {:?}, stderr {:?}, stdout {:?}",
                input.display(),
                outcome.code,
                outcome.stderr,
                outcome.stdout
            ));
        }
    }
    // All mismatches are collected first so one run shows every file that needs attention.
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_expected_file_has_an_input() {
    let inputs = files_with_extension("yaml");
    for expected in files_with_extension("expected") {
        assert!(
            inputs.contains(&expected.with_extension("yaml")),
            "{} has no matching .yaml input",
            expected.display()
        );
    }
}

// Validating the whole directory must report every file, not stop at the first, in path order.
#[test]
fn all_errors_are_reported_in_path_order() {
    let inputs = files_with_extension("yaml");
    let outcome = mqsim(["validate", DIR]);
    assert_eq!(outcome.code, Some(2));
    assert_eq!(outcome.stdout, "");
    let reported: Vec<&str> = outcome
        .stderr
        .lines()
        .map(|line| line.split(':').next().unwrap_or(""))
        .collect();
    let expected: Vec<String> = inputs.iter().map(|p| p.display().to_string()).collect();
    assert_eq!(reported, expected);
}
