//! A run's figures over time: what the plots of a report show.
//!
//! Time is cut into equal windows from zero to the end of the history. The window is the
//! smallest of 1, 2 and 5 times a power of ten milliseconds that keeps the count at most
//! [`MAX_WINDOWS`], so a short run gets fine windows and a long one a bounded series. Each
//! figure is exact for a seed: it counts history entries, in simulated time.

use serde::Serialize;

use crate::sim::history::{BrokerEvent, What};
use crate::sim::nemesis::Fault;
use crate::sim::spec::ClusterSpec;

use super::facts::Facts;

/// The most windows a series has.
pub const MAX_WINDOWS: u64 = 60;

/// Figures per window of simulated time.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Series {
    /// The window's length.
    pub window_ms: u64,
    /// Completions per simulated second in each window.
    pub completed_per_s: Vec<f64>,
    /// Confirmed publishes per simulated second in each window.
    pub confirmed_per_s: Vec<f64>,
    /// Per subscription (`destination` or `destination/group`), the most messages it held
    /// confirmed and not yet final at any instant of each window.
    pub lag: Vec<(String, Vec<u64>)>,
    /// Messages in dead-letter queues and not yet consumed from them, at each window's end.
    pub dead_letter_depth: Vec<u64>,
    /// The fault schedule, to shade on plots.
    pub faults: Vec<FaultWindow>,
}

/// One fault of the schedule.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FaultWindow {
    pub start_ms: u64,
    pub end_ms: u64,
    /// The fault's kind: `crash`, `partition`, `latency`, `hold`, `slow` or `pause`.
    pub kind: &'static str,
}

/// What [`super::metrics`] collects on its way through the messages.
#[derive(Debug, Default)]
pub(super) struct Events {
    pub completions_ns: Vec<u64>,
    pub confirms_ns: Vec<u64>,
    /// (time, subscription, +1 or -1), sorted.
    pub lag: Vec<(u64, u16, i8)>,
}

/// The window length for a history ending at `end_ns`.
fn window_ms(end_ns: u64) -> u64 {
    let end_ms = end_ns.div_ceil(1_000_000).max(1);
    let mut decade = 1u64;
    loop {
        for step in [1, 2, 5] {
            let w = decade * step;
            if end_ms.div_ceil(w) <= MAX_WINDOWS {
                return w;
            }
        }
        decade *= 10;
    }
}

fn rate(times_ns: &[u64], window_ns: u64, windows: usize) -> Vec<f64> {
    let mut counts = vec![0u64; windows];
    for &t in times_ns {
        let i = ((t / window_ns) as usize).min(windows - 1);
        counts[i] += 1;
    }
    let per_s = 1e9 / window_ns as f64;
    counts.into_iter().map(|c| c as f64 * per_s).collect()
}

pub(super) fn build(f: &Facts<'_>, events: Events, spec: &ClusterSpec, end_ns: u64) -> Series {
    let plan = f.plan;
    let window_ms = window_ms(end_ns);
    let window_ns = window_ms * 1_000_000;
    let windows = (end_ns / window_ns + 1) as usize;

    // Lag: replay the sorted changes window by window. A window's figure is the most the
    // subscription held at any instant in it, so it starts at the level the last one ended at.
    let subs = plan.subs.len();
    let mut lag = vec![vec![0u64; windows]; subs];
    let mut level = vec![0i64; subs];
    let mut changes = events.lag.iter().peekable();
    for i in 0..windows {
        let end = if i + 1 == windows {
            u64::MAX
        } else {
            (i as u64 + 1) * window_ns
        };
        for (row, l) in lag.iter_mut().zip(&level) {
            row[i] = (*l).max(0) as u64;
        }
        while let Some(&(_, sub, d)) = changes.next_if(|c| c.0 < end) {
            let s = usize::from(sub);
            let Some(l) = level.get_mut(s) else { continue };
            *l += i64::from(d);
            lag[s][i] = lag[s][i].max((*l).max(0) as u64);
        }
    }

    // Dead-letter depth: moved in by a dead-lettering, out by an ack or a discard in a
    // subscription of a destination some other destination dead-letters to.
    let dlq: Vec<bool> = plan
        .subs
        .iter()
        .map(|s| {
            spec.broker
                .destinations
                .iter()
                .any(|d| d.dead_letter.as_deref() == Some(s.destination.as_str()))
        })
        .collect();
    let mut depth = vec![0u64; windows];
    let mut current = 0i64;
    let mut next_window = 0usize;
    for e in f.entries {
        let What::Broker { event, sub, .. } = e.what else {
            continue;
        };
        let i = ((e.at_ns / window_ns) as usize).min(windows - 1);
        while next_window < i {
            depth[next_window] = current.max(0) as u64;
            next_window += 1;
        }
        let in_dlq = dlq.get(usize::from(sub)).copied().unwrap_or(false);
        match event {
            BrokerEvent::DeadLettered => current += 1,
            BrokerEvent::Acked if in_dlq => current -= 1,
            ev if in_dlq && ev.is_final_discard() => current -= 1,
            _ => {}
        }
    }
    for d in depth.iter_mut().skip(next_window) {
        *d = current.max(0) as u64;
    }

    let faults = spec
        .faults
        .iter()
        .map(|fs| FaultWindow {
            start_ms: fs.at_ms,
            end_ms: fs
                .for_ms
                .map_or(spec.duration_ms, |d| (fs.at_ms + d).min(spec.duration_ms)),
            kind: match fs.fault {
                Fault::Crash { .. } => "crash",
                Fault::Partition { .. } => "partition",
                Fault::Latency { .. } => "latency",
                Fault::Hold { .. } => "hold",
                Fault::Slow { .. } => "slow",
                Fault::Pause { .. } => "pause",
            },
        })
        .collect();

    Series {
        window_ms,
        completed_per_s: rate(&events.completions_ns, window_ns, windows),
        confirmed_per_s: rate(&events.confirms_ns, window_ns, windows),
        lag: plan
            .subs
            .iter()
            .zip(lag)
            .map(|(s, row)| {
                let name = match &s.group {
                    Some(g) => format!("{}/{g}", s.destination),
                    None => s.destination.clone(),
                };
                (name, row)
            })
            .collect(),
        dead_letter_depth: depth,
        faults,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_round_and_bounded() {
        assert_eq!(window_ms(0), 1);
        assert_eq!(window_ms(60 * 1_000_000), 1);
        assert_eq!(window_ms(61 * 1_000_000), 2);
        assert_eq!(window_ms(3_000 * 1_000_000), 50);
        assert_eq!(window_ms(30_500 * 1_000_000), 1_000);
        assert_eq!(window_ms(86_400_000 * 1_000_000), 2_000_000);
        for end_ms in [1u64, 7, 999, 12_345, 3_600_000] {
            let w = window_ms(end_ms * 1_000_000);
            assert!(
                end_ms.div_ceil(w) <= MAX_WINDOWS,
                "{end_ms} ms in {w} ms windows"
            );
        }
    }
}
