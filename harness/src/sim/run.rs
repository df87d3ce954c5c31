//! Building the turmoil simulation from a spec and stepping it through the phases.
//!
//! 1. **Fault phase**, until `duration_ms`: producers publish, consumers consume, the nemesis
//!    applies the schedule between steps.
//! 2. **Heal**, at once: every link repaired and released, latencies restored, crashed hosts
//!    restarted, pause and slow windows ended. Producers stop publishing.
//! 3. **Drain**, at most `drain_timeout_ms`: the run ends when nothing is left to happen:
//!    every producer has finished, no actor has work in hand, and the broker has nothing
//!    ready, delayed, leased or blocked in any subscription producers publish to, for long
//!    enough that no reply can still be on the wire (a round trip at the longest latency,
//!    without a consumer receiving anything meanwhile). Confirmed
//!    messages that are not final by then are *lost* (a correctness failure, counted in the
//!    summary). A drain that does not get there in time is a *liveness* failure, reported
//!    separately, with what was still pending.
//!
//! The broker is peeked at (its statistics) to tell when the drain is over; that is the
//! harness's omniscience, not something a client could do.

use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, UNIX_EPOCH};

use mqsim_broker::{MemDisk, SharedDisk, Time};

use super::control::Control;
use super::history::{History, Phase};
use super::hosts;
use super::jsonl::{self, hex};
use super::nemesis::Nemesis;
use super::plan::Plan;
use super::spec::{ClusterSpec, SpecError, limits};
use super::summary::Summary;

/// Simulated time between two checks of the drain condition.
const DRAIN_CHECK_MS: u64 = 10;

/// How the drain ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drain {
    /// Nothing was left to happen, this long after the fault phase ended.
    Finished { after_ms: u64 },
    /// The drain timeout passed first: a liveness failure. `pending` says what was left.
    TimedOut { pending: Vec<String> },
}

/// What a run produced.
#[derive(Debug)]
pub struct RunReport {
    /// SHA-256 of the history's JSON Lines, in hex: the run's identity.
    pub hash: String,
    /// The totals.
    pub summary: Summary,
    /// How the drain ended.
    pub drain: Drain,
    /// The history itself.
    pub history: History,
    /// Names behind the history's numbers.
    pub plan: Plan,
    /// Size of the JSON Lines form.
    pub history_bytes: u64,
    /// Simulation steps taken.
    pub steps: u64,
    /// Simulated time at the end.
    pub end: Time,
}

impl RunReport {
    /// Whether the drain finished: the liveness verdict.
    pub fn drained(&self) -> bool {
        matches!(self.drain, Drain::Finished { .. })
    }
}

/// Why a run could not be carried out (as opposed to a run that found a problem).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The spec is invalid.
    #[error("invalid spec: {0}")]
    Spec(#[from] SpecError),
    /// A host's software failed.
    #[error("simulation failed: {0}")]
    Sim(String),
    /// The run recorded more history entries than the limit allows.
    #[error("the history exceeded {0} entries; shorten the run or lower the rates")]
    HistoryFull(usize),
    /// The history could not be written.
    #[error("writing the history: {0}")]
    Io(#[from] std::io::Error),
}

/// The turmoil settings of a run of `spec`: its seed, a fixed epoch, its tick and link
/// latencies. Public so that the benches' bare simulations are built exactly as a run is.
pub fn builder(spec: &ClusterSpec) -> turmoil::Builder {
    let ms = Duration::from_millis;
    let mut builder = turmoil::Builder::new();
    builder
        .rng_seed(spec.seed)
        .epoch(UNIX_EPOCH)
        .tick_duration(ms(spec.tick_ms))
        .min_message_latency(ms(spec.network.min_latency_ms))
        .max_message_latency(ms(spec.network.max_latency_ms))
        // The step loop decides when the run ends; this only has to be out of the way.
        .simulation_duration(ms(spec.duration_ms + spec.drain_timeout_ms + 60_000));
    builder
}

/// Runs `spec` and, given a path, writes the history there as JSON Lines.
///
/// The file is created when the run starts and written while it runs (see [`jsonl::Stream`]);
/// a run that fails leaves it partly written.
pub fn run(spec: ClusterSpec, history_path: Option<&Path>) -> Result<RunReport, RunError> {
    spec.validate()?;
    let control = Rc::new(Control::new(spec));
    let spec = &control.spec;
    let disk = SharedDisk::new(MemDisk::new());
    let mut sim = builder(spec).build();
    hosts::add(&mut sim, &control, &disk);
    // The history's file form is written while the simulation runs, by a thread outside it.
    let out: Box<dyn std::io::Write + Send> = match history_path {
        Some(path) => Box::new(std::io::BufWriter::new(std::fs::File::create(path)?)),
        None => Box::new(std::io::sink()),
    };
    let mut stream = jsonl::Stream::start(control.plan.clone(), control.spec.clone(), out)?;

    let mut nemesis = Nemesis::new(&control, disk);
    let fault_end = Time::from_ms(spec.duration_ms);
    let deadline = fault_end.plus_ms(spec.drain_timeout_ms);
    let mut next_check = fault_end;
    // Under auto acks the broker is done with a message once it sends it, so a quiet broker
    // can still have deliveries on the wire. The drain ends only after a quiet spell long
    // enough for any reply in flight to land: a round trip at the longest latency, and a tick
    // for each host to run.
    let settle = Duration::from_millis(2 * spec.network.max_latency_ms + 2 * spec.tick_ms);
    let mut quiet_since: Option<Time> = None;
    let mut steps = 0u64;
    control.history.borrow_mut().phase(Time::ZERO, Phase::Fault);
    let mut in_fault_phase = true;
    let drain = loop {
        let now = Time(u64::try_from(sim.elapsed().as_nanos()).unwrap_or(u64::MAX));
        if in_fault_phase {
            nemesis.step(&mut sim, &control, now);
            if now >= fault_end {
                in_fault_phase = false;
                control.end_fault_phase();
                control.history.borrow_mut().phase(now, Phase::Heal);
                nemesis.heal(&mut sim, &control, now);
                control.history.borrow_mut().phase(now, Phase::Drain);
            }
        }
        if !in_fault_phase && now >= next_check {
            next_check = now.plus_ms(DRAIN_CHECK_MS);
            let result = pending(&control, now);
            quiet_since = match (&result, quiet_since) {
                (Err(_), _) => None,
                (Ok(()), Some(since)) if control.last_delivery() < since => Some(since),
                (Ok(()), _) => Some(now),
            };
            let settled = quiet_since.is_some_and(|since| {
                u128::from(now.as_nanos() - since.as_nanos()) >= settle.as_nanos()
            });
            match result {
                Ok(()) if settled => {
                    control.history.borrow_mut().phase(now, Phase::Done);
                    break Drain::Finished {
                        after_ms: now.ms_since(fault_end),
                    };
                }
                result if now >= deadline => {
                    let pending = result
                        .err()
                        .unwrap_or_else(|| vec!["deliveries may still be on the wire".to_owned()]);
                    control
                        .history
                        .borrow_mut()
                        .phase(now, Phase::DrainTimedOut);
                    break Drain::TimedOut { pending };
                }
                _ => {}
            }
        }
        if control.history.borrow().entries().len() > limits::MAX_HISTORY_ENTRIES {
            return Err(RunError::HistoryFull(limits::MAX_HISTORY_ENTRIES));
        }
        sim.step().map_err(|e| RunError::Sim(e.to_string()))?;
        steps += 1;
        stream.feed(&control.history.borrow());
    };
    let end = Time(u64::try_from(sim.elapsed().as_nanos()).unwrap_or(u64::MAX));
    // Nothing is recorded after the last step, so the writer can have the last entries now
    // and write them while this thread takes the simulation down: the broker's log, whose
    // records own every message, takes about as long to drop as the writer's last batch takes
    // to write, and both used to be waited for one after the other.
    stream.close(&control.history.borrow());
    drop(sim);
    control.broker.borrow_mut().take();
    drop(nemesis);

    // The hosts, which held the other references to the control, went with the simulation.
    let history = std::mem::take(&mut *control.history.borrow_mut());
    let (digest, history_bytes, summary) = match stream.finish()? {
        Some(written) => written,
        // The streamed file could not stand for the finished history's (see `jsonl::Stream`):
        // count and write it again, whole.
        None => {
            let ids = history.broker_ids();
            let summary = Summary::with_ids(&history, &control.plan, &control.spec, &ids);
            let (digest, bytes) = match history_path {
                Some(path) => {
                    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
                    jsonl::write_with_ids(&history, &control.plan, &ids, file)?
                }
                None => jsonl::write_with_ids(&history, &control.plan, &ids, std::io::sink())?,
            };
            (digest, bytes, summary)
        }
    };
    Ok(RunReport {
        hash: hex(&digest),
        summary,
        drain,
        history,
        plan: control.plan.clone(),
        history_bytes,
        steps,
        end,
    })
}

/// `Ok` when nothing is left to happen; otherwise what is still pending.
fn pending(control: &Control, now: Time) -> Result<(), Vec<String>> {
    let plan = &control.plan;
    let mut left = Vec::new();
    for slot in &plan.producers {
        if !control.proc(slot.process).finished.get() {
            left.push(format!("{} is still publishing", plan.name(slot.process)));
        }
    }
    for p in plan.hosts() {
        let busy = control.proc(p).busy.get();
        if busy > 0 {
            left.push(format!("{} has {busy} operations in hand", plan.name(p)));
        }
    }
    let broker = control.broker.borrow().clone();
    let Some(broker) = broker else {
        left.push("the broker is down".to_owned());
        return Err(left);
    };
    let mut destinations: Vec<u16> = plan.producers.iter().map(|p| p.destination).collect();
    destinations.sort_unstable();
    destinations.dedup();
    let events = {
        let mut b = broker.borrow_mut();
        let now = now.max(b.now());
        for d in destinations {
            let Some(name) = plan.destinations.get(usize::from(d)) else {
                continue;
            };
            let Ok(stats) = b.stats(now, name) else {
                continue;
            };
            for g in &stats.groups {
                if g.ready + g.delayed + g.in_flight + g.blocked > 0 {
                    left.push(format!(
                        "{}{}: {} ready, {} delayed, {} in flight, {} blocked",
                        name,
                        g.name
                            .as_deref()
                            .map(|n| format!("/{n}"))
                            .unwrap_or_default(),
                        g.ready,
                        g.delayed,
                        g.in_flight,
                        g.blocked
                    ));
                }
            }
        }
        // Reading statistics lets due timers fire; their events belong in the history.
        b.take_events()
    };
    control
        .history
        .borrow_mut()
        .broker_events(events, &control.plan);
    if left.is_empty() { Ok(()) } else { Err(left) }
}
