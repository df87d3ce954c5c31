//! What a run measured, from its history alone, in simulated time.
//!
//! Latencies start at a message's *intended* send time (the producer is open loop: the time
//! its schedule said to send it), not at the actual send, so a producer held back by its
//! in-flight window or a partition does not hide the wait (no coordinated omission).
//!
//! * **publish latency**: intended send time to the first `ok` of its publish, per confirmed
//!   message;
//! * **end-to-end latency**: intended send time to completion in a subscription of its
//!   destination (the consumer's `ok` for its ack, or its applied effect under auto acks), per
//!   message and subscription; dead-lettered, expired and dropped messages are not completions;
//! * **throughput**: completions per simulated second, from the first intended send to the
//!   last completion;
//! * **send delay**: intended send time to the actual send (the publish's invoke), which
//!   shows how far behind its schedule a producer fell;
//! * **max lag**: the most messages one subscription held confirmed and not yet final
//!   (completed, dead-lettered, expired or dropped) at any instant;
//! * **over time** ([`Series`]): completions and confirms per second, lag per subscription and
//!   dead-letter depth, in fixed windows, with the fault windows of the schedule.
//!
//! Latencies are recorded in HdrHistograms of microseconds with three significant digits;
//! [`Histograms`] keeps them so that several seeds can be merged without averaging
//! percentiles.
//!
//! These are simulated-time figures. Wall-clock figures are the runner's, reported apart.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::sim::history::{BrokerEvent, History, Op, What};
use crate::sim::plan::Plan;
use crate::sim::spec::ClusterSpec;

use super::facts::{Facts, NONE};
use super::series::{self, Series};
use super::settings::{DeliveryMode, Settings};

/// Percentiles of a latency, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p75: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub p9999: f64,
    pub max: f64,
    /// Samples.
    pub count: u64,
}

/// A run's measurements, in simulated time.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Metrics {
    /// Completions per simulated second.
    pub throughput_per_s: f64,
    /// Intended send to completion.
    pub e2e_latency_ms: Percentiles,
    /// Intended send to confirm.
    pub publish_latency_ms: Percentiles,
    /// Intended send to the actual send.
    pub send_delay_ms: Percentiles,
    /// Most messages confirmed and not final in one subscription at once.
    pub max_lag: u64,
    /// Simulated seconds the history covers.
    pub sim_seconds: f64,
    /// The figures over time.
    pub series: Series,
    /// The latency histograms the percentiles come from.
    #[serde(skip)]
    pub histograms: Histograms,
}

/// The latency histograms of a run, in microseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Histograms {
    pub e2e_us: Histogram<u64>,
    pub publish_us: Histogram<u64>,
    pub send_delay_us: Histogram<u64>,
}

impl Default for Histograms {
    fn default() -> Self {
        Histograms {
            e2e_us: histogram(),
            publish_us: histogram(),
            send_delay_us: histogram(),
        }
    }
}

/// A histogram of microseconds with three significant digits, which grows as needed.
pub fn histogram() -> Histogram<u64> {
    // Three significant figures with auto-resize cannot fail to build.
    let mut h = Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant figures"));
    h.auto(true);
    h
}

/// The percentiles of a histogram of microseconds, in milliseconds.
pub fn percentiles(h: &Histogram<u64>) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Percentiles {
        p50: ms(h.value_at_quantile(0.5)),
        p75: ms(h.value_at_quantile(0.75)),
        p90: ms(h.value_at_quantile(0.9)),
        p99: ms(h.value_at_quantile(0.99)),
        p999: ms(h.value_at_quantile(0.999)),
        p9999: ms(h.value_at_quantile(0.9999)),
        max: ms(h.max()),
        count: h.len(),
    }
}

/// Measures a run of `spec` from its history.
pub fn measure(history: &History, plan: &Plan, spec: &ClusterSpec) -> Metrics {
    measure_facts(&Facts::new(history, plan), &Settings::new(spec, plan), spec)
}

/// [`measure`] of a history already indexed.
pub(super) fn measure_facts(f: &Facts<'_>, settings: &Settings, spec: &ClusterSpec) -> Metrics {
    let plan = f.plan;
    let mut e2e = histogram();
    let mut publish = histogram();
    let mut send_delay = histogram();
    let mut events = series::Events::default();
    // (time, subscription, +1 or -1): lag changes.
    let mut lag: Vec<(u64, u16, i8)> = Vec::new();
    let mut first_ns = u64::MAX;
    let mut last_ns = 0u64;
    let mut completions = 0u64;
    let us = |ns: u64| ns / 1000;
    for (m, msg) in f.msgs.iter().enumerate() {
        if msg.invoke == NONE || msg.ok == NONE {
            continue;
        }
        let intended = match f.entries[msg.invoke as usize].what {
            What::Invoke { intended_ns, .. } => intended_ns,
            _ => msg.invoke_ns,
        };
        first_ns = first_ns.min(intended);
        // Saturating: a hand-written history may confirm before the intended time.
        let _ = publish.record(us(msg.ok_ns.saturating_sub(intended)));
        let _ = send_delay.record(us(msg.invoke_ns.saturating_sub(intended)));
        events.confirms_ns.push(msg.ok_ns);
        for &sub in plan.subs_of(msg.destination) {
            lag.push((msg.ok_ns, sub, 1));
            let auto = settings.mode(sub) == DeliveryMode::AtMostOnce;
            // The consumer's view of completion (its ack's `ok`, or its effect under auto
            // acks), else the broker's ack when the consumer never heard back; and the first
            // instant anything made the message final, for the lag.
            let (mut completed, mut acked, mut ended) = (None, None, None);
            for i in f.timeline(m) {
                if f.sub_at(i) != sub {
                    continue;
                }
                let at = f.at(i);
                match f.entries[i as usize].what {
                    What::Ok { op: Op::Ack, .. } => completed = completed.or(Some(at)),
                    What::Effect { .. } if auto => completed = completed.or(Some(at)),
                    What::Broker {
                        event: BrokerEvent::Acked,
                        ..
                    } => acked = acked.or(Some(at)),
                    What::Broker { event, .. } if event.is_final_discard() => {
                        ended = ended.or(Some(at));
                    }
                    _ => continue,
                }
                ended = ended.or(Some(at));
                if completed.is_some() {
                    break;
                }
            }
            if let Some(at) = ended {
                lag.push((at, sub, -1));
            }
            if let Some(at) = completed.or(acked) {
                completions += 1;
                last_ns = last_ns.max(at);
                let _ = e2e.record(us(at.saturating_sub(intended)));
                events.completions_ns.push(at);
            }
        }
    }
    lag.sort_unstable();
    let mut per_sub = vec![0i64; plan.subs.len()];
    let mut max_lag = 0i64;
    for &(_, sub, d) in &lag {
        if let Some(x) = per_sub.get_mut(usize::from(sub)) {
            *x += i64::from(d);
            max_lag = max_lag.max(*x);
        }
    }
    events.lag = lag;
    let span_ns = last_ns.saturating_sub(first_ns);
    let end_ns = f.entries.last().map_or(0, |e| e.at_ns);
    Metrics {
        throughput_per_s: if span_ns > 0 && first_ns != u64::MAX {
            completions as f64 / (span_ns as f64 / 1e9)
        } else {
            0.0
        },
        e2e_latency_ms: percentiles(&e2e),
        publish_latency_ms: percentiles(&publish),
        send_delay_ms: percentiles(&send_delay),
        max_lag: max_lag as u64,
        sim_seconds: end_ns as f64 / 1e9,
        series: series::build(f, events, spec, end_ns),
        histograms: Histograms {
            e2e_us: e2e,
            publish_us: publish,
            send_delay_us: send_delay,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::read;

    const SPEC: &str = r#"
seed: 1
duration_ms: 1000
drain_timeout_ms: 1000
broker:
  destinations: [{ name: q }]
producers: [{ destination: q }]
consumers: [{ destination: q }]
"#;

    #[test]
    fn latencies_start_at_the_intended_send_time() {
        let spec: ClusterSpec = serde_norway::from_str(SPEC).unwrap();
        let plan = Plan::new(&spec);
        // Message 1 was meant to go at 0 ms but was sent at 5 ms, confirmed at 7 ms, acked at
        // 20 ms; message 2 was meant for 10 ms, confirmed at 12 ms and never completed.
        let text = r#"
{"time_ms":5,"process":"producer-0","type":"invoke","op":"publish","msg":1,"intended_ns":0}
{"time_ms":7,"process":"producer-0","type":"ok","op":"publish","invoke":0,"msg":1}
{"time_ms":10,"process":"producer-0","type":"invoke","op":"publish","msg":2,"intended_ns":10000000}
{"time_ms":12,"process":"producer-0","type":"ok","op":"publish","invoke":2,"msg":2,"offset":1}
{"time_ms":14,"process":"consumer-0","type":"invoke","op":"ack","msg":1,"destination":"q"}
{"time_ms":20,"process":"consumer-0","type":"ok","op":"ack","invoke":4,"msg":1}
"#;
        let h = read::read(text, &plan).unwrap();
        let m = measure(&h, &plan, &spec);
        // The histogram keeps three significant digits.
        let near = |a: f64, b: f64| (a - b).abs() <= b * 1e-3;
        assert_eq!(m.publish_latency_ms.count, 2);
        assert!(near(m.publish_latency_ms.max, 7.0), "{m:?}");
        assert!(near(m.publish_latency_ms.p50, 2.0), "{m:?}");
        assert_eq!(m.e2e_latency_ms.count, 1);
        assert!(near(m.e2e_latency_ms.p99, 20.0), "{m:?}");
        // Both confirmed and not yet final between 12 and 20 ms.
        assert_eq!(m.max_lag, 2);
        // One completion over the 20 ms from the first intended send.
        assert!((m.throughput_per_s - 50.0).abs() < 1e-9);
        assert!((m.sim_seconds - 0.02).abs() < 1e-12);
        // Message 1 left 5 ms late, message 2 on time.
        assert_eq!(m.send_delay_ms.count, 2);
        assert!(near(m.send_delay_ms.max, 5.0), "{m:?}");
        assert_eq!(m.histograms.e2e_us.len(), 1);
        // Over time, in 1 ms windows (the history is 20 ms long): the completion at 20 ms, confirms at 7 and 12 ms, and
        // the lag: one message from 7 ms, two from 12 ms, one again from 20 ms.
        let s = &m.series;
        assert_eq!(s.window_ms, 1);
        assert_eq!(s.completed_per_s.len(), 21);
        assert_eq!(s.completed_per_s[20], 1000.0);
        assert_eq!(s.completed_per_s.iter().sum::<f64>(), 1000.0);
        assert_eq!(s.confirmed_per_s[7], 1000.0);
        assert_eq!(s.confirmed_per_s[12], 1000.0);
        assert_eq!(s.lag.len(), 1);
        assert_eq!(s.lag[0].0, "q");
        let lag = &s.lag[0].1;
        assert_eq!((lag[6], lag[7], lag[11], lag[12], lag[19]), (0, 1, 1, 2, 2));
        // The window of the ack holds its peak, 2; the level after it is 1.
        assert_eq!(lag[20], 2);
        assert!(s.dead_letter_depth.iter().all(|&d| d == 0));
    }
}
