//! State shared by the step loop, the nemesis and the actors of one run.
//!
//! turmoil runs every host on the test's own thread, one after another, so plain `Rc`,
//! `Cell` and `RefCell` suffice; no borrow is held across an `.await`. What lives here outlives
//! host crashes on purpose: the history, the idempotent sinks (an external store), the
//! producers' schedule cursors (so a restarted producer never reuses a message id), and the
//! per-host fault state the nemesis sets (pause, slow factor).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

use mqsim_broker::{Broker, SharedDisk, Time};

use super::dense::IdTable;
use super::history::History;
use super::plan::{Plan, Process, SubIndex};
use super::spec::ClusterSpec;
use crate::net::{Clock, SimClock};

/// The running broker incarnation, if any: the harness reads its statistics to tell when the
/// drain is over, and the local transport calls it directly.
pub type BrokerSlot = RefCell<Option<Rc<RefCell<Broker<SharedDisk>>>>>;

/// What one process carries across its crashes.
#[derive(Debug, Default)]
pub struct ProcState {
    /// 0 for the first start, one more per restart.
    pub incarnation: Cell<u32>,
    /// Active pause windows (by fault index): the process does no work while any is active.
    pub paused: RefCell<BTreeSet<u32>>,
    /// Active slow windows (by fault index) and their factors, which multiply.
    pub slow: RefCell<BTreeMap<u32, f64>>,
    /// Work in hand: a producer's publishes in flight, a consumer's messages being processed.
    /// Reset when the process crashes, because its tasks are dropped mid-way.
    pub busy: Cell<u32>,
    /// A producer's next sequence number and its intended send time (ns).
    pub cursor: Cell<(u64, u64)>,
    /// A producer that has nothing left to send.
    pub finished: Cell<bool>,
    /// Crashes a consumer injected into itself.
    pub self_crashes: Cell<u32>,
}

/// A crash an actor asked for (a consumer crashing mid-processing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrashRequest {
    /// Who.
    pub process: Process,
    /// Downtime.
    pub restart_after_ms: u64,
    /// At which point, for the history.
    pub why: String,
}

/// Everything the hosts and the step loop share.
#[derive(Debug)]
pub struct Control {
    /// The spec being run.
    pub spec: ClusterSpec,
    /// Names and numbers.
    pub plan: Plan,
    /// The history being recorded.
    pub history: RefCell<History>,
    /// The broker incarnation that is up.
    pub broker: BrokerSlot,
    procs: Vec<ProcState>,
    fault_phase: Cell<bool>,
    last_delivery: Cell<Time>,
    crash_requests: RefCell<Vec<CrashRequest>>,
    /// Per subscription, the harness ids its idempotent sink applied (1 = applied).
    sinks: Vec<RefCell<IdTable<u8>>>,
    /// Directed links that lose everything (`from`, `to`); only the local transport reads it,
    /// the network transport has turmoil's partitions.
    cuts: RefCell<BTreeSet<(Process, Process)>>,
}

impl Control {
    /// The shared state of a run of `spec`.
    pub fn new(spec: ClusterSpec) -> Self {
        let plan = Plan::new(&spec);
        let history = History::with_capacity(expected_entries(&spec));
        let procs = plan
            .processes
            .iter()
            .map(|_| ProcState::default())
            .collect();
        let sinks = plan
            .subs
            .iter()
            .map(|_| RefCell::new(IdTable::new(32, 1)))
            .collect();
        Control {
            spec,
            plan,
            history: RefCell::new(history),
            broker: RefCell::new(None),
            procs,
            fault_phase: Cell::new(true),
            last_delivery: Cell::new(Time::ZERO),
            crash_requests: RefCell::new(Vec::new()),
            sinks,
            cuts: RefCell::new(BTreeSet::new()),
        }
    }

    /// The state of process `p`.
    pub fn proc(&self, p: Process) -> &ProcState {
        &self.procs[usize::from(p)]
    }

    /// Now, on the calling host's clock.
    pub fn now(&self) -> Time {
        SimClock.now()
    }

    /// One simulation tick.
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.spec.tick_ms)
    }

    /// Whether the fault phase is still on: producers publish and consumers may crash.
    pub fn in_fault_phase(&self) -> bool {
        self.fault_phase.get()
    }

    /// Ends the fault phase.
    pub fn end_fault_phase(&self) {
        self.fault_phase.set(false);
    }

    /// Waits while a pause window holds `p`. A paused process keeps its connections and its
    /// in-flight requests; it only starts nothing new.
    pub async fn wait_unpaused(&self, p: Process) {
        while !self.proc(p).paused.borrow().is_empty() {
            tokio::time::sleep(self.tick()).await;
        }
    }

    /// The product of the slow windows on `p`.
    pub fn slow_factor(&self, p: Process) -> f64 {
        self.proc(p).slow.borrow().values().product()
    }

    /// Asks the step loop to crash `p` and restart it `restart_after_ms` later. The caller then
    /// waits forever: the crash drops it before it does anything else.
    pub fn request_crash(&self, p: Process, restart_after_ms: u64, why: &str) {
        self.crash_requests.borrow_mut().push(CrashRequest {
            process: p,
            restart_after_ms,
            why: why.to_owned(),
        });
    }

    /// The crashes requested since the last call, in request order.
    pub fn take_crash_requests(&self) -> Vec<CrashRequest> {
        std::mem::take(&mut self.crash_requests.borrow_mut())
    }

    /// Applies a message's effect through subscription `sub`'s sink. An idempotent sink records
    /// the id together with the effect and skips an id it has seen; a plain one applies every
    /// time. Returns whether the effect was applied.
    pub fn apply_effect(&self, sub: SubIndex, msg: u64, idempotent: bool) -> bool {
        let Some(sink) = self.sinks.get(usize::from(sub)) else {
            return true;
        };
        let fresh = std::mem::replace(sink.borrow_mut().entry(msg, 0), 1) == 0;
        fresh || !idempotent
    }

    /// Whether messages from `from` to `to` are lost (local transport).
    pub fn is_cut(&self, from: Process, to: Process) -> bool {
        self.cuts.borrow().contains(&(from, to))
    }

    /// Loses (or stops losing) messages from `from` to `to` (local transport).
    pub fn set_cut(&self, from: Process, to: Process, cut: bool) {
        let mut cuts = self.cuts.borrow_mut();
        if cut {
            cuts.insert((from, to));
        } else {
            cuts.remove(&(from, to));
        }
    }

    /// Heals every link, ends every pause and slow window.
    pub fn heal(&self) {
        self.cuts.borrow_mut().clear();
        for p in &self.procs {
            p.paused.borrow_mut().clear();
            p.slow.borrow_mut().clear();
        }
    }

    /// What the step loop does when `p` crashes: its in-flight operations become
    /// indeterminate and its work in hand is gone.
    pub fn crashed(&self, at: Time, p: Process) {
        self.history.borrow_mut().crashed(at, p);
        self.proc(p).busy.set(0);
    }

    /// Notes that a consumer got messages at `at`.
    pub fn delivered(&self, at: Time) {
        self.last_delivery.set(self.last_delivery.get().max(at));
    }

    /// When a consumer last got messages.
    pub fn last_delivery(&self) -> Time {
        self.last_delivery.get()
    }

    /// Whether any actor has work in hand.
    pub fn any_busy(&self) -> bool {
        self.procs.iter().any(|p| p.busy.get() > 0)
    }
}

/// Entries a history reserves room for before a run: about eight a message the producers are
/// scheduled to send (a publish's invoke and completion, a delivery, an effect, an ack's
/// invoke and completion, and a share of the receives), at the highest rate their schedules
/// reach, plus room for the phases and the nemesis. An estimate, never a limit: a history
/// that outgrows it grows as any vector does. It is capped so that a long run reserves at most
/// 16 MiB of address space up front.
fn expected_entries(spec: &ClusterSpec) -> usize {
    const PER_MESSAGE: f64 = 8.0;
    const BASE: usize = 1024;
    const MAX: usize = 1 << 18;
    let messages: f64 = spec
        .producers
        .iter()
        .map(|p| {
            let rate = p
                .rate_changes
                .iter()
                .map(|c| c.messages_per_s)
                .fold(p.messages_per_s, f64::max);
            let ms = p
                .duration_ms
                .unwrap_or(u64::MAX)
                .min(spec.duration_ms.saturating_sub(p.start_ms));
            let each =
                (rate * ms as f64 / 1000.0).min(p.messages.map_or(f64::INFINITY, |m| m as f64));
            each * f64::from(p.count)
        })
        .sum();
    // A float beyond usize saturates in the cast, and the cap applies.
    BASE.saturating_add((messages * PER_MESSAGE) as usize)
        .min(MAX)
}

/// Records broker events into the history: the server's event sink.
#[derive(Debug, Clone)]
pub struct HistorySink(pub Rc<Control>);

impl HistorySink {
    /// Records `events`.
    pub fn record_events<I>(&self, events: I)
    where
        I: IntoIterator<Item = mqsim_broker::Event>,
        I::IntoIter: ExactSizeIterator,
    {
        let events = events.into_iter();
        if events.len() > 0 {
            self.0
                .history
                .borrow_mut()
                .broker_events(events, &self.0.plan);
        }
    }
}

impl crate::server::EventSink for HistorySink {
    fn record(&self, events: std::vec::Drain<'_, mqsim_broker::Event>) {
        self.record_events(events);
    }
}
