//! Benchmarks of the simulated cluster (`mqsim_harness::sim::run`, issue 3 item 10): the
//! harness's overhead over a bare turmoil simulation, end-to-end throughput per wall-clock
//! second with the history on, and the memory one recorded history event takes. See
//! benches/simulation.md for what each part measures and the figures.
//!
//! A plain bench binary (`harness = false`), not criterion: one measurement is a whole
//! simulation (tens of milliseconds to seconds), the figures that matter are ratios and rates
//! computed from several measurements of the same bench run, and each is repeated and its
//! median reported.
//!
//! ```sh
//! CARGO_TARGET_DIR=/tmp/target-simbench cargo bench -p mqsim-benches --bench simulation
//! # one part only: overhead, catalogue, throughput or memory
//! CARGO_TARGET_DIR=/tmp/target-simbench cargo bench -p mqsim-benches --bench simulation -- throughput
//! # check that every part runs (one repetition each, short runs)
//! CARGO_TARGET_DIR=/tmp/target-simbench cargo bench -p mqsim-benches --bench simulation -- --test
//! ```
//!
//! Every measured run is checked: it drained, every message the producers were scheduled to
//! send was published, confirmed, delivered once and completed, and nothing was lost, failed,
//! left in doubt or delivered unexpectedly.

use std::hint::black_box;
use std::time::{Duration, Instant};

use mqsim_broker::{AckMode, BrokerConfig, DestinationConfig, Durability};
use mqsim_harness::discover::discover;
use mqsim_harness::scenario::ScenarioFile;
use mqsim_harness::sim::history::Entry;
use mqsim_harness::sim::spec::{ClientSpec, NetworkSpec, Processing};
use mqsim_harness::sim::{
    ClusterSpec, ConsumerSpec, Plan, ProducerSpec, RunReport, Summary, Transport, builder, run,
};

#[path = "simulation/lean.rs"]
mod lean;

const QUEUE: &str = "q";

/// How much work a bench run does.
#[derive(Debug, Clone, Copy)]
struct Mode {
    /// Repetitions of each overhead measurement; the median is reported.
    overhead_reps: usize,
    /// Repetitions of each throughput run; the median is reported.
    throughput_reps: usize,
    /// Simulated length of the fault phase of the throughput runs.
    throughput_ms: u64,
}

const FULL: Mode = Mode {
    overhead_reps: 9,
    throughput_reps: 3,
    throughput_ms: 2_000,
};

/// `-- --test`: every part once, short throughput runs, to check that the bench works.
const SMOKE: Mode = Mode {
    overhead_reps: 1,
    throughput_reps: 1,
    throughput_ms: 100,
};

// ---------------------------------------------------------------------------------------------
// Specs

fn queue_broker(durability: Durability) -> BrokerConfig {
    BrokerConfig::new(
        durability,
        vec![DestinationConfig {
            max_length: 1_000_000,
            ..DestinationConfig::queue(QUEUE)
        }],
    )
}

/// The runs of the overhead bench: one broker, 2 producers at `rate` messages per simulated
/// second each, 2 consumers (batches of up to 10, 1 ms of processing per message, explicit
/// acks), 3 simulated seconds of fault phase (no faults) at a 1 ms tick, default latencies
/// (1–5 ms), `always` durability, then the drain. The standard run is `rate` = 500.
fn overhead_spec(rate: f64) -> ClusterSpec {
    ClusterSpec {
        seed: 1,
        tick_ms: 1,
        duration_ms: 3_000,
        drain_timeout_ms: 2_000,
        transport: Transport::Network,
        network: NetworkSpec::default(),
        broker: queue_broker(Durability::Always),
        server: Default::default(),
        client: Default::default(),
        producers: vec![ProducerSpec {
            count: 2,
            destination: QUEUE.into(),
            messages_per_s: rate,
            // A rate of zero never sends: the producer is done at once.
            messages: (rate == 0.0).then_some(0),
            ..ProducerSpec::default()
        }],
        consumers: vec![ConsumerSpec {
            count: 2,
            destination: QUEUE.into(),
            max_messages: 10,
            processing: Processing::Constant { ms: 1 },
            ..ConsumerSpec::default()
        }],
        faults: Vec::new(),
    }
}

/// Messages per simulated second of each producer of the standard run.
const STANDARD_RATE: f64 = 500.0;
/// Other rates the overhead bench runs, to show how the ratio grows with traffic.
const OTHER_RATES: [f64; 4] = [0.0, 50.0, 100.0, 200.0];

/// A saturating workload: `producers` hosts publishing `rate` messages per simulated second
/// each, `consumers` hosts receiving up to `batch` messages per call with no processing time.
#[derive(Debug, Clone, Copy)]
struct Load {
    name: &'static str,
    producers: u32,
    rate: f64,
    consumers: u32,
    batch: u32,
    ack: AckMode,
    tick_ms: u64,
    latency_ms: (u64, u64),
    transport: Transport,
}

impl Load {
    fn spec(&self, duration_ms: u64) -> ClusterSpec {
        // Enough in flight that neither the producer's window nor the client's slots throttle
        // an open-loop producer at this rate.
        let in_flight = 65_536;
        ClusterSpec {
            seed: 3,
            tick_ms: self.tick_ms,
            duration_ms,
            drain_timeout_ms: 5_000,
            transport: self.transport,
            network: NetworkSpec {
                min_latency_ms: self.latency_ms.0,
                max_latency_ms: self.latency_ms.1,
            },
            broker: queue_broker(Durability::None),
            server: Default::default(),
            client: ClientSpec {
                max_in_flight: Some(in_flight as usize),
                request_timeout_ms: Some(10_000),
                ..Default::default()
            },
            producers: vec![ProducerSpec {
                count: self.producers,
                destination: QUEUE.into(),
                messages_per_s: self.rate,
                max_in_flight: in_flight,
                payload_bytes: 32,
                ..ProducerSpec::default()
            }],
            consumers: vec![ConsumerSpec {
                count: self.consumers,
                destination: QUEUE.into(),
                max_messages: self.batch,
                processing: Processing::Constant { ms: 0 },
                poll_interval_ms: 1,
                ack_mode: self.ack,
                ..ConsumerSpec::default()
            }],
            faults: Vec::new(),
        }
    }

    /// See [`scheduled`].
    fn scheduled(&self, duration_ms: u64) -> (u64, u64) {
        scheduled(self.producers, self.rate, self.tick_ms, duration_ms)
    }
}

/// The saturating loads of the throughput bench. The first is the headline: explicit acks,
/// so every message is published, delivered and acked over the wire.
const LOADS: [Load; 4] = [
    Load {
        name: "explicit-acks",
        producers: 2,
        rate: 100_000.0,
        consumers: 2,
        batch: 1024,
        ack: AckMode::Explicit,
        tick_ms: 1,
        latency_ms: (0, 0),
        transport: Transport::Network,
    },
    Load {
        name: "explicit-acks-latency-1-5ms",
        producers: 2,
        rate: 100_000.0,
        consumers: 2,
        batch: 1024,
        ack: AckMode::Explicit,
        tick_ms: 1,
        latency_ms: (1, 5),
        transport: Transport::Network,
    },
    Load {
        name: "auto-acks",
        producers: 2,
        rate: 100_000.0,
        consumers: 2,
        batch: 1024,
        ack: AckMode::Auto,
        tick_ms: 1,
        latency_ms: (0, 0),
        transport: Transport::Network,
    },
    Load {
        name: "explicit-acks-local-transport",
        producers: 2,
        rate: 100_000.0,
        consumers: 2,
        batch: 1024,
        ack: AckMode::Explicit,
        tick_ms: 1,
        latency_ms: (0, 0),
        transport: Transport::Local,
    },
];

/// Messages `producers` producers at `rate` each are scheduled to send in a fault phase of
/// `duration_ms`, as (least, most): the fault phase ends before the hosts run its last step, so
/// the messages intended in the last tick are not sent.
fn scheduled(producers: u32, rate: f64, tick_ms: u64, duration_ms: u64) -> (u64, u64) {
    if rate <= 0.0 {
        return (0, 0);
    }
    let step_ns = (1e9 / rate).round().max(1.0) as u64;
    let per_producer = (duration_ms * 1_000_000).div_ceil(step_ns);
    let last_tick = (tick_ms * 1_000_000).div_ceil(step_ns);
    let n = u64::from(producers);
    (per_producer.saturating_sub(last_tick) * n, per_producer * n)
}

// ---------------------------------------------------------------------------------------------
// Measuring

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

/// The smallest, the median and the largest of some ratios.
fn spread(mut xs: Vec<f64>) -> (f64, f64, f64) {
    xs.sort_by(f64::total_cmp);
    (xs[0], xs[xs.len() / 2], xs[xs.len() - 1])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs `spec` and checks that the run did the work; returns the report and the wall time of
/// `run` (building the simulation, stepping it, the summary and the history's JSON Lines and
/// SHA-256, into a sink).
fn run_checked(spec: ClusterSpec, expected: (u64, u64)) -> (RunReport, Duration) {
    let start = Instant::now();
    let report = match run(spec, None) {
        Ok(r) => r,
        Err(e) => panic!("run failed: {e}"),
    };
    let wall = start.elapsed();
    check(&report, expected);
    (report, wall)
}

/// The run drained, published between `least` and `most` messages, and every one of them was
/// confirmed, delivered exactly once and completed.
fn check(r: &RunReport, (least, most): (u64, u64)) {
    let s: &Summary = &r.summary;
    assert!(r.drained(), "the run did not drain: {:?}", r.drain);
    assert!(
        (least..=most).contains(&s.published),
        "published {} of {least}..={most} scheduled: {s:?}",
        s.published
    );
    assert_eq!(s.confirmed, s.published, "{s:?}");
    assert_eq!(s.delivered, s.confirmed, "{s:?}");
    assert_eq!(s.deliveries, s.confirmed, "{s:?}");
    assert_eq!(s.completed, s.confirmed, "{s:?}");
    assert_eq!(
        s.lost + s.failed + s.indeterminate + s.unexpected + s.duplicates,
        0,
        "{s:?}"
    );
}

/// How the hosts of a bare simulation spend it.
#[derive(Debug, Clone, Copy)]
enum Bare {
    /// `loop { sleep(tick).await }`: woken every tick, as the hosts of a busy run are.
    EveryTick,
    /// One sleep past the end: turmoil's cost of a tick with nothing to do.
    UntilEnd,
}

/// The standard run's traffic and nothing else: the same hosts, tick, latencies and steps as
/// [`bare`], over turmoil TCP, with the standard run's writes and no broker, codec, history or
/// actors. The broker host answers every read with one write of 32 bytes; each producer host
/// writes 64 bytes every 2 ms (500 a second, open loop, answers read by a task of its own);
/// each consumer host asks (16 bytes), waits for the answer, works 5.6 ms, settles (16 bytes)
/// and waits for that answer, about the receives and ack batches of the standard run (537 and
/// 505 for 3,000 messages). Returns the wall time of building, stepping and dropping it, and
/// the number of writes made.
///
/// This is a floor for the overhead: whatever the harness does, a standard run makes at least
/// these writes through turmoil, and turmoil's own cost for them is counted in the run's wall
/// time against a bare simulation that makes none.
fn traffic(spec: &ClusterSpec, steps: u64) -> (Duration, u64) {
    use std::cell::Cell;
    use std::rc::Rc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use turmoil::net::{TcpListener, TcpStream};

    const PORT: u16 = 7000;
    let start = Instant::now();
    let millis = Duration::from_millis;
    let mut sim = builder(spec).build();
    let plan = Plan::new(spec);
    let writes = Rc::new(Cell::new(0u64));
    let mut hosts = plan.hosts();
    let broker = hosts.next().expect("a broker host");
    let w = writes.clone();
    sim.host(plan.name(broker), move || {
        let w = w.clone();
        async move {
            let listener = TcpListener::bind(("0.0.0.0", PORT)).await?;
            loop {
                let (mut s, _) = listener.accept().await?;
                let w = w.clone();
                tokio::task::spawn_local(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&[0u8; 32]).await.is_err() {
                            break;
                        }
                        w.set(w.get() + 1);
                    }
                });
            }
        }
    });
    let broker_addr = format!("{}:{PORT}", plan.name(broker));
    for (k, p) in hosts.enumerate() {
        let (w, addr) = (writes.clone(), broker_addr.clone());
        let producer = k < 2;
        sim.host(plan.name(p), move || {
            let (w, addr) = (w.clone(), addr.clone());
            async move {
                let s = TcpStream::connect(addr).await?;
                let (mut r, mut wr) = tokio::io::split(s);
                if producer {
                    tokio::task::spawn_local(async move {
                        let mut buf = [0u8; 4096];
                        while matches!(r.read(&mut buf).await, Ok(n) if n > 0) {}
                    });
                    let mut next = tokio::time::Instant::now();
                    loop {
                        next += millis(2);
                        tokio::time::sleep_until(next).await;
                        wr.write_all(&[1u8; 64]).await?;
                        w.set(w.get() + 1);
                    }
                } else {
                    let mut buf = [0u8; 4096];
                    loop {
                        for wait in [Duration::from_micros(5_600), Duration::ZERO] {
                            wr.write_all(&[2u8; 16]).await?;
                            w.set(w.get() + 1);
                            if r.read(&mut buf).await? == 0 {
                                return Ok(());
                            }
                            tokio::time::sleep(wait).await;
                        }
                    }
                }
            }
        });
    }
    for _ in 0..steps {
        sim.step().expect("a traffic step");
    }
    black_box(sim.elapsed());
    drop(sim);
    (start.elapsed(), writes.get())
}

/// A turmoil simulation with the builder settings, host names, tick and number of steps of a
/// run of `spec`, whose hosts only sleep; returns the wall time of building, stepping and
/// dropping it (`run` does all three too).
fn bare(spec: &ClusterSpec, steps: u64, how: Bare) -> Duration {
    let start = Instant::now();
    let millis = Duration::from_millis;
    let tick = millis(spec.tick_ms);
    let mut sim = builder(spec).build();
    let plan = Plan::new(spec);
    let end = tick * (u32::try_from(steps).expect("steps fit") + 10);
    for p in plan.hosts() {
        sim.host(plan.name(p), move || async move {
            match how {
                Bare::EveryTick => loop {
                    tokio::time::sleep(tick).await;
                },
                Bare::UntilEnd => {
                    tokio::time::sleep(end).await;
                    Ok(())
                }
            }
        });
    }
    for _ in 0..steps {
        sim.step().expect("a bare step");
    }
    black_box(sim.elapsed());
    drop(sim);
    start.elapsed()
}

// ---------------------------------------------------------------------------------------------
// The benches

/// Harness overhead: each run against bare simulations with the same hosts, tick and number of
/// steps, interleaved so that a change in the machine's load hits all three alike.
fn overhead(mode: Mode) {
    println!("overhead: wall time of a run / wall time of a bare turmoil simulation");
    println!(
        "  5 hosts (broker, 2 producers, 2 consumers), tick 1 ms; median of {} interleaved reps",
        mode.overhead_reps
    );
    for rate in std::iter::once(STANDARD_RATE).chain(OTHER_RATES) {
        let spec = overhead_spec(rate);
        let expected = scheduled(2, rate, spec.tick_ms, spec.duration_ms);
        let (warm, _) = run_checked(spec.clone(), expected);
        bare(&spec, warm.steps, Bare::EveryTick);
        let standard = rate == STANDARD_RATE;
        let (mut runs, mut every_tick, mut until_end) = (Vec::new(), Vec::new(), Vec::new());
        let (mut floor, mut floor_writes) = (Vec::new(), 0);
        let (mut leans, mut lean_done) = (Vec::new(), (0, 0));
        let mut last = warm;
        for _ in 0..mode.overhead_reps {
            let (report, wall) = run_checked(spec.clone(), expected);
            runs.push(wall);
            every_tick.push(bare(&spec, report.steps, Bare::EveryTick));
            until_end.push(bare(&spec, report.steps, Bare::UntilEnd));
            if standard {
                let (wall, writes) = traffic(&spec, report.steps);
                floor.push(wall);
                floor_writes = writes;
                let (wall, acked, entries) = lean::lean(&spec, report.steps);
                // Like every measured run, the floor did the whole work: every message the
                // producers were scheduled to send was acked.
                assert!(
                    (expected.0..=expected.1).contains(&acked),
                    "the lean harness acked {acked} messages, not {expected:?}"
                );
                leans.push(wall);
                lean_done = (acked, entries);
            }
            last = report;
        }
        // Each run against the bare simulation measured right after it: a pair is taken within
        // a tenth of a second, so a change in the machine's speed between repetitions, which
        // can put the median run and the median bare simulation in different spells, moves
        // few pairs.
        let (pair_min, pair_median, pair_max) = spread(
            runs.iter()
                .zip(&every_tick)
                .map(|(r, e)| ms(*r) / ms(*e))
                .collect(),
        );
        let (r, e, u) = (median(runs), median(every_tick), median(until_end));
        let label = if standard { "standard run" } else { "run" };
        println!(
            "  {label}, 2 x {rate} msg/s: {} steps ({:.3} simulated s), {} messages completed, {} history events",
            last.steps,
            last.end.as_nanos() as f64 / 1e9,
            last.summary.completed,
            last.history.entries().len()
        );
        println!(
            "    run {:.1} ms; bare, sleeping every tick {:.1} ms; bare, sleeping until the end {:.1} ms",
            ms(r),
            ms(e),
            ms(u)
        );
        println!(
            "    ratio {:.2} (vs every tick), {:.2} (vs until the end); target <= 1.5",
            ms(r) / ms(e),
            ms(r) / ms(u)
        );
        println!(
            "    each run against the bare simulation (every tick) right after it: median {:.2}, {:.2} to {:.2}",
            pair_median, pair_min, pair_max
        );
        if standard {
            let f = median(floor);
            println!(
                "    its traffic alone over turmoil TCP ({floor_writes} writes, no harness): {:.1} ms, {:.2} of the bare simulation; the harness's own share {:.2}",
                ms(f),
                ms(f) / ms(e),
                (ms(r) - ms(f)) / ms(e)
            );
            let l = median(leans);
            println!(
                "    a lean harness doing its work with one task per host ({} messages acked, {} history events; see lean.rs): {:.1} ms, {:.2} of the bare simulation",
                lean_done.0,
                lean_done.1,
                ms(l),
                ms(l) / ms(e)
            );
        }
    }
}

/// The catalogue's scenarios (`scenarios/*.yaml`, each at its own seed), each against the bare
/// simulation with its hosts, tick and number of steps: what the harness costs on the runs
/// people make, beside the standard run's fixed load. Faults, drains and every setting are the
/// scenario's own, so this is not a target's measure, only the spread around it.
fn catalogue(mode: Mode) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    // The same files, in the same order, as `mqsim run scenarios/` finds.
    let found = discover(&[dir]);
    assert!(found.errors.is_empty(), "{:?}", found.errors);
    let paths = found.files;
    println!(
        "catalogue: wall time of each scenario's run / a bare simulation with its hosts, tick and steps; median of {} interleaved reps",
        mode.overhead_reps
    );
    let mut ratios = Vec::new();
    for path in &paths {
        let file = ScenarioFile::load(path).expect("a catalogue scenario loads");
        let spec = file.scenario.spec.clone();
        // Warm both up once, as the standard run is.
        let warm = run(spec.clone(), None).expect("a catalogue run");
        bare(&spec, warm.steps, Bare::EveryTick);
        let (mut runs, mut bares) = (Vec::new(), Vec::new());
        for _ in 0..mode.overhead_reps {
            let start = Instant::now();
            let report = black_box(run(spec.clone(), None).expect("a catalogue run"));
            runs.push(start.elapsed());
            bares.push(bare(&spec, report.steps, Bare::EveryTick));
        }
        let (r, b) = (median(runs), median(bares));
        let ratio = ms(r) / ms(b);
        ratios.push(ratio);
        println!(
            "  {:<28} {:>2} hosts, {:>5} steps, {:>6} messages, {:>6} events: run {:>6.1} ms, bare {:>6.1} ms, ratio {ratio:.2}",
            file.stem(),
            Plan::new(&spec).hosts().count(),
            warm.steps,
            warm.summary.completed,
            warm.history.entries().len(),
            ms(r),
            ms(b),
        );
    }
    let at_most = ratios.iter().filter(|&&r| r <= 1.5).count();
    let count = ratios.len();
    let (min, mid, max) = spread(ratios);
    println!(
        "  {count} scenarios: ratio min {min:.2}, median {mid:.2}, max {max:.2}; {at_most} at or under 1.5"
    );
}

/// End-to-end throughput with the history on: messages published, delivered and acked (under
/// auto acks: delivered and applied) per wall-clock second of the whole `run`, setup, drain,
/// summary and history file included; then the summary and the history file timed again on
/// their own.
fn throughput(mode: Mode) {
    for load in LOADS {
        let spec = load.spec(mode.throughput_ms);
        let expected = load.scheduled(mode.throughput_ms);
        let mut walls = Vec::new();
        let mut last = None;
        for _ in 0..mode.throughput_reps {
            let (report, wall) = run_checked(spec.clone(), expected);
            walls.push(wall);
            last = Some(report);
        }
        let r = last.expect("at least one repetition");
        let wall = median(walls).as_secs_f64();
        let messages = r.summary.completed;
        let simulated = r.end.as_nanos() as f64 / 1e9;
        let events = r.history.entries().len();

        let t = Instant::now();
        let summary = Summary::of(&r.history, &r.plan, &spec);
        let summary_wall = t.elapsed();
        assert_eq!(summary, r.summary);
        let t = Instant::now();
        let (_, bytes) = r
            .history
            .write_jsonl(&r.plan, std::io::sink())
            .expect("writing to a sink");
        let file_wall = t.elapsed();
        assert_eq!(bytes, r.history_bytes);

        println!(
            "throughput/{}: {} producers x {} msg/s, {} consumers, batch {}, {:?} acks, tick {} ms, latency {}-{} ms, {:?} transport",
            load.name,
            load.producers,
            load.rate,
            load.consumers,
            load.batch,
            load.ack,
            load.tick_ms,
            load.latency_ms.0,
            load.latency_ms.1,
            load.transport
        );
        println!(
            "  {messages} messages end to end; {events} history events ({:.1} per message), {bytes} bytes of JSON Lines; {} steps, {simulated:.3} simulated s",
            events as f64 / messages as f64,
            r.steps
        );
        println!(
            "  median wall time {wall:.3} s (of {} reps): {:.0} messages per wall second (target >= 500000); {:.0} ns per message",
            mode.throughput_reps,
            messages as f64 / wall,
            wall * 1e9 / messages as f64
        );
        println!(
            "  simulated time: {:.3} simulated s per wall s; {:.0} steps per wall s",
            simulated / wall,
            r.steps as f64 / wall
        );
        println!(
            "  of the run's wall time, timed again alone: summary {:.1} ms ({:.0}%), JSON Lines + SHA-256 {:.1} ms ({:.0}%)",
            ms(summary_wall),
            100.0 * summary_wall.as_secs_f64() / wall,
            ms(file_wall),
            100.0 * file_wall.as_secs_f64() / wall
        );
    }
}

/// Memory per recorded history event: the fixed size of an entry, and the heap the history
/// holds per event at the end of a run, by its own account ([`History::memory_bytes`]: the
/// entry vector's capacity, spare room included, and the interned strings). An [`Entry`] is
/// `Copy` and owns no heap, so that account is the whole of the history's heap but for its
/// bookkeeping of open invokes, which is empty once a run has drained.
///
/// [`History::memory_bytes`]: mqsim_harness::sim::History::memory_bytes
fn memory(mode: Mode) {
    let load = LOADS[0];
    let duration_ms = mode.throughput_ms / 2;
    let (r, _) = run_checked(load.spec(duration_ms), load.scheduled(duration_ms));
    let events = r.history.entries().len();
    let per = |bytes: usize| bytes as f64 / events as f64;
    let entry = std::mem::size_of::<Entry>();
    let heap = r.history.memory_bytes();
    let file = r.history_bytes as usize;
    println!(
        "memory: the history of throughput/{} with a {duration_ms} ms fault phase: {events} events, {} messages",
        load.name, r.summary.completed
    );
    println!("  size_of::<Entry>() = {entry} bytes");
    println!(
        "  History::memory_bytes() = {heap} bytes: {:.1} per event, spare capacity included ({:.1} per message)",
        per(heap),
        heap as f64 / r.summary.completed as f64
    );
    println!(
        "  its JSON Lines form: {file} bytes, {:.1} per event",
        per(file)
    );
}

/// `MQSIM_SIM_ONCE=standard|bare|traffic|lean|headline`: one run of that kind and nothing else,
/// for counting instructions under callgrind (`valgrind --tool=callgrind --separate-threads=yes`,
/// as `benches/instructions.sh` does), where the bench's repetitions would take too long.
/// `standard` is the overhead bench's standard run, `bare` the bare simulation (hosts sleeping
/// every tick) with its number of steps, `traffic` the standard run's traffic alone
/// ([`traffic`]), `lean` the lean harness ([`lean::lean`]), and `headline` the `explicit-acks`
/// load over `MQSIM_SIM_ONCE_MS` of fault phase (200 by default). `MQSIM_SIM_ONCE_REPS` repeats
/// all but the last, for a sampling profiler.
fn once(what: &str) {
    let spec = overhead_spec(STANDARD_RATE);
    // `MQSIM_SIM_ONCE_REPS` runs it that many times, for a sampling profiler.
    let reps = std::env::var("MQSIM_SIM_ONCE_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    // The standard run's number of steps, for the runs that match it without running it under
    // the profiler.
    let steps = 3_040;
    match what {
        "standard" => {
            for _ in 0..reps {
                let (r, wall) = run_checked(spec.clone(), scheduled(2, STANDARD_RATE, 1, 3_000));
                println!(
                    "standard run: {} steps, {} messages, {} events, {:.1} ms",
                    r.steps,
                    r.summary.completed,
                    r.history.entries().len(),
                    ms(wall)
                );
            }
        }
        "bare" => {
            for _ in 0..reps {
                println!(
                    "bare: {steps} steps in {:?}",
                    bare(&spec, steps, Bare::EveryTick)
                );
            }
        }
        "lean" => {
            for _ in 0..reps {
                let (wall, acked, entries) = lean::lean(&spec, steps);
                println!(
                    "lean: {steps} steps, {acked} messages acked, {entries} events in {wall:?}"
                );
            }
        }
        "traffic" => {
            for _ in 0..reps {
                let (wall, writes) = traffic(&spec, steps);
                println!("traffic: {steps} steps, {writes} writes in {wall:?}");
            }
        }
        "headline" => {
            let ms = std::env::var("MQSIM_SIM_ONCE_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(200);
            let load = LOADS[0];
            let (r, _) = run_checked(load.spec(ms), load.scheduled(ms));
            println!(
                "headline: {} messages, {} events",
                r.summary.completed,
                r.history.entries().len()
            );
        }
        other => {
            panic!("MQSIM_SIM_ONCE is standard, bare, traffic, lean or headline, not {other:?}")
        }
    }
}

fn main() {
    if let Ok(what) = std::env::var("MQSIM_SIM_ONCE") {
        once(&what);
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = if args.iter().any(|a| a == "--test") {
        SMOKE
    } else {
        FULL
    };
    let wanted: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let part = |name: &str| wanted.is_empty() || wanted.iter().any(|w| name.contains(w));
    println!("machine: {}", machine());
    if part("overhead") {
        overhead(mode);
    }
    if part("catalogue") {
        catalogue(mode);
    }
    if part("throughput") {
        throughput(mode);
    }
    if part("memory") {
        memory(mode);
    }
}

/// The processor the figures come from. The same code has given an overhead ratio of 1.45 on
/// one kind of guest and 1.9 on another (benches/simulation.md), so a figure means little
/// without it. Read from Linux's `/proc/cpuinfo`; elsewhere only the number of CPUs is known.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    // The first processor's fields: every CPU of these guests is the same model.
    let field = |name: &str| {
        info.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == name).then(|| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned())
    };
    format!(
        "{} (cpu family {}, model {}), {cpus} CPUs",
        field("model name"),
        field("cpu family"),
        field("model")
    )
}
