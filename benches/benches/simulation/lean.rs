//! A lean harness for the standard run: how far below the real harness a design with one task
//! per host and no per-call futures could go, measured rather than guessed.
//!
//! The overhead target asks the standard run for at most 1.5 times the bare simulation, and
//! on most guests measured so far the harness is above it (benches/simulation.md, Targets).
//! Reaching it there was estimated to need a different design: fewer layers per request, no
//! future per call, no separate reader and writer tasks. This is that design's floor, written
//! for the standard run alone. It does the standard run's essential work with the harness's
//! own parts:
//!
//! * the same hosts, tick, latencies and steps, over turmoil TCP;
//! * the real wire codec ([`encode`], [`FrameReader`]) and the real reference broker with
//!   `always` durability, its events recorded;
//! * the real history, with the real run's entries per message (invokes, completions,
//!   deliveries, effects), streamed to the real writer thread (JSON Lines and SHA-256);
//! * producers publishing open loop every 2 ms, consumers receiving up to 10 messages,
//!   working 1 ms on each, and acking them in one batch.
//!
//! It leaves out what a harness needs and the floor does not: the handshake, request
//! timeouts, reconnection, indeterminate outcomes, retries, the driver interface, faults,
//! pauses, crashes, the drain and its checks. Each host is one task: the producer waits on its
//! next send or its socket, and the consumer does one thing at a time. So the floor is a bound
//! from below on what that redesign could reach, not a harness.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mqsim_broker::{
    AckMode, Broker, Command, ConsumerId, MemDisk, PublishRequest, Reply, SharedDisk,
};
use mqsim_harness::net::{Clock, HostClock};
use mqsim_harness::sim::history::{Call, NO_KEY, Op};
use mqsim_harness::sim::ids::NO_MSG;
use mqsim_harness::sim::jsonl::Stream;
use mqsim_harness::sim::spec::Processing;
use mqsim_harness::sim::{ClusterSpec, History, Plan, builder, ids};
use mqsim_harness::wire::{ClientFrame, FrameReader, ServerFrame, encode};
use tokio::io::AsyncWriteExt;
use turmoil::net::{TcpListener, TcpStream};

const PORT: u16 = 7001;

/// What the floor's hosts share: the history and the plan that names its processes.
struct Shared {
    history: RefCell<History>,
    plan: Plan,
}

/// Runs the lean harness for `steps` steps of `spec` (the standard run's). Returns the wall
/// time of building, stepping and taking it down, with the writer's finish, the messages the
/// consumers acked and the history's entries.
pub fn lean(spec: &ClusterSpec, steps: u64) -> (Duration, u64, usize) {
    let start = Instant::now();
    let plan = Plan::new(spec);
    let shared = Rc::new(Shared {
        history: RefCell::new(History::with_capacity(32 * 1024)),
        plan: plan.clone(),
    });
    let mut stream =
        Stream::start(plan.clone(), spec.clone(), Box::new(std::io::sink())).expect("a writer");
    let mut sim = builder(spec).build();
    let acked = Rc::new(std::cell::Cell::new(0u64));

    let broker = plan.processes[0].clone();
    let (config, sh) = (spec.broker.clone(), shared.clone());
    let disk = SharedDisk::new(MemDisk::new());
    sim.host(broker.as_str(), move || {
        broker_host(config.clone(), disk.clone(), sh.clone())
    });
    let addr = format!("{broker}:{PORT}");
    for slot in plan.producers.clone() {
        let (sh, addr) = (shared.clone(), addr.clone());
        let destination = plan.destinations[usize::from(slot.destination)].clone();
        let p = &spec.producers[slot.spec];
        let (rate, payload_bytes) = (p.messages_per_s, p.payload_bytes as usize);
        let end_ns = spec.duration_ms * 1_000_000;
        sim.host(plan.name(slot.process), move || {
            let interval = Duration::from_secs_f64(1.0 / rate);
            producer(
                sh.clone(),
                addr.clone(),
                destination.clone(),
                (slot.process, slot.index),
                (interval, payload_bytes),
                end_ns,
            )
        });
    }
    for slot in plan.consumers.clone() {
        let (sh, addr, acked) = (shared.clone(), addr.clone(), acked.clone());
        let c = spec.consumers[slot.spec].clone();
        sim.host(plan.name(slot.process), move || {
            consumer(
                sh.clone(),
                addr.clone(),
                c.clone(),
                (slot.process, slot.index, slot.sub),
                acked.clone(),
            )
        });
    }
    for _ in 0..steps {
        sim.step().expect("a lean step");
        stream.feed(&shared.history.borrow());
    }
    stream.close(&shared.history.borrow());
    drop(sim);
    stream.finish().expect("the writer finished");
    let entries = shared.history.borrow().entries().len();
    (start.elapsed(), acked.get(), entries)
}

/// The broker: one task per connection, which answers each request as it is read.
async fn broker_host(
    config: mqsim_broker::BrokerConfig,
    disk: SharedDisk,
    shared: Rc<Shared>,
) -> turmoil::Result {
    let clock = HostClock::start();
    let broker = Broker::open(config, disk, clock.now())?;
    let broker = Rc::new(RefCell::new(broker));
    let listener = TcpListener::bind(("0.0.0.0", PORT)).await?;
    loop {
        let (s, _) = listener.accept().await?;
        let (broker, shared) = (broker.clone(), shared.clone());
        tokio::task::spawn_local(async move {
            let (r, mut w) = s.into_split();
            let mut frames = FrameReader::new(r);
            let mut out = Vec::new();
            while let Ok(Some(ClientFrame::Request { id, command })) =
                frames.next::<ClientFrame>().await
            {
                let result = {
                    let mut b = broker.borrow_mut();
                    let result = b.apply(clock.now(), command);
                    let events = b.take_events();
                    shared
                        .history
                        .borrow_mut()
                        .broker_events(events, &shared.plan);
                    result
                };
                out.clear();
                encode(&ServerFrame::Response { id, result }, &mut out).expect("encodes");
                if w.write_all(&out).await.is_err() {
                    break;
                }
            }
        });
    }
}

/// A producer: one publish of `payload_bytes` every `interval` until `end_ns`, open loop; its
/// answers are read by the same task while it waits for the next send.
async fn producer(
    shared: Rc<Shared>,
    addr: String,
    destination: String,
    (p, index): (u16, u32),
    (interval, payload_bytes): (Duration, usize),
    end_ns: u64,
) -> turmoil::Result {
    let clock = HostClock::start();
    let (r, mut w) = TcpStream::connect(addr).await?.into_split();
    let mut frames = FrameReader::new(r);
    let mut waiting = VecDeque::new();
    let mut out = Vec::new();
    let (t0, start_ns) = (tokio::time::Instant::now(), clock.now().as_nanos());
    let mut seq = 0u32;
    let mut next = Duration::ZERO;
    // One timer for every send, moved on after each, rather than one made per wait.
    let due = tokio::time::sleep_until(t0);
    tokio::pin!(due);
    loop {
        let sending = start_ns + (next.as_nanos() as u64) < end_ns;
        tokio::select! {
            biased;
            frame = frames.next::<ServerFrame>() => {
                let Ok(Some(ServerFrame::Response { result, .. })) = frame else {
                    return Ok(());
                };
                let invoke = waiting.pop_front().expect("an answer to a request");
                let Ok(Reply::PublishedBatch { results }) = result else {
                    panic!("a publish failed: {result:?}");
                };
                let c = results[0].as_ref().expect("published");
                shared.history.borrow_mut().ok(
                    clock.now(),
                    invoke,
                    c.message_id.0,
                    c.partition,
                    c.offset,
                    0,
                );
            }
            () = &mut due, if sending => {
                let id = ids::message_id(index, seq);
                let command = Command::PublishBatch {
                    destination: destination.clone(),
                    requests: vec![PublishRequest::new(ids::encode_payload(id, false, payload_bytes))],
                };
                out.clear();
                encode(&ClientFrame::Request { id: u64::from(seq), command }, &mut out)
                    .expect("encodes");
                let now = clock.now();
                let invoke = shared.history.borrow_mut().invoke(
                    now,
                    p,
                    Call::publish(id, NO_KEY, now.as_nanos()),
                );
                waiting.push_back(invoke);
                w.write_all(&out).await?;
                seq += 1;
                next += interval;
                due.as_mut().reset(t0 + next);
            }
        }
    }
}

/// A consumer: receive, work on each message, ack them together, and again.
async fn consumer(
    shared: Rc<Shared>,
    addr: String,
    spec: mqsim_harness::sim::ConsumerSpec,
    (p, index, sub): (u16, u32, u16),
    acked: Rc<std::cell::Cell<u64>>,
) -> turmoil::Result {
    let clock = HostClock::start();
    let (r, mut w) = TcpStream::connect(addr).await?.into_split();
    let mut frames = FrameReader::new(r);
    let mut out = Vec::new();
    let mut id = 0u64;
    // The standard run's processing and acks; the floor models no others, and says so rather
    // than measuring a different run.
    let Processing::Constant { ms } = spec.processing else {
        panic!(
            "the lean harness models constant processing only, not {:?}",
            spec.processing
        );
    };
    let work = Duration::from_millis(ms);
    assert_eq!(
        spec.ack_mode,
        AckMode::Explicit,
        "the lean harness acks explicitly only"
    );
    loop {
        id += 1;
        let invoke = shared
            .history
            .borrow_mut()
            .invoke(clock.now(), p, Call::receive(sub));
        let command = Command::Receive {
            destination: spec.destination.clone(),
            group: None,
            consumer: ConsumerId(u64::from(index) << 32),
            max_messages: spec.max_messages,
            visibility_timeout_ms: None,
            ack_mode: spec.ack_mode,
        };
        let reply = call(&mut frames, &mut w, &mut out, id, command).await?;
        let Reply::Delivered { deliveries } = reply else {
            panic!("a receive failed: {reply:?}");
        };
        let now = clock.now();
        {
            let mut h = shared.history.borrow_mut();
            h.ok(now, invoke, NO_MSG, 0, 0, deliveries.len() as u32);
            for d in &deliveries {
                h.deliver(now, p, invoke, d, sub);
            }
        }
        if deliveries.is_empty() {
            tokio::time::sleep(Duration::from_millis(spec.poll_interval_ms)).await;
            continue;
        }
        let mut acks = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            tokio::time::sleep(work).await;
            let (msg, _) = ids::message_of(&d.payload);
            shared
                .history
                .borrow_mut()
                .effect(clock.now(), p, msg, sub, true);
            acks.push((msg, d.receipt.expect("an explicit ack's receipt")));
        }
        let now = clock.now();
        let (invokes, receipts): (Vec<u32>, Vec<_>) = {
            let mut h = shared.history.borrow_mut();
            acks.into_iter()
                .map(|(msg, r)| (h.invoke(now, p, Call::settle(Op::Ack, msg, sub)), r))
                .unzip()
        };
        id += 1;
        let reply = call(
            &mut frames,
            &mut w,
            &mut out,
            id,
            Command::AckBatch { receipts },
        )
        .await?;
        let Reply::Acked { results } = reply else {
            panic!("an ack batch failed: {reply:?}");
        };
        let now = clock.now();
        let mut h = shared.history.borrow_mut();
        for (&invoke, result) in invokes.iter().zip(results) {
            result.expect("acked");
            h.ok(now, invoke, NO_MSG, 0, 0, 0);
        }
        acked.set(acked.get() + invokes.len() as u64);
    }
}

/// One request and its answer, with nothing else in flight.
async fn call(
    frames: &mut FrameReader<turmoil::net::tcp::OwnedReadHalf>,
    w: &mut turmoil::net::tcp::OwnedWriteHalf,
    out: &mut Vec<u8>,
    id: u64,
    command: Command,
) -> std::io::Result<Reply> {
    out.clear();
    encode(&ClientFrame::Request { id, command }, out).expect("encodes");
    w.write_all(out).await?;
    match frames.next::<ServerFrame>().await {
        Ok(Some(ServerFrame::Response { result, .. })) => {
            Ok(result.expect("the broker answered with a reply"))
        }
        other => Err(std::io::Error::other(format!("{other:?}"))),
    }
}
