//! `mqsim compare`: one scenario under several delivery modes or broker profiles, on the same
//! seeds and the same fault schedule, in one table and one HTML page.
//!
//! A *variant* rewrites the scenario before it runs: a delivery mode sets every consumer's
//! acks and sink (at-most-once: auto acks; at-least-once: explicit acks; exactly-once:
//! explicit acks and an idempotent sink); a profile stands for the whole system and replaces
//! the durability and the destination settings it covers, even those the file writes out
//! ([`crate::scenario::BrokerDoc::to_config_overridden_by`]), so that the systems differ as
//! they would. With both lists, every pair is a variant.
//! Each variant runs the scenario's seed and the next ones; its figures add up over the seeds
//! (latency percentiles from the merged histograms).
//!
//! The scenario's `expect` block is written for one configuration, so here a run is judged
//! only by the invariants (less the ones the scenario allows): a comparison exits 1 when some
//! variant broke an invariant it promises, never because it lost messages its mode allows.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;
use mqsim_broker::AckMode;
use serde::Serialize;

use crate::check::{self, percentiles};
use crate::exit::Exit;
use crate::html;
use crate::profile::{self, Profile};
use crate::runner::{self, Latency, RunVerdict};
use crate::scenario::{Expect, ScenarioFile};
use crate::sim::history::{Op, What};
use crate::sim::spec::ClusterSpec;

/// A delivery mode a comparison can impose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    AtMostOnce,
    AtLeastOnce,
    ExactlyOnce,
}

impl Delivery {
    pub const ALL: [Delivery; 3] = [
        Delivery::AtMostOnce,
        Delivery::AtLeastOnce,
        Delivery::ExactlyOnce,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Delivery::AtMostOnce => "at-most-once",
            Delivery::AtLeastOnce => "at-least-once",
            Delivery::ExactlyOnce => "exactly-once",
        }
    }

    fn apply(self, spec: &mut ClusterSpec) {
        for c in &mut spec.consumers {
            c.ack_mode = match self {
                Delivery::AtMostOnce => AckMode::Auto,
                _ => AckMode::Explicit,
            };
            c.idempotent_sink = self == Delivery::ExactlyOnce;
        }
    }
}

/// What `mqsim compare` was asked.
#[derive(Debug, Clone)]
pub struct Options {
    pub deliveries: Vec<Delivery>,
    /// Profile names, checked by [`compare`].
    pub profiles: Vec<String>,
    /// Seeds per variant: the scenario's own and the next ones.
    pub seeds: u64,
    pub jobs: usize,
    /// Where compare.json and compare.html go; unset, `results/compare-<unix seconds>`.
    pub out: Option<PathBuf>,
}

/// One variant's figures over its seeds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Row {
    pub variant: String,
    pub runs: u64,
    /// Runs that broke an invariant.
    pub failed_runs: u64,
    /// Runs whose drain did not finish in time (their `lost` counts what was still pending).
    pub undrained_runs: u64,
    pub confirmed: u64,
    /// Confirmed messages not final in some subscription after the run, at-most-once
    /// subscriptions included.
    pub lost: u64,
    pub recovered: u64,
    pub duplicate_deliveries: u64,
    pub duplicate_effects: u64,
    pub out_of_order: u64,
    pub dead_lettered: u64,
    pub completed: u64,
    pub e2e_latency_ms: Latency,
    /// Mean over the seeds.
    pub throughput_per_s: f64,
    /// Requests that moved messages (publishes, acks, nacks, receives that returned some) per
    /// completed message: the cost of the guarantee in broker work.
    pub requests_per_completed: f64,
    /// Deliveries per completed message (redeliveries raise it).
    pub deliveries_per_completed: f64,
    /// The e2e histogram of all seeds, for the page's curves.
    #[serde(skip)]
    pub e2e_us: Option<Histogram<u64>>,
    /// The first seed's series, for the page's charts.
    #[serde(skip)]
    pub first_series: Option<check::Series>,
}

/// What one run contributes to its variant's row.
struct RunFigures {
    failed: bool,
    undrained: bool,
    confirmed: u64,
    lost: u64,
    recovered: u64,
    duplicate_deliveries: u64,
    duplicate_effects: u64,
    out_of_order: u64,
    dead_lettered: u64,
    completed: u64,
    deliveries: u64,
    requests: u64,
    throughput_per_s: f64,
    e2e_us: Histogram<u64>,
    series: check::Series,
}

struct Variant {
    label: String,
    spec: ClusterSpec,
}

fn variants(file: &ScenarioFile, options: &Options) -> Result<Vec<Variant>, String> {
    let mut profiles: Vec<Option<&'static Profile>> = Vec::new();
    for name in &options.profiles {
        let p = profile::find(name)
            .ok_or_else(|| format!("no profile `{name}`; the profiles are {}", profile::names()))?;
        profiles.push(Some(p));
    }
    if profiles.is_empty() {
        profiles.push(None);
    }
    let deliveries: Vec<Option<Delivery>> = if options.deliveries.is_empty() {
        vec![None]
    } else {
        options.deliveries.iter().copied().map(Some).collect()
    };
    let scenario = &file.scenario;
    let mut out = Vec::new();
    for p in &profiles {
        for d in &deliveries {
            let mut spec = scenario.spec.clone();
            if let Some(p) = p {
                spec.broker = scenario.broker.to_config_overridden_by(p);
            }
            if let Some(d) = d {
                d.apply(&mut spec);
            }
            let label = match (p, d) {
                (Some(p), Some(d)) => format!("{} {}", p.name, d.name()),
                (Some(p), None) => p.name.to_owned(),
                (None, Some(d)) => d.name().to_owned(),
                (None, None) => scenario.name.clone(),
            };
            spec.validate()
                .map_err(|e| format!("{label}: the scenario does not fit this variant: {e}"))?;
            out.push(Variant { label, spec });
        }
    }
    Ok(out)
}

fn run_one(
    file: &ScenarioFile,
    expect: &Expect,
    variant: &Variant,
    seed: u64,
) -> Result<RunFigures, String> {
    let mut spec = variant.spec.clone();
    spec.seed = seed;
    let mut o = runner::execute(&file.scenario.name, &file.path, &spec, None)
        .map_err(|e| format!("{} seed {seed}: {e}", variant.label))?;
    runner::judge(expect, &mut o);
    // Broker work: every publish, ack and nack, and every receive that returned messages. An
    // empty poll is left out, since idle consumers poll however the guarantee is kept.
    let requests = o
        .run
        .history
        .entries()
        .iter()
        .filter(|e| match e.what {
            What::Invoke { op, .. } => op != Op::Receive,
            What::Ok {
                op: Op::Receive,
                count,
                ..
            } => count > 0,
            _ => false,
        })
        .count() as u64;
    let c = &o.report.counts;
    Ok(RunFigures {
        failed: o.record.verdict == RunVerdict::Fail,
        undrained: !o.run.drained(),
        confirmed: o.record.counts.confirmed,
        lost: c.lost,
        recovered: c.recovered,
        duplicate_deliveries: c.duplicate_deliveries,
        duplicate_effects: c.duplicate_effects,
        out_of_order: c.out_of_order,
        dead_lettered: c.dead_lettered,
        completed: o.run.summary.completed,
        deliveries: o.run.summary.deliveries,
        requests,
        throughput_per_s: o.metrics.throughput_per_s,
        e2e_us: o.metrics.histograms.e2e_us.clone(),
        series: o.metrics.series.clone(),
    })
}

fn row(label: &str, runs: &[&RunFigures]) -> Row {
    let mut r = Row {
        variant: label.to_owned(),
        runs: runs.len() as u64,
        ..Row::default()
    };
    let mut merged = check::histogram();
    let mut requests = 0u64;
    let mut deliveries = 0u64;
    for f in runs {
        r.failed_runs += u64::from(f.failed);
        r.undrained_runs += u64::from(f.undrained);
        r.confirmed += f.confirmed;
        r.lost += f.lost;
        r.recovered += f.recovered;
        r.duplicate_deliveries += f.duplicate_deliveries;
        r.duplicate_effects += f.duplicate_effects;
        r.out_of_order += f.out_of_order;
        r.dead_lettered += f.dead_lettered;
        r.completed += f.completed;
        r.throughput_per_s += f.throughput_per_s / runs.len() as f64;
        requests += f.requests;
        deliveries += f.deliveries;
        // Both histograms grow as needed, so adding cannot run out of range.
        let _ = merged.add(&f.e2e_us);
    }
    let per = |n: u64| {
        if r.completed == 0 {
            0.0
        } else {
            n as f64 / r.completed as f64
        }
    };
    r.requests_per_completed = per(requests);
    r.deliveries_per_completed = per(deliveries);
    r.e2e_latency_ms = percentiles(&merged).into();
    r.e2e_us = Some(merged);
    r.first_series = runs.first().map(|f| f.series.clone());
    r
}

/// Runs the comparison; the table goes to `out`, progress and errors to `err`.
pub fn compare(
    file: &ScenarioFile,
    options: &Options,
    out: &mut impl Write,
    err: &mut impl Write,
) -> io::Result<Exit> {
    let variants = match variants(file, options) {
        Ok(v) => v,
        Err(e) => {
            writeln!(err, "mqsim: {e}")?;
            return Ok(Exit::BadInput);
        }
    };
    let seeds = options.seeds.clamp(1, crate::batch::MAX_SEEDS);
    let jobs: Vec<(usize, u64)> = (0..variants.len())
        .flat_map(|v| (0..seeds).map(move |k| (v, file.scenario.seed.wrapping_add(k))))
        .collect();
    let expect = Expect {
        allow: file.scenario.expect.allow.clone(),
        ..Expect::default()
    };
    let results = crate::parallel::map(
        &jobs,
        options.jobs,
        |&(v, seed)| run_one(file, &expect, &variants[v], seed),
        |_, _| Ok::<(), io::Error>(()),
    )?;
    let mut figures: Vec<Vec<&RunFigures>> = variants.iter().map(|_| Vec::new()).collect();
    for ((v, _), result) in jobs.iter().zip(&results) {
        match result {
            Ok(f) => figures[*v].push(f),
            Err(e) => {
                writeln!(err, "mqsim: {e}")?;
                return Ok(Exit::BadInput);
            }
        }
    }
    let rows: Vec<Row> = variants
        .iter()
        .zip(&figures)
        .map(|(v, f)| row(&v.label, f))
        .collect();

    let dir = options
        .out
        .clone()
        .unwrap_or_else(|| crate::batch::timestamped_dir("compare"));
    let json = serde_json::to_string_pretty(&CompareFile {
        mqsim: env!("CARGO_PKG_VERSION"),
        scenario: &file.scenario.name,
        file: file.path.display().to_string(),
        first_seed: file.scenario.seed,
        seeds,
        variants: &rows,
    })
    .unwrap_or_default()
        + "\n";
    let written = std::fs::create_dir_all(&dir).and_then(|()| {
        runner::write_atomically(&dir.join("compare.json"), json.as_bytes())?;
        runner::write_atomically(
            &dir.join("compare.html"),
            page(&file.scenario.name, &file.path, seeds, &rows).as_bytes(),
        )
    });
    if let Err(e) = written {
        writeln!(err, "{}: cannot write the results: {e}", dir.display())?;
        return Ok(Exit::BadInput);
    }
    out.write_all(table(&rows).as_bytes())?;
    writeln!(out, "results in {}", dir.display())?;
    Ok(if rows.iter().any(|r| r.failed_runs > 0) {
        Exit::InvariantFailed
    } else if rows.iter().any(|r| r.undrained_runs > 0) {
        Exit::Liveness
    } else {
        Exit::Pass
    })
}

#[derive(Serialize)]
struct CompareFile<'a> {
    mqsim: &'static str,
    scenario: &'a str,
    file: String,
    first_seed: u64,
    seeds: u64,
    variants: &'a [Row],
}

fn header() -> [String; 14] {
    [
        "variant",
        "runs",
        "failed",
        "undrained",
        "lost",
        "recovered",
        "dup deliveries",
        "dup effects",
        "out of order",
        "dead-lettered",
        "e2e p50/p99/max ms",
        "throughput/s",
        "requests/msg",
        "deliveries/msg",
    ]
    .map(str::to_owned)
}

fn cells(r: &Row) -> [String; 14] {
    [
        r.variant.clone(),
        r.runs.to_string(),
        r.failed_runs.to_string(),
        r.undrained_runs.to_string(),
        r.lost.to_string(),
        r.recovered.to_string(),
        r.duplicate_deliveries.to_string(),
        r.duplicate_effects.to_string(),
        r.out_of_order.to_string(),
        r.dead_lettered.to_string(),
        format!(
            "{:.1}/{:.1}/{:.1}",
            r.e2e_latency_ms.p50, r.e2e_latency_ms.p99, r.e2e_latency_ms.max
        ),
        format!("{:.0}", r.throughput_per_s),
        format!("{:.2}", r.requests_per_completed),
        format!("{:.2}", r.deliveries_per_completed),
    ]
}

/// The text table.
pub fn table(rows: &[Row]) -> String {
    let mut all = vec![header()];
    all.extend(rows.iter().map(cells));
    crate::commands::table_text(&all)
}

fn page(name: &str, path: &Path, seeds: u64, rows: &[Row]) -> String {
    let mut body = format!(
        "<h1>mqsim compare: {}</h1><p>{} on {seeds} seed(s) per variant, the same seeds and \
         faults for each. All figures are simulated time.</p><table><tr>",
        crate::svg::escape(name),
        crate::svg::escape(&path.display().to_string())
    );
    for h in header() {
        let _ = write!(body, "<th>{}</th>", crate::svg::escape(&h));
    }
    body.push_str("</tr>");
    for r in rows {
        body.push_str("<tr>");
        for c in cells(r) {
            let _ = write!(body, "<td>{}</td>", crate::svg::escape(&c));
        }
        body.push_str("</tr>");
    }
    body.push_str("</table><div class=\"charts\">");
    let curves = rows
        .iter()
        .filter_map(|r| {
            r.e2e_us
                .as_ref()
                .map(|h| html::percentile_curve(r.variant.clone(), h))
        })
        .collect();
    body.push_str(
        &html::latency_chart("end-to-end latency by variant".to_owned(), curves).to_svg(),
    );
    body.push_str("</div>");
    for r in rows {
        if let Some(series) = &r.first_series {
            let _ = write!(
                body,
                "<section><h2>{}</h2><div class=\"charts\">",
                crate::svg::escape(&r.variant)
            );
            for chart in html::time_charts(&r.variant, series) {
                body.push_str(&chart.to_svg());
            }
            body.push_str("</div></section>");
        }
    }
    html::page(&format!("mqsim compare: {name}"), &body)
}
