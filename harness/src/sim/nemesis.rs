//! The nemesis: the fault schedule, by simulated time, and how each fault is applied.
//!
//! A [`FaultSpec`] starts a fault at `at_ms` (inside the fault phase) and, with `for_ms`, ends
//! it that much later; without it the fault lasts until the heal at the end of the fault phase.
//! Faults:
//!
//! * **crash** of the broker or any client host. turmoil drops the host's runtime and every
//!   task on it, and peers see their connections die, as after a process kill. For the broker
//!   the disk is crashed too ([`mqsim_broker::MemDisk::crash`]): records that were not synced
//!   are lost, so what survives is exactly what the durability policy promised. The end of the
//!   window restarts the host, whose factory reopens the broker from the same disk. Operations
//!   the crashed process had in flight are closed in the history as `info`.
//! * **partition** between two sets of hosts, both ways or one way (`a` to `b` dropped).
//! * **latency**: every message between the two sets takes exactly `latency_ms`; the end
//!   restores the network's range.
//! * **hold**: messages between the two sets wait until the end, then all arrive. turmoil's
//!   release heals the link entirely, so a hold ending inside a partition of the same link
//!   ends that partition too.
//! * **slow**: a consumer's processing time times `factor` (windows multiply).
//! * **pause**: the host starts no new work but keeps its connections and what it has in
//!   flight (a GC pause or a SIGSTOP seen from the outside).
//!
//! Crashes and restarts need `&mut Sim`, so they happen in the harness's own step loop, between
//! steps; so do consumers' self-inflicted crashes, which actors queue in the shared control.
//!
//! # How message loss is modelled
//!
//! turmoil's TCP has no retransmission: dropping one segment at random leaves a connection
//! hung or broken rather than delayed, which is not what loss looks like to a real client. So
//! schedules never use turmoil's random `fail_rate`; loss is modelled by what it causes in
//! practice: a partition (everything between two hosts is lost for a while, one way or both,
//! and connections time out), a crash (a host and its connections vanish), and latency or
//! hold (delay without loss).

use std::collections::BTreeSet;
use std::time::Duration;

use mqsim_broker::{SharedDisk, Time};
use serde::{Deserialize, Serialize};
use turmoil::Sim;

use super::control::Control;
use super::plan::{BROKER, NEMESIS, Plan, Process};
use super::spec::limits;
use super::validate::{SpecError, err, range_f64, range_u64};

/// One fault of the schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultSpec {
    /// When it starts, inside the fault phase.
    pub at_ms: u64,
    /// How long it lasts; unset, until the heal at the end of the fault phase.
    #[serde(default)]
    pub for_ms: Option<u64>,
    /// What it is.
    pub fault: Fault,
}

/// The kinds of faults. Hosts are named by selectors (see [`Plan::select`]): `broker`,
/// `producer-0`, `consumer-2`, `producers`, `consumers`, `clients`, `group:NAME`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Fault {
    /// Crash the hosts; the end of the window restarts them.
    Crash { hosts: Vec<String> },
    /// Lose every message between `a` and `b`; with `one_way`, only those from `a` to `b`.
    Partition {
        a: Vec<String>,
        b: Vec<String>,
        #[serde(default)]
        one_way: bool,
    },
    /// Every message between `a` and `b` takes exactly `latency_ms`.
    Latency {
        a: Vec<String>,
        b: Vec<String>,
        latency_ms: u64,
    },
    /// Messages between `a` and `b` wait until the fault ends.
    Hold { a: Vec<String>, b: Vec<String> },
    /// Consumers' processing takes `factor` times as long.
    Slow { hosts: Vec<String>, factor: f64 },
    /// Producers or consumers start no new work.
    Pause { hosts: Vec<String> },
}

impl FaultSpec {
    /// Checks the times, bounds and host selectors.
    pub fn validate(&self, path: &str, plan: &Plan, duration_ms: u64) -> Result<(), SpecError> {
        if self.at_ms >= duration_ms {
            return Err(err(
                format!("{path}.at_ms"),
                format!(
                    "{} is not inside the fault phase (0 to {duration_ms})",
                    self.at_ms
                ),
            ));
        }
        if let Some(f) = self.for_ms {
            range_u64(&format!("{path}.for_ms"), f, 1, limits::MAX_DURATION_MS)?;
        }
        let hosts =
            |field: &str, sel: &[String]| select(plan, &format!("{path}.fault.{field}"), sel);
        match &self.fault {
            Fault::Crash { hosts: h } => {
                hosts("crash.hosts", h)?;
            }
            Fault::Partition { a, b, .. } | Fault::Hold { a, b } => {
                hosts("a", a)?;
                hosts("b", b)?;
            }
            Fault::Latency { a, b, latency_ms } => {
                hosts("a", a)?;
                hosts("b", b)?;
                range_u64(
                    &format!("{path}.fault.latency.latency_ms"),
                    *latency_ms,
                    0,
                    limits::MAX_LATENCY_MS,
                )?;
            }
            Fault::Slow { hosts: h, factor } => {
                let ps = hosts("slow.hosts", h)?;
                if ps.iter().any(|&p| plan.consumer(p).is_none()) {
                    return Err(err(
                        format!("{path}.fault.slow.hosts"),
                        "only consumers can be slowed",
                    ));
                }
                range_f64(
                    &format!("{path}.fault.slow.factor"),
                    *factor,
                    1.0,
                    limits::MAX_SLOW_FACTOR,
                )?;
            }
            Fault::Pause { hosts: h } => {
                let ps = hosts("pause.hosts", h)?;
                if ps.contains(&BROKER) {
                    return Err(err(
                        format!("{path}.fault.pause.hosts"),
                        "only producers and consumers can be paused",
                    ));
                }
            }
        }
        Ok(())
    }
}

/// The processes a list of selectors names, deduplicated, in process order.
fn select(plan: &Plan, path: &str, selectors: &[String]) -> Result<Vec<Process>, SpecError> {
    if selectors.is_empty() {
        return Err(err(path, "names no host"));
    }
    let mut out = BTreeSet::new();
    for s in selectors {
        let ps = plan
            .select(s)
            .ok_or_else(|| err(path, format!("`{s}` names no host")))?;
        out.extend(ps);
    }
    Ok(out.into_iter().collect())
}

/// A fault starting or ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Action {
    at_ns: u64,
    /// Ends before starts at the same instant, so back-to-back windows do not overlap.
    start: bool,
    fault: u32,
}

/// The fault schedule being applied, and what it has done so far.
pub struct Nemesis {
    actions: Vec<Action>,
    next: usize,
    down: BTreeSet<Process>,
    /// Scheduled restarts as (ns, process).
    restarts: BTreeSet<(u64, Process)>,
    /// Links whose latency a fault changed, to restore at the heal.
    latency_changed: BTreeSet<(Process, Process)>,
    disk: SharedDisk,
}

impl std::fmt::Debug for Nemesis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nemesis")
            .field("next", &self.next)
            .field("down", &self.down)
            .finish_non_exhaustive()
    }
}

impl Nemesis {
    /// The schedule of `control`'s spec; `disk` is the broker host's.
    pub fn new(control: &Control, disk: SharedDisk) -> Self {
        let mut actions = Vec::new();
        for (i, f) in control.spec.faults.iter().enumerate() {
            let at_ns = f.at_ms.saturating_mul(1_000_000);
            actions.push(Action {
                at_ns,
                start: true,
                fault: i as u32,
            });
            if let Some(d) = f.for_ms {
                actions.push(Action {
                    at_ns: at_ns.saturating_add(d.saturating_mul(1_000_000)),
                    start: false,
                    fault: i as u32,
                });
            }
        }
        actions.sort();
        Nemesis {
            actions,
            next: 0,
            down: BTreeSet::new(),
            restarts: BTreeSet::new(),
            latency_changed: BTreeSet::new(),
            disk,
        }
    }

    /// Whether `p` is crashed.
    pub fn is_down(&self, p: Process) -> bool {
        self.down.contains(&p)
    }

    /// Applies everything due by `now` in the fault phase: scheduled faults, crashes actors
    /// asked for, and restarts.
    pub fn step(&mut self, sim: &mut Sim<'_>, control: &Control, now: Time) {
        while let Some(a) = self.actions.get(self.next).copied() {
            if a.at_ns > now.as_nanos() {
                break;
            }
            self.next += 1;
            self.apply(sim, control, now, a);
        }
        for r in control.take_crash_requests() {
            let name = control.plan.name(r.process).to_owned();
            if self.crash(
                sim,
                control,
                now,
                r.process,
                &format!("crash {name} ({})", r.why),
            ) {
                let at = now.plus_ms(r.restart_after_ms).as_nanos();
                self.restarts.insert((at, r.process));
            }
        }
        while let Some(&(at, p)) = self.restarts.first() {
            if at > now.as_nanos() {
                break;
            }
            self.restarts.pop_first();
            self.restart(sim, control, now, p);
        }
    }

    fn apply(&mut self, sim: &mut Sim<'_>, control: &Control, now: Time, a: Action) {
        let plan = &control.plan;
        let spec = &control.spec.faults[a.fault as usize];
        // Validation resolved every selector; an empty list here would only skip the fault.
        let pick = |sel: &[String]| select(plan, "", sel).unwrap_or_default();
        let names = |ps: &[Process]| {
            ps.iter()
                .map(|&p| plan.name(p))
                .collect::<Vec<_>>()
                .join(",")
        };
        match (&spec.fault, a.start) {
            (Fault::Crash { hosts }, true) => {
                for p in pick(hosts) {
                    let text = format!("crash {}", plan.name(p));
                    self.crash(sim, control, now, p, &text);
                }
            }
            (Fault::Crash { hosts }, false) => {
                for p in pick(hosts) {
                    self.restart(sim, control, now, p);
                }
            }
            (
                Fault::Partition {
                    a: x,
                    b: y,
                    one_way,
                },
                start,
            ) => {
                let (x, y) = (pick(x), pick(y));
                for (&from, &to) in pairs(&x, &y) {
                    let (f, t) = (plan.name(from), plan.name(to));
                    match (start, *one_way) {
                        (true, false) => sim.partition(f, t),
                        (true, true) => sim.partition_oneway(f, t),
                        (false, false) => sim.repair(f, t),
                        (false, true) => sim.repair_oneway(f, t),
                    }
                    control.set_cut(from, to, start);
                    if !*one_way {
                        control.set_cut(to, from, start);
                    }
                }
                let arrow = if *one_way { "->" } else { "|" };
                let verb = if start { "partition" } else { "heal" };
                let text = format!("{verb} {} {arrow} {}", names(&x), names(&y));
                control.history.borrow_mut().nemesis(now, NEMESIS, &text);
            }
            (
                Fault::Latency {
                    a: x,
                    b: y,
                    latency_ms,
                },
                start,
            ) => {
                let (x, y) = (pick(x), pick(y));
                for (&p, &q) in pairs(&x, &y) {
                    if start {
                        let d = Duration::from_millis(*latency_ms);
                        sim.set_link_latency(plan.name(p), plan.name(q), d);
                        self.latency_changed.insert((p.min(q), p.max(q)));
                    } else {
                        self.restore_latency(sim, control, p, q);
                    }
                }
                let text = if start {
                    format!("latency {} | {} {latency_ms}ms", names(&x), names(&y))
                } else {
                    format!("restore latency {} | {}", names(&x), names(&y))
                };
                control.history.borrow_mut().nemesis(now, NEMESIS, &text);
            }
            (Fault::Hold { a: x, b: y }, start) => {
                let (x, y) = (pick(x), pick(y));
                for (&p, &q) in pairs(&x, &y) {
                    if start {
                        sim.hold(plan.name(p), plan.name(q));
                    } else {
                        sim.release(plan.name(p), plan.name(q));
                    }
                }
                let verb = if start { "hold" } else { "release" };
                let text = format!("{verb} {} | {}", names(&x), names(&y));
                control.history.borrow_mut().nemesis(now, NEMESIS, &text);
            }
            (Fault::Slow { hosts, factor }, start) => {
                let ps = pick(hosts);
                for &p in &ps {
                    let mut slow = control.proc(p).slow.borrow_mut();
                    if start {
                        slow.insert(a.fault, *factor);
                    } else {
                        slow.remove(&a.fault);
                    }
                }
                let text = if start {
                    format!("slow {} x{factor}", names(&ps))
                } else {
                    format!("end slow {}", names(&ps))
                };
                control.history.borrow_mut().nemesis(now, NEMESIS, &text);
            }
            (Fault::Pause { hosts }, start) => {
                let ps = pick(hosts);
                for &p in &ps {
                    let mut paused = control.proc(p).paused.borrow_mut();
                    if start {
                        paused.insert(a.fault);
                    } else {
                        paused.remove(&a.fault);
                    }
                }
                let verb = if start { "pause" } else { "resume" };
                let text = format!("{verb} {}", names(&ps));
                control.history.borrow_mut().nemesis(now, NEMESIS, &text);
            }
        }
    }

    fn restore_latency(&self, sim: &mut Sim<'_>, control: &Control, p: Process, q: Process) {
        let n = &control.spec.network;
        let (a, b) = (control.plan.name(p), control.plan.name(q));
        // Setting the fixed latency first and the maximum second leaves the range [min, max].
        sim.set_link_latency(a, b, Duration::from_millis(n.min_latency_ms));
        sim.set_link_max_message_latency(a, b, Duration::from_millis(n.max_latency_ms));
    }

    /// Crashes `p` if it is up; returns whether it was.
    fn crash(
        &mut self,
        sim: &mut Sim<'_>,
        control: &Control,
        now: Time,
        p: Process,
        text: &str,
    ) -> bool {
        if !self.down.insert(p) {
            return false;
        }
        sim.crash(control.plan.name(p));
        if p == BROKER {
            control.broker.borrow_mut().take();
            self.disk.lock().crash();
        }
        // The fault first, then what it did to the operations in flight, as Jepsen logs it.
        control.history.borrow_mut().nemesis(now, NEMESIS, text);
        control.crashed(now, p);
        true
    }

    /// Restarts `p` if it is down.
    fn restart(&mut self, sim: &mut Sim<'_>, control: &Control, now: Time, p: Process) {
        if !self.down.remove(&p) {
            return;
        }
        let inc = &control.proc(p).incarnation;
        inc.set(inc.get() + 1);
        sim.bounce(control.plan.name(p));
        let text = format!("restart {}", control.plan.name(p));
        control.history.borrow_mut().nemesis(now, NEMESIS, &text);
    }

    /// Ends every fault: links healed and released, latencies restored, crashed hosts
    /// restarted, pause and slow windows closed. Later scheduled actions are dropped.
    pub fn heal(&mut self, sim: &mut Sim<'_>, control: &Control, now: Time) {
        self.next = self.actions.len();
        let hosts: Vec<Process> = control.plan.hosts().collect();
        for (i, &p) in hosts.iter().enumerate() {
            for &q in &hosts[i + 1..] {
                // Release also repairs, and delivers whatever a hold kept back.
                sim.release(control.plan.name(p), control.plan.name(q));
            }
        }
        for (p, q) in std::mem::take(&mut self.latency_changed) {
            self.restore_latency(sim, control, p, q);
        }
        control.heal();
        self.restarts.clear();
        let down: Vec<Process> = self.down.iter().copied().collect();
        for p in down {
            self.restart(sim, control, now, p);
        }
        control
            .history
            .borrow_mut()
            .nemesis(now, NEMESIS, "heal all");
    }
}

/// Every (from, to) pair of distinct hosts across the two sets.
fn pairs<'a>(
    x: &'a [Process],
    y: &'a [Process],
) -> impl Iterator<Item = (&'a Process, &'a Process)> + 'a {
    x.iter()
        .flat_map(move |p| y.iter().map(move |q| (p, q)))
        .filter(|(p, q)| p != q)
}
