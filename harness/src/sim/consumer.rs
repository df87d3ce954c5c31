//! The consumer actor: a receive loop that processes each message in simulated time.
//!
//! Processing takes simulated time drawn from the spec's distribution (times the slow factor
//! of any slow-consumer window): CPU work costs nothing in a simulation, so service time must
//! be modelled to show in latency and lag. Poison messages always fail; others fail with the
//! configured probability, drawn from the consumer's seeded RNG. A failure is a nack under
//! explicit acks (the broker retries or dead-letters) and a lost message under auto acks.
//!
//! A successful message's effect goes through the subscription's sink before the ack. An
//! idempotent sink keeps the ids it applied, updated together with the effect, so a
//! redelivery after a crash between effect and ack is skipped: exactly-once effects over
//! at-least-once delivery. In the fault phase a consumer may crash itself before the effect or
//! between effect and ack, as the spec asks; the step loop applies the crash and restarts it.

use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use mqsim_broker::{AckMode, ConsumerId, Delivery, Receipt, Time};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use tokio::time::{Instant, Sleep};

use super::control::Control;
use super::history::{Call, Completion, Op};
use super::ids::{self, NO_MSG};
use super::plan::ConsumerSlot;
use super::producer::drive;
use super::spec::{ConsumerSpec, Processing};
use crate::driver::{DriverExt, Outcome};
use crate::net::{Clock, HostClock};

/// Runs one consumer host until the simulation drops it.
pub async fn run<D: DriverExt + 'static>(
    control: Rc<Control>,
    slot: ConsumerSlot,
    driver: Rc<D>,
) -> turmoil::Result {
    let incarnation = control.proc(slot.process).incarnation.get();
    let mut c = Consumer {
        spec: control.spec.consumers[slot.spec].clone(),
        rng: ids::rng(control.spec.seed, slot.process, incarnation),
        // A fresh consumer id per incarnation: the leases of the crashed one still count
        // against its in-flight limit until they run out.
        id: ConsumerId((u64::from(slot.index) << 32) | u64::from(incarnation)),
        now: None,
        clock: HostClock::start(),
        timer: Box::pin(tokio::time::sleep_until(Instant::now())),
        control,
        slot,
        driver,
    };
    // The futures of a batch's nacks; empty between batches, and kept for the next one rather
    // than made anew for each, which cost two allocations per batch.
    let mut settling = FuturesUnordered::new();
    loop {
        let batch = c.receive().await;
        if batch.is_empty() {
            c.sleep(Duration::from_millis(c.spec.poll_interval_ms))
                .await;
            continue;
        }
        // Nacks go out as each message is done; acks are gathered and go out together as one
        // ack batch once the whole batch is processed. Everything is awaited together at the
        // end of the batch, so the next receive comes only once this batch is settled and the
        // prefetch stays a bound. Nacks are driven from this task while the next messages are
        // processed.
        let mut acks = Vec::with_capacity(batch.len());
        for delivery in batch {
            // The receive recorded the delivery under the same id and flag.
            let (msg, poison) = ids::message_of(&delivery.payload);
            // Work, then the rest of the handling, which never waits. Nacks in flight are
            // driven while the work is done, and polled first, as before. A message with no
            // work on an unpaused host does not wait at all, and with no nack in flight there
            // is then nothing to await: it is handled in place, without the future per
            // message that was built (and copied twice) before.
            let work = c.work();
            if !settling.is_empty() {
                drive(&mut settling, c.wait_for(work), || true, None).await;
            } else if !work.is_zero() || c.paused() {
                c.wait_for(work).await;
            }
            let settle = match c.finish(delivery, msg, poison) {
                Finished::Settled(settle) => settle,
                Finished::Crashed => std::future::pending().await,
            };
            match settle {
                Some(Settle::Nack(nack)) => settling.push(nack),
                Some(Settle::Ack(msg, receipt)) => acks.push((msg, receipt)),
                None => {}
            }
        }
        let acking = c.ack_all(acks);
        let nacking = async { while settling.next().await.is_some() {} };
        futures_util::future::join(acking, nacking).await;
    }
}

/// How a processed message is settled.
enum Settle<F> {
    /// Acked with the rest of its batch, in one ack batch: the harness id and the receipt.
    Ack(u64, Receipt),
    /// Nacked on its own; its invoke is recorded and the future awaits the answer.
    Nack(F),
}

struct Consumer<D> {
    control: Rc<Control>,
    slot: ConsumerSlot,
    driver: Rc<D>,
    spec: ConsumerSpec,
    rng: ChaCha8Rng,
    id: ConsumerId,
    /// This incarnation's reading of the simulated time.
    clock: HostClock,
    /// The simulated time, while it is known not to have moved: from a receive's answer until
    /// the first message whose handling may wait (the clock only moves when a task waits).
    now: Option<Time>,
    /// One timer for every wait of this incarnation (the work on each message, the pause
    /// between empty receives), moved to each wait's end rather than made and dropped per wait.
    timer: Pin<Box<Sleep>>,
}

impl<D: DriverExt + 'static> Consumer<D> {
    /// One receive; its deliveries, each recorded in the history.
    async fn receive(&mut self) -> Vec<Delivery> {
        let p = self.slot.process;
        self.control.wait_unpaused(p).await;
        let now = self.clock.now();
        let call = Call::receive(self.slot.sub);
        let invoke = self.control.history.borrow_mut().invoke(now, p, call);
        let outcome = self
            .driver
            .receive(
                &self.spec.destination,
                self.spec.group.as_deref(),
                self.id,
                self.spec.max_messages,
                self.spec.visibility_timeout_ms,
                self.spec.ack_mode,
            )
            .await;
        let now = self.clock.now();
        self.now = Some(now);
        let mut h = self.control.history.borrow_mut();
        match outcome {
            Outcome::Ok(deliveries) => {
                h.ok(now, invoke, NO_MSG, 0, 0, deliveries.len() as u32);
                if !deliveries.is_empty() {
                    self.control.delivered(now);
                }
                let busy = &self.control.proc(p).busy;
                busy.set(busy.get() + deliveries.len() as u32);
                for d in &deliveries {
                    h.deliver(now, p, invoke, d, self.slot.sub);
                }
                deliveries
            }
            Outcome::Fail(f) => {
                h.failed(now, invoke, Completion::Fail, &f.to_string());
                Vec::new()
            }
            Outcome::Info(i) => {
                h.failed(now, invoke, Completion::Info, &i.to_string());
                Vec::new()
            }
        }
    }

    /// The processing time of the next message (a draw from the spec's distribution, scaled by
    /// any slow window). Forgets the known time when handling it may wait.
    fn work(&mut self) -> Duration {
        let p = self.slot.process;
        let work = scale(
            sample(&self.spec.processing, &mut self.rng),
            self.control.slow_factor(p),
        );
        // Pauses change only between steps, so an unpaused host does not wait here; with no
        // work either, this message's handling never waits, and the clock stays where it was.
        if !work.is_zero() || self.paused() {
            self.now = None;
        }
        work
    }

    fn paused(&self) -> bool {
        !self
            .control
            .proc(self.slot.process)
            .paused
            .borrow()
            .is_empty()
    }

    /// Spends `work` of simulated time, then waits out any pause.
    async fn wait_for(&mut self, work: Duration) {
        if !work.is_zero() {
            self.sleep(work).await;
        }
        self.control.wait_unpaused(self.slot.process).await;
    }

    /// Waits `d` from now, as `tokio::time::sleep(d)` would, on this incarnation's timer.
    async fn sleep(&mut self, d: Duration) {
        self.timer.as_mut().reset(Instant::now() + d);
        self.timer.as_mut().await;
    }

    /// The rest of a message's handling once its work is done: failure or effect, then the
    /// ack, left to the batch's ack batch; or a nack when it fails, whose invoke is recorded
    /// here and whose answer the returned future awaits. The message stops counting as work in
    /// hand once it is settled. It never waits: a crash it asks for is returned, and the
    /// caller then waits for the step loop to apply it.
    fn finish(
        &mut self,
        d: Delivery,
        msg: u64,
        poison: bool,
    ) -> Finished<impl Future<Output = ()> + use<D>> {
        let p = self.slot.process;
        let fails = poison || draw(&mut self.rng, self.spec.failure_probability);
        let mut settle = None;
        if fails {
            settle = d.receipt.map(|r| (Op::Nack, r));
        } else {
            if self.crash(self.spec.crash.before_effect_probability, "before effect") {
                return Finished::Crashed;
            }
            // A payload the harness did not make has no id to apply; it is only acked.
            if msg != NO_MSG {
                let sub = self.slot.sub;
                let applied = self
                    .control
                    .apply_effect(sub, msg, self.spec.idempotent_sink);
                let now = self.now.unwrap_or_else(|| self.clock.now());
                self.control
                    .history
                    .borrow_mut()
                    .effect(now, p, msg, sub, applied);
            }
            if self.crash(
                self.spec.crash.after_effect_probability,
                "after effect, before ack",
            ) {
                return Finished::Crashed;
            }
            if self.spec.ack_mode == AckMode::Explicit {
                settle = d.receipt.map(|r| (Op::Ack, r));
            }
        }
        let control = self.control.clone();
        let clock = self.clock;
        let Some((op, receipt)) = settle else {
            done(&control, p);
            return Finished::Settled(None);
        };
        if op == Op::Ack {
            return Finished::Settled(Some(Settle::Ack(msg, receipt)));
        }
        let driver = self.driver.clone();
        let sub = self.slot.sub;
        // The invoke is recorded now, in processing order; the future only waits for the answer.
        let now = clock.now();
        let invoke = control
            .history
            .borrow_mut()
            .invoke(now, p, Call::settle(op, msg, sub));
        Finished::Settled(Some(Settle::Nack(async move {
            let outcome = driver.nack(receipt, None).await;
            let now = clock.now();
            let mut h = control.history.borrow_mut();
            match outcome {
                Outcome::Ok(()) => h.ok(now, invoke, NO_MSG, 0, 0, 0),
                Outcome::Fail(f) => h.failed(now, invoke, Completion::Fail, &f.to_string()),
                Outcome::Info(i) => h.failed(now, invoke, Completion::Info, &i.to_string()),
            }
            drop(h);
            done(&control, p);
        })))
    }

    /// Acks a batch's processed messages with one ack batch. Each message keeps its own invoke
    /// (recorded now, when the batch is sent, in processing order) and its own completion: a
    /// refused ack fails alone, and a failed or indeterminate request fails or leaves
    /// indeterminate every ack in it. A receive never delivers more than a batch may hold.
    fn ack_all(&self, acks: Vec<(u64, Receipt)>) -> impl Future<Output = ()> + use<D> {
        let control = self.control.clone();
        let driver = self.driver.clone();
        let (p, sub) = (self.slot.process, self.slot.sub);
        let clock = self.clock;
        let now = clock.now();
        let (invokes, receipts): (Vec<u32>, Vec<Receipt>) = {
            let mut h = control.history.borrow_mut();
            acks.into_iter()
                .map(|(msg, r)| (h.invoke(now, p, Call::settle(Op::Ack, msg, sub)), r))
                .unzip()
        };
        async move {
            if receipts.is_empty() {
                return;
            }
            let outcome = driver.ack_batch(receipts).await;
            let now = clock.now();
            let mut h = control.history.borrow_mut();
            match outcome {
                Outcome::Ok(results) => {
                    for (&invoke, result) in invokes.iter().zip(results) {
                        match result {
                            Ok(()) => h.ok(now, invoke, NO_MSG, 0, 0, 0),
                            Err(e) => h.failed(now, invoke, Completion::Fail, &e.to_string()),
                        }
                    }
                }
                Outcome::Fail(f) => {
                    let why = f.to_string();
                    for &invoke in &invokes {
                        h.failed(now, invoke, Completion::Fail, &why);
                    }
                }
                Outcome::Info(i) => {
                    let why = i.to_string();
                    for &invoke in &invokes {
                        h.failed(now, invoke, Completion::Info, &why);
                    }
                }
            }
            drop(h);
            for _ in &invokes {
                done(&control, p);
            }
        }
    }

    /// With probability `p`, in the fault phase and within the crash budget, asks the step
    /// loop to crash this host; returns whether it did, in which case the caller must wait
    /// for the crash to happen and do nothing more.
    fn crash(&mut self, probability: f64, why: &str) -> bool {
        let state = self.control.proc(self.slot.process);
        if !self.control.in_fault_phase()
            || state.self_crashes.get() >= self.spec.crash.max_crashes
            || !draw(&mut self.rng, probability)
        {
            return false;
        }
        state.self_crashes.set(state.self_crashes.get() + 1);
        self.control
            .request_crash(self.slot.process, self.spec.crash.restart_after_ms, why);
        true
    }
}

/// How the handling of a message that did not wait ended.
enum Finished<F> {
    /// It was settled as this says (`None`: nothing to send).
    Settled(Option<Settle<F>>),
    /// It asked the step loop for a crash of this host.
    Crashed,
}

/// One message of `p`'s is finished with.
fn done(control: &Control, p: super::plan::Process) {
    let busy = &control.proc(p).busy;
    busy.set(busy.get().saturating_sub(1));
}

/// A draw with probability `p`; no draw at all when `p` is zero, so that turning an option off
/// does not shift the random stream of everything else.
fn draw(rng: &mut ChaCha8Rng, p: f64) -> bool {
    p > 0.0 && rng.random_bool(p)
}

/// A processing time.
fn sample(processing: &Processing, rng: &mut ChaCha8Rng) -> Duration {
    match *processing {
        Processing::Constant { ms } => Duration::from_millis(ms),
        Processing::Uniform { min_ms, max_ms } => {
            Duration::from_micros(rng.random_range(min_ms * 1000..=max_ms * 1000))
        }
        Processing::Exponential { mean_ms, max_ms } => {
            // 1 - u is in (0, 1], so the logarithm is finite.
            let u: f64 = rng.random();
            let us = -(mean_ms as f64 * 1000.0) * (1.0 - u).ln();
            Duration::from_micros((us as u64).min(max_ms * 1000))
        }
    }
}

fn scale(d: Duration, factor: f64) -> Duration {
    if factor == 1.0 {
        d
    } else {
        Duration::from_nanos((d.as_nanos() as f64 * factor) as u64)
    }
}
