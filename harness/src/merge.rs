//! `mqsim merge`: results directories of `mqsim run --shard i/n` (or of any runs) combined
//! into one, as if one run had made them all: the runs of every `summary.json` in the order an
//! unsharded run files them (scenario file, then seed), and their history files beside it.
//!
//! Runs are taken as `summary.json` wrote them, so nothing is recomputed and a merged summary
//! equals the unsharded run's but for the wall-clock figures.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::exit::Exit;
use crate::runner::write_atomically;

/// Merges `dirs` into `out`; a summary of it goes to `out_stream`, errors to `err`.
pub fn merge(
    dirs: &[PathBuf],
    out: &Path,
    out_stream: &mut impl Write,
    err: &mut impl Write,
) -> io::Result<Exit> {
    match merge_runs(dirs, out) {
        Ok(runs) => {
            let verdict = |v: &str| runs.iter().any(|r| r["verdict"] == v);
            writeln!(
                out_stream,
                "{} runs from {} directories merged into {}",
                runs.len(),
                dirs.len(),
                out.display()
            )?;
            Ok(if verdict("fail") {
                Exit::InvariantFailed
            } else if verdict("liveness") {
                Exit::Liveness
            } else {
                Exit::Pass
            })
        }
        Err(e) => {
            writeln!(err, "mqsim: {e}")?;
            Ok(Exit::BadInput)
        }
    }
}

/// Copies `name`, a file beside a summary in `dir`, to `out`, refusing a name that is a path.
fn copy_beside(dir: &Path, name: &str, out: &Path) -> Result<(), String> {
    // The name is the run's own (`<stem>.seed-<n>.history.jsonl`, `<stem>.seed-<n>.minimal.yaml`);
    // a path in it would reach outside the directories being merged.
    if Path::new(name).file_name() != Some(std::ffi::OsStr::new(name)) {
        return Err(format!(
            "{}: file `{name}` is not a plain file name",
            dir.display()
        ));
    }
    let (from, to) = (dir.join(name), out.join(name));
    if from != to {
        std::fs::copy(&from, &to).map_err(|e| format!("{}: cannot copy: {e}", from.display()))?;
    }
    Ok(())
}

/// What a results directory's `summary.json` holds: the mqsim version, the runs, and the
/// reproducers an exploration wrote (a run's summary has none).
struct Summary {
    version: String,
    runs: Vec<Value>,
    reproducers: Vec<Value>,
}

fn read_summary(dir: &Path) -> Result<Summary, String> {
    let path = dir.join("summary.json");
    let bytes = crate::baseline::read(&path)?;
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    let list = |key: &str| v[key].as_array().cloned();
    Ok(Summary {
        version: v["mqsim"].as_str().unwrap_or_default().to_owned(),
        runs: list("runs").ok_or_else(|| format!("{}: no `runs` list", path.display()))?,
        reproducers: list("reproducers").unwrap_or_default(),
    })
}

/// The order an unsharded run files runs in: scenario file, then seed.
fn key(run: &Value) -> (PathBuf, u64) {
    (
        PathBuf::from(run["file"].as_str().unwrap_or_default()),
        run["seed"].as_u64().unwrap_or_default(),
    )
}

fn merge_runs(dirs: &[PathBuf], out: &Path) -> Result<Vec<Value>, String> {
    let mut version = None;
    let mut all: Vec<(Value, PathBuf)> = Vec::new();
    let mut reproducers: Vec<(Value, PathBuf)> = Vec::new();
    for dir in dirs {
        let Summary {
            version: v,
            runs,
            reproducers: found,
        } = read_summary(dir)?;
        if *version.get_or_insert_with(|| v.clone()) != v {
            return Err(format!(
                "{}: written by mqsim {v}, the others by {}; merge results of one version",
                dir.display(),
                version.as_deref().unwrap_or_default()
            ));
        }
        all.extend(runs.into_iter().map(|r| (r, dir.clone())));
        reproducers.extend(found.into_iter().map(|r| (r, dir.clone())));
    }
    all.sort_by_key(|(r, _)| key(r));
    if let Some(w) = all.windows(2).find(|w| key(&w[0].0) == key(&w[1].0)) {
        let (file, seed) = key(&w[0].0);
        return Err(format!(
            "{} seed {seed} is in both {} and {}; shards must not overlap",
            file.display(),
            w[0].1.display(),
            w[1].1.display()
        ));
    }
    std::fs::create_dir_all(out)
        .map_err(|e| format!("{}: cannot create the directory: {e}", out.display()))?;
    for (run, dir) in &all {
        if let Some(name) = run["history_file"].as_str() {
            copy_beside(dir, name, out)?;
        }
    }
    for (p, dir) in &reproducers {
        if let Some(name) = p["reproducer_file"].as_str() {
            copy_beside(dir, name, out)?;
        }
    }
    reproducers.sort_by_key(|(p, _)| key(p));
    let runs: Vec<Value> = all.into_iter().map(|(r, _)| r).collect();
    let mut summary = serde_json::json!({
        "mqsim": version.unwrap_or_default(),
        "runs": runs,
    });
    // An exploration's shards each shrink their own first failure, so the merged list is
    // theirs together; the runs alone are what equals an unsharded exploration.
    if !reproducers.is_empty() {
        let list: Vec<Value> = reproducers.into_iter().map(|(p, _)| p).collect();
        summary["reproducers"] = Value::Array(list);
    }
    let text = serde_json::to_string_pretty(&summary).unwrap_or_default() + "\n";
    write_atomically(&out.join("summary.json"), text.as_bytes())
        .map_err(|e| format!("{}: cannot write: {e}", out.display()))?;
    Ok(runs)
}
