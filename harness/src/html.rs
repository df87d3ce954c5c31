//! `report.html`: the run's results as one self-contained page (inline CSS and SVG, no script,
//! nothing fetched), so it opens offline from a CI artifact.
//!
//! Per scenario: latency percentile curves (one per seed, and the seeds merged by adding
//! their histograms, never by averaging percentiles), then, for the scenario's first seed,
//! throughput, lag per subscription and dead-letter depth over time with the fault windows
//! shaded, as Jepsen's performance graphs do. Everything plotted is simulated time.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::check::Series;
use crate::report::{RUN_COLUMNS, VERDICT_COLUMN, run_cells};
use crate::runner::{Record, RunVerdict, decode_histogram};
use crate::svg::{Chart, Line, Shade, escape};

/// Percentile curves at most one per this many seeds of a scenario, besides the merged one.
pub const MAX_CURVES: usize = 6;

const STYLE: &str = "body{font-family:sans-serif;margin:24px;color:#222;max-width:1360px}\
table{border-collapse:collapse;margin:12px 0}td,th{border:1px solid #ccc;padding:3px 8px;\
text-align:right}td:first-child,th:first-child{text-align:left}.fail{color:#b00;font-weight:bold}\
.charts{display:flex;flex-wrap:wrap;gap:12px}section{margin-top:28px}";

/// The percentile axis: x = log10(1 / (1 - q)), so 90 %, 99 %, 99.9 % are evenly spaced.
fn percentile_ticks(max_x: f64) -> Vec<(f64, String)> {
    let labels = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"];
    labels
        .iter()
        .enumerate()
        .take_while(|(i, _)| *i as f64 <= max_x.ceil())
        .map(|(i, l)| (i as f64, (*l).to_owned()))
        .collect()
}

/// A latency curve from a histogram of microseconds, in milliseconds.
pub fn percentile_curve(label: String, h: &Histogram<u64>) -> Line {
    let mut points = Vec::new();
    if !h.is_empty() {
        // Beyond 1 / count the quantiles are all the maximum; stop one decade later.
        let max_x = ((h.len() as f64).log10() + 1.0).min(5.0);
        let mut x = 0.0;
        while x <= max_x + 1e-9 {
            let q = 1.0 - 10f64.powf(-x);
            points.push((x, h.value_at_quantile(q) as f64 / 1000.0));
            x += 0.05;
        }
    }
    Line { label, points }
}

/// The percentile chart of some curves.
pub fn latency_chart(title: String, lines: Vec<Line>) -> Chart {
    let max_x = lines
        .iter()
        .filter_map(|l| l.points.last())
        .map(|p| p.0)
        .fold(1.0, f64::max);
    Chart {
        title,
        x_label: "percentile".to_owned(),
        y_label: "ms".to_owned(),
        lines,
        shades: Vec::new(),
        x_ticks: Some(percentile_ticks(max_x)),
    }
}

fn shades(series: &Series) -> Vec<Shade> {
    series
        .faults
        .iter()
        .map(|f| Shade {
            from: f.start_ms as f64 / 1000.0,
            to: f.end_ms as f64 / 1000.0,
            label: f.kind.to_owned(),
        })
        .collect()
}

fn over_time(series: &Series, values: &[f64]) -> Vec<(f64, f64)> {
    // Each value is a window's; plot it at the window's middle.
    let w = series.window_ms as f64 / 1000.0;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| ((i as f64 + 0.5) * w, *v))
        .collect()
}

/// Throughput, lag and dead-letter depth over time, with the faults shaded.
pub fn time_charts(title: &str, series: &Series) -> Vec<Chart> {
    let shaded = shades(series);
    let chart = |what: &str, y_label: &str, lines: Vec<Line>| Chart {
        title: format!("{title}: {what}"),
        x_label: "simulated s".to_owned(),
        y_label: y_label.to_owned(),
        lines,
        shades: shaded.clone(),
        x_ticks: None,
    };
    let as_f64 = |v: &[u64]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
    vec![
        chart(
            "throughput",
            "messages/s",
            vec![
                Line {
                    label: "completed".to_owned(),
                    points: over_time(series, &series.completed_per_s),
                },
                Line {
                    label: "confirmed".to_owned(),
                    points: over_time(series, &series.confirmed_per_s),
                },
            ],
        ),
        chart(
            "lag",
            "messages",
            series
                .lag
                .iter()
                .map(|(name, v)| Line {
                    label: name.clone(),
                    points: over_time(series, &as_f64(v)),
                })
                .collect(),
        ),
        chart(
            "dead-letter depth",
            "messages",
            vec![Line {
                label: "in dead-letter queues".to_owned(),
                points: over_time(series, &as_f64(&series.dead_letter_depth)),
            }],
        ),
    ]
}

/// The page around `body`.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{}</title><style>{STYLE}</style></head><body>\n{body}\n</body></html>\n",
        escape(title)
    )
}

/// `report.html` of a run.
pub fn run_report(records: &[Record]) -> String {
    let mut body = String::from("<h1>mqsim run</h1>");
    let passed = records
        .iter()
        .filter(|r| r.verdict == RunVerdict::Pass)
        .count();
    let _ = write!(
        body,
        "<p>{passed} of {} runs passed. All figures are simulated time; wall-clock time is in \
         summary.json.</p><table><tr>",
        records.len()
    );
    for column in RUN_COLUMNS {
        let _ = write!(body, "<th>{}</th>", column.name);
    }
    body.push_str("</tr>");
    for r in records {
        body.push_str("<tr>");
        for (k, cell) in run_cells(r).iter().enumerate() {
            let class = if k == VERDICT_COLUMN && r.verdict != RunVerdict::Pass {
                " class=\"fail\""
            } else {
                ""
            };
            let _ = write!(body, "<td{class}>{}</td>", escape(cell));
        }
        body.push_str("</tr>");
    }
    body.push_str("</table>");
    let mut names: Vec<&str> = records.iter().map(|r| r.scenario.as_str()).collect();
    names.dedup();
    for name in names {
        let runs: Vec<&Record> = records.iter().filter(|r| r.scenario == name).collect();
        let _ = write!(
            body,
            "<section><h2>{}</h2><div class=\"charts\">",
            escape(name)
        );
        body.push_str(
            &latency_chart(format!("{name}: end-to-end latency"), curves(&runs)).to_svg(),
        );
        for chart in time_charts(
            &format!("{name}, seed {}", runs[0].seed),
            &runs[0].metrics.series,
        ) {
            body.push_str(&chart.to_svg());
        }
        body.push_str("</div></section>");
    }
    page("mqsim run", &body)
}

/// The end-to-end curves of some runs of one scenario: the first few one by one, and all
/// merged when there are several.
fn curves(runs: &[&Record]) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut merged: Option<Histogram<u64>> = None;
    for (i, r) in runs.iter().enumerate() {
        // A histogram that cannot be read is left out of the plot rather than failing the
        // report; summary.json still has the percentiles.
        let Ok(h) = decode_histogram(&r.metrics.histograms.e2e_us) else {
            continue;
        };
        if i < MAX_CURVES {
            lines.push(percentile_curve(
                format!("seed {} {}", r.seed, r.delivery),
                &h,
            ));
        }
        match &mut merged {
            Some(m) => {
                let _ = m.add(&h);
            }
            None => merged = Some(h),
        }
    }
    if runs.len() > 1
        && let Some(m) = merged
    {
        lines.push(percentile_curve(format!("{} seeds merged", runs.len()), &m));
    }
    lines
}
