//! `mqsim run`: every scenario for every seed asked for, simulated, checked against its
//! `expect` block, and written under a results directory.
//!
//! Runs are independent simulations, so `--jobs` runs several at once on threads of their own
//! (each simulation is single-threaded and deterministic; nothing is shared between them).
//! Results are collected by job number, so the table, `summary.json` and the exit code do not
//! depend on which run finished first.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::baseline::{self, Baseline, Tolerances};
use crate::exit::Exit;
use crate::runner::{self, Record, RunVerdict};
use crate::scenario::ScenarioFile;

/// Which seeds to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seeds {
    /// Each scenario's own seed.
    Own,
    /// This seed for every scenario.
    One(u64),
    /// Each scenario's seed and the next `n - 1`.
    Count(u64),
}

/// How the final report is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// The options of `mqsim run`.
#[derive(Debug, Clone)]
pub struct Options {
    pub seeds: Seeds,
    /// The results directory; unset, `results/run-<unix seconds>`.
    pub out: Option<PathBuf>,
    /// Runs at once, at least 1.
    pub jobs: usize,
    pub format: Format,
    /// A progress bar on stderr (a terminal) instead of a line per finished run.
    pub progress_bar: bool,
    /// A baseline to compare the run with, and the tolerances.
    pub baseline: Option<(Baseline, Tolerances)>,
    /// Only this share of the runs (see [`Shard`]).
    pub shard: Option<Shard>,
}

/// One of `count` disjoint shares of a batch's runs, for spreading a batch over machines:
/// shard `index` (1-based) takes the runs whose position in the whole batch's order is
/// `index - 1` modulo `count`. `mqsim merge` puts the shares' results back together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

/// Most shards a batch can be split into.
pub const MAX_SHARDS: u64 = 10_000;

impl std::str::FromStr for Shard {
    type Err = String;

    /// `i/n`, with 1 <= i <= n <= [`MAX_SHARDS`].
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{text}` is not a shard; expected i/n with 1 <= i <= n <= {MAX_SHARDS}, such as 2/4"
            )
        };
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        let (index, count): (u64, u64) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if index == 0 || index > count || count > MAX_SHARDS {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Whether the run at `position` in the whole batch belongs to this shard.
    pub fn takes(&self, position: usize) -> bool {
        position as u64 % self.count == self.index - 1
    }
}

/// Most seeds one invocation runs per scenario: a bound on the work a typo can start.
pub const MAX_SEEDS: u64 = 10_000;

/// One run to do.
struct Job<'a> {
    file: &'a ScenarioFile,
    seed: u64,
}

/// Runs `files` as `options` say; progress goes to `err`, the table or JSON to `out`.
pub fn run(
    files: &[ScenarioFile],
    options: &Options,
    out: &mut impl Write,
    err: &mut impl Write,
) -> io::Result<Exit> {
    let Some(dir) = results_dir(options.out.as_deref(), "run", err)? else {
        return Ok(Exit::BadInput);
    };
    let jobs: Vec<Job<'_>> = files
        .iter()
        .flat_map(|file| {
            let own = file.scenario.seed;
            let seeds: Vec<u64> = match options.seeds {
                Seeds::Own => vec![own],
                Seeds::One(s) => vec![s],
                Seeds::Count(n) => (0..n.min(MAX_SEEDS)).map(|k| own.wrapping_add(k)).collect(),
            };
            seeds.into_iter().map(move |seed| Job { file, seed })
        })
        .enumerate()
        .filter(|(k, _)| options.shard.is_none_or(|s| s.takes(*k)))
        .map(|(_, job)| job)
        .collect();
    let bar = options.progress_bar.then(|| {
        let bar = indicatif::ProgressBar::new(jobs.len() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} runs, {elapsed} elapsed, ETA {eta}  {msg}",
        ) {
            bar.set_style(style);
        }
        bar
    });
    let mut finished = 0;
    let results = crate::parallel::map(
        &jobs,
        options.jobs,
        |job| run_one(job, &dir),
        |_, result| -> io::Result<()> {
            finished += 1;
            if let Some(bar) = &bar {
                bar.inc(1);
                if let Ok(r) = result {
                    bar.set_message(format!(
                        "{} seed {}: {}",
                        r.scenario,
                        r.seed,
                        r.verdict.label()
                    ));
                }
                return Ok(());
            }
            let line = match result {
                Ok(r) => format!(
                    "[{finished}/{}] {} seed {}: {}",
                    jobs.len(),
                    r.scenario,
                    r.seed,
                    r.verdict.label()
                ),
                Err(msg) => format!("[{finished}/{}] {msg}", jobs.len()),
            };
            writeln!(err, "{line}")
        },
    )?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let mut records = Vec::new();
    let mut broken = false;
    for result in results {
        match result {
            Ok(r) => records.push(r),
            Err(msg) => {
                writeln!(err, "{msg}")?;
                broken = true;
            }
        }
    }
    let summary = runner::summary_json(&records);
    let table = table_text(&records);
    let comparison = options
        .baseline
        .as_ref()
        .map(|(b, tol)| baseline::compare(b, &records, tol));
    let comparison_text = comparison.as_ref().map(baseline::Comparison::text);
    let mut files = vec![
        ("summary.json", summary.clone()),
        (
            "summary.txt",
            format!("{table}\n{}", coverage_table(&records)),
        ),
        ("report.md", crate::report::markdown(&records)),
        ("junit.xml", crate::report::junit(&records)),
        ("report.html", crate::html::run_report(&records)),
    ];
    if let Some(text) = &comparison_text {
        files.push(("baseline.txt", text.clone()));
    }
    let written = files
        .iter()
        .try_for_each(|(name, text)| runner::write_atomically(&dir.join(name), text.as_bytes()));
    if let Err(e) = written {
        writeln!(err, "{}: cannot write the results: {e}", dir.display())?;
        return Ok(Exit::BadInput);
    }
    match options.format {
        Format::Text => {
            out.write_all(table.as_bytes())?;
            if let Some(text) = &comparison_text {
                out.write_all(text.as_bytes())?;
            }
            writeln!(out, "results in {}", dir.display())?;
        }
        Format::Json => out.write_all(summary.as_bytes())?,
    }
    let regressed = comparison
        .as_ref()
        .is_some_and(baseline::Comparison::regressed);
    Ok(if broken {
        Exit::BadInput
    } else if regressed || records.iter().any(|r| r.verdict == RunVerdict::Fail) {
        Exit::InvariantFailed
    } else if records.iter().any(|r| r.verdict == RunVerdict::Liveness) {
        Exit::Liveness
    } else {
        Exit::Pass
    })
}

/// The results directory, `out` or else `results/<what>-<unix seconds>`, created; `None`
/// (after saying why on `err`) when it cannot be.
pub fn results_dir(
    out: Option<&Path>,
    what: &str,
    err: &mut impl Write,
) -> io::Result<Option<PathBuf>> {
    let dir = out.map_or_else(|| timestamped_dir(what), Path::to_path_buf);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        writeln!(
            err,
            "{}: cannot create the results directory: {e}",
            dir.display()
        )?;
        return Ok(None);
    }
    Ok(Some(dir))
}

/// `results/<what>-<unix seconds>`, the default results directory.
pub fn timestamped_dir(what: &str) -> PathBuf {
    // The wall clock only names the directory; nothing simulated reads it.
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Path::new("results").join(format!("{what}-{secs}"))
}

/// The history file of one run: the scenario's file stem and the seed.
fn history_name(file: &ScenarioFile, seed: u64) -> String {
    format!("{}.seed-{seed}.history.jsonl", file.stem())
}

fn run_one(job: &Job<'_>, dir: &Path) -> Result<Record, String> {
    let mut spec = job.file.scenario.spec.clone();
    spec.seed = job.seed;
    let name = history_name(job.file, job.seed);
    let history = dir.join(&name);
    // The history is written under a temporary name and renamed once complete, so a results
    // directory never holds half a history under its real name.
    let partial = dir.join(format!(".{name}.partial"));
    let failed = |e: &dyn std::fmt::Display| {
        let _ = std::fs::remove_file(&partial);
        format!("{} seed {}: {e}", job.file.path.display(), job.seed)
    };
    let mut outcome = runner::execute(
        &job.file.scenario.name,
        &job.file.path,
        &spec,
        Some(&partial),
    )
    .map_err(|e| failed(&e))?;
    std::fs::rename(&partial, &history).map_err(|e| failed(&e))?;
    outcome.record.history_file = Some(name);
    runner::judge(&job.file.scenario.expect, &mut outcome);
    Ok(outcome.record)
}

/// The table, then for each run that did not pass, why.
/// Which interesting paths the runs went through, with those none reached flagged.
fn coverage_table(records: &[Record]) -> String {
    let runs: Vec<crate::coverage::Coverage> = records.iter().map(|r| r.coverage).collect();
    crate::coverage::table(&runs)
}

fn table_text(records: &[Record]) -> String {
    let mut s = crate::commands::table_text(&runner::table(records));
    for r in records.iter().filter(|r| r.verdict != RunVerdict::Pass) {
        s.push_str(&format!("\n{} seed {} ({}):\n", r.scenario, r.seed, r.file));
        for line in crate::report::failure_lines(r, 10) {
            s.push_str(&format!("  {line}\n"));
        }
    }
    s
}

/// What `replay` reads back from `summary.json`.
#[derive(Debug, serde::Deserialize)]
struct SavedSummary {
    runs: Vec<SavedRun>,
}

#[derive(Debug, serde::Deserialize)]
struct SavedRun {
    scenario: String,
    file: PathBuf,
    seed: u64,
    history_sha256: String,
    #[serde(default)]
    history_file: Option<String>,
}

/// `mqsim replay`: runs again what a results directory (or one history file in it) records,
/// from the scenario file and seed, and confirms the history hash is the same.
pub fn replay(target: &Path, out: &mut impl Write, err: &mut impl Write) -> io::Result<Exit> {
    let (dir, only) = if target.is_dir() {
        (target.to_path_buf(), None)
    } else {
        let dir = target
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned());
        (dir, name)
    };
    let summary_path = dir.join("summary.json");
    let text = match std::fs::read_to_string(&summary_path) {
        Ok(t) => t,
        Err(e) => {
            writeln!(err, "{}: {e}", summary_path.display())?;
            return Ok(Exit::BadInput);
        }
    };
    let saved: SavedSummary = match serde_json::from_str(&text) {
        Ok(s) => s,
        Err(e) => {
            writeln!(
                err,
                "{}:{}:{}: {e}",
                summary_path.display(),
                e.line(),
                e.column()
            )?;
            return Ok(Exit::BadInput);
        }
    };
    let runs: Vec<&SavedRun> = saved
        .runs
        .iter()
        .filter(|r| only.is_none() || r.history_file == only)
        .collect();
    if runs.is_empty() {
        writeln!(err, "{}: no run to replay", target.display())?;
        return Ok(Exit::BadInput);
    }
    let mut mismatch = false;
    for run in runs {
        let file = match ScenarioFile::load(&run.file) {
            Ok(f) => f,
            Err(e) => {
                writeln!(err, "{e}")?;
                return Ok(Exit::BadInput);
            }
        };
        let mut spec = file.scenario.spec.clone();
        spec.seed = run.seed;
        let report = match crate::sim::run(spec, None) {
            Ok(r) => r,
            Err(e) => {
                writeln!(err, "{} seed {}: {e}", run.file.display(), run.seed)?;
                return Ok(Exit::BadInput);
            }
        };
        if report.hash == run.history_sha256 {
            writeln!(
                out,
                "same   {} seed {} {}",
                run.scenario, run.seed, report.hash
            )?;
        } else {
            mismatch = true;
            writeln!(
                out,
                "DIFFERS {} seed {}: recorded {}, replayed {}",
                run.scenario, run.seed, run.history_sha256, report.hash
            )?;
        }
    }
    Ok(if mismatch {
        Exit::InvariantFailed
    } else {
        Exit::Pass
    })
}
