//! `mqsim explore`: swarm testing. For each seed, a fault schedule and a workload variation are
//! drawn from the seed within the scenario's `explore` bounds (`draw.rs`), run and checked;
//! the first seed of each scenario that breaks an invariant is shrunk to a minimal scenario
//! that still breaks it (`shrink.rs`), written as a standalone YAML file beside the summary,
//! and run once more to confirm that it reproduces the failure.
//!
//! Runs are judged on invariants only: the scenario's `allow` list holds, invariants it lists
//! as `violated` are allowed (a drawn schedule need not break them), and bounds on counts and
//! metrics are not judged, since they describe the written schedule, not a drawn one.
//!
//! Seeds run on `--jobs` threads in chunks; results are filed in seed order, so verdicts,
//! hashes and the summary do not depend on `--jobs`. `--budget` stops starting chunks once
//! the wall-clock budget is spent, so a budget makes the number of seeds depend on the
//! machine, never the result of a seed.

mod draw;
mod report;
mod shrink;

pub use draw::{FaultDraw, Variation, apply, strategy, tree};
pub use shrink::shrink;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::batch::Shard;
use crate::check::{Invariant, Verdict};
use crate::coverage::Coverage;
use crate::exit::Exit;
use crate::runner::{self, Counts, Outcome, RunVerdict, Violation};
use crate::scenario::{
    Expect, ExploreDoc, FaultKindName, Judgement, Scenario, ScenarioDoc, ScenarioFile,
};

/// Most seeds one invocation explores per scenario.
pub const MAX_SEEDS: u64 = 100_000;
/// Most runs one shrink may take.
pub const MAX_SHRINK_RUNS: u32 = 10_000;

/// The options of `mqsim explore`.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seeds per scenario: the first and the next `seeds - 1`.
    pub seeds: u64,
    /// The first seed; unset, each scenario's own.
    pub first_seed: Option<u64>,
    /// Stop starting seeds once this much wall-clock time has passed.
    pub budget: Option<Duration>,
    /// Runs at once, at least 1.
    pub jobs: usize,
    /// Only this share of the seeds.
    pub shard: Option<Shard>,
    /// The results directory; unset, `results/explore-<unix seconds>`.
    pub out: Option<PathBuf>,
    /// Most runs a shrink takes.
    pub shrink_runs: u32,
}

/// One explored seed, as `summary.json` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExploreRun {
    pub scenario: String,
    pub file: String,
    pub seed: u64,
    pub verdict: RunVerdict,
    /// What failed first: an invariant's name, or an expectation that did not hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// The fault kinds this seed switched on.
    pub fault_kinds: Vec<FaultKindName>,
    /// Fault events drawn (and applied).
    pub faults: usize,
    /// Hosts in the cluster, the broker included.
    pub hosts: u32,
    /// The factor drawn for the producers' rates.
    pub rate_factor: f64,
    pub counts: Counts,
    pub violations: Vec<Violation>,
    pub coverage: Coverage,
    pub history_sha256: String,
}

/// A shrunk failure, as `summary.json` lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reproducer {
    pub scenario: String,
    pub file: String,
    pub seed: u64,
    pub failure: String,
    /// The reproducer, relative to the results directory.
    pub reproducer_file: String,
    pub original: Size,
    pub minimal: Size,
    /// Runs the shrink took.
    pub shrink_runs: u32,
    /// Whether running the written file again failed the same way.
    pub reproduced: bool,
}

/// How big a failing scenario is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Size {
    pub faults: usize,
    pub hosts: u32,
    pub messages: u64,
}

/// The expectation exploration judges by (see the module's documentation).
pub fn explore_expect(expect: &Expect) -> Expect {
    let mut allow = expect.allow.clone();
    allow.extend(expect.violated.iter().copied());
    Expect {
        allow,
        ..Expect::default()
    }
}

/// The bounds a scenario is explored within: its own, or the defaults.
pub fn bounds(doc: &ScenarioDoc) -> ExploreDoc {
    doc.explore.clone().unwrap_or_default()
}

/// Runs `doc` (a variation, already applied) and judges it for exploration. `Err` is a run
/// that could not start, which for a valid scenario is a bug, reported as bad input.
pub fn run_variation(
    doc: &ScenarioDoc,
    file: &Path,
) -> Result<(Scenario, Outcome, Option<String>), String> {
    let text =
        serde_norway::to_string(doc).map_err(|e| format!("cannot write a variation: {e}"))?;
    let scenario = Scenario::parse(&text).map_err(|e| {
        format!(
            "a drawn variation is not a valid scenario ({}:{}: {}); this is a bug in mqsim explore",
            e.line, e.column, e.message
        )
    })?;
    let mut outcome = runner::execute(&scenario.name, file, &scenario.spec, None)
        .map_err(|e| format!("{} seed {}: {e}", file.display(), doc.seed))?;
    let expect = explore_expect(&scenario.expect);
    runner::judge(&expect, &mut outcome);
    let failure = failure(&expect, &outcome);
    Ok((scenario, outcome, failure))
}

/// The invariants `o` broke that `expect` says must hold, in the checkers' order.
fn broken<'a>(expect: &'a Expect, o: &'a Outcome) -> impl Iterator<Item = Invariant> + 'a {
    o.report
        .invariants
        .iter()
        .filter(|r| {
            r.verdict == Verdict::Invalid && expect.judgement(r.invariant) == Judgement::MustBeValid
        })
        .map(|r| r.invariant)
}

/// What failed first: the first invariant (in the checkers' order) that had to be valid and
/// is not, liveness last, since a run that lost or duplicated something often also failed to
/// drain and the correctness violation is the finding to shrink towards; else the first
/// expectation that did not hold; `None` for a run that passed.
fn failure(expect: &Expect, o: &Outcome) -> Option<String> {
    if o.record.verdict == RunVerdict::Pass {
        return None;
    }
    broken(expect, o)
        .find(|&i| i != Invariant::Liveness)
        .or_else(|| broken(expect, o).next())
        .map(|i| i.name().to_owned())
        .or_else(|| o.record.failed_expectations.first().cloned())
}

/// Whether `o` fails with `failure` among its failures (not necessarily first).
fn fails_with(expect: &Expect, o: &Outcome, failure: &str) -> bool {
    o.record.verdict != RunVerdict::Pass
        && (broken(expect, o).any(|i| i.name() == failure)
            || o.record.failed_expectations.iter().any(|f| f == failure))
}

fn hosts(doc: &ScenarioDoc) -> u32 {
    1 + doc.producers.iter().map(|p| p.count).sum::<u32>()
        + doc.consumers.iter().map(|c| c.count).sum::<u32>()
}

fn explore_seed(file: &ScenarioFile, seed: u64) -> Result<ExploreRun, String> {
    let doc = &file.scenario.doc;
    let bounds = bounds(doc);
    let variation = tree(doc, &bounds, seed)?.current();
    let applied = apply(doc, &bounds, &variation, seed);
    let (_, outcome, failure) = run_variation(&applied, &file.path)?;
    let r = outcome.record;
    Ok(ExploreRun {
        scenario: r.scenario,
        file: r.file,
        seed,
        verdict: r.verdict,
        failure,
        fault_kinds: variation.kinds(&bounds),
        faults: applied.faults.len(),
        hosts: hosts(&applied),
        rate_factor: variation.rate_factor(),
        counts: r.counts,
        violations: r.violations,
        coverage: r.coverage,
        history_sha256: r.history_sha256,
    })
}

/// One seed to explore.
struct Job<'a> {
    file: &'a ScenarioFile,
    seed: u64,
}

/// Explores `files` as `options` say; progress goes to `err`, the report to `out`.
pub fn explore(
    files: &[ScenarioFile],
    options: &Options,
    out: &mut impl Write,
    err: &mut impl Write,
) -> io::Result<Exit> {
    let started = Instant::now();
    let Some(dir) = crate::batch::results_dir(options.out.as_deref(), "explore", err)? else {
        return Ok(Exit::BadInput);
    };
    // Seed-major order (every scenario's first seed, then every scenario's second...), so a
    // budget spreads over the scenarios instead of spending itself on the first.
    let seeds = options.seeds.min(MAX_SEEDS);
    let jobs: Vec<Job<'_>> = (0..seeds)
        .flat_map(|k| {
            files.iter().map(move |file| Job {
                file,
                seed: options
                    .first_seed
                    .unwrap_or(file.scenario.seed)
                    .wrapping_add(k),
            })
        })
        .enumerate()
        .filter(|(k, _)| options.shard.is_none_or(|s| s.takes(*k)))
        .map(|(_, job)| job)
        .collect();
    // Chunks of a few runs per thread: small enough that a budget is not overrun by much,
    // large enough that threads rarely wait for each other.
    let chunk = options.jobs.max(1) * 4;
    let mut runs: Vec<ExploreRun> = Vec::new();
    let mut broken = false;
    let mut stopped_by_budget = false;
    for (c, batch) in jobs.chunks(chunk).enumerate() {
        if options.budget.is_some_and(|b| started.elapsed() >= b) {
            stopped_by_budget = true;
            break;
        }
        let done = crate::parallel::map(
            batch,
            options.jobs,
            |job| explore_seed(job.file, job.seed),
            |_, _| Ok::<(), io::Error>(()),
        )?;
        for result in done {
            match result {
                Ok(r) => {
                    if r.verdict != RunVerdict::Pass {
                        writeln!(
                            err,
                            "{} seed {}: {} ({})",
                            r.scenario,
                            r.seed,
                            r.verdict.label(),
                            r.failure.as_deref().unwrap_or("?")
                        )?;
                    }
                    runs.push(r);
                }
                Err(msg) => {
                    writeln!(err, "{msg}")?;
                    broken = true;
                }
            }
        }
        let finished = (c + 1) * chunk;
        if finished.is_multiple_of(chunk * 25) {
            writeln!(
                err,
                "[{}/{}] seeds explored",
                finished.min(jobs.len()),
                jobs.len()
            )?;
        }
    }
    if broken {
        return Ok(Exit::BadInput);
    }
    let explored = started.elapsed();
    // By file, then seed: the order `mqsim merge` files runs in, so that shards merged equal
    // an unsharded exploration.
    runs.sort_by(|a, b| (Path::new(&a.file), a.seed).cmp(&(Path::new(&b.file), b.seed)));
    let firsts: Vec<(&ScenarioFile, &ExploreRun)> = files
        .iter()
        .filter_map(|f| {
            let file = f.path.display().to_string();
            runs.iter()
                .find(|r| r.file == file && r.verdict != RunVerdict::Pass)
                .map(|r| (f, r))
        })
        .collect();
    let shrunk = crate::parallel::map(
        &firsts,
        options.jobs,
        |(file, run)| reproduce(file, run, &dir, options.shrink_runs),
        |_, _| Ok::<(), io::Error>(()),
    )?;
    let mut reproducers = Vec::new();
    for r in shrunk {
        match r {
            Ok(r) => reproducers.push(r),
            Err(msg) => {
                writeln!(err, "{msg}")?;
                return Ok(Exit::BadInput);
            }
        }
    }
    let wall = report::Wall {
        seconds: explored.as_secs_f64(),
        seeds_per_minute: if explored.as_secs_f64() > 0.0 {
            runs.len() as f64 * 60.0 / explored.as_secs_f64()
        } else {
            0.0
        },
        stopped_by_budget,
    };
    report::write(&dir, &runs, &reproducers, &wall, out)
}

/// Shrinks `run`'s variation, writes the minimal scenario beside the summary, and runs the
/// written file once more to confirm it fails the same way.
fn reproduce(
    file: &ScenarioFile,
    run: &ExploreRun,
    dir: &Path,
    max_runs: u32,
) -> Result<Reproducer, String> {
    let doc = &file.scenario.doc;
    let bounds = bounds(doc);
    let failure = run.failure.clone().unwrap_or_default();
    let seed = run.seed;
    let tree = tree(doc, &bounds, seed)?;
    let original = tree.current();
    let mut error = None;
    let (minimal, shrink_runs) = shrink(tree, max_runs, |v| {
        let applied = apply(doc, &bounds, v, seed);
        match run_variation(&applied, &file.path) {
            Ok((scenario, o, _)) => fails_with(&explore_expect(&scenario.expect), &o, &failure),
            Err(e) => {
                error.get_or_insert(e);
                false
            }
        }
    });
    if let Some(e) = error {
        return Err(e);
    }
    let mut small = apply(doc, &bounds, &minimal, seed);
    small.name = format!("{}-seed-{seed}-minimal", doc.name);
    small.description = format!(
        "Minimal reproducer found by mqsim explore: {failure}\n\
         Shrunk from {} seed {seed}: faults {} -> {}, hosts {} -> {}, rate factor {} -> {}.\n",
        run.file,
        run.faults,
        small.faults.len(),
        run.hosts,
        hosts(&small),
        original.rate_factor(),
        minimal.rate_factor(),
    );
    small.expect = explore_expect(&small.expect);
    let name = format!("{}.seed-{seed}.minimal.yaml", file.stem());
    let path = dir.join(&name);
    let text = report::reproducer_text(&small, &failure, &run.file)?;
    runner::write_atomically(&path, text.as_bytes())
        .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
    // Read back what was written, as `mqsim run` would, and run it. Leaving out the defaults
    // must not have changed what runs.
    let again = ScenarioFile::load(&path).map_err(|e| e.to_string())?;
    if again.scenario.spec != small.to_spec() || again.scenario.expect != small.expect {
        return Err(format!(
            "{}: the written reproducer does not read back as the scenario that failed; \
             this is a bug in mqsim explore",
            path.display()
        ));
    }
    let mut o = runner::execute(
        &again.scenario.name,
        &again.path,
        &again.scenario.spec,
        None,
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    runner::judge(&again.scenario.expect, &mut o);
    let reproduced = fails_with(&again.scenario.expect, &o, &failure);
    Ok(Reproducer {
        scenario: run.scenario.clone(),
        file: run.file.clone(),
        seed,
        failure,
        reproducer_file: name,
        original: Size {
            faults: run.faults,
            hosts: run.hosts,
            messages: run.counts.published,
        },
        minimal: Size {
            faults: small.faults.len(),
            hosts: hosts(&small),
            messages: o.record.counts.published,
        },
        shrink_runs,
        reproduced,
    })
}
