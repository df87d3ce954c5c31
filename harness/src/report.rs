//! Reports written beside `summary.json`: `report.md`, a table fit for a CI job summary, and
//! `junit.xml`, one test case per scenario and seed, so CI systems show runs as tests.

use std::fmt::Write as _;

use crate::runner::{Record, RunVerdict};

/// `report.md`: one row per run, then why each run that did not pass failed.
pub fn markdown(records: &[Record]) -> String {
    let mut s = String::from("# mqsim run\n\n");
    let passed = records
        .iter()
        .filter(|r| r.verdict == RunVerdict::Pass)
        .count();
    let _ = writeln!(s, "{passed} of {} runs passed.\n", records.len());
    // The Markdown table leaves out the last column, the maximum, which the HTML page has.
    let columns = RUN_COLUMNS.len() - 1;
    let shown = &RUN_COLUMNS[..columns];
    let names: Vec<&str> = shown.iter().map(|c| c.name).collect();
    let aligns: Vec<&str> = shown
        .iter()
        .map(|c| if c.numeric { "---:" } else { "---" })
        .collect();
    let _ = writeln!(s, "| {} |", names.join(" | "));
    let _ = writeln!(s, "| {} |", aligns.join(" | "));
    for r in records {
        let cells: Vec<String> = run_cells(r)[..columns].iter().map(|c| cell(c)).collect();
        let _ = writeln!(s, "| {} |", cells.join(" | "));
    }
    let runs: Vec<crate::coverage::Coverage> = records.iter().map(|r| r.coverage).collect();
    let _ = write!(s, "\n```\n{}```\n", crate::coverage::table(&runs));
    for r in records.iter().filter(|r| r.verdict != RunVerdict::Pass) {
        let _ = writeln!(
            s,
            "\n## {} seed {}: {}\n",
            r.scenario,
            r.seed,
            r.verdict.name()
        );
        for line in failure_lines(r, 20) {
            let _ = writeln!(s, "- {}", cell(&line));
        }
    }
    s
}

/// `junit.xml`: a test suite of one test case per run; a failed run's failure lists its
/// failed expectations and violations.
pub fn junit(records: &[Record]) -> String {
    let time: f64 = records.iter().map(|r| r.wall_clock.seconds).sum();
    let cases: Vec<JunitCase> = records
        .iter()
        .map(|r| {
            let failure = (r.verdict != RunVerdict::Pass).then(|| {
                let lines = failure_lines(r, 20);
                JunitFailure {
                    kind: r.verdict.name(),
                    message: lines.first().cloned().unwrap_or_default(),
                    body: lines.join("\n"),
                }
            });
            JunitCase {
                classname: &r.file,
                name: format!("{} seed {}", r.scenario, r.seed),
                time: Some(r.wall_clock.seconds),
                failure,
            }
        })
        .collect();
    junit_xml("mqsim", time, &cases)
}

/// One test case of a JUnit file.
pub(crate) struct JunitCase<'a> {
    pub classname: &'a str,
    pub name: String,
    /// Its own time, when it has one.
    pub time: Option<f64>,
    pub failure: Option<JunitFailure>,
}

/// Why a JUnit test case failed.
pub(crate) struct JunitFailure {
    /// The failure's `type`.
    pub kind: &'static str,
    /// Its one-line `message`.
    pub message: String,
    /// Its text.
    pub body: String,
}

/// A JUnit XML document of one suite named `suite`, taking `time` seconds, of `cases`:
/// `mqsim run` and `mqsim explore` both write one for CI.
pub(crate) fn junit_xml(suite: &str, time: f64, cases: &[JunitCase<'_>]) -> String {
    let failures = cases.iter().filter(|c| c.failure.is_some()).count();
    let tests = cases.len();
    let mut s = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        s,
        "<testsuites name=\"{suite}\" tests=\"{tests}\" failures=\"{failures}\" time=\"{time:.3}\">"
    );
    let _ = writeln!(
        s,
        "  <testsuite name=\"{suite}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" \
         skipped=\"0\" time=\"{time:.3}\">"
    );
    for c in cases {
        let _ = write!(
            s,
            "    <testcase classname=\"{}\" name=\"{}\"",
            xml(c.classname),
            xml(&c.name)
        );
        if let Some(t) = c.time {
            let _ = write!(s, " time=\"{t:.3}\"");
        }
        let Some(f) = &c.failure else {
            s.push_str("/>\n");
            continue;
        };
        let _ = writeln!(
            s,
            ">\n      <failure type=\"{}\" message=\"{}\">{}</failure>\n    </testcase>",
            f.kind,
            xml(&f.message),
            xml(&f.body)
        );
    }
    s.push_str("  </testsuite>\n</testsuites>\n");
    s
}

/// What made a run fail: expectations first, then the first `violations` violations.
pub(crate) fn failure_lines(r: &Record, violations: usize) -> Vec<String> {
    let mut lines: Vec<String> = r
        .failed_expectations
        .iter()
        .map(|f| format!("expectation: {f}"))
        .collect();
    lines.extend(
        r.violations
            .iter()
            .take(violations)
            .map(|v| format!("{}: {}", v.invariant, v.message)),
    );
    if r.verdict == RunVerdict::Liveness && lines.is_empty() {
        lines.push("the drain did not finish within its bound".to_owned());
    }
    lines
}

/// A column of the run table: its heading, and whether it holds numbers (which the Markdown
/// table aligns right).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Column {
    pub name: &'static str,
    pub numeric: bool,
}

const fn text(name: &'static str) -> Column {
    Column {
        name,
        numeric: false,
    }
}

const fn number(name: &'static str) -> Column {
    Column {
        name,
        numeric: true,
    }
}

/// The columns of the run table in `report.md` and `report.html`.
pub(crate) const RUN_COLUMNS: [Column; 13] = [
    text("scenario"),
    number("seed"),
    text("delivery"),
    text("verdict"),
    number("confirmed"),
    number("lost"),
    number("duplicate deliveries"),
    number("duplicate effects"),
    number("dead-lettered"),
    number("throughput/s"),
    number("e2e p50 ms"),
    number("e2e p99 ms"),
    number("e2e max ms"),
];

/// Where the verdict is in a row, so that a report can mark a run that did not pass.
pub(crate) const VERDICT_COLUMN: usize = 3;

/// A run's row of that table, as plain text; each report escapes it its own way.
pub(crate) fn run_cells(r: &Record) -> [String; 13] {
    let (c, m) = (&r.counts, &r.metrics);
    [
        r.scenario.clone(),
        r.seed.to_string(),
        r.delivery.clone(),
        r.verdict.name().to_owned(),
        c.confirmed.to_string(),
        c.lost.to_string(),
        c.duplicate_deliveries.to_string(),
        c.duplicate_effects.to_string(),
        c.dead_lettered.to_string(),
        format!("{:.0}", m.throughput_per_s),
        format!("{:.1}", m.e2e_latency_ms.p50),
        format!("{:.1}", m.e2e_latency_ms.p99),
        format!("{:.1}", m.e2e_latency_ms.max),
    ]
}

/// Text safe in a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// Text safe in XML content and attributes; characters XML 1.0 cannot hold are dropped.
pub(crate) fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\t' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runner::{Counts, RunMetrics, Violation};

    fn record(scenario: &str, verdict: RunVerdict) -> Record {
        Record {
            scenario: scenario.to_owned(),
            file: "scenarios/x.yaml".to_owned(),
            seed: 3,
            delivery: "at-least-once".to_owned(),
            verdict,
            counts: Counts::default(),
            violations: vec![Violation {
                invariant: "no-loss",
                message: "message 7 was <lost> & \"gone\"".to_owned(),
                message_ids: vec![7],
            }],
            failed_expectations: vec!["counts.lost = 1, expected 0".to_owned()],
            metrics: RunMetrics::default(),
            coverage: Default::default(),
            wall_clock: crate::runner::WallClock::default(),
            history_sha256: "0".repeat(64),
            history_file: None,
        }
    }

    #[test]
    fn junit_has_a_case_per_run_and_escapes_what_it_quotes() {
        let xml = junit(&[
            record("a", RunVerdict::Pass),
            record("b|c", RunVerdict::Fail),
        ]);
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites"));
        assert!(xml.contains("tests=\"2\" failures=\"1\""), "{xml}");
        assert_eq!(xml.matches("<testcase ").count(), 2);
        assert!(xml.contains("name=\"a seed 3\" time=\"0.000\"/>"), "{xml}");
        assert!(xml.contains(
            "<failure type=\"fail\" message=\"expectation: counts.lost = 1, expected 0\">"
        ));
        assert!(
            xml.contains("message 7 was &lt;lost&gt; &amp; &quot;gone&quot;"),
            "{xml}"
        );
        // Every element opened is closed.
        for tag in ["testsuites", "testsuite", "failure"] {
            assert_eq!(
                xml.matches(&format!("<{tag}")).count()
                    - usize::from(tag == "testsuite") * xml.matches("<testsuites").count(),
                xml.matches(&format!("</{tag}>")).count(),
                "{tag}"
            );
        }
    }

    #[test]
    fn markdown_lists_each_run_and_why_the_failures_failed() {
        let md = markdown(&[
            record("a", RunVerdict::Pass),
            record("b|c", RunVerdict::Fail),
        ]);
        assert!(md.contains("1 of 2 runs passed."));
        assert!(md.contains("| b\\|c | 3 | at-least-once | fail |"), "{md}");
        assert!(md.contains("## b|c seed 3: fail"));
        assert!(md.contains("- expectation: counts.lost = 1, expected 0"));
    }

    #[test]
    fn the_markdown_table_aligns_each_column_by_its_kind() {
        // The heading, the alignment row and every run's row have the same number of cells,
        // and the alignment row follows the columns' kinds: a column added or moved cannot
        // leave the alignment row behind.
        let md = markdown(&[record("a", RunVerdict::Pass)]);
        let rows: Vec<Vec<&str>> = md
            .lines()
            .filter(|l| l.starts_with('|'))
            .map(|l| l.trim_matches('|').split(" | ").map(str::trim).collect())
            .collect();
        assert_eq!(rows.len(), 3, "{md}");
        assert!(rows.iter().all(|r| r.len() == rows[0].len()), "{md}");
        assert_eq!(rows[0][0], "scenario");
        assert_eq!(rows[1][0], "---", "the scenario is text");
        assert_eq!(rows[1][1], "---:", "the seed is a number");
        assert_eq!(rows[1][3], "---", "the verdict is text");
        assert!(rows[1][4..].iter().all(|a| *a == "---:"), "{md}");
    }
}
