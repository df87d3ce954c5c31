//! The producer actor: an open-loop publisher.
//!
//! Message `i` has an intended send time fixed by the rate schedule alone, and is sent then
//! whether or not earlier publishes have been answered, up to `max_in_flight` at once. Latency
//! therefore counts from the intended time, and the send delay (actual minus intended, from a
//! pause or a full in-flight window) is visible in the history instead of being hidden by a
//! closed loop (coordinated omission). A publish that is not confirmed is retried with capped
//! exponential backoff and jitter, each attempt its own invoke and completion.
//!
//! A producer stops at the end of the fault phase: nothing new is invoked after it, retries
//! included, so the drain waits only for what was already on the wire. A restarted producer
//! skips the messages whose intended time passed while it was down (they were never
//! attempted) and carries on with fresh sequence numbers, so an id is never reused.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use futures_util::task::AtomicWaker;
use mqsim_broker::{BrokerError, Confirm, PublishRequest, Time};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::control::Control;
use super::history::{Call, Completion, NO_KEY};
use super::ids;
use super::plan::ProducerSlot;
use super::spec::{KeySkew, KeySpec, ProducerSpec, PublishRetry, Transport};
use crate::driver::{DriverExt, Failure, Outcome};
use crate::net::{Clock, HostClock};

/// Runs one producer host until the simulation drops it.
pub async fn run<D: DriverExt + 'static>(
    control: Rc<Control>,
    slot: ProducerSlot,
    driver: Rc<D>,
) -> turmoil::Result {
    let spec = control.spec.producers[slot.spec].clone();
    let clock = HostClock::start();
    let p = slot.process;
    let state = control.proc(p);
    let mut rng = ids::rng(control.spec.seed, p, state.incarnation.get());
    let keys = Keys::new(&spec.keys);
    let schedule = Schedule::new(&spec);
    let fault_end_ns = control.spec.duration_ms.saturating_mul(1_000_000);
    let end_ns = spec.duration_ms.map_or(fault_end_ns, |d| {
        fault_end_ns.min(spec.start_ms.saturating_add(d).saturating_mul(1_000_000))
    });
    let limit = spec.messages.unwrap_or(u64::MAX);
    let destination: Rc<str> = spec.destination.as_str().into();
    let window = (spec.max_in_flight as usize).max(1);
    // The publish batches in flight, driven from this task rather than one task each; the
    // window counts messages, which leave it one by one as their attempts end.
    let mut in_flight = FuturesUnordered::new();
    let window_state = Rc::new(Window::default());
    let recipe = Recipe {
        payload_bytes: spec.payload_bytes as usize,
        dedup_ids: spec.dedup_ids,
        share_payloads: control.spec.transport == Transport::Network,
    };
    let mut last_batch = 1;

    let (mut seq, mut intended) = match state.cursor.get() {
        (0, 0) => (0, schedule.first()),
        cursor => cursor,
    };
    // Messages due while this host was down were never attempted.
    let started = clock.now().as_nanos();
    while intended < started && seq < limit {
        seq += 1;
        intended = schedule.next(intended);
    }
    state.cursor.set((seq, intended));

    // One timer for every wake-up, moved to each message's intended time, rather than one made
    // and dropped per wake-up.
    let mut timer = std::pin::pin!(tokio::time::sleep_until(clock.instant_of(intended)));
    // The time read when the last batch was made, which is still the time when the next `due`
    // is first polled: that happens in the same poll, once the new batch has been (see `drive`).
    let mut now = started;
    while seq < limit && intended < end_ns && control.in_fault_phase() {
        let due = async {
            debug_assert_eq!(now, clock.now().as_nanos(), "the producer's time moved");
            if intended > now {
                timer.as_mut().reset(clock.instant_of(intended));
                timer.as_mut().await;
            }
            control.wait_unpaused(p).await;
        };
        let room = || window_state.count.get() < window;
        drive(&mut in_flight, due, room, Some(&window_state.waiting)).await;
        if !control.in_fault_phase() {
            break;
        }
        // Every message due by now goes out in this wake-up's batch, in order, as far as the
        // window and a batch's bound allow.
        now = clock.now().as_nanos();
        // Sized for as many messages as the last batch had: a batch grown a push at a time
        // reallocated and copied itself about seven times at 100 messages per tick. The
        // attempts go in a vector a finished batch gave back when there is one.
        let mut batch = window_state.spare.borrow_mut().pop().unwrap_or_default();
        batch.reserve(last_batch);
        loop {
            let id = ids::message_id(slot.index, seq as u32);
            let poison = spec.poison_fraction > 0.0 && rng.random_bool(spec.poison_fraction);
            let key = keys.pick(&mut rng);
            let attempt = Attempts {
                slot,
                retry: spec.retry,
                id,
                key: key.unwrap_or(NO_KEY),
                poison,
                intended,
                seed: rng.random(),
                invoke: 0,
            };
            state.busy.set(state.busy.get() + 1);
            window_state.count.set(window_state.count.get() + 1);
            batch.push(attempt);
            seq += 1;
            intended = schedule.next(intended);
            state.cursor.set((seq, intended));
            if !(seq < limit
                && intended < end_ns
                && intended <= now
                && room()
                && batch.len() < MAX_BATCH)
            {
                break;
            }
        }
        last_batch = batch.len();
        let requests = recipe.requests(&batch);
        in_flight.push(publish_batch(
            control.clone(),
            clock,
            Time(now),
            driver.clone(),
            destination.clone(),
            window_state.clone(),
            recipe,
            batch,
            requests,
        ));
    }
    state.finished.set(true);
    while in_flight.next().await.is_some() {}
    // Returning would end the host's software; stay until the simulation ends.
    std::future::pending::<()>().await;
    Ok(())
}

/// The most publishes one batch carries (the broker's bound).
const MAX_BATCH: usize = mqsim_broker::limits::MAX_RECEIVE_BATCH as usize;

/// A producer's messages in flight, and a wake-up for each that leaves.
#[derive(Default)]
struct Window {
    count: Cell<usize>,
    /// The producer's waker while it waits for room in the window: lighter than the `Notify`
    /// it replaced, signalled by every message that left.
    waiting: AtomicWaker,
    /// The emptied attempt vectors of finished batches, for the next batches to fill: a
    /// vector allocated for every batch and freed when it finished was an allocation per
    /// message at a rate where every batch holds one. There are never more of them than
    /// batches once in flight at the same time.
    spare: RefCell<Vec<Vec<Attempts>>>,
}

/// Sends a wake-up's messages as one publish batch: each message has its own invoke (all at
/// the same time, in order) and its own completion. A refused publish fails alone; a failed or
/// indeterminate request fails or leaves indeterminate every message in it. Each message is
/// then retried on its own, as a single publish, as the retry policy says.
///
/// Completions are recorded, in order, as soon as the answer comes; only the messages to retry
/// get a future of their own, so a batch that went through costs no future per message.
///
/// The invokes are recorded at `now`, the time the producer read when it made the batch: the
/// batch is first polled in the same poll of the producer's task (its calls in flight are
/// polled first), so no time has passed, and reading the paused clock again cost a lock.
// What the batch needs of its producer is passed as it is, not bundled in a struct for this
// one call.
#[allow(clippy::too_many_arguments)]
async fn publish_batch<D: DriverExt>(
    control: Rc<Control>,
    clock: HostClock,
    now: Time,
    driver: Rc<D>,
    destination: Rc<str>,
    window: Rc<Window>,
    recipe: Recipe,
    mut batch: Vec<Attempts>,
    requests: Vec<PublishRequest>,
) {
    let p = batch[0].slot.process;
    debug_assert_eq!(now, clock.now(), "a batch is started when it is made");
    // The invokes go in the attempts themselves rather than in a vector beside them, which
    // would be one more allocation per batch.
    {
        let mut h = control.history.borrow_mut();
        for a in &mut batch {
            a.invoke = h.invoke(now, p, Call::publish(a.id, a.key, a.intended));
        }
    }
    // Each message's outcome is taken from the answer as its completion is recorded, without
    // collecting the outcomes in a vector first: a failed or indeterminate request gives every
    // message the same outcome.
    let (results, whole) = match driver.publish_batch(&destination, requests).await {
        Outcome::Ok(results) => (results, None),
        Outcome::Fail(f) => (Vec::new(), Some(Outcome::Fail(f))),
        Outcome::Info(i) => (Vec::new(), Some(Outcome::Info(i))),
    };
    let mut results = results.into_iter();
    let left = || {
        let busy = &control.proc(p).busy;
        busy.set(busy.get().saturating_sub(1));
        window.count.set(window.count.get().saturating_sub(1));
        window.waiting.wake();
    };
    // No time passes between the answer and these records: read the clock once.
    let now = clock.now();
    let mut retries = Vec::new();
    for attempt in batch.drain(..) {
        let outcome = match (&whole, results.next()) {
            (None, Some(Ok(c))) => Outcome::Ok(c),
            (None, Some(Err(e))) => Outcome::Fail(Failure::Broker(e)),
            (Some(o), _) => o.clone(),
            // The driver checked that the answer has a result for every request.
            (None, None) => unreachable!("a publish batch answered with too few results"),
        };
        if attempt.complete(&control, now, attempt.invoke, outcome)
            && attempt.retry.max_attempts > 1
        {
            let (control, driver, destination) = (&control, &driver, &destination);
            let left = &left;
            retries.push(async move {
                // The batch's requests went to the driver; a retry sends the same request
                // again, made anew from the same recipe.
                let request = recipe.request(&attempt);
                attempt
                    .retry(control, clock, &**driver, destination, request)
                    .await;
                left();
            });
        } else {
            left();
        }
    }
    window.spare.borrow_mut().push(batch);
    if !retries.is_empty() {
        futures_util::future::join_all(retries).await;
    }
}

/// How a producer makes a message's publish request, so that a retry can make the same
/// request again instead of every message keeping a copy of it (a clone of a payload made
/// from a vector allocates its shared header, and that was one allocation per message).
#[derive(Debug, Clone, Copy)]
struct Recipe {
    payload_bytes: usize,
    dedup_ids: bool,
    /// Whether a batch's payloads may share one buffer. Over the network a payload lives only
    /// until the client encodes its request; the local transport hands it to the broker, which
    /// would then keep a whole batch's buffer for as long as any one of its messages lives.
    share_payloads: bool,
}

impl Recipe {
    /// The request of `attempt`'s message: its payload, key and dedup id.
    fn request(&self, attempt: &Attempts) -> PublishRequest {
        let payload = ids::encode_payload(attempt.id, attempt.poison, self.payload_bytes);
        self.request_with(attempt, payload)
    }

    /// The requests of a batch's messages, in order. A batch of several cuts its payloads from
    /// one buffer when they may share it, which saves an allocation per message at high rates;
    /// a batch of one, the common case at low rates, has a payload of its own, since sharing a
    /// buffer costs an allocation of its own.
    fn requests(&self, batch: &[Attempts]) -> Vec<PublishRequest> {
        if !self.share_payloads || batch.len() == 1 {
            return batch.iter().map(|a| self.request(a)).collect();
        }
        let size = ids::payload_len(self.payload_bytes);
        let mut payloads = bytes::BytesMut::with_capacity(size * batch.len());
        batch
            .iter()
            .map(|a| {
                let payload = ids::cut_payload(&mut payloads, a.id, a.poison, self.payload_bytes);
                self.request_with(a, payload)
            })
            .collect()
    }

    fn request_with(&self, attempt: &Attempts, payload: bytes::Bytes) -> PublishRequest {
        let id = attempt.id;
        let mut request = PublishRequest::new(payload);
        if attempt.key != NO_KEY {
            request = request.with_key(ids::key_name(attempt.key));
        }
        if self.dedup_ids {
            request = request.with_dedup_id(format!("{id:x}"));
        }
        request
    }
}

/// Awaits `due` while driving the calls `in_flight`, then waits, still driving them, until
/// `room` says another may start; returns what `due` gave. Calls in flight are polled first,
/// so a call pushed before this is started at once, as a task of its own would be. `waiting`,
/// when given, is where the wait for room leaves its waker, for whatever leaves the window
/// without its call ending (a retried message) to wake it.
pub(super) async fn drive<T, F: Future<Output = ()>>(
    in_flight: &mut FuturesUnordered<F>,
    due: impl Future<Output = T>,
    room: impl Fn() -> bool,
    waiting: Option<&AtomicWaker>,
) -> T {
    let mut due = std::pin::pin!(due);
    let mut out = None;
    loop {
        if room()
            && let Some(v) = out.take()
        {
            return v;
        }
        let freed = std::future::poll_fn(|cx| match waiting {
            Some(_) if room() => Poll::Ready(()),
            Some(w) => {
                w.register(cx.waker());
                Poll::Pending
            }
            None => Poll::Pending,
        });
        // Never all disabled: with `due` done, the window is full, so a call is in flight.
        tokio::select! {
            biased;
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
            () = freed, if out.is_some() => {}
            v = &mut due, if out.is_none() => out = Some(v),
        }
    }
}

/// One message's publish attempts.
struct Attempts {
    slot: ProducerSlot,
    retry: PublishRetry,
    id: u64,
    key: u32,
    /// Whether the payload says the message is poison.
    poison: bool,
    intended: u64,
    /// Seeds the retries' jitter; drawn for every message, used only by one that is retried.
    seed: u64,
    /// The history entry of the first attempt's invoke, once the batch has recorded it.
    invoke: u32,
}

impl Attempts {
    /// Retries after a first attempt that asked for it, alone, as single publishes, with
    /// capped exponential backoff and jitter, each attempt its own invoke and completion.
    async fn retry<D: DriverExt>(
        &self,
        control: &Control,
        clock: HostClock,
        driver: &D,
        destination: &str,
        request: PublishRequest,
    ) {
        let p = self.slot.process;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let mut again = true;
        let mut attempt = 1;
        while again && attempt < self.retry.max_attempts {
            // Equal jitter: half the backoff fixed, half drawn, so retries of many producers
            // after one outage do not arrive in lockstep.
            let backoff = self.retry.backoff_ms(attempt);
            let wait = backoff / 2 + rng.random_range(0..=backoff - backoff / 2);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            attempt += 1;
            if !control.in_fault_phase() {
                return;
            }
            control.wait_unpaused(p).await;
            let now = clock.now();
            let call = Call::publish(self.id, self.key, self.intended);
            let invoke = control.history.borrow_mut().invoke(now, p, call);
            let outcome = driver.publish(destination, request.clone()).await;
            again = self.complete(control, clock.now(), invoke, outcome);
        }
    }

    /// Records an attempt's completion at `now`; returns whether to try again.
    fn complete(
        &self,
        control: &Control,
        now: Time,
        invoke: u32,
        outcome: Outcome<Confirm>,
    ) -> bool {
        let mut h = control.history.borrow_mut();
        match outcome {
            Outcome::Ok(c) => {
                let duplicate = u32::from(c.duplicate);
                h.ok(
                    now,
                    invoke,
                    c.message_id.0,
                    c.partition,
                    c.offset,
                    duplicate,
                );
                false
            }
            Outcome::Fail(f) => {
                h.failed(now, invoke, Completion::Fail, &f.to_string());
                retryable(&f)
            }
            Outcome::Info(i) => {
                h.failed(now, invoke, Completion::Info, &i.to_string());
                self.retry.retry_indeterminate
            }
        }
    }
}

/// Whether a definite failure is worth retrying: the broker was unreachable or pushed back.
fn retryable(f: &Failure) -> bool {
    matches!(
        f,
        Failure::Unavailable(_)
            | Failure::Broker(BrokerError::Overflow { .. })
            | Failure::Broker(BrokerError::StorageFull)
    )
}

/// The rate schedule: intended send times, in simulated nanoseconds.
#[derive(Debug, Clone)]
pub struct Schedule {
    start_ns: u64,
    rate: f64,
    /// Later changes as (from ns, rate).
    changes: Vec<(u64, f64)>,
}

impl Schedule {
    /// The schedule of a producer spec.
    pub fn new(spec: &ProducerSpec) -> Self {
        Schedule {
            start_ns: spec.start_ms.saturating_mul(1_000_000),
            rate: spec.messages_per_s,
            changes: spec
                .rate_changes
                .iter()
                .map(|c| (c.at_ms.saturating_mul(1_000_000), c.messages_per_s))
                .collect(),
        }
    }

    fn rate_at(&self, t: u64) -> f64 {
        self.changes
            .iter()
            .take_while(|(at, _)| *at <= t)
            .last()
            .map_or(self.rate, |c| c.1)
    }

    /// The first change after `t`.
    fn change_after(&self, t: u64) -> Option<u64> {
        self.changes.iter().map(|c| c.0).find(|&at| at > t)
    }

    /// The intended time of the first message; `u64::MAX` when the schedule never sends.
    pub fn first(&self) -> u64 {
        self.at_or_after(self.start_ns)
    }

    /// The intended time of the message after one intended at `t`. A rate change starts a new
    /// schedule at its own time; no message is intended while the rate is zero.
    pub fn next(&self, t: u64) -> u64 {
        let rate = self.rate_at(t);
        let change = self.change_after(t).unwrap_or(u64::MAX);
        let candidate = if rate > 0.0 {
            let step = (1e9 / rate).round().max(1.0) as u64;
            t.saturating_add(step).min(change)
        } else {
            change
        };
        self.at_or_after(candidate)
    }

    /// The first instant from `t` on at which the rate is not zero.
    fn at_or_after(&self, mut t: u64) -> u64 {
        while t != u64::MAX && self.rate_at(t) <= 0.0 {
            t = self.change_after(t).unwrap_or(u64::MAX);
        }
        t
    }
}

/// Picks message keys.
#[derive(Debug, Clone)]
enum Keys {
    Unkeyed,
    Uniform(u32),
    /// Cumulative probabilities, for a skewed distribution.
    Cdf(Vec<f64>),
    Hot {
        count: u32,
        fraction: f64,
    },
}

impl Keys {
    fn new(spec: &KeySpec) -> Self {
        match (spec.count, spec.skew) {
            (0, _) => Keys::Unkeyed,
            (n, KeySkew::Uniform) => Keys::Uniform(n),
            (n, KeySkew::Zipf { exponent }) => {
                let weights: Vec<f64> =
                    (1..=n).map(|i| 1.0 / f64::from(i).powf(exponent)).collect();
                let total: f64 = weights.iter().sum();
                let mut acc = 0.0;
                let cdf = weights
                    .iter()
                    .map(|w| {
                        acc += w / total;
                        acc
                    })
                    .collect();
                Keys::Cdf(cdf)
            }
            (n, KeySkew::HotKey { fraction }) => Keys::Hot { count: n, fraction },
        }
    }

    fn pick(&self, rng: &mut ChaCha8Rng) -> Option<u32> {
        match self {
            Keys::Unkeyed => None,
            Keys::Uniform(n) => Some(rng.random_range(0..*n)),
            Keys::Cdf(cdf) => {
                let u: f64 = rng.random();
                let i = cdf.partition_point(|&c| c < u);
                Some((i as u32).min(cdf.len() as u32 - 1))
            }
            Keys::Hot { count, fraction } => {
                if *count == 1 || rng.random_bool(*fraction) {
                    Some(0)
                } else {
                    Some(rng.random_range(1..*count))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::spec::RateChange;

    /// A message can leave a full window while its batch is still in flight (its retry ended
    /// and the batch waits on others): that alone must wake a producer waiting for room.
    #[test]
    fn room_freed_while_every_batch_is_in_flight_wakes_the_wait() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let local = tokio::task::LocalSet::new();
        let got = local.block_on(&rt, async {
            let window = Rc::new(Window::default());
            window.count.set(1);
            let got = Rc::new(Cell::new(None));
            // The producer's wait, in a task of its own, so that only a wake-up polls it again.
            let (w, g) = (window.clone(), got.clone());
            tokio::task::spawn_local(async move {
                // A batch that never ends: nothing but the window can wake the wait.
                let mut in_flight = FuturesUnordered::new();
                in_flight.push(std::future::pending::<()>());
                let room = || w.count.get() < 1;
                g.set(Some(
                    drive(&mut in_flight, async { 7 }, room, Some(&w.waiting)).await,
                ));
            });
            // Let the wait start, then free a place as a retried message does.
            tokio::task::yield_now().await;
            window.count.set(0);
            let waiting = window.waiting.take();
            waiting.expect("the producer waits for room").wake();
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            got.get()
        });
        assert_eq!(got, Some(7));
    }

    /// Over the network a batch's payloads share one buffer; handed straight to the broker by
    /// the local transport, each has its own, so that a message the broker keeps does not keep
    /// its batch's other payloads alive. Either way they are the payloads `encode_payload`
    /// makes.
    #[test]
    fn only_payloads_the_client_encodes_share_a_buffer() {
        let slot = ProducerSlot {
            process: 2,
            spec: 0,
            index: 0,
            destination: 0,
        };
        let batch: Vec<Attempts> = (0..3)
            .map(|i| Attempts {
                slot,
                retry: PublishRetry::default(),
                id: ids::message_id(0, i),
                key: NO_KEY,
                poison: i == 2,
                intended: 0,
                seed: 0,
                invoke: 0,
            })
            .collect();
        for share_payloads in [true, false] {
            let recipe = Recipe {
                payload_bytes: 32,
                dedup_ids: false,
                share_payloads,
            };
            let requests = recipe.requests(&batch);
            for (a, r) in batch.iter().zip(&requests) {
                assert_eq!(r.payload, ids::encode_payload(a.id, a.poison, 32));
            }
            // A payload alone in its allocation is the only handle on it.
            for r in &requests {
                assert_eq!(r.payload.is_unique(), !share_payloads);
            }
        }
    }

    #[test]
    fn schedule_follows_rate_changes() {
        let spec = ProducerSpec {
            messages_per_s: 1000.0,
            start_ms: 5,
            rate_changes: vec![
                RateChange {
                    at_ms: 7,
                    messages_per_s: 0.0,
                },
                RateChange {
                    at_ms: 10,
                    messages_per_s: 500.0,
                },
            ],
            ..ProducerSpec::default()
        };
        let s = Schedule::new(&spec);
        let mut t = s.first();
        let mut got = vec![t / 1_000_000];
        for _ in 0..5 {
            t = s.next(t);
            got.push(t / 1_000_000);
        }
        assert_eq!(got, vec![5, 6, 10, 12, 14, 16]);
    }

    #[test]
    fn skewed_keys_favour_the_first() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for skew in [
            KeySkew::Zipf { exponent: 1.5 },
            KeySkew::HotKey { fraction: 0.8 },
        ] {
            let keys = Keys::new(&KeySpec { count: 10, skew });
            let mut counts = [0u32; 10];
            for _ in 0..2000 {
                counts[keys.pick(&mut rng).unwrap() as usize] += 1;
            }
            assert!(counts[0] > 800, "{skew:?}: {counts:?}");
            assert!(counts.iter().skip(1).all(|&c| c < counts[0]), "{counts:?}");
        }
    }
}
