//! Regression tracking: a baseline is what a run measured, kept in a file; a later run is
//! compared with it metric by metric.
//!
//! Thresholds are directional: throughput has a floor, latencies and lag a ceiling, and
//! anomaly counts must not rise. Simulated-time figures are exact for a seed, so by default
//! any worsening at all is a regression; a tolerance (`5%`) can loosen one metric or all of
//! them. Wall-clock time varies with the machine and its load: it is compared against its
//! own, wide tolerance and only warns unless asked to gate. Runs are matched by scenario name
//! and seed; a run without a baseline is listed as new, never failed.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::runner::{Record, RunVerdict};

/// Which way a metric gets worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    /// Lower is worse (throughput).
    Floor,
    /// Higher is worse (latency, lag, anomaly counts, wall time).
    Ceiling,
}

/// The simulated-time metrics a baseline keeps, with the way each gets worse.
pub const SIMULATED: &[(&str, Direction)] = &[
    ("throughput_per_s", Direction::Floor),
    ("e2e_latency_ms_p50", Direction::Ceiling),
    ("e2e_latency_ms_p90", Direction::Ceiling),
    ("e2e_latency_ms_p99", Direction::Ceiling),
    ("e2e_latency_ms_p999", Direction::Ceiling),
    ("e2e_latency_ms_max", Direction::Ceiling),
    ("publish_latency_ms_p99", Direction::Ceiling),
    ("publish_latency_ms_max", Direction::Ceiling),
    ("send_delay_ms_p99", Direction::Ceiling),
    ("max_lag", Direction::Ceiling),
];

/// Anomaly counts that must not rise.
pub const ANOMALIES: &[&str] = &[
    "lost",
    "duplicate_deliveries",
    "duplicate_effects",
    "out_of_order",
    "violations",
    "failed_expectations",
];

/// The largest summary.json or baseline file read (10,000 seeds of every catalogue scenario
/// fit with room to spare).
pub const MAX_RESULTS_BYTES: u64 = 1 << 30;

/// The wall-clock figure a baseline keeps.
pub const WALL: &str = "wall_seconds";

/// Default tolerance of wall-clock time: twice the baseline before it warns.
pub const DEFAULT_WALL_TOLERANCE: f64 = 1.0;

/// One run as a baseline keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineRun {
    pub scenario: String,
    pub seed: u64,
    pub verdict: String,
    pub history_sha256: String,
    /// Simulated-time metrics and anomaly counts by name.
    pub values: BTreeMap<String, f64>,
    /// Wall-clock seconds of the run on the machine that saved the baseline.
    pub wall_seconds: f64,
}

/// A baseline file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// The mqsim version that saved it.
    pub mqsim: String,
    pub runs: Vec<BaselineRun>,
}

impl BaselineRun {
    /// What a baseline keeps of `r`.
    pub fn of(r: &Record) -> Self {
        // Through summary.json's own form, so that a baseline saved from a results directory
        // and one taken from a live run cannot differ.
        let v = serde_json::to_value(r).unwrap_or_default();
        Self::from_summary(&v).unwrap_or_else(|_| BaselineRun {
            scenario: r.scenario.clone(),
            seed: r.seed,
            verdict: r.verdict.name().to_owned(),
            history_sha256: r.history_sha256.clone(),
            values: BTreeMap::new(),
            wall_seconds: r.wall_clock.seconds,
        })
    }

    /// What a baseline keeps of one run of a `summary.json`, or the field it lacks.
    pub fn from_summary(run: &serde_json::Value) -> Result<Self, String> {
        let text = |key: &str| {
            run[key]
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("a run without `{key}`"))
        };
        let number = |path: &[&str]| {
            let mut v = run;
            for p in path {
                v = &v[*p];
            }
            v.as_f64()
                .ok_or_else(|| format!("a run without `{}`", path.join(".")))
        };
        let mut values = BTreeMap::new();
        values.insert(
            "throughput_per_s".to_owned(),
            number(&["metrics", "throughput_per_s"])?,
        );
        for prefix in ["e2e_latency_ms", "publish_latency_ms", "send_delay_ms"] {
            for p in ["p50", "p90", "p99", "p999", "max"] {
                values.insert(format!("{prefix}_{p}"), number(&["metrics", prefix, p])?);
            }
        }
        values.insert("max_lag".to_owned(), number(&["metrics", "max_lag"])?);
        for name in [
            "lost",
            "duplicate_deliveries",
            "duplicate_effects",
            "out_of_order",
        ] {
            values.insert(name.to_owned(), number(&["counts", name])?);
        }
        for name in ["violations", "failed_expectations"] {
            let n = run[name]
                .as_array()
                .ok_or_else(|| format!("a run without `{name}`"))?
                .len();
            values.insert(name.to_owned(), n as f64);
        }
        Ok(BaselineRun {
            scenario: text("scenario")?,
            seed: run["seed"]
                .as_u64()
                .ok_or_else(|| "a run without `seed`".to_owned())?,
            verdict: text("verdict")?,
            history_sha256: text("history_sha256")?,
            values,
            wall_seconds: number(&["wall_clock", "seconds"])?,
        })
    }
}

impl Baseline {
    /// The baseline of a run's records.
    pub fn of(records: &[Record]) -> Self {
        Baseline {
            mqsim: env!("CARGO_PKG_VERSION").to_owned(),
            runs: records.iter().map(BaselineRun::of).collect(),
        }
    }

    /// The baseline of a results directory's `summary.json`.
    pub fn from_results(dir: &Path) -> Result<Self, String> {
        let path = dir.join("summary.json");
        let bytes = read(&path)?;
        let v: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
        let runs = v["runs"]
            .as_array()
            .ok_or_else(|| format!("{}: no `runs`", path.display()))?;
        let runs = runs
            .iter()
            .map(BaselineRun::from_summary)
            .collect::<Result<Vec<_>, String>>()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Baseline {
            mqsim: env!("CARGO_PKG_VERSION").to_owned(),
            runs,
        })
    }

    /// Its file text.
    pub fn to_json(&self) -> String {
        // Plain data with string keys always serialises.
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    /// Reads a baseline file, or says why it cannot be used.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = read(path)?;
        let text =
            String::from_utf8(text).map_err(|_| format!("{}: not UTF-8 text", path.display()))?;
        serde_json::from_str(&text).map_err(|e| {
            format!(
                "{}:{}:{}: not a baseline: {e}",
                path.display(),
                e.line(),
                e.column()
            )
        })
    }
}

/// Reads a results file (summary.json, a baseline) of at most [`MAX_RESULTS_BYTES`].
pub(crate) fn read(path: &Path) -> Result<Vec<u8>, String> {
    crate::source::read_at_most(path, MAX_RESULTS_BYTES).map_err(|e| match e {
        crate::diagnostic::FileError::TooLarge { .. } => {
            format!("{}: larger than {MAX_RESULTS_BYTES} bytes", path.display())
        }
        e => e.to_string(),
    })
}

/// Tolerances by metric name, as fractions (0.05 for 5 %).
#[derive(Debug, Clone, PartialEq)]
pub struct Tolerances {
    /// For simulated metrics not named in `per_metric`.
    pub simulated: f64,
    pub wall: f64,
    pub per_metric: BTreeMap<String, f64>,
    /// Whether a wall-clock regression fails the run instead of warning.
    pub gate_wall_clock: bool,
}

impl Default for Tolerances {
    fn default() -> Self {
        Tolerances {
            simulated: 0.0,
            wall: DEFAULT_WALL_TOLERANCE,
            per_metric: BTreeMap::new(),
            gate_wall_clock: false,
        }
    }
}

/// Parses `5%` or `0.05` into a fraction.
fn fraction(text: &str) -> Result<f64, String> {
    let (number, scale) = match text.strip_suffix('%') {
        Some(n) => (n, 100.0),
        None => (text, 1.0),
    };
    let v: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a tolerance; expected a percentage such as 5%"))?;
    let v = v / scale;
    if !(0.0..=100.0).contains(&v) {
        return Err(format!("tolerance `{text}` is out of range (0% to 10000%)"));
    }
    Ok(v)
}

impl Tolerances {
    /// Applies one `--tolerance` argument: `5%` for every simulated metric, or `NAME=5%` for
    /// one (`wall_seconds` for wall-clock time).
    pub fn apply(&mut self, arg: &str) -> Result<(), String> {
        match arg.split_once('=') {
            None => self.simulated = fraction(arg)?,
            Some((name, value)) => {
                let name = name.trim();
                let v = fraction(value)?;
                if name == WALL {
                    self.wall = v;
                } else if SIMULATED.iter().any(|(n, _)| *n == name) || ANOMALIES.contains(&name) {
                    self.per_metric.insert(name.to_owned(), v);
                } else {
                    let known: Vec<&str> = SIMULATED
                        .iter()
                        .map(|(n, _)| *n)
                        .chain(ANOMALIES.iter().copied())
                        .chain([WALL])
                        .collect();
                    return Err(format!(
                        "no metric `{name}`; the metrics are {}",
                        known.join(", ")
                    ));
                }
            }
        }
        Ok(())
    }

    fn of(&self, name: &str) -> f64 {
        self.per_metric.get(name).copied().unwrap_or(self.simulated)
    }
}

/// How a comparison of one metric came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Regression,
    /// Worse beyond its tolerance, but only warned about (wall-clock time).
    Warning,
}

/// One metric that moved beyond its threshold.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Moved {
    pub scenario: String,
    pub seed: u64,
    pub metric: String,
    pub baseline: f64,
    pub now: f64,
    pub threshold: f64,
    pub direction: Direction,
    pub status: Status,
}

/// The comparison of a run with a baseline.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Comparison {
    pub moved: Vec<Moved>,
    /// Runs with no baseline (scenario and seed).
    pub new_runs: Vec<(String, u64)>,
    /// Runs whose history differs from the baseline's (figures are compared anyway).
    pub changed_histories: Vec<(String, u64)>,
    /// Runs compared.
    pub compared: usize,
}

impl Comparison {
    pub fn regressed(&self) -> bool {
        self.moved.iter().any(|m| m.status == Status::Regression)
    }

    /// The text report: what moved, by how much, against which threshold.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let regressions = self
            .moved
            .iter()
            .filter(|m| m.status == Status::Regression)
            .count();
        let _ = writeln!(
            s,
            "baseline: {} runs compared, {regressions} regressions, {} warnings, {} new, {} \
             with a different history",
            self.compared,
            self.moved.len() - regressions,
            self.new_runs.len(),
            self.changed_histories.len()
        );
        if self.moved.is_empty() {
            return s;
        }
        let mut rows = vec![[
            "scenario".to_owned(),
            "seed".to_owned(),
            "metric".to_owned(),
            "baseline".to_owned(),
            "now".to_owned(),
            "change".to_owned(),
            "threshold".to_owned(),
            "status".to_owned(),
        ]];
        for m in &self.moved {
            let change = if m.baseline == 0.0 {
                "new".to_owned()
            } else {
                format!("{:+.1}%", (m.now - m.baseline) / m.baseline * 100.0)
            };
            let threshold = match m.direction {
                Direction::Floor => format!(">= {}", number(m.threshold)),
                Direction::Ceiling => format!("<= {}", number(m.threshold)),
            };
            rows.push([
                m.scenario.clone(),
                m.seed.to_string(),
                m.metric.clone(),
                number(m.baseline),
                number(m.now),
                change,
                threshold,
                match m.status {
                    Status::Regression => "REGRESSION".to_owned(),
                    Status::Warning => "warning".to_owned(),
                },
            ]);
        }
        s + &crate::commands::table_text(&rows)
    }
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// Compares `records` with `baseline` under `tol`.
pub fn compare(baseline: &Baseline, records: &[Record], tol: &Tolerances) -> Comparison {
    let by_key: BTreeMap<(&str, u64), &BaselineRun> = baseline
        .runs
        .iter()
        .map(|b| ((b.scenario.as_str(), b.seed), b))
        .collect();
    let mut c = Comparison::default();
    for r in records {
        let Some(base) = by_key.get(&(r.scenario.as_str(), r.seed)) else {
            c.new_runs.push((r.scenario.clone(), r.seed));
            continue;
        };
        c.compared += 1;
        if base.history_sha256 != r.history_sha256 {
            c.changed_histories.push((r.scenario.clone(), r.seed));
        }
        let now = BaselineRun::of(r);
        let mut check = |metric: &str, direction: Direction, tolerance: f64, gate: bool| {
            let (Some(&was), Some(&is)) = (base.values.get(metric), now.values.get(metric)) else {
                return;
            };
            push_if_worse(&mut c.moved, r, metric, was, is, direction, tolerance, gate);
        };
        for &(metric, direction) in SIMULATED {
            check(metric, direction, tol.of(metric), true);
        }
        for &metric in ANOMALIES {
            check(metric, Direction::Ceiling, tol.of(metric), true);
        }
        push_if_worse(
            &mut c.moved,
            r,
            WALL,
            base.wall_seconds,
            now.wall_seconds,
            Direction::Ceiling,
            tol.wall,
            tol.gate_wall_clock,
        );
        if base.verdict == RunVerdict::Pass.name() && r.verdict != RunVerdict::Pass {
            c.moved.push(Moved {
                scenario: r.scenario.clone(),
                seed: r.seed,
                metric: format!("verdict ({})", r.verdict.name()),
                baseline: 0.0,
                now: 1.0,
                threshold: 0.0,
                direction: Direction::Ceiling,
                status: Status::Regression,
            });
        }
    }
    c
}

#[allow(clippy::too_many_arguments)] // One comparison's facts; a struct would only rename them.
fn push_if_worse(
    moved: &mut Vec<Moved>,
    r: &Record,
    metric: &str,
    was: f64,
    is: f64,
    direction: Direction,
    tolerance: f64,
    gate: bool,
) {
    let (threshold, worse) = match direction {
        Direction::Floor => {
            let t = was * (1.0 - tolerance);
            (t, is < t)
        }
        Direction::Ceiling => {
            let t = was * (1.0 + tolerance);
            (t, is > t)
        }
    };
    if worse {
        moved.push(Moved {
            scenario: r.scenario.clone(),
            seed: r.seed,
            metric: metric.to_owned(),
            baseline: was,
            now: is,
            threshold,
            direction,
            status: if gate {
                Status::Regression
            } else {
                Status::Warning
            },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::ClusterSpec;

    fn record() -> Record {
        let spec: ClusterSpec = serde_norway::from_str(
            "seed: 5\nduration_ms: 300\ndrain_timeout_ms: 1000\nbroker:\n  destinations:\n    \
             - { name: q }\nproducers: [{ destination: q, messages_per_s: 100 }]\n\
             consumers: [{ destination: q }]\n",
        )
        .unwrap();
        crate::runner::execute("tiny", Path::new("tiny.yaml"), &spec, None)
            .unwrap()
            .record
    }

    fn metrics(c: &Comparison) -> Vec<(&str, Status)> {
        c.moved
            .iter()
            .map(|m| (m.metric.as_str(), m.status))
            .collect()
    }

    #[test]
    fn an_identical_run_moves_nothing_and_a_new_one_is_listed() {
        let r = record();
        let base = Baseline::of(std::slice::from_ref(&r));
        let text = base.to_json();
        let base: Baseline = serde_json::from_str(&text).unwrap();
        let c = compare(&base, std::slice::from_ref(&r), &Tolerances::default());
        assert!(c.moved.is_empty() && !c.regressed(), "{}", c.text());
        assert_eq!(c.compared, 1);
        let mut other = r.clone();
        other.seed = 6;
        let c = compare(&base, &[other], &Tolerances::default());
        assert_eq!(c.new_runs, vec![("tiny".to_owned(), 6)]);
        assert!(!c.regressed());
    }

    #[test]
    fn thresholds_are_directional() {
        let r = record();
        let base = Baseline::of(std::slice::from_ref(&r));
        // Better throughput and latency are not regressions.
        let mut better = r.clone();
        better.metrics.throughput_per_s *= 2.0;
        better.metrics.e2e_latency_ms.p99 /= 2.0;
        let c = compare(&base, &[better], &Tolerances::default());
        assert!(c.moved.is_empty(), "{}", c.text());
        // Worse ones are, each in its own direction.
        let mut worse = r.clone();
        worse.metrics.throughput_per_s *= 0.9;
        worse.metrics.e2e_latency_ms.p99 *= 1.1;
        worse.counts.duplicate_effects += 1;
        let c = compare(&base, &[worse.clone()], &Tolerances::default());
        assert_eq!(
            metrics(&c),
            [
                ("throughput_per_s", Status::Regression),
                ("e2e_latency_ms_p99", Status::Regression),
                ("duplicate_effects", Status::Regression),
            ]
        );
        assert_eq!(c.moved[0].direction, Direction::Floor);
        assert!(c.text().contains("-10.0%"), "{}", c.text());
        // A 20 % tolerance on throughput and latency leaves only the anomaly count.
        let mut tol = Tolerances::default();
        tol.apply("20%").unwrap();
        tol.apply("duplicate_effects=0%").unwrap();
        let c = compare(&base, &[worse], &tol);
        assert_eq!(metrics(&c), [("duplicate_effects", Status::Regression)]);
    }

    #[test]
    fn wall_clock_warns_unless_gated_and_a_lost_pass_is_a_regression() {
        let r = record();
        let base = Baseline::of(std::slice::from_ref(&r));
        let mut slow = r.clone();
        slow.wall_clock.seconds = r.wall_clock.seconds * 3.0 + 1.0;
        let c = compare(&base, std::slice::from_ref(&slow), &Tolerances::default());
        assert_eq!(metrics(&c), [(WALL, Status::Warning)]);
        assert!(!c.regressed());
        let gated = Tolerances {
            gate_wall_clock: true,
            ..Tolerances::default()
        };
        assert!(compare(&base, &[slow], &gated).regressed());
        let mut failed = r.clone();
        failed.verdict = RunVerdict::Fail;
        let c = compare(&base, &[failed], &Tolerances::default());
        assert_eq!(metrics(&c), [("verdict (fail)", Status::Regression)]);
    }

    #[test]
    fn tolerances_parse_or_say_why_not() {
        let mut t = Tolerances::default();
        t.apply("5%").unwrap();
        assert!((t.simulated - 0.05).abs() < 1e-12);
        t.apply("0.5").unwrap();
        assert!((t.simulated - 0.5).abs() < 1e-12);
        t.apply("wall_seconds=300%").unwrap();
        assert!((t.wall - 3.0).abs() < 1e-12);
        t.apply("max_lag=10%").unwrap();
        assert_eq!(t.of("max_lag"), 0.1);
        assert!(t.apply("fast").unwrap_err().contains("not a tolerance"));
        assert!(t.apply("-1%").unwrap_err().contains("out of range"));
        assert!(t.apply("p99=1%").unwrap_err().contains("no metric `p99`"));
    }
}
