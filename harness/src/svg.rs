//! Line charts as inline SVG, for the self-contained HTML reports: no script, no external
//! file, so a report opens offline and renders the same in any browser.
//!
//! A chart is lines of (x, y) points on linear axes with round tick values, an optional
//! custom x axis (the percentile axis of a latency curve), and shaded x ranges (fault
//! windows, drawn first so the lines stay visible over them).

use std::fmt::Write as _;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Line {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// A shaded x range with a label (a fault window).
#[derive(Debug, Clone)]
pub struct Shade {
    pub from: f64,
    pub to: f64,
    pub label: String,
}

/// A chart to draw.
#[derive(Debug, Clone, Default)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub lines: Vec<Line>,
    pub shades: Vec<Shade>,
    /// Tick positions and labels for the x axis; unset, round values are chosen.
    pub x_ticks: Option<Vec<(f64, String)>>,
}

/// Colours of successive lines, distinguishable for the common forms of colour blindness
/// (Okabe and Ito's palette).
const PALETTE: [&str; 8] = [
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
];
/// Colours of shaded ranges by the start of their label (the fault kind).
const SHADE_COLOURS: [(&str, &str); 6] = [
    ("crash", "#d62728"),
    ("partition", "#9467bd"),
    ("latency", "#ff7f0e"),
    ("hold", "#8c564b"),
    ("slow", "#bcbd22"),
    ("pause", "#7f7f7f"),
];

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 32.0;
const BOTTOM: f64 = 64.0;

/// A round step that cuts `span` into about five parts: 1, 2 or 5 times a power of ten.
pub fn nice_step(span: f64) -> f64 {
    if span.is_nan() || span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / 5.0;
    let decade = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * decade)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * decade)
}

/// A number as a tick label: no trailing zeros, at most three decimals.
pub fn format_number(v: f64) -> String {
    let text = format!("{v:.3}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_owned()
    } else {
        text.to_owned()
    }
}

/// Text safe inside XML and HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Chart {
    /// The chart as an `<svg>` element.
    pub fn to_svg(&self) -> String {
        let points = self.lines.iter().flat_map(|l| l.points.iter());
        let (mut x_max, mut y_max) = (0f64, 0f64);
        let mut x_min = f64::INFINITY;
        for &(x, y) in points {
            if x.is_finite() && y.is_finite() {
                x_min = x_min.min(x);
                x_max = x_max.max(x);
                y_max = y_max.max(y);
            }
        }
        for s in &self.shades {
            x_max = x_max.max(s.to);
        }
        if let Some(ticks) = &self.x_ticks {
            for (x, _) in ticks {
                x_max = x_max.max(*x);
            }
        }
        let x_min = if x_min.is_finite() {
            x_min.min(0.0)
        } else {
            0.0
        };
        let x_max = if x_max > x_min { x_max } else { x_min + 1.0 };
        let y_step = nice_step(y_max);
        let y_max = if y_max > 0.0 {
            (y_max / y_step).ceil() * y_step
        } else {
            1.0
        };
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let sx = |x: f64| LEFT + (x - x_min) / (x_max - x_min) * plot_w;
        let sy = |y: f64| TOP + plot_h - y / y_max * plot_h;

        let mut s = String::new();
        let _ = write!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
             width=\"{WIDTH}\" height=\"{HEIGHT}\" role=\"img\" aria-label=\"{}\" \
             font-family=\"sans-serif\" font-size=\"11\">",
            escape(&self.title)
        );
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"18\" font-size=\"13\" font-weight=\"bold\">{}</text>",
            LEFT,
            escape(&self.title)
        );
        // Shaded ranges first, under everything else.
        for shade in &self.shades {
            let colour = SHADE_COLOURS
                .iter()
                .find(|(kind, _)| shade.label.starts_with(kind))
                .map_or("#999999", |(_, c)| c);
            let (x0, x1) = (sx(shade.from.max(x_min)), sx(shade.to.min(x_max)));
            let _ = write!(
                s,
                "<rect class=\"shade\" x=\"{x0:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{plot_h}\" \
                 fill=\"{colour}\" fill-opacity=\"0.15\"><title>{}</title></rect>\
                 <text x=\"{:.1}\" y=\"{:.1}\" fill=\"{colour}\" font-size=\"10\">{}</text>",
                (x1 - x0).max(1.0),
                escape(&shade.label),
                x0 + 2.0,
                TOP + 10.0,
                escape(&shade.label)
            );
        }
        // Axes, grid and ticks.
        let mut y = 0.0;
        while y <= y_max + y_step / 2.0 {
            let py = sy(y);
            let _ = write!(
                s,
                "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{py:.1}\" y2=\"{py:.1}\" stroke=\"#e0e0e0\"/>\
                 <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                LEFT + plot_w,
                LEFT - 4.0,
                py + 4.0,
                format_number(y)
            );
            y += y_step;
        }
        let x_ticks = self.x_ticks.clone().unwrap_or_else(|| {
            let step = nice_step(x_max - x_min);
            let mut ticks = Vec::new();
            let mut x = (x_min / step).ceil() * step;
            while x <= x_max + step * 1e-9 {
                ticks.push((x, format_number(x)));
                x += step;
            }
            ticks
        });
        for (x, label) in &x_ticks {
            let px = sx(*x);
            let _ = write!(
                s,
                "<line x1=\"{px:.1}\" x2=\"{px:.1}\" y1=\"{TOP}\" y2=\"{:.1}\" stroke=\"#f0f0f0\"/>\
                 <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                TOP + plot_h,
                TOP + plot_h + 14.0,
                escape(label)
            );
        }
        let _ = write!(
            s,
            "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{plot_w}\" height=\"{plot_h}\" fill=\"none\" stroke=\"#333\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
             <text x=\"14\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.1})\">{}</text>",
            LEFT + plot_w / 2.0,
            TOP + plot_h + 30.0,
            escape(&self.x_label),
            TOP + plot_h / 2.0,
            TOP + plot_h / 2.0,
            escape(&self.y_label)
        );
        // Lines, then the legend under the axis label.
        for (i, line) in self.lines.iter().enumerate() {
            let colour = PALETTE[i % PALETTE.len()];
            let path: Vec<String> = line
                .points
                .iter()
                .filter(|(x, y)| x.is_finite() && y.is_finite())
                .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
                .collect();
            let _ = write!(
                s,
                "<polyline class=\"series\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.5\" \
                 points=\"{}\"><title>{}</title></polyline>",
                path.join(" "),
                escape(&line.label)
            );
            let lx = LEFT + (i % 4) as f64 * (plot_w / 4.0);
            let ly = HEIGHT - 14.0 + (i / 4) as f64 * 12.0 - 6.0;
            let _ = write!(
                s,
                "<rect x=\"{lx:.1}\" y=\"{:.1}\" width=\"10\" height=\"3\" fill=\"{colour}\"/>\
                 <text x=\"{:.1}\" y=\"{ly:.1}\">{}</text>",
                ly - 4.0,
                lx + 14.0,
                escape(&line.label)
            );
        }
        s.push_str("</svg>");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(10.0), 2.0);
        assert_eq!(nice_step(7.0), 2.0);
        assert_eq!(nice_step(1000.0), 200.0);
        assert_eq!(nice_step(0.3), 0.1);
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(nice_step(f64::NAN), 1.0);
        assert_eq!(format_number(0.5), "0.5");
        assert_eq!(format_number(200.0), "200");
        assert_eq!(format_number(1.0 / 3.0), "0.333");
    }

    #[test]
    fn a_chart_draws_its_lines_shades_and_escaped_labels() {
        let chart = Chart {
            title: "lag <per> group".to_owned(),
            x_label: "s".to_owned(),
            y_label: "messages".to_owned(),
            lines: vec![
                Line {
                    label: "a&b".to_owned(),
                    points: vec![(0.0, 0.0), (1.0, 5.0), (2.0, f64::NAN), (3.0, 2.0)],
                },
                Line {
                    label: "c".to_owned(),
                    points: vec![(0.0, 1.0), (3.0, 1.0)],
                },
            ],
            shades: vec![Shade {
                from: 1.0,
                to: 2.0,
                label: "crash broker".to_owned(),
            }],
            x_ticks: None,
        };
        let svg = chart.to_svg();
        assert!(svg.starts_with("<svg"));
        assert!(svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("class=\"shade\"").count(), 1);
        assert!(svg.contains("lag &lt;per&gt; group"));
        assert!(svg.contains("a&amp;b"));
        // The NaN point is skipped, the three others are drawn.
        let first = svg.split("points=\"").nth(1).unwrap();
        assert_eq!(first.split('"').next().unwrap().split(' ').count(), 3);
        // The crash shade takes the crash colour.
        assert!(svg.contains("fill=\"#d62728\""));
    }

    #[test]
    fn an_empty_chart_still_has_axes() {
        let svg = Chart::default().to_svg();
        assert!(svg.contains("<rect"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }
}
