//! Checker throughput (issue 4 item 6): history events checked per second, and how the time
//! grows with the history (10x the history should cost at most 12x the time).
//!
//! ```sh
//! CARGO_TARGET_DIR=/tmp/target-bench cargo bench -p mqsim-benches --bench check
//! ```
//!
//! The histories come from real runs (outside the timed part): a queue with a dead-letter
//! queue, 2 producers at 5,000 messages per simulated second each with 2 % poison, 4 consumers
//! that fail 2 % of messages, explicit acks, over 1 s and 10 s of simulated time. Each
//! iteration runs every checker over the whole history: [`mqsim_harness::check::check`],
//! including the per-message index it builds.

use std::hint::black_box;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group};
use mqsim_broker::{BrokerConfig, DestinationConfig, Durability};
use mqsim_harness::check;
use mqsim_harness::sim::spec::{ClientSpec, Processing};
use mqsim_harness::sim::{ClusterSpec, ConsumerSpec, ProducerSpec, RunReport, run};

fn spec(duration_ms: u64) -> ClusterSpec {
    let q = DestinationConfig {
        max_length: 1_000_000,
        max_deliveries: Some(3),
        dead_letter: Some("dlq".into()),
        visibility_timeout_ms: 1000,
        ..DestinationConfig::queue("q")
    };
    ClusterSpec {
        seed: 5,
        tick_ms: 1,
        duration_ms,
        drain_timeout_ms: 10_000,
        transport: Default::default(),
        network: Default::default(),
        broker: BrokerConfig::new(Durability::None, vec![q, DestinationConfig::queue("dlq")]),
        server: Default::default(),
        client: ClientSpec {
            max_in_flight: Some(65_536),
            ..Default::default()
        },
        producers: vec![ProducerSpec {
            count: 2,
            destination: "q".into(),
            messages_per_s: 5_000.0,
            max_in_flight: 65_536,
            poison_fraction: 0.02,
            ..ProducerSpec::default()
        }],
        consumers: vec![ConsumerSpec {
            count: 4,
            destination: "q".into(),
            max_messages: 100,
            processing: Processing::Constant { ms: 0 },
            poll_interval_ms: 1,
            failure_probability: 0.02,
            ..ConsumerSpec::default()
        }],
        faults: Vec::new(),
    }
}

fn history(duration_ms: u64) -> (ClusterSpec, RunReport) {
    let spec = spec(duration_ms);
    let r = run(spec.clone(), None).expect("the bench's run works");
    assert!(r.drained());
    (spec, r)
}

/// Bytes written between cold iterations: twice the last-level cache (32 MiB here), so that
/// none of the history is left in cache.
const FLUSH_BYTES: usize = 64 << 20;

fn checkers(c: &mut Criterion) {
    let mut group = c.benchmark_group("check");
    group.sample_size(10);
    let mut flush = vec![0u8; FLUSH_BYTES];
    for duration_ms in [1_000, 10_000] {
        let (spec, r) = history(duration_ms);
        let events = r.history.entries().len() as u64;
        // The bench is only meaningful if the history is clean: a violation would send the
        // checkers down their (rare) reporting paths.
        let report = check::check(&r.history, &r.plan, &spec, r.drained());
        assert_eq!(report.correctness_failures().count(), 0);
        group.throughput(Throughput::Elements(events));
        // Warm: the same history again and again, so a small one stays in cache.
        group.bench_with_input(
            BenchmarkId::new("warm", events),
            &(&spec, &r),
            |b, (spec, r)| {
                b.iter(|| black_box(check::check(&r.history, &r.plan, spec, true)));
            },
        );
        // Floor: one sequential read of every entry (its time and kind), what any checker of
        // this history must at least do; its growth from the small history to the large one
        // is the memory hierarchy's, not the checkers'.
        group.bench_with_input(BenchmarkId::new("floor", events), &&r, |b, r| {
            b.iter(|| {
                let mut sum = 0u64;
                for e in r.history.entries() {
                    sum = sum.wrapping_add(e.at_ns ^ u64::from(e.process));
                }
                black_box(sum)
            });
        });
        // Cold: the caches are flushed (untimed) before each check, as for a history that
        // was just recorded by a long run and is checked once.
        group.bench_with_input(
            BenchmarkId::new("cold", events),
            &(&spec, &r),
            |b, (spec, r)| {
                b.iter_batched(
                    || {
                        for (i, x) in flush.iter_mut().enumerate().step_by(64) {
                            *x = x.wrapping_add(i as u8);
                        }
                    },
                    |()| black_box(check::check(&r.history, &r.plan, spec, true)),
                    BatchSize::PerIteration,
                );
            },
        );
    }
    black_box(&flush);
    group.finish();
}

/// `MQSIM_CHECK_ONCE=<simulated ms>`: build that history and check it once, for counting
/// instructions under callgrind (`--toggle-collect` on `check_with`), where criterion's
/// repetitions would take too long.
fn once(duration_ms: u64) {
    let (spec, r) = history(duration_ms);
    let report = check::check(&r.history, &r.plan, &spec, r.drained());
    println!(
        "checked {} events: {} invariants",
        r.history.entries().len(),
        report.invariants.len()
    );
}

/// `MQSIM_CHECK_RATIO=<rounds>`: build both histories, then check them in turns (small warm,
/// large warm, small cold, large cold, in each round) and print each one's minimum and median
/// time and the ratios. On a machine shared with other work, the minimum over interleaved
/// rounds is steadier than criterion's mean, and the two sizes see the same load.
///
/// Each check is timed on its own, and the figures are given two ways:
///
/// * *single*: one check per sample, for both sizes;
/// * *equal samples*: a sample of the small history is the sum of [`SMALL_PER_SAMPLE`] of its
///   checks in a row (each timed on its own, the cache flushes of cold ones left out), so that
///   a sample of either size lasts about as long. The minimum of short samples is biased low
///   against that of long ones: a 1.7 ms check often runs between two disturbances of the
///   machine (timer interrupts, the hypervisor, other work) where a 20 ms one never does, so
///   single minima overstate the ratio. Criterion's own estimates (the default mode) likewise
///   time many iterations of a small input per sample.
fn ratio(rounds: usize) {
    use std::time::{Duration, Instant};
    let runs: Vec<_> = [1_000, 10_000].into_iter().map(history).collect();
    let mut flush = vec![0u8; FLUSH_BYTES];
    // times[size][warm = 0, cold = 1]: every check's time, in order.
    let mut times = vec![[Vec::new(), Vec::new()]; runs.len()];
    let per_round = [SMALL_PER_SAMPLE, 1];
    for _ in 0..rounds {
        for cold in [false, true] {
            for (k, (spec, r)) in runs.iter().enumerate() {
                for _ in 0..per_round[k] {
                    if cold {
                        for (i, x) in flush.iter_mut().enumerate().step_by(64) {
                            *x = x.wrapping_add(i as u8);
                        }
                    } else {
                        black_box(check::check(&r.history, &r.plan, spec, true));
                    }
                    let t = Instant::now();
                    black_box(check::check(&r.history, &r.plan, spec, true));
                    times[k][usize::from(cold)].push(t.elapsed());
                }
            }
        }
    }
    black_box(&flush);
    // Minimum and median in ms of `v` taken in samples of `n` checks each, per check.
    let stat = |v: &[Duration], n: usize| {
        let mut samples: Vec<f64> = v
            .chunks_exact(n)
            .map(|c| c.iter().map(Duration::as_secs_f64).sum::<f64>() * 1e3 / n as f64)
            .collect();
        samples.sort_by(f64::total_cmp);
        (samples[0], samples[samples.len() / 2])
    };
    let (small, large) = (
        runs[0].1.history.entries().len(),
        runs[1].1.history.entries().len(),
    );
    for (name, c) in [("warm", 0), ("cold", 1)] {
        let single: Vec<Duration> = times[0][c]
            .iter()
            .step_by(SMALL_PER_SAMPLE)
            .copied()
            .collect();
        for (how, (small_min, small_med)) in [
            ("single", stat(&single, 1)),
            ("equal samples", stat(&times[0][c], SMALL_PER_SAMPLE)),
        ] {
            let (large_min, large_med) = stat(&times[1][c], 1);
            println!(
                "{name}, {how}: {small} events min {small_min:.3} ms median {small_med:.3} ms; \
                 {large} events min {large_min:.3} ms median {large_med:.3} ms; ratio min \
                 {:.2}x median {:.2}x",
                large_min / small_min,
                large_med / small_med,
            );
        }
    }
}

/// Checks of the small history per equal-length sample in [`ratio`]: the large history has
/// about ten times its events.
const SMALL_PER_SAMPLE: usize = 10;

criterion_group!(benches, checkers);

fn main() {
    if let Some(rounds) = std::env::var("MQSIM_CHECK_RATIO")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        ratio(rounds);
        return;
    }
    if let Some(ms) = std::env::var("MQSIM_CHECK_ONCE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        once(ms);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
