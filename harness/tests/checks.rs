//! Checkers on hand-written histories. Each file in `tests/data/checks/` holds a small cluster
//! (overrides of the base below), and cases: a history (JSON Lines, as the history file
//! writes them, with `time_ms` allowed and `#` comments), whether the drain finished, and the
//! report it must give. Every invariant a case does not name must come out valid, so each
//! failing history has a near-identical twin that must pass.
//!
//! `expect` maps an invariant to `valid`, `unknown`, or the anomaly kinds (comma-separated)
//! that must make it invalid: each must be found, and nothing else; `counts` names counts to
//! compare.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mqsim_harness::check::{self, Invariant, Verdict};
use mqsim_harness::sim::{ClusterSpec, Plan, read};
use serde::Deserialize;
use serde_norway::Value;

/// The cluster every case starts from: processes `producer-0` and `consumer-0`, a queue `q`
/// with a dead-letter queue `dlq` after 3 deliveries, 1 s leases.
const BASE: &str = r#"
seed: 1
tick_ms: 1
duration_ms: 1000
drain_timeout_ms: 1000
broker:
  durability: { policy: always }
  destinations:
    - { name: q, kind: queue, visibility_timeout_ms: 1000, max_deliveries: 3, dead_letter: dlq }
    - { name: dlq, kind: queue }
producers:
  - { destination: q }
consumers:
  - { destination: q }
"#;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    description: String,
    /// Fields merged over the base queue `q`.
    #[serde(default)]
    queue: Option<Value>,
    /// Fields merged over the base consumer.
    #[serde(default)]
    consumer: Option<Value>,
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default = "yes")]
    drained: bool,
    history: String,
    #[serde(default)]
    expect: BTreeMap<String, String>,
    #[serde(default)]
    counts: BTreeMap<String, u64>,
}

fn yes() -> bool {
    true
}

fn merge(into: &mut Value, from: &Value) {
    if let (Value::Mapping(a), Value::Mapping(b)) = (into, from) {
        for (k, v) in b {
            a.insert(k.clone(), v.clone());
        }
    }
}

fn spec_of(file: &File) -> ClusterSpec {
    let mut base: Value = serde_norway::from_str(BASE).unwrap();
    if let Some(q) = &file.queue {
        merge(&mut base["broker"]["destinations"][0], q);
    }
    if let Some(c) = &file.consumer {
        merge(&mut base["consumers"][0], c);
    }
    serde_norway::from_value(base).expect("the case's overrides make a valid spec")
}

fn run_file(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let file: File =
        serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!file.description.is_empty());
    let spec = spec_of(&file);
    spec.validate().unwrap();
    let plan = Plan::new(&spec);
    let mut failures = Vec::new();
    for case in &file.cases {
        let at = format!("{} / {}", path.display(), case.name);
        let history = match read::read(&case.history, &plan) {
            Ok(h) => h,
            Err(e) => {
                failures.push(format!("{at}: {e}"));
                continue;
            }
        };
        let report = check::check(&history, &plan, &spec, case.drained);
        for name in case.expect.keys() {
            if Invariant::from_name(name).is_none() {
                failures.push(format!("{at}: unknown invariant `{name}`"));
            }
        }
        for r in &report.invariants {
            let want = case
                .expect
                .get(r.invariant.name())
                .map_or("valid", String::as_str);
            let ok = match want {
                "valid" => r.verdict == Verdict::Valid,
                "unknown" => r.verdict == Verdict::Unknown,
                kinds => {
                    let kinds: Vec<&str> = kinds.split(',').map(str::trim).collect();
                    r.verdict == Verdict::Invalid
                        && r.anomalies.iter().all(|a| kinds.contains(&a.kind))
                        && kinds
                            .iter()
                            .all(|k| r.anomalies.iter().any(|a| a.kind == *k))
                }
            };
            if !ok {
                failures.push(format!(
                    "{at}: {} expected {want}, got {:?} with {:#?}",
                    r.invariant.name(),
                    r.verdict,
                    r.anomalies
                ));
            }
        }
        let counts = serde_json::to_value(&report.counts).unwrap();
        for (name, want) in &case.counts {
            let got = counts.get(name).and_then(serde_json::Value::as_u64);
            if got != Some(*want) {
                failures.push(format!("{at}: count {name} expected {want}, got {got:?}"));
            }
        }
    }
    failures
}

fn files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/checks");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

#[test]
fn every_hand_written_history_gives_its_expected_report() {
    let files = files();
    assert!(files.len() >= 10, "only {} case files", files.len());
    let failures: Vec<String> = files.iter().flat_map(|p| run_file(p)).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_invariant_has_a_case_that_fails_it_and_one_that_passes_it() {
    let mut failed: BTreeMap<String, usize> = BTreeMap::new();
    let mut cases = 0;
    for path in files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let file: File = serde_norway::from_str(&text).unwrap();
        for case in &file.cases {
            cases += 1;
            for (name, want) in &case.expect {
                if want != "valid" && want != "unknown" {
                    *failed.entry(name.clone()).or_default() += 1;
                }
            }
        }
    }
    for i in Invariant::ALL {
        assert!(
            failed.contains_key(i.name()),
            "no case makes {} fail",
            i.name()
        );
    }
    // Every case not naming an invariant expects it valid, so with more cases than
    // invariants each one is also shown passing somewhere.
    assert!(cases > Invariant::ALL.len());
}
