//! Running one scenario for one seed: simulate, check, measure, and the record that
//! `summary.json` keeps of it. Deciding the verdict against a scenario's expectations is the
//! caller's (the scenario format owns `expect`); this module supplies the facts.
//!
//! Wall-clock time is measured here, around the simulation, never inside it, and it is
//! reported apart from the simulated-time metrics.

use std::io::{self, Write};
use std::path::Path;
use std::time::Instant;

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2DeflateSerializer};
use serde::{Deserialize, Serialize};

use crate::check::{
    self, DeliveryMode, Histograms, Invariant, Metrics, Percentiles, Report, Series, Settings,
    Verdict,
};
use crate::coverage::Coverage;
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
    /// Deliveries beyond each message's first in a subscription.
    pub redeliveries: u64,
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

/// Latency percentiles as `summary.json` names them, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50: f64,
    pub p75: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub p9999: f64,
    pub max: f64,
}

impl From<Percentiles> for Latency {
    fn from(p: Percentiles) -> Self {
        Latency {
            p50: p.p50,
            p75: p.p75,
            p90: p.p90,
            p99: p.p99,
            p999: p.p999,
            p9999: p.p9999,
            max: p.max,
        }
    }
}

/// The measurements of one run in simulated time, exact for a seed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RunMetrics {
    pub throughput_per_s: f64,
    pub e2e_latency_ms: Latency,
    pub publish_latency_ms: Latency,
    pub send_delay_ms: Latency,
    pub max_lag: u64,
    pub sim_seconds: f64,
    /// The latency histograms (microseconds), HdrHistogram's compressed V2 form in base64,
    /// so that seeds can be merged without averaging percentiles.
    pub histograms: SerialisedHistograms,
    /// The figures over time.
    pub series: Series,
}

/// [`Histograms`] as text.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SerialisedHistograms {
    pub e2e_us: String,
    pub publish_us: String,
    pub send_delay_us: String,
}

impl SerialisedHistograms {
    fn of(h: &Histograms) -> Self {
        SerialisedHistograms {
            e2e_us: encode_histogram(&h.e2e_us),
            publish_us: encode_histogram(&h.publish_us),
            send_delay_us: encode_histogram(&h.send_delay_us),
        }
    }
}

/// A histogram in HdrHistogram's compressed V2 form, in base64.
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    // Serialising into a vector fails only on a histogram too large to describe, which a
    // histogram of simulated microseconds never is; an empty string then says "not kept".
    if V2DeflateSerializer::new().serialize(h, &mut bytes).is_err() {
        return String::new();
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The histogram [`encode_histogram`] wrote, or why it cannot be read.
pub fn decode_histogram(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("not base64: {e}"))?;
    Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| format!("not an HdrHistogram: {e:?}"))
}

/// Wall-clock figures of one run: they vary from machine to machine and run to run, so they
/// are kept apart from the simulated-time [`RunMetrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct WallClock {
    /// Seconds of the simulation, checks and measurement.
    pub seconds: f64,
    /// Simulated seconds per wall-clock second.
    pub sim_speed: f64,
    /// History events recorded and checked per wall-clock second.
    pub events_per_s: f64,
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
    /// Which interesting paths the run went through.
    pub coverage: Coverage,
    pub wall_clock: WallClock,
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
            send_delay_ms: metrics.send_delay_ms.into(),
            max_lag: metrics.max_lag,
            sim_seconds: metrics.sim_seconds,
            histograms: SerialisedHistograms::of(&metrics.histograms),
            series: metrics.series.clone(),
        },
        coverage: Coverage::of(&run.history, report.counts.rejected),
        wall_clock: WallClock {
            seconds: wall_seconds,
            sim_speed: if wall_seconds > 0.0 {
                metrics.sim_seconds / wall_seconds
            } else {
                0.0
            },
            events_per_s: if wall_seconds > 0.0 {
                run.history.entries().len() as f64 / wall_seconds
            } else {
                0.0
            },
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
        redeliveries: r.counts.redeliveries,
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
    let mut builder = tempfile::Builder::new();
    // A temporary file is private (0600) by default; results are ordinary files that other
    // users and CI upload steps read, so they get the usual mode, less the umask.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let mut tmp = builder.tempfile_in(dir)?;
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
        // Readable by others, as any results file (the default umask leaves 0644).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o600, 0o600, "{mode:o}");
            assert_ne!(mode & 0o044, 0, "{mode:o}");
        }
        // Nothing but the target is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn histograms_survive_their_text_form() {
        let mut h = check::histogram();
        for v in [1u64, 20, 300, 4_000, 50_000, 600_000] {
            h.record(v).unwrap();
        }
        let text = encode_histogram(&h);
        assert!(text.starts_with("HISTF"), "{text}");
        let back = decode_histogram(&text).unwrap();
        assert_eq!(back, h);
        assert!(decode_histogram("not base64!").is_err());
        assert!(decode_histogram("aGVsbG8=").is_err());
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
