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
use crate::scenario::{Expect, Judgement, MetricName};
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

impl RunVerdict {
    /// The name in summary.json and the reports.
    pub fn name(self) -> &'static str {
        match self {
            RunVerdict::Pass => "pass",
            RunVerdict::Fail => "fail",
            RunVerdict::Liveness => "liveness",
        }
    }

    /// The name in the table and progress lines, failures in capitals so they stand out.
    pub fn label(self) -> &'static str {
        match self {
            RunVerdict::Pass => "pass",
            RunVerdict::Fail => "FAIL",
            RunVerdict::Liveness => "LIVENESS",
        }
    }
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
/// record's verdict is judged against the default expectation (every invariant valid);
/// [`judge`] judges it again against a scenario's.
pub fn execute(
    scenario: &str,
    file: &Path,
    spec: &ClusterSpec,
    history: Option<&Path>,
) -> Result<Outcome, RunError> {
    let started = Instant::now();
    let run = run(spec.clone(), history)?;
    let (report, metrics) = check::check_and_measure(&run.history, &run.plan, spec, run.drained());
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
    judge(&Expect::default(), &mut outcome);
    Ok(outcome)
}

/// Sets the record's verdict from `expect`: `fail` when an invariant that must be valid is
/// invalid (or undecided while the drain finished), one that must be violated is not, or a
/// bound on a count or metric does not hold; else `liveness` when the drain did not finish and
/// liveness is judged; else `pass`. Violations of invariants the scenario allows or expects
/// stay listed in the record; they just do not fail the run.
pub fn judge(expect: &Expect, o: &mut Outcome) {
    let mut failed = Vec::new();
    let mut broken = false;
    let liveness_failed = o.report.liveness_failed();
    let mut liveness = false;
    for r in &o.report.invariants {
        let name = r.invariant.name();
        match (expect.judgement(r.invariant), r.verdict) {
            (Judgement::MustBeValid, Verdict::Invalid) if r.invariant == Invariant::Liveness => {
                liveness = true;
            }
            (Judgement::MustBeValid, Verdict::Invalid) => broken = true,
            // An invariant the run could not decide because the drain did not finish is the
            // liveness failure's consequence, not a failure of its own.
            (Judgement::MustBeValid, Verdict::Unknown) if !liveness_failed => failed.push(format!(
                "{name} could not be decided: {}",
                r.reason.as_deref().unwrap_or("unknown")
            )),
            (Judgement::MustBeInvalid, v) if v != Verdict::Invalid => {
                failed.push(format!("{name} was expected to be violated but was {v:?}"));
            }
            _ => {}
        }
    }
    for (name, bound) in expect.counts.iter() {
        let value = name.value(&o.report.counts, &o.run.summary);
        if !bound.holds(value as f64) {
            failed.push(format!(
                "counts.{} = {value}, expected {bound}",
                name.name()
            ));
        }
    }
    for (name, bound) in expect.metrics.iter() {
        let value = metric(name, &o.metrics);
        if !bound.holds(value) {
            failed.push(format!(
                "metrics.{} = {value}, expected {bound}",
                name.name()
            ));
        }
    }
    o.record.verdict = if broken || !failed.is_empty() {
        RunVerdict::Fail
    } else if liveness {
        RunVerdict::Liveness
    } else {
        RunVerdict::Pass
    };
    o.record.failed_expectations = failed;
}

fn metric(name: MetricName, m: &Metrics) -> f64 {
    match name {
        MetricName::ThroughputPerS => m.throughput_per_s,
        MetricName::E2eLatencyMsP50 => m.e2e_latency_ms.p50,
        MetricName::E2eLatencyMsP90 => m.e2e_latency_ms.p90,
        MetricName::E2eLatencyMsP99 => m.e2e_latency_ms.p99,
        MetricName::E2eLatencyMsP999 => m.e2e_latency_ms.p999,
        MetricName::E2eLatencyMsMax => m.e2e_latency_ms.max,
        MetricName::PublishLatencyMsP50 => m.publish_latency_ms.p50,
        MetricName::PublishLatencyMsP90 => m.publish_latency_ms.p90,
        MetricName::PublishLatencyMsP99 => m.publish_latency_ms.p99,
        MetricName::PublishLatencyMsP999 => m.publish_latency_ms.p999,
        MetricName::PublishLatencyMsMax => m.publish_latency_ms.max,
        MetricName::MaxLag => m.max_lag as f64,
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
            r.verdict.label().to_owned(),
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
        let expect = |yaml: &str| -> Expect { serde_norway::from_str(yaml).unwrap() };
        judge(&expect("allow: [liveness]\n"), &mut o);
        assert_eq!(o.record.verdict, RunVerdict::Pass);
        judge(
            &expect("allow: [liveness]\ncounts: {published: 0}\n"),
            &mut o,
        );
        assert_eq!(o.record.verdict, RunVerdict::Fail);
        assert!(o.record.failed_expectations[0].starts_with("counts.published = "));
        let json = summary_json(std::slice::from_ref(&o.record));
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["runs"][0]["verdict"], "fail");
        assert_eq!(v["runs"][0]["history_sha256"].as_str().unwrap().len(), 64);
        assert!(v["runs"][0]["metrics"]["e2e_latency_ms"]["p99"].is_number());
    }
}
