//! The `run`, `replay`, `validate` and `list` commands. They write to the given streams instead of the
//! process's, so they can be tested without spawning the binary.

use crate::baseline::{Baseline, Tolerances};
use crate::batch;
use crate::diagnostic::FileError;
use crate::discover::discover;
use crate::exit::Exit;
use crate::scenario::ScenarioFile;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where a command writes: `out` for results, `err` for errors and notes.
#[derive(Debug)]
pub struct Streams<O, E> {
    pub out: O,
    pub err: E,
}

/// `mqsim run`: loads every scenario, then runs each for the seeds asked for (see
/// [`crate::batch`]). A batch with a broken scenario in it does not start.
pub fn run<O: Write, E: Write>(
    paths: &[PathBuf],
    options: &batch::Options,
    io: &mut Streams<O, E>,
) -> io::Result<Exit> {
    match load_batch(paths, &mut io.err)? {
        Some(scenarios) => batch::run(&scenarios, options, &mut io.out, &mut io.err),
        None => Ok(Exit::BadInput),
    }
}

/// Every scenario of a batch, or `None` (after saying why on `err`) when one is broken or
/// there are none: a batch with a broken scenario in it does not start.
fn load_batch(paths: &[PathBuf], err: &mut impl Write) -> io::Result<Option<Vec<ScenarioFile>>> {
    let (scenarios, errors) = load_all(paths);
    if report_errors(&errors, err)? {
        return Ok(None);
    }
    if scenarios.is_empty() {
        writeln!(err, "no scenario files found")?;
        return Ok(None);
    }
    Ok(Some(scenarios))
}

/// `mqsim explore`: loads every scenario, then explores each (see [`crate::explore`]).
pub fn explore<O: Write, E: Write>(
    paths: &[PathBuf],
    options: &crate::explore::Options,
    io: &mut Streams<O, E>,
) -> io::Result<Exit> {
    match load_batch(paths, &mut io.err)? {
        Some(scenarios) => crate::explore::explore(&scenarios, options, &mut io.out, &mut io.err),
        None => Ok(Exit::BadInput),
    }
}

/// `mqsim replay`: see [`batch::replay`].
pub fn replay<O: Write, E: Write>(target: &Path, io: &mut Streams<O, E>) -> io::Result<Exit> {
    batch::replay(target, &mut io.out, &mut io.err)
}

/// `mqsim validate`: loads every scenario and prints `ok PATH` for each valid one.
pub fn validate<O: Write, E: Write>(paths: &[PathBuf], io: &mut Streams<O, E>) -> io::Result<Exit> {
    let (scenarios, errors) = load_all(paths);
    for scenario in &scenarios {
        writeln!(io.out, "ok {}", scenario.path.display())?;
    }
    Ok(if report_errors(&errors, &mut io.err)? {
        Exit::BadInput
    } else {
        Exit::Pass
    })
}

/// `mqsim list`: the catalogue of scenarios in `dir`, one line each with the name and summary.
/// Valid scenarios are listed even when others are broken, since a partial catalogue is still
/// useful; the broken files are reported and make the exit code non-zero.
pub fn list<O: Write, E: Write>(dir: &Path, io: &mut Streams<O, E>) -> io::Result<Exit> {
    let (scenarios, errors) = load_all(&[dir.to_path_buf()]);
    let rows: Vec<[String; 2]> = scenarios
        .iter()
        .map(|s| {
            [
                s.scenario.name().to_owned(),
                s.scenario.summary().to_owned(),
            ]
        })
        .collect();
    write_table(&mut io.out, &rows)?;
    Ok(if report_errors(&errors, &mut io.err)? {
        Exit::BadInput
    } else {
        Exit::Pass
    })
}

/// `mqsim compare`: loads the one scenario, then compares its variants (see
/// [`crate::compare`]).
pub fn compare<O: Write, E: Write>(
    path: &Path,
    options: &crate::compare::Options,
    io: &mut Streams<O, E>,
) -> io::Result<Exit> {
    let (mut scenarios, errors) = load_all(&[path.to_path_buf()]);
    if report_errors(&errors, &mut io.err)? {
        return Ok(Exit::BadInput);
    }
    if scenarios.len() != 1 {
        writeln!(
            io.err,
            "mqsim: compare takes one scenario file; {} holds {}",
            path.display(),
            scenarios.len()
        )?;
        return Ok(Exit::BadInput);
    }
    let file = scenarios.remove(0);
    crate::compare::compare(&file, options, &mut io.out, &mut io.err)
}

/// Reads a baseline file and the `--tolerance` arguments for `mqsim run --baseline`.
pub fn load_baseline(
    path: &Path,
    tolerances: &[String],
    gate_wall_clock: bool,
) -> Result<(Baseline, Tolerances), String> {
    let baseline = Baseline::load(path)?;
    let mut tol = Tolerances {
        gate_wall_clock,
        ..Tolerances::default()
    };
    for t in tolerances {
        tol.apply(t).map_err(|e| format!("--tolerance: {e}"))?;
    }
    Ok((baseline, tol))
}

/// `mqsim baseline save [DIR] --out FILE`: the baseline of a results directory, by default the
/// latest `results/run-*`.
pub fn save_baseline<O: Write, E: Write>(
    results: Option<&Path>,
    out: &Path,
    io: &mut Streams<O, E>,
) -> io::Result<Exit> {
    let dir = match results {
        Some(d) => d.to_path_buf(),
        None => match latest_run(Path::new("results")) {
            Some(d) => d,
            None => {
                writeln!(
                    io.err,
                    "mqsim: no results/run-* directory; run `mqsim run` first or name one"
                )?;
                return Ok(Exit::BadInput);
            }
        },
    };
    let baseline = match Baseline::from_results(&dir) {
        Ok(b) => b,
        Err(e) => {
            writeln!(io.err, "mqsim: {e}")?;
            return Ok(Exit::BadInput);
        }
    };
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    if let Err(e) = crate::runner::write_atomically(out, baseline.to_json().as_bytes()) {
        writeln!(io.err, "{}: cannot write the baseline: {e}", out.display())?;
        return Ok(Exit::BadInput);
    }
    writeln!(
        io.out,
        "baseline of {} runs from {} written to {}",
        baseline.runs.len(),
        dir.display(),
        out.display()
    )?;
    Ok(Exit::Pass)
}

/// The `run-<seconds>` directory under `dir` with the largest number.
fn latest_run(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let secs: u64 = name.strip_prefix("run-")?.parse().ok()?;
            e.path()
                .join("summary.json")
                .is_file()
                .then(|| (secs, e.path()))
        })
        .max()
        .map(|(_, p)| p)
}

/// `mqsim profiles [NAME]`: every broker profile, or one, with the real parameter each of
/// its settings stands for.
pub fn profiles<O: Write, E: Write>(
    name: Option<&str>,
    io: &mut Streams<O, E>,
) -> io::Result<Exit> {
    let chosen: Vec<&crate::profile::Profile> = match name {
        None => crate::profile::PROFILES.iter().collect(),
        Some(n) => match crate::profile::find(n) {
            Some(p) => vec![p],
            None => {
                writeln!(
                    io.err,
                    "mqsim: no profile `{n}`; the profiles are {}",
                    crate::profile::names()
                )?;
                return Ok(Exit::BadInput);
            }
        },
    };
    for (i, p) in chosen.iter().enumerate() {
        if i > 0 {
            writeln!(io.out)?;
        }
        write!(io.out, "{}", p.describe())?;
    }
    Ok(Exit::Pass)
}

/// Loads every scenario under `paths`, keeping going after errors so one run reports them all.
fn load_all(paths: &[PathBuf]) -> (Vec<ScenarioFile>, Vec<FileError>) {
    let found = discover(paths);
    let mut errors = found.errors;
    let mut scenarios = Vec::new();
    for path in &found.files {
        match ScenarioFile::load(path) {
            Ok(scenario) => scenarios.push(scenario),
            Err(err) => errors.push(err),
        }
    }
    (scenarios, errors)
}

/// Writes one line per error and returns whether there were any.
fn report_errors(errors: &[FileError], err: &mut impl Write) -> io::Result<bool> {
    for error in errors {
        writeln!(err, "{error}")?;
    }
    Ok(!errors.is_empty())
}

/// Writes rows with every column but the last padded to a common width, two spaces apart.
/// [`write_table`] into a string.
pub(crate) fn table_text<const N: usize>(rows: &[[String; N]]) -> String {
    let mut out = Vec::new();
    // Writing into a vector cannot fail, and every cell is a `String`, so the bytes are UTF-8.
    let _ = write_table(&mut out, rows);
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn write_table<const N: usize>(
    out: &mut impl Write,
    rows: &[[String; N]],
) -> io::Result<()> {
    let mut widths = [0; N];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in rows {
        let mut line = String::new();
        for (index, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if index + 1 < N {
                let padding = widths[index] - cell.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', padding));
            }
        }
        // An empty last column would otherwise leave trailing spaces.
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::write_table;

    #[test]
    fn table_columns_are_aligned_without_trailing_spaces() {
        let rows = [
            ["a.yaml".to_owned(), "alpha".to_owned(), "First".to_owned()],
            ["long-name.yaml".to_owned(), "b".to_owned(), String::new()],
        ];
        let mut out = Vec::new();
        write_table(&mut out, &rows).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "a.yaml          alpha  First\nlong-name.yaml  b\n"
        );
    }
}
