//! Running one scenario for one seed: simulate, check, measure, and the record that
//! `summary.json` keeps of it. Deciding the verdict against a scenario's expectations is the
//! caller's (the scenario format owns `expect`); this module supplies the facts.
//!
//! Wall-clock time is measured here, around the simulation, never inside it, and it is
//! reported apart from the simulated-time metrics.

use std::io::{self, Write};
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::check::{
    self, DeliveryMode, Invariant, Metrics, Percentiles, Report, Settings, Verdict,
};
use crate::sim::{ClusterSpec, RunError, RunReport, Summary, run};

/// Counts of one run, by the names `summary.json` promises.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub published: u64,
    pub confirmed: u64,
    pub rejected: u64,
    pub delivered: u64,
    pub completed: u64,
    pub lost: u64,
    pub recovered: u64,
    pub duplicate_deliveries: u64,
    pub duplicate_effects: u64,
    pub out_of_order: u64,
    pub dead_lettered: u64,
    pub expired: u64,
    pub dropped: u64,
    pub indeterminate: u64,
}

impl Counts {
    /// A count by name, for expectations.
    pub fn get(&self, name: &str) -> Option<u64> {
        Some(match name {
            "published" => self.published,
            "confirmed" => self.confirmed,
            "rejected" => self.rejected,
            "delivered" => self.delivered,
            "completed" => self.completed,
            "lost" => self.lost,
            "recovered" => self.recovered,
            "duplicate_deliveries" => self.duplicate_deliveries,
            "duplicate_effects" => self.duplicate_effects,
            "out_of_order" => self.out_of_order,
            "dead_lettered" => self.dead_lettered,
            "expired" => self.expired,
            "dropped" => self.dropped,
            "indeterminate" => self.indeterminate,
            _ => return None,
        })
    }

    /// Every count's name.
    pub const NAMES: [&'static str; 14] = [
        "published",
        "confirmed",
        "rejected",
        "delivered",
        "completed",
        "lost",
        "recovered",
        "duplicate_deliveries",
        "duplicate_effects",
        "out_of_order",
        "dead_lettered",
        "expired",
        "dropped",
        "indeterminate",
    ];
}

/// One invariant that broke, as `summary.json` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub invariant: &'static str,
    pub message: String,
    pub message_ids: Vec<u64>,
}

/// Latency percentiles as `summary.json` names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl From<Percentiles> for Latency {
    fn from(p: Percentiles) -> Self {
        Latency {
            p50: p.p50,
            p90: p.p90,
            p99: p.p99,
            p999: p.p999,
            max: p.max,
        }
    }
}

/// The measurements of one run: simulated time, except `wall_seconds`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunMetrics {
    pub throughput_per_s: f64,
    pub e2e_latency_ms: Latency,
    pub publish_latency_ms: Latency,
    pub max_lag: u64,
    pub sim_seconds: f64,
    /// Wall-clock seconds of the simulation, checks and measurement.
    pub wall_seconds: f64,
}

/// How a run ended against its expectations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunVerdict {
    Pass,
    /// An invariant or expectation failed.
    Fail,
    /// The drain did not finish (and nothing else failed).
    Liveness,
}

/// One run as `summary.json` records it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Record {
    pub scenario: String,
    pub file: String,
    pub seed: u64,
    /// The subscriptions' delivery mode, or `mixed`.
    pub delivery: String,
    pub verdict: RunVerdict,
    pub counts: Counts,
    /// Every invariant found invalid, whether or not the scenario allows it.
    pub violations: Vec<Violation>,
    /// Expectations that did not hold.
    pub failed_expectations: Vec<String>,
    pub metrics: RunMetrics,
    pub history_sha256: String,
    /// The history file, relative to the results directory, when one was written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_file: Option<String>,
}

/// Everything one run produced.
#[derive(Debug)]
pub struct Outcome {
    pub record: Record,
    pub report: Report,
    pub metrics: Metrics,
    pub run: RunReport,
}

/// Simulates `spec`, writes its history to `history` if given, checks and measures it. The
/// record's verdict says only what the checkers found (`fail` on any invalid invariant,
/// `liveness` on an unfinished drain); [`Record::judge`] revises it against expectations.
pub fn execute(
    scenario: &str,
    file: &Path,
    spec: &ClusterSpec,
    history: Option<&Path>,
) -> Result<Outcome, RunError> {
    let started = Instant::now();
    let run = run(spec.clone(), history)?;
    let report = check::check(&run.history, &run.plan, spec, run.drained());
    let metrics = check::measure(&run.history, &run.plan, spec);
    let wall_seconds = started.elapsed().as_secs_f64();
    let settings = Settings::new(spec, &run.plan);
    let record = Record {
        scenario: scenario.to_owned(),
        file: file.display().to_string(),
        seed: spec.seed,
        delivery: delivery(&settings, &run),
        verdict: RunVerdict::Pass,
        counts: counts(&run.summary, &report),
        violations: violations(&report),
        failed_expectations: Vec::new(),
        metrics: RunMetrics {
            throughput_per_s: metrics.throughput_per_s,
            e2e_latency_ms: metrics.e2e_latency_ms.into(),
            publish_latency_ms: metrics.publish_latency_ms.into(),
            max_lag: metrics.max_lag,
            sim_seconds: metrics.sim_seconds,
            wall_seconds,
        },
        history_sha256: run.hash.clone(),
        history_file: history
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned()),
    };
    let mut outcome = Outcome {
        record,
        report,
        metrics,
        run,
    };
    outcome.record.judge(&outcome.report, |_| false, Vec::new());
    Ok(outcome)
}

impl Record {
    /// Sets the verdict: `fail` when an invariant that `allowed` does not excuse is invalid
    /// or an expectation failed, else `liveness` when the drain did not finish (unless allowed),
    /// else `pass`.
    pub fn judge(
        &mut self,
        report: &Report,
        allowed: impl Fn(Invariant) -> bool,
        failed_expectations: Vec<String>,
    ) {
        let broken = report.correctness_failures().any(|i| !allowed(i.invariant));
        self.failed_expectations = failed_expectations;
        self.verdict = if broken || !self.failed_expectations.is_empty() {
            RunVerdict::Fail
        } else if report.liveness_failed() && !allowed(Invariant::Liveness) {
            RunVerdict::Liveness
        } else {
            RunVerdict::Pass
        };
    }
}

fn delivery(settings: &Settings, run: &RunReport) -> String {
    // The subscriptions consumers read, so an unread dead-letter queue does not count.
    let mut modes: Vec<DeliveryMode> = run
        .plan
        .consumers
        .iter()
        .map(|c| settings.mode(c.sub))
        .collect();
    modes.dedup();
    match modes.as_slice() {
        [] => "none".to_owned(),
        [one] => one.name().to_owned(),
        many if many.iter().all(|m| *m == many[0]) => many[0].name().to_owned(),
        _ => "mixed".to_owned(),
    }
}

fn counts(s: &Summary, r: &Report) -> Counts {
    Counts {
        published: s.published,
        confirmed: s.confirmed,
        rejected: r.counts.rejected,
        delivered: s.delivered,
        completed: s.completed,
        lost: s.lost,
        recovered: s.recovered,
        duplicate_deliveries: r.counts.duplicate_deliveries,
        duplicate_effects: r.counts.duplicate_effects,
        out_of_order: r.counts.out_of_order,
        dead_lettered: r.counts.dead_lettered,
        expired: r.counts.expired,
        dropped: r.counts.dropped,
        indeterminate: s.indeterminate,
    }
}

fn violations(r: &Report) -> Vec<Violation> {
    r.invariants
        .iter()
        .filter(|i| i.verdict == Verdict::Invalid)
        .flat_map(|i| {
            i.anomalies.iter().map(|a| Violation {
                invariant: i.invariant.name(),
                message: a.message.clone(),
                message_ids: a.message_ids.clone(),
            })
        })
        .collect()
}

/// Writes `bytes` to `path` atomically: a temporary file in the same directory, synced, then
/// renamed over `path`, so that a reader sees the old file or the new one, never a part.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// The whole `summary.json`.
#[derive(Debug, Serialize)]
pub struct SummaryFile<'a> {
    /// The mqsim version that produced it.
    pub mqsim: &'static str,
    pub runs: &'a [Record],
}

/// `summary.json`'s text.
pub fn summary_json(records: &[Record]) -> String {
    let file = SummaryFile {
        mqsim: env!("CARGO_PKG_VERSION"),
        runs: records,
    };
    // Serialising plain data with string keys cannot fail.
    serde_json::to_string_pretty(&file).unwrap_or_default() + "\n"
}

/// The human table: one row per run.
pub fn table(records: &[Record]) -> Vec<[String; 9]> {
    let mut rows = vec![[
        "scenario".to_owned(),
        "seed".to_owned(),
        "delivery".to_owned(),
        "verdict".to_owned(),
        "confirmed".to_owned(),
        "lost".to_owned(),
        "dup deliveries".to_owned(),
        "throughput/s".to_owned(),
        "e2e p50/p99 ms".to_owned(),
    ]];
    for r in records {
        rows.push([
            r.scenario.clone(),
            r.seed.to_string(),
            r.delivery.clone(),
            match r.verdict {
                RunVerdict::Pass => "pass",
                RunVerdict::Fail => "FAIL",
                RunVerdict::Liveness => "LIVENESS",
            }
            .to_owned(),
            r.counts.confirmed.to_string(),
            r.counts.lost.to_string(),
            r.counts.duplicate_deliveries.to_string(),
            format!("{:.0}", r.metrics.throughput_per_s),
            format!(
                "{:.1}/{:.1}",
                r.metrics.e2e_latency_ms.p50, r.metrics.e2e_latency_ms.p99
            ),
        ]);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("summary.json");
        write_atomically(&path, b"first, and longer").unwrap();
        write_atomically(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        // Nothing but the target is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_failed_invariant_outranks_liveness_unless_allowed() {
        let spec: ClusterSpec = serde_norway::from_str(
            "seed: 3\nduration_ms: 300\ndrain_timeout_ms: 300\nbroker:\n  destinations:\n    \
             - { name: q }\nproducers: [{ destination: q, messages_per_s: 50 }]\n",
        )
        .unwrap();
        // Nobody consumes: the drain cannot finish.
        let mut o = execute("idle", Path::new("idle.yaml"), &spec, None).unwrap();
        assert_eq!(o.record.verdict, RunVerdict::Liveness);
        assert_eq!(o.record.delivery, "none");
        o.record
            .judge(&o.report, |i| i == Invariant::Liveness, Vec::new());
        assert_eq!(o.record.verdict, RunVerdict::Pass);
        o.record
            .judge(&o.report, |_| false, vec!["lost: expected > 0".into()]);
        assert_eq!(o.record.verdict, RunVerdict::Fail);
        let json = summary_json(std::slice::from_ref(&o.record));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["runs"][0]["verdict"], "fail");
        assert_eq!(v["runs"][0]["history_sha256"].as_str().unwrap().len(), 64);
        assert!(v["runs"][0]["metrics"]["e2e_latency_ms"]["p99"].is_number());
    }
}
