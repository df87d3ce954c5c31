//! What `mqsim explore` writes: `summary.json` (every seed's run, the reproducers, and the
//! wall-clock figures apart), `summary.txt` (the same for people, with the coverage table),
//! and each reproducer's YAML file.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;

use super::{ExploreRun, Reproducer};
use crate::exit::Exit;
use crate::runner::{RunVerdict, write_atomically};
use crate::scenario::ScenarioDoc;

/// Wall-clock figures, kept out of the runs so that they alone differ between machines.
#[derive(Debug, Clone, Serialize)]
pub struct Wall {
    /// Exploring the seeds, shrinking apart.
    pub seconds: f64,
    pub seeds_per_minute: f64,
    /// Whether `--budget` ran out before every seed was explored.
    pub stopped_by_budget: bool,
}

#[derive(Debug, Serialize)]
struct SummaryFile<'a> {
    mqsim: &'static str,
    runs: &'a [ExploreRun],
    reproducers: &'a [Reproducer],
    wall_clock: &'a Wall,
}

/// Writes the results files into `dir` and the text report to `out`; the exit code follows
/// the worst run.
pub fn write(
    dir: &Path,
    runs: &[ExploreRun],
    reproducers: &[Reproducer],
    wall: &Wall,
    out: &mut impl Write,
) -> io::Result<Exit> {
    let summary = SummaryFile {
        mqsim: env!("CARGO_PKG_VERSION"),
        runs,
        reproducers,
        wall_clock: wall,
    };
    // Serialising plain data with string keys cannot fail.
    let json = serde_json::to_string_pretty(&summary).unwrap_or_default() + "\n";
    let text = text(runs, reproducers, wall);
    let junit = junit(runs, reproducers, wall);
    for (name, content) in [
        ("summary.json", &json),
        ("summary.txt", &text),
        ("junit.xml", &junit),
    ] {
        write_atomically(&dir.join(name), content.as_bytes())?;
    }
    out.write_all(text.as_bytes())?;
    writeln!(out, "results in {}", dir.display())?;
    let any = |v: RunVerdict| runs.iter().any(|r| r.verdict == v);
    Ok(if any(RunVerdict::Fail) {
        Exit::InvariantFailed
    } else if any(RunVerdict::Liveness) {
        Exit::Liveness
    } else {
        Exit::Pass
    })
}

/// The report for people: per scenario the seeds explored and failed, each failing seed
/// (at most 20 per scenario), each reproducer with its sizes, then the coverage table.
pub fn text(runs: &[ExploreRun], reproducers: &[Reproducer], wall: &Wall) -> String {
    let mut s = String::new();
    for file in scenario_files(runs) {
        let mine: Vec<&ExploreRun> = runs.iter().filter(|r| r.file == file).collect();
        let failed: Vec<&&ExploreRun> = mine
            .iter()
            .filter(|r| r.verdict != RunVerdict::Pass)
            .collect();
        let _ = writeln!(
            s,
            "{} ({file}): {} seeds explored, {} failed",
            mine[0].scenario,
            mine.len(),
            failed.len()
        );
        for r in failed.iter().take(20) {
            let _ = writeln!(
                s,
                "  seed {}: {} {} ({} faults of {}, {} hosts, rate x{})",
                r.seed,
                r.verdict.label(),
                r.failure.as_deref().unwrap_or("?"),
                r.faults,
                kinds(&r.fault_kinds),
                r.hosts,
                r.rate_factor
            );
        }
        if failed.len() > 20 {
            let _ = writeln!(s, "  ... and {} more in summary.json", failed.len() - 20);
        }
        for p in reproducers.iter().filter(|p| p.file == file) {
            let _ = writeln!(
                s,
                "  shrunk seed {} in {} runs: faults {} -> {}, hosts {} -> {}, messages {} -> {}",
                p.seed,
                p.shrink_runs,
                p.original.faults,
                p.minimal.faults,
                p.original.hosts,
                p.minimal.hosts,
                p.original.messages,
                p.minimal.messages
            );
            let _ = writeln!(
                s,
                "  reproducer: {} ({})",
                p.reproducer_file,
                if p.reproduced {
                    format!("fails on {} when run again", p.failure)
                } else {
                    "DID NOT fail again when run; please report this".to_owned()
                }
            );
        }
    }
    let coverage: Vec<_> = runs.iter().map(|r| r.coverage).collect();
    s.push_str(&crate::coverage::table(&coverage));
    let _ = writeln!(
        s,
        "wall clock: {} seeds in {:.1} s ({:.0} seeds per minute){}",
        runs.len(),
        wall.seconds,
        wall.seeds_per_minute,
        if wall.stopped_by_budget {
            "; stopped by --budget"
        } else {
            ""
        }
    );
    s
}

/// JUnit XML for CI: one test case per scenario explored, failed when any seed failed, with
/// the failing seeds and the reproducer in the failure's text.
pub fn junit(runs: &[ExploreRun], reproducers: &[Reproducer], wall: &Wall) -> String {
    use crate::report::{JunitCase, JunitFailure, junit_xml};
    let cases: Vec<JunitCase> = scenario_files(runs)
        .into_iter()
        .map(|file| {
            let mine = runs.iter().filter(|r| r.file == file).count();
            let name = runs
                .iter()
                .find(|r| r.file == file)
                .map_or("", |r| r.scenario.as_str());
            let bad: Vec<&ExploreRun> = runs
                .iter()
                .filter(|r| r.file == file && r.verdict != RunVerdict::Pass)
                .collect();
            let failure = bad.first().map(|first| {
                let mut body: Vec<String> = bad
                    .iter()
                    .take(20)
                    .map(|r| {
                        format!(
                            "seed {}: {} {}",
                            r.seed,
                            r.verdict.name(),
                            r.failure.as_deref().unwrap_or("?")
                        )
                    })
                    .collect();
                for p in reproducers.iter().filter(|p| p.file == file) {
                    body.push(format!(
                        "reproducer: {} ({} faults, {} hosts)",
                        p.reproducer_file, p.minimal.faults, p.minimal.hosts
                    ));
                }
                JunitFailure {
                    kind: first.verdict.name(),
                    message: format!(
                        "{} of {mine} seeds failed, first seed {}: {}",
                        bad.len(),
                        first.seed,
                        first.failure.as_deref().unwrap_or("?")
                    ),
                    body: body.join("\n"),
                }
            });
            JunitCase {
                classname: file,
                name: format!("{name} ({mine} seeds)"),
                time: None,
                failure,
            }
        })
        .collect();
    junit_xml("mqsim explore", wall.seconds, &cases)
}

/// The scenario files explored, in the runs' order.
fn scenario_files(runs: &[ExploreRun]) -> Vec<&str> {
    let mut files: Vec<&str> = runs.iter().map(|r| r.file.as_str()).collect();
    files.dedup();
    files
}

/// The kinds a seed switched on, as `crash+slow`.
fn kinds(kinds: &[crate::scenario::FaultKindName]) -> String {
    let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
    names.join("+")
}

/// A reproducer's file: a comment saying where it came from and how to run it, then the
/// scenario, without the keys left at their defaults as unset or empty (the caller checks
/// that the file reads back to the same cluster).
pub fn reproducer_text(doc: &ScenarioDoc, failure: &str, from: &str) -> Result<String, String> {
    let bad = |e: serde_norway::Error| format!("cannot write the reproducer: {e}");
    let mut value = serde_norway::to_value(doc).map_err(bad)?;
    strip(&mut value);
    let yaml = serde_norway::to_string(&value).map_err(bad)?;
    let features = if doc.broker.defects.is_empty() {
        ""
    } else {
        " --features defects"
    };
    Ok(format!(
        "# Found by `mqsim explore` from {from}, seed {}: {failure}.\n\
         # Reproduce: cargo run --release{features} -- run <this file>\n{yaml}",
        doc.seed
    ))
}

/// Removes, at every depth, mapping entries whose value is null, an empty list or an empty
/// mapping: every such key of the format is optional with that very default.
fn strip(value: &mut serde_norway::Value) {
    use serde_norway::Value;
    match value {
        Value::Mapping(map) => {
            for (_, v) in map.iter_mut() {
                strip(v);
            }
            map.retain(|_, v| match v {
                Value::Null => false,
                Value::Sequence(s) => !s.is_empty(),
                Value::Mapping(m) => !m.is_empty(),
                _ => true,
            });
        }
        Value::Sequence(items) => items.iter_mut().for_each(strip),
        Value::Tagged(tagged) => strip(&mut tagged.value),
        _ => {}
    }
}
